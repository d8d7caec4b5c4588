"""Pulse-train simulation of device populations (NumPy form), for fitting and Monte Carlo.

Each pulse holds a constant voltage, so the state is advanced with the exact solution of
the model ODE (:func:`pyspice_rram.device.model.advance`); the cell is read after every
pulse. Two kinds of randomness, both from the card:

* cycle-to-cycle: the switching rate of every pulse of every device is scaled by
  ``kappa ~ N(1, c2c_sigma)`` clipped at 0 (δ/μ of the step per pulse);
* device-to-device: per device, the conductance (G_min and G_max together, an effective-area
  spread) is scaled by a log-normal factor
  ``exp(N(0, d2d_g_sigma))`` and ``V_p``, ``V_d`` are shifted by ``N(0, d2d_v_sigma)``.

Cost is a few NumPy operations per pulse over all devices: 1000 devices x 1000 pulses
take well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .card import ModelCard
from .model import advance, read_conductance
from ..errors import UserInputError


@dataclass
class DevicePopulation:
    """Per-device parameters drawn from the card's device-to-device spread.

    Attributes
    ----------
    area : (n,) array, m²
    g_scale : (n,) array, multiplies the conductance range (1 = nominal)
    v_p, v_d : (n,) arrays, V
    """

    area: np.ndarray
    g_scale: np.ndarray
    v_p: np.ndarray
    v_d: np.ndarray

    @property
    def n(self) -> int:
        return self.area.size

    @classmethod
    def nominal(cls, card: ModelCard, area: float | np.ndarray, n: int = 1) -> "DevicePopulation":
        """``n`` identical devices with the card's nominal parameters."""
        area = np.broadcast_to(np.asarray(area, float), (n,)).copy()
        return cls(area, np.ones(n), np.full(n, card.v_p), np.full(n, card.v_d))

    @classmethod
    def sample(cls, card: ModelCard, area: float | np.ndarray, n: int,
               rng: np.random.Generator | int | None = None) -> "DevicePopulation":
        """Draw ``n`` devices with the card's device-to-device spread."""
        rng = np.random.default_rng(rng)
        area = np.broadcast_to(np.asarray(area, float), (n,)).copy()
        g_scale = np.exp(rng.normal(0.0, card.statistic("d2d_g_sigma"), n))
        v_p = card.v_p + rng.normal(0.0, card.statistic("d2d_v_sigma"), n)
        v_d = card.v_d + rng.normal(0.0, card.statistic("d2d_v_sigma"), n)
        return cls(area, g_scale, v_p, v_d)


@dataclass
class PulseTrainResult:
    """States and read conductances before and after each pulse.

    Attributes
    ----------
    x : (n_devices, n_pulses + 1) array, state (column 0 = before the first pulse)
    g : (n_devices, n_pulses + 1) array, read conductance in S at ``v_read``
    v_pulse, t_pulse : (n_pulses,) arrays of the applied amplitudes (V) and widths (s)
    """

    x: np.ndarray
    g: np.ndarray
    v_pulse: np.ndarray
    t_pulse: np.ndarray


def simulate_pulse_train(card: ModelCard, v_pulse, t_pulse, *, area: float | np.ndarray | None = None,
                         n_devices: int = 1, x0: float | np.ndarray = 0.0,
                         devices: DevicePopulation | None = None, c2c: bool = True,
                         rng: np.random.Generator | int | None = None,
                         v_read: float | None = None) -> PulseTrainResult:
    """Apply a pulse train to a population of devices and read after every pulse.

    Parameters
    ----------
    card : ModelCard
    v_pulse, t_pulse : array_like or float
        Amplitude (V) and width (s) of each pulse (broadcast to a common length).
    area : float or (n,) array, optional
        Device area (m²); ``card.area_ref`` by default. Ignored if ``devices`` is given.
    n_devices : int
        Population size when ``devices`` is not given (nominal devices, no d2d spread).
    x0 : float or (n,) array
        Initial state.
    devices : DevicePopulation, optional
        Per-device parameters (e.g. from :meth:`DevicePopulation.sample`).
    c2c : bool
        Apply cycle-to-cycle noise ``kappa ~ N(1, card.c2c_sigma)`` per pulse.
    rng : Generator or seed
    v_read : float, optional
        Read voltage (V); the card's scheme by default.
    """
    v_pulse, t_pulse = np.broadcast_arrays(np.atleast_1d(np.asarray(v_pulse, float)),
                                           np.atleast_1d(np.asarray(t_pulse, float)))
    if np.any(t_pulse < 0) or not np.all(np.isfinite(v_pulse)):
        raise UserInputError("pulse widths must be >= 0 and amplitudes finite")
    rng = np.random.default_rng(rng)
    if devices is None:
        devices = DevicePopulation.nominal(card, card.area_ref if area is None else area, n_devices)
    n, m = devices.n, v_pulse.size
    x = np.empty((n, m + 1))
    x[:, 0] = np.clip(np.broadcast_to(np.asarray(x0, float), (n,)), 0.0, 1.0)
    sigma = card.statistic("c2c_sigma") if c2c else 0.0
    for j in range(m):
        kappa = np.clip(1.0 + sigma * rng.standard_normal(n), 0.0, None) if sigma > 0 else 1.0
        x[:, j + 1] = advance(x[:, j], v_pulse[j], t_pulse[j], card, kappa=kappa,
                              v_p=devices.v_p, v_d=devices.v_d)
    g = read_conductance(x, devices.area[:, None], card, v_read) * devices.g_scale[:, None]
    return PulseTrainResult(x=x, g=g, v_pulse=v_pulse.copy(), t_pulse=t_pulse.copy())


def potentiation_depression_train(n_p: int, n_d: int, cycles: int, v_set: float, t_set: float,
                                  v_reset: float, t_reset: float) -> tuple[np.ndarray, np.ndarray]:
    """Amplitudes and widths of ``cycles`` x (``n_p`` set pulses + ``n_d`` reset pulses).

    ``n_d = 1`` with a strong ``v_reset`` is the optimised scheme of Choi et al. Fig. 3E
    (50 potentiation pulses + 1 reset); ``n_p = n_d = 100`` is the cycling of Fig. 3C.
    """
    one_v = np.r_[np.full(n_p, v_set), np.full(n_d, v_reset)]
    one_t = np.r_[np.full(n_p, t_set), np.full(n_d, t_reset)]
    return np.tile(one_v, cycles), np.tile(one_t, cycles)
