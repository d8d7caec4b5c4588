"""DAC and ADC resolution in the read path of a crossbar (the ``[periphery]`` table).

A crossbar read is analog in the array and digital outside it: the inputs of a read are
converted by a DAC per driven line, the currents of the sensed lines by an ADC per line
(and tile). :class:`PeripherySpec` says how coarse these conversions are; the
:class:`QuantizedBackend` reads a layer through them, in the batched reads (evaluation,
``check``) and in the compiled SGD loop (:func:`.sgd.sgd_samples`, kernels
:func:`quant_forward` / :func:`quant_transpose` registered for :data:`QuantReads`).

Model (each read, each layer; ``W`` the layer's read weights with the bias as last row):

* **Input DAC** (``dac_bits = b``): a forward read's inputs ``x`` (pixels, sigmoid outputs:
  in [0, 1]) are clipped to [0, 1] and rounded to ``2^b - 1`` steps,
  ``x_q = floor(x (2^b - 1) + 1/2) / (2^b - 1)`` (amplitude levels or pulse-width bits: the
  same numbers); the bias row is driven at 1 (exact). A transposed read's inputs (the
  output errors ``δ``, signed) are first normalised by ``m = max_k |δ_k|`` (a digital
  scale, applied back after the ADC), the magnitude ``|δ_k| / m`` quantised as above and the
  sign given by the pulse polarity.
* **Output ADC** (``adc_bits = b``): each sensed line of each tile is converted on its own
  (the tiles of the run's ``[circuit]`` table: ``tile_rows`` rows per tile in a forward
  read, ``tile_cols`` columns in a transposed read; the partial sums of the tiles are added
  digitally). A signed ``b``-bit ADC of full scale ``FS`` has the step
  ``LSB = FS / 2^(b-1)`` and codes ``k = floor(y / LSB + 1/2)`` clipped to
  ``[-2^(b-1), 2^(b-1) - 1]``; the read value is ``k LSB``. Inside the range the error is at
  most ``LSB / 2``; above it the read saturates.
* **Full scale** (``adc_range``): ``"max"`` -- fixed by the largest current the tile's
  column (row) can carry: ``FS = n_lines w_cell`` with ``n_lines`` the rows (columns) of
  the tile mapped onto the layer and ``w_cell`` the largest weight a cell holds (a pair:
  ``Σ_a gain_a max(G0 + GR) - min G0`` over its arrays; 2T2R: its read scale; a
  floating-point cell: the layer's ``w_max``), at inputs of 1. ``"calibrated"`` -- one full
  scale per layer and read direction, ``calibration_margin`` times the largest
  ``|partial sum|`` of the layer's tiles over the first ``calibration_samples`` training
  samples with the present weights (inputs
  ideal; transposed reads with the output errors of those samples, normalised as above),
  recomputed every ``calibration_interval`` training samples (and at the start of every
  epoch, the values evaluation uses): the weights grow while a network learns, and a range
  calibrated on the initial weights clips the reads, and clipped reads let the weights
  run away (measured on the 8x8 digits: 8 bits calibrated once per epoch, or every 1000
  samples without a margin, or every 200 samples with a margin of 2, do not train). The calibration is a function of the weights and
  the data, so a resumed run calibrates as an uninterrupted one.

``PeripherySpec()`` (every field None) is the ideal read path: no conversion, and training
uses the unchanged ideal kernels (bit-identical results, same speed).
"""

from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numba import njit

from .backend import IdealBackend, ideal_update, register_tile_kernels
from .cells import ConfigError, check_choice, check_number, check_table
from .circuit_spec import CircuitSpec
from .jitcache import key_caches

ADC_RANGES = ("max", "calibrated")


