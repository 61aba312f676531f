"""What a report says, computed once from a reduction: :class:`ReportInfo` (computing only).

Compute, then render (STYLE.md #1, #16): :func:`build_report` turns a
:class:`sweeps.reduce.Reduction` into a :class:`ReportInfo` — the seed bands (once), the
focus configurations, one :class:`Recommendation` per optimizer, the per-axis effects, the
notes, and every section of the page as plain data (:class:`Section` of blocks,
:class:`Table` of text cells). The figures (:mod:`sweeps.report.figures`), the HTML page
(:mod:`sweeps.report.html`) and the Markdown file (:mod:`sweeps.report.markdown`) only draw
it; tests can assert on it without rendering anything.

All text here is plain and unescaped: each renderer escapes it for its medium.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lrrt_core.plot import fmt_lr as _lr_text
from lrrt_core.suggest import short_ladder
from sweeps.report.bands import seed_bands, series_label

__all__ = ["PLOT_NAMES", "SECTION_FIGURES", "CAPTIONS", "FOCUS_TOP", "RANKING_TOP", "Table", "Section",
           "Recommendation", "ReportInfo", "build_report", "focus_configs", "focus_note", "falling_range",
           "recommendations", "method_note", "budget_note", "verification_verdict"]

#: the figures of the "Plots" section, in report order.
PLOT_NAMES = ("loss_vs_lr", "loss_change", "lr_scaling", "min_loss_heatmap")
#: figures drawn inside their own section, not in "Plots".
SECTION_FIGURES = ("axis_effects", "verification")
#: how many best-ranked configurations the figures show (plus the best of each optimizer).
FOCUS_TOP = 8
#: ranking rows shown before the rest (the rest in a collapsed section).
RANKING_TOP = 20

GOYAL = (
    "The linear scaling rule (Goyal et al. 2017, “Accurate, Large Minibatch SGD”) predicts a "
    "slope of about 1 for SGD (double the batch, double the learning rate); for Adam a slope "
    "near 0.5 (square-root scaling) is commonly reported."
)
#: each figure's caption, in drawing order (``plots/<stem>.png``).
CAPTIONS: dict[str, str] = {
    "loss_vs_lr": "Smoothed loss vs learning rate per batch size: mean over seeds, shaded band "
                  "from the lowest to the highest seed, marker at the suggested learning rate.",
    "loss_change": "Rate of loss change (keras-lr-finder, as in the seed article): where it is "
                   "most negative, the loss falls fastest.",
    "lr_scaling": "Suggested learning rate vs batch size, log-log, with the least-squares slope. " + GOYAL,
    "min_loss_heatmap": "Mean minimum smoothed loss over optimizer × batch size (grey: no successful seed).",
    "axis_effects": "Per-axis effects: mean minimum loss over the other axes and at the best "
                    "configuration (top), suggested learning rate (bottom), against each axis's values.",
    "verification": "Held-out metric after short training at each candidate rate (mean over seeds), the rate "
                    "as a multiple of the range test's recommendation, one panel per optimizer; ★ the verified "
                    "rate, ▲▼ a value off the scale (a training that blew up).",
}


# =========================================================================== the data types
@dataclasses.dataclass(frozen=True)
class Table:
    """A table of plain-text cells.

    Attributes:
        header, rows: the cells. num_cols: indices of right-aligned (numeric) columns.
        best_first: highlight the first row (HTML). css_class: the HTML table's class.
        rest, rest_summary: rows shown collapsed after ``rows``, and the line that says so.
    """

    header: list[str]
    rows: list[list[str]]
    num_cols: frozenset[int] = frozenset()
    best_first: bool = False
    css_class: str = ""
    rest: list[list[str]] = dataclasses.field(default_factory=list)
    rest_summary: str = ""


@dataclasses.dataclass(frozen=True)
class Section:
    """A report section as plain data; each renderer lays out every section the same way.

    ``blocks`` are ``("p", text)``, ``("ok", text)`` (a good-news line), ``("table",
    Table)``, ``("figure", stem)`` (drawn when that figure exists), ``("no_figures", text)``
    (shown when no figure exists at all), ``("labelled", [(label, text)])`` (one line per
    item), ``("list", [(name, code, note)])`` and ``("details", summary, code, note, text)``
    (a collapsible error text); text is unescaped.
    """

    title: str
    blocks: list[tuple]


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


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """What the report recommends for one optimizer (plain data, unescaped).

    Attributes:
        optimizer: optimizer label.
        config: the best-ranked configuration of this optimizer (``None`` if none has an
            ok seed).
        series: optimizer plus extra axis values of that configuration.
        batch_size: its batch size.
        rank / n_configs: its overall rank among all configurations.
        min_loss_mean / min_loss_std / n_ok: its minimum-loss statistics over seeds.
        suggested_lr / suggested_gsd: geometric mean and geometric sd factor of the
            ``rank_by`` suggestion over seeds.
        falling_lo / falling_hi: learning-rate range where the mean smoothed loss falls
            (:func:`falling_range`: from the start of the descent to the minimum). NaN when
            the curve never falls.
        slope: fitted lr-vs-batch-size slope of this optimizer (NaN if not fitted).
        verified_config: after verification, this optimizer's configuration with the best
            verified rank (``None`` before verification); it may differ from ``config``.
        verified_lr: the candidate rate that trained best for ``verified_config``.
        verified_rank / n_verified: its rank among the verified configurations.
        verified_range_lr / verified_range_rank: the range test's suggestion and rank for
            ``verified_config`` (what the verified answer replaces).
        metric / verified_metric: the held-out metric that picked the rate, and its value.
    """

    optimizer: str
    config: str | None
    series: str = ""
    batch_size: Any = None
    rank: int | None = None
    n_configs: int = 0
    min_loss_mean: float = math.nan
    min_loss_std: float = math.nan
    n_ok: int = 0
    suggested_lr: float = math.nan
    suggested_gsd: float = math.nan
    falling_lo: float = math.nan
    falling_hi: float = math.nan
    slope: float = math.nan
    verified_config: str | None = None
    verified_lr: float = math.nan
    verified_rank: int | None = None
    n_verified: int = 0
    verified_range_lr: float = math.nan
    verified_range_rank: int | None = None
    metric: str = ""
    verified_metric: float = math.nan

    @property
    def verified(self) -> bool:
        """True when verification picked a rate for this optimizer."""
        return self.verified_config is not None and math.isfinite(self.verified_lr)

    @property
    def lr(self) -> float:
        """The rate to train with: the verified one when there is one, else the range test's."""
        return self.verified_lr if self.verified else self.suggested_lr

    @property
    def lr_source(self) -> str:
        """``"verified"`` or ``"range test"``: where :attr:`lr` comes from."""
        return "verified" if self.verified else "range test"

    @property
    def lr_change(self) -> float:
        """``verified_lr / verified_range_lr`` (NaN before verification): how far training
        moved the range test's rate for the verified configuration."""
        return self.verified_lr / self.verified_range_lr if self.verified and self.verified_range_lr > 0 else math.nan


