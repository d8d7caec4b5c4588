"""The cell-space solver against the sparse nodal solver and hand-solved circuits."""

import zlib

import numpy as np
import pytest

import pyspice_rram as pr
from pyspice_rram.circuit.cellspace import CellSpaceSystem, solve_tile
from pyspice_rram.circuit.mna import ConvergenceError
from pyspice_rram.circuit.mna import solve_tile as mna_solve
from pyspice_rram.circuit.tile import Tile
from pyspice_rram.device import ModelCard

REF = ModelCard.reference()
CARDS = {
    "linear": None,
    "sinh": REF,
    "schottky": REF.replace(read_model="schottky", n_f=1.5, n_r=20.0, name="schottky"),
    "sinh+rs": REF.replace(g_map="log", r_series=500.0, name="sinh-log-rs"),
}
#: (rows, cols, r_wire_row, r_wire_col, r_driver, r_sense) in Ω
CIRCUITS = [
    (12, 12, 5.0, 5.0, 0.0, 0.0),      # square, equal wire
    (17, 6, 8.0, 0.5, 20.0, 3.0),      # tall, unequal wire, driver and sense
    (5, 23, 0.3, 12.0, 0.0, 50.0),     # wide
    (9, 11, 0.0, 6.0, 10.0, 0.0),      # ideal row wire
    (10, 7, 4.0, 0.0, 0.0, 5.0),       # ideal column wire
    (6, 8, 0.0, 0.0, 0.0, 0.0),        # no parasitics at all
]


@pytest.mark.parametrize("direction", ["forward", "transposed"])
@pytest.mark.parametrize("cells", list(CARDS))
@pytest.mark.parametrize("circuit", CIRCUITS, ids=lambda c: "x".join(map(str, c)))
def test_matches_the_sparse_nodal_solver(circuit, cells, direction):
    R, C, rr, rc, rd, rs = circuit
    rng = np.random.default_rng(zlib.crc32(repr((circuit, cells, direction)).encode()))
    card = CARDS[cells]
    # strong IR drop: 0.5-100 µS cells (linear) or the card's range with 1-20 µm² areas
    if card is None:
        tile = Tile.random(R, C, rng=rng, g_range=(5e-7, 1e-4), r_wire_row=rr, r_wire_col=rc,
                           r_driver=rd, r_sense=rs)
    else:
        tile = Tile(x=rng.uniform(0, 1, (R, C)), card=card,
                    area=card.area_ref * rng.uniform(1, 20, (R, C)), r_wire_row=rr,
                    r_wire_col=rc, r_driver=rd, r_sense=rs)
    v = rng.uniform(-0.4, 0.4, (5, tile.n_inputs(direction)))
    v[1] = np.abs(v[1])
    v[2, ::2] = 0.0
    ref = mna_solve(tile, v, direction)
    got = solve_tile(tile, v, direction)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("direction", ["forward", "transposed"])
def test_1x1_and_1xn_closed_forms(direction):
    # 1x1: the cell in series with all four resistances
    tile = Tile(g=[[2e-4]], r_wire_row=3.0, r_wire_col=7.0, r_driver=11.0, r_sense=13.0)
    got = solve_tile(tile, [[0.2], [-0.1]], direction)
    np.testing.assert_allclose(got, np.array([[0.2], [-0.1]]) / (34 + 1 / 2e-4), rtol=1e-13)
    # one row line, ideal columns: a ladder solved by backward impedance recursion
    g = np.array([1e-3, 3e-4, 2e-3, 5e-4, 1e-4, 8e-4])
    r, rd = 40.0, 25.0
    tile = Tile(g=g[None, :], r_wire_row=r, r_driver=rd)
    z = 1.0 / g[-1]
    zs = [z]
    for gk in g[-2::-1]:
        z = 1.0 / (gk + 1.0 / (r + z))
        zs.append(z)
    zs = zs[::-1]                       # zs[k]: impedance seen at row node k
    V = np.empty(len(g))
    V[0] = 0.3 * zs[0] / (r + rd + zs[0])
    for k in range(1, len(g)):
        V[k] = V[k - 1] * zs[k] / (r + zs[k])
    got = solve_tile(tile, [[0.3]], "forward")
    np.testing.assert_allclose(got[0], g * V, rtol=1e-10)


def test_absent_cells_left_out_change_nothing():
    """Trailing absent columns and rows (conductance 1e-23 S) trimmed by ``absent_g``."""
    rng = np.random.default_rng(3)
    area = REF.area_ref * rng.uniform(1, 5, (20, 16))
    area[13:, :] = 1e-30
    area[:, 11:] = 1e-30
    tile = Tile(x=rng.uniform(0, 1, (20, 16)), card=REF, area=area, r_wire_row=5.0,
                r_wire_col=3.0, r_sense=2.0)
    v = rng.uniform(0, 0.2, (4, 20))
    full = CellSpaceSystem(tile).solve(v)
    trimmed = CellSpaceSystem(tile, absent_g=1e-20)
    assert trimmed._shape == (13, 11)
    got = trimmed.solve(v)
    np.testing.assert_allclose(got, full, rtol=0, atol=1e-12 * np.abs(full).max())
    np.testing.assert_allclose(got, mna_solve(tile, v), rtol=0, atol=1e-9 * np.abs(full).max())


def test_unconverged_iterations_raise():
    tile = Tile.random(16, 16, rng=1, card=REF, r_wire_row=5.0, r_wire_col=5.0)
    v = np.full((2, 16), 0.2)
    with pytest.raises(ConvergenceError, match="Newton"):
        CellSpaceSystem(tile, max_newton=1).solve(v)
    with pytest.raises(ConvergenceError, match="CG"):
        CellSpaceSystem(tile, max_cg=2, eta=1e-12).solve(v)
    # a Schottky cell at 50 V: exp overflows, reported rather than returned
    hot = Tile(x=np.full((4, 4), 0.5), card=CARDS["schottky"], r_wire_row=1.0)
    with pytest.raises(ConvergenceError, match="non-finite"):
        CellSpaceSystem(hot).solve(np.full((1, 4), 50.0))


def test_zero_inputs_and_the_solve_entry_point():
    tile = Tile.random(8, 5, rng=2, card=REF, r_wire_row=2.0, r_wire_col=1.0)
    assert np.all(solve_tile(tile, np.zeros((2, 8))) == 0.0)
    v = np.random.default_rng(4).uniform(0, 0.2, (3, 8))
    np.testing.assert_allclose(pr.solve(tile, v, solver="cellspace"), mna_solve(tile, v),
                               rtol=0, atol=1e-9 * np.abs(mna_solve(tile, v)).max())
