"""Published numbers: one validated schema, each number with its own source, compared with a run only
like with like (same definition, protocol and data; never a twin), on the rendered page and its JSON."""
from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest
import yaml

from cardiobench import published
from cardiobench.errors import CardiobenchError

from .conftest import cli
from .runmaker import echo_test_set, ef_predictions, make_run

R2P1D = "echonet_dynamic_r2plus1d"


def _by(task: str, **match) -> list[published.PublishedNumber]:
    return [p for p in published.load(task) if all(getattr(p, k) == v for k, v in match.items())]


def test_every_number_validates_and_names_its_own_source():
    numbers = published.load()
    assert len(numbers) >= 40
    for p in numbers:
        assert p.source.citation and (p.source.doi or p.source.arxiv or p.source.url) and p.where
        assert p.kind in ("measured", "projection") and isinstance(p.same_data, bool)
    # the number's own source, not its recipe's paper
    (ct,) = _by("ct_cardiac", value=0.786)
    assert "EHJ" in ct.source.citation or "European Heart Journal" in ct.source.citation
    assert "Merlin" not in ct.source.citation and not ct.ours
    (clip,) = _by("ctrate_zeroshot", value=0.684)
    assert "Shui" in clip.source.citation and not clip.same_data
    (issue,) = _by("ctrate_zeroshot", value=0.6267)
    assert issue.baseline == "fvlm_4" and "github.com" in (issue.source.url or "") and issue.n == 3039
    seed = _by("acdc_seg", baseline="acdc_unet_seed_original")
    assert seed and all("Kerfoot" not in p.source.citation for p in seed)


def test_fixed_flags_authors_and_sizes():
    coreecho = _by("echonet_ef", method=next(p.method for p in published.load("echonet_ef") if "CoReEcho" in p.method))
    assert all(p.source.citation.startswith("Maani F, Saeed N, Matsun A, Yaqub M") for p in coreecho)
    assert all(p.same_data is not None for p in published.load("echonet_ef"))
    isensee = [p for p in published.load("acdc_seg") if "Isensee et al. 2017" in p.method]
    assert isensee and all(p.same_data and "test" in p.split.lower() for p in isensee)
    (nnunet,) = [p for p in published.load("acdc_seg") if p.value == 0.9154]
    assert (nnunet.n, nnunet.unit, nnunet.same_data) == (200, "volumes", False)
    uvt = [p for p in published.load("echonet_ef") if p.method.startswith("UVT")]
    assert {(p.metric, p.value, p.mode) for p in uvt} >= {("mae", 5.95, "full_video"), ("mae", 5.32, "single_beat"),
                                                         ("rmse", 7.23, "single_beat"), ("r2", 0.64, "single_beat")}
    refs = {p.source.key: p.source for p in published.load()}
    assert any("Nature Biomedical Engineering" in r.citation and "2025" in r.citation for r in refs.values())
    merlin = yaml.safe_load(open(published.PUBLISHED_FILE))["references"]
    assert any("Merlin" in r["citation"] and "Nature" in r["citation"] and "2026" in r["citation"]
               for r in merlin.values())


def test_echonet_definitions_are_the_papers():
    r2 = _by("echonet_ef", baseline=R2P1D, metric="r2_lm")
    assert {(p.mode, p.value) for p in r2} == {("beat_by_beat", 0.81), ("first_clip", 0.795)}
    assert not _by("echonet_ef", baseline=R2P1D, metric="r2")  # sklearn's R² is another quantity
    assert {p.mode for p in _by("echonet_ef", baseline=R2P1D, metric="mae")} == {"beat_by_beat", "first_clip"}


def test_added_anchors_carry_their_source_location():
    anchors = {("echonet_seg", 0.9332): "SimLVSeg", ("acdc_seg", 0.9265): "MedNeXt", ("acdc_seg", 0.9199): "ResEnc"}
    for (task, value), name in anchors.items():
        (p,) = _by(task, value=value)
        assert name in p.method and p.where and p.source.citation


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["tasks"]["echonet_ef"][0].pop("same_data"), "lacks 'same_data'"),
    (lambda d: d["tasks"]["echonet_ef"][0]["numbers"][0].update(colour="red"), "unknown field 'colour'"),
    (lambda d: d["tasks"]["echonet_ef"][0].update(source="nobody2020"), "is not a key of 'references'"),
    (lambda d: d["tasks"]["echonet_ef"][0]["numbers"][0].update(metric="mea"), "neither one of task"),
])
def test_a_bad_entry_refuses_to_load_naming_file_and_entry(tmp_path, monkeypatch, edit, message):
    data = yaml.safe_load(published.PUBLISHED_FILE.read_text())
    edit(data)
    bad = tmp_path / "published.yaml"
    bad.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(published, "PUBLISHED_FILE", bad)
    published._load_file.cache_clear()
    with pytest.raises(CardiobenchError, match=re.escape(message)) as err:
        published.load("echonet_ef")
    assert str(bad) in str(err.value) and "tasks.echonet_ef[0]" in str(err.value)
    published._load_file.cache_clear()


@pytest.fixture(scope="module")
def page(twin80, tmp_path_factory):
    """A site with one R(2+1)D run per situation: real data in the paper's first-clip protocol (compared
    with 4.22), real data in the seeded single-clip protocol (other protocol), a twin (never compared)."""
    tmp = tmp_path_factory.mktemp("published_page")
    root, truth, y = echo_test_set(twin80, tmp / "echo")
    rng = np.random.default_rng(1)
    runs = tmp / "runs"
    for name, mode, twin in (("real_first", "first_clip", False), ("real_single", "single_clip", False),
                             ("twin_first", "first_clip", True)):
        make_run(runs / name, "echonet_ef", R2P1D, ef_predictions(truth, y + rng.normal(0, 4, len(y)), mode), root,
                 in_process=True, is_twin=twin)
    site = tmp / "site"
    cli("report", str(runs), "--out", str(site), check=True)
    records = {r["run"].split("/")[-1]: r for r in json.loads((site / "echonet_ef.json").read_text())}
    return records, (site / "echonet_ef.html").read_text()


def test_page_compares_like_with_like(page):
    records, text = page
    real = records["real_first"]
    assert real["published"] == 4.22 and real["delta_vs_published"] == pytest.approx(real["mae"] - 4.22)
    assert "Ouyang" in real["published_source"] and real["published_where"]
    assert records["real_single"]["published"] is None
    assert "other protocol" in records["real_single"]["published_not_compared"]
    assert records["twin_first"]["published"] is None
    assert "synthetic twin" in records["twin_first"]["published_not_compared"]


def test_page_numbers_references_once_and_gives_reasons(page):
    _, text = page
    refs = re.findall(r'<li id="ref(\d+)" value="\d+" class="citation">', text)
    assert refs and len(refs) == len(set(refs))  # each source once
    body = html.unescape(re.sub(r"<[^>]+>", " ", text))
    assert "(None)" not in body and "n not reported" in body
    assert "no: other protocol (full_video)" in body and "no: projection, not measured" in body
    assert "R's summary(lm(EF ~ EF_pred))$r.squared" in body  # r2_lm's definition is on the page


def test_family_readmes_show_the_published_file():
    """Each family README's published-numbers table is generated from the file; regenerate it with
    `python -m cardiobench.published` after editing leaderboards/published.yaml."""
    from cardiobench import families

    for fam in families.families():
        now, want = published.readme_section(fam.folder / "README.md", list(fam.specs()))
        assert now == want, f"{fam.folder / 'README.md'}: run python -m cardiobench.published"
