"""The verification stage end to end on a real Ray, through the ``lrrt`` CLI: the session's
shared Ray head (``RAY_ADDRESS``), and a local Ray for the Python API (which counts its starts)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.sweeps.conftest import REPO, cli_env, lrrt_cmd, run_lrrt, tiny_spec

pytestmark = [pytest.mark.ray, pytest.mark.tf]


def _records(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}


def _kill_after(cmd: list[str], folder: Path, n: int, env: dict[str, str], timeout: float = 400) -> None:
    """Run ``cmd`` (environment ``env``); SIGKILL it (and a Ray it started) once ``folder`` holds
    ``n`` records; fail loudly if never."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while len(list(folder.glob("*.json"))) < n:
            if proc.poll() is not None:
                pytest.fail(f"the sweep ended (exit {proc.returncode}) before {n} records in {folder}: "
                            f"{proc.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {n} records in {folder} after {timeout:.0f} s")
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def test_verify_stage_kill_resume_failures_and_lrrt_verify(tmp_path, write_spec, ray_env):
    spec = write_spec(tiny_spec(
        name="verified",
        grid={"optimizer": ["sgd", "adam"], "batch_size": [32], "seed": [0],
              "axes": {"fault": ["none", "raise_in_verify"]}},
        range_test={"steps": 40},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
        # the grid only (extension has its own test); by val_loss, which ties less than the tiny
        # workload's accuracy (metric: auto, the default, has its own tests)
        verify={"steps": 30, "candidates": [0.5, 1, 2], "extend": 0, "metric": "val_loss"},
    ))
    out = tmp_path / "out"
    cmd = lrrt_cmd("sweep", spec, "--out", out, "-q")
    _kill_after(cmd, out / "verify", 2, ray_env)
    first = _records(out / "verify")
    manifest = json.loads((out / "sweep.json").read_text())
    planned = {t["trial_id"]: t for t in manifest["verify_trials"]}
    assert len(planned) == 4 * 3 and 2 <= len(first) < 12 and set(first) <= set(planned)

    # Resumed two at a time (--max-concurrent overrides the file's 1, the same sweep): the six
    # failing trainings each cost a fresh worker.
    proc = run_lrrt("sweep", spec, "--out", out, "--max-concurrent", "2", env=ray_env)
    # The verification trainings of the raise_in_verify configurations fail: listed, the others finish.
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "resumed: 4 finished trials kept" in proc.stderr
    final = _records(out / "verify")
    for tid, rec in first.items():
        if rec["status"] == "ok":
            assert final[tid]["finished_at"] == rec["finished_at"], "a finished verification was re-run"
    verify = pd.read_csv(out / "verify.csv")
    assert len(verify) == 12 and sorted(verify["trial_id"]) == sorted(planned)
    bad = verify[verify["status"] == "failed"]
    assert sorted(set(bad["config"])) == ["adam-bs32-faultraise_in_verify", "sgd-bs32-faultraise_in_verify"]
    assert len(bad) == 6 and bad["error"].str.contains("injected failure in a verification").all()
    ok = verify[verify["status"] == "ok"]
    assert len(ok) == 6 and (ok["steps"] == 30).all() and ok["val_loss"].notna().all()
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["status"] == "ok").all()
    ranking = pd.read_csv(out / "ranking.csv").set_index("config")
    for config, g in ok.groupby("config"):
        best = g.loc[g["val_loss"].idxmin()]
        assert ranking.loc[config, "verified_lr"] == pytest.approx(best["lr"])
        assert ranking.loc[config, "verified_val_loss"] == pytest.approx(best["val_loss"])
    assert sorted(ranking["verified_rank"].dropna().astype(int)) == [1, 2]
    html = (out / "report.html").read_text()
    assert "<h2>Verification</h2>" in html and "Training recipes" in html
    assert (out / "plots" / "verification.png").is_file()
    recipes = json.loads((out / "recipes.json").read_text())["recipes"]
    by_config = {r["config"]: r for r in recipes}
    for config in ok["config"].unique():
        assert by_config[config]["lr_source"] == "verified"
        assert by_config[config]["lr"] == pytest.approx(ranking.loc[config, "verified_lr"])

    # lrrt verify DIR with other settings: a new plan, run on the finished sweep. --top 1 trains the
    # range test's rank-1 configuration: exit 1 exactly when it is one whose verification raises.
    top = str(ranking["rank"].idxmin())
    again = run_lrrt("verify", out, "--steps", "20", "--candidates", "1", "3", "--top", "1", "-q", env=ray_env)
    assert again.returncode == (1 if "raise_in_verify" in top else 0), (top, again.stderr[-3000:])
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["spec"]["verify"]["steps"] == 20 and manifest["spec"]["verify"]["candidates"] == [1, 3]
    assert len(manifest["verify_trials"]) == 2
    verify = pd.read_csv(out / "verify.csv")
    assert len(verify) == 2 and (verify["factor"].tolist() == [1, 3]) and set(verify["config"]) == {top}
    assert (verify["status"] == ("failed" if "raise_in_verify" in top else "ok")).all()


