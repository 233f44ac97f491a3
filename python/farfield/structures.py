"""Generators of structures that low-order density correlations cannot tell apart.

Every generator returns a pair of ``ase.Atoms`` (open boundary conditions, centre atom first at
the origin) that are *not* related by any rotation, reflection or permutation of atoms, yet share
some density correlations of the centre atom's environment (docs/science.md §4.4):

* :func:`planar_homometric_pair` – four neighbours on a circle at angles {0, 45, 90, 225}° and
  {0, 45, 135, 180}° (a homometric pair on Z₈): identical power spectrum (ν = 2), different
  bispectrum (ν = 3).
* :func:`ch4_pair` – a CH4-like pair {n, −n, c, d} / {n, −n, c, d′}: identical ν = 2, different
  ν = 3.
* :func:`bpm_pair` – the "B±" pair of Pozdnyakov et al. (PRL 125, 166001 (2020)): two staggered
  rings of ``n`` atoms at ±z₁ plus one axial atom at +z₂ or −z₂. Identical ν = 2 *and* ν = 3
  (bispectrum) for any parameters; different ν = 4. Random parameters follow the B8 data set of
  Nigam et al. (arXiv 2302.14770), including its rejection rules.
* :func:`b8_pair` – the concrete first B8± pair of that data set.

:func:`congruent` checks whether two structures are related by an O(3) operation, a translation
and a species-preserving permutation (brute force over permutations: small structures only).

``ase`` must be installed (``pip install farfield[ase]``). The species of the centre atom is
the keyword ``center`` (``centre`` is a deprecated alias that emits a ``DeprecationWarning``).
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ._compat import renamed_keywords

if TYPE_CHECKING:  # pragma: no cover
    import ase

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "B8_MINUS_POSITIONS",
    "B8_PLUS_POSITIONS",
    "b8_pair",
    "bpm_dataset",
    "bpm_pair",
    "ch4_pair",
    "congruent",
    "planar_homometric_pair",
    "random_rotation",
]

#: B8+ of the first pair of the B8 data set (Å, centre first; docs/science.md §4.4c).
B8_PLUS_POSITIONS: FloatArray = np.array(
    [
        [0.0, 0.0, 0.0],
        [1.39454902, 0.0, 0.57793632],
        [-1.23980586, 0.63847348, 0.57793632],
        [-0.29503787, -1.36298188, 0.57793632],
        [-0.91652028, 1.05107447, -0.57793632],
        [0.33360178, -1.35405938, -0.57793632],
        [1.22118593, 0.67340320, -0.57793632],
        [0.0, 0.0, 1.76852686],
    ]
)
#: B8− of the same pair: the axial atom moved to −z₂.
B8_MINUS_POSITIONS: FloatArray = B8_PLUS_POSITIONS.copy()
B8_MINUS_POSITIONS[7, 2] = -B8_PLUS_POSITIONS[7, 2]

#: Exact parameters of the first B8 pair (the positions above are these, rounded to 1e-8 Å).
#: docs/science.md §4.4c prints φ₂ + φ₁ as 4.4991129756...; the printed coordinates need
#: 4.4992129756... (a one-digit typo there), which is used here.
B8_PARAMETERS: dict[str, Any] = {
    "r": 1.3945490156290707,
    "z1": 0.5779363176538004,
    "z2": 1.7685268584161764,
    "psi": 2.2879156819735713,
    "phi": (0.0, 2.6660340954713644, 4.4992129756223012),
}


def _atoms(symbols: list[str], positions: FloatArray) -> ase.Atoms:
    try:
        import ase
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("farfield.structures needs ase: pip install farfield[ase]") from error
    return ase.Atoms(symbols=symbols, positions=np.asarray(positions, dtype=np.float64))


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def random_rotation(seed: int | np.random.Generator | None = None) -> FloatArray:
    """A uniformly random proper rotation matrix (3, 3) (QR of a Gaussian matrix)."""
    rng = _rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return np.asarray(q, dtype=np.float64)


def _finish(
    center: str,
    symbols: list[str],
    plus: FloatArray,
    minus: FloatArray,
    rotate: bool,
    rng: np.random.Generator,
) -> tuple[ase.Atoms, ase.Atoms]:
    if rotate:
        plus = plus @ random_rotation(rng).T
        minus = minus @ random_rotation(rng).T
    origin = np.zeros((1, 3))
    return (
        _atoms([center, *symbols], np.vstack([origin, plus])),
        _atoms([center, *symbols], np.vstack([origin, minus])),
    )


@renamed_keywords(centre="center", neighbour="neighbor")
def planar_homometric_pair(
    radius: float | None = None,
    seed: int | np.random.Generator | None = None,
    *,
    center: str = "C",
    neighbor: str = "H",
    rotate: bool = False,
) -> tuple[ase.Atoms, ase.Atoms]:
    """Planar 3-body-degenerate pair (docs/science.md §4.4a).

    Centre (species ``center``) at the origin and four neighbours (species ``neighbor``) on a
    circle of ``radius`` (default: uniform in [0.8, 1.6) Å, drawn from ``seed``) at angles
    {0, 45, 90, 225}° versus {0, 45, 135, 180}°. With ``rotate=True`` each member gets an
    independent random rotation. (``centre=`` and ``neighbour=`` are deprecated aliases of
    ``center`` and ``neighbor``.)
    """
    rng = _rng(seed)
    r = float(rng.uniform(0.8, 1.6)) if radius is None else float(radius)
    if not (math.isfinite(r) and r > 0):
        raise ValueError(f"radius must be positive and finite, got {radius}")

    def ring(degrees: list[float]) -> FloatArray:
        a = np.radians(degrees)
        return np.stack([r * np.cos(a), r * np.sin(a), np.zeros_like(a)], axis=1)

    plus = ring([0.0, 45.0, 90.0, 225.0])
    minus = ring([0.0, 45.0, 135.0, 180.0])
    return _finish(center, [neighbor] * 4, plus, minus, rotate, rng)


@renamed_keywords(centre="center", neighbour="neighbor")
def ch4_pair(
    seed: int | np.random.Generator | None = None,
    *,
    alpha: float | None = None,
    x: float | None = None,
    z: float | None = None,
    bond: float = 1.09,
    center: str = "C",
    neighbor: str = "H",
    rotate: bool = False,
    min_separation: float = 0.35,
) -> tuple[ase.Atoms, ase.Atoms]:
    """CH4-like 3-body-degenerate pair (docs/science.md §4.4b).

    Neighbours (times ``bond``) n = (0, 0, 1), −n, c = (sin α, 0, cos α) and d = (x, y, z) on
    the unit sphere (y > 0), versus the same with d′ = (x + 2z cot α, +√(1 − x′² − z²), −z).
    Parameters not given are drawn from ``seed``: α ~ U(40°, 140°), x, z ~ U(−0.8, 0.8),
    redrawn until both partners exist, z is not ~0 (where the two manifolds meet) and all
    neighbour–neighbour distances exceed ``min_separation`` × ``bond``. The centre atom has the
    species ``center``, the neighbours ``neighbor`` (``centre=`` and ``neighbour=`` are
    deprecated aliases).
    """
    rng = _rng(seed)
    fixed = alpha is not None and x is not None and z is not None
    for _ in range(100_000):
        a = float(rng.uniform(math.radians(40), math.radians(140))) if alpha is None else alpha
        xx = float(rng.uniform(-0.8, 0.8)) if x is None else x
        zz = float(rng.uniform(-0.8, 0.8)) if z is None else z
        xp = xx + 2.0 * zz / math.tan(a)
        y2, yp2 = 1.0 - xx * xx - zz * zz, 1.0 - xp * xp - zz * zz
        ok = y2 > 1e-6 and yp2 > 1e-6 and abs(zz) > 0.05
        if ok:
            n = np.array([0.0, 0.0, 1.0])
            c = np.array([math.sin(a), 0.0, math.cos(a)])
            d = np.array([xx, math.sqrt(y2), zz])
            dp = np.array([xp, math.sqrt(yp2), -zz])
            plus = np.stack([n, -n, c, d]) * bond
            minus = np.stack([n, -n, c, dp]) * bond
            ok = _min_distance(plus) > min_separation * bond
            ok = ok and _min_distance(minus) > min_separation * bond
        if ok:
            return _finish(center, [neighbor] * 4, plus, minus, rotate, rng)
        if fixed:
            raise ValueError(
                f"no valid CH4-like pair for alpha={alpha}, x={x}, z={z}: the partner d' is "
                "off the unit sphere, z is ~0 or two neighbours overlap"
            )
    raise RuntimeError("could not draw a valid CH4-like pair")  # pragma: no cover


def _min_distance(positions: FloatArray) -> float:
    d = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    return float(d[np.triu_indices(len(positions), 1)].min())


def _bpm_positions(
    n: int, r: float, z1: float, z2: float, psi: float, phi: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    phi = np.asarray(phi, dtype=np.float64)
    if phi.shape != (n,):
        raise ValueError(f"phi must hold n={n} angles, got shape {phi.shape}")
    ring1 = np.stack([r * np.cos(phi), r * np.sin(phi), np.full(n, z1)], axis=1)
    ring2 = np.stack([r * np.cos(phi + psi), r * np.sin(phi + psi), np.full(n, -z1)], axis=1)
    plus = np.vstack([ring1, ring2, [[0.0, 0.0, z2]]])
    minus = np.vstack([ring1, ring2, [[0.0, 0.0, -z2]]])
    return plus, minus


@renamed_keywords(neighbour_distance="neighbor_distance")
def bpm_pair(
    seed: int | np.random.Generator | None = None,
    *,
    n: int = 3,
    species: str = "B",
    rotate: bool = False,
    neighbor_distance: tuple[float, float] = (1.5, 1.8),
    min_distance: float = 1.2,
    max_tries: int = 1_000_000,
) -> tuple[ase.Atoms, ase.Atoms]:
    """Bispectrum-degenerate "B±" pair (docs/science.md §4.3/§4.4c), all atoms of ``species``.

    Centre at the origin; ring 1: ``n`` atoms at (r cos φ_k, r sin φ_k, z₁); ring 2: the same
    ring rotated by ψ about z at −z₁; one axial atom at (0, 0, +z₂) for B+ and (0, 0, −z₂) for
    B−. Parameters as in the B8 data set: r, z₁ ~ U(0.5, 2), z₂ ~ U(1.5, 1.8), ψ ~ U(0, π),
    φ = [0, φ₁, φ₁ + φ₂, ...] with φ_k ~ U(π/6, π); a draw is rejected unless every
    centre–neighbour distance lies in ``neighbor_distance`` (``neighbour_distance=`` is a
    deprecated alias) and every interatomic distance exceeds ``min_distance`` (in both
    members). Structures have 2n + 2 atoms, centre first.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    lo, hi = neighbor_distance
    rng = _rng(seed)
    for _ in range(max_tries):
        r = rng.uniform(0.5, 2.0)
        z1 = rng.uniform(0.5, 2.0)
        z2 = rng.uniform(1.5, 1.8)
        psi = rng.uniform(0.0, math.pi)
        steps = rng.uniform(math.pi / 6, math.pi, size=n - 1)
        phi = np.concatenate([[0.0], np.cumsum(steps)])
        plus, minus = _bpm_positions(n, r, z1, z2, psi, phi)
        radial = np.linalg.norm(plus, axis=1)
        if not (np.all(radial > lo) and np.all(radial < hi)):
            continue
        if _min_distance(plus) <= min_distance or _min_distance(minus) <= min_distance:
            continue
        return _finish(species, [species] * (2 * n + 1), plus, minus, rotate, rng)
    raise RuntimeError(f"no valid B± pair in {max_tries} draws; relax the rejection rules")


