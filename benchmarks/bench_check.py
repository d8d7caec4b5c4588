"""Cell-space solver against the sparse nodal solver: time per input vector, one process.

Prints, for 64x64 and 128x128 tiles of model cells (reference card, uniform random states,
5 Ω per wire segment, ideal periphery) read with MNIST-like inputs (70 % of the rows at 0 V,
the rest uniform in [0, 0.2] V):

* the cell-space solver (:mod:`pyspice_rram.circuit.cellspace`): CPU and wall time per input
  vector over ``--vectors`` vectors, with the numba threads of this process, its mean CG and
  largest Newton iteration counts;
* the sparse nodal solver (:mod:`pyspice_rram.circuit.mna`) on the first ``--mna-vectors``
  of them;
* the ratio (sparse / cell-space, wall time per vector) and the largest difference of the
  sensed currents relative to their largest magnitude.

Goal (issue 11): 10,000 MNIST images through a 784-250-10 hybrid network on 128x128 tiles
(64 tile reads per image) in <= 10 min on 2 cores, i.e. <= ~0.9 ms per 128x128 tile read
per 2 cores, agreeing with the sparse solver to <= 1e-6. On a shared machine run it with
``nice`` and read the load average it prints::

    nice .venv/bin/python benchmarks/bench_check.py [--vectors 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from pyspice_rram.circuit import cellspace, mna
from pyspice_rram.circuit.tile import Tile
from pyspice_rram.device import ModelCard


def _inputs(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return 0.2 * rng.uniform(0, 1, (k, n)) * (rng.uniform(0, 1, (k, n)) < 0.3)


def bench(n: int, vectors: int, mna_vectors: int) -> dict:
    rng = np.random.default_rng(n)
    tile = Tile.random(n, n, rng=rng, card=ModelCard.reference(), r_wire_row=5.0,
                       r_wire_col=5.0)
    v = _inputs(n, vectors, rng)
    system = cellspace.CellSpaceSystem(tile)
    system.solve(v[:2])                          # compile (cached on disk after the first run)
    t0, c0 = time.perf_counter(), time.process_time()
    fast = system.solve(v)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stats = dict(system.stats)
    t0 = time.perf_counter()
    ref = mna.solve_tile(tile, v[:mna_vectors])
    wall_mna = time.perf_counter() - t0
    err = float(np.abs(fast[:mna_vectors] - ref).max() / np.abs(ref).max())
    per, per_mna = wall / vectors, wall_mna / mna_vectors
    return {"n": n, "vectors": vectors, "cellspace_wall_ms_per_vector": 1e3 * per,
            "cellspace_cpu_ms_per_vector": 1e3 * cpu / vectors,
            "cg_iterations_mean": stats["cg_iterations_mean"],
            "newton_iterations_max": stats["newton_iterations_max"],
            "mna_vectors": mna_vectors, "mna_wall_ms_per_vector": 1e3 * per_mna,
            "ratio_mna_over_cellspace": per_mna / per, "max_rel_difference": err}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vectors", type=int, default=200)
    ap.add_argument("--mna-vectors", type=int, default=50)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    import numba

    load = os.getloadavg()[0]
    print(f"# {platform.processor() or platform.machine()}, numba threads "
          f"{numba.get_num_threads()}, load average {load:.1f} (shared machine: times scale "
          "with it)")
    rows = [bench(n, args.vectors, args.mna_vectors) for n in (64, 128)]
    print("| N | cell-space wall / vector | CPU / vector | CG its (mean) | Newton (max) | "
          "sparse MNA / vector | ratio | max rel. difference |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['cellspace_wall_ms_per_vector']:.2f} ms | "
              f"{r['cellspace_cpu_ms_per_vector']:.2f} ms | {r['cg_iterations_mean']:.1f} | "
              f"{r['newton_iterations_max']} | {r['mna_wall_ms_per_vector']:.1f} ms | "
              f"{r['ratio_mna_over_cellspace']:.1f}x | {r['max_rel_difference']:.1e} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"load_average": load, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
