"""Where the circuit matters: networks trained with ideal reads and through the crossbar,
both read through the circuit, over tile size and wire resistance.

A sweep file (``configs/sweep/circuit_mnist.toml``)::

    title = "..."
    tiles = [64, 128]            # square tiles, cells per side
    r_wire = [0.5, 2.0, 5.0]     # Ω per wire segment, rows and columns alike
    n_images = 10000             # test images read through the circuit per point
    solver = "mna"               # circuit solver of the check
    [train]                      # the network and its training: a TrainConfig table
    ...

For every circuit point (tile ``T``, wire ``R``) the sweep reports

a. the network trained with **ideal reads** (one run, ``<name>_ideal``), read through the
   circuit -- ``pyspice-rram check`` with that tile and wire;
b. the network trained with **every read through the surrogate of that circuit**
   (``<name>_surrogate_t<T>_r<R>``, ``backend = "surrogate"`` with the point's
   ``[circuit]``), read through the circuit;
c. the ideal-read accuracy of (a) on the same images,

and the loss ``c - a`` and the recovery ``b - a`` (percentage points). Runs are stored as
``<out>/runs/<name>.h5`` and re-used or resumed (:func:`.experiments.run_configs`); checks as
``<out>/checks/<mode>_t<T>_r<R>.json`` and re-used when they read the same run file with the
same number of images and solver. :func:`run_sweep` writes ``<out>/<stem>.md`` (table),
``<stem>.h5`` and ``<stem>.json`` (every number, per point) and ``<stem>.png`` (accuracy vs
wire resistance, one line per tile size and training mode).
"""

from __future__ import annotations

import json
import math
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from ..network.cells import ConfigError
from ..network.train import TrainConfig
from .experiments import _plt, run_configs

#: Keys of a sweep file besides ``[train]``.
SWEEP_KEYS = ("title", "tiles", "r_wire", "n_images", "solver", "check")


@dataclass
class CircuitSweep:
    """A sweep of circuit points for one network and training.

    Parameters
    ----------
    train : TrainConfig
        The network and its training; its ``backend`` and ``[circuit]`` are replaced per run.
    tiles : list of int
        Square tile sizes (cells per side).
    r_wire : list of float
        Wire resistance per segment (Ω), rows and columns alike.
    n_images : int
        Test images read through the circuit per point (the first ones of the test split).
    solver : str
        Circuit solver of the check (``pyspice-rram check --solver``).
    title : str
    check : dict
        Further keyword arguments of :func:`pyspice_rram.surrogate.check.run_check`.
    """

    train: TrainConfig
    tiles: list[int]
    r_wire: list[float]
    n_images: int = 10000
    solver: str = "mna"
    title: str = "circuit sweep"
    check: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> "CircuitSweep":
        """Read and validate a sweep file; errors name the file, key and value."""
        path = Path(path)
        if not path.is_file():
            raise UserInputError(f"sweep file {path} not found")
        try:
            data = tomllib.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise UserInputError(f"{path}: {err}") from None
        where = str(path)
        unknown = sorted(set(data) - set(SWEEP_KEYS) - {"train"})
        if unknown:
            raise ConfigError(unknown[0], data[unknown[0]], f"unknown key (known: "
                              f"{', '.join(SWEEP_KEYS)}, [train])", where)
        if not isinstance(data.get("train"), dict):
            raise ConfigError("train", data.get("train"), "needs a [train] table (a training "
                              "config)", where)
        train = TrainConfig.from_dict(data["train"], where=f"{path}: [train]")
        tiles = data.get("tiles")
        if (not isinstance(tiles, list) or not tiles
                or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 2
                           for t in tiles)):
            raise ConfigError("tiles", tiles, "must be a list of tile sizes (integers >= 2)",
                              where)
        wires = data.get("r_wire")
        if (not isinstance(wires, list) or not wires or not all(
                isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r)
                and r > 0 for r in wires)):
            raise ConfigError("r_wire", wires, "must be a list of wire resistances > 0 (Ω per "
                              "segment)", where)
        n_images = data.get("n_images", 10000)
        if not isinstance(n_images, int) or isinstance(n_images, bool) or n_images < 1:
            raise ConfigError("n_images", n_images, "must be an integer >= 1", where)
        solver = data.get("solver", "mna")
        if not isinstance(solver, str):
            raise ConfigError("solver", solver, "must be a solver name", where)
        check = data.get("check", {})
        if not isinstance(check, dict):
            raise ConfigError("check", check, "must be a table of check options", where)
        return cls(train=train, tiles=list(tiles), r_wire=[float(r) for r in wires],
                   n_images=n_images, solver=solver, title=str(data.get("title", path.stem)),
                   check=dict(check))

    # ------------------------------------------------------------------ runs
    def ideal_config(self) -> TrainConfig:
        """The run trained with ideal reads (its ``[circuit]`` is the training file's)."""
        return self.train.replace(name=f"{self.train.name}_ideal", backend="ideal")

    def surrogate_config(self, tile: int, r_wire: float) -> TrainConfig:
        """The run trained through the surrogate of tile ``tile`` and wire ``r_wire`` (Ω)."""
        circuit = self.train.circuit.replace(tile_rows=tile, tile_cols=tile, r_wire_row=r_wire,
                                             r_wire_col=r_wire)
        return self.train.replace(name=f"{self.train.name}_surrogate_t{tile}_r{_tag(r_wire)}",
                                  backend="surrogate", circuit=circuit)

    def points(self) -> list[tuple[int, float]]:
        return [(t, r) for t in self.tiles for r in self.r_wire]

    def configs(self) -> list[TrainConfig]:
        return [self.ideal_config()] + [self.surrogate_config(t, r) for t, r in self.points()]


