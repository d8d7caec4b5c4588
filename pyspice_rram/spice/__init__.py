"""The simulator layer: everything that writes ngspice text, runs ngspice or reads its output.

The lowest layer of the package (it imports nothing from pyspice_rram but
:mod:`pyspice_rram.errors`); the device netlisters (cell library, cross-check circuits) and
the circuit netlisters (crossbar tiles, the update transient) build their text with
:mod:`.format` and run it with :func:`.runner.run`.

* :mod:`.format` -- :func:`fmt` (the one number formatter), ``.options`` / ``.save`` /
  ``.control`` / PWL helpers;
* :mod:`.runner` -- :func:`run` (``ngspice -b`` or the shared library, timeouts, temporary
  files removed on every exit path), discovery (:func:`ngspice_info`, :func:`has_klu`,
  :func:`shared_ngspice`, :func:`openvaf_executable`) and :func:`run_compiler` (OpenVAF);
* :mod:`.raw` -- :func:`read_raw` and :class:`RawPlot`, the one result type;
* :mod:`.errors` -- ``SimulatorError`` and its ngspice / compiler subclasses.
"""

from .errors import (CompilerError, NgspiceConvergenceError, NgspiceError, NgspiceFailed,
                     NgspiceNetlistError, NgspiceNotFound, NgspiceTimeout, RawFileError,
                     SimulatorError)
from .format import (control_block, element, fmt, index_pwl, insert_before, options_line,
                     save_lines, time_pwl)
from .raw import RawPlot, parse_raw, read_raw
from .runner import (DEFAULT_TIMEOUT_S, MODES, SimResult, classify, has_klu, keep_netlist,
                     ngspice_executable, ngspice_info, openvaf_executable, require_version,
                     run, run_compiler, shared_ngspice)

__all__ = ["SimulatorError", "NgspiceError", "NgspiceNotFound", "NgspiceTimeout",
           "NgspiceFailed", "NgspiceNetlistError", "NgspiceConvergenceError", "RawFileError",
           "CompilerError", "fmt", "options_line", "element", "save_lines", "control_block",
           "index_pwl", "time_pwl", "insert_before", "RawPlot", "read_raw", "parse_raw",
           "run", "SimResult", "classify", "keep_netlist", "ngspice_executable", "ngspice_info",
           "has_klu", "require_version", "shared_ngspice", "openvaf_executable", "run_compiler",
           "MODES", "DEFAULT_TIMEOUT_S"]
