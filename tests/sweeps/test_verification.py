"""The verification stage without Ray: plan, reduce, rank, recipes — on known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sweeps import store, verification
from sweeps.grid import expand
from sweeps.recipes import recipes
from sweeps.reduce import reduce_dir
from sweeps.spec import SpecError, VerifySpec, spec_from_dict
from tests.sweeps import synthetic as S


def _spec(**extra):
    return spec_from_dict({"name": "v", "workload": "digits_cnn",
                           "grid": {"optimizer": ["sgd", "adam"], "batch_size": [32, 64], "seed": [0, 1]}, **extra})


def _ranking(configs_lrs: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"config": list(configs_lrs), "rank": range(1, len(configs_lrs) + 1),
                         "suggested_lr_gmean": list(configs_lrs.values())})


def test_plan_candidates_seeds_and_stable_ids():
    spec = _spec(verify={"epochs": 1, "candidates": [0.5, 1, 2]})
    trials = expand(spec)
    ranking = _ranking({"adam-bs32": 1e-3, "sgd-bs32": 0.1, "adam-bs64": math.nan, "sgd-bs64": 0.2})
    plan = verification.plan(spec, trials, ranking)
    # adam-bs64 has no recommendation: 3 configurations x 2 seeds x 3 candidates.
    assert len(plan) == 18
    assert [t.config for t in plan[:6]] == ["adam-bs32"] * 6
    assert [t.lr for t in plan[:3]] == pytest.approx([5e-4, 1e-3, 2e-3])
    assert [t.name for t in plan[:3]] == ["adam-bs32-s0-x0.5", "adam-bs32-s0-x1", "adam-bs32-s0-x2"]
    assert len({t.trial_id for t in plan}) == 18
    again = verification.plan(spec, expand(spec), ranking)
    assert [t.trial_id for t in again] == [t.trial_id for t in plan]
    # Another budget, or another recommendation, plans other trials (never a stale record).
    longer = verification.plan(spec, trials, ranking, VerifySpec(epochs=3, candidates=[0.5, 1, 2]))
    assert not {t.trial_id for t in longer} & {t.trial_id for t in plan}
    moved = verification.plan(spec, trials, _ranking({"adam-bs32": 2e-3}))
    assert not {t.trial_id for t in moved} & {t.trial_id for t in plan}


def test_plan_top_k_follows_the_range_test_rank():
    spec = _spec(verify={"top": 1})
    ranking = _ranking({"sgd-bs64": 0.1, "adam-bs32": 1e-3}).assign(rank=[2, 1])
    plan = verification.plan(spec, expand(spec), ranking)
    assert {t.config for t in plan} == {"adam-bs32"}
    assert len(plan) == 2 * 3  # 2 seeds x the default candidates 1/3, 1, 3
    assert [t.factor for t in plan[:3]] == pytest.approx([1 / 3, 1, 3])


def test_no_verify_section_plans_nothing():
    spec = _spec()
    assert spec.verify is None
    assert verification.plan(spec, expand(spec), _ranking({"sgd-bs32": 0.1})) == []


@pytest.mark.parametrize("verify, key, word", [
    ({"epochs": 1, "steps": 5}, "verify.epochs", "not both"),
    ({"candidates": []}, "verify.candidates", "empty"),
    ({"candidates": [1, -2]}, "verify.candidates[1]", "> 0"),
    ({"candidates": [1, 1]}, "verify.candidates", "distinct"),
    ({"top": 0}, "verify.top", ">= 1"),
    ({"epoch": 2}, "verify.epoch", "unknown key"),
])
def test_bad_verify_section_names_the_key(verify, key, word):
    with pytest.raises(SpecError) as info:
        _spec(verify=verify)
    assert info.value.key == key and word in info.value.message, str(info.value)


def test_verify_is_not_part_of_the_fingerprint():
    assert _spec().fingerprint() == _spec(verify={"epochs": 3}).fingerprint()
    assert [t.trial_id for t in expand(_spec())] == [t.trial_id for t in expand(_spec(verify={}))]


# --------------------------------------------------------------------------- reduce on known answers


def _write_verification(out, entries, results):
    """Manifest plan + one record per (config, seed, factor) with the given val loss / accuracy."""
    manifest = store.read_manifest(out)
    manifest["spec"] = {**manifest["spec"], "verify": {"epochs": 1, "candidates": [1 / 3, 1, 3], "metric": "val_loss"}}
    manifest["verify_trials"] = entries
    store.write_manifest(out, manifest)
    for e in entries:
        p = e["params"]
        val_loss, acc = results[(e["config"], p["seed"], p["factor"])]
        if val_loss is None:
            store.write_record(out, {"trial_id": e["trial_id"], "status": "failed", "error": "boom"}, "verify")
            continue
        store.write_record(out, {"trial_id": e["trial_id"], "status": "ok", "error": None, "wall_s": 1.0,
                                 "result": {"lr": p["lr"], "val_loss": val_loss, "metrics": {"accuracy": acc},
                                            "train_loss": 0.5, "steps": 10, "diverged": val_loss != val_loss,
                                            "wall_s": 1.0}}, "verify")


def _entries(red):
    out = []
    for r in red.ranking.itertuples():
        for seed in (0, 1):
            for f in (1 / 3, 1.0, 3.0):
                vt = verification.VerifyTrial(f"{r.config}-{seed}-{f:.3g}", f"{r.config}-s{seed}-x{f:.3g}", r.config,
                                              r.optimizer, r.optimizer, {}, int(r.batch_size), seed, {}, f,
                                              float(r.suggested_lr_gmean) * f)
                out += verification.manifest_entries([vt])
    return out


def test_verified_rate_and_rank_from_known_losses(tmp_path):
    S.standard_sweep(tmp_path)
    red = reduce_dir(tmp_path)
    entries = _entries(red)
    configs = list(red.ranking.sort_values("rank")["config"])
    # Known answer: config k's best candidate is factor 3 for k even, 1/3 for k odd; its mean
    # val loss there is 0.1 * (n - k), so the verified ranking is the range-test ranking reversed.
    n = len(configs)
    results = {}
    for k, c in enumerate(configs):
        best = 3.0 if k % 2 == 0 else 1 / 3
        for seed in (0, 1):
            for f in (1 / 3, 1.0, 3.0):
                v = 0.1 * (n - k) + (0.0 if f == best else 0.5) + (0.02 if seed else -0.02)
                results[(c, seed, f)] = (v, 1 - v / 10)
    # A diverged candidate (NaN loss) is never picked, even where it would be "lowest".
    results[(configs[0], 0, 1.0)] = (float("nan"), float("nan"))
    results[(configs[1], 1, 3.0)] = (None, None)  # a failed verification trial
    _write_verification(tmp_path, entries, results)
    red = reduce_dir(tmp_path)
    r = red.ranking.set_index("config")
    for k, c in enumerate(configs):
        best = 3.0 if k % 2 == 0 else 1 / 3
        assert r.loc[c, "verified_lr"] == pytest.approx(r.loc[c, "suggested_lr_gmean"] * best)
        assert r.loc[c, "verified_val_loss"] == pytest.approx(0.1 * (n - k))
        assert r.loc[c, "verified_rank"] == n - k
    assert red.verification.agreement == pytest.approx(-1.0)
    rows = red.verification.rows
    assert len(rows) == len(entries) and set(rows["status"]) == {"ok", "failed"}
    assert int((rows["status"] == "failed").sum()) == 1
    assert "accuracy" in rows.columns
    from sweeps.report import verification_verdict

    assert "disagree" in verification_verdict(red)


def test_accuracy_metric_is_maximised(tmp_path):
    S.standard_sweep(tmp_path)
    red = reduce_dir(tmp_path)
    entries = _entries(red)
    results = {(e["config"], e["params"]["seed"], e["params"]["factor"]):
               (1.0, 0.9 if e["params"]["factor"] == 1 / 3 else 0.5) for e in entries}
    _write_verification(tmp_path, entries, results)
    manifest = store.read_manifest(tmp_path)
    manifest["spec"]["verify"]["metric"] = "accuracy"
    store.write_manifest(tmp_path, manifest)
    r = reduce_dir(tmp_path).ranking
    np.testing.assert_allclose(r["verified_lr"], r["suggested_lr_gmean"] / 3)
    np.testing.assert_allclose(r["verified_metric"], 0.9)


def test_recipes_from_verified_or_recommended_rate():
    ranking = pd.DataFrame({"config": ["a", "b"], "rank": [1, 2], "suggested_lr_gmean": [0.01, 0.2],
                            "verified_lr": [0.03, math.nan]})
    out = recipes(ranking, "minimum_div10")
    assert [r["config"] for r in out] == ["a", "b"]
    assert out[0]["lr"] == 0.03 and out[0]["lr_source"] == "verified"
    assert out[1]["lr"] == 0.2 and out[1]["lr_source"] == "minimum_div10"
    assert out[0]["one_cycle"]["max_lr"] == pytest.approx(0.09)
    assert out[0]["triangular"] == {"base_lr": pytest.approx(0.09 / 4), "max_lr": pytest.approx(0.09),
                                    "step_size_epochs": [2, 10]}


def test_budget_note_warns_on_fixed_steps_over_batch_sizes(tmp_path):
    from sweeps.report import budget_note

    S.standard_sweep(tmp_path)
    red = reduce_dir(tmp_path)
    red.manifest.spec["range_test"] = {"steps": 120}
    note = budget_note(red)
    assert "Warning" in note and "16x the data" in note and "samples" in note
    red.manifest.spec["range_test"] = {"samples": 7680, "end_lr": 10.0}
    assert "fixed step count" not in budget_note(red) and "same data" in budget_note(red)
    # the synthetic curves ran their whole ladder but clearly turned up after the minimum: no warning
    assert "without diverging" not in budget_note(red)


def test_samples_budget_gives_each_batch_size_the_same_data():
    spec = _spec(range_test={"samples": 6400})
    steps = {t.batch_size: spec.range_test.settings(t.batch_size).steps for t in expand(spec)}
    assert steps == {32: 200, 64: 100}
    assert {bs * n for bs, n in steps.items()} == {6400}
    assert not spec.fixed_steps_over_batch_sizes and _spec().fixed_steps_over_batch_sizes
    with pytest.raises(SpecError) as info:
        _spec(range_test={"samples": 100})
    assert info.value.key == "range_test.samples" and "fewer than 2 steps at batch size 64" in info.value.message


def test_validate_warns_on_fixed_steps_over_batch_sizes_and_shows_verify():
    from sweeps.grid import format_grid

    fixed = _spec(range_test={"steps": 120})
    text = format_grid(fixed, expand(fixed))
    assert "120 steps" in text and "warning: batch sizes compared at a fixed step count" in text
    fair = _spec(range_test={"samples": 6400}, verify={"steps": 50, "top": 2})
    text = format_grid(fair, expand(fair))
    assert "6400 samples (steps = samples / batch size)" in text and "warning" not in text
    assert "verify    the top 2 configurations: 50 steps at 0.333, 1, 3 x the recommended rate" in text


def test_verified_report_opens_in_headless_chromium_with_every_image(tmp_path):
    """A verified sweep's report.html in a real browser: the six figures (per-axis effects and the verification
    plot included) decode, and the Verification and Training recipes sections are there."""
    import re

    from sweeps.report import rebuild as write_outputs
    from tests.conftest import missing_tool
    from tests.sweeps.test_report import _CHECK, CHROMIUM, _chromium

    if CHROMIUM is None:
        missing_tool("chromium", "apt-get install -y chromium")
    d = tmp_path / "v"
    S.standard_sweep(d)
    red = reduce_dir(d)
    entries = _entries(red)
    _write_verification(d, entries, {(e["config"], e["params"]["seed"], e["params"]["factor"]):
                                     (1.0 + abs(np.log(e["params"]["factor"])), 0.9) for e in entries})
    write_outputs(d)
    html = (d / "report.html").read_text()
    assert "<h2>Verification</h2>" in html and "<h2>Training recipes</h2>" in html
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", _CHECK + "</body>"))
    out = _chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path, "dom")
    title = re.search(r"<title>([^<]*)</title>", out.stdout)
    assert title and title.group(1) == "IMGCHECK 6/6", (title, out.stderr[-2000:])
    assert "Both rankings put" in out.stdout or "The rankings disagree" in out.stdout


def test_budget_note_warns_when_tests_stopped_short_of_the_turn(tmp_path):
    """Two of three range tests ran their whole ladder while the loss was still falling (the
    synthetic curve cut at step 70, before its minimum near 85); the third turned up."""
    from sweeps.report import budget_note

    entries = [S.trial_entry("sgd", bs, 0) for bs in (32, 64, 128)]
    recs = [S.ok_record(e, 0.1, 1e-3) for e in entries]
    for rec in recs[:2]:
        rec["curve"] = S.make_curve(0.1, 1e-3, steps=70).to_dict()
    S.write_sweep(tmp_path, "short", entries, recs)
    red = reduce_dir(tmp_path)
    red.manifest.spec["range_test"] = {"samples": 7680, "end_lr": 10.0}
    note = budget_note(red)
    assert ("Warning: 2 of 3 range tests ran to end_lr = 10 without diverging or clearly turning up "
            "(2 with the loss still falling there): their suggested rates may be too low. "
            "Raise range_test.end_lr.") in note, note
