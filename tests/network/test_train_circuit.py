"""The crossbar seen by training: the ``[circuit]`` table of a config, the backend built from
it, the ``train`` options that override it, and the surrogate's input range (issue 11,
point 1 and the input-range part of point 4)."""

from __future__ import annotations

import json
import math
import warnings

import h5py
import numpy as np
import pytest

from pyspice_rram.cli import main
from pyspice_rram.device.card import ModelCard
from pyspice_rram.errors import ConfigError, ValidityError
from pyspice_rram.network.backend import IdealBackend, make_backend
from pyspice_rram.network.circuit_spec import CircuitSpec
from pyspice_rram.network.data import load_digits
from pyspice_rram.network.history import load_run
from pyspice_rram.network.train import Network, TrainConfig, train
from pyspice_rram.surrogate.backend import SurrogateBackend
from pyspice_rram.surrogate.check import CircuitBackend
from pyspice_rram.surrogate.model import SurrogateValidityError, TileSurrogate

CIRCUIT_TOML = """name = "circ"
dataset = "digits"
n_hidden = 16
n_train = {n_train}
n_test = 100
epochs = {epochs}
lr = 0.3
cell = "fp"
backend = "{backend}"
w_max = [0.5, 1.0]

[circuit]
tile_rows = 16
tile_cols = 16
r_wire_row = 5.0
r_wire_col = 5.0
{extra}
"""


def circuit_toml(backend="surrogate", n_train=300, epochs=1, extra="") -> str:
    return CIRCUIT_TOML.format(backend=backend, n_train=n_train, epochs=epochs, extra=extra)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


# ---------------------------------------------------------------------------- the table
def test_circuit_table_round_trips_and_defaults(tmp_path):
    """TOML -> TrainConfig -> dict -> JSON -> TrainConfig keeps every field; no table means
    the surrogate backend's defaults (64x64, 1 Ω, ideal periphery, the card's V_read)."""
    path = tmp_path / "c.toml"
    path.write_text(circuit_toml(extra="r_driver = 20.0\nr_sense = 10\nv_read = 0.15"))
    cfg = TrainConfig.load(path)
    assert cfg.circuit == CircuitSpec(16, 16, 5.0, 5.0, 20.0, 10.0, 0.15)
    assert isinstance(cfg.circuit.r_sense, float)          # 10 (TOML integer) -> 10.0
    d = cfg.to_dict()
    assert d["circuit"] == {"tile_rows": 16, "tile_cols": 16, "r_wire_row": 5.0,
                            "r_wire_col": 5.0, "r_driver": 20.0, "r_sense": 10.0,
                            "v_read": 0.15}
    back = TrainConfig.from_dict(json.loads(json.dumps(d)))
    assert back.circuit == cfg.circuit and back.to_dict() == d
    (tmp_path / "c.json").write_text(json.dumps(d))
    assert TrainConfig.load(tmp_path / "c.json").circuit == cfg.circuit
    plain = TrainConfig()
    assert plain.circuit == CircuitSpec() and plain.circuit.is_default()
    sur = SurrogateBackend()
    assert (plain.circuit.tile, plain.circuit.r_wire_row, plain.circuit.r_wire_col,
            plain.circuit.r_driver, plain.circuit.r_sense) == \
        (sur.tile, sur.r_wire, sur.r_wire_col, sur.r_driver, sur.r_sense)
    assert plain.circuit.v_read is None
    # a partial table keeps the other defaults; replace() revalidates
    part = TrainConfig(circuit={"tile_cols": 32})
    assert part.circuit == CircuitSpec(tile_cols=32)
    with pytest.raises(ConfigError, match=r"circuit\.r_sense = -1"):
        part.circuit.replace(r_sense=-1)


