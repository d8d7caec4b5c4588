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
import math
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


#: coupling exponents ``(p, 1 - p)`` tried by ``fit_surrogate(coupling="auto")``
COUPLINGS = ((0.5, 0.5), (0.6, 0.4), (0.7, 0.3), (0.8, 0.2), (0.9, 0.1), (1.0, 0.0))

#: keys of a domain table (``configs/surrogate/domain.toml``, :func:`load_domain`)
DOMAIN_KEYS = ("size", "r_wire_max", "r_driver_max", "r_sense_max", "ir_drop_max",
               "ir_drop_asym_max", "periphery_max", "card_rtol")


def load_domain(path: str | Path) -> dict[str, Any]:
    """The stated validity domain of a fit from TOML (table ``[domain]`` or top level):
    ``size = [min, max]`` lines, ``r_wire_max``, ``r_driver_max``, ``r_sense_max`` (Ω),
    ``ir_drop_max``, ``ir_drop_asym_max``, ``periphery_max`` (dimensionless, see
    :meth:`.model.TileSurrogate.domain_problems`), ``card_rtol``; every key optional.

    Raises
    ------
    ConfigError
        An unknown key or a value that is not a positive number (``size``: two integers
        ``1 <= min <= max``), naming the file, key and value.
    """
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"surrogate domain {path} not found")
    data = tomllib.loads(path.read_text())
    data = data.get("domain", data)
    bad = sorted(set(data) - set(DOMAIN_KEYS))
    if bad:
        raise ConfigError(f"{path}: unknown domain keys {bad}; known {list(DOMAIN_KEYS)}")
    for k, v in data.items():
        if k == "size":
            ok = (isinstance(v, list) and len(v) == 2 and all(isinstance(n, int) for n in v)
                  and 1 <= v[0] <= v[1])
        else:
            ok = isinstance(v, (int, float)) and math.isfinite(v) and v > 0
        if not ok:
            raise ConfigError(f"{path}: domain key {k} = {v!r} is not "
                              + ("[min, max] lines" if k == "size" else "a positive number"))
    return data


