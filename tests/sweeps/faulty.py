"""A tiny user workload (``tests.sweeps.faulty:build``) that can fail on purpose.

Used by the Ray tests as a real ``package.module:function`` workload: the ``fault`` axis
makes a trial raise, or kill its worker process (``os._exit``) always or only on its first
attempt (a marker file in ``marker_dir`` remembers the first attempt), or — ``raise_rebuilt`` —
build fine the first time and raise on every later build (so a range test succeeds and the
verification trainings of the same configuration, which rebuild the workload, fail).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def build(seed: int = 0, *, fault: str = "none", marker_dir: str | None = None, width: int = 8, **unused):
    from lrrt_core.workloads import Workload

    if fault == "raise":
        raise RuntimeError("injected failure in the workload")
    if fault == "raise_rebuilt":
        marker = Path(marker_dir or ".") / f"built-{seed}-{width}"
        if marker.exists():
            raise RuntimeError("injected failure: the workload was built before")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(os.getpid()))
    if fault in ("die", "die_once"):
        marker = Path(marker_dir or ".") / f"died-{seed}-{width}"
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
