"""HDF5 store of crossbar tile results: cells, inputs, outputs of every solver, provenance.

Layout of a results file (``format = 'pyspice-rram/circuit-results'``, ``version = 1``)::

    /                      attrs: format, version, created, tool, user attrs (JSON)
    /tiles/000000/         attrs: name, direction, settings (JSON: shape, resistances in Ω),
                                  card (JSON model card or ''), netlist_sha256,
                                  solver_settings (JSON), timings (JSON, seconds)
        g  or  x, area,    cell conductances (S)  or  states, areas (m²) and the
               g_low_field low-field conductances A g(x) (S) of model cells
        inputs             read voltages (V), (n_vectors, n_driven)
        outputs/<solver>   sensed currents (A), (n_vectors, n_sensed): ngspice, mna, ideal
        netlist            the ngspice netlist text (optional)

:func:`load_results` reads a file back into :class:`TileResult` objects in one call;
:func:`save_results` with ``mode='a'`` appends (resumable data generation); every write is
atomic (a new file or a copy renamed over the old one). :func:`write_results` appends to an
open file (used with :class:`~pyspice_rram.circuit.safeio.H5Checkpoints` by ``xbar solve``).
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import h5py
import numpy as np

from ..device.card import ModelCard
from .tile import Tile, check_direction
from ..errors import UserInputError

FORMAT = "pyspice-rram/circuit-results"
VERSION = 1


@dataclass
class TileResult:
    """One tile read with a batch of input vectors, by one or more solvers."""

    tile: Tile
    direction: str
    inputs: np.ndarray
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    netlist_sha256: str = ""
    solver_settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    netlist: str | None = None

    def relative_error(self, a: str, b: str) -> float:
        """``max |I_a - I_b| / max |I_b|`` between two solvers' outputs."""
        A, B = self.outputs[a], self.outputs[b]
        return float(np.abs(A - B).max() / max(np.abs(B).max(), 1e-300))


def record(tile: Tile, v_in: Any, direction: str = "forward", *,
           solvers: Sequence[str] = ("ngspice", "mna", "ideal"), backend: str = "shared",
           keep_netlist: bool = False) -> TileResult:
    """Solve a tile with each of ``solvers`` and collect a :class:`TileResult` with timings."""
    from . import mna, ngspice_run

    check_direction(direction)
    v = tile.check_inputs(v_in, direction)
    res = TileResult(tile, direction, v)
    for s in solvers:
        t0 = time.perf_counter()
        if s == "ngspice":
            info: dict[str, Any] = {}
            res.outputs[s] = ngspice_run.solve_tile(tile, v, direction, backend=backend, info=info)
            res.netlist_sha256 = info["netlist_sha256"]
            res.solver_settings["ngspice"] = {"backend": backend, "klu": info["klu"],
                                              "options": info["options"],
                                              "attempts": info["attempts"],
                                              "version": ngspice_run.ngspice_info()["version"]}
            if keep_netlist:
                res.netlist = info["netlist"]
        elif s == "mna":
            system = mna.TileSystem(tile, direction)
            res.outputs[s] = system.solve(v)
            res.solver_settings["mna"] = {"rtol": system.rtol, "atol": system.atol,
                                          "permc_spec": mna.PERMC_SPEC, **system.stats}
        elif s == "ideal":
            res.outputs[s] = mna.ideal_product(tile, v, direction)
        else:
            raise UserInputError(f"unknown solver {s!r} (ngspice, mna, ideal)")
        res.timings[s] = time.perf_counter() - t0
    return res


def _json(obj: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, (slice, Path)):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o)}")
    return json.dumps(obj, default=default)


