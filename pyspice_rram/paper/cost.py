"""The cost of training: ledgers of run files priced with per-event costs, and the comparison
of the synapse schemes (issue 13).

:func:`run_ledger` reads a run file's event counts (:mod:`pyspice_rram.network.ledger`) and
prices them with :class:`~pyspice_rram.circuit.energy.EventCosts` -- a file given by the user,
or the costs shipped for the fitted reference card (``pyspice_rram/data/event_costs/``, made
by ``pyspice-rram xbar energy``; see that directory's README). ``pyspice-rram cost RUN``
prints it; :func:`cost_study` runs a study of :mod:`.ablation` and tabulates accuracy against
time and energy per training sample.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..circuit.energy import EventCosts
from ..circuit.safeio import atomic_write_text
from ..errors import UserInputError
from ..network.circuit_spec import CircuitSpec
from ..network.history import load_run
from ..network.ledger import epoch_events, event_prices, format_ledger, price

__all__ = ["DEFAULT_COSTS", "QUICK", "cost_study", "default_costs_path", "format_ledger",
           "load_costs", "run_ledger", "save_ledger_json"]

#: the shipped per-event costs (package data)
DEFAULT_COSTS = Path(__file__).resolve().parents[1] / "data" / "event_costs"


def default_costs_path(cfg: dict) -> Path:
    """The shipped event-cost file of the run's tile size (``<rows>x<cols>.json``)."""
    c = CircuitSpec.from_dict(cfg.get("circuit") or {})
    return DEFAULT_COSTS / f"motiox-reference_{c.tile_rows}x{c.tile_cols}.json"


def load_costs(cfg: dict, costs: str | Path | None = None) -> tuple[Any, str, list[str]]:
    """``(EventCosts, source, warnings)`` for a run: the file ``costs``, else the shipped
    costs of the fitted reference card for the run's tile size. Warnings name every setting
    where the costs' circuit differs from the run's ``[circuit]``."""
    if costs is None:
        path = default_costs_path(cfg)
        if not path.is_file():
            have = sorted(p.name for p in DEFAULT_COSTS.glob("*.json"))
            c = CircuitSpec.from_dict(cfg.get("circuit") or {})
            raise UserInputError(
                f"no shipped event costs for tiles of {c.tile_rows}x{c.tile_cols} (shipped: "
                f"{have}); compute them with `pyspice-rram xbar energy --tile "
                f"{c.tile_rows} --tile-cols {c.tile_cols} -o costs.json` and pass "
                "--costs costs.json")
        source = f"shipped {path.name} (pyspice_rram/data/event_costs)"
    else:
        path = Path(costs)
        source = str(path)
    ec = EventCosts.load(path)
    warn = []
    c = CircuitSpec.from_dict(cfg.get("circuit") or {})
    s = ec.settings
    for key in ("tile_rows", "tile_cols", "r_wire_row", "r_wire_col", "r_driver", "r_sense"):
        mine = getattr(c, key)
        if key in s and float(s[key]) != float(mine):
            warn.append(f"event costs at {key} = {s[key]}, the run's circuit has {mine}")
    if getattr(ec, "refresh", None) is None:
        warn.append("the event costs have no refresh event (written before it existed): a "
                    "refresh is priced as two full tile update cycles, an upper bound of its "
                    "energy (recompute them with `pyspice-rram xbar energy`)")
    card = cfg.get("card")
    if card is None:
        warn.append(f"the run has no model card: the costs are those of card "
                    f"{s.get('card')!r}")
    return ec, source, warn


