"""Physics-informed tile surrogate: ladder attenuation of the lines plus a fitted correction.

The surrogate predicts the output currents of a forward or transposed read of a crossbar
:class:`~pyspice_rram.circuit.tile.Tile` (topology documented there) with IR drop on the
row and column wires, driver and sense resistances, and the cell's sinh read nonlinearity.

Canonical frame
---------------
Both read directions are mapped onto one frame: a matrix ``M`` of low-field cell
conductances (S) whose rows are the *driven* lines and whose columns are the *sensed*
lines, ordered so that index 0 is the cell nearest to the periphery on both lines
(forward: ``M = G[::-1, :]``; transposed: ``M = G[::-1, :].T``).

Physics core (exact at zero wire and periphery resistance)
----------------------------------------------------------
A line with periphery resistance ``R_p``, ``L`` wire segments of ``r`` (Ω; the first one
between the periphery and the nearest cell) and shunt conductances ``y_k`` (S) to an ideal
opposite line is a ladder. Its input admittances and node attenuations follow from::

    Y_{L-1} = y_{L-1},   Y_k = y_k + Y_{k+1} / (1 + r Y_{k+1})
    att_0   = 1 / (1 + (R_p + r) Y_0),   att_k = att_{k-1} / (1 + r Y_k)

``att_k = U_k / V_source`` is exact for one line with the other lines ideal. The driven
line attenuation ``alpha`` is the ladder of each driven line with shunts ``M`` (the sensed
lines held at 0 V). For a sensed line, the voltage across cell ``a`` when every driven line
is at 1 V, ``1 - W_a``, obeys the same ladder in the variable ``1 - W`` (periphery at 1,
shunts to 0); by reciprocity the transfer of input ``a`` to output ``b`` through the sensed
line is ``M_ab (1 - psi_ab)`` with ``1 - psi`` that ladder's attenuation ``beta``, computed
with shunts ``M * alpha`` (cells already attenuated by the driven line: one mean-field
step). The cell voltage is then ``V_ab = gamma_ab v_a`` with ``gamma = alpha * beta``.

Read with the cell nonlinearity ``I = a h(V)``, ``h(V) = V_nl sinh(V / V_nl)`` (``h(V) = V``
for linear cells), expanded to second order in ``gamma - 1``::

    I_b = sum_a [ h(v_a) M_ab + v_a h'(v_a) M_ab (gamma_ab - 1)
                  + 1/2 v_a^2 h''(v_a) M_ab (gamma_ab - 1)^2 ]           (physics core)
        + sum_k theta_k sum_a psi_k(v_a) M_ab phi_k(alpha_ab, beta_ab)     (fitted correction)

with dimensionless features ``phi_k`` built from ``e_a = 1 - alpha`` and ``e_b = 1 - beta``
(``e_a e_b``, ``e_a^2``, ``e_b^2``, ``e_a e_b (e_a + e_b)``, and the chord-conductance
correction ``-e_a`` with ``psi = v h'(v) (s(v) - 1)``, ``s`` the cell's chord conductance at
``v`` relative to the one used in the ladders). All features vanish when the wires and the
periphery are ideal, so the surrogate is exact there; the coefficients ``theta`` are
fitted by linear least squares to ngspice output currents (:mod:`.fit`). Every term is a
matrix product over the input vectors, so that a batch of reads of one tile costs a few
matrix products once the per-tile factors are prepared.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from ..device.card import ModelCard
from ..errors import ConfigError, ValidityError

#: Fitted correction terms: (name, input transform, feature) -- see the module docstring.
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("ea_eb", "dh", "ea*eb"),
    ("ea2", "dh", "ea^2"),
    ("eb2", "dh", "eb^2"),
    ("ea_eb_sum", "dh", "ea*eb*(ea+eb)"),
    ("chord", "dhs", "-ea"),
)
FEATURE_NAMES = tuple(f[0] for f in FEATURES)

#: Package-data location of the shipped surrogate.
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "data" / "surrogate" / "default.json"

FORMAT = "pyspice-rram-tile-surrogate/1"


class SurrogateValidityError(ValidityError):
    """A tile or input is outside the range in which the surrogate was fitted and validated."""


# --------------------------------------------------------------------------- numba kernels
@njit(cache=True)
def _ladder(y, r_first, r, out):
    """Ladder attenuations of lines ``y[t, line, k]`` (k from the periphery) into ``out``.

    ``r_first`` (Ω) is periphery plus first segment, ``r`` (Ω) the segment resistance.
    """
    nt, nl, L = y.shape
    q = np.empty(L)                # q_k = 1 / (1 + r Y_k)
    for t in range(nt):
        for m in range(nl):
            Y = y[t, m, L - 1]
            for k in range(L - 1, 0, -1):
                qk = 1.0 / (1.0 + r * Y)
                q[k] = qk
                Y = y[t, m, k - 1] + Y * qk
            att = 1.0 / (1.0 + r_first * Y)
            out[t, m, 0] = att
            for k in range(1, L):
                att *= q[k]
                out[t, m, k] = att


@njit(cache=True, inline="always")
def _pow(x, e):
    """``x ** e`` with the exponents of the coupling schemes fast (1, 1/2)."""
    if e == 1.0:
        return x
    if e == 0.5:
        return math.sqrt(x)
    return x ** e


@njit(cache=True, inline="always")
def _sensed_ladder(a, t, shunt_scale, w, r_s_first, r_s, Ys, qs, out):
    """Ladders of the sensed lines (columns of canonical tile ``a[t]``) with shunts
    ``a w shunt_scale`` into ``out`` (all lines advance together)."""
    na, nb = w.shape
    for j in range(nb):
        Ys[j] = a[t, na - 1, j] * shunt_scale * w[na - 1, j]
    for k in range(na - 1, 0, -1):
        for j in range(nb):
            qk = 1.0 / (1.0 + r_s * Ys[j])
            qs[k, j] = qk
            Ys[j] = a[t, k - 1, j] * shunt_scale * w[k - 1, j] + Ys[j] * qk
    for j in range(nb):
        out[0, j] = 1.0 / (1.0 + r_s_first * Ys[j])
    for k in range(1, na):
        for j in range(nb):
            out[k, j] = out[k - 1, j] * qs[k, j]


@njit(cache=True)
def _prepare_kernel(a, shunt_scale, r_d_first, r_d, r_s_first, r_s, th, linear, out, mode=1,
                    p_cpl=0.0, q_cpl=1.0):
    """Fused :meth:`TileSurrogate.prepare_arrays` for canonical tiles ``a[t]``: the ladder
    passes (:func:`attenuation` with coupling exponents ``p_cpl``, ``q_cpl``), the
    correction factors and the stacked read matrices ``out[t]`` (rows
    ``[a; a f_dh; a f_d2h; a f_dhs]``, or ``a (1 + f_dh)`` for linear cells); with
    ``mode = 2`` the factors themselves, ``[f_dh; f_d2h; f_dhs]``."""
    nt, na, nb = a.shape
    alpha = np.empty((na, nb))
    beta = np.empty((na, nb))
    beta0 = np.ones((na, nb))
    ones = np.ones((na, nb))
    aq = np.empty((na, nb))
    qd = np.empty((nb, na))        # qd[k, i] = 1 / (1 + r_d Y_k) of driven line i
    qs = np.empty((na, nb))        # qs[k, j] = 1 / (1 + r_s Y_k) of sensed line j
    Yd = np.empty(na)
    Ys = np.empty(nb)
    # the recursions run along each line; all lines advance together (independent, SIMD)
    for t in range(nt):
        if p_cpl != 0.0:           # sensed lines alone (shunts a): beta0 ** p_cpl
            _sensed_ladder(a, t, shunt_scale, ones, r_s_first, r_s, Ys, qs, beta0)
            for i in range(na):
                for j in range(nb):
                    beta0[i, j] = _pow(beta0[i, j], p_cpl)
        for i in range(na):
            Yd[i] = a[t, i, nb - 1] * shunt_scale * beta0[i, nb - 1]
        for k in range(nb - 1, 0, -1):
            for i in range(na):
                qk = 1.0 / (1.0 + r_d * Yd[i])
                qd[k, i] = qk
                Yd[i] = a[t, i, k - 1] * shunt_scale * beta0[i, k - 1] + Yd[i] * qk
        for i in range(na):
            alpha[i, 0] = 1.0 / (1.0 + r_d_first * Yd[i])
        for k in range(1, nb):
            for i in range(na):
                alpha[i, k] = alpha[i, k - 1] * qd[k, i]
        for i in range(na):
            for j in range(nb):
                aq[i, j] = _pow(alpha[i, j], q_cpl)
        _sensed_ladder(a, t, shunt_scale, aq, r_s_first, r_s, Ys, qs, beta)
        for i in range(na):
            for j in range(nb):
                ea = 1.0 - alpha[i, j]
                eb = 1.0 - beta[i, j]
                g = alpha[i, j] * beta[i, j] - 1.0
                dh = g + th[0] * ea * eb + th[1] * ea * ea + th[2] * eb * eb \
                    + th[3] * ea * eb * (ea + eb)
                aij = a[t, i, j]
                if mode == 2:       # factors only: [f_dh; f_d2h; f_dhs]
                    out[t, i, j] = dh
                    out[t, na + i, j] = g * g
                    out[t, 2 * na + i, j] = -th[4] * ea
                elif linear:
                    out[t, i, j] = aij * (1.0 + dh)
                else:
                    out[t, i, j] = aij
                    out[t, na + i, j] = aij * dh
                    out[t, 2 * na + i, j] = aij * g * g
                    out[t, 3 * na + i, j] = -aij * th[4] * ea


@njit(cache=True)
def _inputs_kernel(v, v_nl, s_eff, linear, flip, out):
    """Input transforms of read voltages ``v`` (n, n_driven) into ``out`` (n, k n_driven):
    ``[h(v), v h'(v), v^2 h''(v) / 2, v h'(v) (s(v) - 1)]`` (``[v]`` for linear cells), in
    canonical line order (reversed when ``flip``). One ``expm1`` per element:
    ``sinh u = (e - e') / 2``, ``cosh u = 1 + (e + e') / 2`` with ``e = expm1(u)``,
    ``e' = expm1(-u) = -e / (1 + e)``."""
    n, nd = v.shape
    for b in range(n):
        for i in range(nd):
            vv = v[b, nd - 1 - i] if flip else v[b, i]
            if linear:
                out[b, i] = vv
                continue
            u = vv / v_nl
            e = math.expm1(u)
            e2 = -e / (1.0 + e)
            sh = 0.5 * (e - e2)
            ch = 1.0 + 0.5 * (e + e2)
            dh = vv * ch
            chord = sh / u if u != 0.0 else 1.0
            out[b, i] = v_nl * sh
            out[b, nd + i] = dh
            out[b, 2 * nd + i] = 0.5 * vv * vv * sh / v_nl
            out[b, 3 * nd + i] = dh * (chord / s_eff - 1.0)


