"""Coulomb calculator benchmark: what tuning costs, once and per call.

Random ±1 charges (neutral) at 0.1 atoms/Å³ in a cubic box. For each N it times, best of a
few repeats, forces + stress:

* ``one-shot``: ``ff.ewald(...)``, which tunes (method and parameters) on every call;
* ``repeated``: ``Coulomb.compute`` on a calculator that has already tuned for this cell;
* ``sum``: the native sum with the same parameters given explicitly (no tuning at all);
* ``tune``: ``Coulomb.parameters_for`` on a fresh calculator (system conversion included).

and the ratios one-shot/sum and repeated/sum (targets of issue #16: ≤ 1.3 and ≤ 1.1).
``--crossover`` also prints Ewald and PME wall times side by side with the method "auto"
picks. Usage: ``python bench_coulomb.py [--accuracy 1e-6] [--sizes 1000,10000,100000]
[--crossover]``. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import farfield as ff
from farfield import _native


def random_box(n: int, seed: int = 0) -> tuple[ff.System, np.ndarray]:
    rng = np.random.default_rng(seed)
    length = (n / 0.1) ** (1 / 3)
    charges = rng.choice([-1.0, 1.0], n)
    charges -= charges.mean()
    cell = np.eye(3) * length
    return ff.System(rng.random((n, 3)) * length, np.ones(n, dtype=np.int32), cell), charges


def best_time(f: Callable[[], Any], repeat: int) -> float:
    f()
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


def fixed_sum(system: ff.System, q: np.ndarray, parameters: dict[str, Any]) -> Callable[[], Any]:
    keys = ("smearing", "cutoff", "k_cutoff", "mesh", "order")
    explicit = {k: parameters[k] for k in keys if k in parameters}
    arrays = system._arrays()

    def run() -> Any:
        return _native.coulomb_compute(arrays, q, 1.0, parameters["method"], **explicit)

    return run


def row(n: int, accuracy: float) -> str:
    system, q = random_box(n)
    repeat = 5 if n <= 10_000 else 3
    calc = ff.Coulomb(accuracy=accuracy)
    parameters = calc.parameters_for(system)
    tune = best_time(lambda: ff.Coulomb(accuracy=accuracy).parameters_for(system), 5)
    one_shot = best_time(lambda: ff.ewald(system, q, accuracy=accuracy, potentials=False), repeat)
    repeated = best_time(lambda: calc.compute(system, q), repeat)
    plain = best_time(fixed_sum(system, q, parameters), repeat)
    assert calc.tunings == 1
    return (
        f"| {n} | {parameters['method']} | {tune * 1e3:.2f} | {one_shot * 1e3:.1f} | "
        f"{repeated * 1e3:.1f} | {plain * 1e3:.1f} | {one_shot / plain:.3f} | "
        f"{repeated / plain:.3f} |"
    )


def crossover_row(n: int, acc: float) -> str:
    system, q = random_box(n)
    times = []
    for method in ("ewald", "pme"):
        chosen = ff.Coulomb(accuracy=acc, method=method).parameters_for(system)
        times.append(best_time(fixed_sum(system, q, chosen), 3))
    auto = ff.Coulomb(accuracy=acc).parameters_for(system)["method"]
    return f"| {n} | {acc:g} | {times[0] * 1e3:.1f} | {times[1] * 1e3:.1f} | {auto} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accuracy", type=float, default=1e-6)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--crossover", action="store_true")
    args = parser.parse_args()
    accuracy = args.accuracy
    print(f"threads: {ff.get_num_threads()}, accuracy {accuracy:g}\n")
    print(
        "| N | method | tune (ms) | one-shot (ms) | repeated (ms) | sum (ms) "
        "| one-shot/sum | repeated/sum |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        print(row(n, accuracy), flush=True)
    if args.crossover:
        print("\n| N | accuracy | Ewald (ms) | PME (ms) | auto |")
        print("|---|---|---|---|---|")
        for n in (100, 200, 300, 500, 1000, 2000, 5000, 10_000):
            for acc in (1e-4, 1e-6):
                print(crossover_row(n, acc), flush=True)


if __name__ == "__main__":
    main()
