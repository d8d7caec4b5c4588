"""Report figures: log/linear axes from the data, every pulse shown (min/max decimation),
unclipped residuals, no files for figures without data, per-cycle quality figure."""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np
import pytest

from pyspice_rram.calibration import report
from pyspice_rram.calibration.fitting import fit_program
from pyspice_rram.calibration.io import ClippedPointsWarning, load_dataset
from pyspice_rram.calibration.program import Program
from pyspice_rram.calibration.reference import DEFAULT_DIR

plt = report._plt()

OBS_FIELDS = ("obs_seq", "obs_step", "obs_v", "obs_div", "y", "sigma", "valid", "kind",
              "obs_group")


@pytest.fixture(scope="module")
def result():
    """A cheap fit of the shipped synthetic data set (few evaluations: only the shapes of
    the figures are tested, not the fit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClippedPointsWarning)
        ds = load_dataset(DEFAULT_DIR)
    res = fit_program(ds, progress=False, statistics=False, max_nfev=20, max_rounds=1)
    res.quality = None      # per-cycle quality is tested with values set below
    return res


def subset(res, keep: np.ndarray):
    """A copy of ``res`` with only the observations in ``keep`` (sequences unchanged)."""
    prog = res.program
    new = Program(**{**prog.__dict__, **{k: getattr(prog, k)[keep] for k in OBS_FIELDS}})
    return dataclasses.replace(res, program=new, model=res.model[keep])


def with_values(res, sel: np.ndarray, y: np.ndarray, fitted: np.ndarray):
    """A copy of ``res`` whose observations ``sel`` read ``y`` with the fitted value
    ``fitted`` (model divided by the device scale)."""
    prog = res.program
    yy, mm = prog.y.copy(), res.model.copy()
    yy[sel] = y
    mm[sel] = fitted / res.scales[prog.obs_device[sel]]
    return dataclasses.replace(res, program=Program(**{**prog.__dict__, "y": yy}), model=mm)


def all_line_y(ax) -> np.ndarray:
    ys = [np.asarray(ln.get_ydata(), float) for ln in ax.get_lines()]
    ys = [y for y in ys if y.size]
    return np.concatenate(ys) if ys else np.zeros(0)


# ------------------------------------------------------------------ helpers
def test_use_log_scale_decides_from_the_decades_spanned():
    assert report.use_log_scale(np.array([1.6e-3, 2.45e-3]))[0] is False   # CrossSim ramps
    assert report.use_log_scale(np.geomspace(1e-9, 1e-6, 50))[0] is True    # 3 decades
    assert report.use_log_scale([np.array([1.0, 9.0]), np.array([5.0])])[0] is False
    assert report.use_log_scale([np.array([1.0]), np.array([11.0])])[0] is True
    # normalised data around 0 (Gong et al.) stay linear; a few zeros are left off a log axis
    assert report.use_log_scale(np.linspace(-1, 1, 200))[0] is False
    log, n_off = report.use_log_scale(np.r_[0.0, np.geomspace(1e-6, 1e-2, 200)])
    assert log is True and n_off == 1


def test_decimate_minmax_keeps_every_bin_extreme():
    rng = np.random.default_rng(3)
    n = 50_000
    x = np.arange(n)
    y = rng.standard_normal(n)
    y[[17, 31_337]] = [-40.0, 55.0]
    xd, yd, dec = report.decimate_minmax(x, y)
    assert dec and yd.size <= report.MAX_POINTS
    assert yd.max() == 55.0 and yd.min() == -40.0
    assert xd[0] <= 1 and xd[-1] >= n - 2 and np.all(np.diff(xd) > 0)
    # min and max of every bin are kept
    b = -(-n // ((report.MAX_POINTS - 2) // 2))
    for i0 in range(0, n, b):
        seg = y[i0:i0 + b]
        inbin = (xd >= i0) & (xd < i0 + b)
        assert yd[inbin].min() == seg.min() and yd[inbin].max() == seg.max()
    x2, y2, dec2 = report.decimate_minmax(x[:100], y[:100])
    assert not dec2 and np.array_equal(y2, y[:100])


@pytest.mark.parametrize("r", [np.array([-3.0, 0.1, 2.0]),
                               np.r_[np.linspace(-0.01, 0.01, 500), 250.0, -80.0],
                               np.zeros(5)])
def test_residual_limits_contain_every_point(r):
    scale, lt, (lo, hi) = report.residual_limits(r)
    assert lo < r.min() and hi > r.max()
    if np.abs(r).max() > 1000 * np.percentile(np.abs(r), 50) > 0:
        assert scale == "symlog" and lt > 0


# ------------------------------------------------------------------ figures of the fit
QUALITY = {"pulse_r2_per_cycle": [0.99, 0.98, -2.5, 0.97, None],
           "pulse_rms_steps_per_cycle": [0.5, 0.7, 40.0, 0.6, 0.8]}


def test_write_report_of_the_fit(result, tmp_path):
    res = copy.copy(result)
    res.quality = dict(QUALITY)
    paths = report.write_report(res, tmp_path)
    for k in ("iv_overlay", "iv_residuals", "pulses_cycling", "pulses_optimised",
              "pulse_residuals", "d2d_scales", "cycle_quality"):
        assert paths[f"fig_{k}"].stat().st_size > 5000, k
    text = (tmp_path / "report.md").read_text()
    assert "iv_overlay.png" in text and "cycle_quality.png" in text


def test_iv_overlay_shows_every_branch_and_excluded_points(result, tmp_path):
    p, fig = report.figure_iv(result, tmp_path / "iv.png", return_fig=True)
    try:
        prog = result.program
        n_areas = np.unique(prog.area[prog.obs_seq[prog.kind == 0]]).size
        axes = fig.axes
        assert len(axes) == n_areas
        for ax in axes:
            assert ax.get_yscale() == "log"          # currents span many decades
            labels = [ln.get_label() for ln in ax.get_lines()]
            assert "c1/pos" in labels and "c1/neg" in labels
        # the largest area has compliance-clipped points; they are marked
        labels = [ln.get_label() for ln in axes[-1].get_lines()]
        n_excl = int((~prog.valid).sum())
        assert n_excl > 0 and any(lb.startswith("clipped, excluded") for lb in labels)
        marked = [ln for ln in axes[-1].get_lines() if ln.get_marker() == "x"]
        assert sum(len(ln.get_xdata()) for ln in marked) > 0
    finally:
        plt.close(fig)


def test_iv_residuals_in_decades_not_clipped(result, tmp_path):
    prog = result.program
    dc = np.nonzero((prog.kind == 0) & prog.valid & (np.abs(prog.obs_v) > 0.5))[0]
    fitted = result.model * result.scales[prog.obs_device]
    y = fitted[dc].copy()
    y[0] *= 1e6   # a point 6 decades off: far outside the old ±0.6 clip
    res = with_values(result, dc, y, fitted[dc])
    r = report.iv_residuals(res)
    assert r["kind"] == "log"
    assert r["r"].max() == pytest.approx(6.0, abs=1e-9)
    p, fig = report.figure_iv_residuals(res, tmp_path / "ivr.png", return_fig=True)
    try:
        ax = fig.axes[0]
        lo, hi = ax.get_ylim()
        ys = all_line_y(ax)
        ys = ys[np.isfinite(ys)]
        assert ys.size >= r["r"].size
        assert lo <= r["r"].min() and hi >= r["r"].max() == pytest.approx(6.0)
        assert ax.get_yscale() == "symlog"
    finally:
        plt.close(fig)


def test_pulse_residuals_in_state_steps_not_clipped(result, tmp_path):
    prog = result.program
    pm = np.nonzero(prog.kind == 1)[0]
    fitted = result.model * result.scales[prog.obs_device]
    y = prog.y[pm].copy()
    y[5] = 3.0 * fitted[pm][5]      # relative residual +2, far outside the old ±0.8
    res = with_values(result, pm, y, fitted[pm])
    r = report.pulse_residuals(res)
    assert r["kind"] == "steps" and r["r"].size == pm.size
    steps = report.pulse_steps_per_train(res)
    gi = int(prog.obs_group[pm[5]])
    assert r["r"][5] == pytest.approx(2.0 * fitted[pm][5] / steps[gi], rel=1e-9)
    p, fig = report.figure_pulse_residuals(res, tmp_path / "pr.png", return_fig=True)
    try:
        ax = fig.axes[0]
        lo, hi = ax.get_ylim()
        assert lo <= r["r"].min() and hi >= r["r"].max()
        ys = all_line_y(ax)
        assert ys.size == r["r"].size + 2   # every read (< 20k per area) and the 0 line
        assert ax.get_xlabel() == "pulse number (cumulative)"
    finally:
        plt.close(fig)


# ------------------------------------------------------------------ no data, no file
def test_pulse_only_data_set_has_no_iv_figures(result, tmp_path):
    res = subset(result, result.program.kind == 1)
    assert report.figure_iv(res, tmp_path / "a.png") is None
    assert report.figure_iv_residuals(res, tmp_path / "b.png") is None
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "b.png").exists()
    out = tmp_path / "rep"
    out.mkdir()
    (out / "iv_overlay.png").write_bytes(b"stale")      # from an earlier report
    paths = report.write_report(res, out)
    assert "fig_iv_overlay" not in paths and "fig_iv_residuals" not in paths
    assert not (out / "iv_overlay.png").exists() and not (out / "iv_residuals.png").exists()
    assert "fig_pulses_cycling" in paths and "fig_pulse_residuals" in paths
    assert "iv_overlay" not in (out / "report.md").read_text()
    # no quality on the result: no per-cycle figure
    assert "fig_cycle_quality" not in paths and not (out / "cycle_quality.png").exists()


def test_sweep_only_data_set_has_no_pulse_figures(result, tmp_path):
    res = subset(result, result.program.kind == 0)
    assert report.figure_pulses(res, tmp_path) == []
    assert report.figure_pulse_residuals(res, tmp_path / "p.png") is None
    assert report.figure_delta_mu(res, tmp_path / "d.png") is None
    assert list(tmp_path.iterdir()) == []


def test_single_device_has_no_d2d_histogram(result, tmp_path):
    res = copy.copy(result)
    res.program = Program(**{**result.program.__dict__, "devices": result.program.devices[:1],
                             "device_area": result.program.device_area[:1]})
    res.scales = result.scales[:1]
    assert report.figure_scales(res, tmp_path / "s.png") is None
    assert not (tmp_path / "s.png").exists()


# ------------------------------------------------------------------ pulse traces
def _entry_groups(res, entry):
    prog = res.program
    return [gi for gi, g in enumerate(prog.groups) if g.split("/")[0] == entry]


def test_pulse_axis_log_for_three_decades_linear_for_a_narrow_range(result, tmp_path):
    prog = result.program
    gis = _entry_groups(result, "pulses_cycling")
    sel = np.nonzero(np.isin(prog.obs_group, gis))[0]
    area = prog.area[prog.obs_seq[sel]]
    k = prog.obs_step[sel].astype(float)
    # an interface-type depression: 3 decades of conductance over the train
    g = area * 1e4 * 10.0 ** (-3.0 * k / k.max())
    res = with_values(result, sel, g * 1.02, g)
    out = report.figure_pulses(res, tmp_path, return_fig=True)
    figs = dict((p.name, f) for p, f in out)
    try:
        ax = figs["pulses_cycling.png"].axes[0]
        assert ax.get_yscale() == "log"
        lo, hi = ax.get_ylim()
        ys = all_line_y(ax)
        ys = ys[np.isfinite(ys) & (ys > 0)]
        assert ys.max() / ys.min() > 100 and lo <= ys.min() and hi >= ys.max()
        assert ax.get_xlabel() == "pulse number (cumulative)"
        # the 5 cycle starts (after the first) are marked
        vlines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 2
                  and ln.get_xdata()[0] == ln.get_xdata()[1]]
        assert len(vlines) == 4
    finally:
        for _, f in out:
            plt.close(f)
    # CrossSim-like: 1.6 .. 2.45 (one sixth of a decade) stays linear
    g2 = area * 1e4 * (1.6 + 0.85 * (k % 200) / 200)
    res2 = with_values(result, sel, g2, g2)
    out = report.figure_pulses(res2, tmp_path, return_fig=True)
    try:
        ax = dict((p.name, f) for p, f in out)["pulses_cycling.png"].axes[0]
        assert ax.get_yscale() == "linear"
    finally:
        for _, f in out:
            plt.close(f)


def test_long_train_every_read_represented(result, tmp_path):
    """A train of 30,000 reads (beyond the old 420-pulse cut and the 20k decimation limit):
    the plotted trace spans all pulses and keeps the global min and max."""
    n = 30_000
    rng = np.random.default_rng(0)
    k = np.arange(1, n + 1)
    g = 1e-3 * (2.0 + np.sin(k / 500.0)) + 1e-5 * rng.standard_normal(n)
    g[12_345] = 5e-3                     # single outliers anywhere must survive
    g[29_001] = 2e-4
    a = 1e-12
    prog = Program(
        v=np.full((1, n), 1.0), dt=np.full((1, n), 1e-6), length=np.array([n]),
        area=np.array([a]), x0=np.zeros(1), compliance=np.array([np.inf]),
        seq_device=np.zeros(1, int), obs_seq=np.zeros(n, int), obs_step=k,
        obs_v=np.full(n, 0.1), obs_div=np.full(n, 0.1), y=g, sigma=np.full(n, 1e-6),
        valid=np.ones(n, bool), kind=np.ones(n, int), obs_group=np.zeros(n, int),
        groups=["long/dev"], group_kind=["pulse"], devices=["dev"], device_area=np.array([a]))
    res = dataclasses.replace(result, program=prog, model=1e-3 * (2.0 + np.sin(k / 500.0)),
                              scales=np.ones(1))
    out = report.figure_pulses(res, tmp_path, return_fig=True)
    assert len(out) == 1
    p, fig = out[0]
    try:
        ax = fig.axes[0]
        data = [ln for ln in ax.get_lines() if ln.get_marker() == "."][0]
        x, y = np.asarray(data.get_xdata()), np.asarray(data.get_ydata())
        assert 0 < y.size <= report.MAX_POINTS
        assert x.min() == 1 and x.max() >= n - 1
        assert y.max() == pytest.approx(5e-3 / a * 1e-4) and y.min() == pytest.approx(2e-4 / a * 1e-4)
        assert "decimated" in ax.get_title()
        assert ax.get_yscale() == "log"          # the outliers span more than a decade
    finally:
        plt.close(fig)
    # the residual figure is decimated the same way and its limits contain every residual
    r = report.pulse_residuals(res)
    p, fig = report.figure_pulse_residuals(res, tmp_path / "pr.png", return_fig=True)
    try:
        lo, hi = fig.axes[0].get_ylim()
        assert lo <= r["r"].min() and hi >= r["r"].max()
    finally:
        plt.close(fig)


# ------------------------------------------------------------------ per-cycle quality
def test_cycle_quality_figure(result, tmp_path):
    assert report.figure_cycle_quality(result, tmp_path / "q.png") is None
    res = copy.copy(result)
    res.quality = dict(QUALITY)
    p, fig = report.figure_cycle_quality(res, tmp_path / "q.png", return_fig=True)
    try:
        assert len(fig.axes) == 2
        ax_r2, ax_rms = fig.axes
        lo, hi = ax_r2.get_ylim()
        assert lo <= -2.5 and hi >= 0.99
        assert ax_rms.get_yscale() == "log"
        meds = [float(ln.get_ydata()[0]) for ln in ax_rms.get_lines()
                if ln.get_label().startswith("median")]
        assert meds == [pytest.approx(0.7)]
    finally:
        plt.close(fig)
    res.quality["iv_r2_per_branch"] = [0.999, 0.95]
    res.quality["iv_r2_log_per_branch"] = [0.99, 0.9]
    p, fig = report.figure_cycle_quality(res, tmp_path / "q3.png", return_fig=True)
    try:
        assert len(fig.axes) == 3
    finally:
        plt.close(fig)
