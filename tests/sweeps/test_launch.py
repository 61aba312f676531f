"""Pure decisions of the launcher (no Ray started)."""

from __future__ import annotations

import pytest

from sweeps.launch import PRELOAD_MODULES, preload_modules
from sweeps.spec import ResourcesSpec


@pytest.mark.parametrize("cpus_per_trial, gpus_per_trial, max_concurrent, n_trials, cpus, preload", [
    (1, 0, None, 8, 2, True),      # the quickstart on 2 CPUs: both prestarted workers run trials
    (1, 0, None, 1, 2, True),      # one trial keeps half of them busy
    (1, 0, None, 100, 64, True),   # a big CPU box, 1 CPU per trial: all of them
    (0.5, 0, None, 8, 4, True),    # fractional CPUs: more trials than workers
    (8, 0, None, 100, 64, False),  # eight 8-CPU trials on 64 CPUs: 56 idle copies otherwise
    (1, 0, 4, 100, 64, False),     # max_concurrent caps the trials in flight
    (1, 0, None, 3, 64, False),    # three trials on 64 CPUs
    (2, 0, None, 8, 4, True),      # 2 of 4 workers busy
    (1, 1, None, 8, 2, False),     # GPU trials: long, the import does not matter
    (1, 0.5, None, 8, 2, False),
    (1, 0, None, 0, 2, False),     # nothing to run
])
def test_preload_only_when_trials_keep_most_prestarted_workers_busy(
        cpus_per_trial, gpus_per_trial, max_concurrent, n_trials, cpus, preload):
    res = ResourcesSpec(cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent)
    assert preload_modules(res, n_trials, cpus=cpus) == (PRELOAD_MODULES if preload else ())
