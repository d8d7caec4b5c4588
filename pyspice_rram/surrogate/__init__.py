"""Tile surrogate: a physics-informed, ngspice-fitted model of crossbar reads with IR drop.

:mod:`.model` (the surrogate), :mod:`.dataset` (training data from ngspice / MNA),
:mod:`.fit` (least-squares fit with report), :mod:`.validate` (held-out errors, figures),
:mod:`.backend` (tile backend of the training layer), :mod:`.cli` (``pyspice-rram surrogate``
and ``pyspice-rram check``).
"""

from .model import SurrogateValidityError, TileSurrogate

__all__ = ["TileSurrogate", "SurrogateValidityError"]
