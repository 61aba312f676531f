"""How a local sweep prepares its Ray workers: TensorFlow loaded before the first trial,
Tune's actors on those workers, Ray stopped in the background while the report is written.

Real Ray and Tune, each check in a fresh interpreter: ``ray.init`` makes its process a
process-group leader and starts a reaper that signals that whole group, and the worker-side
set-up changes process-wide state -- neither belongs in pytest's own process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from tests.sweeps.conftest import REPO, cli_env, tiny_spec

pytestmark = [pytest.mark.ray, pytest.mark.tf]


def _since_boot() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def _process_started_since_boot() -> float:
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of proc(5): starttime


def _probe(config):
    import ray
    from ray import tune

    tune.report({
        "runtime_env": sorted(dict(ray.get_runtime_context().runtime_env or {})),  # the actor's own
        "process_started": _process_started_since_boot(),
        "tf_loaded": "tensorflow" in sys.modules,  # before this function imported anything
        "pl_disable_fork": os.environ.get("PL_DISABLE_FORK"),
        "tf_log_level": os.environ.get("TF_CPP_MIN_LOG_LEVEL"),
        "pid": os.getpid(),
    })


def _wait_for_prestarted_workers(timeout: float = 60.0) -> None:
    """Let the workers Ray prestarts register before Tune asks for actors.

    ``lrrt sweep`` imports Tune and builds the Tuner after connecting (a second or more), so
    they have registered by then; here Tune is imported already and the launch would follow
    at once, racing them on a loaded machine (Ray would then start fresh workers).
    """
    import ray
    from ray._private.state import workers  # Ray 2.60 (pinned); no public equivalent without the dashboard

    want = int(ray.cluster_resources().get("CPU", 1))
    deadline = time.monotonic() + timeout
    while len(workers()) < want:
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {want} prestarted Ray workers to register; "
                                 f"{len(workers())} did")
        time.sleep(0.1)


def _probe_trials(storage) -> list[dict]:
    from ray import tune

    from sweeps.ray_patches import tune_actors_without_runtime_env

    _wait_for_prestarted_workers()

    tuner = tune.Tuner(
        tune.with_resources(_probe, {"cpu": 1}),
        param_space={"i": tune.grid_search([0, 1])},
        tune_config=tune.TuneConfig(reuse_actors=False),
        run_config=tune.RunConfig(storage_path=str(storage), verbose=0),
    )
    launched = _since_boot()
    with tune_actors_without_runtime_env():
        grid = tuner.fit()
    return [{**r.metrics, "launched": launched} for r in grid]


def _in_fresh_interpreter(name: str, *args: str) -> None:
    """Run this module's ``name(*args)`` in a new Python process; it prints CHECKED when done."""
    code = f"from tests.sweeps.test_workers import {name}; {name}(*{args!r})"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and "CHECKED" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]


def check_trials_on_prestarted_workers(tmp: str) -> None:
    import ray
    from ray.tune.execution import class_cache

    from sweeps import ray_session as launch

    tune_defaults = dict(class_cache.DEFAULT_ENV_VARS)
    assert launch.connect(None, local_gpus=None, verbose=False, preload=launch.PRELOAD_MODULES) is True
    try:
        first = _probe_trials(os.path.join(tmp, "a"))
        # Ray is stopped in the background; connecting again waits for that to finish.
        launch.stop_local_ray_in_background()
        assert launch.connect(None, local_gpus=None, verbose=False, preload=launch.PRELOAD_MODULES) is True
        second = _probe_trials(os.path.join(tmp, "b"))
    finally:
        launch.stop_local_ray_in_background()
        launch.wait_ray_stopped()
    assert not ray.is_initialized()
    for metrics in first + second:
        # What makes a prestarted worker eligible: Tune's actors carry no runtime env (with
        # Tune's per-actor env_vars Ray would start a fresh worker for every trial) ...
        assert "env_vars" not in metrics["runtime_env"], metrics["runtime_env"]
        assert metrics["tf_loaded"], "the trial's worker had not preloaded TensorFlow"
    # ... and the outcome: a worker Ray starts for an actor is younger than the launch, the
    # prestarted ones older. Which idle worker an actor lands on is Ray's scheduling decision;
    # on a loaded 2-core machine it sometimes starts fresh workers for a whole launch, so the
    # reuse is required once over the two launches, not in each.
    assert any(m["process_started"] < m["launched"] for m in first + second), \
        f"all trials ran in fresh workers: {first + second}"
    assert len({m["pid"] for m in first}) == 2, "two concurrent trials ran in one process"
    # Tune's own defaults are back after the launch.
    assert class_cache.DEFAULT_ENV_VARS == tune_defaults
    assert "PL_DISABLE_FORK" not in os.environ, "the driver's environment must be left as it was"
    print("CHECKED")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads process start times from /proc")
def test_local_trials_start_on_workers_that_already_loaded_tensorflow(tmp_path):
    _in_fresh_interpreter("check_trials_on_prestarted_workers", str(tmp_path))


def check_sweep_returns_with_ray_stopped(spec: str, out: str) -> None:
    import ray

    from sweeps.cli import main

    assert main(["sweep", spec, "--out", out, "-q"]) == 0
    assert not ray.is_initialized()
    assert os.path.isfile(os.path.join(out, "report.html"))
    print("CHECKED")


def test_sweep_returns_with_ray_stopped(tmp_path, write_spec):
    spec = write_spec(tiny_spec(grid={"optimizer": ["sgd"], "batch_size": [32]}))
    _in_fresh_interpreter("check_sweep_returns_with_ray_stopped", str(spec), str(tmp_path / "out"))


WORKER_SETUP = textwrap.dedent("""
    import gc, os, sys
    if sys.argv[1] == "preloaded":  # what Ray's preload_python_modules did in a local worker
        for name in {preload!r}:
            __import__(name)
    from sweeps.trainable import configure_tensorflow
    configure_tensorflow(1, has_gpu=False)
    import tensorflow as tf
    assert tf.config.threading.get_intra_op_parallelism_threads() == 1
    assert tf.config.threading.get_inter_op_parallelism_threads() == 1
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert gc.get_freeze_count() > 100_000, gc.get_freeze_count()
    print("configured")
""")


@pytest.mark.parametrize("state", ["fresh", "preloaded"])
def test_worker_setup_sets_thread_pools_even_after_preloading(state):
    """Importing TensorFlow early must not start its runtime: thread pools are still settable."""
    from sweeps.ray_session import PRELOAD_MODULES

    env = cli_env()
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run([sys.executable, "-c", WORKER_SETUP.format(preload=PRELOAD_MODULES), state],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "configured" in proc.stdout, proc.stderr[-2000:]
