"""The bad-input table of issue 12, one parametrised case per line, over every subcommand.

Each case builds its inputs in ``tmp_path``, puts an EARLIER OUTPUT in the output location
(a real result of the same kind where there is one: a run file, a results file, a card,
a surrogate), runs the CLI in this process (``pyspice_rram.cli.main``; a subprocess only
where the environment of a real process is under test) and asserts

* the exit status (1: user error, 2: usage error);
* that stderr names the offending file / field / value (the case's ``words``);
* that no traceback is printed (one ``error:`` line, optionally a ``hint:`` line);
* that the output location is byte-identical afterwards (no file changed, added or
  removed) -- most cases pass ``--force``, so that only the bad input can stop them.

Rows of the issue's table and the cases that cover them are listed in ``ROWS``; the rows
that need a signal or a long job are covered elsewhere (named there).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from pyspice_rram.cli import main
from common_inputs import study, tiny

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------- inputs
SWEEP_HEAD = "device,diameter (nm),time (s),voltage (V),current (A)"
V_SWEEP = np.round(np.r_[np.arange(0, 1.01, 0.05), np.arange(0.95, -0.01, -0.05)], 2)


def sweep_rows(cur=None, diam="100") -> list[str]:
    cur = V_SWEEP * 1e-6 if cur is None else cur
    return [f"d1,{diam},{(k + 1) * 1e-3:g},{v:.2f},{i:.6g}"
            for k, (v, i) in enumerate(zip(V_SWEEP, cur))]


def sweep_set(d: Path, rows: list[str], encoding: str = "utf-8") -> Path:
    """A data set directory with one DC sweep file ``iv.csv``."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "iv.csv").write_text(SWEEP_HEAD + "\n" + "\n".join(rows) + "\n", encoding=encoding)
    (d / "recipe.toml").write_text('read_voltage = 0.2\n[[sweeps]]\nfile = "iv.csv"\n')
    return d


def shuffled() -> list[str]:
    r = sweep_rows()
    return [r[k] for k in np.random.default_rng(1).permutation(len(r))]


def bom_with_bad_diameter() -> list[str]:
    r = sweep_rows()
    r[4] = r[4].replace("d1,100,", "d1,-100,")
    return r


def card_without(path: Path, key: str, value=None) -> Path:
    """The reference card's JSON with ``key`` removed (``value`` None) or set to ``value``."""
    from pyspice_rram.device.card import ModelCard

    ModelCard.reference().save(path)
    d = json.loads(path.read_text())
    if value is None:
        del d[key]
    else:
        d[key] = value
    path.write_text(json.dumps(d).replace('"__nan__"', "NaN"))
    return path


def truncated(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 3])
    return dst


# ---------------------------------------------------------------------------- earlier outputs
@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Real results of every kind, made once: copied into each case's output location."""
    d = tmp_path_factory.mktemp("real")
    cfg = d / "hybrid.toml"
    cfg.write_text(tiny(cell="hybrid"))
    assert main(["train", str(cfg), "-o", str(d / "run.h5"), "-q"]) == 0
    np.save(d / "W.npy", np.random.default_rng(1).normal(size=(24, 20)))
    assert main(["xbar", "solve", "--weights", str(d / "W.npy"), "--tile", "8", "--n-vectors",
                 "2", "--solver", "mna", "-q", "-o", str(d / "xbar.h5")]) == 0
    from pyspice_rram.device.card import ModelCard

    ModelCard.reference().save(d / "card.json")
    shutil.copy(ROOT / "pyspice_rram" / "data" / "surrogate" / "default.json",
                d / "surrogate.json")
    return d


@dataclass
class Case:
    """One line of the table: ``make(tmp, real, out) -> argv`` with ``out`` the output
    location (filled with earlier outputs by ``earlier``), the exit status and the words
    stderr must contain (``{tmp}`` / ``{out}`` are replaced by the paths)."""

    make: Callable[[Path, Path, Path], list]
    code: int
    words: list[str]
    earlier: dict[str, str] = field(default_factory=dict)   # out/<name>: real/<file> | text
    env: dict[str, str] | None = None                      # run as a subprocess with env


