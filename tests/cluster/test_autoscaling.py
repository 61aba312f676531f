"""The cluster path run for real on one machine: an autoscaling cluster made from
``cluster.yaml``'s own worker node types (``tests.cluster.autoscaling``), GPU sweeps that
wait for the autoscaler, README's ``ray job submit`` / ``ray job stop`` / resubmit /
``lrrt report`` commands as written, and a worker node lost while the autoscaler replaces it.

One cluster per module (its head takes ~8 s to start; workers come and go with the
autoscaler anyway). The fixture stops every process it started, by process group,
descendants and temp dir (never ``ray stop``), and fails if any outlived that.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.cluster.autoscaling import (
    FAKE_HEAD_NODE_ID, AutoscalingLoopback, autoscaler_events, node_log_tail, scaled_node_types,
)
from tests.cluster.test_multinode import OUTPUTS, _alive
from tests.sweeps.conftest import REPO, lrrt_cmd, tiny_spec, write_spec  # noqa: F401 (fixture)

# Above the sum of the waits of every test here and the fixture's (head 90 s, teardown ~70 s).
pytestmark = [pytest.mark.ray, pytest.mark.tf, pytest.mark.timeout(900)]

GPU_TYPES = {name for name, t in scaled_node_types()[1]["available_node_types"].items() if t["resources"]["GPU"]}


@pytest.fixture(scope="module")
def autoscaling_cluster(tmp_path_factory):
    """A head with cluster.yaml's head resources (CPU 0, GPU 0) and the job server; worker
    node types from cluster.yaml (0 workers at start), 6 s idle timeout."""
    cluster = AutoscalingLoopback(tmp_path_factory.mktemp("autoscaling-cluster"))
    try:
        cluster.start_head()
        yield cluster
    finally:
        survivors = cluster.shutdown()
        assert not cluster.leftovers(), "Ray processes of this cluster still running after teardown"
        assert not survivors, f"processes outlived stopping the cluster: {survivors}"


def _records(out: Path, folder: str = "trials") -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / folder).glob("*.json")}


def _complete(out: Path, n: int) -> pd.DataFrame:
    for name in OUTPUTS:
        assert (out / name).is_file(), f"{name} missing"
    trials = pd.read_csv(out / "trials.csv", dtype={"gpu_ids": str})
    assert len(trials) == n == len(_records(out))
    assert (trials["status"] == "ok").all(), trials[["name", "status", "error"]]
    return trials


def _is_worker_id(node_id: str) -> bool:
    """An autoscaled node of the fake provider: ids fff...00001, fff...00002, ... (head: 00000)."""
    return bool(re.fullmatch(r"f{51}\d{5}", node_id)) and node_id != FAKE_HEAD_NODE_ID


def _added_types(cluster) -> set[str]:
    return {m.group(1) for ln in autoscaler_events(cluster) for m in [re.search(r"Adding \d+ node\(s\) of type (\S+)\.", ln)] if m}


# --------------------------------------------------------------------------- 1. autoscaling


def test_gpu_sweep_waits_for_the_autoscaler_and_runs_on_added_nodes(autoscaling_cluster, tmp_path, write_spec):
    """cluster.yaml's GPU groups start at 0 nodes: without --wait-for-nodes lrrt refuses at
    once, naming the flag; with it the sweep waits, the autoscaler adds GPU workers, every
    trial runs on one of them with a GPU id, and the workers are removed once idle."""
    cluster = autoscaling_cluster
    assert cluster.wait_workers("not workers", 30, "a cluster with no worker nodes") == {}
    spec = write_spec(tiny_spec("autoscale", grid={"optimizer": ["sgd", "adam"], "batch_size": [32], "seed": [0]}))

    refused = tmp_path / "refused"
    proc = subprocess.run(lrrt_cmd("sweep", spec, "--address", cluster.address, "--out", refused,
                                   "--gpus-per-trial", "1"),
                          cwd=REPO, env=cluster.env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "1 GPU per trial, but any node of the cluster has 0" in proc.stderr, proc.stderr[-2000:]
    assert "--wait-for-nodes" in proc.stderr, proc.stderr[-2000:]
    assert not refused.exists()

    out = tmp_path / "out"
    start = time.monotonic()
    proc = subprocess.run(lrrt_cmd("sweep", spec, "--address", cluster.address, "--out", out,
                                   "--gpus-per-trial", "1", "--wait-for-nodes"),
                          cwd=REPO, env=cluster.env(), capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-4000:] + node_log_tail(cluster)
    trials = _complete(out, 2)
    # Every trial ran on a node the autoscaler added (not the CPU-0 head), with a GPU of it.
    assert all(_is_worker_id(n) for n in trials["node"]), trials[["name", "node"]]
    assert trials["gpu_ids"].notna().all() and (trials["gpu_ids"].str.len() > 0).all(), trials[["name", "gpu_ids"]]
    added = _added_types(cluster)
    assert added and added <= GPU_TYPES, autoscaler_events(cluster)
    # Idle workers are removed after the (scaled-down) idle timeout.
    t0 = time.monotonic()
    cluster.wait_workers("not workers", 90, "the idle GPU workers to be removed")
    print(f"autoscaled sweep: {wall:.1f} s; scale-down {time.monotonic() - t0:.1f} s; added types {sorted(added)}")


# --------------------------------------------------------------------------- 2. README's job commands


def _readme_job_commands() -> dict:
    """README's cluster-jobs block, parsed: the dashboard address and auth mode its
    ``export`` sets, the submit command (argv), the stop command, the id a resubmission
    takes, and the report command."""
    from tests.sweeps.conftest import readme_example

    block = readme_example("cluster-jobs")
    lines = block.replace("\\\n", " ").splitlines()
    export = re.search(r"export (.+)$", next(ln for ln in lines if "export " in ln)).group(1)
    env = dict(item.split("=", 1) for item in export.split())
    submit = shlex.split(next(ln for ln in lines if ln.startswith("ray job submit")))
    stop = shlex.split(next(ln for ln in lines if ln.startswith("ray job stop")).split("#")[0])
    resume_id = re.search(r"new --submission-id \((\S+)\)", block).group(1)
    report = shlex.split(next(ln for ln in lines if "lrrt report" in ln).split("&&")[1])
    return dict(env=env, submit=submit, stop=stop, resume_id=resume_id, report=report)


def _substitute(argv: list[str], mapping: dict[str, str]) -> list[str]:
    return [mapping.get(a, a) for a in argv]


@pytest.mark.slow
def test_readme_job_commands_submit_stop_resume_report(autoscaling_cluster, tmp_path, write_spec):
    """README's commands run as written against a head with the job server: the submitted
    sweep writes its outputs; ``ray job stop`` stops it gracefully (partial report, job
    STOPPED); the same submit with a new id resumes without re-running the finished trial;
    ``lrrt report`` on a copy of the output folder (as after ``ray rsync-down``) gives the
    same tables."""
    cluster = autoscaling_cluster
    readme = _readme_job_commands()
    submit_id = readme["submit"][readme["submit"].index("--submission-id") + 1]
    assert readme["stop"] == ["ray", "job", "stop", submit_id]
    gate = tmp_path / "gate-open"
    spec = write_spec(tiny_spec(
        "jobs", grid={"optimizer": ["sgd"], "batch_size": [32], "seed": [0], "axes": {"gate": ["open", "held"]}},
        workload_args={"gate_file": str(gate), "gate_s": 240},
    ))
    out, copy = tmp_path / "lrrt-runs" / "my_sweep", tmp_path / "runs" / "my_sweep"
    places = {"my_sweep.yaml": str(spec), "/home/ubuntu/lrrt-runs/my_sweep": str(out), "runs/my_sweep": str(copy)}
    env = cluster.env()
    dashboard = readme["env"]["RAY_ADDRESS"]
    assert dashboard == "http://127.0.0.1:8265", readme["env"]
    env.update(readme["env"], RAY_ADDRESS=cluster.dashboard_url)  # the tunnel's port is ours

    def ray_cli(argv, timeout=240):
        return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)

    # 1. Submit (the CLI follows the job's log until the job ends); the open trial finishes,
    #    the held one waits at its gate.
    submit_log = tmp_path / "submit-1.log"
    with open(submit_log, "w") as fh:
        submitting = subprocess.Popen(_substitute(readme["submit"], places), cwd=REPO, env=env, stdout=fh,
                                      stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not any(r.get("status") == "ok" for r in _records(out).values() if (out / "trials").is_dir()):
            assert submitting.poll() is None, submit_log.read_text()[-4000:]
            assert time.monotonic() < deadline, "no finished trial of the submitted job\n" + submit_log.read_text()[-4000:]
            time.sleep(0.5)
        finished = {k: (out / "trials" / f"{k}.json").read_text() for k, r in _records(out).items() if r["status"] == "ok"}
        # 2. Stop it as README says.
        stopped = ray_cli(_substitute(readme["stop"], places))
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert f"Job '{submit_id}' was stopped" in stopped.stdout + stopped.stderr, stopped.stdout + stopped.stderr
        submitting.wait(timeout=60)
    finally:
        if submitting.poll() is None:
            os.killpg(submitting.pid, signal.SIGKILL)
            submitting.wait()
    log = submit_log.read_text()
    assert submitting.returncode == 0, log[-4000:]  # `ray job submit` exits 1 only for a FAILED job
    assert "1 trials did not finish; run the same command again to resume" in log, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    partial = pd.read_csv(out / "trials.csv").set_index("gate")
    assert partial["status"].to_dict() == {"open": "ok", "held": "missing"}, partial
    assert (out / "report.md").is_file() and (out / "report.html").is_file()

    # 3. Resubmit: the same command with README's new submission id.
    gate.write_text("go")
    resume = _substitute(readme["submit"], {**places, submit_id: readme["resume_id"]})
    resumed = ray_cli(resume, timeout=300)
    text = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, text[-4000:]
    assert f"Job '{readme['resume_id']}' succeeded" in text, text[-4000:]
    assert "lrrt: resumed: 1 finished trials kept, 1 run now" in text, text[-4000:]
    trials = _complete(out, 2)
    for trial_id, record in finished.items():  # not re-run: the record is byte for byte the same
        assert (out / "trials" / f"{trial_id}.json").read_text() == record
    assert all(_is_worker_id(n) for n in trials["node"]), trials[["name", "node"]]

    # 4. `ray rsync-down` (a copy here), then `lrrt report` on the copy: the same tables.
    shutil.copytree(out, copy)
    for name in ("trials.csv", "ranking.csv", "curves.parquet", "report.md"):
        (copy / name).unlink()
    reported = subprocess.run(_substitute(readme["report"], places), cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=240)
    assert reported.returncode == 0, reported.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(copy / "trials.csv"), pd.read_csv(out / "trials.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(copy / "ranking.csv"), pd.read_csv(out / "ranking.csv"))
    pd.testing.assert_frame_equal(pd.read_parquet(copy / "curves.parquet"), pd.read_parquet(out / "curves.parquet"))


# --------------------------------------------------------------------------- 3. node lost


def _started(hold: Path) -> list[int]:
    return sorted(int(p.name.split("-", 1)[1]) for p in hold.glob("started-*"))


@pytest.mark.slow
def test_worker_lost_mid_sweep_is_replaced_by_the_autoscaler(autoscaling_cluster, tmp_path, write_spec):
    """Both trials are held at their start, each on its own autoscaled GPU worker; one worker
    is SIGKILLed. The autoscaler terminates that node and starts another; the lost trial's retry starts there (the other worker is still busy), and
    once released the sweep completes with the retried trial marked."""
    cluster = autoscaling_cluster
    hold = tmp_path / "hold"
    spec = write_spec(tiny_spec(
        "nodeloss", grid={"optimizer": ["sgd", "adam"], "batch_size": [32], "seed": [0]},
        workload="tests.cluster.holdable:build", workload_args={"hold_dir": str(hold), "hold_s": 240}, retries=2,
    ))
    out = tmp_path / "out"
    err_log = tmp_path / "sweep.stderr"
    start = time.monotonic()
    with open(err_log, "w") as err:
        sweep = subprocess.Popen(lrrt_cmd("sweep", spec, "--address", cluster.address, "--out", out,
                                          "--gpus-per-trial", "1", "--wait-for-nodes"),
                                 cwd=REPO, env=cluster.env(), stdout=subprocess.PIPE, stderr=err, text=True,
                                 start_new_session=True)

    def wait(done, timeout, what):
        deadline = time.monotonic() + timeout
        while not done():
            assert sweep.poll() is None, f"sweep ended before {what}:\n{err_log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"waited {timeout} s for {what}\n{node_log_tail(cluster)}"
            time.sleep(0.3)

    try:
        wait(lambda: len(_started(hold)) >= 2, 240, "both trials to start on autoscaled workers")
        first, second = _started(hold)[:2]
        victim, other = cluster.node_of(first), cluster.node_of(second)
        assert victim and other and victim != other and _is_worker_id(victim) and _is_worker_id(other), (victim, other)
        known = set(cluster.wait_workers("True", 5, "the alive workers"))
        killed = cluster.kill_node(victim)
        assert first in killed and not _alive(first)
        # The retry of the lost trial starts on a node the autoscaler added after the kill.
        wait(lambda: any(cluster.node_of(p) not in known | {None} for p in _started(hold)), 180,
             "the lost trial's retry to start on a new node")
        replacement = next(cluster.node_of(p) for p in _started(hold) if cluster.node_of(p) not in known | {None})
        (hold / "release").write_text("go")
        stdout, _ = sweep.communicate(timeout=240)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.wait()
    wall = time.monotonic() - start
    stderr = err_log.read_text()
    assert sweep.returncode == 0, stderr[-4000:]
    trials = _complete(out, 2).set_index("trial_id")
    records = _records(out)
    retried = {k: r for k, r in records.items() if r["retried"]}
    assert len(retried) == 1, {k: (r["attempts"], r["node"]) for k, r in records.items()}
    (rid, r), = retried.items()
    assert r["status"] == "ok" and r["attempts"] >= 2 and trials.loc[rid, "attempts"] >= 2
    assert r["node"] == replacement and r["node"] not in known, (r["node"], replacement, known)
    (oid, o), = ((k, v) for k, v in records.items() if k != rid)
    assert o["attempts"] == 1 and o["node"] == other
    assert "retried" in stderr  # the progress line counts retries
    events = autoscaler_events(cluster)
    # The autoscaler itself terminated the lost node (Ray 2.60's autoscaler logs the reason
    # as "idle": a dead raylet reports no load) before it added the replacement.
    assert any("Terminating" in ln and victim in ln for ln in events), "\n".join(events)
    print(f"node-loss sweep on the autoscaling cluster: {wall:.1f} s; replacement {replacement[-5:]}")
