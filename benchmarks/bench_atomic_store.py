"""Cost of the crash-safe result store of ``xbar solve`` (issue 12).

Each tile result (64x64 model cells: states, areas, low-field conductances, 8 input
vectors, three solvers' outputs) is appended to an HDF5 file three ways:

* in place (``h5py.File(path, "a")`` per tile, the old store: a kill can corrupt the file);
* atomically per tile (:func:`~pyspice_rram.circuit.safeio.atomic_h5`: a copy appended to
  and renamed over the file; O(n^2) bytes copied);
* through :class:`~pyspice_rram.circuit.safeio.H5Checkpoints` (atomic commits at most every
  ``CHECKPOINT_S`` s and >= 20x the last commit's duration apart), with a simulated solve
  time per tile.

Prints total seconds and the store's share of a run. Run with ``nice`` on a shared
machine::

    nice .venv/bin/python benchmarks/bench_atomic_store.py [--tiles 576] [--solve-ms 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from pyspice_rram.circuit.safeio import H5Checkpoints, atomic_h5
from pyspice_rram.circuit.store import TileResult, write_results
from pyspice_rram.circuit.tile import Tile
from pyspice_rram.device import ModelCard


def records(n: int, size: int = 64, n_vectors: int = 8) -> list[TileResult]:
    rng = np.random.default_rng(0)
    card = ModelCard.reference()
    out = []
    for _ in range(n):
        tile = Tile.random(size, size, rng=rng, card=card)
        v = rng.uniform(0, 0.2, (n_vectors, size))
        o = {s: rng.normal(size=(n_vectors, size)) for s in ("ngspice", "mna", "ideal")}
        out.append(TileResult(tile, "forward", v, o))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", type=int, default=576, help="tiles stored")
    ap.add_argument("--solve-ms", type=float, default=20.0,
                    help="simulated solve time per tile (ms) for the checkpointed store")
    a = ap.parse_args()
    recs = records(min(a.tiles, 32))
    recs = [recs[k % len(recs)] for k in range(a.tiles)]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "inplace.h5"
        t0 = time.perf_counter()
        with h5py.File(p, "w") as f:
            write_results(f, [])
        for r in recs:
            with h5py.File(p, "a") as f:
                write_results(f, [r])
        t_inplace = time.perf_counter() - t0
        size_mb = p.stat().st_size / 1e6

        n_atomic = min(a.tiles, 200)
        p = Path(d) / "atomic.h5"
        t0 = time.perf_counter()
        with atomic_h5(p) as f:
            write_results(f, [])
        for r in recs[:n_atomic]:
            with atomic_h5(p, append=True) as f:
                write_results(f, [r])
        t_atomic = time.perf_counter() - t0

        p = Path(d) / "ckpt.h5"
        t0 = time.perf_counter()
        store = H5Checkpoints(p, lambda f, rs: write_results(f, rs), new=True)
        for r in recs:
            time.sleep(a.solve_ms / 1e3)
            store.add(r)
        store.commit()
        n_commits = store.n_commits
        t_ckpt = time.perf_counter() - t0
        solve = a.tiles * a.solve_ms / 1e3
    print(f"{a.tiles} tiles of 64x64, file {size_mb:.1f} MB")
    print(f"  in place, per tile            {t_inplace:8.2f} s  (not crash-safe)")
    print(f"  atomic copy per tile ({n_atomic} tiles) {t_atomic:8.2f} s")
    print(f"  H5Checkpoints                 {t_ckpt:8.2f} s  of which solving {solve:.2f} s; "
          f"store {store.commit_s:.2f} s in {n_commits} commits, of which copying "
          f"{store.copy_s:.2f} s "
          f"({store.commit_s - t_inplace:+.2f} s against the in-place store)")


if __name__ == "__main__":
    main()