@dataclass(frozen=True)
class PeripherySpec:
    """Resolution of the read path's converters (the ``[periphery]`` table of a run).

    Parameters
    ----------
    dac_bits : int or None
        Input DAC resolution (bits) of forward and transposed reads: ``2^b - 1`` steps over
        [0, 1] (transposed reads: of ``|δ| / max|δ|``, sign by polarity). None: ideal inputs.
    adc_bits : int or None
        Output ADC resolution (bits) of every sensed line of every tile, signed. None: ideal
        outputs.
    adc_range : str
        Full scale of the ADC: ``"max"`` (the largest current a tile line can carry) or
        ``"calibrated"`` (per layer and direction, the largest partial sum over
        ``calibration_samples`` training samples at the start of every epoch).
    calibration_samples : int
        Training samples (the first ones of the training set) of the ``calibrated`` range.
    calibration_interval : int
        Training samples between two calibrations of the ``calibrated`` range.
    calibration_margin : float
        Full scale of the ``calibrated`` range in units of the largest partial sum seen
        (>= 1; 4 = two bits of headroom, the default: with 2, a hybrid or single pair of
        setting B with the fitted card on the 8x8 digits runs away within the first 200
        samples at 8 and even 16 bits -- clipped reads grow the weights, the recalibrated
        range follows them -- while 4 trains it, as does 2 with recalibration every 20
        samples at ten times the calibration cost).

    Raises
    ------
    ConfigError
        On bits that are not an integer in [1, 24], an unknown range or a sample count < 1,
        naming ``periphery.<field>`` and the value.
    """

    dac_bits: int | None = None
    adc_bits: int | None = None
    adc_range: str = "max"
    calibration_samples: int = 200
    calibration_interval: int = 200
    calibration_margin: float = 4.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, prefix: str = "periphery.") -> None:
        """Raise :class:`ConfigError` naming ``prefix + field`` and the value of a bad field."""
        for key in ("dac_bits", "adc_bits"):
            check_number(prefix + key, getattr(self, key), integer=True, lo=1, hi=24,
                         allow_none=True)
        check_choice(prefix + "adc_range", self.adc_range, ADC_RANGES)
        for key in ("calibration_samples", "calibration_interval"):
            check_number(prefix + key, getattr(self, key), integer=True, lo=1)
        check_number(prefix + "calibration_margin", self.calibration_margin, lo=1)

    @property
    def ideal(self) -> bool:
        """True when no conversion is modelled (the reads are exact)."""
        return self.dac_bits is None and self.adc_bits is None

    @classmethod
    def from_dict(cls, data: Any, prefix: str = "periphery.") -> "PeripherySpec":
        """A spec from a table (None or missing: ideal); unknown keys and bad values are a
        :class:`ConfigError` naming ``periphery.<key>``."""
        if isinstance(data, PeripherySpec):
            return data
        return cls(**check_table(cls, data if data is not None else {}, prefix,
                                 "periphery setting"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line, e.g. ``DAC 8 bits, ADC 6 bits (range calibrated)`` or ``ideal``."""
        if self.ideal:
            return "ideal (no DAC/ADC quantisation)"
        dac = "ideal" if self.dac_bits is None else f"{self.dac_bits} bits"
        adc = "ideal" if self.adc_bits is None else \
            f"{self.adc_bits} bits (range {self.adc_range})"
        return f"DAC {dac}, ADC {adc}"


def periphery_table(stored: Any) -> Any:
    """The full ``[periphery]`` table of a stored config (ideal for run files written before
    the table); a table that is not valid is returned as it is."""
    try:
        return PeripherySpec.from_dict(stored).to_dict()
    except ConfigError:
        return stored


# --------------------------------------------------------------------------- quantisers
@njit(cache=True, inline="always")
def dac_level(x, levels):
    """``x`` clipped to [0, 1] and rounded to ``levels`` steps (``levels = 0``: exact)."""
    if levels <= 0.0:
        return x
    x = min(max(x, 0.0), 1.0)
    return math.floor(x * levels + 0.5) / levels


@njit(cache=True, inline="always")
def adc_level(y, fs, half):
    """Signed ADC of full scale ``fs`` and ``2 half`` codes (``half = 2^(b-1)``, 0: exact):
    ``k LSB``, ``LSB = fs / half``, ``k = floor(y / LSB + 1/2)`` in ``[-half, half - 1]``."""
    if half <= 0.0 or fs <= 0.0:
        return y
    lsb = fs / half
    k = math.floor(y / lsb + 0.5)
    if k > half - 1.0:
        k = half - 1.0
    elif k < -half:
        k = -half
    return k * lsb


#: read state of :class:`QuantizedBackend`: output buffers (float32), per-tile partial-sum
#: buffers (float64) of the layer 0 / layer 1 forward reads, the quantised inputs of the
#: transposed read (float64), the DAC steps
#: ``2^b - 1`` and ADC half-range ``2^(b-1)`` (0: exact), tile sizes, and the full scales
#: ``fs[layer, direction, tile]`` (direction 0 forward, 1 transposed).
QuantReads = namedtuple("QuantReads", ["z0", "z1", "acc0", "acc1", "dq", "levels", "half",
                                       "tile_rows", "tile_cols", "fs"])


@njit(cache=True)
def quant_forward(reads, layer, L, idx, vals):
    """Forward read through the DAC and the per-tile ADCs: ``z_i = Σ_t ADC_t(Σ_{j in t}
    DAC(x_j) W[j, i])`` with the bias row (the last, driven at 1) in its tile; sums in
    float64 over the rows in increasing order."""
    z = reads.z0 if layer == 0 else reads.z1
    acc = reads.acc0 if layer == 0 else reads.acc1
    W = L.Wr
    n_out = z.size
    b = W.shape[0] - 1
    tr = reads.tile_rows
    levels = reads.levels
    acc[...] = 0.0
    for p in range(idx.size):
        j = idx[p]
        xv = dac_level(float(vals[p]), levels)
        t = j // tr
        for i in range(n_out):
            acc[t, i] += xv * float(W[j, i])
    tb = b // tr
    for i in range(n_out):
        acc[tb, i] += float(W[b, i])
    half = reads.half
    fs = reads.fs
    for i in range(n_out):
        s = 0.0
        for t in range(acc.shape[0]):
            s += adc_level(acc[t, i], fs[layer, 0, t], half)
        z[i] = s
    return z


@njit(cache=True)
def quant_transpose(reads, layer, L, d, e):
    """Transposed read through the DAC and the per-tile ADCs: ``e_j = Σ_t ADC_t(Σ_{k in t}
    W[j, k] u_k)`` with ``u_k = sign(d_k) DAC(|d_k| / m)``, ``m = max|d|``; returns ``m`` (the
    digital scale: ``e_j m`` is the read)."""
    W = L.Wr
    n_out = d.size
    m = 0.0
    for k in range(n_out):
        a = abs(float(d[k]))
        if a > m:
            m = a
    if m == 0.0:
        for j in range(e.size):
            e[j] = 0.0
        return 1.0
    u = reads.dq
    levels = reads.levels
    for k in range(n_out):
        a = dac_level(abs(float(d[k])) / m, levels)
        u[k] = a if d[k] >= 0 else -a
    tc = reads.tile_cols
    n_t = (n_out + tc - 1) // tc
    half = reads.half
    fs = reads.fs
    for j in range(e.size):
        s = 0.0
        for t in range(n_t):
            acc = 0.0
            for k in range(t * tc, min(n_out, (t + 1) * tc)):
                acc += float(W[j, k]) * u[k]
            s += adc_level(acc, fs[layer, 1, t], half)
        e[j] = s
    return m


register_tile_kernels(QuantReads, quant_forward, quant_transpose, ideal_update)


# --------------------------------------------------------------------------- backend
def cell_weight_max(L: Any, w_max: float) -> float:
    """Largest |weight| a cell of layer ``L`` holds (the ``"max"`` full scale per line):
    2T2R its read scale, a pair ``Σ_a gain_a (max(G0 + GR) - min G0)`` over its arrays, a
    floating-point cell the layer's ``w_max``."""
    if not L.is_pair:
        return float(w_max)
    if L.sign_read:
        return float(L.cfg["read_scale"][0])
    total = 0.0
    for a in range(L.n_arrays):
        top = float(np.max(L.G0[a] + L.GR[a]))
        total += float(L.gain[a]) * (top - float(np.min(L.G0[a])))
    return total


def _tiles(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(n, s + size)) for s in range(0, n, size)]


class QuantizedBackend(IdealBackend):
    """Ideal array reads through input DACs and per-tile output ADCs (:class:`PeripherySpec`).

    Parameters
    ----------
    periphery : PeripherySpec
        The converters.
    circuit : CircuitSpec or None
        The tiles (``tile_rows``, ``tile_cols``) whose lines have one ADC each (None: the
        defaults, 64x64).
    """

    def __init__(self, periphery: PeripherySpec, circuit: CircuitSpec | None = None):
        self.periphery = PeripherySpec.from_dict(periphery)
        self.circuit = circuit if circuit is not None else CircuitSpec()
        self.fs: np.ndarray | None = None
        self.calibration: tuple[np.ndarray, np.ndarray] | None = None

    # ---- full scales
    def _line_counts(self, layer: int) -> tuple[list[int], list[int]]:
        W = self.network.layers[layer].Wr
        rows = [b - a for a, b in _tiles(W.shape[0], self.circuit.tile_rows)]
        cols = [b - a for a, b in _tiles(W.shape[1], self.circuit.tile_cols)]
        return rows, cols

    def max_full_scales(self) -> np.ndarray:
        """``fs[layer, direction, tile]`` of the ``"max"`` range (padded with 0)."""
        net = self.network
        counts = [self._line_counts(li) for li in range(2)]
        n_t = max(max(len(r), len(c)) for r, c in counts)
        fs = np.zeros((2, 2, n_t))
        for li, (rows, cols) in enumerate(counts):
            w = cell_weight_max(net.layers[li], net.config.w_max[li])
            fs[li, 0, :len(rows)] = np.asarray(rows) * w
            fs[li, 1, :len(cols)] = np.asarray(cols) * w
        return fs

    def bind(self, network: Any) -> None:
        super().bind(network)
        self.fs = self.max_full_scales()
        self.calibration = None

    def calibrate(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Set the ``"calibrated"`` full scales from training inputs ``x`` (B, n_in) and their
        ``labels`` with the present weights, and keep them for the recalibrations of
        :meth:`compiled_reads`; returns ``fs`` (a ``"max"`` range: unchanged). A layer whose
        calibration reads are all zero keeps its ``"max"`` full scale."""
        if self.periphery.adc_range != "calibrated":
            return self.fs
        self.calibration = (np.asarray(x, np.float64), np.asarray(labels))
        return self._recalibrate()

    def _recalibrate(self) -> np.ndarray:
        net = self.network
        fs = self.max_full_scales()
        x, labels = self.calibration
        W0 = net.layers[0].Wr.astype(np.float64)
        W1 = net.layers[1].Wr.astype(np.float64)
        h = 1.0 / (1.0 + np.exp(-(x @ W0[:-1] + W0[-1])))
        o = 1.0 / (1.0 + np.exp(-(h @ W1[:-1] + W1[-1])))
        t = np.eye(o.shape[1])[np.asarray(labels)]
        d = (o - t) * o * (1.0 - o)
        m = np.abs(d).max(axis=1, keepdims=True)
        d = np.divide(d, m, out=np.zeros_like(d), where=m > 0)
        for li, (xin, W) in enumerate(((x, W0), (h, W1))):
            xa = np.hstack([xin, np.ones((len(xin), 1))])
            margin = self.periphery.calibration_margin
            peak = margin * max(float(np.abs(xa[:, a:b] @ W[a:b]).max())
                                for a, b in _tiles(W.shape[0], self.circuit.tile_rows))
            if peak > 0:
                fs[li, 0, :] = np.where(fs[li, 0] > 0, peak, 0.0)
            if li == 1:
                peak = margin * max(float(np.abs(d[:, a:b] @ W[:-1, a:b].T).max())
                                    for a, b in _tiles(W.shape[1], self.circuit.tile_cols))
                if peak > 0:
                    fs[li, 1, :] = np.where(fs[li, 1] > 0, peak, 0.0)
        self.fs = fs
        return fs

    # ---- batched reads (evaluation, check): the same arithmetic, vectorised
    def _levels(self) -> tuple[float, float]:
        p = self.periphery
        return (float(2 ** p.dac_bits - 1) if p.dac_bits else 0.0,
                float(2 ** (p.adc_bits - 1)) if p.adc_bits else 0.0)

    @staticmethod
    def _adc(y: np.ndarray, fs: float, half: float) -> np.ndarray:
        if half <= 0 or fs <= 0:
            return y
        lsb = fs / half
        return np.clip(np.floor(y / lsb + 0.5), -half, half - 1.0) * lsb

    @staticmethod
    def _dac(x: np.ndarray, levels: float) -> np.ndarray:
        if levels <= 0:
            return x
        return np.floor(np.clip(x, 0.0, 1.0) * levels + 0.5) / levels

    def forward(self, layer: int, W: np.ndarray, x: np.ndarray) -> np.ndarray:
        levels, half = self._levels()
        x = self._dac(np.atleast_2d(np.asarray(x, np.float32)).astype(np.float64), levels)
        xa = np.hstack([x, np.ones((len(x), 1))])
        W = np.asarray(W, np.float64)
        out = np.zeros((len(x), W.shape[1]))
        for t, (a, b) in enumerate(_tiles(W.shape[0], self.circuit.tile_rows)):
            out += self._adc(xa[:, a:b] @ W[a:b], self.fs[layer, 0, t], half)
        return out.astype(np.float32)

    def transpose(self, layer: int, W: np.ndarray, d: np.ndarray) -> np.ndarray:
        levels, half = self._levels()
        d = np.atleast_2d(np.asarray(d, np.float32)).astype(np.float64)
        m = np.abs(d).max(axis=1, keepdims=True)
        u = np.divide(np.abs(d), m, out=np.zeros_like(d), where=m > 0)
        u = np.sign(d) * self._dac(u, levels)
        W = np.asarray(W, np.float64)[:-1]
        out = np.zeros((len(d), W.shape[0]))
        for t, (a, b) in enumerate(_tiles(W.shape[1], self.circuit.tile_cols)):
            out += self._adc(u[:, a:b] @ W[:, a:b].T, self.fs[layer, 1, t], half)
        return (out * m).astype(np.float32)

    def compiled_reads(self, n_samples: int) -> tuple[Any, int]:
        """The read state for the next ``n`` samples: all of them with a ``"max"`` range;
        with a ``"calibrated"`` one (after :meth:`calibrate`), recalibrated now and valid for
        ``calibration_interval`` samples."""
        if self.calibration is not None:
            self._recalibrate()
            n_samples = min(n_samples, self.periphery.calibration_interval)
        z0, z1 = self._buffers()
        L0, L1 = self.network.layers
        tr, tc = self.circuit.tile_rows, self.circuit.tile_cols
        n_t0 = -(-L0.Wr.shape[0] // tr)
        n_t1 = -(-L1.Wr.shape[0] // tr)
        levels, half = self._levels()
        reads = QuantReads(z0, z1, np.zeros((n_t0, z0.size)), np.zeros((n_t1, z1.size)),
                           np.zeros(z1.size), levels, half,
                           np.int64(tr), np.int64(tc), np.ascontiguousarray(self.fs))
        return reads, n_samples


def make_periphery_backend(backend: Any, periphery: PeripherySpec,
                           circuit: CircuitSpec | None) -> Any:
    """The backend of a run with ``periphery``: ``backend`` itself for ideal converters, else
    a :class:`QuantizedBackend` -- which needs exact array reads (the ``ideal`` backend): a
    converter model on top of another backend is a :class:`ConfigError`."""
    if periphery.ideal:
        return backend
    if type(backend) is not IdealBackend:
        raise ConfigError("periphery", periphery.to_dict(),
                          f"DAC/ADC quantisation is modelled on the ideal backend only, not "
                          f"{type(backend).__name__}")
    return QuantizedBackend(periphery, circuit)


key_caches(globals())   # (periphery.py is one of jitcache.KERNEL_MODULES) recompile when any kernel source changes (.jitcache)
