"""Solve crossbar tiles with ngspice: in-process (PySpice shared library) or ``ngspice -b``.

Both backends run the netlist of :func:`pyspice_rram.circuit.netlist.tile_netlist`: one DC
sweep of an index source applies all input vectors, so the matrix is ordered once per tile.
Only the sense-source branch currents are saved (``.save``), which keeps the sweep small.

Failures become exceptions that carry the saved netlist and the ngspice log:

* :class:`NgspiceNotFound` -- no ``ngspice`` executable / no ``libngspice`` shared library;
* :class:`NgspiceNetlistError` -- ngspice rejected the netlist;
* :class:`NgspiceConvergenceError` -- no solution for every input vector, after the
  convergence aids of :data:`pyspice_rram.circuit.netlist.CONVERGENCE_AIDS` (more DC
  iterations, gmin stepping, source stepping) were retried.
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
from pathlib import Path
from typing import Any

import numpy as np

from .netlist import CONVERGENCE_AIDS, netlist_sha256, sense_source_names, tile_netlist
from .tile import Tile, check_direction

#: ngspice executable (override with the environment variable ``PYSPICE_RRAM_NGSPICE``).
NGSPICE = os.environ.get("PYSPICE_RRAM_NGSPICE", "ngspice")

BACKENDS = ("shared", "batch")

_SHARED_LOCK = threading.Lock()


class NgspiceError(RuntimeError):
    """ngspice failed; ``netlist_path`` holds the netlist, ``log`` the ngspice output."""

    def __init__(self, message: str, netlist_path: Path | None = None, log: str = "") -> None:
        self.netlist_path = netlist_path
        self.log = log
        tail = "\n".join(log.strip().splitlines()[-15:])
        where = f"\nnetlist saved at {netlist_path}" if netlist_path else ""
        super().__init__(f"{message}{where}" + (f"\nngspice output (tail):\n{tail}" if tail else ""))


class NgspiceNotFound(NgspiceError, OSError):
    """The ngspice executable or shared library is missing (an ``OSError``: the CLI prints
    it as one line)."""

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


class TileTooLarge(ValueError):
    """A tile above :data:`MAX_NGSPICE_TILE` cells per line was given to ngspice without
    ``force``."""


#: Largest tile (cells per line) that the CLI sends through ngspice without ``--force``.
#: ngspice's time grows faster than the cell count (about (cells)^1.5 from 64x64 to
#: 128x128 and (cells)^2.5 from 128x128 to 192x192 on the development machine: 0.8 s,
#: 6.5 s, 48 s for 8 vectors), so a 512x512 tile already takes of the order of an hour.
MAX_NGSPICE_TILE = 512

#: Netlist bytes per cell (measured: 125-136 B for 32x32 ... 192x192 tiles).
NETLIST_BYTES_PER_CELL = 136
#: Peak ngspice memory per cell (bytes) above a ~130 MB base: rough, from the peak RSS of
#: ``ngspice -b`` on 64x64 (133 MB) and 128x128 (142 MB) tiles.
NGSPICE_BYTES_PER_CELL = 1000


def estimate_cost(rows: int, cols: int, n_vectors: int = 1) -> dict[str, float]:
    """Rough ngspice cost of one tile: ``netlist_mb``, ``memory_mb``, ``time_s``.

    Extrapolated from measured 64x64 ... 192x192 tiles (8 vectors, 6.5 s at 128x128) with
    time ~ cells^2; an order of magnitude, not a promise.
    """
    cells = float(rows) * float(cols)
    return {"netlist_mb": cells * NETLIST_BYTES_PER_CELL / 1e6,
            "memory_mb": cells * NGSPICE_BYTES_PER_CELL / 1e6 + 130.0,
            "time_s": 6.5 * (cells / 128.0 ** 2) ** 2 * max(1.0, n_vectors / 8.0)}


def check_tile_size(rows: int, cols: int, n_vectors: int = 1, *, force: bool = False,
                    limit: int = MAX_NGSPICE_TILE) -> dict[str, float]:
    """Refuse a tile larger than ``limit`` cells per line unless ``force``; returns
    :func:`estimate_cost` either way."""
    est = estimate_cost(rows, cols, n_vectors)
    if max(rows, cols) > limit and not force:
        raise TileTooLarge(
            f"tile {rows}x{cols} is above the ngspice limit of {limit}x{limit} cells: "
            f"estimated {est['time_s'] / 3600:.3g} h, {est['memory_mb'] / 1e3:.3g} GB of "
            f"memory and a {est['netlist_mb']:.3g} MB netlist per tile; give --force to run "
            "it anyway, or use a smaller --tile or --solver mna")
    return est


class NgspiceNetlistError(NgspiceError):
    """ngspice rejected the netlist."""


class NgspiceConvergenceError(NgspiceError):
    """ngspice found no DC solution, even with the convergence aids."""


# ------------------------------------------------------------------ capabilities
@functools.lru_cache(maxsize=None)
def ngspice_info(executable: str = NGSPICE) -> dict[str, Any]:
    """Version and KLU support of the ngspice executable (``ngspice -v``)."""
    exe = shutil.which(executable)
    if exe is None:
        raise NgspiceNotFound(f"ngspice executable {executable!r} not found (hint: install "
                              "ngspice, see README set-up, or set PYSPICE_RRAM_NGSPICE to "
                              "the executable's path)")
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"ngspice-(\d+)", out)
    return {"executable": exe, "version": int(m.group(1)) if m else 0, "klu": "KLU" in out}


def has_klu() -> bool:
    """Whether the installed ngspice supports ``.options klu``."""
    try:
        return bool(ngspice_info()["klu"])
    except NgspiceError:
        return False


# ------------------------------------------------------------------ raw files
def read_raw(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read a real-valued ngspice raw file (binary or ASCII).

    Returns
    -------
    names : list of str
        Vector names in file order (the first is the sweep/scale).
    data : ndarray, shape (n_points, n_vectors)
    """
    blob = Path(path).read_bytes()
    names: list[str] = []
    n_vars = n_points = None
    pos = 0
    binary = None
    while pos < len(blob):
        end = blob.index(b"\n", pos)
        line = blob[pos:end].decode("latin-1")
        pos = end + 1
        if line.startswith("No. Variables:"):
            n_vars = int(line.split(":")[1])
        elif line.startswith("No. Points:"):
            n_points = int(line.split(":")[1])
        elif line.startswith("Flags:") and "complex" in line:
            raise ValueError(f"{path}: complex raw files are not supported")
        elif line.startswith("Variables:"):
            for _ in range(n_vars or 0):
                end = blob.index(b"\n", pos)
                names.append(blob[pos:end].decode("latin-1").split()[1])
                pos = end + 1
        elif line.startswith("Binary:"):
            binary = True
            break
        elif line.startswith("Values:"):
            binary = False
            break
    if n_vars is None or n_points is None or binary is None:
        raise ValueError(f"{path}: not an ngspice raw file")
    if binary:
        data = np.frombuffer(blob, dtype="<f8", offset=pos, count=n_vars * n_points)
        return names, data.reshape(n_points, n_vars).copy()
    # ASCII: "<index>\t<v0>\n\t<v1>..." -- drop the point indices
    toks = blob[pos:].decode("latin-1").split()
    vals, k = [], 0
    while k < len(toks):
        k += 1  # point index
        vals.extend(float(t) for t in toks[k:k + n_vars])
        k += n_vars
    return names, np.asarray(vals).reshape(n_points, n_vars)


