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


class ConfigError(UserInputError):
    """A bad parameter of a training config, device or cell: ``key = value: reason``.

    ``key`` is the dotted path of the parameter (``device.c2c``); :meth:`located` prefixes
    the file (or run) it came from. A ``ValueError``, so the CLI prints it as one line.
    """

    def __init__(self, key: str, value, reason: str, where: str | None = None):
        self.key, self.value, self.reason, self.where = key, value, reason, where
        head = f"{where}: " if where else ""
        super().__init__(f"{head}{key} = {value!r}: {reason}")

    def located(self, where: str, prefix: str = "") -> "ConfigError":
        """The same error, located in ``where`` and with ``prefix`` before the key."""
        return ConfigError(prefix + self.key, self.value, self.reason, where)


__all__ = ["ConfigError", "PyspiceRramError", "UserInputError"]
