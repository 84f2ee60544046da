"""The layout's promises: one folder per dataset family, registries that refuse a repeated name, generic
code that knows no family, and a new family (a task and a model) added by writing only its own folders."""
from __future__ import annotations

import ast
import filecmp
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from cardiobench import families
from cardiobench.errors import CardiobenchError
from cardiobench.registry import DuplicateName, Registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cardiobench"
FAMILIES = {"acdc", "chest_ct", "ctrate", "echonet"}


def test_each_family_declares_modules_that_exist_and_its_specs():
    found = {f.name: f for f in families.families()}
    assert set(found) == FAMILIES
    for fam in found.values():
        for kind in ("formats", "tasks", "models", "losses", "metrics", "figures"):
            for name, module in getattr(fam, kind).items():
                path = ROOT / (module.replace(".", "/") + ".py")
                assert path.is_file(), f"{fam.name}: {kind} {name!r} names {module}, which does not exist"
        assert set(fam.tasks) == set(fam.specs()), f"{fam.name}: every task has its spec beside it"
        assert (fam.folder / "README.md").is_file()
    from cardiobench.config import task_files

    assert {n for n, p in task_files().items() if p.is_relative_to(PACKAGE)} == set(families.spec_files())


def _func():
    return 1


def _other():
    return 2


def test_a_registry_refuses_a_repeated_name_naming_both_origins():
    reg: Registry = Registry("widget")
    reg.register("w", _func)
    reg.register("w", _func)  # the same definition again (a module imported twice): accepted
    with pytest.raises(DuplicateName) as err:
        reg.register("w", _other)
    message = str(err.value)
    assert "widget 'w' is defined twice" in message
    assert "test_families._func" in message and "test_families._other" in message and __file__ in message


def test_a_model_name_taken_by_a_builtin_is_refused():
    from cardiobench.models.registry import register

    with pytest.raises(CardiobenchError, match=r"model 'monai_unet' is defined twice: by cardiobench\.models\.unet"):
        @register("monai_unet")
        def impostor(**kwargs):  # pragma: no cover - never built
            raise AssertionError


def test_every_kind_of_registry_refuses_repeats():
    """Formats, tasks, models, metrics, losses and figure kinds: one Registry class, each refusing."""
    from cardiobench.registries import REGISTRIES, registry

    names = {"format": "acdc", "task": "acdc_seg", "model": "monai_unet", "metric": "mae", "loss": "mse",
             "figure kind": "roc"}
    assert set(names) == set(REGISTRIES)
    for kind, name in names.items():
        reg = registry(kind)
        assert isinstance(reg, Registry) and kind.split()[0] in reg.kind and reg.find(name) is not None
        with pytest.raises(DuplicateName, match="defined twice"):
            reg.register(name, _other)


