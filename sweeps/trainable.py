"""The Ray Tune function trainable: one trial = one range test with the core finder.

Runs on a Ray worker. It checks that Keras runs on the sweep's backend and prepares the
process from the trial's resource share (CPU threads, ``CUDA_VISIBLE_DEVICES`` blanked when
the trial has no GPU, TensorFlow's GPU memory growth so fractional GPUs work), builds the
workload from the trial's seed, runs :func:`lrrt_core.runner.run_workload`, reports
scalar progress every few steps and the whole curve once at the end. The driver's ``RecordMaker`` callback (:mod:`sweeps.tune_run`) turns that
last report into the trial's record on disk, so results reach the driver's output
directory even when the trial ran on another node (no shared file system needed).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import time
from typing import Any

from sweeps.backends import DEFAULT_BACKEND, use_jax_compilation_cache

logger = logging.getLogger(__name__)

_TF_CONFIGURED: dict[str, Any] = {}
_WORKER_READY: dict[str, Any] = {}


class BackendMismatch(RuntimeError):
    """The trial's worker runs Keras on another backend than the sweep's (a cluster whose
    workers were started with another ``KERAS_BACKEND``, or Keras imported too early)."""


def configure_tensorflow(cpus: float, has_gpu: bool) -> None:
    """Set TF thread pools from the CPU share and GPU memory growth; once per process.

    TensorFlow ignores ``OMP_NUM_THREADS``; without this, two 1-CPU trials on a 2-core node
    each start a pool as wide as the machine and fight over the cores. Thread pools can only
    be set before TF's runtime starts, so a reused worker keeps its first setting.
    """
    if not has_gpu:
        # Must happen before TensorFlow initialises CUDA (Ray 2.60 no longer blanks it).
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if _TF_CONFIGURED:
        return
    import tensorflow as tf

    threads = max(1, int(cpus))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError as err:  # runtime already initialised in this process
        logger.debug("TF thread pools already fixed: %s", err)
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError) as err:
            logger.debug("memory growth not set on %s: %s", gpu, err)
    # Everything imported so far (TensorFlow, Keras, Ray: ~10^6 objects) lives as long as the
    # worker. Moving it out of the collector's reach makes each full collection cheap: the
    # one in keras.backend.clear_session() between trials drops from ~0.2 s to ~0.01 s.
    gc.freeze()
    _TF_CONFIGURED.update(threads=threads)


def _hide_gpus_from_jax() -> None:
    """JAX on the CPU only: ``JAX_PLATFORMS=cpu`` for a later import, the config flag when a
    local Ray preloaded JAX (its backends start on first use, so this still takes effect)."""
    os.environ["JAX_PLATFORMS"] = "cpu"
    jax = sys.modules.get("jax")
    if jax is not None:
        try:
            jax.config.update("jax_platforms", "cpu")
        except Exception as err:  # backends already initialised in this process
            logger.debug("jax_platforms not set: %s", err)


def prepare_worker(backend: str, cpus: float, has_gpu: bool) -> None:
    """Make this worker process run Keras on ``backend`` with the trial's resource share.

    ``KERAS_BACKEND`` normally arrives in the worker's environment (``sweeps.backends.worker_env``);
    it is set here too in case Keras is not imported yet. Then, per backend: TensorFlow's
    thread pools and GPU memory growth (:func:`configure_tensorflow`); ``torch.set_num_threads``
    from the CPU share; for JAX the threads were set through ``XLA_FLAGS`` before its import
    (one-CPU trials) and its persistent compilation cache is turned on
    (:func:`sweeps.backends.use_jax_compilation_cache`); GPUs are hidden from a trial without
    a GPU share on every backend.

    Raises:
        BackendMismatch: Keras in this process runs on another backend (fails the trial with
            a message that says what to fix).
    """
    if not has_gpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before any backend initialises CUDA
        if backend == "jax":
            _hide_gpus_from_jax()
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend
    import keras

    running = keras.backend.backend()
    if running != backend:
        raise BackendMismatch(
            f"this sweep runs on the {backend} backend but Keras in this worker runs on {running} "
            f"(imported before the sweep's KERAS_BACKEND={backend} applied); on a cluster, start the nodes' "
            f"Ray without KERAS_BACKEND={running} in their environment and without preloading keras, "
            f"or run the sweep with backend: {running}")
    if backend == "tensorflow":
        configure_tensorflow(cpus, has_gpu)
        return
    if _WORKER_READY:
        return
    if backend == "torch":
        import torch

        torch.set_num_threads(max(1, int(cpus)))
    if backend == "jax":
        use_jax_compilation_cache()  # before this worker's first compile
    gc.freeze()  # as configure_tensorflow does: cheap collections between trials
    _WORKER_READY.update(backend=backend)


def _start(t: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """Prepare this worker for the trial ``t``; return its start time and the report fields
    every report carries (where it runs). Every report has the same keys (these, and step, lr,
    loss, wall_s): Tune's progress.csv freezes its columns at the first."""
    import ray

    start = time.perf_counter()  # from entry: includes the backend's import/setup on a fresh worker
    gpu_ids = ",".join(str(g) for g in ray.get_gpu_ids())
    prepare_worker(t.get("backend", DEFAULT_BACKEND), t["cpus"], has_gpu=bool(gpu_ids))
    base = {"node": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address(),
            "gpu_ids": gpu_ids, "final": False, "payload": ""}
    return start, base


