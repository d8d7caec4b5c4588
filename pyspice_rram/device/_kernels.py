"""Numba-compiled scalar form of the exact constant-voltage advance.

:func:`pyspice_rram.device.model.advance` is the reference (NumPy, broadcasting); it costs
~100 µs of fixed array overhead per call, which dominates programs of many small steps (the
calibration's residual evaluations: one call per voltage step or pulse). The kernels here
evaluate the same expressions one element at a time (same order, except where noted:
round-off only) and loop over the steps of whole measurement programs in compiled code.
``tests/device/test_device_kernels.py`` checks that they agree with the NumPy form to 1e-12.

NaN handling follows NumPy's ``maximum``/``minimum``/``clip`` (NaN propagates).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .card import RATE_REF, ModelCard

_JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(**_JIT)
def _max(a, b):
    """``np.maximum`` of two scalars (NaN propagates)."""
    if a != a:
        return a
    if b != b:
        return b
    return a if a >= b else b


@njit(**_JIT)
def _min(a, b):
    """``np.minimum`` of two scalars (NaN propagates)."""
    if a != a:
        return a
    if b != b:
        return b
    return a if a <= b else b


@njit(**_JIT)
def _phi(z):
    """``(1 - exp(-z)) / z``, continuous at z = 0."""
    if abs(z) < 1e-8:
        return 1.0 - z / 2.0
    return -math.expm1(-z) / z


@njit(**_JIT)
def _log1p_ratio(y):
    """``log1p(y) / y``, continuous at y = 0."""
    if abs(y) < 1e-8:
        return 1.0 - y / 2.0
    return math.log1p(y) / y


@njit(**_JIT)
def _rate(v, v_p, v_d, v0_p, v0_d):
    """``r_p(V)`` for V > 0, ``r_d(V)`` otherwise (s^-1)."""
    if v > 0:
        r = math.exp((v - v_p) / v0_p) - math.exp(-v_p / v0_p)
    else:
        r = math.exp((-v - v_d) / v0_d) - math.exp(-v_d / v0_d)
    return RATE_REF * _max(r, 0.0)


@njit(**_JIT)
def _towards_bound(u0, k, c, t, eps):
    """Scalar :func:`pyspice_rram.device.model._advance_towards_bound`.

    ``u`` decreases monotonically in the bulk, so the step stays in the bulk (``t <= t*``)
    exactly when the bulk solution at ``t`` is still above ``eps``: that case (almost every
    step) needs neither ``t*`` nor the window solution, and takes ``exp(-z)`` as
    ``1 + expm1(-z)`` (round-off only). Otherwise ``t*`` and the rest follow the reference
    expressions.
    """
    a = 1.0 - c
    u0 = _max(u0, 0.0)
    if u0 > eps:
        z = k * c * t
        em1 = math.expm1(-z)  # exp(-z) = 1 + expm1(-z): one transcendental for both terms
        u_bulk = u0 * (1.0 + em1) - a * k * t * (1.0 - z / 2.0 if abs(z) < 1e-8 else -em1 / z)
        if u_bulk > eps:
            return u_bulk
        y = c * (u0 - eps) / (a + c * eps)
        t_star = (u0 - eps) * _log1p_ratio(y) / _max(a + c * eps, 1e-300) / _max(k, 1e-300)
    else:
        t_star = 0.0
    tb = _min(t, t_star)
    if u0 > eps and t <= t_star:
        return _max(u0 * math.exp(-k * c * tb) - a * k * tb * _phi(k * c * tb), 0.0)
    u1 = eps if u0 > eps else u0
    tw = _max(t - t_star, 0.0)
    s = a * k * tw / eps
    em = math.exp(-s)
    u_win = a * u1 * em / (a + c * u1 * (-math.expm1(-s)))
    return _max(u_win, 0.0)


@njit(**_JIT)
def advance_one(x, v, dt, kappa, v_p, v_d, v0_p, v0_d, c_p, c_d, eps):
    """Scalar :func:`pyspice_rram.device.model.advance` (state after ``v`` held for ``dt``)."""
    if v > 0:
        out = 1.0 - _towards_bound(1.0 - x, kappa * _rate(v, v_p, v_d, v0_p, v0_d), c_p, dt, eps)
    elif v < 0:
        out = _towards_bound(x, kappa * _rate(v, v_p, v_d, v0_p, v0_d), c_d, dt, eps)
    else:
        out = x
    return _min(_max(out, 0.0), 1.0)


@njit(**_JIT)
def advance_mean(x, v, dt, nodes, weights, v_p, v_d, v0_p, v0_d, c_p, c_d, eps):
    """``sum_j weights[j] advance_one(..., kappa=nodes[j], ...)`` (the rate computed once)."""
    acc = 0.0
    if v > 0 or v < 0:
        rate = _rate(v, v_p, v_d, v0_p, v0_d)
        c = c_p if v > 0 else c_d
        u0 = 1.0 - x if v > 0 else x
        for j in range(nodes.size):
            u = _towards_bound(u0, nodes[j] * rate, c, dt, eps)
            out = 1.0 - u if v > 0 else u
            acc += _min(_max(out, 0.0), 1.0) * weights[j]
    else:
        xc = _min(_max(x, 0.0), 1.0)
        for j in range(nodes.size):
            acc += xc * weights[j]
    return acc


@njit(**_JIT)
def advance_flat(x, v, dt, kappa, v_p, v_d, v0_p, v0_d, c_p, c_d, eps):
    """:func:`advance_one` over 1-D arrays of equal length."""
    out = np.empty(x.size)
    for i in range(x.size):
        out[i] = advance_one(x[i], v[i], dt[i], kappa[i], v_p[i], v_d[i], v0_p, v0_d, c_p,
                             c_d, eps)
    return out


def advance(x, v, dt, card: ModelCard, kappa=1.0, v_p=None, v_d=None) -> np.ndarray:
    """Drop-in for :func:`pyspice_rram.device.model.advance` (same broadcasting), compiled."""
    vp = card.v_p if v_p is None else v_p
    vd = card.v_d if v_d is None else v_d
    arrs = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (x, v, dt, kappa, vp, vd)))
    flat = [np.ascontiguousarray(a).ravel() for a in arrs]
    out = advance_flat(*flat, card.v0_p, card.v0_d, card.c_p, card.c_d, card.eps_bound)
    return out.reshape(arrs[0].shape)


# --------------------------------------------------------------- programs of steps
#: Sequences advanced together (interleaved) by the program kernels: the steps of one
#: sequence form a dependency chain, those of different sequences are independent.
BLOCK = 4


@njit(**_JIT)
def _program(v, dt, length, assimilate, x0, gs, area, icc, v_p, v_d, g_min, g_max, v_nl,
             v0_p, v0_d, c_p, c_d, eps, nodes, weights, conditional):
    """States (S, K+1) of a program of constant-voltage steps.

    Every step: the compliance limit (``V_cell = V_nl asinh(I_cc / (s A g(x) V_nl))`` when
    below ``|V|``), then the exact advance, averaged over ``kappa = nodes[j]`` with
    ``weights[j]`` (``nodes = weights = [1]``: the plain advance, bit for bit).
    ``conditional=False``: free-running from ``x0``, padding holds the state.
    ``conditional=True``: one-step-ahead; step ``k`` starts from ``assimilate[s, k]`` where
    finite (``x0`` stands in for a NaN at k = 0), else from the previous prediction; 0 past
    each sequence's length.
    """
    S, K = v.shape
    x = np.zeros((S, K + 1)) if conditional else np.empty((S, K + 1))
    B = BLOCK
    xs = np.empty(B)
    u0 = np.empty(B)
    rate = np.empty(B)
    cc = np.empty(B)
    sgn = np.empty(B, np.int64)
    acc = np.empty(B)
    for s0 in range(0, S, B):
        nb = min(B, S - s0)
        kmax = 0
        for b in range(nb):
            s = s0 + b
            a0 = assimilate[s, 0] if conditional else np.nan
            x[s, 0] = a0 if math.isfinite(a0) else x0[s]
            kmax = max(kmax, length[s])
        for k in range(kmax):
            for b in range(nb):
                s = s0 + b
                if k >= length[s]:
                    sgn[b] = 2  # inactive
                    continue
                xb = x[s, k]
                if conditional and k > 0:
                    a = assimilate[s, k]
                    if math.isfinite(a):
                        xb = a
                xs[b] = xb
                vb = v[s, k]
                if math.isfinite(icc[s]):
                    xc = _min(_max(xb, 0.0), 1.0)
                    g = gs[s] * area[s] * (g_min + (g_max - g_min) * xc) * v_nl
                    vmax = v_nl * math.asinh(icc[s] / g)
                    if abs(vb) > vmax:
                        vb = vmax if vb > 0 else -vmax
                if vb > 0:
                    sgn[b] = 1
                    u0[b] = 1.0 - xb
                    cc[b] = c_p
                    rate[b] = _rate(vb, v_p[s], v_d[s], v0_p, v0_d)
                elif vb < 0:
                    sgn[b] = -1
                    u0[b] = xb
                    cc[b] = c_d
                    rate[b] = _rate(vb, v_p[s], v_d[s], v0_p, v0_d)
                else:
                    sgn[b] = 0
                acc[b] = 0.0
            for j in range(nodes.size):
                kap = nodes[j]
                wj = weights[j]
                for b in range(nb):
                    sb = sgn[b]
                    if sb == 2:
                        continue
                    if sb == 0:
                        out = xs[b]
                    else:
                        u = _towards_bound(u0[b], kap * rate[b], cc[b], dt[s0 + b, k], eps)
                        out = 1.0 - u if sb == 1 else u
                    acc[b] += _min(_max(out, 0.0), 1.0) * wj
            for b in range(nb):
                s = s0 + b
                if sgn[b] != 2:
                    x[s, k + 1] = acc[b]
                elif not conditional:
                    x[s, k + 1] = x[s, k]
        if not conditional:
            for b in range(nb):
                s = s0 + b
                for k in range(kmax, K):
                    x[s, k + 1] = x[s, k]
    return x


_ONE = np.ones(1)


def simulate_program(v, dt, length, x0, gs, area, icc, v_p, v_d, g_min, g_max, v_nl, v0_p,
                     v0_d, c_p, c_d, eps, nodes, weights):
    """Free-running states (S, K+1) from ``x0``; ``nodes`` empty: kappa = 1."""
    if nodes.size == 0:
        nodes, weights = _ONE, _ONE
    return _program(v, dt, length, np.empty((0, 0)), x0, gs, area, icc, v_p, v_d, g_min, g_max,
                    v_nl, v0_p, v0_d, c_p, c_d, eps, nodes, weights, False)


def conditional_program(v, dt, length, assimilate, x0, gs, area, icc, v_p, v_d, g_min, g_max,
                        v_nl, v0_p, v0_d, c_p, c_d, eps, nodes, weights, both):
    """One-step-ahead states ``xp`` (S, K+1) and, with ``both``, the assimilated trajectory
    (``assimilate`` where finite, else ``xp``; None otherwise)."""
    if nodes.size == 0:
        nodes, weights = _ONE, _ONE
    xp = _program(v, dt, length, assimilate, x0, gs, area, icc, v_p, v_d, g_min, g_max, v_nl,
                  v0_p, v0_d, c_p, c_d, eps, nodes, weights, True)
    return xp, (_assimilated(assimilate, xp) if both else None)


@njit(**_JIT)
def _assimilated(assimilate, xp):
    """``assimilate`` where finite (from k = 1 on), else ``xp``."""
    S, K1 = xp.shape
    out = np.empty((S, K1))
    for s in range(S):
        out[s, 0] = xp[s, 0]
        for k in range(1, K1):
            a = assimilate[s, k]
            out[s, k] = a if math.isfinite(a) else xp[s, k]
    return out
