"""Differentiable farfield for PyTorch (the ``torch`` extra: ``pip install farfield[torch]``).

Functions that take and return ``torch.Tensor`` and backpropagate through farfield's compiled
engines, with the second derivatives that force training needs (docs/torch.md):

* :func:`coulomb_energy`, :func:`coulomb_potentials` (and the module :class:`CoulombEnergy`):
  1/r^p sums of point charges, differentiable with respect to positions, charges and cell,
  twice included (e.g. a loss on the stress differentiated with respect to the charges).
* :func:`qeq`: charge equilibration with Gaussian charges, charges and energy as functions of
  electronegativity, hardness, σ, positions and cell (first derivatives for all of them, second
  derivatives for all but σ).
* :func:`spherical_expansion`, :func:`power_spectrum`, :func:`lode_spherical_expansion`,
  :func:`lode_power_spectrum`: descriptor values as functions of positions and cell, backward
  by the core's vector-Jacobian products (first derivatives).

Every function computes in float64 and returns tensors of its inputs' floating dtype; inputs
must be on the CPU (a tensor on another device raises ValueError: move it with ``.cpu()``,
a copy). Under ``torch.no_grad()`` no derivative work is done. Derivatives a function does not
provide raise ``NotImplementedError`` when asked for, never silently zero.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from . import _native
from ._native import get_num_threads
from .coulomb import Coulomb
from .descriptors import PowerSpectrum, SphericalExpansion
from .lode import LodePowerSpectrum, LodeResult, LodeSphericalExpansion
from .qeq import QEq
from .system import System

__all__ = [
    "CoulombEnergy",
    "coulomb_energy",
    "coulomb_potentials",
    "features",
    "lode_power_spectrum",
    "lode_spherical_expansion",
    "power_spectrum",
    "qeq",
    "qeq_batch",
    "spherical_expansion",
]


def _dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """The floating dtype of the results: the widest of the inputs' (float64 by default)."""
    return _common_dtype([t.dtype for t in tensors if t is not None and t.is_floating_point()])


def _common_dtype(dtypes: Sequence[torch.dtype]) -> torch.dtype:
    """float64 when any of ``dtypes`` is (or there are none), else the first."""
    return torch.float64 if not dtypes or torch.float64 in dtypes else dtypes[0]


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
    out: torch.Tensor = tensor.to(torch.float64)
    return out


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


def _second_order(
    system: System,
    a: np.ndarray[Any, Any],
    b: np.ndarray[Any, Any],
    u: np.ndarray[Any, Any],
    prefactor: float,
    **settings: Any,
) -> dict[str, Any]:
    """The core's gradient, dipole potentials and Hessian-vector product of aᵀAb along u
    (farfield::hessian), times ``prefactor``; with ``strain=e`` (a keyword of ``settings``)
    along (u, e), with the strain gradient ∂(aᵀAb)/∂ε and its derivative."""
    if settings.get("strain") is not None:
        settings["strain"] = np.ascontiguousarray(settings["strain"], dtype=np.float64)
    out = _native.second_order(
        system._arrays(),
        np.ascontiguousarray(a, dtype=np.float64),
        np.ascontiguousarray(b, dtype=np.float64),
        np.ascontiguousarray(u, dtype=np.float64),
        **settings,
    )
    keys = ("gradient", "dipole_a", "dipole_b", "hvp", "strain_gradient", "strain_hvp")
    return {key: prefactor * out[key] for key in keys if out[key] is not None}


