"""The ports against the peers' own code: fastai's lr_find (valley, minimum) and keras-lr-finder's
get_best_lr, each on the record that peer's finder would have made of the same per-step losses.

lrrt's side is the Curve lrrt's finder records (``reference_impls.lrrt_record``, a mirror of
``range_test``'s loop); the peer's side simulates the peer's loop (``reference_impls``). Where
the peer's answer is a learning rate, lrrt's must be the same number; where it is not (a pick
on a flat or rising window, a padded zero, fastai's index -1), lrrt gives no suggestion.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lrrt_core.curve import Curve
from lrrt_core.suggest import (
    minimum,
    minimum_div10,
    peer_record_length,
    peer_window,
    sma_rule,
    suggest_all,
    valley,
)
from tests.core import reference_impls as ref

PLANNED = (100, 120, 200, 300)
SEEDS = (0, 1, 2)
MIN_POINTS = 5


def ladder(n):
    return np.logspace(-6, 1, n)


def shape(n, kind, seed):
    """Per-step raw losses a model would produce on the ladder: realistic shapes, fixed noise."""
    rng = np.random.default_rng([n, seed, sum(map(ord, kind))])
    x = np.linspace(0.0, 1.0, n)
    centre = 0.45 + 0.1 * rng.random()
    descent = 1.3 - np.tanh((x - centre) / 0.1)  # plateau 2.3 -> floor 0.3
    noise = 1.0 + rng.normal(0.0, 0.04, n)
    if kind == "plateau":
        return 2.3 * noise
    if kind == "descent":
        return descent * noise
    if kind == "minimum":  # descent, minimum, a mild rise that never trips the 4x rule
        return (descent + 0.35 * np.clip(x - 0.8, 0, None) / 0.2) * noise
    if kind == "blowup":  # descent, minimum, then an exponential blow-up (the 4x rule stops it)
        return (descent + 0.02 * np.exp(np.clip(x - 0.7, 0, None) * 30)) * noise
    raise ValueError(kind)


def with_nonfinite(raw, frac, first):
    """The model breaks at step ``int(frac * n)``: ``first`` there (nan or inf), NaN after."""
    raw = raw.copy()
    k = int(frac * raw.size)
    raw[k] = first
    raw[k + 1 :] = np.nan
    return raw


def cases():
    for n in PLANNED:
        for seed in SEEDS:
            for kind in ("plateau", "descent", "minimum", "blowup"):
                yield f"{kind}-n{n}-s{seed}", n, shape(n, kind, seed)
            for frac in (0.5, 0.8, 0.97):
                for first in (np.nan, np.inf):
                    raw = with_nonfinite(shape(n, "minimum", seed), frac, first)
                    yield f"{first}@{frac}-n{n}-s{seed}", n, raw


CASES = list(cases())
IDS = [c[0] for c in CASES]


def fastai_window(rec_lrs, rec_losses, n):
    return ref.fastai_lr_find(rec_lrs, rec_losses, n, lambda lrs, losses, num_it: (lrs, losses))


def any_decrease(w):
    return bool(np.any(w[1:] < np.maximum.accumulate(w)[:-1]))


# ------------------------------------------------------------------ the scenarios are what they say


def test_cases_cover_every_stop_reason_and_planned_length():
    seen = {(n, ref.lrrt_record(raw, ladder(n)).stop_reason) for _, n, raw in CASES}
    for n in PLANNED:
        for reason in ("completed", "diverged", "nonfinite"):
            assert (n, reason) in seen, (n, reason)


@pytest.mark.parametrize("name,n,raw", CASES, ids=IDS)
def test_fastai_record_is_the_modelled_one(name, n, raw):
    """peer_record_length says how long fastai's record of lrrt's curve is; the simulation agrees."""
    lrs = ladder(n)
    curve = ref.lrrt_record(raw, lrs)
    rec_lrs, rec_losses = ref.fastai_lr_find_record(raw, lrs, n)
    assert len(rec_losses) == peer_record_length(curve, "fastai")
    k = ref.KerasLRFinder().find(raw, lrs)
    if curve.stop_reason != "diverged":  # keras-lr-finder's rule is on the raw loss
        assert len(k.losses) == peer_record_length(curve, "keras_lr_finder")
    # the finite part of both records is lrrt's curve
    m = curve.steps_run
    np.testing.assert_array_equal(np.asarray(rec_lrs[:m]), curve.lrs)
    np.testing.assert_allclose(np.asarray(rec_losses[:m]), curve.smoothed(), rtol=1e-12)
    assert not np.isfinite(rec_losses[m:]).any()


# ------------------------------------------------------------------ fastai: valley, minimum


@pytest.mark.parametrize("name,n,raw", CASES, ids=IDS)
def test_valley_equals_fastai(name, n, raw):
    lrs = ladder(n)
    curve = ref.lrrt_record(raw, lrs)
    rec_lrs, rec_losses = ref.fastai_lr_find_record(raw, lrs, n)
    w_lrs, w_losses = fastai_window(rec_lrs, rec_losses, n)
    s = valley(curve)
    if w_losses.size < MIN_POINTS:
        pytest.skip("fastai's window is shorter than min_points (test_short_windows)")
    fastai_lr = ref.fastai_lr_find(rec_lrs, rec_losses, n, ref.fastai_valley)[0]
    # fastai's index -1 (returned as lrs[-1]) shows as the last position with arange as the lrs
    idx = int(ref.fastai_valley(np.arange(w_losses.size), w_losses, n)[0])
    sensible = any_decrease(w_losses) and idx != w_losses.size - 1
    if sensible:
        assert s.ok and s.lr == fastai_lr, (s, fastai_lr)
        assert curve.lrs[s.index] == fastai_lr
    else:
        assert not s.ok, s


@pytest.mark.parametrize("name,n,raw", CASES, ids=IDS)
def test_minimum_and_div10_equal_fastai(name, n, raw):
    lrs = ladder(n)
    curve = ref.lrrt_record(raw, lrs)
    rec_lrs, rec_losses = ref.fastai_lr_find_record(raw, lrs, n)
    w_lrs, w_losses = fastai_window(rec_lrs, rec_losses, n)
    if w_losses.size < MIN_POINTS:
        pytest.skip("fastai's window is shorter than min_points (test_short_windows)")
    div10, (lr_min, _) = ref.fastai_lr_find(rec_lrs, rec_losses, n, ref.fastai_minimum)
    m, d = minimum(curve), minimum_div10(curve)
    if int(np.argmin(w_losses)) > 0:
        assert m.ok and m.lr == lr_min, (m, lr_min)
        assert d.ok and d.lr == div10 and d.index == m.index
    else:  # fastai's pick is the window's first lr: the loss never goes below it
        assert not m.ok and not d.ok


# ------------------------------------------------------------------ keras-lr-finder: sma rule


@pytest.mark.parametrize("sma", [1, 5, 20])
@pytest.mark.parametrize("name,n,raw", CASES, ids=IDS)
def test_sma_rule_equals_keras_lr_finder(name, n, raw, sma):
    lrs = ladder(n)
    curve = ref.lrrt_record(raw, lrs, smoothing=0.0)  # keras-lr-finder's raw 4x rule
    k = ref.KerasLRFinder().find(raw, lrs)
    assert len(k.losses) == peer_record_length(curve, "keras_lr_finder")
    window = np.asarray(k.get_derivatives(sma)[10:-5], dtype=np.float64)
    s = sma_rule(curve, sma=sma)
    if window.size < MIN_POINTS:
        pytest.skip("keras-lr-finder's window is shorter than min_points")
    best = k.get_best_lr(sma)
    if np.isfinite(window).all() and window.min() < 0:
        assert s.ok and s.lr == best, (s, best)
    else:  # a padded zero (the window's first lr) or a NaN: not a learning rate
        assert not s.ok, s


# ------------------------------------------------------------------ arrays: the record as given


@pytest.mark.parametrize("n", PLANNED)
def test_plain_arrays_are_the_peer_record(n):
    """Given fastai's smoothed record as arrays (beta=0: no second smoothing) and num_it, same answer."""
    raw = with_nonfinite(shape(n, "minimum", 7), 0.8, np.nan)
    rec_lrs, rec_losses = ref.fastai_lr_find_record(raw, ladder(n), n)
    rec_lrs, rec_losses = np.asarray(rec_lrs), np.asarray(rec_losses)
    fastai_lr = ref.fastai_lr_find(list(rec_lrs), list(rec_losses), n, ref.fastai_valley)[0]
    assert valley(rec_lrs, rec_losses, beta=0.0, steps_planned=n).lr == fastai_lr
    div10 = ref.fastai_lr_find(list(rec_lrs), list(rec_losses), n, ref.fastai_minimum)[0]
    assert minimum_div10(rec_lrs, rec_losses, beta=0.0, steps_planned=n).lr == div10
    # keras-lr-finder's record, NaN step included, as arrays
    k = ref.KerasLRFinder().find(raw, ladder(n))
    assert np.isnan(k.losses[-1])
    assert sma_rule(np.asarray(k.lrs), np.asarray(k.losses), sma=5).lr == k.get_best_lr(5)


