"""I3D inflation (Merlin's scheme), the i3resnet multitask model and loading Merlin checkpoints."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from torchvision.models import resnet as tvr

from cardiobench.errors import CardiobenchError
from cardiobench.models import build
from cardiobench.models.i3resnet import MERLIN_PREFIX, load_merlin, merlin_key
from cardiobench.models.inflate import inflate_conv, inflate_resnet


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: these models are small, and on a busy 2-core machine a second thread costs more
    in synchronisation than it gains (0.7 s instead of 0.02 s per tiny forward)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny2d(block=tvr.BasicBlock, seed: int = 0) -> tvr.ResNet:
    """A random [1, 1, 1, 1] ResNet in eval mode, BatchNorm statistics and affines randomised too."""
    torch.manual_seed(seed)
    net = tvr.ResNet(block, [1, 1, 1, 1])
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    net.fc = nn.Identity()
    return net.eval()


def _stack(img: torch.Tensor, depth: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, D, H, W] with every slice equal to the image."""
    return img.unsqueeze(2).expand(-1, -1, depth, -1, -1).contiguous()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


# --- (a) inflation equivalence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("block,depth", [(tvr.BasicBlock, 16), (tvr.BasicBlock, 5), (tvr.Bottleneck, 8)])
def test_center_inflation_reproduces_the_2d_network_on_a_constant_volume(block, depth):
    # With the 2D kernel in the centre time slice and zeros elsewhere, each output slice sees only its own
    # input slice, and the zero time padding meets zero weights: exact at every time position, for any D.
    net2d = _tiny2d(block)
    net3d = inflate_resnet(copy.deepcopy(net2d), scheme="center").eval()
    img = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        f2, f3 = net2d(img), net3d(_stack(img, depth))
        # Every time position of an intermediate map too (stem + pool + layer1: time 16 -> 8 or 5 -> 3).
        m2 = net2d.layer1(net2d.maxpool(net2d.relu(net2d.bn1(net2d.conv1(img)))))
        m3 = net3d.layer1(net3d.maxpool(net3d.relu(net3d.bn1(net3d.conv1(_stack(img, depth))))))
    assert f3.shape == f2.shape == (2, 512 * block.expansion)
    assert _rel(f3, f2) < 1e-5
    torch.testing.assert_close(f3, f2, rtol=1e-4, atol=1e-5)
    assert m3.shape[2] == (depth - 1) // 2 + 1  # Merlin's max-pool halves time; the stem does not
    for t in range(m3.shape[2]):
        torch.testing.assert_close(m3[:, :, t], m2, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("depth", [16, 5])
def test_mean_inflation_is_exact_with_replicate_time_padding(depth):
    # Repeating the kernel over 3 slices and dividing by 3 gives W*x on identical slices, provided the
    # padded slices are copies of the border ones as well ("padding should be by continuity", I3D/Merlin).
    net2d = _tiny2d()
    net3d = inflate_resnet(copy.deepcopy(net2d), scheme="mean", time_padding_mode="replicate").eval()
    img = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        f2, f3 = net2d(img), net3d(_stack(img, depth))
    assert _rel(f3, f2) < 1e-5
    torch.testing.assert_close(f3, f2, rtol=1e-4, atol=1e-5)


def test_mean_inflation_with_zero_time_padding_is_exact_away_from_the_borders_only():
    # Zero padding loses one third of the border slices' input: the stem output is exact at time
    # positions 1..D-2 and wrong at 0 and D-1, and the error reaches the pooled feature.
    net2d = _tiny2d()
    net3d = inflate_resnet(copy.deepcopy(net2d), scheme="mean").eval()
    img, depth = torch.randn(2, 3, 32, 32), 8
    with torch.no_grad():
        s2 = net2d.relu(net2d.bn1(net2d.conv1(img)))
        s3 = net3d.relu(net3d.bn1(net3d.conv1(_stack(img, depth))))
        conv2, conv3 = net2d.conv1(img), net3d.conv1(_stack(img, depth))
        f2, f3 = net2d(img), net3d(_stack(img, depth))
    for t in range(1, depth - 1):
        torch.testing.assert_close(s3[:, :, t], s2, rtol=1e-4, atol=1e-5)
    for t in (0, depth - 1):  # the borders see exactly 2/3 of the 2D response (no bias in ResNet convs)
        torch.testing.assert_close(conv3[:, :, t], conv2 * (2 / 3), rtol=1e-4, atol=1e-5)
    assert _rel(f3, f2) > 1e-3


def test_inflate_conv_kernels_and_merlin_shapes():
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=True)
    c = inflate_conv(conv, time_dim=3, time_stride=2, scheme="center")
    assert c.kernel_size == (3, 3, 3) and c.stride == (2, 2, 2) and c.padding == (1, 1, 1)
    assert torch.equal(c.weight[:, :, 1], conv.weight) and not c.weight[:, :, [0, 2]].any()
    assert torch.equal(c.bias, conv.bias)
    m = inflate_conv(conv, time_dim=3, scheme="mean")
    torch.testing.assert_close(m.weight.sum(2), conv.weight)
    with pytest.raises(CardiobenchError, match="scheme"):
        inflate_conv(conv, scheme="tile")
    # The ResNet-152 layout of Merlin's i3res.py (checked on the tiny bottleneck net, same block types).
    net = inflate_resnet(_tiny2d(tvr.Bottleneck))
    assert (net.conv1.kernel_size, net.conv1.stride, net.conv1.padding) == ((3, 7, 7), (1, 2, 2), (1, 3, 3))
    assert (net.maxpool.kernel_size, net.maxpool.stride, net.maxpool.padding) == ((3, 3, 3), (2, 2, 2), (1, 1, 1))
    b1, b2 = net.layer1[0], net.layer2[0]
    assert b1.conv1.kernel_size == b1.conv3.kernel_size == (1, 1, 1) and b1.conv2.kernel_size == (3, 3, 3)
    assert b1.conv2.stride == (1, 1, 1) and b2.conv2.stride == (2, 2, 2) and b2.downsample[0].stride == (2, 2, 2)
    assert isinstance(net.bn1, nn.BatchNorm3d) and isinstance(net.avgpool, nn.AdaptiveAvgPool3d)


