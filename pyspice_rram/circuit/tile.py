"""Crossbar tile: the cells at the cross points of ``rows`` row lines and ``cols`` column lines.

Topology (the same for every solver in :mod:`pyspice_rram.circuit`)::

    row periphery (j = 0 end)                      cell (i, j): terminal t on row node r[i, j],
      driver  V_i --R_drv--+                                    terminal b on column node c[i, j]
      or sense  0 V --R_s--+-R_row-r[i,0]-R_row-r[i,1]- ... -R_row-r[i,C-1]   (open end)
                                  |              |                    |
                                cell           cell                 cell
                                  |              |                    |
      column j:   (open end) c[0,j]-R_col-c[1,j]-R_col- ... -c[R-1,j]-R_col-+
                                                                             +--R_s-- 0 V sense
                                               column periphery (i = R-1 end)  or R_drv -- V_j

* every row line has ``cols`` wire segments of ``r_wire_row`` (one from the periphery to the
  first cell, then one between neighbouring cells); every column line has ``rows`` segments
  of ``r_wire_col`` (between neighbouring cells, then one from the last cell to the
  periphery);
* a driven line is fed by an ideal source through ``r_driver`` (driver output resistance);
* a sensed line ends in a virtual ground through ``r_sense`` (0 = ideal virtual ground; a
  transimpedance amplifier of open-loop gain ``a`` and feedback resistor ``R_f`` presents
  ``R_f / (1 + a)``, see :func:`tia_input_resistance`); the output is the current that flows
  from the line into the virtual ground.

Forward read: rows driven, columns sensed, ``I_j = sum_i I_cell,ij`` for ideal wires.
Transposed read: columns driven (at their periphery end), rows sensed.

Cells are either **linear** with conductance ``g`` (S) or **model** cells of the Mo/TiOx compact
model at state ``x`` with area ``A`` (m²): ``I = A g(x) V_nl sinh(V / V_nl)``, ``V = V(t) - V(b)``
(:func:`pyspice_rram.device.model.cell_current`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..device.card import ModelCard
from ..device.model import cell_current, cell_didv, conductance_density
from ..errors import ConfigError

#: Accepted read directions.
DIRECTIONS = ("forward", "transposed")


def tia_input_resistance(r_feedback: float, gain: float) -> float:
    """Input resistance (Ω) of a transimpedance amplifier used as a virtual ground.

    An inverting amplifier of open-loop gain ``a`` with feedback resistor ``R_f`` holds its
    input at ``V_in = -V_out / a`` with ``V_out = -I R_f a / (1 + a)``, i.e. the input looks
    like ``R_in = R_f / (1 + a)`` to ground. Use the result as :attr:`Tile.r_sense`.

    Parameters
    ----------
    r_feedback : float
        Feedback resistance ``R_f`` (Ω, > 0).
    gain : float
        Open-loop voltage gain ``a`` (> 0, dimensionless); ``inf`` gives 0 Ω.
    """
    if not (r_feedback > 0 and gain > 0):
        raise ConfigError(f"tia_input_resistance needs R_f > 0 and gain > 0, got {r_feedback}, "
                         f"{gain}")
    return float(r_feedback / (1.0 + gain))


def check_direction(direction: str) -> str:
    """Return ``direction`` if it is ``'forward'`` or ``'transposed'``, else raise."""
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return direction


def _resistance(name: str, value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"Tile.{name} must be a number (Ω), got {value!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ConfigError(f"Tile.{name} must be finite and >= 0 Ω, got {value}")
    return value


@dataclass
class Tile:
    """A ``rows x cols`` crossbar tile with wire, driver and sense resistances.

    Give either ``g`` (linear cells) or ``x`` with ``area`` and ``card`` (model cells).

    Parameters
    ----------
    g : ndarray, shape (rows, cols), optional
        Conductances (S) of linear cells, finite and >= 0 (0 = no cell).
    x : ndarray, shape (rows, cols), optional
        States in [0, 1] of model cells.
    area : float or ndarray (rows, cols), optional
        Cell areas (m², > 0); default ``card.area_ref``.
    card : ModelCard, optional
        Model card of the cells (required with ``x``).
    r_wire_row, r_wire_col : float
        Wire resistance (Ω) of one cell segment of a row / column line.
    r_driver : float
        Output resistance (Ω) of the line drivers.
    r_sense : float
        Input resistance (Ω) of the virtual-ground sense amplifiers (0 = ideal).
    name : str
        Free label (kept in results).
    """

    g: np.ndarray | None = None
    x: np.ndarray | None = None
    area: float | np.ndarray | None = None
    card: ModelCard | None = None
    r_wire_row: float = 0.0
    r_wire_col: float = 0.0
    r_driver: float = 0.0
    r_sense: float = 0.0
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.r_wire_row = _resistance("r_wire_row", self.r_wire_row)
        self.r_wire_col = _resistance("r_wire_col", self.r_wire_col)
        self.r_driver = _resistance("r_driver", self.r_driver)
        self.r_sense = _resistance("r_sense", self.r_sense)
        if (self.g is None) == (self.x is None):
            raise ConfigError("Tile needs exactly one of g (linear cells, S) or x (model states)")
        if self.g is not None:
            if self.card is not None or self.area is not None:
                raise ConfigError("Tile with linear cells (g) takes no card or area")
            self.g = self._matrix("g", self.g)
            if np.any(self.g < 0):
                i, j = np.argwhere(self.g < 0)[0]
                raise ConfigError(f"Tile.g has a negative conductance {self.g[i, j]} S at "
                                 f"({i}, {j}); conductances must be >= 0")
        else:
            if not isinstance(self.card, ModelCard):
                raise ConfigError("Tile with model states x needs card=ModelCard(...)")
            self.x = self._matrix("x", self.x)
            if np.any((self.x < 0) | (self.x > 1)):
                i, j = np.argwhere((self.x < 0) | (self.x > 1))[0]
                raise ConfigError(f"Tile.x has state {self.x[i, j]} at ({i}, {j}) outside [0, 1]")
            area = self.card.area_ref if self.area is None else self.area
            area = np.asarray(area, dtype=float)
            if area.ndim == 0:
                area = np.full(self.x.shape, float(area))
            if area.shape != self.x.shape:
                raise ConfigError(f"Tile.area has shape {area.shape}, expected a scalar or "
                                 f"{self.x.shape}")
            if not np.all(np.isfinite(area)) or np.any(area <= 0):
                raise ConfigError("Tile.area must be finite and > 0 (m²)")
            self.area = area

    @staticmethod
    def _matrix(name: str, value: Any) -> np.ndarray:
        arr = np.array(value, dtype=float)
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ConfigError(f"Tile.{name} must be a non-empty 2-D array (rows, cols), got "
                             f"shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            i, j = np.argwhere(~np.isfinite(arr))[0]
            raise ConfigError(f"Tile.{name} has a non-finite value {arr[i, j]} at ({i}, {j})")
        return arr

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``."""
        m = self.g if self.g is not None else self.x
        return int(m.shape[0]), int(m.shape[1])

    @property
    def rows(self) -> int:
        """Number of row lines."""
        return self.shape[0]

    @property
    def cols(self) -> int:
        """Number of column lines."""
        return self.shape[1]

    @property
    def is_linear(self) -> bool:
        """True for linear cells (``g`` given)."""
        return self.g is not None

    # ------------------------------------------------------------------ cells
    def low_field_conductance(self) -> np.ndarray:
        """Small-signal conductance at 0 V (S): ``g`` or ``A g(x)``."""
        if self.is_linear:
            return self.g
        return self.area * conductance_density(self.x, self.card)

    def cell_current(self, v: np.ndarray) -> np.ndarray:
        """Cell current (A) from t (row) to b (column) for cell voltages ``v`` (V).

        ``v`` broadcasts against ``(rows, cols)``.
        """
        if self.is_linear:
            return self.g * v
        return cell_current(v, self.x, self.area, self.card)

    def cell_didv(self, v: np.ndarray) -> np.ndarray:
        """Differential conductance dI/dV (S) of each cell at voltages ``v`` (V)."""
        if self.is_linear:
            return np.broadcast_to(self.g, np.broadcast_shapes(np.shape(v), self.g.shape))
        return cell_didv(v, self.x, self.area, self.card)

    # ------------------------------------------------------------------ inputs
    def n_inputs(self, direction: str) -> int:
        """Number of driven lines: ``rows`` (forward) or ``cols`` (transposed)."""
        return self.rows if check_direction(direction) == "forward" else self.cols

    def n_outputs(self, direction: str) -> int:
        """Number of sensed lines: ``cols`` (forward) or ``rows`` (transposed)."""
        return self.cols if check_direction(direction) == "forward" else self.rows

    def check_inputs(self, v_in: Any, direction: str = "forward") -> np.ndarray:
        """Validate read voltages and return them as a ``(n_vectors, n_driven)`` float array.

        A 1-D vector is taken as one input vector.
        """
        n = self.n_inputs(direction)
        v = np.array(v_in, dtype=float)
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2 or v.shape[1] != n or v.shape[0] < 1:
            raise ConfigError(f"v_in must have shape (n_vectors, {n}) for a {direction} read of a "
                             f"{self.rows}x{self.cols} tile, got {np.shape(v_in)}")
        if not np.all(np.isfinite(v)):
            raise ConfigError("v_in has non-finite read voltages")
        return v

    # ------------------------------------------------------------------ I/O
    def settings(self) -> dict[str, Any]:
        """Scalar settings (resistances in Ω, cell kind, shape) as a JSON-ready dict."""
        return {"rows": self.rows, "cols": self.cols,
                "cells": "linear" if self.is_linear else "model",
                "r_wire_row": self.r_wire_row, "r_wire_col": self.r_wire_col,
                "r_driver": self.r_driver, "r_sense": self.r_sense, "name": self.name}

    def with_parasitics(self, **changes: float) -> "Tile":
        """A copy with some of ``r_wire_row, r_wire_col, r_driver, r_sense`` changed."""
        kw = dict(g=self.g, x=self.x, area=None if self.is_linear else self.area,
                  card=self.card, r_wire_row=self.r_wire_row, r_wire_col=self.r_wire_col,
                  r_driver=self.r_driver, r_sense=self.r_sense, name=self.name,
                  meta=dict(self.meta))
        kw.update(changes)
        return Tile(**kw)

    @classmethod
    def random(cls, rows: int, cols: int, *, rng: np.random.Generator | int | None = None,
               card: ModelCard | None = None, g_range: tuple[float, float] = (1e-6, 1e-4),
               **parasitics: float) -> "Tile":
        """A tile with random cells (for tests and benchmarks).

        Linear cells with log-uniform conductances in ``g_range`` (S) when ``card`` is None,
        else model cells with uniform states in [0, 1] and ``card.area_ref``.
        """
        rng = np.random.default_rng(rng)
        if card is None:
            lo, hi = np.log(g_range[0]), np.log(g_range[1])
            return cls(g=np.exp(rng.uniform(lo, hi, (rows, cols))), **parasitics)
        return cls(x=rng.uniform(0.0, 1.0, (rows, cols)), card=card, **parasitics)


