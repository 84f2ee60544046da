"""The toy task's code: EchoNet clips labelled EF < 50 %, a logit per clip, its sigmoid as p_low_ef."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from cardiobench.tasks import Task, TaskData, register_task
from cardiobench.tasks.echonet.clips import EchoClips, intensity_stats
from cardiobench.tasks.echonet.data import prepare_echo
from cardiobench.train import predict, train_config


@register_task("echo_lowef")
class EchoLowEF(Task):
    def datasets(self, cfg, run, source):
        _, prepared = prepare_echo(cfg, run, source, cfg.clip.size)
        samples, videos, split = prepared.samples, prepared.arrays, prepared.split
        label = (samples.EF.to_numpy() < 50).astype(np.float32)
        mean, sd = intensity_stats([videos[i] for i in split.train])

        def clips(k, seed):
            return EchoClips([videos[i] for i in split[k]], label[split[k]], cfg.clip.frames, cfg.clip.period, mean,
                             sd, seed)

        return TaskData(clips("TRAIN", cfg.seed), clips("VAL", cfg.seed + 1), prepared,
                        extras=clips("TEST", cfg.seed + 2))

    def predict(self, cfg, run, model, data, device):
        logits = predict(model, data.extras, train_config(cfg, device), desc="predict TEST")[:, 0]
        rows = data.prepared.samples.iloc[data.prepared.split.test]
        return pd.DataFrame({"sample_id": rows.FileName.to_numpy(), "patient_id": rows.FileName.to_numpy(),
                             "split": "TEST", "EF": rows.EF.to_numpy(float),
                             "p_low_ef": torch.sigmoid(torch.from_numpy(logits)).numpy().astype(float)})
