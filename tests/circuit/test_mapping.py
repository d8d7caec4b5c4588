"""Weight mapping onto tiles, periphery combination and ADC."""

import numpy as np
import pytest

from pyspice_rram.circuit.mapping import (adc_quantise, disturb_free_voltage, encode_inputs,
                                          map_layer)


def test_pair_mapping_represents_the_weights_and_tiles_cover_the_matrix(card, rng):
    W = rng.normal(size=(70, 30))
    layer = map_layer(W, card=card, tile_size=(32, 16))
    np.testing.assert_allclose(layer.effective_weights(), W, atol=1e-12)
    assert [a.name for a in layer.arrays] == ["G+", "G-"]
    assert len(layer.tiles) == 2 * 3 * 2                  # arrays x row tiles x column tiles
    covered = np.zeros(W.shape, int)
    for s in layer.tiles:
        if s.array == "G+":
            covered[s.rows, s.cols] += 1
            assert s.tile.shape == (s.rows.stop - s.rows.start, s.cols.stop - s.cols.start)
    assert np.all(covered == 1)
    # one device of each pair is at x = 0
    assert np.all(np.minimum(layer.states["G+"], layer.states["G-"]) == 0)


def test_ideal_layer_read_equals_weight_product_for_linear_cells(rng):
    W = rng.normal(size=(40, 12))
    layer = map_layer(W, g_range=(1e-6, 1e-4), tile_size=(16, 8), r_wire_row=0, r_wire_col=0)
    v = encode_inputs(rng.uniform(-1, 1, (5, 40)), 0.2)
    np.testing.assert_allclose(layer.read(v, solver="ideal"), layer.ideal_vmm(v), rtol=1e-12,
                               atol=1e-18)
    # MNA with zero parasitics gives the same
    np.testing.assert_allclose(layer.read(v, solver="mna"), layer.ideal_vmm(v), rtol=1e-10,
                               atol=1e-18)
    vt = rng.uniform(-0.2, 0.2, (3, 12))
    np.testing.assert_allclose(layer.read(vt, "transposed", solver="mna"),
                               layer.ideal_vmm(vt, "transposed"), rtol=1e-10, atol=1e-18)
    np.testing.assert_allclose(layer.to_weight_units(layer.ideal_vmm(v)), (v / 0.2) @ W,
                               rtol=1e-10, atol=1e-12)


def test_hybrid_mapping_big_pair_quantised_small_pair_holds_residual(card, rng):
    W = rng.uniform(-1, 1, (32, 32))
    layer = map_layer(W, card=card, synapse="hybrid", k=10, n_states=50, tile_size=32,
                      w_max=1.0)
    assert [a.name for a in layer.arrays] == ["G+", "G-", "g+", "g-"]
    big = layer.states["G+"] - layer.states["G-"]
    np.testing.assert_allclose(big * 49, np.round(big * 49), atol=1e-9)   # 50 levels
    # both pairs have 50 levels: the small pair refines the big step 1/49 by k = 10
    err = np.abs(layer.effective_weights() - W)
    assert err.max() <= 0.5 / 49 / 10 + 1e-12
    assert np.abs(big - W).max() > 5 * err.max()
    small_tiles = [s.tile for s in layer.tiles if s.array.startswith("g")]
    assert np.allclose(small_tiles[0].area, card.area_ref / 10)
    # the small pair's currents are k times smaller per state
    v = np.full((1, 32), 0.2)
    np.testing.assert_allclose(layer.read(v, solver="ideal"), layer.ideal_vmm(v), rtol=0.05)


def test_ir_drop_makes_the_layer_output_smaller_than_ideal(card, rng):
    W = np.abs(rng.normal(size=(64, 16)))
    layer = map_layer(W, card=card, tile_size=(32, 16), r_wire_row=2.0, r_wire_col=2.0)
    v = np.full((2, 64), 0.2)
    assert np.all(layer.read(v, solver="mna") < layer.read(v, solver="ideal"))


def test_adc_quantisation():
    I = np.array([-2.0, -0.51, 0.0, 0.26, 0.74, 3.0])
    q = adc_quantise(I, 3, 1.0)          # levels k/3, k = -3..3
    np.testing.assert_allclose(q, [-1.0, -2 / 3, 0.0, 1 / 3, 2 / 3, 1.0])
    with pytest.raises(ValueError):
        adc_quantise(I, 1, 1.0)


def test_layer_with_adc_is_close_to_without(card, rng):
    W = rng.normal(size=(32, 16))
    v = encode_inputs(rng.uniform(0, 1, (4, 32)), 0.2, card)
    exact = map_layer(W, card=card, tile_size=16).read(v, solver="ideal")
    layer6 = map_layer(W, card=card, tile_size=16, adc_bits=6)
    coarse = layer6.read(v, solver="ideal")
    fine = map_layer(W, card=card, tile_size=16, adc_bits=12).read(v, solver="ideal")
    e6, e12 = np.abs(coarse - exact).max(), np.abs(fine - exact).max()
    # two tile positions per output, each off by at most half an ADC step
    step6 = layer6.full_scale(layer6.tiles[0], "forward") / (2 ** 5 - 1)
    assert 0 < e12 < e6 <= 2 * step6 / 2 * (1 + 1e-12)
    assert e12 <= 2 * step6 * 31 / 2047 / 2 * (1 + 1e-12)


def test_encoding_and_disturb_free_range(card):
    assert 0.5 < disturb_free_voltage(card) < card.v_p + 0.1
    np.testing.assert_allclose(encode_inputs([0.5, -1.0], 0.2, card), [0.1, -0.2])
    with pytest.raises(ValueError, match="disturb-free"):
        encode_inputs([1.0], 1.5, card)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        encode_inputs([1.5], 0.2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(weights=np.ones((10, 10)), tile_size=16), "larger than"),
    (dict(weights=np.ones((10, 10)), tile_size=(4, 11)), "larger than"),
    (dict(weights=[[1.0, np.nan]], tile_size=1), "NaN"),
    (dict(weights=np.ones(5), tile_size=1), "2-D"),
    (dict(weights=np.ones((4, 4)), tile_size=2, synapse="triple"), "synapse"),
    (dict(weights=np.ones((4, 4)), tile_size=2, card=None), "g_range"),
    (dict(weights=np.ones((4, 4)), tile_size=2, g_range=(1e-5, 1e-6)), "g_range"),
    (dict(weights=np.ones((4, 4)), tile_size=2, n_states=1, g_range=(0, 1e-5)), "n_states"),
])
def test_bad_mappings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        map_layer(**kwargs)


def test_layer_rejects_wrong_input_width(rng):
    layer = map_layer(rng.normal(size=(8, 4)), g_range=(1e-6, 1e-5), tile_size=4)
    with pytest.raises(ValueError, match=r"shape \(n_vectors, 8\)"):
        layer.read(np.zeros((2, 4)), solver="ideal")
