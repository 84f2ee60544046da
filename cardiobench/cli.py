"""``cardiobench`` command line: a thin dispatcher; ``run`` hands over to Hydra.

Errors in the user's input (a file, a value) print one clear line and exit non-zero, no traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import CardiobenchError

EPILOG_RUN = """\
examples:
  cardiobench run --task echonet_ef                      smoke profile on the synthetic twin
  cardiobench run --task echonet_ef seed=1 train.epochs=2
  cardiobench run --task echonet_ef --profile paper data.root=/data/EchoNet-Dynamic
  cardiobench run --task echonet_ef --run-dir runs/x resume=true   continue an interrupted run
  cardiobench run --task echonet_ef --multirun seed=0,1,2          Hydra multirun (joblib/submitit launchers)
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cardiobench",
        description="Benchmark-and-reproduction suite for cardiac imaging AI: re-run published baselines with "
                    "fixed seeds, score them with honest confidence intervals, compare, and publish a leaderboard.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `cardiobench COMMAND --help` for each command's options.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("list", help="tasks, baselines, profiles, and whether real data is configured",
                   description="List tasks, their baselines and profiles, and where each task's data comes from.")

    r = sub.add_parser("run", help="train + predict + score one baseline on one task",
                       description="Compose task + baseline + profile with Hydra, train with a fixed seed, predict the "
                                   "test split, compute metrics with CIs, and render the task's leaderboard page. "
                                   "Trailing key=value arguments are Hydra overrides.",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_RUN)
    r.add_argument("--task", required=True, help="task name (see `cardiobench list`)")
    r.add_argument("--baseline", help="baseline recipe (default: the task's reference baseline)")
    r.add_argument("--profile", default=None, choices=_profiles(),
                   help="smoke: small sizes on the CPU in minutes (default); paper: the published recipe (GPU, "
                        "real data); tiny: seconds, the plumbing only (numbers mean nothing)")
    r.add_argument("--run-dir", help="put the run folder exactly here")
    r.add_argument("--multirun", "-m", action="store_true",
                   help="Hydra multirun over comma-separated values (seed=0,1,2); hydra/launcher=joblib runs the jobs "
                        "as parallel processes, hydra/launcher=submitit_slurm on SLURM (docs/scaling-out.md)")
    r.add_argument("--cfg", choices=["job", "hydra", "all"],
                   help="print the composed config (job: the run's; hydra: Hydra's, launcher included) and exit "
                        "without running")
    r.add_argument("overrides", nargs="*", metavar="key=value",
                   help="Hydra overrides, e.g. seed=1 data.root=/data/EchoNet-Dynamic train.epochs=2 resume=true")

    e = sub.add_parser("evaluate", help="score a run folder, or a predictions file made anywhere",
                       description="`evaluate RUN`: recompute metrics.json from the run's predictions.csv alone "
                                   "(works on runs made elsewhere). `evaluate --task T --predictions F.csv --name N`: "
                                   "check an external predictions file against the task's test split, score it and "
                                   "save it as a run folder that joins the leaderboard. Trailing key=value "
                                   "arguments pick the data (default: the smoke twin), e.g. data.root=/data/EchoNet.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="predictions file formats: see docs/external-predictions.md")
    e.add_argument("run_dir", nargs="?", help="a run folder")
    e.add_argument("--task", help="task of the external predictions")
    e.add_argument("--predictions", help="CSV with one row per test sample (sample_id + the task's prediction columns)")
    e.add_argument("--name", help="the model's name on the leaderboard")
    e.add_argument("overrides", nargs="*", metavar="key=value", help="data overrides, e.g. data.root=/data/EchoNet")

    c = sub.add_parser("compare", help="paired comparison of two runs on the same test samples",
                       description="Align two runs' predictions on sample ids and test every metric's difference "
                                   "(a - b): paired bootstrap for MAE/RMSE/R2 (patients resampled jointly), paired "
                                   "DeLong for AUCs. Refuses runs scored on different test sets. Either side may be a seed "
                                   "group (a folder of runs of one recipe with different seeds): then the means over "
                                   "seeds are compared by a two-level bootstrap (seeds resampled within each group, "
                                   "patients once for both) and each shared seed's difference is listed.")
    c.add_argument("run_a", help="run folder A, or a folder of runs of one recipe that differ only by seed "
                                 "(a seed group: compared by a two-level bootstrap, seeds then patients)")
    c.add_argument("run_b", help="run folder B, or a seed group's folder")
    c.add_argument("--json", metavar="OUT", help="also write the comparison to this JSON file")
    c.add_argument("--n-resamples", type=int, default=9999,
                   help="bootstrap resamples (default 9999, what check and the leaderboard use, so their p-values "
                        "agree with this one; seed groups: at most 2000, as on the leaderboard)")
    c.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")

    k = sub.add_parser("check", help="CI gate: fail when a run's primary metric regressed",
                       description="Compare the run with a stored reference run on the same samples: exit 1 when "
                                   "the run's primary metric is significantly worse (one-sided paired test at "
                                   "alpha 0.05: paired bootstrap for MAE/Dice, paired DeLong for AUCs), worse by "
                                   "more than the reference's tolerance, or scored on other data (another data "
                                   "fingerprint or other samples); exit 0 otherwise. The reference is "
                                   "<task>.json plus <task>.predictions.csv beside it.")
    k.add_argument("run_dir", help="the run folder to check")
    k.add_argument("--reference", required=True, help="reference JSON, e.g. leaderboards/reference/echonet_ef.json")
    k.add_argument("--write-reference", action="store_true",
                   help="instead of checking, store this run (primary metric and predictions) as the new reference")
    k.add_argument("--tolerance", type=float, default=None,
                   help="with --write-reference: the largest tolerated worsening of the primary metric, absolute "
                        "(default: keep the file's, else 0.5)")

    d = sub.add_parser("data", help="synthesize or verify datasets", description="Synthetic twins and integrity checks.")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION")
    s = dsub.add_parser("synth", help="write a synthetic twin in a dataset's real on-disk format",
                        description="Write a synthetic twin whose labels are measured from its own phantom geometry.")
    s.add_argument("format", help=f"dataset format ({', '.join(_formats())})")
    s.add_argument("--out", required=True, help="output folder (must not exist)")
    s.add_argument("--n", type=int, default=None,
                   help="number of samples (default: the format's, like its real release: 150 patients for acdc, "
                        "500 videos for echonet_dynamic)")
    s.add_argument("--seed", type=int, default=0, help="seed (default 0); same seed, same bytes")
    s.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    cc = dsub.add_parser("cache", help="preprocess every sample once into the decode-once cache",
                         description="Decode each sample of a dataset folder once into .npy arrays under "
                                     "<cache_dir>/arrays/<format>-<config hash>/ (memory-mapped by runs); entries whose "
                                     "source changed or whose checksum fails are preprocessed again. Prints the "
                                     "throughput.")
    cc.add_argument("format", help=f"dataset format ({', '.join(_formats())})")
    cc.add_argument("root", nargs="?", help="dataset folder (default: the smoke profile's synthetic twin)")
    cc.add_argument("--size", type=int, default=None, help="image size in px (default: the smoke recipe's)")
    cc.add_argument("--task", default=None, help="whose smoke recipe gives the default size (default: the "
                                                   "first task of the format)")
    cc.add_argument("--cache-dir", default=None, help="cache folder (default: $CARDIOBENCH_CACHE or ~/.cache/cardiobench)")
    cc.add_argument("--workers", type=int, default=2, help="decoding threads (default 2)")
    v = dsub.add_parser("verify", help="check every file of a dataset folder",
                        description="Check the index files and decode every sample; one line per problem "
                                    "(file and problem), exit 1 if any error.")
    v.add_argument("format", help=f"dataset format ({', '.join(_formats())})")
    v.add_argument("root", help="dataset folder")
    v.add_argument("--no-decode", action="store_true", help="skip decoding samples (index files only)")

    rep = sub.add_parser("report", help="render the HTML leaderboard from run folders",
                         description="Render a static leaderboard site from run folders and published numbers.")
    rep.add_argument("runs", nargs="*", default=["runs"], help="run folders or parents of run folders (default: runs)")
    rep.add_argument("--out", default=None, help="site folder (default: leaderboards/site in the working folder)")
    rep.add_argument("--task", action="append", default=None, help="render only this task's page (repeatable)")
    return p


def _profiles() -> list[str]:
    return sorted(p.stem for p in (Path(__file__).parent / "conf" / "profile").glob("*.yaml"))


def _formats() -> list[str]:
    from .data import format_names

    return format_names(plugins_too=False)


def cmd_list() -> int:
    from .config import baseline_files, load_baseline, load_task, task_files
    from .data import get_format

    profiles = sorted(p.stem for p in (Path(__file__).parent / "conf" / "profile").glob("*.yaml"))
    for t, path in task_files().items():
        spec = load_task(t)
        where = "" if path.is_relative_to(Path(__file__).parent) else f"  [{path}]"
        print(f"task {spec.name} (v{spec.version}): {spec.description}{where}")
        print(f"  format {spec.format} ({get_format(spec.format).description}); main score {spec.main_score} "
              f"({spec.main_score_direction} is better); metrics {', '.join(m for m in spec.metrics if m[0] != '_')}")
        print("  data: data.root=FOLDER for the real data; without it, the synthetic twin (generated once)")
        for name in baseline_files():
            b = load_baseline(name)
            if b.baseline.task == t:
                ref = "  (reference)" if name == spec.reference_baseline else ""
                print(f"  baseline {name}{ref}: {b.baseline.title}; model {b.model.name}; "
                      f"profiles {', '.join(b.profiles)}")
    print(f"profiles: {', '.join(profiles)}")
    return 0


def first_job(overrides: list[str]) -> list[str]:
    """A sweep's overrides with each swept value (``seed=0,1,2``, ``range(3)``) replaced by its first."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for o in OverridesParser.create().parse_overrides(overrides):
        if o.is_sweep_override():
            out.append(f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}")
        else:
            out.append(o.input_line)
    return out


def _check_data_root(overrides: list[str]) -> None:
    """Refuse a ``data.root=`` that is not a folder before the run imports torch (seconds), with the
    message the run itself would give; interpolated, quoted or escaped values are left to the run."""
    for o in overrides:
        key, _, value = o.partition("=")
        value = value.strip()
        plain = value and value != "null" and not value.startswith(("${", "'", '"')) and "\\" not in value
        if key.lstrip("+") == "data.root" and plain:
            root = Path(value).expanduser()
            if not root.is_dir():
                raise CardiobenchError(f"{root}: data.root is not a folder")


def cmd_run(args: argparse.Namespace) -> int:
    """One run: the config composed once (a misspelled key or a bad value refused in one line), then
    the run. A sweep (``--multirun``) or a printed config (``--cfg``) goes through Hydra's runner, which
    composes each job itself."""
    from .config import check_recipe, compose, hydra_quote, load_task, override_keys, refuse_sweeps

    task = load_task(args.task).name
    for o in args.overrides:
        if "=" not in o:
            raise CardiobenchError(f"override {o!r} is not key=value")
    override_keys(args.overrides)  # Hydra's grammar: a value it cannot take is named, with its quoted form
    profile = args.profile or "smoke"
    baseline = check_recipe(task, args.baseline, profile)
    overrides = list(args.overrides)
    if args.run_dir:  # quoted: a folder named "run (1)" or "a=b" is a path, not override syntax
        overrides.append(f"run_dir={hydra_quote(str(Path(args.run_dir)))}")
    groups = [f"task={task}", f"baseline={baseline}", f"profile={profile}"]
    if args.multirun or args.cfg or any(o.lstrip("+~").startswith("hydra") for o in overrides):
        from .app import hydra_run
        from .config import check_overrides, plain_config

        check_overrides(plain_config(task, baseline, profile), overrides)  # keys; values vary by job
        if args.cfg:  # Hydra prints one job's config: a sweep shows its first job (launcher section included)
            hydra_run(["--cfg", args.cfg, *groups, *first_job(overrides)])
        else:
            hydra_run([*(["--multirun"] if args.multirun else []), *groups, *overrides])
        return 0
    refuse_sweeps(overrides)
    if not args.run_dir and not any(o.startswith("resume=") for o in args.overrides):
        _check_data_root(args.overrides)  # a placed or resumed run checks its folder first, in the app
    cfg = compose(task, baseline, profile, overrides)
    from .app import run_and_report

    run_and_report(cfg)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .config import spec_of
    from .console import finish_run, print_metrics
    from .evaluation import evaluate
    from .runs import Run

    if args.run_dir and "=" in args.run_dir:  # argparse put the first key=value into the positional
        args.overrides, args.run_dir = [args.run_dir, *args.overrides], None
    if args.predictions or args.task or args.name:
        if not (args.predictions and args.task and args.name) or args.run_dir:
            raise CardiobenchError("external predictions need --task, --predictions and --name (and no run folder)")
        from .external import evaluate_external

        run = evaluate_external(args.task, args.predictions, args.name, args.overrides)
        finish_run(run, run.config())
        return 0
    if not args.run_dir:
        raise CardiobenchError("give a run folder, or --task/--predictions/--name for an external predictions file")
    run = Run.open(args.run_dir)
    with run.lock():  # two evaluations of one run at once take turns; a refused one writes nothing
        cfg = run.config()
        metrics = evaluate(run.predictions(), spec_of(cfg), cfg.get("ci"), source=str(run.predictions_file))
        run.write_metrics(metrics)
    print_metrics(metrics, cfg)
    print(f"wrote {run.metrics_file}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_runs, compare_seed_groups, format_table, seed_group
    from .io import write_json
    from .seeds import N_RESAMPLES as SEED_RESAMPLES

    if not 0 < args.level < 1:
        raise CardiobenchError(f"--level must lie between 0 and 1 (e.g. 0.95), not {args.level}")
    least = int(-(-2 // (1 - args.level))) + 1  # a (1 - level)/2 tail needs this many resamples to exist
    if args.n_resamples < least:
        raise CardiobenchError(f"--n-resamples must be at least {least} for a {args.level:.0%} interval "
                               f"(e.g. 9999), not {args.n_resamples}")
    ga, gb = seed_group(args.run_a), seed_group(args.run_b)
    if len(ga) == 1 and len(gb) == 1:
        a, b = ga[0], gb[0]
        rows = compare_runs(a, b, level=args.level, n_resamples=args.n_resamples)
        print(format_table(rows, str(a.path), str(b.path), level=args.level))
        result = {"a": str(a.path), "b": str(b.path), "comparisons": rows}
    else:
        rows, per_seed = compare_seed_groups(ga, gb, level=args.level, n_resamples=min(args.n_resamples, SEED_RESAMPLES))
        name_a, name_b = (f"{p} (seeds {', '.join(str(r.config().get('seed')) for r in g)}: mean over seeds)"
                          for p, g in ((args.run_a, ga), (args.run_b, gb)))
        print(format_table(rows, name_a, name_b, level=args.level))
        for metric, diffs in per_seed.items():
            shown = ", ".join(f"seed {s}: {d:+.4g}" for s, d in diffs.items()) or "no seed in common"
            print(f"per-seed a - b, {metric}: {shown}")
        result = {"a": [str(r.path) for r in ga], "b": [str(r.path) for r in gb], "comparisons": rows,
                  "per_seed_differences": {m: {str(s): d for s, d in v.items()} for m, v in per_seed.items()}}
    if args.json:
        write_json(Path(args.json), result)
        print(f"wrote {args.json}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import json

    from .check import check, write_reference
    from .runs import Run

    run = Run.open(args.run_dir)
    if args.write_reference:
        ref_path = Path(args.reference)
        tol = args.tolerance
        if tol is not None and not tol >= 0:
            raise CardiobenchError(f"--tolerance must be >= 0 (an absolute worsening of the primary metric), not {tol}")
        if tol is None and ref_path.is_file():
            try:
                tol = json.loads(ref_path.read_text()).get("tolerance")
            except (ValueError, AttributeError):  # a damaged old reference: the task's tolerance instead
                tol = None
        rcfg = run.config()
        cmd = (f"cardiobench run --task {rcfg.task.name} --baseline {rcfg.baseline.name} --run-dir runs/ref && "
               f"cardiobench check runs/ref --reference {args.reference} --write-reference")
        ref = write_reference(run, ref_path, tol, cmd)
        print(f"wrote {ref_path} and {ref['predictions']}: {ref['metric']} {ref['value']:.4g} "
              f"[{ref['low']:.4g}, {ref['high']:.4g}], tolerance {ref['tolerance']:g}")
        return 0
    result = check(run, args.reference)
    for line in result.lines:
        print(line)
    return 0 if result.ok else 1


def cmd_data(args: argparse.Namespace) -> int:
    from .data import get_format

    fmt = get_format(args.format)
    if args.data_command == "synth":
        n = args.n if args.n is not None else int(getattr(fmt, "default_twin_n", 500))
        out = fmt.synthesize(args.out, n=n, seed=args.seed, workers=args.workers)
        print(f"wrote {n}-sample {args.format} twin to {out}")
        return 0
    if args.data_command == "cache":
        return cmd_data_cache(args, fmt)
    problems = fmt.verify(args.root, decode=not args.no_decode)
    for p in problems:
        print(p)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    print(f"{args.root}: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 1 if errors else 0


def cmd_data_cache(args: argparse.Namespace, fmt) -> int:
    import time

    from .config import compose, load_task, task_names
    from .data.cache import ArrayCache, cache_size_bytes
    from .data.source import resolve_source

    readers = [t for t in task_names() if load_task(t).format == args.format]
    task = args.task or next((t for t in readers if load_task(t).preprocess), readers[0] if readers else None)
    if task is None:
        raise CardiobenchError(f"no task reads format {args.format!r}; give --size and a folder")
    cfg = compose(task)
    root = Path(args.root) if args.root else resolve_source(cfg).root
    if not root.is_dir():
        raise CardiobenchError(f"{root}: not a folder")
    samples, index_problems = fmt.index(root)
    if args.size:
        size = args.size
    else:  # the setting the task's spec names: a size, or a whole section (chest CT: spacing, HU window, shape)
        from omegaconf import DictConfig, OmegaConf

        key = load_task(task).preprocess
        if not key:
            raise CardiobenchError(f"task {task!r} does not name the setting its preprocessing depends on "
                                   f"(spec field preprocess); give --size")
        value = OmegaConf.select(cfg, key)
        size = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else int(value)
    config = fmt.preprocess_config(size)
    cache = ArrayCache(args.cache_dir or cfg.data.cache_dir, args.format, config, lambda p: fmt.preprocess(p, config),
                       getattr(fmt, "companions", None))
    t0 = time.time()
    done, problems = cache.build(list(samples.sample_id), list(samples.path), workers=args.workers)
    dt = time.time() - t0
    for p in [*index_problems, *problems]:
        print(p)
    print(f"{cache.folder}: {done} sample(s) preprocessed in {dt:.1f} s ({done / max(dt, 1e-9):.1f}/s), "
          f"{len(samples) - done - len(problems)} already cached, {len(problems)} failed; "
          f"{cache_size_bytes(cache.folder) / 2**20:.0f} MiB")
    # the same verdict as `data verify`: a sample the index refused is as missing from the cache as one
    # that failed to decode
    return 1 if problems or any(p.severity == "error" for p in index_problems) else 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import render_site

    index = render_site(args.runs, args.out, tasks=args.task)
    print(index)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # key=value overrides may come before or after --options
        if args.command not in ("run", "evaluate") or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        if args.command == "list":
            return cmd_list()
        if args.command == "run":
            return cmd_run(args)
        if args.command == "evaluate":
            return cmd_evaluate(args)
        if args.command == "compare":
            return cmd_compare(args)
        if args.command == "check":
            return cmd_check(args)
        if args.command == "data":
            if not args.data_command:
                _parser().parse_args(["data", "--help"])
            return cmd_data(args)
        if args.command == "report":
            return cmd_report(args)
        _parser().print_help()
        return 0
    except CardiobenchError as exc:
        print(f"cardiobench: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a folder that cannot be made or written (a file in the way, no permission, disk full)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"cardiobench: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cardiobench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
