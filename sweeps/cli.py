"""The ``lrrt`` command: ``sweep``, ``verify``, ``report``, ``export``, ``find`` and ``validate`` (interface only).

Exit codes: 0 all trials ok; 1 some trials failed or did not finish (outputs still
written, failures listed); 2 invalid input (one line on stderr naming the file and the
key; nothing launched, nothing written); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

# TensorFlow's C++ logs drown the output; quiet them for this process and the Ray workers
# it starts (set here, in the CLI, never in users' environments or in library code).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sweeps.backends import BACKENDS  # noqa: E402  (light: the names only)
from sweeps.run import (  # noqa: E402  (the shared sweep code path; light: no Ray, no TensorFlow)
    EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, UsageError, exit_code, read_manifest_or_fail,
)


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
    from sweeps.grid import format_grid, plan_sweep
    from sweeps.spec import check_backend

    spec = _load(args)
    check_backend(spec)
    plan = plan_sweep(spec)
    print(format_grid(plan.spec, plan.trials, plan.fingerprint))
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


def cmd_sweep(args: argparse.Namespace) -> int:
    from sweeps.launch import RayOptions
    from sweeps.run import run_sweep

    run = run_sweep(_load(args), out=args.out, ray=RayOptions.from_args(args), fresh=args.fresh, rank_by=args.rank_by)
    if not args.quiet:
        _print_summary(run.out_dir, run.reduction)
    return run.exit_code


# --------------------------------------------------------------------------- report


def _print_summary(out: Path, reduction) -> None:
    """The command's closing printout: after verification the verified ranking first (both rates,
    both ranks, how they differ), then the range test's ranking, the unranked configurations
    apart, failures, and the report's path."""
    print(f"\n{reduction.summary_line()}")
    verified = _print_verified(reduction)
    _print_ranking(reduction, "range-test ranking (what the verified ranking replaces):" if verified else "")
    t = reduction.trials
    for _, row in t[t["status"] == "failed"].iterrows():
        print(f"FAILED {row['name']}: {row['error']}")
    _print_verification(reduction)
    print(f"\nreport: {out / 'report.html'}")


def _table_text(frame, cols: dict[str, str], limit: int = 10) -> str:
    """``frame``'s columns ``cols`` (renamed) as text: its first ``limit`` rows and how many more."""
    text = frame[list(cols)].rename(columns=cols).head(limit).to_string(index=False, float_format=lambda v: f"{v:.4g}")
    return text + (f"\n... {len(frame) - limit} more in ranking.csv" if len(frame) > limit else "")


def _print_ranking(reduction, title: str = "") -> None:
    """The range test's ranking (top 10) in the report's layout (its columns the configuration's
    name does not say), then the configurations without a rank, apart."""
    import pandas as pd

    from sweeps.report.ranking_table import ranking_cells

    r = reduction.ranking
    if not len(r):
        return
    header, rows, _ = ranking_cells(reduction, terminal=True)
    table = pd.DataFrame(rows, columns=header)
    ranked = r["rank"].notna().to_numpy()
    if title:
        print(f"\n{title}")
    if ranked.any():
        print(_table_text(table[ranked], dict(zip(header, header))))
    if not ranked.all():
        print(f"not ranked (no finished trial): {', '.join(map(str, r.loc[~ranked, 'config']))}")


def _print_verified(reduction) -> bool:
    """After verification: how the verified answer differs from the range test's, and the
    verified ranking with both rates and both ranks (top 10). Returns whether it printed."""
    import pandas as pd

    from sweeps.report.cells import ratio_text
    from sweeps.report.sections import verification_verdict

    v = reduction.verification
    if v is None or not v.ran or "verified_rank" not in reduction.ranking:
        return False
    verified = reduction.ranking.dropna(subset=["verified_rank"]).sort_values("verified_rank")
    if not len(verified):
        return False
    verified = verified.assign(
        verified_rank=verified["verified_rank"].astype(int),
        rank=verified["rank"].map(lambda x: "" if pd.isna(x) else int(x)),
        change=[ratio_text(a / b) if b > 0 else "n/a"
                for a, b in zip(verified["verified_lr"], verified["suggested_lr_gmean"])])
    print(f"\nverified by short training (held-out {v.metric}): {verification_verdict(reduction)}")
    cols = {"verified_rank": "verified rank", "config": "config", "verified_lr": "lr (verified)",
            "suggested_lr_gmean": f"lr ({reduction.rank_by})", "change": "verified vs range test",
            "rank": "range-test rank", "verified_metric": f"held-out {v.metric}"}
    print(_table_text(verified, cols))
    return True


