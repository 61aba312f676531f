"""Golden values of the Python API that README documents, as literals (fast tier)."""

from __future__ import annotations

import numpy as np

from lrrt_core import suggest_all
from lrrt_core.curve import Curve

# docs/python-api.md: suggest_all(curve) -> {'steepest': ..., 'valley': ..., 'minimum': ...,
# 'minimum_div10': ..., 'sma_rule': ..., 'centered_min_div3': ..., 'centered_min_opt': ...}, in this
# order: the registry's, which is the order of the methods' columns in trials.csv (issue 23: minimum
# and minimum_div10 moved after valley so that trials.csv kept its column order).
SUGGEST_ALL_KEYS = ["steepest", "valley", "minimum", "minimum_div10", "sma_rule", "centered_min_div3",
                    "centered_min_opt"]
CURVE_FRAME = ["step", "lr", "loss", "smoothed_loss"]


def _curve() -> Curve:
    lrs = np.logspace(-5, 0, 80)
    x = np.linspace(0, 1, 80)
    losses = 2.0 - 1.5 / (1 + np.exp(-(x - 0.4) * 20)) + 3 * np.maximum(0, x - 0.8) ** 2
    return Curve(lrs=lrs, losses=losses, stop_reason="completed", steps_planned=80, wall_s=1.0, params={})


def test_suggest_all_keys_are_the_documented_ones():
    out = suggest_all(_curve())
    assert list(out) == SUGGEST_ALL_KEYS
    assert all(s.method == k for k, s in out.items())


def test_curve_frame_columns():
    assert list(_curve().to_frame().columns) == CURVE_FRAME