def _workload_kwargs(t: dict[str, Any]) -> dict[str, Any]:
    return {"optimizer": t["optimizer_name"], "optimizer_kwargs": t["optimizer_kwargs"],
            "batch_size": t["batch_size"], "seed": t["seed"], "axes": t["axes"], "workload_args": t["workload_args"]}


def run_trial(config: dict[str, Any], builder=None) -> None:
    """Tune function trainable of a range test. ``config["trial"]`` is built by :func:`trial_config`.

    ``builder``: the workload builder when the sweep was given one as a Python callable
    (``tune.with_parameters``); otherwise the workload is resolved from its name.
    """
    from ray import tune

    t = config["trial"]
    start, base = _start(t)
    from lrrt_core.runner import run_workload

    def on_step(step: int, lr: float, loss: float) -> None:
        tune.report({**base, "step": int(step), "lr": float(lr), "loss": float(loss),
                     "wall_s": time.perf_counter() - start})

    from lrrt_core.settings import RangeTest

    curve = run_workload(t["workload"] if builder is None else builder, **_workload_kwargs(t),
                         settings=RangeTest(**t["range_test"]), on_step=on_step, report_every=t["report_every"])
    last = curve.steps_run - 1
    tune.report({
        **base,
        "step": last,
        "lr": float(curve.lrs[last]) if last >= 0 else float("nan"),
        "loss": float(curve.losses[last]) if last >= 0 else float("nan"),
        "final": True,
        "payload": json.dumps(curve.to_dict()),
        "wall_s": time.perf_counter() - start,
    })


def run_verify_trial(config: dict[str, Any], builder=None) -> None:
    """Tune function trainable of a verification training (``sweeps.verification.verify_config``);
    ``builder`` as :func:`run_trial`'s."""
    from ray import tune

    t = config["trial"]
    start, base = _start(t)
    from lrrt_core.verify import verify_workload

    r = verify_workload(t["workload"] if builder is None else builder, **_workload_kwargs(t), lr=t["lr"],
                        epochs=t["epochs"], steps=t["steps"])
    import keras

    payload = {**r.to_dict(), "backend": keras.backend.backend()}  # as a range test's curve.params
    tune.report({**base, "step": r.steps, "lr": r.lr, "loss": r.val_loss, "final": True,
                 "payload": json.dumps(payload), "wall_s": time.perf_counter() - start})


def trial_config(trial, spec) -> dict[str, Any]:
    """The JSON-able config one trial needs on a worker (small: no data, no model)."""
    rt = spec.range_test.settings(trial.batch_size)
    from sweeps.spec import DEFAULT_STEPS  # progress cadence only, for a test whose length is in epochs

    steps = rt.steps or DEFAULT_STEPS
    return {
        **common_config(trial, spec),
        "report_every": min(25, max(10, steps // 10)),  # DESIGN: every ~10-25 steps
        "range_test": rt.to_dict(),
    }


def common_config(trial, spec) -> dict[str, Any]:
    """What every kind of trial needs: identity, workload, optimizer, batch size, seed, CPUs."""
    return {
        "trial_id": trial.trial_id,
        "name": trial.name,
        "workload": spec.workload,
        "workload_args": dict(spec.workload_args),
        "optimizer_name": trial.optimizer_name,
        "optimizer_kwargs": dict(trial.optimizer_kwargs),
        "batch_size": trial.batch_size,
        "seed": trial.seed,
        "axes": dict(trial.axes),
        "cpus": spec.resources.cpus_per_trial,
        "backend": spec.backend,
    }


def final_payload(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a trial's last report carries (a range test's curve dict, a verification's
    result dict), or ``None`` if it never finished."""
    if not result or not result.get("final") or not result.get("payload"):
        return None
    return json.loads(result["payload"])
