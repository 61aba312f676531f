"""The ranking table, laid out once: its columns, their text, and the report's Ranking section.

:func:`ranking_columns` declares every column (header, the text of a cell, numeric or not,
shown on the terminal or not); the report's table, the notebook view (which shows the
report's section) and ``lrrt``'s closing printout (:func:`ranking_cells` with
``terminal=True``: the columns the configuration's name does not already say) are drawn
from it. Configurations without a rank (no finished trial) are listed apart, never ranked.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import pandas as pd

from sweeps.report.blocks import Paragraph, Section, Table
from sweeps.report.cells import fmt_int, fmt_loss, fmt_lr, fmt_value, is_nan

__all__ = ["Column", "ranking_columns", "ranking_cells", "ranking_section", "rank_groups", "rest_summary",
           "RANKING_TOP", "UNRANKED_NOTE"]

#: ranking rows shown before the rest (the rest in a collapsed section).
RANKING_TOP = 20
#: what the report says about configurations with an empty rank.
UNRANKED_NOTE = ("configurations with no finished trial (missing or failed), so no rank; they are listed here, "
                 "apart from the ranking, until a trial of theirs finishes.")


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of the ranking table.

    Attributes:
        header: its heading. cell: a ranking row (``pandas.Series``) -> its text.
        numeric: right-aligned. terminal: also in ``lrrt``'s printout (the optimizer, batch
            size and axis columns are not: the configuration's name says them).
    """

    header: str
    cell: Callable[[Any], str]
    numeric: bool = False
    terminal: bool = True


def _loss_cell(r) -> str:
    text = fmt_loss(r["min_loss_mean"])
    return text + (f" ± {r['min_loss_std']:.2g}" if np.isfinite(r["min_loss_std"]) else "")


def _suggested_cell(r) -> str:
    text = fmt_lr(r["suggested_lr_gmean"])
    return text + (f" ×/÷ {r['suggested_lr_gsd']:.2f}" if np.isfinite(r["suggested_lr_gsd"]) else "")


def _method_column(method: str) -> Column:
    """Another method's rate beside the ``rank_by`` one (the terminal shows valley's only: fastai's default)."""
    return Column(f"{method} lr", lambda r: fmt_lr(r[f"{method}_lr_gmean"]), numeric=True, terminal=method == "valley")


def _axis_column(axis: str) -> Column:
    return Column(axis, lambda r: "" if is_nan(r[axis]) else str(r[axis]), terminal=False)


def ranking_columns(red) -> list[Column]:
    """The ranking table's columns for the reduction ``red``: rank (and its group, when ranks
    are given within groups), the configuration, its optimizer, batch size and axes, seeds,
    the minimum loss, the ``rank_by`` suggestion, steepest and valley, the lr at the minimum."""
    extra = [m for m in ("steepest", "valley") if m != red.rank_by]  # the suggested column is the rank_by one
    group = [Column("rank group", lambda r: "" if is_nan(r["rank_group"]) else fmt_value(r["rank_group"]))]
    return [
        Column("rank", lambda r: fmt_int(r["rank"]), numeric=True),
        *(group if rank_groups(red.ranking) else []),
        Column("config", lambda r: str(r["config"])),
        Column("optimizer", lambda r: str(r["optimizer"]), terminal=False),
        Column("batch size", lambda r: fmt_int(r["batch_size"]), numeric=True, terminal=False),
        *[_axis_column(a) for a in red.axes],
        Column("seeds ok / failed / missing", lambda r: f"{int(r['n_ok'])} / {int(r['n_failed'])} / {int(r['n_missing'])}"),
        Column("min loss (mean ± sd)", _loss_cell, numeric=True),
        Column(f"suggested lr ({red.rank_by}) ×/÷ gsd", _suggested_cell, numeric=True),
        *[_method_column(m) for m in extra],
        Column("lr at min loss", lambda r: fmt_lr(r["lr_at_min_loss_gmean"]), numeric=True),
    ]


def ranking_cells(red, *, terminal: bool = False) -> tuple[list[str], list[list[str]], frozenset[int]]:
    """``(header, rows, numeric column indices)`` of the whole ranking, in its order
    (``terminal``: only the columns ``lrrt`` prints)."""
    cols = [c for c in ranking_columns(red) if c.terminal or not terminal]
    rows = [[c.cell(r) for c in cols] for _, r in red.ranking.iterrows()]
    return [c.header for c in cols], rows, frozenset(i for i, c in enumerate(cols) if c.numeric)


def rank_groups(ranking: pd.DataFrame) -> list[str]:
    """The ``rank_group`` values of a ranking whose ranks are given within groups (``[]`` when
    there is one group or none: the ranks are then over all configurations)."""
    if "rank_group" not in ranking:
        return []
    values = [str(v) for v in pd.unique(ranking["rank_group"]) if not is_nan(v) and str(v) != ""]
    return values if len(values) > 1 else []


def rest_summary(shown: int, total: int) -> str:
    """The line in place of the ranked rows after the first ``shown``."""
    return f"The other {total - shown} configurations (ranks {shown + 1} to {total}; also in ranking.csv)"


def ranking_section(red) -> Section:
    """The ranking table: its top :data:`RANKING_TOP` ranked rows, the rest collapsed; the
    configurations without a rank (no finished trial) listed apart under their own heading."""
    if red.ranking.empty:
        return Section("Ranking", [Paragraph("No configurations.")])
    ranked = red.ranking["rank"].notna().to_numpy()
    header, rows, num = ranking_cells(red)
    rows, unranked = [r for r, k in zip(rows, ranked) if k], [r for r, k in zip(rows, ranked) if not k]
    blocks: list = []
    if rows:
        top, rest = rows[:RANKING_TOP], rows[RANKING_TOP:]
        blocks.append(Table(header, top, num, best_first=True, css_class="ranking", rest=rest,
                            rest_summary=rest_summary(len(top), len(rows)) if rest else ""))
    else:
        blocks.append(Paragraph("No configuration is ranked yet: none has a finished trial."))
    if unranked:
        blocks += [Paragraph(f"Not ranked ({len(unranked)}): {UNRANKED_NOTE}"),
                   Table(header, unranked, num, css_class="unranked")]
    return Section("Ranking", blocks)
