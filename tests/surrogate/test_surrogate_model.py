"""Tile surrogate: exactness, physics, validity range, persistence, error against solvers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pyspice_rram.circuit import mna
from pyspice_rram.circuit.tile import Tile
from pyspice_rram.device.card import ModelCard
from pyspice_rram.surrogate.fit import full_scale
from pyspice_rram.surrogate.model import (FEATURE_NAMES, SurrogateValidityError, TileSurrogate,
                                          ladder_attenuation)

import surrogate_oracle as _nodal

CARD = ModelCard.reference()
V_MAX = CARD.scheme.v_read


@pytest.fixture(scope="module")
def shipped() -> TileSurrogate:
    return TileSurrogate.load()


def _tile(rows, cols, r_row=1.0, r_col=None, seed=0, **kw):
    rng = np.random.default_rng(seed)
    return Tile(x=rng.uniform(size=(rows, cols)), card=CARD, r_wire_row=r_row,
                r_wire_col=r_row if r_col is None else r_col, **kw)


def _inputs(n, k=4, seed=1, signed=False):
    rng = np.random.default_rng(seed)
    return rng.uniform(-V_MAX if signed else 0.0, V_MAX, (k, n))


# ------------------------------------------------------------------ exactness
@pytest.mark.parametrize("direction", ["forward", "transposed"])
@pytest.mark.parametrize("linear", [False, True])
def test_exact_at_zero_wire_resistance(shipped, direction, linear):
    """With ideal wires, driver and sense the surrogate equals the ideal product exactly,
    whatever its fitted coefficients (every correction feature vanishes)."""
    t = _tile(48, 32, r_row=0.0, r_col=0.0)
    sur = shipped
    if linear:
        t = Tile(g=t.low_field_conductance())
        sur = TileSurrogate(theta={k: 0.37 for k in FEATURE_NAMES},
                            validity={"v_max": V_MAX})
    v = _inputs(t.n_inputs(direction), signed=direction == "transposed")
    pred = sur.predict(t, v, direction)
    ideal = mna.ideal_product(t, v, direction)
    np.testing.assert_allclose(pred, ideal, rtol=1e-12, atol=1e-20)


def test_ladder_matches_single_line_nodal_solution():
    """The ladder recursion is the exact attenuation of one line with shunts to ground."""
    rng = np.random.default_rng(3)
    y = rng.uniform(1e-6, 5e-5, (1, 40))
    r, R_p = 2.0, 30.0
    att = ladder_attenuation(y, R_p, r)[0]
    # dense nodal solution of the same ladder: node k has shunt y_k, segments r, source 1 V
    L = y.shape[1]
    G = np.zeros((L, L))
    for k in range(1, L):
        G[k - 1, k - 1] += 1 / r
        G[k, k] += 1 / r
        G[k - 1, k] -= 1 / r
        G[k, k - 1] -= 1 / r
    G[0, 0] += 1 / (R_p + r)
    G += np.diag(y[0])
    b = np.zeros(L)
    b[0] = 1 / (R_p + r)
    np.testing.assert_allclose(att, np.linalg.solve(G, b), rtol=1e-12)


@pytest.mark.parametrize("direction", ["forward", "transposed"])
def test_core_exact_when_only_driven_lines_have_resistance(direction):
    """Linear cells, resistance only on the driven lines (sensed lines ideal): each driven
    line is an independent ladder, so the physics core is exact (checked against MNA)."""
    t0 = _tile(24, 20)
    g = t0.low_field_conductance()
    kw = ({"r_wire_row": 3.0, "r_driver": 20.0} if direction == "forward"
          else {"r_wire_col": 3.0, "r_driver": 20.0})
    t = Tile(g=g, **kw)
    v = _inputs(t.n_inputs(direction))
    core = TileSurrogate(validity={"v_max": V_MAX})
    np.testing.assert_allclose(core.predict(t, v, direction), mna.solve_tile(t, v, direction),
                               rtol=1e-10)


def test_private_nodal_oracle_agrees_with_circuit_mna():
    """The independent test oracle and the circuit layer's MNA solve the same circuit."""
    t = _tile(12, 9, r_row=1.5, r_col=0.7, r_driver=10.0, r_sense=5.0)
    for direction in ("forward", "transposed"):
        v = _inputs(t.n_inputs(direction), k=2, signed=True)
        ours = _nodal.solve(t.low_field_conductance(), v, 1.5, 0.7, 10.0, 5.0, direction,
                            v_nl=CARD.v_nl)
        np.testing.assert_allclose(ours, mna.solve_tile(t, v, direction), rtol=1e-9)


# ------------------------------------------------------------------ physics
@pytest.mark.parametrize("direction", ["forward", "transposed"])
def test_monotonic_attenuation_with_wire_resistance(shipped, direction):
    """More wire resistance never increases an output current (positive inputs)."""
    base = _tile(64, 64, seed=5)
    v = np.vstack([np.full(64, V_MAX), _inputs(64, k=3, seed=6)])
    prev = None
    for r in (0.0, 0.1, 0.3, 1.0, 2.0, 3.5, 5.0):
        out = shipped.predict(base.with_parasitics(r_wire_row=r, r_wire_col=r), v, direction)
        assert np.all(out > 0)
        if prev is not None:
            assert np.all(out < prev), f"output grew when r_wire went up to {r} Ω"
        prev = out
    # and the all-on column of a 64x64 tile at 5 Ω loses a sizeable part of its current
    ideal = mna.ideal_product(base, v, direction)
    assert np.mean(prev[0] / ideal[0]) < 0.95


