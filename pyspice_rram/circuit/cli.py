"""``pyspice-rram xbar``: build and solve crossbar tiles for a card, weights and inputs.

Subcommands::

    xbar solve   --card CARD.json --weights W.npy [--inputs A.npy] [--tile 64] [--r-wire 1]
                 [--solver ngspice|mna|both] [--direction forward|transposed]
                 [--workers N] [--scheduler tcp://host:8786] [--out results.h5]
    xbar sweep   --card CARD.json [--weights W.npy] --sizes 16,32,64,128 --r-wires 0.5,1,2.5,5
                 --figure error.png
    xbar update  --card CARD.json [--out DIR]          parallel-update transient (8x8)
    xbar netlist --card CARD.json --size 8 --out tile.cir   write one tile's netlist
    xbar demo    --card CARD.json --out DIR            the main job's circuit step

Weights: ``.npy``, ``.npz`` (``file.npz:key``), ``.csv``/``.txt``, or HDF5
``file.h5:dataset``; shape (n_in, n_out). Inputs are activations in [-1, 1] of shape
(n_vectors, n_in) (or (n_vectors, n_out) for transposed reads), encoded at the card's read
voltage; default: random in [0, 1]. Without ``--card`` the cells are linear with
``--g-range``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def load_matrix(spec: str) -> np.ndarray:
    """Load a matrix from ``.npy``, ``.npz[:key]``, ``.csv``/``.txt`` or ``.h5[:dataset]``."""
    path, _, key = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        return np.load(p)
    if suffix == ".npz":
        with np.load(p) as z:
            names = list(z.keys())
            if not key and len(names) != 1:
                raise ValueError(f"{p} holds {names}: name one as {p}:<key>")
            return z[key or names[0]]
    if suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(p, "r") as f:
            if not key:
                names = [k for k in f if isinstance(f[k], h5py.Dataset)]
                if len(names) != 1:
                    raise ValueError(f"{p}: name the dataset as {p}:<dataset>")
                key = names[0]
            if key not in f:
                raise ValueError(f"{p} has no dataset {key!r}")
            return f[key][()]
    if suffix in (".csv", ".txt", ".tsv"):
        return np.loadtxt(p, delimiter="," if suffix == ".csv" else None, ndmin=2)
    raise ValueError(f"unsupported matrix file type {suffix!r} (.npy, .npz, .csv, .h5)")


def _card(args):
    from ..device.card import ModelCard

    if args.card:
        return ModelCard.load(args.card)
    if getattr(args, "g_range", None):
        return None
    return ModelCard.reference()


def _floats(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t.strip()]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--card", help="model card JSON (default: the reference card)")
    p.add_argument("--g-range", type=float, nargs=2, metavar=("GMIN", "GMAX"),
                   help="linear cells with this conductance range (S) instead of a card")
    p.add_argument("--r-wire", type=float, default=1.0, help="row wire Ω per segment")
    p.add_argument("--r-wire-col", type=float, help="column wire Ω per segment (default r-wire)")
    p.add_argument("--r-driver", type=float, default=0.0, help="driver resistance Ω")
    p.add_argument("--r-sense", type=float, default=0.0, help="sense input resistance Ω")
    p.add_argument("--synapse", choices=("pair", "hybrid"), default="pair")
    p.add_argument("--k", type=float, default=10.0, help="hybrid gain k")
    p.add_argument("--n-states", type=int, help="programmable levels per device")
    p.add_argument("--no-progress", action="store_true")


def _map(args, W, tile):
    from .mapping import map_layer

    card = _card(args)
    return map_layer(W, card=card, g_range=tuple(args.g_range) if args.g_range else None,
                     synapse=args.synapse, k=args.k, n_states=args.n_states, tile_size=tile,
                     r_wire_row=args.r_wire,
                     r_wire_col=args.r_wire if args.r_wire_col is None else args.r_wire_col,
                     r_driver=args.r_driver, r_sense=args.r_sense,
                     adc_bits=getattr(args, "adc_bits", None))


def cmd_solve(args) -> int:
    from .mapping import encode_inputs
    from .store import TileResult, save_results
    from .sweep import vmm_errors

    W = load_matrix(args.weights)
    layer = _map(args, W, args.tile)
    n = layer.n_in if args.direction == "forward" else layer.n_out
    if args.inputs:
        a = load_matrix(args.inputs)
    else:
        a = np.random.default_rng(args.seed).uniform(0, 1, (args.n_vectors, n))
    a = np.atleast_2d(a)
    if a.shape[1] != n:
        raise ValueError(f"inputs have {a.shape[1]} columns, the {args.direction} read of a "
                         f"{layer.n_in}x{layer.n_out} layer needs {n}")
    v = encode_inputs(a, layer.v_read, layer.card)
    solvers = ["ngspice", "mna"] if args.solver == "both" else [args.solver]
    ideal, ideal_parts = layer.read(v, args.direction, solver="ideal", return_partials=True)
    outs, parts, infos = {}, {}, {}
    print(f"layer {layer.n_in}x{layer.n_out}, {args.synapse} synapse, {len(layer.tiles)} tiles "
          f"of {layer.tile_shape[0]}x{layer.tile_shape[1]}, {a.shape[0]} input vectors, "
          f"{args.direction} read")
    for s in solvers:
        inf: list = []
        t0 = time.perf_counter()
        outs[s], parts[s] = layer.read(v, args.direction, solver=s, backend=args.backend,
                                       workers=args.workers, scheduler=args.scheduler,
                                       progress=not args.no_progress, infos=inf,
                                       return_partials=True)
        infos[s] = inf
        e = vmm_errors(outs[s], ideal)
        et = vmm_errors(outs[s], layer.ideal_vmm(v, args.direction))
        print(f"  {s:8s} {time.perf_counter() - t0:8.2f} s   VMM error vs ideal circuit: max "
              f"{e['max_rel']:.3e} rms {e['rms_rel']:.3e};  vs weight product: max "
              f"{et['max_rel']:.3e}")
    if len(solvers) == 2:
        rel = max(float(np.max(np.abs(a_ - b_) / np.maximum(np.abs(b_), 1e-300)))
                  for a_, b_ in zip(parts["ngspice"], parts["mna"]))
        print(f"  ngspice vs MNA: max relative difference per tile current {rel:.2e}")
    if args.out:
        recs = []
        for k, (tile, v_tile, d) in enumerate(layer.tasks(v, args.direction)):
            o = {s: parts[s][k] for s in solvers}
            o["ideal"] = ideal_parts[k]
            ng = infos.get("ngspice", [{}] * len(layer.tiles))[k]
            recs.append(TileResult(tile, d, v_tile, o, ng.get("netlist_sha256", ""),
                                   {"ngspice": {kk: ng.get(kk) for kk in
                                                ("backend", "klu", "options", "attempts")}},
                                   {s: infos[s][k]["wall_s"] for s in solvers}))
        save_results(args.out, recs, attrs={"weights": args.weights,
                                            "settings": layer.settings})
        print(f"results written to {args.out}")
    return 0


def cmd_sweep(args) -> int:
    from .sweep import error_sweep, plot_error_sweep

    card = _card(args)
    rng = np.random.default_rng(args.seed)
    W = load_matrix(args.weights) if args.weights else rng.normal(0, 1, (128, 128))
    a = rng.uniform(0, 1, (args.n_vectors, W.shape[0]))
    res = error_sweep(W, a, card=card, g_range=tuple(args.g_range) if args.g_range else None,
                      tile_sizes=[int(s) for s in _floats(args.sizes)],
                      r_wires=_floats(args.r_wires), solver=args.solver,
                      progress=not args.no_progress, r_driver=args.r_driver,
                      r_sense=args.r_sense, synapse=args.synapse, k=args.k)
    print("max VMM error / max |I_ideal|  (rows: tile size, columns: wire Ω/segment)")
    print("        " + " ".join(f"{r:>9g}" for r in res["r_wires"]))
    for s, row in zip(res["tile_sizes"], res["max_rel"]):
        print(f"{s:6d}  " + " ".join(f"{e:9.3e}" for e in row))
    plot_error_sweep(res, args.figure)
    print(f"figure written to {args.figure}")
    return 0


def cmd_update(args) -> int:
    from .update import default_pattern, plot_update, update_check

    card = _card(args)
    if card is None:
        raise ValueError("the update check needs a model card (dynamic cells)")
    x, d = default_pattern(args.size, args.size)
    res = update_check(card, x, d, r_wire=args.r_wire, r_driver=args.r_driver)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_update(res, out / "update.png")
    (out / "update.json").write_text(json.dumps(res.metrics, indent=2) + "\n")
    for k, v in res.metrics.items():
        print(f"  {k:24s} {v:.4g}")
    print(f"figure and metrics written to {out}")
    return 0


def cmd_netlist(args) -> int:
    from .netlist import tile_netlist
    from .tile import Tile

    card = _card(args)
    rng = np.random.default_rng(args.seed)
    par = dict(r_wire_row=args.r_wire,
               r_wire_col=args.r_wire if args.r_wire_col is None else args.r_wire_col,
               r_driver=args.r_driver, r_sense=args.r_sense)
    if card is None:
        tile = Tile.random(args.size, args.size, rng=rng, g_range=tuple(args.g_range), **par)
    else:
        tile = Tile.random(args.size, args.size, rng=rng, card=card, **par)
    v = rng.uniform(0, 0.2, (args.n_vectors, args.size))
    Path(args.out).write_text(tile_netlist(tile, v, args.direction))
    print(f"netlist written to {args.out} (run: ngspice -b {args.out})")
    return 0


def cmd_demo(args) -> int:
    from .main_job import demo

    card = _card(args)
    if card is None:
        raise ValueError("the demo needs a model card (not --g-range)")
    s = demo(card, args.out, progress=not args.no_progress)
    print(json.dumps(s, indent=2))
    return 0


def register(subparsers) -> None:
    """Add ``xbar`` and its subcommands to the top-level CLI."""
    p = subparsers.add_parser("xbar", help="build and solve crossbar tiles (ngspice / MNA)",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="xbar_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    s = sub.add_parser("solve", help="solve a layer's tiles, print the VMM error")
    _add_common(s)
    s.add_argument("--weights", required=True, help="weight matrix file (n_in x n_out)")
    s.add_argument("--inputs", help="activations file (n_vectors x n_driven), in [-1, 1]")
    s.add_argument("--n-vectors", type=int, default=8)
    s.add_argument("--tile", type=int, default=64, help="tile size (N x N)")
    s.add_argument("--direction", choices=("forward", "transposed"), default="forward")
    s.add_argument("--solver", choices=("ngspice", "mna", "both"), default="both")
    s.add_argument("--backend", choices=("batch", "shared"), default="batch")
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786)")
    s.add_argument("--adc-bits", type=int)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", help="HDF5 results file")
    s.set_defaults(func=cmd_solve)

    s = sub.add_parser("sweep", help="VMM error vs tile size and wire resistance (figure)")
    _add_common(s)
    s.add_argument("--weights")
    s.add_argument("--sizes", default="16,32,64,128")
    s.add_argument("--r-wires", default="0.5,1,2.5,5")
    s.add_argument("--n-vectors", type=int, default=4)
    s.add_argument("--solver", choices=("mna", "ngspice"), default="mna")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--figure", default="error_vs_tile.png")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("update", help="transient check of the parallel update")
    _add_common(s)
    s.add_argument("--size", type=int, default=8)
    s.add_argument("--out", default="xbar_update")
    s.set_defaults(func=cmd_update, r_driver=10.0)

    s = sub.add_parser("netlist", help="write the ngspice netlist of a random tile")
    _add_common(s)
    s.add_argument("--size", type=int, default=8)
    s.add_argument("--n-vectors", type=int, default=4)
    s.add_argument("--direction", choices=("forward", "transposed"), default="forward")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="tile.cir")
    s.set_defaults(func=cmd_netlist)

    s = sub.add_parser("demo", help="the main job's circuit step")
    _add_common(s)
    s.add_argument("--out", default="xbar_demo")
    s.set_defaults(func=cmd_demo)
