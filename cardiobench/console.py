"""What a command prints: the metrics table and, after a run, the leaderboard page's path."""
from __future__ import annotations

from omegaconf import DictConfig

from .runs import Run


def print_metrics(metrics: dict, cfg: DictConfig) -> None:
    rows = [(k, v) for k, v in metrics.items()
            if not k.startswith("_") and isinstance(v, dict) and v.get("value") is not None]
    print(f"\n{cfg.task.name} / {cfg.baseline.name} / {cfg.profile.name} profile, seed {cfg.seed}")
    w = max([10, *(len(k) for k, _ in rows)])
    print(f"{'metric':<{w}} {'value':>9} {'CI':>22}  {'method':<16} n")
    for k, v in rows:
        ci = f"[{v['low']:.4g}, {v['high']:.4g}]" if v.get("low") is not None else ""
        how = f"{v['level']:.0%} {v.get('method', '')}" if v.get("level") is not None else ""
        print(f"{k:<{w}} {v['value']:>9.4g} {ci:>22}  {how:<16} {v.get('n', '')}")
    for k, v in metrics.items():  # multilabel metrics: a label with one class in the split has no AUC
        if isinstance(v, dict):
            for label in v.get("labels_skipped") or []:
                print(f"{k}: label {label!r} skipped (fewer than 2 cases or 2 controls in the scored split)")


def finish_run(run: Run, cfg: DictConfig) -> None:
    """Print the metrics table and (if ``report``) render the run's task page and print its path."""
    print_metrics(run.metrics(), cfg)
    print(f"\nrun folder: {run.path}")
    from .sweep import in_sweep

    if cfg.report and in_sweep():
        print("leaderboard page: rendered once, when the whole sweep has ended")
    elif cfg.report:
        from .report import render_site, task_page_path

        render_site([cfg.runs_root, run.path], cfg.site_dir, tasks=[str(cfg.task.name)])
        print(f"leaderboard page: {task_page_path(cfg.site_dir, cfg.task.name).resolve()}")
