"""Joint fit of model cards to DC sweeps and pulse trains at several areas.

Every candidate family (:mod:`.families`: the recipe's ``[fit] families`` or the defaults
for the data's kinds) is fitted by the stages below; the families are ranked by BIC of the
free-running weighted residuals (a family with parameters on bounds gives way to an interior
one within ΔBIC :data:`BIC_STRONG`), and the chosen fit is judged by
:func:`.quality.verdict`.

Stage 1 — mean behaviour (lmfit ``least_squares``, bounds from ``PARAMETER_INFO``)
    Free: the family's parameters (default family: ``log10 g_min_density``,
    ``log10 g_max_density``, ``v_nl``, ``v_p``, ``v0_p``, ``beta_p``, ``v_d``, ``v0_d``,
    ``beta_d``; ``log10 r_series`` with ``+rs``) except those the data cannot determine,
    which are held with the reason (:func:`.families.free_parameters`). Every device's measurement program (sweeps
    step by step, pulses pulse by pulse, exact constant-voltage solution per step, all areas
    at once) is simulated by :mod:`.program`. The residual of observation ``i`` (sweep
    current or read conductance) is ``r_i = (s_d m_i - y_i) / sigma_i``.

    (0) global stage (:func:`global_start`): a seeded Sobol design of starts, the best two
        refined briefly: the outcome does not depend on the caller's start values;
    (a) free-running fit: each sequence from its initial state (each cycle from its first
        read with ``state_from_first_read``), cycle-to-cycle noise off, device scales ``s_d``
        profiled in closed form (``sum w^2 m y / sum w^2 m^2``);
    (b) one-step-ahead (conditional) fit: the state before each step is inverted from the
        previous observation, ``x = (y / (s A V_nl sinh(V/V_nl)) - g_min)/(g_max - g_min)``,
        and ``m_i`` is the *expected* state after the step over the cycle-to-cycle factor
        ``kappa ~ N(1, δ/μ)`` (Gauss-Hermite). Residuals are then innovations (close to
        independent) rather than the random walk cycle-to-cycle noise makes of a trajectory.
        Weights ``sigma^2 = (rel |y| + floor)^2 + (δ/μ |Δm|)^2``.
    (c) per-device nuisance parameters (:class:`Nuisance`: scale ``s_d`` with geometric mean
        1, shifts ``dV_p``, ``dV_d`` with mean 0) by block Gauss-Newton over all devices at
        once, alternating with (b) until no card parameter moves by more than 0.2 %. The
        conditional result is dropped (free-running fit kept) if its free-running cost is
        1.5x worse: a one-step-ahead optimum can drift where the trajectory is loosely tied.

    Uncertainties: lmfit-style iid standard errors and cluster-robust (sandwich) ones with
    devices as clusters, ``Cov = (J^T J)^-1 [sum_d (J_d^T r_d)(J_d^T r_d)^T] (J^T J)^-1
    D/(D-1)``; the card's ``stderr`` is the larger, and for the densities and ``v_p``,
    ``v_d`` it adds the sampling error of the device mean in quadrature.

Stage 2 — statistics
    ``d2d_g_sigma`` = sd of ``ln s_d`` (ddof 1), stderr ``sigma/sqrt(2(D-1))``.
    ``c2c_sigma``: per potentiation step in the linear region (``0.02 <= x <= 0.85``) the
    factor ``q = L(Δx_meas)/L(Δx_model)`` with ``L`` the rate integral of the family
    (:func:`potentiation_integral`, exactly kappa in the bulk), normalised per train; read noise is removed with
    ``sigma_c^2 = var(q) + 2 cov(q_n, q_n+1)``; stderr from the spread over devices.
    ``d2d_v_sigma``: variance of the fitted shifts ``dV_p``, ``dV_d`` minus the variance the
    same estimator shows on a replica simulated from the fitted card without voltage spread.
    A statistic the data cannot give (fewer than two cycles, one device per area, fewer than
    three devices) is stored as not estimated (``None`` in the card), never copied.
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
from ..device.model import advance, junction_voltage, read_conductance, state_from_conductance
from .io import Dataset, load_dataset
from .families import FamilySpec, candidate_families, free_parameters
from .program import (Program, build_program, free_states, observed_states, predict,
                      profile_scales, simulate_states, subset_program)
from ..errors import DataError

log = logging.getLogger(__name__)

#: Card fields fitted in stage 1 (densities are fitted as log10).
MEAN_PARAMETERS = ("g_min_density", "g_max_density", "v_nl", "v_p", "v0_p", "beta_p",
                   "v_d", "v0_d", "beta_d")
STAT_PARAMETERS = ("c2c_sigma", "d2d_g_sigma", "d2d_v_sigma")
_LOG = ("g_min_density", "g_max_density", "r_series")
#: Lower bound of ``r_series`` when it is fitted (on a log scale), Ohm.
R_SERIES_MIN = 1.0

#: Generic starting values (not the reference card's), overridable by recipe ``[fit] initial``.
DEFAULT_START = {"v_nl": 0.5, "v_p": 1.0, "v0_p": 0.1, "beta_p": 1.0, "v_d": 1.2,
                 "v0_d": 0.1, "beta_d": 0.5, "n_f": 2.0, "n_r": 10.0, "gamma_p": 1.0,
                 "gamma_d": 1.0, "r_series": 100.0}

#: Box of the global stage's starts per parameter (log10 for ``r_series``).
START_BOX = {"v_p": (0.05, 3.0), "v_d": (0.05, 3.0), "v0_p": (0.03, 0.4), "v0_d": (0.03, 0.4),
             "beta_p": (-4.0, 6.0), "beta_d": (-4.0, 6.0), "gamma_p": (0.2, 4.0),
             "gamma_d": (0.2, 4.0), "v_nl": (0.1, 2.0), "n_f": (1.0, 30.0), "n_r": (2.0, 100.0),
             "r_series": (0.0, 6.0)}


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


#: Observations above which the fit runs on a representative subset
#: (:func:`.program.subset_program`); the verdict is still computed on every observation.
FIT_MAX_POINTS = 100_000
#: Size of that subset: points x families tried (the work of one family on 50 000 points,
#: about the shipped reference fit), i.e. 10 000 points for the five default sweep families.
FIT_SUBSET_WORK = 50_000


@dataclass
class FitResult:
    """Outcome of :func:`fit`: the fitted card, its uncertainties and its verdict, in memory.

    Attributes
    ----------
    card : the fitted :class:`ModelCard` (provenance filled in)
    parameters : name -> :class:`ParameterEstimate`
    dataset : the fitted :class:`~.io.Dataset`
    program : the data set's whole measurement :class:`~.program.Program` (every
        observation: what ``model``, ``groups`` and ``quality`` describe)
    model, scales : free-running model value of every observation of ``program`` (unscaled,
        A or S) and the (D,) per-device conductance scales
    groups : per sweep / pulse train statistics (R², RMSE, n)
    metrics : figures of merit (see :mod:`.metrics`)
    quality : the verdict record (:func:`.quality.verdict`): ``verdict``, ``reasons``, ...
    selection : one row per family tried (k, SSR, AIC, BIC, ΔBIC, chosen)
    covariance, covariance_iid : covariance of the varied parameters on the fit's internal
        scale (``log10`` for densities and ``r_series``; cluster-robust with devices as
        clusters when there are several devices, else iid) and the iid one; rows and
        columns named by ``covariance_names``
    fit_subset : ``{"n_fit", "n_total", "subsampled", "rule", ...}``: the points the fit
        used (all of them up to :data:`FIT_MAX_POINTS`)
    fitted_program : the program the fit ran on (``program`` itself unless subsampled)
    paths : files written by :meth:`save`
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
    quality: dict[str, Any] = field(default_factory=dict)
    selection: list[dict] = field(default_factory=list)
    covariance: np.ndarray | None = None
    covariance_iid: np.ndarray | None = None
    covariance_names: list[str] = field(default_factory=list)
    fit_subset: dict[str, Any] = field(default_factory=dict)
    fitted_program: Program | None = None

    @property
    def fitted(self) -> np.ndarray:
        """Free-running fitted value of every observation, device scale applied (A or S)."""
        return self.model * self.scales[self.program.obs_device]

    @property
    def verdict(self) -> str | None:
        """``"good"``, ``"usable"`` or ``"poor"`` (None before the verdict stage)."""
        return (self.quality or {}).get("verdict")

    @property
    def correlation(self) -> np.ndarray | None:
        """Correlation matrix of :attr:`covariance` (NaN where a parameter is
        undetermined)."""
        if self.covariance is None:
            return None
        d = np.sqrt(np.maximum(np.diag(self.covariance), 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.covariance / np.outer(d, d)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: parameters with stderr, fit quality and figures of merit."""
        return {
            "dataset": self.dataset.recipe.name,
            "dataset_sha256": self.dataset.sha256,
            "parameters": _jsonable({k: {"value": p.value, "stderr": p.stderr, "unit": p.unit}
                                     for k, p in self.parameters.items()}),
            "r2_median": float(np.median([g["r2"] for g in self.groups])) if self.groups else None,
            "family": self.card.family,
            "verdict": (self.quality or {}).get("verdict"),
            "n_states": self.metrics.get("n_states_card", self.card.n_states()),
            "metrics": _jsonable(self.metrics),
            "fit_points": _jsonable(self.fit_subset),
            "seconds": self.seconds,
            "paths": {k: str(v) for k, v in self.paths.items()},
        }

    def report(self, min_correl: float = 0.1) -> str:
        """A text report in the manner of lmfit's ``fit_report``: data set and points used,
        the verdict with its reasons, the family selection, every parameter with its
        standard errors (or why it is held / not estimated), the fit statistics and the
        correlations of the varied parameters with ``|r| >= min_correl``, strongest first."""
        return text_report(self, min_correl)

    def save(self, path: str | Path, force: bool = False, *, card_path: str | Path | None = None,
             report: bool = True, report_dir: str | Path | None = None) -> dict[str, Path]:
        """Write the output set: the card JSON and ``quality.json`` beside it, the ngspice
        ``.lib``, the Verilog-A ``.va`` and the report (:func:`write_outputs`: written as one
        set, atomically).

        Parameters
        ----------
        path : output directory, or the card's path (``*.json``; its directory is the
            output directory)
        force : overwrite an existing card (and its set); without it an existing card is a
            :class:`~pyspice_rram.errors.UserInputError`
        card_path : card path when ``path`` is a directory (default ``path/card.json``)
        report : write the report (markdown, figures, ``groups.csv``, text reports)
        report_dir : default ``<output directory>/report``
        """
        path = Path(path)
        if path.suffix.lower() == ".json" and card_path is None:
            path, card_path = path.parent, path
        check_not_overwriting(Path(card_path) if card_path else path / "card.json", force)
        return write_outputs(self, path, card_path=card_path, report=report,
                             report_dir=report_dir)


def check_not_overwriting(card_path: Path, force: bool, hint: str | None = None) -> None:
    """:class:`~pyspice_rram.errors.UserInputError` when a card exists at ``card_path`` and
    ``force`` is false."""
    from ..errors import UserInputError

    if force or not Path(card_path).exists():
        return
    raise UserInputError(f"output card {card_path} exists; not overwritten",
                         hint=hint or "choose another output path, or force=True (--force) "
                                      "to overwrite it")


def text_report(result: FitResult, min_correl: float = 0.1) -> str:
    """See :meth:`FitResult.report`."""
    q, sub = result.quality or {}, result.fit_subset or {}
    lines = [f"[[Fit]] {result.dataset.recipe.name}  family {result.card.family}",
             f"    data points      = {sub.get('n_total', result.program.y.size)}",
             f"    points in fit    = {sub.get('n_fit', result.program.y.size)}"
             + (" (subset: " + sub["rule"] + ")" if sub.get("subsampled") else ""),
             f"    devices          = {len(result.program.devices)}",
             f"    reduced chi-sq   = {result.statistics.get('redchi', math.nan):.6g}",
             f"    evaluations      = {result.statistics.get('lmfit_nfev', '?')}, conditional "
             f"rounds {result.statistics.get('conditional_rounds', 0)}",
             f"    seconds          = {result.seconds:.1f}",
             f"[[Verdict]] {str(q.get('verdict')).upper()}"]
    lines += [f"    - {r}" for r in q.get("reasons", [])]
    for key in ("iv_r2_log_median", "iv_r2_median", "pulse_r2_median", "pulse_rms_steps_median",
                "pulse_misfit_steps_median"):
        if key in q and q[key] is not None:
            lines.append(f"    {key:26s} = {q[key]:.4g}")
    if len(result.selection) > 1:
        lines.append("[[Family selection]] (BIC, lower is better)")
        for row in sorted(result.selection, key=lambda r: r.get("bic", math.inf)):
            if "bic" in row:
                lines.append(f"    {row['family']:30s} dBIC {row['delta_bic']:10.1f}  k "
                             f"{row['k']}{'  chosen' if row.get('chosen') else ''}")
            else:
                lines.append(f"    {row['family']:30s} failed: {row['error']}")
    lines.append("[[Variables]] (stderr = max(iid, cluster-robust); iid, robust in brackets)")
    for name, p in result.parameters.items():
        if p.vary and math.isfinite(p.value):
            rel = (f" ({100 * p.stderr / abs(p.value):.2f}%)"
                   if p.value and math.isfinite(p.stderr) else "")
            lines.append(f"    {name:14s} = {p.value:.8g} +/- {p.stderr:.4g}{rel} {p.unit}  "
                         f"[{p.stderr_iid:.3g}, {p.stderr_robust:.3g}]")
        elif math.isfinite(p.value):
            lines.append(f"    {name:14s} = {p.value:.8g} {p.unit} (held: {p.note})")
        else:
            lines.append(f"    {name:14s}   not estimated: {p.note}")
    corr = result.correlation
    names = result.covariance_names
    if corr is not None and len(names) > 1:
        pairs = [(abs(corr[i, j]), names[i], names[j], corr[i, j])
                 for i in range(len(names)) for j in range(i + 1, len(names))
                 if np.isfinite(corr[i, j]) and abs(corr[i, j]) >= min_correl]
        lines.append(f"[[Correlations]] (internal scale: log10 for densities and r_series; "
                     f"unreported correlations are < {min_correl:.3f})")
        for _, a, b, c in sorted(pairs, reverse=True):
            lines.append(f"    C({a}, {b}) {'':{max(0, 40 - len(a) - len(b))}s}= {c:+.4f}")
    return "\n".join(lines) + "\n"


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
    if isinstance(obj, np.bool_):
        return bool(obj)
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
                 nuisance: Nuisance | None = None, sigma: np.ndarray | None = None,
                 names: tuple[str, ...] = MEAN_PARAMETERS):
        self.names = tuple(names)
        self.prog = prog
        self.base = base
        self.mode = mode
        self.nuis = nuisance
        self.sigma = prog.sigma if sigma is None else sigma
        self.n_eval = 0
        self.callback = None

    def card(self, values: dict[str, float]) -> ModelCard:
        kw = {k: (10.0 ** values[_pname(k)] if k in _LOG else values[k])
              for k in self.names if _pname(k) in values}
        # keep g_max > g_min while the optimiser explores
        if kw.get("g_max_density", self.base.g_max_density) <= kw.get("g_min_density",
                                                                      self.base.g_min_density):
            kw["g_max_density"] = kw.get("g_min_density", self.base.g_min_density) * (1 + 1e-9)
        return self.base.replace(**kw)

    def evaluate(self, card: ModelCard) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Model values (unscaled), device scales and weighted residuals."""
        if self.mode == "free":
            x = free_states(self.prog, card)
            m = predict(self.prog, card, x)
            s = profile_scales(self.prog, np.nan_to_num(m))
        else:
            s = self.nuis.scales
            m = conditional_prediction(self.prog, card, self.nuis)
        r = (s[self.prog.obs_device] * m - self.prog.y) / self.sigma
        # a parameter set the model cannot evaluate (overflow, impossible state) is far away,
        # not an exception inside the optimiser
        r = np.where(self.prog.valid, np.nan_to_num(r, nan=1e6, posinf=1e6, neginf=-1e6), 0.0)
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


def make_parameters(values: dict, fixed: tuple[str, ...] = (),
                    names: tuple[str, ...] = MEAN_PARAMETERS) -> lmfit.Parameters:
    """lmfit Parameters with the card bounds (log10 for densities and ``r_series``)."""
    params = lmfit.Parameters()
    for name in names:
        lo, hi, _unit, _ = PARAMETER_INFO[name]
        if name == "r_series":
            lo = max(lo, R_SERIES_MIN)
        v = values[name]
        if name in _LOG:
            params.add(_pname(name), value=math.log10(v), min=math.log10(lo), max=math.log10(hi),
                       vary=name not in fixed)
        else:
            params.add(name, value=float(np.clip(v, lo, hi)), min=lo, max=hi, vary=name not in fixed)
    return params


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
    # a parameter the residuals do not depend on (e.g. v_d when the only depression is a
    # saturating reset) is not determined: infinite variance, not the 0 of the pseudo-inverse
    norm = np.linalg.norm(J, axis=0)
    dead = ~(norm > 1e-9 * max(float(norm.max(initial=0.0)), 1e-300))
    for cov in (cov_iid, cov_rob):
        cov[dead, :] = np.nan
        cov[:, dead] = np.nan
        cov[dead, dead] = np.inf
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
def potentiation_integral(x0: np.ndarray, x1: np.ndarray, card: ModelCard) -> np.ndarray:
    """``kappa r t``: the rate integral that takes the state from ``x0`` to ``x1`` under
    potentiation, linear in the cycle-to-cycle factor kappa (bulk of the state range).

    threshold: ``-ln(1 - c (x1 - x0) / (1 - c x0)) / c`` (``x1 - x0`` for c = 0);
    soft_bounds (``u = 1 - x``): ``ln(u0 / u1)`` for gamma = 1, else
    ``(u0^(1-g) - u1^(1-g)) / (1 - g)``.
    """
    x0, x1 = np.asarray(x0, float), np.asarray(x1, float)
    if card.dynamics == "soft_bounds":
        u0 = np.maximum(1.0 - x0, 1e-12)
        u1 = np.maximum(1.0 - x1, 1e-12)
        g = card.gamma_p
        if abs(g - 1.0) < 1e-9:
            return np.log(u0 / u1)
        return (u0 ** (1.0 - g) - u1 ** (1.0 - g)) / (1.0 - g)
    c = card.c_p
    dx = x1 - x0
    if abs(c) < 1e-9:
        return dx
    arg = -c * dx / (1.0 - c * x0)
    return -np.log1p(np.maximum(arg, -0.999999)) / c


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
    if card.r_series > 0:  # the junction takes what the series resistance leaves
        v = junction_voltage(v, x_prev, area * s, card)
    x_next = advance(x_prev, v, t, card)
    dgm = s * (read_conductance(x_next, area, card, prog.obs_v[i1])
               - read_conductance(x_prev, area, card, prog.obs_v[i0]))
    # measured state change (unclipped), and the potentiation "rate integral"
    # L(dx) = -ln(1 - c dx / (1 - c x)) / c that is linear in kappa in the bulk
    x_next_meas = state_from_conductance(prog.y[i1] / s, area, card, prog.obs_v[i1])
    x_prev_raw = state_from_conductance(g0, area, card, prog.obs_v[i0])

    def L(dx):
        return potentiation_integral(x_prev_raw, x_prev_raw + dx, card)

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
        mean_q = np.mean(q_all[gm])
        q_all[gm] = q_all[gm] / mean_q if mean_q != 0 and np.isfinite(mean_q) else np.nan
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
    if per.size > 2:
        se2 = np.std(per, ddof=1) / math.sqrt(per.size)
    else:  # too few devices for a spread: the pooled terms' standard error (never NaN)
        terms = np.r_[var_terms, 2.0 * cov_terms]
        se2 = float(np.std(terms, ddof=1) * math.sqrt(2.0 / max(terms.size - 1, 1)))
    sigma = math.sqrt(max(sig2, 0.0))
    return {"c2c_sigma": sigma, "stderr": se2 / (2 * max(sigma, 1e-12)),
            "raw_q_sd": math.sqrt(var), "read_noise_part": math.sqrt(max(-2 * cov1, 0.0)),
            "n": int(m.sum()), "n_devices": int(per.size)}


def c2c_replica_check(prog: Program, card: ModelCard, scales: np.ndarray, nuis: Nuisance,
                      rng: int = 2) -> dict:
    """Does the δ/μ estimator recover its own answer on these data? A replica of the data
    set is simulated from the fitted card with its ``c2c_sigma`` (same program, device
    scales and shifts, the recipe's read noise) and δ/μ is estimated again. The ratio
    ``replica / fitted`` is 1 for an unbiased estimator; far from 1, the estimate is not to be
    trusted on data of this kind (few steps per cycle, large steps, a strongly curved map).
    """
    try:
        dp, dd = nuis.shifts
        x = simulate_states(prog, card, g_scale=scales, dv_p=dp, dv_d=dd, c2c=True, rng=rng)
        y = predict(prog, card, x, scales)
        y = y + prog.sigma * np.random.default_rng(rng + 1).standard_normal(y.size)
        rep = Program(**{**prog.__dict__, "y": y})
        est = estimate_c2c(pulse_steps(rep, card, scales))["c2c_sigma"]
    except (ValueError, FloatingPointError) as exc:  # a check, never a reason to lose a fit
        return {"error": str(exc)}
    ratio = est / card.c2c_sigma if card.c2c_sigma else math.nan
    return {"input": card.c2c_sigma, "replica_estimate": est, "ratio": ratio}


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
    """R² and RMSE (in the measured unit) of every sweep and pulse train with valid points,
    vectorised over the observations (``np.bincount`` per group)."""
    G = len(prog.groups)
    v = prog.valid
    g = prog.obs_group[v]
    y, f = prog.y[v], fitted[v]
    n = np.bincount(g, minlength=G)
    excluded = np.bincount(prog.obs_group[~v], minlength=G)
    mean = np.bincount(g, y, G) / np.maximum(n, 1)
    ss_res = np.bincount(g, (y - f) ** 2, G)
    ss_tot = np.bincount(g, (y - mean[g]) ** 2, G)
    mean_abs = np.bincount(g, np.abs(y), G) / np.maximum(n, 1)
    out = []
    for gi in np.nonzero(n > 0)[0]:
        rmse = math.sqrt(ss_res[gi] / n[gi])
        out.append({"group": prog.groups[gi], "kind": prog.group_kind[gi], "n": int(n[gi]),
                    "excluded": int(excluded[gi]),
                    "r2": 1 - float(ss_res[gi] / ss_tot[gi]) if ss_tot[gi] > 0 else math.nan,
                    "rmse": rmse, "rel_rmse": rmse / float(mean_abs[gi])})
    return out


def _window_from_data(prog: Program) -> dict[str, float]:
    """g_min/g_max densities at the smallest/largest pulse read per area (recipe
    ``window = "data"``)."""
    m = prog.kind == 1
    if not m.any():
        raise DataError("recipe [fit] window = 'data' needs pulse reads")
    dens = prog.y[m] / prog.area[prog.obs_seq[m]]
    lo, hi = float(dens.min()), float(dens.max())
    return {"g_min_density": lo * (1 - 1e-6), "g_max_density": hi * (1 + 1e-6)}


def _drive_reference(prog: Program, sign: int) -> tuple[float, float] | None:
    """(V, dt) of a typical strong step of one polarity: the 90th percentile of |V| over the
    steps of that sign, and the median duration of the steps at least that strong."""
    live = (prog.dt > 0) & (np.sign(prog.v) == sign)
    if not live.any():
        return None
    a = np.abs(prog.v[live])
    v_ref = float(np.percentile(a, 90))
    return sign * v_ref, float(np.median(prog.dt[live][a >= v_ref * (1 - 1e-9)]))


def global_start(model: JointModel, params: lmfit.Parameters, n_starts: int = 32,
                 keep: int = 2, local_nfev: int = 25, seed: int = 0) -> lmfit.Parameters:
    """Global stage: a scrambled Sobol design (``n_starts`` rounded up to a power of 2) over
    the varied parameters, plus the given start; the ``keep`` best by cost are refined by a
    short least-squares run each and the best result is returned. Deterministic (fixed
    seed): the outcome does not depend on the start values the caller gave.

    The thresholds ``v_p``/``v_d`` are drawn through what they mean for the data: the state
    change per strong step ``u = r(V_ref) dt_ref`` (log-uniform in [1e-4, 3], i.e. from
    thousands of steps to a few across the range), ``v_p = V_ref - v0_p ln(u / dt_ref)``;
    the other shape parameters uniformly in :data:`START_BOX`; densities within half a
    decade of their data-based start.
    """
    from scipy.stats import qmc

    names = [n for n, p in params.items() if p.vary]
    if not names or n_starts <= 0:
        return params
    m = max(1, int(math.ceil(math.log2(max(n_starts, 2)))))
    design = qmc.Sobol(len(names), scramble=True, seed=seed).random_base2(m)
    refs = {"v_p": _drive_reference(model.prog, +1), "v_d": _drive_reference(model.prog, -1)}
    candidates = [params.copy()]
    for row in design:
        p = params.copy()
        draws = dict(zip(names, row))
        for n, u in draws.items():
            base = n[len("log10_"):] if n.startswith("log10_") else n
            if base in ("v_p", "v_d") and refs[base] is not None:
                continue
            if base in START_BOX:
                lo, hi = START_BOX[base]
            else:  # densities: around the data-based start
                lo, hi = p[n].value - 0.5, p[n].value + 0.5
            p[n].value = float(np.clip(lo + u * (hi - lo), p[n].min, p[n].max))
        for n in ("v_p", "v_d"):
            if n in draws and refs[n] is not None:
                v_ref, dt_ref = refs[n]
                v0 = p["v0_p" if n == "v_p" else "v0_d"].value
                per_step = 10.0 ** (-4.0 + draws[n] * 4.5)
                val = abs(v_ref) - v0 * math.log(per_step / max(dt_ref, 1e-300))
                p[n].value = float(np.clip(val, p[n].min, p[n].max))
        candidates.append(p)
    costs = []
    for p in candidates:
        r = model.residual(p)
        costs.append(float(r @ r))
    order = np.argsort(costs)[:keep]
    best, best_cost = candidates[int(order[0])], costs[int(order[0])]
    for i in order:
        mini = lmfit.Minimizer(model.residual, candidates[int(i)])
        res = mini.minimize(method="least_squares", max_nfev=local_nfev, x_scale="jac",
                            ftol=1e-6, xtol=1e-6, gtol=1e-8)
        cost = float(np.sum(res.residual ** 2))
        if cost < best_cost:
            best, best_cost = res.params, cost
    return best


def fit_family(ds: Dataset, prog: Program, spec: FamilySpec, *, bar=None,
               start: dict | None = None, fixed: tuple[str, ...] = (), max_nfev: int = 400,
               statistics: bool = True, conditional: bool = True, max_rounds: int = 4,
               n_starts: int = 32) -> FitResult:
    """Fit one family to ``prog`` (the data set's program, or a subset of it): the global
    stage (:func:`global_start`), the free-running and the conditional fits with the
    per-device parameters, the uncertainties and the statistics stage (module docstring).
    No verdict, no files; ``bar`` is a tqdm bar (or None)."""
    t0 = time.time()
    start = start or {}
    rec = ds.recipe
    scheme = PulseScheme(**rec.scheme) if rec.scheme else PulseScheme()
    card_kw = {k: v for k, v in rec.fit.get("card", {}).items()}
    base = ModelCard(scheme=scheme, name=rec.name, **{**card_kw, **spec.card_fields()})
    names, held = free_parameters(spec, prog, fixed)
    all_names = tuple(names) + tuple(held)
    values = initial_values(ds, prog, base, start)
    if rec.fit.get("window") == "data":
        values.update(_window_from_data(prog))
        for n in ("g_min_density", "g_max_density"):
            held[n] = "held at the smallest/largest read of the data (recipe window = 'data')"
        names = [n for n in names if n not in held]
    model = JointModel(prog, base, names=all_names)
    params = make_parameters(values, tuple(held), all_names)
    if bar is not None:
        model.callback = bar.update
        bar.set_description(f"fit {rec.name} [{spec.label}]: global stage")
    errors: list[str] = []
    params = global_start(model, params, n_starts=n_starts)
    # (a) free-running fit: robust start, device scales
    if bar is not None:
        bar.set_description(f"fit {rec.name} [{spec.label}]: free-running")
    res = lmfit.Minimizer(model.residual, params).minimize(
        method="least_squares", max_nfev=max_nfev, x_scale="jac", ftol=1e-6, xtol=1e-6,
        gtol=1e-8)
    card = model.card(res.params.valuesdict())
    m_free, scales, r_free = model.evaluate(card)
    stats_free = {"redchi": float(res.redchi), "nfev": res.nfev,
                  "cost": float(r_free @ r_free)}
    rounds = 0
    nuis = Nuisance(scales, np.zeros(len(prog.devices)), np.zeros(len(prog.devices)))
    sigma = prog.sigma
    free_model = model
    if conditional:
        # (b) one-step-ahead fit, alternating with the per-device nuisance parameters
        # (scales, V_p/V_d shifts); weights from measurement and cycle-to-cycle noise.
        # Kept only if the free-running model it gives is not clearly worse (a one-step-
        # ahead optimum can drift where the free-running behaviour is poorly constrained).
        res_free, card_free, nuis_free = res, card, Nuisance(scales.copy(), nuis.dv_p.copy(),
                                                              nuis.dv_d.copy())
        c2c0 = estimate_c2c(pulse_steps(prog, card, scales))["c2c_sigma"]
        nuis.c2c = c2c0 if math.isfinite(c2c0) else 0.3
        try:
            for rounds in range(1, max_rounds + 1):
                sigma = conditional_sigma(prog, card, nuis)
                nuis = update_nuisance(prog, card, nuis, sigma)
                sigma = conditional_sigma(prog, card, nuis)
                model = JointModel(prog, base, "conditional", nuis, sigma, names=all_names)
                if bar is not None:
                    model.callback = bar.update
                    bar.set_description(f"fit {rec.name} [{spec.label}]: conditional {rounds}")
                before = np.array(list(res.params.valuesdict().values()))
                res = lmfit.Minimizer(model.residual, res.params).minimize(
                    method="least_squares", max_nfev=max_nfev, x_scale="jac", ftol=1e-10,
                    xtol=1e-10, gtol=1e-10)
                card = model.card(res.params.valuesdict())
                after = np.array(list(res.params.valuesdict().values()))
                change = float(np.max(np.abs(after - before) / np.maximum(np.abs(before), 0.05)))
                log.info("%s conditional round %d: max relative change %.2g", spec.label,
                         rounds, change)
                c2c_new = estimate_c2c(pulse_steps(prog, card, nuis.scales))["c2c_sigma"]
                nuis.c2c = c2c_new if math.isfinite(c2c_new) else nuis.c2c
                if change < 2e-3:
                    break
        except (np.linalg.LinAlgError, ValueError) as exc:  # keep the free-running fit
            errors.append(f"conditional stage failed ({exc}); free-running fit kept")
            res, card, nuis, model = res_free, card_free, nuis_free, free_model
        x_c = free_states(prog, card, g_scale=nuis.scales, dv_p=nuis.shifts[0],
                          dv_d=nuis.shifts[1])
        m_c = predict(prog, card, x_c)
        r_c = np.where(prog.valid, (nuis.scales[prog.obs_device] * m_c - prog.y) / prog.sigma, 0)
        cost_c = float(np.sum(np.nan_to_num(r_c, nan=1e6) ** 2))
        if not math.isfinite(cost_c) or cost_c > 1.5 * stats_free["cost"]:
            log.info("%s: conditional fit worsens the free-running cost (%.3g vs %.3g); "
                     "free-running fit kept", spec.label, cost_c, stats_free["cost"])
            stats_free["conditional_rejected"] = True
            res, card, nuis, model = res_free, card_free, nuis_free, free_model
        scales = nuis.scales
    best = res.params
    _, _, r = model.evaluate(card)
    names_cov, cov_iid, cov_rob = robust_covariance(model, best, r)
    # the fitted card with each device's nuisance parameters, free-running: what the report
    # overlays and R² judge
    m = predict(prog, card, free_states(prog, card, g_scale=scales, dv_p=nuis.shifts[0],
                                        dv_d=nuis.shifts[1]))
    if not conditional or stats_free.get("conditional_rejected"):
        scales = profile_scales(prog, np.nan_to_num(m))
    D = len(prog.devices)
    areas = prog.device_area
    per_area_max = max(int(np.sum(np.isclose(areas, a, rtol=1e-9, atol=0))) for a in areas)
    d2d_ok = per_area_max >= 2
    d2d_g = float(np.std(np.log(scales), ddof=1)) if D > 1 else math.nan
    ests: dict[str, ParameterEstimate] = {}
    for name in all_names:
        pn = _pname(name)
        unit = PARAMETER_INFO[name][2]
        if pn in names_cov:
            j = names_cov.index(pn)
            si, sr = math.sqrt(max(cov_iid[j, j], 0)), math.sqrt(max(cov_rob[j, j], 0))
            val = getattr(card, name)
            note = ""
            if name in _LOG:  # d g = g ln10 d log10 g; plus sampling error of the mean
                si, sr = val * math.log(10) * si, val * math.log(10) * sr
                samp = val * d2d_g / math.sqrt(D) if (d2d_ok and name != "r_series") else 0.0
                se = math.hypot(max(si, sr), samp)
                if samp:
                    note = "stderr includes the sampling error of the device mean"
            elif name in ("v_p", "v_d") and conditional:
                dv = nuis.dv_p if name == "v_p" else nuis.dv_d
                dv = dv[np.isfinite(dv)]
                samp = float(np.std(dv, ddof=1) / math.sqrt(dv.size)) if dv.size > 2 else 0.0
                se = math.hypot(max(si, sr), samp)
                note = "stderr includes the sampling error of the device mean" if samp else ""
            else:
                se = max(si, sr) if D > 1 else si
            ests[name] = ParameterEstimate(name, val, se, si, sr, unit, True, note)
        else:
            ests[name] = ParameterEstimate(name, getattr(card, name), math.nan, unit=unit,
                                           vary=False, note=held.get(name, "fixed"))
    corr = _correlation(names_cov, cov_iid if D <= 1 else cov_rob)
    stats: dict[str, Any] = {"n_devices": D, "lmfit_nfev": res.nfev, "free_stage": stats_free,
                             "conditional_rounds": rounds, "family": spec.label,
                             "mode": model.mode, "redchi": float(res.redchi),
                             "success": bool(res.success), "message": str(res.message),
                             "held": held, "correlations": corr, "errors": errors,
                             "restarts": bool(prog.has_restarts)}
    if d2d_ok:
        ests["d2d_g_sigma"] = ParameterEstimate(
            "d2d_g_sigma", d2d_g, d2d_g / math.sqrt(2 * max(D - 1, 1)), unit="1",
            note=f"sd of ln(scale) over {D} devices")
        card = card.replace(d2d_g_sigma=float(np.clip(d2d_g, *PARAMETER_INFO["d2d_g_sigma"][:2])))
    else:
        ests["d2d_g_sigma"] = ParameterEstimate(
            "d2d_g_sigma", math.nan, math.nan, unit="1", vary=False,
            note="needs at least two devices of one area")
        card = card.replace(d2d_g_sigma=None)
    card = card.replace(c2c_sigma=None, d2d_v_sigma=None)
    ests["c2c_sigma"] = ParameterEstimate("c2c_sigma", math.nan, math.nan, unit="1", vary=False,
                                          note="statistics stage not run")
    ests["d2d_v_sigma"] = ParameterEstimate("d2d_v_sigma", math.nan, math.nan, unit="V",
                                            vary=False, note="statistics stage not run")
    if statistics:
        steps = pulse_steps(prog, card, scales)
        c2c = estimate_c2c(steps)
        stats["c2c"] = {k: v for k, v in c2c.items()}
        n_cycles = _pulse_cycles(prog)
        if math.isfinite(c2c["c2c_sigma"]) and n_cycles >= 2:
            ests["c2c_sigma"] = ParameterEstimate("c2c_sigma", c2c["c2c_sigma"], c2c["stderr"],
                                                  unit="1", note="δ/μ of ΔG per pulse, read noise removed")
            card = card.replace(c2c_sigma=float(np.clip(c2c["c2c_sigma"], 0, 3)))
            stats["c2c_replica"] = c2c_replica_check(prog, card, scales, nuis)
        else:
            ests["c2c_sigma"].note = ("needs potentiation pulses over at least two cycles "
                                      f"(data: {n_cycles} cycle(s), {c2c['n']} usable steps)")
        if conditional and D >= 3:
            d2d_v = estimate_d2d_v(prog, card.replace(c2c_sigma=card.c2c_sigma or 0.0), nuis,
                                   sigma)
            stats["d2d_v"] = d2d_v
            if math.isfinite(d2d_v["d2d_v_sigma"]):
                ests["d2d_v_sigma"] = ParameterEstimate(
                    "d2d_v_sigma", d2d_v["d2d_v_sigma"], d2d_v["stderr"], unit="V",
                    note="per-device V_p/V_d shifts minus estimator noise"
                    + ("" if d2d_v["identifiable"] else " (not significant)"))
                card = card.replace(d2d_v_sigma=float(np.clip(d2d_v["d2d_v_sigma"], 0, 1)))
        if card.d2d_v_sigma is None:
            ests["d2d_v_sigma"].note = "needs at least three devices with identified shifts"
    stats["scales_profiled"] = bool(not conditional or stats_free.get("conditional_rejected"))
    result = FitResult(card=card, parameters=ests, dataset=ds, program=prog, model=m,
                       scales=scales, groups=group_statistics(prog, m * scales[prog.obs_device]),
                       statistics=stats, lmfit_result=res, nuisance=nuis,
                       covariance=cov_iid if D <= 1 else cov_rob, covariance_iid=cov_iid,
                       covariance_names=list(names_cov), fitted_program=prog)
    result.seconds = time.time() - t0
    return result


def _pulse_cycles(prog: Program) -> int:
    """Number of (train, cycle) pairs with pulse reads."""
    m = prog.kind == 1
    if not m.any() or prog.obs_part is None:
        return int(m.any())
    return int(np.unique(np.c_[prog.obs_group[m], prog.obs_part[m]], axis=0).shape[0])


def _correlation(names: list[str], cov: np.ndarray) -> dict[str, dict[str, float]]:
    """Correlation matrix of the varied parameters (internal scale) as nested dicts."""
    d = np.sqrt(np.maximum(np.diag(cov), 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = cov / np.outer(d, d)
    return {a: {b: (float(c[i, j]) if np.isfinite(c[i, j]) else None)
                for j, b in enumerate(names)} for i, a in enumerate(names)}


#: ΔBIC above which the evidence for the better family is strong (Kass & Raftery 1995).
BIC_STRONG = 10.0


def _at_bounds(result: FitResult, tol: float = 1e-3) -> list[str]:
    """Varied parameters that ended within ``tol`` of the range of a bound (log scale for
    densities and ``r_series``)."""
    out = []
    for name, p in result.parameters.items():
        if not p.vary or name not in PARAMETER_INFO:
            continue
        lo, hi = PARAMETER_INFO[name][:2]
        v = p.value
        if name in _LOG:
            lo, hi, v = (math.log10(max(lo, R_SERIES_MIN if name == "r_series" else lo)),
                         math.log10(hi), math.log10(max(v, 1e-300)))
        if v <= lo + tol * (hi - lo) or v >= hi - tol * (hi - lo):
            out.append(name)
    return out


def information_criteria(result: FitResult) -> dict[str, float]:
    """Weighted SSR of the free-running fitted model and its AIC/BIC (Gaussian errors with
    the recipe's sigma scaled by a common factor): ``BIC = n ln(SSR/n) + k ln n``."""
    prog = result.program
    r = (result.fitted - prog.y) / prog.sigma
    r = np.nan_to_num(r[prog.valid], nan=1e6, posinf=1e6, neginf=1e6)
    n = r.size
    k = sum(1 for p in result.parameters.values() if p.vary) + len(prog.devices) - 1
    ssr = float(r @ r)
    ll = n * math.log(max(ssr, 1e-300) / n)
    return {"n": n, "k": k, "ssr": ssr, "aic": ll + 2 * k, "bic": ll + k * math.log(n)}


def fit_families(ds: Dataset, prog: Program, specs: list[FamilySpec], *, bar=None,
                 **kwargs) -> tuple[list[FitResult], list[dict]]:
    """Fit every family of ``specs`` (:func:`fit_family`, ``kwargs`` passed on); a family
    that fails is listed with its error and the others go on. Returns the results of the
    families that fitted and one selection row per family (k, SSR, AIC, BIC on ``prog``,
    median per-part R², or the error)."""
    from .quality import part_statistics

    results: list[FitResult] = []
    selection: list[dict] = []
    for spec in specs:
        try:
            r = fit_family(ds, prog, spec, bar=bar, **kwargs)
        except Exception as exc:  # noqa: BLE001 - one family failing must not lose the rest
            log.warning("family %s failed: %s: %s", spec.label, type(exc).__name__, exc)
            selection.append({"family": spec.label, "error": f"{type(exc).__name__}: {exc}"})
            continue
        ic = information_criteria(r)
        ps = part_statistics(r)
        row = {"family": spec.label, **ic, "seconds": round(r.seconds, 1)}
        for key in ("iv_r2_log_per_branch", "pulse_r2_per_cycle", "pulse_rms_steps_per_cycle"):
            vals = np.asarray(ps[key], float)
            vals = vals[np.isfinite(vals)]
            row[key.replace("per_branch", "median").replace("per_cycle", "median")] = (
                float(np.median(vals)) if vals.size else None)
        selection.append(row)
        results.append(r)
    if not results:
        raise DataError(f"{ds.recipe.name}: every family failed to fit: "
                         + "; ".join(f"{row['family']}: {row['error']}" for row in selection))
    return results, selection


def select_family(results: list[FitResult], selection: list[dict]) -> FitResult:
    """The family the data support best: the lowest BIC, except that a family whose varied
    parameters end on bounds (collapsed towards another form) gives way to the best interior
    one within ΔBIC :data:`BIC_STRONG`. Fills ``delta_bic``, ``at_bounds`` and ``chosen`` in
    the rows of ``selection`` and returns the chosen result (``selection`` attached)."""
    ok = [row for row in selection if "bic" in row]
    best_bic = min(row["bic"] for row in ok)
    for row, r in zip(ok, results):
        row["delta_bic"] = row["bic"] - best_bic
        row["at_bounds"] = _at_bounds(r)
    best = pick = int(np.argmin([row["bic"] for row in ok]))
    if ok[pick]["at_bounds"]:
        # a family whose parameters end on bounds has collapsed towards another form; prefer
        # the best one that is interior unless the evidence against it is strong (ΔBIC > 10)
        inner = [i for i, row in enumerate(ok) if not row["at_bounds"]
                 and row["delta_bic"] <= BIC_STRONG]
        if inner:
            pick = min(inner, key=lambda i: ok[i]["bic"])
            log.info("family %s has parameters on bounds (%s); %s chosen (ΔBIC %.1f)",
                     ok[best]["family"], ", ".join(ok[best]["at_bounds"]), ok[pick]["family"],
                     ok[pick]["delta_bic"])
    for i, row in enumerate(ok):
        row["chosen"] = i == pick
    result = results[pick]
    result.selection = selection
    return result


def evaluate_on(result: FitResult, prog: Program) -> FitResult:
    """Put the fitted model on ``prog`` (the whole program when the fit ran on a subset):
    the free-running model of every observation with each device's nuisance parameters,
    the device scales (profiled again on ``prog`` when the fit profiled them) and the
    per-group statistics. Every device of ``prog`` must be in the fit (a subset keeps
    them all)."""
    nuis, card = result.nuisance, result.card
    m = predict(prog, card, free_states(prog, card, g_scale=nuis.scales, dv_p=nuis.shifts[0],
                                        dv_d=nuis.shifts[1]))
    scales = (profile_scales(prog, np.nan_to_num(m)) if result.statistics.get("scales_profiled")
              else result.scales)
    result.program, result.model, result.scales = prog, m, scales
    result.groups = group_statistics(prog, m * scales[prog.obs_device])
    return result


def assess(result: FitResult) -> dict[str, Any]:
    """The verdict stage: figures of merit (:func:`.metrics.figures_of_merit`; a failure is
    recorded, never loses the fit) and the verdict (:func:`.quality.verdict`) on
    ``result.program``; sets ``result.metrics`` and ``result.quality`` and returns the
    latter."""
    from .metrics import figures_of_merit
    from .quality import verdict

    try:
        result.metrics = figures_of_merit(result)
    except Exception as exc:  # noqa: BLE001 - a fit is never lost to its figures of merit
        log.warning("figures of merit failed: %s", exc)
        result.metrics = {"error": f"{type(exc).__name__}: {exc}",
                          "n_states_card": result.card.n_states()}
        result.statistics.setdefault("errors", []).append(
            f"figures of merit failed ({type(exc).__name__}: {exc})")
    result.quality = verdict(result)
    if result.fit_subset.get("subsampled"):
        sub = result.fit_subset
        result.quality["reasons"].append(
            f"info: fitted on {sub['n_fit']} of {sub['n_total']} points ({sub['rule']})")
    return result.quality


def stamp_card(result: FitResult) -> ModelCard:
    """Fill the fitted card's provenance (data set and its hash, family, verdict, date,
    method, standard errors, points used); a ``poor`` card is marked in its name."""
    ds, rec, ests, card = result.dataset, result.dataset.recipe, result.parameters, result.card
    sub = result.fit_subset
    card.provenance = {}
    card.stamp(dataset=rec.name, dataset_sha256=ds.sha256, dataset_files=ds.files,
               synthetic_dataset=rec.synthetic, family=card.family,
               verdict=result.quality["verdict"],
               fit_date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               method="pyspice_rram.calibration.fit (Sobol multi-start + lmfit least_squares, "
                      "BIC family selection, statistics stage)",
               stderr={k: p.stderr for k, p in ests.items()},
               stderr_iid={k: p.stderr_iid for k, p in ests.items() if p.vary},
               not_estimated={n: ests[n].note for n in card.not_estimated if n in ests},
               redchi=float(result.statistics["redchi"]),
               n_devices=len(result.program.devices),
               fit_points={"used": sub.get("n_fit"), "of": sub.get("n_total")},
               seconds=round(result.seconds, 1))
    if result.quality["verdict"] == "poor":
        card.name = f"{rec.name} (POOR FIT: see quality.json)"
    for key in ("stderr", "stderr_iid"):
        card.provenance[key] = _jsonable(card.provenance[key])
    return card


def fit(dataset: Dataset, family: str | list[str] | None = None, starts: int | None = None, *,
        start: dict | None = None, fixed: tuple[str, ...] = (), max_nfev: int = 400,
        max_rounds: int = 4, statistics: bool = True, conditional: bool = True,
        max_points: int | None = FIT_MAX_POINTS, subset_points: int | None = None,
        progress: bool = False) -> FitResult:
    """Fit a loaded data set in memory (nothing is written; :meth:`FitResult.save` writes
    the outputs).

    Stages: the program of the data set (:func:`.program.build_program`), a representative
    subset above ``max_points`` observations (:func:`.program.subset_program`), every
    candidate family fitted (:func:`fit_families` -> :func:`fit_family` -> :func:`global_start`
    ...), the family selection (:func:`select_family`), the fitted model put on every
    observation (:func:`evaluate_on`), the verdict (:func:`assess`) and the card's
    provenance (:func:`stamp_card`).

    Parameters
    ----------
    dataset : a data set from :func:`.io.load_dataset`
    family : a family string (``"sinh/threshold/linear"``, :mod:`.families`) or a list of
        them; default the recipe's ``[fit] families``, else the defaults for the data's kinds
    starts : starts of the global stage (default the recipe's ``[fit] starts`` or 32; 0: a
        local fit from the start values only)
    start, fixed : starting values and held parameters (added to the recipe's ``[fit]
        initial`` and ``fixed``)
    max_nfev, max_rounds : evaluations per least-squares stage; rounds of the conditional
        fit
    statistics, conditional : run the statistics stage; the one-step-ahead stage
    max_points : observations above which the fit uses a subset (None: always all)
    subset_points : observations of that subset (default ``min(max_points,
        FIT_SUBSET_WORK // number of families)``)
    progress : a tqdm bar over model evaluations

    Returns
    -------
    FitResult
    """
    t0 = time.time()
    rec = dataset.recipe
    full = build_program(dataset)
    if family is not None:
        fams = [family] if isinstance(family, str) else list(family)
        specs = candidate_families(full, fams, "families (--family)")
    else:
        specs = candidate_families(full, rec.fit.get("families"), f"{rec.path.name} [fit] families")
    prog, subset = full, subset_program(full, None)[1]
    if max_points is not None and full.y.size > max_points:
        if subset_points is None:
            subset_points = min(max_points, FIT_SUBSET_WORK // max(len(specs), 1))
        prog, subset = subset_program(full, subset_points)
    start = {**rec.fit.get("initial", {}), **(start or {})}
    fixed = tuple(fixed) + tuple(rec.fit.get("fixed", ()))
    n_starts = int(rec.fit.get("starts", 32)) if starts is None else int(starts)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"fit {rec.name}: start", unit=" model evaluations", leave=True)
    try:
        results, selection = fit_families(
            dataset, prog, specs, bar=bar, start=start, fixed=fixed, max_nfev=max_nfev,
            statistics=statistics, conditional=conditional, max_rounds=max_rounds,
            n_starts=n_starts)
    finally:
        if bar is not None:
            bar.close()
    result = select_family(results, selection)
    result.fit_subset = subset
    if prog is not full:
        evaluate_on(result, full)
    assess(result)
    result.seconds = time.time() - t0
    stamp_card(result)
    return result


def fit_program(ds: Dataset, *, progress: bool = True, start: dict | None = None,
                fixed: tuple[str, ...] = (), max_nfev: int = 400, scan: bool = True,
                statistics: bool = True, conditional: bool = True,
                max_rounds: int = 4, families=None, n_starts: int | None = None,
                max_points: int | None = FIT_MAX_POINTS,
                subset_points: int | None = None) -> FitResult:
    """:func:`fit` under its earlier name and keywords (``families``, ``n_starts``;
    ``scan=False`` means no global starts)."""
    return fit(ds, families, n_starts if (scan or n_starts is not None) else 0, start=start,
               fixed=fixed, max_nfev=max_nfev, max_rounds=max_rounds, statistics=statistics,
               conditional=conditional, max_points=max_points, subset_points=subset_points,
               progress=progress)


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


def quality_record(result: FitResult) -> dict[str, Any]:
    """What ``quality.json`` holds: the verdict with its reasons and figures, the family
    selection table, parameters with uncertainties and correlations, and the data set."""
    q = dict(result.quality)
    q.pop("thresholds", None)
    return _jsonable({
        "verdict": q.pop("verdict", None), "reasons": q.pop("reasons", []),
        "family": q.pop("family", result.card.family), **q,
        "thresholds": result.quality.get("thresholds", {}),
        "restart": ("each cycle of the entries with state_from_first_read starts from the "
                    "state of its first read" if result.program.has_restarts
                    else "state carried from cycle to cycle"),
        "selection": result.selection,
        "parameters": {k: {"value": p.value, "stderr": p.stderr, "unit": p.unit,
                           "vary": p.vary, "note": p.note}
                       for k, p in result.parameters.items()},
        "correlations": result.statistics.get("correlations", {}),
        "c2c_estimate": result.statistics.get("c2c", {}),
        "c2c_replica": result.statistics.get("c2c_replica", {}),
        "fit_points": result.fit_subset,
        "dataset": result.dataset.recipe.name, "dataset_sha256": result.dataset.sha256,
        "synthetic_dataset": result.dataset.recipe.synthetic,
        "seconds": round(result.seconds, 1),
    })


def _write_text_atomic(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def write_outputs(result: FitResult, outdir: str | Path, *, card_path: str | Path | None = None,
                  report: bool = True, report_dir: str | Path | None = None) -> dict[str, Path]:
    """Write the card JSON and ``quality.json`` beside it, the ngspice ``.lib``, the Verilog-A
    ``.va`` and the report (into ``report_dir``, default ``outdir/report``).

    The outputs are one set: everything is written into a temporary directory next to
    ``outdir`` and moved into place only when all of it is written, so an interrupted write
    (SIGINT, SIGKILL) leaves the earlier set as it was. A failure of the ``.lib``/``.va``
    generators or the report is recorded in ``quality.json`` (verdict ``poor`` with the
    reason) and logged: the card and its quality record are never lost with it.
    """
    import json
    import os
    import shutil
    import tempfile

    from ..device.ngspice import write_cell_library

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    card_final = Path(card_path) if card_path else outdir / "card.json"
    card_final.parent.mkdir(parents=True, exist_ok=True)
    rdir_final = Path(report_dir) if report_dir is not None else outdir / "report"
    stage = Path(tempfile.mkdtemp(prefix=".fit-", dir=outdir))
    staged: dict[str, Path] = {}
    try:
        staged["card"] = result.card.save(stage / "card.json")

        def save_quality():
            _write_text_atomic(stage / "quality.json",
                               json.dumps(quality_record(result), indent=1) + "\n")

        save_quality()
        staged["quality"] = stage / "quality.json"
        failures = []
        steps = [("lib", lambda: write_cell_library(result.card, stage / "motiox_fit.lib"))]
        try:
            from ..device.veriloga import write_veriloga
        except ImportError:  # pragma: no cover - depends on the device layer build
            log.warning("pyspice_rram.device.veriloga not available: no .va written")
        else:
            steps.append(("va", lambda: write_veriloga(result.card, stage / "motiox_fit.va")))
        if report:
            from .report import write_report

            steps.append(("report", lambda: write_report(
                result, stage / "report", truth=reference_truth(result.dataset))))
        report_paths: dict[str, Path] = {}
        for key, step in steps:
            try:
                out = step()
            except Exception as exc:  # noqa: BLE001 - the fit is in hand; record, go on
                log.error("writing the %s failed: %s", key, exc)
                failures.append(f"writing the {key} failed ({type(exc).__name__}: {exc})")
                continue
            if isinstance(out, dict):
                report_paths.update(out)
            else:
                staged[key] = out
        if failures:
            result.quality["reasons"] = list(result.quality.get("reasons", [])) + [
                f"poor: {f}" for f in failures]
            result.quality["verdict"] = "poor"
            save_quality()
        # move the set into place: report first, card and quality.json last
        paths: dict[str, Path] = {}
        if (stage / "report").is_dir():
            from .report import FIXED_FIGURES

            rdir_final.mkdir(parents=True, exist_ok=True)
            new = {f.name for f in (stage / "report").iterdir()}
            for name in FIXED_FIGURES:  # a stale figure of an earlier report goes
                if f"{name}.png" not in new:
                    (rdir_final / f"{name}.png").unlink(missing_ok=True)
            for f in (stage / "report").iterdir():
                shutil.move(str(f), str(rdir_final / f.name))
            paths.update({k: rdir_final / Path(v).name for k, v in report_paths.items()})
        for key in ("lib", "va"):
            if key in staged:
                os.replace(staged[key], outdir / staged[key].name)
                paths[key] = outdir / staged[key].name
        os.replace(staged["quality"], card_final.with_name("quality.json"))
        paths["quality"] = card_final.with_name("quality.json")
        os.replace(staged["card"], card_final)
        paths["card"] = card_final
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    result.paths.update(paths)
    return paths


def fit_dataset(dataset_dir: str | Path, outdir: str | Path | None = None, progress: bool = True,
                *, card_path: str | Path | None = None, report: bool = True, force: bool = True,
                **kwargs) -> FitResult:
    """Load a data set, fit it, and write card, ``.lib``, ``.va`` and report:
    :func:`.io.load_dataset`, :func:`fit`, :meth:`FitResult.save`.

    Parameters
    ----------
    dataset_dir : directory with ``recipe.toml``/``recipe.json`` (or the recipe file)
    outdir : where outputs go (default: the data-set directory)
    progress : show a tqdm progress bar over model evaluations
    card_path : card JSON path (default ``outdir/card.json``)
    report : write ``outdir/report/`` (markdown + PNG figures)
    force : overwrite an existing card (default True, as before; False: an error)
    kwargs : passed to :func:`fit_program` (``start``, ``fixed``, ``max_nfev``,
        ``families``, ``n_starts``, ...)
    """
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        ds = load_dataset(dataset_dir)
    result = fit_program(ds, progress=progress, **kwargs)
    outdir = Path(outdir) if outdir is not None else ds.recipe.directory
    result.save(outdir, force, card_path=card_path, report=report)
    return result
