"""``pyspice-rram train``, ``reproduce`` and ``ablation`` subcommands (network layer).

One vocabulary for the three: ``-o/--output`` (old ``--outdir`` kept as a hidden alias),
``-q/--quiet`` (old ``--no-progress`` kept as a hidden alias), ``--force``, ``--seed``,
``--workers``, ``--scheduler`` mean the same in each; every ``--help`` shows the defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..cli import DefaultsHelpFormatter as HELP
from ..paper.experiments import FIGURES
from ..errors import UserInputError



def _at_least(lo: float, kind: type = int, above: bool = False):
    """An argparse type: a finite ``kind`` (int or float) ``>= lo`` (``> lo`` if ``above``)."""
    what = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not finite")
        if value < lo:
            raise argparse.ArgumentTypeError(f"{value} is below {lo:g}")
        if above and value == lo:
            raise argparse.ArgumentTypeError(f"{text} is not above {lo:g}")
        return value
    parse.__name__ = f"{'integer' if kind is int else 'number'} {'>' if above else '>='} {lo:g}"
    return parse


def _int_at_least(lo: int):
    return _at_least(lo, int)


def _float_at_least(lo: float):
    return _at_least(lo, float)


_positive_float = _at_least(0.0, float, above=True)


def _tile(text: str) -> tuple[int, int]:
    """``N`` (N x N cells) or ``ROWSxCOLS``."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"{text!r} is not N or ROWSxCOLS")
    try:
        dims = [_int_at_least(1)(t) for t in parts]
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"tile {text!r}: {err}") from None
    return (dims[0], dims[-1])


_tile.__name__ = "tile N or ROWSxCOLS"


def _circuit_options(p: argparse.ArgumentParser) -> None:
    """``--backend`` and the ``[circuit]`` overrides of ``train`` (not given: the config's)."""
    p.add_argument("--backend", help="tile backend of the reads (ideal, read-noise, "
                   "surrogate, mna: every tile solved as a circuit, small networks); not "
                   "given: the config's backend (ideal by default)")
    p.add_argument("--tile", type=_tile, help="tile size in cells, N (N x N) or ROWSxCOLS; "
                   "not given: the config's [circuit] tile_rows x tile_cols (64x64 by default)")
    p.add_argument("--r-wire", type=_float_at_least(0), help="row wire Ω per segment (and "
                   "column wire unless --r-wire-col); not given: the config's [circuit] "
                   "r_wire_row (1 Ω by default)")
    p.add_argument("--r-wire-col", type=_float_at_least(0), help="column wire Ω per segment; "
                   "not given: --r-wire if given, else the config's r_wire_col (1 Ω by default)")
    p.add_argument("--r-driver", type=_float_at_least(0), help="driver resistance Ω; not "
                   "given: the config's [circuit] r_driver (0 by default)")
    p.add_argument("--r-sense", type=_float_at_least(0), help="sense amplifier input "
                   "resistance Ω; not given: the config's [circuit] r_sense (0 by default)")
    p.add_argument("--v-read", type=_positive_float, help="full-scale read voltage V; not "
                   "given: the config's [circuit] v_read (the card's by default)")


def _periphery_options(p: argparse.ArgumentParser) -> None:
    """DAC/ADC options of ``train`` (the ``[periphery]`` table; docs/cost.md)."""
    p.add_argument("--dac-bits", type=_int_at_least(1), help="input DAC bits of every read "
                   "(not given: the config's [periphery], default ideal)")
    p.add_argument("--adc-bits", type=_int_at_least(1), help="output ADC bits per tile line "
                   "(not given: the config's [periphery], default ideal)")
    p.add_argument("--adc-range", choices=["max", "calibrated"], help="ADC full scale: the "
                   "largest possible line current, or calibrated on training samples (not "
                   "given: the config's, default max)")


def periphery_changes(args: argparse.Namespace) -> dict:
    """The ``[periphery]`` fields given on the command line."""
    keys = {"dac_bits": "dac_bits", "adc_bits": "adc_bits", "adc_range": "adc_range"}
    return {k: getattr(args, a) for k, a in keys.items() if getattr(args, a, None) is not None}


def circuit_changes(args: argparse.Namespace) -> dict:
    """The ``[circuit]`` fields given on the command line (``--tile``, ``--r-wire``, ...)."""
    c = {}
    if args.tile is not None:
        c["tile_rows"], c["tile_cols"] = args.tile
    if args.r_wire is not None:
        c["r_wire_row"] = c["r_wire_col"] = args.r_wire
    if args.r_wire_col is not None:
        c["r_wire_col"] = args.r_wire_col
    for key in ("r_driver", "r_sense", "v_read"):
        if getattr(args, key) is not None:
            c[key] = getattr(args, key)
    return c


