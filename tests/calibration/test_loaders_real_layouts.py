"""Loaders on the layouts of real measurement data (CrossSim ramps, Gong et al. wide
normalised data, raw SMU exports) and the sanity checks that guard them.

Every test writes real files into ``tmp_path``; no mocks.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from pyspice_rram.calibration.io import (ClippedPointsWarning, DataError, SuspiciousDataWarning,
                                         load_dataset, load_pulse_trains, load_sweeps,
                                         split_polarity, voltage_branches)
from pyspice_rram.calibration.recipe import load_recipe
from pyspice_rram.calibration.units import split_header

SHARED = Path("/work/shared/data/devices")


def _pulses(tmp_path, name, text, recipe, encoding=None):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding=encoding or "utf-8")
    (tmp_path / "recipe.toml").write_text(f'[[pulses]]\nfile = "{name}"\n{recipe}')
    return load_recipe(tmp_path).pulses[0]


def _sweeps(tmp_path, name, text, recipe="", encoding=None):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding=encoding or "utf-8")
    (tmp_path / "recipe.toml").write_text(f'[[sweeps]]\nfile = "{name}"\n{recipe}')
    return load_recipe(tmp_path).sweeps[0]


# ------------------------------------------------------------------ CrossSim layout
CONDITIONS = ('conditions = {column = "direction", potentiation = {v = "1 V", width = "1 us"}, '
              'depression = {v = "-1.2 V", width = "2 us"}}\n')
CROSSSIM_RECIPE = ('read_voltage = "0.1 V"\narea = "1 um^2"\n'
                   'sort_by = ["ramp", "direction", "read_index"]\n' + CONDITIONS)


def _crosssim_text(n_pot=(4, 3, 5), n_dep=(3, 4, 2)):
    """direction,ramp,read_index,read_current_A,conductance_S: every potentiation ramp
    first, then every depression ramp, as in crosssim_set_reset_ramps.csv. Conductance
    encodes (direction, ramp, read) so that the order can be checked exactly."""
    rows = ["direction,ramp,read_index,read_current_A,conductance_S"]
    for direction, ns, base in (("potentiation", n_pot, 1e-3), ("depression", n_dep, 2e-3)):
        for r, n in enumerate(ns, 1):
            for k in range(n):
                g = base + r * 1e-5 + k * 1e-7
                rows.append(f"{direction},{r},{k},{g * 0.1:.9g},{g:.9g}")
    return "\n".join(rows) + "\n"


def test_crosssim_layout_sorted_into_alternating_cycles(tmp_path):
    e = _pulses(tmp_path, "ramps.csv", _crosssim_text(), CROSSSIM_RECIPE)
    (t,) = load_pulse_trains(e)
    # ramp1-pot (4 reads), ramp1-dep (3), ramp2-pot (3), ramp2-dep (4), ramp3-pot (5), ramp3-dep (2)
    sizes = [4, 3, 3, 4, 5, 2]
    assert t.conductance.size == sum(sizes)
    np.testing.assert_array_equal(t.cycle, np.repeat(np.arange(1, 7), sizes))
    np.testing.assert_array_equal(t.pulse, np.concatenate([np.arange(n) for n in sizes]))
    expect_g = np.concatenate([
        (1e-3 if c % 2 == 0 else 2e-3) + (c // 2 + 1) * 1e-5 + np.arange(n) * 1e-7
        for c, n in enumerate(sizes)])
    np.testing.assert_allclose(t.conductance, expect_g, rtol=1e-12)
    # read_index 0 is the read before the first pulse of its ramp: n - 1 pulses per ramp
    assert t.v_pulse.size == sum(n - 1 for n in sizes)
    np.testing.assert_allclose(t.v_pulse, np.concatenate(
        [np.full(n - 1, 1.0 if c % 2 == 0 else -1.2) for c, n in enumerate(sizes)]))
    np.testing.assert_allclose(t.t_pulse, np.concatenate(
        [np.full(n - 1, 1e-6 if c % 2 == 0 else 2e-6) for c, n in enumerate(sizes)]))
    np.testing.assert_array_equal(t.read_after[:8], [0, 1, 2, 3, 3, 4, 5, 5])
    # locations are the original file lines: ramp 1 depression is listed after all 12
    # potentiation reads (lines 2-13), so its first read is line 14
    assert t.where[:5] == ["line 2", "line 3", "line 4", "line 5", "line 14"]
    np.testing.assert_allclose(t.v_read, 0.1)
    assert t.state_from_first_read is False and t.normalised is None


def test_state_from_first_read_is_carried(tmp_path):
    e = _pulses(tmp_path, "ramps.csv", _crosssim_text(),
                CROSSSIM_RECIPE + "state_from_first_read = true\n")
    (t,) = load_pulse_trains(e)
    assert t.state_from_first_read is True
    (tmp_path / "recipe.toml").write_text('[[pulses]]\nfile = "ramps.csv"\n'
                                          'state_from_first_read = "yes"\n')
    with pytest.raises(ValueError, match=r"state_from_first_read: expected true or false"):
        load_recipe(tmp_path)


def test_sort_by_conditions_order_follows_recipe(tmp_path):
    """Listing depression first in the recipe puts each ramp's depression half first."""
    recipe = CROSSSIM_RECIPE.replace(
        CONDITIONS, 'conditions = {column = "direction", depression = {v = -1.2, width = 2e-6}, '
                    'potentiation = {v = 1.0, width = 1e-6}}\n')
    (t,) = load_pulse_trains(_pulses(tmp_path, "ramps.csv", _crosssim_text(), recipe))
    assert t.v_pulse[0] == -1.2 and t.where[0] == "line 14"


