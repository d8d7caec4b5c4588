"""Transient check of the parallel outer-product update on a small array (ngspice, dynamic cells).

Scheme (Choi et al. 2021; row pulses encode the activation ``x``, column pulses the error
``δ``; a cell moves only where pulses overlap). Activations ``x_i`` in [0, 1] (sigmoid
outputs) and errors ``δ_j`` in [-1, 1]; time is cut into ``n_slots`` slots per phase::

    potentiation phase (slots s = 0 ... n_slots-1):
        row i    : +V_set/2 for the whole slot when s < n_i = round(x_i n_slots)
        column j : -V_set/2 for a fraction |δ_j| of the slot, if δ_j > 0
    depression phase (same slots):
        row i    : -V_dep/2 when s < n_i
        column j : +V_dep/2 for a fraction |δ_j| of the slot, if δ_j < 0

A selected cell sees the full ``V_set`` (or ``-V_dep``) for ``n_i |δ_j| T_on``, i.e. a time
proportional to ``x_i δ_j``; a half-selected cell (only its row or only its column pulsed)
sees at most ``V/2``, below the switching threshold. ``V_dep`` defaults to the depression
amplitude whose rate equals the potentiation rate at ``V_set``:
``V_dep = V_d + (V_set - V_p) V_0d / V_0p``.

The array is simulated in ngspice (:func:`update_netlist`) with the dynamic cell -- the
compiled Verilog-A module through ngspice's OSDI loader when OpenVAF is found (~7x faster),
else a two-B-source subcircuit of the same equations -- including row/column wire
resistance and driver resistance; only the cell states of the final idle half period are
saved. Two references: :func:`pyspice_rram.circuit.update_mna.update_reference` applies the
same sequence to the same circuit *with* its IR drop (sparse nodal analysis of the tile with
the model cells at the current states, exact advance of every cell per time slice), and
:func:`update_numpy` without any IR drop (every cell at its source difference). Reported:
ngspice's state change against the IR-drop reference (max / RMS, in state units and in
full-select pulses), the half-select disturb (row pulsed with column idle, and vice versa)
from both, the achieved low-field conductance change ``ΔG`` against the intended outer
product ``η x δ`` (``η`` fitted by least squares on the selected cells).

Cost of the transient (measured, docs/circuit.md): it is set by the number of distinct
column pulse widths (every column edge is an ngspice breakpoint, followed by ~15 steps
while the step regrows) times the number of cells.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..device.card import ModelCard
from ..device.model import advance
from ..device.ngspice import cell_library
from ..errors import UserInputError
from ..spice import runner as _runner
from ..spice.format import control_block, element, fmt, options_line, save_lines, time_pwl


@dataclass
class UpdateResult:
    """Outcome of :func:`update_check` (conductances in S, states dimensionless, times in s).

    ``x_final`` is ngspice's transient, ``x_final_ref`` the IR-drop-aware reference of
    :func:`pyspice_rram.circuit.update_mna.update_reference` (None without ``reference``),
    ``x_final_numpy`` the NumPy model without any IR drop (every cell at its source
    difference). ``timings``: ``netlist_s``, ``ngspice_s``, ``reference_s``, ``numpy_s``.
    """

    x_act: np.ndarray
    delta: np.ndarray
    x0: np.ndarray
    x_final: np.ndarray          # ngspice
    x_final_numpy: np.ndarray    # NumPy model, rectangular pulses, no IR drop
    dG: np.ndarray               # ngspice ΔG (S)
    dG_numpy: np.ndarray
    dG_target: np.ndarray        # η x δ (S)
    eta: float                   # S per unit x δ
    selected: np.ndarray         # bool mask
    half_selected: np.ndarray    # bool mask
    metrics: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    netlist: str = ""
    wall_s: float = 0.0
    x_final_ref: np.ndarray | None = None   # IR-drop-aware reference
    dG_ref: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    reference_stats: dict[str, Any] = field(default_factory=dict)


def pwl_corners(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Times (s) and values of a PWL source with the corners ``points`` after (0 s, 0 V); a
    corner that does not come after the previous one is moved 1 fs later (ngspice needs
    increasing times)."""
    times, values = [], []
    last = -1.0
    for t, v in [(0.0, 0.0)] + points:
        if t <= last:
            t = last + 1e-15
        times.append(t)
        values.append(v)
        last = t
    return times, values


