"""Ray's lifecycle for a sweep: start a local Ray or join a cluster, check it can run the
trials, and stop the local Ray we started.

:class:`LocalRay` holds what one process knows about the local Ray it started: whether a
launch block (:meth:`LocalRay.one_for_block`) keeps it up for the next launch, and the
background shutdown still running. :data:`LOCAL_RAY` is that object for this process (Ray
allows one connection per process); :func:`connect`, :func:`one_local_ray`,
:func:`wait_ray_stopped` and :func:`stop_local_ray_in_background` are its methods. The capacity checks (:func:`check_builder`, :func:`check_fits`,
:func:`idle_gpus_note`) refuse, before anything is written, a request that cannot run.
Imports Ray only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
import threading
from typing import Any, Callable, Mapping, Sequence

from lrrt_core.workloads import workload_dirs
from sweeps.backends import DEFAULT_BACKEND, preload
from sweeps.errors import LaunchError

__all__ = ["LocalRay", "LOCAL_RAY", "connect", "one_local_ray", "wait_ray_stopped", "stop_local_ray_in_background", "quiet_ray_logs", "preload_modules", "local_cpus", "check_builder",
           "check_fits", "alive_node_resources", "idle_gpus_note", "PRELOAD_MODULES", "WORKER_ENV"]

logger = logging.getLogger(__name__)

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


def quiet_ray_logs(verbose: bool) -> None:
    """Silence Ray's and Tune's driver-side log lines (lrrt shows progress and failures itself).

    Called before Ray is first imported: in a notebook, ``import ray`` itself logs at INFO
    that ``ipywidgets`` is missing.
    """
    if verbose:
        return
    for name in ("ray.tune", "ray.train", "ray.air", "ray.widgets"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


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


def _join(address: str, env_vars: dict[str, str], *, local_gpus: int | None, verbose: bool) -> None:
    """``ray.init`` on the cluster at ``address``; the workers' variables travel as the job's runtime env."""
    import ray

    _check_reachable(address)
    if local_gpus is not None:
        raise LaunchError("--local-gpus: only for a local Ray instance; a cluster declares its own GPUs")
    try:
        ray.init(address=address, runtime_env={"env_vars": env_vars},
                 logging_level=logging.INFO if verbose else logging.ERROR, log_to_driver=verbose)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise LaunchError(f"--address: cannot join the Ray cluster at {address}: {err}") from None


def _start_local(env_vars: dict[str, str], *, local_gpus: int | None, verbose: bool, preload: Sequence[str]) -> None:
    """``ray.init`` of a new local instance whose workers inherit ``env_vars`` from this process.

    No job runtime_env: it would make Ray start fresh workers for the trials instead of using
    the ones it prestarts (which have already imported TensorFlow when ``preload`` says so).
    The raylet copies the environment set around ``ray.init`` and passes it on to every
    worker. PYTHONPATH: the workers import workloads named package.module:function from the
    same folders the driver checked them in (``lrrt_core.workloads.workload_dirs``).
    """
    import ray

    env_vars = {**env_vars, "PL_DISABLE_FORK": "1",  # what Tune would set per actor (sweeps.ray_patches)
                "PYTHONPATH": os.pathsep.join(p for p in (*workload_dirs(), os.environ.get("PYTHONPATH", "")) if p)}
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        object_store_memory=int(os.environ.get("LRRT_OBJECT_STORE_BYTES", LOCAL_OBJECT_STORE_BYTES)),
        logging_level=logging.INFO if verbose else logging.ERROR,
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


def _joined() -> bool:
    """True when this process is already connected to a Ray (a cluster an earlier launch joined)."""
    import ray

    return ray.is_initialized()


class LocalRay:
    """The local Ray instance this process starts, keeps for the next launch, and stops.

    Starting a local Ray costs seconds (Ray's processes, the workers' TensorFlow import),
    each time; stopping it (``ray.shutdown``) is mostly waiting for processes to exit, which
    the driver overlaps with writing the report.
    """

    def __init__(self) -> None:
        self._stopping: list[threading.Thread] = []
        self._depth = 0  # how deep inside one_for_block
        self._kept = False  # a local Ray an earlier launch of the block started is up

    def connect(self, address: str | None, *, local_gpus: int | None, verbose: bool, preload: Sequence[str] = (),
                env: dict[str, str] | None = None) -> bool:
        """Start a local Ray (returns True: we own it) or join ``address`` (returns False).

        ``preload``: modules a local Ray imports into its workers as they start (see
        :func:`preload_modules`); ignored when joining a cluster, whose nodes have their own
        configuration. ``env``: more variables for every worker (``sweeps.backends.worker_env``:
        ``KERAS_BACKEND``), inherited on a local Ray, the job's ``runtime_env`` on a cluster.
        """
        self.wait_stopped()
        address = address or os.environ.get("RAY_ADDRESS") or None
        if self._kept and not address:  # the local Ray an earlier launch of this block started
            return True
        if address and _joined():  # joined by an earlier launch (a sweep's verification rounds)
            return False
        env_vars = {**WORKER_ENV, **(env or {})}
        quiet_ray_logs(verbose)
        if address:
            _join(address, env_vars, local_gpus=local_gpus, verbose=verbose)
            return False
        _start_local(env_vars, local_gpus=local_gpus, verbose=verbose, preload=preload)
        return True

    def release(self) -> None:
        """A launch on our local Ray went well: inside :meth:`one_for_block` keep it for the
        next launch, else stop it in the background.

        Tune's objects hold Ray handles, some in reference cycles; freeing one after
        ``ray.shutdown()`` makes Ray's core worker end the process. They are collected here,
        while Ray is up.
        """
        gc.collect()
        if self._depth:
            self._kept = True
        else:
            self.stop_in_background()

    def abandon(self) -> None:
        """A launch on our local Ray failed or was interrupted: stop it now."""
        self._kept = False
        self.stop()

    @contextlib.contextmanager
    def one_for_block(self):
        """Run every launch inside the block on one local Ray: the first starts it, the later
        ones (a sweep's verification rounds after its range tests) use it, and it stops in the
        background when the block ends (:meth:`wait_stopped`)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._kept:
                self._kept = False
                gc.collect()  # Tune's handles, while Ray is up (see release)
                self.stop_in_background()

    def stop_in_background(self) -> None:
        """``ray.shutdown()`` in a background thread. The thread is not a daemon, so the
        interpreter waits for it at exit; :meth:`wait_stopped` (and the next :meth:`connect`)
        wait for it explicitly."""
        import ray

        thread = threading.Thread(target=ray.shutdown, name="lrrt-ray-shutdown")
        thread.start()
        self._stopping.append(thread)

    def stop(self) -> None:
        """``ray.shutdown()`` now, in this thread (after an error: nothing to overlap with)."""
        import ray

        self.wait_stopped()
        ray.shutdown()

    def wait_stopped(self) -> None:
        """Wait until a shutdown started by :meth:`stop_in_background` is done."""
        while self._stopping:
            self._stopping.pop().join()


#: This process's local Ray (Ray connects a process to one instance at a time).
LOCAL_RAY = LocalRay()
connect = LOCAL_RAY.connect
one_local_ray = LOCAL_RAY.one_for_block
wait_ray_stopped = LOCAL_RAY.wait_stopped
stop_local_ray_in_background = LOCAL_RAY.stop_in_background


# --------------------------------------------------------------------------- capacity checks


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