def test_sort_by_numeric_not_text(tmp_path):
    """Ramp 10 sorts after ramp 9 (numeric), and the sort is stable."""
    rows = ["direction,ramp,read_index,conductance_S"]
    for r in (10, 9):
        for k in range(3):
            rows.append(f"potentiation,{r},{k},{1e-3 + r * 1e-5 + k * 1e-7:.9g}")
    (t,) = load_pulse_trains(_pulses(tmp_path, "r.csv", "\n".join(rows) + "\n",
                                     CROSSSIM_RECIPE))
    assert t.where == ["line 5", "line 6", "line 7", "line 2", "line 3", "line 4"]


def test_unlisted_condition_label(tmp_path):
    text = _crosssim_text().replace("depression,2,1,", "set,2,1,")
    e = _pulses(tmp_path, "ramps.csv", text, CROSSSIM_RECIPE)
    line = text.splitlines().index(next(r for r in text.splitlines()
                                        if r.startswith("set,"))) + 1
    with pytest.raises(DataError, match=rf"ramps\.csv: column 'direction', line {line}: "
                                        rf"condition 'set' is not listed in the recipe's "
                                        rf"conditions \(\['potentiation', 'depression'\]\)"):
        load_pulse_trains(e)


def test_sort_by_missing_column(tmp_path):
    e = _pulses(tmp_path, "ramps.csv", _crosssim_text(),
                CROSSSIM_RECIPE.replace('"ramp", ', '"cycle_no", '))
    with pytest.raises(DataError, match=r"ramps\.csv: column 'cycle_no' \(recipe sort_by\) is "
                                        r"missing"):
        load_pulse_trains(e)


def test_conditions_and_pulse_columns_conflict(tmp_path):
    text = "direction,pulse,V_pulse (V),width (s),G (S)\npotentiation,0,1,1e-6,1e-3\n" \
           "potentiation,1,1,1e-6,1.1e-3\n"
    e = _pulses(tmp_path, "p.csv", text, 'read_voltage = 0.1\narea = 1e-12\n' + CONDITIONS)
    with pytest.raises(DataError, match=r"p\.csv: the recipe gives pulse 'conditions' and the "
                                        r"file has pulse amplitude/width columns"):
        load_pulse_trains(e)


def test_long_initial_set_and_several_amplitudes(tmp_path):
    """'Several set/reset amplitudes and a long initial SET' with conditions: a forming
    pulse of 1 ms, then set/reset at two amplitudes each."""
    rows = ["step,pulse,G (uS)"]
    labels = ["form", "set_a", "set_a", "reset_a", "set_b", "reset_b"]
    for k, lab in enumerate(labels):
        rows.append(f"{lab},{k + 1},{10 + k}")
    recipe = ('read_voltage = 0.2\ndiameter = "100 nm"\n'
              'conditions = {column = "step", form = {v = "3 V", width = "1 ms"}, '
              'set_a = {v = 1.5, width = "10 us"}, set_b = {v = 1.8, width = "10 us"}, '
              'reset_a = {v = -2, width = "10 us"}, reset_b = {v = -2.5, width = "10 us"}}\n')
    (t,) = load_pulse_trains(_pulses(tmp_path, "p.csv", "\n".join(rows) + "\n", recipe))
    np.testing.assert_allclose(t.v_pulse, [3.0, 1.5, 1.5, -2.0, 1.8, -2.5])
    np.testing.assert_allclose(t.t_pulse, [1e-3] + [1e-5] * 5)
    np.testing.assert_array_equal(t.read_after, np.arange(1, 7))
    np.testing.assert_allclose(t.conductance, (10 + np.arange(6)) * 1e-6)


def test_per_row_pulse_columns_and_read_voltage_column(tmp_path):
    """Per-row pulse amplitude/width columns (long first SET) and a per-row read voltage:
    G = I_read / V_read row by row."""
    text = ("cycle,pulse,V_pulse (V),t_pulse (us),I_read (uA),V_read (mV)\n"
            "1,0,0,1,0.5,100\n1,1,3.0,1000,2.0,100\n1,2,1.5,10,3.0,200\n1,3,-2.0,10,-1.0,-100\n")
    (t,) = load_pulse_trains(_pulses(tmp_path, "p.csv", text, 'area = "0.01 um^2"\n'))
    np.testing.assert_allclose(t.v_read, [0.1, 0.1, 0.2, -0.1])
    np.testing.assert_allclose(t.conductance, [5e-6, 2e-5, 1.5e-5, 1e-5])
    np.testing.assert_allclose(t.v_pulse, [3.0, 1.5, -2.0])
    np.testing.assert_allclose(t.t_pulse, [1e-3, 1e-5, 1e-5])
    np.testing.assert_array_equal(t.read_after, [0, 1, 2, 3])


