"""The ``lrrt`` help texts say what a user needs (issue 21): ``--rank-by`` lists each method once
by its name (the alias ``sma`` still works), ``validate`` has a description, ``report -q`` has a
help line, ``find --help`` shows every default. Runs the installed console script (no Ray)."""

from __future__ import annotations

import re

import pytest

from sweeps.cli import build_parser
from tests.sweeps.conftest import run_installed_lrrt
from lrrt_core.suggest import METHODS


def _help(tmp_path, *command) -> str:
    proc = run_installed_lrrt(*command, "--help", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return " ".join(proc.stdout.split())


@pytest.mark.parametrize("command", ["sweep", "verify", "report"])
def test_rank_by_lists_each_method_once_and_accepts_the_alias(command, tmp_path):
    text = _help(tmp_path, command)
    listed = re.search(r"--rank-by \{([^}]*)\}", text).group(1).split(",")
    assert listed == list(METHODS) and "sma" not in listed
    args = build_parser().parse_args([command, "x", "--rank-by", "sma"])
    assert args.rank_by == "sma_rule"
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "x", "--rank-by", "nonsense"])


def test_validate_report_and_find_help(tmp_path):
    assert "Check CONFIG" in (text := _help(tmp_path, "validate")) and "Launches nothing and writes nothing" in text
    assert re.search(r"-q, --quiet print nothing", _help(tmp_path, "report"))
    find = _help(tmp_path, "find")
    for option, default in (("--workload", "digits_cnn"), ("--optimizer", "adam"), ("--batch-size", "64"),
                            ("--seed", "0"), ("--start-lr", "1e-06"), ("--end-lr", "10.0"), ("--ladder", "exp"),
                            ("--loss", "train"), ("--diverge-threshold", "4.0"), ("--smoothing", "0.98")):
        after = find.split(f"  {option}" if f"  {option}" in find else f" {option} ", 1)[-1]
        assert f"(default: {default})" in after.split(" --")[0], (option, after[:200])
