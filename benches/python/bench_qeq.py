"""QEq benchmark: farfield (dense / matrix-free CG) against a dense numpy/scipy solve whose
matrix is built here with an independent Ewald sum, for periodic water-like boxes.

Prints a markdown table: N, method, time (charges + energy + forces), agreement, peak memory.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import scipy.linalg
from scipy.special import erfc

import farfield as ff

K_E = 14.399645478425667
PARAMS = {  # eV, eV/e², Å
    8: (8.5, 12.0, 0.73),
    1: (4.5, 13.0, 0.31),
}


def water_box(n_atoms: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_mol = n_atoms // 3
    side = (n_mol * 29.9) ** (1 / 3)
    m = int(np.ceil(n_mol ** (1 / 3)))
    sites = np.array([(i, j, k) for i in range(m) for j in range(m) for k in range(m)], float)
    sites = sites[rng.permutation(len(sites))[:n_mol]] * side / m
    geom = np.array([[0, 0, 0], [0.9572, 0, 0], [-0.24, 0.927, 0]])
    pos = []
    for s in sites:
        rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        pos.extend(s + geom @ rot.T)
    numbers = np.tile([8, 1, 1], n_mol).astype(np.int32)
    cell = np.eye(3) * side
    pos = np.array(pos)
    chi = np.array([PARAMS[z][0] for z in numbers]) + rng.normal(0, 0.2, len(numbers))
    hard = np.array([PARAMS[z][1] for z in numbers])
    sigma = np.array([PARAMS[z][2] for z in numbers])
    return ff.System(pos, numbers, cell), chi, hard, sigma


def numpy_dense(system, chi, hard, sigma):
    """Independent Ewald QEq matrix (minimum image real space, chunked k-space) + scipy solve."""
    pos, cell = system.positions, system.cell
    n = len(pos)
    side = cell[0, 0]
    x = np.sqrt(-2 * np.log(1e-8))
    eta = 0.45 * side / x  # real-space cutoff 0.45 L: minimum image suffices
    kc = x / eta
    mmax = int(kc * side / (2 * np.pi))
    g = np.arange(-mmax, mmax + 1)
    m = np.array(np.meshgrid(g, g, g, indexing="ij")).reshape(3, -1).T
    m = m[(m[:, 0] > 0) | ((m[:, 0] == 0) & ((m[:, 1] > 0) | ((m[:, 1] == 0) & (m[:, 2] > 0))))]
    k = m * 2 * np.pi / side
    k2 = (k**2).sum(1)
    keep = k2 <= kc**2
    k, k2 = k[keep], k2[keep]
    vol = side**3
    w = 2 * 4 * np.pi / vol * np.exp(-0.5 * eta**2 * k2) / k2
    a = np.zeros((n, n))
    for start in range(0, len(k), 2000):
        kk = k[start:start + 2000]
        ph = pos @ kk.T
        c, s = np.cos(ph), np.sin(ph)
        ww = w[start:start + 2000]
        a += (c * ww) @ c.T + (s * ww) @ s.T
    g2 = sigma[:, None] ** 2 + sigma[None] ** 2
    for i0 in range(0, n, 500):
        d = pos[None, :] - pos[i0:i0 + 500, None]
        d -= side * np.round(d / side)
        r = np.linalg.norm(d, axis=-1)
        gam = np.sqrt(g2[i0:i0 + 500])
        with np.errstate(divide="ignore", invalid="ignore"):
            real = (erfc(r / (np.sqrt(2) * eta)) - erfc(r / (np.sqrt(2) * gam))) / r
        real[r == 0] = 0
        real[r > x * eta] = 0
        a[i0:i0 + 500] += real
    a -= 2 * np.pi / vol * (eta**2 - g2)
    a[np.diag_indices(n)] += 1 / (sigma * np.sqrt(np.pi)) - np.sqrt(2 / np.pi) / eta
    a *= K_E
    a[np.diag_indices(n)] += hard
    # neutral: project onto Σq = 0 with the Schur complement
    cf = scipy.linalg.cho_factor(a)
    x0 = scipy.linalg.cho_solve(cf, -chi)
    y = scipy.linalg.cho_solve(cf, np.ones(n))
    lam = x0.sum() / y.sum()
    q = x0 - lam * y
    energy = chi @ q + 0.5 * q @ a @ q
    return q, energy


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--dense-max", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    ff.set_num_threads(args.threads)
    print(f"threads: {args.threads}; units eV/Å (prefactor {K_E}); tolerance 1e-8 eV")
    print("| N | method | time (s) | max abs Δq vs numpy | |ΔE| (eV) vs numpy | CG iterations |"
          " peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        system, chi, hard, sigma = water_box(n)
        n = len(system.numbers)
        ref = None
        if n <= args.dense_max:
            t = time.perf_counter()
            ref = numpy_dense(system, chi, hard, sigma)
            dt = time.perf_counter() - t
            print(f"| {n} | numpy/scipy dense (own Ewald) | {dt:.2f} | - | - | - |"
                  f" {peak_mb():.0f} |")
        for solver in (["dense", "cg"] if n <= 3000 else ["cg"]):
            t = time.perf_counter()
            r = ff.qeq(system, chi, hard, sigma, solver=solver, tolerance=1e-8,  # type: ignore[arg-type]
                       prefactor=K_E, accuracy=1e-8)
            dt = time.perf_counter() - t
            dq = "-" if ref is None else f"{np.abs(r.charges - ref[0]).max():.1e}"
            de = "-" if ref is None else f"{abs(r.energy - ref[1]):.1e}"
            print(f"| {n} | farfield {solver} | {dt:.2f} | {dq} | {de} | {r.iterations} |"
                  f" {peak_mb():.0f} |", flush=True)


if __name__ == "__main__":
    main()
