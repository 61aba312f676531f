"""The ``lrrt`` command: ``sweep``, ``verify``, ``report``, ``find`` and ``validate``.

Exit codes: 0 all trials ok; 1 some trials failed or did not finish (outputs still
written, failures listed); 2 invalid input (one line on stderr naming the file and the
key; nothing launched, nothing written); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

# TensorFlow's C++ logs drown the output; quiet them for this process and the Ray workers
# it starts (set here, in the CLI, never in users' environments or in library code).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from lrrt_core.suggest import METHODS  # noqa: E402  (pure numpy: no TensorFlow)

RANK_CHOICES = (*METHODS, "sma")
DEFAULT_FIND_STEPS = 200  # as a sweep file's range_test.steps default
EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
OUTPUT_NAMES = (".lock", "sweep.json", "trials", "verify", "ray", "plots", "trials.csv", "ranking.csv",
                "curves.parquet", "verify.csv", "recipes.json", "report.html", "report.md")


@contextlib.contextmanager
def _native_stderr_silenced(enabled: bool = True):
    """Send file descriptor 2 to /dev/null while TensorFlow's C++ runtime loads.

    TensorFlow >= 2.20 prints absl INFO lines (oneDNN, "could not find cuda drivers")
    before ``TF_CPP_MIN_LOG_LEVEL`` takes effect; only the CLI hides them, never the library.
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class UsageError(Exception):
    """Bad input found before anything ran: printed as one line, exit 2."""


def _fail(msg: str) -> int:
    print(f"lrrt: error: {msg}", file=sys.stderr)
    return EXIT_INVALID


def _parse_kv(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag}: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise UsageError(f"{flag}: {key.strip()}: cannot read the value {value!r} ({err.problem or err})") from None
    return out


# --------------------------------------------------------------------------- validate


def cmd_validate(args: argparse.Namespace) -> int:
    from sweeps.grid import expand, format_grid

    spec = _load(args)
    trials = expand(spec)
    print(format_grid(spec, trials))
    return EXIT_OK


def _load(args: argparse.Namespace):
    from sweeps.spec import load_spec

    spec = load_spec(args.config)
    overrides = {
        "cpus_per_trial": getattr(args, "cpus_per_trial", None),
        "gpus_per_trial": getattr(args, "gpus_per_trial", None),
        "max_concurrent": getattr(args, "max_concurrent", None),
    }
    if any(v is not None for v in overrides.values()):
        spec = spec.with_resources(**overrides)
    return spec


# --------------------------------------------------------------------------- sweep


def _manifest(spec, trials) -> dict[str, Any]:
    return {
        "schema": 1,
        "name": spec.name,
        "fingerprint": spec.fingerprint(),
        "source": str(spec.source) if getattr(spec, "source", None) else None,
        "spec": spec.model_dump(mode="json"),
        "created_at": time.time(),
        "trials": [
            {"trial_id": t.trial_id, "name": t.name, "config": t.config, "params": t.params()}
            for t in trials
        ],
    }


def _check_out_dir(out: Path, spec, fresh: bool) -> None:
    """Refuse an --out holding another sweep (or foreign files) unless --fresh."""
    from sweeps import store

    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a directory")
    manifest = _read_manifest(out, "--out")
    if fresh:
        if manifest is None and any(p for p in out.iterdir() if p.name not in OUTPUT_NAMES):
            raise UsageError(f"--out: {out} holds files that are not lrrt outputs; --fresh only clears an lrrt output directory")
        return
    if manifest is None:
        if any(p.name != store.LOCK_NAME for p in out.iterdir()):
            raise UsageError(f"--out: {out} is not empty and holds no lrrt sweep (no sweep.json); choose another --out")
        return
    if manifest.get("fingerprint") != spec.fingerprint():
        raise UsageError(
            f"--out: {out} holds results of a different sweep ({manifest.get('name')!r}, "
            f"other grid or settings); rerun with --fresh to discard them, or choose another --out"
        )


def _read_manifest(out: Path, what: str) -> dict | None:
    """The directory's sweep.json, or ``None``; a damaged one is a one-line error, not a traceback."""
    from sweeps import store

    try:
        return store.read_manifest(out)
    except (ValueError, OSError) as err:
        raise UsageError(f"{what}: {out / 'sweep.json'} is damaged ({err}); restore it or start over with --fresh") from None


