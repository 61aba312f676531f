"""lrrt_core.optimizers: plain-data registry, lazy Keras, clear errors."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from lrrt_core.optimizers import OPTIMIZERS, check_optimizer, make_optimizer


def test_registry_and_workloads_import_without_keras():
    code = (
        "import sys, lrrt_core.optimizers as o, lrrt_core.workloads as w; "
        "assert o.OPTIMIZERS['adam'].allowed and 'digits_cnn' in w.WORKLOADS; "
        "w.get_workload('digits_cnn'); o.check_optimizer('nesterov', {'momentum': 0.5}); "
        "bad = [m for m in ('keras', 'tensorflow', 'ray', 'torch') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_names():
    assert {"sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "nadam", "adagrad", "adadelta",
            "adamax", "lion", "lamb", "adafactor"} <= set(OPTIMIZERS)
    for spec in OPTIMIZERS.values():
        assert "learning_rate" not in spec.allowed
        assert set(spec.defaults) <= set(spec.allowed)


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("adamm", {}, r"unknown optimizer 'adamm'; choose one of: sgd, momentum"),
        ("adam", {"momentum": 0.9}, r"'adam' does not take 'momentum'; allowed arguments: beta_1"),
        ("sgd", {"learning_rate": 0.1}, r"range test sets it"),
        ("sgd", {"use_ema": True}, r"does not take 'use_ema'"),
    ],
)
def test_bad_names_and_kwargs(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_optimizer(name, kwargs)
    if "learning_rate" not in kwargs:  # make_optimizer takes it positionally
        with pytest.raises(ValueError, match=match):
            make_optimizer(name, 0.1, **kwargs)


@pytest.mark.tf
def test_allowed_kwargs_match_keras_signatures():
    import keras

    for name, spec in OPTIMIZERS.items():
        cls = getattr(keras.optimizers, spec.keras_class)
        params = set(inspect.signature(cls).parameters)
        assert set(spec.allowed) <= params, (name, set(spec.allowed) - params)


@pytest.mark.tf
def test_make_optimizer_defaults_and_overrides():
    import keras

    opt = make_optimizer("nesterov", 0.01)
    assert isinstance(opt, keras.optimizers.SGD)
    assert opt.momentum == pytest.approx(0.9) and opt.nesterov is True
    assert float(opt.learning_rate.numpy()) == pytest.approx(0.01)
    assert make_optimizer("momentum", 0.1, momentum=0.5).momentum == pytest.approx(0.5)
    assert isinstance(make_optimizer("ADAM", 1e-3, beta_2=0.99), keras.optimizers.Adam)
    for name in OPTIMIZERS:
        make_optimizer(name, 1e-3)
    with pytest.raises(ValueError, match="learning_rate must be"):
        make_optimizer("sgd", keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9))
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        make_optimizer("sgd", 0.0)
