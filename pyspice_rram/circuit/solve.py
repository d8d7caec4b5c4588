"""One entry point to read a tile or a mapped layer with any solver: :func:`solve`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from .mapping import MappedLayer
from .tile import Tile

#: Solvers of :func:`solve`.
SOLVERS = ("mna", "cellspace", "ngspice", "ideal")


def solve(circuit: Tile | MappedLayer, v_in: Any, direction: str = "forward", *,
          solver: str = "mna", **options: Any) -> np.ndarray:
    """Sensed currents (A) of a crossbar tile or a mapped layer read with voltages ``v_in``.

    Parameters
    ----------
    circuit : Tile or MappedLayer
        One tile (:class:`~pyspice_rram.circuit.tile.Tile`) or a weight matrix mapped onto
        tiles (:func:`~pyspice_rram.circuit.mapping.map_layer`).
    v_in : array_like, shape (n_vectors, n_driven) or (n_driven,)
        Read voltages (V) of the driven lines, one row per input vector: the rows of the tile
        (layer inputs) for ``'forward'``, its columns (layer outputs) for ``'transposed'``.
    direction : {'forward', 'transposed'}
        ``'forward'``: rows driven, columns sensed; ``'transposed'``: the other way round.
    solver : {'mna', 'cellspace', 'ngspice', 'ideal'}
        ``'mna'``: sparse nodal analysis (:func:`~pyspice_rram.circuit.mna.solve_tile`);
        ``'cellspace'``: the cell-space Newton-CG solver, fast for many input vectors
        (:func:`~pyspice_rram.circuit.cellspace.solve_tile`, the same circuit to <= 1e-10);
        ``'ngspice'``: the circuit simulator
        (:func:`~pyspice_rram.circuit.ngspice_run.solve_tile`); ``'ideal'``: the same cells
        without wire, driver or sense resistance.
    **options
        Passed on: to the tile solver for a :class:`Tile` (e.g. ``backend``, ``timeout`` for
        ngspice, ``rtol`` for MNA), to :meth:`MappedLayer.read` for a layer (e.g. ``workers``,
        ``progress``).

    Returns
    -------
    ndarray, shape (n_vectors, n_sensed)
        Current (A) from each sensed line into its virtual ground (a tile), or the combined
        output currents of the layer (differential / hybrid periphery applied).

    Raises
    ------
    ConfigError
        For an unknown ``solver`` or a ``circuit`` that is neither a tile nor a layer.
    """
    if solver not in SOLVERS:
        raise ConfigError(f"solver = {solver!r}: choose one of {', '.join(SOLVERS)}")
    if isinstance(circuit, MappedLayer):
        return circuit.read(v_in, direction, solver=solver, **options)
    if not isinstance(circuit, Tile):
        raise ConfigError(f"circuit: a Tile or a MappedLayer (map_layer) is needed, not "
                          f"{type(circuit).__name__}")
    if solver == "mna":
        from .mna import solve_tile
    elif solver == "cellspace":
        from .cellspace import solve_tile
    elif solver == "ngspice":
        from .ngspice_run import solve_tile
    else:
        from .mna import ideal_product as solve_tile
    return solve_tile(circuit, v_in, direction, **options)
