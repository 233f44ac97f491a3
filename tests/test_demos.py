"""The demonstrations (``farfield._demos``, behind ``farfield demo NAME`` and ``make demo``) in
their quick versions, their helpers against independent computations, and the physics the
point-charge demonstration must show.

Thresholds of the physics test (quick run: 130 boxes, 30 test boxes, training sizes 50 and
100). What they rest on: E = ½ Σ q_i φ_i, and the LODE l = 0 coefficients summed per species
(pair of centre and neighbour species) hold Σ q_i φ_i up to the short-range difference between
the smeared and the bare 1/r, a pair function of range ≈ 4σ + r₀ that the local radial features
(6 Å) can represent; the combination is exact up to the radial basis, the Ewald accuracy (1e-10)
and round-off (measured 3e-7 at n = 100, 2e-7 at n = 1000 in the full run): "below 1e-3" has a
margin of 1000. Local features see nothing beyond 6 Å, where most of the variance of the
Coulomb energy of random boxes lies (measured 0.5-0.7 for the power spectrum at n ≤ 100, 0.2
at n = 1000): "above 0.1" has a margin of 5. The learning curves of the full run are in the
demo's output (the test suite does not run it: ~1 min).
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import farfield as ff
from farfield import _demos
from farfield._demos import _common


def run_quick(name: str, output: Path) -> dict[str, Any]:
    status = _demos.run(name, quick=True, output=output, progress=False)
    assert status == 0
    results: dict[str, Any] = json.loads((output / "results.json").read_text())
    assert results["demo"] == name and results["quick"] is True
    assert results["checks_passed"] is True
    return results


@pytest.fixture(scope="module")
def point_charges(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    output = tmp_path_factory.mktemp("point-charges")
    return output, run_quick("point-charges", output)


@pytest.mark.slow
def test_point_charges_quick(point_charges: tuple[Path, dict[str, Any]]) -> None:
    output, results = point_charges
    assert (output / "learning_curves.png").stat().st_size > 10_000
    names = [c["name"] for c in results["curves"]]
    assert names == [
        "LODE l=0",
        "LODE ν=2, l≤4",
        "local power spectrum",
        "local radial",
        "LODE l=0 + local radial",
    ]
    for curve in results["curves"]:
        assert curve["sizes"] == [50, 100]
        assert all(np.isfinite(curve["relative_rmse"]))


@pytest.mark.slow
def test_point_charges_physics(point_charges: tuple[Path, dict[str, Any]]) -> None:
    """LODE l=0 + local radial features far below 1%, the local power spectrum above 10%
    (thresholds: see the module docstring)."""
    _, results = point_charges
    curves = {c["name"]: c["relative_rmse"] for c in results["curves"]}
    assert curves["LODE l=0 + local radial"][-1] < 1e-3
    assert min(curves["local power spectrum"]) > 0.1
    assert min(curves["local radial"]) > 0.1
    # LODE l=0 alone already holds most of the energy (measured 3e-4: the short-range part
    # of the smeared kernel is small at a 2.5 Å minimum distance and σ = 1 Å)
    assert curves["LODE l=0"][-1] < 1e-2


@pytest.mark.slow
def test_dispersion_quick(tmp_path: Path) -> None:
    results = run_quick("dispersion", tmp_path)
    curves = {c["name"]: c["relative_rmse"] for c in results["curves"]}
    # measured at n = 100: 1e-5 (p = 6) against 3e-4 (p = 1), each with local radial features
    p6, p1 = curves["LODE p=6, l=0 + local radial"], curves["LODE p=1, l=0 + local radial"]
    assert p6[-1] < 0.2 * p1[-1]
    assert (tmp_path / "learning_curves.png").exists()


def test_degenerate_quick(tmp_path: Path) -> None:
    results = run_quick("degenerate", tmp_path)
    assert (tmp_path / "degenerate_pairs.png").exists()
    table = results["pairs"]
    assert len(table) == 4  # B8±, one B±, one planar, one CH4-like pair
    # B8± (structurally different: not congruent, tests/test_triplets_structures.py) has the
    # same power spectrum and bispectrum; the nonlinear triplet sum separates it
    ps, bispectrum, linear, nonlinear = table["B8± (first B8 pair)"]
    assert max(ps, bispectrum, linear) < 1e-12 and nonlinear > 1e-4


def test_qeq_quick(tmp_path: Path) -> None:
    results = run_quick("qeq", tmp_path)
    assert (tmp_path / "qeq_charges.png").exists()
    cluster = results["systems"][0]
    assert cluster["total_charge"] == 1.0
    assert abs(sum(cluster["charges"]) - 1.0) < 1e-10


def test_no_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """Without matplotlib the demonstration runs, says so, and writes no picture."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert _demos.run("qeq", quick=True, output=tmp_path, progress=False) == 0
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.png"))


