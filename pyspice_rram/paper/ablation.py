"""Ablation studies: lists of training runs described in a TOML file, run and tabulated.

A study file (see ``configs/ablation/``) names runs relative to the two measured settings
of :mod:`.experiments` -- ``base = "A"`` (:data:`~.experiments.PAPER_BASE`, deterministic
rounding) or ``"B"`` (:data:`~.experiments.STOCHASTIC_BASE`, stochastic rounding) -- with
any :class:`~.train.TrainConfig` field as an override::

    title = "One update-to-pulse setting for the single and the hybrid synapse?"

    [[run]]
    label = "single, det., w_max {w_max}"   # {field} is filled from the sweep values
    base = "A"
    cell = "single"
    epochs = 4
    sweep = { w_max = [[0.1, 0.3], [0.15, 0.5]] }   # one run per value (product of keys)

Runs are stored as ``<outdir>/runs/<name>.h5`` (resumed and re-used like the figure sweeps,
locally or on a Dask cluster); :func:`run_study` writes ``<outdir>/<study>.md`` (a table of
every run), ``<study>.json`` (the curves), ``<study>.png`` (final test accuracy per run) and,
for studies of up to 12 runs, ``<study>_curves.png`` (accuracy vs epoch).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import tomllib
from pathlib import Path
from typing import Any

from ..network.cells import ConfigError
from ..network.train import TrainConfig
from .experiments import PAPER_BASE, STOCHASTIC_BASE, _plt, paper_config, run_configs
from ..errors import UserInputError

BASES = {"A": PAPER_BASE, "B": STOCHASTIC_BASE}


def load_study(path: str | Path, opts: dict | None = None) -> tuple[str, list[tuple[str, TrainConfig]]]:
    """``(title, [(label, config), ...])`` of a study file; ``opts`` override every run
    (e.g. ``{"mnist_path": ...}``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study file {path} not found")
    try:
        study = tomllib.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise UserInputError(f"{path}: {err}") from None
    entries = study.get("run")
    if not entries or not isinstance(entries, list):
        raise UserInputError(f"{path}: no [[run]] entries")
    runs = []
    for n, entry in enumerate(entries, 1):
        entry = copy.deepcopy(entry)
        where = f"{path}: run {n}"
        try:
            label = entry.pop("label")
            cell = entry.pop("cell")
            base_key = entry.pop("base", "A")
        except KeyError as err:
            raise UserInputError(f"{where} needs 'label', 'cell' and base 'A' or 'B' "
                             f"(missing {err})") from None
        if not isinstance(label, str):
            raise ConfigError("label", label, "must be a string", where)
        if base_key not in BASES:
            raise ConfigError("base", base_key, "choose base 'A' or 'B'", where)
        base = BASES[base_key]
        sweep = entry.pop("sweep", {})
        if not isinstance(sweep, dict) or not all(isinstance(v, list) for v in sweep.values()):
            raise ConfigError("sweep", sweep, "must be a table of lists of values", where)
        keys = list(sweep)
        for values in itertools.product(*(sweep[k] for k in keys)) if keys else [()]:
            changes = {**copy.deepcopy(entry), **dict(zip(keys, values)), **(opts or {})}
            fill = {k: _fmt(v) for k, v in {"cell": cell, **changes}.items()}
            try:
                text = label.format(**fill)
            except KeyError as err:
                raise ConfigError("label", label, f"unknown placeholder {{{err.args[0]}}}; "
                                  f"known: {sorted(fill)}", where) from None
            except (IndexError, ValueError) as err:
                raise ConfigError("label", label, f"bad placeholder ({err}); use {{field}} "
                                  f"with a field of {sorted(fill)}", where) from None
            runs.append((text, paper_config(cell, base=base, where=where, **changes)))
    return study.get("title", path.stem), runs


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fmt(v: Any) -> str:
    if isinstance(v, list):
        return "/".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return f"{v:g}" if isinstance(v, float) else str(v)


def run_study(path: str | Path, outdir: str | Path, *, mnist: str | None = None,
              workers: int = 1, scheduler: str | None = None, progress: bool = True,
              only_existing: bool = False, force: bool = False,
              seed: int | None = None, overrides: dict | None = None) -> dict:
    """Run every run of a study (missing or incomplete ones only) and write the report.

    ``force`` retrains every run from scratch; ``seed`` overrides the seed of every run,
    ``overrides`` any config fields of every run (e.g. the cost study's ``--quick``).
    Relative ``outdir`` / ``mnist`` are resolved here, before anything goes to workers.
    Returns ``{"title", "rows": [{label, run, epochs, test, best_test, train, switch}]}``
    with accuracies in percent (final epoch, best epoch).
    """
    outdir = Path(outdir).resolve()
    opts: dict[str, Any] = {}
    if mnist:
        opts["mnist_path"] = str(mnist)
    if seed is not None:
        opts["seed"] = seed
    opts.update(overrides or {})
    title, runs = load_study(path, opts or None)
    if outdir.exists() and not outdir.is_dir():
        raise UserInputError(f"output {outdir} exists and is not a directory")
    hists = run_configs([c for _, c in runs], outdir, workers=workers, scheduler=scheduler,
                        progress=progress, only_existing=only_existing, force=force)
    rows, curves = [], {}
    for label, cfg in runs:
        h = hists.get(cfg.name)
        if h is None:
            rows.append({"label": label, "run": cfg.name, "epochs": 0})
            continue
        e = h.arrays()
        n = min(cfg.epochs, h.completed_epochs)     # a row reads its own epoch count
        ph = e["phase"][:n + 1].tolist()
        rows.append({"label": label, "run": cfg.name, "epochs": n,
                     "test": 100 * float(e["test_acc"][n]),
                     "best_test": 100 * float(e["test_acc"][1:n + 1].max()) if n else
                     100 * float(e["test_acc"][0]),
                     "train": 100 * float(e["train_acc"][n]),
                     "switch": ph.index(1) - 1 if 1 in ph else None})
        curves[cfg.name] = {"label": label, "config": cfg.to_dict(),
                            "test_acc": e["test_acc"].tolist(),
                            "train_acc": e["train_acc"].tolist(), "phase": ph}
    stem = outdir / Path(path).stem
    lines = [f"# {title}", "", f"Study `{Path(path).name}`; run files in `runs/`.", "",
             "| run | test % (final / best) | train % | epochs | switch after | run file |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if not r["epochs"]:
            lines.append(f"| {r['label']} | not run | | | | |")
            continue
        sw = "-" if r["switch"] is None else str(r["switch"])
        lines.append(f"| {r['label']} | {r['test']:.2f} / {r['best_test']:.2f} | "
                     f"{r['train']:.2f} | {r['epochs']} | {sw} | `{r['run']}.h5` |")
    _write_atomic(stem.with_suffix(".md"), "\n".join(lines) + "\n")
    _write_atomic(stem.with_suffix(".json"), json.dumps({"title": title, "rows": rows,
                                                         "curves": curves}, indent=1))
    done = [r for r in rows if r["epochs"]]
    if done:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(7, 0.28 * len(done) + 1.2))
        y = range(len(done))
        ax.barh(y, [r["test"] for r in done], color="tab:blue")
        ax.set_yticks(list(y), [r["label"] for r in done], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("final test accuracy (%)")
        ax.set_xlim(0, 100)
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(stem.with_suffix(".png"), dpi=130)
        plt.close(fig)
    if 0 < len(curves) <= 12:       # a few runs: accuracy vs epoch as well
        plt = _plt()
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in done:
            c = curves[r["run"]]
            n = r["epochs"]
            line, = ax.plot(range(n + 1), [100 * v for v in c["test_acc"][:n + 1]],
                            label=f"{r['label']} (test)")
            ax.plot(range(n + 1), [100 * v for v in c["train_acc"][:n + 1]], ls=":",
                    color=line.get_color())
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%), dotted: training set")
        lo = min(r["test"] for r in done)
        ax.set_ylim(max(0.0, 5 * math.floor((lo - 5) / 5)), 100)
        ax.legend(fontsize=7)
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(stem.with_name(stem.name + "_curves.png"), dpi=130)
        plt.close(fig)
    return {"title": title, "rows": rows}
