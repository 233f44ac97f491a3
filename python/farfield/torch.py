"""Differentiable farfield for PyTorch (the ``torch`` extra: ``pip install farfield[torch]``).

Functions that take and return ``torch.Tensor`` and backpropagate through farfield's compiled
engines, with the second derivatives that force training needs (docs/torch.md):

* :func:`coulomb_energy`, :func:`coulomb_potentials` (and the module :class:`CoulombEnergy`):
  1/r^p sums of point charges, differentiable with respect to positions, charges and cell;
  twice differentiable with respect to positions and charges.
* :func:`qeq`: charge equilibration with Gaussian charges, charges and energy as functions of
  electronegativity, hardness, positions and cell (first derivatives for all of them, second
  derivatives for electronegativity, hardness and positions).
* :func:`spherical_expansion`, :func:`power_spectrum`, :func:`lode_spherical_expansion`,
  :func:`lode_power_spectrum`: descriptor values as functions of positions and cell, backward
  by the core's vector-Jacobian products (first derivatives).

Every function computes in float64 and returns tensors of its inputs' floating dtype; inputs
must be on the CPU (a tensor on another device raises ValueError: move it with ``.cpu()``,
a copy). Under ``torch.no_grad()`` no derivative work is done. Derivatives a function does not
provide raise ``NotImplementedError`` when asked for, never silently zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from . import _native
from .coulomb import Coulomb
from .qeq import QEq
from .system import System

__all__ = [
    "CoulombEnergy",
    "coulomb_energy",
    "coulomb_potentials",
    "lode_power_spectrum",
    "lode_spherical_expansion",
    "power_spectrum",
    "qeq",
    "spherical_expansion",
]

_CELL_SECOND_ORDER = (
    "second derivatives involving the cell are not implemented: detach the cell "
    "(cell.detach()) before a double backward, or differentiate once"
)


def _dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """The floating dtype of the results: the widest of the inputs' (float64 by default)."""
    dtypes = [t.dtype for t in tensors if t is not None and t.is_floating_point()]
    if not dtypes:
        return torch.float64
    return torch.float64 if torch.float64 in dtypes else dtypes[0]


def _check(name: str, tensor: Any, shape: tuple[int | None, ...] | None = None) -> torch.Tensor:
    """``tensor`` as a float64 CPU tensor (graph kept), after checking its device and shape."""
    if not isinstance(tensor, torch.Tensor):
        tensor = torch.as_tensor(np.asarray(tensor, dtype=np.float64))
    if tensor.device.type != "cpu":
        raise ValueError(
            f"{name} is on {tensor.device}: farfield computes on the CPU; move it with "
            f"{name}.cpu() (a copy) and the results back with .to(device)"
        )
    if not (tensor.is_floating_point() or tensor.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must be a floating-point tensor, got {tensor.dtype}")
    if shape is not None:
        ok = tensor.dim() == len(shape) and all(
            s is None or s == t for s, t in zip(shape, tensor.shape, strict=True)
        )
        if not ok:
            want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}, got {tuple(tensor.shape)}")
    return tensor.to(torch.float64)


def _numpy(tensor: torch.Tensor) -> np.ndarray[Any, np.dtype[np.float64]]:
    return tensor.detach().numpy().astype(np.float64, copy=False)


def _system(positions: torch.Tensor, cell: torch.Tensor | None, numbers: Any = None) -> System:
    n = positions.shape[0]
    z = np.ones(n, dtype=np.int32) if numbers is None else np.asarray(numbers)
    return System(_numpy(positions), z, None if cell is None else _numpy(cell))


