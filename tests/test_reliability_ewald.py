"""Ewald / PME / direct sums: no wrong number, no hang, no silent zero (issue #15).

Cost before work (refusals in well under a second), Ctrl-C during a long sum, missing or
absurd charges, arguments that cannot be honoured.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

import farfield as ff
from farfield.ase import EwaldCalculator


def _nacl(repeat: int = 1) -> Atoms:
    return bulk("NaCl", "rocksalt", a=5.64).repeat(repeat)


def _charges(atoms: Atoms) -> np.ndarray:
    return np.where(atoms.numbers == 11, 1.0, -1.0)


def _quick(call: Any, *args: Any, match: str, limit: float = 1.0, **kwargs: Any) -> str:
    """Asserts that call(*args, **kwargs) raises a ValueError matching `match` within `limit` s."""
    start = time.perf_counter()
    with pytest.raises(ValueError, match=match) as info:
        call(*args, **kwargs)
    elapsed = time.perf_counter() - start
    assert elapsed < limit, f"refused after {elapsed:.2f} s"
    return str(info.value)


# --- cost before work ------------------------------------------------------------------------


def test_huge_cutoff_is_refused_quickly() -> None:
    atoms = _nacl()
    _quick(ff.ewald, atoms, _charges(atoms), cutoff=1e6, match="cutoff")


@pytest.mark.parametrize("method", ["ewald", "pme"])
def test_huge_smearing_is_refused_quickly(method: str) -> None:
    atoms = _nacl()
    _quick(ff.ewald, atoms, _charges(atoms), method=method, smearing=1e3, match="smearing")


def test_fully_fixed_huge_cutoff_is_refused_by_its_cost() -> None:
    atoms = _nacl()
    message = _quick(
        ff.ewald,
        atoms,
        _charges(atoms),
        method="ewald",
        smearing=1.0,
        cutoff=1e5,
        k_cutoff=4.0,
        match="cutoff",
    )
    assert "terms" in message and "set_limits" in message


def test_fully_fixed_huge_k_cutoff_is_refused_by_its_cost() -> None:
    atoms = _nacl()
    _quick(
        ff.ewald,
        atoms,
        _charges(atoms),
        method="ewald",
        smearing=0.1,
        cutoff=2.0,
        k_cutoff=1e4,
        match="k_cutoff",
    )


def test_huge_mesh_is_refused_quickly() -> None:
    atoms = _nacl()
    q = _charges(atoms)
    _quick(ff.pme, atoms, q, smearing=1.0, cutoff=5.0, mesh=(16384, 16384, 16384), match="mesh")
    _quick(ff.pme, atoms, q, smearing=1.0, cutoff=5.0, mesh_spacing=1e-4, match="mesh")


def test_direct_sum_is_refused_beyond_the_term_limit() -> None:
    rng = np.random.default_rng(0)
    system = ff.System(rng.random((300, 3)) * 30.0, np.ones(300, dtype=np.int32))
    q = rng.standard_normal(300)
    try:
        ff.set_limits(max_terms=1e4)
        _quick(ff.ewald, system, q, match="direct sum")
    finally:
        ff.set_limits()
    assert np.isfinite(ff.ewald(system, q).energy)


# --- Ctrl-C ---------------------------------------------------------------------------------


def test_ctrl_c_stops_a_long_ewald_sum() -> None:
    atoms = _nacl(3)
    q = _charges(atoms)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    try:
        ff.set_limits(max_terms=1e15)
        timer.start()
        start = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            # an explicit, accurate but very long real-space sum (minutes)
            ff.ewald(atoms, q, method="ewald", smearing=1.0, cutoff=900.0, k_cutoff=5.0)
        elapsed = time.perf_counter() - start
    finally:
        timer.cancel()
        ff.set_limits()
    assert elapsed < 2.3, f"stopped after {elapsed:.2f} s"
    # the next call is not affected
    assert np.isfinite(ff.ewald(atoms, q).energy)


# --- charges --------------------------------------------------------------------------------


def test_atoms_without_charges_are_refused() -> None:
    atoms = _nacl()
    assert not atoms.has("initial_charges")
    for call in (ff.ewald, ff.pme):
        with pytest.raises(ValueError, match="initial_charges") as info:
            call(atoms)
        assert "charges" in str(info.value) and "qeq" in str(info.value)
    with pytest.raises(ValueError, match="charges are required"):
        ff.pme(atoms, None)
    with pytest.raises(ValueError, match="charges are required"):
        ff.pme(ff.System.from_ase(atoms), None)
    # explicit zeros are the user's choice
    assert ff.ewald(atoms, np.zeros(len(atoms))).energy == 0.0
    atoms.set_initial_charges(np.zeros(len(atoms)))
    assert ff.ewald(atoms).energy == 0.0


def test_calculator_without_charges_is_refused() -> None:
    atoms = _nacl()
    atoms.calc = EwaldCalculator()
    with pytest.raises(ValueError, match="initial_charges"):
        atoms.get_potential_energy()


def test_per_element_charge_map() -> None:
    atoms = _nacl(2)
    q = _charges(atoms)
    expected = ff.ewald(atoms, q).energy
    assert ff.ewald(atoms, {"Na": 1.0, "Cl": -1.0}).energy == pytest.approx(expected, rel=1e-12)
    assert ff.ewald(atoms, {11: 1.0, 17: -1.0}).energy == pytest.approx(expected, rel=1e-12)
    assert ff.pme(atoms, {"Na": 1.0, "Cl": -1.0}).energy == pytest.approx(expected, rel=1e-4)
    atoms.calc = EwaldCalculator(charges={"Na": 1.0, "Cl": -1.0}, prefactor=1.0)
    assert atoms.get_potential_energy() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="no charge for element Cl"):
        ff.ewald(atoms, {"Na": 1.0})
    with pytest.raises(ValueError, match="unknown element"):
        ff.ewald(atoms, {"Xx": 1.0, "Na": 1.0, "Cl": -1.0})


@pytest.mark.parametrize("call", [ff.ewald, ff.pme])
def test_huge_charges_are_refused_not_nan(call: Any) -> None:
    atoms = _nacl()
    with pytest.raises(ValueError, match="overflow"):
        call(atoms, [1e200, -1e200])
    # large but representable charges scale exactly
    small = call(atoms, [1.0, -1.0]).energy
    assert call(atoms, [1e50, -1e50]).energy == pytest.approx(1e100 * small, rel=1e-6)


def test_pme_prefactor_nan_is_refused() -> None:
    atoms = _nacl()
    with pytest.raises(ValueError, match="prefactor"):
        ff.pme(atoms, _charges(atoms), prefactor=np.nan)
    with pytest.raises(ValueError, match="prefactor"):
        ff.ewald(atoms, _charges(atoms), prefactor=np.inf)


# --- arguments that cannot be honoured ------------------------------------------------------


@pytest.mark.parametrize("name", ["k_cutoff", "cutoff"])
def test_ewald_parameters_for_an_open_system_are_refused(name: str) -> None:
    # k_cutoff has no meaning without a cell; a fixed cutoff of 3 Å cannot reach the accuracy
    # with any smearing of the free-space mesh (which fixed parameters select on open systems)
    system = ff.System([[0.0, 0, 0], [3.0, 0, 0]], [1, 1])
    with pytest.raises(ValueError, match=name):
        ff.ewald(system, [1.0, -1.0], **{name: 3.0})


def test_a_fixed_smearing_on_an_open_system_selects_the_free_space_mesh() -> None:
    system = ff.System([[0.0, 0, 0], [3.0, 0, 0]], [1, 1])
    result = ff.ewald(system, [1.0, -1.0], smearing=1.0)
    assert result.parameters.method == "pme" and result.parameters.mesh_spacing is not None
    assert result.energy == pytest.approx(-1.0 / 3.0, rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"mesh": (-8, 8, 8)}, ValueError, "mesh"),
        ({"mesh": (8.0, 8, 8)}, TypeError, "mesh"),
        ({"mesh": (8, 8)}, ValueError, "mesh"),
        ({"mesh": 8}, TypeError, "mesh"),
        ({"order": -1}, ValueError, "order"),
        ({"order": 4.0}, TypeError, "order"),
        ({"order": True}, TypeError, "order"),
        ({"mesh_spacing": -1.0}, ValueError, "mesh_spacing"),
    ],
)
def test_pme_integer_arguments(kwargs: dict[str, Any], error: type, name: str) -> None:
    atoms = _nacl()
    with pytest.raises(error, match=name):
        ff.pme(atoms, _charges(atoms), **kwargs)


def test_calculator_refuses_unknown_keywords() -> None:
    with pytest.raises(TypeError, match="k_cuttoff"):
        EwaldCalculator(k_cuttoff=3.0)
    calc = EwaldCalculator(method="ewald", cutoff=6.0)
    atoms = _nacl(2)
    atoms.set_initial_charges(_charges(atoms))
    atoms.calc = calc
    assert np.isfinite(atoms.get_potential_energy())
    assert calc.parameters_used["cutoff"] == 6.0
