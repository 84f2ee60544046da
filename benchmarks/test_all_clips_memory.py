"""Peak resident memory of all-clips evaluation on a 1 000-frame video (issue 4: <= 1 GiB).

Runs in a fresh process (so nothing else counts) with the paper's clip (32 frames, period 2,
112 px) and the full r2plus1d_18, averaging every clip of the video in bounded batches, at
clip_batch 1 and 2 (the paper recipe's).
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = r"""
import json, resource, time
import numpy as np, torch
torch.set_num_threads(2)
from cardiobench.tasks.echonet.clips import EchoClips
from cardiobench.models import build
from cardiobench.models.video_resnet import channels_last
from cardiobench.tasks.echonet.inference import predict_all_clips
from cardiobench.train import TrainConfig
video = np.random.default_rng(0).integers(0, 255, (1000, 112, 112), dtype=np.uint8)
ds = EchoClips([video], [50.0], frames=32, period=2, mean=30.0, std=40.0)
model = channels_last(build("r2plus1d_18"))
base = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])
t0 = time.time()
pred = predict_all_clips(model, ds, TrainConfig(epochs=1, batch_size=1, lr=0, progress=False), stride=STRIDE, batch=BATCH)
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_mib": base / 1024, "seconds": time.time() - t0, "pred": float(pred[0]),
                  "clips": len(range(0, 1000 - 63 + 1, STRIDE))}))
"""


def measure(stride: int, batch: int) -> dict:
    code = SCRIPT.replace("STRIDE", str(stride)).replace("BATCH", str(batch))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


class MemoryTargetMissed(AssertionError):
    """The peak resident memory is above the issue's 1 GiB target (the only expected failure here)."""


@pytest.mark.xfail(reason="torch + torchvision (CUDA build) + scipy/pandas/cv2 + the 31.5 M-parameter model take "
                          "~930 MiB before the first clip; evaluation adds ~210 MiB at clip_batch 1",
                   raises=MemoryTargetMissed, strict=True)
@pytest.mark.parametrize("batch", [1, 2])
def test_all_clips_peak_memory_on_1000_frames(benchmark, batch, quick):
    # Every 40th start (every 200th with --quick) keeps the CPU time to a minute or two; memory
    # does not depend on the stride (clips are built a batch at a time from the uint8 video).
    r = measure(stride=200 if quick else 40, batch=batch)
    benchmark.extra_info.update(r)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\nall-clips on a 1000-frame video, clip_batch {batch}: peak RSS {r['peak_rss_mib']:.0f} MiB "
          f"(before the first clip: {r['rss_before_mib']:.0f} MiB), {r['clips']} clips in {r['seconds']:.0f} s")
    assert r["clips"] >= 5 and np.isfinite(r["pred"])  # it evaluated: a crash is no expected failure
    if r["peak_rss_mib"] > 1024:
        raise MemoryTargetMissed(f"peak RSS {r['peak_rss_mib']:.0f} MiB > 1024 MiB")