def _earlier(out: Path, real: Path, spec: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "notes.txt").write_text("an earlier note\n")
    for name, src in spec.items():
        p = out / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if (real / src).is_file():
            shutil.copy(real / src, p)
        else:
            p.write_text(src)


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def xbar(real: Path, *extra, out=None, solver="mna") -> list:
    argv = ["xbar", "solve", "--weights", real / "W.npy", "--tile", "8", "--n-vectors", "2",
            "--solver", solver, "-q"]
    return argv + (["-o", out] if out is not None else []) + list(extra)


def fit(d: Path, out: Path, *extra) -> list:
    return ["fit", d, "-q", "-o", out / "card.json", "--no-report", *extra]


def train_config(text: str, *words: str) -> Case:
    """``train`` of the config ``text`` with ``--force`` over an earlier run file."""
    return Case(lambda t, r, o: ["train", write(t / "c.toml", text), "-o", o / "r.h5", "-q",
                                 "--force"], 1, ["{tmp}/c.toml", *words], RUN)


def sweep(tiles: str = "[16]", lr: str = "0.5") -> str:
    """A circuit-sweep file on the digits with the given ``tiles`` list and ``lr``."""
    return (f"tiles = {tiles}\nr_wire = [1.0]\nn_images = 10\n[train]\nname = \"s\"\n"
            f"cell = \"fp\"\ndataset = \"digits\"\nepochs = 1\nlr = {lr}\n")


def ablation_study(text: str, *words: str) -> Case:
    """``ablation`` of the study ``text`` with ``--force`` into a directory with a report."""
    return Case(lambda t, r, o: ["ablation", write(t / "s.toml", text), "-o", o, "-q",
                                 "--force"], 1, ["{tmp}/s.toml", *words],
                {"s.md": "earlier report\n"})


def xbar_card(action: str, output: str, earlier: dict) -> Case:
    """``xbar ACTION --card`` with a card that lacks ``v_nl``, ``--force`` over ``earlier``
    in the output location (``output``: the file in it, "" for the directory itself)."""
    return Case(lambda t, r, o: ["xbar", action, "--card", card_without(t / "nov.json", "v_nl"),
                                 "-q", "-o", o / output if output else o, "--force"], 1,
                ["{tmp}/nov.json", "v_nl"], earlier)


CARD = {"card.json": "card.json"}
RUN = {"r.h5": "run.h5"}
XBAR = {"r.h5": "xbar.h5"}



