"""Parity of farfield's SphericalExpansion / PowerSpectrum with featomic 0.6.7 (exact radial
integrals): values, position, strain and cell gradients, periodic and open systems."""

from __future__ import annotations

import numpy as np
import pytest

import farfield as ff

featomic = pytest.importorskip("featomic")
ase = pytest.importorskip("ase")

HYPERS = [
    dict(
        cutoff=3.5,
        max_radial=4,
        max_angular=3,
        smearing=0.4,
        cutoff_function="shifted_cosine",
        cutoff_width=0.5,
        center_atom_weight=1.0,
    ),
    dict(
        cutoff=4.2,
        max_radial=6,
        max_angular=5,
        smearing=0.3,
        cutoff_function="step",
        cutoff_width=0.5,
        center_atom_weight=0.0,
    ),
    dict(
        cutoff=3.0,
        max_radial=2,
        max_angular=6,
        smearing=0.55,
        cutoff_function="shifted_cosine",
        cutoff_width=1.2,
        center_atom_weight=0.7,
    ),
]


def random_frames(seed: int, periodic: bool, n_frames: int = 2) -> list:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        n = int(rng.integers(8, 14))
        cell = np.diag([5.0, 5.5, 6.0]) + rng.uniform(-1.2, 1.2, (3, 3))
        pos = rng.uniform(0, 1, (n, 3)) @ cell
        nums = rng.choice([1, 6, 8], n)
        nums[:3] = [1, 6, 8]
        if periodic:
            frames.append(ase.Atoms(numbers=nums, positions=pos, cell=cell, pbc=True))
        else:
            frames.append(ase.Atoms(numbers=nums, positions=pos))
    return frames


def featomic_hypers(h: dict) -> dict:
    smoothing = (
        {"type": "Step"}
        if h["cutoff_function"] == "step"
        else {"type": "ShiftedCosine", "width": h["cutoff_width"]}
    )
    return dict(
        cutoff={"radius": h["cutoff"], "smoothing": smoothing},
        density={
            "type": "Gaussian",
            "width": h["smearing"],
            "center_atom_weight": h["center_atom_weight"],
        },
        basis={
            "type": "TensorProduct",
            "max_angular": h["max_angular"],
            "radial": {"type": "Gto", "max_radial": h["max_radial"]},
            "spline_accuracy": None,
        },
    )


def our_index(result: ff.Descriptor, frames: list) -> dict:
    return {(int(s), int(a)): k for k, (s, a, _) in enumerate(result.samples)}


def grad_index(result: ff.Descriptor) -> dict:
    assert result.positions_samples is not None
    return {(int(s), int(a)): k for k, (s, _, a) in enumerate(result.positions_samples)}


@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("h", range(len(HYPERS)))
def test_spherical_expansion_matches_featomic(periodic: bool, h: int) -> None:
    hyp = HYPERS[h]
    frames = random_frames(10 + h, periodic)
    grads = ["positions", "strain", "cell"]
    ref = featomic.SphericalExpansion(**featomic_hypers(hyp)).compute(frames, gradients=grads)
    ours = ff.SphericalExpansion(**hyp, radial_accuracy=None).compute(frames, gradients=grads)
    rows = our_index(ours, frames)
    grows = grad_index(ours)
    checked = 0
    for key, block in ref.items():
        ell, _, _, nb = (int(v) for v in key.values)
        cols = np.nonzero((ours.properties[:, 0] == nb) & (ours.properties[:, 1] == ell))[0]
        samples = [tuple(int(v) for v in s) for s in block.samples.values]
        mine = np.stack([ours.values[rows[s], cols] for s in samples]).reshape(
            len(samples), 2 * ell + 1, -1
        )
        np.testing.assert_allclose(mine, block.values, atol=1e-10, rtol=0)
        g = block.gradient("positions")
        for k, (si, _, atom) in enumerate(g.samples.values):
            sample_row = rows[samples[si]]
            mine_g = ours.gradients["positions"][grows[(sample_row, int(atom))]][:, cols]
            np.testing.assert_allclose(
                mine_g.reshape(3, 2 * ell + 1, -1), g.values[k], atol=1e-10, rtol=0
            )
            checked += 1
        # strain is non-zero for open systems too; cell gradients vanish there. featomic's
        # "strain" is [Σ r_a ∂/∂r_b] (ε on row vectors), ours ∂/∂ε_ab with ε on column vectors:
        # its transpose
        for name in ("strain", "cell"):
            s = block.gradient(name)
            np.testing.assert_array_equal(s.samples.values[:, 0], np.arange(len(samples)))
            mine_s = np.stack(
                [ours.gradients[name][rows[samples[si]]][:, :, cols] for si in range(len(samples))]
            )
            if name == "strain":
                mine_s = np.swapaxes(mine_s, 1, 2)
            np.testing.assert_allclose(mine_s.reshape(s.values.shape), s.values, atol=1e-10, rtol=0)
    assert checked > 0


