"""SOAP power spectrum: farfield vs featomic (and dscribe when installed), 2 threads.

Same hyper-parameters on both sides (cutoff 5 Å, shifted cosine 0.5, Gaussian width 0.3,
GTO max_radial 5, max_angular 4, splined radial integrals at 1e-8), random periodic boxes of
three species at 0.05 atoms/Å³ and a batch of 1000 small molecules. Prints a markdown table:
best of N wall times, speed-up, and output bytes per atom.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np

import farfield as ff

try:
    import ase
except ImportError:  # pragma: no cover
    print("ase is needed for this benchmark")
    sys.exit(0)

HYP = dict(cutoff=5.0, max_radial=5, max_angular=4, smearing=0.3, width=0.5)


def box(n: int, seed: int) -> ase.Atoms:
    rng = np.random.default_rng(seed)
    length = (n / 0.05) ** (1 / 3)
    return ase.Atoms(
        numbers=rng.choice([1, 6, 8], n),
        positions=rng.uniform(0, length, (n, 3)),
        cell=np.eye(3) * length,
        pbc=True,
    )


def molecules(count: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n = int(rng.integers(5, 13))
        pos = rng.uniform(0, 4.0, (n, 3))
        out.append(ase.Atoms(numbers=rng.choice([1, 6, 8], n), positions=pos))
    return out


def best(f, repeat: int) -> tuple[float, float]:
    """Best wall time of `repeat` runs, and the CPU time (all threads) of that run."""
    times = []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        f()
        times.append((time.perf_counter() - t, time.process_time() - c))
    return min(times)


def main() -> None:
    ff.set_num_threads(2)
    ours = ff.PowerSpectrum(**HYP, radial_accuracy=1e-8)
    peers = {}
    try:
        import featomic

        peers["featomic"] = featomic.SoapPowerSpectrum(
            cutoff={
                "radius": HYP["cutoff"],
                "smoothing": {"type": "ShiftedCosine", "width": HYP["width"]},
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
        print("featomic not installed: farfield timings only")
    cases = [(f"box {n}", [box(n, n)], 3 if n < 4096 else 1) for n in (64, 216, 512, 4096)]
    cases.append(("1000 molecules", molecules(1000, 0), 2))
    print(
        "| system | gradients | farfield wall (s) | featomic wall (s) | speed-up (wall) "
        "| farfield CPU (s) | featomic CPU (s) | speed-up (CPU) | farfield MB/atom |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, frames, repeat in cases:
        n_atoms = sum(len(f) for f in frames)
        for grads in ([], ["positions"]):
            if grads and name == "box 4096" and not os.environ.get("FARFIELD_BENCH_BIG"):
                # dense gradients of 4096 atoms take ~3 GB per code: opt in
                print(f"| {name} | positions | skipped (FARFIELD_BENCH_BIG=1) | | | | | | |")
                continue
            result = ours.compute(frames, gradients=grads, progress=False)
            nbytes = result.values.nbytes + sum(g.nbytes for g in result.gradients.values())
            del result
            t_ours = best(
                lambda f=frames, g=grads: ours.compute(f, gradients=g, progress=False), repeat
            )
            t_peer = (float("nan"), float("nan"))
            if "featomic" in peers:
                t_peer = best(
                    lambda f=frames, g=grads: peers["featomic"].compute(f, gradients=g), repeat
                )
            label = "positions" if grads else "none"
            print(
                f"| {name} | {label} | {t_ours[0]:.3f} | {t_peer[0]:.3f} | "
                f"{t_peer[0] / t_ours[0]:.2f}x | {t_ours[1]:.3f} | {t_peer[1]:.3f} | "
                f"{t_peer[1] / t_ours[1]:.2f}x | {nbytes / n_atoms / 1e6:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
