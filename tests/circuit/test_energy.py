"""Energy and time per event (pyspice_rram.circuit.energy): hand calculations, the energy
balance of the split, ngspice against the nodal solver, scaling with the read voltage."""

import json

import numpy as np
import pytest

from pyspice_rram.circuit.energy import (EventCosts, PeripheryCosts, event_costs, read_energy,
                                         refresh_energy, update_energy, update_pattern)
from pyspice_rram.circuit.tile import Tile
from pyspice_rram.circuit.update import pwl_corners, update_pulses
from pyspice_rram.device.model import conductance_density
from pyspice_rram.errors import UserInputError

T_READ, T_EDGE = 1e-6, 10e-9
#: a linear read pulse's energy is P(V) times the plateau plus 2/3 of an edge per edge
T_EFF = T_READ + 2 * T_EDGE / 3


def rel(a, b):
    return abs(a - b) / abs(b)


def sinh_pulse_energy(k, vnl, v):
    """∫ V(t) I(V(t)) dt of one trapezoidal read pulse on a cell I = k sinh(V / V_nl):
    plateau V I(V) t_read, and per edge (t_e / V) ∫_0^V u k sinh(u / V_nl) du."""
    ramp = k * (vnl * v * np.cosh(v / vnl) - vnl ** 2 * np.sinh(v / vnl))
    return v * k * np.sinh(v / vnl) * T_READ + 2 * T_EDGE / v * ramp


@pytest.mark.parametrize("solver", ["ngspice", "mna"])
@pytest.mark.parametrize("direction", ["forward", "transposed"])
def test_1x1_linear_cell_series_circuit_by_hand(solver, direction):
    G, V = 40e-6, 0.25
    r_row, r_col, r_d, r_s = 3.0, 2.0, 50.0, 20.0
    tile = Tile(g=[[G]], r_wire_row=r_row, r_wire_col=r_col, r_driver=r_d, r_sense=r_s)
    c = read_energy(tile, [V], direction, t_read=T_READ, t_edge=T_EDGE, solver=solver)
    R = r_row + r_col + r_d + r_s + 1 / G
    i2t = (V / R) ** 2 * T_EFF                                   # ∫ I² dt
    assert rel(c.array_energy_J, V ** 2 / R * T_EFF) < 1e-3     # E = V² G_eff t
    assert rel(c.split_J["cells"], i2t / G) < 1e-3
    assert rel(c.split_J["wires"], i2t * (r_row + r_col)) < 1e-3
    assert rel(c.split_J["periphery"], i2t * (r_d + r_s)) < 1e-3
    assert c.array_time_s == pytest.approx(T_READ + 2 * T_EDGE)


@pytest.mark.parametrize("solver", ["ngspice", "mna"])
def test_1x1_model_cell_sinh_law_by_hand(card, solver):
    x, V = 0.7, 0.3
    tile = Tile(x=[[x]], card=card)
    k = card.area_ref * conductance_density(x, card) * card.v_nl
    c = read_energy(tile, [V], "forward", t_read=T_READ, t_edge=T_EDGE, solver=solver)
    hand = sinh_pulse_energy(k, card.v_nl, V)
    assert rel(c.array_energy_J, hand) < 1e-3
    # the plateau alone is E = V I t
    assert rel(hand, V * k * np.sinh(V / card.v_nl) * T_READ) < 0.02
    assert rel(c.split_J["cells"], hand) < 1e-3