@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("h", range(len(HYPERS)))
def test_power_spectrum_matches_featomic(periodic: bool, h: int) -> None:
    hyp = HYPERS[h]
    frames = random_frames(20 + h, periodic)
    grads = ["positions", "strain", "cell"]
    ref = featomic.SoapPowerSpectrum(**featomic_hypers(hyp)).compute(frames, gradients=grads)
    ours = ff.PowerSpectrum(**hyp, radial_accuracy=None).compute(frames, gradients=grads)
    assert ours.property_names == ("neighbor_1_type", "neighbor_2_type", "l", "n_1", "n_2")
    rows = our_index(ours, frames)
    grows = grad_index(ours)
    for key, block in ref.items():
        _, n1, n2 = (int(v) for v in key.values)
        cols = np.nonzero((ours.properties[:, 0] == n1) & (ours.properties[:, 1] == n2))[0]
        np.testing.assert_array_equal(ours.properties[cols, 2:], block.properties.values)
        samples = [tuple(int(v) for v in s) for s in block.samples.values]
        if not samples:
            continue
        mine = np.stack([ours.values[rows[s], cols] for s in samples])
        np.testing.assert_allclose(mine, block.values, atol=1e-10, rtol=0)
        g = block.gradient("positions")
        for k, (si, _, atom) in enumerate(g.samples.values):
            mine_g = ours.gradients["positions"][grows[(rows[samples[si]], int(atom))]][:, cols]
            np.testing.assert_allclose(mine_g, g.values[k], atol=1e-10, rtol=0)
        # strain is non-zero for open systems too; cell gradients vanish there. featomic's
        # "strain" is [Σ r_a ∂/∂r_b] (ε on row vectors), ours ∂/∂ε_ab with ε on column vectors:
        # its transpose
        for name in ("strain", "cell"):
            s = block.gradient(name)
            np.testing.assert_array_equal(s.samples.values[:, 0], np.arange(len(samples)))
            mine_s = np.stack(
                [ours.gradients[name][rows[samples[si]]][:, :, cols] for si in range(len(samples))]
            )
            if name == "strain":
                mine_s = np.swapaxes(mine_s, 1, 2)
            np.testing.assert_allclose(mine_s, s.values, atol=1e-10, rtol=0)


def test_splined_radial_integral_is_close_to_exact() -> None:
    frames = random_frames(3, True)
    hyp = HYPERS[0]
    exact = ff.PowerSpectrum(**hyp, radial_accuracy=None).compute(frames)
    splined = ff.PowerSpectrum(**hyp, radial_accuracy=1e-9).compute(frames)
    np.testing.assert_allclose(splined.values, exact.values, atol=1e-7)
    ref = featomic.SoapPowerSpectrum(
        **{
            **featomic_hypers(hyp),
            "basis": {**featomic_hypers(hyp)["basis"], "spline_accuracy": 1e-8},
        }
    ).compute(frames)
    ref = ref.keys_to_samples("center_type").keys_to_properties(
        ["neighbor_1_type", "neighbor_2_type"]
    )
    assert ref.block().values.shape == exact.values.shape


def test_real_clebsch_gordan_matches_featomic() -> None:
    from featomic.clebsch_gordan._coefficients import _build_dense_cg_coeff_dict

    ref = _build_dense_cg_coeff_dict(4, np.zeros(0, dtype=complex), "numpy", np.float64, "cpu")
    for (l1, l2, lam), value in ref.items():
        np.testing.assert_allclose(ff.descriptors.clebsch_gordan(l1, l2, lam), value, atol=1e-13)


def test_metatensor_strain_and_cell_blocks_match_featomic() -> None:
    pytest.importorskip("metatensor")
    frames = random_frames(30, True, n_frames=1)
    hyp = HYPERS[0]
    grads = ["strain", "cell"]
    ref = featomic.SoapPowerSpectrum(**featomic_hypers(hyp)).compute(frames, gradients=grads)
    ours = ff.PowerSpectrum(**hyp, radial_accuracy=None).compute(frames, gradients=grads)
    tensor = ours.to_metatensor()
    assert tensor.keys.names == ref.keys.names
    for key, block in ref.items():
        if len(block.samples) == 0:
            continue
        mine = tensor.block(key)
        assert mine.samples == block.samples
        for name in grads:
            g, r = mine.gradient(name), block.gradient(name)
            assert [c.names for c in g.components] == [c.names for c in r.components]
            np.testing.assert_allclose(g.values, r.values, atol=1e-10, rtol=0)


