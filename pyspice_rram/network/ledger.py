"""Cost ledger of a training run: the events each synapse scheme issues, in time and energy.

Every run records per epoch (:mod:`.history`, counted in the SGD loop :func:`.sgd.sgd_samples`
and the update kernels): the training ``samples``, the forward and transposed reads of each
layer, the parallel update cycles of each layer and array (samples whose update gave that
array at least one pulse), the pulses, pairs updated and pair refreshes of each array. This
module turns them into events of the crossbar tiles and prices them with the per-event costs
of :mod:`pyspice_rram.circuit.energy` (:class:`~pyspice_rram.circuit.energy.EventCosts`, one
tile of the run's ``[circuit]`` size; the network layer imports no circuit model: the costs
come in as that object, loaded by :mod:`pyspice_rram.paper.cost`, which also writes the
ledger of a run, :func:`pyspice_rram.paper.cost.run_ledger`).

Mapping (a layer of ``R = n_in + 1`` rows and ``C = n_out`` columns on tiles of
``r x c`` cells: ``n_t = ceil(R / r) ceil(C / c)`` tiles per device matrix; a pair cell has
two device matrices, G+ and G-, per array; ``A`` arrays: hybrid 2, multi-device ``n``):

==========================  ==========================  ================================
event (per layer)            energy                      time (tiles, arrays in parallel)
==========================  ==========================  ================================
forward read                 ``2 A n_t E_fwd``           ``t_fwd``
transposed read              ``2 A n_t E_tr``            ``t_tr``
update cycle of array a      ``2 n_t E_cyc``             ``t_cyc``
refresh of a pair            ``E_ref``                   ``t_ref`` (sequential)
counter arbitration          ``E_counter``               ``t_counter`` (sequential)
hybrid phase switch          0 (no transfer modelled)    0
==========================  ==========================  ================================

``E_fwd`` etc. are the array energies of the tile events plus their periphery figures
(:class:`~pyspice_rram.circuit.energy.PeripheryCosts`: the DAC/ADC/sense cost of a read is
recomputed at the run's ADC resolution when its ``[periphery]`` sets ``adc_bits``). A refresh
(reset both devices, re-program one) is two sequential operations on one pair: ``E_ref``,
``t_ref`` are the costs' ``refresh`` event (:func:`~pyspice_rram.circuit.energy.refresh_energy`:
two one-cell depression cycles and one one-cell potentiation cycle, ``t_ref = 2 t_cyc``; an
estimate -- a re-program of more pulses than a cycle's slots takes more cycles); costs
written before that event existed price it as two full tile update cycles, ``2 E_cyc``, an
upper bound of its energy (the half-selected cells of the pair's lines draw part of a
cycle's energy, the other cells nothing), with a warning. Counter arbitration (the
multi-device cell's global counter, one increment per sample and layer) has the periphery
figures ``counter_energy_J`` / ``counter_time_s``. The hybrid cell's phase switch changes
the target array; the model moves no weight between arrays, so it costs nothing.
Floating-point layers have no devices: their events are counted, not priced (NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserInputError
from .circuit_spec import CircuitSpec
from .history import load_run

@dataclass
class LayerEvents:
    """Events of one layer in one epoch (counts) and its tile mapping."""

    tiles: int
    arrays: int
    devices: int
    reads_forward: int
    reads_transposed: int
    update_cycles: list[int]
    pulses: list[int]
    refreshes: list[int]
    arbitration: int


@dataclass
class EpochCost:
    """Time (s) and energy (J) of one epoch, by event, and per training sample."""

    epoch: int
    samples: int
    energy_J: dict[str, float] = field(default_factory=dict)
    time_s: dict[str, float] = field(default_factory=dict)

    @property
    def total_energy_J(self) -> float:
        return float(sum(self.energy_J.values()))

    @property
    def total_time_s(self) -> float:
        return float(sum(self.time_s.values()))

    @property
    def energy_per_sample_J(self) -> float:
        return self.total_energy_J / self.samples if self.samples else math.nan

    @property
    def time_per_sample_s(self) -> float:
        return self.total_time_s / self.samples if self.samples else math.nan


def _tiles(rows: int, cols: int, tr: int, tc: int) -> int:
    return -(-rows // tr) * -(-cols // tc)


def epoch_events(path: str | Path) -> tuple[dict, list[tuple[int, int, list[LayerEvents]]]]:
    """``(config, [(epoch, samples, [LayerEvents per layer]), ...])`` of a run file, for the
    epochs the ledger counted (a run resumed from a file written before the ledger has
    uncounted epochs: skipped)."""
    hist, layers, _ = load_run(path)
    cfg = hist.config
    if "samples" not in hist.epochs:
        raise UserInputError(f"{path}: the run file has no cost ledger (written before the "
                             "ledger existed); train it again to count its events")
    if layers is None:
        raise UserInputError(f"{path}: the run file has no checkpoint (layer shapes)")
    circuit = CircuitSpec.from_dict(cfg.get("circuit") or {})
    e = hist.arrays()
    multi = cfg.get("cell") == "multi"
    out = []
    for ep in range(1, hist.completed_epochs + 1):
        n = int(e["samples"][ep])
        if n < 0:
            continue
        per_layer = []
        for li, st in enumerate(layers):
            R, C = st.Wr.shape
            per_layer.append(LayerEvents(
                tiles=_tiles(R, C, circuit.tile_rows, circuit.tile_cols),
                arrays=st.n_arrays, devices=2 * R * C if st.is_pair else 0,
                reads_forward=int(e["reads_forward"][ep][li]),
                reads_transposed=int(e["reads_transposed"][ep][li]),
                update_cycles=[int(v) for v in e["update_cycles"][ep][li]],
                pulses=[int(v) for v in e["pulses"][ep][li]] if st.is_pair else [0],
                refreshes=[int(v) for v in e["refreshes"][ep][li]],
                arbitration=n if multi else 0))
        out.append((ep, n, per_layer))
    return cfg, out


def event_prices(ec: Any, cfg: dict) -> dict[str, tuple[float, float]]:
    """``{event: (energy J, time s)}`` of one tile event, array plus periphery; the reads'
    periphery at the run's ADC resolution (``[periphery] adc_bits``) when it sets one."""
    per = ec.periphery
    bits = (cfg.get("periphery") or {}).get("adc_bits")
    if bits:
        per = per.with_values(f"the run's [periphery] adc_bits = {bits}", adc_bits=int(bits))
    s = ec.settings
    R, C = int(s.get("tile_rows", 64)), int(s.get("tile_cols", 64))
    out = {}
    for name, (n_in, n_out) in (("read_forward", (R, C)), ("read_transposed", (C, R))):
        ev = getattr(ec, name)
        pe, pt = per.read(n_in, n_out)
        out[name] = (ev.array_energy_J + pe, ev.array_time_s + pt)
    up = ec.update_cycle
    out["update_cycle"] = (up.energy_J, up.time_s)
    ref = getattr(ec, "refresh", None)
    # the costs' one-pair refresh, else two full update cycles (an upper bound of its energy)
    out["refresh"] = ((ref.energy_J, ref.time_s) if ref is not None
                      else (2 * up.energy_J, 2 * up.time_s))
    out["counter"] = (per.counter_energy_J, per.counter_time_s)
    return out