CASES: dict[str, Case] = {
    # ---- fit: the calibration rows (shuffled, duplicated, negative diameter, all-zero
    #      current, BOM); more in tests/calibration/test_loaders_real_layouts.py
    "fit-shuffled-rows": Case(
        lambda t, r, o: fit(sweep_set(t / "d", shuffled()), o, "--force"), 1,
        ["{tmp}/d/iv.csv", "column 'time (s)'", "out of time order"], CARD),
    "fit-every-row-duplicated": Case(
        lambda t, r, o: fit(sweep_set(t / "d", [x for x in sweep_rows() for _ in (0, 1)]), o,
                            "--force"), 1,
        ["{tmp}/d/iv.csv", "41 of 82 rows", "duplicates", "line 3 = line 2"], CARD),
    "fit-negative-diameter": Case(
        lambda t, r, o: fit(sweep_set(t / "d", sweep_rows(diam="-30")), o, "--force"), 1,
        ["{tmp}/d/iv.csv", "column 'diameter (nm)'", "'-30'"], CARD),
    "fit-all-zero-current": Case(
        lambda t, r, o: fit(sweep_set(t / "d", sweep_rows(cur=np.zeros(V_SWEEP.size))), o,
                            "--force"), 1,
        ["{tmp}/d/iv.csv", "column 'current (A)'", "'0'", "every point"], CARD),
    "fit-utf8-bom": Case(   # the header is read through the BOM: the error is the real one
        lambda t, r, o: fit(sweep_set(t / "d", bom_with_bad_diameter(), "utf-8-sig"), o,
                            "--force"), 1,
        ["{tmp}/d/iv.csv", "column 'diameter (nm)'", "line 6", "'-100'"], CARD),
    "fit-no-output-over-the-card-beside-the-data": Case(
        lambda t, r, o: ["fit", sweep_set(o, sweep_rows()), "-q"], 1,
        ["{out}/card.json", "-o", "--force"], CARD),
    "fit-existing-card-without-force": Case(
        lambda t, r, o: fit(sweep_set(t / "d", sweep_rows()), o), 1,
        ["{out}/card.json", "--force"], CARD),
    "fit-missing-data-set": Case(
        lambda t, r, o: fit(t / "no_such_set", o, "--force"), 1, ["{tmp}/no_such_set"], CARD),
    "make-reference-over-a-data-set": Case(
        lambda t, r, o: ["make-reference", o], 1, ["{out}", "recipe.toml", "--force"],
        {"recipe.toml": "name = 'earlier'\n"}),
    # ---- train: config values, card, output
    "train-c2c-nan": train_config(tiny(c2c="nan"), "device.c2c", "nan"),
    "train-k-zero": train_config(tiny(cell="hybrid", cell_params="k = 0"), "cell_params.k",
                                 "0"),
    "train-epochs-text": train_config(tiny().replace("epochs = 1", 'epochs = "ten"'),
                                      "epochs", "'ten'"),
    "train-unknown-device-key": train_config(tiny(device="c2cc = 0.1"), "device.c2cc",
                                             "unknown"),
    "train-n-states-1": train_config(tiny().replace("n_states = 20", "n_states = 1"),
                                     "device.n_states", "1"),
    "train-card-missing-v_nl": Case(
        lambda t, r, o: ["train", write(t / "c.toml", tiny()), "--card",
                         card_without(t / "nov.json", "v_nl"), "-o", o / "r.h5", "-q",
                         "--force"], 1, ["{tmp}/nov.json", "v_nl"], RUN),
    "train-over-another-run": Case(
        lambda t, r, o: ["train", write(t / "c.toml", tiny()), "-o", o / "r.h5", "-q"], 1,
        ["{out}/r.h5", "'tiny'", "--force", "--resume"], RUN),
    "train-resume-of-another-run": Case(
        lambda t, r, o: ["train", write(t / "c.toml", tiny()), "-o", o / "r.h5", "-q",
                         "--resume"], 1, ["{out}/r.h5", "another config", "cell"], RUN),
    "train-over-a-file-that-is-no-run": Case(
        lambda t, r, o: ["train", write(t / "c.toml", tiny()), "-o", o / "notes.txt", "-q"],
        1, ["{out}/notes.txt", "not a training run file", "--force"]),
    "train-missing-config": Case(
        lambda t, r, o: ["train", t / "none.toml", "-o", o / "r.h5", "--force"], 1,
        ["{tmp}/none.toml", "not found"], RUN),
    # ---- train: the circuit ([circuit] table and its options, issue 11)
    "train-r-wire-nan": Case(
        lambda t, r, o: ["train", write(t / "c.toml", tiny()), "-o", o / "r.h5", "-q",
                         "--force", "--backend", "surrogate", "--r-wire", "nan"], 2,
        ["--r-wire", "'nan'", "not finite"], RUN),
    "train-tile-zero": Case(
        lambda t, r, o: ["train", write(t / "c.toml", tiny()), "-o", o / "r.h5", "-q",
                         "--force", "--tile", "0"], 2, ["--tile", "0", "below 1"], RUN),
    "train-circuit-tile-rows-text": train_config(
        tiny(top='circuit = { tile_rows = "64" }'), "circuit.tile_rows", "'64'", "integer"),
    "train-circuit-unknown-key": train_config(
        tiny(top="circuit = { r_wire = 5.0 }"), "circuit.r_wire", "unknown circuit setting",
        "r_wire_row"),
    "train-circuit-outside-the-surrogate": Case(
        lambda t, r, o: ["train", write(t / "c.toml", tiny()), "-o", o / "r.h5", "-q",
                         "--force", "--backend", "surrogate", "--tile", "256"], 1,
        ["tile_rows = 256", "[16, 128]"], RUN),
    "train-unknown-backend": Case(
        lambda t, r, o: ["train", write(t / "c.toml", tiny()), "-o", o / "r.h5", "-q",
                         "--force", "--backend", "spice"], 1,
        ["{tmp}/c.toml", "backend = 'spice'", "surrogate"], RUN),
    # ---- reproduce / ablation
    "reproduce-card-missing-v_nl": Case(
        lambda t, r, o: ["reproduce", "4A", "--quick", "--card",
                         card_without(t / "nov.json", "v_nl"), "-o", o, "-q", "--force"], 1,
        ["{tmp}/nov.json", "v_nl"], {"runs/x.h5": "run.h5"}),
    "reproduce-unknown-figure": Case(
        lambda t, r, o: ["reproduce", "9Z", "-o", o], 2, ["figure", "'9Z'"]),
    "ablation-k-zero": ablation_study(study(cell="hybrid", extra="sweep = { cell_params = "
                                            "[{ k = 0 }] }"), "run 1", "cell_params.k", "0"),
    "ablation-epochs-text": ablation_study(study(epochs='"ten"'), "epochs", "'ten'"),
    "ablation-unknown-device-key": ablation_study(study(extra="device = { foo = 2 }"),
                                                  "device.foo", "2"),
    "ablation-label-placeholder": ablation_study(study(label="run {foo}"), "label", "{foo}"),
    "ablation-output-is-a-file": Case(
        lambda t, r, o: ["ablation", write(t / "s.toml", study()), "-o", o / "notes.txt",
                         "-q"], 1, ["{out}/notes.txt"]),
    # ---- circuit-sweep
    "circuit-sweep-tile-zero": Case(
        lambda t, r, o: ["circuit-sweep", write(t / "s.toml", sweep(tiles="[0]")), "-o", o,
                         "-q"], 1, ["{tmp}/s.toml", "tiles", "[0]"],
        {"s.md": "earlier report\n"}),
    "circuit-sweep-train-lr-zero": Case(
        lambda t, r, o: ["circuit-sweep", write(t / "s.toml", sweep(lr="0")), "-o", o, "-q"],
        1, ["{tmp}/s.toml", "[train]", "lr", "0"], {"s.md": "earlier report\n"}),
    # ---- xbar: cards, outputs, locks, resume, tile limit, ngspice
    "xbar-solve-card-missing-v_nl": Case(
        lambda t, r, o: xbar(r, "--card", card_without(t / "nov.json", "v_nl"), "--force",
                             out=o / "r.h5"), 1, ["{tmp}/nov.json", "v_nl"], XBAR),
    "xbar-solve-card-v_nl-nan": Case(
        lambda t, r, o: xbar(r, "--card", card_without(t / "nan.json", "v_nl", "__nan__"),
                             "--force", out=o / "r.h5"), 1, ["{tmp}/nan.json", "v_nl", "nan"],
        XBAR),
    "xbar-sweep-card-missing-v_nl": xbar_card("sweep", "e.png", {"e.png": "earlier figure"}),
    "xbar-update-card-missing-v_nl": xbar_card("update", "", {"update.json": "{}\n"}),
    "xbar-netlist-card-missing-v_nl": xbar_card("netlist", "tile.cir",
                                                {"tile.cir": "* earlier netlist\n"}),
    "xbar-demo-card-missing-v_nl": xbar_card("demo", "", {"results.h5": "xbar.h5"}),
    "xbar-demo-over-an-earlier-demo": Case(
        lambda t, r, o: ["xbar", "demo", "-q", "-o", o], 1, ["{out}", "results.h5", "--force"],
        {"results.h5": "xbar.h5"}),
    "xbar-solve-over-a-result-without-force": Case(
        lambda t, r, o: xbar(r, out=o / "r.h5"), 1, ["{out}/r.h5", "--force", "--resume"],
        XBAR),
    "xbar-solve-second-writer": Case(
        lambda t, r, o: xbar(r, "--force", out=o / "r.h5"), 1,
        ["{out}/r.h5", "another process", "r.h5.lock"], XBAR),
    "xbar-solve-resume-of-another-solve": Case(
        lambda t, r, o: xbar(r, "--resume", "--seed", "9", out=o / "r.h5"), 1,
        ["{out}/r.h5", "inputs_sha256", "--force"], XBAR),
    "xbar-solve-resume-of-a-foreign-file": Case(
        lambda t, r, o: xbar(r, "--resume", out=o / "r.h5"), 1,
        ["{out}/r.h5", "pyspice-rram/circuit-results"], RUN),
    "xbar-solve-ngspice-tile-above-the-limit": Case(
        lambda t, r, o: ["xbar", "solve", "--weights", np_save(t / "W600.npy", (600, 600)),
                         "--tile", "600", "--solver", "ngspice", "-q", "-o", o / "r.h5",
                         "--n-vectors", "1"], 1, ["600x600", "--force", "GB"], {}),
    "xbar-solve-missing-weights": Case(
        lambda t, r, o: ["xbar", "solve", "--weights", t / "nope.npy", "-q", "-o", o / "r.h5",
                         "--force"], 1, ["{tmp}/nope.npy"], XBAR),
    "xbar-solve-inputs-of-the-wrong-width": Case(
        lambda t, r, o: xbar(r, "--inputs", np_save(t / "A.npy", (3, 7)), "--force",
                             out=o / "r.h5"), 1, ["7 columns", "24"], XBAR),
    "xbar-energy-r-wire-nan": Case(
        lambda t, r, o: ["xbar", "energy", "--r-wire", "nan", "--tile", "4", "-q", "-o",
                         o / "e.json", "--force"], 1, ["--r-wire", "nan"],
        {"e.json": "{}\n"}),
    "xbar-sweep-bad-tile-list": Case(
        lambda t, r, o: ["xbar", "sweep", "--tile", "8,x", "-q", "-o", o / "e.png", "--force"],
        1, ["--tile", "'8,x'"], {"e.png": "earlier figure"}),
    "xbar-solve-missing-ngspice-executable": Case(
        lambda t, r, o: xbar(r, "--force", out=o / "r.h5", solver="ngspice"), 1,
        ["{tmp}/nope", "PYSPICE_RRAM_NGSPICE", "hint"], XBAR,
        env={"PYSPICE_RRAM_NGSPICE": "{tmp}/nope"}),
    "xbar-solve-missing-ngspice-library": Case(
        lambda t, r, o: xbar(r, "--force", "--backend", "shared", out=o / "r.h5",
                             solver="ngspice"), 1,
        ["{tmp}/libnope.so", "NGSPICE_LIBRARY_PATH", "hint"], XBAR,
        env={"NGSPICE_LIBRARY_PATH": "{tmp}/libnope.so"}),
    # ---- surrogate and check: truncated / foreign HDF5, bad JSON, outputs
    "surrogate-data-resume-of-a-foreign-file": Case(
        lambda t, r, o: ["surrogate", "data", "-o", o / "d.h5", "--resume", "--n-items", "1",
                         "-q"], 1, ["{out}/d.h5", "not a surrogate data set"], {"d.h5": "run.h5"}),
    "surrogate-data-bad-config": Case(
        lambda t, r, o: ["surrogate", "data", "--config", write(t / "spec.json",
                                                                '{"n_itemz": 3}'),
                         "-o", o / "d.h5", "--force", "-q"], 1, ["{tmp}/spec.json", "n_itemz"],
        {"d.h5": "run.h5"}),
    "surrogate-fit-truncated-data": Case(
        lambda t, r, o: ["surrogate", "fit", truncated(r / "xbar.h5", t / "cut.h5"), "-o",
                         o / "s.json", "--force"], 1, ["{tmp}/cut.h5", "HDF5"],
        {"s.json": "surrogate.json"}),
    "surrogate-fit-foreign-data": Case(
        lambda t, r, o: ["surrogate", "fit", r / "run.h5", "-o", o / "s.json", "--force"], 1,
        ["run.h5", "not a surrogate data set"], {"s.json": "surrogate.json"}),
    "surrogate-validate-foreign-data": Case(
        lambda t, r, o: ["surrogate", "validate", r / "xbar.h5", "-o", o, "--force"], 1,
        ["xbar.h5", "not a surrogate data set"], {"validation.json": "{}\n"}),
    "surrogate-validate-over-an-earlier-validation": Case(
        lambda t, r, o: ["surrogate", "validate", r / "xbar.h5", "-o", o], 1,
        ["{out}/validation.json", "--force"], {"validation.json": "{}\n"}),
    "surrogate-info-not-a-surrogate": Case(
        lambda t, r, o: ["surrogate", "info", "--surrogate", r / "card.json"], 1,
        ["card.json", "surrogate"]),
    "check-truncated-run": Case(
        lambda t, r, o: ["check", truncated(r / "run.h5", t / "cut.h5"), "-o", o / "c.json",
                         "--force", "-q"], 1, ["{tmp}/cut.h5", "HDF5"], {"c.json": "{}\n"}),
    "check-foreign-run": Case(
        lambda t, r, o: ["check", r / "xbar.h5", "-o", o / "c.json", "--force", "-q"], 1,
        ["xbar.h5", "not a pyspice-rram training run file"], {"c.json": "{}\n"}),
    # ---- cost: a file that is no run, costs that are no event costs
    "cost-foreign-run": Case(
        lambda t, r, o: ["cost", r / "xbar.h5"], 1,
        ["xbar.h5", "not a pyspice-rram training run file"]),
    "cost-costs-not-event-costs": Case(
        lambda t, r, o: ["cost", r / "run.h5", "--costs", write(t / "c.json", "{}\n")], 1,
        ["{tmp}/c.json", "cannot read event costs"]),
    "check-over-an-earlier-result": Case(
        lambda t, r, o: ["check", r / "run.h5", "-o", o / "c.json", "-q"], 1,
        ["{out}/c.json", "--force"], {"c.json": "{}\n"}),
    "check-bad-surrogate": Case(
        lambda t, r, o: ["check", r / "run.h5", "--surrogate", r / "card.json", "-q"], 1,
        ["card.json", "surrogate"]),
    # ---- run (the main job) and the top level
    "run-over-an-earlier-run": Case(
        lambda t, r, o: ["run", "-o", o, "-q"], 1, ["{out}", "fit/", "--force"],
        {"summary.json": "{}\n", "fit/card.json": "card.json"}),
    "run-unknown-step": Case(
        lambda t, r, o: ["run", "-o", o, "-q", "--steps", "fit,dance", "--force"], 1,
        ["dance"], {"summary.json": "{}\n"}),
    "run-missing-data-set": Case(
        lambda t, r, o: ["run", "-o", o, "-q", "--dataset", t / "nope", "--steps", "fit",
                         "--force"], 1, ["{tmp}/nope"], {"summary.json": "{}\n"}),
    "unknown-command": Case(lambda t, r, o: ["simulate", o], 2, ["simulate"]),
    "unknown-option": Case(lambda t, r, o: ["train", "c.toml", "--epohcs", "3"], 2,
                           ["--epohcs"]),
}


