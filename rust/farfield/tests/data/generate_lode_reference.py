"""Writes lode_reference.txt, the reference values read by rust/farfield/tests/lode_reference.rs.

Run once from the repository root with the project's virtual environment:

    .venv/bin/python rust/farfield/tests/data/generate_lode_reference.py

Nothing here calls farfield. Two independent sources:

* periodic cases: featomic 0.6.7 (`featomic.LodeSphericalExpansion`, exact radial integrals,
  `spline_accuracy=None`, except the monomial case which goes through featomic's
  `LodeSpliner` at spline accuracy 1e-10); values in farfield's dense layout
  (atom, neighbour species, l² + l + m, n) and, for the position gradients, their
  contraction dL/dr_j with L = Σ g·c and g[x] = sin(0.37 x + 0.1) over the flat index x of
  the values (so that a few numbers check the whole gradient tensor);
* open (non-periodic) cases, which featomic does not support: the real-space projection of
  docs/science.md §2.5, c_{i,a,nlm} = Σ_{j∈a} Y_lm(d̂_ij) I_nl(d_ij) (plus w C_n for the
  centre), I_nl(d) = 2π ∫ x² R_nl(x) ∫ P_l(u) g_p(√(x² + d² − 2xdu)) du dx, by Gauss–Legendre
  product quadrature (checked converged to 1e-13 against a finer rule), with the GTO basis
  built here from its definition (§2.4: primitives r^n e^{-r²/(2σ_n²)}, σ_n = r0 max(√n, 1)/(N+1),
  Löwdin-orthonormalised) and g_p from scipy's regularised incomplete gamma function.

The file is plain text: `key value value ...` lines, cases between `case NAME` and `end`.
"""

from __future__ import annotations

import math
from pathlib import Path

import featomic
import numpy as np
from scipy.special import gamma, gammainc, sph_harm_y

OUT = Path(__file__).with_name("lode_reference.txt")

TRICLINIC = np.array([[5.2, 0.0, 0.0], [0.9, 4.8, 0.0], [-0.6, 0.7, 5.5]])
FRACTIONAL = np.array(
    [[0.11, 0.23, 0.05], [0.48, 0.61, 0.37], [0.83, 0.15, 0.72], [0.29, 0.87, 0.58]]
)


def g_weights(n: int) -> np.ndarray:
    return np.sin(0.37 * np.arange(n) + 0.1)


# --------------------------------------------------------------------------- periodic (featomic)


def featomic_dense(tmap, species, n, nlm, nr):  # type: ignore[no-untyped-def]
    values = np.zeros((n, len(species), nlm, nr))
    grad = np.zeros((n, n, 3, len(species), nlm, nr))
    for key, blk in tmap.items():
        lam, _, _, nt = (int(x) for x in key.values)
        a = species.index(nt)
        lm = slice(lam * lam, (lam + 1) ** 2)
        atoms = blk.samples.values[:, 1]
        values[atoms, a, lm] = blk.values
        if "positions" in blk.gradients_list():
            g = blk.gradient("positions")
            for row, (s, _, j) in enumerate(g.samples.values):
                grad[atoms[s], j, :, a, lm] += g.values[row]
    return values, grad


def periodic_case(name, cell, numbers, positions, p, sigma, lmax, nmax, r0, weight, basis="gto"):  # type: ignore[no-untyped-def]
    import ase

    atoms = ase.Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
    species = sorted(set(int(z) for z in numbers))
    density = {
        "type": "SmearedPowerLaw",
        "smearing": sigma,
        "exponent": p,
        "center_atom_weight": weight,
    }
    if basis == "gto":
        hypers = {
            "density": density,
            "basis": {
                "type": "TensorProduct",
                "max_angular": lmax,
                "radial": {"type": "Gto", "max_radial": nmax, "radius": r0},
                "spline_accuracy": None,
            },
        }
        grads = ["positions"]
    else:
        from featomic import basis as fb
        from featomic import density as fd
        from featomic.splines import LodeSpliner

        spliner = LodeSpliner(
            density=fd.SmearedPowerLaw(smearing=sigma, exponent=p, center_atom_weight=weight),
            basis=fb.Explicit(
                by_angular={
                    lam: fb.Monomials(angular_channel=lam, max_radial=nmax, radius=r0)
                    for lam in range(lmax + 1)
                },
                spline_accuracy=1e-10,
            ),
        )
        hypers = spliner.get_hypers()
        grads = []
    ref = featomic.LodeSphericalExpansion(**hypers).compute(atoms, gradients=grads)
    n = len(numbers)
    values, grad = featomic_dense(ref, species, n, (lmax + 1) ** 2, nmax + 1)
    lines = [
        f"case {name}",
        "path periodic",
        f"exponent {p!r}",
        f"smearing {sigma!r}",
        f"max_angular {lmax}",
        f"max_radial {nmax}",
        f"radius {r0!r}",
        f"basis {basis}",
        f"center_atom_weight {weight!r}",
        "cell " + " ".join(repr(float(x)) for x in np.asarray(cell).ravel()),
        "numbers " + " ".join(str(int(z)) for z in numbers),
        "positions " + " ".join(repr(float(x)) for x in np.asarray(positions).ravel()),
        "species " + " ".join(str(s) for s in species),
        "values " + " ".join(repr(float(x)) for x in values.ravel()),
    ]
    if grads:
        g = g_weights(values.size).reshape(values.shape)
        dl_dr = np.einsum("iaxn,ijqaxn->jq", g, grad)
        lines.append("dl_dr " + " ".join(repr(float(x)) for x in dl_dr.ravel()))
    lines.append("end")
    return lines


