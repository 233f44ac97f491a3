"""Deprecated spellings kept so that old code still runs (each emits a ``DeprecationWarning``)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["renamed_keywords"]

_F = TypeVar("_F", bound=Callable[..., Any])


def renamed_keywords(**renames: str) -> Callable[[_F], _F]:
    """Accepts each ``old=new`` keyword name pair's ``old`` as a deprecated alias of ``new``.

    Passing both raises ``TypeError``; passing the old name warns and forwards the value.
    """

    def decorate(func: _F) -> _F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(
                            f"{func.__qualname__}() got both {new!r} and its deprecated "
                            f"alias {old!r}"
                        )
                    warnings.warn(
                        f"{func.__qualname__}(): the keyword {old!r} is deprecated, use {new!r}",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