@pytest.mark.ray
def test_lrrt_verify_refuses_bad_input(tmp_path):
    proc = run_lrrt("verify", tmp_path)
    assert proc.returncode == 2 and "not an lrrt sweep output directory" in proc.stderr
    from tests.sweeps import synthetic as S

    from sweeps import store
    from sweeps.spec import spec_from_dict

    S.standard_sweep(tmp_path / "s")
    manifest = store.read_manifest(tmp_path / "s")
    manifest["spec"] = spec_from_dict(tiny_spec()).model_dump(mode="json")
    store.write_manifest(tmp_path / "s", manifest)
    before = sorted(p.name for p in (tmp_path / "s").rglob("*"))
    proc = run_lrrt("verify", tmp_path / "s", "--candidates", "0", "1")
    assert proc.returncode == 2 and proc.stderr.startswith("lrrt: error: --candidates: "), proc.stderr
    assert "> 0" in proc.stderr and len(proc.stderr.splitlines()) == 1
    proc = run_lrrt("verify", tmp_path / "s", "--epochs", "0")
    assert proc.returncode == 2 and proc.stderr.startswith("lrrt: error: --epochs: "), proc.stderr
    assert sorted(p.name for p in (tmp_path / "s").rglob("*")) == before  # nothing written


@pytest.mark.slow
def test_shipped_digits_verified_runs_end_to_end(tmp_path):
    """sweeps/configs/digits_verified.yaml as shipped: 24 range tests, then 72 trainings (~4 min)."""
    out = tmp_path / "dv"
    proc = run_lrrt("sweep", REPO / "sweeps/configs/digits_verified.yaml", "--out", out, "-q", timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (pd.read_csv(out / "trials.csv")["status"] == "ok").all()
    verify = pd.read_csv(out / "verify.csv")
    assert (verify["status"] == "ok").all() and verify["accuracy"].notna().all()
    assert verify["factor"].isin([0.333, 1, 3]).sum() == 72  # the grid; extension rounds may add more
    ranking = pd.read_csv(out / "ranking.csv")
    assert sorted(ranking["verified_rank"].astype(int)) == list(range(1, 13))
    assert len(json.loads((out / "recipes.json").read_text())["recipes"]) == 12


def test_python_api_verifies_a_sweep_run_with_a_main_module_builder(tmp_path):
    """sweeps.sweep with a verify section, then sweeps.verify, with a builder defined in __main__
    (shipped to the workers by value, as from a notebook)."""
    script = tmp_path / "s.py"
    script.write_text(
        "from sweeps import sweep, verify\n"
        "from tests.sweeps.faulty import build as fb\n"
        "def build(seed=0, **axes):\n"
        "    return fb(seed=seed, **axes)\n"
        "cfg = {'name': 'nbv', 'grid': {'optimizer': ['sgd', 'adam'], 'batch_size': [32], 'seed': [0]},\n"
        "       'range_test': {'start_lr': 1e-4, 'end_lr': 1.0, 'steps': 30}, 'retries': 0,\n"
        "       'verify': {'steps': 10, 'candidates': [0.5, 1], 'extend': 0}}\n"
        "import glob, os\n"
        "sessions = lambda: len(glob.glob(os.path.join(os.environ['RAY_TMPDIR'], 'ray', 'session_2*')))\n"
        "r = sweep(cfg, workload=build, quiet=True)\n"
        "print('SWEEP', r.exit_code, r.reduction.verification.counts()['ok'], sessions())\n"
        "r2 = verify(r.out_dir, workload=build, steps=12, candidates=[1, 2], quiet=True)\n"
        "print('VERIFY', r2.exit_code, r2.reduction.verification.counts()['ok'], int(r2.ranking['verified_rank'].notna().sum()), sessions())\n"
    )
    # A private Ray temp dir (short: Ray's socket paths) counts the local Rays started: one for the
    # range tests and the verification round of sweep(), one for verify().
    ray_tmp = Path(tempfile.mkdtemp(prefix="lrrt-ray-", dir="/tmp"))
    try:
        proc = subprocess.run([os.sys.executable, str(script)], cwd=tmp_path, env={**cli_env(), "RAY_TMPDIR": str(ray_tmp)},
                              capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("SWEEP", "VERIFY"))]
    assert proc.returncode == 0 and lines == ["SWEEP 0 4 1", "VERIFY 0 4 2 2"], (proc.stdout[-2000:], proc.stderr[-3000:])
    manifest = json.loads((tmp_path / "runs/nbv/sweep.json").read_text())
    assert manifest["spec"]["workload"].startswith("__main__:build@")
    assert manifest["spec"]["verify"]["steps"] == 12 and len(manifest["verify_trials"]) == 4
