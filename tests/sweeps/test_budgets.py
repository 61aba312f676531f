"""Range-test budgets on budgets that do not divide and on the smallest grids that matter:
``samples:`` rounds down to whole steps (what each trial is sent), and the fixed-step warning
appears from two batch sizes on. No Ray, no TensorFlow."""

from __future__ import annotations

import pytest

from sweeps.grid import expand, format_grid
from sweeps.reduce import reduce_dir
from sweeps.report import budget_note
from sweeps.spec import SpecError, spec_from_dict
from sweeps.trainable import trial_config
from tests.sweeps import synthetic as S


def _spec(batch_sizes, **range_test):
    return spec_from_dict({"name": "b", "workload": "digits_cnn", "range_test": range_test,
                           "grid": {"optimizer": ["sgd"], "batch_size": list(batch_sizes), "seed": [0]}})


def test_samples_budget_rounds_down_to_whole_steps():
    """1000 samples: 31 steps of 32 (992 samples, not 32 steps = 1024), 15 of 64, 10 of 96."""
    spec = _spec([32, 64, 96], samples=1000)
    sent = {t.batch_size: trial_config(t, spec)["range_test"]["steps"] for t in expand(spec)}
    assert sent == {32: 31, 64: 15, 96: 10}
    assert all(bs * n <= 1000 < bs * (n + 1) for bs, n in sent.items())  # never more data than the budget
    assert {bs: spec.range_test.steps_for(bs) for bs in sent} == sent


def test_samples_budget_needs_two_whole_steps_at_the_largest_batch():
    assert _spec([32, 100], samples=200).range_test.steps_for(100) == 2
    with pytest.raises(SpecError) as info:
        _spec([32, 100], samples=199)  # 1.99 steps: rounded up it would pass
    assert info.value.key == "range_test.samples"
    assert "fewer than 2 steps at batch size 100" in info.value.message and "use samples >= 200" in info.value.message


def _sweep(out, batch_sizes, steps):
    """A sweep of ``batch_sizes`` (sgd, 2 seeds, all ok) whose manifest says ``steps: steps``."""
    entries = [S.trial_entry("sgd", bs, seed) for bs in batch_sizes for seed in (0, 1)]
    S.write_sweep(out, "b", entries, [S.ok_record(e, 0.1, 1e-3) for e in entries])
    red = reduce_dir(out)
    red.manifest.spec["range_test"] = {"steps": steps}
    return red


def test_fixed_step_warning_with_two_batch_sizes(tmp_path):
    note = budget_note(_sweep(tmp_path / "two", [32, 128], 120))
    assert note.startswith("Range-test budget: 120 steps per test. Warning:")
    assert "a batch of 128 sees 4x the data a batch of 32 sees" in note
    one = budget_note(_sweep(tmp_path / "one", [32], 120))
    assert one.startswith("Range-test budget: 120 steps per test.") and "fixed step count" not in one


def test_validate_warns_from_two_batch_sizes_on():
    two, one = _spec([32, 64], steps=100), _spec([32], steps=100)
    assert two.fixed_steps_over_batch_sizes and not one.fixed_steps_over_batch_sizes
    assert "warning: batch sizes compared at a fixed step count" in format_grid(two, expand(two))
    assert "warning" not in format_grid(one, expand(one))
    fair = _spec([32, 64], samples=6400)
    assert not fair.fixed_steps_over_batch_sizes and "warning" not in format_grid(fair, expand(fair))
