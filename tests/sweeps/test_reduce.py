"""sweeps.reduce on hand-made sweep directories with known answers (no Ray, no TensorFlow)."""

from __future__ import annotations

import io
import logging
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweeps import reduce, reduce_rows, reduce_tables, report, store
from tests.sweeps import synthetic as S

EXPECTED_ORDER = ["adam-bs32", "sgd-bs128", "adam-bs128", "sgd-bs32", "sgd-bs512", "adam-bs512"]


@pytest.fixture
def full(tmp_path):
    S.standard_sweep(tmp_path)
    return reduce.reduce_dir(tmp_path)


def _steepest_factor(red):
    """suggested_lr / scale: the same ladder fraction for every trial by construction."""
    t = red.trials.iloc[0]
    return t["suggested_lr"] / (S.base_scale(t["optimizer"], t["batch_size"]) * S.SEED_SCALE[t["seed"]])


def test_exact_ranks_with_tie_broken_by_larger_lr(full):
    r = full.ranking
    assert list(r["config"]) == EXPECTED_ORDER
    assert list(r["rank"]) == [1, 2, 3, 4, 5, 6]
    # sgd-bs128 and adam-bs128 tie on loss (offset 0.20); sgd's steepest lr is larger.
    tie = r.set_index("config").loc[["sgd-bs128", "adam-bs128"]]
    assert tie["min_loss_mean"].iloc[0] == pytest.approx(tie["min_loss_mean"].iloc[1], abs=1e-12)
    assert tie["suggested_lr_gmean"].iloc[0] > tie["suggested_lr_gmean"].iloc[1]
    assert list(r.columns) == reduce.RANKING_COLUMNS


def test_aggregates_over_seeds(full):
    r = full.ranking.set_index("config")
    k = _steepest_factor(full)
    for (opt, bs), off in S.OFFSETS.items():
        row = r.loc[f"{opt}-bs{bs}"]
        assert row["min_loss_mean"] == pytest.approx(off + S.MIN_SMOOTHED, abs=1e-12)
        assert row["min_loss_std"] == pytest.approx(0.1 / math.sqrt(2), abs=1e-12)  # ±0.05, ddof=1
        # seeds at 2x and 0.5x the scale: geometric mean = scale, gsd = exp(ln2 * sqrt 2)
        assert row["suggested_lr_gmean"] == pytest.approx(k * S.base_scale(opt, bs), rel=1e-9)
        assert row["suggested_lr_gsd"] == pytest.approx(2 ** math.sqrt(2), rel=1e-9)
        assert row["steepest_lr_gmean"] > 0
        assert (row["n_ok"], row["n_failed"], row["n_missing"]) == (2, 0, 0)
        for col in ("valley_lr_gmean", "lr_at_min_loss_gmean"):
            assert row[col] > 0


def test_trial_rows_recomputed_from_raw_curve(full):
    t = full.trials
    assert list(t.columns) == reduce.trial_columns()
    assert len(t) == 12 and set(t["status"]) == {"ok"}
    row = t[t["name"] == "sgd-bs128-s1"].iloc[0]
    assert row["min_loss"] == pytest.approx(S.OFFSETS[("sgd", 128)] + 0.05 + S.MIN_SMOOTHED, abs=1e-12)
    assert row["steps"] == S.N_STEPS and row["stop_reason"] == "completed"
    assert row["gpu_ids"] == "0,1" and row["node"] == "10.0.0.1" and row["wall_s"] == 2.0
    assert math.isnan(row["diverged_lr"])
    assert row["suggested_lr"] == row["centered_min_opt_lr"]  # the default method's
    assert row["suggested_lr"] != row["steepest_lr"]


def test_fitted_slopes_are_exact(full):
    fit = full.scaling.set_index("optimizer")
    assert fit.loc["sgd", "slope"] == pytest.approx(1.0, abs=1e-9)
    assert fit.loc["adam", "slope"] == pytest.approx(0.5, abs=1e-9)
    assert fit.loc["sgd", "r2"] == pytest.approx(1.0, abs=1e-9)
    assert set(fit["n_batch_sizes"]) == {3}
    k = _steepest_factor(full)
    assert fit.loc["sgd", "intercept"] == pytest.approx(math.log10(1e-3 * k), abs=1e-9)


