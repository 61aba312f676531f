"""sweeps.store: atomic writes, manifest and trial records (no Ray, no TensorFlow)."""

from __future__ import annotations

import json
import logging
import math
import os

import numpy as np
import pandas as pd
import pytest

from lrrt_core.curve import Curve
from sweeps import store


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_text_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "out.txt"
    store.atomic_write_text(path, "x" * 10_000)
    store.atomic_write_text(path, "short")
    assert path.read_text() == "short"  # replaced whole, no tail of the old content
    assert _files(tmp_path) == ["out.txt"]


def test_atomic_write_creates_parent_folders(tmp_path):
    path = tmp_path / "a" / "b" / "c.bin"
    store.atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / "keep.txt"
    store.atomic_write_text(path, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(store.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert _files(tmp_path) == ["keep.txt"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_atomic_write_frame_round_trip(tmp_path, suffix):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y|<z>"], "c": [0.5, np.nan]})
    path = tmp_path / f"t{suffix}"
    store.atomic_write_frame(df, path)
    back = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert _files(tmp_path) == [path.name]


def test_atomic_write_frame_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="unsupported"):
        store.atomic_write_frame(pd.DataFrame({"a": [1]}), tmp_path / "t.xlsx")


def test_manifest_round_trip(tmp_path):
    assert store.read_manifest(tmp_path) is None
    trials = [{"trial_id": "abc123def456", "name": "sgd-bs32-s0", "config": "sgd-bs32",
               "params": {"optimizer": "sgd", "batch_size": 32, "seed": 0, "axes": {}}}]
    store.write_manifest(tmp_path, {"name": "demo", "spec": {"a": 1}, "fingerprint": "ff", "trials": trials})
    m = store.read_manifest(tmp_path)
    assert m["schema"] == 1 and m["name"] == "demo" and m["trials"] == trials
    assert (tmp_path / "sweep.json").is_file()


def test_broken_manifest_raises(tmp_path):
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(ValueError, match="sweep.json"):
        store.read_manifest(tmp_path)


def test_record_round_trip_with_curve_and_nan(tmp_path):
    curve = Curve(lrs=np.array([1e-3, 1e-2]), losses=np.array([2.0, 1.5]), params={"smoothing": 0.98})
    rec = {"trial_id": "0123456789ab", "name": "n", "status": "ok", "wall_s": float("nan"),
           "gpu_ids": np.array([0, 1]), "curve": curve.to_dict()}
    path = store.write_record(tmp_path, rec)
    assert path == tmp_path / "trials" / "0123456789ab.json"
    json.loads(path.read_text())  # strict JSON: no NaN literal
    back = store.read_records(tmp_path)["0123456789ab"]
    assert back["schema"] == 1 and back["wall_s"] is None and back["gpu_ids"] == [0, 1]
    c = Curve.from_dict(back["curve"])
    np.testing.assert_array_equal(c.losses, curve.losses)
    assert _files(tmp_path / "trials") == ["0123456789ab.json"]


def test_write_record_rewrites_whole_record(tmp_path):
    store.write_record(tmp_path, {"trial_id": "t1", "status": "failed", "error": "x" * 5000})
    store.write_record(tmp_path, {"trial_id": "t1", "status": "ok"})
    assert store.read_records(tmp_path)["t1"] == {"schema": 1, "trial_id": "t1", "status": "ok"}


def test_record_path_refuses_escaping_ids(tmp_path):
    for bad in ("../x", "a/b", "", ".."):
        with pytest.raises(ValueError):
            store.record_path(tmp_path, bad)
    with pytest.raises(ValueError, match="trial_id"):
        store.write_record(tmp_path, {"name": "no id"})


def test_corrupt_and_temp_records_are_skipped_with_a_warning(tmp_path, caplog):
    store.write_record(tmp_path, {"trial_id": "good", "status": "ok"})
    trials = tmp_path / "trials"
    (trials / "bad.json").write_text('{"trial_id": "bad", "status": "o')  # truncated
    (trials / "list.json").write_text("[1, 2]")
    (trials / "noid.json").write_text('{"status": "ok"}')
    (trials / ".good.json.abc.tmp").write_text("partial")
    with caplog.at_level(logging.WARNING, logger="sweeps.store"):
        records, corrupt = store.scan_records(tmp_path)
    assert list(records) == ["good"]
    assert sorted(corrupt) == ["bad", "list", "noid"]
    assert sum("corrupt" in r.getMessage() for r in caplog.records) == 3
    assert list(store.read_records(tmp_path)) == ["good"]


def test_read_records_without_trials_folder(tmp_path):
    assert store.read_records(tmp_path) == {}
    assert store.scan_records(tmp_path / "nope") == ({}, {})


def test_json_nan_and_inf_become_null(tmp_path):
    store.atomic_write_json(tmp_path / "x.json", {"a": [1.0, math.inf, -math.inf, math.nan], "b": np.float64(2.5)})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": [1.0, None, None, None], "b": 2.5}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


# --------------------------------------------------------------------------- typed layer: the files of earlier versions
#: a range-test record exactly as `lrrt sweep` wrote it before the record had a type.
OLD_RECORD = """{
 "schema": 1,
 "trial_id": "24d5c488a022",
 "name": "momentum-bs64-s0",
 "config": "momentum-bs64",
 "params": {
  "optimizer": "momentum",
  "optimizer_name": "momentum",
  "optimizer_kwargs": {},
  "batch_size": 64,
  "seed": 0,
  "axes": {}
 },
 "status": "ok",
 "error": null,
 "attempts": 1,
 "retried": false,
 "node": "46758f0428218b00237a11f754d80b5d181ea2c03851db1dae600ded",
 "node_ip": "192.0.2.2",
 "gpu_ids": "",
 "wall_s": 0.6354293079984927,
 "finished_at": 1795992633.435578,
 "curve": {
  "lrs": [
   1e-05,
   2e-05
  ],
  "losses": [
   2.3,
   2.2
  ],
  "stop_reason": "completed",
  "diverged_lr": null,
  "steps_planned": 2,
  "wall_s": 0.5,
  "params": {
   "smoothing": 0.98
  },
  "nonfinite_loss": null
 }
}"""
#: a verification record (``result`` in place of ``curve``) and a manifest with a verification plan.
OLD_VERIFY_RECORD = """{
 "schema": 1,
 "trial_id": "0a1b2c3d4e5f",
 "name": "adam-bs32-s0-x0.333",
 "config": "adam-bs32",
 "params": {
  "optimizer": "adam",
  "factor": 0.333,
  "lr": 0.001
 },
 "status": "failed",
 "error": "worker process died",
 "attempts": 2,
 "retried": true,
 "node": null,
 "node_ip": null,
 "gpu_ids": "0",
 "wall_s": null,
 "finished_at": 1795992633.5,
 "result": null
}"""
OLD_MANIFEST = """{
 "schema": 1,
 "name": "quickstart",
 "fingerprint": "0123abcd",
 "source": "sweeps/configs/quickstart.yaml",
 "spec": {
  "name": "quickstart",
  "report": {
   "rank_by": "valley"
  },
  "verify": {
   "epochs": 2
  }
 },
 "created_at": 1795992610.25,
 "trials": [
  {
   "trial_id": "24d5c488a022",
   "name": "momentum-bs64-s0",
   "config": "momentum-bs64",
   "params": {
    "seed": 0
   }
  }
 ],
 "verify_trials": [
  {
   "trial_id": "0a1b2c3d4e5f",
   "name": "adam-bs32-s0-x0.333",
   "config": "adam-bs32",
   "params": {
    "lr": 0.001
   }
  }
 ]
}"""


def test_old_records_and_manifest_read_back_typed_and_write_the_same_bytes(tmp_path):
    old, new = store.SweepDir(tmp_path / "old"), store.SweepDir(tmp_path / "new")
    (old.path / "trials").mkdir(parents=True)
    (old.path / "verify").mkdir()
    (old.path / "trials" / "24d5c488a022.json").write_text(OLD_RECORD + "\n")
    (old.path / "verify" / "0a1b2c3d4e5f.json").write_text(OLD_VERIFY_RECORD + "\n")
    (old.path / "sweep.json").write_text(OLD_MANIFEST + "\n")

    rec = old.records()["24d5c488a022"]
    assert (rec.ok, rec.attempts, rec.node_ip, rec.payload_key, rec.params["batch_size"]) == (True, 1, "192.0.2.2",
                                                                                               "curve", 64)
    assert Curve.from_dict(rec.payload).losses.tolist() == [2.3, 2.2]
    vrec = old.records("verify")["0a1b2c3d4e5f"]
    assert (vrec.ok, vrec.payload_key, vrec.payload, vrec.retried) == (False, "result", None, True)
    m = old.read_manifest()
    assert (m.name, m.rank_by, m.trials[0].name, m.verify_trials[0].params) == (
        "quickstart", "valley", "momentum-bs64-s0", {"lr": 0.001})

    new.write_record(rec)
    new.write_record(vrec, "verify")
    new.write_manifest(m)
    for name in ("trials/24d5c488a022.json", "verify/0a1b2c3d4e5f.json", "sweep.json"):
        assert (new.path / name).read_text() == (old.path / name).read_text(), name


def test_a_manifest_without_a_plan_has_no_verify_trials_key_and_unknown_keys_survive(tmp_path):
    d = store.SweepDir(tmp_path)
    store.write_manifest(tmp_path, {"name": "x", "fingerprint": "f", "spec": {}, "trials": [], "future": [1]})
    m = d.read_manifest()
    assert m.verify_trials is None and m.extra == {"future": [1]} and m.source is None
    assert list(m.to_json()) == ["schema", "name", "fingerprint", "source", "spec", "created_at", "trials", "future"]
    planned = m.with_verification({"epochs": 1}, [])
    assert planned.to_json()["verify_trials"] == [] and planned.spec == {"verify": {"epochs": 1}}


def test_sweep_dir_pending_check_clear_and_lock(tmp_path):
    from types import SimpleNamespace

    d = store.SweepDir(tmp_path / "out")
    trials = [SimpleNamespace(trial_id=t) for t in ("a", "b", "c")]
    assert d.pending(trials) == (trials, {})  # no directory yet: everything, nothing written
    assert not d.path.exists()
    d.prepare(store.Manifest(name="s", fingerprint="f1"), fresh=False)
    d.write_record(store.TrialRecord("a", status="ok"))
    d.write_record(store.TrialRecord("b", status="failed", attempts=2))
    todo, records = d.pending(trials)
    assert [t.trial_id for t in todo] == ["b", "c"] and records["b"].attempts == 2
    assert [t.trial_id for t in d.pending(trials, fresh=True)[0]] == ["a", "b", "c"]
    d.check("f1", fresh=False)
    with pytest.raises(store.OutDirRefused, match="different sweep"):
        d.check("other", fresh=False)
    with pytest.raises(store.OutDirBusy):
        store.lock_out_dir(d.path)  # prepare took the lock
    import pickle

    copy = pickle.loads(pickle.dumps(d))  # as Tune pickles the callbacks holding d.write_record
    assert copy.path == d.path and copy._lock is None and d._lock is not None
    d.prepare(store.Manifest(name="s2", fingerprint="f2"), fresh=True)
    assert sorted(p.name for p in d.path.iterdir()) == [".lock", "sweep.json"]
    d.unlock()
    store.lock_out_dir(d.path).close()
