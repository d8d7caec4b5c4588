"""Experiments of Choi et al. (2021): figure sweeps, plots, summary table and the demo.

Every figure is a list of :class:`~.train.TrainConfig` runs derived from :data:`PAPER_BASE`
(the paper's setting: MNIST 784-250-10, sigmoid, MSE, batch 1, η = 0.1, 50 states,
δ/μ = 0.34). Runs are stored as HDF5 files ``<outdir>/runs/<name>.h5`` and are resumed /
re-used, so figures share runs (e.g. the 50-state hybrid run serves 4A, 5F, 6A and 6B) and a
killed sweep continues where it stopped. Runs execute sequentially, in local worker
processes (``workers > 1``) or on a Dask cluster (``scheduler="tcp://host:8786"``).

Each figure writes ``<outdir>/fig<ID>.png`` and the data behind it, ``fig<ID>.json``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..network.cells import ConfigError
from ..network.history import History, load_run
from ..network.train import TrainConfig, train
from ..errors import UserInputError
from ..circuit.safeio import atomic_write_text

#: The measured alternative: unbiased stochastic rounding with a coarse range (docs/results.md).
STOCHASTIC_BASE: dict[str, Any] = {}

#: The paper's training setting (seed 001, "Results and discussion"); device defaults are
#: the Mo/TiOx values (50 states, δ/μ = 0.34, linear potentiation + reset). The per-layer
#: weight range ``w_max`` and the update-to-pulse conversion are not given by the paper:
#: they are ours (deterministic rounding to whole pulses, |W| <= 0.15 / 0.5), chosen by the
#: measurements in docs/results.md (stochastic rounding is the measured alternative).
PAPER_BASE: dict[str, Any] = {
    "dataset": "mnist",
    "n_hidden": 250,
    "lr": 0.1,
    "epochs": 20,
    "seed": 0,
    "w_max": [0.15, 0.5],
    "device": {"n_states": 50, "c2c": 0.34, "d2d": 0.0, "beta_p": 0.0, "beta_d": 0.0,
               "g_ratio": 10.0},
    "cell_params": {"rounding": "deterministic"},
    "n_track": 3,
    "track_points": 10,
}

STOCHASTIC_BASE.update(copy.deepcopy(PAPER_BASE))
STOCHASTIC_BASE.update(w_max=[1.0, 2.0], cell_params={"rounding": "stochastic"})

FIGURES = ("4A", "4B", "4C", "4D", "5F", "6A", "6B", "6C", "6D")
DEVICE_C2C = 0.34


def paper_config(cell: str, name: str | None = None, base: dict | None = None,
                 where: str | None = None, **changes: Any) -> TrainConfig:
    """A config from :data:`PAPER_BASE` (or ``base``) with ``changes``.

    ``device`` and ``cell_params`` changes are merged into the base dicts. FP ignores the
    device; hybrid gets ``k = 10`` unless given. Validated (:meth:`.TrainConfig.validate`);
    ``where`` (a study file and run) locates errors.
    """
    d = copy.deepcopy(base if base is not None else PAPER_BASE)
    d["cell"] = cell
    for key in ("device", "cell_params"):
        if key in changes:
            extra = changes.pop(key)
            if not isinstance(extra, dict):
                raise ConfigError(key, extra, "must be a table", where)
            d[key] = {**d.get(key, {}), **extra}
    d.update(changes)
    if cell == "fp":        # FP ignores the device side: one FP run serves every base
        d["cell_params"] = {}
        d["w_max"] = list(PAPER_BASE["w_max"])
    elif cell == "hybrid" and isinstance(d.get("cell_params"), dict):
        cp = d["cell_params"]
        cp.setdefault("k", 10.0)
        if isinstance(cp["k"], int) and not isinstance(cp["k"], bool):
            cp["k"] = float(cp["k"])
        if isinstance(d.get("device"), dict) and \
                cp.get("small_states") == d["device"].get("n_states"):
            cp.pop("small_states")      # same run as the default
    TrainConfig.from_dict({**d, "name": name or "run"}, where=where)   # validate first
    d["name"] = name or run_name(d)
    return TrainConfig.from_dict(d, where=where)


def run_name(d: dict) -> str:
    """Readable, unique run name: cell, key device numbers and a hash of the config."""
    dev = d.get("device", {})
    cp = d.get("cell_params", {})
    parts = [d["cell"]]
    if d["cell"] != "fp":
        parts.append(f"N{dev.get('n_states', 50):g}")
        if d["cell"] == "hybrid":
            parts.append(f"k{cp.get('k', 10):g}")
            if cp.get("small_states"):
                parts.append(f"n{cp['small_states']:g}")
        parts.append(f"c2c{dev.get('c2c', 0):g}")
        for key in ("d2d", "d2d_range", "d2d_area"):
            if dev.get(key):
                parts.append(f"{key}{dev[key]:g}")
    parts.append(f"s{d.get('seed', 0)}")
    key = {k: v for k, v in d.items() if k not in ("name", "epochs")}
    h = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return "-".join(parts) + "-" + h


# --------------------------------------------------------------------------- running
def _run_one(cfg_dict: dict, path: str, progress: bool, resume: bool = True) -> dict:
    cfg = TrainConfig.from_dict(cfg_dict)
    res = train(cfg, path, resume=resume, progress=progress)
    return res.summary()


def _absolute(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with its relative paths (MNIST directory, card) made absolute."""
    given = cfg.to_dict()        # the card as its path (a card given as an object: a dict)
    changes = {k: str(Path(given[k]).resolve()) for k in ("mnist_path", "card")
               if isinstance(given.get(k), str) and given[k]}
    return cfg.replace(**changes) if changes else cfg


