"""``pyspice-rram xbar``: build and solve crossbar tiles for a card, weights and inputs.

Subcommands::

    xbar solve   --card CARD.json --weights W.npy [--inputs A.npy] [--tile 64] [--r-wire 1]
                 [--solver ngspice|mna|both] [--direction forward|transposed]
                 [--workers N] [--scheduler tcp://host:8786] [-o results.h5]
                 [--force | --resume]
    xbar sweep   --card CARD.json [--weights W.npy] --tile 16,32,64,128 --r-wires 0.5,1,2.5,5
                 -o error.png
    xbar update  --card CARD.json [--tile N] [-o DIR]  parallel-update transient vs IR-drop reference
    xbar netlist --card CARD.json --tile 8 -o tile.cir write one tile's netlist
    xbar demo    --card CARD.json -o DIR               the main job's circuit step
    xbar energy  --card CARD.json --tile 64 [--r-wire 1] -o energy.json
                 energy and time of a read and an update cycle (ngspice)

Options: -o/--output (alias --out), -q/--quiet (alias --no-progress), --tile (aliases
--size, --sizes), --force (overwrite an existing output; ngspice tiles above 512x512),
--resume (continue an interrupted solve: tiles are stored as they finish).

Weights: ``.npy``, ``.npz`` (``file.npz:key``), ``.csv``/``.txt``, or HDF5
``file.h5:dataset``; shape (n_in, n_out). Inputs are activations in [-1, 1] of shape
(n_vectors, n_in) (or (n_vectors, n_out) for transposed reads), encoded at the card's read
voltage; default: random in [0, 1]. Without ``--card`` the cells are linear with
``--g-range``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..cli import DefaultsHelpFormatter
from ..errors import UserInputError


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
                raise UserInputError(f"{p} holds {names}: name one as {p}:<key>")
            return z[key or names[0]]
    if suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(p, "r") as f:
            if not key:
                names = [k for k in f if isinstance(f[k], h5py.Dataset)]
                if len(names) != 1:
                    raise UserInputError(f"{p}: name the dataset as {p}:<dataset>")
                key = names[0]
            if key not in f:
                raise UserInputError(f"{p} has no dataset {key!r}")
            return f[key][()]
    if suffix in (".csv", ".txt", ".tsv"):
        return np.loadtxt(p, delimiter="," if suffix == ".csv" else None, ndmin=2)
    raise UserInputError(f"unsupported matrix file type {suffix!r} (.npy, .npz, .csv, .h5)")


def _card(args):
    from ..device.card import ModelCard

    if args.card:
        return ModelCard.load(args.card)
    if getattr(args, "g_range", None):
        return None
    return ModelCard.reference()


def _floats(text: str, option: str = "") -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserInputError(f"{option or 'list'} {text!r}: expected comma-separated numbers"
                         ) from None


class HelpFormatter(DefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` shows every option's default and keeps the description's layout (unset
    optional values and off switches show no ``(default: None/False)``)."""


def add_output(p: argparse.ArgumentParser, help: str, **kw) -> None:
    """``-o/--output`` (alias ``--out``), stored as ``args.out``."""
    p.add_argument("-o", "--output", "--out", dest="out", help=help, **kw)


