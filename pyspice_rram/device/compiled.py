"""Numba-compiled scalar form of the exact constant-voltage advance (every model family).

:func:`pyspice_rram.device.model.advance` is the reference (NumPy, broadcasting); it costs
~100 µs of fixed array overhead per call, which dominates programs of many small steps (the
calibration's residual evaluations: one call per voltage step or pulse). The kernels here
evaluate the same expressions one element at a time (same order, except where noted:
round-off only) and loop over the steps of whole measurement programs in compiled code.
``tests/device/test_device_kernels.py`` checks that they agree with the NumPy form to 1e-12.

The family of a card (:mod:`.card`) reaches the kernels as integer codes (index into
:data:`~.card.READ_MODELS`, :data:`~.card.DYNAMICS`, :data:`~.card.G_MAPS`) together with the
numbers its equations need, all from :func:`card_args`. Scalar forms of
:mod:`.model`: the conductance map, ``iv_shape`` and its inverse, the junction voltage with
series resistance (the same safeguarded Newton iteration as ``model._solve_monotone``, one
element at a time), the compliance limit, and both exact advances (threshold and
soft-bounds power law).

NaN handling follows NumPy's ``maximum``/``minimum``/``clip`` (NaN propagates).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .card import DYNAMICS, G_MAPS, RATE_REF, READ_MODELS, THERMAL_VOLTAGE, ModelCard

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


# ------------------------------------------------------------------- model families
#: Integer codes of the family forms (index into the card's tuples of names).
SINH, SCHOTTKY, LINEAR_READ = (READ_MODELS.index(n) for n in ("sinh", "schottky", "linear"))
THRESHOLD, SOFT_BOUNDS = (DYNAMICS.index(n) for n in ("threshold", "soft_bounds"))
LINEAR_MAP, LOG_MAP = (G_MAPS.index(n) for n in ("linear", "log"))

#: Names of the values :func:`card_args` returns, in order.
CARD_ARGS = ("read", "dyn", "gmap", "g_min", "g_max", "v_nl", "v0_p", "v0_d", "c_p", "c_d",
             "eps", "gamma_p", "gamma_d", "v_f", "v_r", "c_s", "r_series", "log_ratio")


def card_args(card: ModelCard) -> tuple:
    """The card as the program kernels take it (positional, see :data:`CARD_ARGS`).

    Family codes ``read``, ``dyn``, ``gmap``; the densities; ``v_nl``; the kinetics; the
    threshold coefficients ``c_p``, ``c_d``, ``eps``; the soft-bounds exponents; the
    Schottky voltages ``v_f = n_f V_T``, ``v_r = n_r V_T`` and ``c_s = v_f v_r / (v_f + v_r)``
    (as :func:`pyspice_rram.device.model._schottky_voltages`); ``r_series``; and
    ``log_ratio = ln(g_max / g_min)`` of the log map.
    """
    vf, vr = card.n_f * THERMAL_VOLTAGE, card.n_r * THERMAL_VOLTAGE
    return (READ_MODELS.index(card.read_model), DYNAMICS.index(card.dynamics),
            G_MAPS.index(card.g_map), card.g_min_density, card.g_max_density, card.v_nl,
            card.v0_p, card.v0_d, card.c_p, card.c_d, card.eps_bound, card.gamma_p,
            card.gamma_d, vf, vr, vf * vr / (vf + vr), card.r_series,
            math.log(card.g_max_density / card.g_min_density))


@njit(**_JIT)
def _density(x, gmap, g_min, g_max, log_ratio):
    """Scalar :func:`pyspice_rram.device.model.conductance_density` (``x`` clipped)."""
    xc = _min(_max(x, 0.0), 1.0)
    if gmap == LOG_MAP:
        return g_min * math.exp(xc * log_ratio)
    return g_min + (g_max - g_min) * xc


@njit(**_JIT)
def _iv_shape(vj, read, v_nl, v_f, v_r, c_s):
    """Scalar :func:`pyspice_rram.device.model.iv_shape`."""
    if read == SINH:
        return v_nl * math.sinh(vj / v_nl)
    if read == SCHOTTKY:
        return c_s * (math.exp(vj / v_f) - math.exp(-vj / v_r))
    return vj


@njit(**_JIT)
def _iv_slope(vj, read, v_nl, v_f, v_r, c_s):
    """Scalar :func:`pyspice_rram.device.model.iv_shape_slope`."""
    if read == SINH:
        return math.cosh(vj / v_nl)
    if read == SCHOTTKY:
        return c_s * (math.exp(vj / v_f) / v_f + math.exp(-vj / v_r) / v_r)
    return 1.0


@njit(**_JIT)
def _solve(a, k, target, lo, hi, read, v_nl, v_f, v_r, c_s):
    """Root of the increasing ``a u + k iv_shape(u) = target`` in ``[lo, hi]``: the
    iteration of :func:`pyspice_rram.device.model._solve_monotone` for one element (Newton
    steps, bisection where a step leaves the bracket, at most 200 iterations).

    ``a = 0, k = 1``: the inverse of ``iv_shape``; ``a = 1, k = r_series A g``: the junction
    voltage (``0 u + 1 f = f`` and ``1 u = u`` exactly, so either is the reference's ``f``).
    """
    v = 0.5 * (lo + hi)
    for _ in range(200):
        r = a * v + k * _iv_shape(v, read, v_nl, v_f, v_r, c_s) - target
        if r > 0:
            hi = v
        if r <= 0:
            lo = v
        vn = v - r / (a + k * _iv_slope(v, read, v_nl, v_f, v_r, c_s))
        if not math.isfinite(vn) or vn <= lo or vn >= hi:
            vn = 0.5 * (lo + hi)
        done = abs(vn - v) <= 1e-15 * max(abs(v), 1e-12)
        v = vn
        if done or hi - lo <= 1e-15 * max(abs(v), 1e-12):
            break
    return v


@njit(**_JIT)
def _iv_inverse(s, read, v_nl, v_f, v_r, c_s):
    """Scalar :func:`pyspice_rram.device.model.iv_shape_inverse`."""
    if read == SINH:
        return v_nl * math.asinh(s / v_nl)
    if read != SCHOTTKY:
        return s
    hi = v_f * math.log1p(abs(s) / c_s) if s > 0 else 0.0
    lo = -v_r * math.log1p(abs(s) / c_s) if s < 0 else 0.0
    return _solve(0.0, 1.0, s, lo, hi, read, v_nl, v_f, v_r, c_s)


@njit(**_JIT)
def _junction(v, area, gd, read, v_nl, v_f, v_r, c_s, r_series):
    """Scalar :func:`pyspice_rram.device.model.junction_voltage` of a cell of ``area`` (m²)
    and conductance density ``gd`` (S/m²)."""
    if r_series <= 0:
        return v
    return _solve(1.0, r_series * area * gd, v, _min(v, 0.0), _max(v, 0.0), read, v_nl, v_f,
                  v_r, c_s)


@njit(**_JIT)
def _power_law(u0, k, gamma, t):
    """Scalar :func:`pyspice_rram.device.model._advance_power_law`: exact solution of
    ``du/dt = -k u^gamma`` (NaN and +inf results of the general form count as 0, as the
    reference's ``nan_to_num``; 0 for ``u0`` <= 0 or NaN)."""
    u0 = _max(u0, 0.0)
    if abs(gamma - 1.0) < 1e-9:
        return u0 * math.exp(-k * t)
    if not u0 > 0:
        return 0.0
    e = 1.0 - gamma
    w = _max(u0**e - e * k * t, 0.0)
    if not w > 0:  # NaN, or 0^(1/e) = 0 (e > 0) or +inf (e < 0): 0 either way
        return 0.0
    out = w ** (1.0 / e)
    if out != out or out == math.inf:
        return 0.0
    return out


@njit(**_JIT)
def _advance_dyn(x, v, dt, kappa, v_p, v_d, v0_p, v0_d, dyn, a_p, a_d, eps):
    """Scalar :func:`pyspice_rram.device.model.advance` of either dynamics (``a_p``, ``a_d``:
    ``c_p``, ``c_d`` for threshold, ``gamma_p``, ``gamma_d`` for soft bounds)."""
    if dyn == THRESHOLD:
        return advance_one(x, v, dt, kappa, v_p, v_d, v0_p, v0_d, a_p, a_d, eps)
    if v > 0:
        out = 1.0 - _power_law(1.0 - x, kappa * _rate(v, v_p, v_d, v0_p, v0_d), a_p, dt)
    elif v < 0:
        out = _power_law(x, kappa * _rate(v, v_p, v_d, v0_p, v0_d), a_d, dt)
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
def advance_flat(x, v, dt, kappa, v_p, v_d, v0_p, v0_d, dyn, a_p, a_d, eps):
    """:func:`_advance_dyn` over 1-D arrays of equal length."""
    out = np.empty(x.size)
    for i in range(x.size):
        out[i] = _advance_dyn(x[i], v[i], dt[i], kappa[i], v_p[i], v_d[i], v0_p, v0_d, dyn,
                              a_p, a_d, eps)
    return out


def advance(x, v, dt, card: ModelCard, kappa=1.0, v_p=None, v_d=None) -> np.ndarray:
    """Drop-in for :func:`pyspice_rram.device.model.advance` (same broadcasting), compiled."""
    vp = card.v_p if v_p is None else v_p
    vd = card.v_d if v_d is None else v_d
    arrs = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (x, v, dt, kappa, vp, vd)))
    flat = [np.ascontiguousarray(a).ravel() for a in arrs]
    soft = card.dynamics == "soft_bounds"
    out = advance_flat(*flat, card.v0_p, card.v0_d, DYNAMICS.index(card.dynamics),
                       card.gamma_p if soft else card.c_p, card.gamma_d if soft else card.c_d,
                       card.eps_bound)
    return out.reshape(arrs[0].shape)


