"""farfield.torch against numerical derivatives (gradcheck, gradgradcheck: central finite
differences of the forward values), the engines' analytic forces, the core's QEq adjoint, and
invariances (thread count, batch composition)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import farfield as ff  # noqa: E402
from farfield import torch as fft  # noqa: E402

CELL = [[4.0, 0.0, 0.0], [0.2, 4.5, 0.0], [0.1, -0.3, 5.0]]
#: parallel reductions (the open LODE backward, PME spreading) add per-thread partial results
#: in scheduling order: two backward passes may differ by round-off (not bitwise reentrant)
ROUND_OFF = 1e-10


def _positions(n: int, scale: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.rand(n, 3, generator=g, dtype=torch.float64)).requires_grad_()


def _charges(n: int, seed: int, neutral: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(n, generator=g, dtype=torch.float64) - 0.5
    if neutral:
        q = q - q.mean()
    return q.requires_grad_()


def _cell() -> torch.Tensor:
    return torch.tensor(CELL, dtype=torch.float64)


@pytest.mark.parametrize(
    ("periodic", "method", "exponent", "neutral"),
    [
        (False, "auto", 1.0, False),
        (False, "auto", 6.0, True),
        (True, "ewald", 1.0, False),
        (True, "pme", 1.0, True),
        (True, "ewald", 2.5, True),
        (True, "ewald", 6.0, False),
    ],
)
def test_coulomb_first_and_second_derivatives(
    periodic: bool, method: str, exponent: float, neutral: bool
) -> None:
    r, q = _positions(6, 4.0, 1), _charges(6, 2, neutral)
    cell = _cell() if periodic else None
    calc = ff.Coulomb(exponent=exponent, accuracy=1e-10, method=method, prefactor=2.0)

    def energy(r: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return fft.coulomb_energy(r, q, cell, calculator=calc)

    def potentials(r: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return fft.coulomb_potentials(r, q, cell, calculator=calc)

    for f in (energy, potentials):
        assert torch.autograd.gradcheck(f, (r, q), nondet_tol=ROUND_OFF)
        assert torch.autograd.gradgradcheck(f, (r, q), nondet_tol=ROUND_OFF)


@pytest.mark.parametrize("function", ["energy", "potentials"])
def test_coulomb_cell_gradient(function: str) -> None:
    r, q = _positions(5, 4.0, 3), _charges(5, 4, False)
    h = _cell().requires_grad_()
    calc = ff.Coulomb(accuracy=1e-10)
    f = fft.coulomb_energy if function == "energy" else fft.coulomb_potentials
    assert torch.autograd.gradcheck(
        lambda r, q, h: f(r, q, h, calculator=calc), (r, q, h), nondet_tol=ROUND_OFF
    )


def test_autograd_forces_and_stress_equal_the_engine() -> None:
    r, q = _positions(8, 4.0, 5), _charges(8, 6, True)
    h = _cell().requires_grad_()
    calc = ff.Coulomb(accuracy=1e-8)
    energy = fft.coulomb_energy(r, q, h, calculator=calc)
    grad_r, grad_q, grad_h = torch.autograd.grad(energy, (r, q, h))
    system = ff.System(r.detach().numpy(), np.ones(8, dtype=np.int32), h.detach().numpy())
    ref = calc.compute(system, q.detach().numpy(), potentials=True)
    np.testing.assert_allclose(-grad_r.numpy(), ref.forces, atol=1e-10)
    np.testing.assert_allclose(grad_q.numpy(), ref.potentials, atol=1e-10)
    # stress = (1/V) ∂E/∂ε with ∂E/∂ε = Σ r ⊗ ∂E/∂r + Hᵀ ∂E/∂H (column-vector strain)
    strain = grad_r.numpy().T @ r.detach().numpy() + grad_h.numpy().T @ h.detach().numpy()
    volume = abs(np.linalg.det(h.detach().numpy()))
    np.testing.assert_allclose(strain / volume, ref.stress, atol=1e-10)


def test_force_loss_gradient_matches_finite_differences() -> None:
    # what force training needs: ∂/∂q of a loss on F = −∂E/∂r
    r, q = _positions(6, 4.0, 7), _charges(6, 8, False)
    cell = _cell()
    calc = ff.Coulomb(accuracy=1e-10, method="pme")
    target = torch.zeros(6, 3, dtype=torch.float64)

    def loss(q: torch.Tensor) -> torch.Tensor:
        r_ = r.detach().requires_grad_()
        e = fft.coulomb_energy(r_, q, cell, calculator=calc)
        (forces,) = torch.autograd.grad(-e, r_, create_graph=True)
        return ((forces - target) ** 2).sum()

    q0 = q.detach().requires_grad_()
    (grad,) = torch.autograd.grad(loss(q0), q0)
    h = 1e-5
    for k in range(6):
        dq = torch.zeros(6, dtype=torch.float64)
        dq[k] = h
        fd = (loss(q0.detach() + dq) - loss(q0.detach() - dq)).detach() / (2 * h)
        assert abs(float(fd) - float(grad[k].detach())) <= 1e-6 * max(1.0, abs(float(fd)))


@pytest.mark.parametrize(
    ("method", "exponent", "neutral"),
    [
        ("ewald", 1.0, False),
        ("ewald", 2.5, True),
        ("pme", 1.0, True),
        ("pme", 6.0, False),
    ],
)
def test_coulomb_second_derivatives_with_the_cell(
    method: str, exponent: float, neutral: bool
) -> None:
    # every second derivative of E(r, q, H) and φ(r, q, H), the cell's included, against
    # central differences of the first derivatives (gradgradcheck)
    r, q = _positions(5, 4.0, 9), _charges(5, 10, neutral)
    h = _cell().requires_grad_()
    calc = ff.Coulomb(exponent=exponent, accuracy=1e-10, method=method, prefactor=2.0)

    def energy(r: torch.Tensor, q: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return fft.coulomb_energy(r, q, h, calculator=calc)

    def potentials(r: torch.Tensor, q: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return fft.coulomb_potentials(r, q, h, calculator=calc)

    for f in (energy, potentials):
        assert torch.autograd.gradgradcheck(f, (r, q, h), nondet_tol=ROUND_OFF)


@pytest.mark.parametrize("method", ["ewald", "pme"])
def test_stress_loss_gradient_matches_finite_differences(method: str) -> None:
    # an ML model predicting charges, trained on the stress: ∂/∂q and ∂/∂r of a loss on
    # σ = (1/V) (Σ r ⊗ ∂E/∂r + Hᵀ ∂E/∂H)
    r0, q0 = _positions(6, 4.0, 11), _charges(6, 12, False)
    calc = ff.Coulomb(accuracy=1e-10, method=method)
    target = torch.eye(3, dtype=torch.float64) * 1e-3

    def loss(r: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        h = _cell().requires_grad_()
        r_ = r if r.requires_grad else r.detach().requires_grad_()
        e = fft.coulomb_energy(r_, q, h, calculator=calc)
        grad_r, grad_h = torch.autograd.grad(e, (r_, h), create_graph=True)
        stress = (grad_r.T @ r_ + grad_h.T @ h) / torch.linalg.det(h)
        return ((stress - target) ** 2).sum()

    r, q = r0.detach().requires_grad_(), q0.detach().requires_grad_()
    grad_r, grad_q = torch.autograd.grad(loss(r, q), (r, q))
    step = 1e-5

    def central(dr: torch.Tensor, dq: torch.Tensor) -> float:
        plus = loss(r0.detach() + dr, q0.detach() + dq)
        minus = loss(r0.detach() - dr, q0.detach() - dq)
        return float((plus - minus).detach()) / (2 * step)

    scale = float(grad_q.abs().max())
    for k in range(6):
        dq = torch.zeros(6, dtype=torch.float64)
        dq[k] = step
        fd = central(torch.zeros(6, 3, dtype=torch.float64), dq)
        assert abs(fd - float(grad_q[k])) <= 1e-6 * scale
    scale = float(grad_r.abs().max())
    for k, x in [(0, 0), (3, 1), (5, 2)]:
        dr = torch.zeros(6, 3, dtype=torch.float64)
        dr[k, x] = step
        fd = central(dr, torch.zeros(6, dtype=torch.float64))
        assert abs(fd - float(grad_r[k, x])) <= 1e-6 * scale


def test_batch_second_derivatives_with_the_cell() -> None:
    module = fft.CoulombEnergy(accuracy=1e-10)
    r, q = _positions(4, 4.0, 13), _charges(4, 14, False)
    h = _cell().requires_grad_()

    def energies(r: torch.Tensor, q: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return module.batch([r, r.detach()], [q, q.detach()], [h, None])

    assert torch.autograd.gradgradcheck(energies, (r, q, h), nondet_tol=ROUND_OFF)


def test_dtype_device_and_no_grad(monkeypatch: pytest.MonkeyPatch) -> None:
    r = _positions(4, 4.0, 11).detach().float().requires_grad_()
    q = _charges(4, 12, True).detach().float()
    e = fft.coulomb_energy(r, q)
    assert e.dtype == torch.float32
    (g,) = torch.autograd.grad(e, r)
    assert g.dtype == torch.float32
    with pytest.raises(ValueError, match="positions is on meta"):
        fft.coulomb_energy(torch.zeros(4, 3, device="meta"), q)
    with pytest.raises(ValueError, match="charges must have shape"):
        fft.coulomb_energy(r, q[:3])
    asked = []
    original = ff.Coulomb.compute

    def spy(self: ff.Coulomb, *args: object, **kwargs: object) -> object:
        asked.append(kwargs.get("forces"))
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ff.Coulomb, "compute", spy)
    with torch.no_grad():
        e = fft.coulomb_energy(r, q)
    assert not e.requires_grad and asked == [False]


def test_batch_and_thread_count_do_not_change_results() -> None:
    module = fft.CoulombEnergy(accuracy=1e-10)
    rs = [_positions(n, 4.0, 20 + n) for n in (3, 5, 4)]
    qs = [_charges(n, 30 + n, True) for n in (3, 5, 4)]
    cells = [_cell(), None, _cell() * 1.1]
    batch = module.batch(rs, qs, cells)
    single = torch.stack([module(r, q, h) for r, q, h in zip(rs, qs, cells, strict=True)])
    assert torch.equal(batch, single)
    # gradients: the same as one structure at a time; a batch in another order and
    # composition gives each structure the same energy
    weights = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    g_batch = torch.autograd.grad((weights * batch).sum(), [*rs, *qs])
    g_single = torch.autograd.grad((weights * single).sum(), [*rs, *qs])
    for a, b in zip(g_batch, g_single, strict=True):
        assert torch.equal(a, b)
    again = module.batch([rs[2], rs[1]], [qs[2], qs[1]], [cells[2], cells[1]])
    assert torch.equal(again, batch[[2, 1]])

    def pair(r0: torch.Tensor, q0: torch.Tensor, r1: torch.Tensor) -> torch.Tensor:
        return module.batch([r0, r1], [q0, qs[1].detach()], [cells[0], None])

    assert torch.autograd.gradgradcheck(pair, (rs[0], qs[0], rs[1]), nondet_tol=ROUND_OFF)
    r, q, cell = rs[1].detach(), qs[1].detach(), _cell()
    u = np.random.default_rng(0).normal(size=(5, 3))
    threads = ff.get_num_threads()
    system = ff.System(r.numpy(), np.ones(5, dtype=np.int32), cell.numpy())
    out = []
    for n in (1, 2):
        ff.set_num_threads(n)
        out.append(ff._native.second_order(system._arrays(), q.numpy(), q.numpy(), u))
    ff.set_num_threads(threads)
    for key in ("gradient", "dipole_a", "hvp"):
        np.testing.assert_allclose(out[0][key], out[1][key], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("periodic", [False, True])
def test_qeq_first_and_second_derivatives(periodic: bool) -> None:
    r = _positions(5, 3.0, 40)
    g = torch.Generator().manual_seed(41)
    chi = torch.rand(5, generator=g, dtype=torch.float64).requires_grad_()
    hardness = (1.0 + torch.rand(5, generator=g, dtype=torch.float64)).requires_grad_()
    sigma = (0.5 + 0.3 * torch.rand(5, generator=g, dtype=torch.float64)).requires_grad_()
    cell = _cell() if periodic else None
    calc = ff.QEq(total_charge=0.5, ewald_truncation=1e-12, tolerance=1e-12, prefactor=1.5)

    def charges(chi: torch.Tensor, j: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return fft.qeq(r, chi, j, sigma.detach(), cell, calculator=calc)[0]

    def energy(chi: torch.Tensor, j: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return fft.qeq(r, chi, j, sigma.detach(), cell, calculator=calc)[1]

    for f in (charges, energy):
        assert torch.autograd.gradcheck(f, (chi, hardness, r), nondet_tol=ROUND_OFF)
        assert torch.autograd.gradgradcheck(f, (chi, hardness, r), nondet_tol=ROUND_OFF)
    # σ and the cell to first order
    h = None if cell is None else cell.clone().requires_grad_()
    args = (sigma,) if h is None else (sigma, h)
    for out in (0, 1):
        assert torch.autograd.gradcheck(
            lambda s, *h: fft.qeq(
                r.detach(),
                chi.detach(),
                hardness.detach(),
                s,
                h[0] if h else None,
                calculator=calc,
            )[out],  # noqa: B023 (called at once)
            args,
            nondet_tol=ROUND_OFF,
        )


@pytest.mark.parametrize("total_charge", [0.0, 0.5])
def test_qeq_second_derivatives_with_the_cell(total_charge: float) -> None:
    r = _positions(5, 3.0, 42)
    g = torch.Generator().manual_seed(43)
    chi = torch.rand(5, generator=g, dtype=torch.float64).requires_grad_()
    hardness = 1.0 + torch.rand(5, generator=g, dtype=torch.float64)
    sigma = 0.5 + 0.3 * torch.rand(5, generator=g, dtype=torch.float64)
    h = _cell().requires_grad_()
    calc = ff.QEq(total_charge=total_charge, ewald_truncation=1e-12, tolerance=1e-12, prefactor=1.5)

    def charges(chi: torch.Tensor, r: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return fft.qeq(r, chi, hardness, sigma, h, calculator=calc)[0]

    def energy(chi: torch.Tensor, r: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return fft.qeq(r, chi, hardness, sigma, h, calculator=calc)[1]

    for f in (charges, energy):
        assert torch.autograd.gradgradcheck(f, (chi, r, h), nondet_tol=ROUND_OFF)
    # the cell gradient (now from the Hessian products' strain route) equals the core's adjoint
    w = torch.linspace(1.0, -0.3, 5, dtype=torch.float64)
    q, e = fft.qeq(r, chi, hardness, sigma, h, calculator=calc)
    (grad_h,) = torch.autograd.grad((q * w).sum() + 0.7 * e, h)
    system = ff.System(r.detach().numpy(), np.ones(5, dtype=np.int32), h.detach().numpy())
    _, ref = calc.vjp(system, w.numpy(), 0.7, chi.detach().numpy(), hardness.numpy(), sigma.numpy())
    np.testing.assert_allclose(grad_h.numpy(), ref.cell, atol=1e-9)


def test_qeq_gradients_equal_the_core_adjoint() -> None:
    r = _positions(6, 3.0, 50)
    chi = torch.linspace(-0.5, 0.5, 6, dtype=torch.float64).requires_grad_()
    hardness = torch.full((6,), 1.3, dtype=torch.float64)
    sigma = torch.full((6,), 0.7, dtype=torch.float64)
    w = torch.linspace(1.0, -0.3, 6, dtype=torch.float64)
    calc = ff.QEq()
    q, e = fft.qeq(r, chi, hardness, sigma, calculator=calc)
    grad_chi, grad_r = torch.autograd.grad((q * w).sum() + 0.7 * e, (chi, r))
    system = ff.System(r.detach().numpy(), np.ones(6, dtype=np.int32))
    _, ref = calc.vjp(system, w.numpy(), 0.7, chi.detach().numpy(), 1.3, 0.7)
    np.testing.assert_allclose(grad_chi.numpy(), ref.electronegativity, atol=1e-9)
    np.testing.assert_allclose(grad_r.numpy(), ref.positions, atol=1e-9)


def test_qeq_fragments_and_refusals() -> None:
    r = _positions(6, 3.0, 60)
    chi = torch.linspace(-0.5, 0.5, 6, dtype=torch.float64).requires_grad_()
    calc = ff.QEq(tolerance=1e-12)
    fragments = [0, 0, 0, 1, 1, 1]

    def charges(chi: torch.Tensor) -> torch.Tensor:
        q, _ = fft.qeq(
            r.detach(),
            chi,
            1.2,
            0.6,
            fragments=fragments,
            fragment_charges=[1.0, -1.0],
            calculator=calc,
        )
        return q

    q = charges(chi)
    np.testing.assert_allclose(
        [float(q[:3].sum().detach()), float(q[3:].sum().detach())], [1.0, -1.0], atol=1e-10
    )
    assert torch.autograd.gradcheck(charges, (chi,), nondet_tol=ROUND_OFF)
    assert torch.autograd.gradgradcheck(charges, (chi,), nondet_tol=ROUND_OFF)
    sigma = torch.full((6,), 0.6, dtype=torch.float64, requires_grad=True)
    _, e = fft.qeq(r, chi, 1.2, sigma, calculator=calc)
    with pytest.raises(NotImplementedError, match="sigma"):
        torch.autograd.grad(e, r, create_graph=True)
    # once (no graph) is fine
    _, e = fft.qeq(r, chi, 1.2, sigma, calculator=calc)
    assert torch.autograd.grad(e, sigma)[0].shape == (6,)
    with pytest.raises(TypeError, match="farfield.QEq"):
        fft.qeq(r, chi, 1.2, 0.6, calculator=ff.Coulomb())  # type: ignore[arg-type]


def _calculators() -> list[object]:
    lode = ff.LodeSphericalExpansion(
        exponent=1, smearing=0.8, max_angular=1, max_radial=1, radius=2.0
    )
    return [
        ff.SphericalExpansion(cutoff=2.5, max_radial=2, max_angular=2, smearing=0.4),
        ff.PowerSpectrum(cutoff=2.5, max_radial=1, max_angular=1, smearing=0.4),
        lode,
        ff.LodePowerSpectrum(lode),
    ]


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("periodic", [False, True])
def test_features_first_derivatives_and_double_backward(index: int, periodic: bool) -> None:
    calc = _calculators()[index]
    r = _positions(5, 3.0, 70)
    numbers = np.array([1, 8, 1, 8, 8])
    h = _cell().requires_grad_() if periodic else None
    args = (r,) if h is None else (r, h)

    def values(r: torch.Tensor, *h: torch.Tensor) -> torch.Tensor:
        return fft.features(calc, r, numbers, h[0] if h else None)

    # fast mode: finite differences along random directions (the open LODE sums are the
    # costly part of this file)
    assert torch.autograd.gradcheck(values, args, atol=1e-6, fast_mode=True, nondet_tol=ROUND_OFF)
    upstream = torch.randn_like(values(*args)).requires_grad_()

    def vjp(g: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = fft.features(calc, r, numbers, h, position_hessian="omit")
        return torch.autograd.grad(x, args, g, create_graph=True)

    assert torch.autograd.gradcheck(vjp, (upstream,), fast_mode=True, nondet_tol=ROUND_OFF)
    x = fft.features(calc, r, numbers, h)
    (gr,) = torch.autograd.grad(x, r, upstream.detach(), create_graph=True)
    with pytest.raises(NotImplementedError, match="position_hessian"):
        torch.autograd.grad(gr.sum(), r)


def test_feature_argument_errors() -> None:
    r = _positions(3, 3.0, 80)
    with pytest.raises(TypeError, match="calculator"):
        fft.features(ff.Coulomb(), r, [1, 1, 1])
    with pytest.raises(ValueError, match="position_hessian"):
        fft.features(_calculators()[0], r, [1, 1, 1], position_hessian="skip")
    with pytest.raises(TypeError, match="PowerSpectrum"):
        fft.power_spectrum(_calculators()[0], r, [1, 1, 1])  # type: ignore[arg-type]


def test_training_example_runs(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    """examples/train_qeq_model.py end to end on a tiny set (its full run is in the docs)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "train_qeq_model.py"
    spec = importlib.util.spec_from_file_location("train_qeq_model", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_qeq_model"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    data = module.dataset(3, seed=1)
    for s in data:
        assert abs(float(s.charges.sum()) - s.total_charge) < 1e-9
    output = Path(str(tmp_path)) / "curves.png"
    module.main(["--smoke", "--output", str(output)])
    printed = capsys.readouterr().out
    assert "short-range: test RMSE" in printed and "QEq: test RMSE" in printed
    assert output.stat().st_size > 0


def test_feature_gradients_equal_the_dense_gradients() -> None:
    """The backward pass (core VJP) against the dense position gradients of compute()."""
    soap = ff.PowerSpectrum(cutoff=2.5, max_radial=2, max_angular=2, smearing=0.4)
    r = _positions(6, 3.0, 90)
    numbers = np.array([1, 8, 1, 8, 8, 1])
    x = fft.power_spectrum(soap, r, numbers, _cell())
    w = torch.linspace(-1.0, 1.0, x.numel(), dtype=torch.float64).reshape(x.shape)
    (grad,) = torch.autograd.grad((w * x).sum(), r)
    dense = soap.compute(
        ff.System(r.detach().numpy(), numbers, np.array(CELL)), gradients=["positions"]
    )
    assert dense.positions_samples is not None
    expected = np.zeros((6, 3))
    rows, atoms = dense.positions_samples[:, 0], dense.positions_samples[:, 2]
    np.add.at(
        expected, atoms, np.einsum("gxp,gp->gx", dense.gradients["positions"], w.numpy()[rows])
    )
    np.testing.assert_allclose(grad.numpy(), expected, atol=1e-12)


def test_qeq_batch_equals_one_by_one() -> None:
    rs = [_positions(n, 3.0, 100 + n) for n in (4, 6, 5)]
    chis = [torch.linspace(-0.5, 0.5, len(r), dtype=torch.float64).requires_grad_() for r in rs]
    cells = [None, _cell(), None]
    totals = [0.0, 1.0, -1.0]
    calc = ff.QEq(tolerance=1e-12, ewald_truncation=1e-12)
    qs, es = fft.qeq_batch(rs, chis, 1.3, 0.7, cells, total_charges=totals, calculator=calc)
    for k in range(3):
        q, e = fft.qeq(
            rs[k],
            chis[k],
            1.3,
            0.7,
            cells[k],
            calculator=ff.QEq(total_charge=totals[k], tolerance=1e-12, ewald_truncation=1e-12),
        )
        np.testing.assert_allclose(qs[k].detach().numpy(), q.detach().numpy(), atol=1e-10)
        assert abs(float(es[k].detach()) - float(e.detach())) < 1e-10
        assert abs(float(qs[k].sum().detach()) - totals[k]) < 1e-10
    grads = torch.autograd.grad(es.sum(), [*rs, *chis])
    single = torch.autograd.grad(
        sum(
            fft.qeq(
                rs[k],
                chis[k],
                1.3,
                0.7,
                cells[k],
                calculator=ff.QEq(total_charge=totals[k], tolerance=1e-12, ewald_truncation=1e-12),
            )[1]
            for k in range(3)
        ),
        [*rs, *chis],
    )
    for a, b in zip(grads, single, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-9)


def test_qeq_batch_returns_the_input_dtype() -> None:
    rs = [_positions(4, 3.0, 110).detach().float(), _positions(5, 3.0, 111).detach().float()]
    chis = [torch.zeros(4), torch.zeros(5)]
    qs, es = fft.qeq_batch(rs, chis, 1.3, 0.7, total_charges=[1.0, -1.0])
    assert es.dtype == torch.float32 and all(q.dtype == torch.float32 for q in qs)
    q, e = fft.qeq(rs[0], chis[0], 1.3, 0.7, calculator=ff.QEq(total_charge=1.0))
    assert e.dtype == torch.float32
    np.testing.assert_allclose(qs[0].numpy(), q.numpy(), atol=1e-6)