def run_configs(configs: list[TrainConfig], outdir: str | Path, *, workers: int = 1,
                scheduler: str | None = None, progress: bool = True,
                only_existing: bool = False, force: bool = False) -> dict[str, History]:
    """Run (or resume / re-use) every config; returns ``{name: History}``.

    A run whose file already holds ``config.epochs`` epochs is not re-run; configs that
    differ only in ``epochs`` are one run, trained to the largest. With ``only_existing``
    nothing is trained: the stored runs (complete or not) are returned and missing ones are
    left out. ``force`` retrains every run from scratch (its file is replaced after the
    first epoch). Paths are made absolute before anything goes to local worker processes
    or Dask workers (whose working directory is their own).
    """
    outdir = Path(outdir).resolve()
    if only_existing:
        out = {}
        for cfg in configs:
            path = Path(outdir) / "runs" / f"{cfg.name}.h5"
            if path.exists():
                out[cfg.name] = load_run(path, with_checkpoint=False)[0]
        return out
    rundir = Path(outdir) / "runs"
    rundir.mkdir(parents=True, exist_ok=True)
    todo = []
    longest: dict[str, TrainConfig] = {}
    for cfg in configs:
        if cfg.name not in longest or cfg.epochs > longest[cfg.name].epochs:
            longest[cfg.name] = cfg
    for cfg in longest.values():
        path = rundir / f"{cfg.name}.h5"
        if path.exists() and not force:
            hist, _, _ = load_run(path, with_checkpoint=False)
            if hist.completed_epochs >= cfg.epochs:
                continue
        todo.append((_absolute(cfg).to_dict(), str(path)))
    if todo:
        resume = not force
        if scheduler:
            from dask.distributed import Client  # optional dependency

            with Client(scheduler) as client:
                futs = [client.submit(_run_one, c, p, False, resume, pure=False)
                        for c, p in todo]
                client.gather(futs)
        elif workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as ex:
                list(ex.map(_run_one, [c for c, _ in todo], [p for _, p in todo],
                            [False] * len(todo), [resume] * len(todo)))
        else:
            from tqdm.auto import tqdm

            for c, p in tqdm(todo, desc="runs", disable=not progress or len(todo) < 2):
                _run_one(c, p, progress, resume)
    out = {}
    for cfg in configs:
        hist, _, _ = load_run(rundir / f"{cfg.name}.h5", with_checkpoint=False)
        out[cfg.name] = hist
    return out


