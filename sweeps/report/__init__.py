"""The report of a reduced sweep: compute it once, then draw it per medium.

A package of one-job modules (STYLE.md #1, #16):

:mod:`~sweeps.report.bands`
    seed bands of each configuration on a common log-lr grid (computing).
:mod:`~sweeps.report.info`
    :func:`build_report` (``Reduction -> ReportInfo``): bands once, recommendations, per-axis
    effects, notes and every section as data (computing), from
:mod:`~sweeps.report.recommend`, :mod:`~sweeps.report.sections`, :mod:`~sweeps.report.ranking_table`
    one recommendation per optimizer; each section as typed blocks
    (:mod:`~sweeps.report.blocks`); the ranking table's one layout (computing).
:mod:`~sweeps.report.cells`
    how numbers read as text, everywhere.
:mod:`~sweeps.report.figures`
    the matplotlib figures of a ``ReportInfo`` and :func:`make_plots` (drawing).
:mod:`~sweeps.report.html`, :mod:`~sweeps.report.markdown`
    the self-contained HTML page, the notebook fragment and the Markdown file (rendering).
:mod:`~sweeps.report.writer`
    :func:`write_outputs` / :func:`rebuild`: every output file, atomically (writing).

Every string that comes from a sweep file is escaped by the renderer of its medium. No Ray,
no TensorFlow; matplotlib enters through :mod:`lrrt_core.plot` and ``figures``.

Example:
    >>> red = sweeps.reduce.reduce_dir("runs/quickstart")          # doctest: +SKIP
    >>> info = build_report(red)                                     # doctest: +SKIP
    >>> info.recommendations[0].suggested_lr, info.section("Ranking")   # doctest: +SKIP
"""

from __future__ import annotations

from sweeps.report.bands import seed_bands, series_label
from sweeps.report.figures import (FIGURES, fig_axis_effects, fig_loss_change, fig_loss_vs_lr, fig_lr_scaling,
                                   fig_min_loss_heatmap, fig_verification, make_plots)
from sweeps.report.html import TABLE_SCRIPT, TABLE_SCRIPT_TAG, render_html, render_notebook
from sweeps.report.blocks import Section, Table
from sweeps.report.info import FOCUS_TOP, ReportInfo, budget_note, build_report, focus_configs, method_note
from sweeps.report.ranking_table import RANKING_TOP
from sweeps.report.recommend import Recommendation, falling_range, recommendations
from sweeps.report.sections import CAPTIONS, PLOT_NAMES, verification_verdict
from sweeps.report.markdown import md_escape, render_markdown
from sweeps.report.writer import rebuild, write_outputs

__all__ = [
    "build_report", "ReportInfo", "Section", "Table", "Recommendation", "write_outputs", "rebuild",
    "seed_bands", "series_label", "recommendations", "falling_range", "focus_configs", "method_note", "budget_note",
    "verification_verdict", "FIGURES", "CAPTIONS", "PLOT_NAMES", "FOCUS_TOP", "RANKING_TOP", "make_plots",
    "fig_loss_vs_lr", "fig_loss_change", "fig_lr_scaling", "fig_min_loss_heatmap", "fig_axis_effects",
    "fig_verification", "render_html", "render_markdown", "render_notebook", "md_escape", "TABLE_SCRIPT",
    "TABLE_SCRIPT_TAG",
]
