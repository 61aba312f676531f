"""The sweep file: YAML parsed and validated into frozen objects.

A sweep file says *what* to range-test (a workload and a grid of optimizers x batch sizes x
seeds x any further axis), *how* (the range-test settings) and *with what* (resources,
retries). ``load_spec`` turns it into a frozen :class:`SweepSpec`; nothing is launched and
neither Ray nor TensorFlow is imported. Every problem becomes one :class:`SpecError` whose
``str`` is the single line the CLI prints before exiting 2::

    sweeps/configs/bad.yaml: range_test.end_lr: must be greater than start_lr (1e-06), got 1e-07

The format (every key other than ``name``, ``workload`` and ``grid`` has a default)::

    name: quickstart                 # required: names the sweep and its report
    description: "..."               # optional free text (not part of the fingerprint)
    workload: digits_cnn             # a built-in (lrrt_core.workloads.WORKLOADS) or package.module:function
    workload_args: {}                # fixed keyword arguments for the workload builder
    backend: tensorflow              # the Keras backend of every trial: tensorflow | jax | torch
    grid:
      optimizer:                     # non-empty list; an entry is a name or a mapping
        - sgd
        - {name: adamw, weight_decay: 0.01, label: adamw-wd}   # extra keys = optimizer kwargs
      batch_size: [32, 64, 128]      # non-empty list of distinct positive integers
      seed: [0, 1, 2]                # list of distinct integers >= 0; default [0]
      axes: {width: [16, 32]}        # optional further axes, passed to the builder as kwargs
    range_test:
      start_lr: 1.0e-6               # > 0
      end_lr: 10.0                   # > start_lr
      steps: 200                     # >= 2; or `epochs: N`, or `samples: N` (steps = N / batch size,
                                     # the same data for every batch size); one of them; default steps: 200
      ladder: exp                    # exp | linear
      loss: train                    # train | val
      diverge_threshold: 4.0         # > 1, or null to never stop early on a rising loss
      smoothing: 0.98                # EMA beta in [0, 1)
      steps_per_call: null           # steps per compiled call (null: 16 on a CPU, 32 on a GPU)
    resources:
      cpus_per_trial: 1              # > 0, fractions allowed
      gpus_per_trial: 0              # >= 0; a fraction below 1 or a whole number
      max_concurrent: null           # a positive integer, or null: as many as resources allow
    retries: 1                       # >= 0 extra attempts for a failed trial
    report:
      rank_by: centered_min_opt      # centered_min_opt | centered_min_div3 | steepest | valley | minimum | minimum_div10 | sma (= sma_rule)
      export:                        # optional: after the report, export to trackers (docs/export.md)
        tensorboard: runs/tb         # a TensorBoard log directory
        mlflow: true                 # true: MLflow's default tracking URI, or a URI (http://host:5000)
        experiment: null             # MLflow experiment (null: the sweep's name)
    verify:                          # optional: short real trainings around each recommendation
      epochs: 2                      # or steps: N
      candidates: [0.333, 1, 3]      # multiples of the recommended rate
      top: null                      # only the top k configurations (null: all)
      metric: auto                   # auto: the workload's accuracy/AUC/R2 if it reports one, else val_loss
      extend: 2                      # rounds of one more candidate past the edge the best one is at (0: none)

Seeds are always written as a list (``seed: [0, 1, 2]``), never as a count, so the file
shows exactly which seeds run. An optimizer mapping may also give its kwargs explicitly
(``{name: adamw, kwargs: {weight_decay: 0.01}}``); that is the form ``model_dump`` writes.

Optimizer labels name the configurations in trial names and reports, so they must be unique
(after making them file-name safe). An entry without ``label`` is labelled by its name, or,
when several entries share a name, by its name plus its kwargs (``adamw-weight_decay=0.01``).

Example:
    >>> spec = spec_from_dict({
    ...     "name": "demo", "workload": "digits_cnn",
    ...     "grid": {"optimizer": ["sgd", "adam"], "batch_size": [32, 64]},
    ... })
    >>> [o.label for o in spec.grid.optimizer], spec.range_test.steps
    (['sgd', 'adam'], 200)
    >>> spec_from_dict({"name": "demo", "workload": "digits_cnn",
    ...                 "grid": {"optimizer": ["sdg"], "batch_size": [32]}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sweeps.errors.SpecError: <dict>: grid.optimizer[0]: unknown optimizer 'sdg'; known: ...

Where the pieces live: the grid, optimizer, resources, report (and export) and verify
sections in ``sweeps.spec_sections``; pydantic's errors in lrrt's words in
``sweeps.validation``; names and hashes in ``sweeps.naming``; the errors in ``sweeps.errors``.
This module holds the file as a whole (:class:`SweepSpec`, its fingerprint), the
``range_test`` section and the loaders.

References:
    Smith, L. N. (2015). Cyclical Learning Rates for Training Neural Networks. arXiv:1506.01186
    (the range test whose settings ``range_test`` holds).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, StrictInt, StrictStr, ValidationError, ValidationInfo, field_validator, model_validator

from lrrt_core.suggest import METHODS
from sweeps.backends import BACKENDS, DEFAULT_BACKEND, check_available
from sweeps.errors import ROOT_KEY, InvalidInput, SpecError  # noqa: F401  (InvalidInput: sweeps.export imports it from here)
from sweeps.naming import builder_ref, canonical_json
from sweeps.spec_sections import (RESERVED_AXES, GridSpec, Number, OptimizerSpec, ReportSpec, ResourcesSpec,
                                  VerifySpec, _Frozen)
from sweeps.validation import fail as _fail
from sweeps.validation import translate

__all__ = [
    "SpecError",
    "check_backend",
    "OptimizerSpec",
    "GridSpec",
    "RangeTestSpec",
    "ResourcesSpec",
    "ReportSpec",
    "VerifySpec",
    "SweepSpec",
    "load_spec",
    "read_spec_file",
    "spec_from_dict",
    "RESERVED_AXES",
    "RANK_BY",
]

from lrrt_core.settings import DEFAULT_STEPS  # noqa: E402  (steps when the sweep file gives no length)
BUDGET_KEYS = ("steps", "epochs", "samples")

RANK_BY = METHODS
"""Suggestion methods a report can rank by: the names of ``lrrt_core.suggest.METHODS``.