def _cell_direction(
    cell: np.ndarray[Any, Any], direction: np.ndarray[Any, Any], positions: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """A cell move Γ at fixed Cartesian positions as the strain e = (H⁻¹Γ)ᵀ (H → H(1+e)ᵀ)
    and the displacements u_i = −e r_i that undo it on the positions."""
    e = np.linalg.solve(cell, direction).T
    return e, -positions @ e.T


def _cell_product(
    cell: np.ndarray[Any, Any],
    positions: np.ndarray[Any, Any],
    grad_h: np.ndarray[Any, Any],
    grad_r: np.ndarray[Any, Any],
    d_strain: np.ndarray[Any, Any],
    d_grad_r: np.ndarray[Any, Any],
    d_positions: np.ndarray[Any, Any],
    d_cell: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    """The derivative of the cell gradient ∂F/∂H = H⁻ᵀ Nᵀ, N = ∂F/∂ε − Σ_i ∂F/∂r_i ⊗ r_i
    (:func:`_cell_gradient`), along a move (δr, δH) = (``d_positions``, ``d_cell``), given
    ``grad_h`` = ∂F/∂H, ``grad_r`` = ∂F/∂r and the derivatives of ∂F/∂ε and ∂F/∂r along the
    move: H⁻ᵀ (δN − N H⁻¹ δH)ᵀ with δN = δ(∂F/∂ε) − Σ_i δ(∂F/∂r_i) ⊗ r_i − Σ_i ∂F/∂r_i ⊗ δr_i."""
    n_matrix = grad_h.T @ cell
    dn = d_strain - d_grad_r.T @ positions - grad_r.T @ d_positions
    moved = dn - n_matrix @ np.linalg.solve(cell, d_cell)
    return np.asarray(np.linalg.solve(cell.T, moved.T))


def _concurrently(function: Any, items: Sequence[Any]) -> list[Any]:
    """``[function(x) for x in items]``, up to :func:`farfield.get_num_threads` at a time in
    threads (the compiled engines release the GIL); the results in input order."""
    workers = max(1, min(len(items), get_num_threads()))
    if workers == 1:
        return [function(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))


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
        self,
        a: np.ndarray[Any, Any],
        b: np.ndarray[Any, Any],
        u: np.ndarray[Any, Any],
        strain: np.ndarray[Any, Any] | None = None,
    ) -> dict[str, Any]:
        """The core's gradient, dipole potentials and Hessian-vector product of aᵀAb along u
        (and the strain e, with the strain gradient and its derivative), with the
        calculator's prefactor (farfield.hessian)."""
        c = self.calculator
        p = c.parameters_for(self.system)
        fixed: dict[str, Any] = {}
        if p.method == "ewald":
            fixed = {"smearing": p.smearing, "cutoff": p.cutoff, "k_cutoff": p.k_cutoff}
        elif p.method == "pme" and self.system.cell is not None:
            # the exact derivatives of the PME energy of the same parameters
            fixed = {"smearing": p.smearing, "cutoff": p.cutoff, "mesh": p.mesh, "order": p.order}
        return _second_order(
            self.system,
            a,
            b,
            u,
            c.prefactor,
            exponent=c.exponent,
            accuracy=c.accuracy,
            strain=strain,
            **fixed,
        )

    def hessian_products(
        self,
        pair: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]],
        scale: float,
        upstream: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any] | None],
        values: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None],
        needs: tuple[bool, bool],
    ) -> tuple[Any, ...]:
        """The second-order products of F = ``scale`` · aᵀA b, ``pair`` = (a, b, c), whose
        gradients ∂F/∂x = A c (x = b; with a = b = c = q and scale ½ the energy), ∂F/∂r and
        ∂F/∂H are the outputs of a forward pass (``values`` = (∂F/∂r, ∂F/∂H or None)), for
        the upstream (ν, μ, Γ) on those three: returns (A ν, D(A a), D(A b), ∂/∂r, ∂/∂H or
        None), D the unscaled derivative along (δr, δH) = (μ, Γ) (the position and cell moves
        through the strain route of farfield::hessian). ``needs`` = whether the products with
        respect to r and H are wanted."""
        a, b, c = pair
        nu, mu, gamma = upstream
        n = len(a)
        cell = None if self.system.cell is None else np.asarray(self.system.cell)
        positions = self.system.positions
        moves_cell = gamma is not None and cell is not None and bool(np.any(gamma))
        want_cell = needs[1] and cell is not None
        zeros = np.zeros((n, 3))
        potentials = np.zeros(n)
        dipole_a, dipole_b = np.zeros(n), np.zeros(n)
        grad_r = np.zeros((n, 3))
        d_strain = np.zeros((3, 3))
        if np.any(nu):
            # F's gradients are linear in c: the ν terms are those of F(a, ν)/scale
            potentials = self.potentials(nu)
            if needs[0] or want_cell:
                out = self.second_order(nu, c, zeros, np.zeros((3, 3)) if want_cell else None)
                grad_r += out["gradient"]
                if want_cell:
                    d_strain += out["strain_gradient"]
        if np.any(mu) or moves_cell:
            u, e = mu, None
            if moves_cell or want_cell:
                assert cell is not None
                e = np.zeros((3, 3))
                if moves_cell:
                    assert gamma is not None
                    e, back = _cell_direction(cell, gamma, positions)
                    u = mu + back
            out = self.second_order(a, b, u, e)
            dipole_a, dipole_b = out["dipole_a"], out["dipole_b"]
            grad_r += scale * out["hvp"]
            if e is not None:
                d_strain += scale * out["strain_hvp"]
        grad_h = None
        if want_cell:
            assert cell is not None and values[1] is not None
            grad_h = _cell_product(
                cell,
                positions,
                values[1],
                values[0],
                d_strain,
                grad_r,
                mu,
                np.zeros((3, 3)) if gamma is None else gamma,
            )
        return potentials, dipole_a, dipole_b, grad_r, grad_h


class _EnergyGradients(torch.autograd.Function):
    """(V, ∂E/∂r, ∂E/∂H) as a differentiable function of (q, r, H): the values come from the
    forward pass of :class:`_Energy`; the backward is the exact Hessian product."""

    @staticmethod
    def forward(
        ctx: Any,
        charges: torch.Tensor,
        positions: torch.Tensor,
        cell: torch.Tensor | None,
        values: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
        engine: _Sum,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        ctx.save_for_backward(charges)
        ctx.engine = engine
        ctx.has_cell = cell is not None
        potentials, grad_r, grad_h = values
        ctx.gradients = (_numpy(grad_r), None if grad_h is None else _numpy(grad_h))
        return potentials.clone(), grad_r.clone(), None if grad_h is None else grad_h.clone()

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, g_pot: torch.Tensor | None, g_r: torch.Tensor | None, g_h: Any
    ) -> tuple[Any, ...]:
        (charges,) = ctx.saved_tensors
        engine: _Sum = ctx.engine
        needs = ctx.needs_input_grad
        q = _numpy(charges)
        n = len(q)
        nu = np.zeros(n) if g_pot is None else _numpy(g_pot)
        mu = np.zeros((n, 3)) if g_r is None else _numpy(g_r)
        gamma = None if g_h is None else _numpy(g_h)
        # E = ½ qᵀAq with gradients (A q, ½ ∇_r(qᵀAq), ∂E/∂H): the Hessian of E applied to
        # (ν, μ, Γ), i.e. A ν + D(A q) for q, ∇_r(νᵀAq) + ½ D ∇_r(qᵀAq) for r, and the
        # derivative of ∂E/∂H for H
        potentials, dipole, _, grad_r, grad_h = engine.hessian_products(
            (q, q, q), 0.5, (nu, mu, gamma), ctx.gradients, (needs[1], needs[2])
        )
        return (
            torch.from_numpy(potentials + dipole) if needs[0] else None,
            torch.from_numpy(grad_r) if needs[1] else None,
            torch.from_numpy(grad_h) if needs[2] and grad_h is not None else None,
            None,
            None,
        )


