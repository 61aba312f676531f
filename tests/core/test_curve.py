"""Curve record and smoothing against hand-computed values (fast tier)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lrrt_core.curve import DEFAULT_BETA, Curve, cut_nonfinite, ema, sma


def test_ema_hand_values_and_beta_zero():
    x = np.array([1.0, 3.0, 2.0, 6.0])
    beta = 0.9
    avg, out = 0.0, []
    for i, v in enumerate(x):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (i + 1)))
    np.testing.assert_allclose(ema(x, beta), out)
    # first point equals the first value (bias correction), second by hand:
    assert ema(x, beta)[0] == pytest.approx(1.0)
    assert ema(x, beta)[1] == pytest.approx((0.09 * 1 + 0.1 * 3) / (1 - 0.81))
    np.testing.assert_array_equal(ema(x, 0.0), x)
    assert ema(np.empty(0)).size == 0
    np.testing.assert_allclose(ema(np.full(50, 0.7)), 0.7, rtol=1e-12)  # constant stays constant
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            ema(x, bad)


def test_sma_hand_values():
    x = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    np.testing.assert_allclose(sma(x, 3), [1.0, 1.5, 2.0, 3.0, 17 / 3])
    np.testing.assert_allclose(sma(x, 1), x)
    np.testing.assert_allclose(sma(x, 10), np.cumsum(x) / np.arange(1, 6))
    with pytest.raises(ValueError):
        sma(x, 0)


def test_cut_nonfinite():
    lrs = np.arange(1.0, 6.0)
    l, v = cut_nonfinite(lrs, [1.0, 2.0, np.inf, 3.0, np.nan])
    np.testing.assert_array_equal(l, [1.0, 2.0])
    np.testing.assert_array_equal(v, [1.0, 2.0])
    l, v = cut_nonfinite(lrs, [np.nan] * 5)
    assert l.size == v.size == 0
    l, v = cut_nonfinite(lrs, lrs)
    assert l.size == 5


def make():
    return Curve(
        lrs=np.logspace(-5, 0, 6),
        losses=[2.3, 2.2, 2.0, 1.5, 1.4, 9.0],
        stop_reason="diverged",
        diverged_lr=1.0,
        steps_planned=100,
        wall_s=1.25,
        params={"start_lr": 1e-5, "end_lr": 1.0, "steps": 100, "ladder": "exp", "smoothing": 0.9, "batch_size": None},
    )


def test_round_trip_through_json():
    c = make()
    d = json.loads(json.dumps(c.to_dict()))
    back = Curve.from_dict(d)
    np.testing.assert_array_equal(back.lrs, c.lrs)
    np.testing.assert_array_equal(back.losses, c.losses)
    assert (back.stop_reason, back.diverged_lr, back.steps_planned, back.wall_s) == ("diverged", 1.0, 100, 1.25)
    assert back.params == c.params
    assert back.to_dict() == c.to_dict()


def test_from_dict_defaults_and_nan_diverged():
    c = Curve.from_dict({"lrs": [1e-3, 1e-2], "losses": [1.0, 0.5], "diverged_lr": float("nan")})
    assert c.diverged_lr is None and c.stop_reason == "completed" and c.steps_planned == 2
    assert c.beta == DEFAULT_BETA


def test_to_frame_columns():
    c = make()
    df = c.to_frame()
    assert list(df.columns) == ["step", "lr", "loss", "smoothed_loss"]
    assert len(df) == 6 and df["step"].tolist() == list(range(6))
    np.testing.assert_allclose(df["smoothed_loss"], ema(c.losses, 0.9))


def test_smoothed_uses_recorded_beta_or_override():
    c = make()
    np.testing.assert_allclose(c.smoothed(), ema(c.losses, 0.9))
    np.testing.assert_allclose(c.smoothed(0.0), c.losses)
    assert c.steps_run == 6


def test_beta_none_recorded_falls_back_to_default():
    c = Curve([1e-3, 1e-2], [1.0, 0.5], params={"smoothing": None})
    assert c.beta == DEFAULT_BETA


def test_validation():
    with pytest.raises(ValueError):
        Curve([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        Curve([[1.0]], [[1.0]])
    with pytest.raises(ValueError):
        Curve([1.0], [1.0], stop_reason="bored")
    assert Curve([], []).steps_run == 0
    assert math.isclose(make().lrs[-1], 1.0)


def test_integer_input_is_smoothed_and_cut_as_float64():
    """Losses read back as integers (e.g. from JSON) are not truncated by integer arithmetic."""
    out = ema([1, 3, 2, 6], 0.5)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [1.0, 7 / 3, 15 / 7, 21 / 5], rtol=1e-12)  # by hand, in fractions
    np.testing.assert_allclose(sma([1, 2, 4], 2), [1.0, 1.5, 3.0])
    lrs, losses = cut_nonfinite([1, 2, 3], [5, 4, 3])
    assert lrs.dtype == losses.dtype == np.float64


def test_smoothing_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"^smoothing beta must be in \[0, 1\), got 1.0$"):
        ema([1.0, 2.0], 1.0)
    with pytest.raises(ValueError, match=r"^window must be >= 1, got 0$"):
        sma([1.0, 2.0], 0)


def test_from_dict_minimal_record_defaults():
    c = Curve.from_dict({"lrs": [1e-3, 1e-2], "losses": [2, 1]})
    assert (c.stop_reason, c.diverged_lr, c.steps_planned, c.wall_s, c.params) == ("completed", None, 2, 0.0, {})
    assert c.losses.dtype == np.float64


def test_curve_stores_float64_arrays_and_says_what_is_wrong():
    c = Curve(lrs=[1, 2, 3], losses=[3, 2, 1])
    assert isinstance(c.losses, np.ndarray) and isinstance(c.lrs, np.ndarray)
    assert c.losses.dtype == c.lrs.dtype == np.float64
    with pytest.raises(ValueError, match=r"^lrs and losses must be 1-D of equal length, got \(2,\) and \(3,\)$"):
        Curve(lrs=[1.0, 2.0], losses=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"^stop_reason must be one of .*, got 'bored'$"):
        Curve(lrs=[1.0], losses=[1.0], stop_reason="bored")
