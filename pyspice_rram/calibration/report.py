"""Fit report: markdown tables, per-sweep / per-train statistics and PNG figures.

:func:`write_report` writes into a directory:

``report.md``            parameters (value, stderr: iid and cluster-robust), fit quality per
                         kind, figures of merit, links to the figures
``groups.csv``           R², RMSE and relative RMSE of every sweep and pulse train
``summary.json``         :meth:`FitResult.summary`
``iv_overlay.png``       measured |I| vs V (one device per area) with the fitted model
``iv_residuals.png``     relative residuals of every sweep point vs V
``pulses_<label>.png``   read conductance vs pulse number, data and model, per pulse entry
``pulse_residuals.png``  relative residuals of the pulse reads vs read number
``dg_vs_area.png``       mean ΔG per pulse vs area (log-log) with the fitted slope
``delta_mu.png``         distribution of the normalised conductance change per pulse
``d2d_scales.png``       distribution of the per-device conductance scales
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .fit import FitResult


#: Pulse-train figures show the first pulses only (a few cycles stay readable).
MAX_PULSES_SHOWN = 420


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


def figure_iv(result: "FitResult", path: Path) -> Path:
    plt = _plt()
    prog = result.program
    fitted = result.model * result.scales[prog.obs_device]
    dc = prog.kind == 0
    seqs = np.unique(prog.obs_seq[dc])
    first: dict[float, int] = {}
    for sq in seqs:
        first.setdefault(float(prog.area[sq]), sq)
    n = len(first)
    fig, axes = plt.subplots(1, max(n, 1), figsize=(3.2 * max(n, 1), 3.2), squeeze=False)
    for ax, (a, sq) in zip(axes[0], sorted(first.items())):
        m = np.nonzero(dc & (prog.obs_seq == sq))[0]
        v, y, f, ok = prog.obs_v[m], prog.y[m], fitted[m], prog.valid[m]
        ax.semilogy(v[ok], np.abs(y[ok]), ".", ms=2.5, color="0.3", label="data")
        ax.semilogy(v, np.abs(f), "-", lw=1, color="C3", label="fit")
        if (~ok).any():
            ax.semilogy(v[~ok], np.abs(y[~ok]), "x", ms=4, color="C1", label="clipped (excluded)")
        ax.set_title(f"{prog.devices[prog.seq_device[sq]]}  (d = {_diam_nm(a):.0f} nm)", fontsize=9)
        ax.set_xlabel("V (V)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("|I| (A)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure_iv_residuals(result: "FitResult", path: Path) -> Path:
    plt = _plt()
    prog = result.program
    fitted = result.model * result.scales[prog.obs_device]
    m = (prog.kind == 0) & prog.valid & (np.abs(prog.obs_v) > 0.05)
    cols = _area_colors(prog.area)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for a, c in cols.items():
        mm = m & np.isclose(prog.area[prog.obs_seq], a, rtol=1e-9, atol=0)
        ax.plot(prog.obs_v[mm], (prog.y[mm] - fitted[mm]) / np.abs(fitted[mm]), ".", ms=1.5,
                color=c, label=f"{_diam_nm(a):.0f} nm")
    ax.set_xlabel("V (V)")
    ax.set_ylabel("(I - I_fit) / |I_fit|")
    ax.set_ylim(-0.6, 0.6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3, markerscale=4)
    ax.set_title("DC sweeps: relative residuals (free-running fitted model)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure_pulses(result: "FitResult", outdir: Path) -> list[Path]:
    plt = _plt()
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
            a = float(prog.area[prog.obs_seq[m][0]])
            if m.sum() > 10:
                per_area.setdefault(a, gi)
        if not per_area:
            continue
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        cols = _area_colors(np.array(list(per_area)))
        for a, gi in sorted(per_area.items()):
            m = np.nonzero((prog.obs_group == gi) & (prog.obs_step <= MAX_PULSES_SHOWN))[0]
            k = prog.obs_step[m]
            ax.plot(k, prog.y[m] / a * 1e-4, ".", ms=1.6, color=cols[a],
                    label=f"{prog.devices[prog.obs_device[m[0]]]} ({_diam_nm(a):.0f} nm)")
            ax.plot(k, fitted[m] / a * 1e-4, "-", lw=0.8, color="k", alpha=0.7)
        ax.set_xlabel("pulse number")
        ax.set_ylabel("G / area (S/cm²)")
        ax.set_title(f"{entry}: data (dots) and fitted model (lines), conductance per area "
                     f"(first {MAX_PULSES_SHOWN} pulses)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, markerscale=4, ncol=2)
        fig.tight_layout()
        p = outdir / (f"{entry}.png" if entry.startswith("pulses") else f"pulses_{entry}.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        out.append(p)
    return out


def figure_pulse_residuals(result: "FitResult", path: Path) -> Path:
    plt = _plt()
    prog = result.program
    fitted = result.model * result.scales[prog.obs_device]
    m = prog.kind == 1
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    cols = _area_colors(prog.area)
    for a, c in cols.items():
        mm = m & np.isclose(prog.area[prog.obs_seq], a, rtol=1e-9, atol=0)
        ax.plot(prog.obs_step[mm], (prog.y[mm] - fitted[mm]) / fitted[mm], ",", color=c,
                alpha=0.5)
        ax.plot([], [], ".", color=c, label=f"{_diam_nm(a):.0f} nm")
    ax.set_xlabel("pulse number")
    ax.set_ylabel("(G - G_fit) / G_fit")
    ax.set_ylim(-0.8, 0.8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    ax.set_title("pulse reads: relative residuals of the free-running model (c2c walk)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure_dg_area(result: "FitResult", path: Path) -> Path | None:
    plt = _plt()
    fom = result.metrics
    if "dg_area_slope" not in fom:
        return None
    from .fit import pulse_steps

    prog, card = result.program, result.card
    st = pulse_steps(prog, card, result.scales)
    m = np.isclose(st["v"], card.scheme.v_set) & (st["x_prev"] >= 0.02) & (st["x_prev"] <= 0.5)
    d_ids = np.unique(st["device"][m])
    a_d = prog.device_area[d_ids]
    dg_d = np.array([np.mean(st["dg"][m & (st["device"] == d)]) for d in d_ids])
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    ax.loglog(a_d * 1e12, dg_d, "o", ms=3, alpha=0.6, label="devices")
    xx = np.geomspace(a_d.min(), a_d.max(), 20)
    ax.loglog(xx * 1e12, fom["dg_density"] * xx ** fom["dg_area_slope"], "-", color="C3",
              label=f"slope {fom['dg_area_slope']:.3f} ± {fom['dg_area_slope_stderr']:.3f}")
    ax.set_xlabel("area (µm²)")
    ax.set_ylabel("mean ΔG per pulse (S)")
    ax.set_title(f"ΔG per pulse vs area (+{card.scheme.v_set} V, {card.scheme.t_set * 1e6:g} µs)",
                 fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure_delta_mu(result: "FitResult", path: Path) -> Path | None:
    plt = _plt()
    from .fit import pulse_steps

    st = pulse_steps(result.program, result.card, result.scales)
    m = (st["v"] > 0) & (st["x_prev"] >= 0.02) & (st["x_prev"] <= 0.85) & (st["dg_model"] > 0)
    if m.sum() < 20:
        return None
    q = st["dg"][m] / st["dg_model"][m]
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    ax.hist(q, bins=80, range=(-0.5, 2.5), density=True, alpha=0.6, label="data ΔG / ΔG_model")
    s = result.card.c2c_sigma
    xx = np.linspace(-0.5, 2.5, 300)
    ax.plot(xx, np.exp(-0.5 * ((xx - 1) / s) ** 2) / (s * math.sqrt(2 * math.pi)), "C3",
            label=f"N(1, {s:.3f}) (read noise removed)")
    ax.set_xlabel("normalised conductance change per pulse")
    ax.set_title("cycle-to-cycle variability δ/μ (potentiation, 0.02 ≤ x ≤ 0.85)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure_scales(result: "FitResult", path: Path) -> Path:
    plt = _plt()
    prog = result.program
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    ls = np.log(result.scales)
    cols = _area_colors(prog.device_area)
    for a, c in cols.items():
        mm = np.isclose(prog.device_area, a, rtol=1e-9, atol=0)
        ax.hist(ls[mm], bins=30, range=(ls.min(), ls.max()), histtype="step", color=c,
                label=f"{_diam_nm(a):.0f} nm ({mm.sum()})")
    ax.set_xlabel("ln(device conductance scale)")
    ax.set_ylabel("devices")
    ax.set_title(f"device-to-device spread: sd = {result.parameters['d2d_g_sigma'].value:.4f}",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
              f"{result.statistics.get('redchi', math.nan):.3g}", ""]
    head = "| parameter | value | stderr | stderr (iid) | stderr (cluster-robust) | unit |"
    sep = "|---|---|---|---|---|---|"
    if truth is not None:
        head += " generating | error | error / stderr |"
        sep += "---|---|---|"
    lines += ["## Parameters", "", head, sep]
    for name, p in result.parameters.items():
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
            ("beta_p / beta_d (card curvature)", f"{_fmt(card.beta_p)} / {_fmt(card.beta_d)}"),
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


def write_report(result: "FitResult", outdir: str | Path, truth=None) -> dict[str, Path]:
    """Write ``report.md``, ``groups.csv``, ``summary.json`` and the figures to ``outdir``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    figs: dict[str, Path | None] = {
        "iv_overlay": figure_iv(result, outdir / "iv_overlay.png"),
        "iv_residuals": figure_iv_residuals(result, outdir / "iv_residuals.png"),
    }
    for p in figure_pulses(result, outdir):
        figs[p.stem] = p
    figs["pulse_residuals"] = figure_pulse_residuals(result, outdir / "pulse_residuals.png")
    figs["dg_vs_area"] = figure_dg_area(result, outdir / "dg_vs_area.png")
    figs["delta_mu"] = figure_delta_mu(result, outdir / "delta_mu.png")
    figs["d2d_scales"] = figure_scales(result, outdir / "d2d_scales.png")
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
    (outdir / "report.md").write_text(report_markdown(result, figs, truth=truth))
    paths["report"] = outdir / "report.md"
    return paths
