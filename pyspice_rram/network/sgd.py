"""The one per-sample SGD loop of the network (numba), for every cell and every backend.

:func:`sgd_samples` trains a 1-hidden-layer sigmoid MLP with MSE loss, batch 1. Reads and
updates go through the tile-backend protocol of :mod:`.backend` (:func:`.backend.tile_forward`,
:func:`.backend.tile_transpose`, :func:`.backend.tile_update`), dispatched at compile time
on the class of the backend's read state: one loop, specialised per backend.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .backend import tile_forward, tile_transpose, tile_update
from .jitcache import key_caches


@njit(cache=True, inline="always")
def sigmoid(z):
    """Logistic function ``1 / (1 + exp(-z))`` without overflow."""
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
        ok = sigmoid(opre[k])
        o[k] = ok
        if ok > o[best]:
            best = k
        e = ok - (1.0 if k == lab else 0.0)
        sse += e * e
        d2[k] = e * ok * (1.0 - ok)
    if best == lab:
        counters[0] += 1.0
    counters[1] += sse


#: ledger slots of the SGD loop's ``counters`` (after correct, squared error): forward reads
#: of layer 0 and 1, transposed reads of layer 0 and 1, then the update cycles of layer
#: ``l`` on array ``a`` at ``LEDGER_CYCLES + l A + a``
LEDGER_FORWARD, LEDGER_TRANSPOSED, LEDGER_CYCLES = 2, 4, 6


def ledger_size(n_arrays: int) -> int:
    """Length of a ``counters`` array that holds the ledger of a network of ``n_arrays``
    arrays per layer (:func:`sgd_samples`)."""
    return LEDGER_CYCLES + 2 * n_arrays


@njit(cache=True, inline="always")
def _stats_sum(stats, a):
    return stats[a, 0] + stats[a, 1] + stats[a, 2]


@njit(cache=True)
def sgd_samples(order, start, stop, indptr, indices, values, labels, L1, L2, lr, rng,
                counters, reads):
    """Per-sample SGD (batch 1) of a 1-hidden-layer sigmoid MLP with MSE loss.

    For each sample ``s = order[t]``, ``start <= t < stop`` (inputs: CSR rows
    ``indptr, indices, values``): forward reads ``h = f(W1^T [x, 1])``, ``o = f(W2^T [h, 1])``
    over the non-zero inputs only; output error ``d2 = (o - t) o (1 - o)``; transposed read
    ``d1 = h (1 - h) (W2 d2)``; then the outer-product updates of layer 2 and layer 1. The
    loss is ``E = 1/2 sum_k (o_k - t_k)^2``. Reads and updates are the backend's
    (``reads``: its read state, :meth:`.backend.TileBackend.compiled_reads`).

    ``L1``/``L2`` are the :class:`.layer.LayerState` of the two layers; ``rng`` the xoshiro
    state of pulse noise and stochastic rounding; ``counters`` (float64[2]) accumulates the
    number of correct predictions and the summed squared error. A longer ``counters``
    (:func:`ledger_size`) also counts the events of the cost ledger: the reads of each layer
    (slots :data:`LEDGER_FORWARD`, :data:`LEDGER_TRANSPOSED`) and, per layer and array, the
    parallel update cycles -- samples in which the array received at least one pulse,
    refresh or (floating point) update (slots from :data:`LEDGER_CYCLES`).
    """
    n_in = L1.Wr.shape[0] - 1
    n_hid = L1.Wr.shape[1]
    n_out = L2.Wr.shape[1]
    h = np.empty(n_hid + 1, dtype=np.float32)
    o = np.empty(n_out, dtype=np.float32)
    d2 = np.empty(n_out, dtype=np.float32)
    d1 = np.empty(n_hid, dtype=np.float32)
    e1 = np.empty(n_hid)
    idx1 = np.empty(n_in + 1, dtype=np.int64)
    val1 = np.empty(n_in + 1, dtype=np.float32)
    idx2 = np.arange(n_hid + 1)
    rows2 = idx2[:n_hid]
    h_in = h[:n_hid]
    colbuf = np.empty(max(n_hid, n_out), dtype=np.int64)
    maskbuf = np.empty(max(n_hid, n_out), dtype=np.uint64)
    n_ev_max = max((n_in + 1) * n_hid, (n_hid + 1) * n_out)
    ev_j = np.empty(n_ev_max, dtype=np.int32)
    ev_i = np.empty(n_ev_max, dtype=np.int32)
    ev_n = np.empty(n_ev_max, dtype=np.int32)
    n_arr = L1.stats.shape[0]
    ledger = counters.size >= LEDGER_CYCLES + 2 * n_arr
    before = np.zeros(n_arr, dtype=np.int64)
    for t in range(start, stop):
        s = order[t]
        a0 = indptr[s]
        a1 = indptr[s + 1]
        nnz = a1 - a0
        zpre = tile_forward(reads, 0, L1, indices[a0:a1], values[a0:a1])
        for i in range(n_hid):
            h[i] = sigmoid(zpre[i])
        h[n_hid] = 1.0
        opre = tile_forward(reads, 1, L2, rows2, h_in)
        output_error(opre, labels[s], o, d2, counters)
        scale = tile_transpose(reads, 1, L2, d2, e1)
        for j in range(n_hid):
            d1[j] = h[j] * (1.0 - h[j]) * e1[j] * scale
        if ledger:
            counters[LEDGER_FORWARD] += 1.0
            counters[LEDGER_FORWARD + 1] += 1.0
            counters[LEDGER_TRANSPOSED + 1] += 1.0
            for a in range(n_arr):
                before[a] = _stats_sum(L2.stats, a)
        tile_update(reads, 1, L2, idx2, h, n_hid + 1, d2, lr, rng, colbuf, maskbuf, ev_j,
                    ev_i, ev_n)
        if ledger:
            for a in range(n_arr):
                if _stats_sum(L2.stats, a) != before[a]:
                    counters[LEDGER_CYCLES + n_arr + a] += 1.0
                before[a] = _stats_sum(L1.stats, a)
        for p in range(nnz):        # the layer's non-zero inputs, bias row last
            idx1[p] = indices[a0 + p]
            val1[p] = values[a0 + p]
        idx1[nnz] = n_in
        val1[nnz] = 1.0
        tile_update(reads, 0, L1, idx1, val1, nnz + 1, d1, lr, rng, colbuf, maskbuf, ev_j,
                    ev_i, ev_n)
        if ledger:
            for a in range(n_arr):
                if _stats_sum(L1.stats, a) != before[a]:
                    counters[LEDGER_CYCLES + a] += 1.0
        L1.cfg[0].counter += 1
        L2.cfg[0].counter += 1


key_caches(globals())   # recompile when any kernel source changes (.jitcache)
