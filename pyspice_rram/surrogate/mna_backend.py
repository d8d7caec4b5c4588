"""``mna`` tile backend: training (and inference) through the crossbar circuit itself.

Every read of a layer -- the forward reads of both layers and the transposed read of layer 2
in each training sample, and the batched reads of evaluation -- solves each tile of the
layer as a circuit with the cell-space Newton-CG solver (:mod:`pyspice_rram.circuit.cellspace`:
wire resistance of every segment, driver and sense resistance, the sinh read law of every
cell; the same equations as the sparse nodal solver and ngspice). Tiling, read voltages and
the conversion of currents to weight units are those of
:class:`~pyspice_rram.surrogate.check.CircuitBackend` (and of the surrogate backend): tiles of
``tile_rows x tile_cols`` cells, padded edge tiles trimmed to their cells, every device array
of the unit cell and both devices of a pair as separate tiles, forward inputs ``v = x V_read``
(bias row at ``V_read``), transposed inputs scaled per sample to ``max |v| = V_read``, and
``y = sum_{a,p} (+-gain_a / h(V_read)) I_{a,p} / dG_a``. Pair cells (single, hybrid,
multi-device) read their device arrays; floating-point and 2T2R layers their read weight
mapped onto one pair (``G+- = G_min + max(+-W, 0) / max |W|`` of the range).

The reads are compiled kernels that solve the tiles one input vector at a time
(:func:`pyspice_rram.circuit.cellspace.read_vector`, the kernel of the cell-space solver):
per training sample inside the network's one SGD loop (:func:`mna_forward`,
:func:`mna_transpose`, :func:`mna_update`, the cell conductances kept up to date by the
update kernel), and batched over input rows on numba threads for evaluation and inference
(:func:`read_rows`). No surrogate, no staleness: each read is the circuit of the present
device states. :class:`CircuitBackend` with ``solver="cellspace"`` (Tile objects through
:func:`~pyspice_rram.circuit.parallel.solve_tiles`) reads the same circuits by another path;
the tests hold the two to 1e-6 of the peak read.

Cost (measured on the shared 2-core development machine, CPU time; ``docs/training.md``):
the solver's work is proportional to the device cells read per sample (forward reads of both
layers plus the transposed read of layer 2, every array and both devices of a pair) times the
Newton and CG iterations (about 2 and 2-4 per tile read at 1-5 Ω). Digits 64-32-10 with a
single-pair cell on 32x32 tiles (5 480 cells): ~0.35-0.5 ms per training sample, about 10x
the surrogate backend and 40x the ideal one; MNIST 784-250-10 on 64x64 tiles (402 540
cells): ~20 ms (1 Ω) to 25 ms (5 Ω) per sample, about 20 min per epoch of 60 000 images
(130x the surrogate) -- :meth:`MNABackend.bind` warns above :data:`WARN_CELLS_PER_SAMPLE`.
"""

from __future__ import annotations

import time
from collections import namedtuple
from typing import Any

import numpy as np
from numba import njit

from ..circuit.cellspace import CG_ETA, MAX_CG, MAX_NEWTON, read_vector, read_work
from ..circuit.mna import ConvergenceError
from ..device.compiled import CARD_ARGS, card_args
from ..network.backend import register_backend, register_tile_kernels
from ..network.circuit_spec import CircuitSpec
from ..network.jitcache import key_caches
from ..network.update import update_layer
from .check import CHECK_RTOL, CircuitBackend

#: Device cells solved per training sample (forward reads of both layers plus the transposed
#: read of layer 2; every device array, both devices of a pair) above which binding a network
#: warns of the cost: 100 000 cells are ~5-10 ms per sample (:data:`NS_PER_CELL`), 5-10 min
#: per 60 000 samples. Digits 64-32-10 reads ~5 500 (single pair) to ~16 500 (three pairs);
#: MNIST 784-250-10 ~400 000. A warning, not an error: such a run is slow, not wrong (an
#: MNIST epoch at 1 Ω takes ~20 min), and a few samples of it are a legitimate check.
WARN_CELLS_PER_SAMPLE = 100_000

#: Measured CPU time per device cell and training sample (ns) at 1 Ω per segment (MNIST
#: 784-250-10 on 64x64 tiles: 19 ms per sample for 402 540 cells), for the cost estimate
#: of the warning.
NS_PER_CELL = 50.0

