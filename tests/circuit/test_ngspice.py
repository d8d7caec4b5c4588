"""ngspice (shared library and ``ngspice -b``) against the nodal solver."""

import numpy as np
import pytest

from pyspice_rram.circuit import mna
from pyspice_rram.circuit.ngspice_run import (NgspiceConvergenceError, NgspiceNetlistError,
                                              read_raw, run_batch, run_shared, solve_tile)
from pyspice_rram.circuit.tile import Tile

# 24 random tiles: (rows, cols) x {linear, model} x {forward, transposed}, cycling through
# parasitics (r_wire_row, r_wire_col, r_driver, r_sense) in Ω that include ideal lines
SIZES = [(4, 4), (5, 9), (16, 12), (33, 20), (24, 48), (64, 64)]
PARASITICS = [(1.0, 1.0, 10.0, 0.0), (0.0, 2.5, 0.0, 5.0), (5.0, 1.0, 0.0, 0.0),
              (0.1, 0.0, 10.0, 0.0), (2.5, 2.5, 0.0, 5.0), (0.0, 0.1, 10.0, 0.0),
              (1.0, 5.0, 10.0, 5.0)]
CASES = [(s, c, d) for s in SIZES for c in ("linear", "model") for d in ("forward", "transposed")]


@pytest.mark.parametrize("k", range(len(CASES)),
                         ids=[f"{s[0]}x{s[1]}-{c}-{d}" for s, c, d in CASES])
def test_ngspice_matches_mna(k, card):
    shape, cells, direction = CASES[k]
    r_row, r_col, r_drv, r_sense = PARASITICS[k % len(PARASITICS)]
    rng = np.random.default_rng(1000 + k)
    tile = Tile.random(*shape, rng=rng, card=None if cells == "linear" else card,
                       r_wire_row=r_row, r_wire_col=r_col, r_driver=r_drv, r_sense=r_sense)
    v = rng.uniform(0.0, 0.3, (3, tile.n_inputs(direction)))
    backend = ("shared", "batch")[k % 2]
    # model cells alternate between the inline B-source and the device library's subcircuit
    form = "subckt" if (cells == "model" and direction == "transposed") else "inline"
    info = {}
    got = solve_tile(tile, v, direction, backend=backend, info=info, cell_form=form)
    ref = mna.solve_tile(tile, v, direction)
    assert got.shape == ref.shape == (3, tile.n_outputs(direction))
    assert np.all(ref > 0)
    rel = np.abs(got - ref) / np.abs(ref)
    assert rel.max() <= 1e-6, f"max relative difference {rel.max():.3g} ({backend})"
    assert len(info["netlist_sha256"]) == 64 and info["attempts"] == 1


def test_both_backends_agree_with_mixed_sign_inputs(card, rng):
    tile = Tile.random(20, 10, rng=rng, card=card, r_wire_row=2.0, r_wire_col=2.0,
                       r_driver=5.0)
    v = rng.uniform(-0.4, 0.4, (7, 20))
    a = solve_tile(tile, v, backend="shared")
    b = solve_tile(tile, v, backend="batch")
    ref = mna.solve_tile(tile, v)
    scale = np.abs(ref).max()
    assert np.abs(a - ref).max() <= 1e-9 * scale
    assert np.abs(b - ref).max() <= 1e-9 * scale


@pytest.mark.parametrize("runner", [run_batch, run_shared])
def test_bad_netlist_raises_with_saved_netlist(tmp_path, runner):
    bad = "broken\nR1 a\nXq a 0 nosuchsubckt\nVidx idx 0 0\n.dc Vidx 0 0 1\n.end\n"
    with pytest.raises(NgspiceNetlistError) as err:
        runner(bad, ["i(vs0)"], 1, workdir=tmp_path, stem="bad")
    assert err.value.netlist_path == tmp_path / "bad.cir"
    assert err.value.netlist_path.read_text() == bad
    assert "netlist saved at" in str(err.value)
    assert "nosuchsubckt" in err.value.log.lower()
    # the shared library is usable again afterwards
    np.testing.assert_allclose(solve_tile(Tile(g=[[1e-3]]), [[1.0]], backend="shared"),
                               [[1e-3]], rtol=1e-12)


