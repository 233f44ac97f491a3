"""The B8± demonstration (examples/triplets_b8.py) on a small subset: models built on the
bispectrum, and a linear ψ summed over triplets, cannot separate the members of a pair
(normalised pair-difference error exactly 1.0)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

pytest.importorskip("ase")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "triplets_b8.py"


def test_b8_demonstration_small(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("triplets_b8", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(
        ["--n-pairs", "16", "--epochs", "30", "--no-plot", "--out", str(tmp_path)]
    )
    for name in ("bispectrum linear", "bispectrum MLP", "triplets linear psi"):
        assert results[name]["diff_normalised"] == pytest.approx(1.0, abs=1e-6), name
    psi = results["triplets MLP psi"]
    assert math.isfinite(psi["diff_normalised"]) and psi["diff_normalised"] != pytest.approx(1.0)
    assert (tmp_path / "metrics.json").exists()
