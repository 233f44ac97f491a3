"""Triplet descriptors (Nigam et al., arXiv 2302.14770) and the bispectrum.

For a centre *i* with neighbours *j* (every atom or periodic image strictly inside ``cutoff``,
the centre itself excluded), :class:`TripletFeatures` returns one row per ordered neighbour pair
``(j1, j2)`` — **``j1 = j2`` included**, so a centre with *M* neighbours has *M²* rows — holding
the invariants ``|ρ_i ⊗ g_ij1 ⊗ g_ij2; λ = 0⟩`` of both parities. Columns are labelled
``(a1, a2, a3, l1, l2, l3, n1, n2, n3)``: ``a1, a2`` the species of ``j1, j2``, ``a3`` the species
channel of the density ρ_i, parity ``σ = (−1)^(l1+l2+l3)`` (σ = −1 columns change sign under a
reflection). A centre with no neighbour has no triplet (its summed descriptor is zero); one with
a single neighbour has one (``j1 = j2``); neither is an error.

:class:`Bispectrum` computes ``|ρ_i ⊗ ρ_i ⊗ ρ_i; 0⟩`` with the same columns: the sum of a centre's
triplet rows equals its bispectrum, which is why a linear ψ cannot do better than ν = 3.

:meth:`TripletFeatures.summed` streams ``Σ_{j1,j2} ψ(row)`` over every centre without holding a
data set's triplets: ``psi="linear"`` in Rust, or any callable ``(n, F) → (n, k)`` (for instance a
:class:`TripletMLP`) applied chunk by chunk. :meth:`TripletFeatures.fit_pca` fits a PCA on a
sample of triplets; later calls return (and ψ receives) the compressed rows.

The local expansion is SOAP's: ``g_ij[n, l, m] = f_c(r_ij) I_nl(r_ij) Y_lm(r̂_ij)``, the
Gaussian atomic density of std ``smearing`` on ``max_radial`` GTO radial functions (featomic's
GTOs with radius = cutoff; featomic's ``max_radial`` is ours minus one), real spherical harmonics
in featomic's convention, and a shifted-cosine switch of width ``cutoff_width``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from . import _native
from .system import System, as_system

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Psi = Union[str, Callable[[FloatArray], Any]]  # noqa: UP007 (py3.10 runtime alias)

__all__ = ["PCA", "Bispectrum", "TripletDescriptor", "TripletFeatures", "TripletMLP"]

PROPERTY_NAMES = ("a1", "a2", "a3", "l1", "l2", "l3", "n1", "n2", "n3")


@dataclass(frozen=True)
class TripletDescriptor:
    """Labelled features: ``values[k]`` belongs to sample ``samples[k]`` (named by
    ``sample_names``); column ``c`` is ``properties[c]`` (named by ``property_names``).

    Extra per-sample information lives in ``info`` (e.g. ``n_neighbours`` per centre).
    """

    values: FloatArray
    samples: IntArray
    sample_names: tuple[str, ...]
    properties: npt.NDArray[np.int32]
    property_names: tuple[str, ...]
    info: dict[str, npt.NDArray[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class PCA:
    """A principal-component projection ``y = (x − mean) @ components``."""

    mean: FloatArray
    components: FloatArray
    explained_variance: FloatArray

    @property
    def n_components(self) -> int:
        return int(self.components.shape[1])

    def transform(self, x: FloatArray) -> FloatArray:
        return np.asarray((x - self.mean) @ self.components, dtype=np.float64)


def _frames(frames: Any) -> list[System]:
    if isinstance(frames, System) or hasattr(frames, "positions"):
        return [as_system(frames)]
    return [as_system(f) for f in frames]


class _Expansion:
    def __init__(
        self,
        cutoff: float = 2.0,
        *,
        max_radial: int = 6,
        max_angular: int = 3,
        smearing: float = 0.2,
        cutoff_width: float = 0.1,
        species: Sequence[int] | None = None,
    ) -> None:
        for name, value in (("max_radial", max_radial), ("max_angular", max_angular)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"invalid {name}: must be a non-negative integer, got {value!r}")
        self.cutoff = float(cutoff)
        self.max_radial = int(max_radial)
        self.max_angular = int(max_angular)
        self.smearing = float(smearing)
        self.cutoff_width = float(cutoff_width)
        self.species = None if species is None else [int(s) for s in species]
        # validate now (the same checks the core runs), with a dummy species list if needed
        _native.triplet_feature_labels(self.max_radial, self.max_angular, self.species or [1])
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

    def _species(self, systems: list[System]) -> list[int]:
        if self.species is not None:
            return self.species
        found = sorted({int(z) for s in systems for z in s.numbers})
        return found or [1]

    def _args(self, species: list[int]) -> tuple[float, float, int, int, float, list[int]]:
        return (
            self.cutoff,
            self.cutoff_width,
            self.max_radial,
            self.max_angular,
            self.smearing,
            species,
        )

    def _labels(self, species: list[int]) -> npt.NDArray[np.int32]:
        return np.asarray(
            _native.triplet_feature_labels(self.max_radial, self.max_angular, species),
            dtype=np.int32,
        )

    def pair_expansion(self, frame: Any, centre: int) -> tuple[IntArray, FloatArray]:
        """The pair expansions ``g_ij`` of one centre: neighbour indices (M,) and coefficients
        (M, max_radial, (max_angular + 1)²) in the (l, m = −l..l) order."""
        system = as_system(frame)
        species = self._species([system])
        js, g = _native.pair_expansion(system._arrays(), int(centre), *self._args(species))
        return np.asarray(js), np.asarray(g)


def clebsch_gordan_product(a: FloatArray, b: FloatArray, l1: int, l2: int, lam: int) -> FloatArray:
    """The real Clebsch–Gordan product ``|a ⊗ b; λ⟩[n1, n2, μ]`` of two expansions of shape
    (n, (l_max + 1)²): the equivariant intermediate block of the triplet construction."""
    return np.asarray(
        _native.clebsch_gordan_product(
            np.ascontiguousarray(a, dtype=np.float64),
            np.ascontiguousarray(b, dtype=np.float64),
            int(l1),
            int(l2),
            int(lam),
        )
    )


class TripletFeatures(_Expansion):
    """Triplet features ``|ρ_i ⊗ g_ij1 ⊗ g_ij2; λ=0, σ=±1⟩`` for every ordered neighbour pair.

    Args:
        cutoff: neighbour cutoff (Å), > 0.
        max_radial: number of GTO radial functions (1..30).
        max_angular: largest l (and λ) (0..8).
        smearing: std σ of the Gaussian atomic density, in (0, cutoff].
        cutoff_width: width of the shifted-cosine switch, in [0, cutoff].
        species: atomic numbers of the species channels; default: those in the frames given to
            each call (pass them explicitly to get the same columns across calls). An atom of
            another species raises ``ValueError``.

    Defaults follow the B8 study of the paper (cutoff 2 Å, width 0.1, 6 radial, l_max 3, σ 0.2).
    """

    def __init__(self, cutoff: float = 2.0, **kwargs: Any) -> None:
        super().__init__(cutoff, **kwargs)
        self.pca: PCA | None = None

    def compute(
        self, frames: Any, centres: Sequence[int] | None = None, *, compress: bool = True
    ) -> TripletDescriptor:
        """Triplet rows of every centre (or of ``centres``, the same indices in each frame),
        samples ``(structure, centre, j1, j2)``. With a fitted PCA and ``compress=True`` the
        columns are the principal components."""
        systems = _frames(frames)
        species = self._species(systems)
        proj = None
        if compress and self.pca is not None:
            proj = (self.pca.mean, np.ascontiguousarray(self.pca.components))
        samples, values = _native.triplet_features(
            [s._arrays() for s in systems],
            *self._args(species),
            None if centres is None else [int(c) for c in centres],
            proj,
        )
        if proj is None:
            properties = self._labels(species)
            names: tuple[str, ...] = PROPERTY_NAMES
        else:
            properties = np.arange(values.shape[1], dtype=np.int32)[:, None]
            names = ("component",)
        return TripletDescriptor(
            values=np.asarray(values),
            samples=np.asarray(samples),
            sample_names=("structure", "centre", "j1", "j2"),
            properties=properties,
            property_names=names,
        )

    def fit_pca(
        self,
        frames: Any,
        n_components: int,
        centres: Sequence[int] | None = None,
        *,
        max_samples: int = 5_000,
        seed: int = 0,
    ) -> PCA:
        """Fits a PCA on (at most ``max_samples`` randomly chosen) triplet rows of ``frames``
        and keeps it: later :meth:`compute` / :meth:`summed` calls return compressed rows."""
        self.pca = None
        rows = self.compute(frames, centres).values
        if len(rows) == 0:
            raise ValueError("no triplets in the frames given to fit_pca")
        if not (1 <= n_components <= rows.shape[1]):
            raise ValueError(f"n_components must lie in 1..={rows.shape[1]}, got {n_components}")
        rng = np.random.default_rng(seed)
        if len(rows) > max_samples:
            rows = rows[rng.choice(len(rows), max_samples, replace=False)]
        self.pca = fit_pca(rows, n_components, seed=seed)
        return self.pca

    def summed(
        self,
        frames: Any,
        psi: Psi = "linear",
        centres: Sequence[int] | None = None,
        *,
        chunk_size: int = 256,
    ) -> TripletDescriptor:
        """``Σ_{j1,j2} ψ(row)`` for every centre, samples ``(structure, centre)``.

        ``psi="linear"`` sums the (compressed) rows in Rust without storing any triplet — equal
        to the bispectrum for uncompressed rows. A callable receives (n, F) rows (compressed if a
        PCA is fitted) and returns (n,) or (n, k); frames are processed ``chunk_size`` at a time
        so that only one chunk's triplets are alive.
        """
        systems = _frames(frames)
        species = self._species(systems)
        if isinstance(psi, str):
            if psi != "linear":
                raise ValueError(f"psi must be 'linear' or a callable, got {psi!r}")
            proj = None
            if self.pca is not None:
                proj = (self.pca.mean, np.ascontiguousarray(self.pca.components))
            samples, counts, values = _native.triplet_summed(
                [s._arrays() for s in systems],
                *self._args(species),
                None if centres is None else [int(c) for c in centres],
                proj,
            )
            properties = (
                self._labels(species)
                if proj is None
                else np.arange(values.shape[1], dtype=np.int32)[:, None]
            )
            return TripletDescriptor(
                values=np.asarray(values),
                samples=np.asarray(samples),
                sample_names=("structure", "centre"),
                properties=properties,
                property_names=PROPERTY_NAMES if proj is None else ("component",),
                info={"n_neighbours": np.asarray(counts)},
            )
        if not callable(psi):
            raise ValueError(f"psi must be 'linear' or a callable, got {type(psi).__name__}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        keep = self.species
        self.species = species
        try:
            out_samples: list[IntArray] = []
            out_values: list[FloatArray] = []
            counts_all: list[IntArray] = []
            for start in range(0, len(systems), chunk_size):
                chunk = systems[start : start + chunk_size]
                result = self.compute(chunk, centres)
                centre_rows = _centre_rows(len(chunk), chunk, centres)
                centre_rows[:, 0] += start
                values = np.asarray(psi(result.values), dtype=np.float64)
                if values.ndim == 1:
                    values = values[:, None]
                if values.ndim != 2 or values.shape[0] != len(result):
                    raise ValueError(
                        f"psi must return (n,) or (n, k) for n = {len(result)} rows, got "
                        f"shape {values.shape}"
                    )
                keys = result.samples[:, :2] + np.array([start, 0], dtype=np.int64)
                index = _group_index(keys, centre_rows)
                sums = np.zeros((len(centre_rows), values.shape[1]))
                np.add.at(sums, index, values)
                counts = np.bincount(index, minlength=len(centre_rows))
                out_samples.append(centre_rows)
                out_values.append(sums)
                counts_all.append(np.sqrt(counts).round().astype(np.int64))
        finally:
            self.species = keep
        values = np.concatenate(out_values) if out_values else np.zeros((0, 1))
        return TripletDescriptor(
            values=values,
            samples=np.concatenate(out_samples) if out_samples else np.zeros((0, 2), np.int64),
            sample_names=("structure", "centre"),
            properties=np.arange(values.shape[1], dtype=np.int32)[:, None],
            property_names=("psi",),
            info={"n_neighbours": np.concatenate(counts_all) if counts_all else np.zeros(0)},
        )


def fit_pca(x: FloatArray, n_components: int, *, seed: int = 0, n_iter: int = 4) -> PCA:
    """PCA of the rows of ``x`` by a randomised range finder (Halko et al.) with ``n_iter``
    power iterations: O(n × F × k) instead of a full SVD."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    c = x - mean
    k = min(n_components + 10, *c.shape)
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(c @ rng.normal(size=(c.shape[1], k)))
    for _ in range(n_iter):
        q, _ = np.linalg.qr(c.T @ q)
        q, _ = np.linalg.qr(c @ q)
    _, s, vt = np.linalg.svd(q.T @ c, full_matrices=False)
    variance = s**2 / max(len(x) - 1, 1)
    return PCA(
        mean=mean,
        components=np.ascontiguousarray(vt[:n_components].T),
        explained_variance=variance[:n_components],
    )


