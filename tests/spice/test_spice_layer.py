"""The simulator layer (pyspice_rram.spice): runner modes, timeouts, clean-up, errors, rawfiles.

Every test runs the real ngspice (executable and shared library) on circuits whose answer is
known in closed form.
"""

from __future__ import annotations

import ast
import math
import os
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from pyspice_rram import spice
from pyspice_rram.errors import PyspiceRramError, SimulatorError, UserInputError

pytestmark = pytest.mark.skipif(spice.ngspice_executable(required=False) is None,
                                reason="needs ngspice")

MODES = ("batch", "shared")

V_SRC, R1, R2 = 1.3, 1e3, 3.3e3
DIVIDER = "\n".join(["* resistor divider", f"V1 a 0 {V_SRC!r}", f"R1 a b {R1!r}",
                     f"R2 b 0 {R2!r}", ".op", ".dc V1 0 2 0.25", ".end", ""])
#: an RC transient with a 1 ps step over 1 s: runs far longer than any test waits
ENDLESS = "* endless\nV1 a 0 1\nR1 a b 1k\nC1 b 0 1n\n.tran 1p 1\n.end\n"
BAD = "* broken\nR1 a\nXq a 0 nosuchsubckt\nV1 a 0 1\n.op\n.end\n"


@pytest.fixture
def tmpdir_empty(tmp_path, monkeypatch):
    """A private, empty temporary directory for the runner (tempfile.gettempdir())."""
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


# ------------------------------------------------------------------ runner, both modes
@pytest.mark.parametrize("mode", MODES)
def test_divider_matches_the_analytic_answer(mode, tmpdir_empty):
    res = spice.run(DIVIDER, mode=mode, vectors=["v(b)", "i(v1)"])
    dc = next(p for p in res.plots if p.n_points == 9)
    op = next(p for p in res.plots if p.n_points == 1)
    ratio = R2 / (R1 + R2)
    v_sweep = np.arange(9) * 0.25
    np.testing.assert_allclose(dc.scale, v_sweep, rtol=0, atol=1e-15)
    assert np.max(np.abs(dc["v(b)"] - ratio * v_sweep)) <= 1e-9
    assert np.max(np.abs(dc["i(v1)"] + v_sweep / (R1 + R2))) <= 1e-9 / (R1 + R2)
    assert abs(op["v(b)"][0] - V_SRC * ratio) <= 1e-9
    # ngspice's two spellings of a branch current / node voltage reach the same vector
    np.testing.assert_array_equal(op["v1#branch"], op["i(v1)"])
    np.testing.assert_array_equal(op["b"], op["v(b)"])
    assert res.mode == mode and res.wall_s > 0 and res.netlist == DIVIDER
    assert list(tmpdir_empty.iterdir()) == []  # nothing left behind on success


def test_both_modes_give_the_same_doubles():
    a = spice.run(DIVIDER, mode="batch", raw_format="binary")
    b = spice.run(DIVIDER, mode="shared")
    assert [p.names for p in a.plots] == [p.names for p in b.plots]
    for pa, pb in zip(a.plots, b.plots):
        np.testing.assert_array_equal(pa.data, pb.data)


@pytest.mark.parametrize("mode", MODES)
def test_timeout_raises_and_leaves_no_temporary_files(mode, tmpdir_empty):
    with pytest.raises(spice.NgspiceTimeout, match="time limit") as err:
        spice.run(ENDLESS, mode=mode, timeout=0.5, keep_failed=False)
    assert isinstance(err.value, (SimulatorError, TimeoutError, PyspiceRramError))
    assert err.value.netlist_path is None
    assert list(tmpdir_empty.iterdir()) == []
    # by default the netlist (only it) is kept in a folder named in the message
    with pytest.raises(spice.NgspiceTimeout) as err:
        spice.run(ENDLESS, mode=mode, timeout=0.3, stem="slow")
    kept = err.value.netlist_path
    assert str(kept) in str(err.value) and kept.read_text() == ENDLESS
    assert [p.name for p in tmpdir_empty.iterdir()] == [kept.parent.name]
    assert [p.name for p in kept.parent.iterdir()] == ["slow.cir"]
    # the runner (the shared library in particular) works again afterwards
    assert spice.run(DIVIDER, mode=mode).plot.n_points >= 1


