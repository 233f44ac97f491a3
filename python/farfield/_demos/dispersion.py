"""A 1/r⁶ (dispersion-like) energy of the point-charge boxes, learned by LODE features of the
matching exponent p = 6 and of the Coulomb exponent p = 1.

The boxes of the point-charge demonstration, labelled with E = −Σ_{i<j} C_ij / r_ij⁶ summed
over all periodic images (farfield's Ewald sum with exponent 6, accuracy 1e-10) with
geometric-mean coefficients C_ij = √(C_i C_j), C = 10 eV·Å⁶ for one species and 60 eV·Å⁶ for
the other. A 1/r⁶ sum converges fast, but the part beyond a local cutoff still varies from box
to box; LODE with p = 6 has the same asymptotics as the target, LODE with p = 1 does not.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

import farfield as ff

from . import _common as c
from . import point_charges as pc

FloatArray = c.FloatArray

#: dispersion coefficients C_i (eV·Å⁶) of the two species
C6 = {c.CATION: 10.0, c.ANION: 60.0}


def main(*, quick: bool, output: pathlib.Path, progress: bool) -> int:
    settings = pc.QUICK if quick else pc.FULL
    clock = c.Stopwatch()
    print(
        f"farfield {ff.__version__} ({ff.get_num_threads()} threads): a 1/r^6 energy of random "
        f"boxes\n{settings.n_boxes} periodic boxes of 64 atoms (the point-charge boxes), "
        f"E = -sum C_ij / r^6 with C_ij = sqrt(C_i C_j), C = {C6[c.CATION]:g} and "
        f"{C6[c.ANION]:g} eV Å^6; {settings.n_test} test boxes\n"
    )
    systems, charges = pc.boxes(settings, progress)
    weights = np.sqrt(np.where(charges > 0, C6[c.CATION], C6[c.ANION]))
    clock.lap("boxes")
    target = -pc.energies(systems, weights, 6.0, "Ewald energies (p=6)", progress, prefactor=1.0)
    clock.lap("energies")

    radial = pc.local_radial()
    local = pc.descriptor_sums(
        lambda s: radial.compute(s, progress=False), systems, "local radial", progress
    )
    lode1 = pc.lode_sums(pc.lode_l0(1.0), systems, "LODE p=1", progress)
    lode6 = pc.lode_sums(pc.lode_l0(6.0), systems, "LODE p=6", progress)
    features = {
        "local radial": local,
        "LODE p=1, l=0": lode1,
        "LODE p=6, l=0": lode6,
        "LODE p=1, l=0 + local radial": np.hstack([lode1, local]),
        "LODE p=6, l=0 + local radial": np.hstack([lode6, local]),
    }
    clock.lap("features")
    pool, test = pc.split(settings)
    curves = c.learning_curves(features, target, pool, test, settings.sizes, progress)
    clock.lap("regression")

    plotted, std = c.report_curves(
        curves,
        target,
        test,
        output,
        f"1/r⁶ energy of {settings.n_boxes} random boxes (64 atoms)",
        hlines=(0.01,),
        digits=4,
    )
    by_name = {curve.name: curve for curve in curves}
    p1 = by_name["LODE p=1, l=0 + local radial"].relative_rmse[-1]
    p6 = by_name["LODE p=6, l=0 + local radial"].relative_rmse[-1]
    print("\nchecks:")
    ok = c.check(
        f"with local radial features, LODE p=6 beats LODE p=1 at n = {settings.sizes[-1]} "
        f"({p6:.1e} < {p1:.1e})",
        p6 < p1,
    )
    a1 = by_name["LODE p=1, l=0"].relative_rmse[-1]
    a6 = by_name["LODE p=6, l=0"].relative_rmse[-1]
    ok &= c.check(f"alone, LODE p=6 beats LODE p=1 ({a6:.1e} < {a1:.1e})", a6 < a1)
    results: dict[str, Any] = {
        "demo": "dispersion",
        "quick": quick,
        "settings": {"n_boxes": settings.n_boxes, "n_test": settings.n_test, "C6_eV_A6": C6},
        "test_std_eV": std,
        "curves": [vars(curve) for curve in curves],
        "plot": "learning_curves.png" if plotted else None,
        "checks_passed": bool(ok),
        "seconds": clock.stages,
    }
    return c.finish(output, results, clock, ok)