def np_save(path: Path, shape) -> Path:
    np.save(path, np.random.default_rng(0).normal(size=shape))
    return path


#: Rows of the table of issue 12 -> the cases (here, or the test elsewhere) that cover them.
ROWS = {
    "rows of a sweep file out of time order (shuffled)": ["fit-shuffled-rows"],
    "every row duplicated": ["fit-every-row-duplicated"],
    "diameter -30 nm in the data": ["fit-negative-diameter"],
    "c2c = nan in a train config": ["train-c2c-nan"],
    "a card JSON missing v_nl given to xbar": [
        "xbar-solve-card-missing-v_nl", "xbar-sweep-card-missing-v_nl",
        "xbar-update-card-missing-v_nl", "xbar-netlist-card-missing-v_nl",
        "xbar-demo-card-missing-v_nl", "xbar-solve-card-v_nl-nan",
        "train-card-missing-v_nl", "reproduce-card-missing-v_nl"],
    "train -o r.h5 when r.h5 holds another run": [
        "train-over-another-run", "train-resume-of-another-run",
        "train-over-a-file-that-is-no-run"],
    "two xbar solve --out same.h5 at once": ["xbar-solve-second-writer"],
    "kill -9 of fit during the report": [
        "fit-existing-card-without-force",
        "tests/calibration/test_fit_adversarial.py::"
        "test_interrupted_fit_leaves_the_earlier_outputs_unchanged"],
    "xbar solve interrupted after 49 of 576 tiles": [
        "xbar-solve-resume-of-another-solve", "xbar-solve-resume-of-a-foreign-file",
        "tests/test_interrupts.py::"
        "test_xbar_solve_interrupted_then_resumed_equals_uninterrupted"],
    "ablation --scheduler ADDR -o relative_dir (Dask)": [
        "ablation-output-is-a-file",
        "tests/network/test_network_bad_inputs.py::test_ablation_dask_relative_output"],
    "k = 0, epochs = 'ten', unknown [device] key (train, ablation)": [
        "train-k-zero", "train-epochs-text", "train-unknown-device-key", "train-n-states-1",
        "ablation-k-zero", "ablation-epochs-text", "ablation-unknown-device-key"],
    "label {foo}": ["ablation-label-placeholder"],
    "all-zero current (fit)": ["fit-all-zero-current"],
    "truncated or foreign HDF5 (surrogate, check)": [
        "surrogate-data-resume-of-a-foreign-file", "surrogate-fit-truncated-data",
        "surrogate-fit-foreign-data", "surrogate-validate-foreign-data", "check-truncated-run",
        "check-foreign-run"],
    "missing ngspice library or executable": [
        "xbar-solve-missing-ngspice-executable", "xbar-solve-missing-ngspice-library"],
    "UTF-8 BOM (an Excel CSV)": ["fit-utf8-bom"],
    "a 10^6-row (42 MB) sweep file": ["tests/calibration/test_big_inputs.py"],
    "a 2048x2048 tile through ngspice": ["xbar-solve-ngspice-tile-above-the-limit"],
    "fit DATASET with no -o": ["fit-no-output-over-the-card-beside-the-data"],
}