# ------------------------------------------------------------------ helpers
def _with_save(netlist: str, sources: list[str]) -> str:
    """Insert ``.save`` of the sense-source currents before the analysis line."""
    saves = [f"i({s})" for s in sources]
    lines = [".save " + " ".join(saves[i:i + 16]) for i in range(0, len(saves), 16)]
    head, sep, tail = netlist.rpartition("\n.dc ")
    return head + "\n" + "\n".join(lines) + sep + tail


def _keep_netlist(netlist: str, workdir: str | Path | None, stem: str) -> Path:
    """Write a failed netlist where the user can find it."""
    d = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="pyspice_rram_ngspice_"))
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{stem}.cir"
    p.write_text(netlist)
    return p


_CONVERGENCE_PAT = re.compile(r"(no convergence|iteration limit|timestep too small|"
                              r"singular matrix|gmin stepping failed|source stepping failed|"
                              r"dc solution failed|failed to converge)", re.I)
_NETLIST_PAT = re.compile(r"(error|unknown subckt|not a valid|could not find|undefined)", re.I)


#: ngspice messages printed while a Newton iterate overshoots (e.g. sinh of a huge
#: argument); they are not fatal when the analysis completes (gmin stepping recovers).
_RECOVERABLE = re.compile(r"^\s*error:\s.*out of range for.*$\n?(^\s*in line.*$\n?)?",
                          re.I | re.M)