# --------------------------------------------------------------------------- open (quadrature)


def gto_basis(nmax: int, r0: float):  # type: ignore[no-untyped-def]
    """(coefficients C[n][m], sigmas): R̃_n(r) = Σ_m C[n][m] r^m e^{-r²/(2σ_m²)}."""
    ns = np.arange(nmax + 1)
    sig = r0 * np.maximum(np.sqrt(ns), 1.0) / (nmax + 1)
    norm = np.sqrt(2.0 / (sig ** (2 * ns + 3) * gamma(ns + 1.5)))
    s = np.zeros((nmax + 1, nmax + 1))
    for a in ns:
        for b in ns:
            alpha = 0.5 / sig[a] ** 2 + 0.5 / sig[b] ** 2
            s[a, b] = norm[a] * norm[b] * gamma((a + b + 3) / 2) / (2 * alpha ** ((a + b + 3) / 2))
    evals, evecs = np.linalg.eigh(s)
    inv_sqrt = evecs @ np.diag(evals**-0.5) @ evecs.T
    return inv_sqrt * norm[None, :], sig


def radial_values(coef, sig, x):  # type: ignore[no-untyped-def]
    prims = np.array([x**m * np.exp(-(x**2) / (2 * sig[m] ** 2)) for m in range(len(sig))])
    return coef @ prims


def g_p(s: np.ndarray, p: float, sigma: float) -> np.ndarray:
    if p == 0:
        return (np.pi * sigma**2) ** -0.75 * np.exp(-(s**2) / (2 * sigma**2))
    a = p / 2
    y = s**2 / (2 * sigma**2)
    small = y < 1e-8
    ys = np.where(small, 1.0, y)
    out = gammainc(a, ys) / np.where(small, 1.0, s) ** p
    # P(a, y)/y^a → 1/Γ(a+1) (1 − a y/(a+1)), and s^p = (2σ² y)^a
    limit = (1 - a * y / (a + 1)) / (gamma(a + 1) * (2 * sigma**2) ** a)
    return np.where(small, limit, out)


def real_ylm(lam: int, v: np.ndarray) -> np.ndarray:
    r = np.linalg.norm(v)
    theta = math.acos(max(-1.0, min(1.0, v[2] / r)))
    phi = math.atan2(v[1], v[0])
    out = []
    for m in range(-lam, lam + 1):
        y = sph_harm_y(lam, abs(m), theta, phi)
        if m > 0:
            out.append(math.sqrt(2) * (-1) ** m * y.real)
        elif m < 0:
            out.append(math.sqrt(2) * (-1) ** m * y.imag)
        else:
            out.append(y.real)
    return np.array(out)


def radial_integrals(d, p, sigma, coef, sig, lmax, nx, nu):  # type: ignore[no-untyped-def]
    """I[l][n](d) by product Gauss–Legendre quadrature (x on [0, 14 max σ_n], u on [-1, 1])."""
    xmax = 14.0 * sig.max()
    xg, wx = np.polynomial.legendre.leggauss(nx)
    x = 0.5 * xmax * (xg + 1)
    wx = 0.5 * xmax * wx
    ug, wu = np.polynomial.legendre.leggauss(nu)
    rad = radial_values(coef, sig, x)  # (n, x)
    xx, uu = np.meshgrid(x, ug, indexing="ij")
    dist = np.sqrt(np.maximum(xx**2 + d**2 - 2 * xx * d * uu, 0.0))
    gp = g_p(dist, p, sigma)
    out = np.zeros((lmax + 1, len(sig)))
    for lam in range(lmax + 1):
        pl = np.polynomial.legendre.legval(ug, [0] * lam + [1])
        inner = gp @ (wu * pl)  # (x,)
        out[lam] = 2 * np.pi * rad @ (wx * x**2 * inner)
    return out


