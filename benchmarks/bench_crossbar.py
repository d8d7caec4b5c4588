"""Crossbar solve times: ngspice (shared library and ``ngspice -b``) against the nodal solver.

Prints, in one run and on the same tiles (2.5 Ω per wire segment, 10 Ω drivers, ideal virtual
ground, read voltages in [0, 0.2] V):

* ngspice time per tile solve (one input vector) and per extra input vector (amortised over
  the index-source DC sweep of ``K`` vectors) for 32, 64, 128 tiles, linear and model cells;
* MNA time per tile (assembly + factorisation + one vector) and per extra vector for
  32 ... 512;
* the ratio ngspice / MNA at the sizes both ran.

Targets (issue 3): ngspice <= 0.5 s per 64x64 solve, <= 0.1 s per extra vector amortised;
MNA >= 10x faster than ngspice at the same size. Run with ``nice`` on a shared machine::

    nice .venv/bin/python benchmarks/bench_crossbar.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from pyspice_rram.circuit import mna, ngspice_run
from pyspice_rram.circuit.tile import Tile
from pyspice_rram.device import ModelCard


def _tile(n: int, cells: str, card: ModelCard) -> Tile:
    rng = np.random.default_rng(n)
    return Tile.random(n, n, rng=rng, card=card if cells == "model" else None,
                       r_wire_row=2.5, r_wire_col=2.5, r_driver=10.0)


def _best(fn, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


#: Smallest difference of two timings taken as a measurement (perf_counter resolution, at
#: least 1 us); a baseline below it prints "n/a" instead of a ratio.
TIMER_FLOOR_S = max(time.get_clock_info("perf_counter").resolution, 1e-6)


def bench_ngspice(n: int, cells: str, card: ModelCard, k_extra: int, repeat: int,
                  backend: str) -> dict:
    tile = _tile(n, cells, card)
    rng = np.random.default_rng(1)
    v1 = rng.uniform(0, 0.2, (1, n))
    vk = rng.uniform(0, 0.2, (1 + k_extra, n))
    t1 = _best(lambda: ngspice_run.solve_tile(tile, v1, backend=backend), repeat)
    tk = _best(lambda: ngspice_run.solve_tile(tile, vk, backend=backend), repeat)
    return {"n": n, "cells": cells, "backend": backend, "solve_s": t1,
            "per_extra_vector_s": max(tk - t1, 0.0) / k_extra, "k": 1 + k_extra}


def bench_mna(n: int, cells: str, card: ModelCard, k_extra: int, repeat: int) -> dict:
    tile = _tile(n, cells, card)
    rng = np.random.default_rng(1)
    v1 = rng.uniform(0, 0.2, (1, n))
    vk = rng.uniform(0, 0.2, (1 + k_extra, n))
    t1 = _best(lambda: mna.solve_tile(tile, v1), repeat)
    tk = _best(lambda: mna.solve_tile(tile, vk), repeat)
    return {"n": n, "cells": cells, "solve_s": t1,
            "per_extra_vector_s": max(tk - t1, 0.0) / k_extra, "k": 1 + k_extra}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="32/64 only (CI smoke run)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--extra", type=int, default=8, help="extra input vectors per sweep")
    ap.add_argument("--json", help="write the results as JSON")
    args = ap.parse_args(argv)
    card = ModelCard.reference()
    ng_sizes = (32, 64) if args.quick else (32, 64, 128)
    mna_sizes = (32, 64) if args.quick else (32, 64, 128, 256, 512)
    info = ngspice_run.ngspice_info()
    print(f"ngspice-{info['version']} (KLU: {info['klu']}), Python {platform.python_version()},"
          f" {platform.machine()}; best of {args.repeat}; per extra vector amortised over "
          f"{args.extra} extra vectors")
    res: dict = {"ngspice": [], "mna": [], "ngspice_version": info["version"],
                 "klu": info["klu"], "repeat": args.repeat, "extra": args.extra}
    for cells in ("linear", "model"):
        for n in ng_sizes:
            for backend in ("shared", "batch"):
                r = bench_ngspice(n, cells, card, args.extra, args.repeat, backend)
                res["ngspice"].append(r)
                print(f"ngspice {backend:6s} {cells:6s} {n:4d}x{n:<4d} solve {r['solve_s']:8.3f} s"
                      f"   per extra vector {r['per_extra_vector_s'] * 1e3:8.1f} ms", flush=True)
        for n in mna_sizes:
            rep = args.repeat if n <= 256 else 1
            r = bench_mna(n, cells, card, args.extra, rep)
            res["mna"].append(r)
            print(f"MNA            {cells:6s} {n:4d}x{n:<4d} solve {r['solve_s']:8.3f} s"
                  f"   per extra vector {r['per_extra_vector_s'] * 1e3:8.1f} ms", flush=True)
    print("\nratio ngspice (shared) / MNA at the same size")
    print(f"{'cells':6s} {'N':>4s} {'solve':>8s} {'extra vector':>13s}")
    res["ratio"] = []
    for cells in ("linear", "model"):
        for n in ng_sizes:
            a = next(r for r in res["ngspice"] if r["n"] == n and r["cells"] == cells
                     and r["backend"] == "shared")
            b = next(r for r in res["mna"] if r["n"] == n and r["cells"] == cells)
            rs = a["solve_s"] / b["solve_s"]
            # the MNA extra-vector time is a difference of two timings: at small sizes it is
            # below what the timer resolves (often 0), and a ratio to it is meaningless
            if b["per_extra_vector_s"] * (b["k"] - 1) < TIMER_FLOOR_S:
                rv, rv_text = None, "n/a (baseline < timer resolution)"
            else:
                rv = a["per_extra_vector_s"] / b["per_extra_vector_s"]
                rv_text = f"{rv:12.1f}x"
            res["ratio"].append({"n": n, "cells": cells, "solve": rs, "per_extra_vector": rv})
            print(f"{cells:6s} {n:4d} {rs:8.1f}x {rv_text}")
    t64 = [r for r in res["ngspice"] if r["n"] == 64 and r["backend"] == "shared"]
    print("\ntargets: ngspice 64x64 solve <= 0.5 s: "
          + ", ".join(f"{r['cells']} {r['solve_s']:.3f} s" for r in t64)
          + "; per extra vector <= 0.1 s: "
          + ", ".join(f"{r['cells']} {r['per_extra_vector_s']:.3f} s" for r in t64))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
