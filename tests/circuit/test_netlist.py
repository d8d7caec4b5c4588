"""Netlist generation, checked without running ngspice."""

import re

import numpy as np
import pytest

from pyspice_rram.circuit.netlist import netlist_sha256, options_line, tile_netlist
from pyspice_rram.circuit.tile import Tile


def _lines(text, prefix):
    return [l for l in text.splitlines() if l.startswith(prefix)]


def test_linear_forward_netlist_elements():
    g = np.array([[1e-4, 0.0, 2e-5], [5e-5, 1e-6, 4e-5]])
    tile = Tile(g=g, r_wire_row=2.5, r_wire_col=1.5, r_driver=10.0, r_sense=4.0)
    text = tile_netlist(tile, [[0.1, 0.2], [0.3, -0.1], [0.0, 0.05]])
    assert text.rstrip().endswith(".end")
    assert ".options klu" in text
    assert "Vidx idx 0 0" in text
    assert ".dc Vidx 0 2 1" in text
    cells = _lines(text, "Rx")
    assert len(cells) == 5                              # the 0 S cell is left out
    assert "Rx0_0 r0_0 c0_0 10000.0" in cells
    assert not any(c.startswith("Rx0_1 ") for c in cells)
    assert len(_lines(text, "Rr")) == 2 * 2             # rows x (cols - 1) inner segments
    assert len(_lines(text, "Rc")) == 1 * 3             # (rows - 1) x cols
    # driver: ideal source through r_driver + first row segment
    assert "Rd0 d0 r0_0 12.5" in text
    # sense: last column segment + r_sense, then the 0 V measuring source
    assert "Rs2 c1_2 s2 5.5" in text and "Vs2 s2 0 0" in text
    # the input vectors appear in sweep order in each driver's pwl
    joined = text.replace("\n+ ", "")
    m = re.search(r"Bd1 d1 0 V=pwl\(v\(idx\),([^)]*)\)", joined)
    assert m.group(1) == "0,0.2,1,-0.1,2,0.05"


def test_transposed_netlist_drives_columns_at_their_periphery_end():
    tile = Tile(g=np.full((3, 2), 1e-5), r_wire_row=1.0, r_wire_col=2.0, r_driver=3.0)
    text = tile_netlist(tile, [[0.1, 0.2]], "transposed")
    assert "Rd1 d1 c2_1 5.0" in text                     # bottom end of column 1
    assert "Rs0 r0_0 s0 1.0" in text                     # row 0 sensed at its left end
    assert len(_lines(text, "Vs")) == 3
    # a single vector still gets a two-point pwl
    assert "V=pwl(v(idx),0,0.1,1,0.1)" in text


def test_ideal_lines_are_single_nodes_held_by_sources():
    tile = Tile(g=np.full((2, 3), 1e-5))
    text = tile_netlist(tile, [[0.1, 0.2]], klu=False)
    assert ".options klu" not in text
    assert not _lines(text, "Rr") and not _lines(text, "Rc") and not _lines(text, "Rd")
    assert _lines(text, "Bd0 r0 0 V=")
    assert "Vs1 c1 0 0" in text
    assert "Rx1_2 r1 c2 " in text


def test_model_cell_netlist_uses_the_cell_library(card):
    x = np.array([[0.0, 0.25], [1.0, 0.5]])
    area = np.array([[1e-13, 2e-13], [3e-13, 4e-13]])
    tile = Tile(x=x, area=area, card=card, r_wire_row=1.0, r_wire_col=1.0)
    text = tile_netlist(tile, [[0.1, 0.1]], cell_form="subckt")
    assert ".subckt motiox_read t b" in text
    xs = [l for l in _lines(text, "Xc") if " motiox_read " in l]
    assert len(xs) == 4
    assert "Xc1_0 r1_0 c1_0 motiox_read area=3e-13 x=1.0" in xs
    assert "Xc0_1 r0_1 c0_1 motiox_read area=2e-13 x=0.25" in xs


def test_inline_model_cells_carry_the_cell_constant(card):
    x = np.array([[0.0, 1.0]])
    tile = Tile(x=x, area=2e-13, card=card)
    text = tile_netlist(tile, [[0.1]])
    assert ".subckt" not in text
    b = _lines(text, "Bx")
    assert len(b) == 2
    k1 = 2e-13 * card.g_max_density * card.v_nl
    assert b[1] == f"Bx0_1 r0 c1 I={k1!r}*sinh(v(r0,c1)/{card.v_nl!r})"
    with pytest.raises(ValueError, match="cell_form"):
        tile_netlist(tile, [[0.1]], cell_form="verilog")


def test_values_are_written_exactly():
    g = np.array([[1.0 / 3.0 * 1e-4]])
    text = tile_netlist(Tile(g=g, r_wire_row=0.1 + 0.2), [[1 / 7]])
    r = float(re.search(r"Rx0_0 r0_0 c0 (\S+)", text).group(1))
    assert r == 1.0 / g[0, 0]
    assert f"{1 / 7!r}" in text


def test_options_and_hash():
    assert options_line(True, {"gminsteps": 100, "noopiter": None}).endswith(
        "gminsteps=100 noopiter")
    t1 = tile_netlist(Tile(g=[[1e-5]]), [[0.1]])
    t2 = tile_netlist(Tile(g=[[1e-5]]), [[0.1]])
    t3 = tile_netlist(Tile(g=[[1e-5]]), [[0.2]])
    assert netlist_sha256(t1) == netlist_sha256(t2) != netlist_sha256(t3)
    assert len(netlist_sha256(t1)) == 64


def test_netlist_rejects_bad_inputs():
    tile = Tile(g=np.full((2, 3), 1e-5))
    with pytest.raises(ValueError, match="shape"):
        tile_netlist(tile, [[0.1, 0.2, 0.3]])
    with pytest.raises(ValueError, match="direction"):
        tile_netlist(tile, [[0.1, 0.2]], "sideways")
