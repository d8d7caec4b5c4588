"""Numba-compiled kernels: random numbers, pulse response, outer-product updates, training loop.

Everything in here works on plain arrays so that it compiles in ``nopython`` mode; the
classes in :mod:`.cells` build those arrays and document the physics. Layer arrays
(``in`` counts the bias row, inputs are row-major ``(in, out)`` so that one input drives one
contiguous crossbar row):

=========  ====================  ========================================================
``Wa``     (in, out) float32     analog weight realised by the cell
``Wr``     (in, out) float32     weight seen by a read (``Wa``; ``s sign(Wa)`` for 2T2R)
``S``      (A, 2, in, out) f32   device state in [0, 1] of array ``a``, device +/- (0/1)
``G0``     (A, 2, in, out) f32   device G_min in units of the nominal range G_max - G_min
``GR``     (A, 2, in, out) f32   device range (G_max - G_min) in units of the nominal range
``gain``   (A,) float64          weight per unit nominal range of array ``a`` (w_max / k_a)
``ip``     int64                 integer parameters, see ``IP_*``
``fp``     (A, N_FP) float64     float parameters per array, see ``FP_*``
``stats``  (A, 3) int64          per array: pairs updated, pulses, refreshes
=========  ====================  ========================================================

Weight of a synapse::

    W = sum_a gain[a] * [(G0[a,0] + S[a,0] GR[a,0]) - (G0[a,1] + S[a,1] GR[a,1])]

Pulse response of a device with N states and nonlinearity beta (potentiation)::

    x(n) = (1 - exp(-beta n / N)) / (1 - exp(-beta))      (x(n) = n / N for beta = 0)

so that from state s, m pulses give ``s' = (1 - (1 - s c) exp(-beta m / N)) / c`` with
``c = 1 - exp(-beta)``. Cycle-to-cycle noise adds ``c2c * sqrt(m) * mu * z`` (z ~ N(0, 1),
mu the mean step per pulse) to the change: a Gaussian δ/μ on every pulse. Depression is the
mirror image (``1 - s``) with ``beta_d``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# integer parameter slots
IP_KIND = 0        # 0 floating point, 1 device pairs
IP_NARR = 1        # number of arrays A
IP_ACTIVE = 2      # active array (phase) when IP_SELECT == 0
IP_SELECT = 3      # 0: fixed active array (single/hybrid), 1: global counter (multi-device)
IP_COUNTER = 4     # global counter value
IP_ROUND = 5       # 0 deterministic, 1 stochastic rounding, 2 stochastic pulse coincidence
IP_BL = 6          # pulse-train length for coincidence
IP_UNI = 7         # 1: unidirectional (potentiation only), 0: bidirectional
IP_REFRESH = 8     # 1: refresh (reset + re-program) a pair when a device saturates
IP_SIGN = 9        # 1: binary read Wr = read_scale * sign(Wa) (2T2R)
IP_MAXP = 10       # cap on pulses per update event
N_IP = 11

FP_NSTATES = 0
FP_BETA_P = 1
FP_BETA_D = 2
FP_C2C = 3
FP_READ_SCALE = 4
FP_UNIFORM = 5     # (row 0) 1.0 when every device has G0 = G_min/dG and GR = 1 (no d2d)
FP_DEAD = 6        # stochastic rounding: updates below this many pulses are dropped
FP_ROUND = 7       # per-array rounding mode + 1 (0: the layer's IP_ROUND)
N_FP = 8

KIND_FP = 0
KIND_PAIR = 1
ROUND_DET, ROUND_STOCH, ROUND_COINC = 0, 1, 2

#: stochastic rounding: pairs with |v| >= P_DENSE get one uniform each (branch-free);
#: below it, geometric skipping + thinning (a log per candidate)
P_DENSE = 0.04
#: stochastic rounding with uniform linear unidirectional devices: rows whose expected
#: pulse count sum_i |v_i| is >= ROW_FUSED are drawn and applied in place (_fused_rows)
ROW_FUSED = 4.0
#: stochastic rounding, geometric skipping: a block of sorted columns thinned at its largest
#: probability may cost up to BLOCK_EXTRA expected extra candidates (vs a new block)
BLOCK_EXTRA = 1.5

STAT_UPDATES, STAT_PULSES, STAT_REFRESH = 0, 1, 2


# --------------------------------------------------------------------------- RNG
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


@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True, inline="always")
def next_u64(s):
    """xoshiro256+ step: returns a uint64 and advances the state ``s`` in place."""
    result = s[0] + s[3]
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@njit(cache=True, inline="always")
def uniform(s):
    """Uniform float in [0, 1) with 53 random bits."""
    return float(next_u64(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


def _normal_table(bits: int = 16) -> np.ndarray:
    """Standard-normal quantiles at the midpoints of 2**bits equal-probability bins."""
    from scipy.special import ndtri

    n = 1 << bits
    return ndtri((np.arange(n) + 0.5) / n)


#: Inverse-CDF table used by :func:`normal` (65,536 equiprobable quantiles, |z| <= 4.3).
NORMAL_TABLE = _normal_table()
#: the same quantiles in float32 (the fused stochastic-rounding rows work in float32)
NORMAL_TABLE32 = NORMAL_TABLE.astype(np.float32)


@njit(cache=True, inline="always")
def normal(s):
    """Standard normal deviate by inverse-CDF table lookup (16 random bits).

    The marginal is the normal distribution discretised into 65,536 equiprobable bins
    (tails cut at 4.3 sigma) -- ample for pulse noise and ~10x faster than Box-Muller.
    """
    return NORMAL_TABLE[np.int64(next_u64(s) >> np.uint64(48))]


@njit(cache=True)
def normal_exact(s):
    """Standard normal deviate (Box-Muller), for reference."""
    u1 = uniform(s)
    u2 = uniform(s)
    if u1 < 1e-300:
        u1 = 1e-300
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)


@njit(cache=True, inline="always")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True, inline="always")
def popcount(x):
    """Number of set bits of a uint64."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True, inline="always")
