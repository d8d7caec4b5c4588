"""Compiled (numba) exact advance against the NumPy reference form."""

from __future__ import annotations

import numpy as np
import pytest

from pyspice_rram.calibration import program as prog_mod
from pyspice_rram.calibration.program import Program, simulate_states
from pyspice_rram.device import compiled as _kernels
from pyspice_rram.device import model
from pyspice_rram.device.card import ModelCard
from pyspice_rram.device.model import advance

TOL = dict(rtol=1e-12, atol=1e-12)


def random_inputs(rng, n, eps):
    """States everywhere incl. the bounds and both windows (and just outside them), voltages
    of both signs and 0, durations from nothing to saturating."""
    x = rng.uniform(0, 1, n)
    k = rng.integers(0, 6, n)
    x = np.where(k == 1, rng.uniform(0, 2 * eps, n), x)          # depression window / edge
    x = np.where(k == 2, 1 - rng.uniform(0, 2 * eps, n), x)      # potentiation window / edge
    x = np.where(k == 3, rng.choice([0.0, 1.0, eps, 1 - eps], n), x)
    v = rng.uniform(-3.5, 3.5, n)
    v = np.where(rng.random(n) < 0.05, 0.0, v)
    dt = 10.0 ** rng.uniform(-9, 0, n)
    dt = np.where(rng.random(n) < 0.03, 0.0, dt)
    kappa = np.clip(1 + 0.5 * rng.standard_normal(n), 0, None)
    return x, v, dt, kappa


