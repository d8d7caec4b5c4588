"""Numba kernels of the nodal solver (:mod:`pyspice_rram.circuit.mna`).

* a simplicial up-looking sparse Cholesky ``C = L L^T`` (the algorithm of CSparse's
  ``cs_chol``) of a symmetric positive definite matrix given by its upper triangle in CSC
  form, split into a symbolic phase (elimination tree, column counts; once per sparsity
  pattern) and a numeric phase (once per matrix), with a triangular solve for a block of
  right-hand sides;
* the KCL residual, the Jacobian values and the sensed currents of a crossbar tile.

Block layout: one row per input vector, ``(K, n)`` C-ordered.
"""

from __future__ import annotations

import numpy as np
from numba import njit


# --------------------------------------------------------------------------- Cholesky
@njit(cache=True)
def etree(n, Cp, Ci):
    """Elimination tree of the matrix with upper-triangular CSC pattern ``(Cp, Ci)``."""
    parent = np.full(n, -1, np.int64)
    ancestor = np.full(n, -1, np.int64)
    for k in range(n):
        for p in range(Cp[k], Cp[k + 1]):
            i = Ci[p]
            while i != -1 and i < k:
                inext = ancestor[i]
                ancestor[i] = k
                if inext == -1:
                    parent[i] = k
                i = inext
    return parent


@njit(cache=True)
def _ereach(n, Cp, Ci, k, parent, s, w):
    """Pattern of row k of L in ``s[top:n]`` (topological order); ``w`` marks with k."""
    top = n
    w[k] = k
    for p in range(Cp[k], Cp[k + 1]):
        i = Ci[p]
        if i > k:
            continue
        ln = 0
        while w[i] != k:
            s[ln] = i
            ln += 1
            w[i] = k
            i = parent[i]
        while ln > 0:
            top -= 1
            ln -= 1
            s[top] = s[ln]
    return top


@njit(cache=True)
def chol_symbolic(n, Cp, Ci, parent):
    """Column pointers ``Lp`` (n + 1) of the Cholesky factor."""
    cnt = np.ones(n, np.int64)
    s = np.empty(n, np.int64)
    w = np.full(n, -1, np.int64)
    for k in range(n):
        top = _ereach(n, Cp, Ci, k, parent, s, w)
        for t in range(top, n):
            cnt[s[t]] += 1
    Lp = np.zeros(n + 1, np.int64)
    for j in range(n):
        Lp[j + 1] = Lp[j] + cnt[j]
    return Lp


@njit(cache=True)
def chol_numeric(n, Cp, Ci, Cx, parent, Lp, Li, Lx):
    """``L L^T = C`` into ``(Lp, Li, Lx)`` (diagonal first in each column). False when C is
    not (numerically) positive definite."""
    c = Lp[:-1].copy()
    x = np.zeros(n)
    s = np.empty(n, np.int64)
    w = np.full(n, -1, np.int64)
    for k in range(n):
        top = _ereach(n, Cp, Ci, k, parent, s, w)
        x[k] = 0.0
        for p in range(Cp[k], Cp[k + 1]):
            i = Ci[p]
            if i <= k:
                x[i] += Cx[p]
        d = x[k]
        x[k] = 0.0
        for t in range(top, n):
            i = s[t]
            lki = x[i] / Lx[Lp[i]]
            x[i] = 0.0
            for p in range(Lp[i] + 1, c[i]):
                x[Li[p]] -= Lx[p] * lki
            d -= lki * lki
            p = c[i]
            c[i] += 1
            Li[p] = k
            Lx[p] = lki
        if not d > 0.0:
            return False
        p = c[k]
        c[k] += 1
        Li[p] = k
        Lx[p] = np.sqrt(d)
    return True


@njit(cache=True)
def chol_solve(Lp, Li, Lx, perm, B):
    """Solve ``A X^T = B^T`` for ``A[perm][:, perm] = L L^T``; B is ``(K, n)``. All
    right-hand sides go through L together (innermost loop over the K vectors)."""
    K, n = B.shape
    Y = np.empty((n, K))
    for i in range(n):
        for k in range(K):
            Y[i, k] = B[k, perm[i]]
    yj = np.empty(K)
    for j in range(n):
        d = 1.0 / Lx[Lp[j]]
        for k in range(K):
            yj[k] = Y[j, k] * d
            Y[j, k] = yj[k]
        for p in range(Lp[j] + 1, Lp[j + 1]):
            i = Li[p]
            l = Lx[p]
            for k in range(K):
                Y[i, k] -= l * yj[k]
    for j in range(n - 1, -1, -1):
        for k in range(K):
            yj[k] = Y[j, k]
        for p in range(Lp[j] + 1, Lp[j + 1]):
            i = Li[p]
            l = Lx[p]
            for k in range(K):
                yj[k] -= l * Y[i, k]
        d = 1.0 / Lx[Lp[j]]
        for k in range(K):
            Y[j, k] = yj[k] * d
    X = np.empty((K, n))
    for i in range(n):
        for k in range(K):
            X[k, perm[i]] = Y[i, k]
    return X