def _cell_gradient(
    strain: np.ndarray[Any, Any],
    positions: np.ndarray[Any, Any],
    grad_r: np.ndarray[Any, Any],
    cell: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    """dE/dH at fixed Cartesian positions from dE/dε (r → (1+ε) r, H → H(1+ε)ᵀ) and dE/dr:
    H⁻ᵀ (dE/dε − Σ_i dE/dr_i ⊗ r_i)ᵀ."""
    m = strain - grad_r.T @ positions
    return np.asarray(np.linalg.solve(cell.T, m.T))


class _Sum:
    """One Coulomb calculator and the system it was evaluated on (shared by the autograd nodes
    of one call)."""

    def __init__(self, calculator: Coulomb, system: System) -> None:
        self.calculator = calculator
        self.system = system

    def potentials(self, q: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        out = self.calculator.compute(self.system, q, forces=False, stress=False, potentials=True)
        assert out.potentials is not None
        return out.potentials

    def second_order(
        self, a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], u: np.ndarray[Any, Any]
    ) -> dict[str, Any]:
        """The core's gradient, dipole potentials and Hessian-vector product of aᵀAb along u,
        with the calculator's prefactor (farfield.hessian)."""
        c = self.calculator
        p = c.parameters_for(self.system)
        fixed = {}
        if p.method == "ewald":
            fixed = {"smearing": p.smearing, "cutoff": p.cutoff, "k_cutoff": p.k_cutoff}
        out = _native.second_order(
            self.system._arrays(),
            np.ascontiguousarray(a, dtype=np.float64),
            np.ascontiguousarray(b, dtype=np.float64),
            np.ascontiguousarray(u, dtype=np.float64),
            exponent=c.exponent,
            accuracy=c.accuracy,
            **fixed,
        )
        for key in ("gradient", "dipole_a", "dipole_b", "hvp"):
            out[key] = c.prefactor * out[key]
        return out


class _EnergyGradients(torch.autograd.Function):
    """(V, ∂E/∂r, ∂E/∂H) as a differentiable function of (q, r, H): the values come from the
    forward pass of :class:`_Energy`; the backward is the exact Hessian product."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        charges: torch.Tensor,
        positions: torch.Tensor,
        cell: torch.Tensor | None,
        values: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
        engine: _Sum,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        ctx.save_for_backward(charges)
        ctx.engine = engine  # type: ignore[attr-defined]
        ctx.has_cell = cell is not None  # type: ignore[attr-defined]
        potentials, grad_r, grad_h = values
        return potentials.clone(), grad_r.clone(), None if grad_h is None else grad_h.clone()

    @staticmethod
    @once_differentiable  # type: ignore[untyped-decorator]
    def backward(  # type: ignore[override]
        ctx: FunctionCtx, g_pot: torch.Tensor | None, g_r: torch.Tensor | None, g_h: Any
    ) -> tuple[Any, ...]:
        (charges,) = ctx.saved_tensors  # type: ignore[attr-defined]
        engine: _Sum = ctx.engine  # type: ignore[attr-defined]
        needs = ctx.needs_input_grad  # type: ignore[attr-defined]
        if needs[2] or (g_h is not None and bool(torch.any(g_h != 0))):
            raise NotImplementedError(_CELL_SECOND_ORDER)
        q = _numpy(charges)
        n = len(q)
        nu = np.zeros(n) if g_pot is None else _numpy(g_pot)
        mu = np.zeros((n, 3)) if g_r is None else _numpy(g_r)
        grad_q = np.zeros(n)
        grad_r = np.zeros((n, 3))
        if np.any(nu):
            # V = A q: ∂(νᵀ A q)/∂q = A ν, ∂/∂r = ∇_r (νᵀ A q)
            grad_q += engine.potentials(nu)
            if needs[1]:
                grad_r += engine.second_order(nu, q, np.zeros((n, 3)))["gradient"]
        if np.any(mu):
            # ∂E/∂r = ½ ∇_r (qᵀ A q): its product with μ gives D_μ(A q) for q, ½ H(q, q) μ for r
            second = engine.second_order(q, q, mu)
            grad_q += second["dipole_a"]
            grad_r += 0.5 * second["hvp"]
        return (
            torch.from_numpy(grad_q) if needs[0] else None,
            torch.from_numpy(grad_r) if needs[1] else None,
            None,
            None,
            None,
        )


class _Energy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        charges: torch.Tensor,
        positions: torch.Tensor,
        cell: torch.Tensor | None,
        engine: _Sum,
        derivatives: bool,
    ) -> torch.Tensor:
        system = engine.system
        q = _numpy(charges)
        periodic = cell is not None
        out = engine.calculator.compute(
            system,
            q,
            forces=derivatives,
            stress=derivatives and periodic,
            potentials=derivatives,
        )
        if derivatives:
            assert out.forces is not None and out.potentials is not None
            grad_r = -out.forces
            grad_h = None
            if periodic:
                assert out.virial is not None and cell is not None
                grad_h = torch.from_numpy(
                    _cell_gradient(-out.virial, system.positions, grad_r, _numpy(cell))
                )
            ctx.values = (  # type: ignore[attr-defined]
                torch.from_numpy(np.array(out.potentials)),
                torch.from_numpy(np.array(grad_r)),
                grad_h,
            )
            ctx.engine = engine  # type: ignore[attr-defined]
            ctx.save_for_backward(charges, positions, cell)
        return torch.tensor(out.energy, dtype=torch.float64)

    @staticmethod
    def backward(ctx: FunctionCtx, grad_energy: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        charges, positions, cell = ctx.saved_tensors  # type: ignore[attr-defined]
        potentials, grad_r, grad_h = _EnergyGradients.apply(
            charges,
            positions,
            cell,
            ctx.values,
            ctx.engine,  # type: ignore[attr-defined]
        )
        needs = ctx.needs_input_grad  # type: ignore[attr-defined]
        return (
            grad_energy * potentials if needs[0] else None,
            grad_energy * grad_r if needs[1] else None,
            grad_energy * grad_h if needs[2] and grad_h is not None else None,
            None,
            None,
        )


class _PotentialsGradients(torch.autograd.Function):
    """(A w, ∇_r(wᵀ A q), ∂(wᵀ A q)/∂H) as a differentiable function of (w, q, r, H)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        upstream: torch.Tensor,
        charges: torch.Tensor,
        positions: torch.Tensor,
        cell: torch.Tensor | None,
        engine: _Sum,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        w, q = _numpy(upstream), _numpy(charges)
        n = len(q)
        ctx.save_for_backward(upstream, charges)
        ctx.engine = engine  # type: ignore[attr-defined]
        pot = engine.potentials(w)
        grad_r = engine.second_order(w, q, np.zeros((n, 3)))["gradient"]
        grad_h = None
        if cell is not None:
            # ∂(wᵀAq)/∂ε from the energies' virials: B(w, q) = E(w + q) − E(w) − E(q) ...
            # via the polarization identity 4B = E₂(w + q) − E₂(w − q) of E₂(x) = xᵀAx = 2E(x)
            c = engine.calculator
            plus = c.compute(engine.system, w + q, forces=False, stress=True)
            minus = c.compute(engine.system, w - q, forces=False, stress=True)
            assert plus.virial is not None and minus.virial is not None
            strain = -(plus.virial - minus.virial) / 2.0
            grad_h = torch.from_numpy(
                _cell_gradient(strain, engine.system.positions, grad_r, _numpy(cell))
            )
        return torch.from_numpy(pot), torch.from_numpy(grad_r), grad_h

    @staticmethod
    @once_differentiable  # type: ignore[untyped-decorator]
    def backward(  # type: ignore[override]
        ctx: FunctionCtx, g_pot: torch.Tensor | None, g_r: torch.Tensor | None, g_h: Any
    ) -> tuple[Any, ...]:
        upstream, charges = ctx.saved_tensors  # type: ignore[attr-defined]
        engine: _Sum = ctx.engine  # type: ignore[attr-defined]
        needs = ctx.needs_input_grad  # type: ignore[attr-defined]
        if needs[3] or (g_h is not None and bool(torch.any(g_h != 0))):
            raise NotImplementedError(_CELL_SECOND_ORDER)
        w, q = _numpy(upstream), _numpy(charges)
        n = len(q)
        nu = np.zeros(n) if g_pot is None else _numpy(g_pot)
        mu = np.zeros((n, 3)) if g_r is None else _numpy(g_r)
        grad_w, grad_q, grad_r = np.zeros(n), np.zeros(n), np.zeros((n, 3))
        if np.any(nu):
            # A w: ∂(νᵀ A w)/∂w = A ν; ∂/∂r = ∇_r (νᵀ A w)
            grad_w += engine.potentials(nu)
            if needs[2]:
                grad_r += engine.second_order(nu, w, np.zeros((n, 3)))["gradient"]
        if np.any(mu):
            second = engine.second_order(w, q, mu)
            grad_w += second["dipole_b"]
            grad_q += second["dipole_a"]
            grad_r += second["hvp"]
        return (
            torch.from_numpy(grad_w) if needs[0] else None,
            torch.from_numpy(grad_q) if needs[1] else None,
            torch.from_numpy(grad_r) if needs[2] else None,
            None,
            None,
        )


class _Potentials(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        charges: torch.Tensor,
        positions: torch.Tensor,
        cell: torch.Tensor | None,
        engine: _Sum,
    ) -> torch.Tensor:
        ctx.save_for_backward(charges, positions, cell)
        ctx.engine = engine  # type: ignore[attr-defined]
        return torch.from_numpy(engine.potentials(_numpy(charges)))

    @staticmethod
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        charges, positions, cell = ctx.saved_tensors  # type: ignore[attr-defined]
        # V = A q is linear in q: ∂(gᵀV)/∂q = A g (A symmetric)
        grad_q, grad_r, grad_h = _PotentialsGradients.apply(
            grad,
            charges,
            positions,
            cell,
            ctx.engine,  # type: ignore[attr-defined]
        )
        needs = ctx.needs_input_grad  # type: ignore[attr-defined]
        return (
            grad_q if needs[0] else None,
            grad_r if needs[1] else None,
            grad_h if needs[2] else None,
            None,
        )


def _inputs(
    positions: Any, charges: Any, cell: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.dtype]:
    dtype = _dtype(*(t for t in (positions, charges, cell) if isinstance(t, torch.Tensor)))
    r = _check("positions", positions, (None, 3))
    n = r.shape[0]
    q = _check("charges", charges, (n,))
    h = None if cell is None else _check("cell", cell, (3, 3))
    return r, q, h, dtype


class CoulombEnergy(torch.nn.Module):
    """The 1/r^p energy (or potentials) of point charges as a differentiable torch module.

    Holds one :class:`farfield.Coulomb` calculator (tuned once per cell shape and atom count,
    then reused). ``forward(positions, charges, cell=None)`` returns the energy; see
    :func:`coulomb_energy` for the derivatives.

    Args:
        exponent, accuracy, method, prefactor, and any fixed parameter of
            :class:`farfield.Coulomb` (smearing, cutoff, k_cutoff, mesh, order, mesh_spacing).
    """

    def __init__(
        self,
        exponent: float = 1.0,
        accuracy: float = 1e-6,
        method: str = "auto",
        prefactor: float = 1.0,
        **fixed: Any,
    ) -> None:
        super().__init__()
        self.calculator = Coulomb(
            exponent=exponent, accuracy=accuracy, method=method, prefactor=prefactor, **fixed
        )

    def forward(self, positions: Any, charges: Any, cell: Any = None) -> torch.Tensor:
        """The energy of ``charges`` at ``positions`` in ``cell`` (None: open system)."""
        return coulomb_energy(positions, charges, cell, calculator=self.calculator)

    def potentials(self, positions: Any, charges: Any, cell: Any = None) -> torch.Tensor:
        """The per-atom potentials φ = A q (E = ½ Σ q φ)."""
        return coulomb_potentials(positions, charges, cell, calculator=self.calculator)

    def batch(
        self,
        positions: Sequence[Any],
        charges: Sequence[Any],
        cells: Sequence[Any] | None = None,
    ) -> torch.Tensor:
        """The energies of a batch of structures (one tensor of shape (len(positions),))."""
        if len(charges) != len(positions):
            raise ValueError(f"charges has {len(charges)} entries for {len(positions)} structures")
        if cells is None:
            cells = [None] * len(positions)
        elif len(cells) != len(positions):
            raise ValueError(f"cells has {len(cells)} entries for {len(positions)} structures")
        return torch.stack(
            [self.forward(r, q, h) for r, q, h in zip(positions, charges, cells, strict=True)]
        )


def _calculator(calculator: Coulomb | None, **settings: Any) -> Coulomb:
    if calculator is not None:
        if not isinstance(calculator, Coulomb):
            raise TypeError(
                f"calculator must be a farfield.Coulomb, got {type(calculator).__name__}"
            )
        return calculator
    return Coulomb(**settings)


def coulomb_energy(
    positions: Any,
    charges: Any,
    cell: Any = None,
    *,
    exponent: float = 1.0,
    accuracy: float = 1e-6,
    method: str = "auto",
    prefactor: float = 1.0,
    calculator: Coulomb | None = None,
) -> torch.Tensor:
    """The energy E = ½ Σ_ij q_i q_j / r_ij^p (periodic images included when ``cell`` is
    given) as a differentiable scalar tensor.

    Args:
        positions: (n, 3) tensor.
        charges: (n,) tensor.
        cell: (3, 3) tensor of cell vectors as rows, or None for an open system.
        exponent, accuracy, method, prefactor: as for :class:`farfield.Coulomb`.
        calculator: a :class:`farfield.Coulomb` to use (and reuse: its parameters are tuned
            once per cell); replaces the four settings above.

    Derivatives: ∂E/∂q = φ, ∂E/∂r = −F and ∂E/∂H (from the virial) to first order; second
    order (``create_graph=True``, e.g. a loss on forces) with respect to positions and
    charges, exactly (the core's Hessian products, farfield.hessian), not with respect to the
    cell (NotImplementedError).
    """
    calc = _calculator(
        calculator, exponent=exponent, accuracy=accuracy, method=method, prefactor=prefactor
    )
    r, q, h, dtype = _inputs(positions, charges, cell)
    engine = _Sum(calc, _system(r, h))
    derivatives = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (r, q, h)
    )
    energy: torch.Tensor = _Energy.apply(q, r, h, engine, derivatives)
    return energy.to(dtype)


def coulomb_potentials(
    positions: Any,
    charges: Any,
    cell: Any = None,
    *,
    exponent: float = 1.0,
    accuracy: float = 1e-6,
    method: str = "auto",
    prefactor: float = 1.0,
    calculator: Coulomb | None = None,
) -> torch.Tensor:
    """The per-atom potentials φ = A q (E = ½ Σ q φ) as a differentiable (n,) tensor; the
    arguments and derivatives as for :func:`coulomb_energy`."""
    calc = _calculator(
        calculator, exponent=exponent, accuracy=accuracy, method=method, prefactor=prefactor
    )
    r, q, h, dtype = _inputs(positions, charges, cell)
    engine = _Sum(calc, _system(r, h))
    potentials: torch.Tensor = _Potentials.apply(q, r, h, engine)
    return potentials.to(dtype)


def qeq(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - defined below
    raise NotImplementedError


def spherical_expansion(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover
    raise NotImplementedError


def power_spectrum(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover
    raise NotImplementedError


def lode_spherical_expansion(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover
    raise NotImplementedError


def lode_power_spectrum(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover
    raise NotImplementedError


_UNUSED = QEq  # the QEq bridge below builds on farfield.QEq
