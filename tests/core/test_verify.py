"""lrrt_core.verify: fixed-rate trainings with exact budgets, exact restore, honest evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.tf


def tiny(seed: int = 0, width: int = 8, **unused):
    import keras

    from lrrt_core.workloads import Workload

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 6)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(6, 3)), axis=1).astype("int64")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(width, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    return Workload(model=model, loss="sparse_categorical_crossentropy", x=x[:200], y=y[:200],
                    x_val=x[200:], y_val=y[200:], eval_metrics=("accuracy",))


def _compiled(lr=0.05, opt="adam"):
    from lrrt_core.optimizers import make_optimizer

    wl = tiny()
    wl.model.compile(optimizer=make_optimizer(opt, lr), loss=wl.loss, metrics=["accuracy"])
    return wl


def test_step_and_epoch_budgets_are_exact():
    from lrrt_core.verify import train_fixed

    wl = _compiled()
    r = train_fixed(wl.model, wl.x, wl.y, wl.x_val, wl.y_val, lr=0.01, batch_size=32, steps=30, restore=True)
    assert r.steps == 30  # 200 samples at batch 32 is 7 batches an epoch: the data is cycled
    r = train_fixed(wl.model, wl.x, wl.y, wl.x_val, wl.y_val, lr=0.01, batch_size=32, epochs=2, restore=True)
    assert r.steps == 2 * math.ceil(200 / 32)
    with pytest.raises(ValueError, match="exactly one of epochs or steps"):
        train_fixed(wl.model, wl.x, wl.y, wl.x_val, wl.y_val, lr=0.01, batch_size=32)


def test_restore_is_exact_and_repeats_give_the_same_result():
    from lrrt_core.verify import train_fixed

    wl = _compiled()
    before = [np.array(v.numpy(), copy=True) for v in wl.model.variables]
    a = train_fixed(wl.model, wl.x, wl.y, wl.x_val, wl.y_val, lr=0.02, batch_size=16, epochs=2, restore=True)
    after = [v.numpy() for v in wl.model.variables]
    assert all(np.array_equal(p, q) for p, q in zip(before, after))
    assert int(wl.model.optimizer.iterations.numpy()) == 0
    assert all(not np.any(v.numpy()) for v in wl.model.optimizer.variables if "iteration" not in v.path
               and "learning_rate" not in v.path)
    b = train_fixed(wl.model, wl.x, wl.y, wl.x_val, wl.y_val, lr=0.02, batch_size=16, epochs=2, restore=True)
    assert a.val_loss == b.val_loss and a.metrics == b.metrics and a.steps == b.steps


def test_val_loss_and_accuracy_are_those_of_the_held_out_data():
    from lrrt_core.verify import train_fixed

    wl = _compiled()
    r = train_fixed(wl.model, wl.x, wl.y, wl.x_val, wl.y_val, lr=0.02, batch_size=16, epochs=3)
    p = np.asarray(wl.model.predict(wl.x_val, verbose=0), dtype=np.float64)
    ce = -np.mean(np.log(np.clip(p[np.arange(len(wl.y_val)), wl.y_val], 1e-7, 1)))
    acc = np.mean(np.argmax(p, axis=1) == wl.y_val)
    assert r.val_loss == pytest.approx(ce, rel=1e-4)
    assert r.metrics["accuracy"] == pytest.approx(acc)
    train_ce = -np.mean(np.log(np.clip(np.asarray(wl.model.predict(wl.x, verbose=0))[np.arange(200), wl.y], 1e-7, 1)))
    assert abs(train_ce - r.val_loss) > 1e-3  # not the training data's loss
    assert 0.5 < r.metrics["accuracy"] <= 1.0 and not r.diverged


def test_a_rate_that_blows_up_is_marked_diverged():
    from lrrt_core.verify import train_fixed

    wl = _compiled(opt="sgd")
    r = train_fixed(wl.model, wl.x * 1e3, wl.y, wl.x_val, wl.y_val, lr=1e6, batch_size=16, epochs=2, restore=True)
    assert r.diverged and math.isnan(r.val_loss)


def test_verify_workload_equals_training_the_built_workload():
    from lrrt_core.verify import candidate_rates, train_fixed, verify_workload

    r = verify_workload(tiny, optimizer="momentum", batch_size=32, lr=0.05, seed=0, steps=25)
    wl = tiny(seed=0)
    from lrrt_core.optimizers import make_optimizer

    wl.model.compile(optimizer=make_optimizer("momentum", 0.05), loss=wl.loss, metrics=["accuracy"])
    ref = train_fixed(wl.model, wl.x, wl.y, wl.x_val, wl.y_val, lr=0.05, batch_size=32, steps=25, seed=0)
    assert r.steps == 25 and r.val_loss == pytest.approx(ref.val_loss, rel=1e-6)
    assert set(r.metrics) == {"accuracy"}
    assert candidate_rates(0.03) == pytest.approx([0.01, 0.03, 0.09])
    with pytest.raises(ValueError, match="finite rate > 0"):
        candidate_rates(float("nan"))


def test_a_callable_object_as_builder_is_named_by_its_type():
    from lrrt_core.runner import callable_name, run_workload

    class Builder:
        def __call__(self, seed=0, **axes):
            return tiny(seed, **axes)

    assert callable_name(tiny) == f"{__name__}:tiny"
    assert callable_name(Builder()) == f"{__name__}:test_a_callable_object_as_builder_is_named_by_its_type.<locals>.Builder"
    curve = run_workload(Builder(), optimizer="sgd", batch_size=32, start_lr=1e-3, end_lr=1.0, steps=10)
    assert curve.params["workload"].endswith(".<locals>.Builder") and curve.steps_run == 10


def test_a_finite_blow_up_is_diverged_with_its_references_recorded():
    """Adam at 30 on the tiny classifier: the loss climbs to ~1e3 without a NaN, accuracy still
    looks normal (0.79 here); the untrained model's held-out loss is measured before training."""
    from lrrt_core.verify import chance_loss, train_fixed

    wl = _compiled()
    untrained = wl.model.evaluate(wl.x_val, wl.y_val, verbose=0, return_dict=True)["loss"]
    r = train_fixed(wl.model, wl.x, wl.y, wl.x_val, wl.y_val, lr=30.0, batch_size=16, epochs=3, restore=True)
    assert r.diverged and r.diverged_reason == "loss blew up"
    assert math.isfinite(r.val_loss) and r.val_loss > 4 * r.initial_val_loss  # recorded as measured
    assert r.initial_val_loss == pytest.approx(untrained, rel=1e-6)
    assert r.chance_loss == pytest.approx(chance_loss("sparse_categorical_crossentropy", wl.y, wl.y_val))
    ok = train_fixed(wl.model, wl.x, wl.y, wl.x_val, wl.y_val, lr=0.02, batch_size=16, epochs=3, restore=True)
    assert not ok.diverged and ok.diverged_reason == "" and ok.val_loss < ok.chance_loss
    assert r.to_dict()["diverged_reason"] == "loss blew up"
