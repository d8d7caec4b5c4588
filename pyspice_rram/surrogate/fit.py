"""Fit the tile surrogate's correction coefficients to stored ngspice results.

The surrogate is linear in its coefficients ``theta`` (:mod:`.model`): for every stored
read, ``I_pred = I_core + X theta`` with the physics-core prediction ``I_core`` and the
design matrix ``X`` of the correction terms. The fit minimises the squared error in units
of each tile's full-scale current,

    min_theta  sum_reads || (I_core + X theta - I_ngspice) / I_FS ||^2 + lambda ||theta||^2

    I_FS = n_driven * A_ref g_max V_nl sinh(V_max / V_nl)     (A)

i.e. the largest current a sensed line can carry with ideal wires. Only items of split
``"fit"`` are used; :mod:`.validate` reports the errors on the held-out ``"test"`` items.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import DataSpec, iter_records, load_card
from .model import FEATURE_NAMES, TileSurrogate
from ..errors import ConfigError


def full_scale(tile: Any, direction: str, v_max: float) -> float:
    """Full-scale output current (A) of a read: ``n_driven * g_max * h(v_max)``.

    ``g_max`` is the largest cell conductance of the card at the tile's largest area (model
    cells) or the tile's largest conductance (linear cells).
    """
    n = tile.n_inputs(direction)
    if tile.is_linear:
        return float(n * np.max(tile.g) * v_max) or 1e-30
    card = tile.card
    area = float(np.max(tile.area))
    return float(n * card.g_max(area) * card.v_nl * np.sinh(v_max / card.v_nl))


def data_hash(path: str | Path, split: str | None = None) -> str:
    """SHA-256 over the item hashes (and the stored spec and card) of a data set split.

    Only data enter the hash: the card's ``provenance`` (fit date, tool version) and the
    items' wall times do not, so identical data hash the same whenever they were made.
    """
    from ..circuit.safeio import open_h5
    from .dataset import card_data_json

    h = hashlib.sha256()
    with open_h5(path, what="surrogate data set") as h5:
        h.update(str(h5.attrs.get("spec", "")).encode())
        h.update(card_data_json(h5.attrs.get("card", "")).encode())
        for name in sorted(h5.get("items", {}).keys()):
            a = h5["items"][name].attrs
            if split is None or a["split"] == split:
                h.update(f"{name}:{a['item_hash']}:{a['solver']}".encode())
    return h.hexdigest()


def collect(sur: TileSurrogate, path: str | Path, split: str | None,
            v_max: float) -> dict[str, Any]:
    """Core predictions, design matrices and targets of every read (scaled by full scale)."""
    rows_core, rows_X, rows_y, meta = [], [], [], []
    for rec in iter_records(path, split):
        core, X = sur.design(rec.tile, rec.v_in, rec.direction)
        fs = full_scale(rec.tile, rec.direction, v_max)
        rows_core.append((core / fs).ravel())
        rows_X.append((X / fs).reshape(-1, X.shape[-1]))
        rows_y.append((rec.i_out / fs).ravel())
        meta.append(dict(index=rec.index, direction=rec.direction, rows=rec.tile.rows,
                         cols=rec.tile.cols, r_wire_row=rec.tile.r_wire_row,
                         r_wire_col=rec.tile.r_wire_col, r_driver=rec.tile.r_driver,
                         r_sense=rec.tile.r_sense, pattern=rec.pattern, solver=rec.solver,
                         n=core.size, fs=fs))
    if not meta:
        raise ConfigError(f"{path}: no stored reads in split {split!r}")
    return {"core": rows_core, "X": rows_X, "y": rows_y, "meta": meta}


def fit_surrogate(path: str | Path, *, ridge: float = 1e-9, terms: list[str] | None = None,
                  v_eff_frac: float = 0.7, progress: bool = False) -> tuple[TileSurrogate,
                                                                             dict[str, Any]]:
    """Fit a surrogate to the ``"fit"`` split of a data set.

    Parameters
    ----------
    path : HDF5 data set of :mod:`.dataset`
    ridge : Tikhonov weight ``lambda`` on ``theta`` (dimensionless)
    terms : correction terms to fit (default all of :data:`.model.FEATURE_NAMES`)
    v_eff_frac : chord voltage of the ladder shunts, fraction of ``v_max``

    Returns
    -------
    (TileSurrogate, report) -- the report has the fitted coefficients and the RMS / max
    error (% of full scale) on the fit split of the physics core alone and of the fitted
    surrogate.
    """
    import h5py

    path = Path(path)
    card = load_card(path)
    with h5py.File(path, "r") as h5:
        spec = DataSpec.from_dict(json.loads(h5.attrs["spec"]))
    v_max = float(spec.v_max or card.scheme.v_read)
    terms = list(terms or FEATURE_NAMES)
    bad = set(terms) - set(FEATURE_NAMES)
    if bad:
        raise ConfigError(f"unknown terms {sorted(bad)}; known {FEATURE_NAMES}")
    validity = {"size": [int(min(spec.sizes)), int(max(spec.sizes))],
                "r_wire": [float(spec.r_wire[0]), float(spec.r_wire[1])],
                "r_driver_max": float(spec.r_driver_max), "r_sense_max": float(spec.r_sense_max),
                "v_max": v_max, "g_max": float(card.g_max()), "cells": "model"}
    sur = TileSurrogate(v_eff_frac=v_eff_frac, validity=validity, card=card.to_dict())
    data = collect(sur, path, "fit", v_max)
    core = np.concatenate(data["core"])
    X = np.concatenate(data["X"])
    y = np.concatenate(data["y"])
    cols = [FEATURE_NAMES.index(t) for t in terms]
    Xs = X[:, cols]
    r = y - core
    A = Xs.T @ Xs + ridge * np.eye(len(cols))
    theta_sel = np.linalg.solve(A, Xs.T @ r)
    theta = {k: 0.0 for k in FEATURE_NAMES}
    for t, val in zip(terms, theta_sel):
        theta[t] = float(val)
    sur.theta = theta
    err_core = core - y
    err_fit = core + Xs @ theta_sel - y
    report = {
        "terms": terms, "theta": theta, "ridge": ridge, "n_reads": len(data["meta"]),
        "n_outputs": int(y.size),
        "fit_rms_pct_core": float(100 * np.sqrt(np.mean(err_core ** 2))),
        "fit_max_pct_core": float(100 * np.max(np.abs(err_core))),
        "fit_rms_pct": float(100 * np.sqrt(np.mean(err_fit ** 2))),
        "fit_max_pct": float(100 * np.max(np.abs(err_fit))),
    }
    solvers: dict[str, int] = {}
    for m in data["meta"]:
        solvers[m["solver"]] = solvers.get(m["solver"], 0) + 1
    sur.stamp(data_set=str(path.name), data_hash=data_hash(path, "fit"),
              data_hash_all=data_hash(path), n_fit_reads=len(data["meta"]),
              fit_solvers=solvers, fit_rms_pct_fs=report["fit_rms_pct"],
              fit_max_pct_fs=report["fit_max_pct"], ridge=ridge)
    return sur, report


def format_report(report: dict[str, Any]) -> str:
    """Plain-text fit report."""
    lines = ["tile surrogate fit", f"  reads: {report['n_reads']}  outputs: {report['n_outputs']}",
             "  coefficients:"]
    for k, v in report["theta"].items():
        lines.append(f"    {k:>10s} = {v:+.5f}")
    lines.append(f"  fit split, % of full scale: physics core RMS {report['fit_rms_pct_core']:.4f} "
                 f"max {report['fit_max_pct_core']:.4f}; fitted RMS {report['fit_rms_pct']:.4f} "
                 f"max {report['fit_max_pct']:.4f}")
    return "\n".join(lines)
