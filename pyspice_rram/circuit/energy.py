"""Energy and time per event of a crossbar tile, from ngspice transients (or the nodal solver).

Three events, for a model card and a tile (size, wire, driver and sense resistance):

* **forward read**: every row driven by a trapezoidal read pulse (amplitude ``a_i v_read``,
  plateau ``t_read``, linear edges ``t_edge``), every column held at a virtual ground;
* **transposed read**: the same with columns driven and rows sensed;
* **update cycle**: one parallel outer-product update, the pulse scheme of
  :func:`pyspice_rram.circuit.update.update_pulses` (rows pulse ``round(x_i n_slots)`` times
  per phase at ``±V/2``, columns pulse ``|δ_j| t_on`` inside each row slot at ``∓V/2``;
  a potentiation and a depression phase of ``n_slots`` slots each).

**Array energy** is the energy drawn from every independent source over the event,
``E = Σ_k ∫ v_k(t) i_k(t) dt`` (ngspice's source voltages and branch currents, trapezoidal
rule on ngspice's time points; each read edge carries :data:`RAMP_CORNERS` PWL corners so that
its time points resolve it). It is **split** by element from the saved node voltages:

* ``cells`` (reads) -- ``Σ ∫ V_cell I_cell dt`` with the card's read law at the cell's state;
  for the update ``cells_selected`` (row and column pulsed), ``cells_half_selected`` (only
  one of them), ``cells_unselected``;
* ``wires`` -- ``Σ ∫ ΔV² / R dt`` over the wire segments (the first segment of each line
  included, which the netlists merge with the periphery resistor);
* ``periphery`` -- the driver and sense resistances ``r_driver``, ``r_sense``.

The split is computed independently of the source currents, so ``Σ split = E`` (Tellegen)
is a check of the solution; the relative difference is returned as ``closure``.

**Array time** is the pulse duration: ``t_read + 2 t_edge`` for a read (the circuit has no
capacitance, so the read settles at once; see docs/circuit.md, Limitations), and
``2 n_slots (t_on + 6 t_edge)`` for an update cycle.

``solver='mna'`` computes the reads with the nodal solver instead: the circuit is memoryless,
so ``E = P(v_read) t_read + 2 ∫_ramp P(v(t)) dt``, the ramp integral by Gauss-Legendre
quadrature over DC solutions (:func:`pyspice_rram.circuit.mna.TileSystem.node_voltages`).
The update cycle drives rows and columns at once, which the nodal solver's topology does not
describe: it always comes from ngspice.

**Periphery** (DACs, ADCs, sense amplifiers, pulse drivers) is not in the circuit: it is
costed per operation with the figures of merit of :class:`PeripheryCosts` (each with its
source), kept apart from the array figures so that a user can swap them.

Results: :class:`EventCosts` (``read_forward``, ``read_transposed``, ``update_cycle``, each an
:class:`EventCost` with energy and time of the array and of the periphery, and the split),
JSON through ``to_dict`` / ``from_dict``; :func:`event_costs` builds it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..device.card import ModelCard
from ..device.model import cell_current, conductance_density
from ..device.ngspice import cell_library, iv_prefactor, iv_shape_expression
from ..errors import SimulatorError, UserInputError, unknown_fields
from ..spice import runner as _runner
from ..spice.format import element, fmt, options_line, save_lines, time_pwl
from .netlist import tile_netlist
from .tile import Tile, Topology, check_direction, topology
from .update import _pwl, pwl_corners, update_pulses

#: PWL corners per read edge (the ramp of the index source): ngspice puts a time point on each,
#: so the trapezoidal energy integral resolves the edge (error ~ 1 / (6 RAMP_CORNERS²) of the
#: edge's energy).
RAMP_CORNERS = 16
#: Gauss-Legendre points per ramp of the nodal-solver read energy.
RAMP_GAUSS_POINTS = 8
#: ngspice options of the energy transients (reads: those of the DC reads, tight).
UPDATE_OPTIONS = {"reltol": 1e-6, "abstol": 1e-15, "vntol": 1e-9}
SOLVERS = ("ngspice", "mna")
UPDATE_CELLS = ("static", "dynamic")
PATTERNS = ("random", "full")
#: Format tag of the JSON written by :meth:`EventCosts.save`.
FORMAT = "pyspice-rram event costs 1"


# ============================================================================ periphery
_KULL = ("Kull et al., 'A 3.1 mW 8b 1.2 GS/s single-channel asynchronous SAR ADC with "
         "alternate comparators for enhanced speed in 32 nm digital SOI CMOS', ISSCC 2013 "
         "(the ADC adopted by ISAAC, Shafiee et al., ISCA 2016): 3.1 mW / 1.2 GS/s = 2.58 pJ "
         "per 8-bit conversion")
_ISAAC = ("Shafiee et al., 'ISAAC: a convolutional neural network accelerator with in-situ "
          "analog arithmetic in crossbars', ISCA 2016, Table of component parameters")


def _default_sources() -> dict[str, str]:
    return {
        "dac_energy_J": _ISAAC + ": 8x128 1-bit DACs draw 4 mW over the 100 ns crossbar "
                        "cycle, 0.39 pJ per DAC per read. ASSUMPTION: one amplitude-DAC "
                        "conversion per driven line per read costs the same (a multi-bit "
                        "amplitude DAC costs more: swap the figure)",
        "dac_time_s": "ASSUMPTION: the DAC settles within the read pulse's edge (no extra "
                      "time)",
        "adc_bits": _KULL,
        "adc_energy_per_step_J": "Walden figure of merit from " + _KULL + ": 2.58 pJ / 2^8 "
                                 "= 10.1 fJ per conversion step (nominal bits). Energy at b "
                                 "bits = FoM 2^b. ASSUMPTION: constant FoM across "
                                 "resolutions (the Murmann ADC survey, "
                                 "https://github.com/bmurmann/ADC-survey, tabulates the "
                                 "Walden FoM of published ADCs: take another one from "
                                 "there)",
        "adc_time_s": _KULL + ": 1 / 1.2 GS/s = 0.83 ns per conversion",
        "lines_per_adc": "ASSUMPTION: one ADC per sensed line (ISAAC shares one ADC between "
                         "128 columns: set 128)",
        "sense_energy_J": _ISAAC + ": 8x128 sample-and-hold circuits draw 10 uW over the "
                          "100 ns cycle, 1 fJ per sensed line per read (the transimpedance "
                          "stage's input resistance is in the circuit as r_sense)",
        "pulse_driver_energy_J": "ASSUMPTION: one programming pulse on a line costs the "
                                 "driver what a read DAC conversion costs (dac_energy_J); "
                                 "the energy delivered into the array is in the circuit",
        "counter_energy_J": "ASSUMPTION: counter arbitration of a multi-device synapse is "
                            "one increment of a global digital counter per sample and "
                            "layer (Boybat et al. 2018), negligible next to the array "
                            "events: 0 J (set a figure to cost it)",
        "counter_time_s": "ASSUMPTION: the counter increment overlaps the reads: 0 s",
    }


@dataclass
class PeripheryCosts:
    """Figures of merit of the periphery per operation, each with its source.

    The array figures (from the circuit) and these are kept apart: an :class:`EventCost`
    holds both, and :meth:`with_values` swaps numbers (with a new source text).

    Parameters
    ----------
    dac_energy_J : float
        Energy (J) of one input-DAC conversion (one driven line, one read).
    dac_time_s : float
        Time (s) a DAC conversion adds to a read.
    adc_bits : int
        ADC resolution (bits) of a sensed line.
    adc_energy_per_step_J : float
        Walden figure of merit (J per conversion step): energy per conversion at ``b`` bits
        is ``adc_energy_per_step_J 2^b``.
    adc_time_s : float
        Time (s) of one ADC conversion.
    lines_per_adc : int
        Sensed lines sharing one ADC (their conversions run one after another).
    sense_energy_J : float
        Energy (J) of the sense amplifier / sample-and-hold per sensed line per read.
    pulse_driver_energy_J : float
        Driver energy (J) per programming pulse on a line (update), beyond the energy it
        delivers into the array.
    counter_energy_J, counter_time_s : float
        Energy (J) and time (s) of one counter-arbitration step of a multi-device synapse
        (the training cost ledger, :mod:`pyspice_rram.network.ledger`).
    sources : dict
        Citation or stated assumption of every field above (field name -> text).
    """

    dac_energy_J: float = 4e-3 / 1024 * 100e-9
    dac_time_s: float = 0.0
    adc_bits: int = 8
    adc_energy_per_step_J: float = 3.1e-3 / 1.2e9 / 2 ** 8
    adc_time_s: float = 1.0 / 1.2e9
    lines_per_adc: int = 1
    sense_energy_J: float = 10e-6 / 1024 * 100e-9
    pulse_driver_energy_J: float = 4e-3 / 1024 * 100e-9
    counter_energy_J: float = 0.0
    counter_time_s: float = 0.0
    sources: dict[str, str] = field(default_factory=_default_sources)

    def __post_init__(self) -> None:
        for f in self._numeric():
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise UserInputError(f"PeripheryCosts.{f} must be a finite number >= 0, got "
                                     f"{v!r}")
            if not str(self.sources.get(f, "")).strip():
                raise UserInputError(f"PeripheryCosts.{f} has no source (sources[{f!r}])")
        if int(self.adc_bits) != self.adc_bits or self.adc_bits < 1:
            raise UserInputError(f"PeripheryCosts.adc_bits must be an integer >= 1, got "
                                 f"{self.adc_bits!r}")
        if int(self.lines_per_adc) != self.lines_per_adc or self.lines_per_adc < 1:
            raise UserInputError(f"PeripheryCosts.lines_per_adc must be an integer >= 1, got "
                                 f"{self.lines_per_adc!r}")
        self.adc_bits, self.lines_per_adc = int(self.adc_bits), int(self.lines_per_adc)

    @classmethod
    def _numeric(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "sources"]

    @property
    def adc_energy_J(self) -> float:
        """Energy (J) of one ADC conversion at :attr:`adc_bits`: ``FoM 2^bits``."""
        return self.adc_energy_per_step_J * 2.0 ** self.adc_bits

    def with_values(self, source: str, **values: float) -> "PeripheryCosts":
        """A copy with some figures replaced; ``source`` becomes their source text."""
        unknown = set(values) - set(self._numeric())
        if unknown:
            raise UserInputError(f"PeripheryCosts has no field(s) {sorted(unknown)}")
        if not source.strip():
            raise UserInputError("PeripheryCosts.with_values needs a source text")
        return replace(self, **values, sources={**self.sources, **{k: source for k in values}})

    def read(self, n_driven: int, n_sensed: int) -> tuple[float, float]:
        """Energy (J) and time (s) of the periphery of one read: a DAC conversion per driven
        line, an ADC conversion and a sense amplifier per sensed line."""
        e = (n_driven * self.dac_energy_J
             + n_sensed * (self.adc_energy_J + self.sense_energy_J))
        t = self.dac_time_s + min(self.lines_per_adc, n_sensed) * self.adc_time_s
        return float(e), float(t)

    def update(self, n_pulses: int) -> tuple[float, float]:
        """Energy (J) and time (s) of the pulse drivers of one update cycle (``n_pulses``
        line pulses; the pulses' duration is the array time)."""
        return float(n_pulses * self.pulse_driver_energy_J), 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PeripheryCosts":
        extra = unknown_fields(cls, d)
        if extra:
            raise UserInputError(f"PeripheryCosts: unknown field(s) {extra}")
        d = dict(d)
        if "sources" in d:      # files written before a field existed: its default source
            d["sources"] = {**{k: v for k, v in _default_sources().items() if k not in d},
                            **d["sources"]}
        return cls(**d)


# ============================================================================ results
@dataclass
class EventCost:
    """Energy and time of one event.

    Attributes
    ----------
    array_energy_J : float
        Energy drawn from the sources of the array circuit over the event (J).
    array_time_s : float
        Duration of the event's pulses (s).
    periphery_energy_J, periphery_time_s : float
        DAC/ADC/sense/driver costs of :class:`PeripheryCosts` (J, s).
    split_J : dict
        The array energy by element (J): ``cells`` (or ``cells_selected``,
        ``cells_half_selected``, ``cells_unselected``), ``wires``, ``periphery``.
    closure : float
        ``Σ split / array_energy - 1`` (the energy balance of the solution).
    solver : str
        ``'ngspice'`` or ``'mna'``.
    info : dict
        Counts and settings of the event (lines, pulses, pattern, wall time).
    """

    array_energy_J: float
    array_time_s: float
    periphery_energy_J: float = 0.0
    periphery_time_s: float = 0.0
    split_J: dict[str, float] = field(default_factory=dict)
    closure: float = 0.0
    solver: str = "ngspice"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def energy_J(self) -> float:
        """Array plus periphery energy (J)."""
        return self.array_energy_J + self.periphery_energy_J

    @property
    def time_s(self) -> float:
        """Array plus periphery time (s)."""
        return self.array_time_s + self.periphery_time_s

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["energy_J"], d["time_s"] = self.energy_J, self.time_s
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EventCost":
        d = {k: v for k, v in d.items() if k not in ("energy_J", "time_s")}
        for k in ("array_energy_J", "array_time_s", "periphery_energy_J", "periphery_time_s"):
            v = d.get(k, 0.0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < 0:
                raise ValueError(f"field {k} = {v!r} is not a finite number >= 0")
        return cls(**d)


EVENTS = ("read_forward", "read_transposed", "update_cycle")


@dataclass
class EventCosts:
    """Per-event costs of a tile (:func:`event_costs`); JSON through :meth:`to_dict` /
    :meth:`from_dict` (:meth:`save` / :meth:`load`)."""

    read_forward: EventCost
    read_transposed: EventCost
    update_cycle: EventCost
    periphery: PeripheryCosts
    settings: dict[str, Any] = field(default_factory=dict)
    #: refresh of one pair (:func:`refresh_energy`); None in files written before it existed
    #: (the ledger then prices a refresh as two full update cycles, an upper bound)
    refresh: EventCost | None = None

    def events(self) -> dict[str, EventCost]:
        """The events this record holds, by name (:data:`EVENTS`, then ``refresh``)."""
        out = {e: getattr(self, e) for e in EVENTS}
        if self.refresh is not None:
            out["refresh"] = self.refresh
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **{e: c.to_dict() for e, c in self.events().items()},
                "periphery": self.periphery.to_dict(), "settings": self.settings}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EventCosts":
        if d.get("format") != FORMAT:
            raise UserInputError(f"not a {FORMAT!r} record (format {d.get('format')!r})")
        refresh = EventCost.from_dict(d["refresh"]) if d.get("refresh") else None
        return cls(*(EventCost.from_dict(d[e]) for e in EVENTS),
                   PeripheryCosts.from_dict(d["periphery"]), d.get("settings", {}), refresh)

    def save(self, path: str | Path) -> Path:
        from .safeio import atomic_write_text

        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "EventCosts":
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserInputError(f"{path}: cannot read event costs ({exc})") from None

    def table(self) -> str:
        """A plain-text table of the events."""
        rows = ["event              array E (J)  array t (s)  periph. E (J)  periph. t (s)  "
                "closure"]
        for e, c in self.events().items():
            rows.append(f"{e:18s} {c.array_energy_J:11.4e}  {c.array_time_s:11.4e}  "
                        f"{c.periphery_energy_J:13.4e}  {c.periphery_time_s:13.4e}  "
                        f"{c.closure:8.1e}")
            rows.append("    split: " + ", ".join(f"{k} {v:.4e} J"
                                                 for k, v in c.split_J.items()))
        return "\n".join(rows)


# ============================================================================ power split
class _Network:
    """Element lists of a tile graph (node numbering of :func:`topology`) for the power
    split: wire segments, cells, and the periphery ports (node, wire part and periphery part
    of the port resistance, Ω)."""

    def __init__(self, tile: Tile, T: Topology, ports: list[tuple[int, float, float]]) -> None:
        R, C = tile.shape
        a, b, r = [], [], []
        if tile.r_wire_row > 0 and C > 1:
            a.append(T.row_node[:, :-1].ravel()); b.append(T.row_node[:, 1:].ravel())
            r.append(np.full(R * (C - 1), tile.r_wire_row))
        if tile.r_wire_col > 0 and R > 1:
            a.append(T.col_node[:-1, :].ravel()); b.append(T.col_node[1:, :].ravel())
            r.append(np.full((R - 1) * C, tile.r_wire_col))
        cat = (lambda p, dt: np.concatenate(p).astype(dt) if p else np.zeros(0, dt))
        self.wa, self.wb, self.wr = cat(a, np.int64), cat(b, np.int64), cat(r, float)
        self.ct, self.cb = T.row_node.ravel(), T.col_node.ravel()
        self.ports = ports
        n = T.n_nodes
        nw, nc = len(self.wa), len(self.ct)
        # incidence: +1 at the first node of an element, -1 at the second
        self.Aw = sp.csr_matrix((np.r_[np.ones(nw), -np.ones(nw)],
                                 (np.r_[self.wa, self.wb], np.r_[np.arange(nw), np.arange(nw)])),
                                shape=(n, nw))
        self.Ac = sp.csr_matrix((np.r_[np.ones(nc), -np.ones(nc)],
                                 (np.r_[self.ct, self.cb], np.r_[np.arange(nc), np.arange(nc)])),
                                shape=(n, nc))

    def powers(self, V: np.ndarray, i_cell: np.ndarray, v_src: np.ndarray,
               groups: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Power (W) per time point of every element class.

        ``V`` (n_t, n_nodes) node voltages, ``i_cell`` (n_t, n_cells) cell currents (t -> b),
        ``v_src`` (n_t, n_ports) source voltages behind the ports; ``groups`` masks of cells
        (name -> bool (n_cells)), default one group ``cells``.
        """
        vc = V[:, self.ct] - V[:, self.cb]
        pc = vc * i_cell
        out = {}
        for name, m in (groups or {"cells": np.ones(pc.shape[1], bool)}).items():
            out[name] = pc[:, m].sum(axis=1)
        dv = V[:, self.wa] - V[:, self.wb]
        wires = (dv ** 2 / self.wr).sum(axis=1) if len(self.wa) else np.zeros(len(V))
        periph = np.zeros(len(V))
        for k, (node, r_w, r_p) in enumerate(self.ports):
            if r_w + r_p > 0:
                i2 = ((v_src[:, k] - V[:, node]) / (r_w + r_p)) ** 2
                wires = wires + i2 * r_w
                periph = periph + i2 * r_p
        out["wires"], out["periphery"] = wires, periph
        return out

    def port_currents(self, V: np.ndarray, i_cell: np.ndarray) -> np.ndarray:
        """Current (A) each port feeds into the network (Kirchhoff at its node), (n_t, n_ports)."""
        iw = (V @ self.Aw) / self.wr if len(self.wa) else np.zeros((len(V), 0))
        out_flow = (self.Aw @ iw.T).T + (self.Ac @ i_cell.T).T
        return out_flow[:, [p[0] for p in self.ports]]


def _integrate(t: np.ndarray, p: np.ndarray) -> float:
    return float(np.sum(0.5 * (p[1:] + p[:-1]) * np.diff(t)))


#: Largest |closure| (energy balance of the split) accepted; measured <= 1e-7 everywhere.
MAX_CLOSURE = 1e-4


def _closed(total: float, split: dict[str, float], what: str) -> float:
    """``Σ split / total - 1``; a :class:`SimulatorError` above :data:`MAX_CLOSURE` (the
    solution or the element bookkeeping is wrong: no number is returned)."""
    closure = sum(split.values()) / total - 1.0 if total > 0 else 0.0
    if not abs(closure) <= MAX_CLOSURE:
        raise SimulatorError(f"{what}: the energy split does not sum to the energy drawn from "
                             f"the sources ({sum(split.values())!r} J vs {total!r} J)")
    return float(closure)


def _energies(t: np.ndarray, powers: dict[str, np.ndarray], p_total: np.ndarray, what: str
              ) -> tuple[float, dict[str, float], float]:
    total = _integrate(t, p_total)
    split = {k: _integrate(t, v) for k, v in powers.items()}
    return total, split, _closed(total, split, what)


def _read_ports(tile: Tile, T: Topology, direction: str) -> list[tuple[int, float, float]]:
    """Driven ports of a read: (node, wire part, periphery part) of the port resistance."""
    r_w = tile.r_wire_row if direction == "forward" else tile.r_wire_col
    return [(int(n), r_w, tile.r_driver) for n in T.drive_node]


def _sense_ports(tile: Tile, T: Topology, direction: str) -> list[tuple[int, float, float]]:
    r_w = tile.r_wire_col if direction == "forward" else tile.r_wire_row
    return [(int(n), r_w, tile.r_sense) for n in T.sense_node]


# ============================================================================ reads
def _check_time(name: str, value: float, positive: bool = True) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{name} must be a number (s), got {value!r}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise UserInputError(f"{name} must be finite and {'> 0' if positive else '>= 0'} s, "
                             f"got {value}")
    return value


def _read_pulse(t_read: float, t_edge: float) -> tuple[list[float], list[float]]:
    """Corners (s, dimensionless 0..1) of the read pulse, :data:`RAMP_CORNERS` per edge."""
    n = RAMP_CORNERS if t_edge > 0 else 1
    up = [(t_edge * k / n, k / n) for k in range(n + 1)]
    t1 = t_edge + t_read
    down = [(t1 + t_edge * k / n, 1 - k / n) for k in range(n + 1)]
    return pwl_corners(up[1:] + down + [(t1 + t_edge + max(t_edge, t_read / 100), 0.0)])


def read_energy(tile: Tile, v_in: Any, direction: str = "forward", *, t_read: float = 1e-6,
                t_edge: float = 10e-9, solver: str = "ngspice", timeout: float | None = None,
                workdir: str | Path | None = None) -> EventCost:
    """Energy (J) and time (s) of one read of ``tile`` with read voltages ``v_in``.

    Parameters
    ----------
    tile : Tile
        Linear or model cells, with wire, driver and sense resistance (Ω).
    v_in : array_like (n_driven,)
        Plateau voltage (V) of each driven line.
    direction : {'forward', 'transposed'}
    t_read : float
        Plateau duration (s).
    t_edge : float
        Rise and fall time (s) of the linear edges (0 = rectangular).
    solver : {'ngspice', 'mna'}
        ngspice transient, or the nodal solver's DC solutions (exact for this memoryless
        circuit, see the module docstring).
    timeout : float, optional
        Wall-clock limit of the ngspice run (s).
    workdir : path, optional
        Folder where the ngspice netlist is kept.

    Returns
    -------
    EventCost
        Array part only (periphery 0); ``array_time_s = t_read + 2 t_edge``.
    """
    check_direction(direction)
    if solver not in SOLVERS:
        raise UserInputError(f"solver must be one of {SOLVERS}, got {solver!r}")
    t_read = _check_time("t_read", t_read)
    t_edge = _check_time("t_edge", t_edge, positive=False)
    v = tile.check_inputs(v_in, direction)
    if v.shape[0] != 1:
        raise UserInputError("read_energy takes one input vector")
    T = topology(tile, direction)
    net = _Network(tile, T, _read_ports(tile, T, direction) + _sense_ports(tile, T, direction))
    n_in = len(T.drive_node)
    t0 = time.perf_counter()
    if solver == "ngspice":
        times, idx = _read_pulse(t_read, t_edge)
        text = tile_netlist(tile, np.vstack([np.zeros_like(v), v]), direction)
        for old, new in (("Vidx idx 0 0\n", f"Vidx idx 0 {time_pwl(times, idx)}\n"),
                         (".dc Vidx 0 1 1\n",
                          f".tran {fmt(times[-1] / 20)} {fmt(times[-1])} 0 "
                          f"{fmt(max(t_read / 4, t_edge))}\n")):
            if text.count(old) != 1:
                raise RuntimeError(f"tile netlist without the line {old!r}")
            text = text.replace(old, new)
        res = _runner.run(text, mode="batch", timeout=timeout, keep_dir=workdir,
                          stem=f"read_{direction}", raw_format="binary")
        plot = res.plot
        t = plot.columns(["time"])[:, 0]
        s = plot.columns(["v(idx)"])[:, 0]
        V = _node_voltages(tile, T, plot, direction)
        v_src = np.hstack([s[:, None] * v, np.zeros((len(t), len(T.sense_node)))])
        # source power: the drivers' branch currents (ngspice: + node -> source -> - node)
        i_src = -plot.columns([f"i(bd{k})" for k in range(n_in)])
        p_total = (v_src[:, :n_in] * i_src).sum(axis=1)
    else:
        from .mna import TileSystem

        xg, wg = np.polynomial.legendre.leggauss(RAMP_GAUSS_POINTS)
        s_ramp = 0.5 * (xg + 1.0)                        # ramp levels in (0, 1)
        levels = np.r_[s_ramp, 1.0]
        system = TileSystem(tile, direction)
        V = system.node_voltages(levels[:, None] * v).T  # (n_levels, n_nodes)
        v_src = np.hstack([levels[:, None] * v, np.zeros((len(levels), len(T.sense_node)))])
    i_cell = tile.cell_current((V[:, net.ct] - V[:, net.cb]).reshape(-1, *tile.shape)
                               ).reshape(len(V), -1)
    powers = net.powers(V, i_cell, v_src)
    if solver == "ngspice":
        total, split, closure = _energies(t, powers, p_total, f"{direction} read (ngspice)")
    else:
        i_src = net.port_currents(V, i_cell)[:, :n_in]
        p_total = (v_src[:, :n_in] * i_src).sum(axis=1)
        # each edge (memoryless circuit): ∫0^te P(s(t)) dt = te/2 Σ_k w_k P(s_k); two edges
        w = np.r_[t_edge * wg, t_read]
        total = float(w @ p_total)
        split = {k: float(w @ p) for k, p in powers.items()}
        closure = _closed(total, split, f"{direction} read (MNA)")
    wall = time.perf_counter() - t0
    return EventCost(total, t_read + 2 * t_edge, 0.0, 0.0, split, float(closure), solver,
                     {"direction": direction, "n_driven": int(n_in),
                      "n_sensed": int(len(T.sense_node)), "t_read_s": t_read,
                      "t_edge_s": t_edge, "v_max_V": float(np.abs(v).max()),
                      "wall_s": wall})


def _node_voltages(tile: Tile, T: Topology, plot, direction: str) -> np.ndarray:
    """Node voltages (n_t, n_nodes) in :func:`topology` order from an ngspice plot of a
    :func:`~pyspice_rram.circuit.netlist.tile_netlist` circuit (held sense nodes are 0 V)."""
    R, C = tile.shape
    names: dict[int, str] = {}
    for i in range(R):
        for j in range(C):
            names.setdefault(int(T.row_node[i, j]),
                             f"v(r{i}_{j})" if tile.r_wire_row > 0 else f"v(r{i})")
            names.setdefault(int(T.col_node[i, j]),
                             f"v(c{i}_{j})" if tile.r_wire_col > 0 else f"v(c{j})")
    V = np.zeros((plot.n_points, T.n_nodes))
    for n, name in names.items():
        if name in plot:
            V[:, n] = plot.columns([name])[:, 0]
        elif n not in set(T.sense_node[~np.isfinite(T.sense_g)].tolist()):
            raise RuntimeError(f"ngspice result without {name}")
    return V


# ============================================================================ update
def update_pattern(rows: int, cols: int, pattern: str = "random", *, seed: int = 0,
                   delta_levels: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Activations ``x`` (rows,) in [0, 1] and errors ``δ`` (cols,) in [-1, 1] of an update.

    ``'random'``: ``x`` uniform in [0, 1], ``δ`` uniform in [-1, 1] rounded to
    ``delta_levels`` magnitudes ``k / delta_levels`` (k = 1..delta_levels; a pulse-width DAC
    of that resolution; few distinct widths keep the transient short). ``'full'``: every
    ``x = 1``, ``δ = +1`` on even and ``-1`` on odd columns (the largest cycle).
    """
    if pattern not in PATTERNS:
        raise UserInputError(f"update pattern must be one of {PATTERNS}, got {pattern!r}")
    if pattern == "full":
        return np.ones(rows), np.where(np.arange(cols) % 2 == 0, 1.0, -1.0)
    if int(delta_levels) != delta_levels or delta_levels < 1:
        raise UserInputError(f"delta_levels must be an integer >= 1, got {delta_levels!r}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, rows)
    d = rng.uniform(-1.0, 1.0, cols)
    d = np.sign(d) * np.maximum(np.round(np.abs(d) * delta_levels), 1) / delta_levels
    return x, d


def update_energy(card: ModelCard, x_act: Any, delta: Any, *, x0: float | np.ndarray = 0.5,
                  area: float | None = None, r_wire_row: float = 1.0,
                  r_wire_col: float | None = None, r_driver: float = 10.0,
                  n_slots: int = 10, t_on: float | None = None, t_edge: float = 10e-9,
                  v_set: float | None = None, v_dep: float | None = None,
                  cells: str = "static", timeout: float | None = None,
                  workdir: str | Path | None = None) -> EventCost:
    """Energy (J) and time (s) of one parallel update cycle, from an ngspice transient.

    The pulse scheme is that of :func:`pyspice_rram.circuit.update.update_pulses` (arguments
    ``n_slots, t_on, t_edge, v_set, v_dep`` as there); rows are driven at their left end and
    columns at their bottom end, each through ``r_driver`` (Ω), with ``r_wire_row`` /
    ``r_wire_col`` (Ω) per segment, the geometry of :class:`~pyspice_rram.circuit.tile.Tile`.

    Parameters
    ----------
    cells : {'static', 'dynamic'}
        ``'static'``: cells hold their states ``x0`` during the cycle (read law only; the
        state moves by a few % at most, so the energy changes by about as much; fast);
        ``'dynamic'``: the ``motiox`` cells of the update check, states integrated (slow:
        ~200 s for 32x32 on the development machine).

    Returns
    -------
    EventCost
        Split ``cells_selected`` (row and column pulsed), ``cells_half_selected`` (one of
        them), ``cells_unselected``, ``wires``, ``periphery``; ``array_time_s`` is the two
        phases, ``2 n_slots (t_on + 6 t_edge)``; ``info['pulses']`` the line pulses issued.
    """
    if cells not in UPDATE_CELLS:
        raise UserInputError(f"update cells must be one of {UPDATE_CELLS}, got {cells!r}")
    P = update_pulses(card, x_act, delta, n_slots=n_slots, t_on=t_on, t_edge=t_edge,
                      v_set=v_set, v_dep=v_dep)
    R, C = P.rows, P.cols
    r_wire_col = r_wire_row if r_wire_col is None else r_wire_col
    x0 = np.broadcast_to(np.asarray(x0, dtype=float), (R, C)).copy()
    tile = Tile(x=x0, card=card, area=area, r_wire_row=r_wire_row, r_wire_col=r_wire_col,
                r_driver=r_driver, r_sense=r_driver)
    T = topology(tile, "forward")          # rows driven at j = 0, columns at i = R-1
    wr, wc = tile.r_wire_row > 0, tile.r_wire_col > 0

    def rn(i: int, j: int) -> str:
        return f"r{i}_{j}" if wr else f"r{i}"

    def cn(i: int, j: int) -> str:
        return f"c{i}_{j}" if wc else f"c{j}"

    lines = [f"pyspice-rram update-cycle energy {R}x{C}, card '{card.name}', {cells} cells",
             options_line(UPDATE_OPTIONS, klu=True)]
    if cells == "dynamic" or not (card.is_default_family and card.r_series == 0):
        lines.append(cell_library(card).rstrip())
    src_nodes = []
    for kind, n_lines, node_of, r_w, pts in (("r", R, lambda k: rn(k, 0), tile.r_wire_row,
                                              P.rows_pts),
                                             ("c", C, lambda k: cn(R - 1, k), tile.r_wire_col,
                                              P.cols_pts)):
        for k in range(n_lines):
            r = r_driver + r_w
            node = f"d{kind}{k}" if r > 0 else node_of(k)
            src_nodes.append(node)
            lines.append(f"V{kind}{k} {node} 0 {_pwl(pts[k])}")
            if r > 0:
                lines.append(element(f"Rd{kind}{k}", node, node_of(k), value=r))
    if wr and C > 1:
        lines += [element(f"Rr{i}_{j}", rn(i, j), rn(i, j + 1), value=tile.r_wire_row)
                  for i in range(R) for j in range(C - 1)]
    if wc and R > 1:
        lines += [element(f"Rc{i}_{j}", cn(i, j), cn(i + 1, j), value=tile.r_wire_col)
                  for i in range(R - 1) for j in range(C)]
    states: list[str] = []
    if cells == "dynamic":
        lines += [element(f"Xc{i}_{j}", rn(i, j), cn(i, j), "motiox", area=tile.area[i, j],
                          x0=x0[i, j]) for i in range(R) for j in range(C)]
        states = [f"v(xc{i}_{j}.x)" for i in range(R) for j in range(C)]
    elif card.is_default_family and card.r_series == 0:
        k = tile.area * conductance_density(x0, card) * iv_prefactor(card)
        lines += [f"Bx{i}_{j} {rn(i, j)} {cn(i, j)} I={fmt(k[i, j])}*"
                  f"{iv_shape_expression(card, f'v({rn(i, j)},{cn(i, j)})')}"
                  for i in range(R) for j in range(C)]
    else:
        lines += [element(f"Xc{i}_{j}", rn(i, j), cn(i, j), "motiox_read",
                          area=tile.area[i, j], x=x0[i, j]) for i in range(R) for j in range(C)]
    node_names = sorted({rn(i, j) for i in range(R) for j in range(C)}
                        | {cn(i, j) for i in range(R) for j in range(C)})
    currents = [f"i(vr{k})" for k in range(R)] + [f"i(vc{k})" for k in range(C)]
    save = [f"v({n})" for n in node_names] + currents + states
    lines += save_lines(save)
    t_cycle = 2 * P.n_slots * P.period
    # static cells: the circuit is memoryless, the sources piecewise linear -- the time points
    # at their corners resolve the energy; dynamic cells: at least 20 points per slot
    lines += [f".tran {fmt(P.t_on / 50)} {fmt(P.t_stop)} 0 {fmt(P.t_on / 20)} uic"
              if cells == "dynamic" else f".tran {fmt(P.t_on)} {fmt(P.t_stop)} 0 {fmt(P.t_on)}",
              ".end"]
    t0 = time.perf_counter()
    res = _runner.run("\n".join(lines) + "\n", mode="batch", vectors=save, timeout=timeout,
                      keep_dir=workdir, stem="update_energy", raw_format="binary")
    plot = res.plot
    t = plot.columns(["time"])[:, 0]
    node_index: dict[str, int] = {}
    for i in range(R):
        for j in range(C):
            node_index[rn(i, j)] = int(T.row_node[i, j])
            node_index[cn(i, j)] = int(T.col_node[i, j])
    V = np.zeros((len(t), T.n_nodes))
    for name, n in node_index.items():
        V[:, n] = plot.columns([f"v({name})"])[:, 0]
    i_src = -plot.columns(currents)                        # into the network (A)
    v_src = np.column_stack([_pwl_values(pts, t) for pts in P.rows_pts + P.cols_pts])
    ports = ([(int(n), tile.r_wire_row, r_driver) for n in T.drive_node]
             + [(int(n), tile.r_wire_col, r_driver) for n in T.sense_node])
    net = _Network(tile, T, ports)
    vc = V[:, net.ct] - V[:, net.cb]
    if cells == "dynamic":
        x_t = np.clip(plot.columns(states), 0.0, 1.0)
        i_cell = cell_current(vc, x_t, tile.area.ravel()[None, :], card)
    else:
        i_cell = tile.cell_current(vc.reshape(-1, R, C)).reshape(len(t), -1)
    row_act, col_act = (P.n_i > 0)[:, None], P.col_on[None, :]
    sel = (row_act & col_act).ravel()
    half = (row_act ^ col_act).ravel()
    groups = {"cells_selected": sel, "cells_half_selected": half,
              "cells_unselected": ~(sel | half)}
    powers = net.powers(V, i_cell, v_src, groups)
    total, split, closure = _energies(t, powers, (v_src * i_src).sum(axis=1), "update cycle")
    n_pulses = int(2 * P.n_i.sum() + P.n_slots * P.col_on.sum())
    info = {"rows": R, "cols": C, "cells": cells, "n_slots": P.n_slots, "t_on_s": P.t_on,
            "t_edge_s": P.t_edge, "v_set_V": P.v_set, "v_dep_V": P.v_dep, "pulses": n_pulses,
            "selected": int(sel.sum()), "half_selected": int(half.sum()),
            "mean_x": float(np.mean(P.n_i / P.n_slots)),
            "mean_abs_delta": float(np.mean(np.where(P.col_on, np.abs(P.delta), 0.0))),
            "time_points": int(len(t)), "wall_s": time.perf_counter() - t0}
    return EventCost(total, t_cycle, 0.0, 0.0, split, closure, "ngspice", info)


def _pwl_values(points: list[tuple[float, float]], t: np.ndarray) -> np.ndarray:
    """Values at times ``t`` of the source :func:`~pyspice_rram.circuit.update._pwl` writes
    for ``points``."""
    return np.interp(t, *pwl_corners(points))


def refresh_energy(card: ModelCard, rows: int, cols: int | None = None, *,
                   x0: float = 0.5, area: float | None = None, r_wire_row: float = 1.0,
                   r_wire_col: float | None = None, r_driver: float = 10.0,
                   n_slots: int = 10, t_on: float | None = None, t_edge: float = 10e-9,
                   v_set: float | None = None, v_dep: float | None = None,
                   timeout: float | None = None) -> EventCost:
    """Energy (J) and time (s) of refreshing one pair of a ``rows x cols`` tile.

    A refresh resets both devices of a pair and re-programs one (the cells' ``refresh``,
    docs/training.md). It is modelled with the update cycle of :func:`update_energy` applied
    to one cell (the middle one; its row fully active, its column at ``δ = -1`` resp. ``+1``;
    every other line idle): ``E = 2 E_dep + E_pot`` -- one depression cycle per device (the
    two devices sit in the G+ and G- device matrices, reset in parallel) and one
    potentiation cycle of ``n_slots`` pulses -- and ``t = 2 t_cyc`` (reset, then re-program).
    The selected cell draws a few % of it, the ``2 (N - 1)`` half-selected cells of its lines
    the rest (``split_J``). A re-program of more than ``n_slots`` pulses takes more cycles:
    the figure is an estimate, not a bound (the full-tile bound is ``2 E_cyc``).
    """
    cols = rows if cols is None else cols
    for name, n in (("rows", rows), ("cols", cols)):
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise UserInputError(f"refresh_energy: {name} must be an integer >= 1, got {n!r}")
    rows, cols = int(rows), int(cols)
    kw = dict(x0=x0, area=area, r_wire_row=r_wire_row, r_wire_col=r_wire_col,
              r_driver=r_driver, n_slots=n_slots, t_on=t_on, t_edge=t_edge, v_set=v_set,
              v_dep=v_dep, timeout=timeout)
    x = np.zeros(rows)
    x[rows // 2] = 1.0
    cycles = {}
    for name, sign in (("reset", -1.0), ("program", +1.0)):
        d = np.zeros(cols)
        d[cols // 2] = sign
        cycles[name] = update_energy(card, x, d, **kw)
    dep, pot = cycles["reset"], cycles["program"]
    split = {k: 2 * dep.split_J[k] + pot.split_J.get(k, 0.0) for k in dep.split_J}
    info = {"rows": rows, "cols": cols, "cell": [rows // 2, cols // 2], "n_slots": n_slots,
            "model": "2 one-cell depression cycles + 1 one-cell potentiation cycle",
            "pulses": 2 * dep.info["pulses"] + pot.info["pulses"],
            "reset_cycle_J": dep.array_energy_J, "program_cycle_J": pot.array_energy_J,
            "wall_s": dep.info["wall_s"] + pot.info["wall_s"]}
    closure = max(abs(dep.closure), abs(pot.closure))
    return EventCost(2 * dep.array_energy_J + pot.array_energy_J,
                     dep.array_time_s + pot.array_time_s, 0.0, 0.0, split, closure, "ngspice",
                     info)


# ============================================================================ all events
def event_costs(card: ModelCard, tile_rows: int, tile_cols: int | None = None, *,
                r_wire_row: float = 1.0, r_wire_col: float | None = None,
                r_driver: float = 10.0, r_sense: float = 0.0, v_read: float | None = None,
                t_read: float = 1e-6, t_edge: float = 10e-9, x: float | np.ndarray = 0.5,
                area: float | None = None, activity: float | np.ndarray = 1.0,
                n_slots: int = 10, t_on: float | None = None, v_set: float | None = None,
                v_dep: float | None = None, update: str = "random", seed: int = 0,
                delta_levels: int = 4, update_cells: str = "static",
                periphery: PeripheryCosts | None = None, solver: str = "ngspice",
                timeout: float | None = None) -> EventCosts:
    """Per-event costs of a ``tile_rows x tile_cols`` tile of ``card`` cells.

    Parameters
    ----------
    card : ModelCard
    tile_rows, tile_cols : int
        Tile size (``tile_cols`` defaults to ``tile_rows``).
    r_wire_row, r_wire_col : float
        Wire resistance per cell segment (Ω); ``r_wire_col`` defaults to ``r_wire_row``.
    r_driver, r_sense : float
        Driver output resistance (reads and update pulses) and sense input resistance (Ω).
    v_read : float
        Read amplitude (V), default ``card.scheme.v_read``; must not exceed
        :func:`~pyspice_rram.circuit.mapping.disturb_free_voltage` for ``t_read``.
    t_read, t_edge : float
        Read pulse plateau and edge time (s); ``t_edge`` is also the update pulses' edge.
    x : float or ndarray
        Cell states in [0, 1] (reads, and the update's initial states).
    area : float, optional
        Cell area (m²), default ``card.area_ref``.
    activity : float or ndarray
        Input activations in [0, 1] of the driven lines: read voltage ``activity v_read``
        (1 = every line at full scale).
    n_slots, t_on, v_set, v_dep :
        The update pulse scheme (:func:`~pyspice_rram.circuit.update.update_pulses`).
    update : {'random', 'full'}
        Update pattern (:func:`update_pattern` with ``seed`` and ``delta_levels``).
    update_cells : {'static', 'dynamic'}
        See :func:`update_energy`.
    periphery : PeripheryCosts, optional
        Periphery figures of merit (default :class:`PeripheryCosts()`).
    solver : {'ngspice', 'mna'}
        Solver of the reads (the update always uses ngspice).
    timeout : float, optional
        Wall-clock limit (s) of each ngspice run.
    """
    from .mapping import encode_inputs

    if not isinstance(card, ModelCard):
        raise UserInputError("event_costs needs a ModelCard")
    tile_cols = tile_rows if tile_cols is None else tile_cols
    for name, n in (("tile_rows", tile_rows), ("tile_cols", tile_cols)):
        if int(n) != n or n < 1:
            raise UserInputError(f"{name} must be an integer >= 1, got {n!r}")
    R, C = int(tile_rows), int(tile_cols)
    r_wire_col = r_wire_row if r_wire_col is None else r_wire_col
    periphery = PeripheryCosts() if periphery is None else periphery
    v_read = card.scheme.v_read if v_read is None else float(v_read)
    if not (math.isfinite(v_read) and v_read > 0):
        raise UserInputError(f"v_read must be finite and > 0 V, got {v_read}")
    t_read = _check_time("t_read", t_read)
    tile = Tile(x=np.broadcast_to(np.asarray(x, dtype=float), (R, C)).copy(), card=card,
                area=area, r_wire_row=r_wire_row, r_wire_col=r_wire_col, r_driver=r_driver,
                r_sense=r_sense)
    out = {}
    for direction, name in (("forward", "read_forward"), ("transposed", "read_transposed")):
        n = tile.n_inputs(direction)
        a = np.broadcast_to(np.asarray(activity, dtype=float), (n,))
        if np.any((a < 0) | (a > 1)) or not np.all(np.isfinite(a)):
            raise UserInputError("activity must be in [0, 1]")
        v = encode_inputs(a[None, :], v_read, card, t_read=t_read)
        cost = read_energy(tile, v, direction, t_read=t_read, t_edge=t_edge, solver=solver,
                           timeout=timeout)
        cost.periphery_energy_J, cost.periphery_time_s = periphery.read(
            n, tile.n_outputs(direction))
        out[name] = cost
    xa, de = update_pattern(R, C, update, seed=seed, delta_levels=delta_levels)
    up = update_energy(card, xa, de, x0=tile.x, area=area, r_wire_row=r_wire_row,
                       r_wire_col=r_wire_col, r_driver=r_driver, n_slots=n_slots, t_on=t_on,
                       t_edge=t_edge, v_set=v_set, v_dep=v_dep, cells=update_cells,
                       timeout=timeout)
    up.periphery_energy_J, up.periphery_time_s = periphery.update(up.info["pulses"])
    up.info["pattern"] = update
    out["update_cycle"] = up
    ref = refresh_energy(card, R, C, x0=float(np.mean(tile.x)), area=area,
                         r_wire_row=r_wire_row, r_wire_col=r_wire_col, r_driver=r_driver,
                         n_slots=n_slots, t_on=t_on, t_edge=t_edge, v_set=v_set, v_dep=v_dep,
                         timeout=timeout)
    ref.periphery_energy_J, ref.periphery_time_s = periphery.update(ref.info["pulses"])
    settings = {"card": card.name, "tile_rows": R, "tile_cols": C, "r_wire_row": r_wire_row,
                "r_wire_col": r_wire_col, "r_driver": r_driver, "r_sense": r_sense,
                "v_read": v_read, "t_read": t_read, "t_edge": t_edge,
                "x": float(np.mean(tile.x)), "area": float(np.mean(tile.area)),
                "activity": float(np.mean(activity)), "n_slots": n_slots,
                "update_pattern": update, "seed": seed, "delta_levels": delta_levels,
                "update_cells": update_cells, "solver": solver}
    return EventCosts(out["read_forward"], out["read_transposed"], out["update_cycle"],
                      periphery, settings, ref)
