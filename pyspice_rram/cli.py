"""Command-line entry point ``pyspice-rram``: one subcommand per job.

Each layer registers its own subcommands through a ``register(subparsers)`` function in its
``cli`` module; this file only dispatches.

=========================  =============================================================
``pyspice-rram run``       the main job: fit -> crossbar tiles -> training (see README)
``pyspice-rram fit``       fit a device data set, write model card, .va/.lib and report
``pyspice-rram xbar``      build and solve crossbar tiles in ngspice / MNA
``pyspice-rram train``     train a network from a config
``pyspice-rram reproduce`` reproduce a figure of Choi et al. (2021)
``pyspice-rram ablation``  run an ablation study (configs/ablation/*.toml)
``pyspice-rram surrogate`` generate data for / fit / validate the tile surrogate
``pyspice-rram check``     compare inference through ideal VMM, surrogate and ngspice
=========================  =============================================================
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

#: Modules whose ``register(subparsers)`` adds subcommands, in help order.
COMMAND_MODULES = (
    "pyspice_rram.pipeline",
    "pyspice_rram.calibration.cli",
    "pyspice_rram.circuit.cli",
    "pyspice_rram.network.cli",
    "pyspice_rram.surrogate.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available layer's subcommands."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="pyspice-rram",
        description="RRAM device fitting, ngspice crossbar simulation and network training.")
    parser.add_argument("--version", action="version", version=f"pyspice-rram {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # layer not installed in this build
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:  # bad input, unreadable/unwritable path: one line
        print(f"pyspice-rram {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
