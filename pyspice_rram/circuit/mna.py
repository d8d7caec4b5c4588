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
  once -- the simplicial Cholesky of :mod:`._mna_kernels` (numba; small tiles, or many
  right-hand sides), CHOLMOD's supernodal Cholesky through cvxopt (large tiles), or SciPy's
  SuperLU with ``permc_spec='MMD_AT_PLUS_A'`` (fallback for numerically indefinite
  Jacobians) -- and every input vector is one triangular solve pair;
* **model cells**: Newton iterations from the ideal operating point (driven lines at their
  sources, sensed lines at 0 V). All input vectors iterate together with one chord
  (simplified Newton) matrix, the Jacobian ``G_w + A diag(dI/dV) A^T`` at the vectors' mean
  ideal cell voltages (exact Newton for the first step of a single vector; optionally
  refreshed once after the first iterate, ``refresh_jacobian``); a vector
  whose contraction is poor (strong sinh nonlinearity, inputs far from the mean) continues
  with full Newton, ``J = G_w + A diag(dI/dV) A^T`` refactorised per iteration. Iterates are clipped to
  the range of the sources, which bounds every node voltage of this passive, monotone network.
  Convergence: ``max |dV| <= rtol * max(|v|) + atol``.

Everything that depends only on the sparsity pattern (node maps, the AMD ordering, the
upper-triangular CSC structure with the value position of every stamp, the elimination tree
and column counts) is built once per (shape, direction, parasitics) pattern and shared; a
tile then costs its numeric factorisations and a few numba kernel calls per iteration (KCL
residual, blocked triangular solves over all input vectors, clipped update).

Output: the current (A) from each sensed line into its virtual ground, ``I = V_end / R_p``
(or, for an ideal virtual ground, the sum of the cell currents into the line).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import ConfigError, SimulatorError
from . import _mna_kernels as _kern
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
            raise ConfigError(f"factorization must be 'auto', 'cholmod' or 'superlu', got {method!r}")

    def solve(self, b: np.ndarray) -> np.ndarray:
        b = np.asarray(b, dtype=float)
        if self.method == "superlu":
            return self._lu.solve(b)
        X = self._cvx.matrix(np.asfortranarray(b.reshape(self.n, -1)))
        self._cholmod.solve(self._F, X)
        return np.array(X).reshape(b.shape)


class ConvergenceError(SimulatorError):
    """Newton iterations of the nodal solver did not converge (a :class:`SimulatorError`, so
    the CLI prints one line)."""


#: ``factorization='auto'``: up to this many free nodes (32x32 tiles and smaller) the
#: simplicial Cholesky of :mod:`._mna_kernels` (no per-call library overhead) ...
SIMPLICIAL_MAX_FREE = 4096
#: ... and up to this many (128x128) also when at least :data:`SIMPLICIAL_MIN_RHS`
#: right-hand sides (input vectors x expected Newton iterations) go through the factor: its
#: blocked triangular solves are several times faster than CHOLMOD's. Otherwise CHOLMOD's
#: supernodal Cholesky, whose BLAS-3 factorisation wins on large fronts.
SIMPLICIAL_BLOCK_MAX_FREE = 40_000
SIMPLICIAL_MIN_RHS = 16


def _auto_factorization(n_free: int, n_rhs: int) -> str:
    if n_free <= SIMPLICIAL_MAX_FREE or not _have_cholmod():
        return "simplicial"
    if n_free <= SIMPLICIAL_BLOCK_MAX_FREE and n_rhs >= SIMPLICIAL_MIN_RHS:
        return "simplicial"
    return "cholmod"


_FACTORIZATIONS = ("auto", "cholmod", "superlu", "simplicial")


