"""The :class:`System` type and the conversion of ``ase.Atoms`` to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

from . import _native as _ext

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

    Construction validates the input once, in the compiled core: non-finite values, wrong
    shapes, singular or nearly degenerate cells and overlapping atoms raise ``ValueError``.
    Atomic numbers must be integers (Python or numpy integers; floats, even 1.0, and bools raise
    ``TypeError``) in [0, 2**31 - 1] (``ValueError`` otherwise).

    A System is immutable: it holds copies of the arrays given (read-only numpy arrays) and the
    validated native system built from them, which every calculator reuses without copying or
    validating again. To move atoms, build a new System (``dataclasses.replace`` works).
    """

    positions: FloatArray
    numbers: IntArray
    cell: FloatArray | None = None
    _native: _ext.NativeSystem = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        positions = _float_array(self.positions, "positions")
        numbers = _integer_array(self.numbers)
        cell = None if self.cell is None else _float_array(self.cell, "cell")
        self._adopt(_ext.NativeSystem(positions, numbers, cell))

    def _adopt(self, native: _ext.NativeSystem) -> None:
        """Takes the arrays from the validated native system (read-only copies)."""
        object.__setattr__(self, "_native", native)
        for name in ("positions", "numbers", "cell"):
            array = getattr(native, name)
            if array is not None:
                array.setflags(write=False)
            object.__setattr__(self, name, array)

    @classmethod
    def _from_native(cls, native: _ext.NativeSystem) -> System:
        system = object.__new__(cls)
        system._adopt(native)
        return system

    def __reduce__(self) -> tuple[Any, ...]:
        # pickle rebuilds the System from its arrays (validated once more when loaded)
        return (type(self), (self.positions, self.numbers, self.cell))

    def __copy__(self) -> System:
        # new read-only arrays, the same (immutable) native system: nothing is validated again
        return type(self)._from_native(self._native)

    def __deepcopy__(self, memo: dict[int, Any]) -> System:
        copied = self.__copy__()
        memo[id(self)] = copied
        return copied

    def __len__(self) -> int:
        return len(self._native)

    @property
    def periodic(self) -> bool:
        """``True`` when the system has a cell (periodic in all three directions)."""
        return self.cell is not None

    def _arrays(self) -> _ext.NativeSystem:
        """The validated native system that the ``_native`` functions take."""
        return self._native

    @classmethod
    def from_ase(cls, atoms: ase.Atoms) -> System:
        """Converts an ``ase.Atoms``: periodic in all directions or in none."""
        pbc = [bool(p) for p in np.asarray(atoms.pbc, dtype=bool).reshape(-1)]
        # the core uses the cell when every direction is periodic, refuses mixed periodicity
        cell = _float_array(atoms.cell.array, "cell") if any(pbc) else None
        native = _ext.NativeSystem(
            _float_array(atoms.positions, "positions"),
            _integer_array(atoms.numbers),
            cell,
            pbc=pbc,
        )
        return cls._from_native(native)


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


def _integer_array(value: Any) -> npt.NDArray[Any]:
    """``value`` as a numpy array for the native conversion, which checks its dtype and range."""
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"numbers must be an array of integers: {error}") from error


def _float_array(value: Any, name: str) -> FloatArray:
    try:
        array = np.ascontiguousarray(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be an array of numbers: {error}") from error
    return array
