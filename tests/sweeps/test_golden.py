"""Golden values: what README documents and what resume relies on, as literals (no Ray, no TF).

A change here is a change users see (a renamed column breaks their scripts; a changed trial
id makes ``lrrt sweep`` re-run every finished trial of an existing output directory), so
these lists are written out by hand, not taken from the code's own constants.
"""

from __future__ import annotations

import re

import pandas as pd

from sweeps import reduce, report
from sweeps.grid import expand
from sweeps.spec import spec_from_dict
from tests.sweeps import synthetic as S
from tests.sweeps.conftest import REPO

# README "Output files": trials.csv, in this order; extra grid axes come right after seed.
TRIALS_CSV = ["trial_id", "name", "config", "optimizer", "batch_size", "seed", "status", "error", "attempts",
              "steps", "min_loss", "lr_at_min_loss", "steepest_lr", "valley_lr", "minimum_lr", "minimum_div10_lr", "sma_lr",
              "centered_min_div3_lr", "centered_min_opt_lr", "suggested_lr", "diverged_lr", "stop_reason", "wall_s", "node", "gpu_ids"]
CURVES_PARQUET = ["trial", "name", "config", "optimizer", "batch_size", "seed", "step", "lr", "loss", "smoothed_loss"]
RANKING_CSV = ["config", "optimizer", "batch_size", "n_ok", "n_failed", "n_missing", "min_loss_mean", "min_loss_std",
               "suggested_lr_gmean", "suggested_lr_gsd", "steepest_lr_gmean", "valley_lr_gmean",
               "lr_at_min_loss_gmean", "rank", "rank_group", "verified_lr", "verified_val_loss", "verified_metric",
               "verified_rank", "verified_at_edge"]


def test_readme_documents_the_trials_csv_columns():
    readme = (REPO / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `trials.csv` |"))
    cell = re.sub(r"\([^)]*\)", "", row.split("|")[2].split(":", 1)[1])  # drop the explanations in brackets
    documented = [c.strip() for c in cell.split(",")]
    documented = [c for c in documented if c != "extra axes"]
    assert documented == TRIALS_CSV


def test_output_tables_have_the_documented_columns(tmp_path):
    S.standard_sweep(tmp_path)
    report.rebuild(tmp_path)
    assert list(pd.read_csv(tmp_path / "trials.csv").columns) == TRIALS_CSV
    assert list(pd.read_parquet(tmp_path / "curves.parquet").columns) == CURVES_PARQUET
    assert list(pd.read_csv(tmp_path / "ranking.csv").columns) == RANKING_CSV


def test_extra_axes_follow_seed_and_batch_size(tmp_path):
    entries = [S.trial_entry("sgd", 32, seed, axes={"width": 16}) for seed in (0, 1)]
    S.write_sweep(tmp_path, "axes", entries, [S.ok_record(e, 0.1, 1e-3) for e in entries])
    report.rebuild(tmp_path)
    assert list(pd.read_csv(tmp_path / "trials.csv").columns) == TRIALS_CSV[:6] + ["width"] + TRIALS_CSV[6:]
    assert list(pd.read_parquet(tmp_path / "curves.parquet").columns) == CURVES_PARQUET[:6] + ["width"] + CURVES_PARQUET[6:]
    assert list(pd.read_csv(tmp_path / "ranking.csv").columns) == RANKING_CSV[:3] + ["width"] + RANKING_CSV[3:]


GOLDEN_SPEC = {
    "name": "golden",
    "workload": "digits_cnn",
    "grid": {"optimizer": ["sgd", {"name": "adamw", "weight_decay": 0.01, "label": "adamw-wd"}],
             "batch_size": [32], "seed": [0], "axes": {"width": [16]}},
    "range_test": {"start_lr": 1e-5, "end_lr": 1.0, "steps": 100},
}


def test_a_fixed_spec_gives_fixed_trial_ids():
    """The ids name the records in OUT/trials/; if they drift, resume re-runs finished trials."""
    trials = expand(spec_from_dict(GOLDEN_SPEC))
    assert [(t.name, t.trial_id) for t in trials] == [
        ("sgd-bs32-width16-s0", "6e36515140a7"),
        ("adamw-wd-bs32-width16-s0", "eded4e98716b"),
    ]
    # Settings that do not change what a trial computes keep the ids (resume with other resources).
    same = {**GOLDEN_SPEC, "resources": {"cpus_per_trial": 2, "max_concurrent": 1}, "retries": 3,
            "report": {"rank_by": "valley"}}
    assert [t.trial_id for t in expand(spec_from_dict(same))] == ["6e36515140a7", "eded4e98716b"]


# --------------------------------------------------------------------------- the outputs themselves
GOLDEN_DIR = REPO / "tests" / "sweeps" / "golden"


def test_outputs_of_a_fixed_partial_sweep_are_the_golden_files(tmp_path):
    """trials.csv, ranking.csv, recipes.json and report.md of a fixed set of records (one trial
    failed, one missing, markup in the names) are byte for byte what lrrt wrote before the
    store/reduce/report refactor (issue 10). The files in tests/sweeps/golden/ were made by
    that earlier code from this same synthetic sweep; report.md has no timestamp or path.
    Regenerated on purpose since: recipes.json and report.md for issue 21 (the Recommendations
    section first, with a table; both ranks in recipes.json and its table); ranking.csv and
    recipes.json for issue 20 (the verified_at_edge column, the recipes' max_lr_bound); all four
    for issue 20's default centered_min_opt (its column, the suggested rates), ranking.csv's
    rank_group and empty ranks; report.md without the end_lr warning: its curves turn up clearly;
    issue 23: trials.csv's minimum_lr column (every registered method has one), report.md naming
    the training schedules lrrt_core.one_cycle and lrrt_core.triangular."""
    d = tmp_path / "sweep"
    S.standard_sweep(d, name="golden | <b>sweep</b>", skip={"adam-bs512-s1"},
                     fail={"sgd-bs32-s1": "Traceback ...\nValueError: boom <x>"})
    report.rebuild(d)
    for name in ("trials.csv", "ranking.csv", "recipes.json", "report.md"):
        assert (d / name).read_text() == (GOLDEN_DIR / name).read_text(), name