def ladder_attenuation(y: np.ndarray, r_periphery: float, r_segment: float) -> np.ndarray:
    """Node attenuation ``U_k / V_source`` of resistive ladders (exact, see module docstring).

    Parameters
    ----------
    y : ndarray (..., n_lines, L)
        Shunt conductances (S) of each line, index 0 nearest to the periphery.
    r_periphery : float
        Driver or sense resistance (Ω) between the source (or virtual ground) and the line.
    r_segment : float
        Wire resistance of one segment (Ω); the line has ``L`` segments, the first one
        between the periphery and node 0.
    """
    y = np.asarray(y, dtype=float)
    shape = y.shape
    y3 = np.ascontiguousarray(y.reshape((-1,) + shape[-2:]))
    out = np.empty_like(y3)
    _ladder(y3, float(r_periphery + r_segment), float(r_segment), out)
    return out.reshape(shape)


def canonical(m: np.ndarray, direction: str) -> np.ndarray:
    """Map ``(..., rows, cols)`` cell data to the canonical (driven, sensed) frame."""
    flipped = m[..., ::-1, :]
    if direction == "forward":
        return flipped
    if direction == "transposed":
        return np.swapaxes(flipped, -1, -2)
    raise ConfigError(f"direction must be 'forward' or 'transposed', got {direction!r}")


