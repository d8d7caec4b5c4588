"""Circuit layer: crossbar tiles with IR drop, solved by ngspice and by sparse nodal analysis.

* :mod:`.tile` -- :class:`Tile` (cells, wire/driver/sense resistances) and its topology;
* :mod:`.netlist` -- the ngspice netlist of a tile (many input vectors in one DC sweep);
* :mod:`.ngspice_run` -- ngspice through PySpice's shared library or ``ngspice -b``;
* :mod:`.mna` -- the sparse nodal-analysis reference solver and the ideal product;
* :mod:`.cellspace` -- the cell-space Newton-CG solver (many input vectors per tile, fast);
* :mod:`.mapping` -- weight matrices onto differential / hybrid tile arrays, periphery, ADC;
* :mod:`.parallel` -- many tiles over a process pool or a Dask cluster;
* :mod:`.update` -- transient check of the parallel outer-product update;
* :mod:`.update_mna` -- its IR-drop-aware reference (nodal analysis + exact advance);
* :mod:`.store` -- HDF5 results store;
* :mod:`.cli` -- ``pyspice-rram xbar``.

Sign convention: cell terminal t is on the row line, b on the column line; a sensed output is
the current (A) from the line into its virtual ground.
"""

from .cellspace import CellSpaceSystem
from .cellspace import solve_tile as solve_tile_cellspace
from .mapping import MappedLayer, adc_quantise, disturb_free_voltage, encode_inputs, map_layer
from .mna import TileSystem, ideal_product, transfer_matrix
from .mna import solve_tile as solve_tile_mna
from .netlist import tile_netlist
from .ngspice_run import NgspiceConvergenceError, NgspiceError, NgspiceNetlistError, NgspiceNotFound
from .ngspice_run import solve_tile as solve_tile_ngspice
from .parallel import solve_tiles
from .store import TileResult, load_results, record, save_results
from .tile import Tile, tia_input_resistance, topology
from .update import UpdateResult, update_check
from .update_mna import UpdateReference, update_reference

__all__ = [
    "Tile", "TileSystem", "ideal_product", "transfer_matrix", "solve_tile_mna",
    "solve_tile_ngspice", "tile_netlist", "tia_input_resistance", "topology", "NgspiceError",
    "NgspiceConvergenceError", "NgspiceNetlistError", "NgspiceNotFound",
    "MappedLayer", "map_layer", "encode_inputs", "adc_quantise", "disturb_free_voltage",
    "solve_tiles", "TileResult", "record", "save_results", "load_results", "UpdateResult",
    "update_check", "UpdateReference", "update_reference", "CellSpaceSystem",
    "solve_tile_cellspace",
]