def test_read_current_of_wrong_sign(tmp_path):
    text = ("cycle,pulse,V_pulse (V),t_pulse (us),I_read (uA),V_read (mV)\n"
            "1,0,0,1,0.5,100\n1,1,3.0,1000,2.0,100\n1,2,1.5,10,-3.0,200\n")
    e = _pulses(tmp_path, "p.csv", text, 'area = "0.01 um^2"\n')
    with pytest.raises(DataError, match=r"p\.csv: column 'I_read \(uA\)', line 4: read current "
                                        r"'-3\.0' = -3e-06 A has the wrong sign for the read "
                                        r"voltage 0\.2 V"):
        load_pulse_trains(e)


def test_negative_conductance_refused(tmp_path):
    text = "pulse,V_pulse (V),width (s),G (uS)\n0,0,1e-6,5\n1,1,1e-6,-2\n"
    e = _pulses(tmp_path, "p.csv", text, 'area = 1e-12\nread_voltage = 0.1\n')
    with pytest.raises(DataError, match=r"column 'G \(uS\)', line 3: conductance '-2' = -2e-06 S "
                                        r"is implausible.*cannot be zero or negative"):
        load_pulse_trains(e)


def test_read_index_is_a_pulse_alias():
    from pyspice_rram.calibration.io import ROLES
    assert "read_index" in ROLES["pulse"][1]


# ------------------------------------------------------------------ Gong wide layout
GONG_RECIPE = ('read_voltage = "0.1 V"\narea = "1 um^2"\n'
               'wide = {index = "pulse_index", columns = ["up_normalized_conductance_1", '
               '"down_normalized_conductance_1"], conditions = ["up", "down"]}\n'
               'conditions = {up = {v = "1 V", width = "1 us"}, down = {v = "-1 V", '
               'width = "1 us"}}\n')


def _gong_text(n=6):
    up = np.round(np.linspace(-0.9, 0.8, n) * 90) / 90
    down = np.round(np.linspace(0.8, -0.9, n) * 90) / 90
    rows = ["pulse_index,up_normalized_conductance_1,down_normalized_conductance_1"]
    rows += [f"{k},{u:.5f},{d:.5f}" for k, (u, d) in enumerate(zip(up, down))]
    return "\n".join(rows) + "\n", up, down


def test_gong_wide_normalised(tmp_path):
    text, up, down = _gong_text()
    e = _pulses(tmp_path, "gong.csv", text,
                GONG_RECIPE + 'normalised = {scale = "45 uS", offset = "55 uS"}\n')
    (t,) = load_pulse_trains(e)
    vals = np.round(np.r_[up, down], 5)
    np.testing.assert_allclose(t.conductance, 55e-6 + 45e-6 * vals, rtol=1e-12)
    np.testing.assert_array_equal(t.cycle, np.repeat([1, 2], 6))
    np.testing.assert_array_equal(t.pulse, np.r_[np.arange(6), np.arange(6)])
    np.testing.assert_allclose(t.v_pulse, np.r_[np.full(5, 1.0), np.full(5, -1.0)])
    np.testing.assert_array_equal(t.read_after, np.r_[np.arange(6), 5 + np.arange(6)])
    assert t.where[0] == "line 2, column 'up_normalized_conductance_1'"
    assert t.where[6] == "line 2, column 'down_normalized_conductance_1'"
    assert t.normalised == {"scale": pytest.approx(45e-6), "offset": pytest.approx(55e-6),
                            "quantity": "conductance",
                            "column": "up_normalized_conductance_1, down_normalized_conductance_1"}


def test_dimensionless_without_normalised(tmp_path):
    text, _, _ = _gong_text()
    e = _pulses(tmp_path, "gong.csv", text, GONG_RECIPE)
    with pytest.raises(DataError, match=r"gong\.csv: column 'conductance \(1\)' \(conductance\) "
                                        r"is dimensionless.*add normalised = \{scale = \.\.\., "
                                        r"offset = \.\.\.\}"):
        load_pulse_trains(e)


@pytest.mark.parametrize("header", ["G (a.u.)", "G (1)", "G_norm_1"])
def test_dimensionless_long_format(tmp_path, header):
    text = f"pulse,V_pulse (V),width (s),{header}\n0,0,1e-6,0.5\n1,1,1e-6,0.75\n"
    e = _pulses(tmp_path, "p.csv", text, 'area = 1e-12\nread_voltage = 0.1\n'
                + (f'columns = {{conductance = "{header}"}}\n' if "norm" in header else ""))
    with pytest.raises(DataError, match=r"is dimensionless.*add normalised"):
        load_pulse_trains(e)
    (tmp_path / "recipe.toml").write_text((tmp_path / "recipe.toml").read_text()
                                          + 'normalised = {scale = "2 uS"}\n')
    (t,) = load_pulse_trains(load_recipe(tmp_path).pulses[0])
    np.testing.assert_allclose(t.conductance, [1e-6, 1.5e-6])


def test_normalised_to_nonpositive_conductance(tmp_path):
    text, up, _ = _gong_text()
    e = _pulses(tmp_path, "gong.csv", text,
                GONG_RECIPE + 'normalised = {scale = "45 uS", offset = "30 uS"}\n')
    with pytest.raises(DataError, match=r"gong\.csv: column 'conductance \(1\)', line 2, column "
                                        r"'up_normalized_conductance_1': conductance '-0\.9"
                                        r"0000' = -1\.05e-05 S \(= 3e-05 \+ 4\.5e-05 \* value, "
                                        r"recipe normalised\) is implausible"):
        load_pulse_trains(e)


