"""Every section of the report after the head, as typed blocks (computing only, no drawing).

:func:`sweeps.report.info.build_report` calls these in page order: the recommendations, the
ranking (``sweeps.report.ranking_table``), per-axis effects, verification, training recipes,
the plots, the lr-vs-batch-size fits, failed and missing trials. Each returns a
:class:`~sweeps.report.blocks.Section` (or ``None`` when it has nothing to show); text is
plain and unescaped.
"""

from __future__ import annotations

import numpy as np

from sweeps.report.bands import series_label
from sweeps.report.blocks import (Block, Details, Figure, GoodNews, ItemList, Labelled, NoFigures, Paragraph, Section,
                                  Table)
from sweeps.report.cells import fmt_int, fmt_loss, fmt_lr, fmt_value, rank_of, ratio_text
from sweeps.report.recommend import Recommendation

__all__ = ["PLOT_NAMES", "CAPTIONS", "GOYAL", "recommendations_section", "verified_lead", "effects_section",
           "verification_section", "verification_verdict", "recipes_section", "plots_section", "scaling_section",
           "failed_section", "missing_section"]

#: the figures of the "Plots" section, in report order.
PLOT_NAMES = ("loss_vs_lr", "loss_change", "lr_scaling", "min_loss_heatmap")
#: the lr-vs-batch-size rule of thumb the scaling section and figure cite.
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


def _figure(stem: str) -> Figure:
    return Figure(stem, CAPTIONS[stem])


def recommendations_section(red, recs: list[Recommendation]) -> Section:
    """The report's first section: what to train with, per optimizer.

    After verification it leads with the verified answer — a sentence on how it differs
    from the range test's, then a table of the verified rate beside the range test's —
    and before it with the range test's suggestion. One line per optimizer follows (its
    best configuration, rate, falling range)."""
    items = [_recommendation_text(rec, red.rank_by) for rec in recs]
    if not recs:
        return Section("Recommendations", [Paragraph("No successful trials yet."), Labelled(items)])
    lead = verified_lead(red, recs) if any(r.verified for r in recs) else ""
    table = _recommendation_table(recs, red.rank_by)
    return Section("Recommendations", [*([Paragraph(lead)] if lead else []), table, Labelled(items)])


def verified_lead(red, recs: list[Recommendation]) -> str:
    """How the verified answer differs from the range test's, in words (``""`` before verification)."""
    done = [r for r in recs if r.verified]
    if not done:
        return ""
    moved = [r for r in done if not np.isclose(r.lr_change, 1.0, rtol=0.01)]
    other = [r for r in done if r.verified_config != r.config]
    text = (f"Verified by short real trainings (held-out {done[0].metric}): train with the verified rate. It differs from "
            f"the range test's suggestion for {len(moved)} of {len(done)} optimizers")
    text += ("" if not moved else " (" + ", ".join(f"{r.optimizer} {ratio_text(r.lr_change)}" for r in moved) + ")")
    if other:
        text += ("; the best configuration changed for " + ", ".join(
            f"{r.optimizer} ({r.config} -> {r.verified_config})" for r in other))
    return text + ". " + verification_verdict(red)


def _recommendation_text(rec: Recommendation, rank_by: str) -> tuple[str, str]:
    """(optimizer label, sentence) in plain text; the renderer escapes both."""
    if rec.config is None:
        return rec.optimizer, "no successful trial, so no recommendation."
    head = ""
    if rec.verified:
        head = (f"verified: train {rec.verified_config} at {fmt_lr(rec.verified_lr)} (best held-out {rec.metric} "
                f"{fmt_loss(rec.verified_metric)} of the candidates, verified rank {rec.verified_rank} of "
                f"{rec.n_verified}); the range test suggested {fmt_lr(rec.verified_range_lr)} for it "
                f"({ratio_text(rec.lr_change)}). Range test: ")
    where = f"batch size {rec.batch_size}"
    if rec.series and rec.series != rec.optimizer:
        where += f" ({rec.series})"
    seeds = f"{rec.n_ok} seed" + ("s" if rec.n_ok != 1 else "")
    loss = fmt_loss(rec.min_loss_mean) + (f" ± {rec.min_loss_std:.2g}" if np.isfinite(rec.min_loss_std) else "")
    s = head + (f"best at {where}, rank {rec.rank} of {rec.n_configs} (mean minimum loss {loss} over {seeds}). "
         f"Suggested learning rate {fmt_lr(rec.suggested_lr)} ({rank_by}, geometric mean over seeds")
    s += f", ×/÷ {rec.suggested_gsd:.2f} across seeds)." if np.isfinite(rec.suggested_gsd) else ")."
    if np.isfinite(rec.falling_lo) and np.isfinite(rec.falling_hi):
        s += (f" The loss falls from about {fmt_lr(rec.falling_lo)} to {fmt_lr(rec.falling_hi)} "
              f"(start of the descent of the mean smoothed curve to its minimum); a constant learning "
              f"rate should stay below the upper end.")
    if np.isfinite(rec.slope):
        s += f" Across batch sizes the suggested learning rate scales with slope {rec.slope:.2f} in log-log."
    return rec.optimizer, s


