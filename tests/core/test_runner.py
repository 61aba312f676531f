"""lrrt_core.runner.run_workload: what a sweep trial and ``lrrt find`` run, checked by value.

The workload builder hands its model to the test before run_workload compiles it; the model's
``train_on_batch`` is wrapped so that after every training step the test evaluates the
held-out and the training data itself, and after the run it reads the compiled optimizer.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(320, 6)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64")
    return x, y


class Probe:
    """A workload builder (``build(seed, **axes) -> Workload``) that watches its model."""

    def __init__(self, *, shift_val_labels: bool = False) -> None:
        self.model = None
        self.after_step: list[tuple[float, float]] = []  # (held-out loss, training-data loss)
        self.shift = shift_val_labels

    def build(self, seed: int = 0, **axes):
        import keras

        from lrrt_core.workloads import Workload

        keras.utils.set_random_seed(seed)
        x, y = _data(seed)
        xv, yv = x[256:], y[256:]
        if self.shift:  # held-out targets unlike the training data: its loss rises while training fits
            yv = 1 - yv
        x, y = x[:256], y[:256]
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        train = model.train_on_batch

        def train_on_batch(*args, **kwargs):
            logs = train(*args, **kwargs)
            held_out = float(loss_fn(yv, model(xv, training=False)))
            train_set = float(loss_fn(y, model(x, training=False)))
            self.after_step.append((held_out, train_set))
            return logs

        model.train_on_batch = train_on_batch
        self.model = model
        return Workload(model=model, loss=loss_fn, x=x, y=y, x_val=xv, y_val=yv)


def _run(builder, **kw):
    from lrrt_core.runner import run_workload

    args = dict(optimizer="sgd", batch_size=32, seed=0, start_lr=1e-2, end_lr=3.0, steps=12, diverge_threshold=None)
    return run_workload(builder.build, **{**args, **kw})


def test_val_loss_is_the_held_out_loss_after_each_step():
    probe = Probe(shift_val_labels=True)
    curve = _run(probe, loss="val", steps_per_call=1)  # the probe watches train_on_batch: one step per call
    held_out, train_set = np.array(probe.after_step).T
    assert curve.steps_run == len(held_out) == 12
    np.testing.assert_allclose(curve.losses, held_out, rtol=1e-5)
    # The two data sets give clearly different losses, so evaluating the wrong one cannot pass.
    assert np.min(np.abs(held_out - train_set)) > 0.05
    # Several steps per compiled call (the default): the same held-out loss after each step.
    fused = _run(Probe(shift_val_labels=True), loss="val", steps_per_call=5)
    np.testing.assert_array_equal(fused.lrs, curve.lrs)
    np.testing.assert_allclose(fused.losses, curve.losses, rtol=1e-6)


def test_train_loss_is_not_the_held_out_loss():
    probe = Probe(shift_val_labels=True)
    curve = _run(probe, loss="train", steps_per_call=1)
    held_out, _ = np.array(probe.after_step).T
    assert curve.params["loss"] == "train"
    assert np.min(np.abs(curve.losses - held_out)) > 0.05


@pytest.mark.parametrize("optimizer, kwargs, attribute", [
    ("sgd", {"momentum": 0.9}, "momentum"),
    ("adam", {"beta_1": 0.5}, "beta_1"),
    ("adamw", {"weight_decay": 0.3}, "weight_decay"),
])
def test_optimizer_keywords_reach_the_compiled_optimizer(optimizer, kwargs, attribute):
    probe = Probe()
    curve = _run(probe, optimizer=optimizer, optimizer_kwargs=kwargs)
    compiled = probe.model.optimizer
    assert float(getattr(compiled, attribute)) == pytest.approx(kwargs[attribute])
    assert curve.params["optimizer_kwargs"] == kwargs


def test_an_optimizer_keyword_changes_the_curve():
    plain = _run(Probe(), optimizer="sgd")
    heavy = _run(Probe(), optimizer="sgd", optimizer_kwargs={"momentum": 0.9})
    again = _run(Probe(), optimizer="sgd")
    np.testing.assert_array_equal(plain.losses, again.losses)  # deterministic, so the change is the keyword's
    assert plain.losses[0] == heavy.losses[0]  # same weights, same first batch
    assert np.max(np.abs(plain.losses[2:] - heavy.losses[2:])) > 1e-3
