"""A layer's weight matrix on crossbar tiles: differential and hybrid synapses, periphery, ADC.

Weights ``W`` (shape ``(n_in, n_out)``, forward ``y = a @ W``) are normalised by ``w_max``,
``u = clip(W / w_max, -1, 1)``, and held by arrays of cells whose states (model cells) or
conductances (linear cells) encode ``u``:

* ``synapse='pair'`` -- one differential pair, ``u = x+ - x-`` with
  ``x+ = max(u, 0)``, ``x- = max(-u, 0)`` (optionally quantised to ``n_states`` levels);
* ``synapse='hybrid'`` -- Choi et al. (2021): ``W = (G+ - G-) + (g+ - g-)``, ``g = G / k``.
  The big pair holds ``u`` quantised to ``n_states`` levels; the small pair, whose devices
  have area ``A / k`` (so ``k`` times smaller conductance for the same state), holds
  ``k (u - u_big)`` clipped to [-1, 1]. The weight is ``u = (x+ - x-) + (x_s+ - x_s-) / k``.

A cell at state ``x`` has low-field conductance ``G(x) = A (g_min + (g_max - g_min) x)``
(model cells, areal densities of the card) or ``g_min + (g_max - g_min) x`` (linear cells with
``g_range = (g_min, g_max)`` in S, divided by ``k`` for small arrays). Every array is cut into
tiles of ``tile_size`` (32...256 typical; edge tiles are smaller). Inputs are read voltages
``v = a V_read`` (amplitude encoding, :func:`encode_inputs`).

Periphery: at each tile position the sensed currents of the arrays (G+, G-, and g+, g- for
hybrid synapses) are added with their signs in the analog domain (differential current),
digitised by an optional ``adc_bits`` mid-tread ADC of full scale ``adc_range`` (default: the
largest differential current of a big pair there), and the tile positions' partial sums are
added digitally:

.. math::  I_j = \\sum_{tile\\ positions} Q\\Big(\\sum_{arrays} s_a I_{a, tile, j}\\Big).

The ideal (target) output is ``I = (v @ W) g_unit`` with ``g_unit = (G(1) - G(0)) / w_max``
(chord conductance at ``V_read`` for model cells); :meth:`MappedLayer.to_weight_units`
turns currents back into ``a @ W`` units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..device.card import ModelCard
from ..device.model import read_conductance
from .parallel import solve_tiles
from .tile import Tile, check_direction
from ..errors import ConfigError

SYNAPSES = ("pair", "hybrid")


@dataclass(frozen=True)
class ArraySpec:
    """One physical array of a synapse: name, sign in the weight and conductance gain."""

    name: str
    sign: int
    gain: float  # 1 for big arrays, 1/k for the small arrays of a hybrid synapse


@dataclass
class TileSlot:
    """A tile of one array covering weight rows ``rows`` and columns ``cols``."""

    array: str
    rows: slice
    cols: slice
    tile: Tile


def adc_quantise(current: np.ndarray, bits: int, full_scale: float | np.ndarray) -> np.ndarray:
    """Mid-tread uniform ADC: ``Q(I) = step round(clip(I, -FS, FS) / step)``.

    ``step = FS / (2^(bits-1) - 1)`` (A), i.e. ``2^bits - 1`` levels symmetric about 0.
    """
    if int(bits) != bits or bits < 2:
        raise ConfigError(f"adc_bits must be an integer >= 2, got {bits}")
    fs = np.asarray(full_scale, dtype=float)
    if np.any(fs <= 0):
        raise ConfigError("ADC full scale must be > 0 A")
    step = fs / (2 ** (int(bits) - 1) - 1)
    return step * np.round(np.clip(current, -fs, fs) / step)


def disturb_free_voltage(card: ModelCard, t_read: float = 1e-6, max_dx: float = 1e-6) -> float:
    """Largest read amplitude (V) that moves the state by at most ``max_dx`` in ``t_read`` (s).

    From ``r(V) t_read <= max_dx`` with the card's rates:
    ``V = V_p + V_0p ln(max_dx / t_read + exp(-V_p / V_0p))`` and likewise for depression;
    the smaller of the two.
    """
    rate = max_dx / t_read
    vp = card.v_p + card.v0_p * math.log(rate + math.exp(-card.v_p / card.v0_p))
    vd = card.v_d + card.v0_d * math.log(rate + math.exp(-card.v_d / card.v0_d))
    return float(min(vp, vd))


def encode_inputs(a: Any, v_read: float, card: ModelCard | None = None,
                  t_read: float = 1e-6) -> np.ndarray:
    """Read voltages ``v = a V_read`` for activations ``a`` in [-1, 1] (amplitude encoding).

    With a card, ``V_read`` must not exceed :func:`disturb_free_voltage` (``t_read`` in s).
    """
    a = np.asarray(a, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1):
        raise ConfigError("activations must be finite and in [-1, 1] for amplitude encoding")
    if not v_read > 0:
        raise ConfigError(f"v_read must be > 0 V, got {v_read}")
    if card is not None and v_read > disturb_free_voltage(card, t_read):
        raise ConfigError(f"v_read = {v_read} V exceeds the disturb-free read range "
                         f"{disturb_free_voltage(card, t_read):.3f} V of card '{card.name}'")
    return a * v_read


def _quantise_levels(u: np.ndarray, n_states: int | None) -> np.ndarray:
    if n_states is None:
        return u
    return np.round(u * (n_states - 1)) / (n_states - 1)


@dataclass
class MappedLayer:
    """A weight matrix mapped onto the tiles of its synapse arrays (see module docstring)."""

    weights: np.ndarray
    w_max: float
    synapse: str
    k: float
    arrays: list[ArraySpec]
    states: dict[str, np.ndarray]
    tiles: list[TileSlot]
    tile_shape: tuple[int, int]
    card: ModelCard | None
    g_range: tuple[float, float] | None
    area: float | None
    v_read: float
    adc_bits: int | None = None
    adc_range: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_in(self) -> int:
        """Number of inputs (weight rows)."""
        return int(self.weights.shape[0])

    @property
    def n_out(self) -> int:
        """Number of outputs (weight columns)."""
        return int(self.weights.shape[1])

    # ------------------------------------------------------------------ units
    def g_unit(self) -> float:
        """Conductance (S) per unit weight of the big arrays at ``v_read`` (chord)."""
        if self.card is None:
            lo, hi = self.g_range
        else:
            lo = float(read_conductance(0.0, self.area, self.card, self.v_read))
            hi = float(read_conductance(1.0, self.area, self.card, self.v_read))
        return (hi - lo) / self.w_max

    def effective_weights(self) -> np.ndarray:
        """The weights the programmed states represent: ``w_max sum_a s_a gain_a x_a``."""
        u = sum(a.sign * a.gain * self.states[a.name] for a in self.arrays)
        return self.w_max * u

    def ideal_vmm(self, v_in: Any, direction: str = "forward") -> np.ndarray:
        """Target output currents (A): ``(v @ W) g_unit`` (forward) or ``(v @ W.T) g_unit``."""
        v = self._check_v(v_in, direction)
        W = self.weights if direction == "forward" else self.weights.T
        return (v @ W) * self.g_unit()

    def to_weight_units(self, currents: np.ndarray) -> np.ndarray:
        """Currents (A) -> ``a @ W`` units for inputs ``v = a V_read``."""
        return np.asarray(currents) / (self.v_read * self.g_unit())

    # ------------------------------------------------------------------ reading
    def _check_v(self, v_in: Any, direction: str) -> np.ndarray:
        check_direction(direction)
        n = self.n_in if direction == "forward" else self.n_out
        v = np.array(v_in, dtype=float)
        if v.ndim == 1:
            v = v[None]
        if v.ndim != 2 or v.shape[1] != n:
            raise ConfigError(f"v_in must have shape (n_vectors, {n}) for a {direction} read of "
                             f"a {self.n_in}x{self.n_out} layer, got {np.shape(v_in)}")
        return v

    def tasks(self, v_in: Any, direction: str = "forward") -> list[tuple[Tile, np.ndarray, str]]:
        """One ``(tile, v_tile, direction)`` task per tile of every array."""
        v = self._check_v(v_in, direction)
        return [(s.tile, v[:, s.rows] if direction == "forward" else v[:, s.cols], direction)
                for s in self.tiles]

    def full_scale(self, slot: TileSlot, direction: str) -> float:
        """ADC full scale (A) at a tile position: ``adc_range`` or the largest differential
        current of a big pair there, ``n_driven (I(1) - I(0))`` at ``V_read``."""
        if self.adc_range is not None:
            return float(self.adc_range)
        t = slot.tile
        n = t.n_inputs(direction)
        return float(n * self.g_unit() * self.w_max * self.v_read)

    def combine(self, partials: Sequence[np.ndarray], direction: str = "forward") -> np.ndarray:
        """Periphery: the arrays' outputs at one tile position are added with their signs in
        the analog domain (differential current), digitised by the optional ADC, and the
        tile positions' partial sums are added digitally."""
        signs = {a.name: a.sign for a in self.arrays}
        n_vec = partials[0].shape[0]
        out = np.zeros((n_vec, self.n_out if direction == "forward" else self.n_in))
        analog: dict[tuple, list] = {}
        for slot, p in zip(self.tiles, partials):
            key = (slot.rows.start, slot.rows.stop, slot.cols.start, slot.cols.stop)
            if key not in analog:
                analog[key] = [slot, np.zeros_like(p)]
            analog[key][1] = analog[key][1] + signs[slot.array] * p
        for slot, p in analog.values():
            if self.adc_bits is not None:
                p = adc_quantise(p, self.adc_bits, self.full_scale(slot, direction))
            target = slot.cols if direction == "forward" else slot.rows
            out[:, target] += p
        return out

    def read(self, v_in: Any, direction: str = "forward", *, solver: str = "ngspice",
             backend: str = "batch", workers: int | None = 1, scheduler: str | None = None,
             progress: bool = False, infos: list | None = None,
             return_partials: bool = False):
        """Output currents (A) of the layer for read voltages ``v_in``.

        ``solver`` is ``'ngspice'``, ``'mna'`` or ``'ideal'`` (tiles without parasitics);
        the other arguments go to :func:`pyspice_rram.circuit.parallel.solve_tiles`.
        Returns ``(n_vectors, n_out)`` forward, ``(n_vectors, n_in)`` transposed (and the
        per-tile partial currents when ``return_partials``).
        """
        partials = solve_tiles(self.tasks(v_in, direction), solver=solver, backend=backend,
                               workers=workers, scheduler=scheduler, progress=progress,
                               infos=infos, desc=f"{solver} tiles")
        out = self.combine(partials, direction)
        return (out, partials) if return_partials else out


