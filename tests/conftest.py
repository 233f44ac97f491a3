"""Suite-wide guards: no test may trigger a panic in farfield's native code (a caught panic
still becomes an exception, but every panic is a bug)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from farfield import _native


@pytest.fixture(autouse=True)
def _no_native_panic() -> Iterator[None]:
    before = _native.panic_count()
    yield
    after = _native.panic_count()
    assert after == before, f"{after - before} panic(s) in farfield's native code (see stderr)"