@pytest.mark.parametrize("mode", MODES)
def test_keyboard_interrupt_cleans_up(mode, tmpdir_empty):
    main = threading.main_thread().ident
    timer = threading.Timer(0.4, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            spice.run(ENDLESS, mode=mode, timeout=30)
    finally:
        timer.cancel()
    assert list(tmpdir_empty.iterdir()) == []
    assert spice.run(DIVIDER, mode=mode).plot.n_points >= 1


@pytest.mark.parametrize("mode", MODES)
def test_bad_netlist_error_carries_the_ngspice_message(mode, tmp_path, tmpdir_empty):
    keep = tmp_path / "keep"
    with pytest.raises(spice.NgspiceNetlistError) as err:
        spice.run(BAD, mode=mode, keep_dir=keep, stem="bad")
    exc = err.value
    assert isinstance(exc, spice.NgspiceFailed) and isinstance(exc, RuntimeError)
    assert "unknown subckt" in str(exc).lower() and "nosuchsubckt" in exc.log.lower()
    assert exc.netlist_path == keep / "bad.cir" and exc.netlist_path.read_text() == BAD
    assert list(tmpdir_empty.iterdir()) == []


def test_missing_executable_is_not_found_with_a_hint(monkeypatch):
    monkeypatch.setenv("PYSPICE_RRAM_NGSPICE", "ngspice-that-is-not-installed")
    with pytest.raises(spice.NgspiceNotFound) as err:
        spice.run(DIVIDER)
    assert "ngspice-that-is-not-installed" in str(err.value)
    assert "PYSPICE_RRAM_NGSPICE" in err.value.hint and isinstance(err.value, OSError)


def test_bad_arguments_are_user_errors():
    with pytest.raises(UserInputError, match="mode"):
        spice.run(DIVIDER, mode="spectre")
    with pytest.raises(UserInputError, match="timeout"):
        spice.run(DIVIDER, timeout=0)


def test_too_few_points_is_a_convergence_error():
    # the runner checks the point count a caller expects (a DC sweep's length)
    with pytest.raises(spice.NgspiceConvergenceError, match="9/10 points"):
        spice.run(DIVIDER.replace(".op\n", ""), n_points=10, keep_failed=False)
    assert spice.run(DIVIDER.replace(".op\n", ""), n_points=9).plot.n_points == 9


@pytest.mark.parametrize("log, got, want, expected", [
    ("", 3, 3, None),
    ("Error: unknown subckt: x1", 0, 3, spice.NgspiceNetlistError),
    ("Note: Transient op started", 3, 3, spice.NgspiceConvergenceError),
    ("doAnalyses: TRAN: Timestep too small", 40, None, spice.NgspiceConvergenceError),
    ("error: argument out of range for sinh\n in line 4\n", 3, 3, None),  # recovered
    ("error: argument out of range for sinh\n", 1, 3, spice.NgspiceConvergenceError),
    ("", 0, None, spice.NgspiceFailed),
    ("", 0, 3, spice.NgspiceConvergenceError),
])
def test_classify(log, got, want, expected):
    assert spice.classify(log, got, want) is expected


# ------------------------------------------------------------------ rawfiles
def _ngspice_raw(tmp_path: Path, netlist: str, name: str, ascii_: bool) -> Path:
    cir, raw = tmp_path / f"{name}.cir", tmp_path / f"{name}.raw"
    cir.write_text(netlist)
    env = {k: v for k, v in os.environ.items() if k != "SPICE_ASCIIRAWFILE"}
    if ascii_:
        env["SPICE_ASCIIRAWFILE"] = "1"
    subprocess.run([spice.ngspice_executable(), "-b", "-r", str(raw), str(cir)], cwd=tmp_path,
                   env=env, capture_output=True, timeout=60, check=True)
    return raw


RC_AC = "\n".join(["* rc low-pass", "V1 a 0 dc 0 ac 1", "R1 a b 1k", "C1 b 0 1u",
                   ".ac dec 5 10 100k", ".end", ""])


@pytest.mark.parametrize("netlist", [DIVIDER, RC_AC], ids=["real-two-plots", "complex"])
def test_binary_and_ascii_rawfiles_give_the_same_vectors(tmp_path, netlist):
    binary = spice.read_raw(_ngspice_raw(tmp_path, netlist, "b", ascii_=False))
    ascii_ = spice.read_raw(_ngspice_raw(tmp_path, netlist, "a", ascii_=True))
    assert b"Binary:" in (tmp_path / "b.raw").read_bytes()
    assert b"Values:" in (tmp_path / "a.raw").read_bytes()
    assert [p.name for p in binary] == [p.name for p in ascii_]
    assert [p.names for p in binary] == [p.names for p in ascii_]
    for pb, pa in zip(binary, ascii_):
        assert pb.data.dtype == pa.data.dtype and pb.data.shape == pa.data.shape
        # ASCII rawfiles carry 16 significant digits
        np.testing.assert_allclose(pa.data, pb.data, rtol=2e-16 * 8, atol=1e-300)
    if netlist is RC_AC:
        plot = binary[-1]
        assert plot.is_complex and plot.n_points == 21
        f = plot.scale.real
        h = 1.0 / (1.0 + 2j * np.pi * f * 1e3 * 1e-6)
        np.testing.assert_allclose(plot["v(b)"], h, rtol=1e-9)
    else:
        assert len(binary) == 2  # .op and .dc
        assert binary[-1 if binary[-1].n_points == 1 else 0]["v(b)"][0] == pytest.approx(
            V_SRC * R2 / (R1 + R2), abs=1e-9)


def test_runner_raw_formats_agree(tmpdir_empty):
    b = spice.run(DIVIDER, raw_format="binary")
    a = spice.run(DIVIDER, raw_format="ascii")
    for pb, pa in zip(b.plots, a.plots):
        np.testing.assert_allclose(pa.data, pb.data, rtol=2e-15, atol=1e-300)


def test_cut_rawfile_is_an_error_naming_the_file(tmp_path):
    raw = _ngspice_raw(tmp_path, DIVIDER, "b", ascii_=False)
    cut = tmp_path / "cut.raw"
    cut.write_bytes(raw.read_bytes()[:-20])
    with pytest.raises(spice.RawFileError, match="cut.raw"):
        spice.read_raw(cut)
    (tmp_path / "junk.raw").write_text("hello\n")
    with pytest.raises(spice.RawFileError, match="junk.raw"):
        spice.read_raw(tmp_path / "junk.raw")


# ------------------------------------------------------------------ netlist text
def test_number_formatter_round_trips_and_refuses_non_finite():
    for value in (6.366e6, 1 / 3, 7.853981633974483e-13, -5.0, 0.0, 1e300, np.float32(0.1)):
        assert float(spice.fmt(value)) == float(value)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(UserInputError, match="non-finite"):
            spice.fmt(bad)


def test_text_helpers():
    assert spice.options_line({"reltol": 1e-9, "itl1": 1000, "noopiter": None}, klu=True) == \
        ".options klu reltol=1e-09 itl1=1000 noopiter"
    assert spice.index_pwl("v(idx)", [0.5]) == "pwl(v(idx),0,0.5,1,0.5)"
    assert spice.index_pwl("v(i)", np.arange(8.0), per_line=3) == (
        "pwl(v(i),0,0.0,1,1.0,2,2.0,\n+ 3,3.0,4,4.0,5,5.0,\n+ 6,6.0,7,7.0)")
    assert spice.time_pwl([0, 1e-9], [0, 1.5]) == "PWL(0.0 0.0 1e-09 1.5)"
    assert spice.element("X1", "a", "0", "motiox", area=1e-14, x0=0.5) == \
        "X1 a 0 motiox area=1e-14 x0=0.5"
    assert spice.save_lines(["i(v1)", "i(v2)", "i(v3)"], per_line=2) == [
        ".save i(v1) i(v2)", ".save i(v3)"]
    text = spice.insert_before("t\nV1 a 0 1\n.dc V1 0 1 1\n.end\n", [".save v(a)"], ".dc")
    assert text == "t\nV1 a 0 1\n.save v(a)\n.dc V1 0 1 1\n.end\n"


def test_spice_layer_imports_only_the_package_errors():
    """The simulator layer is the lowest: from pyspice_rram it imports pyspice_rram.errors
    and itself only."""
    root = Path(spice.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 or (node.module or "").startswith("pyspice_rram.spice"):
                    continue
                mod = ("pyspice_rram." if node.level == 2 else "") + (node.module or "")
                assert not mod.startswith("pyspice_rram") or mod == "pyspice_rram.errors", \
                    f"{path.name} imports {mod}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("pyspice_rram") for a in node.names), path
