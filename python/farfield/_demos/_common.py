"""Shared pieces of the demonstrations: progress bars, random boxes of point charges,
per-structure feature sums, a small numpy ridge regression with k-fold cross-validation,
learning curves, tables and plots.

The ridge regression lives here, not in the package's API: farfield computes energies and
features, the models built on them belong to the user (``examples/ml_helpers.py`` holds the
helpers of the other examples).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

import farfield as ff

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
T = TypeVar("T")

#: atomic numbers of the positive and negative point charges (names only: the physics is ±1)
CATION, ANION = 11, 17
SPECIES = (CATION, ANION)


# ----------------------------------------------------------------------------- progress bars


class Bar(Protocol):
    def update(self, n: int = 1) -> Any: ...


class _Silent:
    def update(self, n: int = 1) -> None:
        return None


@contextlib.contextmanager
def progress_bar(total: int, desc: str, enabled: bool) -> Iterator[Bar]:
    """A tqdm bar on stderr when ``enabled`` and tqdm is installed, else nothing."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            with tqdm(total=total, desc=desc, leave=False, file=sys.stderr) as bar:
                yield bar
            return
    yield _Silent()


def chunked(
    function: Callable[[list[Any]], T],
    items: Sequence[Any],
    desc: str,
    enabled: bool,
    chunk: int = 64,
) -> list[T]:
    """``function`` applied to consecutive chunks of ``items`` (one batched call per chunk,
    so that a progress bar can advance), the results in order."""
    out: list[T] = []
    with progress_bar(len(items), desc, enabled) as bar:
        for start in range(0, len(items), chunk):
            part = list(items[start : start + chunk])
            out.append(function(part))
            bar.update(len(part))
    return out


