"""Solve many tiles: in-process, over a local process pool, or on a Dask cluster.

A *task* is ``(tile, v_in, direction)``; :func:`solve_tiles` returns the sensed currents of
every task in order, with a tqdm progress bar over tiles. ngspice tasks in worker processes
use the ``ngspice -b`` backend (each worker runs its own ngspice subprocess); the same task
function runs on a Dask ``distributed`` cluster when a scheduler address is given (Dask is an
optional dependency, imported only then: ``pip install 'pyspice-rram[dask]'``).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Iterable, Sequence

import numpy as np

from .tile import Tile
from ..errors import ConfigError

SOLVERS = ("ngspice", "mna", "cellspace", "ideal")

Task = tuple[Tile, np.ndarray, str]


def solve_task(task: Task, solver: str = "ngspice", backend: str = "batch",
               workdir: str | None = None, options: dict[str, Any] | None = None
               ) -> tuple[np.ndarray, dict[str, Any]]:
    """Solve one task; returns ``(currents, info)`` with ``info['wall_s']`` (and, for ngspice,
    the netlist hash, options and attempts). ``options``: keyword arguments of the
    cell-space solver (:class:`~pyspice_rram.circuit.cellspace.CellSpaceSystem`)."""
    tile, v_in, direction = task
    info: dict[str, Any] = {"solver": solver}
    t0 = time.perf_counter()
    if solver == "ngspice":
        from .ngspice_run import solve_tile

        out = solve_tile(tile, v_in, direction, backend=backend, workdir=workdir, info=info)
        info.pop("netlist", None)
    elif solver == "mna":
        from .mna import solve_tile

        out = solve_tile(tile, v_in, direction)
    elif solver == "cellspace":
        from .cellspace import solve_tile

        out = solve_tile(tile, v_in, direction, **(options or {}))
    elif solver == "ideal":
        from .mna import ideal_product

        out = ideal_product(tile, v_in, direction)
    else:
        raise ConfigError(f"solver must be one of {SOLVERS}, got {solver!r}")
    info["wall_s"] = time.perf_counter() - t0
    return out, info


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="tile", disable=not enabled, leave=False)


def solve_tiles(tasks: Sequence[Task], *, solver: str = "ngspice", backend: str = "batch",
                workers: int | None = 1, scheduler: str | None = None,
                progress: bool = False, desc: str = "tiles",
                infos: list | None = None, options: dict[str, Any] | None = None
                ) -> list[np.ndarray]:
    """Sensed currents of every task, in task order.

    Parameters
    ----------
    tasks : sequence of (Tile, v_in, direction)
    solver : {'ngspice', 'mna', 'cellspace', 'ideal'}
        ``'cellspace'`` (:mod:`.cellspace`) always runs in this process: it is parallel over
        input vectors in numba threads.
    backend : {'batch', 'shared'}
        ngspice backend for in-process solving; worker processes and Dask always use
        ``'batch'``.
    workers : int or None
        Local worker processes (1 = in-process; None = ``os.cpu_count()``).
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:8786``); the tasks then run on
        that cluster instead of the local pool.
    progress : bool
        Show a tqdm progress bar over tiles.
    infos : list, optional
        Receives one info dict per task (timings, netlist hash, ...).
    options : dict, optional
        Keyword arguments of the cell-space solver.
    """
    if solver not in SOLVERS:
        raise ConfigError(f"solver must be one of {SOLVERS}, got {solver!r}")
    tasks = list(tasks)
    n = len(tasks)
    results: list[Any] = [None] * n
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ConfigError("workers must be >= 1")
    bar = _progress(n, desc, progress)
    try:
        if scheduler:
            try:
                from dask.distributed import Client, as_completed as dask_completed
            except ImportError as exc:
                raise ImportError("a Dask scheduler was given but dask[distributed] is not "
                                  "installed: pip install 'pyspice-rram[dask]'") from exc
            with Client(scheduler) as client:
                futures = client.map(solve_task, tasks, solver=solver, backend="batch",
                                     pure=False)
                index = {f.key: k for k, f in enumerate(futures)}
                for fut in dask_completed(futures):
                    results[index[fut.key]] = fut.result()
                    bar.update()
        elif workers == 1 or n <= 1 or solver in ("ideal", "cellspace"):
            for k, task in enumerate(tasks):
                results[k] = solve_task(task, solver, backend, options=options)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(workers, n)) as pool:
                futs = {pool.submit(solve_task, task, solver, "batch"): k
                        for k, task in enumerate(tasks)}
                for fut in as_completed(futs):
                    results[futs[fut]] = fut.result()
                    bar.update()
    finally:
        bar.close()
    if infos is not None:
        infos.extend(r[1] for r in results)
    return [r[0] for r in results]


def chunks(n: int, size: int) -> Iterable[slice]:
    """Slices ``[0:size], [size:2 size], ...`` covering ``range(n)``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
