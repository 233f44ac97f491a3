"""System validation: every bad input raises a ValueError that names the problem."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import re

import numpy as np
import pytest

import farfield as ff
from farfield import _native


def test_valid_open_and_periodic() -> None:
    s = ff.System(positions=np.zeros((1, 3)), numbers=np.array([1]))
    assert len(s) == 1 and not s.periodic
    p = ff.System(
        positions=[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], numbers=[11, 17], cell=np.eye(3) * 2.0
    )
    assert p.periodic and p.positions.dtype == np.float64


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"positions": [[np.nan, 0.0, 0.0]], "numbers": [1]}, "non-finite"),
        ({"positions": np.zeros((2, 2)), "numbers": [1, 1]}, "shape"),
        ({"positions": np.zeros((2, 3)), "numbers": [1]}, "numbers"),
        ({"positions": [[0.0, 0, 0]], "numbers": [1], "cell": np.zeros((3, 3))}, "singular"),
        ({"positions": [[0.0, 0, 0]], "numbers": [1], "cell": np.eye(2)}, "cell"),
        ({"positions": [[0.0, 0, 0], [0.0, 0, 0]], "numbers": [1, 1]}, "overlap"),
        (
            {"positions": [[0.0, 0, 0], [3.0, 0, 0]], "numbers": [1, 1], "cell": np.eye(3) * 3},
            "overlap",
        ),
    ],
)
def test_bad_systems(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ff.System(**kwargs)  # type: ignore[arg-type]


def test_from_ase() -> None:
    ase = pytest.importorskip("ase")
    atoms = ase.Atoms("NaCl", positions=[[0, 0, 0], [1.0, 0, 0]], cell=np.eye(3) * 4, pbc=True)
    s = ff.System.from_ase(atoms)
    assert s.periodic and list(s.numbers) == [11, 17]
    atoms.pbc = [True, False, True]
    with pytest.raises(ValueError, match="periodic"):
        ff.System.from_ase(atoms)


def test_threads_setting() -> None:
    ff.set_num_threads(1)
    assert ff.get_num_threads() == 1
    ff.set_num_threads(0)
    assert ff.get_num_threads() >= 1


# ---------------------------------------------------------------- validated once


def _rock_salt() -> tuple[ff.System, np.ndarray]:
    """Conventional 8-atom NaCl cell with nearest-neighbour distance 1."""
    fractional = np.array(
        [[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]],
        dtype=float,
    )
    numbers = [11] * 4 + [17] * 4
    return ff.System(fractional, numbers, np.eye(3) * 2.0), np.array([1.0] * 4 + [-1.0] * 4)


def test_calls_reuse_the_validated_system() -> None:
    system, q = _rock_salt()
    native = system._arrays()
    assert system._arrays() is native
    before = _native.validation_count()
    calc = ff.Coulomb(accuracy=1e-8)
    for _ in range(3):
        # Madelung constant of rock salt: E = -M per ion pair at unit distance (4 pairs)
        assert calc.compute(system, q).energy == pytest.approx(-4 * 1.747564594633, rel=1e-6)
    ff.ewald(system, q, accuracy=1e-8)
    ff.pme(system, q)
    assert _native.validation_count() == before
    assert system._arrays() is native


def test_tuple_arrays_are_still_accepted_and_validated_per_call() -> None:
    system, _ = _rock_salt()
    arrays = (np.array(system.positions), np.array(system.numbers), np.array(system.cell))
    before = _native.validation_count()
    assert _native.validate_system(arrays) == 8
    assert _native.validation_count() == before + 1
    assert _native.validate_system(system._arrays()) == 8
    assert _native.validation_count() == before + 1
    overlapping = (np.zeros((2, 3)), np.array([1, 1], np.int32), None)
    with pytest.raises(ValueError, match="overlap"):
        _native.validate_system(overlapping)


_ONE = [[0.0, 0.0, 0.0]]


@pytest.mark.parametrize(
    ("positions", "numbers", "cell", "error", "message"),
    [
        (np.zeros((2, 2)), [1, 1], None, ValueError, "positions must have shape (n, 3), got (2,"),
        (np.zeros(3), [1], None, ValueError, "positions must have shape (n, 3), got (3,)"),
        (_ONE, [1], np.eye(2), ValueError, "cell must have shape (3, 3), got (2, 2)"),
        (_ONE, [[1]], None, ValueError, "numbers must have shape (1,) (one per atom), got (1, 1)"),
        (_ONE, [1.0], None, TypeError, "numbers must be integers (atomic numbers), got values of"),
        (_ONE, [2**31], None, ValueError, "numbers must be in [0, 2147483647]"),
        (_ONE, [-3], None, ValueError, "got -3 (atom 0)"),
        ("x", [1], None, ValueError, "positions must be an array of numbers"),
    ],
)
def test_refusal_messages(
    positions: object, numbers: object, cell: object, error: type[Exception], message: str
) -> None:
    before = _native.validation_count()
    with pytest.raises(error, match=re.escape(message)):
        ff.System(positions, numbers, cell)  # type: ignore[arg-type]
    # conversion errors are raised before the core is asked to validate
    assert _native.validation_count() == before


def test_system_is_an_immutable_snapshot() -> None:
    positions = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    system = ff.System(positions, [1, 1])
    positions[1, 0] = 0.0  # would overlap: the System holds its own copy
    assert system.positions[1, 0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        system.positions[1, 0] = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        system.positions = positions  # type: ignore[misc]
    moved = dataclasses.replace(system, positions=[[0.0, 0, 0], [2.0, 0, 0]])
    assert moved._arrays() is not system._arrays() and moved.positions[1, 0] == 2.0
    with pytest.raises(ValueError, match="overlap"):
        dataclasses.replace(system, positions=positions)


def test_pickle_and_copies() -> None:
    system, q = _rock_salt()
    energy = ff.Coulomb(accuracy=1e-8).compute(system, q).energy
    before = _native.validation_count()
    for copied in (copy.copy(system), copy.deepcopy(system)):
        assert copied is not system and copied._arrays() is system._arrays()
        assert copied.positions is not system.positions
        np.testing.assert_array_equal(copied.positions, system.positions)
    assert _native.validation_count() == before
    loaded = pickle.loads(pickle.dumps(system))
    assert _native.validation_count() == before + 1  # loading validates the arrays again
    for a, b in ((loaded.positions, system.positions), (loaded.numbers, system.numbers)):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype and not a.flags.writeable
    np.testing.assert_array_equal(loaded.cell, system.cell)
    native = pickle.loads(pickle.dumps(system._arrays()))
    assert len(native) == 8 and native.periodic
    assert ff.Coulomb(accuracy=1e-8).compute(loaded, q).energy == pytest.approx(energy, rel=1e-12)


def test_from_ase_validates_once() -> None:
    ase = pytest.importorskip("ase")
    atoms = ase.Atoms("NaCl", positions=[[0, 0, 0], [1.0, 0, 0]])  # open, zero cell
    before = _native.validation_count()
    system = ff.System.from_ase(atoms)
    assert _native.validation_count() == before + 1
    assert system.cell is None and len(system) == 2 and list(system.numbers) == [11, 17]
    atoms.positions[1] = 0.0
    with pytest.raises(ValueError, match="overlap"):
        ff.System.from_ase(atoms)


def test_nearly_flat_open_systems_do_not_exhaust_memory() -> None:
    """Atoms whose z extent is 1e-277 beside x, y extents of ~1 (found by the hypothesis
    harness): the overlap check's binning asked for 8.8 TB and aborted the process. Now the
    duplicate atoms are refused and a flat molecule gets the direct-sum energy of its pairs."""
    duplicated = np.array(
        [
            [1e-9, 2.2936983746710425e-132, 3.0105408735055894e-307],
            [0.5, 1.630552737530591, 2.928680652991173e-277],
            [0.5, 1.630552737530591, 2.928680652991173e-277],
        ]
    )
    with pytest.raises(ValueError, match="overlap"):
        ff.System(duplicated, [17, 17, 1])
    flat = np.array([[1e-9, 0.0, 3e-307], [0.5, 1.63, 2.9e-277], [1.2, 0.3, 1e-300]])
    system = ff.System(flat, [1, 1, 1])
    q = np.array([1.0, -1.0, 0.5])
    expected = sum(
        q[i] * q[j] / np.linalg.norm(flat[i] - flat[j]) for i in range(3) for j in range(i + 1, 3)
    )
    assert ff.ewald(system, q).energy == pytest.approx(expected, rel=1e-12)
