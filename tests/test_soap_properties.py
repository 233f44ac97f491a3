"""SOAP properties checked without featomic: finite differences, invariances, Wigner-D
equivariance, threads, bad input, result type."""

from __future__ import annotations

import numpy as np
import pytest

import farfield as ff

ase = pytest.importorskip("ase")

HYP = dict(cutoff=3.5, max_radial=3, max_angular=4, smearing=0.4, radial_accuracy=None)


def random_atoms(seed: int = 0, n: int = 10, periodic: bool = True) -> ase.Atoms:
    rng = np.random.default_rng(seed)
    cell = np.diag([5.0, 5.5, 6.0]) + rng.uniform(-1.2, 1.2, (3, 3))
    pos = rng.uniform(0, 1, (n, 3)) @ cell
    nums = rng.choice([1, 6, 8], n)
    nums[:3] = [1, 6, 8]
    if periodic:
        return ase.Atoms(numbers=nums, positions=pos, cell=cell, pbc=True)
    return ase.Atoms(numbers=nums, positions=pos)


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def test_spherical_harmonics_match_scipy() -> None:
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(1)
    v = rng.normal(size=(20, 3))
    lmax = 6
    ours = ff.descriptors.spherical_harmonics(v, lmax)
    r = np.linalg.norm(v, axis=1)
    theta = np.arccos(v[:, 2] / r)
    phi = np.arctan2(v[:, 1], v[:, 0])
    for ell in range(lmax + 1):
        for m in range(-ell, ell + 1):
            # scipy: sph_harm_y(n, m, theta, phi) includes the Condon-Shortley phase
            y = special.sph_harm_y(ell, abs(m), theta, phi)
            if m > 0:
                ref = np.sqrt(2) * (-1) ** m * y.real
            elif m < 0:
                ref = np.sqrt(2) * (-1) ** m * y.imag
            else:
                ref = y.real
            np.testing.assert_allclose(ours[:, ell * ell + ell + m], ref, atol=1e-12)


@pytest.mark.parametrize("periodic", [True, False])
def test_position_gradients_finite_differences(periodic: bool) -> None:
    atoms = random_atoms(2, periodic=periodic)
    calc = ff.PowerSpectrum(**HYP, cutoff_function="shifted_cosine", cutoff_width=0.8)
    res = calc.compute(atoms, gradients=["positions"])
    assert res.positions_samples is not None
    h = 1e-5
    for atom in (0, 4):
        for x in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[atom, x] += h
            minus.positions[atom, x] -= h
            fd = (calc.compute(plus).values - calc.compute(minus).values) / (2 * h)
            analytic = np.zeros_like(fd)
            for k, (sample, _, a) in enumerate(res.positions_samples):
                if a == atom:
                    analytic[sample] = res.gradients["positions"][k, x]
            np.testing.assert_allclose(analytic, fd, atol=2e-7 * max(1.0, np.abs(fd).max()))


def test_strain_gradients_finite_differences() -> None:
    atoms = random_atoms(3)
    calc = ff.SphericalExpansion(**HYP, cutoff_function="shifted_cosine", cutoff_width=0.8)
    res = calc.compute(atoms, gradients=["strain"])
    h = 1e-6
    for a in range(3):
        for b in range(3):
            out = []
            for sign in (1, -1):
                eps = np.eye(3)
                eps[a, b] += sign * h
                deformed = atoms.copy()
                # ε on column vectors: r → (1 + ε) r, cell rows H → H (1 + ε)ᵀ
                deformed.set_cell(atoms.cell.array @ eps.T, scale_atoms=False)
                deformed.positions = atoms.positions @ eps.T
                out.append(calc.compute(deformed).values)
            fd = (out[0] - out[1]) / (2 * h)
            np.testing.assert_allclose(
                res.gradients["strain"][:, a, b], fd, atol=1e-6 * max(1.0, np.abs(fd).max())
            )


