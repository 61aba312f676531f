"""End-to-end sweeps on a real Ray, through the ``lrrt`` CLI in a subprocess.

The tests of a local Ray's start and options (the quickstart as README runs it, ``--local-gpus``,
the flags, ``--wait-for-nodes`` and its Ctrl-C) start their own; the others (failures and
retries, a killed driver, Ctrl-C, a refused spec, a request no node fits) join the session's
shared Ray head (``ray_env``: ``RAY_ADDRESS``), as README's cluster commands do.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.sweeps.conftest import REPO, cli_env, lrrt_cmd, reaped, run_lrrt, tiny_spec, wait_until

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


def _signal_after_records(spec: Path, out: Path, sig: int, env: dict[str, str], n: int = 2,
                          *args: str) -> tuple[int, str]:
    """Start ``lrrt sweep`` (environment ``env``), send ``sig`` to the driver once ``n`` records
    exist; (exit code, stderr)."""
    proc = subprocess.Popen(lrrt_cmd("sweep", spec, "--out", out, *args), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    with reaped(proc):
        wait_until(lambda: len(list((out / "trials").glob("*.json"))) >= n, 300, f"{n} trial records in {out}/trials",
                    proc)
        os.kill(proc.pid, sig)
        _, stderr = proc.communicate(timeout=120)
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
    assert "Ray ready in" not in proc.stderr + proc.stdout  # lrrt's INFO log only with -v
    # A second run of the same command resumes: nothing left to run, same outputs.
    before = {k: v["finished_at"] for k, v in _records(out).items()}
    again = run_lrrt("sweep", REPO / "sweeps/configs/quickstart.yaml", "--out", out, "-q", timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {k: v["finished_at"] for k, v in _records(out).items()} == before


@pytest.mark.parametrize("gpus_per_trial, local_gpus", [(1, 2), (0.5, 1)])
def test_multi_gpu_placement_with_logical_gpus(tmp_path, write_spec, gpus_per_trial, local_gpus):
    """Two trials must run at once (each waits in its workload until the other has started):
    1 GPU each on two GPUs gets two different ids; 0.5 GPU each on ONE GPU shares id 0
    (rounded up to a whole GPU, the second could not start and the first gives up)."""
    meet = tmp_path / "meet"
    spec = write_spec(tiny_spec(grid={"optimizer": ["sgd", "adam"], "batch_size": [32], "seed": [0]},
                                workload_args={"meet_dir": str(meet), "meet_n": 2, "meet_s": 90}))
    out = tmp_path / "gpu"
    proc = run_lrrt("sweep", spec, "--out", out, "--local-gpus", str(local_gpus), "--gpus-per-trial", str(gpus_per_trial), "-q")
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    assert proc.stdout == "" and "[lrrt]" not in proc.stderr and "lrrt:" not in proc.stderr  # -q: no output
    trials = _assert_outputs(out)
    assert (trials["status"] == "ok").all(), trials[["name", "status", "error"]]
    assert len(list(meet.glob("start-*"))) == 2
    ids = sorted(str(g) for g in trials["gpu_ids"])
    # Every trial got exactly one (logical) GPU id from Ray, recorded in trials.csv.
    assert ids == (["0", "1"] if gpus_per_trial == 1 else ["0", "0"]), ids
    spans = [(r["finished_at"] - r["wall_s"], r["finished_at"]) for r in _records(out).values()]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans  # they overlapped in time


def test_too_many_gpus_fails_fast(tmp_path, write_spec, ray_env):
    spec = write_spec(tiny_spec())
    out = tmp_path / "nogpu"
    proc = run_lrrt("sweep", spec, "--out", out, "--gpus-per-trial", "1", timeout=120, env=ray_env)  # raises if it waits on
    assert proc.returncode == 2
    assert "--gpus-per-trial" in proc.stderr and "has 0" in proc.stderr
    assert not out.exists()
    cpus = run_lrrt("sweep", spec, "--out", out, "--cpus-per-trial", "64", timeout=120, env=ray_env)
    assert cpus.returncode == 2 and "--cpus-per-trial" in cpus.stderr
    assert not out.exists()


def test_failing_trials_with_and_without_retries(tmp_path, write_spec, ray_env):
    marker = tmp_path / "markers"
    spec = tiny_spec(
        grid={"optimizer": ["sgd"], "batch_size": [32], "seed": [0], "axes": {"fault": ["none", "raise", "die_once", "die"]}},
        workload_args={"marker_dir": str(marker)},
        retries=1,
    )
    out = tmp_path / "faults"
    proc = run_lrrt("sweep", write_spec(spec), "--out", out, env=ray_env)
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
    proc0 = run_lrrt("sweep", write_spec(spec0, "f0.yaml"), "--out", out0, "-q", env=ray_env)
    assert proc0.returncode == 1
    t0 = pd.read_csv(out0 / "trials.csv").set_index("fault")
    assert t0.loc["none", "status"] == "ok"
    assert t0.loc["die_once", "status"] == "failed"
    assert t0.loc["die_once", "attempts"] == 1

    # Re-running re-runs only the failed trial (the marker now exists, so it succeeds).
    ok_before = _records(out0)
    ok_id = next(k for k, v in ok_before.items() if v["status"] == "ok")
    again = run_lrrt("sweep", write_spec(spec0, "f0.yaml"), "--out", out0, "-q", env=ray_env)
    assert again.returncode == 0, again.stderr[-3000:]
    after = _records(out0)
    assert after[ok_id]["finished_at"] == ok_before[ok_id]["finished_at"]
    assert all(r["status"] == "ok" for r in after.values())


def test_killed_driver_resumes_without_rerunning_finished_trials(tmp_path, write_spec, ray_env):
    spec = _six_trial_spec(write_spec, "killme")
    out = tmp_path / "kill"
    _signal_after_records(spec, out, signal.SIGKILL, ray_env, 2, "-q")
    first = _records(out)
    assert 2 <= len(first) < 6, len(first)
    manifest = json.loads((out / "sweep.json").read_text())
    # The interrupted directory already gives a (partial) report.
    rep = run_lrrt("report", out, "-q")
    assert rep.returncode == 1 and "missing" in pd.read_csv(out / "trials.csv")["status"].tolist()

    proc2 = run_lrrt("sweep", spec, "--out", out, env=ray_env)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    assert "resumed" in proc2.stderr
    final = _records(out)
    for tid, rec in first.items():
        if rec["status"] == "ok":
            assert final[tid]["finished_at"] == rec["finished_at"], "a finished trial was re-run"
    trials = _assert_outputs(out)
    assert sorted(trials["trial_id"]) == sorted(t["trial_id"] for t in manifest["trials"])
    assert (trials["status"] == "ok").all()


def test_different_spec_on_existing_out_is_refused(tmp_path, write_spec, ray_env):
    from sweeps.grid import expand
    from sweeps.spec import load_spec
    from sweeps.store import Manifest, SweepDir

    out = tmp_path / "o"
    # Another sweep's directory, as lrrt sweep prepares it before its first trial (no Ray
    # needed for that part: the refusal reads the manifest's fingerprint).
    first = load_spec(write_spec(tiny_spec(grid={"optimizer": ["sgd"], "batch_size": [32], "seed": [0]})))
    out.mkdir()
    SweepDir(out).write_manifest(Manifest.for_sweep(first, expand(first)))
    changed = write_spec(tiny_spec(grid={"optimizer": ["adam"], "batch_size": [32], "seed": [0]}), "other.yaml")
    before = sorted(p.name for p in out.rglob("*"))
    refused = run_lrrt("sweep", changed, "--out", out, "-q", env=ray_env)
    assert refused.returncode == 2 and "--fresh" in refused.stderr
    assert sorted(p.name for p in out.rglob("*")) == before
    fresh = run_lrrt("sweep", changed, "--out", out, "-q", "--fresh", env=ray_env)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert pd.read_csv(out / "trials.csv")["optimizer"].tolist() == ["adam"]
    # --fresh on the same sweep really starts over: every trial runs again, none is lost.
    before = {k: v["finished_at"] for k, v in _records(out).items()}
    again = run_lrrt("sweep", changed, "--out", out, "-q", "--fresh", env=ray_env)
    assert again.returncode == 0, again.stderr[-2000:]
    after = _records(out)
    assert set(after) == set(before) and all(after[k]["finished_at"] > before[k] for k in before)
    assert (out / ".lock").exists()  # --fresh keeps the lock file it holds


def test_ctrl_c_stops_gracefully_with_a_partial_report_then_resumes(tmp_path, write_spec, ray_env):
    spec = _six_trial_spec(write_spec, "ctrlc")
    out = tmp_path / "ctrlc"
    returncode, stderr = _signal_after_records(spec, out, signal.SIGINT, ray_env)
    assert returncode == 130, stderr[-3000:]
    assert "run the same command again to resume" in stderr
    trials = _assert_outputs(out)  # the partial report is written on the way out
    assert "missing" in trials["status"].tolist() and "ok" in trials["status"].tolist()
    done_before = {k: v["finished_at"] for k, v in _records(out).items() if v["status"] == "ok"}

    again = run_lrrt("sweep", spec, "--out", out, "-q", env=ray_env)
    assert again.returncode == 0, again.stderr[-3000:]
    after = _records(out)
    assert len(after) == 6 and all(r["status"] == "ok" for r in after.values())
    assert all(after[k]["finished_at"] == t for k, t in done_before.items())


def test_sweep_flags_default_out_storage_max_concurrent_verbose_eta_and_report_while_running(tmp_path, write_spec):
    """One small sweep checks several README flags at once.

    ``--local-gpus 1`` with no GPU per trial: the note that the GPU stays idle.
    No ``--out``: the outputs go to ``runs/<name>`` under the current directory.
    ``--storage``: Tune's own state goes there, not to ``OUT/ray``. ``--max-concurrent 1``:
    the first trial waits 6 s at its start and no other starts meanwhile (with two CPUs the
    second would start within a second). ``-v``: lrrt's INFO log and the
    workers' output reach the terminal. The progress line shows an ETA once a trial is done.
    ``lrrt report`` run while the held trial waits: partial outputs, the trial missing.
    """
    work = tmp_path / "work"
    work.mkdir()
    gate = tmp_path / "gate-open"
    spec = write_spec(tiny_spec(
        name="flags",
        grid={"optimizer": ["sgd"], "batch_size": [32], "seed": [0], "axes": {"gate": ["open", "held"]}},
        workload_args={"gate_file": str(gate), "meet_dir": str(tmp_path / "meet"), "meet_n": 2, "meet_s": 6,
                       "meet_strict": False},
        range_test={"steps": 40},
    ))
    storage = tmp_path / "tune-state"
    out = work / "runs" / "flags"
    err_log = tmp_path / "sweep.stderr"
    with open(err_log, "w") as err:
        proc = subprocess.Popen(lrrt_cmd("sweep", spec, "--storage", storage, "--max-concurrent", "1", "-v",
                                         "--local-gpus", "1"),
                                cwd=work, env=cli_env(), stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)
    with reaped(proc):
        wait_until(lambda: len(list((out / "trials").glob("*.json"))) >= 1, 300,
                    "the first trial's record in runs/flags/trials (default --out)", proc)
        rep = run_lrrt("report", out, cwd=work, timeout=300)  # while the sweep runs, its trial held
        assert rep.returncode == 1, rep.stderr[-2000:]
        partial = pd.read_csv(out / "trials.csv").set_index("gate")
        assert partial.loc["open", "status"] == "ok" and partial.loc["held", "status"] == "missing"
        assert proc.poll() is None and len(list((out / "trials").glob("*.json"))) == 1, "held trial finished"
        gate.write_text("go")
        stdout, _ = proc.communicate(timeout=300)
    stderr = err_log.read_text()
    assert proc.returncode == 0, stderr[-3000:]
    trials = _assert_outputs(out)
    assert (trials["status"] == "ok").all() and len(trials) == 2
    # --storage: Tune's experiment went there; nothing under OUT/ray.
    assert list(storage.glob("run-*")), sorted(p.name for p in storage.rglob("*"))[:20]
    assert not (out / "ray").exists()
    # --max-concurrent 1: the open trial waited 6 s at its start for another trial to start,
    # and none did (two CPUs: without the limit the held one starts within a second).
    saw = {p.name.split("-")[1]: int(p.read_text()) for p in (tmp_path / "meet").glob("saw-*")}
    assert saw == {"open": 1, "held": 2}, saw
    # --local-gpus 1 without --gpus-per-trial: the GPU stays idle, and the sweep says so.
    assert "lrrt: note: this machine has 1 GPU, but gpus_per_trial is 0" in stderr
    # -v: lrrt's own INFO log and the held worker's output.
    text = stderr + stdout
    assert "INFO sweeps.launch: Ray ready in" in text
    assert "faulty: trial held at its gate" in text
    # The progress line, with an ETA (mm:ss) once a trial has finished.
    progress = [line for line in stderr.splitlines() if line.startswith("[lrrt] ")]
    assert any(re.search(r"1/2 done .* ETA \d\d:\d\d$", line) for line in progress), progress
    assert progress[-1].startswith("[lrrt] range tests 2/2 done (0 failed)"), progress


@pytest.mark.parametrize("when", ["tune_waiting", "tune_starting"])
def test_wait_for_nodes_launches_a_gpu_request_no_node_has_yet(when, tmp_path, write_spec):
    """Without the flag, 1 GPU per trial on a machine with none is refused at once (exit 2,
    tested above); with ``--wait-for-nodes`` the sweep starts and waits for such a node.
    Ctrl-C then stops it as usual (exit 130, a partial report): while Tune waits for the
    node, and right after the manifest, while Tune is still starting (before its own
    Ctrl-C handler is in place)."""
    spec = write_spec(tiny_spec(grid={"optimizer": ["sgd"], "batch_size": [32], "seed": [0]}))
    out = tmp_path / "waits"
    proc = subprocess.Popen(lrrt_cmd("sweep", spec, "--out", out, "--gpus-per-trial", "1", "--wait-for-nodes"),
                            cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    with reaped(proc):
        # The manifest is written after the resource check, right before the trials launch;
        # Tune's experiment folder appears once its loop runs (the trial pending for a GPU).
        wait_until(lambda: (out / "sweep.json").is_file(), 300, f"{out}/sweep.json (the sweep launching)", proc)
        if when == "tune_waiting":
            wait_until(lambda: any((out / "ray").glob("run-*/*")), 300, f"Tune's experiment state in {out}/ray",
                        proc)
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "lrrt: 1 trials did not finish; run the same command again to resume" in stderr, stderr[-3000:]
    assert pd.read_csv(out / "trials.csv")["status"].tolist() == ["missing"]
