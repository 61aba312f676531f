"""A backend per sweep: ``backend: tensorflow | jax | torch`` in the sweep file, ``lrrt find --backend``.

Validation (values, the install check with its one-line error), the fingerprint (unchanged
for the default), what the workers get (environment, preload, per-trial config), the trial's
check that Keras runs on the sweep's backend, and real runs: ``lrrt find --backend`` with the
installed command, ``lrrt sweep`` with ``backend: jax`` on a local Ray (torch in the slow tier).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from sweeps.backends import BACKENDS, check_available, preload, worker_env
from sweeps.cli import main
from sweeps.spec import SpecError, check_backend, load_spec, spec_from_dict
from tests.conftest import missing_tool
from tests.sweeps.conftest import REPO, cli_env, run_installed_lrrt, run_lrrt, user_env

QUICKSTART = REPO / "sweeps" / "configs" / "quickstart.yaml"
# sweeps/configs/quickstart.yaml's fingerprint before `backend:` existed: output folders
# and trial ids of sweeps without the key must not change.
QUICKSTART_FINGERPRINT = "5d5e73c80b0f0fda2e00e37b33c6be88be45ccf4c144a0417de263151d0142ff"
QUICKSTART_FIRST_IDS = ["a0d750e65b0f", "b6d3ce5720ff", "38333d403956"]

BASE = {"name": "b", "workload": "digits_cnn", "grid": {"optimizer": ["sgd"], "batch_size": [32]}}


def _need(backend: str) -> None:
    if importlib.util.find_spec(backend) is None:
        missing_tool(backend, f"pip install -e '.[{backend}]'")


# --------------------------------------------------------------------------- the spec


def test_backend_defaults_to_tensorflow_and_takes_each_value():
    assert spec_from_dict(BASE).backend == "tensorflow"
    for name in BACKENDS:
        assert spec_from_dict({**BASE, "backend": name}).backend == name
    assert BACKENDS == ("tensorflow", "jax", "torch")


@pytest.mark.parametrize("value, wording", [
    ("tf", "must be one of 'tensorflow', 'jax' or 'torch', got 'tf'"),
    ("JAX", "must be one of 'tensorflow', 'jax' or 'torch', got 'JAX'"),
    (3, "must be one of 'tensorflow', 'jax' or 'torch', got 3"),
])
def test_an_unknown_backend_is_one_line_naming_file_and_key(value, wording, write_spec, capsys):
    path = write_spec({**BASE, "backend": value})
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: backend: {wording}"
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lrrt: error: {path}: backend: {wording}"]


def test_a_backend_whose_package_is_missing_is_refused_with_the_install_command(write_spec):
    path = write_spec({**BASE, "backend": "jax"})
    spec = load_spec(path)
    hidden = {"jaxlib"}  # jax found, its jaxlib not: both are named when missing
    with pytest.raises(SpecError) as info:
        check_backend(spec, find_spec=lambda name: None if name in hidden else importlib.util.find_spec(name))
    msg = str(info.value)
    assert msg.startswith(f"{path}: backend: the jax backend needs jaxlib, which this Python")
    assert 'pip install "lrrt[jax]"' in msg and "\n" not in msg
    assert "torch" in check_available("torch", find_spec=lambda name: None)
    assert 'pip install "lrrt[torch]"' in check_available("torch", find_spec=lambda name: None)
    assert check_available("tensorflow") is None  # a dependency of lrrt


HIDE_JAX = textwrap.dedent("""
    import sys
    class Hide:  # this Python "has no jax": find_spec and import both fail
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("jax", "jaxlib"):
                raise ModuleNotFoundError(name)
            return None
    sys.meta_path.insert(0, Hide())
    from sweeps.cli import main
    code = main(sys.argv[1:])
    print("RAY-STARTED" if "ray" in sys.modules and sys.modules["ray"].is_initialized() else "NO-RAY")
    sys.exit(code)
