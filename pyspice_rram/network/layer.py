"""Typed state of one layer (crossbar) of the network, shared by Python and the kernels.

:class:`LayerState` is a named tuple of arrays that numba compiles as a typed record (field
access by name, no integer slots). ``in`` counts the bias row; inputs are row-major
``(in, out)`` so that one input drives one contiguous crossbar row:

=========  ====================  ========================================================
``Wa``     (in, out) float32     analog weight realised by the cell
``Wr``     (in, out) float32     weight seen by a read (``Wa``; ``s sign(Wa)`` for 2T2R)
``S``      (A, 2, in, out) f32   device state in [0, 1] of array ``a``, device +/- (0/1)
``G0``     (A, 2, in, out) f32   device G_min in units of the nominal range G_max - G_min
``GR``     (A, 2, in, out) f32   device range (G_max - G_min) in units of the nominal range
``gain``   (A,) float64          weight per unit nominal range of array ``a`` (w_max / k_a)
``cfg``    (1,) :data:`CFG`      layer parameters and counters (named fields, mutable)
``dev``    (A,) :data:`DEV`      device parameters of each array (named fields)
``stats``  (A, 3) int64          per array: pairs updated, pulses, refreshes (``STAT_*``)
=========  ====================  ========================================================

Weight of a synapse::

    W = sum_a gain[a] * [(G0[a,0] + S[a,0] GR[a,0]) - (G0[a,1] + S[a,1] GR[a,1])]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

KIND_FP = 0
KIND_PAIR = 1
ROUND_DET, ROUND_STOCH, ROUND_COINC = 0, 1, 2
STAT_UPDATES, STAT_PULSES, STAT_REFRESH = 0, 1, 2

#: Layer parameters (one record per layer). ``kind``: :data:`KIND_FP` or :data:`KIND_PAIR`;
#: ``n_arrays``: arrays A of pairs; ``active``: target array of single/hybrid cells (the
#: phase); ``select``: 0 fixed target ``active``, 1 ``counter mod A`` (multi-device);
#: ``counter``: global sample counter; ``bl``: pulse-train length of pulse coincidence;
#: ``unidirectional``: potentiation pulses only; ``refresh``: reset and re-program a pair
#: whose target device saturates; ``sign_read``: binary read ``Wr = read_scale sign(Wa)``
#: (2T2R); ``max_pulses``: cap on the pulses of one update event; ``read_scale``: 2T2R read
#: weight; ``uniform``: every device has G0 = G_min/ΔG and GR = 1 (no device-to-device
#: spread; enables the fused update paths).
CFG = np.dtype([("kind", np.int64), ("n_arrays", np.int64), ("active", np.int64),
                ("select", np.int64), ("counter", np.int64), ("bl", np.int64),
                ("unidirectional", np.bool_), ("refresh", np.bool_), ("sign_read", np.bool_),
                ("max_pulses", np.int64), ("read_scale", np.float64), ("uniform", np.bool_)],
               align=True)

#: Device parameters of one array of pairs: ``n_states`` pulses from G_min to G_max,
#: ``beta_p``/``beta_d`` pulse-response nonlinearity, ``c2c`` cycle-to-cycle δ/μ,
#: ``dead_zone`` (stochastic rounding: updates below this many pulses are dropped) and
#: ``rounding`` (:data:`ROUND_DET`, :data:`ROUND_STOCH` or :data:`ROUND_COINC`).
DEV = np.dtype([("n_states", np.float64), ("beta_p", np.float64), ("beta_d", np.float64),
                ("c2c", np.float64), ("dead_zone", np.float64), ("rounding", np.int64)],
               align=True)


def make_cfg(kind: int, n_arrays: int = 1, select: int = 0, bl: int = 10, uni: bool = True,
             refresh: bool = True, sign: bool = False, maxp: int = 1000,
             read_scale: float = 1.0, uniform: bool = False) -> np.ndarray:
    """A :data:`CFG` record array of one element (phase 0, counter 0)."""
    cfg = np.zeros(1, CFG)
    cfg["kind"] = kind
    cfg["n_arrays"] = n_arrays
    cfg["select"] = select
    cfg["bl"] = bl
    cfg["unidirectional"] = bool(uni)
    cfg["refresh"] = bool(refresh)
    cfg["sign_read"] = bool(sign)
    cfg["max_pulses"] = maxp
    cfg["read_scale"] = read_scale
    cfg["uniform"] = bool(uniform)
    return cfg


def uniform_flag(G0: np.ndarray, GR: np.ndarray) -> bool:
    """True when all devices share G0 (per array) and GR = 1 (no device-to-device spread)."""
    for a in range(G0.shape[0]):
        if not (np.all(G0[a] == G0[a].flat[0]) and np.all(GR[a] == 1.0)):
            return False
    return True


class LayerState(NamedTuple):
    """Arrays of one layer (see the module docstring for the layout)."""

    Wa: np.ndarray
    Wr: np.ndarray
    S: np.ndarray
    G0: np.ndarray
    GR: np.ndarray
    gain: np.ndarray
    cfg: np.ndarray
    dev: np.ndarray
    stats: np.ndarray

    def copy(self) -> "LayerState":
        return LayerState(*(a.copy() for a in self))

    @property
    def n_arrays(self) -> int:
        return int(self.cfg["n_arrays"][0])

    @property
    def is_pair(self) -> bool:
        """True for device pairs, False for floating-point weights."""
        return int(self.cfg["kind"][0]) == KIND_PAIR

    @property
    def sign_read(self) -> bool:
        return bool(self.cfg["sign_read"][0])

    @property
    def active(self) -> int:
        """Target array of single-target cells (hybrid: 0 big, 1 small)."""
        return int(self.cfg["active"][0])


    def set_active(self, value: int) -> None:
        """Set the target array (phase) of single-target cells."""
        self.cfg["active"] = value

    def recompute(self) -> None:
        """Recompute ``Wa``/``Wr`` from the device states (after external edits)."""
        if not self.is_pair:
            self.Wr[...] = self.Wa
            return
        g = (self.G0 + self.S * self.GR).astype(np.float64)
        w = np.einsum("a,aji->ji", self.gain, g[:, 0] - g[:, 1]).astype(np.float32)
        self.Wa[...] = w
        if self.sign_read:
            rs = self.cfg["read_scale"][0]
            self.Wr[...] = np.where(w >= 0, rs, -rs).astype(np.float32)
        else:
            self.Wr[...] = w

    def array_weights(self) -> np.ndarray:
        """Weight contribution of each array, shape (A, in, out)."""
        if not self.is_pair:
            return self.Wa[None].copy()
        g = self.G0 + self.S * self.GR
        return (self.gain[:, None, None] * (g[:, 0] - g[:, 1])).astype(np.float32)

    def update(self, x: np.ndarray, delta: np.ndarray, lr: float,
               rng_state: np.ndarray) -> None:
        """One outer-product update ``ΔW = -lr x δ^T`` (x without bias; bias input = 1)."""
        from .update import update_layer

        x = np.asarray(x, dtype=np.float32)
        nz = np.flatnonzero(x)
        idx = np.append(nz, self.Wa.shape[0] - 1).astype(np.int64)
        vals = np.append(x[nz], np.float32(1.0)).astype(np.float32)
        n_out = self.Wa.shape[1]
        n_ev = self.Wa.shape[0] * n_out
        update_layer(self, idx, vals, len(idx), np.asarray(delta, dtype=np.float32),
                     float(lr), rng_state, np.empty(n_out, np.int64),
                     np.empty(n_out, np.uint64), np.empty(n_ev, np.int32),
                     np.empty(n_ev, np.int32), np.empty(n_ev, np.int32))

    @classmethod
    def from_legacy(cls, Wa, Wr, S, G0, GR, gain, ip, fp, stats) -> "LayerState":
        """A layer from the integer/float parameter slots of run files written before the
        typed layout (``ip``: kind, arrays, active, select, counter, rounding, bl,
        unidirectional, refresh, sign read, max pulses; ``fp`` per array: states, beta_p,
        beta_d, c2c, read scale, uniform, dead zone, rounding + 1)."""
        ip = np.asarray(ip, np.int64)
        fp = np.asarray(fp, np.float64)
        n_arr = fp.shape[0]
        width = fp.shape[1]
        cfg = make_cfg(int(ip[0]), int(ip[1]), int(ip[3]), int(ip[6]), bool(ip[7]),
                       bool(ip[8]), bool(ip[9]), int(ip[10]), float(fp[0, 4]))
        cfg["active"] = ip[2]
        cfg["counter"] = ip[4]
        cfg["uniform"] = (fp[0, 5] == 1.0) if width > 5 else \
            (ip[0] != KIND_FP and uniform_flag(G0, GR))
        dev = np.zeros(n_arr, DEV)
        for k, name in enumerate(("n_states", "beta_p", "beta_d", "c2c")):
            dev[name] = fp[:, k]
        dev["dead_zone"] = fp[:, 6] if width > 6 else 0.0
        own = fp[:, 7] if width > 7 else np.zeros(n_arr)
        dev["rounding"] = np.where(own == 0.0, ip[5], own.astype(np.int64) - 1)
        return cls(Wa, Wr, S, G0, GR, gain, cfg, dev, np.asarray(stats, np.int64))
