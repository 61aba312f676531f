"""Write a sweep's outputs into its directory, every file atomically (writing only).

:func:`write_outputs` writes what a :class:`~sweeps.reduce.Reduction` and its
:class:`~sweeps.report.info.ReportInfo` hold: ``trials.csv``, ``ranking.csv``,
``curves.parquet``, ``verify.csv`` (when verification ran), ``recipes.json``,
``plots/*.png``, ``report.html`` (self-contained) and ``report.md``. Tables are written
first, so a plotting problem never costs the tables; a figure that fails is logged and left
out of the report. :func:`rebuild` is ``lrrt report DIR``: read, reduce, write.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sweeps import store
from sweeps.report.figures import make_plots
from sweeps.report.html import render_html
from sweeps.report.info import ReportInfo, build_report
from sweeps.report.markdown import render_markdown

logger = logging.getLogger(__name__)

__all__ = ["write_outputs", "rebuild"]


def write_outputs(red) -> ReportInfo:
    """Write every output of the reduction ``red`` into ``red.out_dir``; return the report drawn."""
    from sweeps.recipes import recipes

    out = Path(red.out_dir)
    store.atomic_write_frame(red.trials, out / "trials.csv")
    store.atomic_write_frame(red.ranking, out / "ranking.csv")
    store.atomic_write_frame(red.curves, out / "curves.parquet")
    if red.verification.ran:
        store.atomic_write_frame(red.verification.rows, out / "verify.csv")
    store.atomic_write_json(out / "recipes.json", {"method": red.rank_by, "recipes": recipes(red.ranking, red.rank_by)})
    info = build_report(red)
    plot_paths = make_plots(info, out / "plots")
    store.atomic_write_text(out / "report.html", render_html(info, plot_paths))
    store.atomic_write_text(out / "report.md", render_markdown(info, plot_paths))
    logger.info("%s: wrote report (%s)", out, red.summary_line())
    return info


def rebuild(out_dir: str | os.PathLike, rank_by: str | None = None):
    """Rebuild all outputs of a sweep directory from its stored results (``lrrt report DIR``,
    and the end of ``lrrt sweep`` / ``lrrt verify``); return the ``Reduction``. ``rank_by``:
    a suggestion method or an alias of one (``sma``); ``None``: the sweep file's.

    Safe on a sweep that is still running or was interrupted: only complete (atomically
    written) records are read; planned trials without a record are listed as missing in
    every output; corrupt records are skipped with a warning. Running it again after more
    trials finished replaces every output whole.

    Raises:
        FileNotFoundError: ``out_dir`` does not exist or is not a sweep directory.
    """
    from lrrt_core.suggest import method_name
    from sweeps.reduce import reduce_dir

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"{out_dir}: no such directory")
    red = reduce_dir(out_dir, rank_by=method_name(rank_by))
    write_outputs(red)
    if red.n_missing:
        logger.warning("%s: %d of %d trials have no result yet (running or interrupted sweep)", out_dir, red.n_missing,
                       red.n_trials)
    return red