def falling_range(lrs: np.ndarray, loss: np.ndarray, frac: float = 0.05) -> tuple[float, float]:
    """LR range where ``loss`` falls: from where the descent starts to the minimum.

    The end is the learning rate at the minimum. The start is where the descent into that
    minimum begins: take the highest loss before the minimum (the plateau the test starts
    on) and the drop from it to the minimum; the start is the first point after that peak
    where ``frac`` (5 %) of the drop is done. A fraction of the drop, rather than the
    first decreasing step, keeps noise on the flat start from moving the answer by
    decades (the non-contiguous longest-decreasing-subsequence of fastai's valley starts
    on the plateau). Returns ``(nan, nan)`` when the loss never falls.

    Example:
        >>> lr = np.logspace(-5, 0, 6)
        >>> falling_range(lr, np.array([2.0, 2.0, 1.5, 1.0, 0.5, 3.0]))
        (0.001, 0.1)
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    good = np.isfinite(lrs) & np.isfinite(loss)
    lrs, loss = lrs[good], loss[good]
    if lrs.size < 2:
        return math.nan, math.nan
    i_min = int(np.argmin(loss))
    if i_min == 0:
        return math.nan, math.nan
    i_peak = int(np.argmax(loss[: i_min + 1]))
    drop = loss[i_peak] - loss[i_min]
    if not drop > 0:
        return math.nan, math.nan
    after = np.flatnonzero(loss[i_peak : i_min + 1] <= loss[i_peak] - frac * drop)
    i_start = i_peak + int(after[0])
    return float(lrs[i_start]), float(lrs[i_min])


def recommendations(red, bands: pd.DataFrame | None = None) -> list[Recommendation]:
    """One :class:`Recommendation` per optimizer, from its best-ranked configuration
    (``bands``: :func:`~sweeps.report.bands.seed_bands` of ``red``, computed when not given)."""
    ranking = red.ranking
    if ranking.empty:
        return []
    if bands is None:
        bands = seed_bands(red)
    slopes = {}
    if red.scaling is not None and not red.scaling.empty:
        for _, s in red.scaling.iterrows():
            slopes.setdefault(s["optimizer"], float(s["slope"]))
    out = []
    n_ranked = int(ranking["rank"].notna().sum())
    metric = red.verification.metric if getattr(red, "verification", None) is not None else ""
    for opt in pd.unique(ranking["optimizer"]):
        rows = ranking[(ranking["optimizer"] == opt) & (ranking["n_ok"] > 0)].sort_values("rank")
        if rows.empty:
            out.append(Recommendation(optimizer=str(opt), config=None, n_configs=n_ranked))
            continue
        best = rows.iloc[0]
        b = bands[(bands["config"] == best["config"]) & bands["full"]] if not bands.empty else bands
        lo, hi = falling_range(b["lr"].to_numpy(), b["mean"].to_numpy()) if len(b) else (math.nan, math.nan)
        out.append(
            Recommendation(
                optimizer=str(opt),
                config=str(best["config"]),
                series=series_label(best, red.axes),
                batch_size=best["batch_size"],
                rank=None if _is_nan(best["rank"]) else int(best["rank"]),
                n_configs=n_ranked,
                min_loss_mean=float(best["min_loss_mean"]),
                min_loss_std=float(best["min_loss_std"]),
                n_ok=int(best["n_ok"]),
                suggested_lr=float(best["suggested_lr_gmean"]),
                suggested_gsd=float(best["suggested_lr_gsd"]),
                falling_lo=lo,
                falling_hi=hi,
                slope=slopes.get(opt, math.nan),
                **_verified_fields(ranking, opt, metric),
            )
        )
    return out


def _verified_fields(ranking: pd.DataFrame, optimizer: str, metric: str) -> dict[str, Any]:
    """The :class:`Recommendation` fields of ``optimizer``'s best verified configuration
    (``{}`` when none of its configurations was verified)."""
    if "verified_rank" not in ranking:
        return {}
    verified = ranking[ranking["verified_rank"].notna() & np.isfinite(ranking["verified_lr"].astype(float))]
    mine = verified[verified["optimizer"] == optimizer].sort_values("verified_rank")
    if mine.empty:
        return {}
    b = mine.iloc[0]
    return {"verified_config": str(b["config"]), "verified_lr": float(b["verified_lr"]),
            "verified_rank": int(b["verified_rank"]), "n_verified": len(verified),
            "verified_range_lr": float(b["suggested_lr_gmean"]),
            "verified_range_rank": None if _is_nan(b["rank"]) else int(b["rank"]),
            "metric": metric, "verified_metric": float(b["verified_metric"])}


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


def verification_section(red) -> Section | None:
    """Both rankings side by side, their agreement in words, the metric-vs-rate figure."""
    from sweeps.verification import edge_notes

    v = red.verification
    if v is None or not v.ran:
        return None
    r = red.ranking.sort_values("rank")
    c = v.counts()
    blocks: list[tuple] = [("p", (
        f"Each configuration was trained briefly at {v.candidates['factor'].nunique() if not v.candidates.empty else 0} "
        f"candidate rates around its {red.rank_by} recommendation; the candidate with the best held-out {v.metric} "
        f"(mean over seeds) is the verified rate; a training that diverged (a non-finite loss, a loss that blew up, "
        f"a collapse to chance) makes its candidate the worst, whatever its {v.metric}. "
        f"Trainings: {c['ok']} ok, {c['failed']} failed, {c['missing']} missing. "
        f"A verification predicts trainings as long as its own: short ones favour higher rates (by up to half a "
        f"decade on three of the five families of lrrt's truth benchmark), so verify with the length you will "
        f"train (verify: {{epochs: N}}).")),
        ("p", verification_verdict(red))]
    blocks += [("p", f"Warning: {note}") for note in edge_notes(red.ranking, v, red.trials)]
    header = ["config", "range-test rank", "verified rank", f"recommended lr ({red.rank_by})", "verified lr",
              "verified val loss", f"verified {v.metric}"]
    rows = [[str(x.config), _fmt_int(x.rank), _fmt_int(x.verified_rank), _fmt_lr(x.suggested_lr_gmean),
             _fmt_lr(x.verified_lr), _fmt_loss(x.verified_val_loss), _fmt_loss(x.verified_metric)]
            for x in r.itertuples()]
    if v.metric == "val_loss":  # the last two columns would be the same
        header, rows = header[:-1], [row[:-1] for row in rows]
    blocks += [("table", Table(header, rows, frozenset(range(1, len(header))))), ("figure", "verification")]
    bad = v.rows[v.rows["status"] != "ok"]
    if len(bad):
        blocks.append(("table", Table(["verification trial", "status", "error"],
                                      [[str(b.name), str(b.status), str(b.error)] for b in bad.itertuples()])))
    return Section("Verification", blocks)


def verification_verdict(red) -> str:
    """One or two sentences: do the range-test and verified rankings agree?"""
    r = red.ranking.dropna(subset=["verified_rank"])
    v = red.verification
    if r.empty:
        return "No verified configuration yet."
    top_rt = str(red.ranking.sort_values("rank")["config"].iloc[0])
    top_v = str(r.sort_values("verified_rank")["config"].iloc[0])
    rho = "n/a (fewer than 3 configurations)" if not np.isfinite(v.agreement) else f"{v.agreement:.2f}"
    if top_rt == top_v:
        text = f"Both rankings put {top_rt} first (rank correlation {rho})."
    else:
        text = (f"The rankings disagree: the range test puts {top_rt} first, short training puts {top_v} first "
                f"(rank correlation {rho}). Trust the verified ranking: it measures training, the range test "
                "only predicts it.")
    moved = r[~np.isclose(r["verified_lr"], r["suggested_lr_gmean"])]
    if len(moved):
        text += (f" For {len(moved)} of {len(r)} configurations a candidate other than the recommendation "
                 "trained better; the verified rate is the one to use.")
    return text


def recipes_section(red) -> Section:
    """The training recipe per configuration (``recipes.json``)."""
    from sweeps.verification import recipes

    rows = [[x["config"], _fmt_int(x["verified_rank"]), _fmt_int(x["rank"]), _fmt_lr(x["lr"]), x["lr_source"],
             _fmt_lr(x["one_cycle"]["max_lr"]), _fmt_lr(x["triangular"]["base_lr"]), _fmt_lr(x["triangular"]["max_lr"])]
            for x in recipes(red.ranking, red.rank_by)]
    text = ("What to train with (recipes.json), best first (by verified rank after verification, else by the range "
            "test's rank): the constant learning rate (verified when verification ran), a "
            "one-cycle schedule peaking at 3x that rate, but never above the range test's loss minimum unless "
            "verification trained best at or above it (max_lr_bound says which applied; fastai's warm-up and "
            "annealing: start at max/25, 25 % warm-up), and triangular cyclical rates between max/4 and the same "
            "max (Smith 2015, 3.3). "
            "lrrt_core.one_cycle and lrrt_core.triangular build them as Keras schedules.")
    if not rows:
        return Section("Training recipes", [("p", "No recommendation yet.")])
    header = ["config", "verified rank", "range-test rank", "constant lr", "from", "one-cycle max_lr", "CLR base_lr",
              "CLR max_lr"]
    if not any(row[1] for row in rows):  # before verification: no verified rank to show
        header, rows = [header[0], *header[2:]], [[row[0], *row[2:]] for row in rows]
    num = frozenset(i for i, h in enumerate(header) if h not in ("config", "from"))
    return Section("Training recipes", [("p", text), ("table", Table(header, rows, num))])


def failed_section(red) -> Section:
    """Failed trials with their errors (``("details", summary, code, note, error)`` blocks)."""
    if not red.failed:
        return Section(f"Failed trials ({len(red.failed)})", [("ok", "None.")])
    blocks = [("details", f["name"], f["trial_id"],
               f" after {f['attempts']} attempt(s)" if f.get("attempts") is not None else "", f["error"])
              for f in red.failed]
    return Section(f"Failed trials ({len(red.failed)})", blocks)


def missing_section(red) -> Section:
    """Planned trials without a result (``("list", items)``: name, id, note)."""
    title = f"Missing trials ({len(red.missing)})"
    if not red.missing:
        return Section(title, [("ok", "None: every planned trial has a result.")])
    missing = red.trials[red.trials["status"] == "missing"]
    items = [(m["name"], m["trial_id"], f" ({m['error']})" if m["error"] else "") for _, m in missing.iterrows()]
    return Section(title, [("p", "Planned in the manifest but without a result (not run yet, still running, or "
                                 "interrupted):"), ("list", items)])


def effects_section(red, effects: list) -> Section | None:
    """Per-axis effects (``effects``: :func:`sweeps.effects.axis_effects` of ``red``): which axis
    matters most, and a table per axis of the loss and the recommended rate against its values."""
    if not effects:
        return None
    ordered = sorted(effects, key=lambda e: -e.effect if np.isfinite(e.effect) else np.inf)
    summary = ", ".join(f"{e.axis} {_fmt_loss(e.effect)}" for e in ordered)
    blocks: list[tuple] = [("p", "How much each grid axis moves the ranking criterion: the range (max - min) over "
                                 "its values of the mean minimum loss, averaged over the other axes (for the seed: "
                                 f"over the trials of each seed). Largest first: {summary}.")]
    header_tail = ["mean min loss (over the rest)", "best min loss", "best configuration",
                   f"suggested lr ({red.rank_by}, gmean over the rest)", "suggested lr at the best"]
    for e in effects:
        count = "ok trials" if e.axis == "seed" else "configurations"
        rows = [[_fmt_value(x.value), str(int(x.n)), _fmt_loss(x.loss_mean), _fmt_loss(x.loss_best),
                 str(x.best_config), _fmt_lr(x.lr_gmean), _fmt_lr(x.lr_best)] for x in e.table.itertuples()]
        blocks.append(("p", f"{e.axis} (effect {_fmt_loss(e.effect)})"))
        blocks.append(("table", Table([e.axis.replace("_", " "), count, *header_tail], rows,
                                      frozenset({1, 2, 3, 5, 6}))))
    return Section("Per-axis effects", [*blocks[:1], ("figure", "axis_effects"), *blocks[1:]])


def _fmt_value(v: Any) -> str:
    """An axis value as text: integral floats without ``.0``."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _is_nan(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _fmt_lr(v: float) -> str:
    """A learning rate as the report writes it (``lrrt_core.plot``'s format; ``n/a`` if not finite)."""
    return "n/a" if v is None or not np.isfinite(v) else _lr_text(v)


