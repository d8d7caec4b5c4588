"""Training throughput (samples/s, one thread) of each synapse cell vs a plain NumPy loop.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_training.py [--mnist DIR] [--samples N]

Prints, per case, samples per wall-clock and per CPU second and the ratio to the plain
NumPy loop (FP for FP, the single-pair deterministic loop for device cells) run first in
the same process. Uses full MNIST (784-250-10) when found (``--mnist``, ``$PYSPICE_RRAM_MNIST`` or the cache),
otherwise the 8x8 digits. Each compiled cell is timed on ``--samples`` training samples
after a warm-up (numba compile excluded); the hybrid cell is timed both in its dynamic
(big-array) phase from the initial state and in its fine-tuning (small-array) phase after
one epoch of dynamic tuning. The NumPy reference is a straightforward
per-sample loop (dense matrix products, dense outer-product update, vectorised pulse
rounding and noise) run in the same process on the same data.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from pyspice_rram.network.layer import STAT_UPDATES  # noqa: E402
from pyspice_rram.network.rng import seed_state  # noqa: E402
from pyspice_rram.network.data import load_digits, load_mnist  # noqa: E402
from pyspice_rram.network.train import Network, TrainConfig  # noqa: E402

DEV = {"n_states": 50, "c2c": 0.34}
CASES = [
    ("fp", "fp", {}, {}),
    ("single, deterministic", "single", {"rounding": "deterministic"}, DEV),
    ("single, stochastic rounding", "single", {"rounding": "stochastic"}, DEV),
    ("single, pulse coincidence BL=10", "single", {"rounding": "coincidence"}, DEV),
    ("hybrid k=10, dynamic phase", "hybrid", {"rounding": "deterministic"}, DEV),
    ("hybrid k=10, fine phase", "hybrid", {"rounding": "deterministic"}, DEV),
    ("hybrid k=10, stochastic, fine phase", "hybrid", {"rounding": "stochastic"}, DEV),
    ("hybrid k=10, coincidence, fine phase", "hybrid", {"rounding": "coincidence"}, DEV),
    ("multi-device x4, stochastic", "multi", {"rounding": "stochastic", "n_devices": 4}, DEV),
    ("2T2R, stochastic", "2t2r", {"rounding": "stochastic"}, DEV),
    # the weight ranges the stochastic-rounding configs train with (docs/results.md)
    ("hybrid, stoch., fine phase, |W|<=1/2 (B)", "hybrid", {"rounding": "stochastic"}, DEV,
     [1.0, 2.0]),
    ("single, stochastic, |W|<=1/2 (B)", "single", {"rounding": "stochastic"}, DEV, [1.0, 2.0]),
    ("2T2R, stochastic, |W|<=0.5/1 (config)", "2t2r", {"rounding": "stochastic"}, DEV,
     [0.5, 1.0]),
]


def time_cell(data, cell, params, device, n, w_max, fine=False):
    cfg = TrainConfig(cell=cell, cell_params=params, device=device, w_max=w_max)
    net = Network(cfg, data.n_features, 10)
    n_train = len(data.y_train)
    order = np.random.default_rng(0).permutation(n_train)
    order = np.concatenate([order] * (1 + (2 * n + n_train) // n_train))
    rng = seed_state(0)
    c = np.zeros(2)
    net.train_samples(data, order, 0, 50, rng, c)          # compile / warm up
    start = 50
    if fine:
        m = n_train
        net.train_samples(data, order, start, start + m, rng, c)
        start += m
        net.phase = 1
    for st in net.layers:
        st.stats[...] = 0
    t0, c0 = time.perf_counter(), time.thread_time()
    net.train_samples(data, order, start, start + n, rng, c)
    dt, dc = time.perf_counter() - t0, time.thread_time() - c0
    events = sum(int(st.stats[:, STAT_UPDATES].sum()) for st in net.layers) if cell != "fp" else 0
    return n / dt, n / dc, events / n


def numpy_loop(data, n, device=None, w_max=(0.3, 1.0), k=10.0, seed=0):
    """Plain NumPy per-sample loop: FP (device None) or hybrid big-phase pulse updates."""
    rng = np.random.default_rng(seed)
    n_in, n_hid, n_out = data.n_features, 250, 10
    # float32 throughout, like the compiled path (a float32 array divided by np.sqrt(n) is
    # promoted to float64, which made the baseline ~2x slower and the ratios ~2x too high)
    W1 = (rng.uniform(-1, 1, (n_in + 1, n_hid)) / np.sqrt(n_in)).astype(np.float32)
    W2 = (rng.uniform(-1, 1, (n_hid + 1, n_out)) / np.sqrt(n_hid)).astype(np.float32)
    if device is not None:
        N, c2c = device["n_states"], device["c2c"]
        S = [np.zeros((2,) + W.shape, np.float32) for W in (W1, W2)]
    X = np.asarray(data.dense("train", 0, n), dtype=np.float32)
    Y = np.eye(n_out, dtype=np.float32)[data.y_train[:n]]
    lr = 0.1
    t0, c0 = time.perf_counter(), time.thread_time()
    for s in range(n):
        x = np.append(X[s], 1.0).astype(np.float32)
        h = 1 / (1 + np.exp(-(x @ W1)))
        hb = np.append(h, 1.0).astype(np.float32)
        o = 1 / (1 + np.exp(-(hb @ W2)))
        d2 = (o - Y[s]) * o * (1 - o)
        d1 = h * (1 - h) * (W2[:-1] @ d2)
        for li, W, a, d in ((1, W2, hb, d2), (0, W1, x, d1)):
            dW = -lr * np.outer(a, d)
            if device is None:
                W += dW
                continue
            step = w_max[li] / N
            npulse = np.rint(dW / step)
            for dev, sel in ((0, npulse > 0), (1, npulse < 0)):
                if not sel.any():
                    continue
                m = np.abs(npulse[sel])
                ds = m / N * (1 + c2c / np.sqrt(m) * rng.standard_normal(
                    m.shape, dtype=np.float32))
                S[li][dev][sel] = np.clip(S[li][dev][sel] + ds, 0, 1)
            W[...] = w_max[li] * (S[li][0] - S[li][1])
    assert W1.dtype == W2.dtype == np.float32, "the NumPy baseline must stay in float32"
    return n / (time.perf_counter() - t0), n / (time.thread_time() - c0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist", default=None)
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--numpy-samples", type=int, default=2000)
    args = ap.parse_args(argv)
    try:
        data = load_mnist(args.mnist)
    except FileNotFoundError:
        data = load_digits()
    w_max = [0.15, 0.5]
    print(f"data: {data.name} ({data.n_features}-250-10), {args.samples} samples per case, "
          f"one thread, {platform.processor() or platform.machine()}, load "
          f"{os.getloadavg()[0]:.2f}")
    print("samples/s = per wall-clock second; per CPU s = per second of this thread's CPU time "
          "(robust to other processes sharing the cores)")
    rows = []
    base = {}
    for label, dev in (("NumPy loop, fp", None), ("NumPy loop, single/big pair det.", DEV)):
        sps, spc = numpy_loop(data, args.numpy_samples, dev, w_max)
        rows.append((label, sps, spc, float("nan")))
        base["fp" if dev is None else "device"] = spc
    print(f"{'case':42s} {'samples/s':>10s} {'per CPU s':>10s} {'x NumPy':>8s} "
          f"{'events/sample':>14s}")
    for label, sps, spc, _ in rows:
        print(f"{label:42s} {sps:10.0f} {spc:10.0f} {1.0:8.1f} {'':>14s}", flush=True)
    for label, cell, params, device, *wm in CASES:
        sps, spc, ev = time_cell(data, cell, params, device, args.samples,
                                 wm[0] if wm else w_max, fine="fine phase" in label)
        rows.append((label, sps, spc, ev))
        ratio = spc / base["fp" if cell == "fp" else "device"]   # same-process baseline
        print(f"{label:42s} {sps:10.0f} {spc:10.0f} {ratio:8.1f} {ev:14.1f}", flush=True)
    return rows


if __name__ == "__main__":
    main()
