"""Figures of merit of a fitted data set, as device papers quote them.

All conductances are read conductances ``G = I(V_read)/V_read`` in S; areas in m².

=========================  ===============================================================
``g_min``, ``g_max``        per area: mean over devices of the smallest / largest pulse
                            read (data) and ``s A g(0|1) V_nl sinh(V_r/V_nl)/V_r`` (model)
``on_off``                  ``g_max / g_min`` per area (data) and ``g_max_density /
                            g_min_density`` (card)
``n_states``                pulses of the nominal scheme from G_min to G_max: card
                            ``N = beta/(c r t_w)``; data: mean number of potentiation pulses
                            after a reset until G reaches 98 % of the cycle's range
``nonlinearity``            max |y_n - n/N| of the mean normalised potentiation curve y_n at
                            the nominal scheme (0 = linear), and the card's ``beta_p``,
                            ``beta_d`` (curvature of state vs pulse number)
``delta_over_mu``           δ/μ of ΔG per potentiation pulse in the linear region: raw
                            (read noise included), read-noise corrected (fit), and that of
                            the fitted card simulated (no read noise)
``d2d``                     sd of ln(device scale) and per-area CV of the conductance range
``dg_area_slope``           slope (± stderr) of ln(mean ΔG per pulse) vs ln(area) over
                            devices, nominal potentiation pulse, ``0.02 <= x <= 0.5``; ≈ 1
                            for interface switching
=========================  ===============================================================
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..device.card import ModelCard
from ..device.model import read_conductance
from ..device.pulses import potentiation_depression_train, simulate_pulse_train

if TYPE_CHECKING:  # pragma: no cover
    from .fitting import FitResult


#: Largest state count for which the card's δ/μ is simulated (arrays of N x cycles x devices).
MAX_SIMULATED_STATES = 2000


def nonlinearity_of_card(card: ModelCard, points: int = 51) -> float:
    """max |x(n) - n/N| of the card's potentiation response from x = 0 over the N pulses of
    :meth:`ModelCard.n_states` at the nominal pulse (closed form: one exact advance per point,
    NaN when N is not finite)."""
    from ..device.model import advance

    n = card.n_states()
    if not (math.isfinite(n) and n > 0):
        return math.nan
    frac = np.linspace(0.0, 1.0, points)
    x = advance(np.zeros(points), card.scheme.v_set, frac * n * card.scheme.t_set, card)
    if x[-1] <= 0:
        return math.nan
    return float(np.max(np.abs(x / x[-1] - frac)))


def delta_over_mu_of_steps(dg: np.ndarray, lo: int = 0, hi: int | None = None) -> float:
    """δ/μ of ΔG: for each pulse index n (columns of ``dg``, rows = cycles x devices) the
    ratio sd/mean over rows, averaged over ``lo <= n < hi``."""
    dg = np.asarray(dg, float)[:, lo:hi]
    return float(np.mean(np.std(dg, axis=0, ddof=1) / np.mean(dg, axis=0)))


def simulated_delta_over_mu(card: ModelCard, n_devices: int = 200, cycles: int = 30,
                            rng: int = 7) -> dict[str, float]:
    """δ/μ and number of states of ``card`` at its nominal scheme, simulated.

    ``cycles`` x (N pulses + 1 reset) with cycle-to-cycle noise on, no device-to-device
    spread, no read noise; δ/μ over the pulses with ``x <= 0.85`` (linear region). Not
    simulated (NaN) when the card has no ``c2c_sigma`` or N is outside [2, MAX_SIMULATED_STATES]:
    the arrays are never sized by an implausible state count.
    """
    n_card = card.n_states()
    if card.c2c_sigma is None or not (2 <= n_card <= MAX_SIMULATED_STATES):
        return {"delta_over_mu": math.nan, "n_pulses": n_card, "linear_pulses": 0}
    n = max(int(round(n_card)), 2)
    sc = card.scheme
    v, t = potentiation_depression_train(n, 1, cycles, sc.v_set, sc.t_set, sc.v_reset, sc.t_reset)
    res = simulate_pulse_train(card, v, t, n_devices=n_devices, c2c=True, rng=rng)
    g = res.g[:, 1:].reshape(n_devices, cycles, n + 1)[:, :, :n]
    g0 = np.concatenate([res.g[:, :1], res.g[:, 1:].reshape(n_devices, cycles, n + 1)[:, :-1, n]],
                        axis=1)[:, :, None]
    gg = np.concatenate([g0, g], axis=2).reshape(n_devices * cycles, n + 1)
    dg = np.diff(gg, axis=1)
    x = res.x[:, 1:].reshape(n_devices, cycles, n + 1)[:, :, :n].reshape(-1, n).mean(axis=0)
    hi = int(np.searchsorted(x, 0.85))
    return {"delta_over_mu": delta_over_mu_of_steps(dg, 0, max(hi, 2)), "n_pulses": n,
            "linear_pulses": hi}


def _nominal_trains(result: "FitResult"):
    """(sequence, obs indices) of pulse trains using the card's nominal set pulse."""
    prog, card = result.program, result.card
    out = []
    for seq in np.unique(prog.obs_seq[prog.kind == 1]):
        L = prog.length[seq]
        v = prog.v[seq, :L]
        if np.any(np.isclose(v, card.scheme.v_set)) and np.any(v < 0):
            out.append(seq)
    return out


