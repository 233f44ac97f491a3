"""Degenerate-pair generators (docs/science.md §4.4), checked by exact multiset comparison.

For point neighbours of one species around a centre at the origin, the power spectrum (ν = 2) is a
function of the multiset of (|r_j|, |r_k|, r_j·r_k) over ordered pairs (j, k) (including j = k) and
the bispectrum (ν = 3) of the multiset of SO(3) invariants of ordered triples (the Gram matrix and
the signed triple product). Equal multisets imply equal features for any basis, smearing and cutoff.
These checks use the positions only and are independent of the descriptor code.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

ase = pytest.importorskip("ase")

from farfield import structures  # noqa: E402


def environment(atoms: object) -> np.ndarray:
    positions = np.asarray(atoms.positions)  # type: ignore[attr-defined]
    return positions[1:] - positions[0]


def nu2_multiset(x: np.ndarray) -> np.ndarray:
    rows = []
    for j, k in itertools.product(range(len(x)), repeat=2):
        rows.append([np.linalg.norm(x[j]), np.linalg.norm(x[k]), x[j] @ x[k]])
    return sort_rows(np.array(rows))


def nu3_multiset(x: np.ndarray) -> np.ndarray:
    rows = []
    for j, k, m in itertools.product(range(len(x)), repeat=3):
        a, b, c = x[j], x[k], x[m]
        rows.append([a @ a, b @ b, c @ c, a @ b, a @ c, b @ c, np.linalg.det(np.stack([a, b, c]))])
    return sort_rows(np.array(rows))


def sort_rows(rows: np.ndarray) -> np.ndarray:
    rounded = np.round(rows, 7) + 0.0  # +0.0 turns -0.0 into 0.0
    return rows[np.lexsort(rounded.T[::-1])]


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, atol=1e-9, rtol=0))


def pairs(kind: str, seeds: range) -> list[tuple[object, object]]:
    if kind == "planar":
        return [structures.planar_homometric_pair(seed=s) for s in seeds]
    if kind == "ch4":
        return [structures.ch4_pair(seed=s) for s in seeds]
    return [structures.bpm_pair(seed=s) for s in seeds]


@pytest.mark.parametrize("kind", ["planar", "ch4", "bpm"])
def test_power_spectrum_content_equal(kind: str) -> None:
    for plus, minus in pairs(kind, range(4)):
        assert same(nu2_multiset(environment(plus)), nu2_multiset(environment(minus)))


@pytest.mark.parametrize("kind", ["planar", "ch4"])
def test_bispectrum_content_differs_for_3body_pairs(kind: str) -> None:
    for plus, minus in pairs(kind, range(4)):
        assert not same(nu3_multiset(environment(plus)), nu3_multiset(environment(minus)))


def test_bispectrum_content_equal_for_bpm() -> None:
    for plus, minus in pairs("bpm", range(3)):
        assert same(nu3_multiset(environment(plus)), nu3_multiset(environment(minus)))
    plus, minus = structures.b8_pair()
    assert same(nu3_multiset(environment(plus)), nu3_multiset(environment(minus)))


@pytest.mark.parametrize("kind", ["planar", "ch4", "bpm"])
def test_members_not_congruent(kind: str) -> None:
    for plus, minus in pairs(kind, range(3)):
        assert not structures.congruent(plus, minus)
        # the check itself finds a congruence when there is one: rotate, reflect, permute
        rng = np.random.default_rng(7)
        moved = plus.copy()
        rotation = structures.random_rotation(rng) * np.array([1.0, 1.0, -1.0])
        moved.positions = plus.positions @ rotation.T + rng.normal(size=3)
        order = rng.permutation(len(moved))
        assert structures.congruent(plus, moved[order])
        assert not structures.congruent(minus, moved[order])


def test_b8_pair_matches_the_data_set() -> None:
    plus, minus = structures.b8_pair()
    np.testing.assert_allclose(plus.positions, structures.B8_PLUS_POSITIONS, atol=6e-9)
    np.testing.assert_allclose(minus.positions, structures.B8_MINUS_POSITIONS, atol=6e-9)
    assert plus.get_chemical_symbols() == ["B"] * 8
    assert not structures.congruent(plus, minus)


def test_bpm_rejection_rules_and_seeding() -> None:
    data = structures.bpm_dataset(20, seed=3)
    for plus, minus in data:
        for atoms in (plus, minus):
            assert len(atoms) == 8
            radial = np.linalg.norm(atoms.positions[1:], axis=1)
            assert np.all((radial > 1.5) & (radial < 1.8))
            d = atoms.get_all_distances()
            assert d[np.triu_indices(8, 1)].min() > 1.2
    again = structures.bpm_dataset(20, seed=3)
    np.testing.assert_array_equal(data[5][0].positions, again[5][0].positions)
    other = structures.bpm_dataset(2, seed=4)
    assert not np.allclose(data[0][0].positions, other[0][0].positions)


def test_rotated_members_keep_their_content() -> None:
    plus, minus = structures.bpm_pair(seed=11, rotate=True)
    assert same(nu3_multiset(environment(plus)), nu3_multiset(environment(minus)))
    assert not np.allclose(np.abs(plus.positions[1:, 2]), np.abs(plus.positions[1, 2]))


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="radius"):
        structures.planar_homometric_pair(radius=-1.0)
    with pytest.raises(ValueError, match="partner"):
        structures.ch4_pair(alpha=np.radians(60), x=0.9, z=0.3)
    with pytest.raises(ValueError, match="n must be"):
        structures.bpm_pair(n=1)
    a, _ = structures.bpm_pair(seed=0)
    big = a + a
    with pytest.raises(ValueError, match="brute force"):
        structures.congruent(big, big)


def test_ch4_example_of_science_md() -> None:
    plus, minus = structures.ch4_pair(alpha=np.radians(60), x=0.1, z=0.3, bond=1.0)
    np.testing.assert_allclose(plus.positions[4], [0.1, 0.9486833, 0.3], atol=1e-7)
    np.testing.assert_allclose(minus.positions[4], [0.44641016, 0.84304091, -0.3], atol=1e-7)


@pytest.mark.parametrize("make", [structures.planar_homometric_pair, structures.ch4_pair])
def test_center_species_and_its_deprecated_alias(make: object) -> None:
    """``center`` sets the species of the centre atom (first, at the origin); the old keyword
    ``centre`` still works with a ``DeprecationWarning`` and gives the same structures."""
    plus, minus = make(seed=3, center="N", neighbor="O")  # type: ignore[operator]
    for atoms in (plus, minus):
        assert atoms.get_chemical_symbols() == ["N", "O", "O", "O", "O"]
        np.testing.assert_array_equal(atoms.positions[0], 0.0)
    with pytest.warns(DeprecationWarning, match="'centre' is deprecated, use 'center'"):
        old_plus, old_minus = make(seed=3, centre="N", neighbor="O")  # type: ignore[operator]
    np.testing.assert_array_equal(old_plus.positions, plus.positions)
    np.testing.assert_array_equal(old_minus.positions, minus.positions)
    assert old_plus.get_chemical_symbols() == plus.get_chemical_symbols()


@pytest.mark.parametrize("make", [structures.planar_homometric_pair, structures.ch4_pair])
def test_neighbour_keyword_is_a_deprecated_alias(make: object) -> None:
    """``neighbour=`` still sets the neighbours' species, with a ``DeprecationWarning``, and
    gives the same structures as ``neighbor=``."""
    plus, _ = make(seed=4, neighbor="F")  # type: ignore[operator]
    assert plus.get_chemical_symbols()[1:] == ["F"] * 4
    with pytest.warns(DeprecationWarning, match="'neighbour' is deprecated, use 'neighbor'"):
        old, _ = make(seed=4, neighbour="F")  # type: ignore[operator]
    np.testing.assert_array_equal(old.positions, plus.positions)
    assert old.get_chemical_symbols() == plus.get_chemical_symbols()
    with pytest.raises(TypeError, match="both"):
        make(seed=4, neighbor="F", neighbour="F")  # type: ignore[operator]


def test_neighbour_distance_is_a_deprecated_alias() -> None:
    """``neighbor_distance`` bounds every centre–neighbour distance; ``neighbour_distance=``
    is its deprecated alias (same draw, same structures)."""
    plus, minus = structures.bpm_pair(seed=5, neighbor_distance=(1.55, 1.75))
    for atoms in (plus, minus):
        d = np.linalg.norm(atoms.positions[1:], axis=1)
        assert np.all((d > 1.55) & (d < 1.75))
    with pytest.warns(DeprecationWarning, match="'neighbour_distance' is deprecated"):
        old, _ = structures.bpm_pair(seed=5, neighbour_distance=(1.55, 1.75))
    np.testing.assert_array_equal(old.positions, plus.positions)
