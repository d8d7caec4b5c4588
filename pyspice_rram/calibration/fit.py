"""Joint fit of the model card to DC sweeps and pulse trains at several areas.

Stage 1 — mean behaviour (lmfit ``least_squares``, bounds from ``PARAMETER_INFO``)
    Free: ``log10 g_min_density``, ``log10 g_max_density``, ``v_nl``, ``v_p``, ``v0_p``,
    ``beta_p``, ``v_d``, ``v0_d``, ``beta_d``. Every device's measurement program (sweeps
    step by step, pulses pulse by pulse, exact constant-voltage solution per step, all areas
    at once) is simulated by :mod:`.program`. The residual of observation ``i`` (sweep
    current or read conductance) is ``r_i = (s_d m_i - y_i) / sigma_i``.

    (a) free-running start: each sequence from its initial state, cycle-to-cycle noise off,
        device scales ``s_d`` profiled in closed form (``sum w^2 m y / sum w^2 m^2``), after a
        coarse scan of ``v_p`` and ``v_d``;
    (b) one-step-ahead (conditional) fit: the state before each step is inverted from the
        previous observation, ``x = (y / (s A V_nl sinh(V/V_nl)) - g_min)/(g_max - g_min)``,
        and ``m_i`` is the *expected* state after the step over the cycle-to-cycle factor
        ``kappa ~ N(1, δ/μ)`` (Gauss-Hermite). Residuals are then innovations (close to
        independent) rather than the random walk cycle-to-cycle noise makes of a trajectory.
        Weights ``sigma^2 = (rel |y| + floor)^2 + (δ/μ |Δm|)^2``.
    (c) per-device nuisance parameters (:class:`Nuisance`: scale ``s_d`` with geometric mean
        1, shifts ``dV_p``, ``dV_d`` with mean 0) by block Gauss-Newton over all devices at
        once, alternating with (b) until no card parameter moves by more than 0.2 %.

    Uncertainties: lmfit-style iid standard errors and cluster-robust (sandwich) ones with
    devices as clusters, ``Cov = (J^T J)^-1 [sum_d (J_d^T r_d)(J_d^T r_d)^T] (J^T J)^-1
    D/(D-1)``; the card's ``stderr`` is the larger, and for the densities and ``v_p``,
    ``v_d`` it adds the sampling error of the device mean in quadrature.

Stage 2 — statistics
    ``d2d_g_sigma`` = sd of ``ln s_d`` (ddof 1), stderr ``sigma/sqrt(2(D-1))``.
    ``c2c_sigma``: per potentiation step in the linear region (``0.02 <= x <= 0.85``) the
    factor ``q = L(Δx_meas)/L(Δx_model)`` with ``L(Δx) = -ln(1 - c Δx/(1 - c x))/c`` (exactly
    kappa in the bulk), normalised per train; read noise is removed with
    ``sigma_c^2 = var(q) + 2 cov(q_n, q_n+1)``; stderr from the spread over devices.
    ``d2d_v_sigma``: variance of the fitted shifts ``dV_p``, ``dV_d`` minus the variance the
    same estimator shows on a replica simulated from the fitted card without voltage spread.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmfit
import numpy as np

from ..device.card import PARAMETER_INFO, ModelCard, PulseScheme
from ..device.model import advance, read_conductance, state_from_conductance
from .io import Dataset, load_dataset
from .program import (Program, build_program, observed_states, predict, profile_scales,
                      simulate_states)

log = logging.getLogger(__name__)

#: Card fields fitted in stage 1 (densities are fitted as log10).
MEAN_PARAMETERS = ("g_min_density", "g_max_density", "v_nl", "v_p", "v0_p", "beta_p",
                   "v_d", "v0_d", "beta_d")
STAT_PARAMETERS = ("c2c_sigma", "d2d_g_sigma", "d2d_v_sigma")
_LOG = ("g_min_density", "g_max_density")

#: Generic starting values (not the reference card's), overridable by recipe ``[fit] initial``.
DEFAULT_START = {"v_nl": 0.5, "v_p": 1.0, "v0_p": 0.1, "beta_p": 1.0, "v_d": 1.2,
                 "v0_d": 0.1, "beta_d": 0.5}


def _pname(name: str) -> str:
    return f"log10_{name}" if name in _LOG else name


@dataclass
class ParameterEstimate:
    """Fitted value with uncertainties (SI units of the card)."""

    name: str
    value: float
    stderr: float
    stderr_iid: float = math.nan
    stderr_robust: float = math.nan
    unit: str = ""
    vary: bool = True
    note: str = ""


@dataclass
class FitResult:
    """Outcome of :func:`fit_dataset`.

    Attributes
    ----------
    card : the fitted :class:`ModelCard` (provenance filled in)
    parameters : name -> :class:`ParameterEstimate`
    scales : (D,) per-device conductance scales; devices : their labels; device_area (m²)
    groups : per sweep / pulse train statistics (R², RMSE, n)
    metrics : figures of merit (see :mod:`.metrics`)
    paths : written files
    """

    card: ModelCard
    parameters: dict[str, ParameterEstimate]
    dataset: Dataset
    program: Program
    model: np.ndarray
    scales: np.ndarray
    groups: list[dict] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    statistics: dict[str, Any] = field(default_factory=dict)
    lmfit_result: Any = None
    nuisance: Any = None
    seconds: float = 0.0
    paths: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: parameters with stderr, fit quality and figures of merit."""
        return {
            "dataset": self.dataset.recipe.name,
            "dataset_sha256": self.dataset.sha256,
            "parameters": {k: {"value": p.value, "stderr": p.stderr, "unit": p.unit}
                           for k, p in self.parameters.items()},
            "r2_median": float(np.median([g["r2"] for g in self.groups])) if self.groups else None,
            "n_states": self.card.n_states(),
            "metrics": _jsonable(self.metrics),
            "seconds": self.seconds,
            "paths": {k: str(v) for k, v in self.paths.items()},
        }


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    return obj