class _Pattern:
    """Everything about a tile's nodal equations that depends only on its sparsity pattern
    (shape, direction, which parasitics are present): node maps, branch lists, the
    fill-reducing ordering, the permuted upper-triangular CSC structure of the nodal matrix
    with the value positions of every stamp, and the symbolic Cholesky factorisation.
    Built once per pattern and shared by every :class:`TileSystem` of that pattern."""

    def __init__(self, tile: Tile, direction: str) -> None:
        L = topology(tile, direction)
        R, C = tile.shape
        nn = self.n_nodes = L.n_nodes
        self.shape = (R, C)
        self.n_in, self.n_out = len(L.drive_node), len(L.sense_node)
        fd, fs = ~np.isfinite(L.drive_g), ~np.isfinite(L.sense_g)
        is_fixed = np.zeros(nn, bool)
        is_fixed[L.drive_node[fd]] = True
        is_fixed[L.sense_node[fs]] = True
        self.free = np.flatnonzero(~is_fixed).astype(np.int64)
        self.fixed = np.flatnonzero(is_fixed).astype(np.int64)
        nu = self.n_free = len(self.free)
        pu = self.pos_u = np.full(nn, -1, np.int64)
        pu[self.free] = np.arange(nu)
        # held driven nodes take their source (held sensed nodes stay at 0 V)
        self.fix_node = L.drive_node[fd].astype(np.int64)
        self.fix_src = np.flatnonzero(fd).astype(np.int64)
        # wire segments
        a, b, isrow = [], [], []
        if tile.r_wire_row > 0 and C > 1:
            a.append(L.row_node[:, :-1].ravel()); b.append(L.row_node[:, 1:].ravel())
            isrow.append(np.ones(R * (C - 1), bool))
        if tile.r_wire_col > 0 and R > 1:
            a.append(L.col_node[:-1, :].ravel()); b.append(L.col_node[1:, :].ravel())
            isrow.append(np.zeros((R - 1) * C, bool))
        cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
        self.br_a, self.br_b = cat(a, np.int64), cat(b, np.int64)
        self.br_isrow = cat(isrow, bool)
        # periphery shunts: driven lines (to their source) then sensed lines (to 0 V)
        self.drive_ok, self.sense_ok = ~fd, ~fs
        kd, ks = np.flatnonzero(~fd), np.flatnonzero(~fs)
        self.sh_node = np.r_[L.drive_node[kd], L.sense_node[ks]].astype(np.int64)
        self.sh_src = np.r_[kd, np.full(len(ks), -1)].astype(np.int64)
        # cells: t on the row node, b on the column node
        self.cell_t = L.row_node.ravel().astype(np.int64)
        self.cell_b = L.col_node.ravel().astype(np.int64)
        self.sense_node = L.sense_node.astype(np.int64)
        # branches and cells touching a held node: with the free nodes at 0 V only they (and
        # the periphery shunts) carry current, which is the right-hand side of linear cells
        self.br_held = np.flatnonzero(is_fixed[self.br_a] | is_fixed[self.br_b])
        self.cell_held = np.flatnonzero(is_fixed[self.cell_t] | is_fixed[self.cell_b])
        # ideal virtual ground: the current into the held node from its cells
        kmap = np.full(nn, -1)
        kmap[L.sense_node[fs]] = np.flatnonzero(fs)
        kt, kb = kmap[self.cell_t], kmap[self.cell_b]
        cell = np.arange(R * C)
        self.oc_cell = np.r_[cell[kt >= 0], cell[kb >= 0]].astype(np.int64)
        self.oc_out = np.r_[kt[kt >= 0], kb[kb >= 0]].astype(np.int64)
        self.oc_sign = np.r_[-np.ones((kt >= 0).sum()), np.ones((kb >= 0).sum())]
        # ideal operating point: free node -> its driven line (-1: sensed side, 0 V)
        line_of = np.full(nn, -1, np.int64)
        if direction == "forward":
            line_of[L.row_node] = np.arange(R)[:, None]
        else:
            line_of[L.col_node] = np.arange(C)[None, :]
        self.start_src = line_of[self.free]
        self._structure()
        self._cholmod = None

    def _structure(self) -> None:
        nu, pu = self.n_free, self.pos_u
        if not nu:
            return
        ua, ub = pu[self.br_a], pu[self.br_b]
        ct, cb = pu[self.cell_t], pu[self.cell_b]
        su = pu[self.sh_node]
        both_b, both_c = (ua >= 0) & (ub >= 0), (ct >= 0) & (cb >= 0)
        nb = int(both_b.sum())
        r = np.r_[np.arange(nu), ua[both_b], ct[both_c]]
        c = np.r_[np.arange(nu), ub[both_b], cb[both_c]]
        # fill-reducing ordering of the symmetric pattern
        lo_r, lo_c = np.maximum(r, c), np.minimum(r, c)
        self._cvx_lower = None
        try:
            import cvxopt
            import cvxopt.amd

            # values: entry numbers (kept for CHOLMOD's value map)
            M = cvxopt.spmatrix(cvxopt.matrix(np.arange(len(r), dtype=float)),
                                cvxopt.matrix(lo_r), cvxopt.matrix(lo_c), size=(nu, nu))
            perm = np.array(cvxopt.amd.order(M, "L"), dtype=np.int64).ravel()
            self._cvx_lower = M
        except ImportError:
            from scipy.sparse.csgraph import reverse_cuthill_mckee

            pat = sp.coo_matrix((np.ones(len(r)), (lo_r, lo_c)), shape=(nu, nu))
            perm = np.asarray(reverse_cuthill_mckee((pat + pat.T).tocsr(),
                                                    symmetric_mode=True), np.int64)
        self.perm = perm
        pinv = self.pinv = np.empty(nu, np.int64)
        pinv[perm] = np.arange(nu)
        # permuted upper triangle, CSC, and the value position of every entry
        self.Cp, self.Ci, epos = _kern.csc_upper(nu, pinv[r], pinv[c])
        self.nnz = len(self.Ci)
        self._epos = epos
        if self._cvx_lower is not None and self._cvx_lower.V.size[0] != self.nnz:
            # duplicate entries were summed: number the unique ones instead
            col = np.repeat(np.arange(nu, dtype=np.int64), np.diff(self.Cp))
            a, b = perm[self.Ci], perm[col]
            self._cvx_lower = cvxopt.spmatrix(
                cvxopt.matrix(np.arange(self.nnz, dtype=float)), cvxopt.matrix(np.maximum(a, b)),
                cvxopt.matrix(np.minimum(a, b)), size=(nu, nu))
            self._epos = np.arange(self.nnz)
        dpos = np.r_[epos[:nu], -1]                 # diagonal of free node x; -1 for held

        def off(mask, first):
            out = np.full(len(mask), -1, np.int64)
            out[mask] = epos[first:first + int(mask.sum())]
            return out

        none = np.full(len(su), -1, np.int64)
        self.br_pos = (dpos[ua], dpos[ub], off(both_b, nu))
        self.sh_pos = (dpos[su], none, none)
        self.cell_pos = (dpos[ct], dpos[cb], off(both_c, nu + nb))
        self._symbolic = None

    def symbolic(self) -> tuple[np.ndarray, np.ndarray]:
        """Elimination tree and column pointers of the simplicial Cholesky factor."""
        if self._symbolic is None:
            parent = _kern.etree(self.n_free, self.Cp, self.Ci)
            self._symbolic = (parent, _kern.chol_symbolic(self.n_free, self.Cp, self.Ci, parent))
        return self._symbolic

    # ---------------------------------------------------------------- CHOLMOD
    def cholmod_numeric(self, Cx: np.ndarray, owner: Any) -> None:
        """CHOLMOD numeric factorisation of the (unpermuted) matrix with permuted upper values
        ``Cx`` into the pattern's shared factor, now owned by ``owner``. The symbolic
        analysis (supernodes, with the AMD ordering) is done once per pattern. Raises
        ArithmeticError for a numerically indefinite matrix."""
        import cvxopt
        import cvxopt.cholmod as cholmod

        if self._cholmod is None:
            M = self._cvx_lower             # the original lower triangle, from the ordering
            ids = self._epos[np.array(M.V).ravel().astype(np.int64)]  # value k = Cx[ids[k]]
            F = cholmod.symbolic(M, p=cvxopt.matrix(self.perm), uplo="L")
            self._cholmod = [M, ids, F, None]
        st = self._cholmod
        st[3] = None
        st[0].V = cvxopt.matrix(np.asarray(Cx, float)[st[1]])
        cholmod.numeric(st[0], st[2])
        st[3] = owner

    def upper_csc(self, Cx: np.ndarray) -> sp.csc_matrix:
        """The full symmetric permuted matrix (for LU)."""
        U = sp.csc_matrix((Cx, self.Ci, self.Cp), shape=(self.n_free, self.n_free))
        return (U + sp.triu(U, 1, format="csc").T).tocsc()