def _classify(log: str, got: int, want: int) -> type[NgspiceError] | None:
    if got == want:
        log = _RECOVERABLE.sub("", log)
    if re.search(r"transient op started", log, re.I):
        # ngspice >= 38 falls back to a pseudo-transient 'operating point' when gmin and
        # source stepping fail; its result need not satisfy KCL, so it is not accepted
        return NgspiceConvergenceError
    if got == want and not re.search(r"^\s*error", log, re.I | re.M):
        return None
    if _CONVERGENCE_PAT.search(log):
        return NgspiceConvergenceError
    if got == 0 and _NETLIST_PAT.search(log):
        return NgspiceNetlistError
    return NgspiceConvergenceError if got < want else NgspiceNetlistError


# ------------------------------------------------------------------ batch backend
def run_batch(netlist: str, vectors: list[str], n_points: int, *,
              workdir: str | Path | None = None, timeout: float | None = None,
              stem: str = "tile") -> tuple[np.ndarray, str]:
    """Run ``ngspice -b`` on ``netlist`` and return the saved ``vectors`` (n_points, n).

    ``vectors`` are ngspice vector names (e.g. ``i(vs0)``). Raises :class:`NgspiceError`
    subclasses; the netlist is kept in ``workdir`` (or a fresh temporary directory).
    """
    exe = ngspice_info()["executable"]
    with tempfile.TemporaryDirectory(prefix="pyspice_rram_") as tmp:
        tmp = Path(tmp)
        control = ["", ".control", "set filetype=binary", "run",
                   f"write {tmp / 'out.raw'} " + " ".join(vectors), "quit", ".endc"]
        head, _, _ = netlist.rpartition(".end")
        text = head.rstrip("\n") + "\n".join(control) + "\n.end\n"
        cir = tmp / f"{stem}.cir"
        cir.write_text(text)
        try:
            proc = subprocess.run([exe, "-b", str(cir)], capture_output=True, text=True,
                                  timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired as exc:
            raise NgspiceError(f"ngspice -b timed out after {timeout} s",
                               _keep_netlist(netlist, workdir, stem),
                               (exc.stdout or "") if isinstance(exc.stdout, str) else "") from None
        log = proc.stdout + "\n" + proc.stderr
        raw = tmp / "out.raw"
        data = None
        got = 0
        if raw.exists():
            try:
                names, data = read_raw(raw)
                got = data.shape[0]
            except ValueError:
                data = None
        err = _classify(log, got, n_points)
        if err is None and proc.returncode != 0:
            err = NgspiceError
        if err is not None:
            raise err(f"ngspice -b failed (exit {proc.returncode}, {got}/{n_points} points)",
                      _keep_netlist(netlist, workdir, stem), log)
        # first column is the sweep; map the rest by name
        lower = [n.lower() for n in names]
        cols = []
        for v in vectors:
            key = v.lower()
            alt = key[2:-1] + "#branch" if key.startswith("i(") else key
            cols.append(lower.index(key) if key in lower else lower.index(alt))
        if workdir:
            Path(workdir).mkdir(parents=True, exist_ok=True)
            (Path(workdir) / f"{stem}.cir").write_text(netlist)
        return data[:, cols], log


# ------------------------------------------------------------------ shared backend
def _shared_instance():
    try:
        from PySpice.Spice.NgSpice.Shared import NgSpiceShared
    except ImportError as exc:  # pragma: no cover - PySpice is a dependency
        raise NgspiceNotFound(f"PySpice is not importable: {exc}") from exc
    try:
        return NgSpiceShared.new_instance()
    except OSError as exc:
        raise NgspiceNotFound(
            f"the ngspice shared library could not be loaded ({exc}) (hint: install "
            "libngspice, set NGSPICE_LIBRARY_PATH to its path, or use the batch backend)"
        ) from exc


_SHARED_LOADED = False


def _release(ng) -> None:
    """Remove the loaded circuit and its plots from the shared ngspice."""
    for call in (ng.remove_circuit, ng.destroy):
        try:
            call()
        except Exception:  # noqa: BLE001 - nothing to remove
            pass


def run_shared(netlist: str, vectors: list[str], n_points: int, *,
               workdir: str | Path | None = None, stem: str = "tile") -> tuple[np.ndarray, str]:
    """Run ``netlist`` in the in-process ngspice (PySpice ``NgSpiceShared``).

    ``vectors`` are branch-current vectors ``i(<source>)``. Thread-safe (one lock per
    process: the shared library holds one circuit at a time).
    """
    from PySpice.Spice.NgSpice.Shared import ffi

    with _SHARED_LOCK:
        ng = _shared_instance()
        global _SHARED_LOADED
        if _SHARED_LOADED:  # a previous run failed and left its circuit behind
            _release(ng)
        _SHARED_LOADED = True
        ng.clear_output()
        failed = None
        log = ""
        try:
            ng.load_circuit(netlist)
            log = ng.stdout + "\n" + ng.stderr   # PySpice clears the output per command
            ng.run()
        except Exception as exc:  # noqa: BLE001 - PySpice raises bare errors on bad circuits
            failed = exc
        log += "\n" + ng.stdout + "\n" + ng.stderr
        out = np.full((n_points, len(vectors)), np.nan)
        got = n_points
        for c, v in enumerate(vectors):
            name = (v[2:-1] + "#branch") if v.lower().startswith("i(") else v
            info = ng._ngspice_shared.ngGet_Vec_Info(name.lower().encode("ascii"))
            if info == ffi.NULL or info.v_realdata == ffi.NULL:
                got = 0
                break
            n = int(info.v_length)
            got = min(got, n)
            arr = np.frombuffer(ffi.buffer(info.v_realdata, n * 8), dtype=np.float64)
            out[:min(n, n_points), c] = arr[:n_points]
        err = _classify(log, got, n_points)
        if failed is not None and err is None and got < n_points:
            # PySpice raises on any 'error' text; a complete, clean analysis is accepted
            err = NgspiceNetlistError if got == 0 else NgspiceConvergenceError
        if err is not None:
            raise err(f"ngspice (shared library) failed ({got}/{n_points} points): "
                      f"{failed or ''}".rstrip(": "),
                      _keep_netlist(netlist, workdir, stem), log)
        _release(ng)
        _SHARED_LOADED = False
    if workdir:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        (Path(workdir) / f"{stem}.cir").write_text(netlist)
    return out, log


# ------------------------------------------------------------------ tile solve
def solve_tile(tile: Tile, v_in: Any, direction: str = "forward", *, backend: str = "shared",
               workdir: str | Path | None = None, klu: bool | None = None,
               timeout: float | None = None, info: dict | None = None,
               cell_form: str = "inline") -> np.ndarray:
    """Sensed currents of a tile read with voltages ``v_in``, solved by ngspice.

    Same arguments and result as :func:`pyspice_rram.circuit.mna.solve_tile`.

    Parameters
    ----------
    tile : Tile
    v_in : array_like, shape (n_vectors, n_driven)
        Read voltages (V), one row per input vector; all vectors run in one DC sweep.
    direction : {'forward', 'transposed'}
    backend : {'shared', 'batch'}
        ``'shared'``: PySpice's in-process ngspice shared library; ``'batch'``: an
        ``ngspice -b`` subprocess (use this in worker processes).
    workdir : path, optional
        Where the netlist is written (always on failure: a temporary directory if None).
    klu : bool, optional
        Use ``.options klu``; default: when the installed ngspice has KLU.
    timeout : float, optional
        Wall-clock limit (s) of one ``ngspice -b`` run.
    cell_form : {'inline', 'subckt'}
        Netlist form of model cells (see :func:`~pyspice_rram.circuit.netlist.tile_netlist`).
    info : dict, optional
        Filled with ``netlist`` (text), ``netlist_sha256``, ``options`` (the convergence aid
        that succeeded), ``attempts``, ``wall_s``, ``backend``, ``klu``.

    Returns
    -------
    ndarray, shape (n_vectors, n_sensed)
        Current (A) from each sensed line into its virtual ground.
    """
    check_direction(direction)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    v = tile.check_inputs(v_in, direction)
    if klu is None:
        klu = has_klu()
    sources = sense_source_names(tile, direction)
    vectors = [f"i({s})" for s in sources]
    stem = f"tile_{tile.rows}x{tile.cols}_{direction}"
    last: NgspiceConvergenceError | None = None
    t0 = time.perf_counter()
    for attempt, aids in enumerate(CONVERGENCE_AIDS, start=1):
        netlist = _with_save(tile_netlist(tile, v, direction, klu=klu, options=aids,
                                           cell_form=cell_form), sources)
        try:
            if backend == "batch":
                data, _log = run_batch(netlist, vectors, v.shape[0], workdir=workdir,
                                       timeout=timeout, stem=stem)
            else:
                data, _log = run_shared(netlist, vectors, v.shape[0], workdir=workdir,
                                        stem=stem)
        except NgspiceConvergenceError as exc:
            last = exc
            continue
        if info is not None:
            info.update(netlist=netlist, netlist_sha256=netlist_sha256(netlist), options=aids,
                        attempts=attempt, wall_s=time.perf_counter() - t0, backend=backend,
                        klu=klu, cell_form=cell_form)
        return data
    assert last is not None
    raise last
