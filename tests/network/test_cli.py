"""CLI subcommands, configs in configs/train, figure output and the demo."""

import json
from pathlib import Path

import numpy as np
import pytest

from pyspice_rram.paper.experiments import PAPER_BASE, STOCHASTIC_BASE, demo, paper_config, reproduce
from pyspice_rram.network.history import load_run
from pyspice_rram.network.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def test_every_config_loads_and_matches_paper_setting():
    files = sorted((ROOT / "configs" / "train").glob("*.toml"))
    assert len(files) >= 7
    for f in files:
        cfg = TrainConfig.load(f)
        assert cfg.lr == 0.1
        if cfg.dataset == "mnist":
            assert cfg.n_hidden == PAPER_BASE["n_hidden"]
            if cfg.cell in ("fp", "single", "hybrid"):     # the seed-001 setting A (or B)
                base = PAPER_BASE
                if cfg.cell != "fp" and cfg.cell_params.rounding == "stochastic":
                    base = STOCHASTIC_BASE                 # setting B
                assert cfg.w_max == base["w_max"]
                if cfg.cell != "fp":
                    assert cfg.cell_params.rounding == base["cell_params"]["rounding"]
        cfg.build_cell()   # parameters are valid for the cell


def test_bad_config_rejected(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('cell = "hybrid"\nbogus = 1\n')
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.load(p)


def test_cli_train_and_resume(tmp_path):
    from pyspice_rram.cli import main

    out = tmp_path / "run.h5"
    cfg = ROOT / "configs" / "train" / "digits_hybrid.toml"
    assert main(["train", str(cfg), "-o", str(out), "--epochs", "2", "--no-progress"]) == 0
    h, layers, _ = load_run(out)
    assert h.completed_epochs == 2 and layers is not None
    assert main(["train", str(cfg), "-o", str(out), "--epochs", "3", "--resume",
                 "--no-progress"]) == 0
    assert load_run(out)[0].completed_epochs == 3


def test_reproduce_quick_writes_png_and_data(tmp_path):
    paths = reproduce("4A", tmp_path, quick=True, epochs=2, progress=False)
    assert paths[0].name == "fig4A.png" and paths[0].stat().st_size > 1000
    data = json.loads((tmp_path / "fig4A.json").read_text())
    assert set(data) == {"fp", "single", "hybrid"}
    assert len(data["fp"]["test_acc"]) == 3
    # the runs are re-used by the next figure (no retraining: files unchanged)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.h5")}
    reproduce("4B", tmp_path, quick=True, epochs=2, progress=False)
    reproduce("4D", tmp_path, quick=True, epochs=2, progress=False)
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.h5")}
    assert before == after
    reproduce("6D", tmp_path, quick=True, epochs=2, progress=False)
    assert "fp-s0" in (tmp_path / "fig6D.md").read_text()


def test_paper_config_names_are_unique():
    a = paper_config("hybrid", device={"c2c": 0.34})
    b = paper_config("hybrid", device={"c2c": 0.5})
    c = paper_config("hybrid", cell_params={"k": 100})
    assert len({a.name, b.name, c.name}) == 3
    assert a.cell_params.k == 10.0


def test_demo_on_digits(tmp_path):
    card_mod = pytest.importorskip("pyspice_rram.device.card")
    res = demo(card_mod.ModelCard.reference(), tmp_path, epochs=8, progress=False)
    assert set(res) >= {"fp", "single", "hybrid", "figure"}
    assert Path(res["figure"]).is_file()
    assert (tmp_path / "history_hybrid.h5").is_file()
    assert res["fp"]["final_test_acc"] > 0.9


def test_reproduce_on_a_dask_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        paths = reproduce("4A", tmp_path, quick=True, epochs=1, progress=False,
                          scheduler=cluster.scheduler_address)
    assert paths[0].is_file()
    assert len(list((tmp_path / "runs").glob("*.h5"))) == 3


def test_reproduce_in_local_worker_processes(tmp_path):
    paths = reproduce("4C", tmp_path, quick=True, epochs=1, progress=False, workers=2)
    assert paths[0].is_file()
    assert len(list((tmp_path / "runs").glob("*.h5"))) == 3


def test_every_ablation_study_loads():
    # the shipped studies parse and give valid, distinct-per-label configs
    from pyspice_rram.paper.ablation import load_study

    files = sorted((ROOT / "configs" / "ablation").glob("*.toml"))
    assert len(files) >= 4
    for f in files:
        title, runs = load_study(f)
        labels = [lab for lab, _ in runs]
        assert title and len(labels) == len(set(labels)), f
        for _, cfg in runs:
            cfg.build_cell()


def test_cli_ablation(tmp_path, capsys):
    from pyspice_rram.cli import main

    study = tmp_path / "s.toml"
    study.write_text('title = "cli"\n[[run]]\nlabel = "fp {n_hidden}"\nbase = "B"\ncell = "fp"\n'
                     'dataset = "digits"\nepochs = 2\n[run.sweep]\nn_hidden = [8, 16]\n')
    assert main(["ablation", str(study), "-o", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "fp 8" in out and "fp 16" in out
    md = (tmp_path / "s.md").read_text()
    assert md.count("| fp ") == 2 and len(list((tmp_path / "runs").glob("*.h5"))) == 2