@pytest.mark.parametrize("direction", ["forward", "transposed"])
def test_2x2_linear_with_driver_resistance_by_hand(direction):
    g = np.array([[10e-6, 30e-6], [50e-6, 80e-6]])
    r_d = 2000.0                     # ideal wires and virtual grounds: lines are independent
    tile = Tile(g=g, r_driver=r_d)
    v = np.array([0.2, 0.1])
    c = read_energy(tile, v, direction, t_read=T_READ, t_edge=T_EDGE)
    G_line = g.sum(axis=1) if direction == "forward" else g.sum(axis=0)
    R = r_d + 1 / G_line
    i2t = (v / R) ** 2 * T_EFF
    assert rel(c.array_energy_J, float(np.sum(v ** 2 / R)) * T_EFF) < 1e-3
    assert rel(c.split_J["periphery"], float(np.sum(i2t * r_d))) < 1e-3
    assert rel(c.split_J["cells"], float(np.sum(i2t / G_line))) < 1e-3
    assert c.split_J["wires"] == 0.0


def test_2x2_model_cells_by_hand(card):
    x = np.array([[0.1, 0.9], [0.5, 0.3]])
    v = np.array([0.2, 0.35])
    c = read_energy(Tile(x=x, card=card), v, "forward", t_read=T_READ, t_edge=T_EDGE)
    k = card.area_ref * conductance_density(x, card) * card.v_nl
    hand = sum(sinh_pulse_energy(k[i, j], card.v_nl, v[i]) for i in range(2) for j in range(2))
    assert rel(c.array_energy_J, hand) < 1e-3


def test_split_sums_to_the_total_for_reads_and_the_update(card):
    tile = Tile.random(8, 6, card=card, rng=2, r_wire_row=2.0, r_wire_col=1.0,
                       r_driver=10.0, r_sense=5.0)
    for d in ("forward", "transposed"):
        c = read_energy(tile, np.full(tile.n_inputs(d), 0.2), d)
        assert abs(sum(c.split_J.values()) / c.array_energy_J - 1) < 1e-6
        assert abs(c.closure) < 1e-6
        assert all(e > 0 for e in c.split_J.values())
    x, dl = update_pattern(8, 6, seed=1)
    x[2], dl[3] = 0.0, 0.0                           # an idle row and column
    u = update_energy(card, x, dl, x0=tile.x, r_wire_row=2.0, r_wire_col=1.0, r_driver=10.0)
    assert abs(u.closure) < 1e-6
    assert abs(sum(u.split_J.values()) / u.array_energy_J - 1) < 1e-6
    # unselected cells (idle row and idle column) see only the wires' IR drop
    assert 0 <= u.split_J["cells_unselected"] < 1e-5 * u.array_energy_J
    assert u.split_J["cells_selected"] > u.split_J["cells_half_selected"] > 0


def test_1x1_update_cycle_against_the_pulse_waveform(card):
    """Ideal wires and drivers: the cell sees v_row(t) - v_col(t); its energy is the
    quadrature of V I(V) over the scheme's waveforms on a fine grid."""
    x0 = 0.4
    u = update_energy(card, [0.6], [0.5], x0=x0, r_wire_row=0.0, r_driver=0.0, n_slots=4)
    P = update_pulses(card, [0.6], [0.5], n_slots=4)

    t = np.linspace(0, P.t_stop, 4_000_001)
    vcell = (np.interp(t, *pwl_corners(P.rows_pts[0]))
             - np.interp(t, *pwl_corners(P.cols_pts[0])))
    k = card.area_ref * conductance_density(x0, card) * card.v_nl
    p = vcell * k * np.sinh(vcell / card.v_nl)
    hand = float(np.sum(0.5 * (p[1:] + p[:-1]) * np.diff(t)))
    assert rel(u.array_energy_J, hand) < 1e-2
    assert u.array_time_s == pytest.approx(2 * 4 * P.period)
    assert u.info["pulses"] == 2 * 2 + 4      # 2 row pulses per phase, 4 column pulses


