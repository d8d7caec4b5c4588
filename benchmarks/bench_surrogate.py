"""Speed of the tile surrogate against ngspice and the MNA solver, and in the training loop.

Run: ``python benchmarks/bench_surrogate.py [--size 64 128] [--vectors 64] [--samples 3000]
[--cells fp single hybrid multi 2t2r]``

1. Per-read time of a ``size x size`` tile of reference-card model cells (random states,
   1 Ω per segment, sinh cells), ``--vectors`` input vectors read in one batch, forward:
   ngspice (``ngspice -b``, one DC sweep over all vectors, KLU), the sparse MNA solver
   (chord Newton over all vectors), the cell-space solver (the fast MNA of ``check``), the
   surrogate (per-tile preparation + reads, and reads of a prepared
   tile). Same tile, same inputs, one run; ratios printed (acceptance of issue 11: ngspice /
   surrogate >= 1e4, MNA / surrogate >= 100 at 64x64 and 128x128).
2. Training loop, per cell (784-250-10 of ``configs/train/<cell>.toml``, MNIST when
   ``--mnist``/``$PYSPICE_RRAM_MNIST`` is given, else digits; batch 1): wall and CPU
   seconds per sample of the one compiled SGD loop with the ideal backend's reads and with
   the surrogate backend's reads (factor refresh every 5000 samples; 64x64 tiles, 1 Ω), and
   the surrogate's throughput relative to the ideal reads per CPU second (acceptance >= 1/3).
"""

from __future__ import annotations

import argparse
import math
import json
import os
import time

# every solver single-threaded (ngspice and MNA are): on a shared 2-core machine a threaded
# BLAS turns the surrogate's small matrix products into thread-wake-up stalls of ~10 ms
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402


def bench_reads(size: int, n_vec: int, repeats: int = 3) -> dict:
    from pyspice_rram.circuit import mna, ngspice_run
    from pyspice_rram.circuit.tile import Tile
    from pyspice_rram.device.card import ModelCard
    from pyspice_rram.surrogate.model import TileSurrogate

    card = ModelCard.reference()
    rng = np.random.default_rng(0)
    tile = Tile(x=rng.uniform(size=(size, size)), card=card, r_wire_row=1.0, r_wire_col=1.0)
    v = rng.uniform(0, card.scheme.v_read, (n_vec, size))
    sur = TileSurrogate.load()
    sur.predict(tile, v[:2])  # warm up (numba)

    def best(fn, k=repeats):
        ts = []
        for _ in range(k):
            t0 = time.perf_counter()
            out = fn()
            ts.append(time.perf_counter() - t0)
        return min(ts), out

    t_ng, i_ng = best(lambda: ngspice_run.solve_tile(tile, v, backend="batch"), 1)
    t_mna, i_mna = best(lambda: mna.solve_tile(tile, v), 1)
    from pyspice_rram.circuit import cellspace

    cellspace.solve_tile(tile, v[:2])                   # numba warm-up
    t_cs, i_cs = best(lambda: cellspace.solve_tile(tile, v), 3)
    t_sur, i_sur = best(lambda: sur.predict(tile, v), 20)
    prep = sur.prepare(tile)
    t_app, _ = best(lambda: prep.apply(v), 50)
    fs = size * card.g_max() * card.v_nl * np.sinh(card.scheme.v_read / card.v_nl)
    res = {"size": size, "vectors": n_vec,
           "ngspice_s_per_read": t_ng / n_vec, "mna_s_per_read": t_mna / n_vec,
           "cellspace_s_per_read": t_cs / n_vec,
           "cellspace_vs_ngspice_max_rel": float(np.max(np.abs(i_cs - i_ng))
                                                 / np.max(np.abs(i_ng))),
           "surrogate_s_per_read": t_sur / n_vec, "surrogate_prepared_s_per_read": t_app / n_vec,
           "surrogate_rms_err_pct_fs_vs_ngspice": float(100 * np.sqrt(np.mean((i_sur - i_ng) ** 2)) / fs),
           "mna_vs_ngspice_max_rel": float(np.max(np.abs(i_mna - i_ng)) / np.max(np.abs(i_ng)))}
    res["ratio_ngspice_over_surrogate"] = res["ngspice_s_per_read"] / res["surrogate_s_per_read"]
    res["ratio_mna_over_surrogate"] = res["mna_s_per_read"] / res["surrogate_s_per_read"]
    res["ratio_cellspace_over_surrogate"] = (res["cellspace_s_per_read"]
                                             / res["surrogate_s_per_read"])
    return res


#: Training configs timed per cell (784-250-10, MNIST or the digits).
CELL_CONFIGS = {"fp": "configs/train/fp.toml", "single": "configs/train/single.toml",
                "hybrid": "configs/train/hybrid.toml", "multi": "configs/train/multi.toml",
                "2t2r": "configs/train/2t2r.toml"}


