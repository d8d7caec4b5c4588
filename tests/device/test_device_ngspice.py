"""ngspice form: DC operating points and a pulse-train transient against the NumPy form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from pyspice_rram.device import crosscheck
from pyspice_rram.device.card import ModelCard, area_from_diameter
from pyspice_rram.device.model import (advance, cell_current, rate_depression,
                                       rate_potentiation, state_rate)
from pyspice_rram.device.ngspice import cell_library
from pyspice_rram.device.pulses import simulate_pulse_train

pytestmark = pytest.mark.skipif(crosscheck.ngspice_executable() is None,
                                reason="ngspice not installed (run the set-up script)")

CARD = ModelCard.reference()
AREAS = [area_from_diameter(d) for d in (30e-9, 100e-9, 300e-9, 1e-6)]
V_GRID = np.linspace(-3.0, 3.0, 241)  # 25 mV steps, 0 V included
X_GRID = np.unique(np.r_[np.linspace(0.0, 1.0, 51), -0.02, 1e-4, 5e-4, 1e-3, 2e-3,
                         0.998, 0.999, 0.9995, 0.9999, 1.02])
RTOL = 1e-6


def rel_err(a, b, floor=0.0):
    a, b = np.asarray(a), np.asarray(b)
    den = np.maximum(np.abs(b), floor)
    err = np.where(a == b, 0.0, np.abs(a - b) / np.where(den > 0, den, 1.0))
    return float(err.max())


@pytest.fixture(scope="module")
def dc_grid():
    return crosscheck.ngspice_dc_grid(CARD, V_GRID, X_GRID, AREAS,
                                      read_states=[0.0, 0.25, 0.5, 0.75, 1.0])


def test_dc_grid_covers_the_requested_points(dc_grid):
    assert dc_grid.v.size == V_GRID.size * X_GRID.size  # 241 x 61 operating points
    # the pwl() table reproduces each value to the last bit or two (NumPy is evaluated at the
    # values read back anyway)
    np.testing.assert_allclose(dc_grid.v.reshape(X_GRID.size, V_GRID.size),
                               np.broadcast_to(V_GRID, (X_GRID.size, V_GRID.size)), rtol=1e-15,
                               atol=1e-15)
    np.testing.assert_allclose(dc_grid.x.reshape(X_GRID.size, V_GRID.size),
                               np.broadcast_to(X_GRID[:, None], (X_GRID.size, V_GRID.size)),
                               rtol=1e-15, atol=1e-17)


def test_dc_currents_agree_with_numpy(dc_grid):
    for k, area in enumerate(AREAS):
        assert rel_err(dc_grid.current[k], cell_current(dc_grid.v, dc_grid.x, area, CARD)) <= RTOL
    for j, xr in enumerate(dc_grid.read_states):
        assert rel_err(dc_grid.read_current[j],
                       cell_current(dc_grid.v, xr, AREAS[0], CARD)) <= RTOL


def test_dc_state_rate_agrees_with_numpy(dc_grid):
    expected = state_rate(dc_grid.v, dc_grid.x, CARD)
    # 1e-12 s^-1 floor: only the cancellation next to 0 V needs it (see the verilogae test)
    assert rel_err(dc_grid.rate, expected, floor=1e-12) <= RTOL
    assert np.array_equal(dc_grid.rate == 0.0, expected == 0.0)


def test_kappa_scales_the_rate_in_the_subcircuit():
    g = crosscheck.ngspice_dc_grid(CARD, [-2.0, 1.5, 1.8], [0.2, 0.7], AREAS[:1], kappa=0.4)
    assert rel_err(g.rate, state_rate(g.v, g.x, CARD, kappa=0.4)) <= RTOL


def test_rawfile_reader_ascii_equals_binary(monkeypatch):
    """An RC step: binary and ASCII rawfiles give the same vectors, and the analytic answer."""
    net = "\n".join(["* rc", "V1 a 0 1", "R1 a b 1k", "C1 b 0 1n", ".ic v(b)=0",
                     ".tran 10n 5u 0 10n uic", ".end", ""])
    binary = crosscheck.run_ngspice(net)[-1]
    monkeypatch.setenv("SPICE_ASCIIRAWFILE", "1")
    ascii_ = crosscheck.run_ngspice(net)[-1]
    assert binary["plotname"] == ascii_["plotname"] == "Transient Analysis"
    for key in ("time", "v(a)", "v(b)", "i(v1)"):
        np.testing.assert_allclose(ascii_[key], binary[key], rtol=1e-14, atol=1e-20)
    t = binary["time"]
    np.testing.assert_allclose(binary["v(b)"], 1 - np.exp(-t / 1e-6), atol=2e-3)


def test_edge_rate_integral_and_equivalent_width():
    for v in (1.8, 2.2, -3.0, -1.6):
        rate = rate_potentiation if v > 0 else rate_depression
        num = quad(lambda t: float(rate(v * t / 20e-9, CARD)), 0.0, 20e-9, epsabs=0,
                   epsrel=1e-12)[0]
        assert crosscheck.edge_rate_integral(CARD, v, 20e-9) == pytest.approx(num, rel=1e-9)
    # a trapezoid integrated with many constant-voltage sub-steps == equivalent rectangle
    v, tf, te, m = 1.8, 10e-6, 200e-9, 1000
    x = 0.1
    for k in range(m):  # rising edge, midpoint rule
        x = advance(x, v * (k + 0.5) / m, te / m, CARD)
    x = advance(x, v, tf, CARD)
    for k in range(m):
        x = advance(x, v * (m - k - 0.5) / m, te / m, CARD)
    x_rect = advance(0.1, v, crosscheck.equivalent_width(CARD, v, tf, te), CARD)
    assert x == pytest.approx(float(x_rect), abs=1e-9)


@pytest.fixture(scope="module")
def train():
    s = CARD.scheme
    v = np.r_[np.full(50, s.v_set), s.v_reset]
    t = np.r_[np.full(50, s.t_set), s.t_reset]
    return v, t, crosscheck.ngspice_pulse_train(CARD, v, t, t_edge=1e-9, t_gap=2e-6)


def test_fifty_pulse_transient_ends_within_1e3_of_numpy(train):
    v, t, tr = train
    rect = simulate_pulse_train(CARD, v[:50], t[:50], c2c=False).x[0]
    err = np.abs(tr.x_after[:51] - rect)
    assert err.max() <= 1e-3
    assert err.max() <= 5e-5  # what it really is with 1 ns edges (1.7e-5 measured)
    assert tr.x_after[50] > 0.99  # the train did cover the range


def test_transient_matches_numpy_of_the_same_trapezoids(train):
    v, t, tr = train
    teff = [crosscheck.equivalent_width(CARD, a, w, 1e-9) for a, w in zip(v, t)]
    exact = simulate_pulse_train(CARD, v, teff, c2c=False).x[0]
    assert np.max(np.abs(tr.x_after - exact)) <= 2e-5  # 6.8e-6 measured
    # strong reset: one pulse takes the state back to 0, and the state never left [0, 1]
    assert abs(tr.x_after[-1]) < 1e-9
    assert tr.x.min() > -1e-9 and tr.x.max() < 1.0
    # no drift between pulses (rate is exactly zero at 0 V; round-off only)
    gaps = tr.v == 0.0
    assert np.abs(np.diff(tr.x)[gaps[1:] & gaps[:-1]]).max() < 1e-15


def test_dynamic_cell_starts_from_x0_with_or_without_uic():
    s = CARD.scheme
    v, t = np.full(5, s.v_set), np.full(5, s.t_set)
    with_uic = crosscheck.ngspice_pulse_train(CARD, v, t, t_edge=1e-9, x0=0.4, uic=True)
    from_op = crosscheck.ngspice_pulse_train(CARD, v, t, t_edge=1e-9, x0=0.4, uic=False)
    assert from_op.x[0] == pytest.approx(0.4, abs=1e-12)
    np.testing.assert_allclose(from_op.x_after, with_uic.x_after, atol=1e-9)
    exact = simulate_pulse_train(CARD, v, crosscheck.equivalent_width(CARD, s.v_set, s.t_set, 1e-9),
                                 x0=0.4, c2c=False).x[0]
    np.testing.assert_allclose(from_op.x_after, exact, atol=5e-6)


def test_operating_point_of_the_dynamic_cell_holds_its_state():
    """A DC operating point under bias reads the programmed state (it does not run the
    state to a bound): I = I_read(V, x0)."""
    net = "\n".join(["* op of motiox", cell_library(CARD), "V1 a 0 1.5",
                     f"X1 a 0 motiox area={AREAS[3]!r} x0=0.35", ".op", ".end", ""])
    plot = crosscheck.run_ngspice(net)[-1]
    assert plot["v(x1.x)"][0] == pytest.approx(0.35, abs=1e-12)
    assert -plot["i(v1)"][0] == pytest.approx(float(cell_current(1.5, 0.35, AREAS[3], CARD)),
                                              rel=1e-9)


def test_shipped_library_is_generated_from_the_reference_card():
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "netlists" / "ngspice" / "motiox.lib"
    strip = lambda text: [ln for ln in text.splitlines() if not ln.startswith("*")]  # noqa: E731
    assert strip(shipped.read_text()) == strip(cell_library(ModelCard.reference())), (
        "regenerate with pyspice_rram.device.ngspice.write_cell_library(ModelCard.reference(),"
        " 'netlists/ngspice/motiox.lib')")


def test_library_text_is_valid_for_ngspice(tmp_path):
    """The .lib text loads as an include file and the read cell gives I(V) at its state."""
    lib = tmp_path / "motiox.lib"
    lib.write_text(cell_library(CARD, area=AREAS[2]))
    net = "\n".join(["* include test", f".include {lib}", "V1 a 0 0.2", "X1 a 0 motiox_read x=0.5",
                     ".op", ".end", ""])
    plot = crosscheck.run_ngspice(net)[-1]
    assert -plot["i(v1)"][0] == pytest.approx(float(cell_current(0.2, 0.5, AREAS[2], CARD)),
                                              rel=1e-9)