def _clear(out: Path) -> None:
    for name in OUTPUT_NAMES:
        if name == ".lock":  # held by this process: deleting it would let a second driver in
            continue
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def cmd_sweep(args: argparse.Namespace) -> int:
    from sweeps import store
    from sweeps.grid import expand
    from sweeps.launch import LaunchError, wait_ray_stopped

    spec = _load(args)
    trials = expand(spec)
    out = Path(args.out or Path("runs") / spec.name).resolve()
    _check_out_dir(out, spec, args.fresh)
    if args.local_gpus is not None and args.local_gpus < 0:
        raise UsageError("--local-gpus: must be >= 0")
    held = []  # the directory's lock, held until this process ends

    def lock() -> None:
        try:
            held.append(store.lock_out_dir(out))
        except store.OutDirBusy as err:
            raise LaunchError(f"--out: {err}; wait for it or stop it first") from None

    if out.is_dir():
        try:
            lock()  # refuse a second driver before starting Ray
        except LaunchError as err:
            return _fail(str(err))

    def before_launch() -> None:
        out.mkdir(parents=True, exist_ok=True)
        if not held:
            lock()
        if args.fresh:
            _clear(out)
        store.write_manifest(out, _manifest(spec, trials))

    if not args.quiet:
        res = spec.resources
        print(f"lrrt: sweep {spec.name!r}: {len(trials)} trials, {res.cpus_per_trial:g} CPU"
              f" / {res.gpus_per_trial:g} GPU per trial -> {out}", file=sys.stderr)
    try:
        return _launch_and_report(args, spec, trials, out, before_launch)
    finally:
        wait_ray_stopped()  # run_trials stops a local Ray in the background, overlapping the report


def _launch_and_report(args: argparse.Namespace, spec, trials, out: Path, before_launch) -> int:
    from sweeps.launch import LaunchError, run_trials

    launch = _launch_kwargs(args)
    try:
        outcome = run_trials(spec, trials, out, fresh=args.fresh, before_launch=before_launch, **launch)
        if not args.quiet and outcome.skipped:
            print(f"lrrt: resumed: {outcome.skipped} finished trials kept, {outcome.launched} run now", file=sys.stderr)
        if spec.verify is not None and not outcome.unfinished:
            _verify_stage(spec, trials, out, spec.verify, args.rank_by, launch)
    except LaunchError as err:
        return _fail(str(err))
    reduction = _write_report(out, args.rank_by, quiet=args.quiet)
    return _exit_code(reduction, interrupted=bool(outcome.unfinished))


