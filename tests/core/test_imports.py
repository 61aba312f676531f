"""Heavy dependencies enter through one module each (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys


HEAVY = ("tensorflow", "keras", "ray", "matplotlib", "jax", "torch")


def loaded_after(code: str) -> set[str]:
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_analysis_modules_are_pure_numpy():
    loaded = loaded_after("import lrrt_core.suggest, lrrt_core.curve, lrrt_core.ladders")
    assert loaded.isdisjoint({"tensorflow", "keras", "ray", "matplotlib"}), loaded


def test_package_and_lazy_suggest_names_stay_light():
    loaded = loaded_after("import lrrt_core\nfrom lrrt_core import Suggestion, suggest_all")
    assert loaded.isdisjoint({"tensorflow", "keras", "ray", "matplotlib"}), loaded


def test_plot_imports_matplotlib_but_not_tensorflow_or_ray():
    loaded = loaded_after("import lrrt_core.plot")
    assert "matplotlib" in loaded
    assert loaded.isdisjoint({"tensorflow", "ray"}), loaded


def test_plot_does_not_import_pyplot_or_set_backend():
    code = (
        "import os\nos.environ.pop('MPLBACKEND', None)\n"
        "import matplotlib\nbefore = matplotlib.rcParams._get_backend_or_none()\n"
        "import lrrt_core.plot\nimport sys\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
        "assert matplotlib.rcParams._get_backend_or_none() == before\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_verification_planning_and_reducing_stay_light():
    """The verification stage is decided and reduced without Ray or TensorFlow (lrrt report needs neither)."""
    loaded = loaded_after("import sweeps.verification, sweeps.reduce, sweeps.run, lrrt_core.verify")
    assert loaded.isdisjoint({"tensorflow", "keras", "ray", "matplotlib"}), loaded
