"""Adversarial inputs to the fitter: sparse or degenerate data sets, a typo in a family,
unwritable outputs and a failing report. Each data set is small and SYNTHETIC (simulated
through the calibration program from the reference card, 0.5 % read noise); each fit is one
family, no global starts, one conditional round."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pyspice_rram.calibration import fitting as fit_mod
from pyspice_rram.calibration import report as report_mod
from pyspice_rram.calibration.fitting import fit_program, write_outputs
from pyspice_rram.calibration.io import load_dataset
from pyspice_rram.calibration.program import build_program, predict, simulate_states
from pyspice_rram.cli import main as cli_main
from pyspice_rram.device import ModelCard

RECIPE = """name = "adversarial"
synthetic = true
read_voltage = 0.2
[noise]
pulse_rel = 0.005
pulse_floor = 1e-13
[scheme]
v_set = 1.8
t_set = 1e-05
v_reset = -3.0
t_reset = 1e-05
v_read = 0.2
[[pulses]]
file = "pulses.csv"
initial_state = {init}
"""
FAMILY = ["linear/threshold/linear"]
FAST = dict(progress=False, families=FAMILY, n_starts=0, max_rounds=1, max_nfev=100)


def write_pulses(directory: Path, rows, init: float = 0.0, seed: int = 1,
                 card: ModelCard | None = None) -> Path:
    """Rows ``(device, diameter_nm, cycle, pulse, V, width)``; reads simulated from ``card``
    (default the reference card) with cycle-to-cycle noise and 0.5 % read noise."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "recipe.toml").write_text(RECIPE.format(init=init))

    def write(g):
        with open(directory / "pulses.csv", "w") as fh:
            fh.write("device,diameter (nm),cycle,pulse,V_pulse (V),t_pulse (s),G (S)\n")
            for (dev, d, c, k, v, w), gg in zip(rows, g):
                fh.write(f"{dev},{d:g},{c},{k},{v:g},{w:g},{gg:.8e}\n")

    write([1e-6] * len(rows))
    prog = build_program(load_dataset(directory))
    rng = np.random.default_rng(seed)
    card = card or ModelCard.reference()
    y = predict(prog, card, simulate_states(prog, card, c2c=True, rng=rng))
    write(y * (1 + 0.005 * rng.standard_normal(y.size)))
    return directory


def ramp(dev="d1", cycles=1, n_dep=30, n_pot=60, v_reset=-3.0):
    rows = []
    for c in range(1, cycles + 1):
        rows.append((dev, 200.0, c, 0, 0.0, 1e-5))
        rows += [(dev, 200.0, c, k, v_reset, 1e-5) for k in range(1, n_dep + 1)]
        rows += [(dev, 200.0, c, n_dep + k, 1.8, 1e-5) for k in range(1, n_pot + 1)]
    return rows


def test_one_cycle_saturating_reset_is_undetermined_not_exact(tmp_path):
    """One train, one cycle, a reset that saturates in one pulse: v_d is not determined by
    the data. Its stderr was 0 (the pseudo-inverse of a zero Jacobian column), a claim of
    exact knowledge in the card; it is infinite now, and δ/μ is not estimated."""
    ds = load_dataset(write_pulses(tmp_path / "d", ramp()))
    r = fit_program(ds, **FAST)
    for name in ("v_d", "beta_d"):
        p = r.parameters[name]
        assert p.vary and not (p.stderr < math.inf), (name, p.stderr)
    assert not r.parameters["c2c_sigma"].vary and r.card.c2c_sigma is None
    assert "c2c_sigma" in r.card.not_estimated
    assert r.quality["verdict"] != "good"
    assert any("v_d is undetermined" in x for x in r.quality["reasons"])


def test_fewer_observations_than_parameters_is_poor(tmp_path):
    """Three reads and four free parameters: the model passes through every read (R² = 1),
    which was judged 'usable'; an underdetermined fit is poor."""
    rows = [("d1", 200.0, 1, k, 1.8 if k else 0.0, 1e-5) for k in range(3)]
    r = fit_program(load_dataset(write_pulses(tmp_path / "d", rows)), **FAST)
    assert r.quality["verdict"] == "poor"
    assert any("underdetermined" in x for x in r.quality["reasons"])


def test_depression_only_has_no_state_count(tmp_path):
    """Without a potentiating step the potentiation kinetics are held at generic start
    values; the state count 'at the nominal scheme' computed from them (131 here) described
    the start values, not the device. It is not estimated now, and that alone is no poor."""
    rows = ramp("d1", n_dep=60, n_pot=0, v_reset=-1.5) + ramp("d2", n_dep=60, n_pot=0,
                                                              v_reset=-1.5)
    r = fit_program(load_dataset(write_pulses(tmp_path / "d", rows, init=1.0)), **FAST)
    assert math.isnan(r.metrics["n_states_card"])
    assert "no potentiating" in r.metrics["n_states_card_note"]
    assert math.isnan(r.metrics["nonlinearity_card"])
    assert r.summary()["n_states"] is None or math.isnan(r.summary()["n_states"])
    assert not any("implausible state count" in x for x in r.quality["reasons"])
    assert any("state count" in x and x.startswith("info:") for x in r.quality["reasons"])


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    return write_pulses(tmp_path_factory.mktemp("small") / "d", ramp(cycles=2, n_dep=10,
                                                                      n_pot=30))


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_cli_family_typo_names_the_option(small_set, capsys):
    """A typo in --family was reported as 'recipe [fit] families[0]' (the recipe has none)."""
    rc = cli_main(["fit", str(small_set), "-q", "--family", "schotky/soft_bounds/log"])
    assert rc == 1
    _one_line_error(capsys, "--family", "'schotky'")


