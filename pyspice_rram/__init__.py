"""pyspice-rram: from measured RRAM device data to circuit-accurate crossbars to network accuracy.

Layers (each usable alone): :mod:`pyspice_rram.device` (model card, NumPy/ngspice/Verilog-A
forms), :mod:`pyspice_rram.calibration` (loaders, fits, reports), :mod:`pyspice_rram.circuit`
(tiled crossbars, ngspice and MNA solvers), :mod:`pyspice_rram.network` (synapse cells and
training), :mod:`pyspice_rram.surrogate` (tile surrogate trained on ngspice results).
"""

__version__ = "0.1.0"
