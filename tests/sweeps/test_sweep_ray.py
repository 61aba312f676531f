"""End-to-end sweeps on a real local Ray, through the ``lrrt`` CLI in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.sweeps.conftest import REPO, cli_env, lrrt_cmd, run_lrrt, tiny_spec

pytestmark = [pytest.mark.ray, pytest.mark.tf]

OUTPUTS = ("trials.csv", "ranking.csv", "curves.parquet", "report.html", "report.md", "sweep.json")


def _records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / "trials").glob("*.json")}


def _assert_outputs(out: Path) -> pd.DataFrame:
    for name in OUTPUTS:
        assert (out / name).is_file(), f"{name} missing"
    assert list((out / "plots").glob("*.png")), "no plots"
    return pd.read_csv(out / "trials.csv")


def _six_trial_spec(write_spec, name: str) -> Path:
    """Six short trials run one at a time, so a signal lands between finished and pending ones."""
    return write_spec(tiny_spec(
        name=name,
        grid={"optimizer": ["sgd", "adam", "rmsprop"], "batch_size": [16, 32], "seed": [0]},
        range_test={"steps": 60},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    ))


def _signal_after_records(spec: Path, out: Path, sig: int, n: int = 2, *args: str) -> tuple[int, str]:
    """Start ``lrrt sweep``, send ``sig`` to the driver once ``n`` records exist; (exit code, stderr)."""
    proc = subprocess.Popen(lrrt_cmd("sweep", spec, "--out", out, *args), cwd=REPO, env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(list((out / "trials").glob("*.json"))) < n:
            time.sleep(0.2)
        os.kill(proc.pid, sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, stderr


def test_quickstart_end_to_end(tmp_path):
    out = tmp_path / "qs"
    proc = run_lrrt("sweep", REPO / "sweeps/configs/quickstart.yaml", "--out", out, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = _assert_outputs(out)
    manifest = json.loads((out / "sweep.json").read_text())
    assert len(trials) == len(manifest["trials"]) == 12
    assert (trials["status"] == "ok").all(), trials[["name", "status", "error"]]
    assert trials["steps"].gt(10).all()
    assert trials["node"].notna().all()
    ranking = pd.read_csv(out / "ranking.csv")
    assert sorted(ranking["rank"]) == list(range(1, len(ranking) + 1))
    assert "done" in proc.stderr  # progress lines, not Ray's tables
    # A second run of the same command resumes: nothing left to run, same outputs.
    before = {k: v["finished_at"] for k, v in _records(out).items()}
    again = run_lrrt("sweep", REPO / "sweeps/configs/quickstart.yaml", "--out", out, "-q", timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {k: v["finished_at"] for k, v in _records(out).items()} == before


@pytest.mark.parametrize("gpus_per_trial", [1, 0.5])
def test_multi_gpu_placement_with_logical_gpus(tmp_path, write_spec, gpus_per_trial):
    spec = write_spec(tiny_spec(grid={"optimizer": ["sgd", "adam"], "batch_size": [32, 64], "seed": [0]}))
    out = tmp_path / "gpu"
    proc = run_lrrt("sweep", spec, "--out", out, "--local-gpus", "2", "--gpus-per-trial", str(gpus_per_trial), "-q")
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = _assert_outputs(out)
    ids = [str(g) for g in trials["gpu_ids"]]
    # Every trial got exactly one (logical) GPU id from Ray, recorded in trials.csv.
    assert all(g in {"0", "1"} for g in ids), ids
    recs = _records(out)
    spans = [(r["finished_at"] - r["wall_s"], r["finished_at"], r["gpu_ids"]) for r in recs.values()]
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] < b[1] and b[0] < a[1]]
    if gpus_per_trial == 1:
        # Two trials running at once never share a whole GPU.
        assert all(a[2] != b[2] for a, b in overlapping), spans
        assert set(ids) == {"0", "1"} or not overlapping
    else:
        assert set(ids) <= {"0", "1"}


def test_too_many_gpus_fails_fast(tmp_path, write_spec):
    spec = write_spec(tiny_spec())
    out = tmp_path / "nogpu"
    start = time.monotonic()
    proc = run_lrrt("sweep", spec, "--out", out, "--gpus-per-trial", "1", timeout=120)
    assert proc.returncode == 2
    assert "--gpus-per-trial" in proc.stderr and "has 0" in proc.stderr
    assert not out.exists()
    assert time.monotonic() - start < 90
    cpus = run_lrrt("sweep", spec, "--out", out, "--cpus-per-trial", "64", timeout=120)
    assert cpus.returncode == 2 and "--cpus-per-trial" in cpus.stderr
    assert not out.exists()


def test_failing_trials_with_and_without_retries(tmp_path, write_spec):
    marker = tmp_path / "markers"
    spec = tiny_spec(
        grid={"optimizer": ["sgd"], "batch_size": [32], "seed": [0], "axes": {"fault": ["none", "raise", "die_once", "die"]}},
        workload_args={"marker_dir": str(marker)},
        retries=1,
    )
    out = tmp_path / "faults"
    proc = run_lrrt("sweep", write_spec(spec), "--out", out)
    assert proc.returncode == 1, proc.stderr[-3000:]
    trials = _assert_outputs(out)
    by_fault = {row["fault"]: row for _, row in trials.iterrows()}
    assert set(by_fault) == {"none", "raise", "die_once", "die"}
    assert by_fault["none"]["status"] == "ok"
    assert by_fault["die_once"]["status"] == "ok" and by_fault["die_once"]["attempts"] == 2
    assert by_fault["raise"]["status"] == "failed"
    assert "injected failure in the workload" in by_fault["raise"]["error"]
    assert by_fault["raise"]["attempts"] == 2
    assert by_fault["die"]["status"] == "failed" and "died" in by_fault["die"]["error"]
    report = (out / "report.html").read_text()
    assert "injected failure in the workload" in report
    assert "FAILED" in proc.stdout

    # retries: 0 -> the dying trial fails at once, the others still finish.
    marker0 = tmp_path / "markers0"
    spec0 = dict(spec, name="faults0", retries=0, workload_args={"marker_dir": str(marker0)})
    spec0["grid"] = {**spec["grid"], "axes": {"fault": ["none", "die_once"]}}
    out0 = tmp_path / "faults0"
    proc0 = run_lrrt("sweep", write_spec(spec0, "f0.yaml"), "--out", out0, "-q")
    assert proc0.returncode == 1
    t0 = pd.read_csv(out0 / "trials.csv").set_index("fault")
    assert t0.loc["none", "status"] == "ok"
    assert t0.loc["die_once", "status"] == "failed"
    assert t0.loc["die_once", "attempts"] == 1

    # Re-running re-runs only the failed trial (the marker now exists, so it succeeds).
    ok_before = _records(out0)
    ok_id = next(k for k, v in ok_before.items() if v["status"] == "ok")
    again = run_lrrt("sweep", write_spec(spec0, "f0.yaml"), "--out", out0, "-q")
    assert again.returncode == 0, again.stderr[-3000:]
    after = _records(out0)
    assert after[ok_id]["finished_at"] == ok_before[ok_id]["finished_at"]
    assert all(r["status"] == "ok" for r in after.values())


def test_killed_driver_resumes_without_rerunning_finished_trials(tmp_path, write_spec):
    spec = _six_trial_spec(write_spec, "killme")
    out = tmp_path / "kill"
    _signal_after_records(spec, out, signal.SIGKILL, 2, "-q")
    first = _records(out)
    assert 2 <= len(first) < 6, len(first)
    manifest = json.loads((out / "sweep.json").read_text())
    # The interrupted directory already gives a (partial) report.
    rep = run_lrrt("report", out, "-q")
    assert rep.returncode == 1 and "missing" in pd.read_csv(out / "trials.csv")["status"].tolist()

    proc2 = run_lrrt("sweep", spec, "--out", out)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    assert "resumed" in proc2.stderr
    final = _records(out)
    for tid, rec in first.items():
        if rec["status"] == "ok":
            assert final[tid]["finished_at"] == rec["finished_at"], "a finished trial was re-run"
    trials = _assert_outputs(out)
    assert sorted(trials["trial_id"]) == sorted(t["trial_id"] for t in manifest["trials"])
    assert (trials["status"] == "ok").all()


def test_different_spec_on_existing_out_is_refused(tmp_path, write_spec):
    out = tmp_path / "o"
    proc = run_lrrt("sweep", write_spec(tiny_spec(grid={"optimizer": ["sgd"], "batch_size": [32], "seed": [0]})), "--out", out, "-q")
    assert proc.returncode == 0, proc.stderr[-2000:]
    changed = write_spec(tiny_spec(grid={"optimizer": ["adam"], "batch_size": [32], "seed": [0]}), "other.yaml")
    before = sorted(p.name for p in out.rglob("*"))
    refused = run_lrrt("sweep", changed, "--out", out, "-q")
    assert refused.returncode == 2 and "--fresh" in refused.stderr
    assert sorted(p.name for p in out.rglob("*")) == before
    fresh = run_lrrt("sweep", changed, "--out", out, "-q", "--fresh")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert pd.read_csv(out / "trials.csv")["optimizer"].tolist() == ["adam"]
    # --fresh on the same sweep really starts over: every trial runs again, none is lost.
    before = {k: v["finished_at"] for k, v in _records(out).items()}
    again = run_lrrt("sweep", changed, "--out", out, "-q", "--fresh")
    assert again.returncode == 0, again.stderr[-2000:]
    after = _records(out)
    assert set(after) == set(before) and all(after[k]["finished_at"] > before[k] for k in before)
    assert (out / ".lock").exists()  # --fresh keeps the lock file it holds


def test_ctrl_c_stops_gracefully_with_a_partial_report_then_resumes(tmp_path, write_spec):
    spec = _six_trial_spec(write_spec, "ctrlc")
    out = tmp_path / "ctrlc"
    returncode, stderr = _signal_after_records(spec, out, signal.SIGINT)
    assert returncode == 130, stderr[-3000:]
    assert "run the same command again to resume" in stderr
    trials = _assert_outputs(out)  # the partial report is written on the way out
    assert "missing" in trials["status"].tolist() and "ok" in trials["status"].tolist()
    done_before = {k: v["finished_at"] for k, v in _records(out).items() if v["status"] == "ok"}

    again = run_lrrt("sweep", spec, "--out", out, "-q")
    assert again.returncode == 0, again.stderr[-3000:]
    after = _records(out)
    assert len(after) == 6 and all(r["status"] == "ok" for r in after.values())
    assert all(after[k]["finished_at"] == t for k, t in done_before.items())
