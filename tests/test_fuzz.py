"""Property-based robustness harness (hypothesis) over the public Python API.

Systems (valid or not) and parameters (in range, out of range, of the wrong type) are drawn
for every engine. Each call must return finite numbers or raise ``ValueError`` / ``TypeError`` (or
``farfield.ConvergenceError`` when the drawn iteration limit is too small);
never another exception (a caught panic is a RuntimeError, and the suite's conftest fails on
any panic anyway), never a non-finite number for finite input, never a hang: every call runs
under an alarm whose handler raises, which farfield's Ctrl-C watch turns into an interruption.
The work limits are lowered so that whatever is accepted is quick.

``FARFIELD_FUZZ_EXAMPLES`` sets the number of examples per property (``make fuzz``).
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import farfield as ff

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FARFIELD_FUZZ_EXAMPLES", "20"))
# seconds one call may take before it counts as a hang
TIME_BOUND = 20.0

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=os.environ.get("FARFIELD_FUZZ_RANDOM") is None,
    database=None,
)


class Hang(BaseException):
    """Raised by the alarm: the call ran past the time bound."""


@pytest.fixture(autouse=True)
def _small_limits() -> Iterator[None]:
    ff.set_limits(max_memory=1e9, max_terms=2e8)
    try:
        yield
    finally:
        ff.set_limits()


def _bounded(call: Callable[[], Any]) -> Any:
    """Runs ``call``: its result, or ``None`` after a ValueError/TypeError."""

    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"call ran past {TIME_BOUND} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_BOUND)
    try:
        return call()
    except (ValueError, TypeError, ff.ConvergenceError) as error:
        # ConvergenceError: a documented outcome of an iteration limit the strategy chose
        assert str(error), "an error without a message"
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


def _finite(*arrays: Any) -> None:
    for a in arrays:
        if a is None:
            continue
        values = np.asarray(a, dtype=np.float64)
        assert np.all(np.isfinite(values)), "non-finite number for finite input"


# --- strategies ---------------------------------------------------------------------------


def _log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(math.log(lo), math.log(hi)).map(math.exp)


def _weird_numbers() -> st.SearchStrategy[Any]:
    return st.sampled_from([0, -1, 0.0, -1.0, float("nan"), float("inf"), 1e300, True, "1", None])


def _real(lo: float, hi: float) -> st.SearchStrategy[Any]:
    return st.one_of(_log_uniform(lo, hi), _log_uniform(lo, hi), _weird_numbers())


def _count(lo: int, hi: int) -> st.SearchStrategy[Any]:
    weird = st.sampled_from([-1, 2.0, 3.7, True, "3", None, 10**6])
    return st.one_of(st.integers(lo, hi), st.integers(lo, hi), weird)


@st.composite
def systems(draw: st.DrawFn, max_atoms: int = 6) -> ff.System | None:
    n = draw(st.integers(0, max_atoms))
    length = draw(st.floats(2.0, 12.0))
    positions = draw(
        st.lists(
            st.lists(st.floats(0.0, length, allow_nan=False), min_size=3, max_size=3),
            min_size=n,
            max_size=n,
        )
    )
    numbers = draw(st.lists(st.sampled_from([1, 8, 11, 17]), min_size=n, max_size=n))
    periodic = draw(st.booleans())
    cell = None
    if periodic:
        noise = np.array(draw(st.lists(st.floats(-0.3, 0.3), min_size=9, max_size=9)))
        cell = np.eye(3) * length + noise.reshape(3, 3)
    try:
        return ff.System(np.array(positions, dtype=float).reshape(n, 3), numbers, cell)
    except ValueError:
        return None


def _charges(system: ff.System, total: float) -> np.ndarray[Any, Any]:
    n = len(system)
    q = np.array([1.0 if i % 2 == 0 else -1.0 for i in range(n)])
    return q + (total / n if n else 0.0)


# --- properties ---------------------------------------------------------------------------


@SETTINGS
@given(
    system=systems(),
    exponent=st.one_of(st.sampled_from([1.0, 6.0, 3.0]), st.floats(0.3, 8.0), _weird_numbers()),
    accuracy=_real(1e-9, 0.9),
    method=st.sampled_from(["auto", "ewald", "pme", "direct", "fmm"]),
    smearing=st.one_of(st.none(), _real(1e-3, 1e3)),
    cutoff=st.one_of(st.none(), _real(1e-2, 1e4)),
    k_cutoff=st.one_of(st.none(), _real(1e-2, 1e3)),
    total=st.sampled_from([0.0, 1.0]),
)
def test_coulomb_sums(
    system: ff.System | None,
    exponent: Any,
    accuracy: Any,
    method: str,
    smearing: Any,
    cutoff: Any,
    k_cutoff: Any,
    total: float,
) -> None:
    if system is None:
        return
    q = _charges(system, total)
    result = _bounded(
        lambda: ff.ewald(
            system,
            q,
            exponent=exponent,
            accuracy=accuracy,
            method=method,
            smearing=smearing,
            cutoff=cutoff,
            k_cutoff=k_cutoff,
        )
    )
    if result is not None:
        _finite(result.energy, result.forces, result.stress, result.potentials)


@SETTINGS
@given(
    system=systems(),
    accuracy=_real(1e-8, 0.9),
    smearing=st.one_of(st.none(), _real(1e-3, 1e3)),
    cutoff=st.one_of(st.none(), _real(1e-2, 1e4)),
    mesh=st.one_of(st.none(), _count(0, 80), st.just([16, 16, -2])),
    order=st.one_of(st.none(), _count(0, 14)),
)
def test_pme(
    system: ff.System | None, accuracy: Any, smearing: Any, cutoff: Any, mesh: Any, order: Any
) -> None:
    if system is None or not system.periodic:
        return
    q = _charges(system, 0.0)
    result = _bounded(
        lambda: ff.pme(
            system, q, accuracy=accuracy, smearing=smearing, cutoff=cutoff, mesh=mesh, order=order
        )
    )
    if result is not None:
        _finite(result.energy, result.forces, result.stress)


@SETTINGS
@given(
    system=systems(),
    hardness=_real(1e-2, 1e2),
    sigma=_real(1e-2, 1e3),
    smearing=st.one_of(st.none(), _real(1e-4, 1e3)),
    solver=st.sampled_from(["auto", "dense", "cg", "lu"]),
    kspace=st.sampled_from(["auto", "ewald", "pme"]),
    preconditioner=st.sampled_from(["auto", "jacobi", "fourier"]),
    max_iterations=_count(0, 300),
    total=st.sampled_from([0.0, -1.0]),
)
def test_charge_equilibration(
    system: ff.System | None,
    hardness: Any,
    sigma: Any,
    smearing: Any,
    solver: str,
    kspace: str,
    preconditioner: str,
    max_iterations: Any,
    total: float,
) -> None:
    if system is None:
        return
    chi = {1: 0.5, 8: 2.0, 11: -1.0, 17: 1.5}
    result = _bounded(
        lambda: ff.qeq(
            system,
            electronegativity=chi,
            hardness=hardness,
            sigma=sigma,
            total_charge=total,
            smearing=smearing,
            solver=solver,
            kspace=kspace,
            preconditioner=preconditioner,
            max_iterations=max_iterations,
        )
    )
    if result is not None:
        _finite(result.charges, result.energy, result.forces)


@SETTINGS
@given(
    frames=st.lists(systems(), max_size=3),
    which=st.sampled_from(["expansion", "power", "triplets", "bispectrum"]),
    cutoff=_real(0.1, 40.0),
    smearing=_real(0.01, 5.0),
    max_radial=_count(0, 12),
    max_angular=_count(0, 14),
    gradients=st.one_of(
        st.lists(st.sampled_from(["positions", "strain", "cell"]), unique=True, max_size=3),
        st.just("positions"),
        st.just(["forces"]),
    ),
)
def test_local_descriptors(
    frames: list[ff.System | None],
    which: str,
    cutoff: Any,
    smearing: Any,
    max_radial: Any,
    max_angular: Any,
    gradients: Any,
) -> None:
    systems_ = [f for f in frames if f is not None]

    def run() -> Any:
        if which == "expansion":
            calc: Any = ff.SphericalExpansion(cutoff, max_radial, max_angular, smearing)
            return calc.compute(systems_, gradients=gradients).values
        if which == "power":
            calc = ff.PowerSpectrum(cutoff, max_radial, max_angular, smearing)
            return calc.compute(systems_, gradients=gradients).values
        if which == "triplets":
            calc = ff.TripletFeatures(
                cutoff, max_radial=max_radial, max_angular=max_angular, smearing=smearing
            )
            return calc.compute(systems_).values
        calc = ff.Bispectrum(
            cutoff, max_radial=max_radial, max_angular=max_angular, smearing=smearing
        )
        return calc.compute(systems_).values

    _finite(_bounded(run))


@SETTINGS
@given(
    system=systems(),
    exponent=st.one_of(st.sampled_from([0.0, 1.0, 3.0, 6.0]), st.floats(0.2, 7.0)),
    smearing=_real(1e-3, 20.0),
    radius=_real(0.1, 20.0),
    max_radial=_count(0, 10),
    max_angular=_count(0, 10),
    k_cutoff=st.one_of(st.none(), _real(1e-2, 1e4)),
    basis=st.sampled_from(["gto", "monomial", "bessel"]),
    method=st.sampled_from(["auto", "exact", "mesh"]),
    gradients=st.one_of(
        st.lists(st.sampled_from(["positions", "strain", "cell"]), unique=True, max_size=2),
        st.just("strain"),
    ),
    power=st.booleans(),
)
def test_lode(
    system: ff.System | None,
    exponent: float,
    smearing: Any,
    radius: Any,
    max_radial: Any,
    max_angular: Any,
    k_cutoff: Any,
    basis: str,
    method: str,
    gradients: Any,
    power: bool,
) -> None:
    if system is None:
        return

    def run() -> Any:
        kwargs = dict(
            exponent=exponent,
            smearing=smearing,
            max_angular=max_angular,
            max_radial=max_radial,
            radius=radius,
            basis=basis,
            k_cutoff=k_cutoff,
            method=method,
        )
        if power:
            return ff.LodePowerSpectrum(ff.LodeSphericalExpansion(**kwargs)).compute(system).values
        calc = ff.LodeSphericalExpansion(**kwargs)
        return calc.compute(system, gradients=gradients).values

    _finite(_bounded(run))
