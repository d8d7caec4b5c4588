"""IR-drop-aware reference of the parallel update (update_mna) against analytic cases and
the ngspice transient."""

import numpy as np
import pytest

from pyspice_rram.circuit.update import (default_pattern, update_check, update_numpy,
                                         update_pulses)
from pyspice_rram.circuit.update_mna import update_reference
from pyspice_rram.device.model import advance
from pyspice_rram.errors import UserInputError


def test_reference_without_resistance_is_the_numpy_model(card):
    # no wire, no driver: every cell sees its source difference, and the time slices of the
    # reference compose the same exact advances as the NumPy model
    x, d = default_pattern(6, 7)
    x0 = np.random.default_rng(1).uniform(0.1, 0.9, (6, 7))
    P = update_pulses(card, x, d, n_slots=4)
    ref = update_reference(card, x, d, n_slots=4, x0=x0, r_wire=0.0, r_driver=0.0)
    assert np.abs(ref.x_final - update_numpy(card, P, x0)).max() < 1e-12
    assert ref.stats["solves"] == 0
    assert np.abs(ref.dx).max() > 0.02


def test_half_select_disturb_is_the_analytic_half_voltage_advance(card):
    # one row and one column active: the rest of row 0 sees +V_set/2 (potentiation slots) and
    # -V_dep/2 (depression slots), the rest of column 0 sees +V_set/2 for |δ| t_on per slot
    n, t_on, te = 3, card.scheme.t_set, 10e-9
    x, d = np.array([1.0, 0.0, 0.0, 0.0]), np.array([0.6, 0.0, 0.0])
    P = update_pulses(card, x, d, n_slots=n)
    ref = update_reference(card, x, d, n_slots=n, r_wire=0.0, r_driver=0.0)
    T_row = t_on + 3 * te
    row_only = advance(advance(0.5, P.v_set / 2, n * T_row, card), -P.v_dep / 2, n * T_row, card)
    col_only = advance(0.5, P.v_set / 2, n * 0.6 * t_on, card)
    assert np.allclose(ref.x_final[0, 1:], row_only, rtol=0, atol=1e-13)
    assert np.allclose(ref.x_final[1:, 0], col_only, rtol=0, atol=1e-13)
    assert np.all(ref.x_final[1:, 1:] == 0.5)
    # ngspice (with wire) sees the same disturb up to the IR drop, which the reference has
    res = update_check(card, x, d, n_slots=n, r_wire=2.5, r_driver=10.0)
    m = res.metrics
    assert m["half_row_max_dx"] > 1e-6 and m["half_col_max_dx"] > 1e-6
    assert m["half_row_max_dx"] == pytest.approx(m["half_row_max_dx_irdrop"], rel=0.01)
    assert m["half_col_max_dx"] == pytest.approx(m["half_col_max_dx_irdrop"], rel=0.01)


def test_reference_with_ir_drop_matches_ngspice_8x8(card):
    x, d = default_pattern(8, 8)
    res = update_check(card, x, d, r_wire=5.0, r_driver=10.0, n_slots=5)
    m = res.metrics
    # what the reference leaves out is the edge shape (t_edge / t_on = 1e-3 of a pulse)
    assert m["ngspice_vs_irdrop_max_dx"] < 2e-4
    assert m["ngspice_vs_irdrop_max_pulses"] < 0.02
    # ... while ignoring the IR drop is off by far more
    assert m["ngspice_vs_numpy_max_dx"] > 30 * m["ngspice_vs_irdrop_max_dx"]
    assert m["v_cell_min_selected_irdrop"] < 0.99 * res.settings["v_set"]


def test_reference_rejects_bad_resistance(card):
    with pytest.raises(UserInputError, match="r_wire"):
        update_reference(card, [0.5], [0.5], r_wire=-1.0)


def test_cell_forms_agree(card):
    # the compiled Verilog-A cell (OSDI) and the B-source subcircuit are the same equations
    from pyspice_rram.spice.runner import openvaf_executable

    if openvaf_executable() is None:
        pytest.skip("no OpenVAF compiler: the OSDI cell cannot be built")
    x, d = default_pattern(4, 4)
    a = update_check(card, x, d, n_slots=3, r_wire=2.5, cell="subckt", reference=False)
    b = update_check(card, x, d, n_slots=3, r_wire=2.5, cell="osdi", reference=False)
    assert a.settings["cell"] == "subckt" and b.settings["cell"] == "osdi"
    assert np.abs(a.x_final - b.x_final).max() < 1e-5
    assert np.abs(a.x_final - a.x0).max() > 0.01
