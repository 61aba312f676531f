"""The pure pieces of ``lrrt_core.verify`` on hand-computed answers (no TensorFlow): candidate
rates, the cycled sample order of a step budget, the blow-up rule's edges and the chance
loss of multi-output targets. They run under mutation testing, where the TensorFlow tests
of ``tests/core/test_verify.py`` cannot (mutmut forks a process that has TensorFlow loaded)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrrt_core.verify import _cycled, candidate_rates, chance_loss, training_verdict


def test_candidate_rates_are_the_rate_times_each_factor_in_order():
    assert candidate_rates(0.1, [3, 1, 1 / 3]) == pytest.approx([0.3, 0.1, 0.1 / 3])
    assert candidate_rates(2) == pytest.approx([2 / 3, 2.0, 6.0])  # the default 1/3, 1, 3
    assert candidate_rates(np.float32(0.5), [2]) == [1.0] and isinstance(candidate_rates(1, [2])[0], float)
    for bad in (0, -0.1, math.nan, math.inf, "0.1", None):
        with pytest.raises(ValueError, match="finite rate > 0"):
            candidate_rates(bad, [1])


def test_cycled_takes_successive_seeded_permutations():
    x, y = np.arange(5) * 10, np.arange(5)
    cx, cy = _cycled(x, y, 12, seed=3)
    rng = np.random.default_rng(3)
    idx = np.concatenate([rng.permutation(5) for _ in range(3)])[:12]
    np.testing.assert_array_equal(cy, idx)
    np.testing.assert_array_equal(cx, idx * 10)
    assert sorted(cy[:5]) == sorted(cy[5:10]) == list(range(5))  # each pass sees every row once
    assert len(_cycled(x, y, 5, seed=3)[1]) == 5 and len(_cycled(x, y, 1, seed=3)[1]) == 1


def test_blow_up_rule_at_its_edges():
    # exactly 4x is not a blow-up ("> 4x"); just above is
    assert training_verdict([1.0, 2.0], 0.3, initial_val_loss=0.5) == ""
    assert training_verdict([1.0, 2.0 + 1e-9], 0.3, initial_val_loss=0.5) == "loss blew up"
    assert training_verdict([0.3], 2.0 + 1e-9, initial_val_loss=0.5) == "loss blew up"  # or the held-out loss
    # the last epoch counts, not the second: a first epoch high and a good end trained
    assert training_verdict([3.0, 9.0, 0.3], 0.3, initial_val_loss=2.0) == ""
    assert training_verdict([3.0, 0.3, 9.0], 0.3, initial_val_loss=2.0) == "loss blew up"
    # an untrained loss below 1 still sets the scale
    assert training_verdict([0.1, 0.9], 0.1, initial_val_loss=0.2) == "loss blew up"


def test_chance_loss_of_multi_output_targets():
    """Two outputs: the prediction is each output's own mean / median (per column)."""
    y = np.array([[0.0, 10.0], [2.0, 20.0], [4.0, 60.0]])
    y_val = np.array([[1.0, 30.0], [3.0, 30.0]])
    mean, median = y.mean(axis=0), np.median(y, axis=0)  # [2, 30], [2, 20]
    assert chance_loss("mse", y, y_val) == pytest.approx(np.mean((y_val - mean) ** 2))  # (1+0+1+0)/4
    assert chance_loss("mse", y, y_val) == pytest.approx(0.5)
    assert chance_loss("mae", y, y_val) == pytest.approx(np.mean(np.abs(y_val - median)))  # (1+10+1+10)/4
    assert chance_loss("mae", y, y_val) == pytest.approx(5.5)
    # binary, two labels per row: each column's own frequency
    yb, yb_val = np.array([[1, 0], [1, 0], [0, 1], [1, 1]]), np.array([[1, 1]])
    p = np.array([0.75, 0.5])
    assert chance_loss("binary_crossentropy", yb, yb_val) == pytest.approx(-np.mean(np.log(p)))
    # one-hot rows of a 2x2 grid of classes (targets of shape (n, 2, 2)): the per-cell frequency
    yc = np.zeros((4, 2, 2))
    for i, cell in enumerate([(0, 0), (0, 0), (0, 1), (1, 1)]):
        yc[(i, *cell)] = 1.0
    assert chance_loss("categorical_crossentropy", yc, yc[:1]) == pytest.approx(-math.log(0.5))
    assert chance_loss("categorical_crossentropy", yc, yc[3:]) == pytest.approx(-math.log(0.25))


def test_chance_loss_names_and_a_class_never_seen_in_training():
    # a binary label never 1 in training but 1 held out: clipped at 1e-7, not log(0)
    assert chance_loss("binary_crossentropy", [0.0, 0.0], [1.0]) == pytest.approx(-math.log(1e-7))
    # a held-out class absent from y: Keras's clipping gives -log(1e-7) for it
    got = chance_loss("sparse_categorical_crossentropy", [0, 0, 1, 1], [2])
    assert got == pytest.approx(-math.log(1e-7))

    class Unnamed:  # a loss object without a name: unknown format, no chance loss
        pass

    assert math.isnan(chance_loss(Unnamed(), [0, 1], [1]))
    assert math.isnan(chance_loss("huber", [0.0, 1.0], [1.0]))
