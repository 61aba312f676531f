"""`lrrt sweep --address` on a real two-node Ray cluster made on this machine (loopback).

Each node is a ``ray start --block`` process started in its own session (process group),
with its own ports and one temp dir per cluster under /tmp, so nothing clashes with other
Ray instances on the machine and teardown can stop exactly what this test started: the
process groups of the two ``ray start`` processes, every descendant seen while they ran,
and finally anything whose command line names this cluster's temp dir (raylet, gcs_server,
agents, workers). ``ray stop`` is never used: it would stop every Ray on the machine.

Each node offers one CPU and each trial asks for one, so two trials run at once, one per
node. The node-loss test holds every trial at its start (``tests.cluster.holdable``) until
it has seen a trial running on the second node, then SIGKILLs that node's processes.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.sweeps.conftest import REPO, cli_env, lrrt_cmd, tiny_spec, write_spec  # noqa: F401 (fixture)

# Above the sum of every wait a test here may spend: the fixture (two nodes starting, 90 s
# each; nodes alive, 60 + 60 s), the node-loss test's own (a trial on the worker, 120 s; the
# sweep, 200 s; the node's kill, 40 s), the teardown (about 70 s): 730 s. A hung test still
# fails (pytest-timeout) instead of stalling CI, but never before its own waits have said why.
pytestmark = [pytest.mark.ray, pytest.mark.tf, pytest.mark.timeout(800)]

OUTPUTS = ("trials.csv", "ranking.csv", "curves.parquet", "report.html", "report.md", "sweep.json")
RAY = str(Path(sys.executable).with_name("ray"))
STORAGE_ERROR = "Unable to set up cluster storage"  # Ray's error for head-local storage seen from other nodes


# --------------------------------------------------------------------------- processes (Linux /proc)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        st = _stat(pid)
        if st:
            children.setdefault(st[1], []).append(pid)
    found, todo = set(), [root]
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(pids, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = [p for p in pids if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [p for p in left if _alive(p)]
    return left


# --------------------------------------------------------------------------- ports


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_block(n: int, lo: int = 21000, hi: int = 39000) -> list[int]:
    """``n`` consecutive free ports at a random place (away from Ray's defaults 6379, 8265,
    10001, 52365 and from the ephemeral range)."""
    for _ in range(200):
        base = random.randrange(lo, hi - n)
        ports = list(range(base, base + n))
        if all(_port_free(p) for p in ports):
            return ports
    raise RuntimeError("no free block of ports")


# --------------------------------------------------------------------------- cluster


class RayNode:
    def __init__(self, name: str, proc: subprocess.Popen, log: Path, node_manager_port: int):
        self.name = name
        self.proc = proc
        self.log = log
        self.node_manager_port = node_manager_port
        self.node_id: str | None = None
        self.seen: set[int] = set()  # every descendant observed while it ran

    def remember_descendants(self) -> None:
        self.seen |= _descendants(self.proc.pid)

    def owns(self, pid: int) -> bool:
        """Is ``pid`` a descendant of this node's ``ray start`` process?"""
        return pid in _descendants(self.proc.pid)

    def kill(self, sig: int = signal.SIGKILL, wait_s: float = 15.0) -> None:
        """Signal the node's process group and every descendant seen; wait for them to go."""
        self.remember_descendants()
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        for pid in self.seen:
            _signal(pid, sig)
        try:
            self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        _wait_gone(self.seen, wait_s)