def run_ledger(path: str | Path, costs: str | Path | None = None) -> dict[str, Any]:
    """The ledger of a run file as plain data: config name and cell, the per-event prices
    and their source, warnings, and per epoch the counts, time and energy (total, per
    sample, by event)."""
    cfg, epochs = epoch_events(path)
    ec, source, warn = load_costs(cfg, costs)
    prices = event_prices(ec, cfg)
    priced = price(cfg, epochs, prices)
    phase = [int(v) for v in _history_of(path).epochs["phase"]]
    rows = []
    for (ep, n, layers), c in zip(epochs, priced):
        rows.append({
            "epoch": ep, "samples": n,
            "phase_switch": int(ep >= 2 and phase[ep] != phase[ep - 1]),
            "layers": [{"tiles": L.tiles, "arrays": L.arrays,
                        "reads_forward": L.reads_forward,
                        "reads_transposed": L.reads_transposed,
                        "update_cycles": L.update_cycles, "pulses": L.pulses,
                        "pulses_per_device": (sum(L.pulses) / L.devices / L.arrays
                                              if L.devices else math.nan),
                        "refreshes": L.refreshes, "arbitration_steps": L.arbitration}
                       for L in layers],
            "update_cycles_per_sample": (sum(sum(L.update_cycles) for L in layers) / n
                                         if n else math.nan),
            "energy_J": c.energy_J, "time_s": c.time_s,
            "total_energy_J": c.total_energy_J, "total_time_s": c.total_time_s,
            "energy_per_sample_J": c.energy_per_sample_J,
            "time_per_sample_s": c.time_per_sample_s})
    return {"run": str(path), "name": cfg.get("name"), "cell": cfg.get("cell"),
            "periphery": cfg.get("periphery"), "prices": prices, "source": source,
            "periphery_sources": ec.periphery.sources, "settings": ec.settings,
            "refresh_event": ec.refresh is not None,
            "warnings": warn, "epochs": rows}


def save_ledger_json(led: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, json.dumps(led, indent=1, default=float) + "\n")
    return path


#: overrides of ``--quick``: every run of a study on the embedded 8x8 digits, 1 epoch, 32
#: hidden neurons (a smoke test of the whole command, seconds per run)
QUICK = {"dataset": "digits", "epochs": 1, "n_hidden": 32}


def _run_totals(led: dict[str, Any]) -> dict[str, float]:
    """Totals over the counted epochs of a ledger: energy and time per training sample,
    update cycles per sample, energy by event per sample, and the energy per sample with
    refreshes at 0 J and at their upper bound (two full tile update cycles)."""
    rows = led["epochs"]
    n = sum(r["samples"] for r in rows)
    if not n:
        return {"energy_per_sample_J": math.nan, "time_per_sample_s": math.nan,
                "update_cycles_per_sample": math.nan, "samples": 0}
    cyc = sum(r["update_cycles_per_sample"] * r["samples"] for r in rows)
    by = {k: sum(r["energy_J"][k] for r in rows) / n for k in rows[0]["energy_J"]}
    by_t = {k: sum(r["time_s"][k] for r in rows) / n for k in rows[0]["time_s"]}
    refresh = sum(sum(sum(L["refreshes"]) for L in r["layers"]) for r in rows)
    no_refresh = sum(v for k, v in by.items() if k != "refresh")
    return {"energy_per_sample_J": sum(r["total_energy_J"] for r in rows) / n,
            "time_per_sample_s": sum(r["total_time_s"] for r in rows) / n,
            "update_cycles_per_sample": cyc / n, "refreshes_per_sample": refresh / n,
            "samples": n, "energy_per_sample_by_event_J": by,
            "time_per_sample_by_event_s": by_t,
            "energy_per_sample_no_refresh_J": no_refresh,
            "energy_per_sample_refresh_bound_J":
                no_refresh + refresh / n * 2 * led["prices"]["update_cycle"][0]}


def _read_path(cfg: dict) -> str:
    p = cfg.get("periphery") or {}
    if not p.get("adc_bits") and not p.get("dac_bits"):
        return "ideal"
    parts = []
    if p.get("dac_bits"):
        parts.append(f"DAC {p['dac_bits']} b")
    if p.get("adc_bits"):
        parts.append(f"ADC {p['adc_bits']} b ({p.get('adc_range', 'max')})")
    return ", ".join(parts)