@pytest.mark.parametrize("beta_p,beta_d", [(-3.0, 2.0), (0.0, 0.0), (0.5, 1.0), (4.0, -1.5),
                                           (1e-10, -1e-10), (10.0, -5.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_compiled_advance_matches_numpy(beta_p, beta_d, seed):
    rng = np.random.default_rng(seed)
    card = ModelCard(beta_p=beta_p, beta_d=beta_d, v_p=rng.uniform(0.3, 1.5),
                     v0_p=rng.uniform(0.03, 0.3), v_d=rng.uniform(0.3, 1.5),
                     v0_d=rng.uniform(0.03, 0.3), eps_bound=10 ** rng.uniform(-4, -1.5))
    n = 20000
    x, v, dt, kappa = random_inputs(rng, n, card.eps_bound)
    vp = card.v_p + 0.05 * rng.standard_normal(n)
    vd = card.v_d + 0.05 * rng.standard_normal(n)
    ref = advance(x, v, dt, card, kappa=kappa, v_p=vp, v_d=vd)
    got = _kernels.advance(x, v, dt, card, kappa=kappa, v_p=vp, v_d=vd)
    np.testing.assert_allclose(got, ref, **TOL)
    # the window regions and the bulk-to-window crossing were exercised
    assert np.any((ref > 0) & (ref < card.eps_bound)) and np.any(ref == 0.0)
    assert np.any((ref < 1) & (ref > 1 - card.eps_bound)) and np.any(ref == 1.0)
    # defaults (card v_p/v_d, kappa = 1) and broadcasting
    np.testing.assert_allclose(_kernels.advance(x[:50, None], v[None, :40], 1e-5, card),
                               advance(x[:50, None], v[None, :40], 1e-5, card), **TOL)


@pytest.mark.parametrize("beta", [-2.0, 0.0, 1.5])
def test_compiled_expected_advance_matches_numpy_quadrature(beta):
    rng = np.random.default_rng(3)
    card = ModelCard(beta_p=beta, beta_d=-beta)
    nodes, weights = prog_mod._gauss_hermite(0.4)
    x, v, dt, _ = random_inputs(rng, 3000, card.eps_bound)
    vp = np.full(x.size, card.v_p)
    vd = np.full(x.size, card.v_d)
    ref = advance(x[:, None], v[:, None], dt[:, None], card, kappa=nodes[None, :]) @ weights
    got = np.array([_kernels.advance_mean(x[i], v[i], dt[i], nodes, weights, vp[i], vd[i],
                                          card.v0_p, card.v0_d, card.c_p, card.c_d,
                                          card.eps_bound) for i in range(x.size)])
    np.testing.assert_allclose(got, ref, **TOL)


def small_program(rng, S=40, K=60) -> Program:
    length = np.sort(rng.integers(1, K + 1, S))[::-1].copy()
    length[0] = K
    v = np.where(rng.random((S, K)) < 0.5, rng.uniform(-3, -0.5, (S, K)),
                 rng.uniform(0.5, 2.5, (S, K)))
    dt = 10.0 ** rng.uniform(-7, -3, (S, K))
    pad = np.arange(K)[None, :] >= length[:, None]
    v[pad], dt[pad] = 0.0, 0.0
    area = np.pi * (10.0 ** rng.uniform(-7.5, -6, S)) ** 2 / 4
    icc = np.where(rng.random(S) < 0.5, np.inf, 10.0 ** rng.uniform(-6, -4, S))
    D = 8
    seq_device = rng.integers(0, D, S)
    obs_seq = np.repeat(np.arange(S), 5)
    obs_step = np.concatenate([rng.integers(0, length[s] + 1, 5) for s in range(S)])
    R = obs_seq.size
    return Program(v=v, dt=dt, length=length, area=area, x0=rng.uniform(0, 1, S),
                   compliance=icc, seq_device=seq_device, obs_seq=obs_seq, obs_step=obs_step,
                   obs_v=np.full(R, 0.2), obs_div=np.full(R, 0.2), y=np.ones(R),
                   sigma=np.ones(R), valid=np.ones(R, bool), kind=np.ones(R, int),
                   obs_group=np.zeros(R, int), groups=["g"], group_kind=["pulse"],
                   devices=[f"d{i}" for i in range(D)], device_area=np.ones(D))


@pytest.mark.parametrize("kappa_mean", [0.0, 0.35])
def test_compiled_program_simulation_matches_numpy_loops(kappa_mean, monkeypatch):
    rng = np.random.default_rng(7)
    prog = small_program(rng)
    card = ModelCard(beta_p=-0.7, beta_d=2.0)
    D = len(prog.devices)
    kw = dict(g_scale=np.exp(0.2 * rng.standard_normal(D)), dv_p=0.03 * rng.standard_normal(D),
              dv_d=0.03 * rng.standard_normal(D), kappa_mean=kappa_mean)
    assim = np.where(rng.random((prog.v.shape[0], prog.v.shape[1] + 1)) < 0.4,
                     rng.uniform(0, 1, (prog.v.shape[0], prog.v.shape[1] + 1)), np.nan)
    monkeypatch.setattr(prog_mod, "_COMPILED", True)
    free = simulate_states(prog, card, **kw)
    cond = simulate_states(prog, card, assimilate=assim, return_both=True, **kw)
    monkeypatch.setattr(prog_mod, "_COMPILED", False)
    np.testing.assert_allclose(free, simulate_states(prog, card, **kw), **TOL)
    for got, ref in zip(cond, simulate_states(prog, card, assimilate=assim, return_both=True,
                                              **kw)):
        np.testing.assert_allclose(got, ref, **TOL)


# ------------------------------------------------------------------- model families
#: Cards of the agreement tests by id, ``<family>[+rs]`` (``+rs``: series resistance).
FAMILIES = {
    "sinh/threshold/linear": dict(),
    "sinh/threshold/linear+rs": dict(r_series=5e3),
    "sinh/soft_bounds/log": dict(dynamics="soft_bounds", g_map="log", gamma_p=0.6,
                                 gamma_d=1.7, g_min_density=1e6, g_max_density=1e8),
    "schottky/soft_bounds/log+rs": dict(read_model="schottky", dynamics="soft_bounds",
                                        g_map="log", n_f=20.0, n_r=40.0, r_series=2e3,
                                        gamma_p=1.0, gamma_d=2.5, g_min_density=1e6,
                                        g_max_density=1e8, v_p=0.7, v_d=0.8),
    "schottky/threshold/linear": dict(read_model="schottky", n_f=15.0, n_r=60.0),
    "linear/threshold/linear": dict(read_model="linear", beta_p=-1.0, beta_d=2.0),
    "linear/soft_bounds/linear+rs": dict(read_model="linear", dynamics="soft_bounds",
                                         gamma_p=3.0, gamma_d=0.3, r_series=1e4),
}


def family_program(rng) -> Program:
    """DC sweeps (0 -> +V -> 0 -> -V -> 0, 1 ms dwell, several cycles in one sequence) and
    pulse trains (+V/-V blocks of 1-100 µs pulses) on cells of 0.1-2 µm; sequences of
    different lengths, compliance on half of the sweeps."""
    seqs = []
    for _ in range(6):  # sweep sequences
        vmax, vmin, st = rng.uniform(1.2, 2.5), rng.uniform(1.2, 2.8), rng.uniform(0.04, 0.1)
        up = np.arange(st, vmax + st / 2, st)
        dn = np.arange(st, vmin + st / 2, st)
        cyc = np.concatenate([up, up[::-1][1:], [0.0], -dn, -dn[::-1][1:], [0.0]])
        v = np.tile(cyc, rng.integers(1, 4))
        seqs.append((v, np.full(v.size, 1e-3 * rng.uniform(0.5, 2)), len(seqs) % 2 == 1))
    for _ in range(5):  # pulse trains
        n = rng.integers(20, 120)
        blocks = np.repeat(rng.choice([1.0, -1.0], 4), n // 4 + 1)[:n]
        v = np.where(blocks > 0, rng.uniform(1.2, 2.2), -rng.uniform(1.2, 2.8)) * np.ones(n)
        seqs.append((v, np.full(n, 10.0 ** rng.uniform(-6, -4)), False))
    lengths = np.array([s[0].size for s in seqs])
    order = np.argsort(-lengths, kind="stable")
    S, K = len(seqs), int(lengths.max())
    v, dt = np.zeros((S, K)), np.zeros((S, K))
    for r, i in enumerate(order):
        v[r, :lengths[i]], dt[r, :lengths[i]] = seqs[i][0], seqs[i][1]
    area = np.pi * (10.0 ** rng.uniform(-7, -5.7, S)) ** 2 / 4
    # compliance: about the low-field current at 0.1-3 V of g = 1e8 S/m²
    limited = np.array([seqs[i][2] for i in order])
    icc = np.where(limited, 1e8 * area * 10.0 ** rng.uniform(-1.0, 0.5, S), np.inf)
    D = 4
    R = S
    return Program(v=v, dt=dt, length=lengths[order], area=area, x0=rng.uniform(0, 1, S),
                   compliance=icc, seq_device=rng.integers(0, D, S), obs_seq=np.arange(S),
                   obs_step=lengths[order].copy(), obs_v=np.full(R, 0.2),
                   obs_div=np.full(R, 0.2), y=np.ones(R), sigma=np.ones(R),
                   valid=np.ones(R, bool), kind=np.ones(R, int), obs_group=np.zeros(R, int),
                   groups=["g"], group_kind=["pulse"], devices=[f"d{i}" for i in range(D)],
                   device_area=np.ones(D))


ABS = dict(rtol=0.0, atol=1e-12)


@pytest.mark.parametrize("kappa_mean", [0.0, 0.3])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_compiled_program_matches_numpy_every_family(family, kappa_mean, monkeypatch):
    rng = np.random.default_rng(list(FAMILIES).index(family))
    card = ModelCard(**FAMILIES[family])
    assert card.family == family.split("+")[0]
    prog = family_program(rng)
    D = len(prog.devices)
    kw = dict(g_scale=np.exp(0.2 * rng.standard_normal(D)), dv_p=0.03 * rng.standard_normal(D),
              dv_d=0.03 * rng.standard_normal(D), kappa_mean=kappa_mean)
    shape = (prog.v.shape[0], prog.v.shape[1] + 1)
    assim = np.where(rng.random(shape) < 0.3, rng.uniform(0, 1, shape), np.nan)
    monkeypatch.setattr(prog_mod, "_COMPILED", True)
    free = simulate_states(prog, card, **kw)
    cond = simulate_states(prog, card, assimilate=assim, return_both=True, **kw)
    monkeypatch.setattr(prog_mod, "_COMPILED", False)
    ref_free = simulate_states(prog, card, **kw)
    np.testing.assert_allclose(free, ref_free, **ABS)
    ref_cond = simulate_states(prog, card, assimilate=assim, return_both=True, **kw)
    for got, ref in zip(cond, ref_cond):
        np.testing.assert_allclose(got, ref, **ABS)
    # the programs switch the cells (states spread over the range, both directions)
    steps = np.diff(ref_free, axis=1)
    assert np.ptp(ref_free) > 0.5 and steps.max() > 1e-3 and steps.min() < -1e-3
    # the compliance limits the drive voltage of many steps that switch the cell
    lim = np.flatnonzero(np.isfinite(prog.compliance))
    gs = kw["g_scale"][prog.seq_device[lim]]
    clipped = []
    for j in range(prog.length[lim].min()):
        args = (card, ref_free[lim, j], prog.v[lim, j], gs, prog.area[lim])
        clipped.append((np.abs(prog_mod.drive_voltage(*args, prog.compliance[lim])
                               - prog_mod.drive_voltage(*args, np.full(lim.size, np.inf))) > 1e-3)
                       & (np.abs(steps[lim, j]) > 1e-4))
    assert np.mean(clipped) > 0.05


def test_default_family_card_args_are_the_default():
    card = ModelCard()
    args = dict(zip(_kernels.CARD_ARGS, _kernels.card_args(card)))
    assert (args["read"], args["dyn"], args["gmap"], args["r_series"]) == (0, 0, 0, 0.0)
    assert card.is_default_family


@pytest.mark.parametrize("family", list(FAMILIES))
def test_compiled_scalar_forms_match_numpy(family):
    """Conductance map, iv_shape inverse, junction voltage, compliance voltages, advance."""
    card = ModelCard(**FAMILIES[family])
    rng = np.random.default_rng(5)
    a = dict(zip(_kernels.CARD_ARGS, _kernels.card_args(card)))
    rd = (a["read"], a["v_nl"], a["v_f"], a["v_r"], a["c_s"])
    n = 3000
    x = rng.uniform(-0.1, 1.1, n)
    v = np.where(rng.random(n) < 0.05, 0.0, rng.uniform(-4, 4, n))
    area = np.pi * (10.0 ** rng.uniform(-7.5, -5.5, n)) ** 2 / 4
    gd = np.array([_kernels._density(x[i], a["gmap"], a["g_min"], a["g_max"], a["log_ratio"])
                   for i in range(n)])
    np.testing.assert_allclose(gd, model.conductance_density(x, card), rtol=1e-14, atol=0)
    vj = np.array([_kernels._junction(v[i], area[i], gd[i], *rd, card.r_series)
                   for i in range(n)])
    np.testing.assert_allclose(vj, model.junction_voltage(v, x, area, card), **ABS)
    i_cc = 10.0 ** rng.uniform(-7, -3, n) * np.where(rng.random(n) < 0.5, 1, -1)
    vc = np.array([_kernels._iv_inverse(i_cc[i] / (area[i] * gd[i]), *rd) for i in range(n)])
    np.testing.assert_allclose(vc, model.junction_voltage_at_current(i_cc, x, area, card), **ABS)
    xs, vs, dt, kappa = random_inputs(rng, 20000, card.eps_bound)
    vp = card.v_p + 0.05 * rng.standard_normal(xs.size)
    np.testing.assert_allclose(_kernels.advance(xs, vs, dt, card, kappa=kappa, v_p=vp),
                               model.advance(xs, vs, dt, card, kappa=kappa, v_p=vp), **ABS)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf rate * 0 s (both)
@pytest.mark.parametrize("gamma", [0.05, 0.5, 1.0, 1.0 + 1e-10, 1.5, 10.0])
def test_compiled_power_law_matches_numpy(gamma):
    rng = np.random.default_rng(2)
    n = 20000
    u0 = np.where(rng.random(n) < 0.1, rng.choice([0.0, 1.0, -0.1, 1e-300], n),
                  rng.uniform(0, 1, n))
    k = 10.0 ** rng.uniform(-3, 8, n)
    k = np.where(rng.random(n) < 0.02, np.inf, k)
    t = np.where(rng.random(n) < 0.05, 0.0, 10.0 ** rng.uniform(-9, 0, n))
    ref = model._advance_power_law(u0, k, gamma, t)
    got = np.array([_kernels._power_law(u0[i], k[i], gamma, t[i]) for i in range(n)])
    np.testing.assert_allclose(got, ref, **ABS)
