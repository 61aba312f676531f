"""Helpers for the sweep tests: run the real ``lrrt`` CLI in a subprocess.

``run_lrrt`` runs ``python -m sweeps.cli`` from the repository; ``run_installed_lrrt`` runs
the installed console script as a user's shell would (from any folder, no ``PYTHONPATH``).
``readme_example`` returns a code block of README.md, so the tests run what it shows.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def reaped(proc: subprocess.Popen):
    """Run the block; if ``proc`` (started with ``start_new_session=True``) still runs after it
    (the block failed), kill its whole process group, so no Ray or worker outlives the test."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until(done, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    """Poll ``done()``; fail naming ``what`` after ``timeout`` s, or at once if ``proc`` ended."""
    deadline = time.monotonic() + timeout
    while not done():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:g} s for {what}")
        time.sleep(0.2)


def lrrt_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sweeps.cli", *map(str, args)]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_lrrt(*args: str, timeout: float = 600, cwd: Path = REPO,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``lrrt ARGS`` as a user would and return the finished process (text output);
    ``env``: variables added to :func:`cli_env`'s."""
    return subprocess.run(lrrt_cmd(*args), cwd=cwd, env={**cli_env(), **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)


def installed_lrrt() -> Path:
    """The ``lrrt`` console script that ``pip install`` put next to the interpreter running the tests."""
    script = Path(sys.executable).parent / "lrrt"
    if not script.is_file():
        pytest.skip(f"no installed lrrt console script at {script} (pip install -e . first)")
    return script


def user_env(**extra: str) -> dict[str, str]:
    """A user's shell environment: no ``PYTHONPATH`` (nothing points at the repository), no ``RAY_ADDRESS``."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "RAY_ADDRESS"):
        env.pop(name, None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def run_installed_lrrt(*args: str, cwd: Path, env: dict[str, str] | None = None,
                       timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed ``lrrt ARGS`` in ``cwd`` with :func:`user_env` (text output)."""
    return subprocess.run([str(installed_lrrt()), *map(str, args)], cwd=cwd, env=env or user_env(),
                          capture_output=True, text=True, timeout=timeout)


def readme_example(name: str) -> str:
    """The fenced code block that follows ``<!-- example: NAME -->`` in README.md."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- example: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", text, flags=re.S)
    assert found, f"README.md has no example {name!r}"
    return found.group(1)


#: LoopbackCluster's quick node-loss detection (1 s health checks) is for the node-loss test;
#: a head that lives the whole session on a loaded machine keeps Ray's own defaults.
_NODE_LOSS_SETTINGS = ("RAY_health_check_period_ms", "RAY_health_check_timeout_ms",
                       "RAY_health_check_failure_threshold")


@pytest.fixture(scope="session")
def shared_ray(tmp_path_factory):
    """A Ray head for the whole session, on free ports in a private temp dir, with this
    machine's CPUs (what a local Ray would see); stopped at the end, by process group.

    For the sweep tests whose property is not the local start (resume, failures, refusals,
    signals, verification): their ``lrrt`` commands join it (``RAY_ADDRESS``, the documented
    alternative to ``--address``) instead of each starting and stopping a local Ray (seconds
    each time, many more on a loaded machine). Every ``ray`` test runs in one pytest-xdist
    worker (tests/conftest.py), so one test at a time uses it. The tests of the local start
    itself (``one_local_ray``, preloaded workers, ``--local-gpus``, the installed script, a
    stale address file, the notebook) keep their own local Ray.
    """
    from tests.cluster.test_multinode import LoopbackCluster

    class SharedHead(LoopbackCluster):
        def env(self) -> dict[str, str]:
            return {k: v for k, v in super().env().items() if k not in _NODE_LOSS_SETTINGS}

    cluster = SharedHead(tmp_path_factory.mktemp("shared-ray"))
    try:
        cluster.add_node(num_cpus=len(os.sched_getaffinity(0)))
        cluster.wait_for_nodes(1)
        yield cluster
    finally:
        survivors = cluster.shutdown()
        assert not cluster.leftovers(), "Ray processes of the shared head still running after teardown"
        assert not survivors, f"processes outlived stopping the shared head: {survivors}"


@pytest.fixture
def ray_env(shared_ray) -> dict[str, str]:
    """The environment of an ``lrrt`` command that runs its trials on :func:`shared_ray`:
    :func:`cli_env`'s, with ``RAY_ADDRESS`` (and the head's auth token) set."""
    return {**shared_ray.env(), "RAY_ADDRESS": shared_ray.address}


@pytest.fixture
def write_spec(tmp_path):
    """Write a sweep dict as YAML under tmp_path and return its path."""

    def _write(spec: dict, name: str = "sweep.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    return _write


def tiny_spec(name: str = "tiny", **overrides) -> dict:
    """A fast sweep on the tiny ``tests.sweeps.faulty`` workload."""
    spec = {
        "name": name,
        "workload": "tests.sweeps.faulty:build",
        "grid": {"optimizer": ["sgd", "adam"], "batch_size": [32, 64], "seed": [0]},
        "range_test": {"start_lr": 1e-4, "end_lr": 1.0, "steps": 30, "diverge_threshold": None},
        "resources": {"cpus_per_trial": 1},
        "retries": 0,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec
