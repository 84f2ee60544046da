// Click a column header to sort by it (numbers numerically, blanks last); click again to reverse.
// The page's Content-Security-Policy allows this script alone (by its SHA-256): nothing else runs.
document.documentElement.dataset.script = "ran";
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th.sortable").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows), idx = th.cellIndex;
      var asc = th.dataset.order !== "asc"; th.dataset.order = asc ? "asc" : "desc";
      function key(r) { var c = r.cells[idx]; var v = c.dataset.sort !== undefined ? c.dataset.sort : c.textContent.trim();
                        var f = parseFloat(v); return isNaN(f) ? v : f; }
      rows.sort(function (a, b) { var x = key(a), y = key(b);
        if (x === "" ) return 1; if (y === "") return -1;
        return (x > y ? 1 : x < y ? -1 : 0) * (asc ? 1 : -1); });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