#: Patterns kept (least recently used dropped first) up to this many in all, or this many
#: free nodes in all (a 512x512 pattern with its CHOLMOD factor holds ~0.3 GB).
PATTERN_CACHE_SIZE = 32
PATTERN_CACHE_NODES = 1_200_000
_PATTERNS: OrderedDict[Any, _Pattern] = OrderedDict()
_PATTERN_LOCK = threading.RLock()


def _pattern(tile: Tile, direction: str) -> _Pattern:
    R, C = tile.shape
    if direction == "forward":
        rd, rs = tile.r_wire_row + tile.r_driver, tile.r_wire_col + tile.r_sense
    else:
        rd, rs = tile.r_wire_col + tile.r_driver, tile.r_wire_row + tile.r_sense
    # held lines (zero periphery resistance) change the node set
    key = (R, C, direction, tile.r_wire_row > 0, tile.r_wire_col > 0, rd > 0, rs > 0)
    with _PATTERN_LOCK:
        pat = _PATTERNS.get(key)
        if pat is not None:
            _PATTERNS.move_to_end(key)
            return pat
    pat = _Pattern(tile, direction)
    with _PATTERN_LOCK:
        _PATTERNS[key] = pat
        while len(_PATTERNS) > 1 and (
                len(_PATTERNS) > PATTERN_CACHE_SIZE
                or sum(p.n_free for p in _PATTERNS.values()) > PATTERN_CACHE_NODES):
            _PATTERNS.popitem(last=False)
    return pat


