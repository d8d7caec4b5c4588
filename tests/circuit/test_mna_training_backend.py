"""The ``mna`` tile backend: training through the crossbar circuit solved by the cell-space
solver (issue 11, point 1: MNA usable for every cell type in small networks).

(a) the compiled reads of the SGD loop equal the batched reads of
    :class:`~pyspice_rram.surrogate.check.CircuitBackend` with the cell-space solver (an
    independent path: Tile objects, :func:`~pyspice_rram.circuit.parallel.solve_tiles`),
    pair and mapped cells, IR-dropped and padded edge tiles;
(b) after training samples, the conductances kept up to date by the update kernel equal
    freshly built ones, and the compiled reads equal batched reads of the final weights;
(c) short digits trainings: at 0.01 Ω the run follows the ideal one (the difference is the
    sinh read law) and the surrogate's to 0.5 %; at a strong IR drop it follows the
    surrogate's training at that IR drop, not the ideal one;
plus the configuration paths (TOML, CLI), the cost warning and a non-converging solve.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pyspice_rram.circuit.mna import ConvergenceError
from pyspice_rram.cli import main
from pyspice_rram.network.backend import make_backend
from pyspice_rram.network.data import load_digits
from pyspice_rram.network.history import load_run
from pyspice_rram.network.rng import seed_state
from pyspice_rram.network.train import Network, TrainConfig, train
from pyspice_rram.surrogate.backend import SurrogateBackend
from pyspice_rram.surrogate.check import CircuitBackend
from pyspice_rram.surrogate.mna_backend import (MNABackend, WARN_CELLS_PER_SAMPLE,
                                                mna_forward, mna_transpose)

#: tiles of 16x16 cells at 5 Ω per segment: layer 1 (65 x 40 cells with the bias row) is
#: 5 x 3 tiles, the last tile row and column padded; layer 2 (41 x 10) 3 x 1 tiles, padded
TILE = (16, 16)
R_WIRE = 5.0


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _config(cell: str, **kw) -> TrainConfig:
    params = {} if cell == "fp" else {"rounding": "stochastic"}
    base = dict(cell=cell, n_hidden=40, seed=4, lr=0.5, w_max=[0.5, 0.5], cell_params=params,
                backend="mna", circuit=dict(tile_rows=TILE[0], tile_cols=TILE[1],
                                            r_wire_row=R_WIRE, r_wire_col=R_WIRE))
    base.update(kw)
    return TrainConfig(**base)


def _compiled_vs_batched(net, reads, data) -> float:
    """Largest difference (of the peak) of the compiled reads against the batched
    cell-space reads of an independent CircuitBackend (Tile objects, solve_tiles): forward
    reads of both layers on two test digits (layer 2 reading the hidden outputs of the
    circuit), transposed read of layer 2 for two error vectors; the mna backend's own
    batched reads (parallel compiled path) likewise."""
    ref = CircuitBackend(solver="cellspace", tile=TILE, r_wire=R_WIRE)
    ref.bind(net)
    be = net.backend
    L0, L1 = net.layers
    x = data.dense("test", 0, 2)
    zb = ref.forward(0, L0.Wr, x)
    ideal = x @ L0.Wr[:-1] + L0.Wr[-1]
    assert np.max(np.abs(zb - ideal)) > 3e-3 * np.max(np.abs(zb))   # the IR drop is read
    h = (1.0 / (1.0 + np.exp(-zb))).astype(np.float32)
    z1b = ref.forward(1, L1.Wr, h)
    d = np.random.default_rng(0).normal(size=(2, L1.Wr.shape[1])).astype(np.float32)
    eb = ref.transpose(1, L1.Wr, d)
    pairs = [(be.forward(0, L0.Wr, x), zb), (be.forward(1, L1.Wr, h), z1b),
             (be.transpose(1, L1.Wr, d), eb)]
    for k in range(2):
        idx = np.flatnonzero(x[k]).astype(np.int64)
        z = mna_forward(reads, 0, L0, idx, x[k, idx].astype(np.float32)).copy()
        z1 = mna_forward(reads, 1, L1, np.arange(h.shape[1]), h[k]).copy()
        e = np.empty(L1.Wr.shape[0] - 1)
        scale = mna_transpose(reads, 1, L1, d[k], e)
        pairs += [(z, zb[k]), (z1, z1b[k]), (e * scale, eb[k])]
    return max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in pairs)


@pytest.mark.parametrize("cell", ["single", "2t2r"])
def test_compiled_reads_equal_cellspace_reads(digits, cell):
    """(a) Compiled forward reads of both layers and the transposed read of layer 2 equal
    the batched cell-space reads to 1e-6 of the peak (both solve to 1e-8 of the largest cell
    current; the batched reads are float32), on 5 Ω tiles with padded edges; the single
    pair reads its device arrays, the 2T2R cell its sign weights mapped onto one pair."""
    net = Network(_config(cell), digits.n_features, digits.n_classes)
    reads, n = net.backend.compiled_reads(7)
    assert n == 7
    assert _compiled_vs_batched(net, reads, digits) <= 1e-6
    assert reads.work_done[0] > 0 and reads.status[0] == 0


@pytest.mark.parametrize("cell", ["single", "fp"])
def test_incremental_conductances_equal_fresh_ones(digits, cell):
    """(b) After 60 compiled training samples (pair cell: with device refreshes; floating
    point: the full scale of the mapping changing) the cell conductances kept up to date by
    the update kernel equal freshly built ones exactly, and the compiled reads equal the
    batched cell-space reads of the final weights."""
    cfg = _config(cell, lr=1.0, w_max=[0.1, 0.1], device={"n_states": 20})
    net = Network(cfg, digits.n_features, digits.n_classes)
    be = net.backend
    W0 = [st.Wr.copy() for st in net.layers]
    net.train_samples(digits, np.arange(60), 0, 60, seed_state(4, 1), np.zeros(2))
    kept = be.reads
    assert kept.work_done[0] == 60 * (5 * 3 + 3 + 3) * 2     # one chunk, every tile solved
    for st, w in zip(net.layers, W0):
        assert np.max(np.abs(st.Wr - w)) > 0.01                # the weights moved
    if cell == "single":
        assert all(st.stats[:, 2].sum() > 0 for st in net.layers)   # refreshes happened
    fresh, _ = be.compiled_reads(1)
    for a, b in ((kept.l0, fresh.l0), (kept.l1, fresh.l1)):
        np.testing.assert_array_equal(a.kc, b.kc)
        np.testing.assert_array_equal(a.sc, b.sc)
    assert _compiled_vs_batched(net, kept, digits) <= 1e-6


def _flat(run) -> np.ndarray:
    return np.concatenate([st.Wr.ravel() for st in run.network.layers]).astype(np.float64)


def test_training_follows_ideal_and_surrogate(digits):
    """(c) Floating-point cell (deterministic updates, so trajectories are comparable),
    digits 64-32-10, 400 samples x 2 epochs, 32x32 tiles (padded edge tiles in both layers).

    * 0.01 Ω per segment: the IR drop vanishes and the circuit reads differ from the ideal
      ones only by the sinh read law (an input x reads as h(x V_read) / h(V_read), 1.4 % low
      at x = 0.5 for V_read / V_nl = 1/3): test accuracy per epoch within 0.02 of the ideal
      run and final weights within 5 % of the ideal run's weight change (measured 1.8 %);
      the surrogate at 0.1 Ω (its smallest wire; same read law) within 0.5 % (measured 0.1 %).
    * 10 Ω per segment (the surrogate's largest): the weights follow the surrogate's training
      at 10 Ω at least twice as closely as the runs without IR drop (ideal, and surrogate at
      0.1 Ω; measured 1.6 % vs 7 %): the training feels the IR drop the surrogate predicts.
    """
    data = digits.subset(400, 200)
    cfg = TrainConfig(cell="fp", n_hidden=32, epochs=2, seed=0, lr=0.5, w_max=[1.0, 1.0])
    init = np.concatenate([st.Wr.ravel() for st in
                           Network(cfg, data.n_features, data.n_classes).layers])
    tile = (32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # the surrogate's validity notes
        runs = {"ideal": train(cfg, data=data, progress=False),
                "mna_weak": train(cfg, data=data, progress=False,
                                  backend=MNABackend(tile=tile, r_wire=0.01)),
                "sur_weak": train(cfg, data=data, progress=False,
                                  backend=SurrogateBackend(tile=tile, r_wire=0.1)),
                "mna_strong": train(cfg, data=data, progress=False,
                                    backend=MNABackend(tile=tile, r_wire=10.0)),
                "sur_strong": train(cfg, data=data, progress=False,
                                    backend=SurrogateBackend(tile=tile, r_wire=10.0))}
    W = {k: _flat(r) for k, r in runs.items()}
    scale = np.linalg.norm(W["ideal"] - init)

    def dist(a: str, b: str) -> float:
        return float(np.linalg.norm(W[a] - W[b]) / scale)

    acc = {k: np.asarray(r.history.epochs["test_acc"]) for k, r in runs.items()}
    assert acc["ideal"][-1] >= 0.5                             # it learns (chance 0.1)
    assert np.max(np.abs(acc["mna_weak"] - acc["ideal"])) <= 0.02
    assert dist("mna_weak", "ideal") <= 0.05
    assert dist("mna_weak", "sur_weak") <= 0.005
    strong = dist("mna_strong", "sur_strong")
    assert strong <= 0.5 * dist("mna_strong", "ideal")
    assert strong <= 0.5 * dist("mna_strong", "sur_weak")
    assert runs["mna_strong"].config.backend == "mna"         # the run file says mna
    assert runs["mna_strong"].config.circuit.r_wire_row == 10.0


def test_toml_and_cli_train_through_the_circuit(tmp_path, capsys):
    """``backend = "mna"`` with a ``[circuit]`` table builds the backend of that circuit, and
    ``pyspice-rram train --backend mna --tile ... --r-wire ...`` trains with it and records it."""
    path = tmp_path / "m.toml"
    path.write_text('name = "m"\ndataset = "digits"\nn_hidden = 8\nn_train = 40\n'
                    'n_test = 30\nepochs = 1\ncell = "hybrid"\nbackend = "mna"\n\n'
                    '[circuit]\ntile_rows = 16\ntile_cols = 8\nr_wire_row = 3.0\n'
                    'r_wire_col = 2.0\nr_driver = 10.0\nr_sense = 5.0\nv_read = 0.15\n')
    cfg = TrainConfig.load(path)
    be = make_backend(cfg.backend, circuit=cfg.circuit)
    assert isinstance(be, MNABackend)
    assert (be.tile, be.r_wire, be.r_wire_col, be.r_driver, be.r_sense, be.v_read) == \
        ((16, 8), 3.0, 2.0, 10.0, 5.0, 0.15)
    out = tmp_path / "m.h5"
    path.write_text(path.read_text().replace('backend = "mna"', 'backend = "ideal"'))
    assert main(["train", str(path), "-o", str(out), "--quiet", "--backend", "mna",
                 "--tile", "8x16", "--r-wire", "4"]) == 0
    hist, layers, _ = load_run(out)
    assert hist.config["backend"] == "mna"
    assert hist.config["circuit"]["tile_rows"] == 8 and hist.config["circuit"]["r_wire_col"] == 4.0
    assert hist.completed_epochs == 1 and np.isfinite(hist.epochs["test_acc"][-1])
    assert "does not model the circuit" not in capsys.readouterr().err


def test_large_network_warns_of_the_cost(digits):
    """A network reading more than WARN_CELLS_PER_SAMPLE cells per sample warns (naming the
    count and the surrogate backend); digits 64-32-10 does not."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = Network(_config("single", n_hidden=32), digits.n_features, digits.n_classes)
    assert small.backend.cells_per_sample() == 65 * 32 * 2 + 33 * 10 * 2 * 2
    cfg = _config("multi", n_hidden=200, cell_params={"n_devices": 3})
    n = 3 * 2 * (65 * 200 + 201 * 10 * 2)
    assert n > WARN_CELLS_PER_SAMPLE
    with pytest.warns(UserWarning, match=f"{n} device cells per training sample.*surrogate"):
        Network(cfg, digits.n_features, digits.n_classes)


def test_non_convergence_stops_training_with_an_error(digits):
    """A solve that does not converge (a stop rule no Newton step can meet) raises
    ConvergenceError after the chunk, naming layer, read and tile; no update of the chunk
    after the failure is applied (the first sample failed: the weights are the initial ones)."""
    cfg = _config("single")
    net = Network(cfg, digits.n_features, digits.n_classes,
                  backend=MNABackend(tile=TILE, r_wire=R_WIRE, rtol=-1.0))
    W0 = [st.Wr.copy() for st in net.layers]
    with pytest.raises(ConvergenceError, match=r"layer 0, forward read, array 0 device \+, "
                                               r"tile \(0, 0\)"):
        net.train_samples(digits, np.arange(5), 0, 5, seed_state(0, 1), np.zeros(2))
    for st, w in zip(net.layers, W0):
        np.testing.assert_array_equal(st.Wr, w)
    with pytest.raises(ConvergenceError):                       # the batched reads too
        net.backend.forward(0, net.layers[0].Wr, digits.dense("test", 0, 1))
