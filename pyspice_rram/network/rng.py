"""Random numbers of the training kernels: xoshiro256+, SplitMix64 and a table normal.

The in-loop generator is xoshiro256+ with a 4 x uint64 state array seeded from
``(seed, stream)`` by SplitMix64 (:func:`seed_state`); training epoch ``e`` of a run with seed
``s`` uses ``seed_state(s, e)``. Hot loops keep the state in four local scalars
(:func:`xoshiro_step`) and write it back at the end (numba inserts reference-count
operations around calls that take arrays, ~100 ns each inside an event loop). SIMD loops
draw from SplitMix64 streams (:func:`splitmix`) seeded by one xoshiro draw: the q-th output
of such a stream depends on q only, so the loop has no loop-carried state.

Normal deviates come from an inverse-CDF table of 65,536 equiprobable quantiles
(:data:`NORMAL_TABLE`, 16 random bits, tails cut at 4.3 sigma): ample for pulse noise and
~10x faster than Box-Muller.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def seed_state(seed: int, stream: int = 0) -> np.ndarray:
    """xoshiro256+ state (4 x uint64) from ``(seed, stream)`` through splitmix64."""
    mask = (1 << 64) - 1
    x = (int(seed) * 0x9E3779B97F4A7C15 + int(stream) * 0xD1B54A32D192ED03 + 1) & mask
    out = []
    for _ in range(4):
        x = (x + 0x9E3779B97F4A7C15) & mask
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return np.array(out, dtype=np.uint64)


def _normal_table(bits: int = 16) -> np.ndarray:
    """Standard-normal quantiles at the midpoints of 2**bits equal-probability bins."""
    from scipy.special import ndtri

    n = 1 << bits
    return ndtri((np.arange(n) + 0.5) / n)


#: Inverse-CDF table of :func:`normal` (65,536 equiprobable quantiles, |z| <= 4.3).
NORMAL_TABLE = _normal_table()
#: the same quantiles in float32 (the fused stochastic-rounding rows work in float32)
NORMAL_TABLE32 = NORMAL_TABLE.astype(np.float32)


@njit(cache=True, inline="always")
def next_u64(s):
    """xoshiro256+ step on the state array ``s``: returns a uint64, advances ``s`` in place."""
    result = s[0] + s[3]
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = (s[3] << np.uint64(45)) | (s[3] >> np.uint64(19))
    return result


@njit(cache=True, inline="always")
def normal(s):
    """Standard normal deviate by table lookup (16 random bits of one xoshiro draw)."""
    return NORMAL_TABLE[np.int64(next_u64(s) >> np.uint64(48))]


@njit(cache=True, inline="always")
def xoshiro_step(s0, s1, s2, s3):
    """xoshiro256+ on scalar state: returns ``(u64, s0, s1, s2, s3)``."""
    result = s0 + s3
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << np.uint64(45)) | (s3 >> np.uint64(19))
    return result, s0, s1, s2, s3


@njit(cache=True, inline="always")
def u01(r):
    """Uniform float in [0, 1) from the top 53 bits of the uint64 ``r``."""
    return float(r >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def table_normal(r):
    """Standard normal deviate from the top 16 bits of the uint64 ``r``."""
    return NORMAL_TABLE[np.int64(r >> np.uint64(48))]


@njit(cache=True, inline="always")
def splitmix_at(seed, q):
    """Output ``q`` (>= 1) of the SplitMix64 stream started at state ``seed``: depends on
    ``q`` only, so loops over ``q`` carry no state and vectorise."""
    z = seed + np.uint64(q) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def splitmix(x):
    """SplitMix64 output for state ``x`` (after its increment)."""
    return splitmix_at(x, 1)


@njit(cache=True, inline="always")
def popcount(x):
    """Number of set bits of a uint64 (pulse coincidences of two pulse trains)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))
