"""Vectorised NumPy form of the compact model (every family of :mod:`.card`).

The equations are those of :mod:`pyspice_rram.device.card`; the Verilog-A module
(``netlists/veriloga/motiox.va``) and the ngspice subcircuits
(:func:`pyspice_rram.device.ngspice.cell_library`) implement the same expressions, and the
tests check that all three agree.

Every function broadcasts over NumPy arrays. Voltages in V, areas in m², times in s,
currents in A, conductances in S, rates in s^-1.
"""

from __future__ import annotations

import math

import numpy as np

from .card import RATE_REF, THERMAL_VOLTAGE, ModelCard

ArrayLike = np.ndarray | float


def conductance_density(x: ArrayLike, card: ModelCard) -> np.ndarray:
    """Low-field conductance per area (S/m²) of the card's map, ``x`` clipped to [0, 1].

    linear: ``g(x) = g_min + (g_max - g_min) x``; log: ``g(x) = g_min (g_max / g_min)^x``.
    """
    x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
    if card.g_map == "log":
        return card.g_min_density * np.exp(x * math.log(card.g_max_density / card.g_min_density))
    return card.g_min_density + (card.g_max_density - card.g_min_density) * x


def state_from_density(gd: ArrayLike, card: ModelCard) -> np.ndarray:
    """Inverse of :func:`conductance_density` (unclipped; ``-inf`` for ``gd <= 0`` on a log map)."""
    gd = np.asarray(gd, dtype=float)
    if card.g_map == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log(np.where(gd > 0, gd, np.nan) / card.g_min_density) / math.log(
                card.g_max_density / card.g_min_density)
        return np.where(gd > 0, out, -np.inf)
    return (gd - card.g_min_density) / (card.g_max_density - card.g_min_density)


def _schottky_voltages(card: ModelCard) -> tuple[float, float, float]:
    vf, vr = card.n_f * THERMAL_VOLTAGE, card.n_r * THERMAL_VOLTAGE
    return vf, vr, vf * vr / (vf + vr)


def iv_shape(vj: ArrayLike, card: ModelCard) -> np.ndarray:
    """Junction current per low-field conductance (V): ``I_j = A g(x) iv_shape(V_j)``.

    sinh ``V_nl sinh(V/V_nl)``; schottky ``c (exp(V/v_f) - exp(-V/v_r))``, ``c = v_f v_r /
    (v_f + v_r)``; linear ``V``. Slope 1 at V = 0 in every form.
    """
    vj = np.asarray(vj, dtype=float)
    if card.read_model == "sinh":
        return card.v_nl * np.sinh(vj / card.v_nl)
    if card.read_model == "schottky":
        vf, vr, c = _schottky_voltages(card)
        with np.errstate(over="ignore"):
            return c * (np.exp(vj / vf) - np.exp(-vj / vr))
    return vj


def iv_shape_slope(vj: ArrayLike, card: ModelCard) -> np.ndarray:
    """Derivative of :func:`iv_shape` with respect to the junction voltage (1)."""
    vj = np.asarray(vj, dtype=float)
    if card.read_model == "sinh":
        return np.cosh(vj / card.v_nl)
    if card.read_model == "schottky":
        vf, vr, c = _schottky_voltages(card)
        with np.errstate(over="ignore"):
            return c * (np.exp(vj / vf) / vf + np.exp(-vj / vr) / vr)
    return np.ones_like(vj)


def _solve_monotone(f, df, target: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    iters: int = 200, start: np.ndarray | None = None) -> np.ndarray:
    """Root of the increasing ``f(v) = target`` in ``[lo, hi]``: Newton steps, bisection where
    a step leaves the bracket (vectorised, converges to round-off).

    ``f`` and ``df`` take ``(v, idx)``: the trial voltages of the still-active elements and
    their flat indices (so that per-element coefficients can be taken at ``idx``). Elements
    leave the iteration as they converge, so a few slow elements do not cost a full pass.
    ``start`` (inside the bracket) replaces the bracket's midpoint as the first iterate.
    """
    target = np.asarray(target, float)
    shape = np.broadcast_shapes(target.shape, np.shape(lo), np.shape(hi))
    t = np.broadcast_to(target, shape).ravel()
    lo = np.array(np.broadcast_to(lo, shape), float).ravel()
    hi = np.array(np.broadcast_to(hi, shape), float).ravel()
    out = 0.5 * (lo + hi)
    if start is not None:
        st = np.broadcast_to(np.asarray(start, float).reshape(shape), shape).ravel()
        out = np.where((st >= lo) & (st <= hi), st, out)
    idx = np.arange(out.size)
    v = out.copy()
    for _ in range(iters):
        if idx.size == 0:
            break
        r = f(v, idx) - t[idx]
        hi_a = np.where(r > 0, v, hi[idx])
        lo_a = np.where(r <= 0, v, lo[idx])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            vn = v - r / df(v, idx)
        scale = 1e-15 * np.maximum(np.abs(v), 1e-12)
        converged = np.abs(vn - v) <= scale          # a Newton step below round-off
        bad = ~converged & (~np.isfinite(vn) | (vn <= lo_a) | (vn >= hi_a))
        vn = np.where(bad, 0.5 * (lo_a + hi_a), vn)
        done = converged | (hi_a - lo_a <= scale)
        out[idx] = vn
        keep = ~done
        idx, v = idx[keep], vn[keep]
        lo[idx], hi[idx] = lo_a[keep], hi_a[keep]
    return out.reshape(shape)


