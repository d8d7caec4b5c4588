"""Fit report: markdown tables, per-sweep / per-train statistics and PNG figures.

:func:`write_report` writes into a directory:

``report.md``            parameters (value, stderr: iid and cluster-robust), fit quality per
                         kind, figures of merit, links to the figures
``groups.csv``           R², RMSE and relative RMSE of every sweep and pulse train
``summary.json``         :meth:`FitResult.summary`
``iv_overlay.png``       measured |I| vs V (one device per area, every sweep branch) with the
                         fitted model; compliance-clipped points marked
``iv_residuals.png``     residuals of every sweep point vs V: of log10|I| (decades) when the
                         currents span more than a decade, relative otherwise
``pulses_<label>.png``   read conductance vs cumulative pulse number, data and model, every
                         pulse (traces of more than :data:`MAX_POINTS` reads decimated to the
                         min and max per bin)
``pulse_residuals.png``  residuals of the pulse reads in state steps (relative when no step
                         is defined) vs cumulative pulse number
``cycle_quality.png``    R² and RMS error (state steps) per cycle, I-V R² per branch (when the
                         result carries ``quality``)
``dg_vs_area.png``       mean ΔG per pulse vs area (log-log) with the fitted slope
``delta_mu.png``         distribution of the normalised conductance change per pulse
``d2d_scales.png``       distribution of the per-device conductance scales

Every figure function returns None and writes nothing when it has nothing to plot. Axes of
conductance and current are logarithmic when the plotted positive values span more than a
decade (:func:`use_log_scale`), linear otherwise; residual axes always contain every point
(:func:`residual_limits`). With ``return_fig=True`` a figure function returns
``(path, Figure)`` (the caller closes the figure) so that its axes can be inspected.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .fitting import FitResult


#: Traces with more reads than this are decimated (min and max per bin) in the figures.
MAX_POINTS = 20_000
#: Cycle starts are marked on pulse figures when a trace has at most this many cycles.
MAX_CYCLES_MARKED = 100
#: Log axis when max/min of the plotted positive values exceeds this.
LOG_RATIO = 10.0
#: At most this fraction of non-positive values may be left off a log axis (else linear).
MAX_NONPOSITIVE_FRACTION = 0.01


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmt(v: float, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.4g}" + (f" {unit}" if unit else "")


def _area_colors(areas: np.ndarray):
    plt = _plt()
    u = np.unique(areas)
    cmap = plt.get_cmap("viridis")
    return {a: cmap(i / max(len(u) - 1, 1)) for i, a in enumerate(u)}


def _diam_nm(a: float) -> float:
    return math.sqrt(4 * a / math.pi) * 1e9


def _finish(fig, path: Path, return_fig: bool):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    if return_fig:
        return path, fig
    _plt().close(fig)
    return path


# ------------------------------------------------------------------ axis helpers
def _finite(values: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        values = [values]
    v = np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in values]) if len(values) \
        else np.zeros(0)
    return v[np.isfinite(v)]


def use_log_scale(values: Sequence[np.ndarray] | np.ndarray) -> tuple[bool, int]:
    """Whether the plotted values (one array or a list of arrays) want a log axis.

    Log when the positive values span more than a decade (max/min > :data:`LOG_RATIO`) and
    at most :data:`MAX_NONPOSITIVE_FRACTION` of the values are <= 0 (they cannot be shown on
    a log axis; normalised data around 0 stay linear). Returns ``(log, n_left_off)`` with
    the number of non-positive values a log axis leaves off.
    """
    v = _finite(values)
    pos = v[v > 0]
    if pos.size < 2 or pos.max() <= LOG_RATIO * pos.min():
        return False, 0
    n_np = int(v.size - pos.size)
    if n_np > MAX_NONPOSITIVE_FRACTION * v.size:
        return False, 0
    return True, n_np


def _apply_scale(ax, values, axis: str = "y") -> tuple[bool, int]:
    log, n_off = use_log_scale(values)
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log" if log else "linear")
    return log, n_off


def residual_limits(values: Sequence[np.ndarray] | np.ndarray) -> tuple[str, float | None,
                                                                         tuple[float, float]]:
    """Scale and limits of a residual axis that contain every finite residual.

    Returns ``(scale, linthresh, (lo, hi))``: ``"symlog"`` with ``linthresh`` = the 90th
    percentile of |r| when the largest |r| is more than 100 times that (residuals spanning
    orders of magnitude), ``"linear"`` otherwise; limits padded by 5 % of the span (10 % of
    |value| + linthresh on a symlog axis).
    """
    r = _finite(values)
    if r.size == 0:
        return "linear", None, (-1.0, 1.0)
    lo, hi = float(r.min()), float(r.max())
    a = np.abs(r)
    typical = float(np.percentile(a, 90))
    if a.max() > 0 and (typical == 0 or a.max() > 100 * typical):
        lt = typical if typical > 0 else float(a[a > 0].min())
        return "symlog", lt, (lo - 0.1 * (abs(lo) + lt), hi + 0.1 * (abs(hi) + lt))
    span = hi - lo
    pad = 0.05 * span if span > 0 else 0.1 * max(abs(hi), 1e-12)
    return "linear", None, (lo - pad, hi + pad)


def _residual_axis(ax, values) -> str:
    scale, lt, lim = residual_limits(values)
    if scale == "symlog":
        ax.set_yscale("symlog", linthresh=lt)
    ax.set_ylim(*lim)
    ax.axhline(0.0, color="0.5", lw=0.6, zorder=0)
    return scale


def decimate_minmax(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS
                    ) -> tuple[np.ndarray, np.ndarray, bool]:
    """At most ``max_points`` points of a trace (in its order): the min and the max of ``y``
    in each of ``max_points // 2`` consecutive bins, so the envelope and every extreme stay
    visible, plus the first and the last point. Non-finite ``y`` are dropped. Returns
    ``(x, y, decimated)``."""
    x, y = np.asarray(x), np.asarray(y, dtype=float)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    n = y.size
    if n <= max_points:
        return x, y, False
    nb = max((max_points - 2) // 2, 1)
    b = -(-n // nb)                 # bin size (ceil)
    nbins = -(-n // b)
    pad = nbins * b - n
    yy = np.concatenate([y, np.full(pad, y[-1])]).reshape(nbins, b)
    base = np.arange(nbins) * b
    idx = np.unique(np.concatenate([[0, n - 1], base + yy.argmin(axis=1),
                                    base + yy.argmax(axis=1)]))
    idx = idx[idx < n]
    return x[idx], y[idx], True


# ------------------------------------------------------------------ I-V figures
def figure_iv(result: "FitResult", path: Path, return_fig: bool = False):
    """Measured |I| vs V of one device per area, every sweep (branch) of its sequence, with
    the fitted model; compliance-clipped (excluded) points marked. None without sweeps."""
    prog = result.program
    dc = prog.kind == 0
    if not dc.any():
        return None
    plt = _plt()
    fitted = result.model * result.scales[prog.obs_device]
    first: dict[float, int] = {}
    for sq in np.unique(prog.obs_seq[dc]):
        first.setdefault(float(prog.area[sq]), int(sq))
    n = len(first)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.4), squeeze=False)
    for ax, (a, sq) in zip(axes[0], sorted(first.items())):
        m = dc & (prog.obs_seq == sq)
        gis = list(dict.fromkeys(prog.obs_group[m].tolist()))   # sweeps in program order
        cmap = plt.get_cmap("tab10" if len(gis) <= 10 else "viridis")
        vals, n_excl = [], 0
        for j, gi in enumerate(gis):
            c = cmap(j if len(gis) <= 10 else j / max(len(gis) - 1, 1))
            mm = np.nonzero(m & (prog.obs_group == gi))[0]
            mm = mm[np.argsort(prog.obs_step[mm], kind="stable")]
            v, y, f, ok = prog.obs_v[mm], prog.y[mm], fitted[mm], prog.valid[mm]
            name = prog.groups[gi].split("/", 2)[-1] if len(gis) <= 8 else None
            ax.plot(v[ok], np.abs(y[ok]), ".", ms=2.5, color=c, alpha=0.7, label=name)
            ax.plot(v, np.abs(f), "-", lw=1, color=c)
            if (~ok).any():
                ax.plot(v[~ok], np.abs(y[~ok]), "x", ms=4, color="C3")
                n_excl += int((~ok).sum())
            vals += [np.abs(y), np.abs(f)]
        log, _ = _apply_scale(ax, vals)
        # the model is exactly 0 at 0 V: only measured zeros are worth a note
        n_off = int(np.sum(prog.y[m] == 0)) if log else 0
        ax.plot([], [], ".", color="0.4", label="data (dots)")
        ax.plot([], [], "-", color="0.4", label="fit (lines)")
        if n_excl:
            ax.plot([], [], "x", color="C3", label=f"clipped, excluded ({n_excl})")
        t = (f"{prog.devices[prog.seq_device[sq]]}  (d = {_diam_nm(a):.0f} nm), "
             f"{len(gis)} sweep{'s' if len(gis) != 1 else ''}")
        if n_off:
            t += f"\n{n_off} points |I| = 0 not on the log axis"
        ax.set_title(t, fontsize=8)
        ax.set_xlabel("V (V)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, markerscale=2)
    axes[0][0].set_ylabel("|I| (A)")
    return _finish(fig, path, return_fig)


def iv_residuals(result: "FitResult") -> dict | None:
    """Residuals of the valid sweep points at |V| > 0.05 V: of log10|I| (decades) when the
    plotted |I| span more than a decade, ``(I - I_fit)/|I_fit|`` otherwise. Returns a dict
    with ``index`` (observations), ``v``, ``r``, ``area``, ``kind`` (``"log"`` |
    ``"relative"``), ``label`` and ``n_dropped`` (zero currents, no finite residual); None
    without sweep points."""
    prog = result.program
    fitted = result.model * result.scales[prog.obs_device]
    m = (prog.kind == 0) & prog.valid & (np.abs(prog.obs_v) > 0.05)
    if not m.any():
        return None
    y, f = prog.y, fitted
    span_log, _ = use_log_scale(np.abs(y[m]))
    with np.errstate(divide="ignore", invalid="ignore"):
        if span_log:
            r = np.log10(np.abs(y)) - np.log10(np.abs(f))
            label, kind = "log10|I| − log10|I_fit| (decades)", "log"
        else:
            r = (y - f) / np.abs(f)
            label, kind = "(I − I_fit) / |I_fit|", "relative"
    ok = m & np.isfinite(r)
    idx = np.nonzero(ok)[0]
    return {"index": idx, "v": prog.obs_v[idx], "r": r[idx], "area": prog.area[prog.obs_seq[idx]],
            "kind": kind, "label": label, "n_dropped": int(m.sum() - ok.sum())}


def _residual_scatter(res: dict, x_key: str, xlabel: str, figsize: tuple[float, float],
                      ms: float):
    """Residuals ``res["r"]`` against ``res[x_key]``, one colour per area, each area's trace
    (ordered by x) decimated to its min/max envelope above :data:`MAX_POINTS` points.
    Returns ``(fig, ax, axis scale, decimated)``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=figsize)
    decimated = False
    for a, c in _area_colors(res["area"]).items():
        mm = np.nonzero(np.isclose(res["area"], a, rtol=1e-9, atol=0))[0]
        mm = mm[np.argsort(res[x_key][mm], kind="stable")]
        x, r, d = decimate_minmax(res[x_key][mm], res["r"][mm])
        decimated |= d
        ax.plot(x, r, ".", ms=ms, mew=0, color=c, alpha=0.5)
        ax.plot([], [], ".", color=c, label=f"{_diam_nm(a):.0f} nm")
    scale = _residual_axis(ax, res["r"])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(res["label"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3, markerscale=4)
    return fig, ax, scale, decimated


def figure_iv_residuals(result: "FitResult", path: Path, return_fig: bool = False):
    res = iv_residuals(result)
    if res is None or res["r"].size == 0:
        return None
    fig, ax, scale, decimated = _residual_scatter(res, "v", "V (V)", (6.4, 3.4), 1.5)
    t = (f"DC sweeps: {'log10|I|' if res['kind'] == 'log' else 'relative'} residuals "
         f"(free-running fitted model), {res['r'].size} points")
    if scale == "symlog":
        t += ", symlog axis"
    if res["n_dropped"]:
        t += f"; {res['n_dropped']} with I = 0 not shown"
    if decimated:
        t += f"; > {MAX_POINTS} per area decimated to min/max per bin"
    ax.set_title(t, fontsize=8)
    return _finish(fig, path, return_fig)


# ------------------------------------------------------------------ pulse figures
def _cycle_starts(result: "FitResult", gi: int) -> np.ndarray | None:
    """Cumulative pulse numbers at which the cycles of pulse group ``gi`` start (after the
    first), from the data set's train of the same label; None when unknown."""
    label = result.program.groups[gi]
    for t in getattr(result.dataset, "trains", []) or []:
        if t.label == label and t.cycle.size == t.read_after.size and t.cycle.size:
            cyc = np.asarray(t.cycle)
            first = np.r_[True, cyc[1:] != cyc[:-1]]
            starts = (np.asarray(t.read_after) - np.asarray(t.pulse))[first]
            return starts.astype(float)
    return None


#: Pulse figures of more than 2 x this many cycles get a second panel with the first cycles.
ZOOM_CYCLES = 3


def figure_pulses(result: "FitResult", outdir: Path, return_fig: bool = False) -> list:
    """Read conductance per area vs cumulative pulse number of one train per area and pulse
    entry, every pulse, with the fitted model; one file per entry ([] without pulse trains).
    Traces of more than :data:`MAX_POINTS` reads are decimated (min and max per bin)."""
    prog = result.program
    fitted = result.model * result.scales[prog.obs_device]
    out = []
    entries: dict[str, list[int]] = {}
    for gi, (g, k) in enumerate(zip(prog.groups, prog.group_kind)):
        if k == "pulse":
            entries.setdefault(g.split("/")[0], []).append(gi)
    for entry, gis in entries.items():
        per_area: dict[float, int] = {}
        for gi in gis:
            m = prog.obs_group == gi
            if m.sum() > 10:
                per_area.setdefault(float(prog.area[prog.obs_seq[m][0]]), gi)
        if not per_area:
            continue
        plt = _plt()
        first = _cycle_starts(result, sorted(per_area.items())[0][1])
        zoom = first is not None and first.size > ZOOM_CYCLES * 2
        fig, axes = plt.subplots(2 if zoom else 1, 1, figsize=(7.5, 6.6 if zoom else 3.6),
                                 squeeze=False)
        ax = axes[0][0]
        cols = _area_colors(np.array(list(per_area)))
        vals, decimated, n_reads, n_pulses, marked = [], False, 0, 0, None
        for a, gi in sorted(per_area.items()):
            m = np.nonzero(prog.obs_group == gi)[0]
            m = m[np.argsort(prog.obs_step[m], kind="stable")]
            k = prog.obs_step[m]
            y, f = prog.y[m] / a * 1e-4, fitted[m] / a * 1e-4
            kd, yd, d1 = decimate_minmax(k, y)
            kf, fd, d2 = decimate_minmax(k, f)
            decimated |= d1 or d2
            n_reads += m.size
            n_pulses = max(n_pulses, int(prog.length[prog.obs_seq[m[0]]]))
            ax.plot(kd, yd, ".", ms=1.6, color=cols[a],
                    label=f"{prog.devices[prog.obs_device[m[0]]]} ({_diam_nm(a):.0f} nm)")
            ax.plot(kf, fd, "-", lw=0.8, color="k", alpha=0.7)
            if zoom:  # every read of the first cycles, undecimated
                z = k < first[ZOOM_CYCLES]
                axes[1][0].plot(k[z], y[z], ".", ms=2.5, color=cols[a])
                axes[1][0].plot(k[z], f[z], "-", lw=0.9, color="k", alpha=0.8)
            vals += [y, f]
            if marked is None:
                starts = _cycle_starts(result, gi)
                if starts is not None:
                    marked = starts
        log, n_off = _apply_scale(ax, vals)
        n_cyc = 0 if marked is None else marked.size
        if marked is not None and 1 < n_cyc <= MAX_CYCLES_MARKED:
            for s0 in marked[1:]:
                ax.axvline(s0 + 0.5, color="0.6", lw=0.4, alpha=0.5, zorder=0)
        ax.set_xlabel("pulse number (cumulative)")
        ax.set_ylabel("G / area (S/cm²)")
        t = (f"{entry}: data (dots) and fitted model (lines), conductance per area\n"
             f"all {n_reads} reads, up to {n_pulses} pulses")
        if n_cyc > 1:
            t += (f"; {n_cyc} cycles" + (" (starts marked)" if n_cyc <= MAX_CYCLES_MARKED else ""))
        if decimated:
            t += f"\ntraces of > {MAX_POINTS} reads decimated: min and max per bin shown"
        if n_off:
            t += f"\n{n_off} reads G ≤ 0 not on the log axis"
        ax.set_title(t, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, markerscale=4, ncol=2)
        if zoom:
            az = axes[1][0]
            _apply_scale(az, vals)
            az.set_xlabel("pulse number (cumulative)")
            az.set_ylabel("G / area (S/cm²)")
            az.set_title(f"first {ZOOM_CYCLES} cycles, every read", fontsize=8)
            az.grid(alpha=0.3)
            fig.tight_layout()
        p = outdir / (f"{entry}.png" if entry.startswith("pulses") else f"pulses_{entry}.png")
        out.append(_finish(fig, p, return_fig))
    return out


def pulse_steps_per_train(result: "FitResult") -> dict[int, float]:
    """State step (S) of every pulse train with >= 2 reads: the mean |ΔG_fit| per pulse over
    the pulses that move the fitted model (per-pulse change > 1 % of the train's largest),
    from consecutive reads. Trains where the model does not move get no entry."""
    prog = result.program
    fitted = result.model * result.scales[prog.obs_device]
    out: dict[int, float] = {}
    idx = np.nonzero(prog.kind == 1)[0]
    for gi in np.unique(prog.obs_group[idx]):
        ii = idx[prog.obs_group[idx] == gi]
        ii = ii[np.argsort(prog.obs_step[ii], kind="stable")]
        if ii.size < 2:
            continue
        dk = np.diff(prog.obs_step[ii]).astype(float)
        df = np.abs(np.diff(fitted[ii]))
        ok = (dk > 0) & np.isfinite(df)
        if not ok.any():
            continue
        per = df[ok] / dk[ok]
        if not per.max() > 0:
            continue
        mv = per > 0.01 * per.max()
        out[int(gi)] = float(df[ok][mv].sum() / dk[ok][mv].sum())
    return out


def pulse_residuals(result: "FitResult") -> dict | None:
    """Residuals of the pulse reads: ``(G - G_fit)`` in state steps of their train
    (:func:`pulse_steps_per_train`; a train without a step uses the median step relative to
    its mean G_fit), or relative ``(G - G_fit)/|G_fit|`` when no train has a step. Returns a
    dict with ``index``, ``step`` (cumulative pulse number), ``r``, ``area``, ``kind``
    (``"steps"`` | ``"relative"``), ``label``; None without pulse reads."""
    prog = result.program
    fitted = result.model * result.scales[prog.obs_device]
    m = (prog.kind == 1) & prog.valid
    if not m.any():
        return None
    steps = pulse_steps_per_train(result)
    groups = prog.obs_group
    mean_f = {int(g): float(np.mean(np.abs(fitted[m & (groups == g)]))) for g in np.unique(groups[m])}
    frac = [steps[g] / mean_f[g] for g in steps if g in mean_f and mean_f[g] > 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        if frac:
            fmed = float(np.median(frac))
            unit = np.array([steps.get(int(g), fmed * mean_f.get(int(g), math.nan)) for g in groups])
            r = (prog.y - fitted) / unit
            kind, label = "steps", "(G − G_fit) / state step"
        else:
            r = (prog.y - fitted) / np.abs(fitted)
            kind, label = "relative", "(G − G_fit) / |G_fit|"
    ok = m & np.isfinite(r)
    idx = np.nonzero(ok)[0]
    return {"index": idx, "step": prog.obs_step[idx], "r": r[idx],
            "area": prog.area[prog.obs_seq[idx]], "kind": kind, "label": label,
            "n_dropped": int(m.sum() - ok.sum())}


def figure_pulse_residuals(result: "FitResult", path: Path, return_fig: bool = False):
    res = pulse_residuals(result)
    if res is None or res["r"].size == 0:
        return None
    fig, ax, scale, decimated = _residual_scatter(res, "step", "pulse number (cumulative)",
                                                  (6.4, 3.2), 1.0)
    t = f"pulse reads: residuals of the free-running model (c2c walk), {res['r'].size} reads"
    if res["kind"] == "steps":
        t += "\nstate step = mean |ΔG_fit| per pulse of the train"
    if scale == "symlog":
        t += "; symlog axis"
    if decimated:
        t += f"; > {MAX_POINTS} per area decimated to min/max per bin"
    ax.set_title(t, fontsize=8)
    return _finish(fig, path, return_fig)


def _as_float_array(v) -> np.ndarray:
    return np.array([math.nan if x is None else float(x) for x in v], dtype=float)


def figure_cycle_quality(result: "FitResult", path: Path, return_fig: bool = False):
    """R² and RMS error (state steps) of the pulse reads per cycle, with their medians, and
    the I-V R² per branch when present; None unless ``result.quality`` holds
    ``pulse_r2_per_cycle`` and ``pulse_rms_steps_per_cycle``."""
    q = getattr(result, "quality", None)
    if not isinstance(q, dict):
        return None
    r2 = q.get("pulse_r2_per_cycle")
    rms = q.get("pulse_rms_steps_per_cycle")
    if r2 is None or rms is None or len(r2) == 0 or len(rms) == 0:
        return None
    r2, rms = _as_float_array(r2), _as_float_array(rms)
    iv = {k: _as_float_array(q[k]) for k in ("iv_r2_per_branch", "iv_r2_log_per_branch")
          if q.get(k) is not None and len(q[k])}
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    n = 3 if iv else 2
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
    axes = axes[0]
    panels = [(axes[0], {"R²": r2}, "pulse reads: R² per cycle", "cycle", "R²"),
              (axes[1], {"RMS": rms}, "pulse reads: RMS error per cycle", "cycle",
               "RMS error (state steps)")]
    if iv:
        names = {"iv_r2_per_branch": "R² of I", "iv_r2_log_per_branch": "R² of log10|I|"}
        panels.append((axes[2], {names[k]: v for k, v in iv.items()}, "DC sweeps: R² per branch",
                       "branch", "R²"))
    for ax, series, title, xl, yl in panels:
        allv = []
        for j, (name, v) in enumerate(series.items()):
            x = np.arange(1, v.size + 1)
            c = f"C{j}"
            ax.plot(x, v, "o-" if v.size <= 200 else "-", ms=2.5, lw=0.8, color=c, label=name)
            fin = v[np.isfinite(v)]
            if fin.size:
                med = float(np.median(fin))
                ax.axhline(med, color=c, ls="--", lw=0.8, label=f"median {med:.4g}")
            allv.append(v)
        if yl.startswith("RMS"):
            _apply_scale(ax, allv)
        else:
            _residual_axis_limits_only(ax, allv)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title, fontsize=8)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return _finish(fig, path, return_fig)


def _residual_axis_limits_only(ax, values) -> None:
    """Limits containing every finite value (symlog when they span orders of magnitude)."""
    scale, lt, lim = residual_limits(values)
    if scale == "symlog":
        ax.set_yscale("symlog", linthresh=lt)
    ax.set_ylim(*lim)


# ------------------------------------------------------------------ statistics figures
def figure_dg_area(result: "FitResult", path: Path, return_fig: bool = False):
    fom = result.metrics
    if "dg_area_slope" not in fom:
        return None
    from .fitting import pulse_steps

    prog, card = result.program, result.card
    st = pulse_steps(prog, card, result.scales)
    m = np.isclose(st["v"], card.scheme.v_set) & (st["x_prev"] >= 0.02) & (st["x_prev"] <= 0.5)
    d_ids = np.unique(st["device"][m]).astype(int)
    if d_ids.size == 0:
        return None
    a_d = prog.device_area[d_ids]
    dg_d = np.array([np.mean(st["dg"][m & (st["device"] == d)]) for d in d_ids])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    ax.loglog(a_d * 1e12, dg_d, "o", ms=3, alpha=0.6, label="devices")
    n_np = int((dg_d <= 0).sum())
    xx = np.geomspace(a_d.min(), a_d.max(), 20)
    ax.loglog(xx * 1e12, fom["dg_density"] * xx ** fom["dg_area_slope"], "-", color="C3",
              label=f"slope {fom['dg_area_slope']:.3f} ± {fom['dg_area_slope_stderr']:.3f}")
    ax.set_xlabel("area (µm²)")
    ax.set_ylabel("mean ΔG per pulse (S)")
    t = f"ΔG per pulse vs area (+{card.scheme.v_set} V, {card.scheme.t_set * 1e6:g} µs)"
    if n_np:
        t += f"\n{n_np} devices with mean ΔG ≤ 0 not shown"
    ax.set_title(t, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _finish(fig, path, return_fig)


def figure_delta_mu(result: "FitResult", path: Path, return_fig: bool = False):
    from .fitting import pulse_steps

    st = pulse_steps(result.program, result.card, result.scales)
    m = (st["v"] > 0) & (st["x_prev"] >= 0.02) & (st["x_prev"] <= 0.85) & (st["dg_model"] > 0)
    if m.sum() < 20:
        return None
    q = st["dg"][m] / st["dg_model"][m]
    q = q[np.isfinite(q)]
    if q.size < 20:
        return None
    lo, hi = np.percentile(q, [0.5, 99.5])
    lo, hi = min(-0.5, float(lo)), max(2.5, float(hi))
    n_out = int(((q < lo) | (q > hi)).sum())
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    ax.hist(q, bins=80, range=(lo, hi), density=True, alpha=0.6,
            label="data ΔG / ΔG_model" + (f" ({n_out} outside)" if n_out else ""))
    s = result.card.c2c_sigma
    if s is not None and s > 0:
        xx = np.linspace(lo, hi, 300)
        ax.plot(xx, np.exp(-0.5 * ((xx - 1) / s) ** 2) / (s * math.sqrt(2 * math.pi)), "C3",
                label=f"N(1, {s:.3f}) (read noise removed)")
    ax.set_xlabel("normalised conductance change per pulse")
    ax.set_title("cycle-to-cycle variability δ/μ (potentiation, 0.02 ≤ x ≤ 0.85)", fontsize=9)
    ax.legend(fontsize=7)
    return _finish(fig, path, return_fig)


def figure_scales(result: "FitResult", path: Path, return_fig: bool = False):
    """Histogram of ln(device scale) per area; None with fewer than two devices."""
    prog = result.program
    ls = np.log(np.asarray(result.scales, dtype=float))
    if ls.size < 2 or len(prog.devices) < 2 or not np.isfinite(ls).all():
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    cols = _area_colors(prog.device_area)
    for a, c in cols.items():
        mm = np.isclose(prog.device_area, a, rtol=1e-9, atol=0)
        ax.hist(ls[mm], bins=30, range=(ls.min(), ls.max()), histtype="step", color=c,
                label=f"{_diam_nm(a):.0f} nm ({mm.sum()})")
    ax.set_xlabel("ln(device conductance scale)")
    ax.set_ylabel("devices")
    p = result.parameters.get("d2d_g_sigma")
    sd = p.value if p is not None else float(np.std(ls, ddof=1))
    ax.set_title(f"device-to-device spread: sd = {sd:.4f}", fontsize=9)
    ax.legend(fontsize=7)
    return _finish(fig, path, return_fig)


def verdict_markdown(result: "FitResult") -> list[str]:
    """The verdict section: verdict, reasons, and the per-branch / per-cycle medians."""
    q = getattr(result, "quality", None) or {}
    if "verdict" not in q:
        return []
    lines = ["## Verdict", "", f"**{q['verdict'].upper()}** (`quality.json` beside the card has "
             "every figure)", ""]
    for r in q.get("reasons", []):
        lines.append(f"- {r}")
    rows = [("I-V: median per-branch R² of log10|I|", q.get("iv_r2_log_median")),
            ("I-V: median per-branch R² of I", q.get("iv_r2_median")),
            ("pulses: median per-cycle R²", q.get("pulse_r2_median")),
            ("pulses: median per-cycle RMS error (state steps)", q.get("pulse_rms_steps_median"))]
    rows = [(k, v) for k, v in rows if v is not None]
    if rows:
        lines += ["", "| quality | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in rows]
    held = result.statistics.get("held", {})
    if held:
        lines += ["", "Parameters held (not fitted) and why:", ""]
        lines += [f"- `{k}` = {_fmt(getattr(result.card, k))}: {why}" for k, why in held.items()]
    corr = result.statistics.get("correlations", {})
    strong = sorted({tuple(sorted((a, b))): v for a, row in corr.items() for b, v in row.items()
                     if a != b and v is not None and abs(v) > 0.9}.items(),
                    key=lambda kv: -abs(kv[1]))
    if strong:
        lines += ["", "Strong correlations (|r| > 0.9) of the fitted parameters:", ""]
        lines += [f"- `{a}` – `{b}`: {v:+.3f}" for (a, b), v in strong[:10]]
    return lines + [""]


def selection_markdown(result: "FitResult") -> list[str]:
    """The model-selection table across the families that were fitted."""
    sel = getattr(result, "selection", None) or []
    if not sel:
        return []
    lines = ["## Model selection", "",
             "Each family fitted from the same global stage; ranked by BIC of the free-running "
             "weighted residuals (`n ln(SSR/n) + k ln n`); a family whose parameters end on "
             "their bounds gives way to the best interior one within ΔBIC 10.", "",
             "| family | k | ΔBIC | ΔAIC | median R² log I (branch) | median R² (cycle) | "
             "median RMS (steps) | fit time |", "|---|---|---|---|---|---|---|---|"]
    ok = [r for r in sel if "bic" in r]
    aic0 = min((r["aic"] for r in ok), default=0.0)
    for r in sorted(ok, key=lambda r: r["bic"]):
        chosen = " (chosen)" if r.get("chosen") else ""
        if r.get("at_bounds"):
            chosen += f" — at bounds: {', '.join(r['at_bounds'])}"
        lines.append(f"| {r['family']}{chosen} | {r['k']} | {r['delta_bic']:.1f} | "
                     f"{r['aic'] - aic0:.1f} | {_fmt(r.get('iv_r2_log_median'))} | "
                     f"{_fmt(r.get('pulse_r2_median'))} | {_fmt(r.get('pulse_rms_steps_median'))} "
                     f"| {r['seconds']:.0f} s |")
    for r in sel:
        if "bic" not in r:
            lines.append(f"| {r['family']} | failed: {r['error']} | | | | | | |")
    return lines + [""]


def report_markdown(result: "FitResult", figures: dict[str, Path], link_prefix: str = "",
                    truth=None) -> str:
    """The report as markdown; figure links are ``link_prefix + file name``.

    ``truth`` (a :class:`ModelCard`) adds a column with the generating values (synthetic data).
    """
    from ..device.card import PARAMETER_INFO

    ds, card, fom = result.dataset, result.card, result.metrics
    lines = [f"# Fit report: {ds.recipe.name}", ""]
    if ds.recipe.synthetic:
        lines += ["> **SYNTHETIC data set** (simulated, not measured); see its README.", ""]
    lines += [f"- data set SHA-256: `{ds.sha256}`",
              f"- fitted: {card.provenance.get('fit_date', '')} with {card.provenance.get('tool', '')}",
              f"- devices: {len(result.program.devices)}, sweeps: {len(ds.sweeps)}, pulse trains: "
              f"{len(ds.trains)}, observations: {result.program.y.size} "
              f"({int((~result.program.valid).sum())} compliance-clipped, excluded)",
              f"- fit time: {result.seconds:.0f} s; reduced χ² of the one-step-ahead residuals: "
              f"{result.statistics.get('redchi', math.nan):.3g}",
              f"- model family: **{card.family}**"
              + (f", series resistance {card.r_series:.4g} Ω" if card.r_series > 0 else ""),
              "- state: " + ("each cycle of the entries with `state_from_first_read` starts from "
                             "the state of its first read" if result.program.has_restarts
                             else "carried from cycle to cycle (free-running from the initial "
                                  "state)"), ""]
    lines += verdict_markdown(result)
    lines += selection_markdown(result)
    head = "| parameter | value | stderr | stderr (iid) | stderr (cluster-robust) | unit |"
    sep = "|---|---|---|---|---|---|"
    if truth is not None:
        head += " generating | error | error / stderr |"
        sep += "---|---|---|"
    lines += ["## Parameters", "", head, sep]
    for name, p in result.parameters.items():
        if not p.vary and not math.isfinite(p.value):
            row = f"| `{name}` | not estimated | – | – | – | {p.unit} |"
            if truth is not None:
                row += " – | – | – |"
            lines.append(row + f" <!-- {p.note} -->")
            continue
        row = (f"| `{name}` | {_fmt(p.value)} | {_fmt(p.stderr)} | {_fmt(p.stderr_iid)} | "
               f"{_fmt(p.stderr_robust)} | {PARAMETER_INFO.get(name, ('', '', p.unit))[2]} |")
        if truth is not None:
            t = getattr(truth, name)
            err = (p.value - t) / t * 100 if t else math.nan
            z = (p.value - t) / p.stderr if p.stderr and math.isfinite(p.stderr) else math.nan
            row += f" {_fmt(t)} | {err:+.2f} % | {z:+.2f} |"
        lines.append(row)
    lines += ["", "stderr = max(iid, cluster-robust) (densities: plus the sampling error of the "
              "device mean); statistical parameters: see `docs/calibration.md`.", ""]
    lines += ["## Fit quality (free-running fitted model)", "",
              "| kind | n | R² median | R² min | relative RMSE median |", "|---|---|---|---|---|"]
    for kind in ("sweep", "pulse"):
        gs = [g for g in result.groups if g["kind"] == kind]
        if not gs:
            continue
        r2 = np.array([g["r2"] for g in gs])
        rr = np.array([g["rel_rmse"] for g in gs])
        lines.append(f"| {kind} | {len(gs)} | {np.nanmedian(r2):.4f} | {np.nanmin(r2):.4f} | "
                     f"{np.nanmedian(rr):.3g} |")
    lines += ["", "Every sweep and train: `groups.csv`. Pulse trains with only a few reads "
              "(survey) have few points per group.", ""]
    lines += ["## Figures of merit", "", "| diameter | devices | G_min (data, min read) | G_max (data, max read) | "
              "on/off (data) | range CV (data) | G_min (fit) | G_max (fit) |",
              "|---|---|---|---|---|---|---|---|"]
    for r in fom.get("per_area", []):
        lines.append(f"| {r['diameter_m'] * 1e9:.0f} nm | {r['n_devices']} | "
                     f"{_fmt(r.get('g_min', math.nan), 'S')} | {_fmt(r.get('g_max', math.nan), 'S')} | "
                     f"{_fmt(r.get('on_off', math.nan))} | {_fmt(r.get('range_cv', math.nan))} | "
                     f"{_fmt(r['g_min_model'], 'S')} | {_fmt(r['g_max_model'], 'S')} |")
    scal = [("on/off (card, low field)", fom.get("on_off_card")),
            ("states at the nominal scheme (card N)", fom.get("n_states_card")),
            ("states (data: pulses to 98 % of the range)", fom.get("n_states_data")),
            ("pulse nonlinearity (data, max over n of abs(y_n - n/N))", fom.get("nonlinearity_data")),
            ("pulse nonlinearity (card, same measure)", fom.get("nonlinearity_card")),
            (("gamma_p / gamma_d (soft-bounds exponents)" if card.dynamics == "soft_bounds"
              else "beta_p / beta_d (card curvature)"),
             (f"{_fmt(card.gamma_p)} / {_fmt(card.gamma_d)}" if card.dynamics == "soft_bounds"
              else f"{_fmt(card.beta_p)} / {_fmt(card.beta_d)}")),
            ("δ/μ raw (read noise included)", fom.get("delta_over_mu_raw")),
            ("δ/μ read-noise corrected (= c2c_sigma)", fom.get("delta_over_mu_corrected")),
            ("δ/μ of the fitted card, simulated", fom.get("delta_over_mu_card")),
            ("device-to-device spread sd(ln s)", fom.get("d2d_scale_sigma")),
            ("ΔG per pulse vs area, log-log slope",
             f"{_fmt(fom.get('dg_area_slope', math.nan))} ± "
             f"{_fmt(fom.get('dg_area_slope_stderr', math.nan))}")]
    lines += ["", "| figure of merit | value |", "|---|---|"]
    lines += [f"| {k} | {v if isinstance(v, str) else _fmt(v)} |" for k, v in scal]
    lines += ["", "## Figures", ""]
    for key, p in figures.items():
        if p is not None:
            lines += [f"![{key}]({link_prefix}{Path(p).name})", ""]
    return "\n".join(lines) + "\n"


#: Figures written under a fixed name (a stale copy from an earlier report in the same
#: directory is removed when the figure has nothing to plot now).
FIXED_FIGURES = ("iv_overlay", "iv_residuals", "pulse_residuals", "cycle_quality", "dg_vs_area",
                 "delta_mu", "d2d_scales")


def write_report(result: "FitResult", outdir: str | Path, truth=None) -> dict[str, Path]:
    """Write ``report.md``, ``groups.csv``, ``summary.json`` and the figures to ``outdir``.

    Figures with nothing to plot (no sweeps, no pulse trains, one device, ...) are left out.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    figs: dict[str, Path | None] = {
        "iv_overlay": figure_iv(result, outdir / "iv_overlay.png"),
        "iv_residuals": figure_iv_residuals(result, outdir / "iv_residuals.png"),
    }
    for p in figure_pulses(result, outdir):
        figs[p.stem] = p
    figs["pulse_residuals"] = figure_pulse_residuals(result, outdir / "pulse_residuals.png")
    figs["cycle_quality"] = figure_cycle_quality(result, outdir / "cycle_quality.png")
    figs["dg_vs_area"] = figure_dg_area(result, outdir / "dg_vs_area.png")
    figs["delta_mu"] = figure_delta_mu(result, outdir / "delta_mu.png")
    figs["d2d_scales"] = figure_scales(result, outdir / "d2d_scales.png")
    for k in FIXED_FIGURES:
        if figs.get(k) is None:
            (outdir / f"{k}.png").unlink(missing_ok=True)
    figs = {k: v for k, v in figs.items() if v is not None}
    paths: dict[str, Path] = {f"fig_{k}": v for k, v in figs.items()}
    with open(outdir / "groups.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["group", "kind", "n", "excluded", "r2", "rmse", "rel_rmse"])
        w.writeheader()
        for g in result.groups:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in g.items()})
    paths["groups"] = outdir / "groups.csv"
    (outdir / "summary.json").write_text(json.dumps(result.summary(), indent=1) + "\n")
    paths["summary"] = outdir / "summary.json"
    res = getattr(result, "lmfit_result", None)
    if res is not None and hasattr(res, "params"):
        import lmfit

        text = (f"# lmfit report of the chosen family {result.card.family} (internal scale: "
                f"log10 for densities and r_series)\n" + lmfit.fit_report(res, min_correl=0.3))
        (outdir / "lmfit_report.txt").write_text(text + "\n")
        paths["lmfit_report"] = outdir / "lmfit_report.txt"
    if hasattr(result, "report"):
        (outdir / "fit_report.txt").write_text(result.report())
        paths["fit_report"] = outdir / "fit_report.txt"
    (outdir / "report.md").write_text(report_markdown(result, figs, truth=truth))
    paths["report"] = outdir / "report.md"
    return paths