# --- (b) Merlin checkpoints ------------------------------------------------------------------------------------


def _merlin_like_state(model) -> dict[str, torch.Tensor]:
    """``model``'s trunk under Merlin's CLIP names, plus its other components, as Merlin saves them (raw)."""
    state = {MERLIN_PREFIX + k.removeprefix("backbone."): v.clone()
             for k, v in model.state_dict().items() if k.startswith("backbone.")}
    state.update({
        MERLIN_PREFIX + "classifier.weight": torch.randn(6, 2048, 1, 1, 1),
        MERLIN_PREFIX + "classifier.bias": torch.randn(6),
        MERLIN_PREFIX + "contrastive_head.weight": torch.randn(16, 2048, 1, 1, 1),
        MERLIN_PREFIX + "contrastive_head.bias": torch.randn(16),
        "encode_text.text_encoder.embeddings.word_embeddings.weight": torch.randn(10, 8),
        "encode_text.linear_layer.weight": torch.randn(4, 8),
        "encode_text.linear_layer.bias": torch.randn(4),
        "logit_scale": torch.tensor(1.0),
    })
    return state


@pytest.fixture(scope="module")
def merlin_ckpt(tmp_path_factory):
    torch.manual_seed(1)
    src = build("i3resnet", arch="resnet50", layers=[1, 1, 1, 1])
    with torch.no_grad():
        for m in src.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(123)
    state = _merlin_like_state(src)
    path = tmp_path_factory.mktemp("merlin") / "i3_resnet_clinical_longformer_best_clip_test.pt"
    torch.save(state, path)  # Merlin: torch.save(model.state_dict()), loaded by model.load_state_dict(torch.load())
    return path, state


def test_merlin_checkpoint_loads_every_trunk_tensor_and_reports_the_rest(merlin_ckpt):
    path, state = merlin_ckpt
    torch.manual_seed(2)
    model = build("i3resnet", arch="resnet50", layers=[1, 1, 1, 1])
    head_before = copy.deepcopy(model.head.state_dict())
    with pytest.raises(CardiobenchError, match="missing from the file .in head; head.weight"):
        load_merlin(model, path)  # strict: Merlin has no head of ours, so a recipe must say it trains one fresh
    report = load_merlin(model, path, fresh=["head"])
    trunk = [k for k in model.state_dict() if k.startswith("backbone.")]
    assert report.missing == report.unexpected == report.mismatched == []
    assert sorted(report.matched) == sorted(trunk) and sorted(report.fresh) == ["head.bias", "head.weight"]
    assert sorted(report.ignored) == sorted(k for k in state if "classifier" in k or "contrastive_head" in k
                                            or not k.startswith(MERLIN_PREFIX))
    ours = model.state_dict()
    for k in trunk:
        assert torch.equal(ours[k], state[MERLIN_PREFIX + k.removeprefix("backbone.")]), k
    for k, v in head_before.items():
        assert torch.equal(model.head.state_dict()[k], v)
    # The same through the builder, which keeps the report.
    built = build("i3resnet", arch="resnet50", layers=[1, 1, 1, 1], weights=str(path), fresh=["head"])
    assert len(built.weights_report.matched) == len(trunk) and built.weights_report.missing == []
    assert torch.equal(built.backbone.layer4[0].conv2.weight, state[MERLIN_PREFIX + "layer4.0.conv2.weight"])


