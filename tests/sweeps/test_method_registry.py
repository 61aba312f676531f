"""A suggestion method registered in ONE place (here, in the test) appears everywhere a method
is listed: trials.csv, the report, ``--rank-by``, the sweep file's ``report.rank_by``, ``lrrt
find``'s list (suggest_all). Hand-made records, no Ray, no TensorFlow."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lrrt_core.curve import Curve, cut_nonfinite
from lrrt_core.suggest import METHODS, Method, Options, Suggestion, register, suggest_all, summarize, unregister
from sweeps.cli import build_parser, main
from sweeps.spec import SpecError, spec_from_dict
from sweeps.store import SweepDir
from tests.sweeps import synthetic as S

NAME = "lowest_raw_div2"
DESCRIPTION = "half the learning rate at the lowest raw loss (a method registered by a test)"


def lowest_raw_div2(curve: Curve, options: Options) -> Suggestion:
    """Half the rate at the lowest raw loss: simple enough to check by hand."""
    lrs, raw = cut_nonfinite(curve.lrs, curve.losses)
    if raw.size < options.min_points:
        return Suggestion(NAME, None, None, f"curve has {raw.size} points")
    i = int(np.argmin(raw))
    return Suggestion(NAME, float(lrs[i]) / 2, i, f"lowest raw loss at step {i}")


@pytest.fixture
def registered():
    method = register(Method(NAME, lowest_raw_div2, DESCRIPTION))
    yield method
    unregister(NAME)
    assert NAME not in METHODS


def test_registered_method_appears_in_trials_csv_the_report_and_rank_by(registered, tmp_path, capsys):
    out = tmp_path / "sweep"
    S.standard_sweep(out)
    assert main(["report", str(out), "-q", "--rank-by", NAME]) == 0

    trials = pd.read_csv(out / "trials.csv")
    assert registered.column == f"{NAME}_lr" and registered.column in trials.columns
    ok = trials[trials["status"] == "ok"]
    records, _ = SweepDir(out).scan()
    for row in ok.itertuples():
        curve = Curve.from_dict(records[row.trial_id].payload)
        want = float(curve.lrs[int(np.argmin(curve.losses))]) / 2
        assert getattr(row, registered.column) == pytest.approx(want, rel=1e-12)
        assert row.suggested_lr == pytest.approx(want, rel=1e-12)  # ranked by it
    ranking = pd.read_csv(out / "ranking.csv")
    assert np.isfinite(ranking["suggested_lr_gmean"]).all()

    for report in ("report.md", "report.html"):
        text = (out / report).read_text().replace("\\_", "_")
        assert NAME in text and DESCRIPTION in text, report

    args = build_parser().parse_args(["report", str(out), "--rank-by", NAME])
    assert args.rank_by == NAME
    report_help = build_parser()._subparsers._group_actions[0].choices["report"].format_help()
    assert NAME in " ".join(report_help.split())


def test_registered_method_is_a_rank_by_of_the_sweep_file_and_in_suggest_all(registered):
    spec = {"name": "d", "workload": "digits_cnn", "grid": {"optimizer": ["sgd"], "batch_size": [32]},
            "report": {"rank_by": NAME}}
    assert spec_from_dict(spec).report.rank_by == NAME
    curve = S.make_curve(0.1, 1e-2)
    assert list(suggest_all(curve))[-1] == NAME and suggest_all(curve)[NAME].ok
    summary = summarize(curve, rank_by=NAME)
    assert summary[registered.column] == summary["suggested_lr"] > 0


def test_unregistered_method_is_refused_everywhere():
    assert NAME not in METHODS
    spec = {"name": "d", "workload": "digits_cnn", "grid": {"optimizer": ["sgd"], "batch_size": [32]},
            "report": {"rank_by": NAME}}
    with pytest.raises(SpecError, match="report.rank_by"):
        spec_from_dict(spec)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["report", "x", "--rank-by", NAME])
    with pytest.raises(ValueError, match="unknown suggestion method"):
        summarize(S.make_curve(0.1, 1e-2), rank_by=NAME)


def test_a_taken_name_or_column_is_refused(registered):
    with pytest.raises(ValueError, match="already registered"):
        register(Method(NAME, lowest_raw_div2, "again"))
    with pytest.raises(ValueError, match="already registered"):
        register(Method("sma", lowest_raw_div2, "an alias's name"))
    with pytest.raises(ValueError, match="column 'valley_lr'"):
        register(Method("other", lowest_raw_div2, "a taken column", column="valley_lr"))
    with pytest.raises(ValueError, match="column 'suggested_lr'"):
        register(Method("suggested", lowest_raw_div2, "a summary key as column"))
    with pytest.raises(ValueError, match="default method"):
        unregister("centered_min_opt")
    assert not math.isnan(summarize(S.make_curve(0.1, 1e-2))["centered_min_opt_lr"])
