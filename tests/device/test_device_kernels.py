"""Compiled (numba) exact advance against the NumPy reference form."""

from __future__ import annotations

import numpy as np
import pytest

from pyspice_rram.calibration import program as prog_mod
from pyspice_rram.calibration.program import Program, simulate_states
from pyspice_rram.device import _kernels
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