def _pwl(points: list[tuple[float, float]]) -> str:
    """PWL text of :func:`pwl_corners` of ``points``."""
    return time_pwl(*pwl_corners(points))


def _trapezoid(t0: float, te: float, plateau: float, v: float) -> list[tuple[float, float]]:
    return [(t0, 0.0), (t0 + te, v), (t0 + te + plateau, v), (t0 + 2 * te + plateau, 0.0)]


@dataclass
class UpdatePulses:
    """The pulse sequence of one parallel update (:func:`update_pulses`): PWL corners
    ``(t s, V)`` of every row and column source, the schedule and the amplitudes (V)."""

    x_act: np.ndarray
    delta: np.ndarray
    n_slots: int
    t_on: float
    t_edge: float
    v_set: float
    v_dep: float
    period: float                      # slot period (s)
    t_stop: float                      # end of the sequence plus one idle period (s)
    n_i: np.ndarray                    # row pulses per phase
    col_w: np.ndarray                  # column pulse widths (s)
    col_on: np.ndarray                 # columns that pulse
    phases: tuple                      # (name, v_row, v_col, column mask) per phase
    rows_pts: list[list[tuple[float, float]]]
    cols_pts: list[list[tuple[float, float]]]

    @property
    def rows(self) -> int:
        """Number of row lines."""
        return len(self.x_act)

    @property
    def cols(self) -> int:
        """Number of column lines."""
        return len(self.delta)


def update_pulses(card: ModelCard, x_act: Any, delta: Any, *, n_slots: int = 10,
                  t_on: float | None = None, t_edge: float = 10e-9,
                  v_set: float | None = None, v_dep: float | None = None) -> UpdatePulses:
    """Row and column pulse trains of the parallel update scheme (module docstring); the
    arguments are those of :func:`update_check`."""
    xa = np.asarray(x_act, dtype=float).ravel()
    de = np.asarray(delta, dtype=float).ravel()
    if np.any((xa < 0) | (xa > 1)) or not np.all(np.isfinite(xa)):
        raise UserInputError("x_act must be in [0, 1]")
    if np.any(np.abs(de) > 1) or not np.all(np.isfinite(de)):
        raise UserInputError("delta must be in [-1, 1]")
    if n_slots < 1:
        raise UserInputError("n_slots >= 1 required")
    R, C = len(xa), len(de)
    t_on = card.scheme.t_set if t_on is None else float(t_on)
    v_set = card.scheme.v_set if v_set is None else float(v_set)
    if v_dep is None:
        v_dep = card.v_d + (v_set - card.v_p) * card.v0_d / card.v0_p
    te = float(t_edge)
    period = t_on + 6 * te
    n_i = np.round(xa * n_slots).astype(int)
    # column plateau so that the equivalent rectangular width (plateau + te) is |δ| t_on
    col_w = np.abs(de) * t_on
    col_on = col_w > te

    rows_pts: list[list[tuple[float, float]]] = [[] for _ in range(R)]
    cols_pts: list[list[tuple[float, float]]] = [[] for _ in range(C)]
    phases = (("p", +v_set / 2, -v_set / 2, de > 0), ("d", -v_dep / 2, +v_dep / 2, de < 0))
    for ph, (name, v_row, v_col, col_sel) in enumerate(phases):
        for s in range(n_slots):
            t0 = (ph * n_slots + s) * period
            for i in range(R):
                if s < n_i[i]:
                    rows_pts[i] += _trapezoid(t0, te, t_on + 2 * te, v_row)
            for j in range(C):
                if col_sel[j] and col_on[j]:
                    cols_pts[j] += _trapezoid(t0 + 2 * te, te, col_w[j] - te, v_col)
    t_stop = 2 * n_slots * period + period

    return UpdatePulses(xa, de, int(n_slots), t_on, te, v_set, v_dep, period, t_stop, n_i,
                        col_w, col_on, phases, rows_pts, cols_pts)


#: Netlist forms of the dynamic cell in the update transient (:func:`update_netlist`).
CELL_FORMS = ("auto", "osdi", "subckt")