def test_normalised_read_current(tmp_path):
    text = "pulse,V_pulse (V),width (s),I_read (a.u.)\n0,0,1e-6,0.5\n1,1,1e-6,-0.5\n"
    e = _pulses(tmp_path, "p.csv", text, 'area = 1e-12\nread_voltage = -0.1\n'
                'normalised = {scale = "1 uA", offset = "-2 uA"}\n')
    (t,) = load_pulse_trains(e)
    np.testing.assert_allclose(t.conductance, [1.5e-5, 2.5e-5])
    assert t.normalised["quantity"] == "current"
    # a conductance scale for a read-current column is refused
    (tmp_path / "recipe.toml").write_text('[[pulses]]\nfile = "p.csv"\narea = 1e-12\n'
                                          'read_voltage = -0.1\nnormalised = {scale = "1 uS"}\n')
    with pytest.raises(DataError, match=r"is a read_current \(current\) but the recipe's "
                                        r"normalised scale/offset are a conductance"):
        load_pulse_trains(load_recipe(tmp_path).pulses[0])


def test_normalised_on_a_column_with_a_unit(tmp_path):
    text = "pulse,V_pulse (V),width (s),G (uS)\n0,0,1e-6,5\n1,1,1e-6,6\n"
    e = _pulses(tmp_path, "p.csv", text, 'area = 1e-12\nread_voltage = 0.1\n'
                'normalised = {scale = "1 uS"}\n')
    with pytest.raises(DataError, match=r"column 'G \(uS\)' has the unit 'uS', but the recipe "
                                        r"entry says it is normalised"):
        load_pulse_trains(e)


def test_wide_ramps_of_one_condition(tmp_path):
    """CrossSim's original layout: one column per ramp, no index, ramps of different
    lengths (trailing empty cells), one condition for all columns."""
    text = "1,2,3\n1e-3,1.1e-3,1.2e-3\n2e-3,2.1e-3,2.2e-3\n3e-3,,3.2e-3\n,,4.2e-3\n"
    recipe = ('read_voltage = 0.1\narea = 1e-12\nunits = {conductance = "S"}\n'
              'wide = {conditions = "set"}\nconditions = {set = {v = 1.1, width = "5 us"}}\n')
    (t,) = load_pulse_trains(_pulses(tmp_path, "set.csv", text, recipe))
    np.testing.assert_allclose(t.conductance, [1e-3, 2e-3, 3e-3, 1.1e-3, 2.1e-3,
                                               1.2e-3, 2.2e-3, 3.2e-3, 4.2e-3])
    np.testing.assert_array_equal(t.cycle, [1, 1, 1, 2, 2, 3, 3, 3, 3])
    np.testing.assert_array_equal(t.pulse, [0, 1, 2, 0, 1, 0, 1, 2, 3])
    np.testing.assert_allclose(t.v_pulse, np.full(6, 1.1))
    np.testing.assert_allclose(t.t_pulse, np.full(6, 5e-6), rtol=1e-12)
    assert t.where[3] == "line 2, column '2'"
    # an empty cell inside a ramp is refused
    (tmp_path / "set.csv").write_text("1,2\n1e-3,1.1e-3\n,2.1e-3\n3e-3,3.1e-3\n")
    with pytest.raises(DataError, match=r"set\.csv: column '1', line 3: an empty field inside "
                                        r"ramp 1"):
        load_pulse_trains(load_recipe(tmp_path).pulses[0])


@pytest.mark.parametrize("recipe, message", [
    ('[[pulses]]\nfile = "g.csv"\nwide = {columns = ["a", "b"], conditions = ["up", "x"]}\n'
     'conditions = {up = {v = 1, width = 1e-6}}\n', r"wide\.conditions: \['x'\] not in conditions"),
    ('[[pulses]]\nfile = "g.csv"\nwide = {columns = ["a", "b", "c"], conditions = ["u", "u"]}\n'
     'conditions = {u = {v = 1, width = 1e-6}}\n', r"2 names for 3 columns"),
    ('[[pulses]]\nfile = "g.csv"\nconditions = {up = {v = 1, width = 1e-6}}\n',
     r"conditions: needs 'column'"),
    ('[[pulses]]\nfile = "g.csv"\nconditions = {column = "d", up = {v = 1, width = 20}}\n',
     r"conditions\.up: pulse width 20 s is implausible"),
    ('[[sweeps]]\nfile = "g.csv"\nnormalised = {scale = 1}\n',
     r"\['normalised'\] only apply to \[\[pulses\]\]"),
    ('[[pulses]]\nfile = "g.csv"\nnormalised = {scale = "1 V"}\n',
     r"normalised: scale and offset must both be a conductance"),
    ('[[pulses]]\nfile = "g.csv"\nencoding = "klingon"\n',
     r"encoding: unknown encoding 'klingon'"),
])
def test_wide_recipe_errors(tmp_path, recipe, message):
    (tmp_path / "recipe.toml").write_text(recipe)
    with pytest.raises(ValueError, match=message):
        load_recipe(tmp_path)


def test_split_header_dimensionless_suffix():
    assert split_header("up_normalized_conductance_1") == ("up_normalized_conductance", "1")
    assert split_header("G (a.u.)") == ("g", "a.u.")
    assert split_header("V_1") == ("v_1", None)       # a channel number, not a unit


