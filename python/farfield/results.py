"""Typed, frozen results of farfield computations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EwaldResult:
    """Result of :func:`farfield.ewald`, in the units set by ``prefactor``.

    Attributes:
        energy: total energy E = ½ Σ_i q_i φ_i.
        forces: (n, 3) forces -∂E/∂r_i, or ``None`` when not requested.
        stress: (3, 3) stress (1/V) ∂E/∂ε (ASE convention), ``None`` for open systems or when
            not requested.
        potentials: (n,) per-atom potentials φ_i (E = ½ Σ q_i φ_i), or ``None``.
        parameters: what was used: ``method`` ("ewald" or "direct"), and for Ewald
            ``smearing``, ``cutoff``, ``k_cutoff``; also ``exponent``, ``accuracy``,
            ``prefactor``.
    """

    energy: float
    forces: FloatArray | None
    stress: FloatArray | None
    potentials: FloatArray | None
    parameters: dict[str, Any] = field(default_factory=dict)