def _common(p: argparse.ArgumentParser, *, output_help: str, output_default,
            force_help: str, seed_help: str) -> None:
    """Options shared by train, reproduce and ablation (same names, same meaning)."""
    p.add_argument("-o", "--output", default=output_default, help=output_help)
    p.add_argument("--outdir", dest="output", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-progress", dest="quiet", action="store_true",
                   default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--force", action="store_true", help=force_help)
    p.add_argument("--seed", type=_int_at_least(0), help=seed_help)
    p.add_argument("--mnist", help="directory of the MNIST IDX files (else "
                   "$PYSPICE_RRAM_MNIST / cache)")


def _parallel(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=_int_at_least(1), default=1,
                   help="parallel local worker processes for the runs")
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786); relative "
                   "paths are made absolute before the runs go to the workers")


def _study_options(p: argparse.ArgumentParser, *, output_help: str, output_default: str,
                   force_help: str, seed_help: str, existing_help: str) -> None:
    """Options of the commands that run a study of training runs (ablation, cost)."""
    _common(p, output_help=output_help, output_default=output_default, force_help=force_help,
            seed_help=seed_help)
    _parallel(p)
    p.add_argument("--only-existing", action="store_true", help=existing_help)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train``, ``reproduce``, ``ablation`` and ``cost`` subcommands to the top-level CLI."""
    p = subparsers.add_parser(
        "train", help="train a network from a config (TOML/JSON)", formatter_class=HELP,
        description="Train a 784-250-10 (or 64-h-10 on 8x8 digits) network with the synapse "
                    "cell of the config; writes an HDF5 history, resumable with --resume. "
                    "An existing run file is never overwritten without --force.")
    p.add_argument("config", help="training config (.toml or .json), e.g. configs/train/hybrid.toml")
    _common(p, output_help="HDF5 run file (if not given: runs/<config file stem>.h5)", output_default=None,
            force_help="overwrite an existing run file (replaced after the first epoch)",
            seed_help="override the seed of the config")
    p.add_argument("--epochs", type=_int_at_least(0), help="override the number of epochs")
    p.add_argument("--card", help="device model card JSON (fills the device parameters)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in the output file from its last epoch")
    p.add_argument("--download", action="store_true",
                   help="download MNIST into the cache if it is not found (needs internet)")
    _circuit_options(p)
    _periphery_options(p)
    p.set_defaults(func=cmd_train)

    r = subparsers.add_parser(
        "reproduce", help="reproduce a figure of Choi et al. (2021)", formatter_class=HELP,
        description="Run the training sweeps behind a figure of the seed paper and write "
                    "fig<ID>.png + fig<ID>.json (data) into the output directory; runs are "
                    "stored under <output>/runs and re-used/resumed (--force: retrained).")
    r.add_argument("figure", choices=[*FIGURES, "ALL"], type=str.upper,
                   help="figure id (4D draws panels D-F; 6D is the summary table)")
    _common(r, output_help="output directory", output_default="out/reproduce",
            force_help="retrain the runs from scratch instead of re-using / resuming them",
            seed_help="seed of every run (None: 0; the 4A trio uses SEED .. SEED+SEEDS-1)")
    _parallel(r)
    r.add_argument("--epochs", type=_int_at_least(0),
                   help="epochs per run (None: 20, or 10 with --quick)")
    r.add_argument("--seeds", type=_int_at_least(1), default=1,
                   help="number of seeds for the 4A trio")
    r.add_argument("--quick", action="store_true",
                   help="use the embedded 8x8 digits instead of MNIST (smoke test)")
    r.add_argument("--card", help="device model card JSON")
    r.add_argument("--setting", choices=["A", "B"], default="A", type=str.upper,
                   help="A: deterministic rounding, |W| <= 0.15/0.5; B: stochastic "
                        "rounding, |W| <= 1/2 (figures get the suffix _stochastic)")
    r.set_defaults(func=cmd_reproduce)

    a = subparsers.add_parser(
        "ablation", help="run an ablation study (TOML list of training runs)",
        formatter_class=HELP,
        description="Run the training runs of a study file (configs/ablation/*.toml) — "
                    "missing or incomplete ones only (--force: all, from scratch) — and "
                    "write <output>/<study>.md (table), .json (curves) and .png (final test "
                    "accuracy per run).")
    a.add_argument("study", help="study file, e.g. configs/ablation/one_setting.toml")
    _study_options(a, output_help="output directory", output_default="out/ablation",
                   force_help="retrain the runs from scratch instead of re-using / resuming "
                              "them",
                   seed_help="override the seed of every run of the study",
                   existing_help="tabulate the stored runs without training")
    a.set_defaults(func=cmd_ablation)

    c = subparsers.add_parser(
        "cost", help="time and energy of training: the cost ledger of a run, or a study "
                     "of the synapse schemes", formatter_class=HELP,
        description="RUN.h5: print the run's cost ledger (events per epoch -- reads, "
                    "update cycles, refreshes, arbitration steps, pulses per device -- and "
                    "their time and energy per sample and per epoch) with the per-event "
                    "costs used and their source. STUDY.toml (configs/cost/): run the "
                    "study like `ablation` and write <output>/<study>_cost.md/.json/.png "
                    "(accuracy vs energy per training sample). See docs/cost.md.")
    c.add_argument("target", help="a run file (.h5) or a study file (.toml), e.g. "
                                  "configs/cost/schemes.toml")
    c.add_argument("--costs", help="per-event costs JSON of `pyspice-rram xbar energy` "
                                   "(default: the shipped costs of the fitted reference card "
                                   "for the run's tile size)")
    c.add_argument("--json", help="RUN.h5: also write the ledger as JSON to this file")
    _study_options(c, output_help="STUDY.toml: output directory", output_default="out/cost",
                   force_help="STUDY.toml: retrain the runs from scratch",
                   seed_help="STUDY.toml: override the seed of every run",
                   existing_help="STUDY.toml: tabulate the stored runs without training")
    c.add_argument("--quick", action="store_true",
                   help="STUDY.toml: every run on the 8x8 digits, 1 epoch, 32 hidden (smoke "
                        "test)")
    c.set_defaults(func=cmd_cost)

    c = subparsers.add_parser(
        "circuit-sweep", help="accuracy through the crossbar: ideal- vs circuit-trained",
        formatter_class=HELP,
        description="Train a network with ideal reads and, per circuit point (tile size x "
                    "wire resistance), through the crossbar surrogate; read both through the "
                    "circuit on the test set (pyspice-rram check); write <output>/<sweep>.md "
                    "(table), .h5/.json (every number) and .png (accuracy vs wire "
                    "resistance). Stored runs and checks are re-used (--force: redone).")
    c.add_argument("sweep", help="sweep file, e.g. configs/sweep/circuit_mnist.toml")
    _common(c, output_help="output directory", output_default="out/circuit_sweep",
            force_help="retrain and re-check everything instead of re-using stored results",
            seed_help="override the seed of the training runs")
    c.add_argument("--workers", type=_int_at_least(1), default=1,
                   help="training runs in parallel local processes")
    c.add_argument("--n-images", type=_int_at_least(1),
                   help="test images per check (None: the sweep file's)")
    c.add_argument("--only-existing", action="store_true",
                   help="tabulate the stored runs and checks without training or checking")
    c.set_defaults(func=cmd_circuit_sweep)


def _card(path):
    if not path:
        return None
    from ..device.card import ModelCard

    return ModelCard.load(path)


def _check_output(out: Path, force: bool, resume: bool) -> None:
    """Refuse to overwrite a run file (or anything else) without ``--force``/``--resume``."""
    if out.is_dir():
        raise UserInputError(f"output {out} is a directory; give a run file (.h5)")
    if not out.exists() or force:
        return
    from .history import load_run

    try:
        hist = load_run(out, with_checkpoint=False)[0]
    except (OSError, ValueError, KeyError):
        raise UserInputError(f"output {out} exists and is not a training run file; refusing to "
                         "overwrite it (--force to overwrite)") from None
    if not resume:
        raise UserInputError(
            f"output {out} already holds a run ({hist.config.get('name')!r}, cell "
            f"{hist.config.get('cell')!r}, {hist.completed_epochs} epochs); --resume to "
            "continue it, --force to overwrite it, or choose another -o")


def _check_backend(cfg) -> None:
    """Build the run's backend once before training, so that a circuit outside the
    backend's range (e.g. the surrogate's fitted tile sizes) fails before any work; say so
    when the backend ignores a non-default ``[circuit]``."""
    from .backend import TileBackend, make_backend

    backend = make_backend(cfg.backend, circuit=cfg.circuit)
    if type(backend).from_circuit.__func__ is TileBackend.from_circuit.__func__ and \
            not cfg.circuit.is_default():
        print(f"note: backend {cfg.backend!r} does not model the circuit: the [circuit] "
              f"table ({cfg.circuit.describe()}) is recorded in the run file but not used "
              "(--backend surrogate reads through it)", file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    if args.force and args.resume:
        raise UserInputError("--force (start over) and --resume (continue) exclude each other")
    cfg = TrainConfig.load(args.config)
    changes = {}
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.mnist:
        changes["mnist_path"] = args.mnist
    if args.backend is not None:
        changes["backend"] = args.backend
    circuit = circuit_changes(args)
    if circuit:
        changes["circuit"] = cfg.circuit.replace(**circuit)
    periphery = periphery_changes(args)
    if periphery:
        changes["periphery"] = {**cfg.periphery.to_dict(), **periphery}
    if changes:
        cfg = cfg.replace(where=args.config, **changes)
    _check_backend(cfg)
    out = Path(args.output) if args.output else Path("runs") / f"{Path(args.config).stem}.h5"
    _check_output(out, args.force, args.resume)
    card = _card(args.card)
    if card is not None or cfg.card:
        try:
            cfg.build_cell(card)         # the card's device numbers, checked before training
        except ValueError as err:
            raise UserInputError(f"{args.card or cfg.to_dict()['card']}: {err}") from None
    from ..circuit.safeio import raise_if_interrupted, signals_unwind

    with signals_unwind():   # SIGTERM unwinds like Ctrl-C; a swallowed Ctrl-C stops after
        res = train(cfg, out, card=card, resume=args.resume, progress=not args.quiet,
                    download=args.download, force=args.force,
                    callback=lambda epoch, hist: raise_if_interrupted())  # the saved epoch
    print(json.dumps({**res.summary(), "output": str(out)}, indent=1))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ..paper.experiments import STOCHASTIC_BASE, reproduce

    b = args.setting == "B"
    card = _card(args.card)
    if card is not None:
        from .cells import DeviceSpec

        try:
            DeviceSpec.from_card(card)       # the card's device numbers, checked up front
        except ValueError as err:
            raise UserInputError(f"{args.card}: {err}") from None
    paths = reproduce(args.figure, args.output, mnist=args.mnist, epochs=args.epochs,
                      seeds=args.seeds, quick=args.quick, workers=args.workers,
                      scheduler=args.scheduler, progress=not args.quiet,
                      card=card, base=STOCHASTIC_BASE if b else None,
                      tag="_stochastic" if b else "", force=args.force, seed=args.seed)
    for p in paths:
        print(p)
    return 0


def cmd_ablation(args: argparse.Namespace) -> int:
    from ..paper.ablation import run_study

    res = run_study(args.study, args.output, mnist=args.mnist, workers=args.workers,
                    scheduler=args.scheduler, progress=not args.quiet,
                    only_existing=args.only_existing, force=args.force, seed=args.seed)
    for r in res["rows"]:
        acc = f"{r['test']:6.2f} %" if r["epochs"] else "not run"
        print(f"{acc}  {r['label']}")
    print(Path(args.output) / (Path(args.study).stem + ".md"))
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    from ..paper.cost import cost_study, format_ledger, run_ledger, save_ledger_json

    target = Path(args.target)
    if target.suffix == ".toml":
        res = cost_study(target, args.output, costs=args.costs, quick=args.quick,
                         mnist=args.mnist, workers=args.workers, scheduler=args.scheduler,
                         progress=not args.quiet, only_existing=args.only_existing,
                         force=args.force, seed=args.seed)
        for r in res["rows"]:
            print(f"{r['test']:6.2f} %  {r['energy_per_sample_J']:.3e} J/sample  "
                  f"{r['time_per_sample_s']:.3e} s/sample  {r['label']}")
        for p in res["paths"]:
            print(p)
        return 0
    if not target.is_file():
        raise UserInputError(f"cost: {target} not found (give a run file .h5 or a study "
                             ".toml)")
    led = run_ledger(target, args.costs)
    print(format_ledger(led))
    if args.json:
        print(save_ledger_json(led, args.json))
    return 0


def cmd_circuit_sweep(args: argparse.Namespace) -> int:
    from ..paper.circuit_sweep import CircuitSweep, run_sweep

    sweep = CircuitSweep.load(args.sweep)
    if args.seed is not None:
        sweep.train = sweep.train.replace(seed=args.seed)
    res = run_sweep(sweep, args.output, stem=Path(args.sweep).stem, mnist=args.mnist, workers=args.workers,
                    progress=not args.quiet, only_existing=args.only_existing,
                    force=args.force, n_images=args.n_images)
    print(Path(res["table"]).read_text(), end="")
    for key in ("table", "figure", "h5"):
        print(res[key])
    return 0
