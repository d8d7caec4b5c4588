"""The main job: the whole chain on the embedded default data, one step after another.

``pyspice-rram run -o out/`` performs

1. **fit** — fit the shipped (synthetic) Mo/TiOx reference data set; write the model card,
   the generated ``.va``/``.lib`` and the fit report (:func:`pyspice_rram.calibration.fit_dataset`);
2. **crossbar** — build tiles of a small weight matrix with the fitted card, solve them in
   ngspice and the MNA solver, report the VMM error against the ideal product
   (:func:`pyspice_rram.paper.crossbar_step.demo`);
3. **training** — train floating-point, single-pair and hybrid networks on scikit-learn's
   8x8 digits (or, when ``--mnist``/``PYSPICE_RRAM_MNIST`` is given, the paper's 784-250-10
   network on MNIST for 20 epochs with stochastic pulse rounding, ~3 min) with the fitted
   device parameters (:func:`pyspice_rram.paper.experiments.demo`);
4. **surrogate** — train through the crossbar surrogate and check a few test images through
   ideal VMM, surrogate and ngspice (:func:`pyspice_rram.paper.surrogate_step.demo`).

Each step is a plain function of the previous step's output, callable alone. ``--steps``
runs a subset; without ``fit`` the later steps use ``--card``, else the card an earlier fit
wrote into the same output directory (``OUTPUT/fit/card.json``), else the fitted card beside
the data set (the embedded set ships one); the card used is printed. A summary
(``summary.json``) with the card, every step's numbers, timings and output paths is written
at the end.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .device.card import ModelCard
from .errors import UserInputError

#: The embedded default data set (package data; ``calibration/motiox-reference`` in a checkout
#: links to it). Its fitted card ``card.json`` lies beside the data.
REFERENCE_DATASET = Path(__file__).resolve().parent / "data" / "motiox-reference"


@dataclass
class StepResult:
    """Outcome of one step of the chain: its numbers, wall time (s) and files."""

    name: str
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)


def step_fit(dataset: Path, outdir: Path, progress: bool = True) -> tuple[ModelCard, dict]:
    """Fit ``dataset`` and return the fitted card and a summary of the fit."""
    from .calibration import fit_dataset

    result = fit_dataset(dataset, outdir, progress=progress)
    return result.card, result.summary()


def chain_card(outdir: Path, dataset: Path, card: str | Path | None = None) -> tuple[ModelCard, Path]:
    """The card the steps after ``fit`` use when ``fit`` is not among the steps.

    In this order: ``card`` when given; the card a previous ``fit`` step wrote into the same
    output directory (``outdir/fit/card.json``); the fitted card shipped beside the data set
    (``dataset/card.json``, e.g. the embedded reference data set's). Returns the card and its
    path.

    Raises
    ------
    UserInputError
        If ``card`` does not exist, or none of the other two does (naming both paths).
    """
    if card is not None:
        path = Path(card)
        if not path.is_file():
            raise UserInputError(f"--card {path}: no such file")
        return ModelCard.load(path), path
    candidates = [outdir / "fit" / "card.json", dataset / "card.json"]
    for path in candidates:
        if path.is_file():
            return ModelCard.load(path), path
    raise UserInputError(
        f"no fitted card for the steps after fit: neither {candidates[0]} (written by the fit "
        f"step into this output directory) nor {candidates[1]} (a card beside the data set) "
        "exists", hint="add 'fit' to --steps, or give --card CARD.json")


def step_crossbar(card: ModelCard, outdir: Path, progress: bool = True) -> dict:
    """Solve crossbar tiles of the fitted card in ngspice and MNA; return the errors."""
    from .paper.crossbar_step import demo

    return demo(card, outdir, progress=progress)


def step_training(card: ModelCard, outdir: Path, mnist: str | None, progress: bool = True,
                  force: bool = False) -> dict:
    """Train FP, single and hybrid networks with the fitted card's device parameters."""
    from .paper.experiments import demo

    return demo(card, outdir, mnist=mnist, progress=progress, force=force)


def step_surrogate(card: ModelCard, outdir: Path, progress: bool = True,
                   force: bool = False) -> dict:
    """Train through the tile surrogate and check inference against ngspice (``force``: an
    earlier surrogate data set or run in ``outdir`` is replaced, not continued)."""
    from .paper.surrogate_step import demo

    return demo(card, outdir, progress=progress, epochs=15, force=force)


def run_chain(outdir: str | Path, dataset: str | Path = REFERENCE_DATASET, *,
              mnist: str | None = None, steps: tuple[str, ...] = ("fit", "crossbar", "training",
                                                                   "surrogate"),
              card: str | Path | None = None, progress: bool = True,
              echo: Callable[[str], None] = print, force: bool = False) -> list[StepResult]:
    """Run the chain ``fit -> crossbar -> training -> surrogate`` into ``outdir``.

    Without ``fit`` among ``steps`` the later steps use the card :func:`chain_card` finds
    (``card``, else ``outdir/fit/card.json``, else ``dataset/card.json``); its path is echoed
    and recorded in ``summary.json`` under ``"card"``. ``card`` together with ``fit`` is an
    error (the fit's card would be ignored).

    A step whose output directory (``outdir/<step>``) already exists is refused unless
    ``force``: a :class:`~pyspice_rram.errors.UserInputError` naming it (``summary.json``
    describes the last run and is replaced).
    """
    outdir = Path(outdir)
    check_output_dir(outdir, steps, force)
    outdir.mkdir(parents=True, exist_ok=True)
    dataset = Path(dataset)
    results: list[StepResult] = []

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        echo(f"== {name} ==")
        t0 = time.perf_counter()
        value = fn()
        summary = value[1] if isinstance(value, tuple) else value
        results.append(StepResult(name, time.perf_counter() - t0, summary))
        echo(f"   {name}: {time.perf_counter() - t0:.1f} s  {headline(name, summary)}")
        return value

    if "fit" in steps:
        if card is not None:
            raise UserInputError(f"--card {card} and the fit step exclude each other (the "
                                 "steps after fit use the fitted card)")
        the_card, _ = timed("fit", lambda: step_fit(dataset, outdir / "fit", progress))
        card_path = outdir / "fit" / "card.json"
    else:
        the_card, card_path = chain_card(outdir, dataset, card)
        echo(f"card: {card_path}")
    if "crossbar" in steps:
        timed("crossbar", lambda: step_crossbar(the_card, outdir / "crossbar", progress))
    if "training" in steps:
        timed("training", lambda: step_training(the_card, outdir / "training", mnist, progress,
                                                force))
    if "surrogate" in steps:
        timed("surrogate", lambda: step_surrogate(the_card, outdir / "surrogate", progress,
                                                  force))

    from .circuit.safeio import atomic_write_text

    summary: dict[str, Any] = {"card": str(card_path)}
    summary.update({r.name: {"seconds": round(r.seconds, 2), **_jsonable(r.summary)}
                    for r in results})
    atomic_write_text(outdir / "summary.json", json.dumps(summary, indent=2) + "\n")
    echo(f"summary written to {outdir / 'summary.json'}")
    return results


def check_output_dir(outdir: Path, steps: tuple[str, ...], force: bool) -> None:
    """Refuse an ``outdir`` holding the output directory of one of ``steps`` (a result of
    an earlier run) unless ``force``, and an ``outdir`` that is a file."""
    if outdir.exists() and not outdir.is_dir():
        raise UserInputError(f"-o/--output {outdir} is a file; give a directory")
    found = [f"{name}/" for name in steps if (outdir / name).exists()]
    if found and not force:
        raise UserInputError(f"-o/--output {outdir} already holds results of the main job "
                             f"({', '.join(found)}); not overwritten",
                             hint="give another -o/--output, or --force to overwrite them")


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def headline(name: str, summary: dict) -> str:
    """One line with the numbers a person looks at first after each step."""
    parts: list[str] = []
    if name == "fit":
        n, r2 = summary.get("n_states"), summary.get("r2_median")
        c2c = _get(summary, "parameters", "c2c_sigma", "value")
        if n is not None:
            parts.append(f"{n:.1f} states")
        if c2c is not None:
            parts.append(f"delta/mu {c2c:.3f}")
        if r2 is not None:
            parts.append(f"median R^2 {r2:.4f}")
        if summary.get("verdict"):
            parts.append(f"verdict {summary['verdict']} ({summary.get('family', '')})")
    elif name == "crossbar":
        for d in ("forward", "transposed"):
            e = _get(summary, d, "vmm_error_vs_ideal_circuit", "max_rel")
            m = _get(summary, d, "ngspice_vs_mna_max_rel_per_current")
            if e is not None:
                parts.append(f"{d}: max VMM error {100 * e:.2f} % (ngspice vs MNA {m:.1e})")
    elif name == "training":
        for key, value in summary.items():
            acc = value.get("final_test_acc") if isinstance(value, dict) else None
            if isinstance(acc, (int, float)):
                parts.append(f"{key} test {100 * acc:.1f} %")
    elif name == "surrogate":
        acc = _get(summary, "check", "accuracy")
        if isinstance(acc, dict):
            parts.append("check accuracy " + ", ".join(
                f"{k} {100 * v:.1f} %" for k, v in acc.items() if isinstance(v, (int, float))))
    return "; ".join(parts)


def _jsonable(obj: Any) -> Any:
    """Convert NumPy scalars/arrays and paths inside ``obj`` to JSON types."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _cmd_run(args: argparse.Namespace) -> int:
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    unknown = set(steps) - {"fit", "crossbar", "training", "surrogate"}
    if unknown:
        raise UserInputError(f"unknown steps {sorted(unknown)}")
    run_chain(args.output, args.dataset, mnist=args.mnist, steps=steps, card=args.card,
              progress=not args.no_progress, force=args.force)
    return 0


def register(subparsers) -> None:
    """Add the ``run`` subcommand (the main job)."""
    from .circuit.cli import HelpFormatter

    p = subparsers.add_parser("run", help="main job: fit -> crossbar -> training -> surrogate",
                              description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("-o", "--output", default="out", help="output directory")
    p.add_argument("--dataset", default=str(REFERENCE_DATASET),
                   help="device data set directory (the shipped synthetic reference)")
    p.add_argument("--mnist", default=None,
                   help="MNIST directory (IDX .gz files); else $PYSPICE_RRAM_MNIST, else 8x8 digits")
    p.add_argument("--steps", default="fit,crossbar,training,surrogate",
                   help="comma-separated subset of fit,crossbar,training,surrogate")
    p.add_argument("--card", default=None,
                   help="model card JSON for the steps after fit when fit is not run (default: "
                        "OUTPUT/fit/card.json, else the card beside the data set)")
    p.add_argument("-q", "--quiet", "--no-progress", dest="no_progress", action="store_true",
                   help="no progress bars (same flag as the other commands)")
    p.add_argument("--force", action="store_true",
                   help="overwrite the results of an earlier run in -o/--output")
    p.set_defaults(func=_cmd_run)