# --------------------------------------------------------------------- stage 1
@dataclass
class Nuisance:
    """Per-device nuisance parameters of the conditional fit.

    ``scales`` (D,) conductance scales (geometric mean 1), ``dv_p``/``dv_d`` (D,) shifts of
    ``V_p``/``V_d`` in V (mean 0 over the devices where identifiable; NaN = not identified,
    used as 0), ``c2c`` the cycle-to-cycle δ/μ used for the conditional mean and weights.
    """

    scales: np.ndarray
    dv_p: np.ndarray
    dv_d: np.ndarray
    c2c: float = 0.0

    @property
    def shifts(self) -> tuple[np.ndarray, np.ndarray]:
        return np.nan_to_num(self.dv_p), np.nan_to_num(self.dv_d)


def conditional_prediction(prog: Program, card: ModelCard, nuis: Nuisance,
                           y: np.ndarray | None = None, both: bool = False):
    """One-step-ahead model values (unscaled) of every observation: from the state of the
    previous observation (inverted from ``y``), expected over the cycle-to-cycle factor."""
    p = prog if y is None else Program(**{**prog.__dict__, "y": y})
    xa = observed_states(p, card, nuis.scales)
    dp, dd = nuis.shifts
    out = simulate_states(p, card, assimilate=xa, return_both=both, kappa_mean=nuis.c2c,
                          dv_p=dp, dv_d=dd)
    xp, xs = out if both else (out, None)
    m = predict(p, card, xp)
    return (m, xs) if both else m


class JointModel:
    """Residuals of a card against a data set's program.

    ``mode="free"``: every sequence simulated from its initial state, device scales profiled
    at each evaluation. ``mode="conditional"``: one-step-ahead predictions from the state of
    the previous observation with the per-device ``nuisance`` parameters, weighted by
    ``sigma``.
    """

    def __init__(self, prog: Program, base: ModelCard, mode: str = "free",
                 nuisance: Nuisance | None = None, sigma: np.ndarray | None = None):
        self.prog = prog
        self.base = base
        self.mode = mode
        self.nuis = nuisance
        self.sigma = prog.sigma if sigma is None else sigma
        self.n_eval = 0
        self.callback = None

    def card(self, values: dict[str, float]) -> ModelCard:
        kw = {k: (10.0 ** values[_pname(k)] if k in _LOG else values[k])
              for k in MEAN_PARAMETERS if _pname(k) in values}
        # keep g_max > g_min while the optimiser explores
        if kw.get("g_max_density", self.base.g_max_density) <= kw.get("g_min_density",
                                                                      self.base.g_min_density):
            kw["g_max_density"] = kw.get("g_min_density", self.base.g_min_density) * (1 + 1e-9)
        return self.base.replace(**kw)

    def evaluate(self, card: ModelCard) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Model values (unscaled), device scales and weighted residuals."""
        if self.mode == "free":
            x = simulate_states(self.prog, card)
            m = predict(self.prog, card, x)
            s = profile_scales(self.prog, m)
        else:
            s = self.nuis.scales
            m = conditional_prediction(self.prog, card, self.nuis)
        r = (s[self.prog.obs_device] * m - self.prog.y) / self.sigma
        r = np.where(self.prog.valid, r, 0.0)
        self.n_eval += 1
        if self.callback:
            self.callback()
        return m, s, r

    def residual(self, params: lmfit.Parameters) -> np.ndarray:
        return self.evaluate(self.card(params.valuesdict()))[2]


def initial_values(ds: Dataset, prog: Program, base: ModelCard, start: dict | None) -> dict:
    """Starting values: densities from the data's read conductances, the rest generic."""
    vals = dict(DEFAULT_START)
    dens = prog.y[(prog.kind == 1)] / prog.area[prog.obs_seq[prog.kind == 1]]
    if dens.size < 10:  # sweeps only: low-field chord conductance at |V| <= 0.3 V
        sel = (prog.kind == 0) & (np.abs(prog.obs_v) > 0.05) & (np.abs(prog.obs_v) <= 0.3)
        dens = prog.y[sel] / prog.obs_v[sel] / prog.area[prog.obs_seq[sel]]
    dens = dens[dens > 0]
    if dens.size:
        lo, hi = np.percentile(dens, [2, 98])
        vals["g_min_density"] = float(np.clip(lo, 1.1e3, 1e10))
        vals["g_max_density"] = float(np.clip(max(hi, 1.5 * lo), 1.2e3, 1e11))
    else:
        vals["g_min_density"], vals["g_max_density"] = base.g_min_density, base.g_max_density
    vals.update(start or {})
    return vals


