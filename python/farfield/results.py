"""Typed, frozen results of farfield's energy engines (Ewald, PME, direct sum, QEq).

One result family for every energy engine: :class:`EnergyResult` (energy, forces, stress,
virial, potentials, parameters, timing) from :meth:`farfield.Coulomb.compute`,
:func:`farfield.ewald` and :func:`farfield.pme`, and its subclass
:class:`farfield.QEqResult` (adding the charges, the chemical potential and the solver
statistics) from :class:`farfield.QEq` and :func:`farfield.qeq`.

Conventions (the same for every engine):

* **strain** ε acts on column vectors: positions r → (1 + ε) r, cell rows H → H (1 + ε)ᵀ
  (positions and cell together).
* **stress** σ = (1/V) ∂E/∂ε, ASE's convention (``atoms.get_stress(voigt=False)``; positive
  when the energy rises under expansion).
* **virial** W = −∂E/∂ε = −V σ, the mechanical virial Σ_i r_i ⊗ F_i of LAMMPS and nequip
  (pair sums over minimum images for periodic cells). QEq's ``virial`` before this family was
  +∂E/∂ε (the opposite sign).
* ``stress`` and ``virial`` are ``None`` for open systems and when not requested.
* every energy, force, stress, virial and potential is multiplied by ``prefactor``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

__all__ = ["CoulombParameters", "EnergyResult", "Timing"]


@dataclass(frozen=True)
class CoulombParameters(Mapping[str, Any]):
    """The method and parameters a long-range sum used (or would use); unused fields ``None``.

    Also a read-only mapping of its fields that are not ``None`` (``params["method"]``,
    ``params.get("k_cutoff")``, ``"mesh" in params``, ``dict(params)``), as the parameter
    dictionaries of earlier versions were.

    Attributes:
        method: "ewald", "pme" or "direct".
        smearing: Gaussian smearing σ (standard deviation) of the range split (Ewald, PME;
            QEq's Ewald width η).
        cutoff: real-space cutoff (Ewald, PME).
        k_cutoff: reciprocal-space cutoff, |k| < k_cutoff (Ewald; QEq also reports it with PME).
        mesh: PME mesh points along the three cell vectors.
        order: PME B-spline order.
        exponent: p of the 1/r^p kernel (QEq: 1).
        accuracy: the requested relative RMS force error (Coulomb sums; ``None`` for QEq, whose
            truncation is ``ewald_truncation``).
        prefactor: the unit prefactor applied.
        predicted_error: the core's predicted relative RMS force error of these parameters.
        predicted_cost: the core's predicted cost (units of one real-space pair term).
        mesh_spacing: grid spacing of the free-space mesh ("pme" on an open system, whose
            grid follows the atoms, so that it is given by a spacing, not by points).
    """

    method: str
    smearing: float | None = None
    cutoff: float | None = None
    k_cutoff: float | None = None
    mesh: tuple[int, int, int] | None = None
    order: int | None = None
    exponent: float | None = None
    accuracy: float | None = None
    prefactor: float | None = None
    predicted_error: float | None = None
    predicted_cost: float | None = None
    mesh_spacing: float | None = None

    @classmethod
    def from_native(cls, d: Mapping[str, Any], **extra: Any) -> CoulombParameters:
        """From a native parameter dictionary (unknown keys ignored, NaN taken as None)."""
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in {**d, **extra}.items():
            if key not in names or value is None:
                continue
            if isinstance(value, float) and math.isnan(value):
                continue
            if key == "mesh":
                value = tuple(int(k) for k in value)
            elif key == "order":
                value = int(value)
            elif key != "method":
                value = float(value)
            values[key] = value
        return cls(**values)

    def _present(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def __getitem__(self, key: str) -> Any:
        value = getattr(self, key, None) if isinstance(key, str) else None
        if value is None or key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._present())

    def __len__(self) -> int:
        return len(self._present())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._present()

    def replace(self, **changes: Any) -> CoulombParameters:
        """A copy with some fields changed."""
        import dataclasses

        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Timing:
    """Wall time of one call, in seconds.

    Attributes:
        choose: spent choosing the method and parameters (0 when they came from a
            calculator's cache or were all given).
        compute: spent computing (the solve, for QEq; for :func:`farfield.qeq_batch` the
            wall time of the whole batch).
    """

    choose: float = 0.0
    compute: float = 0.0

    @property
    def total(self) -> float:
        """choose + compute."""
        return self.choose + self.compute


@dataclass(frozen=True)
class EnergyResult:
    """Energy and derivatives of one energy computation, multiplied by ``prefactor``.

    Attributes:
        energy: total energy (E = ½ Σ_i q_i φ_i for fixed charges).
        forces: (n, 3) forces −∂E/∂r_i, or ``None`` when not requested.
        stress: (3, 3) stress σ = (1/V) ∂E/∂ε (ASE convention; ε acts on column vectors,
            r → (1+ε) r, cell rows H → H(1+ε)ᵀ), ``None`` for open systems or when not
            requested.
        virial: (3, 3) mechanical virial W = −∂E/∂ε = −V σ (Σ_i r_i ⊗ F_i, the LAMMPS / nequip
            sign), ``None`` when ``stress`` is.
        potentials: (n,) per-atom potentials φ_i (E = ½ Σ q_i φ_i), or ``None``.
        parameters: the method and parameters used, a :class:`CoulombParameters`.
        timing: a :class:`Timing` (seconds choosing parameters and computing).
    """

    energy: float
    forces: FloatArray | None
    stress: FloatArray | None
    potentials: FloatArray | None
    parameters: CoulombParameters = field(default_factory=lambda: CoulombParameters("direct"))
    virial: FloatArray | None = None
    timing: Timing = field(default_factory=Timing)


class _PmeParameters(CoulombParameters):
    """Deprecated: ``PmeParameters(smearing, cutoff, mesh, order)`` builds a
    :class:`CoulombParameters` with ``method="pme"``."""

    def __init__(
        self,
        smearing: float,
        cutoff: float,
        mesh: tuple[int, int, int],
        order: int,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("method", "pme")
        super().__init__(smearing=smearing, cutoff=cutoff, mesh=mesh, order=order, **kwargs)


#: old name -> (object, new name): importable, with a DeprecationWarning
_DEPRECATED: dict[str, tuple[Any, str]] = {
    "EwaldResult": (EnergyResult, "EnergyResult"),
    "PmeResult": (EnergyResult, "EnergyResult"),
    "PmeParameters": (_PmeParameters, "CoulombParameters"),
}


def deprecated_name(module: str, name: str) -> Any:
    """The object behind a deprecated result name, with a DeprecationWarning."""
    import warnings

    target, new = _DEPRECATED[name]
    warnings.warn(
        f"{module}.{name} is deprecated, use farfield.{new} (one result family for every "
        "energy engine)",
        DeprecationWarning,
        stacklevel=3,
    )
    return target


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        return deprecated_name(__name__, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