def bpm_dataset(
    n_pairs: int, seed: int | np.random.Generator | None = 12345, **kwargs: Any
) -> list[tuple[ase.Atoms, ase.Atoms]]:
    """``n_pairs`` independent B± pairs from one seeded stream (keyword arguments go to
    :func:`bpm_pair`)."""
    rng = _rng(seed)
    return [bpm_pair(rng, **kwargs) for _ in range(n_pairs)]


def b8_pair(*, exact: bool = True) -> tuple[ase.Atoms, ase.Atoms]:
    """The first B8± pair of the B8 data set of Nigam et al. (docs/science.md §4.4c).

    ``exact=True`` rebuilds it from the full-precision parameters; ``exact=False`` uses the
    coordinates as printed (rounded to 1e-8 Å), which are bispectrum-degenerate only to ~1e-8.
    """
    if exact:
        p = B8_PARAMETERS
        plus, minus = _bpm_positions(3, p["r"], p["z1"], p["z2"], p["psi"], p["phi"])
        origin = np.zeros((1, 3))
        plus, minus = np.vstack([origin, plus]), np.vstack([origin, minus])
    else:
        plus, minus = B8_PLUS_POSITIONS, B8_MINUS_POSITIONS
    return _atoms(["B"] * 8, plus), _atoms(["B"] * 8, minus)


