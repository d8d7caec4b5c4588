"""Device layer: the Mo/TiOx cell model card and its NumPy, ngspice and Verilog-A forms."""

from .card import PARAMETER_INFO, ModelCard, PulseScheme, area_from_diameter
from .model import (advance, cell_current, cell_didv, conductance_density, rate_depression,
                    rate_potentiation, read_conductance, state_from_conductance, state_rate)

__all__ = [
    "PARAMETER_INFO", "ModelCard", "PulseScheme", "area_from_diameter", "advance", "cell_current",
    "cell_didv", "conductance_density", "rate_depression", "rate_potentiation",
    "read_conductance", "state_from_conductance", "state_rate",
]
