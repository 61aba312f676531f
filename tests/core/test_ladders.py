"""LR ladders: exact endpoints, monotone, constant ratios/steps, clear errors (fast tier)."""

from __future__ import annotations

import numpy as np
import pytest

from lrrt_core.ladders import LADDERS, check_bounds, exp_lr, ladder, linear_lr


@pytest.mark.parametrize("kind", LADDERS)
@pytest.mark.parametrize("start,end,steps", [(1e-7, 10.0, 100), (1e-4, 1e-1, 4), (0.3, 0.7, 2), (1e-6, 1.0, 301)])
def test_endpoints_exact_and_monotone(kind, start, end, steps):
    lrs = ladder(kind, start, end, steps)
    assert lrs.shape == (steps,) and lrs.dtype == np.float64
    assert lrs[0] == start and lrs[-1] == end  # exact, not approx
    assert np.all(np.diff(lrs) > 0)


def test_exp_ratios_constant_and_doc_example():
    lrs = ladder("exp", 1e-6, 1.0, 121)
    ratios = lrs[1:] / lrs[:-1]
    np.testing.assert_allclose(ratios, 10 ** (6 / 120), rtol=1e-12)
    np.testing.assert_allclose(ladder("exp", 1e-4, 1e-1, 4), [1e-4, 1e-3, 1e-2, 1e-1], rtol=1e-12)


def test_linear_steps_constant():
    lrs = ladder("linear", 0.01, 1.0, 100)
    np.testing.assert_allclose(np.diff(lrs), 0.99 / 99, rtol=1e-9)


def test_pointwise_functions_match_ladder_and_clamp():
    lrs = ladder("exp", 1e-5, 1e-1, 9)
    assert [exp_lr(i, 1e-5, 1e-1, 9) for i in range(9)] == list(lrs)
    assert exp_lr(-3, 1e-5, 1e-1, 9) == 1e-5 and exp_lr(50, 1e-5, 1e-1, 9) == 1e-1
    assert linear_lr(4, 0.0 + 1e-3, 1.0, 5) == 1.0
    assert linear_lr(2, 1.0, 3.0, 5) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "start,end,steps,match",
    [
        (0.0, 1.0, 10, "start_lr must be > 0"),
        (-1e-3, 1.0, 10, "start_lr must be > 0"),
        (1.0, 1.0, 10, "end_lr must be greater"),
        (1.0, 0.1, 10, "end_lr must be greater"),
        (1e-5, 1.0, 1, "steps must be an integer >= 2"),
        (1e-5, 1.0, 2.5, "steps must be an integer"),
        (1e-5, 1.0, True, "steps must be an integer"),
        (float("nan"), 1.0, 10, "finite"),
        (1e-5, float("inf"), 10, "finite"),
        ("1e-5", 1.0, 10, "must be a number"),
        (object(), 1.0, 10, "schedule object"),
    ],
)
def test_bad_bounds_raise_value_error(start, end, steps, match):
    with pytest.raises(ValueError, match=match):
        check_bounds(start, end, steps)
    with pytest.raises(ValueError):
        ladder("exp", start, end, steps)


def test_unknown_ladder_kind():
    with pytest.raises(ValueError, match="ladder must be one of"):
        ladder("cosine", 1e-5, 1.0, 10)


def test_numpy_scalars_accepted():
    lrs = ladder("exp", np.float32(1e-4), np.float64(1.0), np.int64(5))
    assert lrs.size == 5 and lrs[-1] == 1.0


@pytest.mark.parametrize("kind, start, end, steps", [("linear", 0.01, 1.0, 4), ("exp", 1e-5, 3.0, 7), ("exp", 0.3, 0.7, 5)])
def test_last_point_is_end_lr_where_the_formula_would_drift(kind, start, end, steps):
    """For these bounds the closed form at i = n-1 is NOT exactly end_lr in float64; the
    ladder still ends exactly there (the ends are pinned, not computed)."""
    i = steps - 1
    formula = start + (end - start) * i / (steps - 1) if kind == "linear" else start * (end / start) ** (i / (steps - 1))
    assert formula != end  # the case this test is about
    assert ladder(kind, start, end, steps)[-1] == end


def test_error_messages_name_the_bound_and_the_choices():
    with pytest.raises(ValueError, match=r"^start_lr must be a number \(a float such as 1e-6\), got str '1e-5'; "):
        check_bounds("1e-5", 1.0, 10)
    with pytest.raises(ValueError, match=r"^end_lr must be a number \(a float such as 1e-6\), got NoneType None; "):
        check_bounds(1e-5, None, 10)
    with pytest.raises(ValueError, match=r"^end_lr must be finite, got inf$"):
        check_bounds(1e-5, float("inf"), 10)
    with pytest.raises(ValueError, match=r"^ladder must be one of exp, linear, got 'cosine'$"):
        ladder("cosine", 1e-5, 1.0, 10)
