"""Checks of one config value: its type and range, else one UserError naming its key.

Hydra hands over plain Python values; a YAML typo such as `prune_rate: yes` arrives as a bool,
which Python would happily treat as 1, so bools are refused where a number is due.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from coreset_lab.errors import UserError


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_real(
    value: object,
    key: str,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """`value` as a float inside the interval, else a UserError naming `key` and the range."""
    lo_br, hi_br = ("(" if low_open else "["), (")" if high_open else "]")
    allowed = f"a real number in {lo_br}{low}, {high}{hi_br}"
    if not _is_real(value) or not math.isfinite(float(value)):
        raise UserError(f"{key} must be {allowed}, got {value!r}")
    v = float(value)
    if v < low or v > high or (low_open and v == low) or (high_open and v == high):
        raise UserError(f"{key} must be {allowed}, got {v!r}")
    return v


def check_int(value: object, key: str, low: int, high: int | None = None) -> int:
    """`value` as an int >= low (and <= high), else a UserError naming `key` and the range."""
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    ok_type = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if not ok_type or value < low or (high is not None and value > high):
        raise UserError(f"{key} must be {allowed}, got {value!r}")
    return int(value)


def check_choice(value: object, key: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise UserError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_bool(value: object, key: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise UserError(f"{key} must be true or false, got {value!r}")
    return bool(value)


def one_of(*allowed):
    """A check for exactly one of `allowed`, type included (True == 1 in Python, not here)."""

    def check(value, key):
        if not any(value == a and type(value) is type(a) for a in allowed):
            names = (str(a).lower() if isinstance(a, bool) else str(a) for a in allowed)
            shown = ", ".join(dict.fromkeys(names))  # 32 and "32" read the same
            raise UserError(f"{key} must be one of {shown}, got {value!r}")

    return check
