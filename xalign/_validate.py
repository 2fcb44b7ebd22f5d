"""Option checks shared by every room: one helper per kind of rule, one message style.

Each check returns the value it accepts and raises :class:`~xalign.errors.ConfigError` with a
one-line message that starts with the option's name and the offending value::

    --engine 'spark': allowed values are local, ray
    --warmup-ratio 1.5: must be in [0, 1)

``name`` is whatever the user typed: a command-line flag (``--engine``) for configs, a keyword
(``metric``) for Python functions.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from xalign.errors import ConfigError

__all__ = ["check_choice", "check_interval"]

T = TypeVar("T")


def check_choice(name: str, value: T, allowed: Collection[Any]) -> T:
    """Return ``value`` if it is one of ``allowed``, else raise ConfigError listing them.

    >>> check_choice("--engine", "ray", ("local", "ray"))
    'ray'
    >>> check_choice("--engine", "spark", ("local", "ray"))
    Traceback (most recent call last):
    ...
    xalign.errors.ConfigError: --engine 'spark': allowed values are local, ray
    """
    if value not in allowed:
        choices = ", ".join(str(a) for a in allowed)
        raise ConfigError(f"{name} {value!r}: allowed values are {choices}")
    return value


def check_interval(
    name: str,
    value: T,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    note: str | None = None,
) -> T:
    """Return ``value`` if it lies in the interval, else raise ConfigError stating it.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``; a missing bound is
    unbounded. ``note`` is added in parentheses (what a boundary value means, say).

    >>> check_interval("--dropout", 0.1, low=0, high=1, high_open=True)
    0.1
    >>> check_interval("--warmup-ratio", 1.5, low=0, high=1, high_open=True)
    Traceback (most recent call last):
    ...
    xalign.errors.ConfigError: --warmup-ratio 1.5: must be in [0, 1)
    >>> check_interval("--eval-every", -1, low=0, note="0 = never")
    Traceback (most recent call last):
    ...
    xalign.errors.ConfigError: --eval-every -1: must be >= 0 (0 = never)
    >>> check_interval("--seed", 2**32, low=0, high=2**32 - 1)
    Traceback (most recent call last):
    ...
    xalign.errors.ConfigError: --seed 4294967296: must be in [0, 4294967295]
    """
    v: Any = value

    def fmt(bound: float) -> str:  # whole bounds exactly (4294967295, not 4.29497e+09)
        return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"

    too_low = low is not None and (v <= low if low_open else v < low)
    too_high = high is not None and (v >= high if high_open else v > high)
    if too_low or too_high:
        if low is not None and high is not None:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            rule = f"in {left}{fmt(low)}, {fmt(high)}{right}"
        elif low is not None:
            rule = f"{'>' if low_open else '>='} {fmt(low)}"
        else:
            assert high is not None  # too_high
            rule = f"{'<' if high_open else '<='} {fmt(high)}"
        tail = f" ({note})" if note else ""
        raise ConfigError(f"{name} {value}: must be {rule}{tail}")
    return value