def test_refresh_half_selected_energy_counts_the_pair_lines(card):
    """A pair refresh (one-cell cycles) with ideal wires and drivers: every cell sees its
    lines' source voltages, so the selected cell's energy does not depend on the tile and
    the half-selected energy is that of one half-selected cell times the 2 (N - 1) cells of
    its row and column; a full-tile update cycle drives every line and costs far more."""
    kw = dict(x0=0.5, r_wire_row=0.0, r_driver=0.0, n_slots=3)
    r4, r8 = (refresh_energy(card, n, **kw) for n in (4, 8))
    for key in ("cells_selected", "cells_half_selected"):
        assert r4.split_J[key] > 0
    assert rel(r8.split_J["cells_selected"], r4.split_J["cells_selected"]) < 1e-6
    assert rel(r8.split_J["cells_half_selected"] / 14, r4.split_J["cells_half_selected"] / 6) \
        < 1e-6
    assert r8.split_J["cells_unselected"] < 1e-9 * r8.array_energy_J
    assert rel(r8.array_energy_J, sum(r8.split_J.values())) < 1e-6
    assert r8.array_energy_J == pytest.approx(2 * r8.info["reset_cycle_J"]
                                              + r8.info["program_cycle_J"], rel=1e-12)
    assert r8.array_time_s == pytest.approx(2 * 2 * 3 * update_pulses(card, [1], [1],
                                                                      n_slots=3).period)
    xa, de = update_pattern(8, 8, "random", seed=0)
    full = update_energy(card, xa, de, **kw)
    assert r8.array_energy_J < 0.5 * full.array_energy_J


def test_mna_matches_ngspice_on_a_32x32_tile(card):
    tile = Tile.random(32, 32, card=card, rng=5, r_wire_row=1.0, r_wire_col=1.0,
                       r_driver=10.0, r_sense=2.0)
    v = 0.2 * np.random.default_rng(1).uniform(0.2, 1.0, 32)
    for d in ("forward", "transposed"):
        ng = read_energy(tile, v, d, solver="ngspice")
        mn = read_energy(tile, v, d, solver="mna")
        assert rel(ng.array_energy_J, mn.array_energy_J) < 1e-2
        for key in ("cells", "wires", "periphery"):
            assert rel(ng.split_J[key], mn.split_J[key]) < 1e-2


@pytest.mark.parametrize("solver", ["ngspice", "mna"])
def test_energy_is_quadratic_in_the_read_voltage_for_linear_cells(solver, card):
    tile = Tile.random(6, 5, rng=3, r_wire_row=2.0, r_wire_col=2.0, r_driver=10.0)
    v = np.random.default_rng(2).uniform(0.5, 1.0, 6)
    e1 = read_energy(tile, 0.1 * v, solver=solver).array_energy_J
    e3 = read_energy(tile, 0.3 * v, solver=solver).array_energy_J
    assert rel(e3 / e1, 9.0) < 1e-4
    # the sinh law draws more than quadratically
    mt = Tile.random(6, 5, card=card, rng=3, r_wire_row=2.0, r_wire_col=2.0, r_driver=10.0)
    m1 = read_energy(mt, 0.1 * v, solver=solver).array_energy_J
    m3 = read_energy(mt, 0.3 * v, solver=solver).array_energy_J
    assert m3 / m1 > 9.0 * 1.01


def test_event_costs_periphery_counts_and_json_round_trip(card, tmp_path):
    per = PeripheryCosts()
    c = event_costs(card, 4, 3, r_wire_row=1.0, r_driver=10.0, n_slots=3, periphery=per)
    # forward: 4 DACs, 3 ADC conversions and sense amplifiers; transposed the other way
    assert c.read_forward.periphery_energy_J == pytest.approx(
        4 * per.dac_energy_J + 3 * (per.adc_energy_J + per.sense_energy_J))
    assert c.read_transposed.periphery_energy_J == pytest.approx(
        3 * per.dac_energy_J + 4 * (per.adc_energy_J + per.sense_energy_J))
    assert per.adc_energy_J == pytest.approx(3.1e-3 / 1.2e9)       # Kull et al. 2013
    assert c.update_cycle.periphery_energy_J == pytest.approx(
        c.update_cycle.info["pulses"] * per.pulse_driver_energy_J)
    assert c.read_forward.energy_J == pytest.approx(
        c.read_forward.array_energy_J + c.read_forward.periphery_energy_J)
    back = EventCosts.load(c.save(tmp_path / "e.json"))
    assert back.to_dict() == json.loads((tmp_path / "e.json").read_text())
    assert back.update_cycle.split_J == c.update_cycle.split_J
    assert back.periphery == per


