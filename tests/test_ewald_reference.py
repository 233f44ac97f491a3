"""Ewald against independent references: Madelung constants, GROMACS frames, pymatgen."""

from __future__ import annotations

import numpy as np
import pytest
from systems import MADELUNG, SHARED, crystal, random_box

import farfield as ff


@pytest.mark.parametrize("name", list(MADELUNG))
@pytest.mark.parametrize("scale", [1.0, 3.1])
def test_madelung(name: str, scale: float) -> None:
    system, charges, reference, fu = crystal(name, scale)
    rtol = 1e-5 if name == "wurtzite" else 1e-9  # wurtzite's reference has 6 digits
    result = ff.ewald(system, charges, accuracy=1e-13)
    assert -result.energy / fu == pytest.approx(reference, rel=rtol)
    # explicit smearings: the energy does not depend on σ
    for sigma in (0.2 * scale, 0.4 * scale):
        r = ff.ewald(system, charges, smearing=sigma, cutoff=9 * sigma, k_cutoff=9 / sigma)
        assert -r.energy / fu == pytest.approx(reference, rel=rtol)
        assert r.parameters["smearing"] == sigma


def test_wigner_and_lattice_sums() -> None:
    sc = ff.System(np.zeros((1, 3)), [1], np.eye(3))
    assert ff.ewald(sc, [1.0], accuracy=1e-13).energy == pytest.approx(-1.4186487397, rel=1e-9)
    for p, s in [(4.0, 16.5323159598), (5.0, 10.3775248308), (6.0, 8.4019239748)]:
        e = ff.ewald(sc, [1.0], exponent=p, accuracy=1e-13).energy
        assert e == pytest.approx(s / 2, rel=1e-9)
    nacl, _, _, _ = crystal("NaCl")
    e = ff.ewald(nacl, [1.0, 2.0], exponent=6, accuracy=1e-13).energy
    assert e == pytest.approx(17.7072180149, rel=1e-9)


def _gromacs_frames() -> list:  # type: ignore[type-arg]
    ase_io = pytest.importorskip("ase.io")
    return ase_io.read(SHARED / "reference-data" / "torchpme_coulomb_test_frames.xyz", ":")  # type: ignore[no-any-return]


def test_gromacs_frames() -> None:
    """GROMACS PME reference (itself accurate to ~1e-5 in energy and ~1e-4 in forces and the
    virial, see tests/data/reference-data/README.md); pymatgen agrees with us to 1e-8 on these
    frames (test_gromacs_frames_pymatgen)."""
    frames = _gromacs_frames()
    gaussian = [-1.71250961, -1.37954755, -1.10181639]
    for atoms, e_gauss in zip(frames, gaussian, strict=True):
        result = ff.ewald(atoms, accuracy=1e-8, prefactor=ff.units.EV_ANGSTROM)
        e_ref = atoms.get_potential_energy()
        assert result.energy == pytest.approx(e_ref, rel=2e-5)
        assert result.energy / ff.units.EV_ANGSTROM == pytest.approx(e_gauss, rel=2e-5)
        forces = atoms.get_forces()
        assert result.forces is not None
        scale = np.abs(forces).max()
        np.testing.assert_allclose(result.forces, forces, atol=2e-4 * scale)
        # the file's "stress" is the GROMACS virial ½ ∂E/∂ε in eV (Voigt xx yy zz yz xz xy)
        assert result.stress is not None
        v = atoms.calc.results["stress"]
        stored = np.array([[v[0], v[5], v[4]], [v[5], v[1], v[3]], [v[4], v[3], v[2]]])
        half = 0.5 * result.stress * atoms.get_volume()
        np.testing.assert_allclose(half, stored, atol=2e-4 * np.abs(stored).max())


def test_gromacs_frames_pymatgen() -> None:
    for atoms in _gromacs_frames():
        system = ff.System.from_ase(atoms)
        charges = atoms.get_initial_charges()
        e_ref, f_ref = _pymatgen(system, charges)
        result = ff.ewald(atoms, accuracy=1e-10, prefactor=ff.units.EV_ANGSTROM)
        assert result.energy == pytest.approx(e_ref, rel=1e-8)
        assert result.forces is not None
        np.testing.assert_allclose(result.forces, f_ref, atol=1e-8 * np.abs(f_ref).max())


def _pymatgen(system: ff.System, charges: np.ndarray) -> tuple[float, np.ndarray]:
    pytest.importorskip("pymatgen")
    from pymatgen.analysis.ewald import EwaldSummation
    from pymatgen.core import Lattice, Structure

    structure = Structure(
        Lattice(system.cell),
        ["H"] * len(system),
        system.positions,
        coords_are_cartesian=True,
        site_properties={"charge": charges},
    )
    ewald = EwaldSummation(structure, acc_factor=16.0, compute_forces=True)
    return float(ewald.total_energy), np.asarray(ewald.forces)


@pytest.mark.parametrize("charged", [False, True])
def test_pymatgen(charged: bool) -> None:
    cell = np.array([[5.0, 0.0, 0.0], [1.9, 4.6, 0.0], [-1.2, 1.4, 5.3]])
    system, charges = random_box(12, seed=3, charged=charged, cell=cell)
    e_ref, f_ref = _pymatgen(system, charges)
    result = ff.ewald(system, charges, accuracy=1e-10, prefactor=ff.units.EV_ANGSTROM)
    assert result.energy == pytest.approx(e_ref, rel=1e-6)
    assert result.forces is not None
    np.testing.assert_allclose(result.forces, f_ref, atol=1e-6 * np.abs(f_ref).max())
