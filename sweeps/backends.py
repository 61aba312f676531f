"""Which Keras backend a sweep's trials (and ``lrrt find``) run on: TensorFlow, JAX or PyTorch.

Keras 3 picks its backend once, when ``keras`` is first imported in a process, from the
``KERAS_BACKEND`` environment variable. So the choice is made *outside* the process that
trains: the driver checks that the backend's package is installed before anything starts
(:func:`check_available`), and puts ``KERAS_BACKEND`` (plus the backend's thread and
memory settings, :func:`worker_env`) into the environment of every Ray worker — inherited
from the driver on a local Ray, the job's ``runtime_env`` on a cluster. Each trial then
checks that Keras really runs on that backend (``sweeps.trainable``); JAX workers also
share compiled programs through JAX's persistent cache (:func:`use_jax_compilation_cache`).

This module imports nothing heavy: no Keras, no Ray, no backend package.

Example:
    >>> check_available("tensorflow") is None
    True
    >>> worker_env("torch", cpus_per_trial=1, gpus_per_trial=0)
    {'KERAS_BACKEND': 'torch'}
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Callable

from sweeps.errors import InvalidInput

logger = logging.getLogger(__name__)

BACKENDS = ("tensorflow", "jax", "torch")
"""The Keras backends a sweep may name (``backend:`` in the sweep file)."""
DEFAULT_BACKEND = "tensorflow"

PACKAGES = {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"), "torch": ("torch",)}
"""The packages each backend needs, besides Keras."""
INSTALL = {
    "tensorflow": 'pip install "lrrt" (TensorFlow is a default dependency; GPU: pip install "lrrt[gpu]")',
    "jax": 'pip install "lrrt[jax]" (or pip install jax; GPU: pip install "lrrt[jax-gpu]" or "lrrt[jax-cuda13]", i.e. "jax[cuda12]" or "jax[cuda13]")',
    "torch": 'pip install "lrrt[torch]" (or pip install torch)',
}
"""How to install each backend, as the error says it."""

def preload(backend: str) -> tuple[str, ...]:
    """What a local Ray may import into its workers as they start, for a sweep on ``backend``
    (``KERAS_BACKEND`` is already in their environment then, so ``keras`` comes up on it).

    TensorFlow is in the list for JAX and torch too when it is installed (it is a dependency
    of lrrt): Keras imports it whenever it is installed, on every backend —
    ``keras.utils.set_random_seed`` (to seed ``tf.data``), which workloads call to seed their
    weights, and its serialisation (an optimizer's ``get_config``, which the compiled-step
    cache reads) — so every trial process loads it anyway: better while the worker starts
    than inside the first trial.
    """
    tf = ("tensorflow",) if backend == "tensorflow" or not missing_packages("tensorflow") else ()
    first = () if backend == "tensorflow" else (backend,)
    return (*first, *tf, "keras")

# One-CPU JAX trials: XLA's CPU runtime otherwise starts an Eigen thread pool as wide as the
# machine in every trial process, and two 1-CPU trials on two cores fight over four threads
# (the JAX twin of TensorFlow ignoring OMP_NUM_THREADS; jax-ml/jax#1539). XLA has no flag for
# "N threads"; single-threaded Eigen is the one sound setting, so it is set for 1-CPU trials only.
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


#: The most a node's JAX compilation cache keeps (least recently used entries go first).
JAX_CACHE_MAX_BYTES = 2 << 30


def jax_cache_dir() -> Path:
    """Where a node's JAX trials keep compiled programs: ``$XDG_CACHE_HOME/lrrt/jax``
    (``~/.cache/lrrt/jax``), on each node's own disk."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lrrt" / "jax"


