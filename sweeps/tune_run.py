"""One Tune experiment: the trials of one launch on the connected Ray, each record handed on as
its trial ends.

The Tune adapter: :func:`fit` builds the ``Tuner`` (:func:`make_tuner`: one grid entry per
pending trial, lrrt's callbacks, no reporter, the Ctrl-C stopper) and runs it. Its
callbacks are :class:`RecordMaker` (each ended trial's record, to ``on_record``, at once)
and :class:`ProgressCallback` (``sweeps.progress.Progress``, lrrt's one progress line).
This module imports Ray Tune when it is imported: ``sweeps.launch`` imports it after
connecting, so a local Ray's workers load TensorFlow meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Callable, Sequence

from ray import tune
from ray.tune import Callback, ProgressReporter, Stopper
from ray.tune.experiment import Trial

from sweeps import store
from sweeps.interrupts import CTRL_C
from sweeps.progress import Progress
from sweeps.ray_patches import tune_actors_without_runtime_env
from sweeps.trial_kinds import OnRecord, TrialKind, error_text, trial_outcome, trial_record

__all__ = ["fit", "make_tuner", "RecordMaker", "ProgressCallback", "SilentReporter", "StopOnCtrlC"]

logger = logging.getLogger(__name__)


def _tid(trial) -> str:
    return trial.config["trial"]["trial_id"]


class RecordMaker(Callback):
    """Builds each trial's record as soon as it ends (driver side) and hands it to ``on_record``.

    Args:
        kind: what the trials are. trials_by_id: the grid trials of the launch.
        attempts_before: attempts each trial had in earlier runs (a record counts them all).
        progress: the progress line to tell, or ``None``.
    """

    def __init__(self, kind: TrialKind, trials_by_id: dict, attempts_before: dict[str, int], on_record: OnRecord,
                 progress: Progress | None) -> None:
        self.kind, self.trials_by_id, self.attempts_before = kind, trials_by_id, attempts_before
        self.on_record, self.progress = on_record, progress
        self.recovers: dict[str, int] = {}

    def _emit(self, trial, status: str, error: str | None, payload: dict | None) -> None:
        tid = _tid(trial)
        attempts = self.attempts_before.get(tid, 0) + self.recovers.get(tid, 0) + 1
        self.on_record(trial_record(trial, self.kind, self.trials_by_id[tid], attempts, status, error, payload),
                       self.kind.folder)
        if self.progress:
            self.progress.finished(tid, status == "ok")

    def on_trial_recover(self, iteration, trials, trial, **info):
        tid = _tid(trial)
        self.recovers[tid] = self.recovers.get(tid, 0) + 1
        logger.warning("trial %s failed (%s); retrying", self.trials_by_id[tid].name, error_text(trial))
        if self.progress:
            self.progress.retried(tid)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._emit(trial, *trial_outcome(trial, self.kind))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._emit(trial, "failed", error_text(trial), None)


class ProgressCallback(Callback):
    """Feeds :class:`~sweeps.progress.Progress`: starts and steps as they come, and after every
    step of Tune's loop the number of trials Tune holds as RUNNING."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_trial_start(self, iteration, trials, trial, **info):
        self.progress.started(_tid(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.progress.stepped(_tid(trial), int(result.get("step", 0)))

    def on_step_end(self, iteration, trials, **info):
        self.progress.observe(sum(t.status == Trial.RUNNING for t in trials))


class SilentReporter(ProgressReporter):
    """A Tune progress reporter that reports nothing: :class:`Progress` is lrrt's one line.

    Tune's default in a Jupyter kernel (``JupyterNotebookReporter``) clears the cell's
    output when it starts and then redraws HTML tables; on a terminal, with ``verbose=0``,
    its ``CLIReporter`` prints nothing, which this matches everywhere.
    """

    def should_report(self, trials, done=False) -> bool:
        return False

    def report(self, trials, done, *sys_info) -> None:
        return None


class StopOnCtrlC(Stopper):
    """Ends the whole run once Ctrl-C was pressed while Tune was being set up (``sweeps.interrupts``)."""

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return CTRL_C.pressed()


def make_tuner(spec, kind: TrialKind, todo: Sequence, callbacks: list, storage_path: str,
               builder: Callable[..., Any] | None):
    """The Tune ``Tuner`` of one launch: one grid entry per pending trial, our callbacks, no reporter."""
    res = spec.resources
    trainable = kind.trainable if builder is None else tune.with_parameters(kind.trainable, builder=builder)
    prefix = "run" if kind.folder == store.TRIALS_DIR else kind.folder
    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial}),
        param_space={"trial": tune.grid_search([kind.make_config(t) for t in todo])},
        tune_config=tune.TuneConfig(
            num_samples=1,
            max_concurrent_trials=res.max_concurrent,
            reuse_actors=True,
            trial_name_creator=lambda tr: tr.config["trial"]["name"],
            trial_dirname_creator=lambda tr: f'{tr.config["trial"]["name"]}-{tr.config["trial"]["trial_id"][:6]}',
        ),
        run_config=tune.RunConfig(
            name=time.strftime(prefix + "-%Y%m%d-%H%M%S"),
            storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=spec.retries),
            stop=StopOnCtrlC(),
            callbacks=callbacks,
            progress_reporter=SilentReporter(),
            verbose=0,
            log_to_file=True,
        ),
    )


def fit(spec, kind: TrialKind, todo: Sequence, on_record: OnRecord, attempts_before: dict[str, int], *,
        own_ray: bool, quiet: bool, storage_path: str, builder: Callable[..., Any] | None) -> str:
    """Run ``todo`` in one Tune experiment (every Tune object lives and dies in here); hand
    each trial's record to ``on_record`` as it ends. Returns the experiment's path.

    ``own_ray``: a local Ray this process started (its prestarted workers can take Tune's
    actors, ``sweeps.ray_patches``). ``quiet``: no progress line.
    """
    progress = None if quiet else Progress(len(todo), kind.steps, label=f"{kind.what}s")
    callbacks = [RecordMaker(kind, {t.trial_id: t for t in todo}, attempts_before, on_record, progress)]
    if progress:
        callbacks.append(ProgressCallback(progress))
    tuner = make_tuner(spec, kind, todo, callbacks, storage_path, builder)
    t_fit = time.monotonic()
    with tune_actors_without_runtime_env() if own_ray else contextlib.nullcontext():
        result_grid = tuner.fit()
    logger.info("Tune finished %d trials in %.1f s", len(todo), time.monotonic() - t_fit)
    if progress:
        progress.close()
    return result_grid.experiment_path
