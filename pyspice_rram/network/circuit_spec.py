"""The crossbar seen by training: tile shape, wire, driver and sense resistance, read voltage.

:class:`CircuitSpec` is the ``[circuit]`` table of a training config
(:attr:`.train.TrainConfig.circuit`). It is plain numbers: the network defines it and
imports no circuit model; a tile backend that models the circuit builds itself from it
(:meth:`.backend.TileBackend.from_circuit`, e.g. the crossbar surrogate, which also checks the
values against the range its model was fitted on). Backends with exact reads (``ideal``,
``read-noise``) ignore it. The defaults are the surrogate backend's defaults (64x64 tiles,
1 Ω per wire segment, ideal driver and sense amplifier, the card's read voltage), so a config
or run file without a ``[circuit]`` table means these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .cells import ConfigError, check_number, check_table


@dataclass(frozen=True)
class CircuitSpec:
    """Crossbar tiles of a layer as read during training (the ``[circuit]`` table).

    Each layer's weight matrix (``n_in + 1`` rows with the bias row, ``n_out`` columns) is cut
    into tiles of ``tile_rows x tile_cols`` cells; partial sums of the tiles are added in the
    periphery.

    Parameters
    ----------
    tile_rows : int
        Rows (driven lines of a forward read, word lines) per tile, in cells; default 64.
    tile_cols : int
        Columns (sensed lines of a forward read, bit lines) per tile, in cells; default 64.
    r_wire_row : float
        Wire resistance of one row-line segment between neighbouring cells (Ω); default 1.0.
    r_wire_col : float
        Wire resistance of one column-line segment between neighbouring cells (Ω); default
        1.0.
    r_driver : float
        Output resistance of each line driver (Ω); default 0.0 (ideal source).
    r_sense : float
        Input resistance of each sense amplifier (Ω); default 0.0 (ideal virtual ground).
    v_read : float or None
        Full-scale read voltage (V) of an input of 1; default None: the device card's
        ``scheme.v_read``.

    Raises
    ------
    ConfigError
        On a non-finite or negative resistance, a tile dimension that is not an integer
        ``>= 1`` or a read voltage ``<= 0``; the message names ``circuit.<field>`` and the
        value.
    """

    tile_rows: int = 64
    tile_cols: int = 64
    r_wire_row: float = 1.0
    r_wire_col: float = 1.0
    r_driver: float = 0.0
    r_sense: float = 0.0
    v_read: float | None = None

    def __post_init__(self) -> None:
        self.validate()
        for key in ("tile_rows", "tile_cols"):
            object.__setattr__(self, key, int(getattr(self, key)))
        for key in ("r_wire_row", "r_wire_col", "r_driver", "r_sense"):
            object.__setattr__(self, key, float(getattr(self, key)))
        if self.v_read is not None:
            object.__setattr__(self, "v_read", float(self.v_read))

    def validate(self, prefix: str = "circuit.") -> None:
        """Raise :class:`ConfigError` naming ``prefix + field`` and the value of a bad field."""
        for key in ("tile_rows", "tile_cols"):
            check_number(prefix + key, getattr(self, key), integer=True, lo=1)
        for key in ("r_wire_row", "r_wire_col", "r_driver", "r_sense"):
            check_number(prefix + key, getattr(self, key), lo=0)
        check_number(prefix + "v_read", self.v_read, lo=0, lo_open=True, allow_none=True)

    @property
    def tile(self) -> tuple[int, int]:
        """``(tile_rows, tile_cols)`` in cells."""
        return self.tile_rows, self.tile_cols

    @classmethod
    def from_dict(cls, data: Any, prefix: str = "circuit.") -> "CircuitSpec":
        """A spec from a table; an unknown key or a bad value is a :class:`ConfigError`
        naming ``circuit.<key>``. A missing key takes its default."""
        if isinstance(data, CircuitSpec):
            return data
        return cls(**check_table(cls, data, prefix, "circuit setting"))

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain data (``v_read`` None when the card's is used)."""
        return asdict(self)

    def replace(self, **changes: Any) -> "CircuitSpec":
        """A validated copy with ``changes``."""
        return CircuitSpec(**{**asdict(self), **changes})

    def is_default(self) -> bool:
        """True when every field has its default (the circuit of a config without the table)."""
        return self == CircuitSpec()

    def describe(self) -> str:
        """One line, e.g. ``tile 64x64, r_wire 1 / 1 Ω (row / col), r_driver 0 Ω, ...``."""
        v = "the card's" if self.v_read is None else f"{self.v_read:g} V"
        return (f"tile {self.tile_rows}x{self.tile_cols}, r_wire {self.r_wire_row:g} / "
                f"{self.r_wire_col:g} Ω (row / col), r_driver {self.r_driver:g} Ω, "
                f"r_sense {self.r_sense:g} Ω, v_read {v}")


def circuit_table(stored: Any) -> Any:
    """The full ``[circuit]`` table of a stored config (run identity, resuming): the
    defaults when the run file was written before the table existed (None / missing),
    missing keys filled; a table that is not a valid circuit is returned as it is (it then
    differs from any valid config)."""
    try:
        return CircuitSpec.from_dict(stored if stored is not None else {}).to_dict()
    except ConfigError:
        return stored
