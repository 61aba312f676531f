"""A local autoscaling Ray cluster built from ``cluster.yaml``'s own worker node types.

Ray's fake multi-node provider (enabled by ``RAY_FAKE_CLUSTER=1`` on the head; here its
subclass ``tests.cluster.fake_provider.OwnDiskFakeProvider``, which only gives each node
its own temp dir, as each cloud instance has its own disk) lets the real autoscaler (the
head's ``monitor.py``) add and remove worker nodes on this machine: each "node" is a real
raylet with its own agents and workers, declaring the CPUs and (logical) GPUs of its node
type, started and stopped by the autoscaler exactly when it would ask a cloud for an
instance.

``ray.cluster_utils.AutoscalingCluster`` does the same but runs ``ray stop --force`` on
start and shutdown (stopping every Ray on the machine, other users' too) and uses Ray's
default ports and temp dir. :class:`AutoscalingLoopback` starts the head like
``tests.cluster.test_multinode.LoopbackCluster`` does: ``ray start --block`` in its own
process group, its own free ports, its own temp dir and token. Autoscaled nodes are
started by the head's monitor process, so they are descendants of the head's
``ray start`` and their processes name this cluster's temp dir: teardown finds them the
same way (descendants seen while they ran, then anything naming the temp dir, under
which each node's own temp dir lies).

:func:`scaled_node_types` reads the worker node types of the shipped ``cluster.yaml``
and scales them to a 2-core machine: each keeps its GPU count (logical GPUs cost
nothing) and its ``min_workers``; it gets one CPU per GPU (the real nodes have 4 and
12 vCPUs per GPU), and ``max_workers`` is capped (default 2). The head keeps its own
resources (``CPU: 0``, ``GPU: 0``: no trials on it) and, as in the real cluster, runs the
job server (the dashboard) so ``ray job submit`` works against it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.cluster.test_multinode import (  # helpers only (no tests, no fixtures)
    RAY, LoopbackCluster, RayNode, _alive, _cmdline, _descendants, _free_block, _signal, _wait_gone,
)
from tests.sweeps.conftest import REPO

CLUSTER_YAML = REPO / "cluster.yaml"
FAKE_HEAD_NODE_ID = "f" * 51 + "00000"  # ray.autoscaler._private.fake_multi_node.node_provider


def scaled_node_types(path: Path = CLUSTER_YAML, max_workers: int = 2,
                      idle_timeout_minutes: float = 0.1) -> tuple[dict, dict]:
    """``cluster.yaml`` scaled to this machine: ``(head_resources, config)``, where ``config``
    has the worker ``available_node_types``, the cluster's ``max_workers`` (capped),
    ``idle_timeout_minutes`` (short) and ``upscaling_speed``."""
    cfg = yaml.safe_load(path.read_text())
    head_type = cfg["head_node_type"]
    workers = {}
    for name, t in cfg["available_node_types"].items():
        if name == head_type:
            continue
        gpus = int(t["resources"].get("GPU", 0))
        workers[name] = {
            "resources": {"CPU": max(gpus, 1), "GPU": gpus,
                          # The fake provider pops this and gives each node a small object store.
                          "object_store_memory": 80 * 1024 * 1024},
            "node_config": {},
            "min_workers": int(t.get("min_workers", 0)),
            "max_workers": min(int(t["max_workers"]), max_workers),
        }
    head = dict(cfg["available_node_types"][head_type]["resources"])
    return head, {
        "available_node_types": workers,
        "max_workers": min(int(cfg["max_workers"]), max_workers),
        "idle_timeout_minutes": idle_timeout_minutes,
        "upscaling_speed": cfg.get("upscaling_speed", 1.0),
    }


class AutoscalingLoopback(LoopbackCluster):
    """A head started with ``--autoscaling-config`` on the fake multi-node provider, and the
    dashboard (job server) on a free port; worker nodes come and go with the autoscaler."""

    def __init__(self, log_dir: Path, *, idle_timeout_minutes: float = 0.1, heartbeat_timeout_s: int = 10):
        super().__init__(log_dir)
        self.head_resources, scaled = scaled_node_types(idle_timeout_minutes=idle_timeout_minutes)
        self.node_types = scaled["available_node_types"]
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.dashboard_port: int | None = None
        self._scaled = scaled
        self.log_dir = log_dir

    # ------------------------------------------------------------------ start

    def env(self) -> dict[str, str]:
        env = super().env()
        # The job entrypoint (`lrrt sweep ...`, as README writes it) runs in a shell on the
        # head: find lrrt and ray next to this interpreter, as in an activated venv.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.update(
            RAY_FAKE_CLUSTER="1",                       # lets the monitor load the fake provider
            AUTOSCALER_UPDATE_INTERVAL_S="1",           # the monitor's loop (default 5 s)
            # A worker whose raylet is gone is terminated (and replaced) after this long.
            AUTOSCALER_HEARTBEAT_TIMEOUT_S=str(self.heartbeat_timeout_s),
        )
        return env

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start_head(self) -> RayNode:
        assert not self.nodes
        ports = _free_block(48)
        (node_manager, object_manager, agent_listen, agent_grpc, runtime_env_agent, metrics, gcs, client,
         dashboard, *worker_ports) = ports
        self.port, self.dashboard_port = gcs, dashboard
        config = {
            "cluster_name": "lrrt-fake",
            "provider": {
                # Ray's fake provider, each node with a temp dir of its own (see fake_provider).
                "type": "external",
                "module": "tests.cluster.fake_provider.OwnDiskFakeProvider",
                "node_temp_root": str(self.temp_dir),
                "use_node_id_as_ip": True,
                "disable_node_updaters": True,
                "disable_launch_config_check": True,
                "gcs_address": self.address,
            },
            "head_node_type": "ray.head.default",
            "available_node_types": {
                **self.node_types,
                "ray.head.default": {"resources": self.head_resources, "node_config": {}, "max_workers": 0},
            },
            "max_workers": self._scaled["max_workers"],
            "idle_timeout_minutes": self._scaled["idle_timeout_minutes"],
            "upscaling_speed": self._scaled["upscaling_speed"],
            "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [],
            "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
            "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
            "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
        }
        config_path = self.temp_dir / "autoscaling.yaml"
        config_path.write_text(yaml.safe_dump(config))
        cmd = [
            RAY, "start", "--block", "--head", "--node-ip-address=127.0.0.1",
            f"--num-cpus={int(self.head_resources.get('CPU', 0))}",
            f"--num-gpus={int(self.head_resources.get('GPU', 0))}",
            f"--port={gcs}", f"--autoscaling-config={config_path}",
            "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
            f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
            f"--dashboard-agent-listen-port={agent_listen}", f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--runtime-env-agent-port={runtime_env_agent}", f"--metrics-export-port={metrics}",
            f"--ray-client-server-port={client}",
            f"--min-worker-port={worker_ports[0]}", f"--max-worker-port={worker_ports[-1]}",
            "--object-store-memory=100000000", f"--temp-dir={self.temp_dir}", "--disable-usage-stats",
        ]
        head = self.launch("head", cmd, node_manager)
        head.node_id = FAKE_HEAD_NODE_ID
        return head

    # ------------------------------------------------------------------ look

    def remember(self) -> None:
        """Note every process the head has started so far (autoscaled nodes included)."""
        for node in self.nodes:
            node.remember_descendants()

    def alive_nodes(self) -> dict[str, dict]:
        """Alive nodes as the GCS sees them: node id -> {"resources", "type"} (a fresh driver)."""
        script = (
            "import json, ray\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
            "print(json.dumps({n['NodeID']: n['Resources'] for n in ray.nodes() if n['Alive']}))\n"
        )
        out = subprocess.run([sys.executable, "-c", script], env=self.env(), capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        self.remember()
        return json.loads(out.stdout.strip().splitlines()[-1])

    def wait_workers(self, done: str, timeout: float, what: str) -> dict[str, dict]:
        """Poll the alive worker nodes (one driver, every 0.5 s) until the Python expression
        ``done`` holds for ``workers`` (node id -> resources, head excluded); fail naming
        ``what`` after ``timeout`` s. Returns the alive workers."""
        script = (
            "import json, sys, time, ray\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
            f"deadline = time.time() + {timeout}\n"
            "while True:\n"
            f"    workers = {{n['NodeID']: n['Resources'] for n in ray.nodes() if n['Alive'] and n['NodeID'] != {FAKE_HEAD_NODE_ID!r}}}\n"
            f"    if ({done}) or time.time() > deadline: break\n"
            "    time.sleep(0.5)\n"
            f"print(json.dumps({{'ok': bool({done}), 'workers': workers}}))\n"
        )
        out = subprocess.run([sys.executable, "-c", script], env=self.env(), capture_output=True, text=True,
                             timeout=timeout + 60)
        assert out.returncode == 0, out.stderr[-3000:]
        self.remember()
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert got["ok"], f"waited {timeout:g} s for {what}; alive workers: {got['workers']}\n{node_log_tail(self)}"
        return got["workers"]

    def raylets(self) -> dict[int, str]:
        """pid -> node id of every live raylet of this cluster."""
        self.remember()
        found = {}
        for pid in set().union(*(n.seen for n in self.nodes)):
            if not _alive(pid):
                continue
            args = _cmdline(pid).split()
            if args and args[0].endswith("/raylet"):
                ids = [a.split("=", 1)[1] for a in args if a.startswith("--node_id=")]
                if ids:
                    found[pid] = ids[0]
        return found

    def node_of(self, pid: int) -> str | None:
        """The id of the node whose raylet ``pid`` runs under (None: none, or gone)."""
        for raylet, node_id in self.raylets().items():
            if pid in _descendants(raylet):
                return node_id
        return None

    def kill_node(self, node_id: str) -> list[int]:
        """SIGKILL an autoscaled node: its raylet and every process under it (agents, workers)."""
        raylet = next((pid for pid, nid in self.raylets().items() if nid == node_id), None)
        assert raylet is not None, f"no raylet of node {node_id} among this cluster's processes"
        victims = {raylet} | _descendants(raylet)  # the raylet, its agents and its workers
        for pid in victims:
            _signal(pid, signal.SIGKILL)
        left = _wait_gone(victims, 15)
        assert not left, f"node {node_id}: processes survived SIGKILL: {left}"
        return sorted(victims)


def node_log_tail(cluster: AutoscalingLoopback, n: int = 40) -> str:
    """The autoscaler's decisions (adding, terminating nodes; warnings, errors) from its log,
    and the end of the head's log: for failure messages."""
    keys = ("Adding", "Removing", "Terminat", "WARNING", "ERROR", "Exception", "Failed")
    texts = []
    for p in sorted(cluster.temp_dir.glob("session_2*/logs/monitor.log")):
        lines = [ln for ln in p.read_text(errors="replace").splitlines() if any(k in ln for k in keys)]
        texts.append("--- autoscaler (monitor.log):\n" + "\n".join(lines[-n:]))
    head = cluster.log_dir / "head.log"
    if head.is_file():
        texts.append("--- head.log:\n" + "\n".join(head.read_text(errors="replace").splitlines()[-n:]))
    return "\n".join(texts)


def autoscaler_events(cluster: AutoscalingLoopback) -> list[str]:
    """The autoscaler's "Adding N node(s) of type T" and termination lines, in order."""
    lines = []
    for p in sorted(cluster.temp_dir.glob("session_2*/logs/monitor.log")):
        lines += [ln for ln in p.read_text(errors="replace").splitlines()
                  if "Adding" in ln or "Terminating" in ln or "Removing" in ln]
    return lines


__all__ = ["AutoscalingLoopback", "scaled_node_types", "node_log_tail", "autoscaler_events", "FAKE_HEAD_NODE_ID"]
