"""Tile validation and the nodal solver against hand-solved circuits."""

import numpy as np
import pytest
from scipy.optimize import brentq

from pyspice_rram.circuit.mna import TileSystem, ideal_product, solve_tile, transfer_matrix
from pyspice_rram.circuit.tile import Tile, tia_input_resistance
from pyspice_rram.device.model import cell_current


# ------------------------------------------------------------------ analytic cases
@pytest.mark.parametrize("direction", ["forward", "transposed"])
@pytest.mark.parametrize("cells", ["linear", "model"])
def test_zero_parasitics_give_the_ideal_product(direction, cells, card, rng):
    tile = Tile.random(13, 7, rng=rng, card=None if cells == "linear" else card)
    v = rng.uniform(-0.3, 0.3, (6, tile.n_inputs(direction)))
    got = solve_tile(tile, v, direction)
    ref = ideal_product(tile, v, direction)
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=0)
    if cells == "linear":
        np.testing.assert_allclose(got, v @ (tile.g if direction == "forward" else tile.g.T),
                                   rtol=1e-13)


@pytest.mark.parametrize("direction", ["forward", "transposed"])
def test_1x1_linear_series_circuit(direction):
    tile = Tile(g=[[2e-4]], r_wire_row=3.0, r_wire_col=7.0, r_driver=11.0, r_sense=13.0)
    got = solve_tile(tile, [[0.2], [-0.1]], direction)
    expected = np.array([[0.2], [-0.1]]) / (3 + 7 + 11 + 13 + 1 / 2e-4)
    np.testing.assert_allclose(got, expected, rtol=1e-14)


@pytest.mark.parametrize("direction", ["forward", "transposed"])
def test_1x1_model_cell_series_circuit(direction, card):
    tile = Tile(x=[[0.7]], area=2 * card.area_ref, card=card, r_wire_row=500.0,
                r_wire_col=300.0, r_driver=1000.0, r_sense=200.0)
    r_tot = 2000.0
    v = 0.8
    # I = f(v - I R): solve the scalar equation independently
    f = lambda i: i - float(cell_current(v - i * r_tot, 0.7, 2 * card.area_ref, card))
    i_ref = brentq(f, 0.0, v / r_tot, xtol=1e-22, rtol=1e-15)
    got = solve_tile(tile, [[v]], direction)
    assert got.shape == (1, 1)
    np.testing.assert_allclose(got[0, 0], i_ref, rtol=1e-12)
    assert got[0, 0] < float(cell_current(v, 0.7, 2 * card.area_ref, card))  # IR drop


def test_2x2_row_ladder_closed_form():
    """Ideal columns (r_wire_col = r_sense = 0): each row is a two-rung ladder."""
    G = np.array([[1e-3, 2e-3], [4e-3, 5e-4]])
    r = 50.0
    tile = Tile(g=G, r_wire_row=r)
    v = np.array([0.3, -0.2])
    V0 = np.empty(2)
    V1 = np.empty(2)
    for i in range(2):
        g_in = G[i, 0] + 1.0 / (r + 1.0 / G[i, 1])
        V0[i] = v[i] * (1 / r) / (1 / r + g_in)
        V1[i] = V0[i] / (1 + r * G[i, 1])
    expected = np.array([G[0, 0] * V0[0] + G[1, 0] * V0[1], G[0, 1] * V1[0] + G[1, 1] * V1[1]])
    np.testing.assert_allclose(solve_tile(tile, v), expected[None], rtol=1e-13)


def test_2x2_full_nodal_equations_by_hand():
    """Every parasitic present: the 8-node KCL written out explicitly."""
    G = np.array([[1e-3, 3e-3], [2e-3, 4e-4]])
    rr, rc, rd, rs = 20.0, 30.0, 15.0, 25.0
    v = np.array([0.25, 0.1])
    # nodes: r00 r01 r10 r11 c00 c01 c10 c11
    n = {"r00": 0, "r01": 1, "r10": 2, "r11": 3, "c00": 4, "c01": 5, "c10": 6, "c11": 7}
    Y = np.zeros((8, 8))
    b = np.zeros(8)

    def branch(a, c, g):
        Y[n[a], n[a]] += g; Y[n[c], n[c]] += g; Y[n[a], n[c]] -= g; Y[n[c], n[a]] -= g

    def shunt(a, g):
        Y[n[a], n[a]] += g

    branch("r00", "r01", 1 / rr); branch("r10", "r11", 1 / rr)        # row segments
    branch("c00", "c10", 1 / rc); branch("c01", "c11", 1 / rc)        # column segments
    for i in range(2):
        for j in range(2):
            branch(f"r{i}0" if j == 0 else f"r{i}1", f"c{i}{j}", G[i, j])
    shunt("r00", 1 / (rr + rd)); b[n["r00"]] += v[0] / (rr + rd)   # driver + first segment
    shunt("r10", 1 / (rr + rd)); b[n["r10"]] += v[1] / (rr + rd)
    shunt("c10", 1 / (rc + rs)); shunt("c11", 1 / (rc + rs))        # last segment + sense
    V = np.linalg.solve(Y, b)
    expected = np.array([V[n["c10"]], V[n["c11"]]]) / (rc + rs)
    tile = Tile(g=G, r_wire_row=rr, r_wire_col=rc, r_driver=rd, r_sense=rs)
    np.testing.assert_allclose(solve_tile(tile, v), expected[None], rtol=1e-13)


