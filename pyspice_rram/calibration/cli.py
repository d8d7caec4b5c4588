"""``pyspice-rram fit`` and ``pyspice-rram make-reference``.

::

    pyspice-rram fit <data set dir> [-o card.json] [--report DIR] [--no-report] [--quiet]
    pyspice-rram make-reference [DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _fit(args: argparse.Namespace) -> int:
    from .fit import fit_dataset

    dataset = Path(args.dataset)
    card_path = Path(args.output) if args.output else None
    outdir = (Path(args.report).parent if args.report else
              (card_path.parent if card_path else dataset if dataset.is_dir() else dataset.parent))
    result = fit_dataset(dataset, outdir, progress=not args.quiet, card_path=card_path,
                         report=False, max_nfev=args.max_nfev, max_rounds=args.max_rounds)
    from .report import write_report
    from .fit import reference_truth

    paths = dict(result.paths)
    if not args.no_report:
        rdir = Path(args.report) if args.report else outdir / "report"
        paths.update(write_report(result, rdir, truth=reference_truth(result.dataset)))
    print(f"fitted {result.dataset.recipe.name} in {result.seconds:.0f} s "
          f"({len(result.program.devices)} devices)")
    for name, p in result.parameters.items():
        print(f"  {name:14s} = {p.value:12.6g} ± {p.stderr:.3g} {p.unit}")
    print(f"  states at the nominal scheme: {result.card.n_states():.1f}; "
          f"δ/μ (card, simulated): {result.metrics.get('delta_over_mu_card', float('nan')):.3f}")
    for k in ("card", "lib", "va", "report"):
        if k in paths:
            print(f"  {k}: {paths[k]}")
    return 0


def _make_reference(args: argparse.Namespace) -> int:
    from .reference import DEFAULT_DIR, make_reference

    for name, p in make_reference(Path(args.outdir) if args.outdir else DEFAULT_DIR).items():
        print(f"{name}: {p}")
    return 0


def register(subparsers) -> None:
    """Add the calibration subcommands to the top-level parser."""
    p = subparsers.add_parser(
        "fit", help="fit a device data set: model card, .lib/.va and report",
        description="Fit the model card jointly to the DC sweeps and pulse trains of a data "
                    "set (a directory with recipe.toml), write the card JSON, the ngspice "
                    ".lib, the Verilog-A .va and the fit report.")
    p.add_argument("dataset", help="data-set directory (with recipe.toml/recipe.json) or recipe")
    p.add_argument("-o", "--output", help="card JSON path (default: <outdir>/card.json)")
    p.add_argument("--report", help="report directory (default: <outdir>/report)")
    p.add_argument("--no-report", action="store_true", help="skip the report and figures")
    p.add_argument("--max-nfev", type=int, default=400, help="evaluations per fit stage")
    p.add_argument("--max-rounds", type=int, default=4,
                   help="rounds of the conditional fit alternating with per-device parameters")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_fit)
    q = subparsers.add_parser("make-reference",
                              help="regenerate the synthetic reference data set")
    q.add_argument("outdir", nargs="?", help="target directory (default: calibration/motiox-reference)")
    q.set_defaults(func=_make_reference)
