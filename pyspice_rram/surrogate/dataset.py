"""Training and validation data of the tile surrogate: sampled tiles solved by ngspice.

A data set is described by a :class:`DataSpec` (seeded, so item ``k`` is always the same
tile and inputs) and stored in one HDF5 file, one group per item::

    /items/00042/        attrs: rows, cols, r_wire_row, r_wire_col, r_driver, r_sense,
                                pattern, split ("fit" / "test"), solver ("ngspice" / "mna"),
                                ngspice_agreement (max relative difference MNA vs ngspice on
                                the cross-check vectors, for MNA items), wall_s, item_hash
        x_index          (rows, cols)  uint8 index of each cell's state in /grid (or ``x``,
                                       the states in [0, 1], for states off the grid)
        forward/v_in     (n, rows)     read voltages (V);   forward/i_out (n, cols) currents (A)
        forward/kinds    (n,)          input kind of each vector
        transposed/...   the same for the transposed read
    /grid                the card's programmable states x(n), n = 0..N (reference area)
    /            attrs: spec (JSON), card (JSON), format

Generation is resumable: items already in the file are skipped, new ones are appended as
they finish (:func:`generate`). Items are solved with ngspice (``ngspice -b`` workers);
a fraction ``mna_fraction`` of items is solved with the sparse MNA solver instead, and
kept only if MNA agrees with ngspice to ``mna_rtol`` on ``mna_check_vectors`` vectors of
the same tile (the solver of every item is recorded).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..device.card import ModelCard
from ..errors import ConfigError, unknown_fields

FORMAT = "pyspice-rram-surrogate-data/1"

PATTERNS = ("random", "network", "sparse", "allon", "alloff", "colstripes", "rowstripes",
            "corner", "checker", "nearmax", "weights")
#: structured conductance patterns (held-out validation of issue 11; see :func:`sample_states`)
STRUCTURED = ("allon", "colstripes", "rowstripes", "corner", "checker", "nearmax", "weights")
INPUT_KINDS = ("random", "mnist", "onehot", "allon", "signed")


@dataclass
class DataSpec:
    """How tiles and inputs are sampled.

    Parameters
    ----------
    n_items : int
        Number of tiles (each read forward and transposed).
    seed : int
        Seed; item ``k`` uses ``default_rng([seed, k])``.
    sizes : list of int
        Line counts to draw rows and cols from (16 ... 128).
    square_fraction : float
        Fraction of square tiles (else rows and cols drawn independently).
    r_wire : [min, max]
        Wire resistance per segment (Ω), drawn log-uniformly.
    r_col_ratio : [min, max]
        ``r_wire_col / r_wire_row`` (log-uniform) for the ``1 - equal_wire_fraction`` of
        tiles with different row and column wires.
    equal_wire_fraction : float
    r_driver_max, r_sense_max : float
        Driver / sense resistance (Ω), uniform in [0, max] for half of the tiles, 0 otherwise.
    patterns : list of str
        Conductance patterns (see :func:`sample_states`) drawn uniformly.
    n_vectors : int
        Input vectors per read direction; kinds cycle through ``input_kinds``.
    input_kinds : list of str
    v_max : float or None
        Largest read voltage (V); default the card's ``scheme.v_read``.
    test_fraction : float
        Fraction of items flagged ``split = "test"`` (held out of fitting).
    mna_fraction : float
        Fraction of items solved with MNA (cross-checked against ngspice).
    mna_check_vectors : int
    mna_rtol : float
    cases : list of [rows, cols, r_wire_row, r_wire_col, r_driver, r_sense]
        Fixed tile geometries (Ω): items ``k < len(cases) * len(patterns)`` take case
        ``k // len(patterns)`` with pattern ``patterns[k % len(patterns)]``; later items are
        sampled as above.
    ir_drop_max : float or None
        Limit of the IR drop of sampled tiles: where ``g_max max(r_wire_row, r_wire_col)
        rows cols`` (dimensionless, ``g_max`` the card's largest cell conductance, S)
        exceeds it, both wires are scaled down so that it is ``U(0.6, 1) ir_drop_max``
        (biased to the limit). Not the surrogate's line-based :func:`ir_drop_parameter`
        (equal to it for square tiles without driver and sense resistance): sampled tiles
        may lie beyond the surrogate's domain (reported apart by ``surrogate validate``).
    periphery_max : float or None
        The same for ``g_max (r_driver + r_sense) max(rows, cols)``.
    """

    n_items: int = 120
    seed: int = 2021
    sizes: list = field(default_factory=lambda: [16, 32, 48, 64, 96, 128])
    square_fraction: float = 0.7
    r_wire: list = field(default_factory=lambda: [0.1, 5.0])
    r_col_ratio: list = field(default_factory=lambda: [0.5, 2.0])
    equal_wire_fraction: float = 0.7
    r_driver_max: float = 50.0
    r_sense_max: float = 50.0
    patterns: list = field(default_factory=lambda: list(PATTERNS))
    n_vectors: int = 10
    input_kinds: list = field(default_factory=lambda: list(INPUT_KINDS))
    v_max: float | None = None
    test_fraction: float = 0.3
    mna_fraction: float = 0.0
    mna_check_vectors: int = 2
    mna_rtol: float = 1e-6
    cases: list = field(default_factory=list)
    ir_drop_max: float | None = None
    periphery_max: float | None = None

    def __post_init__(self) -> None:
        for c in self.cases:
            if not (isinstance(c, (list, tuple)) and len(c) == 6 and int(c[0]) >= 1
                    and int(c[1]) >= 1 and all(float(r) >= 0 for r in c[2:])):
                raise ConfigError(f"cases: each case is [rows, cols, r_wire_row, r_wire_col, "
                                  f"r_driver, r_sense] with rows, cols >= 1 and resistances "
                                  f">= 0 (Ω), got {c!r}")
        for name in ("ir_drop_max", "periphery_max"):
            val = getattr(self, name)
            if val is not None and not (math.isfinite(val) and val > 0):
                raise ConfigError(f"{name} must be a positive number or absent, got {val!r}")
        bad = set(self.patterns) - set(PATTERNS)
        if bad:
            raise ConfigError(f"unknown conductance patterns {sorted(bad)}; known {PATTERNS}")
        bad = set(self.input_kinds) - set(INPUT_KINDS)
        if bad:
            raise ConfigError(f"unknown input kinds {sorted(bad)}; known {INPUT_KINDS}")
        if not (len(self.r_wire) == 2 and 0 < self.r_wire[0] <= self.r_wire[1]):
            raise ConfigError("r_wire must be [min, max] with 0 < min <= max (Ω)")
        if min(self.sizes) < 1 or self.n_items < 1 or self.n_vectors < 1:
            raise ConfigError("sizes, n_items and n_vectors must be >= 1")
        if not (0 <= self.test_fraction <= 1 and 0 <= self.mna_fraction <= 1):
            raise ConfigError("test_fraction and mna_fraction must be in [0, 1]")

    @classmethod
    def from_dict(cls, data: dict) -> "DataSpec":
        bad = unknown_fields(cls, data)
        if bad:
            raise ConfigError(f"unknown data-spec keys: {bad}")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> "DataSpec":
        """Read a spec from TOML (table ``[data]`` or top level) or JSON."""
        import tomllib

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"data spec {path} not found")
        data = tomllib.loads(path.read_text()) if path.suffix == ".toml" else \
            json.loads(path.read_text())
        return cls.from_dict(data.get("data", data))

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- sampling
def card_data_json(card_json: str | bytes) -> str:
    """A stored card's JSON with its ``provenance`` (timestamps, tool version) emptied, keys
    sorted: what identifies the card's data."""
    if isinstance(card_json, bytes):
        card_json = card_json.decode()
    if not card_json:
        return ""
    d = json.loads(card_json)
    if isinstance(d, dict):
        d["provenance"] = {}     # (stored cards without provenance hash as before)
    return json.dumps(d, sort_keys=True)


def state_grid(card: ModelCard) -> np.ndarray:
    """The card's programmable states: ``x(n)`` after ``n = 0..N`` nominal pulses."""
    card.require_default_family("the surrogate data generator")
    n_states = card.n_states()
    N = int(max(1, round(n_states))) if math.isfinite(n_states) else 50
    n = np.arange(N + 1)
    beta = card.beta_p
    if abs(beta) < 1e-9:
        return n / N
    # NumPy's and math's expm1 may differ in the last bit: keep the top state <= 1
    return np.minimum(-np.expm1(-beta * n / N) / -math.expm1(-beta), 1.0)


def sample_states(pattern: str, shape: tuple[int, int], grid: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Cell states on the card's state grid for a conductance pattern.

    ``random``: uniform over the grid; ``network``: a trained-network-like differential
    array (half the devices at the lowest state, the others ``|N(0, 0.3)|`` of the range,
    with smooth row/column structure); ``sparse``: 5-20 % of the cells programmed, the rest
    at the lowest state; ``allon`` / ``alloff``: every cell at the highest / lowest state;
    ``colstripes`` / ``rowstripes``: stripes of 1-4 columns / rows at the highest state every
    2-4 lines, the rest at the lowest; ``corner``: a block of 25-75 % of each side at the top
    10 % of the states in the corner farthest from both peripheries; ``checker``: a
    checkerboard of 1-3-cell squares at the highest / lowest state; ``nearmax``: a block of
    50-100 % of each side in the top 10 % of the states, the rest random; ``weights``: a
    block of the trained weights of a network mapped like the surrogate backend maps a
    weight matrix (:func:`trained_weight_states`; states off the grid).
    """
    n = len(grid) - 1
    if pattern == "random":
        idx = rng.integers(0, n + 1, shape)
    elif pattern == "network":
        w = rng.normal(0.0, 0.3, shape) * (1 + 0.5 * rng.normal(size=(shape[0], 1))) \
            * (1 + 0.3 * rng.normal(size=(1, shape[1])))
        w = np.where(rng.uniform(size=shape) < 0.5, 0.0, np.abs(w))
        idx = np.clip(np.rint(w * n), 0, n).astype(int)
    elif pattern == "sparse":
        p = rng.uniform(0.05, 0.2)
        idx = np.where(rng.uniform(size=shape) < p, rng.integers(1, n + 1, shape), 0)
    elif pattern == "allon":
        idx = np.full(shape, n)
    elif pattern == "alloff":
        idx = np.zeros(shape, int)
    elif pattern in ("colstripes", "rowstripes"):
        # stripes of 1-4 lines at the top state every 2-4 lines, the others at the lowest
        width, period = int(rng.integers(1, 5)), int(rng.integers(2, 5))
        period = max(period, width + 1)
        n_lines = shape[1] if pattern == "colstripes" else shape[0]
        on = (np.arange(n_lines) + int(rng.integers(period))) % period < width
        idx = np.where(on[None, :] if pattern == "colstripes" else on[:, None], n, 0)
        idx = np.broadcast_to(idx, shape).copy()
    elif pattern == "corner":
        # a block at (near) the top state in the corner far from both peripheries
        # (row 0: far from the column periphery; the last columns: far from the drivers)
        h = max(1, int(round(shape[0] * rng.uniform(0.25, 0.75))))
        w = max(1, int(round(shape[1] * rng.uniform(0.25, 0.75))))
        idx = np.zeros(shape, int)
        idx[:h, shape[1] - w:] = rng.integers(int(0.9 * n), n + 1, (h, w))
    elif pattern == "checker":
        k = int(rng.integers(1, 4))                  # checker squares of 1-3 cells
        i, j = np.indices(shape)
        idx = np.where(((i // k) + (j // k)) % 2 == 0, n, 0)
    elif pattern == "nearmax":
        # a block of 50-100 % of each side with states in the top 10 % of the range, the
        # rest random
        idx = rng.integers(0, n + 1, shape)
        h = max(1, int(round(shape[0] * rng.uniform(0.5, 1.0))))
        w = max(1, int(round(shape[1] * rng.uniform(0.5, 1.0))))
        i0, j0 = int(rng.integers(shape[0] - h + 1)), int(rng.integers(shape[1] - w + 1))
        idx[i0:i0 + h, j0:j0 + w] = rng.integers(int(0.9 * n), n + 1, (h, w))
    elif pattern == "weights":
        return trained_weight_states(shape, rng)
    else:
        raise ConfigError(f"unknown pattern {pattern!r}")
    return grid[idx]


@lru_cache(maxsize=1)
def trained_weights() -> np.ndarray:
    """First-layer weights ``(257, 256)`` (bias row last) of a 256-256-10 perceptron trained
    on the embedded 8x8 digits upsampled to 16x16 (numpy SGD, tanh hidden layer, softmax
    output, 4 epochs, batch 16, learning rate 0.05, seed 0; ~1 s): real trained weights,
    with the structure of images (smooth, correlated rows), for the ``weights`` pattern."""
    from threadpoolctl import threadpool_limits

    from ..network.data import load_digits

    with threadpool_limits(1):          # tiny products: threaded BLAS only stalls here
        return _train_weights(load_digits())


def _train_weights(ds) -> np.ndarray:
    x = ds.x_train.astype(float) * ds.scale
    x = np.kron(x.reshape(-1, 8, 8), np.ones((1, 2, 2))).reshape(len(x), 256)
    y = ds.y_train
    rng = np.random.default_rng(0)
    W1 = rng.normal(0, 1 / math.sqrt(257), (257, 256))
    W2 = rng.normal(0, 1 / math.sqrt(257), (257, 10))
    for _ in range(4):
        for b in np.array_split(rng.permutation(len(y)), len(y) // 16):
            xa = np.hstack([x[b], np.ones((len(b), 1))])
            h = np.tanh(xa @ W1)
            ha = np.hstack([h, np.ones((len(b), 1))])
            z = ha @ W2
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            p[np.arange(len(b)), y[b]] -= 1.0
            dh = (p @ W2[:-1].T) * (1 - h * h)
            W2 -= 0.05 * ha.T @ p / len(b)
            W1 -= 0.05 * xa.T @ dh / len(b)
    return W1


def trained_weight_states(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """States of one device array holding a block of :func:`trained_weights`, mapped as
    :class:`~pyspice_rram.surrogate.backend.SurrogateBackend` maps a weight matrix onto a
    differential pair: ``x = max(+-W, 0) / max|W|`` (the ``+`` or ``-`` device, drawn), the
    block at a random offset (tiles of up to 257 x 256 cells; larger ones repeat it)."""
    W = trained_weights()
    if rng.uniform() < 0.5:
        W = W.T
    reps = (-(-shape[0] // W.shape[0]), -(-shape[1] // W.shape[1]))
    W = np.tile(W, reps)
    i0 = int(rng.integers(W.shape[0] - shape[0] + 1))
    j0 = int(rng.integers(W.shape[1] - shape[1] + 1))
    block = W[i0:i0 + shape[0], j0:j0 + shape[1]]
    sign = 1.0 if rng.uniform() < 0.5 else -1.0
    return np.clip(np.maximum(sign * block, 0.0) / np.max(np.abs(W)), 0.0, 1.0)


def sample_inputs(kind: str, n: int, v_max: float, rng: np.random.Generator) -> np.ndarray:
    """One input vector (V) of ``n`` driven lines.

    ``random``: uniform in [0, v_max]; ``mnist``: 10-30 % of the lines on at 0.5-1 v_max
    (like a binarised-ish image), the rest 0; ``onehot``: one line at v_max; ``allon``: all
    at v_max; ``signed``: uniform in [-v_max, v_max] (back-propagated errors).
    """
    if kind == "random":
        return rng.uniform(0.0, v_max, n)
    if kind == "mnist":
        p = rng.uniform(0.1, 0.3)
        return np.where(rng.uniform(size=n) < p, rng.uniform(0.5, 1.0, n) * v_max, 0.0)
    if kind == "onehot":
        v = np.zeros(n)
        v[rng.integers(n)] = v_max
        return v
    if kind == "allon":
        return np.full(n, v_max)
    if kind == "signed":
        return rng.uniform(-v_max, v_max, n)
    raise ConfigError(f"unknown input kind {kind!r}")


@dataclass
class Item:
    """One sampled tile with its inputs for both read directions."""

    index: int
    x: np.ndarray
    r_wire_row: float
    r_wire_col: float
    r_driver: float
    r_sense: float
    pattern: str
    split: str
    solver: str
    v_in: dict[str, np.ndarray]
    kinds: dict[str, list[str]]

    def tile(self, card: ModelCard):
        from ..circuit.tile import Tile

        return Tile(x=self.x, card=card, r_wire_row=self.r_wire_row,
                    r_wire_col=self.r_wire_col, r_driver=self.r_driver, r_sense=self.r_sense,
                    name=f"item{self.index:05d}")

    def hash(self) -> str:
        h = hashlib.sha256()
        for arr in (self.x, self.v_in["forward"], self.v_in["transposed"]):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update(json.dumps([self.r_wire_row, self.r_wire_col, self.r_driver,
                             self.r_sense]).encode())
        return h.hexdigest()[:16]


def line_ir_drops(rows: int, cols: int, r_wire_row: float, r_wire_col: float, g_max: float,
                  r_driver: float = 0.0, r_sense: float = 0.0) -> tuple[float, float]:
    """Dimensionless IR-drop parameters of the row and column lines of a tile,
    ``(g_max (r_row cols^2 + (r_driver + r_sense) cols), g_max (r_col rows^2 + (r_driver +
    r_sense) rows))`` (``g_max`` in S, resistances in Ω; a row line carries ``cols`` cells):
    about twice the fraction of the read voltage a line drops when all its cells are at
    ``g_max`` (for one line alone; driver and sense counted on both lines, as each line is
    driven in one read direction and sensed in the other)."""
    rp = r_driver + r_sense
    return (float(g_max * (r_wire_row * cols * cols + rp * cols)),
            float(g_max * (r_wire_col * rows * rows + rp * rows)))


def ir_drop_parameter(rows: int, cols: int, r_wire_row: float, r_wire_col: float,
                      g_max: float, r_driver: float = 0.0, r_sense: float = 0.0) -> float:
    """The larger of the two :func:`line_ir_drops`: the surrogate's error grows with it, its
    validity caps it (``validity['ir_drop_max']``)."""
    return max(line_ir_drops(rows, cols, r_wire_row, r_wire_col, g_max, r_driver, r_sense))


def ir_drop_asymmetry(rows: int, cols: int, r_wire_row: float, r_wire_col: float,
                      g_max: float, r_driver: float = 0.0, r_sense: float = 0.0) -> float:
    """``|lam_row - lam_col|`` of :func:`line_ir_drops`: one strongly attenuated line against
    a nearly ideal one is the surrogate's hardest case (capped by
    ``validity['ir_drop_asym_max']``)."""
    a, b = line_ir_drops(rows, cols, r_wire_row, r_wire_col, g_max, r_driver, r_sense)
    return abs(a - b)


def periphery_parameter(rows: int, cols: int, r_driver: float, r_sense: float,
                        g_max: float) -> float:
    """Dimensionless periphery parameter ``g_max (r_driver + r_sense) max(rows, cols)``: the
    fraction of the read voltage a full line current drops across driver and sense."""
    return float(g_max * (r_driver + r_sense) * max(rows, cols))


def sample_item(spec: DataSpec, card: ModelCard, k: int) -> Item:
    """Item ``k`` of the data set (deterministic in ``spec.seed`` and ``k``)."""
    rng = np.random.default_rng([spec.seed, k])
    rows = int(rng.choice(spec.sizes))
    cols = rows if rng.uniform() < spec.square_fraction else int(rng.choice(spec.sizes))
    lo, hi = spec.r_wire
    r_row = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    if rng.uniform() < spec.equal_wire_fraction:
        r_col = r_row
    else:
        a, b = spec.r_col_ratio
        r_col = float(np.clip(r_row * math.exp(rng.uniform(math.log(a), math.log(b))), lo, hi))
    r_drv = float(rng.uniform(0, spec.r_driver_max)) if rng.uniform() < 0.5 else 0.0
    r_sns = float(rng.uniform(0, spec.r_sense_max)) if rng.uniform() < 0.5 else 0.0
    pattern = str(rng.choice(spec.patterns))
    n_fixed = len(spec.cases) * len(spec.patterns)
    if k < n_fixed:
        c = spec.cases[k // len(spec.patterns)]
        rows, cols = int(c[0]), int(c[1])
        r_row, r_col, r_drv, r_sns = (float(r) for r in c[2:])
        pattern = spec.patterns[k % len(spec.patterns)]
    else:
        g_max = card.g_max()
        if spec.ir_drop_max is not None:
            lam = g_max * max(r_row, r_col) * rows * cols
            if lam > spec.ir_drop_max:
                f = spec.ir_drop_max * rng.uniform(0.6, 1.0) / lam
                r_row, r_col = r_row * f, r_col * f
        if spec.periphery_max is not None:
            p = periphery_parameter(rows, cols, r_drv, r_sns, g_max)
            if p > spec.periphery_max:
                f = spec.periphery_max * rng.uniform(0.6, 1.0) / p
                r_drv, r_sns = r_drv * f, r_sns * f
    x = sample_states(pattern, (rows, cols), state_grid(card), rng)
    split = "test" if rng.uniform() < spec.test_fraction else "fit"
    solver = "mna" if rng.uniform() < spec.mna_fraction else "ngspice"
    v_max = spec.v_max or card.scheme.v_read
    v_in, kinds = {}, {}
    for direction, n in (("forward", rows), ("transposed", cols)):
        ks = [spec.input_kinds[(i + k) % len(spec.input_kinds)] for i in range(spec.n_vectors)]
        if direction == "forward" and "signed" in ks and len(spec.input_kinds) > 1:
            ks = [kk if kk != "signed" else "random" for kk in ks]  # forward inputs are >= 0
        v_in[direction] = np.stack([sample_inputs(kk, n, v_max, rng) for kk in ks])
        kinds[direction] = ks
    return Item(k, x, r_row, r_col, r_drv, r_sns, pattern, split, solver, v_in, kinds)


# --------------------------------------------------------------------------- solving
def solve_item(item: Item, card: ModelCard, rtol: float = 1e-6,
               check_vectors: int = 2) -> dict[str, Any]:
    """Solve both reads of ``item`` with its solver; returns currents and bookkeeping."""
    from ..circuit import mna, ngspice_run

    tile = item.tile(card)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"i_out": {}, "agreement": float("nan")}
    worst = 0.0
    for direction in ("forward", "transposed"):
        v = item.v_in[direction]
        if item.solver == "ngspice":
            out["i_out"][direction] = ngspice_run.solve_tile(tile, v, direction, backend="batch")
        else:
            i_mna = mna.solve_tile(tile, v, direction)
            ref = ngspice_run.solve_tile(tile, v[:check_vectors], direction, backend="batch")
            scale = np.maximum(np.abs(ref), 1e-3 * np.max(np.abs(ref)) + 1e-30)
            worst = max(worst, float(np.max(np.abs(i_mna[:check_vectors] - ref) / scale)))
            out["i_out"][direction] = i_mna
    if item.solver == "mna":
        out["agreement"] = worst
        if worst > rtol:  # MNA disagrees: fall back to ngspice for the whole item
            for direction in ("forward", "transposed"):
                out["i_out"][direction] = ngspice_run.solve_tile(
                    tile, item.v_in[direction], direction, backend="batch")
            out["solver"] = "ngspice"
    out.setdefault("solver", item.solver)
    out["wall_s"] = time.perf_counter() - t0
    return out


def _work(args: tuple) -> tuple[int, dict[str, Any]]:
    spec_d, card_d, k = args
    spec, card = DataSpec.from_dict(spec_d), ModelCard.from_dict(card_d)
    item = sample_item(spec, card, k)
    return k, solve_item(item, card, spec.mna_rtol, spec.mna_check_vectors)


def _write_states(h5, g, x: np.ndarray) -> None:
    """Store states as uint8 indices into ``/grid`` when they lie on it (exactly), else as is."""
    grid = h5["grid"][...] if "grid" in h5 else None
    if grid is not None and len(grid) <= 256:
        idx = np.searchsorted(grid, x)
        idx = np.clip(idx, 0, len(grid) - 1)
        if np.array_equal(grid[idx], x):
            g.create_dataset("x_index", data=idx.astype(np.uint8), compression="gzip",
                             shuffle=True)
            return
    g.create_dataset("x", data=x, compression="gzip", shuffle=True)


def _read_states(h5, g) -> np.ndarray:
    if "x_index" in g:
        return h5["grid"][...][g["x_index"][...]]
    return g["x"][...]


def compact(path: str | Path) -> None:
    """Rewrite float states that lie on the state grid as uint8 indices (a new file renamed
    over the old one: an interrupted compaction leaves the data set as it was)."""
    import h5py

    from ..circuit.safeio import atomic_h5

    with h5py.File(path, "r") as src, atomic_h5(path) as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        grid = (src["grid"][...] if "grid" in src else
                state_grid(ModelCard.from_dict(json.loads(src.attrs["card"]))))
        dst.create_dataset("grid", data=grid)
        for k in src.keys():
            if k not in ("grid", "items"):
                src.copy(src[k], dst, name=k)
        if "items" in src:
            items = dst.create_group("items")
            for k, v in src["items"].attrs.items():
                items.attrs[k] = v
            for name in src["items"]:
                src.copy(src["items"][name], items, name=name)
                g = items[name]
                if "x" in g:
                    x = g["x"][...]
                    del g["x"]
                    _write_states(dst, g, x)


def _write_item(h5, item: Item, res: dict[str, Any]) -> None:
    g = h5.require_group("items").create_group(f"{item.index:05d}")
    g.attrs.update(rows=item.x.shape[0], cols=item.x.shape[1], r_wire_row=item.r_wire_row,
                   r_wire_col=item.r_wire_col, r_driver=item.r_driver, r_sense=item.r_sense,
                   pattern=item.pattern, split=item.split, solver=res["solver"],
                   ngspice_agreement=res["agreement"], wall_s=res["wall_s"],
                   item_hash=item.hash())
    _write_states(h5, g, item.x)
    for direction in ("forward", "transposed"):
        d = g.create_group(direction)
        d.create_dataset("v_in", data=item.v_in[direction], compression="gzip", shuffle=True)
        d.create_dataset("i_out", data=res["i_out"][direction])
        d.create_dataset("kinds", data=np.array(item.kinds[direction], dtype="S8"))


def generate(path: str | Path, spec: DataSpec, card: ModelCard | None = None, *,
             workers: int = 1, progress: bool = True, limit: int | None = None,
             new: bool = False) -> Path:
    """Create or extend the data set at ``path`` (resumable: done items are skipped).

    Parameters
    ----------
    path : HDF5 file; created with ``spec`` and ``card``, or extended if it exists (its
        stored spec and card must then equal the given ones).
    spec : DataSpec
    card : ModelCard (default: the reference card)
    workers : local worker processes (each runs ``ngspice -b``)
    progress : tqdm progress bar over items
    limit : solve at most this many new items in this call (for tests and time budgets)
    new : start a new data set even if ``path`` exists; the earlier file is replaced only
        at the first commit of the new one (an interrupt before it leaves it as it was)

    Every write is atomic (a new file, or a copy appended to, renamed over the old one;
    items are committed in batches, see :class:`~pyspice_rram.circuit.safeio.H5Checkpoints`):
    a kill at any moment leaves the items committed before it readable.
    """
    import h5py
    from tqdm.auto import tqdm

    card = card or ModelCard.reference()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec_json = json.dumps(spec.to_dict(), sort_keys=True)
    card_json = json.dumps(card.to_dict(), sort_keys=True)
    from ..circuit.safeio import H5Checkpoints

    done: set[str] = set()
    fresh = new or not path.exists()
    if not fresh:
        with h5py.File(path, "r") as h5:
            if "spec" in h5.attrs:
                if json.loads(h5.attrs["spec"]) != json.loads(spec_json):
                    raise ConfigError(f"{path} was generated with another data spec; use a "
                                     "new file")
                if card_data_json(h5.attrs["card"]) != card_data_json(card_json):
                    raise ConfigError(f"{path} was generated with another model card; use a "
                                     "new file")
            done = set(h5["items"].keys()) if "items" in h5 else set()
    todo = [k for k in range(spec.n_items) if f"{k:05d}" not in done]
    if limit is not None:
        todo = todo[:limit]

    def write(h5, records):
        if "spec" not in h5.attrs:
            h5.attrs.update(spec=spec_json, card=card_json, format=FORMAT)
        if "grid" not in h5:
            h5.create_dataset("grid", data=state_grid(card))
        for item, res in records:
            _write_item(h5, item, res)

    bar = tqdm(total=len(todo), desc="surrogate data", unit="tile", disable=not progress)
    try:
        with H5Checkpoints(path, write, new=fresh) as store:  # commits on exit (interrupt too)
            if workers <= 1 or len(todo) <= 1:
                for k in todo:
                    item = sample_item(spec, card, k)
                    res = solve_item(item, card, spec.mna_rtol, spec.mna_check_vectors)
                    store.add((item, res))
                    bar.update()
            else:
                with ProcessPoolExecutor(max_workers=workers) as pool:
                    futs = [pool.submit(_work, (spec.to_dict(), card.to_dict(), k))
                            for k in todo]
                    for fut in as_completed(futs):
                        k, res = fut.result()
                        store.add((sample_item(spec, card, k), res))
                        bar.update()
            if fresh and not store.committed and not store.pending:
                store.commit(always=True)            # a data set without items yet
    finally:
        bar.close()
    return path


# --------------------------------------------------------------------------- reading
@dataclass
class Record:
    """One stored read: a tile, its inputs and the solver's output currents."""

    index: int
    direction: str
    tile: Any
    v_in: np.ndarray
    i_out: np.ndarray
    kinds: list[str]
    split: str
    solver: str
    pattern: str


def load_card(path: str | Path) -> ModelCard:
    import h5py

    with h5py.File(path, "r") as h5:
        return ModelCard.from_dict(json.loads(h5.attrs["card"]))


def iter_records(path: str | Path, split: str | None = None) -> Iterator[Record]:
    """Every stored read of a data set (``split``: ``"fit"``, ``"test"`` or None for all)."""
    import h5py

    from ..circuit.tile import Tile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"surrogate data set {path} not found")
    with h5py.File(path, "r") as h5:
        if h5.attrs.get("format") != FORMAT:
            raise ConfigError(f"{path} is not a surrogate data set ({FORMAT})")
        card = ModelCard.from_dict(json.loads(h5.attrs["card"]))
        for name in sorted(h5.get("items", {}).keys()):
            g = h5["items"][name]
            a = dict(g.attrs)
            if split is not None and a["split"] != split:
                continue
            tile = Tile(x=_read_states(h5, g), card=card, r_wire_row=float(a["r_wire_row"]),
                        r_wire_col=float(a["r_wire_col"]), r_driver=float(a["r_driver"]),
                        r_sense=float(a["r_sense"]), name=f"item{name}")
            for direction in ("forward", "transposed"):
                d = g[direction]
                yield Record(int(name), direction, tile, d["v_in"][...], d["i_out"][...],
                             [k.decode() for k in d["kinds"][...]], str(a["split"]),
                             str(a["solver"]), str(a["pattern"]))


def summary(path: str | Path) -> dict[str, Any]:
    """Counts of items per split, solver, pattern and size."""
    import h5py

    out: dict[str, Any] = {"items": 0, "split": {}, "solver": {}, "pattern": {}, "size": {}}
    with h5py.File(path, "r") as h5:
        for name in h5.get("items", {}).keys():
            a = h5["items"][name].attrs
            out["items"] += 1
            for key, val in (("split", a["split"]), ("solver", a["solver"]),
                             ("pattern", a["pattern"]),
                             ("size", f"{a['rows']}x{a['cols']}")):
                out[key][str(val)] = out[key].get(str(val), 0) + 1
    return out
