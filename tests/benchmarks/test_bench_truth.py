"""Slow-marked wrapper: the multi-family truth benchmark runs, caches, and chooses held out."""

import math

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.tf]

ARGS = ["--families", "regression", "sequence", "--optimizers", "sgd", "adam", "--batch-sizes", "32",
        "--seeds", "0", "1", "--epochs", "1", "--verify-epochs", "1", "--rate-step", "1.5", "--samples", "1024",
        "--steps", "40"]


def test_bench_truth_runs_and_caches(tmp_path):
    from tests.benchmarks.bench_truth import main, rules

    cache = str(tmp_path / "cache.json")
    r = main(ARGS + ["--cache", cache])
    assert set(r["folds"]) == {"regression", "sequence"} and r["chosen_on_all"] in rules()
    for fam, fold in r["folds"].items():
        assert fold["rule"] in rules() and fold["n"] == 4  # 2 configurations x 2 budgets
        assert 0 <= fold["inside"] <= 4 and set(fold["by_optimizer"]) == {"sgd", "adam"}
        assert r["verified"][fam]["n"] == 4
        assert set(r["ranking"][fam]) == {"samples", "steps"}
    assert set(r["shipped"]) == {"regression", "sequence"}  # the shipped default is scored per family
    again = main(ARGS + ["--cache", cache])  # everything from the cache: same figures
    assert again["folds"] == r["folds"] and again["wall_s"] < r["wall_s"]
    assert all(math.isfinite(t["best"]) for fam in r["truth"].values() for t in fam.values())
