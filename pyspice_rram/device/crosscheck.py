"""Cross-checks of the three forms of the cell model (NumPy, ngspice, Verilog-A).

The tests (``tests/device``) and the device-model figures use these helpers; they are also
what a user runs to check a fitted card in their own ngspice:

* :func:`run_ngspice` / :func:`read_raw` -- run ``ngspice -b`` on a netlist in a
  subprocess and read its rawfile (binary: full double precision), through the simulator
  layer :mod:`pyspice_rram.spice`;
* :func:`ngspice_dc_grid` -- DC operating points of ``motiox_core`` (state forced by a
  voltage source) and ``motiox_read`` on a dense (V, x) grid at several areas, in one
  nested ``.dc`` sweep;
* :func:`ngspice_pulse_train` -- a transient of the dynamic ``motiox`` cell under a
  trapezoidal (PWL) pulse train, sampled after every pulse;
* :func:`equivalent_width` -- the width of the rectangular pulse that has exactly the
  effect of a trapezoidal one, so the NumPy pulse simulator (rectangular pulses) can be
  compared with a transient that has finite edges.

Why :func:`equivalent_width` is exact: under one polarity the model ODE is separable,
``dx / f(x) = r(V(t)) dt`` with ``f`` a function of x only (curvature and window), so the
state after any single-polarity waveform depends only on ``integral r(V(t)) dt``. For a linear
edge from 0 to V in ``t_e`` with ``r(V) = R0 (exp((V - V_p)/V_0) - exp(-V_p/V_0))``::

    integral_edge = R0 t_e [ (V_0 / V) (exp((V - V_p)/V_0) - exp(-V_p/V_0)) - exp(-V_p/V_0) ]

and a trapezoid (two edges, flat top ``t_f``) equals a rectangle of width
``t_f + 2 integral_edge / r(V)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..spice import runner as _runner
from ..spice.format import control_block, fmt, index_pwl, options_line, time_pwl
from ..spice.raw import RawPlot
from ..spice.raw import read_raw as _read_plots
from .card import RATE_REF, ModelCard
from .ngspice import cell_library

#: ngspice version that loads OSDI objects (``pre_osdi``).
OSDI_MIN_VERSION = 39


# ----------------------------------------------------------------------- ngspice runs
def ngspice_executable() -> str | None:
    """Path of the ``ngspice`` program, or None when it is not installed."""
    return _runner.ngspice_executable(required=False)


def read_raw(path: str | Path) -> list[dict[str, np.ndarray]]:
    """Read an ngspice rawfile (binary or ASCII) into one ``{vector name: array}`` per plot.

    Vector names are lower case as ngspice writes them (``v(in)``, ``i(vm1)``,
    ``v(xcell.x)``); the ``"plotname"`` key holds the plot's name
    (:meth:`pyspice_rram.spice.raw.RawPlot.to_dict` of :func:`pyspice_rram.spice.raw.read_raw`).
    """
    return [plot.to_dict() for plot in _read_plots(path)]


def _run(netlist: str, timeout: float) -> RawPlot:
    """The last plot of ``netlist`` run with ``ngspice -b`` (see :func:`run_ngspice`)."""
    return _runner.run(netlist, mode="batch", timeout=timeout, stem="circuit").plot


def run_ngspice(netlist: str, *, timeout: float = 120.0, workdir: str | Path | None = None
                ) -> list[dict[str, np.ndarray]]:
    """Run ``ngspice -b`` on ``netlist`` (full text, analyses included) and read the result
    as :func:`read_raw` does.

    ``workdir``: folder where the netlist is kept (``circuit.cir``). Raises
    :class:`~pyspice_rram.spice.errors.NgspiceError` subclasses (``RuntimeError`` too) with
    ngspice's log when ngspice fails, writes no data or passes ``timeout`` (s).
    """
    res = _runner.run(netlist, mode="batch", timeout=timeout, keep_dir=workdir, stem="circuit")
    return [plot.to_dict() for plot in res.plots]


# ------------------------------------------------------------------------- DC grid
@dataclass
class DCGrid:
    """ngspice DC operating points on a (V, x) grid.

    Attributes
    ----------
    v, x : (n,) arrays -- the cell voltage (V) and forced state of each point, read back
        from ngspice (so the NumPy form can be evaluated at exactly the same numbers)
    areas : (k,) array, m²
    current : (k, n) array -- ``motiox_core`` current (A) t -> b for each area
    rate : (n,) array -- ``V(r) = dx/dt`` (s^-1) of ``motiox_core``
    read_states : (j,) array -- the ``x`` parameters of the ``motiox_read`` instances
    read_current : (j, n) array -- their currents (A), area ``areas[0]``
    """

    v: np.ndarray
    x: np.ndarray
    areas: np.ndarray
    current: np.ndarray
    rate: np.ndarray
    read_states: np.ndarray
    read_current: np.ndarray


def ngspice_dc_grid(card: ModelCard, v_values, x_values, areas, read_states=(),
                    *, kappa: float = 1.0, reltol: float = 1e-9, abstol: float = 1e-18,
                    vntol: float = 1e-12, timeout: float = 120.0) -> DCGrid:
    """DC operating points of the generated subcircuits on the grid ``v_values x x_values``.

    One netlist and one nested ``.dc`` sweep of two index sources: the cell voltage and the
    state node of every ``motiox_core`` are B-sources ``pwl(V(index), 0, value0, 1, value1,
    ...)`` of index sources swept over ``0, 1, 2, ...``, so any (non-uniform) grid values are
    applied exactly; ammeters (0 V sources) measure each cell current.

    Parameters
    ----------
    card : ModelCard
    v_values : array_like
        Cell voltages (V), any order and spacing.
    x_values : array_like
        States to force (any values, outside [0, 1] allowed to test the clipping).
    areas : array_like
        Areas (m²) of the ``motiox_core`` instances.
    read_states : array_like
        States of extra ``motiox_read`` instances (area ``areas[0]``).
    kappa : float
        Rate multiplier passed to ``motiox_core``.
    reltol : float
        ngspice ``reltol``. The default 1e-3 lets a DC-sweep point stop after the Newton
        step that linearised the cell at the previous sweep point, a relative error of
        about ``(dV / V_nl)^2 / 2`` in the current; 1e-9 forces the extra iteration.
    abstol, vntol : float
        ngspice ``abstol`` (A) and ``vntol`` (V). ngspice's defaults (1 pA, 1 µV) also let a point
        stop on the linearisation: a linear read cell converges at once, and the rate node
        ``V(r)`` (a B-source of the forced voltages) and the internal junction node of a
        cell with series resistance then keep the previous point's linearisation error
        (nV ... µV); 1e-18 A and 1e-12 V force the extra iteration.
    """
    v_values = np.atleast_1d(np.asarray(v_values, float))
    x_values = np.atleast_1d(np.asarray(x_values, float))
    areas = np.atleast_1d(np.asarray(areas, float))
    read_states = np.atleast_1d(np.asarray(read_states, float))
    lines = ["* pyspice-rram: DC grid of motiox_core / motiox_read", cell_library(card),
             "Viv iv 0 0", f"Bin in 0 V={index_pwl('V(iv)', v_values)}",
             "Vix ix 0 0", f"Bx xs 0 V={index_pwl('V(ix)', x_values)}"]
    for k, a in enumerate(areas):
        lines += [f"Vm{k} in t{k} 0",
                  f"Xc{k} t{k} 0 xs r{k} motiox_core area={fmt(a)} kappa={fmt(kappa)}"]
    for j, xr in enumerate(read_states):
        lines += [f"Vr{j} in u{j} 0", f"Xr{j} u{j} 0 motiox_read area={fmt(areas[0])} x={fmt(xr)}"]
    lines += [options_line(dict(reltol=reltol, abstol=abstol, vntol=vntol), klu=True),
              f".dc Viv 0 {v_values.size - 1} 1 Vix 0 {x_values.size - 1} 1",
              ".end", ""]
    plot = _run("\n".join(lines), timeout)
    v = plot["v(in)"]
    x = plot["v(xs)"]
    current = np.array([plot[f"i(vm{k})"] for k in range(areas.size)])
    rate = plot["v(r0)"]
    read_current = np.array([plot[f"i(vr{j})"] for j in range(read_states.size)]).reshape(
        read_states.size, v.size)
    return DCGrid(v=v, x=x, areas=areas, current=current, rate=rate,
                  read_states=read_states, read_current=read_current)


# ---------------------------------------------------------------------- pulse trains
def edge_rate_integral(card: ModelCard, v: float, t_edge: float,
                       v_threshold: float | None = None) -> float:
    """``integral r(V(t)) dt`` (dimensionless) over a linear edge between 0 and ``v`` (V)
    of duration ``t_edge`` (s); potentiation kinetics for ``v > 0``, depression for ``v < 0``.
    ``v_threshold`` overrides ``V_p`` / ``V_d``.
    """
    if v == 0 or t_edge == 0:
        return 0.0
    if v > 0:
        vt = card.v_p if v_threshold is None else v_threshold
        v0, mag = card.v0_p, v
    else:
        vt = card.v_d if v_threshold is None else v_threshold
        v0, mag = card.v0_d, -v
    base = math.exp(-vt / v0)
    return RATE_REF * t_edge * ((v0 / mag) * (math.exp((mag - vt) / v0) - base) - base)


def equivalent_width(card: ModelCard, v: float, t_flat: float, t_edge: float) -> float:
    """Width (s) of the rectangular pulse of amplitude ``v`` equivalent to a trapezoid with
    flat top ``t_flat`` (s) and two linear edges of ``t_edge`` (s) each (exact, see module
    docstring)."""
    if v > 0:
        r = RATE_REF * (math.exp((v - card.v_p) / card.v0_p) - math.exp(-card.v_p / card.v0_p))
    elif v < 0:
        r = RATE_REF * (math.exp((-v - card.v_d) / card.v0_d) - math.exp(-card.v_d / card.v0_d))
    else:
        return t_flat
    if r <= 0:
        return t_flat
    return t_flat + 2.0 * edge_rate_integral(card, v, t_edge) / r


@dataclass
class TransientTrain:
    """Result of :func:`ngspice_pulse_train`.

    Attributes
    ----------
    time, v, x : arrays of the transient (s, V, state)
    x_after : (n_pulses + 1,) array -- the state before the first pulse and after each pulse
        (sampled in the middle of the following gap, where the rate is exactly zero)
    pulse_start : (n_pulses,) array of the pulse start times (s)
    """

    time: np.ndarray
    v: np.ndarray
    x: np.ndarray
    x_after: np.ndarray
    pulse_start: np.ndarray


def pulse_train_pwl(v_pulse, t_flat, t_edge: float, t_gap: float) -> tuple[np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """Corner times (s) and values (V) of a PWL trapezoid train, and the pulse start times.

    Each period: ``t_gap / 2`` at 0 V, rising edge ``t_edge``, flat top ``t_flat``, falling
    edge ``t_edge``, ``t_gap / 2`` at 0 V.
    """
    v_pulse, t_flat = np.broadcast_arrays(np.atleast_1d(np.asarray(v_pulse, float)),
                                          np.atleast_1d(np.asarray(t_flat, float)))
    times, values, starts = [0.0], [0.0], []
    t = 0.0
    for vp, tf in zip(v_pulse, t_flat):
        t0 = t + t_gap / 2
        starts.append(t0)
        times += [t0, t0 + t_edge, t0 + t_edge + tf, t0 + 2 * t_edge + tf]
        values += [0.0, vp, vp, 0.0]
        t = t0 + 2 * t_edge + tf + t_gap / 2
    times.append(t)
    values.append(0.0)
    return np.array(times), np.array(values), np.array(starts)


def ngspice_pulse_train(card: ModelCard, v_pulse, t_flat, *, t_edge: float = 5e-9,
                        t_gap: float = 2e-6, area: float | None = None, x0: float = 0.0,
                        max_step: float | None = None, reltol: float = 1e-6,
                        osdi: str | Path | None = None, uic: bool = True,
                        timeout: float = 120.0) -> TransientTrain:
    """Transient of the dynamic cell under a trapezoidal pulse train in ngspice.

    By default the cell is the behavioural subcircuit ``motiox`` of
    :func:`pyspice_rram.device.ngspice.cell_library` (run with ``uic``, state capacitor
    ``IC = x0``, unless ``uic=False``). With ``osdi`` (a compiled ``motiox.va``, see
    :func:`pyspice_rram.device.veriloga.compile_osdi`) the Verilog-A module itself is
    simulated (ngspice's OSDI loader; the transient starts from its operating point, where
    the module holds ``x = x0``).

    Parameters
    ----------
    card : ModelCard
    v_pulse, t_flat : array_like or float
        Amplitude (V) and flat-top width (s) of each pulse.
    t_edge : float
        Rise and fall time (s) of each pulse.
    t_gap : float
        0 V time (s) between pulses (half before, half after each pulse).
    area : float, optional
        Cell area (m²), ``card.area_ref`` by default.
    x0 : float
        Initial state.
    max_step : float, optional
        Largest time step (s); by default 1/40 of the shortest flat top.
    reltol : float
        ngspice ``reltol`` (the state is a 1 F capacitor voltage of order 1, so this is
        about the local error per step in x).
    osdi : path, optional
        OSDI object of the Verilog-A module to simulate instead of the subcircuit.
    uic : bool
        Start the subcircuit's transient with ``uic`` (else from its operating point, where
        the subcircuit holds ``x = x0`` too). The OSDI run always starts from the operating
        point.
    """
    times, values, starts = pulse_train_pwl(v_pulse, t_flat, t_edge, t_gap)
    t_flat = np.atleast_1d(np.asarray(t_flat, float))
    if max_step is None:
        max_step = float(np.min(t_flat)) / 40.0
    area = card.area_ref if area is None else area
    lines = ["* pyspice-rram: pulse train on motiox", f"Vp in 0 {time_pwl(times, values)}"]
    if osdi is None:
        lines += [cell_library(card), f"Xcell in 0 motiox area={fmt(area)} x0={fmt(x0)}"]
        uic_kw, node, offset = (" uic" if uic else ""), "v(xcell.x)", 0.0
    else:
        _runner.require_version(OSDI_MIN_VERSION, "OSDI (pre_osdi)")
        lines += [".model motiox_va motiox", f"Ncell in 0 motiox_va area={fmt(area)} x0={fmt(x0)}",
                  *control_block([f"pre_osdi {Path(osdi).resolve()}"])]
        uic_kw, node, offset = "", "v(ncell#x)", x0
    lines += [options_line(dict(reltol=reltol, abstol=1e-15, vntol=1e-9, chgtol=1e-16), klu=True),
              f".tran {fmt(max_step)} {fmt(times[-1])} 0 {fmt(max_step)}{uic_kw}",
              ".end", ""]
    plot = _run("\n".join(lines), timeout)
    time, v, x = plot["time"], plot["v(in)"], plot[node] + offset
    sample = np.r_[starts[0] / 2, np.r_[starts[1:], times[-1]] - t_gap / 4]
    x_after = np.interp(sample, time, x)
    return TransientTrain(time=time, v=v, x=x, x_after=x_after, pulse_start=starts)


def osdi_dc_currents(card: ModelCard, osdi: str | Path, v_values, x_values, area: float,
                     *, reltol: float = 1e-9, abstol: float = 1e-18, vntol: float = 1e-12,
                     timeout: float = 120.0) -> tuple[np.ndarray, np.ndarray]:
    """DC currents of the compiled Verilog-A module: one instance per state (``x0``), all
    across a swept source (index table, as in :func:`ngspice_dc_grid`).

    Returns ``(v, current)`` with ``current[j]`` the current (A) of the instance at
    ``x_values[j]`` for each swept voltage ``v`` (V). Tolerances as in
    :func:`ngspice_dc_grid` (a module with series resistance has an internal node).
    """
    v_values = np.atleast_1d(np.asarray(v_values, float))
    x_values = np.atleast_1d(np.asarray(x_values, float))
    lines = ["* pyspice-rram: DC currents of the OSDI motiox", ".model motiox_va motiox",
             "Viv iv 0 0", f"Bin in 0 V={index_pwl('V(iv)', v_values)}"]
    for j, xv in enumerate(x_values):
        lines += [f"Vm{j} in t{j} 0", f"N{j} t{j} 0 motiox_va area={fmt(area)} x0={fmt(xv)}"]
    _runner.require_version(OSDI_MIN_VERSION, "OSDI (pre_osdi)")
    lines += [*control_block([f"pre_osdi {Path(osdi).resolve()}"]),
              options_line(dict(reltol=reltol, abstol=abstol, vntol=vntol), klu=True),
              f".dc Viv 0 {v_values.size - 1} 1", ".end", ""]
    plot = _run("\n".join(lines), timeout)
    return plot["v(in)"], np.array([plot[f"i(vm{j})"] for j in range(x_values.size)])
