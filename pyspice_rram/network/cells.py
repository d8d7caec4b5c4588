"""Synapse unit cells: how a weight is held by devices and how an update becomes pulses.

A layer of ``n_in`` inputs (plus a bias row driven at 1) and ``n_out`` outputs is one
crossbar of synapses ``W[j, i]``. Each cell class below documents its parameters and builds
the arrays of a :class:`LayerState`; the per-pulse physics and the outer-product update run
in the numba kernels of :mod:`.update` and :mod:`.pulses` (shared with the training loop).

Device model (:class:`DeviceSpec`), per device of a pair, in units of the nominal
conductance range ``ΔG = G_max - G_min``::

    G = A (G0 + s * GR),   s in [0, 1] the state,
    G0 = G_min/ΔG * (1 + d2d z0),  GR = max(0.05, 1 + d2d_range z1),
    A = exp(d2d_area z2),   z ~ N(0, 1) per device
    s(n) = (1 - exp(-beta n / N)) / (1 - exp(-beta))   (n pulses from G_min, N states)

with a Gaussian δ/μ (``c2c``) on the change of every pulse, saturation at ``s = 0, 1``.
``G_min/ΔG = 1 / (g_ratio - 1)`` with ``g_ratio = G_max / G_min``: the device-to-device
offset of a pair, ``G0+ - G0-``, shrinks as the on/off ratio grows (seed 001, Fig. 6C).

Weight of a synapse built from ``A`` arrays of pairs with gains ``gain[a]`` (weight per
nominal range, ``w_max`` for a big pair, ``w_max / k`` for a small pair)::

    W = sum_a gain[a] * (G+_a - G-_a)

An update ``ΔW = -η x_j δ_i`` is applied to ONE array (the "target array"): as ``n`` pulses
of ``step = gain[a] / N_a`` (deterministic rounding, stochastic rounding or stochastic pulse
coincidence, see :func:`.update.update_layer`); ``n > 0`` potentiates ``G+``, ``n < 0``
potentiates ``G-`` (unidirectional devices, the paper's "linear potentiation with a strong
reset"); when a device saturates, the pair is refreshed: both devices are reset to ``G_min``
and the difference is re-programmed into one device. Bidirectional devices instead depress
the partner device when the target device is saturated.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from .. import errors
from .layer import (DEV, KIND_FP, KIND_PAIR, ROUND_COINC, ROUND_DET, ROUND_STOCH, LayerState,
                    make_cfg, uniform_flag)
from ..errors import UserInputError

ROUNDING = {"deterministic": ROUND_DET, "stochastic": ROUND_STOCH, "coincidence": ROUND_COINC}


class ConfigError(errors.ConfigError):
    """A bad parameter of a training config, device or cell: ``key = value: reason``.

    ``key`` is the dotted path of the parameter (``device.c2c``); :meth:`located` prefixes
    the file (or run) it came from. A ``ValueError``, so the CLI prints it as one line.
    """

    def __init__(self, key: str, value: Any, reason: str, where: str | None = None):
        self.key, self.value, self.reason, self.where = key, value, reason, where
        head = f"{where}: " if where else ""
        super().__init__(f"{head}{key} = {value!r}: {reason}")

    def located(self, where: str, prefix: str = "") -> "ConfigError":
        """The same error, located in ``where`` and with ``prefix`` before the key."""
        return ConfigError(prefix + self.key, self.value, self.reason, where)


def check_number(key: str, value: Any, *, integer: bool = False, lo: float | None = None,
                 lo_open: bool = False, hi: float | None = None,
                 allow_none: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a finite number in range."""
    if value is None and allow_none:
        return
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(key, value, f"must be {kind}")
    if integer and not float(value).is_integer():
        raise ConfigError(key, value, "must be an integer")
    if not math.isfinite(float(value)):
        raise ConfigError(key, value, "must be finite (not NaN or infinite)")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise ConfigError(key, value, f"must be {'>' if lo_open else '>='} {lo:g}")
    if hi is not None and value > hi:
        raise ConfigError(key, value, f"must be <= {hi:g}")


def check_table(cls: type, data: Any, prefix: str, what: str) -> dict:
    """``data`` if it is a table whose keys are all fields of the dataclass ``cls``; else a
    :class:`ConfigError` naming ``prefix`` (+ the unknown key) and the value."""
    if not isinstance(data, dict):
        raise ConfigError(prefix.rstrip("."), data, f"must be a table of {what}s")
    known = [f.name for f in fields(cls)]
    for key in data:
        if key not in known:
            raise ConfigError(prefix + str(key), data[key], f"unknown {what}; known: {known}")
    return data


