"""Validation of a fitted tile surrogate on held-out ngspice tiles, with figures.

Errors are in % of the full-scale output current of each read
(:func:`.fit.full_scale`): per read, the RMS over vectors and outputs and the largest
absolute error; per group (tile size, wire resistance), the RMS over all outputs of the
group and the largest error. The ideal product (no IR drop, same cell nonlinearity) is
reported alongside, to show what the surrogate corrects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import DataSpec, iter_records, load_card
from .fit import full_scale
from .model import TileSurrogate
from ..errors import ConfigError

SIZE_BINS = (0, 24, 40, 56, 80, 112, 1 << 30)
WIRE_BINS = (0.0, 0.3, 1.0, 2.0, 5.0001)


def _ideal(tile: Any, v: np.ndarray, direction: str) -> np.ndarray:
    from ..circuit.mna import ideal_product

    return ideal_product(tile, v, direction)


def evaluate(sur: TileSurrogate, path: str | Path, split: str = "test") -> dict[str, Any]:
    """Per-read errors of the surrogate (and of the ideal product) on a data set split."""
    import h5py

    card = load_card(path)
    with h5py.File(path, "r") as h5:
        spec = DataSpec.from_dict(json.loads(h5.attrs["spec"]))
    v_max = float(spec.v_max or card.scheme.v_read)
    reads = []
    pred_all, ref_all = [], []
    for rec in iter_records(path, split):
        fs = full_scale(rec.tile, rec.direction, v_max)
        pred = sur.predict(rec.tile, rec.v_in, rec.direction, on_invalid="warn")
        ideal = _ideal(rec.tile, rec.v_in, rec.direction)
        err = (pred - rec.i_out) / fs
        ierr = (ideal - rec.i_out) / fs
        reads.append(dict(index=rec.index, direction=rec.direction, rows=rec.tile.rows,
                          cols=rec.tile.cols, size=max(rec.tile.rows, rec.tile.cols),
                          r_wire=max(rec.tile.r_wire_row, rec.tile.r_wire_col),
                          r_driver=rec.tile.r_driver, r_sense=rec.tile.r_sense,
                          pattern=rec.pattern, solver=rec.solver, fs=fs,
                          sse=float(np.sum(err ** 2)), n=int(err.size),
                          max_pct=float(100 * np.max(np.abs(err))),
                          rms_pct=float(100 * np.sqrt(np.mean(err ** 2))),
                          ideal_sse=float(np.sum(ierr ** 2)),
                          ideal_max_pct=float(100 * np.max(np.abs(ierr))),
                          ideal_rms_pct=float(100 * np.sqrt(np.mean(ierr ** 2)))))
        pred_all.append((pred / fs).ravel())
        ref_all.append((rec.i_out / fs).ravel())
    if not reads:
        raise ConfigError(f"{path}: no reads in split {split!r}")
    return {"reads": reads, "pred": np.concatenate(pred_all), "ref": np.concatenate(ref_all)}


def _group(reads: list[dict], key: str, bins: tuple) -> list[dict[str, Any]]:
    out = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        sel = [r for r in reads if lo <= r[key] < hi]
        if not sel:
            continue
        n = sum(r["n"] for r in sel)
        out.append({"range": [lo, hi if hi < 1 << 29 else None], "reads": len(sel),
                    "rms_pct": float(100 * np.sqrt(sum(r["sse"] for r in sel) / n)),
                    "max_pct": float(max(r["max_pct"] for r in sel)),
                    "ideal_rms_pct": float(100 * np.sqrt(sum(r["ideal_sse"] for r in sel) / n)),
                    "ideal_max_pct": float(max(r["ideal_max_pct"] for r in sel))})
    return out


def summarise(ev: dict[str, Any]) -> dict[str, Any]:
    """Overall and grouped (size, wire resistance, pattern, direction) errors."""
    reads = ev["reads"]
    n = sum(r["n"] for r in reads)
    out = {"reads": len(reads), "outputs": n,
           "rms_pct": float(100 * np.sqrt(sum(r["sse"] for r in reads) / n)),
           "max_pct": float(max(r["max_pct"] for r in reads)),
           "ideal_rms_pct": float(100 * np.sqrt(sum(r["ideal_sse"] for r in reads) / n)),
           "ideal_max_pct": float(max(r["ideal_max_pct"] for r in reads)),
           "by_size": _group(reads, "size", SIZE_BINS),
           "by_wire": _group(reads, "r_wire", WIRE_BINS)}
    for key in ("pattern", "direction", "solver"):
        vals = sorted({r[key] for r in reads})
        out[f"by_{key}"] = {}
        for v in vals:
            sel = [r for r in reads if r[key] == v]
            m = sum(r["n"] for r in sel)
            out[f"by_{key}"][v] = {"reads": len(sel),
                                   "rms_pct": float(100 * np.sqrt(sum(r["sse"] for r in sel) / m)),
                                   "max_pct": float(max(r["max_pct"] for r in sel))}
    return out


def figures(ev: dict[str, Any], outdir: str | Path, prefix: str = "surrogate") -> list[Path]:
    """Parity plot, error vs size and wire resistance (PNG files in ``outdir``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    reads = ev["reads"]
    paths = []

    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot(100 * ev["ref"], 100 * ev["pred"], ".", ms=2, alpha=0.5)
    lim = [min(0, 100 * ev["ref"].min()), 100 * ev["ref"].max()]
    ax.plot(lim, lim, "k-", lw=0.8)
    ax.set_xlabel("ngspice output current (% of full scale)")
    ax.set_ylabel("surrogate (% of full scale)")
    ax.set_title("held-out reads")
    fig.tight_layout()
    paths.append(outdir / f"{prefix}_parity.png")
    fig.savefig(paths[-1], dpi=130)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    for ax, key, label in ((axes[0], "size", "tile size (largest dimension, lines)"),
                           (axes[1], "r_wire", "wire resistance per segment (Ω)")):
        xs = np.array([r[key] for r in reads], float)
        ax.semilogy(xs, [r["rms_pct"] for r in reads], "o", ms=3, label="surrogate RMS")
        ax.semilogy(xs, [r["max_pct"] for r in reads], "^", ms=3, label="surrogate max")
        ax.semilogy(xs, [r["ideal_rms_pct"] for r in reads], "x", ms=3, alpha=0.5,
                    label="ideal product RMS")
        ax.axhline(0.5, color="k", lw=0.8, ls="--")
        ax.set_xlabel(label)
        if key == "r_wire":
            ax.set_xscale("log")
            ax.set_xlim(0.08, 6.0)
    axes[0].set_ylabel("error (% of full scale)")
    axes[0].legend(fontsize=7)
    fig.suptitle("tile surrogate vs ngspice, held-out tiles (dashed: 0.5 % target)")
    fig.tight_layout()
    paths.append(outdir / f"{prefix}_error.png")
    fig.savefig(paths[-1], dpi=130)
    plt.close(fig)
    return paths


def format_summary(s: dict[str, Any]) -> str:
    """Plain-text table of a :func:`summarise` result."""
    lines = [f"held-out reads: {s['reads']}  outputs: {s['outputs']}",
             f"  surrogate RMS {s['rms_pct']:.4f} %FS  max {s['max_pct']:.4f} %FS   "
             f"(ideal product RMS {s['ideal_rms_pct']:.3f} %FS  max {s['ideal_max_pct']:.3f} %FS)",
             "  by tile size:"]
    for g in s["by_size"]:
        lines.append(f"    {str(g['range']):>14s} reads {g['reads']:3d}  RMS {g['rms_pct']:.4f}  "
                     f"max {g['max_pct']:.4f}   ideal RMS {g['ideal_rms_pct']:.3f}")
    lines.append("  by wire resistance (Ω per segment):")
    for g in s["by_wire"]:
        lines.append(f"    {str(g['range']):>14s} reads {g['reads']:3d}  RMS {g['rms_pct']:.4f}  "
                     f"max {g['max_pct']:.4f}   ideal RMS {g['ideal_rms_pct']:.3f}")
    for key in ("pattern", "direction", "solver"):
        parts = [f"{k} {v['rms_pct']:.4f}/{v['max_pct']:.4f}" for k, v in s[f"by_{key}"].items()]
        lines.append(f"  by {key} (RMS/max): " + ", ".join(parts))
    return "\n".join(lines)
