"""Triplet features and the bispectrum: degeneracies (docs/science.md §7 items 19-20), invariances,
equivariance of the intermediate blocks against independent real Wigner matrices, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import farfield as ff

ase = pytest.importorskip("ase")
scipy_special = pytest.importorskip("scipy.special")

from examples_path import ml_helpers  # noqa: E402

from farfield import structures  # noqa: E402

SETTINGS = {"cutoff": 2.6, "max_radial": 3, "max_angular": 3, "smearing": 0.3}


def calculators(species: list[int]) -> tuple[ff.TripletFeatures, ff.Bispectrum]:
    return ff.TripletFeatures(species=species, **SETTINGS), ff.Bispectrum(
        species=species, **SETTINGS
    )


def power_spectrum(tf: ff.TripletFeatures, atoms: object) -> np.ndarray:
    """ν = 2 invariants Σ_m ρ_nlm ρ_n'lm of the centre atom, from the pair expansions."""
    _, g = tf.pair_expansion(atoms, 0)
    rho = g.sum(axis=0)
    out = [
        np.einsum(
            "am,bm->ab", rho[:, ell * ell : (ell + 1) ** 2], rho[:, ell * ell : (ell + 1) ** 2]
        )
        for ell in range(tf.max_angular + 1)
    ]
    return np.stack(out).ravel()


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max()))


PAIRS = {
    "planar": lambda s: structures.planar_homometric_pair(seed=s),
    "ch4": lambda s: structures.ch4_pair(seed=s),
    "bpm": lambda s: structures.bpm_pair(seed=s),
}


@pytest.mark.parametrize("kind", ["planar", "ch4", "bpm"])
def test_degenerate_pairs(kind: str) -> None:
    for seed in range(3):
        plus, minus = PAIRS[kind](seed)
        species = sorted(set(plus.numbers.tolist()))
        tf, bs = calculators(species)
        assert rel(power_spectrum(tf, plus), power_spectrum(tf, minus)) < 1e-13
        bp, bm = bs.compute(plus, [0]).values, bs.compute(minus, [0]).values
        if kind == "bpm":
            assert rel(bp, bm) < 1e-13
        else:
            assert rel(bp, bm) > 1e-4
        # the linear sum of triplets is the bispectrum (same columns)
        np.testing.assert_allclose(
            tf.summed(plus, centers=[0]).values, bp, atol=1e-12 * np.abs(bp).max()
        )


def test_triplets_separate_bpm() -> None:
    for seed in range(3):
        plus, minus = structures.bpm_pair(seed=seed)
        tf, _ = calculators([5])
        tp, tm = tf.compute(plus, [0]).values, tf.compute(minus, [0]).values
        # different multisets of rows: already the column-wise sorted values differ
        assert rel(np.sort(tp, axis=0), np.sort(tm, axis=0)) > 1e-4
        # a random nonlinear ψ summed over the pairs separates the members
        w = np.random.default_rng(seed).normal(size=(tp.shape[1], 8)) / np.abs(tp).max()
        s_plus = tf.summed(plus, psi=lambda x, w=w: np.tanh(x @ w), centers=[0]).values
        s_minus = tf.summed(minus, psi=lambda x, w=w: np.tanh(x @ w), centers=[0]).values
        assert rel(s_plus, s_minus) > 1e-4
        # while the linear sum does not
        assert (
            rel(tf.summed(plus, centers=[0]).values, tf.summed(minus, centers=[0]).values) < 1e-13
        )


def parity(tf: ff.TripletFeatures, species: list[int]) -> np.ndarray:
    labels = (
        ff.TripletFeatures(species=species, **SETTINGS)
        .compute(ase.Atoms("H2", positions=[[0, 0, 0], [1, 0, 0]]), [0])
        .properties
    )
    return np.where((labels[:, 3] + labels[:, 4] + labels[:, 5]) % 2 == 0, 1.0, -1.0)


def random_cluster(seed: int) -> object:
    rng = np.random.default_rng(seed)
    positions = rng.normal(size=(7, 3)) * 0.9
    positions[0] = 0
    return ase.Atoms("CH3OH2", positions=positions)