def test_fit_needs_two_batch_sizes():
    r = pd.DataFrame({"optimizer": ["sgd", "adam", "adam"], "batch_size": [32, 32, 64],
                      "suggested_lr_gmean": [0.1, 0.01, np.nan]})
    assert reduce.fit_lr_scaling(r).empty


def test_curves_long_format(full):
    c = full.curves
    assert list(c.columns) == reduce.CURVE_COLUMNS
    assert len(c) == 12 * S.N_STEPS
    one = c[c["name"] == "adam-bs32-s0"].sort_values("step")
    assert list(one["step"]) == list(range(S.N_STEPS))
    np.testing.assert_allclose(one["loss"], S.OFFSETS[("adam", 32)] - 0.05 + S.SHAPE)
    assert one["smoothed_loss"].min() == pytest.approx(full.trials.set_index("name").loc["adam-bs32-s0", "min_loss"])


def test_rank_by_valley(tmp_path):
    S.standard_sweep(tmp_path)
    red = reduce.reduce_dir(tmp_path, rank_by="valley")
    assert red.rank_by == "valley"
    r = red.ranking
    assert list(r["config"]) == EXPECTED_ORDER
    np.testing.assert_allclose(r["suggested_lr_gmean"], r["valley_lr_gmean"], rtol=1e-12)
    np.testing.assert_allclose(red.trials["suggested_lr"], red.trials["valley_lr"], rtol=1e-12)
    assert red.scaling.set_index("optimizer").loc["adam", "slope"] == pytest.approx(0.5, abs=1e-9)
    with pytest.raises(ValueError, match="rank_by"):
        reduce.reduce_dir(tmp_path, rank_by="bogus")


def test_tie_break_prefers_larger_lr_regardless_of_order(tmp_path):
    entries = [S.trial_entry("small", 32, 0), S.trial_entry("large", 32, 0)]
    recs = [S.ok_record(entries[0], 0.2, 1e-3), S.ok_record(entries[1], 0.2, 1e-1)]
    S.write_sweep(tmp_path, "tie", entries, recs)
    r = reduce.reduce_dir(tmp_path).ranking
    assert list(r["config"]) == ["large-bs32", "small-bs32"]


def test_partial_sweep_missing_and_failed(tmp_path):
    S.standard_sweep(tmp_path, skip={"adam-bs512-s0", "adam-bs512-s1", "sgd-bs32-s0"},
                     fail={"sgd-bs32-s1": "ResourceExhaustedError: OOM", "adam-bs128-s1": "NaN at step 3"})
    red = reduce.reduce_dir(tmp_path)
    assert (red.n_trials, red.n_ok, red.n_failed, red.n_missing) == (12, 7, 2, 3)
    assert not red.complete
    assert red.summary_line() == "12 trials: 7 ok, 2 failed, 3 missing"
    assert sorted(red.missing) == ["adam-bs512-s0", "adam-bs512-s1", "sgd-bs32-s0"]
    assert {f["name"]: f["error"] for f in red.failed} == {"sgd-bs32-s1": "ResourceExhaustedError: OOM",
                                                            "adam-bs128-s1": "NaN at step 3"}
    assert all(f["attempts"] == 3 for f in red.failed)
    t = red.trials.set_index("name")
    assert t.loc["adam-bs512-s0", "status"] == "missing" and pd.isna(t.loc["adam-bs512-s0", "min_loss"])
    assert t.loc["sgd-bs32-s1", "status"] == "failed" and t.loc["sgd-bs32-s1", "error"].startswith("Resource")
    r = red.ranking.set_index("config")
    assert tuple(r.loc["sgd-bs32", ["n_ok", "n_failed", "n_missing"]]) == (0, 1, 1)
    assert tuple(r.loc["adam-bs128", ["n_ok", "n_failed", "n_missing"]]) == (1, 1, 0)
    # configs without an ok seed sort last (ordered by name), unranked (empty rank), NaN aggregates
    assert _ranks(red.ranking) == [1, 2, 3, 4, None, None]
    assert list(red.ranking["config"].iloc[-2:]) == ["adam-bs512", "sgd-bs32"]
    assert red.ranking["min_loss_mean"].iloc[-2:].isna().all()
    # a single ok seed: mean = that seed, std NaN
    assert r.loc["adam-bs128", "min_loss_mean"] == pytest.approx(0.15 + S.MIN_SMOOTHED, abs=1e-12)
    assert math.isnan(r.loc["adam-bs128", "min_loss_std"])
    assert red.curves["name"].nunique() == 7


