"""lrrt_core.workloads: resolution, determinism, the article's MNIST ConvNet on made-up arrays."""

from __future__ import annotations

import numpy as np
import pytest

from lrrt_core.workloads import WORKLOADS, Workload, get_workload, prepare_mnist


def tiny_builder(seed: int = 0, **kwargs):
    """A user workload for the ``package.module:function`` test (never called here)."""
    raise NotImplementedError


def test_builtin_and_user_refs():
    assert get_workload("digits_cnn") is WORKLOADS["digits_cnn"]
    assert get_workload("tests.core.test_workloads:tiny_builder") is tiny_builder
    assert get_workload(tiny_builder) is tiny_builder


@pytest.mark.parametrize(
    "ref, match",
    [
        ("digits", r"unknown workload 'digits'; use one of digits_cnn, mnist_cnn"),
        ("no_such_pkg.mod:fn", r"cannot import module 'no_such_pkg.mod'"),
        ("tests.core.test_workloads:nope", r"has no attribute 'nope'"),
        ("tests.core.test_workloads:np", r"is not callable|has no attribute"),
        ("", r"must be a name"),
    ],
)
def test_bad_refs(ref, match):
    with pytest.raises(ValueError, match=match):
        get_workload(ref)


def test_prepare_mnist_on_made_up_arrays():
    rng = np.random.default_rng(0)
    xtr = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    xte = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    ytr, yte = rng.integers(0, 10, 12), rng.integers(0, 10, 5)
    x, y, xv, yv = prepare_mnist(xtr, ytr, xte, yte, limit=10)
    assert x.shape == (10, 28, 28, 1) and xv.shape == (5, 28, 28, 1)
    assert x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_allclose(x[..., 0], xtr[:10] / 255.0, rtol=1e-6)
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(yv, yte)
    with pytest.raises(ValueError, match="12 images but 11 labels"):
        prepare_mnist(xtr, ytr[:11], xte, yte)
    with pytest.raises(ValueError, match="shape"):
        prepare_mnist(xtr.reshape(12, -1), ytr, xte, yte)


@pytest.mark.tf
def test_mnist_cnn_is_the_articles_convnet():
    rng = np.random.default_rng(1)
    data = (rng.integers(0, 256, (8, 28, 28), dtype=np.uint8), rng.integers(0, 10, 8),
            rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), rng.integers(0, 10, 4))
    wl = get_workload("mnist_cnn")(seed=0, data=data)
    assert isinstance(wl, Workload) and not wl.model.compiled
    kinds = [type(layer).__name__ for layer in wl.model.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]
    assert [wl.model.layers[i].filters for i in (0, 2)] == [32, 64]
    assert [wl.model.layers[i].units for i in (5, 6)] == [256, 10]
    assert wl.model(wl.x).shape == (8, 10)


@pytest.mark.tf
def test_digits_cnn_deterministic_from_seed():
    build = get_workload("digits_cnn")
    a, b, c = build(seed=3, width=4), build(seed=3, width=4), build(seed=4, width=4)
    for u, v in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.model.get_weights()[0], c.model.get_weights()[0])
    assert not np.array_equal(a.y, c.y)
    assert a.x.shape[1:] == (8, 8, 1) and 0.0 <= a.x.min() and a.x.max() <= 1.0
    assert len(a.x) + len(a.x_val) == 1797 and 300 < len(a.x_val) < 400
    assert set(np.unique(a.y_val)) == set(range(10))


@pytest.mark.tf
def test_digits_cnn_options():
    wl = get_workload("digits_cnn")(seed=0, width=4, dropout=0.2, weight_decay=1e-3, use_batchnorm=True)
    kinds = [type(layer).__name__ for layer in wl.model.layers]
    assert kinds.count("BatchNormalization") == 2 and "Dropout" in kinds
    assert wl.model.layers[0].filters == 4
    assert len(wl.model.losses) == 3  # an L2 penalty per kernel


@pytest.mark.tf
def test_run_workload_and_write_curve(tmp_path):
    import pandas as pd

    from lrrt_core.runner import run_workload, write_curve

    kw = dict(optimizer="momentum", optimizer_kwargs={"momentum": 0.8}, batch_size=64, seed=1, axes={"width": 4},
              start_lr=1e-4, end_lr=1.0, steps=15)
    c1, c2 = run_workload("digits_cnn", **kw), run_workload("digits_cnn", **kw)
    np.testing.assert_array_equal(c1.losses, c2.losses)  # deterministic from the seed
    assert c1.steps_run == 15
    assert c1.params["optimizer"] == "momentum" and c1.params["optimizer_kwargs"] == {"momentum": 0.8}
    assert c1.params["workload"] == "digits_cnn" and c1.params["axes"] == {"width": 4}
    assert c1.params["batch_size"] == 64 and c1.params["seed"] == 1
    cv = run_workload("digits_cnn", **{**kw, "steps": 5}, loss="val")
    assert cv.params["loss"] == "val" and cv.steps_run == 5

    paths = write_curve(c1, tmp_path / "out", "curve")
    assert set(paths) >= {"csv", "parquet"}
    frame = pd.read_csv(paths["csv"])
    np.testing.assert_allclose(frame["loss"], c1.losses)
    pd.testing.assert_frame_equal(pd.read_parquet(paths["parquet"]), c1.to_frame())
    if "png" in paths:
        assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths.values())


@pytest.mark.parametrize("length", [{"steps": 25}, {"epochs": 1}])
def test_run_workload_computes_the_ladder_in_the_compiled_step(monkeypatch, length):
    """run_workload's optimizer looks each rate up itself (no assign between steps) and the
    curve is the one a float-rate optimizer, assigned each rate, gives."""
    import lrrt_core.finder as finder
    from lrrt_core.optimizers import make_optimizer
    from lrrt_core.runner import run_workload

    controls = []
    real = finder._lr_control
    monkeypatch.setattr(finder, "_lr_control", lambda *a: controls.append(real(*a)) or controls[-1])
    kw = dict(batch_size=128, seed=2, start_lr=1e-4, end_lr=1.0, diverge_threshold=None, **length)
    c = run_workload("digits_cnn", optimizer="adam", **kw)
    assert controls == [None], "run_workload should compile the ladder into the optimizer"

    wl = get_workload("digits_cnn")(seed=2)
    wl.model.compile(optimizer=make_optimizer("adam", 1e-4), loss=wl.loss)
    ref = finder.range_test(wl.model, wl.x, wl.y, **kw)
    assert controls[-1] is not None  # the float-rate optimizer: assigned per step
    np.testing.assert_array_equal(c.lrs, ref.lrs)
    np.testing.assert_array_equal(c.losses, ref.losses)


def test_run_workload_rejects_bad_names_before_building():
    from lrrt_core.runner import run_workload

    with pytest.raises(ValueError, match="unknown optimizer"):
        run_workload("digits_cnn", optimizer="adamm", batch_size=8, start_lr=1e-4, end_lr=1.0)
    with pytest.raises(ValueError, match="unknown workload"):
        run_workload("digitz", optimizer="adam", batch_size=8, start_lr=1e-4, end_lr=1.0)
