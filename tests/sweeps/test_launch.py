"""Pure decisions of the launcher (no Ray started)."""

from __future__ import annotations

import pytest

from sweeps.ray_session import PRELOAD_MODULES, preload_modules
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


def test_a_finished_trial_becomes_a_record_with_the_old_keys():
    """The launcher builds the TrialRecord; its JSON has the keys, in the order, records always had."""
    from types import SimpleNamespace

    from sweeps.grid import expand
    from sweeps.spec import spec_from_dict
    from sweeps.trial_kinds import range_tests, trial_outcome, trial_record

    spec = spec_from_dict({"name": "r", "workload": "digits_cnn", "grid": {"optimizer": ["sgd"], "batch_size": [32]}})
    trial = expand(spec)[0]
    tune_trial = SimpleNamespace(last_result={"node": "n1", "node_ip": "10.0.0.1", "gpu_ids": "0", "wall_s": 1.5,
                                              "final": True, "payload": '{"lrs": [], "losses": []}'})
    kind = range_tests(spec, [trial])
    status, error, payload = trial_outcome(tune_trial, kind)
    rec = trial_record(tune_trial, kind, trial, 2, status, error, payload)
    data = rec.to_json()
    assert list(data) == ["schema", "trial_id", "name", "config", "params", "status", "error", "attempts", "retried",
                          "node", "node_ip", "gpu_ids", "wall_s", "finished_at", "curve"]
    assert (data["trial_id"], data["status"], data["attempts"], data["retried"], data["node_ip"]) == (
        trial.trial_id, "failed", 2, True, "10.0.0.1")
    assert data["error"].startswith("no finite loss") and data["params"] == trial.params()


def test_a_sweep_that_leaves_gpus_idle_says_so():
    from sweeps.ray_session import idle_gpus_note

    one = idle_gpus_note(0, [{"CPU": 8.0, "GPU": 1.0}], joined=False)
    assert one == ("lrrt: note: this machine has 1 GPU, but gpus_per_trial is 0: the trials run on CPUs only; "
                   "--gpus-per-trial 1 (or a fraction such as 0.25, to share one) runs them on the GPUs")
    cluster = idle_gpus_note(0, [{"CPU": 4.0}, {"CPU": 8.0, "GPU": 4.0}, {"CPU": 8.0, "GPU": 1.0}], joined=True)
    assert cluster.startswith("lrrt: note: the cluster has 5 GPUs, but gpus_per_trial is 0")
    assert idle_gpus_note(0, [{"CPU": 8.0, "GPU": 2.0}], joined=True).startswith("lrrt: note: the cluster has 2 GPUs")
    assert idle_gpus_note(0.25, [{"CPU": 8.0, "GPU": 1.0}], joined=False) is None  # they use them
    assert idle_gpus_note(0, [{"CPU": 8.0}], joined=False) is None  # no GPU to leave idle
    assert idle_gpus_note(0, [], joined=True) is None