def test_corrupt_record_counts_as_missing(tmp_path, caplog):
    names = S.standard_sweep(tmp_path)
    tid = names["sgd-bs32-s0"]["trial_id"]
    (tmp_path / "trials" / f"{tid}.json").write_text('{"trial_id": "' + tid + '", "cur')
    with caplog.at_level(logging.WARNING):
        red = reduce.reduce_dir(tmp_path)
    assert red.missing == ["sgd-bs32-s0"] and tid in red.corrupt
    row = red.trials.set_index("name").loc["sgd-bs32-s0"]
    assert row["status"] == "missing" and row["error"].startswith("corrupt record")
    assert any("corrupt" in r.getMessage() for r in caplog.records)


def test_ok_record_without_curve_is_failed(tmp_path):
    e = S.trial_entry("sgd", 32, 0)
    S.write_sweep(tmp_path, "x", [e], [{**S.ok_record(e, 0.1, 1e-3), "curve": None}])
    red = reduce.reduce_dir(tmp_path)
    assert red.n_failed == 1 and red.failed[0]["error"].startswith("reducer:")


def test_no_manifest_uses_records_and_empty_dir_raises(tmp_path):
    e = S.trial_entry("sgd", 32, 0)
    store.write_record(tmp_path, S.ok_record(e, 0.1, 1e-3))
    red = reduce.reduce_dir(tmp_path)
    assert red.manifest is None and red.n_ok == 1 and red.n_missing == 0
    assert red.name == tmp_path.name
    with pytest.raises(FileNotFoundError):
        reduce.reduce_dir(tmp_path / "empty")


def _ranks(ranking):
    """``rank`` as a list, ``None`` where empty (a configuration with no finished trial)."""
    return [None if pd.isna(x) else int(x) for x in ranking["rank"]]


def test_manifest_with_no_records_yet(tmp_path):
    S.write_sweep(tmp_path, "just started", [S.trial_entry("sgd", 32, s) for s in (0, 1)], [])
    red = reduce.reduce_dir(tmp_path)
    assert red.n_missing == 2 and red.curves.empty and _ranks(red.ranking) == [None]
    assert red.scaling.empty


def test_extra_axis_columns(tmp_path):
    entries, recs = [], []
    for width, factor in ((16, 1.0), (64, 4.0)):
        for bs in (32, 128):
            e = S.trial_entry("sgd", bs, 0, axes={"width": width})
            entries.append(e)
            recs.append(S.ok_record(e, 0.1 * factor, factor * 1e-3 * bs))
    S.write_sweep(tmp_path, "axes", entries, recs)
    red = reduce.reduce_dir(tmp_path)
    assert red.axes == ["width"]
    assert list(red.trials.columns[:7]) == ["trial_id", "name", "config", "optimizer", "batch_size", "seed", "width"]
    assert "width" in red.curves.columns and "width" in red.ranking.columns
    # width16 has the lower loss; its two batch sizes tie on loss, the larger lr (bs128) wins
    assert list(red.ranking["config"]) == ["sgd-bs128-width16", "sgd-bs32-width16", "sgd-bs128-width64", "sgd-bs32-width64"]
    fit = red.scaling.set_index("width")
    assert list(fit["slope"].round(9)) == [1.0, 1.0]
    assert fit.loc[64, "intercept"] - fit.loc[16, "intercept"] == pytest.approx(math.log10(4), abs=1e-9)


