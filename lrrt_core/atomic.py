"""Atomic file writes: the one way lrrt writes a result file (STYLE.md #11).

The bytes go to a temporary file in the destination's folder, are flushed and
``fsync``-ed, then ``os.replace`` swaps it in (a rename on one file system: atomic on
POSIX and Windows) and the folder is ``fsync``-ed. A reader sees the old file or the new
one whole, never half of one; a crash leaves at most a stray ``.<name>.*.tmp`` file.

Standard library only (pandas is imported inside :func:`atomic_write_frame`), so every
layer — the finder's ``write_curve``, plots, the sweep store — uses these functions.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_write_frame"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; create missing parent folders.

    The data is written to a temporary file in the same folder (so ``os.replace`` is a
    rename on one file system, atomic on POSIX and Windows), flushed, ``fsync``-ed, and
    renamed over ``path``. An existing file is replaced whole. On any error the temporary
    file is removed and the old ``path`` (if any) is left untouched.

    Args:
        path: destination file.
        data: the complete new content.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Best-effort fsync of a folder so the rename itself survives a power cut (POSIX)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode(encoding))


def _json_default(obj: Any) -> Any:
    """Make numpy scalars/arrays and paths JSON-serialisable without importing numpy."""
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _nan_to_none(obj: Any) -> Any:
    """Replace non-finite floats by ``None``: strict JSON has no NaN/Infinity."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as strict, indented JSON atomically (NaN/inf become ``null``)."""
    # Round-trip through the default hook first so numpy values are plain before NaN scrub.
    plain = json.loads(json.dumps(obj, default=_json_default, allow_nan=True))
    text = json.dumps(_nan_to_none(plain), indent=1, sort_keys=False, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def atomic_write_frame(df, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write a pandas DataFrame to ``.csv`` or ``.parquet`` atomically.

    The format follows the suffix. CSV is written without the index unless
    ``index=True`` is passed; parquet uses pyarrow. Extra ``kwargs`` go to
    ``DataFrame.to_csv`` / ``DataFrame.to_parquet``.

    Raises:
        ValueError: for any other suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        kwargs.setdefault("index", False)
        buf = io.StringIO()
        df.to_csv(buf, **kwargs)
        return atomic_write_text(path, buf.getvalue())
    if suffix in (".parquet", ".pq"):
        kwargs.setdefault("index", False)
        buf = io.BytesIO()
        df.to_parquet(buf, **kwargs)
        return atomic_write_bytes(path, buf.getvalue())
    raise ValueError(f"atomic_write_frame: unsupported file type {path.suffix!r} for {path}")




def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, not thread-safe to probe


def _umask() -> int:
    return _UMASK