def _tag(r: float) -> str:
    return f"{r:g}".replace(".", "p")


def _check_path(outdir: Path, mode: str, tile: int, r_wire: float) -> Path:
    return outdir / "checks" / f"{mode}_t{tile}_r{_tag(r_wire)}.json"


def _reusable(path: Path, run: Path, n_images: int, solver: str) -> dict | None:
    """A stored check of ``run`` with the same images and solver, newer than the run file."""
    if not path.exists() or path.stat().st_mtime < run.stat().st_mtime:
        return None
    try:
        r = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if r.get("n_images") != n_images or r.get("solver") != solver or \
            Path(r.get("run", "")).resolve() != run.resolve():
        return None
    return r


def run_sweep(sweep: CircuitSweep | str | Path, outdir: str | Path, *,
              mnist: str | None = None, workers: int = 1, progress: bool = True,
              only_existing: bool = False, force: bool = False,
              n_images: int | None = None, stem: str | None = None) -> dict[str, Any]:
    """Train (or re-use) the sweep's runs, check each through its circuit points, tabulate.

    Parameters
    ----------
    sweep : CircuitSweep or path of a sweep file
    outdir : output directory (``runs/``, ``checks/``, the table, figure and data)
    mnist : MNIST directory (else ``$PYSPICE_RRAM_MNIST`` / cache)
    workers : training runs in parallel processes
    only_existing : tabulate what is stored; train and check nothing
    force : retrain and re-check everything
    n_images : override the sweep's number of test images per check
    stem : base name of the outputs (default: the sweep file's stem, or ``circuit_sweep``)

    Returns
    -------
    dict with ``rows`` (one per circuit point) and the output paths.
    """
    from ..surrogate.check import run_check

    if not isinstance(sweep, CircuitSweep):
        stem = stem or Path(sweep).stem
        sweep = CircuitSweep.load(sweep)
    stem = stem or "circuit_sweep"
    if n_images is not None:
        sweep.n_images = int(n_images)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    configs = sweep.configs()
    if mnist:
        configs = [c.replace(mnist_path=str(Path(mnist).resolve())) for c in configs]
    t0 = time.perf_counter()
    hists = run_configs(configs, outdir, workers=workers, progress=progress,
                        only_existing=only_existing, force=force)
    train_s = time.perf_counter() - t0
    card = sweep.train.load_card()
    rundir = outdir / "runs"
    rows = []
    for tile, r in sweep.points():
        row: dict[str, Any] = {"tile": tile, "r_wire": r}
        for mode, cfg in (("ideal", sweep.ideal_config()),
                          ("surrogate", sweep.surrogate_config(tile, r))):
            run = rundir / f"{cfg.name}.h5"
            if cfg.name not in hists:
                row[mode] = None
                continue
            path = _check_path(outdir, mode, tile, r)
            res = None if force else _reusable(path, run, sweep.n_images, sweep.solver)
            if res is None and not only_existing:
                path.parent.mkdir(parents=True, exist_ok=True)
                res = run_check(run, sweep.n_images, card=card, solver=sweep.solver,
                                tile=(tile, tile), r_wire=r, r_wire_col=r, mnist_path=mnist,
                                progress=progress, out=path, **sweep.check)
            row[mode] = None if res is None else {
                "run": str(run), "check": str(path),
                "train_s": float(np.sum(hists[cfg.name].arrays()["wall_s"])),
                "accuracy": res["accuracy"], "wall_s": res["wall_s"],
                "layers": res["layers"]}
        rows.append(_summarise(row, sweep.solver))
    result = {"title": sweep.title, "n_images": sweep.n_images, "solver": sweep.solver,
              "train": sweep.train.to_dict(), "rows": rows, "train_wall_s": train_s}
    paths = _write(result, outdir, stem)
    result.update(paths)
    return result


