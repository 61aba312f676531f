"""The documented default steps per compiled call: 16 on a CPU, 32 on a GPU (README,
``docs/internals.md``), pinned as numbers, not read back from the constants."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lrrt_core.execution import steps_per_call_for

README = Path(__file__).resolve().parents[2] / "README.md"


def test_default_is_16_on_a_cpu_and_32_on_a_gpu():
    assert steps_per_call_for(on_accelerator=False) == 16
    assert steps_per_call_for(on_accelerator=True) == 32


def test_readme_states_the_same_defaults():
    text = " ".join(README.read_text(encoding="utf-8").split())
    found = re.search(r"by default (\d+) on a CPU and (\d+) on a GPU", text)
    assert found and (int(found.group(1)), int(found.group(2))) == (16, 32)


@pytest.mark.tf
def test_tensorflow_on_this_machine_picks_its_device_default():
    """What a range test without ``steps_per_call`` uses here: 16 on a CPU-only TensorFlow,
    32 where TensorFlow sees a GPU."""
    import tensorflow as tf

    from lrrt_core.execution import default_steps_per_call

    assert default_steps_per_call() == (32 if tf.config.list_logical_devices("GPU") else 16)