class _Factor:
    """Cholesky (or LU) factor of a nodal matrix of pattern ``pat`` with permuted upper
    values ``Cx``; :meth:`solve` takes and returns ``(K, n_free)`` blocks."""

    def __init__(self, pat: _Pattern, Cx: np.ndarray, method: str, n_rhs: int = 1) -> None:
        self.pat = pat
        if method == "auto":
            method = _auto_factorization(pat.n_free, n_rhs)
        if method not in _FACTORIZATIONS:
            raise ConfigError(f"factorization must be one of {_FACTORIZATIONS}, got {method!r}")
        self.method = method
        if method == "simplicial":
            parent, Lp = pat.symbolic()
            self._Li = np.empty(Lp[-1], np.int64)
            self._Lx = np.empty(Lp[-1])
            if not _kern.chol_numeric(pat.n_free, pat.Cp, pat.Ci, Cx, parent, Lp,
                                      self._Li, self._Lx):
                # numerically indefinite (extreme conductance ratios, e.g. cosh of a huge
                # overdrive in a Newton Jacobian): LU with pivoting copes
                self.method = method = "superlu"
        elif method == "cholmod":
            self._Cx = Cx
            try:
                with _PATTERN_LOCK:
                    pat.cholmod_numeric(Cx, self)
            except ArithmeticError:
                self.method = method = "superlu"
        if method == "superlu":
            self._lu = spla.splu(pat.upper_csc(Cx), permc_spec=PERMC_SPEC)

    def solve(self, B: np.ndarray) -> np.ndarray:
        pat = self.pat
        if self.method == "simplicial":
            return _kern.chol_solve(pat.symbolic()[1], self._Li, self._Lx, pat.perm, B)
        if self.method == "superlu":
            Xp = self._lu.solve(np.ascontiguousarray(B[:, pat.perm].T))
            out = np.empty(B.shape)
            out[:, pat.perm] = Xp.T
            return out
        import cvxopt
        import cvxopt.cholmod as cholmod

        with _PATTERN_LOCK:
            st = pat._cholmod
            if st[3] is not self:       # the shared factor was refreshed by another system
                pat.cholmod_numeric(self._Cx, self)
            X = cvxopt.matrix(np.asfortranarray(B.T))
            cholmod.solve(st[2], X)
        return np.array(X).T


