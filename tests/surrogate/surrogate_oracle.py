"""A private, deliberately simple nodal solver of a crossbar tile (independent test oracle).

Same topology as :mod:`pyspice_rram.circuit.tile` (row periphery at column 0 through one wire
segment, column periphery below the last row through one segment); dense Newton iterations
on all ``2 R C`` node voltages, written separately from the circuit layer's MNA solver.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def solve(a, v, r_row, r_col, r_drv=0.0, r_sns=0.0, direction="forward", v_nl=None):
    """Sensed currents (A) for low-field conductances ``a`` (S), inputs ``v`` (V).

    ``v_nl=None``: linear cells ``I = a V``; else ``I = a V_nl sinh(V / V_nl)``. Needs
    ``r_row, r_col > 0``.
    """
    a = np.asarray(a, float)
    R, C = a.shape
    n = 2 * R * C
    rid = np.arange(R * C).reshape(R, C)
    cid = R * C + rid
    rows, cols, vals = [], [], []

    def add(p, q, g):
        rows.extend([p, q, p, q])
        cols.extend([p, q, q, p])
        vals.extend([g, g, -g, -g])

    per_row, per_col = (r_drv, r_sns) if direction == "forward" else (r_sns, r_drv)
    diag = np.zeros(n)
    for i in range(R):
        for j in range(1, C):
            add(rid[i, j - 1], rid[i, j], 1.0 / r_row)
        diag[rid[i, 0]] += 1.0 / (per_row + r_row)
    for j in range(C):
        for i in range(1, R):
            add(cid[i - 1, j], cid[i, j], 1.0 / r_col)
        diag[cid[R - 1, j]] += 1.0 / (per_col + r_col)
    Gw = (sp.csr_matrix((vals, (rows, cols)), shape=(n, n)) + sp.diags(diag)).tocsc()
    P = sp.hstack([sp.eye(R * C), -sp.eye(R * C)]).tocsr()  # cell voltage = V(row) - V(col)
    af = a.ravel()
    out = []
    for vec in np.atleast_2d(v):
        b = np.zeros(n)
        if direction == "forward":
            b[rid[:, 0]] = vec / (per_row + r_row)
        else:
            b[cid[R - 1, :]] = vec / (per_col + r_col)
        x = np.zeros(n)
        for _ in range(50):
            vc = P @ x
            if v_nl is None:
                ic, gd = af * vc, af
            else:
                ic, gd = af * v_nl * np.sinh(vc / v_nl), af * np.cosh(vc / v_nl)
            F = Gw @ x + P.T @ ic - b
            J = (Gw + P.T @ sp.diags(gd) @ P).tocsc()
            dx = spla.spsolve(J, -F)
            x += dx
            if np.max(np.abs(dx)) < 1e-13:
                break
        vc = P @ x
        ic = (af * vc if v_nl is None else af * v_nl * np.sinh(vc / v_nl)).reshape(R, C)
        out.append(ic.sum(0) if direction == "forward" else -ic.sum(1))
    return np.array(out)
