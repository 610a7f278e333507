"""Validation shared by every stage's frozen settings dataclass: known keys, numbers, sequences.

Each stage config (preprocessing, texture, proposals, ...) is a frozen dataclass that coerces and
checks its fields in ``__post_init__`` and rebuilds from a dict with ``from_dict``; the helpers here
give every one of them the same errors.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from cs_features.errors import ConfigError


def check_keys(cls: type, data: Any) -> None:
    """Raise ConfigError when ``data`` is not a dict or holds keys that are not fields of dataclass ``cls``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__}.from_dict expects a dict, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {unknown}; accepted keys are {sorted(known)}")


def as_number(value: Any, kind: type) -> int | float | None:
    """``value`` as ``kind`` (int or float), or None if it is not a finite number of that kind."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(number) or (kind is int and number != int(number)):
        return None
    return int(number) if kind is int else number


def coerce_number(config: Any, name: str, kind: type) -> Any:
    """``config.name`` as ``kind`` (int or float); ConfigError if it is not such a number."""
    value = getattr(config, name)
    number = as_number(value, kind)
    if number is None:
        accepted = "an integer" if kind is int else "a finite number"
        raise ConfigError(f"{type(config).__name__}.{name}={value!r} is invalid; expected {accepted}")
    return number


def coerce_sequence(config: Any, name: str, kind: type) -> tuple:
    """``config.name`` as a tuple of ``kind``; ConfigError if it is not a sequence of them."""
    value = getattr(config, name)
    items = None
    if not isinstance(value, (str, bytes)) and hasattr(value, "__iter__"):
        items = [as_number(item, kind) for item in value]
    if items is None or any(item is None for item in items):
        accepted = "integers" if kind is int else "finite numbers"
        raise ConfigError(f"{type(config).__name__}.{name}={value!r} is invalid; expected a sequence of {accepted}")
    return tuple(items)


def check_fields(config: Any, checks: list[tuple[str, bool, str]]) -> None:
    """Raise ConfigError for the first ``(field, ok, accepted)`` check that failed."""
    for name, ok, accepted in checks:
        if not ok:
            raise ConfigError(f"{type(config).__name__}.{name}={getattr(config, name)!r} is invalid; "
                              f"expected {accepted}")
