"""The Coulomb calculator object: same numbers as the one-shot sums, tuned once, re-tuned when
the cell changes, and the ASE calculator that keeps one across MD steps."""

from __future__ import annotations

import numpy as np
import pytest
from systems import MADELUNG, crystal, random_box

import farfield as ff


def _relative_rms(
    forces: np.ndarray, reference: np.ndarray, system: ff.System, q: np.ndarray
) -> float:
    assert system.cell is not None
    n = len(q)
    d = (abs(np.linalg.det(system.cell)) / n) ** (1 / 3)
    f0 = np.sum(q**2) / n / d**2
    return float(np.sqrt(np.mean(np.sum((forces - reference) ** 2, axis=1))) / f0)


@pytest.mark.parametrize("method", ["auto", "ewald", "pme"])
def test_calculator_equals_the_one_shot_sum(method: str) -> None:
    system, q = random_box(250, seed=3)
    calc = ff.Coulomb(accuracy=1e-6, method=method, prefactor=2.0)
    result = calc.compute(system, q, potentials=True)
    again = calc.compute(system, q, potentials=True)
    one_shot = ff.ewald(system, q, accuracy=1e-6, method=method, prefactor=2.0)
    assert result.parameters == one_shot.parameters
    # the same parameters, so the same numbers up to the order of the threads' reductions
    for r in (result, again):
        assert r.energy == pytest.approx(one_shot.energy, rel=1e-13)
        for field in ("forces", "stress", "potentials"):
            np.testing.assert_allclose(
                getattr(r, field), getattr(one_shot, field), rtol=1e-12, atol=1e-13
            )
    assert calc.tunings == 1


@pytest.mark.parametrize("name", sorted(MADELUNG))
@pytest.mark.parametrize("method", ["ewald", "pme"])
def test_madelung_constants(name: str, method: str) -> None:
    system, q, reference, units = crystal(name, scale=4.0)
    calc = ff.Coulomb(accuracy=1e-9, method=method)
    energy = calc.compute(system, q, forces=False, stress=False).energy
    # the wurtzite constant is known to 6 digits only (and u = 3/8 is not a force minimum)
    exact = name != "wurtzite"
    assert energy / units == pytest.approx(-reference, rel=1e-7 if exact else 1e-5)
    forces = calc.compute(system, q).forces
    assert forces is not None
    if exact:
        # every force vanishes by symmetry
        assert np.max(np.abs(forces)) < 1e-6 * reference
    assert calc.tunings == 1


def test_open_system_is_the_direct_sum() -> None:
    rng = np.random.default_rng(5)
    positions = rng.random((30, 3)) * 10
    q = rng.standard_normal(30)
    system = ff.System(positions, np.ones(30, dtype=np.int32), None)
    result = ff.Coulomb(exponent=1.0).compute(system, q, potentials=True)
    assert result.parameters["method"] == "direct" and result.stress is None
    r = positions[:, None, :] - positions[None, :, :]
    dist = np.linalg.norm(r, axis=-1)
    np.fill_diagonal(dist, np.inf)
    energy = 0.5 * np.sum(q[:, None] * q[None, :] / dist)
    forces = np.sum((q[:, None] * q[None, :] / dist**3)[..., None] * r, axis=1)
    assert result.energy == pytest.approx(energy, rel=1e-12)
    assert result.forces is not None
    np.testing.assert_allclose(result.forces, forces, rtol=1e-10, atol=1e-12)


