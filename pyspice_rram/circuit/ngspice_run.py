"""Solve crossbar tiles with ngspice: in-process (PySpice shared library) or ``ngspice -b``.

Both backends run the netlist of :func:`pyspice_rram.circuit.netlist.tile_netlist`: one DC
sweep of an index source applies all input vectors, so the matrix is ordered once per tile.
Only the sense-source branch currents are saved (``.save``), which keeps the sweep small.

The runs go through the simulator layer (:func:`pyspice_rram.spice.runner.run`: its
``'shared'`` and ``'batch'`` modes, time limit, temporary files removed on every exit path);
this module adds what is particular to a tile: the ``.save`` of the sense currents, the point
count of the sweep and the convergence-aid retries. Failures are the layer's exceptions
(re-exported here under the names this module always had); they carry the kept netlist and
the ngspice log:

* :class:`NgspiceNotFound` -- no ``ngspice`` executable / no ``libngspice`` shared library;
* :class:`NgspiceNetlistError` -- ngspice rejected the netlist;
* :class:`NgspiceTimeout` -- the run passed its time limit;
* :class:`NgspiceConvergenceError` -- no solution for every input vector, after the
  convergence aids of :data:`pyspice_rram.circuit.netlist.CONVERGENCE_AIDS` (more DC
  iterations, gmin stepping, source stepping) were retried.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from ..spice import runner as _runner
from ..spice.errors import (NgspiceConvergenceError, NgspiceError, NgspiceFailed,
                            NgspiceNetlistError, NgspiceNotFound, NgspiceTimeout)
from ..spice.format import insert_before, save_lines
from ..spice.raw import RawPlot, read_raw as _read_plots
from ..spice.runner import has_klu, ngspice_info
from .netlist import CONVERGENCE_AIDS, netlist_sha256, sense_source_names, tile_netlist
from .tile import Tile, check_direction

#: Tile backends: the PySpice shared library or ``ngspice -b`` (the runner's two modes).
BACKENDS = ("shared", "batch")


class TileTooLarge(UserInputError):
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


# ------------------------------------------------------------------ raw files
def read_raw(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Vector names and values (n_points, n_vectors) of the last plot of a real-valued
    rawfile (binary or ASCII): :func:`pyspice_rram.spice.raw.read_raw` in the form the tile
    code uses."""
    plot = _read_plots(path)[-1]
    if plot.is_complex:
        raise UserInputError(f"{path}: complex rawfiles are not supported here")
    return list(plot.names), plot.data


# ------------------------------------------------------------------ the two backends
def _with_save(netlist: str, sources: list[str]) -> str:
    """Insert ``.save`` of the sense-source currents before the analysis line."""
    return insert_before(netlist, save_lines([f"i({s})" for s in sources]), ".dc ")


def _run(netlist: str, vectors: list[str], n_points: int, mode: str, workdir, timeout,
         stem: str) -> tuple[np.ndarray, str]:
    res = _runner.run(netlist, mode=mode, vectors=vectors, n_points=n_points,
                      timeout=timeout, keep_dir=workdir, stem=stem, raw_format="binary")
    return res.plot.columns(vectors)[:n_points], res.log


def run_batch(netlist: str, vectors: list[str], n_points: int, *,
              workdir: str | Path | None = None, timeout: float | None = None,
              stem: str = "tile") -> tuple[np.ndarray, str]:
    """Run ``ngspice -b`` on ``netlist`` and return the saved ``vectors`` (n_points, n)
    and ngspice's output.

    ``vectors`` are ngspice vector names (e.g. ``i(vs0)``). Raises :class:`NgspiceError`
    subclasses (:func:`pyspice_rram.spice.runner.run`); the netlist is kept in ``workdir``
    (or, on failure, a fresh temporary directory).
    """
    return _run(netlist, vectors, n_points, "batch", workdir, timeout, stem)


def run_shared(netlist: str, vectors: list[str], n_points: int, *,
               workdir: str | Path | None = None, timeout: float | None = None,
               stem: str = "tile") -> tuple[np.ndarray, str]:
    """Run ``netlist`` in the in-process ngspice (PySpice's shared library); same arguments
    and result as :func:`run_batch`. Thread-safe (one circuit at a time per process)."""
    return _run(netlist, vectors, n_points, "shared", workdir, timeout, stem)


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
        Wall-clock limit (s) of one ngspice run (either backend); when None, the larger of
        :data:`pyspice_rram.spice.runner.DEFAULT_TIMEOUT_S` (1 h) and ten times
        :func:`estimate_cost`'s time, so that a large tile run with ``force`` is not cut.
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
        raise UserInputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    v = tile.check_inputs(v_in, direction)
    if klu is None:
        klu = has_klu()
    if timeout is None:
        timeout = max(_runner.DEFAULT_TIMEOUT_S,
                      10.0 * estimate_cost(tile.rows, tile.cols, v.shape[0])["time_s"])
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
                                        timeout=timeout, stem=stem)
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


__all__ = ["BACKENDS", "MAX_NGSPICE_TILE", "NETLIST_BYTES_PER_CELL", "NGSPICE_BYTES_PER_CELL",
           "TileTooLarge", "estimate_cost", "check_tile_size", "solve_tile", "run_batch",
           "run_shared", "read_raw", "RawPlot", "has_klu", "ngspice_info",
           # the simulator layer's errors, under the names this module always had
           "NgspiceError", "NgspiceNotFound", "NgspiceFailed", "NgspiceTimeout",
           "NgspiceNetlistError", "NgspiceConvergenceError"]