def test_ir_drop_lowers_every_output_and_grows_with_wire_resistance(rng):
    tile = Tile.random(32, 32, rng=rng)
    v = np.full((1, 32), 0.2)
    ideal = ideal_product(tile, v)
    prev = ideal
    for r in (0.5, 2.0, 5.0):
        got = solve_tile(tile.with_parasitics(r_wire_row=r, r_wire_col=r), v)
        assert np.all(got < prev)
        prev = got


def test_transfer_matrix_reproduces_solve(rng):
    tile = Tile.random(9, 5, rng=rng, r_wire_row=2.0, r_wire_col=1.0, r_driver=5.0)
    for d in ("forward", "transposed"):
        T = transfer_matrix(tile, d)
        v = rng.uniform(0, 0.2, (4, tile.n_inputs(d)))
        np.testing.assert_allclose(v @ T, solve_tile(tile, v, d), rtol=1e-12)


def test_reciprocity_of_linear_tile(rng):
    """A linear resistive network is reciprocal: T_transposed = T_forward^T when the driver
    and sense resistances are equal."""
    tile = Tile.random(6, 8, rng=rng, r_wire_row=3.0, r_wire_col=2.0, r_driver=7.0, r_sense=7.0)
    np.testing.assert_allclose(transfer_matrix(tile, "transposed"),
                               transfer_matrix(tile, "forward").T, rtol=1e-12)


def test_strongly_nonlinear_cells_use_full_newton(card, rng):
    hard = card.replace(v_nl=0.05)
    tile = Tile.random(16, 16, rng=rng, card=hard, r_wire_row=5.0, r_wire_col=5.0)
    sys = TileSystem(tile)
    v = np.full((2, 16), 0.5)
    I = sys.solve(v)
    assert sys.stats["full_newton_vectors"] >= 1
    # KCL check: the output equals the sum of the cell currents in each column
    V = sys.node_voltages(v)
    from pyspice_rram.circuit.tile import topology
    T = topology(tile, "forward")
    vc = V[T.row_node, 0] - V[T.col_node, 0]
    np.testing.assert_allclose(I[0], tile.cell_current(vc).sum(axis=0), rtol=1e-10)


def test_tia_input_resistance():
    assert tia_input_resistance(1e4, 999.0) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        tia_input_resistance(-1.0, 10.0)


# ------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("kwargs, match", [
    (dict(g=[[1e-5, -1e-6]]), "negative conductance"),
    (dict(g=[[1e-5, np.nan]]), "non-finite"),
    (dict(g=[1e-5, 1e-6]), "2-D"),
    (dict(g=np.zeros((0, 3))), "non-empty"),
    (dict(g=[[1e-5]], r_wire_row=-1.0), "r_wire_row"),
    (dict(g=[[1e-5]], r_sense=np.inf), "r_sense"),
    (dict(), "exactly one"),
])
def test_bad_tiles_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Tile(**kwargs)


def test_bad_model_tiles_raise(card):
    with pytest.raises(ValueError, match="outside"):
        Tile(x=[[0.5, 1.2]], card=card)
    with pytest.raises(ValueError, match="card"):
        Tile(x=[[0.5]])
    with pytest.raises(ValueError, match="area"):
        Tile(x=[[0.5, 0.2]], card=card, area=[1e-12, 2e-12, 3e-12])
    with pytest.raises(ValueError, match="area"):
        Tile(x=[[0.5]], card=card, area=0.0)


def test_bad_inputs_raise(rng):
    tile = Tile.random(4, 3, rng=rng)
    with pytest.raises(ValueError, match=r"shape \(n_vectors, 4\)"):
        solve_tile(tile, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"shape \(n_vectors, 3\)"):
        solve_tile(tile, np.zeros((2, 4)), "transposed")
    with pytest.raises(ValueError, match="non-finite"):
        solve_tile(tile, [[0.1, np.nan, 0, 0]])
    with pytest.raises(ValueError, match="direction"):
        solve_tile(tile, np.zeros((1, 4)), "backward")


def test_cholmod_and_superlu_agree(card, rng):
    tile = Tile.random(20, 30, rng=rng, card=card, r_wire_row=1.0, r_wire_col=3.0, r_driver=5.0)
    v = rng.uniform(0, 0.3, (4, 20))
    a = solve_tile(tile, v, factorization="superlu")
    b = solve_tile(tile, v, factorization="cholmod")
    np.testing.assert_allclose(a, b, rtol=1e-11)
    with pytest.raises(ValueError, match="factorization"):
        solve_tile(tile, v, factorization="qr")


def test_ideal_row_drivers_with_column_wires_columns_are_independent_ladders(rng):
    """r_wire_row = r_driver = 0: every row node sits at its source voltage, so each column
    is a chain c0 - c1 - ... - c(R-1) - sense, fed by g_ij from v_i: solve it densely."""
    R, C = 5, 3
    G = rng.uniform(1e-5, 1e-3, (R, C))
    rc, rs = 40.0, 15.0
    v = rng.uniform(-0.2, 0.3, R)
    expected = np.empty(C)
    for j in range(C):
        Y = np.diag(G[:, j].copy())
        b = G[:, j] * v
        for i in range(R - 1):
            Y[i, i] += 1 / rc; Y[i + 1, i + 1] += 1 / rc
            Y[i, i + 1] -= 1 / rc; Y[i + 1, i] -= 1 / rc
        Y[R - 1, R - 1] += 1 / (rc + rs)
        Vc = np.linalg.solve(Y, b)
        expected[j] = Vc[R - 1] / (rc + rs)
    tile = Tile(g=G, r_wire_col=rc, r_sense=rs)
    np.testing.assert_allclose(solve_tile(tile, v), expected[None], rtol=1e-12)
