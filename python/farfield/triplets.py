"""Triplet descriptors (Nigam et al., arXiv 2302.14770) and the bispectrum.

For a centre *i* with neighbours *j* (every atom or periodic image strictly inside ``cutoff``,
the centre itself excluded), :class:`TripletFeatures` returns one row per ordered neighbour pair
``(j1, j2)`` — **``j1 = j2`` included**, so a centre with *M* neighbours has *M²* rows — holding
the invariants ``|ρ_i ⊗ g_ij1 ⊗ g_ij2; λ = 0⟩`` of both parities. Results are the library's
:class:`farfield.Descriptor`: triplet rows are labelled ``(system, atom, center_type, neighbor_1,
neighbor_2)``, per-centre rows ``(system, atom, center_type)``; columns are labelled
``(neighbor_1_type, neighbor_2_type, neighbor_3_type, l_1, l_2, l_3, n_1, n_2, n_3)``: the
species of ``j1``, ``j2`` and of the density channel ρ_i, parity ``σ = (−1)^(l_1+l_2+l_3)``
(σ = −1 columns change sign under a reflection). A centre with no neighbour has no triplet (its
summed descriptor is zero); one with a single neighbour has one (``j1 = j2``); neither is an
error.

:class:`Bispectrum` computes ``|ρ_i ⊗ ρ_i ⊗ ρ_i; 0⟩`` with the same columns: the sum of a centre's
triplet rows equals its bispectrum, which is why a linear ψ cannot do better than ν = 3.

:meth:`TripletFeatures.summed` streams ``Σ_{j1,j2} ψ(row)`` over every centre without holding a
data set's triplets: ``psi="linear"`` in Rust, or any callable ``(n, F) → (n, k)`` (for instance a
small neural network) applied chunk by chunk. A linear ``projection`` ``(mean, components)`` that
the user computes (e.g. a PCA of a sample of rows, as ``examples/ml_helpers.py`` does) compresses
the rows in Rust: later calls return (and ψ receives) ``(row − mean) @ components``.

Centre indices are given as ``centers`` (featomic's spelling, as in ``center_type``); the old
keyword ``centres`` still works but emits a ``DeprecationWarning``.

The local expansion is the one of :class:`farfield.SphericalExpansion` (per neighbour, without
the centre's own density): ``g_ij[n, l, m] = f_c(r_ij) I_nl(r_ij) Y_lm(r̂_ij)``, the Gaussian
atomic density of std ``smearing`` on ``max_radial + 1`` GTO radial functions (featomic's
convention, as everywhere in farfield), real spherical harmonics, and a shifted-cosine switch of
width ``cutoff_width`` (a step for 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from . import _checks, _native
from ._compat import renamed_keywords
from .descriptors import Descriptor
from .system import System, as_system

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Psi = Union[str, Callable[[FloatArray], Any]]  # noqa: UP007 (py3.10 runtime alias)

__all__ = ["Bispectrum", "TripletFeatures"]

CENTER_SAMPLES = ("system", "atom", "center_type")
TRIPLET_SAMPLES = (*CENTER_SAMPLES, "neighbor_1", "neighbor_2")


def _frames(frames: Any) -> list[System]:
    if isinstance(frames, System) or hasattr(frames, "positions"):
        return [as_system(frames)]
    return [as_system(f) for f in frames]


def _centers(centers: Any) -> list[int] | None:
    """``None`` or the centre indices as non-negative integers (floats are refused)."""
    if centers is None:
        return None
    return [int(c) for c in _checks.integer_array("centers", centers, minimum=0)]


def _projection(value: Any) -> tuple[FloatArray, FloatArray] | None:
    """``None`` or ``(mean (F,), components (F, k))`` as read-only float64 copies (the core
    checks that F is the number of triplet features and that the values are finite)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise TypeError(
            f"projection must be None or a pair (mean, components), got {type(value).__name__}"
        )
    try:
        mean = np.array(value[0], dtype=np.float64, order="C")
        components = np.array(value[1], dtype=np.float64, order="C")
    except (TypeError, ValueError) as error:
        raise TypeError(f"projection must hold two arrays of numbers: {error}") from None
    if mean.ndim != 1 or components.ndim != 2 or components.shape[0] != mean.shape[0]:
        raise ValueError(
            "projection must be (mean (F,), components (F, k)), got shapes "
            f"{mean.shape} and {components.shape}"
        )
    if components.shape[1] == 0:
        raise ValueError("projection must keep at least one component, got 0")
    mean.flags.writeable = False
    components.flags.writeable = False
    return mean, components


