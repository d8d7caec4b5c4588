"""IR-drop-aware reference of the parallel outer-product update (nodal analysis + exact advance).

:func:`update_reference` applies the pulse scheme of :func:`pyspice_rram.circuit.update.update_pulses`
to an array *with* its wire and driver resistance, independently of ngspice: the circuit of
the update netlist (row ``i`` driven at its first cell through ``R_driver + R_wire``, column
``j`` at its last row through ``R_driver + R_wire``, ``R_wire`` per cell segment of every
line, the model cells between row node ``(i, j)`` and column node ``(i, j)``) is solved by
sparse nodal analysis (Newton on ``G V + A I_cell(A^T V, x) = g_d v_src``, Jacobian
``G + A diag(dI/dV) A^T`` factorised by :class:`pyspice_rram.circuit.mna.SparseFactor`),
and every cell's state is advanced with the device model's exact constant-voltage solution
(:func:`pyspice_rram.device.model.advance`) over *time slices* of the scheme.

Pulses are rectangles of the equivalent widths of the trapezoids (as the no-IR-drop NumPy
reference of :func:`~pyspice_rram.circuit.update.update_check`): in slot ``s`` of a phase
the active rows (``s < n_i``) are at ``v_row`` for ``T_row = t_on + 3 t_edge`` and column
``j`` of that phase at ``v_col`` for ``|δ_j| t_on``, all starting together. The slot is cut
at every column's end; within a slice the sources are constant and only the states change
the circuit (through their conductances). A slice of length ``dt`` is integrated with the
explicit midpoint rule on the states (solve at ``x``, advance ``dt/2``, solve again, advance
``dt`` from ``x`` with the midpoint voltages), halved until the midpoint and Euler results
agree to ``x_tol``. Without wire and driver resistance the cell voltages are the source
differences, the midpoint and Euler steps coincide, and the result is the NumPy reference
exactly (composition of exact advances).

What the reference leaves out (against the ngspice transient): the 2 ``t_edge`` offset
between the row and column pulse starts and the shape of the edges (``t_edge / t_on`` =
1e-3 by default), and any capacitance (none is in the netlist either).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..device.card import ModelCard
from ..device.model import advance, cell_current, cell_didv, junction_voltage
from ..errors import SimulatorError, UserInputError
from .mna import SparseFactor
from .update import UpdatePulses, update_pulses


@dataclass
class UpdateReference:
    """Outcome of :func:`update_reference` (states dimensionless, in [0, 1]).

    Attributes
    ----------
    x0, x_final : ndarray (rows, cols)
        States before and after the update.
    v_cell_min_selected, v_cell_max_selected : float
        Smallest / largest |cell voltage| (V) a selected cell saw during a full-select slice
        (``V_set`` or ``V_dep`` without IR drop).
    stats : dict
        ``slices``, ``steps`` (accepted integration steps), ``solves`` (nodal solves),
        ``newton_iterations``, ``wall_s``.
    settings : dict
        The arguments (SI units).
    """

    x0: np.ndarray
    x_final: np.ndarray
    v_cell_min_selected: float = float("nan")
    v_cell_max_selected: float = float("nan")
    stats: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def dx(self) -> np.ndarray:
        """State change ``x_final - x0``."""
        return self.x_final - self.x0


class _UpdateCircuit:
    """Nodal equations of the update array: rows and columns both driven."""

    def __init__(self, card: ModelCard, R: int, C: int, area: float, r_wire: float,
                 r_driver: float, tol_v: float, max_iter: int) -> None:
        self.card, self.R, self.C, self.area = card, R, C, area
        self.tol_v, self.max_iter = tol_v, max_iter
        self.refresh_ratio = 0.25
        rp = r_driver + r_wire
        self.held = rp == 0            # then r_wire = 0 too: every line is its source
        self.newton_iterations = self.solves = self.factorizations = 0
        if self.held:
            return
        gd = 1.0 / rp
        if r_wire > 0:
            n = 2 * R * C
            rn = np.arange(R * C).reshape(R, C)
            cn = R * C + rn
            gw = 1.0 / r_wire
            a = np.r_[rn[:, :-1].ravel(), cn[:-1, :].ravel()]
            b = np.r_[rn[:, 1:].ravel(), cn[1:, :].ravel()]
        else:
            n = R + C
            rn = np.repeat(np.arange(R)[:, None], C, axis=1)
            cn = R + np.repeat(np.arange(C)[None, :], R, axis=0)
            gw = 0.0
            a = b = np.zeros(0, int)
        self.n = n
        self.drive_row = rn[:, 0].copy()          # row i driven at cell (i, 0)
        self.drive_col = cn[R - 1, :].copy()      # column j driven at cell (R-1, j)
        self.gd = gd
        # wire + periphery conductance matrix
        rows = np.r_[a, b, a, b, self.drive_row, self.drive_col]
        cols = np.r_[a, b, b, a, self.drive_row, self.drive_col]
        vals = np.r_[np.full(len(a), gw), np.full(len(a), gw), np.full(len(a), -gw),
                     np.full(len(a), -gw), np.full(R + C, gd)]
        self.G = sp.csc_matrix((vals, (rows, cols)), shape=(n, n))
        self.ct, self.cb = rn.ravel(), cn.ravel()
        m = R * C
        self.A = sp.csc_matrix((np.r_[np.ones(m), -np.ones(m)],
                                (np.r_[self.ct, self.cb], np.r_[np.arange(m), np.arange(m)])),
                               shape=(n, m))
        self.V: np.ndarray | None = None      # last solution (warm start)
        self._jac = _Jacobian(self.G, self.ct, self.cb, n)
        self._factor: Any = None

    def cell_voltages(self, v_row: np.ndarray, v_col: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Cell voltages V(row node) - V(column node) (V), shape (R, C), for source voltages
        ``v_row`` (R,), ``v_col`` (C,) and states ``x`` (R, C).

        Newton iterations with a kept (chord) Jacobian factor, refactorised at the current
        iterate whenever a step is not at least 4x smaller than the one before; warm start
        from the previous solution, iterates clipped to the source range (which bounds every
        node voltage of this passive, monotone network)."""
        if self.held:
            return v_row[:, None] - v_col[None, :]
        card, area, A = self.card, self.area, self.A
        xf = x.ravel()
        b = np.zeros(self.n)
        np.add.at(b, self.drive_row, self.gd * v_row)
        np.add.at(b, self.drive_col, self.gd * v_col)
        lo = min(float(v_row.min()), float(v_col.min()), 0.0)
        hi = max(float(v_row.max()), float(v_col.max()), 0.0)
        if self.V is None:
            V = np.zeros(self.n)
            V[self.ct] = np.repeat(v_row, self.C)
            V[self.cb] = np.tile(v_col, self.R)
        else:
            V = np.clip(self.V, lo, hi)
        self.solves += 1
        last, refresh = np.inf, self._factor is None
        for _ in range(self.max_iter):
            vc = V[self.ct] - V[self.cb]
            F = self.G @ V + A @ cell_current(vc, xf, area, card) - b
            if refresh:
                self._factor = self._jac.factor(cell_didv(vc, xf, area, card))
                self.factorizations += 1
            dV = self._factor.solve(F)
            V = np.clip(V - dV, lo, hi)
            self.newton_iterations += 1
            step = float(np.abs(dV).max())
            if step <= self.tol_v:
                break
            refresh = step > self.refresh_ratio * last
            last = step
        else:
            raise SimulatorError(f"update reference: Newton did not converge in {self.max_iter} "
                                 f"iterations (last step {step:.3g} V)")
        self.V = V
        return (V[self.ct] - V[self.cb]).reshape(self.R, self.C)


