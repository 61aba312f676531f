"""``tests.cluster.holdable:build``: the tiny ``tests.sweeps.faulty`` workload, but every
trial can be held at its start until the test releases it.

Each trial process writes ``hold_dir/started-<pid>`` and then waits (at most ``hold_s``)
until ``hold_dir/release`` exists. The node-loss test uses it to know for sure that a
trial is running on the node it is about to remove. A retried trial starts after the
release and passes straight through.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.sweeps.faulty import build as faulty_build


def build(seed: int = 0, *, hold_dir: str | None = None, hold_s: float = 90.0, **kwargs):
    if hold_dir:
        d = Path(hold_dir)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"started-{os.getpid()}").write_text(str(seed))
        deadline = time.monotonic() + hold_s
        while not (d / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    return faulty_build(seed, **kwargs)