def _summarise(row: dict, solver: str) -> dict:
    """Add (a), (b), (c), loss and recovery in % to a point."""
    a = b = c = None
    if row.get("ideal"):
        a = 100 * row["ideal"]["accuracy"][solver]
        c = 100 * row["ideal"]["accuracy"]["ideal"]
    if row.get("surrogate"):
        b = 100 * row["surrogate"]["accuracy"][solver]
    row.update(a_ideal_trained_circuit=a, b_surrogate_trained_circuit=b, c_ideal=c,
               loss=None if a is None or c is None else c - a,
               recovery=None if a is None or b is None else b - a,
               gap=None if b is None or c is None else c - b)
    return row


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "–" if v is None else format(v, spec)


def _write(result: dict, outdir: Path, stem: str) -> dict[str, str]:
    from ..circuit.safeio import atomic_h5, atomic_write_text

    rows = result["rows"]
    lines = [f"# {result['title']}", "",
             f"{result['n_images']} test images per point, circuit solver "
             f"`{result['solver']}`; accuracies in %, loss = (c) − (a), recovery = (b) − (a), "
             "gap = (c) − (b), in percentage points.", "",
             "| tile | wire Ω/segment | (a) ideal-trained, circuit | (b) surrogate-trained, "
             "circuit | (c) ideal | loss | recovery | gap |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['tile']}×{r['tile']} | {r['r_wire']:g} | "
                     f"{_fmt(r['a_ideal_trained_circuit'])} | "
                     f"{_fmt(r['b_surrogate_trained_circuit'])} | {_fmt(r['c_ideal'])} | "
                     f"{_fmt(r['loss'], '+.2f')} | {_fmt(r['recovery'], '+.2f')} | "
                     f"{_fmt(r['gap'], '+.2f')} |")
    md = atomic_write_text(outdir / f"{stem}.md", "\n".join(lines) + "\n")
    js = atomic_write_text(outdir / f"{stem}.json", json.dumps(result, indent=1) + "\n")
    h5 = outdir / f"{stem}.h5"
    keys = ("tile", "r_wire", "a_ideal_trained_circuit", "b_surrogate_trained_circuit",
            "c_ideal", "loss", "recovery", "gap")
    with atomic_h5(h5) as f:
        f.attrs["title"] = result["title"]
        f.attrs["n_images"] = result["n_images"]
        f.attrs["solver"] = result["solver"]
        f.attrs["train"] = json.dumps(result["train"])
        for k in keys:
            f.create_dataset(k, data=np.array([np.nan if r[k] is None else r[k] for r in rows],
                                              float))
            if k not in ("tile", "r_wire"):
                f[k].attrs["unit"] = "%"
        f["r_wire"].attrs["unit"] = "ohm per segment"
    png = _figure(result, outdir / f"{stem}.png")
    return {"table": str(md), "json": str(js), "h5": str(h5), "figure": str(png)}


def _figure(result: dict, path: Path) -> Path:
    plt = _plt()
    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    tiles = sorted({r["tile"] for r in rows})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, t in enumerate(tiles):
        pts = sorted((r for r in rows if r["tile"] == t), key=lambda r: r["r_wire"])
        x = [r["r_wire"] for r in pts]
        col = colors[n % len(colors)]
        for key, style, lab in (("a_ideal_trained_circuit", "o--", "ideal-trained"),
                                ("b_surrogate_trained_circuit", "s-", "surrogate-trained")):
            y = [np.nan if r[key] is None else r[key] for r in pts]
            ax.plot(x, y, style, color=col, label=f"{t}×{t}, {lab}")
        c = [r["c_ideal"] for r in pts if r["c_ideal"] is not None]
    if c:
        ax.axhline(float(np.mean(c)), color="k", lw=0.8, ls=":", label="(c) ideal reads")
    ax.set_xscale("log")
    wires = sorted({r["r_wire"] for r in rows})
    ax.set_xticks(wires, [f"{w:g}" for w in wires])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("wire resistance per segment (Ω)")
    ax.set_ylabel(f"test accuracy through the circuit (%), {result['n_images']} images")
    ax.set_title(result["title"], fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
