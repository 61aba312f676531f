"""Slow-marked wrapper: runs the report benchmark at small sizes and checks its numbers are sane."""

import pytest

pytestmark = [pytest.mark.slow]


def test_bench_report_runs():
    from tests.benchmarks.bench_report import main

    rows = main(["--trials", "12", "120"])
    assert [r["trials"] for r in rows] == [12, 120]
    assert [r["configs"] for r in rows] == [6, 60]
    for r in rows:
        assert r["wall_s"] >= r["rebuild_s"] > 0 and 100 < r["peak_mb"] < 2000 and 0 < r["html_mb"] < 3
