"""The top-level CLI dispatcher and the main-job pipeline."""

import json

import pytest

from pyspice_rram.cli import build_parser, main
from pyspice_rram.pipeline import headline


def test_every_layer_registers_its_commands():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"run", "fit", "xbar", "train", "reproduce", "surrogate", "check"} <= set(sub.choices)


def test_unknown_step_is_a_clear_error(capsys):
    assert main(["run", "--steps", "fit,bogus", "-o", "unused"]) == 1
    assert "unknown steps ['bogus']" in capsys.readouterr().err


def test_crossbar_step_writes_summary_with_ngspice_matching_mna(tmp_path, capsys):
    assert main(["run", "-o", str(tmp_path), "--steps", "crossbar", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())["crossbar"]
    for direction in ("forward", "transposed"):
        # two independent solvers of the same tiles agree (issue 3: <= 1e-6 relative)
        assert summary[direction]["ngspice_vs_mna_max_rel_per_current"] < 1e-6
        # 32x32 tiles at 1 ohm/segment: IR drop is visible but small (docs/circuit.md sweep)
        assert 1e-4 < summary[direction]["vmm_error_vs_ideal_circuit"]["max_rel"] < 0.05
    assert "max VMM error" in capsys.readouterr().out


def test_headline_formats_the_numbers_of_each_step():
    assert headline("fit", {"n_states": 50.36, "r2_median": 0.99991,
                            "parameters": {"c2c_sigma": {"value": 0.3343}}}) == \
        "50.4 states; delta/mu 0.334; median R^2 0.9999"
    assert headline("training", {"fp": {"final_test_acc": 0.9666}, "figure": "x.png"}) == \
        "fp test 96.7 %"
    assert headline("surrogate", {}) == ""
