"""`model.weights=FILE` loads strictly: every tensor fits, or one line names the file and the first keys.

Tiny models from the project's own builders; nothing is downloaded. The CLI test runs the tiny
EchoNet-EF recipe with ``train.epochs=0`` (about 30 s for both runs).
"""
from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest
import torch

from cardiobench.config import compose
from cardiobench.errors import CardiobenchError
from cardiobench.models import build
from cardiobench.models.weights import load_local
from cardiobench.runs import Run

from .conftest import cli

TINY_R2P1D = dict(layers=[1, 1, 1, 1])


def _r2p1d(seed: int = 0, **kw):
    torch.manual_seed(seed)
    return build("r2plus1d_18", **TINY_R2P1D, **kw)


@pytest.fixture
def log_lines():
    """The cardiobench logger's messages (its own handler: a run may have turned propagation off)."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("cardiobench")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_half_the_keys_is_refused(tmp_path):
    state = _r2p1d().state_dict()
    path = tmp_path / "half.pt"
    torch.save(dict(list(state.items())[: len(state) // 2]), path)
    with pytest.raises(CardiobenchError) as exc:
        _r2p1d(weights=str(path))
    text = _one_line(exc)
    assert text.startswith(f"{path}: does not fit this VideoResNet:") and "missing from the file" in text
    assert "layer4" in text and "fc" in text  # the parts that are missing


def test_lightning_prefix_is_stripped_only_when_every_key_then_matches(tmp_path, log_lines):
    src = _r2p1d(1)
    state = src.state_dict()
    good = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 4, "global_step": 80}, good)
    model = _r2p1d(2, weights=str(good))
    assert torch.equal(model.fc.weight, src.fc.weight)
    assert model.weights_report.stripped == "model." and model.weights_report.ok
    assert any("prefix 'model.' (PyTorch Lightning) stripped from every key" in line for line in log_lines)

    # A Lightning module with a second submodule: stripping "model." does not make every key match.
    bad = tmp_path / "lightning_loss.ckpt"
    torch.save({"state_dict": {**{f"model.{k}": v for k, v in state.items()}, "loss_fn.pos_weight": torch.ones(1)}},
               bad)
    with pytest.raises(CardiobenchError) as exc:
        _r2p1d(weights=str(bad))
    text = _one_line(exc)
    assert text.startswith(f"{bad}:") and "not in the model" in text and "model.stem.0.weight" in text

    # Every key prefixed, but the network is another one: refused, naming what was tried.
    other = tmp_path / "lightning_other.ckpt"
    torch.manual_seed(0)
    lite = build("deeplabv3_lite", layers=[1, 1])
    torch.save({"state_dict": {f"model.{k}": v for k, v in lite.net.state_dict().items()}}, other)
    with pytest.raises(CardiobenchError, match="stripping 'model.' from every key does not make them match"):
        _r2p1d(weights=str(other))


def test_deeplab_state_given_to_r2plus1d_is_refused(tmp_path):
    torch.manual_seed(0)
    lite = build("deeplabv3_lite", layers=[1, 1])
    path = tmp_path / "deeplab.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in lite.net.state_dict().items()}}, path)
    with pytest.raises(CardiobenchError) as exc:
        _r2p1d(weights=str(path))
    text = _one_line(exc)
    assert "missing from the file" in text and "not in the model (module.backbone." in text


def test_resnet101_deeplab_given_to_the_resnet50_one_is_refused(tmp_path):
    from torchvision.models.segmentation import deeplabv3_resnet101

    torch.manual_seed(0)
    r101 = deeplabv3_resnet101(weights=None, weights_backbone=None, num_classes=1, aux_loss=False)
    path = tmp_path / "deeplabv3_resnet101.pt"
    torch.save(r101.state_dict(), path)
    del r101
    with pytest.raises(CardiobenchError) as exc:
        build("deeplabv3_resnet50", weights=str(path))
    text = _one_line(exc)
    assert "keys of the file are not in the model (backbone.layer3.6." in text  # ResNet-101's layer3 has 23 blocks


def _echonet_checkpoint(model: torch.nn.Module) -> dict:
    """A checkpoint as EchoNet-Dynamic's video.py saves it: DataParallel keys and the training state."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)
    model(torch.randn(2, 3, 8, 24, 24)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.StepLR(opt, 15)
    return {"epoch": 44, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
            "period": 2, "frames": 32, "best_loss": 22.41, "loss": 23.01, "r2": np.float64(0.79),
            "opt_dict": opt.state_dict(), "scheduler_dict": sched.state_dict()}


def test_echonet_checkpoint_loads_with_nothing_missing_or_unexpected(tmp_path, log_lines):
    src = _r2p1d(3)
    path = tmp_path / "r2plus1d_18_32_2_pretrained.pt"
    torch.save(_echonet_checkpoint(src), path)
    model = _r2p1d(4, weights=str(path))
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    r = model.weights_report
    assert (r.entry, r.stripped, r.missing, r.unexpected) == ("state_dict", "module.", [], [])
    assert set(r.other_entries) == {"epoch", "period", "frames", "best_loss", "loss", "r2", "opt_dict",
                                    "scheduler_dict"}
    assert any("0 missing, 0 unexpected" in line and str(path) in line for line in log_lines)
    assert any(line.startswith("weights per module") and "fc 2/0/0" in line for line in log_lines)


def test_a_file_saved_under_numpy_1_loads(tmp_path):
    """Files from before numpy 2 name numpy.core.multiarray.scalar; this writes one such name."""
    src = _r2p1d(5)
    scalar = (np._core if hasattr(np, "_core") else np.core).multiarray.scalar
    old = scalar.__module__
    path = tmp_path / "numpy1.pt"
    try:
        scalar.__module__ = "numpy.core.multiarray"
        torch.save({"state_dict": src.state_dict(), "r2": np.float64(0.8)}, path)
    finally:
        scalar.__module__ = old
    assert b"numpy.core.multiarray" in path.read_bytes()
    assert _r2p1d(6, weights=str(path)).weights_report.ok


_RAN: list[str] = []


def _mark() -> dict:
    _RAN.append("code from the file ran")
    return {}


class _Payload:
    def __reduce__(self):
        return (_mark, ())


def test_pickled_objects_are_refused_without_running_them(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"state_dict": _r2p1d().state_dict(), "hyper_parameters": _Payload()}, path)
    with pytest.raises(CardiobenchError) as exc:
        _r2p1d(weights=str(path))
    text = _one_line(exc)
    assert text.startswith(f"{path}: holds objects other than tensors and numbers") and "_mark" in text
    assert _RAN == []


