"""Smooth PME: Madelung and lattice-sum references (docs/science.md §1.7), finite differences,
invariances, the accuracy sweep and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import farfield as ff

NACL_CELL = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def system(positions, cell, numbers=None):
    positions = np.asarray(positions, dtype=float)
    if numbers is None:
        numbers = np.ones(len(positions), dtype=np.int32)
    return ff.System(positions, np.asarray(numbers, dtype=np.int32), np.asarray(cell, dtype=float))


def random_system(n, seed, charged=False):
    rng = np.random.default_rng(seed)
    cell = np.array([[6.0, 0.4, -0.3], [1.5, 5.6, 0.5], [-1.2, 0.8, 6.3]])
    frac = rng.random((n, 3))
    q = rng.normal(size=n)
    q -= q.mean()
    if charged:
        q += 0.2
    return system(frac @ cell, cell), q


CRYSTALS = [
    ("NaCl", NACL_CELL, [[0, 0, 0], [1, 0, 0]], [1, -1], -1.747564594633),
    ("CsCl", np.eye(3), [[0.5, 0.5, 0.5], [0, 0, 0]], [1, -1], -1.762674773070988 * 2 / np.sqrt(3)),
    (
        "fluorite",
        np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1]]) / 2,
        [[0.25] * 3, [0.75] * 3, [0, 0, 0]],
        [-1, -1, 2],
        -11.6365752270768,
    ),
    # Wigner bcc (one +1 ion per site, neutralising background), cubic a = 1
    ("Wigner bcc", np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], [1, 1], -1.8196167248 * 2),
]


@pytest.mark.parametrize("name,cell,positions,charges,expected", CRYSTALS)
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_madelung(name, cell, positions, charges, expected, scale):
    s = system(np.asarray(positions, float) * scale, np.asarray(cell, float) * scale)
    result = ff.pme(s, charges, accuracy=1e-11)
    assert result.energy == pytest.approx(expected / scale, rel=1e-9), name


def test_dispersion_lattice_sums():
    # p = 6, NaCl primitive cell: neutral and charged (the k = 0 term), σ-independent
    s = system([[0, 0, 0], [1, 0, 0]], NACL_CELL)
    for charges, expected in [([1, -1], -4.7884437139), ([1, 2], 17.7072180149)]:
        for smearing in (0.3, 0.45):
            e = ff.pme(s, charges, exponent=6, accuracy=1e-11, smearing=smearing).energy
            assert e == pytest.approx(expected, rel=1e-9)
    # simple cubic S6 / 2 for a single charge
    one = system([[0, 0, 0]], np.eye(3))
    assert ff.pme(one, [1.0], exponent=6, accuracy=1e-11).energy == pytest.approx(
        8.4019239748 / 2, rel=1e-9
    )


def test_prefactor_and_ase():
    ase = pytest.importorskip("ase")
    atoms = ase.Atoms("NaCl", positions=[[0, 0, 0], [1, 0, 0]], cell=NACL_CELL, pbc=True)
    e = ff.pme(atoms, [1, -1], accuracy=1e-10, prefactor=ff.units.EV_ANGSTROM).energy
    assert e == pytest.approx(-1.747564594633 * ff.units.EV_ANGSTROM, rel=1e-9)


@pytest.mark.parametrize("exponent", [1.0, 6.0])
def test_finite_differences(exponent):
    s, q = random_system(12, 3, charged=True)
    fixed = {"smearing": 1.0, "cutoff": 5.0, "mesh": (14, 15, 16), "order": 5}
    result = ff.pme(s, q, exponent=exponent, **fixed)
    h = 1e-5
    for i in (0, 5):
        for c in range(3):
            e = []
            for sign in (1, -1):
                pos = s.positions.copy()
                pos[i, c] += sign * h
                e.append(ff.pme(system(pos, s.cell), q, exponent=exponent, **fixed).energy)
            fd = -(e[0] - e[1]) / (2 * h)
            assert fd == pytest.approx(result.forces[i, c], abs=1e-6 * np.abs(result.forces).max())
    volume = abs(np.linalg.det(s.cell))
    for a in range(3):
        for b in range(3):
            e = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += sign * h
                e.append(
                    ff.pme(
                        system(s.positions @ strain.T, s.cell @ strain.T),
                        q,
                        exponent=exponent,
                        **fixed,
                    ).energy
                )
            fd = (e[0] - e[1]) / (2 * h) / volume
            assert fd == pytest.approx(result.stress[a, b], abs=1e-6 * np.abs(result.stress).max())
            # the mechanical virial -dE/deps = -V stress
            assert -fd * volume == pytest.approx(
                result.virial[a, b], abs=1e-6 * volume * np.abs(result.stress).max()
            )


def test_potentials_and_invariances():
    s, q = random_system(30, 4)
    ref = ff.pme(s, q, accuracy=1e-10, potentials=True)
    assert 0.5 * np.dot(q, ref.potentials) == pytest.approx(ref.energy, rel=1e-10)
    assert np.abs(ref.forces.sum(axis=0)).max() < 1e-8 * np.abs(ref.forces).max()
    # rotation of positions and cell
    rot, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rotated = ff.pme(system(s.positions @ rot.T, s.cell @ rot.T), q, accuracy=1e-10)
    assert rotated.energy == pytest.approx(ref.energy, rel=1e-8)
    np.testing.assert_allclose(
        rotated.forces, ref.forces @ rot.T, atol=1e-7 * np.abs(ref.forces).max()
    )
    # translation and permutation
    moved = ff.pme(system(s.positions + [0.3, -1.1, 2.0], s.cell), q, accuracy=1e-10)
    assert moved.energy == pytest.approx(ref.energy, rel=1e-8)
    perm = np.random.default_rng(1).permutation(len(q))
    permuted = ff.pme(system(s.positions[perm], s.cell), q[perm], accuracy=1e-10)
    assert permuted.energy == pytest.approx(ref.energy, rel=1e-8)
    np.testing.assert_allclose(
        permuted.forces, ref.forces[perm], atol=1e-7 * np.abs(ref.forces).max()
    )
    # a 2x1x1 supercell doubles the energy
    shift = s.cell[0]
    big = system(np.vstack([s.positions, s.positions + shift]), s.cell * [[2], [1], [1]])
    doubled = ff.pme(big, np.concatenate([q, q]), accuracy=1e-10)
    assert doubled.energy == pytest.approx(2 * ref.energy, rel=1e-8)


def test_threads_agree():
    s, q = random_system(60, 5)
    try:
        ff.set_num_threads(1)
        one = ff.pme(s, q, accuracy=1e-8)
        ff.set_num_threads(2)
        two = ff.pme(s, q, accuracy=1e-8)
    finally:
        ff.set_num_threads(0)
    assert one.energy == pytest.approx(two.energy, rel=1e-12)
    np.testing.assert_allclose(one.forces, two.forces, atol=1e-12 * np.abs(one.forces).max())


def relative_force_error(s, q, forces, reference, exponent=1.0):
    n = len(q)
    d = (abs(np.linalg.det(s.cell)) / n) ** (1 / 3)
    f0 = np.sum(q**2) / n / d ** (exponent + 1)
    return np.sqrt(np.sum((forces - reference) ** 2) / n) / f0


@pytest.mark.parametrize("exponent", [1.0, 6.0])
def test_accuracy_sweep(exponent):
    # a jittered 7x7x7 lattice at density 0.1 (no near-overlaps, which would put p = 6 forces
    # 1e8 times above the force scale F_0 and the round-off floor above 1e-8 F_0)
    rng = np.random.default_rng(7)
    side = 7
    n = side**3
    length = (n / 0.1) ** (1 / 3)
    cell = np.array([[length, 0, 0], [0.1 * length, length, 0], [0, -0.2 * length, length]])
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    frac = (grid + 0.5 + 0.3 * (rng.random((n, 3)) - 0.5)) / side
    s = system(frac @ cell, cell)
    q = rng.choice([-1.0, 1.0], size=n) * (0.5 + rng.random(n))
    q -= q.mean()
    reference = ff.pme(s, q, exponent=exponent, accuracy=1e-12, order=8).forces
    for accuracy in (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8):
        forces = ff.pme(s, q, exponent=exponent, accuracy=accuracy).forces
        error = relative_force_error(s, q, forces, reference, exponent)
        assert accuracy * 1e-3 < error < accuracy, (accuracy, error)


def test_auto_choice():
    small, _ = random_system(20, 1)
    assert not ff.pme_preferred(small)
    rng = np.random.default_rng(2)
    length = (20000 / 0.1) ** (1 / 3)
    big = system(rng.random((20000, 3)) * length, np.eye(3) * length)
    assert ff.pme_preferred(big)


def test_bad_input():
    s, q = random_system(4, 1)
    with pytest.raises(ValueError, match="charges"):
        ff.pme(s, q[:3])
    with pytest.raises(ValueError, match="charges"):
        ff.pme(s, [np.nan, 0, 0, 0])
    with pytest.raises(ValueError, match="accuracy"):
        ff.pme(s, q, accuracy=0.0)
    with pytest.raises(ValueError, match="order"):
        ff.pme(s, q, order=2)
    with pytest.raises(ValueError, match="smearing"):
        ff.pme(s, q, smearing=-1.0)
    # a mesh alone is an override like any other (the tuner keeps the accuracy); a negative
    # size is refused by name
    with pytest.raises(ValueError, match="mesh"):
        ff.pme(s, q, mesh=(-8, 8, 8))
    with pytest.raises(ValueError, match="mesh"):
        ff.pme(s, q, smearing=1.0, cutoff=4.0, mesh=(2, 8, 8))
    with pytest.raises(ValueError, match="exponent"):
        ff.pme(s, q, exponent=-1.0)
    # an open system takes the free-space mesh, whose grid follows the atoms: mesh points
    # (meaningful for a cell only) are refused, naming the spacing to give instead
    with pytest.raises(ValueError, match="mesh_spacing"):
        ff.pme(ff.System(s.positions, s.numbers, None), q, mesh=(8, 8, 8))
    with pytest.raises(ValueError, match="1/r\\^3|neutral"):
        ff.pme(s, [1.0, 0, 0, 0], exponent=3.0)


def test_ewald_entry_point_dispatches_to_pme() -> None:
    """ff.ewald(method="pme") runs smooth PME and agrees with the Ewald method."""
    rng = np.random.default_rng(11)
    n = 64
    cell = np.array([[9.0, 0.0, 0.0], [1.0, 8.5, 0.0], [-0.5, 0.7, 9.5]])
    positions = rng.random((n, 3)) @ cell
    charges = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    system = ff.System(positions, np.ones(n, dtype=np.int32), cell)
    ref = ff.ewald(system, charges, accuracy=1e-9, method="ewald")
    res = ff.ewald(system, charges, accuracy=1e-9, method="pme")
    assert res.parameters["method"] == "pme"
    assert set(res.parameters) >= {"smearing", "cutoff", "mesh", "order"}
    assert res.energy == pytest.approx(ref.energy, rel=1e-7)
    assert res.forces is not None and ref.forces is not None
    assert np.allclose(res.forces, ref.forces, atol=1e-6 * np.abs(ref.forces).max())
    assert ff.ewald_parameters(system, method="pme")["method"] == "pme"
    # on an open system "pme" is the free-space mesh: the exact pair energy to the accuracy
    pair = ff.ewald(ff.System(positions[:2], [1, 1]), [1.0, -1.0], method="pme")
    assert pair.parameters.method == "pme" and pair.parameters.mesh_spacing is not None
    distance = float(np.linalg.norm(positions[1] - positions[0]))
    assert pair.energy == pytest.approx(-1.0 / distance, rel=1e-6)