def test_plain_arrays_default_steps_planned_is_their_length():
    lrs = ladder(200)
    losses = shape(200, "minimum", 3)
    assert valley(lrs, losses).ok and valley(lrs, losses, steps_planned=100).ok  # equal indexes, not two Nones
    assert valley(lrs, losses).index == valley(lrs, losses, steps_planned=200).index == 119
    assert valley(lrs, losses, skip_start=20).index == valley(lrs, losses).index
    assert valley(lrs, losses, steps_planned=100).index == valley(lrs, losses, skip_start=10).index


# ------------------------------------------------------------------ Curve fields that drive the model


def test_nonfinite_loss_decides_fastai_record_length():
    lrs, losses = ladder(100)[:60], np.linspace(2.0, 1.0, 60)
    nan = Curve(lrs, losses, "nonfinite", lrs[-1] * 1.1, 100, nonfinite_loss="nan")
    inf = Curve(lrs, losses, "nonfinite", lrs[-1] * 1.1, 100, nonfinite_loss="inf")
    unknown = Curve(lrs, losses, "nonfinite", lrs[-1] * 1.1, 100)
    assert peer_record_length(nan, "fastai") == 100 == peer_record_length(unknown, "fastai")
    assert peer_record_length(inf, "fastai") == 61
    assert peer_record_length(nan, "keras_lr_finder") == 61 == peer_record_length(inf, "keras_lr_finder")
    done = Curve(lrs, losses, "diverged", lrs[-1], 100)
    assert peer_record_length(done, "fastai") == 60 == peer_record_length(done, "keras_lr_finder")
    with pytest.raises(ValueError):
        peer_record_length(done, "lightning")
    # fastai's window: NaN -> the last finite points stay; inf -> 4 of them go with the inf step
    assert minimum(nan).index == 59 and minimum(inf).index == 55