#: ngspice version that loads OSDI objects (``pre_osdi``).
OSDI_MIN_VERSION = 39


def _osdi_object(card: ModelCard, cell: str) -> Path | None:
    """The compiled Verilog-A cell for ``cell='osdi'`` (errors raised) or ``'auto'`` (None
    when no compiler or no OSDI-capable ngspice is found); None for ``'subckt'``."""
    if cell not in CELL_FORMS:
        raise UserInputError(f"cell must be one of {CELL_FORMS}, got {cell!r}")
    if cell == "subckt":
        return None
    from ..device.veriloga import compile_osdi
    from ..spice.errors import CompilerError, NgspiceError

    try:
        _runner.require_version(OSDI_MIN_VERSION, "OSDI (pre_osdi)")
        return compile_osdi(card)
    except (CompilerError, NgspiceError, UserInputError):
        if cell == "osdi":
            raise
        return None


def _lean_cell_library(card: ModelCard) -> str:
    """The dynamic cell ``motiox_upd t b area= x0=`` for a ``tran ... uic`` run: the
    junction current and the state capacitor charged by ``dx/dt`` directly (two B-sources;
    the library's ``motiox`` adds a rate node and an operating-point switch, ~15 % slower).
    Same expressions (:func:`pyspice_rram.device.ngspice.current_expression`,
    :func:`~pyspice_rram.device.ngspice.rate_expression`); ``r_series`` = 0 cards only."""
    from ..device.ngspice import current_expression, rate_expression

    v = "v(t,b)"
    return "\n".join([
        f".subckt motiox_upd t b area={fmt(card.area_ref)} x0=0",
        f"Bcell t b I={current_expression(card, v, 'v(x)', '{area}')}",
        "Cstate x 0 1 IC={x0}",
        f"Bstate 0 x I={rate_expression(card, v, 'v(x)')}",
        ".ends motiox_upd"])


