"""Helpers for the sweep tests: run the real ``lrrt`` CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def lrrt_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sweeps.cli", *map(str, args)]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_lrrt(*args: str, timeout: float = 600, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run ``lrrt ARGS`` as a user would and return the finished process (text output)."""
    return subprocess.run(lrrt_cmd(*args), cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout)


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
