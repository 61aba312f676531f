"""Suite-wide helpers."""

from __future__ import annotations

import os

import pytest


def missing_tool(what: str, how: str) -> None:
    """A check README claims needs ``what``, which is not here: skip locally, FAIL under CI.

    ``.ci/run`` installs every tool the suite uses (PyTorch, JAX, Chromium) and sets
    ``CI=true``; there a missing tool means a claimed check did not run, which must not
    pass as a skip.
    """
    msg = f"{what} is not installed ({how})"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI: {msg}; this check is claimed as tested", pytrace=False)
    pytest.skip(msg)


# --------------------------------------------------------------------------- pytest-xdist groups
# README's command runs two pytest-xdist workers (addopts: -n 2 --dist loadgroup). xdist hands
# out the largest group first, so the two Ray lanes start at once, one per worker, and the
# other tests fill in around them.


def _shares_a_built_fixture(item: pytest.Item) -> bool:
    """Does ``item`` use a module- or session-scoped fixture of this suite (a sweep directory,
    a report, a cluster built once for several tests)?"""
    for defs in item._fixtureinfo.name2fixturedefs.values():
        fixture = defs[-1]
        if fixture.scope in ("module", "session") and getattr(fixture.func, "__module__", "").startswith("tests."):
            return True
    return False


def xdist_group_of(item: pytest.Item) -> str | None:
    """Which tests pytest-xdist must run in one worker, one after another:

    * ``ray-shared``: the tests whose ``lrrt`` commands join the session's shared Ray head
      (``tests/sweeps/conftest.py``'s ``shared_ray``): one head, one test at a time on it;
    * ``ray-local``: every other ``ray`` test: a local Ray of its own, or a cluster on free
      ports, one at a time (some wait for two trials to run at once on the machine's CPUs);
    * the tests of a module that share a module-scoped fixture, so it is built once.

    Every other test goes to whichever worker is free.
    """
    if item.get_closest_marker("ray"):
        return "ray-shared" if "shared_ray" in item.fixturenames else "ray-local"
    if _shares_a_built_fixture(item):
        return item.module.__name__
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        group = xdist_group_of(item)
        if group and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group))