# ------------------------------------------------------------------ raw SMU export
def _smu_export(n_cycles=3, vmax=3.0, step=0.03, readback_noise=True, double_zero=True):
    """A Keithley-2450-style export: preamble, no sweep or cycle column, several cycles of
    0 -> +V -> 0 -> -V -> 0 in 30 mV steps; the source read-back puts a few uV on 0 V."""
    rng = np.random.default_rng(3)
    up = np.round(np.arange(0, vmax + step / 2, step), 6)
    pos = np.r_[up, up[-2::-1]]                       # 0 .. 3 .. 0 (201 points)
    neg = -pos[1:]                                    # -0.03 .. -3 .. 0 (200 points)
    cycle = np.r_[pos, neg]
    v = np.concatenate([cycle if (double_zero or c == 0) else cycle[1:]
                        for c in range(n_cycles)])
    # hysteretic current: LRS on the way down of the positive leg, HRS elsewhere
    g = np.where(np.arange(v.size) % cycle.size >= up.size, 2e-4, 2e-5)
    i = g * v + rng.normal(0, 1e-9, v.size)
    meas = v + (rng.normal(0, 3e-6, v.size) if readback_noise else 0.0)
    lines = ["Keithley Instruments 2450 SourceMeter", "Test: dual sweep, 30 mV",
             "Date: 2024-03-01 10:11:12", "",
             "Index,Source Voltage (V),Measured Voltage (V),Current (A)"]
    lines += [f"{k},{vv:.6f},{mv:.7g},{ii:.7g}" for k, (vv, mv, ii) in enumerate(zip(v, meas, i))]
    return "\n".join(lines) + "\n", v, i


@pytest.mark.parametrize("double_zero,readback_noise", [(True, True), (False, True),
                                                         (True, False), (False, False)])
def test_raw_smu_export_split_into_legs(tmp_path, double_zero, readback_noise):
    """The loader before this change failed on the read-back noise around 0 V with 'empty
    sweep (1 point(s))'; now every leg is kept and 0 V points join an adjacent sweep."""
    text, v, i = _smu_export(double_zero=double_zero, readback_noise=readback_noise)
    e = _sweeps(tmp_path, "smu.csv", text,
                'skip_rows = 3\ndwell = "1 ms"\ndiameter = "1 um"\n'
                'columns = {voltage = "Measured Voltage (V)"}\n')
    sw = load_sweeps(e)
    assert [s.sweep for s in sw] == ["0pos", "1neg", "2pos", "3neg", "4pos", "5neg"]
    assert sum(s.voltage.size for s in sw) == v.size                      # every point kept
    for s in sw:
        assert s.voltage.size >= 199
        top = np.abs(s.voltage).max()
        assert top == pytest.approx(3.0, abs=1e-4)
        # branch 0: 0 -> +-3 V, branch 1: back to 0; the turning point ends branch 0
        k = int(np.argmax(np.abs(s.voltage)))
        np.testing.assert_array_equal(s.branch, (np.arange(s.voltage.size) > k).astype(int))
        assert s.valid.all()
    # the first sweep starts at 0 V and keeps its closing 0 V point
    assert abs(sw[0].voltage[0]) < 1e-4 and abs(sw[0].voltage[-1]) < 1e-4
    assert sw[0].voltage.size == 201
    assert sw[0].where[0] == "line 6"


def test_split_polarity_zero_points():
    v = np.array([0, 1, 2, 1, 0, -1, -2, -1, 0, 0, 1, 2, 1, 0], float)
    np.testing.assert_array_equal(split_polarity(v), [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2])
    # zeros between legs of the same polarity stay in that sweep; leading zeros join the first
    np.testing.assert_array_equal(split_polarity(np.array([0, 0, 1, 0, 1, 0.])), np.zeros(6))
    np.testing.assert_array_equal(split_polarity(np.array([0, -1, 0, 1, 0.])), [0, 0, 0, 1, 1])


def test_voltage_branches():
    v = np.array([0, 1, 2, 3, 2, 1, 0, 1, 1, 2])
    np.testing.assert_array_equal(voltage_branches(v), [0, 0, 0, 0, 1, 1, 1, 2, 2, 2])


def test_sweep_column_sweeps_get_branches(tmp_path):
    from test_calibration_loaders import GOOD_SWEEP  # noqa: PLC0415
    (s,) = load_sweeps(_sweeps(tmp_path, "iv.csv", GOOD_SWEEP))
    np.testing.assert_array_equal(s.branch, np.r_[np.zeros(11, int), np.ones(10, int)])


# ------------------------------------------------------------------ encodings
IV_TEXT = "device,diameter (nm),time (s),voltage (V),current (µA)\n" + "\n".join(
    f"d1,100,{(k + 1) * 1e-3:g},{v:.2f},{v * 2:.6g}" for k, v in
    enumerate(np.r_[np.arange(0, 1.01, 0.1), np.arange(0.9, -0.01, -0.1)])) + "\n"