""")


@pytest.mark.parametrize("command", ["sweep", "validate"])
def test_a_sweep_on_a_backend_that_is_not_installed_stops_before_anything_starts(command, tmp_path, write_spec):
    path = write_spec({**BASE, "backend": "jax"})
    out = tmp_path / "out"
    args = [command, str(path)] + (["--out", str(out)] if command == "sweep" else [])
    proc = subprocess.run([sys.executable, "-c", HIDE_JAX, *args], cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lrrt: error: {path}: backend: the jax backend needs jax"), err
    assert 'pip install "lrrt[jax]"' in err[0] and "Traceback" not in proc.stderr
    assert "NO-RAY" in proc.stdout and not out.exists()


def test_validate_prints_the_backend(write_spec, capsys):
    _need("torch")  # validate checks that the backend is installed
    assert main(["validate", str(write_spec({**BASE, "backend": "torch"}))]) == 0
    assert "backend   torch (Keras)" in capsys.readouterr().out.splitlines()
    assert main(["validate", str(QUICKSTART)]) == 0
    assert "backend   tensorflow (Keras)" in capsys.readouterr().out.splitlines()


def test_the_default_backend_keeps_fingerprints_and_trial_ids():
    from sweeps.grid import expand

    spec = load_spec(QUICKSTART)
    assert "backend" not in QUICKSTART.read_text().split("#")[0]  # the file predates the key
    assert spec.fingerprint() == QUICKSTART_FINGERPRINT
    assert [t.trial_id for t in expand(spec)][:3] == QUICKSTART_FIRST_IDS
    data = spec.model_dump(mode="json", exclude={"source"})
    assert spec_from_dict({**data, "backend": "tensorflow"}).fingerprint() == QUICKSTART_FINGERPRINT
    others = {b: spec_from_dict({**data, "backend": b}) for b in ("jax", "torch")}
    prints = {b: s.fingerprint() for b, s in others.items()}
    assert len({QUICKSTART_FINGERPRINT, *prints.values()}) == 3  # another backend, another sweep
    assert expand(others["jax"])[0].trial_id not in QUICKSTART_FIRST_IDS


# --------------------------------------------------------------------------- what the workers get


def test_workers_get_the_backend_before_keras_loads():
    from sweeps.ray_session import PRELOAD_MODULES, preload_modules
    from sweeps.spec import ResourcesSpec

    res = ResourcesSpec(cpus_per_trial=1)
    assert preload_modules(res, 8, cpus=2) == PRELOAD_MODULES  # tensorflow: as before
    assert preload_modules(res, 8, cpus=2, backend="jax") == ("jax", "tensorflow", "keras", "lrrt_core.runner")
    assert preload_modules(res, 8, cpus=2, backend="torch") == ("torch", "tensorflow", "keras", "lrrt_core.runner")
    assert preload_modules(res, 3, cpus=64, backend="jax") == ()
    for b in BACKENDS:
        assert preload(b).index("keras") == len(preload(b)) - 1  # the backend's own packages first
        assert worker_env(b, cpus_per_trial=4, gpus_per_trial=0)["KERAS_BACKEND"] == b
    assert worker_env("tensorflow", cpus_per_trial=1, gpus_per_trial=0.5) == {"KERAS_BACKEND": "tensorflow"}
    one = worker_env("jax", cpus_per_trial=1, gpus_per_trial=0.5)
    assert "--xla_cpu_multi_thread_eigen=false" in one["XLA_FLAGS"] and one["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert worker_env("jax", cpus_per_trial=4, gpus_per_trial=1) == {"KERAS_BACKEND": "jax"}


def test_range_tests_and_verification_trainings_carry_the_sweeps_backend():
    from sweeps.grid import expand
    from sweeps.trainable import trial_config
    from sweeps.verification import VerifyTrial, verify_config
    from sweeps.spec import VerifySpec

    spec = spec_from_dict({**BASE, "backend": "jax"})
    trial = expand(spec)[0]
    assert trial_config(trial, spec)["backend"] == "jax"
    vt = VerifyTrial(trial_id="v", name="v", config=trial.config, optimizer=trial.optimizer_name,
                     optimizer_name=trial.optimizer_name, optimizer_kwargs={}, batch_size=32, seed=0, axes={},
                     factor=1.0, lr=0.01)
    assert verify_config(vt, spec, VerifySpec())["backend"] == "jax"
    assert trial_config(trial, spec_from_dict(BASE))["backend"] == "tensorflow"


MISMATCH = textwrap.dedent("""
    import keras  # KERAS_BACKEND=torch: what a worker started with another backend has
    from sweeps.trainable import BackendMismatch, prepare_worker
    prepare_worker("torch", 1, has_gpu=False)
    import torch
    assert torch.get_num_threads() == 1
    try:
        prepare_worker("jax", 1, has_gpu=False)
    except BackendMismatch as err:
        print("REFUSED", err)
