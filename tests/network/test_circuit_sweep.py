"""The circuit sweep (issue 11, point 2) end to end on the 8x8 digits, and its config errors.

Independent expectations: the ideal-read accuracy (c) equals a NumPy forward pass of the
stored final weights on the same images; with a near-ideal circuit (16x16 tiles, 0.05 Ω
segments) the circuit accuracy of the ideal-trained network (a) equals (c) within one
image.
"""

from __future__ import annotations

import json
import textwrap

import h5py
import numpy as np
import pytest

from pyspice_rram.errors import ConfigError, UserInputError
from pyspice_rram.paper.circuit_sweep import CircuitSweep, run_sweep

SWEEP = textwrap.dedent("""
    title = "digits smoke sweep"
    tiles = [16]
    r_wire = [0.1, 5.0]
    n_images = 40
    solver = "mna"

    [train]
    name = "dig"
    cell = "hybrid"
    dataset = "digits"
    n_hidden = 20
    epochs = 1
    w_max = [1.0, 2.0]
    save_weights = true
    [train.cell_params]
    rounding = "stochastic"
    k = 10.0
    [train.device]
    n_states = 50
    c2c = 0.0
""")


def _write(tmp_path, text, name="sweep.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_sweep_file_errors_name_file_key_and_value(tmp_path):
    with pytest.raises(ConfigError, match=r"bad.toml.*tiles.*\[0\]"):
        CircuitSweep.load(_write(tmp_path, SWEEP.replace("tiles = [16]", "tiles = [0]"),
                                 "bad.toml"))
    with pytest.raises(ConfigError, match=r"r_wire.*-1"):
        CircuitSweep.load(_write(tmp_path, SWEEP.replace("[0.1, 5.0]", "[-1.0]")))
    with pytest.raises(ConfigError, match=r"n_tiles.*unknown key"):
        CircuitSweep.load(_write(tmp_path, "n_tiles = 3\n" + SWEEP))
    with pytest.raises(ConfigError, match=r"\[train\].*lr"):
        CircuitSweep.load(_write(tmp_path, SWEEP.replace("epochs = 1", "epochs = 1\nlr = 0")))
    with pytest.raises(UserInputError, match="not found"):
        CircuitSweep.load(tmp_path / "missing.toml")


def test_sweep_configs_differ_only_in_backend_and_circuit(tmp_path):
    sw = CircuitSweep.load(_write(tmp_path, SWEEP))
    ideal, s01, s5 = sw.configs()
    assert (ideal.name, ideal.backend) == ("dig_ideal", "ideal")
    assert (s5.name, s5.backend) == ("dig_surrogate_t16_r5", "surrogate")
    assert s01.name == "dig_surrogate_t16_r0p1"
    assert (s5.circuit.tile_rows, s5.circuit.tile_cols, s5.circuit.r_wire_row,
            s5.circuit.r_wire_col) == (16, 16, 5.0, 5.0)
    a, b = ideal.to_dict(), s5.to_dict()
    diff = {k for k in a if a[k] != b[k]}
    assert diff == {"name", "backend", "circuit"}


def test_sweep_end_to_end_on_digits(tmp_path):
    from pyspice_rram.network.data import load_dataset

    sw = CircuitSweep.load(_write(tmp_path, SWEEP))
    res = run_sweep(sw, tmp_path / "out", progress=False, stem="smoke")
    rows = res["rows"]
    assert [(r["tile"], r["r_wire"]) for r in rows] == [(16, 0.1), (16, 5.0)]
    # (c): the ideal reads of the stored final weights, by NumPy
    with h5py.File(tmp_path / "out" / "runs" / "dig_ideal.h5") as f:
        W = [np.asarray(f[f"final/layer{i}/W"], float) for i in range(2)]
    data = load_dataset("digits")
    x, y = data.dense("test", 0, 40), data.y_test[:40]
    h = 1 / (1 + np.exp(-(np.c_[x, np.ones(len(x))] @ W[0])))
    z = np.c_[h, np.ones(len(h))] @ W[1]
    assert rows[0]["c_ideal"] == pytest.approx(100 * np.mean(z.argmax(1) == y), abs=1e-9)
    # (a) at 0.1 Ω on 16x16 tiles is the ideal read within one image of 40
    assert abs(rows[0]["a_ideal_trained_circuit"] - rows[0]["c_ideal"]) <= 100 / 40 + 1e-9
    for r in rows:
        assert r["loss"] == pytest.approx(r["c_ideal"] - r["a_ideal_trained_circuit"])
        assert r["recovery"] == pytest.approx(r["b_surrogate_trained_circuit"]
                                              - r["a_ideal_trained_circuit"])
    with h5py.File(res["h5"]) as f:
        np.testing.assert_allclose(f["c_ideal"][:], [r["c_ideal"] for r in rows])
        assert f["r_wire"].attrs["unit"] == "ohm per segment"
    assert json.loads((tmp_path / "out" / "smoke.json").read_text())["rows"][1]["tile"] == 16
    assert (tmp_path / "out" / "smoke.png").stat().st_size > 1000
    md = (tmp_path / "out" / "smoke.md").read_text()
    assert "| 16×16 | 5 |" in md
    # a second call re-uses the runs and the checks (no retraining, same numbers)
    again = run_sweep(sw, tmp_path / "out", progress=False, stem="smoke")
    assert [r["a_ideal_trained_circuit"] for r in again["rows"]] == \
        [r["a_ideal_trained_circuit"] for r in rows]