# --------------------------------------------------------------- programs of steps
#: Sequences advanced together (interleaved) by the program kernels: the steps of one
#: sequence form a dependency chain, those of different sequences are independent.
BLOCK = 4


@njit(**_JIT)
def _program(v, dt, length, assimilate, x0, gs, area, icc, v_p, v_d, read, dyn, gmap, g_min,
             g_max, v_nl, v0_p, v0_d, c_p, c_d, eps, gamma_p, gamma_d, v_f, v_r, c_s, r_series,
             log_ratio, nodes, weights, conditional):
    """States (S, K+1) of a program of constant-voltage steps (card: :func:`card_args`).

    Every step: the drive voltage of :func:`pyspice_rram.calibration.program.drive_voltage`
    at the step's start state (the junction voltage when ``r_series`` > 0; under a
    compliance, clipped to the junction voltages that drive ``±I_cc``, for the sinh read
    ``V_nl asinh(I_cc / (s A g(x) V_nl))`` when below ``|V|``), then the exact advance of the
    card's dynamics, averaged over ``kappa = nodes[j]`` with ``weights[j]`` (``nodes =
    weights = [1]``: the plain advance, bit for bit).
    ``conditional=False``: free-running from ``x0``, padding holds the state.
    ``conditional=True``: one-step-ahead; step ``k`` starts from ``assimilate[s, k]`` where
    finite (``x0`` stands in for a NaN at k = 0), else from the previous prediction; 0 past
    each sequence's length.
    """
    S, K = v.shape
    x = np.zeros((S, K + 1)) if conditional else np.empty((S, K + 1))
    soft = dyn == SOFT_BOUNDS
    a_p = gamma_p if soft else c_p
    a_d = gamma_d if soft else c_d
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
                limited = math.isfinite(icc[s])
                if limited or r_series > 0:
                    a_eff = gs[s] * area[s]
                    gd = _density(xb, gmap, g_min, g_max, log_ratio)
                    vb = _junction(vb, a_eff, gd, read, v_nl, v_f, v_r, c_s, r_series)
                    if limited and read == SINH:
                        vmax = v_nl * math.asinh(icc[s] / (a_eff * gd * v_nl))
                        if abs(vb) > vmax:
                            vb = vmax if vb > 0 else -vmax
                    elif limited:
                        # clip(vb, vmin, vmax) with vmin <= 0 <= vmax: only one side can act
                        si = icc[s] / (a_eff * gd)
                        if vb > 0:
                            vb = _min(vb, _iv_inverse(si, read, v_nl, v_f, v_r, c_s))
                        elif vb < 0:
                            vb = _max(vb, _iv_inverse(-si, read, v_nl, v_f, v_r, c_s))
                if vb > 0:
                    sgn[b] = 1
                    u0[b] = 1.0 - xb
                    cc[b] = a_p
                    rate[b] = _rate(vb, v_p[s], v_d[s], v0_p, v0_d)
                elif vb < 0:
                    sgn[b] = -1
                    u0[b] = xb
                    cc[b] = a_d
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
                        if soft:
                            u = _power_law(u0[b], kap * rate[b], cc[b], dt[s0 + b, k])
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