def _fmt_loss(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.4g}"


def _fmt_int(v: Any) -> str:
    return "" if _is_nan(v) else str(int(v))


def _ranking_rows(red) -> tuple[list[str], list[list[str]]]:
    """Header and plain-text cells of the ranking table (escaped by the renderer)."""
    extra = [m for m in ("steepest", "valley") if m != red.rank_by]  # the suggested column is the rank_by one
    groups = _rank_groups(red.ranking)
    header = ["rank", *(["rank group"] if groups else []), "config", "optimizer", "batch size", *red.axes,
              "seeds ok / failed / missing", "min loss (mean ± sd)", f"suggested lr ({red.rank_by}) ×/÷ gsd",
              *[f"{m} lr" for m in extra], "lr at min loss"]
    rows = []
    for _, r in red.ranking.iterrows():
        loss = _fmt_loss(r["min_loss_mean"])
        if np.isfinite(r["min_loss_std"]):
            loss += f" ± {r['min_loss_std']:.2g}"
        sugg = _fmt_lr(r["suggested_lr_gmean"])
        if np.isfinite(r["suggested_lr_gsd"]):
            sugg += f" ×/÷ {r['suggested_lr_gsd']:.2f}"
        rows.append(
            [_fmt_int(r["rank"]), *([_fmt_value(r["rank_group"]) if not _is_nan(r["rank_group"]) else ""]
                                    if groups else []), str(r["config"]), str(r["optimizer"]), _fmt_int(r["batch_size"]) if not _is_nan(r["batch_size"]) else "",
             *["" if _is_nan(r[a]) else str(r[a]) for a in red.axes],
             f"{int(r['n_ok'])} / {int(r['n_failed'])} / {int(r['n_missing'])}",
             loss, sugg, *[_fmt_lr(r[f"{m}_lr_gmean"]) for m in extra],
             _fmt_lr(r["lr_at_min_loss_gmean"])]
        )
    return header, rows