@pytest.mark.parametrize("kind", ["expansion", "power_spectrum"])
def test_strain_and_cell_gradients_finite_differences(kind: str) -> None:
    # "strain": cell and positions deformed together; "cell": cell matrix alone, Cartesian
    # positions fixed (featomic's definition)
    atoms = random_atoms(13)
    cls = ff.SphericalExpansion if kind == "expansion" else ff.PowerSpectrum
    calc = cls(**HYP, cutoff_function="shifted_cosine", cutoff_width=0.8)
    res = calc.compute(atoms, gradients=["strain", "cell"])
    assert np.abs(res.gradients["cell"]).max() > 1e-3
    assert np.abs(res.gradients["cell"] - res.gradients["strain"]).max() > 1e-3
    h = 1e-6
    for a in range(3):
        for b in range(3):
            strained, celled = [], []
            for sign in (1, -1):
                eps = np.eye(3)
                eps[a, b] += sign * h
                deformed = atoms.copy()
                # ε on column vectors: r → (1 + ε) r, cell rows H → H (1 + ε)ᵀ
                deformed.set_cell(atoms.cell.array @ eps.T, scale_atoms=False)
                deformed.positions = atoms.positions @ eps.T
                strained.append(calc.compute(deformed).values)
                moved = atoms.copy()
                cell = atoms.cell.array.copy()
                cell[a, b] += sign * h
                moved.set_cell(cell, scale_atoms=False)
                celled.append(calc.compute(moved).values)
            for name, (plus, minus) in (("strain", strained), ("cell", celled)):
                fd = (plus - minus) / (2 * h)
                np.testing.assert_allclose(
                    res.gradients[name][:, a, b], fd, atol=1e-6 * max(1.0, np.abs(fd).max())
                )


def test_cell_gradients_vanish_for_open_systems() -> None:
    # no images: nothing depends on the cell; the strain derivative (positions scaled) stays
    atoms = random_atoms(14, periodic=False)
    res = ff.PowerSpectrum(**HYP).compute(atoms, gradients=["positions", "cell", "strain"])
    assert res.gradients["cell"].shape == res.gradients["strain"].shape
    assert not res.gradients["cell"].any()
    assert np.abs(res.gradients["strain"]).max() > 1e-3


def test_power_spectrum_invariances() -> None:
    atoms = random_atoms(4)
    calc = ff.PowerSpectrum(**HYP)
    ref = calc.compute(atoms).values
    rot = random_rotation(5)
    for q in (rot, -rot):  # proper rotation and rotation + inversion
        moved = atoms.copy()
        moved.positions = atoms.positions @ q.T + np.array([0.3, -1.0, 2.0])
        moved.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
        np.testing.assert_allclose(calc.compute(moved).values, ref, atol=1e-11)
    perm = np.random.default_rng(6).permutation(len(atoms))
    permuted = atoms[perm]
    np.testing.assert_allclose(calc.compute(permuted).values, ref[perm], atol=1e-12)


def wigner_from_harmonics(q: np.ndarray, lmax: int) -> list[np.ndarray]:
    """Real Wigner matrices D^l with Y(q r) = D^l Y(r), by least squares on directions."""
    v = np.random.default_rng(7).normal(size=(200, 3))
    y = ff.descriptors.spherical_harmonics(v, lmax)
    yr = ff.descriptors.spherical_harmonics(v @ q.T, lmax)
    out = []
    for ell in range(lmax + 1):
        s = slice(ell * ell, (ell + 1) * (ell + 1))
        d, *_ = np.linalg.lstsq(y[:, s], yr[:, s], rcond=None)
        out.append(d.T)
    return out


