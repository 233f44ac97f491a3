"""System validation: every bad input raises a ValueError that names the problem."""

from __future__ import annotations

import numpy as np
import pytest

import farfield as ff


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