def _rank_groups(ranking: pd.DataFrame) -> list[str]:
    """The ``rank_group`` values of a ranking whose ranks are given within groups (``[]`` when
    there is one group or none: the ranks are then over all configurations)."""
    if "rank_group" not in ranking:
        return []
    values = [str(v) for v in pd.unique(ranking["rank_group"]) if not _is_nan(v) and str(v) != ""]
    return values if len(values) > 1 else []


def _rest_summary(shown: int, total: int) -> str:
    return f"The other {total - shown} configurations (ranks {shown + 1} to {total}; also in ranking.csv)"


def _recommendation_text(rec: Recommendation, rank_by: str) -> tuple[str, str]:
    """(optimizer label, sentence) in plain text; the renderer escapes both."""
    if rec.config is None:
        return rec.optimizer, "no successful trial, so no recommendation."
    head = ""
    if rec.verified:
        head = (f"verified: train {rec.verified_config} at {_fmt_lr(rec.verified_lr)} (best held-out {rec.metric} "
                f"{_fmt_loss(rec.verified_metric)} of the candidates, verified rank {rec.verified_rank} of "
                f"{rec.n_verified}); the range test suggested {_fmt_lr(rec.verified_range_lr)} for it "
                f"({_ratio_text(rec.lr_change)}). Range test: ")
    where = f"batch size {rec.batch_size}"
    if rec.series and rec.series != rec.optimizer:
        where += f" ({rec.series})"
    seeds = f"{rec.n_ok} seed" + ("s" if rec.n_ok != 1 else "")
    loss = _fmt_loss(rec.min_loss_mean) + (f" ± {rec.min_loss_std:.2g}" if np.isfinite(rec.min_loss_std) else "")
    s = head + (f"best at {where}, rank {rec.rank} of {rec.n_configs} (mean minimum loss {loss} over {seeds}). "
         f"Suggested learning rate {_fmt_lr(rec.suggested_lr)} ({rank_by}, geometric mean over seeds")
    s += f", ×/÷ {rec.suggested_gsd:.2f} across seeds)." if np.isfinite(rec.suggested_gsd) else ")."
    if np.isfinite(rec.falling_lo) and np.isfinite(rec.falling_hi):
        s += (f" The loss falls from about {_fmt_lr(rec.falling_lo)} to {_fmt_lr(rec.falling_hi)} "
              f"(start of the descent of the mean smoothed curve to its minimum); a constant learning "
              f"rate should stay below the upper end.")
    if np.isfinite(rec.slope):
        s += f" Across batch sizes the suggested learning rate scales with slope {rec.slope:.2f} in log-log."
    return rec.optimizer, s