def test_write_outputs_and_rebuild_of_a_running_sweep(tmp_path):
    names = S.standard_sweep(tmp_path, skip={"adam-bs512-s1"})
    red = report.rebuild(tmp_path)
    assert red.n_missing == 1
    for f in ("trials.csv", "ranking.csv", "curves.parquet", "report.html", "report.md"):
        assert (tmp_path / f).is_file(), f
    assert sorted(os.listdir(tmp_path / "plots")) == sorted(f"{n}.png" for n in ("loss_vs_lr", "loss_change",
                                                                               "lr_scaling", "min_loss_heatmap",
                                                                               "axis_effects"))
    leftovers = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs if f.endswith(".tmp")]
    assert leftovers == []
    trials = pd.read_csv(tmp_path / "trials.csv", keep_default_na=False)
    assert list(trials.columns) == reduce.trial_columns()
    assert trials.set_index("name").loc["adam-bs512-s1", "status"] == "missing"
    assert trials.set_index("name").loc["adam-bs512-s0", "gpu_ids"] == "0,1"
    ranking = pd.read_csv(tmp_path / "ranking.csv")
    assert list(ranking["rank"]) == list(range(1, 7))
    curves = pd.read_parquet(tmp_path / "curves.parquet")
    assert len(curves) == 11 * S.N_STEPS

    # the last trial finishes; rebuilding replaces every output
    e = names["adam-bs512-s1"]
    store.write_record(tmp_path, S.ok_record(e, S.OFFSETS[("adam", 512)] + 0.05, S.base_scale("adam", 512) * 0.5))
    red = report.rebuild(tmp_path)
    assert red.complete
    assert len(pd.read_parquet(tmp_path / "curves.parquet")) == 12 * S.N_STEPS
    assert "missing" not in set(pd.read_csv(tmp_path / "trials.csv")["status"])
    with pytest.raises(FileNotFoundError):
        report.rebuild(tmp_path / "nope")


# --------------------------------------------------------------------------- records vs manifest, helpers
def test_records_the_manifest_does_not_know_and_duplicate_entries(tmp_path, caplog):
    """A record missing from the manifest is reduced with its own identity; a trial listed
    twice in the manifest counts once; manifest params fill in what the record lacks."""
    known = S.trial_entry("sgd", 32, 0)
    stranger = S.trial_entry("adam", 64, 1, axes={"width": 8})
    partial = {**S.trial_entry("sgd", 64, 0), "params": {"optimizer": "sgd", "batch_size": None, "seed": 0}}
    S.write_sweep(tmp_path, "mixed", [known, known, partial], [])
    full_partial = S.trial_entry("sgd", 64, 0)
    for rec in (S.ok_record(known, 0.1, 1e-3), S.ok_record(stranger, 0.2, 1e-3), S.ok_record(full_partial, 0.3, 1e-3)):
        store.write_record(tmp_path, rec)
    with caplog.at_level(logging.WARNING, logger="sweeps.reduce"):
        red = reduce.reduce_dir(tmp_path)
    messages = [r.getMessage() for r in caplog.records]
    assert f"manifest lists trial {known['trial_id']} twice; keeping the first" in messages
    assert "1 trial record(s) are not in the manifest; reducing them anyway" in messages
    t = red.trials.set_index("name")
    assert list(t.index) == ["sgd-bs32-s0", "sgd-bs64-s0", "adam-bs64-width8-s1"]  # manifest order, then extras
    row = t.loc["adam-bs64-width8-s1"]
    assert (row["trial_id"], row["config"], row["optimizer"], row["batch_size"], row["seed"], row["width"]) == (
        stranger["trial_id"], "adam-bs64-width8", "adam", 64, 1, 8)
    assert t.loc["sgd-bs64-s0", "batch_size"] == 64  # None in the manifest: the record's value
    assert (t["status"] == "ok").all()


