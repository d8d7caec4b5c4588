"""Ablation studies: a TOML list of runs on the embedded 8x8 digits."""

import json

import h5py
import numpy as np
import pytest

from pyspice_rram.paper.ablation import load_study, run_study

STUDY = """
title = "tiny study"

[[run]]
label = "digits, {cell}"
base = "B"
cell = "single"
dataset = "digits"
n_hidden = 32
epochs = 2
w_max = [0.5, 1.0]

[[run]]
label = "digits hybrid, {cell_params}"
base = "B"
cell = "hybrid"
dataset = "digits"
n_hidden = 32
epochs = 2
w_max = [0.5, 1.0]
[run.sweep]
cell_params = [{ k = 5.0 }, { k = 20.0 }]
"""


def test_study_runs_tabulates_and_reuses(tmp_path):
    study = tmp_path / "tiny.toml"
    study.write_text(STUDY)
    title, runs = load_study(study)
    assert title == "tiny study"
    assert [lab for lab, _ in runs] == ["digits, single", "digits hybrid, k 5",
                                        "digits hybrid, k 20"]
    # the sweep value is merged into B's cell parameters (stochastic rounding kept)
    assert runs[2][1].to_dict()["cell_params"] == {"rounding": "stochastic", "k": 20.0}
    res = run_study(study, tmp_path, progress=False)
    assert [r["epochs"] for r in res["rows"]] == [2, 2, 2]
    for r in res["rows"]:     # the table reads what the run files hold
        with h5py.File(tmp_path / "runs" / f"{r['run']}.h5") as f:
            acc = f["epochs/test_acc"][:]
        assert r["test"] == pytest.approx(100 * acc[-1])
        assert r["best_test"] == pytest.approx(100 * acc[1:].max())
        assert r["test"] > 25          # 2 epochs on digits: well above chance (10 %)
    md = (tmp_path / "tiny.md").read_text()
    assert "| digits hybrid, k 20 |" in md
    data = json.loads((tmp_path / "tiny.json").read_text())
    assert len(data["curves"]) == 3 and (tmp_path / "tiny.png").stat().st_size > 0
    assert (tmp_path / "tiny_curves.png").stat().st_size > 0
    # the same run listed again with more epochs: trained once, to the longer count, and
    # each row reads its own epoch
    study.write_text(STUDY + STUDY.split("[[run]]")[1].join(["[[run]]", ""]).replace(
        "epochs = 2", "epochs = 3").replace('label = "digits, {cell}"', 'label = "long"'))
    res3 = run_study(study, tmp_path, progress=False)
    assert [r["epochs"] for r in res3["rows"]] == [2, 2, 2, 3]
    assert res3["rows"][3]["run"] == res3["rows"][0]["run"]
    assert res3["rows"][0]["test"] == pytest.approx(res["rows"][0]["test"])
    with h5py.File(tmp_path / "runs" / f"{res3['rows'][3]['run']}.h5") as f:
        assert res3["rows"][3]["test"] == pytest.approx(100 * f["epochs/test_acc"][3])
    study.write_text(STUDY)
    # a second call trains nothing: same numbers
    again = run_study(study, tmp_path, progress=False, only_existing=True)
    assert np.allclose([r["test"] for r in again["rows"]], [r["test"] for r in res["rows"]])


def test_study_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_study(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[run]]\nlabel = "x"\n')
    with pytest.raises(ValueError, match="needs 'label', 'cell'"):
        load_study(bad)
    bad.write_text('[[run]]\nlabel = "x"\ncell = "single"\nbase = "C"\n')
    with pytest.raises(ValueError, match="base 'A' or 'B'"):
        load_study(bad)
    bad.write_text('title = "empty"\n')
    with pytest.raises(ValueError, match="no \\[\\[run\\]\\]"):
        load_study(bad)
