"""Runs the finder benchmark (slow; not part of the default suite). See bench_finder.py."""

from __future__ import annotations

import math

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.tf]


def test_bench_finder_runs(capsys):
    from tests.benchmarks import bench_finder

    rows = bench_finder.main(["--steps", "300", "--repeats", "3"])
    assert [r["batch_size"] for r in rows] == [32, 256]
    for r in rows:
        assert all(math.isfinite(r[k]) and r[k] > 0 for k in ("finder_s", "fit_cb_s", "bare_tob_s", "bare_tf_s"))
    print(capsys.readouterr().out)
