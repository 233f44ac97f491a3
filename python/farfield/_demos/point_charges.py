"""Electrostatic energies of random point charges, learned by long-range and local features.

The first application of the LODE paper (Grisafi & Ceriotti, J. Chem. Phys. 151, 204105
(2019), §IV.A), reproduced with farfield alone: periodic cubic boxes of 32 + 32 point charges
±1 (minimum distance 2.5 Å, four densities), energies by farfield's Ewald sum at accuracy 1e-10,
and linear ridge models on per-structure sums of atom-centred features, one block per centre
species (charge sign), as in the paper:

* LODE ν = 1 (p = 1, l = 0): the projection of the smeared Coulomb potential of each species on
  radial functions around each atom. With the centre's species this is, up to the short-range
  part of the kernel, q_i φ_i, and E = ½ Σ q_i φ_i: the energy is linear in these features.
* LODE ν = 2 (p = 1, l ≤ 4): the coefficients with l > 0 are not rotationally invariant, so a
  linear model on sums over atoms can only use them through invariants: here the λ = 0 products
  of the LODE expansion with itself (farfield's ``LodePowerSpectrum``), quadratic in the
  potential, while the energy is linear in it (it learns, but more slowly).
* local power spectrum (SOAP, 6 Å cutoff) and local radial features (the l = 0 density
  expansion, a smooth pair-distance histogram per species pair, 6 Å): blind beyond 6 Å.
* LODE l = 0 + local radial: the local features fix the short-range difference between the
  smeared potential and 1/r, so the model is exact up to the radial basis and the regression.

Everything is computed in batches over the boxes (one farfield call per chunk of boxes).
"""

from __future__ import annotations

import pathlib
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import farfield as ff

from . import _common as c

FloatArray = c.FloatArray


@dataclass(frozen=True)
class Settings:
    n_boxes: int
    n_test: int
    sizes: tuple[int, ...]
    #: box sides (Å): number densities 0.029, 0.019, 0.012 and 0.008 Å⁻³
    lengths: tuple[float, ...] = (13.0, 15.0, 17.5, 20.0)
    seed: int = 20191104


FULL = Settings(n_boxes=1250, n_test=250, sizes=(50, 100, 200, 500, 1000))
QUICK = Settings(n_boxes=130, n_test=30, sizes=(50, 100))

#: hyper-parameters (Å) shared by the point-charge and dispersion demonstrations
LODE_SMEARING = 1.0
LODE_RADIUS = 3.0
LOCAL_CUTOFF = 6.0
LOCAL_SMEARING = 0.5


def lode_l0(exponent: float) -> ff.LodeSphericalExpansion:
    return ff.LodeSphericalExpansion(
        exponent=exponent,
        smearing=LODE_SMEARING,
        max_angular=0,
        max_radial=5,
        radius=LODE_RADIUS,
        species=c.SPECIES,
    )


def local_radial() -> ff.SphericalExpansion:
    return ff.SphericalExpansion(
        cutoff=LOCAL_CUTOFF,
        max_radial=9,
        max_angular=0,
        smearing=LOCAL_SMEARING,
        species=list(c.SPECIES),
    )


def lode_sums(
    calc: ff.LodeSphericalExpansion, systems: Sequence[ff.System], desc: str, progress: bool
) -> FloatArray:
    """Per-structure, per-centre-species sums of LODE coefficients."""

    def batch(chunk: list[ff.System]) -> FloatArray:
        r = calc.compute(chunk)
        return c.structure_sums(r.values, r.samples[:, 0], r.center_types, len(chunk))

    return np.concatenate(c.chunked(batch, systems, desc, progress))


def descriptor_sums(
    compute: Callable[[list[ff.System]], ff.Descriptor],
    systems: Sequence[ff.System],
    desc: str,
    progress: bool,
) -> FloatArray:
    """Per-structure, per-centre-species sums of a :class:`farfield.Descriptor`'s rows."""

    def batch(chunk: list[ff.System]) -> FloatArray:
        d = compute(chunk)
        return c.structure_sums(d.values, d.samples[:, 0], d.samples[:, 2], len(chunk))

    return np.concatenate(c.chunked(batch, systems, desc, progress))


def boxes(settings: Settings, progress: bool) -> tuple[list[ff.System], FloatArray]:
    """The random boxes and their charges."""
    rng = np.random.default_rng(settings.seed)
    positions, sides = c.random_boxes(settings.n_boxes, settings.lengths, rng)
    return c.point_charge_systems(positions, sides)


