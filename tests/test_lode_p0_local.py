"""p = 0 LODE ≡ local spherical expansion (docs/science.md §2.2: g_0 is the L2-normalised Gaussian
(πσ²)^(-3/4) exp(-r²/(2σ²)), the density of featomic's SphericalExpansion too).

With the same GTO basis (our SphericalExpansion ties the GTO radius to its cutoff, so the LODE
``radius`` is the local ``cutoff``), the same σ and the same centre-atom weight, the two agree
whenever the local cutoff drops nothing: every pair inside ``cutoff − width`` (weight 1) and every
atom (or image) beyond the cutoff too far for the Gaussian tails of the GTO basis to see it. No
normalisation factor is needed. Periodic LODE p = 0 includes its k = 0 term (the mean density
N_a/V projected on the basis, docs/science.md §2.3 K0): it belongs to the Fourier sum of an
integrable density and is required for the agreement. The only other difference is the k-space
truncation: the Hankel transforms of the odd-n GTO primitives decay as a power of k, so the
error falls like exp(-k_c² σ²/2); σ = 0.8, k_c = 10 gives ~1e-14.
"""

from __future__ import annotations

import numpy as np
import pytest

import farfield as ff

ase = pytest.importorskip("ase")

SIGMA = 0.8
CUTOFF = 5.0
WIDTH = 0.5


def cluster(offset: float = 0.0) -> ase.Atoms:
    rng = np.random.default_rng(0)
    pos = rng.random((5, 3)) * 1.5 + offset
    atoms = ase.Atoms(numbers=[1, 8, 1, 6, 8], positions=pos)
    distances = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    assert distances.max() < CUTOFF - WIDTH  # every pair has cutoff weight 1
    return atoms


def local(weight: float, smoothing: str) -> ff.SphericalExpansion:
    return ff.SphericalExpansion(
        cutoff=CUTOFF,
        max_radial=3,
        max_angular=3,
        smearing=SIGMA,
        cutoff_function=smoothing,
        cutoff_width=WIDTH,
        center_atom_weight=weight,
        radial_accuracy=None,
    )


def lode(weight: float, k_cutoff: float | None = None) -> ff.LodeSphericalExpansion:
    return ff.LodeSphericalExpansion(
        exponent=0,
        smearing=SIGMA,
        max_angular=3,
        max_radial=3,
        radius=CUTOFF,
        k_cutoff=k_cutoff,
        center_atom_weight=weight,
        method="exact",
    )


@pytest.mark.parametrize("weight", [1.0, 0.0, 0.3])
@pytest.mark.parametrize("smoothing", ["shifted_cosine", "step"])
def test_open_p0_lode_equals_local_expansion(weight: float, smoothing: str) -> None:
    atoms = cluster()
    rho = local(weight, smoothing).compute(atoms)
    v = lode(weight).compute(atoms)
    # same layout: (neighbor_type, l, m, n) flattened
    values = v.values.reshape(len(atoms), -1)
    assert np.abs(values).max() > 0.5
    np.testing.assert_allclose(values, rho.values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("weight", [1.0, 0.0])
def test_periodic_p0_lode_equals_local_expansion(weight: float) -> None:
    # triclinic box: the nearest image of the cluster is > 20 Å away, beyond the cutoff and
    # where the widest GTO (σ_3 = r0 √3 / 4 ≈ 2.2 Å) sees exp(-20²/(2 (σ_3² + σ²))) ~ 1e-17
    cell = np.array([[24.0, 0.0, 0.0], [3.0, 23.0, 0.0], [-2.0, 1.5, 25.0]])
    atoms = cluster(offset=5.0)
    atoms.set_cell(cell)
    atoms.pbc = True
    rho = local(weight, "shifted_cosine").compute(atoms)
    values = lode(weight, k_cutoff=10.0).compute(atoms).values.reshape(len(atoms), -1)
    np.testing.assert_allclose(values, rho.values, rtol=0, atol=1e-10)
    # the k = 0 term is part of it (N_a (4πσ²)^(3/4) √(4π) ∫r² R_n0 / V is 3e-4 to 3e-2 per
    # channel here, far above the tolerance); the open-system LODE agrees as well
    open_values = lode(weight).compute(cluster(offset=5.0)).values.reshape(len(atoms), -1)
    np.testing.assert_allclose(values, open_values, rtol=0, atol=1e-10)
    # a truncated k-sum is visibly off: the check is sensitive to the periodic evaluation
    coarse = lode(weight, k_cutoff=4.0).compute(atoms).values.reshape(len(atoms), -1)
    assert np.abs(coarse - rho.values).max() > 1e-4
