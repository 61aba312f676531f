"""lrrt_core.verify's pure rules (no TensorFlow): when a fixed-rate training counts as
diverged, and the loss of predicting the label prior — on hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrrt_core.verify import BLOWUP_FACTOR, CHANCE_MARGIN, chance_loss, training_verdict

NAN, INF = math.nan, math.inf


def test_documented_thresholds():
    assert BLOWUP_FACTOR == 4.0 and CHANCE_MARGIN == 0.01


@pytest.mark.parametrize("train, val, initial, chance, reason", [
    ([2.3, 0.4], 0.5, 2.3, 2.3, ""),                       # trained
    ([2.3, NAN], 0.5, 2.3, 2.3, "non-finite loss"),         # NaN in any epoch, even a finite val loss
    ([INF, 0.4], 0.5, 2.3, 2.3, "non-finite loss"),
    ([2.3, 0.4], NAN, 2.3, 2.3, "non-finite loss"),
    ([2.3, 0.4], -INF, 2.3, 2.3, "non-finite loss"),
    ([], 0.5, 2.3, 2.3, "non-finite loss"),                 # no loss recorded at all
    ([2.3, 9.21], 1.0, 2.3, NAN, "loss blew up"),           # 9.21 > 4 x 2.3 = 9.2
    ([2.3, 9.19], 1.0, 2.3, NAN, ""),                       # just under the factor: trained
    ([2.3, 0.4], 9.21, 2.3, NAN, "loss blew up"),           # the held-out loss blew up
    ([2.3, 0.4], 9.19, 2.3, NAN, "no better than untrained"),
    ([2.3, 9.3], 1.0, NAN, NAN, ""),                        # no initial loss: the rule is skipped
    ([2.3, 9.3], -3.0, -2.0, NAN, ""),                      # a negative loss scale: no factor rule
    ([2.3, 2.2], 2.0 * 1.0099, 5.0, 2.0, "collapsed to chance"),  # within 1 % above chance
    ([2.3, 2.2], 2.0 * 0.9901, 5.0, 2.0, "collapsed to chance"),  # within 1 % below chance
    ([2.3, 2.2], 2.0 * 1.0101, 5.0, 2.0, ""),               # a slow learner above chance
    ([2.3, 2.2], 2.0 * 0.9899, 5.0, 2.0, ""),               # learnt more than the prior
    ([2.3, 2.2], -2.0 * 1.0099, 5.0, -2.0, "collapsed to chance"),  # a negative chance loss
    ([2.3, 0.4], 2.3, 2.3, NAN, "no better than untrained"),  # equal to the untrained loss
    ([2.3, 0.4], 2.29, 2.3, NAN, ""),
    ([1.0, 0.5], 0.4, 0.0, NAN, "no better than untrained"),  # a zero untrained loss: no factor rule
    ([2.3, 2.2], 101.0, 500.0, 100.0, "collapsed to chance"),  # exactly 1 % (1.0 of 100.0): inclusive
    ([2.3, 2.2], 99.0, 500.0, 100.0, "collapsed to chance"),
])
def test_training_verdict(train, val, initial, chance, reason):
    assert training_verdict(train, val, initial, chance) == reason


def test_verdict_defaults_skip_the_reference_rules():
    assert training_verdict([1.0, 50.0], 40.0) == ""
    assert training_verdict([1.0, 50.0], NAN) == "non-finite loss"


def test_chance_loss_of_each_known_loss():
    y = np.array([0, 0, 0, 1, 2, 2, 2, 2])           # prior 3/8, 1/8, 4/8
    y_val = np.array([0, 1, 2, 2])
    p = np.array([3 / 8, 1 / 8, 4 / 8])
    expect = -np.mean(np.log(p[y_val]))
    assert chance_loss("sparse_categorical_crossentropy", y, y_val) == pytest.approx(expect, rel=1e-12)
    one_hot, one_hot_val = np.eye(3)[y], np.eye(3)[y_val]
    assert chance_loss("categorical_crossentropy", one_hot, one_hot_val) == pytest.approx(expect, rel=1e-12)
    # A label the training data never shows: Keras's 1e-7 clipping, not an infinite loss.
    assert chance_loss("sparse_categorical_crossentropy", y, np.array([3])) == pytest.approx(-np.log(1e-7))
    # Every training label 1: the prior clipped to 1 - 1e-7, so a held-out 0 costs -log(1e-7), not inf.
    assert chance_loss("binary_crossentropy", np.ones(4), np.array([0.0])) == pytest.approx(-np.log(1e-7), rel=1e-6)
    b, b_val = np.array([1, 1, 1, 0]), np.array([1, 0])
    assert chance_loss("binary_crossentropy", b, b_val) == pytest.approx(-(np.log(0.75) + np.log(0.25)) / 2)
    r, r_val = np.array([1.0, 2.0, 3.0, 10.0]), np.array([4.0, 0.0])
    assert chance_loss("mse", r, r_val) == pytest.approx(((4 - 4) ** 2 + (0 - 4) ** 2) / 2)
    assert chance_loss("mean_squared_error", r, r_val) == chance_loss("mse", r, r_val)
    assert chance_loss("mae", r, r_val) == pytest.approx((abs(4 - 2.5) + abs(0 - 2.5)) / 2)  # the median
    assert math.isnan(chance_loss("hinge", r, r_val))
    assert math.isnan(chance_loss(lambda a, b: a, r, r_val))  # a custom loss: format unknown


def test_chance_loss_reads_keras_loss_functions_and_objects():
    """What a compiled model's ``loss`` holds: a function (``fn.__name__``) or a Loss object wrapping one."""

    def sparse_categorical_crossentropy(y_true, y_pred):  # named like Keras's function
        return y_true

    class Wrapper:  # like keras.losses.LossFunctionWrapper: the function in .fn
        fn = sparse_categorical_crossentropy

    y, y_val = np.array([0, 1, 1, 1]), np.array([0, 1])
    expect = -(np.log(0.25) + np.log(0.75)) / 2
    assert chance_loss(sparse_categorical_crossentropy, y, y_val) == pytest.approx(expect)
    assert chance_loss(Wrapper(), y, y_val) == pytest.approx(expect)
