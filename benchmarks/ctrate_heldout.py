"""How well does a finished ctrate_zeroshot run generalise beyond its 42-volume TEST split?

Zero-shot AUROCs of the run's last checkpoint on its own TEST and on every volume of a held-out twin (another
seed, default 400 volumes, so about 10x the TEST patients), both prompt families, and a linear probe
(logistic regression on the TRAIN embeddings of the label's organ) as the ceiling of what the embedding
holds. Not a pytest benchmark: the probe behind the held-out numbers in docs/results/ctrate_zeroshot.md. Run it with the cache the
run used::

    python benchmarks/ctrate_heldout.py RUN_DIR [--n 400] [--seed 1]

Writing the held-out twin and its cache takes about 2 minutes on 2 cores the first time.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from cardiobench import tasks
from cardiobench.app import resolve_source
from cardiobench.runs import Run
from cardiobench.tasks.ctrate import format as ct_rate
from cardiobench.tasks.ctrate import zero_shot
from cardiobench.tasks.ctrate.ctrate_zeroshot import SLUGS


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def _labels(data, split: str) -> np.ndarray:
    return data.prepared.samples.iloc[data.prepared.split[split]][SLUGS].to_numpy().astype(int)


def _pick(emb: tuple, label: str, organs) -> torch.Tensor:
    """The embedding zero-shot scores ``label`` on: its organ's where present, else the whole image's."""
    src = zero_shot.label_source(label, organs)
    if src == zero_shot.GLOBAL:
        return emb[2]
    k = organs.index(src)
    return torch.where(emb[1][:, k:k + 1], emb[0][:, k], emb[2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--n", type=int, default=400, help="volumes of the held-out twin (default 400)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the held-out twin (default 1; runs use 0)")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    torch.set_num_threads(2)
    cfg = OmegaConf.load(f"{args.run_dir}/config.yaml")
    cfg.progress = False
    task = tasks.get("ctrate_zeroshot")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(f"{args.run_dir}/tokenizer", Path(tmp) / "tokenizer")  # the run's vocabulary, reused
        data = task.datasets(cfg, Run(Path(tmp)), resolve_source(cfg))
        model = task.build_model(cfg, data)
        state = torch.load(f"{args.run_dir}/checkpoints/last.pt", map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        model.eval()
        held_cfg = cfg.copy()
        held_cfg.data.twin.seed, held_cfg.data.twin.n = args.seed, args.n
        held = task.datasets(held_cfg, Run(Path(tmp)), resolve_source(held_cfg))
    organs, tokenizer = data.extras.groups.organs, data.extras.tokenizer
    temperature = float(model.criterion.temperature().detach())

    def embed(ds):
        return task._image_embeddings(model, ds, data.collate, "cpu", 16, False)

    train, test = embed(data.train), embed(data.extras.test)
    parts = [embed(held.train), embed(held.val), embed(held.extras.test)]
    held_emb = tuple(torch.cat([p[i] for p in parts]) for i in range(3))
    y_train, y_test = _labels(data, "TRAIN"), _labels(data, "TEST")
    y_held = np.concatenate([_labels(held, s) for s in ("TRAIN", "VAL", "TEST")])
    prompts = {f: task._prompt_embeddings(model, tokenizer, f, {}, int(cfg.text.max_length), "cpu")
               for f in zero_shot.PROMPTS}
    rows = []
    for j, label in enumerate(ct_rate.LABELS):
        row = {"label": label, "positives_held": int(y_held[:, j].sum())}
        for name, emb, y in (("test", test, y_test), ("held", held_emb, y_held)):
            p = zero_shot.pair_probability(_pick(emb, label, organs), *prompts["fvlm"][label], temperature)
            row[f"zero_shot_{name}"] = _auc(y[:, j], p.numpy())
        p = zero_shot.pair_probability(_pick(held_emb, label, organs), *prompts["ctclip"][label], temperature)
        row["ctclip_prompts_held"] = _auc(y_held[:, j], p.numpy())
        probe = LogisticRegression(C=1.0, max_iter=3000).fit(_pick(train, label, organs).numpy(), y_train[:, j])
        row["probe_held"] = _auc(y_held[:, j], probe.decision_function(_pick(held_emb, label, organs).numpy()))
        rows.append(row)
    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 200):
        print(df.round(3).to_string(index=False))
    print("macro (labels with both classes):")
    print(df.drop(columns=["label", "positives_held"]).mean().round(3).to_string())
    print(f"held-out volumes: {len(y_held)} (twin seed {args.seed}); TEST volumes: {len(y_test)}")


if __name__ == "__main__":
    main()
