"""Environments the power spectrum and the bispectrum cannot tell apart, and triplet features
that can (Pozdnyakov et al., PRL 125, 166001 (2020); Nigam et al., arXiv 2302.14770).

For each pair of structures (``farfield.structures``: the B8± pair of the B8 data set, random
B± pairs, planar homometric pairs and CH4-like pairs) the centre atom's features are compared
by their relative distance ‖f₊ − f₋‖ / max(‖f₊‖, ‖f₋‖):

* power spectrum (ν = 2, ``ff.PowerSpectrum``): equal for every pair here;
* bispectrum (ν = 3, ``ff.Bispectrum``): equal for B±, different for the planar/CH4 pairs;
* triplets summed linearly (Σ over neighbour pairs of the rows, ``TripletFeatures.summed``):
  the bispectrum again, so equal for B±;
* triplets summed through a nonlinear ψ (a fixed random tanh layer of 64 units): the sum of a
  nonlinear function of the rows sees the multiset of triplets, not only its mean, and tells
  every pair apart.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np

import farfield as ff

from . import _common as c

FloatArray = c.FloatArray

#: hyper-parameters of the three calculators (Å): every neighbour of the centres lies within
SETTINGS: dict[str, Any] = {"cutoff": 2.6, "max_radial": 3, "max_angular": 3, "smearing": 0.3}
COLUMNS = ("power spectrum", "bispectrum", "triplets, linear sum", "triplets, tanh sum")
#: a relative distance below this is "equal" (round-off), above DISTINCT "different"
EQUAL, DISTINCT = 1e-10, 1e-5


def _pairs(quick: bool) -> list[tuple[str, Any, Any]]:
    from farfield import structures

    seeds = range(1) if quick else range(3)
    out: list[tuple[str, Any, Any]] = [("B8± (first B8 pair)", *structures.b8_pair())]
    out += [(f"B± (seed {s})", *structures.bpm_pair(seed=s)) for s in seeds]
    out += [(f"planar (seed {s})", *structures.planar_homometric_pair(seed=s)) for s in seeds]
    out += [(f"CH4-like (seed {s})", *structures.ch4_pair(seed=s)) for s in seeds]
    return out


def _distance(a: FloatArray, b: FloatArray) -> float:
    scale = max(float(np.linalg.norm(a)), float(np.linalg.norm(b)), 1e-300)
    return float(np.linalg.norm(a - b)) / scale


def _distances(plus: Any, minus: Any, seed: int) -> list[float]:
    species = sorted({int(z) for z in plus.numbers})
    ps = ff.PowerSpectrum(species=species, cutoff_width=0.5, **SETTINGS)
    bis = ff.Bispectrum(species=species, **SETTINGS)
    tf = ff.TripletFeatures(species=species, **SETTINGS)
    frames = [plus, minus]
    power = ps.compute(frames, progress=False)
    rows_of_centre = power.samples[:, 1] == 0
    p_plus, p_minus = power.values[rows_of_centre]
    b_plus, b_minus = bis.compute(frames, centers=[0]).values
    l_plus, l_minus = tf.summed(frames, centers=[0]).values
    rows = tf.compute(frames, centers=[0]).values
    rng = np.random.default_rng(seed)
    # pre-activations of order 1: a strongly nonlinear ψ
    weights = rng.normal(size=(rows.shape[1], 64)) / np.linalg.norm(rows, axis=1).max()
    psi: Callable[[FloatArray], FloatArray] = lambda x: np.tanh(2.0 * x @ weights)  # noqa: E731
    t_plus, t_minus = tf.summed(frames, psi=psi, centers=[0]).values
    return [
        _distance(p_plus, p_minus),
        _distance(b_plus, b_minus),
        _distance(l_plus, l_minus),
        _distance(t_plus, t_minus),
    ]


def _plot(names: list[str], table: FloatArray, pair: tuple[Any, Any], path: pathlib.Path) -> bool:
    plt = c.pyplot()
    if plt is None:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 4.6), width_ratios=(1, 2))
    for atoms, marker, label in ((pair[0], "o", "B8+"), (pair[1], "x", "B8−")):
        xyz = np.asarray(atoms.positions)
        left.scatter(xyz[1:, 0], xyz[1:, 2], marker=marker, s=60, label=label)
    left.scatter([0.0], [0.0], c="k", s=80, label="centre")
    left.set_xlabel("x (Å)")
    left.set_ylabel("z (Å)")
    left.set_aspect("equal")
    left.set_title("B8± (x–z projection): the axial atom at ±z", fontsize=9)
    left.legend(fontsize=8)
    floor = 1e-17
    x = np.arange(len(names))
    width = 0.8 / len(COLUMNS)
    for k, column in enumerate(COLUMNS):
        right.bar(x + (k - 1.5) * width, np.maximum(table[:, k], floor), width, label=column)
    right.set_yscale("log")
    right.set_ylim(floor, 10.0)
    right.axhline(EQUAL, color="grey", lw=0.8, ls="--")
    right.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    right.set_ylabel("relative feature distance of the pair")
    right.set_title("centre-atom features of degenerate pairs (dashed: 1e-10)", fontsize=9)
    right.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return c.save_figure(fig, path)


def main(*, quick: bool, output: pathlib.Path, progress: bool) -> int:
    clock = c.Stopwatch()
    print(
        f"farfield {ff.__version__}: structures that the power spectrum (ν=2) and the bispectrum "
        "(ν=3) cannot tell apart,\nand the triplet features that can (relative distance "
        "‖f+ − f−‖ / max ‖f±‖ of the centre atom's features)\n"
    )
    pairs = _pairs(quick)
    names: list[str] = []
    rows: list[list[float]] = []
    with c.progress_bar(len(pairs), "pairs", progress) as bar:
        for k, (name, plus, minus) in enumerate(pairs):
            names.append(name)
            rows.append(_distances(plus, minus, seed=k))
            bar.update()
    table = np.array(rows)
    clock.lap("features")
    print("| pair | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for name, row in zip(names, table, strict=True):
        print(f"| {name} | " + " | ".join(f"{v:.1e}" for v in row) + " |")
    print()
    plotted = _plot(names, table, pairs[0][1:], output / "degenerate_pairs.png")
    bpm = np.array([n.startswith("B") for n in names])
    print("\nchecks:")
    ok = c.check(
        f"power spectrum equal (< {EQUAL:g}) for every pair", bool((table[:, 0] < EQUAL).all())
    )
    ok &= c.check(
        f"bispectrum and linear triplet sum equal for the B± pairs (< {EQUAL:g}), different "
        f"(> {DISTINCT:g}) for the planar and CH4-like pairs",
        bool((table[bpm, 1:3] < EQUAL).all() and (table[~bpm, 1:3] > DISTINCT).all()),
    )
    ok &= c.check(
        f"triplets through a nonlinear ψ tell every pair apart (> {DISTINCT:g})",
        bool((table[:, 3] > DISTINCT).all()),
    )
    results: dict[str, Any] = {
        "demo": "degenerate",
        "quick": quick,
        "settings": SETTINGS,
        "columns": list(COLUMNS),
        "pairs": {name: list(map(float, row)) for name, row in zip(names, table, strict=True)},
        "plot": "degenerate_pairs.png" if plotted else None,
        "checks_passed": bool(ok),
        "seconds": clock.stages,
    }
    return c.finish(output, results, clock, ok)