def test_planned_trials_without_manifest_sorts_records_by_name_quietly(caplog):
    recs = {"b": store.TrialRecord.from_json({"trial_id": "b", "name": "zeta", "config": "z", "params": {}}),
            "a": store.TrialRecord.from_json({"trial_id": "a", "params": {"seed": 1}})}
    with caplog.at_level(logging.WARNING, logger="sweeps.reduce"):
        planned = reduce_rows.planned_trials(None, recs)
    assert [t.to_json() for t in planned] == [{"trial_id": "a", "name": None, "config": None, "params": {"seed": 1}},
                                              {"trial_id": "b", "name": "zeta", "config": "z", "params": {}}]
    assert not caplog.records
    assert reduce_rows.planned_trials(store.Manifest.from_json({"trials": None}), {}) == []
    entry = store.TrialEntry.from_json
    ident = reduce_rows.identity(entry({"trial_id": None, "params": None}),
                                 store.TrialRecord.from_json({"trial_id": "r1", "name": "n1", "params": {"seed": 3}}))
    assert (ident["trial_id"], ident["name"], ident["config"], ident["seed"]) == ("r1", "n1", "n1", 3)
    ident = reduce_rows.identity(entry({"trial_id": "t9"}), None)
    assert (ident["trial_id"], ident["name"], ident["config"], ident["axes"]) == ("t9", "t9", "t9", {})
    ident = reduce_rows.identity(entry({"trial_id": "t9", "params": {"optimizer_name": "adam"}}), None)
    assert ident["optimizer"] == "adam"


def test_gpu_ids_and_axis_column_helpers():
    assert [reduce_rows.gpu_ids_str(v) for v in (None, " 0,1 ", [0, 1], (2,), [], 3)] == ["", "0,1", "0,1", "2", "", "3"]
    assert reduce_tables.axis_column("width") == "width"
    assert reduce_tables.axis_column("status") == "axis_status" and reduce_tables.axis_column("lr") == "axis_lr"


def test_axis_columns_keep_one_type():
    num = reduce_tables.normalise_axis_column(pd.Series([1, None, 2.5, float("nan")], dtype=object))
    assert num.dtype == np.float64 and num.tolist()[::2] == [1.0, 2.5] and num.isna().tolist() == [False, True, False, True]
    flags = reduce_tables.normalise_axis_column(pd.Series([True, False, None], dtype=object))
    assert flags.tolist() == [True, False, None]
    mixed = reduce_tables.normalise_axis_column(pd.Series([1, "a", {"b": 2, "a": 1}, None, True], dtype=object))
    assert [mixed[i] for i in (0, 1, 2, 4)] == ["1", "a", '{"a": 1, "b": 2}', "true"] and pd.isna(mixed[3])
    nums_and_bools = reduce_tables.normalise_axis_column(pd.Series([1, True], dtype=object))
    assert nums_and_bools.tolist() == ["1", "true"]  # a bool is not a number here
    assert reduce_tables.normalise_axis_column(pd.Series([None, None], dtype=object)).tolist() == [None, None]
    assert reduce_tables._jsonish(object).startswith("<class ")  # not JSON: its str()


