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