#: compiled view of one layer: cell coefficients ``kc`` (A, 2, n_rows, n_cols; S) of every
#: device, read-out factors ``sc`` (A, 2) = ``coef / dG`` (weight units per A), ``dG`` (A,)
#: of the arrays, ``mapped`` (FP / 2T2R layer mapped onto one pair) with its full scale
#: ``ws`` (1,) and ``G_min`` (units of the range, float32 as the batched mapping), the read
#: weights at the last mapping ``old``; buffers ``z`` (forward output), ``acc`` (transposed
#: output), ``vf``/``vt`` (driven-line voltages of the layer), ``kbuf`` (one tile's cells),
#: ``out`` (one tile's sensed currents)
MNALayer = namedtuple("MNALayer", ["kc", "sc", "dG", "mapped", "ws", "gmin", "old", "z", "acc",
                                   "vf", "vt", "kbuf", "out"])
#: read state of the compiled SGD loop: both layers, the tile shape and resistances (Ω) of
#: the forward (``f_*``) and transposed (``t_*``) reads, the read law, the solver's stop and
#: limits, scratch, ``status`` (7,) = (code, layer, direction, array, device, tile row, tile
#: column) of the first failed solve and ``work_done`` (3,) = (tile solves, Newton, CG)
MNAReads = namedtuple("MNAReads", ["l0", "l1", "tr", "tc", "rwr", "rwc", "f_rrp", "f_rcp",
                                   "t_rrp", "t_rcp", "v_read", "h_read", "read", "v_nl",
                                   "v_f", "v_r", "c_s", "r_series", "rtol", "eta",
                                   "max_newton", "max_cg", "work", "lines", "status",
                                   "work_done"])

#: status codes of :func:`pyspice_rram.circuit.cellspace.read_vector`
_STATUS = {1: "Newton iteration limit", 2: "CG iteration limit", 3: "non-finite cell currents"}


@njit(cache=True)
def _read_layer(reads, ly, layer, forward, v, acc, work, lines, kbuf, out, status, done):
    """``acc`` (sensed lines of the layer, weight units) for driven-line voltages ``v`` (V):
    every tile of every device solved, in the order array, device, tile row, tile column
    (scratch ``work``, ``lines``, ``kbuf``, ``out``; tile solves, Newton and CG iterations
    added to ``done``). A failed solve records (code, layer, direction, array, device, tile
    row, tile column) in ``status``, zeroes ``acc`` and stops."""
    kc = ly.kc
    A = kc.shape[0]
    nr, nc = kc.shape[2], kc.shape[3]
    tr, tc = reads.tr, reads.tc
    Ti = (nr + tr - 1) // tr
    Tj = (nc + tc - 1) // tc
    rrp = reads.f_rrp if forward else reads.t_rrp
    rcp0 = reads.f_rcp if forward else reads.t_rcp
    for k in range(acc.size):
        acc[k] = 0.0
    for a in range(A):
        for p in range(2):
            sc = ly.sc[a, p]
            for ti in range(Ti):
                r0 = ti * tr
                R = min(tr, nr - r0)
                # trailing absent rows of a padded tile: their column wire segments only
                rcp = rcp0 + (tr - R) * reads.rwc
                for tj in range(Tj):
                    c0 = tj * tc
                    C = min(tc, nc - c0)
                    for i in range(R):
                        for j in range(C):
                            kbuf[i * C + j] = kc[a, p, r0 + i, c0 + j]
                    vin = v[r0:r0 + R] if forward else v[c0:c0 + C]
                    st, nn, ncg = read_vector(
                        vin, forward, kbuf[:R * C], R, C, rrp, reads.rwr, rcp, reads.rwc,
                        reads.read, reads.v_nl, reads.v_f, reads.v_r, reads.c_s,
                        reads.r_series, reads.rtol, reads.eta, reads.max_newton,
                        reads.max_cg, work, lines, out)
                    done[0] += 1
                    done[1] += nn
                    done[2] += ncg
                    if st != 0:
                        status[0] = st
                        status[1] = layer
                        status[2] = 0 if forward else 1
                        status[3] = a
                        status[4] = p
                        status[5] = ti
                        status[6] = tj
                        for k in range(acc.size):
                            acc[k] = 0.0
                        return
                    if forward:
                        for j in range(C):
                            acc[c0 + j] += sc * out[j]
                    else:
                        for i in range(R):
                            acc[r0 + i] += sc * out[i]


@njit(cache=True)
def _read_one(reads, ly, layer, forward, v, acc):
    """:func:`_read_layer` with the read state's scratch, status and work counters."""
    _read_layer(reads, ly, layer, forward, v, acc, reads.work, reads.lines, ly.kbuf, ly.out,
                reads.status, reads.work_done)


