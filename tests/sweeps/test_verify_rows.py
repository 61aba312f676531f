"""Verification trial ids and ``verify.csv`` rows, field by field (no Ray, no TensorFlow).

Ids: a verification training's id is the first 12 hex digits of the SHA-1 of the canonical
JSON (sorted keys, no spaces) of ``["verify", sweep fingerprint, params, budget]``; a
different text would give every finished training a new id, and resume would train it
again. Rows: where each column of ``verify.csv`` comes from in the record.
"""

from __future__ import annotations

import hashlib
import json
import math

import pandas as pd
import pytest

from sweeps import verification
from sweeps.grid import expand
from sweeps.spec import spec_from_dict
from sweeps.store import TrialEntry, TrialRecord


def _spec(**verify):
    return spec_from_dict({"name": "v", "workload": "digits_cnn", "verify": verify,
                           "grid": {"optimizer": [{"name": "sgd", "momentum": 0.9, "label": "sgdm"}],
                                    "batch_size": [32], "seed": [0], "axes": {"width": [8]}}})


def test_verification_ids_hash_the_documented_text():
    spec = _spec(steps=10, candidates=[1, 3])
    ranking = pd.DataFrame({"config": ["sgdm-bs32-width8"], "rank": [1], "suggested_lr_gmean": [0.1]})
    plan = verification.plan(spec, expand(spec), ranking)
    assert [(t.factor, t.lr) for t in plan] == [(1.0, 0.1), (3.0, pytest.approx(0.3))]
    for t in plan:
        params = {"optimizer": "sgdm", "optimizer_name": "sgd", "optimizer_kwargs": {"momentum": 0.9},
                  "batch_size": 32, "seed": 0, "axes": {"width": 8}, "factor": t.factor, "lr": t.lr}
        assert t.params() == params
        text = json.dumps(["verify", spec.fingerprint(), params, {"epochs": None, "steps": 10}],
                          sort_keys=True, separators=(",", ":"))
        assert t.trial_id == hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
    epochs = verification.plan(spec, expand(spec), ranking, _spec(epochs=2, candidates=[1, 3]).verify)
    assert not {t.trial_id for t in epochs} & {t.trial_id for t in plan}  # another budget, other ids


def _trial(name, factor, axes):
    return verification.VerifyTrial(f"id-{name}", name, "sgd-bs32", "sgd", "sgd", {}, 32, 0, axes, factor, 0.1 * factor)


def test_verify_csv_rows_field_by_field():
    axes = {"width": 8, "lr": 0.5}  # an axis named like a verify.csv column shows as axis_lr
    entries = [TrialEntry.of(_trial(n, f, axes)) for n, f in (("ok", 1.0), ("bad", 3.0), ("todo", 0.5))]
    records = {
        "id-ok": TrialRecord("id-ok", status="ok", node="10.0.0.1", gpu_ids=[0], wall_s=2.5, payload_key="result",
                             payload={"val_loss": 0.4, "train_loss": 0.3, "steps": 10, "metrics": {"accuracy": 0.9}}),
        "id-bad": TrialRecord("id-bad", status="failed", error="boom", node=None, gpu_ids=None, wall_s=None),
    }
    table = verification.rows(entries, records, ["width", "axis_lr"])
    assert list(table.columns[:8]) == ["trial_id", "name", "config", "optimizer", "batch_size", "seed",
                                       "width", "axis_lr"]
    assert list(table.columns[8:]) == ["factor", "lr", "status", "error", "val_loss", "train_loss", "diverged",
                                       "diverged_reason", "steps", "wall_s", "node", "gpu_ids", "accuracy"]
    ok, bad, todo = (table.iloc[i].to_dict() for i in range(3))
    assert (ok["width"], ok["axis_lr"]) == (8, 0.5)
    assert (ok["status"], ok["error"], ok["steps"], ok["wall_s"]) == ("ok", "", 10, 2.5)
    assert (ok["node"], ok["gpu_ids"], ok["val_loss"], ok["accuracy"]) == ("10.0.0.1", [0], 0.4, 0.9)
    assert (ok["diverged"], ok["diverged_reason"]) == (False, "")
    assert (bad["status"], bad["error"], bad["node"], bad["gpu_ids"]) == ("failed", "boom", "", "")
    assert math.isnan(bad["wall_s"]) and math.isnan(bad["val_loss"]) and bad["diverged"] is False
    assert (todo["status"], todo["error"], todo["node"], todo["trial_id"], todo["factor"]) == \
        ("missing", "", "", "id-todo", 0.5)


def test_no_planned_training_is_an_empty_table_with_the_columns():
    table = verification.rows([], {}, ["width"])
    assert table.empty
    assert list(table.columns) == ["trial_id", "name", "config", "optimizer", "batch_size", "seed", "width",
                                   "factor", "lr", "status", "error", "val_loss", "train_loss", "diverged",
                                   "diverged_reason", "steps", "wall_s", "node", "gpu_ids"]


def test_a_verification_trials_worker_config():
    spec = _spec(steps=10, candidates=[1, 3])
    t = verification.VerifyTrial("abc", "sgdm-bs32-width8-s0-x3", "sgdm-bs32-width8", "sgdm", "sgd",
                                 {"momentum": 0.9}, 32, 0, {"width": 8}, 3.0, 0.3)
    assert verification.verify_config(t, spec, spec.verify) == {
        "trial_id": "abc", "name": "sgdm-bs32-width8-s0-x3", "workload": "digits_cnn", "workload_args": {},
        "optimizer_name": "sgd", "optimizer_kwargs": {"momentum": 0.9}, "batch_size": 32, "seed": 0,
        "axes": {"width": 8}, "cpus": spec.resources.cpus_per_trial, "backend": "tensorflow",
        "lr": 0.3, "epochs": None, "steps": 10}


def _verify_table(metric_values: dict[tuple[str, float], float], status: str = "ok") -> pd.DataFrame:
    return pd.DataFrame([{"config": c, "factor": f, "lr": 0.1 * f, "status": status, "val_loss": 1.0,
                          "train_loss": 1.0, "diverged": False, "accuracy": v} for (c, f), v in metric_values.items()])


def test_per_candidate_without_an_ok_training_or_the_metric_is_an_empty_table():
    columns = ["config", "factor", "lr", "val_loss", "metric", "n_ok", "n_diverged"]
    failed = _verify_table({("a", 1.0): 0.5}, status="failed")
    assert list(verification.per_candidate(failed, "accuracy", True).columns) == columns
    ok = _verify_table({("a", 1.0): 0.5})
    assert verification.per_candidate(ok, "f1", True).empty  # no such metric in verify.csv
    assert list(verification.per_candidate(ok, "f1", True).columns) == columns


def test_a_higher_metric_ranks_first_when_higher_is_better():
    table = _verify_table({("a", 1.0): 0.6, ("b", 1.0): 0.9, ("c", 1.0): 0.7})
    cands = verification.per_candidate(table, "accuracy", True)
    ranking = pd.DataFrame({"config": ["a", "b", "c"], "rank": [1, 2, 3]})
    out = verification.verified_columns(ranking, cands, True).set_index("config")
    assert out["verified_rank"].tolist() == [3, 1, 2]
    assert out["verified_metric"].tolist() == pytest.approx([0.6, 0.9, 0.7])
