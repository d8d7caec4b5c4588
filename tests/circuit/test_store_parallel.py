"""HDF5 results store, parallel tile solving and the xbar CLI."""

import json

import h5py
import numpy as np
import pytest

from pyspice_rram.circuit.parallel import solve_tiles
from pyspice_rram.circuit.store import file_attrs, load_results, record, save_results
from pyspice_rram.circuit.tile import Tile
from pyspice_rram.cli import main


def test_record_save_and_reload_in_one_call(tmp_path, card, rng):
    t1 = Tile.random(6, 5, rng=rng, card=card, r_wire_row=1.0, r_wire_col=2.0, name="m")
    t2 = Tile.random(4, 7, rng=rng, r_driver=3.0, name="lin")
    r1 = record(t1, rng.uniform(0, 0.2, (3, 6)), keep_netlist=True)
    r2 = record(t2, rng.uniform(0, 0.2, (2, 7)), "transposed", solvers=("mna", "ideal"))
    assert r1.relative_error("ngspice", "mna") < 1e-6
    path = save_results(tmp_path / "res.h5", [r1, r2], attrs={"purpose": "test"})
    save_results(path, r1, mode="a")                        # append
    back = load_results(path)
    assert len(back) == 3
    b1, b2 = back[0], back[1]
    np.testing.assert_array_equal(b1.tile.x, t1.x)
    np.testing.assert_array_equal(b1.tile.area, t1.area)
    assert b1.tile.card == card and b1.tile.r_wire_col == 2.0 and b1.tile.name == "m"
    np.testing.assert_array_equal(b1.outputs["ngspice"], r1.outputs["ngspice"])
    assert b1.netlist_sha256 == r1.netlist_sha256 and len(b1.netlist_sha256) == 64
    assert b1.netlist == r1.netlist
    assert b1.solver_settings["ngspice"]["attempts"] == 1
    assert set(b1.timings) == {"ngspice", "mna", "ideal"}
    np.testing.assert_array_equal(b2.tile.g, t2.g)
    assert b2.direction == "transposed" and set(b2.outputs) == {"mna", "ideal"}
    assert file_attrs(path)["user"] == {"purpose": "test"}
    with h5py.File(path, "r") as f:
        np.testing.assert_allclose(f["tiles/000000/g_low_field"][()],
                                   t1.low_field_conductance())


def test_load_rejects_foreign_files(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["x"] = [1, 2]
    with pytest.raises(ValueError, match="not a"):
        load_results(p)
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "missing.h5")


def test_process_pool_gives_the_same_as_in_process(card, rng):
    tasks = [(Tile.random(12, 10, rng=rng, card=card if k % 2 else None, r_wire_row=1.0,
                          r_wire_col=1.0), rng.uniform(0, 0.2, (2, 12)), "forward")
             for k in range(4)]
    serial = solve_tiles(tasks, solver="ngspice", backend="shared", workers=1)
    infos = []
    pooled = solve_tiles(tasks, solver="ngspice", workers=2, infos=infos)
    mna = solve_tiles(tasks, solver="mna")
    for a, b, c in zip(serial, pooled, mna):
        np.testing.assert_allclose(a, b, rtol=1e-12)
        np.testing.assert_allclose(b, c, rtol=1e-6)
    assert len(infos) == 4 and all(i["backend"] == "batch" for i in infos)
    with pytest.raises(ValueError, match="solver"):
        solve_tiles(tasks, solver="spectre")


def test_cli_xbar_solve_and_netlist(tmp_path, capsys):
    W = np.random.default_rng(1).normal(size=(20, 12))
    np.save(tmp_path / "W.npy", W)
    out = tmp_path / "r.h5"
    rc = main(["xbar", "solve", "--weights", str(tmp_path / "W.npy"), "--tile", "8",
               "--n-vectors", "3", "--out", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "VMM error vs ideal circuit" in text and "ngspice vs MNA" in text
    res = load_results(out)
    assert len(res) == 2 * 3 * 2 and set(res[0].outputs) == {"ngspice", "mna", "ideal"}
    rc = main(["xbar", "netlist", "--size", "3", "--out", str(tmp_path / "t.cir")])
    assert rc == 0 and (tmp_path / "t.cir").read_text().rstrip().endswith(".end")
    # a tile larger than the matrix is a clear error (exit code 1)
    assert main(["xbar", "solve", "--weights", str(tmp_path / "W.npy"), "--tile", "64"]) == 1
    assert "larger than" in capsys.readouterr().err


def test_demo_writes_results_and_reports_errors(tmp_path, card):
    from pyspice_rram.paper.crossbar_step import demo

    s = demo(card, tmp_path, progress=False, shape=(32, 16), tile_size=16, n_vectors=2)
    for d in ("forward", "transposed"):
        assert s[d]["ngspice_vs_mna_max_rel_per_current"] < 1e-6
        assert 0 < s[d]["vmm_error_vs_ideal_circuit"]["max_rel"] < 0.1
    for f in ("results.h5", "error_vs_tile.png", "update.png", "tile_topology.png",
              "summary.json"):
        assert (tmp_path / f).stat().st_size > 0
    assert len(load_results(tmp_path / "results.h5")) == 2 * s["tiles_per_read"]
    assert json.loads((tmp_path / "summary.json").read_text())["layer"] == [32, 16]


def test_dask_cluster_runs_the_same_tasks(card, rng):
    distributed = pytest.importorskip("distributed")
    tasks = [(Tile.random(8, 6, rng=rng, card=card, r_wire_row=1.0, r_wire_col=1.0),
              rng.uniform(0, 0.2, (2, 8)), "forward") for _ in range(3)]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        got = solve_tiles(tasks, solver="ngspice", scheduler=cluster.scheduler_address)
    for (tile, v, d), g in zip(tasks, got):
        np.testing.assert_allclose(g, solve_tiles([(tile, v, d)], solver="mna")[0], rtol=1e-6)


def test_cli_xbar_sweep_and_update(tmp_path, capsys):
    W = np.random.default_rng(2).normal(size=(32, 16))
    np.save(tmp_path / "W.npy", W)
    fig = tmp_path / "err.png"
    assert main(["xbar", "sweep", "--weights", str(tmp_path / "W.npy"), "--sizes", "4,8,16",
                 "--r-wires", "0.5,2", "--figure", str(fig), "--no-progress"]) == 0
    out = capsys.readouterr().out
    lines = [l.split() for l in out.splitlines() if l.strip()[:2] in ("4 ", "8 ", "16")]
    errs = np.array([[float(x) for x in l[1:]] for l in lines])
    assert errs.shape == (3, 2)
    assert np.all(np.diff(errs, axis=0) > 0) and np.all(errs[:, 1] > errs[:, 0])
    assert fig.stat().st_size > 0
    assert main(["xbar", "update", "--size", "4", "--out", str(tmp_path / "upd")]) == 0
    metrics = json.loads((tmp_path / "upd" / "update.json").read_text())
    assert metrics["corr"] > 0.95 and metrics["half_selected_max_rel"] < 1e-2
