"""Optimizer registry: short names -> Keras 3 optimizer classes, as plain data.

``OPTIMIZERS`` is plain data (no Keras import), so a sweep-file validator can check an
optimizer name and its keyword arguments without importing TensorFlow. ``make_optimizer``
imports Keras only when it is called.

Each entry is an :class:`OptimizerEntry`: the Keras class name in ``keras.optimizers``,
the default keyword arguments that define the short name (``momentum`` is ``SGD`` with
``momentum=0.9``), and the keyword arguments a user may set. The allowed lists are the
class's own hyper-parameters plus the common ``weight_decay``, ``clipnorm``,
``clipvalue`` and ``global_clipnorm``. Deliberately left out:

* ``learning_rate`` -- the range test owns it (it is the ladder);
* ``use_ema``/``ema_*`` -- EMA overwrites the weights with their average, so the loss
  of step i would no longer be the loss of the weights the ladder produced;
* ``gradient_accumulation_steps`` -- the weights would move once every k steps, which
  breaks the one-learning-rate-per-step ladder;
* ``loss_scale_factor``, ``name``.

Example:
    >>> from lrrt_core.optimizers import make_optimizer
    >>> opt = make_optimizer("nesterov", 0.01)          # doctest: +SKIP
    >>> type(opt).__name__, opt.momentum, opt.nesterov   # doctest: +SKIP
    ('SGD', 0.9, True)
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Mapping

_COMMON = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm")


@dataclasses.dataclass(frozen=True)
class OptimizerEntry:
    """One registry entry.

    Attributes:
        keras_class: class name in ``keras.optimizers`` (``"SGD"``, ``"Adam"``, ...).
        defaults: keyword arguments that define this short name (overridable).
        allowed: keyword arguments a user may pass (``learning_rate`` excluded).
    """

    keras_class: str
    defaults: Mapping[str, Any]
    allowed: tuple[str, ...]


def _spec(keras_class: str, own: tuple[str, ...], **defaults: Any) -> OptimizerEntry:
    return OptimizerEntry(keras_class, MappingProxyType(dict(defaults)), tuple(own) + _COMMON)


_SGD = ("momentum", "nesterov")
_ADAM = ("beta_1", "beta_2", "epsilon", "amsgrad")

OPTIMIZERS: Mapping[str, OptimizerEntry] = MappingProxyType(
    {
        "sgd": _spec("SGD", _SGD),
        "momentum": _spec("SGD", _SGD, momentum=0.9),
        "nesterov": _spec("SGD", _SGD, momentum=0.9, nesterov=True),
        "adam": _spec("Adam", _ADAM),
        "adamw": _spec("AdamW", _ADAM),
        "rmsprop": _spec("RMSprop", ("rho", "momentum", "epsilon", "centered")),
        "nadam": _spec("Nadam", ("beta_1", "beta_2", "epsilon")),
        "adagrad": _spec("Adagrad", ("initial_accumulator_value", "epsilon")),
        "adadelta": _spec("Adadelta", ("rho", "epsilon")),
        "adamax": _spec("Adamax", ("beta_1", "beta_2", "epsilon")),
        "lion": _spec("Lion", ("beta_1", "beta_2")),
        "lamb": _spec("Lamb", ("beta_1", "beta_2", "epsilon")),
        "adafactor": _spec(
            "Adafactor", ("beta_2_decay", "epsilon_1", "epsilon_2", "clip_threshold", "relative_step")
        ),
    }
)
"""Short optimizer name -> :class:`OptimizerEntry` (all of these exist in Keras 3.15)."""


def check_optimizer(name: str, kwargs: Mapping[str, Any] | None = None) -> OptimizerEntry:
    """Validate an optimizer name and its keyword arguments without importing Keras.

    Args:
        name: a key of :data:`OPTIMIZERS` (case-insensitive).
        kwargs: keyword arguments for the optimizer (``learning_rate`` is not allowed).

    Returns:
        The :class:`OptimizerEntry`.

    Raises:
        ValueError: unknown name, or a keyword argument the optimizer does not take;
            the message lists the valid choices.
    """
    key = str(name).lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    spec = OPTIMIZERS[key]
    for k in kwargs or {}:
        if k == "learning_rate":
            raise ValueError(
                "learning_rate cannot be set as an optimizer argument: the range test sets it "
                "(use start_lr / end_lr)"
            )
        if k not in spec.allowed:
            raise ValueError(
                f"optimizer {key!r} does not take {k!r}; allowed arguments: {', '.join(spec.allowed)}"
            )
    return spec


def make_optimizer(name: str, learning_rate: float, **kwargs: Any):
    """Build a Keras 3 optimizer from a short name.

    Args:
        name: a key of :data:`OPTIMIZERS`, e.g. ``"adam"`` or ``"momentum"``.
        learning_rate: initial learning rate, a float (the range test assigns each
            step's rate to the optimizer's learning-rate variable, so no schedule object).
        **kwargs: optimizer hyper-parameters; they override the name's defaults.

    Returns:
        A new ``keras.optimizers.Optimizer``.

    Raises:
        ValueError: unknown name or keyword argument (the message lists valid choices),
            or a learning rate that is not a positive float.

    Example:
        >>> opt = make_optimizer("adam", 1e-3, beta_2=0.99)   # doctest: +SKIP
    """
    spec = check_optimizer(name, kwargs)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        try:
            learning_rate = float(learning_rate)  # numpy scalars
        except (TypeError, ValueError):
            raise ValueError(
                f"learning_rate must be a positive float, got {learning_rate!r}; "
                "pass a number, not a learning-rate schedule"
            ) from None
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    import keras

    cls = getattr(keras.optimizers, spec.keras_class)
    return cls(learning_rate=float(learning_rate), **{**spec.defaults, **kwargs})


__all__ = ["OPTIMIZERS", "OptimizerEntry", "check_optimizer", "make_optimizer"]
