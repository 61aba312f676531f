"""The one progress line of a sweep: trials done / running / failed and an ETA (no Ray).

:class:`Progress` is fed by Tune callbacks (``sweeps.tune_run``): a trial started, reported a
step, was retried, ended; and after every step of Tune's loop, how many trials Tune itself
holds as ``RUNNING`` (:meth:`Progress.observe`). The running count on the line is that
number — Tune's own state — not a tally of start and end events, and a line is written
when the state changed, at most every ``min_interval`` seconds, so a line never lands in
the gap between one trial ending and the next one starting on its worker.

The ETA settles from the trials that finished: their median duration (from their own start,
so Ray's start-up and the workers' imports are not counted) times the work left, divided
by the number of trials that ran at once. Before any trial finished it is projected from
the running trials' reported steps, once one is a quarter done; before that it is
``--:--``.
"""

from __future__ import annotations

import io  # noqa: F401  (the doctest's stream)
import statistics
import sys
import time
from typing import Callable

__all__ = ["Progress", "fmt_clock"]


def fmt_clock(seconds: float | None) -> str:
    """``mm:ss`` below an hour, ``1.5 h`` above; ``--:--`` when unknown."""
    if seconds is None:
        return "--:--"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return time.strftime("%M:%S", time.gmtime(max(0.0, seconds)))


