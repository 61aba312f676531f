"""One sweep, start to finish: the single code path behind ``lrrt sweep`` and ``sweeps.sweep()``.

One kind of job: sequencing the stages. :func:`run_sweep` takes a validated spec and does
what the command promises, as a list of steps: check the options and the output directory
(:class:`~sweeps.store.SweepDir`: refuse another sweep's directory unless ``fresh``, take
its lock), then :func:`launch_pending` — check the request and connect to Ray
(``sweeps.launch``, nothing written yet), prepare the directory (lock, ``--fresh`` clear,
:class:`~sweeps.store.Manifest`), run the trials without an ok record, each record written
by the ``SweepDir`` as its trial ends — then rebuild every output from the records
(``sweeps.report.rebuild``) and take the exit code from the statuses the ``Reduction``
counted. The CLI prints the summary table and exits with that code; the Python API wraps
the same :class:`SweepRun` in a ``SweepResult``. Bad input raises
:class:`~sweeps.errors.InvalidInput` (one of its subclasses) before anything is written;
failed trials never raise.

Ray is imported only by ``sweeps.launch`` and the modules it uses, which are loaded when a sweep
really starts.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable

from lrrt_core.suggest import ALIASES, METHODS, method_name
from sweeps.launch import RayOptions
from sweeps.errors import ROOT_KEY, UsageError

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
RANK_CHOICES = (*METHODS, *ALIASES)

__all__ = ["UsageError", "SweepRun", "run_sweep", "run_verify", "launch_pending",
           "read_manifest_or_fail", "exit_code", "verify_inputs", "verify_settings",
           "EXIT_OK", "EXIT_FAILED", "EXIT_INVALID", "EXIT_INTERRUPTED", "RANK_CHOICES"]


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


def read_manifest_or_fail(out: Path, what: str):
    """The directory's :class:`~sweeps.store.Manifest`, or ``None``; a damaged one is a one-line
    error, not a traceback."""
    from sweeps.store import SweepDir

    try:
        return SweepDir(out).read_manifest()
    except (ValueError, OSError) as err:
        raise UsageError(f"{what}: {out / 'sweep.json'} is damaged ({err}); restore it or start over with --fresh",
                         key="out") from None


def check_out_dir(sdir, fingerprint: str, fresh: bool) -> None:
    """Refuse an --out holding another sweep (or foreign files) unless --fresh."""
    read_manifest_or_fail(sdir.path, "--out")  # a damaged manifest: say so first
    sdir.check(fingerprint, fresh)


def exit_code(reduction, unfinished: int = 0) -> int:
    """0 all ok; 1 some range test or verification failed or missing; 130 when trials were
    left unfinished by an interrupt."""
    counts = reduction.status_counts()
    if counts["missing"]:
        return EXIT_INTERRUPTED if unfinished else EXIT_FAILED
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _check_options(local_gpus: int | None, rank_by: str | None) -> None:
    if local_gpus is not None and local_gpus < 0:
        raise UsageError("--local-gpus: must be >= 0")
    check_rank_by(rank_by, "--rank-by")


def check_rank_by(rank_by: str | None, option: str) -> None:
    """Refuse a ranking method that is neither a suggestion method nor an alias of one
    (``option`` names it in the message: ``--rank-by`` or ``rank_by``)."""
    if rank_by is not None and method_name(rank_by) not in METHODS:  # the registry now, aliases resolved
        raise UsageError(f"{option}: must be one of {', '.join([*METHODS, *ALIASES])}, got {rank_by!r}",
                         key=None if option.startswith("--") else option)


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
            ``spec.workload`` names one (``sweeps.naming.builder_ref``); else ``None``.
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
    from sweeps.grid import plan_sweep
    from sweeps.spec import check_backend
    from sweeps.store import SweepDir

    _check_options(ray.local_gpus, rank_by)
    check_backend(spec)
    plan = plan_sweep(spec)
    sdir = SweepDir(Path(out or Path("runs") / spec.name).resolve())
    check_out_dir(sdir, plan.fingerprint, fresh)
    with sdir.locked():
        if not ray.quiet:
            res = spec.resources
            say(f"lrrt: sweep {spec.name!r}: {len(plan.trials)} trials, {res.cpus_per_trial:g} CPU"
                f" / {res.gpus_per_trial:g} GPU per trial -> {sdir.path}")
        return _launch_and_report(plan, sdir, dict(ray=ray, builder=builder), fresh, rank_by, say)


def launch_pending(spec, kind, trials, sdir, *, ray: RayOptions, builder=None, manifest=None, fresh: bool = False):
    """Run the ``trials`` of ``kind`` that have no ok record in ``sdir``: check the request and
    connect (nothing written), prepare the directory (lock, ``--fresh`` clear, ``manifest``),
    launch, each record written as its trial ends. Returns ``(LaunchOutcome, trials kept)``."""
    from sweeps.launch import LaunchOutcome, connected

    todo, previous = sdir.pending(trials, kind.folder, fresh=fresh)
    if not todo:
        _prepare(sdir, manifest, fresh)
        return LaunchOutcome(), len(trials)
    prepared = manifest is None  # a later stage of a directory already prepared
    try:
        with connected(spec, sdir.path, len(todo), ray, builder) as launcher:
            _prepare(sdir, manifest, fresh)
            prepared = True
            attempts = {tid: int(r.attempts or 0) for tid, r in previous.items()}
            outcome = launcher.run(kind, todo, on_record=sdir.write_record, attempts_before=attempts)
    except KeyboardInterrupt:
        # Ctrl-C raised in the few lines between the manifest and the launch's own handler
        # (sweeps.interrupts, then Tune's): the same as one Tune caught, once the
        # directory is prepared. The records stay, the rest are unfinished, as the report says.
        if not prepared:
            raise
        outcome = LaunchOutcome(launched=len(todo), unfinished=len(todo))
    return outcome, len(trials) - len(todo)


def _prepare(sdir, manifest, fresh: bool) -> None:
    """Lock, clear (``fresh``) and write ``manifest`` (``None``: keep the directory's)."""
    if manifest is not None:
        sdir.prepare(manifest, fresh=fresh)


def _launch_and_report(plan, sdir, launch: dict, fresh: bool, rank_by, say) -> SweepRun:
    """The range tests of ``plan`` (a ``sweeps.grid.SweepPlan``), the verification stage, the report."""
    from sweeps.ray_session import one_local_ray, wait_ray_stopped
    from sweeps.report import rebuild
    from sweeps.store import Manifest
    from sweeps.trial_kinds import range_tests

    spec, trials = plan.spec, plan.trials
    try:
        with one_local_ray():  # the range tests and every verification round on one local Ray
            outcome, skipped = launch_pending(spec, range_tests(spec, trials), trials, sdir, **launch, fresh=fresh,
                                              manifest=Manifest.for_sweep(spec, trials, plan.fingerprint))
            if not launch["ray"].quiet and skipped:
                say(f"lrrt: resumed: {skipped} finished trials kept, {outcome.launched} run now")
            unfinished = outcome.unfinished
            if spec.verify is not None and not unfinished:
                unfinished = verify_stage(spec, trials, sdir, spec.verify, rank_by, launch, say)
        reduction = rebuild(sdir.path, rank_by=rank_by)
    finally:
        wait_ray_stopped()  # a launch stops a local Ray in the background, overlapping the report
    return _finish(sdir.path, reduction, outcome.launched, skipped, unfinished, say)


def _finish(out: Path, reduction, launched: int, skipped: int, unfinished: int, say) -> SweepRun:
    missing = reduction.status_counts()["missing"]
    if missing:
        say(f"lrrt: {missing} trials did not finish; run the same command again to resume")
    if not unfinished:  # the report is written: the sweep file's report.export (never fails the run)
        from sweeps.export import export_configured

        export_configured(out, say, reduction)
    return SweepRun(out_dir=out, reduction=reduction, launched=launched, skipped=skipped,
                    exit_code=exit_code(reduction, unfinished))


def verify_stage(spec, trials, sdir, verify, rank_by: str | None, launch: dict, say) -> int:
    """Plan the verification trainings from the range tests on disk, record the plan in the
    manifest, run those without an ok record (same launcher, records, retries, resume); then
    plan again with the results — candidates beyond the grid's edge where the best one sits
    there (``verification.plan``) — until a round adds nothing (at most ``verify.extend``
    extra rounds), and warn of configurations left at the edge.

    ``sdir``: the sweep's ``SweepDir``; ``launch``: the ``ray`` and ``builder`` of
    :func:`launch_pending`. Returns the number of trainings left unfinished (an interrupt)."""
    from sweeps import verification
    from sweeps.trial_kinds import verifications
    from sweeps.reduce import reduce_dir
    from sweeps.store import Manifest, TrialEntry

    red = reduce_dir(sdir.path, rank_by=method_name(rank_by))
    caps, planned, results = verification.divergence_caps(red.trials), [], None
    for round_ in range(1 + verify.extend):  # the grid, then edge extensions
        now = verification.plan(spec, trials, red.ranking, verify, results, caps)
        new = len({t.trial_id for t in now} - {t.trial_id for t in planned})
        if round_ and not new:
            break
        planned = now
        manifest = sdir.read_manifest() or Manifest()
        sdir.write_manifest(manifest.with_verification(verify.model_dump(mode="json"), planned))
        if not launch["ray"].quiet:
            configs = len({t.config for t in planned})
            say(f"lrrt: verification: {len(planned)} short trainings ({configs} configurations x seeds x "
                f"{len(verify.candidates)} candidate rates)" if not round_ else
                f"lrrt: verification: {new} more trainings beyond the candidate grid's edge")
        if not planned:
            return 0
        unfinished = launch_pending(spec, verifications(spec, verify), planned, sdir, **launch)[0].unfinished
        if unfinished:
            return unfinished
        results = verification.rows([TrialEntry.of(t) for t in planned], sdir.records(verification.VERIFY_DIR), [])
    for note in verification.edge_notes_of(results, verify, red.ranking, red.trials):
        say(f"lrrt: warning: {note}")
    return 0


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
    from sweeps.grid import expand
    from sweeps.ray_session import one_local_ray, wait_ray_stopped
    from sweeps.report import rebuild
    from sweeps.spec import check_backend
    from sweeps.store import SweepDir

    _check_options(ray.local_gpus, rank_by)
    sdir = SweepDir(Path(out).resolve())
    spec, settings = verify_inputs(_sweep_manifest(sdir.path), sdir.path, verify=verify, builder=builder,
                                   cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                                   max_concurrent=max_concurrent)
    check_backend(spec)
    if not any(r.ok for r in sdir.records().values()):
        raise UsageError(f"{sdir.path}: no finished range test to verify; run lrrt sweep first", key="dir")
    with sdir.locked():
        try:
            with one_local_ray():  # every verification round on one local Ray
                unfinished = verify_stage(spec, expand(spec), sdir, settings, rank_by, dict(ray=ray, builder=builder), say)
            reduction = rebuild(sdir.path, rank_by=rank_by)
        finally:
            wait_ray_stopped()
        return _finish(sdir.path, reduction, 0, 0, unfinished, say)


def _sweep_manifest(out: Path):
    """The :class:`~sweeps.store.Manifest` of the sweep in ``out``; ``UsageError`` when there is none."""
    manifest = read_manifest_or_fail(out, str(out)) if out.is_dir() else None
    if manifest is None:
        raise UsageError(f"{out}: sweep.json: not an lrrt sweep output directory (no sweep.json)", key="dir")
    return manifest


def verify_inputs(manifest, out: Path, *, verify: dict[str, Any] | None = None, builder: Callable[..., Any] | None = None,
                  cpus_per_trial: float | None = None, gpus_per_trial: float | None = None,
                  max_concurrent: int | None = None):
    """What ``lrrt verify`` / ``sweeps.verify`` run, from the sweep's manifest and the options
    (pure: reads nothing, starts nothing).

    Returns ``(spec, VerifySpec)``: the stored spec with the resource options applied
    (``None`` keeps the file's) and :func:`verify_settings` of its ``verify:`` section and
    ``verify``. ``builder``: the Python callable a sweep run from the API was given.
    """
    from sweeps.spec import spec_from_dict
    from sweeps.store import MANIFEST_NAME

    spec = spec_from_dict(manifest.spec, source=out / MANIFEST_NAME, builder=builder)
    settings = verify_settings(spec.verify.model_dump() if spec.verify is not None else None, verify or {})
    return spec.with_resources(cpus_per_trial, gpus_per_trial, max_concurrent), settings


def verify_settings(file_section: dict[str, Any] | None, given: dict[str, Any]):
    """The verification settings: the sweep file's ``verify:`` section with the options that
    were ``given`` (not ``None``) on top; giving ``epochs`` or ``steps`` replaces both of the
    file's. A bad value raises ``UsageError`` naming the option (``--candidates: ...``).

    Example:
        >>> verify_settings({"epochs": 3, "top": 2}, {"steps": 20, "top": None}).model_dump(include={"epochs", "steps", "top"})
        {'epochs': None, 'steps': 20, 'top': 2}
    """
    from sweeps.spec_sections import VerifySpec
    from sweeps.validation import ValidationError, translate

    base = dict(file_section or {})
    given = {k: v for k, v in given.items() if v is not None}
    if "epochs" in given or "steps" in given:
        base = {k: v for k, v in base.items() if k not in ("epochs", "steps")}
    try:
        return VerifySpec.model_validate({**base, **given})
    except ValidationError as err:
        key, message = translate(err, VerifySpec)
        option = key.split("[", 1)[0].split(".", 1)[0] if key != ROOT_KEY else "verify"
        raise UsageError(f"--{option}: {message}", key=option) from None
