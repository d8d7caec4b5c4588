"""The surrogate as a VMM backend: consistency with tile-by-tile circuit reads and staleness."""

from __future__ import annotations

import numpy as np
import pytest

from pyspice_rram.device.card import ModelCard
from pyspice_rram.network.data import load_dataset
from pyspice_rram.network.rng import seed_state
from pyspice_rram.errors import ConfigError
from pyspice_rram.network.train import Network, TrainConfig, train
from pyspice_rram.surrogate.backend import (SurrogateBackend, surrogate_forward,
                                            surrogate_transpose)
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
    order = np.arange(200)
    net.train_samples(data, order, 0, 200, seed_state(0, 1), np.zeros(2))
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


@pytest.mark.parametrize("cell", ["multi", "hybrid"])
def test_incremental_stacks_equal_the_sums_over_the_devices(setup, cell):
    """After 300 compiled samples (no factor refresh) the stacks kept up to date device by
    device (only the programmed array per sample) equal ``W_h = sum coef (G0 + S GR)`` and
    ``W_dh = sum coef (G0 + S GR) F`` summed afresh over every device of every array
    (float32 storage: 1e-6 of the largest entry)."""
    data, _, _ = setup
    cfg = TrainConfig(dataset="digits", cell=cell, n_hidden=40, epochs=1, seed=4,
                      w_max=[0.5, 0.5], cell_params={"rounding": "stochastic"}
                      | ({"n_devices": 3} if cell == "multi" else {}))
    be = SurrogateBackend(tile=(16, 16), r_wire=2.0, refresh_every=10 ** 6)
    net = Network(cfg, data.n_features, data.n_classes, backend=be)
    S0 = [st.S.copy() for st in net.layers]
    order = np.random.default_rng(3).permutation(len(data.y_train))[:300]
    net.train_samples(data, order, 0, 300, seed_state(4, 1), np.zeros(2))
    assert be.refreshes == 3                  # layer 0 forward, layer 1 both directions
    for li, L in enumerate(net.layers):
        moved = np.abs(L.S - S0[li]).max(axis=(1, 2, 3))
        # multi-device: every array in turn (the counter); hybrid: the small pair
        assert (moved > 0).sum() == (L.S.shape[0] if cell == "multi" else 1)
        st = be._state[li]
        g = st["G0"].astype(float) + st["S"].astype(float) * st["GR"].astype(float)
        n_in = L.Wr.shape[0]
        for direction, d in st["dirs"].items():
            wh = np.einsum("ap,apij->ij", st["coef"], g)
            wdh = np.einsum("ap,apij->ij", st["coef"], g * d["F"]["dh"])
            want = np.concatenate([wh, wdh]) if direction == "forward" else \
                np.concatenate([wh.T, wdh.T])
            got = d["stack"]
            assert np.max(np.abs(got - want)) <= 1e-6 * np.max(np.abs(want)), direction


def test_backend_refuses_invalid_settings():
    with pytest.raises(SurrogateValidityError, match="r_wire"):
        SurrogateBackend(r_wire=50.0)
    with pytest.raises(SurrogateValidityError, match="tile"):
        SurrogateBackend(tile=(512, 512))


@pytest.mark.parametrize("cell", ["hybrid", "multi", "fp", "2t2r"])
def test_compiled_reads_equal_batched_reads(setup, cell):
    """The compiled reads of the SGD loop (first order) equal the backend's batched reads of
    the same layer state after 150 compiled training samples (float32 rounding)."""
    data, _, _ = setup
    cfg = TrainConfig(dataset="digits", cell=cell, n_hidden=40, epochs=1, seed=5,
                      w_max=[0.5, 0.5], cell_params={} if cell == "fp" else
                      {"rounding": "stochastic"})
    be = SurrogateBackend(tile=(16, 16), r_wire=2.0, refresh_every=60)
    net = Network(cfg, data.n_features, data.n_classes, backend=be)
    order = np.random.default_rng(2).permutation(len(data.y_train))[:150]
    net.train_samples(data, order, 0, 150, seed_state(5, 1), np.zeros(2))
    assert be.samples == 150 and be.refreshes >= 3           # refreshed every 60 samples
    reads, n = be.compiled_reads(10 ** 6)
    assert n == 60 - 150 % 60
    x = data.dense("test", 0, 1)[0]
    idx = np.flatnonzero(x).astype(np.int64)
    vals = x[idx].astype(np.float32)
    L0, L1 = net.layers
    z = surrogate_forward(reads, 0, L0, idx, vals).copy()
    ref = be.forward(0, L0.Wr, x[None])[0]
    np.testing.assert_allclose(z, ref, rtol=0, atol=2e-5 * np.max(np.abs(ref)))
    d = np.random.default_rng(1).normal(size=L1.Wr.shape[1]).astype(np.float32)
    e = np.empty(L1.Wr.shape[0] - 1)
    scale = surrogate_transpose(reads, 1, L1, d, e)
    ref = be.transpose(1, L1.Wr, d[None])[0]
    np.testing.assert_allclose(e * scale, ref, rtol=0, atol=2e-5 * np.max(np.abs(ref)))


