"""lrrt_core.training_schedules against their closed forms (Smith 2015's triangular policy, PyTorch's
cosine one-cycle), written out independently here."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.tf


def triangular_ref(step, base, peak, size):
    cycle = math.floor(1 + step / (2 * size))
    x = abs(step / size - 2 * cycle + 1)
    return base + (peak - base) * max(0.0, 1 - x)


def one_cycle_ref(step, max_lr, total, pct=0.25, div=25.0, final_div=1e4):
    initial, final = max_lr / div, max_lr / div / final_div
    up = max(1.0, pct * total - 1)
    down = max(1.0, total - 1 - up)

    def cos(a, b, p):
        return b + (a - b) / 2 * (1 + math.cos(math.pi * p))

    if step <= up:
        return cos(initial, max_lr, min(step / up, 1.0))
    return cos(max_lr, final, min((step - up) / down, 1.0))


def _values(schedule, steps):
    return np.array([float(schedule(s)) for s in steps])


def test_triangular_matches_closed_form_and_known_points():
    from lrrt_core.training_schedules import triangular

    sched = triangular(0.01, 0.04, step_size=10)
    steps = np.arange(0, 45)
    ref = [triangular_ref(s, 0.01, 0.04, 10) for s in steps]
    np.testing.assert_allclose(_values(sched, steps), ref, rtol=1e-6)
    # Known points: base at 0, peak at step_size, base again at 2*step_size, half way at 5.
    np.testing.assert_allclose(_values(sched, [0, 5, 10, 20, 30]), [0.01, 0.025, 0.04, 0.01, 0.04], rtol=1e-6)


def test_one_cycle_matches_closed_form_and_pytorch_endpoints():
    from lrrt_core.training_schedules import one_cycle

    sched = one_cycle(max_lr=0.3, total_steps=100, pct_start=0.25)
    steps = np.arange(0, 100)
    ref = [one_cycle_ref(s, 0.3, 100) for s in steps]
    # float32 in the graph: relative 1e-5, and absolute 1e-7 of the peak near the tiny final rate
    np.testing.assert_allclose(_values(sched, steps), ref, rtol=1e-5, atol=3e-8)
    v = _values(sched, [0, 24, 99, 150])
    assert v[0] == pytest.approx(0.3 / 25, rel=1e-5)          # starts at max / div_factor (float32)
    assert v[1] == pytest.approx(0.3, rel=1e-5)               # peak at pct_start * total - 1
    assert v[2] == pytest.approx(0.3 / 25 / 1e4, abs=3e-8)    # ends at initial / final_div_factor
    assert v[3] == pytest.approx(v[2], rel=1e-6)              # stays there after the end
    assert np.all(np.diff(_values(sched, np.arange(0, 25))) > 0)
    assert np.all(np.diff(_values(sched, np.arange(24, 100))) < 0)


def test_recipe_keys_are_accepted_and_schedules_serialise():
    import keras

    from lrrt_core.training_schedules import OneCycle, Triangular, one_cycle, triangular

    recipe = {"one_cycle": {"max_lr": 0.03, "pct_start": 0.25, "div_factor": 25.0, "final_div_factor": 1e4},
              "triangular": {"base_lr": 0.0075, "max_lr": 0.03, "step_size_epochs": [2, 10]}}
    oc = one_cycle(total_steps=50, **recipe["one_cycle"])
    tri = triangular(step_size=7, **recipe["triangular"])
    for sched, cls in ((oc, OneCycle), (tri, Triangular)):
        back = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(sched))
        assert isinstance(back, cls) and back.get_config() == sched.get_config()
    opt = keras.optimizers.SGD(oc)
    opt.build([keras.Variable(np.zeros(2, dtype="float32"))])
    assert float(opt.learning_rate) == pytest.approx(0.03 / 25, rel=1e-6)


@pytest.mark.parametrize("kwargs, word", [
    ({"base_lr": 0.1, "max_lr": 0.05, "step_size": 4}, "greater than base_lr"),
    ({"base_lr": 0.0, "max_lr": 0.05, "step_size": 4}, "base_lr must be > 0"),
    ({"base_lr": 0.01, "max_lr": 0.05, "step_size": 0}, "step_size"),
])
def test_triangular_refuses_bad_bounds(kwargs, word):
    from lrrt_core.training_schedules import triangular

    with pytest.raises(ValueError, match=word):
        triangular(**kwargs)


def test_one_cycle_refuses_bad_arguments():
    from lrrt_core.training_schedules import one_cycle

    with pytest.raises(ValueError, match="total_steps"):
        one_cycle(0.1, total_steps=1)
    with pytest.raises(ValueError, match="pct_start must be < 1"):
        one_cycle(0.1, total_steps=10, pct_start=1.0)
    with pytest.raises(ValueError, match="max_lr"):
        one_cycle(float("nan"), total_steps=10)