def _evaluate(
    engine: _Sum, charges: torch.Tensor, cell: torch.Tensor | None, derivatives: bool
) -> tuple[float, Any]:
    """The energy, and with ``derivatives`` the values (φ, ∂E/∂r, ∂E/∂H or None) that the
    backward pass returns, from one call of the engine."""
    system = engine.system
    periodic = cell is not None
    # the virial only when the cell's gradient is wanted
    virial = derivatives and periodic and cell is not None and cell.requires_grad
    out = engine.calculator.compute(
        system, _numpy(charges), forces=derivatives, stress=virial, potentials=derivatives
    )
    if not derivatives:
        return out.energy, None
    assert out.forces is not None and out.potentials is not None
    grad_r = -out.forces
    grad_h = None
    if virial:
        assert out.virial is not None and cell is not None
        grad_h = torch.from_numpy(
            _cell_gradient(-out.virial, system.positions, grad_r, _numpy(cell))
        )
    values = (
        torch.from_numpy(np.array(out.potentials)),
        torch.from_numpy(np.array(grad_r)),
        grad_h,
    )
    return out.energy, values


class _Energy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        charges: torch.Tensor,
        positions: torch.Tensor,
        cell: torch.Tensor | None,
        engine: _Sum,
        derivatives: bool,
    ) -> torch.Tensor:
        energy, values = _evaluate(engine, charges, cell, derivatives)
        if derivatives:
            ctx.values = values
            ctx.engine = engine
            ctx.save_for_backward(charges, positions, cell)
        return torch.tensor(energy, dtype=torch.float64)

    @staticmethod
    def backward(ctx: Any, grad_energy: torch.Tensor) -> tuple[Any, ...]:
        charges, positions, cell = ctx.saved_tensors
        potentials, grad_r, grad_h = _EnergyGradients.apply(
            charges,
            positions,
            cell,
            ctx.values,
            ctx.engine,
        )
        needs = ctx.needs_input_grad
        return (
            grad_energy * potentials if needs[0] else None,
            grad_energy * grad_r if needs[1] else None,
            grad_energy * grad_h if needs[2] and grad_h is not None else None,
            None,
            None,
        )


class _BatchEnergy(torch.autograd.Function):
    """The energies of several structures in one node: the engine calls run concurrently
    (each releases the GIL), one structure per worker; the backward only hands out the
    values computed then."""

    @staticmethod
    def forward(
        ctx: Any, engines: list[_Sum], derivatives: bool, *tensors: torch.Tensor
    ) -> torch.Tensor:
        count = len(engines)
        cells = [
            tensors[3 * k + 2] if engines[k].system.cell is not None else None for k in range(count)
        ]

        def one(k: int) -> tuple[float, Any]:
            return _evaluate(engines[k], tensors[3 * k], cells[k], derivatives)

        results = _concurrently(one, range(count))
        if derivatives:
            ctx.values = [values for _, values in results]
            ctx.engines = engines
            ctx.cells = cells
            ctx.save_for_backward(*tensors)
        return torch.tensor([energy for energy, _ in results], dtype=torch.float64)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        tensors = ctx.saved_tensors
        needs = ctx.needs_input_grad[2:]
        out: list[Any] = [None, None]
        for k, engine in enumerate(ctx.engines):
            charges, positions = tensors[3 * k], tensors[3 * k + 1]
            cell = ctx.cells[k]
            potentials, grad_r, grad_h = _EnergyGradients.apply(
                charges, positions, cell, ctx.values[k], engine
            )
            g = grad[k]
            out.append(g * potentials if needs[3 * k] else None)
            out.append(g * grad_r if needs[3 * k + 1] else None)
            out.append(g * grad_h if needs[3 * k + 2] and grad_h is not None else None)
        return tuple(out)


class _PotentialsGradients(torch.autograd.Function):
    """(A w, ∇_r(wᵀ A q), ∂(wᵀ A q)/∂H) as a differentiable function of (w, q, r, H)."""

    @staticmethod
    def forward(
        ctx: Any,
        upstream: torch.Tensor,
        charges: torch.Tensor,
        positions: torch.Tensor,
        cell: torch.Tensor | None,
        engine: _Sum,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        w, q = _numpy(upstream), _numpy(charges)
        n = len(q)
        ctx.save_for_backward(upstream, charges)
        ctx.engine = engine
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
        ctx.gradients = (grad_r, None if grad_h is None else _numpy(grad_h))
        return torch.from_numpy(pot), torch.from_numpy(grad_r), grad_h

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, g_pot: torch.Tensor | None, g_r: torch.Tensor | None, g_h: Any
    ) -> tuple[Any, ...]:
        upstream, charges = ctx.saved_tensors
        engine: _Sum = ctx.engine
        needs = ctx.needs_input_grad
        w, q = _numpy(upstream), _numpy(charges)
        n = len(q)
        nu = np.zeros(n) if g_pot is None else _numpy(g_pot)
        mu = np.zeros((n, 3)) if g_r is None else _numpy(g_r)
        gamma = None if g_h is None else _numpy(g_h)
        # F = wᵀAq with gradients (A w, ∇_r F, ∂F/∂H): A ν + D(A q) for w, D(A w) for q,
        # ∇_r(νᵀAw) + D ∇_r F for r, the derivative of ∂F/∂H for H
        potentials, dipole_w, dipole_q, grad_r, grad_h = engine.hessian_products(
            (w, q, w), 1.0, (nu, mu, gamma), ctx.gradients, (needs[2], needs[3])
        )
        return (
            torch.from_numpy(potentials + dipole_q) if needs[0] else None,
            torch.from_numpy(dipole_w) if needs[1] else None,
            torch.from_numpy(grad_r) if needs[2] else None,
            torch.from_numpy(grad_h) if needs[3] and grad_h is not None else None,
            None,
        )


