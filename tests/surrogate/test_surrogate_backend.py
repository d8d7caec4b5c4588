"""The surrogate as a VMM backend: consistency with tile-by-tile circuit reads and staleness."""

from __future__ import annotations

import numpy as np
import pytest

from pyspice_rram.device.card import ModelCard
from pyspice_rram.network.data import load_dataset
from pyspice_rram.network.train import Network, TrainConfig
from pyspice_rram.surrogate.backend import SurrogateBackend
from pyspice_rram.surrogate.check import CircuitBackend
from pyspice_rram.surrogate.model import SurrogateValidityError, TileSurrogate

CARD = ModelCard.reference()


@pytest.fixture(scope="module")
def setup():
    data = load_dataset("digits")
    cfg = TrainConfig(dataset="digits", cell="hybrid", n_hidden=40, epochs=1, seed=3,
                      w_max=[1.0, 1.0])
    net = Network(cfg, data.n_features, data.n_classes)
    return data, cfg, net


def _net(cfg, data, net, backend):
    n = Network(cfg, data.n_features, data.n_classes, backend=backend,
                layers=[st.copy() for st in net.layers])
    return n


@pytest.mark.parametrize("r_wire", [0.0, 3.0])
def test_backend_matches_tile_by_tile_reads(setup, r_wire):
    """Layer reads of the backend equal the sum of per-tile reads solved by MNA (r > 0,
    within 0.1 % of the largest output) or by the ideal product (r = 0, float32 exact)."""
    data, cfg, net0 = setup
    sur = TileSurrogate.load()
    kw = dict(tile=(16, 16), r_wire=r_wire)
    fast = _net(cfg, data, net0, SurrogateBackend(sur, second_order=True, **kw))
    circ = _net(cfg, data, net0, CircuitBackend(sur, solver="mna" if r_wire else "ideal", **kw))
    x = data.dense("test", 0, 6)
    for li, inp in enumerate([x, np.random.default_rng(0).uniform(0, 1, (6, 40))]):
        W = fast.layers[li].Wr
        a = fast.backend.forward(li, W, inp)
        b = circ.backend.forward(li, W, inp)
        tol = 1e-5 if r_wire == 0 else 1e-3
        assert np.max(np.abs(a - b)) <= tol * np.max(np.abs(b))
        d = np.random.default_rng(li).normal(size=(3, W.shape[1])).astype(np.float32)
        a = fast.backend.transpose(li, W, d)
        b = circ.backend.transpose(li, W, d)
        assert a.shape == (3, W.shape[0] - 1)
        assert np.max(np.abs(a - b)) <= tol * np.max(np.abs(b))
    if r_wire == 0:  # at full-scale inputs, the ideal read is the weight matrix product
        W = fast.layers[0].Wr
        ones = np.ones((1, W.shape[0] - 1), np.float32)
        np.testing.assert_allclose(fast.backend.forward(0, W, ones)[0], W.sum(0), rtol=1e-4,
                                   atol=1e-5)


def test_incremental_updates_track_training(setup):
    """Between factor refreshes the effective matrices follow the weight updates row by
    row; the result stays within 0.05 % of a freshly refreshed read."""
    data, cfg, net0 = setup
    be = SurrogateBackend(tile=(16, 16), r_wire=2.0, refresh_every=10 ** 6)
    net = _net(cfg, data, net0, be)
    indptr, indices, values = data.csr("train")
    from pyspice_rram.network import kernels as K

    order = np.arange(200)
    net.train_samples(data, order, 0, 200, K.seed_state(0, 1), np.zeros(2))
    assert be.refreshes <= 3  # only the first read of each layer/direction
    x = data.dense("test", 0, 1)
    W = net.layers[0].Wr
    stale = be.forward(0, W, x)
    fresh = SurrogateBackend(tile=(16, 16), r_wire=2.0)
    fresh.bind(net)
    new = fresh.forward(0, W, x)
    assert np.max(np.abs(stale - new)) <= 5e-4 * np.max(np.abs(new))
    ideal = x @ W[:-1] + W[-1]
    assert not np.allclose(new, ideal, rtol=1e-3)  # the IR drop is visible


def test_backend_refuses_invalid_settings():
    with pytest.raises(SurrogateValidityError, match="r_wire"):
        SurrogateBackend(r_wire=50.0)
    with pytest.raises(SurrogateValidityError, match="tile"):
        SurrogateBackend(tile=(512, 512))


def test_compiled_loop_equals_python_path(setup):
    """The compiled per-sample loop trains exactly like the network's Python path with the
    same backend reads: same device states and the same counters after 150 samples."""
    data, _, _ = setup
    from pyspice_rram.network import kernels as K

    cfg = TrainConfig(dataset="digits", cell="hybrid", n_hidden=40, epochs=1, seed=5,
                      w_max=[0.5, 0.5], cell_params={"rounding": "stochastic"})
    base = Network(cfg, data.n_features, data.n_classes)
    order = np.random.default_rng(2).permutation(len(data.y_train))[:150]
    nets, counts = [], []
    for compiled in (False, True):
        be = SurrogateBackend(tile=(16, 16), r_wire=2.0, refresh_every=60)
        net = _net(cfg, data, base, be)
        cnt = np.zeros(2)
        rng = K.seed_state(5, 1)
        if compiled:
            be.train_samples(net, data, order, 0, 150, rng, cnt)
        else:
            net.train_samples(data, order, 0, 150, rng, cnt)
        nets.append(net)
        counts.append(cnt)
        assert be.samples == 150
    assert nets[0].layers[0].stats[:, 0].sum() > 0          # layer 0 did learn something
    for a, b in zip(nets[0].layers, nets[1].layers):
        assert np.mean(a.S == b.S) > 0.999
    assert counts[0][0] == counts[1][0]
    np.testing.assert_allclose(counts[0][1], counts[1][1], rtol=1e-4)


def test_check_command_on_a_small_run(tmp_path, capsys):
    """`pyspice-rram check`: ideal, surrogate and MNA-on-every-tile paths of a trained run;
    the surrogate's pre-activations are far closer to the circuit than the ideal ones."""
    import json

    from pyspice_rram.cli import main
    from pyspice_rram.network.train import train

    cfg = TrainConfig(dataset="digits", cell="hybrid", n_hidden=24, epochs=1, seed=1,
                      n_train=300, n_test=40, w_max=[0.5, 1.0],
                      cell_params={"rounding": "stochastic"})
    train(cfg, tmp_path / "run.h5", progress=False)
    out = tmp_path / "check.json"
    assert main(["check", str(tmp_path / "run.h5"), "--n-images", "12", "--solver", "mna",
                 "--tile", "16", "--r-wire", "3.0", "--workers", "1", "--no-progress",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["accuracy"]) == {"ideal", "surrogate", "mna"}
    assert res["tiles_solved"] > 0
    for layer in res["layers"]:
        assert layer["surrogate"]["rms"] < 0.1 * layer["ideal"]["rms"]
    assert "accuracy" in capsys.readouterr().out