class LoopbackCluster:
    """A Ray cluster of ``ray start`` nodes on 127.0.0.1, torn down by process group."""

    def __init__(self, log_dir: Path):
        # Short path: Ray's Unix sockets live under it (108-byte limit).
        self.temp_dir = Path(tempfile.mkdtemp(prefix="lrrt-mn-", dir="/tmp"))
        self.log_dir = log_dir
        self.nodes: list[RayNode] = []
        self.port: int | None = None
        # Ray 2.60 turns token authentication on for `ray start --head` when ~/.ray/auth_token
        # exists, but `ray start --address` only follows RAY_AUTH_MODE: set the mode and a
        # token of this cluster's own explicitly for every process (nodes and drivers).
        self.token_path = self.temp_dir / "auth_token"
        self.token_path.write_text(secrets.token_hex(32))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment for the nodes and for drivers joining the cluster."""
        env = cli_env()  # PYTHONPATH has the repo root: workers import tests.* workloads
        env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token_path),
            RAY_USAGE_STATS_ENABLED="0",
            # Notice a killed node within a few seconds instead of ~30 s.
            RAY_health_check_period_ms="1000",
            RAY_health_check_timeout_ms="1000",
            RAY_health_check_failure_threshold="3",
        )
        return env

    def add_node(self, num_cpus: int = 1) -> RayNode:
        head = not self.nodes
        ports = _free_block(48)
        (node_manager, object_manager, agent_listen, agent_grpc, runtime_env_agent, metrics, gcs, client,
         *worker_ports) = ports
        name = "head" if head else f"worker{len(self.nodes)}"
        cmd = [
            RAY, "start", "--block", "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}", "--num-gpus=0",
            f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
            f"--dashboard-agent-listen-port={agent_listen}", f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--runtime-env-agent-port={runtime_env_agent}", f"--metrics-export-port={metrics}",
            f"--min-worker-port={worker_ports[0]}", f"--max-worker-port={worker_ports[-1]}",
            "--object-store-memory=100000000", f"--temp-dir={self.temp_dir}", "--disable-usage-stats",
        ]
        if head:
            self.port = gcs
            cmd += ["--head", f"--port={gcs}", f"--ray-client-server-port={client}", "--include-dashboard=false"]
        else:
            cmd += [f"--address={self.address}"]
        return self.launch(name, cmd, node_manager)

    def launch(self, name: str, cmd: list[str], node_manager: int) -> "RayNode":
        """Run one ``ray start --block`` in its own session, logging to ``<name>.log``, and
        wait until Ray says it started; the node is remembered for teardown."""
        log = self.log_dir / f"{name}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, cwd=REPO, env=self.env(), stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        node = RayNode(name, proc, log, node_manager)
        self.nodes.append(node)
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        node.remember_descendants()
        return node

    def wait_for_nodes(self, n: int, timeout: float = 60) -> None:
        """Block until ``n`` nodes are alive in the GCS; record each node's Ray node id."""
        script = (
            "import json, sys, time, ray\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
            f"deadline = time.time() + {timeout}\n"
            f"while len([x for x in ray.nodes() if x['Alive']]) < {n} and time.time() < deadline: time.sleep(0.5)\n"
            "print(json.dumps({x['NodeManagerPort']: [x['NodeID'], x['NodeManagerAddress']] for x in ray.nodes() if x['Alive']}))\n"
        )
        out = subprocess.run([sys.executable, "-c", script], env=self.env(), capture_output=True, text=True,
                             timeout=timeout + 60)
        assert out.returncode == 0, out.stderr[-3000:]
        ids = {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}
        assert len(ids) >= n, f"only {len(ids)} of {n} nodes alive"
        addresses = set()
        for node in self.nodes:
            node.node_id, address = ids.get(node.node_manager_port, (node.node_id, None))
            addresses.add(address)
            node.remember_descendants()
        # Ray 2.60 on Linux rewrites --node-ip-address=127.0.0.1 (and an --address on
        # 127.0.0.1) to the machine's routable IP (services.resolve_ip_for_localhost), so the
        # nodes register under that IP; they are still both on this machine.
        assert len(addresses - {None}) == 1, addresses

    def leftovers(self) -> list[int]:
        """Live processes started for this cluster: descendants of its nodes seen while they
        ran, and any process whose command line names its temp dir."""
        needle = str(self.temp_dir)
        seen = set().union(*(n.seen for n in self.nodes)) if self.nodes else set()
        mine = {p for p in _all_pids() if p != os.getpid() and needle in _cmdline(p)} | seen
        return sorted(p for p in mine if _alive(p))

    def shutdown(self) -> list[str]:
        """Stop every node (workers first), then anything left from this temp dir.
        Returns the descriptions of processes that outlived a clean stop."""
        # SIGTERM first; a head then "drains for up to 30 s", so after a few seconds its
        # process group gets SIGKILL (nothing of value is left in it by then).
        for node in reversed(self.nodes):
            node.kill(signal.SIGTERM, wait_s=5)
        left = _wait_gone(self.leftovers(), 15)
        described = [f"{p} {_cmdline(p)[:150]}" for p in left if _alive(p)]
        for p in left:
            _signal(p, signal.SIGKILL)
        _wait_gone(left, 10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        return described


@pytest.fixture
def loopback_cluster(tmp_path):
    """A head and one worker node, one CPU each. Everything started is stopped afterwards."""
    cluster = LoopbackCluster(tmp_path)
    try:
        cluster.add_node(num_cpus=1)
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes(2)
        yield cluster
    finally:
        survivors = cluster.shutdown()
        assert not cluster.leftovers(), "Ray processes of this test still running after teardown"
        assert not survivors, f"processes outlived stopping their node: {survivors}"


# --------------------------------------------------------------------------- tests


def _records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / "trials").glob("*.json")}