def test_non_convergence_raises_after_retries(tmp_path):
    # 1 A forced into an element that saturates at 1 mA: no DC solution exists, and the
    # pseudo-transient 'operating point' ngspice falls back to must not be accepted
    net = ("no solution\nVidx idx 0 0\nI1 0 a 1\nB1 a b I=1e-3*tanh(v(a,b))\nVs0 b 0 0\n"
           ".dc Vidx 0 0 1\n.end\n")
    with pytest.raises(NgspiceConvergenceError) as err:
        run_batch(net, ["i(vs0)"], 1, workdir=tmp_path, stem="nc")
    assert (tmp_path / "nc.cir").exists()
    assert err.value.log


def test_read_raw_ascii(tmp_path):
    p = tmp_path / "a.raw"
    p.write_text("Title: t\nPlotname: DC\nFlags: real\nNo. Variables: 2\nNo. Points: 2\n"
                 "Variables:\n\t0\tv(v-sweep)\tvoltage\n\t1\ti(vs0)\tcurrent\nValues:\n"
                 " 0\t0.0\n\t1.5e-3\n 1\t1.0\n\t-2.5e-3\n")
    names, data = read_raw(p)
    assert names == ["v(v-sweep)", "i(vs0)"]
    np.testing.assert_array_equal(data, [[0.0, 1.5e-3], [1.0, -2.5e-3]])


@pytest.mark.parametrize("env, backend", [
    ({"NGSPICE_LIBRARY_PATH": "/nonexistent/libngspice.so"}, "shared"),
    ({"PYSPICE_RRAM_NGSPICE": "ngspice-not-installed"}, "batch"),
])
def test_missing_ngspice_is_a_clear_error(env, backend):
    """Run in a fresh interpreter so that the environment decides which ngspice is used."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np\n"
            "from pyspice_rram.circuit.tile import Tile\n"
            "from pyspice_rram.circuit.ngspice_run import solve_tile, NgspiceNotFound\n"
            "try:\n"
            f"    solve_tile(Tile(g=[[1e-5]]), [[0.1]], backend={backend!r})\n"
            "except NgspiceNotFound as exc:\n"
            "    print('NOTFOUND', exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=120)
    assert "NOTFOUND" in out.stdout, out.stdout + out.stderr


def test_strongly_nonlinear_cells_agree(card):
    """V_nl = 80 mV and reads up to 0.6 V: the nodal solver needs full Newton here."""
    hard = card.replace(v_nl=0.08)
    tile = Tile.random(32, 32, rng=5, card=hard, r_wire_row=5.0, r_wire_col=5.0, r_driver=10.0)
    v = np.random.default_rng(1).uniform(0, 0.6, (4, 32))
    system = mna.TileSystem(tile)
    ref = system.solve(v)
    assert system.stats["full_newton_vectors"] > 0
    got = solve_tile(tile, v, backend="batch")
    assert np.max(np.abs(got - ref) / np.abs(ref)) <= 1e-6


@pytest.mark.parametrize("backend", ["shared", "batch"])
def test_overdriven_cells_recover_through_gmin_stepping(card, backend):
    """V_nl = 50 mV read at up to 3 V: ngspice's Newton overshoots ('out of range for sinh'),
    recovers by gmin stepping; the result is accepted and agrees with the nodal solver
    (whose chord Jacobian falls back from Cholesky to LU here)."""
    hard = card.replace(v_nl=0.05)
    tile = Tile.random(4, 4, rng=5, card=hard, r_wire_row=5.0, r_wire_col=5.0, r_driver=10.0)
    v = np.array([[3.0, 3.0, 3.0, 3.0], [1.0, 2.0, 3.0, 0.5]])
    got = solve_tile(tile, v, backend=backend)
    ref = mna.solve_tile(tile, v)
    assert np.max(np.abs(got - ref) / np.abs(ref)) <= 1e-6