def price(cfg: dict, epochs: list, prices: dict[str, tuple[float, float]]) -> list[EpochCost]:
    """Time and energy of each epoch (see the module docstring for the mapping)."""
    out = []
    fp = cfg.get("cell") == "fp"
    ef, tf = prices["read_forward"]
    et, tt = prices["read_transposed"]
    ec, tc = prices["update_cycle"]
    er, tr = prices["refresh"]
    ek, tk = prices["counter"]
    for ep, n, layers in epochs:
        c = EpochCost(ep, n)
        E = {"read_forward": 0.0, "read_transposed": 0.0, "update_cycles": 0.0,
             "refresh": 0.0, "arbitration": 0.0}
        T = dict(E)
        for L in layers:
            mats = 2 * L.arrays * L.tiles
            E["read_forward"] += L.reads_forward * mats * ef
            T["read_forward"] += L.reads_forward * tf
            E["read_transposed"] += L.reads_transposed * mats * et
            T["read_transposed"] += L.reads_transposed * tt
            E["update_cycles"] += sum(L.update_cycles) * 2 * L.tiles * ec
            T["update_cycles"] += sum(L.update_cycles) * tc
            E["refresh"] += sum(L.refreshes) * er
            T["refresh"] += sum(L.refreshes) * tr
            E["arbitration"] += L.arbitration * ek
            T["arbitration"] += L.arbitration * tk
        if fp:
            E = {k: math.nan for k in E}
            T = {k: math.nan for k in T}
        c.energy_J, c.time_s = E, T
        out.append(c)
    return out


def format_ledger(led: dict[str, Any]) -> str:
    """The ledger as text (what ``pyspice-rram cost RUN`` prints)."""
    lines = [f"run {led['run']} ({led['name']}, cell {led['cell']})",
             f"per-event costs: {led['source']}",
             "  settings: " + ", ".join(f"{k} {v}" for k, v in led["settings"].items()),
             "  event             energy (J)   time (s)   [array + periphery, one tile]"]
    for k, (e, t) in led["prices"].items():
        lines.append(f"  {k:16s} {e:11.4e} {t:11.4e}")
    for w in led["warnings"]:
        lines.append(f"  warning: {w}")
    lines.append("epoch samples  reads F/T (per layer)  cycles/sample  pulses/device  "
                 "refreshes  E/sample (J)  t/sample (s)  E/epoch (J)  t/epoch (s)  switch")
    for r in led["epochs"]:
        reads = " ".join(f"{L['reads_forward']}/{L['reads_transposed']}" for L in r["layers"])
        ppd = " ".join(f"{L['pulses_per_device']:.3g}" for L in r["layers"])
        ref = " ".join(str(sum(L["refreshes"])) for L in r["layers"])
        lines.append(f"{r['epoch']:5d} {r['samples']:7d}  {reads:21s}  "
                     f"{r['update_cycles_per_sample']:13.3f}  {ppd:13s}  {ref:9s}  "
                     f"{r['energy_per_sample_J']:12.4e}  {r['time_per_sample_s']:12.4e}  "
                     f"{r['total_energy_J']:11.4e}  {r['total_time_s']:11.4e}  "
                     f"{'yes' if r.get('phase_switch') else '-'}")
        lines.append("      by event, E (J): " + ", ".join(
            f"{k} {v:.3e}" for k, v in r["energy_J"].items()))
    if led["cell"] == "fp":
        lines.append("floating-point cell: no devices, events counted but not priced")
    return "\n".join(lines)