def test_nonfinite_loss_survives_json_and_validates():
    raw = with_nonfinite(shape(200, "minimum", 0), 0.8, np.inf)
    c = ref.lrrt_record(raw, ladder(200))
    assert c.nonfinite_loss == "inf"
    back = Curve.from_dict(json.loads(json.dumps(c.to_dict(), allow_nan=False)))
    assert back.nonfinite_loss == "inf"
    assert suggest_all(back) == suggest_all(c)
    assert Curve.from_dict({"lrs": [1.0], "losses": [1.0]}).nonfinite_loss is None
    with pytest.raises(ValueError):
        Curve([1.0], [1.0], nonfinite_loss="NaN")


# ------------------------------------------------------------------ short windows


#: stop step k -> (valley's index, minimum's index) on shape(100, "descent", 0); None: no suggestion.
#: From k = 18 fastai's window [10:k] has >= MIN_POINTS points and every method answers in it.
SHORT_WINDOW_PICKS = {6: (None, None), 10: (None, 6), 13: (9, None), 14: (9, None), 15: (None, 11),
                      18: (14, 11), 25: (21, 11)}


@pytest.mark.parametrize("k", sorted(SHORT_WINDOW_PICKS))
def test_short_windows_shrink_instead_of_crashing(k):
    """fastai's window [10:-5] of a 100-step test stopped at step k: lrrt answers inside the
    curve, at the literal steps above (a method that stops answering fails here)."""
    raw = shape(100, "descent", 0)
    raw[k:] = np.nan
    curve = ref.lrrt_record(raw, ladder(100))
    rec_lrs, rec_losses = ref.fastai_lr_find_record(raw, ladder(100), 100)
    w = fastai_window(rec_lrs, rec_losses, 100)[1]
    v, m, d = valley(curve), minimum(curve), minimum_div10(curve)
    assert (v.index, m.index, d.index) == (*SHORT_WINDOW_PICKS[k], SHORT_WINDOW_PICKS[k][1])
    for s in (v, m, d):
        assert s.ok is (s.index is not None)
        if s.ok:
            assert 0 <= s.index < k and (10 <= s.index or w.size < MIN_POINTS)
    if m.ok:
        assert d.lr == curve.lrs[m.index] / 10
    if w.size >= MIN_POINTS and k >= 18:
        assert v.ok and m.ok and d.ok


