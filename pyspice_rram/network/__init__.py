"""Network layer: MNIST/8x8-digits training with RRAM synapse unit cells.

Modules: :mod:`.data` (data sets), :mod:`.cells` (unit cells, device spec),
:mod:`.layer` (typed layer state), :mod:`.rng` / :mod:`.pulses` / :mod:`.update` (numba
kernels: random numbers, pulse model, event application), :mod:`.backend` (tile-backend
protocol: reads and updates), :mod:`.sgd` (the one SGD loop), :mod:`.train` (config,
network, training), :mod:`.history` (HDF5 run store), :mod:`.experiments` (figures and
sweeps of Choi et al. 2021), :mod:`.cli` (``train``/``reproduce`` subcommands).
"""

from .backend import IdealBackend, ReadNoiseBackend, TileBackend
from .cells import (BinaryPairCell, DeviceSpec, FloatingPointCell, HybridCell,
                    MultiDeviceCell, PairCell, make_cell)
from .train import Network, TrainConfig, train

__all__ = ["BinaryPairCell", "DeviceSpec", "FloatingPointCell", "HybridCell", "IdealBackend",
           "MultiDeviceCell", "Network", "PairCell", "ReadNoiseBackend", "TileBackend",
           "TrainConfig", "make_cell", "train", "demo"]


def demo(card_or_none=None, outdir="out/network", *, epochs: int | None = None,
         progress: bool = True, mnist=None):
    """Main-job demo: FP, single and hybrid training, accuracy figure + HDF5 histories.

    See :func:`.experiments.demo`; 8x8 digits by default (seconds), the paper's MNIST
    network in setting B (stochastic rounding) when ``mnist`` (a directory of the IDX files)
    is given.
    """
    from .experiments import demo as _demo

    return _demo(card_or_none, outdir, epochs=epochs, progress=progress, mnist=mnist)