def _descriptor(
    out: dict[str, Any], sample_names: tuple[str, ...], extra: IntArray | None = None
) -> Descriptor:
    samples = np.asarray(out["samples"])
    if extra is not None:
        samples = np.hstack([samples, extra.astype(samples.dtype)])
    return Descriptor(
        values=np.asarray(out["values"]),
        samples=samples,
        properties=np.asarray(out["properties"]),
        property_names=tuple(out["property_names"]),
        sample_names=sample_names,
    )


class _Expansion:
    def __init__(
        self,
        cutoff: float = 2.0,
        *,
        max_radial: int = 5,
        max_angular: int = 3,
        smearing: float = 0.2,
        cutoff_width: float = 0.1,
        species: Sequence[int] | None = None,
    ) -> None:
        self.cutoff = _checks.finite_float("cutoff", cutoff)
        self.max_radial = _checks.integer("max_radial", max_radial, maximum=29)
        self.max_angular = _checks.integer("max_angular", max_angular, maximum=8)
        self.smearing = _checks.finite_float("smearing", smearing)
        self.cutoff_width = _checks.finite_float("cutoff_width", cutoff_width)
        self.species = (
            None
            if species is None
            else [int(z) for z in _checks.integer_array("species", species, minimum=1)]
        )
        if not (np.isfinite(self.cutoff) and self.cutoff > 0):
            raise ValueError(f"invalid cutoff: must be positive and finite, got {cutoff}")
        if not (0 <= self.cutoff_width <= self.cutoff):
            raise ValueError(
                f"invalid cutoff_width: must lie in [0, cutoff = {self.cutoff}], got {cutoff_width}"
            )
        if not (0 < self.smearing <= self.cutoff):
            raise ValueError(
                f"invalid smearing: must lie in (0, cutoff = {self.cutoff}], got {smearing}"
            )
        self._calculators: dict[tuple[int, ...], Any] = {}
        # validate now (the same checks the core runs), with a dummy species list if needed
        self._calculator(self.species or [1])

    def __getstate__(self) -> dict[str, Any]:
        """The settings only: pickling (e.g. to the workers of a Dask cluster) sends them; the
        native calculators are rebuilt on first use after unpickling."""
        state = self.__dict__.copy()
        state["_calculators"] = {}
        return state

    def _calculator(self, species: Sequence[int]) -> Any:
        key = tuple(species)
        if key not in self._calculators:
            self._calculators[key] = _native.TripletCalculator(
                self.cutoff,
                self.max_radial,
                self.max_angular,
                self.smearing,
                "shifted_cosine" if self.cutoff_width > 0 else "step",
                self.cutoff_width,
                None,
                list(species),
            )
        return self._calculators[key]

    def _species(self, systems: list[System]) -> list[int]:
        if self.species is not None:
            return self.species
        found = sorted({int(z) for s in systems for z in s.numbers})
        return found or [1]

    @renamed_keywords(centre="center")
    def pair_expansion(self, frame: Any, center: int) -> tuple[IntArray, FloatArray]:
        """The pair expansions ``g_ij`` of the centre atom ``center``: neighbour indices (M,)
        and coefficients (M, max_radial + 1, (max_angular + 1)²) in the (l, m = −l..l) order.
        (``centre=`` is a deprecated alias of ``center``.)"""
        system = as_system(frame)
        calc = self._calculator(self._species([system]))
        index = _checks.integer("center", center, maximum=max(len(system) - 1, 0))
        js, g = calc.pair_expansion(system._arrays(), index)
        return np.asarray(js), np.asarray(g)


