"""The crossbar step of the main job: a small layer of the fitted card solved in ngspice.

:func:`demo` maps a seeded random 64x32 weight matrix onto differential pairs of 32x32 tiles
of the card's cells (1 Ω per wire segment, 10 Ω drivers, ideal virtual ground), reads it
forward and transposed with 8 input vectors in ngspice (``ngspice -b`` over a process pool),
in the nodal solver and without parasitics, and reports the VMM error against the ideal
product, the ngspice-MNA agreement, an error-vs-tile-size/wire-resistance sweep (MNA) and the
8x8 parallel-update transient. Everything is written to ``outdir``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..device.card import ModelCard
from ..circuit.mapping import encode_inputs, map_layer
from ..circuit.safeio import atomic_write_text
from ..circuit.store import TileResult, save_results
from ..circuit.sweep import error_sweep, plot_error_sweep, plot_tile_topology, vmm_errors
from ..circuit.update import default_pattern, plot_update, update_check


def demo(card: ModelCard, outdir: str | Path, progress: bool = True, *,
         shape: tuple[int, int] = (64, 32), tile_size: int = 32, n_vectors: int = 8,
         r_wire: float = 1.0, r_driver: float = 10.0, workers: int = 2,
         seed: int = 0) -> dict[str, Any]:
    """Build, solve and check the tiles of a small layer; return a JSON-ready summary.

    Parameters
    ----------
    card : ModelCard
        The (fitted) cell card.
    outdir : path
        Output folder: ``results.h5`` (every tile: states, inputs, ngspice/MNA/ideal outputs,
        netlist hash, card, settings, timings), ``error_vs_tile.png``, ``update.png``,
        ``tile_topology.png``, ``summary.json``.
    progress : bool
        tqdm progress bars over tiles.
    shape, tile_size, n_vectors, r_wire, r_driver, workers, seed :
        Layer shape, tile size, number of input vectors, wire resistance per segment (Ω),
        driver resistance (Ω), ngspice worker processes and random seed.
    """
    t_start = time.perf_counter()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, 1.0, shape)
    layer = map_layer(W, card=card, synapse="pair", tile_size=tile_size, r_wire_row=r_wire,
                      r_wire_col=r_wire, r_driver=r_driver)
    summary: dict[str, Any] = {"card": card.name, "layer": list(shape), "tile_size": tile_size,
                               "tiles_per_read": len(layer.tiles), "n_vectors": n_vectors,
                               "r_wire_ohm": r_wire, "r_driver_ohm": r_driver,
                               "v_read_V": layer.v_read}
    records: list[TileResult] = []
    for direction, n_in in (("forward", shape[0]), ("transposed", shape[1])):
        a = rng.uniform(0.0, 1.0, (n_vectors, n_in))
        v = encode_inputs(a, layer.v_read, card)
        infos: list[dict] = []
        t0 = time.perf_counter()
        out_ng, parts_ng = layer.read(v, direction, solver="ngspice", workers=workers,
                                      progress=progress, infos=infos, return_partials=True)
        t_ng = time.perf_counter() - t0
        t0 = time.perf_counter()
        out_mna, parts_mna = layer.read(v, direction, solver="mna", return_partials=True)
        t_mna = time.perf_counter() - t0
        out_ideal, parts_ideal = layer.read(v, direction, solver="ideal", return_partials=True)
        target = layer.ideal_vmm(v, direction)
        rel = max(float(np.max(np.abs(pn - pm) / np.maximum(np.abs(pm), 1e-300)))
                  for pn, pm in zip(parts_ng, parts_mna))
        summary[direction] = {
            "vmm_error_vs_ideal_circuit": vmm_errors(out_ng, out_ideal),
            "vmm_error_vs_weight_product": vmm_errors(out_ng, target),
            "ngspice_vs_mna_max_rel_per_current": rel,
            "ngspice_s": round(t_ng, 3), "mna_s": round(t_mna, 3),
        }
        for slot, (task, pn, pm, pi, info) in enumerate(zip(layer.tasks(v, direction), parts_ng,
                                                            parts_mna, parts_ideal, infos)):
            tile, v_tile, _ = task
            records.append(TileResult(tile, direction, v_tile,
                                      {"ngspice": pn, "mna": pm, "ideal": pi},
                                      netlist_sha256=info.get("netlist_sha256", ""),
                                      solver_settings={"ngspice": {
                                          k: info.get(k) for k in ("backend", "klu", "options",
                                                                   "attempts")}},
                                      timings={"ngspice": info["wall_s"]}))
    save_results(outdir / "results.h5", records, attrs={"demo": "pyspice_rram.paper.crossbar_step.demo",
                                                         "weights_seed": seed})
    summary["results"] = str(outdir / "results.h5")

    sweep = error_sweep(W, rng.uniform(0, 1, (4, shape[0])), card=card,
                        tile_sizes=(8, 16, 32, 64), r_wires=(0.5, 1.0, 2.5, 5.0),
                        r_driver=r_driver, progress=progress)
    plot_error_sweep(sweep, outdir / "error_vs_tile.png",
                     f"IR-drop error of a {shape[0]}x{shape[1]} layer, card '{card.name}' (MNA)")
    summary["error_sweep"] = {"tile_sizes": sweep["tile_sizes"], "r_wires": sweep["r_wires"],
                              "max_rel": sweep["max_rel"].round(6).tolist()}

    x, d = default_pattern()
    upd = update_check(card, x, d)
    plot_update(upd, outdir / "update.png")
    summary["update_check"] = {k: round(v, 6) for k, v in upd.metrics.items()}
    plot_tile_topology(outdir / "tile_topology.png")
    summary["seconds"] = round(time.perf_counter() - t_start, 2)
    atomic_write_text(outdir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