def _print_verification(reduction) -> None:
    v = reduction.verification
    if v is None or not v.ran:
        return
    c = v.counts()
    print(f"\nverification: {len(v.rows)} trainings: {c['ok']} ok, {c['failed']} failed, {c['missing']} missing; "
          "rank correlation with the range test " + ("n/a" if v.agreement != v.agreement else f"{v.agreement:.2f}"))
    for _, row in v.rows[v.rows["status"] == "failed"].iterrows():
        print(f"FAILED {row['name']}: {row['error']}")


VERIFY_OPTIONS = ("epochs", "steps", "candidates", "top", "metric")


def verify_options(args: argparse.Namespace) -> dict[str, Any]:
    """``lrrt verify``'s options as :func:`sweeps.run.run_verify`'s keywords (all but ``ray``):
    ``verify`` (the settings that override the file's ``verify:``; ``None``: not given),
    the resource options and ``rank_by``."""
    return {"verify": {k: getattr(args, k) for k in VERIFY_OPTIONS}, "cpus_per_trial": args.cpus_per_trial,
            "gpus_per_trial": args.gpus_per_trial, "max_concurrent": args.max_concurrent, "rank_by": args.rank_by}


def cmd_verify(args: argparse.Namespace) -> int:
    """``lrrt verify DIR``: add (or complete) the verification stage of a finished sweep."""
    from sweeps.launch import RayOptions
    from sweeps.run import run_verify

    run = run_verify(args.dir, **verify_options(args), ray=RayOptions.from_args(args))
    if not args.quiet:
        _print_summary(run.out_dir, run.reduction)
    return run.exit_code


def cmd_report(args: argparse.Namespace) -> int:
    from sweeps.report import rebuild

    out = Path(args.dir).resolve()
    if not out.is_dir() or read_manifest_or_fail(out, args.dir) is None:
        raise UsageError(f"{args.dir}: sweep.json: not an lrrt sweep output directory (no sweep.json)", key="dir")
    reduction = rebuild(out, rank_by=args.rank_by)
    if not args.quiet:
        _print_summary(out, reduction)
    return exit_code(reduction)


# --------------------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> int:
    """``lrrt export DIR``: the stored results to TensorBoard and/or MLflow (``sweeps.export``)."""
    from sweeps.export import export

    summary = export(args.dir, tensorboard=args.tensorboard, mlflow=args.mlflow, experiment=args.experiment,
                     rank_by=args.rank_by)
    for line in summary.lines():
        failed = summary.is_failure(line)
        if failed or not args.quiet:
            print(f"lrrt: {line}" if failed else line, file=sys.stderr if failed else sys.stdout)
    return EXIT_OK if summary.complete else EXIT_FAILED


# --------------------------------------------------------------------------- find