def make_parameters(values: dict, fixed: tuple[str, ...] = ()) -> lmfit.Parameters:
    """lmfit Parameters with the card bounds (log10 for densities)."""
    params = lmfit.Parameters()
    for name in MEAN_PARAMETERS:
        lo, hi, _unit, _ = PARAMETER_INFO[name]
        v = values[name]
        if name in _LOG:
            params.add(_pname(name), value=math.log10(v), min=math.log10(lo), max=math.log10(hi),
                       vary=name not in fixed)
        else:
            params.add(name, value=float(np.clip(v, lo, hi)), min=lo, max=hi, vary=name not in fixed)
    return params


def _scan(model: JointModel, params: lmfit.Parameters, name: str, grid: np.ndarray) -> None:
    """Set ``name`` to the grid value with the lowest cost (a coarse start for thresholds)."""
    if not params[name].vary:
        return
    best, arg = math.inf, params[name].value
    for val in grid:
        p = params.copy()
        p[name].value = float(val)
        c = float(np.sum(model.residual(p) ** 2))
        if c < best:
            best, arg = c, float(val)
    params[name].value = arg


def robust_covariance(model: JointModel, params: lmfit.Parameters,
                      r0: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Cluster-robust (sandwich) and iid covariances of the free parameters (internal
    scale), with central-difference Jacobian; clusters are devices."""
    names = [n for n, p in params.items() if p.vary]
    J = np.empty((r0.size, len(names)))
    for j, n in enumerate(names):
        p = params[n]
        h = 1e-4 * max(abs(p.value), 0.05)
        lo, hi = params.copy(), params.copy()
        up = min(p.value + h, p.max)
        dn = max(p.value - h, p.min)
        hi[n].value, lo[n].value = up, dn
        J[:, j] = (model.residual(hi) - model.residual(lo)) / (up - dn)
    bread = np.linalg.pinv(J.T @ J)
    dof = max(r0.size - len(names), 1)
    cov_iid = bread * float(r0 @ r0) / dof
    dev = model.prog.obs_device
    D = len(model.prog.devices)
    score = np.zeros((D, len(names)))
    np.add.at(score, dev, J * r0[:, None])
    meat = score.T @ score
    cov_rob = bread @ meat @ bread * D / max(D - 1, 1)
    return names, cov_iid, cov_rob


def conditional_sigma(prog: Program, card: ModelCard, nuis: Nuisance) -> np.ndarray:
    """Weighting sigma of one-step-ahead residuals: the recipe's noise model and the
    cycle-to-cycle spread ``c2c |Δm|`` of the predicted change of the step."""
    m_pred, xs = conditional_prediction(prog, card, nuis, both=True)
    s = nuis.scales[prog.obs_device]
    xs_prev = xs[prog.obs_seq, np.maximum(prog.obs_step - 1, 0)]
    from ..device.model import cell_current

    m_prev = cell_current(prog.obs_v, xs_prev, prog.area[prog.obs_seq], card) / prog.obs_div
    return np.sqrt(prog.sigma**2 + (nuis.c2c * s * np.abs(m_pred - m_prev)) ** 2)


def update_nuisance(prog: Program, card: ModelCard, nuis: Nuisance, sigma: np.ndarray, *,
                    iters: int = 3, y: np.ndarray | None = None, shifts: bool = True,
                    scales: bool = True) -> Nuisance:
    """Per-device ``ln s_d``, ``dV_p``, ``dV_d`` minimising the one-step-ahead residuals with
    the card fixed.

    Devices are independent, so one simulation with a parameter of *every* device perturbed
    gives all their derivatives: block Gauss-Newton with 3x3 normal equations per device.
    A parameter whose sensitivity is below 1e-4 of the best-determined device's (e.g.
    ``dV_d`` when the only depression is a saturating reset) is not identifiable: NaN.
    Scales are normalised to a geometric mean of 1 and shifts to mean 0.
    """
    yy = prog.y if y is None else y
    dev = prog.obs_device
    D = len(prog.devices)
    u = np.vstack([np.log(nuis.scales), *nuis.shifts])  # (3, D)
    active = [k for k, on in enumerate((scales, shifts, shifts)) if on]
    h = np.array([1e-4, 1e-3, 1e-3])

    def resid(uu):
        n = Nuisance(np.exp(uu[0]), uu[1], uu[2], nuis.c2c)
        m = conditional_prediction(prog, card, n, y=yy)
        return np.where(prog.valid, (n.scales[dev] * m - yy) / sigma, 0.0)

    ident = np.ones((3, D), bool)
    for it in range(iters):
        r = resid(u)
        J = {}
        for k in active:
            up = u.copy()
            up[k] += h[k]
            J[k] = (resid(up) - r) / h[k]
        A = np.zeros((D, 3, 3))
        g = np.zeros((D, 3))
        for a in active:
            g[:, a] = np.bincount(dev, J[a] * r, D)
            for b in active:
                A[:, a, b] = np.bincount(dev, J[a] * J[b], D)
        if it == 0:
            diag = np.diagonal(A, axis1=1, axis2=2)  # (D, 3)
            for k in range(3):
                mx = diag[:, k].max()
                ident[k] = (diag[:, k] > 1e-4 * mx) if (k in active and mx > 0) else False
        mask = ident.T.astype(float)  # (D, 3)
        A = A * mask[:, :, None] * mask[:, None, :] + np.eye(3)[None] * (1 - mask)[:, :, None]
        A = A + 1e-9 * np.eye(3)[None] * np.maximum(np.abs(A).max(axis=(1, 2)), 1e-300)[:, None, None]
        step = -np.linalg.solve(A, (g * mask)[:, :, None])[:, :, 0]
        u = u + step.T
        u[1:] = np.clip(u[1:], -0.3, 0.3)
    s_new = np.exp(u[0] - np.mean(u[0]))
    dp = np.where(ident[1], u[1], np.nan)
    dd = np.where(ident[2], u[2], np.nan)
    if np.isfinite(dp).any():
        dp = dp - np.nanmean(dp)
    if np.isfinite(dd).any():
        dd = dd - np.nanmean(dd)
    return Nuisance(s_new, dp, dd, nuis.c2c)


# --------------------------------------------------------------------- stage 2
def pulse_steps(prog: Program, card: ModelCard, scales: np.ndarray) -> dict[str, np.ndarray]:
    """Consecutive read pairs around single potentiation pulses in pulse trains.

    Returns arrays over steps: measured ``dg`` (S), model step ``dg_model`` from the state
    of the previous read, that state ``x_prev``, the device, the train (group) and the
    pulse amplitude.
    """
    sel = np.nonzero(prog.kind == 1)[0]
    out = {k: [] for k in ("dg", "dg_model", "x_prev", "device", "group", "v", "g_prev",
                           "l_meas", "l_model")}
    if sel.size < 2:
        return {k: np.zeros(0) for k in out}
    i0, i1 = sel[:-1], sel[1:]
    ok = (prog.obs_seq[i0] == prog.obs_seq[i1]) & (prog.obs_step[i1] == prog.obs_step[i0] + 1)
    i0, i1 = i0[ok], i1[ok]
    seq = prog.obs_seq[i1]
    k = prog.obs_step[i1] - 1
    v = prog.v[seq, k]
    t = prog.dt[seq, k]
    s = scales[prog.obs_device[i1]]
    area = prog.area[seq]
    g0 = prog.y[i0] / s
    x_prev = np.clip(state_from_conductance(g0, area, card, prog.obs_v[i0]), 0.0, 1.0)
    x_next = advance(x_prev, v, t, card)
    dgm = s * (read_conductance(x_next, area, card, prog.obs_v[i1])
               - read_conductance(x_prev, area, card, prog.obs_v[i0]))
    # measured state change (unclipped), and the potentiation "rate integral"
    # L(dx) = -ln(1 - c dx / (1 - c x)) / c that is linear in kappa in the bulk
    x_next_meas = state_from_conductance(prog.y[i1] / s, area, card, prog.obs_v[i1])
    x_prev_raw = state_from_conductance(g0, area, card, prog.obs_v[i0])
    c = card.c_p

    def L(dx):
        if abs(c) < 1e-9:
            return dx
        arg = -c * dx / (1.0 - c * x_prev_raw)
        return -np.log1p(np.maximum(arg, -0.999999)) / c

    return {"dg": prog.y[i1] - prog.y[i0], "dg_model": dgm, "x_prev": x_prev,
            "device": prog.obs_device[i1], "group": prog.obs_group[i1], "v": v,
            "g_prev": prog.y[i0], "l_meas": L(x_next_meas - x_prev_raw),
            "l_model": L(x_next - x_prev)}


def estimate_c2c(steps: dict[str, np.ndarray], x_lo: float = 0.02, x_hi: float = 0.85) -> dict:
    """δ/μ of the conductance change per potentiation pulse, read noise removed.

    Per pulse train (group): ``q = L(Δx_meas) / L(Δx_model)`` (the ratio of the rate
    integrals ``L(Δx) = -ln(1 - c Δx/(1 - c x))/c`` of the measured and the model step, which
    is exactly kappa in the bulk, where ``ΔG`` is only nearly proportional to it) on
    potentiation steps with
    ``x_lo <= x_prev <= x_hi``, divided by its mean; ``sigma_c^2 = var(q) + 2 cov1(q)``
    where ``cov1`` is the covariance of consecutive steps (read noise is shared by the two
    steps around a read). Returns the pooled estimate, its stderr from the spread of
    per-device estimates, the raw (noise-included) δ/μ and the read-noise part.
    """
    m = (steps["v"] > 0) & (steps["x_prev"] >= x_lo) & (steps["x_prev"] <= x_hi) \
        & (steps["dg_model"] > 0)
    if m.sum() < 20:
        return {"c2c_sigma": math.nan, "stderr": math.nan, "raw": math.nan, "n": int(m.sum())}
    q_all = np.full(steps["dg"].size, np.nan)
    q_all[m] = steps["l_meas"][m] / steps["l_model"][m]
    groups = steps["group"]
    for g in np.unique(groups[m]):
        gm = m & (groups == g)
        q_all[gm] /= np.mean(q_all[gm])
    dq = q_all - 1.0
    pair = m[:-1] & m[1:] & (groups[:-1] == groups[1:])
    var_terms = dq[m] ** 2
    cov_terms = dq[:-1][pair] * dq[1:][pair]
    var = float(np.mean(var_terms))
    cov1 = float(np.mean(cov_terms)) if cov_terms.size else 0.0
    sig2 = var + 2.0 * cov1
    # per-device estimates for the stderr
    dev = steps["device"]
    per = []
    for d in np.unique(dev[m]):
        dm = m & (dev == d)
        pm = pair & (dev[:-1] == d)
        if dm.sum() >= 20 and pm.sum() >= 10:
            per.append(np.mean(dq[dm] ** 2) + 2 * np.mean(dq[:-1][pm] * dq[1:][pm]))
    per = np.array(per)
    se2 = np.std(per, ddof=1) / math.sqrt(per.size) if per.size > 2 else math.nan
    sigma = math.sqrt(max(sig2, 0.0))
    return {"c2c_sigma": sigma, "stderr": se2 / (2 * max(sigma, 1e-12)),
            "raw_q_sd": math.sqrt(var), "read_noise_part": math.sqrt(max(-2 * cov1, 0.0)),
            "n": int(m.sum()), "n_devices": int(per.size)}


def estimate_d2d_v(prog: Program, card: ModelCard, nuis: Nuisance, sigma: np.ndarray,
                   rng: int = 1) -> dict:
    """``d2d_v_sigma`` from the per-device shifts of the conditional fit minus the variance
    the same estimator shows on a replica of the data simulated from the fitted card
    *without* device-to-device voltage spread (same program, scales, cycle-to-cycle noise
    and the recipe's measurement noise)."""
    data = np.r_[nuis.dv_p, nuis.dv_d]
    data = data[np.isfinite(data)]
    if data.size < 3:
        return {"d2d_v_sigma": math.nan, "stderr": math.nan, "n": int(data.size)}
    c = card.replace(c2c_sigma=float(np.clip(nuis.c2c, 0, 3)))
    x = simulate_states(prog, c, g_scale=nuis.scales, c2c=True, rng=rng)
    g = predict(prog, c, x, nuis.scales)
    y = g + prog.sigma * np.random.default_rng(rng + 1).standard_normal(g.size)
    start = Nuisance(nuis.scales, np.zeros_like(nuis.scales), np.zeros_like(nuis.scales), nuis.c2c)
    rep = update_nuisance(prog, card, start, sigma, y=y)
    noise = np.r_[rep.dv_p, rep.dv_d]
    noise = noise[np.isfinite(noise)]
    v_data = float(np.var(data, ddof=1))
    v_noise = float(np.mean(noise**2)) if noise.size else 0.0
    sig2 = v_data - v_noise
    sigma_v = math.sqrt(max(sig2, 0.0))
    se_var = math.sqrt(2 * v_data**2 / (data.size - 1) + 2 * v_noise**2 / max(noise.size, 1))
    se = se_var / (2 * sigma_v) if sigma_v > 0 else math.sqrt(se_var)
    return {"d2d_v_sigma": sigma_v, "stderr": se, "n": int(data.size), "var_data": v_data,
            "var_noise": v_noise, "identifiable": bool(sig2 > 2 * se_var)}


# --------------------------------------------------------------------- driver
def group_statistics(prog: Program, fitted: np.ndarray) -> list[dict]:
    """R² and RMSE (in the measured unit) of every sweep and pulse train."""
    out = []
    for gi, label in enumerate(prog.groups):
        m = (prog.obs_group == gi) & prog.valid
        y, f = prog.y[m], fitted[m]
        if y.size == 0:
            continue
        ss_res = float(np.sum((y - f) ** 2))
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        out.append({"group": label, "kind": prog.group_kind[gi], "n": int(y.size),
                    "excluded": int(((prog.obs_group == gi) & ~prog.valid).sum()),
                    "r2": 1 - ss_res / ss_tot if ss_tot > 0 else math.nan,
                    "rmse": math.sqrt(ss_res / y.size),
                    "rel_rmse": math.sqrt(ss_res / y.size) / float(np.mean(np.abs(y)))})
    return out


def fit_program(ds: Dataset, *, progress: bool = True, start: dict | None = None,
                fixed: tuple[str, ...] = (), max_nfev: int = 400, scan: bool = True,
                statistics: bool = True, conditional: bool = True,
                max_rounds: int = 4) -> FitResult:
    """Fit a loaded data set; no files written (see :func:`fit_dataset`)."""
    t0 = time.time()
    rec = ds.recipe
    prog = build_program(ds)
    scheme = PulseScheme(**rec.scheme) if rec.scheme else PulseScheme()
    base = ModelCard(scheme=scheme, name=rec.name,
                     **{k: v for k, v in rec.fit.get("card", {}).items()})
    start = {**rec.fit.get("initial", {}), **(start or {})}
    fixed = tuple(fixed) + tuple(rec.fit.get("fixed", ()))
    model = JointModel(prog, base)
    params = make_parameters(initial_values(ds, prog, base, start), fixed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"fit {rec.name}: start", unit=" model evaluations", leave=True)
        model.callback = bar.update
    try:
        if scan and "v_p" not in start:
            _scan(model, params, "v_p", np.linspace(0.3, 2.5, 12))
        if scan and "v_d" not in start:
            _scan(model, params, "v_d", np.linspace(0.3, 2.5, 12))
        # (a) free-running fit: robust start, device scales
        mini = lmfit.Minimizer(model.residual, params)
        if bar is not None:
            bar.set_description(f"fit {rec.name}: free-running")
        res = mini.minimize(method="least_squares", max_nfev=max_nfev, x_scale="jac",
                            ftol=1e-6, xtol=1e-6, gtol=1e-8)
        card = model.card(res.params.valuesdict())
        m_free, scales, _ = model.evaluate(card)
        stats_free = {"redchi": float(res.redchi), "nfev": res.nfev}
        rounds = 0
        nuis = Nuisance(scales, np.zeros(len(prog.devices)), np.zeros(len(prog.devices)))
        sigma = prog.sigma
        if conditional:
            # (b) one-step-ahead fit, alternating with the per-device nuisance parameters
            # (scales, V_p/V_d shifts); weights from measurement and cycle-to-cycle noise
            c2c0 = estimate_c2c(pulse_steps(prog, card, scales))["c2c_sigma"]
            nuis.c2c = c2c0 if math.isfinite(c2c0) else 0.3
            for rounds in range(1, max_rounds + 1):
                sigma = conditional_sigma(prog, card, nuis)
                nuis = update_nuisance(prog, card, nuis, sigma)
                sigma = conditional_sigma(prog, card, nuis)
                model = JointModel(prog, base, "conditional", nuis, sigma)
                if bar is not None:
                    model.callback = bar.update
                    bar.set_description(f"fit {rec.name}: conditional round {rounds}")
                before = np.array(list(res.params.valuesdict().values()))
                mini = lmfit.Minimizer(model.residual, res.params)
                res = mini.minimize(method="least_squares", max_nfev=max_nfev, x_scale="jac",
                                    ftol=1e-10, xtol=1e-10, gtol=1e-10)
                card = model.card(res.params.valuesdict())
                after = np.array(list(res.params.valuesdict().values()))
                change = float(np.max(np.abs(after - before) / np.maximum(np.abs(before), 0.05)))
                log.info("conditional round %d: max relative change %.2g", rounds, change)
                c2c_new = estimate_c2c(pulse_steps(prog, card, nuis.scales))["c2c_sigma"]
                nuis.c2c = c2c_new if math.isfinite(c2c_new) else nuis.c2c
                if change < 2e-3:
                    break
            scales = nuis.scales
        best = res.params
        _, _, r = model.evaluate(card)
        names, cov_iid, cov_rob = robust_covariance(model, best, r)
        # the fitted card with each device's nuisance parameters, free-running: what the
        # report overlays and R² judge
        m = predict(prog, card, simulate_states(prog, card, g_scale=scales,
                                                dv_p=nuis.shifts[0], dv_d=nuis.shifts[1]))
        if not conditional:
            scales = profile_scales(prog, m)
    finally:
        if bar is not None:
            bar.close()
    D = len(prog.devices)
    d2d_g = float(np.std(np.log(scales), ddof=1)) if D > 1 else 0.0
    ests: dict[str, ParameterEstimate] = {}
    for name in MEAN_PARAMETERS:
        pn = _pname(name)
        unit = PARAMETER_INFO[name][2]
        if pn in names:
            j = names.index(pn)
            si, sr = math.sqrt(max(cov_iid[j, j], 0)), math.sqrt(max(cov_rob[j, j], 0))
            val = getattr(card, name)
            if name in _LOG:  # d g = g ln10 d log10 g; plus sampling error of the mean
                si, sr = val * math.log(10) * si, val * math.log(10) * sr
                samp = val * d2d_g / math.sqrt(D)
                se = math.hypot(max(si, sr), samp)
                note = "stderr includes the sampling error of the device mean"
            elif name in ("v_p", "v_d") and conditional:
                dv = nuis.dv_p if name == "v_p" else nuis.dv_d
                dv = dv[np.isfinite(dv)]
                samp = float(np.std(dv, ddof=1) / math.sqrt(dv.size)) if dv.size > 2 else 0.0
                se = math.hypot(max(si, sr), samp)
                note = "stderr includes the sampling error of the device mean"
            else:
                se, note = max(si, sr), ""
            ests[name] = ParameterEstimate(name, val, se, si, sr, unit, True, note)
        else:
            ests[name] = ParameterEstimate(name, getattr(card, name), 0.0, unit=unit, vary=False,
                                           note="fixed")
    stats: dict[str, Any] = {"n_devices": D, "lmfit_nfev": res.nfev, "free_stage": stats_free,
                             "conditional_rounds": rounds,
                             "mode": model.mode, "redchi": float(res.redchi),
                             "success": bool(res.success), "message": str(res.message)}
    ests["d2d_g_sigma"] = ParameterEstimate(
        "d2d_g_sigma", d2d_g, d2d_g / math.sqrt(2 * max(D - 1, 1)), unit="1",
        note=f"sd of ln(scale) over {D} devices")
    card = card.replace(d2d_g_sigma=float(np.clip(d2d_g, *PARAMETER_INFO["d2d_g_sigma"][:2])))
    if statistics:
        steps = pulse_steps(prog, card, scales)
        c2c = estimate_c2c(steps)
        stats["c2c"] = {k: v for k, v in c2c.items()}
        if math.isfinite(c2c["c2c_sigma"]):
            ests["c2c_sigma"] = ParameterEstimate("c2c_sigma", c2c["c2c_sigma"], c2c["stderr"],
                                                  unit="1", note="δ/μ of ΔG per pulse, read noise removed")
            card = card.replace(c2c_sigma=float(np.clip(c2c["c2c_sigma"], 0, 3)))
        else:
            ests["c2c_sigma"] = ParameterEstimate("c2c_sigma", card.c2c_sigma, math.nan, unit="1",
                                                  vary=False, note="no pulse data: not identified")
        if conditional:
            d2d_v = estimate_d2d_v(prog, card, nuis, sigma)
            stats["d2d_v"] = d2d_v
            if math.isfinite(d2d_v["d2d_v_sigma"]):
                ests["d2d_v_sigma"] = ParameterEstimate(
                    "d2d_v_sigma", d2d_v["d2d_v_sigma"], d2d_v["stderr"], unit="V",
                    note="per-device V_p/V_d shifts minus estimator noise"
                    + ("" if d2d_v["identifiable"] else " (not significant)"))
                card = card.replace(d2d_v_sigma=float(np.clip(d2d_v["d2d_v_sigma"], 0, 1)))
        if "d2d_v_sigma" not in ests:
            ests["d2d_v_sigma"] = ParameterEstimate("d2d_v_sigma", card.d2d_v_sigma, math.nan,
                                                    unit="V", vary=False, note="not identified")
    fitted = m * scales[prog.obs_device]
    result = FitResult(card=card, parameters=ests, dataset=ds, program=prog, model=m,
                       scales=scales, groups=group_statistics(prog, fitted), statistics=stats,
                       lmfit_result=res, nuisance=nuis)
    from .metrics import figures_of_merit

    result.metrics = figures_of_merit(result)
    result.seconds = time.time() - t0
    card.provenance = {}
    card.stamp(dataset=rec.name, dataset_sha256=ds.sha256, dataset_files=ds.files,
               synthetic_dataset=rec.synthetic,
               fit_date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               method="pyspice_rram.calibration.fit (lmfit least_squares + statistics stage)",
               stderr={k: p.stderr for k, p in ests.items()},
               stderr_iid={k: p.stderr_iid for k, p in ests.items() if p.vary},
               redchi=float(res.redchi), n_devices=D, seconds=round(result.seconds, 1))
    card.provenance["stderr"] = _jsonable(card.provenance["stderr"])
    card.provenance["stderr_iid"] = _jsonable(card.provenance["stderr_iid"])
    return result


def reference_truth(ds: Dataset) -> ModelCard | None:
    """The generating card of a synthetic data set (its ``generator.json``), else None."""
    import json

    gen = ds.recipe.directory / "generator.json"
    if not (ds.recipe.synthetic and gen.exists()):
        return None
    try:
        return ModelCard.from_dict(json.loads(gen.read_text())["card"])
    except (KeyError, ValueError, TypeError):
        return None


def write_outputs(result: FitResult, outdir: str | Path, *, card_path: str | Path | None = None,
                  report: bool = True) -> dict[str, Path]:
    """Write the card JSON, ngspice ``.lib``, Verilog-A ``.va`` (when the generator is
    available) and the report into ``outdir``."""
    from ..device.ngspice import write_cell_library

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["card"] = result.card.save(card_path or outdir / "card.json")
    paths["lib"] = write_cell_library(result.card, outdir / "motiox_fit.lib")
    try:
        from ..device.veriloga import write_veriloga
    except ImportError:  # pragma: no cover - depends on the device layer build
        log.warning("pyspice_rram.device.veriloga not available: no .va written")
    else:
        paths["va"] = write_veriloga(result.card, outdir / "motiox_fit.va")
    if report:
        from .report import write_report

        paths.update(write_report(result, outdir / "report", truth=reference_truth(result.dataset)))
    result.paths.update(paths)
    return paths


def fit_dataset(dataset_dir: str | Path, outdir: str | Path | None = None, progress: bool = True,
                *, card_path: str | Path | None = None, report: bool = True,
                **kwargs) -> FitResult:
    """Load a data set, fit it, and write card, ``.lib``, ``.va`` and report.

    Parameters
    ----------
    dataset_dir : directory with ``recipe.toml``/``recipe.json`` (or the recipe file)
    outdir : where outputs go (default: the data-set directory)
    progress : show a tqdm progress bar over model evaluations
    card_path : card JSON path (default ``outdir/card.json``)
    report : write ``outdir/report/`` (markdown + PNG figures)
    kwargs : passed to :func:`fit_program` (``start``, ``fixed``, ``max_nfev``, ...)
    """
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        ds = load_dataset(dataset_dir)
    result = fit_program(ds, progress=progress, **kwargs)
    outdir = Path(outdir) if outdir is not None else ds.recipe.directory
    write_outputs(result, outdir, card_path=card_path, report=report)
    return result