class _Potentials(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        charges: torch.Tensor,
        positions: torch.Tensor,
        cell: torch.Tensor | None,
        engine: _Sum,
    ) -> torch.Tensor:
        ctx.save_for_backward(charges, positions, cell)
        ctx.engine = engine
        return torch.from_numpy(engine.potentials(_numpy(charges)))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        charges, positions, cell = ctx.saved_tensors
        # V = A q is linear in q: ∂(gᵀV)/∂q = A g (A symmetric)
        grad_q, grad_r, grad_h = _PotentialsGradients.apply(
            grad,
            charges,
            positions,
            cell,
            ctx.engine,
        )
        needs = ctx.needs_input_grad
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
        exponent, accuracy, method, prefactor: as for :class:`farfield.Coulomb`.
        fixed: any fixed parameter of :class:`farfield.Coulomb` (smearing, cutoff, k_cutoff,
            mesh, order, mesh_spacing).
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
        self._calculators: dict[Any, Coulomb] = {}

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
        """The energies of a batch of structures, shape (len(positions),), in one autograd
        node: the structures are evaluated concurrently (up to
        :func:`farfield.get_num_threads` at a time), each with parameters tuned once for its
        cell and atom count and kept for later batches. The results do not depend on the
        batch composition."""
        if len(charges) != len(positions):
            raise ValueError(f"charges has {len(charges)} entries for {len(positions)} structures")
        if cells is None:
            cells = [None] * len(positions)
        elif len(cells) != len(positions):
            raise ValueError(f"cells has {len(cells)} entries for {len(positions)} structures")
        engines: list[_Sum] = []
        tensors: list[torch.Tensor] = []
        dtypes = []
        for r_, q_, h_ in zip(positions, charges, cells, strict=True):
            r, q, h, dtype = _inputs(r_, q_, h_)
            dtypes.append(dtype)
            engines.append(_Sum(self._for(len(r), h), _system(r, h)))
            tensors += [q, r, h if h is not None else torch.zeros(3, 3, dtype=torch.float64)]
        if not engines:
            return torch.zeros(0, dtype=torch.float64)
        derivatives = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        energies: torch.Tensor = _BatchEnergy.apply(engines, derivatives, *tensors)
        dtype = _common_dtype(dtypes)
        return energies.to(dtype)

    def _for(self, n: int, cell: torch.Tensor | None) -> Coulomb:
        """A calculator per (atom count, cell) of the batches seen (their tuned parameters
        are kept; at most 4096, the oldest dropped first)."""
        key = (n, None if cell is None else tuple(np.round(_numpy(cell), 12).ravel()))
        calc = self._calculators.get(key)
        if calc is None:
            if len(self._calculators) >= 4096:
                self._calculators.pop(next(iter(self._calculators)))
            calc = copy.copy(self.calculator)
            calc._cache = None  # its own cache (a pinned choice, from tune(), is kept)
            self._calculators[key] = calc
        return calc


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
    order (``create_graph=True``, e.g. a loss on forces or on the stress) with respect to
    positions, charges and cell, exactly (the core's Hessian products along displacements and
    strains, farfield.hessian).
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


class _Equilibration:
    """One QEq calculator, system and parameter set (shared by the autograd nodes of a call)."""

    def __init__(
        self,
        calculator: QEq,
        system: System,
        sigma: np.ndarray[Any, Any],
        fragments: Any,
        fragment_charges: Any,
    ) -> None:
        self.calculator = calculator
        self.system = system
        self.sigma = sigma
        self.fragments = fragments
        self.fragment_charges = fragment_charges
        self.parameters: Any = None
        # the adjoint solves: the same settings, every constrained charge 0, no warm start
        self.adjoint_calculator = copy.copy(calculator)
        self.adjoint_calculator.total_charge = 0.0
        self.adjoint_calculator.warm_start = False

    def solve(self, chi: np.ndarray[Any, Any], hardness: np.ndarray[Any, Any]) -> Any:
        result = self.calculator.compute(
            self.system,
            chi,
            hardness,
            self.sigma,
            fragments=self.fragments,
            fragment_charges=self.fragment_charges,
        )
        self.parameters = result.parameters
        return result

    def adjoint(self, w: np.ndarray[Any, Any], hardness: np.ndarray[Any, Any]) -> Any:
        """q*(w; 0): the solve with χ = w and every constrained charge 0, which is −P w for
        the constrained inverse P (the vector-Jacobian product of the charges in χ)."""
        fragment_charges = None
        if self.fragments is not None:
            fragment_charges = np.zeros(int(np.max(self.fragments)) + 1)
        return self.adjoint_calculator.compute(
            self.system,
            w,
            hardness,
            self.sigma,
            fragments=self.fragments,
            fragment_charges=fragment_charges,
        ).charges

    def vjp(self, grad_charges: np.ndarray[Any, Any], grad_energy: float, chi: Any, j: Any) -> Any:
        """The core's first-order vector-Jacobian products (σ and cell)."""
        _, grads = self.calculator.vjp(
            self.system,
            grad_charges,
            grad_energy,
            chi,
            j,
            self.sigma,
            fragments=self.fragments,
            fragment_charges=self.fragment_charges,
        )
        return grads

    def bilinear(
        self,
        a: np.ndarray[Any, Any],
        b: np.ndarray[Any, Any],
        u: np.ndarray[Any, Any],
        strain: np.ndarray[Any, Any] | None = None,
    ) -> dict[str, Any]:
        """k_e × the core's second derivatives of aᵀ C b (Gaussian charges of widths σ) along
        u (and the strain e)."""
        fixed: dict[str, Any] = {}
        p = self.parameters
        if self.system.cell is not None:
            fixed = {"smearing": p.smearing, "cutoff": p.cutoff, "k_cutoff": p.k_cutoff}
        widths = np.ascontiguousarray(self.sigma, dtype=np.float64)
        return _second_order(
            self.system,
            a,
            b,
            u,
            self.calculator.prefactor,
            widths=widths,
            strain=strain,
            **fixed,
        )