def test_check_command_on_a_small_run(tmp_path, capsys):
    """`pyspice-rram check`: ideal, surrogate and MNA-on-every-tile paths of a trained run;
    the surrogate's pre-activations are far closer to the circuit than the ideal ones."""
    import json

    from pyspice_rram.cli import main

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


#: per cell: (cell parameters, learning rate, hidden neurons, epochs, lowest accuracy, largest
#: |surrogate - ideal| accuracy difference); 600 training digits, 300 test digits, chance 0.1.
#: The 2T2R cell (sign reads) learns slowest on so few samples, and its runs are chaotic:
#: over seeds 0-2 the ideal-read runs end at 0.46-0.52 and the surrogate runs at 0.24-0.54
#: (a 1e-7 change of the first-order read term flips sign reads), so its bound is loose.
CELL_RUNS = {
    "fp": ({}, 0.5, 32, 4, 0.8, 0.05),
    "single": ({"rounding": "stochastic"}, 0.5, 32, 4, 0.8, 0.05),
    "hybrid": ({"rounding": "stochastic"}, 0.5, 32, 4, 0.8, 0.05),
    "multi": ({"rounding": "stochastic", "n_devices": 4}, 0.5, 32, 4, 0.8, 0.05),
    "2t2r": ({"rounding": "stochastic"}, 0.2, 64, 6, 0.4, 0.15),
}


@pytest.mark.parametrize("cell", sorted(CELL_RUNS))
def test_surrogate_backend_trains_every_cell(setup, cell):
    """The one SGD loop trains every cell through the surrogate's reads (32x32 tiles, 1 Ω per
    segment): test accuracy well above chance and within the stated difference of the same
    run with ideal reads; the weights differ from the ideal run (the IR drop is read)."""
    data = setup[0].subset(600, 300)
    params, lr, n_hidden, epochs, lowest, diff = CELL_RUNS[cell]
    cfg = TrainConfig(cell=cell, n_hidden=n_hidden, epochs=epochs, seed=0, lr=lr,
                      w_max=[1.0, 1.0], cell_params=params, device={"n_states": 50})
    ideal = train(cfg, data=data, progress=False)
    sur = train(cfg, data=data, progress=False,
                backend=SurrogateBackend(tile=(32, 32), r_wire=1.0))
    a_ideal = ideal.history.epochs["test_acc"][-1]
    a_sur = sur.history.epochs["test_acc"][-1]
    assert a_sur >= lowest
    assert abs(a_sur - a_ideal) <= diff
    assert not np.array_equal(ideal.network.layers[0].Wa, sur.network.layers[0].Wa)


def test_backend_takes_the_network_card_or_refuses_it(setup):
    """Without a card of its own the backend takes the network's card; built for a card of
    another read law it refuses the network's card with an error naming the card."""
    data, cfg, net0 = setup
    other = CARD.replace(g_max_density=2 * CARD.g_max_density)
    be = SurrogateBackend(tile=(16, 16), r_wire=1.0, on_invalid="warn")
    with pytest.warns(UserWarning, match="differs from the fitted card"):
        Network(cfg, data.n_features, data.n_classes, card=other, backend=be,
                layers=[st.copy() for st in net0.layers])
    assert be.card is other
    be = SurrogateBackend(tile=(16, 16), r_wire=1.0, card=CARD)
    with pytest.raises(ConfigError, match="for_card"):
        Network(cfg, data.n_features, data.n_classes, card=other, backend=be,
                layers=[st.copy() for st in net0.layers])


def test_reads_only_backend_refuses_to_train(setup):
    """The circuit backend of `check` (a tile solve per read) has no compiled kernels: asked
    to train, it raises instead of training with the surrogate's reads it inherits."""
    data, cfg, net0 = setup
    be = CircuitBackend(TileSurrogate.load(), solver="ideal", tile=(16, 16), r_wire=0.0)
    net = _net(cfg, data, net0, be)
    with pytest.raises(ConfigError, match="cannot train"):
        net.train_samples(data, np.arange(5), 0, 5, seed_state(0, 1), np.zeros(2))


def test_for_card_refits_a_surrogate_for_another_card(tmp_path):
    """One call gives a backend for a card: the shipped surrogate for the card it was fitted
    for; for a card of another read law (G_max x 1.5), which the shipped surrogate refuses,
    a surrogate refitted on a small ngspice data set of that card."""
    from pyspice_rram.surrogate.backend import same_read_law
    from pyspice_rram.surrogate.dataset import DataSpec

    shipped = SurrogateBackend.for_card(CARD, tile=(16, 16))
    assert shipped.sur.to_dict() == TileSurrogate.load().to_dict()
    other = CARD.replace(g_max_density=1.5 * CARD.g_max_density)
    with pytest.raises(SurrogateValidityError, match="for_card"):
        SurrogateBackend(card=other, tile=(16, 16))
    spec = DataSpec(n_items=6, sizes=[16, 32], n_vectors=4, test_fraction=0.34,
                    mna_fraction=0.0, seed=1)
    be = SurrogateBackend.for_card(other, tmp_path, spec=spec, tile=(16, 16))
    assert (tmp_path / "surrogate_data.h5").is_file()
    assert be.card is other and same_read_law(ModelCard.from_dict(be.sur.card), other)
    assert be.sur.validity["size"] == [16, 32]