def _notebook_line():
    """A display handle for one updating output line when running in a Jupyter kernel, else ``None``.

    A kernel's stderr is no terminal: a carriage return does not rewrite the line, so each
    update would add one. An IPython display with an id is replaced in place instead.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    from IPython.display import display

    return display({"text/plain": "[lrrt] starting"}, raw=True, display_id=True)


class Progress:
    """Trials done / running / failed and an ETA on one line, instead of Ray's tables.

    On a terminal the line is rewritten in place; in a Jupyter notebook it is one output
    that updates; elsewhere (a log file) one line per change, at most every ``min_interval``
    seconds. ``clock`` (``time.monotonic``) is what durations are measured with.

    A changed count is written once it has held for ``settle`` seconds: the moment between
    one trial ending and the next starting on the freed worker is not a state worth a line.

    Example:
        >>> now = [0.0]
        >>> p = Progress(4, 100, stream=io.StringIO(), clock=lambda: now[0])
        >>> p.started("a"); p.started("b"); p.observe(2)
        >>> now[0] = 20.0; p.finished("a", ok=True)               # a took 20 s
        >>> p.eta_s()      # b: 0 s left; 2 not started x 20 s on 2 lanes
        20.0
    """

    def __init__(self, total: int, steps_per_trial: int, stream=None, min_interval: float = 2.0,
                 label: str = "", clock: Callable[[], float] = time.monotonic, settle: float = 0.5) -> None:
        self.total = total
        self.label = f"{label} " if label else ""
        self.steps = max(1, steps_per_trial)
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self.settle = settle
        self.clock = clock
        self.start = clock()
        self.done = 0
        self.failed = 0
        self.retries = 0
        self.running: dict[str, tuple[float, int]] = {}  # trial id -> (its start, its last reported step)
        self.n_running = 0  # Tune's own count of RUNNING trials (observe), else the started ones
        self.peak_running = 0
        self.durations: list[float] = []  # of the finished trials, each from its own start
        self._last_print = -float("inf")
        self._shown = ""  # the state the last line showed
        self._pending, self._changed_at = "", self.start  # the current state, and since when
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._display = _notebook_line() if stream is None and not self._tty else None

    def __getstate__(self) -> dict:
        """Tune pickles its callbacks into the experiment state: leave the output behind.

        A Jupyter kernel's ``sys.stderr`` holds the kernel's session (an HMAC key), which
        cannot be pickled; nor is it any use in a restored experiment.
        """
        return {**self.__dict__, "stream": None, "_display": None, "clock": time.monotonic}

    # ---- what happened (called by the Tune callbacks)
    def started(self, tid: str) -> None:
        self.running[tid] = (self.clock(), 0)
        self._set_running(max(self.n_running, len(self.running)))

    def stepped(self, tid: str, step: int) -> None:
        began = self.running.get(tid, (self.clock(), 0))[0]
        self.running[tid] = (began, step)
        self.show()

    def retried(self, tid: str) -> None:
        self.retries += 1
        self.running[tid] = (self.clock(), 0)  # it starts over (still running)
        self.show()

    def finished(self, tid: str, ok: bool) -> None:
        began = self.running.pop(tid, (None, 0))[0]
        if began is not None:
            self.durations.append(self.clock() - began)
        self.done += ok
        self.failed += not ok
        self._set_running(len(self.running))

    def observe(self, n_running: int) -> None:
        """Tune's own count of RUNNING trials (after each step of its loop); writes the line
        when something changed and ``min_interval`` has passed since the last one."""
        self._set_running(n_running)

    def _set_running(self, n: int) -> None:
        self.n_running = n
        self.peak_running = max(self.peak_running, n)
        self.show()

    # ---- the line
    def eta_s(self) -> float | None:
        """Seconds left: the work left (trials not started, and the rest of the running ones)
        at the median finished trial's duration, spread over the trials that ran at once."""
        per_trial = self._trial_seconds()
        if per_trial is None:
            return None
        now = self.clock()
        left_running = [max(0.0, per_trial - (now - began)) for began, _ in self.running.values()]
        waiting = max(0, self.total - self.done - self.failed - len(self.running))
        lanes = max(1, self.peak_running)
        return max(max(left_running, default=0.0), (waiting * per_trial + sum(left_running)) / lanes)

    def _trial_seconds(self) -> float | None:
        """A trial's duration: the median of the finished ones, else projected from the running
        trials a quarter done or more (their time so far x planned / reported steps)."""
        if self.durations:
            return statistics.median(self.durations)
        now = self.clock()
        projected = [(now - began) * self.steps / step for began, step in self.running.values()
                     if step >= 0.25 * self.steps]
        return statistics.median(projected) if projected else None

    def line(self) -> str:
        elapsed = fmt_clock(self.clock() - self.start)
        retry = f", {self.retries} retried" if self.retries else ""
        return (f"[lrrt] {self.label}{self.done + self.failed}/{self.total} done ({self.failed} failed{retry}), "
                f"{self.n_running} running, elapsed {elapsed}, ETA {fmt_clock(self.eta_s())}")

    def _state(self) -> str:
        return f"{self.done} {self.failed} {self.retries} {self.n_running}"

    def show(self, force: bool = False) -> None:
        """Write the line (or ``force``) when its state changed and held for ``settle`` s, at most
        every ``min_interval`` s (a terminal or notebook line also refreshes its clock and ETA
        then); a change not written yet is written by a later call (Tune's loop calls
        :meth:`observe` several times a second)."""
        now, state = self.clock(), self._state()
        if state != self._pending:
            self._pending, self._changed_at = state, now
        if not force:
            in_place = self._tty or self._display is not None
            if now - self._last_print < self.min_interval:
                return
            if state == self._shown and not in_place:
                return
            if state != self._shown and now - self._changed_at < self.settle:
                return
        self._last_print, self._shown = now, state
        self._write(self.line())

    def _write(self, text: str) -> None:
        if self._display is not None:
            self._display.update({"text/plain": text}, raw=True)
            return
        stream = self.stream or sys.stderr
        stream.write("\r" + text.ljust(100) if self._tty else text + "\n")
        stream.flush()

    def close(self) -> None:
        """The last line, with the final counts (and the terminal's newline)."""
        self.show(force=self._state() != self._shown or self._tty or self._display is not None)
        if self._tty and self._display is None:
            self.stream.write("\n")
            self.stream.flush()
