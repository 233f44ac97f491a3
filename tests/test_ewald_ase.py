"""The ASE calculator (energy, forces, stress, an NVE run) and the command line."""

from __future__ import annotations

import numpy as np
import pytest
from systems import SHARED

import farfield as ff

ase = pytest.importorskip("ase")


def _salt() -> ase.Atoms:
    from ase.build import bulk

    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.set_initial_charges([1.0 if z == 11 else -1.0 for z in atoms.numbers])
    atoms.rattle(0.05, seed=1)
    return atoms


def test_calculator_matches_ewald_and_finite_differences() -> None:
    from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

    from farfield.ase import EwaldCalculator

    atoms = _salt()
    atoms.calc = EwaldCalculator(accuracy=1e-8)
    energy = atoms.get_potential_energy()
    direct = ff.ewald(atoms, accuracy=1e-8, prefactor=ff.units.EV_ANGSTROM)
    assert energy == pytest.approx(direct.energy, rel=1e-10)
    # ASE's own numerical stress (finite strain differences of our energy)
    stress = atoms.get_stress()
    numerical = calculate_numerical_stress(atoms, eps=1e-5)
    np.testing.assert_allclose(stress, numerical, atol=1e-6)
    forces = atoms.get_forces()
    numerical_f = calculate_numerical_forces(atoms, eps=1e-5)
    np.testing.assert_allclose(forces, numerical_f, atol=1e-6)


def test_stress_on_demand_after_forces() -> None:
    """Forces first (no virial computed), then the stress of the same step, then of a later
    step: each stress against ASE's finite strain differences of the energy."""
    from ase.calculators.fd import calculate_numerical_stress

    from farfield.ase import EwaldCalculator

    atoms = _salt()
    calc = EwaldCalculator(accuracy=1e-8)
    atoms.calc = calc
    atoms.get_forces()
    assert "stress" not in calc.results
    for step in range(2):
        stress = atoms.get_stress()
        numerical = calculate_numerical_stress(atoms, eps=1e-5)
        np.testing.assert_allclose(stress, numerical, atol=1e-6)
        atoms.positions[0] += 0.05
        atoms.get_forces()
        # once asked for, the stress comes with every later step
        assert "stress" in calc.results, step


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_nve_conserves_energy() -> None:
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from farfield.ase import EwaldCalculator

    atoms = _salt()
    # a soft short-range repulsion is not part of farfield: keep the run short and cold
    atoms.calc = EwaldCalculator(accuracy=1e-7)
    MaxwellBoltzmannDistribution(atoms, temperature_K=50, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    energies = []
    for _ in range(20):
        dyn.run(2)
        energies.append(atoms.get_potential_energy() + atoms.get_kinetic_energy())
    drift = max(energies) - min(energies)
    assert drift < 1e-3 * abs(atoms.get_potential_energy()) / len(atoms)


def test_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from farfield.cli import main

    path = SHARED / "reference-data" / "torchpme_coulomb_test_frames.xyz"
    assert main(["ewald", str(path), "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("frame,energy")
    assert len(lines) == 4
    assert float(lines[1].split(",")[1]) == pytest.approx(-24.65950740532494, rel=2e-5)
