"""Workloads: a model plus its data, built deterministically from a seed.

A *workload builder* is any function ``builder(seed: int = 0, **kwargs) -> Workload``.
The model it returns is **uncompiled**: the caller (``runner.run_workload``, the sweep's
trainable) compiles it with the optimizer under test and ``Workload.loss``. Extra grid
axes (``width``, ``dropout``, ...) and ``workload_args`` arrive as keyword arguments.

Built-ins (:data:`WORKLOADS`):

* ``digits_cnn`` -- a small ConvNet on scikit-learn's bundled 8x8 digits (no download;
  the embedded default used by tests and the quick-start sweep).
* ``mnist_cnn`` -- the ConvNet of the seed article (Conv2D(32,3) -> MaxPool ->
  Conv2D(64,3) -> MaxPool -> Flatten -> Dense(256) -> Dense(10)) on MNIST via
  ``keras.datasets.mnist`` (needs the machine to be online, or ``data=`` arrays).

A user workload is named ``"package.module:function"`` and resolved by :func:`get_workload`;
its module is looked up on ``sys.path`` and in :func:`workload_dirs` (the current directory),
which a local sweep also puts on its workers' ``PYTHONPATH``.

This module imports Keras only inside the builders, so ``WORKLOADS`` and ``get_workload``
work without TensorFlow (a sweep validator can check names cheaply).

Example:
    >>> from lrrt_core.workloads import get_workload
    >>> wl = get_workload("digits_cnn")(seed=0, width=8)      # doctest: +SKIP
    >>> wl.model.compile(optimizer="adam", loss=wl.loss)      # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Workload:
    """A model and its data.

    Attributes:
        model: an uncompiled Keras model, built (weights created) from the seed.
        loss: what ``model.compile(loss=...)`` takes (a string keeps it serialisable).
        x, y: training inputs and targets (NumPy arrays).
        x_val, y_val: held-out inputs and targets (for ``loss="val"``).
        metrics: metrics to compile with (empty by default: the finder needs only the loss,
            and every metric costs time on each step).
        eval_metrics: metrics a verification training reports on the held-out data after
            training (``("accuracy",)`` for the built-in classifiers); never computed during
            a range test.
    """

    model: Any
    loss: Any
    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    metrics: tuple = ()
    eval_metrics: tuple = ()


def _split(x: np.ndarray, y: np.ndarray, val_fraction: float, seed: int):
    """Seeded split, stratified by class (no TF). Returns x, y, x_val, y_val."""
    rng = np.random.default_rng(seed)
    val_idx = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        val_idx.append(idx[: int(round(val_fraction * idx.size))])
    val = np.sort(np.concatenate(val_idx))
    mask = np.ones(len(y), dtype=bool)
    mask[val] = False
    train = np.flatnonzero(mask)
    train = train[rng.permutation(train.size)]
    return x[train], y[train], x[val], y[val]


def digits_cnn(
    seed: int = 0,
    *,
    width: int = 16,
    dropout: float = 0.0,
    weight_decay: float = 0.0,
    use_batchnorm: bool = False,
    val_fraction: float = 0.2,
    **unused: Any,
) -> Workload:
    """A small ConvNet on scikit-learn's 8x8 handwritten digits (1797 images, 10 classes).

    Args:
        seed: seeds the weights (``keras.utils.set_random_seed``) and the train/val split.
        width: filters of the first conv layer (the second has ``2*width``).
        dropout: dropout rate before the classifier (0 disables the layer).
        weight_decay: L2 kernel-regularization factor (0 disables it); the penalty is part
            of the loss the finder records, as Keras reports it.
        use_batchnorm: add BatchNormalization after each conv.
        val_fraction: held-out share, stratified by class.
        **unused: other grid axes are accepted and ignored (logged).

    Returns:
        :class:`Workload` with inputs scaled to [0, 1], shape ``(n, 8, 8, 1)``, integer
        labels and ``loss="sparse_categorical_crossentropy"``.
    """
    if unused:
        log.warning("digits_cnn ignores unknown arguments %s", sorted(unused))
    import keras
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., None]
    y = digits.target.astype(np.int32)
    x, y, x_val, y_val = _split(x, y, val_fraction, seed)

    keras.utils.set_random_seed(int(seed))
    reg = keras.regularizers.L2(weight_decay) if weight_decay else None
    layers = [keras.Input(shape=(8, 8, 1))]
    layers.append(keras.layers.Conv2D(width, 3, padding="same", activation="relu", kernel_regularizer=reg))
    if use_batchnorm:
        layers.append(keras.layers.BatchNormalization())
    layers.append(keras.layers.MaxPooling2D(2))
    layers.append(keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu", kernel_regularizer=reg))
    if use_batchnorm:
        layers.append(keras.layers.BatchNormalization())
    layers.append(keras.layers.Flatten())
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(10, activation="softmax", kernel_regularizer=reg))
    model = keras.Sequential(layers, name="digits_cnn")
    return Workload(model=model, loss="sparse_categorical_crossentropy", x=x, y=y, x_val=x_val, y_val=y_val,
                    eval_metrics=("accuracy",))


def prepare_mnist(x_train, y_train, x_test, y_test, *, limit: int | None = None):
    """Turn raw MNIST arrays into model inputs (the article's preprocessing).

    Args:
        x_train, x_test: uint8 images ``(n, 28, 28)`` (or ``(n, h, w)`` / ``(n, h, w, 1)``).
        y_train, y_test: integer labels ``(n,)``.
        limit: keep only the first ``limit`` training samples (None keeps all).

    Returns:
        ``(x, y, x_val, y_val)``: float32 images in [0, 1] with a channel axis, int32 labels.
        The test split is the held-out set, as in the article.
    """

    def _x(a):
        a = np.asarray(a)
        if a.ndim == 3:
            a = a[..., None]
        if a.ndim != 4:
            raise ValueError(f"MNIST images must have shape (n, h, w) or (n, h, w, 1), got {a.shape}")
        return a.astype(np.float32) / 255.0

    def _y(a, n):
        a = np.asarray(a).astype(np.int32).reshape(-1)
        if a.shape[0] != n:
            raise ValueError(f"got {n} images but {a.shape[0]} labels")
        return a

    x, x_val = _x(x_train), _x(x_test)
    y, y_val = _y(y_train, len(x)), _y(y_test, len(x_val))
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x, y, x_val, y_val


def mnist_cnn(seed: int = 0, *, data=None, limit: int | None = None, num_classes: int = 10, **unused: Any) -> Workload:
    """The seed article's ConvNet on MNIST.

    Conv2D(32, 3, relu) -> MaxPool(2) -> Conv2D(64, 3, relu) -> MaxPool(2) -> Flatten ->
    Dense(256, relu) -> Dense(10, softmax).

    Args:
        seed: seeds the weights.
        data: optional ``(x_train, y_train, x_test, y_test)`` arrays; by default
            ``keras.datasets.mnist.load_data()`` (downloads once; fails offline).
        limit: keep only the first ``limit`` training images.
        num_classes: output classes.
    """
    if unused:
        log.warning("mnist_cnn ignores unknown arguments %s", sorted(unused))
    import keras

    if data is None:
        try:
            (xtr, ytr), (xte, yte) = keras.datasets.mnist.load_data()
        except Exception as exc:  # offline machines
            raise RuntimeError(
                "could not load MNIST via keras.datasets (is the machine offline?); "
                "use the digits_cnn workload or pass data=(x_train, y_train, x_test, y_test)"
            ) from exc
        data = (xtr, ytr, xte, yte)
    x, y, x_val, y_val = prepare_mnist(*data, limit=limit)

    keras.utils.set_random_seed(int(seed))
    model = keras.Sequential(
        [
            keras.Input(shape=x.shape[1:]),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="mnist_cnn",
    )
    return Workload(model=model, loss="sparse_categorical_crossentropy", x=x, y=y, x_val=x_val, y_val=y_val,
                    eval_metrics=("accuracy",))


WORKLOADS: dict[str, Callable[..., Workload]] = {"digits_cnn": digits_cnn, "mnist_cnn": mnist_cnn}
"""Built-in workload name -> builder."""


def workload_dirs() -> list[str]:
    """Folders where user workload modules are found besides ``sys.path``: the current directory.

    ``python script.py`` and ``python -m`` put a folder first on ``sys.path``; an installed
    console script such as ``lrrt`` does not (its ``sys.path[0]`` is the virtual
    environment's ``bin/``). lrrt therefore adds these folders itself, on both sides of a
    sweep: the driver's ``sys.path`` (:func:`use_workload_dirs`, called wherever a
    ``module:function`` reference is checked or resolved) and a local Ray's workers'
    ``PYTHONPATH`` (``sweeps.launch.connect``).
    """
    return [os.getcwd()]


def use_workload_dirs() -> None:
    """Put :func:`workload_dirs` first on ``sys.path`` (once each), as ``python -m`` does."""
    for folder in reversed(workload_dirs()):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def get_workload(ref: str | Callable[..., Workload]) -> Callable[..., Workload]:
    """Resolve a workload reference to its builder.

    Args:
        ref: a built-in name (``"digits_cnn"``), ``"package.module:function"``, or a
            builder callable (returned as is).

    Returns:
        The builder ``builder(seed=0, **kwargs) -> Workload``.

    Raises:
        ValueError: unknown name, a module that cannot be imported, or a missing or
            non-callable attribute; the message says which and lists the built-ins.
    """
    if callable(ref):
        return ref
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"workload must be a name or 'package.module:function', got {ref!r}")
    if ref in WORKLOADS:
        return WORKLOADS[ref]
    if ":" not in ref:
        raise ValueError(
            f"unknown workload {ref!r}; use one of {', '.join(WORKLOADS)} or 'package.module:function'"
        )
    module_name, _, attr = ref.partition(":")
    use_workload_dirs()
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(f"workload {ref!r}: cannot import module {module_name!r} ({exc})") from exc
    builder = module
    for part in attr.split("."):
        builder = getattr(builder, part, None)
        if builder is None:
            raise ValueError(f"workload {ref!r}: module {module_name!r} has no attribute {attr!r}")
    if not callable(builder):
        raise ValueError(f"workload {ref!r}: {attr!r} is not callable")
    return builder


__all__ = ["Workload", "WORKLOADS", "get_workload", "workload_dirs", "use_workload_dirs", "digits_cnn", "mnist_cnn", "prepare_mnist"]