def test_peer_window_pieces():
    assert peer_window(100, 100, 10) == slice(10, 95)
    assert peer_window(60, 100, 10) == slice(10, 60)  # fastai, NaN at 60
    assert peer_window(60, 61, 10) == slice(10, 56)  # keras-lr-finder, NaN recorded at 60
    assert peer_window(97, 100, 10) == slice(10, 95)  # NaN inside the last 5
    assert peer_window(98, 100, 30) == slice(30, 95)  # exact: 65 points
    assert peer_window(100, 100, 10, 0) == slice(10, 100)  # skip_end=0 skips nothing
    assert peer_window(14, 15, 10) == slice(5, 12)  # exact [10:10] is empty: trim_window(14, 10, 4)
    assert peer_window(18, 18, 10) == slice(6, 15)  # 3 left: shrink as trim_window
    with pytest.raises(ValueError):
        peer_window(10, 9, 0)
    with pytest.raises(ValueError):
        peer_window(10, 10, -1)


# ------------------------------------------------------------------ golden values


def _golden_curve(n, centre, rise):
    lrs = ladder(n)
    x = np.linspace(0.0, 1.0, n)
    base = 1.3 - np.tanh((x - centre) / 0.1) + rise * np.clip(x - 0.8, 0, None) / 0.2
    return lrs, base * (1.0 + 0.03 * np.sin(np.arange(n) * 1.7))


@pytest.mark.parametrize("first", ["nan", "inf"])
def test_golden_values_nonfinite_200(first):
    """Literal answers on fixed curves: a change of rule shows here even if reference_impls changed.

    NaN at step 170 of 200: fastai runs on, its window [20:195] cut at 170 keeps step 169, where
    the smoothed loss is lowest; an inf stops fastai after recording it: [20:166].
    """
    lrs, raw = _golden_curve(200, 0.5, 0.0)
    raw[170] = float(first)
    raw[171:] = np.nan
    c = ref.lrrt_record(raw, lrs)
    assert (c.stop_reason, c.steps_run, c.nonfinite_loss) == ("nonfinite", 170, first)
    out = {k: (v.index, v.lr) for k, v in suggest_all(c).items()}
    assert out == GOLDEN_200[first], out
    k = ref.lrrt_record(raw, lrs, smoothing=0.0)
    s = sma_rule(k, sma=20)
    assert (s.index, s.lr) == (110, 0.007401959996915644)