def iv_shape_inverse(s: ArrayLike, card: ModelCard) -> np.ndarray:
    """Junction voltage ``V_j`` with ``iv_shape(V_j) = s`` (V); closed form for sinh/linear."""
    s = np.asarray(s, dtype=float)
    if card.read_model == "sinh":
        return card.v_nl * np.arcsinh(s / card.v_nl)
    if card.read_model == "linear":
        return s
    vf, vr, c = _schottky_voltages(card)
    # c(exp(v/vf) - 1) <= s for v in [0, vf ln(1 + s/c)]; mirrored for s < 0
    hi = np.where(s > 0, vf * np.log1p(np.abs(s) / c), 0.0)
    lo = np.where(s < 0, -vr * np.log1p(np.abs(s) / c), 0.0)
    return _solve_monotone(lambda v, i: iv_shape(v, card), lambda v, i: iv_shape_slope(v, card),
                           s, lo, hi)


def junction_current(vj: ArrayLike, x: ArrayLike, area: ArrayLike, card: ModelCard) -> np.ndarray:
    """Current (A) through the switching junction at junction voltage ``vj`` (V)."""
    return np.asarray(area) * conductance_density(x, card) * iv_shape(vj, card)


def junction_voltage(v: ArrayLike, x: ArrayLike, area: ArrayLike, card: ModelCard) -> np.ndarray:
    """Junction voltage (V) of a cell biased at terminal voltage ``v``: the root of
    ``V = V_j + r_series I_j(V_j)`` (``V_j = V`` when ``r_series`` = 0)."""
    v = np.asarray(v, dtype=float)
    if card.r_series <= 0:
        return v.copy() if v.ndim else v
    v, x, area = np.broadcast_arrays(v, np.asarray(x, float), np.asarray(area, float))
    k = (card.r_series * area * conductance_density(x, card)).ravel()
    # first iterate: the solution for the junction's small-signal slope at 0 V
    u0 = v.ravel() / (1.0 + k * float(iv_shape_slope(np.zeros(1), card)[0]))
    return _solve_monotone(lambda u, i: u + k[i] * iv_shape(u, card),
                           lambda u, i: 1.0 + k[i] * iv_shape_slope(u, card), v,
                           np.minimum(v, 0.0), np.maximum(v, 0.0), start=u0)


def cell_current(v: ArrayLike, x: ArrayLike, area: ArrayLike, card: ModelCard) -> np.ndarray:
    """Read current (A) at terminal voltage ``v`` (V): ``I = A g(x) iv_shape(V_j)``.

    Default family: ``I = A g(x) V_nl sinh(V / V_nl)``.
    """
    v = np.asarray(v, dtype=float)
    return junction_current(junction_voltage(v, x, area, card), x, area, card)


def cell_didv(v: ArrayLike, x: ArrayLike, area: ArrayLike, card: ModelCard) -> np.ndarray:
    """Differential conductance (S) at the terminals: ``1 / (r_series + 1 / (A g iv_shape'))``;
    default family ``dI/dV = A g(x) cosh(V / V_nl)``."""
    v = np.asarray(v, dtype=float)
    gj = np.asarray(area) * conductance_density(x, card) * iv_shape_slope(
        junction_voltage(v, x, area, card), card)
    if card.r_series <= 0:
        return gj
    return gj / (1.0 + card.r_series * gj)


def read_conductance(x: ArrayLike, area: ArrayLike, card: ModelCard,
                     v_read: float | None = None) -> np.ndarray:
    """Chord conductance ``I(V_read) / V_read`` (S) seen by a read at ``v_read`` (V)."""
    v_read = card.scheme.v_read if v_read is None else v_read
    return cell_current(v_read, x, area, card) / v_read


