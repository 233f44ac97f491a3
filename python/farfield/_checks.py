"""Type checks of scalar arguments, shared by every calculator: integers must be integers (not
bools, not floats), counts non-negative, lengths positive and finite. Each error names the
argument."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "integer",
    "optional_integer",
    "positive_float",
    "optional_positive_float",
    "finite_float",
    "integer_array",
    "string_list",
    "no_extra_kwargs",
]


def integer(name: str, value: Any, minimum: int | None = 0, maximum: int | None = None) -> int:
    """``value`` as an ``int``: refuses bools, floats (even 3.0), strings; checks the range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    result = int(value)
    if minimum is not None and result < minimum:
        what = "non-negative" if minimum == 0 else f"at least {minimum}"
        raise ValueError(f"{name} must be {what}, got {result}")
    if maximum is not None and result > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {result}")
    return result


def optional_integer(
    name: str, value: Any, minimum: int | None = 0, maximum: int | None = None
) -> int | None:
    """``None`` or :func:`integer`."""
    return None if value is None else integer(name, value, minimum, maximum)


def finite_float(name: str, value: Any) -> float:
    """``value`` as a finite ``float`` (bools and strings refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {result}")
    return result


def positive_float(name: str, value: Any) -> float:
    """``value`` as a finite, strictly positive ``float``."""
    result = finite_float(name, value)
    if result <= 0.0:
        raise ValueError(f"{name} must be positive, got {result}")
    return result


def optional_positive_float(name: str, value: Any) -> float | None:
    """``None`` or :func:`positive_float`."""
    return None if value is None else positive_float(name, value)


def integer_array(name: str, value: Any, minimum: int | None = 0) -> np.ndarray[Any, Any]:
    """A 1-D array of integers: refuses floats (even 1.0) and bools; checks the minimum."""
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind not in "iu":
        if array.size == 0:
            array = array.astype(np.int64)
        else:
            raise TypeError(
                f"{name} must be integers, got values of type {array.dtype} "
                f"(e.g. {array.flat[0]!r})"
            )
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if minimum is not None and array.size and int(array.min()) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {int(array.min())}")
    return array.astype(np.int64)


def string_list(name: str, value: Any, allowed: Iterable[str]) -> list[str]:
    """A list of option names: a single string is refused (it would be split into letters),
    every name must be in ``allowed``."""
    allowed = list(allowed)
    if isinstance(value, str):
        raise TypeError(
            f"{name} must be a list of names, e.g. [{value!r}], got the string {value!r}"
        )
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"{name} must be a list of names, got {value!r}") from None
    for item in items:
        if not isinstance(item, str) or item not in allowed:
            raise ValueError(f"{name}: unknown entry {item!r}, expected some of {allowed}")
    return items


def no_extra_kwargs(owner: str, kwargs: dict[str, Any]) -> None:
    """Refuses unknown keyword arguments."""
    if kwargs:
        names = ", ".join(sorted(kwargs))
        raise TypeError(f"{owner} got unexpected keyword argument(s): {names}")
