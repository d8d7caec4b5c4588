"""Exception base of the package.

Every error the package raises on purpose derives from :class:`PyspiceRramError`; errors
caused by the user's input (a bad file, option, config value or path) derive from
:class:`UserInputError`, which is also a ``ValueError`` so that existing ``except
ValueError`` handlers keep working. The command line (:func:`pyspice_rram.cli.main`) prints
these as one line ``pyspice-rram <command>: error: <message>`` (plus a ``hint:`` line when the
exception carries a ``hint``) and exits with status 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations


class PyspiceRramError(Exception):
    """Base of every error raised on purpose by pyspice-rram.

    Parameters
    ----------
    message : str
        What went wrong, naming the file / field / row / value concerned.
    hint : str, optional
        What to do about it; the CLI prints it on a second line ``hint: ...``.
    """

    def __init__(self, *args, hint: str | None = None):
        super().__init__(*args)
        self.hint = hint


class UserInputError(PyspiceRramError, ValueError):
    """Bad user input: a file, option, configuration value or path (also a ValueError)."""


class DataError(UserInputError):
    """Malformed measurement data; the message names file, column and row (a
    :class:`UserInputError`, hence also a ``ValueError``)."""


class ConfigError(UserInputError):
    """A bad value of a configuration (training config, cell, device, tile, solver option);
    the message names the field and the value (also a ``ValueError``)."""


class SimulatorError(PyspiceRramError, RuntimeError):
    """A circuit simulator (ngspice, the nodal solver) or model compiler (OpenVAF) failed, is
    missing, timed out or did not converge (also a ``RuntimeError``); the ngspice and compiler
    subclasses live in :mod:`pyspice_rram.spice.errors`."""


class ValidityError(PyspiceRramError, ValueError):
    """An input is outside the range in which a model was fitted or validated (e.g. a tile
    or a conductance outside a surrogate's range; also a ``ValueError``)."""


def unknown_fields(cls: type, data: dict) -> list[str]:
    """The keys of ``data`` that are not fields of the dataclass ``cls`` (sorted): the one
    check behind every "unknown key" error of a configuration table."""
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    return sorted(str(k) for k in data if k not in known)


__all__ = ["ConfigError", "DataError", "PyspiceRramError", "SimulatorError", "UserInputError",
           "ValidityError"]