# --------------------------------------------------------------------------- circuit
@njit(cache=True)
def stamp_values(base, pos_a, pos_b, pos_ab, g):
    """``base`` plus the conductances ``g`` between nodes a and b stamped at the value
    positions ``pos_a`` (a, a), ``pos_b`` (b, b), ``pos_ab`` (a, b) (-1: held node)."""
    out = base.copy()
    for c in range(g.shape[0]):
        gc = g[c]
        if pos_a[c] >= 0:
            out[pos_a[c]] += gc
        if pos_b[c] >= 0:
            out[pos_b[c]] += gc
        if pos_ab[c] >= 0:
            out[pos_ab[c]] -= gc
    return out


@njit(cache=True)
def kcl_residual(V, v, free, br_a, br_b, br_g, sh_node, sh_src, sh_g, cell_t, cell_b, Ic):
    """Current (A) leaving each free node, ``(K, n_free)``, for full node voltages
    ``V`` (K, n_nodes), sources ``v`` (K, n_in) and cell currents ``Ic`` (K, n_cells)."""
    K, nn = V.shape
    r = np.zeros(nn)
    out = np.empty((K, free.shape[0]))
    for k in range(K):
        r[:] = 0.0
        for e in range(br_a.shape[0]):
            a = br_a[e]
            b = br_b[e]
            i = br_g[e] * (V[k, a] - V[k, b])
            r[a] += i
            r[b] -= i
        for e in range(sh_node.shape[0]):
            m = sh_node[e]
            src = sh_src[e]
            vs = v[k, src] if src >= 0 else 0.0
            r[m] += sh_g[e] * (V[k, m] - vs)
        for c in range(cell_t.shape[0]):
            i = Ic[k, c]
            r[cell_t[c]] += i
            r[cell_b[c]] -= i
        for u in range(free.shape[0]):
            out[k, u] = r[free[u]]
    return out


@njit(cache=True)
def chord_update(Vf, dV, lo, hi):
    """``Vf <- clip(Vf - dV, lo, hi)`` per vector; returns ``max |dV|`` per vector."""
    K, n = Vf.shape
    step = np.zeros(K)
    for k in range(K):
        m = 0.0
        for u in range(n):
            d = dV[k, u]
            if abs(d) > m:
                m = abs(d)
            x = Vf[k, u] - d
            if x < lo[k]:
                x = lo[k]
            elif x > hi[k]:
                x = hi[k]
            Vf[k, u] = x
        step[k] = m
    return step


@njit(cache=True)
def sensed_currents(V, sense_node, sense_g, oc_cell, oc_out, oc_sign, Ic):
    """Current (A) into each virtual ground: ``g V`` through a finite periphery
    resistance, else the signed sum of the cell currents into the held line."""
    K = V.shape[0]
    n_out = sense_node.shape[0]
    out = np.zeros((K, n_out))
    for k in range(K):
        for j in range(n_out):
            if np.isfinite(sense_g[j]):
                out[k, j] = sense_g[j] * V[k, sense_node[j]]
        for e in range(oc_cell.shape[0]):
            out[k, oc_out[e]] += oc_sign[e] * Ic[k, oc_cell[e]]
    return out


@njit(cache=True)
def csc_upper(n, r, c):
    """Upper-triangular CSC structure ``(Cp, Ci)`` of the symmetric pattern with entries
    ``(r[e], c[e])`` (either triangle, duplicates merged; rows sorted in each column), and
    the value position of every entry."""
    m = r.shape[0]
    start = np.zeros(n + 1, np.int64)
    for e in range(m):
        start[max(r[e], c[e]) + 1] += 1
    for j in range(n):
        start[j + 1] += start[j]
    fill = start[:-1].copy()
    rows = np.empty(m, np.int64)
    ent = np.empty(m, np.int64)
    for e in range(m):
        j = max(r[e], c[e])
        q = fill[j]
        fill[j] += 1
        rows[q] = min(r[e], c[e])
        ent[q] = e
    Cp = np.zeros(n + 1, np.int64)
    Ci = np.empty(m, np.int64)
    pos = np.empty(m, np.int64)
    nz = 0
    for j in range(n):
        Cp[j] = nz
        s, t_end = start[j], start[j + 1]
        # insertion sort of the (few) entries of column j by row
        for a in range(s + 1, t_end):
            rv, ev = rows[a], ent[a]
            b = a - 1
            while b >= s and rows[b] > rv:
                rows[b + 1] = rows[b]
                ent[b + 1] = ent[b]
                b -= 1
            rows[b + 1] = rv
            ent[b + 1] = ev
        for a in range(s, t_end):
            if nz > Cp[j] and Ci[nz - 1] == rows[a]:
                pos[ent[a]] = nz - 1
            else:
                Ci[nz] = rows[a]
                pos[ent[a]] = nz
                nz += 1
    Cp[n] = nz
    return Cp, Ci[:nz].copy(), pos
