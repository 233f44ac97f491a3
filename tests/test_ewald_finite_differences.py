"""Forces, stress and virial against central finite differences on skewed triclinic cells."""

from __future__ import annotations

import numpy as np
import pytest
from systems import random_box, skewed_cell

import farfield as ff


def _energy(positions: np.ndarray, cell: np.ndarray | None, q: np.ndarray, p: float) -> float:
    system = ff.System(positions, np.ones(len(q), dtype=np.int32), cell)
    kwargs = {"smearing": 0.7, "cutoff": 6.3, "k_cutoff": 12.9} if cell is not None else {}
    return ff.ewald(system, q, exponent=p, forces=False, stress=False, **kwargs).energy


@pytest.mark.parametrize("p", [1.0, 2.0, 2.5, 6.0])
@pytest.mark.parametrize("charged", [False, True])
def test_periodic(p: float, charged: bool) -> None:
    system, q = random_box(7, seed=int(10 * p), charged=charged, cell=skewed_cell())
    assert system.cell is not None
    cell = system.cell
    result = ff.ewald(system, q, exponent=p, smearing=0.7, cutoff=6.3, k_cutoff=12.9)
    assert result.forces is not None and result.stress is not None
    h = 1e-5
    for i in (0, 4):
        for a in range(3):
            plus, minus = system.positions.copy(), system.positions.copy()
            plus[i, a] += h
            minus[i, a] -= h
            fd = -(_energy(plus, cell, q, p) - _energy(minus, cell, q, p)) / (2 * h)
            assert result.forces[i, a] == pytest.approx(fd, abs=1e-7 * (1 + abs(fd)))
    volume = abs(np.linalg.det(cell))
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += sign * h
                energies.append(_energy(system.positions @ strain.T, cell @ strain.T, q, p))
            fd = (energies[0] - energies[1]) / (2 * h)
            assert result.stress[a, b] * volume == pytest.approx(fd, abs=1e-7 * (1 + abs(fd)))
            # the mechanical virial is -dE/deps (strain on column vectors)
            assert result.virial is not None
            assert result.virial[a, b] == pytest.approx(-fd, abs=1e-7 * (1 + abs(fd)))


@pytest.mark.parametrize("p", [1.0, 2.5, 6.0])
def test_open(p: float) -> None:
    rng = np.random.default_rng(5)
    positions = rng.random((9, 3)) * 4
    q = rng.standard_normal(9)
    system = ff.System(positions, np.ones(9, dtype=np.int32))
    result = ff.ewald(system, q, exponent=p)
    assert result.parameters["method"] == "direct"
    assert result.stress is None and result.forces is not None and result.potentials is not None
    assert result.virial is None
    assert 0.5 * np.dot(q, result.potentials) == pytest.approx(result.energy, rel=1e-12)
    h = 1e-6
    for i in range(3):
        for a in range(3):
            plus, minus = positions.copy(), positions.copy()
            plus[i, a] += h
            minus[i, a] -= h
            fd = -(_energy(plus, None, q, p) - _energy(minus, None, q, p)) / (2 * h)
            assert result.forces[i, a] == pytest.approx(fd, abs=1e-6 * (1 + abs(fd)))