def congruent(first: Any, second: Any, atol: float = 1e-6, max_atoms: int = 10) -> bool:
    """``True`` when a translation, an O(3) operation (rotation or reflection) and a
    species-preserving permutation of atoms map ``first`` onto ``second`` within ``atol``.

    Brute force over permutations (two point sets with the same centroid are related by an
    orthogonal map iff their Gram matrices about the centroid agree), so only for structures of
    at most ``max_atoms`` atoms.
    """
    xa = np.asarray(first.positions, dtype=np.float64)
    xb = np.asarray(second.positions, dtype=np.float64)
    za, zb = np.asarray(first.numbers), np.asarray(second.numbers)
    if xa.shape != xb.shape or sorted(za.tolist()) != sorted(zb.tolist()):
        return False
    n = len(xa)
    if n > max_atoms:
        raise ValueError(f"congruent() is brute force: at most {max_atoms} atoms, got {n}")
    ga = _gram(xa)
    gb = _gram(xb)
    # quick necessary test: sorted norms about the centroid
    if not np.allclose(np.sort(np.diag(ga)), np.sort(np.diag(gb)), atol=atol):
        return False
    perms = np.array(list(itertools.permutations(range(n))), dtype=np.intp)
    perms = perms[np.all(zb[perms] == za[None, :], axis=1)]
    for chunk in np.array_split(perms, max(1, len(perms) // 5000)):
        permuted = gb[chunk[:, :, None], chunk[:, None, :]]
        if np.any(np.all(np.abs(permuted - ga[None]) <= atol, axis=(1, 2))):
            return True
    return False


def _gram(x: FloatArray) -> FloatArray:
    c = x - x.mean(axis=0)
    return np.asarray(c @ c.T, dtype=np.float64)
