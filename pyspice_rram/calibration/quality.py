"""Fit quality per sweep branch and per pulse cycle, and the verdict written beside a card.

Every fit gets a :func:`verdict`: ``good``, ``usable`` or ``poor``, with the reasons. The
figures it rests on are computed from the free-running fitted model (each sequence from its
initial state, or each cycle from its first read where the recipe asks for it):

``iv_r2_per_branch``, ``iv_r2_log_per_branch``
    R² of the current and of ``log10 |I|`` on every monotone voltage leg (branch) of every
    DC sweep (compliance-clipped points excluded; the log form only where ``|I|`` exceeds
    three times the recipe's ``sweep_floor``: below it a read is the instrument's offset).
``pulse_r2_per_cycle``, ``pulse_rms_steps_per_cycle``
    R² of the read conductance and its RMS error in units of one *state step* on every cycle
    of every pulse train; a state step is the cycle's range divided by its number of pulses.
    A cycle whose reads span more than a decade is judged on ``log10 G`` (R², RMS and steps
    in decades): on a linear scale its top decade alone would decide.
``pulse_r2_per_ramp``, ``pulse_ramp_polarity``, ``iv_branch_polarity``
    R² of every run of reads after pulses of one polarity (a ramp), and the polarity of each
    ramp and sweep branch: when one polarity is poorly described and the other is not, the
    verdict names it ("the family does not describe the depression ramps").
``pulse_noise_steps_per_cycle``, ``pulse_misfit_steps_per_cycle``
    The RMS split into read noise (:func:`read_noise`: the data about their own moving
    average, no model involved) and model misfit ``sqrt(RMS² - noise²)``, both in state steps. The verdict judges the misfit: a model
    cannot be asked to fit read noise (noisy data with 1000 pulses per ramp have an RMS of
    many state steps however good the model is).

Thresholds (:data:`THRESHOLDS`) of the verdict: a fit is ``poor`` if the median per-branch
log R² or linear R² of the I-V is below ``iv_r2_poor`` or the median per-cycle R² below
``pulse_r2_poor`` or the median model misfit above ``misfit_range_poor`` of the cycle's
range, if the state count
at the nominal scheme is implausible, or if the fit did not converge; ``usable`` if a median
misses the ``good`` thresholds, a branch or cycle falls far below them, a varied parameter
ends on a bound, or one is undetermined (relative standard error > 1), or the misfit
exceeds ``rms_steps_good`` state steps. Statistics the data
cannot give (``c2c_sigma`` from fewer than two cycles, device-to-device spread from one
device per area) are listed as *not estimated*; that alone does not lower the verdict. A
``c2c_sigma`` that a replica simulated from the fitted card does not re-estimate within
25 % (:func:`pyspice_rram.calibration.fitting.c2c_replica_check`) makes the fit ``usable``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .fitting import FitResult

#: Verdict thresholds (see the module docstring).
THRESHOLDS = {
    "iv_r2_good": 0.95, "iv_r2_poor": 0.8,
    "pulse_r2_good": 0.95, "pulse_r2_poor": 0.8,
    "rms_steps_good": 8.0, "misfit_range_poor": 0.10,
    "part_r2_floor": 0.5,
    "n_states_min": 2.0, "n_states_max": 1e5,
    "bound_tol": 1e-3, "rel_stderr_max": 1.0, "c2c_replica_tol": 0.25,
}


#: A cycle whose reads span more than this ratio is judged on log10 G.
DECADE = 10.0


def _r2(y: np.ndarray, f: np.ndarray) -> float:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if y.size < 3 or ss_tot <= 0:
        return math.nan
    return 1.0 - float(np.sum((y - f) ** 2)) / ss_tot


def unit_index(*keys: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Distinct rows of the integer ``keys`` (sorted lexicographically) and the indices of
    each, ascending: one sort instead of one mask over all observations per unit."""
    if keys[0].size == 0:
        return np.zeros((0, len(keys)), np.int64), []
    k = np.column_stack([np.asarray(a, np.int64) for a in keys])
    uniq, inv = np.unique(k, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    order = np.argsort(inv, kind="stable")
    cuts = np.cumsum(np.bincount(inv, minlength=uniq.shape[0]))[:-1]
    return uniq, np.split(order, cuts)


def _r2_by_unit(code: np.ndarray, y: np.ndarray, f: np.ndarray, n_units: int) -> np.ndarray:
    """:func:`_r2` of every unit at once (``code``: unit of each point); NaN for fewer than
    three points or no spread."""
    n = np.bincount(code, minlength=n_units)
    mean = np.bincount(code, y, n_units) / np.maximum(n, 1)
    ss_tot = np.bincount(code, (y - mean[code]) ** 2, n_units)
    ss_res = np.bincount(code, (y - f) ** 2, n_units)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - ss_res / ss_tot
    return np.where((n >= 3) & (ss_tot > 0), r2, math.nan)


def sweep_branch_statistics(prog, fitted: np.ndarray, floor: float) -> dict[str, list]:
    """R² of I and of log10|I| and the polarity of every branch (monotone voltage leg) of
    every DC sweep with three or more valid points, vectorised over all points (a file of
    10⁶ points and 10⁴ sweeps takes a fraction of a second). The log form uses the points
    with ``|I| > 3 floor`` and a non-zero model."""
    part = prog.obs_part if prog.obs_part is not None else np.zeros(prog.y.size, int)
    m = (prog.kind == 0) & prog.valid
    idx = np.nonzero(m)[0]
    out: dict[str, list] = {"iv_branches": [], "iv_r2_per_branch": [],
                            "iv_r2_log_per_branch": [], "iv_branch_polarity": []}
    if idx.size == 0:
        return out
    uniq, inv = np.unique(np.c_[prog.obs_group[idx], part[idx]], axis=0, return_inverse=True)
    code = inv.reshape(-1)
    U = uniq.shape[0]
    y, f, v = prog.y[idx], fitted[idx], prog.obs_v[idx]
    n = np.bincount(code, minlength=U)
    r2 = _r2_by_unit(code, y, f, U)
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = (np.abs(y) > 3 * floor) & (np.abs(f) > 0)
        ly, lf = np.log10(np.abs(y[pos])), np.log10(np.abs(f[pos]))
    r2_log = _r2_by_unit(code[pos], ly, lf, U)
    r2_log = np.where(np.bincount(code[pos], minlength=U) >= 3, r2_log, math.nan)
    pol = np.sign(np.bincount(code, v, U) / np.maximum(n, 1)).astype(int)
    for u in np.nonzero(n >= 3)[0]:
        out["iv_branches"].append(f"{prog.groups[uniq[u, 0]]}#b{uniq[u, 1]}")
        out["iv_branch_polarity"].append(int(pol[u]))
        out["iv_r2_per_branch"].append(float(r2[u]))
        out["iv_r2_log_per_branch"].append(float(r2_log[u]))
    return out


def part_statistics(result: "FitResult") -> dict[str, Any]:
    """Per-branch (sweeps) and per-cycle (pulse trains) figures of the fitted model, on
    every observation of ``result.program`` (the whole data set, also when the fit used a
    subset)."""
    prog = result.program
    fitted = result.fitted
    part = prog.obs_part if prog.obs_part is not None else np.zeros(prog.y.size, int)
    floor = float(result.dataset.recipe.noise.get("sweep_floor", 0.0))
    out: dict[str, Any] = {**sweep_branch_statistics(prog, fitted, floor),
                           "pulse_cycle_polarity": [],
                           "pulse_r2_per_ramp": [], "pulse_ramp_polarity": [],
                           "pulse_range_over_noise_per_cycle": [],
                           "pulse_cycles": [], "pulse_r2_per_cycle": [],
                           "pulse_rms_steps_per_cycle": [], "pulse_noise_steps_per_cycle": [],
                           "pulse_misfit_steps_per_cycle": [], "pulse_misfit_range_per_cycle": []}
    pulse = np.nonzero(prog.kind == 1)[0]
    units, members = unit_index(prog.obs_group[pulse], part[pulse])
    for (gi, c), mm in zip(units, members):
        m = pulse[mm]
        label = prog.groups[gi]
        y, f = prog.y[m], fitted[m]
        if y.size < 3:
            continue
        if y.min() > 0 and f.min() > 0 and y.max() > DECADE * y.min():
            y, f = np.log10(y), np.log10(f)  # spans decades: judge log10 G
            out["pulse_log_cycles"] = out.get("pulse_log_cycles", 0) + 1
        steps = prog.obs_step[m]
        n_pulses = max(int(steps.max() - steps.min()), 1)
        step = float(np.ptp(y)) / n_pulses
        res = y - f
        rms = math.sqrt(float(np.mean(res ** 2)))
        noise = read_noise(y)
        out["pulse_range_over_noise_per_cycle"].append(
            float(np.ptp(y)) / noise if noise > 0 else math.nan)
        noise = noise if math.isfinite(noise) else 0.0  # unknown: all misfit
        misfit = math.sqrt(max(rms ** 2 - noise ** 2, 0.0))
        _ramps(prog, m, y, f, out)
        out["pulse_cycles"].append(f"{label}#c{c}")
        seq = prog.obs_seq[m[0]]
        k0, k1 = int(steps.min()), int(steps.max())
        out["pulse_cycle_polarity"].append(int(np.sign(np.sum(
            prog.v[seq, k0:k1] * prog.dt[seq, k0:k1] > 0) - np.sum(
            prog.v[seq, k0:k1] * prog.dt[seq, k0:k1] < 0))))
        out["pulse_r2_per_cycle"].append(_r2(y, f))
        for key, val in (("rms", rms), ("noise", noise), ("misfit", misfit)):
            out[f"pulse_{key}_steps_per_cycle"].append(val / step if step > 0 else math.nan)
        out["pulse_misfit_range_per_cycle"].append(misfit / float(np.ptp(y))
                                                   if np.ptp(y) > 0 else math.nan)
    return out


def read_noise(y: np.ndarray) -> float:
    """RMS read noise of a smooth response: ``y`` minus its centred moving average over
    ``w = max(5, n / 40)`` reads, scaled by ``sqrt(w / (w - 1))`` (the average contains the
    read itself). A model-free yardstick: short-range correlated noise (digitised or
    filtered data) is counted as noise, a trend over tens of reads is not. NaN for fewer than
    ``2 w`` reads."""
    y = np.asarray(y, float)
    n = y.size
    w = max(5, n // 40)
    if n < 2 * w:  # too few reads to tell noise from the response
        return math.nan
    kernel = np.ones(w) / w
    smooth = np.convolve(y, kernel, mode="valid")
    lo = (w - 1) // 2
    dev = y[lo:lo + smooth.size] - smooth
    return math.sqrt(float(np.mean(dev ** 2)) * w / (w - 1))


def _ramps(prog, m: np.ndarray, y: np.ndarray, f: np.ndarray, out: dict) -> None:
    """R² of every run of reads after pulses of one polarity (a ramp) within a cycle."""
    seq = prog.obs_seq[m[0]]
    k = prog.obs_step[m]
    pol = np.sign(prog.v[seq, np.clip(k - 1, 0, None)]) * (k > 0)
    run_start = np.r_[True, pol[1:] != pol[:-1]]
    ids = np.cumsum(run_start)
    for r in np.unique(ids):
        sel = ids == r
        if pol[sel][0] == 0 or sel.sum() < 5:
            continue
        out["pulse_r2_per_ramp"].append(_r2(y[sel], f[sel]))
        out["pulse_ramp_polarity"].append(int(pol[sel][0]))


def _median(values) -> float:
    a = np.asarray(values, float)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else math.nan


def _what_is_missed(q: dict, th: dict) -> list[str]:
    """Name the part of the data the family does not describe: I-V branches of one polarity,
    or pulse cycles of one direction, whose median R² is poor while the other's is not."""
    out = []
    for key, pol_key, what, names in (
            ("iv_r2_log_per_branch", "iv_branch_polarity", "I-V branches (log10|I| R²)",
             {1: "positive-bias", -1: "negative-bias"}),
            ("pulse_r2_per_ramp", "pulse_ramp_polarity", "pulse ramps (R²)",
             {1: "potentiation (V > 0)", -1: "depression (V < 0)"})):
        vals = np.asarray(q.get(key, []), float)
        pol = np.asarray(q.get(pol_key, []), int)
        if vals.size == 0 or pol.size != vals.size:
            continue
        med = {p: _median(vals[pol == p]) for p in (1, -1) if np.any(pol == p)}
        if len(med) == 2:
            for p, other in ((1, -1), (-1, 1)):
                if med[p] < th["part_r2_floor"] and med[other] >= th["iv_r2_poor"]:
                    out.append(f"poor: the family does not describe the {names[p]} {what}: "
                               f"median {med[p]:.3f} (the {names[other]} ones: "
                               f"{med[other]:.3f})")
    return out


def verdict(result: "FitResult", thresholds: dict | None = None) -> dict[str, Any]:
    """The quality record of a fit: ``verdict``, ``reasons`` and the figures behind them.

    Reasons are strings prefixed with the verdict they imply (``"poor: ..."``,
    ``"usable: ..."``) or ``"info: ..."`` for what does not lower it (statistics not
    estimated, model selection).
    """
    th = {**THRESHOLDS, **(thresholds or {})}
    q = part_statistics(result)
    reasons: list[str] = []
    prog = result.program
    has_iv, has_pulse = bool((prog.kind == 0).any()), bool((prog.kind == 1).any())
    if has_iv:
        for key, what in (("iv_r2_log_per_branch", "log10|I| R²"), ("iv_r2_per_branch", "I R²")):
            med = _median(q[key])
            vals = np.asarray(q[key], float)
            q[key.replace("per_branch", "median")] = med
            if not math.isfinite(med) or med < th["iv_r2_poor"]:
                reasons.append(f"poor: I-V median per-branch {what} {med:.3f} < {th['iv_r2_poor']}")
            elif med < th["iv_r2_good"]:
                reasons.append(f"usable: I-V median per-branch {what} {med:.3f} < "
                               f"{th['iv_r2_good']}")
            low = int(np.sum(vals[np.isfinite(vals)] < th["part_r2_floor"]))
            if low:
                worst = int(np.nanargmin(vals))
                reasons.append(f"usable: {low} of {vals.size} sweep branches have {what} < "
                               f"{th['part_r2_floor']} (worst {q['iv_branches'][worst]}: "
                               f"{vals[worst]:.3f})")
    if has_pulse:
        snr = _median(q["pulse_range_over_noise_per_cycle"])
        if math.isfinite(snr) and snr <= 5:
            reasons.append(f"poor: the pulse reads do not change beyond their noise (median "
                           f"range / read noise per cycle {snr:.2g}): a stuck or dead device, "
                           f"or pulses that do not switch it")
        r2 = np.asarray(q["pulse_r2_per_cycle"], float)
        q["pulse_r2_median"] = _median(r2)
        q["pulse_rms_steps_median"] = _median(q["pulse_rms_steps_per_cycle"])
        q["pulse_noise_steps_median"] = _median(q["pulse_noise_steps_per_cycle"])
        q["pulse_misfit_steps_median"] = medr = _median(q["pulse_misfit_steps_per_cycle"])
        med = q["pulse_r2_median"]
        if not math.isfinite(med) or med < th["pulse_r2_poor"]:
            reasons.append(f"poor: median per-cycle pulse R² {med:.3f} < {th['pulse_r2_poor']}")
        elif med < th["pulse_r2_good"]:
            reasons.append(f"usable: median per-cycle pulse R² {med:.3f} < {th['pulse_r2_good']}")
        noisy = (f" (RMS {q['pulse_rms_steps_median']:.1f} steps of which read noise "
                 f"{q['pulse_noise_steps_median']:.1f})")
        frac = _median(q["pulse_misfit_range_per_cycle"])
        q["pulse_misfit_range_median"] = frac
        if not math.isfinite(medr) or frac > th["misfit_range_poor"]:
            reasons.append(f"poor: median per-cycle model misfit {medr:.1f} state steps = "
                           f"{100 * frac:.1f} % of the cycle's range > "
                           f"{100 * th['misfit_range_poor']:g} %{noisy}")
        elif medr > th["rms_steps_good"]:
            reasons.append(f"usable: median per-cycle model misfit {medr:.1f} state steps "
                           f"({100 * frac:.1f} % of the range) > {th['rms_steps_good']}{noisy}")
        elif q["pulse_rms_steps_median"] > th["rms_steps_good"]:
            reasons.append(f"info: per-cycle RMS error {q['pulse_rms_steps_median']:.1f} state "
                           f"steps is read noise ({q['pulse_noise_steps_median']:.1f} steps); "
                           f"the model misfit is {medr:.1f} steps")
        low = int(np.sum(r2[np.isfinite(r2)] < th["part_r2_floor"]))
        if low and r2.size > 1:
            reasons.append(f"info: {low} of {r2.size} cycles have R² < {th['part_r2_floor']}")
    reasons += _what_is_missed(q, th)
    # parameters: on bounds, undetermined
    from ..device.card import PARAMETER_INFO

    for name, p in result.parameters.items():
        if not p.vary or name not in PARAMETER_INFO or name in ("c2c_sigma", "d2d_g_sigma",
                                                                 "d2d_v_sigma"):
            continue
        lo, hi = PARAMETER_INFO[name][:2]
        if name in ("g_min_density", "g_max_density", "r_series"):
            lo_t, hi_t, v_t = (math.log10(max(lo, 1e-300)), math.log10(hi),
                               math.log10(max(p.value, 1e-300)))
        else:
            lo_t, hi_t, v_t = lo, hi, p.value
        tol = th["bound_tol"] * (hi_t - lo_t)
        if v_t <= lo_t + tol or v_t >= hi_t - tol:
            side = "lower" if v_t <= lo_t + tol else "upper"
            reasons.append(f"usable: {name} = {p.value:.4g} {p.unit} is at the {side} end of "
                           f"the card's range [{lo:g}, {hi:g}]: the family (or that range) "
                           f"cannot place it inside")
        elif not (math.isfinite(p.stderr) and 0 < p.stderr <= th["rel_stderr_max"] * abs(p.value)):
            reasons.append(f"usable: {name} is undetermined by the data (stderr {p.stderr:.3g} "
                           f"vs value {p.value:.4g} {p.unit})")
    # more free parameters (device scales included) than observations: any "fit" is exact
    n_obs = int(np.count_nonzero(prog.valid))
    k = sum(1 for p in result.parameters.values() if p.vary) + max(len(prog.devices) - 1, 0)
    q["n_observations"], q["n_free"] = n_obs, k
    if n_obs <= k:
        reasons.append(f"poor: underdetermined: {k} free parameters (device scales included) "
                       f"from {n_obs} observations; R² and standard errors mean nothing")
    # state count at the nominal scheme
    n_states = result.metrics.get("n_states_card", math.nan)
    if result.metrics.get("n_states_card_note"):
        reasons.append(f"info: state count at the nominal scheme "
                       f"{result.metrics['n_states_card_note']}")
    elif not (th["n_states_min"] <= n_states <= th["n_states_max"]):
        reasons.append(f"poor: implausible state count {n_states:.3g} at the nominal scheme "
                       f"(outside [{th['n_states_min']:g}, {th['n_states_max']:g}])")
    if not result.statistics.get("success", True):
        reasons.append(f"usable: the optimiser reports no convergence "
                       f"({result.statistics.get('message', '')})")
    c2c = result.statistics.get("c2c", {}).get("c2c_sigma", math.nan)
    if math.isfinite(c2c) and c2c > PARAMETER_INFO["c2c_sigma"][1]:
        reasons.append(f"usable: cycle-to-cycle δ/μ {c2c:.3g} exceeds the card's range (stored "
                       f"clipped at {PARAMETER_INFO['c2c_sigma'][1]:g}): the mean change per "
                       f"pulse is below the read resolution")
    rep = result.statistics.get("c2c_replica", {})
    ratio = rep.get("ratio", math.nan)
    if math.isfinite(ratio) and abs(ratio - 1.0) > th["c2c_replica_tol"]:
        reasons.append(f"usable: c2c_sigma is not reliable on these data: a replica simulated "
                       f"from the fitted card with δ/μ = {rep['input']:.3g} re-estimates "
                       f"{rep['replica_estimate']:.3g}")
    for name in result.card.not_estimated:
        why = result.parameters[name].note if name in result.parameters else ""
        reasons.append(f"info: {name} not estimated ({why})")
    for name, why in result.statistics.get("held", {}).items():
        reasons.append(f"info: {name} held at {getattr(result.card, name):.4g}: {why}")
    for err in result.statistics.get("errors", []):
        reasons.append(f"poor: {err}")
    level = "good"
    if any(r.startswith("usable:") for r in reasons):
        level = "usable"
    if any(r.startswith("poor:") for r in reasons):
        level = "poor"
    return {"verdict": level, "reasons": reasons, "family": result.card.family
            + (f" + r_series {result.card.r_series:.4g} Ohm" if result.card.r_series > 0 else ""),
            "thresholds": th, **q}