_QEQ_SECOND_ORDER = (
    "second derivatives of QEq with respect to sigma are not implemented: detach it "
    "(sigma.detach()) before a double backward, or differentiate once"
)


class _BilinearGradients(torch.autograd.Function):
    """(k_e ∇_r (aᵀ C b), k_e ∂(aᵀ C b)/∂H or None) as a differentiable function of
    (a, b, r, H); ``cell`` None: the positions' gradient only."""

    @staticmethod
    def forward(
        ctx: Any,
        a: torch.Tensor,
        b: torch.Tensor,
        positions: torch.Tensor,
        cell: torch.Tensor | None,
        engine: _Equilibration,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        ctx.save_for_backward(a, b)
        ctx.engine = engine
        ctx.has_cell = cell is not None and engine.system.cell is not None
        n = a.shape[0]
        zero = np.zeros((3, 3)) if ctx.has_cell else None
        out = engine.bilinear(_numpy(a), _numpy(b), np.zeros((n, 3)), zero)
        ctx.grad_r = out["gradient"]
        grad_h = None
        if ctx.has_cell:
            ctx.grad_h = _cell_gradient(
                out["strain_gradient"],
                engine.system.positions,
                out["gradient"],
                np.asarray(engine.system.cell),
            )
            grad_h = torch.from_numpy(ctx.grad_h)
        return torch.from_numpy(out["gradient"]), grad_h

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, mu: torch.Tensor | None, gamma: torch.Tensor | None) -> tuple[Any, ...]:
        a, b = ctx.saved_tensors
        engine: _Equilibration = ctx.engine
        needs = ctx.needs_input_grad
        n = a.shape[0]
        positions = engine.system.positions
        d_r = np.zeros((n, 3)) if mu is None else _numpy(mu)
        d_h = np.zeros((3, 3)) if gamma is None else _numpy(gamma)
        u, e = d_r, None
        if ctx.has_cell:
            cell = np.asarray(engine.system.cell)
            e = np.zeros((3, 3))
            if np.any(d_h):
                e, back = _cell_direction(cell, d_h, positions)
                u = d_r + back
        out = engine.bilinear(_numpy(a), _numpy(b), u, e)
        grad_h = None
        if needs[3] and ctx.has_cell:
            grad_h = _cell_product(
                cell, positions, ctx.grad_h, ctx.grad_r, out["strain_hvp"], out["hvp"], d_r, d_h
            )
        return (
            torch.from_numpy(out["dipole_b"]) if needs[0] else None,
            torch.from_numpy(out["dipole_a"]) if needs[1] else None,
            torch.from_numpy(out["hvp"]) if needs[2] else None,
            torch.from_numpy(grad_h) if grad_h is not None else None,
            None,
        )


def _guard_second_order(sigma: torch.Tensor) -> None:
    """A backward building a graph (create_graph=True) cannot yet differentiate the σ
    gradients again: refuse instead of leaving those terms out."""
    if torch.is_grad_enabled() and sigma.requires_grad:
        raise NotImplementedError(_QEQ_SECOND_ORDER)


class _Charges(torch.autograd.Function):
    """q*(χ, J, r, σ, H): the equilibrated charges (given as ``charges`` from the solve), or,
    with ``charges`` None, the adjoint q*(χ; 0) with every constrained charge 0."""

    @staticmethod
    def forward(
        ctx: Any,
        chi: torch.Tensor,
        hardness: torch.Tensor,
        positions: torch.Tensor,
        sigma: torch.Tensor,
        cell: torch.Tensor | None,
        engine: _Equilibration,
        charges: torch.Tensor | None,
    ) -> torch.Tensor:
        if charges is None:
            # the adjoint: χ is an upstream gradient w, the result q*(w; 0) = −P w
            charges = torch.from_numpy(np.array(engine.adjoint(_numpy(chi), _numpy(hardness))))
        else:
            charges = charges.clone()
        ctx.save_for_backward(chi, hardness, positions, sigma, cell, charges)
        ctx.engine = engine
        return charges

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        chi, hardness, positions, sigma, cell, charges = ctx.saved_tensors
        engine: _Equilibration = ctx.engine
        needs = ctx.needs_input_grad
        _guard_second_order(sigma)
        # λ = q*(w; 0) = −P w, itself differentiable through this function
        lam = _Charges.apply(grad, hardness, positions, sigma, cell, engine, None)
        grad_sigma = grad_r = grad_cell = None
        if needs[3]:
            grads = engine.vjp(_numpy(grad), 0.0, _numpy(chi), _numpy(hardness))
            grad_sigma = torch.from_numpy(grads.sigma)
        if needs[2] or needs[4]:
            # k_e ∇(λᵀ C q*) in r and H, differentiable again
            grad_r, grad_cell = _BilinearGradients.apply(
                lam, charges, positions, cell if needs[4] else None, engine
            )
        return (
            lam if needs[0] else None,
            lam * charges if needs[1] else None,
            grad_r if needs[2] else None,
            grad_sigma,
            grad_cell if needs[4] else None,
            None,
            None,
        )


