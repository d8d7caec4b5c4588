"""Parallel-update check where IR drop matters: ngspice transient vs the IR-drop reference.

For each tile size and wire resistance (10 Ω drivers, the reference card, all cells at
x0 = 0.5, :func:`pyspice_rram.circuit.update.default_pattern`, 10 slots per phase) one run of
:func:`pyspice_rram.circuit.update.update_check` prints: the check's wall time (ngspice runs
while the references are computed), the ngspice transient's wall and
CPU time (the CPU time of the ngspice child process, which a loaded machine does not
inflate), the reference's wall time, the error of ngspice's state change against the
IR-drop reference (max / RMS, in units of the state range and of one full-select pulse),
the same against the NumPy model without IR drop, and the half-select disturb (row pulsed
and column idle / column pulsed and row idle) from both.

Target (issue 11): the 32x32 check in <= 2 min. Run with ``nice`` on a shared machine::

    nice .venv/bin/python benchmarks/bench_update.py [--sizes 32,64] [--r-wires 0.5,2.5,5]
        [--cell auto|osdi|subckt] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

from pyspice_rram.circuit.update import default_pattern, update_check
from pyspice_rram.device import ModelCard


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_one(card: ModelCard, n: int, r_wire: float, cell: str) -> dict:
    """One update check of an ``n x n`` tile; metrics, timings and settings."""
    x, d = default_pattern(n, n)
    cpu0, t0 = _children_cpu_s(), time.perf_counter()
    res = update_check(card, x, d, r_wire=r_wire, r_driver=10.0, cell=cell)
    out = dict(size=n, r_wire=r_wire, wall_s=time.perf_counter() - t0,
               ngspice_cpu_s=_children_cpu_s() - cpu0, cell=res.settings["cell"],
               **res.timings, **{f"m_{k}": v for k, v in res.metrics.items()},
               reference_stats=res.reference_stats)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="32,64", help="tile sizes (comma-separated)")
    ap.add_argument("--r-wires", default="0.5,2.5,5", help="wire Ω per segment")
    ap.add_argument("--cell", default="auto", choices=("auto", "osdi", "subckt"))
    ap.add_argument("--json", help="write the results as JSON")
    args = ap.parse_args()
    card = ModelCard.reference()
    rows = []
    head = (f"{'tile':>6} {'R_w':>5} {'cell':>6} {'wall':>7} {'ngspice':>9} {'cpu':>7} {'ref':>7} "
            f"{'err max':>9} {'err rms':>9} {'max pulses':>10} {'no-IR max':>9} "
            f"{'half row':>17} {'half col':>17} {'|dx| max':>8}")
    print(head)
    for n in [int(s) for s in args.sizes.split(",")]:
        for rw in [float(s) for s in args.r_wires.split(",")]:
            r = run_one(card, n, rw, args.cell)
            rows.append(r)
            print(f"{n:>4}^2 {rw:>5g} {r['cell']:>6} {r['wall_s']:>6.1f}s {r['ngspice_s']:>8.1f}s "
                  f"{r['ngspice_cpu_s']:>6.1f}s {r['reference_s']:>6.1f}s "
                  f"{r['m_ngspice_vs_irdrop_max_dx']:>9.2e} {r['m_ngspice_vs_irdrop_rms_dx']:>9.2e} "
                  f"{r['m_ngspice_vs_irdrop_max_pulses']:>10.2e} "
                  f"{r['m_ngspice_vs_numpy_max_dx']:>9.2e} "
                  f"{r['m_half_row_max_dx']:>8.2e}/{r['m_half_row_max_dx_irdrop']:<8.2e} "
                  f"{r['m_half_col_max_dx']:>8.2e}/{r['m_half_col_max_dx_irdrop']:<8.2e} "
                  f"{r['m_max_dx']:>8.3f}", flush=True)
    print("err: ngspice state change minus the IR-drop reference's (state range = 1); pulses: "
          "in units of one full-select pulse; half row/col: ngspice/reference")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"platform": platform.platform(), "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