def test_moved_atoms_reuse_the_parameters() -> None:
    system, q = random_box(200, seed=1)
    calc = ff.Coulomb(accuracy=1e-5)
    first = calc.parameters_for(system)
    assert first["predicted_error"] <= 1e-5
    moved = ff.System(system.positions + 0.3, system.numbers, system.cell)
    result = calc.compute(moved, q)
    assert calc.tunings == 1
    # the one-shot call tunes from scratch and must find the same parameters (they depend on
    # the number of atoms and the cell only) and the same numbers
    one_shot = ff.ewald(moved, q, accuracy=1e-5, potentials=False)
    assert result.parameters == one_shot.parameters
    assert result.energy == pytest.approx(one_shot.energy, rel=1e-13)
    np.testing.assert_allclose(result.forces, one_shot.forces, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("method", ["ewald", "pme"])
def test_cell_change_retunes_and_keeps_the_accuracy(method: str) -> None:
    accuracy = 1e-5
    system, q = random_box(300, seed=2)
    assert system.cell is not None
    calc = ff.Coulomb(accuracy=accuracy, method=method)
    calc.compute(system, q)
    for scale, tunings in [(1.0 + 2e-4, 1), (1.0 + 5e-4, 1), (1.08, 2), (1.08 * (1 + 1e-4), 2)]:
        strained = ff.System(system.positions * scale, system.numbers, system.cell * scale)
        result = calc.compute(strained, q)
        assert calc.tunings == tunings, scale
        reference = ff.ewald(strained, q, accuracy=1e-12, method="ewald", potentials=False)
        assert result.forces is not None and reference.forces is not None
        error = _relative_rms(result.forces, reference.forces, strained, q)
        assert error < accuracy, (scale, error)
        assert result.energy == pytest.approx(reference.energy, rel=1e-5)
    # another number of atoms: tuned again
    other, q2 = random_box(120, seed=4)
    calc.compute(other, q2)
    assert calc.tunings == 3


def test_tune_fixes_the_parameters() -> None:
    system, q = random_box(200, seed=6)
    calc = ff.Coulomb(accuracy=1e-6)
    fixed = calc.tune(system)
    assert calc.tunings == 1
    assert calc.parameters_for(system) == fixed
    bigger = ff.System(system.positions * 1.5, system.numbers, system.cell * 1.5)  # type: ignore[operator]
    result = calc.compute(bigger, q)
    assert calc.tunings == 1
    for key in ("smearing", "cutoff"):
        assert result.parameters[key] == fixed[key]


def test_explicit_parameters_are_used_as_given() -> None:
    system, q = random_box(150, seed=7)
    chosen = ff.Coulomb(accuracy=1e-6, method="ewald").parameters_for(system)
    calc = ff.Coulomb(
        method="ewald",
        smearing=chosen["smearing"],
        cutoff=chosen["cutoff"],
        k_cutoff=chosen["k_cutoff"],
    )
    result = calc.compute(system, q)
    reference = ff.Coulomb(accuracy=1e-6, method="ewald").compute(system, q)
    assert result.energy == pytest.approx(reference.energy, rel=1e-13)


def test_bad_settings_name_the_argument() -> None:
    system, q = random_box(50, seed=8)
    with pytest.raises(ValueError, match="method"):
        ff.Coulomb(method="fmm")
    with pytest.raises(ValueError, match="k_cutoff"):
        ff.Coulomb(method="pme", k_cutoff=3.0).compute(system, q)
    with pytest.raises(ValueError, match="mesh"):
        ff.Coulomb(method="ewald", mesh=(16, 16, 16)).compute(system, q)
    with pytest.raises(ValueError, match="order"):
        ff.Coulomb(order=2)
    with pytest.raises(ValueError, match="accuracy"):
        ff.Coulomb(accuracy=2.0).compute(system, q)
    with pytest.raises(ValueError, match="charges"):
        ff.Coulomb().compute(system)
    # a fixed mesh selects PME under "auto"
    assert ff.Coulomb(mesh=(20, 20, 20)).parameters_for(system)["method"] == "pme"


def test_ase_md_tunes_once() -> None:
    ase = pytest.importorskip("ase")
    from ase import units
    from ase.build import bulk
    from ase.md.verlet import VelocityVerlet

    from farfield.ase import EwaldCalculator

    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(2)
    atoms.set_initial_charges([1.0 if z == 11 else -1.0 for z in atoms.numbers])
    atoms.rattle(0.05, seed=3)
    assert isinstance(atoms, ase.Atoms)
    calc = EwaldCalculator(accuracy=1e-6)
    atoms.calc = calc
    start = atoms.get_total_energy()
    VelocityVerlet(atoms, timestep=0.5 * units.fs).run(5)
    assert calc.coulomb.tunings == 1
    # the last step's forces are those of a one-shot sum on the final positions
    one_shot = ff.ewald(atoms, accuracy=1e-6, prefactor=ff.units.EV_ANGSTROM)
    np.testing.assert_allclose(atoms.get_forces(), one_shot.forces, rtol=1e-12, atol=1e-12)
    assert atoms.get_total_energy() == pytest.approx(start, abs=1e-3 * len(atoms))
    # a new cell (beyond the tolerance) is tuned again
    atoms.set_cell(atoms.cell * 1.05, scale_atoms=True)
    atoms.get_forces()
    assert calc.coulomb.tunings == 2