def _scaling_rows(red) -> list[list[str]]:
    rows = []
    if red.scaling is None:
        return rows
    for _, s in red.scaling.iterrows():
        r2 = "n/a" if not np.isfinite(s["r2"]) else f"{s['r2']:.3f}"
        rows.append([series_label(s, red.axes), str(int(s["n_batch_sizes"])), f"{s['slope']:.3f}",
                     f"{s['intercept']:.3f}", r2])
    return rows


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




def ranking_section(red) -> Section:
    """The ranking table: its top :data:`RANKING_TOP` ranked rows, the rest collapsed; the
    configurations without a rank (no finished trial) listed apart under their own heading."""
    if red.ranking.empty:
        return Section("Ranking", [("p", "No configurations.")])
    ranked = red.ranking["rank"].notna().to_numpy()
    header, rows = _ranking_rows(red)
    num = frozenset(i for i, h in enumerate(header) if h in _NUMERIC_HEADERS or h.startswith(_NUMERIC_PREFIXES))
    rows, unranked = [r for r, k in zip(rows, ranked) if k], [r for r, k in zip(rows, ranked) if not k]
    blocks: list[tuple] = []
    if rows:
        top, rest = rows[:RANKING_TOP], rows[RANKING_TOP:]
        blocks.append(("table", Table(header, top, num, best_first=True, css_class="ranking", rest=rest,
                                      rest_summary=_rest_summary(len(top), len(rows)) if rest else "")))
    else:
        blocks.append(("p", "No configuration is ranked yet: none has a finished trial."))
    if unranked:
        blocks += [("p", f"Not ranked ({len(unranked)}): {UNRANKED_NOTE}"),
                   ("table", Table(header, unranked, num, css_class="unranked"))]
    return Section("Ranking", blocks)


