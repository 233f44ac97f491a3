"""Issue 15 for QEq and System: no hang (cost before work, Ctrl-C), no ignored option, no
silent coercion, clear errors."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import farfield as ff

CELL = np.array([[7.1, 0.0, 0.0], [0.6, 6.8, 0.0], [-0.4, 0.3, 7.3]])


def cluster(n: int, cell: np.ndarray | None = None, seed: int = 3) -> ff.System:
    rng = np.random.default_rng(seed)
    m = int(np.ceil(n ** (1 / 3)))
    grid = np.array([(i, j, k) for i in range(m) for j in range(m) for k in range(m)][:n], float)
    pos = grid * 2.3 + rng.uniform(-0.3, 0.3, (n, 3))
    return ff.System(pos, np.ones(n, np.int32), cell)


# ---------------------------------------------------------------- cost before work


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"sigma": 1e3}, "sigma"),
        ({"smearing": 1e3}, "smearing"),
        ({"smearing": 1e-4}, "smearing"),
        ({"smearing": 1e3, "solver": "cg"}, "smearing"),
        ({"smearing": 1e-4, "solver": "cg"}, "smearing"),
        ({"smearing": 1e-4, "solver": "cg", "kspace": "pme"}, "smearing"),
    ],
)
def test_expensive_widths_are_refused_at_once(kwargs: dict[str, object], name: str) -> None:
    s = cluster(16, CELL)
    sigma = kwargs.pop("sigma", 0.7)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=name) as info:
        ff.qeq(s, 0.1, 1.0, sigma, **kwargs)  # type: ignore[arg-type]
    assert time.perf_counter() - start < 2.0
    assert "would need" in str(info.value)


def test_dense_solve_beyond_the_limits_is_refused() -> None:
    n = 3000
    s = ff.System(np.arange(n)[:, None] * np.array([[1.5, 0.0, 0.0]]), np.ones(n, np.int32))
    try:
        ff.set_limits(max_memory=50e6)  # 2 N² doubles = 144 MB
        with pytest.raises(ValueError, match="solver='cg'"):
            ff.qeq(s, 0.0, 1.0, 0.5, solver="dense")
        ff.set_limits(max_terms=1e9)  # N³/3 = 9e9 multiply-adds
        with pytest.raises(ValueError, match="factorisation"):
            ff.qeq(s, 0.0, 1.0, 0.5, solver="dense")
    finally:
        ff.set_limits()


def test_ctrl_c_stops_a_long_solve() -> None:
    # an open system: every CG product is N² Gaussian pair terms (seconds each)
    n = 40000
    rng = np.random.default_rng(0)
    grid = np.array(np.meshgrid(*[np.arange(35)] * 3, indexing="ij")).reshape(3, -1).T[:n]
    s = ff.System(grid * 2.0 + rng.uniform(-0.2, 0.2, (n, 3)), np.ones(n, np.int32))
    chi = rng.uniform(-1, 1, n)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    try:
        ff.set_limits(max_terms=1e15)
        timer.start()
        start = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            ff.qeq(s, chi, 1.0, 0.7, solver="cg", tolerance=1e-14, max_iterations=100000)
        elapsed = time.perf_counter() - start
    finally:
        timer.cancel()
        ff.set_limits()
    assert elapsed < 2.5, elapsed
    # the next call is not affected
    r = ff.qeq(cluster(8), 0.1, 1.0, 0.7)
    assert abs(r.charges.sum()) < 1e-12


# ---------------------------------------------------------------- options honoured or refused


def test_pme_with_dense_is_refused_and_auto_honours_pme() -> None:
    s = cluster(16, CELL)
    with pytest.raises(ValueError, match="kspace"):
        ff.qeq(s, 0.1, 1.0, 0.7, kspace="pme", solver="dense")
    r = ff.qeq(s, np.linspace(-1, 1, 16), 1.0, 0.7, kspace="pme")
    assert (r.solver, r.kspace) == ("cg", "pme")
    d = ff.qeq(s, np.linspace(-1, 1, 16), 1.0, 0.7, solver="dense")
    np.testing.assert_allclose(r.charges, d.charges, atol=1e-8)


def test_options_an_open_system_cannot_honour_are_refused() -> None:
    s = cluster(8)
    with pytest.raises(ValueError, match="preconditioner='fourier' needs a periodic"):
        ff.qeq(s, 0.1, 1.0, 0.7, preconditioner="fourier", solver="cg")
    with pytest.raises(ValueError, match="kspace='pme' needs a periodic"):
        ff.qeq(s, 0.1, 1.0, 0.7, kspace="pme")
    with pytest.raises(ValueError, match="preconditioner"):
        ff.qeq(cluster(8, CELL), 0.1, 1.0, 0.7, preconditioner="jacobi", solver="dense")
    assert ff.qeq(s, 0.1, 1.0, 0.7, preconditioner="jacobi", solver="cg").preconditioner == (
        "jacobi"
    )


# ---------------------------------------------------------------- types of arguments


@pytest.mark.parametrize("name", ["max_iterations", "dense_limit"])
def test_integer_arguments_are_checked(name: str) -> None:
    s = cluster(4)
    with pytest.raises(ValueError, match=name):
        ff.qeq(s, 0.1, 1.0, 0.7, **{name: -1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=name):
        ff.qeq(s, 0.1, 1.0, 0.7, **{name: 10.0})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=name):
        ff.qeq_vjp(s, 0.1, 1.0, 0.7, np.ones(4), **{name: True})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=name):
        ff.qeq_batch([s], [0.1], 1.0, 0.7, **{name: -3})  # type: ignore[arg-type]


def test_batch_per_structure_numbers_are_checked() -> None:
    s = cluster(4)
    with pytest.raises(TypeError, match=r"total_charge\[1\]"):
        ff.qeq_batch([s, s], [0.1, 0.1], 1.0, 0.7, total_charge=[0.0, True])
    with pytest.raises(TypeError, match="grad_energy"):
        ff.qeq_batch([s], [0.1], 1.0, 0.7, grad_energy="1")
    r = ff.qeq_batch([s, s], [0.1, 0.1], 1.0, 0.7, total_charge=np.array([0.0, 1.0]))
    assert r[1].charges.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("tolerance", "1e-3", TypeError),
        ("total_charge", True, TypeError),
        ("smearing", "1.0", TypeError),
        ("prefactor", [14.4], TypeError),
        ("ewald_truncation", 2.0, ValueError),
        ("tolerance", -1e-3, ValueError),
    ],
)
def test_float_arguments_are_checked(name: str, value: object, error: type) -> None:
    with pytest.raises(error, match=name):
        ff.qeq(cluster(4, CELL), 0.1, 1.0, 0.7, **{name: value})  # type: ignore[arg-type]


def test_fragment_indices_must_be_integers() -> None:
    s = cluster(4)
    with pytest.raises(TypeError, match="fragments"):
        ff.qeq(s, 0.1, 1.0, 0.7, fragments=[0.0, 0.7, 1.0, 1.2], fragment_charges=[0.0, 0.0])
    with pytest.raises(ValueError, match="fragments"):
        ff.qeq(s, 0.1, 1.0, 0.7, fragments=[0, -1, 1, 1], fragment_charges=[0.0, 0.0])
    r = ff.qeq(s, [0.1, -0.1, 0.2, 0.0], 1.0, 0.7, fragments=np.array([0, 0, 1, 1]),
               fragment_charges=[0.5, -0.5])  # fmt: skip
    assert r.charges[:2].sum() == pytest.approx(0.5, abs=1e-12)


def test_empty_system_is_a_clear_error() -> None:
    empty = ff.System(np.zeros((0, 3)), np.zeros(0, np.int32))
    with pytest.raises(ValueError, match="no atoms"):
        ff.qeq(empty, [], [], [])


# ---------------------------------------------------------------- the ASE calculator


def test_calculator_accepts_scalars_and_refuses_unknown_keywords() -> None:
    pytest.importorskip("ase")
    from ase.build import bulk

    from farfield.ase import QEqCalculator

    with pytest.raises(TypeError, match="tolerence"):
        QEqCalculator({"Na": -1.0, "Cl": 1.0}, 1.0, 1.0, tolerence=1e-6)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="max_iterations"):
        QEqCalculator(0.0, 1.0, 1.0, max_iterations=-1)
    with pytest.raises(ValueError, match="kspace"):
        bad = bulk("NaCl", "rocksalt", a=5.64)
        bad.calc = QEqCalculator(0.0, 1.0, 1.0, solver="dense", kspace="pme")
        bad.get_potential_energy()
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    chi = np.where(atoms.numbers == 11, -1.0, 1.0)
    atoms.calc = QEqCalculator(chi, 10.0, 1.0)
    e_scalar = atoms.get_potential_energy()
    q = atoms.get_charges()
    ref = ff.qeq(atoms, chi, 10.0, 1.0, prefactor=ff.units.EV_ANGSTROM)
    assert e_scalar == pytest.approx(ref.energy, rel=1e-12)
    np.testing.assert_allclose(q, ref.charges, atol=1e-12)
    mapped = bulk("NaCl", "rocksalt", a=5.64)
    mapped.calc = QEqCalculator({"Na": -1.0, "Cl": 1.0}, {"Na": 10.0, "Cl": 10.0}, 1.0)
    assert mapped.get_potential_energy() == pytest.approx(e_scalar, rel=1e-12)


# ---------------------------------------------------------------- System


@pytest.mark.parametrize("numbers", [[1.7], [1.0], [True], ["H"], np.array([1.0])])
def test_non_integer_atomic_numbers_are_refused(numbers: object) -> None:
    with pytest.raises(TypeError, match="numbers"):
        ff.System(np.zeros((1, 3)), numbers)  # type: ignore[arg-type]


@pytest.mark.parametrize("number", [2**40, 2**31, -1])
def test_atomic_numbers_out_of_range_are_refused(number: int) -> None:
    with pytest.raises(ValueError, match="numbers"):
        ff.System(np.zeros((1, 3)), [number])


def test_integer_atomic_numbers_are_accepted() -> None:
    for numbers in ([1, 8], np.array([1, 8], np.int64), np.array([1, 8], np.uint8), (1, 8)):
        s = ff.System([[0.0, 0, 0], [1.0, 0, 0]], numbers)
        assert s.numbers.dtype == np.int32 and list(s.numbers) == [1, 8]
    assert len(ff.System(np.zeros((0, 3)), [])) == 0
    assert ff.System([[0.0, 0, 0]], [2**31 - 1]).numbers[0] == 2**31 - 1


@pytest.mark.parametrize(
    "cell",
    [
        [[5, 0, 0], [0, 5, 0], [5, 5, 1e-9]],
        [[1, 0, 0], [0, 1, 0], [0, 0, 1e-12]],
        [[1e4, 0, 0], [0, 1e4, 0], [5e3, 5e3, 1e-5]],
    ],
)
def test_nearly_degenerate_cell_is_named_not_an_overlap(cell: list[list[float]]) -> None:
    start = time.perf_counter()
    with pytest.raises(ValueError, match="cell") as info:
        ff.System(np.zeros((1, 3)), [1], np.array(cell, float))
    assert "overlap" not in str(info.value)
    assert time.perf_counter() - start < 1.0


def test_cg_iteration_limit_is_a_convergence_error() -> None:
    """A CG stopped by ``max_iterations`` before its tolerance raises the dedicated
    ``farfield.ConvergenceError`` (a RuntimeError naming the residual), so callers can catch
    it apart from bad input (ValueError) and internal errors; 0 iterations included."""
    system = ff.System(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.2, 0.4, 0.3]]), [1, 8, 1])
    for limit in (0, 1):
        with pytest.raises(ff.ConvergenceError, match="residual") as caught:
            ff.qeq(
                system,
                electronegativity={1: 0.5, 8: 2.0},
                hardness=1.0,
                sigma=1.0,
                solver="cg",
                max_iterations=limit,
            )
        assert isinstance(caught.value, RuntimeError)
