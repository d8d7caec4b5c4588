"""Bad inputs to ``train``, ``reproduce`` and ``ablation`` (issue 12, network layer).

Every case runs ``pyspice_rram.cli.main`` and checks the exit code, that stderr names the
offending file / key / value, that no traceback is printed and that no earlier output
changed. Tiny configs on the embedded 8x8 digits, one epoch.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pytest

from pyspice_rram.cli import build_parser, main
from pyspice_rram.paper import experiments
from pyspice_rram.network.history import load_run
from pyspice_rram.network.train import TrainConfig
from common_inputs import STUDY, tiny


def _digest(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, err


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> Path:
    """A real run file of another config (the earlier result that must survive)."""
    d = tmp_path_factory.mktemp("earlier")
    cfg = d / "other.toml"
    cfg.write_text(tiny(cell="hybrid"))
    out = d / "r.h5"
    assert main(["train", str(cfg), "-o", str(out), "-q"]) == 0
    return out


# --------------------------------------------------------------------------- train configs
#: More cases (c2c = nan, k = 0, epochs = "ten", an unknown [device] key, n_states = 1):
#: tests/test_bad_inputs_table.py.
TRAIN_CASES = {
    "c2c-inf": (dict(c2c="inf"), ["device.c2c", "inf"]),
    "beta-nan": (dict(device="beta_p = nan"), ["device.beta_p", "nan"]),
    "lr-nan": (dict(lr="nan"), ["lr", "nan"]),
    "lr-negative": (dict(lr="-0.1"), ["lr", "-0.1"]),
    "k-nan": (dict(cell="hybrid", cell_params="k = nan"), ["cell_params.k", "nan"]),
    "n-states-0": (dict(cell="multi", device="n_states = 0"), ["device.n_states", "0"]),
    "epochs-float": (dict(top="epochs = 1.5"), ["epochs", "1.5"]),
    "unknown-cell-param": (dict(cell_params="kk = 3"), ["cell_params.kk", "3"]),
    "unknown-top-key": (dict(top="bogus = 1"), ["bogus", "unknown"]),
    "unknown-cell": (dict(cell="quantum"), ["cell", "'quantum'"]),
    "w-max-nan": (dict(top="w_max = [nan, 1.0]"), ["w_max[0]", "nan"]),
    "rounding-unknown": (dict(cell_params='rounding = "up"'), ["cell_params.rounding", "'up'"]),
}


def _dup_key_fix(text: str) -> str:
    """A case that sets ``epochs``/``w_max`` at the top replaces the template's line."""
    lines, seen = [], set()
    for line in reversed(text.splitlines()):
        key = line.split("=")[0].strip() if "=" in line and not line.startswith("[") else None
        section = line.startswith("[")
        if section:
            seen = set()
        if key and key in seen:
            continue
        if key:
            seen.add(key)
        lines.append(line)
    return "\n".join(reversed(lines)) + "\n"


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_bad_config(case, tmp_path, capsys, earlier_run):
    kwargs, words = TRAIN_CASES[case]
    cfg = tmp_path / f"{case}.toml"
    cfg.write_text(_dup_key_fix(tiny(**kwargs)))
    before = _digest(earlier_run.parent)
    new = tmp_path / "new.h5"
    code, err = _run(["train", cfg, "-o", new, "-q"], capsys)
    assert code == 1
    assert str(cfg) in err
    for w in words:
        assert w in err, (w, err)
    assert not new.exists()
    assert _digest(earlier_run.parent) == before


def test_validate_is_shared_by_the_api(tmp_path):
    with pytest.raises(ValueError, match=r"device\.c2c = nan"):
        TrainConfig(cell="single", device={"c2c": float("nan")})
    with pytest.raises(ValueError, match=r"x\.toml: cell_params\.k = 0"):
        TrainConfig.from_dict({"cell": "hybrid", "cell_params": {"k": 0}}, where="x.toml")
    with pytest.raises(ValueError, match=r"run 3: lr = -1"):
        experiments.paper_config("single", where="run 3", lr=-1.0)
    # a valid config passes and binary devices stay allowed for the multi-device cell
    TrainConfig(cell="multi", device={"n_states": 1}).validate()


