"""Cell-space solver of a crossbar tile read: many input vectors, O(cells) per iteration.

The circuit is that of :mod:`pyspice_rram.circuit.tile` (the same equations as the sparse
nodal solver :mod:`pyspice_rram.circuit.mna`, to round-off). The wires are linear chains and
the cells are the only nonlinear elements, so every node voltage is eliminated exactly and
the unknowns are the ``R x C`` cell voltages ``u_ij = V_row(i, j) - V_col(i, j)`` (V):

.. math::

    u = s - W f(u), \\qquad W = I \\otimes R_r + R_c \\otimes I,

with the cell currents ``f_ij(u_ij)`` (A, terminal t on the row, b on the column) and

* ``s_ij = v_i`` (forward read: rows driven) or ``s_ij = -v_j`` (transposed read: columns
  driven), the source voltages (V) of the driven line ends;
* ``R_r(j, j') = R_rp + r_wire_row min(j, j')`` (Ω), acting along each row, with the row
  periphery resistance ``R_rp = r_wire_row + r_driver`` (forward) or ``r_wire_row + r_sense``
  (transposed): the row periphery is at ``j = 0``;
* ``R_c(i, i') = R_cp + r_wire_col min(R-1-i, R-1-i')`` (Ω) along each column, with
  ``R_cp = r_wire_col + r_sense`` (forward) or ``r_wire_col + r_driver`` (transposed): the
  column periphery is at ``i = R - 1``.

``W`` is symmetric positive semi-definite (a sum of Kronecker products of "min" kernels) and is
applied in O(cells) with cumulative sums: the drop at node ``j`` of a row is the sum over the
segments ``k <= j`` of the segment resistance times the current through the segment, which is
a suffix sum of the cell currents. Zero wire resistance makes a line one node (``R_r`` or
``R_c`` constant); a zero periphery resistance too holds the line at its source.

Outputs (the current from each sensed line into its virtual ground, as :mod:`.mna`):
forward ``I_j = sum_i f_ij``; transposed ``I_i = -sum_j f_ij``.

Newton's method on ``F(u) = u - s + W f(u) = 0``: ``J = I + W D`` with ``D = diag(f'(u)) >= 0``.
Each correction solves ``J d = -F`` by conjugate gradients on the symmetric positive definite
form ``(I + D^{1/2} W D^{1/2}) z = -D^{1/2} F``, ``d = D^{-1/2} z`` (inexact Newton: the inner
tolerance is :data:`CG_ETA`, relative). The iteration starts at the ideal operating point
``u = s``, is clipped to the range the passive network allows (``|u| <= max v - min v``, with
0 V included) and stops when the largest cell-current change ``delta_k = max |D d| / max |f|``
of a step, or that of the next step predicted from the contraction so far (``rho = delta_k /
delta_(k-1) <= 0.1``, ``rho delta_k``: a linear model, pessimistic for Newton's superlinear
convergence), is below ``rtol``; the currents are then evaluated once more at the last
iterate. Non-finite currents, slopes, CG curvature or steps end the iteration (status
"non-finite"). Everything runs in float64 in numba, one input vector per thread task
(``prange``), so a call solves ``(n_vectors) x (one tile)``. A vector whose Newton or CG
iteration does not converge raises :class:`~pyspice_rram.circuit.mna.ConvergenceError`; no
unconverged result is returned.

Cells: linear (``g``) and model cells of every read-model family of
:mod:`pyspice_rram.device.card` (sinh, Schottky, linear; with or without ``r_series``), through
the scalar kernels of :mod:`pyspice_rram.device.compiled`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit, prange

from ..device.compiled import (CARD_ARGS, LINEAR_READ, SINH, card_args, scalar_iv_shape,
                               scalar_iv_slope, scalar_junction)
from ..device.model import conductance_density
from .mna import ConvergenceError
from .tile import Tile, check_direction

#: Inner (CG) tolerance of each Newton correction, relative to the 2-norm of its right-hand side.
CG_ETA = 1e-3
#: Newton iterations per input vector before :class:`ConvergenceError`.
MAX_NEWTON = 40
#: CG iterations per Newton correction before :class:`ConvergenceError`.
MAX_CG = 2000

#: numba options: reassociation lets the dot products and line sums vectorise; no
#: finite-math assumption (the non-finite checks stay).
_JIT = dict(cache=True, nogil=True, error_model="numpy",
            fastmath={"reassoc", "contract", "nsz", "arcp"})


#: Rows per block of the row pass of :func:`_matvec` (independent chains).
_RB = 8


@njit(**_JIT)
def _matvec(f, sc, out, R, C, rrp, rwr, rcp, rwc, fuse_q, tc, suf, zc, tr, pr, yr):
    """``w = W (sc * f)`` (V) for cell currents ``sc * f`` (A), flat ``(R*C,)`` row-major.

    ``fuse_q`` False: ``out = w``, returns 0. True (the CG product): ``out = f + sc * w``,
    returns ``f . out``. ``tc``, ``suf``, ``zc``: work vectors of length C; ``tr``, ``pr``,
    ``yr``: of length R (``pr``, ``yr`` unused).
    """
    has_row = rrp != 0.0 or rwr != 0.0
    has_col = rcp != 0.0 or rwc != 0.0
    # line totals: T_i of each row, tc_j of each column
    for j in range(C):
        tc[j] = 0.0
    for i in range(R):
        b = i * C
        t = 0.0
        for j in range(C):
            t += sc[b + j] * f[b + j]
        tr[i] = t
        for j in range(C):
            tc[j] += sc[b + j] * f[b + j]
    # rows: drop at node j = R_rp T + r sum_{k=1..j} S_k, S_k = sum_{j' >= k} f_ij'
    if has_row:
        # four rows at a time in scalars (independent chains, no aliasing with ``out``)
        i = 0
        while i + 4 <= R:
            b0, b1, b2, b3 = i * C, (i + 1) * C, (i + 2) * C, (i + 3) * C
            t0, t1, t2, t3 = tr[i], tr[i + 1], tr[i + 2], tr[i + 3]
            y0, y1, y2, y3 = rrp * t0, rrp * t1, rrp * t2, rrp * t3
            out[b0] = y0
            out[b1] = y1
            out[b2] = y2
            out[b3] = y3
            p0, p1 = sc[b0] * f[b0], sc[b1] * f[b1]
            p2, p3 = sc[b2] * f[b2], sc[b3] * f[b3]
            for j in range(1, C):
                y0 += rwr * (t0 - p0)
                y1 += rwr * (t1 - p1)
                y2 += rwr * (t2 - p2)
                y3 += rwr * (t3 - p3)
                out[b0 + j] = y0
                out[b1 + j] = y1
                out[b2 + j] = y2
                out[b3 + j] = y3
                p0 += sc[b0 + j] * f[b0 + j]
                p1 += sc[b1 + j] * f[b1 + j]
                p2 += sc[b2 + j] * f[b2 + j]
                p3 += sc[b3 + j] * f[b3 + j]
            i += 4
        while i < R:
            b0 = i * C
            t0 = tr[i]
            y0 = rrp * t0
            out[b0] = y0
            p0 = sc[b0] * f[b0]
            for j in range(1, C):
                y0 += rwr * (t0 - p0)
                out[b0 + j] = y0
                p0 += sc[b0 + j] * f[b0 + j]
            i += 1
    else:
        for n in range(R * C):
            out[n] = 0.0
    # columns: rise at node i = R_cp T + r sum_{m=i..R-2} P_m, P_m = sum_{i' <= m} f_i'j;
    # i descending: z_{R-1} = R_cp T, z_i = z_{i+1} + r (T - sum_{i' > i} f)
    pq = 0.0
    if has_col:
        for j in range(C):
            zc[j] = rcp * tc[j]
            suf[j] = 0.0
        for i in range(R - 1, -1, -1):
            b = i * C
            if i < R - 1:
                for j in range(C):
                    zc[j] += rwc * (tc[j] - suf[j])
            # (loops of few arrays each: vectorised with runtime alias checks)
            if fuse_q:
                for j in range(C):
                    q = f[b + j] + sc[b + j] * (out[b + j] + zc[j])
                    out[b + j] = q
                    pq += f[b + j] * q
            else:
                for j in range(C):
                    out[b + j] += zc[j]
            for j in range(C):
                suf[j] += sc[b + j] * f[b + j]
    elif fuse_q:
        for n in range(R * C):
            q = f[n] + sc[n] * out[n]
            out[n] = q
            pq += f[n] * q
    return pq


@njit(**_JIT)
def _cell(u, k, read, v_nl, v_f, v_r, c_s, r_series):
    """Current (A) and its derivative dI/du (S) of a cell with coefficient ``k`` (S: ``A g(x)``
    or the linear conductance) at terminal voltage ``u`` (V)."""
    if read == LINEAR_READ and r_series <= 0.0:
        return k * u, k
    vj = scalar_junction(u, 1.0, k, read, v_nl, v_f, v_r, c_s, r_series)
    i = k * scalar_iv_shape(vj, read, v_nl, v_f, v_r, c_s)
    gj = k * scalar_iv_slope(vj, read, v_nl, v_f, v_r, c_s)
    return i, gj / (1.0 + r_series * gj)


#: Below this |u / V_nl| the sinh family uses the series of sinh and cosh (vectorised; its
#: truncation error is below 1e-19 relative), above it ``exp``.
_SERIES_MAX = 0.5


@njit(**_JIT)
def _cells(u, kc, fI, D, sq, read, v_nl, v_f, v_r, c_s, r_series):
    """Cell currents ``fI`` (A), slopes ``D`` (S) and ``sq = sqrt(D)`` at voltages ``u`` (V);
    returns ``max |fI|``. (``D`` may be ``sq``'s own array: only ``sq`` is then kept.)"""
    n = u.shape[0]
    imax = 0.0
    if read == SINH and r_series <= 0.0:
        a = 1.0 / v_nl
        n_big = 0
        big2 = _SERIES_MAX * _SERIES_MAX
        for c in range(n):
            x = u[c] * a
            x2 = x * x
            n_big += x2 > big2
            sh = 1.0 + x2 / 20.0 * (1.0 + x2 / 42.0 * (1.0 + x2 / 72.0 * (
                1.0 + x2 / 110.0 * (1.0 + x2 / 156.0 * (1.0 + x2 / 210.0)))))
            sh = x * (1.0 + x2 / 6.0 * sh)
            ch = 1.0 + x2 / 30.0 * (1.0 + x2 / 56.0 * (1.0 + x2 / 90.0 * (
                1.0 + x2 / 132.0 * (1.0 + x2 / 182.0 * (1.0 + x2 / 240.0)))))
            ch = 1.0 + x2 / 2.0 * (1.0 + x2 / 12.0 * ch)
            fI[c] = kc[c] * v_nl * sh
            D[c] = kc[c] * ch
        if n_big:
            for c in range(n):
                x = u[c] * a
                if x > _SERIES_MAX or x < -_SERIES_MAX:
                    e = math.exp(x)
                    ie = 1.0 / e
                    fI[c] = kc[c] * v_nl * 0.5 * (e - ie)
                    D[c] = kc[c] * 0.5 * (e + ie)
    else:
        for c in range(n):
            fI[c], D[c] = _cell(u[c], kc[c], read, v_nl, v_f, v_r, c_s, r_series)
    chk = 0.0
    for c in range(n):
        d = D[c]
        sq[c] = math.sqrt(d) if d > 0.0 else 0.0
        ai = abs(fI[c])
        chk += 0.0 * (ai + d)             # NaN if any current or slope is not finite
        if ai > imax:
            imax = ai
    return imax + chk


@njit(**_JIT)
def _solve_one(s, kc, R, C, rrp, rwr, rcp, rwc, read, v_nl, v_f, v_r, c_s, r_series, rtol,
               eta, max_newton, max_cg, ulim, u, fI, sq, ones, z, r, p, q, tc, suf, zc, tr,
               pr, yr):
    """Newton-CG for one input vector; ``u`` (in: start, out: solution), ``fI`` (out: cell
    currents). Returns ``(status, newton iterations, CG iterations)``; status 0 = converged,
    1 = Newton limit, 2 = CG limit, 3 = non-finite."""
    n = R * C
    n_cg = 0
    last = 0.0
    for it in range(max_newton):
        imax = _cells(u, kc, fI, sq, sq, read, v_nl, v_f, v_r, c_s, r_series)
        if not math.isfinite(imax):
            return 3, it, n_cg
        if imax == 0.0:
            return 0, it, n_cg
        _matvec(fI, ones, q, R, C, rrp, rwr, rcp, rwc, False, tc, suf, zc, tr, pr, yr)
        # F = u - s + W f; CG on (I + S W S) z = -S F, S = D^1/2
        bn = 0.0
        for c in range(n):
            b = -sq[c] * (u[c] - s[c] + q[c])
            r[c] = b
            p[c] = b
            z[c] = 0.0
            bn += b * b
        rr = bn
        tol2 = eta * eta * bn
        k_cg = 0
        while rr > tol2 and rr > 0.0:
            if k_cg >= max_cg:
                return 2, it, n_cg
            pq = _matvec(p, sq, q, R, C, rrp, rwr, rcp, rwc, True, tc, suf, zc, tr, pr, yr)
            if not (pq > 0.0 and math.isfinite(pq)):
                return 3, it + 1, n_cg + k_cg
            alpha = rr / pq
            rn = 0.0
            for c in range(n):
                z[c] += alpha * p[c]
                rc = r[c] - alpha * q[c]
                r[c] = rc
                rn += rc * rc
            beta = rn / rr
            rr = rn
            for c in range(n):
                p[c] = r[c] + beta * p[c]
            k_cg += 1
        n_cg += k_cg
        # d = S^-1 z, current change D d = S z (cells without conductance keep their
        # voltage: no current either way)
        dmax = 0.0
        chk = 0.0
        for c in range(n):
            chk += 0.0 * z[c]
            if sq[c] > 0.0:
                di = abs(sq[c] * z[c])
                if di > dmax:
                    dmax = di
                x = u[c] + z[c] / sq[c]
                if x > ulim:
                    x = ulim
                elif x < -ulim:
                    x = -ulim
                u[c] = x
        if not math.isfinite(dmax + chk):
            return 3, it + 1, n_cg
        # converged: this step, or the next one predicted from the contraction so far
        # (linear model: pessimistic for Newton's superlinear convergence), below rtol
        delta = dmax / imax
        rho = delta / last if last > 0.0 else 1.0
        last = delta
        if delta <= rtol or (rho <= 0.1 and rho * delta <= rtol):
            if not math.isfinite(_cells(u, kc, fI, sq, sq, read, v_nl, v_f, v_r, c_s,
                                        r_series)):
                return 3, it + 1, n_cg
            return 0, it + 1, n_cg
    return 1, max_newton, n_cg


def read_work(R: int, C: int) -> tuple[np.ndarray, np.ndarray]:
    """Scratch arrays of :func:`read_vector` for tiles of up to ``R x C`` cells:
    ``(work, lines)``, float64 ``(9, R C)`` (row 4 all ones) and ``(6, max(R, C))``."""
    work = np.empty((9, max(R * C, 1)))
    work[4] = 1.0
    return work, np.empty((6, max(R, C, 1)))


@njit(**_JIT)
def read_vector(v, forward, kc, R, C, rrp, rwr, rcp, rwc, read, v_nl, v_f, v_r, c_s, r_series,
                rtol, eta, max_newton, max_cg, work, lines, out):
    """One read of one tile by the cell-space solver (Newton-CG from the ideal operating
    point): the sensed currents for one input vector.

    Parameters
    ----------
    v : float64 array, length R (forward) or C (transposed)
        Voltages (V) of the driven line ends.
    forward : bool
        Rows driven, columns sensed (else columns driven, rows sensed).
    kc : float64 array, (R*C,)
        Cell coefficients (S, low-field conductance), row-major.
    R, C, rrp, rwr, rcp, rwc
        Tile shape and the resistances (Ω) of :class:`CellSpaceSystem` (periphery of the
        row and column lines for this direction, wire segments).
    read, v_nl, v_f, v_r, c_s, r_series
        The read law (:func:`pyspice_rram.device.compiled.card_args` entries).
    rtol, eta, max_newton, max_cg
        Stop and limits of :class:`CellSpaceSystem`.
    work, lines
        Scratch from :func:`read_work` (at least this tile's size).
    out : float64 array, length C (forward) or R (transposed)
        Written: the current (A) from each sensed line into its virtual ground.

    Returns
    -------
    (status, newton iterations, CG iterations)
        status 0 converged, 1 Newton limit, 2 CG limit, 3 non-finite; ``out`` is only
        meaningful for status 0.
    """
    n = R * C
    lo = 0.0
    hi = 0.0
    for a in range(v.shape[0]):
        va = v[a]
        if va < lo:
            lo = va
        if va > hi:
            hi = va
    u = work[0, :n]
    s = work[1, :n]
    for i in range(R):
        for j in range(C):
            s[i * C + j] = v[i] if forward else -v[j]
            u[i * C + j] = s[i * C + j]
    fI = work[2, :n]
    st, nn, ncg = _solve_one(s, kc, R, C, rrp, rwr, rcp, rwc, read, v_nl, v_f, v_r, c_s,
                             r_series, rtol, eta, max_newton, max_cg, hi - lo, u, fI,
                             work[3, :n], work[4, :n], work[5, :n], work[6, :n], work[7, :n],
                             work[8, :n], lines[0, :C], lines[1, :C], lines[2, :C],
                             lines[3, :R], lines[4, :R], lines[5, :R])
    if forward:
        for j in range(C):
            out[j] = 0.0
        for i in range(R):
            for j in range(C):
                out[j] += fI[i * C + j]
    else:
        for i in range(R):
            acc = 0.0
            for j in range(C):
                acc += fI[i * C + j]
            out[i] = -acc
    return st, nn, ncg


@njit(parallel=True, **{k: v for k, v in _JIT.items() if k != "nogil"})
def _solve_many(v, forward, kc, R, C, rrp, rwr, rcp, rwc, read, v_nl, v_f, v_r, c_s, r_series,
                rtol, eta, max_newton, max_cg, n_chunks):
    """Sensed currents ``(K, n_out)`` and per-vector ``(status, newton, cg)`` for inputs
    ``v`` (K, n_in): :func:`read_vector` for each vector, chunks of vectors in parallel."""
    K = v.shape[0]
    n = R * C
    n_out = C if forward else R
    out = np.zeros((K, n_out))
    stats = np.zeros((K, 3), np.int64)
    for ch in prange(n_chunks):
        k0 = (K * ch) // n_chunks
        k1 = (K * (ch + 1)) // n_chunks
        if k1 <= k0:
            continue
        work = np.empty((9, n))
        work[4] = 1.0
        lines = np.empty((6, max(R, C)))
        for kk in range(k0, k1):
            st, nn, ncg = read_vector(v[kk], forward, kc, R, C, rrp, rwr, rcp, rwc, read,
                                      v_nl, v_f, v_r, c_s, r_series, rtol, eta, max_newton,
                                      max_cg, work, lines, out[kk])
            stats[kk, 0] = st
            stats[kk, 1] = nn
            stats[kk, 2] = ncg
    return out, stats


_STATUS = {1: "Newton iteration limit", 2: "CG iteration limit",
           3: "non-finite cell currents"}


@dataclass
class CellSpaceSystem:
    """A tile read in one direction, prepared for the cell-space solver.

    Parameters
    ----------
    tile : Tile
        Linear or model cells (every read-model family), any wire / driver / sense
        resistances.
    direction : {'forward', 'transposed'}
    rtol : float
        Newton stops when the largest cell-current change of a step is below
        ``rtol * max |f|`` (the inner CG solve of that step is accurate to :data:`CG_ETA`).
    eta : float
        Relative CG tolerance of each Newton correction.
    max_newton, max_cg : int
        Iteration limits (exceeded: :class:`ConvergenceError`).
    absent_g : float, optional
        Cells of low-field conductance <= ``absent_g`` (S) count as absent: whole trailing
        columns (far from the row periphery at ``j = 0``) of them are left out, and whole
        trailing rows (next to the column periphery at ``i = R - 1``) become their column wire
        segments in series with ``R_cp``. Exact but for those cells' own currents; their
        sensed lines read 0 A. None (default): every cell is solved.
    """

    tile: Tile
    direction: str = "forward"
    rtol: float = 1e-10
    eta: float = CG_ETA
    max_newton: int = MAX_NEWTON
    max_cg: int = MAX_CG
    absent_g: float | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_direction(self.direction)
        t = self.tile
        fwd = self.direction == "forward"
        self._rrp = t.r_wire_row + (t.r_driver if fwd else t.r_sense)
        self._rcp = t.r_wire_col + (t.r_sense if fwd else t.r_driver)
        if t.is_linear:
            k = np.asarray(t.g, float)
            self._card = (LINEAR_READ, 1.0, 1.0, 1.0, 1.0, 0.0)
        else:
            ca = card_args(t.card)
            names = ("read", "v_nl", "v_f", "v_r", "c_s", "r_series")
            self._card = tuple(ca[CARD_ARGS.index(nm)] for nm in names)
            k = np.asarray(t.area, float) * conductance_density(t.x, t.card)
        R, C = t.shape
        if self.absent_g is not None:
            present = k > self.absent_g
            cols = np.flatnonzero(present.any(axis=0))
            C = int(cols[-1]) + 1 if len(cols) else 1
            rows = np.flatnonzero(present[:, :C].any(axis=1))
            r_keep = int(rows[-1]) + 1 if len(rows) else 1
            self._rcp += (R - r_keep) * t.r_wire_col
            R = r_keep
        self._shape = (R, C)
        self._kc = np.ascontiguousarray(k[:R, :C]).ravel()

    def solve(self, v_in: Any) -> np.ndarray:
        """Sensed currents (A), shape ``(n_vectors, n_sensed)``, for read voltages ``v_in``
        (V), shape ``(n_vectors, n_driven)``."""
        import numba

        v = self.tile.check_inputs(v_in, self.direction)
        R, C = self._shape
        fwd = self.direction == "forward"
        vk = np.ascontiguousarray(v[:, :R] if fwd else v[:, :C])
        t0 = time.perf_counter()
        # chunks of vectors handed out dynamically (one at a time): a thread slowed down by
        # other processes on a shared machine takes fewer
        n_chunks = min(v.shape[0], 16 * numba.get_num_threads())
        with numba.parallel_chunksize(1):
            cur, st = _solve_many(vk, fwd, self._kc, R, C, self._rrp, self.tile.r_wire_row,
                                  self._rcp, self.tile.r_wire_col, *self._card,
                                  float(self.rtol), float(self.eta), int(self.max_newton),
                                  int(self.max_cg), n_chunks)
        out = np.zeros((v.shape[0], self.tile.n_outputs(self.direction)))
        out[:, :cur.shape[1]] = cur
        self.stats = {"wall_s": time.perf_counter() - t0,
                      "newton_iterations_max": int(st[:, 1].max()),
                      "cg_iterations_mean": float(st[:, 2].mean()),
                      "cg_iterations_max": int(st[:, 2].max())}
        bad = np.flatnonzero(st[:, 0])
        if len(bad):
            k = int(bad[0])
            raise ConvergenceError(
                f"cell-space solver: {len(bad)} of {len(v)} input vectors did not converge "
                f"({_STATUS[int(st[k, 0])]}; first: vector {k}) on the "
                f"{self.tile.rows}x{self.tile.cols} tile "
                f"{self.tile.name!r} ({self.direction})")
        return out


def solve_tile(tile: Tile, v_in: Any, direction: str = "forward", *, rtol: float = 1e-10,
               **options: Any) -> np.ndarray:
    """Sensed currents of a tile read with voltages ``v_in``, by the cell-space solver.

    Parameters
    ----------
    tile : Tile
    v_in : array_like, shape (n_vectors, n_driven) or (n_driven,)
        Read voltages (V), one row per input vector.
    direction : {'forward', 'transposed'}
    rtol : float
        Newton tolerance (see :class:`CellSpaceSystem`).
    **options
        ``eta``, ``max_newton``, ``max_cg`` of :class:`CellSpaceSystem`.

    Returns
    -------
    ndarray, shape (n_vectors, n_sensed)
        Current (A) from each sensed line into its virtual ground (as
        :func:`pyspice_rram.circuit.mna.solve_tile`).

    Raises
    ------
    ConvergenceError
        When an input vector's iteration does not converge.
    """
    return CellSpaceSystem(tile, direction, rtol=rtol, **options).solve(v_in)