def use_jax_compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache in this (worker) process, before its first
    compile, and return the folder in use (``None``: off).

    Every trial process of a node then reads the programs that any earlier process compiled,
    also in an earlier sweep: a fresh worker's first trial of an architecture loads its step,
    the initialisers and the gathers instead of compiling them (measured on the digits
    ConvNet, CPU: 4.7 s -> 2.8 s). JAX keys each entry by the program, the jaxlib version and
    the device, so a stale entry is never used. A user's own setting wins:
    ``JAX_COMPILATION_CACHE_DIR`` in the environment (empty: no cache), or a folder already
    configured in this process; ``JAX_COMPILATION_CACHE_MAX_SIZE`` (bytes) replaces
    :data:`JAX_CACHE_MAX_BYTES`.
    """
    import jax

    configured = jax.config.jax_compilation_cache_dir
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") is not None or configured:
        return configured or None
    path = jax_cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        logger.debug("no JAX compilation cache (%s): %s", path, err)
        return None
    settings = {"jax_compilation_cache_dir": str(path)}
    if os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS") is None:
        # every program: a trial's many small ones (initialisers, gathers) add up to seconds
        settings["jax_persistent_cache_min_compile_time_secs"] = 0.0
    if os.environ.get("JAX_COMPILATION_CACHE_MAX_SIZE") is None and importlib.util.find_spec("filelock"):
        # a bounded cache is also a locked one: JAX then reads and writes entries under a file
        # lock, so the workers of a node never read an entry another one is still writing
        settings["jax_compilation_cache_max_size"] = JAX_CACHE_MAX_BYTES
    try:
        for name, value in reversed(settings.items()):  # the folder last: no cache half set up
            jax.config.update(name, value)
    except (AttributeError, ValueError) as err:  # a JAX without one of these options
        logger.debug("no JAX compilation cache: %s", err)
        return None
    return str(path)


def missing_packages(backend: str, find_spec: Callable[[str], object] | None = None) -> list[str]:
    """The packages ``backend`` needs that this Python cannot find (without importing them)."""
    find = find_spec or importlib.util.find_spec
    out = []
    for name in PACKAGES.get(backend, (backend,)):
        try:
            found = find(name)
        except (ImportError, ValueError):
            found = None
        if found is None:
            out.append(name)
    return out


def check_available(backend: str, find_spec: Callable[[str], object] | None = None) -> str | None:
    """``None`` when ``backend`` can run here, else the one-line reason (what to install).

    ``find_spec``: how packages are looked up (default :func:`importlib.util.find_spec`,
    which finds a package without executing it); tests pass their own.
    """
    if backend not in BACKENDS:
        return f"must be one of {', '.join(BACKENDS)}, got {backend!r}"
    missing = missing_packages(backend, find_spec)
    if not missing:
        return None
    return (f"the {backend} backend needs {' and '.join(missing)}, which this Python "
            f"({sys.executable}) cannot import; install it: {INSTALL[backend]}")


def worker_env(backend: str, *, cpus_per_trial: float, gpus_per_trial: float) -> dict[str, str]:
    """Environment variables every trial process of a sweep on ``backend`` needs before it
    imports Keras: ``KERAS_BACKEND`` (always, also for TensorFlow: a node whose shell says
    ``KERAS_BACKEND=jax`` must not run a TensorFlow sweep on JAX) and, for JAX, one-thread
    XLA for 1-CPU trials and no GPU memory preallocation for fractional GPUs (JAX's twin of
    TensorFlow's memory growth: several trials share the card).
    """
    env = {"KERAS_BACKEND": backend}
    if backend == "jax":
        if int(cpus_per_trial) <= 1:
            flags = os.environ.get("XLA_FLAGS", "")
            env["XLA_FLAGS"] = f"{flags} {XLA_ONE_THREAD}".strip() if "multi_thread_eigen" not in flags else flags
        if 0 < gpus_per_trial < 1:
            env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return env


def keras_backend_in_process() -> str | None:
    """The backend Keras already runs on in this process, or ``None`` when Keras is not imported."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return str(keras.backend.backend())
    except AttributeError:  # a partly imported keras
        return None


def use_in_process(backend: str) -> None:
    """Make this process's Keras run on ``backend`` (``lrrt find``, ``sweeps.find``).

    Raises:
        sweeps.errors.InvalidInput: (a ``ValueError``, ``key == "backend"``) the backend is
            unknown or not installed, or Keras is already imported on another backend in
            this process (a backend is fixed at import; start a new process or kernel, with
            ``KERAS_BACKEND`` set, to change it).
    """
    problem = check_available(backend)
    if problem:
        raise InvalidInput(f"backend: {problem}", key="backend")
    current = keras_backend_in_process()
    if current is not None and current != backend:
        raise InvalidInput(
            f"backend: Keras is already running on {current} in this process and cannot switch to {backend}; "
            f"restart the kernel (or process) and pass backend={backend!r} before anything imports keras, "
            f"or set KERAS_BACKEND={backend} before starting Python", key="backend")
    os.environ["KERAS_BACKEND"] = backend


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "PACKAGES", "INSTALL", "preload", "missing_packages", "check_available",
           "worker_env", "keras_backend_in_process", "use_in_process"]