def cost_study(study: str | Path, outdir: str | Path, *, costs: str | Path | None = None,
               quick: bool = False, **run_options: Any) -> dict[str, Any]:
    """Run a study (:func:`.ablation.run_study`: missing runs trained, stored ones re-used)
    and write the cost comparison: ``<study>_cost.md`` (accuracy, update cycles, time and
    energy per training sample of every run with its run file and read path; accuracy vs
    ADC bits per cell), ``<study>_cost.json`` (the same and every run's ledger) and
    ``<study>_cost.png`` (test accuracy vs energy per training sample).

    ``quick`` trains every run on the 8x8 digits for 1 epoch (:data:`QUICK`);
    ``run_options`` go to :func:`.ablation.run_study` (``mnist``, ``workers``,
    ``scheduler``, ``progress``, ``only_existing``, ``force``, ``seed``).
    """
    from .ablation import run_study

    outdir = Path(outdir).resolve()
    res = run_study(study, outdir, overrides=QUICK if quick else None, **run_options)
    rows = []
    ledgers = {}
    source = None
    for r in res["rows"]:
        if not r["epochs"]:
            continue
        path = outdir / "runs" / f"{r['run']}.h5"
        led = run_ledger(path, costs)
        source = led["source"]
        ledgers[r["run"]] = led
        cfg = json.loads(json.dumps(_config_of(path)))
        rows.append({**r, "cell": cfg["cell"], "read_path": _read_path(cfg),
                     "adc_bits": (cfg.get("periphery") or {}).get("adc_bits"),
                     **_run_totals(led)})
    stem = outdir / (Path(study).stem + "_cost")
    lines = [f"# {res['title']}", "",
             f"Study `{Path(study).name}`{' (--quick: 8x8 digits, 1 epoch)' if quick else ''}; "
             f"run files in `runs/`; per-event costs: {source}. Energy and time per training "
             "sample: totals over the run's epochs / samples (docs/cost.md).", "",
             "| run | cell | read path | test % | update cycles / sample | refreshes / sample "
             "| time / sample (s) | of which cycles / refresh (s) | energy / sample (J) "
             "| of which cycles / refresh / reads (J) | energy, refresh bound (J) | run file |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def g(v: float) -> str:
        return f"{v:.3g}" if math.isfinite(v) else "n/a"

    for r in rows:
        e = r.get("energy_per_sample_by_event_J") or {}
        t = r.get("time_per_sample_by_event_s") or {}
        reads = e.get("read_forward", math.nan) + e.get("read_transposed", math.nan)
        lines.append(f"| {r['label']} | {r['cell']} | {r['read_path']} | {r['test']:.2f} | "
                     f"{r['update_cycles_per_sample']:.3f} | "
                     f"{r.get('refreshes_per_sample', math.nan):.3g} | "
                     f"{g(r['time_per_sample_s'])} | "
                     f"{g(t.get('update_cycles', math.nan))} / {g(t.get('refresh', math.nan))} | "
                     f"{g(r['energy_per_sample_J'])} | "
                     f"{g(e.get('update_cycles', math.nan))} / {g(e.get('refresh', math.nan))} / "
                     f"{g(reads)} | {g(r.get('energy_per_sample_refresh_bound_J', math.nan))} | "
                     f"`runs/{r['run']}.h5` |")
    ref = ""
    if rows:
        led0 = ledgers[rows[0]["run"]]
        e_ref, t_ref = led0["prices"]["refresh"]
        ref = (f"the costs' refresh event, {g(e_ref)} J and {g(t_ref)} s per pair (one-pair "
               "transient: an estimate)" if led0["refresh_event"] else
               f"two full tile update cycles, {g(e_ref)} J and {g(t_ref)} s per pair (the "
               "costs have no refresh event)")
    lines += ["", "FP layers are counted, not priced (n/a). A pair refresh (reset and re-program, "
              f"sequential) is priced with {ref}; \"energy, refresh bound\" prices it as two "
              "full tile update cycles, an upper bound of its energy (docs/cost.md)."]
    cells = sorted({r["cell"] for r in rows if r["adc_bits"]})
    if cells:
        bits = sorted({r["adc_bits"] for r in rows if r["adc_bits"]})
        lines += ["", "## Test accuracy (%) vs ADC bits", "",
                  "| cell | " + " | ".join(f"{b} bits" for b in bits) + " | ideal |",
                  "|---|" + "---|" * (len(bits) + 1)]
        for c in cells:
            acc = {}
            for r in rows:
                if r["cell"] == c:
                    acc.setdefault(r["adc_bits"], f"{r['test']:.2f}")
            lines.append(f"| {c} | " + " | ".join(acc.get(b, "-") for b in bits)
                         + f" | {acc.get(None, '-')} |")
    atomic_write_text(stem.with_suffix(".md"), "\n".join(lines) + "\n")
    atomic_write_text(stem.with_suffix(".json"), json.dumps(
        {"title": res["title"], "source": source, "rows": rows, "ledgers": ledgers},
        indent=1, default=float) + "\n")
    if any(math.isfinite(r["energy_per_sample_J"]) for r in rows):
        plot_cost_study(rows, stem.with_suffix(".png"), res["title"])
    return {"title": res["title"], "rows": rows, "paths": [str(stem.with_suffix(s)) for s in
                                                            (".md", ".json", ".png")]}


def plot_cost_study(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Figure of a cost study: (left) test accuracy vs energy per training sample of the runs
    with an ideal read path, the dot with refreshes priced by the costs, the line from
    refreshes at 0 J (update cycles and reads only) to refreshes at their upper bound (two
    full tile update cycles, the bar): the true cost lies on it; (right) test accuracy vs ADC
    bits per cell, the ideal read path dashed."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from .experiments import _plt

    plt = _plt()
    adc = [r for r in rows if r.get("adc_bits")]
    fig, axes = plt.subplots(1, 2 if adc else 1, figsize=(11 if adc else 6.5, 4.6),
                             squeeze=False)
    ax = axes[0, 0]
    ideal = [r for r in rows if r.get("read_path") == "ideal"
             and math.isfinite(r["energy_per_sample_J"])]
    for k, r in enumerate(ideal):
        lo, mid, hi = (1e3 * r[k] for k in (               # mJ
            "energy_per_sample_no_refresh_J", "energy_per_sample_J",
            "energy_per_sample_refresh_bound_J"))
        c = f"C{k % 10}"
        if math.isfinite(hi):
            ax.plot([lo, hi], [r["test"], r["test"]], "-", color=c, lw=1.2)
            ax.plot([hi], [r["test"]], "|", color=c, ms=10, mew=2)
        ax.plot([mid], [r["test"]], "o", color=c, label=r["label"])
    for r in rows:
        if r.get("cell") == "fp" and r.get("read_path") == "ideal":
            ax.axhline(r["test"], color="0.4", ls=":", lw=1,
                       label=f"{r['label']} (not priced)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("energy per training sample (mJ)\n"
                  "dot: refresh priced; line: refresh 0 ... upper bound (bar)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3, which="both")
    ax.set_title("synapse schemes, ideal read path", fontsize=9)
    if adc:
        ax = axes[0, 1]
        for k, cell in enumerate(sorted({r["cell"] for r in adc})):
            pts = sorted((r["adc_bits"], r["test"]) for r in adc if r["cell"] == cell)
            c = f"C{k % 10}"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=c, label=cell)
            ref = [r["test"] for r in ideal if r["cell"] == cell]
            if ref:
                ax.axhline(ref[0], color=c, ls="--", lw=1, label=f"{cell}, ideal reads")
        ax.set_xlabel("ADC bits (calibrated range)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_xticks(sorted({r["adc_bits"] for r in adc}))
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
        ax.set_title("accuracy vs ADC resolution", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return Path(path)


def _history_of(path: str | Path) -> Any:
    return load_run(path, with_checkpoint=False)[0]


def _config_of(path: Path) -> dict:
    return _history_of(path).config
