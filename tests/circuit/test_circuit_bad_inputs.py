"""Bad inputs, concurrent writers and interruptions of ``xbar``, ``surrogate`` and ``check``.

Every case asserts the exit code, that the message names the offending file / option /
value, that no traceback is printed and that earlier outputs are unchanged. Tiles are small
(8x8, MNA unless ngspice itself is under test) to keep the file fast.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pyspice_rram.circuit import cli as xcli
from pyspice_rram.circuit.store import load_results
from pyspice_rram.cli import build_parser, main
from common_inputs import assert_same_outputs

ROOT = Path(__file__).resolve().parents[2]


def run(argv, capsys):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err and "Traceback" not in cap.out
    return rc, cap.out, cap.err


def solve_argv(tmp_path, out, *extra, solver="mna"):
    return ["xbar", "solve", "--weights", tmp_path / "W.npy", "--tile", "8", "--n-vectors",
            "3", "--solver", solver, "-q", "-o", out, *extra]


@pytest.fixture
def weights(tmp_path):
    np.save(tmp_path / "W.npy", np.random.default_rng(1).normal(size=(24, 20)))
    return tmp_path / "W.npy"


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ------------------------------------------------------------------ 1. lock, no overwrite
def test_second_writer_refused_while_first_holds_the_lock(tmp_path, weights, capsys):
    out = tmp_path / "same.h5"
    code = ("import sys, time; from pyspice_rram.circuit.safeio import OutputLock; "
            "OutputLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, _, err = run(solve_argv(tmp_path, out), capsys)
    finally:
        holder.kill()
        holder.wait()
    assert rc == 1
    assert str(out) in err and f"PID {holder.pid}" in err and "same.h5.lock" in err
    assert not out.exists()
    assert (tmp_path / "same.h5.lock").read_text().strip() == str(holder.pid)


def test_two_solves_at_once_one_refused(tmp_path, weights):
    """Two real processes on the same output: one writes, the other is refused (or, if the
    first already finished, refused because the file exists) -- never two 'written'."""
    out = tmp_path / "same.h5"
    code = ("import sys, time; from pyspice_rram.circuit import cli as c; "
            "c._AFTER_TILE = lambda n: time.sleep(0.05); from pyspice_rram.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    argv = [str(a) for a in solve_argv(tmp_path, out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", code, *argv], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    res = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert sorted(r[2] for r in res) == [0, 1]
    err = next(r[1] for r in res if r[2] == 1)
    assert "Traceback" not in err and str(out) in err
    assert "another process" in err or "--force" in err
    assert sum("results written" in r[0] for r in res) == 1
    assert len(load_results(out)) == 18 and not (tmp_path / "same.h5.lock").exists()


@pytest.mark.parametrize("pid", ["dead", "live-but-not-holding"])
def test_stale_lock_of_a_dead_writer_is_taken_over(tmp_path, weights, capsys, pid):
    """A lock file left by a killed writer (its PID dead, or reused by another process)."""
    out = tmp_path / "r.h5"
    (tmp_path / "r.h5.lock").write_text(f"{_dead_pid() if pid == 'dead' else os.getppid()}\n")
    rc, text, _ = run(solve_argv(tmp_path, out), capsys)
    assert rc == 0 and "results written" in text
    assert not (tmp_path / "r.h5.lock").exists()


def test_existing_result_not_overwritten_without_force(tmp_path, weights, capsys):
    out = tmp_path / "r.h5"
    assert run(solve_argv(tmp_path, out), capsys)[0] == 0
    before = out.read_bytes()
    rc, _, err = run(solve_argv(tmp_path, out, "--seed", "5"), capsys)
    assert rc == 1 and str(out) in err and "--force" in err and "--resume" in err
    assert out.read_bytes() == before
    assert run(solve_argv(tmp_path, out, "--seed", "5", "--force"), capsys)[0] == 0
    assert out.read_bytes() != before


@pytest.mark.parametrize("argv,name", [
    (["xbar", "netlist", "--tile", "3", "-o", "{p}"], "t.cir"),
    (["xbar", "netlist", "--size", "3", "--out", "{p}"], "t.cir"),
    (["xbar", "sweep", "--tile", "4,8", "--r-wires", "1", "-q", "-o", "{p}"], "e.png"),
])
def test_other_xbar_outputs_not_overwritten(tmp_path, capsys, argv, name):
    p = tmp_path / name
    p.write_bytes(b"earlier result")
    rc, _, err = run([a.format(p=p) for a in argv], capsys)
    assert rc == 1 and str(p) in err and "--force" in err
    assert p.read_bytes() == b"earlier result"
    assert run([a.format(p=p) for a in argv] + ["--force"], capsys)[0] == 0
    assert p.read_bytes() != b"earlier result"


# ------------------------------------------------------------------ 2. per-tile store, resume
def test_interrupted_solve_keeps_tiles_and_resumes(tmp_path, weights, capsys, monkeypatch):
    ref = tmp_path / "ref.h5"
    assert run(solve_argv(tmp_path, ref), capsys)[0] == 0
    out = tmp_path / "r.h5"

    def stop(n):
        if n == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(xcli, "_AFTER_TILE", stop)
    rc, _, err = run(solve_argv(tmp_path, out), capsys)
    assert rc == 130 and "5 of 18 tiles kept" in err and "--resume" in err
    assert len(load_results(out)) == 5 and not (tmp_path / "r.h5.lock").exists()
    with h5py.File(out) as f:
        assert not f.attrs["complete"]
    monkeypatch.setattr(xcli, "_AFTER_TILE", None)
    rc, text, _ = run(solve_argv(tmp_path, out, "--resume"), capsys)
    assert rc == 0 and "5 of 18 tiles already stored" in text
    assert_same_outputs(out, ref)
    with h5py.File(out) as f:
        assert f.attrs["complete"]


def test_worker_pool_stores_the_same_tiles(tmp_path, weights, capsys):
    ref, out = tmp_path / "ref.h5", tmp_path / "pool.h5"
    assert run(solve_argv(tmp_path, ref), capsys)[0] == 0
    assert run(solve_argv(tmp_path, out, "--workers", "2"), capsys)[0] == 0
    assert_same_outputs(out, ref)


def test_resume_with_other_inputs_refused(tmp_path, weights, capsys, monkeypatch):
    out = tmp_path / "r.h5"
    monkeypatch.setattr(xcli, "_AFTER_TILE",
                        lambda n: (_ for _ in ()).throw(KeyboardInterrupt) if n == 2 else None)
    assert run(solve_argv(tmp_path, out), capsys)[0] == 130
    monkeypatch.setattr(xcli, "_AFTER_TILE", None)
    before = out.read_bytes()
    rc, _, err = run(solve_argv(tmp_path, out, "--resume", "--seed", "9"), capsys)
    assert rc == 1 and str(out) in err and "inputs_sha256" in err
    assert out.read_bytes() == before


# SIGINT / SIGKILL of a real `xbar solve` process, then --resume: tests/test_interrupts.py


# ------------------------------------------------------------------ 3. tile limit, temp files
@pytest.mark.parametrize("extra", [["--solver", "ngspice"], ["--solver", "both"]])
def test_ngspice_tile_above_limit_refused_with_estimate(tmp_path, capsys, extra):
    np.save(tmp_path / "W.npy", np.full((520, 520), 0.1))
    out = tmp_path / "r.h5"
    rc, _, err = run(["xbar", "solve", "--weights", tmp_path / "W.npy", "--tile", "520",
                      "-q", "-o", out, *extra], capsys)
    assert rc == 1 and "512" in err and "estimated" in err and " h," in err and "GB" in err
    assert "--force" in err and not out.exists()


def test_tile_size_estimate_and_force():
    from pyspice_rram.circuit.ngspice_run import TileTooLarge, check_tile_size

    with pytest.raises(TileTooLarge, match="2048x2048"):
        check_tile_size(2048, 2048)
    est = check_tile_size(2048, 2048, force=True)
    assert 400 < est["netlist_mb"] < 800          # the issue saw a 630 MB netlist
    assert check_tile_size(64, 64)["time_s"] < 2


_FAKE_NGSPICE = """#!/bin/sh
if [ "$1" = "-v" ]; then echo "ngspice-46 : fake"; exit 0; fi
sleep 60
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_removes_temporary_netlists(tmp_path, weights, sig):
    fake = tmp_path / "fake_ngspice"
    fake.write_text(_FAKE_NGSPICE)
    fake.chmod(0o755)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "r.h5"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp),
               PYSPICE_RRAM_NGSPICE=str(fake))
    p = subprocess.Popen([sys.executable, "-m", "pyspice_rram.cli",
                          *map(str, solve_argv(tmp_path, out, solver="ngspice"))],
                         env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not list(tmp.glob("pyspice_rram_*/*.cir")):
        assert time.time() - t0 < 60 and p.poll() is None
        time.sleep(0.05)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "Traceback" not in err
    assert "interrupted" in err and "0 of 18 tiles kept" in err
    assert list(tmp.iterdir()) == []
    assert not (tmp_path / "r.h5.lock").exists()


_REJECTING_NGSPICE = """#!/bin/sh
if [ "$1" = "-v" ]; then echo "ngspice-46 : fake"; exit 0; fi
echo "Error: unknown subckt: xcell0_0"
exit 1
"""


def test_ngspice_failure_is_one_line_with_kept_netlist_and_log(tmp_path, weights):
    fake = tmp_path / "bad_ngspice"
    fake.write_text(_REJECTING_NGSPICE)
    fake.chmod(0o755)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path),
               PYSPICE_RRAM_NGSPICE=str(fake))
    r = subprocess.run([sys.executable, "-m", "pyspice_rram.cli",
                        *map(str, solve_argv(tmp_path, tmp_path / "r.h5", solver="ngspice"))],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "NgspiceNetlistError" in err
    cir = Path(err.split("netlist kept at ")[1].split(",")[0])
    log = Path(err.split("ngspice output at ")[1])
    assert cir.read_text().rstrip().endswith(".end")
    assert "unknown subckt" in log.read_text()


def _data_config(tmp_path, n_items=3) -> Path:
    p = tmp_path / "data.json"
    p.write_text(json.dumps({"n_items": n_items, "sizes": [8], "n_vectors": 2,
                             "seed": 4}))
    return p


def test_surrogate_data_interrupted_keeps_items_and_resumes(tmp_path, capsys, monkeypatch):
    from pyspice_rram.surrogate import dataset

    cfg = _data_config(tmp_path)
    ref, out = tmp_path / "ref.h5", tmp_path / "d.h5"
    argv = ["surrogate", "data", "--config", cfg, "--workers", "1", "-q", "-o"]
    assert run(argv + [ref], capsys)[0] == 0
    real, calls = dataset.solve_item, []

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(dataset, "solve_item", flaky)
    rc, _, err = run(argv + [out], capsys)
    assert rc == 130 and "1 of 3 tiles kept" in err and "--resume" in err
    monkeypatch.setattr(dataset, "solve_item", real)
    before = out.read_bytes()
    rc, _, err = run(argv + [out], capsys)              # without --resume: refused
    assert rc == 1 and str(out) in err and out.read_bytes() == before
    assert run(argv + [out, "--resume"], capsys)[0] == 0
    recs = {(r.index, r.direction): r for r in dataset.iter_records(out)}
    assert len(recs) == 6
    for r in dataset.iter_records(ref):
        np.testing.assert_allclose(recs[r.index, r.direction].i_out, r.i_out, rtol=1e-12)
    from pyspice_rram.surrogate.fit import data_hash
    assert data_hash(out) == data_hash(ref)     # same data, other wall times: same hash


# ------------------------------------------------------------------ 4. foreign files, ngspice
def _foreign(tmp_path, kind) -> Path:
    p = tmp_path / f"{kind}.h5"
    if kind == "text":
        p.write_text("time,voltage,current\n0,0,0\n")
    elif kind == "truncated":
        src = ROOT / "pyspice_rram" / "data" / "surrogate" / "tiles.h5"
        p.write_bytes(src.read_bytes()[:4096])
    elif kind == "nogroups":
        with h5py.File(p, "w") as f:
            f.attrs["format"] = "something else"
            f.create_dataset("x", data=np.arange(3))
    elif kind == "emptydata":          # right format attribute, no items
        with h5py.File(p, "w") as f:
            f.attrs["format"] = "pyspice-rram-surrogate-data/1"
            f.attrs["spec"] = "{}"
            f.attrs["card"] = "{}"
    return p


@pytest.mark.parametrize("kind,expect", [
    ("text", "not a readable HDF5 file"), ("truncated", "not a readable HDF5 file"),
    ("nogroups", "'format'"), ("emptydata", "'items'")])
@pytest.mark.parametrize("cmd", [
    ["surrogate", "fit", "{p}", "-o", "{o}"],
    ["surrogate", "validate", "{p}"],
    ["surrogate", "data", "-o", "{p}", "--resume", "--n-items", "1", "-q"],
    ["check", "{p}", "--solver", "mna", "-q"],
])
def test_foreign_or_truncated_hdf5(tmp_path, capsys, kind, expect, cmd):
    p = _foreign(tmp_path, kind)
    before = p.read_bytes()
    o = tmp_path / "s.json"
    rc, _, err = run([a.format(p=p, o=o) for a in cmd], capsys)
    assert rc == 1 and str(p) in err and len(err.strip().splitlines()) == 1
    if cmd[0] == "check" and kind in ("nogroups", "emptydata"):
        assert "training run" in err
    elif cmd[1] == "data" and kind == "emptydata":
        pass                                   # a valid (empty) data set: only the spec differs
    else:
        assert expect in err
    assert p.read_bytes() == before and not o.exists()


@pytest.mark.parametrize("kind,expect", [
    ("text", "not a readable HDF5 file"), ("truncated", "not a readable HDF5 file"),
    ("nogroups", "is not a pyspice-rram/circuit-results file")])
def test_resume_of_a_foreign_file_refused(tmp_path, weights, capsys, kind, expect):
    p = _foreign(tmp_path, kind)
    before = p.read_bytes()
    rc, _, err = run(solve_argv(tmp_path, p, "--resume"), capsys)
    assert rc == 1 and str(p) in err and expect in err
    assert p.read_bytes() == before and not (tmp_path / f"{p.name}.lock").exists()


# missing ngspice executable / shared library: tests/test_bad_inputs_table.py


# ------------------------------------------------------------------ 5. data hash
def _tiny_data_set(path: Path, card: dict) -> Path:
    with h5py.File(path, "w") as f:
        f.attrs.update(format="pyspice-rram-surrogate-data/1", spec=json.dumps({"seed": 1}),
                       card=json.dumps(card, sort_keys=True))
        for k, split in enumerate(("fit", "test", "fit")):
            g = f.create_group(f"items/{k:05d}")
            g.attrs.update(item_hash=f"h{k}", solver="ngspice", split=split,
                           wall_s=float(np.random.uniform()))
    return path


def test_data_hash_ignores_provenance_timestamps(tmp_path):
    from pyspice_rram.device import ModelCard
    from pyspice_rram.surrogate.fit import data_hash

    card = ModelCard.reference().to_dict()
    a = _tiny_data_set(tmp_path / "a.h5", card | {"provenance": {
        "created": "2026-01-01T00:00:00+00:00", "tool": "pyspice-rram 0.1"}})
    b = _tiny_data_set(tmp_path / "b.h5", card | {"provenance": {
        "created": "2026-12-03T14:00:00+00:00", "tool": "pyspice-rram 0.2"}})
    c = _tiny_data_set(tmp_path / "c.h5", card | {"provenance": {}})
    for split in (None, "fit", "test"):
        assert data_hash(a, split) == data_hash(b, split) == data_hash(c, split)
    other = dict(card, name=str(card.get("name", "")) + " other")
    d = _tiny_data_set(tmp_path / "d.h5", other)
    assert data_hash(d) != data_hash(a)


def test_data_hash_of_shipped_data_unchanged():
    """The shipped surrogate's recorded hashes still match its data sets."""
    from pyspice_rram.surrogate.fit import data_hash

    d = ROOT / "pyspice_rram" / "data" / "surrogate"
    prov = json.loads((d / "default.json").read_text())["provenance"]
    assert set(prov["data_hashes"]) == {"tiles.h5", "tiles_wide.h5"}
    for name, h in prov["data_hashes"].items():
        assert data_hash(d / name, "fit") == h


# ------------------------------------------------------------------ 6. one vocabulary
def _subparsers(parser):
    import argparse

    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            return a.choices
    return {}


COMMANDS = [("xbar", "solve"), ("xbar", "sweep"), ("xbar", "update"), ("xbar", "netlist"),
            ("xbar", "demo"), ("surrogate", "data"), ("surrogate", "fit"),
            ("surrogate", "validate"), ("surrogate", "info"), ("check",)]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p))