def test_unknown_name() -> None:
    assert _demos.NAMES == ("point-charges", "dispersion", "degenerate", "qeq")
    with pytest.raises(ValueError, match="unknown demonstration"):
        _demos.run("nope")


def test_random_boxes_minimum_distance() -> None:
    """Every pair, all 27 neighbouring images, by brute force: at least 2.5 Å apart."""
    rng = np.random.default_rng(3)
    positions, sides = _common.random_boxes(6, [13.0, 20.0], rng)
    assert positions.shape == (6, 64, 3)
    np.testing.assert_array_equal(sides, [13.0, 20.0] * 3)
    systems, charges = _common.point_charge_systems(positions, sides)
    assert charges.sum() == 0 and set(charges) == {-1.0, 1.0}
    for x, side in zip(positions, sides, strict=True):
        assert (x >= 0).all() and (x < side).all()
        shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3))) * side
        d = x[:, None, None, :] - x[None, :, None, :] + shifts[None, None]
        r = np.linalg.norm(d, axis=-1)
        r[np.arange(64), np.arange(64), 13] = np.inf  # an atom and itself, zero shift
        assert r.min() >= 2.5
    assert systems[1].cell is not None and np.allclose(systems[1].cell, np.eye(3) * 20.0)


def test_structure_sums() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(10, 2, 3))
    system = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    types = np.array([11, 17, 11, 17, 17, 11, 11, 17, 11, 11])
    out = _common.structure_sums(values, system, types, 3)
    expected = np.zeros((3, 2, 6))
    for v, s, t in zip(values, system, types, strict=True):
        expected[s, 0 if t == 11 else 1] += v.ravel()
    np.testing.assert_allclose(out, expected.reshape(3, 12), atol=1e-15)


def test_ridge_normal_equations() -> None:
    """The SVD path against the normal equations on standardised columns."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 7)) * [1, 10, 0.1, 3, 1, 2, 5] + 4.0
    y = rng.normal(size=40)
    for alpha in (1e-6, 1e-2, 1.0):
        model, _ = _common._ridge_path(x, y, np.array([alpha]))
        xs = (x - x.mean(axis=0)) / x.std(axis=0)
        w = np.linalg.solve(xs.T @ xs + alpha * len(y) * np.eye(7), xs.T @ (y - y.mean()))
        np.testing.assert_allclose(model.weights, w, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(model.predict(x), xs @ w + y.mean(), rtol=1e-10, atol=1e-12)


def test_ridge_cv_noise_free_and_noise() -> None:
    """Cross-validation picks a tiny α for exact linear data and a large one for pure noise."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 3.0, 0.0]) + 7.0
    model = _common.fit_ridge_cv(x, y)
    test = rng.normal(size=(20, 5))
    np.testing.assert_allclose(
        model.predict(test), test @ np.array([1.0, -2.0, 0.5, 3.0, 0.0]) + 7.0, atol=1e-8
    )
    noise = _common.fit_ridge_cv(x, rng.normal(size=60))
    assert noise.alpha > 1.0


def test_ewald_energies_madelung() -> None:
    """The labelling path (``energies``) on a crystal with a known energy: rock salt's
    Madelung constant 1.747564594633 (per ion pair, nearest-neighbour distance 1)."""
    from farfield._demos import point_charges

    cell = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    system = ff.System(np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]), np.array([11, 17]), cell)
    energy = point_charges.energies([system], np.array([1.0, -1.0]), 1.0, "", False, prefactor=1.0)
    assert abs(energy[0] + 1.747564594633) < 1e-9


def test_single_threaded_blas_restores() -> None:
    controls = _common._openblas_controls()
    if controls is None:
        pytest.skip("no OpenBLAS loaded in this process")
    get, _ = controls
    before = get()
    with _common.single_threaded_blas():
        assert get() == 1
    assert get() == before