def _imports(path: Path) -> list[str]:
    """Absolute names of the cardiobench modules ``path`` imports (relative ones resolved)."""
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            out += [module] + [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return [m for m in out if m.startswith("cardiobench")]


def test_generic_modules_import_no_family():
    """cache, source, evaluation, report, stats, train, runs, config...: no import of a family's module
    (the registries import a family's modules by the names it declares, at run time)."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if parts[0] == "tasks" and len(parts) > 2:
            continue  # a family's own folder
        for module in _imports(path):
            if any(module.startswith(f"cardiobench.tasks.{f}") for f in FAMILIES):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not offenders, "\n".join(offenders)


TOY_INIT = '''
"""A toy family (tests only): reduced EF from EchoNet-Dynamic clips, with a model of its own."""

FORMATS: dict[str, str] = {}
TASKS = {"toy_lowef": "toy_lowef"}
MODELS = {"toy_clipnet": "toy_clipnet"}
LOSSES: dict[str, str] = {}
METRICS: dict[str, str] = {}
FIGURES: dict[str, str] = {}
'''

TOY_SPEC = '''
name: toy_lowef
version: 1
format: echonet_dynamic
description: Reduced ejection fraction (EF < 50 %) from one echo clip (a family added by a test).
split: TEST
samples: videos
targets:
  EF: {kind: binary, prediction: p_low_ef, description: "EF < 50 % is the positive class"}
main_score: auc
reference_baseline: toy_lowef_tiny
tolerance: 0.05
metrics:
  auc: {fn: auc, args: {label: EF, below: 50, score: p_low_ef}, direction: higher, test: paired DeLong,
        headline: true, definition: "AUC of p_low_ef for true EF < 50 % (DeLong CI)"}
artifacts: [history.csv, split.csv]
config_defaults:
  clip: {frames: 8, period: 8, size: 24}
'''

TOY_TASK = '''
"""The toy task: EchoNet clips labelled EF < 50 %, a logit per clip, its sigmoid as p_low_ef."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ...train import predict, train_config
from ..base import Task, TaskData, register_task
from ..echonet.clips import EchoClips, intensity_stats
from ..echonet.data import prepare_echo


@register_task("toy_lowef")
class ToyLowEF(Task):
    def datasets(self, cfg, run, source):
        _, prepared = prepare_echo(cfg, run, source, cfg.clip.size)
        videos, split = prepared.arrays, prepared.split
        label = (prepared.samples.EF.to_numpy() < 50).astype(np.float32)
        mean, sd = intensity_stats([videos[i] for i in split.train])

        def clips(k, seed):
            return EchoClips([videos[i] for i in split[k]], label[split[k]], cfg.clip.frames, cfg.clip.period,
                             mean, sd, seed)

        return TaskData(clips("TRAIN", cfg.seed), clips("VAL", cfg.seed + 1), prepared,
                        extras=clips("TEST", cfg.seed + 2))

    def predict(self, cfg, run, model, data, device):
        logits = predict(model, data.extras, train_config(cfg, device), desc="predict TEST")[:, 0]
        rows = data.prepared.samples.iloc[data.prepared.split.test]
        return pd.DataFrame({"sample_id": rows.FileName.to_numpy(), "patient_id": rows.FileName.to_numpy(),
                             "split": "TEST", "EF": rows.EF.to_numpy(float),
                             "p_low_ef": torch.sigmoid(torch.from_numpy(logits)).numpy().astype(float)})
'''

TOY_MODEL = '''
"""The toy family's model: a 3D convolution, global pooling and one logit."""
from __future__ import annotations

import torch.nn as nn

from ...models.registry import register


@register("toy_clipnet")
def toy_clipnet(width: int = 4, **kwargs) -> nn.Module:
    return nn.Sequential(nn.Conv3d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
                         nn.Linear(width, 1))
'''

TOY_RECIPE = '''
baseline:
  name: toy_lowef_tiny
  task: toy_lowef
  title: Toy 3D CNN reduced-EF classifier (a family added by a test)
  citation:
    text: A toy family of the cardiobench test suite; no publication.
    bibtex: "@misc{cardiobench_toy_family, title = {cardiobench test-suite toy family}, year = {2026}}"
model:
  name: toy_clipnet
  width: 4
train:
  epochs: 1
  batch_size: 4
  optimizer: adamw
  lr: 1.0e-3
  loss: bce
profiles:
  paper: {}
  smoke: {}
  tiny:
    data:
      twin: {n: 40, seed: 5}
'''


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def test_a_new_family_is_its_own_folders_and_nothing_else(tmp_path, cache_dir):
    """A copy of the project gets a toy family: cardiobench/tasks/toy/ (its task spec, task code and a
    model) and baselines/toy/ (its recipe). Nothing else is edited, yet `list` shows the task and the
    model, and a run trains that model on the task and scores it."""
    copy = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("cardiobench", "baselines", "leaderboards", "report_templates"):
        shutil.copytree(ROOT / part, copy / part, ignore=ignore)
    before = _digests(copy)
    toy, recipes = copy / "cardiobench" / "tasks" / "toy", copy / "baselines" / "toy"
    toy.mkdir()
    recipes.mkdir()
    for name, text in {"__init__.py": TOY_INIT, "toy_lowef.yaml": TOY_SPEC, "toy_lowef.py": TOY_TASK,
                       "toy_clipnet.py": TOY_MODEL}.items():
        (toy / name).write_text(textwrap.dedent(text).lstrip())
    (recipes / "toy_lowef_tiny.yaml").write_text(textwrap.dedent(TOY_RECIPE).lstrip())
    after = _digests(copy)
    changed = {k for k in before if after.get(k) != before[k]}
    added = set(after) - set(before)
    assert not changed and all(k.startswith(("cardiobench/tasks/toy/", "baselines/toy/")) for k in added)

    env = {**os.environ, "PYTHONPATH": str(copy), "CARDIOBENCH_CACHE": str(cache_dir), "CARDIOBENCH_INCLUDE": ""}
    env.pop("CARDIOBENCH_HOME", None)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cardiobench", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)

    listing = cli("list")
    assert listing.returncode == 0, listing.stderr
    assert "task toy_lowef (v1)" in listing.stdout and "baseline toy_lowef_tiny  (reference)" in listing.stdout
    assert "model toy_clipnet" in listing.stdout
    run = tmp_path / "run"
    done = cli("run", "--task", "toy_lowef", "--profile", "tiny", "--run-dir", str(run), "progress=false",
               "report=false")
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["model"] == "toy_clipnet"
    pred = pd.read_csv(run / "predictions.csv")
    assert len(pred) == 6 and pred.p_low_ef.between(0, 1).all()
    assert (run / "split.csv").is_file() and "auc" in json.loads((run / "metrics.json").read_text())
    assert filecmp.cmp(ROOT / "cardiobench" / "families.py", copy / "cardiobench" / "families.py", shallow=False)


def test_a_family_declaring_a_name_another_family_declares_is_refused(monkeypatch):
    fams = families.families()
    twin = [fams[0].__class__(**{**fams[0].__dict__, "name": "copy"}), *fams]
    monkeypatch.setattr(families, "families", lambda: tuple(twin))
    with pytest.raises(CardiobenchError, match="declared by two families"):
        families.tasks()