def fit_surrogate(path: str | Path | list, *, ridge: float = 1e-9, terms: list[str] | None = None,
                  v_eff_frac: float = 0.7, progress: bool = False,
                  domain: dict[str, Any] | None = None,
                  coupling: tuple[float, float] | str = "auto") -> tuple[TileSurrogate,
                                                                 dict[str, Any]]:
    """Fit a surrogate to the ``"fit"`` split of a data set.

    Parameters
    ----------
    path : HDF5 data set of :mod:`.dataset`, or a list of them (same card and read voltage;
        their ``"fit"`` items are fitted together, the validity ranges are the union)
    ridge : Tikhonov weight ``lambda`` on ``theta`` (dimensionless)
    terms : correction terms to fit (default all of :data:`.model.FEATURE_NAMES`)
    v_eff_frac : chord voltage of the ladder shunts, fraction of ``v_max``
    coupling : coupling exponents ``(p, q)`` of the line ladders
        (:func:`.model.attenuation`; ``(0, 1)`` is the first surrogate's one mean-field
        step), or ``"auto"``: each of :data:`COUPLINGS` is fitted and the one with the
        smallest largest error on the fit split is kept (the scan is in the report)
    domain : the stated validity domain (:func:`load_domain`); default the data spec's
        sizes, wire, driver and sense ranges, its ``periphery_max``, and a card tolerance of
        1e-6 (no IR-drop cap: the data spec's sampling limit is not the surrogate's)

    Returns
    -------
    (TileSurrogate, report) -- the report has the fitted coefficients and the RMS / max
    error (% of full scale) on the fit split of the physics core alone and of the fitted
    surrogate.
    """
    import h5py

    from .dataset import card_data_json

    paths = [Path(p) for p in ([path] if isinstance(path, (str, Path)) else path)]
    if not paths:
        raise ConfigError("fit_surrogate needs at least one data set")
    card = load_card(paths[0])
    specs, card_jsons = [], []
    for p in paths:
        with h5py.File(p, "r") as h5:
            specs.append(DataSpec.from_dict(json.loads(h5.attrs["spec"])))
            card_jsons.append(card_data_json(h5.attrs["card"]))
        if card_jsons[-1] != card_jsons[0]:
            raise ConfigError(f"{p}: generated for another model card than {paths[0]}; fit "
                              "data sets of one card together")
    spec = specs[0]
    v_maxes = {float(sp.v_max or card.scheme.v_read) for sp in specs}
    if len(v_maxes) > 1:
        raise ConfigError(f"data sets {[str(p) for p in paths]} have different read voltages "
                          f"v_max {sorted(v_maxes)} V")
    v_max = v_maxes.pop()
    terms = list(terms or FEATURE_NAMES)
    bad = set(terms) - set(FEATURE_NAMES)
    if bad:
        raise ConfigError(f"unknown terms {sorted(bad)}; known {FEATURE_NAMES}")
    pcaps = [sp.periphery_max for sp in specs]
    validity = {"size": [int(min(min(sp.sizes) for sp in specs)),
                         int(max(max(sp.sizes) for sp in specs))],
                "r_wire": [float(min(sp.r_wire[0] for sp in specs)),
                           float(max(sp.r_wire[1] for sp in specs))],
                "r_driver_max": float(max(sp.r_driver_max for sp in specs)),
                "r_sense_max": float(max(sp.r_sense_max for sp in specs)),
                "v_max": v_max, "g_max": float(card.g_max()), "cells": "model",
                "ir_drop_max": None,
                "periphery_max": None if None in pcaps else max(pcaps),
                "card_rtol": 1e-6}
    for k, v in (domain or {}).items():
        if k == "r_wire_max":
            validity["r_wire"][1] = float(v)
        elif k == "size":
            validity["size"] = [int(n) for n in v]
        else:
            validity[k] = float(v)
    validity = {k: v for k, v in validity.items() if v is not None}
    cols = [FEATURE_NAMES.index(t) for t in terms]
    candidates = COUPLINGS if coupling == "auto" else (tuple(coupling),)
    best = None
    scan = []
    for cpl in candidates:
        sur = TileSurrogate(v_eff_frac=v_eff_frac, coupling=list(cpl), validity=validity,
                            card=card.to_dict())
        parts = [collect(sur, p, "fit", v_max) for p in paths]
        data = {k: sum((d[k] for d in parts), []) for k in parts[0]}
        core = np.concatenate(data["core"])
        X = np.concatenate(data["X"])
        y = np.concatenate(data["y"])
        Xs = X[:, cols]
        A = Xs.T @ Xs + ridge * np.eye(len(cols))
        theta_sel = np.linalg.solve(A, Xs.T @ (y - core))
        err_fit = core + Xs @ theta_sel - y
        fit_max = float(100 * np.max(np.abs(err_fit)))
        scan.append({"coupling": list(cpl), "fit_max_pct": fit_max,
                     "fit_rms_pct": float(100 * np.sqrt(np.mean(err_fit ** 2)))})
        if best is None or fit_max < best[0]:
            best = (fit_max, sur, data, core, y, theta_sel, err_fit)
    _, sur, data, core, y, theta_sel, err_fit = best
    theta = {k: 0.0 for k in FEATURE_NAMES}
    for t, val in zip(terms, theta_sel):
        theta[t] = float(val)
    sur.theta = theta
    err_core = core - y
    report = {
        "terms": terms, "theta": theta, "coupling": sur.coupling, "coupling_scan": scan,
        "ridge": ridge, "n_reads": len(data["meta"]), "n_outputs": int(y.size),
        "fit_rms_pct_core": float(100 * np.sqrt(np.mean(err_core ** 2))),
        "fit_max_pct_core": float(100 * np.max(np.abs(err_core))),
        "fit_rms_pct": float(100 * np.sqrt(np.mean(err_fit ** 2))),
        "fit_max_pct": float(100 * np.max(np.abs(err_fit))),
    }
    solvers: dict[str, int] = {}
    for m in data["meta"]:
        solvers[m["solver"]] = solvers.get(m["solver"], 0) + 1
    def _hash(split):
        hs = [data_hash(p, split) for p in paths]
        return hs[0] if len(hs) == 1 else hashlib.sha256("".join(hs).encode()).hexdigest()

    sur.stamp(data_set=", ".join(p.name for p in paths), data_hash=_hash("fit"),
              data_hashes={p.name: data_hash(p, "fit") for p in paths},
              data_hash_all=_hash(None), n_fit_reads=len(data["meta"]),
              fit_solvers=solvers, fit_rms_pct_fs=report["fit_rms_pct"],
              fit_max_pct_fs=report["fit_max_pct"], ridge=ridge)
    return sur, report


def format_report(report: dict[str, Any]) -> str:
    """Plain-text fit report."""
    lines = ["tile surrogate fit", f"  reads: {report['n_reads']}  outputs: {report['n_outputs']}"]
    for c in report.get("coupling_scan", []):
        lines.append(f"  coupling p, q = {c['coupling'][0]:.2f}, {c['coupling'][1]:.2f}: fit "
                     f"split RMS {c['fit_rms_pct']:.4f} max {c['fit_max_pct']:.4f} % FS")
    lines.append(f"  coupling kept: {report.get('coupling')}")
    lines.append("  coefficients:")
    for k, v in report["theta"].items():
        lines.append(f"    {k:>10s} = {v:+.5f}")
    lines.append(f"  fit split, % of full scale: physics core RMS {report['fit_rms_pct_core']:.4f} "
                 f"max {report['fit_max_pct_core']:.4f}; fitted RMS {report['fit_rms_pct']:.4f} "
                 f"max {report['fit_max_pct']:.4f}")
    return "\n".join(lines)