class Stopwatch:
    """Wall time of named stages, printed at the end of a demonstration."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.stages: dict[str, float] = {}
        self._last = self.start

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        elapsed = now - self._last
        self.stages[name] = self.stages.get(name, 0.0) + elapsed
        self._last = now
        return elapsed

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in self.stages.items())
        return f"wall time {self.total:.1f} s ({parts}) on {ff.get_num_threads()} threads"


# ----------------------------------------------------------------------------- random boxes


def random_boxes(
    n_boxes: int,
    lengths: Sequence[float],
    rng: np.random.Generator,
    n_atoms: int = 64,
    min_distance: float = 2.5,
) -> tuple[FloatArray, FloatArray]:
    """``n_boxes`` cubic periodic boxes of ``n_atoms`` points by random sequential insertion
    with a minimum (minimum-image) distance; box ``b`` has the side ``lengths[b % len]``.

    All boxes are filled together, one atom at a time (candidates that come too close are
    redrawn), so the cost is a few numpy operations per atom. Returns positions
    (n_boxes, n_atoms, 3) and the box sides (n_boxes,).
    """
    side = np.asarray(lengths, dtype=np.float64)[np.arange(n_boxes) % len(lengths)]
    positions = np.zeros((n_boxes, n_atoms, 3))
    positions[:, 0] = rng.random((n_boxes, 3)) * side[:, None]
    for k in range(1, n_atoms):
        todo = np.arange(n_boxes)
        for _ in range(100_000):
            if len(todo) == 0:
                break
            box = side[todo, None, None]
            candidate = rng.random((len(todo), 3)) * side[todo, None]
            d = positions[todo, :k] - candidate[:, None]
            d -= box * np.round(d / box)
            ok = (d * d).sum(-1).min(axis=1) >= min_distance**2
            positions[todo[ok], k] = candidate[ok]
            todo = todo[~ok]
        else:  # pragma: no cover
            raise RuntimeError("random_boxes: the boxes are too dense for the minimum distance")
    return positions, side


def point_charge_systems(
    positions: FloatArray, sides: FloatArray
) -> tuple[list[ff.System], FloatArray]:
    """The boxes as :class:`farfield.System` s: the first half of the atoms +1 (species
    ``CATION``), the second half −1 (``ANION``). Returns the systems and the charges."""
    n = positions.shape[1]
    charges = np.where(np.arange(n) < n // 2, 1.0, -1.0)
    numbers = np.where(charges > 0, CATION, ANION).astype(np.int32)
    systems = [ff.System(p, numbers, np.eye(3) * s) for p, s in zip(positions, sides, strict=True)]
    return systems, charges


def structure_sums(
    values: npt.ArrayLike,
    system_of_atom: npt.ArrayLike,
    center_types: npt.ArrayLike,
    n_systems: int,
    species: Sequence[int] = SPECIES,
) -> FloatArray:
    """Per-structure sums of per-atom features, one block per centre species: the energy is
    extensive, so a linear model on these sums is a sum of atomic contributions that depend on
    the centre's species. ``values`` (n_atoms_total, ...) are flattened per atom; returns
    (n_systems, len(species) × n_features)."""
    v = np.asarray(values, dtype=np.float64)
    v = v.reshape(len(v), -1)
    types = np.asarray(center_types)
    which = np.searchsorted(np.asarray(species), types)
    rows = np.asarray(system_of_atom, dtype=np.int64) * len(species) + which
    out = np.zeros((n_systems * len(species), v.shape[1]))
    np.add.at(out, rows, v)
    return out.reshape(n_systems, -1)


# ----------------------------------------------------------------------------- ridge regression


def _openblas_controls() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """get/set of the number of threads of an OpenBLAS loaded in this process (numpy's
    wheels bundle one), found through /proc/self/maps; ``None`` when there is none."""
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("openblas", "")):
            get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype = ctypes.c_int
                put.argtypes = [ctypes.c_int]
                return (lambda f=get: int(f())), (lambda n, f=put: f(n))
    return None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Runs numpy's linear algebra on one thread (threadpoolctl when installed, else numpy's
    bundled OpenBLAS directly). The regressions here are small: threaded BLAS gains little on
    them and, on a loaded machine, threads that spin while waiting cost 10-100× (measured:
    a 100 × 1080 SVD took 0.03 s on one thread and 3 s on two, with other jobs running)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        controls = _openblas_controls()
        if controls is None:
            yield
            return
        get, put = controls
        before = get()
        put(1)
        try:
            yield
        finally:
            put(before)
    else:
        with threadpool_limits(limits=1, user_api="blas"):
            yield


@dataclass(frozen=True)
class Ridge:
    """A linear model ``y = ((x − mean) / scale) @ weights + offset``."""

    mean: FloatArray
    scale: FloatArray
    weights: FloatArray
    offset: float
    alpha: float

    def predict(self, x: FloatArray) -> FloatArray:
        return np.asarray(((x - self.mean) / self.scale) @ self.weights + self.offset)


def _ridge_path(x: FloatArray, y: FloatArray, alphas: FloatArray) -> tuple[Ridge, FloatArray]:
    """Ridge weights for every α at once (one SVD of the standardised features): minimises
    ‖X w − y‖² + α n ‖w‖² on columns scaled to unit variance and centred data. Returns the
    model of the first α and the (n_features, n_alphas) weights."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-12 * max(float(scale.max(initial=0.0)), 1e-300), scale, 1.0)
    xs = (x - mean) / scale
    offset = float(y.mean())
    u, s, vt = np.linalg.svd(xs, full_matrices=False)
    uy = u.T @ (y - offset)
    shrink = s[:, None] / (s[:, None] ** 2 + alphas[None, :] * len(y))
    weights = vt.T @ (shrink * uy[:, None])
    model = Ridge(mean, scale, weights[:, 0], offset, float(alphas[0]))
    return model, weights


#: the regularisation grid of the cross-validation (relative to n, on standardised features)
ALPHAS: FloatArray = np.logspace(-15, 2, 35)


def fit_ridge_cv(
    x: FloatArray,
    y: FloatArray,
    alphas: FloatArray = ALPHAS,
    folds: int = 5,
    seed: int = 0,
) -> Ridge:
    """Ridge regression with α chosen by ``folds``-fold cross-validation (lowest summed squared
    validation error over the grid ``alphas``), then refitted on all of ``x``."""
    n = len(y)
    order = np.random.default_rng(seed).permutation(n)
    error = np.zeros(len(alphas))
    for part in np.array_split(order, min(folds, n)):
        train = np.setdiff1d(order, part)
        model, weights = _ridge_path(x[train], y[train], alphas)
        xs = (x[part] - model.mean) / model.scale
        error += (((xs @ weights + model.offset) - y[part, None]) ** 2).sum(axis=0)
    best = alphas[int(np.argmin(error))]
    model, _ = _ridge_path(x, y, np.array([best]))
    return model


# ----------------------------------------------------------------------------- learning curves


@dataclass
class Curve:
    """Test errors of one feature set: RMSE / std(test energies) per training size."""

    name: str
    n_features: int
    sizes: list[int]
    relative_rmse: list[float] = field(default_factory=list)
    alphas: list[float] = field(default_factory=list)


