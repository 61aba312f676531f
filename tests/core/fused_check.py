"""Fused (several steps per compiled call) against per-step range tests, on whatever Keras
backend this interpreter runs. Imported by tests/core/test_execution.py on TensorFlow, and
run as ``python -m tests.core.fused_check`` under ``KERAS_BACKEND=jax|torch`` (Keras picks
its backend at import). Prints ``FUSED-OK <backend> <executor>`` when every check passes.

Checks, on a model with BatchNorm, Dropout and L2 penalties:
* the rates are bit-identical and the losses equal within ``RTOL`` (on a CPU they are
  identical) for k = 1 (per step), 5 (does not divide the steps) and the default;
* a ladder that diverges stops at the same step with the same reason, also on NaN;
* the model and the optimizer are restored exactly;
* a float rate assigned per step and a LadderSchedule give the same fused curve;
* host-fed data (a generator whose last batch is smaller: that chunk runs per step) gives
  the per-step curve;
* ``on_step`` sees the same (step, lr, loss) calls.
"""

from __future__ import annotations

import numpy as np

RTOL = 1e-5


def mlp(seed: int = 0, dropout: bool = True):
    import keras

    from lrrt_core.optimizers import make_optimizer

    keras.utils.set_random_seed(seed)
    reg = keras.regularizers.L2(1e-3)
    layers = [keras.Input((6,)), keras.layers.Dense(32, activation="relu", kernel_regularizer=reg),
              keras.layers.BatchNormalization()]
    if dropout:
        layers.append(keras.layers.Dropout(0.2, seed=seed))
    layers.append(keras.layers.Dense(3, kernel_regularizer=reg))
    m = keras.Sequential(layers)
    m.compile(optimizer=make_optimizer("adam", 1e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return m


def data(n: int = 200):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 6)).astype("float32")
    y = ((x[:, 0] > 0).astype("int32") + (x[:, 1] > 0.5).astype("int32"))
    return x, y


def state(model) -> list[np.ndarray]:
    return [np.array(v.numpy(), copy=True) for v in list(model.variables) + list(model.optimizer.variables)]


def run(k, *, end_lr=10.0, steps=60, model=None, x=None, y=None, **kw):
    """A range test of a fresh model (compiled steps shared by architecture: each model is
    dropped after its test) or of ``model`` (its own compiled step)."""
    from lrrt_core.finder import range_test

    kw.setdefault("share_compiled", model is None)
    model = mlp() if model is None else model
    if x is None:
        x, y = data()
    calls = []
    curve = range_test(model, x, y, start_lr=1e-4, end_lr=end_lr, steps=steps, batch_size=32, seed=3,
                       steps_per_call=k, on_step=lambda *a: calls.append(a), report_every=7, **kw)
    return curve, calls


def same_curve(a, b, rtol=RTOL) -> None:
    np.testing.assert_array_equal(a.lrs, b.lrs)
    np.testing.assert_allclose(a.losses, b.losses, rtol=rtol)
    assert (a.stop_reason, a.steps_run, a.diverged_lr, a.nonfinite_loss) == \
        (b.stop_reason, b.steps_run, b.diverged_lr, b.nonfinite_loss), (a.stop_reason, b.stop_reason)


def executor_name() -> str:
    from lrrt_core.execution import make_executor
    from lrrt_core.sources import make_source

    model = mlp()
    x, y = data()
    source, _ = make_source(x, y, 32, True, 0)
    model(x[:2])
    return type(make_executor(model, source, [1e-3] * 20, model.optimizer.learning_rate, None, None)).__name__


def check_all() -> str:
    import keras

    name = executor_name()
    # a ladder that stays finite, and one that diverges (stop rule), compared over all steps
    for end_lr, ks in ((1e-2, (5,)), (30.0, (5, None))):
        per_step, calls1 = run(1, end_lr=end_lr)
        for k in ks:
            fused, calls = run(k, end_lr=end_lr)
            same_curve(fused, per_step)
            assert [(s, lr) for s, lr, _ in calls] == [(s, lr) for s, lr, _ in calls1]
        if end_lr > 1:
            assert per_step.stop_reason == "diverged" and per_step.steps_run < 60, per_step.stop_reason
    if name == "PerStep":  # no fused path on this backend: the default is the per-step loop itself
        return f"FUSED-OK {keras.backend.backend()} {name}"

    # NaN: a loss that overflows stops at the same step, the NaN step cut
    big_x, y = data()
    big_x = big_x * 1e18
    a, _ = run(1, x=big_x, y=y, end_lr=1e6, diverge_threshold=None)
    b, _ = run(None, x=big_x, y=y, end_lr=1e6, diverge_threshold=None)
    same_curve(b, a)

    # restore is exact after a fused test (BN statistics, dropout seed, iterations, Adam moments)
    model = mlp()
    x, y = data()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    before = state(model)
    run(None, model=model)
    for u, v in zip(before, state(model)):
        np.testing.assert_array_equal(u, v)

    # the ladder computed in the step (LadderSchedule) against the rate fed per step
    from lrrt_core.keras_ladder import ladder_schedule

    sched = mlp()
    sched.optimizer.learning_rate = ladder_schedule("exp", 1e-4, 1e-2, 60)
    same_curve(run(None, model=sched, end_lr=1e-2)[0], run(1, end_lr=1e-2)[0])

    # host-fed batches (a factory of generators; 200 rows in 32s: the 7th batch has 8 rows)
    def batches():
        for i in range(0, 200, 32):
            yield x[i:i + 32], y[i:i + 32]

    from lrrt_core.finder import range_test

    curves = [range_test(mlp(), batches, start_lr=1e-4, end_lr=1e-2, steps=30, steps_per_call=k,
                         diverge_threshold=None, share_compiled=True) for k in (1, 4)]
    same_curve(curves[1], curves[0])
    return f"FUSED-OK {keras.backend.backend()} {name}"


if __name__ == "__main__":
    print(check_all())