def state_from_conductance(g: ArrayLike, area: ArrayLike, card: ModelCard,
                           v_read: ArrayLike | None = None) -> np.ndarray:
    """Inverse of :func:`read_conductance`: the state x (unclipped) of a read conductance.

    ``I = G V_read``, ``V_j = V_read - r_series I``, ``g = I / (A iv_shape(V_j))``, then the
    inverse of the map (NaN where the read is impossible, e.g. ``V_j`` of the wrong sign).
    """
    v_read = card.scheme.v_read if v_read is None else v_read
    v_read = np.asarray(v_read, dtype=float)
    i = np.asarray(g, dtype=float) * v_read
    vj = v_read - card.r_series * i
    with np.errstate(divide="ignore", invalid="ignore"):
        gd = i / (np.asarray(area) * iv_shape(vj, card))
    if card.r_series > 0:
        gd = np.where(vj * v_read > 0, gd, np.nan)
    return state_from_density(gd, card)


def junction_voltage_at_current(i: ArrayLike, x: ArrayLike, area: ArrayLike,
                                card: ModelCard) -> np.ndarray:
    """Junction voltage (V) that drives current ``i`` (A) at state ``x`` (a compliance limit)."""
    s = np.asarray(i, dtype=float) / (np.asarray(area) * conductance_density(x, card))
    return iv_shape_inverse(s, card)


def rate_potentiation(v: ArrayLike, card: ModelCard, v_p: ArrayLike | None = None) -> np.ndarray:
    """``r_p(V) = R0 max(0, exp((V - V_p)/V_0p) - exp(-V_p/V_0p))`` in s^-1 (0 for V <= 0)."""
    v = np.asarray(v, dtype=float)
    vp = card.v_p if v_p is None else np.asarray(v_p, dtype=float)
    r = np.exp((v - vp) / card.v0_p) - np.exp(-vp / card.v0_p)
    return RATE_REF * np.maximum(r, 0.0)


def rate_depression(v: ArrayLike, card: ModelCard, v_d: ArrayLike | None = None) -> np.ndarray:
    """``r_d(V) = R0 max(0, exp((-V - V_d)/V_0d) - exp(-V_d/V_0d))`` in s^-1 (0 for V >= 0)."""
    v = np.asarray(v, dtype=float)
    vd = card.v_d if v_d is None else np.asarray(v_d, dtype=float)
    r = np.exp((-v - vd) / card.v0_d) - np.exp(-vd / card.v0_d)
    return RATE_REF * np.maximum(r, 0.0)


def window(u: ArrayLike, eps: float) -> np.ndarray:
    """Soft bound ``w(u) = min(1, max(0, u / eps))``: 1 in the bulk, ramps to 0 at the bound."""
    return np.clip(np.asarray(u, dtype=float) / eps, 0.0, 1.0)


def state_factors(x: ArrayLike, card: ModelCard) -> tuple[np.ndarray, np.ndarray]:
    """State dependence ``(f_p(x), f_d(x))`` of the potentiation and depression rates.

    threshold: ``(1 - c_p x) w(1 - x)`` and ``(1 - c_d (1 - x)) w(x)``;
    soft_bounds: ``max(0, 1 - x)^gamma_p`` and ``max(0, x)^gamma_d``.
    """
    x = np.asarray(x, dtype=float)
    if card.dynamics == "soft_bounds":
        return (np.maximum(1.0 - x, 0.0) ** card.gamma_p, np.maximum(x, 0.0) ** card.gamma_d)
    return ((1.0 - card.c_p * x) * window(1.0 - x, card.eps_bound),
            (1.0 - card.c_d * (1.0 - x)) * window(x, card.eps_bound))


def state_rate(v: ArrayLike, x: ArrayLike, card: ModelCard, kappa: ArrayLike = 1.0) -> np.ndarray:
    """State velocity dx/dt (s^-1) of the model card's ODE (see :mod:`.card`).

    ``v`` is the junction voltage (the cell voltage when ``r_series`` = 0):
    ``dx/dt = kappa [r_p(V) f_p(x) - r_d(V) f_d(x)]``.
    """
    fp, fd = state_factors(x, card)
    return np.asarray(kappa) * (rate_potentiation(v, card) * fp - rate_depression(v, card) * fd)


# ----------------------------------------------------------------- exact advance
def _phi(z: np.ndarray) -> np.ndarray:
    """``(1 - exp(-z)) / z``, continuous at z = 0."""
    z = np.asarray(z, dtype=float)
    small = np.abs(z) < 1e-8
    zs = np.where(small, 1.0, z)
    return np.where(small, 1.0 - z / 2.0, -np.expm1(-zs) / zs)


