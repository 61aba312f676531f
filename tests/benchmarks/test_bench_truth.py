"""Slow-marked wrapper: the ground-truth benchmark on a small grid produces sane numbers."""

import math

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.tf]


def test_bench_truth_runs(tmp_path):
    from tests.benchmarks.bench_truth import main

    r = main(["--optimizers", "sgd", "adam", "--batch-sizes", "64", "--seeds", "0", "1", "--epochs", "1",
              "--verify-epochs", "1", "--rate-step", "1", "--steps", "60", "--samples", "3840",
              "--cache", str(tmp_path / "cache.json")])
    assert set(r["budgets"]) == {"steps", "samples"}
    for b in r["budgets"].values():
        names = {m["method"] for m in b["methods"]}
        assert {"centered_min_div3", "steepest", "valley", "verified"} <= names
        for m in b["methods"]:
            assert 0 <= m["in_good_range"] <= m["n"] == 2 and 0 <= m["mean_acc_at_suggestion"] <= 1
    again = main(["--optimizers", "sgd", "adam", "--batch-sizes", "64", "--seeds", "0", "1", "--epochs", "1",
                  "--verify-epochs", "1", "--rate-step", "1", "--steps", "60", "--samples", "3840",
                  "--cache", str(tmp_path / "cache.json")])
    assert again["budgets"]["steps"]["methods"] == r["budgets"]["steps"]["methods"]  # from the cache
    assert math.isfinite(r["truth_seed_agreement"]) or r["configs"] < 3
