"""Model card: the one parameter set shared by the Verilog-A, ngspice and NumPy forms.

The card describes an interface-type Mo/TiOx cell (Choi et al. 2021). All values are SI.
The physics is in :mod:`pyspice_rram.device.model`; this module only holds, validates and
serialises the numbers.

Equations (state :math:`x \\in [0, 1]`, cell area :math:`A` in m², voltage :math:`V` top-bottom)::

    read current   I(V, x, A) = A * g(x) * V_nl * sinh(V / V_nl)
                   g(x)       = g_min_density + (g_max_density - g_min_density) * x
    state rate     dx/dt      = kappa * [ r_p(V) (1 - c_p x) w(1 - x)
                                        - r_d(V) (1 - c_d (1 - x)) w(x) ]
                   r_p(V)     = R0 * max(0, exp((V - V_p)/V_0p) - exp(-V_p/V_0p))
                   r_d(V)     = R0 * max(0, exp((-V - V_d)/V_0d) - exp(-V_d/V_0d))
                   c_p        = 1 - exp(-beta_p),   c_d = 1 - exp(-beta_d)
                   w(u)       = min(1, max(0, u / eps_bound))

``R0 = 1 s^-1``, so ``V_p`` is the voltage at which the potentiation rate is about 1 s^-1
(a threshold on a log scale). For identical pulses of width ``t_w`` the state follows the
saturating-exponential pulse response ``x(n) = (1 - exp(-beta n / N)) / (1 - exp(-beta))``
with ``N = beta / (c r t_w)`` pulses for the full range (``N = 1/(r t_w)`` when beta = 0).
The conductance range and the conductance step per pulse both scale with ``A`` while ``N``
does not: this is the areal scaling that realises the hybrid synapse gain ``k``.

Model families
--------------
The equations above are the default family ``sinh/threshold/linear`` (the Mo/TiOx cell).
A card names its family with three fields, each one form of one part of the model
(``x_c = clip(x, 0, 1)``, ``V_j`` the junction voltage, ``V_T`` = :data:`THERMAL_VOLTAGE`)::

    g_map       linear    g(x) = g_min + (g_max - g_min) x_c
                log       g(x) = g_min (g_max / g_min)^x_c         (spans decades)
    read_model  sinh      I_j = A g(x) V_nl sinh(V_j / V_nl)
                schottky  I_j = A g(x) v_f v_r / (v_f + v_r) [exp(V_j / v_f) - exp(-V_j / v_r)]
                          v_f = n_f V_T (forward ideality), v_r = n_r V_T (reverse branch)
                linear    I_j = A g(x) V_j
    series      V = V_j + r_series I_j                (area-independent; 0 = none)
    dynamics    threshold    f_p = (1 - c_p x) w(1 - x),  f_d = (1 - c_d (1 - x)) w(x)
                soft_bounds  f_p = max(0, 1 - x)^gamma_p, f_d = max(0, x)^gamma_d
    dx/dt = kappa [ r_p(V_j) f_p(x) - r_d(V_j) f_d(x) ]

Every read form has the low-field conductance ``A g(x)``, so the conductance map and the
areal scaling mean the same in all of them. With ``r_series`` > 0 the current of a large
cell is series-limited at high bias (sub-linear in area) while it scales with area at low
bias. :data:`FAMILY_PARAMETERS` lists the parameters each family uses.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserInputError

#: Rate prefactor of the switching kinetics, s^-1 (fixed, so that V_p is identifiable).
RATE_REF = 1.0

#: Thermal voltage kT/q at 300 K (V), the unit of the Schottky ideality factors.
THERMAL_VOLTAGE = 0.025852

#: Fraction of the range that :meth:`ModelCard.n_states` counts for soft-bounds dynamics.
SOFT_BOUNDS_SPAN = 0.98

#: The forms of each part of the model (first = default).
READ_MODELS = ("sinh", "schottky", "linear")
DYNAMICS = ("threshold", "soft_bounds")
G_MAPS = ("linear", "log")

#: Parameters that a fit may vary, with (lower, upper) bounds and unit.
PARAMETER_INFO: dict[str, tuple[float, float, str, str]] = {
    "g_min_density": (1e3, 1e10, "S/m^2", "low-field conductance per area at x = 0"),
    "g_max_density": (1e3, 1e11, "S/m^2", "low-field conductance per area at x = 1"),
    "v_nl": (0.05, 10.0, "V", "read nonlinearity voltage of the sinh I-V"),
    "v_p": (0.0, 5.0, "V", "potentiation voltage where the rate is ~1 s^-1"),
    "v0_p": (0.01, 1.0, "V", "potentiation rate e-folding voltage"),
    "beta_p": (-5.0, 10.0, "1", "potentiation pulse-response nonlinearity (0 = linear)"),
    "v_d": (0.0, 5.0, "V", "depression voltage (magnitude) where the rate is ~1 s^-1"),
    "v0_d": (0.01, 1.0, "V", "depression rate e-folding voltage"),
    "beta_d": (-5.0, 10.0, "1", "depression pulse-response nonlinearity (0 = linear)"),
    "c2c_sigma": (0.0, 3.0, "1", "cycle-to-cycle variability delta/mu of the step per pulse"),
    "d2d_g_sigma": (0.0, 2.0, "1", "device-to-device relative spread of the conductance range"),
    "d2d_v_sigma": (0.0, 1.0, "V", "device-to-device spread of V_p and V_d"),
    "n_f": (1.0, 200.0, "1", "forward ideality factor of the schottky read (v_f = n_f V_T)"),
    "n_r": (1.0, 500.0, "1", "reverse-branch slope factor of the schottky read (v_r = n_r V_T)"),
    "r_series": (0.0, 1e8, "Ohm", "area-independent series resistance"),
    "gamma_p": (0.05, 10.0, "1", "soft-bounds exponent of potentiation, (1 - x)^gamma_p"),
    "gamma_d": (0.05, 10.0, "1", "soft-bounds exponent of depression, x^gamma_d"),
}

#: Statistics of a card; ``None`` means *not estimated* (the data could not give it).
STATISTICAL_PARAMETERS = ("c2c_sigma", "d2d_g_sigma", "d2d_v_sigma")

#: Parameters of the equations that each form uses (the kinetics v_p, v0_p, v_d, v0_d and
#: the densities are common to all families; r_series is optional everywhere).
FAMILY_PARAMETERS: dict[str, tuple[str, ...]] = {
    "sinh": ("v_nl",), "schottky": ("n_f", "n_r"), "linear": (),
    "threshold": ("beta_p", "beta_d"), "soft_bounds": ("gamma_p", "gamma_d"),
    "common": ("g_min_density", "g_max_density", "v_p", "v0_p", "v_d", "v0_d"),
}


def area_from_diameter(diameter_m: float) -> float:
    """Area in m² of a circular cell of the given diameter in m: ``A = pi d^2 / 4``."""
    return math.pi * diameter_m**2 / 4.0


@dataclass
class PulseScheme:
    """An identical-pulse programming scheme (amplitudes in V, widths in s).

    Parameters
    ----------
    v_set, t_set : potentiation pulse amplitude (V, > 0) and width (s).
    v_reset, t_reset : depression (or strong reset) pulse amplitude (V, < 0) and width (s).
    v_read : read voltage (V) used to turn read currents into conductances.
    """

    v_set: float = 1.8
    t_set: float = 10e-6
    v_reset: float = -3.0
    t_reset: float = 10e-6
    v_read: float = 0.2

    def __post_init__(self) -> None:
        if not (self.v_set > 0 and self.t_set > 0 and self.t_reset > 0):
            raise UserInputError(f"PulseScheme needs v_set > 0 and positive widths, got {self}")
        if not self.v_reset < 0:
            raise UserInputError(f"PulseScheme.v_reset must be negative, got {self.v_reset}")


@dataclass
class ModelCard:
    """Parameters of the Mo/TiOx interface-switching cell (SI units throughout).

    Parameters
    ----------
    g_min_density, g_max_density : float
        Low-field conductance per unit area (S/m²) at x = 0 and x = 1.
    v_nl : float
        Read nonlinearity voltage (V): ``I = A g(x) V_nl sinh(V / V_nl)``.
    v_p, v0_p, beta_p : float
        Potentiation kinetics: rate ~1 s^-1 at ``v_p`` (V), e-folding ``v0_p`` (V),
        pulse-response nonlinearity ``beta_p`` (dimensionless, 0 = linear).
    v_d, v0_d, beta_d : float
        Depression kinetics for negative bias, ``v_d`` is a magnitude (V).
    eps_bound : float
        Width of the soft saturation window at the state bounds (dimensionless).
    c2c_sigma : float or None
        Cycle-to-cycle variability δ/μ (``None`` = not estimated, for this and the two
        device-to-device statistics: see :meth:`statistic`): the rate of each pulse is scaled by
        ``kappa ~ N(1, c2c_sigma)`` (clipped at 0).
    d2d_g_sigma : float
        Device-to-device relative (log-normal) spread of the device conductance: G_min and
        G_max of a device scale together by ``exp(N(0, d2d_g_sigma))`` (an effective-area
        spread).
    d2d_v_sigma : float
        Device-to-device Gaussian spread (V) of ``v_p`` and ``v_d``.
    n_f, n_r, r_series, gamma_p, gamma_d : float
        Parameters of the other families (see the module docstring); unused by the default.
    read_model, dynamics, g_map : str
        The family: :data:`READ_MODELS`, :data:`DYNAMICS`, :data:`G_MAPS`.
    area_ref : float
        Area (m²) of the reference ("big") device, used for defaults.
    scheme : PulseScheme
        The nominal programming scheme (potentiation pulse, strong reset, read voltage).
    name, provenance :
        Free text name, and provenance of a fitted card (data set hash, fit date, tool
        version, per-parameter standard errors).
    """

    g_min_density: float = 6.366e6
    g_max_density: float = 6.366e7
    v_nl: float = 0.6
    v_p: float = 0.86
    v0_p: float = 0.12
    beta_p: float = 0.5
    v_d: float = 1.0
    v0_d: float = 0.12
    beta_d: float = 1.0
    eps_bound: float = 1e-3
    c2c_sigma: float = 0.34
    d2d_g_sigma: float = 0.1
    d2d_v_sigma: float = 0.01
    n_f: float = 2.0
    n_r: float = 10.0
    r_series: float = 0.0
    gamma_p: float = 1.0
    gamma_d: float = 1.0
    read_model: str = "sinh"
    dynamics: str = "threshold"
    g_map: str = "linear"
    area_ref: float = field(default_factory=lambda: area_from_diameter(1e-6))
    scheme: PulseScheme = field(default_factory=PulseScheme)
    name: str = "motiox-reference"
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.scheme, dict):
            self.scheme = PulseScheme(**self.scheme)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first parameter that is out of its bounds."""
        for name, (lo, hi, unit, _desc) in PARAMETER_INFO.items():
            raw = value = getattr(self, name)
            if raw is None and name in STATISTICAL_PARAMETERS:
                continue  # not estimated from the data (see statistic())
            try:
                value = float(value)  # accepts NumPy scalars; rejects strings, arrays
            except (TypeError, ValueError):
                raise UserInputError(f"ModelCard.{name} must be a number, got {value!r}") from None
            if isinstance(raw, (str, bytes)) or not math.isfinite(value):
                raise UserInputError(f"ModelCard.{name} must be a finite number, got {raw!r}")
            setattr(self, name, value)
            if not lo <= value <= hi:
                raise UserInputError(f"ModelCard.{name} = {value} {unit} is outside [{lo}, {hi}]")
        if self.g_max_density <= self.g_min_density:
            raise UserInputError("ModelCard.g_max_density must exceed g_min_density")
        if not 0 < self.eps_bound < 0.1:
            raise UserInputError("ModelCard.eps_bound must be in (0, 0.1)")
        if not self.area_ref > 0:
            raise UserInputError("ModelCard.area_ref must be positive (m^2)")
        for name, allowed in (("read_model", READ_MODELS), ("dynamics", DYNAMICS),
                              ("g_map", G_MAPS)):
            if getattr(self, name) not in allowed:
                raise UserInputError(f"ModelCard.{name} = {getattr(self, name)!r}; expected one of "
                                 f"{list(allowed)}")

    def statistic(self, name: str) -> float:
        """Value of a statistic (``c2c_sigma``, ``d2d_g_sigma``, ``d2d_v_sigma``); raises
        ``ValueError`` when the card says it was not estimated (``None``)."""
        value = getattr(self, name)
        if value is None:
            raise UserInputError(f"model card {self.name!r}: {name} was not estimated from its "
                             f"data (null in the card); set it explicitly, e.g. "
                             f"card.replace({name}=...)")
        return float(value)

    @property
    def not_estimated(self) -> list[str]:
        """Statistics stored as not estimated (``None``)."""
        return [n for n in STATISTICAL_PARAMETERS if getattr(self, n) is None]

    # ------------------------------------------------------------------ family
    @property
    def family(self) -> str:
        """``"<read_model>/<dynamics>/<g_map>"``, e.g. ``"sinh/threshold/linear"``."""
        return f"{self.read_model}/{self.dynamics}/{self.g_map}"

    @property
    def is_default_family(self) -> bool:
        """True for the Mo/TiOx equations (sinh/threshold/linear, no series resistance)."""
        return self.family == "sinh/threshold/linear" and self.r_series == 0.0

    def require_default_family(self, what: str) -> None:
        """Raise ``ValueError`` when ``what`` (a layer that implements only the Mo/TiOx
        equations: the network's device model, the tile surrogate) is given a card of another
        family, instead of silently reading parameters the family does not use."""
        if not self.is_default_family:
            extra = f", r_series {self.r_series:g} Ohm" if self.r_series > 0 else ""
            raise UserInputError(f"{what} implements the sinh/threshold/linear (Mo/TiOx) cell "
                             f"without series resistance; card {self.name!r} is "
                             f"{self.family}{extra}")

    def equation_parameters(self) -> tuple[str, ...]:
        """Names of the parameters the family's equations use (``r_series`` when > 0)."""
        names = (FAMILY_PARAMETERS["common"] + FAMILY_PARAMETERS[self.read_model]
                 + FAMILY_PARAMETERS[self.dynamics])
        return names + (("r_series",) if self.r_series > 0 else ())

    # ------------------------------------------------------------ derived values
    @property
    def c_p(self) -> float:
        """Potentiation curvature coefficient ``c_p = 1 - exp(-beta_p)``."""
        return -math.expm1(-self.beta_p)

    @property
    def c_d(self) -> float:
        """Depression curvature coefficient ``c_d = 1 - exp(-beta_d)``."""
        return -math.expm1(-self.beta_d)

    def g_min(self, area: float | None = None) -> float:
        """Low-field conductance (S) at x = 0 of a cell of ``area`` m² (default ``area_ref``)."""
        return self.g_min_density * (self.area_ref if area is None else area)

    def g_max(self, area: float | None = None) -> float:
        """Low-field conductance (S) at x = 1 of a cell of ``area`` m² (default ``area_ref``)."""
        return self.g_max_density * (self.area_ref if area is None else area)

    @property
    def on_off(self) -> float:
        """Low-field on/off ratio ``g_max / g_min``."""
        return self.g_max_density / self.g_min_density

    def n_states(self, v_pulse: float | None = None, t_pulse: float | None = None,
                 polarity: str = "p") -> float:
        """Number of identical pulses that take the state across its range (closed form).

        threshold dynamics: ``N = beta / (c r(V) t_w)`` (``1 / (r t_w)`` when beta = 0), the
        pulses from one bound to the other. soft_bounds dynamics (never reaches a bound when
        gamma >= 1): the pulses that take the distance to the bound from 1 to
        ``1 - SOFT_BOUNDS_SPAN`` (98 % of the range), ``ln(50) / (r t_w)`` for gamma = 1,
        ``(u1^(1-g) - 1) / ((g - 1) r t_w)`` otherwise. The rate is taken at the pulse
        voltage (the drop on ``r_series`` is neglected). Nominal potentiation pulse by
        default; ``polarity='d'`` uses the depression kinetics and needs ``v_pulse`` < 0.
        May be ``inf`` (no switching) or huge; never used to size an array.
        """
        from .model import rate_depression, rate_potentiation  # local: avoids a cycle

        if polarity == "p":
            v = self.scheme.v_set if v_pulse is None else v_pulse
            t = self.scheme.t_set if t_pulse is None else t_pulse
            r, beta, c = float(rate_potentiation(v, self)), self.beta_p, self.c_p
            gamma = self.gamma_p
        elif polarity == "d":
            if v_pulse is None:
                raise UserInputError("n_states(polarity='d') needs v_pulse (< 0)")
            t = self.scheme.t_reset if t_pulse is None else t_pulse
            r, beta, c = float(rate_depression(v_pulse, self)), self.beta_d, self.c_d
            gamma = self.gamma_d
        else:
            raise UserInputError("polarity must be 'p' or 'd'")
        if r <= 0:
            return math.inf
        if self.r_series > 0:
            return self._n_states_series(v, t, polarity)
        if self.dynamics == "soft_bounds":
            u1 = 1.0 - SOFT_BOUNDS_SPAN
            if abs(gamma - 1.0) < 1e-9:
                tau = -math.log(u1)
            else:
                tau = (u1 ** (1.0 - gamma) - 1.0) / (gamma - 1.0)
            return tau / (r * t)
        return (1.0 / (r * t)) if abs(beta) < 1e-12 else beta / (c * r * t)

    def _n_states_series(self, v: float, t: float, polarity: str, points: int = 400) -> float:
        """Pulses across the range when a series resistance takes part of the pulse: the
        junction voltage, and with it the rate, depends on the state, so
        ``N = integral dx / (r(V_j(x)) f(x) t)`` over the range (98 % of it for soft bounds,
        ``1 - eps_bound`` for threshold dynamics) by the trapezoidal rule on ``points``
        states of the reference area (bounded cost, never sized by N)."""
        import numpy as np

        from .model import junction_voltage, rate_depression, rate_potentiation, state_factors

        span = SOFT_BOUNDS_SPAN if self.dynamics == "soft_bounds" else 1.0 - self.eps_bound
        if polarity == "p":
            x = np.linspace(0.0, span, points)
        else:
            x = np.linspace(1.0, 1.0 - span, points)
        vj = junction_voltage(np.full(points, float(v)), x, self.area_ref, self)
        fp, fd = state_factors(x, self)
        speed = (rate_potentiation(vj, self) * fp if polarity == "p"
                 else rate_depression(vj, self) * fd) * t
        if np.any(speed <= 0) or not np.all(np.isfinite(speed)):
            return math.inf
        return float(np.trapezoid(1.0 / speed, dx=span / (points - 1)))

    # ----------------------------------------------------------------- I/O
    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready) of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelCard":
        """Build a card from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        data = dict(data)
        data.pop("units", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UserInputError(f"unknown model-card keys: {sorted(unknown)}")
        return cls(**data)

    def save(self, path: str | Path) -> Path:
        """Write the card as JSON (with a ``units`` table for the reader)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        out = self.to_dict()
        out["units"] = {k: v[2] for k, v in PARAMETER_INFO.items()} | {
            "eps_bound": "1", "area_ref": "m^2", "scheme": "V, s"}
        tmp = path.with_name(path.name + ".tmp")  # atomic: never a half-written card
        tmp.write_text(json.dumps(out, indent=2, sort_keys=False) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ModelCard":
        """Read a card written by :meth:`save`.

        Every parameter the card's family uses (and the three statistics, ``null`` allowed)
        must be in the file: a missing one is an error naming it, never a default.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{path}: not a JSON model card ({exc})") from exc
        if not isinstance(data, dict):
            raise UserInputError(f"{path}: not a JSON model card (top level is not an object)")
        try:
            card = cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise UserInputError(f"{path}: {exc}") from None
        missing = [n for n in card.equation_parameters() + STATISTICAL_PARAMETERS
                   if n not in data]
        if missing:
            raise UserInputError(f"{path}: model card lacks {missing} (family {card.family}); "
                             f"a card must give every parameter its family uses")
        return card

    @classmethod
    def reference(cls) -> "ModelCard":
        """The paper-like reference card used to generate the synthetic data set.

        1 µm diameter device: G_min = 5 µS, G_max = 50 µS at low field; 50 states for the
        nominal +1.8 V / 10 µs pulse; δ/μ = 0.34 (Choi et al. 2021, Fig. 3E).
        """
        return cls()

    def replace(self, **changes: Any) -> "ModelCard":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def stamp(self, **info: Any) -> None:
        """Add provenance entries (with the current UTC time and tool version)."""
        from .. import __version__

        self.provenance.update(info)
        self.provenance.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat())
        self.provenance.setdefault("tool", f"pyspice-rram {__version__}")
