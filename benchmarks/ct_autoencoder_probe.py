"""Does the valve calcium survive a ct_medvae_latent run's autoencoder?

Calcium-voxel counts of every twin volume's input and of its reconstruction, each turned into a
cross-validated AS AUROC (5-fold logistic regression over all volumes). Not a pytest benchmark: the
probe behind a number in docs/results/ct_cardiac.md. Run it with the cache the run used::

    CARDIOBENCH_CACHE=... python benchmarks/ct_autoencoder_probe.py RUN_DIR TWIN_ROOT
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from omegaconf import OmegaConf
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from cardiobench.data.cache import load_samples
from cardiobench.models import build
from cardiobench.tasks.chest_ct import format as ct_echo
from cardiobench.tasks.chest_ct.medvae import posterior_mean

HU_LEVELS = (400, 600, 800)  # valve calcium peaks >= 400 HU in the twin; contrast blood is 250-350


def calcium_features(v: np.ndarray) -> list[float]:
    """log(1 + voxels above each HU level) on the [-1000, 1000] -> [0, 1] scale, and the maximum."""
    return [float(np.log1p((v > (h + 1000) / 2000).sum())) for h in HU_LEVELS] + [float(v.max())]


def cv_auroc(features: np.ndarray, y: np.ndarray) -> float:
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    p = cross_val_predict(LogisticRegression(max_iter=1000), features, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("twin_root")
    args = ap.parse_args()
    cfg = OmegaConf.load(f"{args.run_dir}/config.yaml")
    samples, _ = ct_echo.index(args.twin_root)
    image = OmegaConf.to_container(cfg.image, resolve=True)
    arrays, _ = load_samples("ct_echo", list(samples.sample_id), list(samples.path), image,
                             lambda p: ct_echo.preprocess(p, image), cfg.data.cache_dir, workers=1, progress=False)
    ae = build("medvae_autoencoder", **OmegaConf.to_container(cfg.autoencoder.model, resolve=True))
    state = torch.load(f"{args.run_dir}/checkpoints/autoencoder/best.pt", weights_only=True)["model"]
    ae.load_state_dict(state)
    ae.eval()
    inputs, recons, l1 = [], [], []
    with torch.no_grad():
        for a in arrays:
            v = np.asarray(a["image"], dtype=np.float32)
            x = torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1)))[None, None]  # depth-first, as trained
            rec = ae.decode(posterior_mean(ae, x))[0, 0].numpy().transpose(1, 2, 0)
            inputs.append(calcium_features(v))
            recons.append(calcium_features(rec))
            l1.append(float(np.abs(rec - v).mean()))
    y = samples.aortic_stenosis.to_numpy()
    print(f"AS AUROC from calcium-voxel counts: inputs {cv_auroc(np.array(inputs), y):.3f}, "
          f"reconstructions {cv_auroc(np.array(recons), y):.3f} (n = {len(y)}); reconstruction L1 {np.mean(l1):.4f}")


if __name__ == "__main__":
    main()