def test_help_shows_defaults_and_a_line_per_option(path, capsys):
    p = build_parser()
    for name in path:
        p = _subparsers(p)[name]
    for a in p._actions:
        assert a.help, f"{' '.join(path)}: option {a.option_strings or a.dest} has no help"
    text = p.format_help()
    assert "(default:" in text
    opts = {o for a in p._actions for o in a.option_strings}
    if path != ("surrogate", "info"):
        assert {"-o", "--output", "--out"} <= opts
    if path[0] == "xbar" or path in (("surrogate", "data"), ("check",)):
        assert {"-q", "--quiet", "--no-progress"} <= opts
    if path in (("xbar", "solve"), ("xbar", "sweep"), ("xbar", "update"), ("xbar", "netlist"),
                ("check",)):
        assert "--tile" in opts
    if path in (("xbar", "solve"), ("surrogate", "data")):
        assert {"--force", "--resume", "--workers"} <= opts


@pytest.mark.parametrize("bad,expect", [
    (["--tile", "8,x"], "--tile '8,x'"), (["--r-wires", "1,,two"], "--r-wires '1,,two'")])
def test_sweep_bad_lists_name_the_option(tmp_path, capsys, bad, expect):
    rc, _, err = run(["xbar", "sweep", "-q", "-o", tmp_path / "e.png", *bad], capsys)
    assert rc == 1 and expect in err and not (tmp_path / "e.png").exists()


def test_resume_needs_an_output(tmp_path, weights, capsys):
    rc, _, err = run(["xbar", "solve", "--weights", weights, "--tile", "8", "--solver", "mna",
                      "--resume", "-q"], capsys)
    assert rc == 1 and "--resume" in err and "-o/--output" in err
