"""Transient check of the parallel outer-product update (ngspice, dynamic cells)."""

import numpy as np
import pytest

from pyspice_rram.circuit.update import default_pattern, update_check


def test_update_without_ir_drop_matches_numpy_model_and_outer_product(card):
    x, d = default_pattern(6, 6)
    res = update_check(card, x, d, r_wire=0.0, r_driver=0.0, n_slots=5)
    m = res.metrics
    # the ngspice transient agrees with the NumPy model's exact advance
    assert m["ngspice_vs_numpy_rel"] < 5e-3
    # the achieved change is the outer product up to the pulse-response nonlinearity
    assert m["corr"] > 0.99 and m["sign_agreement"] == 1.0
    assert m["rms_error_rel"] < 0.1
    # half-selected cells (V/2) barely move, idle cells do not move
    assert 0 < m["half_selected_max_rel"] < 2e-3
    assert m["unselected_max_rel"] < 1e-9
    assert res.selected.sum() == 4 * 4 and res.half_selected.sum() == 2 * 4 + 4 * 2


def test_ir_drop_reduces_the_programmed_change(card):
    x, d = default_pattern(4, 4)
    ideal = update_check(card, x, d, r_wire=0.0, r_driver=0.0, n_slots=3)
    lossy = update_check(card, x, d, r_wire=2.0, r_driver=20.0, n_slots=3)
    s = ideal.selected
    assert np.all(np.abs(lossy.dG[s]) < np.abs(ideal.dG[s]))


def test_update_rejects_bad_patterns(card):
    with pytest.raises(ValueError, match="x_act"):
        update_check(card, [1.2, 0.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="delta"):
        update_check(card, [0.5, 0.0], [0.5, -1.5])
