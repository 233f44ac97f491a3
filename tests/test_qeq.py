"""QEq with Gaussian charges: every number against an independent reference (numpy bordered
solve built from the formula, finite differences, invariances, analytic limits)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

import farfield as ff

XI = 2.837297  # sc Madelung-type constant of the 1/L charged-cell error


def random_cluster(n: int, seed: int, spacing: float = 2.3, jitter: float = 0.4):
    rng = np.random.default_rng(seed)
    m = int(np.ceil(n ** (1 / 3)))
    grid = np.array([(i, j, k) for i in range(m) for j in range(m) for k in range(m)][:n], float)
    pos = grid * spacing + rng.uniform(-jitter, jitter, (n, 3))
    chi = rng.uniform(-0.5, 0.5, n)
    hard = rng.uniform(0.8, 1.5, n)
    sigma = rng.uniform(0.5, 0.8, n)
    return pos, chi, hard, sigma


def system(pos, cell=None):
    return ff.System(np.asarray(pos, float), np.ones(len(pos), np.int32), cell)


def numpy_open_qeq(pos, chi, hard, sigma, total):
    """Independent bordered dense solve of the open-system QEq (formula of docs/science.md §3.1)."""
    n = len(pos)
    r = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    g = np.sqrt(sigma[:, None] ** 2 + sigma[None] ** 2)
    np.fill_diagonal(r, 1.0)
    a = erf(r / (np.sqrt(2) * g)) / r
    np.fill_diagonal(a, hard + 1 / (sigma * np.sqrt(np.pi)))
    m = np.zeros((n + 1, n + 1))
    m[:n, :n] = a
    m[:n, n] = m[n, :n] = 1
    sol = np.linalg.solve(m, np.concatenate([-chi, [total]]))
    q = sol[:n]
    return a, q, chi @ q + 0.5 * q @ a @ q, -sol[n]


CELL = np.array([[7.1, 0.0, 0.0], [0.6, 6.8, 0.0], [-0.4, 0.3, 7.3]])


@pytest.mark.parametrize("total", [0.0, -1.0])
def test_open_matches_numpy_and_matrix_is_spd(total):
    pos, chi, hard, sigma = random_cluster(14, 1, spacing=1.6)
    a, q_ref, e_ref, mu_ref = numpy_open_qeq(pos, chi, hard, sigma, total)
    assert np.linalg.eigvalsh(a).min() > 0
    for solver in ["dense", "cg"]:
        r = ff.qeq(system(pos), chi, hard, sigma, total_charge=total, solver=solver)
        np.testing.assert_allclose(r.charges, q_ref, atol=1e-9)
        assert r.energy == pytest.approx(e_ref, abs=1e-9)
        assert r.chemical_potential[0] == pytest.approx(mu_ref, abs=1e-9)
        assert abs(r.charges.sum() - total) < 1e-12
    # prefactor multiplies the Coulomb part of A only
    k = 14.399645478425667
    ak = a * k
    np.fill_diagonal(ak, hard + k / (sigma * np.sqrt(np.pi)))
    n = len(pos)
    m = np.zeros((n + 1, n + 1))
    m[:n, :n], m[:n, n], m[n, :n] = ak, 1, 1
    qk = np.linalg.solve(m, np.concatenate([-chi, [total]]))[:n]
    rk = ff.qeq(system(pos), chi, hard, sigma, total_charge=total, prefactor=k)
    np.testing.assert_allclose(rk.charges, qk, atol=1e-10)


@pytest.mark.parametrize("cell", [None, CELL])
def test_constraints_and_shift_invariance(cell):
    pos, chi, hard, sigma = random_cluster(16, 2)
    s = system(pos, cell)
    r = ff.qeq(s, chi, hard, sigma, total_charge=1.0)
    assert abs(r.charges.sum() - 1.0) < 1e-12
    r2 = ff.qeq(s, chi + 3.7, hard, sigma, total_charge=1.0)
    np.testing.assert_allclose(r2.charges, r.charges, atol=1e-10)
    assert r2.chemical_potential[0] == pytest.approx(r.chemical_potential[0] + 3.7, abs=1e-9)
    frag = np.arange(16) % 3
    for solver in ["dense", "cg"]:
        rf = ff.qeq(
            s, chi, hard, sigma, fragments=frag, fragment_charges=[0.5, -1.0, 0.0], solver=solver
        )
        sums = np.bincount(frag, rf.charges)
        np.testing.assert_allclose(sums, [0.5, -1.0, 0.0], atol=1e-12)
        assert rf.chemical_potential.shape == (3,)


@pytest.mark.parametrize("total", [0.0, -1.0])
def test_periodic_independent_of_ewald_width(total):
    pos, chi, hard, sigma = random_cluster(16, 3)
    s = system(pos, CELL)
    rs = [
        ff.qeq(s, chi, hard, sigma, total_charge=total, smearing=eta, ewald_truncation=1e-14)
        for eta in [1.0, 1.5, 2.0]
    ]
    for r in rs[1:]:
        np.testing.assert_allclose(r.charges, rs[0].charges, atol=1e-10)
        assert r.energy == pytest.approx(rs[0].energy, abs=1e-10)
        np.testing.assert_allclose(r.forces, rs[0].forces, atol=1e-9)
        np.testing.assert_allclose(r.stress, rs[0].stress, atol=1e-10)


def water():
    pos = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.24, 0.927, 0.0]])
    return pos, np.array([0.8, -0.3, -0.3]), np.array([1.2, 0.9, 0.9]), np.array([0.7, 0.5, 0.5])


def test_periodic_to_cluster_limit():
    pos, chi, hard, sigma = water()
    for total in [0.0, 1.0]:
        e_open = ff.qeq(system(pos), chi, hard, sigma, total_charge=total).energy
        errs = []
        for L in [10.0, 20.0, 40.0]:
            r = ff.qeq(system(pos + L / 2, np.eye(3) * L), chi, hard, sigma, total_charge=total)
            errs.append(r.energy - e_open + XI * total**2 / (2 * L))
        # what remains after the monopole term decays as 1/L^3 (dipole / finite size)
        assert abs(errs[1] / errs[0]) == pytest.approx(1 / 8, rel=0.05)
        assert abs(errs[2] / errs[1]) == pytest.approx(1 / 8, rel=0.05)
        if total:
            r60 = ff.qeq(system(pos + 30, np.eye(3) * 60), chi, hard, sigma, total_charge=total)
            assert (r60.energy - e_open) * 60 == pytest.approx(-XI / 2, rel=1e-3)


def fd(f, x, h=1e-5):
    x = np.array(x, float)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (f(xp) - f(xm)) / (2 * h)
    return g


@pytest.mark.parametrize("cell", [None, CELL])
def test_forces_and_stress_finite_differences(cell):
    pos, chi, hard, sigma = random_cluster(10, 4)
    kw = dict(total_charge=-0.5, ewald_truncation=1e-13)
    r = ff.qeq(system(pos, cell), chi, hard, sigma, **kw)
    f = fd(lambda p: ff.qeq(system(p, cell), chi, hard, sigma, **kw).energy, pos)
    # Hellmann-Feynman forces equal the full derivative of E_QEq(q*(R), R)
    np.testing.assert_allclose(r.forces, -f, atol=2e-8)
    if cell is not None:

        def strained(eps):
            e = np.eye(3) + eps.reshape(3, 3)
            return ff.qeq(system(pos @ e, cell @ e), chi, hard, sigma, **kw).energy

        de = fd(strained, np.zeros(9)).reshape(3, 3)
        vol = abs(np.linalg.det(cell))
        np.testing.assert_allclose(r.stress, de / vol, atol=2e-9)


@pytest.mark.parametrize("cell", [None, CELL])
def test_vjp_finite_differences(cell):
    pos, chi, hard, sigma = random_cluster(8, 5)
    rng = np.random.default_rng(0)
    gq = rng.normal(size=8)
    ge = 0.7
    kw = dict(total_charge=0.5, ewald_truncation=1e-13)

    def loss(p=pos, c=chi, j=hard, s=sigma, h=cell):
        r = ff.qeq(system(p, h), c, j, s, **kw)
        return gq @ r.charges + ge * r.energy

    _, g = ff.qeq_vjp(system(pos, cell), chi, hard, sigma, gq, ge, **kw)
    np.testing.assert_allclose(g.electronegativity, fd(lambda c: loss(c=c), chi), atol=1e-8)
    np.testing.assert_allclose(g.hardness, fd(lambda j: loss(j=j), hard), atol=1e-8)
    np.testing.assert_allclose(g.sigma, fd(lambda s: loss(s=s), sigma), atol=1e-8)
    np.testing.assert_allclose(g.positions, fd(lambda p: loss(p=p), pos), atol=1e-8)
    if cell is not None:
        np.testing.assert_allclose(g.cell, fd(lambda h: loss(h=h), cell), atol=1e-8)


def test_dq_dchi_and_adjoint_path():
    pos, chi, hard, sigma = random_cluster(8, 6)
    s = system(pos)
    # dq/dχ column by column from VJPs with unit cotangents, against finite differences
    jac = np.array(
        [ff.qeq_vjp(s, chi, hard, sigma, np.eye(8)[k])[1].electronegativity for k in range(8)]
    )
    jac_fd = np.array(
        [fd(lambda c, k=k: ff.qeq(s, c, hard, sigma).charges[k], chi) for k in range(8)]
    )
    np.testing.assert_allclose(jac, jac_fd, atol=1e-8)
    np.testing.assert_allclose(jac, jac.T, atol=1e-12)  # −P is symmetric
    # when q feeds another term, HF forces are wrong and the adjoint path is right
    w = np.linspace(0.5, 2.0, 8)

    def total(p):
        r = ff.qeq(system(p), chi, hard, sigma)
        return r.energy + w @ r.charges**2

    r, g = ff.qeq_vjp(s, chi, hard, sigma, 2 * w * ff.qeq(s, chi, hard, sigma).charges, 1.0)
    full = fd(total, pos)
    np.testing.assert_allclose(g.positions, full, atol=1e-8)
    assert np.abs(-r.forces - full).max() > 1e-3


def test_dense_cg_threads_warm_start_and_batch():
    pos, chi, hard, sigma = random_cluster(40, 7)
    for cell in [None, np.eye(3) * 9.5]:
        s = system(pos, cell)
        d = ff.qeq(s, chi, hard, sigma, total_charge=1.0, solver="dense")
        c = ff.qeq(s, chi, hard, sigma, total_charge=1.0, solver="cg", tolerance=1e-9)
        assert c.solver == "cg" and c.iterations > 0 and c.residual <= 1e-9
        np.testing.assert_allclose(c.charges, d.charges, atol=1e-7)
        assert c.energy == pytest.approx(d.energy, abs=1e-8)
        warm = ff.qeq(
            s,
            chi,
            hard,
            sigma,
            total_charge=1.0,
            solver="cg",
            tolerance=1e-9,
            initial_charges=c.charges,
        )
        assert warm.iterations < c.iterations
        before = ff.get_num_threads()
        try:
            out = []
            for t in [1, 2]:
                ff.set_num_threads(t)
                out.append(ff.qeq(s, chi, hard, sigma, total_charge=1.0, solver="cg"))
        finally:
            ff.set_num_threads(before)
        np.testing.assert_allclose(out[0].charges, out[1].charges, atol=1e-12)
        np.testing.assert_allclose(out[0].forces, out[1].forces, atol=1e-11)
    batch = ff.qeq_batch(
        [system(pos), system(pos[:10], np.eye(3) * 8)],
        [chi, chi[:10]],
        [hard, hard[:10]],
        [sigma, sigma[:10]],
        [0.0, -1.0],
    )
    assert abs(batch[1].charges.sum() + 1) < 1e-12
    single = ff.qeq(
        system(pos[:10], np.eye(3) * 8), chi[:10], hard[:10], sigma[:10], total_charge=-1.0
    )
    np.testing.assert_allclose(batch[1].charges, single.charges, atol=1e-12)


def test_bad_input():
    pos, chi, hard, sigma = random_cluster(5, 8)
    s = system(pos)
    with pytest.raises(ValueError, match="hardness"):
        ff.qeq(s, chi, np.where(np.arange(5) == 2, 0.0, hard), sigma)
    with pytest.raises(ValueError, match="sigma"):
        ff.qeq(s, chi, hard, -sigma)
    with pytest.raises(ValueError, match="fragment"):
        ff.qeq(s, chi, hard, sigma, fragments=[0, 0, 0, 2, 2], fragment_charges=[0, 1, 0])
    with pytest.raises(ValueError, match="charge"):
        ff.qeq(ff.System(np.zeros((0, 3)), np.zeros(0, np.int32)), [], [], [], total_charge=1.0)
    with pytest.raises(ValueError, match="electronegativity"):
        ff.qeq(s, np.where(np.arange(5) == 1, np.nan, chi), hard, sigma)
    with pytest.raises(ValueError, match="electronegativity"):
        ff.qeq(s, chi[:3], hard, sigma)
    with pytest.raises(ValueError, match="solver"):
        ff.qeq(s, chi, hard, sigma, solver="lu")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ff.qeq(system(np.where(np.arange(15).reshape(5, 3) == 4, np.nan, pos)), chi, hard, sigma)


def test_ase_calculator_nve_conserves_energy():
    ase = pytest.importorskip("ase")
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from farfield.ase import QEqCalculator

    rng = np.random.default_rng(3)
    pos = np.array([(i, j, k) for i in range(2) for j in range(2) for k in range(2)], float) * 2.8
    atoms = ase.Atoms(
        "NaClClNaClNaNaCl",
        positions=pos + rng.normal(0, 0.05, (8, 3)),
        cell=np.eye(3) * 5.6,
        pbc=True,
    )
    atoms.calc = QEqCalculator(
        {"Na": -1.0, "Cl": 1.5}, {"Na": 6.0, "Cl": 5.0}, {"Na": 0.8, "Cl": 1.0}
    )
    atoms.set_velocities(rng.normal(0, 0.01, (8, 3)))
    q = atoms.get_charges()
    assert abs(q.sum()) < 1e-12 and q[0] > 0
    e0 = atoms.get_total_energy()
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    energies = []
    for _ in range(20):
        dyn.run(2)
        energies.append(atoms.get_total_energy())
    assert np.ptp(np.array(energies) - e0) < 1e-4
    assert atoms.get_stress().shape == (6,)


@pytest.mark.parametrize("kspace", ["ewald", "pme"])
def test_kspace_and_preconditioner_choices_agree_with_dense(kspace):
    pos, chi, hard, sigma = random_cluster(64, 9)
    s = system(pos, np.array([[9.6, 0, 0], [0.5, 9.4, 0], [0, -0.3, 9.8]]))
    d = ff.qeq(s, chi, hard, sigma, total_charge=-1.0, solver="dense", kspace="ewald")
    assert d.kspace == "ewald" and d.preconditioner == "cholesky"  # dense: explicit Ewald
    if kspace == "pme":  # the dense solver cannot use PME: refused, not quietly replaced
        with pytest.raises(ValueError, match="kspace='pme' needs the conjugate-gradient"):
            ff.qeq(s, chi, hard, sigma, total_charge=-1.0, solver="dense", kspace=kspace)
    its = {}
    for pre in ["fourier", "jacobi"]:
        c = ff.qeq(
            s,
            chi,
            hard,
            sigma,
            total_charge=-1.0,
            solver="cg",
            kspace=kspace,
            preconditioner=pre,
            tolerance=1e-9,
        )
        assert (c.kspace, c.preconditioner, c.tolerance) == (kspace, pre, 1e-9)
        assert c.residual <= 1e-9 and c.iterations > 0
        np.testing.assert_allclose(c.charges, d.charges, atol=1e-8)
        assert c.energy == pytest.approx(d.energy, abs=1e-8)
        np.testing.assert_allclose(c.forces, d.forces, atol=1e-7)
        np.testing.assert_allclose(c.stress, d.stress, atol=1e-8)
        # the virial is the mechanical one, -dE/deps = -V stress (the sign of LAMMPS / nequip)
        np.testing.assert_allclose(c.stress, -c.virial / abs(np.linalg.det(s.cell)), rtol=1e-14)
        its[pre] = c.iterations
    assert its["fourier"] < its["jacobi"]
    with pytest.raises(ValueError, match="kspace"):
        ff.qeq(s, chi, hard, sigma, kspace="fft")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="preconditioner"):
        ff.qeq(s, chi, hard, sigma, preconditioner="ilu")  # type: ignore[arg-type]


def test_batch_fragments_warm_start_and_vjps_per_structure():
    rng = np.random.default_rng(11)
    structures, params = [], []
    for k, (n, cell) in enumerate([(9, None), (12, CELL), (10, np.eye(3) * 8.0)]):
        pos, chi, hard, sigma = random_cluster(n, 20 + k)
        structures.append(system(pos, cell))
        params.append((chi, hard, sigma))
    totals = [0.5, -1.0, 0.0]
    fragments = [None, np.arange(12) % 2, None]
    fragment_charges = [None, [-1.5, 0.5], None]
    gq = [rng.normal(size=len(s.numbers)) for s in structures]
    ge = [0.3, -0.7, 1.1]
    kw = dict(solver="cg", tolerance=1e-12, ewald_truncation=1e-13)
    out = ff.qeq_batch(
        structures,
        [p[0] for p in params],
        [p[1] for p in params],
        [p[2] for p in params],
        totals,
        fragments=fragments,
        fragment_charges=fragment_charges,
        grad_charges=gq,
        grad_energy=ge,
        **kw,
    )
    assert len(out) == 3
    for k, (r, g) in enumerate(out):
        chi, hard, sigma = params[k]
        if fragments[k] is None:
            assert abs(r.charges.sum() - totals[k]) < 1e-12
        else:
            np.testing.assert_allclose(
                np.bincount(fragments[k], r.charges), [-1.5, 0.5], atol=1e-12
            )

        def loss(c, k=k, hard=hard, sigma=sigma):
            one = ff.qeq(
                structures[k],
                c,
                hard,
                sigma,
                total_charge=totals[k],
                fragments=fragments[k],
                fragment_charges=fragment_charges[k],
                **kw,
            )
            return gq[k] @ one.charges + ge[k] * one.energy

        np.testing.assert_allclose(g.electronegativity, fd(loss, chi), atol=1e-8)

        def loss_pos(p, k=k, chi=chi, hard=hard, sigma=sigma):
            s = system(p, structures[k].cell)
            one = ff.qeq(
                s,
                chi,
                hard,
                sigma,
                total_charge=totals[k],
                fragments=fragments[k],
                fragment_charges=fragment_charges[k],
                **kw,
            )
            return gq[k] @ one.charges + ge[k] * one.energy

        full = fd(loss_pos, structures[k].positions)
        np.testing.assert_allclose(g.positions, full, atol=1e-7)
    # warm start per structure: starting from the solution needs (almost) no iterations
    cold = ff.qeq_batch(
        structures,
        [p[0] for p in params],
        [p[1] for p in params],
        [p[2] for p in params],
        totals,
        fragments=fragments,
        fragment_charges=fragment_charges,
        **kw,
    )
    warm = ff.qeq_batch(
        structures,
        [p[0] for p in params],
        [p[1] for p in params],
        [p[2] for p in params],
        totals,
        fragments=fragments,
        fragment_charges=fragment_charges,
        initial_charges=[r.charges for r in cold],
        **kw,
    )
    for c, w in zip(cold, warm, strict=True):
        assert w.iterations < c.iterations
        np.testing.assert_allclose(w.charges, c.charges, atol=1e-10)
    with pytest.raises(ValueError, match="fragments"):
        ff.qeq_batch(
            structures,
            [p[0] for p in params],
            [p[1] for p in params],
            [p[2] for p in params],
            totals,
            fragments=fragments[:2],
        )


# ---------------------------------------------------------------- the QEq calculator (issue #16)


def _strained(pos, cell, eps):
    """Positions and cell after r -> (1+eps) r, cell rows H -> H (1+eps)^T."""
    e = np.eye(3) + eps
    return pos @ e.T, cell @ e.T


def test_stress_virial_and_strain_gradient_use_column_vectors():
    """stress = (1/V) dE/deps, virial = -dE/deps and QEqGradients.strain = dL/deps for the
    column-vector strain, every entry (non-symmetric perturbations included) by central
    differences; the cell gradient dL/dH at fixed Cartesian positions is the independent
    finite difference of the cell alone."""
    pos, chi, hard, sigma = random_cluster(9, 21)
    calc = ff.QEq(chi, hard, sigma, total_charge=0.3, ewald_truncation=1e-13)
    gq = np.random.default_rng(4).normal(size=9)
    ge = -0.4
    r, g = calc.vjp(system(pos, CELL), gq, ge)
    vol = abs(np.linalg.det(CELL))

    def energy(eps):
        p, h = _strained(pos, CELL, eps.reshape(3, 3))
        return calc.compute(system(p, h)).energy

    def loss(eps):
        p, h = _strained(pos, CELL, eps.reshape(3, 3))
        out = calc.compute(system(p, h))
        return gq @ out.charges + ge * out.energy

    de = fd(energy, np.zeros(9)).reshape(3, 3)
    np.testing.assert_allclose(r.stress, de / vol, atol=2e-9)
    np.testing.assert_allclose(r.virial, -de, atol=2e-9 * vol)
    np.testing.assert_allclose(g.strain, fd(loss, np.zeros(9)).reshape(3, 3), atol=1e-8)

    def loss_cell(h):
        out = calc.compute(system(pos, h))
        return gq @ out.charges + ge * out.energy

    np.testing.assert_allclose(g.cell, fd(loss_cell, CELL), atol=1e-8)
    # the open system has neither
    open_result = calc.compute(system(pos))
    assert open_result.stress is None and open_result.virial is None


def test_calculator_backward_matches_finite_differences():
    """QEq.backward with per-call electronegativities (a model's predictions) against finite
    differences of L = gq . q + ge E."""
    pos, chi, hard, sigma = random_cluster(8, 22)
    calc = ff.QEq(hardness=hard, sigma=sigma, ewald_truncation=1e-13)
    gq = np.random.default_rng(5).normal(size=8)
    ge = 0.3

    def loss(p=pos, c=chi):
        out = calc.compute(system(p, CELL), electronegativity=c)
        return gq @ out.charges + ge * out.energy

    g = calc.backward(system(pos, CELL), grad_charges=gq, grad_energy=ge, electronegativity=chi)
    np.testing.assert_allclose(g.electronegativity, fd(lambda c: loss(c=c), chi), atol=1e-8)
    np.testing.assert_allclose(g.positions, fd(lambda p: loss(p=p), pos), atol=1e-8)
    with pytest.raises(ValueError, match="electronegativity"):
        calc.compute(system(pos, CELL))


def test_calculator_reuses_the_smearing_per_cell():
    """The smearing chosen for a cell is kept while N, max sigma and the cell stay; a new cell
    chooses again. The charges do not depend on the smearing (an invariance of the exact sum):
    a calculator with a very different fixed smearing agrees."""
    pos, chi, hard, sigma = random_cluster(10, 23)
    calc = ff.QEq(chi, hard, sigma, ewald_truncation=1e-13)
    first = calc.compute(system(pos, CELL))
    moved = pos + np.random.default_rng(6).normal(0, 0.05, pos.shape)
    second = calc.compute(system(moved, CELL))
    assert calc.tunings == 1
    assert second.parameters.smearing == first.parameters.smearing
    assert first.parameters.method == "ewald" and first.parameters.k_cutoff is not None
    other = ff.QEq(chi, hard, sigma, ewald_truncation=1e-13, smearing=0.6 * first.smearing)
    reference = other.compute(system(moved, CELL))
    assert reference.smearing != second.smearing
    np.testing.assert_allclose(second.charges, reference.charges, atol=1e-9)
    assert second.energy == pytest.approx(reference.energy, abs=1e-9)
    calc.compute(system(pos * 1.1, CELL * 1.1))
    assert calc.tunings == 2
    assert ff.QEq(chi, hard, sigma, smearing=1.0).compute(system(pos, CELL)).smearing == 1.0


def test_calculator_warm_starts_the_cg():
    pos, chi, hard, sigma = random_cluster(12, 24)
    calc = ff.QEq(chi, hard, sigma, solver="cg", tolerance=1e-10)
    cold = calc.compute(system(pos, CELL))
    warm = calc.compute(system(pos, CELL))
    assert cold.iterations > 3 and warm.iterations <= 1
    np.testing.assert_allclose(warm.charges, cold.charges, atol=1e-8)
    fresh = ff.QEq(chi, hard, sigma, solver="cg", tolerance=1e-10, warm_start=False)
    fresh.compute(system(pos, CELL))
    assert fresh.compute(system(pos, CELL)).iterations == cold.iterations


def test_deprecated_keywords_warn_and_give_the_new_names_results():
    pos, chi, hard, sigma = random_cluster(8, 25)
    s = system(pos, CELL)
    new = ff.qeq(s, chi, hard, sigma, smearing=1.1, ewald_truncation=1e-9)
    with pytest.warns(DeprecationWarning, match="ewald_sigma"):
        old = ff.qeq(s, chi, hard, sigma, ewald_sigma=1.1, ewald_truncation=1e-9)
    np.testing.assert_array_equal(old.charges, new.charges)
    with pytest.warns(DeprecationWarning, match="accuracy"):
        old = ff.qeq(s, chi, hard, sigma, smearing=1.1, accuracy=1e-9)
    np.testing.assert_array_equal(old.charges, new.charges)
    with pytest.warns(DeprecationWarning, match="ewald_sigma"):
        calc = ff.QEq(chi, hard, sigma, ewald_sigma=1.1, ewald_truncation=1e-9)
    assert calc.smearing == 1.1
    with pytest.warns(DeprecationWarning, match="ewald_sigma"):
        assert new.ewald_sigma == new.smearing == new.parameters.smearing == 1.1
    with pytest.raises(TypeError, match="both"):
        ff.qeq(s, chi, hard, sigma, smearing=1.0, ewald_sigma=1.0)
    gq = np.ones(8)
    with pytest.warns(DeprecationWarning):
        _, g_old = ff.qeq_vjp(s, chi, hard, sigma, gq, ewald_sigma=1.1, accuracy=1e-9)
    _, g_new = ff.qeq_vjp(s, chi, hard, sigma, gq, smearing=1.1, ewald_truncation=1e-9)
    np.testing.assert_array_equal(g_old.positions, g_new.positions)
    with pytest.warns(DeprecationWarning):
        (b_old,) = ff.qeq_batch([s], [chi], [hard], [sigma], ewald_sigma=1.1)
    assert b_old.smearing == 1.1


def test_result_is_an_energy_result():
    pos, chi, hard, sigma = random_cluster(6, 26)
    r = ff.qeq(system(pos, CELL), chi, hard, sigma, prefactor=2.0)
    assert isinstance(r, ff.EnergyResult) and isinstance(r, ff.QEqResult)
    assert isinstance(r.parameters, ff.CoulombParameters)
    assert r.parameters.prefactor == 2.0 and r.parameters.exponent == 1.0
    assert r.potentials is None and r.timing.compute > 0.0 and r.timing.choose == 0.0
    o = ff.qeq(system(pos), chi, hard, sigma)
    assert o.parameters.method == "direct" and o.parameters.smearing is None


def test_ase_calculator_keeps_one_qeq_and_returns_the_stress():
    pytest.importorskip("ase")
    from ase import Atoms
    from ase.calculators.fd import calculate_numerical_stress

    from farfield.ase import QEqCalculator

    rng = np.random.default_rng(7)
    atoms = Atoms(
        "Na4Cl4",
        positions=rng.uniform(0, 5.6, (8, 3)),
        cell=np.eye(3) * 5.6 + 0.2 * rng.random((3, 3)),
        pbc=True,
    )
    calc = QEqCalculator(
        {"Na": -1.0, "Cl": 1.5},
        {"Na": 6.0, "Cl": 5.0},
        {"Na": 0.8, "Cl": 1.0},
        ewald_truncation=1e-13,
    )
    atoms.calc = calc
    for _ in range(3):
        atoms.positions += rng.normal(0, 0.01, (8, 3))
        atoms.get_forces()
    assert calc.qeq.tunings == 1
    np.testing.assert_allclose(
        atoms.get_stress(), calculate_numerical_stress(atoms, eps=1e-5), atol=1e-7
    )
    with pytest.warns(DeprecationWarning, match="ewald_sigma"):
        QEqCalculator(1.0, 1.0, 1.0, ewald_sigma=1.0)


def test_medium_cluster_all_solvers_match_numpy_and_finite_differences():
    """600 atoms (several blocks of the blocked faer Cholesky): the dense factorisation, the CG
    on the stored matrix and the matrix-free CG (a memory limit below the N² matrix) against
    numpy's bordered solve of the formula, with three fragment constraints; dq/dχ along a
    random direction (VJP) and the forces along a random displacement against central
    differences."""
    n = 600
    pos, chi, hard, sigma = random_cluster(n, 11, spacing=2.0)
    frag = np.arange(n) * 3 // n
    charges = np.array([0.5, -1.0, 0.25])
    r = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    g = np.sqrt(sigma[:, None] ** 2 + sigma[None] ** 2)
    np.fill_diagonal(r, 1.0)
    a = erf(r / (np.sqrt(2) * g)) / r
    np.fill_diagonal(a, hard + 1 / (sigma * np.sqrt(np.pi)))
    c = (frag[None] == np.arange(3)[:, None]).astype(float)
    m = np.block([[a, c.T], [c, np.zeros((3, 3))]])
    sol = np.linalg.solve(m, np.concatenate([-chi, charges]))
    q_ref, mu_ref = sol[:n], -sol[n:]
    s = system(pos)
    kw = dict(fragments=frag, fragment_charges=charges, tolerance=1e-11)
    results = {
        "factorised": ff.qeq(s, chi, hard, sigma, solver="dense", **kw),
        "stored": ff.qeq(s, chi, hard, sigma, solver="cg", **kw),
    }
    before = ff.get_limits()
    try:
        ff.set_limits(max_memory=0.5 * 8 * n * n, max_terms=before.max_terms)
        results["matrix-free"] = ff.qeq(s, chi, hard, sigma, solver="cg", **kw)
    finally:
        ff.set_limits(before.max_memory, before.max_terms)
    for matrix, res in results.items():
        assert res.matrix == matrix
        np.testing.assert_allclose(res.charges, q_ref, atol=1e-9)
        np.testing.assert_allclose(res.chemical_potential, mu_ref, atol=1e-9)
        np.testing.assert_allclose(c @ res.charges, charges, atol=1e-12)
        assert res.energy == pytest.approx(chi @ q_ref + 0.5 * q_ref @ a @ q_ref, abs=1e-8)
    rng = np.random.default_rng(3)
    u, v = rng.normal(size=n), rng.normal(size=n)
    h = 1e-4
    for solver in ["dense", "cg"]:
        _, grads = ff.qeq_vjp(s, chi, hard, sigma, u, solver=solver, **kw)
        qp = ff.qeq(s, chi + h * v, hard, sigma, solver=solver, **kw).charges
        qm = ff.qeq(s, chi - h * v, hard, sigma, solver=solver, **kw).charges
        assert grads.electronegativity @ v == pytest.approx(u @ (qp - qm) / (2 * h), abs=1e-7)
    d = rng.normal(size=(n, 3))
    f = results["factorised"].forces
    ep = ff.qeq(system(pos + h * d), chi, hard, sigma, solver="dense", **kw).energy
    em = ff.qeq(system(pos - h * d), chi, hard, sigma, solver="dense", **kw).energy
    assert -(f * d).sum() == pytest.approx((ep - em) / (2 * h), abs=1e-6)
    np.testing.assert_allclose(results["stored"].forces, f, atol=1e-8)
    np.testing.assert_allclose(results["matrix-free"].forces, f, atol=1e-8)
