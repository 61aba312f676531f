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

from lrrt_core.suggest import METHODS
from sweeps.launch import RayOptions
from sweeps.spec import InvalidInput

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
OUTPUT_NAMES = (".lock", "sweep.json", "trials", "verify", "ray", "plots", "trials.csv", "ranking.csv",
                "curves.parquet", "verify.csv", "recipes.json", "report.html", "report.md")
RANK_CHOICES = (*METHODS, "sma")

__all__ = ["UsageError", "SweepRun", "run_sweep", "run_verify", "write_report", "read_manifest_or_fail", "exit_code",
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


def _statuses(reduction) -> list[str]:
    """The status of every range test and every planned verification training."""
    statuses = list(reduction.trials["status"])
    if reduction.verification is not None and reduction.verification.ran:
        statuses += list(reduction.verification.rows["status"])
    return statuses


def exit_code(reduction, unfinished: int = 0) -> int:
    """0 all ok; 1 some range test or verification failed or missing; 130 when trials were
    left unfinished by an interrupt."""
    statuses = _statuses(reduction)
    if "missing" in statuses:
        return EXIT_INTERRUPTED if unfinished else EXIT_FAILED
    return EXIT_FAILED if "failed" in statuses else EXIT_OK


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
    ray: RayOptions = RayOptions(),
    fresh: bool = False,
    rank_by: str | None = None,
    say: Callable[[str], None] = _to_stderr,
) -> SweepRun:
    """Run (or resume) the sweep ``spec`` into ``out`` and write its report.

    Args:
        spec: a validated ``SweepSpec`` (resource overrides already applied).
        out: output directory; default ``runs/<spec.name>`` under the current directory.
        builder: the workload builder as a callable (shipped to the workers by value), when
            ``spec.workload`` names one (``sweeps.spec.builder_ref``); else ``None``.
        ray: connection and output options (``sweeps.launch.RayOptions``).
        fresh, rank_by: as the ``lrrt sweep`` options of the same names.
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
    from sweeps.spec import check_backend

    _check_options(ray.local_gpus, rank_by)
    check_backend(spec)
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

        if not ray.quiet:
            res = spec.resources
            say(f"lrrt: sweep {spec.name!r}: {len(trials)} trials, {res.cpus_per_trial:g} CPU"
                f" / {res.gpus_per_trial:g} GPU per trial -> {out}")
        launch = dict(ray=ray, builder=builder)
        return _launch_and_report(spec, trials, out, before_launch, launch, fresh, rank_by, say)
    finally:
        for fh in held:
            fh.close()


def _lock(out: Path, held: list) -> None:
    from sweeps import store

    try:
        held.append(store.lock_out_dir(out))
    except store.OutDirBusy as err:
        raise UsageError(f"--out: {err}; wait for it or stop it first") from None


def _launch_and_report(spec, trials, out: Path, before_launch, launch: dict, fresh: bool, rank_by,
                       say) -> SweepRun:
    from sweeps.launch import run_trials, wait_ray_stopped

    try:
        outcome = run_trials(spec, trials, out, before_launch=before_launch, fresh=fresh, **launch)
        if not launch["ray"].quiet and outcome.skipped:
            say(f"lrrt: resumed: {outcome.skipped} finished trials kept, {outcome.launched} run now")
        unfinished = outcome.unfinished
        if spec.verify is not None and not unfinished:
            unfinished = verify_stage(spec, trials, out, spec.verify, rank_by, launch, say)
        reduction = write_report(out, rank_by)
    finally:
        wait_ray_stopped()  # run_trials stops a local Ray in the background, overlapping the report
    return _finish(out, reduction, outcome.launched, outcome.skipped, unfinished, say)


def _finish(out: Path, reduction, launched: int, skipped: int, unfinished: int, say) -> SweepRun:
    missing = _statuses(reduction).count("missing")
    if missing:
        say(f"lrrt: {missing} trials did not finish; run the same command again to resume")
    return SweepRun(out_dir=out, reduction=reduction, launched=launched, skipped=skipped,
                    exit_code=exit_code(reduction, unfinished))


def verify_stage(spec, trials, out: Path, verify, rank_by: str | None, launch: dict, say) -> int:
    """Plan the verification trainings from the range tests on disk, record the plan in the
    manifest, run those without an ok record (same launcher, records, retries, resume).

    ``launch``: ``run_trials``'s ``ray`` and ``builder``. Returns the number of trainings
    left unfinished (an interrupt)."""
    from sweeps import store, verification
    from sweeps.launch import run_trials, verifications
    from sweeps.reduce import reduce_dir

    red = reduce_dir(out, rank_by="sma_rule" if rank_by == "sma" else rank_by)
    planned = verification.plan(spec, trials, red.ranking, verify)
    manifest = store.read_manifest(out) or {}
    manifest["spec"] = {**manifest.get("spec", {}), "verify": verify.model_dump(mode="json")}
    manifest["verify_trials"] = verification.manifest_entries(planned)
    store.write_manifest(out, manifest)
    if not launch["ray"].quiet:
        configs = len({t.config for t in planned})
        say(f"lrrt: verification: {len(planned)} short trainings ({configs} configurations x seeds x "
            f"{len(verify.candidates)} candidate rates)")
    if not planned:
        return 0
    return run_trials(spec, planned, out, kind=verifications(spec, verify), **launch).unfinished


def run_verify(
    out: str | Path,
    *,
    verify: dict[str, Any] | None = None,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
    max_concurrent: int | None = None,
    ray: RayOptions = RayOptions(),
    builder: Callable[..., Any] | None = None,
    rank_by: str | None = None,
    say: Callable[[str], None] = _to_stderr,
) -> SweepRun:
    """Add (or complete) the verification stage of the finished sweep in ``out`` (``lrrt verify``).

    Args:
        out: the sweep's output directory.
        verify: settings overriding the sweep file's ``verify:`` section (``epochs``,
            ``steps``, ``candidates``, ``top``, ``metric``); giving one of ``epochs``/``steps``
            replaces the other.
        builder: the workload builder callable, for a sweep that was run with one (a
            notebook's); a workload named in the sweep file needs none.
        others: as :func:`run_sweep`.

    Raises:
        InvalidInput: not a sweep directory, no finished range test, bad settings, busy.
    """
    from sweeps import store
    from sweeps.grid import expand
    from sweeps.launch import wait_ray_stopped
    from sweeps.spec import check_backend

    _check_options(ray.local_gpus, rank_by)
    out = Path(out).resolve()
    spec, settings = _verify_settings(out, verify or {}, builder)
    check_backend(spec)
    spec = spec.with_resources(cpus_per_trial, gpus_per_trial, max_concurrent)
    if not any(r.get("status") == "ok" for r in store.read_records(out).values()):
        raise UsageError(f"{out}: no finished range test to verify; run lrrt sweep first", key="dir")
    held: list = []
    try:
        _lock(out, held)
        launch = dict(ray=ray, builder=builder)
        try:
            unfinished = verify_stage(spec, expand(spec), out, settings, rank_by, launch, say)
            reduction = write_report(out, rank_by)
        finally:
            wait_ray_stopped()
        return _finish(out, reduction, 0, 0, unfinished, say)
    finally:
        for fh in held:
            fh.close()


def _verify_settings(out: Path, given: dict[str, Any], builder: Callable[..., Any] | None = None):
    """The sweep spec stored in ``out`` and its verification settings with ``given`` applied
    (``builder``: the Python callable a sweep run from the API was given)."""
    from pydantic import ValidationError

    from sweeps import store
    from sweeps.spec import VerifySpec, spec_from_dict

    manifest = read_manifest_or_fail(out, str(out)) if out.is_dir() else None
    if manifest is None:
        raise UsageError(f"{out}: sweep.json: not an lrrt sweep output directory (no sweep.json)", key="dir")
    spec = spec_from_dict(manifest["spec"], source=out / store.MANIFEST_NAME, builder=builder)
    base = spec.verify.model_dump() if spec.verify is not None else {}
    given = {k: v for k, v in given.items() if v is not None}
    if "epochs" in given or "steps" in given:
        base = {k: v for k, v in base.items() if k not in ("epochs", "steps")}
    try:
        return spec, VerifySpec.model_validate({**base, **given})
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        key = next((str(p) for p in first["loc"] if not isinstance(p, int)), "verify")
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "lrrt":
            msg = first["ctx"]["message"]
        raise UsageError(f"--{key}: {msg}", key=key) from None
