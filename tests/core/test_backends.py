"""The finder is backend-neutral: exact-loss, restore and in-graph ladder checks under KERAS_BACKEND=torch (and jax).

Each backend runs in a fresh interpreter (Keras picks its backend at import). Skipped when
the backend's package is not installed (``pip install torch==2.13.0`` gives a CPU build),
except under ``CI=true`` (``.ci/run``), where a missing backend fails the test.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import missing_tool

CHECK = textwrap.dedent(
    """
    import numpy as np, keras
    from lrrt_core.finder import range_test
    from lrrt_core.optimizers import make_optimizer
    from lrrt_core.ladders import ladder
    assert keras.backend.backend() == BACKEND, keras.backend.backend()

    def mlp():
        keras.utils.set_random_seed(0)
        reg = keras.regularizers.L2(1e-2)
        m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu", kernel_regularizer=reg),
                              keras.layers.BatchNormalization(), keras.layers.Dense(3, kernel_regularizer=reg)])
        m.compile(optimizer=make_optimizer("adam", 1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return m

    rng = np.random.default_rng(0)
    x = rng.standard_normal((160, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")

    # exact per-batch loss, independent reference (forward pass by hand, then the same step)
    model, ref = mlp(), mlp()
    ref.set_weights(model.get_weights())
    steps, lo, hi = 12, 1e-3, 1.0
    curve = range_test(model, x, y, start_lr=lo, end_lr=hi, steps=steps, batch_size=32, shuffle=False,
                       diverge_threshold=None)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = []
    for i, lr in enumerate(ladder("exp", lo, hi, steps)):
        xb, yb = x[32 * (i % 5):32 * (i % 5 + 1)], y[32 * (i % 5):32 * (i % 5 + 1)]
        before = ref.get_weights()
        value = loss_fn(yb, ref(xb, training=True)) + sum(ref.losses)
        expected.append(float(keras.ops.convert_to_numpy(value)))
        ref.set_weights(before)
        ref.optimizer.learning_rate.assign(lr)
        ref.train_on_batch(xb, yb)
    np.testing.assert_allclose(curve.losses, expected, rtol=2e-5, atol=1e-6)

    # restore: weights, BN statistics, iterations, Adam moments
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    state = lambda: [np.array(v.numpy(), copy=True) for v in list(model.variables) + list(model.optimizer.variables)]
    before = state()
    c1 = range_test(model, x, y, start_lr=1e-5, end_lr=10.0, steps=40, batch_size=32)
    for u, v in zip(before, state()):
        np.testing.assert_array_equal(u, v)
    c2 = range_test(model, x, y, start_lr=1e-5, end_lr=10.0, steps=40, batch_size=32)
    np.testing.assert_allclose(c1.losses, c2.losses, rtol=1e-6)

    # the ladder computed in the compiled step (LadderSchedule) gives the same curve
    from lrrt_core.keras_ladder import ladder_schedule
    a, b = mlp(), mlp()
    b.optimizer.learning_rate = ladder_schedule("exp", 1e-4, 1.0, 30)
    ca = range_test(a, x, y, start_lr=1e-4, end_lr=1.0, steps=30, batch_size=32, diverge_threshold=None)
    cb = range_test(b, x, y, start_lr=1e-4, end_lr=1.0, steps=30, batch_size=32, diverge_threshold=None)
    np.testing.assert_allclose(ca.losses, cb.losses, rtol=1e-6)
    assert int(b.optimizer.iterations.numpy()) == 0
    print("BACKEND-OK", BACKEND, curve.steps_run, c1.stop_reason)

    # several steps per compiled call against one per call (tests/core/fused_check.py)
    from tests.core import fused_check
    print(fused_check.check_all())
    if BACKEND == "jax":  # the accelerator's path (lax.scan of k steps), run on this CPU
        from lrrt_core import execution
        execution.JAX_SCAN = True
        print(fused_check.check_all(), "scan")
    """
)


@pytest.mark.tf
@pytest.mark.parametrize("backend, executor", [("torch", "PerStep"), ("jax", "JaxChunks")])
def test_exact_loss_and_restore_on_other_backends(backend, executor, tmp_path):
    """Also runs tests/core/fused_check.py there: the fused path (JAX) gives the per-step
    curve; torch, which has none, runs per step by default."""
    if importlib.util.find_spec(backend) is None:
        missing_tool(backend, f"pip install -e '.[{'torch' if backend == 'torch' else 'test'}]'")
    script = tmp_path / "check.py"
    script.write_text(f"BACKEND = {backend!r}\n" + CHECK)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"BACKEND-OK {backend}" in proc.stdout
    assert f"FUSED-OK {backend} {executor}" in proc.stdout
    if backend == "jax":
        assert "FUSED-OK jax JaxChunks scan" in proc.stdout
