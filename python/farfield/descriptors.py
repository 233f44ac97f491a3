"""Local density descriptors: spherical expansion and SOAP power spectrum (featomic conventions).

``SphericalExpansion`` and ``PowerSpectrum`` are calculators; ``compute(frames, gradients=...)``
takes one or a list of ``ase.Atoms`` / :class:`farfield.System` and returns a frozen
:class:`Descriptor` holding dense numpy arrays with labelled samples and properties.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _checks, _native
from ._compat import renamed_keywords
from .system import System, as_system

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]
Frames = Any  # one ase.Atoms / System, or a sequence of them

_GRADIENTS = ("positions", "strain", "cell")
_EXPANSION_PROPERTIES = ("neighbor_type", "l", "m", "n")
_EXPANSION_KEYS = ("o3_lambda", "o3_sigma", "center_type", "neighbor_type")


@dataclass(frozen=True)
class Backward:
    """Vector-Jacobian product of one frame: the result of every feature calculator's
    ``backward()`` (:class:`SphericalExpansion`, :class:`PowerSpectrum`,
    :class:`farfield.LodeSphericalExpansion`, :class:`farfield.LodePowerSpectrum`).

    Attributes:
        positions: dL/dr, (N, 3).
        strain: dL/dε, (3, 3), for a homogeneous strain of positions and cell with ε acting on
            column vectors (``r → (1 + ε) r``, cell rows ``H → H (1 + ε)ᵀ``; ``[α, β] =
            ∂L/∂ε_αβ``), the convention of every ``"strain"`` gradient of the library.
        cell: dL/dH at fixed Cartesian positions (H = ``atoms.cell``, rows = cell vectors;
            featomic's ``"cell"``), (3, 3); ``None`` for open frames. Computed in the core
            from the two above: ``H⁻ᵀ (dL/dε − Σ_j dL/dr_j ⊗ r_j)ᵀ``.
        method: the path that ran, "exact" or (LODE only) "mesh".
    """

    positions: FloatArray
    strain: FloatArray
    cell: FloatArray | None
    method: str = "exact"

    def __add__(self, other: Backward) -> Backward:
        """The backward result of the sum of two losses of the same frame (``method`` of the
        left operand)."""
        if not isinstance(other, Backward):
            return NotImplemented
        if (self.cell is None) != (other.cell is None):
            raise ValueError("cannot add the backward results of a periodic and an open frame")
        cell = None if self.cell is None or other.cell is None else self.cell + other.cell
        return Backward(
            positions=self.positions + other.positions,
            strain=self.strain + other.strain,
            cell=cell,
            method=self.method,
        )


@dataclass(frozen=True)
class Descriptor:
    """Dense descriptor values with labels: the result type of every feature calculator
    (:class:`SphericalExpansion`, :class:`PowerSpectrum`, :class:`farfield.LodePowerSpectrum`,
    :class:`farfield.TripletFeatures`, :class:`farfield.Bispectrum`, and
    :meth:`farfield.lode.LodeResult.to_descriptor` for the LODE expansion), with
    :attr:`keys`, :meth:`block`, :attr:`blocks` and :meth:`to_metatensor`; every
    ``backward()`` returns :class:`Backward`.

    Attributes:
        values: (n_samples, n_properties) features.
        samples: (n_samples, 3) int32 labels ``(system, atom, center_type)``.
        properties: (n_properties, k) int32 labels named by ``property_names``.
        property_names: names of the property columns, e.g. ``("neighbor_1_type",
            "neighbor_2_type", "l", "n_1", "n_2")`` for the power spectrum.
        gradients: ``"positions"``: (n_grad, 3, n_properties) with ``positions_samples``;
            ``"strain"``: (n_samples, 3, 3, n_properties), ``[s, α, β] = ∂x_s/∂ε_αβ`` for a
            homogeneous strain ε of cell and positions together acting on column vectors
            (``r → (1 + ε) r``, cell rows ``H → H (1 + ε)ᵀ``; the library's one convention,
            also that of every ``backward()``; featomic's ``"strain"`` is its transpose, which
            :meth:`to_metatensor` exports), what stress and virial need (also defined for open
            systems); ``"cell"``: (n_samples, 3, 3,
            n_properties), featomic's ``"cell"`` gradient: ``[s, a, b] = ∂x_s/∂H[a, b]`` with
            ``H`` the cell matrix (rows = cell vectors, ``atoms.cell``) and the Cartesian
            positions held fixed (zero for open systems).
        positions_samples: (n_grad, 3) int64 ``(sample, system, atom)``: the row of ``values``
            and the atom whose position is differentiated.
        sample_names: names of the sample columns.
        components: ``(name, labels)`` of the axes between samples and properties: empty for
            the full results; ``(("o3_mu", m = −λ..λ),)`` for an equivariant block of a
            spherical expansion (values (n_samples, 2λ+1, n_properties), gradients likewise).
    """

    values: FloatArray
    samples: IntArray
    properties: IntArray
    property_names: tuple[str, ...]
    gradients: dict[str, FloatArray] = field(default_factory=dict)
    positions_samples: npt.NDArray[np.int64] | None = None
    sample_names: tuple[str, ...] = ("system", "atom", "center_type")
    components: tuple[tuple[str, npt.NDArray[np.int32]], ...] = ()

    def __post_init__(self) -> None:
        for array in (self.values, self.samples, self.properties, self.positions_samples):
            if array is not None:
                array.setflags(write=False)
        for array in self.gradients.values():
            array.setflags(write=False)

    @property
    def _equivariant(self) -> bool:
        """An expansion (SOAP or LODE): blocks per (center_type, neighbor_type, o3_lambda)."""
        return not self.components and self.property_names == _EXPANSION_PROPERTIES

    @property
    def keys(self) -> list[tuple[int, ...]]:
        """Block keys present in the result: ``(center_type, *neighbor types)``, or for a
        spherical expansion (properties ``(neighbor_type, l, m, n)``, SOAP or LODE)
        ``(center_type, neighbor_type, o3_lambda)`` as :attr:`farfield.lode.LodeResult.keys`."""
        centers = sorted(set(int(z) for z in self.samples[:, 2]))
        if self._equivariant:
            types = sorted(set(int(z) for z in self.properties[:, 0]))
            lmax = int(self.properties[:, 1].max(initial=-1))
            return [(c, t, lam) for lam in range(lmax + 1) for c in centers for t in types]
        n_neighbor_cols = sum(1 for name in self.property_names if name.endswith("_type"))
        neighbors = sorted(
            set(tuple(int(v) for v in row[:n_neighbor_cols]) for row in self.properties)
        )
        return [(c, *n) for c in centers for n in neighbors]

    def block(self, key: tuple[int, ...]) -> Descriptor:
        """The samples of centre type ``key[0]`` and properties of neighbour types ``key[1:]``;
        for a spherical expansion, ``key = (center_type, neighbor_type, o3_lambda)`` gives
        featomic's equivariant block: samples ``(system, atom)``, values (n_samples, 2λ+1,
        n_radial) with the component ``o3_mu`` (m = −λ..λ) in :attr:`components` and
        properties ``(n,)``; gradients get the same trailing axes."""
        if self._equivariant:
            return self._expansion_block(key)
        n_types = len(key) - 1
        rows = np.nonzero(self.samples[:, 2] == key[0])[0]
        cols = np.nonzero(np.all(self.properties[:, :n_types] == np.asarray(key[1:]), axis=1))[0]
        if rows.size == 0 or cols.size == 0:
            raise KeyError(f"no block {key} in this descriptor")
        gradients: dict[str, FloatArray] = {}
        positions_samples = None
        if "positions" in self.gradients and self.positions_samples is not None:
            remap = -np.ones(len(self.samples), dtype=np.int64)
            remap[rows] = np.arange(rows.size)
            keep = np.nonzero(remap[self.positions_samples[:, 0]] >= 0)[0]
            positions_samples = self.positions_samples[keep].copy()
            positions_samples[:, 0] = remap[positions_samples[:, 0]]
            gradients["positions"] = self.gradients["positions"][keep][:, :, cols].copy()
        for name in ("strain", "cell"):
            if name in self.gradients:
                gradients[name] = self.gradients[name][rows][..., cols].copy()
        return Descriptor(
            values=self.values[rows][:, cols].copy(),
            samples=self.samples[rows].copy(),
            properties=self.properties[cols, n_types:].copy(),
            property_names=self.property_names[n_types:],
            gradients=gradients,
            positions_samples=positions_samples,
        )

    def _expansion_block(self, key: tuple[int, ...]) -> Descriptor:
        if len(key) != 3:
            raise KeyError(
                f"expansion blocks have keys (center_type, neighbor_type, o3_lambda), got {key}"
            )
        ct, nt, lam = (int(k) for k in key)
        rows = np.nonzero(self.samples[:, 2] == ct)[0]
        cols = np.nonzero((self.properties[:, 0] == nt) & (self.properties[:, 1] == lam))[0]
        if rows.size == 0 or cols.size == 0:
            raise KeyError(f"no block {key} in this descriptor")
        # columns are ordered (m, n) inside a (neighbor_type, l) group
        n_radial = cols.size // (2 * lam + 1)
        shape = (2 * lam + 1, n_radial)
        gradients: dict[str, FloatArray] = {}
        positions_samples = None
        if "positions" in self.gradients and self.positions_samples is not None:
            remap = -np.ones(len(self.samples), dtype=np.int64)
            remap[rows] = np.arange(rows.size)
            keep = np.nonzero(remap[self.positions_samples[:, 0]] >= 0)[0]
            positions_samples = self.positions_samples[keep].copy()
            positions_samples[:, 0] = remap[positions_samples[:, 0]]
            g = self.gradients["positions"][keep][:, :, cols]
            gradients["positions"] = g.reshape(len(keep), 3, *shape)
        for name in ("strain", "cell"):
            if name in self.gradients:
                g = self.gradients[name][rows][..., cols]
                gradients[name] = g.reshape(rows.size, 3, 3, *shape)
        return Descriptor(
            values=self.values[rows][:, cols].reshape(rows.size, *shape),
            samples=self.samples[rows, :2].copy(),
            properties=np.arange(n_radial, dtype=np.int32)[:, None],
            property_names=("n",),
            gradients=gradients,
            positions_samples=positions_samples,
            sample_names=self.sample_names[:2],
            components=(("o3_mu", np.arange(-lam, lam + 1, dtype=np.int32)),),
        )

    @property
    def blocks(self) -> dict[tuple[int, ...], Descriptor]:
        """All blocks, one per ``(center_type, *neighbor types)``."""
        return {key: self.block(key) for key in self.keys}

    def to_metatensor(self) -> Any:
        """A metatensor ``TensorMap`` with one block per key (needs ``metatensor-core``), in
        featomic's layout: the ``"strain"`` gradient block holds the transpose of
        ``gradients["strain"]`` (featomic's ε on row vectors) with featomic's component
        names ``("xyz_2", "xyz_1")``; ``"cell"`` as ``gradients["cell"]``. Spherical
        expansions get featomic's keys ``(o3_lambda, o3_sigma, center_type, neighbor_type)``."""
        keys = self.keys
        names = ["center_type"] + [n for n in self.property_names if n.endswith("_type")]
        key_values = np.asarray(keys, dtype=np.int32)
        if self._equivariant:
            names = list(_EXPANSION_KEYS)
            key_values = np.array(
                [(lam, 1, ct, nt) for ct, nt, lam in keys], dtype=np.int32
            ).reshape(-1, 4)
        return tensor_map(names, key_values, [self.block(key) for key in keys])


def tensor_map(names: Sequence[str], keys: npt.ArrayLike, blocks: Sequence[Descriptor]) -> Any:
    """The metatensor ``TensorMap`` of labelled blocks (the one export of every feature
    result; needs ``metatensor-core``): samples ``(system, atom)``, the blocks' components
    and properties, and their gradients in featomic 0.6.7's layouts and component names, so
    that the blocks agree with featomic's element-wise: "positions" [row, xyz, ...];
    "strain" [s, xyz_2, xyz_1, ...] = Σ r^xyz_2 ∂/∂r^xyz_1 (ε on row vectors), the transpose
    of ``gradients["strain"][s, α, β] = ∂/∂ε_αβ`` (r → (1 + ε) r); "cell"
    [s, xyz, abc, ...] = ∂/∂H[xyz, abc], as ``gradients["cell"]``."""
    try:
        import metatensor
    except ImportError as error:  # pragma: no cover
        raise ImportError("to_metatensor() needs the metatensor-core package") from error
    out = []
    for b in blocks:
        components = [
            metatensor.Labels([name], labels.reshape(-1, 1).astype(np.int32))
            for name, labels in b.components
        ]
        block = metatensor.TensorBlock(
            values=np.ascontiguousarray(b.values),
            samples=metatensor.Labels(
                ["system", "atom"], np.ascontiguousarray(b.samples[:, :2].astype(np.int32))
            ),
            components=components,
            properties=metatensor.Labels(
                list(b.property_names), np.ascontiguousarray(b.properties.astype(np.int32))
            ),
        )
        if "positions" in b.gradients and b.positions_samples is not None:
            block.add_gradient(
                "positions",
                metatensor.TensorBlock(
                    values=np.ascontiguousarray(b.gradients["positions"]),
                    samples=metatensor.Labels(
                        ["sample", "system", "atom"],
                        np.ascontiguousarray(b.positions_samples.astype(np.int32)),
                    ),
                    components=[metatensor.Labels.range("xyz", 3), *components],
                    properties=block.properties,
                ),
            )
        for name, axes in (("strain", ("xyz_2", "xyz_1")), ("cell", ("xyz", "abc"))):
            if name in b.gradients:
                grad = b.gradients[name]
                if name == "strain":
                    grad = np.swapaxes(grad, 1, 2)
                block.add_gradient(
                    name,
                    metatensor.TensorBlock(
                        values=np.ascontiguousarray(grad),
                        samples=metatensor.Labels(
                            ["sample"], np.arange(len(b.samples), dtype=np.int32)[:, None]
                        ),
                        components=[metatensor.Labels.range(c, 3) for c in axes] + components,
                        properties=block.properties,
                    ),
                )
        out.append(block)
    return metatensor.TensorMap(
        metatensor.Labels(list(names), np.asarray(keys, dtype=np.int32).reshape(-1, len(names))),
        out,
    )


def _frames(frames: Frames) -> list[System]:
    if isinstance(frames, (list, tuple)):
        return [as_system(f) for f in frames]
    return [as_system(frames)]


def _check_gradients(gradients: Iterable[str]) -> tuple[bool, bool, bool]:
    names = _checks.string_list("gradients", gradients, _GRADIENTS)
    return "positions" in names, "strain" in names, "cell" in names


def _species_list(species: Any) -> list[int] | None:
    """``None`` or the atomic numbers (integers >= 1) as a sorted list."""
    if species is None:
        return None
    return sorted(int(z) for z in _checks.integer_array("species", species, minimum=1))


def _concatenate_samples(
    parts: Sequence[Mapping[str, Any]], offsets: Sequence[int], system_column: int
) -> tuple[npt.NDArray[Any], npt.NDArray[Any] | None]:
    """The ``samples`` (and ``positions_samples``, or None) of several batches of frames as one:
    each batch's system indices (column ``system_column`` of the samples, column 1 of the
    position samples) shifted by its entry of ``offsets``, its position samples' rows by the
    samples before it."""
    samples = []
    psamples = []
    sample_offset = 0
    for part, offset in zip(parts, offsets, strict=True):
        s = part["samples"].copy()
        s[:, system_column] += offset
        samples.append(s)
        if "positions_samples" in part:
            p = part["positions_samples"].copy()
            p[:, 0] += sample_offset
            p[:, 1] += offset
            psamples.append(p)
        sample_offset += len(s)
    return np.concatenate(samples), np.concatenate(psamples) if psamples else None


def _concatenate(parts: list[dict[str, Any]], offsets: list[int]) -> dict[str, Any]:
    if len(parts) == 1:
        return parts[0]
    out: dict[str, Any] = {
        "properties": parts[0]["properties"],
        "property_names": parts[0]["property_names"],
    }
    out["samples"], psamples = _concatenate_samples(parts, offsets, system_column=0)
    out["values"] = np.concatenate([p["values"] for p in parts])
    if psamples is not None:
        out["positions_samples"] = psamples
        out["positions"] = np.concatenate([p["positions"] for p in parts])
    for name in ("strain", "cell"):
        if name in parts[0]:
            out[name] = np.concatenate([p[name] for p in parts])
    return out


class _Calculator:
    _kind = ""

    @renamed_keywords(width="cutoff_width")
    def __init__(
        self,
        cutoff: float,
        max_radial: int,
        max_angular: int,
        smearing: float,
        *,
        cutoff_function: str = "shifted_cosine",
        cutoff_width: float = 0.5,
        center_atom_weight: float = 1.0,
        radial_accuracy: float | None = 1e-8,
        species: Sequence[int] | None = None,
    ) -> None:
        # types here; ranges in the core (which names the argument)
        self.cutoff = _checks.finite_float("cutoff", cutoff)
        self.max_radial = _checks.integer("max_radial", max_radial, maximum=30)
        self.max_angular = _checks.integer("max_angular", max_angular, maximum=30)
        self.smearing = _checks.finite_float("smearing", smearing)
        if not isinstance(cutoff_function, str):
            raise TypeError(f"cutoff_function must be a string, got {cutoff_function!r}")
        self.cutoff_function = cutoff_function
        self.cutoff_width = _checks.finite_float("cutoff_width", cutoff_width)
        self.center_atom_weight = _checks.finite_float("center_atom_weight", center_atom_weight)
        self.radial_accuracy = (
            None
            if radial_accuracy is None
            else _checks.finite_float("radial_accuracy", radial_accuracy)
        )
        self.species = _species_list(species)
        self._native = self._build_native()

    def _build_native(self) -> _native.SoapCalculator:
        return _native.SoapCalculator(
            self._kind,
            self.cutoff,
            self.max_radial,
            self.max_angular,
            self.smearing,
            self.cutoff_function,
            self.cutoff_width,
            self.center_atom_weight,
            self.radial_accuracy,
            self.species,
        )

    def __getstate__(self) -> dict[str, Any]:
        """The settings only: pickling (e.g. to the workers of a Dask cluster) sends them, and
        the native calculator (radial tables) is rebuilt from them on unpickling."""
        state = self.__dict__.copy()
        del state["_native"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._native = self._build_native()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(cutoff={self.cutoff}, max_radial={self.max_radial}, "
            f"max_angular={self.max_angular}, smearing={self.smearing}, "
            f"cutoff_function={self.cutoff_function!r}, cutoff_width={self.cutoff_width}, "
            f"center_atom_weight={self.center_atom_weight}, radial_accuracy={self.radial_accuracy})"
        )

    @property
    def width(self) -> float:
        """Deprecated name of :attr:`cutoff_width`."""
        warnings.warn(
            f"{type(self).__name__}.width is deprecated, use cutoff_width",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.cutoff_width

    def _call(
        self, systems: list[System], grads: tuple[bool, bool, bool], species: list[int]
    ) -> dict[str, Any]:
        return self._native.compute([s._arrays() for s in systems], species, *grads)

    def compute(
        self,
        frames: Frames,
        gradients: Iterable[str] = (),
        progress: bool | None = None,
    ) -> Descriptor:
        """Computes the descriptor of one structure or a list of structures.

        Args:
            frames: an ``ase.Atoms`` / :class:`System`, or a list of them.
            gradients: any of ``"positions"``, ``"strain"`` (derivative with respect to a
                homogeneous strain ε of cell and positions, ``r → (1 + ε) r``,
                ``[s, α, β] = ∂x_s/∂ε_αβ``, for stress) and ``"cell"``
                (featomic's definition: derivative with respect to the cell matrix with the
                Cartesian positions fixed).
            progress: show a tqdm progress bar (default: for batches of more than 256
                structures when tqdm is installed).
        """
        systems = _frames(frames)
        grads = _check_gradients(gradients)
        if progress is not None and not isinstance(progress, bool):
            raise TypeError(f"progress must be True, False or None, got {progress!r}")
        species = self._species_of(systems)
        chunk = 256
        if progress is None:
            progress = len(systems) > chunk
        if progress and len(systems) > chunk:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover
                progress = False
        if progress and len(systems) > chunk:
            parts = []
            offsets = []
            with tqdm(total=len(systems), desc=type(self).__name__) as bar:
                for start in range(0, len(systems), chunk):
                    batch = systems[start : start + chunk]
                    parts.append(self._call(batch, grads, species))
                    offsets.append(start)
                    bar.update(len(batch))
            raw = _concatenate(parts, offsets)
        else:
            raw = self._call(systems, grads, species)
        result_gradients: dict[str, FloatArray] = {}
        for wanted, name in zip(grads, ("positions", "strain", "cell"), strict=True):
            if wanted:
                result_gradients[name] = raw[name]
        return Descriptor(
            values=raw["values"],
            samples=raw["samples"],
            properties=raw["properties"],
            property_names=tuple(raw["property_names"]),
            gradients=result_gradients,
            positions_samples=raw.get("positions_samples"),
        )

    def backward(
        self, frames: Frames, grad_values: npt.ArrayLike | Sequence[npt.ArrayLike]
    ) -> list[Backward]:
        """Vector-Jacobian product of the descriptor, without forming its gradients.

        Args:
            frames: an ``ase.Atoms`` / :class:`System`, or a list of them.
            grad_values: dL/dvalues, shaped like :attr:`Descriptor.values` of
                ``compute(frames)`` (n_atoms_total, n_properties), or one such array per frame.

        Returns:
            One :class:`Backward` per frame: ``positions`` dL/dr (N, 3), ``strain`` dL/dε
            (3, 3) for a homogeneous strain of positions and cell with ε acting on column
            vectors (``r → (1 + ε) r``; the layout of the ``"strain"`` gradient of
            :meth:`compute` and of :meth:`farfield.LodeSphericalExpansion.backward`), and
            ``cell`` dL/dH (3, 3) at fixed Cartesian positions (featomic's ``"cell"``
            convention; ``None`` when open).
        """
        systems = _frames(frames)
        species = self._species_of(systems)
        n_features = self._n_features(len(species))
        if isinstance(grad_values, (list, tuple)):
            parts = [np.asarray(g, dtype=np.float64) for g in grad_values]
            if len(parts) != len(systems):
                raise ValueError(f"grad_values has {len(parts)} arrays for {len(systems)} frames")
            for system, part in zip(systems, parts, strict=True):
                if part.shape != (len(system), n_features):
                    raise ValueError(
                        f"grad_values must have shape {(len(system), n_features)} per frame, "
                        f"got {part.shape}"
                    )
            g = np.concatenate(parts) if parts else np.zeros((0, n_features))
        else:
            g = np.asarray(grad_values, dtype=np.float64)
            n_atoms = sum(len(s) for s in systems)
            if g.shape != (n_atoms, n_features):
                raise ValueError(
                    f"grad_values must have shape {(n_atoms, n_features)}, got {g.shape}"
                )
        if not systems:
            return []
        raw = self._native.backward(
            [s._arrays() for s in systems], species, np.ascontiguousarray(g).reshape(-1)
        )
        return [
            Backward(
                positions=pos.reshape(-1, 3),
                strain=strain.reshape(3, 3),
                cell=None if cell is None else cell.reshape(3, 3),
            )
            for pos, strain, cell in raw
        ]

    def _species_of(self, systems: list[System]) -> list[int]:
        """The neighbour species: the parameter, or those of ``systems`` (none for no frames)."""
        if self.species is not None:
            return self.species
        return sorted({int(z) for s in systems for z in s.numbers})

    def _n_features(self, n_species: int) -> int:
        return n_species * (self.max_angular + 1) ** 2 * (self.max_radial + 1)


class SphericalExpansion(_Calculator):
    """featomic's ``SphericalExpansion``: Gaussian density (width ``smearing``), GTO radial
    basis (``max_radial`` = index of the last function), real spherical harmonics up to
    ``max_angular``, cutoff ``cutoff`` with ``"shifted_cosine"`` (of ``cutoff_width``, as in
    :class:`farfield.TripletFeatures`; ``width=`` is a deprecated alias) or ``"step"``
    smoothing. ``radial_accuracy=None`` evaluates the radial integral exactly (₁F₁), otherwise
    through a spline of that absolute accuracy.

    Properties: ``(neighbor_type, l, m, n)``.
    """

    _kind = "expansion"


class PowerSpectrum(_Calculator):
    """featomic's ``SoapPowerSpectrum`` (same hyper-parameters as :class:`SphericalExpansion`).

    Properties: ``(neighbor_1_type, neighbor_2_type, l, n_1, n_2)`` with
    ``neighbor_1_type <= neighbor_2_type``.
    """

    _kind = "power_spectrum"

    def _n_features(self, n_species: int) -> int:
        pairs = n_species * (n_species + 1) // 2
        return pairs * (self.max_angular + 1) * (self.max_radial + 1) ** 2


def clebsch_gordan(l1: int, l2: int, lam: int) -> FloatArray:
    """Real Clebsch–Gordan coefficients ``(2l1+1, 2l2+1, 2λ+1)`` matching the real spherical
    harmonics (featomic's convention; imaginary part kept when ``l1+l2+λ`` is odd);
    ``l1, l2 <= 30``, ``lam <= 60``."""
    return _native.clebsch_gordan(
        _checks.integer("l1", l1, maximum=30),
        _checks.integer("l2", l2, maximum=30),
        _checks.integer("lam", lam, maximum=60),
    )


def spherical_harmonics(vectors: npt.ArrayLike, lmax: int) -> FloatArray:
    """Real spherical harmonics of the directions of ``vectors (n, 3)``: ``(n, (lmax+1)²)``,
    ordered ``l = 0..lmax``, ``m = -l..l``."""
    lmax = _checks.integer("lmax", lmax, maximum=60)
    return _native.spherical_harmonics(np.ascontiguousarray(vectors, dtype=np.float64), lmax)
