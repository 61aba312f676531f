"""Ranking like with like (issue 20): an axis that changes the loss's scale is ranked within its
values; configurations with no finished trial are unranked (fast tier, synthetic records)."""

from __future__ import annotations

import pandas as pd

from sweeps import ranking
from sweeps.reduce import reduce_dir
from sweeps.report import budget_note

from tests.sweeps import synthetic as S


def _sweep(tmp_path, axis: str, offsets: dict):
    """sgd / adam x bs 32 x 2 seeds x the axis's values; curve offset per value (adam slightly better)."""
    entries, recs = [], []
    for value, offset in offsets.items():
        for opt, delta in (("sgd", 0.1), ("adam", 0.0)):
            for seed in (0, 1):
                e = S.trial_entry(opt, 32, seed, {axis: value})
                entries.append(e)
                recs.append(S.ok_record(e, offset + delta, 1e-2))
    S.write_sweep(tmp_path, "groups", entries, recs)
    return reduce_dir(tmp_path)


def _ranks(r: pd.DataFrame) -> dict:
    return {c: (None if pd.isna(k) else int(k)) for c, k in zip(r["config"], r["rank"])}


def test_a_loss_changing_axis_is_ranked_within_its_values(tmp_path):
    """A task axis mixing an MSE-like loss (~100) with a cross-entropy (~2): globally every
    regression configuration would rank last; within each task, adam (lower loss) is first."""
    red = _sweep(tmp_path, "task", {"reg": 100.0, "cls": 0.0})
    assert list(red.rank_groups) == ["task"] and red.rank_groups["task"] > 10
    r = red.ranking
    assert _ranks(r) == {"adam-bs32-taskcls": 1, "sgd-bs32-taskcls": 2, "adam-bs32-taskreg": 1, "sgd-bs32-taskreg": 2}
    assert dict(zip(r["config"], r["rank_group"])) == {
        "adam-bs32-taskcls": "task=cls", "sgd-bs32-taskcls": "task=cls",
        "adam-bs32-taskreg": "task=reg", "sgd-bs32-taskreg": "task=reg"}
    note = budget_note(red)
    assert "Warning: the loss at the start of the range tests differs between the values of task" in note
    assert "ranked within each value" in note
    written = pd.read_csv(tmp_path / "ranking.csv") if (tmp_path / "ranking.csv").exists() else None
    assert written is None or "rank_group" in written


def test_an_axis_that_keeps_the_loss_comparable_is_ranked_globally(tmp_path):
    """A width axis moving the loss by a few percent: one global ranking, no group, no warning."""
    red = _sweep(tmp_path, "width", {16: 0.05, 32: 0.0})
    assert red.rank_groups == {}
    assert sorted(_ranks(red.ranking).values()) == [1, 2, 3, 4] and set(red.ranking["rank_group"]) == {""}
    assert "not comparable" not in budget_note(red)


def test_the_scale_ratio_threshold(tmp_path):
    """Cross-entropy over 10 vs 4 classes (ln 10 / ln 4 = 1.66 >= 1.5) is grouped; 1.3x is not."""
    assert ranking.LOSS_SCALE_RATIO == 1.5
    trials = pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "status": ["ok"] * 4, "k": ["10", "4", "10", "4"],
                           "w": ["x", "x", "y", "y"]})
    curves = pd.DataFrame({"trial": list("aabbccdd"), "step": [0, 1] * 4,
                           "loss": [2.30, 2.30, 1.39, 1.39, 2.30, 2.30, 1.39, 1.39]})
    out = ranking.loss_scale_axes(trials, curves, ["k", "w"])
    assert out == {"k": 2.30 / 1.39}  # w's values have the same medians
    curves.loc[curves["trial"] == "d", "loss"] = 2.1  # class-4 median (1.39 + 2.1) / 2: 1.32x, below 1.5
    assert ranking.loss_scale_axes(trials, curves, ["k", "w"]) == {}


def test_unfinished_configurations_are_unranked_and_sort_last():
    agg = pd.DataFrame({"config": ["a", "b", "c"], "n_ok": [0, 2, 1], "min_loss_mean": [float("nan"), 0.5, 0.4],
                        "suggested_lr_gmean": [float("nan"), 1e-2, 1e-2]})
    out = ranking.rank(agg, [])
    assert list(out["config"]) == ["c", "b", "a"] and _ranks(out) == {"c": 1, "b": 2, "a": None}
