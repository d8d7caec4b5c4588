"""``pyspice-rram train``, ``reproduce`` and ``ablation`` subcommands (network layer)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .experiments import FIGURES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train``, ``reproduce`` and ``ablation`` subcommands to the top-level CLI."""
    p = subparsers.add_parser(
        "train", help="train a network from a config (TOML/JSON)",
        description="Train a 784-250-10 (or 64-h-10 on 8x8 digits) network with the synapse "
                    "cell of the config; writes an HDF5 history, resumable with --resume.")
    p.add_argument("config", help="training config (.toml or .json), e.g. configs/train/hybrid.toml")
    p.add_argument("-o", "--output", help="HDF5 run file (default runs/<config name>.h5)")
    p.add_argument("--mnist", help="directory of the MNIST IDX files (else $PYSPICE_RRAM_MNIST / cache)")
    p.add_argument("--epochs", type=int, help="override the number of epochs")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument("--card", help="device model card JSON (fills the device parameters)")
    p.add_argument("--resume", action="store_true", help="continue from the run file's last epoch")
    p.add_argument("--download", action="store_true",
                   help="download MNIST into the cache if it is not found (needs internet)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    r = subparsers.add_parser(
        "reproduce", help="reproduce a figure of Choi et al. (2021)",
        description="Run the training sweeps behind a figure of the seed paper and write "
                    "fig<ID>.png + fig<ID>.json (data) into the output directory; runs are "
                    "stored under <outdir>/runs and re-used/resumed.")
    r.add_argument("figure", choices=[*FIGURES, "ALL"], type=str.upper,
                   help="figure id (4D draws panels D-F; 6D is the summary table)")
    r.add_argument("-o", "--outdir", default="out/reproduce", help="output directory")
    r.add_argument("--mnist", help="directory of the MNIST IDX files")
    r.add_argument("--epochs", type=int, help="epochs per run (default: config, 20)")
    r.add_argument("--seeds", type=int, default=1, help="seeds for the 4A trio")
    r.add_argument("--quick", action="store_true",
                   help="use the embedded 8x8 digits instead of MNIST (smoke test)")
    r.add_argument("--workers", type=int, default=1, help="parallel local processes")
    r.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786)")
    r.add_argument("--card", help="device model card JSON")
    r.add_argument("--setting", choices=["A", "B"], default="A", type=str.upper,
                   help="A: deterministic rounding, |W| <= 0.15/0.5 (default); B: stochastic "
                        "rounding, |W| <= 1/2 (figures get the suffix _stochastic)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_reproduce)

    a = subparsers.add_parser(
        "ablation", help="run an ablation study (TOML list of training runs)",
        description="Run the training runs of a study file (configs/ablation/*.toml) — "
                    "missing or incomplete ones only — and write <outdir>/<study>.md (table), "
                    ".json (curves) and .png (final test accuracy per run).")
    a.add_argument("study", help="study file, e.g. configs/ablation/one_setting.toml")
    a.add_argument("-o", "--outdir", default="out/ablation", help="output directory")
    a.add_argument("--mnist", help="directory of the MNIST IDX files")
    a.add_argument("--workers", type=int, default=1, help="parallel local processes")
    a.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786)")
    a.add_argument("--only-existing", action="store_true",
                   help="tabulate the stored runs without training")
    a.add_argument("--no-progress", action="store_true", help="no progress bars")
    a.set_defaults(func=cmd_ablation)


def _card(path):
    if not path:
        return None
    from ..device.card import ModelCard

    return ModelCard.load(path)


def cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig.load(args.config)
    changes = {}
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.mnist:
        changes["mnist_path"] = args.mnist
    if changes:
        cfg = cfg.replace(**changes)
    out = Path(args.output) if args.output else Path("runs") / f"{Path(args.config).stem}.h5"
    res = train(cfg, out, card=_card(args.card), resume=args.resume,
                progress=not args.no_progress, download=args.download)
    print(json.dumps({**res.summary(), "output": str(out)}, indent=1))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .experiments import STOCHASTIC_BASE, reproduce

    b = args.setting == "B"
    paths = reproduce(args.figure, args.outdir, mnist=args.mnist, epochs=args.epochs,
                      seeds=args.seeds, quick=args.quick, workers=args.workers,
                      scheduler=args.scheduler, progress=not args.no_progress,
                      card=_card(args.card), base=STOCHASTIC_BASE if b else None,
                      tag="_stochastic" if b else "")
    for p in paths:
        print(p)
    return 0


def cmd_ablation(args: argparse.Namespace) -> int:
    from .ablation import run_study

    res = run_study(args.study, args.outdir, mnist=args.mnist, workers=args.workers,
                    scheduler=args.scheduler, progress=not args.no_progress,
                    only_existing=args.only_existing)
    for r in res["rows"]:
        acc = f"{r['test']:6.2f} %" if r["epochs"] else "not run"
        print(f"{acc}  {r['label']}")
    print(Path(args.outdir) / (Path(args.study).stem + ".md"))
    return 0