def cmd_find(args: argparse.Namespace) -> int:
    opt_kwargs = _parse_kv(args.optimizer_arg, "--optimizer-arg")  # bad input fails before TF loads
    axes = _parse_kv(args.axis, "--axis")
    if args.backend:  # before anything imports Keras: it picks its backend once, at import
        from sweeps.backends import use_in_process

        use_in_process(args.backend)  # not installed: InvalidInput, exit 2
    with _native_stderr_silenced(not args.verbose):
        import keras  # loaded here (with its backend) so the start-up noise is hidden

        if importlib.util.find_spec("tensorflow") is not None:  # on every backend: keras's
            import tensorflow as tf  # set_random_seed (in the workloads) imports it when installed

            if keras.backend.backend() == "tensorflow":
                tf.config.list_physical_devices("GPU")  # device discovery (cuInit) logs too
    if keras.backend.backend() == "jax":  # this command's own process: reuse what earlier runs compiled
        from sweeps.backends import use_jax_compilation_cache

        use_jax_compilation_cache()
    from lrrt_core.runner import write_curve
    from lrrt_core.suggest import DEFAULT_METHOD, range_warning, suggest_all
    from sweeps.api import find

    try:
        curve = find(args.workload, backend=args.backend, optimizer=args.optimizer, optimizer_kwargs=opt_kwargs,
                     batch_size=args.batch_size, seed=args.seed, axes=axes, settings=find_settings(args))
    except (ValueError, TypeError) as err:  # bad bounds, optimizer, or a keyword the workload lacks
        return _fail(str(err))
    out = Path(args.out or Path("runs") / f"find-{args.workload.replace(':', '.')}-{args.optimizer}-bs{args.batch_size}")
    paths = write_curve(curve, out, "curve")
    print(f"range test: {args.workload}, {args.optimizer}, batch {args.batch_size}, {curve.params.get('backend')}: "
          f"{curve.steps_run}/{curve.steps_planned} steps, stop: {curve.stop_reason}, {curve.wall_s:.1f} s")
    if curve.diverged_lr is not None:
        print(f"diverged at lr {curve.diverged_lr:.3g}")
    warning = range_warning(curve)
    if warning:
        print(f"warning: {warning}")
    for method, s in suggest_all(curve).items():
        value = f"{s.lr:.3g}" if s.lr is not None else f"none ({s.reason})"
        print(f"  {method:<18} {value}" + ("   <- default" if method == DEFAULT_METHOD else ""))
    for kind, p in paths.items():
        print(f"{kind}: {p}")
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def _resources(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (overrides the file)")
    sp.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractions allowed (e.g. 0.5)")
    sp.add_argument("--max-concurrent", type=int, help="at most this many trials at once")


def _ray_options(sp: argparse.ArgumentParser) -> None:
    """Where trials run and how they talk: the options ``sweep`` and ``verify`` share."""
    sp.add_argument("--address", help="join an existing Ray cluster (host:port, 'auto'); default: RAY_ADDRESS or a local Ray")
    _resources(sp)
    sp.add_argument("--local-gpus", type=int, help="declare N GPUs to the local Ray (when detection is wrong)")
    sp.add_argument("--storage", help="Ray Tune storage_path for its own state (e.g. s3://bucket/lrrt); default OUT/ray")
    sp.add_argument("--wait-for-nodes", action="store_true",
                    help="don't refuse a GPU request no node has yet (autoscaling clusters)")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sp.add_argument("-v", "--verbose", action="store_true", help="show Ray's and the workers' logs")


def _rank_by(sp: argparse.ArgumentParser, text: str) -> None:
    """``--rank-by``: the suggestion methods by their registry names (an alias such as
    ``sma`` is accepted and read as its method, but not listed)."""
    from lrrt_core.suggest import METHODS, method_name

    sp.add_argument("--rank-by", type=method_name, choices=METHODS, metavar="{" + ",".join(METHODS) + "}", help=text)


def _add_sweep(sub) -> None:
    s = sub.add_parser("sweep", help="run a sweep file on Ray, then write the report",
                       description="Run every trial of CONFIG on Ray Tune and write the ranked report into --out. "
                                   "Re-running the same command on the same --out resumes: finished trials are not re-run.")
    s.add_argument("config", help="sweep file (YAML), e.g. sweeps/configs/quickstart.yaml")
    s.add_argument("--out", help="output directory (default runs/<sweep name>)")
    _ray_options(s)
    s.add_argument("--fresh", action="store_true", help="discard the results already in --out and start over")
    _rank_by(s, "suggestion that gives suggested_lr and breaks ranking ties (default: the file's report.rank_by)")
    s.set_defaults(func=cmd_sweep)


def _add_verify(sub) -> None:
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
    vf.add_argument("--metric", help="held-out metric that picks the rate: auto (default: the workload's accuracy, AUC or R2 if it reports one, else val_loss), val_loss, or a workload metric (accuracy)")
    _ray_options(vf)
    _rank_by(vf, "the recommendation the candidates surround (default: the file's)")
    vf.set_defaults(func=cmd_verify)


def _add_report(sub) -> None:
    r = sub.add_parser("report", help="rebuild tables, plots and report from stored trial results",
                       description="Rebuild trials.csv, ranking.csv, curves.parquet, plots and report.html/.md in DIR "
                                   "from the stored trial results; works for a running or interrupted sweep.")
    r.add_argument("dir", help="a sweep's output directory")
    _rank_by(r, "suggestion that gives suggested_lr and breaks ranking ties (default: the sweep file's)")
    r.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing (the files are still written; the exit code still tells)")
    r.set_defaults(func=cmd_report)


def _add_export(sub) -> None:
    e = sub.add_parser("export", help="export a sweep's curves and recommendations to TensorBoard and/or MLflow",
                       description="Export the stored results in DIR (no Ray; a copied or partial sweep too) to a "
                                   "TensorBoard log directory and/or an MLflow tracking server. Exporting again "
                                   "skips an unchanged sweep and replaces a changed one's earlier export: never "
                                   "duplicates. Exit 0 all exported, 1 a tracker failed or trials are missing or "
                                   "failed (the finished ones are exported), 2 invalid input. See docs/export.md.")
    e.add_argument("dir", help="a sweep's output directory")
    e.add_argument("--tensorboard", metavar="LOGDIR", help="TensorBoard log directory (the sweep goes in LOGDIR/<name>)")
    e.add_argument("--mlflow", nargs="?", const=True, metavar="TRACKING_URI",
                   help="MLflow tracking URI (http://host:5000, sqlite:///mlflow.db, ...); without a value "
                        "MLflow's own default (MLFLOW_TRACKING_URI, else its local store)")
    e.add_argument("--experiment", help="MLflow experiment (default: the sweep's name)")
    _rank_by(e, "the suggestion behind suggested_lr (default: the sweep file's)")
    e.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    e.set_defaults(func=cmd_export)


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` says each option's default (options without one, or off by default, say nothing more)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _add_find(sub) -> None:
    f = sub.add_parser("find", help="one range test on this machine (no Ray)",
                       formatter_class=_DefaultsShown,
                       description="Run one learning-rate range test here, print the suggestions, write the curve and a plot.")
    f.add_argument("--workload", default="digits_cnn", help="built-in workload or package.module:function")
    f.add_argument("--optimizer", default="adam", help="optimizer registry name (lrrt_core.optimizers)")
    f.add_argument("--optimizer-arg", action="append", metavar="KEY=VALUE", help="optimizer keyword argument (repeatable)")
    f.add_argument("--axis", action="append", metavar="KEY=VALUE", help="workload keyword argument (repeatable)")
    f.add_argument("--batch-size", type=int, default=64, help="training batch size")
    f.add_argument("--seed", type=int, default=0, help="seed of the workload (model and data)")
    _range_test_flags(f)
    f.add_argument("--backend", choices=BACKENDS,
                   help="Keras backend (default: KERAS_BACKEND or Keras's own setting, else tensorflow)")
    f.add_argument("--out", help="output directory (default runs/find-<workload>-<optimizer>-bs<batch size>)")
    f.add_argument("-v", "--verbose", action="store_true", help="show the backend's start-up logs")
    f.set_defaults(func=cmd_find)


def _range_test_flags(f: argparse.ArgumentParser) -> None:
    """One flag per range-test setting (``--start-lr`` ... ``--steps-per-call``), with the
    type, choices, default and help text of its :class:`lrrt_core.settings.RangeTest` field."""
    from lrrt_core.settings import FIELDS

    for name, field in FIELDS.items():
        meta = field.metadata
        kind = {"choices": meta["choices"]} if meta["choices"] else {"type": meta["kind"]}
        f.add_argument("--" + name.replace("_", "-"), default=field.default, help=meta["help"], **kind)


def find_settings(args: argparse.Namespace):
    """The :class:`lrrt_core.settings.RangeTest` of ``lrrt find``'s parsed flags.

    Raises:
        ValueError: a setting out of its range (:class:`lrrt_core.settings.SettingError`).
    """
    from lrrt_core.settings import FIELDS, RangeTest

    return RangeTest(**{name: getattr(args, name) for name in FIELDS})


def _add_validate(sub) -> None:
    v = sub.add_parser("validate", help="check a sweep file and print its trial grid; launches nothing",
                       description="Check CONFIG (every key, the workload, the optimizers, the backend) and print the "
                                   "trials it would run and the resources it would ask for. Launches nothing and "
                                   "writes nothing; exit 2 with one line naming the file and the key when it is invalid.")
    v.add_argument("config", help="sweep file (YAML), e.g. sweeps/configs/quickstart.yaml")
    _resources(v)
    v.set_defaults(func=cmd_validate)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lrrt",
        description="Learning-rate range tests for grids of optimizers x batch sizes x seeds, on Ray Tune.",
    )
    from lrrt_core import __version__

    p.add_argument("--version", action="version", version=f"lrrt {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_sweep, _add_verify, _add_report, _add_export, _add_find, _add_validate):
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from sweeps.errors import InvalidInput

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except InvalidInput as err:  # a sweep file, an option, the output directory, the cluster
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
