"""A tiny user workload (``tests.sweeps.faulty:build``) that can fail on purpose.

Used by the Ray tests as a real ``package.module:function`` workload: the ``fault`` axis
makes a trial raise, or kill its worker process (``os._exit``) always or only on its first
attempt (a marker file in ``marker_dir`` remembers the first attempt), or — ``raise_in_verify`` —
build fine for a range test and raise when built for a verification training
(``lrrt_core.verify.verify_workload`` on the call stack).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import numpy as np


def build(seed: int = 0, *, fault: str = "none", marker_dir: str | None = None, width: int = 8, **unused):
    from lrrt_core.workloads import Workload

    if fault == "raise":
        raise RuntimeError("injected failure in the workload")
    if fault == "raise_in_verify" and any(f.function == "verify_workload" for f in inspect.stack()):
        raise RuntimeError("injected failure in a verification training")
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
