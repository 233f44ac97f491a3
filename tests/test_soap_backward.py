"""SphericalExpansion.backward and PowerSpectrum.backward (vector-Jacobian products): against the
dense position/strain/cell
gradients contracted with a random dL/dvalues (those gradients are themselves checked by finite
differences in test_soap_properties.py and against featomic), against finite differences of
L = Σ g·values directly, 1 vs 2 threads, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import farfield as ff
from farfield.system import as_system

ase = pytest.importorskip("ase")

TRICLINIC = np.array([[5.0, 0.0, 0.0], [1.1, 4.6, 0.0], [-0.7, 0.8, 5.2]])


def frames() -> list[ase.Atoms]:
    rng = np.random.default_rng(11)
    periodic = ase.Atoms(
        numbers=[1, 8, 8, 6, 1, 1, 6, 8],
        positions=rng.random((8, 3)) @ TRICLINIC,
        cell=TRICLINIC,
        pbc=True,
    )
    # small cell: the cutoff sees several images of every atom, including its own
    small_cell = np.array([[3.0, 0.0, 0.0], [0.6, 2.8, 0.0], [-0.3, 0.4, 3.2]])
    small = ase.Atoms(
        numbers=[8, 1, 1], positions=rng.random((3, 3)) @ small_cell, cell=small_cell, pbc=True
    )
    cluster = ase.Atoms(numbers=[6, 1, 8, 1, 1, 8], positions=rng.random((6, 3)) * 3.5)
    return [periodic, small, cluster]


def calculator(kind: str = "expansion", **kwargs: object) -> ff.SphericalExpansion:
    hyper: dict[str, object] = dict(
        cutoff=3.5,
        max_radial=3,
        max_angular=3,
        smearing=0.4,
        cutoff_width=0.9,
        radial_accuracy=None,
    )
    hyper.update(kwargs)
    cls = ff.SphericalExpansion if kind == "expansion" else ff.PowerSpectrum
    return cls(**hyper)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kind, cutoff_function",
    [("expansion", "shifted_cosine"), ("expansion", "step"), ("power_spectrum", "shifted_cosine")],
)
def test_backward_matches_contracted_dense_gradients(kind: str, cutoff_function: str) -> None:
    calc = calculator(kind, cutoff_function=cutoff_function, species=[1, 6, 8])
    batch = frames()
    desc = calc.compute(batch, gradients=["positions", "strain", "cell"])
    g = np.random.default_rng(1).normal(size=desc.values.shape)
    back = calc.backward(batch, g)
    assert len(back) == len(batch)
    ps = desc.positions_samples
    assert ps is not None
    contrib = np.einsum("rxf,rf->rx", desc.gradients["positions"], g[ps[:, 0]])
    for frame, (atoms, b) in enumerate(zip(batch, back, strict=True)):
        rows = ps[:, 1] == frame
        dense = np.zeros((len(atoms), 3))
        np.add.at(dense, ps[rows, 2], contrib[rows])
        scale = np.abs(dense).max()
        np.testing.assert_allclose(b.positions, dense, rtol=0, atol=1e-12 * scale)
        samples = desc.samples[:, 0] == frame
        # stored strain gradient and backward: one convention (ε on column vectors)
        strain = np.einsum("sabf,sf->ab", desc.gradients["strain"][samples], g[samples])
        np.testing.assert_allclose(b.strain, strain, rtol=0, atol=1e-12 * np.abs(strain).max())
        if atoms.pbc.any():
            cell = np.einsum("sabf,sf->ab", desc.gradients["cell"][samples], g[samples])
            assert b.cell is not None
            np.testing.assert_allclose(b.cell, cell, rtol=0, atol=1e-12 * np.abs(cell).max())
            # the LODE convention: dL/dA = A⁻ᵀ (dL/dε − dL/dRᵀ R)ᵀ at fixed positions
            m = b.strain - b.positions.T @ atoms.positions
            np.testing.assert_allclose(
                b.cell, np.linalg.inv(atoms.cell.array).T @ m.T, rtol=0, atol=1e-10
            )
        else:
            assert b.cell is None
            # open: a strain only moves the atoms, dL/dε = Σ_i dL/dr_i ⊗ r_i
            np.testing.assert_allclose(
                b.strain, b.positions.T @ atoms.positions, rtol=0, atol=1e-10
            )
        # translation invariance
        np.testing.assert_allclose(b.positions.sum(axis=0), 0.0, atol=1e-11 * scale)


@pytest.mark.parametrize("kind, index", [("expansion", 0), ("expansion", 2), ("power_spectrum", 1)])
def test_backward_against_finite_differences(kind: str, index: int) -> None:
    calc = calculator(kind, species=[1, 6, 8])
    atoms = frames()[index]
    g = np.random.default_rng(2).normal(size=calc.compute(atoms).values.shape)
    b = calc.backward(atoms, g)[0]

    def value(a: ase.Atoms) -> float:
        return float(np.sum(g * calc.compute(a).values))

    h = 1e-5
    for i, x in [(0, 0), (3 % len(atoms), 2), (5 % len(atoms), 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, x] += h
        minus.positions[i, x] -= h
        fd = (value(plus) - value(minus)) / (2 * h)
        assert abs(b.positions[i, x] - fd) < 1e-7 * max(1.0, abs(fd)), (i, x)
    for al, be in [(0, 0), (0, 1), (1, 0), (2, 1)]:
        eps = np.zeros((3, 3))
        eps[al, be] = h
        vals = []
        for sign in (1, -1):
            strained = atoms.copy()
            strained.positions = atoms.positions @ (np.eye(3) + sign * eps).T
            if atoms.pbc.any():
                strained.cell = atoms.cell.array @ (np.eye(3) + sign * eps).T
            vals.append(value(strained))
        fd = (vals[0] - vals[1]) / (2 * h)
        assert abs(b.strain[al, be] - fd) < 1e-7 * max(1.0, abs(fd)), (al, be)
    if atoms.pbc.any():
        assert b.cell is not None
        for al, be in [(0, 0), (1, 0), (2, 1)]:
            plus, minus = atoms.copy(), atoms.copy()
            step = np.zeros((3, 3))
            step[al, be] = h
            plus.set_cell(atoms.cell.array + step, scale_atoms=False)
            minus.set_cell(atoms.cell.array - step, scale_atoms=False)
            fd = (value(plus) - value(minus)) / (2 * h)
            assert abs(b.cell[al, be] - fd) < 1e-7 * max(1.0, abs(fd)), (al, be)


def test_backward_threads_agree_and_per_frame_input() -> None:
    calc = calculator(radial_accuracy=1e-8)
    batch = [frames()[0].repeat((2, 2, 2)), frames()[2]]
    values = calc.compute(batch).values
    g = np.random.default_rng(3).normal(size=values.shape)
    before = ff.get_num_threads()
    out = []
    try:
        for threads in (1, 2):
            ff.set_num_threads(threads)
            out.append(calc.backward(batch, g))
    finally:
        ff.set_num_threads(0 if before is None else before)
    for one, two in zip(out[0], out[1], strict=True):
        np.testing.assert_allclose(one.positions, two.positions, rtol=0, atol=1e-12)
        np.testing.assert_allclose(one.strain, two.strain, rtol=0, atol=1e-11)
    split = [g[: len(batch[0])], g[len(batch[0]) :]]
    per_frame = calc.backward(batch, split)
    for one, two in zip(out[0], per_frame, strict=True):
        np.testing.assert_array_equal(one.positions, two.positions)
        np.testing.assert_array_equal(one.strain, two.strain)
    # a frame on its own gives the same result as in the batch
    alone = calc.backward(batch[1], g[len(batch[0]) :])[0]
    assert isinstance(alone, ff.lode.LodeBackward)
    np.testing.assert_allclose(alone.positions, out[0][1].positions, rtol=0, atol=1e-14)


def test_backward_bad_input() -> None:
    calc = calculator()
    atoms = frames()[2]
    g = np.zeros(calc.compute(atoms).values.shape)
    with pytest.raises(ValueError, match="shape"):
        calc.backward(atoms, g[:, 1:])
    with pytest.raises(ValueError, match="frames"):
        calc.backward(atoms, [g, g])
    bad = g.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        calc.backward(atoms, bad)
    two_species = np.zeros((len(atoms), 2 * g.shape[1] // 3))
    with pytest.raises(ValueError, match="species"):
        calculator(species=[1, 6]).backward(atoms, two_species)
    power = calculator("power_spectrum")
    with pytest.raises(ValueError, match="shape"):
        power.backward(atoms, g)
    with pytest.raises(ValueError, match="grad_values"):  # the core checks too
        power._native.backward([as_system(atoms)._arrays()], [1, 6, 8], g.reshape(-1))