def test_shape_mismatch_is_one_line_and_a_fresh_head_is_declared(tmp_path, log_lines):
    src = _r2p1d(7)
    path = tmp_path / "one_output.pt"
    torch.save(src.state_dict(), path)
    with pytest.raises(CardiobenchError) as exc:
        _r2p1d(weights=str(path), num_outputs=2)
    text = _one_line(exc)
    assert "fc.weight: (1, 512) in the file, (2, 512) in the model" in text
    # The recipe says the head is new: the encoder loads, the head keeps its initialisation.
    model = _r2p1d(8, weights=str(path), num_outputs=2, fresh=["fc"])
    assert torch.equal(model.layer4[0].conv1[0][0].weight, src.layer4[0].conv1[0][0].weight)
    assert sorted(model.weights_report.fresh) == ["fc.bias", "fc.weight"]
    assert any("fresh parts fc: 2 tensors left at initialisation" in line for line in log_lines)
    with pytest.raises(CardiobenchError, match="model.fresh names 'hed', which is no part of this VideoResNet"):
        _r2p1d(weights=str(path), fresh=["hed"])


def test_the_manifest_gets_the_sha256_and_the_report(tmp_path):
    from cardiobench.models.weights import recording

    src = _r2p1d(9)
    path = tmp_path / "w.pt"
    torch.save({"module." + k: v for k, v in src.state_dict().items()}, path)
    bad = tmp_path / "bad.pt"
    torch.save(dict(list(src.state_dict().items())[:5]), bad)
    run = Run(tmp_path / "run")
    run.path.mkdir()
    with recording(lambda loaded: run.update_manifest(weights=loaded)):
        load_local(_r2p1d(10), str(path))
        with pytest.raises(CardiobenchError):
            load_local(_r2p1d(10), str(bad))
    good_entry, bad_entry = run.manifest()["weights"]
    assert good_entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert good_entry["path"] == str(path.resolve()) and good_entry["status"] == "loaded"
    assert (good_entry["missing"], good_entry["unexpected"], good_entry["stripped"]) == (0, 0, "module.")
    assert good_entry["parts"]["fc"] == {"matched": 2, "missing": 0, "unexpected": 0}
    assert bad_entry["status"] == "refused" and bad_entry["missing"] > 0
    assert bad_entry["sha256"] == hashlib.sha256(bad.read_bytes()).hexdigest()


def test_the_merlin_recipe_declares_its_head_fresh():
    cfg = compose("ct_cardiac", "ct_i3resnet", "tiny", [])
    assert list(cfg.model.fresh) == ["head"]


def test_cli_refuses_a_bad_file_in_one_line_and_records_a_good_one(tmp_path, cache_dir):
    src = _r2p1d(11)  # the tiny profile's model
    state = src.state_dict()
    bad, good = tmp_path / "half.pt", tmp_path / "lightning.ckpt"
    torch.save(dict(list(state.items())[: len(state) // 2]), bad)
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 1}, good)
    common = ["run", "--task", "echonet_ef", "--profile", "tiny", "progress=false", "report=false", "train.epochs=0"]

    proc = cli(*common, "--run-dir", str(tmp_path / "bad"), f"model.weights={bad}", cache=cache_dir)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"cardiobench: error: {bad}: does not fit this VideoResNet")
    manifest = json.loads((tmp_path / "bad" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["weights"][0]["status"] == "refused"

    proc = cli(*common, "--run-dir", str(tmp_path / "good"), f"model.weights={good}", cache=cache_dir)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "good" / "manifest.json").read_text())
    (entry,) = manifest["weights"]
    assert manifest["status"] == "finished" and entry["status"] == "loaded" and entry["stripped"] == "model."
    assert entry["sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()
    log_txt = (tmp_path / "good" / "log.txt").read_text()
    assert "0 missing, 0 unexpected" in log_txt and "weights per module" in log_txt
