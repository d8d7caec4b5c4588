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
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..device.card import ModelCard
from ..errors import ConfigError, unknown_fields

FORMAT = "pyspice-rram-surrogate-data/1"

PATTERNS = ("random", "network", "sparse", "allon", "alloff")
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

    def __post_init__(self) -> None:
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
    at the lowest state; ``allon`` / ``alloff``: every cell at the highest / lowest state.
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
    else:
        raise ConfigError(f"unknown pattern {pattern!r}")
    return grid[idx]


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
