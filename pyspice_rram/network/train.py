"""Training of the 784-250-10 sigmoid MLP (batch 1, MSE) with synapse unit cells.

:class:`TrainConfig` describes a run (documented dataclass, loadable from TOML/JSON);
:func:`train` runs it, epoch by epoch, through the one numba per-sample loop
(:func:`.sgd.sgd_samples`) with the reads and updates of the tile backend
(:mod:`.backend`: ideal, read noise, the crossbar surrogate, ...). After
every epoch it evaluates train and test sets, applies the hybrid phase rule, and writes the
HDF5 history + checkpoint (:mod:`.history`), so that ``resume=True`` continues a killed run
from its last complete epoch and gives the same result as an uninterrupted run.

Randomness: the initial weights and device-to-device spread come from
``numpy.random.default_rng(seed)``; epoch ``e`` uses the sample order
``default_rng([seed, e]).permutation`` and the in-loop generator ``seed_state(seed, e)``
(pulse noise, stochastic rounding), so an epoch depends only on ``(seed, e)`` and the state.
"""

from __future__ import annotations

import json
import math
import time
import tomllib
from dataclasses import dataclass, field, fields
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from threadpoolctl import threadpool_limits

from .cells import ConfigError
from .backend import BACKENDS, TileBackend, backend_name, make_backend
from .circuit_spec import CircuitSpec, circuit_table
from .periphery import (PeripherySpec, QuantizedBackend, make_periphery_backend,
                        periphery_table)
from .cells import (CELLS, DeviceSpec, FloatingPointCell, HybridCell, check_choice,
                    check_finite_tree, check_number, make_cell)
from .layer import STAT_PULSES, STAT_REFRESH, STAT_UPDATES, LayerState
from .rng import seed_state
from .sgd import LEDGER_CYCLES, LEDGER_FORWARD, LEDGER_TRANSPOSED, ledger_size, sgd_samples
from .data import Dataset, load_dataset
from .history import History, check_overwrite, load_run, run_lock, save_run
from ..errors import UserInputError

if TYPE_CHECKING:
    from ..device.card import ModelCard
    from .cells import PairCell


