"""NumPy form of the cell against analytic expectations and an independent ODE solver."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp
from scipy.stats import norm

from pyspice_rram.device.card import ModelCard, area_from_diameter
from pyspice_rram.device.model import (advance, cell_current, cell_didv, rate_depression,
                                       rate_potentiation, read_conductance,
                                       state_from_conductance, state_rate)
from pyspice_rram.device.pulses import (DevicePopulation, potentiation_depression_train,
                                        simulate_pulse_train)

CARD = ModelCard.reference()
AREAS = np.array([area_from_diameter(d) for d in (30e-9, 100e-9, 300e-9, 1e-6)])


def pulse_response(n, beta, n_states):
    """x(n) = (1 - exp(-beta n / N)) / (1 - exp(-beta)), the linear limit n / N at beta = 0."""
    n = np.asarray(n, float)
    if abs(beta) < 1e-12:
        return n / n_states
    return -np.expm1(-beta * n / n_states) / -math.expm1(-beta)


# --------------------------------------------------------------------- static parts
def test_read_iv_is_the_sinh_law_and_its_derivative():
    v = np.linspace(-3, 3, 121)
    x = np.linspace(0, 1, 121)[:, None]
    g = CARD.g_min_density + (CARD.g_max_density - CARD.g_min_density) * x
    expected = AREAS[1] * g * CARD.v_nl * np.sinh(v / CARD.v_nl)
    np.testing.assert_allclose(cell_current(v, x, AREAS[1], CARD), expected, rtol=1e-14, atol=0)
    h = 1e-6
    fd = (cell_current(v + h, x, AREAS[1], CARD) - cell_current(v - h, x, AREAS[1], CARD)) / (2 * h)
    np.testing.assert_allclose(cell_didv(v, x, AREAS[1], CARD), fd, rtol=1e-8)
    # read conductance and its inverse; states outside [0, 1] are clipped in g(x)
    xs = np.linspace(0, 1, 11)
    np.testing.assert_allclose(state_from_conductance(read_conductance(xs, AREAS[2], CARD),
                                                      AREAS[2], CARD), xs, atol=1e-13)
    assert cell_current(0.3, 1.5, 1e-12, CARD) == cell_current(0.3, 1.0, 1e-12, CARD)
    assert cell_current(0.3, -0.5, 1e-12, CARD) == cell_current(0.3, 0.0, 1e-12, CARD)


def test_rates_have_thresholds_and_no_drift_at_zero_bias():
    v = np.linspace(-3, 3, 601)
    rp, rd = rate_potentiation(v, CARD), rate_depression(v, CARD)
    assert np.all(rp[v <= 0] == 0) and np.all(rd[v >= 0] == 0)
    assert np.all(rp[v > 0] > 0) and np.all(rd[v < 0] > 0)
    # ~1 s^-1 at the threshold voltage (exactly 1 - exp(-V_p/V_0p))
    assert rate_potentiation(CARD.v_p, CARD) == pytest.approx(1 - math.exp(-CARD.v_p / CARD.v0_p))
    assert rate_depression(-CARD.v_d, CARD) == pytest.approx(1 - math.exp(-CARD.v_d / CARD.v0_d))
    x = np.linspace(-0.1, 1.1, 121)
    assert np.all(state_rate(0.0, x, CARD) == 0.0)
    # the soft window stops the state exactly at the bounds
    assert np.all(state_rate(v[v > 0], 1.0, CARD) == 0.0)
    assert np.all(state_rate(v[v < 0], 0.0, CARD) == 0.0)


# --------------------------------------------------------------------- dynamics
@pytest.mark.parametrize("beta", [-1.0, 0.0, 0.5, 2.0])
def test_potentiation_pulse_response_is_the_saturating_exponential(beta):
    card = CARD.replace(beta_p=beta)
    n_states = card.n_states()
    n = int(0.95 * n_states)  # stay out of the saturation window, where the formula is exact
    res = simulate_pulse_train(card, np.full(n, card.scheme.v_set), card.scheme.t_set, c2c=False)
    expected = pulse_response(np.arange(n + 1), beta, n_states)
    np.testing.assert_allclose(res.x[0], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("beta", [-0.5, 1.0, 3.0])
def test_depression_pulse_response_mirrors_potentiation(beta):
    card = CARD.replace(beta_d=beta)
    v, t = -1.6, 10e-6
    n_states = card.n_states(v, t, polarity="d")
    n = int(0.95 * n_states)
    res = simulate_pulse_train(card, np.full(n, v), t, x0=1.0, c2c=False)
    expected = 1.0 - pulse_response(np.arange(n + 1), beta, n_states)
    np.testing.assert_allclose(res.x[0], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("x0,v,dt", [(0.3, 1.8, 10e-6), (0.97, 1.8, 40e-6), (0.9995, 2.0, 1e-3),
                                     (0.6, -1.6, 1e-3), (0.01, -1.6, 2e-3), (0.8, -3.0, 10e-6),
                                     (1.0, 1.8, 1e-3), (0.0, -3.0, 1e-6), (0.4, 0.2, 1.0)])
def test_exact_advance_matches_a_numerical_ode_solution(x0, v, dt):
    """``advance`` (closed form, bulk + window) against LSODA on ``state_rate``."""
    card = CARD.replace(eps_bound=0.02)  # a wide window, so the window regime is exercised
    sol = solve_ivp(lambda t, y: state_rate(v, y, card), (0.0, dt), [x0], method="LSODA",
                    rtol=1e-11, atol=1e-14)
    assert sol.success
    assert advance(x0, v, dt, card) == pytest.approx(sol.y[0, -1], abs=1e-8)


def test_strong_reset_takes_any_state_to_zero_in_one_pulse():
    s = CARD.scheme
    x0 = np.array([1.0, 0.75, 0.5, 0.1, 0.01, 0.0])
    res = simulate_pulse_train(CARD, s.v_reset, s.t_reset, x0=x0, n_devices=x0.size, c2c=False)
    assert np.all(res.x[:, 1] < 1e-9)
    np.testing.assert_allclose(res.g[:, 1], read_conductance(0.0, CARD.area_ref, CARD), rtol=1e-8)
    # 30 cycles of 50 set pulses + 1 reset (Fig. 3E scheme) repeat identically without noise
    v, t = potentiation_depression_train(50, 1, 30, s.v_set, s.t_set, s.v_reset, s.t_reset)
    cyc = simulate_pulse_train(CARD, v, t, c2c=False).x[0, 1:].reshape(30, 51)
    np.testing.assert_allclose(cyc, np.broadcast_to(cyc[0], cyc.shape), atol=1e-12)
    np.testing.assert_allclose(cyc[0, :50], pulse_response(np.arange(1, 51), CARD.beta_p,
                                                           CARD.n_states()), atol=1e-12)


def test_areal_scaling_of_range_and_step_with_area_independent_states():
    s = CARD.scheme
    res = simulate_pulse_train(CARD, np.full(50, s.v_set), s.t_set, area=AREAS,
                               n_devices=AREAS.size, c2c=False)
    # the state trajectory does not depend on area ...
    np.testing.assert_array_equal(res.x, np.broadcast_to(res.x[0], res.x.shape))
    # ... so the conductance range and every step per pulse are proportional to area
    g_range = (read_conductance(1.0, AREAS, CARD) - read_conductance(0.0, AREAS, CARD))
    dg = np.diff(res.g, axis=1)
    np.testing.assert_allclose(g_range / AREAS, np.full(4, g_range[-1] / AREAS[-1]), rtol=1e-13)
    np.testing.assert_allclose(dg / AREAS[:, None], np.broadcast_to(dg[-1] / AREAS[-1], dg.shape),
                               rtol=1e-9)
    slope = np.polyfit(np.log(AREAS), np.log(dg.mean(axis=1)), 1)[0]
    assert slope == pytest.approx(1.0, abs=1e-9)
    # small synapse: 10x smaller area gives g = G / 10 at every pulse
    small = simulate_pulse_train(CARD, np.full(50, s.v_set), s.t_set, area=CARD.area_ref / 10,
                                 c2c=False)
    big = simulate_pulse_train(CARD, np.full(50, s.v_set), s.t_set, c2c=False)
    np.testing.assert_allclose(small.g, big.g / 10, rtol=1e-13)


def _expected_first_step_cv(card: ModelCard) -> float:
    """δ/μ of the first-pulse step from x = 0 for kappa ~ N(1, sigma) clipped at 0, by
    quadrature: Δx(κ) = (1 - exp(-c r t κ)) / c."""
    sig = card.c2c_sigma
    a = card.c_p * float(rate_potentiation(card.scheme.v_set, card)) * card.scheme.t_set
    step = lambda k: -math.expm1(-a * max(k, 0.0)) / card.c_p  # noqa: E731
    pdf = lambda k: norm.pdf(k, 1.0, sig)  # noqa: E731
    m1 = quad(lambda k: step(k) * pdf(k), 0.0, 1 + 12 * sig)[0]
    m2 = quad(lambda k: step(k) ** 2 * pdf(k), 0.0, 1 + 12 * sig)[0]
    return math.sqrt(m2 - m1 * m1) / m1


def test_cycle_to_cycle_variability_delta_over_mu():
    s = CARD.scheme
    n_dev = 20000
    res = simulate_pulse_train(CARD, np.full(50, s.v_set), s.t_set, n_devices=n_dev, rng=1)
    dg = np.diff(res.g, axis=1)
    cv = dg.std(axis=0) / dg.mean(axis=0)
    # first pulse (all devices start at x = 0): quadrature of the clipped-normal kappa;
    # sampling error of a std ratio ~ sigma / sqrt(2 n) = 0.0017
    assert cv[0] == pytest.approx(_expected_first_step_cv(CARD), abs=0.007)
    # the per-state δ/μ stays at the card's value along the train (Choi et al. Fig. 3E inset)
    assert cv[:45].mean() == pytest.approx(CARD.c2c_sigma, abs=0.015)
    # and is gone without noise
    quiet = simulate_pulse_train(CARD, np.full(5, s.v_set), s.t_set, n_devices=100, c2c=False)
    assert np.ptp(np.diff(quiet.g, axis=1), axis=0).max() == 0.0


def test_device_to_device_spread():
    n = 20000
    pop = DevicePopulation.sample(CARD, CARD.area_ref, n, rng=7)
    assert np.log(pop.g_scale).std() == pytest.approx(CARD.d2d_g_sigma, rel=0.03)
    assert pop.v_p.std() == pytest.approx(CARD.d2d_v_sigma, rel=0.03)
    assert pop.v_d.std() == pytest.approx(CARD.d2d_v_sigma, rel=0.03)
    assert pop.v_p.mean() == pytest.approx(CARD.v_p, abs=4 * CARD.d2d_v_sigma / math.sqrt(n))
    s = CARD.scheme
    k = 10
    res = simulate_pulse_train(CARD, np.full(k, s.v_set), s.t_set, devices=pop, c2c=False)
    # G_min of each device is its g_scale times the nominal value ...
    np.testing.assert_allclose(res.g[:, 0], pop.g_scale * CARD.g_min() * np.sinh(
        s.v_read / CARD.v_nl) * CARD.v_nl / s.v_read, rtol=1e-13)
    # ... and each device follows the pulse response of its own V_p (its own N)
    r = np.exp((s.v_set - pop.v_p) / CARD.v0_p) - np.exp(-pop.v_p / CARD.v0_p)
    n_i = CARD.beta_p / (CARD.c_p * r * s.t_set)
    np.testing.assert_allclose(res.x[:, k], pulse_response(k, CARD.beta_p, n_i), atol=1e-12)
