"""The in-memory fit API (``fit(dataset) -> FitResult``, ``.report()``, ``.save()``), its
stages called one by one, and the fit of big data sets on a subset of whole cycles/sweeps.

The data are SYNTHETIC pulse trains simulated from the reference card
(:func:`test_fit_adversarial.write_pulses`: cycle-to-cycle noise, 0.5 % read noise) and the
sweep file of ``test_big_inputs``; each fit is one family without global starts."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from pyspice_rram.calibration import ClippedPointsWarning, FitResult, fit, load_dataset
from pyspice_rram.calibration import fitting as fit_mod
from pyspice_rram.calibration.families import candidate_families
from pyspice_rram.calibration.program import (build_program, predict, simulate_states,
                                              subset_program)
from pyspice_rram.device import ModelCard
from pyspice_rram.errors import UserInputError

from test_big_inputs import _write as write_sweeps
from test_fit_adversarial import FAMILY, ramp, write_pulses

FAST = dict(starts=0, max_rounds=2, max_nfev=400)
#: 4 devices x 4 cycles x (30 depression pulses at -2 V + 60 potentiation pulses + 1 read)
#: = 1456 reads, cycle-to-cycle δ/μ 0.15
ROWS = [r for dev in ("d1", "d2", "d3", "d4")
        for r in ramp(dev, cycles=4, n_dep=30, n_pot=60, v_reset=-2.0)]
N = len(ROWS)


@pytest.fixture(scope="module")
def pulses(tmp_path_factory):
    d = write_pulses(tmp_path_factory.mktemp("api") / "d", ROWS,
                     card=ModelCard.reference().replace(c2c_sigma=0.15))
    return d, load_dataset(d)


@pytest.fixture(scope="module")
def full_fit(pulses):
    return fit(pulses[1], FAMILY, **FAST)


@pytest.fixture(scope="module")
def sub_fit(pulses):
    return fit(pulses[1], FAMILY, **FAST, max_points=N // 2)


def test_fit_is_in_memory_and_keeps_the_covariance(pulses, full_fit):
    d, _ = pulses
    r = full_fit
    assert isinstance(r, FitResult) and not r.paths
    assert sorted(p.name for p in d.iterdir()) == ["pulses.csv", "recipe.toml"]  # nothing written
    names = r.covariance_names
    varied = [n for n, p in r.parameters.items() if p.vary and n not in
              ("c2c_sigma", "d2d_g_sigma", "d2d_v_sigma")]
    assert len(names) == len(varied) >= 4 and r.covariance.shape == (len(names),) * 2
    np.testing.assert_allclose(r.covariance, r.covariance.T, rtol=1e-9)
    c = r.correlation
    np.testing.assert_allclose(np.diag(c), 1.0, rtol=1e-12)
    # the card's stderr of a linear-scale parameter is the larger of the robust (4 devices)
    # and the iid one (v_p/v_d add the sampling error of the device mean in quadrature)
    linear = [n for n in names if not n.startswith("log10_") and n not in ("v_p", "v_d")]
    assert linear
    for n in linear:
        j = names.index(n)
        assert r.parameters[n].stderr == pytest.approx(math.sqrt(max(
            r.covariance[j, j], r.covariance_iid[j, j])), rel=1e-9)
    # quality.json's nested correlations come from the same matrix
    a, b = names[0], names[1]
    assert r.statistics["correlations"][a][b] == pytest.approx(c[0, 1], rel=1e-9)
    assert r.verdict == r.quality["verdict"] in ("good", "usable")
    assert r.fit_subset == {**r.fit_subset, "n_fit": N, "n_total": N, "subsampled": False}


def test_report_names_every_parameter_and_the_correlations(full_fit):
    text = full_fit.report()
    assert text.startswith("[[Fit]]") and "[[Verdict]]" in text and "[[Variables]]" in text
    for n, p in full_fit.parameters.items():
        assert f"    {n} " in text, n
    assert "[[Correlations]]" in text
    names, c = full_fit.covariance_names, full_fit.correlation
    i, j = np.unravel_index(np.nanargmax(np.abs(c - np.eye(len(names)))), c.shape)
    pair = sorted((names[i], names[j]), key=names.index)
    assert f"C({pair[0]}, {pair[1]})" in text and f"{c[i, j]:+.4f}" in text


def test_save_writes_the_set_and_refuses_to_overwrite(full_fit, tmp_path):
    out = tmp_path / "out"
    paths = full_fit.save(out / "card.json")
    for key in ("card", "quality", "lib", "va", "report"):
        assert paths[key].exists(), key
    assert (out / "report" / "fit_report.txt").read_text() == full_fit.report()
    q = json.loads((out / "quality.json").read_text())
    assert q["fit_points"]["n_fit"] == q["fit_points"]["n_total"] == N
    assert ModelCard.load(out / "card.json").provenance["fit_points"] == {"used": N, "of": N}
    before = (out / "card.json").read_bytes()
    with pytest.raises(UserInputError, match=r"card\.json exists; not overwritten"):
        full_fit.save(out, report=False)
    assert (out / "card.json").read_bytes() == before
    full_fit.save(out, force=True, report=False)


def test_stages_called_one_by_one_give_the_same_fit(pulses, full_fit):
    """build_program -> fit_families (fit_family, global_start) -> select_family ->
    assess -> stamp_card: the same card as fit()."""
    _, ds = pulses
    prog = build_program(ds)
    specs = candidate_families(prog, FAMILY, "test")
    results, selection = fit_mod.fit_families(ds, prog, specs, n_starts=0, max_rounds=2,
                                              max_nfev=400)
    r = fit_mod.select_family(results, selection)
    q = fit_mod.assess(r)
    fit_mod.stamp_card(r)
    assert q["verdict"] == full_fit.verdict and selection[0]["chosen"]
    for n, p in full_fit.parameters.items():
        if p.vary:
            assert r.parameters[n].value == pytest.approx(p.value, rel=1e-12), n


def test_subset_keeps_whole_prefixes_and_simulates_exactly(tmp_path):
    """Each sequence keeps its first whole units (sweeps here), the budget is met, every
    device stays, and the model of a kept observation is the one of the whole program."""
    write_sweeps(tmp_path, n_rows=8000, n_dev=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClippedPointsWarning)
        prog = build_program(load_dataset(tmp_path))
    sub, info = subset_program(prog, 2000)
    assert info["subsampled"] and info["n_total"] == 8000
    # the whole sweeps (~100 points) nearest the level of 500 points per device
    assert abs(info["n_fit"] - 2000) <= 4 * 51 and sub.y.size == info["n_fit"]
    assert sorted(set(sub.seq_device.tolist())) == [0, 1, 2, 3]
    kept = {prog.groups[g] for g in np.unique(sub.obs_group)}
    for g in kept:   # whole sweeps: every point of a kept sweep is kept
        assert np.sum(sub.obs_group == prog.groups.index(g)) == np.sum(
            prog.obs_group == prog.groups.index(g))
    card = ModelCard.reference()
    m_full = predict(prog, card, simulate_states(prog, card))
    m_sub = predict(sub, card, simulate_states(sub, card))
    keep = np.isin(prog.obs_group, np.unique(sub.obs_group))
    np.testing.assert_allclose(m_sub, m_full[keep], rtol=1e-12, atol=0)
    assert subset_program(prog, None)[0] is prog and subset_program(prog, 10**6)[0] is prog


def test_subsampled_fit_agrees_with_the_full_fit(pulses, full_fit, sub_fit):
    """The fit on the first 2 of 4 cycles of each device: every varied parameter within 3
    standard errors of the subset fit from the full fit (the difference of nested estimates
    has a variance below the subset's), the same verdict, judged on all reads."""
    sub = sub_fit.fit_subset
    assert sub["subsampled"] and sub["n_total"] == N and sub["n_fit"] == N // 2
    for n, p in full_fit.parameters.items():
        if not p.vary or not math.isfinite(p.stderr):
            continue
        q = sub_fit.parameters[n]
        assert abs(q.value - p.value) <= 3 * q.stderr, (n, p.value, q.value, q.stderr)
    assert sub_fit.verdict == full_fit.verdict == "good"
    assert sub_fit.program.y.size == N and sub_fit.fitted_program.y.size == sub["n_fit"]
    assert len(sub_fit.quality["pulse_r2_per_cycle"]) == len(
        full_fit.quality["pulse_r2_per_cycle"]) == 16
    assert abs(sub_fit.quality["pulse_r2_median"] - full_fit.quality["pulse_r2_median"]) < 0.002
    assert any(x.startswith(f"info: fitted on {sub['n_fit']} of {N} points")
               for x in sub_fit.quality["reasons"])
