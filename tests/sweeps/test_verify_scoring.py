"""Verification that cannot be fooled, on known answers (no Ray): candidates scored by the mean
over seeds, a diverged training the worst candidate under every metric, a best candidate at the
edge of the grid extended (up to the range test's divergence point), recipes' peaks capped."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from sweeps import verification as V
from sweeps.grid import expand
from sweeps.recipes import recipes, schedule_peak
from sweeps.spec import VerifySpec, spec_from_dict
from sweeps.store import TrialEntry, TrialRecord

NAN = math.nan


def _rows(data: dict, metric_values: dict | None = None, diverged: dict | None = None) -> pd.DataFrame:
    """verify.csv rows: ``{(config, factor): [val_loss per seed]}``; accuracy = 1 - val_loss unless given."""
    out = []
    for (config, factor), losses in data.items():
        for seed, v in enumerate(losses):
            acc = (metric_values or {}).get((config, factor), [1 - x for x in losses])[seed]
            out.append({"config": config, "factor": factor, "lr": 0.1 * factor, "seed": seed, "status": "ok",
                        "val_loss": v, "train_loss": 0.3, "diverged": (config, factor, seed) in (diverged or {}),
                        "accuracy": acc})
    return pd.DataFrame(out)


def _ranking(configs) -> pd.DataFrame:
    return pd.DataFrame({"config": list(configs), "rank": range(1, len(configs) + 1),
                         "suggested_lr_gmean": [0.1] * len(configs)})


def _verified(rows, metric="val_loss", hib=False):
    cands = V.per_candidate(rows, metric, hib)
    return V.verified_columns(_ranking(sorted(set(rows["config"]))), cands, hib).set_index("config")


# --------------------------------------------------------------------------- mean over seeds


def test_candidates_are_scored_by_the_mean_over_uneven_seeds():
    """Best seed, worst seed, median, first or last seed would each pick another candidate."""
    rows = _rows({("a", 1 / 3): [0.10, 0.20, 1.50],   # mean 0.60; best seed and median pick it
                  ("a", 1.0): [0.30, 0.50, 0.70],     # mean 0.50: the answer
                  ("a", 3.0): [0.55, 0.56, 0.60]})    # mean 0.57; worst and last seed pick it
    cands = V.per_candidate(rows, "val_loss", False).set_index("factor")
    assert list(cands["val_loss"]) == pytest.approx([0.60, 0.50, 1.71 / 3])
    assert list(cands["n_ok"]) == [3, 3, 3] and list(cands["n_diverged"]) == [0, 0, 0]
    r = _verified(rows).loc["a"]
    assert r["verified_lr"] == pytest.approx(0.1) and r["verified_val_loss"] == pytest.approx(0.5)
    assert r["verified_metric"] == pytest.approx(0.5) and not r["verified_at_edge"]


def test_a_maximised_metric_is_scored_by_the_mean_too():
    acc = {("a", 1 / 3): [0.95, 0.90, 0.10],   # mean 0.65; best seed, median pick it
           ("a", 1.0): [0.60, 0.70, 0.80],     # mean 0.70: the answer
           ("a", 3.0): [0.66, 0.67, 0.68]}     # mean 0.67; worst seed picks it
    rows = _rows({k: [0.5, 0.5, 0.5] for k in acc}, acc)
    r = _verified(rows, "accuracy", True).loc["a"]
    assert r["verified_lr"] == pytest.approx(0.1) and r["verified_metric"] == pytest.approx(0.70)


def test_ties_go_to_the_lower_factor_and_the_edge_needs_two_candidates():
    rows = _rows({("a", 3.0): [0.5, 0.5], ("a", 1.0): [0.5, 0.5],   # a tie, the higher factor listed first
                  ("b", 1.0): [0.9], ("b", 3.0): [0.2],              # two candidates: the best is at the edge
                  ("c", 1.0): [0.4]})                                # one candidate: no edge
    r = _verified(rows)
    assert r.loc["a", "verified_lr"] == pytest.approx(0.1) and r.loc["a", "verified_at_edge"]
    assert r.loc["b", "verified_lr"] == pytest.approx(0.3) and r.loc["b", "verified_at_edge"]
    assert not r.loc["c", "verified_at_edge"] and r.loc["c", "verified_lr"] == pytest.approx(0.1)
    best = V.best_candidates(V.per_candidate(rows, "val_loss", False), False)
    assert best["edge"].to_dict() == {"a": "low", "b": "high", "c": ""}


# --------------------------------------------------------------------------- diverged: the worst


def test_one_diverged_seed_loses_to_every_candidate_that_trained_under_accuracy():
    """A blown-up training reports a normal-looking accuracy (0.34); with it the 3x candidate's
    mean accuracy (0.77) beats the others — it must lose to all of them anyway."""
    acc = {("a", 1 / 3): [0.40, 0.40, 0.40], ("a", 1.0): [0.50, 0.50, 0.50], ("a", 3.0): [0.99, 0.99, 0.34]}
    rows = _rows({("a", 1 / 3): [0.9] * 3, ("a", 1.0): [0.8] * 3, ("a", 3.0): [0.1, 0.1, 3.0]}, acc,
                 diverged={("a", 3.0, 2)})
    cands = V.per_candidate(rows, "accuracy", True).set_index("factor")
    assert cands.loc[3.0, "metric"] == -math.inf and cands.loc[3.0, "val_loss"] == math.inf
    assert list(cands["n_diverged"]) == [0, 0, 1]
    r = _verified(rows, "accuracy", True).loc["a"]
    assert r["verified_lr"] == pytest.approx(0.1) and r["verified_metric"] == pytest.approx(0.5)
    # The same under val_loss, with the diverged seed's loss looking good (0.2: mean 0.13), which must still lose.
    rows.loc[(rows["factor"] == 3.0) & (rows["seed"] == 2), "val_loss"] = 0.2
    r = _verified(rows).loc["a"]
    assert r["verified_lr"] == pytest.approx(0.1) and r["verified_val_loss"] == pytest.approx(0.8)


@pytest.mark.parametrize("column", ["val_loss", "train_loss", "accuracy"])
def test_a_non_finite_loss_or_metric_counts_as_diverged_without_the_flag(column):
    rows = _rows({("a", 1.0): [0.8, 0.8], ("a", 3.0): [0.1, 0.1]})
    rows.loc[(rows["factor"] == 3.0) & (rows["seed"] == 1), column] = NAN
    for metric, hib in (("val_loss", False), ("accuracy", True))[column == "accuracy":]:  # NaN accuracy: its metric
        cands = V.per_candidate(rows, metric, hib).set_index("factor")
        assert cands.loc[3.0, "n_diverged"] == 1
        assert _verified(rows, metric, hib).loc["a", "verified_lr"] == pytest.approx(0.1)


def test_a_configuration_whose_every_candidate_diverged_is_not_verified():
    rows = _rows({("a", 1.0): [0.5], ("a", 3.0): [0.5], ("b", 1.0): [0.4], ("b", 3.0): [0.6]},
                 diverged={("a", 1.0, 0), ("a", 3.0, 0)})
    r = _verified(rows)
    assert math.isnan(r.loc["a", "verified_lr"]) and pd.isna(r.loc["a", "verified_rank"])
    assert pd.isna(r.loc["a", "verified_at_edge"])
    assert r.loc["b", "verified_rank"] == 1 and r.loc["b", "verified_lr"] == pytest.approx(0.1)
    assert V.extensions(rows, VerifySpec(candidates=[1, 3]), {"a": 0.1}, {"a": 100.0}) == {"a": []}


def test_rows_mark_divergence_from_the_record_or_a_non_finite_loss():
    def entry(tid):
        return TrialEntry(tid, f"n{tid}", "a", {"optimizer": "sgd", "batch_size": 32, "seed": 0, "factor": 1.0,
                                                 "lr": 0.1, "axes": {}})

    res = {"lr": 0.1, "val_loss": 0.5, "train_loss": 0.4, "metrics": {"accuracy": 0.34}, "steps": 5, "diverged": False}
    records = {
        "ok": TrialRecord("ok", status="ok", payload=res),
        "blew": TrialRecord("blew", status="ok", payload={**res, "diverged": True, "diverged_reason": "loss blew up"}),
        "old": TrialRecord("old", status="ok", payload={**res, "val_loss": None}),   # written before the rules
        "flag": TrialRecord("flag", status="ok", payload={**res, "diverged": True}),
        "failed": TrialRecord("failed", status="failed", error="boom"),
    }
    table = V.rows([entry(t) for t in [*records, "missing"]], records, []).set_index("trial_id")
    assert list(table["diverged"]) == [False, True, True, True, False, False]
    assert list(table["diverged_reason"]) == ["", "loss blew up", "non-finite loss", "diverged", "", ""]
    cols = list(table.columns)
    assert cols[cols.index("diverged") + 1] == "diverged_reason"


# --------------------------------------------------------------------------- the grid's edge


def test_extension_factors_step_beyond_each_edge():
    below, above = V.extension_factors([1, 3, 1 / 3])
    assert below == pytest.approx([1 / 9, 1 / 27]) and above == pytest.approx([9, 27])
    below, above = V.extension_factors([0.5, 1, 4])       # uneven steps: each edge its own
    assert below == pytest.approx([0.25, 0.125]) and above == pytest.approx([16, 64])
    assert V.extension_factors([1.0]) == ([], [])
    assert V.MAX_EXTENSION_ROUNDS == 2


def _spec():
    return spec_from_dict({"name": "v", "workload": "digits_cnn", "verify": {"epochs": 1},
                           "grid": {"optimizer": ["sgd", "adam", "rmsprop", "momentum"], "batch_size": [32, 64],
                                    "seed": [0, 1]}})


def _results(plan, scores: dict, missing=()) -> pd.DataFrame:
    """Rows of ``plan`` with val loss ``scores[config](factor)`` (the same on every seed)."""
    out = []
    for t in plan:
        status = "missing" if (t.config, t.factor) in missing else "ok"
        v = scores[t.config](t.factor) if status == "ok" else NAN
        out.append({"config": t.config, "factor": t.factor, "lr": t.lr, "seed": t.seed, "status": status,
                    "val_loss": v, "train_loss": 0.3, "diverged": False})
    return pd.DataFrame(out)


def _toward(target):
    return lambda f: abs(math.log(f / target))  # val loss lowest at factor ``target``


def test_edge_winners_get_one_more_candidate_within_the_divergence_cap():
    spec = _spec()
    trials = expand(spec)
    configs = ["sgd-bs32", "adam-bs32", "rmsprop-bs32", "momentum-bs32", "sgd-bs64"]
    ranking = _ranking(configs)  # every recommendation 0.1
    base = V.plan(spec, trials, ranking)
    assert len(base) == 5 * 2 * 3
    scores = {"sgd-bs32": _toward(100), "adam-bs32": _toward(100), "rmsprop-bs32": _toward(0.001),
              "momentum-bs32": _toward(1), "sgd-bs64": _toward(100)}
    results = _results(base, scores, missing={("sgd-bs64", 1.0)})
    caps = {"sgd-bs32": 0.9, "adam-bs32": 0.89, "rmsprop-bs32": 1e-9, "momentum-bs32": 10.0, "sgd-bs64": 10.0}
    more = V.plan(spec, trials, ranking, results=results, caps=caps)
    assert {t.trial_id for t in base} < {t.trial_id for t in more}  # the grid's trials kept, same ids
    new = [t for t in more if t.trial_id not in {b.trial_id for b in base}]
    # sgd-bs32: 9 x 0.1 = 0.9 <= its cap; adam-bs32: capped (0.9 > 0.89); rmsprop-bs32: downwards, no cap;
    # momentum-bs32: best in the middle; sgd-bs64: a training still missing.
    assert sorted({(t.config, round(t.factor, 6)) for t in new}) == [("rmsprop-bs32", round(1 / 9, 6)),
                                                                      ("sgd-bs32", 9.0)]
    x9 = [t for t in new if t.config == "sgd-bs32"]
    assert [t.seed for t in x9] == [0, 1] and [t.lr for t in x9] == pytest.approx([0.9, 0.9])
    assert x9[0].name == "sgd-bs32-s0-x9" and len({t.trial_id for t in more}) == len(more)
    # No caps: nothing goes up, down still does.
    nocap = V.plan(spec, trials, ranking, results=results)
    assert {(t.config, round(t.factor, 6)) for t in nocap if t.factor not in (1 / 3, 1.0, 3.0)} == \
        {("rmsprop-bs32", round(1 / 9, 6))}


def test_extension_rounds_stop_after_two_steps_and_the_note_says_why():
    spec = _spec()
    trials = expand(spec)
    ranking = _ranking(["sgd-bs32", "adam-bs32"])
    scores = {"sgd-bs32": _toward(1000), "adam-bs32": _toward(1000)}
    caps = {"sgd-bs32": 1e6, "adam-bs32": 0.95}
    planned, rounds = V.plan(spec, trials, ranking), 0
    while True:
        results = _results(planned, scores)
        nxt = V.plan(spec, trials, ranking, results=results, caps=caps)
        if len(nxt) == len(planned):
            break
        planned, rounds = nxt, rounds + 1
    assert rounds == 2
    sgd = sorted({t.factor for t in planned if t.config == "sgd-bs32"})
    assert sgd == pytest.approx([1 / 3, 1, 3, 9, 27])
    assert sorted({t.factor for t in planned if t.config == "adam-bs32"}) == pytest.approx([1 / 3, 1, 3, 9])
    # Stable: the same results plan the same ids (a resumed run reuses every record).
    assert [t.trial_id for t in V.plan(spec, trials, ranking, results=results, caps=caps)] == \
        [t.trial_id for t in planned]
    r = _verified(results).loc[["sgd-bs32", "adam-bs32"]]
    assert r["verified_lr"].tolist() == pytest.approx([2.7, 0.9]) and r["verified_at_edge"].tolist() == [True, True]
    trials_table = pd.DataFrame({"config": ["sgd-bs32", "adam-bs32"], "status": ["ok", "ok"],
                                 "diverged_lr": [1e6, 0.95], "lr_at_min_loss": [0.5, 0.5]})
    notes = V.edge_notes_of(results, VerifySpec(epochs=1), _ranking(["sgd-bs32", "adam-bs32"]), trials_table)
    assert notes[0].startswith("sgd-bs32: the verified rate 2.7 is the highest candidate tried (2 extension rounds")
    assert notes[1].startswith("adam-bs32: the verified rate 0.9 is the highest candidate tried (a higher "
                               "candidate (2.7) would pass the range test's divergence point (0.95))")
    assert all("widen verify.candidates" in n for n in notes)
    # Before its extension ran, the note says so.
    base = _results(V.plan(spec, trials, ranking), scores)
    assert "has not run yet" in V.edge_notes_of(base, VerifySpec(epochs=1), ranking, trials_table)[0]
    assert V.edge_notes_of(None, VerifySpec(epochs=1), ranking, trials_table) == []


def test_a_low_edge_note_and_no_note_in_the_middle():
    spec = _spec()
    ranking = _ranking(["sgd-bs32", "adam-bs32"])
    results = _results(V.plan(spec, expand(spec), ranking), {"sgd-bs32": _toward(1e-4), "adam-bs32": _toward(1)})
    table = pd.DataFrame({"config": ["sgd-bs32"], "status": ["ok"], "diverged_lr": [NAN], "lr_at_min_loss": [1.0]})
    notes = V.edge_notes_of(results, VerifySpec(epochs=1), ranking, table)
    assert len(notes) == 1 and "lowest candidate tried" in notes[0] and "below it" in notes[0]


def test_divergence_caps_lowest_divergence_else_highest_minimum():
    table = pd.DataFrame({
        "config": ["a", "a", "b", "b", "c", "d"],
        "status": ["ok", "ok", "ok", "ok", "failed", "ok"],
        "diverged_lr": [2.0, 1.5, NAN, None, 0.1, NAN],
        "lr_at_min_loss": [0.5, 0.4, 0.3, 0.6, 0.1, NAN]})
    caps = V.divergence_caps(table)
    assert caps["a"] == 1.5 and caps["b"] == 0.6 and "c" not in caps and math.isnan(caps["d"])


# --------------------------------------------------------------------------- recipes


def test_recipe_peaks_never_pass_the_range_test_minimum_unless_verified_above_it():
    ranking = pd.DataFrame({
        "config": ["q", "v", "u", "low"], "rank": [1, 2, 3, 4], "suggested_lr_gmean": [0.2, 0.5, 0.5, 0.01],
        "verified_lr": [0.59, 1.2, NAN, NAN], "verified_rank": pd.array([1, 2, pd.NA, pd.NA], dtype="Int64"),
        "lr_at_min_loss_gmean": [1.11, 1.11, 1.11, 1.0]})
    out = {r["config"]: r for r in recipes(ranking, "centered_min_div3")}
    # quickstart's sgd-bs32: 3 x 0.59 = 1.77 would peak above the loss minimum 1.11.
    assert out["q"]["one_cycle"]["max_lr"] == pytest.approx(1.11) and out["q"]["max_lr_bound"] == "lr_at_min_loss"
    assert out["q"]["triangular"]["max_lr"] == pytest.approx(1.11)
    assert out["q"]["triangular"]["base_lr"] == pytest.approx(1.11 / 4)
    # Verification trained best at 1.2 >= 1.11: the cap is lifted.
    assert out["v"]["one_cycle"]["max_lr"] == pytest.approx(3.6) and out["v"]["max_lr_bound"] == "3 x lr"
    # An unverified recommendation is capped the same way.
    assert out["u"]["one_cycle"]["max_lr"] == pytest.approx(1.11) and out["u"]["lr_source"] == "centered_min_div3"
    assert out["low"]["one_cycle"]["max_lr"] == pytest.approx(0.03) and out["low"]["max_lr_bound"] == "3 x lr"


@pytest.mark.parametrize("lr, at_min, verified, expect", [
    (0.59, 1.11, True, (1.11, "lr_at_min_loss")),
    (0.371, 1.11, True, (1.11, "lr_at_min_loss")),  # 3 x 0.371 = 1.113 passes 1.11: capped
    (0.36, 1.11, False, (1.08, "3 x lr")),          # under the minimum: 3 x lr
    (1.11, 1.11, True, (3.33, "3 x lr")),           # verified at the minimum itself: lifted
    (1.11, 1.11, False, (1.11, "lr_at_min_loss")),  # not verified: capped, never below lr
    (2.0, 1.11, False, (2.0, "lr_at_min_loss")),
    (0.5, NAN, False, (1.5, "3 x lr")),             # no minimum known
    (0.5, None, True, (1.5, "3 x lr")),
    (0.5, -1.0, True, (1.5, "3 x lr")),
])
def test_schedule_peak(lr, at_min, verified, expect):
    peak, bound = schedule_peak(lr, 3.0, at_min, verified=verified)
    assert peak == pytest.approx(expect[0]) and bound == expect[1]


# --------------------------------------------------------------------------- real training


@pytest.mark.tf
def test_an_absurd_rate_under_accuracy_is_the_worst_candidate_and_diverged():
    """Real trainings of a small classifier: Adam at 3.0 blows up to a held-out loss ~10-20 with no
    NaN, yet its accuracy (0.74-0.87) beats the sane but slow 0.001 (0.40). It must lose."""
    from lrrt_core.verify import train_fixed
    from tests.core.test_verify import _compiled

    wl = _compiled(opt="adam")
    rows = []
    for factor, lr in ((1.0, 0.001), (3000.0, 3.0)):
        for seed in (0, 1):
            r = train_fixed(wl.model, wl.x, wl.y, wl.x_val, wl.y_val, lr=lr, batch_size=16, epochs=3, seed=seed,
                            restore=True)
            rows.append({"config": "tiny", "factor": factor, "lr": lr, "seed": seed, "status": "ok",
                         "val_loss": r.val_loss, "train_loss": r.train_loss, "diverged": r.diverged,
                         "diverged_reason": r.diverged_reason, "accuracy": r.metrics["accuracy"]})
    rows = pd.DataFrame(rows)
    absurd, sane = rows[rows["lr"] == 3.0], rows[rows["lr"] == 0.001]
    assert absurd["accuracy"].mean() > sane["accuracy"].mean()      # the trap is real
    assert absurd["diverged"].all() and set(absurd["diverged_reason"]) == {"loss blew up"}
    assert np.isfinite(absurd["val_loss"]).all() and not sane["diverged"].any()
    r = _verified(rows, "accuracy", True).loc["tiny"]
    assert r["verified_lr"] == pytest.approx(0.001) and r["verified_metric"] == pytest.approx(sane["accuracy"].mean())
    assert r["verified_at_edge"]  # the lowest candidate: the report warns


def test_the_report_and_ranking_csv_flag_a_verified_rate_at_the_edge(tmp_path):
    """Every configuration trains best at its highest candidate (3x): ranking.csv says
    verified_at_edge, report.md warns per configuration and says why no further candidate ran."""
    from sweeps.reduce import reduce_dir
    from sweeps.report import rebuild
    from tests.sweeps import synthetic as S
    from tests.sweeps.test_verification import _entries, _write_verification

    S.standard_sweep(tmp_path)
    entries = _entries(reduce_dir(tmp_path))
    _write_verification(tmp_path, entries, {(e["config"], e["params"]["seed"], e["params"]["factor"]):
                                            (1.0 / e["params"]["factor"], 0.9) for e in entries})
    rebuild(tmp_path)
    ranking = pd.read_csv(tmp_path / "ranking.csv")
    assert ranking["verified_at_edge"].tolist() == [True] * len(ranking)
    md = (tmp_path / "report.md").read_text()
    assert md.count("Warning: ") >= len(ranking) and "is the highest candidate tried" in md
    assert "whatever its val_loss" in md.replace("\\_", "_")
    recipes = json.loads((tmp_path / "recipes.json").read_text())["recipes"]
    assert recipes and all(r["max_lr_bound"] in ("3 x lr", "lr_at_min_loss") for r in recipes)


def test_verify_extend_bounds_the_rounds_and_zero_turns_extension_off():
    from sweeps.spec import SpecError

    assert VerifySpec().extend == V.MAX_EXTENSION_ROUNDS == 2
    assert V.extension_factors([1, 3], rounds=1) == ([pytest.approx(1 / 3)], [pytest.approx(9)])
    assert V.extension_factors([1, 3], rounds=0) == ([], [])
    spec = _spec()
    ranking = _ranking(["sgd-bs32"])
    scores = {"sgd-bs32": _toward(1000)}
    caps = {"sgd-bs32": 1e6}
    for extend, factors in ((0, [1 / 3, 1, 3]), (1, [1 / 3, 1, 3, 9])):
        verify = VerifySpec(epochs=1, extend=extend)
        planned = V.plan(spec, expand(spec), ranking, verify)
        for _ in range(3):
            planned = V.plan(spec, expand(spec), ranking, verify, _results(planned, scores), caps)
        assert sorted({t.factor for t in planned}) == pytest.approx(factors)
    notes = V.edge_notes_of(_results(planned, scores), VerifySpec(epochs=1, extend=0), ranking,
                            pd.DataFrame({"config": ["sgd-bs32"], "status": ["ok"], "diverged_lr": [1e6],
                                          "lr_at_min_loss": [1.0]}))
    assert "extension is off: verify.extend is 0" in notes[0]
    with pytest.raises(SpecError) as info:
        spec_from_dict({"name": "v", "workload": "digits_cnn", "grid": {"optimizer": ["sgd"], "batch_size": [32]},
                        "verify": {"extend": -1}})
    assert info.value.key == "verify.extend"


# --------------------------------------------------------------------------- metric: auto


@pytest.mark.parametrize("reported, expected", [
    ({"accuracy": [0.9, 0.8]}, ("accuracy", True)),
    ({"mae": [0.3, 0.2], "sparse_categorical_accuracy": [0.7, 0.9]}, ("sparse_categorical_accuracy", True)),
    ({"r2_score": [0.5, 0.6]}, ("r2_score", True)),
    ({"mae": [0.3, 0.2]}, ("val_loss", False)),            # an error metric is never picked by auto
    ({"accuracy": [NAN, NAN]}, ("val_loss", False)),       # reported by no training
    ({}, ("val_loss", False)),
])
def test_auto_picks_the_first_score_the_trainings_report(reported, expected):
    rows = V.rows([], {}, [])
    rows = pd.DataFrame([{c: None for c in rows.columns} | {"val_loss": v} for v in (0.5, 0.4)])
    for name, values in reported.items():
        rows[name] = values
    assert V.resolved_metric(VerifySpec(), rows) == expected
    assert V.resolved_metric(VerifySpec(metric="val_loss"), rows) == ("val_loss", False)
    for name in ("mae", "mean_squared_error", "root_mean_squared_error", "kl_divergence", "val_loss"):
        assert V.resolved_metric(VerifySpec(metric=name), rows) == (name, False)  # error metrics: minimised
    assert V.resolved_metric(VerifySpec(metric="precision"), rows) == ("precision", True)


def test_auto_is_the_default_and_an_axis_named_like_a_score_is_not_a_metric():
    assert VerifySpec().metric == "auto"
    rows = pd.DataFrame([{**{c: None for c in V._ROW_COLUMNS}, "val_loss": 0.5}])
    rows.insert(6, "auc_weight", 0.1)  # an axis: before the fixed columns' end
    assert V.resolved_metric(VerifySpec(), rows) == ("val_loss", False)


def test_auto_picks_the_candidate_with_the_best_accuracy_where_the_loss_disagrees():
    """A rate whose held-out loss is lowest but whose accuracy is not (a confident wrong model):
    the default verifies by accuracy, as the benchmark chose; ``metric: val_loss`` by the loss."""
    rows = _rows({("a", 1 / 3): [0.30, 0.32], ("a", 1.0): [0.35, 0.37], ("a", 3.0): [0.50, 0.52]},
                 metric_values={("a", 1 / 3): [0.90, 0.91], ("a", 1.0): [0.95, 0.94], ("a", 3.0): [0.80, 0.82]})
    metric, hib = V.resolved_metric(VerifySpec(), rows)
    assert (metric, hib) == ("accuracy", True)
    assert _verified(rows, metric, hib).loc["a", "verified_lr"] == pytest.approx(0.1)
    m, h = V.resolved_metric(VerifySpec(metric="val_loss"), rows)
    assert _verified(rows, m, h).loc["a", "verified_lr"] == pytest.approx(0.1 / 3)


def test_a_tie_in_accuracy_goes_to_the_lower_held_out_loss_not_the_lowest_rate():
    """Far below the best rate every candidate may reach the same accuracy; the lowest factor
    winning the tie would send the extension the wrong way."""
    rows = _rows({("a", 1 / 3): [0.90, 0.92], ("a", 1.0): [0.80, 0.82], ("a", 3.0): [0.60, 0.62]},
                 metric_values={k: [0.5, 0.5] for k in (("a", 1 / 3), ("a", 1.0), ("a", 3.0))})
    best = V.best_candidates(V.per_candidate(rows, "accuracy", True), True)
    assert best.loc["a", "factor"] == 3.0 and best.loc["a", "edge"] == "high"