@dataclass
class Topology:
    """Node numbering of a tile for one read direction (shared by every solver and netlister).

    Node indices: row nodes first (``rows*cols`` of them, or one per row when
    ``r_wire_row == 0``), then column nodes likewise. A periphery conductance of ``inf``
    marks a line held directly at its source (driver) or at 0 V (sense).
    """

    row_node: np.ndarray     # (R, C) node index of the row side of each cell
    col_node: np.ndarray     # (R, C) node index of the column side of each cell
    n_nodes: int
    drive_node: np.ndarray   # (n_in,) periphery node of each driven line
    drive_g: np.ndarray      # (n_in,) periphery conductance (S); inf = held at the source
    sense_node: np.ndarray   # (n_out,) periphery node of each sensed line
    sense_g: np.ndarray      # (n_out,) periphery conductance (S); inf = held at 0 V


def topology(tile: Tile, direction: str) -> Topology:
    """The :class:`Topology` of ``tile`` read in ``direction``."""
    check_direction(direction)
    R, C = tile.shape
    ii, jj = np.meshgrid(np.arange(R), np.arange(C), indexing="ij")
    if tile.r_wire_row > 0:
        row_node = ii * C + jj
        n_row = R * C
    else:
        row_node = ii.copy()
        n_row = R
    if tile.r_wire_col > 0:
        col_node = n_row + ii * C + jj
        n_col = R * C
    else:
        col_node = n_row + jj
        n_col = C
    row_periph = row_node[:, 0]
    col_periph = col_node[R - 1, :]

    def g_of(r: float) -> float:
        return np.inf if r == 0 else 1.0 / r

    if direction == "forward":
        drive_node, sense_node = row_periph, col_periph
        drive_g = np.full(R, g_of(tile.r_wire_row + tile.r_driver))
        sense_g = np.full(C, g_of(tile.r_wire_col + tile.r_sense))
    else:
        drive_node, sense_node = col_periph, row_periph
        drive_g = np.full(C, g_of(tile.r_wire_col + tile.r_driver))
        sense_g = np.full(R, g_of(tile.r_wire_row + tile.r_sense))
    return Topology(row_node, col_node, n_row + n_col, drive_node, drive_g, sense_node, sense_g)