def test_periphery_costs_are_cited_and_swappable():
    per = PeripheryCosts()
    assert all(per.sources[f].strip() for f in per._numeric())
    cheap = per.with_values("my ADC", adc_energy_per_step_J=1e-15, adc_bits=6)
    assert cheap.adc_energy_J == pytest.approx(64e-15)
    assert cheap.sources["adc_bits"] == "my ADC" and per.sources["adc_bits"] != "my ADC"
    with pytest.raises(UserInputError, match="adc_energy_per_step_J"):
        PeripheryCosts(adc_energy_per_step_J=float("nan"))
    with pytest.raises(UserInputError, match="source"):
        PeripheryCosts(sources={})


def test_bad_settings_are_refused(card):
    with pytest.raises(UserInputError, match="t_read"):
        read_energy(Tile(g=[[1e-5]]), [0.1], t_read=0.0)
    with pytest.raises(UserInputError, match="solver"):
        read_energy(Tile(g=[[1e-5]]), [0.1], solver="spectre")
    with pytest.raises(ValueError, match="disturb"):
        event_costs(card, 2, v_read=1.5)
    with pytest.raises(UserInputError, match="rows must be an integer >= 1, got 0"):
        refresh_energy(card, 0)


def test_a_costs_file_with_a_bad_refresh_event_names_file_and_field(tmp_path):
    """A costs file whose refresh energy is not a number stops with the file and the field,
    instead of pricing a ledger with it."""
    from pathlib import Path

    import pyspice_rram

    src = Path(pyspice_rram.__file__).parent / "data/event_costs/motiox-reference_64x64.json"
    d = json.loads(src.read_text())
    assert d["refresh"]["array_energy_J"] > 0           # the shipped file has the event
    d["refresh"]["array_energy_J"] = "1.9e-6 J"
    bad = tmp_path / "costs.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(UserInputError, match=r"costs\.json.*array_energy_J = '1\.9e-6 J'"):
        EventCosts.load(bad)


def test_cli_writes_event_costs_and_keeps_an_earlier_file(tmp_path, capsys):
    from pyspice_rram.cli import main

    out = tmp_path / "e.json"
    argv = ["xbar", "energy", "--tile", "3", "--tile-cols", "2", "--n-slots", "2", "-q", "-o",
            str(out)]
    assert main(argv) == 0
    c = EventCosts.load(out)
    assert c.settings["tile_rows"] == 3 and c.settings["tile_cols"] == 2
    assert c.read_forward.periphery_energy_J == pytest.approx(
        3 * c.periphery.dac_energy_J + 2 * (c.periphery.adc_energy_J
                                            + c.periphery.sense_energy_J))
    for e in ("read_forward", "read_transposed", "update_cycle"):
        assert abs(getattr(c, e).closure) < 1e-6
    before = out.read_bytes()
    assert main(argv) == 1                      # no --force: the earlier file stays
    assert "--force" in capsys.readouterr().err and out.read_bytes() == before


def test_an_open_energy_balance_is_an_error_not_a_number():
    from pyspice_rram.circuit.energy import _closed
    from pyspice_rram.errors import SimulatorError

    assert _closed(1.0, {"cells": 0.7, "wires": 0.3}, "read") == pytest.approx(0.0)
    with pytest.raises(SimulatorError, match="does not sum"):
        _closed(1.0, {"cells": 0.7, "wires": 0.2}, "read")        # an element left out
