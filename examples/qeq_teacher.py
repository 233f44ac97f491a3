"""Learning electronegativities through the QEq solve (the NequIP-LR / 4G-HDNNP scheme, end to end).

A "teacher" QEq model with a known, environment-dependent electronegativity
χ_i = χ0[Z_i] + a[Z_i] · f_i (f_i a smooth radial coordination count) generates reference charges
and energies for random Na/Cl clusters and periodic cells. A student with a linear χ model on
radial density features (per-element radial counts at several widths; the power spectrum of
branch ``soap`` can replace them) is fitted to the charges and energies *through* the solve,
using the analytic vector-Jacobian products of ``ff.qeq_vjp`` (one adjoint solve per structure).
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

import farfield as ff

WIDTHS = [1.0, 1.75, 2.5]
ELEMENTS = [11, 17]
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


def features(system: ff.System) -> np.ndarray:
    """Per atom: one-hot element, and one-hot element × radial count at each width."""
    onehot = np.array([[z == e for e in ELEMENTS] for z in system.numbers], float)
    cols = [onehot] + [onehot * radial_counts(system, w)[:, None] for w in WIDTHS]
    return np.hstack(cols)


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


def main() -> None:
    rng = np.random.default_rng(7)
    data = [random_structure(rng, periodic=k % 3 == 0) for k in range(60)]
    refs = []
    for s, total in data:
        r = ff.qeq(s, teacher_chi(s), HARD, SIGMA, total_charge=total, prefactor=PREF)
        refs.append((r.charges, r.energy))
    feats = [features(s) for s, _ in data]
    train, test = range(0, 45), range(45, 60)
    w_energy = 1.0 / 8

    def loss_and_grad(w: np.ndarray, idx: range) -> tuple[float, np.ndarray]:
        loss, grad = 0.0, np.zeros_like(w)
        for k in idx:
            s, total = data[k]
            q_ref, e_ref = refs[k]
            chi = feats[k] @ w
            r = ff.qeq(s, chi, HARD, SIGMA, total_charge=total, prefactor=PREF)
            dq = r.charges - q_ref
            de = (r.energy - e_ref) / len(q_ref)
            loss += dq @ dq + w_energy * de**2
            _, g = ff.qeq_vjp(s, chi, HARD, SIGMA, 2 * dq, 2 * w_energy * de / len(q_ref),
                              total_charge=total, prefactor=PREF)
            grad += feats[k].T @ g.electronegativity
        return loss / len(idx), grad / len(idx)

    def errors(w: np.ndarray, idx: range) -> tuple[float, float]:
        dq, de = [], []
        for k in idx:
            s, total = data[k]
            r = ff.qeq(s, feats[k] @ w, HARD, SIGMA, total_charge=total, prefactor=PREF)
            dq.extend(r.charges - refs[k][0])
            de.append((r.energy - refs[k][1]) / len(r.charges))
        return float(np.sqrt(np.mean(np.square(dq)))), float(np.sqrt(np.mean(np.square(de))))

    w0 = np.zeros(feats[0].shape[1])
    w0[:2] = [-0.5, 0.5]
    # check the analytic gradient against finite differences once
    _, g = loss_and_grad(w0, range(3))
    h = 1e-6
    e = np.zeros_like(w0)
    e[3] = h
    fd = (loss_and_grad(w0 + e, range(3))[0] - loss_and_grad(w0 - e, range(3))[0]) / (2 * h)
    print(f"gradient check: analytic {g[3]:.8e}  finite difference {fd:.8e}")
    eq, ee = errors(w0, test)
    print(f"before fit: charge RMSE {eq:.4f} e, energy RMSE {ee:.4f} eV/atom (test)")
    res = scipy.optimize.minimize(loss_and_grad, w0, args=(train,), jac=True, method="L-BFGS-B",
                                  options={"maxiter": 300, "gtol": 1e-12, "ftol": 1e-15})
    print(f"L-BFGS: {res.nit} iterations, final training loss {res.fun:.3e}")
    for name, idx in [("train", train), ("test", test)]:
        eq, ee = errors(res.x, idx)
        print(f"after fit:  charge RMSE {eq:.2e} e, energy RMSE {ee:.2e} eV/atom ({name})")
    chi_err = max(np.abs(feats[k] @ res.x - teacher_chi(data[k][0])).std() for k in test)
    print(f"spread of the χ error within test structures (χ is defined up to a constant): "
          f"{chi_err:.2e} eV")


if __name__ == "__main__":
    main()
