"""Pulse response of one device of a synapse (state ``s`` in [0, 1] of its range).

Pulse response of a device with N states and nonlinearity beta (potentiation)::

    x(n) = (1 - exp(-beta n / N)) / (1 - exp(-beta))      (x(n) = n / N for beta = 0)

so that from state s, m pulses give ``s' = (1 - (1 - s c) exp(-beta m / N)) / c`` with
``c = 1 - exp(-beta)``. Cycle-to-cycle noise adds ``c2c * sqrt(m) * mu * z`` (z ~ N(0, 1),
mu the mean step per pulse) to the change: a Gaussian δ/μ on every pulse. Depression is the
mirror image (``1 - s``) with ``beta_d``.
"""

from __future__ import annotations

import math

from numba import njit

from .jitcache import key_caches
from .rng import normal


@njit(cache=True, inline="always")
def pot_mean(s, m, n_states, beta):
    """Mean state change of ``m`` potentiation pulses from state ``s`` (no noise, no clip)."""
    if abs(beta) < 1e-9:
        return m / n_states
    c = 1.0 - math.exp(-beta)
    return (1.0 - (1.0 - s * c) * math.exp(-beta * m / n_states)) / c - s


@njit(cache=True, inline="always")
def pot_noisy(s, m, n_states, beta, c2c, z):
    """State after ``m`` pulses with noise ``c2c * mu * sqrt(m) * z``, clipped to [0, 1]."""
    mean = pot_mean(s, m, n_states, beta)
    d = mean
    if c2c > 0.0:
        if m == 1:
            d += c2c * mean * z
        else:
            d += c2c * (mean / math.sqrt(m)) * z
    s2 = s + d
    if s2 > 1.0:
        s2 = 1.0
    elif s2 < 0.0:
        s2 = 0.0
    return s2


@njit(cache=True)
def potentiate(s, m, n_states, beta, c2c, rng):
    """State after ``m`` > 0 potentiation pulses from ``s`` (clipped to [0, 1]).

    Change ``pot_mean(s, m) + c2c * (pot_mean / m) * sqrt(m) * z``: a Gaussian δ/μ of
    ``c2c`` on each of the ``m`` pulses (``z`` from the xoshiro state ``rng``).
    """
    z = normal(rng) if c2c > 0.0 else 0.0
    return pot_noisy(s, m, n_states, beta, c2c, z)


@njit(cache=True)
def depress(s, m, n_states, beta, c2c, rng):
    """State after ``m`` > 0 depression pulses (mirror of :func:`potentiate`)."""
    return 1.0 - potentiate(1.0 - s, m, n_states, beta, c2c, rng)


@njit(cache=True, inline="always")
def pulses_for_state(s, n_states, beta):
    """Pulses from 0 that reach state ``s``: inverse of x(n)."""
    if abs(beta) < 1e-9:
        return s * n_states
    c = 1.0 - math.exp(-beta)
    arg = 1.0 - s * c
    if arg <= 1e-12:
        arg = 1e-12
    return -n_states / beta * math.log(arg)


key_caches(globals())   # recompile when any kernel source changes (.jitcache)