def _fill(text: str, tmp: Path, out: Path) -> str:
    return text.replace("{tmp}", str(tmp)).replace("{out}", str(out))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path, real, capsys, monkeypatch):
    case = CASES[name]
    out = tmp_path / "out"
    _earlier(out, real, case.earlier)
    argv = [str(a) for a in case.make(tmp_path, real, out)]
    before = _digest(out)
    monkeypatch.chdir(tmp_path)
    if case.env is not None:
        env = dict(os.environ, PYTHONPATH=str(ROOT),
                   **{k: _fill(v, tmp_path, out) for k, v in case.env.items()})
        p = subprocess.run([sys.executable, "-m", "pyspice_rram.cli", *argv], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
        code, text, err = p.returncode, p.stdout, p.stderr
    elif name == "xbar-solve-second-writer":
        from pyspice_rram.circuit.safeio import OutputLock

        with OutputLock(out / "r.h5"):         # a writer holding the output (flock)
            before = _digest(out)
            code = main(argv)
            text, err = capsys.readouterr()
        before.pop("r.h5.lock")
    else:
        code = main(argv)
        text, err = capsys.readouterr()
    assert "Traceback" not in text + err, err
    assert code == case.code, (code, err)
    if case.code == 1:            # one error line (and hint / warning lines)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("pyspice-rram ") and ": error: " in ln]
        assert len(errors) == 1, err
        assert all(ln in errors or ln.startswith(("hint: ", "warning: ")) for ln in lines), err
    for w in case.words:
        assert _fill(w, tmp_path, out) in err, (w, err)
    assert _digest(out) == before, "the output location changed"


def test_every_row_and_every_command_is_covered():
    """Each row of the issue's table names cases that exist (or a test file that does), and
    every subcommand of ``pyspice-rram --help`` has a case here."""
    import argparse

    from pyspice_rram.cli import build_parser

    for row, names in ROWS.items():
        assert names, row
        for n in names:
            if n.startswith("tests/"):
                assert (ROOT / n.split("::")[0]).is_file(), n
            else:
                assert n in CASES, n
    assert len(CASES) >= 40

    def commands(p, path=()):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    sub = list(commands(sp, path + (name,)))
                    yield from sub or [path + (name,)]

    for cmd in commands(build_parser()):
        prefix = "-".join(cmd) + "-"
        assert any(n.startswith(prefix) for n in CASES), \
            f"no bad-input case for `pyspice-rram {' '.join(cmd)}`"


# ---------------------------------------------------------------------------- --help
def _parsers():
    import argparse

    from pyspice_rram.cli import build_parser

    def walk(p, path):
        yield path, p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    yield from walk(sp, path + (name,))

    return list(walk(build_parser(), ()))


PARSERS = _parsers()


@pytest.mark.parametrize("path,parser", PARSERS,
                         ids=[" ".join(p) or "pyspice-rram" for p, _ in PARSERS])
def test_help_has_a_line_and_the_default_of_every_option(path, parser):
    """Every option (but -h) has a help line; an option with a default other than None /
    off shows it in ``--help`` (``(default: ...)``)."""
    import argparse

    formatter = parser._get_formatter()
    text = parser.format_help()
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._VersionAction,
                          argparse._SubParsersAction)) or a.help == argparse.SUPPRESS:
            continue
        name = "/".join(a.option_strings) or a.dest
        assert a.help, f"pyspice-rram {' '.join(path)}: {name} has no help"
        if a.default is None or a.default is False or a.default is argparse.SUPPRESS:
            continue
        shown = formatter._get_help_string(a)
        assert "%(default)" in shown or f"(default: {a.default}" in shown, \
            f"pyspice-rram {' '.join(path)}: {name} does not show its default {a.default!r}"
    assert "--force" in text or not any(
        o in text for o in ("-o OUTPUT", "-o OUT", "--output")), \
        f"pyspice-rram {' '.join(path)} writes an output but has no --force"