The file may also say ``sma`` (keras-lr-finder's name); it is stored as ``sma_rule``.
"""

_WORKLOAD_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def _workload_registry() -> Any:
    """``lrrt_core.workloads.WORKLOADS`` (built-in names); importable without TensorFlow."""
    from lrrt_core.workloads import WORKLOADS

    return WORKLOADS


def _check_workload(ref: str) -> None:
    """A built-in name, or ``package.module:function`` whose module can be found.

    The module is located with :func:`importlib.util.find_spec`, which does not execute it
    (its parent packages are imported, as Python must to find a submodule); the function
    itself is looked up only when the trial runs, on the worker.
    """
    if ":" not in ref:
        builtins = _workload_registry()
        if ref not in builtins:
            raise _fail(
                f"unknown workload {ref!r}; built-ins: {', '.join(sorted(builtins))}, "
                "or give your own as package.module:function"
            )
        return
    if not _WORKLOAD_REF.match(ref):
        raise _fail(f"malformed workload reference {ref!r}; expected package.module:function")
    module = ref.split(":", 1)[0]
    from lrrt_core.workloads import use_workload_dirs  # the current directory, as the workers see it

    use_workload_dirs()
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise _fail(f"workload module {module!r} not found in the current directory or on this Python path (from {ref!r})")


# --------------------------------------------------------------------------- the file's own sections

from pydantic import create_model, model_serializer  # noqa: E402  (the range_test section is built from RangeTest)

from lrrt_core.settings import FIELDS as _RANGE_TEST_FIELDS  # noqa: E402
from lrrt_core.settings import SettingError  # noqa: E402

_KINDS = {float: Number, int: StrictInt, str: StrictStr}


def _range_test_key(name: str) -> tuple[Any, Any]:
    """The sweep file's key for the :class:`lrrt_core.settings.RangeTest` field ``name``: its
    type (a number, an integer, one of its choices; ``null`` where the field allows ``None``),
    its default and its help text, all read from the field's declaration."""
    field = _RANGE_TEST_FIELDS[name]
    meta = field.metadata
    kind = Literal[meta["choices"]] if meta["choices"] else _KINDS[meta["kind"]]
    return (kind | None if meta["nullable"] else kind), Field(default=field.default, description=meta["help"])


class _RangeTestSection(_Frozen):
    """How each range test runs: one key per :class:`lrrt_core.settings.RangeTest` setting
    (same names, defaults, help texts and rules), plus the sweep's own ``samples``.

    The length of the test is exactly one of ``steps`` (the same for every batch size),
    ``epochs`` (whole passes over the data) or ``samples`` (a budget in training samples:
    ``samples // batch_size`` steps, so every batch size sees the same data — the fair way
    to compare batch sizes); ``steps: 200`` (``RangeTest``'s default) when the file gives
    none. ``steps_per_call`` (default: the device's, 16 on a CPU, 32 on a GPU) does not
    change the curve; set, it is part of the sweep's identity (the fingerprint), left out
    when unset so older sweeps keep their trial ids.
    """

    @model_validator(mode="before")
    @classmethod
    def _one_length(cls, data: Any) -> Any:
        if isinstance(data, dict):
            given = [k for k in BUDGET_KEYS if data.get(k) is not None]
            if len(given) > 1:
                raise _fail(f"give one of steps, epochs or samples, not both {given[0]} and {given[1]}", f".{given[-1]}")
            if not given:
                data = {**data, "steps": DEFAULT_STEPS}
        return data

    @model_validator(mode="after")
    def _bounds(self) -> "_RangeTestSection":
        """``RangeTest``'s own rules, named by this file's key; and one of the file's: a value
        must be finite (``null``, not ``.inf``, never stops early), so it stays JSON."""
        if self.diverge_threshold is not None and not math.isfinite(self.diverge_threshold):
            raise _fail(f"must be finite, or null to never stop early, got {self.diverge_threshold!r}",
                        ".diverge_threshold")
        try:
            self.settings(None)
        except SettingError as err:
            raise _fail(err.reason, f".{err.setting}") from None
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if data.get("steps_per_call") is None:
            data.pop("steps_per_call", None)
        return data

    def steps_for(self, batch_size: int) -> int | None:
        """Steps of a test at ``batch_size``: ``steps``, ``samples // batch_size``, or ``None``
        when the length is given in ``epochs`` (the finder counts the batches)."""
        if self.samples is not None:
            return self.samples // int(batch_size)
        return self.steps

    def budget_text(self) -> str:
        """The length rule in words (``120 steps``, ``2 epoch(s)``, ``7680 samples (steps = samples / batch size)``)."""
        if self.samples is not None:
            return f"{self.samples} samples (steps = samples / batch size)"
        return f"{self.steps} steps" if self.steps is not None else f"{self.epochs} epoch(s)"

    def settings(self, batch_size: int | None):
        """The :class:`lrrt_core.settings.RangeTest` of a trial at ``batch_size`` (the
        length in steps: ``steps`` or ``samples // batch_size``; or in ``epochs``; ``None``:
        the length left out, to check the other settings)."""
        from lrrt_core.settings import RangeTest

        values = {name: getattr(self, name) for name in _RANGE_TEST_FIELDS}
        if batch_size is not None:
            values["steps"] = self.steps_for(batch_size)
        return RangeTest(**values)


_RANGE_TEST_KEYS = {name: _range_test_key(name) for name in _RANGE_TEST_FIELDS}
RangeTestSpec = create_model(
    "RangeTestSpec", __base__=_RangeTestSection, __module__=__name__,
    **{k: v for k, v in _RANGE_TEST_KEYS.items() if k in ("start_lr", "end_lr", "steps", "epochs")},
    samples=(StrictInt | None, Field(default=None, ge=2, description="a budget in training samples: "
                                     "samples // batch_size steps, the same data for every batch size")),
    **{k: v for k, v in _RANGE_TEST_KEYS.items() if k not in ("start_lr", "end_lr", "steps", "epochs")},
)
RangeTestSpec.__doc__ = _RangeTestSection.__doc__


class SweepSpec(_Frozen):
    """A validated sweep file. Frozen: derive changed copies with :meth:`with_resources`.

    Attributes:
        name: the sweep's name.
        description: free text.
        workload: built-in workload name or ``package.module:function``.
        workload_args: fixed keyword arguments for the workload builder.
        backend: the Keras backend every trial runs on (:data:`sweeps.backends.BACKENDS`).
        grid: the axes (:class:`GridSpec`).
        range_test: the range-test settings (:class:`RangeTestSpec`).
        resources: per-trial resources (:class:`ResourcesSpec`).
        retries: extra attempts for a failed trial (Ray's ``max_failures``).
        report: report settings (:class:`ReportSpec`).
        verify: the verification stage (:class:`VerifySpec`), or ``None`` for none.
        source: the file it was read from (``None`` for a dict); not part of the fingerprint.
    """

    name: StrictStr = Field(min_length=1)
    description: StrictStr = ""
    workload: StrictStr
    workload_args: dict[str, Any] = Field(default_factory=dict)
    backend: Literal[BACKENDS] = DEFAULT_BACKEND
    grid: GridSpec
    range_test: RangeTestSpec = Field(default_factory=RangeTestSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    retries: StrictInt = Field(default=1, ge=0)
    report: ReportSpec = Field(default_factory=ReportSpec)
    verify: VerifySpec | None = None
    source: Path | None = None

    @field_validator("workload")
    @classmethod
    def _workload(cls, ref: str, info: ValidationInfo) -> str:
        builder = (info.context or {}).get("builder")
        if builder is None:
            _check_workload(ref)
        elif ref != builder_ref(builder):
            raise _fail(f"{ref!r} does not name the builder given ({builder_ref(builder)!r})")
        return ref

    @field_validator("workload_args", mode="before")
    @classmethod
    def _workload_args(cls, args: Any) -> Any:
        if args is None:
            return {}
        if isinstance(args, dict):
            for key in args:
                if not isinstance(key, str) or not key.isidentifier():
                    raise _fail(f"{key!r} must be a Python identifier (it is passed as a keyword argument)", f".{key}")
                if key in RESERVED_AXES:
                    raise _fail(f"{key!r} is set by the grid, not by workload_args", f".{key}")
        return args

    @model_validator(mode="after")
    def _axes_vs_args(self) -> SweepSpec:
        for name in self.grid.axes:
            if name in self.workload_args:
                raise _fail(
                    f"axis {name!r} is also in workload_args; keep it in one place", f".grid.axes.{name}"
                )
        if self.range_test.samples is not None:
            largest = max(self.grid.batch_size)
            if self.range_test.samples // largest < 2:
                raise _fail(f"{self.range_test.samples} samples give fewer than 2 steps at batch size {largest}; "
                            f"use samples >= {2 * largest}", ".range_test.samples")
        try:
            canonical_json(self.model_dump(mode="json", exclude={"source"}))
        except (TypeError, ValueError) as err:
            raise _fail(f"the spec must be plain JSON-like data: {err}", ".workload_args") from None
        return self

    @property
    def fixed_steps_over_batch_sizes(self) -> bool:
        """True when batch sizes are compared at a fixed step count (larger batches see more data)."""
        return self.range_test.steps is not None and len(self.grid.batch_size) > 1

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the canonical JSON of what defines the trials and their results.

        Included: ``name``, ``workload``, ``workload_args``, ``backend``, ``grid``, ``range_test``.
        Excluded: ``description``, ``resources``, ``retries``, ``report``, ``verify`` and
        ``source``: they change where, how often or how the results are shown, or what is
        done after the range tests, not the range tests' results. So a sweep resumed with
        other ``--cpus-per-trial``, a different ``rank_by`` or a ``verify:`` section added is
        the same sweep, and trial ids (``sweeps.grid``) stay the same. An unset ``samples``
        is left out, so sweeps written before it existed keep their ids; so is the default
        ``backend`` (tensorflow): another backend gives slightly different numbers, hence
        another sweep, but files without the key keep their ids.
        """
        data = self.model_dump(mode="json", exclude={"description", "resources", "retries", "report", "verify", "source"})
        if data["range_test"].get("samples") is None:
            data["range_test"].pop("samples", None)
        if data.get("backend") == DEFAULT_BACKEND:
            data.pop("backend")
        return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()

    def with_resources(
        self,
        cpus_per_trial: float | None = None,
        gpus_per_trial: float | None = None,
        max_concurrent: int | None = None,
    ) -> SweepSpec:
        """A copy with command-line resource overrides applied (``None`` keeps the file's value).

        The overrides are validated like the file; an invalid one raises :class:`SpecError`
        naming ``resources.<key>``. The fingerprint does not change.

        Example:
            >>> s = spec_from_dict({"name": "d", "workload": "digits_cnn",
            ...                     "grid": {"optimizer": ["sgd"], "batch_size": [32]}})
            >>> s.with_resources(gpus_per_trial=0.5).resources.gpus_per_trial
            0.5
        """
        current = self.resources.model_dump()
        updates = {"cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial, "max_concurrent": max_concurrent}
        current.update({k: v for k, v in updates.items() if v is not None})
        file = str(self.source) if self.source is not None else "<dict>"
        try:
            resources = ResourcesSpec.model_validate(current)
        except ValidationError as err:
            key, message = translate(err, ResourcesSpec, prefix=("resources",))
            raise SpecError(file, key, message + " (command-line override)") from None
        return self.model_copy(update={"resources": resources})


# --------------------------------------------------------------------------- loading


def spec_from_dict(data: Any, source: str | Path | None = "<dict>", *, builder: Any = None) -> SweepSpec:
    """Validate already-parsed data (e.g. ``yaml.safe_load`` output) into a :class:`SweepSpec`.

    Args:
        data: the sweep as a mapping, in the format of this module's docstring.
        source: what to call it in errors; a real path (not ``"<dict>"``) is also stored as
            ``spec.source``. A ``source`` key in ``data`` (as in ``spec.model_dump()``, so a
            manifest's spec round-trips) is kept unless a real path is given here.
        builder: the workload builder as a Python callable; ``data["workload"]`` must then
            be :func:`builder_ref` of it (the Python API fills it in).

    Raises:
        SpecError: the first problem found, naming ``source`` and the dotted key.
    """
    file = "<dict>" if source is None else str(source)
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise SpecError(file, ROOT_KEY, f"a sweep file must be a YAML mapping (name:, workload:, grid:, ...), this is {kind}")
    payload = dict(data)
    if source is not None and file != "<dict>":
        payload["source"] = Path(file)
    try:
        return SweepSpec.model_validate(payload, context={"builder": builder})
    except ValidationError as err:
        raise SpecError(file, *translate(err, SweepSpec)) from None


def check_backend(spec: SweepSpec, find_spec: Any = None) -> None:
    """Refuse, before anything starts, a sweep whose ``backend`` is not installed here.

    Kept out of validation proper, so that ``lrrt report`` and ``sweeps.load`` read a JAX
    sweep's results on a machine without JAX; ``lrrt validate``, ``lrrt sweep``, ``lrrt
    verify`` and the Python API call it. The driver must have the package: it is the
    environment the workers of a local Ray inherit, and a cluster's nodes run the same image.

    Raises:
        SpecError: naming the file, the key ``backend`` and the install command.

    Example:
        >>> s = spec_from_dict({"name": "d", "workload": "digits_cnn", "backend": "jax",
        ...                     "grid": {"optimizer": ["sgd"], "batch_size": [32]}})
        >>> check_backend(s, find_spec=lambda name: None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        sweeps.errors.SpecError: <dict>: backend: the jax backend needs jax and jaxlib, which ... pip install "lrrt[jax]" ...
    """
    problem = check_available(spec.backend, find_spec)
    if problem:
        raise SpecError(spec.source if spec.source is not None else "<dict>", "backend", problem)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file.

    Args:
        path: a YAML file (see this module's docstring for the format).

    Returns:
        The frozen :class:`SweepSpec`, with ``source`` set to ``path``.

    Raises:
        SpecError: the file is missing or unreadable, is not valid YAML, is not a mapping,
            or fails validation. ``str(err)`` is the one line to show the user.

    Example:
        >>> from pathlib import Path
        >>> import sweeps
        >>> spec = load_spec(Path(sweeps.__file__).parent / "configs" / "quickstart.yaml")
        >>> spec.workload
        'digits_cnn'
    """
    path = Path(path)
    return spec_from_dict(read_spec_file(path), source=path)


def read_spec_file(path: str | Path) -> dict:
    """A sweep file's YAML as a mapping, not validated yet (:func:`load_spec` validates it).

    Raises:
        SpecError: the file is missing or unreadable, not valid YAML, or holds a ``source`` key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(path, ROOT_KEY, "no such file") from None
    except IsADirectoryError:
        raise SpecError(path, ROOT_KEY, "is a directory, not a sweep file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(path, ROOT_KEY, f"cannot read: {err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise SpecError(path, ROOT_KEY, f"YAML syntax error{where}: {problem}") from None
    if isinstance(data, dict) and "source" in data:
        allowed = ", ".join(k for k in SweepSpec.model_fields if k != "source")
        raise SpecError(path, "source", f"unknown key; allowed: {allowed}")
    return data