def line_resistances(r_wire_row: float, r_wire_col: float, r_driver: float, r_sense: float,
                     direction: str) -> tuple[float, float, float, float]:
    """``(r_seg_driven, r_seg_sensed, r_periph_driven, r_periph_sensed)`` in Ω."""
    if direction == "forward":
        return r_wire_row, r_wire_col, r_driver, r_sense
    return r_wire_col, r_wire_row, r_driver, r_sense


def attenuation(M: np.ndarray, r_d: float, r_s: float, R_d: float, R_s: float,
                coupling: tuple[float, float] = (0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Driven (``alpha``) and sensed (``beta``) line attenuations of canonical tiles.

    ``M`` is ``(..., n_driven, n_sensed)`` of shunt conductances (S). With coupling
    exponents ``(p, q)``: ``beta0`` is the ladder of every sensed line with shunts ``M``
    (computed only when ``p != 0``), ``alpha`` the ladder of every driven line with shunts
    ``M beta0^p``, and ``beta`` the ladder of every sensed line with shunts ``M alpha^q``.
    ``(0, 1)``: the one mean-field step of the first surrogate (driven lines against ideal
    sensed lines, then sensed lines loaded by the attenuated cells); ``(1/2, 1/2)``: the
    symmetric half-step coupling, each line loaded by the cells through the square root of
    the other line's attenuation (for linear cells the all-on error of 128x128 tiles at
    5 Ω per segment and G_max drops from 1.7 % to 0.6 % of full scale).
    """
    p, q = coupling
    beta0 = 1.0
    if p != 0.0:
        beta0 = np.swapaxes(ladder_attenuation(np.swapaxes(M, -1, -2), R_s, r_s), -1, -2) ** p
    alpha = ladder_attenuation(M * beta0, R_d, r_d)
    beta_t = ladder_attenuation(np.swapaxes(M * alpha ** q, -1, -2), R_s, r_s)
    return alpha, np.swapaxes(beta_t, -1, -2)


# --------------------------------------------------------------------------- cell transforms
@dataclass(frozen=True)
class CellLaw:
    """Read law of the cells, ``I = a h(V)``: linear (``v_nl = inf``) or sinh with ``V_nl``.

    ``v_eff`` (V) is the voltage at which the chord conductance used as ladder shunt is taken.
    """

    v_nl: float = math.inf
    v_eff: float = 0.0

    @property
    def linear(self) -> bool:
        return not math.isfinite(self.v_nl)

    @property
    def chord_eff(self) -> float:
        """Chord factor ``h(v_eff) / v_eff`` of the ladder shunts (1 for linear cells)."""
        if self.linear or self.v_eff == 0.0:
            return 1.0
        z = self.v_eff / self.v_nl
        return math.sinh(z) / z

    def chord(self, v: np.ndarray | float) -> np.ndarray:
        """Chord conductance factor ``h(v) / v`` (1 at v = 0, dimensionless)."""
        v = np.asarray(v, dtype=float)
        if self.linear:
            return np.ones_like(v)
        z = v / self.v_nl
        zs = np.where(np.abs(z) < 1e-8, 1.0, z)
        return np.where(np.abs(z) < 1e-8, 1.0 + z * z / 6.0, np.sinh(zs) / zs)

    def transforms(self, v: np.ndarray) -> dict[str, np.ndarray]:
        """Input transforms ``h(v)``, ``v h'(v)``, ``v^2 h''(v) / 2``, ``v h'(v) (s(v) - 1)``."""
        if self.linear:
            z = np.zeros_like(v)
            return {"h": v, "dh": v, "d2h": z, "dhs": z}
        u = v / self.v_nl
        h = self.v_nl * np.sinh(u)
        dh = v * np.cosh(u)
        d2h = 0.5 * v * v * np.sinh(u) / self.v_nl
        s = self.chord(v) / float(self.chord(self.v_eff))
        return {"h": h, "dh": dh, "d2h": d2h, "dhs": dh * (s - 1.0)}


# --------------------------------------------------------------------------- prepared tiles
@dataclass
class PreparedRead:
    """Per-tile factors of one read direction: ``I = [psi_0(v), ..., psi_m(v)] @ stack``.

    ``stack`` is ``(..., n_transforms * n_driven, n_sensed)`` in the canonical frame; the
    input order and output order are restored by :meth:`apply`. ``v_max`` (V) is the largest
    |read voltage| of the surrogate's validity range (None: not checked) and ``on_invalid``
    what :meth:`apply` does beyond it (``"error"``: :class:`SurrogateValidityError`,
    ``"warn"``: a warning); both are set by :meth:`TileSurrogate.prepare_arrays`.
    """

    direction: str
    law: CellLaw
    transforms: tuple[str, ...]
    stack: np.ndarray
    n_driven: int
    v_max: float | None = None
    on_invalid: str = "error"

    def check_inputs(self, v: np.ndarray) -> None:
        """Refuse (or warn about, per ``on_invalid``) read voltages that are not finite or
        whose magnitude exceeds ``v_max`` (V); the message names the value and the limit."""
        if v.size == 0:
            return
        vmax = float(np.max(np.abs(v)))
        if vmax <= (self.v_max * (1 + 1e-9) if self.v_max is not None else math.inf):
            return
        if not math.isfinite(vmax):
            msg = (f"read voltages must be finite, got {vmax} (at index "
                   f"{np.unravel_index(int(np.argmax(~np.isfinite(v))), v.shape)})")
            raise SurrogateValidityError(msg)       # never a number to return
        msg = (f"|read voltage| {vmax:.4g} V above the surrogate's fitted maximum "
               f"v_max = {self.v_max:g} V ({self.direction} read; valid: |v| <= "
               f"{self.v_max:g} V)")
        if self.on_invalid == "error":
            raise SurrogateValidityError(msg)
        warnings.warn(msg, stacklevel=3)

    def apply(self, v_in: np.ndarray, check: bool = True) -> np.ndarray:
        """Output currents (A) ``(n_vectors, n_sensed)`` for read voltages ``(n_vectors, n_driven)``.

        With a stack of tiles ``(T, ...)``, ``v_in`` is ``(T, n_vectors, n_driven)``.
        ``check`` (default True): refuse voltages outside the validity range
        (:meth:`check_inputs`); False only where the caller has checked them.

        Raises
        ------
        SurrogateValidityError
            A voltage that is not finite, or (``on_invalid="error"``) whose magnitude is
            above ``v_max``.
        """
        v = np.asarray(v_in, dtype=float)
        if check:
            self.check_inputs(v)
        law = self.law
        if self.transforms in (("h",), ("h", "dh", "d2h", "dhs")):  # fused kernel
            shape = v.shape
            v2 = np.ascontiguousarray(v.reshape(-1, shape[-1]))
            x = np.empty((v2.shape[0], len(self.transforms) * shape[-1]))
            s_eff = law.chord_eff
            _inputs_kernel(v2, law.v_nl if not law.linear else 1.0, s_eff, law.linear,
                           self.direction == "forward", x)
            x = x.reshape(shape[:-1] + (x.shape[-1],))
        else:
            vc = v[..., ::-1] if self.direction == "forward" else v
            tr = law.transforms(vc)
            x = np.concatenate([tr[name] for name in self.transforms], axis=-1)
        out = x @ self.stack
        return out if self.direction == "forward" else out[..., ::-1]


def features(alpha: np.ndarray, beta: np.ndarray) -> dict[str, np.ndarray]:
    """Dimensionless correction features ``phi_k`` from the attenuations (0 for ideal wires)."""
    ea = 1.0 - alpha
    eb = 1.0 - beta
    return {"ea_eb": ea * eb, "ea2": ea * ea, "eb2": eb * eb,
            "ea_eb_sum": ea * eb * (ea + eb), "chord": -ea}


# --------------------------------------------------------------------------- the surrogate
@dataclass
class TileSurrogate:
    """A fitted tile surrogate with its provenance and range of validity.

    Parameters
    ----------
    theta : dict
        Fitted coefficients of the correction terms (:data:`FEATURES`); 0 = physics core only.
    v_eff_frac : float
        Chord voltage of the ladder shunts as a fraction of ``validity['v_max']``.
    coupling : [p, q]
        Coupling exponents of the driven and sensed line ladders (:func:`attenuation`):
        ``[0, 1]`` one mean-field step (the first surrogate), ``[0.5, 0.5]`` symmetric.
    validity : dict
        Range in which the surrogate was fitted and validated: ``size`` [min, max] lines,
        ``r_wire`` [min, max] Ω per segment of the data (below ``min`` the IR drop and the
        error only shrink, and 0 is exact, so only ``max`` is enforced), ``r_driver_max``, ``r_sense_max`` (Ω),
        ``v_max`` (V, |read voltage|), ``g_max`` (S, largest low-field cell conductance),
        ``cells`` (``"model"`` or ``"linear"``), ``ir_drop_max`` and ``ir_drop_asym_max``
        (largest line IR-drop parameter and largest difference of the row and column ones,
        dimensionless, :meth:`domain_problems`), ``periphery_max``
        (largest ``g_max (r_driver + r_sense) max(rows, cols)``), ``card_rtol`` (relative
        tolerance on the card's read law); see :meth:`domain_problems`.
    card : dict or None
        The model card (``ModelCard.to_dict()``) of the cells it was fitted for.
    provenance : dict
        Data set hash and path, number of samples, solvers, fit date, error report.
    on_invalid : str
        ``"error"`` (raise :class:`SurrogateValidityError`) or ``"warn"``.
    """

    theta: dict[str, float] = field(default_factory=lambda: {k: 0.0 for k in FEATURE_NAMES})
    v_eff_frac: float = 0.7
    coupling: list = field(default_factory=lambda: [0.0, 1.0])
    validity: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    on_invalid: str = "error"

    def __post_init__(self) -> None:
        unknown = set(self.theta) - set(FEATURE_NAMES)
        if unknown:
            raise ConfigError(f"unknown surrogate terms {sorted(unknown)}; known: {FEATURE_NAMES}")
        self.theta = {k: float(self.theta.get(k, 0.0)) for k in FEATURE_NAMES}
        if self.on_invalid not in ("error", "warn"):
            raise ConfigError("on_invalid must be 'error' or 'warn'")
        cpl = list(self.coupling)
        if not (len(cpl) == 2 and all(isinstance(c, (int, float)) and 0 <= c <= 1
                                      for c in cpl)):
            raise ConfigError(f"surrogate coupling must be [p, q] with 0 <= p, q <= 1, got "
                              f"{self.coupling!r}")
        self.coupling = [float(c) for c in cpl]

    # ------------------------------------------------------------------ validity
    def _card(self) -> ModelCard | None:
        if self.card is None:
            return None
        key = id(self.card)
        cached = getattr(self, "_card_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, ModelCard.from_dict(self.card))
            self._card_cache = cached
        return cached[1]

    def domain_problems(self, rows: int, cols: int, r_wire_row: float, r_wire_col: float,
                        r_driver: float, r_sense: float,
                        names: tuple[str, str] = ("rows", "cols")) -> list[str]:
        """Where a tile geometry is outside the validity range: one message per field,
        naming the field, its value and the valid range (empty when valid).

        Checked: ``size`` (lines per side), ``r_wire`` (largest Ω per segment; below the
        data's smallest value the IR drop and the error only shrink, and 0 is exact),
        ``r_driver_max`` / ``r_sense_max`` (Ω), ``ir_drop_max`` (the larger of the
        dimensionless line parameters ``g_max (r_wire_row cols^2 + (r_driver + r_sense)
        cols)`` and ``g_max (r_wire_col rows^2 + (r_driver + r_sense) rows)``, ``g_max`` =
        ``validity['g_max']``; :func:`.dataset.line_ir_drops`), ``ir_drop_asym_max`` (their
        difference)
        and ``periphery_max`` (``g_max (r_driver + r_sense) max(rows, cols)``). ``names``:
        what the caller calls rows and cols (e.g. ``tile_rows``, ``tile_cols``).
        """
        val = self.validity
        problems: list[str] = []
        if "size" in val:
            lo, hi = val["size"]
            for name, n in zip(names, (rows, cols)):
                if not lo <= n <= hi:
                    problems.append(f"{name} = {n} outside the validated range [{lo}, {hi}] "
                                    "lines")
        if "r_wire" in val:
            hi = val["r_wire"][1]
            for name, r in (("r_wire_row", r_wire_row), ("r_wire_col", r_wire_col)):
                if r > hi * (1 + 1e-9):
                    problems.append(f"{name} = {r:g} Ω above the validated maximum {hi:g} Ω "
                                    f"(valid: 0 to {hi:g} Ω per segment)")
        for name, key, r in (("r_driver", "r_driver_max", r_driver),
                             ("r_sense", "r_sense_max", r_sense)):
            if key in val and r > val[key] * (1 + 1e-9):
                problems.append(f"{name} = {r:g} Ω above the validated maximum {val[key]:g} Ω "
                                f"(valid: 0 to {val[key]:g} Ω)")
        g_max = val.get("g_max")
        if g_max is not None:
            rp = r_driver + r_sense
            lam_r = g_max * (r_wire_row * cols * cols + rp * cols)
            lam_c = g_max * (r_wire_col * rows * rows + rp * rows)
            what = (f"g_max (r_wire_row {names[1]}^2 + (r_driver + r_sense) {names[1]}) = "
                    f"{lam_r:.3g} (row lines), g_max (r_wire_col {names[0]}^2 + (r_driver + "
                    f"r_sense) {names[0]}) = {lam_c:.3g} (column lines), g_max = {g_max:.4g} S,"
                    f" at {rows}x{cols}, r_wire_row {r_wire_row:g} Ω, r_wire_col "
                    f"{r_wire_col:g} Ω, r_driver {r_driver:g} Ω, r_sense {r_sense:g} Ω")
            cap = val.get("ir_drop_max")
            if cap is not None and max(lam_r, lam_c) > float(cap) * (1 + 1e-9):
                problems.append(f"IR-drop parameter {max(lam_r, lam_c):.3g} above the validated "
                                f"maximum {float(cap):g} ({what}; valid: both <= {float(cap):g})")
            cap = val.get("ir_drop_asym_max")
            if cap is not None and abs(lam_r - lam_c) > float(cap) * (1 + 1e-9):
                problems.append(f"IR-drop asymmetry |row - column| = {abs(lam_r - lam_c):.3g} "
                                f"above the validated maximum {float(cap):g} ({what}; valid: "
                                f"|row - column| <= {float(cap):g})")
        if g_max is not None and val.get("periphery_max") is not None:
            p = g_max * (r_driver + r_sense) * max(rows, cols)
            cap = float(val["periphery_max"])
            if p > cap * (1 + 1e-9):
                problems.append(
                    f"periphery parameter g_max (r_driver + r_sense) max({names[0]}, "
                    f"{names[1]}) = {p:.3g} above the validated maximum {cap:g} (valid: "
                    f"r_driver + r_sense <= {cap / (g_max * max(rows, cols)):.3g} Ω at "
                    f"{rows}x{cols})")
        return problems

    def card_problems(self, card: ModelCard) -> list[str]:
        """Where a card's read law differs from the fitted card's by more than
        ``validity['card_rtol']`` (relative; 1e-6 when absent): ``g_min_density``,
        ``g_max_density``, ``v_nl``, ``area_ref``. The model itself uses the tile card's
        conductances and ``V_nl``; the tolerance bounds how far the fitted coefficients are
        carried."""
        if self.card is None:
            return []
        mine = self._card()
        rtol = float(self.validity.get("card_rtol", 1e-6))
        problems = []
        for p in ("g_min_density", "g_max_density", "v_nl", "area_ref"):
            a, b = getattr(card, p), getattr(mine, p)
            if not math.isclose(a, b, rel_tol=rtol):
                problems.append(f"card {p} = {a:.6g} differs from the fitted card's {b:.6g} by "
                                f"more than {rtol:g} (relative)")
        return problems

    def check(self, tile: Any, v_in: np.ndarray | None = None, direction: str = "forward",
              on_invalid: str | None = None) -> list[str]:
        """Check a tile (and inputs) against the validity range; raise or warn per ``on_invalid``.

        Returns the list of problems (empty when valid).

        Raises
        ------
        SurrogateValidityError
            (``on_invalid="error"``) The message names every field outside the range, its
            value and the valid range (:meth:`domain_problems`, :meth:`card_problems`).
        """
        mode = on_invalid or self.on_invalid
        val = self.validity
        rows, cols = tile.shape
        problems = self.domain_problems(rows, cols, tile.r_wire_row, tile.r_wire_col,
                                        tile.r_driver, tile.r_sense)
        cells = "linear" if tile.is_linear else "model"
        if val.get("cells") and cells != val["cells"]:
            problems.append(f"tile has {cells} cells, the surrogate was fitted on "
                            f"{val['cells']} cells")
        if not tile.is_linear:
            problems += self.card_problems(tile.card)
        if "g_max" in val:
            gmax = float(np.max(tile.low_field_conductance()))
            if gmax > val["g_max"] * (1 + float(val.get("card_rtol", 1e-6))):
                problems.append(f"largest cell conductance {gmax:.4g} S above the fitted "
                                f"maximum {val['g_max']:.4g} S")
        if v_in is not None and "v_max" in val:
            vmax = float(np.max(np.abs(v_in))) if np.size(v_in) else 0.0
            if vmax > val["v_max"] * (1 + 1e-9):
                problems.append(f"|read voltage| {vmax:.4g} V above the fitted maximum "
                                f"{val['v_max']} V")
        if problems:
            msg = ("tile surrogate used outside its range of validity: " + "; ".join(problems)
                   + " (refit with `pyspice-rram surrogate fit`, or pass on_invalid='warn')")
            if mode == "error":
                raise SurrogateValidityError(msg)
            warnings.warn(msg, stacklevel=3)
        return problems

    # ------------------------------------------------------------------ prediction
    def law_for(self, tile: Any) -> CellLaw:
        """Cell read law of ``tile`` (linear, or sinh with the tile card's ``V_nl``)."""
        if tile.is_linear:
            return CellLaw()
        v_max = self.validity.get("v_max", tile.card.scheme.v_read)
        return CellLaw(v_nl=float(tile.card.v_nl), v_eff=self.v_eff_frac * float(v_max))

    def prepare(self, tile: Any, direction: str = "forward") -> PreparedRead:
        """Per-tile factors (ladders, features, stacked matrices) of one read direction."""
        law = self.law_for(tile)
        a = canonical(np.asarray(tile.low_field_conductance(), dtype=float), direction)
        r_d, r_s, R_d, R_s = line_resistances(tile.r_wire_row, tile.r_wire_col, tile.r_driver,
                                              tile.r_sense, direction)
        return self.prepare_arrays(a, law, r_d, r_s, R_d, R_s, direction)

    def correction_factors(self, alpha: np.ndarray, beta: np.ndarray) -> dict[str, np.ndarray]:
        """``{transform: factor}`` with ``I = sum_tr psi_tr(v) @ (a * factor)``."""
        gm1 = alpha * beta - 1.0
        feats = features(alpha, beta)
        dh = gm1.copy()
        dhs = np.zeros_like(gm1)
        for name, transform, _ in FEATURES:
            th = self.theta[name]
            if th == 0.0:
                continue
            if transform == "dh":
                dh += th * feats[name]
            else:
                dhs += th * feats[name]
        return {"h": np.ones_like(gm1), "dh": dh, "d2h": gm1 * gm1, "dhs": dhs}

    def factors(self, a: np.ndarray, law: CellLaw, r_d: float, r_s: float, R_d: float,
                R_s: float, fold_v: float | None = None) -> dict[str, np.ndarray]:
        """Per-cell factors ``{transform: f}`` of canonical tiles ``a`` (..., n_driven, n_sensed),
        with ``I = sum_tr psi_tr(v) @ (a * f_tr)`` (see :meth:`correction_factors`).

        ``fold_v`` (V): for first-order reads (``h`` and ``dh`` only, as the compiled
        training loop reads), fold the second-order and chord terms into ``dh`` with their
        input transforms taken at ``fold_v`` relative to ``v h'(v)``:
        ``f_dh + rho_d2h f_d2h + rho_dhs f_dhs``, ``rho = psi(fold_v) / (fold_v h'(fold_v))``
        (``d2h`` and ``dhs`` are then 0). Exact for inputs at 0 and at ``fold_v`` (all-on
        reads at the full read voltage); without it a first-order read misses up to ~3.7 %
        of full scale at 128x128, 5 Ω per segment."""
        a3 = np.ascontiguousarray(np.asarray(a, dtype=float).reshape((-1,) + a.shape[-2:]))
        na = a3.shape[1]
        out = np.empty((a3.shape[0], 3 * na, a3.shape[2]))
        th = np.array([self.theta[n] for n in FEATURE_NAMES])
        _prepare_kernel(a3, law.chord_eff, float(R_d + r_d), float(r_d), float(R_s + r_s),
                        float(r_s), th, law.linear, out, 2, *self.coupling)
        out = out.reshape(a.shape[:-2] + out.shape[-2:])
        f = {"h": None, "dh": out[..., :na, :], "d2h": out[..., na:2 * na, :],
             "dhs": out[..., 2 * na:, :]}
        if law.linear:
            f["d2h"] = np.zeros_like(f["dh"])
            f["dhs"] = np.zeros_like(f["dh"])
        f["h"] = np.ones_like(f["dh"])
        if fold_v is not None and not law.linear and fold_v != 0.0:
            tr = law.transforms(np.array([float(fold_v)]))
            rho2 = float(tr["d2h"][0] / tr["dh"][0])
            rhos = float(tr["dhs"][0] / tr["dh"][0])
            f["dh"] = f["dh"] + rho2 * f["d2h"] + rhos * f["dhs"]
            f["d2h"] = np.zeros_like(f["dh"])
            f["dhs"] = np.zeros_like(f["dh"])
        return f

    def prepare_arrays(self, a: np.ndarray, law: CellLaw, r_d: float, r_s: float, R_d: float,
                       R_s: float, direction: str) -> PreparedRead:
        """:meth:`prepare` on canonical low-field conductances ``a`` (..., n_driven, n_sensed)."""
        names = ("h",) if law.linear else ("h", "dh", "d2h", "dhs")  # linear: h = dh = v
        a3 = np.ascontiguousarray(np.asarray(a, dtype=float).reshape((-1,) + a.shape[-2:]))
        k = len(names)
        stack = np.empty((a3.shape[0], k * a3.shape[1], a3.shape[2]))
        th = np.array([self.theta[n] for n in FEATURE_NAMES])
        shunt_scale = law.chord_eff
        _prepare_kernel(a3, shunt_scale, float(R_d + r_d), float(r_d), float(R_s + r_s),
                        float(r_s), th, law.linear, stack, 1, *self.coupling)
        stack = stack.reshape(a.shape[:-2] + stack.shape[-2:])
        v_max = self.validity.get("v_max")
        return PreparedRead(direction, law, names, stack, a.shape[-2],
                            float(v_max) if v_max is not None else None, self.on_invalid)

    def predict(self, tile: Any, v_in: Any, direction: str = "forward",
                on_invalid: str | None = None) -> np.ndarray:
        """Output currents (A) of a read: ``(n_vectors, n_sensed)``.

        Parameters
        ----------
        tile : Tile
            The crossbar tile (:class:`pyspice_rram.circuit.tile.Tile`).
        v_in : array (n_vectors, n_driven) or (n_driven,)
            Read voltages (V) of the driven lines (rows forward, columns transposed).
        direction : ``"forward"`` or ``"transposed"``
        on_invalid : ``"error"``, ``"warn"`` or None (the surrogate's setting)
        """
        v = tile.check_inputs(v_in, direction)
        self.check(tile, v, direction, on_invalid)        # inputs included: checked here
        return self.prepare(tile, direction).apply(v, check=False)

    def design(self, tile: Any, v_in: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
        """Physics-core prediction ``(n_vectors, n_sensed)`` and the per-term design matrix
        ``(n_vectors, n_sensed, n_terms)`` of the correction (for linear least squares)."""
        v = tile.check_inputs(v_in, direction)
        law = self.law_for(tile)
        a = canonical(np.asarray(tile.low_field_conductance(), dtype=float), direction)
        r_d, r_s, R_d, R_s = line_resistances(tile.r_wire_row, tile.r_wire_col, tile.r_driver,
                                              tile.r_sense, direction)
        shunt = a * float(law.chord(law.v_eff)) if not law.linear else a
        alpha, beta = attenuation(shunt, r_d, r_s, R_d, R_s, tuple(self.coupling))
        vc = v[:, ::-1] if direction == "forward" else v
        tr = law.transforms(vc)
        gm1 = alpha * beta - 1.0
        base = tr["h"] @ a + tr["dh"] @ (a * gm1) + tr["d2h"] @ (a * gm1 * gm1)
        feats = features(alpha, beta)
        cols = [tr[t] @ (a * feats[n]) for n, t, _ in FEATURES]
        X = np.stack(cols, axis=-1)
        if direction == "transposed":
            base, X = base[:, ::-1], X[:, ::-1]
        return base, X

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "theta": self.theta, "v_eff_frac": self.v_eff_frac,
                "coupling": self.coupling, "validity": self.validity, "card": self.card,
                "provenance": self.provenance, "on_invalid": self.on_invalid}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TileSurrogate":
        data = dict(data)
        fmt = data.pop("format", None)
        if fmt != FORMAT:
            raise ConfigError(f"not a tile surrogate of format {FORMAT!r} (got {fmt!r})")
        return cls(**data)

    def save(self, path: str | Path) -> Path:
        """Write the surrogate as JSON (coefficients, validity, card, provenance), atomically
        (a temporary file renamed over ``path``)."""
        from ..circuit.safeio import atomic_write_text

        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2,
                                                  default=_json_default) + "\n")

    @classmethod
    def load(cls, path: str | Path | None = None, on_invalid: str | None = None
             ) -> "TileSurrogate":
        """Read a surrogate written by :meth:`save` (default: the shipped one)."""
        path = DEFAULT_PATH if path is None else Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tile surrogate {path} not found")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not a JSON tile surrogate ({exc})") from exc
        sur = cls.from_dict(data)
        if on_invalid is not None:
            sur.on_invalid = on_invalid
        return sur

    def stamp(self, **info: Any) -> None:
        """Add provenance entries, with the creation time and tool version."""
        from .. import __version__

        self.provenance.update(info)
        self.provenance.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat())
        self.provenance.setdefault("tool", f"pyspice-rram {__version__}")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj)}")

