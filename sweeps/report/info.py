"""What a report says, computed once from a reduction: :class:`ReportInfo` (computing only).

Compute, then render (STYLE.md #1, #16): :func:`build_report` turns a
:class:`sweeps.reduce.Reduction` into a :class:`ReportInfo` — the seed bands (once), the
focus configurations, one :class:`~sweeps.report.recommend.Recommendation` per optimizer,
the per-axis effects, the notes, and every section of the page as typed blocks
(:mod:`sweeps.report.sections`, :mod:`sweeps.report.ranking_table`). The figures
(:mod:`sweeps.report.figures`), the HTML page (:mod:`sweeps.report.html`) and the Markdown
file (:mod:`sweeps.report.markdown`) only draw it; tests can assert on it without rendering.

All text here is plain and unescaped: each renderer escapes it for its medium.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from lrrt_core.suggest import short_ladder
from sweeps.report.bands import seed_bands
from sweeps.report.blocks import Section
from sweeps.report.ranking_table import ranking_section
from sweeps.report.recommend import Recommendation, recommendations
from sweeps.report.sections import (effects_section, failed_section, missing_section, plots_section, recipes_section,
                                    recommendations_section, scaling_section, verification_section)

__all__ = ["FOCUS_TOP", "ReportInfo", "build_report", "focus_configs", "focus_note", "method_note", "budget_note",
           "range_note", "status_banner", "keras_backend", "plot_dict"]

#: how many best-ranked configurations the figures show (plus the best of each optimizer).
FOCUS_TOP = 8


def focus_configs(red, top: int = FOCUS_TOP) -> list[str]:
    """The configurations the figures show: the ``top`` best-ranked (with an ok seed) plus the
    best of each optimizer and of each batch size (so every batch-size panel has a line), in
    rank order."""
    r = red.ranking
    if r.empty:
        return []
    r = r[r["n_ok"] > 0].sort_values("rank")
    keep = (set(r["config"].head(top)) | set(r.drop_duplicates("optimizer")["config"])
            | set(r.drop_duplicates("batch_size")["config"]))
    return [str(c) for c in r["config"] if c in keep]


def focus_note(red, shown: int, what: str = "configurations") -> str:
    """``"top 9 of 600 configurations shown"`` ("" when all are shown)."""
    total = int((red.ranking["n_ok"] > 0).sum()) if not red.ranking.empty else 0
    return f"top {shown} of {total} {what} shown" if shown < total else ""


def method_note(red) -> str:
    """Which method gives the suggested learning rate, in words."""
    from lrrt_core.suggest import DEFAULT_METHOD, METHODS

    described = METHODS[red.rank_by].description if red.rank_by in METHODS else red.rank_by
    text = f"Suggested learning rate: {red.rank_by}, {described}."
    if red.rank_by != DEFAULT_METHOD:
        text += f" (lrrt's default is {DEFAULT_METHOD}.)"
    return text


def budget_note(red) -> str:
    """The range-test budget rule in words, with warnings: batch sizes compared at a fixed step
    count, ranks given within the values of an axis that changes the loss's scale
    (:func:`sweeps.ranking.group_note`), tests that never diverged (:func:`range_note`)."""
    from sweeps.ranking import group_note

    notes = [n for n in (_budget_rule(red), group_note(getattr(red, "rank_groups", {})), range_note(red)) if n]
    return " ".join(notes)


def range_note(red) -> str:
    """A warning when ok range tests ran their whole ladder without diverging and may have
    stopped short (the per-curve rule: :func:`lrrt_core.suggest.short_ladder`), naming the
    setting to change."""
    t = red.trials
    done = t[(t["status"] == "ok") & (t["stop_reason"] == "completed")] if len(t) else t
    if done.empty:
        return ""
    curves = red.curves[red.curves["trial"].isin(set(done["trial_id"]))].groupby("trial", sort=False)
    why = [short_ladder(c["lr"].to_numpy(dtype=float), c["smoothed_loss"].to_numpy(dtype=float)) for _, c in curves]
    short = [w for w in why if w]
    if not short:
        return ""
    end_lr = ((red.manifest.spec if red.manifest is not None else {}).get("range_test") or {}).get("end_lr")
    falling = short.count("still falling")
    where = f"end_lr = {float(end_lr):g}" if end_lr is not None else "the end of their ladder"
    return (f"Warning: {len(short)} of {int((t['status'] == 'ok').sum())} range tests ran to {where} "
            "without diverging or clearly turning up" + (f" ({falling} with the loss still falling there)" if falling
                                                         else "")
            + ": their suggested rates may be too low. Raise range_test.end_lr.")


def _budget_rule(red) -> str:
    """The range-test budget rule in words, with a warning when batch sizes are compared at a
    fixed step count ("" when the manifest does not say)."""
    spec = red.manifest.spec if red.manifest is not None else {}
    rt = spec.get("range_test") or {}
    sizes = sorted({int(b) for b in red.trials["batch_size"].dropna()}) if len(red.trials) else []
    if rt.get("samples") is not None:
        return (f"Range-test budget: {rt['samples']} training samples per test (steps = samples / batch size), "
                "so every batch size sees the same data.")
    if rt.get("epochs") is not None:
        return f"Range-test budget: {rt['epochs']} epoch(s) per test, the same data for every batch size."
    if rt.get("steps") is None:
        return ""
    text = f"Range-test budget: {rt['steps']} steps per test."
    if len(sizes) > 1:
        text += (f" Warning: batch sizes are compared at a fixed step count, so a batch of {sizes[-1]} sees "
                 f"{sizes[-1] / sizes[0]:g}x the data a batch of {sizes[0]} sees, which favours larger batches in "
                 "the ranking by minimum loss. Give range_test: {samples: N} to compare them at an equal sample budget.")
    return text


def status_banner(red) -> str:
    """Plain-text note on partial results ("" when complete)."""
    notes = []
    if red.n_missing:
        notes.append(f"{red.n_missing} of {red.n_trials} trials have no result yet (sweep still running or interrupted)")
    if red.n_failed:
        notes.append(f"{red.n_failed} trial(s) failed")
    if red.corrupt:
        notes.append(f"{len(red.corrupt)} unreadable record file(s) skipped")
    return ("Partial results: " + "; ".join(notes) + ". Rankings use the successful seeds only.") if notes else ""


@dataclasses.dataclass(frozen=True)
class ReportInfo:
    """Everything a report shows, computed once (:func:`build_report`); renderers only draw it.

    Attributes:
        reduction: the ``sweeps.reduce.Reduction`` (its tables feed the figures).
        name, out_dir, rank_by, axes: the sweep's name, directory, suggestion method, axis columns.
        backend: the Keras backend its trials ran on.
        summary: ``"12 trials: 10 ok, 1 failed, 1 missing"``. banner: the partial-results note
            (``""`` when complete). method_note, budget_note: the notes under the title.
        bands, change_bands: seed bands of the smoothed loss and of the loss change.
        focus: the configurations the figures draw (:func:`focus_configs`).
        recommendations: one per optimizer. effects: ``sweeps.effects.AxisEffect`` per axis.
        sections: every section after the head, in page order.
    """

    reduction: Any
    name: str
    out_dir: Path
    rank_by: str
    backend: str
    axes: list[str]
    summary: str
    banner: str
    method_note: str
    budget_note: str
    bands: pd.DataFrame
    change_bands: pd.DataFrame
    focus: list[str]
    recommendations: list[Recommendation]
    effects: list
    sections: list[Section]

    def section(self, title: str) -> Section:
        """The section whose title starts with ``title``."""
        return next(s for s in self.sections if s.title.startswith(title))


def keras_backend(red) -> str:
    """The Keras backend the sweep's trials ran on (its file's ``backend:``; tensorflow by default)."""
    manifest = red.manifest
    spec = (manifest.spec if manifest is not None else None) or {}
    return str(spec.get("backend") or "tensorflow")


def build_report(red) -> ReportInfo:
    """Compute the report of a reduction: bands once, then recommendations, effects, sections."""
    from sweeps.effects import axis_effects

    bands = seed_bands(red)
    recs = recommendations(red, bands)
    effects = axis_effects(red)
    extra = [effects_section(red, effects), verification_section(red), recipes_section(red)]
    sections = [recommendations_section(red, recs), ranking_section(red), *[s for s in extra if s is not None],
                plots_section(), scaling_section(red), failed_section(red), missing_section(red)]
    return ReportInfo(reduction=red, name=red.name, out_dir=red.out_dir, rank_by=red.rank_by,
                      backend=keras_backend(red), axes=list(red.axes),
                      summary=red.summary_line(), banner=status_banner(red), method_note=method_note(red),
                      budget_note=budget_note(red), bands=bands, change_bands=seed_bands(red, "loss_change"),
                      focus=focus_configs(red), recommendations=recs, effects=effects, sections=sections)


def plot_dict(plot_paths) -> dict[str, Path]:
    """``{stem: path}`` from a dict of paths or a list of them (``None``: no figures)."""
    if plot_paths is None:
        return {}
    if isinstance(plot_paths, dict):
        return {str(k): Path(v) for k, v in plot_paths.items()}
    return {Path(p).stem: Path(p) for p in plot_paths}