def test_cli_unwritable_output_fails_before_the_fit(small_set, tmp_path, capsys, monkeypatch):
    """An output path under a file raised FileExistsError with a traceback, after the fit."""
    called = []
    monkeypatch.setattr(fit_mod, "fit", lambda *a, **k: called.append(1))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    rc = cli_main(["fit", str(small_set), "-q", "-o", str(blocker / "card.json")])
    assert rc == 1 and not called
    _one_line_error(capsys, str(blocker))


def test_cli_report_failure_is_recorded_in_quality(small_set, tmp_path, monkeypatch, capsys):
    """The CLI printed a report failure but left quality.json saying the fit was fine; the
    card and quality.json are on disk and the verdict is poor with the reason."""
    def boom(*a, **k):
        raise RuntimeError("figure exploded")

    monkeypatch.setattr(report_mod, "figure_pulses", boom)
    out = tmp_path / "out"
    rc = cli_main(["fit", str(small_set), "-q", "-o", str(out / "card.json"), "--starts", "0",
                   "--max-rounds", "1", "--family", FAMILY[0], "--strict"])
    assert rc == 3
    q = json.loads((out / "quality.json").read_text())
    assert q["verdict"] == "poor"
    assert any("report failed" in x and "figure exploded" in x for x in q["reasons"])
    assert ModelCard.load(out / "card.json").provenance["dataset"] == "adversarial"


def test_write_outputs_report_failure_keeps_card(small_set, tmp_path, monkeypatch):
    """The Python API: a figure that raises inside the report leaves card and quality.json."""
    r = fit_program(load_dataset(small_set), **FAST)
    monkeypatch.setattr(report_mod, "figure_delta_mu",
                        lambda *a, **k: (_ for _ in ()).throw(MemoryError("huge")))
    paths = write_outputs(r, tmp_path / "o")
    assert paths["card"].exists() and paths["quality"].exists()
    q = json.loads(paths["quality"].read_text())
    assert q["verdict"] == "poor" and any("MemoryError" in x for x in q["reasons"])


def test_c2c_from_two_devices_has_a_finite_stderr(tmp_path):
    """δ/μ from two devices (one cycle each) was printed as '0.23 ± nan': a value without
    an uncertainty. Its stderr now comes from the pooled steps."""
    rows = ramp("d1", n_dep=10, n_pot=60) + ramp("d2", n_dep=10, n_pot=60)
    r = fit_program(load_dataset(write_pulses(tmp_path / "d", rows)), **FAST)
    p = r.parameters["c2c_sigma"]
    assert p.vary and math.isfinite(p.value) and 0 < p.stderr < math.inf


def test_dead_device_is_poor_because_the_reads_do_not_change(tmp_path):
    """Every read the same conductance (a stuck cell) up to 0.5 % read noise: poor, and the
    reason says that the reads do not change (not only an absurd R²)."""
    d = tmp_path / "dead"
    rows = ramp()
    write_pulses(d, rows)
    rng = np.random.default_rng(5)
    lines = (d / "pulses.csv").read_text().splitlines()
    out = [lines[0]] + [",".join(ln.split(",")[:-1] + [f"{2e-6 * (1 + 0.005 * rng.standard_normal()):.8e}"])
                        for ln in lines[1:]]
    (d / "pulses.csv").write_text("\n".join(out) + "\n")
    r = fit_program(load_dataset(d), **FAST)
    assert r.quality["verdict"] == "poor"
    assert any("do not change beyond their noise" in x for x in r.quality["reasons"]), \
        r.quality["reasons"]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGKILL"])
def test_interrupted_fit_leaves_the_earlier_outputs_unchanged(tmp_path, sig):
    """A `fit --force` over an earlier result, interrupted while it fits: the earlier card,
    quality.json, .lib, .va and report are byte-identical afterwards (outputs are written as
    one set through a temporary directory); SIGINT is one line and exit 130."""
    import signal
    import subprocess
    import sys
    import time

    d = write_pulses(tmp_path / "d", ramp(cycles=3))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pyspice_rram.cli", "fit", str(d), "-o", str(out / "card.json"),
           "--quiet", "--family", FAMILY[0], "--starts", "0"]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert any(p.name == "report.md" for p in before)
    # a slow fit of the same outputs (many starts: ~0.7 ms each on a 2-core VM, minutes in
    # all -- 4096 starts finished inside the 6 s on a faster machine), interrupted while it runs
    slow = cmd[:-2] + ["--starts", "200000", "--force"]
    proc = subprocess.Popen(slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(6.0)
    assert proc.poll() is None, "the slow fit ended before the signal: the test needs more starts"
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    if sig == "SIGINT":
        assert proc.returncode == 130 and b"Traceback" not in err and b"interrupted" in err
