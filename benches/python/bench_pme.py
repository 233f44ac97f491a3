"""PME benchmark: random neutral point charges at liquid density (0.1 atoms/Å^3), energy +
forces + stress, farfield PME vs farfield Ewald, torch-pme PMECalculator / P3MCalculator on CPU
and OpenMM CPU PME (each skipped when not installed). Every case runs in its own subprocess
(peak memory = that process's max RSS, Python included); times are the minimum over repeats,
with the CPU time per call (user + system, all threads) beside them because the machine may be
shared. Errors are relative RMS force errors against a tight farfield PME reference (validated
against plain Ewald to 1e-8 in the tests). Prints a markdown table and the fitted cost exponent.

torch-pme: its neighbour list (cKDTree, minimum image) is built outside the timing; the timing
covers pair vectors from (positions, cell, shifts), the calculator and the backward pass for
forces and stress (autograd on positions and cell). Its parameters come from
``torchpme.tuning.tune_pme``/``tune_p3m`` at N = 1000 (intensive quantities: smearing, mesh
spacing, cutoff, nodes), reused for every N. OpenMM returns no virial.

``--system water``: water-like boxes instead, rigid SPC/E-like molecules (O −0.8476, H +0.4238,
O–H 1 Å, H–O–H 109.47°) in random orientations at 1 g/cm³ (0.1003 atoms/Å³), oxygens on the
sites of a jittered cubic lattice (no overlapping molecules); N is rounded down to a multiple
of 3. No exclusions: all pairs interact, intramolecular ones included.

Usage: python benches/python/bench_pme.py [--sizes 1000,10000,100000] [--threads 2] [--million]
       [--system random|water]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

DENSITY = 0.1
SYSTEM = "random"
# water: 1 g/cm³ = 0.6022 / 18.015 molecules per Å³
WATER_MOLECULES_PER_A3 = 0.602214076 / 18.01528
WATER_Q_O = -0.8476


def make_system(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if SYSTEM == "water":
        return make_water(n, seed)
    rng = np.random.default_rng(seed)
    length = (n / DENSITY) ** (1 / 3)
    positions = rng.random((n, 3)) * length
    charges = rng.choice([-1.0, 1.0], size=n)
    charges -= charges.mean()
    return positions, charges, np.eye(3) * length


def make_water(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n // 3 rigid SPC/E-like waters, random orientations, 1 g/cm³, as (O, H, H) triples."""
    rng = np.random.default_rng(seed)
    m = n // 3
    length = (m / WATER_MOLECULES_PER_A3) ** (1 / 3)
    k = int(np.ceil(m ** (1 / 3)))
    spacing = length / k
    sites = rng.choice(k**3, size=m, replace=False)
    grid = np.stack(np.unravel_index(sites, (k, k, k)), axis=1).astype(float)
    oxygens = (grid + 0.5 + rng.uniform(-0.15, 0.15, size=(m, 3))) * spacing
    half = np.deg2rad(109.47) / 2
    body = np.array([[np.sin(half), 0.0, np.cos(half)], [-np.sin(half), 0.0, np.cos(half)]])
    # uniformly random rotations from unit quaternions
    quat = rng.normal(size=(m, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    w, x, y, z = quat.T
    rot = np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )
    hydrogens = oxygens[:, None, :] + np.einsum("mab,hb->mha", rot, body)
    positions = np.concatenate([oxygens[:, None, :], hydrogens], axis=1).reshape(-1, 3)
    charges = np.tile([WATER_Q_O, -WATER_Q_O / 2, -WATER_Q_O / 2], m)
    return positions % length, charges, np.eye(3) * length


def reference_forces(n: int) -> np.ndarray:
    """Tight farfield PME (validated against plain Ewald to 1e-8 in the tests), cached."""
    import os

    tag = "" if SYSTEM == "random" else f"{SYSTEM}_"
    path = f"/tmp/farfield_bench_pme_ref_{tag}{n}.npy"
    if os.path.exists(path):
        return np.load(path)
    import farfield as ff

    positions, charges, cell = make_system(n)
    s = ff.System(positions, np.ones(len(positions), dtype=np.int32), cell)
    accuracy = 1e-9 if n <= 10**5 else 1e-7
    forces = ff.pme(s, charges, accuracy=accuracy, stress=False).forces
    assert forces is not None
    np.save(path, forces)
    return forces


def rel_rms(forces: np.ndarray, reference: np.ndarray) -> float:
    return float(np.sqrt(np.mean((forces - reference) ** 2)) / np.sqrt(np.mean(reference**2)))


CPU_TIMES: list[float] = []


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, repeat: int) -> tuple[float, object]:
    out = fn()  # warm-up (also plans FFTs / tunes)
    best = float("inf")
    for _ in range(repeat):
        c = cpu_seconds()
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
        CPU_TIMES.append(cpu_seconds() - c)
    return best, out


