"""PME in strongly skewed cells (issue #17): the mesh refers to the user's cell vectors, and the
mesh-error model accounts for the skew of that basis, so that the requested accuracy holds in
any basis of the lattice. References: Ewald sums converged to 1e-12 in the original (nearly
orthogonal) basis of the same lattice."""

from __future__ import annotations

import numpy as np
import pytest

import farfield as ff

# the case found by the invariance property tests (rust/farfield/tests/invariances.rs)
CELL = np.array(
    [
        [4.715449013661558, 0.0, 0.0],
        [-0.5654153733372742, 4.33913504580711, 0.0],
        [0.7202661387255186, 0.6773379182761093, 4.041239395490606],
    ]
)
POSITIONS = np.array(
    [
        [0.9348672580938134, 3.4236857639243596, 1.0103098488726514],
        [3.292591764924592, 3.4236857639243596, 1.0103098488726514],
        [1.5777080141252098, 1.5927872001588594, 3.030929546617954],
        [1.254025942917369, 3.7238224322406666, 2.8010321682699852],
        [3.4238337213701113, 3.765032095362879, 3.0469037038666285],
    ]
)
CHARGES = np.array(
    [
        0.8163376328856627,
        -1.1836623671143371,
        0.5894311204936171,
        -1.1836623671143371,
        0.9615559808493946,
    ]
)
# (a + c, b, a + 2c): a basis of the same lattice whose first and last vectors are 16° apart
SKEW = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 2]])


def systems(cell=CELL, positions=POSITIONS):
    """The system in its own basis and in the skewed one (positions unchanged)."""
    numbers = np.ones(len(positions), dtype=np.int32)
    plain = ff.System(positions, numbers, cell)
    skewed = ff.System(positions, numbers, SKEW @ cell)
    return plain, skewed


def relative_rms(forces, reference, charges, cell, exponent):
    """sqrt(<|ΔF|²>) / F_0, F_0 = (Σq²/N) / d^{p+1}, d = (V/N)^{1/3} (the accuracy's units)."""
    n = len(charges)
    d = (abs(np.linalg.det(cell)) / n) ** (1 / 3)
    f0 = (charges @ charges / n) / d ** (exponent + 1)
    return np.sqrt(((forces - reference) ** 2).sum(axis=1).mean()) / f0


@pytest.mark.parametrize("exponent", [1.0, 2.5, 6.0])
def test_tuned_pme_meets_its_accuracy_in_a_skewed_basis(exponent):
    plain, skewed = systems()
    reference = ff.ewald(plain, CHARGES, exponent=exponent, accuracy=1e-12, method="ewald")
    for accuracy in (1e-4, 1e-5, 1e-6):
        result = ff.pme(skewed, CHARGES, exponent=exponent, accuracy=accuracy)
        error = relative_rms(result.forces, reference.forces, CHARGES, CELL, exponent)
        # before issue #17 was fixed: up to 1.73 × the accuracy here
        assert error < accuracy, (accuracy, error / accuracy, result.parameters)
        # the mesh counts points along the user's (skewed) cell vectors: the parameters
        # reported, given back, give the same sum
        p = result.parameters
        again = ff.pme(
            skewed,
            CHARGES,
            exponent=exponent,
            smearing=p.smearing,
            cutoff=p.cutoff,
            mesh=p.mesh,
            order=p.order,
        )
        np.testing.assert_array_equal(again.forces, result.forces)


@pytest.mark.parametrize(
    "fixed",
    [{"mesh": (12, 8, 16)}, {"mesh_spacing": 0.5}, {"order": 4}, {"cutoff": 8.0}, {}],
)
def test_coulomb_pme_with_fixed_values_in_a_skewed_basis(fixed):
    plain, skewed = systems()
    reference = ff.ewald(plain, CHARGES, accuracy=1e-12, method="ewald")
    for accuracy in (1e-4, 1e-6):
        calc = ff.Coulomb(method="pme", accuracy=accuracy, **fixed)
        result = calc.compute(skewed, CHARGES)
        error = relative_rms(result.forces, reference.forces, CHARGES, CELL, 1.0)
        assert error < accuracy, (fixed, accuracy, error / accuracy, result.parameters)
        assert result.energy == pytest.approx(reference.energy, rel=10 * accuracy)
        np.testing.assert_allclose(
            result.stress, reference.stress, atol=10 * accuracy * np.abs(reference.stress).max()
        )


def test_random_charges_in_a_skewed_basis():
    # 60 random charges; the skewed basis has skew factors |a|/d of about 3.7 along two axes
    rng = np.random.default_rng(17)
    cell = CELL * 2.3
    positions = rng.random((60, 3)) @ cell
    charges = rng.standard_normal(60)
    charges -= charges.mean()
    plain, skewed = systems(cell, positions)
    for exponent in (1.0, 6.0):
        reference = ff.ewald(plain, charges, exponent=exponent, accuracy=1e-12, method="ewald")
        for accuracy in (1e-3, 1e-5):
            calc = ff.Coulomb(exponent=exponent, method="pme", accuracy=accuracy)
            result = calc.compute(skewed, charges)
            error = relative_rms(result.forces, reference.forces, charges, cell, exponent)
            assert error < accuracy, (exponent, accuracy, error / accuracy, result.parameters)
