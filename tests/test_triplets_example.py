"""The B8± demonstration (examples/triplets_b8.py) on a small subset: models built on the
bispectrum, and a linear ψ summed over triplets, cannot separate the members of a pair
(normalised pair-difference error exactly 1.0); a nonlinear ψ summed over triplets can."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import examples_path  # noqa: F401 (examples/ on sys.path: the example imports ml_helpers)
import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "triplets_b8.py"


def load_example() -> object:
    spec = importlib.util.spec_from_file_location("triplets_b8", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_synthetic_label_is_many_body() -> None:
    """The label separates B± members, and its quadratic-in-ρ part does not (it is a sum over
    neighbour triples, fixed by the bispectrum): only F beyond second order carries the
    difference."""
    pytest.importorskip("ase")
    from farfield import structures

    module = load_example()
    for seed in range(3):
        plus, minus = structures.bpm_pair(seed=seed)
        e_plus = module.synthetic_energy(plus.positions)  # type: ignore[attr-defined]
        e_minus = module.synthetic_energy(minus.positions)  # type: ignore[attr-defined]
        assert abs(e_plus - e_minus) > 1e-3

        def quadratic(x: np.ndarray) -> float:
            d = np.linalg.norm(x[:, None] - x[None], axis=-1)
            phi = np.exp(-(((d - module.PHI_R0) / module.PHI_WIDTH) ** 2))  # type: ignore[attr-defined]
            np.fill_diagonal(phi, 0.0)
            rho = phi.sum(axis=1)
            return float(np.sum(0.3 * rho**2 - 1.1 * rho + 0.7))

        assert quadratic(plus.positions) == pytest.approx(quadratic(minus.positions), abs=1e-10)


@pytest.mark.slow
def test_b8_demonstration_small(tmp_path: Path) -> None:
    """Runs the example in a subprocess (one BLAS thread, as the example sets it) on 400 pairs
    with small settings."""
    pytest.importorskip("ase")
    args = [
        "--n-pairs", "400",
        "--max-radial", "3",
        "--components", "24",
        "--hidden", "32,32",
        "--epochs", "100",
        "--pca-frames", "60",
        "--no-plot",
        "--out", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(EXAMPLE), *args], check=True, env=env, timeout=300)
    results = json.loads((tmp_path / "metrics.json").read_text())
    assert results["n_pairs"] == 400
    for name in ("bispectrum linear", "bispectrum MLP", "triplets linear psi"):
        assert results[name]["diff_normalised"] == pytest.approx(1.0, abs=1e-6), name
    assert results["triplets MLP psi"]["diff_normalised"] < 0.9
