"""What a pair refresh costs, against its upper bound of two full tile cycles (issue 13).

Run: ``python benchmarks/bench_refresh_energy.py [--tile 64] [--study runs/cost/schemes_cost.json]``

The cost ledger prices a refresh (reset both devices of a pair, re-program one) with the
``refresh`` event of the per-event costs (:func:`pyspice_rram.circuit.energy.refresh_energy`,
a re-program of one cycle's pulses); costs without it price two full tile update cycles, an
upper bound for its energy. This script solves, with the same ngspice
transient as the shipped per-event costs (:func:`pyspice_rram.circuit.energy.update_energy`:
the fitted reference card, static cells at x = 0.5, 1 Ω wire segments, ideal drivers, 10 pulse slots per
phase), in one run:

* the full tile update cycle of the shipped costs (random pattern, seed 0) -- the baseline;
* a cycle that programs one cell only (its row fully active, its column at δ = +1, resp. -1):
  10 pulses on the selected cell, its row and column half-selected.

A refresh of one pair is then estimated as two one-cell depression cycles (the strong reset of
both devices) plus ``ceil(n / 10)`` one-cell potentiation cycles for a re-program of ``n``
pulses (n = 10, the shipped event, and n = 50, the full range of 50 states), and the ratio
to the upper bound is printed. With ``--study`` (the JSON of ``pyspice-rram cost STUDY.toml``) the energy per training
sample of every run is re-priced with these refresh estimates.
"""

from __future__ import annotations

import argparse
import json
import math
import time



def main() -> None:
    from pyspice_rram.circuit.energy import refresh_energy, update_energy, update_pattern
    from pyspice_rram.device.card import ModelCard

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tile", type=int, default=64, help="square tile, cells per side")
    ap.add_argument("--study", help="cost study JSON to re-price (schemes_cost.json)")
    args = ap.parse_args()
    from pathlib import Path

    import pyspice_rram

    # the fitted card of the shipped per-event costs (their settings: card_file)
    card = ModelCard.load(Path(pyspice_rram.__file__).parent / "data/motiox-reference/card.json")
    kw = dict(x0=0.5, r_wire_row=1.0, r_wire_col=1.0, r_driver=0.0, n_slots=10)
    n = args.tile
    t0 = time.perf_counter()
    xa, de = update_pattern(n, n, "random", seed=0, delta_levels=4)
    full = update_energy(card, xa, de, **kw)
    ref = refresh_energy(card, n, **kw)     # the shipped costs' refresh event
    wall = time.perf_counter() - t0
    e_full = full.array_energy_J
    e_dep, e_pot = ref.info["reset_cycle_J"], ref.info["program_cycle_J"]
    ledger = 2 * e_full
    est = {pulses: 2 * e_dep + math.ceil(pulses / 10) * e_pot for pulses in (10, 50)}
    print(f"{n}x{n} tile, reference card, 1 Ω/segment, 10 slots per phase ({wall:.0f} s)")
    print(f"  full tile update cycle (random pattern)  {e_full:.4g} J   (baseline)")
    for name, e in (("one-cell potentiation cycle", e_pot), ("one-cell depression cycle", e_dep)):
        print(f"  {name:40s} {e:.4g} J   ({e / e_full:.4f} of the baseline)")
    s = ref.split_J
    print(f"  refresh event (2 depression + 1 potentiation cycles): selected "
          f"{s['cells_selected']:.3g}, half-selected {s['cells_half_selected']:.3g}, wires "
          f"{s['wires']:.3g} J")
    print(f"  refresh upper bound: 2 full cycles      {ledger:.4g} J")
    for pulses, e in est.items():
        print(f"  refresh estimate, re-program {pulses:2d} pulses {e:.4g} J   "
              f"(bound / estimate = {ledger / e:.1f}x)")
    if args.study:
        d = json.load(open(args.study))
        print(f"re-priced energy per training sample ({args.study}):")
        print(f"  {'run':45s} {'bound':>10s} {'refresh 0':>10s} "
              + " ".join(f"{'est ' + str(p):>10s}" for p in est))
        for r in d["rows"]:
            by = r.get("energy_per_sample_by_event_J") or {}
            if not by or not math.isfinite(r["energy_per_sample_J"]):
                continue
            lo = r.get("energy_per_sample_no_refresh_J",
                       sum(v for k, v in by.items() if k != "refresh"))
            vals = [lo + r["refreshes_per_sample"] * e for e in est.values()]
            hi = lo + r["refreshes_per_sample"] * ledger
            print(f"  {r['label'][:45]:45s} {hi:10.4g} {lo:10.4g} "
                  + " ".join(f"{v:10.4g}" for v in vals))


if __name__ == "__main__":
    main()
