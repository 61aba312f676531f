"""Pydantic's validation errors in lrrt's words: one translator for every validated section.

A validator raises :func:`fail` (a message, and the sub-key it is about when it checks a
whole list or model); :func:`translate` turns the first error of a ``ValidationError`` into
``(dotted key, one-line message)`` — no URLs, no "Input should be" — for the caller to
wrap in its own error: ``sweeps.spec`` a :class:`~sweeps.errors.SpecError` naming the
file, ``lrrt verify``'s options a :class:`~sweeps.errors.UsageError` naming the option.

Example:
    >>> from pydantic import BaseModel, ConfigDict, Field
    >>> class Box(BaseModel):
    ...     model_config = ConfigDict(extra="forbid")
    ...     size: int = Field(ge=1)
    >>> try:
    ...     Box.model_validate({"size": 0, "colour": "red"})
    ... except ValidationError as err:
    ...     translate(err, Box, prefix=("box",))
    ('box.size', 'must be >= 1, got 0')
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from sweeps.errors import ROOT_KEY

__all__ = ["fail", "translate", "ValidationError"]

#: fields never named among a model's allowed keys (set by the loader, not by the file).
HIDDEN_FIELDS = ("source",)


def fail(message: str, subkey: str = "") -> PydanticCustomError:
    """A validation error that :func:`translate` passes on word for word.

    ``subkey`` is appended to pydantic's location (``"[2].label"``, ``".end_lr"``) so an
    error raised by a validator of a whole list or model still names the exact key.
    """
    return PydanticCustomError("lrrt", "{message}", {"message": message, "subkey": subkey})


def translate(err: ValidationError, root: type[BaseModel], prefix: tuple[Any, ...] = ()) -> tuple[str, str]:
    """The first error of ``err`` (raised validating ``root``) as ``(dotted key, message)``.

    ``prefix``: where ``root`` sits in the file (``("resources",)`` for that section alone);
    the key starts with it. :data:`~sweeps.errors.ROOT_KEY` when the whole input is at fault.
    """
    first = err.errors(include_url=False)[0]
    loc = tuple(first["loc"])
    key = _dotted(prefix + loc)
    subkey = (first.get("ctx") or {}).get("subkey", "") if first["type"] == "lrrt" else ""
    if subkey:
        key = key + subkey if key else subkey.lstrip(".")
    return key or ROOT_KEY, _message(first, root, loc)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (also inside ``X | None`` or ``list[X]``), else ``None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_in, typing.get_args(annotation)) if m is not None), None)


def _allowed(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the model holding ``loc``'s last part allows, found by walking ``root``'s fields."""
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        model = _model_in(field.annotation) if field is not None else None
        if model is None:
            return []
    return [k for k in model.model_fields if k not in HIDDEN_FIELDS]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TYPES = {"int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
          "float_type": "a number", "float_parsing": "a number", "string_type": "a string", "list_type": "a list",
          "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping"}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _message(err: dict[str, Any], root: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """Human wording for one pydantic error (no URLs, no 'Input should be')."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "lrrt":
        return ctx["message"]
    if kind == "extra_forbidden":
        allowed = _allowed(root, loc)
        return "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    if kind == "missing":
        return "required key is missing"
    if kind in _TYPES:
        return f"expected {_TYPES[kind]}, got {_short(value)}"
    if kind == "too_short":
        return "must not be empty" if ctx.get("min_length", 1) <= 1 else f"needs at least {ctx['min_length']} entries"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}, got {_short(value)}"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values())) if ctx else "?"
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {_BOUNDS[kind]} {limit}, got {_short(value)}"
    msg = str(err.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return f"{msg[:1].lower()}{msg[1:]} (got {_short(value)})"