@njit(cache=True, nogil=True)
def read_rows(reads, ly, layer, forward, V, Y, b0, b1, fail, done):
    """Batched reads of a layer: :func:`_read_layer` for the rows ``b0 <= b < b1`` of ``V``
    (driven-line voltages, V) into ``Y`` (sensed lines, weight units), with scratch of its
    own (releases the GIL: chunks of rows run on threads). A failed solve leaves its status
    in ``fail[:7]`` and the row in ``fail[7]`` and stops; ``done`` += (tile solves, Newton,
    CG)."""
    tr, tc = reads.tr, reads.tc
    work = np.empty((9, tr * tc))
    work[4] = 1.0
    lines = np.empty((6, max(tr, tc)))
    kbuf = np.empty(tr * tc)
    out = np.empty(max(tr, tc))
    st = fail[:7]
    for b in range(b0, b1):
        _read_layer(reads, ly, layer, forward, V[b], Y[b], work, lines, kbuf, out, st, done)
        if st[0] != 0:
            fail[7] = b
            return


@njit(cache=True)
def mna_forward(reads, layer, L, idx, vals):
    """Forward read of ``layer`` through its tiles solved as circuits: rows ``idx`` driven at
    ``vals V_read``, the bias row (last) at ``V_read``, the others at 0 V; returns the
    pre-activations (float64, weight units). After a failed solve (``reads.status``) every
    read returns zeros until the Python side raises."""
    ly = reads.l0 if layer == 0 else reads.l1
    z = ly.z
    if reads.status[0] != 0:
        for i in range(z.size):
            z[i] = 0.0
        return z
    v = ly.vf
    for k in range(v.size):
        v[k] = 0.0
    for p in range(idx.size):
        v[idx[p]] = np.float64(vals[p]) * reads.v_read
    v[v.size - 1] = reads.v_read
    _read_one(reads, ly, layer, True, v, z)
    return z


@njit(cache=True)
def mna_transpose(reads, layer, L, d, e):
    """Transposed read of ``layer``: the columns driven at ``d / max|d| V_read``, the row
    currents in weight units written to ``e`` (bias row left out); returns ``max |d|``."""
    ly = reads.l0 if layer == 0 else reads.l1
    scale = 0.0
    for k in range(d.size):
        scale = max(scale, abs(np.float64(d[k])))
    if reads.status[0] != 0 or scale == 0.0:
        for j in range(e.size):
            e[j] = 0.0
        return scale
    v = ly.vt
    for k in range(v.size):
        v[k] = np.float64(d[k]) / scale * reads.v_read
    _read_one(reads, ly, layer, False, v, ly.acc)
    for j in range(e.size):
        e[j] = ly.acc[j]
    return scale


@njit(cache=True)
def _map_row(ly, W, r):
    """Cells of row ``r`` of a mapped layer from its read weights (``ly.ws`` full scale):
    ``G+- = (G_min + S+-) dG`` with ``S+- = float32(max(+-w, 0) / ws)``."""
    ws = ly.ws[0]
    dG = ly.dG[0]
    g0 = ly.gmin
    for j in range(W.shape[1]):
        w = W[r, j]
        ly.old[r, j] = w
        sp = np.float32(max(w, 0.0) / ws)
        sm = np.float32(max(-w, 0.0) / ws)
        ly.kc[0, 0, r, j] = (g0 + np.float64(sp)) * dG
        ly.kc[0, 1, r, j] = (g0 + np.float64(sm)) * dG


@njit(cache=True)
def _full_scale(W):
    """``max |W|`` (1 for an all-zero layer), as the batched mapping."""
    ws = np.float32(0.0)
    for r in range(W.shape[0]):
        for j in range(W.shape[1]):
            ws = max(ws, abs(W[r, j]))
    return np.float64(ws) if ws > 0 else 1.0