def test_utf8_bom_just_works(tmp_path):
    (s,) = load_sweeps(_sweeps(tmp_path, "iv.csv", IV_TEXT, encoding="utf-8-sig"))
    assert (tmp_path / "iv.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    assert s.device == "d1" and s.current[1] == pytest.approx(0.2e-6)


def test_latin1_file(tmp_path):
    e = _sweeps(tmp_path, "iv.csv", IV_TEXT, encoding="latin-1")
    with pytest.raises(DataError, match=r"iv\.csv: not valid UTF-8 at byte offset 51 \(line 1, "
                                        r"bytes b'\\xb5A\)\\n'\): the file is probably cp1252 "
                                        r"\(Windows\) or latin-1.*encoding = \"latin-1\""):
        load_sweeps(e)
    (s,) = load_sweeps(_sweeps(tmp_path, "iv.csv", IV_TEXT, 'encoding = "latin-1"\n',
                               encoding="latin-1"))
    assert s.current[1] == pytest.approx(0.2e-6)


def test_utf16_file(tmp_path):
    e = _sweeps(tmp_path, "iv.csv", IV_TEXT, encoding="utf-16")
    with pytest.raises(DataError, match=r"iv\.csv: the file is UTF-16.*encoding = \"utf-16\""):
        load_sweeps(e)
    (s,) = load_sweeps(_sweeps(tmp_path, "iv.csv", IV_TEXT, 'encoding = "utf-16"\n',
                               encoding="utf-16"))
    assert s.voltage.size == 21


# ------------------------------------------------------------------ sanity checks
SWEEP_HEAD = "device,diameter (nm),time (s),voltage (V),current (A)"
V_SWEEP = np.round(np.r_[np.arange(0, 1.01, 0.05), np.arange(0.95, -0.01, -0.05)], 2)


def _rows(v=V_SWEEP, cur=None, t=True, diam="100"):
    cur = v * 1e-6 if cur is None else cur
    if t:
        return [f"d1,{diam},{(k + 1) * 1e-3:g},{vv:.2f},{ii:.6g}"
                for k, (vv, ii) in enumerate(zip(v, cur))]
    return [f"d1,{diam},{vv:.2f},{ii:.6g}" for vv, ii in zip(v, cur)]


def test_time_going_backwards(tmp_path):
    rows = _rows()
    rows[5], rows[6] = rows[6], rows[5]
    e = _sweeps(tmp_path, "iv.csv", SWEEP_HEAD + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"iv\.csv: device 'd1', cycle 1, sweep '0pos': column "
                                        r"'time \(s\)', line 8: time '0\.006' is earlier than "
                                        r"the row before it \('0\.007', line 7\): rows out of "
                                        r"time order"):
        load_sweeps(e)


def test_time_shuffled_with_sweep_column(tmp_path):
    rows = [f"s1,{r}" for r in _rows()]
    order = np.random.default_rng(1).permutation(len(rows))
    text = "sweep," + SWEEP_HEAD + "\n" + "\n".join(rows[k] for k in order) + "\n"
    with pytest.raises(DataError, match=r"column 'time \(s\)', line \d+: .*rows out of time "
                                        r"order"):
        load_sweeps(_sweeps(tmp_path, "iv.csv", text))


def test_shuffled_rows_without_time(tmp_path):
    rows = _rows(t=False)
    order = np.random.default_rng(0).permutation(len(rows))
    text = ("device,diameter (nm),voltage (V),current (A)\n"
            + "\n".join(rows[k] for k in order) + "\n")
    with pytest.raises(DataError, match=r"iv\.csv: device 'd1', cycle 1: column 'voltage \(V\)'"
                                        r", line \d+: .*the rows look out of order \(shuffled"):
        load_sweeps(_sweeps(tmp_path, "iv.csv", text, "dwell = 1e-3\n"))


def test_every_row_duplicated(tmp_path):
    rows = [r for r in _rows() for _ in range(2)]
    with pytest.raises(DataError, match=r"41 of 82 rows are exact duplicates of another row of "
                                        r"the same sweep \(line 3 = line 2, .*every row "
                                        r"duplicated\?"):
        load_sweeps(_sweeps(tmp_path, "iv.csv", SWEEP_HEAD + "\n" + "\n".join(rows) + "\n"))


def test_a_few_duplicated_rows_warn(tmp_path):
    rows = _rows()
    rows.insert(10, rows[9])
    with pytest.warns(SuspiciousDataWarning, match=r"1 row\(s\) identical in every column to "
                                                   r"another row of the same sweep \(line 12 = "
                                                   r"line 11\)"):
        (s,) = load_sweeps(_sweeps(tmp_path, "iv.csv", SWEEP_HEAD + "\n" + "\n".join(rows)
                                   + "\n"))
    assert s.voltage.size == 42


def test_duplicated_pulse_rows(tmp_path):
    text = "pulse,V_pulse (V),width (s),G (S)\n" + "\n".join(
        f"{k},1,1e-6,{1e-3 + k * 1e-6:.9g}\n{k},1,1e-6,{1e-3 + k * 1e-6:.9g}" for k in range(5))
    e = _pulses(tmp_path, "p.csv", text + "\n", 'area = 1e-12\nread_voltage = 0.1\n')
    with pytest.raises(DataError, match=r"p\.csv: device 'p': 5 of 10 rows are exact "
                                        r"duplicates of another row of the same cycle"):
        load_pulse_trains(e)


def test_identical_reads_in_different_cycles_are_not_duplicates(tmp_path):
    """Quantised reads (Gong-like, multiples of 1/90) repeat across cycles: not duplicates."""
    text = "pulse,V_pulse (V),width (s),G (uS)\n" + "\n".join(
        f"{k},1,1e-6,{10 + k}" for _ in range(3) for k in range(4)) + "\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error", SuspiciousDataWarning)
        (t,) = load_pulse_trains(_pulses(tmp_path, "p.csv", text,
                                         'area = 1e-12\nread_voltage = 0.1\n'))
    np.testing.assert_array_equal(t.cycle, np.repeat([1, 2, 3], 4))