class _Energy_QEq(torch.autograd.Function):
    """E*(χ, J, r, σ, H) = min_q χᵀq + ½ qᵀ(diag J + k_e C)q under the charge constraints."""

    @staticmethod
    def forward(
        ctx: Any,
        chi: torch.Tensor,
        hardness: torch.Tensor,
        positions: torch.Tensor,
        sigma: torch.Tensor,
        cell: torch.Tensor | None,
        engine: _Equilibration,
        charges: torch.Tensor,
        energy: float,
    ) -> torch.Tensor:
        ctx.save_for_backward(chi, hardness, positions, sigma, cell, charges)
        ctx.engine = engine
        return torch.tensor(energy, dtype=torch.float64)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        chi, hardness, positions, sigma, cell, charges = ctx.saved_tensors
        engine: _Equilibration = ctx.engine
        needs = ctx.needs_input_grad
        _guard_second_order(sigma)
        # envelope theorem: ∂E*/∂χ = q*, ∂E*/∂J = ½ q*², ∂E*/∂r = ½ k_e ∇_r (q*ᵀ C q*)
        q = _Charges.apply(chi, hardness, positions, sigma, cell, engine, charges)
        grad_sigma = grad_r = grad_cell = None
        if needs[3]:
            n = len(charges)
            grads = engine.vjp(np.zeros(n), 1.0, _numpy(chi), _numpy(hardness))
            grad_sigma = grad * torch.from_numpy(grads.sigma)
        if needs[2] or needs[4]:
            # ½ k_e ∇(q*ᵀ C q*) in r and H (envelope theorem), differentiable again
            grad_r, grad_cell = _BilinearGradients.apply(
                q, q, positions, cell if needs[4] else None, engine
            )
        return (
            grad * q if needs[0] else None,
            grad * 0.5 * q * q if needs[1] else None,
            grad * 0.5 * grad_r if needs[2] and grad_r is not None else None,
            grad_sigma,
            grad * 0.5 * grad_cell if needs[4] and grad_cell is not None else None,
            None,
            None,
            None,
        )


def _per_atom_tensor(name: str, value: Any, n: int) -> torch.Tensor:
    t = _check(name, value)
    if t.dim() == 0:
        return t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have shape ({n},), got {tuple(t.shape)}")
    return t