def _compare_tensor_maps(mine, ref, gradients, atol: float = 1e-10) -> None:
    """Block by block: metadata, values and gradients, samples matched by their labels.
    featomic leaves out the centres (and gradient rows) whose block is zero by construction
    (no neighbour of that type); ours keeps every centre of the type: those extra samples and
    rows must be zero."""
    assert mine.keys.names == ref.keys.names
    for key, block in ref.items():
        ours = mine.block(key)
        assert ours.samples.names == block.samples.names
        assert [c.names for c in ours.components] == [c.names for c in block.components]
        np.testing.assert_array_equal(ours.properties.values, block.properties.values)
        index = {tuple(int(v) for v in s): k for k, s in enumerate(ours.samples.values)}
        order = np.array([index[tuple(int(v) for v in s)] for s in block.samples.values], int)
        extra = np.setdiff1d(np.arange(len(ours.samples)), order)
        np.testing.assert_allclose(ours.values[order], block.values, atol=atol, rtol=0)
        np.testing.assert_allclose(ours.values[extra], 0.0, atol=atol, rtol=0)
        for name in gradients:
            g, r = ours.gradient(name), block.gradient(name)
            assert [c.names for c in g.components] == [c.names for c in r.components]
            if name != "positions":
                np.testing.assert_array_equal(r.samples.values[:, 0], np.arange(len(order)))
                np.testing.assert_allclose(g.values[order], r.values, atol=atol, rtol=0)
                np.testing.assert_allclose(g.values[extra], 0.0, atol=atol, rtol=0)
                continue
            rows = {tuple(int(v) for v in s): k for k, s in enumerate(g.samples.values)}
            seen = set()
            for k, (sample, system, atom) in enumerate(r.samples.values):
                row = rows[(int(order[sample]), int(system), int(atom))]
                seen.add(row)
                np.testing.assert_allclose(g.values[row], r.values[k], atol=atol, rtol=0)
            rest = [k for k in range(len(g.samples)) if k not in seen]
            if rest:
                np.testing.assert_allclose(g.values[rest], 0.0, atol=atol, rtol=0)


@pytest.mark.parametrize("periodic", [True, False])
def test_expansion_to_metatensor_matches_featomic(periodic: bool) -> None:
    # the spherical expansion as featomic's equivariant TensorMap: keys (o3_lambda, o3_sigma,
    # center_type, neighbor_type), component o3_mu, property n, featomic's gradient layouts
    pytest.importorskip("metatensor")
    frames = random_frames(40, periodic)
    hyp = HYPERS[0]
    grads = ["positions", "strain", "cell"]
    ref = featomic.SphericalExpansion(**featomic_hypers(hyp)).compute(frames, gradients=grads)
    ours = ff.SphericalExpansion(**hyp, radial_accuracy=None).compute(frames, gradients=grads)
    key = ours.keys[-1]
    block = ours.block(key)
    assert block.components[0][0] == "o3_mu" and block.property_names == ("n",)
    assert block.values.shape[1:] == (2 * key[2] + 1, hyp["max_radial"] + 1)
    _compare_tensor_maps(ours.to_metatensor(), ref, grads)


def test_lode_descriptor_to_metatensor_matches_featomic() -> None:
    # LodeResult.to_descriptor() is the same Descriptor type, with the same metatensor export
    pytest.importorskip("metatensor")
    frames = random_frames(41, True, n_frames=1)
    sigma, lmax, nmax, r0 = 0.6, 2, 2, 2.5
    ref = featomic.LodeSphericalExpansion(
        density={"type": "SmearedPowerLaw", "smearing": sigma, "exponent": 1},
        basis={
            "type": "TensorProduct",
            "max_angular": lmax,
            "radial": {"type": "Gto", "max_radial": nmax, "radius": r0},
            "spline_accuracy": None,
        },
    ).compute(frames, gradients=["positions"])
    res = ff.LodeSphericalExpansion(1, sigma, lmax, nmax, r0, method="exact").compute(
        frames, gradients=["positions"]
    )
    _compare_tensor_maps(res.to_descriptor().to_metatensor(), ref, ["positions"], atol=1e-9)