def map_layer(weights: Any, *, card: ModelCard | None = None,
              g_range: tuple[float, float] | None = None, synapse: str = "pair",
              k: float = 10.0, n_states: int | None = None, w_max: float | None = None,
              tile_size: int | tuple[int, int] = 64, area: float | None = None,
              r_wire_row: float = 1.0, r_wire_col: float = 1.0, r_driver: float = 0.0,
              r_sense: float = 0.0, v_read: float | None = None, adc_bits: int | None = None,
              adc_range: float | None = None) -> MappedLayer:
    """Map ``weights`` (n_in, n_out) onto differential (or hybrid) arrays of tiles.

    Parameters
    ----------
    weights : array_like, shape (n_in, n_out)
        Finite weights; forward read ``y = a @ W``.
    card : ModelCard, optional
        Model cells of this card (states ``x``); otherwise linear cells with ``g_range``.
    g_range : (g_min, g_max), optional
        Conductance range (S) of linear big cells; required without a card.
    synapse : {'pair', 'hybrid'}
    k : float
        Gain of the hybrid synapse: small cells have area ``A / k`` (conductance ``G / k``).
    n_states : int, optional
        Number of programmable levels of each device (quantisation); the hybrid big pair
        defaults to 50 (Choi et al. 2021).
    w_max : float, optional
        Weight that maps to a full-range device (default ``max |W|``); larger weights clip.
    tile_size : int or (rows, cols)
        Tile size; must not exceed the weight matrix.
    area : float, optional
        Big-cell area (m²), default ``card.area_ref``.
    r_wire_row, r_wire_col, r_driver, r_sense : float
        Parasitics (Ω) of every tile, see :class:`~pyspice_rram.circuit.tile.Tile`.
    v_read : float, optional
        Read amplitude (V), default ``card.scheme.v_read`` or 0.2 V.
    adc_bits, adc_range :
        Optional ADC resolution and full scale (A) of the periphery.
    """
    W = np.array(weights, dtype=float)
    if W.ndim != 2 or min(W.shape) < 1:
        raise ConfigError(f"weights must be a non-empty 2-D matrix (n_in, n_out), got shape "
                         f"{W.shape}")
    if not np.all(np.isfinite(W)):
        raise ConfigError("weights contain NaN or infinite values")
    if synapse not in SYNAPSES:
        raise ConfigError(f"synapse must be one of {SYNAPSES}, got {synapse!r}")
    if not k >= 1:
        raise ConfigError(f"hybrid gain k must be >= 1, got {k}")
    tr, tc = (tile_size, tile_size) if np.isscalar(tile_size) else tuple(tile_size)
    tr, tc = int(tr), int(tc)
    if tr < 1 or tc < 1:
        raise ConfigError(f"tile_size must be >= 1, got {tile_size}")
    if tr > W.shape[0] or tc > W.shape[1]:
        raise ConfigError(f"tile {tr}x{tc} is larger than the {W.shape[0]}x{W.shape[1]} weight "
                         "matrix; choose a tile_size no larger than the matrix, e.g. "
                         f"tile_size=({min(tr, W.shape[0])}, {min(tc, W.shape[1])})")
    if n_states is not None and (int(n_states) != n_states or n_states < 2):
        raise ConfigError(f"n_states must be an integer >= 2, got {n_states}")
    if card is None:
        if g_range is None:
            raise ConfigError("map_layer needs a model card or g_range=(g_min, g_max) in S")
        g_min, g_max = map(float, g_range)
        if not 0 <= g_min < g_max or not np.isfinite(g_max):
            raise ConfigError(f"g_range must satisfy 0 <= g_min < g_max (S), got {g_range}")
        g_range = (g_min, g_max)
    elif not isinstance(card, ModelCard):
        raise ConfigError("card must be a ModelCard")
    if area is None and card is not None:
        area = card.area_ref
    if area is not None and not area > 0:
        raise ConfigError(f"area must be > 0 m², got {area}")
    if v_read is None:
        v_read = card.scheme.v_read if card is not None else 0.2
    if w_max is None:
        w_max = float(np.abs(W).max()) or 1.0
    if not w_max > 0:
        raise ConfigError(f"w_max must be > 0, got {w_max}")

    u = np.clip(W / w_max, -1.0, 1.0)
    if synapse == "pair":
        arrays = [ArraySpec("G+", +1, 1.0), ArraySpec("G-", -1, 1.0)]
        states = {"G+": _quantise_levels(np.maximum(u, 0), n_states),
                  "G-": _quantise_levels(np.maximum(-u, 0), n_states)}
    else:
        nb = 50 if n_states is None else int(n_states)
        big_p = _quantise_levels(np.maximum(u, 0), nb)
        big_m = _quantise_levels(np.maximum(-u, 0), nb)
        s = np.clip(k * (u - (big_p - big_m)), -1.0, 1.0)
        arrays = [ArraySpec("G+", +1, 1.0), ArraySpec("G-", -1, 1.0),
                  ArraySpec("g+", +1, 1.0 / k), ArraySpec("g-", -1, 1.0 / k)]
        states = {"G+": big_p, "G-": big_m,
                  "g+": _quantise_levels(np.maximum(s, 0), n_states),
                  "g-": _quantise_levels(np.maximum(-s, 0), n_states)}
    parasitics = dict(r_wire_row=r_wire_row, r_wire_col=r_wire_col, r_driver=r_driver,
                      r_sense=r_sense)
    tiles: list[TileSlot] = []
    for spec in arrays:
        x = states[spec.name]
        for r0 in range(0, W.shape[0], tr):
            for c0 in range(0, W.shape[1], tc):
                rs, cs = slice(r0, min(r0 + tr, W.shape[0])), slice(c0, min(c0 + tc, W.shape[1]))
                name = f"{spec.name}[{r0}:{rs.stop},{c0}:{cs.stop}]"
                if card is None:
                    g = spec.gain * (g_range[0] + (g_range[1] - g_range[0]) * x[rs, cs])
                    tile = Tile(g=g, name=name, **parasitics)
                else:
                    tile = Tile(x=x[rs, cs], area=area * spec.gain, card=card, name=name,
                                **parasitics)
                tiles.append(TileSlot(spec.name, rs, cs, tile))
    settings = dict(synapse=synapse, k=k, n_states=n_states, w_max=w_max, tile_size=(tr, tc),
                    area=area, v_read=v_read, adc_bits=adc_bits, adc_range=adc_range,
                    g_range=g_range, **parasitics)
    return MappedLayer(W, float(w_max), synapse, float(k), arrays, states, tiles, (tr, tc), card,
                       g_range, area, float(v_read), adc_bits, adc_range, settings)
