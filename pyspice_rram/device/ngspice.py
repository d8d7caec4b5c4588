"""ngspice form of the compact model: behavioural subcircuits generated from a model card.

ngspice 39 has no Verilog-A loader, so the cell is written with B-sources; the expressions
are those of :mod:`pyspice_rram.device.model` with the card's numbers inlined (17 significant
digits, so the forms agree to round-off). Every family of :mod:`pyspice_rram.device.card` is
generated; the family is fixed into the text (``x_c = max(0, min(1, x))``)::

    g(x)        linear  g_min + (g_max - g_min) x_c        log  g_min exp(x_c ln(g_max/g_min))
    I_j(V_j)    sinh    A g(x) V_nl sinh(V_j / V_nl)
                schottky A g(x) c (exp(V_j / v_f) - exp(-V_j / v_r)),  c = v_f v_r / (v_f + v_r)
                linear  A g(x) V_j
    f_p, f_d    threshold    (1 - c_p x) w(1 - x),  (1 - c_d (1 - x)) w(x)
                soft_bounds  max(0, 1 - x)^gamma_p, max(0, x)^gamma_d  (0 at a zero base)
    dx/dt       kappa [r_p(V_j) f_p(x) - r_d(V_j) f_d(x)]

With ``r_series = 0`` the junction is the cell, ``V_j = V(t, b)``. With ``r_series > 0``
each subcircuit has an internal node ``j``, a real resistor ``Rser t j <r_series>`` and the
B-sources driven by ``V_j = V(j, b)``; ngspice solves ``V = V_j + r_series I_j(V_j)``.

Subcircuits in the generated library (``.lib``/``.include`` file):

``motiox_read t b area=<m^2> x=<state>``
    Static read cell at a programmed state: ``I = I_j(V_j, x)`` (default family
    ``I = A g(x) V_nl sinh(V/V_nl)``). Used for crossbar reads (DC operating points).
``motiox_core t b x r area=<m^2> kappa=1``
    The cell with its state as the voltage of node ``x`` and ``V(r) = dx/dt``: lets a DC
    analysis probe the rate at a forced state.
``motiox t b area=<m^2> x0=<state> kappa=1``
    The dynamic cell: state on a 1 F capacitor integrating ``dx/dt`` for t > 0; at t = 0
    (operating point, ``.op``, ``.dc``) the state is held at ``x0``, so ``tran`` works with
    or without ``uic``.
    ``kappa`` scales the switching rate (cycle-to-cycle noise hook: alter it between pulses).

One function per part of the model builds its expression (:func:`conductance_expression`,
:func:`iv_prefactor` / :func:`iv_shape_expression`, :func:`current_expression`,
:func:`rate_potentiation_expression`, :func:`rate_depression_expression`,
:func:`state_factor_expressions`, :func:`rate_expression`); the crossbar netlists of
:mod:`pyspice_rram.circuit.netlist` use the same functions.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

from ..spice.format import fmt
from .card import RATE_REF, THERMAL_VOLTAGE, ModelCard

#: Name of the internal junction node of the subcircuits when ``r_series`` > 0.
JUNCTION_NODE = "j"


def conductance_expression(card: ModelCard, x: str) -> str:
    """ngspice expression of the low-field conductance per area ``g(x)`` (S/m²).

    linear: ``g_min + (g_max - g_min) x_c``; log: ``g_min exp(x_c ln(g_max / g_min))``, with
    ``x_c = max(0, min(1, x))`` and ``x`` a sub-expression.
    """
    gmin, gmax = fmt(card.g_min_density), fmt(card.g_max_density)
    xc = f"max(0,min(1,{x}))"
    if card.g_map == "log":
        return f"{gmin}*exp({xc}*{fmt(math.log(card.g_max_density / card.g_min_density))})"
    return f"({gmin}+({gmax}-{gmin})*{xc})"


def schottky_voltages(card: ModelCard) -> tuple[float, float, float]:
    """``(v_f, v_r, c)`` of the schottky read (V): ``v_f = n_f V_T``, ``v_r = n_r V_T``,
    ``c = v_f v_r / (v_f + v_r)`` (so that the low-field slope is 1)."""
    vf, vr = card.n_f * THERMAL_VOLTAGE, card.n_r * THERMAL_VOLTAGE
    return vf, vr, vf * vr / (vf + vr)


def iv_prefactor(card: ModelCard) -> float:
    """Constant factor (V) of the read law ``I_j = A g(x) * prefactor * shape(V_j)``:
    ``V_nl`` (sinh), ``c = v_f v_r / (v_f + v_r)`` (schottky), 1 (linear)."""
    if card.read_model == "sinh":
        return card.v_nl
    if card.read_model == "schottky":
        return schottky_voltages(card)[2]
    return 1.0


def iv_shape_expression(card: ModelCard, v: str) -> str:
    """ngspice expression of the dimensionless read shape of the junction voltage ``v``.

    sinh ``sinh(V / V_nl)``; schottky ``exp(V / v_f) - exp(-V / v_r)``; linear ``V`` (the
    text of ``v`` as given: pass it parenthesised when it is not a single term).
    """
    if card.read_model == "sinh":
        return f"sinh({v}/{fmt(card.v_nl)})"
    if card.read_model == "schottky":
        vf, vr, _c = schottky_voltages(card)
        return f"(exp({v}/{fmt(vf)})-exp(-{v}/{fmt(vr)}))"
    return v


def current_expression(card: ModelCard, v: str, x: str, area: str) -> str:
    """ngspice expression of the junction current ``I_j = A g(x) prefactor shape(V_j)`` (A)
    for junction-voltage/state/area sub-expressions (the cell current when ``r_series`` = 0).
    """
    pre = "" if card.read_model == "linear" else f"*{fmt(iv_prefactor(card))}"
    return (f"({area})*{conductance_expression(card, x)}{pre}*"
            f"{iv_shape_expression(card, f'({v})')}")


def rate_potentiation_expression(card: ModelCard, v: str) -> str:
    """``r_p(V) = R0 max(0, exp((V - V_p)/V_0p) - exp(-V_p/V_0p))`` (s^-1) of the junction
    voltage sub-expression ``v``."""
    return (f"{fmt(RATE_REF)}*max(0,exp((({v})-{fmt(card.v_p)})/{fmt(card.v0_p)})"
            f"-{fmt(float(math.exp(-card.v_p / card.v0_p)))})")


def rate_depression_expression(card: ModelCard, v: str) -> str:
    """``r_d(V) = R0 max(0, exp((-V - V_d)/V_0d) - exp(-V_d/V_0d))`` (s^-1)."""
    return (f"{fmt(RATE_REF)}*max(0,exp((-({v})-{fmt(card.v_d)})/{fmt(card.v0_d)})"
            f"-{fmt(float(math.exp(-card.v_d / card.v0_d)))})")


def _power_expression(u: str, gamma: float) -> str:
    """``max(0, u)^gamma`` without evaluating ``pow`` at a zero base (its derivative is not
    finite there for gamma < 1): ``u`` itself for gamma = 1, else a ternary."""
    if gamma == 1.0:
        return f"max(0,{u})"
    return f"(({u})>0?pow({u},{fmt(gamma)}):0)"


def state_factor_expressions(card: ModelCard, x: str) -> tuple[str, str]:
    """ngspice expressions ``(f_p(x), f_d(x))`` of the state dependence of the rates.

    threshold: ``(1 - c_p x) w(1 - x)``, ``(1 - c_d (1 - x)) w(x)`` with
    ``w(u) = min(1, max(0, u / eps_bound))``; soft_bounds: ``max(0, 1 - x)^gamma_p``,
    ``max(0, x)^gamma_d``.
    """
    if card.dynamics == "soft_bounds":
        return (_power_expression(f"1-({x})", card.gamma_p),
                _power_expression(f"({x})", card.gamma_d))
    eps = fmt(card.eps_bound)
    wp = f"min(1,max(0,(1-({x}))/{eps}))"
    wd = f"min(1,max(0,({x})/{eps}))"
    return (f"(1-{fmt(card.c_p)}*({x}))*{wp}", f"(1-{fmt(card.c_d)}*(1-({x})))*{wd}")


def rate_expression(card: ModelCard, v: str, x: str, kappa: str = "1") -> str:
    """ngspice expression of ``dx/dt = kappa [r_p(V_j) f_p(x) - r_d(V_j) f_d(x)]`` (s^-1) for
    junction-voltage and state sub-expressions."""
    fp, fd = state_factor_expressions(card, x)
    up = f"{rate_potentiation_expression(card, v)}*{fp}"
    dn = f"{rate_depression_expression(card, v)}*{fd}"
    return f"({kappa})*({up}-{dn})"


def cell_library(card: ModelCard, *, area: float | None = None) -> str:
    """Text of an ngspice library with the three subcircuits for ``card``.

    Parameters
    ----------
    card : ModelCard
        The parameter set; its family selects the expressions, ``r_series`` > 0 adds the
        internal junction node ``j`` and ``Rser t j <r_series>`` to each subcircuit.
    area : float, optional
        Default ``area`` (m²) of the subcircuits; the card's ``area_ref`` if omitted.
    """
    a = fmt(card.area_ref if area is None else area)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    series = card.r_series > 0
    j = JUNCTION_NODE if series else "t"
    vj = f"v({j},b)"
    rser = [f"Rser t {JUNCTION_NODE} {fmt(card.r_series)}"] if series else []
    i_read = current_expression(card, vj, "{x}", "{area}")
    i_dyn = current_expression(card, vj, "v(x)", "{area}")
    rate = rate_expression(card, vj, "v(x)", "{kappa}")
    head = [f"* pyspice-rram Mo/TiOx cell library, card '{card.name}' ({stamp})",
            "* generated by pyspice_rram.device.ngspice.cell_library -- do not edit"]
    if not card.is_default_family:
        head.append(f"* family {card.family}, r_series = {fmt(card.r_series)} ohm")
    return "\n".join(head + [
        f".subckt motiox_read t b area={a} x=0",
        *rser,
        f"Bcell {j} b I={i_read}",
        ".ends motiox_read",
        f".subckt motiox_core t b x r area={a} kappa=1",
        *rser,
        f"Bcell {j} b I={i_dyn}",
        f"Brate r 0 V={rate}",
        ".ends motiox_core",
        f".subckt motiox t b area={a} x0=0 kappa=1",
        "Xcore t b x r motiox_core area={area} kappa={kappa}",
        "Cstate x 0 1 IC={x0}",
        # t > 0: C dx/dt = V(r). At t = 0 (operating point, .op/.dc) hold x = x0, so the
        # cell also works without uic (a bare current source left node x singular).
        "Bstate 0 x I=time > 0 ? V(r) : ({x0} - V(x))",
        ".ends motiox",
        "",
    ])


def write_cell_library(card: ModelCard, path: str | Path, **kwargs) -> Path:
    """Write :func:`cell_library` to ``path`` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cell_library(card, **kwargs))
    return path
