"""Learning electronegativities through the QEq solve (the NequIP-LR / 4G-HDNNP scheme, end to end).

A "teacher" QEq model with a known, environment-dependent electronegativity
χ_i = χ0[Z_i] + a[Z_i] · f_i (f_i a smooth radial coordination count) generates reference charges
and energies for random Na/Cl clusters and periodic cells. A student with a linear χ model on
local power-spectrum features (``ff.PowerSpectrum``: SOAP-type, per element of the centre) is
fitted to the charges and energies *through* the solve, using the analytic vector-Jacobian
products of ``ff.qeq_batch`` (one adjoint solve per structure, all structures in parallel).

    python examples/qeq_teacher.py            # 60 structures
    python examples/qeq_teacher.py --quick    # 12 structures, a few iterations (test suite)
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

import farfield as ff

ELEMENTS = [11, 17]
POWER_SPECTRUM = ff.PowerSpectrum(
    cutoff=5.0, max_radial=2, max_angular=2, smearing=0.6, species=ELEMENTS
)
HARD = {11: 6.0, 17: 5.0}  # eV/e²
SIGMA = {11: 0.8, 17: 1.0}  # Å
PREF = ff.units.EV_ANGSTROM


def radial_counts(system: ff.System, width: float, cutoff: float = 6.0) -> np.ndarray:
    pos = system.positions
    if system.cell is None:
        d = pos[None] - pos[:, None]
        r = np.linalg.norm(d, axis=-1)
        np.fill_diagonal(r, np.inf)
        return np.exp(-0.5 * (r / width) ** 2).sum(1)
    out = np.zeros(len(pos))
    for sh in np.ndindex(3, 3, 3):
        t = (np.array(sh) - 1) @ system.cell
        d = pos[None] + t - pos[:, None]
        r = np.linalg.norm(d, axis=-1)
        if not np.any(sh != np.array([1, 1, 1])):
            np.fill_diagonal(r, np.inf)
        out += np.where(r < cutoff, np.exp(-0.5 * (r / width) ** 2), 0).sum(1)
    return out


def features(systems: list[ff.System]) -> list[np.ndarray]:
    """Per atom: one-hot element, and one-hot element ⊗ power spectrum (columns scaled to unit
    RMS over all atoms): χ_i = b[Z_i] + w[Z_i] · p_i."""
    ps = POWER_SPECTRUM.compute(systems).values
    ps = ps / np.maximum(np.sqrt(np.mean(ps**2, axis=0)), 1e-12)
    out, start = [], 0
    for s in systems:
        n = len(s.numbers)
        onehot = np.array([[z == e for e in ELEMENTS] for z in s.numbers], float)
        p = ps[start : start + n]
        start += n
        out.append(np.hstack([onehot] + [onehot[:, [k]] * p for k in range(len(ELEMENTS))]))
    return out


def teacher_chi(system: ff.System) -> np.ndarray:
    f = radial_counts(system, 1.75)
    chi0 = np.where(system.numbers == 11, -1.0, 1.5)
    a = np.where(system.numbers == 11, 0.25, -0.15)
    return chi0 + a * f


def random_structure(rng: np.random.Generator, periodic: bool) -> tuple[ff.System, float]:
    n = int(rng.integers(6, 14)) if not periodic else 8
    while True:
        if periodic:
            side = 5.8
            pos = rng.uniform(0, side, (n, 3))
            cell = np.eye(3) * side
        else:
            pos = rng.uniform(0, 2.2 * n ** (1 / 3), (n, 3))
            cell = None
        numbers = np.where(np.arange(n) % 2 == 0, 11, 17).astype(np.int32)
        try:
            s = ff.System(pos, numbers, cell)
        except ValueError:
            continue
        d = np.linalg.norm(pos[None] - pos[:, None], axis=-1) + np.eye(n) * 10
        if d.min() > 1.9:
            total = 0.0 if periodic else float(rng.choice([-1.0, 0.0, 1.0]))
            return s, total


def main(n_structures: int = 60, maxiter: int = 300) -> dict[str, float]:
    rng = np.random.default_rng(7)
    data = [random_structure(rng, periodic=k % 3 == 0) for k in range(n_structures)]
    systems = [s for s, _ in data]
    totals = [t for _, t in data]
    refs = []
    for s, total in data:
        r = ff.qeq(s, teacher_chi(s), HARD, SIGMA, total_charge=total, prefactor=PREF)
        refs.append((r.charges, r.energy))
    feats = features(systems)
    n_train = (3 * n_structures) // 4
    train, test = range(0, n_train), range(n_train, n_structures)
    w_energy = 1.0 / 8
    ridge = 1e-6

    def loss_and_grad(w: np.ndarray, idx: range) -> tuple[float, np.ndarray]:
        chis = [feats[k] @ w for k in idx]
        fwd = ff.qeq_batch(
            [systems[k] for k in idx], chis, HARD, SIGMA, [totals[k] for k in idx], prefactor=PREF
        )
        # the cotangents need the forward residuals; the VJP call then does the forward solve
        # and one adjoint solve with the same matrix per structure (in parallel)
        dqs = [r.charges - refs[k][0] for r, k in zip(fwd, idx, strict=True)]
        des = [(r.energy - refs[k][1]) / len(r.charges) for r, k in zip(fwd, idx, strict=True)]
        out = ff.qeq_batch(
            [systems[k] for k in idx],
            chis,
            HARD,
            SIGMA,
            [totals[k] for k in idx],
            prefactor=PREF,
            grad_charges=[2 * dq for dq in dqs],
            grad_energy=[2 * w_energy * de / len(dq) for de, dq in zip(des, dqs, strict=True)],
        )
        loss = sum(dq @ dq + w_energy * de**2 for dq, de in zip(dqs, des, strict=True))
        grad = sum(feats[k].T @ g.electronegativity for (_, g), k in zip(out, idx, strict=True))
        return loss / len(idx) + ridge * w @ w, grad / len(idx) + 2 * ridge * w

    def errors(w: np.ndarray, idx: range) -> tuple[float, float]:
        dq, de = [], []
        out = ff.qeq_batch(
            [systems[k] for k in idx],
            [feats[k] @ w for k in idx],
            HARD,
            SIGMA,
            [totals[k] for k in idx],
            prefactor=PREF,
        )
        for r, k in zip(out, idx, strict=True):
            dq.extend(r.charges - refs[k][0])
            de.append((r.energy - refs[k][1]) / len(r.charges))
        return float(np.sqrt(np.mean(np.square(dq)))), float(np.sqrt(np.mean(np.square(de))))

    w0 = np.zeros(feats[0].shape[1])
    w0[:2] = [-0.5, 0.5]
    # check the analytic gradient against finite differences once (two directions)
    _, g = loss_and_grad(w0, range(3))
    h = 1e-6
    report: dict[str, float] = {}
    for j in [0, 5]:
        e = np.zeros_like(w0)
        e[j] = h
        fd = (loss_and_grad(w0 + e, range(3))[0] - loss_and_grad(w0 - e, range(3))[0]) / (2 * h)
        print(f"gradient check d loss/d w[{j}]: analytic {g[j]:.8e}  finite difference {fd:.8e}")
        report[f"grad_error_{j}"] = abs(g[j] - fd) / max(abs(fd), 1e-12)
    eq, ee = errors(w0, test)
    report["charge_rmse_before"], report["energy_rmse_before"] = eq, ee
    print(f"before fit: charge RMSE {eq:.4f} e, energy RMSE {ee:.4f} eV/atom (test)")
    res = scipy.optimize.minimize(
        loss_and_grad,
        w0,
        args=(train,),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": maxiter, "gtol": 1e-12, "ftol": 1e-15},
    )
    print(
        f"L-BFGS: {res.nit} iterations, final training loss {res.fun:.3e}"
        f" ({len(w0)} weights, {sum(len(feats[k]) for k in train)} training charges)"
    )
    for name, idx in [("train", train), ("test", test)]:
        eq, ee = errors(res.x, idx)
        report[f"charge_rmse_{name}"], report[f"energy_rmse_{name}"] = eq, ee
        print(f"after fit:  charge RMSE {eq:.2e} e, energy RMSE {ee:.2e} eV/atom ({name})")
    chi_err = max(np.abs(feats[k] @ res.x - teacher_chi(data[k][0])).std() for k in test)
    print(
        f"spread of the χ error within test structures (χ is defined up to a constant): "
        f"{chi_err:.2e} eV"
    )
    return report


if __name__ == "__main__":
    import sys

    if "--quick" in sys.argv:
        main(n_structures=12, maxiter=15)
    else:
        main()
