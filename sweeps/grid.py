"""Spec -> the list of trials: deterministic ids, readable names. Decides; runs nothing.

``expand`` takes the product of the grid's axes in a fixed order — optimizer-major, then
batch size, then the extra axes (in the order the file lists them), then seed — so the
same spec always gives the same list. Each :class:`Trial` carries:

- ``trial_id``: the first 12 hex digits of SHA-1 over the canonical JSON of
  ``[spec.fingerprint(), trial.params()]``. Stable across runs and machines (resume finds
  finished trials by it); different whenever anything that defines the trial's result
  changes (the range-test settings, the workload, the sweep's name, ...), so results of
  one sweep are never taken for another's.
- ``name``: ``{label}-bs{batch}[-{axis}{value}...]-s{seed}``, e.g. ``adam-bs128-s0`` or
  ``adam-bs128-width32-s0``, restricted to ``[A-Za-z0-9._=-]``.
- ``config``: the name without the seed part (``adam-bs128``): trials that differ only in
  their seed share a config, and the report aggregates over them.

``format_grid`` renders what ``lrrt validate FILE`` prints. Neither function imports Ray
(STYLE.md #5: keras-tuner's ``Oracle`` decides trials, the tuner runs them).

Example:
    >>> from sweeps.spec import spec_from_dict
    >>> spec = spec_from_dict({"name": "demo", "workload": "digits_cnn",
    ...     "grid": {"optimizer": ["sgd", "adam"], "batch_size": [32, 64],
    ...              "axes": {"width": [16]}}})
    >>> [t.name for t in expand(spec)]
    ['sgd-bs32-width16-s0', 'sgd-bs64-width16-s0', 'adam-bs32-width16-s0', 'adam-bs64-width16-s0']
    >>> expand(spec)[0].config
    'sgd-bs32-width16'
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from sweeps.naming import format_value, safe_name, short_hash
from sweeps.spec import SpecError, SweepSpec

__all__ = ["Trial", "SweepPlan", "plan_sweep", "expand", "format_grid", "trial_id"]


@dataclass(frozen=True)
class Trial:
    """One range test of the sweep: one optimizer, batch size, seed and extra-axis values.

    Attributes:
        trial_id: 12 hex digits, stable for the same spec (see the module docstring).
        name: readable unique name, e.g. ``adam-bs128-width32-s0``.
        config: ``name`` without the seed part; shared by the seeds of one configuration.
        optimizer: the optimizer's label (unique in the grid).
        optimizer_name: the registry name (``lrrt_core.optimizers.OPTIMIZERS`` key).
        optimizer_kwargs: keyword arguments for the optimizer (not the learning rate).
        batch_size: the batch size.
        seed: the seed the workload (model init, data order) is built from.
        axes: extra axis values, passed to the workload builder as keyword arguments.
    """

    trial_id: str
    name: str
    config: str
    optimizer: str
    optimizer_name: str
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 0
    seed: int = 0
    axes: dict[str, Any] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        """The trial's parameters as plain JSON data (the ``params`` of a trial record).

        Keys: ``optimizer, optimizer_name, optimizer_kwargs, batch_size, seed, axes``.
        Fresh dicts every call, so callers may modify the result.
        """
        return {
            "optimizer": self.optimizer,
            "optimizer_name": self.optimizer_name,
            "optimizer_kwargs": dict(self.optimizer_kwargs),
            "batch_size": self.batch_size,
            "seed": self.seed,
            "axes": dict(self.axes),
        }


def trial_id(fingerprint: str, params: dict[str, Any]) -> str:
    """First 12 hex digits of SHA-1 over the canonical JSON of ``[fingerprint, params]``."""
    return short_hash([fingerprint, params])


@dataclass(frozen=True)
class SweepPlan:
    """A validated spec and what follows from it, computed once per command: the sweep's
    ``fingerprint`` (``spec.fingerprint()``: what names it for resume and hashes into every
    trial id) and its ``trials`` (:func:`expand`)."""

    spec: SweepSpec
    fingerprint: str
    trials: list[Trial]


def plan_sweep(spec: SweepSpec) -> SweepPlan:
    """The :class:`SweepPlan` of ``spec``: its fingerprint, hashed once, and its trials."""
    fingerprint = spec.fingerprint()
    return SweepPlan(spec, fingerprint, expand(spec, fingerprint))


def expand(spec: SweepSpec, fingerprint: str | None = None) -> list[Trial]:
    """All trials of ``spec``, optimizer-major, then batch size, then extra axes, then seed.

    Args:
        spec: a validated sweep.
        fingerprint: ``spec.fingerprint()`` when the caller has it (:func:`plan_sweep`).

    Returns:
        ``len == len(optimizer) * len(batch_size) * prod(len(axis)) * len(seed)`` trials,
        with unique ids and names.

    Raises:
        SpecError: two trials would get the same name (only possible with contrived
            labels or string axis values that mimic the name pattern; rename one).
    """
    fingerprint = spec.fingerprint() if fingerprint is None else fingerprint
    grid = spec.grid
    axis_names = list(grid.axes)
    trials: list[Trial] = []
    names: dict[str, int] = {}
    for opt, batch_size, values, seed in itertools.product(
        grid.optimizer, grid.batch_size, itertools.product(*(grid.axes[a] for a in axis_names)), grid.seed
    ):
        axes = dict(zip(axis_names, values))
        parts = [opt.label or opt.name, f"bs{batch_size}"]
        parts += [f"{a}{format_value(v)}" for a, v in axes.items()]
        config = safe_name("-".join(parts))
        name = f"{config}-s{seed}"
        trial = Trial(
            trial_id="",
            name=name,
            config=config,
            optimizer=opt.label or opt.name,
            optimizer_name=opt.name,
            optimizer_kwargs=dict(opt.kwargs),
            batch_size=batch_size,
            seed=seed,
            axes=axes,
        )
        if name in names:
            raise SpecError(
                spec.source if spec.source is not None else "<dict>",
                "grid",
                f"trials {names[name]} and {len(trials)} would both be named {name!r}; "
                "change an optimizer label or an axis value",
            )
        names[name] = len(trials)
        trials.append(_with_id(trial, fingerprint))
    return trials


def _with_id(trial: Trial, fingerprint: str) -> Trial:
    return Trial(**{**trial.__dict__, "trial_id": trial_id(fingerprint, trial.params())})


# --------------------------------------------------------------------------- rendering


def _kwargs_text(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in sorted(kwargs.items()))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return lines


def _num(x: float) -> str:
    return format_value(int(x)) if float(x).is_integer() else format_value(float(x))


def format_grid(spec: SweepSpec, trials: list[Trial], fingerprint: str | None = None) -> str:
    """What ``lrrt validate FILE`` prints: the sweep, its trials and the resources asked for.

    Args:
        spec: the validated sweep.
        trials: ``expand(spec)``.
        fingerprint: ``spec.fingerprint()`` when the caller has it (a :class:`SweepPlan`).

    Returns:
        Multi-line text (no trailing newline): header (name, file, workload, Keras backend,
        range-test and report settings), one table row per trial (name, id, optimizer and kwargs, batch
        size, seed, extra axes), then the trial count and the resources: CPUs and GPUs per
        trial, totals over all trials, max concurrent trials, retries. Launches nothing.
    """
    rt, res = spec.range_test, spec.resources
    length = rt.budget_text()
    diverge = "off" if rt.diverge_threshold is None else f"{format_value(rt.diverge_threshold)}x best smoothed loss"
    lines = [f"sweep     {spec.name}"]
    if spec.description:
        lines.append(f"          {spec.description}")
    if spec.source is not None:
        lines.append(f"file      {spec.source}")
    lines.append(f"spec hash {(fingerprint or spec.fingerprint())[:16]}")
    workload = spec.workload + (f" ({_kwargs_text(spec.workload_args)})" if spec.workload_args else "")
    lines.append(f"workload  {workload}")
    lines.append(f"backend   {spec.backend} (Keras)")
    lines.append(
        f"range     {format_value(rt.start_lr)} -> {format_value(rt.end_lr)}, {rt.ladder} ladder, {length}, "
        f"loss={rt.loss}, stop at {diverge}, EMA smoothing {format_value(rt.smoothing)}"
    )
    if spec.fixed_steps_over_batch_sizes:
        lines.append("          warning: batch sizes compared at a fixed step count (larger batches see more data); "
                     "range_test: {samples: N} compares them at an equal sample budget")
    lines.append(f"rank by   {spec.report.rank_by}")
    if spec.verify is not None:
        v = spec.verify
        budget = f"{v.epochs} epoch(s)" if v.epochs is not None else f"{v.steps} steps"
        which = "every configuration" if v.top is None else f"the top {v.top} configurations"
        factors = ", ".join(f"{c:.3g}" for c in v.candidates)
        lines.append(f"verify    {which}: {budget} at {factors} x the "
                     f"recommended rate, per seed; best held-out {v.metric}")
    lines.append("")

    axis_names = list(spec.grid.axes)
    header = ["#", "trial", "id", "optimizer", "kwargs", "batch", "seed"] + (["axes"] if axis_names else [])
    rows = []
    for i, t in enumerate(trials, 1):
        opt = t.optimizer if t.optimizer == t.optimizer_name else f"{t.optimizer} ({t.optimizer_name})"
        row = [str(i), t.name, t.trial_id, opt, _kwargs_text(t.optimizer_kwargs) or "-", str(t.batch_size), str(t.seed)]
        if axis_names:
            row.append(_kwargs_text(t.axes) or "-")
        rows.append(row)
    lines += _table(header, rows)
    lines.append("")

    n = len(trials)
    configs = len({t.config for t in trials})
    concurrent = "as many as resources allow" if res.max_concurrent is None else str(res.max_concurrent)
    lines.append(f"trials    {n} ({configs} configurations x {len(spec.grid.seed)} seed(s))")
    lines.append(
        f"resources {_num(res.cpus_per_trial)} CPU(s) and {_num(res.gpus_per_trial)} GPU(s) per trial; "
        f"all trials together: {_num(res.cpus_per_trial * n)} CPUs, {_num(res.gpus_per_trial * n)} GPUs"
    )
    lines.append(f"limits    max concurrent trials: {concurrent}; retries per failed trial: {spec.retries}")
    return "\n".join(lines)
