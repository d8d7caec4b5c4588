"""Vectorised NumPy form of the Mo/TiOx compact model.

The equations are those of :mod:`pyspice_rram.device.card`; the Verilog-A module
(``netlists/veriloga/motiox.va``) and the ngspice subcircuits
(:func:`pyspice_rram.device.ngspice.cell_library`) implement the same expressions, and the
tests check that all three agree.

Every function broadcasts over NumPy arrays. Voltages in V, areas in m², times in s,
currents in A, conductances in S, rates in s^-1.
"""

from __future__ import annotations

import numpy as np

from .card import RATE_REF, ModelCard

ArrayLike = np.ndarray | float


def conductance_density(x: ArrayLike, card: ModelCard) -> np.ndarray:
    """Low-field conductance per area (S/m²): ``g(x) = g_min + (g_max - g_min) clip(x, 0, 1)``."""
    x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
    return card.g_min_density + (card.g_max_density - card.g_min_density) * x


def cell_current(v: ArrayLike, x: ArrayLike, area: ArrayLike, card: ModelCard) -> np.ndarray:
    """Read current (A): ``I = A g(x) V_nl sinh(V / V_nl)``."""
    v = np.asarray(v, dtype=float)
    return np.asarray(area) * conductance_density(x, card) * card.v_nl * np.sinh(v / card.v_nl)


def cell_didv(v: ArrayLike, x: ArrayLike, area: ArrayLike, card: ModelCard) -> np.ndarray:
    """Differential conductance (S): ``dI/dV = A g(x) cosh(V / V_nl)``."""
    v = np.asarray(v, dtype=float)
    return np.asarray(area) * conductance_density(x, card) * np.cosh(v / card.v_nl)


def read_conductance(x: ArrayLike, area: ArrayLike, card: ModelCard,
                     v_read: float | None = None) -> np.ndarray:
    """Chord conductance ``I(V_read) / V_read`` (S) seen by a read at ``v_read`` (V)."""
    v_read = card.scheme.v_read if v_read is None else v_read
    return cell_current(v_read, x, area, card) / v_read


def state_from_conductance(g: ArrayLike, area: ArrayLike, card: ModelCard,
                           v_read: float | None = None) -> np.ndarray:
    """Inverse of :func:`read_conductance`: the state x (unclipped) of a read conductance."""
    v_read = card.scheme.v_read if v_read is None else v_read
    gd = np.asarray(g, dtype=float) * v_read / (np.asarray(area) * card.v_nl
                                                 * np.sinh(v_read / card.v_nl))
    return (gd - card.g_min_density) / (card.g_max_density - card.g_min_density)


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


def state_rate(v: ArrayLike, x: ArrayLike, card: ModelCard, kappa: ArrayLike = 1.0) -> np.ndarray:
    """State velocity dx/dt (s^-1) of the model card's ODE (see :mod:`.card`)."""
    x = np.asarray(x, dtype=float)
    up = rate_potentiation(v, card) * (1.0 - card.c_p * x) * window(1.0 - x, card.eps_bound)
    dn = rate_depression(v, card) * (1.0 - card.c_d * (1.0 - x)) * window(x, card.eps_bound)
    return np.asarray(kappa) * (up - dn)


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


def advance(x: ArrayLike, v: ArrayLike, dt: ArrayLike, card: ModelCard,
            kappa: ArrayLike = 1.0, v_p: ArrayLike | None = None,
            v_d: ArrayLike | None = None) -> np.ndarray:
    """State after holding a constant voltage ``v`` (V) for ``dt`` (s), solved exactly.

    For V > 0 only potentiation acts and for V < 0 only depression (the rates are exactly
    zero on the other side), so each step is a closed-form solution of the ODE.
    ``kappa`` scales the rate (cycle-to-cycle noise hook); ``v_p``/``v_d`` override the card
    per device (device-to-device spread).
    """
    x, v, dt, kappa = np.broadcast_arrays(np.asarray(x, float), np.asarray(v, float),
                                          np.asarray(dt, float), np.asarray(kappa, float))
    kp = kappa * rate_potentiation(v, card, v_p)
    kd = kappa * rate_depression(v, card, v_d)
    x_up = 1.0 - _advance_towards_bound(1.0 - x, kp, card.c_p, dt, card.eps_bound)
    x_dn = _advance_towards_bound(x, kd, card.c_d, dt, card.eps_bound)
    out = np.where(v > 0, x_up, np.where(v < 0, x_dn, x))
    return np.clip(out, 0.0, 1.0)