def bernoulli_mask(p, bl, rng):
    """``bl`` Bernoulli(p) bits packed into a uint64 (a stochastic pulse train)."""
    m = np.uint64(0)
    if p <= 0.0:
        return m
    for b in range(bl):
        if p >= 1.0 or uniform(rng) < p:
            m |= np.uint64(1) << np.uint64(b)
    return m


# --------------------------------------------------------------------------- device
# Hot-path note: numba inserts atomic reference-count operations around calls that take
# arrays, which cost ~100 ns per call inside the event loop. The per-event code below
# therefore uses scalar-only helpers and keeps the xoshiro state in local scalars.

@njit(cache=True, inline="always")
def _xo(s0, s1, s2, s3):
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
def _u01(r):
    return float(r >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def _z(r):
    return NORMAL_TABLE[np.int64(r >> np.uint64(48))]


@njit(cache=True, inline="always")
def pot_mean(s, m, n_states, beta):
    """Mean state change of ``m`` potentiation pulses from state ``s`` (no noise, no clip)."""
    if abs(beta) < 1e-9:
        return m / n_states
    c = 1.0 - math.exp(-beta)
    return (1.0 - (1.0 - s * c) * math.exp(-beta * m / n_states)) / c - s


@njit(cache=True, inline="always")
def _pot_noisy(s, m, n_states, beta, c2c, z):
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
    ``c2c`` on each of the ``m`` pulses.
    """
    z = normal(rng) if c2c > 0.0 else 0.0
    return _pot_noisy(s, m, n_states, beta, c2c, z)


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


@njit(cache=True)
def pair_weight(S, G0, GR, gain, j, i):
    """Analog weight of synapse (j, i): sum over arrays of gain * (G+ - G-)."""
    w = 0.0
    for a in range(S.shape[0]):
        gp = G0[a, 0, j, i] + S[a, 0, j, i] * GR[a, 0, j, i]
        gm = G0[a, 1, j, i] + S[a, 1, j, i] * GR[a, 1, j, i]
        w += gain[a] * (gp - gm)
    return w


@njit(cache=True)
def apply_events(Wa, Wr, S, G0, GR, gain, ip, fp, stats, a, ev_j, ev_i, ev_n, n_ev, rng):
    """Apply ``n_ev`` pulse events ``(ev_j, ev_i, ev_n)`` to array ``a`` of a layer.

    ``n > 0`` raises W. Unidirectional devices: potentiate G+ (n > 0) or G- (n < 0); if that
    device is already saturated (within half a step of G_max) and refresh is on, the pair
    is first refreshed -- both devices reset to G_min and the difference ``G+ - G-``
    re-programmed into one device with the pulse count that reaches it (with noise): the
    occasional reset of Burr et al. (2015) and the 2T2R refresh of Zhou et al. (2018).
    A pair already at its largest difference (partner at G_min) is not refreshed and the
    pulses are lost to saturation. Bidirectional devices: potentiate the target device, or
    depress the partner when the target is saturated. ``Wa``/``Wr`` are updated.
    """
    n_states = fp[a, FP_NSTATES]
    beta_p = fp[a, FP_BETA_P]
    beta_d = fp[a, FP_BETA_D]
    c2c = fp[a, FP_C2C]
    top = 1.0 - 0.5 / n_states
    low = 0.5 / n_states
    uni = ip[IP_UNI] == 1
    refresh = ip[IP_REFRESH] == 1
    sign_read = ip[IP_SIGN] == 1
    rs = fp[0, FP_READ_SCALE]
    uniform = fp[0, FP_UNIFORM] == 1.0
    n_arr = S.shape[0]
    n_out = S.shape[3]
    plane = S.shape[2] * n_out
    # flat views: index of (array b, device d, j, i) = (2 b + d) plane + j n_out + i
    Sf = S.reshape(S.size)
    G0f = G0.reshape(G0.size)
    GRf = GR.reshape(GR.size)
    Waf = Wa.reshape(Wa.size)
    Wrf = Wr.reshape(Wr.size)
    lin_p = abs(beta_p) < 1e-9
    inv_n = 1.0 / n_states
    cz = c2c * inv_n
    s0, s1, s2, s3 = rng[0], rng[1], rng[2], rng[3]
    n_upd = 0
    n_pulse = 0
    n_ref = 0
    for e in range(n_ev):
        ji = np.int64(ev_j[e]) * n_out + np.int64(ev_i[e])
        n = ev_n[e]
        dev = 0 if n > 0 else 1
        m = n if n > 0 else -n
        kd = (2 * a + dev) * plane + ji          # target device
        ko = (2 * a + 1 - dev) * plane + ji      # its partner
        st = Sf[kd]
        refreshed = False
        if uni:
            if st >= top:
                if refresh and Sf[ko] >= low:
                    kp = 2 * a * plane + ji
                    km = kp + plane
                    r = (Sf[kp] * GRf[kp]) - (Sf[km] * GRf[km])   # G0 offsets cancel
                    Sf[kp] = 0.0
                    Sf[km] = 0.0
                    kr = kp if r > 0 else km
                    target = abs(r) / GRf[kr]
                    if target > 1.0:
                        target = 1.0
                    mr = int(pulses_for_state(target, n_states, beta_p) + 0.5)
                    if mr > 0:
                        z = 0.0
                        if c2c > 0.0:
                            u, s0, s1, s2, s3 = _xo(s0, s1, s2, s3)
                            z = _z(u)
                        Sf[kr] = _pot_noisy(0.0, mr, n_states, beta_p, c2c, z)
                    n_ref += 1
                    refreshed = True
                    st = Sf[kd]
                else:
                    continue
            z = 0.0
            if c2c > 0.0:
                u, s0, s1, s2, s3 = _xo(s0, s1, s2, s3)
                z = _z(u)
            if lin_p:    # linear device: m / N (1 + c2c z / sqrt(m)), hoisted constants
                if m == 1:
                    snew = st + inv_n + cz * z
                else:
                    snew = st + m * inv_n + cz * math.sqrt(m) * z
                snew = min(max(snew, 0.0), 1.0)
            else:
                snew = _pot_noisy(st, m, n_states, beta_p, c2c, z)
            Sf[kd] = snew
            if uniform and not refreshed:
                # only the target device changed: W changes by gain * (+-) ds
                ds = snew - st
                w = Waf[ji] + (gain[a] * ds if dev == 0 else -gain[a] * ds)
                Waf[ji] = w
                if sign_read:
                    Wrf[ji] = rs if w >= 0.0 else -rs
                else:
                    Wrf[ji] = w
                n_upd += 1
                n_pulse += m
                continue
        else:
            z = 0.0
            if c2c > 0.0:
                u, s0, s1, s2, s3 = _xo(s0, s1, s2, s3)
                z = _z(u)
            if st < top:
                Sf[kd] = _pot_noisy(st, m, n_states, beta_p, c2c, z)
            else:
                Sf[ko] = 1.0 - _pot_noisy(1.0 - Sf[ko], m, n_states, beta_d, c2c, z)
        n_upd += 1
        n_pulse += m
        w = 0.0
        k = ji
        if uniform:      # identical G0 cancel, GR = 1: only the states matter
            for b in range(n_arr):
                w += gain[b] * (Sf[k] - Sf[k + plane])
                k += 2 * plane
        else:
            for b in range(n_arr):
                gp = G0f[k] + Sf[k] * GRf[k]
                k += plane
                gm = G0f[k] + Sf[k] * GRf[k]
                k += plane
                w += gain[b] * (gp - gm)
        Waf[ji] = w
        if sign_read:
            Wrf[ji] = rs if w >= 0.0 else -rs
        else:
            Wrf[ji] = w
    rng[0] = s0
    rng[1] = s1
    rng[2] = s2
    rng[3] = s3
    stats[a, STAT_UPDATES] += n_upd
    stats[a, STAT_PULSES] += n_pulse
    stats[a, STAT_REFRESH] += n_ref


@njit(cache=True, inline="always")
def _stoch_dense(c, sd, qd, seed, fmaxp, nbuf):
    """``nbuf[q] = floor(v) + [u_q < v - floor(v)]``, ``v = c sd[q]`` clipped to +-fmaxp, for
    ``q < qd``, with ``u_q`` the q-th output of SplitMix64 started at ``seed`` (branch-free,
    no loop-carried state: compiles to SIMD)."""
    for q in range(qd):
        z = seed + np.uint64(q + 1) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        uq = float(np.int64(z >> np.uint64(11))) * (1.0 / 9007199254740992.0)
        v = c * sd[q]
        fl = math.floor(v)
        r = fl + (1.0 if uq < v - fl else 0.0)
        r = min(max(r, -fmaxp), fmaxp)
        nbuf[q] = np.int32(r)


@njit(cache=True)
def _columns_by_magnitude(delta, n_out, thr, colbuf):
    """Non-zero columns with |delta| >= thr into ``colbuf`` by decreasing |delta|; returns
    their number."""
    ncol = 0
    for i in range(n_out):
        if delta[i] != 0.0 and abs(delta[i]) >= thr:
            colbuf[ncol] = i
            ncol += 1
    if ncol > 1:
        mag = np.empty(ncol)
        for q in range(ncol):
            mag[q] = -abs(delta[colbuf[q]])
        perm = np.argsort(mag)
        tmp = colbuf[:ncol].copy()
        for q in range(ncol):
            colbuf[q] = tmp[perm[q]]
    return ncol


@njit(cache=True)
def _sort_columns(delta, n_out, colbuf, sd, ad, cum):
    """Columns with delta != 0 by decreasing |delta| into ``colbuf``; their signed and
    absolute deltas into ``sd``/``ad``, ``cum[q] = sum(ad[:q])``; returns their number."""
    ncol = _columns_by_magnitude(delta, n_out, 0.0, colbuf)
    cum[0] = 0.0
    for q in range(ncol):
        sd[q] = delta[colbuf[q]]
        ad[q] = abs(sd[q])
        cum[q + 1] = cum[q] + ad[q]
    return ncol


@njit(cache=True, fastmath={"reassoc"})
def _counts_f32(nbuf, n):
    """(number of non-zero, sum of |.|) of ``nbuf[:n]`` summed in float32 with
    reassociation allowed, so that the loop vectorises (an int64 reduction of int32 values
    costs ~2x more). Exact while the sums stay below 2**24 (callers check)."""
    cnt = np.float32(0.0)
    pul = np.float32(0.0)
    for i in range(n):
        m = np.float32(abs(nbuf[i]))
        cnt += np.float32(1.0) if m != np.float32(0.0) else np.float32(0.0)
        pul += m
    return int(cnt), int(pul)


@njit(cache=True)
def _counts(nbuf, n, fmaxp):
    """(number of non-zero, sum of |.|) of ``nbuf[:n]`` (|nbuf| <= fmaxp), exact."""
    if n * fmaxp < 16777216.0:
        return _counts_f32(nbuf, n)
    cnt = 0
    pul = 0
    for i in range(n):
        m = abs(nbuf[i])
        cnt += 1 if m != 0 else 0
        pul += m
    return cnt, pul


@njit(cache=True)
def _fused_block(cs, nr, j0, delta, seed, fmaxp, S, a, Wa, Wr, inv_n, cz, top, ga, sign_read,
                 rs, ev_j, ev_i, ev_n, n_ev):
    """:func:`_fused_rows` for the consecutive rows ``j0 .. j0 + nr - 1`` (factors ``cs``)
    of a narrow layer (layer 2: 10 columns): the rows form one contiguous block, processed
    in flat chunks of <= 1024 pairs so that the loops are long enough to vectorise (row by
    row, 10-pair loops cost ~60 ns per row). Chunk ``q`` draws from SplitMix64 started at
    ``splitmix(seed + q * 0xD1B54A32D192ED03)``. Same model and outputs as
    :func:`_fused_rows` (saturated targets become events)."""
    n_out = Wa.shape[1]
    ch_rows = max(1, 1024 // n_out)
    cap = ch_rows * n_out
    vbuf = np.empty(cap)
    nbuf = np.empty(cap, dtype=np.int32)
    zbuf = np.empty(cap, dtype=np.float32)
    n_upd = 0
    n_pulse = 0
    z0 = np.float32(0.0)
    o1 = np.float32(1.0)
    r = 0
    chunk = 0
    while r < nr:
        r1 = min(nr, r + ch_rows)
        ln = (r1 - r) * n_out
        base = (j0 + r) * n_out
        for q in range(r1 - r):
            c = cs[r + q]
            o = q * n_out
            for i in range(n_out):
                vbuf[o + i] = min(max(c * delta[i], -fmaxp), fmaxp)
        sd = _splitmix(seed + np.uint64(chunk) * np.uint64(0xD1B54A32D192ED03))
        for k in range(ln):
            h = sd + np.uint64(k + 1) * np.uint64(0x9E3779B97F4A7C15)
            h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = h ^ (h >> np.uint64(31))
            uq = float(np.int64(h & np.uint64(0xFFFFFFFFFFFF))) * (1.0 / 281474976710656.0)
            n = np.int32(math.floor(vbuf[k] + uq))
            nbuf[k] = n
            zbuf[k] = NORMAL_TABLE32[np.int64(h >> np.uint64(48)) if n != 0 else 0]
        cu, cp = _counts(nbuf, ln, fmaxp)
        n_upd += cu
        n_pulse += cp
        Sp = S[a, 0, j0 + r:j0 + r1].reshape(ln)
        Sm = S[a, 1, j0 + r:j0 + r1].reshape(ln)
        War = Wa[j0 + r:j0 + r1].reshape(ln)
        Wrr = Wr[j0 + r:j0 + r1].reshape(ln)
        any_sat = False
        for k in range(ln):
            n = nbuf[k]
            pos = n > 0
            fm = np.float32(n if pos else -n)
            sp = Sp[k]
            sm = Sm[k]
            st = sp if pos else sm
            sat = (n != 0) & (st >= top)
            fire = (n != 0) & (st < top)
            snew = st + fm * inv_n + cz * np.sqrt(fm) * zbuf[k]
            snew = min(max(snew, z0), o1)
            ds = (snew - st) * (o1 if fire else z0)
            w = War[k] + (ga if pos else -ga) * ds
            if fire:          # masked stores: lanes without a pulse are not written
                if pos:
                    Sp[k] = snew
                else:
                    Sm[k] = snew
                War[k] = w
                Wrr[k] = w
            nbuf[k] = n if sat else 0
            any_sat = any_sat | sat
        if sign_read:
            for k in range(ln):
                Wrr[k] = rs if War[k] >= z0 else -rs
        if any_sat:
            for k in range(ln):
                n = nbuf[k]
                if n != 0:
                    ev_j[n_ev] = (base + k) // n_out
                    ev_i[n_ev] = (base + k) % n_out
                    ev_n[n_ev] = n
                    n_ev += 1
                    n_upd -= 1
                    n_pulse -= n if n > 0 else -n
        r = r1
        chunk += 1
    return n_ev, n_upd, n_pulse


@njit(cache=True, inline="always")
def _splitmix(x):
    """SplitMix64 output for state ``x`` (after its increment)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _fused_rows(rows, cs, seeds, nr, delta, fmaxp, S, a, Wa, Wr, inv_n, cz, top, ga,
                sign_read, rs, nbuf, zbuf, ev_j, ev_i, ev_n, n_ev):
    """Stochastic rounding of rows ``rows[:nr]`` (factors ``cs``), drawn and applied in place
    on array ``a`` (uniform linear unidirectional devices).

    Pair ``(j, i)`` gets ``n = floor(v + u) = floor(v) + [u >= 1 - frac(v)]`` pulses (up
    with probability frac(v)), ``v = c_j delta[i]`` clipped to +-fmaxp, with the uniform
    ``u`` (low 48 bits) and the pulse noise ``z`` (table index, high 16 bits) from the i-th
    output of SplitMix64 started at ``seeds[r]`` (one xoshiro draw per row). ``n > 0``
    potentiates G+, ``n < 0`` G- by ``|n| / N (1 + c2c z / sqrt|n|)``, clipped to [0, 1];
    ``Wa`` moves by ``+-gain ds`` and ``Wr`` follows. A pair whose target device is
    saturated (``s >= top``) is left alone and appended to the events ``ev_*`` (from
    ``n_ev``) for :func:`apply_events` (refresh or lost pulses). Per row, both loops are
    branch-free and vectorise (the second in float32: ``inv_n``, ``cz``, ``top``, ``ga``,
    ``rs`` are float32). Returns (n_ev, pairs updated, pulses) -- the events excluded.

    Not inlined on purpose: inlined into :func:`update_layer` the loops stay scalar; the
    accumulator of the second loop is boolean because a float reduction would not
    vectorise (no fastmath), and the counts have their own loop (:func:`_counts`; int64
    reductions in the first loop cost ~0.4 ns per pair, ~0.1 ns there).
    """
    n_out = Wa.shape[1]
    n_upd = 0
    n_pulse = 0
    z0 = np.float32(0.0)
    o1 = np.float32(1.0)
    for r in range(nr):
        j = rows[r]
        c = cs[r]
        seed = seeds[r]
        for i in range(n_out):
            h = seed + np.uint64(i + 1) * np.uint64(0x9E3779B97F4A7C15)
            h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = h ^ (h >> np.uint64(31))
            uq = float(np.int64(h & np.uint64(0xFFFFFFFFFFFF))) * (1.0 / 281474976710656.0)
            # floor(v + u) = floor(v) + [u >= 1 - frac(v)]: rounds up with probability
            # frac(v); clipping v first to the integer +-fmaxp clips n the same way
            v = min(max(c * delta[i], -fmaxp), fmaxp)
            n = np.int32(math.floor(v + uq))
            nbuf[i] = n
            # the noise of a pair without pulse is not used: index 0 keeps that lane of
            # the (vectorised) table gather in L1 instead of a random line of the table
            zbuf[i] = NORMAL_TABLE32[np.int64(h >> np.uint64(48)) if n != 0 else 0]
        cu, cp = _counts(nbuf, n_out, fmaxp)   # own loop: see the docstring
        n_upd += cu
        n_pulse += cp
        any_sat = False
        for i in range(n_out):
            n = nbuf[i]
            pos = n > 0
            fm = np.float32(n if pos else -n)
            sp = S[a, 0, j, i]
            sm = S[a, 1, j, i]
            st = sp if pos else sm
            sat = (n != 0) & (st >= top)
            fire = (n != 0) & (st < top)
            snew = st + fm * inv_n + cz * np.sqrt(fm) * zbuf[i]
            snew = min(max(snew, z0), o1)
            # ds by a 0/1 factor, not a select: used unconditionally, the sqrt is not
            # sunk into a branch (which would keep the loop scalar); the stores below are
            # conditional, which AVX-512 does as masked stores
            ds = (snew - st) * (o1 if fire else z0)
            w = Wa[j, i] + (ga if pos else -ga) * ds
            if fire:          # masked stores: lanes without a pulse are not written
                if pos:
                    S[a, 0, j, i] = snew
                else:
                    S[a, 1, j, i] = snew
                Wa[j, i] = w
                Wr[j, i] = w
            nbuf[i] = n if sat else 0
            any_sat = any_sat | sat
        if sign_read:      # separate loop: a loop-invariant branch inside blocks SIMD
            for i in range(n_out):
                Wr[j, i] = rs if Wa[j, i] >= z0 else -rs
        if any_sat:        # saturated targets: refresh / lost pulses, by apply_events
            for i in range(n_out):
                n = nbuf[i]
                if n != 0:
                    ev_j[n_ev] = j
                    ev_i[n_ev] = i
                    ev_n[n_ev] = n
                    n_ev += 1
                    n_upd -= 1
                    n_pulse -= n if n > 0 else -n
    return n_ev, n_upd, n_pulse


@njit(cache=True)
def update_layer(Wa, Wr, S, G0, GR, gain, ip, fp, stats, idx, vals, nnz, delta, lr, rng,
                 colbuf, maskbuf, ev_j, ev_i, ev_n):
    """Outer-product update ``dW[j, i] = -lr * x_j * delta_i`` realised by the cell.

    ``idx[:nnz]``/``vals[:nnz]`` are the non-zero inputs of the layer (bias included).
    Floating point adds dW. Device cells turn dW into pulses on one array ``a`` (the phase's
    array, or ``counter mod A`` for multi-device) with step ``gain[a] / N_a`` per pulse:

    * deterministic: ``n = round(dW / step)`` (half away from zero), capped at ``max_pulses``;
    * stochastic rounding: ``n = floor(v) + [u < v - floor(v)]``, ``v = dW / step``
      (pairs with |v| >= ``P_DENSE`` drawn one uniform each in a SIMD loop from a per-row
      SplitMix64 stream; the rest by geometric skipping + thinning; exact);
    * pulse coincidence (Gokmen & Vlasov 2016): a row fires each of ``BL`` slots with
      probability ``x_j``, a column with ``lr |delta_i| / (BL step)`` (clipped at 1); ``n`` is
      the number of coincidences (``E[n] = dW / step`` below clipping).

    The events are collected in ``ev_j, ev_i, ev_n`` (size >= nnz * n_out) and applied by
    :func:`apply_events`; with stochastic rounding on uniform linear unidirectional
    devices, rows expecting >= ``ROW_FUSED`` pulses are drawn and applied in place by
    :func:`_fused_rows` instead (same model; only saturated targets become events), and a
    narrow layer (< 64 columns) whose rows are all consecutive by :func:`_fused_block`.
    ``colbuf``/``maskbuf`` are scratch arrays of size ``n_out``.
    """
    n_out = Wa.shape[1]
    if ip[IP_KIND] == KIND_FP:
        for p in range(nnz):
            j = idx[p]
            c = -lr * vals[p]
            for i in range(n_out):
                w = Wa[j, i] + c * delta[i]
                Wa[j, i] = w
                Wr[j, i] = w
        stats[0, STAT_UPDATES] += nnz * n_out
        return
    n_arr = ip[IP_NARR]
    if ip[IP_SELECT] == 1:
        a = ip[IP_COUNTER] % n_arr
    else:
        a = ip[IP_ACTIVE]
    step = gain[a] / fp[a, FP_NSTATES]
    inv_step = 1.0 / step
    maxp = ip[IP_MAXP]
    mode = ip[IP_ROUND] if fp[a, FP_ROUND] == 0.0 else int(fp[a, FP_ROUND]) - 1
    n_ev = 0
    s0, s1, s2, s3 = rng[0], rng[1], rng[2], rng[3]
    fused = False
    f_upd = 0
    f_pulse = 0
    if mode == ROUND_DET:
        xmax = 0.0
        for p in range(nnz):
            if vals[p] > xmax:
                xmax = vals[p]
        thr = 0.5 * step / (lr * xmax) if xmax > 0 else 1e300
        # columns by decreasing |delta|: each row stops at its own threshold
        ncol = _columns_by_magnitude(delta, n_out, thr, colbuf)
        for p in range(nnz):
            if ncol == 0:
                break
            j = idx[p]
            c = -lr * vals[p] * inv_step
            for q in range(ncol):
                i = colbuf[q]
                v = c * delta[i]
                if v >= 0.5:
                    n = int(v + 0.5)
                elif v <= -0.5:
                    n = -int(-v + 0.5)
                else:
                    break
                if n > maxp:
                    n = maxp
                elif n < -maxp:
                    n = -maxp
                ev_j[n_ev] = j
                ev_i[n_ev] = i
                ev_n[n_ev] = n
                n_ev += 1
    elif mode == ROUND_STOCH:
        # Fused rows (uniform linear unidirectional devices, rows expecting >= ROW_FUSED
        # pulses): every pair of the row is drawn and its pulse applied in place by
        # :func:`_fused_rows` (SIMD, no event list); pairs whose target device is saturated
        # become events for apply_events (refresh or lost pulses). Other rows: columns
        # sorted by decreasing |delta| (once per call, only if needed). Per row, the prefix
        # of columns with |v| >= P_DENSE gets n = floor(v) + Bernoulli(frac(v)) with one
        # uniform per pair (branch-free, vectorised: the uniforms are a SplitMix64 stream
        # seeded by one xoshiro draw per row; a log per candidate would cost more there).
        # The rest have |v| < P_DENSE and fire one pulse with probability |v|: these are
        # sampled in blocks of columns by geometric skipping at the block's largest
        # probability q_b and thinning (accept with |v_i| / q_b) -- exact, and
        # ~|v|-proportional work; a block is extended while that costs at most
        # BLOCK_EXTRA expected extra candidates.
        fused = (fp[0, FP_UNIFORM] == 1.0 and abs(fp[a, FP_BETA_P]) < 1e-9
                 and ip[IP_UNI] == 1 and fp[a, FP_DEAD] == 0.0)
        sumabs = 0.0
        for i in range(n_out):
            sumabs += abs(delta[i])
        sd = np.empty(n_out)
        ad = np.empty(n_out)
        cum = np.empty(n_out + 1)
        nbuf = np.empty(n_out, dtype=np.int32)
        zbuf = np.empty(n_out, dtype=np.float32)
        fmaxp = float(maxp)
        dead = fp[a, FP_DEAD]
        ncol = -1          # columns not sorted yet (only rows that are not fused need it)
        # float32 constants of the fused rows; top32 = smallest float32 >= top, so that
        # the float32 test s >= top32 equals apply_events' float64 s >= top
        n_states = fp[a, FP_NSTATES]
        inv_n32 = np.float32(1.0 / n_states)
        cz32 = np.float32(fp[a, FP_C2C] / n_states)
        top = 1.0 - 0.5 / n_states
        top32 = np.float32(top)
        if float(top32) < top:
            top32 = np.nextafter(top32, np.float32(2.0))
        ga32 = np.float32(gain[a])
        sign_read = ip[IP_SIGN] == 1
        rs32 = np.float32(fp[0, FP_READ_SCALE])
        nf = 0
        if fused:
            frow = np.empty(nnz, dtype=np.int64)
            fc = np.empty(nnz)
            fseed = np.empty(nnz, dtype=np.uint64)
        else:
            frow = np.empty(0, dtype=np.int64)
            fc = np.empty(0)
            fseed = np.empty(0, dtype=np.uint64)
        block = fused and n_out < 64 and nnz > 0
        for p in range(nnz if block else 0):
            if idx[p] != idx[0] + p:
                block = False
                break
        if block:       # narrow layer, consecutive rows (layer 2): one flat block
            for p in range(nnz):
                fc[p] = -lr * vals[p] * inv_step
            u, s0, s1, s2, s3 = _xo(s0, s1, s2, s3)
            n_ev, f_upd, f_pulse = _fused_block(fc, nnz, idx[0], delta, u, fmaxp, S, a, Wa,
                                                Wr, inv_n32, cz32, top32, ga32, sign_read,
                                                rs32, ev_j, ev_i, ev_n, n_ev)
        for p in range(nnz if not block else 0):
            j = idx[p]
            c = -lr * vals[p] * inv_step
            ac = abs(c)
            if ac == 0.0:
                continue
            if fused and ac * sumabs >= ROW_FUSED:
                u, s0, s1, s2, s3 = _xo(s0, s1, s2, s3)
                frow[nf] = j
                fc[nf] = c
                fseed[nf] = u
                nf += 1
                continue
            if ncol < 0:
                ncol = _sort_columns(delta, n_out, colbuf, sd, ad, cum)
            # dense prefix: columns with |v| >= P_DENSE, one uniform per pair, branch-free
            # n = floor(v) + [u < v - floor(v)] (exact stochastic rounding)
            thr = max(P_DENSE, dead) / ac
            lo = 0
            hi = ncol
            while lo < hi:            # first q with ad[q] < thr (ad is non-increasing)
                mid = (lo + hi) >> 1
                if ad[mid] >= thr:
                    lo = mid + 1
                else:
                    hi = mid
            qd = lo
            if qd > 0:
                # the row's uniforms come from a SplitMix64 stream seeded by one xoshiro
                # draw: its q-th output depends on q only, so this loop vectorises (SIMD)
                u, s0, s1, s2, s3 = _xo(s0, s1, s2, s3)
                _stoch_dense(c, sd, qd, u, fmaxp, nbuf)
                for q in range(qd):
                    n = nbuf[q]
                    ev_j[n_ev] = j
                    ev_i[n_ev] = colbuf[q]
                    ev_n[n_ev] = n
                    n_ev += 1 if n != 0 else 0
            q = qd if dead < P_DENSE else ncol
            while q < ncol:
                qb = ac * ad[q]
                if qb <= 0.0 or qb < dead:
                    break
                # block [q, end): the longest one whose extra candidates from thinning at
                # qb, ac ((end - q) ad[q] - sum ad[q:end]), stay <= BLOCK_EXTRA (a block
                # costs ~ a log1p and a draw, a candidate a draw)
                lo = q + 1
                hi = ncol
                while lo < hi:
                    mid = (lo + hi + 1) >> 1
                    if ac * ((mid - q) * ad[q] - (cum[mid] - cum[q])) <= BLOCK_EXTRA:
                        lo = mid
                    else:
                        hi = mid - 1
                end = lo
                lq = math.log1p(-qb)
                pos = q - 1
                while True:
                    u, s0, s1, s2, s3 = _xo(s0, s1, s2, s3)
                    uu = (float(u >> np.uint64(11)) + 1.0) * (1.0 / 9007199254740992.0)
                    if lq < 0.0:
                        # skip length compared as a float first: for a tiny qb it can
                        # exceed the int64 range (int() of it would wrap negative)
                        sk = math.log(uu) / lq
                        if sk >= end - pos - 1:
                            break
                        pos += int(sk) + 1
                    else:
                        pos += 1
                    if pos >= end:
                        break
                    i = colbuf[pos]
                    pi = ac * abs(delta[i])
                    if pi < dead:
                        continue
                    if pi < qb:
                        u, s0, s1, s2, s3 = _xo(s0, s1, s2, s3)
                        if _u01(u) * qb >= pi:
                            continue
                    ev_j[n_ev] = j
                    ev_i[n_ev] = i
                    ev_n[n_ev] = 1 if c * delta[i] > 0 else -1
                    n_ev += 1
                q = end
        if nf > 0:
            n_ev, f_upd, f_pulse = _fused_rows(frow, fc, fseed, nf, delta, fmaxp, S, a, Wa, Wr,
                                               inv_n32, cz32, top32, ga32, sign_read, rs32,
                                               nbuf, zbuf, ev_j, ev_i, ev_n, n_ev)
    else:
        bl = ip[IP_BL]
        cd = lr / (bl * step)
        ncol = 0
        for i in range(n_out):
            pcol = cd * abs(delta[i])
            m = np.uint64(0)
            if pcol > 0.0:
                for b in range(bl):
                    u, s0, s1, s2, s3 = _xo(s0, s1, s2, s3)
                    if pcol >= 1.0 or _u01(u) < pcol:
                        m |= np.uint64(1) << np.uint64(b)
            if m != np.uint64(0):
                colbuf[ncol] = i
                maskbuf[ncol] = m
                ncol += 1
        for p in range(nnz):
            if ncol == 0:
                break
            j = idx[p]
            prow = vals[p]
            rm = np.uint64(0)
            for b in range(bl):
                u, s0, s1, s2, s3 = _xo(s0, s1, s2, s3)
                if prow >= 1.0 or _u01(u) < prow:
                    rm |= np.uint64(1) << np.uint64(b)
            if rm == np.uint64(0):
                continue
            for q in range(ncol):
                k = _popcount(rm & maskbuf[q])
                if k == 0:
                    continue
                i = colbuf[q]
                ev_j[n_ev] = j
                ev_i[n_ev] = i
                ev_n[n_ev] = -k if delta[i] > 0 else k
                n_ev += 1
    rng[0] = s0
    rng[1] = s1
    rng[2] = s2
    rng[3] = s3
    if fused:
        stats[a, STAT_UPDATES] += f_upd
        stats[a, STAT_PULSES] += f_pulse
    if n_ev > 0:
        apply_events(Wa, Wr, S, G0, GR, gain, ip, fp, stats, a, ev_j, ev_i, ev_n, n_ev, rng)


# --------------------------------------------------------------------------- network
@njit(cache=True, inline="always")
def _sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)