def test_golden_values_completed_120():
    lrs, raw = _golden_curve(120, 0.55, 0.3)
    c = ref.lrrt_record(raw, lrs)
    assert (c.stop_reason, c.steps_run) == ("completed", 120)
    out = {k: (v.index, v.lr) for k, v in suggest_all(c).items()}
    assert out == {
        "minimum": (114, 5.080218046913022),
        "minimum_div10": (114, 0.5080218046913022),
        "steepest": (76, 0.029552092352028877),
        "valley": (72, 0.017190722018585746),
        "sma_rule": (76, 0.029552092352028877),
        "centered_min_div3": (92, 0.0860287180139359),
        "centered_min_opt": (92, 0.06452153851045192),  # the same minimum / 4 (no optimizer recorded)
    }, out


GOLDEN_200 = {
    "nan": {
        "minimum": (169, 0.8804883581643465),
        "minimum_div10": (169, 0.08804883581643465),
        "steepest": (117, 0.013049019780144016),
        "valley": (105, 0.004937047852839003),
        "sma_rule": (110, 0.007401959996915644),
        "centered_min_div3": (168, 0.2706614997728003),
        "centered_min_opt": (168, 0.20299612482960022),
    },
    "inf": {
        "minimum": (165, 0.6368249944718586),
        "minimum_div10": (165, 0.06368249944718586),
        "steepest": (117, 0.013049019780144016),
        "valley": (104, 0.004552935074866948),
        "sma_rule": (110, 0.007401959996915644),
        "centered_min_div3": (168, 0.2706614997728003),
        "centered_min_opt": (168, 0.20299612482960022),
    },
}


# ------------------------------------------------------------------ where the peer's pick is not a learning rate


def _fastai_record_arrays(values, num_it):
    """A fastai record given directly (beta=0: lrrt smooths nothing more)."""
    return ladder(len(values)), np.asarray(values, dtype=np.float64)


def test_rising_window_fastai_picks_its_edge_lrrt_none():
    lrs, rec = _fastai_record_arrays(np.linspace(1.0, 2.0, 100), 100)
    window = lrs[10:95]
    assert ref.fastai_lr_find(list(lrs), list(rec), 100, ref.fastai_valley)[0] == window[0]
    assert ref.fastai_lr_find(list(lrs), list(rec), 100, ref.fastai_minimum)[0] == window[0] / 10
    for method in (valley, minimum, minimum_div10):
        s = method(lrs, rec, beta=0.0)
        assert not s.ok and "never decreases" in s.reason, s


def test_valley_fastai_index_minus_one_gives_no_suggestion():
    """Only the window's first two points decrease: fastai's idx is -1, i.e. the window's last lr."""
    values = np.concatenate([np.full(10, 5.0), [2.0, 1.0], np.linspace(3.0, 9.0, 88)])
    lrs, rec = _fastai_record_arrays(values, 100)
    window = lrs[10:95]
    assert ref.fastai_lr_find(list(lrs), list(rec), 100, ref.fastai_valley)[0] == window[-1]
    s = valley(lrs, rec, beta=0.0)
    assert not s.ok and "2 points" in s.reason
    # one more point in the valley: fastai's pick is a real one and lrrt agrees
    values[12] = 0.5
    lrs, rec = _fastai_record_arrays(values, 100)
    assert valley(lrs, rec, beta=0.0).lr == ref.fastai_lr_find(list(lrs), list(rec), 100, ref.fastai_valley)[0]


def test_sma_rule_padded_zero_pick_is_no_suggestion():
    """A rising raw loss: keras-lr-finder's argmin lands on a padded zero (the window's first lr)."""
    lrs = ladder(100)
    k = ref.KerasLRFinder()
    k.lrs, k.losses = list(lrs), list(np.linspace(1.0, 2.0, 100))
    assert k.get_best_lr(20) == lrs[10]  # derivatives[10:20] are the zero padding
    s = sma_rule(lrs, np.asarray(k.losses), sma=20)
    assert not s.ok and "never decreases" in s.reason