@pytest.mark.parametrize("col,value,match", [
    ("current (A)", "2.5", r"column 'current \(A\)', line 5: current '2\.5' = 2\.5 A is "
                           r"implausible: must be \|value\| <= 1 A"),
    ("voltage (V)", "-150", r"column 'voltage \(V\)', line 5: voltage '-150' = -150 V is "
                            r"implausible: must be \|value\| <= 100 V"),
    ("diameter (nm)", "0", r"column 'diameter \(nm\)', line 5: diameter '0' = 0 m is "
                           r"implausible: must be > 0 m"),
    ("diameter (nm)", "-100", r"column 'diameter \(nm\)', line 5: diameter '-100' = -1e-07 m "
                              r"is implausible"),
    ("diameter (nm)", "5e6", r"column 'diameter \(nm\)', line 5: area '5e6' = 1\.9635e-05 m\^2 "
                             r"\(from the diameter\) is implausible: must be > 0 m\^2 and <= "
                             r"1e-06 m\^2"),
])
def test_implausible_sweep_values(tmp_path, col, value, match):
    header = SWEEP_HEAD.split(",")
    rows = [r.split(",") for r in _rows()]
    j = header.index(col)
    rows[3][j] = value
    if col.startswith("diameter"):
        for r in rows:
            r[j] = value
    text = SWEEP_HEAD + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    if col.startswith("diameter"):
        match = match.replace("line 5", "line 2")
    with pytest.raises(DataError, match=match):
        load_sweeps(_sweeps(tmp_path, "iv.csv", text))


def test_implausible_area_column(tmp_path):
    text = SWEEP_HEAD.replace("diameter (nm)", "area (mm^2)") + "\n" + "\n".join(
        _rows(diam="2")) + "\n"
    with pytest.raises(DataError, match=r"column 'area \(mm\^2\)', line 2: area '2' = 2e-06 m\^2 "
                                        r"is implausible"):
        load_sweeps(_sweeps(tmp_path, "iv.csv", text))
    (tmp_path / "recipe.toml").write_text('[[sweeps]]\nfile = "iv.csv"\narea = "2 mm^2"\n')
    with pytest.raises(ValueError, match=r"cell area 2e-06 m\^2 is implausible"):
        load_recipe(tmp_path)


@pytest.mark.parametrize("col,value,match", [
    ("G (S)", "12", r"column 'G \(S\)', line 3: conductance '12' = 12 S is implausible: must "
                    r"be > 0 S and <= 10 S"),
    ("G (S)", "0", r"conductance '0' = 0 S is implausible.*cannot be zero or negative"),
    ("width (s)", "0", r"column 'width \(s\)', line 3: pulse_width '0' = 0 s is implausible: "
                       r"must be > 0 s and <= 10 s"),
    ("width (s)", "20", r"column 'width \(s\)', line 3: pulse_width '20' = 20 s"),
    ("V_pulse (V)", "1e3", r"column 'V_pulse \(V\)', line 3: pulse_voltage '1e3' = 1000 V"),
])
def test_implausible_pulse_values(tmp_path, col, value, match):
    header = ["pulse", "V_pulse (V)", "width (s)", "G (S)"]
    rows = [["0", "0", "1e-6", "1e-3"], ["1", "1", "1e-6", "1.1e-3"], ["2", "1", "1e-6", "1.2e-3"]]
    rows[1][header.index(col)] = value
    text = ",".join(header) + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    with pytest.raises(DataError, match=match):
        load_pulse_trains(_pulses(tmp_path, "p.csv", text, 'area = 1e-12\nread_voltage = 0.1\n'))


def test_zero_current_sweep(tmp_path):
    rows = _rows(cur=np.zeros(V_SWEEP.size))
    with pytest.raises(DataError, match=r"iv\.csv: device 'd1', cycle 1, sweep '0pos': column "
                                        r"'current \(A\)', line 2 to line 42: the current is "
                                        r"'0' = 0 at every point"):
        load_sweeps(_sweeps(tmp_path, "iv.csv", SWEEP_HEAD + "\n" + "\n".join(rows) + "\n"))


# ------------------------------------------------------------------ compliance detection
def _two_sweeps(clip_a, clip_b, scale_b=1.0):
    """Two hysteretic sweeps 'a' and 'b' (0 -> 2 V -> 0, the return leg at half the
    current; 'b' scaled by ``scale_b``), each clipped at the up-leg current of the voltage
    ``clip_*``: clipping at 1.9 V flattens 2 points (1.9 V up, 2.0 V), at 1.8 V 3 points."""
    up = np.round(np.arange(0, 2.01, 0.1), 2)
    v = np.r_[up, up[-2::-1]]
    i_up = 1e-4 * np.sinh(v / 0.5)
    i = np.where(np.arange(v.size) < up.size, i_up, 0.5 * i_up)
    rows = ["sweep,diameter (nm),time (s),voltage (V),current (A)"]
    k = 0
    for name, clip, scale in (("a", clip_a, 1.0), ("b", clip_b, scale_b)):
        ii = np.minimum(scale * i, scale * 1e-4 * np.sinh(clip / 0.5))
        for vv, cc in zip(v, ii):
            k += 1
            rows.append(f"{name},500,{k * 1e-3:g},{vv:.2f},{cc:.9g}")
    return "\n".join(rows) + "\n"