@pytest.mark.parametrize("key,value,reason", [
    ("tile_rows", 0, ">= 1"), ("tile_cols", 2.5, "integer"), ("tile_rows", "64", "integer"),
    ("r_wire_row", math.nan, "finite"), ("r_wire_col", -1.0, ">= 0"),
    ("r_driver", math.inf, "finite"), ("r_sense", "0", "number"), ("v_read", 0.0, "> 0"),
    ("r_wire", 5.0, "unknown circuit setting"),
])
def test_bad_circuit_values_name_the_field(tmp_path, key, value, reason):
    """A bad ``[circuit]`` value is a ConfigError naming the file, ``circuit.<key>`` and the
    value, from TOML and from Python alike."""
    text = json.dumps({"name": "x", "circuit": {key: value}})   # NaN, Infinity: JSON5-style
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        TrainConfig.load(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: circuit.{key} = {value!r}"), msg
    assert reason in msg
    with pytest.raises(ConfigError, match=rf"circuit\.{key} = "):
        TrainConfig(circuit={key: value})


def test_unknown_backend_name_is_refused_at_load(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(circuit_toml(backend="spice"))
    with pytest.raises(ConfigError, match=r"c\.toml: backend = 'spice': choose from"):
        TrainConfig.load(path)


# ---------------------------------------------------------------------------- the backend
def test_make_backend_builds_the_circuit_of_the_config():
    """``surrogate`` gets every field (unequal row / column wire included); ``ideal``
    ignores the circuit; an instance is taken as it is."""
    c = CircuitSpec(tile_rows=32, tile_cols=16, r_wire_row=4.0, r_wire_col=0.5,
                    r_driver=10.0, r_sense=20.0, v_read=0.15)
    be = make_backend("surrogate", circuit=c)
    assert isinstance(be, SurrogateBackend)
    assert (be.tile, be.r_wire, be.r_wire_col, be.r_driver, be.r_sense, be.v_read) == \
        ((32, 16), 4.0, 0.5, 10.0, 20.0, 0.15)
    assert be.circuit == c
    assert type(make_backend("ideal", circuit=c)) is IdealBackend
    mine = SurrogateBackend(tile=(16, 16))
    assert make_backend(mine, circuit=c) is mine


def test_surrogate_reads_at_zero_wire_follow_the_sinh_law(digits):
    """With ideal wires and periphery the surrogate is exact: the forward read of an input
    ``x`` is ``sum_j W_j h(x_j V) / h(V)`` with ``h(v) = V_nl sinh(v / V_nl)`` (analytic), so
    binary inputs read exactly the ideal product ``x W``."""
    cfg = TrainConfig(dataset="digits", cell="single", n_hidden=16, seed=1, w_max=[0.5, 1.0],
                      backend="surrogate",
                      circuit=dict(tile_rows=128, tile_cols=128, r_wire_row=0.0, r_wire_col=0.0))
    net = Network(cfg, digits.n_features, digits.n_classes)
    be = net.backend
    assert isinstance(be, SurrogateBackend) and be.tile == (128, 128) and be.r_wire == 0.0
    card = ModelCard.from_dict(TileSurrogate.load().card)
    v_nl, V = float(card.v_nl), float(card.scheme.v_read)
    W = net.layers[0].Wr.astype(float)
    x = digits.dense("test", 0, 8).astype(float)
    h = lambda v: v_nl * np.sinh(v / v_nl)            # noqa: E731
    expect = (h(x * V) / h(V)) @ W[:-1] + W[-1]
    got = be.forward(0, net.layers[0].Wr, x)
    scale = np.max(np.abs(expect))
    assert np.max(np.abs(got - expect)) <= 1e-5 * scale
    # the nonlinearity is visible: the ideal product differs by far more than that
    assert np.max(np.abs(x @ W[:-1] + W[-1] - expect)) > 1e-3 * scale
    xb = (x > 0.5).astype(float)
    ideal = IdealBackend().forward(0, net.layers[0].Wr, xb)
    assert np.max(np.abs(be.forward(0, net.layers[0].Wr, xb) - ideal)) <= 1e-5 * scale


def test_unequal_row_and_column_wire_match_the_circuit(digits):
    """A 4 Ω row / 0.5 Ω column circuit through the surrogate agrees with every tile solved
    by nodal analysis (the MNA solver, an independent solver) within 0.1 % of the largest
    output, forward and transposed; swapping row and column wire changes the read by
    several times that, so the column value is really used."""
    cfg = TrainConfig(dataset="digits", cell="hybrid", n_hidden=40, seed=3, w_max=[1.0, 1.0])
    net = Network(cfg, digits.n_features, digits.n_classes)
    W = net.layers[0].Wr
    x = digits.dense("test", 0, 4)
    d = np.random.default_rng(0).normal(size=(3, W.shape[1])).astype(np.float32)
    reads = []
    for row, col in ((4.0, 0.5), (0.5, 4.0)):
        c = CircuitSpec(tile_rows=16, tile_cols=32, r_wire_row=row, r_wire_col=col)
        sur = SurrogateBackend.from_circuit(c)
        mna = CircuitBackend(solver="mna", tile=c.tile, r_wire=row, r_wire_col=col)
        for be in (sur, mna):
            be.bind(net)
        a, b = sur.forward(0, W, x), mna.forward(0, W, x)
        assert np.max(np.abs(a - b)) <= 1e-3 * np.max(np.abs(b))
        a, b = sur.transpose(0, W, d), mna.transpose(0, W, d)
        assert np.max(np.abs(a - b)) <= 1e-3 * np.max(np.abs(b))
        reads.append(sur.forward(0, W, x))
    assert np.max(np.abs(reads[0] - reads[1])) > 3e-3 * np.max(np.abs(reads[0]))


@pytest.mark.parametrize("changes,words", [
    (dict(tile_rows=256), ["tile_rows = 256", "[16, 128]"]),
    (dict(tile_cols=8), ["tile_cols = 8", "[16, 128]"]),
    (dict(r_wire_col=20.0), ["r_wire_col = 20", "10 Ω"]),
    (dict(r_sense=80.0), ["r_sense = 80", "50 Ω"]),
    (dict(v_read=0.8), ["v_read = 0.8", "0.2 V"]),
])
def test_circuit_outside_the_surrogate_range_is_refused(changes, words):
    """Values the surrogate was not fitted on are a ValidityError naming the setting, its
    value and the valid range (read from the shipped surrogate's ``validity``)."""
    val = TileSurrogate.load().validity
    assert val["size"] == [16, 128] and val["r_wire"][1] == 10.0 and val["v_max"] == 0.2
    with pytest.raises(SurrogateValidityError) as err:
        make_backend("surrogate", circuit=CircuitSpec(**changes))
    for w in words:
        assert w in str(err.value), str(err.value)


# ---------------------------------------------------------------------------- training
def test_surrogate_run_through_the_cli_trains_and_records_the_circuit(tmp_path, capsys):
    """``train CONFIG --backend surrogate --tile 16 --r-wire 5 --r-wire-col 0.5``: the run
    learns (test accuracy from chance to >= 50 % in 2 epochs of 1,000 digits), reads differ from
    the ideal run of the same config, and the run file records the circuit and the
    backend."""
    path = tmp_path / "c.toml"
    path.write_text(circuit_toml(backend="ideal", n_train=1000, epochs=2))
    out = tmp_path / "sur.h5"
    assert main(["train", str(path), "-o", str(out), "-q", "--backend", "surrogate",
                 "--tile", "16", "--r-wire", "5", "--r-wire-col", "0.5", "--r-sense", "20"]) == 0
    hist, _, _ = load_run(out)
    assert hist.config["backend"] == "surrogate"
    assert hist.config["circuit"] == {"tile_rows": 16, "tile_cols": 16, "r_wire_row": 5.0,
                                      "r_wire_col": 0.5, "r_driver": 0.0, "r_sense": 20.0,
                                      "v_read": None}
    acc = np.asarray(hist.epochs["test_acc"])
    assert acc[0] <= 0.2 and acc[-1] >= 0.5, acc
    capsys.readouterr()
    ideal = tmp_path / "ideal.h5"
    assert main(["train", str(path), "-o", str(ideal), "-q"]) == 0
    assert "note: backend 'ideal' does not model the circuit" in capsys.readouterr().err
    hist_i, _, _ = load_run(ideal)
    assert hist_i.config["circuit"]["r_wire_row"] == 5.0          # recorded, not used
    assert not np.array_equal(np.asarray(hist_i.epochs["train_mse"]),
                              np.asarray(hist.epochs["train_mse"]))
    # the config with the circuit of the run resumes it; another circuit does not
    cfg = TrainConfig.from_dict(hist.config)
    assert train(cfg.replace(epochs=3), out, resume=True, progress=False
                 ).history.completed_epochs == 3
    with pytest.raises(ValueError, match="circuit"):
        train(cfg.replace(epochs=4, circuit=cfg.circuit.replace(r_wire_col=1.0)), out,
              resume=True, progress=False)


def test_run_file_without_circuit_table_resumes(digits, tmp_path):
    """A run file written before the ``[circuit]`` table (no ``circuit`` in its config)
    resumes with today's config (default circuit) and ends bit-identical to an
    uninterrupted run; training it again without --resume is the same run, not another."""
    data = digits.subset(200, 50)
    cfg = TrainConfig(cell="single", n_hidden=8, epochs=2, seed=4, w_max=[0.5, 1.0],
                      cell_params=dict(rounding="stochastic"), device=dict(n_states=20))
    full = train(cfg, data=data, progress=False)
    out = tmp_path / "old.h5"
    train(cfg, out, data=data, progress=False, stop_after=1)
    with h5py.File(out, "r+") as f:
        old = json.loads(f.attrs["config"])
        assert old.pop("circuit") == CircuitSpec().to_dict()
        f.attrs["config"] = json.dumps(old)
    assert "circuit" not in load_run(out, with_checkpoint=False)[0].config
    res = train(cfg, out, data=data, progress=False, resume=True)
    assert res.history.completed_epochs == 2
    for la, lb in zip(full.network.layers, res.network.layers):
        np.testing.assert_array_equal(la.S, lb.S)
    # not resuming: the old file holds the same run, so it is replaced without --force
    train(cfg.replace(epochs=1), out, data=data, progress=False)


def test_ablation_study_accepts_a_circuit_table(tmp_path):
    from common_inputs import study
    from pyspice_rram.paper.ablation import load_study

    path = tmp_path / "s.toml"
    path.write_text(study(extra='backend = "surrogate"\n[run.circuit]\ntile_rows = 32\n'
                          'r_wire_row = 2.5'))
    (_, cfg), = load_study(path)[1]
    assert cfg.backend == "surrogate"
    assert cfg.circuit == CircuitSpec(tile_rows=32, r_wire_row=2.5)
    path.write_text(study(extra="[run.circuit]\ntile_rows = 0"))
    with pytest.raises(ConfigError, match=r"s\.toml: run 1: circuit\.tile_rows = 0"):
        load_study(path)


# ---------------------------------------------------------------------------- input range
def test_prepared_read_refuses_voltages_above_the_fitted_range():
    """``PreparedRead.apply`` checks its inputs like ``predict``: a 0.8 V read (4x the
    fitted 0.2 V) is a ValidityError naming the value and the limit (a warning with
    ``on_invalid='warn'``), a NaN is always an error, and reads in range equal
    ``predict``."""
    from pyspice_rram.circuit.tile import Tile

    sur = TileSurrogate.load()
    card = ModelCard.from_dict(sur.card)
    rng = np.random.default_rng(2)
    tile = Tile(x=rng.uniform(0, 1, (32, 32)), card=card, r_wire_row=2.0, r_wire_col=2.0)
    v = rng.uniform(0, 0.2, (3, 32))
    for direction in ("forward", "transposed"):
        prep = sur.prepare(tile, direction)
        np.testing.assert_array_equal(prep.apply(v), sur.predict(tile, v, direction))
        with pytest.raises(ValidityError, match=r"0\.8 V above .*v_max = 0\.2 V"):
            prep.apply(v * 4 / np.max(v) * 0.2)
        bad = v.copy()
        bad[1, 3] = np.nan
        with pytest.raises(ValidityError, match="finite"):
            prep.apply(bad)
    warn = TileSurrogate.load(on_invalid="warn").prepare(tile)
    with pytest.warns(UserWarning, match="v_max"):
        out = warn.apply(np.full((1, 32), 0.8))
    assert out.shape == (1, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn.apply(v)                               # in range: no warning


def test_a_backend_instance_is_what_the_run_file_records(digits, tmp_path):
    """A SurrogateBackend *instance* given to ``train`` with a config that says ``ideal``:
    the run file records ``surrogate`` and the instance's circuit (16x16, 2 Ω row wire), not
    the config's ``ideal`` -- a run file must say what the network was trained through."""
    cfg = TrainConfig(name="inst", dataset="digits", n_hidden=16, n_train=200, n_test=50,
                      epochs=1, cell="fp", w_max=[0.5, 1.0])
    assert cfg.backend == "ideal"
    out = tmp_path / "inst.h5"
    train(cfg, out, data=digits.subset(200, 50), progress=False,
          backend=SurrogateBackend(tile=(16, 16), r_wire=2.0))
    stored = load_run(out, with_checkpoint=False)[0].config
    assert stored["backend"] == "surrogate"
    assert stored["circuit"]["tile_rows"] == 16 and stored["circuit"]["r_wire_row"] == 2.0
    # an instance of the ideal backend keeps the config as it is
    out2 = tmp_path / "ideal.h5"
    train(cfg, out2, data=digits.subset(200, 50), progress=False, backend=IdealBackend())
    assert load_run(out2, with_checkpoint=False)[0].config["backend"] == "ideal"


def test_check_reads_through_the_circuit_of_the_run(digits, tmp_path, capsys):
    """``check RUN`` without circuit options reads through the run's ``[circuit]`` (16x16,
    5 Ω rows, 0.5 Ω columns), not the 64x64 / 1 Ω defaults; options given override it (a
    given ``--r-wire`` sets the columns too)."""
    path = tmp_path / "c.toml"
    path.write_text(circuit_toml(backend="ideal", n_train=200, extra="").replace(
        "r_wire_col = 5.0", "r_wire_col = 0.5"))
    out = tmp_path / "run.h5"
    assert main(["train", str(path), "-o", str(out), "-q"]) == 0
    res = tmp_path / "check.json"
    assert main(["check", str(out), "--n-images", "5", "--solver", "mna", "-q",
                 "-o", str(res)]) == 0
    got = json.loads(res.read_text())
    assert got["tile"] == [16, 16] and got["r_wire"] == 5.0 and got["r_wire_col"] == 0.5
    assert "5.0 Ω/row segment, 0.5 Ω/column segment" in capsys.readouterr().out
    assert main(["check", str(out), "--n-images", "5", "--solver", "mna", "-q", "--tile", "32",
                 "--r-wire", "2", "-o", str(res), "--force"]) == 0
    got = json.loads(res.read_text())
    assert got["tile"] == [32, 32] and got["r_wire"] == 2.0 and got["r_wire_col"] == 2.0
    assert main(["check", str(out), "--r-wire", "nan"]) == 1
    assert "--r-wire nan" in capsys.readouterr().err
