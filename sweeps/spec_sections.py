"""The sections of a sweep file besides ``range_test``: grid, optimizers, resources, report
(and its export), verify — pydantic models, each validated with lrrt's messages (``sweeps.validation``).

``sweeps.spec`` assembles them into the whole file (:class:`~sweeps.spec.SweepSpec`), holds the
``range_test`` section and loads files; every name here is importable from there too. The
value types every section uses (:data:`Number`, :func:`check_scalar`, :func:`distinct`) live
here as well.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator
from pydantic_core import PydanticCustomError
from typing_extensions import Annotated

from lrrt_core.suggest import DEFAULT_METHOD, METHODS
from sweeps.naming import format_value, safe_name
from sweeps.validation import fail as _fail

__all__ = ["Number", "check_scalar", "distinct", "OptimizerSpec", "GridSpec", "VerifySpec", "ResourcesSpec",
           "ExportSpec", "ReportSpec", "RESERVED_AXES", "DEFAULT_VERIFY_EPOCHS"]

RESERVED_AXES = ("optimizer", "batch_size", "seed")
"""Axis names the grid owns; ``grid.axes`` may not reuse them."""
DEFAULT_VERIFY_EPOCHS = 2
"""Epochs of each verification training when ``verify:`` gives no length."""

# --------------------------------------------------------------------------- value types


def _number(value: Any) -> Any:
    """Accept ints, floats and numeric strings; refuse booleans.

    PyYAML (YAML 1.1) reads ``1e-6`` without a dot as the *string* ``"1e-6"``; accepting
    numeric strings spares users that trap. ``true`` is not a number here.
    """
    if isinstance(value, bool):
        raise _fail(f"expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise _fail(f"expected a number, got {value!r}") from None
    return value


Number = Annotated[float, BeforeValidator(_number)]

_SCALAR_TYPES = (bool, int, float, str)


def check_scalar(value: Any, where: str) -> None:
    if value is None or isinstance(value, _SCALAR_TYPES):
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(f"{where} must be finite, got {value!r}")
        return
    raise _fail(f"{where} must be a number, string, boolean or null, got {type(value).__name__} {value!r}")


def distinct(values: list[Any], what: str) -> None:
    """Raise naming the later index of the first value that repeats (by its printed form)."""
    seen: dict[str, int] = {}
    for i, v in enumerate(values):
        text = safe_name(format_value(v))
        if text in seen:
            raise _fail(f"duplicate {what} {v!r} (same as entry {seen[text]}); each value must appear once", f"[{i}]")
        seen[text] = i


# --------------------------------------------------------------------------- registries


def _optimizer_registry() -> dict[str, Any]:
    """``lrrt_core.optimizers.OPTIMIZERS``: name -> info with ``.allowed`` (frozenset of kwargs).

    Imported on first use; the module is plain data and does not import Keras.
    """
    from lrrt_core.optimizers import OPTIMIZERS

    return OPTIMIZERS


def _allowed_kwargs(info: Any) -> frozenset[str]:
    allowed = getattr(info, "allowed", None)
    if allowed is None and isinstance(info, dict):
        allowed = info.get("allowed", ())
    return frozenset(allowed or ())


# --------------------------------------------------------------------------- models


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptimizerSpec(_Frozen):
    """One optimizer of the grid.

    Attributes:
        name: a key of ``lrrt_core.optimizers.OPTIMIZERS`` (``sgd``, ``adam``, ...).
        label: how trials and reports name this entry; unique within the grid.
        kwargs: keyword arguments for the optimizer (never the learning rate: the range
            test sets it), each one allowed by the registry for ``name``.
    """

    name: StrictStr
    label: StrictStr | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_entry(cls, entry: Any) -> Any:
        """``"sgd"`` or ``{name, label?, **kwargs}`` (or ``{name, label?, kwargs: {...}}``)."""
        if isinstance(entry, str):
            entry = {"name": entry}
            short = True
        elif isinstance(entry, dict):
            short = False
        else:
            raise _fail(f"an optimizer entry is a name or a mapping with 'name', got {type(entry).__name__} {entry!r}")
        if "name" not in entry:
            raise _fail("an optimizer mapping needs 'name' (e.g. {name: adamw, weight_decay: 0.01})", ".name")
        name = entry["name"]
        if not isinstance(name, str):
            raise _fail(f"expected an optimizer name (string), got {name!r}", ".name")
        registry = _optimizer_registry()
        if name not in registry:
            raise _fail(f"unknown optimizer {name!r}; known: {', '.join(sorted(registry))}", "" if short else ".name")
        rest = {k: v for k, v in entry.items() if k not in ("name", "label")}
        if set(rest) == {"kwargs"} and isinstance(rest["kwargs"], dict):
            kwargs, prefix = dict(rest["kwargs"]), ".kwargs."
        else:
            kwargs, prefix = rest, "."
        allowed = _allowed_kwargs(registry[name])
        for key, value in kwargs.items():
            if key == "learning_rate":
                raise _fail("learning_rate is set by the range test; remove it", f"{prefix}{key}")
            if key not in allowed:
                raise _fail(
                    f"unknown keyword argument {key!r} for optimizer {name!r}; "
                    f"allowed: {', '.join(sorted(allowed)) or 'none'} (or 'label')",
                    f"{prefix}{key}",
                )
            try:
                check_scalar(value, f"optimizer argument {key}")
            except PydanticCustomError as err:
                raise _fail(err.context["message"], f"{prefix}{key}") from None
        out: dict[str, Any] = {"name": name, "kwargs": kwargs}
        if "label" in entry:
            out["label"] = entry["label"]
        return out

    @field_validator("label")
    @classmethod
    def _label_text(cls, label: str | None) -> str | None:
        if label is not None and not safe_name(label).strip("_"):
            raise _fail(f"label {label!r} has no letters or digits")
        return label


class GridSpec(_Frozen):
    """The axes whose product is the list of trials (see ``sweeps.grid.expand``).

    Attributes:
        optimizer: optimizers, labels filled in and unique.
        batch_size: distinct positive batch sizes.
        seed: distinct non-negative seeds (repeats of every configuration); default ``[0]``.
        axes: further axes ``name -> values``, passed to the workload builder as keyword
            arguments; names are Python identifiers other than :data:`RESERVED_AXES`.
    """

    optimizer: list[OptimizerSpec] = Field(min_length=1)
    batch_size: list[StrictInt] = Field(min_length=1)
    seed: list[StrictInt] = Field(default_factory=lambda: [0], min_length=1)
    axes: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("optimizer")
    @classmethod
    def _labels(cls, optimizers: list[OptimizerSpec]) -> list[OptimizerSpec]:
        """Fill missing labels (name, or name+kwargs when a name repeats); refuse duplicates."""
        counts: dict[str, int] = {}
        for o in optimizers:
            counts[o.name] = counts.get(o.name, 0) + 1
        out: list[OptimizerSpec] = []
        seen: dict[str, int] = {}
        for i, o in enumerate(optimizers):
            label = o.label
            if label is None:
                label = o.name
                if counts[o.name] > 1 and o.kwargs:
                    label += "-" + "-".join(f"{k}={format_value(v)}" for k, v in sorted(o.kwargs.items()))
            key = safe_name(label)
            if key in seen:
                raise _fail(
                    f"duplicate optimizer label {label!r} (same as entry {seen[key]}); "
                    "give each entry a unique 'label'",
                    f"[{i}].label",
                )
            seen[key] = i
            out.append(o if o.label == label else o.model_copy(update={"label": label}))
        return out

    @field_validator("batch_size")
    @classmethod
    def _batch_sizes(cls, sizes: list[int]) -> list[int]:
        for i, b in enumerate(sizes):
            if b < 1:
                raise _fail(f"batch sizes must be positive integers, got {b}", f"[{i}]")
        distinct(sizes, "batch size")
        return sizes

    @field_validator("seed")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        for i, s in enumerate(seeds):
            if s < 0:
                raise _fail(f"seeds must be integers >= 0, got {s}", f"[{i}]")
        distinct(seeds, "seed")
        return seeds

    @field_validator("axes", mode="before")
    @classmethod
    def _axes(cls, axes: Any) -> Any:
        if axes is None:
            return {}
        if not isinstance(axes, dict):
            raise _fail(f"expected a mapping of axis name -> list of values, got {type(axes).__name__} {axes!r}")
        for name, values in axes.items():
            sub = f".{name}"
            if not isinstance(name, str) or not name.isidentifier():
                raise _fail(f"axis name {name!r} must be a Python identifier (it is passed as a keyword argument)", sub)
            if name in RESERVED_AXES:
                raise _fail(
                    f"axis name {name!r} is reserved; set it with grid.{name} instead "
                    f"(reserved: {', '.join(RESERVED_AXES)})",
                    sub,
                )
            if not isinstance(values, list):
                raise _fail(f"expected a list of values, got {type(values).__name__} {values!r}", sub)
            if not values:
                raise _fail("an axis needs at least one value", sub)
            for i, v in enumerate(values):
                try:
                    check_scalar(v, "an axis value")
                except PydanticCustomError as err:
                    raise _fail(err.context["message"], f"{sub}[{i}]") from None
            try:
                distinct(values, "value")
            except PydanticCustomError as err:
                raise _fail(err.context["message"], sub + err.context["subkey"]) from None
        return axes


class VerifySpec(_Frozen):
    """The verification stage: short real trainings at rates around each recommendation.

    For every configuration (or the ``top`` ones by range-test rank) and each of its seeds,
    one training per candidate rate ``recommended_lr * c`` (``candidates``), for ``epochs``
    or ``steps``, evaluated on the held-out data. ``metric`` picks the verified rate and
    ranks the configurations: ``val_loss`` (lower is better) or a metric the workload
    reports after training (``accuracy``: higher is better); ``auto`` (the default) is the
    first score the trainings report (:func:`sweeps.verification.resolved_metric`: accuracy,
    AUC, R^2, ...), else ``val_loss``. Where the best candidate is the
    lowest or highest, up to ``extend`` further rounds try one more factor step beyond it
    (never above the range test's divergence point; 0: none).
    """

    epochs: StrictInt | None = Field(default=None, ge=1)
    steps: StrictInt | None = Field(default=None, ge=1)
    candidates: list[Number] = Field(default_factory=lambda: [1 / 3, 1.0, 3.0], min_length=1)
    top: StrictInt | None = Field(default=None, ge=1)
    metric: StrictStr = "auto"
    extend: StrictInt = Field(default=2, ge=0, le=5)

    @model_validator(mode="before")
    @classmethod
    def _one_length(cls, data: Any) -> Any:
        if data is None:
            return {}
        if isinstance(data, dict):
            if data.get("steps") is not None and data.get("epochs") is not None:
                raise _fail("give either steps or epochs, not both", ".epochs")
            if data.get("steps") is None and data.get("epochs") is None:
                data = {**data, "epochs": DEFAULT_VERIFY_EPOCHS}
        return data

    @field_validator("candidates")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        for i, v in enumerate(values):
            if not (math.isfinite(v) and v > 0):
                raise _fail(f"a candidate is a multiple of the recommended rate, > 0 and finite; got {v!r}", f"[{i}]")
        if len(set(values)) != len(values):
            raise _fail(f"candidates must be distinct, got {values!r}")
        return values



class ResourcesSpec(_Frozen):
    """What each trial asks Ray for, and how many trials may run at once.

    ``gpus_per_trial`` is 0, a fraction below 1 (several trials share a GPU; the trainable
    enables TensorFlow memory growth) or a whole number. ``max_concurrent: null`` lets Ray
    run as many trials as the resources allow.
    """

    cpus_per_trial: Number = Field(default=1.0, gt=0)
    gpus_per_trial: Number = Field(default=0.0, ge=0)
    max_concurrent: StrictInt | None = Field(default=None, ge=1)

    @field_validator("cpus_per_trial", "gpus_per_trial")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise _fail(f"must be finite, got {value!r}")
        return value

    @field_validator("gpus_per_trial")
    @classmethod
    def _gpu_share(cls, gpus: float) -> float:
        if gpus > 1 and gpus != int(gpus):
            raise _fail(f"a GPU share above 1 must be a whole number, got {gpus!r}")
        return gpus


class ExportSpec(_Frozen):
    """Where a finished sweep exports its results (``sweeps.export``; ``docs/export.md``).

    Attributes:
        tensorboard: a TensorBoard log directory (relative: to the current directory).
        mlflow: an MLflow tracking URI, or ``true`` for MLflow's own default.
        experiment: the MLflow experiment (default: the sweep's name).
    """

    tensorboard: StrictStr | None = Field(default=None, min_length=1)
    mlflow: StrictStr | Literal[True] | None = None
    experiment: StrictStr | None = Field(default=None, min_length=1)

    @field_validator("mlflow", mode="before")
    @classmethod
    def _uri(cls, value: Any) -> Any:
        if value is not None and value is not True and not (isinstance(value, str) and value):
            raise _fail(f"expected a tracking URI or true (MLflow's default), got {value!r}")
        return value

    @model_validator(mode="after")
    def _a_target(self) -> ExportSpec:
        if self.tensorboard is None and self.mlflow is None:
            raise _fail("names no tracker; give tensorboard: DIR and/or mlflow: URI (or true)")
        return self


class ReportSpec(_Frozen):
    """How the report ranks configurations: by the learning rate of one suggestion method.

    ``rank_by`` is one of :data:`RANK_BY` (``sma`` is accepted and stored as ``sma_rule``),
    so it can be passed straight to ``lrrt_core.suggest.summarize(curve, rank_by=...)``.
    ``export``: the trackers the sweep exports to once its report is written (:class:`ExportSpec`).
    """

    rank_by: StrictStr = DEFAULT_METHOD
    export: ExportSpec | None = None

    @field_validator("rank_by", mode="before")
    @classmethod
    def _alias(cls, value: Any) -> Any:
        from lrrt_core.suggest import method_name

        return method_name(value)

    @field_validator("rank_by")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in METHODS:  # the registry as it is now (a method registered at run time counts)
            raise _fail(f"must be one of {', '.join(repr(m) for m in METHODS)}, got {value!r}")
        return value