def torchpme_case(method: str, positions, charges, cell, threads: int, repeat: int):
    import torch
    import torchpme
    from scipy.spatial import cKDTree

    torch.set_num_threads(threads)
    dtype = torch.float64
    length = cell[0, 0]
    params_path = f"/tmp/farfield_bench_torchpme_{SYSTEM}_{method}.json"
    import os

    if not os.path.exists(params_path):
        # tune once at N = 1000 (same density), reuse for every N
        p1, q1, c1 = make_system(1000)
        pos, q, cl, nbi, nbd, _ = torch_inputs(p1, q1, c1, 5.0, dtype)
        tune = torchpme.tuning.tune_p3m if method == "p3m" else torchpme.tuning.tune_pme
        cutoff = float(os.environ.get("TORCHPME_CUTOFF", "5.0"))
        pos, q, cl, nbi, nbd, _ = torch_inputs(p1, q1, c1, cutoff, dtype)
        # returns (smearing, calculator parameters, timing); the cutoff is the one given
        smearing, params, _ = tune(
            q,
            cl,
            pos,
            cutoff,
            nbi,
            nbd,
            accuracy=float(
                os.environ.get("TORCHPME_ACCURACY", "1e-4" if method == "p3m" else "1e-5")
            ),
        )
        with open(params_path, "w") as fh:
            json.dump({"smearing": smearing, "params": params, "cutoff": cutoff}, fh)
    with open(params_path) as fh:
        tuned = json.load(fh)
    cutoff = float(tuned["cutoff"])
    pos, q, cl, nbi, _, shifts = torch_inputs(positions, charges, cell, cutoff, dtype)
    potential = torchpme.CoulombPotential(smearing=float(tuned["smearing"]))
    calc_cls = torchpme.P3MCalculator if method == "p3m" else torchpme.PMECalculator
    calc = calc_cls(potential, **tuned["params"]).to(dtype=dtype)
    del length, cKDTree

    def compute():
        p = pos.detach().clone().requires_grad_(True)
        c = cl.detach().clone().requires_grad_(True)
        vec = p[nbi[:, 1]] - p[nbi[:, 0]] + shifts @ c
        dist = torch.linalg.norm(vec, dim=1)
        phi = calc(q, c, p, nbi, dist)
        energy = (q * phi).sum()
        energy.backward()
        return p.grad, c.grad

    t, out = timed(compute, repeat)
    grad = out[0]  # type: ignore[index]
    forces = -grad.detach().numpy()
    note = f"σ={tuned['smearing']:.2f} rc={cutoff:.1f} {tuned['params']}"
    return t, forces, note


def torch_inputs(positions, charges, cell, cutoff, dtype):
    """Half neighbour list by minimum image (cubic box, cutoff < L/2) as torch tensors."""
    import torch
    from scipy.spatial import cKDTree

    length = cell[0, 0]
    wrapped = positions % length
    tree = cKDTree(wrapped, boxsize=length)
    pairs = tree.query_pairs(cutoff, output_type="ndarray")
    d = wrapped[pairs[:, 1]] - wrapped[pairs[:, 0]]
    shifts = -np.round(d / length)
    vec = d + shifts * length
    pos = torch.tensor(wrapped, dtype=dtype)
    q = torch.tensor(charges, dtype=dtype).reshape(-1, 1)
    cl = torch.tensor(cell, dtype=dtype)
    nbi = torch.tensor(pairs, dtype=torch.int64)
    nbd = torch.tensor(np.linalg.norm(vec, axis=1), dtype=dtype)
    return pos, q, cl, nbi, nbd, torch.tensor(shifts, dtype=dtype)


