"""``pyspice-rram fit`` and ``pyspice-rram make-reference``.

::

    pyspice-rram fit <data set dir> [-o card.json] [--force] [--report DIR] [--no-report]
                     [--quiet] [--family F ...] [--starts N] [--strict]
    pyspice-rram make-reference [DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..errors import DataError


def _check_writable(directory: Path) -> None:
    """Create ``directory`` (and parents) and check that files can be written in it;
    ``ValueError`` naming the path otherwise."""
    import os

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"output directory {str(directory)!r} cannot be created: "
                         f"{exc.strerror or exc}") from None
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        raise DataError(f"output directory {str(directory)!r} is not a writable directory")


def _check_not_overwriting(card_path: Path, default: bool, force: bool) -> None:
    """UserInputError when a card already exists at ``card_path`` and ``--force`` is not
    given; with the default output (no ``-o``) the card is the one beside the data (a
    shipped data set's card), and the hint says to give ``-o``."""
    from .fitting import check_not_overwriting

    check_not_overwriting(
        card_path, force,
        hint=(f"give another output with -o OUT/card.json, or --force to overwrite "
              f"{card_path} and the .lib/.va/quality.json/report beside it") if default
        else "choose another -o path, or add --force to overwrite it")


def _print_warnings(caught) -> None:
    """The loader's warnings (already one per kind and file, with counts), one line each
    without the module's source path: the lines of ``dataset.warnings``."""
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)


def _fit(args: argparse.Namespace) -> int:
    import warnings

    from .fitting import fit
    from .io import load_dataset

    dataset = Path(args.dataset)
    card_path = Path(args.output) if args.output else None
    outdir = (Path(args.report).parent if args.report else
              (card_path.parent if card_path else dataset if dataset.is_dir() else dataset.parent))
    _check_not_overwriting(card_path or outdir / "card.json", card_path is None, args.force)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(dataset)
    _print_warnings(caught)
    rdir = None if args.no_report else (Path(args.report) if args.report else outdir / "report")
    for d in dict.fromkeys(x for x in (outdir, card_path.parent if card_path else None, rdir) if x):
        _check_writable(d)  # before the fit: a fit must not be lost to an unwritable path
    result = fit(ds, args.family or None, args.starts, progress=not args.quiet,
                 max_nfev=args.max_nfev, max_rounds=args.max_rounds,
                 max_points=args.max_points or None, subset_points=args.subset_points)
    # a report that fails is recorded in quality.json (verdict poor), never loses the card
    paths = result.save(outdir, force=True, card_path=card_path, report=rdir is not None,
                        report_dir=rdir)
    sub = result.fit_subset
    if sub.get("subsampled"):
        print(f"fitted on {sub['n_fit']} of {sub['n_total']} points (first whole sweeps/cycles "
              f"of every sequence); verdict on all {sub['n_total']}")
    q = result.quality
    print(f"fitted {result.dataset.recipe.name} in {result.seconds:.0f} s "
          f"({len(result.program.devices)} devices); family {q['family']}")
    if len(result.selection) > 1:
        print("  family selection (BIC, lower is better):")
        for row in sorted(result.selection, key=lambda r: r.get("bic", float("inf"))):
            if "bic" in row:
                print(f"    {row['family']:30s} dBIC {row['delta_bic']:10.1f}  k {row['k']}")
            else:
                print(f"    {row['family']:30s} failed: {row['error']}")
    for name, p in result.parameters.items():
        if p.vary:
            print(f"  {name:14s} = {p.value:12.6g} ± {p.stderr:.3g} {p.unit}")
        elif math.isfinite(p.value):
            print(f"  {name:14s} = {p.value:12.6g} (held: {p.note})")
        else:
            print(f"  {name:14s}   not estimated: {p.note}")
    if result.metrics.get("n_states_card_note"):
        print(f"  states at the nominal scheme: {result.metrics['n_states_card_note']}")
    else:
        print(f"  states at the nominal scheme: {result.card.n_states():.4g}")
    for key in ("pulse_r2_median", "pulse_rms_steps_median", "iv_r2_log_median", "iv_r2_median"):
        if key in q:
            print(f"  {key}: {q[key]:.4g}")
    print(f"VERDICT: {q['verdict'].upper()}")
    for r in q["reasons"]:
        print(f"  - {r}")
    for k in ("card", "quality", "lib", "va", "report"):
        if k in paths:
            print(f"  {k}: {paths[k]}")
    if args.strict and q["verdict"] == "poor":
        print("--strict: exit 3 because the verdict is poor (the card is written and marked)",
              file=sys.stderr)
        return 3
    return 0


def _make_reference(args: argparse.Namespace) -> int:
    from ..errors import UserInputError
    from .reference import DEFAULT_DIR, make_reference

    out = Path(args.outdir) if args.outdir else DEFAULT_DIR
    if (out / "recipe.toml").exists() and not args.force:
        raise UserInputError(f"{out} already holds a data set ({out / 'recipe.toml'}); not "
                             "overwritten", hint="give another directory, or --force to "
                                                 "regenerate it in place")
    for name, p in make_reference(out).items():
        print(f"{name}: {p}")
    return 0


def register(subparsers) -> None:
    """Add the calibration subcommands to the top-level parser."""
    from ..cli import DefaultsHelpFormatter

    p = subparsers.add_parser(
        "fit", help="fit a device data set: model card, .lib/.va and report",
        formatter_class=DefaultsHelpFormatter,
        description="Fit the model card jointly to the DC sweeps and pulse trains of a data "
                    "set (a directory with recipe.toml), write the card JSON, the ngspice "
                    ".lib, the Verilog-A .va and the fit report.")
    p.add_argument("dataset", help="data-set directory (with recipe.toml/recipe.json) or recipe")
    p.add_argument("-o", "--output", help="card JSON path (default: <outdir>/card.json)")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing card (and the .lib/.va/quality.json/report "
                        "beside it); without it an existing card is an error")
    p.add_argument("--report", help="report directory (default: <outdir>/report)")
    p.add_argument("--no-report", action="store_true", help="skip the report and figures")
    p.add_argument("--max-nfev", type=int, default=400, help="evaluations per fit stage")
    p.add_argument("--max-rounds", type=int, default=4,
                   help="rounds of the conditional fit alternating with per-device parameters")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--family", action="append", metavar="FAMILY",
                   help="model family to fit, e.g. 'schottky/soft_bounds/log+rs' (repeat to "
                        "compare several; default: the recipe's [fit] families or the "
                        "defaults for the data)")
    p.add_argument("--starts", type=int, default=None,
                   help="starts of the global stage (default: recipe [fit] starts or 32)")
    p.add_argument("--max-points", type=int, default=100_000,
                   help="observations above which the fit runs on a subset of whole sweeps / "
                        "cycles of every device (the verdict uses all; default 100000); 0: never")
    p.add_argument("--subset-points", type=int, default=None,
                   help="observations of that subset (default: 50000 / families tried)")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 3 when the fit's verdict is 'poor' (the card and "
                        "quality.json are still written)")
    p.set_defaults(func=_fit)
    q = subparsers.add_parser("make-reference",
                              help="regenerate the synthetic reference data set",
                              formatter_class=DefaultsHelpFormatter)
    q.add_argument("outdir", nargs="?", help="target directory (default: calibration/motiox-reference)")
    q.add_argument("--force", action="store_true",
                   help="regenerate over an existing data set in the target directory")
    q.set_defaults(func=_make_reference)
