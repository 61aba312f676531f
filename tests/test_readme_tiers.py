"""README's tier commands select what they say: each ``-m`` expression, evaluated by pytest's
own marker-expression parser on every combination of the markers, against the tier's rule.

A command-line ``-m`` replaces the ``-m "not slow"`` of ``addopts``, so a tier other than
``slow`` must exclude ``slow`` itself.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path

from _pytest.mark.expression import Expression

ROOT = Path(__file__).resolve().parents[1]
MARKERS = ("tf", "ray", "slow")
COMBOS = [frozenset(c) for n in range(len(MARKERS) + 1) for c in itertools.combinations(MARKERS, n)]
#: tier (in README's order) -> which tests it must select, by their markers
TIERS = {
    "fast": lambda m: not m,
    "tf": lambda m: "tf" in m and "slow" not in m,
    "ray": lambda m: "ray" in m and "slow" not in m,
    "slow": lambda m: "slow" in m,
}


def _selects(expr: str) -> set[frozenset]:
    compiled = Expression.compile(expr)
    return {m for m in COMBOS if compiled.evaluate(lambda name, m=m: name in m)}


def readme_tier_expressions() -> list[str]:
    """The ``-m`` expressions of the code block after README's "tiers by marker"."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"tiers by marker\b.*?```bash\n(.*?)```", text, flags=re.S | re.I)
    assert block, "README.md: no tier block after 'tiers by marker'"
    return [re.search(r'pytest -m ("[^"]+"|\S+)', line).group(1).strip('"')
            for line in block.group(1).splitlines() if "pytest -m " in line]


def test_each_readme_tier_selects_exactly_its_tests():
    exprs = readme_tier_expressions()
    assert len(exprs) == len(TIERS), exprs
    for (tier, rule), expr in zip(TIERS.items(), exprs):
        assert _selects(expr) == {m for m in COMBOS if rule(m)}, (tier, expr)


def test_the_non_slow_tiers_cover_the_default_suite():
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    default = re.search(r'-m "([^"]+)"', addopts).group(1)
    fast, tf, ray, _ = (_selects(e) for e in readme_tier_expressions())
    assert fast | tf | ray == _selects(default) == {m for m in COMBOS if "slow" not in m}