def energies(
    systems: Sequence[ff.System],
    charges: FloatArray,
    exponent: float,
    desc: str,
    progress: bool,
    prefactor: float = ff.units.EV_ANGSTROM,
) -> FloatArray:
    """Ewald energies (accuracy 1e-10) of every box."""
    calc = ff.Coulomb(exponent=exponent, accuracy=1e-10, method="ewald", prefactor=prefactor)
    out = np.empty(len(systems))
    with c.progress_bar(len(systems), desc, progress) as bar:
        for k, system in enumerate(systems):
            out[k] = calc.compute(system, charges).energy
            bar.update()
    return out


def split(settings: Settings) -> tuple[c.IntArray, c.IntArray]:
    """Held-out test boxes and the pool of training boxes (nested training sets)."""
    order = np.random.default_rng(settings.seed + 1).permutation(settings.n_boxes)
    return order[settings.n_test :], order[: settings.n_test]


def main(*, quick: bool, output: pathlib.Path, progress: bool) -> int:
    settings = QUICK if quick else FULL
    clock = c.Stopwatch()
    print(
        f"farfield {ff.__version__} ({ff.get_num_threads()} threads): electrostatic energies of "
        f"random point charges (LODE paper, §IV.A)\n"
        f"{settings.n_boxes} periodic boxes of 32 + 32 charges ±1, minimum distance 2.5 Å, "
        f"sides {', '.join(f'{s:g}' for s in settings.lengths)} Å; "
        f"{settings.n_test} test boxes\n"
    )
    systems, charges = boxes(settings, progress)
    clock.lap("boxes")
    target = energies(systems, charges, 1.0, "Ewald energies", progress)
    clock.lap("energies")

    features: dict[str, FloatArray] = {}
    features["LODE l=0"] = lode_sums(lode_l0(1.0), systems, "LODE l=0", progress)
    lode4 = ff.LodeSphericalExpansion(
        exponent=1.0,
        smearing=LODE_SMEARING,
        max_angular=4,
        max_radial=3,
        radius=LODE_RADIUS,
        species=c.SPECIES,
    )
    features["LODE ν=2, l≤4"] = descriptor_sums(
        ff.LodePowerSpectrum(lode4).compute, systems, "LODE ν=2, l≤4", progress
    )
    soap = ff.PowerSpectrum(
        cutoff=LOCAL_CUTOFF,
        max_radial=5,
        max_angular=4,
        smearing=LOCAL_SMEARING,
        species=list(c.SPECIES),
    )
    features["local power spectrum"] = descriptor_sums(
        lambda s: soap.compute(s, progress=False), systems, "power spectrum", progress
    )
    radial = local_radial()
    features["local radial"] = descriptor_sums(
        lambda s: radial.compute(s, progress=False), systems, "local radial", progress
    )
    features["LODE l=0 + local radial"] = np.hstack(
        [features["LODE l=0"], features["local radial"]]
    )
    clock.lap("features")

    pool, test = split(settings)
    curves = c.learning_curves(features, target, pool, test, settings.sizes, progress)
    clock.lap("regression")

    plotted, std = c.report_curves(
        curves,
        target,
        test,
        output,
        f"Coulomb energy of {settings.n_boxes} random ±1 boxes (64 atoms)",
        hlines=(0.01, 0.1),
        digits=3,
    )
    by_name = {curve.name: curve for curve in curves}
    last = {name: curve.relative_rmse[-1] for name, curve in by_name.items()}
    text = (
        f"At n = {settings.sizes[-1]}: LODE l=0 alone reaches {last['LODE l=0']:.1e}, since "
        "E = ½ Σ q_i φ_i is linear in the potential it expands; with the local radial features, "
        "which absorb the short-range difference between the smeared and the bare 1/r, "
        f"{last['LODE l=0 + local radial']:.1e}. The local power spectrum "
        f"({last['local power spectrum']:.2f}) and the local radial features "
        f"({last['local radial']:.2f}) see nothing beyond {LOCAL_CUTOFF:g} Å, where much of "
        "the energy of random charges comes from."
    )
    print("\n" + textwrap.fill(text, 100))
    print("\nchecks:")
    ok = c.check(
        "LODE l=0 + local radial features: relative RMSE below 1e-3 (far below 1%) at "
        f"n = {settings.sizes[-1]}",
        by_name["LODE l=0 + local radial"].relative_rmse[-1] < 1e-3,
    )
    ok &= c.check(
        "local power spectrum alone: relative RMSE above 10% at every training size",
        min(by_name["local power spectrum"].relative_rmse) > 0.1,
    )
    results: dict[str, Any] = {
        "demo": "point-charges",
        "quick": quick,
        "settings": {
            "n_boxes": settings.n_boxes,
            "n_test": settings.n_test,
            "box_sides": list(settings.lengths),
            "test_std_eV": std,
        },
        "curves": [vars(curve) for curve in curves],
        "plot": "learning_curves.png" if plotted else None,
        "checks_passed": bool(ok),
        "seconds": clock.stages,
    }
    return c.finish(output, results, clock, ok)
