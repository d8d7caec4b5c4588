"""The measurement *program* of a data set, and its simulation with a model card.

Every device measurement is a sequence of constant-voltage *steps* (a DC voltage step held
for its dwell time, or a programming pulse of given amplitude and width) with *reads* after
some of them:

* DC sweep step ``k``: hold ``V_k`` for ``dwell_k``, then measure
  ``I_k = s A g(x_k) V_nl sinh(V_k / V_nl)`` at the same voltage;
* pulse ``k``: hold ``V_pulse,k`` for ``t_pulse,k``; a read after it gives the conductance
  ``G = s A g(x_k) V_nl sinh(V_read / V_nl) / V_read``.

``s`` is the device's conductance scale (device-to-device spread of the effective area).
The state is advanced with the exact constant-voltage solution
:func:`pyspice_rram.device.model.advance`, so the simulation has no time-step error. Under a
current compliance ``I_cc`` the cell sees only the voltage that drives ``I_cc``:
``V_cell = V_nl asinh(I_cc / (s A g(x) V_nl))`` when that is below ``|V|``.

All sequences of a data set are simulated together (NumPy over sequences, a loop over steps;
sequences sorted by length so that short ones drop out of the loop early). Where no random
numbers are drawn, the same expressions run compiled (:mod:`pyspice_rram.device.compiled`,
a loop over sequences and steps): a residual evaluation then costs no per-step array
overhead. ``_COMPILED = False`` selects the NumPy loops (the reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..device import compiled as _kernels
from ..device.card import ModelCard
from ..device.model import (advance, cell_current, junction_voltage,
                             junction_voltage_at_current, state_from_conductance)
from .io import Dataset
from ..errors import DataError

#: Use the compiled kernels where they apply (False: the NumPy reference loops).
_COMPILED = True


def drive_voltage(card: ModelCard, x: np.ndarray, v: np.ndarray, gs: np.ndarray,
                  area: np.ndarray, icc: np.ndarray) -> np.ndarray:
    """Junction voltage that drives the state over a step (V).

    ``V_j`` of the terminal voltage ``v`` at the step's start state (the root of ``V = V_j +
    r_series I_j``, frozen over the step; ``V_j = V`` without series resistance), then limited
    by the compliance ``icc`` (A, inf = none) to the junction voltages that drive ``±icc``
    (default family: ``V_nl asinh(I_cc / (s A g(x) V_nl))``). ``gs`` scales the area.
    """
    a_eff = gs * area
    vj = junction_voltage(v, x, a_eff, card) if card.r_series > 0 else np.asarray(v, float)
    lim = np.isfinite(icc)
    if lim.any():
        i_lim = np.where(lim, icc, 1.0)
        vmax = junction_voltage_at_current(i_lim, x, a_eff, card)
        vmin = junction_voltage_at_current(-i_lim, x, a_eff, card)
        vj = np.where(lim, np.clip(vj, vmin, vmax), vj)
    return vj


def _card_args(card: ModelCard) -> tuple:
    return _kernels.card_args(card)


def _gauss_hermite(kappa_mean: float) -> tuple[np.ndarray, np.ndarray]:
    """7-point nodes (clipped at 0) and weights of the mean over ``kappa ~ N(1, kappa_mean)``
    (empty arrays when ``kappa_mean`` <= 0: kappa = 1)."""
    if kappa_mean <= 0:
        return np.empty(0), np.empty(0)
    t, w = np.polynomial.hermite.hermgauss(7)
    return np.clip(1.0 + kappa_mean * np.sqrt(2.0) * t, 0.0, None), w / np.sqrt(np.pi)


@dataclass
class Program:
    """Padded steps of all sequences and the index of every observation.

    Attributes
    ----------
    v, dt : (S, K) arrays of step voltage (V) and duration (s); padding has ``dt = 0``
    length : (S,) steps per sequence (sorted descending)
    area, x0, compliance : (S,) m², initial state, A (inf = none)
    seq_device : (S,) int, device index of each sequence
    obs_seq, obs_step : (R,) sequence and state index (0 = before the first step)
    obs_v, obs_div : (R,) voltage of the read (V), divisor (1 for currents, V_read for
        conductances)
    y, sigma, valid : (R,) measured value (A or S), weighting sigma, False = excluded
    kind : (R,) 0 = DC sweep current, 1 = pulse-train read conductance
    obs_group : (R,) int, index into ``groups`` (one per sweep or pulse train)
    obs_part : (R,) int, branch of a sweep point (monotone voltage leg) or cycle of a read
    obs_restart : (R,) bool, the read sets the state of its cycle (``state_from_first_read``)
    devices : list of device labels; device_area : (D,) m²
    """

    v: np.ndarray
    dt: np.ndarray
    length: np.ndarray
    area: np.ndarray
    x0: np.ndarray
    compliance: np.ndarray
    seq_device: np.ndarray
    obs_seq: np.ndarray
    obs_step: np.ndarray
    obs_v: np.ndarray
    obs_div: np.ndarray
    y: np.ndarray
    sigma: np.ndarray
    valid: np.ndarray
    kind: np.ndarray
    obs_group: np.ndarray
    groups: list[str]
    group_kind: list[str]
    devices: list[str]
    device_area: np.ndarray
    obs_part: np.ndarray | None = None
    obs_restart: np.ndarray | None = None

    @property
    def has_restarts(self) -> bool:
        """True when some cycles start from the state of their first read."""
        return self.obs_restart is not None and bool(self.obs_restart.any())

    @property
    def obs_device(self) -> np.ndarray:
        return self.seq_device[self.obs_seq]


def build_program(ds: Dataset, noise: dict | None = None) -> Program:
    """Flatten a loaded data set into a :class:`Program`.

    DC sweeps of one device in one entry form one sequence (in file order, the state carried
    from sweep to sweep); each pulse train is one sequence. ``noise`` (the recipe's
    ``sweep_rel``, ``sweep_floor``, ``pulse_rel``, ``pulse_floor``) sets the weighting
    ``sigma = rel |y| + floor``.
    """
    noise = dict(ds.recipe.noise if noise is None else noise)
    devices = [d for d, _ in ds.devices]
    dev_index = {d: i for i, d in enumerate(devices)}
    device_area = np.array([a for _, a in ds.devices])
    seqs = []   # (v, dt, area, x0, icc, device)
    obs = []    # dicts of arrays
    groups, group_kind = [], []
    by_dev: dict[tuple[str, str], list] = {}
    for s in ds.sweeps:
        by_dev.setdefault((s.entry, s.device), []).append(s)
    for (entry, device), sweeps in by_dev.items():
        si = len(seqs)
        v = np.concatenate([s.voltage for s in sweeps])
        dt = np.concatenate([s.dwell for s in sweeps])
        icc = sweeps[0].compliance or np.inf
        seqs.append((v, dt, sweeps[0].area, sweeps[0].initial_state, icc, dev_index[device]))
        k0 = 0
        for s in sweeps:
            n = s.voltage.size
            groups.append(s.label)
            group_kind.append("sweep")
            obs.append(dict(seq=np.full(n, si), step=k0 + 1 + np.arange(n), v=s.voltage,
                            div=np.ones(n), y=s.current, valid=s.valid.copy(), kind=np.zeros(n, int),
                            group=np.full(n, len(groups) - 1),
                            part=np.asarray(getattr(s, "branch", np.zeros(n)), int),
                            restart=np.zeros(n, bool),
                            sigma=noise["sweep_rel"] * np.abs(s.current) + noise["sweep_floor"]))
            k0 += n
    for t in ds.trains:
        si = len(seqs)
        seqs.append((t.v_pulse, t.t_pulse, t.area, t.initial_state, np.inf, dev_index[t.device]))
        n = t.conductance.size
        groups.append(t.label)
        group_kind.append("pulse")
        first = np.r_[True, t.cycle[1:] != t.cycle[:-1]]
        restart = first & bool(getattr(t, "state_from_first_read", False))
        obs.append(dict(seq=np.full(n, si), step=t.read_after, v=t.v_read, div=t.v_read,
                        y=t.conductance, valid=np.ones(n, bool), kind=np.ones(n, int),
                        group=np.full(n, len(groups) - 1), part=np.asarray(t.cycle, int),
                        restart=restart,
                        sigma=noise["pulse_rel"] * np.abs(t.conductance) + noise["pulse_floor"]))
    if not seqs:
        raise DataError("the data set has no sweeps and no pulse trains")
    lengths = np.array([len(s[0]) for s in seqs])
    order = np.argsort(-lengths, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    S, K = len(seqs), int(lengths.max())
    v = np.zeros((S, K))
    dt = np.zeros((S, K))
    for i, s in enumerate(seqs):
        r = rank[i]
        v[r, : len(s[0])] = s[0]
        dt[r, : len(s[1])] = s[1]
    cat = {k: np.concatenate([o[k] for o in obs]) for k in obs[0]}
    return Program(
        v=v, dt=dt, length=lengths[order], area=np.array([seqs[i][2] for i in order]),
        x0=np.array([seqs[i][3] for i in order]), compliance=np.array([seqs[i][4] for i in order]),
        seq_device=np.array([seqs[i][5] for i in order]), obs_seq=rank[cat["seq"]],
        obs_step=cat["step"].astype(int), obs_v=cat["v"], obs_div=cat["div"], y=cat["y"],
        sigma=cat["sigma"], valid=cat["valid"], kind=cat["kind"], obs_group=cat["group"],
        obs_part=cat["part"], obs_restart=cat["restart"],
        groups=groups, group_kind=group_kind, devices=devices, device_area=device_area)


def simulate_states(prog: Program, card: ModelCard, *, g_scale: np.ndarray | None = None,
                    dv_p: np.ndarray | None = None, dv_d: np.ndarray | None = None,
                    c2c: bool = False, rng: np.random.Generator | int | None = None,
                    assimilate: np.ndarray | None = None, return_both: bool = False,
                    kappa_mean: float = 0.0, sequential: bool = False):
    """States ``x`` (S, K+1) of every sequence after every step.

    With ``assimilate`` (S, K+1; NaN where unknown) the state after step ``k`` is replaced by
    ``assimilate[:, k+1]`` where that is finite, *after* the prediction for step ``k`` was
    stored: the returned states are then one-step-ahead predictions from the previous
    assimilated state (``return_both=True`` also returns the assimilated trajectory).

    ``kappa_mean`` > 0: each step returns the *expected* state over the cycle-to-cycle
    factor ``kappa ~ N(1, kappa_mean)`` (clipped at 0), by 7-point Gauss-Hermite
    quadrature: the conditional mean that a one-step-ahead prediction needs when single
    steps are large (DC sweeps), where the step is a concave function of ``kappa``.

    With ``assimilate`` the steps are independent given the assimilated states, so they are
    computed at once, by depth (number of steps since the last assimilated state) rather
    than step by step; ``sequential=True`` forces the step loop (same result).

    Parameters
    ----------
    g_scale : (D,) per-device conductance scale (used only for the compliance limit); 1.
    dv_p, dv_d : (D,) per-device shifts (V) of ``v_p`` and ``v_d``; 0.
    c2c : bool
        Scale every step's rate by ``kappa ~ N(1, card.c2c_sigma)`` clipped at 0, as
        :func:`pyspice_rram.device.pulses.simulate_pulse_train` does.
    """
    S, K = prog.v.shape
    gs = np.ones(S) if g_scale is None else np.asarray(g_scale)[prog.seq_device]
    vp = card.v_p + (0.0 if dv_p is None else np.asarray(dv_p)[prog.seq_device]) * np.ones(S)
    vd = card.v_d + (0.0 if dv_d is None else np.asarray(dv_d)[prog.seq_device]) * np.ones(S)
    if assimilate is not None and not c2c and not sequential:
        return _conditional_states(prog, card, assimilate, gs, vp, vd, kappa_mean, return_both)
    if _COMPILED and assimilate is None and not (c2c and card.c2c_sigma > 0):
        nodes, weights = _gauss_hermite(kappa_mean)
        x = _kernels.simulate_program(
            prog.v, prog.dt, np.asarray(prog.length, dtype=np.int64), np.asarray(prog.x0, float),
            np.asarray(gs, float), np.asarray(prog.area, float),
            np.asarray(prog.compliance, float), vp, vd, *_card_args(card), nodes, weights)
        return (x, x) if return_both else x
    rng = np.random.default_rng(rng)
    if kappa_mean > 0:
        t, w = np.polynomial.hermite.hermgauss(7)
        gh_nodes = np.clip(1.0 + kappa_mean * np.sqrt(2.0) * t, 0.0, None)
        gh_weights = w / np.sqrt(np.pi)
    x = np.empty((S, K + 1))
    x[:, 0] = prog.x0
    if assimilate is not None:
        xp = np.empty((S, K + 1))
        xp[:, 0] = prog.x0
    limited = np.isfinite(prog.compliance)
    series = card.r_series > 0
    n_active = np.searchsorted(-prog.length, -np.arange(1, K + 1), side="right")
    for k in range(K):
        n = int(n_active[k])
        v = prog.v[:n, k]
        if series or limited[:n].any():
            v = drive_voltage(card, x[:n, k], v, gs[:n], prog.area[:n], prog.compliance[:n])
        kappa = 1.0
        if c2c and card.c2c_sigma > 0:
            kappa = np.clip(1.0 + card.c2c_sigma * rng.standard_normal(n), 0.0, None)
        if kappa_mean > 0:
            xn = advance(x[:n, k, None], v[:, None], prog.dt[:n, k, None], card,
                         kappa=gh_nodes[None, :], v_p=vp[:n, None], v_d=vd[:n, None])
            x[:n, k + 1] = xn @ gh_weights
        else:
            x[:n, k + 1] = advance(x[:n, k], v, prog.dt[:n, k], card, kappa=kappa,
                                   v_p=vp[:n], v_d=vd[:n])
        x[n:, k + 1] = x[n:, k]
        if assimilate is not None:
            xp[:, k + 1] = x[:, k + 1]
            a = assimilate[:, k + 1]
            ok = np.isfinite(a)
            x[ok, k + 1] = a[ok]
    if assimilate is None:
        return (x, x) if return_both else x
    return (xp, x) if return_both else xp


def _step(card: ModelCard, x: np.ndarray, v: np.ndarray, dt: np.ndarray, gs: np.ndarray,
          area: np.ndarray, icc: np.ndarray, vp: np.ndarray, vd: np.ndarray,
          kappa_mean: float) -> np.ndarray:
    """One step of arrays of (sequence, step) pairs: compliance limit, then the exact advance
    (expected over kappa when ``kappa_mean`` > 0)."""
    if card.r_series > 0 or np.isfinite(icc).any():
        v = drive_voltage(card, x, v, gs, area, icc)
    if kappa_mean > 0:
        t, w = np.polynomial.hermite.hermgauss(7)
        nodes = np.clip(1.0 + kappa_mean * np.sqrt(2.0) * t, 0.0, None)
        xn = advance(x[:, None], v[:, None], dt[:, None], card, kappa=nodes[None, :],
                     v_p=vp[:, None], v_d=vd[:, None])
        return xn @ (w / np.sqrt(np.pi))
    return advance(x, v, dt, card, v_p=vp, v_d=vd)


def _conditional_states(prog: Program, card: ModelCard, assimilate: np.ndarray, gs, vp, vd,
                        kappa_mean: float, return_both: bool):
    """One-step-ahead states, vectorised over all steps that start from an assimilated state
    (depth 0), then those one step further (depth 1), and so on."""
    S, K = prog.v.shape
    if _COMPILED:
        nodes, weights = _gauss_hermite(kappa_mean)
        xp, xs = _kernels.conditional_program(
            prog.v, prog.dt, np.asarray(prog.length, dtype=np.int64),
            np.asarray(assimilate, dtype=float), np.asarray(prog.x0, float),
            np.asarray(gs, float), np.asarray(prog.area, float),
            np.asarray(prog.compliance, float), vp, vd, *_card_args(card), nodes, weights,
            return_both)
        return (xp, xs) if return_both else xp
    A = np.array(assimilate, dtype=float, copy=True)
    A[:, 0] = np.where(np.isfinite(A[:, 0]), A[:, 0], prog.x0)
    known = np.isfinite(A)
    idx = np.arange(K + 1)
    last = np.maximum.accumulate(np.where(known, idx[None, :], 0), axis=1)
    depth = (idx[None, :] - last)[:, :K]          # of the start state of step k
    active = idx[None, :K] < prog.length[:, None]
    xp = np.zeros((S, K + 1))
    xp[:, 0] = A[:, 0]
    sa, ka = np.nonzero(active)
    da = depth[sa, ka]
    order = np.argsort(da, kind="stable")
    sa, ka, da = sa[order], ka[order], da[order]
    bounds = np.searchsorted(da, np.arange(int(da.max()) + 2 if da.size else 0))
    for d in range(bounds.size - 1):
        si, ki = sa[bounds[d]:bounds[d + 1]], ka[bounds[d]:bounds[d + 1]]
        if si.size == 0:
            continue
        x0 = A[si, ki] if d == 0 else xp[si, ki]
        xp[si, ki + 1] = _step(card, x0, prog.v[si, ki], prog.dt[si, ki], gs[si],
                               prog.area[si], prog.compliance[si], vp[si], vd[si], kappa_mean)
    if not return_both:
        return xp
    return xp, np.where(known, A, xp)


def predict(prog: Program, card: ModelCard, x: np.ndarray,
            g_scale: np.ndarray | None = None) -> np.ndarray:
    """Model value of every observation (A for sweep points, S for reads) from states ``x``.

    ``g_scale`` (per device) multiplies the value: exact without series resistance, a
    first-order approximation with it (the scale is a small device-to-device correction).
    """
    xs = x[prog.obs_seq, prog.obs_step]
    out = cell_current(prog.obs_v, xs, prog.area[prog.obs_seq], card) / prog.obs_div
    if g_scale is not None:
        out = out * np.asarray(g_scale)[prog.obs_device]
    return out


def free_states(prog: Program, card: ModelCard, *, g_scale: np.ndarray | None = None,
                dv_p: np.ndarray | None = None, dv_d: np.ndarray | None = None) -> np.ndarray:
    """Free-running states (S, K+1): each sequence from its initial state, except that the
    cycles of entries with ``state_from_first_read`` start from the state inverted from their
    first read (:attr:`Program.obs_restart`)."""
    if not prog.has_restarts:
        return simulate_states(prog, card, g_scale=g_scale, dv_p=dv_p, dv_d=dv_d)
    gs = np.ones(len(prog.devices)) if g_scale is None else g_scale
    xa = observed_states(prog, card, gs, v_min=0.0, mask=prog.obs_restart)
    return simulate_states(prog, card, g_scale=g_scale, dv_p=dv_p, dv_d=dv_d, assimilate=xa,
                           return_both=True)[1]


def observed_states(prog: Program, card: ModelCard, g_scale: np.ndarray,
                    v_min: float = 0.05, mask: np.ndarray | None = None) -> np.ndarray:
    """States (S, K+1) inverted from the observations (NaN where there is none).

    ``x = state_from_conductance(I / V, s A, card, V)`` with ``I = y div`` (default family:
    ``(I / (s A V_nl sinh(V/V_nl)) - g_min) / (g_max - g_min)``) clipped to [0, 1], for valid
    observations read at ``|V| >= v_min`` (near 0 V a current carries no state).
    """
    S, K1 = prog.v.shape[0], prog.v.shape[1] + 1
    out = np.full((S, K1), np.nan)
    m = prog.valid & (np.abs(prog.obs_v) >= v_min)
    if mask is not None:
        m = m & mask
    s = np.asarray(g_scale)[prog.obs_device[m]]
    v = prog.obs_v[m]
    i = prog.y[m] * prog.obs_div[m]
    x = state_from_conductance(i / v, s * prog.area[prog.obs_seq[m]], card, v)
    x = np.where(np.isnan(x), np.where(i * v > 0, 1.0, 0.0), x)
    out[prog.obs_seq[m], prog.obs_step[m]] = np.clip(x, 0.0, 1.0)
    return out


def profile_scales(prog: Program, model: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-device conductance scales ``s_d`` that minimise ``sum w^2 (s m - y)^2``
    (``s = sum w^2 m y / sum w^2 m^2``), normalised to a geometric mean of 1 over devices."""
    w2 = 1.0 / prog.sigma**2
    m = prog.valid if mask is None else (prog.valid & mask)
    dev = prog.obs_device
    D = len(prog.devices)
    num = np.bincount(dev[m], (w2 * model * prog.y)[m], minlength=D)
    den = np.bincount(dev[m], (w2 * model * model)[m], minlength=D)
    s = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
    s = np.clip(s, 1e-6, None)
    return s / np.exp(np.mean(np.log(s)))


