"""The tile surrogate as a tile backend of the training layer (:mod:`pyspice_rram.network`).

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
evaluation); between refreshes the effective matrices ``sum s gain G * f`` follow the
devices that moved (``W_dh += coef GR F dS``: per changed row, only the array the cell
programmed in the compiled loop), and a read is four matrix products
(``h(v)``, ``v h'(v)``, ``v^2 h''/2`` and the chord term). The factors depend on the
conductances only through line integrals (the ladder admittances), so their staleness
between refreshes is a small second-order effect (measured in the tests).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from collections import namedtuple

from ..device.card import ModelCard
from ..network.cells import ConfigError
from ..network.circuit_spec import CircuitSpec
from ..network.backend import TileBackend, register_backend, register_tile_kernels
from ..network.jitcache import key_caches
from ..network.update import update_layer
from .model import CellLaw, SurrogateValidityError, TileSurrogate, canonical, line_resistances

TERMS = ("dh", "d2h", "dhs")


@njit(cache=True, inline="always")
def _hdh(vv, v_nl):
    """``(h(v), v h'(v))`` of the sinh read law with one ``expm1``."""
    e = math.expm1(vv / v_nl)
    e2 = -e / (1.0 + e)
    return 0.5 * v_nl * (e - e2), vv * (1.0 + 0.5 * (e + e2))


#: compiled view of one layer: device arrays (the network's, or a floating-point / sign-read
#: weight mapped onto one pair: ``mapped``, full scale ``ws``), read coefficients, the read
#: weights at the last sync (``old``), forward stack ``sf`` = [W_h; W_dh] with its factors
#: ``ff``, transposed stack ``st``/``ft`` (when ``has_t``), pre-activation buffer ``z``;
#: mapped layers: ``of``/``ot`` (3, n_rows, n_cols) = ``(A, K+, K-)`` of the forward /
#: transposed first-order term ``W_dh = A + K+ max(w, 0) + K- min(w, 0)`` (:func:`_otf`);
#: device layers: ``seen`` the device states ``S`` at the last sync, ``kh = coef GR`` and
#: ``kf``/``kt = coef GR F`` (forward / transposed), the change of ``W_h`` / ``W_dh`` per unit
#: change of ``S`` of each device (:func:`sync_rows`)
SurLayer = namedtuple("SurLayer", ["G0", "S", "GR", "coef", "mapped", "ws", "old", "has_f",
                                   "sf", "ff", "has_t", "st", "ft", "z", "of", "ot", "seen",
                                   "kh", "kf", "kt"])
#: read state of the compiled SGD loop: both layers and the read law
SurrogateReads = namedtuple("SurrogateReads", ["l0", "l1", "v_read", "v_nl", "inv_h", "hv",
                                               "dv"])


@njit(cache=True)
def _mapped_row(ly, W, r, changed):
    """:func:`sync_rows` for one row of a mapped layer (one pair, ``G0`` uniform, ``GR = 1``,
    as :meth:`SurrogateBackend._mapping` builds it): the same float32 ``S`` and the same sums,
    without reading the constant ``G0``/``GR`` planes."""
    n_in, n_out = W.shape
    g0p = ly.G0[0, 0, 0, 0]
    g0m = ly.G0[0, 1, 0, 0]
    cp = ly.coef[0, 0]
    cm = ly.coef[0, 1]
    for j in range(n_out):
        if changed[j]:
            w = W[r, j]
            ly.old[r, j] = w
            sp = np.float32(max(w, 0.0) / ly.ws)
            sm = np.float32(max(-w, 0.0) / ly.ws)
            ly.S[0, 0, r, j] = sp
            ly.S[0, 1, r, j] = sm
            gp = cp * (g0p + sp)
            gm = cm * (g0m + sm)
            if ly.has_f:
                ly.sf[r, j] = gp + gm
                ly.sf[n_in + r, j] = gp * ly.ff[0, 0, r, j] + gm * ly.ff[0, 1, r, j]
            if ly.has_t:
                ly.st[j, r] = gp + gm
                ly.st[n_out + j, r] = gp * ly.ft[0, 0, r, j] + gm * ly.ft[0, 1, r, j]


@njit(cache=True, inline="always")
def _device_cell(ly, W, r, j, a):
    """Cell ``(r, j)`` of a device layer, array ``a``: a device whose state moved since the
    last sync (``dS = S - seen``) moves ``W_h`` by ``kh dS`` and ``W_dh`` by ``kf dS``
    (forward stack row) / ``kt dS`` (transposed stack column)."""
    n_in, n_out = W.shape
    ly.old[r, j] = W[r, j]
    for p in range(2):
        s = ly.S[a, p, r, j]
        d = np.float64(s) - np.float64(ly.seen[a, p, r, j])        # exact
        if d != 0.0:
            ly.seen[a, p, r, j] = s
            dh = ly.kh[a, p, r, j] * d
            if ly.has_f:
                ly.sf[r, j] += dh
                ly.sf[n_in + r, j] += ly.kf[a, p, r, j] * d
            if ly.has_t:
                ly.st[j, r] += dh
                ly.st[n_out + j, r] += ly.kt[a, p, r, j] * d


@njit(cache=True)
def _device_row(ly, W, r, a_lo, a_hi):
    """Row ``r`` of a device layer: :func:`_device_cell` (arrays ``a_lo <= a < a_hi``) on
    every cell whose read weight moved since the last sync. A device that moved without
    moving the read weight (a re-program to the same value) is taken up with its next
    change, or at the next factor refresh."""
    Wr = W[r]
    old = ly.old[r]
    for j in range(Wr.size):
        if Wr[j] != old[j]:
            for a in range(a_lo, a_hi):
                _device_cell(ly, W, r, j, a)


@njit(cache=True)
def sync_rows(ly, W, rows, n):
    """Bring the stacks of ``ly`` up to date on the rows ``rows[:n]`` (``W_h = sum coef (G0 +
    S GR)``, ``W_dh = sum coef (G0 + S GR) F``: forward stack rows, transposed stack
    columns) where the read weight ``W`` changed since the last sync. Device layers follow
    the change of each device state (:func:`_device_row`); a mapped layer re-maps the
    cells onto its pair (``S = max(+-w, 0) / ws``, :func:`_mapped_row`)."""
    n_in, n_out = W.shape
    changed = np.empty(n_out, np.bool_)
    for q in range(n):
        r = rows[q]
        if not ly.mapped:
            _device_row(ly, W, r, 0, ly.S.shape[0])
            continue
        any_changed = False
        for j in range(n_out):
            c = W[r, j] != ly.old[r, j]
            changed[j] = c
            any_changed |= c
        if any_changed:
            _mapped_row(ly, W, r, changed)


@njit(cache=True)
def surrogate_forward(reads, layer, L, idx, vals):
    """First-order surrogate forward read: ``z = sum_p h(v_p)/h(V_read) W[j_p] +
    v_p h'(v_p) W_dh[j_p]``, ``v_p = vals[p] V_read``, the bias row last at ``V_read``
    (float32, like the ideal read)."""
    ly = reads.l0 if layer == 0 else reads.l1
    z = ly.z
    W = L.Wr
    sf = ly.sf
    nr = W.shape[0]
    n_out = z.size
    zero = np.float32(0.0)
    for i in range(n_out):
        z[i] = 0.0
    for p in range(idx.size + 1):
        if p < idx.size:
            j = idx[p]
            hx, dx = _hdh(vals[p] * reads.v_read, reads.v_nl)
        else:                          # the bias row, driven at V_read
            j = nr - 1
            hx, dx = _hdh(reads.v_read, reads.v_nl)
        h32 = np.float32(hx * reads.inv_h)
        d32 = np.float32(dx)
        Wj = W[j]
        if ly.mapped:           # the first-order term from the read weight (no sync)
            Aj = ly.of[0, j]
            Pj = ly.of[1, j]
            Mj = ly.of[2, j]
            for i in range(n_out):
                w = Wj[i]
                z[i] += h32 * w + d32 * (Aj[i] + Pj[i] * max(w, zero) + Mj[i] * min(w, zero))
        else:
            Dj = sf[nr + j]
            for i in range(n_out):
                z[i] += h32 * Wj[i] + d32 * Dj[i]
    return z


@njit(cache=True)
def surrogate_transpose(reads, layer, L, d, e):
    """First-order surrogate transposed read of ``d`` scaled to ``max |v| = V_read``: returns
    the scale; ``e[j] * scale`` is the read."""
    ly = reads.l0 if layer == 0 else reads.l1
    W = L.Wr
    stt = ly.st
    hv = reads.hv
    dv = reads.dv
    n_out = d.size
    scale = 0.0
    for k in range(n_out):
        scale = max(scale, abs(d[k]))
    for k in range(n_out):
        vk = d[k] / scale * reads.v_read if scale > 0 else 0.0
        hv[k], dv[k] = _hdh(vk, reads.v_nl)
    inv_h = reads.inv_h
    if ly.mapped:               # the first-order term from the read weight (no sync)
        ot = ly.ot
        for j in range(e.size):
            acc = 0.0
            for k in range(n_out):
                w = W[j, k]
                acc += hv[k] * inv_h * w + dv[k] * (ot[0, j, k] + ot[1, j, k] * max(w, 0.0)
                                                   + ot[2, j, k] * min(w, 0.0))
            e[j] = acc
        return scale
    for j in range(e.size):
        acc = 0.0
        for k in range(n_out):
            acc += hv[k] * inv_h * W[j, k] + dv[k] * stt[n_out + k, j]
        e[j] = acc
    return scale


@njit(cache=True)
def surrogate_update(reads, layer, L, idx, vals, n, delta, lr, rng, colbuf, maskbuf, ev_j,
                     ev_i, ev_n):
    """The cell's update, then the effective matrices follow the synapses whose read weight
    changed (a pair refresh that re-programs exactly the same weight is caught at the next
    factor refresh); mapped layers need no sync (their reads use :func:`_otf` terms)."""
    before = L.stats.sum()
    cfg = L.cfg[0]
    # the one array the cell programs (update_layer's contract): the phase's, or the
    # counter's for multi-device cells (the counter moves after the sample)
    a = cfg.counter % cfg.n_arrays if cfg.select == 1 else cfg.active
    n_ev, n_rows, rows = update_layer(L, idx, vals, n, delta, lr, rng, colbuf, maskbuf, ev_j,
                                      ev_i, ev_n)
    ly = reads.l0 if layer == 0 else reads.l1
    # no update, pulse or refresh: no device changed; a mapped layer's reads follow the read
    # weight directly (its stacks are brought up to date at the next Python-side sync)
    if L.stats.sum() != before and not ly.mapped:
        W = L.Wr
        for q in range(n_rows):              # rows updated in place: the changed cells
            _device_row(ly, W, rows[q], a, a + 1)
        for q in range(n_ev):                # the cells of the events
            _device_cell(ly, W, ev_j[q], ev_i[q], a)


register_tile_kernels(SurrogateReads, surrogate_forward, surrogate_transpose, surrogate_update)


def _otf(st: dict, d: dict) -> np.ndarray:
    """``(A, K+, K-)`` (3, n_rows, n_cols; float32, three planes: the read loops over
    contiguous rows) of a mapped layer's first-order term for one direction's factors ``F = d["F"]["dh"]``: with ``G± = G0 + max(±w, 0) / ws`` on the
    pair (``GR = 1``), ``W_dh = sum_p coef_p G_p F_p = A + K+ max(w, 0) + K- min(w, 0)``,
    ``A = G0 (coef_+ F_+ + coef_- F_-)``, ``K+ = coef_+ F_+ / ws``, ``K- = -coef_- F_- / ws``.
    Computed once per factor refresh and kept with the factors."""
    if "otf" not in d:
        F = d["F"]["dh"].astype(np.float64)
        cp, cm = float(st["coef"][0, 0]), float(st["coef"][0, 1])
        g0 = float(st["G0"][0, 0, 0, 0])
        ws = float(st["ws"])
        d["otf"] = np.ascontiguousarray(np.stack([
            g0 * (cp * F[0, 0] + cm * F[0, 1]), cp * F[0, 0] / ws, -cm * F[0, 1] / ws]),
            dtype=np.float32)
    return d["otf"]


class SurrogateBackend(TileBackend):
    """Crossbar reads through the fitted tile surrogate (a tile backend of the network).

    Batched reads in Python (:meth:`forward`, :meth:`transpose`, first or second order) and
    first-order compiled reads for the network's one SGD loop (:meth:`compiled_reads`,
    kernels :func:`surrogate_forward`, :func:`surrogate_transpose`,
    :func:`surrogate_update`), for every cell: pair-based cells read their device arrays,
    floating-point and 2T2R layers their read weight mapped onto one pair. The backend
    takes the network's card when built without one and refuses a card of another read law
    when built with one (:meth:`bind`); :meth:`for_card` builds one for any card.

    Parameters
    ----------
    surrogate : TileSurrogate or path or None
        The fitted surrogate (default: the shipped one).
    card : ModelCard or None
        Card of the devices (default: the surrogate's card).
    tile : (rows, cols)
        Tile size in cells.
    r_wire : float
        Wire resistance per cell segment (Ω) of the rows (and of the columns unless
        ``r_wire_col`` is given).
    r_wire_col : float or None
        Wire resistance per cell segment (Ω) of the columns; None: ``r_wire``.
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

    Raises
    ------
    ConfigError
        A non-finite or negative resistance, a tile dimension below 1, a read voltage
        ``<= 0`` (named as the fields of :class:`~pyspice_rram.network.circuit_spec.CircuitSpec`).
    SurrogateValidityError
        (``on_invalid="error"``) Settings outside the range the surrogate was fitted on; the
        message names each setting, its value and the valid range.
    """

    def __init__(self, surrogate: TileSurrogate | str | None = None, card: ModelCard | None = None,
                 tile: tuple[int, int] = (64, 64), r_wire: float = 1.0, r_driver: float = 0.0,
                 r_sense: float = 0.0, v_read: float | None = None, refresh_every: int = 5000,
                 second_order: bool = False, on_invalid: str = "error",
                 r_wire_col: float | None = None):
        if on_invalid not in ("error", "warn"):
            raise ConfigError("on_invalid", on_invalid, "choose 'error' or 'warn'")
        try:
            rows, cols = tile
        except (TypeError, ValueError):
            raise ConfigError("tile", tile, "must be (rows, cols) in cells") from None
        self.circuit = CircuitSpec(tile_rows=rows, tile_cols=cols, r_wire_row=r_wire,
                                   r_wire_col=r_wire if r_wire_col is None else r_wire_col,
                                   r_driver=r_driver, r_sense=r_sense, v_read=v_read)
        if not isinstance(surrogate, TileSurrogate):
            surrogate = TileSurrogate.load(surrogate)
        self.sur = surrogate
        self.card_given = card is not None
        self.tile = self.circuit.tile
        self.r_wire = self.circuit.r_wire_row
        self.r_wire_col = self.circuit.r_wire_col
        self.r_driver = self.circuit.r_driver
        self.r_sense = self.circuit.r_sense
        self.v_read_given = self.circuit.v_read
        self.refresh_every = max(1, int(refresh_every))
        self.on_invalid = on_invalid
        self.second_order = bool(second_order)
        self.terms = TERMS if self.second_order else ("dh",)
        self.network = None
        self._state: dict[int, dict[str, Any]] = {}
        self.samples = 0
        self.refreshes = 0
        self._set_card(card or (ModelCard.from_dict(surrogate.card) if surrogate.card
                                else ModelCard.reference()))

    def _set_card(self, card: ModelCard) -> None:
        """Use ``card`` for the devices: read law, read voltage, validity check."""
        card.require_default_family("the tile surrogate backend")
        self.card = card
        self.v_read = float(self.v_read_given or card.scheme.v_read)
        self.law = CellLaw(v_nl=float(card.v_nl),
                           v_eff=self.sur.v_eff_frac * float(self.sur.validity.get(
                               "v_max", self.v_read)))
        self.h_read = float(self.law.transforms(np.array(self.v_read))["h"])
        self._check_settings()

    @classmethod
    def from_circuit(cls, circuit: CircuitSpec | dict | None, **backend_kw: Any
                     ) -> "SurrogateBackend":
        """The backend for a config's ``[circuit]`` table
        (:class:`~pyspice_rram.network.circuit_spec.CircuitSpec`; None: its defaults):
        tile shape, row and column wire, driver and sense resistance, read voltage.
        ``backend_kw`` (surrogate, card, refresh_every, ...) go to the constructor. The
        settings are checked against the surrogate's validity range here
        (:class:`SurrogateValidityError` naming the setting, its value and the range)."""
        c = CircuitSpec.from_dict(circuit if circuit is not None else {})
        return cls(tile=c.tile, r_wire=c.r_wire_row, r_wire_col=c.r_wire_col,
                   r_driver=c.r_driver, r_sense=c.r_sense, v_read=c.v_read, **backend_kw)

    @classmethod
    def for_card(cls, card: ModelCard, workdir: str | Any = None, *, spec: Any = None,
                 workers: int = 1, progress: bool = False, **backend_kw: Any
                 ) -> "SurrogateBackend":
        """A backend for the devices of ``card``: the shipped surrogate if it was fitted for
        the same read law (``g_min/g_max`` densities, ``V_nl``, reference area), else a
        surrogate refitted on a small ngspice data set of ``card`` (``spec``: a
        :class:`.dataset.DataSpec`, default the main job's 16 tiles of 16-48 cells) written
        to ``workdir/surrogate_data.h5`` (a temporary directory when None).
        ``backend_kw`` go to the constructor (tile, r_wire, ...)."""
        import tempfile
        from pathlib import Path

        from .dataset import DataSpec, generate
        from .fit import fit_surrogate

        sur = TileSurrogate.load()
        if sur.card is None or sur.card_problems(card):
            spec = spec or DataSpec(n_items=16, sizes=[16, 32, 48], n_vectors=6,
                                    test_fraction=0.25, mna_fraction=0.25, seed=7)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(workdir or tmp) / "surrogate_data.h5"
                path.parent.mkdir(parents=True, exist_ok=True)
                generate(path, spec, card, workers=workers, progress=progress)
                sur, _ = fit_surrogate(path)
        return cls(sur, card=card, **backend_kw)

    # ------------------------------------------------------------------ validity
    def _check_settings(self) -> None:
        """Check the circuit settings (named as the ``[circuit]`` fields) and the card
        against the surrogate's validity range; raise or warn per ``on_invalid``."""
        val = self.sur.validity
        problems = self.sur.domain_problems(*self.tile, self.r_wire, self.r_wire_col,
                                            self.r_driver, self.r_sense,
                                            names=("tile_rows", "tile_cols"))
        if self.v_read > val.get("v_max", math.inf) * (1 + 1e-9):
            problems.append(f"v_read = {self.v_read:g} V above the fitted maximum "
                            f"{val['v_max']:g} V (valid: up to {val['v_max']:g} V)")
        problems += [p + " (a surrogate for this card: SurrogateBackend.for_card(card))"
                     for p in self.sur.card_problems(self.card)]
        if problems:
            msg = "surrogate backend outside the surrogate's validity: " + "; ".join(problems)
            if self.on_invalid == "error":
                raise SurrogateValidityError(msg)
            import warnings

            warnings.warn(msg, stacklevel=2)

    # ------------------------------------------------------------------ layer mapping
    def bind(self, network: Any) -> None:
        """Bind the network; take its card (``network.card``) for the devices, or refuse it
        when this backend was built for another card."""
        card = getattr(network, "card", None)
        if card is not None and card is not self.card:
            if not same_read_law(card, self.card):
                if self.card_given:
                    raise ConfigError("card", getattr(card, "name", "<network card>"),
                                      "the network's card differs from the surrogate "
                                      "backend's card (g_min/g_max densities, V_nl or "
                                      "reference area); build the backend for the network's "
                                      "card: SurrogateBackend.for_card(card)")
                self._set_card(card)
        self.network = network
        self._state = {}

    def _arrays(self, layer: int, W: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(G0, S, GR, coef, dG)``: nominal device conductances and read coefficients."""
        return self._mapping(layer, W)[:5]

    def _mapping(self, layer: int, W: np.ndarray) -> tuple[Any, ...]:
        """``(G0, S, GR, coef, dG, mapped, ws)``: device arrays and read coefficients.

        Pair-based cells read their device arrays; cells without devices (floating point)
        and sign-read cells (2T2R) are mapped onto one differential pair of the card's
        device holding the read weight ``W`` (``G± = G_min + max(±W, 0) / ws`` in units of
        the range, ``ws = max |W|``; ``mapped`` True).
        """
        ref_area = self.card.area_ref
        dG_ref = (self.card.g_max_density - self.card.g_min_density) * ref_area
        gmin = self.card.g_min_density / (self.card.g_max_density - self.card.g_min_density)
        st = None
        if self.network is not None:
            st = self.network.layers[layer]
        if st is not None and st.is_pair and not st.sign_read:
            A = st.S.shape[0]
            areas = np.full(A, ref_area)
            cell = getattr(self.network, "cell", None)
            if getattr(cell, "kind", "") == "hybrid" and A == 2:
                areas[1] = ref_area / float(cell.k)
            dG = (self.card.g_max_density - self.card.g_min_density) * areas
            coef = np.stack([st.gain, -st.gain], axis=1) / self.h_read  # (A, 2)
            # currents are dG * G_nom * (...); dividing by dG converts back: coef needs no dG
            return st.G0, st.S, st.GR, coef, dG, False, 1.0
        w = np.asarray(W, dtype=np.float32)
        ws = float(np.max(np.abs(w))) or 1.0
        S = np.stack([np.maximum(w, 0), np.maximum(-w, 0)])[None] / ws
        G0 = np.full_like(S, gmin)
        GR = np.ones_like(S)
        coef = np.array([[ws, -ws]]) / self.h_read
        return (np.ascontiguousarray(G0, np.float32), np.ascontiguousarray(S, np.float32),
                np.ascontiguousarray(GR, np.float32), coef, np.array([dG_ref]), True, ws)

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
        r_d, r_s, R_d, R_s = line_resistances(self.r_wire, self.r_wire_col, self.r_driver,
                                              self.r_sense, direction)
        # first-order reads: the second-order and chord terms folded in at V_read
        fac = self.sur.factors(can, self.law, r_d, r_s, R_d, R_s,
                               fold_v=None if self.second_order else self.v_read)
        out = {}
        for term in TERMS:
            f = canonical(fac[term], direction) if direction == "forward" else \
                np.swapaxes(fac[term], -1, -2)[..., ::-1, :]
            out[term] = np.ascontiguousarray(self._untile(f, shape), dtype=np.float32)
        return out

    def _refresh(self, layer: int, W: np.ndarray, directions: tuple[str, ...]) -> dict:
        G0, S, GR, coef, dG, mapped, ws = self._mapping(layer, W)
        st = self._state.setdefault(layer, {"dirs": {}})
        st.update(coef=coef, G0=G0, S=S, GR=GR, mapped=mapped, ws=ws)
        g_nom = G0.astype(float) + S.astype(float) * GR.astype(float)
        for direction in directions:
            F = self._factors(G0, S, GR, dG, direction)
            st["dirs"][direction] = {"F": F}
        wh = np.einsum("ap,apij->ij", coef, g_nom)
        if not mapped:      # the incremental sync of device layers (:func:`sync_rows`)
            kh = coef[:, :, None, None] * GR.astype(float)
            st["seen"] = np.array(S, dtype=np.float32, copy=True)
            st["kh"] = np.ascontiguousarray(kh, dtype=np.float32)
        for direction, d in st["dirs"].items():
            mats = [wh] + [np.einsum("ap,apij->ij", coef, g_nom * d["F"][t])
                           for t in self.terms]
            if direction == "transposed":
                mats = [m.T for m in mats]
            d["stack"] = np.ascontiguousarray(np.concatenate(mats, axis=0), dtype=np.float32)
            if not mapped:
                d["kd"] = np.ascontiguousarray(kh * d["F"]["dh"], dtype=np.float32)
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
        if rows.size:
            sync_rows(self._layer_view(st, Wf.shape[1]), Wf, rows, rows.size)
        return st

    @staticmethod
    def _layer_view(st: dict, n_out: int) -> SurLayer:
        """The compiled view (:data:`SurLayer`) of a layer's read state ``st``."""
        f = st["dirs"].get("forward")
        t = st["dirs"].get("transposed")
        G0 = st["G0"]
        dummy = np.zeros((1, 1), np.float32)
        none = np.zeros((3, 1, 1), np.float32)
        mapped = bool(st["mapped"])
        planes = np.zeros((1, 1, 1, 1), np.float32)
        seen, kh = (planes, planes) if mapped else (st["seen"], st["kh"])
        return SurLayer(G0, st["S"], st["GR"], st["coef"], mapped,
                        float(st["ws"]), st["W_prev"], f is not None,
                        f["stack"] if f else dummy, f["F"]["dh"] if f else G0,
                        t is not None, t["stack"] if t else dummy,
                        t["F"]["dh"] if t else G0, np.empty(n_out, np.float32),
                        _otf(st, f) if f and mapped else none,
                        _otf(st, t) if t and mapped else none, seen, kh,
                        f["kd"] if f and not mapped else planes,
                        t["kd"] if t and not mapped else planes)

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
    def compiled_reads(self, n_samples: int) -> tuple[SurrogateReads, int]:
        """Read state of the compiled SGD loop (forward reads of both layers, transposed read
        of layer 2, first order), valid until the next factor refresh (``refresh_every``
        samples); the factors are refreshed here when due."""
        if (type(self).forward is not SurrogateBackend.forward
                or type(self).transpose is not SurrogateBackend.transpose):
            # a subclass with reads of its own (the circuit backend of `check`) must not
            # train with the surrogate's compiled reads
            return super().compiled_reads(n_samples)
        if self.second_order:
            raise ConfigError("second_order", True, "the compiled training loop uses "
                              "first-order surrogate reads (second_order=False)")
        L0, L1 = self.network.layers
        s0 = self._sync(0, L0.Wr, "forward", 1)
        s1 = self._sync(1, L1.Wr, "forward", 1)
        if "transposed" not in s1["dirs"]:
            s1 = self._refresh(1, L1.Wr, ("forward", "transposed"))
        n = max(1, min(n_samples, self.refresh_every - max(s0["since"], s1["since"])))
        v_nl = float(self.law.v_nl)
        n_out = L1.Wr.shape[1]
        reads = SurrogateReads(self._layer_view(s0, L0.Wr.shape[1]),
                               self._layer_view(s1, n_out), self.v_read, v_nl,
                               1.0 / (v_nl * math.sinh(self.v_read / v_nl)),
                               np.empty(n_out), np.empty(n_out))
        return reads, n

    def advance(self, n: int) -> None:
        for st in self._state.values():
            st["since"] += n
        self.samples += n

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


def same_read_law(a: ModelCard | None, b: ModelCard | None) -> bool:
    """True when two cards read alike: same ``g_min``/``g_max`` densities, ``V_nl`` and
    reference area (relative 1e-6)."""
    if a is None or b is None:
        return False
    return all(math.isclose(getattr(a, p), getattr(b, p), rel_tol=1e-6)
               for p in ("g_min_density", "g_max_density", "v_nl", "area_ref"))


register_backend("surrogate", SurrogateBackend)
# the kernels above embed the network's update kernels: recompile when either changes
key_caches(globals(), extra=(__file__,))