def check_choice(key: str, value: Any, choices) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(key, value, f"choose from {sorted(choices)}")


def check_finite_tree(key: str, value: Any) -> None:
    """Raise :class:`ConfigError` at the first NaN or infinity anywhere in ``value``."""
    if isinstance(value, dict):
        for k, v in value.items():
            check_finite_tree(f"{key}.{k}" if key else str(k), v)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_finite_tree(f"{key}[{i}]", v)
    elif isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
        raise ConfigError(key, value, "must be finite (not NaN or infinite)")


@dataclass
class DeviceSpec:
    """Behavioural parameters of one RRAM device as seen by the network.

    Parameters
    ----------
    n_states : float
        Number of identical pulses ``N`` that take the device from G_min to G_max (the
        number of conductance states; 50 for the paper's Mo/TiOx cell).
    beta_p, beta_d : float
        Pulse-response nonlinearity of potentiation / depression (0 = linear),
        ``s(n) = (1 - exp(-beta n/N)) / (1 - exp(-beta))``.
    c2c : float
        Cycle-to-cycle variability δ/μ: Gaussian relative spread of the conductance change of
        every pulse (0.34 measured in seed 001).
    d2d : float
        Device-to-device spread of G_min: relative Gaussian spread δ/G_min of each device's
        G_min (seed 001, Fig. 6C: "mean G values vary between devices").
    g_ratio : float
        On/off ratio G_max / G_min (sets the pair offset caused by ``d2d``).
    d2d_range : float
        Relative Gaussian spread of each device's conductance range G_max - G_min
        (floored at 5 % of nominal).
    d2d_area : float
        Log-normal spread of the effective switching area, ``A = exp(N(0, d2d_area))``,
        which scales G_min and the range of a device together (the device layer's
        ``d2d_g_sigma`` of an area-scaled Mo/TiOx cell).
    unidirectional : bool
        Only potentiation pulses are used (depression by occasional reset of the pair).
    refresh : bool
        Reset and re-program a pair when one of its devices saturates (unidirectional only).
    """

    n_states: float = 50.0
    beta_p: float = 0.0
    beta_d: float = 0.0
    c2c: float = 0.0
    d2d: float = 0.0
    g_ratio: float = 10.0
    d2d_range: float = 0.0
    d2d_area: float = 0.0
    unidirectional: bool = True
    refresh: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, prefix: str = "device.") -> None:
        """Raise :class:`ConfigError` (naming ``prefix + field`` and the value) on a bad
        field: NaN / infinity anywhere, ``n_states < 1``, negative spreads, ``g_ratio <= 1``.

        ``n_states = 1`` (binary devices) is allowed here; cells other than ``multi`` need
        ``>= 2`` (:meth:`PairCell.validate`).
        """
        check_number(prefix + "n_states", self.n_states, lo=1)
        for key in ("beta_p", "beta_d"):
            check_number(prefix + key, getattr(self, key))
        for key in ("c2c", "d2d", "d2d_range", "d2d_area"):
            check_number(prefix + key, getattr(self, key), lo=0)
        check_number(prefix + "g_ratio", self.g_ratio, lo=1, lo_open=True)
        for key in ("unidirectional", "refresh"):
            if not isinstance(getattr(self, key), (bool, np.bool_)):
                raise ConfigError(prefix + key, getattr(self, key), "must be true or false")

    @classmethod
    def from_dict(cls, data: dict, prefix: str = "device.") -> "DeviceSpec":
        """A DeviceSpec from a dict; an unknown key is a :class:`ConfigError`."""
        return cls(**check_table(cls, data, prefix, "device parameter"))

    @classmethod
    def from_card(cls, card: Any, **overrides: Any) -> "DeviceSpec":
        """Device parameters from a :class:`pyspice_rram.device.card.ModelCard`.

        Reads ``n_states()`` (nominal potentiation pulse), ``beta_p``, ``beta_d``,
        ``c2c_sigma``, ``d2d_g_sigma`` (as ``d2d_area``: the card's device-to-device spread
        scales G_min and G_max together) and ``g_max()/g_min()``; keyword ``overrides``
        win.
        """
        if hasattr(card, "require_default_family"):
            card.require_default_family("the network's device model (DeviceSpec.from_card)")
        vals = dict(n_states=float(card.n_states()), beta_p=float(card.beta_p),
                    beta_d=float(card.beta_d), c2c=card.statistic("c2c_sigma"),
                    d2d_area=card.statistic("d2d_g_sigma"),
                    g_ratio=float(card.g_max()) / float(card.g_min()))
        if not math.isfinite(vals["n_states"]):
            raise UserInputError("model card gives an infinite number of states at its pulse")
        vals["n_states"] = max(1.0, round(vals["n_states"]))
        vals.update(overrides)
        return cls(**vals)

    def replace(self, **changes: Any) -> "DeviceSpec":
        d = asdict(self)
        d.update(changes)
        return DeviceSpec(**d)