@pytest.mark.slow
def test_invariance_rotation_reflection_permutation() -> None:
    atoms = random_cluster(1)
    species = [1, 6, 8]
    tf = ff.TripletFeatures(species=species, **SETTINGS)
    ref = tf.compute(atoms)
    assert len(ref.values) > 20
    sigma = parity(tf, species)
    rotation = structures.random_rotation(3)
    for matrix, sign in ((rotation, sigma * 0 + 1), (-rotation, sigma)):
        moved = atoms.copy()
        moved.positions = atoms.positions @ matrix.T + np.array([0.3, -1.0, 2.0])
        out = tf.compute(moved)
        np.testing.assert_array_equal(out.samples, ref.samples)
        np.testing.assert_allclose(out.values, ref.values * sign, atol=1e-12)
    # permutation of atoms: same rows, relabelled
    order = np.random.default_rng(5).permutation(len(atoms))
    permuted = atoms[order]
    out = tf.compute(permuted)
    inverse = np.argsort(order)  # old index -> new index
    key = {tuple(s): k for k, s in enumerate(out.samples.tolist())}
    for k, (s, i, z, j1, j2) in enumerate(ref.samples.tolist()):
        row = key[(s, inverse[i], z, inverse[j1], inverse[j2])]
        np.testing.assert_allclose(out.values[row], ref.values[k], atol=1e-12)
    # the bispectrum is invariant too
    bs = ff.Bispectrum(species=species, **SETTINGS)
    b = bs.compute(atoms).values
    np.testing.assert_allclose(bs.compute(permuted).values[inverse], b, atol=1e-12)


def real_harmonics(l_max: int, u: np.ndarray) -> np.ndarray:
    """Real harmonics of docs/science.md §0 from SciPy's complex ones (independent of farfield)."""
    theta = np.arccos(np.clip(u[:, 2], -1, 1))
    phi = np.arctan2(u[:, 1], u[:, 0])
    out = []
    for ell in range(l_max + 1):
        for m in range(-ell, ell + 1):
            if hasattr(scipy_special, "sph_harm_y"):
                y = scipy_special.sph_harm_y(ell, abs(m), theta, phi)
            else:  # pragma: no cover - older SciPy
                y = scipy_special.sph_harm(abs(m), ell, phi, theta)
            if m > 0:
                out.append(np.sqrt(2) * (-1) ** m * y.real)
            elif m == 0:
                out.append(y.real)
            else:
                out.append(np.sqrt(2) * (-1) ** m * y.imag)
    return np.array(out).T