def bench_training(n_samples: int, mnist: str | None, cells=tuple(CELL_CONFIGS),
                   tile: int = 64, r_wire: float = 1.0, blocks: int = 6) -> dict:
    """Seconds per training sample (wall and CPU) of the one compiled SGD loop with the ideal
    backend's reads and with the surrogate backend's reads, per cell; the same samples, the
    same initial layers, one process. The two networks train in alternating blocks of
    ``n_samples / blocks`` samples and each keeps its fastest block (CPU time per sample):
    on a shared machine a burst of load hits both alike instead of one."""
    from pyspice_rram.network.backend import IdealBackend
    from pyspice_rram.network.data import load_dataset
    from pyspice_rram.network.train import Network, TrainConfig
    from pyspice_rram.network.rng import seed_state
    from pyspice_rram.surrogate.backend import SurrogateBackend

    name = "mnist" if mnist else "digits"
    data = load_dataset(name, mnist)
    n = min(n_samples, len(data.y_train))
    order = np.random.default_rng(1).permutation(len(data.y_train))[:n]
    block = max(1, (n - 20) // blocks)
    out = {"dataset": name, "samples": n, "blocks": blocks, "tile": [tile, tile],
           "r_wire": r_wire, "cells": {}}
    for cell in cells:
        cfg = TrainConfig.load(CELL_CONFIGS[cell]).replace(dataset=name, epochs=1)
        base = Network(cfg, data.n_features, data.n_classes)
        row = out["cells"][cell] = {"config": CELL_CONFIGS[cell]}
        # both through the one compiled SGD loop (Network.train_samples), reads of the backend
        runs = {}
        for label, make in (("ideal", IdealBackend),
                            ("surrogate", lambda: SurrogateBackend(tile=(tile, tile),
                                                                   r_wire=r_wire))):
            net = Network(cfg, data.n_features, data.n_classes, backend=make(),
                          layers=[st.copy() for st in base.layers])
            state = (seed_state(0, 1), np.zeros(2))
            net.train_samples(data, order, 0, 20, *state)  # JIT warm-up, first factor refresh
            runs[label] = (net, state)
            row[f"{label}_s_per_sample"] = row[f"{label}_cpu_s_per_sample"] = math.inf
        for k in range(blocks):
            a = 20 + k * block
            for label, (net, state) in runs.items():
                t0, c0 = time.perf_counter(), time.process_time()
                net.train_samples(data, order, a, a + block, *state)
                row[f"{label}_s_per_sample"] = min(row[f"{label}_s_per_sample"],
                                                   (time.perf_counter() - t0) / block)
                row[f"{label}_cpu_s_per_sample"] = min(row[f"{label}_cpu_s_per_sample"],
                                                       (time.process_time() - c0) / block)
        row["throughput_surrogate_over_ideal_cpu"] = (row["ideal_cpu_s_per_sample"]
                                                      / row["surrogate_cpu_s_per_sample"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--vectors", type=int, default=64)
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--cells", nargs="+", default=list(CELL_CONFIGS), choices=list(CELL_CONFIGS))
    ap.add_argument("--mnist", default=os.environ.get("PYSPICE_RRAM_MNIST"))
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--skip-reads", action="store_true")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    res = {"reads": []}
    for size in ([] if args.skip_reads else args.size):
        r = bench_reads(size, args.vectors)
        res["reads"].append(r)
        print(f"{r['size']}x{r['size']} tile, {r['vectors']} vectors, 1 Ω/segment, sinh cells")
        print(f"  ngspice   {1e3 * r['ngspice_s_per_read']:10.3f} ms/read")
        print(f"  MNA       {1e3 * r['mna_s_per_read']:10.3f} ms/read (sparse nodal, chord "
              "Newton)")
        print(f"  cellspace {1e3 * r['cellspace_s_per_read']:10.3f} ms/read (cell-space "
              f"Newton-CG, numba threads; vs ngspice max rel "
              f"{r['cellspace_vs_ngspice_max_rel']:.1e})")
        print(f"  surrogate {1e3 * r['surrogate_s_per_read']:10.4f} ms/read (incl. tile "
              f"preparation); {1e3 * r['surrogate_prepared_s_per_read']:.4f} ms/read on a "
              "prepared tile")
        print(f"  ratios: ngspice/surrogate {r['ratio_ngspice_over_surrogate']:.3g}x, "
              f"MNA/surrogate {r['ratio_mna_over_surrogate']:.3g}x, cellspace/surrogate "
              f"{r['ratio_cellspace_over_surrogate']:.3g}x   (acceptance: >= 1e4, >= 100)")
        print(f"  surrogate vs ngspice RMS error {r['surrogate_rms_err_pct_fs_vs_ngspice']:.4f} "
              f"% FS; MNA vs ngspice max rel {r['mna_vs_ngspice_max_rel']:.2e}")
    if not args.skip_training:
        t = bench_training(args.samples, args.mnist, args.cells)
        res["training"] = t
        print(f"training loop ({t['dataset']}, {t['samples']} samples, batch 1, surrogate on "
              f"64x64 tiles at 1 Ω): ms per sample, wall / CPU (fastest of {t['blocks']} "
              "alternating blocks)")
        for cell, row in t["cells"].items():
            print(f"  {cell:7s} ideal {1e3 * row['ideal_s_per_sample']:7.3f} / "
                  f"{1e3 * row['ideal_cpu_s_per_sample']:7.3f}   surrogate "
                  f"{1e3 * row['surrogate_s_per_sample']:7.3f} / "
                  f"{1e3 * row['surrogate_cpu_s_per_sample']:7.3f}   throughput surrogate/ideal "
                  f"per CPU s {row['throughput_surrogate_over_ideal_cpu']:.2f} "
                  "(acceptance >= 0.33)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