def _scale(x: FloatArray) -> FloatArray:
    """Per-column std, with (numerically) constant columns left unscaled."""
    std = x.std(axis=0)
    return np.where(std > 1e-9 * max(float(std.max(initial=0.0)), 1e-300), std, 1.0)


def _centre_rows(n: int, systems: list[System], centres: Sequence[int] | None) -> IntArray:
    rows = []
    for s, system in enumerate(systems[:n]):
        for c in range(len(system)) if centres is None else centres:
            rows.append((s, int(c)))
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


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

    def compute(self, frames: Any, centres: Sequence[int] | None = None) -> TripletDescriptor:
        """One row per ``(structure, centre)``."""
        systems = _frames(frames)
        species = self._species(systems)
        samples, counts, values = _native.bispectrum(
            [s._arrays() for s in systems],
            *self._args(species),
            None if centres is None else [int(c) for c in centres],
        )
        return TripletDescriptor(
            values=np.asarray(values),
            samples=np.asarray(samples),
            sample_names=("structure", "centre"),
            properties=self._labels(species),
            property_names=PROPERTY_NAMES,
            info={"n_neighbours": np.asarray(counts)},
        )


class TripletMLP:
    """A small numpy multilayer perceptron ψ: R^D → R, trained so that the sum of its outputs
    over the rows of each group (a centre's triplets, or one row per structure for a plain
    model) fits a target (an energy).

    ``tanh`` hidden layers, linear output, inputs standardised with the training statistics,
    full-batch Adam on the mean squared error plus ``weight_decay`` × ‖W‖².
    Call the instance on (n, D) rows to get ψ (n,), e.g. as ``TripletFeatures.summed(psi=mlp)``.
    """

    def __init__(self, hidden: Sequence[int] = (64, 64), seed: int = 0) -> None:
        self.hidden = tuple(int(h) for h in hidden)
        self.seed = seed
        self.weights: list[FloatArray] = []
        self.biases: list[FloatArray] = []
        self.x_mean: FloatArray = np.zeros(0)
        self.x_scale: FloatArray = np.ones(0)
        self.y_scale = 1.0
        self.y_offset = 0.0

    def _forward(self, x: FloatArray) -> tuple[FloatArray, list[FloatArray]]:
        acts = [x]
        h = x
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if k < len(self.weights) - 1:
                h = np.tanh(h)
            acts.append(h)
        return h[:, 0], acts

    def __call__(self, x: FloatArray) -> FloatArray:
        if not self.weights:
            raise ValueError("TripletMLP is not trained: call fit() first")
        z = (np.asarray(x, dtype=np.float64) - self.x_mean) / self.x_scale
        out, _ = self._forward(z)
        return np.asarray(out * self.y_scale + self.y_offset, dtype=np.float64)

    def predict(self, x: FloatArray, groups: IntArray, n_groups: int) -> FloatArray:
        """Σ of ψ over the rows of each group."""
        return np.asarray(np.bincount(groups, weights=self(x), minlength=n_groups), np.float64)

    def fit(
        self,
        x: FloatArray,
        groups: IntArray,
        targets: FloatArray,
        *,
        epochs: int = 2000,
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-6,
        verbose: bool = False,
    ) -> TripletMLP:
        """Trains on rows ``x`` (n, D) whose group (target index) is ``groups`` (n,)."""
        x = np.asarray(x, dtype=np.float64)
        groups = np.asarray(groups, dtype=np.int64)
        targets = np.asarray(targets, dtype=np.float64)
        n_groups = len(targets)
        if x.ndim != 2 or groups.shape != (len(x),):
            raise ValueError("x must be (n, D) and groups (n,)")
        if groups.min() < 0 or groups.max() >= n_groups:
            raise ValueError("groups must index targets")
        rng = np.random.default_rng(self.seed)
        self.x_mean = x.mean(axis=0)
        self.x_scale = _scale(x)
        z = (x - self.x_mean) / self.x_scale
        counts = np.bincount(groups, minlength=n_groups).astype(np.float64)
        # ψ per row = y_offset + y_scale·net: the offset carries the mean target per row
        self.y_offset = float(np.sum(targets) / np.sum(counts))
        resid = targets - self.y_offset * counts
        self.y_scale = float(resid.std() / max(counts.mean(), 1.0)) or 1.0
        sizes = [x.shape[1], *self.hidden, 1]
        self.weights = [
            rng.normal(size=(a, b)) * np.sqrt(1.0 / a)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ]
        self.biases = [np.zeros(b) for b in sizes[1:]]
        params = self.weights + self.biases
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        goal = resid / self.y_scale
        for step in range(1, epochs + 1):
            out, acts = self._forward(z)
            pred = np.bincount(groups, weights=out, minlength=n_groups)
            err = pred - goal
            loss = float(np.mean(err**2))
            grad_out = (2.0 / n_groups) * err[groups]
            grads_w: list[FloatArray] = []
            grads_b: list[FloatArray] = []
            delta = grad_out[:, None]
            for k in range(len(self.weights) - 1, -1, -1):
                grads_w.append(acts[k].T @ delta + 2 * weight_decay * self.weights[k])
                grads_b.append(delta.sum(axis=0))
                if k > 0:
                    delta = (delta @ self.weights[k].T) * (1.0 - acts[k] ** 2)
            grads = grads_w[::-1] + grads_b[::-1]
            for p, g, mk, vk in zip(params, grads, m, v, strict=True):
                mk *= 0.9
                mk += 0.1 * g
                vk *= 0.999
                vk += 0.001 * g * g
                p -= (
                    learning_rate
                    * (mk / (1 - 0.9**step))
                    / (np.sqrt(vk / (1 - 0.999**step)) + 1e-8)
                )
            if verbose and step % max(epochs // 10, 1) == 0:
                print(f"epoch {step}: loss {loss:.4e}")
        return self


def ridge(x: FloatArray, y: FloatArray, alpha: float = 1e-8) -> Callable[[FloatArray], FloatArray]:
    """Linear least squares with a bias and a ridge ``alpha`` relative to the largest squared
    singular value of the standardised inputs (SVD: O(n p min(n, p))); returns the predictor."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mean, scale = x.mean(axis=0), _scale(x)
    z = (x - mean) / scale
    y_mean = float(y.mean())
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    lam = alpha * (s[0] ** 2 if len(s) else 1.0)
    w = vt.T @ ((s / (s**2 + lam)) * (u.T @ (y - y_mean)))

    def predict(xn: FloatArray) -> FloatArray:
        zn = (np.asarray(xn, dtype=np.float64) - mean) / scale
        return np.asarray(zn @ w + y_mean, dtype=np.float64)

    return predict


def iter_chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """Consecutive chunks of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