def wigner(l_max: int, rotation: np.ndarray) -> list[np.ndarray]:
    """Real Wigner matrices: Y(R u) = D Y(u), solved by least squares on random directions."""
    u = np.random.default_rng(0).normal(size=(200, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    a, b = real_harmonics(l_max, u), real_harmonics(l_max, u @ rotation.T)
    out = []
    for ell in range(l_max + 1):
        s = slice(ell * ell, (ell + 1) ** 2)
        d, *_ = np.linalg.lstsq(a[:, s], b[:, s], rcond=None)
        out.append(d.T)
    return out


def test_intermediate_blocks_are_equivariant() -> None:
    atoms = random_cluster(2)
    tf = ff.TripletFeatures(species=[1, 6, 8], **SETTINGS)
    rotation = structures.random_rotation(9)
    d = wigner(3, rotation)
    for ell in range(4):
        np.testing.assert_allclose(d[ell] @ d[ell].T, np.eye(2 * ell + 1), atol=1e-12)
    moved = atoms.copy()
    moved.positions = atoms.positions @ rotation.T
    js, g = tf.pair_expansion(atoms, 0)
    js2, g2 = tf.pair_expansion(moved, 0)
    np.testing.assert_array_equal(js, js2)
    for ell in range(4):
        s = slice(ell * ell, (ell + 1) ** 2)
        np.testing.assert_allclose(g2[:, :, s], g[:, :, s] @ d[ell].T, atol=1e-12)
    for l1, l2, lam in [(1, 1, 1), (1, 2, 2), (2, 2, 0), (3, 2, 3), (1, 1, 2)]:
        t = ff.triplets.clebsch_gordan_product(g[0], g[1], l1, l2, lam)
        t2 = ff.triplets.clebsch_gordan_product(g2[0], g2[1], l1, l2, lam)
        assert np.abs(t).max() > 1e-6
        np.testing.assert_allclose(t2, t @ d[lam].T, atol=1e-12)


def test_few_neighbours_and_layout() -> None:
    tf = ff.TripletFeatures(species=[1], **SETTINGS)
    lonely = ase.Atoms("H3", positions=[[0, 0, 0], [1.0, 0, 0], [10.0, 0, 0]])
    out = tf.compute(lonely)
    # atoms 0 and 1 have one neighbour (one triplet j1 = j2), atom 2 none
    assert out.samples.tolist() == [[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]]
    assert out.sample_names == ("system", "atom", "center_type", "neighbor_1", "neighbor_2")
    summed = tf.summed(lonely)
    assert summed.samples.tolist() == [[0, 0, 1], [0, 1, 1], [0, 2, 1]]
    np.testing.assert_allclose(summed.values[:2], out.values)
    assert np.all(summed.values[2] == 0)
    chunked = tf.summed([lonely, lonely], psi=lambda x: x[:, :3] ** 2, chunk_size=1)
    assert chunked.samples.tolist() == [[s, i, 1] for s in range(2) for i in range(3)]
    np.testing.assert_allclose(chunked.values[1], out.values[1, :3] ** 2)
    assert np.all(chunked.values[[2, 5]] == 0)
    assert out.values.shape[1] == len(out.properties) == 4**3 * 34
    assert isinstance(out, ff.Descriptor)
    assert out.property_names == (
        "neighbor_1_type",
        "neighbor_2_type",
        "neighbor_3_type",
        "l_1",
        "l_2",
        "l_3",
        "n_1",
        "n_2",
        "n_3",
    )
    assert out.properties[:, 6:].max() == SETTINGS["max_radial"]


@pytest.mark.slow
def test_pca_and_threads() -> None:
    frames = [structures.bpm_pair(seed=s)[k] for s in range(4) for k in (0, 1)]
    tf = ff.TripletFeatures(species=[5])
    full = tf.compute(frames, [0]).values
    pca = ml_helpers.fit_triplet_pca(tf, frames, 12, [0])
    assert tf.projection is not None
    np.testing.assert_array_equal(tf.projection[0], pca.mean)
    np.testing.assert_array_equal(tf.projection[1], pca.components)
    # orthonormal directions whose variances match numpy's full SVD (the randomised range
    # finder of the helper is exact for the leading components, ~1e-3 for the last ones)
    np.testing.assert_allclose(pca.components.T @ pca.components, np.eye(12), atol=1e-10)
    singular = np.linalg.svd(full - full.mean(axis=0), compute_uv=False)
    exact = singular[:12] ** 2 / (len(full) - 1)
    np.testing.assert_allclose(pca.explained_variance[:3], exact[:3], rtol=1e-6)
    np.testing.assert_allclose(pca.explained_variance, exact, rtol=5e-3)
    compressed = tf.compute(frames, [0])
    np.testing.assert_allclose(compressed.values, (full - pca.mean) @ pca.components, atol=1e-10)
    assert compressed.values.shape == (len(full), 12)
    assert compressed.property_names == ("component",)
    np.testing.assert_array_equal(tf.compute(frames, [0], compress=False).values, full)
    streamed = tf.summed(frames, centers=[0]).values
    np.testing.assert_allclose(
        streamed, compressed.values.reshape(8, 49, 12).sum(axis=1), atol=1e-10
    )
    # the same projection given to the constructor; None restores the full rows
    given = ff.TripletFeatures(species=[5], projection=(pca.mean, pca.components))
    np.testing.assert_array_equal(given.compute(frames, [0]).values, compressed.values)
    given.projection = None
    np.testing.assert_array_equal(given.compute(frames, [0]).values, full)
    previous = ff.get_num_threads()
    try:
        ff.set_num_threads(1)
        one = tf.compute(frames).values
        ff.set_num_threads(2)
        two = tf.compute(frames).values
    finally:
        ff.set_num_threads(previous)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cutoff": -1.0}, "cutoff"),
        ({"cutoff": float("nan")}, "cutoff"),
        ({"cutoff_width": 5.0}, "cutoff_width"),
        ({"smearing": 0.0}, "smearing"),
        ({"smearing": 3.0}, "smearing"),
        ({"max_radial": -1}, "max_radial"),
        ({"max_radial": 30}, "max_radial"),
        ({"max_angular": 12}, "max_angular"),
        ({"species": [1, 1]}, "species"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], match: str) -> None:
    settings = {**SETTINGS, **kwargs}
    with pytest.raises(ValueError, match=match):
        ff.TripletFeatures(**settings)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        ff.Bispectrum(**settings)  # type: ignore[arg-type]


def test_bad_input() -> None:
    tf = ff.TripletFeatures(species=[1], **SETTINGS)
    water = ase.Atoms("OH2", positions=[[0, 0, 0], [0.9, 0, 0], [0, 0.9, 0]])
    with pytest.raises(ValueError, match="atomic number 8"):
        tf.compute(water)
    with pytest.raises(ValueError, match="atomic number 8"):
        ff.Bispectrum(species=[1], **SETTINGS).compute(water)
    with pytest.raises(ValueError, match="center 7"):
        ff.TripletFeatures(**SETTINGS).compute(water, centers=[7])
    with pytest.raises(ValueError, match="psi"):
        ff.TripletFeatures(**SETTINGS).summed(water, psi="quadratic")
    with pytest.raises(ValueError, match="psi must return"):
        ff.TripletFeatures(**SETTINGS).summed(water, psi=lambda x: x[:1])
    with pytest.raises(ValueError, match="n_components"):
        ml_helpers.fit_triplet_pca(ff.TripletFeatures(**SETTINGS), water, 0)
    bad = water.copy()
    bad.positions[1, 0] = np.nan
    with pytest.raises(ValueError, match="positions"):
        ff.TripletFeatures(**SETTINGS).compute(bad)


@pytest.mark.parametrize("kind", ["planar", "ch4", "bpm"])
def test_soap_power_spectrum_equal_for_recipes(kind: str) -> None:
    """The library's SOAP power spectrum (descriptors engine) agrees: ν = 2 is degenerate."""
    plus, minus = PAIRS[kind](0)
    species = sorted(set(plus.numbers.tolist()))
    ps = ff.PowerSpectrum(cutoff=2.6, max_radial=4, max_angular=3, smearing=0.3, species=species)
    a, b = ps.compute(plus), ps.compute(minus)
    assert a.samples[0, 1] == 0 and b.samples[0, 1] == 0
    assert rel(a.values[0], b.values[0]) < 1e-12


@pytest.mark.slow
def test_projection_is_checked() -> None:
    water = ase.Atoms("OH2", positions=[[0, 0, 0], [0.9, 0, 0], [0, 0.9, 0]])
    tf = ff.TripletFeatures(species=[1, 8], **SETTINGS)
    n = tf.compute(water).values.shape[1]
    for bad, error in [
        ("mean", TypeError),
        ((np.zeros(n),), TypeError),
        ((np.zeros(n), "components"), TypeError),
        ((np.zeros(n), [[1.0, 2.0], [3.0]]), TypeError),
        ((np.zeros(n), np.zeros(n)), ValueError),
        ((np.zeros(n), np.zeros((n + 1, 2))), ValueError),
        ((np.zeros(n), np.zeros((n, 0))), ValueError),
    ]:
        with pytest.raises(error, match="projection"):
            tf.projection = bad  # type: ignore[assignment]
        with pytest.raises(error, match="projection"):
            ff.TripletFeatures(species=[1, 8], projection=bad, **SETTINGS)  # type: ignore[arg-type]
    # a projection of the wrong width for these species, or not finite: refused by the core
    tf.projection = (np.zeros(n + 1), np.zeros((n + 1, 2)))
    with pytest.raises(ValueError, match="projection"):
        tf.compute(water)
    components = np.zeros((n, 2))
    components[0, 0] = np.nan
    tf.projection = (np.zeros(n), components)
    with pytest.raises(ValueError, match="projection"):
        tf.summed(water)
    # the stored arrays are copies, read-only
    mean = np.ones(n)
    tf.projection = (mean, np.eye(n)[:, :3])
    mean[:] = 5.0
    assert tf.projection is not None and tf.projection[0][0] == 1.0
    with pytest.raises(ValueError):
        tf.projection[0][0] = 2.0


def test_centres_is_a_deprecated_alias() -> None:
    """``centers`` is the name (featomic's spelling); ``centres`` still works, with a
    ``DeprecationWarning``, and gives the same result."""
    plus, _ = structures.bpm_pair(seed=0)
    tf, bs = calculators([5])
    for call in (tf.compute, tf.summed, bs.compute):
        new = call(plus, centers=[0, 2]).values
        with pytest.warns(DeprecationWarning, match="'centres' is deprecated, use 'centers'"):
            old = call(plus, centres=[0, 2]).values  # type: ignore[call-arg]
        np.testing.assert_array_equal(old, new)
        with pytest.raises(TypeError, match="both 'centers' and its deprecated alias"):
            call(plus, centers=[0], centres=[0])  # type: ignore[call-arg]
    js, g = tf.pair_expansion(plus, center=1)
    with pytest.warns(DeprecationWarning, match="'centre' is deprecated, use 'center'"):
        js_old, g_old = tf.pair_expansion(plus, centre=1)  # type: ignore[call-arg]
    np.testing.assert_array_equal(js, js_old)
    np.testing.assert_array_equal(g, g_old)
