"""lrrt's default suggestion, centered_min_div3, and the lag-free smoother it reads."""

from __future__ import annotations

import numpy as np
import pytest

from lrrt_core.curve import Curve, centered, ema
from lrrt_core.suggest import DEFAULT_METHOD, METHODS, centered_min_div3, suggest_all


def test_centered_is_the_mean_over_half_a_decade_either_side():
    lrs = np.logspace(-4, 0, 41)  # 10 points a decade: a 0.5-decade window holds 5 or 6 points
    values = np.arange(41, dtype=float) ** 2
    out = centered(lrs, values, decades=0.5)
    x = np.log10(lrs)
    for i in (0, 3, 20, 40):
        sel = np.abs(x - x[i]) <= 0.25 + 1e-12
        assert out[i] == pytest.approx(values[sel].mean())
    # interior points: i-2..i+2 (0.2 decades either side; 0.3 is outside)
    assert out[20] == pytest.approx(np.mean(values[18:23]))
    # a constant stays constant; a line stays the line inside (symmetric window)
    np.testing.assert_allclose(centered(lrs, np.full(41, 3.0)), 3.0)
    np.testing.assert_allclose(centered(lrs, x)[5:-5], x[5:-5], atol=1e-12)
    with pytest.raises(ValueError, match="decades must be > 0"):
        centered(lrs, values, decades=0)


def test_centered_has_no_lag_where_the_ema_trails():
    lrs = np.logspace(-6, 1, 200)
    x = np.log10(lrs)
    loss = (x + 2.0) ** 2  # raw minimum at lr 1e-2
    assert np.log10(lrs[np.argmin(centered(lrs, loss))]) == pytest.approx(-2.0, abs=0.04)
    assert np.log10(lrs[np.argmin(ema(loss, 0.98))]) > -1.5  # the EMA's minimum trails far to the right


def test_pick_is_a_third_of_the_centred_minimum():
    lrs = np.logspace(-5, 1, 121)
    x = np.log10(lrs)
    loss = 2.3 - 1.5 * (1 + np.tanh((x + 3) / 0.4)) / 2 + np.where(x > -1, 4 * (x + 1) ** 2, 0.0)
    noisy = loss + 0.02 * np.random.default_rng(0).standard_normal(x.size)
    s = centered_min_div3(lrs, noisy)
    smooth = centered(lrs, noisy)
    assert s.index == int(np.argmin(smooth))
    assert s.lr == pytest.approx(lrs[s.index] / 3)
    assert -1.6 < np.log10(lrs[s.index]) < -0.9  # the loss is lowest just before the blow-up at 1e-1
    assert "/ 3" in s.reason


def test_curve_input_and_nan_cut():
    lrs = np.logspace(-5, 0, 60)
    x = np.log10(lrs)
    loss = (x + 2.5) ** 2 + 1
    losses = loss.copy()
    losses[50:] = np.nan
    s = centered_min_div3(lrs, losses)
    assert s.ok and s.index < 50
    assert centered_min_div3(Curve(lrs[:50], loss[:50], stop_reason="nonfinite")).lr == pytest.approx(s.lr)


@pytest.mark.parametrize("loss, reason", [
    (np.linspace(1, 2, 30), "never goes below its first value"),
    (np.full(30, 0.7), "flat"),
    (np.full(30, np.nan), "all losses NaN"),
    (np.linspace(2, 1, 3), "need >= 5"),
])
def test_no_suggestion_with_a_reason(loss, reason):
    s = centered_min_div3(np.logspace(-5, 0, loss.size), loss)
    assert not s.ok and s.index is None and reason in s.reason


def test_still_falling_at_the_end_says_so():
    lrs = np.logspace(-5, -2, 40)
    s = centered_min_div3(lrs, np.linspace(2, 1, 40))
    assert s.index == 39 and s.lr == pytest.approx(lrs[-1] / 3) and "still falls" in s.reason


def test_default_method_is_registered_described_and_in_suggest_all():
    assert DEFAULT_METHOD == "centered_min_opt" and DEFAULT_METHOD in METHODS
    assert all(METHODS[name].description for name in METHODS)
    lrs = np.logspace(-5, 0, 101)
    out = suggest_all(lrs, 2.0 - np.tanh((np.log10(lrs) + 2.5) / 0.5))
    assert list(out) == list(METHODS) and out[DEFAULT_METHOD].ok