def _recommendation_table(recs: list[Recommendation], rank_by: str) -> Table:
    """One row per optimizer, best first: the verified rate beside the range test's (after
    verification), else the range test's suggestion and where the loss falls."""
    if any(r.verified for r in recs):
        order = sorted(recs, key=lambda r: (r.verified_rank is None, r.verified_rank or 0, r.rank or 0))
        header = ["optimizer", "train at (verified lr)", "configuration", "verified rank",
                  f"range test's lr ({rank_by})", "range-test rank", "verified vs range test"]
        rows = [[r.optimizer, fmt_lr(r.verified_lr), str(r.verified_config), f"{r.verified_rank} of {r.n_verified}",
                 fmt_lr(r.verified_range_lr), rank_of(r.verified_range_rank, r.n_configs), ratio_text(r.lr_change)]
                if r.verified else [r.optimizer, "not verified", str(r.config or ""), "", fmt_lr(r.suggested_lr),
                                    rank_of(r.rank, r.n_configs), ""] for r in order]
        return Table(header, rows, frozenset({1, 3, 4, 5}), best_first=True, css_class="recommendations")
    order = sorted(recs, key=lambda r: (r.rank is None, r.rank or 0))
    header = ["optimizer", f"train at (suggested lr, {rank_by})", "configuration", "rank", "loss falls from", "to"]
    rows = [[r.optimizer, fmt_lr(r.suggested_lr), str(r.config or "no successful trial"), rank_of(r.rank, r.n_configs),
             fmt_lr(r.falling_lo), fmt_lr(r.falling_hi)] for r in order]
    return Table(header, rows, frozenset({1, 3, 4, 5}), best_first=True, css_class="recommendations")


def effects_section(red, effects: list) -> Section | None:
    """Per-axis effects (``effects``: :func:`sweeps.effects.axis_effects` of ``red``): which axis
    matters most, and a table per axis of the loss and the recommended rate against its values."""
    if not effects:
        return None
    ordered = sorted(effects, key=lambda e: -e.effect if np.isfinite(e.effect) else np.inf)
    summary = ", ".join(f"{e.axis} {fmt_loss(e.effect)}" for e in ordered)
    blocks: list[Block] = [Paragraph("How much each grid axis moves the ranking criterion: the range (max - min) over "
                                     "its values of the mean minimum loss, averaged over the other axes (for the seed: "
                                     f"over the trials of each seed). Largest first: {summary}.")]
    header_tail = ["mean min loss (over the rest)", "best min loss", "best configuration",
                   f"suggested lr ({red.rank_by}, gmean over the rest)", "suggested lr at the best"]
    for e in effects:
        count = "ok trials" if e.axis == "seed" else "configurations"
        rows = [[fmt_value(x.value), str(int(x.n)), fmt_loss(x.loss_mean), fmt_loss(x.loss_best),
                 str(x.best_config), fmt_lr(x.lr_gmean), fmt_lr(x.lr_best)] for x in e.table.itertuples()]
        blocks.append(Paragraph(f"{e.axis} (effect {fmt_loss(e.effect)})"))
        blocks.append(Table([e.axis.replace("_", " "), count, *header_tail], rows, frozenset({1, 2, 3, 5, 6})))
    return Section("Per-axis effects", [*blocks[:1], _figure("axis_effects"), *blocks[1:]])


