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

Errors: a user error (bad input file, option, configuration or path: ``ValueError``,
``OSError`` or :class:`~pyspice_rram.errors.PyspiceRramError`) is printed as one line
``pyspice-rram <command>: error: <message>`` (and ``hint: ...`` when the exception carries a
hint) with exit status 1; a usage error (unknown option, missing argument) exits with status
2; ``--debug`` re-raises the exception to show the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import warnings
import sys

from .errors import PyspiceRramError

class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every option's default, ``(default: ...)``; unset optional values
    and off switches (default ``None`` / ``False``, not ``0``) show none."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


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
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # layer not installed in this build
                continue
            raise
        module.register(sub)
    _no_abbreviations(parser)
    return parser


def _no_abbreviations(parser: argparse.ArgumentParser) -> None:
    """Refuse abbreviated long options everywhere (``--epoch`` for ``--epochs`` is a usage
    error, not silently accepted; a later option could make an abbreviation mean another)."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _no_abbreviations(child)


def _error_text(exc: BaseException) -> str:
    """One line for an exception: an ``OSError`` as ``path: reason``, newlines folded."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror}"
        if getattr(exc, "filename2", None) is not None:
            text += f" (-> {exc.filename2})"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


#: Exceptions reported as a user error (one line, exit 1) unless ``--debug``.
USER_ERRORS = (PyspiceRramError, ValueError, OSError)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 success, 1 user error, 2 usage error,
    other codes as documented by the subcommand)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage error (2), --help / --version (0)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    quiet = bool(getattr(args, "quiet", False) or getattr(args, "no_progress", False))
    logging.basicConfig(level=logging.DEBUG if args.verbose else
                        (logging.WARNING if quiet else logging.INFO),
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    shown = warnings.showwarning
    if not args.debug:
        warnings.showwarning = _one_line_warning(args.command)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:  # bad input, unreadable/unwritable path: one line
        if args.debug:
            raise
        print(f"pyspice-rram {args.command}: error: {_error_text(exc)}", file=sys.stderr)
        hint = getattr(exc, "hint", None)
        if hint:
            print(f"hint: {' '.join(str(hint).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C / SIGINT: one line, the conventional status
        if args.debug:
            raise
        print(f"pyspice-rram {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown


def _one_line_warning(command: str):
    """A ``warnings.showwarning`` that prints ``pyspice-rram COMMAND: warning: message`` on one
    line (no source path or code line; ``--debug`` keeps Python's own format)."""

    def show(message, category, filename, lineno, file=None, line=None):
        kind = "" if issubclass(category, UserWarning) else f" ({category.__name__})"
        text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
        print(f"pyspice-rram {command}: warning{kind}: {text}", file=file or sys.stderr)

    return show


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