def test_common_limit_in_two_sweeps_flagged(tmp_path):
    """2-point flat tops at the same level in two sweeps: a common limit."""
    with pytest.warns(ClippedPointsWarning, match=r"iv\.csv: 4 compliance-clipped point\(s\) "
                                                  r"excluded from the fit in 2 sweeps \(current "
                                                  r"limit .* common to the entry\); first: "
                                                  r"device 'iv', cycle 1, sweep 'a' \(line 21, "
                                                  r"line 22\), device 'iv', cycle 1, sweep 'b'"
                      ) as rec:
        sw = load_sweeps(_sweeps(tmp_path, "iv.csv", _two_sweeps(1.9, 1.9)))
    (w,) = [w.message for w in rec if issubclass(w.category, ClippedPointsWarning)]
    assert (w.n_points, w.n_records, [i.record[-9:] for i in w.issues]) == (
        4, 2, ["sweep 'a'", "sweep 'b'"])
    assert [int((~s.valid).sum()) for s in sw] == [2, 2]
    assert [sw[0].where[j] for j in np.nonzero(~sw[0].valid)[0]] == ["line 21", "line 22"]


def test_flat_tops_at_different_levels_not_flagged(tmp_path):
    """2-point flat tops at different levels in different sweeps: kept (the old rule
    flagged every sweep's flat top)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClippedPointsWarning)
        sw = load_sweeps(_sweeps(tmp_path, "iv.csv", _two_sweeps(1.9, 1.9, scale_b=1.3)))
    assert all(s.valid.all() for s in sw)


def test_single_sweep_plateau_only_at_entry_maximum(tmp_path):
    """3-point flat tops at different levels: only the one at the entry's largest |I| is a
    limit (one sweep alone may show it); the lower one is kept."""
    with pytest.warns(ClippedPointsWarning, match=r"sweep 'b': 3 compliance-clipped") as rec:
        sw = load_sweeps(_sweeps(tmp_path, "iv.csv", _two_sweeps(1.8, 1.8, scale_b=1.3)))
    assert len([w for w in rec if issubclass(w.category, ClippedPointsWarning)]) == 1
    assert sw[0].valid.all() and int((~sw[1].valid).sum()) == 3


# ------------------------------------------------------------------ the real data sets
CROSSSIM = SHARED / "crosssim-ramps" / "crosssim_set_reset_ramps.csv"
GONG = SHARED / "gong-reram" / "gong_et_al_pulse_response.csv"


@pytest.mark.skipif(not (CROSSSIM.exists() and GONG.exists()),
                    reason="shared measured data sets not present")
def test_real_crosssim_and_gong_files(tmp_path):
    import shutil

    shutil.copy(CROSSSIM, tmp_path)
    shutil.copy(GONG, tmp_path)
    (tmp_path / "recipe.toml").write_text(
        f'name = "real"\n[[pulses]]\nfile = "{CROSSSIM.name}"\n' + CROSSSIM_RECIPE
        + "state_from_first_read = true\n"
        f'[[pulses]]\nfile = "{GONG.name}"\n' + GONG_RECIPE
        + 'normalised = {scale = "45 uS", offset = "70 uS"}\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_dataset(tmp_path)
    cs, gg = ds.trains
    assert cs.conductance.size == 13417
    assert np.unique(cs.cycle).size == 79           # 39 potentiation + 40 depression ramps
    assert cs.state_from_first_read
    assert 1.5e-3 < cs.conductance.min() and cs.conductance.max() < 2.6e-3
    # cycles alternate set/reset: the pulses of cycle 1 are +1 V, those of cycle 2 are -1.2 V
    first = cs.read_after[cs.cycle == 2][0]
    assert np.all(cs.v_pulse[:first] == 1.0) and cs.v_pulse[first] == -1.2
    assert gg.conductance.size == 2000 and np.unique(gg.cycle).size == 2
    assert gg.normalised["scale"] == pytest.approx(45e-6)
    assert gg.conductance.min() > 0


def test_sort_by_gap_in_numeric_column(tmp_path):
    text = _crosssim_text().replace("potentiation,2,1,", "potentiation,,1,")
    e = _pulses(tmp_path, "ramps.csv", text, CROSSSIM_RECIPE)
    with pytest.raises(DataError, match=r"ramps\.csv: column 'ramp' \(recipe sort_by\), line 7: "
                                        r"an empty field in a numeric column"):
        load_pulse_trains(e)


def test_recipe_with_bom(tmp_path):
    (tmp_path / "iv.csv").write_text(IV_TEXT)
    (tmp_path / "recipe.toml").write_text('[[sweeps]]\nfile = "iv.csv"\n', encoding="utf-8-sig")
    (s,) = load_sweeps(load_recipe(tmp_path).sweeps[0])
    assert s.voltage.size == 21