class _QEqInputs:
    """One structure's QEq inputs, checked and converted (float64 CPU tensors), its engine, and
    the dtype its results are returned in."""

    def __init__(
        self,
        calculator: QEq,
        positions: Any,
        electronegativity: Any,
        hardness: Any,
        sigma: Any,
        cell: Any,
        fragments: Any,
        fragment_charges: Any,
    ) -> None:
        given = (positions, electronegativity, hardness, sigma, cell)
        self.dtype = _dtype(*(t for t in given if isinstance(t, torch.Tensor)))
        self.positions = _check("positions", positions, (None, 3))
        n = self.positions.shape[0]
        self.chi = _per_atom_tensor("electronegativity", electronegativity, n)
        self.hardness = _per_atom_tensor("hardness", hardness, n)
        self.sigma = _per_atom_tensor("sigma", sigma, n)
        self.cell = None if cell is None else _check("cell", cell, (3, 3))
        self.engine = _Equilibration(
            calculator,
            _system(self.positions, self.cell),
            _numpy(self.sigma),
            fragments,
            fragment_charges,
        )

    def solve(self) -> Any:
        return self.engine.solve(_numpy(self.chi), _numpy(self.hardness))

    def outputs(self, result: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The charges and energy of ``result`` as differentiable tensors (float64)."""
        inputs = (self.chi, self.hardness, self.positions, self.sigma, self.cell, self.engine)
        charges = torch.from_numpy(np.array(result.charges))
        q: torch.Tensor = _Charges.apply(*inputs, charges)
        energy: torch.Tensor = _Energy_QEq.apply(*inputs, charges, result.energy)
        return q, energy


def qeq(
    positions: Any,
    electronegativity: Any,
    hardness: Any,
    sigma: Any,
    cell: Any = None,
    *,
    total_charge: float = 0.0,
    fragments: Any = None,
    fragment_charges: Any = None,
    calculator: QEq | None = None,
    **settings: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Charge equilibration as a differentiable function: returns ``(charges, energy)``.

    Minimises E(q) = χᵀq + ½ qᵀ(diag J + k_e C)q under Σq = ``total_charge`` (or one total per
    fragment), C the Coulomb matrix of Gaussian charges of widths σ (farfield.QEq).

    Args:
        positions: (n, 3) tensor; cell: (3, 3) tensor (rows) or None for an open system.
        electronegativity, hardness, sigma: χ, J > 0, σ > 0 per atom, (n,) tensors or scalars.
        total_charge, fragments, fragment_charges: the charge constraints of
            :meth:`farfield.QEq.compute`.
        calculator: a :class:`farfield.QEq` to use (its solver settings and prefactor k_e);
            otherwise one is built from ``settings`` (keywords of :class:`farfield.QEq`).

    Derivatives: first order for χ, J, σ, positions and cell (the adjoint solve of the core;
    the position and cell gradients through the core's Hessian products); second order
    (``create_graph=True``, e.g. a loss on forces or stress) for χ, J, positions and cell (the
    core's Hessian products of the Gaussian-charge sums along displacements and strains);
    second derivatives that involve σ raise NotImplementedError.
    """
    if calculator is None:
        calculator = QEq(total_charge=total_charge, **settings)
    elif not isinstance(calculator, QEq):
        raise TypeError(f"calculator must be a farfield.QEq, got {type(calculator).__name__}")
    elif settings or total_charge != 0.0:
        raise ValueError(
            "give the settings (total_charge included) to the QEq calculator, not to qeq()"
        )
    item = _QEqInputs(
        calculator,
        positions,
        electronegativity,
        hardness,
        sigma,
        cell,
        fragments,
        fragment_charges,
    )
    q, energy = item.outputs(item.solve())
    return q.to(item.dtype), energy.to(item.dtype)


def qeq_batch(
    positions: Sequence[Any],
    electronegativity: Sequence[Any],
    hardness: Sequence[Any] | Any,
    sigma: Sequence[Any] | Any,
    cells: Sequence[Any] | None = None,
    *,
    total_charges: Sequence[float] | None = None,
    calculator: QEq | None = None,
    **settings: Any,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """:func:`qeq` for a batch of structures (a training batch): the solves run concurrently
    (up to :func:`farfield.get_num_threads` at a time, each releasing the GIL), each structure
    with its own cell (``None``: open) and total charge. Returns the list of charge tensors
    and the energies, shape (len(positions),); derivatives as for :func:`qeq`. ``hardness``
    and ``sigma`` may be one value (or tensor) for every structure."""
    count = len(positions)

    def per_structure(name: str, value: Any) -> list[Any]:
        if isinstance(value, (list, tuple)):
            if len(value) != count:
                raise ValueError(f"{name} has {len(value)} entries for {count} structures")
            return list(value)
        return [value] * count

    chis = per_structure("electronegativity", electronegativity)
    hards = per_structure("hardness", hardness)
    sigmas = per_structure("sigma", sigma)
    cell_list = per_structure("cells", cells) if cells is not None else [None] * count
    totals = per_structure("total_charges", total_charges or 0.0)
    if calculator is None:
        calculator = QEq(**settings)
    elif not isinstance(calculator, QEq):
        raise TypeError(f"calculator must be a farfield.QEq, got {type(calculator).__name__}")
    elif settings:
        raise ValueError("give the settings to the QEq calculator, not to qeq_batch()")
    items = []
    for k in range(count):
        calc = copy.copy(calculator)
        calc.total_charge = float(totals[k])
        items.append(
            _QEqInputs(calc, positions[k], chis[k], hards[k], sigmas[k], cell_list[k], None, None)
        )
    results = _concurrently(_QEqInputs.solve, items)
    outputs = [item.outputs(result) for item, result in zip(items, results, strict=True)]
    dtype = _common_dtype([item.dtype for item in items])
    if not outputs:
        return [], torch.zeros(0, dtype=dtype)
    charges = [q.to(dtype) for q, _ in outputs]
    return charges, torch.stack([e for _, e in outputs]).to(dtype)


_HESSIAN_MODES = ("raise", "omit")

_FEATURE_SECOND_ORDER = (
    "the second derivatives of descriptors with respect to positions and cell are not "
    "implemented. For force training, where only the model parameters need gradients, pass "
    "position_hessian='omit': the parameter gradients are then exact, but positions.grad and "
    "cell.grad from the double backward lack the descriptor-Hessian term"
)


class _FeatureSpec:
    """A feature calculator, the system and what the double backward may leave out."""

    def __init__(self, calculator: Any, system: System, position_hessian: str) -> None:
        self.calculator = calculator
        self.system = system
        self.position_hessian = position_hessian

    def values(self) -> np.ndarray[Any, Any]:
        return np.asarray(self.calculator.compute(self.system).values)

    def vjp(self, grad: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], Any]:
        (back,) = self.calculator.backward(self.system, grad)
        return back.positions, back.cell

    def jvp(self, mu_r: np.ndarray[Any, Any], mu_h: Any) -> np.ndarray[Any, Any]:
        """D X [μ]: the change of the values along position (and cell) displacements, from
        the core's position (and cell) gradients."""
        periodic = self.system.cell is not None and mu_h is not None
        wanted = ["positions"] + (["cell"] if periodic else [])
        result = self.calculator.compute(self.system, gradients=wanted)
        if isinstance(result, LodeResult):
            assert result.pair_gradients is not None and result.self_gradients is not None
            pair = result.pair_gradients[0]  # (N, N, 3, nlm, nr): ∂c_i[type j]/∂r_j
            own = result.self_gradients[0]  # (N, 3, na, nlm, nr)
            species = list(result.species)
            types = np.array([species.index(int(z)) for z in self.system.numbers])
            out = np.einsum("ixsln,ix->isln", own, mu_r)
            moved = np.einsum("ijxln,jx->ijln", pair, mu_r)
            for a in range(len(species)):
                out[:, a] += moved[:, types == a].sum(axis=1)
            if periodic:
                assert result.cell_gradients is not None
                out += np.einsum("iabsln,ab->isln", result.cell_gradients[0], mu_h)
            return np.asarray(out)
        grads = result.gradients
        out = np.zeros_like(result.values)
        assert result.positions_samples is not None
        rows = result.positions_samples[:, 0]
        atoms = result.positions_samples[:, 2]
        np.add.at(out, rows, np.einsum("gxp,gx->gp", grads["positions"], mu_r[atoms]))
        if periodic:
            out += np.einsum("sabp,ab->sp", grads["cell"], mu_h)
        return np.asarray(out)


class _FeatureGradients(torch.autograd.Function):
    """(∂L/∂r, ∂L/∂H) = the features' vector-Jacobian product for the upstream gradient g, as
    a differentiable function of g (its derivative is the features' Jacobian-vector product)."""

    @staticmethod
    def forward(
        ctx: Any,
        grad: torch.Tensor,
        positions: torch.Tensor,
        cell: torch.Tensor | None,
        spec: _FeatureSpec,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        ctx.spec = spec
        ctx.has_cell = cell is not None
        grad_r, grad_h = spec.vjp(_numpy(grad))
        return (
            torch.from_numpy(np.array(grad_r)),
            None if grad_h is None or cell is None else torch.from_numpy(np.array(grad_h)),
        )

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, mu_r: Any, mu_h: Any) -> tuple[Any, ...]:
        spec: _FeatureSpec = ctx.spec
        needs = ctx.needs_input_grad
        if (needs[1] or needs[2]) and spec.position_hessian == "raise":
            raise NotImplementedError(_FEATURE_SECOND_ORDER)
        grad = None
        if needs[0]:
            n = len(spec.system)
            r = np.zeros((n, 3)) if mu_r is None else _numpy(mu_r)
            h = None if mu_h is None else _numpy(mu_h)
            grad = torch.from_numpy(spec.jvp(r, h))
        return grad, None, None, None


class _Features(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, positions: torch.Tensor, cell: torch.Tensor | None, spec: _FeatureSpec
    ) -> torch.Tensor:
        ctx.spec = spec
        ctx.save_for_backward(positions, cell)
        return torch.from_numpy(np.array(spec.values()))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        positions, cell = ctx.saved_tensors
        grad_r, grad_h = _FeatureGradients.apply(grad, positions, cell, ctx.spec)
        needs = ctx.needs_input_grad
        return grad_r if needs[0] else None, grad_h if needs[1] else None, None


def features(
    calculator: Any,
    positions: Any,
    numbers: Any,
    cell: Any = None,
    *,
    position_hessian: str = "raise",
) -> torch.Tensor:
    """The features of one structure as a differentiable tensor of positions and cell.

    Args:
        calculator: a :class:`farfield.SphericalExpansion`, :class:`farfield.PowerSpectrum`,
            :class:`farfield.LodeSphericalExpansion` or :class:`farfield.LodePowerSpectrum`.
        positions: (n, 3) tensor; numbers: (n,) atomic numbers (ints); cell: (3, 3) tensor or
            None for an open structure.
        position_hessian: "raise" (default) or "omit", what a double backward does with the
            features' second derivatives in positions and cell, which are not implemented
            (see below).

    Returns:
        the values of ``calculator.compute(...)``: (n, n_properties) for the SOAP and LODE
        power spectra and the SOAP expansion; (n, n_species, (l_max+1)², n_max+1) for the
        LODE expansion (:attr:`farfield.lode.LodeResult.values`).

    Derivatives: first order in positions and cell by the core's vector-Jacobian products
    (no dense gradient arrays); second order (``create_graph=True``) in the upstream gradient
    (what a force loss on a model built on these features needs), by the features' own
    position and cell gradients; the second derivatives of the features themselves raise
    NotImplementedError unless ``position_hessian="omit"``.
    """
    if position_hessian not in _HESSIAN_MODES:
        raise ValueError(
            f"position_hessian must be one of {_HESSIAN_MODES}, got {position_hessian!r}"
        )
    if not isinstance(
        calculator, (SphericalExpansion, PowerSpectrum, LodeSphericalExpansion, LodePowerSpectrum)
    ):
        raise TypeError(
            "calculator must be a farfield SphericalExpansion, PowerSpectrum, "
            f"LodeSphericalExpansion or LodePowerSpectrum, got {type(calculator).__name__}"
        )
    dtype = _dtype(*(t for t in (positions, cell) if isinstance(t, torch.Tensor)))
    r = _check("positions", positions, (None, 3))
    h = None if cell is None else _check("cell", cell, (3, 3))
    z = numbers.detach().numpy() if isinstance(numbers, torch.Tensor) else np.asarray(numbers)
    spec = _FeatureSpec(calculator, _system(r, h, z), position_hessian)
    values: torch.Tensor = _Features.apply(r, h, spec)
    return values.to(dtype)


def spherical_expansion(
    calculator: SphericalExpansion, positions: Any, numbers: Any, cell: Any = None, **kw: Any
) -> torch.Tensor:
    """The SOAP density expansion of :class:`farfield.SphericalExpansion` (see :func:`features`)."""
    if not isinstance(calculator, SphericalExpansion):
        raise TypeError("calculator must be a farfield.SphericalExpansion")
    return features(calculator, positions, numbers, cell, **kw)


def power_spectrum(
    calculator: PowerSpectrum, positions: Any, numbers: Any, cell: Any = None, **kw: Any
) -> torch.Tensor:
    """The SOAP power spectrum of :class:`farfield.PowerSpectrum` (see :func:`features`)."""
    if not isinstance(calculator, PowerSpectrum):
        raise TypeError("calculator must be a farfield.PowerSpectrum")
    return features(calculator, positions, numbers, cell, **kw)


def lode_spherical_expansion(
    calculator: LodeSphericalExpansion, positions: Any, numbers: Any, cell: Any = None, **kw: Any
) -> torch.Tensor:
    """The LODE expansion of :class:`farfield.LodeSphericalExpansion` (see :func:`features`)."""
    if not isinstance(calculator, LodeSphericalExpansion):
        raise TypeError("calculator must be a farfield.LodeSphericalExpansion")
    return features(calculator, positions, numbers, cell, **kw)


def lode_power_spectrum(
    calculator: LodePowerSpectrum, positions: Any, numbers: Any, cell: Any = None, **kw: Any
) -> torch.Tensor:
    """The LODE power spectra of :class:`farfield.LodePowerSpectrum` (see :func:`features`)."""
    if not isinstance(calculator, LodePowerSpectrum):
        raise TypeError("calculator must be a farfield.LodePowerSpectrum")
    return features(calculator, positions, numbers, cell, **kw)