def figures_of_merit(result: "FitResult") -> dict[str, Any]:
    """Compute every figure of merit of a fit (see the module docstring)."""
    prog, card, s = result.program, result.card, result.scales
    fom: dict[str, Any] = {}
    areas = np.unique(np.round(prog.device_area, 30))
    pulse = prog.kind == 1
    dev = prog.obs_device
    per_area = []
    for a in areas:
        devs = np.nonzero(np.isclose(prog.device_area, a, rtol=1e-9, atol=0))[0]
        row: dict[str, Any] = {"area_m2": float(a), "diameter_m": float(math.sqrt(4 * a / math.pi)),
                               "n_devices": int(devs.size)}
        gmin, gmax = [], []
        for d in devs:
            m = pulse & (dev == d)
            if m.sum() >= 3:
                lo, hi = prog.y[m].min(), prog.y[m].max()
                gmin.append(lo)
                gmax.append(hi)
        vr = card.scheme.v_read
        row["g_min_model"] = float(read_conductance(0.0, a, card, vr))
        row["g_max_model"] = float(read_conductance(1.0, a, card, vr))
        if gmin:
            gmin, gmax = np.array(gmin), np.array(gmax)
            row.update(g_min=float(gmin.mean()), g_max=float(gmax.mean()),
                       on_off=float(np.mean(gmax / gmin)),
                       range_cv=float(np.std(gmax - gmin, ddof=1) / np.mean(gmax - gmin))
                       if gmin.size > 1 else math.nan)
        per_area.append(row)
    fom["per_area"] = per_area
    fom["on_off_card"] = card.on_off
    fom["n_states_card"] = card.n_states()
    why = result.statistics.get("held", {}).get("v_p", "")
    if why.startswith("not identifiable"):
        # the potentiation kinetics were held at generic start values: a state count (and a
        # nonlinearity) from them would describe the start values, not the device
        fom["n_states_card"] = math.nan
        fom["n_states_card_note"] = f"not estimated: v_p {why}"
    fom["d2d_scale_sigma"] = float(np.std(np.log(s), ddof=1)) if s.size > 1 else math.nan
    # --- nominal-scheme potentiation: states, nonlinearity, ΔG vs area
    seqs = _nominal_trains(result)
    curves, n_to_98 = [], []
    for seq in seqs:
        m = np.nonzero((prog.obs_seq == seq) & pulse)[0]
        steps = prog.obs_step[m]
        v = prog.v[seq]
        # cycles start after each negative (reset) pulse, or at the start
        starts = np.r_[0, np.nonzero(v[: prog.length[seq]] < 0)[0] + 1]
        for k0 in starts:
            k1 = k0
            while k1 < prog.length[seq] and v[k1] > 0:
                k1 += 1
            n_p = k1 - k0
            if n_p < 5:
                continue
            sel = (steps >= k0) & (steps <= k1)
            if sel.sum() < n_p + 1:  # needs the read before and after every pulse
                continue
            g = prog.y[m][sel]
            yn = (g - g[0]) / (g.max() - g[0]) if g.max() > g[0] else None
            if yn is None:
                continue
            curves.append(yn[: n_p + 1])
            hit = np.nonzero(yn >= 0.98)[0]
            if hit.size:
                n_to_98.append(int(hit[0]))
    if curves:
        L = min(len(c) for c in curves)
        mean = np.mean([c[:L] for c in curves], axis=0)
        mean = (mean - mean[0]) / (mean[-1] - mean[0])
        lin = np.arange(L) / (L - 1)
        fom["n_states_data"] = float(np.mean(n_to_98)) if n_to_98 else math.nan
        fom["nonlinearity_data"] = float(np.max(np.abs(mean - lin)))
        fom["mean_potentiation_curve"] = mean.tolist()
        fom["n_cycles_nominal"] = len(curves)
    fom["nonlinearity_card"] = (nonlinearity_of_card(card) if "n_states_card_note" not in fom
                                else math.nan)
    if card.dynamics == "soft_bounds":
        fom["gamma_p"], fom["gamma_d"] = card.gamma_p, card.gamma_d
    else:
        fom["beta_p"], fom["beta_d"] = card.beta_p, card.beta_d
    # --- δ/μ
    from .fitting import pulse_steps

    st = pulse_steps(prog, card, s)
    c2c = result.statistics.get("c2c", {})
    fom["delta_over_mu_raw"] = c2c.get("raw_q_sd", math.nan)
    fom["delta_over_mu_corrected"] = c2c.get("c2c_sigma", math.nan)
    sim = (simulated_delta_over_mu(card) if "n_states_card_note" not in fom
           else {"delta_over_mu": math.nan})
    fom["delta_over_mu_card"] = sim["delta_over_mu"]
    # --- ΔG per pulse vs area (nominal set pulse, low half of the range)
    m = np.isclose(st["v"], card.scheme.v_set) & (st["x_prev"] >= 0.02) & (st["x_prev"] <= 0.5)
    if m.sum() > 10:
        d_ids = np.unique(st["device"][m])
        a_d = prog.device_area[d_ids]
        dg_d = np.array([np.mean(st["dg"][m & (st["device"] == d)]) for d in d_ids])
        ok = dg_d > 0
        if ok.sum() >= 3 and np.ptp(np.log(a_d[ok])) > 0:
            X = np.log(a_d[ok])
            Y = np.log(dg_d[ok])
            A = np.vstack([X, np.ones_like(X)]).T
            coef, res, *_ = np.linalg.lstsq(A, Y, rcond=None)
            resid = Y - A @ coef
            dof = max(Y.size - 2, 1)
            cov = np.linalg.inv(A.T @ A) * float(resid @ resid) / dof
            fom["dg_area_slope"] = float(coef[0])
            fom["dg_area_slope_stderr"] = float(math.sqrt(cov[0, 0]))
            fom["dg_per_area"] = [{"area_m2": float(a), "dg_mean": float(np.mean(dg_d[ok][
                np.isclose(a_d[ok], a, rtol=1e-9, atol=0)]))} for a in np.unique(a_d[ok])]
            fom["dg_density"] = float(math.exp(coef[1]))
    return fom