def add_quiet(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` (alias ``--no-progress``), stored as ``args.no_progress``."""
    p.add_argument("-q", "--quiet", "--no-progress", dest="no_progress", action="store_true",
                   help="no progress bars")


def add_force(p: argparse.ArgumentParser, what: str = "overwrite an existing output") -> None:
    """``--force``: overwrite an existing output (never done without it)."""
    p.add_argument("--force", action="store_true", help=what)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--card", help="model card JSON (default: the reference card)")
    p.add_argument("--g-range", type=float, nargs=2, metavar=("GMIN", "GMAX"),
                   help="linear cells with this conductance range (S) instead of a card")
    p.add_argument("--r-wire", type=float, default=1.0, help="row wire Ω per segment")
    p.add_argument("--r-wire-col", type=float, help="column wire Ω per segment (default r-wire)")
    p.add_argument("--r-driver", type=float, default=0.0, help="driver resistance Ω")
    p.add_argument("--r-sense", type=float, default=0.0, help="sense input resistance Ω")
    p.add_argument("--synapse", choices=("pair", "hybrid"), default="pair",
                   help="differential pair or hybrid (k-weighted) synapse")
    p.add_argument("--k", type=float, default=10.0, help="hybrid gain k")
    p.add_argument("--n-states", type=int, help="programmable levels per device")
    add_quiet(p)


def _map(args, W, tile):
    from .mapping import map_layer

    card = _card(args)
    return map_layer(W, card=card, g_range=tuple(args.g_range) if args.g_range else None,
                     synapse=args.synapse, k=args.k, n_states=args.n_states, tile_size=tile,
                     r_wire_row=args.r_wire,
                     r_wire_col=args.r_wire if args.r_wire_col is None else args.r_wire_col,
                     r_driver=args.r_driver, r_sense=args.r_sense,
                     adc_bits=getattr(args, "adc_bits", None))


#: Test hook: called with the number of stored tiles after each tile is stored.
_AFTER_TILE = None


def _inputs_sha256(v: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(v, dtype=float).tobytes()).hexdigest()


def _resume_tiles(path: Path, meta: dict, tasks: list, solvers: list[str]) -> list[dict]:
    """Outputs of the tiles already stored in ``path`` (checked against this run). Tiles
    that do not belong (a file of an older version cut short) are dropped through an atomic
    rewrite; the file is never modified in place."""
    from .safeio import atomic_h5, open_h5
    from .store import FORMAT, _json

    done: list[dict] = []
    drop: list[str] = []
    with open_h5(path, "r", what="xbar solve results file") as f:
        if f.attrs.get("format") != FORMAT:
            raise UserInputError(f"{path} is not a {FORMAT} file: cannot --resume it")
        user = json.loads(f.attrs.get("user", "{}"))
        for key in ("settings", "inputs_sha256", "solvers", "direction", "n_tiles"):
            mine = json.loads(_json(meta[key]))
            if user.get(key) != mine:
                raise UserInputError(f"{path} was written by another solve ({key} "
                                 f"{user.get(key)!r} there, {mine!r} now): cannot --resume; "
                                 "give --force to start it again")
        tiles = f.get("tiles", {})
        names = sorted(tiles)
        for k, name in enumerate(names):
            g = tiles[name]
            if k >= len(tasks) or "outputs" not in g or not all(
                    s in g["outputs"] for s in solvers + ["ideal"]):
                drop = names[k:]           # a tile cut short: it and the rest are solved again
                break
            if not np.array_equal(g["inputs"][()], tasks[k][1]):
                raise UserInputError(f"{path}: tile {name} has other inputs than this solve")
            done.append({s: g["outputs"][s][()] for s in g["outputs"]} |
                        {"_timings": json.loads(g.attrs["timings"])})
    if drop:
        with atomic_h5(path, append=True) as f:
            for name in drop:
                del f["tiles"][name]
    return done


def cmd_solve(args) -> int:
    from .mapping import encode_inputs
    from .safeio import OutputLock, check_output, ngspice_errors_as_one_line, signals_unwind

    W = load_matrix(args.weights)
    layer = _map(args, W, args.tile)
    n = layer.n_in if args.direction == "forward" else layer.n_out
    if args.inputs:
        a = load_matrix(args.inputs)
    else:
        a = np.random.default_rng(args.seed).uniform(0, 1, (args.n_vectors, n))
    a = np.atleast_2d(a)
    if a.shape[1] != n:
        raise UserInputError(f"inputs have {a.shape[1]} columns, the {args.direction} read of a "
                         f"{layer.n_in}x{layer.n_out} layer needs {n}")
    v = encode_inputs(a, layer.v_read, layer.card)
    solvers = ["ngspice", "mna"] if args.solver == "both" else [args.solver]
    if "ngspice" in solvers:
        from .ngspice_run import check_tile_size

        check_tile_size(*layer.tile_shape, a.shape[0], force=args.force)
    if args.resume and not args.out:
        raise UserInputError("--resume needs -o/--output (the results file to continue)")
    if not args.out:
        with signals_unwind(), ngspice_errors_as_one_line():
            return _solve(args, layer, a, v, solvers, None)
    out = Path(args.out)
    with OutputLock(out):
        # with --force the earlier file stays until the new one replaces it (atomically)
        check_output(out, force=args.force, resume=args.resume)
        with signals_unwind(), ngspice_errors_as_one_line():
            return _solve(args, layer, a, v, solvers, out)


def _solve(args, layer, a, v, solvers, out: Path | None) -> int:
    from tqdm.auto import tqdm

    from .parallel import solve_tiles
    from .safeio import H5Checkpoints, raise_if_interrupted
    from .store import TileResult, write_results
    from .sweep import vmm_errors

    tasks = layer.tasks(v, args.direction)
    meta = {"weights": args.weights, "settings": layer.settings,
            "inputs_sha256": _inputs_sha256(v), "solvers": solvers,
            "direction": args.direction, "n_tiles": len(tasks)}
    parts: dict[str, list] = {s: [] for s in solvers + ["ideal"]}
    wall = {s: 0.0 for s in solvers}
    if out is not None and out.exists() and args.resume:
        for d in _resume_tiles(out, meta, tasks, solvers):
            for s in parts:
                parts[s].append(d[s])
            for s in solvers:
                wall[s] += float(d["_timings"].get(s, 0.0))
        print(f"resuming {out}: {len(parts['ideal'])} of {len(tasks)} tiles already stored")
    done = {"complete": False}

    def write(f, recs):   # one commit: tiles appended to a copy (or a new file), renamed
        write_results(f, recs, attrs=meta, where=out)
        f.attrs["complete"] = done["complete"]

    # a fresh solve (also --force over an earlier file) writes a new file at its first
    # commit: until then an earlier file stays as it was
    store = (H5Checkpoints(out, write, new=not (args.resume and out.exists()))
             if out is not None else None)
    print(f"layer {layer.n_in}x{layer.n_out}, {args.synapse} synapse, {len(layer.tiles)} tiles "
          f"of {layer.tile_shape[0]}x{layer.tile_shape[1]}, {a.shape[0]} input vectors, "
          f"{args.direction} read")
    workers = args.workers or 1
    step = 1 if (workers == 1 and not args.scheduler) else 4 * max(workers, 2)
    start = len(parts["ideal"])
    bar = tqdm(total=len(tasks), initial=start, desc="tiles", unit="tile",
               disable=args.no_progress, leave=False)
    try:
        for k0 in range(start, len(tasks), step):
            chunk = tasks[k0:k0 + step]
            infos: dict[str, list] = {}
            for s in solvers + ["ideal"]:
                infos[s] = []
                res = solve_tiles(chunk, solver=s, backend=args.backend, workers=workers,
                                  scheduler=args.scheduler, infos=infos[s])
                parts[s].extend(res)
            for s in solvers:
                wall[s] += sum(i["wall_s"] for i in infos[s])
            if out is not None:
                recs = []
                for j, (tile, v_tile, d) in enumerate(chunk):
                    ng = infos["ngspice"][j] if "ngspice" in infos else {}
                    o = {s: parts[s][k0 + j] for s in solvers + ["ideal"]}
                    recs.append(TileResult(
                        tile, d, v_tile, o, ng.get("netlist_sha256", ""),
                        {"ngspice": {kk: ng.get(kk) for kk in
                                     ("backend", "klu", "options", "attempts")}},
                        {s: infos[s][j]["wall_s"] for s in solvers}))
                store.add(*recs)
            bar.update(len(chunk))
            if _AFTER_TILE is not None:
                _AFTER_TILE(k0 + len(chunk))
            raise_if_interrupted()       # a Ctrl-C swallowed by a library (h5py)
    except KeyboardInterrupt as exc:
        bar.close()
        kept = len(parts["ideal"])
        if store is not None:
            kept = start + store.commit()    # the tiles solved so far, stored atomically
        what = f"{kept} of {len(tasks)} tiles kept in {out}; continue with --resume" \
            if out is not None else "nothing stored (no -o/--output)"
        print(f"pyspice-rram xbar solve: interrupted ({exc or 'SIGINT'}): {what}",
              file=sys.stderr)
        return 130
    except Exception:                    # a failed tile: keep the tiles solved before it
        bar.close()
        if store is not None:
            store.commit()
        raise
    bar.close()
    ideal = layer.combine(parts["ideal"], args.direction)
    for s in solvers:
        o = layer.combine(parts[s], args.direction)
        e = vmm_errors(o, ideal)
        et = vmm_errors(o, layer.ideal_vmm(v, args.direction))
        print(f"  {s:8s} {wall[s]:8.2f} s   VMM error vs ideal circuit: max "
              f"{e['max_rel']:.3e} rms {e['rms_rel']:.3e};  vs weight product: max "
              f"{et['max_rel']:.3e}")
    if len(solvers) == 2:
        rel = max(float(np.max(np.abs(a_ - b_) / np.maximum(np.abs(b_), 1e-300)))
                  for a_, b_ in zip(parts["ngspice"], parts["mna"]))
        print(f"  ngspice vs MNA: max relative difference per tile current {rel:.2e}")
    if store is not None:
        done["complete"] = True
        store.commit(always=True)
        print(f"results written to {out}")
    return 0


def cmd_sweep(args) -> int:
    from .sweep import error_sweep, plot_error_sweep

    from .safeio import check_output

    card = _card(args)
    rng = np.random.default_rng(args.seed)
    W = load_matrix(args.weights) if args.weights else rng.normal(0, 1, (128, 128))
    sizes = [int(s) for s in _floats(args.sizes, '--tile')]
    check_output(args.figure, force=args.force, resume=None, option="--figure")
    if args.solver == "ngspice":
        from .ngspice_run import check_tile_size

        for size in sizes:
            check_tile_size(min(size, W.shape[0]), min(size, W.shape[1]), args.n_vectors,
                            force=args.force)
    a = rng.uniform(0, 1, (args.n_vectors, W.shape[0]))
    res = error_sweep(W, a, card=card, g_range=tuple(args.g_range) if args.g_range else None,
                      tile_sizes=sizes,
                      r_wires=_floats(args.r_wires, '--r-wires'), solver=args.solver,
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
        raise UserInputError("the update check needs a model card (dynamic cells)")
    from .safeio import atomic_write_text, check_output

    out = Path(args.out)
    check_output(out / "update.json", force=args.force, resume=None)
    x, d = default_pattern(args.size, args.size)
    res = update_check(card, x, d, r_wire=args.r_wire, r_driver=args.r_driver,
                       n_slots=args.n_slots, cell=args.cell, reference=not args.no_reference)
    out.mkdir(parents=True, exist_ok=True)
    plot_update(res, out / "update.png")
    atomic_write_text(out / "update.json", json.dumps(
        {**res.metrics, "settings": res.settings, "timings": res.timings,
         "reference_stats": res.reference_stats}, indent=2) + "\n")
    m = res.metrics
    print(f"parallel update {args.size}x{args.size}: r_wire {args.r_wire:g} ohm/segment, "
          f"r_driver {args.r_driver:g} ohm, {args.n_slots} slots, cell {res.settings['cell']}")
    print(f"  check {res.timings['check_wall_s']:.1f} s wall (ngspice and the references run "
          "side by side)")
    print(f"  ngspice transient {m['ngspice_s']:.1f} s; one full pulse moves x by "
          f"{m['dx_pulse']:.4g}; largest |dx| {m['max_dx']:.4g}")
    if "ngspice_vs_irdrop_max_dx" in m:
        print(f"  ngspice vs IR-drop reference ({m['reference_s']:.1f} s): max |dx error| "
              f"{m['ngspice_vs_irdrop_max_dx']:.3g} ({m['ngspice_vs_irdrop_max_pulses']:.3g} "
              f"pulses), RMS {m['ngspice_vs_irdrop_rms_dx']:.3g} "
              f"({m['ngspice_vs_irdrop_rms_pulses']:.3g} pulses)")
    print(f"  ngspice vs NumPy without IR drop: max |dx error| {m['ngspice_vs_numpy_max_dx']:.3g}")
    ref = "" if "half_row_max_dx_irdrop" not in m else (
        f" (reference {m['half_row_max_dx_irdrop']:.3g} / {m['half_col_max_dx_irdrop']:.3g})")
    print(f"  half-select disturb max |dx|, row only / column only: {m['half_row_max_dx']:.3g}"
          f" / {m['half_col_max_dx']:.3g}{ref}")
    print(f"  outer-product fit: RMS error {m['rms_error_rel']:.3g} of max |dG|, corr "
          f"{m['corr']:.4f}, sign agreement {m['sign_agreement']:.3f}")
    print(f"figure and metrics written to {out}")
    return 0


def cmd_netlist(args) -> int:
    from .netlist import tile_netlist
    from .tile import Tile

    from .safeio import atomic_write_text, check_output

    check_output(args.out, force=args.force, resume=None)
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
    atomic_write_text(args.out, tile_netlist(tile, v, args.direction))
    print(f"netlist written to {args.out} (run: ngspice -b {args.out})")
    return 0


#: What ``xbar demo`` writes into its output directory.
DEMO_OUTPUTS = ("results.h5", "summary.json", "error_vs_tile.png", "update.png",
                "tile_topology.png")


def cmd_demo(args) -> int:
    from ..paper.crossbar_step import demo

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"-o/--output {out} is a file; give a directory")
    found = [n for n in DEMO_OUTPUTS if (out / n).exists()]
    if found and not args.force:
        raise UserInputError(f"-o/--output {out} already holds a demo's results "
                             f"({', '.join(found)}); not overwritten",
                             hint="give another -o/--output, or --force to overwrite them")
    card = _card(args)
    if card is None:
        raise UserInputError("the demo needs a model card (not --g-range)")
    s = demo(card, args.out, progress=not args.no_progress)
    print(json.dumps(s, indent=2))
    return 0



def _finite(value: float | None, option: str, positive: bool = False) -> None:
    """Refuse a NaN, infinite or negative (``positive``: non-positive) option value."""
    import math

    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise UserInputError(f"{option} {value!r}: must be finite and "
                             f"{'> 0' if positive else '>= 0'}")


def cmd_energy(args) -> int:
    from .energy import PeripheryCosts, event_costs
    from .ngspice_run import check_tile_size
    from .safeio import check_output, ngspice_errors_as_one_line, signals_unwind

    for value, option, positive in (
            (args.r_wire, "--r-wire", False), (args.r_wire_col, "--r-wire-col", False),
            (args.r_driver, "--r-driver", False), (args.r_sense, "--r-sense", False),
            (args.v_read, "--v-read", True), (args.t_read, "--t-read", True),
            (args.t_edge, "--t-edge", False), (args.x, "--x", False),
            (args.activity, "--activity", False)):
        _finite(value, option, positive)
    out = Path(args.out)
    check_output(out, force=args.force, resume=None)
    rows = args.size
    cols = args.tile_cols or rows
    check_tile_size(rows, cols, 1, force=args.force)
    from ..device.card import ModelCard

    card = ModelCard.load(args.card) if args.card else ModelCard.reference()
    periphery = None
    if args.periphery:
        ppath = Path(args.periphery)
        try:
            data = json.loads(ppath.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"--periphery {ppath}: cannot read it ({exc})") from None
        try:
            periphery = PeripheryCosts.from_dict(data.get("periphery", data))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--periphery {ppath}: {exc}") from None
    with signals_unwind(), ngspice_errors_as_one_line():
        costs = event_costs(card, rows, cols, r_wire_row=args.r_wire,
                            r_wire_col=args.r_wire_col, r_driver=args.r_driver,
                            r_sense=args.r_sense, v_read=args.v_read, t_read=args.t_read,
                            t_edge=args.t_edge, x=args.x, activity=args.activity,
                            n_slots=args.n_slots, update=args.update, seed=args.seed,
                            delta_levels=args.delta_levels, update_cells=args.update_cells,
                            periphery=periphery, solver=args.solver)
    costs.settings["card_file"] = args.card or "reference"
    costs.settings["periphery_file"] = args.periphery
    print(f"tile {rows}x{cols}, card '{card.name}', {args.r_wire} Ω/segment, "
          f"r_driver {args.r_driver} Ω, r_sense {args.r_sense} Ω")
    print(costs.table())
    costs.save(out)
    print(f"event costs written to {out}")
    return 0

def register(subparsers) -> None:
    """Add ``xbar`` and its subcommands to the top-level CLI."""
    p = subparsers.add_parser("xbar", help="build and solve crossbar tiles (ngspice / MNA)",
                              description=__doc__, formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="xbar_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    def parser(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)

    s = parser("solve", "solve a layer's tiles, print the VMM error")
    _add_common(s)
    s.add_argument("--weights", required=True, help="weight matrix file (n_in x n_out)")
    s.add_argument("--inputs", help="activations file (n_vectors x n_driven), in [-1, 1]")
    s.add_argument("--n-vectors", type=int, default=8,
                   help="random input vectors (without --inputs)")
    s.add_argument("--tile", type=int, default=64,
                   help="tile size (N x N); ngspice refuses N > %d without --force"
                   % _max_tile())
    s.add_argument("--direction", choices=("forward", "transposed"), default="forward",
                   help="read direction")
    s.add_argument("--solver", choices=("ngspice", "mna", "both"), default="both",
                   help="circuit solver(s)")
    s.add_argument("--backend", choices=("batch", "shared"), default="batch",
                   help="ngspice backend: ngspice -b subprocess or the shared library")
    s.add_argument("--workers", type=int, default=1, help="local worker processes")
    s.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786)")
    s.add_argument("--adc-bits", type=int, help="ADC resolution of the periphery (none: exact)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    add_output(s, "HDF5 results file (each tile stored as it finishes; locked while written)")
    add_force(s, "overwrite an existing results file; run tiles above the ngspice limit")
    s.add_argument("--resume", action="store_true",
                   help="continue an interrupted solve into the same -o/--output file")
    s.set_defaults(func=cmd_solve)

    s = parser("sweep", "VMM error vs tile size and wire resistance (figure)")
    _add_common(s)
    s.add_argument("--weights", help="weight matrix file (default: random 128x128)")
    s.add_argument("--tile", "--sizes", "--size", dest="sizes", default="16,32,64,128",
                   help="comma-separated tile sizes")
    s.add_argument("--r-wires", default="0.5,1,2.5,5", help="comma-separated wire Ω/segment")
    s.add_argument("--n-vectors", type=int, default=4, help="random input vectors")
    s.add_argument("--solver", choices=("mna", "ngspice"), default="mna", help="circuit solver")
    s.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs")
    s.add_argument("--figure", "-o", "--output", "--out", dest="figure",
                   default="error_vs_tile.png", help="figure file")
    add_force(s, "overwrite the figure; run tiles above the ngspice limit")
    s.set_defaults(func=cmd_sweep)

    s = parser("update", "transient check of the parallel update")
    _add_common(s)
    s.add_argument("--tile", "--size", dest="size", type=int, default=8,
                   help="tile size (N x N)")
    s.add_argument("--n-slots", type=int, default=10, help="update slots per phase")
    s.add_argument("--cell", choices=("auto", "osdi", "subckt"), default="auto",
                   help="ngspice cell: compiled Verilog-A (OSDI) or B-source subcircuit")
    s.add_argument("--no-reference", action="store_true",
                   help="skip the IR-drop reference (nodal analysis + exact advance)")
    add_output(s, "output directory (update.png, update.json)", default="xbar_update")
    add_force(s)
    s.set_defaults(func=cmd_update, r_driver=10.0)

    s = parser("netlist", "write the ngspice netlist of a random tile")
    _add_common(s)
    s.add_argument("--tile", "--size", dest="size", type=int, default=8,
                   help="tile size (N x N)")
    s.add_argument("--n-vectors", type=int, default=4, help="input vectors of the DC sweep")
    s.add_argument("--direction", choices=("forward", "transposed"), default="forward",
                   help="read direction")
    s.add_argument("--seed", type=int, default=0, help="seed of the tile and inputs")
    add_output(s, "netlist file", default="tile.cir")
    add_force(s)
    s.set_defaults(func=cmd_netlist)

    s = parser("demo", "the main job's circuit step")
    _add_common(s)
    add_output(s, "output directory", default="xbar_demo")
    add_force(s, "overwrite the results of an earlier demo in -o/--output")
    s.set_defaults(func=cmd_demo)

    s = parser("energy", "energy and time per event of a tile: forward and transposed read, "
                         "parallel update cycle (ngspice transients), with periphery costs")
    s.add_argument("--card", help="model card JSON (default: the reference card)")
    s.add_argument("--tile", "--size", dest="size", type=int, default=64,
                   help="tile rows (N x N unless --tile-cols)")
    s.add_argument("--tile-cols", type=int, help="tile columns (default: --tile)")
    s.add_argument("--r-wire", type=float, default=1.0, help="row wire Ω per segment")
    s.add_argument("--r-wire-col", type=float, help="column wire Ω per segment (default r-wire)")
    s.add_argument("--r-driver", type=float, default=10.0,
                   help="driver output resistance Ω (reads and update pulses)")
    s.add_argument("--r-sense", type=float, default=0.0, help="sense input resistance Ω")
    s.add_argument("--v-read", type=float, help="read amplitude V (default: the card's v_read)")
    s.add_argument("--t-read", type=float, default=1e-6, help="read pulse plateau s")
    s.add_argument("--t-edge", type=float, default=10e-9,
                   help="edge time s of the read and update pulses")
    s.add_argument("--x", type=float, default=0.5, help="cell state in [0, 1]")
    s.add_argument("--activity", type=float, default=1.0,
                   help="input activation in [0, 1] of every driven line (read at "
                        "activity x v_read)")
    s.add_argument("--n-slots", type=int, default=10, help="update slots per phase")
    s.add_argument("--update", choices=("random", "full"), default="random",
                   help="update pattern: random x and quantised delta, or every cell at "
                        "full scale")
    s.add_argument("--delta-levels", type=int, default=4,
                   help="magnitudes of delta in the random pattern")
    s.add_argument("--update-cells", choices=("static", "dynamic"), default="static",
                   help="cells hold their state during the update (fast) or integrate it")
    s.add_argument("--seed", type=int, default=0, help="seed of the random update pattern")
    s.add_argument("--solver", choices=("ngspice", "mna"), default="ngspice",
                   help="solver of the reads (the update cycle always runs in ngspice)")
    s.add_argument("--periphery", help="JSON of PeripheryCosts fields (default: the cited "
                                       "figures of pyspice_rram.circuit.energy)")
    add_output(s, "event costs JSON", default="energy.json")
    add_force(s, "overwrite the output; run tiles above the ngspice limit")
    add_quiet(s)
    s.set_defaults(func=cmd_energy)


def _max_tile() -> int:
    from .ngspice_run import MAX_NGSPICE_TILE

    return MAX_NGSPICE_TILE
