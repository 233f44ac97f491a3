"""Invariances, the requested accuracy, open vs periodic boxes, thread independence."""

from __future__ import annotations

import numpy as np
import pytest
from systems import crystal, random_box, skewed_cell

import farfield as ff

XI = 2.837297  # twice the sc Wigner constant


def _rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


@pytest.mark.parametrize("p", [1.0, 6.0])
def test_rotation_translation_permutation(p: float) -> None:
    system, q = random_box(10, seed=1, charged=True, cell=skewed_cell())
    assert system.cell is not None
    base = ff.ewald(system, q, exponent=p, accuracy=1e-10)
    assert base.forces is not None and base.stress is not None
    rot = _rotation(2)
    rotated = ff.System(system.positions @ rot.T, system.numbers, system.cell @ rot.T)
    r = ff.ewald(rotated, q, exponent=p, accuracy=1e-10)
    assert r.energy == pytest.approx(base.energy, rel=1e-9)
    assert r.forces is not None and r.stress is not None
    np.testing.assert_allclose(r.forces, base.forces @ rot.T, atol=1e-8)
    np.testing.assert_allclose(r.stress, rot @ base.stress @ rot.T, atol=1e-9)
    shifted = ff.System(system.positions + [0.3, -1.7, 2.2], system.numbers, system.cell)
    t = ff.ewald(shifted, q, exponent=p, accuracy=1e-10)
    assert t.energy == pytest.approx(base.energy, rel=1e-9)
    perm = np.random.default_rng(3).permutation(len(q))
    permuted = ff.System(system.positions[perm], system.numbers[perm], system.cell)
    s = ff.ewald(permuted, q[perm], exponent=p, accuracy=1e-10)
    assert s.energy == pytest.approx(base.energy, rel=1e-9)
    assert s.forces is not None and s.potentials is not None and base.potentials is not None
    np.testing.assert_allclose(s.forces, base.forces[perm], atol=1e-8)
    np.testing.assert_allclose(s.potentials, base.potentials[perm], atol=1e-8)


def test_supercell_and_cell_choice() -> None:
    system, q = random_box(6, seed=4, cell=skewed_cell())
    assert system.cell is not None
    base = ff.ewald(system, q, accuracy=1e-11).energy
    shifts = [np.array([i, j, k]) for i in range(2) for j in range(2) for k in range(1)]
    positions = np.concatenate([system.positions + s @ system.cell for s in shifts])
    cell = system.cell * np.array([[2], [2], [1]])
    big = ff.System(positions, np.ones(len(positions), dtype=np.int32), cell)
    e = ff.ewald(big, np.tile(q, len(shifts)), accuracy=1e-11).energy
    assert e / len(shifts) == pytest.approx(base, rel=1e-9)
    # NaCl primitive and cubic cells give the same energy per formula unit
    prim, qp, _, _ = crystal("NaCl")
    cubic, qc, _, fu = crystal("NaCl cubic")
    e_prim = ff.ewald(prim, qp, accuracy=1e-12).energy
    e_cubic = ff.ewald(cubic, qc, accuracy=1e-12).energy
    assert e_cubic / fu == pytest.approx(e_prim, rel=1e-10)


@pytest.mark.parametrize("p", [0.5, 1.0, 1.5, 2.5, 3.0, 4.5, 6.0])
def test_smearing_independence(p: float) -> None:
    # p = 3 only for a neutral cell (the k = 0 term diverges otherwise)
    system, q = random_box(8, seed=6, charged=p != 3.0, cell=skewed_cell())
    energies = [
        ff.ewald(system, q, exponent=p, smearing=s, cutoff=9 * s, k_cutoff=9 / s).energy
        for s in (0.5, 0.8, 1.2)
    ]
    np.testing.assert_allclose(energies, energies[0], rtol=1e-10)


@pytest.mark.parametrize(("p", "charged"), [(1.0, False), (1.0, True), (2.5, True), (6.0, True)])
@pytest.mark.parametrize("accuracy", [1e-3, 1e-5, 1e-7])
def test_requested_accuracy_is_met(p: float, charged: bool, accuracy: float) -> None:
    system, q = random_box(120, seed=7, charged=charged)
    assert system.cell is not None
    exact = ff.ewald(system, q, exponent=p, accuracy=1e-13, potentials=False, stress=False)
    approx = ff.ewald(system, q, exponent=p, accuracy=accuracy, potentials=False, stress=False)
    assert exact.forces is not None and approx.forces is not None
    n = len(q)
    d = (abs(np.linalg.det(system.cell)) / n) ** (1 / 3)
    f0 = np.sum(q**2) / n / d ** (p + 1)
    rms = np.sqrt(np.mean(np.sum((approx.forces - exact.forces) ** 2, axis=1)))
    assert rms / f0 <= accuracy


def _molecule(charge: float) -> tuple[np.ndarray, np.ndarray]:
    positions = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    charges = np.array([-0.8, 0.4, 0.4]) + charge / 3
    return positions, charges


def test_open_vs_growing_boxes() -> None:
    for charge in (0.0, 1.0):
        positions, q = _molecule(charge)
        direct = ff.ewald(ff.System(positions, [8, 1, 1]), q)
        assert direct.parameters["method"] == "direct"
        dipole = q @ positions
        for length in (20.0, 40.0, 80.0):
            box = ff.System(positions + length / 2, [8, 1, 1], np.eye(3) * length)
            periodic = ff.ewald(box, q, accuracy=1e-10)
            delta = periodic.energy - direct.energy
            if charge == 0.0:
                # tin-foil Ewald of a dipole lattice: -2π μ²/(3V)
                expected = -2 * np.pi * dipole @ dipole / (3 * length**3)
                assert delta == pytest.approx(expected, rel=0.05)
            else:
                # net charge: -ξ Q²/(2L) (plus O(1/L³))
                assert delta * length == pytest.approx(-XI * charge**2 / 2, rel=20 / length**2)


def test_threads_do_not_change_results() -> None:
    system, q = random_box(300, seed=8, charged=True)
    try:
        ff.set_num_threads(1)
        one = ff.ewald(system, q, accuracy=1e-6)
        ff.set_num_threads(2)
        two = ff.ewald(system, q, accuracy=1e-6)
    finally:
        ff.set_num_threads(0)
    assert one.energy == pytest.approx(two.energy, rel=1e-14)
    for a, b in [(one.forces, two.forces), (one.potentials, two.potentials)]:
        assert a is not None and b is not None
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    assert one.stress is not None and two.stress is not None
    np.testing.assert_allclose(one.stress, two.stress, rtol=1e-13, atol=1e-15)