def open_values(numbers, positions, p, sigma, lmax, nmax, r0, weight, nx, nu):  # type: ignore[no-untyped-def]
    coef, sig = gto_basis(nmax, r0)
    species = sorted(set(int(z) for z in numbers))
    n = len(numbers)
    nlm = (lmax + 1) ** 2
    values = np.zeros((n, len(species), nlm, nmax + 1))
    for i in range(n):
        for j in range(n):
            a = species.index(int(numbers[j]))
            if i == j:
                ints = radial_integrals(0.0, p, sigma, coef, sig, 0, nx, nu)
                values[i, a, 0] += weight * ints[0] / (2 * math.sqrt(math.pi))
                continue
            d = np.asarray(positions[j]) - np.asarray(positions[i])
            dn = float(np.linalg.norm(d))
            ints = radial_integrals(dn, p, sigma, coef, sig, lmax, nx, nu)
            for lam in range(lmax + 1):
                y = real_ylm(lam, d)
                values[i, a, lam * lam : (lam + 1) ** 2] += np.outer(y, ints[lam])
    return values, species


def open_case(name, numbers, positions, p, sigma, lmax, nmax, r0, weight):  # type: ignore[no-untyped-def]
    values, species = open_values(numbers, positions, p, sigma, lmax, nmax, r0, weight, 300, 160)
    finer, _ = open_values(numbers, positions, p, sigma, lmax, nmax, r0, weight, 500, 260)
    err = np.abs(values - finer).max()
    assert err < 1e-13 * max(1.0, np.abs(values).max()), err
    return [
        f"case {name}",
        "path open",
        f"exponent {p!r}",
        f"smearing {sigma!r}",
        f"max_angular {lmax}",
        f"max_radial {nmax}",
        f"radius {r0!r}",
        "basis gto",
        f"center_atom_weight {weight!r}",
        "cell none",
        "numbers " + " ".join(str(int(z)) for z in numbers),
        "positions " + " ".join(repr(float(x)) for x in np.asarray(positions).ravel()),
        "species " + " ".join(str(s) for s in species),
        "values " + " ".join(repr(float(x)) for x in values.ravel()),
        "end",
    ]


def main() -> None:
    tri_pos = FRACTIONAL @ TRICLINIC
    ortho = np.diag([5.3, 6.1, 4.7])
    cubic = np.eye(3) * 5.0
    lines = [
        "# LODE reference values for rust/farfield/tests/lode_reference.rs",
        f"# written by generate_lode_reference.py with featomic {featomic.__version__}, "
        f"numpy {np.__version__}",
        "# layout: values[(i * A + a) * F + (l*l + l + m) * nr + n], F = (lmax+1)^2 nr;",
        "# dl_dr[j * 3 + alpha] = sum_x g[x] d values[x] / d r[j][alpha], g[x] = sin(0.37 x + 0.1)",
        "# k_cutoff: featomic's default 1.2 pi / smearing everywhere",
    ]
    lines += periodic_case("triclinic_p1", TRICLINIC, [1, 8, 1, 8], tri_pos, 1, 0.4, 3, 0, 2.0, 0.5)
    lines += periodic_case("triclinic_p6", TRICLINIC, [1, 8, 1, 8], tri_pos, 6, 0.5, 1, 2, 2.5, 1.0)
    lines += periodic_case(
        "orthorhombic_p1", ortho, [8, 1, 1, 8], FRACTIONAL @ ortho, 1, 0.5, 2, 1, 2.2, 1.0
    )
    lines += periodic_case(
        "cubic_p2", cubic, [1, 1, 8, 8], FRACTIONAL[[2, 0, 3, 1]] @ cubic, 2, 0.5, 2, 0, 2.0, 0.0
    )
    lines += periodic_case(
        "triclinic_monomial_p1",
        TRICLINIC,
        [8, 1, 1],
        tri_pos[:3],
        1,
        0.5,
        2,
        1,
        2.0,
        1.0,
        "monomial",
    )
    mol_numbers = [8, 1, 1]
    mol = np.array([[0.1, -0.2, 0.05], [1.05, 0.3, -0.4], [-0.5, 1.1, 0.6]])
    lines += open_case("open_p6", mol_numbers, mol, 6.0, 0.6, 2, 1, 2.0, 1.0)
    lines += open_case("open_p2.5", mol_numbers, mol, 2.5, 0.5, 2, 1, 1.8, 0.3)
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}: {sum(len(x.split()) - 1 for x in lines if not x.startswith('#'))} tokens")


if __name__ == "__main__":
    main()
