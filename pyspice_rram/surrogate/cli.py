"""``pyspice-rram surrogate {data,fit,validate,info}`` and ``pyspice-rram check``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_DATA_CONFIG = "configs/surrogate/data.toml"


def _card(path: str | None):
    from ..device.card import ModelCard

    return ModelCard.load(path) if path else ModelCard.reference()


def cmd_data(args: argparse.Namespace) -> int:
    from .dataset import DataSpec, compact, generate, summary

    spec = DataSpec.load(args.config) if args.config else DataSpec()
    if args.n_items is not None:
        spec.n_items = args.n_items
    generate(args.out, spec, _card(args.card), workers=args.workers,
             progress=not args.no_progress, limit=args.limit)
    if args.compact:
        compact(args.out)
    print(json.dumps(summary(args.out), indent=1))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from .fit import fit_surrogate, format_report
    from .validate import evaluate, figures, format_summary, summarise

    terms = args.terms.split(",") if args.terms else None
    sur, report = fit_surrogate(args.data, ridge=args.ridge, terms=terms,
                                v_eff_frac=args.v_eff_frac)
    print(format_report(report))
    ev = evaluate(sur, args.data, "test")
    summ = summarise(ev)
    print(format_summary(summ))
    sur.provenance["heldout_rms_pct_fs"] = summ["rms_pct"]
    sur.provenance["heldout_max_pct_fs"] = summ["max_pct"]
    sur.provenance["heldout_reads"] = summ["reads"]
    path = sur.save(args.out)
    print(f"surrogate written to {path}")
    if args.report_dir:
        rd = Path(args.report_dir)
        rd.mkdir(parents=True, exist_ok=True)
        (rd / "fit_report.json").write_text(json.dumps({"fit": report, "heldout": summ},
                                                       indent=1) + "\n")
        for p in figures(ev, rd):
            print(f"figure {p}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .model import TileSurrogate
    from .validate import evaluate, figures, format_summary, summarise

    sur = TileSurrogate.load(args.surrogate)
    ev = evaluate(sur, args.data, args.split)
    summ = summarise(ev)
    print(format_summary(summ))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "validation.json").write_text(json.dumps(summ, indent=1) + "\n")
        for p in figures(ev, out):
            print(f"figure {p}")
    if args.max_rms is not None and summ["rms_pct"] > args.max_rms:
        print(f"FAIL: held-out RMS {summ['rms_pct']:.4f} % > {args.max_rms} %")
        return 1
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .model import TileSurrogate

    sur = TileSurrogate.load(args.surrogate)
    print(json.dumps({k: v for k, v in sur.to_dict().items() if k != "card"}, indent=1))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import format_check, run_check

    card = _card(args.card) if args.card else None
    res = run_check(args.run, args.n_images, surrogate=args.surrogate, card=card,
                    solver=args.solver, tile=(args.tile, args.tile), r_wire=args.r_wire,
                    r_driver=args.r_driver, r_sense=args.r_sense, mnist_path=args.mnist,
                    workers=args.workers, progress=not args.no_progress, out=args.out)
    print(format_check(res))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``surrogate`` (data / fit / validate / info) and ``check`` to the CLI."""
    p = subparsers.add_parser("surrogate", help="data for / fit / validate the tile surrogate",
                              description="Tile surrogate: ngspice training data, least-squares "
                                          "fit of the physics-informed model, validation on "
                                          "held-out tiles.")
    sub = p.add_subparsers(dest="surrogate_command", metavar="STEP")

    d = sub.add_parser("data", help="generate (or extend) the ngspice data set (resumable)")
    d.add_argument("--config", default=DEFAULT_DATA_CONFIG if Path(DEFAULT_DATA_CONFIG).is_file()
                   else None, help="data spec TOML/JSON (default %(default)s)")
    d.add_argument("--out", required=True, help="HDF5 data set (appended to if it exists)")
    d.add_argument("--card", help="model card JSON (default: reference card)")
    d.add_argument("--n-items", type=int, help="override the number of tiles")
    d.add_argument("--limit", type=int, help="solve at most this many new tiles now")
    d.add_argument("--workers", type=int, default=2, help="ngspice worker processes")
    d.add_argument("--compact", action="store_true", help="store states as grid indices")
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=cmd_data)

    f = sub.add_parser("fit", help="fit the surrogate to a data set and validate on its "
                                   "held-out tiles")
    f.add_argument("data", help="HDF5 data set of `surrogate data`")
    f.add_argument("--out", required=True, help="surrogate JSON to write")
    f.add_argument("--terms", help="comma-separated correction terms (default all)")
    f.add_argument("--ridge", type=float, default=1e-9)
    f.add_argument("--v-eff-frac", type=float, default=0.7,
                   help="chord voltage of the ladder shunts / v_max")
    f.add_argument("--report-dir", help="write fit_report.json and figures here")
    f.set_defaults(func=cmd_fit)

    v = sub.add_parser("validate", help="errors of a surrogate on a data set split")
    v.add_argument("data")
    v.add_argument("--surrogate", help="surrogate JSON (default: shipped)")
    v.add_argument("--split", default="test", choices=["test", "fit"])
    v.add_argument("--out", help="directory for validation.json and figures")
    v.add_argument("--max-rms", type=float, help="exit 1 if the RMS error (%% FS) is above")
    v.set_defaults(func=cmd_validate)

    i = sub.add_parser("info", help="print a surrogate's coefficients, validity, provenance")
    i.add_argument("--surrogate", help="surrogate JSON (default: shipped)")
    i.set_defaults(func=cmd_info)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    c = subparsers.add_parser("check", help="inference through ideal VMM, surrogate and "
                                            "ngspice on every tile")
    c.add_argument("run", help="HDF5 training run with a checkpoint")
    c.add_argument("--n-images", type=int, default=200)
    c.add_argument("--solver", default="ngspice", choices=["ngspice", "mna"])
    c.add_argument("--surrogate", help="surrogate JSON (default: shipped)")
    c.add_argument("--card", help="model card JSON (default: the surrogate's)")
    c.add_argument("--tile", type=int, default=64, help="tile size (cells per line)")
    c.add_argument("--r-wire", type=float, default=1.0, help="Ω per wire segment")
    c.add_argument("--r-driver", type=float, default=0.0)
    c.add_argument("--r-sense", type=float, default=0.0)
    c.add_argument("--mnist", help="MNIST directory (default: config / environment)")
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--out", help="JSON result file")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=cmd_check)
