"""``pyspice-rram check``: inference of a trained network through ideal VMM, surrogate, circuit.

The network's layers are read three ways, with the same tiling as
:class:`.backend.SurrogateBackend` (tiles of ``tile`` cells, absent cells where a layer does
not fill its last tiles, every array of the unit cell and both devices of each pair as
separate tiles, read voltages ``v = x V_read``, partial sums added in the periphery):

a. ideal VMM (exact matrix products, :class:`pyspice_rram.network.backend.IdealBackend`);
b. the tile surrogate (:class:`.backend.SurrogateBackend`);
c. every tile solved by a circuit solver, :class:`CircuitBackend`: ``--solver mna`` the
   cell-space Newton-CG solver (:mod:`pyspice_rram.circuit.cellspace`, fast for many images:
   the whole MNIST test set in minutes), ``mna-sparse`` the sparse nodal solver
   (:mod:`pyspice_rram.circuit.mna`), ``ngspice`` the circuit simulator.

Reported: accuracy of each path on the test images, and for each layer the RMS and largest
error of the pre-activations of (a) and (b) against (c), all three reading the same layer
inputs (those of the circuit path), in weight units and in % of the layer's largest
|pre-activation|; the wall time of each path. In the same run path (c) is cross-checked on
the first images against ngspice (``ngspice_images``) and the sparse nodal solver
(``sparse_images``): prediction agreement and the largest pre-activation difference per layer
(% of the reference's peak), each layer reading the reference path's own inputs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..device.card import ModelCard
from ..network.backend import IdealBackend
from .backend import SurrogateBackend
from ..errors import ConfigError

#: Cell area (m²) standing for an absent cell in a padded tile (conductance ~1e-23 S).
ABSENT_AREA = 1e-30

#: Stop of the cell-space solver in ``check`` (largest cell-current change of a Newton step,
#: relative to the largest cell current). The pre-activations are compared in float32
#: (resolution ~6e-8), so 1e-8 loses nothing and saves a Newton step of four on strongly
#: IR-dropped tiles (~30 %; 128x128 at 5 Ω: currents within 2.3e-9 of the 1e-10 solve).
CHECK_RTOL = 1e-8

#: ``check --solver`` names and the tile solver of :mod:`pyspice_rram.circuit.parallel` each
#: one runs.
CHECK_SOLVERS = {"mna": "cellspace", "mna-sparse": "mna", "ngspice": "ngspice"}


class CircuitBackend(SurrogateBackend):
    """Reads in which every tile is solved by a circuit solver of
    :mod:`pyspice_rram.circuit.parallel`: ``'ngspice'``, ``'mna'`` (sparse nodal) or
    ``'cellspace'`` (cell-space Newton-CG; padded edge tiles trimmed, see
    :class:`~pyspice_rram.circuit.cellspace.CellSpaceSystem` ``absent_g``).

    Same tiling and conversion to weight units as :class:`SurrogateBackend`; the tiles are
    :class:`~pyspice_rram.circuit.tile.Tile` objects of model cells whose area carries each
    device's low-field conductance exactly (``A = a / g(x)``, x clipped to [0, 1]) and whose
    absent cells have an area of :data:`ABSENT_AREA`.
    """

    def __init__(self, surrogate: Any = None, solver: str = "ngspice", workers: int = 1,
                 progress: bool = False, **kw: Any):
        kw.setdefault("on_invalid", "warn")
        super().__init__(surrogate, **kw)
        self.solver = solver
        self.workers = int(workers)
        self.progress = progress
        self.tiles_solved = 0
        self.wall_s = 0.0

    def _tile_objects(self, layer: int, W: np.ndarray, direction: str):
        from ..circuit.tile import Tile

        G0, S, GR, coef, dG = self._arrays(layer, W)
        g_nom = G0.astype(float) + S.astype(float) * GR.astype(float)
        a = g_nom * dG[:, None, None, None]
        tiles, shape = self._tiles(a)
        card = self.card
        A, P, Ti, Tj = tiles.shape[:4]
        objs = []
        for ia in range(A):
            for p in range(P):
                for ti in range(Ti):
                    for tj in range(Tj):
                        m = tiles[ia, p, ti, tj]
                        absent = m <= 0
                        gd_ref = (m / card.area_ref - card.g_min_density) / (
                            card.g_max_density - card.g_min_density)
                        x = np.clip(gd_ref, 0.0, 1.0)
                        gx = card.g_min_density + (card.g_max_density - card.g_min_density) * x
                        area = np.where(absent, ABSENT_AREA, m / gx)
                        area = np.maximum(area, ABSENT_AREA)
                        t = Tile(x=x, area=area, card=card, r_wire_row=self.r_wire,
                                 r_wire_col=self.r_wire_col, r_driver=self.r_driver,
                                 r_sense=self.r_sense, name=f"L{layer}a{ia}p{p}t{ti}_{tj}")
                        objs.append(((ia, p, ti, tj), t))
        return objs, coef, dG, shape, (Ti, Tj)

    def _solver_options(self) -> dict[str, Any] | None:
        # the cell-space solver leaves out the absent cells of padded tiles (conductance
        # <= ABSENT_AREA g_max, ~1e-23 S; anything <= 1000x that counts as absent) and stops
        # at CHECK_RTOL
        if self.solver != "cellspace":
            return None
        return {"absent_g": 1e3 * ABSENT_AREA * self.card.g_max_density, "rtol": CHECK_RTOL}

    def _circuit_read(self, layer: int, W: np.ndarray, v: np.ndarray, direction: str
                      ) -> np.ndarray:
        from ..circuit.parallel import solve_tiles

        tr, tc = self.tile
        objs, coef, dG, shape, (Ti, Tj) = self._tile_objects(layer, W, direction)
        n_in, n_out = shape
        B = v.shape[0]
        if direction == "forward":
            vp = np.zeros((B, Ti * tr))
            vp[:, :n_in] = v
            tasks = [(t, vp[:, key[2] * tr:(key[2] + 1) * tr], direction) for key, t in objs]
            out = np.zeros((B, Tj * tc))
        else:
            vp = np.zeros((B, Tj * tc))
            vp[:, :n_out] = v
            tasks = [(t, vp[:, key[3] * tc:(key[3] + 1) * tc], direction) for key, t in objs]
            out = np.zeros((B, Ti * tr))
        t0 = time.perf_counter()
        res = solve_tiles(tasks, solver=self.solver, workers=self.workers,
                          progress=self.progress, desc=f"{self.solver} layer {layer}",
                          options=self._solver_options())
        self.wall_s += time.perf_counter() - t0
        self.tiles_solved += len(tasks)
        for (key, _), cur in zip(objs, res):
            ia, p, ti, tj = key
            scale = coef[ia, p] / dG[ia]  # currents / dG: nominal units; coef = ±gain / h(V_read)
            if direction == "forward":
                out[:, tj * tc:(tj + 1) * tc] += scale * cur
            else:
                out[:, ti * tr:(ti + 1) * tr] += scale * cur
        return out[:, :n_out] if direction == "forward" else out[:, :n_in]

    def forward(self, layer: int, W: np.ndarray, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        xa = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
        return self._circuit_read(layer, W, xa * self.v_read, "forward").astype(np.float32)

    def transpose(self, layer: int, W: np.ndarray, d: np.ndarray) -> np.ndarray:
        d = np.atleast_2d(np.asarray(d, dtype=np.float64))
        scale = np.max(np.abs(d), axis=1, keepdims=True)
        safe = np.where(scale > 0, scale, 1.0)
        z = self._circuit_read(layer, W, d / safe * self.v_read, "transposed") * safe
        return z[:, :-1].astype(np.float32)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def check_circuit(config: Any, tile: tuple[int, int] | None = None, r_wire: float | None = None,
                  r_wire_col: float | None = None, r_driver: float | None = None,
                  r_sense: float | None = None) -> dict[str, Any]:
    """The crossbar a check reads through: each value given, else the run's ``[circuit]``
    table (:class:`~pyspice_rram.network.circuit_spec.CircuitSpec`; its defaults -- 64x64,
    1 Ω/segment, ideal periphery -- for run files written before the table existed). A given
    ``r_wire`` sets the column wire too unless ``r_wire_col`` is given."""
    c = config.circuit
    return dict(tile=tuple(tile) if tile is not None else (c.tile_rows, c.tile_cols),
                r_wire=c.r_wire_row if r_wire is None else float(r_wire),
                r_wire_col=(float(r_wire_col) if r_wire_col is not None else
                            float(r_wire) if r_wire is not None else c.r_wire_col),
                r_driver=c.r_driver if r_driver is None else float(r_driver),
                r_sense=c.r_sense if r_sense is None else float(r_sense))


def _cross_check(name: str, ref: CircuitBackend, fast: CircuitBackend, net: Any,
                 x: np.ndarray, pre_fast: list[np.ndarray]) -> dict[str, Any]:
    """Path (c) against the reference solver ``ref`` (bound to its own copy of the network,
    ``net`` is that of path (c)) on the images ``x``: each layer of both reading the reference
    path's inputs; predictions of each path's own chain."""
    W = [st.Wr for st in net.layers]
    t0 = time.perf_counter()
    z0 = np.asarray(ref.forward(0, W[0], x), dtype=float)
    h = _sigmoid(z0)
    z1 = np.asarray(ref.forward(1, W[1], h), dtype=float)
    wall = time.perf_counter() - t0
    n = len(x)
    z1_fast = np.asarray(fast.forward(1, W[1], h), dtype=float)
    layers = []
    for li, (r, f) in enumerate(((z0, pre_fast[0][:n]), (z1, z1_fast))):
        peak = float(np.max(np.abs(r))) or 1.0
        layers.append({"layer": li, "peak_abs_preactivation": peak,
                       "max_abs_difference": float(np.max(np.abs(f - r))),
                       "max_difference_pct_of_peak": float(100 * np.max(np.abs(f - r)) / peak)})
    return {"solver": name, "n_images": int(n), "wall_s": wall,
            "s_per_image": wall / max(n, 1), "tile_solves": ref.tiles_solved,
            "prediction_agreement": float(np.mean(z1.argmax(1) == pre_fast[1][:n].argmax(1))),
            "layers": layers}


def run_check(run: str | Path, n_images: int = 200, *, surrogate: Any = None,
              card: ModelCard | None = None, solver: str = "mna",
              tile: tuple[int, int] | None = None, r_wire: float | None = None,
              r_wire_col: float | None = None, r_driver: float | None = None,
              r_sense: float | None = None, mnist_path: str | None = None, workers: int = 1,
              progress: bool = True, out: str | Path | None = None,
              ngspice_images: int = 0, sparse_images: int = 0) -> dict[str, Any]:
    """Evaluate ``n_images`` test images of a trained run through (a), (b), (c).

    Parameters
    ----------
    run : HDF5 training run with a checkpoint (:mod:`pyspice_rram.network.history`)
    n_images : number of test images (the first ones of the test split)
    surrogate : TileSurrogate, path or None (shipped)
    card : device card of the tiles (default: the surrogate's)
    solver : path (c): ``"mna"`` (cell-space solver), ``"mna-sparse"`` (sparse nodal
        solver) or ``"ngspice"`` (:data:`CHECK_SOLVERS`)
    tile, r_wire, r_wire_col, r_driver, r_sense : tile configuration (cells, Ω); None: the
        run's ``[circuit]`` (:func:`check_circuit`)
    workers : ngspice / sparse-solver worker processes (the cell-space solver uses numba
        threads)
    out : JSON file for the result (optional; written atomically)
    ngspice_images, sparse_images : cross-check path (c) on this many of the first images
        against ngspice and against the sparse nodal solver (0: not; a reference equal to
        ``solver`` is skipped)
    """
    from ..network.data import load_dataset
    from ..network.history import load_run
    from ..network.train import Network, TrainConfig

    if solver not in CHECK_SOLVERS:
        raise ConfigError(f"check solver = {solver!r}: choose one of "
                          f"{', '.join(CHECK_SOLVERS)}")
    hist, layers, phase = load_run(run)
    if layers is None:
        raise ConfigError(f"{run}: the run file has no checkpoint of the layers")
    config = TrainConfig.from_dict(hist.config)
    data = load_dataset(config.dataset, mnist_path or config.mnist_path)
    x = data.dense("test", 0, n_images)
    y = data.y_test[:n_images]
    n_in, n_out = x.shape[1], layers[1].Wr.shape[1]
    kw = check_circuit(config, tile, r_wire, r_wire_col, r_driver, r_sense)
    tile, r_wire, r_driver, r_sense = kw["tile"], kw["r_wire"], kw["r_driver"], kw["r_sense"]

    def circuit(name: str) -> CircuitBackend:
        return CircuitBackend(surrogate, solver=CHECK_SOLVERS[name], card=card,
                              workers=workers, progress=progress, **kw)

    backends = {"ideal": IdealBackend(),
                "surrogate": SurrogateBackend(surrogate, card=card, second_order=True, **kw),
                solver: circuit(solver)}
    if not config.periphery.ideal:
        # the run's DAC / ADC on exact array reads (the circuit paths read without converters)
        from ..network.periphery import make_periphery_backend

        backends = {"ideal": backends["ideal"],
                    "ideal+converters": make_periphery_backend(IdealBackend(),
                                                               config.periphery,
                                                               config.circuit),
                    **{k: v for k, v in backends.items() if k != "ideal"}}
    nets = {}
    for name, be in backends.items():
        net = Network(config, n_in, n_out, backend=be, layers=[st.copy() for st in layers])
        net.phase = phase
        nets[name] = net
    result: dict[str, Any] = {"run": str(run), "n_images": int(len(y)), "solver": solver,
                              "tile": list(tile), "r_wire": r_wire,
                              "r_wire_col": kw["r_wire_col"], "r_driver": r_driver,
                              "r_sense": r_sense, "accuracy": {}, "layers": [], "wall_s": {}}
    pre: dict[str, list[np.ndarray]] = {}
    for name, net in nets.items():
        t0 = time.perf_counter()
        be = net.backend
        z0 = np.asarray(be.forward(0, net.layers[0].Wr, x), dtype=float)
        z1 = np.asarray(be.forward(1, net.layers[1].Wr, _sigmoid(z0)), dtype=float)
        result["wall_s"][name] = time.perf_counter() - t0
        result["accuracy"][name] = float(np.mean(z1.argmax(1) == y))
        pre[name] = [z0, z1]
    # per-layer errors against the circuit, every path reading the circuit path's inputs
    h_c = _sigmoid(pre[solver][0])
    for li in range(2):
        ref = pre[solver][li]
        peak = float(np.max(np.abs(ref))) or 1.0
        entry: dict[str, Any] = {"layer": li, "peak_abs_preactivation": peak}
        for name, net in nets.items():
            if name == solver:
                continue
            p = pre[name][0] if li == 0 else np.asarray(
                net.backend.forward(1, net.layers[1].Wr, h_c), dtype=float)
            err = p - ref
            entry[name] = {"rms": float(np.sqrt(np.mean(err ** 2))),
                           "max": float(np.max(np.abs(err))),
                           "rms_pct_of_peak": float(100 * np.sqrt(np.mean(err ** 2)) / peak),
                           "max_pct_of_peak": float(100 * np.max(np.abs(err)) / peak)}
        result["layers"].append(entry)
    for name in ("surrogate", "ideal"):
        result[f"agreement_{name}_vs_circuit"] = float(np.mean(
            pre[name][1].argmax(1) == pre[solver][1].argmax(1)))
    result["tiles_solved"] = backends[solver].tiles_solved
    result["cross_checks"] = []
    for name, n in (("ngspice", ngspice_images), ("mna-sparse", sparse_images)):
        n = min(int(n), len(y))
        if name == solver or n <= 0:
            continue
        ref = circuit(name)
        ref_net = Network(config, n_in, n_out, backend=ref, layers=[st.copy() for st in layers])
        ref_net.phase = phase
        result["cross_checks"].append(_cross_check(name, ref, backends[solver], nets[solver],
                                                   x[:n], pre[solver]))
    if out is not None:
        from ..circuit.safeio import atomic_write_text

        atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    return result


def format_check(r: dict[str, Any]) -> str:
    col = r.get("r_wire_col", r["r_wire"])
    wire = (f"{r['r_wire']} Ω/segment" if col == r["r_wire"] else
            f"{r['r_wire']} Ω/row segment, {col} Ω/column segment")
    lines = [f"check: {r['n_images']} test images, tiles {r['tile'][0]}x{r['tile'][1]}, "
             f"{wire}, circuit solver {r['solver']} ({r['tiles_solved']} tile solves)"]
    for k, v in r["accuracy"].items():
        lines.append(f"  accuracy {k:>10s}: {100 * v:.2f} %   ({r['wall_s'][k]:.2f} s)")
    for k in ("surrogate", "ideal"):
        if f"agreement_{k}_vs_circuit" in r:
            lines.append(f"  {k}/circuit prediction agreement: "
                         f"{100 * r[f'agreement_{k}_vs_circuit']:.2f} %")
    for e in r["layers"]:
        parts = [f"{k} RMS {v['rms']:.4g} ({v['rms_pct_of_peak']:.3f} % of peak) max "
                 f"{v['max']:.4g}" for k, v in e.items() if isinstance(v, dict)]
        lines.append(f"  layer {e['layer']} pre-activation error vs circuit: " + "; ".join(parts))
    for c in r.get("cross_checks", []):
        diffs = ", ".join(f"layer {e['layer']} {e['max_difference_pct_of_peak']:.2g} %"
                          for e in c["layers"])
        lines.append(f"  cross-check vs {c['solver']} on {c['n_images']} images: predictions "
                     f"agree {100 * c['prediction_agreement']:.2f} %, largest pre-activation "
                     f"difference (of peak) {diffs}; {c['wall_s']:.1f} s "
                     f"({c['s_per_image']:.3g} s/image)")
    return "\n".join(lines)