@dataclass
class TileSystem:
    """The assembled nodal equations of a tile for one read direction.

    Build once, then call :meth:`solve` for any number of input batches; for linear cells the
    factorisation is kept (``factor once, solve many``). Everything that depends only on
    the sparsity pattern (node maps, ordering, symbolic factorisation) is shared between
    systems of the same shape, direction and parasitics.

    Parameters
    ----------
    tile : Tile
    direction : {'forward', 'transposed'}
    rtol, atol : float
        Newton convergence on the node voltages: ``max |dV| <= rtol max|v| + atol`` (V).
    max_iter : int
        Newton iteration limit per input vector.
    factorization : {'auto', 'cholmod', 'superlu', 'simplicial'}
        Sparse factorisation: ``'simplicial'`` is the up-looking Cholesky of
        :mod:`._mna_kernels`, ``'auto'`` picks it up to :data:`SIMPLICIAL_MAX_FREE` free nodes
        and CHOLMOD above (see :class:`SparseFactor`).
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
        if self.factorization not in _FACTORIZATIONS:
            raise ConfigError(f"factorization must be one of {_FACTORIZATIONS}, "
                             f"got {self.factorization!r}")
        t0 = time.perf_counter()
        tile = self.tile
        pat = self._pat = _pattern(tile, self.direction)
        L = topology(tile, self.direction)
        self._br_g = np.where(pat.br_isrow, 1.0 / tile.r_wire_row if tile.r_wire_row > 0
                              else 0.0, 1.0 / tile.r_wire_col if tile.r_wire_col > 0 else 0.0)
        self._sh_g = np.r_[L.drive_g[pat.drive_ok], L.sense_g[pat.sense_ok]].astype(float)
        self._sense_g = L.sense_g.astype(float)
        self._Cx_w = None           # nodal matrix values of wires and periphery
        self._lu0 = None
        self.timings["assemble_s"] = time.perf_counter() - t0

    # ---------------------------------------------------------------- helpers
    @property
    def n_free(self) -> int:
        """Number of unknown node voltages."""
        return self._pat.n_free

    def _jacobian(self, gd: np.ndarray, n_rhs: int = 1) -> _Factor:
        """Factor of ``G_w + A diag(gd) A^T`` (free-free block) for blocks of ``n_rhs``
        right-hand sides."""
        pat = self._pat
        if self._Cx_w is None:
            Cx = _kern.stamp_values(np.zeros(pat.nnz), *pat.br_pos, self._br_g)
            self._Cx_w = _kern.stamp_values(Cx, *pat.sh_pos, self._sh_g)
        Cx = _kern.stamp_values(self._Cx_w, *pat.cell_pos, np.ascontiguousarray(gd, float).ravel())
        return _Factor(pat, Cx, self.factorization, n_rhs)

    def _factor0(self, n_rhs: int = 1) -> _Factor:
        if self._lu0 is None:
            t0 = time.perf_counter()
            self._lu0 = self._jacobian(self.tile.low_field_conductance(), n_rhs)
            self.timings["factor_s"] = time.perf_counter() - t0
        return self._lu0

    def _full0(self, v: np.ndarray) -> np.ndarray:
        """Node voltages (K, n_nodes): held nodes at their values, free nodes at 0."""
        V = np.zeros((v.shape[0], self._pat.n_nodes))
        V[:, self._pat.fix_node] = v[:, self._pat.fix_src]
        return V

    def _cell_voltages(self, V: np.ndarray) -> np.ndarray:
        """Cell voltages V(t) - V(b), shape (K, R, C), for node voltages V (K, n_nodes)."""
        R, C = self.tile.shape
        return (V[:, self._pat.cell_t] - V[:, self._pat.cell_b]).reshape(-1, R, C)

    def _cell_currents(self, V: np.ndarray) -> np.ndarray:
        """Cell currents (K, R*C) for node voltages V (K, n_nodes)."""
        R, C = self.tile.shape
        return np.ascontiguousarray(
            self.tile.cell_current(self._cell_voltages(V)), float).reshape(-1, R * C)

    def _residual(self, V: np.ndarray, v: np.ndarray) -> np.ndarray:
        """KCL residual (A) at the free nodes, (K, n_free), for node voltages V (K, n_nodes)."""
        p = self._pat
        return _kern.kcl_residual(V, v, p.free, p.br_a, p.br_b, self._br_g, p.sh_node, p.sh_src,
                              self._sh_g, p.cell_t, p.cell_b, self._cell_currents(V))

    def _outputs(self, V: np.ndarray) -> np.ndarray:
        p = self._pat
        Ic = self._cell_currents(V) if len(p.oc_cell) else np.zeros((V.shape[0], 0))
        return _kern.sensed_currents(V, p.sense_node, self._sense_g, p.oc_cell, p.oc_out,
                                 p.oc_sign, Ic)

    # ---------------------------------------------------------------- solve
    def _solve_nodes(self, v: np.ndarray) -> np.ndarray:
        """Node voltages (K, n_nodes) for validated inputs v (K, n_in)."""
        pat = self._pat
        V = self._full0(v)
        if not pat.n_free:
            return V
        t0 = time.perf_counter()
        if self.tile.is_linear:
            lu = self._factor0(v.shape[0])
            t0 = time.perf_counter()
            # F(V) = J V_free + F(0): one solve with the residual at V_free = 0
            bh, ch = pat.br_held, pat.cell_held
            Ic = self.tile.g.ravel()[ch] * (V[:, pat.cell_t[ch]] - V[:, pat.cell_b[ch]])
            F0 = _kern.kcl_residual(V, v, pat.free, pat.br_a[bh], pat.br_b[bh], self._br_g[bh],
                                    pat.sh_node, pat.sh_src, self._sh_g, pat.cell_t[ch],
                                    pat.cell_b[ch], Ic)
            V[:, pat.free] = -lu.solve(F0)
        else:
            # start from the ideal operating point: driven lines at their source, sensed
            # lines at 0 V (IR drop is a small correction)
            s = pat.start_src
            V[:, pat.free] = np.where(s >= 0, v[:, np.maximum(s, 0)], 0.0)
            self._newton(V, v)
        self.timings["solve_s"] = self.timings.get("solve_s", 0.0) + time.perf_counter() - t0
        return V

    def node_voltages(self, v_in: Any) -> np.ndarray:
        """All node voltages (V), shape ``(n_nodes, n_vectors)``, for inputs ``v_in``."""
        v = self.tile.check_inputs(v_in, self.direction)
        return self._solve_nodes(v).T

    def solve(self, v_in: Any) -> np.ndarray:
        """Sensed currents (A), shape ``(n_vectors, n_sensed)``, for read voltages ``v_in``."""
        v = self.tile.check_inputs(v_in, self.direction)
        return self._outputs(self._solve_nodes(v))

    def _newton(self, V: np.ndarray, v: np.ndarray) -> None:
        """Newton iterations on the free node voltages of V (K, n_nodes), in place."""
        free = self._pat.free
        lo = np.minimum(v.min(axis=1), 0.0)
        hi = np.maximum(v.max(axis=1), 0.0)
        tol = self.rtol * np.maximum(np.abs(v).max(axis=1), 1e-300) + self.atol
        # chord matrix: the Jacobian at the mean cell voltages of the ideal operating point
        # (exact Newton's first Jacobian for a single vector)
        t0 = time.perf_counter()
        lu = self._jacobian(self.tile.cell_didv(self._cell_voltages(V).mean(axis=0)),
                            6 * v.shape[0])
        self.timings["factor_s"] = time.perf_counter() - t0
        nk = v.shape[0]
        active = np.arange(nk)
        last = np.full(nk, np.inf)
        n_chord, full = 0, []
        Va, va = V, v
        for it in range(self.max_iter):
            if not len(active):
                break
            Vf = np.ascontiguousarray(Va[:, free])
            step = _kern.chord_update(Vf, lu.solve(self._residual(Va, va)), lo[active], hi[active])
            Va[:, free] = Vf
            n_chord += 1
            done = step <= tol[active]
            slow = (step > 0.5 * last[active]) & (it >= 2)
            last[active] = step
            if Va is not V:
                V[active] = Va
            full.extend(active[slow & ~done].tolist())
            keep = ~done & ~slow
            if not keep.all():
                active = active[keep]
                Va, va = V[active], v[active]
            if it == 0 and len(active) and self.refresh_jacobian:
                # one Jacobian refresh at the mean of the first Newton iterate
                lu = self._jacobian(self.tile.cell_didv(self._cell_voltages(Va).mean(axis=0)),
                                    6 * len(active))
        full.extend(active.tolist())
        self.stats["chord_iterations"] = n_chord
        self.stats["full_newton_vectors"] = len(full)
        for k in full:
            Vk, vk = V[k:k + 1].copy(), v[k:k + 1]
            for it in range(self.max_iter):
                J = self._jacobian(self.tile.cell_didv(self._cell_voltages(Vk)[0]))
                Vf = np.ascontiguousarray(Vk[:, free])
                step = _kern.chord_update(Vf, J.solve(self._residual(Vk, vk)), lo[k:k + 1],
                                      hi[k:k + 1])
                Vk[:, free] = Vf
                if step[0] <= tol[k]:
                    break
            else:
                raise ConvergenceError(f"MNA Newton did not converge for input vector {k} in "
                                       f"{self.max_iter} iterations")
            V[k] = Vk[0]


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
        raise ConfigError("transfer_matrix needs linear cells (the model-cell read is nonlinear)")
    n = tile.n_inputs(direction)
    return TileSystem(tile, direction).solve(np.eye(n))
