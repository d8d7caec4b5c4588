"""Surrogate step of the main job: surrogate (shipped or refitted) -> training -> check.

:func:`demo` is what ``pyspice-rram run`` calls after the crossbar step:

1. the shipped surrogate if the card's read law (``g_min/g_max`` densities, ``V_nl``,
   reference area) is within the surrogate's ``card_rtol`` of its fitted card (the rule of
   :meth:`.SurrogateBackend.for_card`), else a small ngspice data set of the given card
   (``surrogate_data.h5``) and a refit (``surrogate.json``), validated on its held-out tiles;
2. a hybrid network trained on the embedded 8x8 digits with every read through the
   surrogate (32x32 tiles, 1 Ω per segment);
3. ``check`` of a few test images through ideal VMM, surrogate and ngspice on every tile.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..circuit.safeio import atomic_write_text
from ..device.card import ModelCard
from ..surrogate.model import TileSurrogate


def demo(card: ModelCard | None = None, outdir: str | Path = "out/surrogate", *,
         progress: bool = True, n_images: int = 20, epochs: int = 3,
         solver: str = "ngspice", force: bool = False) -> dict[str, Any]:
    """Run the surrogate step; returns a summary dict (also written to ``summary.json``).

    ``force``: replace an earlier surrogate data set and training run in ``outdir`` (e.g. of
    another card) instead of continuing / refusing them."""
    from ..network.train import TrainConfig, train
    from ..surrogate.backend import SurrogateBackend
    from ..surrogate.check import format_check, run_check
    from ..surrogate.dataset import DataSpec, generate
    from ..surrogate.fit import fit_surrogate
    from ..surrogate.validate import evaluate, summarise

    card = card or ModelCard.reference()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    sur = TileSurrogate.load()
    if sur.card is not None and not sur.card_problems(card):
        summary["surrogate"] = "shipped"
    else:
        spec = DataSpec(n_items=16, sizes=[16, 32, 48], n_vectors=6, test_fraction=0.25,
                        mna_fraction=0.25, seed=7)
        data = generate(outdir / "surrogate_data.h5", spec, card, workers=2, progress=progress,
                        new=force)
        sur, report = fit_surrogate(data)
        ev = summarise(evaluate(sur, data, "test"))
        sur.provenance["heldout_rms_pct_fs"] = ev["rms_pct"]
        sur.provenance["heldout_max_pct_fs"] = ev["max_pct"]
        sur.save(outdir / "surrogate.json")
        summary["surrogate"] = "refitted"
        summary["refit_heldout_rms_pct_fs"] = ev["rms_pct"]
        summary["refit_heldout_max_pct_fs"] = ev["max_pct"]
    sur_path = sur.save(outdir / "surrogate_used.json")
    tile = (32, 32)
    cfg = TrainConfig(name="hybrid-surrogate", dataset="digits", cell="hybrid", n_hidden=64,
                      epochs=epochs, seed=0, w_max=[0.3, 1.0],
                      cell_params={"rounding": "stochastic", "k": 10.0},
                      device={"n_states": 50, "c2c": 0.34})
    backend = SurrogateBackend(sur, card=card, tile=tile, r_wire=1.0)
    run = train(cfg, outdir / "train_surrogate.h5", card=card, backend=backend,
                progress=progress, force=force)
    summary["train_test_acc"] = [float(a) for a in run.history.epochs["test_acc"]]
    chk = run_check(outdir / "train_surrogate.h5", n_images, surrogate=sur_path, card=card,
                    solver=solver, tile=tile, r_wire=1.0, workers=2, progress=progress,
                    out=outdir / "check.json")
    summary["check"] = {k: chk[k] for k in ("accuracy", "agreement_surrogate_vs_circuit",
                                            "layers", "n_images")}
    atomic_write_text(outdir / "summary.json", json.dumps(summary, indent=1) + "\n")
    print(format_check(chk))
    return summary