def test_merlin_key_layouts():
    assert merlin_key(MERLIN_PREFIX + "layer1.0.conv1.weight") == "backbone.layer1.0.conv1.weight"
    assert merlin_key("module." + MERLIN_PREFIX + "bn1.running_mean") == "backbone.bn1.running_mean"
    assert merlin_key("encode_image.vision_model.features.4.0.conv1.weight") == "backbone.layer1.0.conv1.weight"
    assert merlin_key("encode_image.vision_model.features.1.weight") == "backbone.bn1.weight"
    assert merlin_key("layer2.0.downsample.0.weight") == "backbone.layer2.0.downsample.0.weight"  # bare trunk
    assert merlin_key("head.bias") == "head.bias" and merlin_key("encode_text.linear_layer.weight").startswith("encode")


def test_wrong_weight_files_name_the_file(tmp_path):
    model = build("i3resnet", arch="resnet18", layers=[1, 1, 1, 1])
    text = tmp_path / "not_a_checkpoint.pt"
    text.write_text("hello")
    with pytest.raises(CardiobenchError, match="not_a_checkpoint.pt"):
        load_merlin(model, text)
    with pytest.raises(CardiobenchError, match="absent.pt.*not found"):
        load_merlin(model, tmp_path / "absent.pt")
    other = tmp_path / "other_model.pt"
    torch.save({"encoder.conv.weight": torch.zeros(3), "encode_text.x": torch.zeros(1)}, other)
    with pytest.raises(CardiobenchError, match="other_model.pt: no image-encoder weights"):
        load_merlin(model, other)


# --- (c) forward, checkpointing; (d) one channel -----------------------------------------------------------------


def _tiny_model(seed: int = 0, **kw):
    torch.manual_seed(seed)
    return build("i3resnet", arch="resnet18", layers=[1, 1, 1, 1], **kw)


def test_forward_shapes_and_features():
    model = _tiny_model(head_bias={"lvef": 55.0}).eval()
    x = torch.randn(2, 1, 16, 32, 32)
    with torch.no_grad():
        out, feats = model(x), model.features(x)
    assert set(out) == {"lvef", "as_logit"}
    assert out["lvef"].shape == out["as_logit"].shape == (2,)
    assert feats.shape == (2, 512) and model.head.bias[0].item() == 55.0
    with pytest.raises(ValueError, match="input channels"):
        model(torch.randn(2, 2, 16, 32, 32))


def test_gradient_checkpointing_matches_the_plain_path_and_updates_bn_stats_once():
    x, target = torch.randn(2, 1, 16, 32, 32), torch.tensor([50.0, 60.0])
    results = {}
    for ckpt in (True, False):
        model = _tiny_model(checkpointing=ckpt).train()
        calls = [0]
        model.backbone.layer1.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        out = model(x)
        loss = ((out["lvef"] - target) ** 2).mean() + out["as_logit"].sum()
        loss.backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters()}
        assert all(g is not None for g in grads.values())
        bn = model.backbone.layer2[0].bn2
        results[ckpt] = (grads, bn.running_mean.clone(), bn.num_batches_tracked.item(), calls[0])
    (g1, rm1, n1, c1), (g0, rm0, n0, c0) = results[True], results[False]
    assert (c1, c0) == (2, 1)  # the checkpointed stage was recomputed in backward
    assert n1 == n0 == 1
    torch.testing.assert_close(rm1, rm0)
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-4, atol=1e-6)


def test_one_channel_input_equals_three_repeated_channels():
    model = _tiny_model().eval()
    x = torch.randn(2, 1, 16, 32, 32)
    with torch.no_grad():
        a, b = model(x), model(x.repeat(1, 3, 1, 1, 1))
    for k in a:
        assert torch.equal(a[k], b[k])