def _units(prog: Program) -> np.ndarray:
    """Unit of every observation that a subset keeps or drops whole: its sweep (group) for
    DC sweeps, its (train, cycle) for pulse reads. Returns an int code per observation,
    increasing along each sequence."""
    part = prog.obs_part if prog.obs_part is not None else np.zeros(prog.y.size, int)
    key = np.where(prog.kind == 0, 0, part.astype(np.int64) + 1)
    _, code = np.unique(np.c_[prog.obs_group, key], axis=0, return_inverse=True)
    return code.reshape(-1)


def subset_program(prog: Program, max_points: int | None) -> tuple[Program, dict]:
    """A representative part of a big program for the fit: each sequence (the sweeps of a
    device in one entry, or a device's pulse train) truncated to its first whole units
    (sweeps, or cycles of a train), so that the simulation of what is kept is exact (the
    state is carried from the start, as in the whole program).

    Every sequence, hence every device and area, keeps at least its first unit, and at least
    the units up to the first step of each polarity it applies (both kinetics stay in the
    fit); the budget of ``max_points`` observations is shared between the sequences by
    water-filling (a sequence with fewer points than the common level keeps all of them,
    the others keep the number of whole units nearest to the level). ``max_points=None`` or a program within the budget:
    returned unchanged.

    Returns the program and a record ``{"n_fit": N, "n_total": M, "subsampled": bool,
    "rule": ...}``.
    """
    n_total = int(prog.y.size)
    info = {"n_fit": n_total, "n_total": n_total, "subsampled": False,
            "n_sequences": int(prog.v.shape[0])}
    if max_points is None or n_total <= max_points:
        return prog, info
    S = prog.v.shape[0]
    unit = _units(prog)
    n_unit = np.bincount(unit)
    # the program order of the units: by sequence, then by their first step
    first_step = np.full(n_unit.size, np.iinfo(np.int64).max)
    np.minimum.at(first_step, unit, prog.obs_step)
    last_step = np.zeros(n_unit.size, np.int64)
    np.maximum.at(last_step, unit, prog.obs_step)
    unit_seq = np.zeros(n_unit.size, np.int64)
    unit_seq[unit] = prog.obs_seq
    order = np.lexsort((first_step, unit_seq))
    per_seq = np.bincount(prog.obs_seq, minlength=S)
    # water level L: sum_s min(n_s, L) = max_points
    lo, hi = 0.0, float(per_seq.max())
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if np.minimum(per_seq, mid).sum() > max_points:
            hi = mid
        else:
            lo = mid
    level = lo
    keep_unit = np.zeros(n_unit.size, bool)
    start = np.r_[0, np.cumsum(np.bincount(unit_seq[order], minlength=S))]
    for s in range(S):
        us = order[start[s]:start[s + 1]]
        if us.size == 0:
            continue
        c = np.cumsum(n_unit[us])
        k = int(np.searchsorted(c, level, side="right"))   # whole units within the level
        if k < us.size and (k == 0 or c[k] - level < level - c[k - 1]):
            k += 1                                         # one more is nearer the level
        # at least up to the first step of every polarity the sequence applies (a prefix of
        # positive sweeps alone would leave the depression kinetics undetermined)
        live = prog.v[s, :prog.length[s]] * (prog.dt[s, :prog.length[s]] > 0)
        firsts = [int(np.argmax(live > 0)) if (live > 0).any() else 0,
                  int(np.argmax(live < 0)) if (live < 0).any() else 0]
        k_min = int(np.searchsorted(last_step[us], max(firsts) + 1, side="left")) + 1
        keep_unit[us[:max(k, min(k_min, us.size), 1)]] = True
    keep = keep_unit[unit]
    # each sequence up to the last step it still observes
    new_len = np.zeros(S, np.int64)
    np.maximum.at(new_len, prog.obs_seq[keep], prog.obs_step[keep])
    new_len = np.minimum(np.maximum(new_len, 1), prog.length)
    order_s = np.argsort(-new_len, kind="stable")
    rank = np.empty_like(order_s)
    rank[order_s] = np.arange(S)
    K = int(new_len.max())
    v = prog.v[order_s, :K].copy()
    dt = prog.dt[order_s, :K].copy()
    pad = np.arange(K)[None, :] >= new_len[order_s][:, None]
    v[pad] = 0.0
    dt[pad] = 0.0
    sel = np.nonzero(keep)[0]

    def obs(a):
        return None if a is None else a[sel]

    sub = Program(
        v=v, dt=dt, length=new_len[order_s], area=prog.area[order_s], x0=prog.x0[order_s],
        compliance=prog.compliance[order_s], seq_device=prog.seq_device[order_s],
        obs_seq=rank[prog.obs_seq[sel]], obs_step=prog.obs_step[sel], obs_v=obs(prog.obs_v),
        obs_div=obs(prog.obs_div), y=obs(prog.y), sigma=obs(prog.sigma),
        valid=obs(prog.valid), kind=obs(prog.kind), obs_group=obs(prog.obs_group),
        groups=prog.groups, group_kind=prog.group_kind, devices=prog.devices,
        device_area=prog.device_area, obs_part=obs(prog.obs_part),
        obs_restart=obs(prog.obs_restart))
    info.update(n_fit=int(sel.size), subsampled=True, budget=int(max_points),
                n_units_kept=int(keep_unit.sum()),
                n_units=int(n_unit.size), steps_fit=int(sub.length.sum()),
                steps_total=int(prog.length.sum()),
                rule=("each sequence (the sweeps of a device in one entry, or a device's pulse "
                      "train) truncated to its first whole sweeps / cycles (at least one, and "
                      "at least up to its first step of each polarity), the budget of "
                      f"{max_points} points shared by water-filling (level {level:.0f} points "
                      f"per sequence); the verdict, R² and figures of merit are computed on all "
                      f"{n_total} points"))
    return sub, info
