"""Every change lrrt makes to Ray's private state, in one place (Ray 2.60).

Ray's public API has no switch for what is done here; each patch says what it changes,
why, and that it restores Ray's state on leaving. A Ray upgrade that moves or renames what
a patch touches fails here, loudly, and nowhere else. Imported only once Ray runs (it
imports ``ray.tune``).

:func:`tune_actors_without_runtime_env`
    Tune's trial actors start on the workers a local Ray prestarted (TensorFlow loaded).
"""

from __future__ import annotations

import contextlib

from ray.tune.execution import class_cache

__all__ = ["tune_actors_without_runtime_env"]


@contextlib.contextmanager
def tune_actors_without_runtime_env():
    """Let Tune's trial actors run on the workers a local Ray prestarted (TensorFlow loaded).

    Ray 2.60's Tune gives every trainable actor ``runtime_env={"env_vars": {...}}``:
    ``PL_DISABLE_FORK=1`` (a PyTorch Lightning workaround, ray#28197) plus a few variables it
    copies from the driver (``ray.tune.execution.class_cache.DEFAULT_ENV_VARS`` and
    ``ENV_VARS_TO_PROPAGATE``, private). Ray starts a fresh worker for any actor with a
    non-empty runtime env instead of using an idle prestarted one, so each trial actor
    would import TensorFlow from scratch. On a local Ray the workers inherit the driver's
    environment, in which ``sweeps.ray_session.LocalRay.connect`` also sets
    ``PL_DISABLE_FORK=1``; Tune's copy is therefore redundant and both tables are emptied
    while the trials are launched, and restored on leaving. Ray's own behaviour is
    unchanged otherwise. Only for a local Ray this process started (a cluster's workers do
    not inherit the driver's environment).
    """
    defaults, propagate = dict(class_cache.DEFAULT_ENV_VARS), set(class_cache.ENV_VARS_TO_PROPAGATE)
    class_cache.DEFAULT_ENV_VARS.clear()
    class_cache.ENV_VARS_TO_PROPAGATE.clear()
    try:
        yield
    finally:
        class_cache.DEFAULT_ENV_VARS.update(defaults)
        class_cache.ENV_VARS_TO_PROPAGATE.update(propagate)
