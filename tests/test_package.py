"""The package itself: ``import farfield`` stays light (``farfield.structures``, and with it ASE,
is imported on first access), the ML helpers are not part of it, and the extension's Python
signatures show real defaults (the stub is checked by ``mypy.stubtest`` in ``make lint``)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

import farfield as ff


def run_fresh(code: str) -> object:
    """The JSON printed by ``code`` run in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    return json.loads(out.stdout)


def test_structures_is_imported_lazily() -> None:
    loaded = run_fresh(
        "import json, sys, farfield\n"
        "before = ['farfield.structures' in sys.modules, 'ase' in sys.modules]\n"
        "module = farfield.structures\n"
        "after = ['farfield.structures' in sys.modules, module.__name__]\n"
        "print(json.dumps([before, after, 'structures' in dir(farfield)]))"
    )
    assert loaded == [[False, False], [True, "farfield.structures"], True]


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = ff.no_such_name  # type: ignore[attr-defined]
    assert not hasattr(ff, "TripletMLP")  # an example helper (examples/ml_helpers.py)


def test_set_limits_default_is_the_core_default() -> None:
    """The literal default of the binding's ``max_terms`` equals the limit a fresh process starts
    with (the core's ``DEFAULT_MAX_TERMS``), and the Python wrapper's default equals both."""
    start = run_fresh(
        "import json; from farfield import _native; print(json.dumps(_native.get_limits()[1]))"
    )
    native = inspect.signature(ff._native.set_limits).parameters["max_terms"].default
    wrapper = inspect.signature(ff.set_limits).parameters["max_terms"].default
    assert native == start == wrapper == 2e11
