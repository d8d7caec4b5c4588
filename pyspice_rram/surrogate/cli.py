"""``pyspice-rram surrogate {data,fit,validate,info}`` and ``pyspice-rram check``."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..errors import UserInputError

DEFAULT_DATA_CONFIG = "configs/surrogate/data.toml"
#: ``check``: images of the cross-checks against ngspice and the sparse nodal solver (at
#: 128x128 tiles a 784-250-10 network took 90 s per image in ngspice for 2 images (the 64
#: netlists' start dominates), 11.8 s per image for 200, 1.4 s in the sparse solver, 2
#: workers at load 3-6; docs/circuit.md#many-input-vectors-the-cell-space-solver).
DEFAULT_NGSPICE_IMAGES = 2
DEFAULT_SPARSE_IMAGES = 20


def _named(path, load):
    """``load()``, with a ``ValueError`` that does not name ``path`` prefixed by it."""
    try:
        return load()
    except ValueError as exc:
        if path is None or str(path) in str(exc):
            raise
        raise UserInputError(f"{path}: {exc}") from None


def _surrogate(path: str | None):
    """The surrogate JSON at ``path`` (None: the shipped one); errors name the file."""
    from .model import TileSurrogate

    return _named(path, lambda: TileSurrogate.load(path))


def _card(path: str | None):
    from ..device.card import ModelCard

    return ModelCard.load(path) if path else ModelCard.reference()


def cmd_data(args: argparse.Namespace) -> int:
    from .dataset import DataSpec

    from ..circuit.safeio import (OutputLock, check_output, ngspice_errors_as_one_line,
                                  signals_unwind)

    spec = _named(args.config, lambda: DataSpec.load(args.config)) if args.config else DataSpec()
    if args.n_items is not None:
        spec.n_items = args.n_items
    out = Path(args.out)
    with OutputLock(out), signals_unwind(), ngspice_errors_as_one_line():
        new = False
        if check_output(out, force=args.force, resume=args.resume):
            if args.force and not args.resume:
                new = True       # replaced at the first commit of the new data set
            else:
                _check_data_file(out)
        try:
            return _data(args, spec, new)
        except KeyboardInterrupt as exc:
            from .dataset import summary

            n = summary(out)["items"] if out.exists() else 0
            print(f"pyspice-rram surrogate data: interrupted ({exc or 'SIGINT'}): {n} of "
                  f"{spec.n_items} tiles kept in {out}; continue with --resume",
                  file=sys.stderr)
            return 130


def _check_data_file(path: Path) -> None:
    from ..circuit.safeio import open_h5
    from .dataset import FORMAT

    with open_h5(path, what="surrogate data set") as h5:
        if h5.attrs.get("format") != FORMAT:
            raise UserInputError(f"{path}: not a surrogate data set (root attribute 'format' is "
                             f"{h5.attrs.get('format')!r}, expected {FORMAT!r}): cannot "
                             "--resume it")


def _data(args: argparse.Namespace, spec, new: bool = False) -> int:
    from .dataset import compact, generate, summary

    generate(args.out, spec, _card(args.card), workers=args.workers,
             progress=not args.no_progress, limit=args.limit, new=new)
    if args.compact:
        compact(args.out)
    print(json.dumps(summary(args.out), indent=1))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from .fit import fit_surrogate, format_report
    from .validate import evaluate_many, figures, format_summary, summarise

    from ..circuit.safeio import atomic_write_text, check_output

    check_output(args.out, force=args.force, resume=None)
    if args.report_dir:
        check_output(Path(args.report_dir) / "fit_report.json", force=args.force, resume=None,
                     option="--report-dir")
    for path in args.data:
        _check_data(path)
    terms = args.terms.split(",") if args.terms else None
    domain = None
    if args.domain:
        from .fit import load_domain

        domain = _named(args.domain, lambda: load_domain(args.domain))
    coupling = args.coupling
    if coupling != "auto":
        try:
            coupling = tuple(float(c) for c in args.coupling.split(","))
            if len(coupling) != 2:
                raise ValueError
        except ValueError:
            raise UserInputError(f"--coupling {args.coupling!r}: expected 'auto' or two "
                                 "numbers p,q (e.g. 0.7,0.3)") from None
    sur, report = fit_surrogate(args.data, ridge=args.ridge, terms=terms,
                                v_eff_frac=args.v_eff_frac, domain=domain, coupling=coupling)
    print(format_report(report))
    ev = evaluate_many(sur, args.data, "test", skip_empty=True)
    summ = summarise(ev)
    print(format_summary(summ))
    held = summ["in_domain"] or summ
    sur.provenance["heldout_rms_pct_fs"] = held["rms_pct"]
    sur.provenance["heldout_max_pct_fs"] = held["max_pct"]
    sur.provenance["heldout_reads"] = held["reads"]
    path = sur.save(args.out)
    print(f"surrogate written to {path}")
    if args.report_dir:
        rd = Path(args.report_dir)
        rd.mkdir(parents=True, exist_ok=True)
        atomic_write_text(rd / "fit_report.json",
                          json.dumps({"fit": report, "heldout": summ}, indent=1) + "\n")
        for p in figures(ev, rd):
            print(f"figure {p}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .validate import evaluate_many, figures, format_summary, summarise

    from ..circuit.safeio import atomic_write_text, check_output

    if args.out:
        check_output(Path(args.out) / "validation.json", force=args.force, resume=None)
    for path in args.data:
        _check_data(path)
    sur = _surrogate(args.surrogate)
    ev = evaluate_many(sur, args.data, None if args.split == "all" else args.split)
    summ = summarise(ev)
    print(format_summary(summ))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "validation.json", json.dumps(summ, indent=1) + "\n")
        for p in figures(ev, out):
            print(f"figure {p}")
    held = summ["in_domain"]
    if (args.max_rms is not None or args.max_error is not None) and held is None:
        print("FAIL: no read of the data set lies in the surrogate's validity domain")
        return 1
    if args.max_rms is not None and held["rms_pct"] > args.max_rms:
        print(f"FAIL: RMS error in the domain {held['rms_pct']:.4f} % of full scale > "
              f"{args.max_rms} %")
        return 1
    if args.max_error is not None and held["max_pct"] > args.max_error:
        print(f"FAIL: largest error in the domain {held['max_pct']:.4f} % of full scale > "
              f"{args.max_error} %")
        return 1
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    sur = _surrogate(args.surrogate)
    print(json.dumps({k: v for k, v in sur.to_dict().items() if k != "card"}, indent=1))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import format_check

    from ..circuit.safeio import check_output, ngspice_errors_as_one_line, signals_unwind

    if args.out:
        check_output(args.out, force=args.force, resume=None)
    _check_run(args.run)
    if args.surrogate:
        _surrogate(args.surrogate)
    from ..network.history import load_run
    from ..network.train import TrainConfig
    from .check import check_circuit

    for name in ("tile", "r_wire", "r_wire_col", "r_driver", "r_sense"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value >= (1 if name == "tile"
                                                                          else 0)):
            raise UserInputError(f"--{name.replace('_', '-')} {value}: must be a finite "
                                 f"number >= {1 if name == 'tile' else 0}")
    config = TrainConfig.from_dict(load_run(args.run, with_checkpoint=False)[0].config,
                                   where=str(args.run))
    args.circuit = check_circuit(config, None if args.tile is None else (args.tile, args.tile),
                                 args.r_wire, args.r_wire_col, args.r_driver, args.r_sense)
    for name in ("ngspice_images", "sparse_images"):
        if getattr(args, name) < 0:
            raise UserInputError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be "
                                 ">= 0")
    if args.solver == "ngspice" or args.ngspice_images > 0:
        from ..circuit.ngspice_run import MAX_NGSPICE_TILE, check_tile_size

        if (args.solver != "ngspice" and not args.force
                and max(args.circuit["tile"]) > MAX_NGSPICE_TILE):
            print(f"pyspice-rram check: tiles {args.circuit['tile'][0]}x"
                  f"{args.circuit['tile'][1]} are above the ngspice limit of "
                  f"{MAX_NGSPICE_TILE}: no ngspice cross-check (--force runs it)",
                  file=sys.stderr)
            args.ngspice_images = 0
        else:
            check_tile_size(*args.circuit["tile"], force=args.force)
    card = _card(args.card) if args.card else None
    try:
        with signals_unwind(), ngspice_errors_as_one_line():
            res = _run_check(args, card)
    except KeyboardInterrupt as exc:
        print(f"pyspice-rram check: interrupted ({exc or 'SIGINT'}): nothing written",
              file=sys.stderr)
        return 130
    print(format_check(res))
    return 0


def _run_check(args: argparse.Namespace, card):
    from .check import run_check

    return run_check(args.run, args.n_images, surrogate=args.surrogate, card=card,
                     solver=args.solver, **args.circuit, mnist_path=args.mnist,
                     workers=args.workers, progress=not args.no_progress, out=args.out,
                     ngspice_images=args.ngspice_images, sparse_images=args.sparse_images)


def _check_data(path: str) -> None:
    """A readable surrogate data set (one-line errors naming the file and what is missing)."""
    from ..circuit.safeio import open_h5
    from .dataset import FORMAT

    with open_h5(path, what=f"surrogate data set ({FORMAT}, written by `surrogate data`)") as h5:
        fmt = h5.attrs.get("format")
        if fmt != FORMAT:
            raise UserInputError(f"{path}: not a surrogate data set (root attribute 'format' is "
                             f"{fmt!r}, expected {FORMAT!r})")
        for key in ("spec", "card"):
            if key not in h5.attrs:
                raise UserInputError(f"{path}: surrogate data set without the root attribute "
                                 f"{key!r} (truncated or foreign file)")
        if "items" not in h5 or not len(h5["items"]):
            raise UserInputError(f"{path}: surrogate data set without the group 'items' (no "
                             "solved tiles yet: run `surrogate data`)")


def _check_run(path: str) -> None:
    """A readable training run file with a checkpoint (one-line errors)."""
    from ..circuit.safeio import open_h5
    from ..network.history import FORMAT

    with open_h5(path, what="training run file (HDF5 of `pyspice-rram train`)") as f:
        if f.attrs.get("format") != FORMAT:
            raise UserInputError(f"{path}: not a pyspice-rram training run file (root attribute "
                             f"'format' is {f.attrs.get('format')!r}, expected {FORMAT!r})")
        missing = [k for k in ("config", "dataset") if k not in f.attrs]
        missing += [k for k in ("epochs", "track", "checkpoint") if k not in f]
        if missing:
            raise UserInputError(f"{path}: training run file without {', '.join(missing)} "
                             "(truncated, or a run saved without a checkpoint)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``surrogate`` (data / fit / validate / info) and ``check`` to the CLI."""
    from ..circuit.cli import HelpFormatter, add_force, add_output, add_quiet

    p = subparsers.add_parser("surrogate", help="data for / fit / validate the tile surrogate",
                              formatter_class=HelpFormatter,
                              description="Tile surrogate: ngspice training data, least-squares "
                                          "fit of the physics-informed model, validation on "
                                          "held-out tiles.")
    sub = p.add_subparsers(dest="surrogate_command", metavar="STEP")

    def parser(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)

    d = parser("data", "generate (or extend) the ngspice data set (resumable)")
    d.add_argument("--config", default=DEFAULT_DATA_CONFIG if Path(DEFAULT_DATA_CONFIG).is_file()
                   else None, help="data spec TOML/JSON")
    add_output(d, "HDF5 data set (an existing one is extended only with --resume)",
               required=True)
    d.add_argument("--card", help="model card JSON (default: reference card)")
    d.add_argument("--n-items", type=int, help="override the number of tiles")
    d.add_argument("--limit", type=int, help="solve at most this many new tiles now")
    d.add_argument("--workers", type=int, default=2, help="ngspice worker processes")
    d.add_argument("--compact", action="store_true", help="store states as grid indices")
    add_force(d, "start an existing data set again (deletes it)")
    d.add_argument("--resume", action="store_true",
                   help="extend an existing data set (items already solved are skipped)")
    add_quiet(d)
    d.set_defaults(func=cmd_data)

    f = parser("fit", "fit the surrogate to a data set and validate on its held-out tiles")
    f.add_argument("data", nargs="+", help="HDF5 data set(s) of `surrogate data` (several: "
                   "fitted together)")
    add_output(f, "surrogate JSON to write", required=True)
    f.add_argument("--terms", help="comma-separated correction terms (default all)")
    f.add_argument("--ridge", type=float, default=1e-9, help="ridge regularisation")
    f.add_argument("--v-eff-frac", type=float, default=0.7,
                   help="chord voltage of the ladder shunts / v_max")
    f.add_argument("--coupling", default="auto",
                   help="coupling exponents p,q of the driven / sensed line ladders (0,1: the "
                        "first surrogate's one mean-field step; auto: the best of p = "
                        "0.5 ... 1, q = 1 - p on the fit split)")
    f.add_argument("--domain", help="TOML of the stated validity domain (size, r_wire_max, "
                   "r_driver_max, r_sense_max, ir_drop_max, periphery_max, card_rtol); "
                   "default: the data spec's ranges")
    f.add_argument("--report-dir", help="write fit_report.json and figures here")
    add_force(f, "overwrite an existing surrogate JSON")
    f.set_defaults(func=cmd_fit)

    v = parser("validate", "errors of a surrogate on a data set split")
    v.add_argument("data", nargs="+", help="HDF5 data set(s) of `surrogate data` (several: "
                   "one table over all)")
    v.add_argument("--surrogate", help="surrogate JSON (default: shipped)")
    v.add_argument("--split", default="test", choices=["test", "fit", "all"],
                   help="data set split (a validation set of its own: all its items are "
                        "held out, split 'test')")
    add_output(v, "directory for validation.json and figures")
    add_force(v, "overwrite validation.json and the figures of an earlier validation")
    v.add_argument("--max-rms", type=float,
                   help="exit 1 if the RMS error (%% FS) of the reads in the domain is above")
    v.add_argument("--max-error", type=float,
                   help="exit 1 if the largest error (%% FS) of the reads in the domain is "
                        "above")
    v.set_defaults(func=cmd_validate)

    i = parser("info", "print a surrogate's coefficients, validity, provenance")
    i.add_argument("--surrogate", help="surrogate JSON (default: shipped)")
    i.set_defaults(func=cmd_info)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    c = subparsers.add_parser("check", formatter_class=HelpFormatter,
                              help="inference through ideal VMM, surrogate and ngspice on "
                                   "every tile",
                              description="Inference of a trained run through ideal VMM, "
                                          "the surrogate and ngspice (or MNA) on every tile.")
    c.add_argument("run", help="HDF5 training run with a checkpoint")
    c.add_argument("--n-images", type=int, default=200, help="test images")
    c.add_argument("--solver", default="mna", choices=["mna", "mna-sparse", "ngspice"],
                   help="circuit solver of the circuit path: mna = the cell-space Newton-CG "
                        "solver (the whole MNIST test set in minutes), mna-sparse = the "
                        "sparse nodal solver, ngspice")
    c.add_argument("--ngspice-images", type=int, default=DEFAULT_NGSPICE_IMAGES,
                   help="cross-check the circuit path against ngspice on this many of the "
                        "first images (0: not); at 128x128 with 2 workers ~45 s per image for a "
                        "few images, ~12 s per image for 200")
    c.add_argument("--sparse-images", type=int, default=DEFAULT_SPARSE_IMAGES,
                   help="cross-check the circuit path against the sparse nodal solver on this "
                        "many of the first images (0: not)")
    c.add_argument("--surrogate", help="surrogate JSON (default: shipped)")
    c.add_argument("--card", help="model card JSON (default: the surrogate's)")
    c.add_argument("--tile", type=int,
                   help="tile size (cells per line; default: the run's [circuit], 64 for runs "
                        "without one)")
    c.add_argument("--r-wire", type=float,
                   help="Ω per wire segment, rows (and columns unless --r-wire-col; default: "
                        "the run's [circuit])")
    c.add_argument("--r-wire-col", type=float,
                   help="Ω per column wire segment (default: --r-wire, else the run's)")
    c.add_argument("--r-driver", type=float,
                   help="driver resistance Ω (default: the run's [circuit])")
    c.add_argument("--r-sense", type=float,
                   help="sense input resistance Ω (default: the run's [circuit])")
    c.add_argument("--mnist", help="MNIST directory (default: config / environment)")
    c.add_argument("--workers", type=int, default=2, help="local worker processes")
    add_output(c, "JSON result file")
    add_force(c, "overwrite the JSON result file; run tiles above the ngspice limit")
    add_quiet(c)
    c.set_defaults(func=cmd_check)