def test_write_outputs_and_rebuild_write_every_table_and_report(tmp_path, monkeypatch, caplog):
    """write_outputs/rebuild without drawing (plots stubbed; the figures have their own tests)."""
    from sweeps.report import writer

    drawn = []
    monkeypatch.setattr(writer, "make_plots",
                        lambda info, plots_dir: drawn.append((info.reduction.n_trials, Path(plots_dir))) or {})
    S.standard_sweep(tmp_path, skip={"adam-bs512-s1"})
    with pytest.raises(FileNotFoundError, match="no such directory"):
        report.rebuild(tmp_path / "nowhere")
    with caplog.at_level(logging.INFO, logger="sweeps.report.writer"):
        red = report.rebuild(tmp_path, rank_by="valley")
    assert drawn == [(12, tmp_path / "plots")]
    assert red.rank_by == "valley" and red.n_missing == 1
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "trials.csv"), pd.read_csv(io.StringIO(red.trials.to_csv(index=False))))
    assert pd.read_csv(tmp_path / "ranking.csv")["config"].tolist() == red.ranking["config"].tolist()
    assert len(pd.read_parquet(tmp_path / "curves.parquet")) == len(red.curves) == 11 * S.N_STEPS
    assert "No plots" in (tmp_path / "report.html").read_text()
    assert "**12 trials: 11 ok, 0 failed, 1 missing**" in (tmp_path / "report.md").read_text()
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("WARNING", f"{tmp_path}: 1 of 12 trials have no result yet (running or interrupted sweep)") in messages
    assert ("INFO", f"{tmp_path}: wrote report ({red.summary_line()})") in messages
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_odd_records_and_the_manifest_rank_by(tmp_path, caplog):
    """Row by row, what reduce_dir makes of unusual records, and report.rank_by from the manifest."""
    e = {k: S.trial_entry("sgd", bs, 0, axes={"width": 4}) for k, bs in
         (("ok", 8), ("nostatus", 16), ("weird", 32), ("nocurve", 64), ("empty", 128), ("missing", 256), ("bare", 512))}
    ok = S.ok_record(e["ok"], 0.1, 1e-3, wall_s=None, node=None, gpu_ids=None, attempts=2)
    nostatus = {k: v for k, v in S.failed_record(e["nostatus"], None).items() if k != "status"}
    weird = {**S.failed_record(e["weird"], None), "status": "paused"}
    nocurve = {**S.ok_record(e["nocurve"], 0.1, 1e-3), "curve": None}
    empty = {**S.ok_record(e["empty"], 0.1, 1e-3), "curve": {"lrs": [], "losses": []}}
    bare = {**S.failed_record(e["bare"], None), "attempts": None}
    S.write_sweep(tmp_path, "odd", list(e.values()), [ok, nostatus, weird, nocurve, empty, bare])
    manifest = store.read_manifest(tmp_path)
    manifest["spec"] = {"name": "odd", "report": {"rank_by": "valley"}}
    store.write_manifest(tmp_path, manifest)
    with caplog.at_level(logging.WARNING, logger="sweeps.reduce"):
        red = reduce.reduce_dir(tmp_path)
    assert red.rank_by == "valley" and reduce.reduce_dir(tmp_path, rank_by="minimum").rank_by == "minimum"
    assert red.manifest.name == red.name == "odd"
    t = red.trials.set_index("batch_size")
    row = t.loc[8]  # ok; wall_s, node, gpu_ids absent from the record: the curve's wall time, blanks
    assert (row["status"], row["error"], row["attempts"], row["wall_s"], row["node"], row["gpu_ids"]) == (
        "ok", "", 2, 1.5, "", "")
    assert row["suggested_lr"] == row["valley_lr"]
    assert (t.loc[16, "status"], t.loc[16, "error"]) == ("failed", "")  # no status: failed, nothing invented
    assert (t.loc[32, "status"], t.loc[32, "error"]) == ("failed", "unknown status 'paused'")
    assert (t.loc[64, "status"], t.loc[64, "error"]) == ("failed", "reducer: status ok but the record holds no curve")
    assert (t.loc[128, "status"], t.loc[128, "error"]) == ("failed", "reducer: the curve has no steps")
    row = t.loc[256]  # missing: blanks and NaN, not leftovers
    assert (row["status"], row["error"], row["node"], row["gpu_ids"]) == ("missing", "", "", "")
    assert pd.isna(row["stop_reason"]) and pd.isna(row["attempts"]) and math.isnan(row["wall_s"]) and math.isnan(row["min_loss"])
    assert (t.loc[512, "status"], t.loc[512, "error"]) == ("failed", "")
    failed = {f["name"]: f for f in red.failed}
    assert failed[e["bare"]["name"]] == {"trial_id": e["bare"]["trial_id"], "name": e["bare"]["name"],
                                         "config": e["bare"]["config"], "error": "(no error message recorded)",
                                         "attempts": None}
    assert failed[e["weird"]["name"]]["attempts"] == 3
    assert red.missing == [e["missing"]["name"]]
    assert red.curves["width"].unique().tolist() == [4] and red.curves["trial"].unique().tolist() == [e["ok"]["trial_id"]]
    messages = [r.getMessage() for r in caplog.records]
    assert f"trial {e['weird']['trial_id']}: unknown status 'paused', counted as failed" in messages
    assert (f"trial {e['nocurve']['name']} ({e['nocurve']['trial_id']}): cannot reduce its curve: "
            "status ok but the record holds no curve") in messages


