"""Exit codes and ``lrrt verify``'s options, without Ray: the pure functions the CLI and the
Python API share (``run.exit_code``, ``cli.verify_options``, ``run.verify_inputs``).

Known answers: a sweep directory written by hand (``tests.sweeps.synthetic``) with a
verification plan of 36 trainings, of which exactly one failed or is missing.
"""

from __future__ import annotations

import pytest

import sweeps
from sweeps import store, verification
from sweeps.cli import build_parser, main, verify_options
from sweeps.grid import expand
from sweeps.reduce import reduce_dir
from sweeps.run import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError, exit_code, verify_inputs
from sweeps.spec import spec_from_dict
from sweeps.store import Manifest
from tests.sweeps import synthetic as S
from tests.sweeps.conftest import tiny_spec

FACTORS = (1 / 3, 1.0, 3.0)


def _verified_sweep(out, *, fail: int = 0, missing: int = 0):
    """The standard sweep (12 ok range tests) and 6 configurations x 2 seeds x 3 candidates =
    36 planned trainings: the first ``fail`` failed, the next ``missing`` have no record."""
    S.standard_sweep(out)
    red = reduce_dir(out)
    planned = [verification.VerifyTrial(f"v{r.config}{seed}{f:.3g}", f"{r.config}-s{seed}-x{f:.3g}", r.config,
                                        r.optimizer, r.optimizer, {}, int(r.batch_size), seed, {}, f,
                                        float(r.suggested_lr_gmean) * f)
               for r in red.ranking.itertuples() for seed in (0, 1) for f in FACTORS]
    manifest = store.read_manifest(out)
    manifest["spec"] = {**manifest["spec"], "verify": {"epochs": 1, "candidates": list(FACTORS)}}
    manifest["verify_trials"] = verification.manifest_entries(planned)
    store.write_manifest(out, manifest)
    for i, t in enumerate(planned):
        if i < fail:
            store.write_record(out, {"trial_id": t.trial_id, "status": "failed", "error": "boom"}, "verify")
        elif i >= fail + missing:
            store.write_record(out, {"trial_id": t.trial_id, "status": "ok", "error": None, "wall_s": 1.0,
                                     "result": {"lr": t.lr, "val_loss": 0.5 + i / 100, "metrics": {},
                                                "train_loss": 0.5, "steps": 10, "diverged": False}}, "verify")
    return len(planned)


@pytest.mark.parametrize("fail, missing, code", [(0, 0, EXIT_OK), (1, 0, EXIT_FAILED), (0, 1, EXIT_FAILED)])
def test_load_and_report_exit_with_the_verification_trainings(tmp_path, fail, missing, code):
    """1 failed (or missing) training of 36, every range test ok: ``sweeps.load`` says what
    ``lrrt report`` exits with."""
    assert _verified_sweep(tmp_path, fail=fail, missing=missing) == 36
    red = reduce_dir(tmp_path)
    assert red.n_failed == 0 and red.n_missing == 0 and red.n_ok == 12  # the range tests are all ok
    assert red.verification.counts() == {"ok": 36 - fail - missing, "failed": fail, "missing": missing}
    result = sweeps.load(tmp_path)
    assert result.exit_code == code and result.ok is (code == EXIT_OK)
    assert exit_code(red) == code
    assert main(["report", str(tmp_path), "-q"]) == code


def test_exit_code_of_failed_missing_and_interrupted_range_tests(tmp_path):
    S.standard_sweep(tmp_path / "f", fail={"sgd-bs32-s0": "boom"})
    S.standard_sweep(tmp_path / "m", skip={"adam-bs512-s1"})
    failed, missing = reduce_dir(tmp_path / "f"), reduce_dir(tmp_path / "m")
    assert exit_code(failed) == EXIT_FAILED and exit_code(failed, unfinished=0) == EXIT_FAILED
    assert exit_code(missing) == EXIT_FAILED  # missing after a run that ended: not an interrupt
    assert exit_code(missing, unfinished=1) == EXIT_INTERRUPTED
    assert not sweeps.load(tmp_path / "f").ok and sweeps.load(tmp_path / "m").exit_code == EXIT_FAILED


# --------------------------------------------------------------------------- lrrt verify's options

FILE_VERIFY = {"epochs": 3, "candidates": [0.5, 1, 2], "top": 2, "metric": "accuracy"}
FILE_RESOURCES = {"cpus_per_trial": 1, "gpus_per_trial": 0, "max_concurrent": 3}


def _manifest():
    spec = spec_from_dict(tiny_spec(verify=FILE_VERIFY, resources=FILE_RESOURCES))
    return Manifest.for_sweep(spec, expand(spec))


def _verify(tmp_path, *flags: str):
    """``lrrt verify DIR FLAGS`` parsed by the real parser, then what it would run."""
    args = build_parser().parse_args(["verify", str(tmp_path), *flags])
    kw = verify_options(args)
    spec, settings = verify_inputs(_manifest(), tmp_path, **{k: v for k, v in kw.items() if k != "rank_by"})
    return spec, settings, kw


def test_verify_without_options_takes_the_file_settings(tmp_path):
    spec, settings, kw = _verify(tmp_path)
    assert (settings.epochs, settings.steps, settings.top, settings.metric) == (3, None, 2, "accuracy")
    assert settings.candidates == [0.5, 1, 2] and kw["rank_by"] is None
    assert spec.resources.model_dump(include=set(FILE_RESOURCES)) == FILE_RESOURCES


def test_verify_options_override_the_file(tmp_path):
    spec, settings, kw = _verify(tmp_path, "--steps", "20", "--candidates", "1", "3", "--max-concurrent", "2",
                                 "--cpus-per-trial", "2", "--rank-by", "valley")
    assert (settings.epochs, settings.steps) == (None, 20)  # --steps replaces the file's epochs
    assert settings.candidates == [1, 3]
    assert (settings.top, settings.metric) == (2, "accuracy")  # not given: the file's
    assert (spec.resources.max_concurrent, spec.resources.cpus_per_trial, spec.resources.gpus_per_trial) == (2, 2, 0)
    assert kw["rank_by"] == "valley"
    spec, settings, _ = _verify(tmp_path, "--epochs", "1", "--top", "1", "--metric", "val_loss")
    assert (settings.epochs, settings.steps, settings.top, settings.metric) == (1, None, 1, "val_loss")
    assert settings.candidates == [0.5, 1, 2] and spec.resources.max_concurrent == 3


@pytest.mark.parametrize("flags, key", [(("--candidates", "0", "1"), "candidates"), (("--epochs", "0"), "epochs"),
                                        (("--top", "0"), "top")])
def test_bad_verify_option_names_the_option(tmp_path, flags, key):
    with pytest.raises(UsageError) as info:
        _verify(tmp_path, *flags)
    assert str(info.value).startswith(f"--{key}: ") and info.value.key == key
