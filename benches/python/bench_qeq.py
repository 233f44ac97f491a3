"""QEq benchmark: farfield (dense / matrix-free CG) against a dense numpy/scipy solve whose
matrix is built here with an independent Ewald sum, for periodic water-like boxes; and, with
``--open``, the same water-like sites without a cell: farfield dense (faer Cholesky), CG on the
stored matrix and matrix-free CG against numpy building the same matrix (scipy erf) and
``np.linalg.solve`` of the bordered system, timed without and with the matrix build.

Prints a markdown table: N, method, time (charges + energy + forces), agreement, peak memory.
``--dump N FILE`` writes a box for ``cargo run --release --example qeq_timing``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
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
        kk = k[start : start + 2000]
        ph = pos @ kk.T
        c, s = np.cos(ph), np.sin(ph)
        ww = w[start : start + 2000]
        a += (c * ww) @ c.T + (s * ww) @ s.T
    g2 = sigma[:, None] ** 2 + sigma[None] ** 2
    for i0 in range(0, n, 500):
        d = pos[None, :] - pos[i0 : i0 + 500, None]
        d -= side * np.round(d / side)
        r = np.linalg.norm(d, axis=-1)
        gam = np.sqrt(g2[i0 : i0 + 500])
        with np.errstate(divide="ignore", invalid="ignore"):
            real = (erfc(r / (np.sqrt(2) * eta)) - erfc(r / (np.sqrt(2) * gam))) / r
        real[r == 0] = 0
        real[r > x * eta] = 0
        a[i0 : i0 + 500] += real
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


def numpy_open(pos, chi, hard, sigma) -> tuple[np.ndarray, float, float, float]:
    """The open-system QEq matrix from its formula (scipy erf, row blocks) and numpy's
    ``np.linalg.solve`` of the bordered system [[A, 1], [1ᵀ, 0]]: charges, energy, seconds to
    build the matrix, seconds to solve."""
    from scipy.special import erf

    n = len(pos)
    t = time.perf_counter()
    a = np.empty((n, n))
    for i0 in range(0, n, 500):
        d = pos[None, :] - pos[i0 : i0 + 500, None]
        r = np.sqrt((d**2).sum(-1))
        g = np.sqrt(sigma[i0 : i0 + 500, None] ** 2 + sigma[None] ** 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            a[i0 : i0 + 500] = K_E * erf(r / (np.sqrt(2) * g)) / r
    a[np.diag_indices(n)] = hard + K_E / (sigma * np.sqrt(np.pi))
    m = np.zeros((n + 1, n + 1))
    m[:n, :n] = a
    m[:n, n] = m[n, :n] = 1.0
    build = time.perf_counter() - t
    t = time.perf_counter()
    sol = np.linalg.solve(m, np.concatenate([-chi, [0.0]]))
    solve = time.perf_counter() - t
    q = sol[:n]
    return q, float(chi @ q + 0.5 * q @ a @ q), build, solve


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(n: int, method: str, threads: int, out: str) -> None:
    """One measurement in a fresh process (so that the peak RSS is its own)."""
    ff.set_num_threads(threads)
    system, chi, hard, sigma = water_box(n)
    base = peak_mb()
    t = time.perf_counter()
    c = time.process_time()
    build = solve = float("nan")
    if method.startswith("open"):
        system = ff.System(system.positions, system.numbers)
    if method == "numpy":
        q, energy = numpy_dense(system, chi, hard, sigma)
        forces = np.full((len(q), 3), np.nan)
        its, res = 0, float("nan")
    elif method == "open-numpy":
        q, energy, build, solve = numpy_open(system.positions, chi, hard, sigma)
        forces = np.full((len(q), 3), np.nan)
        its, res = 0, float("nan")
        method = "numpy build + np.linalg.solve"
    elif method.startswith("open"):
        if method == "open-cg-free":
            ff.set_limits(max_memory=4.0 * len(chi) ** 2)  # below the N² matrix
        r = ff.qeq(
            system,
            chi,
            hard,
            sigma,
            solver="dense" if method == "open-dense" else "cg",
            tolerance=1e-8,
            prefactor=K_E,
        )
        q, energy, forces, its, res = r.charges, r.energy, r.forces, r.iterations, r.residual
        method = f"{r.solver} ({r.matrix}, {r.preconditioner})"
    else:
        solver, kspace = ("cg", "ewald") if method == "cg-ewald" else (method, "auto")
        r = ff.qeq(
            system,
            chi,
            hard,
            sigma,
            solver=solver,  # type: ignore[arg-type]
            kspace=kspace,  # type: ignore[arg-type]
            tolerance=1e-8,
            prefactor=K_E,
            ewald_truncation=1e-8,
        )
        q, energy, forces, its, res = r.charges, r.energy, r.forces, r.iterations, r.residual
        method = f"{solver} ({r.kspace}, {r.preconditioner})"
    dt = time.perf_counter() - t
    cpu = time.process_time() - c
    np.savez(
        out,
        q=q,
        forces=forces,
        energy=energy,
        time=dt,
        cpu=cpu,
        its=its,
        res=res,
        peak=peak_mb(),
        base=base,
        method=method,
        build=build,
        solve=solve,
    )


def run_child(n: int, method: str, threads: int) -> dict[str, object] | None:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.npz")
        cmd = [sys.executable, __file__, "--child", str(n), method, str(threads), out]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(f"<!-- {method} N={n} failed: {p.stderr.strip()[-300:]} -->")
            return None
        d = np.load(out)
        return {k: d[k] for k in d.files}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 100000])
    ap.add_argument(
        "--dense-max",
        type=int,
        default=1000,
        help="largest N for the numpy/scipy dense reference (N=10^4 takes ~5 min)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--ewald-check-max",
        type=int,
        default=10000,
        help="largest N where the CG with explicit Ewald k-space is the reference",
    )
    ap.add_argument(
        "--open",
        action="store_true",
        help="open systems (no cell): numpy build + solve against farfield dense and CG",
    )
    ap.add_argument("--dump", nargs=2, metavar=("N", "FILE"))
    ap.add_argument("--child", nargs=4, metavar=("N", "METHOD", "THREADS", "OUT"))
    args = ap.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1], int(args.child[2]), args.child[3])
        return
    if args.dump:
        system, chi, hard, sigma = water_box(int(args.dump[0]))
        with open(args.dump[1], "w") as f:
            f.write(f"{float(system.cell[0, 0])!r}\n")
            for p, c, h, g in zip(system.positions, chi, hard, sigma, strict=True):
                f.write(" ".join(repr(float(v)) for v in (*p, c, h, g)) + "\n")
        return
    if args.open:
        open_table(args.sizes, args.threads)
        return
    print(
        f"threads: {args.threads}; water-like periodic boxes, eV/Å (prefactor {K_E}); "
        "tolerance 1e-8 eV, Ewald/PME accuracy 1e-8; each row in its own process"
    )
    print(
        "| N | method | wall (s) | CPU (s) | max abs Δq vs ref | abs ΔE (eV) vs ref |"
        " max abs ΔF (eV/Å) | CG iterations | residual (eV) | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        n3 = 3 * (n // 3)
        methods = (["numpy"] if n <= args.dense_max else []) + (
            ["dense", "cg"]
            if n <= 3000
            else (["cg-ewald"] if n <= args.ewald_check_max else []) + ["cg"]
        )
        ref = None
        for method in methods:
            r = run_child(n, method, args.threads)
            if r is None:
                continue
            if ref is None:
                ref = r
                dq = de = df = "(ref)"
                if method == "cg":
                    dq = de = df = "-"
            else:
                dq = f"{np.abs(r['q'] - ref['q']).max():.1e}"
                de = f"{abs(float(r['energy']) - float(ref['energy'])):.1e}"
                fr = ref["forces"]
                df = "-" if np.isnan(fr).all() else f"{np.abs(r['forces'] - fr).max():.1e}"
            if method == "dense" and ref is not None and np.isnan(ref["forces"]).all():
                ref = {**ref, "forces": r["forces"]}  # forces reference: farfield dense
            name = (
                "numpy/scipy dense (own Ewald)"
                if method == "numpy"
                else (f"farfield {r['method']}")
            )
            res = float(r["res"])
            print(
                f"| {n3} | {name} | {float(r['time']):.2f} | {float(r['cpu']):.2f} | {dq} |"
                f" {de} | {df} | {int(r['its']) if method.startswith('cg') else '-'} |"
                f" {'-' if np.isnan(res) else f'{res:.1e}'} | {float(r['peak']):.0f} |",
                flush=True,
            )
    print(
        "\nnumpy/scipy: charges + energy only (no forces). max abs ΔF at N=10^3 is against"
        " farfield dense (explicit Ewald, Cholesky); at N=10^4 the reference is the CG with"
        " the explicit Ewald k-space sum (an independent k-space evaluation). CPU = process"
        " CPU time (all threads)."
    )


def open_table(sizes: list[int], threads: int) -> None:
    load = os.getloadavg()[0]
    print(
        f"threads: {threads}; open water-like clusters (the periodic boxes' sites, no cell), eV/Å"
        f" (prefactor {K_E}); CG tolerance 1e-8 eV; each row in its own process; load average"
        f" at the start {load:.1f}"
    )
    print(
        "| N | method | wall (s) | numpy build (s) | numpy solve (s) | numpy total / this |"
        " numpy solve / this | max abs Δq vs numpy | CG iterations | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        ref = None
        for method in ["open-numpy", "open-dense", "open-cg", "open-cg-free"]:
            r = run_child(n, method, threads)
            if r is None:
                continue
            if ref is None:
                ref = r
            t = float(r["time"])
            build, solve = float(ref["build"]), float(ref["solve"])
            same = r is ref
            ratio_total = "-" if same else f"{(build + solve) / t:.1f}"
            ratio_solve = "-" if same else f"{solve / t:.1f}"
            dq = "(ref)" if same else f"{np.abs(r['q'] - ref['q']).max():.1e}"
            its = int(r["its"]) if "cg" in str(r["method"]) else "-"
            print(
                f"| {3 * (n // 3)} | {r['method']} | {t:.3f} | {build:.3f} | {solve:.3f} |"
                f" {ratio_total} | {ratio_solve} | {dq} | {its} | {float(r['peak']):.0f} |",
                flush=True,
            )
    print(
        "\nfarfield wall time: charges + energy + forces (+ the matrix build); numpy: charges and"
        " energy only, its build (scipy erf over row blocks) and np.linalg.solve (LAPACK LU of"
        " the bordered N+1 system) timed apart."
    )


if __name__ == "__main__":
    main()