@njit(cache=True)
def mna_update(reads, layer, L, idx, vals, n, delta, lr, rng, colbuf, maskbuf, ev_j, ev_i,
               ev_n):
    """The cell's update (:func:`pyspice_rram.network.update.update_layer`), then the cell
    conductances of the tiles follow the devices.

    Pair cells: only the rows ``idx[:n]`` receive events, and only when the update changed
    anything (pulse, refresh or update counted); those rows' conductances are recomputed
    from the device states (``(G0 + S GR) dG``, every array and device: a refresh that
    re-programs a pair to the same read weight changes its conductances, so the read weight
    is not the test). Mapped layers (floating point, 2T2R): the cells whose read weight
    changed are re-mapped; when the full scale ``max |W|`` changed, the whole layer (with its
    read-out factors). Cost O(cells of the updated rows), far below one read's solve.
    After a failed read (``reads.status``) no update is applied."""
    if reads.status[0] != 0:
        return
    before = L.stats.sum()
    update_layer(L, idx, vals, n, delta, lr, rng, colbuf, maskbuf, ev_j, ev_i, ev_n)
    if L.stats.sum() == before:
        return
    ly = reads.l0 if layer == 0 else reads.l1
    W = L.Wr
    if ly.mapped:
        ws = _full_scale(W)
        if ws != ly.ws[0]:
            ly.ws[0] = ws
            c = ws / (reads.h_read * ly.dG[0])
            ly.sc[0, 0] = c
            ly.sc[0, 1] = -c
            for r in range(W.shape[0]):
                _map_row(ly, W, r)
            return
        for q in range(n):
            r = idx[q]
            for j in range(W.shape[1]):
                if W[r, j] != ly.old[r, j]:
                    _map_row(ly, W, r)
                    break
        return
    kc = ly.kc
    G0, S, GR = L.G0, L.S, L.GR
    for q in range(n):
        r = idx[q]
        for a in range(kc.shape[0]):
            dG = ly.dG[a]
            for p in range(2):
                for j in range(kc.shape[3]):
                    kc[a, p, r, j] = (np.float64(G0[a, p, r, j]) + np.float64(S[a, p, r, j])
                                      * np.float64(GR[a, p, r, j])) * dG


register_tile_kernels(MNAReads, mna_forward, mna_transpose, mna_update)


