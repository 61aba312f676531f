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