def _launch_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The Ray connection and output options ``run_trials`` takes, from the command line."""
    return dict(address=args.address, local_gpus=args.local_gpus, storage=args.storage,
                wait_for_nodes=args.wait_for_nodes, quiet=args.quiet, verbose=args.verbose)


def _exit_code(reduction, interrupted: bool = False, resumable: bool = True) -> int:
    """0 all ok; 1 a range test or verification failed or is missing; 130 interrupted."""
    statuses = list(reduction.trials["status"])
    if reduction.verification is not None and reduction.verification.ran:
        statuses += list(reduction.verification.rows["status"])
    missing = statuses.count("missing")
    if missing:
        if resumable:
            print(f"lrrt: {missing} trials did not finish; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED if interrupted else EXIT_FAILED
    return EXIT_FAILED if "failed" in statuses else EXIT_OK


def _verify_stage(spec, trials, out: Path, verify, rank_by: str | None, launch: dict[str, Any]):
    """Plan the verification trainings from the range tests on disk, record the plan in the
    manifest, run the ones without an ok record (same launcher, records, retries, resume)."""
    from sweeps import store, verification
    from sweeps.launch import run_trials, verifications
    from sweeps.reduce import reduce_dir

    red = reduce_dir(out, rank_by=_rank_by(rank_by))
    planned = verification.plan(spec, trials, red.ranking, verify)
    manifest = store.read_manifest(out) or {}
    manifest["spec"] = {**manifest.get("spec", {}), "verify": verify.model_dump(mode="json")}
    manifest["verify_trials"] = verification.manifest_entries(planned)
    store.write_manifest(out, manifest)
    if not launch.get("quiet"):
        print(f"lrrt: verification: {len(planned)} short trainings ({len(verify.candidates)} candidate rates x "
              f"{red.ranking['config'].nunique() if verify.top is None else verify.top} configurations x seeds)",
              file=sys.stderr)
    if planned:
        run_trials(spec, planned, out, kind=verifications(spec, verify), **launch)


def cmd_verify(args: argparse.Namespace) -> int:
    """``lrrt verify DIR``: add (or complete) the verification stage of a finished sweep."""
    from sweeps import store
    from sweeps.grid import expand
    from sweeps.launch import LaunchError, wait_ray_stopped
    from sweeps.spec import SpecError, VerifySpec, spec_from_dict

    out = Path(args.dir).resolve()
    manifest = _read_manifest(out, args.dir) if out.is_dir() else None
    if manifest is None:
        raise UsageError(f"{args.dir}: sweep.json: not an lrrt sweep output directory (no sweep.json)")
    spec = spec_from_dict(manifest["spec"], source=out / store.MANIFEST_NAME)
    given = {k: getattr(args, k) for k in ("epochs", "steps", "candidates", "top", "metric") if getattr(args, k) is not None}
    base = spec.verify.model_dump() if spec.verify is not None else {}
    if "epochs" in given or "steps" in given:
        base.pop("epochs", None)
        base.pop("steps", None)
    try:
        verify = VerifySpec.model_validate({**base, **given})
    except Exception as err:  # pydantic's ValidationError: one line naming the option
        raise UsageError(f"verify options: {_first_error(err)}") from None
    spec = spec.with_resources(args.cpus_per_trial, args.gpus_per_trial, args.max_concurrent)
    if not any(r.get("status") == "ok" for r in store.read_records(out).values()):
        raise UsageError(f"{args.dir}: no finished range test to verify; run lrrt sweep first")
    try:
        lock = store.lock_out_dir(out)
    except store.OutDirBusy as err:
        return _fail(f"{args.dir}: {err}; wait for it or stop it first")
    try:
        _verify_stage(spec, expand(spec), out, verify, args.rank_by, _launch_kwargs(args))
    except (LaunchError, SpecError) as err:
        return _fail(str(err))
    finally:
        wait_ray_stopped()
    del lock
    return _exit_code(_write_report(out, args.rank_by, quiet=args.quiet))


def _first_error(err: Exception) -> str:
    errors = getattr(err, "errors", None)
    if callable(errors):
        first = errors(include_url=False)[0]
        key = "--" + ".".join(str(p) for p in first["loc"] if not isinstance(p, int)) if first["loc"] else "options"
        return f"{key}: {first['msg'].removeprefix('Value error, ')}"
    return str(err)


def _rank_by(rank_by: str | None) -> str | None:
    return "sma_rule" if rank_by == "sma" else rank_by  # keras-lr-finder's name, as in sweep files


# --------------------------------------------------------------------------- report


def _write_report(out: Path, rank_by: str | None, quiet: bool = False):
    from sweeps.reduce import rebuild

    reduction = rebuild(out, rank_by=_rank_by(rank_by))
    if not quiet:
        _print_summary(out, reduction)
    return reduction


def _print_summary(out: Path, reduction) -> None:
    t = reduction.trials
    counts = t["status"].value_counts().to_dict()
    print(f"\n{len(t)} trials: {counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, "
          f"{counts.get('missing', 0)} missing")
    r = reduction.ranking
    if len(r):
        method = reduction.rank_by
        table = r.sort_values("rank").assign(
            seeds_ok=lambda d: d["n_ok"].astype(str) + "/" + (d["n_ok"] + d["n_failed"] + d["n_missing"]).astype(str)
        )
        cols = {"rank": "rank", "config": "config", "min_loss_mean": "min loss",
                "suggested_lr_gmean": f"lr ({method})", "valley_lr_gmean": "lr (valley)",
                "lr_at_min_loss_gmean": "lr at min", "seeds_ok": "seeds ok"}
        if method == "valley":
            cols.pop("valley_lr_gmean")
        shown = table[list(cols)].rename(columns=cols).head(10)
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if len(table) > 10:
            print(f"... {len(table) - 10} more in ranking.csv")
    bad = t[t["status"] == "failed"]
    for _, row in bad.iterrows():
        print(f"FAILED {row['name']}: {row['error']}")
    print(f"\nreport: {out / 'report.html'}")


def cmd_report(args: argparse.Namespace) -> int:
    from sweeps import store

    out = Path(args.dir).resolve()
    if not out.is_dir() or _read_manifest(out, args.dir) is None:
        raise UsageError(f"{args.dir}: sweep.json: not an lrrt sweep output directory (no sweep.json)")
    return _exit_code(_write_report(out, args.rank_by, quiet=args.quiet), resumable=False)


# --------------------------------------------------------------------------- find


def cmd_find(args: argparse.Namespace) -> int:
    opt_kwargs = _parse_kv(args.optimizer_arg, "--optimizer-arg")  # bad input fails before TF loads
    axes = _parse_kv(args.axis, "--axis")
    with _native_stderr_silenced(not args.verbose):
        import tensorflow as tf  # loaded here so its start-up noise is hidden

        tf.config.list_physical_devices("GPU")  # device discovery (cuInit) logs too
    from lrrt_core.runner import run_workload, write_curve
    from lrrt_core.suggest import suggest_all

    try:
        curve = run_workload(
            args.workload, optimizer=args.optimizer, optimizer_kwargs=opt_kwargs,
            batch_size=args.batch_size, seed=args.seed, axes=axes,
            start_lr=args.start_lr, end_lr=args.end_lr, epochs=args.epochs,
            steps=args.steps if args.steps is not None or args.epochs is not None else DEFAULT_FIND_STEPS,
            ladder=args.ladder, loss=args.loss, diverge_threshold=args.diverge_threshold,
            smoothing=args.smoothing,
        )
    except (ValueError, TypeError) as err:  # bad bounds, optimizer, or a keyword the workload lacks
        return _fail(str(err))
    out = Path(args.out or Path("runs") / f"find-{args.workload.replace(':', '.')}-{args.optimizer}-bs{args.batch_size}")
    paths = write_curve(curve, out, "curve")
    print(f"range test: {args.workload}, {args.optimizer}, batch {args.batch_size}: "
          f"{curve.steps_run}/{curve.steps_planned} steps, stop: {curve.stop_reason}, {curve.wall_s:.1f} s")
    if curve.diverged_lr is not None:
        print(f"diverged at lr {curve.diverged_lr:.3g}")
    for method, s in suggest_all(curve).items():
        value = f"{s.lr:.3g}" if s.lr is not None else f"none ({s.reason})"
        print(f"  {method:<14} {value}")
    for kind, p in paths.items():
        print(f"{kind}: {p}")
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lrrt",
        description="Learning-rate range tests for grids of optimizers x batch sizes x seeds, on Ray Tune.",
    )
    from lrrt_core import __version__

    p.add_argument("--version", action="version", version=f"lrrt {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def resources(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (overrides the file)")
        sp.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractions allowed (e.g. 0.5)")
        sp.add_argument("--max-concurrent", type=int, help="at most this many trials at once")

    s = sub.add_parser("sweep", help="run a sweep file on Ray, then write the report",
                       description="Run every trial of CONFIG on Ray Tune and write the ranked report into --out. "
                                   "Re-running the same command on the same --out resumes: finished trials are not re-run.")
    s.add_argument("config", help="sweep file (YAML), e.g. sweeps/configs/quickstart.yaml")
    s.add_argument("--out", help="output directory (default runs/<sweep name>)")
    s.add_argument("--address", help="join an existing Ray cluster (host:port, 'auto'); default: RAY_ADDRESS or a local Ray")
    resources(s)
    s.add_argument("--local-gpus", type=int, help="declare N GPUs to the local Ray (when detection is wrong)")
    s.add_argument("--storage", help="Ray Tune storage_path for its own state (e.g. s3://bucket/lrrt); default OUT/ray")
    s.add_argument("--wait-for-nodes", action="store_true",
                   help="don't refuse a GPU request no node has yet (autoscaling clusters)")
    s.add_argument("--fresh", action="store_true", help="discard the results already in --out and start over")
    s.add_argument("--rank-by", choices=RANK_CHOICES,
                   help="suggestion that gives suggested_lr and breaks ranking ties (default: the file's report.rank_by)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    s.add_argument("-v", "--verbose", action="store_true", help="show Ray's and the workers' logs")
    s.set_defaults(func=cmd_sweep)

    r = sub.add_parser("report", help="rebuild tables, plots and report from stored trial results",
                       description="Rebuild trials.csv, ranking.csv, curves.parquet, plots and report.html/.md in DIR "
                                   "from the stored trial results; works for a running or interrupted sweep.")
    r.add_argument("dir", help="a sweep's output directory")
    r.add_argument("--rank-by", choices=RANK_CHOICES,
                   help="suggestion that gives suggested_lr and breaks ranking ties (default: the sweep file's)")
    r.add_argument("-q", "--quiet", action="store_true")
    r.set_defaults(func=cmd_report)

    f = sub.add_parser("find", help="one range test on this machine (no Ray)",
                       description="Run one learning-rate range test here, print the suggestions, write the curve and a plot.")
    f.add_argument("--workload", default="digits_cnn", help="built-in workload or package.module:function (default digits_cnn)")
    f.add_argument("--optimizer", default="adam")
    f.add_argument("--optimizer-arg", action="append", metavar="KEY=VALUE", help="optimizer keyword argument (repeatable)")
    f.add_argument("--axis", action="append", metavar="KEY=VALUE", help="workload keyword argument (repeatable)")
    f.add_argument("--batch-size", type=int, default=64)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--start-lr", type=float, default=1e-6)
    f.add_argument("--end-lr", type=float, default=10.0)
    f.add_argument("--steps", type=int, default=None, help="number of steps (default 200 unless --epochs)")
    f.add_argument("--epochs", type=int, default=None, help="whole passes over the data instead of --steps")
    f.add_argument("--ladder", choices=("exp", "linear"), default="exp")
    f.add_argument("--loss", choices=("train", "val"), default="train")
    f.add_argument("--diverge-threshold", type=float, default=4.0)
    f.add_argument("--smoothing", type=float, default=0.98)
    f.add_argument("--out", help="output directory (default runs/find-...)")
    f.add_argument("-v", "--verbose", action="store_true", help="show TensorFlow's start-up logs")
    f.set_defaults(func=cmd_find)

    vf = sub.add_parser("verify", help="add short real trainings around each recommendation to a finished sweep",
                        description="Train every configuration of the sweep in DIR (or the --top ones) briefly at "
                                    "candidate rates around its recommended learning rate, on Ray Tune, and add the "
                                    "verified ranking to the report. Settings: the sweep file's verify: section, "
                                    "overridden by these options. Re-running resumes.")
    vf.add_argument("dir", help="a sweep's output directory")
    length = vf.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="epochs per training (default 2)")
    length.add_argument("--steps", type=int, help="optimizer steps per training instead of epochs")
    vf.add_argument("--candidates", type=float, nargs="+", metavar="F",
                    help="multiples of the recommended rate to train at (default 0.333 1 3)")
    vf.add_argument("--top", type=int, help="only the top K configurations of the range-test ranking")
    vf.add_argument("--metric", help="held-out metric that picks the rate: val_loss (default) or a workload metric (accuracy)")
    vf.add_argument("--address", help="join an existing Ray cluster (host:port, 'auto'); default: RAY_ADDRESS or a local Ray")
    resources(vf)
    vf.add_argument("--local-gpus", type=int, help="declare N GPUs to the local Ray (when detection is wrong)")
    vf.add_argument("--storage", help="Ray Tune storage_path for its own state; default OUT/ray")
    vf.add_argument("--wait-for-nodes", action="store_true", help="don't refuse a GPU request no node has yet")
    vf.add_argument("--rank-by", choices=RANK_CHOICES, help="the recommendation the candidates surround (default: the file's)")
    vf.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    vf.add_argument("-v", "--verbose", action="store_true", help="show Ray's and the workers' logs")
    vf.set_defaults(func=cmd_verify)

    v = sub.add_parser("validate", help="check a sweep file and print its trial grid; launches nothing")
    v.add_argument("config")
    resources(v)
    v.set_defaults(func=cmd_validate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from sweeps.spec import SpecError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (SpecError, UsageError) as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        print("lrrt: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def run() -> None:
    """The ``lrrt`` console script: :func:`main`, then exit without tearing the interpreter down.

    When ``main`` returns, everything is on disk (records, tables and report written
    atomically, files closed) and a local Ray is stopped. Finalising the ~10^6 objects that
    Ray, pandas and matplotlib leave behind would only add about half a second, so the
    streams are flushed and the process leaves with ``os._exit``. An exception that escapes
    ``main`` (a bug) still ends the normal way, with its traceback.
    """
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