@pytest.mark.parametrize("inversion", [False, True])
def test_expansion_blocks_transform_with_wigner_d(inversion: bool) -> None:
    atoms = random_atoms(8, periodic=False)
    calc = ff.SphericalExpansion(**HYP)
    q = random_rotation(9) * (-1 if inversion else 1)
    ref = calc.compute(atoms)
    moved = atoms.copy()
    moved.positions = atoms.positions @ q.T
    rotated = calc.compute(moved)
    lmax = HYP["max_angular"]
    d = wigner_from_harmonics(q, lmax)
    for ell in range(lmax + 1):
        assert np.allclose(d[ell] @ d[ell].T, np.eye(2 * ell + 1), atol=1e-10)
        if inversion:
            # D(−R) = (−1)^ell D(R)
            assert np.allclose(
                d[ell], (-1) ** ell * wigner_from_harmonics(-q, lmax)[ell], atol=1e-10
            )
        for z in (1, 6, 8):
            cols = np.nonzero((ref.properties[:, 0] == z) & (ref.properties[:, 1] == ell))[0]
            a = ref.values[:, cols].reshape(len(atoms), 2 * ell + 1, -1)
            b = rotated.values[:, cols].reshape(len(atoms), 2 * ell + 1, -1)
            np.testing.assert_allclose(np.einsum("mk,ikn->imn", d[ell], a), b, atol=1e-11)


def test_one_and_two_threads_agree() -> None:
    frames = [random_atoms(s) for s in range(4)]
    calc = ff.PowerSpectrum(**HYP)
    try:
        ff.set_num_threads(1)
        one = calc.compute(frames, gradients=["positions", "strain", "cell"])
        ff.set_num_threads(2)
        two = calc.compute(frames, gradients=["positions", "strain", "cell"])
    finally:
        ff.set_num_threads(0)
    np.testing.assert_allclose(one.values, two.values, atol=1e-14, rtol=0)
    np.testing.assert_allclose(
        one.gradients["positions"], two.gradients["positions"], atol=1e-14, rtol=0
    )
    for name in ("strain", "cell"):
        np.testing.assert_allclose(one.gradients[name], two.gradients[name], atol=1e-14, rtol=0)


def test_batch_progress_and_structure_labels() -> None:
    frames = [random_atoms(s, n=4) for s in range(300)]
    calc = ff.PowerSpectrum(**{**HYP, "radial_accuracy": 1e-8})
    chunked = calc.compute(frames, gradients=["positions"], progress=True)
    whole = calc.compute(frames, gradients=["positions"], progress=False)
    np.testing.assert_array_equal(chunked.samples, whole.samples)
    np.testing.assert_array_equal(chunked.positions_samples, whole.positions_samples)
    np.testing.assert_allclose(chunked.values, whole.values, atol=1e-14)
    assert whole.samples[-1, 0] == 299


def test_cutoff_longer_than_cell_is_handled() -> None:
    # the cutoff spans several images: compare a small cell with the same crystal as a supercell
    atoms = ase.Atoms(
        "HO", positions=[[0, 0, 0], [1.1, 0.4, 0.2]], cell=np.diag([2.2, 2.4, 2.6]), pbc=True
    )
    calc = ff.PowerSpectrum(
        cutoff=5.0, max_radial=3, max_angular=3, smearing=0.5, radial_accuracy=None
    )
    small = calc.compute(atoms).values
    big = calc.compute(atoms * (2, 3, 2)).values
    np.testing.assert_allclose(big[:2], small, atol=1e-10)


def test_result_type_blocks_and_metatensor() -> None:
    atoms = random_atoms(11)
    res = ff.PowerSpectrum(**HYP).compute(atoms, gradients=["positions", "strain", "cell"])
    with pytest.raises(ValueError):
        res.values[0, 0] = 1.0
    blocks = res.blocks
    assert (1, 1, 6) in blocks
    b = blocks[(6, 1, 8)]
    assert b.property_names == ("l", "n_1", "n_2")
    rows = res.samples[:, 2] == 6
    cols = (res.properties[:, 0] == 1) & (res.properties[:, 1] == 8)
    np.testing.assert_array_equal(b.values, res.values[rows][:, cols])
    pytest.importorskip("metatensor")
    tensor = res.to_metatensor()
    assert len(tensor.keys) == len(blocks)
    block = tensor.block(center_type=6, neighbor_1_type=1, neighbor_2_type=8)
    assert sorted(block.gradients_list()) == ["cell", "positions", "strain"]
    np.testing.assert_array_equal(block.gradient("cell").values, b.gradients["cell"])