def update_netlist(card: ModelCard, pulses: UpdatePulses, x0: np.ndarray, *, area: float,
                   r_wire: float, r_driver: float, cell: str = "auto",
                   reltol: float = 1e-6) -> tuple[str, list[str], np.ndarray]:
    """ngspice netlist of one parallel update (transient), the saved state vectors and the
    offset to add to them.

    Rows ``Vr<i>`` drive node ``r<i>_0`` and columns ``Vc<j>`` node ``c<R-1>_<j>``, each
    through ``R_driver + R_wire``; ``R_wire`` per cell segment of every line. Only the cell
    states are saved, and only for the last half period (``.tran`` start time): the
    sequence ends with an idle period, so the last point is the final state.

    Parameters
    ----------
    card : ModelCard
    pulses : UpdatePulses
        The schedule (:func:`update_pulses`).
    x0 : ndarray (rows, cols)
        Initial states.
    area : float
        Cell area (m²).
    r_wire, r_driver : float
        Wire resistance per segment and driver resistance (Ω).
    cell : {'auto', 'osdi', 'subckt'}
        The dynamic cell: the compiled Verilog-A module through ngspice's OSDI loader
        (:func:`pyspice_rram.device.veriloga.compile_osdi`, ~7x faster to simulate) or the
        behavioural B-source subcircuit; ``'auto'``: OSDI when OpenVAF and an OSDI-capable
        ngspice are found.
    reltol : float
        ngspice ``reltol`` (about the local error per step of the state, a 1 F capacitor
        voltage of order 1).

    Returns
    -------
    netlist : str
    vectors : list of str
        Saved state vectors, row-major.
    offset : ndarray (rows * cols,)
        Added to the saved vectors gives the states (the OSDI module's node holds
        ``x - x0``).
    """
    P = pulses
    R, C = P.rows, P.cols
    t_on, t_stop = P.t_on, P.t_stop
    osdi = _osdi_object(card, cell)

    def rn(i: int, j: int) -> str:
        return f"r{i}_{j}" if r_wire > 0 else f"r{i}"

    def cn(i: int, j: int) -> str:
        return f"c{i}_{j}" if r_wire > 0 else f"c{j}"

    lines = [f"pyspice-rram parallel update check {R}x{C}, card '{card.name}'",
             f"* r_wire={fmt(r_wire)} r_driver={fmt(r_driver)} (ohm), cell "
             f"{'osdi' if osdi else 'subckt'}",
             options_line(dict(reltol=reltol, abstol=1e-15, vntol=1e-9), klu=True)]
    if osdi is not None:
        from ..device.veriloga import MODULE_NAME

        lines.append(f".model motiox_va {MODULE_NAME}")
    elif card.r_series > 0:
        lines.append(cell_library(card).rstrip())
    else:
        lines.append(_lean_cell_library(card))
    for i in range(R):
        r = r_driver + r_wire
        node = f"dr{i}" if r > 0 else rn(i, 0)
        lines.append(f"Vr{i} {node} 0 {_pwl(P.rows_pts[i])}")
        if r > 0:
            lines.append(element(f"Rdr{i}", f"dr{i}", rn(i, 0), value=r))
    for j in range(C):
        r = r_driver + r_wire
        node = f"dc{j}" if r > 0 else cn(R - 1, j)
        lines.append(f"Vc{j} {node} 0 {_pwl(P.cols_pts[j])}")
        if r > 0:
            lines.append(element(f"Rdc{j}", f"dc{j}", cn(R - 1, j), value=r))
    if r_wire > 0:
        lines += [element(f"Rr{i}_{j}", rn(i, j), rn(i, j + 1), value=r_wire)
                  for i in range(R) for j in range(C - 1)]
        lines += [element(f"Rc{i}_{j}", cn(i, j), cn(i + 1, j), value=r_wire)
                  for i in range(R - 1) for j in range(C)]
    if osdi is not None:
        lines += [f"Nc{i}_{j} {rn(i, j)} {cn(i, j)} motiox_va area={fmt(area)} "
                  f"x0={fmt(x0[i, j])}" for i in range(R) for j in range(C)]
        states = [f"v(nc{i}_{j}#x)" for i in range(R) for j in range(C)]
        offset, uic = x0.ravel().copy(), ""
    else:
        sub = "motiox" if card.r_series > 0 else "motiox_upd"
        lines += [element(f"Xc{i}_{j}", rn(i, j), cn(i, j), sub, area=area, x0=x0[i, j])
                  for i in range(R) for j in range(C)]
        states = [f"v(xc{i}_{j}.x)" for i in range(R) for j in range(C)]
        offset, uic = np.zeros(R * C), " uic"
    lines += save_lines(states)
    # output only from the middle of the final idle period on
    t_out = t_stop - P.period / 2
    lines.append(f".tran {fmt(t_on / 50)} {fmt(t_stop)} {fmt(t_out)} {fmt(t_on / 20)}{uic}")
    if osdi is not None:
        lines += control_block([f"pre_osdi {Path(osdi).resolve()}"])
    lines.append(".end")
    return "\n".join(lines) + "\n", states, offset


def update_numpy(card: ModelCard, pulses: UpdatePulses, x0: np.ndarray) -> np.ndarray:
    """States after the update with the NumPy model and *no* IR drop: every cell at its
    row-minus-column source voltage, rectangular pulses of the equivalent widths (row
    ``t_on + 3 t_edge``, column ``|δ| t_on``), exact advance per segment."""
    P = pulses
    R, C = P.rows, P.cols
    x_np = np.array(x0, dtype=float)
    T_row = P.t_on + 3 * P.t_edge                # equivalent width of a row pulse
    for _name, v_row, v_col, col_sel in P.phases:
        col_t = np.where(col_sel & P.col_on, P.col_w, 0.0)[None, :]
        for s in range(P.n_slots):
            row_act = (s < P.n_i)[:, None]
            vr = np.where(row_act, v_row, 0.0)
            vc = np.where(col_t > 0, v_col, 0.0)
            # overlap (both pulses; a lone column pulse on an idle row), then the rest of
            # the row pulse (an earlier form applied the lone column pulse twice)
            x_np = advance(x_np, vr - vc, np.broadcast_to(col_t, (R, C)), card)
            x_np = advance(x_np, np.broadcast_to(vr, (R, C)),
                           np.where(row_act, T_row - col_t, 0.0), card)
    return x_np


