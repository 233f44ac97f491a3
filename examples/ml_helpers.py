"""Small numpy machine-learning helpers of the examples: a PCA, ridge regression and the
multilayer perceptron ψ that :meth:`farfield.TripletFeatures.summed` can sum over triplets.

They are not part of the ``farfield`` package (which holds the descriptors, not the models that
use them); the examples and the tests import them from here (``examples/`` on ``sys.path``).
Arguments are checked with the library's own checks (``farfield._checks``), so that a bad
argument is named in the error as everywhere in farfield.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

import farfield as ff
from farfield import _checks

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

__all__ = ["PCA", "TripletMLP", "fit_pca", "fit_triplet_pca", "iter_chunks", "ridge"]


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


def fit_pca(x: FloatArray, n_components: int, *, seed: int = 0, n_iter: int = 4) -> PCA:
    """PCA of the rows of ``x`` by a randomised range finder (Halko et al.) with ``n_iter``
    power iterations: O(n × F × k) instead of a full SVD."""
    n_components = _checks.integer("n_components", n_components, minimum=1)
    seed = _checks.integer("seed", seed)
    n_iter = _checks.integer("n_iter", n_iter)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty (n, F) array, got shape {x.shape}")
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


def fit_triplet_pca(
    features: ff.TripletFeatures,
    frames: Any,
    n_components: int,
    centers: Sequence[int] | None = None,
    *,
    max_samples: int = 5_000,
    seed: int = 0,
) -> PCA:
    """Fits a PCA on (at most ``max_samples`` randomly chosen) uncompressed triplet rows of
    ``frames`` and sets it as the projection of ``features``: later ``compute`` / ``summed``
    calls return (and ψ receives) the compressed rows. Returns the PCA."""
    n_components = _checks.integer("n_components", n_components, minimum=1)
    max_samples = _checks.integer("max_samples", max_samples, minimum=1)
    seed = _checks.integer("seed", seed)
    rows = features.compute(frames, centers, compress=False).values
    if len(rows) == 0:
        raise ValueError("no triplets in the frames given to fit_triplet_pca")
    if not (1 <= n_components <= rows.shape[1]):
        raise ValueError(f"n_components must lie in 1..={rows.shape[1]}, got {n_components}")
    rng = np.random.default_rng(seed)
    if len(rows) > max_samples:
        rows = rows[rng.choice(len(rows), max_samples, replace=False)]
    pca = fit_pca(rows, n_components, seed=seed)
    features.projection = (pca.mean, pca.components)
    return pca


def _scale(x: FloatArray) -> FloatArray:
    """Per-column std, with (numerically) constant columns left unscaled."""
    std = x.std(axis=0)
    return np.where(std > 1e-9 * max(float(std.max(initial=0.0)), 1e-300), std, 1.0)


class TripletMLP:
    """A small numpy multilayer perceptron ψ: R^D → R, trained so that the sum of its outputs
    over the rows of each group (a centre's triplets, or one row per structure for a plain
    model) fits a target (an energy).

    ``tanh`` hidden layers, linear output, inputs standardised with the training statistics,
    Adam on the mean squared error of the group sums plus ``weight_decay`` × ‖W‖² (decoupled,
    AdamW-style), mini-batches of whole groups, and early stopping on a validation split of the
    groups (the weights of the best validation epoch are kept).
    Call the instance on (n, D) rows to get ψ (n,), e.g. as ``TripletFeatures.summed(psi=mlp)``.
    """

    def __init__(self, hidden: Sequence[int] = (64, 64), seed: int = 0) -> None:
        self.hidden = tuple(int(h) for h in _checks.integer_array("hidden", hidden, minimum=1))
        if not self.hidden:
            raise ValueError(f"hidden must hold positive layer sizes, got {hidden!r}")
        self.seed = _checks.integer("seed", seed)
        self.weights: list[FloatArray] = []
        self.biases: list[FloatArray] = []
        self.x_mean: FloatArray = np.zeros(0)
        self.x_scale: FloatArray = np.ones(0)
        self.y_scale = 1.0
        self.y_offset = 0.0
        #: (epoch, training loss, validation loss) per epoch of the last fit, in units of the
        #: standardised target (validation loss NaN without a validation split).
        self.history: list[tuple[int, float, float]] = []
        #: epoch whose weights were kept.
        self.best_epoch = 0

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
        n_groups = _checks.integer("n_groups", n_groups)
        groups = _checks.integer_array("groups", groups)
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
        batch_size: int | None = None,
        validation_fraction: float = 0.0,
        patience: int | None = None,
        verbose: bool = False,
    ) -> TripletMLP:
        """Trains on rows ``x`` (n, D) whose group (target index) is ``groups`` (n,).

        Args:
            epochs: passes over the training groups.
            learning_rate: Adam step size (decayed by a cosine schedule to 1/20 of it).
            weight_decay: decoupled weight decay on the weight matrices (not the biases).
            batch_size: groups per Adam step; ``None``: all training groups (full batch).
            validation_fraction: fraction of the groups held out (at random) to choose the
                epoch whose weights are kept; 0 keeps the last epoch.
            patience: stop after this many epochs without a better validation loss
                (``None``: never stop early).
        """
        epochs = _checks.integer("epochs", epochs, minimum=1)
        learning_rate = _checks.positive_float("learning_rate", learning_rate)
        weight_decay = _checks.finite_float("weight_decay", weight_decay)
        validation_fraction = _checks.finite_float("validation_fraction", validation_fraction)
        batch_size = _checks.optional_integer("batch_size", batch_size, minimum=1)
        patience = _checks.optional_integer("patience", patience)
        x = np.asarray(x, dtype=np.float64)
        groups = _checks.integer_array("groups", groups)
        targets = np.asarray(targets, dtype=np.float64)
        n_groups = len(targets)
        if x.ndim != 2 or groups.shape != (len(x),):
            raise ValueError("x must be (n, D) and groups (n,)")
        if len(x) == 0 or groups.min() < 0 or groups.max() >= n_groups:
            raise ValueError("groups must index targets")
        if not np.all(np.isfinite(x)) or not np.all(np.isfinite(targets)):
            raise ValueError("x and targets must be finite")
        if not (0.0 <= validation_fraction < 1.0):
            raise ValueError(f"validation_fraction must lie in [0, 1), got {validation_fraction}")
        if epochs < 1 or (batch_size is not None and batch_size < 1):
            raise ValueError("epochs and batch_size must be positive")
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(n_groups)
        n_val = int(round(validation_fraction * n_groups))
        if validation_fraction > 0 and not (1 <= n_val < n_groups):
            raise ValueError("validation_fraction leaves no training or no validation group")
        is_val = np.zeros(n_groups, dtype=bool)
        is_val[order[:n_val]] = True
        train_groups = order[n_val:]

        row_train = ~is_val[groups]
        self.x_mean = x[row_train].mean(axis=0)
        self.x_scale = _scale(x[row_train])
        z = (x - self.x_mean) / self.x_scale
        counts = np.bincount(groups, minlength=n_groups).astype(np.float64)
        # ψ per row = y_offset + y_scale·net: the offset carries the mean target per row
        self.y_offset = float(np.sum(targets[train_groups]) / max(np.sum(counts[train_groups]), 1))
        resid = targets - self.y_offset * counts
        self.y_scale = float(resid[train_groups].std() / max(counts.mean(), 1.0)) or 1.0
        goal = resid / self.y_scale

        sizes = [x.shape[1], *self.hidden, 1]
        self.weights = [
            rng.normal(size=(a, b)) * np.sqrt(1.0 / a)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ]
        self.biases = [np.zeros(b) for b in sizes[1:]]
        n_w = len(self.weights)
        params = self.weights + self.biases
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]

        # rows sorted by group: a batch of groups is a union of contiguous row ranges
        row_order = np.argsort(groups, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        val_rows = row_order[is_val[groups[row_order]]]
        val_ids = np.flatnonzero(is_val)

        def batch_rows(ids: IntArray) -> IntArray:
            lengths = (starts[ids + 1] - starts[ids]).astype(np.int64)
            offsets = np.repeat(starts[ids] - np.cumsum(lengths) + lengths, lengths)
            return np.asarray(row_order[offsets + np.arange(int(lengths.sum()))], np.int64)

        def loss_of(rows: IntArray, ids: IntArray) -> float:
            out, _ = self._forward(z[rows])
            pred = np.bincount(groups[rows], weights=out, minlength=n_groups)[ids]
            return float(np.mean((pred - goal[ids]) ** 2))

        per_batch = len(train_groups) if batch_size is None else int(batch_size)
        steps_per_epoch = max(1, -(-len(train_groups) // per_batch))
        total_steps = epochs * steps_per_epoch
        best = (np.inf, 0, [p.copy() for p in params])
        self.history = []
        step = 0
        for epoch in range(1, epochs + 1):
            shuffled = rng.permutation(train_groups)
            train_loss = 0.0
            for b in range(steps_per_epoch):
                ids = shuffled[b * per_batch : (b + 1) * per_batch]
                if len(ids) == 0:
                    continue
                step += 1
                rows = batch_rows(ids)
                out, acts = self._forward(z[rows])
                local = np.full(n_groups, -1, dtype=np.int64)
                local[ids] = np.arange(len(ids))
                g_local = local[groups[rows]]
                err = np.bincount(g_local, weights=out, minlength=len(ids)) - goal[ids]
                train_loss += float(np.sum(err**2))
                delta = ((2.0 / len(ids)) * err[g_local])[:, None]
                grads_w: list[FloatArray] = []
                grads_b: list[FloatArray] = []
                for k in range(n_w - 1, -1, -1):
                    grads_w.append(acts[k].T @ delta)
                    grads_b.append(delta.sum(axis=0))
                    if k > 0:
                        delta = (delta @ self.weights[k].T) * (1.0 - acts[k] ** 2)
                grads = grads_w[::-1] + grads_b[::-1]
                lr = learning_rate * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * step / total_steps)))
                for idx, (p, g, mk, vk) in enumerate(zip(params, grads, m, v, strict=True)):
                    mk *= 0.9
                    mk += 0.1 * g
                    vk *= 0.999
                    vk += 0.001 * g * g
                    update = (mk / (1 - 0.9**step)) / (np.sqrt(vk / (1 - 0.999**step)) + 1e-8)
                    if idx < n_w:
                        update = update + weight_decay * p
                    p -= lr * update
            train_loss /= max(len(train_groups), 1)
            val_loss = loss_of(val_rows, val_ids) if n_val else float("nan")
            self.history.append((epoch, train_loss, val_loss))
            score = val_loss if n_val else -epoch
            if score < best[0]:
                best = (score, epoch, [p.copy() for p in params])
            if verbose and epoch % max(epochs // 20, 1) == 0:
                print(f"epoch {epoch}: train {train_loss:.4e} validation {val_loss:.4e}")
            if patience is not None and n_val and epoch - best[1] >= patience:
                break
        for p, kept in zip(params, best[2], strict=True):
            p[...] = kept
        self.best_epoch = best[1]
        return self


def ridge(x: FloatArray, y: FloatArray, alpha: float = 1e-8) -> Callable[[FloatArray], FloatArray]:
    """Linear least squares with a bias and a ridge ``alpha`` relative to the largest squared
    singular value of the standardised inputs (SVD: O(n p min(n, p))); returns the predictor."""
    alpha = _checks.finite_float("alpha", alpha)
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
    size = _checks.integer("size", size, minimum=1)
    for start in range(0, len(items), size):
        yield items[start : start + size]