#: what the report says about configurations with an empty rank.
UNRANKED_NOTE = ("configurations with no finished trial (missing or failed), so no rank; they are listed here, "
                 "apart from the ranking, until a trial of theirs finishes.")
_NUMERIC_HEADERS = frozenset({"rank", "batch size", "lr at min loss"})
_NUMERIC_PREFIXES = ("min loss", "suggested lr", "steepest lr", "valley lr")


def recommendations_section(red, recs: list[Recommendation]) -> Section:
    """The report's first section: what to train with, per optimizer.

    After verification it leads with the verified answer — a sentence on how it differs
    from the range test's, then a table of the verified rate beside the range test's —
    and before it with the range test's suggestion. One line per optimizer follows (its
    best configuration, rate, falling range)."""
    items = [_recommendation_text(rec, red.rank_by) for rec in recs]
    if not recs:
        return Section("Recommendations", [("p", "No successful trials yet."), ("labelled", items)])
    lead = verified_lead(red, recs) if any(r.verified for r in recs) else ""
    table = _recommendation_table(recs, red.rank_by)
    return Section("Recommendations", [*([("p", lead)] if lead else []), ("table", table), ("labelled", items)])


def verified_lead(red, recs: list[Recommendation]) -> str:
    """How the verified answer differs from the range test's, in words (``""`` before verification)."""
    done = [r for r in recs if r.verified]
    if not done:
        return ""
    moved = [r for r in done if not np.isclose(r.lr_change, 1.0, rtol=0.01)]
    other = [r for r in done if r.verified_config != r.config]
    text = (f"Verified by short real trainings (held-out {done[0].metric}): train with the verified rate. It differs from "
            f"the range test's suggestion for {len(moved)} of {len(done)} optimizers")
    text += ("" if not moved else " (" + ", ".join(f"{r.optimizer} {_ratio_text(r.lr_change)}" for r in moved) + ")")
    if other:
        text += ("; the best configuration changed for " + ", ".join(
            f"{r.optimizer} ({r.config} -> {r.verified_config})" for r in other))
    return text + ". " + verification_verdict(red)