def _check_card(card) -> None:
    if len(card) != len(CARD_ARGS):
        raise TypeError(f"the program kernels take card_args(card) ({len(CARD_ARGS)} values: "
                        f"{', '.join(CARD_ARGS)}), got {len(card)}")


def simulate_program(v, dt, length, x0, gs, area, icc, v_p, v_d, *card_and_quadrature):
    """Free-running states (S, K+1) from ``x0``.

    ``card_and_quadrature``: ``*card_args(card), nodes, weights``; ``nodes`` empty: kappa = 1.
    """
    *card, nodes, weights = card_and_quadrature
    _check_card(card)
    if nodes.size == 0:
        nodes, weights = _ONE, _ONE
    return _program(v, dt, length, np.empty((0, 0)), x0, gs, area, icc, v_p, v_d, *card, nodes,
                    weights, False)


def conditional_program(v, dt, length, assimilate, x0, gs, area, icc, v_p, v_d,
                        *card_quadrature_both):
    """One-step-ahead states ``xp`` (S, K+1) and, with ``both``, the assimilated trajectory
    (``assimilate`` where finite, else ``xp``; None otherwise).

    ``card_quadrature_both``: ``*card_args(card), nodes, weights, both``.
    """
    *card, nodes, weights, both = card_quadrature_both
    _check_card(card)
    if nodes.size == 0:
        nodes, weights = _ONE, _ONE
    xp = _program(v, dt, length, assimilate, x0, gs, area, icc, v_p, v_d, *card, nodes,
                  weights, True)
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


#: The scalar read-law kernels, public for other layers' compiled code (the circuit's
#: cell-space solver): ``scalar_iv_shape(vj, read, v_nl, v_f, v_r, c_s)`` (the read law's
#: current per low-field conductance at junction voltage ``vj``), ``scalar_iv_slope`` (its
#: derivative), ``scalar_junction`` (junction voltage with the series resistance).
scalar_iv_shape = _iv_shape
scalar_iv_slope = _iv_slope
scalar_junction = _junction
