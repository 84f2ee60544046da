"""MedVAE-style 3D KL autoencoder and the multitask SE-ResNet on its latents (tiny CPU configs)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cardiobench.errors import CardiobenchError
from cardiobench.models import build
from cardiobench.tasks.chest_ct.medvae import kl_divergence, posterior_mean, vae_loss

TINY_AE = dict(channels=(8, 16, 16), num_res_blocks=1)
TINY_SE = dict(layers=(1, 1, 1, 1), width=8)


def _blobs(size: int = 16, sigma: float = 0.5) -> torch.Tensor:
    """Two smooth Gaussian blobs at different places, (2, 1, size, size, size), values in (0, 1]."""
    g = torch.linspace(-1, 1, size)
    zz, yy, xx = torch.meshgrid(g, g, g, indexing="ij")
    vols = [torch.exp(-((zz - a) ** 2 + (yy - b) ** 2 + (xx - c) ** 2) / (2 * sigma ** 2))
            for a, b, c in ((-0.3, 0.25, 0.1), (0.35, -0.25, -0.3))]
    return torch.stack(vols)[:, None]


@pytest.mark.parametrize("downsample, channels", [(4, (8, 16, 16)), (8, (8, 16, 16, 16))])
def test_autoencoder_latent_and_reconstruction_shapes(downsample, channels):
    torch.manual_seed(0)
    ae = build("medvae_autoencoder", downsample=downsample, channels=channels, num_res_blocks=1)
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        z = posterior_mean(ae, x)
        reconstruction, z_mu, z_sigma = ae(x)
    n = 32 // downsample
    assert z.shape == z_mu.shape == z_sigma.shape == (1, 1, n, n, n)
    assert reconstruction.shape == x.shape
    assert ae.downsample_factor == downsample


def test_bad_configs_and_volumes_are_refused():
    with pytest.raises(CardiobenchError, match="power of two"):
        build("medvae_autoencoder", downsample=3, channels=(8, 16))
    with pytest.raises(CardiobenchError, match="needs 3 channel widths"):
        build("medvae_autoencoder", downsample=4, channels=(8, 16))
    ae = build("medvae_autoencoder", **TINY_AE)
    with pytest.raises(CardiobenchError, match="multiples of 4"):
        posterior_mean(ae, torch.zeros(1, 1, 30, 32, 32))


def test_posterior_mean_is_deterministic_a_sample_is_not(tmp_path):
    torch.manual_seed(0)
    ae = build("medvae_autoencoder", **TINY_AE)
    x = _blobs()
    with torch.no_grad():
        a, b = posterior_mean(ae, x), posterior_mean(ae, x)
        z_mu, z_sigma = ae.encode(x)
        sample = ae.sampling(z_mu, z_sigma)
    assert torch.equal(a, b) and torch.equal(a, z_mu)
    assert (sample - a).abs().mean() > 0.1 * z_sigma.mean()
    # Local weights: the same latents from a rebuilt module.
    torch.save(ae.state_dict(), tmp_path / "ae.pt")
    again = build("medvae_autoencoder", weights=str(tmp_path / "ae.pt"), **TINY_AE)
    with torch.no_grad():
        assert torch.equal(posterior_mean(again, x), a)


def test_kl_term():
    zero, one = torch.zeros(2, 1, 2, 2, 2), torch.ones(2, 1, 2, 2, 2)
    assert kl_divergence(zero, one).item() == 0.0
    assert kl_divergence(one, one).item() == pytest.approx(0.5 * 8)  # 0.5 mu^2 per element, 8 elements
    sigma = torch.full_like(one, 0.5)  # 0.5 (s^2 - log s^2 - 1) per element
    assert kl_divergence(zero, sigma).item() == pytest.approx(8 * 0.5 * (0.25 - math.log(0.25) - 1))


def test_a_few_steps_of_vae_loss_reduce_reconstruction_error():
    torch.manual_seed(0)
    ae = build("medvae_autoencoder", channels=(4, 8, 8), num_res_blocks=1)  # narrower still: 20 steps in ~3 s
    x = _blobs()

    def l1_of_mean() -> float:
        with torch.no_grad():
            return F.l1_loss(ae.decode(posterior_mean(ae, x)), x).item()

    # What the best constant per volume (its median) would score: reconstruction must beat it clearly.
    constant = (x - x.flatten(1).median(dim=1).values.view(-1, 1, 1, 1, 1)).abs().mean().item()
    before = l1_of_mean()
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    for _ in range(20):
        loss, parts = vae_loss(ae, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = l1_of_mean()
    assert set(parts) == {"recon", "kl", "loss"}
    assert parts["loss"] == pytest.approx(parts["recon"] + 1e-6 * parts["kl"], rel=1e-5)
    assert after < 0.25 * before and after < 0.6 * constant, (before, after, constant)


def test_latent_seresnet_heads_features_and_backward():
    torch.manual_seed(0)
    model = build("latent_seresnet", output_bias={"lvef": 55.0}, **TINY_SE)
    z = torch.randn(2, 1, 8, 8, 8)  # a latent of a 32^3 volume at 4x
    out = model(z)
    assert list(out) == ["lvef", "as_logit"]
    assert all(v.shape == (2,) for v in out.values())
    assert model.features(z).shape == (2, 8 * 8 * 4)  # last-stage planes (8 x width) x bottleneck expansion 4
    (F.mse_loss(out["lvef"], torch.tensor([40.0, 60.0]))
     + F.binary_cross_entropy_with_logits(out["as_logit"], torch.tensor([0.0, 1.0]))).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        first, second = model(z), model(z)
    assert torch.equal(first["lvef"], second["lvef"])
    assert abs(first["lvef"].mean().item() - 55.0) < 20.0
    single = build("latent_seresnet", heads=("lvef",), **TINY_SE)
    assert list(single(z)) == ["lvef"]
    with pytest.raises(CardiobenchError, match="unknown head"):
        build("latent_seresnet", output_bias={"ef": 1.0}, **TINY_SE)


def test_full_size_medvae_4_1_3d_builds():
    from monai.networks.blocks import SpatialAttentionBlock

    ae = build("medvae_autoencoder")  # MedVAE medvae_4_1_3d: 128/256/512, 2 res blocks, mid attention only
    n = sum(p.numel() for p in ae.parameters())
    print(f"medvae_autoencoder() (medvae_4_1_3d): {n:,} parameters")
    assert ae.downsample_factor == 4 and ae.quant_conv_mu.out_channels == 1
    assert n == 142_291_848  # MONAI 1.6 AutoencoderKL in this layout (MedVAE's own, with LDM's decoder, differs)
    attn = [m for m in ae.modules() if isinstance(m, SpatialAttentionBlock)]
    assert len(attn) == 2 and all(a.norm.num_channels == 512 for a in attn)
    assert {m.num_groups for m in ae.modules() if isinstance(m, torch.nn.GroupNorm)} == {32}
