"""Cost ledger (network/ledger.py, paper/cost.py; issue 13 point 3).

Counts: one training sample of a deterministic single pair, the pulses and update cycles
recomputed here in NumPy from the network's weights (forward read, output error, transposed
read, whole-pulse rounding). Prices: energy and time = sum of count x cost by hand with round
per-event costs.
"""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from pyspice_rram.circuit.energy import EventCost, EventCosts, PeripheryCosts
from pyspice_rram.cli import main
from pyspice_rram.network.data import load_dataset
from pyspice_rram.network.train import Network, TrainConfig, train
from pyspice_rram.paper.cost import run_ledger


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


def _round(v):
    return np.where(v >= 0, np.floor(v + 0.5), -np.floor(-v + 0.5))


def test_one_sample_counts_equal_an_independent_count(tmp_path):
    cfg = TrainConfig(name="one", cell="single", n_hidden=8, n_train=1, n_test=5, epochs=1,
                      lr=0.5, w_max=[1.0, 1.0], cell_params={"rounding": "deterministic"})
    data = load_dataset("digits").subset(1, 5)
    net = Network(cfg, data.n_features, data.n_classes)
    W0, W1 = (st.Wr.copy() for st in net.layers)
    step = [float(st.gain[0]) / float(st.dev["n_states"][0]) for st in net.layers]
    x = data.dense("train", 0, 1)[0]
    z = W0[-1].copy()
    for j in np.flatnonzero(x):                     # float32, rows in order, as read
        z += x[j] * W0[j]
    h = _sig(z).astype(np.float32)
    o = W1[-1].copy()
    for j in range(8):
        o += h[j] * W1[j]
    ok = _sig(o)
    d2 = ((ok - np.eye(data.n_classes)[data.y_train[0]]) * ok * (1 - ok)).astype(np.float32)
    e1 = W1[:-1].astype(np.float64) @ d2.astype(np.float64)
    d1 = (h * (1.0 - h) * e1).astype(np.float32)
    n1 = _round(-cfg.lr * np.append(h, 1.0)[:, None].astype(np.float64) * d2 / step[1])
    xa = np.append(x, np.float32(1.0))
    n0 = _round(-cfg.lr * xa[:, None].astype(np.float64) * d1 / step[0])
    out = tmp_path / "one.h5"
    train(cfg, out, data=data, progress=False)
    with h5py.File(out, "r") as f:
        ep = {k: f["epochs"][k][()] for k in f["epochs"]}
    assert ep["samples"].tolist() == [0, 1]
    assert ep["reads_forward"][1].tolist() == [1, 1]
    assert ep["reads_transposed"][1].tolist() == [0, 1]
    assert ep["pulses"][1, :, 0].tolist() == [int(np.abs(n0).sum()), int(np.abs(n1).sum())]
    assert ep["updates"][1, :, 0].tolist() == [int((n0 != 0).sum()), int((n1 != 0).sum())]
    assert ep["update_cycles"][1, :, 0].tolist() == [int(np.any(n0 != 0)),
                                                    int(np.any(n1 != 0))]
    assert np.abs(n1).sum() > 0 and np.abs(n0).sum() > 0
    assert ep["refreshes"][1].sum() == 0        # no device saturated: no pulse lost


def _costs(path, tile=64, refresh=None):
    zero = PeripheryCosts().with_values("test: no periphery", **{
        k: 0.0 for k in ("dac_energy_J", "dac_time_s", "adc_energy_per_step_J", "adc_time_s",
                         "sense_energy_J", "pulse_driver_energy_J")})
    zero = zero.with_values("test: one counter step", counter_energy_J=7e-12,
                            counter_time_s=3e-9)
    ev = EventCosts(EventCost(1e-9, 1e-6), EventCost(2e-9, 1.5e-6), EventCost(5e-9, 4e-6),
                    zero, {"card": "test", "tile_rows": tile, "tile_cols": tile,
                           "r_wire_row": 1.0, "r_wire_col": 1.0, "r_driver": 0.0,
                           "r_sense": 0.0}, refresh)
    return ev.save(path)


@pytest.mark.parametrize("cell,refresh", [("hybrid", None), ("multi", None),
                                          ("hybrid", (3e-10, 7e-6))])
