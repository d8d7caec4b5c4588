"""Event application and outer-product update of a layer's synapses (numba).

An update ``ΔW = -η x δ^T`` of a layer (:class:`.layer.LayerState`) becomes pulse events on
one array of pairs (:func:`update_layer`: deterministic rounding, stochastic rounding or
stochastic pulse coincidence) that :func:`apply_events` applies to the devices with the
pulse model of :mod:`.pulses` (saturation, refresh of a pair, bidirectional depression);
stochastic rounding on uniform linear unidirectional devices draws and applies whole rows in
place (:func:`_fused_rows`, :func:`_fused_block`: SIMD loops, same model).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .jitcache import key_caches
from .layer import (KIND_FP, ROUND_DET, ROUND_STOCH, STAT_PULSES, STAT_REFRESH,
                    STAT_UPDATES)
from .pulses import pot_noisy, pulses_for_state
from .rng import (NORMAL_TABLE32, popcount, splitmix, splitmix_at, table_normal, u01,
                  xoshiro_step)

#: stochastic rounding: pairs with |v| >= P_DENSE get one uniform each (branch-free);
#: below it, geometric skipping + thinning (a log per candidate)
P_DENSE = 0.04
#: stochastic rounding with uniform linear unidirectional devices: rows whose expected
#: pulse count sum_i |v_i| is >= ROW_FUSED are drawn and applied in place (_fused_rows)
ROW_FUSED = 4.0
#: stochastic rounding, geometric skipping: a block of sorted columns thinned at its largest
#: probability may cost up to BLOCK_EXTRA expected extra candidates (vs a new block)
BLOCK_EXTRA = 1.5


@njit(cache=True)
def apply_events(L, a, ev_j, ev_i, ev_n, n_ev, rng):
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
    Wa, Wr, S, G0, GR, gain, stats = L.Wa, L.Wr, L.S, L.G0, L.GR, L.gain, L.stats
    cfg = L.cfg[0]
    dev = L.dev[a]
    n_states = dev.n_states
    beta_p = dev.beta_p
    beta_d = dev.beta_d
    c2c = dev.c2c
    top = 1.0 - 0.5 / n_states
    low = 0.5 / n_states
    uni = cfg.unidirectional
    refresh = cfg.refresh
    sign_read = cfg.sign_read
    rs = cfg.read_scale
    uniform = cfg.uniform
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
                            u, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
                            z = table_normal(u)
                        Sf[kr] = pot_noisy(0.0, mr, n_states, beta_p, c2c, z)
                    n_ref += 1
                    refreshed = True
                    st = Sf[kd]
                else:
                    continue
            z = 0.0
            if c2c > 0.0:
                u, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
                z = table_normal(u)
            if lin_p:    # linear device: m / N (1 + c2c z / sqrt(m)), hoisted constants
                if m == 1:
                    snew = st + inv_n + cz * z
                else:
                    snew = st + m * inv_n + cz * math.sqrt(m) * z
                snew = min(max(snew, 0.0), 1.0)
            else:
                snew = pot_noisy(st, m, n_states, beta_p, c2c, z)
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
                u, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
                z = table_normal(u)
            if st < top:
                Sf[kd] = pot_noisy(st, m, n_states, beta_p, c2c, z)
            else:
                Sf[ko] = 1.0 - pot_noisy(1.0 - Sf[ko], m, n_states, beta_d, c2c, z)
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
        z = splitmix_at(seed, q + 1)
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
def pulse_counts(nbuf, n, fmaxp):
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
        sd = splitmix(seed + np.uint64(chunk) * np.uint64(0xD1B54A32D192ED03))
        for k in range(ln):
            h = splitmix_at(sd, k + 1)
            uq = float(np.int64(h & np.uint64(0xFFFFFFFFFFFF))) * (1.0 / 281474976710656.0)
            n = np.int32(math.floor(vbuf[k] + uq))
            nbuf[k] = n
            zbuf[k] = NORMAL_TABLE32[np.int64(h >> np.uint64(48)) if n != 0 else 0]
        cu, cp = pulse_counts(nbuf, ln, fmaxp)
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
    vectorise (no fastmath), and the counts have their own loop (:func:`pulse_counts`; int64
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
            h = splitmix_at(seed, i + 1)
            uq = float(np.int64(h & np.uint64(0xFFFFFFFFFFFF))) * (1.0 / 281474976710656.0)
            # floor(v + u) = floor(v) + [u >= 1 - frac(v)]: rounds up with probability
            # frac(v); clipping v first to the integer +-fmaxp clips n the same way
            v = min(max(c * delta[i], -fmaxp), fmaxp)
            n = np.int32(math.floor(v + uq))
            nbuf[i] = n
            # the noise of a pair without pulse is not used: index 0 keeps that lane of
            # the (vectorised) table gather in L1 instead of a random line of the table
            zbuf[i] = NORMAL_TABLE32[np.int64(h >> np.uint64(48)) if n != 0 else 0]
        cu, cp = pulse_counts(nbuf, n_out, fmaxp)   # own loop: see the docstring
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
def update_layer(L, idx, vals, nnz, delta, lr, rng,
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

    Returns ``(n_ev, n_rows, rows)``: the cells of array ``a`` that may have changed are
    those of the events ``(ev_j[:n_ev], ev_i[:n_ev])`` and every cell of the rows
    ``rows[:n_rows]`` updated in place (fused rows); floating point: ``(0, 0, idx)`` (every
    cell of the rows ``idx[:nnz]`` changed).
    """
    Wa, Wr, S, gain, stats = L.Wa, L.Wr, L.S, L.gain, L.stats
    n_out = Wa.shape[1]
    cfg = L.cfg[0]
    if cfg.kind == KIND_FP:
        for p in range(nnz):
            j = idx[p]
            c = -lr * vals[p]
            for i in range(n_out):
                w = Wa[j, i] + c * delta[i]
                Wa[j, i] = w
                Wr[j, i] = w
        stats[0, STAT_UPDATES] += nnz * n_out
        return 0, 0, idx
    n_arr = cfg.n_arrays
    if cfg.select == 1:
        a = cfg.counter % n_arr
    else:
        a = cfg.active
    dev = L.dev[a]
    step = gain[a] / dev.n_states
    inv_step = 1.0 / step
    maxp = cfg.max_pulses
    mode = dev.rounding
    n_ev = 0
    s0, s1, s2, s3 = rng[0], rng[1], rng[2], rng[3]
    fused = False
    f_upd = 0
    f_pulse = 0
    n_rows = 0             # rows updated in place (returned)
    rows = idx
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
        fused = (cfg.uniform and abs(dev.beta_p) < 1e-9
                 and cfg.unidirectional and dev.dead_zone == 0.0)
        sumabs = 0.0
        for i in range(n_out):
            sumabs += abs(delta[i])
        sd = np.empty(n_out)
        ad = np.empty(n_out)
        cum = np.empty(n_out + 1)
        nbuf = np.empty(n_out, dtype=np.int32)
        zbuf = np.empty(n_out, dtype=np.float32)
        fmaxp = float(maxp)
        dead = dev.dead_zone
        ncol = -1          # columns not sorted yet (only rows that are not fused need it)
        # float32 constants of the fused rows; top32 = smallest float32 >= top, so that
        # the float32 test s >= top32 equals apply_events' float64 s >= top
        n_states = dev.n_states
        inv_n32 = np.float32(1.0 / n_states)
        cz32 = np.float32(dev.c2c / n_states)
        top = 1.0 - 0.5 / n_states
        top32 = np.float32(top)
        if float(top32) < top:
            top32 = np.nextafter(top32, np.float32(2.0))
        ga32 = np.float32(gain[a])
        sign_read = cfg.sign_read
        rs32 = np.float32(cfg.read_scale)
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
            u, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
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
                u, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
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
                u, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
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
                    u, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
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
                        u, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
                        if u01(u) * qb >= pi:
                            continue
                    ev_j[n_ev] = j
                    ev_i[n_ev] = i
                    ev_n[n_ev] = 1 if c * delta[i] > 0 else -1
                    n_ev += 1
                q = end
        if block:
            n_rows = nnz
        elif nf > 0:
            n_rows = nf
            rows = frow
        if nf > 0:
            n_ev, f_upd, f_pulse = _fused_rows(frow, fc, fseed, nf, delta, fmaxp, S, a, Wa, Wr,
                                               inv_n32, cz32, top32, ga32, sign_read, rs32,
                                               nbuf, zbuf, ev_j, ev_i, ev_n, n_ev)
    else:
        bl = cfg.bl
        cd = lr / (bl * step)
        ncol = 0
        for i in range(n_out):
            pcol = cd * abs(delta[i])
            m = np.uint64(0)
            if pcol > 0.0:
                for b in range(bl):
                    u, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
                    if pcol >= 1.0 or u01(u) < pcol:
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
                u, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
                if prow >= 1.0 or u01(u) < prow:
                    rm |= np.uint64(1) << np.uint64(b)
            if rm == np.uint64(0):
                continue
            for q in range(ncol):
                k = popcount(rm & maskbuf[q])
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
        apply_events(L, a, ev_j, ev_i, ev_n, n_ev, rng)
    return n_ev, n_rows, rows


key_caches(globals())   # recompile when any kernel source changes (.jitcache)
