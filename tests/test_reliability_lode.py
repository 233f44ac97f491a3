"""LODE reliability (issue #15): no panic on empty cells, cost before work, Ctrl-C, typed
arguments, the true cell gradient, strain and cell gradients in to_metatensor, clear errors
for mismatched backward inputs."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import farfield as ff

ase = pytest.importorskip("ase")

TRICLINIC = np.array([[6.0, 0.0, 0.0], [0.7, 5.5, 0.0], [-0.4, 0.9, 6.3]])


def periodic(n: int = 5, seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    numbers = np.array([1, 8, 1, 6, 8, 1, 1, 8])[:n]
    return ase.Atoms(
        numbers=numbers, positions=rng.random((n, 3)) @ TRICLINIC, cell=TRICLINIC, pbc=True
    )


def calc(**kwargs: Any) -> ff.LodeSphericalExpansion:
    args: dict[str, Any] = dict(exponent=1.0, smearing=1.0, max_angular=2, max_radial=1)
    args.update(kwargs)
    return ff.LodeSphericalExpansion(radius=2.0, **args)


# --- empty cells: the empty result, no panic --------------------------------------------


@pytest.mark.parametrize("method", ["exact", "mesh", "auto"])
def test_empty_periodic_cell(method: str) -> None:
    empty = ase.Atoms(cell=np.eye(3) * 5.0, pbc=True)
    lode = calc(method=method)
    res = lode.compute(empty)
    assert res.values.shape == (0, 0, 9, 2)
    assert res.samples.shape == (0, 2)
    if method != "mesh":
        res = lode.compute(empty, gradients=["positions", "strain", "cell"])
        assert res.values.shape[0] == 0
        assert res.strain_gradients is not None and res.strain_gradients[0].shape[0] == 0
        assert res.cell_gradients is not None and res.cell_gradients[0].shape[0] == 0
        if _has_metatensor():
            res.to_metatensor()
    back = lode.backward(empty, np.zeros((0, 0, 9, 2)))[0]
    assert back.positions.shape == (0, 3)
    np.testing.assert_array_equal(back.strain, np.zeros((3, 3)))
    # explicit species: zero rows, the species channels kept
    res = calc(method=method, species=[1, 8]).compute(empty)
    assert res.values.shape == (0, 2, 9, 2)


def test_empty_periodic_cell_power_spectrum() -> None:
    empty = ase.Atoms(cell=np.eye(3) * 5.0, pbc=True)
    ps = ff.LodePowerSpectrum(calc(method="exact"))
    assert ps.compute(empty).values.shape[0] == 0
    assert ps.compute(empty, gradients=["positions"]).values.shape[0] == 0
    assert ps.backward(empty, np.zeros((0, 0)))[0].positions.shape == (0, 3)
    # an empty frame beside a full one
    out = ps.compute([empty, periodic(3)])
    assert out.values.shape[0] == 3


def _has_metatensor() -> bool:
    try:
        import metatensor  # noqa: F401
    except ImportError:
        return False
    return True


# --- cost before work -------------------------------------------------------------------


def _fast_refusal(fn: Callable[[], Any], *words: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        fn()
    assert time.perf_counter() - start < 2.0
    text = str(info.value)
    for word in words:
        assert word in text, text


@pytest.mark.parametrize("method", ["exact", "mesh", "auto"])
def test_kspace_cost_refused(method: str) -> None:
    atoms = periodic()
    _fast_refusal(lambda: calc(smearing=1e-3, method=method).compute(atoms), "smearing")
    _fast_refusal(
        lambda: calc(k_cutoff=1e4, method=method).compute(atoms), "k_cutoff", "set_limits"
    )
    g = np.zeros((5, 3, 9, 2))
    _fast_refusal(lambda: calc(k_cutoff=1e4, method=method).backward(atoms, g), "k_cutoff")


def test_refusals_follow_set_limits() -> None:
    atoms = periodic()
    lode = calc(method="exact")
    ref = lode.compute(atoms).values
    try:
        ff.set_limits(max_terms=1e3)
        _fast_refusal(lambda: calc(method="exact").compute(atoms), "terms", "smearing")
        _fast_refusal(lambda: calc(method="mesh").compute(atoms), "terms", "mesh")
        _fast_refusal(
            lambda: lode.compute(ase.Atoms("H2", positions=[[0, 0, 0], [1.5, 0, 0]])),
            "terms",
            "open-system",
        )
        ff.set_limits(max_memory=2e4)
        _fast_refusal(
            lambda: lode.compute(periodic(8), gradients=["positions"]), "gradients", "max_memory"
        )
    finally:
        ff.set_limits()
    np.testing.assert_array_equal(lode.compute(atoms).values, ref)


def test_open_system_far_apart_is_fast() -> None:
    # the k-quadrature of the open path needs a spacing π/distance: the radial integrals at
    # its nodes come from a spline whose size does not depend on the distance (was 25 s)
    lode = calc(center_atom_weight=0.0)
    values = []
    for d in (1e4, 2e4):
        start = time.perf_counter()
        res = lode.compute(ase.Atoms("H2", positions=[[0, 0, 0], [d, 0, 0]]))
        assert time.perf_counter() - start < 5.0
        values.append(res.values[0, 0, 0])
    # far away, the l = 0 projection of the smeared 1/r potential falls as 1/d
    np.testing.assert_allclose(values[0], 2.0 * values[1], rtol=1e-3)
    # beyond what the quadrature supports: a clear refusal naming the extent
    _fast_refusal(
        lambda: lode.compute(ase.Atoms("H2", positions=[[0, 0, 0], [1e6, 0, 0]])), "extent"
    )


def test_open_system_spline_path_continuous() -> None:
    # around the distance where the open path switches to the spline of the radial
    # integrals, the features stay smooth (1/d-like, no jump)
    lode = calc(exponent=1.0, smearing=0.8, center_atom_weight=0.0)
    ds = np.linspace(30.0, 90.0, 13)
    v = np.array(
        [
            lode.compute(ase.Atoms("H2", positions=[[0, 0, 0], [d, 0, 0]])).values[0, 0, 0, 0]
            for d in ds
        ]
    )
    np.testing.assert_allclose(v * ds, v[0] * ds[0], rtol=2e-2)
    second = np.diff(v * ds, 2)
    assert np.abs(second).max() < 1e-4 * abs(v[0] * ds[0])


# --- Ctrl-C -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["open", "periodic"])
def test_ctrl_c_stops_lode(case: str) -> None:
    rng = np.random.default_rng(1)
    if case == "open":
        atoms = ase.Atoms("H" * 120, positions=rng.random((120, 3)) * 3000.0)
        lode = calc()
        gradients: list[str] = []
    else:
        atoms = ase.Atoms(
            "H" * 120, positions=rng.random((120, 3)) * 14.0, cell=np.eye(3) * 14.0, pbc=True
        )
        lode = calc(k_cutoff=40.0, method="exact", max_angular=3, max_radial=3)
        gradients = ["positions", "strain"]
    sent: list[float] = []

    def interrupt() -> None:
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(0.3, interrupt)
    try:
        ff.set_limits(max_terms=1e15)
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            lode.compute(atoms, gradients=gradients)
        stopped = time.perf_counter()
    finally:
        timer.cancel()
        ff.set_limits()
    assert sent and stopped - sent[0] < 2.0


# --- types and ignored input ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"max_angular": 3.7}, TypeError, "max_angular"),
        ({"max_angular": 3.0}, TypeError, "max_angular"),
        ({"max_angular": True}, TypeError, "max_angular"),
        ({"max_angular": -1}, ValueError, "max_angular"),
        ({"max_angular": 21}, ValueError, "max_angular"),
        ({"max_radial": 2.0}, TypeError, "max_radial"),
        ({"max_radial": -1}, ValueError, "max_radial"),
        ({"max_radial": 500}, ValueError, "max_radial"),
        ({"smearing": "1"}, TypeError, "smearing"),
        ({"smearing": 0.0}, ValueError, "smearing"),
        ({"exponent": -1.0}, ValueError, "exponent"),
        ({"exponent": float("nan")}, ValueError, "exponent"),
        ({"k_cutoff": -2.0}, ValueError, "k_cutoff"),
        ({"mesh_accuracy": 2.0}, ValueError, "mesh_accuracy"),
        ({"mesh_accuracy": "x"}, TypeError, "mesh_accuracy"),
        ({"species": [1.5, 8]}, TypeError, "species"),
        ({"species": [-1]}, ValueError, "species"),
        ({"center_atom_weight": float("inf")}, ValueError, "center_atom_weight"),
        ({"drop_divergent_k0": "yes"}, TypeError, "drop_divergent_k0"),
    ],
)
def test_typed_arguments(kwargs: dict[str, Any], error: type, name: str) -> None:
    with pytest.raises(error) as info:
        calc(**kwargs)
    assert name in str(info.value)
    if name == "max_radial":
        assert "max_angular" not in str(info.value)


def test_gradients_must_be_a_list() -> None:
    atoms = periodic(3)
    with pytest.raises(TypeError, match="gradients"):
        calc().compute(atoms, gradients="positions")
    with pytest.raises(ValueError, match="gradients"):
        calc().compute(atoms, gradients=["position"])
    with pytest.raises(TypeError, match="gradients"):
        ff.LodePowerSpectrum(calc()).compute(atoms, gradients="positions")


def test_no_frames_and_mismatched_backward() -> None:
    lode = calc()
    atoms = periodic(3)
    with pytest.raises(ValueError, match="no frames"):
        lode.compute([])
    with pytest.raises(ValueError, match="no frames"):
        lode.backward([], [])
    with pytest.raises(ValueError, match="no frames"):
        ff.LodePowerSpectrum(lode).compute([])
    g = np.zeros((3, 2, 9, 2))
    with pytest.raises(ValueError, match="2 frames"):
        lode.backward([atoms, atoms], [g])
    with pytest.raises(ValueError, match="frame 1"):
        lode.backward([atoms, atoms], [g, np.zeros((2, 2, 9, 2))])
    with pytest.raises(TypeError, match="grad_values"):
        lode.backward(atoms, "g")


# --- the cell gradient ------------------------------------------------------------------


def _cell_fd(lode: ff.LodeSphericalExpansion, atoms: Any, h: float = 1e-5) -> np.ndarray:
    """Central differences of the values in every cell entry, Cartesian positions fixed:
    (N, 3, 3, A, lm, n)."""
    base = lode.compute(atoms).values
    fd = np.zeros((base.shape[0], 3, 3) + base.shape[1:])
    for a in range(3):
        for b in range(3):
            vals = []
            for sign in (1, -1):
                moved = atoms.copy()
                cell = atoms.cell.array.copy()
                cell[a, b] += sign * h
                moved.set_cell(cell, scale_atoms=False)
                vals.append(lode.compute(moved).values)
            fd[:, a, b] = (vals[0] - vals[1]) / (2 * h)
    return fd


@pytest.mark.parametrize("exponent", [1.0, 2.5])
def test_cell_gradient_is_dx_dcell(exponent: float) -> None:
    atoms = periodic(4, seed=3)
    lode = calc(exponent=exponent, smearing=0.7, method="exact")
    res = lode.compute(atoms, gradients=["cell"])
    assert res.cell_gradients is not None
    assert res.strain_gradients is None and res.pair_gradients is None
    cell = res.cell_gradients[0]
    fd = _cell_fd(lode, atoms)
    scale = np.abs(res.values).max()
    np.testing.assert_allclose(cell, fd, rtol=0, atol=1e-6 * scale)
    # and not the strain gradient (which it used to be)
    strain = lode.compute(atoms, gradients=["strain"]).strain_gradients
    assert strain is not None
    assert np.abs(strain[0] - cell).max() > 1e-3 * scale
    # consistent with the backward pass's dL/dcell
    g = np.random.default_rng(2).normal(size=res.values.shape)
    back = lode.backward(atoms, g)[0]
    assert back.cell is not None
    np.testing.assert_allclose(
        np.einsum("iasf,ixyasf->xy", g, cell), back.cell, rtol=1e-8, atol=1e-9
    )


def test_cell_gradient_open_frame_is_zero() -> None:
    open_frame = ase.Atoms("HOH", positions=[[0, 0, 0], [0.9, 0.1, 0], [1.3, 0.8, 0.2]])
    res = calc().compute([open_frame, periodic(3)], gradients=["cell", "positions"])
    assert res.cell_gradients is not None
    np.testing.assert_array_equal(res.cell_gradients[0], 0.0)
    assert np.abs(res.cell_gradients[1]).max() > 0.0


def test_to_metatensor_keeps_strain_and_cell() -> None:
    pytest.importorskip("metatensor")
    atoms = periodic(4, seed=5)
    lode = calc(method="exact")
    res = lode.compute(atoms, gradients=["positions", "strain", "cell"])
    tmap = res.to_metatensor()
    assert res.strain_gradients is not None and res.cell_gradients is not None
    strain, cell = res.strain_gradients[0], res.cell_gradients[0]
    a = list(res.species)
    for key, block in tmap.items():
        lam, _, ct, nt = (int(x) for x in key.values)
        assert set(block.gradients_list()) == {"positions", "strain", "cell"}
        rows = np.nonzero(res.center_types == ct)[0]
        lm = slice(lam * lam, (lam + 1) ** 2)
        gs = block.gradient("strain")
        assert gs.components[0].names == ["xyz_2"] and gs.components[1].names == ["xyz_1"]
        # featomic's layout: [s, a, b] = Σ r_a ∂/∂r_b (the transpose of ∂/∂ε_ab, r → (1+ε) r)
        expected = np.swapaxes(strain[rows][:, :, :, a.index(nt), lm], 1, 2)
        np.testing.assert_array_equal(gs.values, expected)
        gc = block.gradient("cell")
        assert gc.components[0].names == ["xyz"] and gc.components[1].names == ["abc"]
        np.testing.assert_array_equal(gc.values, cell[rows][:, :, :, a.index(nt), lm])
    # the "strain" gradient in SOAP's convention against finite differences: cell and
    # positions as row vectors, r → r (1 + ε)
    h = 1e-5
    scale = np.abs(res.values).max()
    key = tmap.keys[0]
    block = tmap.block(key)
    lam, _, ct, nt = (int(x) for x in key.values)
    rows = np.nonzero(res.center_types == ct)[0]
    for x in range(3):
        for y in range(3):
            eps = np.zeros((3, 3))
            eps[x, y] = h
            vals = []
            for sign in (1, -1):
                moved = atoms.copy()
                m = np.eye(3) + sign * eps
                moved.positions = atoms.positions @ m
                moved.cell = atoms.cell.array @ m
                v = lode.compute(moved).values[rows][:, a.index(nt), lam * lam : (lam + 1) ** 2]
                vals.append(v)
            fd = (vals[0] - vals[1]) / (2 * h)
            np.testing.assert_allclose(
                block.gradient("strain").values[:, x, y], fd, rtol=0, atol=1e-6 * scale
            )


def test_absurd_smearing_is_refused_not_nan() -> None:
    """σ = 1e300 gave NaN features on an open pair (found by the proptest harness)."""
    system = ff.System([[0.0, 0.0, 0.0], [0.0, 0.0, 0.49]], [1, 8])
    with pytest.raises(ValueError, match="smearing"):
        ff.LodeSphericalExpansion(
            exponent=1.5, smearing=1e300, max_angular=3, max_radial=3, radius=1.0
        ).compute(system)


def test_open_lode_small_exponents_are_finite_and_smooth() -> None:
    """Open-system LODE for 0 < p ≲ 0.3 gave NaN/inf (k² ĝ(k) = 0 × ∞ at the quadrature's
    tiniest wave numbers; found by the hypothesis harness). The values must be finite and a
    smooth function of p: second differences over a step of 0.05 in p stay at the size of the
    curvature seen at larger p, where the code path was always finite."""
    system = ff.System(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 2.0], [1.1, 0.3, 0.9]]), [1, 1, 8])

    def values(p: float) -> np.ndarray:
        calc = ff.LodeSphericalExpansion(
            exponent=p, smearing=1.0, max_angular=2, max_radial=1, radius=1.0
        )
        out = np.asarray(calc.compute(system).values)
        assert np.all(np.isfinite(out)), p
        return out

    ps = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35]
    vs = [values(p) for p in ps]
    second = np.array(
        [np.max(np.abs(vs[i - 1] - 2 * vs[i] + vs[i + 1])) for i in range(1, len(ps) - 1)]
    )
    # reference curvature where every node was always finite (p from 1.0 to 1.1)
    reference = np.max(np.abs(values(1.0) - 2 * values(1.05) + values(1.1)))
    assert max(second) < 3 * reference
    # and they vary smoothly themselves (no jump where the small-k form takes over)
    assert np.all(np.abs(np.diff(second)) < 0.1 * max(second))
