"""Several steps per compiled call give the per-step curve (lrrt_core.execution).

TensorFlow runs in this process. JAX and torch run ``tests/core/fused_check.py`` in the
fresh interpreter of ``tests/core/test_backends.py`` (Keras picks its backend at import);
torch has no fused path: its check shows that the default runs per step.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.core import fused_check

pytestmark = pytest.mark.tf


def test_fused_equals_per_step_on_tensorflow():
    assert fused_check.check_all() == "FUSED-OK tensorflow TFChunks"


def test_steps_per_call_is_validated():
    from lrrt_core.finder import range_test

    x, y = fused_check.data()
    for bad in (0, -3, 2.5, True, "16"):
        with pytest.raises(ValueError, match="steps_per_call must be an integer >= 1"):
            range_test(fused_check.mlp(), x, y, steps=10, steps_per_call=bad)


def test_the_last_chunk_is_padded_and_its_extra_steps_dropped():
    """60 steps in chunks of 16: the last chunk runs 16 steps for 12 (one compiled program);
    the curve keeps exactly the 60 planned steps and the per-step losses."""
    per_step, _ = fused_check.run(1, end_lr=1e-2)
    fused, _ = fused_check.run(16, end_lr=1e-2)
    assert fused.steps_run == per_step.steps_run == 60
    fused_check.same_curve(fused, per_step)


def test_large_arrays_are_fed_from_the_host(monkeypatch):
    """Arrays over STAGE_BYTES are not copied to the device whole: each chunk's batches are
    gathered on the host and stacked; the curve is the same."""
    from lrrt_core import execution

    monkeypatch.setattr(execution, "STAGE_BYTES", 100)
    host_fed, _ = fused_check.run(8, end_lr=1e-2)
    per_step, _ = fused_check.run(1, end_lr=1e-2)
    fused_check.same_curve(host_fed, per_step)


def test_sample_weights_from_a_dataset_reach_the_fused_step():
    """(x, y, sample_weight) batches: the weighted loss, as train_on_batch reports it."""
    import tensorflow as tf

    from lrrt_core.finder import range_test

    x, y = fused_check.data()
    w = np.where(y == 0, 3.0, 0.5).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y, w)).batch(40)
    curves = [range_test(fused_check.mlp(dropout=False), ds, start_lr=1e-4, end_lr=1e-2, steps=20,
                         steps_per_call=k, diverge_threshold=None) for k in (1, 6)]
    fused_check.same_curve(curves[1], curves[0])
    unweighted = range_test(fused_check.mlp(dropout=False), tf.data.Dataset.from_tensor_slices((x, y)).batch(40),
                            start_lr=1e-4, end_lr=1e-2, steps=20, diverge_threshold=None)
    assert np.max(np.abs(unweighted.losses - curves[1].losses)) > 1e-3  # the weights really count


def test_models_lrrt_builds_share_one_compiled_step():
    """run_workload builds a fresh model per test; the second model of an architecture runs
    on the first one's compiled step (its own weights copied in) and gives its own curve."""
    from lrrt_core import execution
    from lrrt_core.runner import run_workload

    execution._BY_ARCHITECTURE.clear()
    kw = dict(optimizer="adam", batch_size=64, start_lr=1e-4, end_lr=3.0, steps=40)
    shared = [run_workload("digits_cnn", seed=s, **kw) for s in (0, 1)]
    assert len(execution._BY_ARCHITECTURE) == 1
    (program,) = execution._BY_ARCHITECTURE.values()
    assert len(program.fns) == 1  # compiled once, for both models
    for seed, curve in zip((0, 1), shared):
        fused_check.same_curve(curve, run_workload("digits_cnn", seed=seed, steps_per_call=1, **kw))
    assert not np.allclose(shared[0].losses[:5], shared[1].losses[:5])  # two seeds, two curves


def test_a_users_model_is_never_shared():
    """Without share_compiled (the default), each model keeps its own compiled step, and a
    range test of one model never touches another of the same architecture."""
    from lrrt_core import execution
    from lrrt_core.finder import range_test

    a, b = fused_check.mlp(seed=0), fused_check.mlp(seed=1)
    x, y = fused_check.data()
    range_test(a, x, y, start_lr=1e-4, end_lr=1e-2, steps=20)
    before = fused_check.state(a)
    range_test(b, x, y, start_lr=1e-4, end_lr=1e-2, steps=20)
    for u, v in zip(before, fused_check.state(a)):
        np.testing.assert_array_equal(u, v)
    assert execution.program_for(a, False) is not execution.program_for(b, False)
    assert execution.program_for(a, False).model is a


def test_architecture_key_tells_structures_apart():
    from lrrt_core.execution import architecture_key

    assert architecture_key(fused_check.mlp(seed=0)) == architecture_key(fused_check.mlp(seed=5))
    assert architecture_key(fused_check.mlp(dropout=False)) != architecture_key(fused_check.mlp())
    other_optimizer = fused_check.mlp()
    import keras

    other_optimizer.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    assert architecture_key(other_optimizer) != architecture_key(fused_check.mlp())

    class Custom(keras.Model):
        def call(self, x):
            return x

    assert architecture_key(Custom()) is None


def test_a_users_compiled_chunk_lives_and_dies_with_the_model():
    """The next test of the same model reuses its compiled chunk; dropping the model frees it
    (the chunk is kept on the model, not in a cache that would hold every model alive)."""
    import gc
    import weakref

    from lrrt_core.finder import range_test

    x, y = fused_check.data()
    model = fused_check.mlp()
    range_test(model, x, y, start_lr=1e-4, end_lr=1e-2, steps=20)
    program = model._lrrt_program[1]
    range_test(model, x, y, start_lr=1e-4, end_lr=1e-2, steps=20)
    assert model._lrrt_program[1] is program and len(program.fns) == 1
    ref = weakref.ref(model)
    del model, program
    gc.collect()
    assert ref() is None


def test_settings_travel_whole_or_as_keywords():
    """range_test(model, x, y, RangeTest(...)) is range_test(model, x, y, start_lr=...);
    keywords override the object; an unknown setting names the known ones."""
    from lrrt_core.finder import range_test
    from lrrt_core.settings import RangeTest

    x, y = fused_check.data()
    rt = RangeTest(start_lr=1e-4, end_lr=1e-2, steps=20, diverge_threshold=None)
    whole = range_test(fused_check.mlp(), x, y, rt, batch_size=32)
    keywords = range_test(fused_check.mlp(), x, y, batch_size=32, start_lr=1e-4, end_lr=1e-2, steps=20,
                          diverge_threshold=None)
    fused_check.same_curve(whole, keywords)
    assert whole.params["steps"] == 20 and whole.params["diverge_threshold"] is None
    shorter = range_test(fused_check.mlp(), x, y, rt, batch_size=32, steps=10)
    assert shorter.steps_run == 10
    with pytest.raises(TypeError, match="unknown range-test setting.*start_lr"):
        range_test(fused_check.mlp(), x, y, rt, stat_lr=1e-3)
