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
"""

from __future__ import annotations

import contextlib
import gc
import dataclasses
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from lrrt_core.workloads import workload_dirs
from sweeps import store
from sweeps.backends import DEFAULT_BACKEND, preload, worker_env
from sweeps.progress import Progress
from sweeps.errors import LaunchError
from sweeps.spec import DEFAULT_STEPS
from sweeps.store import TrialRecord
from sweeps.trainable import final_payload, run_trial, run_verify, trial_config

logger = logging.getLogger(__name__)

#: where a launch hands each finished trial's record: ``on_record(record, folder)``.
OnRecord = Callable[[TrialRecord, str], None]

LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2  # curves are small; leave the RAM to TensorFlow
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
# Every trial imports these. A local Ray can import them in each worker as the worker starts
# (Ray's ``preload_python_modules``), which happens while the driver is still setting up
# Tune, so the first trial on a worker does not begin with a 3-4 s TensorFlow import.
PRELOAD_MODULES = ("tensorflow", "keras", "lrrt_core.runner")


def local_cpus() -> int:
    """The CPUs a local Ray will see (this process's CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def preload_modules(resources, n_trials: int, cpus: int | None = None,
                    backend: str = DEFAULT_BACKEND) -> tuple[str, ...]:
    """What a local Ray should preload into its workers: :data:`PRELOAD_MODULES` (for JAX or
    torch: that backend's package, TensorFlow and Keras, ``sweeps.backends.preload``) or nothing.

    Ray prestarts one worker per CPU and would load TensorFlow (~4 s of CPU, a few hundred
    MB each) into every one of them. That pays when the trials keep at least half of those
    workers busy: CPU-only trials on a share of one or two CPUs each. GPU trials are
    long enough that the import does not matter, and a machine with 64 CPUs running eight
    8-CPU trials should not hold 56 idle copies of TensorFlow.
    """
    if resources.gpus_per_trial > 0 or n_trials <= 0:
        return ()
    cpus = local_cpus() if cpus is None else cpus
    slots = min(n_trials, int(cpus // resources.cpus_per_trial), resources.max_concurrent or n_trials)
    modules = PRELOAD_MODULES if backend == DEFAULT_BACKEND else (*preload(backend), "lrrt_core.runner")
    return modules if 2 * slots >= cpus else ()


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    """Set environment variables for the duration of the block, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_builder(builder: Callable[..., Any]) -> None:
    """Refuse, before Ray starts, a workload builder that cannot be sent to the workers.

    A builder defined in a notebook or script is pickled by value with Ray's cloudpickle
    (its code and the globals it uses); a lock, an open file or a live session among them
    cannot be. The error names the builder and what failed.
    """
    from ray import cloudpickle

    try:
        cloudpickle.dumps(builder)
    except Exception as err:  # pickling raises TypeError, PicklingError, AttributeError, ...
        name = getattr(builder, "__qualname__", None) or repr(builder)
        raise LaunchError(
            f"workload: the builder {name!r} cannot be sent to the Ray workers ({type(err).__name__}: {err}); "
            "keep unpicklable objects (locks, open files, sessions) out of it and of the globals it uses, "
            "or put it in a module and pass 'module:function'",
            key="workload",
        ) from None


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


# --------------------------------------------------------------------------- connecting


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on an ``--address host:port`` nothing listens on (Ray itself waits long)."""
    if address in ("auto", "local") or address.startswith("ray://"):
        hostport = address[len("ray://"):] if address.startswith("ray://") else None
        if hostport is None:
            return
    else:
        hostport = address
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise LaunchError(f"--address: {address!r} is not host:port, 'auto' or ray://host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise LaunchError(f"--address: cannot reach a Ray cluster at {hostport} ({err.strerror or err})") from None


@contextlib.contextmanager
def _tune_actors_without_runtime_env():
    """Let Tune's trial actors run on the workers a local Ray prestarted (TensorFlow loaded).

    Ray 2.60's Tune gives every trainable actor ``runtime_env={"env_vars": {...}}``:
    ``PL_DISABLE_FORK=1`` (a PyTorch Lightning workaround, ray#28197) plus a few variables it
    copies from the driver. Ray starts a fresh worker for any actor with a non-empty runtime
    env instead of using an idle prestarted one, so each trial actor would import TensorFlow
    from scratch. On a local Ray the workers inherit the driver's environment, in which
    :func:`connect` also sets ``PL_DISABLE_FORK=1``; Tune's copy is therefore redundant and
    is left out while the trials are launched. Ray's own behaviour is unchanged otherwise.
    """
    from ray.tune.execution import class_cache

    defaults, propagate = dict(class_cache.DEFAULT_ENV_VARS), set(class_cache.ENV_VARS_TO_PROPAGATE)
    class_cache.DEFAULT_ENV_VARS.clear()
    class_cache.ENV_VARS_TO_PROPAGATE.clear()
    try:
        yield
    finally:
        class_cache.DEFAULT_ENV_VARS.update(defaults)
        class_cache.ENV_VARS_TO_PROPAGATE.update(propagate)


_STOPPING: list[threading.Thread] = []


def stop_local_ray_in_background() -> None:
    """``ray.shutdown()`` of the local Ray we started, in a background thread.

    Most of its ~1.5 s is waiting for Ray's processes to exit; meanwhile the driver writes
    the report. The thread is not a daemon, so the interpreter waits for it at exit;
    :func:`wait_ray_stopped` (and the next :func:`connect`) wait for it explicitly.
    """
    import ray

    thread = threading.Thread(target=ray.shutdown, name="lrrt-ray-shutdown")
    thread.start()
    _STOPPING.append(thread)


def stop_local_ray() -> None:
    """``ray.shutdown()`` now, in this thread (after an error: nothing to overlap with)."""
    import ray

    wait_ray_stopped()
    ray.shutdown()


def wait_ray_stopped() -> None:
    """Wait until a shutdown started by :func:`stop_local_ray_in_background` is done."""
    while _STOPPING:
        _STOPPING.pop().join()


#: :func:`one_local_ray`'s state: how deep in its blocks, and whether a local Ray is kept up.
_KEEP = {"depth": 0, "up": False}


@contextlib.contextmanager
def one_local_ray():
    """Run every launch inside the block on one local Ray: the first starts it, the later ones
    (a sweep's verification rounds after its range tests) use it, and it stops in the
    background when the block ends (:func:`wait_ray_stopped`). Starting a local Ray costs
    seconds (Ray's processes, the workers' TensorFlow import), each time."""
    _KEEP["depth"] += 1
    try:
        yield
    finally:
        _KEEP["depth"] -= 1
        if not _KEEP["depth"] and _KEEP["up"]:
            _KEEP["up"] = False
            gc.collect()  # Tune's handles, while Ray is up (see connected)
            stop_local_ray_in_background()


def quiet_ray_logs(verbose: bool) -> None:
    """Silence Ray's and Tune's driver-side log lines (lrrt shows progress and failures itself).

    Called before Ray is first imported: in a notebook, ``import ray`` itself logs at INFO
    that ``ipywidgets`` is missing.
    """
    if verbose:
        return
    for name in ("ray.tune", "ray.train", "ray.air", "ray.widgets"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def connect(address: str | None, *, local_gpus: int | None, verbose: bool, preload: Sequence[str] = (),
            env: dict[str, str] | None = None) -> bool:
    """Start a local Ray (returns True: we own it) or join ``address`` (returns False).

    ``preload``: modules a local Ray imports into its workers as they start (see
    :func:`preload_modules`); ignored when joining a cluster, whose nodes have their own
    configuration. ``env``: more variables for every worker (``sweeps.backends.worker_env``:
    ``KERAS_BACKEND``), inherited on a local Ray, the job's ``runtime_env`` on a cluster.
    """
    import ray

    wait_ray_stopped()

    address = address or os.environ.get("RAY_ADDRESS") or None
    if _KEEP["up"] and not address:  # the local Ray an earlier launch of this block started
        return True
    if address and ray.is_initialized():  # joined by an earlier launch (a sweep's verification rounds)
        return False
    env_vars = {**WORKER_ENV, **(env or {})}
    log_level = logging.INFO if verbose else logging.ERROR
    quiet_ray_logs(verbose)
    if address:
        _check_reachable(address)
        if local_gpus is not None:
            raise LaunchError("--local-gpus: only for a local Ray instance; a cluster declares its own GPUs")
        try:
            ray.init(address=address, runtime_env={"env_vars": env_vars}, logging_level=log_level,
                     log_to_driver=verbose)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise LaunchError(f"--address: cannot join the Ray cluster at {address}: {err}") from None
        return False
    # Local: we start Ray, so its workers inherit this process's environment (set around
    # ray.init: the raylet copies it and passes it on to every worker). No job runtime_env:
    # a runtime_env would make Ray start fresh workers for the trials instead of using the
    # ones it prestarts (which have already imported TensorFlow when ``preload`` says so).
    # PYTHONPATH: the workers import workloads named package.module:function from the same
    # folders the driver checked them in (lrrt_core.workloads.workload_dirs).
    env_vars["PL_DISABLE_FORK"] = "1"  # what Tune would set per actor (_tune_actors_without_runtime_env)
    env_vars["PYTHONPATH"] = os.pathsep.join(p for p in (*workload_dirs(), os.environ.get("PYTHONPATH", "")) if p)
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        object_store_memory=int(os.environ.get("LRRT_OBJECT_STORE_BYTES", LOCAL_OBJECT_STORE_BYTES)),
        logging_level=log_level,
        log_to_driver=verbose,
    )
    if preload:
        kwargs["_system_config"] = {"preload_python_modules": list(preload)}
    if local_gpus is not None:
        kwargs["num_gpus"] = local_gpus
    with _environ(env_vars):
        # address="local": always a new instance. With no address, ray.init() would join the
        # cluster recorded in <ray temp dir>/ray_current_cluster by `ray start` (also a dead one).
        ray.init(address="local", **kwargs)
    return True


def check_fits(nodes: Sequence[Mapping[str, float]], cpus_per_trial: float, gpus_per_trial: float, *,
               wait_for_nodes: bool, joined: bool = False) -> None:
    """Refuse a per-trial request that no node of the cluster (``nodes``: each live node's
    resources, :func:`alive_node_resources`) can ever satisfy.

    Ray would otherwise keep the trials pending forever. ``wait_for_nodes`` skips the check
    for an autoscaling cluster whose GPU nodes are not up yet. ``joined``: an existing
    cluster (``--address``), which the message calls a cluster even with one node alive.
    """
    if wait_for_nodes:
        return
    if any(r.get("CPU", 0.0) >= cpus_per_trial and r.get("GPU", 0.0) >= gpus_per_trial for r in nodes):
        return
    best_gpu = max((r.get("GPU", 0.0) for r in nodes), default=0.0)
    best_cpu = max((r.get("CPU", 0.0) for r in nodes), default=0.0)
    where = "this machine" if len(nodes) == 1 and not joined else "any node of the cluster"
    if gpus_per_trial > best_gpu:
        raise LaunchError(
            f"--gpus-per-trial: {gpus_per_trial:g} GPU per trial, but {where} has {best_gpu:g}; "
            "ask for fewer (fractions like 0.5 share a GPU), use --local-gpus N if detection is wrong, "
            "or --wait-for-nodes on an autoscaling cluster"
        )
    if cpus_per_trial > best_cpu:
        raise LaunchError(f"--cpus-per-trial: {cpus_per_trial:g} CPUs per trial, but the largest node has {best_cpu:g}")
    raise LaunchError(
        f"--cpus-per-trial/--gpus-per-trial: no node has {cpus_per_trial:g} CPUs and {gpus_per_trial:g} GPUs "
        "together; ask for fewer CPUs per GPU trial, or --wait-for-nodes on an autoscaling cluster"
    )


def alive_node_resources() -> list[dict[str, float]]:
    """The resources (``CPU``, ``GPU``, ...) of each live node of the connected Ray."""
    import ray

    return [n["Resources"] for n in ray.nodes() if n.get("Alive")]


def idle_gpus_note(gpus_per_trial: float, nodes: Sequence[Mapping[str, float]], joined: bool) -> str | None:
    """The note a sweep prints when it leaves GPUs idle: the machine (or cluster) has some,
    but ``gpus_per_trial`` is 0, so every trial runs on CPUs with the GPUs hidden."""
    total = sum(n.get("GPU", 0.0) for n in nodes)
    if gpus_per_trial > 0 or total <= 0:
        return None
    where = "this machine has" if len(nodes) == 1 and not joined else "the cluster has"
    return (f"lrrt: note: {where} {total:g} GPU{'' if total == 1 else 's'}, but gpus_per_trial is 0: the trials "
            "run on CPUs only; --gpus-per-trial 1 (or a fraction such as 0.25, to share one) runs them on the GPUs")


# --------------------------------------------------------------------------- trial kinds


@dataclasses.dataclass(frozen=True)
class TrialKind:
    """What differs between a sweep's range tests and its verification trainings; the
    launching, records, retries and resume are the same for both.

    Attributes:
        what: how progress and errors name a trial of this kind.
        folder: the records folder in OUT (``trials``, ``verify``).
        payload_key: the record key of the trial's result (``curve``, ``result``).
        trainable: the Tune function trainable.
        make_config: trial -> the JSON-able config the trainable gets.
        check: payload -> why an ended trial counts as failed (``None``: ok).
        steps: progress units per trial (for the ETA).
    """

    what: str
    folder: str
    payload_key: str
    trainable: Callable[[dict], None]
    make_config: Callable[[Any], dict]
    check: Callable[[dict], str | None]
    steps: int


def _check_curve(curve: dict) -> str | None:
    return None if curve.get("lrs") else "no finite loss: the first step's loss was NaN/inf (lower start_lr?)"


def range_tests(spec, trials: Sequence = ()) -> TrialKind:
    """The range tests of ``spec`` (``trials``: to average their step counts for the ETA)."""
    steps = [spec.range_test.steps_for(t.batch_size) or DEFAULT_STEPS for t in trials] or [DEFAULT_STEPS]
    return TrialKind("range test", store.TRIALS_DIR, "curve", run_trial, lambda t: trial_config(t, spec),
                     _check_curve, max(1, sum(steps) // len(steps)))


def verifications(spec, verify) -> TrialKind:
    """The verification trainings of ``spec`` with the settings ``verify`` (a ``VerifySpec``).

    A training that diverges is a result (its candidate scores worst), not a failure."""
    from sweeps.verification import VERIFY_DIR, verify_config

    return TrialKind("verification", VERIFY_DIR, "result", run_verify, lambda t: verify_config(t, spec, verify),
                     lambda result: None, 1)


# --------------------------------------------------------------------------- callbacks


# Ray's own wording when a trial's process or node is gone (not a Python error of the trial).
_DEATH_PHRASES = ("the actor died", "worker process has died", "nodedied", "node died unexpectedly",
                  "actordiederror", "actor is dead")


def error_summary(text: str) -> str:
    """The readable line of Tune's ``error.txt`` for the trial's last failure.

    The file holds one ``Failure # n`` block per attempt; a Python error ends with
    ``Type: message``; a dead worker (``os._exit``, OOM kill, lost node) says the actor died.
    """
    blocks = re.split(r"^Failure # \d+ .*$", text, flags=re.M)
    last = next((b for b in reversed(blocks) if b.strip()), "")
    lines = [ln.strip() for ln in last.splitlines() if ln.strip()]
    if not lines:
        return "trial failed (no error text recorded)"
    lowered = last.lower()
    if any(phrase in lowered for phrase in _DEATH_PHRASES):
        detail = next((ln for ln in lines if "exit detail" in ln.lower()), "")
        detail = detail.split("Worker exit detail:", 1)[-1].split(". Some common causes")[0].strip()
        return "worker process died" + (f" ({detail})" if detail else "")
    exc_lines = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*:", ln)]
    return (exc_lines[-1] if exc_lines else lines[-1])[:500]


def _error_text(trial) -> str:
    try:
        return error_summary(Path(trial.error_file).read_text(errors="replace"))
    except (OSError, TypeError):
        return "trial failed (no error text recorded)"


def _record(trial, kind: TrialKind, entry, attempts: int, status: str, error: str | None,
            payload: dict | None) -> TrialRecord:
    """The record of a trial that ended (``entry``: its grid trial; ``attempts``: all so far)."""
    last = trial.last_result or {}
    return TrialRecord(trial_id=entry.trial_id, name=entry.name, config=entry.config, params=entry.params(),
                       status=status, error=error, attempts=attempts, retried=attempts > 1, node=last.get("node"),
                       node_ip=last.get("node_ip"), gpu_ids=last.get("gpu_ids", ""), wall_s=last.get("wall_s"),
                       finished_at=time.time(), payload=payload, payload_key=kind.payload_key)


def _ended(trial, kind: TrialKind) -> tuple[str, str | None, dict | None]:
    """Status, error and payload of a trial Tune calls complete."""
    payload = final_payload(trial.last_result)
    if payload is None:
        return "failed", f"trial ended without reporting its {kind.payload_key}", None
    problem = kind.check(payload)
    return ("failed" if problem else "ok"), problem, payload


def _make_callbacks(kind: TrialKind, trials_by_id: dict, attempts_before: dict, on_record: OnRecord,
                    progress: "Progress | None"):
    """Tune callbacks: a record for each trial as it ends (handed to ``on_record``), and progress."""
    from ray.tune import Callback

    class RecordMaker(Callback):
        """Builds each trial's record as soon as it ends (driver side) and hands it on."""

        def __init__(self) -> None:
            self.recovers: dict[str, int] = {}

        def _emit(self, trial, status: str, error: str | None, payload: dict | None) -> None:
            tid = trial.config["trial"]["trial_id"]
            attempts = attempts_before.get(tid, 0) + self.recovers.get(tid, 0) + 1
            on_record(_record(trial, kind, trials_by_id[tid], attempts, status, error, payload), kind.folder)
            if progress:
                progress.finished(tid, status == "ok")

        def on_trial_recover(self, iteration, trials, trial, **info):
            tid = trial.config["trial"]["trial_id"]
            self.recovers[tid] = self.recovers.get(tid, 0) + 1
            logger.warning("trial %s failed (%s); retrying", trials_by_id[tid].name, _error_text(trial))
            if progress:
                progress.retried(tid)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._emit(trial, *_ended(trial, kind))

        def on_trial_error(self, iteration, trials, trial, **info):
            self._emit(trial, "failed", _error_text(trial), None)

    cbs = [RecordMaker()]
    if progress:
        cbs.append(_progress_callback(progress))
    return cbs


def _progress_callback(progress: Progress):
    """The Tune callback that feeds :class:`~sweeps.progress.Progress`: starts and steps as they
    come, and after every step of Tune's loop the number of trials Tune holds as RUNNING."""
    from ray.tune import Callback
    from ray.tune.experiment import Trial

    class ProgressCallback(Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            progress.started(trial.config["trial"]["trial_id"])

        def on_trial_result(self, iteration, trials, trial, result, **info):
            progress.stepped(trial.config["trial"]["trial_id"], int(result.get("step", 0)))

        def on_step_end(self, iteration, trials, **info):
            progress.observe(sum(t.status == Trial.RUNNING for t in trials))

    return ProgressCallback()


def _silent_reporter():
    """A Tune progress reporter that reports nothing: :class:`Progress` is lrrt's one line.

    Tune's default in a Jupyter kernel (``JupyterNotebookReporter``) clears the cell's
    output when it starts and then redraws HTML tables; on a terminal, with ``verbose=0``,
    its ``CLIReporter`` prints nothing, which this matches everywhere.
    """
    from ray.tune import ProgressReporter

    class _Silent(ProgressReporter):
        def should_report(self, trials, done=False) -> bool:
            return False

        def report(self, trials, done, *sys_info) -> None:
            return None

    return _Silent()


# --------------------------------------------------------------------------- running


def storage_uri(storage: str) -> str:
    """Tune needs an absolute storage path: resolve a local one, keep ``s3://``-style URIs."""
    return storage if "://" in storage else str(Path(storage).expanduser().resolve())


def _stop_on_ctrl_c():
    """A Tune stopper that ends the whole run once :func:`_ctrl_c_as_stop` saw Ctrl-C."""
    from ray import tune

    class StopOnCtrlC(tune.Stopper):
        def __call__(self, trial_id, result) -> bool:
            return False

        def stop_all(self) -> bool:
            return _ctrl_c_pressed()

    return StopOnCtrlC()


def _make_tuner(spec, kind: TrialKind, todo: Sequence, callbacks: list, storage_path: str,
                builder: Callable[..., Any] | None, stop=None):
    """The Tune ``Tuner`` of one launch: one grid entry per pending trial, our callbacks, no reporter."""
    from ray import tune

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
            stop=stop,
            callbacks=callbacks,
            progress_reporter=_silent_reporter(),
            verbose=0,
            log_to_file=True,
        ),
    )


#: Set by :func:`_ctrl_c_as_stop`'s handler; read by the stopper Tune pickles with its
#: experiment (a module global, so the stopper pickles without it).
_CTRL_C = threading.Event()


def _ctrl_c_pressed() -> bool:
    return _CTRL_C.is_set()


@contextlib.contextmanager
def _ctrl_c_as_stop():
    """Until Tune's own Ctrl-C handler takes over, Ctrl-C sets a flag instead of raising
    ``KeyboardInterrupt`` wherever the main thread is: inside Tune's import or Ray's C code,
    such an exception can leave the interpreter unable to import anything (seen: the partial
    report's ``import pandas`` failing after it). Tune's run then ends at its first step
    (:func:`_stop_on_ctrl_c`), the trials unfinished, as after a Ctrl-C Tune caught. A second
    Ctrl-C raises as usual. Outside the main thread nothing changes."""
    _CTRL_C.clear()

    def handler(signum, frame):
        if _CTRL_C.is_set():
            raise KeyboardInterrupt
        _CTRL_C.set()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _fit(spec, kind: TrialKind, todo: Sequence, on_record: OnRecord, attempts_before: dict, *, owns_ray: bool,
         ray: RayOptions, storage_path: str, builder: Callable[..., Any] | None) -> LaunchOutcome:
    """Run ``todo`` in one Tune experiment; every Tune object lives and dies in here."""
    statuses: dict[str, str] = {}

    def record(rec: TrialRecord, folder: str) -> None:
        on_record(rec, folder)
        statuses[rec.trial_id] = rec.status

    progress = None if ray.quiet else Progress(len(todo), kind.steps, label=f"{kind.what}s")
    callbacks = _make_callbacks(kind, {t.trial_id: t for t in todo}, attempts_before, record, progress)
    with _ctrl_c_as_stop():
        # Tune is imported after connect: a local Ray's workers load TensorFlow meanwhile.
        tuner = _make_tuner(spec, kind, todo, callbacks, storage_path, builder, stop=_stop_on_ctrl_c())
        t_fit = time.monotonic()
        with _tune_actors_without_runtime_env() if owns_ray else contextlib.nullcontext():
            result_grid = tuner.fit()
    logger.info("Tune finished %d trials in %.1f s", len(todo), time.monotonic() - t_fit)
    if progress:
        progress.close()
    ok = sum(statuses.get(t.trial_id) == "ok" for t in todo)
    failed = sum(statuses.get(t.trial_id) == "failed" for t in todo)
    return LaunchOutcome(launched=len(todo), ok=ok, failed=failed, unfinished=len(todo) - ok - failed,
                         experiment_path=result_grid.experiment_path)


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
            kind: what the trials are (:func:`range_tests` or :func:`verifications`).
            attempts_before: attempts each trial already had in earlier runs (from its
                old record), so a record counts every attempt.
        """
        return _fit(self.spec, kind, trials, on_record, attempts_before or {}, owns_ray=self.owns_ray,
                    ray=self.ray, storage_path=self.storage_path, builder=self.builder)


@contextlib.contextmanager
def connected(spec, out_dir: Path, n_trials: int, ray: RayOptions = RayOptions(),
              builder: Callable[..., Any] | None = None):
    """Check the request, connect to Ray and yield a :class:`Launcher`; nothing is written.

    Raises :class:`LaunchError` before anything is written when the request cannot run (a
    builder that cannot be pickled, an unreachable address, more GPUs per trial than any
    node has). On leaving the block a local Ray we started is stopped (inside
    :func:`one_local_ray`: kept for the next launch): in the background
    when all went well (the caller's report overlaps with it; :func:`wait_ray_stopped`),
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
    owns_ray = connect(ray.address, local_gpus=ray.local_gpus, verbose=ray.verbose,
                       preload=preload_modules(res, n_trials, backend=spec.backend),
                       env=worker_env(spec.backend, cpus_per_trial=res.cpus_per_trial, gpus_per_trial=res.gpus_per_trial))
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
            _KEEP["up"] = False
            stop_local_ray()
        raise
    if owns_ray:
        # Tune's objects hold Ray handles, some in reference cycles; freeing one after
        # ray.shutdown() makes Ray's core worker end the process. Collect them while Ray
        # is up, then let the caller's report overlap with the shutdown.
        gc.collect()
        if _KEEP["depth"]:  # inside one_local_ray: the next launch uses it
            _KEEP["up"] = True
        else:
            stop_local_ray_in_background()