def save_results(path: str | Path, results: TileResult | Iterable[TileResult], *,
                 mode: str = "w", attrs: dict[str, Any] | None = None) -> Path:
    """Write results to an HDF5 file (``mode='a'`` appends to an existing file).

    The file is written atomically (:func:`~pyspice_rram.circuit.safeio.atomic_h5`): a new
    file, or a copy of the existing one when appending, is written beside ``path`` and
    renamed over it, so a killed writer leaves the earlier file byte-identical.
    """
    from .safeio import atomic_h5

    if isinstance(results, TileResult):
        results = [results]
    if mode not in ("w", "a"):
        raise UserInputError("mode must be 'w' or 'a'")
    path = Path(path)
    with atomic_h5(path, append=mode == "a" and path.exists()) as f:
        write_results(f, results, attrs=attrs, where=path)
    return path


def write_results(f: h5py.File, results: Iterable[TileResult], *,
                  attrs: dict[str, Any] | None = None, where: str | Path = "") -> None:
    """Append ``results`` (and the root attributes) to the open results file ``f``."""
    from .. import __version__

    if "format" in f.attrs and f.attrs["format"] != FORMAT:
        raise UserInputError(f"{where or f.filename} is not a {FORMAT} file")
    f.attrs["format"] = FORMAT
    f.attrs["version"] = VERSION
    f.attrs.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat())
    f.attrs["tool"] = f"pyspice-rram {__version__}"
    if attrs:
        f.attrs["user"] = _json(attrs)
    tiles = f.require_group("tiles")
    n = len(tiles)
    for k, r in enumerate(results):
        g = tiles.create_group(f"{n + k:06d}")
        t = r.tile
        g.attrs["name"] = t.name
        g.attrs["direction"] = r.direction
        g.attrs["settings"] = _json(t.settings())
        g.attrs["card"] = "" if t.card is None else _json(t.card.to_dict())
        g.attrs["netlist_sha256"] = r.netlist_sha256
        g.attrs["solver_settings"] = _json(r.solver_settings)
        g.attrs["timings"] = _json(r.timings)
        if t.is_linear:
            g.create_dataset("g", data=t.g, compression="gzip")
        else:
            g.create_dataset("x", data=t.x, compression="gzip")
            g.create_dataset("area", data=t.area, compression="gzip")
            g.create_dataset("g_low_field", data=t.low_field_conductance(),
                             compression="gzip")
        g.create_dataset("inputs", data=r.inputs)
        out = g.create_group("outputs")
        for s, arr in r.outputs.items():
            out.create_dataset(s, data=np.asarray(arr))
        if r.netlist is not None:
            g.create_dataset("netlist", data=r.netlist, dtype=h5py.string_dtype())


def load_results(path: str | Path) -> list[TileResult]:
    """Read every :class:`TileResult` of a file written by :func:`save_results`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results file {path}")
    out: list[TileResult] = []
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise UserInputError(f"{path} is not a {FORMAT} file")
        for key in sorted(f.get("tiles", {})):
            g = f["tiles"][key]
            st = json.loads(g.attrs["settings"])
            par = {k: st[k] for k in ("r_wire_row", "r_wire_col", "r_driver", "r_sense")}
            card_json = g.attrs["card"]
            if "g" in g:
                tile = Tile(g=g["g"][()], name=st.get("name", ""), **par)
            else:
                card = ModelCard.from_dict(json.loads(card_json))
                tile = Tile(x=g["x"][()], area=g["area"][()], card=card,
                            name=st.get("name", ""), **par)
            netlist = g["netlist"][()].decode() if "netlist" in g else None
            out.append(TileResult(
                tile=tile, direction=str(g.attrs["direction"]), inputs=g["inputs"][()],
                outputs={s: g["outputs"][s][()] for s in g["outputs"]},
                netlist_sha256=str(g.attrs["netlist_sha256"]),
                solver_settings=json.loads(g.attrs["solver_settings"]),
                timings=json.loads(g.attrs["timings"]), netlist=netlist))
    return out


def file_attrs(path: str | Path) -> dict[str, Any]:
    """Root attributes of a results file (``user`` decoded from JSON)."""
    with h5py.File(path, "r") as f:
        a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    if "user" in a:
        a["user"] = json.loads(a["user"])
    return a
