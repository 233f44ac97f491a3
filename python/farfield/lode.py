"""LODE (long-distance equivariant) features: :class:`LodeSphericalExpansion`.

The projection of the smeared 1/r^p potential of every species on a local radial ×
real-spherical-harmonics basis around each atom (docs/science.md §2). Periodic systems use the
exact k-space sum (featomic's formula); non-periodic systems the exact real-space projection
(no artificial box). Names and conventions follow featomic's ``LodeSphericalExpansion``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _checks, _native
from ._compat import renamed_keywords
from .descriptors import Backward, Descriptor, tensor_map
from .limits import get_limits
from .system import System, as_system

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]
Frames = Any  # one frame (ase.Atoms or System) or a sequence of them

__all__ = [
    "LodeBackward",
    "LodeBlock",
    "LodePowerSpectrum",
    "LodeResult",
    "LodeSphericalExpansion",
]


@dataclass(frozen=True)
class LodeBlock(Descriptor):
    """One (centre type, neighbour type, λ) block in featomic's layout: a
    :class:`farfield.Descriptor` block (the same type as
    ``SphericalExpansion(...).compute(...).block((center_type, neighbor_type, λ))``) with
    samples ``(system, atom)``, values (n_centres, 2λ+1, max_radial+1) (component ``o3_mu``,
    property ``n``) and ``gradients`` ``"positions"`` (n_grad, 3, 2λ+1, max_radial+1) with
    ``positions_samples`` (sample, system, atom), ``"strain"`` and ``"cell"`` (n_centres, 3,
    3, 2λ+1, max_radial+1) when computed.

    The old attribute names remain: ``positions_gradient``, ``gradient_samples``,
    ``strain_gradient`` (∂/∂ε, ε on column vectors), ``cell_gradient`` (∂c/∂H[a, b] with
    H = atoms.cell, Cartesian positions fixed; zero for open frames), each ``None`` when not
    computed.
    """

    center_type: int = 0
    neighbor_type: int = 0
    o3_lambda: int = 0

    @property
    def positions_gradient(self) -> FloatArray | None:
        """``gradients["positions"]`` or ``None``."""
        return self.gradients.get("positions")

    @property
    def gradient_samples(self) -> IntArray | None:
        """``positions_samples`` as int32, or ``None``."""
        if self.positions_samples is None:
            return None
        return self.positions_samples.astype(np.int32)

    @property
    def strain_gradient(self) -> FloatArray | None:
        """``gradients["strain"]`` or ``None``."""
        return self.gradients.get("strain")

    @property
    def cell_gradient(self) -> FloatArray | None:
        """``gradients["cell"]`` or ``None``."""
        return self.gradients.get("cell")


@dataclass(frozen=True)
class LodeResult:
    """LODE coefficients of a batch of frames.

    Attributes:
        values: dense (n_atoms_total, n_species, (max_angular+1)², max_radial+1) array,
            neighbour species along axis 1 (in ``species`` order), (l, m) flattened as
            l² + l + m.
        samples: (n_atoms_total, 2) rows (system, atom).
        center_types: (n_atoms_total,) atomic number of each centre.
        species: the neighbour species channels.
        pair_gradients: per frame (N, N, 3, (lmax+1)², nmax+1): ∂c_i[type(j)]/∂r_j, j ≠ i.
        self_gradients: per frame (N, 3, n_species, (lmax+1)², nmax+1): ∂c_i/∂r_i.
        strain_gradients: per frame (N, 3, 3, n_species, (lmax+1)², nmax+1): ∂c_i/∂ε
            (positions and cell strained together, r → (1 + ε) r: [i, α, β] = ∂c_i/∂ε_αβ).
        cell_gradients: per frame (N, 3, 3, n_species, (lmax+1)², nmax+1): ∂c_i/∂H[a, b]
            with H = atoms.cell (rows = cell vectors) and the Cartesian positions fixed
            (featomic's ``"cell"`` gradient; zero for open frames).
        frame_offsets: first sample of each frame (and the total at the end).
        methods: per frame, "exact" or "mesh" (how the values were evaluated).

    Blocks in featomic's layout come from :meth:`block` / :attr:`blocks` (built on demand,
    by the core); :meth:`to_descriptor` gives the same features as the library's labelled
    :class:`farfield.Descriptor` (the result type of every other feature calculator).
    """

    values: FloatArray
    samples: IntArray
    center_types: IntArray
    species: tuple[int, ...]
    max_angular: int
    max_radial: int
    pair_gradients: tuple[FloatArray, ...] | None = None
    self_gradients: tuple[FloatArray, ...] | None = None
    strain_gradients: tuple[FloatArray, ...] | None = None
    cell_gradients: tuple[FloatArray, ...] | None = None
    frame_offsets: tuple[int, ...] = field(default_factory=tuple)
    methods: tuple[str, ...] = field(default_factory=tuple)
    _cache: dict[tuple[int, int, int], LodeBlock] = field(
        default_factory=dict, repr=False, compare=False
    )
    _flat: dict[str, Descriptor] = field(default_factory=dict, repr=False, compare=False)

    @property
    def gradients(self) -> dict[str, FloatArray]:
        """The computed gradients in the layout of :attr:`farfield.Descriptor.gradients`
        (``"positions"`` (n_grad, 3, n_properties) labelled by :attr:`positions_samples`,
        ``"strain"`` and ``"cell"`` (n_samples, 3, 3, n_properties)), the properties being
        the flattened ``(species, l, m, n)`` axes of :attr:`values`; see
        :meth:`to_descriptor`."""
        return self.to_descriptor().gradients

    @property
    def positions_samples(self) -> npt.NDArray[np.int64] | None:
        """``(sample, system, atom)`` of the rows of ``gradients["positions"]``."""
        return self.to_descriptor().positions_samples

    @property
    def keys(self) -> list[tuple[int, int, int]]:
        """(center_type, neighbor_type, o3_lambda) of every block."""
        centres = sorted({int(z) for z in self.center_types})
        return [
            (ct, nt, lam)
            for lam in range(self.max_angular + 1)
            for ct in centres
            for nt in self.species
        ]

    @property
    def blocks(self) -> dict[tuple[int, int, int], LodeBlock]:
        """Every block, keyed by (center_type, neighbor_type, o3_lambda)."""
        return {key: self.block(*key) for key in self.keys}

    def block(
        self,
        center_type: int | tuple[int, int, int],
        neighbor_type: int | None = None,
        o3_lambda: int | None = None,
    ) -> LodeBlock:
        """The block with these keys, given as three integers or as one key tuple
        ``(center_type, neighbor_type, o3_lambda)`` of :attr:`keys` (KeyError when absent)."""
        if isinstance(center_type, tuple):
            if neighbor_type is not None or o3_lambda is not None or len(center_type) != 3:
                raise TypeError("block() takes a key tuple of three integers or three integers")
            center_type, neighbor_type, o3_lambda = center_type
        if neighbor_type is None or o3_lambda is None:
            raise TypeError("block() needs center_type, neighbor_type and o3_lambda")
        key = (int(center_type), int(neighbor_type), int(o3_lambda))
        if key not in self._cache:
            if key not in self.keys:
                raise KeyError(key)
            self._cache[key] = self._build_block(*key)
        return self._cache[key]

    def to_descriptor(self) -> Descriptor:
        """The same features as a :class:`farfield.Descriptor`, the labelled type of every
        feature calculator: ``values`` (n_atoms_total, n_species · (lmax+1)² · (nmax+1)),
        samples ``(system, atom, center_type)``, properties ``(neighbor_type, l, m, n)``
        (:class:`farfield.SphericalExpansion`'s labels and order), and the computed gradients
        in its layout: ``"positions"`` one row per (centre, atom) pair of a frame (LODE is
        global), ``"strain"`` and ``"cell"`` (n_samples, 3, 3, n_properties), the same
        conventions as here."""
        if "descriptor" in self._flat:
            return self._flat["descriptor"]
        na = len(self.species)
        nlm = (self.max_angular + 1) ** 2
        nr = self.max_radial + 1
        nf = na * nlm * nr
        n_total = self.values.shape[0]
        properties = np.array(
            [
                (z, lam, m, n)
                for z in self.species
                for lam in range(self.max_angular + 1)
                for m in range(-lam, lam + 1)
                for n in range(nr)
            ],
            dtype=np.int32,
        ).reshape(-1, 4)
        samples = np.concatenate([self.samples, self.center_types[:, None]], axis=1)
        gradients: dict[str, FloatArray] = {}
        positions_samples = None
        if self.pair_gradients is not None:
            rows: list[FloatArray] = []
            labels: list[npt.NDArray[np.int64]] = []
            for frame in range(len(self.frame_offsets) - 1):
                lo, hi = self.frame_offsets[frame], self.frame_offsets[frame + 1]
                n = hi - lo
                rows.append(self.positions_gradient_dense(frame).reshape(n * n, 3, nf))
                ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
                labels.append(
                    np.stack([ii.ravel() + lo, np.full(n * n, frame), jj.ravel()], axis=1)
                )
            gradients["positions"] = np.concatenate(rows)
            positions_samples = np.concatenate(labels).astype(np.int64)
        for name, per_frame in (("strain", self.strain_gradients), ("cell", self.cell_gradients)):
            if per_frame is not None:
                gradients[name] = (
                    np.concatenate(per_frame).reshape(n_total, 3, 3, nf)
                    if per_frame
                    else np.zeros((0, 3, 3, nf))
                )
        descriptor = Descriptor(
            values=self.values.reshape(n_total, nf),
            samples=samples.astype(np.int32),
            properties=properties,
            property_names=("neighbor_type", "l", "m", "n"),
            gradients=gradients,
            positions_samples=positions_samples,
        )
        self._flat["descriptor"] = descriptor
        return descriptor

    def _build_block(self, ct: int, nt: int, lam: int) -> LodeBlock:
        a = self.species.index(nt)
        lm = slice(lam * lam, (lam + 1) * (lam + 1))
        rows = np.nonzero(self.center_types == ct)[0]
        grad = gsamples = strain = None
        if self.pair_gradients is not None and self.self_gradients is not None:
            # featomic's rows (the centre itself, then every other atom of the channel),
            # assembled by the core from the compact pair/self gradients of each frame
            gvals: list[FloatArray] = []
            gsamp: list[IntArray] = []
            nr = self.max_radial + 1
            for frame in range(len(self.frame_offsets) - 1):
                lo, hi = self.frame_offsets[frame], self.frame_offsets[frame + 1]
                sel = np.nonzero((rows >= lo) & (rows < hi))[0]
                if sel.size == 0:
                    continue
                labels, vals = _native.lode_block_position_gradients(
                    np.ascontiguousarray(self.pair_gradients[frame]).reshape(-1),
                    np.ascontiguousarray(self.self_gradients[frame]).reshape(-1),
                    self._channels(lo, hi),
                    len(self.species),
                    (self.max_angular + 1) ** 2 * nr,
                    [int(c) for c in rows[sel] - lo],
                    a,
                    lam,
                    nr,
                )
                labels = labels.reshape(-1, 2)
                gvals.append(vals.reshape(-1, 3, 2 * lam + 1, nr))
                gsamp.append(
                    np.stack(
                        [sel[labels[:, 0]], np.full(len(labels), frame), labels[:, 1]], axis=1
                    ).astype(np.int32)
                )
            grad = np.concatenate(gvals)
            gsamples = np.concatenate(gsamp)
        strain = self._per_centre(self.strain_gradients, rows, a, lm)
        cell = self._per_centre(self.cell_gradients, rows, a, lm)
        gradients: dict[str, FloatArray] = {}
        for name, array in (("positions", grad), ("strain", strain), ("cell", cell)):
            if array is not None:
                gradients[name] = array
        nr = self.max_radial + 1
        return LodeBlock(
            values=self.values[rows, a, lm],
            samples=self.samples[rows].copy(),
            properties=np.arange(nr, dtype=np.int32)[:, None],
            property_names=("n",),
            gradients=gradients,
            positions_samples=None if gsamples is None else gsamples.astype(np.int64),
            sample_names=("system", "atom"),
            components=(("o3_mu", np.arange(-lam, lam + 1, dtype=np.int32)),),
            center_type=ct,
            neighbor_type=nt,
            o3_lambda=lam,
        )

    def _per_centre(
        self,
        per_frame: tuple[FloatArray, ...] | None,
        rows: npt.NDArray[np.integer[Any]],
        a: int,
        lm: slice,
    ) -> FloatArray | None:
        """The (centre, 3, 3, lm, n) rows of a per-frame (N, 3, 3, A, lm, n) gradient."""
        if per_frame is None:
            return None
        parts = []
        for frame in range(len(self.frame_offsets) - 1):
            lo, hi = self.frame_offsets[frame], self.frame_offsets[frame + 1]
            centres = rows[(rows >= lo) & (rows < hi)] - lo
            parts.append(per_frame[frame][centres][:, :, :, a, lm])
        return np.concatenate(parts)

    def _channels(self, lo: int, hi: int) -> list[int]:
        """The species channel of every atom of the frame whose samples are ``lo:hi``."""
        index = {s: a for a, s in enumerate(self.species)}
        return [index[int(z)] for z in self.center_types[lo:hi]]

    def positions_gradient_dense(self, frame: int = 0) -> FloatArray:
        """Dense ∂c_i/∂r_j of one frame: (N, N, 3, n_species, (lmax+1)², nmax+1) (assembled
        by the core; refused beyond the memory limit of ``farfield.set_limits``)."""
        if self.pair_gradients is None or self.self_gradients is None:
            raise ValueError("positions gradients were not computed")
        pair = self.pair_gradients[frame]
        n = pair.shape[0]
        lo, hi = self.frame_offsets[frame], self.frame_offsets[frame + 1]
        dense = _native.lode_dense_position_gradients(
            np.ascontiguousarray(pair).reshape(-1),
            np.ascontiguousarray(self.self_gradients[frame]).reshape(-1),
            self._channels(lo, hi),
            len(self.species),
            pair.shape[3] * pair.shape[4],
        )
        return dense.reshape((n, n, 3, len(self.species)) + pair.shape[3:])

    def to_metatensor(self) -> Any:
        """A ``metatensor.TensorMap`` with featomic's key names (needs metatensor-core), by
        the export of every feature result (:func:`farfield.descriptors.tensor_map`; strain
        and cell in featomic's layouts and component names, as the SOAP descriptors')."""
        keys = [(lam, 1, ct, nt) for ct, nt, lam in self.keys]
        return tensor_map(
            ["o3_lambda", "o3_sigma", "center_type", "neighbor_type"],
            keys,
            [self.block(ct, nt, lam) for lam, _, ct, nt in keys],
        )


LodeBackward = Backward
"""Old name of :class:`farfield.Backward` (the result of every ``backward()``)."""


def _frames(frames: Frames) -> list[System]:
    if isinstance(frames, (list, tuple)):
        systems = [as_system(f) for f in frames]
    else:
        systems = [as_system(frames)]
    if not systems:
        raise ValueError("no frames given: pass one frame or a non-empty list of frames")
    return systems


_GRADIENTS = ("positions", "strain", "cell")


def _check_memory(what: str, nbytes: float, hint: str) -> None:
    """Refuses arrays built in Python beyond the memory limit (``farfield.set_limits``)."""
    limit = get_limits().memory_now
    if nbytes > limit:
        raise ValueError(
            f"{what} would need {nbytes / 1e9:.2f} GB, more than the limit of "
            f"{limit / 1e9:.2f} GB (farfield.set_limits(max_memory=...) changes it); {hint}"
        )


_MAX_ANGULAR = 20
_MAX_RADIAL = 30


class LodeSphericalExpansion:
    """LODE spherical expansion, shaped like featomic's ``LodeSphericalExpansion``.

    Args:
        exponent: p of the density g_p: 0 (Gaussian), 1 (Coulomb), any real p > 0.
        smearing: Gaussian σ.
        max_angular: largest l (inclusive).
        max_radial: index of the last radial function (max_radial + 1 functions).
        radius: GTO radius r0 or monomial support r_c.
        basis: ``"gto"`` (featomic's GTO) or ``"monomial"`` (r^(l+2n) on [0, r_c],
            orthonormalised per l; featomic's ``Monomials`` through ``LodeSpliner``).
        k_cutoff: k-space cutoff (|k| strictly below); default 1.2π/σ. Periodic only.
        center_atom_weight: weight of the centre atom's own density.
        drop_divergent_k0: p = 3 only: drop the divergent k = 0 term as featomic does
            (otherwise a ValueError).
        species: neighbour species channels; default: every species in the frames.
        method: periodic values by the exact k-space sum ("exact"), by B-spline mesh and
            FFTs in O(N log N) ("mesh": values and :meth:`backward`, not the dense
            gradients), or by whichever is predicted cheaper ("auto"; dense gradients and
            non-periodic frames always use the exact formulas, :meth:`backward` follows the
            values' choice).
        mesh_accuracy: target relative accuracy of the mesh values (it sets the spline order
            and grid; unused by the exact path). ``accuracy=`` is a deprecated alias.
    """

    @renamed_keywords(accuracy="mesh_accuracy")
    def __init__(
        self,
        exponent: float,
        smearing: float,
        max_angular: int,
        max_radial: int,
        radius: float,
        basis: str = "gto",
        k_cutoff: float | None = None,
        center_atom_weight: float = 1.0,
        drop_divergent_k0: bool = False,
        species: Iterable[int] | None = None,
        method: str = "auto",
        mesh_accuracy: float = 1e-6,
    ) -> None:
        self.exponent = _checks.finite_float("exponent", exponent)
        if self.exponent < 0.0:
            raise ValueError(f"exponent must be >= 0, got {exponent}")
        self.smearing = _checks.positive_float("smearing", smearing)
        self.max_angular = _checks.integer("max_angular", max_angular, 0, _MAX_ANGULAR)
        self.max_radial = _checks.integer("max_radial", max_radial, 0, _MAX_RADIAL)
        self.radius = _checks.positive_float("radius", radius)
        if not isinstance(basis, str) or basis not in ("gto", "monomial"):
            raise ValueError(f"unknown basis {basis!r}, expected 'gto' or 'monomial'")
        self.basis = basis
        self.k_cutoff = _checks.optional_positive_float("k_cutoff", k_cutoff)
        self.center_atom_weight = _checks.finite_float("center_atom_weight", center_atom_weight)
        if not isinstance(drop_divergent_k0, (bool, np.bool_)):
            raise TypeError(f"drop_divergent_k0 must be True or False, got {drop_divergent_k0!r}")
        self.drop_divergent_k0 = bool(drop_divergent_k0)
        self.species = (
            None
            if species is None
            else tuple(sorted({int(s) for s in _checks.integer_array("species", list(species), 1)}))
        )
        if not isinstance(method, str) or method not in ("auto", "exact", "mesh"):
            raise ValueError(f"unknown method {method!r}, expected 'auto', 'exact' or 'mesh'")
        self.method = method
        self.mesh_accuracy = _checks.finite_float("mesh_accuracy", mesh_accuracy)
        if not 0.0 < self.mesh_accuracy < 1.0:
            raise ValueError(f"mesh_accuracy must be in (0, 1), got {mesh_accuracy}")
        self._native = _native.LodeCalculator(*self._args())

    def __getstate__(self) -> dict[str, Any]:
        """The settings only: pickling (e.g. to the workers of a Dask cluster) sends them, and
        the native calculator is rebuilt from them on unpickling."""
        state = self.__dict__.copy()
        del state["_native"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._native = _native.LodeCalculator(*self._args())

    @property
    def accuracy(self) -> float:
        """Deprecated name of :attr:`mesh_accuracy`."""
        warnings.warn(
            "LodeSphericalExpansion.accuracy is deprecated, use mesh_accuracy",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.mesh_accuracy

    def _args(self) -> tuple[Any, ...]:
        return (
            self.exponent,
            self.smearing,
            self.max_angular,
            self.max_radial,
            self.radius,
            self.basis,
            self.k_cutoff,
            self.center_atom_weight,
            self.drop_divergent_k0,
        )

    def _species(self, systems: list[System]) -> tuple[int, ...]:
        present = sorted({int(z) for s in systems for z in s.numbers})
        if self.species is None:
            return tuple(present)
        unknown = [z for z in present if z not in self.species]
        if unknown:
            raise ValueError(f"atomic numbers {unknown} are not in species={list(self.species)}")
        return self.species

    def compute(
        self, frames: Frames, gradients: Sequence[str] = (), progress: bool = False
    ) -> LodeResult:
        """Computes the expansion of one frame or a list of frames (``ase.Atoms`` or
        :class:`farfield.System`); ``gradients`` is a list of names among "positions",
        "strain" (∂/∂ε, positions and cell strained together) and "cell" (∂/∂H at fixed
        Cartesian positions, featomic's convention; computed from the dense position and
        strain gradients, so it costs as much as "positions")."""
        grads = set(_checks.string_list("gradients", gradients, _GRADIENTS))
        want_pos = "positions" in grads
        want_strain = "strain" in grads
        want_cell = "cell" in grads
        systems = _frames(frames)
        if self.k_cutoff is not None and not any(s.periodic for s in systems):
            raise ValueError("k_cutoff is a periodic-only option; the frames are not periodic")
        species = self._species(systems)
        na = len(species)
        nlm = (self.max_angular + 1) ** 2
        nr = self.max_radial + 1
        iterator: Iterable[System] = systems
        if progress:
            try:
                from tqdm import tqdm

                iterator = tqdm(systems, desc="LODE")
            except ImportError:  # pragma: no cover
                pass
        values: list[FloatArray] = []
        pairs: list[FloatArray] = []
        selfs: list[FloatArray] = []
        strains: list[FloatArray] = []
        cells: list[FloatArray] = []
        samples: list[IntArray] = []
        offsets = [0]
        methods: list[str] = []
        for index, system in enumerate(iterator):
            n = len(system)
            # the core derives the cell gradient from the dense position and strain gradients
            out = self._native.compute(
                system._arrays(),
                list(species),
                want_pos,
                want_strain,
                self.method,
                self.mesh_accuracy,
                want_cell,
            )
            methods.append(str(out["method"]))
            values.append(out["values"].reshape(n, na, nlm, nr))
            if want_pos:
                pairs.append(out["pair_gradients"].reshape(n, n, 3, nlm, nr))
                selfs.append(out["self_gradients"].reshape(n, 3, na, nlm, nr))
            if want_strain:
                strains.append(out["strain_gradients"].reshape(n, 3, 3, na, nlm, nr))
            if want_cell:
                cells.append(out["cell_gradients"].reshape(n, 3, 3, na, nlm, nr))
            samples.append(np.stack([np.full(n, index), np.arange(n)], axis=1))
            offsets.append(offsets[-1] + n)
        return LodeResult(
            values=np.concatenate(values),
            samples=np.concatenate(samples).astype(np.int32),
            center_types=np.concatenate([s.numbers for s in systems]).astype(np.int32),
            species=species,
            max_angular=self.max_angular,
            max_radial=self.max_radial,
            pair_gradients=tuple(pairs) if want_pos else None,
            self_gradients=tuple(selfs) if want_pos else None,
            strain_gradients=tuple(strains) if want_strain else None,
            cell_gradients=tuple(cells) if want_cell else None,
            frame_offsets=tuple(offsets),
            methods=tuple(methods),
        )

    def backward(
        self, frames: Frames, grad_values: FloatArray | Sequence[FloatArray]
    ) -> list[LodeBackward]:
        """Vector-Jacobian product without the dense gradients.

        ``grad_values`` holds dL/dvalues in the dense layout of :attr:`LodeResult.values`
        (one array over the whole batch, or one per frame). Returns one
        :class:`LodeBackward` per frame.

        The path follows ``method`` as for the values: with "mesh" (or "auto" where the
        values would use the mesh) the result is the exact derivative of the mesh values,
        in O(N log N) like them; otherwise the exact k-space (or real-space) formulas.
        """
        systems = _frames(frames)
        species = self._species(systems)
        na = len(species)
        nlm = (self.max_angular + 1) ** 2
        nr = self.max_radial + 1
        if isinstance(grad_values, np.ndarray):
            sizes = np.cumsum([0] + [len(s) for s in systems])
            full = np.asarray(grad_values, dtype=np.float64)
            if full.shape != (sizes[-1], na, nlm, nr):
                expected = (int(sizes[-1]), na, nlm, nr)
                raise ValueError(f"grad_values must have shape {expected}, got {full.shape}")
            per_frame = [full[sizes[k] : sizes[k + 1]] for k in range(len(systems))]
        else:
            if isinstance(grad_values, (str, bytes)) or not isinstance(grad_values, Sequence):
                raise TypeError(
                    "grad_values must be an array of shape (n_atoms_total, n_species, "
                    "(max_angular+1)², max_radial+1) or a list with one such array per frame, "
                    f"got {type(grad_values).__name__}"
                )
            if len(grad_values) != len(systems):
                raise ValueError(
                    f"grad_values has {len(grad_values)} arrays for {len(systems)} frames: "
                    "give one dL/dvalues array per frame"
                )
            per_frame = [np.asarray(g, dtype=np.float64) for g in grad_values]
        for k, (system, g) in enumerate(zip(systems, per_frame, strict=True)):
            expected = (len(system), na, nlm, nr)
            if g.shape != expected:
                raise ValueError(
                    f"grad_values of frame {k} must have shape {expected}, got {g.shape}"
                )
        results = []
        for system, g in zip(systems, per_frame, strict=True):
            n = len(system)
            pos, strain, cell, method = self._native.backward(
                system._arrays(),
                list(species),
                np.ascontiguousarray(g).reshape(-1),
                self.method,
                self.mesh_accuracy,
            )
            results.append(
                Backward(
                    positions=pos.reshape(n, 3),
                    strain=strain.reshape(3, 3),
                    cell=None if cell is None else cell.reshape(3, 3),
                    method=method,
                )
            )
        return results


def _lambda0(
    first: FloatArray, second: FloatArray, lmax: int, symmetric: bool
) -> tuple[FloatArray, list[tuple[int, int, int, int, int]]]:
    """λ = 0 products Σ_m (-1)^l/√(2l+1) a[..., s1, lm, n1] b[..., s2, lm, n2] (soap's
    power-spectrum convention; √2 for s1 < s2 when ``symmetric``), computed by the core
    (``Lambda0Product``). Arrays are (..., species, (lmax+1)², n)."""
    na1, _, nr1 = first.shape[-3:]
    na2, _, nr2 = second.shape[-3:]
    lead = first.shape[:-3]
    if first.size == 0 or second.size == 0:
        # no atoms or no species: nothing to contract
        labels = _lambda0_labels(na1, na2, lmax, nr1, nr2, symmetric)
        return np.zeros(lead + (len(labels),)), labels
    flat = _native.lambda0_invariants(
        np.ascontiguousarray(first, dtype=np.float64).reshape(-1),
        np.ascontiguousarray(second, dtype=np.float64).reshape(-1),
        na1,
        na2,
        lmax,
        nr1,
        nr2,
        symmetric,
    )
    labels = _lambda0_labels(na1, na2, lmax, nr1, nr2, symmetric)
    return flat.reshape(lead + (len(labels),)), labels


def _lambda0_labels(
    na1: int, na2: int, lmax: int, nr1: int, nr2: int, symmetric: bool
) -> list[tuple[int, int, int, int, int]]:
    return [
        (s1, s2, lam, n1, n2)
        for s1 in range(na1)
        for s2 in range(s1 if symmetric else 0, na2)
        for lam in range(lmax + 1)
        for n1 in range(nr1)
        for n2 in range(nr2)
    ]


def _lambda0_jvp(
    first: FloatArray,
    dfirst: FloatArray,
    second: FloatArray,
    dsecond: FloatArray,
    lmax: int,
    symmetric: bool,
) -> FloatArray:
    """Derivatives of :func:`_lambda0` (core product rule): ``first`` (n, A1, lm, n1) and
    ``dfirst`` (n, ..., A1, lm, n1) with any directions ``...`` (likewise ``second``);
    returns (n, ..., n_invariants)."""
    na1, _, nr1 = first.shape[-3:]
    na2, _, nr2 = second.shape[-3:]
    n = first.shape[0]
    lead = dfirst.shape[: dfirst.ndim - 3]
    labels = _lambda0_labels(na1, na2, lmax, nr1, nr2, symmetric)
    k = int(np.prod(lead[1:], dtype=np.int64))
    if first.size == 0 or second.size == 0 or k == 0:
        return np.zeros(lead + (len(labels),))
    flat = _native.lambda0_invariants_jvp(
        np.ascontiguousarray(first, dtype=np.float64).reshape(-1),
        np.ascontiguousarray(dfirst, dtype=np.float64).reshape(-1),
        np.ascontiguousarray(second, dtype=np.float64).reshape(-1),
        np.ascontiguousarray(dsecond, dtype=np.float64).reshape(-1),
        na1,
        na2,
        lmax,
        nr1,
        nr2,
        symmetric,
        k,
    )
    return flat.reshape((n,) + lead[1:] + (len(labels),))


def _lambda0_vjp(
    first: FloatArray, second: FloatArray, grad: FloatArray, lmax: int, symmetric: bool
) -> tuple[FloatArray, FloatArray]:
    """dL/dfirst, dL/dsecond of :func:`_lambda0` given dL/dinvariants (core VJP)."""
    na1, _, nr1 = first.shape[-3:]
    na2, _, nr2 = second.shape[-3:]
    if first.size == 0 or second.size == 0:
        return np.zeros(first.shape), np.zeros(second.shape)
    d1, d2 = _native.lambda0_invariants_vjp(
        np.ascontiguousarray(first, dtype=np.float64).reshape(-1),
        np.ascontiguousarray(second, dtype=np.float64).reshape(-1),
        np.ascontiguousarray(grad, dtype=np.float64).reshape(-1),
        na1,
        na2,
        lmax,
        nr1,
        nr2,
        symmetric,
    )
    return d1.reshape(first.shape), d2.reshape(second.shape)


class LodePowerSpectrum:
    """λ = 0 invariants built on LODE (docs/science.md §2.1 item 4).

    * ``density=None``: the LODE power spectrum |V ⊗ V⟩, properties
      ``(neighbor_1_type, neighbor_2_type, l, n_1, n_2)`` with neighbor_1 ≤ neighbor_2;
    * ``density=ff.SphericalExpansion(...)``: the multi-scale |ρ ⊗ V⟩, first type from the
      local density ρ, second from the LODE potential V (all pairs). Both expansions must
      share ``max_angular``.

    Same normalisation as :class:`farfield.PowerSpectrum` ((-1)^l/√(2l+1), √2 across
    species for |V ⊗ V⟩). Gradients: "positions" (every atom pair, since LODE is global),
    "strain" and "cell" (n_samples, 3, 3, n_properties), with the conventions of
    :class:`farfield.Descriptor` (ε on column vectors; ∂/∂H at fixed Cartesian positions).
    """

    def __init__(self, lode: LodeSphericalExpansion, density: Any = None) -> None:
        if density is not None and int(density.max_angular) != lode.max_angular:
            raise ValueError("the density and LODE expansions must share max_angular")
        self.lode = lode
        self.density = density

    def compute(self, frames: Frames, gradients: Sequence[str] = ()) -> Descriptor:
        """Computes the invariants of one frame or a list of frames (``gradients``: any of
        "positions", "strain", "cell")."""
        grads = set(_checks.string_list("gradients", gradients, _GRADIENTS))
        want = "positions" in grads
        deformations = [name for name in ("strain", "cell") if name in grads]
        systems = _frames(frames)
        if want:
            n_max = max(len(s) for s in systems)
            nf = (self.lode.max_angular + 1) ** 2 * (self.lode.max_radial + 1)
            n_species = len(self.lode._species(systems))
            _check_memory(
                "the dense position gradients of the LODE power spectrum",
                8.0 * 6 * n_max * n_max * 3 * n_species * nf,
                "use backward() for the vector-Jacobian product without dense gradients, "
                "lower max_angular or max_radial, or use a smaller system",
            )
        requested = (["positions"] if want else []) + deformations
        lode = self.lode.compute(systems, gradients=requested)
        lmax = self.lode.max_angular
        species = lode.species
        v = lode.values
        if self.density is None:
            first, second, symmetric = v, v, True
            first_species = species
        else:
            rho_desc = self.density.compute(systems, gradients=requested)
            first_species = tuple(sorted({int(s) for s in rho_desc.properties[:, 0]}))
            first = self._dense_density(rho_desc, first_species, lmax)
            second, symmetric = v, False
        values, labels = _lambda0(first, second, lmax, symmetric)
        props = np.array(
            [(first_species[a], species[b], lam, n1, n2) for a, b, lam, n1, n2 in labels],
            dtype=np.int32,
        )
        samples = np.concatenate([lode.samples, lode.center_types[:, None]], axis=1).astype(
            np.int32
        )
        grad: dict[str, FloatArray] = {}
        positions_samples = None
        if want:
            gvals, gsamp = [], []
            for frame in range(len(systems)):
                lo, hi = lode.frame_offsets[frame], lode.frame_offsets[frame + 1]
                dv = lode.positions_gradient_dense(frame)  # (N, N, 3, A, lm, n)
                # the product rule of the λ = 0 contraction, in the core
                if self.density is None:
                    d = _lambda0_jvp(v[lo:hi], dv, v[lo:hi], dv, lmax, True)
                else:
                    drho = self._dense_density_gradient(
                        rho_desc, first_species, lmax, frame, lo, hi
                    )
                    d = _lambda0_jvp(first[lo:hi], drho, v[lo:hi], dv, lmax, False)
                n = hi - lo
                gvals.append(d.reshape(n * n, 3, values.shape[1]))
                ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
                gsamp.append(np.stack([ii.ravel() + lo, np.full(n * n, frame), jj.ravel()], axis=1))
            grad["positions"] = np.concatenate(gvals)
            positions_samples = np.concatenate(gsamp).astype(np.int64)
        for name in deformations:
            # (n_atoms_total, 3, 3, A, lm, n): the nine derivatives of every atom's expansion
            per_frame = lode.strain_gradients if name == "strain" else lode.cell_gradients
            assert per_frame is not None
            dv = np.concatenate(per_frame) if per_frame else np.zeros((0, 3, 3) + v.shape[1:])
            if self.density is None:
                grad[name] = _lambda0_jvp(v, dv, v, dv, lmax, True)
            else:
                drho = self._dense_density(rho_desc, first_species, lmax, rho_desc.gradients[name])
                grad[name] = _lambda0_jvp(first, drho, v, dv, lmax, False)
        return Descriptor(
            values=values,
            samples=samples,
            properties=props,
            property_names=("neighbor_1_type", "neighbor_2_type", "l", "n_1", "n_2"),
            gradients=grad,
            positions_samples=positions_samples,
        )

    def backward(self, frames: Frames, grad_values: FloatArray) -> list[LodeBackward]:
        """Vector-Jacobian product without dense gradients: dL/dV (and dL/dρ) by the core's
        transpose of the λ = 0 contraction, then :meth:`LodeSphericalExpansion.backward` for
        the LODE part and, for |ρ ⊗ V⟩, :meth:`farfield.SphericalExpansion.backward` for the
        local density (one pass over the neighbour pairs; its gradients are never formed).

        ``grad_values``: dL/dfeatures, shape (n_atoms_total, n_properties) as the values
        of :meth:`compute`. Returns one :class:`LodeBackward` per frame (dL/dpositions,
        dL/dstrain, dL/dcell).
        """
        systems = _frames(frames)
        lode = self.lode.compute(systems)
        v = lode.values
        lmax = self.lode.max_angular
        if self.density is None:
            first, symmetric = v, True
        else:
            rho_desc = self.density.compute(systems)
            first_species = tuple(sorted({int(s) for s in rho_desc.properties[:, 0]}))
            first, symmetric = self._dense_density(rho_desc, first_species, lmax), False
        nf = len(
            _lambda0_labels(
                first.shape[1], v.shape[1], lmax, first.shape[-1], v.shape[-1], symmetric
            )
        )
        g = np.asarray(grad_values, dtype=np.float64)
        if g.shape != (v.shape[0], nf):
            raise ValueError(f"grad_values must have shape {(v.shape[0], nf)}, got {g.shape}")
        d1, d2 = _lambda0_vjp(first, v, g, lmax, symmetric)
        if self.density is None:
            return self.lode.backward(systems, d1 + d2)
        results = self.lode.backward(systems, d2)
        # dL/dρ: the dense (species, lm, n) layout is the local descriptor's property order;
        # both backward results use ε on column vectors
        local = self.density.backward(systems, d1.reshape(len(d1), -1))
        return [back + loc for back, loc in zip(results, local, strict=True)]

    @staticmethod
    def _dense_density(
        desc: Any, species: tuple[int, ...], lmax: int, values: FloatArray | None = None
    ) -> FloatArray:
        """The local expansion's ``values`` (default ``desc.values``; any leading axes, the
        properties last) in LODE's dense (..., species, (lmax+1)², n) layout."""
        source = desc.values if values is None else values
        nr = int(desc.properties[:, 3].max()) + 1
        out = np.zeros(source.shape[:-1] + (len(species), (lmax + 1) ** 2, nr))
        for col, (t, lam, m, n) in enumerate(desc.properties):
            out[..., species.index(int(t)), lam * lam + lam + m, n] = source[..., col]
        return out

    @staticmethod
    def _dense_density_gradient(
        desc: Any, species: tuple[int, ...], lmax: int, frame: int, lo: int, hi: int
    ) -> FloatArray:
        nr = int(desc.properties[:, 3].max()) + 1
        n = hi - lo
        out = np.zeros((n, n, 3, len(species), (lmax + 1) ** 2, nr))
        ps = desc.positions_samples
        g = desc.gradients["positions"]
        rows = np.nonzero(ps[:, 1] == frame)[0]
        for col, (t, lam, m, nn) in enumerate(desc.properties):
            a = species.index(int(t))
            out[ps[rows, 0] - lo, ps[rows, 2], :, a, lam * lam + lam + m, nn] += g[rows, :, col]
        return out