def _program(target: np.ndarray, n_states: float, beta: float) -> np.ndarray:
    """Device state after the whole number of pulses from G_min closest to ``target``."""
    target = np.clip(target, 0.0, 1.0)
    if abs(beta) < 1e-9:
        n = np.rint(target * n_states)
        return (n / n_states).astype(np.float32)
    c = 1.0 - math.exp(-beta)
    n = np.rint(-n_states / beta * np.log(np.maximum(1.0 - target * c, 1e-12)))
    return ((1.0 - np.exp(-beta * n / n_states)) / c).astype(np.float32)


# --------------------------------------------------------------------------- cells
@dataclass
class FloatingPointCell:
    """Software synapse: a float32 weight updated by ``ΔW = -η x δ`` exactly.

    ``w_max`` of the layer is ignored (no clipping).
    """

    kind: ClassVar[str] = "fp"

    def build_layer(self, W0: np.ndarray, w_max: float, rng: np.random.Generator) -> LayerState:
        n_in, n_out = W0.shape
        W = W0.astype(np.float32)
        z4 = np.zeros((1, 2, 1, 1), np.float32)
        return LayerState(W.copy(), W.copy(), z4, z4.copy(), z4.copy(), np.ones(1),
                          make_cfg(KIND_FP, read_scale=0.0), np.zeros(1, DEV),
                          np.zeros((1, 3), np.int64))

    def array_names(self) -> list[str]:
        return ["W"]


