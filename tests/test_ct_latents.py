"""The MedVAE-latent baseline's stage 1 (issue 14): cached posterior means, keyed by the autoencoder's
weights; and the chest-CT training augmentation (seeded per item and epoch)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from cardiobench.models import build
from cardiobench.tasks.chest_ct import latents as ct_latents
from cardiobench.tasks.chest_ct.medvae import posterior_mean
from cardiobench.tasks.chest_ct.volumes import VolumeDataset, volume_augmentation

AE = dict(downsample=4, latent_channels=1, channels=[4, 8, 8], num_res_blocks=1, attention=False,
          mid_attention=False, checkpointing=False, weights=None)


def _cfg(cache):
    return OmegaConf.create(dict(image=dict(spacing=[6.0, 6.0, 8.0], shape=[16, 16, 8]), autoencoder=dict(model=AE),
                                 data=dict(cache_dir=str(cache), decoded_cache=True), progress=False))


@pytest.fixture()
def volumes(tmp_path):
    rng = np.random.default_rng(0)
    vols = [rng.random((16, 16, 8)).astype(np.float16) for _ in range(3)]
    paths = []
    for i in range(3):  # the cache keys entries by their source file's signature
        p = tmp_path / f"v{i}.nii"
        p.write_bytes(b"x" * (10 + i))
        paths.append(str(p))
    return vols, paths


def test_latents_are_posterior_means_cached_and_keyed_by_weights(tmp_path, volumes, monkeypatch):
    vols, paths = volumes
    torch.manual_seed(0)
    ae = build("medvae_autoencoder", **AE).eval()
    cfg = _cfg(tmp_path / "cache")
    z = ct_latents.latents(cfg, ae, ["a", "b", "c"], paths, vols, "cpu")
    with torch.no_grad():  # depth first: (X, Y, Z) -> (Z, X, Y), as the image network sees it
        want = posterior_mean(ae, torch.from_numpy(vols[1].astype(np.float32)).permute(2, 0, 1)[None, None])[0]
    assert z[1].shape == (1, 2, 4, 4)
    np.testing.assert_allclose(z[1], want.numpy(), rtol=1e-5, atol=1e-6)

    calls = {"n": 0}
    real = ct_latents.posterior_mean

    def counting(model, x):
        calls["n"] += 1
        return real(model, x)

    monkeypatch.setattr(ct_latents, "posterior_mean", counting)
    again = ct_latents.latents(cfg, ae, ["a", "b", "c"], paths, vols, "cpu")
    assert calls["n"] == 0 and all(np.array_equal(u, v) for u, v in zip(z, again))  # read from the cache
    with torch.no_grad():  # another autoencoder (its weights changed): every latent is encoded again
        next(ae.parameters()).add_(0.01)
    other = ct_latents.latents(cfg, ae, ["a", "b", "c"], paths, vols, "cpu")
    assert calls["n"] == 3 and not np.array_equal(other[0], z[0])


def test_weights_fingerprint_sees_every_tensor():
    torch.manual_seed(0)
    ae = build("medvae_autoencoder", **AE)
    f = ct_latents.weights_fingerprint(ae)
    assert f == ct_latents.weights_fingerprint(ae)
    buffers = [b for b in ae.state_dict().values()]
    buffers[-1].view(-1)[0] += 1e-3
    assert ct_latents.weights_fingerprint(ae) != f


def test_augmentation_is_seeded_per_item_and_epoch():
    rng = np.random.default_rng(1)
    vols = [rng.random((12, 12, 8)).astype(np.float16) for _ in range(2)]
    aug = volume_augmentation(shift=[1, 2, 2], rotate_deg=5.0, intensity_scale=0.05, intensity_shift=0.01)
    ds = VolumeDataset(vols, {"y": [0.0, 1.0]}, seed=3, augment=aug)
    ds.set_epoch(0)
    a, b = ds[0]["x"], ds[0]["x"]
    assert torch.equal(a, b) and a.shape == (1, 8, 12, 12)
    plain = VolumeDataset(vols, {"y": [0.0, 1.0]})[0]["x"]
    assert not torch.allclose(a, plain)
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["x"], a)
    assert volume_augmentation(shift=[0, 0, 0]) is None


def test_shift_moves_whole_voxels_and_keeps_the_size():
    x = torch.zeros(1, 6, 8, 8)
    x[0, 3, 4, 4] = 1.0
    shift = volume_augmentation(shift=[1, 2, 2])
    moved = set()
    for seed in range(40):
        shift.set_random_state(seed=seed)
        y = shift(x)
        assert y.shape == x.shape and float(y.sum()) == 1.0  # no interpolation: the voxel moves intact
        moved.add(tuple(torch.nonzero(y)[0, 1:].tolist()))
    assert all(abs(z - 3) <= 1 and abs(i - 4) <= 2 and abs(j - 4) <= 2 for z, i, j in moved) and len(moved) > 5


def test_medvae_latent_baseline_runs_both_stages(tmp_path, cache_dir):
    """The tiny profile end to end: stage 1 trained and logged, latents cached, stage 2 predicts every
    TEST patient; a second run on the same cache encodes nothing again."""
    import pandas as pd

    from .conftest import cli

    common = ["--task", "ct_cardiac", "--baseline", "ct_medvae_latent", "--profile", "tiny", "progress=false",
              "report=false", f"runs_root={tmp_path / 'runs'}"]
    cli("run", "--run-dir", str(tmp_path / "a"), *common, cache=cache_dir, check=True)
    a = tmp_path / "a"
    history = pd.read_csv(a / "autoencoder_history.csv")
    assert len(history) >= 1 and history.train_loss.notna().all()
    assert (a / "checkpoints" / "autoencoder" / "last.pt").is_file()
    pred = pd.read_csv(a / "predictions.csv")
    split = pd.read_csv(a / "split.csv")
    assert sorted(pred.sample_id) == sorted(split.sample_id[split.split == "TEST"])
    assert pred.as_prob.between(0, 1).all() and pred.lvef_pred.notna().all()
    log = (a / "log.txt").read_text()
    assert "stage 2 input" in log and "posterior means" in log
    latent_index = list((cache_dir / "arrays").glob(f"{ct_latents.LATENT_FORMAT}-*/index.json"))
    assert len(latent_index) == 1
    before = latent_index[0].stat().st_mtime_ns
    cli("run", "--run-dir", str(tmp_path / "b"), *common, cache=cache_dir, check=True)
    assert latent_index[0].stat().st_mtime_ns == before  # same autoencoder weights: the cached latents are reused
    assert pd.read_csv(tmp_path / "b" / "predictions.csv").equals(pred)