@njit(cache=True)
def output_error(opre, lab, o, d2, counters):
    """Sigmoid outputs ``o``, MSE error term ``d2 = (o - t) o (1 - o)`` for one-hot target
    ``lab``; adds (correct, squared error) of the sample to ``counters[0:2]``."""
    best = 0
    sse = 0.0
    for k in range(opre.size):
        ok = _sigmoid(opre[k])
        o[k] = ok
        if ok > o[best]:
            best = k
        e = ok - (1.0 if k == lab else 0.0)
        sse += e * e
        d2[k] = e * ok * (1.0 - ok)
    if best == lab:
        counters[0] += 1.0
    counters[1] += sse



@njit(cache=True)
def update_buffers(n_in, n_hid, n_out):
    """Scratch arrays of the per-sample loops: layer-1 non-zero inputs ``idx1``/``val1``,
    layer-2 rows ``idx2``, column buffers for :func:`update_layer` and its event lists."""
    idx1 = np.empty(n_in + 1, dtype=np.int64)
    val1 = np.empty(n_in + 1, dtype=np.float32)
    idx2 = np.arange(n_hid + 1)
    colbuf = np.empty(max(n_hid, n_out), dtype=np.int64)
    maskbuf = np.empty(max(n_hid, n_out), dtype=np.uint64)
    n_ev_max = max((n_in + 1) * n_hid, (n_hid + 1) * n_out)
    ev_j = np.empty(n_ev_max, dtype=np.int32)
    ev_i = np.empty(n_ev_max, dtype=np.int32)
    ev_n = np.empty(n_ev_max, dtype=np.int32)
    return idx1, val1, idx2, colbuf, maskbuf, ev_j, ev_i, ev_n