@dataclass
class PairCell:
    """Single differential pair ``W = w_max (G+ - G-)`` with ``N`` states per device.

    Parameters
    ----------
    device : DeviceSpec
        Device of both members of the pair.
    rounding : str
        ``"deterministic"`` (round ΔW/step to the nearest whole pulse count),
        ``"stochastic"`` (unbiased stochastic rounding) or ``"coincidence"`` (parallel
        stochastic pulse trains of length ``bl`` on rows and columns, pulses = overlaps).
    bl : int
        Pulse-train length for ``"coincidence"`` (<= 64).
    init : str
        Initial conductances: ``"low"`` both devices at G_min and the initial weight
        programmed into one device; ``"mid"`` both devices at mid-range, the weight split
        symmetrically around it.
    max_pulses : int
        Cap on pulses of one update event.
    dead_zone : float
        Stochastic rounding only: an update of fewer than ``dead_zone`` pulses
        (``|ΔW| / step < dead_zone``) is dropped, larger ones are rounded stochastically
        (the smallest update the pulse generator resolves; 0 = plain stochastic rounding).
    """

    device: DeviceSpec = field(default_factory=DeviceSpec)
    rounding: str = "deterministic"
    bl: int = 10
    init: str = "low"
    max_pulses: int = 1000
    dead_zone: float = 0.0

    kind: ClassVar[str] = "single"

    #: smallest number of device states the cell trains with (binary devices: ``multi``)
    min_states: ClassVar[int] = 2

    def __post_init__(self) -> None:
        if isinstance(self.device, dict):
            self.device = DeviceSpec.from_dict(self.device)
        self.validate()

    def validate(self, prefix: str = "cell_params.") -> None:
        """Raise :class:`ConfigError` naming ``prefix + parameter`` and the value."""
        check_choice(prefix + "rounding", self.rounding, ROUNDING)
        check_number(prefix + "bl", self.bl, integer=True, lo=1, hi=64)
        check_choice(prefix + "init", self.init, ("low", "mid"))
        check_number(prefix + "max_pulses", self.max_pulses, integer=True, lo=1)
        check_number(prefix + "dead_zone", self.dead_zone, lo=0)
        self.device.validate()
        if self.device.n_states < self.min_states:
            raise ConfigError("device.n_states", self.device.n_states,
                              f"cell {self.kind!r} needs >= {self.min_states} states per "
                              "device (binary devices, n_states = 1: cell 'multi')")

    # the arrays of the cell: (gain relative to w_max, DeviceSpec) per array
    def arrays(self) -> list[tuple[float, DeviceSpec]]:
        return [(1.0, self.device)]

    def array_names(self) -> list[str]:
        return ["G"]

    def _select(self) -> int:
        return 0

    def _sign_read(self) -> bool:
        return False

    def _rounding(self, a: int) -> int:
        """Update-to-pulse conversion of array ``a`` (a ``ROUND_*`` code)."""
        return ROUNDING[self.rounding]

    def build_layer(self, W0: np.ndarray, w_max: float, rng: np.random.Generator,
                    read_scale: float = 1.0) -> LayerState:
        """Arrays of a layer whose initial weight ``W0`` (in, out) is programmed in pulses.

        ``W0`` is divided over the arrays in proportion to their gains' share of the range
        (all of it in array 0 for single/hybrid cells, equally for multi-device cells).
        """
        arrays = self.arrays()
        n_arr = len(arrays)
        n_in, n_out = W0.shape
        shape = (n_arr, 2, n_in, n_out)
        S = np.zeros(shape, np.float32)
        G0 = np.empty(shape, np.float32)
        GR = np.empty(shape, np.float32)
        gain = np.array([w_max * g for g, _ in arrays], dtype=np.float64)
        dev_p = np.zeros(n_arr, DEV)
        share = self._init_share(n_arr)
        for a, (_, dev) in enumerate(arrays):
            gmin = 1.0 / (dev.g_ratio - 1.0)
            G0[a] = gmin
            GR[a] = 1.0
            dshape = (2, n_in, n_out)
            if dev.d2d > 0:
                G0[a] = np.maximum(0.0, gmin * (1.0 + dev.d2d * rng.standard_normal(dshape)))
            if dev.d2d_range > 0:
                GR[a] = np.maximum(0.05, 1.0 + dev.d2d_range * rng.standard_normal(dshape))
            if dev.d2d_area > 0:
                area = np.exp(dev.d2d_area * rng.standard_normal(dshape))
                G0[a] *= area
                GR[a] *= area
            dev_p[a] = (dev.n_states, dev.beta_p, dev.beta_d, dev.c2c, self.dead_zone,
                        self._rounding(a))
            target = W0 * share[a] / gain[a]       # desired G+ - G- in nominal ranges
            if self.init == "low":
                S[a, 0] = _program(np.maximum(target, 0) / GR[a, 0], dev.n_states, dev.beta_p)
                S[a, 1] = _program(np.maximum(-target, 0) / GR[a, 1], dev.n_states, dev.beta_p)
            else:
                S[a, 0] = _program(0.5 + 0.5 * target / GR[a, 0], dev.n_states, dev.beta_p)
                S[a, 1] = _program(0.5 - 0.5 * target / GR[a, 1], dev.n_states, dev.beta_p)
        dev0 = arrays[0][1]
        cfg = make_cfg(KIND_PAIR, n_arr, self._select(), self.bl, dev0.unidirectional,
                       dev0.refresh, self._sign_read(), self.max_pulses, read_scale,
                       uniform_flag(G0, GR))
        st = LayerState(np.zeros((n_in, n_out), np.float32), np.zeros((n_in, n_out), np.float32),
                        S, G0, GR, gain, cfg, dev_p, np.zeros((n_arr, 3), np.int64))
        st.recompute()
        return st

    def _init_share(self, n_arr: int) -> list[float]:
        return [1.0] + [0.0] * (n_arr - 1)


@dataclass
class HybridCell(PairCell):
    """Hybrid synapse of seed 001: ``W = w_max [(G+ - G-) + (g+ - g-) / k]``.

    Two arrays of pairs: the big pair (array 0) and the small pair (array 1), whose devices
    are ``k`` times smaller in area, so conductance range and step are ``k`` times smaller
    with the same number of states (or ``small_states`` if given). Training starts in the
    dynamic-tuning phase (updates go to the big array only); after the first epoch whose
    training accuracy gains less than ``switch_threshold`` (absolute fraction, 0.005 =
    0.5 %) over the previous epoch, the update target switches to the small array for the
    rest of training (fine-tuning phase). Reads always use both arrays.

    Parameters
    ----------
    k : float
        Gain ratio G/g (area ratio of big to small device).
    small_states : float or None
        Number of states of the small devices (default: ``device.n_states``).
    small_rounding : str or None
        Update-to-pulse conversion of the small array (default: ``rounding``), e.g.
        deterministic on the big pair and stochastic on the small one (an ablation of
        docs/results.md; the paper uses one scheme for both).
    switch_threshold : float
        Epoch-to-epoch training-accuracy gain below which the phase switches.
    """

    k: float = 10.0
    small_states: float | None = None
    switch_threshold: float = 0.005
    small_rounding: str | None = None

    kind: ClassVar[str] = "hybrid"

    def validate(self, prefix: str = "cell_params.") -> None:
        super().validate(prefix)
        check_number(prefix + "k", self.k, lo=0, lo_open=True)
        check_number(prefix + "small_states", self.small_states, lo=self.min_states,
                     allow_none=True)
        check_number(prefix + "switch_threshold", self.switch_threshold)
        if self.small_rounding is not None:
            check_choice(prefix + "small_rounding", self.small_rounding, ROUNDING)

    def _rounding(self, a: int) -> int:
        if a == 1 and self.small_rounding is not None:
            return ROUNDING[self.small_rounding]
        return ROUNDING[self.rounding]

    def arrays(self) -> list[tuple[float, DeviceSpec]]:
        small = self.device if self.small_states is None else \
            self.device.replace(n_states=float(self.small_states))
        return [(1.0, self.device), (1.0 / self.k, small)]

    def array_names(self) -> list[str]:
        return ["G", "g"]

    def next_phase(self, phase: int, train_acc: list[float]) -> int:
        """Phase (0 dynamic / 1 fine tuning) after an epoch, from the accuracy history.

        ``train_acc`` holds the training accuracy before training (index 0) and after each
        epoch so far; switching happens once, when ``acc[-1] - acc[-2] < switch_threshold``.
        """
        if phase == 0 and len(train_acc) >= 2 and \
                train_acc[-1] - train_acc[-2] < self.switch_threshold:
            return 1
        return phase