def test_bad_input() -> None:
    atoms = random_atoms(0)
    with pytest.raises(ValueError, match="cutoff"):
        ff.PowerSpectrum(cutoff=-1.0, max_radial=2, max_angular=2, smearing=0.3)
    with pytest.raises(ValueError, match="width"):
        ff.PowerSpectrum(cutoff=3.0, max_radial=2, max_angular=2, smearing=0.3, cutoff_width=0.0)
    with pytest.raises(ValueError, match="width"):
        ff.PowerSpectrum(cutoff=3.0, max_radial=2, max_angular=2, smearing=0.0)
    with pytest.raises(ValueError, match="max_angular"):
        ff.PowerSpectrum(cutoff=3.0, max_radial=2, max_angular=31, smearing=0.3)
    with pytest.raises(ValueError, match="max_radial"):
        ff.PowerSpectrum(cutoff=3.0, max_radial=-1, max_angular=2, smearing=0.3)
    with pytest.raises(ValueError, match="max_radial"):
        ff.PowerSpectrum(cutoff=3.0, max_radial=40, max_angular=2, smearing=0.3)
    with pytest.raises(ValueError, match="cutoff_function"):
        ff.PowerSpectrum(
            cutoff=3.0, max_radial=2, max_angular=2, smearing=0.3, cutoff_function="cos"
        )
    with pytest.raises(ValueError, match="radial_accuracy"):
        ff.PowerSpectrum(
            cutoff=3.0, max_radial=2, max_angular=2, smearing=0.3, radial_accuracy=-1.0
        )
    calc = ff.PowerSpectrum(cutoff=3.0, max_radial=2, max_angular=2, smearing=0.3, species=[1, 6])
    with pytest.raises(ValueError, match="species"):
        calc.compute(atoms)
    with pytest.raises(ValueError, match="gradient"):
        ff.PowerSpectrum(cutoff=3.0, max_radial=2, max_angular=2, smearing=0.3).compute(
            atoms, gradients=["forces"]
        )
    bad = atoms.copy()
    bad.positions[0, 0] = np.nan
    with pytest.raises(ValueError):
        ff.PowerSpectrum(cutoff=3.0, max_radial=2, max_angular=2, smearing=0.3).compute(bad)


def test_explicit_species_adds_empty_channels() -> None:
    atoms = random_atoms(12)
    res = ff.SphericalExpansion(**HYP, species=[1, 6, 8, 14]).compute(atoms)
    si = res.properties[:, 0] == 14
    assert si.any() and np.all(res.values[:, si] == 0.0)
    ref = ff.SphericalExpansion(**HYP).compute(atoms)
    np.testing.assert_array_equal(res.values[:, ~si], ref.values)


def test_width_keyword_is_a_deprecated_alias_of_cutoff_width() -> None:
    # one name for the cutoff-function width across SOAP and triplets; the old one still works
    atoms = random_atoms(21)
    new = ff.SphericalExpansion(**HYP, cutoff_width=0.7)
    with pytest.warns(DeprecationWarning, match="'width' is deprecated, use 'cutoff_width'"):
        old = ff.SphericalExpansion(**HYP, width=0.7)
    assert old.cutoff_width == 0.7
    with pytest.warns(DeprecationWarning, match="cutoff_width"):
        assert old.width == 0.7
    np.testing.assert_array_equal(old.compute(atoms).values, new.compute(atoms).values)
    # the width matters (a different one gives different features), so the alias is honoured
    other = ff.SphericalExpansion(**HYP, cutoff_width=0.3).compute(atoms).values
    assert np.abs(other - new.compute(atoms).values).max() > 1e-6
    with pytest.raises(TypeError, match="both"):
        ff.SphericalExpansion(**HYP, width=0.7, cutoff_width=0.7)