def learning_curves(
    features: dict[str, FloatArray],
    targets: FloatArray,
    train_pool: IntArray,
    test: IntArray,
    sizes: Sequence[int],
    progress: bool,
) -> list[Curve]:
    """For every feature set and training size n: ridge with cross-validated α on the first n
    structures of ``train_pool`` (nested training sets), RMSE on ``test`` relative to the
    standard deviation of the test targets."""
    reference = float(targets[test].std())
    curves = []
    with (
        single_threaded_blas(),
        progress_bar(len(features) * len(sizes), "ridge regression", progress) as bar,
    ):
        for name, x in features.items():
            curve = Curve(name, int(x.shape[1]), list(sizes))
            for n in sizes:
                train = train_pool[:n]
                model = fit_ridge_cv(x[train], targets[train])
                error = model.predict(x[test]) - targets[test]
                curve.relative_rmse.append(float(np.sqrt(np.mean(error**2))) / reference)
                curve.alphas.append(model.alpha)
                bar.update()
            curves.append(curve)
    return curves


def curve_table(curves: Sequence[Curve]) -> str:
    """A markdown table: one row per feature set, one column per training size."""
    sizes = curves[0].sizes
    head = "| features | n features | " + " | ".join(f"n = {n}" for n in sizes) + " |"
    rule = "|---|---|" + "---|" * len(sizes)
    rows = [
        f"| {c.name} | {c.n_features} | " + " | ".join(f"{e:.2e}" for e in c.relative_rmse) + " |"
        for c in curves
    ]
    return "\n".join([head, rule, *rows])


def report_curves(
    curves: Sequence[Curve],
    target: FloatArray,
    test: Sequence[int] | npt.NDArray[Any],
    output: pathlib.Path,
    title: str,
    hlines: Sequence[float],
    digits: int,
) -> tuple[bool, float]:
    """Prints the energies' spread, the learning-curve table, and draws the curves into
    ``output/learning_curves.png``; returns whether the plot was drawn and the standard
    deviation of the test energies."""
    std = float(target[test].std())
    print(
        f"energies: mean {target.mean():.{digits}f} eV, std {target.std():.{digits}f} eV "
        f"(test set: {std:.{digits}f} eV)\n"
    )
    print("test RMSE / std(test energies), ridge regression with 5-fold cross-validated α:\n")
    print(curve_table(curves))
    print()
    plotted = plot_curves(curves, output / "learning_curves.png", title, hlines=hlines)
    return plotted, std


# ----------------------------------------------------------------------------- output


def pyplot() -> Any | None:
    """matplotlib's pyplot with the non-interactive Agg backend, or ``None`` (with a message)
    when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'farfield[plot]' or matplotlib)")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    curves: Sequence[Curve], path: pathlib.Path, title: str, hlines: Sequence[float] = ()
) -> bool:
    """Log-log learning curves (test RMSE / std against training size) into ``path``."""
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(8.6, 4.8))
    for c in curves:
        ax.loglog(c.sizes, c.relative_rmse, "o-", label=c.name)
    for y in hlines:
        ax.axhline(y, color="grey", lw=0.8, ls="--")
    sizes = sorted({n for c in curves for n in c.sizes})
    ax.set_xticks(sizes, labels=[str(n) for n in sizes])
    ax.set_xticks([], minor=True)
    ax.set_xlabel("training structures")
    ax.set_ylabel("test RMSE / std(test energies)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig: Any, path: pathlib.Path) -> bool:
    """Saves and closes a matplotlib figure of a demonstration, and says where (True)."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"plot: {path}")
    return True


def write_json(path: pathlib.Path, data: dict[str, Any]) -> None:
    """``data`` as indented JSON."""
    path.write_text(json.dumps(data, indent=2) + "\n")


def finish(output: pathlib.Path, results: dict[str, Any], clock: Stopwatch, ok: bool) -> int:
    """Writes ``results.json`` into ``output``, prints the timings and returns the exit status
    of a demonstration (0 when every check passed)."""
    write_json(output / "results.json", results)
    print(f"\n{clock.summary()}; output in {output}")
    return 0 if ok else 1


def check(claim: str, ok: bool) -> bool:
    """Prints one checked claim of a demonstration."""
    print(f"  [{'ok' if ok else 'FAILED'}] {claim}")
    return ok
