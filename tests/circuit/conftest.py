"""Shared fixtures of the circuit-layer tests."""

import numpy as np
import pytest

from pyspice_rram.device import ModelCard


@pytest.fixture(scope="session")
def card() -> ModelCard:
    """The reference Mo/TiOx card (1 µm cell: 5-50 µS low-field)."""
    return ModelCard.reference()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)
