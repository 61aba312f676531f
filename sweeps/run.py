"""One sweep, start to finish: the single code path behind ``lrrt sweep`` and ``sweeps.sweep()``.

:func:`run_sweep` takes a validated spec and does what the command promises: refuse an
output directory that holds another sweep (unless ``fresh``), take the directory's lock,
launch the trials that have no ok record yet on Ray (``sweeps.launch``), rebuild every
output from the records (``sweeps.reduce``) and say which exit code the outcome means.
The CLI prints the summary table and exits with that code; the Python API wraps the same
:class:`SweepRun` in a ``SweepResult``. Bad input raises :class:`~sweeps.spec.InvalidInput`
(one of its subclasses) before anything is written; failed trials never raise.

Ray is imported only by ``sweeps.launch``, which is loaded when a sweep really starts.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from sweeps.spec import InvalidInput

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
OUTPUT_NAMES = (".lock", "sweep.json", "trials", "ray", "plots", "trials.csv", "ranking.csv",
                "curves.parquet", "report.html", "report.md")
RANK_CHOICES = ("steepest", "valley", "minimum", "minimum_div10", "sma_rule", "sma")

__all__ = ["UsageError", "SweepRun", "run_sweep", "write_report", "read_manifest_or_fail", "exit_code",
           "EXIT_OK", "EXIT_FAILED", "EXIT_INVALID", "EXIT_INTERRUPTED", "RANK_CHOICES"]


class UsageError(InvalidInput):
    """Bad input found before anything ran (an option, the output directory): exit 2."""


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


@dataclasses.dataclass
class SweepRun:
    """What :func:`run_sweep` did: the directory, the reduction of its records and the exit code.

    Attributes:
        out_dir: the sweep's output directory (absolute).
        reduction: ``sweeps.reduce.Reduction`` of every record, as written to the report.
        launched: trials run by this call; ``skipped``: trials kept from an earlier run.
        exit_code: 0 all ok, 1 some failed or missing, 130 interrupted (Ctrl-C in Tune).
    """

    out_dir: Path
    reduction: Any
    launched: int
    skipped: int
    exit_code: int


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


def read_manifest_or_fail(out: Path, what: str) -> dict | None:
    """The directory's sweep.json, or ``None``; a damaged one is a one-line error, not a traceback."""
    from sweeps import store

    try:
        return store.read_manifest(out)
    except (ValueError, OSError) as err:
        raise UsageError(f"{what}: {out / 'sweep.json'} is damaged ({err}); restore it or start over with --fresh",
                         key="out") from None


def check_out_dir(out: Path, spec, fresh: bool) -> None:
    """Refuse an --out holding another sweep (or foreign files) unless --fresh."""
    from sweeps import store

    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a directory")
    manifest = read_manifest_or_fail(out, "--out")
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
            f"other grid, settings or workload builder); rerun with --fresh (fresh=True) to discard them, "
            f"or choose another --out"
        )


def _clear(out: Path) -> None:
    for name in OUTPUT_NAMES:
        if name == ".lock":  # held by this process: deleting it would let a second driver in
            continue
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def write_report(out: Path, rank_by: str | None):
    """Rebuild every output of ``out`` from its records; return the ``Reduction``."""
    from sweeps.reduce import rebuild

    rank_by = "sma_rule" if rank_by == "sma" else rank_by  # keras-lr-finder's name, as in sweep files
    return rebuild(out, rank_by=rank_by)


def exit_code(reduction, unfinished: int = 0) -> int:
    """0 all ok; 1 some failed or missing; 130 when trials were left unfinished by an interrupt."""
    missing = int((reduction.trials["status"] == "missing").sum())
    failed = int((reduction.trials["status"] == "failed").sum())
    if missing:
        return EXIT_INTERRUPTED if unfinished else EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK


