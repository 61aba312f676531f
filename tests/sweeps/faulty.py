"""A tiny user workload (``tests.sweeps.faulty:build``) that can fail on purpose.

Used by the Ray tests as a real ``package.module:function`` workload: the ``fault`` axis
makes a trial raise, or kill its worker process (``os._exit``) always or only on its first
attempt (a marker file in ``marker_dir`` remembers the first attempt), or — ``raise_in_verify`` —
build fine for a range test and raise when built for a verification training
(``lrrt_core.verify.verify_workload`` on the call stack).

Two ways for a test to know what runs at the same time, without timing assumptions:

* ``meet_dir``: every trial writes a file there, then waits until ``meet_n`` trials have
  (at most ``meet_s``; then it raises, naming how many it saw): proof that ``meet_n``
  trials were running at once. With ``meet_strict=False`` it goes on after ``meet_s`` and
  notes how many it saw (``saw-<gate>-*``): proof that no other trial started meanwhile.
* ``gate="held"`` with ``gate_file``: the trial waits until the test creates ``gate_file``
  (at most ``gate_s``; then it raises), so the test can look at a sweep that is running.
"""

from __future__ import annotations

import inspect
import os
import time
import uuid
from pathlib import Path

import numpy as np


def _wait_for(done, timeout: float, what) -> None:
    """Wait until ``done()``; after ``timeout`` s raise, saying what was awaited (``what()``)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {timeout:g} s for {what()}")
        time.sleep(0.1)


def build(seed: int = 0, *, fault: str = "none", marker_dir: str | None = None, width: int = 8,
          meet_dir: str | None = None, meet_n: int = 2, meet_s: float = 60.0, meet_strict: bool = True,
          gate: str = "open", gate_file: str | None = None, gate_s: float = 120.0, **unused):
    from lrrt_core.workloads import Workload

    if meet_dir:
        d = Path(meet_dir)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"start-{os.getpid()}-{uuid.uuid4().hex}").write_text(str(seed))
        started = lambda: len(list(d.glob("start-*")))  # noqa: E731
        try:
            _wait_for(lambda: started() >= meet_n, meet_s, lambda: f"{meet_n} trials running at once (saw {started()})")
        except RuntimeError:
            if meet_strict:
                raise
        # meet_strict=False: a test that expects trials NOT to meet reads what each one saw.
        (d / f"saw-{gate}-{uuid.uuid4().hex}").write_text(str(started()))
    if gate == "held" and gate_file:
        print(f"faulty: trial held at its gate (pid {os.getpid()})", flush=True)  # a worker log line (-v shows it)
        _wait_for(Path(gate_file).exists, gate_s, lambda: f"the test to open {gate_file}")

    if fault == "raise":
        raise RuntimeError("injected failure in the workload")
    if fault == "raise_in_verify" and any(f.function == "verify_workload" for f in inspect.stack()):
        raise RuntimeError("injected failure in a verification training")
    if fault in ("die", "die_once"):
        # One marker per fault: a "die" trial that runs first must not let "die_once" skip its death.
        marker = Path(marker_dir or ".") / f"died-{fault}-{seed}-{width}"
        if fault == "die" or not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(str(os.getpid()))
            os._exit(3)

    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(512, 8)).astype("float32")
    w = rng.normal(size=(8, 3))
    y = np.argmax(x @ w, axis=1).astype("int64")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(width, activation="relu"), keras.layers.Dense(3)])
    return Workload(
        model=model,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        x=x[:384], y=y[:384], x_val=x[384:], y_val=y[384:],
    )