# --------------------------------------------------------------------------- train output
# over another run / over a file that is no run / --resume of another run:
# tests/test_bad_inputs_table.py
@pytest.mark.parametrize("case", ["force-resume"])
def test_train_refuses_to_overwrite(case, tmp_path, capsys, earlier_run):
    cfg = tmp_path / "mine.toml"
    cfg.write_text(tiny(cell="single"))
    out = tmp_path / "r.h5"
    if case == "not-a-run":
        out.write_text("my notes\n")
    else:
        out.write_bytes(earlier_run.read_bytes())
    before = out.read_bytes()
    args = ["train", cfg, "-o", out, "-q"]
    if case == "resume-other":
        args.append("--resume")
    if case == "force-resume":
        args += ["--force", "--resume"]
    code, err = _run(args, capsys)
    assert code == 1
    assert str(out) in err or case == "force-resume"
    expect = {"other-run": ["'tiny'", "--force", "--resume"],
              "not-a-run": ["not a training run file", "--force"],
              "resume-other": ["another config", "cell"],
              "force-resume": ["--force", "--resume"]}[case]
    for w in expect:
        assert w in err, (w, err)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_train_force_overwrites_and_resume_continues(tmp_path, capsys, earlier_run):
    cfg = tmp_path / "mine.toml"
    cfg.write_text(tiny(cell="single"))
    out = tmp_path / "r.h5"
    out.write_bytes(earlier_run.read_bytes())
    code, _ = _run(["train", cfg, "-o", out, "-q", "--force"], capsys)
    assert code == 0
    hist = load_run(out, with_checkpoint=False)[0]
    assert hist.config["cell"] == "single" and hist.completed_epochs == 1
    code, _ = _run(["train", cfg, "-o", out, "--no-progress", "--resume", "--epochs", "2"],
                   capsys)
    assert code == 0 and load_run(out, with_checkpoint=False)[0].completed_epochs == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_train_second_writer_refused(tmp_path, capsys, earlier_run):
    """A run file locked by a live process (here: this one, as if a second ``train`` were
    writing it) is refused; a lock left by a dead process is taken over."""
    import os
    import socket
    import subprocess
    import sys

    cfg = tmp_path / "mine.toml"
    cfg.write_text(tiny(cell="hybrid"))
    out = tmp_path / "r.h5"
    out.write_bytes(earlier_run.read_bytes())
    lock = tmp_path / "r.h5.lock"
    lock.write_text(f"{socket.gethostname()} {os.getpid()}")
    before = out.read_bytes()
    code, err = _run(["train", cfg, "-o", out, "-q", "--resume", "--epochs", "2"], capsys)
    assert code == 1 and str(out) in err and "another process" in err and str(lock) in err
    assert out.read_bytes() == before and lock.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    lock.write_text(f"{socket.gethostname()} {dead}")
    code, err = _run(["train", cfg, "-o", out, "-q", "--resume", "--epochs", "2"], capsys)
    assert code == 0, err
    assert not lock.exists()
    assert load_run(out, with_checkpoint=False)[0].completed_epochs == 2


# --------------------------------------------------------------------------- ablation
#: More cases (label {foo}, k = 0 in a sweep, epochs = "ten", an unknown [device] key):
#: tests/test_bad_inputs_table.py.
ABLATION_CASES = {
    "label-positional": (dict(label="run {0}"), ["label", "{0}"]),
    "c2c-nan": (dict(extra="device = { c2c = nan }"), ["device.c2c", "nan"]),
    "c2c-nan-in-sweep": (dict(extra="sweep = { device = [{ c2c = 0.1 }, { c2c = nan }] }"),
                         ["device.c2c", "nan"]),
    "n-states-1": (dict(extra="device = { n_states = 1 }"), ["device.n_states", "1"]),
    "lr-negative": (dict(extra="lr = -0.5"), ["lr", "-0.5"]),
    "base-unknown": (dict(base="C"), ["base", "'C'"]),
    "sweep-not-list": (dict(extra="sweep = { lr = 0.1 }"), ["sweep"]),
}


@pytest.mark.parametrize("case", list(ABLATION_CASES))
def test_ablation_bad_study(case, tmp_path, capsys):
    kwargs, words = ABLATION_CASES[case]
    fields = dict(label="x", base="A", cell="single", epochs="1", extra="") | kwargs
    study = tmp_path / f"{case}.toml"
    study.write_text(STUDY.format(**fields))
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / f"{case}.md").write_text("earlier report\n")
    before = _digest(outdir)
    code, err = _run(["ablation", study, "-o", outdir, "-q"], capsys)
    assert code == 1
    assert str(study) in err and "run 1" in err
    for w in words:
        assert w in err, (w, err)
    assert _digest(outdir) == before


def test_ablation_missing_study_and_bad_toml(tmp_path, capsys):
    code, err = _run(["ablation", tmp_path / "none.toml", "-o", tmp_path / "o"], capsys)
    assert code == 1 and "none.toml" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[[run]\nlabel = 'x'\n")
    code, err = _run(["ablation", bad, "-o", tmp_path / "o"], capsys)
    assert code == 1 and str(bad) in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["reproduce", "ablation", "train"])