class MNABackend(CircuitBackend):
    """Tile backend whose reads are the crossbar circuit, solved per tile by the cell-space
    solver -- batched (evaluation, inference) and in the compiled SGD loop (training).

    For small networks (e.g. digits): the cost per training sample is proportional to the
    device cells read (:meth:`cells_per_sample`, ~50-100 ns each at 1-5 Ω; digits
    64-32-10, single pair, 32x32 tiles: ~0.4 ms per sample, ~10x the surrogate backend;
    MNIST 784-250-10: ~20 ms, :data:`WARN_CELLS_PER_SAMPLE`). Every cell type: pair cells
    read their device arrays, floating point and 2T2R their read weight mapped onto one pair
    (as the surrogate backend).

    Parameters
    ----------
    card : ModelCard or None
        Card of the devices (default: the network's card when bound, else the shipped
        surrogate's).
    tile : (rows, cols)
        Tile size in cells.
    r_wire, r_wire_col : float
        Wire resistance per cell segment (Ω) of the rows and of the columns (None: ``r_wire``).
    r_driver, r_sense : float
        Driver and sense resistances (Ω).
    v_read : float or None
        Full-scale read voltage (V); default the card's ``scheme.v_read``.
    rtol : float
        Stop of the cell-space solver (largest cell-current change of a Newton step relative
        to the largest cell current), as ``pyspice-rram check``.
    warn_cells : int
        Device cells read per training sample above which :meth:`bind` warns of the cost
        (default :data:`WARN_CELLS_PER_SAMPLE`).

    Attributes
    ----------
    reads : MNAReads or None
        The read state of the last chunk of compiled training (:meth:`compiled_reads`).
    tiles_solved, wall_s
        Tile solves of all reads so far; wall time (s) of the batched reads.

    Raises
    ------
    ConfigError
        Bad circuit values (named as the ``[circuit]`` fields).
    ConvergenceError
        When a tile's solve does not converge (batched reads: at once; training: after the
        chunk of samples, naming the layer, direction, array, device and tile; the samples
        after the failure change nothing).
    """

    def __init__(self, card: Any = None, tile: tuple[int, int] = (64, 64), r_wire: float = 1.0,
                 r_driver: float = 0.0, r_sense: float = 0.0, v_read: float | None = None,
                 r_wire_col: float | None = None, rtol: float = CHECK_RTOL,
                 warn_cells: int = WARN_CELLS_PER_SAMPLE):
        super().__init__(None, solver="cellspace", card=card, tile=tile, r_wire=r_wire,
                         r_driver=r_driver, r_sense=r_sense, v_read=v_read,
                         r_wire_col=r_wire_col, progress=False)
        self.rtol = float(rtol)
        self.warn_cells = int(warn_cells)
        self.reads: MNAReads | None = None

    @classmethod
    def from_circuit(cls, circuit: CircuitSpec | dict | None, **backend_kw: Any
                     ) -> "MNABackend":
        """The backend for a config's ``[circuit]`` table (tile shape, wires, driver, sense,
        read voltage); ``backend_kw`` (card, rtol, warn_cells) go to the constructor."""
        c = CircuitSpec.from_dict(circuit if circuit is not None else {})
        return cls(tile=c.tile, r_wire=c.r_wire_row, r_wire_col=c.r_wire_col,
                   r_driver=c.r_driver, r_sense=c.r_sense, v_read=c.v_read, **backend_kw)

    def _check_settings(self) -> None:
        """The circuit solver holds for every tile size and resistance: no validity range
        (the surrogate's is not this backend's)."""

    def cells_per_sample(self) -> int:
        """Device cells solved per training sample: forward reads of both layers and the
        transposed read of layer 2, every array and both devices of each pair."""
        total = 0
        for li, st in enumerate(self.network.layers):
            n_dev = 2 * (st.S.shape[0] if st.is_pair and not st.sign_read else 1)
            total += n_dev * st.Wr.size * (2 if li == 1 else 1)
        return total

    def bind(self, network: Any) -> None:
        """Bind the network (its card, as the surrogate backend); warn when it reads more
        than ``warn_cells`` device cells per training sample."""
        super().bind(network)
        self.reads = None
        n = self.cells_per_sample()
        if n > self.warn_cells:
            import warnings

            sizes = "-".join(str(s) for s in (network.layers[0].Wr.shape[0] - 1,
                                              network.layers[0].Wr.shape[1],
                                              network.layers[1].Wr.shape[1]))
            warnings.warn(
                f"backend 'mna': the {sizes} network of "
                f"{getattr(network.config, 'cell', '?')} cells reads {n} device cells per "
                f"training sample through the circuit solver (~{n * NS_PER_CELL * 1e-9:.2g} s "
                f"per sample at 1 Ohm, about {n * NS_PER_CELL * 60e-6 / 60:.0f} min per "
                f"60 000 samples); a network this size trains ~100x faster with backend "
                f"'surrogate' and is checked with `pyspice-rram check --solver mna`",
                stacklevel=3)

    # ------------------------------------------------------------------ read state
    def _layer(self, layer: int, W: np.ndarray | None = None) -> MNALayer:
        """The compiled view of ``layer`` from the present device states (pair cells) or the
        read weights ``W`` (mapped cells; default the network's), as
        :meth:`CircuitBackend._tile_objects` maps them: ``kc = (G0 + S GR) dG`` (for the
        card's linear conductance map the low-field conductance its Tile cells carry)."""
        W = self.network.layers[layer].Wr if W is None else W
        G0, S, GR, coef, dG, mapped, ws = self._mapping(layer, W)
        g_nom = G0.astype(np.float64) + S.astype(np.float64) * GR.astype(np.float64)
        dG = np.asarray(dG, np.float64).copy()
        kc = np.ascontiguousarray(g_nom * dG[:, None, None, None])
        sc = np.ascontiguousarray(np.asarray(coef, np.float64) / dG[:, None])
        n_rows, n_cols = W.shape
        tr, tc = self.tile
        gmin = float(G0[0, 0, 0, 0]) if mapped else 0.0
        return MNALayer(kc, sc, dG, bool(mapped), np.array([ws], np.float64), gmin,
                        np.array(W, np.float32, copy=True), np.zeros(n_cols),
                        np.zeros(n_rows), np.zeros(n_rows), np.zeros(n_cols),
                        np.zeros(tr * tc), np.zeros(max(tr, tc)))

    def _make_reads(self, l0: MNALayer, l1: MNALayer) -> MNAReads:
        # the card is of the default family (linear conductance map: SurrogateBackend._set_card)
        ca = card_args(self.card)
        law = tuple(ca[CARD_ARGS.index(nm)] for nm in ("read", "v_nl", "v_f", "v_r", "c_s",
                                                        "r_series"))
        tr, tc = self.tile
        work, lines = read_work(tr, tc)
        rw, rc = float(self.r_wire), float(self.r_wire_col)
        return MNAReads(
            l0, l1, int(tr), int(tc), rw, rc,
            rw + self.r_driver, rc + self.r_sense,        # forward: rows driven
            rw + self.r_sense, rc + self.r_driver,        # transposed: columns driven
            float(self.v_read), float(self.h_read), int(law[0]), float(law[1]),
            float(law[2]), float(law[3]), float(law[4]), float(law[5]), self.rtol, CG_ETA,
            MAX_NEWTON, MAX_CG, work, lines, np.zeros(7, np.int64), np.zeros(3, np.int64))

    @staticmethod
    def _failure(status: Any, tile: tuple[int, int], what: str) -> ConvergenceError:
        code, layer, direction, a, p, ti, tj = (int(s) for s in status[:7])
        return ConvergenceError(
            f"mna backend: the cell-space solver did not converge ({_STATUS[code]}) on "
            f"layer {layer}, {('forward', 'transposed')[direction]} read, array {a} "
            f"device {'+-'[p]}, tile ({ti}, {tj}) of {tile[0]}x{tile[1]} cells; {what}")

    # ------------------------------------------------------------------ batched reads
    def _batched(self, layer: int, W: np.ndarray, V: np.ndarray, forward: bool) -> np.ndarray:
        """Sensed lines (weight units) of ``layer`` for the driven-line voltages ``V``
        (B, n_driven; V): :func:`read_rows` on chunks of rows, on as many threads as numba
        uses (``NUMBA_NUM_THREADS``)."""
        import numba
        from concurrent.futures import ThreadPoolExecutor

        ly = self._layer(layer, W)
        reads = self._make_reads(ly, ly)
        V = np.ascontiguousarray(V, dtype=np.float64)
        B = V.shape[0]
        Y = np.zeros((B, ly.kc.shape[3] if forward else ly.kc.shape[2]))
        threads = max(1, min(B, numba.get_num_threads()))
        n = max(1, min(B, 8 * threads))        # chunks handed out as threads free up
        bounds = (np.arange(n + 1) * B) // n
        fails = np.zeros((n, 8), np.int64)
        done = np.zeros((n, 3), np.int64)

        def chunk(c: int) -> None:
            read_rows(reads, ly, layer, forward, V, Y, bounds[c], bounds[c + 1], fails[c],
                      done[c])

        t0 = time.perf_counter()
        if threads == 1:
            for c in range(n):
                chunk(c)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(chunk, range(n)))
        self.wall_s += time.perf_counter() - t0
        self.tiles_solved += int(done[:, 0].sum())
        bad = np.flatnonzero(fails[:, 0])
        if len(bad):
            raise self._failure(fails[bad[0]], self.tile,
                                f"batched read, input row {int(fails[bad[0], 7])}")
        return Y

    def forward(self, layer: int, W: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Batched forward read: rows driven at ``x V_read``, the bias row at ``V_read``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        xa = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
        return self._batched(layer, W, xa * self.v_read, True).astype(np.float32)

    def transpose(self, layer: int, W: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Batched transposed read: columns driven at ``d / max|d| V_read`` per row of ``d``;
        the bias row left out."""
        d = np.atleast_2d(np.asarray(d, dtype=np.float64))
        scale = np.max(np.abs(d), axis=1, keepdims=True)
        safe = np.where(scale > 0, scale, 1.0)
        z = self._batched(layer, W, d / safe * self.v_read, False) * safe
        return z[:, :-1].astype(np.float32)

    # ------------------------------------------------------------------ compiled training
    def compiled_reads(self, n_samples: int) -> tuple[MNAReads, int]:
        """Read state of the compiled SGD loop for the next ``n_samples`` samples: the cell
        conductances of both layers built afresh from the present device states (O(cells),
        once per chunk), then kept up to date by :func:`mna_update`."""
        self.reads = self._make_reads(self._layer(0), self._layer(1))
        return self.reads, n_samples

    def advance(self, n: int) -> None:
        """After a chunk: raise :class:`ConvergenceError` if a read of it failed."""
        reads = self.reads
        if reads is None:
            return
        self.tiles_solved += int(reads.work_done[0])
        if reads.status[0]:
            raise self._failure(reads.status, self.tile, "training stopped there: the "
                                "samples of the chunk after it were not applied")

    def work_done(self) -> dict[str, int]:
        """Tile solves, Newton and CG iterations of the last chunk's compiled reads."""
        r = self.reads
        keys = ("tile_solves", "newton_iterations", "cg_iterations")
        return {k: int(v) for k, v in zip(keys, r.work_done)} if r is not None else {}


register_backend("mna", MNABackend)
# the kernels above embed the network's update kernels: recompile when either changes
key_caches(globals(), extra=(__file__,))
