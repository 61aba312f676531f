"""Ctrl-C during a launch: a flag while Tune is being set up, a clean stop at Tune's first step.

Until Tune's own Ctrl-C handler takes over, Ctrl-C sets a flag instead of raising
``KeyboardInterrupt`` wherever the main thread is: inside Tune's import or Ray's C code,
such an exception can leave the interpreter unable to import anything (seen: the partial
report's ``import pandas`` failing after it). Tune's run then ends at its first step (the
stopper of ``sweeps.tune_run`` asks :meth:`CtrlC.pressed`), the trials unfinished, as after
a Ctrl-C Tune caught. A second Ctrl-C raises as usual. Outside the main thread nothing
changes. No Ray import.
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["CtrlC", "CTRL_C"]


class CtrlC:
    """The Ctrl-C flag of one process, and the handler that sets it."""

    def __init__(self) -> None:
        self._pressed = threading.Event()

    def pressed(self) -> bool:
        """True once Ctrl-C was pressed inside :meth:`as_stop`."""
        return self._pressed.is_set()

    @contextlib.contextmanager
    def as_stop(self):
        """Inside the block (main thread only), the first Ctrl-C sets the flag; a second raises."""
        self._pressed.clear()

        def handler(signum, frame):
            if self._pressed.is_set():
                raise KeyboardInterrupt
            self._pressed.set()

        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: signals are not ours to handle
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


#: The process's one flag: signals belong to the process. Tune pickles its stopper with the
#: experiment; the stopper names this object by module instead of holding its lock.
CTRL_C = CtrlC()