def test_output_of_the_wrong_kind(command, tmp_path, capsys):
    """A directory output that is a file (reproduce, ablation), a run file that is a
    directory (train): refused, nothing changed."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(tiny())
    study = tmp_path / "s.toml"
    study.write_text(STUDY.format(label="x", base="A", cell="single", epochs="1", extra=""))
    if command == "train":
        out = tmp_path / "outdir"
        out.mkdir()
        (out / "keep.txt").write_text("keep\n")
        argv = ["train", cfg, "-o", out, "-q"]
    else:
        out = tmp_path / "notes.txt"
        out.write_text("keep\n")
        argv = [command, *(["4A", "--quick"] if command == "reproduce" else [study]),
                "-o", out, "-q", "--epochs" if command == "reproduce" else "--seed", "1"]
    before = _digest(tmp_path)
    code, err = _run(argv, capsys)
    assert code == 1 and str(out) in err
    assert "directory" in err
    assert _digest(tmp_path) == before


# --------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize("argv, word", [
    (["reproduce", "4A", "--workers", "0"], "--workers"),
    (["reproduce", "4A", "--epochs", "-1"], "--epochs"),
    (["reproduce", "4A", "--seeds", "0"], "--seeds"),
    (["ablation", "s.toml", "--seed", "-3"], "--seed"),
    (["train", "c.toml", "--epochs", "ten"], "--epochs"),
    (["reproduce", "9Z"], "figure"),
])
def test_usage_errors_exit_2(argv, word, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2  # main() returns argparse's usage status (no SystemExit)
    err = capsys.readouterr().err
    assert word in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- vocabulary
def _subparsers():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {n: sub.choices[n] for n in ("train", "reproduce", "ablation")}


def test_one_cli_vocabulary():
    subs = _subparsers()
    for name, p in subs.items():
        assert issubclass(p.formatter_class, argparse.ArgumentDefaultsHelpFormatter), name
        opts = {o: a for a in p._actions for o in a.option_strings}
        for o in ("-o", "--output", "-q", "--quiet", "--force", "--seed", "--mnist"):
            assert o in opts, (name, o)
        assert opts["-o"].dest == opts["--output"].dest == "output"
        assert opts["-q"].dest == "quiet" and opts["--no-progress"].dest == "quiet"
        for a in p._actions:       # a help line for every visible option
            assert a.help, (name, a.option_strings)
        assert "--no-progress" not in p.format_help()   # defaults: test_bad_inputs_table
    for name in ("reproduce", "ablation"):
        opts = {o: a for a in subs[name]._actions for o in a.option_strings}
        assert opts["--outdir"].dest == "output" and opts["--workers"].default == 1
        assert "--scheduler" in opts


def test_old_option_names_still_work(tmp_path, capsys):
    p = _subparsers()["ablation"]
    args = p.parse_args(["s.toml", "--outdir", "x", "--no-progress"])
    assert args.output == "x" and args.quiet is True
    args = p.parse_args(["s.toml"])
    assert args.output == "out/ablation" and args.quiet is False


# --------------------------------------------------------------------------- Dask
def test_ablation_dask_relative_output(tmp_path, monkeypatch, capsys):
    distributed = pytest.importorskip("dask.distributed")
    study = tmp_path / "study.toml"
    study.write_text(STUDY.format(label="dask {cell}", base="B", cell="single", epochs="1",
                                  extra=""))
    log = tmp_path / "submitted.txt"      # the task is serialised: record in a file
    real = experiments._run_one

    def spy(cfg, path, progress, resume=True):
        with open(log, "a") as f:
            f.write(path + "\n")
        return real(cfg, path, progress, resume)

    monkeypatch.setattr(experiments, "_run_one", spy)
    monkeypatch.chdir(tmp_path)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        code, err = _run(["ablation", "study.toml", "-o", "rel/out", "-q",
                          "--scheduler", cluster.scheduler_address], capsys)
    assert code == 0, err
    seen = log.read_text().split()
    assert seen and all(Path(p).is_absolute() for p in seen)
    assert all(Path(p).parent == tmp_path / "rel" / "out" / "runs" for p in seen)
    assert len(list((tmp_path / "rel" / "out" / "runs").glob("*.h5"))) == 1
    assert (tmp_path / "rel" / "out" / "study.md").is_file()


# interrupts of train (SIGINT, SIGKILL, resume = uninterrupted): tests/test_interrupts.py