# --------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, outdir: Path, fid: str, data: dict) -> Path:
    png = outdir / f"fig{fid}.png"
    fig.tight_layout()
    fig.savefig(png, dpi=130)
    _plt().close(fig)
    atomic_write_text(outdir / f"fig{fid}.json", json.dumps(data, indent=1, default=_jsonable))
    return png


def _jsonable(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(type(o))


def _curves(hist: History) -> dict:
    e = hist.arrays()
    cfg = hist.config
    n_syn = (784 + 1) * cfg["n_hidden"] + (cfg["n_hidden"] + 1) * 10
    n_train = cfg.get("n_train") or (60000 if cfg["dataset"] == "mnist" else 1437)
    upd = e["updates"].reshape(len(e["updates"]), -1).sum(axis=1)
    return {"epoch": list(range(len(e["train_acc"]))),
            "train_acc": e["train_acc"].tolist(), "test_acc": e["test_acc"].tolist(),
            "train_mse": e["train_mse"].tolist(), "test_mse": e["test_mse"].tolist(),
            "phase": e["phase"].tolist(),
            "update_frequency": (upd / (n_syn * n_train)).tolist()}


def _acc_at(hist: History, cfg: TrainConfig, key: str = "test_acc") -> float:
    """Accuracy after ``cfg.epochs`` epochs (a longer stored run is read at that epoch)."""
    vals = hist.epochs[key]
    return float(vals[min(cfg.epochs, len(vals) - 1)])


def _trio(opts: dict) -> list[TrainConfig]:
    return [paper_config("fp", **opts), paper_config("single", **opts),
            paper_config("hybrid", **opts)]


def fig4(fid: str, outdir: Path, opts: dict, runner: Callable) -> Path:
    """4A accuracy, 4B update frequency, 4C MSE vs epoch; 4D weight histories (D-F)."""
    cfgs = _trio(opts)
    hists = runner(cfgs)
    plt = _plt()
    labels = {"fp": "FP", "single": "single (50 states)", "hybrid": "hybrid (k = 10)"}
    data = {}
    if fid in ("4A", "4B", "4C"):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for cfg in cfgs:
            if cfg.name not in hists:
                continue
            c = {k: (v[:cfg.epochs + 1] if isinstance(v, list) else v)
                 for k, v in _curves(hists[cfg.name]).items()}
            data[cfg.cell] = c | {"run": cfg.name}
            ep = c["epoch"]
            if fid == "4A":
                l, = ax.plot(ep[1:], np.array(c["test_acc"][1:]) * 100, label=labels[cfg.cell] + " test")
                ax.plot(ep[1:], np.array(c["train_acc"][1:]) * 100, "--", color=l.get_color(),
                        label=labels[cfg.cell] + " train")
                ax.set_ylabel("accuracy (%)")
            elif fid == "4B":
                ax.plot(ep[1:], c["update_frequency"][1:], "o-", label=labels[cfg.cell])
                ax.set_ylabel("weight updates / (synapse · sample)")
                ax.set_yscale("log")
            else:
                ax.plot(ep, c["train_mse"], "o-", label=labels[cfg.cell])
                ax.set_ylabel("MSE (train)")
                ax.set_yscale("log")
            if cfg.cell == "hybrid" and 1 in c["phase"]:
                ax.axvline(c["phase"].index(1) - 0.5, color="grey", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
        ax.set_title(f"Fig. {fid}")
        return _save(fig, outdir, fid, data)
    # 4D-F: weight histories of the tracked hidden-output synapses
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, cfg, title in zip(axes, cfgs, ("D: FP vs epoch", "E: single", "F: hybrid (G, g)")):
        if cfg.name not in hists:
            continue
        h = hists[cfg.name]
        t = np.asarray(h.track_samples) / (cfg.n_train or 60000 if cfg.dataset == "mnist"
                                           else (cfg.n_train or 1437))
        w = np.asarray(h.track_weights)       # (T, A, n)
        data[cfg.cell] = {"epoch": t, "weights": w, "index": h.track_index}
        for n in range(w.shape[2]):
            if w.shape[1] == 1:
                ax.plot(t, w[:, 0, n], lw=1)
            else:
                l, = ax.plot(t, w[:, :, n].sum(1), lw=1.2)
                ax.plot(t, w[:, 0, n], ls="--", lw=0.8, color=l.get_color())
                ax.plot(t, w[:, 1, n] * 10, ls=":", lw=0.8, color=l.get_color())
        ax.set_title(title + (" (-- G, : g x10)" if w.shape[1] > 1 else ""), fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("weight")
    return _save(fig, outdir, "4D", data)


def fig5f(outdir: Path, opts: dict, runner: Callable) -> Path:
    ks = (1.0, 10.0, 100.0)
    cfgs = {(k, ns): paper_config("hybrid", cell_params={"k": k, "small_states": ns}, **opts)
            for ns in (50, 400) for k in ks}
    hists = runner(list(cfgs.values()))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    data = {}
    for ns in (50, 400):
        err = [100 * (1 - _acc_at(hists[cfgs[(k, ns)].name], cfgs[(k, ns)]))
               if cfgs[(k, ns)].name in hists else float("nan") for k in ks]
        data[f"g_states_{ns}"] = {"k": ks, "test_error_pct": err,
                                  "runs": [cfgs[(k, ns)].name for k in ks]}
        ax.plot(ks, err, "o-", label=f"{ns} g states")
    ax.set_xscale("log")
    ax.set_xlabel("gain ratio k")
    ax.set_ylabel("test error (%)")
    ax.legend()
    ax.set_title("Fig. 5F")
    return _save(fig, outdir, "5F", data)


def fig6(fid: str, outdir: Path, opts: dict, runner: Callable) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    data = {}
    if fid == "6A":
        xs = (10, 20, 50, 100)
        cells = ("single", "hybrid")
        cfgs = {(c, x): paper_config(c, device={"n_states": x}, **opts) for c in cells for x in xs}
        xlabel, xscale = "conductance states per device", "log"
    elif fid == "6B":
        xs = (0.0, 0.34, 1.0, 2.0)
        cells = ("single", "hybrid")
        cfgs = {(c, x): paper_config(c, device={"c2c": x}, **opts) for c in cells for x in xs}
        xlabel, xscale = "cycle-to-cycle variation δ/μ", "linear"
    else:
        xs = (0.0, 0.5, 1.0, 2.0)
        cells = ("hybrid",)
        cfgs = {(c, x): paper_config(c, device={"d2d": x}, **opts) for c in cells for x in xs}
        xlabel, xscale = "device-to-device variation δ/G_min", "linear"
    hists = runner(list(cfgs.values()))
    for c in cells:
        acc = [100 * _acc_at(hists[cfgs[(c, x)].name], cfgs[(c, x)])
               if cfgs[(c, x)].name in hists else float("nan") for x in xs]
        data[c] = {"x": xs, "test_acc_pct": acc, "runs": [cfgs[(c, x)].name for x in xs]}
        ax.plot(xs, acc, "o-", label=c)
    if fid == "6B":
        ax.axvline(DEVICE_C2C, color="grey", ls=":", label="device (0.34)")
    ax.set_xscale(xscale)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    lo = np.nanmin([v for d in data.values() for v in d["test_acc_pct"]] + [100.0])
    ax.set_ylim(min(80.0, 5 * math.floor(lo / 5)), 100)   # robustness on a common scale
    ax.legend()
    ax.set_title(f"Fig. {fid}")
    return _save(fig, outdir, fid, data)


def fig6d(outdir: Path, opts: dict, runner: Callable) -> Path:
    """Summary table of every run stored under ``outdir/runs``."""
    rows = []
    for path in sorted((Path(outdir) / "runs").glob("*.h5")):
        try:
            h, _, _ = load_run(path, with_checkpoint=False)
        except (OSError, ValueError):
            continue
        e = h.arrays()
        c = h.config
        rows.append({"run": path.stem, "cell": c["cell"], "dataset": c["dataset"],
                     "epochs": h.completed_epochs, "seed": c["seed"],
                     "n_states": c["device"].get("n_states"), "c2c": c["device"].get("c2c"),
                     "d2d": c["device"].get("d2d"), "k": c["cell_params"].get("k"),
                     "small_states": c["cell_params"].get("small_states"),
                     "final_train_acc": float(e["train_acc"][-1]),
                     "final_test_acc": float(e["test_acc"][-1]),
                     "best_test_acc": float(e["test_acc"].max())})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 0.4 + 0.28 * max(1, len(rows))))
    ax.axis("off")
    if rows:
        cols = ["run", "epochs", "final_train_acc", "final_test_acc"]
        cell_text = [[r["run"], r["epochs"], f"{100 * r['final_train_acc']:.2f}",
                      f"{100 * r['final_test_acc']:.2f}"] for r in rows]
        tab = ax.table(cellText=cell_text, colLabels=["run", "epochs", "train %", "test %"],
                       loc="center")
        tab.auto_set_font_size(False)
        tab.set_fontsize(7)
    ax.set_title("Fig. 6D summary")
    md = ["| run | epochs | train % | test % | best test % |", "|---|---|---|---|---|"]
    md += [f"| {r['run']} | {r['epochs']} | {100 * r['final_train_acc']:.2f} | "
           f"{100 * r['final_test_acc']:.2f} | {100 * r['best_test_acc']:.2f} |" for r in rows]
    atomic_write_text(Path(outdir) / "fig6D.md", "\n".join(md) + "\n")
    return _save(fig, outdir, "6D", {"rows": rows})


def reproduce(figure: str, outdir: str | Path = "out/reproduce", *, mnist: str | None = None,
              epochs: int | None = None, seeds: int = 1, quick: bool = False,
              workers: int = 1, scheduler: str | None = None, progress: bool = True,
              card: Any = None, only_existing: bool = False, base: dict | None = None,
              tag: str = "", force: bool = False, seed: int | None = None) -> list[Path]:
    """Run the sweeps of one figure (``4A``..``6D`` or ``all``) and write PNG + JSON.

    ``quick`` uses the embedded 8x8 digits (64-64-10 network) instead of MNIST, for smoke
    tests. ``seeds`` > 1 is applied to the 4A-C trio (other figures use seed 0).
    ``only_existing`` plots the stored runs without training the missing ones. ``base``
    replaces :data:`PAPER_BASE` (e.g. another rounding or weight range) and ``tag`` is
    appended to the figure file names (``fig4A<tag>.png``). ``force`` retrains the runs
    from scratch; ``seed`` is the seed of every run (the 4A trio with ``seeds`` > 1 uses
    ``seed .. seed + seeds - 1``).
    """
    outdir = Path(outdir).resolve()
    if outdir.exists() and not outdir.is_dir():
        raise UserInputError(f"output {outdir} exists and is not a directory")
    opts: dict[str, Any] = {}
    if seed is not None:
        opts["seed"] = int(seed)
    if mnist:
        opts["mnist_path"] = str(mnist)
    if epochs is not None:
        opts["epochs"] = int(epochs)
    if quick:
        opts.update(dataset="digits", n_hidden=64, mnist_path=None)
        opts.setdefault("epochs", 10)
    if base is not None:
        opts["base"] = base
    if card is not None:
        from ..network.cells import DeviceSpec

        spec = DeviceSpec.from_card(card)
        opts["device"] = {"n_states": spec.n_states, "c2c": spec.c2c, "beta_p": spec.beta_p,
                          "beta_d": spec.beta_d, "g_ratio": spec.g_ratio}

    def runner(cfgs):
        return run_configs(cfgs, outdir, workers=workers, scheduler=scheduler,
                           progress=progress, only_existing=only_existing, force=force)

    figs = FIGURES if figure.lower() == "all" else (figure.upper(),)
    for fid in figs:
        if fid not in FIGURES:
            raise UserInputError(f"unknown figure {fid!r}; choose from {FIGURES} or 'all'")
    outdir.mkdir(parents=True, exist_ok=True)
    out = []
    for fid in figs:
        if fid in ("4A", "4B", "4C", "4D"):
            if seeds > 1 and fid == "4A":
                s0 = opts.get("seed", 0)
                runner([c for s in range(s0, s0 + seeds) for c in _trio({**opts, "seed": s})])
            out.append(fig4(fid, outdir, opts, runner))
        elif fid == "5F":
            out.append(fig5f(outdir, opts, runner))
        elif fid in ("6A", "6B", "6C"):
            out.append(fig6(fid, outdir, opts, runner))
        else:
            out.append(fig6d(outdir, opts, runner))
    if tag:
        tagged = []
        for png in out:
            for ext in (".png", ".json", ".md"):
                f = png.with_suffix(ext)
                if f.exists():
                    f.replace(f.with_name(f.stem + tag + ext))
            tagged.append(png.with_name(png.stem + tag + ".png"))
        out = tagged
    return out


# --------------------------------------------------------------------------- demo
#: Settings of the main-job demo on the embedded 8x8 digits (64-64-10, 30 epochs).
DEMO_BASE: dict[str, Any] = {
    "dataset": "digits", "n_hidden": 64, "lr": 0.1, "epochs": 30, "seed": 0,
    "w_max": [0.5, 1.0], "cell_params": {"rounding": "stochastic"}, "device": {},
}


def demo(card_or_none: Any = None, outdir: str | Path = "out/network", *,
         epochs: int | None = None, progress: bool = True, mnist: str | None = None,
         force: bool = False) -> dict:
    """Train FP, single and hybrid networks and plot accuracy vs epoch (``force``: replace
    history files of other runs in ``outdir``).

    With no MNIST (default) this runs the embedded 8x8 digits (30 epochs) in well under a
    minute on one core; with ``mnist`` (a directory) it runs the paper's 784-250-10 network
    in setting B (:data:`STOCHASTIC_BASE`, the setting that reproduces the paper's hybrid
    accuracies, 20 epochs, a few minutes). Device parameters come from the model card
    ``card_or_none`` (a :class:`~pyspice_rram.device.card.ModelCard`, or None for the paper
    values: 50 states, δ/μ = 0.34).

    Returns
    -------
    dict
        ``{"fp": {...}, "single": {...}, "hybrid": {...}, "figure": path, "history": dir}``
        with final/best test and final train accuracy (fractions) per cell.
    """
    from ..network.cells import DeviceSpec

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    spec = DeviceSpec.from_card(card_or_none) if card_or_none is not None else \
        DeviceSpec(n_states=50, c2c=0.34)
    base = copy.deepcopy(STOCHASTIC_BASE if mnist else DEMO_BASE)
    base["epochs"] = int(epochs if epochs is not None else (20 if mnist else 30))
    base["device"] = {"n_states": spec.n_states, "beta_p": spec.beta_p, "beta_d": spec.beta_d,
                      "c2c": spec.c2c, "d2d_area": spec.d2d_area, "g_ratio": spec.g_ratio}
    if mnist:
        base["mnist_path"] = str(mnist)
    result: dict[str, Any] = {}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    data = {}
    for cell in ("fp", "single", "hybrid"):
        cfg = paper_config(cell, name=f"demo-{cell}", base=base)
        res = train(cfg, outdir / f"history_{cell}.h5", progress=progress, force=force)
        e = res.history.arrays()
        result[cell] = {"final_test_acc": float(e["test_acc"][-1]),
                        "best_test_acc": float(e["test_acc"].max()),
                        "final_train_acc": float(e["train_acc"][-1]),
                        "epochs": res.history.completed_epochs}
        if cell == "hybrid":
            ph = e["phase"].tolist()
            result[cell]["switch_epoch"] = ph.index(1) if 1 in ph else None
        data[cell] = {"test_acc": e["test_acc"], "train_acc": e["train_acc"],
                      "phase": e["phase"]}
        ep = np.arange(len(e["test_acc"]))
        l, = ax.plot(ep, 100 * e["test_acc"], label=f"{cell} test")
        ax.plot(ep, 100 * e["train_acc"], "--", color=l.get_color(), lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)  (-- train)")
    ax.set_title(f"{'MNIST' if mnist else '8x8 digits'}: FP vs single vs hybrid "
                 f"({spec.n_states:g} states, δ/μ {spec.c2c:g})", fontsize=9)
    ax.legend(fontsize=8)
    data["device"] = base["device"]
    result["figure"] = str(_save(fig, outdir, "_demo_accuracy", data))
    result["history"] = str(outdir)
    return result
