"""Learning-rate suggestions from a range-test curve (pure numpy).

Every method is the same short pipeline of small pure pieces — cut the curve at the first
non-finite loss, smooth it, trim a window, pick an index — and answers with a
:class:`Suggestion` (a rate, or a reasoned "no suggestion"). The modules:

* :mod:`~lrrt_core.suggest.pipeline` — the :class:`Suggestion`, the windows (lrrt's own
  :func:`trim_window`, the peers' :func:`peer_window` on :func:`peer_record_length`), and
  ``prepare`` (cut, smooth, window);
* :mod:`~lrrt_core.suggest.features` — what the methods read off a curve: :func:`log_slope`,
  :func:`loss_change`, :func:`final_descent`, :func:`longest_valley`; and whether a test
  stopped short of the informative region (:func:`short_ladder`, :func:`range_warning`);
* :mod:`~lrrt_core.suggest.methods` — the built-in methods, each a function of a curve (or
  arrays) and its own keywords: :func:`minimum`, :func:`minimum_div10`, :func:`steepest`,
  :func:`valley`, :func:`sma_rule`, :func:`centered_min_div3`, :func:`centered_min_opt`;
* :mod:`~lrrt_core.suggest.registry` — :data:`METHODS`, every method once with its call in
  one shape (``fn(curve, options)``), its ``trials.csv`` column and its description;
  :func:`register` adds one (see ``docs/finder.md``, "Add a suggestion method");
  :func:`suggest_all` and :func:`summarize` run them all.

Example:
    >>> import numpy as np
    >>> from lrrt_core.suggest import METHODS, suggest_all
    >>> lrs = np.logspace(-5, 0, 101)
    >>> out = suggest_all(lrs, 2.0 - np.tanh((np.log10(lrs) + 2.5) / 0.5))
    >>> list(out) == list(METHODS), out["steepest"].ok
    (True, True)
"""

from __future__ import annotations

from lrrt_core.suggest.features import (DEFAULT_SMA, final_descent, log_slope, longest_valley, loss_change,
                                        range_warning, short_ladder)
from lrrt_core.suggest.methods import (CENTERED_DECADES, DIVISOR_OTHER, DIVISOR_PLAIN_SGD, centered_min_div3,
                                       centered_min_opt, minimum, minimum_div10, plain_sgd, sma_rule, steepest, valley)
from lrrt_core.suggest.pipeline import (DEFAULT_MIN_POINTS, DEFAULT_SKIP_END, DEFAULT_SKIP_START, PEERS, Suggestion,
                                        peer_record_length, peer_window, trim_window)
from lrrt_core.suggest.registry import (ALIASES, DEFAULT_METHOD, METHODS, Method, Options, get_method, method_name,
                                        register, suggest_all, summarize, summary_keys, unregister)

__all__ = [
    "METHODS", "Method", "Options", "register", "unregister", "get_method", "ALIASES", "method_name",
    "DEFAULT_METHOD", "suggest_all", "summarize", "summary_keys", "Suggestion",
    "minimum", "minimum_div10", "steepest", "valley", "sma_rule", "centered_min_div3", "centered_min_opt",
    "plain_sgd", "DIVISOR_PLAIN_SGD", "DIVISOR_OTHER", "CENTERED_DECADES",
    "trim_window", "peer_window", "peer_record_length", "PEERS", "DEFAULT_SKIP_START", "DEFAULT_SKIP_END",
    "DEFAULT_MIN_POINTS", "DEFAULT_SMA",
    "log_slope", "loss_change", "longest_valley", "final_descent", "range_warning", "short_ladder",
]