@njit(cache=True)
def train_samples(order, start, stop, indptr, indices, values, labels,
                  L1, L2, lr, rng, counters):
    """Per-sample SGD (batch 1) of a 1-hidden-layer sigmoid MLP with MSE loss.

    For each sample: forward ``h = f(W1^T [x, 1])``, ``o = f(W2^T [h, 1])`` over the non-zero
    inputs only; output error ``d2 = (o - t) o (1 - o)``; transposed read
    ``d1 = h (1 - h) (W2 d2)`` (read weights ``Wr``, i.e. what the crossbar returns); then the
    outer-product updates of layer 2 and layer 1 (:func:`update_layer`). The loss is
    ``E = 1/2 sum_k (o_k - t_k)^2``.

    ``L1``/``L2`` are tuples ``(Wa, Wr, S, G0, GR, gain, ip, fp, stats)``. ``counters``
    (float64[2]) accumulates the number of correct predictions and the summed squared error.
    """
    Wa1, Wr1, S1, G01, GR1, g1, ip1, fp1, st1 = L1
    Wa2, Wr2, S2, G02, GR2, g2, ip2, fp2, st2 = L2
    n_in = Wr1.shape[0] - 1
    n_hid = Wr1.shape[1]
    n_out = Wr2.shape[1]
    h = np.empty(n_hid + 1, dtype=np.float32)
    zpre = np.empty(n_hid, dtype=np.float32)
    o = np.empty(n_out, dtype=np.float32)
    opre = np.empty(n_out, dtype=np.float32)
    d2 = np.empty(n_out, dtype=np.float32)
    d1 = np.empty(n_hid, dtype=np.float32)
    idx1, val1, idx2, colbuf, maskbuf, ev_j, ev_i, ev_n = update_buffers(n_in, n_hid, n_out)
    for t in range(start, stop):
        s = order[t]
        a0 = indptr[s]
        a1 = indptr[s + 1]
        nnz = a1 - a0
        for i in range(n_hid):
            zpre[i] = Wr1[n_in, i]
        for p in range(nnz):
            j = indices[a0 + p]
            xv = values[a0 + p]
            idx1[p] = j
            val1[p] = xv
            for i in range(n_hid):
                zpre[i] += xv * Wr1[j, i]
        idx1[nnz] = n_in
        val1[nnz] = 1.0
        for i in range(n_hid):
            h[i] = _sigmoid(zpre[i])
        h[n_hid] = 1.0
        for k in range(n_out):
            opre[k] = Wr2[n_hid, k]
        for j in range(n_hid):
            hj = h[j]
            for k in range(n_out):
                opre[k] += hj * Wr2[j, k]
        output_error(opre, labels[s], o, d2, counters)
        for j in range(n_hid):
            acc = 0.0
            for k in range(n_out):
                acc += Wr2[j, k] * d2[k]
            d1[j] = h[j] * (1.0 - h[j]) * acc
        update_layer(Wa2, Wr2, S2, G02, GR2, g2, ip2, fp2, st2, idx2, h, n_hid + 1, d2, lr,
                     rng, colbuf, maskbuf, ev_j, ev_i, ev_n)
        update_layer(Wa1, Wr1, S1, G01, GR1, g1, ip1, fp1, st1, idx1, val1, nnz + 1, d1, lr,
                     rng, colbuf, maskbuf, ev_j, ev_i, ev_n)
        ip1[IP_COUNTER] += 1
        ip2[IP_COUNTER] += 1
