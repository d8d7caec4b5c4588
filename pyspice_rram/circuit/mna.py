"""Sparse nodal analysis of a crossbar tile: the reference solver for the ngspice results.

The circuit is that of :mod:`pyspice_rram.circuit.tile`. With node voltages ``V`` (V) and the
driven-line sources ``v`` (V), Kirchhoff's current law at every free node reads

.. math::

    F(V) = G_w V + \\mathcal{A}\\, I_{cell}(\\mathcal{A}^T V) - S v = 0,

where ``G_w`` (S) stamps the wire segments and the periphery conductances
``1 / (R_wire + R_driver)`` (driven lines) and ``1 / (R_wire + R_sense)`` (sensed lines),
``S`` injects ``v`` through the driver conductances, ``\\mathcal{A}`` is the cell incidence
matrix (+1 at the row node = terminal t, -1 at the column node = terminal b) and
``I_cell(V) = A g(x) V_nl sinh(V / V_nl)`` (model cells) or ``g V`` (linear cells).
A line whose periphery resistance is zero (ideal driver or ideal virtual ground with
``R_wire = 0``) is one node held at its source voltage and eliminated.

* **linear cells**: ``F`` is linear; the (symmetric positive definite) matrix is factorised
  once -- CHOLMOD's supernodal Cholesky through cvxopt, or SciPy's SuperLU with
  ``permc_spec='MMD_AT_PLUS_A'`` -- and every input vector is one triangular solve pair;
* **model cells**: Newton iterations from the ideal operating point (driven lines at their
  sources, sensed lines at 0 V). All input vectors iterate together with one chord
  (simplified Newton) matrix, the Jacobian ``G_w + A diag(dI/dV) A^T`` at the vectors' mean
  ideal cell voltages (exact Newton for the first step of a single vector; optionally
  refreshed once after the first iterate, ``refresh_jacobian``); a vector
  whose contraction is poor (strong sinh nonlinearity, inputs far from the mean) continues
  with full Newton, ``J = G_w + A diag(dI/dV) A^T`` refactorised per iteration. Iterates are clipped to
  the range of the sources, which bounds every node voltage of this passive, monotone network.
  Convergence: ``max |dV| <= rtol * max(|v|) + atol``.

Output: the current (A) from each sensed line into its virtual ground, ``I = V_end / R_p``
(or, for an ideal virtual ground, the sum of the cell currents into the line).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .tile import Tile, check_direction, topology

#: SuperLU column ordering (fastest of SciPy's on these grids, see docs/circuit.md).
PERMC_SPEC = "MMD_AT_PLUS_A"

#: Sparse factorisation: ``'cholmod'`` (CHOLMOD supernodal Cholesky through cvxopt; the
#: nodal matrices are symmetric positive definite), ``'superlu'`` (SciPy), or ``'auto'``
#: (CHOLMOD when cvxopt is importable).
FACTORIZATION = "auto"


def _have_cholmod() -> bool:
    try:
        import cvxopt.cholmod  # noqa: F401
    except ImportError:
        return False
    return True


class SparseFactor:
    """Factorisation of a symmetric positive definite sparse matrix; ``solve`` takes a vector
    or an ``(n, K)`` block of right-hand sides.

    CHOLMOD (``A = L L^T`` with AMD ordering, through cvxopt) is 4-5x faster than SuperLU's
    ``LU`` on crossbar matrices; SuperLU is the fallback.
    """

    #: AMD orderings by sparsity-pattern key (tiles of one shape and topology share it).
    _orderings: dict[Any, Any] = {}

    def __init__(self, A: sp.spmatrix, method: str = "auto", pattern_key: Any = None) -> None:
        if method == "auto":
            method = "cholmod" if _have_cholmod() else "superlu"
        self.method = method
        self.n = A.shape[0]
        if method == "cholmod":
            import cvxopt
            import cvxopt.cholmod as cholmod

            coo = sp.tril(A, format="coo")
            M = cvxopt.spmatrix(cvxopt.matrix(coo.data.astype(float)),
                                cvxopt.matrix(coo.row.astype(np.int64)),
                                cvxopt.matrix(coo.col.astype(np.int64)), size=A.shape)
            key = None if pattern_key is None else (pattern_key, A.shape[0], coo.nnz)
            perm = self._orderings.get(key) if key is not None else None
            if perm is None:
                import cvxopt.amd

                perm = cvxopt.amd.order(M, "L")
                if key is not None:
                    if len(self._orderings) > 64:
                        self._orderings.clear()
                    self._orderings[key] = perm
            self._F = cholmod.symbolic(M, p=perm, uplo="L")
            try:
                cholmod.numeric(M, self._F)
            except ArithmeticError:
                # numerically indefinite (extreme conductance ratios, e.g. cosh of a huge
                # overdrive in a Newton Jacobian): LU with pivoting copes
                method = self.method = "superlu"
            else:
                self._cholmod = cholmod
                self._cvx = cvxopt
        if method == "superlu":
            self._lu = spla.splu(sp.csc_matrix(A), permc_spec=PERMC_SPEC)
        elif method != "cholmod":
            raise ValueError(f"factorization must be 'auto', 'cholmod' or 'superlu', got {method!r}")

    def solve(self, b: np.ndarray) -> np.ndarray:
        b = np.asarray(b, dtype=float)
        if self.method == "superlu":
            return self._lu.solve(b)
        X = self._cvx.matrix(np.asfortranarray(b.reshape(self.n, -1)))
        self._cholmod.solve(self._F, X)
        return np.array(X).reshape(b.shape)


class ConvergenceError(RuntimeError):
    """Newton iterations of the nodal solver did not converge."""


@dataclass
class TileSystem:
    """The assembled nodal equations of a tile for one read direction.

    Build once, then call :meth:`solve` for any number of input batches; for linear cells the
    factorisation is kept (``factor once, solve many``).

    Parameters
    ----------
    tile : Tile
    direction : {'forward', 'transposed'}
    rtol, atol : float
        Newton convergence on the node voltages: ``max |dV| <= rtol max|v| + atol`` (V).
    max_iter : int
        Newton iteration limit per input vector.
    factorization : {'auto', 'cholmod', 'superlu'}
        Sparse factorisation, see :class:`SparseFactor`.
    refresh_jacobian : bool
        Refactorise the chord matrix once after the first Newton iterate (model cells).
    """

    tile: Tile
    direction: str = "forward"
    rtol: float = 1e-12
    atol: float = 1e-15
    max_iter: int = 60
    factorization: str = FACTORIZATION
    refresh_jacobian: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_direction(self.direction)
        t0 = time.perf_counter()
        tile, L = self.tile, topology(self.tile, self.direction)
        self._L = L
        R, C = tile.shape
        nn = L.n_nodes
        n_in = len(L.drive_node)
        # fixed nodes: driven lines with an ideal source, sensed lines with an ideal ground
        fixed_drive = ~np.isfinite(L.drive_g)
        fixed_sense = ~np.isfinite(L.sense_g)
        is_fixed = np.zeros(nn, bool)
        is_fixed[L.drive_node[fixed_drive]] = True
        is_fixed[L.sense_node[fixed_sense]] = True
        self._free = np.flatnonzero(~is_fixed)
        self._fixed = np.flatnonzero(is_fixed)
        pos = np.full(nn, -1)
        pos[self._fixed] = np.arange(len(self._fixed))
        nu, nf, nc = len(self._free), len(self._fixed), R * C
        self._pos_u = np.full(nn, -1)
        self._pos_u[self._free] = np.arange(nu)
        self._pos_f = pos
        # fixed values = P @ v (sensed fixed lines stay 0)
        k_fd = np.flatnonzero(fixed_drive)
        self._P = sp.csr_matrix((np.ones(len(k_fd)), (pos[L.drive_node[k_fd]], k_fd)),
                                shape=(nf, n_in))
        # wire segments (two-terminal branches) and periphery shunts
        a, b, g = [], [], []
        if tile.r_wire_row > 0 and C > 1:
            a.append(L.row_node[:, :-1].ravel()); b.append(L.row_node[:, 1:].ravel())
            g.append(np.full(R * (C - 1), 1.0 / tile.r_wire_row))
        if tile.r_wire_col > 0 and R > 1:
            a.append(L.col_node[:-1, :].ravel()); b.append(L.col_node[1:, :].ravel())
            g.append(np.full((R - 1) * C, 1.0 / tile.r_wire_col))
        sh_n, sh_g = [], []
        for node, gp in ((L.drive_node, L.drive_g), (L.sense_node, L.sense_g)):
            ok = np.isfinite(gp)
            sh_n.append(node[ok]); sh_g.append(gp[ok])
        cat = (lambda parts, dt=float: np.concatenate(parts).astype(dt) if parts
               else np.zeros(0, dt))
        self._G_uu, self._G_uf = self._stamp(cat(a, int), cat(b, int), cat(g),
                                             cat(sh_n, int), cat(sh_g))
        # source injection S_u (free, n_in)
        ok = np.isfinite(L.drive_g)
        self._S_u = sp.csr_matrix((L.drive_g[ok], (self._pos_u[L.drive_node[ok]],
                                                    np.flatnonzero(ok))), shape=(nu, n_in))
        # cells: t on the row node, b on the column node
        self._cell_t = L.row_node.ravel()
        self._cell_b = L.col_node.ravel()
        pt, pb = self._pos_u[self._cell_t], self._pos_u[self._cell_b]
        cell = np.arange(nc)
        self._inc_u = sp.csr_matrix(
            (np.r_[np.ones((pt >= 0).sum()), -np.ones((pb >= 0).sum())],
             (np.r_[pt[pt >= 0], pb[pb >= 0]], np.r_[cell[pt >= 0], cell[pb >= 0]])),
            shape=(nu, nc))
        # output maps: I_out = O_node @ V_full + O_cell @ I_cell
        n_out = len(L.sense_node)
        ok = np.isfinite(L.sense_g)
        self._O_node = sp.csr_matrix((L.sense_g[ok], (np.flatnonzero(ok), L.sense_node[ok])),
                                     shape=(n_out, nn))
        # ideal virtual ground: the current into the held node from its cells
        kmap = np.full(nn, -1)
        kmap[L.sense_node[~ok]] = np.flatnonzero(~ok)
        kt, kb = kmap[self._cell_t], kmap[self._cell_b]
        self._O_cell = sp.csr_matrix(
            (np.r_[-np.ones((kt >= 0).sum()), np.ones((kb >= 0).sum())],
             (np.r_[kt[kt >= 0], kb[kb >= 0]], np.r_[cell[kt >= 0], cell[kb >= 0]])),
            shape=(n_out, nc))
        self._A0 = self._A0_uf = None   # low-field matrices, built on first use
        # ideal operating point: free node -> its driven line (D_u @ v gives V_u)
        line_of = np.full(nn, -1)
        if self.direction == "forward":
            line_of[L.row_node] = np.arange(R)[:, None]
        else:
            line_of[L.col_node] = np.arange(C)[None, :]
        lu_ = line_of[self._free]
        self._D_u = sp.csr_matrix((np.ones((lu_ >= 0).sum()),
                                   (np.flatnonzero(lu_ >= 0), lu_[lu_ >= 0])), shape=(nu, n_in))
        # the sparsity pattern depends only on these: its fill-reducing ordering is cached
        self._pattern_key = (R, C, self.direction, tile.r_wire_row > 0, tile.r_wire_col > 0,
                             tuple(np.isfinite(L.drive_g)), tuple(np.isfinite(L.sense_g)))
        self.timings["assemble_s"] = time.perf_counter() - t0
        self._lu0 = None

    # ---------------------------------------------------------------- helpers
    def _stamp(self, a: np.ndarray, b: np.ndarray, g: np.ndarray,
               shunt_node: np.ndarray | None = None, shunt_g: np.ndarray | None = None):
        """Nodal matrices of conductances ``g`` between nodes ``a`` and ``b`` (and shunts to
        ground): the free-free block (CSR) and the free-fixed coupling (CSR)."""
        pu, pf = self._pos_u, self._pos_f
        nu, nf = len(self._free), len(self._fixed)
        ua, ub = pu[a], pu[b]
        fa, fb = ua >= 0, ub >= 0
        both = fa & fb
        r = [ua[fa], ub[fb], ua[both], ub[both]]
        c = [ua[fa], ub[fb], ub[both], ua[both]]
        d = [g[fa], g[fb], -g[both], -g[both]]
        if shunt_node is not None and len(shunt_node):
            su = pu[shunt_node]
            r.append(su); c.append(su); d.append(shunt_g)
        A = sp.csr_matrix((np.concatenate(d), (np.concatenate(r), np.concatenate(c))),
                          shape=(nu, nu))
        m1, m2 = fa & ~fb, fb & ~fa
        B = sp.csr_matrix((np.r_[-g[m1], -g[m2]], (np.r_[ua[m1], ub[m2]],
                                                    np.r_[pf[b[m1]], pf[a[m2]]])),
                          shape=(nu, nf))
        return A, B

    @property
    def n_free(self) -> int:
        """Number of unknown node voltages."""
        return len(self._free)

    def _low_field(self) -> None:
        """Matrices with the cells at their low-field conductance (linear cells: exact)."""
        if self._A0 is None:
            g0 = self.tile.low_field_conductance().ravel()
            Ac, Acf = self._stamp(self._cell_t, self._cell_b, g0)
            self._A0 = (self._G_uu + Ac).tocsc()
            self._A0_uf = (self._G_uf + Acf).tocsr()

    def _factor0(self):
        self._low_field()
        if self._lu0 is None and self.n_free:
            t0 = time.perf_counter()
            self._lu0 = SparseFactor(self._A0, self.factorization, self._pattern_key)
            self.timings["factor_s"] = time.perf_counter() - t0
        return self._lu0

    def _full(self, Vu: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Full node-voltage array (nn, K) from free voltages (n_free, K) and sources (K, n_in)."""
        V = np.empty((self._L.n_nodes, v.shape[0]))
        V[self._free] = Vu
        V[self._fixed] = self._P @ v.T
        return V

    def _cell_voltages(self, V: np.ndarray) -> np.ndarray:
        """Cell voltages V(t) - V(b), shape (K, R, C), for full node voltages V (nn, K)."""
        R, C = self.tile.shape
        return (V[self._cell_t] - V[self._cell_b]).T.reshape(-1, R, C)

    def _cell_currents(self, V: np.ndarray) -> np.ndarray:
        """Cell currents (R*C, K) for full node voltages V (nn, K)."""
        R, C = self.tile.shape
        return self.tile.cell_current(self._cell_voltages(V)).reshape(-1, R * C).T

    def _outputs(self, V: np.ndarray) -> np.ndarray:
        I = self._O_node @ V
        if self._O_cell.nnz:
            I = I + self._O_cell @ self._cell_currents(V)
        return np.asarray(I).T

    def _rhs(self, v: np.ndarray, with_cells: bool = True) -> np.ndarray:
        """Right-hand side: sources through the drivers, minus the coupling to held nodes
        (through wires/periphery, and through the low-field cells when ``with_cells``)."""
        if with_cells:
            self._low_field()
        B = self._A0_uf if with_cells else self._G_uf
        return np.asarray(self._S_u @ v.T - B @ (self._P @ v.T))

    # ---------------------------------------------------------------- solve
    def node_voltages(self, v_in: Any) -> np.ndarray:
        """All node voltages (V), shape ``(n_nodes, n_vectors)``, for inputs ``v_in``."""
        v = self.tile.check_inputs(v_in, self.direction)
        if not self.n_free:
            return self._full(np.zeros((0, v.shape[0])), v)
        if self.tile.is_linear:
            lu = self._factor0()
            t0 = time.perf_counter()
            Vu = lu.solve(self._rhs(v))
        else:
            # start from the ideal operating point: driven lines at their source, sensed
            # lines at 0 V (IR drop is a small correction)
            t0 = time.perf_counter()
            Vu = np.asarray(self._D_u @ v.T, dtype=float)
            Vu = self._newton(Vu, v, self._rhs(v, with_cells=False))
        self.timings["solve_s"] = self.timings.get("solve_s", 0.0) + time.perf_counter() - t0
        return self._full(Vu, v)

    def solve(self, v_in: Any) -> np.ndarray:
        """Sensed currents (A), shape ``(n_vectors, n_sensed)``, for read voltages ``v_in``."""
        return self._outputs(self.node_voltages(v_in))

    def _residual(self, Vu: np.ndarray, v: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """KCL residual (A) at the free nodes; ``rhs`` from ``_rhs(v, with_cells=False)``."""
        V = self._full(Vu, v)
        return self._G_uu @ Vu - rhs + self._inc_u @ self._cell_currents(V)

    def _newton(self, Vu: np.ndarray, v: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        lo = np.minimum(v.min(axis=1), 0.0)[None, :]
        hi = np.maximum(v.max(axis=1), 0.0)[None, :]
        tol = self.rtol * np.maximum(np.abs(v).max(axis=1), 1e-300) + self.atol
        # chord matrix: the Jacobian at the mean cell voltages of the low-field solution
        # (exact Newton's first Jacobian for a single vector)
        vc_mean = self._cell_voltages(self._full(Vu, v)).mean(axis=0)
        t0 = time.perf_counter()
        gd = self.tile.cell_didv(vc_mean).ravel()
        lu = SparseFactor((self._G_uu + self._stamp(self._cell_t, self._cell_b, gd)[0]).tocsc(),
                          self.factorization, self._pattern_key)
        self.timings["factor_s"] = time.perf_counter() - t0
        active = np.arange(v.shape[0])
        last = np.full(v.shape[0], np.inf)
        n_chord, full = 0, []
        for it in range(self.max_iter):
            if not len(active):
                break
            dV = lu.solve(np.asarray(self._residual(Vu[:, active], v[active], rhs[:, active])))
            Vu[:, active] = np.clip(Vu[:, active] - dV, lo[:, active], hi[:, active])
            n_chord += 1
            step = np.abs(dV).max(axis=0)
            done = step <= tol[active]
            slow = (step > 0.5 * last[active]) & (it >= 2)
            last[active] = step
            full.extend(active[slow & ~done].tolist())
            active = active[~done & ~slow]
            if it == 0 and len(active) and self.refresh_jacobian:
                # one Jacobian refresh at the mean of the first Newton iterate
                vc_mean = self._cell_voltages(self._full(Vu[:, active], v[active])).mean(axis=0)
                gd = self.tile.cell_didv(vc_mean).ravel()
                lu = SparseFactor((self._G_uu + self._stamp(self._cell_t, self._cell_b,
                                                            gd)[0]).tocsc(),
                                  self.factorization, self._pattern_key)
        full.extend(active.tolist())
        self.stats["chord_iterations"] = n_chord
        self.stats["full_newton_vectors"] = len(full)
        R, C = self.tile.shape
        for k in full:
            vk, rk = v[k:k + 1], rhs[:, k:k + 1]
            for it in range(self.max_iter):
                V = self._full(Vu[:, k:k + 1], vk)
                gd = self.tile.cell_didv(self._cell_voltages(V)[0]).ravel()
                J = (self._G_uu + self._stamp(self._cell_t, self._cell_b, gd)[0]).tocsc()
                res = self._residual(Vu[:, k:k + 1], vk, rk)
                dV = SparseFactor(J, self.factorization, self._pattern_key).solve(
                    np.asarray(res))
                Vu[:, k:k + 1] = np.clip(Vu[:, k:k + 1] - dV, lo[:, k:k + 1], hi[:, k:k + 1])
                if np.abs(dV).max() <= tol[k]:
                    break
            else:
                raise ConvergenceError(f"MNA Newton did not converge for input vector {k} in "
                                       f"{self.max_iter} iterations")
        return Vu


def solve_tile(tile: Tile, v_in: Any, direction: str = "forward", *, rtol: float = 1e-12,
               atol: float = 1e-15, max_iter: int = 60,
               factorization: str = FACTORIZATION) -> np.ndarray:
    """Sensed currents of a tile read with voltages ``v_in``, by sparse nodal analysis.

    Parameters
    ----------
    tile : Tile
        The crossbar tile (linear or model cells, wire/driver/sense resistances).
    v_in : array_like, shape (n_vectors, rows) forward or (n_vectors, cols) transposed
        Read voltages (V) of the driven lines, one row per input vector (1-D = one vector).
    direction : {'forward', 'transposed'}
        ``'forward'``: rows driven, columns sensed; ``'transposed'``: columns driven, rows
        sensed.
    rtol, atol, max_iter :
        Newton settings for model cells (see :class:`TileSystem`).
    factorization : {'auto', 'cholmod', 'superlu'}
        Sparse factorisation (see :class:`SparseFactor`).

    Returns
    -------
    ndarray, shape (n_vectors, cols) forward or (n_vectors, rows) transposed
        Current (A) from each sensed line into its virtual ground.
    """
    return TileSystem(tile, direction, rtol=rtol, atol=atol, max_iter=max_iter,
                      factorization=factorization).solve(v_in)


def ideal_product(tile: Tile, v_in: Any, direction: str = "forward") -> np.ndarray:
    """Sensed currents (A) without wire, driver or sense resistance.

    Every cell sees its full line voltage: forward ``I_j = sum_i I_cell,ij(v_i)``, transposed
    ``I_i = -sum_j I_cell,ij(-v_j)`` (current from column to row). For linear cells this is
    the vector-matrix product ``v @ g`` (forward) or ``v @ g.T`` (transposed).
    """
    check_direction(direction)
    v = tile.check_inputs(v_in, direction)
    if tile.is_linear:
        return v @ tile.g if direction == "forward" else v @ tile.g.T
    if direction == "forward":
        return tile.cell_current(v[:, :, None]).sum(axis=1)
    return -tile.cell_current(-v[:, None, :]).sum(axis=2)


def transfer_matrix(tile: Tile, direction: str = "forward") -> np.ndarray:
    """Effective conductance matrix ``T`` (S) of a linear-cell tile: ``I = v @ T``.

    Obtained from unit input vectors with one factorisation; includes all IR drop.
    """
    if not tile.is_linear:
        raise ValueError("transfer_matrix needs linear cells (the model-cell read is nonlinear)")
    n = tile.n_inputs(direction)
    return TileSystem(tile, direction).solve(np.eye(n))
