"""ngspice netlist of a crossbar tile read with many input vectors in one DC analysis.

The circuit is that of :mod:`pyspice_rram.circuit.tile` (node numbering from
:func:`pyspice_rram.circuit.tile.topology`, so the nodal solver and the netlist describe the
same graph). Many input vectors share one analysis through an *index source*::

    Vidx idx 0 0
    Bd<k> d<k> 0 V=pwl(v(idx), 0,v_0k, 1,v_1k, ..., K-1,v_(K-1)k)
    .dc Vidx 0 K-1 1

so the DC sweep's step ``n`` applies input vector ``n`` on every driven line and ngspice
orders the matrix once for all K vectors (measured fastest on ngspice 46 with KLU, see
``docs/circuit.md``). Sensed currents are the branch currents of the 0 V sources ``Vs<k>``
(positive from the line into the virtual ground).

Names: row nodes ``r<i>_<j>`` (``r<i>`` when the row wire is ideal), column nodes
``c<i>_<j>`` (``c<j>``), driver nodes ``d<k>``, sense nodes ``s<k>``; cells ``Rx<i>_<j>``
(linear, 0 S cells are left out), model cells ``Bx<i>_<j> ... I=k*sinh(v(..)/V_nl)``
(``cell_form='inline'``) or ``Xc<i>_<j> ... motiox_read area=<m²> x=<state>``
(``cell_form='subckt'``, library of :func:`pyspice_rram.device.ngspice.cell_library`).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

import numpy as np

from ..device.model import conductance_density
from ..device.ngspice import cell_library, iv_prefactor, iv_shape_expression
from ..errors import UserInputError
from ..spice.format import fmt, index_pwl
from ..spice.format import options_line as _options_line
from .tile import Tile, topology

#: ngspice options used for crossbar reads (tolerances tight enough for 1e-6 agreement with
#: the nodal solver; KLU is added when the ngspice supports it).
READ_OPTIONS = {"reltol": 1e-9, "abstol": 1e-18, "vntol": 1e-12}

#: Extra options of the convergence-aid retries (gmin stepping, then source stepping).
CONVERGENCE_AIDS: tuple[dict[str, Any], ...] = (
    {},
    {"itl1": 1000, "itl2": 1000, "gminsteps": 100},
    {"itl1": 1000, "itl2": 1000, "gminsteps": 100, "srcsteps": 100, "noopiter": None},
)


def sense_source_names(tile: Tile, direction: str) -> list[str]:
    """Names of the 0 V sources whose branch currents are the sensed outputs, in order."""
    return [f"vs{k}" for k in range(tile.n_outputs(direction))]


def _pwl(values: np.ndarray) -> str:
    """pwl(v(idx), ...) with one point per input vector (at least two points)."""
    return index_pwl("v(idx)", values)


def options_line(klu: bool = True, extra: dict[str, Any] | None = None) -> str:
    """The ``.options`` line: :data:`READ_OPTIONS`, ``klu`` and ``extra`` (None = flag)."""
    return _options_line({**READ_OPTIONS, **(extra or {})}, klu=klu)


def _port(source: Callable[[str], str], resistor: str, line: str, inner: str, g: float,
          source_first: bool) -> list[str]:
    """Lines of one periphery port of a line node ``line``: the source ``source(node)``
    behind the resistor ``1/g`` to the inner node ``inner`` -- or on ``line`` itself when
    ``g`` is infinite (an ideal port). ``source_first``: source line first and resistor
    ``inner -> line`` (drivers), else resistor ``line -> inner`` first (sense)."""
    if not np.isfinite(g):
        return [source(line)]
    if source_first:
        return [source(inner), f"{resistor} {inner} {line} {fmt(1.0 / g)}"]
    return [f"{resistor} {line} {inner} {fmt(1.0 / g)}", source(inner)]


CELL_FORMS = ("inline", "subckt")


def tile_netlist(tile: Tile, v_in: Any, direction: str = "forward", *, klu: bool = True,
                 options: dict[str, Any] | None = None, title: str | None = None,
                 cell_form: str = "inline") -> str:
    """ngspice netlist (text) of ``tile`` read with every input vector of ``v_in``.

    Parameters
    ----------
    tile : Tile
    v_in : array_like, shape (n_vectors, n_driven)
        Read voltages (V); vector ``n`` is applied at sweep point ``Vidx = n``.
    direction : {'forward', 'transposed'}
    klu : bool
        Add ``.options klu`` (ngspice >= 41 built with KLU).
    options : dict, optional
        Extra ``.options`` (e.g. convergence aids); a value of None writes a flag.
    title : str, optional
        First (title) line.
    cell_form : {'inline', 'subckt'}
        Model cells as one B-source each, ``I = k sinh(V / V_nl)`` with the per-cell
        constant ``k = A g(x) V_nl`` from :func:`pyspice_rram.device.model.conductance_density`
        (``'inline'``, 1.5-2x faster in ngspice), or as instances of the device library's
        ``motiox_read`` subcircuit (``'subckt'``). Both are the same equation. Other model
        families: ``I = k shape(V_j)`` with ``k = A g(x) prefactor`` and the read shape of
        :func:`pyspice_rram.device.ngspice.iv_shape_expression`; with ``r_series`` > 0 each
        inline cell gets a resistor ``Rj<i>_<j>`` to an internal junction node ``j<i>_<j>``.

    Returns
    -------
    str
        A complete netlist ending in ``.end`` with a ``.dc Vidx 0 K-1 1`` analysis; it runs
        as-is with ``ngspice -b``.
    """
    v = tile.check_inputs(v_in, direction)
    if cell_form not in CELL_FORMS:
        raise UserInputError(f"cell_form must be one of {CELL_FORMS}, got {cell_form!r}")
    K = v.shape[0]
    T = topology(tile, direction)
    R, C = tile.shape
    wr, wc = tile.r_wire_row > 0, tile.r_wire_col > 0

    def rname(i: int, j: int) -> str:
        return f"r{i}_{j}" if wr else f"r{i}"

    def cname(i: int, j: int) -> str:
        return f"c{i}_{j}" if wc else f"c{j}"

    # periphery nodes of line k in this direction
    if direction == "forward":
        drive_at = [rname(i, 0) for i in range(R)]
        sense_at = [cname(R - 1, j) for j in range(C)]
    else:
        drive_at = [cname(R - 1, j) for j in range(C)]
        sense_at = [rname(i, 0) for i in range(R)]

    kind = "linear cells" if tile.is_linear else f"model cells, card '{tile.card.name}'"
    out = [title or f"pyspice-rram crossbar tile {R}x{C} ({kind}), {direction} read, "
                    f"{K} input vector(s)",
           f"* r_wire_row={fmt(tile.r_wire_row)} r_wire_col={fmt(tile.r_wire_col)} "
           f"r_driver={fmt(tile.r_driver)} r_sense={fmt(tile.r_sense)} (ohm)",
           options_line(klu, options)]
    if not tile.is_linear and cell_form == "subckt":
        out.append(cell_library(tile.card).rstrip())
    out.append("* input index source: sweep point n applies input vector n")
    out.append("Vidx idx 0 0")
    out.append("* drivers")
    for k, node in enumerate(drive_at):
        pwl = _pwl(v[:, k])
        out += _port(lambda n: f"Bd{k} {n} 0 V={pwl}", f"Rd{k}", node, f"d{k}",  # noqa: B023
                     T.drive_g[k], source_first=True)
    out.append("* virtual-ground sense (branch current of Vs<k> = output k)")
    for k, node in enumerate(sense_at):
        out += _port(lambda n: f"Vs{k} {n} 0 0", f"Rs{k}", node, f"s{k}",  # noqa: B023
                     T.sense_g[k], source_first=False)
    if wr and C > 1:
        out.append("* row wire segments")
        out += [f"Rr{i}_{j} {rname(i, j)} {rname(i, j + 1)} {fmt(tile.r_wire_row)}"
                for i in range(R) for j in range(C - 1)]
    if wc and R > 1:
        out.append("* column wire segments")
        out += [f"Rc{i}_{j} {cname(i, j)} {cname(i + 1, j)} {fmt(tile.r_wire_col)}"
                for i in range(R - 1) for j in range(C)]
    out.append("* cells (t = row, b = column)")
    if tile.is_linear:
        out += [f"Rx{i}_{j} {rname(i, j)} {cname(i, j)} {fmt(1.0 / tile.g[i, j])}"
                for i in range(R) for j in range(C) if tile.g[i, j] > 0]
    elif cell_form == "subckt":
        out += [f"Xc{i}_{j} {rname(i, j)} {cname(i, j)} motiox_read "
                f"area={fmt(tile.area[i, j])} x={fmt(tile.x[i, j])}"
                for i in range(R) for j in range(C)]
    else:
        card = tile.card
        # I = k shape(V_j), k = A g(x) prefactor: the device library's read law
        k = tile.area * conductance_density(tile.x, card) * iv_prefactor(card)
        if card.is_default_family:
            vnl = fmt(card.v_nl)
            out.append(f"* I = A g(x) V_nl sinh(V/V_nl), card '{card.name}': V_nl = {vnl} V, "
                       f"g(x) = {fmt(card.g_min_density)} + "
                       f"({fmt(card.g_max_density)} - {fmt(card.g_min_density)}) x S/m^2")
        else:
            out.append(f"* I = A g(x) I_j(V_j) of family {card.family}, card '{card.name}', "
                       f"r_series = {fmt(card.r_series)} ohm (pyspice_rram.device.ngspice)")
        for i in range(R):
            for j in range(C):
                top = rname(i, j)
                if card.r_series > 0:  # internal junction node behind the series resistor
                    out.append(f"Rj{i}_{j} {top} j{i}_{j} {fmt(card.r_series)}")
                    top = f"j{i}_{j}"
                shape = iv_shape_expression(card, f"v({top},{cname(i, j)})")
                out.append(f"Bx{i}_{j} {top} {cname(i, j)} I={fmt(k[i, j])}*{shape}")
    out.append(f".dc Vidx 0 {K - 1} 1")
    out.append(".end")
    return "\n".join(out) + "\n"


def netlist_sha256(netlist: str) -> str:
    """SHA-256 hex digest of a netlist's text (stored with every result)."""
    return hashlib.sha256(netlist.encode("utf-8")).hexdigest()