""")


@pytest.mark.tf
def test_a_trial_refuses_a_worker_whose_keras_runs_on_another_backend():
    proc = _on_torch(MISMATCH)
    assert "REFUSED this sweep runs on the jax backend but Keras in this worker runs on torch" in proc.stdout


def _on_torch(script: str) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter whose Keras runs on torch; it must exit 0."""
    _need("torch")
    env = {**cli_env(), "KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


API_SWITCH = textwrap.dedent("""
    import keras
    from sweeps import InvalidInput, find
    try:
        find(backend="jax", steps=5)
    except InvalidInput as err:
        print("KEY", err.key, "|", err)
""")


@pytest.mark.tf
def test_python_find_refuses_to_switch_a_running_keras_to_another_backend():
    proc = _on_torch(API_SWITCH)
    assert "KEY backend | backend: Keras is already running on torch in this process" in proc.stdout


JAX_CACHE = textwrap.dedent("""
    import os
    import jax
    from sweeps.backends import use_jax_compilation_cache
    if os.environ.get("OLD_JAX"):  # a JAX without the size option: no cache, nothing half set
        update = jax.config.update
        def old_update(name, value):
            if name == "jax_compilation_cache_max_size":
                raise AttributeError(f"Unrecognized config option: {name}")
            update(name, value)
        jax.config.update = old_update
    print("DIR", use_jax_compilation_cache(), jax.config.jax_persistent_cache_min_compile_time_secs,
          jax.config.jax_compilation_cache_max_size)
    jax.jit(lambda x: x * 2 + 1)(jax.numpy.arange(3.0)).block_until_ready()
""")


@pytest.mark.parametrize("user", [None, "", "mine", "old_jax"])
def test_jax_workers_share_compiled_programs_unless_the_user_chose_otherwise(user, tmp_path):
    """A JAX worker turns on JAX's persistent compilation cache in the node's user cache
    folder, every program cached; a user's JAX_COMPILATION_CACHE_DIR wins (empty: none); a
    JAX that lacks one of the options runs without the cache."""
    _need("jax")
    env = {**cli_env(), "XDG_CACHE_HOME": str(tmp_path / "xdg"), "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if user == "old_jax":
        env["OLD_JAX"] = "1"
    elif user is not None:
        env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / user) if user else ""
    proc = subprocess.run([sys.executable, "-c", JAX_CACHE], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ours = tmp_path / "xdg" / "lrrt" / "jax"
    if user is None:
        assert f"DIR {ours} 0.0 {2 << 30}" in proc.stdout  # bounded, so JAX locks its reads and writes
        assert list(ours.glob("*")), "the jitted program was not cached"
    elif user == "old_jax":
        assert "DIR None 1.0 -1" in proc.stdout and not list(ours.glob("*"))
    elif user:
        assert f"DIR {tmp_path / user} 1.0 -1" in proc.stdout and not ours.exists()
    else:
        assert "DIR None 1.0 -1" in proc.stdout and not ours.exists()


# --------------------------------------------------------------------------- real runs


def _assert_cached_on_jax_only(backend: str, xdg: Path) -> None:
    """On JAX, lrrt's processes left compiled programs in the node's cache under ``xdg``
    (``$XDG_CACHE_HOME``); on other backends nothing is written there."""
    cached = list((xdg / "lrrt" / "jax").glob("*"))
    assert len(cached) >= 5 if backend == "jax" else not cached, cached


@pytest.mark.tf
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_installed_find_with_backend_runs_there_and_says_so(backend, tmp_path):
    _need(backend)
    # The installed console script, from a folder outside the repository; PYTHONPATH makes it
    # this checkout's code where the editable install points at another one (a worktree).
    env = user_env(PYTHONPATH=str(REPO), KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="",
                   XDG_CACHE_HOME=str(tmp_path / "xdg"))
    proc = run_installed_lrrt("find", "--backend", backend, "--steps", "20", "--batch-size", "32", "--out", "f",
                              cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"range test: digits_cnn, adam, batch 32, {backend}: " in proc.stdout, proc.stdout
    assert len(pd.read_csv(tmp_path / "f" / "curve.csv")) == 20
    assert "I0000" not in proc.stderr and "Traceback" not in proc.stderr
    _assert_cached_on_jax_only(backend, tmp_path / "xdg")  # for the command's next run


def _tiny_sweep(backend: str, write_spec) -> Path:
    return write_spec({
        "name": f"tiny-{backend}", "workload": "tests.sweeps.faulty:build", "backend": backend,
        "grid": {"optimizer": ["sgd", "adam"], "batch_size": [64], "seed": [0]},
        "range_test": {"start_lr": 1e-4, "end_lr": 1.0, "steps": 30, "diverge_threshold": None},
        "resources": {"cpus_per_trial": 1}, "retries": 0,
    })


@pytest.mark.ray
@pytest.mark.tf
@pytest.mark.parametrize("backend", ["jax", pytest.param("torch", marks=pytest.mark.slow)])
def test_a_sweep_runs_end_to_end_on_its_backend(backend, tmp_path, write_spec):
    _need(backend)
    out = tmp_path / "out"
    proc = run_lrrt("sweep", _tiny_sweep(backend, write_spec), "--out", out, "-q", timeout=300,
                    env={"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_cached_on_jax_only(backend, tmp_path / "xdg")  # for later workers and sweeps
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 2 and (trials["status"] == "ok").all(), trials[["name", "status", "error"]]
    assert (trials["steps"] == 30).all()
    records = [json.loads(p.read_text()) for p in (out / "trials").glob("*.json")]
    assert [r["curve"]["params"]["backend"] for r in records] == [backend, backend]
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["spec"]["backend"] == backend
    assert f"Keras backend {backend}" in (out / "report.html").read_text()
    assert f"Keras backend {backend}." in (out / "report.md").read_text()