def run_one(method: str, n: int, threads: int, accuracy: float) -> dict:
    positions, charges, cell = make_system(n)
    repeat = 5 if n <= 10**4 else (3 if n <= 10**5 else 1)
    if method in ("farfield-pme", "farfield-ewald"):
        import farfield as ff

        ff.set_num_threads(threads)
        s = ff.System(positions, np.ones(len(positions), dtype=np.int32), cell)
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
            params = ff.ewald_parameters(s, accuracy=accuracy, method="ewald")
            fixed = {k: params[k] for k in ("smearing", "cutoff", "k_cutoff")}
            t, out = timed(lambda: ff.ewald(s, charges, method="ewald", **fixed), repeat)
            note = "σ={smearing:.2f} rc={cutoff:.1f} k_c={k_cutoff:.2f}".format(**fixed)
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
        if n > 10**4 and not os.environ.get("BENCH_TORCHPME_LARGE"):
            return {"skip": "N > 1e4 takes minutes per call here; set BENCH_TORCHPME_LARGE=1"}
        kind = "p3m" if method.endswith("p3m") else "pme"
        t, forces, note = torchpme_case(kind, positions, charges, cell, threads, repeat)
    else:
        raise ValueError(method)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu = min(CPU_TIMES) if CPU_TIMES else float("nan")
    ref = reference_forces(n)
    return {
        "time": t,
        "cpu": cpu,
        "error": rel_rms(forces, ref),
        "rss_mb": rss,
        "note": note,
        "n_atoms": len(positions),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--million", action="store_true", help="add N = 1e6 (farfield PME only)")
    parser.add_argument("--threads", type=int, default=2)
    # farfield's accuracy is relative to F_0 = q²/d²; 5e-4 gives ~1e-5 relative RMS force
    # error on these systems. OpenMM's tolerance 3e-5 gives a comparable measured error.
    parser.add_argument("--accuracy", type=float, default=5e-4)
    parser.add_argument("--openmm-tolerance", type=float, default=3e-5)
    parser.add_argument(
        "--methods",
        default="farfield-pme,farfield-ewald,openmm,torch-pme-pme,torch-pme-p3m",
    )
    parser.add_argument("--system", choices=["random", "water"], default="random")
    parser.add_argument("--one", nargs=2)
    args = parser.parse_args()
    global SYSTEM
    SYSTEM = args.system
    if args.one:
        method, n = args.one
        print(json.dumps(run_one(method, int(n), args.threads, args.accuracy)))
        return
    sizes = [int(x) for x in args.sizes.split(",")]
    if args.million:
        sizes.append(10**6)
    rows = []
    if SYSTEM == "water":
        print(f"threads={args.threads}, SPC/E-like water at 1 g/cm^3 (3 atoms per molecule)\n")
    else:
        print(f"threads={args.threads}, density {DENSITY}/Å^3, random ±1 charges (neutral)\n")
    print(
        "| method | N | time (s) | CPU time (s) | rel. RMS force error | peak RSS (MiB) | notes |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        for method in args.methods.split(","):
            if n > 10**5 and method != "farfield-pme":
                continue
            if n > 10**4 and method == "farfield-ewald":
                continue
            cmd = [sys.executable, __file__, "--one", method, str(n)]
            accuracy = args.openmm_tolerance if method == "openmm" else args.accuracy
            cmd += ["--threads", str(args.threads), "--accuracy", str(accuracy)]
            cmd += ["--system", SYSTEM]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(
                    f"| {method} | {n} | failed | | | | {proc.stderr.strip().splitlines()[-1:]} |"
                )
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            if "skip" in r:
                print(f"| {method} | {n} | skipped | | | | {r['skip']} |")
                continue
            rows.append((method, n, r["time"], r["cpu"]))
            shown = r.get("n_atoms", n)
            print(
                f"| {method} | {shown} | {r['time']:.3f} | {r['cpu']:.3f} | {r['error']:.2e} "
                f"| {r['rss_mb']:.0f} "
                f"| {r['note']} |",
                flush=True,
            )
    pme = [(n, t, c) for m, n, t, c in rows if m == "farfield-pme" and n >= 10**4]
    if len(pme) >= 2:
        logn = np.log([n for n, _, _ in pme])
        slope = np.polyfit(logn, np.log([t for _, t, _ in pme]), 1)[0]
        slope_cpu = np.polyfit(logn, np.log([c for _, _, c in pme]), 1)[0]
        print(
            f"\nfarfield PME fitted cost exponent (N >= 1e4): {slope:.2f} (wall), "
            f"{slope_cpu:.2f} (CPU time)"
        )


if __name__ == "__main__":
    main()