def update_check(card: ModelCard, x_act: Any, delta: Any, *, n_slots: int = 10,
                 t_on: float | None = None, t_edge: float = 10e-9,
                 v_set: float | None = None, v_dep: float | None = None,
                 x0: float | np.ndarray = 0.5, area: float | None = None,
                 r_wire: float = 1.0, r_driver: float = 10.0,
                 workdir: str | Path | None = None,
                 timeout: float | None = None, cell: str = "auto",
                 reference: bool = True, reltol: float = 1e-6) -> UpdateResult:
    """Simulate one parallel update of a ``len(x_act) x len(delta)`` array in ngspice and
    compare it with the IR-drop-aware reference.

    Parameters
    ----------
    card : ModelCard
    x_act : array_like (rows,)
        Activations in [0, 1], encoded as the number of row pulses ``round(x n_slots)``.
    delta : array_like (cols,)
        Errors in [-1, 1], encoded as the column pulse width ``|δ| t_on`` and its phase.
    n_slots : int
        Slots per phase (resolution of ``x``).
    t_on : float
        Slot width (s), default the card's ``scheme.t_set``.
    t_edge : float
        Pulse rise/fall time (s).
    v_set, v_dep : float
        Full-select potentiation / depression amplitudes (V, > 0); defaults in the module
        docstring.
    x0 : float or array
        Initial states.
    area : float
        Cell area (m²), default ``card.area_ref``.
    r_wire, r_driver : float
        Wire resistance per cell segment and driver output resistance (Ω).
    workdir : path, optional
        Folder where the netlist is kept (``update.cir``).
    timeout : float, optional
        Wall-clock limit (s) of the ngspice run
        (:data:`pyspice_rram.spice.runner.DEFAULT_TIMEOUT_S` when None).
    cell : {'auto', 'osdi', 'subckt'}
        Netlist form of the dynamic cell (:func:`update_netlist`).
    reference : bool
        Also run :func:`pyspice_rram.circuit.update_mna.update_reference` (the same update
        with IR drop, nodal analysis + exact advance) and report ngspice's error against it.
    reltol : float
        ngspice ``reltol``.

    Returns
    -------
    UpdateResult
        ``metrics`` (floats): the outer-product fit (``eta_S``, ``rms_error_rel``,
        ``max_error_rel``, ``corr``, ``sign_agreement``: ngspice's selected cells against
        ``η x δ``, relative to max |ΔG_target|); ``dx_pulse`` (state change of one
        full-select pulse of ``t_on`` at ``V_set`` from the mean ``x0``, no IR drop);
        ``ngspice_vs_irdrop_max_dx`` / ``_rms_dx`` (error of ngspice's state change against
        the IR-drop reference, in units of the full state range) and ``_max_pulses`` /
        ``_rms_pulses`` (the same in units of ``dx_pulse``); ``ngspice_vs_numpy_max_dx``
        (against the no-IR-drop model); half-select disturb ``half_row_max_dx`` (row pulsed,
        column idle) and ``half_col_max_dx`` (column pulsed, row idle) from ngspice and, with
        suffix ``_irdrop``, from the reference; ``unselected_max_dx``; the old relative
        forms ``half_selected_max_rel``, ``unselected_max_rel``, ``ngspice_vs_numpy_rel``,
        ``ngspice_vs_irdrop_rel``; wall times ``ngspice_s`` and ``reference_s``.
    """
    P = update_pulses(card, x_act, delta, n_slots=n_slots, t_on=t_on, t_edge=t_edge,
                      v_set=v_set, v_dep=v_dep)
    if r_wire < 0 or r_driver < 0:
        raise UserInputError("non-negative resistances required")
    xa, de, R, C = P.x_act, P.delta, P.rows, P.cols
    t_on, v_set, v_dep, te = P.t_on, P.v_set, P.v_dep, P.t_edge
    n_i, col_on, t_stop = P.n_i, P.col_on, P.t_stop
    area = card.area_ref if area is None else float(area)
    x0 = np.broadcast_to(np.asarray(x0, dtype=float), (R, C)).copy()
    if np.any((x0 < 0) | (x0 > 1)):
        raise UserInputError("x0 must be in [0, 1]")
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    netlist, states, offset = update_netlist(card, P, x0, area=area, r_wire=r_wire,
                                             r_driver=r_driver, cell=cell, reltol=reltol)
    timings["netlist_s"] = time.perf_counter() - t0
    # ngspice (a subprocess) runs while the references are computed here: the wall time of
    # the check is the longer of the two, not their sum
    from concurrent.futures import ThreadPoolExecutor

    def ngspice() -> tuple[np.ndarray, float]:
        t = time.perf_counter()
        d, _ = _run_tran(netlist, states, workdir, timeout)
        return d, time.perf_counter() - t

    t_all = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as pool:
        job = pool.submit(ngspice)
        t0 = time.perf_counter()
        x_np = update_numpy(card, P, x0)
        timings["numpy_s"] = time.perf_counter() - t0
        ref = None
        if reference:
            from .update_mna import update_reference

            ref = update_reference(card, xa, de, x0=x0, area=area, r_wire=r_wire,
                                   r_driver=r_driver, pulses=P)
            timings["reference_s"] = ref.stats["wall_s"]
        data, wall = job.result()
    timings["ngspice_s"] = wall
    timings["check_wall_s"] = time.perf_counter() - t_all
    x_final = np.clip((data[-1] + offset).reshape(R, C), 0.0, 1.0)

    # ---------------------------------------------------------------- metrics
    dgd = card.g_max_density - card.g_min_density
    dG = area * dgd * (x_final - x0)
    dG_np = area * dgd * (x_np - x0)
    dG_ref = None if ref is None else area * dgd * (ref.x_final - x0)
    xq = n_i / n_slots
    dq = np.where(col_on, de, 0.0)
    outer = np.outer(xq, dq)
    row_act, col_act = (n_i > 0)[:, None], col_on[None, :]
    selected = row_act & col_act
    half = row_act ^ col_act
    half_row, half_col = row_act & ~col_act, ~row_act & col_act
    idle = ~(selected | half)
    m = selected
    eta = float((dG[m] * outer[m]).sum() / max((outer[m] ** 2).sum(), 1e-300))
    target = eta * outer
    scale = float(np.abs(target).max()) or 1.0
    xm = float(x0.mean())
    dx_pulse = float(advance(xm, v_set, t_on, card) - xm) or 1.0
    dx = x_final - x0

    def amax(a: np.ndarray, mask: np.ndarray) -> float:
        return float(np.abs(a[mask]).max()) if mask.any() else 0.0

    metrics = {
        "eta_S": eta,
        "rms_error_rel": float(np.sqrt(np.mean((dG[m] - target[m]) ** 2)) / scale),
        "max_error_rel": float(np.abs(dG[m] - target[m]).max() / scale) if m.any() else 0.0,
        "corr": float(np.corrcoef(dG[m], outer[m])[0, 1]) if m.sum() > 2 else float("nan"),
        "half_selected_max_rel": amax(dG, half) / scale,
        "unselected_max_rel": amax(dG, idle) / scale,
        "ngspice_vs_numpy_rel": float(np.abs(dG - dG_np).max() / scale),
        "sign_agreement": float(np.mean(np.sign(dG[m]) == np.sign(outer[m]))) if m.any() else 1.0,
        "dx_pulse": dx_pulse,
        "max_dx": float(np.abs(dx).max()),
        "ngspice_vs_numpy_max_dx": float(np.abs(x_final - x_np).max()),
        "half_row_max_dx": amax(dx, half_row),
        "half_col_max_dx": amax(dx, half_col),
        "unselected_max_dx": amax(dx, idle),
        "ngspice_s": wall,
    }
    if ref is not None:
        err = x_final - ref.x_final
        dxr = ref.x_final - x0
        metrics.update({
            "ngspice_vs_irdrop_max_dx": float(np.abs(err).max()),
            "ngspice_vs_irdrop_rms_dx": float(np.sqrt(np.mean(err ** 2))),
            "ngspice_vs_irdrop_max_pulses": float(np.abs(err).max() / abs(dx_pulse)),
            "ngspice_vs_irdrop_rms_pulses": float(np.sqrt(np.mean(err ** 2)) / abs(dx_pulse)),
            "ngspice_vs_irdrop_rel": float(np.abs(dG - dG_ref).max() / scale),
            "irdrop_vs_numpy_max_dx": float(np.abs(ref.x_final - x_np).max()),
            "half_row_max_dx_irdrop": amax(dxr, half_row),
            "half_col_max_dx_irdrop": amax(dxr, half_col),
            "v_cell_min_selected_irdrop": ref.v_cell_min_selected,
            "reference_s": timings["reference_s"],
        })
    settings = dict(n_slots=n_slots, t_on=t_on, t_edge=te, v_set=v_set, v_dep=v_dep, area=area,
                    r_wire=r_wire, r_driver=r_driver, t_stop=t_stop, reltol=reltol,
                    cell="osdi" if "pre_osdi" in netlist else "subckt")
    return UpdateResult(xa, de, x0, x_final, x_np, dG, dG_np, target, eta, selected, half,
                        metrics, settings, netlist, wall,
                        x_final_ref=None if ref is None else ref.x_final, dG_ref=dG_ref,
                        timings=timings, reference_stats={} if ref is None else ref.stats)