# ------------------------------------------------------------------ validity
def test_refuses_outside_validity(shipped):
    val = shipped.validity
    v = _inputs(64)
    with pytest.raises(SurrogateValidityError, match="rows"):
        shipped.predict(_tile(val["size"][1] + 8, 64), _inputs(val["size"][1] + 8))
    with pytest.raises(SurrogateValidityError, match="r_wire_row"):
        shipped.predict(_tile(64, 64, r_row=val["r_wire"][1] * 2), v)
    with pytest.raises(SurrogateValidityError, match="read voltage"):
        shipped.predict(_tile(64, 64), v * 3 * val["v_max"] / V_MAX)
    other = CARD.replace(v_nl=CARD.v_nl * 2)
    t = Tile(x=_tile(64, 64).x, card=other, r_wire_row=1.0, r_wire_col=1.0)
    with pytest.raises(SurrogateValidityError, match="v_nl"):
        shipped.predict(t, v)
    with pytest.raises(SurrogateValidityError, match="r_driver"):
        shipped.predict(_tile(64, 64, r_driver=val["r_driver_max"] * 3), v)


def test_warns_instead_of_refusing_by_option(shipped):
    t = _tile(64, 64, r_row=shipped.validity["r_wire"][1] * 2)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = shipped.predict(t, _inputs(64), on_invalid="warn")
    assert out.shape == (4, 64)
    assert any("range of validity" in str(x.message) for x in w)


# ------------------------------------------------------------------ persistence
def test_save_load_round_trip(shipped, tmp_path):
    path = shipped.save(tmp_path / "s.json")
    back = TileSurrogate.load(path)
    assert back.to_dict() == shipped.to_dict()
    t = _tile(40, 56, r_row=2.0, r_col=1.0, r_driver=10.0)
    v = _inputs(40)
    np.testing.assert_array_equal(back.predict(t, v), shipped.predict(t, v))
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="format"):
        TileSurrogate.load(bad)


def test_shipped_has_provenance(shipped):
    p = shipped.provenance
    assert len(p["data_hash"]) == 64 and p["n_fit_reads"] > 50
    assert p["heldout_rms_pct_fs"] <= 0.5
    assert shipped.card["v_nl"] == CARD.v_nl


# ------------------------------------------------------------------ error vs circuit solver
@pytest.mark.parametrize("shape,r_row,r_col,r_drv,r_sns", [
    ((32, 32), 1.0, 1.0, 0.0, 0.0),
    ((64, 64), 2.0, 2.0, 20.0, 10.0),
    ((48, 96), 0.5, 4.0, 0.0, 40.0),
])
def test_error_vs_mna_below_bound(shipped, shape, r_row, r_col, r_drv, r_sns):
    """Against the circuit layer's MNA solver (which agrees with ngspice to 1e-12): RMS
    below 0.1 % and max below 0.5 % of full scale, both directions, against several input
    kinds; the ideal product is far off on the same reads."""
    t = _tile(*shape, r_row=r_row, r_col=r_col, r_driver=r_drv, r_sense=r_sns, seed=11)
    for direction in ("forward", "transposed"):
        n = t.n_inputs(direction)
        v = np.vstack([np.full(n, V_MAX), _inputs(n, k=2, signed=direction == "transposed"),
                       np.where(np.arange(n) % 5 == 0, V_MAX, 0.0)])
        ref = mna.solve_tile(t, v, direction)
        fs = full_scale(t, direction, V_MAX)
        err = (shipped.predict(t, v, direction) - ref) / fs
        assert np.sqrt(np.mean(err ** 2)) < 1e-3
        assert np.max(np.abs(err)) < 5e-3
        ideal_err = (mna.ideal_product(t, v, direction) - ref) / fs
        assert np.max(np.abs(ideal_err)) > 5 * np.max(np.abs(err))


def test_stress_corner_all_on_128_at_5_ohm(shipped):
    """Worst corner of the validity range (every cell at G_max, 128x128, 5 Ω per segment:
    the all-on column loses ~70 % of its current): RMS error still below 0.5 % of full
    scale, and the fitted correction improves on the physics core alone."""
    t = Tile(x=np.ones((128, 128)), card=CARD, r_wire_row=5.0, r_wire_col=5.0)
    rng = np.random.default_rng(0)
    v = np.vstack([np.full(128, V_MAX), rng.uniform(0, V_MAX, (2, 128))])
    ref = mna.solve_tile(t, v)
    fs = full_scale(t, "forward", V_MAX)
    err = (shipped.predict(t, v) - ref) / fs
    core = TileSurrogate(validity=shipped.validity, card=shipped.card)
    err_core = (core.predict(t, v) - ref) / fs
    assert np.mean(ref[0]) < 0.4 * np.mean(mna.ideal_product(t, v)[0])
    assert np.sqrt(np.mean(err ** 2)) < 5e-3
    assert np.sqrt(np.mean(err ** 2)) < np.sqrt(np.mean(err_core ** 2))
