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

SIZE_BINS = (0, 24, 40, 56, 80, 112, 160, 1 << 30)
WIRE_BINS = (0.0, 0.3, 1.0, 2.0, 5.0001, 1e9)
IR_DROP_BINS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 3.0, 1e9)


def _ideal(tile: Any, v: np.ndarray, direction: str) -> np.ndarray:
    from ..circuit.mna import ideal_product

    return ideal_product(tile, v, direction)


def evaluate(sur: TileSurrogate, path: str | Path, split: str | None = "test"
             ) -> dict[str, Any]:
    """Per-read errors of the surrogate (and of the ideal product) on a data set split
    (``split=None``: every item).

    Each read records its geometry, the IR-drop and periphery parameters
    (:func:`.dataset.ir_drop_parameter`, with the surrogate's ``g_max``), whether it is inside
    the surrogate's validity domain (``in_domain``; reads outside it are predicted with a
    warning, not refused, and reported apart), and the error of every input vector (for the
    grouping by input kind).
    """
    import warnings

    import h5py

    from .dataset import ir_drop_asymmetry, ir_drop_parameter, periphery_parameter

    card = load_card(path)
    with h5py.File(path, "r") as h5:
        spec = DataSpec.from_dict(json.loads(h5.attrs["spec"]))
    v_max = float(spec.v_max or card.scheme.v_read)
    g_max = float(sur.validity.get("g_max", card.g_max()))
    reads = []
    pred_all, ref_all = [], []
    for rec in iter_records(path, split):
        t = rec.tile
        fs = full_scale(t, rec.direction, v_max)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            problems = sur.check(t, rec.v_in, rec.direction, on_invalid="warn")
            pred = sur.predict(t, rec.v_in, rec.direction, on_invalid="warn")
        ideal = _ideal(t, rec.v_in, rec.direction)
        err = (pred - rec.i_out) / fs
        ierr = (ideal - rec.i_out) / fs
        reads.append(dict(index=rec.index, direction=rec.direction, rows=t.rows, cols=t.cols,
                          size=max(t.rows, t.cols), r_wire=max(t.r_wire_row, t.r_wire_col),
                          r_wire_row=t.r_wire_row, r_wire_col=t.r_wire_col,
                          r_driver=t.r_driver, r_sense=t.r_sense,
                          ir_drop=ir_drop_parameter(t.rows, t.cols, t.r_wire_row,
                                                    t.r_wire_col, g_max, t.r_driver,
                                                    t.r_sense),
                          ir_asym=ir_drop_asymmetry(t.rows, t.cols, t.r_wire_row,
                                                    t.r_wire_col, g_max, t.r_driver,
                                                    t.r_sense),
                          periphery=periphery_parameter(t.rows, t.cols, t.r_driver,
                                                        t.r_sense, g_max),
                          shape="square" if t.rows == t.cols else "non-square",
                          wires="equal" if t.r_wire_row == t.r_wire_col else "unequal",
                          drivers="ideal" if t.r_driver == t.r_sense == 0 else "resistive",
                          in_domain=not problems, problems=problems,
                          pattern=rec.pattern, solver=rec.solver, fs=fs,
                          kinds=list(rec.kinds),
                          vec_sse=[float(x) for x in np.sum(err ** 2, axis=1)],
                          vec_max=[float(x) for x in 100 * np.max(np.abs(err), axis=1)],
                          n_out=int(err.shape[1]),
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


def evaluate_many(sur: TileSurrogate, paths: list, split: str | None = "test",
                  skip_empty: bool = False) -> dict[str, Any]:
    """:func:`evaluate` over several data sets, merged (``skip_empty``: data sets without
    reads in ``split`` are skipped instead of refused; none at all is still refused)."""
    evs = []
    for p in paths:
        try:
            evs.append(evaluate(sur, p, split))
        except ConfigError:
            if not skip_empty:
                raise
    if not evs:
        raise ConfigError(f"{', '.join(str(p) for p in paths)}: no reads in split {split!r}")
    return {"reads": sum((e["reads"] for e in evs), []),
            "pred": np.concatenate([e["pred"] for e in evs]),
            "ref": np.concatenate([e["ref"] for e in evs])}


def _stats(sel: list[dict]) -> dict[str, Any]:
    n = sum(r["n"] for r in sel)
    return {"reads": len(sel),
            "rms_pct": float(100 * np.sqrt(sum(r["sse"] for r in sel) / n)),
            "max_pct": float(max(r["max_pct"] for r in sel)),
            "ideal_rms_pct": float(100 * np.sqrt(sum(r["ideal_sse"] for r in sel) / n)),
            "ideal_max_pct": float(max(r["ideal_max_pct"] for r in sel))}


def _group(reads: list[dict], key: str, bins: tuple) -> list[dict[str, Any]]:
    out = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        sel = [r for r in reads if lo <= r[key] < hi]
        if sel:
            out.append({"range": [lo, hi if hi < 1e8 else None], **_stats(sel)})
    return out


def _by_value(reads: list[dict], key: str) -> dict[str, Any]:
    return {str(v): _stats([r for r in reads if r[key] == v])
            for v in sorted({r[key] for r in reads})}


def _by_kind(reads: list[dict]) -> dict[str, Any]:
    acc: dict[str, list] = {}
    for r in reads:
        for k, sse, mx in zip(r["kinds"], r["vec_sse"], r["vec_max"]):
            a = acc.setdefault(k, [0, 0.0, 0.0, 0])
            a[0] += 1
            a[1] += sse
            a[2] = max(a[2], mx)
            a[3] += r["n_out"]
    return {k: {"vectors": a[0], "rms_pct": float(100 * np.sqrt(a[1] / a[3])),
                "max_pct": float(a[2])} for k, a in sorted(acc.items())}


def summarise(ev: dict[str, Any]) -> dict[str, Any]:
    """Errors (% of full scale) in the surrogate's domain (``in_domain``, the claim) and
    outside it (``outside``), each overall and per pattern class, input kind, tile size,
    wire, IR-drop parameter, shape, wire symmetry, driver/sense, direction and solver.
    The top-level ``rms_pct`` / ``max_pct`` are those of every read (as before)."""
    reads = ev["reads"]
    out: dict[str, Any] = {"outputs": sum(r["n"] for r in reads), **_stats(reads)}

    def block(sel: list[dict]) -> dict[str, Any]:
        b = {"outputs": sum(r["n"] for r in sel), **_stats(sel),
             "by_pattern": _by_value(sel, "pattern"), "by_input": _by_kind(sel),
             "by_size": _group(sel, "size", SIZE_BINS),
             "by_wire": _group(sel, "r_wire", WIRE_BINS),
             "by_ir_drop": _group(sel, "ir_drop", IR_DROP_BINS),
             "by_ir_asym": _group(sel, "ir_asym", IR_DROP_BINS)}
        for key in ("shape", "wires", "drivers", "direction", "solver"):
            b[f"by_{key}"] = _by_value(sel, key)
        worst = max(sel, key=lambda r: r["max_pct"])
        b["worst"] = {k: worst[k] for k in ("index", "direction", "rows", "cols", "r_wire_row",
                                            "r_wire_col", "r_driver", "r_sense", "pattern",
                                            "ir_drop", "ir_asym", "max_pct")}
        return b

    out.update({k: v for k, v in block(reads).items() if k.startswith("by_")})
    inside = [r for r in reads if r["in_domain"]]
    outside = [r for r in reads if not r["in_domain"]]
    out["in_domain"] = block(inside) if inside else None
    out["outside"] = block(outside) if outside else None
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
    """Plain-text tables of a :func:`summarise` result (in the domain, then outside it)."""
    lines = [f"reads: {s['reads']}  outputs: {s['outputs']}   all reads: surrogate RMS "
             f"{s['rms_pct']:.4f} %FS  max {s['max_pct']:.4f} %FS   (ideal product RMS "
             f"{s['ideal_rms_pct']:.3f}  max {s['ideal_max_pct']:.3f})"]
    for title, b in (("IN THE DOMAIN", s.get("in_domain")), ("OUTSIDE THE DOMAIN",
                                                            s.get("outside"))):
        if not b:
            continue
        lines.append(f"{title}: reads {b['reads']}  RMS {b['rms_pct']:.4f} %FS  max "
                     f"{b['max_pct']:.4f} %FS  (ideal product RMS {b['ideal_rms_pct']:.3f}"
                     f"  max {b['ideal_max_pct']:.3f})")
        w = b["worst"]
        lines.append(f"  worst read: item {w['index']} {w['direction']} {w['rows']}x{w['cols']}"
                     f" r_wire {w['r_wire_row']:.3g}/{w['r_wire_col']:.3g} Ω, driver/sense "
                     f"{w['r_driver']:.3g}/{w['r_sense']:.3g} Ω, {w['pattern']}, IR-drop "
                     f"parameter {w['ir_drop']:.3g}: max {w['max_pct']:.4f} %FS")
        for key, label in (("by_pattern", "pattern class"), ("by_input", "input kind"),
                           ("by_shape", "shape"), ("by_wires", "row vs column wire"),
                           ("by_wire", "wire (Ω per segment, largest)"),
                           ("by_size", "tile size (largest side)"),
                           ("by_ir_drop", "IR-drop parameter"),
                           ("by_ir_asym", "IR-drop asymmetry |row - column|"),
                           ("by_drivers", "driver/sense"), ("by_direction", "direction"),
                           ("by_solver", "solver")):
            lines.append(f"  by {label} (RMS / max %FS):")
            g = b[key]
            if isinstance(g, list):
                items = [(str(x["range"]), x) for x in g]
            else:
                items = list(g.items())
            for name, x in items:
                n = x.get("reads", x.get("vectors"))
                lines.append(f"    {name:>16s}  n {n:4d}  {x['rms_pct']:.4f} / {x['max_pct']:.4f}"
                             + (f"   ideal {x['ideal_rms_pct']:.3f} / {x['ideal_max_pct']:.2f}"
                                if "ideal_rms_pct" in x else ""))
    return "\n".join(lines)
