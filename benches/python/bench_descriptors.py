"""SOAP power spectrum: farfield vs featomic 0.6.7 and dscribe, 2 threads.

farfield and featomic use the same hyper-parameters (cutoff 5 Å, shifted cosine of width 0.5,
Gaussian width 0.3, GTO max_radial 5, max_angular 4, radial integrals splined to 1e-8) and give
the same numbers. dscribe's SOAP has its own GTO radial basis, normalisation and no smooth
cutoff: it runs at comparable settings (r_cut 5, n_max 6, l_max 4, sigma 0.3, rbf "gto") and is
compared on time only. dscribe has analytical gradients only for open systems; for periodic
boxes it falls back to finite differences with a dense (N, N, 3, F) output, so it is run there
for the smallest box only. Each box runs as one structure: dscribe's n_jobs splits batches
across processes, so for the molecule batch it gets n_jobs=2 and only its wall time is given.

Systems: random periodic boxes of three species at 0.05 atoms/Å³ (64, 216, 512, 4096 atoms)
and a batch of 1000 small molecules (5-12 atoms). Values alone and values + position
gradients. The machine is shared: every time is the minimum over repeats, wall and CPU (all
threads of this process). "MB/atom" is the size of the returned arrays per atom.
Run: `python benches/python/bench_descriptors.py` (set FARFIELD_BENCH_QUICK=1 to skip 4096).

A second table times the backward pass of farfield's SphericalExpansion (same hyper-parameters,
species 1/6/8): `values` (forward only), `values + gradients` (dense position and strain
gradients, what a dense VJP would contract), `backward` (SphericalExpansion.backward: dL/dr,
dL/dε, dL/dcell from a random dL/dvalues, no gradient arrays) and `values + backward` (a
training step), with featomic's values + gradients (positions and strain, what a featomic user
contracts) for comparison, and the same for farfield's PowerSpectrum (`PS`). `--backward` runs
only that table.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("RAYON_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np

import farfield as ff

try:
    import ase
except ImportError:  # pragma: no cover
    print("ase is needed for this benchmark")
    sys.exit(0)

HYP = dict(cutoff=5.0, max_radial=5, max_angular=4, smearing=0.3, cutoff_width=0.5)
SPECIES = [1, 6, 8]


def box(n: int, seed: int) -> ase.Atoms:
    rng = np.random.default_rng(seed)
    length = (n / 0.05) ** (1 / 3)
    return ase.Atoms(
        numbers=rng.choice(SPECIES, n),
        positions=rng.uniform(0, length, (n, 3)),
        cell=np.eye(3) * length,
        pbc=True,
    )


def molecules(count: int, seed: int) -> list[ase.Atoms]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n = int(rng.integers(5, 13))
        pos = rng.uniform(0, 4.0, (n, 3))
        out.append(ase.Atoms(numbers=rng.choice(SPECIES, n), positions=pos))
    return out


def best(f: Callable[[], Any], repeat: int) -> tuple[float, float, int]:
    """Minimum wall and CPU time (all threads) over `repeat` runs, and the output bytes."""
    walls, cpus = [], []
    nbytes = 0
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = f()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        nbytes = nbytes_of(out)
        del out
    return min(walls), min(cpus), nbytes


def nbytes_of(out: Any) -> int:
    if isinstance(out, ff.Descriptor):
        return out.values.nbytes + sum(g.nbytes for g in out.gradients.values())
    if isinstance(out, np.ndarray):
        return out.nbytes
    if isinstance(out, (list, tuple)):
        return sum(nbytes_of(o) for o in out)
    if hasattr(out, "blocks"):  # metatensor TensorMap
        total = 0
        for block in out.blocks():
            total += block.values.nbytes
            for _, g in block.gradients():
                total += g.values.nbytes
        return total
    return 0


def make_featomic() -> Any:
    try:
        import featomic
    except ImportError:
        return None
    return featomic.SoapPowerSpectrum(
        cutoff={
            "radius": HYP["cutoff"],
            "smoothing": {"type": "ShiftedCosine", "width": HYP["cutoff_width"]},
        },
        density={"type": "Gaussian", "width": HYP["smearing"]},
        basis={
            "type": "TensorProduct",
            "max_angular": HYP["max_angular"],
            "radial": {"type": "Gto", "max_radial": HYP["max_radial"]},
            "spline_accuracy": 1e-8,
        },
    )


def make_dscribe(periodic: bool) -> Any:
    try:
        from dscribe.descriptors import SOAP
    except ImportError:
        return None
    return SOAP(
        species=SPECIES,
        r_cut=HYP["cutoff"],
        n_max=HYP["max_radial"] + 1,
        l_max=HYP["max_angular"],
        sigma=HYP["smearing"],
        rbf="gto",
        periodic=periodic,
    )


def backward_table(sizes: tuple[int, ...]) -> None:
    expansion = ff.SphericalExpansion(**HYP, radial_accuracy=1e-8, species=SPECIES)
    power = ff.PowerSpectrum(**HYP, radial_accuracy=1e-8, species=SPECIES)
    feat = None
    try:
        import featomic

        feat = featomic.SphericalExpansion(
            cutoff={
                "radius": HYP["cutoff"],
                "smoothing": {"type": "ShiftedCosine", "width": HYP["cutoff_width"]},
            },
            density={"type": "Gaussian", "width": HYP["smearing"]},
            basis={
                "type": "TensorProduct",
                "max_angular": HYP["max_angular"],
                "radial": {"type": "Gto", "max_radial": HYP["max_radial"]},
                "spline_accuracy": 1e-8,
            },
        )
    except ImportError:
        print("featomic not installed: its column is skipped")
    cases = [(f"box {n}", [box(n, n)], 5 if n < 4096 else 3) for n in sizes]
    cases.append(("1000 molecules", molecules(1000, 0), 3))
    print()
    print(
        "| system (SphericalExpansion) | values (s) | values + gradients (s) | backward (s) "
        "| values + backward (s) | gradients MB/atom | (values + gradients) / (values + backward) "
        "| featomic values + gradients (s) | PS values + gradients (s) | PS backward (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, frames, repeat in cases:
        n_atoms = sum(len(f) for f in frames)
        values = expansion.compute(frames, progress=False).values
        g = np.random.default_rng(0).normal(size=values.shape)
        t_values, _, _ = best(lambda f=frames: expansion.compute(f, progress=False), repeat)
        t_grads, _, nbytes = best(
            lambda f=frames: expansion.compute(
                f, gradients=["positions", "strain"], progress=False
            ),
            repeat,
        )
        t_back, _, _ = best(lambda f=frames, g=g: expansion.backward(f, g), repeat)
        step = t_values + t_back
        t_feat = "n/a"
        if feat is not None:
            t_feat = "{:.4f}".format(
                best(lambda f=frames: feat.compute(f, gradients=["positions", "strain"]), repeat)[0]
            )
        ps_values = power.compute(frames, progress=False).values
        g_ps = np.random.default_rng(1).normal(size=ps_values.shape)
        t_ps_grads = best(
            lambda f=frames: power.compute(f, gradients=["positions", "strain"], progress=False),
            repeat,
        )[0]
        t_ps_back = best(lambda f=frames, g=g_ps: power.backward(f, g), repeat)[0]
        print(
            f"| {name} | {t_values:.4f} | {t_grads:.4f} | {t_back:.4f} | {step:.4f} | "
            f"{(nbytes - values.nbytes) / n_atoms / 1e6:.3f} | {t_grads / step:.1f}x | {t_feat} | "
            f"{t_ps_grads:.4f} | {t_ps_back:.4f} |",
            flush=True,
        )


def main() -> None:
    ff.set_num_threads(2)
    quick = bool(os.environ.get("FARFIELD_BENCH_QUICK"))
    if "--backward" in sys.argv:
        backward_table((64, 216, 512) if quick else (64, 216, 512, 4096))
        return
    ours = ff.PowerSpectrum(**HYP, radial_accuracy=1e-8)
    feat = make_featomic()
    if feat is None:
        print("featomic not installed: skipped")
    sizes = (64, 216, 512) if quick else (64, 216, 512, 4096)
    cases: list[tuple[str, list[ase.Atoms], int, bool]] = [
        (f"box {n}", [box(n, n)], 5 if n < 4096 else 3, True) for n in sizes
    ]
    cases.append(("1000 molecules", molecules(1000, 0), 3, False))
    print(
        "| system | gradients | code | wall (s) | CPU (s) | MB/atom "
        "| farfield speed-up (wall) | farfield speed-up (CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, frames, repeat, periodic in cases:
        n_atoms = sum(len(f) for f in frames)
        batch = len(frames) > 1
        dscribe = make_dscribe(periodic)
        for grads in ([], ["positions"]):
            label = "positions" if grads else "none"
            runs: dict[str, Callable[[], Any]] = {
                "farfield": lambda f=frames, g=grads: ours.compute(f, gradients=g, progress=False)
            }
            if feat is not None:
                runs["featomic"] = lambda f=frames, g=grads: feat.compute(f, gradients=g)
            if dscribe is not None:
                jobs = 2 if batch else 1
                target = frames if batch else frames[0]
                if not grads:
                    runs["dscribe"] = lambda t=target, j=jobs, d=dscribe: d.create(t, n_jobs=j)
                elif not periodic:
                    runs["dscribe (analytical)"] = lambda t=target, j=jobs, d=dscribe: (
                        d.derivatives(t, method="analytical", n_jobs=j)
                    )
                elif n_atoms <= 64:
                    runs["dscribe (finite diff.)"] = lambda t=target, d=dscribe: d.derivatives(
                        t, method="numerical"
                    )
            reference: tuple[float, float] | None = None
            for code, run in runs.items():
                wall, cpu, nbytes = best(run, 1 if code.startswith("dscribe (f") else repeat)
                if reference is None:
                    reference = (wall, cpu)
                    ratios = "", ""
                else:
                    ratios = f"{wall / reference[0]:.2f}x", f"{cpu / reference[1]:.2f}x"
                cpu_text = f"{cpu:.4f}"
                if code.startswith("dscribe") and batch:
                    cpu_text, ratios = "n/a (processes)", (ratios[0], "")
                print(
                    f"| {name} | {label} | {code} | {wall:.4f} | {cpu_text} | "
                    f"{nbytes / n_atoms / 1e6:.3f} | {ratios[0]} | {ratios[1]} |",
                    flush=True,
                )
    backward_table(sizes)


if __name__ == "__main__":
    main()