class _Jacobian:
    """The nodal Jacobian ``G + A diag(g) A^T`` of the update circuit for cell conductances
    ``g``: lower-triangle pattern built once, values by scatter-add; factorised by CHOLMOD
    (cvxopt, symbolic analysis once) or, without cvxopt or for a numerically indefinite
    matrix, SciPy's SuperLU."""

    def __init__(self, G: sp.spmatrix, ct: np.ndarray, cb: np.ndarray, n: int) -> None:
        Gl = sp.tril(G).tocoo()
        r = np.r_[Gl.row, ct, cb, np.maximum(ct, cb)]
        c = np.r_[Gl.col, ct, cb, np.minimum(ct, cb)]
        uniq, inv = np.unique(c.astype(np.int64) * n + r, return_inverse=True)  # CCS order
        self.n, self.nnz, m, k = n, len(uniq), len(ct), len(Gl.data)
        self.rows, self.cols = (uniq % n).astype(np.int64), (uniq // n).astype(np.int64)
        self.base = np.bincount(inv[:k], weights=Gl.data, minlength=self.nnz)
        self.i_tt, self.i_bb, self.i_tb = inv[k:k + m], inv[k + m:k + 2 * m], inv[k + 2 * m:]
        self._M = self._F = None
        try:
            import cvxopt
            import cvxopt.cholmod as cholmod
        except ImportError:
            self._cvx = None
        else:
            self._cvx, self._cholmod = cvxopt, cholmod

    def values(self, g: np.ndarray) -> np.ndarray:
        """Lower-triangle values (CCS order) for cell conductances ``g`` (S)."""
        nz = self.nnz
        return (self.base + np.bincount(self.i_tt, g, nz) + np.bincount(self.i_bb, g, nz)
                - np.bincount(self.i_tb, g, nz))

    def factor(self, g: np.ndarray) -> Any:
        """Factor with a ``solve(b)`` method, for cell conductances ``g`` (S)."""
        vals = self.values(g)
        if self._cvx is not None:
            cvx, chol = self._cvx, self._cholmod
            if self._M is None:
                self._M = cvx.spmatrix(cvx.matrix(vals), cvx.matrix(self.rows),
                                       cvx.matrix(self.cols), (self.n, self.n))
                self._F = chol.symbolic(self._M, uplo="L")
            else:
                self._M.V = cvx.matrix(vals)
            try:
                chol.numeric(self._M, self._F)
            except ArithmeticError:
                pass
            else:
                return _CholmodSolve(cvx, chol, self._F)
        L = sp.csc_matrix((vals, (self.rows, self.cols)), shape=(self.n, self.n))
        return SparseFactor(L + sp.tril(L, -1).T, method="superlu")


class _CholmodSolve:
    def __init__(self, cvx: Any, chol: Any, F: Any) -> None:
        self.cvx, self.chol, self.F = cvx, chol, F

    def solve(self, b: np.ndarray) -> np.ndarray:
        X = self.cvx.matrix(np.asarray(b, dtype=float))
        self.chol.solve(self.F, X)
        return np.array(X).ravel()


def _advance(x: np.ndarray, v: np.ndarray, dt: float, card: ModelCard, area: float) -> np.ndarray:
    """Exact advance at terminal voltage ``v`` (junction voltage with ``r_series``)."""
    vj = junction_voltage(v, x, area, card) if card.r_series > 0 else v
    return advance(x, vj, dt, card)


def update_reference(card: ModelCard, x_act: Any, delta: Any, *, n_slots: int = 10,
                     t_on: float | None = None, t_edge: float = 10e-9,
                     v_set: float | None = None, v_dep: float | None = None,
                     x0: float | np.ndarray = 0.5, area: float | None = None,
                     r_wire: float = 1.0, r_driver: float = 10.0, x_tol: float = 1e-5,
                     tol_v: float = 1e-9, max_iter: int = 50,
                     pulses: UpdatePulses | None = None) -> UpdateReference:
    """States after one parallel update of an array with IR drop (no ngspice).

    The arguments are those of :func:`pyspice_rram.circuit.update.update_check` (same pulse
    scheme, same circuit); the method is in the module docstring.

    Parameters
    ----------
    card : ModelCard
    x_act : array_like (rows,)
        Activations in [0, 1] (``round(x n_slots)`` row pulses per phase).
    delta : array_like (cols,)
        Errors in [-1, 1] (column pulse width ``|δ| t_on`` in the phase of its sign).
    n_slots : int
        Slots per phase.
    t_on : float, optional
        Slot width (s), default ``card.scheme.t_set``.
    t_edge : float
        Pulse edge time (s) of the trapezoids (enters the equivalent row width
        ``t_on + 3 t_edge``).
    v_set, v_dep : float, optional
        Full-select amplitudes (V); defaults of :func:`~pyspice_rram.circuit.update.update_pulses`.
    x0 : float or ndarray (rows, cols)
        Initial states in [0, 1].
    area : float, optional
        Cell area (m²), default ``card.area_ref``.
    r_wire : float
        Wire resistance per cell segment (Ω), rows and columns.
    r_driver : float
        Driver output resistance (Ω) of every row and column.
    x_tol : float
        Local error bound on the state per integration step (midpoint vs Euler).
    tol_v : float
        Newton convergence on the node voltages (V).
    max_iter : int
        Newton iteration limit per solve.
    pulses : UpdatePulses, optional
        A schedule already built by :func:`update_pulses` with these arguments.

    Returns
    -------
    UpdateReference
    """
    t_start = time.perf_counter()
    P = pulses if pulses is not None else update_pulses(
        card, x_act, delta, n_slots=n_slots, t_on=t_on, t_edge=t_edge, v_set=v_set, v_dep=v_dep)
    if r_wire < 0 or r_driver < 0 or not (np.isfinite(r_wire) and np.isfinite(r_driver)):
        raise UserInputError(f"non-negative finite resistances required, got r_wire={r_wire}, "
                             f"r_driver={r_driver}")
    R, C = P.rows, P.cols
    area = card.area_ref if area is None else float(area)
    x = np.array(np.broadcast_to(np.asarray(x0, dtype=float), (R, C)))
    if np.any((x < 0) | (x > 1)) or not np.all(np.isfinite(x)):
        raise UserInputError("x0 must be in [0, 1]")
    x_init = x.copy()
    ckt = _UpdateCircuit(card, R, C, area, float(r_wire), float(r_driver), tol_v, max_iter)
    T_row = P.t_on + 3 * P.t_edge
    n_slices = n_steps = 0
    vsel = [np.inf, 0.0]

    def solve(vr, vc, xs):
        return ckt.cell_voltages(vr, vc, xs)

    for name, v_row, v_col, col_sel in P.phases:
        col_t = np.where(col_sel & P.col_on, P.col_w, 0.0)
        ends = np.unique(np.r_[col_t[col_t > 0], T_row])
        for s in range(P.n_slots):
            row_act = s < P.n_i
            vr = np.where(row_act, v_row, 0.0)
            t_a = 0.0
            for t_b in ends:
                vc = np.where(col_t > t_a, v_col, 0.0)
                if not (np.any(vr) or np.any(vc)):
                    t_a = t_b
                    continue
                n_slices += 1
                sel = row_act[:, None] & (col_t > t_a)[None, :]
                # explicit midpoint steps, halved until they agree with Euler to x_tol
                stack = [float(t_b - t_a)]
                while stack:
                    dt = stack.pop()
                    v0 = solve(vr, vc, x)
                    x_e = _advance(x, v0, dt, card, area)
                    if ckt.held:
                        x_new = x_e
                    else:
                        vm = solve(vr, vc, _advance(x, v0, dt / 2, card, area))
                        x_new = _advance(x, vm, dt, card, area)
                        if np.abs(x_new - x_e).max() > x_tol and dt > 1e-6 * T_row:
                            stack += [dt / 2, dt / 2]
                            continue
                        v0 = vm
                    if sel.any():
                        a = np.abs(v0[sel])
                        vsel[0], vsel[1] = min(vsel[0], a.min()), max(vsel[1], a.max())
                    x = x_new
                    n_steps += 1
                t_a = t_b
    stats = dict(slices=n_slices, steps=n_steps, solves=ckt.solves,
                 factorizations=ckt.factorizations,
                 newton_iterations=ckt.newton_iterations, wall_s=time.perf_counter() - t_start)
    settings = dict(n_slots=P.n_slots, t_on=P.t_on, t_edge=P.t_edge, v_set=P.v_set,
                    v_dep=P.v_dep, area=area, r_wire=float(r_wire), r_driver=float(r_driver),
                    x_tol=x_tol, tol_v=tol_v)
    return UpdateReference(x_init, x, float(vsel[0]) if np.isfinite(vsel[0]) else float("nan"),
                           float(vsel[1]) if np.isfinite(vsel[0]) else float("nan"), stats,
                           settings)


__all__ = ["UpdateReference", "update_reference"]
