"""The suggestion-method registry: every method once, with its name, its function, its column
and its description; everything else reads it (pure numpy).

A method is a :class:`Method`: a function of one call shape, ``fn(curve, options) ->
Suggestion``, taking a :class:`~lrrt_core.curve.Curve` and the shared :class:`Options`
(each method reads the options it uses), plus the column of its rate in ``trials.csv``
(``{name}_lr`` unless told) and one line saying what it picks. :data:`METHODS` holds them in
order; :func:`suggest_all` and :func:`summarize` run them all, and the sweep's tables
(``trials.csv`` columns), the report's method note, ``--rank-by``'s choices and the sweep
file's ``report.rank_by`` read the same registry, so a method registered once appears in all
of them (fastai's ``suggest_funcs`` in the same spirit: one call shape, any number of rules).

Example:
    >>> import numpy as np
    >>> from lrrt_core.suggest import METHODS, Method, Suggestion, register, unregister
    >>> def last(curve, options):
    ...     return Suggestion("last", float(curve.lrs[-1]), curve.steps_run - 1, "the last rate")
    >>> _ = register(Method("last", last, "the ladder's last rate (a toy)"))
    >>> "last" in METHODS, METHODS["last"].column
    (True, 'last_lr')
    >>> _ = unregister("last")
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterator, Mapping

import numpy as np

import lrrt_core.suggest.methods as m
from lrrt_core.curve import Curve, cut_nonfinite, ema
from lrrt_core.suggest.features import DEFAULT_SMA
from lrrt_core.suggest.pipeline import DEFAULT_MIN_POINTS, Suggestion, as_curve


@dataclasses.dataclass(frozen=True)
class Options:
    """What :func:`suggest_all` may set for every method; each method reads the ones it uses.

    Attributes:
        skip_start, skip_end: ``None`` leaves each method its own trims (fastai's
            ``steps_planned // 10`` and 5 for the fastai ports, 10 and 5 for ``steepest`` and
            ``sma_rule``); a number applies to every method that trims.
        steps_planned: fastai's ``num_it`` for the fastai ports (``None``: the curve's).
        beta: the EMA of the EMA-based methods (``None``: the curve's recorded smoothing).
        min_points: fewest finite points every method needs.
        sma: keras-lr-finder's ``sma`` of ``sma_rule``.
    """

    skip_start: int | None = None
    skip_end: int | None = None
    steps_planned: int | None = None
    beta: float | None = None
    min_points: int = DEFAULT_MIN_POINTS
    sma: int = DEFAULT_SMA

    def pick(self, *names: str) -> dict[str, Any]:
        """The options ``names`` as keywords of a method (an unset trim is left out: the method's own)."""
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None or n not in ("skip_start", "skip_end")}


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered suggestion method.

    Attributes:
        name: its name (``--rank-by NAME``, ``report.rank_by``, :func:`summarize`'s ``rank_by``).
        fn: ``fn(curve: Curve, options: Options) -> Suggestion``.
        description: one line saying what it picks (the report's method note).
        column: its rate's column in ``trials.csv`` and :func:`summarize` (default ``{name}_lr``).
    """

    name: str
    fn: Callable[[Curve, Options], Suggestion]
    description: str
    column: str = ""

    def __post_init__(self) -> None:
        if not self.column:
            object.__setattr__(self, "column", f"{self.name}_lr")

    def __call__(self, curve_or_lrs: Curve | np.ndarray, losses: np.ndarray | None = None, **options: Any) -> Suggestion:
        """The method on a curve (or ``lrs, losses`` arrays) with :class:`Options` given by name."""
        return self.fn(as_curve(curve_or_lrs, losses), Options(**options))


class Registry(Mapping[str, Method]):
    """The registered methods by name, in registration order (iterating gives the names)."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    def __getitem__(self, name: str) -> Method:
        return self._methods[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._methods)

    def __len__(self) -> int:
        return len(self._methods)

    def __repr__(self) -> str:
        return f"Registry({', '.join(self._methods)})"

    def columns(self) -> list[str]:
        """Each method's column, in order."""
        return [method.column for method in self._methods.values()]

    def register(self, method: Method) -> Method:
        """Add ``method``; a name or column already taken is a ``ValueError``."""
        if method.name in self._methods or method.name in ALIASES:
            raise ValueError(f"a suggestion method {method.name!r} is already registered")
        if method.column in self.columns() or method.column in SUMMARY_KEYS:
            raise ValueError(f"column {method.column!r} of method {method.name!r} is already taken")
        self._methods[method.name] = method
        return method

    def unregister(self, name: str) -> Method:
        """Remove the method ``name`` (the default cannot be removed)."""
        if name == DEFAULT_METHOD:
            raise ValueError(f"{name!r} is the default method and cannot be unregistered")
        return self._methods.pop(name)


#: the method a sweep's report recommends unless told otherwise; chosen against real training
#: over five model families, leave-one-family-out (``tests/benchmarks/bench_truth.py``;
#: README "Which learning rate").
DEFAULT_METHOD = "centered_min_opt"
#: other names a user may give a method: keras-lr-finder's ``sma`` is ``sma_rule``.
ALIASES = {"sma": "sma_rule"}
#: the keys of :func:`summarize` that are not a method's column.
SUMMARY_KEYS = ("steps", "min_loss", "lr_at_min_loss", "suggested_lr", "diverged_lr", "stop_reason")
#: every suggestion method, by name (``name in METHODS``, ``list(METHODS)``, ``METHODS[name]``).
METHODS = Registry()
register = METHODS.register
unregister = METHODS.unregister

_FASTAI = ("skip_start", "skip_end", "steps_planned", "beta", "min_points")
#: the built-ins, in the order of their columns in ``trials.csv`` (README's table).
_BUILTINS = (
    ("steepest", m.steepest, ("skip_start", "skip_end", "beta", "min_points"), "",
     "where the EMA-smoothed loss falls fastest per decade of learning rate"),
    ("valley", m.valley, _FASTAI, "",
     "fastai's default: a third of the way into the longest descent of the EMA-smoothed loss"),
    ("minimum", m.minimum, _FASTAI, "", "the learning rate at the minimum of the EMA-smoothed loss (Smith 2015)"),
    ("minimum_div10", m.minimum_div10, _FASTAI, "",
     "a tenth of the learning rate at the minimum of the EMA-smoothed loss (fastai's minimum)"),
    ("sma_rule", m.sma_rule, ("skip_start", "skip_end", "sma", "min_points"), "sma_lr",
     "keras-lr-finder's get_best_lr: the steepest 20-step fall of the raw loss"),
    ("centered_min_div3", m.centered_min_div3, ("min_points",), "",
     "a third of the learning rate at the minimum of a lag-free (centred, half-decade) smoothing of the loss: "
     "Smith's max_lr / 3; the closest to the best rate in real training on the digits ConvNet (the default "
     "before centered_min_opt)"),
    ("centered_min_opt", m.centered_min_opt, ("min_points",), "",
     "the learning rate at the minimum of a lag-free (centred, half-decade) smoothing of the loss (Smith's "
     "max_lr), divided by 4 — by 1.5 for plain SGD without momentum; chosen against real training on five "
     "model families, leave-one-family-out (README, 'Which learning rate')"),
)


def _builtin(fn: Callable[..., Suggestion], uses: tuple[str, ...]) -> Callable[[Curve, Options], Suggestion]:
    """``fn``'s call in the registry's shape: the options it uses, by keyword."""
    return lambda curve, options: fn(curve, **options.pick(*uses))


for _name, _fn, _uses, _column, _text in _BUILTINS:
    register(Method(_name, _builtin(_fn, _uses), _text, _column))


def summary_keys() -> list[str]:
    """The keys of :func:`summarize`, in order: the summary columns of ``trials.csv``."""
    return [*SUMMARY_KEYS[:3], *METHODS.columns(), *SUMMARY_KEYS[3:]]


def method_name(name: str | None) -> str | None:
    """The registry name of a suggestion method given by the user (an alias resolved;
    ``None`` and unknown names are returned as they are, for the caller to refuse)."""
    return ALIASES.get(name, name) if isinstance(name, str) else name


def get_method(name: str) -> Method:
    """The registered method called ``name`` (callable: ``get_method("valley")(curve)``)."""
    if name not in METHODS:
        raise ValueError(f"unknown suggestion method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def suggest_all(curve_or_lrs: Curve | np.ndarray, losses: np.ndarray | None = None, **options: Any) -> dict[str, Suggestion]:
    """Every registered method on one curve: ``{name: Suggestion}`` in :data:`METHODS` order.

    ``options``: any of :class:`Options` (skip_start, skip_end, steps_planned, beta,
    min_points, sma), for every method that uses it.

    Example:
        >>> import numpy as np
        >>> lrs = np.logspace(-5, 0, 101)
        >>> out = suggest_all(lrs, 2.0 - np.tanh((np.log10(lrs) + 2.5) / 0.5))
        >>> list(out) == list(METHODS) and all(s.ok for s in out.values())
        True
    """
    curve, opts = as_curve(curve_or_lrs, losses), Options(**options)
    return {name: method.fn(curve, opts) for name, method in METHODS.items()}


def summarize(curve: Curve, rank_by: str = DEFAULT_METHOD, **options: Any) -> dict[str, Any]:
    """Summary scalars of one curve (a row of ``trials.csv``).

    Keys: ``steps`` (points run), ``min_loss`` (min of the smoothed loss over the finite
    curve, untrimmed), ``lr_at_min_loss``, each registered method's column (``minimum_lr``,
    ``minimum_div10_lr``, ``steepest_lr``, ``valley_lr``, ``sma_lr``, ...), ``suggested_lr`` (the
    ``rank_by`` method's lr), ``diverged_lr`` (NaN if none), ``stop_reason``. A method without a
    suggestion gives NaN.

    Args:
        curve: the range-test curve.
        rank_by: the method whose lr is ``suggested_lr`` (a name in :data:`METHODS`).
        **options: passed to :func:`suggest_all`.
    """
    if not isinstance(curve, Curve):
        raise TypeError(f"summarize expects a Curve, got {type(curve).__name__}")
    get_method(rank_by)  # validates the name
    rates = {name: float(s.lr) if s.ok else math.nan for name, s in suggest_all(curve, **options).items()}
    lrs, raw = cut_nonfinite(curve.lrs, curve.losses)
    if raw.size:
        beta = options.get("beta")
        smoothed = ema(raw, curve.beta if beta is None else beta)
        i_min = int(np.argmin(smoothed))
        min_loss, lr_at_min = float(smoothed[i_min]), float(lrs[i_min])
    else:
        min_loss = lr_at_min = math.nan
    return {
        "steps": int(curve.steps_run),
        "min_loss": min_loss,
        "lr_at_min_loss": lr_at_min,
        **{METHODS[name].column: rate for name, rate in rates.items()},
        "suggested_lr": rates[rank_by],
        "diverged_lr": math.nan if curve.diverged_lr is None else float(curve.diverged_lr),
        "stop_reason": curve.stop_reason,
    }


__all__ = ["Method", "Options", "Registry", "METHODS", "DEFAULT_METHOD", "ALIASES", "SUMMARY_KEYS", "register",
           "unregister", "method_name", "get_method", "suggest_all", "summarize", "summary_keys"]
