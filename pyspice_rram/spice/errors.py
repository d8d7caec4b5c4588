"""Errors of the simulator layer (one hierarchy for every ngspice / OpenVAF call).

::

    PyspiceRramError                      (pyspice_rram.errors)
    └── SimulatorError (RuntimeError)     (pyspice_rram.errors)
        ├── NgspiceError                  ngspice failed; .netlist_path, .log
        │   ├── NgspiceNotFound (OSError) no executable / no shared library
        │   ├── NgspiceTimeout (TimeoutError) the wall-clock limit was reached
        │   └── NgspiceFailed             ngspice ran and failed (message ends in the log tail)
        │       ├── NgspiceNetlistError   ngspice rejected the netlist
        │       └── NgspiceConvergenceError  no solution (Newton, gmin/source stepping,
        │                                    time step too small)
        ├── RawFileError (ValueError)     a rawfile that is not ngspice's or is cut short
        └── CompilerError                 OpenVAF missing or failed (.log)

``NgspiceError`` is the base to catch for "ngspice did not give a result";
``pyspice_rram.circuit.ngspice_run`` re-exports the same classes under their historical
names.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SimulatorError

#: Lines of the ngspice output quoted at the end of an error message.
LOG_TAIL_LINES = 15


def log_tail(log: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` non-blank-trimmed lines of a simulator log."""
    return "\n".join(log.strip().splitlines()[-lines:])


class NgspiceError(SimulatorError):
    """ngspice did not give a result.

    Parameters
    ----------
    message : str
        What failed (first line of ``str(exc)``).
    netlist_path : Path, optional
        Where the netlist was kept for debugging (named in the message).
    log : str
        The ngspice output (stdout and stderr); its last :data:`LOG_TAIL_LINES` lines are
        appended to the message.
    hint : str, optional
        What to do about it (printed by the CLI on a ``hint:`` line).
    """

    def __init__(self, message: str, netlist_path: Path | None = None, log: str = "", *,
                 hint: str | None = None) -> None:
        self.netlist_path = Path(netlist_path) if netlist_path is not None else None
        self.log = log
        tail = log_tail(log)
        where = f"\nnetlist saved at {netlist_path}" if netlist_path else ""
        super().__init__(f"{message}{where}" + (f"\nngspice output (tail):\n{tail}" if tail else ""),
                         hint=hint)


class NgspiceNotFound(NgspiceError, OSError):
    """The ngspice executable or shared library is missing (an ``OSError``: the CLI prints
    it as one line)."""

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


class NgspiceTimeout(NgspiceError, TimeoutError):
    """ngspice ran past its wall-clock limit and was stopped (``ngspice -b``: killed; shared
    library: ``bg_halt``)."""

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


class NgspiceFailed(NgspiceError):
    """ngspice ran and gave no (complete) result; the message ends in its output's tail."""


class NgspiceNetlistError(NgspiceFailed):
    """ngspice rejected the netlist."""


class NgspiceConvergenceError(NgspiceFailed):
    """ngspice found no solution (Newton, gmin and source stepping failed, a pseudo-transient
    operating point, or a transient whose time step became too small)."""


class RawFileError(SimulatorError, ValueError):
    """A rawfile that cannot be read (not an ngspice rawfile, or cut short); the message
    names the file."""


class CompilerError(SimulatorError):
    """The Verilog-A compiler (OpenVAF) is missing or failed; ``log`` holds its output."""

    def __init__(self, message: str, log: str = "", *, hint: str | None = None) -> None:
        self.log = log
        tail = log_tail(log)
        super().__init__(message + (f"\ncompiler output (tail):\n{tail}" if tail else ""),
                         hint=hint)


__all__ = ["SimulatorError", "NgspiceError", "NgspiceNotFound", "NgspiceTimeout",
           "NgspiceFailed", "NgspiceNetlistError", "NgspiceConvergenceError", "RawFileError", "CompilerError",
           "log_tail", "LOG_TAIL_LINES"]