@dataclass
class TrainConfig:
    """One training run.

    Parameters
    ----------
    name : str
        Label of the run (figures, tables).
    dataset : str
        ``"digits"`` (scikit-learn 8x8, embedded) or ``"mnist"`` (IDX files, see
        :func:`.data.find_mnist`).
    mnist_path : str or None
        Directory of the MNIST files (else ``$PYSPICE_RRAM_MNIST`` / cache).
    n_train, n_test : int or None
        Use only the first examples (None: all).
    n_hidden : int
        Hidden neurons (250 in the paper).
    lr : float
        Learning rate η of ``ΔW = -η δ x^T`` (0.1 in the paper).
    epochs : int
        Training epochs (passes over the training set, batch size 1).
    seed : int
        Seed of initialisation, device spread, sample order and pulse noise.
    cell : str
        ``fp``, ``single``, ``hybrid``, ``multi`` or ``2t2r`` (see :mod:`.cells`).
    cell_params : cell dataclass (a dict is converted)
        The cell's parameters as its dataclass of :mod:`.cells` (:class:`.cells.PairCell`,
        :class:`.cells.HybridCell`, :class:`.cells.MultiDeviceCell`,
        :class:`.cells.BinaryPairCell`; :class:`.cells.FloatingPointCell` for ``fp``): a
        table ``{rounding, bl, init, max_pulses, dead_zone; hybrid: k, small_states,
        small_rounding, switch_threshold; multi: n_devices}`` from TOML/JSON is converted
        (unknown keys and bad values are a :class:`ConfigError`). Its ``device`` is
        replaced by the run's device (:meth:`build_cell`).
    device : DeviceSpec (a dict is converted)
        The device (:class:`.cells.DeviceSpec`) when ``card`` is None. With a card, the
        fields given in the table (or differing from the defaults) override the card's.
    card : ModelCard or None (a path or a card dict is loaded)
        Model card of the device layer; its parameters fill the DeviceSpec. A path stays
        the card's reference in :meth:`to_dict` (run files), a card given as an object is
        stored as its dict.
    w_max : list of float
        Weight of one full nominal conductance range (G_max - G_min) of a big pair, per layer:
        a pair spans ``[-w_max, w_max]``.
    init_gain : float
        Initial weights ~ U(-a, a), ``a = init_gain / sqrt(n_in)``.
    read_scale : list of float or None
        2T2R read weight magnitude per layer (default ``1/sqrt(n_in)``).
    backend : str
        Tile backend name (``ideal``, ``read-noise``, ``surrogate``, ``mna``: every tile
        solved as a circuit, for small networks; :mod:`.backend`).
    circuit : CircuitSpec (a dict is converted)
        The crossbar the backend reads (the ``[circuit]`` table,
        :class:`.circuit_spec.CircuitSpec`): ``tile_rows``, ``tile_cols`` (cells),
        ``r_wire_row``, ``r_wire_col``, ``r_driver``, ``r_sense`` (Ω), ``v_read`` (V, None:
        the card's). Default 64x64 tiles, 1 Ω wire segments, ideal driver and sense (the
        surrogate backend's defaults; a config or run file without the table means these).
        Used by backends that model the circuit (``surrogate``, ``mna``); ``ideal`` and
        ``read-noise`` ignore it (it is still recorded in the run file). The tile size
        also sets the ADCs of ``periphery`` and the tiles counted by the cost ledger.
    periphery : PeripherySpec (a dict is converted)
        DAC and ADC resolution of the reads (the ``[periphery]`` table,
        :class:`.periphery.PeripherySpec`): ``dac_bits``, ``adc_bits`` (None: ideal),
        ``adc_range`` (``"max"`` or ``"calibrated"``), ``calibration_samples``,
        ``calibration_interval``, ``calibration_margin`` (docs/cost.md). Default (and
        a config or run file without the table): ideal converters. Quantised reads need the
        ``ideal`` backend.
    n_track : int
        Number of hidden-output synapses whose weights are recorded (Fig. 4D-F).
    track_points : int
        Records of the tracked synapses per epoch.
    save_weights : bool
        Store the final read weights in the run file.
    """

    name: str = "run"
    dataset: str = "digits"
    mnist_path: str | None = None
    n_train: int | None = None
    n_test: int | None = None
    n_hidden: int = 250
    lr: float = 0.1
    epochs: int = 10
    seed: int = 0
    cell: str = "fp"
    cell_params: FloatingPointCell | PairCell | dict = field(default_factory=dict)
    device: DeviceSpec | dict = field(default_factory=dict)
    card: ModelCard | str | Path | None = None
    w_max: list = field(default_factory=lambda: [0.3, 0.3])
    init_gain: float = 1.0
    read_scale: list | None = None
    backend: str = "ideal"
    circuit: CircuitSpec | dict = field(default_factory=CircuitSpec)
    periphery: PeripherySpec | dict = field(default_factory=PeripherySpec)
    n_track: int = 3
    track_points: int = 10
    save_weights: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.w_max, (int, float)) and not isinstance(self.w_max, bool):
            self.w_max = [self.w_max] * 2
        self.validate()
        self.w_max = [float(w) for w in self.w_max]

    def validate(self, where: str | None = None) -> "TrainConfig":
        """Check every field, the device and the cell parameters; raise :class:`ConfigError`
        (a ``ValueError``) naming ``where`` (file or run), the key and the value.

        The one place of parameter validation of the network layer: used by
        :meth:`from_dict` / :meth:`load` (so by ``train``, ``reproduce``, ``ablation`` and
        the API). NaN or infinity anywhere is an error, as are ``k <= 0``, ``n_states < 2``
        (``multi`` cells: ``< 1``), ``lr <= 0``, non-integer ``epochs`` and unknown keys.
        """
        try:
            self._validate()
        except ConfigError as err:
            raise err.located(where) if where else err from None
        return self

    def _validate(self) -> None:
        self._convert()
        tree = self.to_dict()
        tree.pop("card")
        check_finite_tree("", tree)
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("name", self.name, "must be a non-empty string")
        check_choice("dataset", self.dataset, ("digits", "mnist"))
        if self.mnist_path is not None and not isinstance(self.mnist_path, str):
            raise ConfigError("mnist_path", self.mnist_path, "must be a path (string)")
        for key in ("n_train", "n_test"):
            check_number(key, getattr(self, key), integer=True, lo=1, allow_none=True)
        check_number("n_hidden", self.n_hidden, integer=True, lo=1)
        check_number("lr", self.lr, lo=0, lo_open=True)
        check_number("epochs", self.epochs, integer=True, lo=0)
        check_number("seed", self.seed, integer=True, lo=0)
        check_choice("cell", self.cell, CELLS)
        if not isinstance(self.w_max, (list, tuple)) or len(self.w_max) != 2:
            raise ConfigError("w_max", self.w_max, "needs one value per layer (2)")
        for i, w in enumerate(self.w_max):
            check_number(f"w_max[{i}]", w, lo=0, lo_open=True)
        check_number("init_gain", self.init_gain, lo=0, lo_open=True)
        if self.read_scale is not None:
            if not isinstance(self.read_scale, (list, tuple)) or len(self.read_scale) != 2:
                raise ConfigError("read_scale", self.read_scale, "needs one value per layer (2)")
            for i, r in enumerate(self.read_scale):
                check_number(f"read_scale[{i}]", r, lo=0, lo_open=True)
        check_choice("backend", self.backend, BACKENDS)
        check_number("n_track", self.n_track, integer=True, lo=0)
        check_number("track_points", self.track_points, integer=True, lo=1)
        if not isinstance(self.save_weights, bool):
            raise ConfigError("save_weights", self.save_weights, "must be true or false")

    def _convert(self) -> None:
        """Typed ``device``, ``cell_params`` and ``card`` from tables and paths (idempotent);
        remembers the keys given so that :meth:`to_dict` writes back what was given."""
        if isinstance(self.device, dict):
            self._device_keys = tuple(self.device)
            self.device = DeviceSpec.from_dict(self.device)
        elif not isinstance(self.device, DeviceSpec):
            raise ConfigError("device", self.device, "must be a table of device parameters")
        check_choice("cell", self.cell, CELLS)
        if isinstance(self.cell_params, dict):
            if self.cell == "fp":   # no parameters (a table given is kept, not used)
                self._fp_params = dict(self.cell_params)
                self.cell_params = FloatingPointCell()
            else:
                self._cell_keys = tuple(self.cell_params)
                self.cell_params = make_cell(self.cell, self.device, **self.cell_params)
        elif type(self.cell_params) is not CELLS[self.cell]:
            raise ConfigError("cell_params", self.cell_params,
                              f"must be a table or a {CELLS[self.cell].__name__} (cell "
                              f"{self.cell!r})")
        if not isinstance(self.circuit, CircuitSpec):
            self.circuit = CircuitSpec.from_dict(self.circuit)
        if not isinstance(self.periphery, PeripherySpec):
            self.periphery = PeripherySpec.from_dict(self.periphery)
        if not self.periphery.ideal and self.backend != "ideal":
            raise ConfigError("periphery", self.periphery.to_dict(),
                              f"DAC/ADC quantisation is modelled on the ideal backend only, "
                              f"not {self.backend!r}")
        if isinstance(self.card, (str, Path, dict)):
            from ..device.card import ModelCard  # device layer, imported only when used

            ref = self.card
            try:
                self.card = (ModelCard.from_dict(ref) if isinstance(ref, dict)
                             else ModelCard.load(ref))
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise ConfigError("card", ref if not isinstance(ref, dict) else "<table>",
                                  f"not a model card ({err})") from None
            self._card_path = str(ref) if not isinstance(ref, dict) else None
        elif self.card is not None and not hasattr(self.card, "n_states"):
            raise ConfigError("card", self.card, "must be a model-card path or a ModelCard")

    @staticmethod
    def _given(obj: Any, keys: tuple, skip: tuple = ()) -> dict:
        """Fields of a dataclass that were given (``keys``) or differ from the defaults."""
        out = {}
        for f in fields(obj):
            if f.name in skip:
                continue
            v = getattr(obj, f.name)
            default = f.default_factory() if callable(f.default_factory) else f.default
            if f.name in keys or v != default:
                out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: dict, where: str | None = None) -> "TrainConfig":
        """A validated config from a dict; ``where`` (file, run) locates errors."""
        if not isinstance(data, dict):
            raise ConfigError("config", data, "must be a table", where)
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                raise ConfigError(str(key), data[key],
                                  f"unknown training-config key; known: {known}", where)
        try:
            return cls(**data)
        except ConfigError as err:
            raise err.located(where) if where else err from None

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """Read a config from ``.toml`` or ``.json`` (validated; errors name the file)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config {path} not found")
        try:
            if path.suffix == ".toml":
                data = tomllib.loads(path.read_text())
            elif path.suffix == ".json":
                data = json.loads(path.read_text())
            else:
                raise UserInputError("config must be .toml or .json")
        except (ValueError, UnicodeDecodeError) as err:   # TOML/JSON syntax errors
            raise UserInputError(f"{path}: {err}") from None
        return cls.from_dict(data, where=str(path))

    def to_dict(self) -> dict:
        """The config as plain data (TOML/JSON and run files): the device and cell
        parameters as the tables given (plus any field changed since), the circuit as its
        full table, the card as its path (or its dict when given as an object)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for k in ("w_max", "read_scale"):
            d[k] = list(d[k]) if d[k] is not None else None
        if isinstance(self.device, DeviceSpec):
            d["device"] = self._given(self.device, getattr(self, "_device_keys", ()))
        if isinstance(self.cell_params, FloatingPointCell):
            d["cell_params"] = dict(getattr(self, "_fp_params", {}))
        elif not isinstance(self.cell_params, dict):
            d["cell_params"] = self._given(self.cell_params, getattr(self, "_cell_keys", ()),
                                           skip=("device",))
        if isinstance(self.circuit, CircuitSpec):
            d["circuit"] = self.circuit.to_dict()
        if isinstance(self.periphery, PeripherySpec):
            d["periphery"] = self.periphery.to_dict()
        if self.card is not None and not isinstance(self.card, (str, Path, dict)):
            path = getattr(self, "_card_path", None)
            d["card"] = path if path is not None else self.card.to_dict()
        return d

    def replace(self, where: str | None = None, **changes: Any) -> "TrainConfig":
        d = self.to_dict()
        d.update(changes)
        return TrainConfig.from_dict(d, where=where)

    def load_card(self) -> Any:
        """The model card of the run (a ModelCard) or None."""
        return self.card

    def device_spec(self, card: Any = None) -> DeviceSpec:
        """The DeviceSpec of this run: from ``card`` (else ``self.card``) with the given
        device fields as overrides, or ``self.device`` without a card."""
        card = card if card is not None else self.card
        if card is not None:
            return DeviceSpec.from_card(card, **self._given(
                self.device, getattr(self, "_device_keys", ())))
        return self.device

    def build_cell(self, card: Any = None):
        """The unit cell of the run: ``cell_params`` with the run's device."""
        if self.cell == "fp":
            return FloatingPointCell()
        return dc_replace(self.cell_params, device=self.device_spec(card))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class Network:
    """784-250-10 (configurable) sigmoid MLP whose layers are crossbars of unit cells.

    Attributes
    ----------
    layers : list of LayerState
        Layer 0 (input-hidden), layer 1 (hidden-output); bias as last input row.
    cell : the unit cell
    backend : TileBackend
    phase : int
        Active array of single-target cells (hybrid: 0 big, 1 small).
    """

    def __init__(self, config: TrainConfig, n_in: int, n_out: int, card: Any = None,
                 backend: TileBackend | str | None = None, layers: list | None = None):
        self.config = config
        #: the device model card of the run (``card``, else ``config.card``; None: DeviceSpec)
        self.card = card if card is not None else config.load_card()
        self.cell = config.build_cell(self.card)
        self.backend = make_backend(backend if backend is not None else config.backend,
                                    circuit=config.circuit)
        if not isinstance(backend, TileBackend):    # an instance given is the read model
            self.backend = make_periphery_backend(self.backend, config.periphery,
                                                  config.circuit)
        sizes = [(n_in, config.n_hidden), (config.n_hidden, n_out)]
        if layers is None:
            rng = np.random.default_rng(config.seed)
            layers = []
            for li, (a, b) in enumerate(sizes):
                bound = config.init_gain / math.sqrt(a)
                W0 = rng.uniform(-bound, bound, size=(a + 1, b))
                if isinstance(self.cell, FloatingPointCell):
                    layers.append(self.cell.build_layer(W0, config.w_max[li], rng))
                else:
                    rs = (config.read_scale[li] if config.read_scale else 1.0 / math.sqrt(a))
                    layers.append(self.cell.build_layer(W0, config.w_max[li], rng,
                                                        read_scale=rs))
        self.layers: list[LayerState] = layers
        self.backend.bind(self)

    @property
    def phase(self) -> int:
        return self.layers[0].active

    @phase.setter
    def phase(self, value: int) -> None:
        if not 0 <= int(value) < self.layers[0].n_arrays:
            raise UserInputError(f"phase {value} outside the cell's arrays 0..{self.layers[0].n_arrays - 1}")
        for st in self.layers:
            st.set_active(value)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batched forward pass through the backend: ``(h, o)``."""
        h = _sigmoid(self.backend.forward(0, self.layers[0].Wr, x))
        o = _sigmoid(self.backend.forward(1, self.layers[1].Wr, h))
        return h, o

    def evaluate(self, data: Dataset, split: str, batch: int = 5000) -> tuple[float, float]:
        """``(accuracy, mse)`` on a split; MSE = mean over samples and outputs of (o - t)²."""
        y = data.y_train if split == "train" else data.y_test
        n = len(y)
        correct = 0
        se = 0.0
        n_out = self.layers[1].Wr.shape[1]
        for s in range(0, n, batch):
            x = data.dense(split, s, s + batch)
            _, o = self.forward(x)
            t = np.eye(n_out, dtype=np.float32)[y[s:s + batch]]
            correct += int((o.argmax(1) == y[s:s + batch]).sum())
            se += float(((o - t) ** 2).sum())
        return correct / n, se / (n * n_out)

    # ------------------------------------------------------------------ training
    def train_samples(self, data: Dataset, order: np.ndarray, start: int, stop: int,
                      rng_state: np.ndarray, counters: np.ndarray) -> None:
        """Train on ``order[start:stop]``: the compiled SGD loop (:func:`.sgd.sgd_samples`)
        with the backend's read state, renewed whenever the backend asks
        (:meth:`.backend.TileBackend.compiled_reads`, e.g. the surrogate's factor refresh)."""
        indptr, indices, values = data.csr("train")
        lr = float(self.config.lr)
        L0, L1 = self.layers
        t = start
        while t < stop:
            reads, n = self.backend.compiled_reads(stop - t)
            n = max(1, min(int(n), stop - t))
            sgd_samples(order, t, t + n, indptr, indices, values, data.y_train, L0, L1, lr,
                        rng_state, counters, reads)
            self.backend.advance(n)
            t += n


@dataclass
class RunResult:
    """What :func:`train` returns."""

    config: TrainConfig
    history: History
    network: Network
    path: Path | None

    def summary(self) -> dict:
        return {"name": self.config.name, "cell": self.config.cell, **self.history.summary()}


def _track_values(net: Network, index: np.ndarray) -> np.ndarray:
    aw = net.layers[1].array_weights()
    return aw[:, index[:, 0], index[:, 1]]


def train(config: TrainConfig, out: str | Path | None = None, *, data: Dataset | None = None,
          card: Any = None, backend: TileBackend | str | None = None, resume: bool = False,
          progress: bool = True, callback: Callable[[int, History], None] | None = None,
          stop_after: int | None = None, download: bool = False,
          force: bool = False) -> RunResult:
    """Train a network as described by ``config``.

    Parameters
    ----------
    config : TrainConfig
    out : path or None
        HDF5 run file, rewritten after every epoch (None: keep in memory only).
    data : Dataset or None
        Pre-loaded data (else loaded from ``config.dataset``).
    card : ModelCard or None
        Device model card (overrides ``config.card``).
    backend : TileBackend, name or None
        Read model (default ``config.backend``).
    resume : bool
        Continue from the checkpoint in ``out`` if it exists (the stored config must match
        apart from ``epochs``).
    progress : bool
        Show a tqdm progress bar over training samples.
    callback : callable or None
        Called as ``callback(epoch, history)`` after each epoch.
    stop_after : int or None
        Stop after this many epochs of this call (used to test resuming).
    download : bool
        Download MNIST into the cache when it is not found (needs internet).
    force : bool
        Replace an existing ``out`` that holds another run (or is no run file); without it
        that is a :class:`~pyspice_rram.errors.UserInputError` naming the file.

    While it runs, ``<out>.lock`` refuses a second writer to the same run file.
    """
    with run_lock(out):     # one writer per run file
        check_overwrite(out, config.to_dict(), force=force, resume=resume)
        return _train(config, out, data=data, card=card, backend=backend, resume=resume,
                      progress=progress, callback=callback, stop_after=stop_after,
                      download=download)


def _recorded_config(config: TrainConfig, backend: TileBackend) -> TrainConfig:
    """The config as the run file records it when a backend *instance* is given: the
    instance's registered name and, for a backend that models the circuit (an attribute
    ``circuit``), its circuit -- so that a run file never says ``ideal`` of a network trained
    through the surrogate. An unregistered backend leaves the config as it is."""
    name = backend_name(backend)
    if name is None:
        return config
    changes: dict[str, Any] = {}
    if name != config.backend:
        changes["backend"] = name
    circuit = getattr(backend, "circuit", None)
    if isinstance(circuit, CircuitSpec) and circuit != config.circuit:
        changes["circuit"] = circuit.to_dict()
    return config.replace(**changes) if changes else config


def _calibrate(net: Network, data: Dataset) -> None:
    """Calibrate the ADC full scales of a quantised read path (``adc_range =
    "calibrated"``) on the first training samples with the present weights."""
    p = net.config.periphery
    if p.ideal or p.adc_range != "calibrated" or not hasattr(net.backend, "calibrate"):
        return
    n = min(p.calibration_samples, len(data.y_train))
    net.backend.calibrate(data.dense("train", 0, n), data.y_train[:n])


def _ledger_row(net: Network, counters: np.ndarray, n_samples: int) -> dict[str, Any]:
    """The cost-ledger fields of one epoch (:mod:`.history`) from the SGD loop's counters:
    samples, reads per layer, update cycles per layer and array; the ADC full scales of a
    quantised read path."""
    n_arr = net.layers[0].n_arrays
    row = {"samples": int(n_samples),
           "reads_forward": counters[LEDGER_FORWARD:LEDGER_FORWARD + 2].astype(np.int64),
           "reads_transposed": counters[LEDGER_TRANSPOSED:LEDGER_TRANSPOSED + 2]
           .astype(np.int64),
           "update_cycles": counters[LEDGER_CYCLES:LEDGER_CYCLES + 2 * n_arr]
           .reshape(2, n_arr).astype(np.int64)}
    fs = getattr(net.backend, "fs", None)
    if not net.config.periphery.ideal and fs is not None:
        row["adc_full_scale"] = np.asarray(fs, np.float64).copy()
    return row


def _train(config: TrainConfig, out: str | Path | None, *, data: Dataset | None,
           card: Any, backend: TileBackend | str | None, resume: bool, progress: bool,
           callback: Callable[[int, History], None] | None, stop_after: int | None,
           download: bool) -> RunResult:
    from tqdm.auto import tqdm

    if isinstance(backend, TileBackend):
        if not config.periphery.ideal and not isinstance(backend, QuantizedBackend):
            raise ConfigError("periphery", config.periphery.to_dict(),
                              f"the backend instance {type(backend).__name__} given does "
                              "not model the converters; give no instance (or a "
                              "QuantizedBackend)")
        config = _recorded_config(config, backend)
    if data is None:
        data = load_dataset(config.dataset, config.mnist_path, download=download)
        if config.n_train or config.n_test:
            data = data.subset(config.n_train, config.n_test)
    n_in, n_out = data.n_features, data.n_classes
    out = Path(out) if out is not None else None

    net = None
    if resume and out is not None and out.exists():
        hist, layers, phase = load_run(out)
        stored = dict(hist.config)
        mine = config.to_dict()
        for d in (stored, mine):
            d.pop("epochs", None)       # continuing = more epochs
            d.pop("mnist_path", None)   # where the data lie is not part of the run
            if isinstance(d.get("card"), str):   # the same card file, relative or absolute
                d["card"] = str(Path(d["card"]).resolve())
            d["circuit"] = circuit_table(d.get("circuit"))   # run files before [circuit]
            d["periphery"] = periphery_table(d.get("periphery"))   # ... before [periphery]
        if stored != mine:
            diff = sorted(k for k in set(stored) | set(mine) if stored.get(k) != mine.get(k))
            shown = ", ".join(f"{k}: stored {stored.get(k)!r}, given {mine.get(k)!r}"
                              for k in diff[:3])
            raise UserInputError(f"{out} holds a run of another config ({shown}); cannot resume "
                             "it (choose another output, or --force to overwrite it)")
        if layers is not None:
            net = Network(config, n_in, n_out, card=card, backend=backend, layers=layers)
            net.phase = phase
    if net is None:
        net = Network(config, n_in, n_out, card=card, backend=backend)
        hist = History(config.to_dict(), data.source)
        _calibrate(net, data)
        rng = np.random.default_rng([config.seed, 10**6])
        n_hid = config.n_hidden
        k = min(config.n_track, (n_hid + 1) * n_out)
        flat = rng.choice(n_hid * n_out, size=k, replace=False)
        hist.track_index = np.stack([flat // n_out, flat % n_out], axis=1).astype(np.int64)
        tr_acc, tr_mse = net.evaluate(data, "train")
        te_acc, te_mse = net.evaluate(data, "test")
        zeros = np.zeros((2, net.layers[0].n_arrays), np.int64)
        hist.append(train_acc=tr_acc, test_acc=te_acc, train_mse=tr_mse, test_mse=te_mse,
                    online_acc=float("nan"), phase=net.phase, updates=zeros, pulses=zeros,
                    refreshes=zeros, wall_s=0.0,
                    **_ledger_row(net, np.zeros(ledger_size(net.layers[0].n_arrays)), 0))
        hist.track_samples.append(0)
        hist.track_weights.append(_track_values(net, hist.track_index))
    hist.config = config.to_dict()

    n_train = len(data.y_train)
    start_epoch = hist.completed_epochs
    n_points = max(1, config.track_points)
    bounds = np.linspace(0, n_train, n_points + 1).astype(np.int64)
    done_epochs = 0
    bar = tqdm(total=(config.epochs - start_epoch) * n_train, disable=not progress,
               unit="sample", unit_scale=True, desc=config.name, leave=False)
    try:
        # per-sample training: BLAS calls (backend reads in the Python / surrogate loops) are
        # tiny, one BLAS thread is fastest and leaves the other cores alone
        with threadpool_limits(limits=1, user_api="blas"):
            for epoch in range(start_epoch + 1, config.epochs + 1):
                if stop_after is not None and done_epochs >= stop_after:
                    break
                order = np.random.default_rng([config.seed, epoch]).permutation(n_train)
                rng_state = seed_state(config.seed, epoch)
                for st in net.layers:
                    st.stats[...] = 0
                _calibrate(net, data)
                counters = np.zeros(ledger_size(net.layers[0].n_arrays))
                t0 = time.perf_counter()
                for c in range(n_points):
                    net.train_samples(data, order, int(bounds[c]), int(bounds[c + 1]),
                                      rng_state, counters)
                    bar.update(int(bounds[c + 1] - bounds[c]))
                    hist.track_samples.append((epoch - 1) * n_train + int(bounds[c + 1]))
                    hist.track_weights.append(_track_values(net, hist.track_index))
                wall = time.perf_counter() - t0
                tr_acc, tr_mse = net.evaluate(data, "train")
                te_acc, te_mse = net.evaluate(data, "test")
                phase_used = net.phase
                stats = np.stack([st.stats for st in net.layers])
                hist.append(train_acc=tr_acc, test_acc=te_acc, train_mse=tr_mse,
                            test_mse=te_mse, online_acc=counters[0] / n_train,
                            phase=phase_used, updates=stats[:, :, STAT_UPDATES],
                            pulses=stats[:, :, STAT_PULSES],
                            refreshes=stats[:, :, STAT_REFRESH], wall_s=wall,
                            **_ledger_row(net, counters, n_train))
                if isinstance(net.cell, HybridCell):
                    net.phase = net.cell.next_phase(net.phase, hist.epochs["train_acc"])
                bar.set_postfix(train=f"{tr_acc:.4f}", test=f"{te_acc:.4f}",
                                phase=net.phase)
                if out is not None:
                    final = ([st.Wr.copy() for st in net.layers] if config.save_weights
                             else None)
                    save_run(out, hist, net.layers, final, phase=net.phase)
                if callback is not None:
                    callback(epoch, hist)
                done_epochs += 1
    finally:
        bar.close()
    if out is not None and hist.completed_epochs == 0:
        save_run(out, hist, net.layers, None, phase=net.phase)
    return RunResult(config, hist, net, out)
