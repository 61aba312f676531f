"""Slow-marked wrapper: runs the sweep benchmark and checks it produced sane numbers."""

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.tf]


def test_bench_sweep_runs():
    from tests.benchmarks.bench_sweep import main

    r = main(["--repeat", "1"])
    assert r["sweep_s"] > 0 and r["loop_s"] > 0 and r["article_s"] > 0
    assert r["per_trial_overhead_mean_s"] >= 0
