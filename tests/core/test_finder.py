"""lrrt_core.finder: exact per-batch losses, the least-squares divergence point, restore, facade."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrrt_core.curve import Curve
from lrrt_core.finder import range_test
from lrrt_core.lr_finder import LRFinder
from lrrt_core.ladders import ladder
from lrrt_core.settings import DEFAULT_STEPS
from lrrt_core.workloads import get_workload

pytestmark = pytest.mark.tf


class _LazyKeras:
    """``keras`` imported on first use, so collecting this module (``-m "not tf"``) stays cheap."""

    def __getattr__(self, name):
        import keras

        return getattr(keras, name)


keras = _LazyKeras()


def _mlp(seed=0, *, bn=True, l2=1e-2, dropout=0.0, d=6):
    keras.utils.set_random_seed(seed)
    reg = keras.regularizers.L2(l2) if l2 else None
    layers = [keras.Input((d,)), keras.layers.Dense(16, activation="relu", kernel_regularizer=reg)]
    if bn:
        layers.append(keras.layers.BatchNormalization())
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(3, kernel_regularizer=reg))
    return keras.Sequential(layers)


def _compile(model, opt="sgd", lr=1e-2):
    o = keras.optimizers.Adam(lr) if opt == "adam" else keras.optimizers.SGD(lr, momentum=0.9)
    model.compile(optimizer=o, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data(n=160, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int32") + (x[:, 2] > 1).astype("int32")
    return x, y


def _state(model):
    return [np.array(v.numpy(), copy=True) for v in list(model.variables) + list(model.optimizer.variables)]


# --------------------------------------------------------------------------- exact loss


def test_recorded_loss_is_the_exact_loss_of_each_batch():
    """Loss of step i == loss of batch i at the weights before step i, computed independently.

    Non-shuffled tf.data.Dataset, a model with BatchNorm and L2 penalties. The reference
    loop computes ``loss_fn(y_i, model(x_i, training=True)) + sum(model.losses)`` by hand
    (forward pass only; the BatchNorm statistics it touches are put back), then takes the
    same optimizer step at the same learning rate.
    """
    import tensorflow as tf

    x, y = _data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)  # 5 batches, cycled 4x
    steps, lo, hi = 20, 1e-3, 1.0
    model = _compile(_mlp())
    ref = _compile(_mlp())
    ref.set_weights(model.get_weights())
    curve = range_test(model, ds, start_lr=lo, end_lr=hi, steps=steps, diverge_threshold=None)
    assert curve.steps_run == steps and curve.params["batch_size"] is None

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    batches = list(ds.as_numpy_iterator())
    expected, penalties = [], []
    for i, lr in enumerate(ladder("exp", lo, hi, steps)):
        xb, yb = batches[i % len(batches)]
        before = ref.get_weights()
        data_loss = float(loss_fn(yb, ref(xb, training=True)))
        penalty = float(sum(float(p) for p in ref.losses))
        ref.set_weights(before)
        expected.append(data_loss + penalty)
        penalties.append(penalty)
        ref.optimizer.learning_rate.assign(lr)
        ref.train_on_batch(xb, yb)
    np.testing.assert_allclose(curve.losses, expected, rtol=2e-5, atol=1e-6)
    assert min(penalties) > 1e-3  # the regularization term is really part of what was compared
    np.testing.assert_array_equal(curve.lrs, ladder("exp", lo, hi, steps))


def test_exact_loss_with_dropout_matches_decumulated_fit_running_mean():
    """With Dropout (and BN, L2), compare with the article's way: ``model.fit`` + callback.

    ``logs["loss"]`` in ``on_train_batch_end`` is the running mean since the epoch began;
    undoing the mean, ``(i+1) m_i - i m_{i-1}``, gives each batch's loss. Both models start
    from the same seed (same weights and dropout seed state), so the dropout masks agree.
    The running mean itself is NOT what the finder records.
    """
    import tensorflow as tf

    x, y = _data(n=256)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    steps, lo, hi = 8, 1e-3, 0.3
    lrs = ladder("exp", lo, hi, steps)
    a = _compile(_mlp(seed=5, dropout=0.3))
    b = _compile(_mlp(seed=5, dropout=0.3))
    curve = range_test(a, ds, start_lr=lo, end_lr=hi, steps=steps, diverge_threshold=None)

    running = []

    class Ladder(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.model.optimizer.learning_rate.assign(lrs[batch])

        def on_train_batch_end(self, batch, logs=None):
            running.append(float(logs["loss"]))

    b.fit(ds, epochs=1, callbacks=[Ladder()], verbose=0, shuffle=False)
    m = np.asarray(running)
    k = np.arange(1, steps + 1)
    per_batch = k * m - np.concatenate([[0.0], (k[:-1] * m[:-1])])
    np.testing.assert_allclose(curve.losses, per_batch, rtol=1e-4)
    assert np.max(np.abs(curve.losses[1:] - m[1:])) > 1e-3  # the running mean is different


# --------------------------------------------------------------------------- least squares


def _least_squares(n=128, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, d)) * np.linspace(0.5, 2.0, d)).astype("float32")
    w = rng.standard_normal((d, 1))
    y = (x @ w + 0.5 * rng.standard_normal((n, 1))).astype("float32")
    hessian = 2.0 / n * x.astype(np.float64).T @ x  # of the MSE (1/n)||Xw - y||^2
    return x, y, 2.0 / np.linalg.eigvalsh(hessian).max()


def _linear(d=8):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((d,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def test_least_squares_divergence_near_two_over_lambda_max():
    """Full-batch gradient descent on least squares diverges exactly above 2/lambda_max.

    Below 2/lambda_max every eigen-component of the error shrinks, so the loss falls
    monotonically and no stop can fire there: detected >= 2/lambda_max. Above it the top
    component grows by |1 - lr*lambda| per step, but it starts from float32 rounding
    (~1e-7, the steps near lr = 1/lambda wiped it out), and must grow ~e^20 before the EMA
    (beta 0.98) exceeds 4x the best. With the ladder's ratio r per step, the k-th step past
    2/lambda grows it by ~e^(2k ln r), so it takes k ~ sqrt(20 / ln r) steps: 400 steps over
    5 decades (ln r = 0.029) gives k ~ 26, a factor r^k ~ 2.1. Hence the bound [1, 2.5].
    """
    from lrrt_core import suggest

    x, y, lr_crit = _least_squares()
    curve = range_test(_linear(), x, y, start_lr=lr_crit * 1e-3, end_lr=lr_crit * 1e2, steps=400,
                       batch_size=len(x), shuffle=False)
    assert curve.stop_reason == "diverged"
    ratio = curve.diverged_lr / lr_crit
    assert 0.999 <= ratio <= 2.5, ratio
    for method in (suggest.steepest, suggest.valley, suggest.centered_min_div3):
        s = method(curve)
        assert s.ok and s.lr < lr_crit and s.lr < curve.diverged_lr, s
    # the default sits within half a decade below the analytic edge of stability: its raw
    # (lag-free) loss minimum is at the edge, a third of that is a rate that trains fast
    div3 = suggest.centered_min_div3(curve)
    assert lr_crit / 10 ** 0.5 < div3.lr < lr_crit, (div3.lr, lr_crit)
    # the default, for this plain (momentum-free) SGD, divides the same minimum by 1.5: still
    # below the edge of stability, twice div3's rate
    default = suggest.get_method(suggest.DEFAULT_METHOD)(curve)
    assert suggest.plain_sgd(curve) and default.index == div3.index
    assert div3.lr < default.lr < lr_crit and default.lr == pytest.approx(2 * div3.lr), (default.lr, lr_crit)


def _replay_stop(losses, threshold, beta=0.98):
    """The documented stop rule, replayed on raw losses: the index of the first step whose
    bias-corrected EMA exceeds ``threshold`` x the lowest EMA of the steps before it (or None)."""
    avg, best = 0.0, math.inf
    for i, value in enumerate(losses):
        avg = beta * avg + (1 - beta) * value
        smoothed = avg / (1 - beta ** (i + 1))
        if best < math.inf and smoothed > threshold * best:
            return i
        best = min(best, smoothed)
    return None


def test_divergence_stop_fires_at_the_first_step_over_the_threshold():
    """Record the whole curve with the stop off, replay the rule on its raw losses, and check
    that a test with the stop on ends exactly there -- for 4x, 8x and 100x, which the least-
    squares blow-up reaches at different steps (so a rule off by a factor cannot pass)."""
    x, y, lr_crit = _least_squares()
    model = _linear()
    kw = dict(start_lr=lr_crit * 1e-3, end_lr=lr_crit * 1e2, steps=400, batch_size=len(x), shuffle=False)
    free = range_test(model, x, y, diverge_threshold=None, **kw)
    expected = {thr: _replay_stop(free.losses, thr) for thr in (4.0, 8.0, 100.0)}
    assert None not in expected.values() and len(set(expected.values())) == 3, expected
    assert expected[100.0] < free.steps_run - 1  # each stop fires before the loss overflows
    for thr, k in expected.items():
        c = range_test(model, x, y, diverge_threshold=thr, **kw)
        assert (c.stop_reason, c.steps_run) == ("diverged", k + 1), (thr, c.stop_reason, c.steps_run, k)
        assert c.diverged_lr == free.lrs[k]
        np.testing.assert_array_equal(c.losses, free.losses[:k + 1])  # the step that fired is kept
    # with smoothing=0 (keras-lr-finder's raw rule) the same replay holds on the raw losses
    k_raw = _replay_stop(free.losses, 4.0, beta=0.0)
    c = range_test(model, x, y, diverge_threshold=4.0, smoothing=0.0, **kw)
    assert c.steps_run == k_raw + 1 and k_raw < expected[4.0]


def test_nonfinite_loss_cuts_the_curve():
    x, y, lr_crit = _least_squares()
    curve = range_test(_linear(), x, y, start_lr=lr_crit * 1e-3, end_lr=lr_crit * 1e3, steps=200,
                       batch_size=len(x), shuffle=False, diverge_threshold=None)
    assert curve.stop_reason == "nonfinite"
    assert curve.nonfinite_loss in ("nan", "inf", "-inf")  # the cut step's value, for the fastai port
    assert np.isfinite(curve.losses).all() and curve.steps_run < 200
    assert curve.diverged_lr == pytest.approx(ladder("exp", lr_crit * 1e-3, lr_crit * 1e3, 200)[curve.steps_run])
    assert curve.diverged_lr > lr_crit


# --------------------------------------------------------------------------- non-destructive


def test_weights_and_optimizer_state_restored_and_repeatable():
    x, y = _data()
    model = _compile(_mlp(dropout=0.2), opt="adam", lr=1e-3)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # nonzero moments, iterations == 5
    assert int(model.optimizer.iterations.numpy()) == 5
    before = _state(model)
    assert any(np.abs(v).sum() > 0 for v in before[len(model.variables) + 2:])  # Adam moments
    c1 = range_test(model, x, y, start_lr=1e-5, end_lr=10.0, steps=60, batch_size=32, seed=1)
    after = _state(model)
    assert len(before) == len(after)
    for u, v in zip(before, after):
        np.testing.assert_array_equal(u, v)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-3)
    c2 = range_test(model, x, y, start_lr=1e-5, end_lr=10.0, steps=60, batch_size=32, seed=1)
    np.testing.assert_array_equal(c1.losses, c2.losses)
    assert c1.stop_reason == c2.stop_reason
    c3 = range_test(model, x, y, start_lr=1e-5, end_lr=10.0, steps=10, batch_size=32, seed=2)
    assert not np.array_equal(c1.losses[:10], c3.losses)  # the seed changes the shuffling


def test_restored_when_the_test_raises():
    x, y = _data()
    model = _compile(_mlp(), opt="adam")
    model.optimizer.build(model.trainable_variables)
    before = _state(model)

    def boom(step, lr, loss):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        range_test(model, x, y, start_lr=1e-4, end_lr=1.0, steps=30, on_step=boom, report_every=5)
    for u, v in zip(before, _state(model)):
        np.testing.assert_array_equal(u, v)


# --------------------------------------------------------------------------- data and options


def test_data_kinds_cycling_epochs_and_progress():
    x, y = _data(n=96)
    model = _compile(_mlp(bn=False, l2=0))
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 96, 32)]
    seen = []
    c = range_test(model, batches, steps=7, start_lr=1e-4, end_lr=1e-2, on_step=lambda *a: seen.append(a),
                   report_every=3)
    assert c.steps_run == 7 and [s[0] for s in seen] == [2, 5, 6]
    assert seen[-1][2] == c.losses[-1] and seen[0][1] == c.lrs[2]

    def gen():
        yield from batches

    assert range_test(model, gen, steps=7, start_lr=1e-4, end_lr=1e-2).steps_run == 7  # factory: cycled
    assert range_test(model, gen(), steps=3, start_lr=1e-4, end_lr=1e-2).steps_run == 3
    with pytest.raises(ValueError, match="one-shot generator cannot be cycled"):
        range_test(model, gen(), steps=4, start_lr=1e-4, end_lr=1e-2)
    c = range_test(model, x, y, epochs=3, batch_size=40, start_lr=1e-4, end_lr=1e-2)
    assert c.steps_planned == 6 and c.params["batch_size"] == 40  # 96 // 40 = 2 full batches per epoch
    c = range_test(model, x, y, steps=5, start_lr=1e-4, end_lr=1e-2, ladder="linear", loss="val",
                   val_data=(x[:50], y[:50]), val_batch_size=16)
    np.testing.assert_allclose(c.lrs, np.linspace(1e-4, 1e-2, 5))
    assert c.params["loss"] == "val" and c.params["ladder"] == "linear"


def test_val_loss_is_the_held_out_loss_after_each_step():
    x, y = _data()
    model = _compile(_mlp(bn=False))
    xv, yv = x[:40], y[:40]
    c = range_test(model, x, y, steps=3, start_lr=1e-3, end_lr=1e-2, loss="val", val_data=(xv, yv),
                   val_batch_size=16, shuffle=False, batch_size=32)
    ref = _compile(_mlp(bn=False))
    ref.set_weights(model.get_weights())
    expected = []
    for i, lr in enumerate(ladder("exp", 1e-3, 1e-2, 3)):
        ref.optimizer.learning_rate.assign(lr)
        ref.train_on_batch(x[32 * i:32 * (i + 1)], y[32 * i:32 * (i + 1)])
        expected.append(ref.evaluate(xv, yv, batch_size=40, verbose=0))
    np.testing.assert_allclose(c.losses, expected, rtol=1e-5)


def _bad_cases():
    x, y = _data(n=64)
    return [
        (dict(start_lr=0.0), "start_lr must be > 0"),
        (dict(start_lr=-1e-3), "start_lr must be > 0"),
        (dict(start_lr=1e-2, end_lr=1e-3), "end_lr must be greater than start_lr"),
        (dict(steps=1), "steps must be an integer >= 2"),
        (dict(steps=10, epochs=1), "either steps or epochs"),
        (dict(x=x[:0], y=y[:0]), "x is empty"),
        (dict(x=[], y=None), "no batches"),
        (dict(x=x, y=y[:10]), "x has 64 samples but y has 10"),
        (dict(start_lr="SCHEDULE"), "learning-rate schedule"),
        (dict(loss="val"), "needs val_data"),
        (dict(loss="test"), "loss must be one of train, val"),
        (dict(ladder="log"), "ladder must be one of exp, linear"),
        (dict(diverge_threshold=0.5), "diverge_threshold must be a number > 1"),
        (dict(smoothing=1.0), r"smoothing must be >= 0 and < 1 \(the EMA.s beta\)"),
        (dict(steps=None, epochs=1, batch_size=64), "only 1 step"),
        (dict(seed=None), "seed must be an integer"),
        (dict(x=5, y=None), "cannot read batches from a int"),
        (dict(x="DATASET", y=y), "y must be None when x is a dataset"),
        (dict(loss="val", val_data=(x, y[:10])), "val_data has 64 inputs but 10 targets"),
        (dict(loss="val", val_data=(x, y), val_batch_size=0), "val_batch_size must be an integer >= 1"),
    ]


@pytest.mark.parametrize("kwargs, match", _bad_cases(), ids=lambda v: v if isinstance(v, str) else None)
def test_bad_input_says_what_to_change(kwargs, match):
    x, y = _data(n=64)
    model = _compile(_mlp(bn=False, l2=0))
    kwargs = {"x": x, "y": y, "steps": 10, "start_lr": 1e-4, "end_lr": 1.0, **kwargs}
    if isinstance(kwargs["x"], str) and kwargs["x"] == "DATASET":
        import tensorflow as tf

        kwargs["x"] = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    if kwargs["start_lr"] == "SCHEDULE":
        kwargs["start_lr"] = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.5)
    with pytest.raises(ValueError, match=match):
        range_test(model, kwargs.pop("x"), kwargs.pop("y", None), **kwargs)


def test_numpy_scalars_are_accepted_as_settings():
    x, y = _data(n=64)
    c = range_test(_compile(_mlp(bn=False, l2=0)), x, y, steps=6, start_lr=np.float32(1e-4), end_lr=1.0,
                   smoothing=np.float32(0.9), diverge_threshold=np.float32(4), seed=np.int64(1))
    assert c.steps_run == 6


def test_uncompiled_model_and_schedule_optimizer():
    x, y = _data(n=64)
    with pytest.raises(ValueError, match=r"not compiled; call model.compile\(optimizer=..., loss=...\)"):
        range_test(_mlp(), x, y, steps=10)
    model = _mlp()
    model.compile(optimizer=keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)),
                  loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="compile with a float learning rate"):
        range_test(model, x, y, steps=10)


@pytest.mark.parametrize("kind", ["exp", "linear"])
def test_ladder_schedule_in_the_compiled_step_gives_the_same_curve(kind):
    """An optimizer that looks each rate up itself trains exactly as one assigned each rate."""
    from lrrt_core.finder import _lr_control
    from lrrt_core.keras_ladder import ladder_schedule

    x, y = _data()
    assigned, scheduled = _compile(_mlp(dropout=0.2), opt="adam"), _compile(_mlp(dropout=0.2), opt="adam")
    scheduled.optimizer.learning_rate = ladder_schedule(kind, 1e-4, 3.0, 50)
    assert _lr_control(scheduled.optimizer, kind, 1e-4, 3.0, 50) is None  # nothing assigned per step
    kw = dict(start_lr=1e-4, end_lr=3.0, steps=50, batch_size=32, ladder=kind, seed=3, diverge_threshold=None)
    ca, cb = range_test(assigned, x, y, **kw), range_test(scheduled, x, y, **kw)
    np.testing.assert_array_equal(ca.lrs, cb.lrs)
    np.testing.assert_array_equal(ca.losses, cb.losses)
    # restored (iterations back to 0), so the schedule lines up again: the same curve twice
    assert int(scheduled.optimizer.iterations.numpy()) == 0
    np.testing.assert_array_equal(range_test(scheduled, x, y, **kw).losses, cb.losses)
    # the rates the optimizer uses are the float32 ladder points, clipped to the last one
    opt = scheduled.optimizer
    for it in (0, 17, 49, 80):
        opt.iterations.assign(it)
        assert float(opt.learning_rate.numpy()) == float(np.float32(ladder(kind, 1e-4, 3.0, 50)[min(it, 49)]))
    opt.iterations.assign(0)


def test_ladder_schedule_must_match_the_range_test():
    from lrrt_core.keras_ladder import ladder_schedule

    x, y = _data(n=64)
    model = _compile(_mlp(bn=False, l2=0))
    model.optimizer.learning_rate = ladder_schedule("exp", 1e-4, 1.0, 20)
    with pytest.raises(ValueError, match=r"LadderSchedule is .*'exp', 0.0001, 1.0, 20.* asks for .*'exp', 0.0001, 1.0, 10"):
        range_test(model, x, y, start_lr=1e-4, end_lr=1.0, steps=10)
    with pytest.raises(ValueError, match="asks for .*'linear'"):
        range_test(model, x, y, start_lr=1e-4, end_lr=1.0, steps=20, ladder="linear")
    model.optimizer.iterations.assign(3)
    with pytest.raises(ValueError, match="at iteration 3; compile the model with a fresh optimizer"):
        range_test(model, x, y, start_lr=1e-4, end_lr=1.0, steps=20)
    lso = _mlp(bn=False, l2=0)
    lso.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(ladder_schedule("exp", 1e-4, 1.0, 20))),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="cannot drive a LossScaleOptimizer"):
        range_test(lso, x, y, start_lr=1e-4, end_lr=1.0, steps=20)


def test_planned_steps_matches_what_range_test_runs():
    from lrrt_core.finder import planned_steps

    x, y = _data(n=100)
    assert planned_steps(x, y, steps=37) == 37
    assert planned_steps(x, y) == DEFAULT_STEPS == 200
    assert planned_steps(x, y, epochs=3, batch_size=32) == 9  # 3 full batches per epoch, the last dropped
    assert planned_steps(x, y, epochs=2, batch_size=500) == 2  # one batch of all samples
    assert planned_steps(iter([(x, y)]), epochs=2) is None  # a generator's length is not known up front
    c = range_test(_compile(_mlp(bn=False, l2=0)), x, y, epochs=3, batch_size=32, diverge_threshold=None)
    assert c.steps_planned == planned_steps(x, y, epochs=3, batch_size=32)


def test_curve_record():
    x, y = _data()
    c = range_test(_compile(_mlp()), x, y, steps=12, start_lr=1e-4, end_lr=1e-1, batch_size=32)
    assert isinstance(c, Curve) and c.stop_reason == "completed" and c.diverged_lr is None
    assert c.wall_s > 0 and c.steps_planned == 12
    assert set(c.params) == {"start_lr", "end_lr", "steps", "epochs", "ladder", "loss", "diverge_threshold", "smoothing",
                             "steps_per_call", "seed", "batch_size", "optimizer_class", "momentum"}  # RangeTest.params
    assert (c.params["optimizer_class"], c.params["momentum"]) == ("SGD", 0.9)  # what the default's divisor reads
    from lrrt_core.suggest import plain_sgd

    plain = _mlp()
    plain.compile(optimizer=keras.optimizers.SGD(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    p = range_test(plain, x, y, steps=4, start_lr=1e-4, end_lr=1e-1, batch_size=32)
    assert plain_sgd(p) and not plain_sgd(c)
    a = range_test(_compile(_mlp(), "adam"), x, y, steps=4, start_lr=1e-4, end_lr=1e-1, batch_size=32)
    assert (a.params["optimizer_class"], a.params["momentum"], plain_sgd(a)) == ("Adam", None, False)
    frame = c.to_frame()
    assert list(frame.columns) == ["step", "lr", "loss", "smoothed_loss"] and len(frame) == 12
    assert Curve.from_dict(c.to_dict()).params == c.params
    assert math.isclose(c.lrs[0], 1e-4) and math.isclose(c.lrs[-1], 1e-1)


# --------------------------------------------------------------------------- the article's flow


def _klf_derivatives(losses, sma):
    """keras-lr-finder's ``get_derivatives`` (surmenok/keras-lr-finder, keras_lr_finder/lr_finder.py),
    re-expressed: ``sma`` leading zeros, then ``(loss[i] - loss[i - sma]) / sma``."""
    assert sma >= 1
    return [0.0] * sma + [(losses[i] - losses[i - sma]) / sma for i in range(sma, len(losses))]


def _klf_best_lr(lrs, losses, sma, n_skip_beginning=10, n_skip_end=5):
    """keras-lr-finder's ``get_best_lr``: the lr at ``np.argmin`` of the derivatives over
    ``[n_skip_beginning:-n_skip_end]`` (the first on ties)."""
    window = slice(n_skip_beginning, -n_skip_end)
    return lrs[window][int(np.argmin(_klf_derivatives(losses, sma)[window]))]


def test_article_flow_through_the_facade_on_digits():
    """SGD vs Adam on digits through ``LRFinder``, overlaid plots, ``get_best_lr`` (the seed article)."""
    from lrrt_core import plot

    build = get_workload("digits_cnn")
    curves, labels = [], []
    for label, make in (("sgd", lambda: keras.optimizers.SGD(1e-4)), ("adam", lambda: keras.optimizers.Adam(1e-4))):
        wl = build(seed=0, width=8)
        wl.model.compile(optimizer=make(), loss=wl.loss)
        finder = LRFinder(wl.model)
        finder.find(wl.x, wl.y, start_lr=1e-4, end_lr=10, batch_size=64, epochs=3)
        assert len(finder.lrs) == len(finder.losses) == finder.curve.steps_run > 20
        assert finder.losses == finder.curve.losses.tolist()
        for sma, skip_start, skip_end in ((5, 5, 2), (1, 10, 5), (20, 10, 5), (10, 0, 1)):
            best = finder.get_best_lr(sma=sma, n_skip_beginning=skip_start, n_skip_end=skip_end)
            assert best == _klf_best_lr(finder.lrs, finder.losses, sma, skip_start, skip_end), (label, sma)
            np.testing.assert_allclose(finder.get_derivatives(sma), _klf_derivatives(finder.losses, sma), rtol=1e-12)
        der = finder.get_derivatives(5)
        assert len(der) == len(finder.lrs) and der[:5] == [0.0] * 5
        assert finder.plot_loss(n_skip_beginning=5, n_skip_end=2) is None  # pyplot + show(), as keras-lr-finder
        ax = finder.plot_loss_change(sma=5, n_skip_beginning=5, n_skip_end=2, y_lim=(-0.1, 0.1), ax=plot.new_axes())
        assert ax is not None and ax.get_lines()
        curves.append(finder.curve)
        labels.append(label)
    import matplotlib.pyplot as plt

    plt.close("all")
    ax = plot.plot_curves(curves, labels=labels)
    assert len(ax.get_lines()) >= 2
    # Adam reaches a lower loss than SGD on this ConvNet, as in the article.
    assert min(curves[1].smoothed()) < min(curves[0].smoothed())


def test_find_generator():
    import tensorflow as tf

    x, y = _data()
    model = _compile(_mlp())
    finder = LRFinder(model)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    finder.find_generator(ds, 1e-4, 1.0, epochs=2)
    assert finder.curve.steps_planned == 10

    def gen():
        while True:
            yield x[:32], y[:32]

    finder.find_generator(gen(), 1e-4, 1.0, epochs=3, steps_per_epoch=4)
    assert finder.curve.steps_planned == 12
    with pytest.raises(ValueError, match="pass steps_per_epoch"):
        finder.find_generator(gen(), 1e-4, 1.0)
    with pytest.raises(ValueError, match="call find"):
        LRFinder(model).get_best_lr(sma=5)
