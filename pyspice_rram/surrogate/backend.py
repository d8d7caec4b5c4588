"""The tile surrogate as a VMM backend of the training layer (:mod:`pyspice_rram.network`).

Each layer's crossbar (``n_in + 1`` rows with the bias row, ``n_out`` columns) is cut into
tiles of ``tile_rows x tile_cols`` cells (the last tiles padded with absent cells); every
array of the unit cell (big pair ``G+/G-``, small pair ``g+/g-``, ...) is one set of tiles.
Inputs are read voltages ``v = x V_read`` (forward: activations in [0, 1], bias row at 1;
transposed: errors scaled per sample so that ``max |v| = V_read``). Partial sums of the
tiles are added in the periphery, and currents are converted back to weight units with the
chord conductance at ``V_read``::

    y_j = sum_{a,p} s_p gain_a / (dG_a h(V_read)) * I_{a,p,j}(v)        (s_+ = 1, s_- = -1)

so that the ideal read of a full-scale input reproduces ``x @ W``; with the surrogate the
read contains the IR drop of every tile and the sinh nonlinearity of the cells.

Cost per read: the surrogate's per-cell factors (:meth:`TileSurrogate.factors`) are
recomputed for all tiles every ``refresh_every`` training samples (and before every batched
evaluation); between refreshes the effective matrices ``sum s gain G * f`` are kept up to
date row by row where the weights changed, and a read is four matrix products
(``h(v)``, ``v h'(v)``, ``v^2 h''/2`` and the chord term). The factors depend on the
conductances only through line integrals (the ladder admittances), so their staleness
between refreshes is a small second-order effect (measured in the tests).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from ..device.card import ModelCard
from ..network.backend import BACKENDS, VMMBackend
from ..network.kernels import IP_COUNTER, output_error, update_buffers, update_layer
from .model import CellLaw, SurrogateValidityError, TileSurrogate, canonical, line_resistances

TERMS = ("dh", "d2h", "dhs")


@njit(cache=True, inline="always")
def _hdh(vv, v_nl):
    """``(h(v), v h'(v))`` of the sinh read law with one ``expm1``."""
    e = math.expm1(vv / v_nl)
    e2 = -e / (1.0 + e)
    return 0.5 * v_nl * (e - e2), vv * (1.0 + 0.5 * (e + e2))


@njit(cache=True, inline="always")
def _sig(z):
    return 0.5 * (1.0 + math.tanh(0.5 * z))


@njit(cache=True, inline="always")
def _cell(r, j, G0, S, GR, coef, F, stack, n_first, transposed):
    """Refresh entry ``(r, j)`` of a stacked ``[W_h; W_dh]`` matrix (or of its transpose)."""
    wh = 0.0
    wd = 0.0
    for a in range(S.shape[0]):
        for p in range(2):
            g = coef[a, p] * (G0[a, p, r, j] + S[a, p, r, j] * GR[a, p, r, j])
            wh += g
            wd += g * F[a, p, r, j]
    if transposed:
        stack[j, r] = wh
        stack[n_first + j, r] = wd
    else:
        stack[r, j] = wh
        stack[n_first + r, j] = wd


@njit(cache=True)
def _sync_cells(rows, W, W_prev, G0, S, GR, coef, Ff, sf, has_f, Ft, st, has_t):
    """Bring the stacks up to date on every cell of ``rows`` whose read weight changed since
    the last call: ``W_h = sum coef (G0 + S GR)``, ``W_dh = sum coef (G0 + S GR) F`` (forward stack
    ``sf`` rows, transposed stack ``st`` columns)."""
    n_in, n_out = W.shape
    for r in rows:
        for j in range(n_out):
            if W[r, j] != W_prev[r, j]:
                W_prev[r, j] = W[r, j]
                if has_f:
                    _cell(r, j, G0, S, GR, coef, Ff, sf, n_in, False)
                if has_t:
                    _cell(r, j, G0, S, GR, coef, Ft, st, n_out, True)


@njit(cache=True)
def _train_kernel(order, start, stop, indptr, indices, values, labels, L1, L2, lr, rng,
                  counters, s0f, f0f, c0, old1, s1f, f1f, s1t, f1t, c1, old2, v_read, v_nl):
    """Per-sample SGD like :func:`pyspice_rram.network.kernels.train_samples`, with the
    forward reads of both layers and the transposed read of layer 2 through the surrogate's
    effective matrices (``W_h = Wa / h(V_read)`` and the ``W_dh`` part of the stacks,
    inputs ``h(v)`` and ``v h'(v)``), kept up to
    date on every synapse whose weight ``Wa`` an update changed (a pair refresh that
    re-programs exactly the same weight is caught at the next factor refresh)."""
    Wa1, Wr1, S1, G01, GR1, g1, ip1, fp1, st1 = L1
    Wa2, Wr2, S2, G02, GR2, g2, ip2, fp2, st2 = L2
    n_in = Wr1.shape[0] - 1
    n_hid = Wr1.shape[1]
    n_out = Wr2.shape[1]
    h = np.empty(n_hid + 1, dtype=np.float32)
    o = np.empty(n_out, dtype=np.float32)
    d2 = np.empty(n_out, dtype=np.float32)
    d1 = np.empty(n_hid, dtype=np.float32)
    zpre = np.empty(n_hid)
    opre = np.empty(n_out)
    idx1, val1, idx2, colbuf, maskbuf, ev_j, ev_i, ev_n = update_buffers(n_in, n_hid, n_out)
    n0 = n_in + 1
    n1 = n_hid + 1
    inv_h = 1.0 / (v_nl * math.sinh(v_read / v_nl))   # W_h = Wa / h(V_read) exactly
    hv = np.empty(n_out)
    dv = np.empty(n_out)
    for t in range(start, stop):
        s = order[t]
        a0 = indptr[s]
        a1 = indptr[s + 1]
        nnz = a1 - a0
        for p in range(nnz):
            idx1[p] = indices[a0 + p]
            val1[p] = values[a0 + p]
        idx1[nnz] = n_in
        val1[nnz] = 1.0
        for i in range(n_hid):
            zpre[i] = 0.0
        for p in range(nnz + 1):
            j = idx1[p]
            hx, dx = _hdh(val1[p] * v_read, v_nl)
            hx *= inv_h
            for i in range(n_hid):
                zpre[i] += hx * Wa1[j, i] + dx * s0f[n0 + j, i]
        for i in range(n_hid):
            h[i] = _sig(zpre[i])
        h[n_hid] = 1.0
        for k in range(n_out):
            opre[k] = 0.0
        for j in range(n1):
            hx, dx = _hdh(h[j] * v_read, v_nl)
            hx *= inv_h
            for k in range(n_out):
                opre[k] += hx * Wa2[j, k] + dx * s1f[n1 + j, k]
        output_error(opre, labels[s], o, d2, counters)
        scale = 0.0
        for k in range(n_out):
            scale = max(scale, abs(d2[k]))
        for k in range(n_out):
            vk = d2[k] / scale * v_read if scale > 0 else 0.0
            hv[k], dv[k] = _hdh(vk, v_nl)
        for j in range(n_hid):
            acc = 0.0
            for k in range(n_out):
                acc += hv[k] * inv_h * Wa2[j, k] + dv[k] * s1t[n_out + k, j]
            d1[j] = h[j] * (1.0 - h[j]) * acc * scale
        before2 = st2.sum()
        update_layer(Wa2, Wr2, S2, G02, GR2, g2, ip2, fp2, st2, idx2, h, n_hid + 1, d2, lr,
                     rng, colbuf, maskbuf, ev_j, ev_i, ev_n)
        before1 = st1.sum()
        update_layer(Wa1, Wr1, S1, G01, GR1, g1, ip1, fp1, st1, idx1, val1, nnz + 1, d1, lr,
                     rng, colbuf, maskbuf, ev_j, ev_i, ev_n)
        touched2 = st2.sum() != before2   # no update, pulse or refresh: no device changed
        touched1 = st1.sum() != before1
        ip1[IP_COUNTER] += 1
        ip2[IP_COUNTER] += 1
        # effective matrices follow the synapses whose weight changed
        for j in range(n1 if touched2 else 0):
            for k in range(n_out):
                if Wa2[j, k] != old2[j, k]:
                    old2[j, k] = Wa2[j, k]
                    _cell(j, k, G02, S2, GR2, c1, f1f, s1f, n1, False)
                    _cell(j, k, G02, S2, GR2, c1, f1t, s1t, n_out, True)
        for p in range(nnz + 1 if touched1 else 0):
            r = idx1[p]
            for i in range(n_hid):
                if Wa1[r, i] != old1[r, i]:
                    old1[r, i] = Wa1[r, i]
                    _cell(r, i, G01, S1, GR1, c0, f0f, s0f, n0, False)


class SurrogateBackend(VMMBackend):
    """Crossbar reads through the fitted tile surrogate.

    Parameters
    ----------
    surrogate : TileSurrogate or path or None
        The fitted surrogate (default: the shipped one).
    card : ModelCard or None
        Card of the devices (default: the surrogate's card).
    tile : (rows, cols)
        Tile size in cells.
    r_wire : float
        Wire resistance per cell segment (Ω) of rows and columns.
    r_driver, r_sense : float
        Driver and sense resistances (Ω).
    v_read : float or None
        Full-scale read voltage (V); default the card's ``scheme.v_read``.
    refresh_every : int
        Training samples between recomputations of the per-cell factors.
    second_order : bool
        Also apply the second-order (``v^2 h''``) and chord-correction terms of the surrogate
        (two more matrix products per read; below 0.01 % of full scale at 64x64, 1 Ω).
    on_invalid : ``"error"`` or ``"warn"``
        What to do when the tiles are outside the surrogate's validity range.
    """

    ideal = False

    def __init__(self, surrogate: TileSurrogate | str | None = None, card: ModelCard | None = None,
                 tile: tuple[int, int] = (64, 64), r_wire: float = 1.0, r_driver: float = 0.0,
                 r_sense: float = 0.0, v_read: float | None = None, refresh_every: int = 5000,
                 second_order: bool = False, on_invalid: str = "error"):
        if not isinstance(surrogate, TileSurrogate):
            surrogate = TileSurrogate.load(surrogate)
        self.sur = surrogate
        self.card = card or (ModelCard.from_dict(surrogate.card) if surrogate.card
                             else ModelCard.reference())
        self.tile = (int(tile[0]), int(tile[1]))
        self.r_wire = float(r_wire)
        self.r_driver = float(r_driver)
        self.r_sense = float(r_sense)
        self.v_read = float(v_read or self.card.scheme.v_read)
        self.refresh_every = max(1, int(refresh_every))
        self.on_invalid = on_invalid
        self.second_order = bool(second_order)
        self.terms = TERMS if self.second_order else ("dh",)
        self.card.require_default_family("the tile surrogate backend")
        self.law = CellLaw(v_nl=float(self.card.v_nl),
                           v_eff=surrogate.v_eff_frac * float(surrogate.validity.get(
                               "v_max", self.v_read)))
        self.h_read = float(self.law.transforms(np.array(self.v_read))["h"])
        self.network = None
        self._state: dict[int, dict[str, Any]] = {}
        self.samples = 0
        self.refreshes = 0
        self._check_settings()

    # ------------------------------------------------------------------ validity
    def _check_settings(self) -> None:
        val = self.sur.validity
        problems = []
        if "size" in val:
            lo, hi = val["size"]
            if not all(lo <= n <= hi for n in self.tile):
                problems.append(f"tile {self.tile} outside the fitted sizes [{lo}, {hi}]")
        if "r_wire" in val and self.r_wire > val["r_wire"][1] * (1 + 1e-9):
            problems.append(f"r_wire {self.r_wire} Ω above the fitted maximum "
                            f"{val['r_wire'][1]} Ω")
        if self.r_driver > val.get("r_driver_max", math.inf):
            problems.append(f"r_driver {self.r_driver} Ω above {val['r_driver_max']} Ω")
        if self.r_sense > val.get("r_sense_max", math.inf):
            problems.append(f"r_sense {self.r_sense} Ω above {val['r_sense_max']} Ω")
        if self.v_read > val.get("v_max", math.inf) * (1 + 1e-9):
            problems.append(f"v_read {self.v_read} V above {val['v_max']} V")
        if self.sur.card is not None:
            mine = ModelCard.from_dict(self.sur.card)
            for p in ("g_min_density", "g_max_density", "v_nl"):
                if not math.isclose(getattr(self.card, p), getattr(mine, p), rel_tol=1e-6):
                    problems.append(f"card {p} differs from the fitted card")
        if problems:
            msg = "surrogate backend outside the surrogate's validity: " + "; ".join(problems)
            if self.on_invalid == "error":
                raise SurrogateValidityError(msg)
            import warnings

            warnings.warn(msg, stacklevel=2)

    # ------------------------------------------------------------------ layer mapping
    def bind(self, network: Any) -> None:
        self.network = network
        self._state = {}

    def _arrays(self, layer: int, W: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(G0, S, GR, coef, dG)``: nominal device conductances and read coefficients.

        Pair-based cells read their device arrays; cells without devices (floating point)
        and sign-read cells (2T2R) are mapped onto one differential pair of the reference
        device holding ``W`` (``G± = G_min + max(±W, 0) / w_s`` in units of the range).
        """
        ref_area = self.card.area_ref
        dG_ref = (self.card.g_max_density - self.card.g_min_density) * ref_area
        gmin = self.card.g_min_density / (self.card.g_max_density - self.card.g_min_density)
        st = None
        if self.network is not None:
            st = self.network.layers[layer]
        from ..network import kernels as K

        if st is not None and st.ip[K.IP_KIND] == K.KIND_PAIR and not st.ip[K.IP_SIGN]:
            A = st.S.shape[0]
            areas = np.full(A, ref_area)
            cell = getattr(self.network, "cell", None)
            if getattr(cell, "kind", "") == "hybrid" and A == 2:
                areas[1] = ref_area / float(cell.k)
            dG = (self.card.g_max_density - self.card.g_min_density) * areas
            coef = np.stack([st.gain, -st.gain], axis=1) / self.h_read  # (A, 2)
            # currents are dG * G_nom * (...); dividing by dG converts back: coef needs no dG
            return st.G0, st.S, st.GR, coef, dG
        w = np.asarray(W, dtype=np.float32)
        ws = float(np.max(np.abs(w))) or 1.0
        S = np.stack([np.maximum(w, 0), np.maximum(-w, 0)])[None] / ws
        G0 = np.full_like(S, gmin)
        GR = np.ones_like(S)
        coef = np.array([[ws, -ws]]) / self.h_read
        return G0.astype(np.float32), S.astype(np.float32), GR.astype(np.float32), coef, \
            np.array([dG_ref])

    def _tiles(self, m: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """Cut ``(..., n_rows, n_cols)`` into tiles ``(..., Ti, Tj, tr, tc)`` (zero padded)."""
        tr, tc = self.tile
        n_r, n_c = m.shape[-2:]
        Ti, Tj = -(-n_r // tr), -(-n_c // tc)
        pad = np.zeros(m.shape[:-2] + (Ti * tr, Tj * tc))
        pad[..., :n_r, :n_c] = m
        t = pad.reshape(m.shape[:-2] + (Ti, tr, Tj, tc))
        return np.moveaxis(t, -3, -2), (n_r, n_c)

    def _untile(self, t: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        tr, tc = self.tile
        Ti, Tj = t.shape[-4], t.shape[-3]
        m = np.moveaxis(t, -2, -3).reshape(t.shape[:-4] + (Ti * tr, Tj * tc))
        return m[..., :shape[0], :shape[1]]

    def _factors(self, G0, S, GR, dG, direction: str) -> dict[str, np.ndarray]:
        """Per-cell factors ``f_term`` (A, 2, n_in+1, n_out) of all tiles of a layer."""
        g_nom = G0.astype(float) + S.astype(float) * GR.astype(float)
        a = g_nom * dG[:, None, None, None]                      # low-field conductance (S)
        tiles, shape = self._tiles(a)
        can = canonical(tiles, direction)
        r_d, r_s, R_d, R_s = line_resistances(self.r_wire, self.r_wire, self.r_driver,
                                              self.r_sense, direction)
        fac = self.sur.factors(can, self.law, r_d, r_s, R_d, R_s)
        out = {}
        for term in TERMS:
            f = canonical(fac[term], direction) if direction == "forward" else \
                np.swapaxes(fac[term], -1, -2)[..., ::-1, :]
            out[term] = np.ascontiguousarray(self._untile(f, shape), dtype=np.float32)
        return out

    def _refresh(self, layer: int, W: np.ndarray, directions: tuple[str, ...]) -> dict:
        G0, S, GR, coef, dG = self._arrays(layer, W)
        st = self._state.setdefault(layer, {"dirs": {}})
        st["coef"] = coef
        g_nom = G0.astype(float) + S.astype(float) * GR.astype(float)
        for direction in directions:
            F = self._factors(G0, S, GR, dG, direction)
            st["dirs"][direction] = {"F": F}
        wh = np.einsum("ap,apij->ij", coef, g_nom)
        for direction, d in st["dirs"].items():
            mats = [wh] + [np.einsum("ap,apij->ij", coef, g_nom * d["F"][t])
                           for t in self.terms]
            if direction == "transposed":
                mats = [m.T for m in mats]
            d["stack"] = np.ascontiguousarray(np.concatenate(mats, axis=0), dtype=np.float32)
        st["W_prev"] = np.array(W, dtype=np.float32, copy=True)
        st["since"] = 0
        self.refreshes += 1
        return st

    def _sync(self, layer: int, W: np.ndarray, direction: str, batch: int) -> dict:
        st = self._state.get(layer)
        need = (st is None or direction not in st["dirs"] or batch > 1
                or st["since"] >= self.refresh_every)
        if need:
            dirs = tuple(sorted(set((st or {}).get("dirs", {})) | {direction}))
            return self._refresh(layer, W, dirs)
        Wf = np.asarray(W, dtype=np.float32)
        rows = np.flatnonzero((Wf != st["W_prev"]).any(axis=1))
        if rows.size == 0:
            return st
        G0, S, GR, coef, _ = self._arrays(layer, W)
        dirs = st["dirs"]
        dummy = np.zeros((1, 1), np.float32)
        f = dirs.get("forward")
        t = dirs.get("transposed")
        _sync_cells(rows, Wf, st["W_prev"], G0, S, GR, coef,
                    f["F"]["dh"] if f else G0, f["stack"] if f else dummy, f is not None,
                    t["F"]["dh"] if t else G0, t["stack"] if t else dummy, t is not None)
        return st

    # ------------------------------------------------------------------ reads
    def _inputs(self, v: np.ndarray) -> np.ndarray:
        """Input transforms ``[h(v), v h'(v), (v^2 h''/2, v h' (s - 1))]`` side by side (float32)."""
        v = v.astype(np.float64)
        if self.second_order:
            tr = self.law.transforms(v)
            parts = [tr[n] for n in ("h",) + TERMS]
        else:
            u = v / self.law.v_nl
            parts = [self.law.v_nl * np.sinh(u), v * np.cosh(u)]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def _read(self, st: dict, direction: str, v: np.ndarray) -> np.ndarray:
        return self._inputs(v) @ st["dirs"][direction]["stack"]

    # ------------------------------------------------------------------ compiled training
    def train_samples(self, net: Any, data: Any, order: np.ndarray, start: int, stop: int,
                      rng_state: np.ndarray, counters: np.ndarray) -> None:
        """Train ``net`` on ``order[start:stop]`` in a compiled per-sample loop.

        Same semantics as :meth:`pyspice_rram.network.train.Network.train_samples` (forward
        reads of both layers and the transposed read of layer 2 through this backend, the
        same numba update kernels), without a Python round trip per sample: the factors are
        refreshed every ``refresh_every`` samples between compiled chunks. Needs pair-based
        cells with device arrays (single, hybrid, multi-device).
        """
        from ..network import kernels as K

        L0, L1 = net.layers
        for st in (L0, L1):
            if st.ip[K.IP_KIND] != K.KIND_PAIR or st.ip[K.IP_SIGN]:
                raise ValueError("the compiled surrogate loop needs pair-based device cells")
        if self.second_order:
            raise ValueError("the compiled surrogate loop uses first-order reads "
                             "(second_order=False)")
        if self.network is not net:
            self.bind(net)
        indptr, indices, values = data.csr("train")
        lr = float(net.config.lr)
        t = start
        while t < stop:
            s0 = self._sync(0, L0.Wr, "forward", 1)
            s1 = self._sync(1, L1.Wr, "forward", 1)
            if "transposed" not in s1["dirs"]:
                s1 = self._refresh(1, L1.Wr, ("forward", "transposed"))
            n = min(stop - t, self.refresh_every - max(s0["since"], s1["since"]))
            n = max(1, n)
            f0 = s0["dirs"]["forward"]
            f1 = s1["dirs"]["forward"]
            t1 = s1["dirs"]["transposed"]
            _train_kernel(order, t, t + n, indptr, indices, values, data.y_train,
                          L0.as_tuple(), L1.as_tuple(), lr, rng_state, counters,
                          f0["stack"], f0["F"]["dh"], s0["coef"], s0["W_prev"],
                          f1["stack"], f1["F"]["dh"], t1["stack"], t1["F"]["dh"], s1["coef"],
                          s1["W_prev"], self.v_read, float(self.law.v_nl))
            for st in (s0, s1):
                st["since"] += n
            self.samples += n
            t += n

    def forward(self, layer: int, W: np.ndarray, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float32))
        B = x.shape[0]
        if layer == 0 and B == 1:
            self.samples += 1
            for s in self._state.values():
                s["since"] += 1
        st = self._sync(layer, W, "forward", B)
        xa = np.concatenate([x, np.ones((B, 1), np.float32)], axis=1)
        if float(np.max(np.abs(xa))) > 1.0 + 1e-6:
            raise SurrogateValidityError("forward inputs must be in [-1, 1] (read voltage "
                                         "= x V_read)")
        return self._read(st, "forward", xa * self.v_read).astype(np.float32)

    def transpose(self, layer: int, W: np.ndarray, d: np.ndarray) -> np.ndarray:
        d = np.atleast_2d(np.asarray(d, dtype=np.float32))
        st = self._sync(layer, W, "transposed", d.shape[0])
        scale = np.max(np.abs(d), axis=1, keepdims=True)
        safe = np.where(scale > 0, scale, 1.0)
        z = self._read(st, "transposed", d / safe * self.v_read) * safe
        return z[:, :-1].astype(np.float32)


BACKENDS.setdefault("surrogate", SurrogateBackend)
