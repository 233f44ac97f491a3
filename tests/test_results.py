"""The one energy result family (issue #16): typed parameters, timing, the virial sign, the PME
mesh spacing, the cache counters and the deprecated names."""

from __future__ import annotations

import dataclasses
import importlib
import warnings

import numpy as np
import pytest
from systems import random_box, skewed_cell

import farfield as ff
from farfield.results import CoulombParameters, EnergyResult, Timing


def _box(n: int = 16, seed: int = 3) -> tuple[ff.System, np.ndarray]:
    return random_box(n, seed=seed, charged=False, cell=skewed_cell())


def _strained_energy(system: ff.System, q: np.ndarray, eps: np.ndarray, **kw: object) -> float:
    """E after the homogeneous strain r -> (1+eps) r, cell rows H -> H (1+eps)^T."""
    assert system.cell is not None
    e = np.eye(3) + eps
    strained = ff.System(system.positions @ e.T, system.numbers, system.cell @ e.T)
    return ff.ewald(strained, q, forces=False, stress=False, potentials=False, **kw).energy  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["ewald", "pme"])
def test_virial_is_minus_the_strain_derivative_for_a_non_symmetric_strain(method: str) -> None:
    """virial = -dE/deps and stress = (1/V) dE/deps, every entry by central differences of the
    energy under r -> (1+eps) r (a non-symmetric eps included), and virial = sum_i r_i (x) F_i
    only up to the periodic part: checked against the strain derivative, not the formula."""
    system, q = _box()
    fixed = (
        {"smearing": 0.8, "cutoff": 6.0, "k_cutoff": 11.0}
        if method == "ewald"
        else {"smearing": 0.8, "cutoff": 6.0}
    )
    kw = {"method": method, "accuracy": 1e-9, **fixed}
    result = ff.ewald(system, q, **kw)  # type: ignore[arg-type]
    assert result.stress is not None and result.virial is not None
    assert system.cell is not None
    volume = abs(np.linalg.det(system.cell))
    h = 1e-5
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = h
            fd = (
                _strained_energy(system, q, eps, **kw) - _strained_energy(system, q, -eps, **kw)
            ) / (2 * h)
            scale = 1e-6 * (1 + np.abs(result.virial).max())
            assert result.virial[a, b] == pytest.approx(-fd, abs=scale)
            assert result.stress[a, b] * volume == pytest.approx(fd, abs=scale)


def test_open_system_has_no_stress_or_virial() -> None:
    system, q = _box()
    open_system = ff.System(system.positions, system.numbers, None)
    result = ff.ewald(open_system, q)
    assert result.stress is None and result.virial is None
    assert result.parameters.method == "direct" and result.parameters.smearing is None


def test_parameters_are_typed_frozen_and_a_mapping() -> None:
    system, q = _box()
    result = ff.ewald(system, q, method="ewald")
    p = result.parameters
    assert isinstance(result, EnergyResult) and isinstance(p, CoulombParameters)
    assert p.method == "ewald" and p["method"] == "ewald"
    assert p.mesh is None and "mesh" not in p and p.get("mesh", 7) == 7
    assert "k_cutoff" in p and p.get("k_cutoff") == p.k_cutoff
    assert p.exponent == 1.0 and p.accuracy == 1e-6 and p.prefactor == 1.0
    assert p.predicted_error is not None and 0 < p.predicted_error <= 1e-6
    assert set(dict(p)) == {f.name for f in dataclasses.fields(p) if getattr(p, f.name) is not None}
    with pytest.raises(KeyError):
        p["mesh"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.smearing = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.energy = 0.0  # type: ignore[misc]
    pme = ff.pme(system, q).parameters
    assert pme.method == "pme" and pme.k_cutoff is None and "k_cutoff" not in pme
    assert isinstance(pme.mesh, tuple) and all(isinstance(k, int) for k in pme.mesh)
    assert isinstance(pme.order, int)
    chosen = ff.ewald_parameters(system, method="pme")
    assert isinstance(chosen, CoulombParameters) and chosen.method == "pme"


def test_timing_counts_the_choice_only_on_a_cache_miss() -> None:
    system, q = _box()
    calc = ff.Coulomb(method="ewald")
    first = calc.compute(system, q)
    second = calc.compute(system, q)
    assert isinstance(first.timing, Timing)
    assert first.timing.choose > 0.0 and first.timing.compute > 0.0
    assert second.timing.choose == 0.0 and second.timing.compute > 0.0
    assert second.timing.total == second.timing.compute
    assert calc.tunings == 1


def test_pme_mesh_spacing_is_turned_into_a_mesh_by_the_core() -> None:
    """Every mesh size is at least length / spacing, FFT-friendly (factors 2, 3, 5, 7) and at
    least the order; the energy matches Ewald at the requested accuracy."""
    system, q = _box(24, seed=5)
    assert system.cell is not None
    spacing = 0.45
    result = ff.pme(system, q, mesh_spacing=spacing, accuracy=1e-6)
    mesh = result.parameters.mesh
    assert mesh is not None and result.parameters.order is not None
    lengths = np.linalg.norm(system.cell, axis=1)
    for k, length in zip(mesh, lengths, strict=True):
        assert length / k <= spacing
        assert k >= result.parameters.order
        rest = k
        for prime in (2, 3, 5, 7):
            while rest % prime == 0:
                rest //= prime
        assert rest == 1
    reference = ff.ewald(system, q, method="ewald", accuracy=1e-12)
    assert result.energy == pytest.approx(reference.energy, rel=1e-5, abs=1e-6)
    calc = ff.Coulomb(method="pme", mesh_spacing=spacing)
    assert calc.parameters_for(system).mesh == mesh
    with pytest.raises(ValueError, match="mesh"):
        ff.pme(system, q, mesh=(16, 16, 16), mesh_spacing=0.5)
    with pytest.raises(ValueError, match="mesh_spacing"):
        ff.pme(system, q, mesh_spacing=-1.0)


def test_prefactor_scales_every_output() -> None:
    system, q = _box()
    plain = ff.ewald(system, q, method="ewald", smearing=0.8, cutoff=6.0, k_cutoff=11.0)
    scaled = ff.ewald(
        system, q, method="ewald", smearing=0.8, cutoff=6.0, k_cutoff=11.0, prefactor=14.4
    )
    assert scaled.energy == pytest.approx(14.4 * plain.energy, rel=1e-12)
    for name in ("forces", "stress", "virial", "potentials"):
        np.testing.assert_allclose(getattr(scaled, name), 14.4 * getattr(plain, name), rtol=1e-12)
    assert scaled.parameters.prefactor == 14.4


@pytest.mark.parametrize("name", ["EwaldResult", "PmeResult", "PmeParameters"])
def test_deprecated_result_names_warn(name: str) -> None:
    with pytest.warns(DeprecationWarning, match=name):
        old = getattr(ff, name)
    module = importlib.import_module("farfield.pme")  # ff.pme is the function
    with pytest.warns(DeprecationWarning, match=name):
        assert getattr(module, name) is old
    system, q = _box()
    if name == "PmeParameters":
        p = old(smearing=1.0, cutoff=5.0, mesh=(8, 8, 8), order=6)
        assert p.method == "pme" and p["mesh"] == (8, 8, 8)
    else:
        assert isinstance(ff.ewald(system, q), old)


def test_removed_native_entry_points_are_gone() -> None:
    for name in ("ewald_tune", "ewald_compute", "pme_tune", "pme_compute"):
        assert not hasattr(ff._native, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ff.pme_preferred(_box()[0]) is False
