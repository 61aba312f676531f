"""The errors of bad input: one root, :class:`InvalidInput`, and one subclass per source.

Everything a user can get wrong before a sweep runs — the sweep file, an option, the output
directory, the Ray cluster, a workload builder — raises an :class:`InvalidInput`: the one
type the Python API raises for it, and the one the ``lrrt`` command prints (``str(err)``,
one line) before exiting 2. Plain Python: no pydantic, no Ray, so every module can import it.

Example:
    >>> err = UsageError("--out: /tmp/x is busy")
    >>> err.key, str(err)
    ('out', '--out: /tmp/x is busy')
    >>> str(SpecError("sweep.yaml", "range_test.end_lr", "must be greater than start_lr"))
    'sweep.yaml: range_test.end_lr: must be greater than start_lr'
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["InvalidInput", "SpecError", "UsageError", "OutDirRefused", "OutDirBusy", "LaunchError", "ROOT_KEY"]

ROOT_KEY = "<root>"
"""The key an error names when the problem is the whole file (missing, not YAML, not a mapping)."""


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


class InvalidInput(ValueError):
    """Bad input to a sweep, found before anything ran: the one type the Python API raises.

    Attributes:
        key: what is wrong, as a sweep-file key (``range_test.end_lr``) or an option name
            (``out``, ``address``, ``gpus_per_trial``, ``workload``).
        message: the one line to show (``str(err)``); the ``lrrt`` command prints it and exits 2.

    Subclasses: :class:`SpecError` (the sweep file or dict), :class:`UsageError` (other
    options, a busy or damaged output directory), :class:`OutDirRefused` (an output
    directory holding another sweep) and :class:`LaunchError` (the Ray cluster, the builder).
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        self.message = _one_line(message)  # guarantee one line
        if key is None and self.message.startswith("--"):
            key = self.message[2:].split(":", 1)[0].replace("-", "_")  # "--out: ..." -> "out"
        self.key = key or ROOT_KEY
        super().__init__(self.message)


class SpecError(InvalidInput):
    """An invalid sweep file: which file, which key, what is wrong.

    Attributes:
        file: the file as given (or ``"<dict>"`` for ``sweeps.spec.spec_from_dict``).
        key: dotted path to the offending value, e.g. ``grid.optimizer[2].weight_decay`` or
            ``range_test.end_lr``; :data:`ROOT_KEY` when the whole file is at fault.
        message: human wording, one line, saying what to change.

    ``str(err)`` is ``"{file}: {key}: {message}"`` on one line: what ``lrrt`` prints on
    stderr before exiting with code 2.
    """

    def __init__(self, file: str | Path, key: str, message: str) -> None:
        self.file = str(file)
        ValueError.__init__(self, f"{self.file}: {key}: {_one_line(message)}")
        self.key = key
        self.message = _one_line(message)


class UsageError(InvalidInput):
    """Bad input found before anything ran (an option, the output directory): exit 2."""


class OutDirRefused(InvalidInput):
    """The output directory cannot take this sweep (it holds another one, or foreign files)."""


class OutDirBusy(UsageError):
    """Another ``lrrt sweep`` (or ``lrrt verify``) holds the output directory's lock."""


class LaunchError(InvalidInput):
    """Invalid request found before anything starts (the CLI exits 2 with this line)."""