def verification_section(red) -> Section | None:
    """Both rankings side by side, their agreement in words, the metric-vs-rate figure."""
    from sweeps.verification import edge_notes

    v = red.verification
    if v is None or not v.ran:
        return None
    r = red.ranking.sort_values("rank")
    c = v.counts()
    blocks: list[Block] = [Paragraph((
        f"Each configuration was trained briefly at {v.candidates['factor'].nunique() if not v.candidates.empty else 0} "
        f"candidate rates around its {red.rank_by} recommendation; the candidate with the best held-out {v.metric} "
        f"(mean over seeds) is the verified rate; a training that diverged (a non-finite loss, a loss that blew up, "
        f"a collapse to chance) makes its candidate the worst, whatever its {v.metric}. "
        f"Trainings: {c['ok']} ok, {c['failed']} failed, {c['missing']} missing. "
        f"A verification predicts trainings as long as its own: short ones favour higher rates (by up to half a "
        f"decade on three of the five families of lrrt's truth benchmark), so verify with the length you will "
        f"train (verify: {{epochs: N}}).")),
        Paragraph(verification_verdict(red))]
    blocks += [Paragraph(f"Warning: {note}") for note in edge_notes(red.ranking, v, red.trials)]
    header = ["config", "range-test rank", "verified rank", f"recommended lr ({red.rank_by})", "verified lr",
              "verified val loss", f"verified {v.metric}"]
    rows = [[str(x.config), fmt_int(x.rank), fmt_int(x.verified_rank), fmt_lr(x.suggested_lr_gmean),
             fmt_lr(x.verified_lr), fmt_loss(x.verified_val_loss), fmt_loss(x.verified_metric)]
            for x in r.itertuples()]
    if v.metric == "val_loss":  # the last two columns would be the same
        header, rows = header[:-1], [row[:-1] for row in rows]
    blocks += [Table(header, rows, frozenset(range(1, len(header)))), _figure("verification")]
    bad = v.rows[v.rows["status"] != "ok"]
    if len(bad):
        blocks.append((Table(["verification trial", "status", "error"],
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
    from sweeps.recipes import recipes

    rows = [[x["config"], fmt_int(x["verified_rank"]), fmt_int(x["rank"]), fmt_lr(x["lr"]), x["lr_source"],
             fmt_lr(x["one_cycle"]["max_lr"]), fmt_lr(x["triangular"]["base_lr"]), fmt_lr(x["triangular"]["max_lr"])]
            for x in recipes(red.ranking, red.rank_by)]
    text = ("What to train with (recipes.json), best first (by verified rank after verification, else by the range "
            "test's rank): the constant learning rate (verified when verification ran), a "
            "one-cycle schedule peaking at 3x that rate, but never above the range test's loss minimum unless "
            "verification trained best at or above it (max_lr_bound says which applied; fastai's warm-up and "
            "annealing: start at max/25, 25 % warm-up), and triangular cyclical rates between max/4 and the same "
            "max (Smith 2015, 3.3). "
            "lrrt_core.one_cycle and lrrt_core.triangular build them as Keras schedules.")
    if not rows:
        return Section("Training recipes", [Paragraph("No recommendation yet.")])
    header = ["config", "verified rank", "range-test rank", "constant lr", "from", "one-cycle max_lr", "CLR base_lr",
              "CLR max_lr"]
    if not any(row[1] for row in rows):  # before verification: no verified rank to show
        header, rows = [header[0], *header[2:]], [[row[0], *row[2:]] for row in rows]
    num = frozenset(i for i, h in enumerate(header) if h not in ("config", "from"))
    return Section("Training recipes", [Paragraph(text), Table(header, rows, num)])


def plots_section() -> Section:
    """The standard figures (those that could be drawn)."""
    return Section("Plots", [NoFigures("No plots: no successful trials."),
                             *[_figure(stem) for stem in PLOT_NAMES]])


def scaling_section(red) -> Section:
    """The lr-vs-batch-size fits per optimizer."""
    rows = _scaling_rows(red)
    if not rows:
        return Section("Learning rate vs batch size", [
            Paragraph(GOYAL), Paragraph("No fit: each optimizer needs successful trials at two or more batch sizes.")])
    header = ["optimizer", "batch sizes", "slope", "intercept (log10 lr)", "R²"]
    return Section("Learning rate vs batch size", [Paragraph(GOYAL), Table(header, rows, frozenset({1, 2, 3, 4}))])


def _scaling_rows(red) -> list[list[str]]:
    rows = []
    if red.scaling is None:
        return rows
    for _, s in red.scaling.iterrows():
        r2 = "n/a" if not np.isfinite(s["r2"]) else f"{s['r2']:.3f}"
        rows.append([series_label(s, red.axes), str(int(s["n_batch_sizes"])), f"{s['slope']:.3f}",
                     f"{s['intercept']:.3f}", r2])
    return rows


def failed_section(red) -> Section:
    """Failed trials with their errors (one :class:`~sweeps.report.blocks.Details` each)."""
    if not red.failed:
        return Section(f"Failed trials ({len(red.failed)})", [GoodNews("None.")])
    blocks: list[Block] = [Details(f["name"], f["trial_id"],
                                   f" after {f['attempts']} attempt(s)" if f.get("attempts") is not None else "", f["error"])
                           for f in red.failed]
    return Section(f"Failed trials ({len(red.failed)})", blocks)


def missing_section(red) -> Section:
    """Planned trials without a result (an :class:`~sweeps.report.blocks.ItemList`: name, id, note)."""
    title = f"Missing trials ({len(red.missing)})"
    if not red.missing:
        return Section(title, [GoodNews("None: every planned trial has a result.")])
    missing = red.trials[red.trials["status"] == "missing"]
    items = [(m["name"], m["trial_id"], f" ({m['error']})" if m["error"] else "") for _, m in missing.iterrows()]
    return Section(title, [Paragraph("Planned in the manifest but without a result (not run yet, still running, or "
                                 "interrupted):"), ItemList(items)])
