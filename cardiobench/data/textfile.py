"""Reading the text index files of a dataset (CSV, Info.cfg) whatever encoding marker they carry.

Spreadsheet programs save "CSV UTF-8" with a byte-order mark and "Unicode text" as UTF-16, so a
file's first bytes decide: a UTF-8, UTF-16 or UTF-32 byte-order mark is honoured (and dropped);
without one the file must be UTF-8. A BOM-less UTF-16 file (NUL bytes between ASCII letters) is
refused saying so, rather than parsed into garbled column names.
"""
from __future__ import annotations

import codecs
import io
import os
from pathlib import Path

from ..errors import DataError

# the longer UTF-32 marks first: UTF-32-LE's mark begins with UTF-16-LE's
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"), (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
         (codecs.BOM_UTF8, "utf-8", "UTF-8"), (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
         (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"))


def _bom_less_utf16(data: bytes) -> str | None:
    """'little-endian' / 'big-endian' when ``data`` looks like BOM-less UTF-16 ASCII text, else None."""
    head = data[:200]
    if len(head) < 4 or b"\x00" not in head:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.8 * len(odd) and even.count(0) < 0.2 * len(even):
        return "little-endian"
    if even.count(0) > 0.8 * len(even) and odd.count(0) < 0.2 * len(odd):
        return "big-endian"
    return None


def decode(data: bytes, name: str) -> str:
    """The text of a file's bytes (see the module docstring); DataError naming ``name`` and the encoding."""
    for bom, codec, label in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(codec)
            except UnicodeDecodeError as exc:
                raise DataError(f"{name}: starts with a {label} byte-order mark but is not valid {label} "
                                f"(byte {exc.start}); save it as UTF-8") from None
    order = _bom_less_utf16(data)
    if order is not None:
        raise DataError(f"{name}: looks like UTF-16 ({order}) without a byte-order mark; save it as UTF-8 "
                        "(or UTF-16 with its byte-order mark)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{name}: not UTF-8 text (byte 0x{data[exc.start]:02X} on line {line}; Latin-1 or "
                        "Windows-1252?); save it as UTF-8") from None


def read_text(path: str | os.PathLike, name: str | None = None) -> str:
    """The text of ``path`` (DataError naming ``name``, default the path, when unreadable or undecodable)."""
    path = Path(path)
    name = name or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    return decode(data, name)


def text_stream(path: str | os.PathLike, name: str | None = None) -> io.StringIO:
    """The decoded text of ``path`` as a file object for ``csv.reader`` / ``pandas.read_csv``; line
    endings are kept as written (``newline=""``), which the csv module wants."""
    return io.StringIO(read_text(path, name), newline="")


def duplicated(header: list[str]) -> list[str]:
    """The column names a CSV header holds more than once (in order of first repeat)."""
    seen: set[str] = set()
    out: list[str] = []
    for name in header:
        if name in seen and name not in out:
            out.append(name)
        seen.add(name)
    return out
