"""The free-space mesh ("pme" on an open system) through the public API: against the direct
sum computed here in numpy, the cached parameters, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest

import farfield as ff


def _ball(n: int, seed: int) -> tuple[ff.System, np.ndarray, float]:
    """Rattled simple-cubic sites (spacing 2.82 Å) in a ball; random charges (net charge)."""
    rng = np.random.default_rng(seed)
    a = 2.82
    m = int(np.ceil((3 * n / (4 * np.pi)) ** (1 / 3))) + 2
    axis = np.arange(-m, m + 1) * a
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    order = np.argsort(np.einsum("ij,ij->i", grid, grid), kind="stable")
    positions = grid[order[:n]] + rng.uniform(-0.15, 0.15, (n, 3))
    q = rng.uniform(-1.0, 1.4, n)
    return ff.System(positions, np.ones(n, dtype=np.int32), None), q, a


def _direct(positions: np.ndarray, q: np.ndarray, p: float) -> tuple[float, np.ndarray]:
    r = positions[:, None, :] - positions[None, :, :]
    dist = np.linalg.norm(r, axis=-1)
    np.fill_diagonal(dist, np.inf)
    energy = 0.5 * float(np.sum(q[:, None] * q[None, :] / dist**p))
    forces = np.sum((p * q[:, None] * q[None, :] / dist ** (p + 2))[..., None] * r, axis=1)
    return energy, forces


@pytest.mark.parametrize("exponent", [1.0, 6.0])
def test_mesh_matches_the_direct_sum(exponent: float) -> None:
    system, q, a = _ball(500, seed=1)
    energy, forces = _direct(system.positions, q, exponent)
    accuracy = 1e-5
    # a fixed small smearing: the mesh carries most of the interaction
    calc = ff.Coulomb(exponent=exponent, accuracy=accuracy, method="pme", smearing=2.5)
    result = calc.compute(system, q, potentials=True)
    params = result.parameters
    assert params.method == "pme" and params.mesh is None and params.mesh_spacing is not None
    assert params.order is not None and params.order % 2 == 0
    assert result.stress is None and result.virial is None
    assert result.forces is not None and result.potentials is not None
    # F_0 with d the mean spacing of the sites (the core's local density of this ball)
    f0 = float(np.mean(q**2)) / a ** (exponent + 1)
    error = float(np.sqrt(np.mean(np.sum((result.forces - forces) ** 2, axis=1)))) / f0
    assert error < accuracy
    assert result.energy == pytest.approx(energy, rel=1e-5)
    assert 0.5 * float(np.dot(q, result.potentials)) == pytest.approx(result.energy, rel=1e-12)
    # cached: a second call reuses the parameters and gives the same numbers
    again = calc.compute(system, q)
    assert calc.tunings == 1 and again.parameters == params
    assert again.energy == pytest.approx(result.energy, rel=1e-12)
    # the explicit parameters through the one-shot function give the same numbers
    one_shot = ff.pme(
        system,
        q,
        exponent=exponent,
        smearing=params.smearing,
        cutoff=params.cutoff,
        mesh_spacing=params.mesh_spacing,
        order=params.order,
    )
    assert one_shot.energy == pytest.approx(result.energy, rel=1e-12)


def test_auto_is_direct_for_small_open_systems_and_refusals() -> None:
    system, q, _ = _ball(60, seed=2)
    assert ff.Coulomb().parameters_for(system).method == "direct"
    with pytest.raises(ValueError, match="mesh_spacing"):
        ff.Coulomb(method="pme", mesh=(16, 16, 16)).compute(system, q)
    with pytest.raises(ValueError, match="order"):
        ff.Coulomb(method="pme", order=5).compute(system, q)
    with pytest.raises(ValueError, match="k_cutoff"):
        ff.Coulomb(method="pme", k_cutoff=2.0).compute(system, q)
    # fixed mesh parameters under "auto" select the mesh
    params = ff.Coulomb(mesh_spacing=1.5).parameters_for(system)
    assert params.method == "pme" and params.mesh_spacing == 1.5
