"""The :class:`System` type and the conversion of ``ase.Atoms`` to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

from . import _native

if TYPE_CHECKING:  # pragma: no cover
    import ase

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]


@dataclass(frozen=True)
class System:
    """Atoms that every farfield engine works on.

    Attributes:
        positions: (n, 3) cartesian positions.
        numbers: (n,) atomic numbers (any integer species labels).
        cell: (3, 3) cell vectors as rows for a periodic system, ``None`` for an open one.

    Construction validates the input: non-finite values, wrong shapes, singular or nearly
    degenerate cells and overlapping atoms raise ``ValueError``. Atomic numbers must be integers
    (Python or numpy integers; floats, even 1.0, and bools raise ``TypeError``) in
    [0, 2**31 - 1] (``ValueError`` otherwise).
    """

    positions: FloatArray
    numbers: IntArray
    cell: FloatArray | None = None

    def __post_init__(self) -> None:
        positions = _float_array(self.positions, "positions")
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"positions must have shape (n, 3), got {positions.shape}")
        numbers = _numbers(self.numbers)
        if numbers.ndim != 1 or numbers.shape[0] != positions.shape[0]:
            raise ValueError(
                f"numbers must have shape ({positions.shape[0]},) (one per atom), "
                f"got {numbers.shape}"
            )
        cell = None
        if self.cell is not None:
            cell = _float_array(self.cell, "cell")
            if cell.shape != (3, 3):
                raise ValueError(f"cell must have shape (3, 3), got {cell.shape}")
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "numbers", numbers)
        object.__setattr__(self, "cell", cell)
        _native.validate_system(self._arrays())

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    @property
    def periodic(self) -> bool:
        """``True`` when the system has a cell (periodic in all three directions)."""
        return self.cell is not None

    def _arrays(self) -> tuple[FloatArray, IntArray, FloatArray | None]:
        return (self.positions, self.numbers, self.cell)

    @classmethod
    def from_ase(cls, atoms: ase.Atoms) -> System:
        """Converts an ``ase.Atoms``: periodic in all directions or in none."""
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if pbc.all():
            cell: FloatArray | None = np.asarray(atoms.cell.array, dtype=np.float64)
        elif not pbc.any():
            cell = None
        else:
            raise ValueError(
                f"pbc={pbc.tolist()}: only fully periodic or fully open systems are supported"
            )
        return cls(
            positions=np.asarray(atoms.positions, dtype=np.float64),
            numbers=np.asarray(atoms.numbers, dtype=np.int32),
            cell=cell,
        )


SystemLike = Union[System, "ase.Atoms"]


def as_system(atoms: Any) -> System:
    """Returns ``atoms`` as a :class:`System` (accepts a System or an ``ase.Atoms``)."""
    if isinstance(atoms, System):
        return atoms
    if hasattr(atoms, "positions") and hasattr(atoms, "pbc") and hasattr(atoms, "numbers"):
        return System.from_ase(atoms)
    raise TypeError(f"expected a farfield.System or an ase.Atoms, got {type(atoms).__name__}")


#: Largest atomic number (species label) a System can hold: the core stores them as int32.
MAX_NUMBER = 2**31 - 1


def _numbers(value: Any) -> IntArray:
    """Atomic numbers as int32: integers only (no float, bool or object values), in range."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"numbers must be an array of integers: {error}") from error
    if array.size == 0 and array.dtype.kind in "fiu":
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        example = array.flat[0] if array.size else None
        raise TypeError(
            f"numbers must be integers (atomic numbers), got values of type {array.dtype}"
            + ("" if example is None else f" (e.g. {example!r})")
        )
    if array.size:
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > MAX_NUMBER:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"numbers must be in [0, {MAX_NUMBER}] (atomic numbers or non-negative species "
                f"labels), got {bad}"
            )
    return np.ascontiguousarray(array, dtype=np.int32)


def _float_array(value: Any, name: str) -> FloatArray:
    try:
        array = np.ascontiguousarray(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be an array of numbers: {error}") from error
    return array
