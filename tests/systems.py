"""Shared test systems: crystals with known Madelung constants and random boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import farfield as ff

# reference data vendored in the repository (provenance in tests/data/reference-data/README.md)
SHARED = Path(__file__).resolve().parent / "data"

FCC = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
CUBIC = np.eye(3)
_U = 3.0 / 8.0
_C = np.sqrt(8.0 / 3.0)

# name: (cell, fractional positions, charges, -E per formula unit at scale 1, formula units)
MADELUNG: dict[str, tuple[np.ndarray, list[list[float]], list[float], float, float]] = {
    "NaCl": (FCC, [[0, 0, 0], [0.5, 0.5, 0.5]], [1, -1], 1.747564594633, 1),
    "NaCl cubic": (
        2 * CUBIC,
        [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
        + [[0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]],
        [1, 1, 1, 1, -1, -1, -1, -1],
        1.747564594633,
        4,
    ),
    "CsCl": (CUBIC, [[0.5, 0.5, 0.5], [0, 0, 0]], [1, -1], 2.035361509, 1),
    "zincblende": (
        FCC,
        [[0, 0, 0], [0.25, 0.25, 0.25]],
        [1, -1],
        2 * 1.6380550533 / np.sqrt(3),
        1,
    ),
    "wurtzite": (
        np.array([[0.5, -0.5 * np.sqrt(3), 0], [0.5, 0.5 * np.sqrt(3), 0], [0, 0, _C]]),
        [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, _U], [2 / 3, 1 / 3, 0.5 + _U]],
        [1, 1, -1, -1],
        1.64132 / (_U * _C),
        2,
    ),
    "fluorite": (
        np.array([[0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]),
        [[0, 0, 0], [0.25, 0.25, 0.25], [0.75, 0.75, 0.75]],
        [2, -1, -1],
        11.6365752270768,
        1,
    ),
    "Cu2O": (
        CUBIC,
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25], [0.25, 0.75, 0.75]]
        + [[0.75, 0.25, 0.75], [0.75, 0.75, 0.25]],
        [-2, -2, 1, 1, 1, 1],
        10.2594570330750,
        2,
    ),
}


def crystal(name: str, scale: float = 1.0) -> tuple[ff.System, np.ndarray, float, float]:
    """(system, charges, -E per formula unit at this scale, formula units)."""
    cell, frac, charges, reference, fu = MADELUNG[name]
    cell = np.asarray(cell, dtype=float) * scale
    positions = np.asarray(frac, dtype=float) @ cell
    system = ff.System(positions, np.ones(len(frac), dtype=np.int32), cell)
    return system, np.asarray(charges, dtype=float), reference / scale, float(fu)


def skewed_cell(scale: float = 1.0) -> np.ndarray:
    return scale * np.array([[4.0, 0.0, 0.0], [2.9, 3.1, 0.0], [-1.3, 1.7, 3.6]])


def random_box(
    n: int,
    seed: int = 0,
    charged: bool = False,
    cell: np.ndarray | None = None,
    min_distance: float = 0.7,
) -> tuple[ff.System, np.ndarray]:
    """n random charges (neutral unless ``charged``) at liquid-like density, no close pairs."""
    rng = np.random.default_rng(seed)
    if cell is None:
        length = (n / 0.1) ** (1 / 3)
        cell = np.eye(3) * length
    inverse = np.linalg.inv(cell)
    positions: list[np.ndarray] = []
    while len(positions) < n:
        r = rng.random(3) @ cell
        ok = True
        for p in positions:
            d = r - p
            d -= np.round(d @ inverse) @ cell
            if np.linalg.norm(d) < min_distance:
                ok = False
                break
        if ok:
            positions.append(r)
    charges = rng.standard_normal(n)
    charges -= charges.mean()
    if charged:
        charges[0] += 0.8
    return ff.System(np.array(positions), np.ones(n, dtype=np.int32), cell), charges