def clebsch_gordan_product(a: FloatArray, b: FloatArray, l1: int, l2: int, lam: int) -> FloatArray:
    """The real Clebsch–Gordan product ``|a ⊗ b; λ⟩[n1, n2, μ]`` of two expansions of shape
    (n, (l_max + 1)²): the equivariant intermediate block of the triplet construction."""
    return np.asarray(
        _native.clebsch_gordan_product(
            np.ascontiguousarray(a, dtype=np.float64),
            np.ascontiguousarray(b, dtype=np.float64),
            _checks.integer("l1", l1),
            _checks.integer("l2", l2),
            _checks.integer("lam", lam),
        )
    )


class TripletFeatures(_Expansion):
    """Triplet features ``|ρ_i ⊗ g_ij1 ⊗ g_ij2; λ=0, σ=±1⟩`` for every ordered neighbour pair.

    Args:
        cutoff: neighbour cutoff (Å), > 0.
        max_radial: index of the last GTO radial function (0..29; ``max_radial + 1``
            functions, featomic's convention).
        max_angular: largest l (and λ) (0..8).
        smearing: std σ of the Gaussian atomic density, in (0, cutoff].
        cutoff_width: width of the shifted-cosine switch, in [0, cutoff] (0: a step).
        species: atomic numbers of the species channels; default: those in the frames given to
            each call (pass them explicitly to get the same columns across calls). An atom of
            another species raises ``ValueError``.
        projection: ``None`` or a linear compression ``(mean (F,), components (F, k))`` of the
            F triplet features, computed by the user (e.g. a PCA of uncompressed rows); see
            :attr:`projection`.

    Defaults follow the B8 study of the paper (cutoff 2 Å, width 0.1, 6 radial functions,
    l_max 3, σ 0.2).
    """

    def __init__(
        self,
        cutoff: float = 2.0,
        *,
        projection: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(cutoff, **kwargs)
        self._projection_arrays = _projection(projection)

    @property
    def projection(self) -> tuple[FloatArray, FloatArray] | None:
        """``None`` or ``(mean, components)``: with it, :meth:`compute` (``compress=True``) and
        :meth:`summed` return ``(row − mean) @ components`` (k columns, property ``component``)
        instead of the F features, projected in Rust row by row. Set it to ``None`` to get the
        full rows again; mean must have F entries and components F rows (F = the number of
        triplet features of the species in use), checked at the next call."""
        return self._projection_arrays

    @projection.setter
    def projection(self, value: tuple[npt.ArrayLike, npt.ArrayLike] | None) -> None:
        self._projection_arrays = _projection(value)

    def _projected(self, compress: bool) -> tuple[FloatArray, FloatArray] | None:
        return self._projection_arrays if compress else None

    @renamed_keywords(centres="centers")
    def compute(
        self, frames: Any, centers: Sequence[int] | None = None, *, compress: bool = True
    ) -> Descriptor:
        """Triplet rows of every centre (or of ``centers``, the same atom indices in each
        frame), samples ``(system, atom, center_type, neighbor_1, neighbor_2)``. With a
        :attr:`projection` and ``compress=True`` the columns are its components (property
        ``component``); ``compress=False`` returns the full rows (e.g. to fit a projection).
        (``centres=`` is a deprecated alias of ``centers``.)"""
        systems = _frames(frames)
        if not isinstance(compress, (bool, np.bool_)):
            raise TypeError(f"compress must be True or False, got {compress!r}")
        out = self._calculator(self._species(systems)).compute(
            [s._arrays() for s in systems], _centers(centers), self._projected(bool(compress))
        )
        return _descriptor(out, TRIPLET_SAMPLES, np.asarray(out["neighbours"]))

    @renamed_keywords(centres="centers")
    def summed(
        self,
        frames: Any,
        psi: Psi = "linear",
        centers: Sequence[int] | None = None,
        *,
        chunk_size: int = 256,
    ) -> Descriptor:
        """``Σ_{j1,j2} ψ(row)`` for every centre, samples ``(system, atom, center_type)``.

        ``psi="linear"`` sums the (compressed) rows in Rust without storing any triplet — equal
        to the bispectrum for uncompressed rows. A callable receives (n, F) rows (compressed if a
        :attr:`projection` is set) and returns (n,) or (n, k) (properties ``psi``); frames are
        processed ``chunk_size`` at a time so that only one chunk's triplets are alive.
        (``centres=`` is a deprecated alias of ``centers``.)
        """
        systems = _frames(frames)
        species = self._species(systems)
        centre_list = _centers(centers)
        if isinstance(psi, str):
            if psi != "linear":
                raise ValueError(f"psi must be 'linear' or a callable, got {psi!r}")
            out = self._calculator(species).summed(
                [s._arrays() for s in systems], centre_list, self._projected(True)
            )
            return _descriptor(out, CENTER_SAMPLES)
        if not callable(psi):
            raise ValueError(f"psi must be 'linear' or a callable, got {type(psi).__name__}")
        chunk_size = _checks.integer("chunk_size", chunk_size, minimum=1)
        calc = self._calculator(species)
        out_samples: list[npt.NDArray[np.int32]] = []
        out_values: list[FloatArray] = []
        for start in range(0, len(systems), chunk_size):
            chunk = systems[start : start + chunk_size]
            arrays = [s._arrays() for s in chunk]
            # the per-centre rows of the bispectrum (O(M) per centre) give the sample labels
            centre_rows = np.asarray(calc.bispectrum(arrays, centre_list)["samples"])
            result = _descriptor(
                calc.compute(arrays, centre_list, self._projected(True)), TRIPLET_SAMPLES
            )
            values = np.asarray(psi(result.values), dtype=np.float64)
            if values.ndim == 1:
                values = values[:, None]
            if values.ndim != 2 or values.shape[0] != len(result.values):
                raise ValueError(
                    f"psi must return (n,) or (n, k) for n = {len(result.values)} rows, got "
                    f"shape {values.shape}"
                )
            keys = np.asarray(result.samples[:, :2], dtype=np.int64)
            index = _group_index(keys, centre_rows[:, :2].astype(np.int64))
            sums = np.zeros((len(centre_rows), values.shape[1]))
            np.add.at(sums, index, values)
            centre_rows = centre_rows.copy()
            centre_rows[:, 0] += start
            out_samples.append(centre_rows)
            out_values.append(sums)
        values = np.concatenate(out_values) if out_values else np.zeros((0, 1))
        return Descriptor(
            values=values,
            samples=np.concatenate(out_samples) if out_samples else np.zeros((0, 3), np.int32),
            properties=np.arange(values.shape[1], dtype=np.int32)[:, None],
            property_names=("psi",),
            sample_names=CENTER_SAMPLES,
        )


def _group_index(keys: IntArray, rows: IntArray) -> IntArray:
    """Index into ``rows`` of every (structure, centre) key (all keys are present in rows)."""
    width = int(max(rows[:, 1].max(initial=0), keys[:, 1].max(initial=0))) + 1
    encoded_rows = rows[:, 0] * width + rows[:, 1]
    order = np.argsort(encoded_rows, kind="stable")
    position = np.searchsorted(encoded_rows[order], keys[:, 0] * width + keys[:, 1])
    return np.asarray(order[position], dtype=np.int64)


class Bispectrum(_Expansion):
    """The bispectrum ``|ρ_i ⊗ ρ_i ⊗ ρ_i; λ=0, σ=±1⟩`` of every centre (ν = 3), with the same
    expansion, arguments and columns as :class:`TripletFeatures`."""

    @renamed_keywords(centres="centers")
    def compute(self, frames: Any, centers: Sequence[int] | None = None) -> Descriptor:
        """One row per ``(system, atom, center_type)``, for every centre or for ``centers``.
        (``centres=`` is a deprecated alias of ``centers``.)"""
        systems = _frames(frames)
        out = self._calculator(self._species(systems)).bispectrum(
            [s._arrays() for s in systems], _centers(centers)
        )
        return _descriptor(out, CENTER_SAMPLES)
