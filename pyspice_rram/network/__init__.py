"""Network layer: MNIST/8x8-digits training with RRAM synapse unit cells.

Modules: :mod:`.data` (data sets), :mod:`.cells` (unit cells, device spec),
:mod:`.kernels` (numba loops), :mod:`.backend` (VMM read models), :mod:`.train` (config,
network, training), :mod:`.history` (HDF5 run store), :mod:`.cli`
(``train``/``reproduce``/``ablation`` subcommands). The figure sweeps and ablation studies of
Choi et al. (2021) are in :mod:`pyspice_rram.paper`.
"""

from .backend import IdealBackend, ReadNoiseBackend, VMMBackend
from .cells import (BinaryPairCell, DeviceSpec, FloatingPointCell, HybridCell,
                    MultiDeviceCell, PairCell, make_cell)
from .train import Network, TrainConfig, train

__all__ = ["BinaryPairCell", "DeviceSpec", "FloatingPointCell", "HybridCell", "IdealBackend",
           "MultiDeviceCell", "Network", "PairCell", "ReadNoiseBackend", "TrainConfig",
           "VMMBackend", "make_cell", "train"]
