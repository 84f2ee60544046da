"""The toy task's code: EchoNet clips labelled EF < 50 %, a logit per clip, its sigmoid as p_low_ef."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from cardiobench.data.clips import EchoClips, intensity_stats
from cardiobench.data.source import report_problems
from cardiobench.tasks import Task, TaskData, register_task
from cardiobench.tasks.echo_data import load_echo, split_indices
from cardiobench.train import predict, train_config


@register_task("echo_lowef")
class EchoLowEF(Task):
    def datasets(self, cfg, run, source):
        _, samples, videos, problems = load_echo(cfg, source, cfg.clip.size)
        report_problems(run.path, problems)
        idx = split_indices(samples, source.root)
        label = (samples.EF.to_numpy() < 50).astype(np.float32)
        mean, sd = intensity_stats([videos[i] for i in idx["TRAIN"]])

        def clips(k, seed):
            return EchoClips([videos[i] for i in idx[k]], label[idx[k]], cfg.clip.frames, cfg.clip.period, mean, sd,
                             seed)

        return TaskData(clips("TRAIN", cfg.seed), clips("VAL", cfg.seed + 1),
                        dict(test=clips("TEST", cfg.seed + 2), rows=samples.iloc[idx["TEST"]]))

    def predict(self, cfg, run, model, data, device):
        logits = predict(model, data.info["test"], train_config(cfg, device), desc="predict TEST")[:, 0]
        rows = data.info["rows"]
        return pd.DataFrame({"sample_id": rows.FileName.to_numpy(), "patient_id": rows.FileName.to_numpy(),
                             "split": "TEST", "EF": rows.EF.to_numpy(float),
                             "p_low_ef": torch.sigmoid(torch.from_numpy(logits)).numpy().astype(float)})