def _ratio_text(ratio: float) -> str:
    """``"3x higher"``, ``"3x lower"`` or ``"the same"``: a verified rate against the range test's."""
    if not np.isfinite(ratio):
        return "n/a"
    if np.isclose(ratio, 1.0, rtol=0.01):
        return "the same"
    return f"{ratio:.3g}x higher" if ratio > 1 else f"{1 / ratio:.3g}x lower"


def _recommendation_table(recs: list[Recommendation], rank_by: str) -> Table:
    """One row per optimizer, best first: the verified rate beside the range test's (after
    verification), else the range test's suggestion and where the loss falls."""
    if any(r.verified for r in recs):
        order = sorted(recs, key=lambda r: (r.verified_rank is None, r.verified_rank or 0, r.rank or 0))
        header = ["optimizer", "train at (verified lr)", "configuration", "verified rank",
                  f"range test's lr ({rank_by})", "range-test rank", "verified vs range test"]
        rows = [[r.optimizer, _fmt_lr(r.verified_lr), str(r.verified_config), f"{r.verified_rank} of {r.n_verified}",
                 _fmt_lr(r.verified_range_lr), _rank_of(r.verified_range_rank, r.n_configs), _ratio_text(r.lr_change)]
                if r.verified else [r.optimizer, "not verified", str(r.config or ""), "", _fmt_lr(r.suggested_lr),
                                    _rank_of(r.rank, r.n_configs), ""] for r in order]
        return Table(header, rows, frozenset({1, 3, 4, 5}), best_first=True, css_class="recommendations")
    order = sorted(recs, key=lambda r: (r.rank is None, r.rank or 0))
    header = ["optimizer", f"train at (suggested lr, {rank_by})", "configuration", "rank", "loss falls from", "to"]
    rows = [[r.optimizer, _fmt_lr(r.suggested_lr), str(r.config or "no successful trial"), _rank_of(r.rank, r.n_configs),
             _fmt_lr(r.falling_lo), _fmt_lr(r.falling_hi)] for r in order]
    return Table(header, rows, frozenset({1, 3, 4, 5}), best_first=True, css_class="recommendations")


def _rank_of(rank: int | None, n: int) -> str:
    return "" if rank is None else f"{rank} of {n}"


def plots_section() -> Section:
    """The standard figures (those that could be drawn)."""
    return Section("Plots", [("no_figures", "No plots: no successful trials."),
                             *[("figure", stem) for stem in PLOT_NAMES]])


def scaling_section(red) -> Section:
    """The lr-vs-batch-size fits per optimizer."""
    rows = _scaling_rows(red)
    if not rows:
        return Section("Learning rate vs batch size", [
            ("p", GOYAL), ("p", "No fit: each optimizer needs successful trials at two or more batch sizes.")])
    header = ["optimizer", "batch sizes", "slope", "intercept (log10 lr)", "R²"]
    return Section("Learning rate vs batch size", [("p", GOYAL), ("table", Table(header, rows, frozenset({1, 2, 3, 4})))])


# =========================================================================== the report
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
