"""The ``lrrt`` command's contract: exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import os
import re
import sys

import pandas as pd
import pytest

from sweeps.cli import main
from tests.sweeps.conftest import REPO, run_lrrt, tiny_spec
from tests.sweeps.test_spec import BAD


def _ray_running() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


@pytest.mark.parametrize("text,key,word", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_sweep_file_exits_2_naming_file_and_key(tmp_path, capsys, text, key, word):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert str(path) in err[0] and key in err[0], err[0]
    assert not out.exists(), "nothing may be written for an invalid sweep"
    assert not _ray_running()
    assert main(["validate", str(path)]) == 2


def test_bad_resource_override_exits_2(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sweep", str(REPO / "sweeps/configs/quickstart.yaml"), "--out", str(out), "--gpus-per-trial", "-1"]) == 2
    err = capsys.readouterr().err
    assert "resources.gpus_per_trial" in err and "quickstart.yaml" in err
    assert not out.exists()


def test_unreachable_address_exits_2_before_anything_is_written(tmp_path, write_spec):
    out = tmp_path / "out"
    proc = run_lrrt("sweep", write_spec(tiny_spec()), "--out", out, "--address", "127.0.0.1:9", timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("lrrt: error: --address") and "127.0.0.1:9" in lines[-1]
    assert not out.exists()


def test_validate_prints_the_grid(capsys):
    assert main(["validate", str(REPO / "sweeps/configs/quickstart.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if re.match(r"^\d+\s+\S+-bs\d+-s\d+\s", line)]
    assert [r[0] for r in rows] == [str(i) for i in range(1, 13)]  # one numbered row per trial
    assert [r[1] for r in rows][6:9] == ["adam-bs32-s0", "adam-bs64-s0", "adam-bs128-s0"]
    assert all(re.fullmatch(r"[0-9a-f]{12}", r[2]) for r in rows) and len({r[2] for r in rows}) == 12
    assert "trials    12 (12 configurations x 1 seed(s))" in lines
    assert "resources 1 CPU(s) and 0 GPU(s) per trial; all trials together: 12 CPUs, 0 GPUs" in lines


def test_validate_shows_resource_overrides(capsys):
    """--gpus-per-trial 0.5 stays half a GPU (not rounded up); --max-concurrent is shown."""
    assert main(["validate", str(REPO / "sweeps/configs/quickstart.yaml"), "--gpus-per-trial", "0.5",
                 "--cpus-per-trial", "2", "--max-concurrent", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "resources 2 CPU(s) and 0.5 GPU(s) per trial; all trials together: 24 CPUs, 6 GPUs" in lines
    assert any(line.startswith("limits    max concurrent trials: 3;") for line in lines), lines


def test_report_on_a_non_sweep_dir_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "sweep.json" in capsys.readouterr().err


def test_out_dir_with_foreign_files_is_refused(tmp_path, capsys, write_spec):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["sweep", str(write_spec(tiny_spec())), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_fresh_refuses_a_folder_with_foreign_files(tmp_path, capsys, write_spec):
    """--fresh clears an lrrt output directory, never a folder of the user's own files."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "trials.csv").write_text("looks like ours")
    assert main(["sweep", str(write_spec(tiny_spec())), "--out", str(out), "--fresh"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--fresh only clears an lrrt output directory" in err[0] and str(out) in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "trials.csv"]
    assert (out / "notes.txt").read_text() == "mine"
    assert not _ray_running()


@pytest.mark.tf
def test_find_runs_one_range_test_and_writes_curve_and_plot(tmp_path):
    out = tmp_path / "find"
    proc = run_lrrt("find", "--workload", "digits_cnn", "--optimizer", "adam", "--batch-size", "64",
                    "--steps", "60", "--out", out, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    frame = pd.read_parquet(out / "curve.parquet")
    # The printed suggestions are those of the written curve (not just their names).
    from lrrt_core import suggest_all
    from lrrt_core.curve import Curve

    curve = Curve(lrs=frame["lr"].to_numpy(), losses=frame["loss"].to_numpy(), steps_planned=60,
                  stop_reason="completed" if len(frame) == 60 else "diverged", params={"smoothing": 0.98})
    printed = dict(re.findall(r"^  (\w+) +(\S+)", proc.stdout, flags=re.M))
    expected = {m: f"{s.lr:.3g}" if s.lr is not None else "none" for m, s in suggest_all(curve).items()}
    assert printed == expected, proc.stdout
    assert list(frame.columns) == ["step", "lr", "loss", "smoothed_loss"]
    assert 10 < len(frame) <= 60
    assert (out / "curve.csv").is_file() and (out / "curve.png").stat().st_size > 1000
    assert "I0000" not in proc.stderr and "cuda" not in proc.stderr.lower()  # TF's C++ logs are quiet


def test_find_bad_bounds_exit_2(tmp_path):
    proc = run_lrrt("find", "--start-lr", "1", "--end-lr", "0.1", "--steps", "10", "--out", tmp_path / "f", timeout=300)
    assert proc.returncode == 2
    assert "end_lr" in proc.stderr and "Traceback" not in proc.stderr


def test_report_rank_by_choices_and_alias(tmp_path, capsys):
    from tests.sweeps.synthetic import standard_sweep  # hand-made records, no Ray

    out = tmp_path / "s"
    standard_sweep(out)
    assert main(["report", str(out), "-q", "--rank-by", "sma"]) == 0
    assert (out / "ranking.csv").is_file()
    with pytest.raises(SystemExit) as info:
        main(["report", str(out), "--rank-by", "nonsense"])
    assert info.value.code == 2


def test_second_driver_on_the_same_out_is_refused(tmp_path, capsys, write_spec):
    from sweeps import store

    out = tmp_path / "busy"
    out.mkdir()
    held = store.lock_out_dir(out)  # stands for a running `lrrt sweep`
    try:
        assert main(["sweep", str(write_spec(tiny_spec())), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "another lrrt sweep" in err and str(os.getpid()) in err
        assert not _ray_running()
    finally:
        held.close()
    # Released (also what the kernel does when a driver is SIGKILLed): the lock can be taken again.
    store.lock_out_dir(out).close()


@pytest.mark.parametrize("text, expected", [
    ("Failure # 1 (occurred at x)\nTraceback...\nValueError: the node died: bad value\n", "ValueError: the node died: bad value"),
    ("Failure # 1 (occurred at x)\nThe actor died unexpectedly before finishing this task.\n"
     "Worker exit detail: Worker unexpectedly exits with a connection error code 2. End of file. Some common causes",
     "worker process died (Worker unexpectedly exits with a connection error code 2. End of file)"),
    ("Failure # 1 (occurred at x)\nRuntimeError: first\nFailure # 2 (occurred at y)\nKeyError: 'second'\n", "KeyError: 'second'"),
])
def test_error_summary_reads_the_last_failure(text, expected):
    from sweeps.trial_kinds import error_summary

    assert error_summary(text) == expected


def test_report_ranks_by_the_sweep_files_rank_by_by_default(tmp_path):
    import json

    from sweeps.reduce import reduce_dir
    from tests.sweeps.synthetic import standard_sweep

    out = tmp_path / "s"
    standard_sweep(out)
    manifest = json.loads((out / "sweep.json").read_text())
    manifest.setdefault("spec", {}).setdefault("report", {})["rank_by"] = "valley"
    (out / "sweep.json").write_text(json.dumps(manifest))
    assert reduce_dir(out).rank_by == "valley"
    assert reduce_dir(out, rank_by="minimum").rank_by == "minimum"


def test_damaged_manifest_is_one_line_exit_2(tmp_path, capsys, write_spec):
    out = tmp_path / "dmg"
    out.mkdir()
    (out / "sweep.json").write_text("{not json")
    assert main(["report", str(out)]) == 2
    assert main(["sweep", str(write_spec(tiny_spec())), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("damaged" in line for line in err)


def test_find_bad_axis_value_exit_2(tmp_path, capsys):
    assert main(["find", "--axis", "width=[1", "--out", str(tmp_path / "f")]) == 2
    assert "--axis: width: cannot read the value" in capsys.readouterr().err