def _check_options(local_gpus: int | None, rank_by: str | None) -> None:
    if local_gpus is not None and local_gpus < 0:
        raise UsageError("--local-gpus: must be >= 0")
    if rank_by is not None and rank_by not in RANK_CHOICES:
        raise UsageError(f"--rank-by: must be one of {', '.join(RANK_CHOICES)}, got {rank_by!r}")


def run_sweep(
    spec,
    *,
    out: str | Path | None = None,
    builder: Callable[..., Any] | None = None,
    address: str | None = None,
    local_gpus: int | None = None,
    storage: str | None = None,
    wait_for_nodes: bool = False,
    fresh: bool = False,
    quiet: bool = False,
    verbose: bool = False,
    rank_by: str | None = None,
    say: Callable[[str], None] = _to_stderr,
) -> SweepRun:
    """Run (or resume) the sweep ``spec`` into ``out`` and write its report.

    Args:
        spec: a validated ``SweepSpec`` (resource overrides already applied).
        out: output directory; default ``runs/<spec.name>`` under the current directory.
        builder: the workload builder as a callable (shipped to the workers by value), when
            ``spec.workload`` names one (``sweeps.spec.builder_ref``); else ``None``.
        address, local_gpus, storage, wait_for_nodes, fresh, quiet, verbose, rank_by: as the
            ``lrrt sweep`` options of the same names.
        say: where status lines go (stderr by default; not used when ``quiet``).

    Returns:
        a :class:`SweepRun`; failed trials do not raise, its ``exit_code`` says so.

    Raises:
        InvalidInput: bad options, an output directory holding another sweep or busy, an
            unreachable cluster, a request no node can satisfy, a builder that cannot be
            sent to the workers. Nothing is written then.
    """
    from sweeps import store
    from sweeps.grid import expand

    _check_options(local_gpus, rank_by)
    trials = expand(spec)
    out = Path(out or Path("runs") / spec.name).resolve()
    check_out_dir(out, spec, fresh)
    held: list = []  # the directory's lock, released when this function returns
    try:
        if out.is_dir():
            _lock(out, held)  # refuse a second driver before starting Ray

        def before_launch() -> None:
            out.mkdir(parents=True, exist_ok=True)
            if not held:
                _lock(out, held)
            if fresh:
                _clear(out)
            store.write_manifest(out, _manifest(spec, trials))

        if not quiet:
            res = spec.resources
            say(f"lrrt: sweep {spec.name!r}: {len(trials)} trials, {res.cpus_per_trial:g} CPU"
                f" / {res.gpus_per_trial:g} GPU per trial -> {out}")
        launch = dict(address=address, local_gpus=local_gpus, storage=storage, wait_for_nodes=wait_for_nodes,
                      fresh=fresh, quiet=quiet, verbose=verbose, builder=builder)
        return _launch_and_report(spec, trials, out, before_launch, launch, rank_by, say)
    finally:
        for fh in held:
            fh.close()


def _lock(out: Path, held: list) -> None:
    from sweeps import store

    try:
        held.append(store.lock_out_dir(out))
    except store.OutDirBusy as err:
        raise UsageError(f"--out: {err}; wait for it or stop it first") from None


def _launch_and_report(spec, trials, out: Path, before_launch, launch: dict, rank_by, say) -> SweepRun:
    from sweeps.launch import run_trials, wait_ray_stopped

    try:
        outcome = run_trials(spec, trials, out, before_launch=before_launch, **launch)
        if not launch["quiet"] and outcome.skipped:
            say(f"lrrt: resumed: {outcome.skipped} finished trials kept, {outcome.launched} run now")
        reduction = write_report(out, rank_by)
    finally:
        wait_ray_stopped()  # run_trials stops a local Ray in the background, overlapping the report
    code = exit_code(reduction, outcome.unfinished)
    if reduction.n_missing:
        say(f"lrrt: {reduction.n_missing} trials did not finish; run the same command again to resume")
    return SweepRun(out_dir=out, reduction=reduction, launched=outcome.launched, skipped=outcome.skipped,
                    exit_code=code)
