"""pyspice-rram: from measured RRAM device data to circuit-accurate crossbars to network accuracy.

``import pyspice_rram as pr`` gives the public API (docs/api.md), loaded on first use (PEP 562),
so that importing the package stays fast:

* data and fit: :func:`load_dataset`, :func:`fit` (in memory, returns a :class:`FitResult`),
  :data:`REFERENCE_DATASET` (the embedded synthetic Mo/TiOx data set), :func:`make_reference`
  and :class:`ReferenceConfig` (its generator);
* device: :class:`ModelCard`;
* circuit: :class:`Tile`, :func:`map_layer` / :class:`MappedLayer`, :func:`tile_netlist`,
  :func:`solve` (``solver='mna' | 'ngspice' | 'ideal'``);
* surrogate: :class:`TileSurrogate`, :func:`generate_surrogate_data` with
  :class:`SurrogateDataSpec`, :func:`fit_surrogate`, :class:`SurrogateBackend`,
  :class:`MNABackend` (training through the circuit, small networks);
* network: :class:`TrainConfig`, :func:`train`;
* errors: :class:`PyspiceRramError` and :class:`DataError`, :class:`ConfigError`,
  :class:`SimulatorError`, :class:`ValidityError`.

Layers (each usable alone): :mod:`pyspice_rram.device` (model card, NumPy/ngspice/Verilog-A
forms), :mod:`pyspice_rram.calibration` (loaders, fits, reports), :mod:`pyspice_rram.circuit`
(tiled crossbars, ngspice and MNA solvers), :mod:`pyspice_rram.surrogate` (tile surrogate
trained on ngspice results), :mod:`pyspice_rram.network` (synapse cells and training);
:mod:`pyspice_rram.paper` holds the seed paper's experiments on top of them.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> where it lives: ``(module, attribute)`` candidates, the first that exists
#: wins (a candidate that turns out to be a module, not the object, is skipped).
_API: dict[str, tuple[tuple[str, str], ...]] = {
    # data set and fit
    "load_dataset": (("pyspice_rram.calibration", "load_dataset"),),
    "fit": (("pyspice_rram.calibration", "fit"),),
    "FitResult": (("pyspice_rram.calibration", "FitResult"),),
    "REFERENCE_DATASET": (("pyspice_rram.calibration.reference", "DEFAULT_DIR"),),
    "make_reference": (("pyspice_rram.calibration.reference", "make_reference"),),
    "ReferenceConfig": (("pyspice_rram.calibration.reference", "ReferenceConfig"),),
    # device
    "ModelCard": (("pyspice_rram.device.card", "ModelCard"),),
    # circuit
    "Tile": (("pyspice_rram.circuit.tile", "Tile"),),
    "map_layer": (("pyspice_rram.circuit.mapping", "map_layer"),),
    "MappedLayer": (("pyspice_rram.circuit.mapping", "MappedLayer"),),
    "tile_netlist": (("pyspice_rram.circuit.netlist", "tile_netlist"),),
    "solve": (("pyspice_rram.circuit.solve", "solve"),),
    # surrogate
    "TileSurrogate": (("pyspice_rram.surrogate.model", "TileSurrogate"),),
    "SurrogateDataSpec": (("pyspice_rram.surrogate.dataset", "DataSpec"),),
    "generate_surrogate_data": (("pyspice_rram.surrogate.dataset", "generate"),),
    "fit_surrogate": (("pyspice_rram.surrogate.fit", "fit_surrogate"),),
    "SurrogateBackend": (("pyspice_rram.surrogate.backend", "SurrogateBackend"),),
    "MNABackend": (("pyspice_rram.surrogate.mna_backend", "MNABackend"),),
    # network
    "TrainConfig": (("pyspice_rram.network.train", "TrainConfig"),),
    "CircuitSpec": (("pyspice_rram.network.circuit_spec", "CircuitSpec"),),
    "train": (("pyspice_rram.network.train", "train"),),
    # errors
    "PyspiceRramError": (("pyspice_rram.errors", "PyspiceRramError"),),
    "DataError": (("pyspice_rram.errors", "DataError"),),
    "ConfigError": (("pyspice_rram.errors", "ConfigError"),),
    "SimulatorError": (("pyspice_rram.errors", "SimulatorError"),),
    "ValidityError": (("pyspice_rram.errors", "ValidityError"),),
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> object:
    """Load a public name on first use (PEP 562) and keep it in the module namespace."""
    candidates = _API.get(name)
    if candidates is None:
        raise AttributeError(f"module 'pyspice_rram' has no attribute {name!r}")
    for module, attr in candidates:
        obj = getattr(importlib.import_module(module), attr, None)
        if obj is not None and not isinstance(obj, type(importlib)):
            globals()[name] = obj
            return obj
    raise AttributeError(f"pyspice_rram.{name}: none of {candidates} provides it")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