def test_no_manifest_is_a_warning_and_nothing_at_all_an_error(tmp_path, caplog):
    e = S.trial_entry("sgd", 32, 0)
    store.write_record(tmp_path, S.ok_record(e, 0.1, 1e-3))
    with caplog.at_level(logging.WARNING, logger="sweeps.reduce"):
        reduce.reduce_dir(tmp_path)
    assert [r.getMessage() for r in caplog.records] == [f"{tmp_path}: no sweep.json; reducing the 1 record(s) found"]
    (tmp_path / "nothing").mkdir()
    with pytest.raises(FileNotFoundError, match=r"nothing: no sweep.json and no trial records: not a sweep directory$"):
        reduce.reduce_dir(tmp_path / "nothing")


def test_single_seed_configurations_rank_by_loss_and_unfinished_ones_last(tmp_path):
    """One ok seed is enough to be ranked; a configuration with none goes last whatever its name."""
    entries = [S.trial_entry(opt, 32, 0) for opt in ("aaa", "bbb", "ccc")]
    S.write_sweep(tmp_path, "one seed", entries, [S.failed_record(entries[0], "boom"),
                                                  S.ok_record(entries[1], 0.5, 1e-3), S.ok_record(entries[2], 0.1, 1e-3)])
    ranking = reduce.reduce_dir(tmp_path).ranking
    assert ranking["config"].tolist() == ["ccc-bs32", "bbb-bs32", "aaa-bs32"]
    assert _ranks(ranking) == [1, 2, None] and str(ranking["rank"].dtype) == "Int64"
    assert ranking["n_ok"].tolist() == [1, 1, 0] and math.isnan(ranking["min_loss_std"].iloc[0])
    assert list(ranking.index) == [0, 1, 2]


def test_lr_scaling_fit_against_numpy_on_an_imperfect_fit():
    """slope, intercept and R^2 of a noisy log-log fit, computed independently; rows without a
    usable learning rate or batch size are left out, as are series with one batch size."""
    bs = np.array([16, 32, 64, 128, 256])
    lr = np.array([1.1e-3, 1.7e-3, 4.4e-3, 7.0e-3, 1.9e-2])
    ranking = pd.DataFrame({
        "optimizer": ["sgd"] * 5 + ["sgd"] * 3 + ["adam"] * 2,
        "batch_size": list(bs) + [512, 0, 64] + [32, 64],
        "suggested_lr_gmean": list(lr) + [np.nan, 1e-2, 0.0] + [1e-3, 2e-3],
    })
    fit = reduce.fit_lr_scaling(ranking.iloc[[8, 0, 1, 2, 3, 4, 5, 6, 7]]).set_index("optimizer")  # adam first
    x, y = np.log10(bs), np.log10(lr)
    slope, intercept = np.polyfit(x, y, 1)
    assert fit.loc["sgd", "n_batch_sizes"] == 5
    assert fit.loc["sgd", "slope"] == pytest.approx(slope, rel=1e-12)
    assert fit.loc["sgd", "intercept"] == pytest.approx(intercept, rel=1e-12)
    assert fit.loc["sgd", "r2"] == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-9)
    assert 0.9 < fit.loc["sgd", "r2"] < 0.999
    assert "adam" not in fit.index  # one usable batch size
    both = reduce.fit_lr_scaling(ranking)
    assert both["optimizer"].tolist() == ["sgd", "adam"] and both.iloc[1]["slope"] == pytest.approx(1.0)
    assert list(reduce.fit_lr_scaling(ranking.iloc[:0]).columns) == ["optimizer", "n_batch_sizes", "slope", "intercept", "r2"]
    assert reduce.fit_lr_scaling(ranking, lr_column="nope").empty
