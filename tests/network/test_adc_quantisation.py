"""DAC/ADC quantisation of the read path (network/periphery.py, issue 13 point 2).

The compiled kernels of the SGD loop and the batched reads are compared with an independent
NumPy quantiser written here from the documented model (docs/cost.md): inputs rounded to
``2^b - 1`` steps, per-tile partial sums, a signed ADC ``k LSB`` with ``LSB = FS / 2^(b-1)``,
``k = floor(y / LSB + 1/2)`` clipped to ``[-2^(b-1), 2^(b-1) - 1]``.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyspice_rram.errors import ConfigError
from pyspice_rram.network.backend import IdealBackend
from pyspice_rram.network.periphery import (PeripherySpec, QuantizedBackend, quant_forward,
                                            quant_transpose)
from pyspice_rram.network.train import Network, TrainConfig, train

N_IN, N_HID, N_OUT = 40, 12, 10
TILE = {"tile_rows": 16, "tile_cols": 4}     # 3 row tiles (41 rows), 3 column tiles (10)


def ref_dac(u, bits):
    if bits is None:
        return u
    n = 2 ** bits - 1
    return np.floor(np.clip(u, 0.0, 1.0) * n + 0.5) / n


def ref_adc(y, fs, bits):
    if bits is None:
        return y
    half = 2.0 ** (bits - 1)
    lsb = fs / half
    return np.clip(np.floor(y / lsb + 0.5), -half, half - 1) * lsb


def ref_forward(W, x, dac, adc, fs, rows):
    """Row by row in float64 (bias row last, at 1), one ADC per line and row tile."""
    xa = np.append(ref_dac(x.astype(np.float64), dac), 1.0)
    out = np.zeros(W.shape[1])
    for t, a in enumerate(range(0, W.shape[0], rows)):
        acc = np.zeros(W.shape[1])
        for j in range(a, min(W.shape[0], a + rows)):
            acc = acc + xa[j] * W[j].astype(np.float64)
        out = out + ref_adc(acc, fs[t], adc)
    return out


def ref_transpose(W, d, dac, adc, fs, cols):
    m = np.abs(d).max()
    u = np.sign(d) * ref_dac(np.abs(d.astype(np.float64)) / m, dac)
    out = np.zeros(W.shape[0] - 1)
    for t, a in enumerate(range(0, W.shape[1], cols)):
        b = min(W.shape[1], a + cols)
        acc = np.zeros(W.shape[0] - 1)
        for k in range(a, b):
            acc = acc + W[:-1, k].astype(np.float64) * u[k]
        out = out + ref_adc(acc, fs[t], adc)
    return out * m


def network(cell="single", **periphery):
    cfg = TrainConfig(name="q", cell=cell, n_hidden=N_HID, w_max=[0.5, 1.0], circuit=TILE,
                      periphery=periphery, cell_params={} if cell == "fp" else
                      {"rounding": "stochastic"})
    net = Network(cfg, N_IN, N_OUT)
    rng = np.random.default_rng(3)
    for st in net.layers:      # random read weights (the reads see only Wr)
        st.Wr[...] = rng.uniform(-0.5, 0.5, st.Wr.shape).astype(np.float32)
    return net


@pytest.mark.parametrize("dac,adc", [(5, 6), (None, 3), (3, None), (8, 8)])
def test_compiled_reads_equal_an_independent_quantiser(dac, adc):
    net = network(dac_bits=dac, adc_bits=adc)
    be = net.backend
    assert isinstance(be, QuantizedBackend)
    # "max" full scale: lines of the tile x largest cell weight (uniform pair: w_max)
    rows0 = [16, 16, 9]
    np.testing.assert_allclose(be.fs[0, 0, :3], np.array(rows0) * 0.5, rtol=1e-6)
    np.testing.assert_allclose(be.fs[1, 1, :3], np.array([4, 4, 2]) * 1.0, rtol=1e-6)
    reads, _ = be.compiled_reads(1)
    rng = np.random.default_rng(0)
    L0, L1 = net.layers
    for _ in range(20):
        x = rng.uniform(0, 1, N_IN).astype(np.float32)
        z = quant_forward(reads, 0, L0, np.arange(N_IN), x).copy()
        ref = ref_forward(L0.Wr, x, dac, adc, be.fs[0, 0], 16)
        np.testing.assert_array_equal(z, ref.astype(np.float32))
        np.testing.assert_allclose(be.forward(0, L0.Wr, x[None])[0], ref, rtol=1e-6,
                                   atol=1e-6)
        d = rng.normal(0, 0.1, N_OUT).astype(np.float32)
        e = np.empty(N_HID)
        scale = quant_transpose(reads, 1, L1, d, e)
        ref = ref_transpose(L1.Wr, d, dac, adc, be.fs[1, 1], 4)
        np.testing.assert_allclose(e * scale, ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(be.transpose(1, L1.Wr, d[None])[0], ref, rtol=1e-6,
                                   atol=1e-6)


def test_adc_error_within_half_an_lsb_per_tile_and_large_bits_equal_ideal():
    rng = np.random.default_rng(1)
    for bits in (4, 8):
        net = network(adc_bits=bits)
        be, L0 = net.backend, net.layers[0]
        reads, _ = be.compiled_reads(1)
        lsb = be.fs[0, 0, :3] / 2 ** (bits - 1)
        errs = []
        for _ in range(50):
            x = rng.uniform(0, 1, N_IN).astype(np.float32)
            z = quant_forward(reads, 0, L0, np.arange(N_IN), x).astype(np.float64)
            ideal = np.append(x, 1.0) @ L0.Wr.astype(np.float64)
            errs.append(np.abs(z - ideal))
        errs = np.array(errs)
        assert errs.max() <= 0.5 * lsb.sum() * (1 + 1e-6)
        assert errs.mean() > 0.05 * lsb.min()      # it does quantise
    net = network(adc_bits=24, dac_bits=24)
    reads, _ = net.backend.compiled_reads(1)
    x = rng.uniform(0, 1, N_IN).astype(np.float32)
    z = quant_forward(reads, 0, net.layers[0], np.arange(N_IN), x)
    ideal = np.append(x, 1.0) @ net.layers[0].Wr.astype(np.float64)
    np.testing.assert_allclose(z, ideal, atol=3 * 16 * 0.5 / 2 ** 23 + 1e-5)


def test_ideal_periphery_keeps_the_ideal_backend_and_old_configs_load():
    cfg = TrainConfig.from_dict({"name": "x", "cell": "single"})    # no [periphery] table
    assert cfg.periphery == PeripherySpec() and cfg.periphery.ideal
    assert type(Network(cfg, N_IN, N_OUT).backend) is IdealBackend
    assert cfg.to_dict()["periphery"]["adc_bits"] is None
    with pytest.raises(ConfigError, match="periphery.adc_bits"):
        TrainConfig(cell="single", periphery={"adc_bits": 0})
    with pytest.raises(ConfigError, match="periphery.adc_range"):
        TrainConfig(cell="single", periphery={"adc_bits": 4, "adc_range": "auto"})
    with pytest.raises(ConfigError, match="ideal backend"):
        TrainConfig(cell="single", backend="read-noise", periphery={"adc_bits": 4})


def test_two_adc_bits_train_the_digits_worse_than_eight():
    """Hybrid, setting B's rounding, 32 hidden, 3 epochs on the 8x8 digits, calibrated ADC
    range (margin 4): measured test accuracy 0.078 / 0.543 / 0.758 / 0.747 at 2 / 4 / 6 / 8
    bits, 0.808 with ideal reads."""
    acc = {}
    for bits in (2, 8):
        cfg = TrainConfig(name=f"adc{bits}", cell="hybrid", n_hidden=32, epochs=3,
                          w_max=[1.0, 2.0], cell_params={"rounding": "stochastic"},
                          periphery={"adc_bits": bits, "adc_range": "calibrated"})
        res = train(cfg, None, progress=False)
        acc[bits] = res.history.arrays()["test_acc"][-1]
        fs = res.history.arrays()["adc_full_scale"]
        assert fs.shape[1:3] == (2, 2) and np.all(fs[-1, :, 0, 0] > 0)
    assert acc[8] >= 0.6
    assert acc[8] - acc[2] >= 0.25, acc


def test_check_reads_the_runs_converters(tmp_path):
    """``check`` of a run with converters adds the path "ideal+converters": with 24-bit
    converters it predicts like the exact read (independent expectation: the quantisation
    step is ~1e-7 of full scale), and with 3-bit converters its pre-activations differ from the
    circuit's by far more than the exact read's do."""
    from pyspice_rram.network.train import TrainConfig, train
    from pyspice_rram.surrogate.check import run_check

    errs = {}
    for bits in (24, 3):
        cfg = TrainConfig(name=f"q{bits}", dataset="digits", cell="hybrid", n_hidden=16,
                          epochs=1, n_train=300, w_max=[1.0, 1.0],
                          cell_params={"rounding": "stochastic"},
                          periphery={"adc_bits": bits, "dac_bits": bits})
        train(cfg, tmp_path / f"q{bits}.h5", progress=False)
        r = run_check(tmp_path / f"q{bits}.h5", 30, tile=(16, 16), r_wire=0.5,
                      progress=False)
        assert set(r["accuracy"]) == {"ideal", "ideal+converters", "surrogate", "mna"}
        errs[bits] = r["layers"][0]
        if bits == 24:
            assert r["accuracy"]["ideal+converters"] == r["accuracy"]["ideal"]
    l24, l3 = errs[24], errs[3]
    assert l24["ideal+converters"]["max"] <= l24["ideal"]["max"] * 1.01 + 1e-5
    assert l3["ideal+converters"]["rms"] > 5 * l3["ideal"]["rms"]
