"""PME benchmark: random neutral point charges at liquid density (0.1 atoms/Å^3), energy +
forces + stress, farfield PME vs farfield Ewald (when its Python API is present), torch-pme
PME/P3M and OpenMM CPU PME when installed. Every case runs in its own subprocess (peak memory
= that process's max RSS, Python included). Prints a markdown table and the fitted cost
exponent. Usage: python benches/python/bench_pme.py [--sizes 1000,10000,100000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

DENSITY = 0.1


def make_system(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    length = (n / DENSITY) ** (1 / 3)
    positions = rng.random((n, 3)) * length
    charges = rng.choice([-1.0, 1.0], size=n)
    charges -= charges.mean()
    return positions, charges, np.eye(3) * length


def reference_forces(n: int) -> np.ndarray:
    """Tight farfield PME (validated against plain Ewald to 1e-8 in the tests), cached."""
    import os

    path = f"/tmp/farfield_bench_pme_ref_{n}.npy"
    if os.path.exists(path):
        return np.load(path)
    import farfield as ff

    positions, charges, cell = make_system(n)
    s = ff.System(positions, np.ones(n, dtype=np.int32), cell)
    forces = ff.pme(s, charges, accuracy=1e-9, stress=False).forces
    assert forces is not None
    np.save(path, forces)
    return forces


def rel_rms(forces: np.ndarray, reference: np.ndarray) -> float:
    return float(np.sqrt(np.mean((forces - reference) ** 2)) / np.sqrt(np.mean(reference**2)))


def timed(fn, repeat: int) -> tuple[float, object]:
    out = fn()  # warm-up (also plans FFTs / tunes)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run_one(method: str, n: int, threads: int, accuracy: float) -> dict:
    positions, charges, cell = make_system(n)
    repeat = 3 if n <= 10**4 else 1
    if method in ("farfield-pme", "farfield-ewald"):
        import farfield as ff

        ff.set_num_threads(threads)
        s = ff.System(positions, np.ones(n, dtype=np.int32), cell)
        if method == "farfield-pme":
            params = ff.pme(s, charges, accuracy=accuracy).parameters
            fixed = dict(
                smearing=params.smearing,
                cutoff=params.cutoff,
                mesh=params.mesh,
                order=params.order,
            )
            t, out = timed(lambda: ff.pme(s, charges, **fixed), repeat)
            note = f"σ={params.smearing:.2f} rc={params.cutoff:.1f} mesh={params.mesh}"
            note += f" order={params.order}"
        else:
            if not hasattr(ff, "ewald"):
                return {"skip": "ff.ewald not available on this branch"}
            t, out = timed(lambda: ff.ewald(s, charges, accuracy=accuracy), repeat)
            note = ""
        forces = np.asarray(out.forces)  # type: ignore[attr-defined]
    elif method == "openmm":
        try:
            import openmm
            import openmm.unit as u
        except ImportError:
            return {"skip": "openmm not installed"}
        system = openmm.System()
        length = cell[0, 0] / 10.0  # nm
        system.setDefaultPeriodicBoxVectors(
            openmm.Vec3(length, 0, 0), openmm.Vec3(0, length, 0), openmm.Vec3(0, 0, length)
        )
        nb = openmm.NonbondedForce()
        nb.setNonbondedMethod(openmm.NonbondedForce.PME)
        nb.setCutoffDistance(min(1.0, 0.49 * length))
        nb.setEwaldErrorTolerance(accuracy)
        for q in charges:
            system.addParticle(1.0)
            nb.addParticle(float(q), 0.1, 0.0)
        system.addForce(nb)
        platform = openmm.Platform.getPlatformByName("CPU")
        ctx = openmm.Context(
            system, openmm.VerletIntegrator(0.001), platform, {"Threads": str(threads)}
        )
        ctx.setPositions(positions / 10.0)

        def compute():
            return ctx.getState(getEnergy=True, getForces=True)

        t, state = timed(compute, repeat)
        # kJ/mol/nm -> Gaussian units (e²/Å²)
        f = state.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer)  # type: ignore[attr-defined]
        forces = np.asarray(f) / 10.0 / 1389.3545764438197
        note = f"ewaldErrorTolerance={accuracy:g} (no virial)"
    elif method.startswith("torch-pme"):
        try:
            import torch
            import torchpme
        except ImportError:
            return {"skip": "torch-pme not installed"}
        del torch, torchpme
        return {"skip": "torch-pme harness not written (torch not installable here)"}
    else:
        raise ValueError(method)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ref = reference_forces(n)
    return {"time": t, "error": rel_rms(forces, ref), "rss_mb": rss, "note": note}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--threads", type=int, default=2)
    # farfield's accuracy is relative to F_0 = q²/d²; 1e-3 gives ~1.5e-5 relative RMS force
    # error on these systems. OpenMM's tolerance 5e-5 gives a comparable measured error.
    parser.add_argument("--accuracy", type=float, default=1e-3)
    parser.add_argument("--openmm-tolerance", type=float, default=5e-5)
    parser.add_argument("--methods", default="farfield-pme,farfield-ewald,openmm,torch-pme-pme")
    parser.add_argument("--one", nargs=2)
    args = parser.parse_args()
    if args.one:
        method, n = args.one
        print(json.dumps(run_one(method, int(n), args.threads, args.accuracy)))
        return
    sizes = [int(x) for x in args.sizes.split(",")]
    rows = []
    print(f"threads={args.threads}, density {DENSITY}/Å^3, random ±1 charges (neutral)\n")
    print("| method | N | time (s) | rel. RMS force error | peak RSS (MiB) | notes |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        for method in args.methods.split(","):
            cmd = [sys.executable, __file__, "--one", method, str(n)]
            accuracy = args.openmm_tolerance if method == "openmm" else args.accuracy
            cmd += ["--threads", str(args.threads), "--accuracy", str(accuracy)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"| {method} | {n} | failed | | | {proc.stderr.strip().splitlines()[-1:]} |")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            if "skip" in r:
                print(f"| {method} | {n} | skipped | | | {r['skip']} |")
                continue
            rows.append((method, n, r["time"]))
            print(
                f"| {method} | {n} | {r['time']:.3f} | {r['error']:.2e} | {r['rss_mb']:.0f} "
                f"| {r['note']} |",
                flush=True,
            )
    pme = [(n, t) for m, n, t in rows if m == "farfield-pme" and n >= 10**4]
    if len(pme) >= 2:
        slope = np.polyfit(np.log([n for n, _ in pme]), np.log([t for _, t in pme]), 1)[0]
        print(f"\nfarfield PME fitted cost exponent (N >= 1e4): {slope:.2f}")


if __name__ == "__main__":
    main()
