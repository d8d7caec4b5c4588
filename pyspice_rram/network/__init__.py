"""Network layer: MNIST/8x8-digits training with RRAM synapse unit cells.

Modules: :mod:`.data` (data sets), :mod:`.cells` (unit cells, device spec),
:mod:`.layer` (typed layer state), :mod:`.rng` / :mod:`.pulses` / :mod:`.update` (numba
kernels: random numbers, pulse model, event application), :mod:`.backend` (tile-backend
protocol: reads and updates), :mod:`.sgd` (the one SGD loop), :mod:`.circuit_spec` (the crossbar seen by training,
the ``[circuit]`` table), :mod:`.train` (config,
network, training), :mod:`.history` (HDF5 run store), :mod:`.cli`
(``train``/``reproduce``/``ablation`` subcommands). The figure sweeps and ablation studies of
Choi et al. (2021) are in :mod:`pyspice_rram.paper`.
"""

from .backend import IdealBackend, ReadNoiseBackend, TileBackend
from .circuit_spec import CircuitSpec
from .cells import (BinaryPairCell, DeviceSpec, FloatingPointCell, HybridCell,
                    MultiDeviceCell, PairCell, make_cell)
from .train import Network, TrainConfig, train

__all__ = ["BinaryPairCell", "CircuitSpec", "DeviceSpec", "FloatingPointCell", "HybridCell", "IdealBackend",
           "MultiDeviceCell", "Network", "PairCell", "ReadNoiseBackend", "TileBackend",
           "TrainConfig", "make_cell", "train"]