def _log1p_ratio(y: np.ndarray) -> np.ndarray:
    """``log1p(y) / y``, continuous at y = 0."""
    y = np.asarray(y, dtype=float)
    small = np.abs(y) < 1e-8
    ys = np.where(small, 1.0, y)
    return np.where(small, 1.0 - y / 2.0, np.log1p(ys) / ys)


def _advance_towards_bound(u0: np.ndarray, k: np.ndarray, c: float, t: np.ndarray,
                           eps: float) -> np.ndarray:
    """Exact solution of ``du/dt = -k (1 - c + c u) w(u)`` over time t, for ``u = distance to
    the bound`` (u = 1 - x for potentiation, u = x for depression), k >= 0.

    Bulk (u > eps): linear ODE, ``u(t) = u0 e^{-kct} - a k t phi(kct)`` with ``a = 1 - c``.
    Window (u <= eps): ``du/dt = -(k/eps)(a u + c u^2)``, a Bernoulli equation with
    ``u(t) = a u1 e^{-s} / (a + c u1 (1 - e^{-s}))``, ``s = a k t / eps``.
    """
    a = 1.0 - c
    u0 = np.clip(u0, 0.0, None)
    # time spent in the bulk before reaching u = eps
    y = c * (u0 - eps) / (a + c * eps)
    t_star = np.where(u0 > eps, (u0 - eps) * _log1p_ratio(y) / np.maximum(a + c * eps, 1e-300)
                      / np.maximum(k, 1e-300), 0.0)
    tb = np.minimum(t, t_star)
    u_bulk = u0 * np.exp(-k * c * tb) - a * k * tb * _phi(k * c * tb)
    u1 = np.where(u0 > eps, np.where(t <= t_star, u_bulk, eps), u0)
    tw = np.maximum(t - t_star, 0.0)
    s = a * k * tw / eps
    em = np.exp(-s)
    u_win = a * u1 * em / (a + c * u1 * (-np.expm1(-s)))
    out = np.where((u0 > eps) & (t <= t_star), u_bulk, u_win)
    return np.clip(out, 0.0, None)


def _advance_power_law(u0: np.ndarray, k: np.ndarray, gamma: float, t: np.ndarray) -> np.ndarray:
    """Exact solution of ``du/dt = -k u^gamma`` (u = distance to the bound, k >= 0):
    ``u0 exp(-k t)`` for gamma = 1, else ``max(0, u0^(1-g) - (1-g) k t)^(1/(1-g))``
    (reaches the bound in finite time for gamma < 1, never for gamma > 1)."""
    u0 = np.clip(u0, 0.0, None)
    if abs(gamma - 1.0) < 1e-9:
        return u0 * np.exp(-k * t)
    e = 1.0 - gamma
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        w = u0**e - e * k * t
        out = np.maximum(w, 0.0) ** (1.0 / e)
    return np.where(u0 > 0, np.nan_to_num(out, nan=0.0, posinf=0.0), 0.0)


def advance(x: ArrayLike, v: ArrayLike, dt: ArrayLike, card: ModelCard,
            kappa: ArrayLike = 1.0, v_p: ArrayLike | None = None,
            v_d: ArrayLike | None = None) -> np.ndarray:
    """State after holding a constant voltage ``v`` (V) for ``dt`` (s), solved exactly.

    For V > 0 only potentiation acts and for V < 0 only depression (the rates are exactly
    zero on the other side), so each step is a closed-form solution of the ODE.
    ``kappa`` scales the rate (cycle-to-cycle noise hook); ``v_p``/``v_d`` override the card
    per device (device-to-device spread). ``v`` is the junction voltage: with ``r_series`` >
    0 the caller passes :func:`junction_voltage` (frozen over the step).
    """
    x, v, dt, kappa = np.broadcast_arrays(np.asarray(x, float), np.asarray(v, float),
                                          np.asarray(dt, float), np.asarray(kappa, float))
    kp = kappa * rate_potentiation(v, card, v_p)
    kd = kappa * rate_depression(v, card, v_d)
    if card.dynamics == "soft_bounds":
        x_up = 1.0 - _advance_power_law(1.0 - x, kp, card.gamma_p, dt)
        x_dn = _advance_power_law(x, kd, card.gamma_d, dt)
        return np.clip(np.where(v > 0, x_up, np.where(v < 0, x_dn, x)), 0.0, 1.0)
    x_up = 1.0 - _advance_towards_bound(1.0 - x, kp, card.c_p, dt, card.eps_bound)
    x_dn = _advance_towards_bound(x, kd, card.c_d, dt, card.eps_bound)
    out = np.where(v > 0, x_up, np.where(v < 0, x_dn, x))
    return np.clip(out, 0.0, 1.0)
