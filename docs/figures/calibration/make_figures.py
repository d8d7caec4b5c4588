"""Fit the shipped reference data set and refresh its outputs and the docs.

Writes ``calibration/motiox-reference/{card.json, motiox_fit.lib, motiox_fit.va, report/}``,
copies the report figures to ``docs/figures/calibration/`` and rewrites the generated parts
of ``docs/calibration.md`` (section 4) and ``docs/device-model.md`` (section "Fit of the
reference data set")::

    .venv/bin/python docs/figures/calibration/make_figures.py
"""

from __future__ import annotations

import shutil
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from pyspice_rram.calibration.fitting import fit_dataset, reference_truth  # noqa: E402
from pyspice_rram.calibration.report import report_markdown  # noqa: E402
from pyspice_rram.calibration.reference import DEFAULT_DIR  # noqa: E402

FIG = ROOT / "docs" / "figures" / "calibration"
CAL_DOC = ROOT / "docs" / "calibration.md"
DEV_DOC = ROOT / "docs" / "device-model.md"
SECTION = "## Fit of the reference data set"


def _sample_note() -> str:
    """The spread of the devices actually drawn (truth_devices.csv), which is what a fit of
    the spread parameters can recover."""
    import csv
    import math

    path = DEFAULT_DIR / "truth_devices.csv"
    if not path.exists():
        return ""
    rows = list(csv.DictReader(path.open()))
    ls = [math.log(float(r["g_scale"])) for r in rows]
    mu = sum(ls) / len(ls)
    sd = math.sqrt(sum((v - mu) ** 2 for v in ls) / (len(ls) - 1))
    return (f"The {len(rows)} devices drawn for the data set have a sample sd(ln s) of "
            f"{sd:.4f} (`truth_devices.csv`): the deviation of `d2d_g_sigma` from 0.1 is the "
            "sampling of the device population, which its stderr (σ/√(2(D−1))) quantifies.\n\n")


def main() -> int:
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit_dataset(DEFAULT_DIR, DEFAULT_DIR, progress=True)
    wall = time.time() - t0
    FIG.mkdir(parents=True, exist_ok=True)
    figs = {}
    for key, p in result.paths.items():
        if key.startswith("fig_"):
            shutil.copy(p, FIG / Path(p).name)
            figs[key[4:]] = FIG / Path(p).name
    truth = reference_truth(result.dataset)
    md = report_markdown(result, figs, link_prefix="figures/calibration/", truth=truth)
    body = md.split("\n", 1)[1].replace("\n## ", "\n### ")
    text = CAL_DOC.read_text()
    head = text.split("## 4. The reference fit")[0]
    tail = ("\n## 5." + text.split("\n## 5.", 1)[1]) if "\n## 5." in text else ""
    CAL_DOC.write_text(
        head + "## 4. The reference fit\n\n"
        f"`pyspice-rram fit calibration/motiox-reference --force` (full data set, {wall:.0f} s wall time "
        "on the 2 shared cores of the development machine; regenerate with "
        "`.venv/bin/python docs/figures/calibration/make_figures.py`). The data are SYNTHETIC, "
        "so the generating card is known: the table compares with it.\n" + body + tail)
    # device-model.md: only the section at its end
    dev = DEV_DOC.read_text()
    if SECTION in dev:
        before = dev.split(SECTION)[0]
        p = result.parameters
        rows = "\n".join(
            f"| `{k}` | {p[k].value:.5g} | {p[k].stderr:.2g} | {getattr(truth, k):.5g} | "
            f"{(p[k].value - getattr(truth, k)) / getattr(truth, k) * 100:+.2f} % |"
            for k in p)
        fom = result.metrics
        DEV_DOC.write_text(before + SECTION + "\n\n"
            "The shipped SYNTHETIC data set `calibration/motiox-reference/` (DC sweeps, "
            "5 × (100 + 100) pulse cycling and 30 × (50 + 1) optimised-scheme trains at five "
            "diameters from 30 nm to 1 µm, a 2000-cell survey; generated from "
            "`ModelCard.reference()` with noise) fitted jointly by `pyspice-rram fit` "
            "(method, data layouts and the full report: [calibration.md](calibration.md)):\n\n"
            "| parameter | fitted | stderr | generating | error |\n|---|---|---|---|---|\n"
            + rows + "\n\n"
            f"The fitted card gives {result.card.n_states():.1f} states at +1.8 V / 10 µs "
            f"and δ/μ = {fom['delta_over_mu_card']:.3f} when simulated; the conductance step "
            f"per pulse scales with area with a log-log slope of "
            f"{fom['dg_area_slope']:.3f} ± {fom['dg_area_slope_stderr']:.3f}.\n\n"
            + _sample_note() +
            "![I-V](figures/calibration/iv_overlay.png)\n\n"
            "![optimised scheme](figures/calibration/pulses_optimised.png)\n\n"
            "![ΔG vs area](figures/calibration/dg_vs_area.png)\n")
    print(f"done in {wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