def test_energy_and_time_are_count_times_cost(tmp_path, cell, refresh):
    """Energy and time per epoch = Σ count × cost by hand; a refresh priced by the costs'
    refresh event, or, in costs without one, as two update cycles (the upper bound)."""
    params = {"rounding": "stochastic"} if cell == "hybrid" else \
        {"rounding": "stochastic", "n_devices": 3}
    cfg = TrainConfig(name=cell, cell=cell, n_hidden=32, n_train=200, n_test=50, epochs=2,
                      w_max=[1.0, 2.0], cell_params=params)
    out = tmp_path / "r.h5"
    train(cfg, out, progress=False)
    costs = _costs(tmp_path / "c.json", refresh=None if refresh is None else
                   EventCost(*refresh))
    e_ref, t_ref = (2 * 5e-9, 2 * 4e-6) if refresh is None else refresh
    led = run_ledger(out, costs)
    assert led["prices"]["refresh"] == (e_ref, t_ref)
    assert any("no refresh event" in w for w in led["warnings"]) == (refresh is None)
    assert led["refresh_event"] == (refresh is not None)
    with h5py.File(out, "r") as f:
        ep = {k: f["epochs"][k][()] for k in f["epochs"]}
    A = 2 if cell == "hybrid" else 3
    tiles = [2, 1]          # layer 0: 65 x 32 cells on 64 x 64 tiles; layer 1: 33 x 10
    for e in (1, 2):
        n = 200
        E = T = 0.0
        for li in range(2):
            E += ep["reads_forward"][e][li] * 2 * A * tiles[li] * 1e-9
            T += ep["reads_forward"][e][li] * 1e-6
            E += ep["reads_transposed"][e][li] * 2 * A * tiles[li] * 2e-9
            T += ep["reads_transposed"][e][li] * 1.5e-6
            E += ep["update_cycles"][e][li].sum() * 2 * tiles[li] * 5e-9
            T += ep["update_cycles"][e][li].sum() * 4e-6
            E += ep["refreshes"][e][li].sum() * e_ref
            T += ep["refreshes"][e][li].sum() * t_ref
            if cell == "multi":
                E += n * 7e-12
                T += n * 3e-9
        row = led["epochs"][e - 1]
        assert row["samples"] == n
        assert math.isclose(row["total_energy_J"], E, rel_tol=1e-12)
        assert math.isclose(row["total_time_s"], T, rel_tol=1e-12)
        assert math.isclose(row["energy_per_sample_J"], E / n, rel_tol=1e-12)
    # the counts: every sample reads both layers forward and layer 1 transposed
    assert ep["reads_forward"][1:].tolist() == [[200, 200]] * 2
    assert ep["reads_transposed"][1:].tolist() == [[0, 200]] * 2
    cyc = ep["update_cycles"][1:]
    assert np.all(cyc.sum(axis=2) <= 200) and np.all(cyc.sum(axis=2) > 150)
    if cell == "multi":     # the counter visits the 3 arrays in turn
        assert np.all(np.abs(cyc - cyc.mean(axis=2, keepdims=True)) <= 1)


def test_cost_cli_prints_the_ledger_and_its_source(tmp_path, capsys):
    cfg = TrainConfig(name="fp", cell="single", n_hidden=16, n_train=50, n_test=20, epochs=1,
                      cell_params={"rounding": "stochastic"},
                      periphery={"adc_bits": 6, "adc_range": "calibrated"})
    out = tmp_path / "r.h5"
    train(cfg, out, progress=False)
    costs = _costs(tmp_path / "c.json", tile=32)
    assert main(["cost", str(out), "--costs", str(costs), "--json",
                 str(tmp_path / "l.json")]) == 0
    text = capsys.readouterr().out
    assert f"per-event costs: {costs}" in text
    assert "tile_rows = 32, the run's circuit has 64" in text      # the mismatch is said
    led = json.loads((tmp_path / "l.json").read_text())
    assert led["epochs"][0]["samples"] == 50
    # the run's ADC resolution prices the reads' periphery (here all periphery figures 0)
    assert led["prices"]["read_forward"][0] == pytest.approx(1e-9)
    with h5py.File(out, "a") as f:          # a run file from before the ledger
        del f["epochs/samples"]
    assert main(["cost", str(out), "--costs", str(costs)]) == 1
    assert "no cost ledger" in capsys.readouterr().err


def test_cost_study_end_to_end(tmp_path, capsys):
    """``pyspice-rram cost STUDY.toml --quick``: trains, writes table, JSON and figure whose
    numbers are the runs' ledgers."""
    study = tmp_path / "s.toml"
    study.write_text('title = "t"\n'
                     '[[run]]\nlabel = "single"\nbase = "B"\ncell = "single"\n'
                     '[[run]]\nlabel = "single, ADC 4"\nbase = "B"\ncell = "single"\n'
                     'periphery = { adc_bits = 4, adc_range = "calibrated" }\n')
    costs = _costs(tmp_path / "c.json")
    out = tmp_path / "out"
    assert main(["cost", str(study), "-o", str(out), "--quick", "-q", "--costs",
                 str(costs)]) == 0
    for suffix in (".md", ".json", ".png"):
        assert (out / f"s_cost{suffix}").is_file()
    res = json.loads((out / "s_cost.json").read_text())
    assert [r["read_path"] for r in res["rows"]] == ["ideal", "ADC 4 b (calibrated)"]
    for r in res["rows"]:
        led = run_ledger(out / "runs" / f"{r['run']}.h5", costs)
        assert r["epochs"] == 1 and led["epochs"][0]["samples"] == r["samples"]
        assert math.isclose(r["energy_per_sample_J"], led["epochs"][0]["energy_per_sample_J"],
                            rel_tol=1e-12)
    table = (out / "s_cost.md").read_text()     # accuracy vs ADC bits: 4 bits, ideal
    ideal, adc = res["rows"]
    assert f"| single | {adc['test']:.2f} | {ideal['test']:.2f} |" in table