def _run_tran(netlist: str, states: list[str], workdir, timeout: float | None = None
              ) -> tuple[np.ndarray, str]:
    """Run a transient netlist with ``ngspice -b`` (:func:`pyspice_rram.spice.runner.run`)
    and return the saved state vectors (n_points, n_states) and ngspice's output."""
    res = _runner.run(netlist, mode="batch", vectors=states, timeout=timeout, keep_dir=workdir,
                      stem="update", raw_format="binary")
    return res.plot.columns(states), res.log


def default_pattern(rows: int = 8, cols: int = 8, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """An activation / error pattern with idle rows and columns (to expose half-selects)."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(0.1, 1.0, rows), 1)
    d = np.round(rng.uniform(-1.0, 1.0, cols), 2)
    x[[1, rows - 2]] = 0.0
    d[[2, cols - 1]] = 0.0
    return x, d


def plot_update(result: UpdateResult, path: str | Path) -> Path:
    """Figure: intended ΔG, achieved ΔG (ngspice), their difference, and scatter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .sweep import save_figure

    fig, ax = plt.subplots(1, 4, figsize=(15, 3.6))
    vmax = float(np.abs(result.dG_target).max()) * 1e6 or 1.0
    for a, data, title in ((ax[0], result.dG_target, "intended η x δᵀ"),
                           (ax[1], result.dG, "achieved ΔG (ngspice)"),
                           (ax[2], result.dG - result.dG_target, "achieved − intended")):
        im = a.imshow(data * 1e6, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        a.set_title(title)
        a.set_xlabel("column j (δ)")
        a.set_ylabel("row i (x)")
        fig.colorbar(im, ax=a, label="ΔG (µS)")
    s, h = result.selected, result.half_selected
    ax[3].plot(result.dG_target[s] * 1e6, result.dG[s] * 1e6, "o", label="selected")
    ax[3].plot(result.dG_target[h] * 1e6, result.dG[h] * 1e6, "x", label="half-selected")
    if result.dG_ref is not None:
        ax[3].plot(result.dG_target[s] * 1e6, result.dG_ref[s] * 1e6, "+", ms=5,
                   label="IR-drop reference")
    ax[3].plot(result.dG_target[s] * 1e6, result.dG_numpy[s] * 1e6, ".", ms=3,
               label="NumPy, no IR drop")
    lim = [-vmax, vmax]
    ax[3].plot(lim, lim, "k:", lw=0.8)
    ax[3].set_xlabel("intended ΔG (µS)")
    ax[3].set_ylabel("achieved ΔG (µS)")
    ax[3].legend(fontsize=8)
    m = result.metrics
    ref = "" if "ngspice_vs_irdrop_max_dx" not in m else (
        f"; ngspice vs IR-drop reference: max |Δx error| {m['ngspice_vs_irdrop_max_dx']:.2e}")
    fig.suptitle(f"parallel update {result.dG.shape[0]}x{result.dG.shape[1]}: rms error "
                 f"{m['rms_error_rel']:.3f}, half-selected max {m['half_selected_max_rel']:.2e}"
                 f" (of max |ΔG|){ref}", fontsize=10)
    return save_figure(fig, path, dpi=120)
