"""Run the trials of a sweep on Ray Tune: a local Ray instance or an existing cluster.

One kind of job: launching. :func:`connected` checks the request and connects (nothing
written yet) and yields a :class:`Launcher`; :meth:`Launcher.run` runs a list of trials in
one Tune experiment and hands each trial's :class:`~sweeps.store.TrialRecord` to
``on_record`` the moment the trial ends. Which trials to run, and where the records go, is
the caller's business (``sweeps.run`` with a :class:`~sweeps.store.SweepDir`): a run
launches only the trials without an ``ok`` record, so re-running the same command on the
same ``--out`` after Ctrl-C, a killed driver or a lost node re-runs unfinished and failed
trials and never the finished ones. Ray Tune's own experiment state goes to ``OUT/ray``
(or ``--storage``), one experiment per launch.

The parts, along Ray's own lines:

:mod:`sweeps.ray_session`
    Ray's lifecycle (start a local Ray or join a cluster, keep it for the next launch, stop
    it) and the capacity checks.
:mod:`sweeps.trial_kinds`
    range tests and verification trainings, and the record of an ended trial (no Ray).
:mod:`sweeps.tune_run`
    the Tune adapter: the Tuner, its callbacks, one experiment.
:mod:`sweeps.interrupts`, :mod:`sweeps.ray_patches`
    Ctrl-C while Tune is set up; the one patch of Ray's private state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from sweeps.backends import worker_env
from sweeps.interrupts import CTRL_C
from sweeps.ray_session import (LOCAL_RAY, alive_node_resources, check_builder, check_fits, idle_gpus_note,
                                preload_modules, quiet_ray_logs)
from sweeps.store import TrialRecord
from sweeps.trial_kinds import OnRecord, TrialKind

__all__ = ["RayOptions", "LaunchOutcome", "Launcher", "connected", "storage_uri"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """Where trials run and what the terminal shows: the options ``lrrt sweep`` and
    ``lrrt verify`` share (and ``sweeps.sweep`` / ``sweeps.verify`` take), declared once.

    Attributes:
        address: join this Ray cluster (``host:port``, ``auto``, ``ray://...``); ``None``:
            ``RAY_ADDRESS``, else a local Ray started for the run.
        local_gpus: GPUs to declare to a local Ray (when detection is wrong).
        storage: Tune's ``storage_path`` for its own state (default ``OUT/ray``).
        wait_for_nodes: launch a request no node can satisfy yet (autoscaling clusters).
        quiet: no progress output; verbose: show Ray's and the workers' logs.
    """

    address: str | None = None
    local_gpus: int | None = None
    storage: str | None = None
    wait_for_nodes: bool = False
    quiet: bool = False
    verbose: bool = False

    @classmethod
    def from_args(cls, args: Any) -> "RayOptions":
        """From parsed command-line options (missing ones keep their defaults)."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


@dataclasses.dataclass(frozen=True)
class LaunchOutcome:
    """What one launch did: trials run, and how many of them ended ok, failed or not at all."""

    launched: int = 0
    ok: int = 0
    failed: int = 0
    unfinished: int = 0
    experiment_path: str | None = None


def storage_uri(storage: str) -> str:
    """Tune needs an absolute storage path: resolve a local one, keep ``s3://``-style URIs."""
    return storage if "://" in storage else str(Path(storage).expanduser().resolve())


@dataclasses.dataclass(frozen=True)
class Launcher:
    """A Ray connection that passed every check: :meth:`run` launches trials on it.

    Made by :func:`connected`; nothing has been written to the output directory yet.
    """

    spec: Any
    ray: RayOptions
    builder: Callable[..., Any] | None
    owns_ray: bool
    storage_path: str

    def run(self, kind: TrialKind, trials: Sequence, *, on_record: OnRecord,
            attempts_before: dict[str, int] | None = None) -> LaunchOutcome:
        """Run ``trials`` in one Tune experiment; hand each trial's record to
        ``on_record(record, folder)`` the moment the trial ends.

        Args:
            kind: what the trials are (``sweeps.trial_kinds.range_tests`` or ``.verifications``).
            attempts_before: attempts each trial already had in earlier runs (from its
                old record), so a record counts every attempt.
        """
        statuses: dict[str, str] = {}

        def record(rec: TrialRecord, folder: str) -> None:
            on_record(rec, folder)
            statuses[rec.trial_id] = rec.status

        with CTRL_C.as_stop():
            from sweeps import tune_run  # imports Tune: after connect, while the workers load TensorFlow

            path = tune_run.fit(self.spec, kind, trials, record, attempts_before or {}, own_ray=self.owns_ray,
                                quiet=self.ray.quiet, storage_path=self.storage_path, builder=self.builder)
        ok = sum(statuses.get(t.trial_id) == "ok" for t in trials)
        failed = sum(statuses.get(t.trial_id) == "failed" for t in trials)
        return LaunchOutcome(launched=len(trials), ok=ok, failed=failed, unfinished=len(trials) - ok - failed,
                             experiment_path=path)


@contextlib.contextmanager
def connected(spec, out_dir: Path, n_trials: int, ray: RayOptions = RayOptions(),
              builder: Callable[..., Any] | None = None):
    """Check the request, connect to Ray and yield a :class:`Launcher`; nothing is written.

    Raises ``sweeps.errors.LaunchError`` before anything is written when the request cannot
    run (a builder that cannot be pickled, an unreachable address, more GPUs per trial than
    any node has). On leaving the block a local Ray we started is stopped (inside
    ``sweeps.ray_session.one_local_ray``: kept for the next launch): in the background
    when all went well (the caller's report overlaps with it; ``wait_ray_stopped``),
    at once after an error.

    ``out_dir``: the sweep's directory (Tune keeps its own state in ``OUT/ray`` unless
    ``ray.storage`` says otherwise). ``n_trials``: how many trials will run (decides what a
    local Ray preloads).
    """
    res = spec.resources
    quiet_ray_logs(ray.verbose)
    if builder is not None:
        check_builder(builder)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Our records are the results; Tune's CSV/JSON/TensorBoard loggers would rewrite every
    # report (the final one carries the whole curve) into three more files per trial.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    t_connect = time.monotonic()
    owns_ray = LOCAL_RAY.connect(ray.address, local_gpus=ray.local_gpus, verbose=ray.verbose,
                                 preload=preload_modules(res, n_trials, backend=spec.backend),
                                 env=worker_env(spec.backend, cpus_per_trial=res.cpus_per_trial,
                                                gpus_per_trial=res.gpus_per_trial))
    logger.info("Ray ready in %.1f s (%s)", time.monotonic() - t_connect, "local" if owns_ray else ray.address)
    try:
        nodes = alive_node_resources()
        check_fits(nodes, res.cpus_per_trial, res.gpus_per_trial, wait_for_nodes=ray.wait_for_nodes,
                   joined=not owns_ray)
        note = None if ray.quiet else idle_gpus_note(res.gpus_per_trial, nodes, not owns_ray)
        if note:
            print(note, file=sys.stderr)
        storage = storage_uri(ray.storage) if ray.storage else str(Path(out_dir) / "ray")
        yield Launcher(spec, ray, builder, owns_ray, storage)
    except BaseException:
        if owns_ray:
            LOCAL_RAY.abandon()
        raise
    if owns_ray:
        LOCAL_RAY.release()