def _assert_complete(out: Path, n_trials: int) -> pd.DataFrame:
    for name in OUTPUTS:
        assert (out / name).is_file(), f"{name} missing"
    assert list((out / "plots").glob("*.png")), "no plots"
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == n_trials == len(_records(out))
    assert (trials["status"] == "ok").all(), trials[["name", "status", "error"]]
    assert trials["steps"].gt(0).all()
    curves = pd.read_parquet(out / "curves.parquet")
    assert curves["trial"].nunique() == n_trials
    return trials


def test_sweep_runs_on_both_nodes(loopback_cluster, tmp_path, write_spec):
    cluster = loopback_cluster
    spec = write_spec(tiny_spec("twonode"))  # 4 trials, 1 CPU each, 30 steps
    out = tmp_path / "out"
    start = time.monotonic()
    proc = subprocess.run(lrrt_cmd("sweep", spec, "--address", cluster.address, "--out", out),
                          cwd=REPO, env=cluster.env(), capture_output=True, text=True, timeout=240)
    wall = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-4000:]
    trials = _assert_complete(out, 4)
    node_ids = {n.node_id for n in cluster.nodes}
    assert None not in node_ids
    assert set(trials["node"]) == node_ids, (trials[["name", "node"]], node_ids)
    # Results reached the driver's --out although half the trials ran on the other node,
    # and Tune's default storage (OUT/ray, local to the driver) raised nothing.
    assert STORAGE_ERROR not in proc.stderr + proc.stdout
    assert (out / "ray").is_dir()
    print(f"two-node sweep: {wall:.1f} s")


def test_node_lost_mid_sweep_trials_retried_elsewhere(loopback_cluster, tmp_path, write_spec):
    cluster = loopback_cluster
    head, worker = cluster.nodes
    hold = tmp_path / "hold"
    spec = write_spec(tiny_spec(
        "nodeloss", workload="tests.cluster.holdable:build",
        workload_args={"hold_dir": str(hold), "hold_s": 120}, retries=2,
    ))
    out = tmp_path / "out"
    err_log = tmp_path / "sweep.stderr"
    start = time.monotonic()
    with open(err_log, "w") as err:
        sweep = subprocess.Popen(lrrt_cmd("sweep", spec, "--address", cluster.address, "--out", out),
                                 cwd=REPO, env=cluster.env(), stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        # Wait until a trial is running (held at its start) on the worker node.
        victim_pid = None
        deadline = time.monotonic() + 120
        while victim_pid is None:
            assert sweep.poll() is None, err_log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial started on the worker node"
            worker.remember_descendants()
            for marker in hold.glob("started-*"):
                pid = int(marker.name.split("-", 1)[1])
                if worker.owns(pid):
                    victim_pid = pid
            time.sleep(0.3)
        worker.kill(signal.SIGKILL)  # the node disappears: raylet, agents, trial worker
        assert not _alive(victim_pid)
        (hold / "release").write_text("go")
        stdout, _ = sweep.communicate(timeout=200)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    wall = time.monotonic() - start
    stderr = err_log.read_text()
    assert sweep.returncode == 0, stderr[-4000:]
    trials = _assert_complete(out, 4)
    records = _records(out)
    retried = [r for r in records.values() if r["retried"]]
    assert retried, {k: (r["attempts"], r["node"]) for k, r in records.items()}
    for r in retried:
        assert r["attempts"] >= 2 and r["status"] == "ok"
        assert r["node"] == head.node_id, "a retried trial finished on the surviving node"
    by_id = trials.set_index("trial_id")
    for r in retried:
        assert by_id.loc[r["trial_id"], "attempts"] >= 2
    assert "retried" in stderr  # the progress line counts retries
    print(f"node-loss sweep: {wall:.1f} s, {len(retried)} trial(s) retried")
