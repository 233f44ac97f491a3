"""MD-step benchmark: ``farfield.ase.EwaldCalculator`` against OpenMM CPU PME at equal error.

Random ±1 charges (neutral, as in ``bench_coulomb.py``) at 0.1 atoms/Å³ (rock-salt density) in a
cubic box, 1000 and 10⁴ atoms. An "MD step" moves every atom by 0.01 Å in a random direction
(a random walk: no integrator, so no short-range repulsion is needed to keep anything stable)
and evaluates energy + forces:

* farfield: ``atoms.positions = x; atoms.get_forces()`` with one ``EwaldCalculator`` kept for
  the whole trajectory (it tunes at the first step and reuses the parameters; note that it
  always computes the stress of a periodic system, OpenMM computes no virial);
* OpenMM 8 CPU platform: ``NonbondedForce`` with PME, charges only (sigma 1 nm, epsilon 0, no
  LJ, no exclusions, no dispersion correction), ``context.setPositions(x / 10)`` and
  ``context.getState(getEnergy=True, getForces=True)``.

Both run with the same number of threads (``ff.set_num_threads`` / the CPU platform's
``Threads``). The steps of the two codes are interleaved (the machine may be shared); the time
per step is the median over the timed steps after warm-up steps, with the CPU time per step
(user + system, all threads) beside it.

Errors are relative RMS force errors sqrt(<|F - F_ref|²>) / sqrt(<|F_ref|²>) on the first
frame, against farfield Ewald at accuracy 1e-10. That reference is first checked against
OpenMM's double-precision Reference platform (plain Ewald, tolerance 1e-10) at N = 1000, which
also checks the units (OpenMM: kJ/mol/nm; farfield: e²/Å², eV/Å). Each code's knob is then
scanned (farfield: ``accuracy``; OpenMM: ``ewaldErrorTolerance`` and the real-space cutoff) and
the cheapest setting whose measured error is at most the target is timed, so both sit at about
the same measured error. OpenMM's CPU platform computes in single precision: its error has a
floor (~2e-5 at N = 1e4), below which a target is reported as out of reach.

A second table splits farfield's step: the ASE step, ``Coulomb.compute`` on a ``System``
(no ASE), the native sum with the same parameters given explicitly (``stress`` on and off), and
OpenMM's ``getState`` without ``setPositions``.

Usage: ``python benches/python/bench_md.py [--sizes 1000,10000] [--targets 1e-4,3e-5]
[--steps 10] [--threads 2] [--quick]``. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

# numpy's BLAS threads spin after each call and would take the cores from the codes timed
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402

import farfield as ff  # noqa: E402
from farfield import _native  # noqa: E402
from farfield.ase import EwaldCalculator  # noqa: E402
from farfield.units import EV_ANGSTROM, KJ_MOL_ANGSTROM  # noqa: E402

try:
    import openmm
    import openmm.unit as openmm_unit
except ImportError:  # pragma: no cover
    openmm = None

DENSITY = 0.1
STEP = 0.01  # Å per atom per step
REFERENCE_ACCURACY = 1e-10
# kJ/mol/nm -> e²/Å²: / 10 (per Å) / (e²/(4πε0) in kJ/mol·Å)
OPENMM_FORCE = 1.0 / (10.0 * KJ_MOL_ANGSTROM)


def random_box(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    length = (n / DENSITY) ** (1 / 3)
    charges = rng.choice([-1.0, 1.0], n)
    charges -= charges.mean()
    return rng.random((n, 3)) * length, charges, np.eye(3) * length


def trajectory(positions: np.ndarray, steps: int, seed: int = 1) -> list[np.ndarray]:
    """``steps`` frames after ``positions``, each atom moving STEP Å in a random direction."""
    rng = np.random.default_rng(seed)
    frames = [positions]
    for _ in range(steps):
        d = rng.normal(size=positions.shape)
        d *= STEP / np.linalg.norm(d, axis=1, keepdims=True)
        frames.append(frames[-1] + d)
    return frames


def rel_rms(forces: np.ndarray, reference: np.ndarray) -> float:
    return float(np.sqrt(np.mean((forces - reference) ** 2) / np.mean(reference**2)))


def reference_forces(positions: np.ndarray, charges: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """farfield Ewald at accuracy 1e-10 (Gaussian units), cached in /tmp."""
    path = f"/tmp/farfield_bench_md_ref_{len(positions)}.npy"
    if os.path.exists(path):
        return np.load(path)
    system = ff.System(positions, np.ones(len(positions), dtype=np.int32), cell)
    out = ff.ewald(
        system,
        charges,
        accuracy=REFERENCE_ACCURACY,
        method="ewald",
        stress=False,
        potentials=False,
    )
    forces = np.asarray(out.forces)
    np.save(path, forces)
    return forces


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --- OpenMM -------------------------------------------------------------------------------


def openmm_context(
    charges: np.ndarray,
    cell: np.ndarray,
    tolerance: float,
    cutoff_nm: float,
    threads: int,
    platform: str = "CPU",
    method: str = "PME",
) -> Any:
    length = cell[0, 0] / 10.0  # nm
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(
        openmm.Vec3(length, 0, 0), openmm.Vec3(0, length, 0), openmm.Vec3(0, 0, length)
    )
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(getattr(openmm.NonbondedForce, method))
    nb.setCutoffDistance(cutoff_nm)
    nb.setEwaldErrorTolerance(tolerance)
    nb.setUseDispersionCorrection(False)
    nb.setUseSwitchingFunction(False)
    for q in charges:
        system.addParticle(1.0)
        nb.addParticle(float(q), 1.0, 0.0)
    system.addForce(nb)
    properties = {"Threads": str(threads)} if platform == "CPU" else {}
    return openmm.Context(
        system,
        openmm.VerletIntegrator(0.001),
        openmm.Platform.getPlatformByName(platform),
        properties,
    )


def openmm_forces(context: Any, positions: np.ndarray) -> np.ndarray:
    """Forces in e²/Å² (Gaussian units) at ``positions`` (Å)."""
    context.setPositions(positions / 10.0)
    state = context.getState(getEnergy=True, getForces=True)
    f = state.getForces(asNumpy=True).value_in_unit(
        openmm_unit.kilojoule_per_mole / openmm_unit.nanometer
    )
    return np.asarray(f) * OPENMM_FORCE


def validate_reference(n: int = 1000) -> str:
    """farfield's reference against OpenMM's double-precision Ewald (Reference platform)."""
    positions, charges, cell = random_box(n)
    reference = reference_forces(positions, charges, cell)
    length = cell[0, 0] / 10.0
    context = openmm_context(
        charges, cell, 1e-10, 0.499 * length, 1, platform="Reference", method="Ewald"
    )
    forces = openmm_forces(context, positions)
    state = context.getState(getEnergy=True)
    e_openmm = state.getPotentialEnergy().value_in_unit(openmm_unit.kilojoule_per_mole)
    system = ff.System(positions, np.ones(n, dtype=np.int32), cell)
    e_ff = ff.ewald(
        system,
        charges,
        accuracy=REFERENCE_ACCURACY,
        method="ewald",
        prefactor=KJ_MOL_ANGSTROM,
        forces=False,
        stress=False,
        potentials=False,
    ).energy
    return (
        f"reference check (N = {n}): farfield Ewald 1e-10 vs OpenMM Reference-platform Ewald "
        f"1e-10: relative RMS force difference {rel_rms(forces, reference):.2e}, relative "
        f"energy difference {abs(e_openmm - e_ff) / abs(e_ff):.2e}"
    )


# --- tuning to a measured error -------------------------------------------------------------


def farfield_calculator(charges: np.ndarray, accuracy: float) -> EwaldCalculator:
    return EwaldCalculator(charges=charges, accuracy=accuracy)


def make_atoms(positions: np.ndarray, cell: np.ndarray) -> Atoms:
    return Atoms(
        numbers=np.ones(len(positions), dtype=int), positions=positions, cell=cell, pbc=True
    )


def farfield_error(positions, charges, cell, reference, accuracy: float) -> tuple[float, dict]:
    atoms = make_atoms(positions, cell)
    atoms.calc = farfield_calculator(charges, accuracy)
    forces = atoms.get_forces() / EV_ANGSTROM
    return rel_rms(forces, reference), dict(atoms.calc.parameters_used)


def pick_farfield(positions, charges, cell, reference, target: float) -> tuple[float, float, dict]:
    """Largest accuracy on a log grid (×1.5 steps from 1e-1) whose measured error ≤ target."""
    accuracy = 0.1
    while accuracy > 1e-12:
        error, parameters = farfield_error(positions, charges, cell, reference, accuracy)
        if error <= target:
            return accuracy, error, parameters
        accuracy /= 1.5
    raise RuntimeError("no farfield accuracy reaches the target")


def median_step_time(fn: Callable[[], Any], repeat: int = 5) -> float:
    return median_times(fn, repeat)[0]


def median_times(fn: Callable[[], Any], repeat: int = 5) -> tuple[float, float]:
    """Median wall and median CPU time (user + system, all threads) of ``repeat`` calls after
    one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        c, t = cpu_seconds(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(cpu_seconds() - c)
    return statistics.median(walls), statistics.median(cpus)


def pick_openmm(
    positions, charges, cell, reference, target: float, threads: int, cutoffs: list[float]
) -> tuple[float, float, float] | None:
    """For each cutoff, the largest tolerance on a log grid whose measured error ≤ target; of
    these (tolerance, cutoff) the fastest. Returns (tolerance, cutoff_nm, error) or None."""
    length = cell[0, 0] / 10.0
    candidates = []
    for cutoff in cutoffs:
        if cutoff >= 0.5 * length:
            continue
        tolerance = 1e-2
        while tolerance > 1e-8:
            context = openmm_context(charges, cell, tolerance, cutoff, threads)
            error = rel_rms(openmm_forces(context, positions), reference)
            if error <= target:
                t = median_step_time(lambda c=context: openmm_forces(c, positions))
                candidates.append((t, tolerance, cutoff, error))
                break
            tolerance /= 2.0
    if not candidates:
        return None
    _, tolerance, cutoff, error = min(candidates)
    return tolerance, cutoff, error


# --- the trajectory --------------------------------------------------------------------------


def run_case(n: int, target: float, threads: int, steps: int, warmup: int, cutoffs: list[float]):
    positions, charges, cell = random_box(n)
    reference = reference_forces(positions, charges, cell)
    accuracy, ff_error, parameters = pick_farfield(positions, charges, cell, reference, target)
    picked = None
    if openmm is not None:
        picked = pick_openmm(positions, charges, cell, reference, target, threads, cutoffs)

    frames = trajectory(positions, warmup + steps)
    atoms = make_atoms(positions, cell)
    calc = farfield_calculator(charges, accuracy)
    atoms.calc = calc
    context = None
    if picked is not None:
        context = openmm_context(charges, cell, picked[0], picked[1], threads)
    ff_wall, ff_cpu, mm_wall, mm_cpu = [], [], [], []
    for k, x in enumerate(frames):
        c, t = cpu_seconds(), time.perf_counter()
        atoms.positions = x
        atoms.get_forces()
        wall, cpu = time.perf_counter() - t, cpu_seconds() - c
        if k >= warmup:
            ff_wall.append(wall)
            ff_cpu.append(cpu)
        if context is not None:
            c, t = cpu_seconds(), time.perf_counter()
            context.setPositions(x / 10.0)
            context.getState(getEnergy=True, getForces=True)
            wall, cpu = time.perf_counter() - t, cpu_seconds() - c
            if k >= warmup:
                mm_wall.append(wall)
                mm_cpu.append(cpu)
    assert calc.coulomb.tunings == 1, calc.coulomb.tunings
    med = statistics.median
    p = parameters
    if p["method"] == "pme":
        note = f"PME σ={p['smearing']:.2f} rc={p['cutoff']:.2f} mesh={tuple(p['mesh'])} "
        note += f"order={p['order']}"
    else:
        note = f"{p['method']} σ={p['smearing']:.2f} rc={p['cutoff']:.2f} kc={p['k_cutoff']:.2f}"
    rows = [
        f"| {n} | {target:g} | farfield | accuracy={accuracy:.3g} ({note}) | {ff_error:.2e} | "
        f"{med(ff_wall) * 1e3:.2f} | {med(ff_cpu) * 1e3:.2f} |"
    ]
    if picked is None:
        why = "not installed" if openmm is None else "target below its error floor"
        rows.append(f"| {n} | {target:g} | OpenMM | {why} | | | |")
        ratio = float("nan")
    else:
        tolerance, cutoff, error = picked
        rows.append(
            f"| {n} | {target:g} | OpenMM | tolerance={tolerance:.3g} rc={cutoff * 10:.1f} Å | "
            f"{error:.2e} | {med(mm_wall) * 1e3:.2f} | {med(mm_cpu) * 1e3:.2f} |"
        )
        ratio = med(ff_wall) / med(mm_wall)
    breakdown = breakdown_row(n, positions, charges, cell, accuracy, calc, context, threads)
    return rows, ratio, breakdown


def breakdown_row(n, positions, charges, cell, accuracy, calc, context, threads) -> str:
    """Where farfield's step goes: ASE step, Coulomb.compute on a System, the native sum with
    explicit parameters (stress on/off); OpenMM getState alone."""
    frames = trajectory(positions, 8, seed=2)
    atoms = make_atoms(positions, cell)
    atoms.calc = farfield_calculator(charges, accuracy)
    atoms.get_forces()
    it = iter(range(10**9))

    def ase_step() -> None:
        atoms.positions = frames[next(it) % len(frames)]
        atoms.get_forces()

    system = ff.System(positions, np.ones(n, dtype=np.int32), cell)
    coulomb = calc.coulomb
    chosen = coulomb.parameters_for(system)
    keys = ("smearing", "cutoff", "k_cutoff", "mesh", "order")
    explicit = {k: chosen[k] for k in keys if k in chosen}
    arrays = system._arrays()

    def native(stress: bool) -> Callable[[], Any]:
        return lambda: _native.coulomb_compute(
            arrays, charges, 1.0, chosen["method"], potentials=False, stress=stress, **explicit
        )

    def real_space() -> Any:
        # the same sum on a mesh of 2 x order points per side: ~ its real-space part alone
        small = dict(explicit, mesh=(2 * chosen["order"],) * 3)
        return _native.coulomb_compute(
            arrays, charges, 1.0, "pme", potentials=False, stress=False, **small
        )

    def convert() -> None:
        ff.System.from_ase(atoms)

    nan = (float("nan"), float("nan"))
    times = [
        median_times(ase_step, 9),
        median_times(lambda: coulomb.compute(system, charges, potentials=False), 9),
        median_times(native(True), 9),
        median_times(native(False), 9),
        median_times(real_space, 9) if chosen["method"] == "pme" else nan,
        median_times(convert, 9),
    ]
    if context is not None:
        times.append(median_times(lambda: context.getState(getEnergy=True, getForces=True), 9))
    else:
        times.append(nan)
    cells = " | ".join(f"{w * 1e3:.2f} / {c * 1e3:.2f}" for w, c in times)
    return f"| {n} | {accuracy:.3g} | {cells} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--targets", default="1e-4,3e-5")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--openmm-cutoffs", default="0.7,0.8,0.9,1.0", help="nm")
    parser.add_argument("--no-check", action="store_true", help="skip the reference check")
    parser.add_argument("--quick", action="store_true", help="N = 1000, one target, 3 steps")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.targets, args.steps, args.warmup = "1000", "1e-4", 3, 1
    ff.set_num_threads(args.threads)
    print(
        f"threads: {ff.get_num_threads()} (farfield), {args.threads} (OpenMM CPU platform); "
        f"OpenMM {openmm.__version__ if openmm else 'not installed'}; "
        f"load average {os.getloadavg()[0]:.1f}\n"
    )
    if openmm is not None and not args.no_check:
        print(validate_reference() + "\n", flush=True)
    cutoffs = [float(c) for c in args.openmm_cutoffs.split(",")]
    header = (
        "| N | target | code | settings | rel. RMS force error | time/step (ms) "
        "| CPU/step (ms) |\n|---|---|---|---|---|---|---|"
    )
    print(header, flush=True)
    ratios, breakdowns = [], []
    for n in (int(s) for s in args.sizes.split(",")):
        for target in (float(t) for t in args.targets.split(",")):
            rows, ratio, breakdown = run_case(
                n, target, args.threads, args.steps, args.warmup, cutoffs
            )
            print("\n".join(rows), flush=True)
            ratios.append((n, target, ratio))
            breakdowns.append(breakdown)
    print("\n| N | target | farfield / OpenMM (time per step) |\n|---|---|---|")
    for n, target, ratio in ratios:
        print(f"| {n} | {target:g} | {ratio:.2f} |")
    print(
        "\nfarfield step breakdown (median wall / median CPU ms, all threads): ASE step "
        "(positions set + get_forces), Coulomb.compute on a System (forces + stress), native "
        "sum with explicit parameters "
        "(forces + stress; forces only; forces only on a 2·order mesh, i.e. ~ the real-space "
        "part), System.from_ase; OpenMM getState alone (no setPositions)\n"
    )
    print(
        "| N | accuracy | ASE step | Coulomb.compute | native (stress) | native (no stress) "
        "| native real space | from_ase | OpenMM getState |\n|---|---|---|---|---|---|---|---|---|"
    )
    print("\n".join(breakdowns))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
