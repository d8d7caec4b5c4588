"""Regenerate the figures of docs/circuit.md (about 1 min on 2 cores).

    .venv/bin/python docs/figures/circuit/make_figures.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pyspice_rram.circuit.sweep import error_sweep, plot_error_sweep, plot_tile_topology
from pyspice_rram.circuit.update import default_pattern, plot_update, update_check
from pyspice_rram.device import ModelCard

HERE = Path(__file__).resolve().parent


def main() -> None:
    card = ModelCard.reference()
    plot_tile_topology(HERE / "tile_topology.png")
    rng = np.random.default_rng(0)
    W = rng.normal(0.0, 1.0, (256, 128))
    a = rng.uniform(0.0, 1.0, (4, 256))
    res = error_sweep(W, a, card=card, tile_sizes=(16, 32, 64, 128),
                      r_wires=(0.1, 0.5, 1.0, 2.5, 5.0), r_driver=0.0, progress=True)
    plot_error_sweep(res, HERE / "error_vs_tile.png",
                     "IR-drop error of a 256x128 layer (differential pairs, reference card, "
                     "MNA, ideal drivers)")
    x, d = default_pattern()
    upd = update_check(card, x, d, r_wire=1.0, r_driver=10.0)
    plot_update(upd, HERE / "update.png")
    upd0 = update_check(card, x, d, r_wire=0.0, r_driver=0.0)
    plot_update(upd0, HERE / "update_no_ir.png")
    out = {"error_sweep": {"tile_sizes": res["tile_sizes"], "r_wires": res["r_wires"],
                           "max_rel": res["max_rel"].tolist(), "rms_rel": res["rms_rel"].tolist()},
           "update": upd.metrics, "update_no_ir_drop": upd0.metrics,
           "update_settings": upd.settings}
    (HERE / "figures.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