@dataclass
class MultiDeviceCell(PairCell):
    """Multi-device synapse with counter-based arbitration (seed 002, Boybat et al. 2018).

    ``n_devices`` pairs per synapse, ``W = (w_max / n_devices) sum_n (G+_n - G-_n)``; the
    total range stays ``±w_max`` and the weight resolution is ``n_devices`` times finer. A
    global counter, incremented after every training sample, selects the one device index
    ``n = counter mod n_devices`` that receives the update of that sample in every synapse
    of the layer (no per-synapse carry logic). Works down to binary devices
    (``n_states = 1``), best with stochastic rounding or pulse coincidence.
    """

    n_devices: int = 4

    kind: ClassVar[str] = "multi"
    min_states: ClassVar[int] = 1

    def validate(self, prefix: str = "cell_params.") -> None:
        super().validate(prefix)
        check_number(prefix + "n_devices", self.n_devices, integer=True, lo=1)

    def arrays(self) -> list[tuple[float, DeviceSpec]]:
        return [(1.0 / self.n_devices, self.device)] * self.n_devices

    def array_names(self) -> list[str]:
        return [f"G{n}" for n in range(self.n_devices)]

    def _select(self) -> int:
        return 1

    def _init_share(self, n_arr: int) -> list[float]:
        return [1.0 / n_arr] * n_arr


@dataclass
class BinaryPairCell(PairCell):
    """2T2R binary synapse (seed 003, Zhou et al. 2018): sign(W) read, analog update.

    The pair holds an analog weight ``Wa = w_max (G+ - G-)`` updated by pulses like
    :class:`PairCell`; the forward and transposed reads see only its sign,
    ``Wr = read_scale * sign(Wa)`` (the two transistors select G+ or G- by comparison).
    When a device saturates the pair is refreshed (reset both, re-program the difference).
    ``read_scale`` per layer defaults to ``1 / sqrt(fan_in)`` (set by the network).
    """

    kind: ClassVar[str] = "2t2r"

    def _sign_read(self) -> bool:
        return True

    def build_layer(self, W0, w_max, rng, read_scale=1.0):
        # at least one pulse of the sign of W0: a pair at G+ = G- reads +1, and a layer
        # initialised mostly at exact zero reads all +s (saturated sigmoids, no gradient)
        one = w_max / self.device.n_states
        W0 = np.where(W0 >= 0, 1.0, -1.0) * np.maximum(np.abs(W0), one)
        return super().build_layer(W0, w_max, rng, read_scale)


CELLS = {"fp": FloatingPointCell, "single": PairCell, "hybrid": HybridCell,
         "multi": MultiDeviceCell, "2t2r": BinaryPairCell}


def make_cell(kind: str, device: DeviceSpec | dict | None = None, **params: Any):
    """Build a cell by name (``fp``, ``single``, ``hybrid``, ``multi``, ``2t2r``)."""
    check_choice("cell", kind, CELLS)
    cls = CELLS[kind]
    if cls is FloatingPointCell:
        return cls()
    if isinstance(device, dict):
        device = DeviceSpec.from_dict(device)
    allowed = sorted(f.name for f in fields(cls) if f.name != "device")
    for key in params:
        if key not in allowed:
            raise ConfigError(f"cell_params.{key}", params[key],
                              f"unknown parameter of cell {kind!r}; known: {allowed}")
    return cls(device=device or DeviceSpec(), **params)
