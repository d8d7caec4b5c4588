"""Loaders: units from headers, several layouts, and one test per bad-input case."""

from __future__ import annotations

import math
import warnings

import h5py
import numpy as np
import pytest

from pyspice_rram.calibration.io import (ClippedPointsWarning, DataError, load_dataset,
                                         load_pulse_trains, load_sweeps)
from pyspice_rram.calibration.recipe import load_recipe
from pyspice_rram.calibration.units import si_factor, split_header
from pyspice_rram.device import ModelCard, PulseScheme, area_from_diameter, cell_current
from pyspice_rram.device.pulses import potentiation_depression_train, simulate_pulse_train


@pytest.mark.parametrize("header,name,unit", [
    ("Voltage (V)", "voltage", "V"), ("I [mA]", "i", "mA"), ("current_uA", "current", "uA"),
    ("G (µS)", "g", "µS"), ("diameter_nm", "diameter", "nm"), ("area (um^2)", "area", "um^2"),
    ("V_read", "v_read", None), ("Time(s)", "time", "s"), ("device", "device", None)])
def test_split_header(header, name, unit):
    assert split_header(header) == (name, unit)


@pytest.mark.parametrize("unit,factor,quantity", [
    ("mA", 1e-3, "current"), ("µA", 1e-6, "current"), ("uS", 1e-6, "conductance"),
    ("nm", 1e-9, "length"), ("µm²", 1e-12, "area"), ("um2", 1e-12, "area"), ("ms", 1e-3, "time"),
    ("kOhm", 1e3, "resistance"), ("mV", 1e-3, "voltage")])
def test_si_factor(unit, factor, quantity):
    f, q = si_factor(unit)
    assert q == quantity and f == pytest.approx(factor)


def test_unknown_unit_raises():
    with pytest.raises(KeyError):
        si_factor("furlong")


# ------------------------------------------------------------------ a foreign layout
def _write_keithley_like(tmp_path, card):
    """A Keithley-style export: preamble, TSV, mA and µm units, long format with a device
    column, no time column (dwell in the recipe), cycle column; pulses as conductance in µS
    with the protocol given in the recipe; a per-device HDF5 group tree of sweeps."""
    d = tmp_path / "foreign"
    d.mkdir()
    v = np.r_[np.arange(0, 2.01, 0.05), np.arange(1.95, -0.01, -0.05)]
    rows = []
    truth = {}
    for dev, diam_um in (("A7", 0.5), ("B3", 0.2)):
        area = area_from_diameter(diam_um * 1e-6)
        i = cell_current(v, 0.3, area, card)
        truth[dev] = (area, i)
        for cyc in (1, 2):
            for vv, ii in zip(v, i):
                rows.append(f"{dev}\t{diam_um}\t{cyc}\t{vv:.3f}\t{ii * 1e3:.9g}")
    text = ("Keithley 4200A-SCS export\nTest: IV sweep\n"
            "Dev\tDia (um)\tCycle\tVforce (V)\tImeas [mA]\n" + "\n".join(rows) + "\n")
    (d / "iv_export.txt").write_text(text)
    # pulses: protocol in the recipe (20 set + 20 reset per cycle), read every 5th pulse
    vp, tp = potentiation_depression_train(20, 20, 2, 1.8, 10e-6, -1.9, 10e-6)
    res = simulate_pulse_train(card, vp, tp, area=area_from_diameter(0.5e-6), c2c=False)
    prow = []
    for k in range(0, vp.size + 1, 5):
        cyc, p = (k - 1) // 40 + 1 if k else 1, (k - 1) % 40 + 1 if k else 0
        prow.append(f"{cyc};{p};{res.g[0, k] * 1e6:.9g}")
    (d / "ramps.csv").write_text("Cycle;Pulse #;G_read (uS)\n" + "\n".join(prow) + "\n")
    # HDF5 group tree: /C5/sweep_1 with datasets V (attrs units), I_uA; attrs on device group
    with h5py.File(d / "iv.h5", "w") as f:
        g = f.create_group("C5")
        g.attrs["diameter_nm"] = 300.0
        area = area_from_diameter(300e-9)
        for k in (1, 2):
            s = g.create_group(f"sweep_{k}")
            dv = s.create_dataset("V", data=v)
            dv.attrs["units"] = "V"
            s.create_dataset("I_uA", data=cell_current(v, 0.6, area, card) * 1e6)
            s.create_dataset("t_ms", data=np.arange(1, v.size + 1) * 2.0)
    (d / "recipe.toml").write_text('''
name = "foreign"
read_voltage = "100 mV"
[[sweeps]]
file = "iv_export.txt"
skip_rows = 2
dwell = "1 ms"
compliance = "5 mA"
[[sweeps]]
file = "iv.h5"
[[pulses]]
file = "ramps.csv"
device = "A7"
diameter = "500 nm"
columns = {pulse = "Pulse #"}
protocol = [{v = 1.8, width = "10 us", n = 20}, {v = -1.9, width = 10e-6, n = 20}]
''')
    return d, truth, res


def test_foreign_layouts_load_in_si(tmp_path):
    card = ModelCard.reference()
    card = card.replace(scheme=PulseScheme(v_read=0.1))
    d, truth, res = _write_keithley_like(tmp_path, card)
    ds = load_dataset(d)
    kt = [s for s in ds.sweeps if s.entry == "iv_export"]
    assert {s.device for s in kt} == {"A7", "B3"}
    assert len(kt) == 4  # 2 devices x 2 cycles
    a7 = [s for s in kt if s.device == "A7"][0]
    assert a7.area == pytest.approx(truth["A7"][0], rel=1e-12)
    np.testing.assert_allclose(a7.current, truth["A7"][1], rtol=1e-8)   # mA -> A
    np.testing.assert_allclose(a7.dwell, 1e-3)
    assert a7.valid.all()
    h5 = [s for s in ds.sweeps if s.entry.startswith("iv")and s.source.endswith("sweep_1")]
    assert h5 and h5[0].device == "C5"
    assert h5[0].area == pytest.approx(area_from_diameter(300e-9))
    np.testing.assert_allclose(h5[0].dwell, 2e-3)                     # ms -> s, from time diffs
    tr = ds.trains[0]
    assert tr.area == pytest.approx(area_from_diameter(500e-9))
    assert tr.v_pulse.size == 80 and tr.read_after[-1] == 80
    np.testing.assert_allclose(tr.conductance, res.g[0, tr.read_after], rtol=1e-8)  # uS -> S
    np.testing.assert_allclose(tr.v_read, 0.1)
    assert len(ds.sha256) == 64


# ------------------------------------------------------------------ bad input, one per case
GOOD_SWEEP = "device,diameter (nm),time (s),voltage (V),current (A)\n" + "\n".join(
    f"d1,100,{(k + 1) * 1e-3:g},{v:.2f},{v * 1e-6:.6g}" for k, v in
    enumerate(np.r_[np.arange(0, 1.01, 0.1), np.arange(0.9, -0.01, -0.1)])) + "\n"


def _sweep_set(tmp_path, text, extra=""):
    (tmp_path / "iv.csv").write_text(text)
    (tmp_path / "recipe.toml").write_text(f'[[sweeps]]\nfile = "iv.csv"\n{extra}')
    return load_recipe(tmp_path).sweeps[0]


def test_good_sweep_loads(tmp_path):
    (s,) = load_sweeps(_sweep_set(tmp_path, GOOD_SWEEP))
    assert s.voltage.size == 21 and s.valid.all()


def test_missing_column(tmp_path):
    text = GOOD_SWEEP.replace("current (A)", "other (A)")
    with pytest.raises(DataError, match=r"iv\.csv.*missing column for 'current'"):
        load_sweeps(_sweep_set(tmp_path, text))


def test_missing_mapped_column(tmp_path):
    e = _sweep_set(tmp_path, GOOD_SWEEP, 'columns = {current = "Imeas (A)"}\n')
    with pytest.raises(DataError, match=r"iv\.csv.*'Imeas \(A\)'.*missing"):
        load_sweeps(e)


def test_non_numeric_value(tmp_path):
    lines = GOOD_SWEEP.splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",12.3.4"
    with pytest.raises(DataError, match=r"iv\.csv: column 'current \(A\)', line 6: '12\.3\.4' is not a number"):
        load_sweeps(_sweep_set(tmp_path, "\n".join(lines) + "\n"))


def test_empty_field(tmp_path):
    lines = GOOD_SWEEP.splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ","
    with pytest.raises(DataError, match=r"column 'current \(A\)', line 4: an empty field"):
        load_sweeps(_sweep_set(tmp_path, "\n".join(lines) + "\n"))


def test_nan_value(tmp_path):
    lines = GOOD_SWEEP.splitlines()
    parts = lines[7].split(",")
    parts[3] = "nan"
    lines[7] = ",".join(parts)
    with pytest.raises(DataError, match=r"column 'voltage \(V\)', line 8: value 'nan' is NaN"):
        load_sweeps(_sweep_set(tmp_path, "\n".join(lines) + "\n"))


def test_unknown_unit(tmp_path):
    text = GOOD_SWEEP.replace("current (A)", "current (furlong)")
    with pytest.raises(DataError, match=r"iv\.csv: column 'current \(furlong\)': unknown unit"):
        load_sweeps(_sweep_set(tmp_path, text))


def test_unit_of_wrong_quantity(tmp_path):
    text = GOOD_SWEEP.replace("current (A)", "current (mV)")
    with pytest.raises(DataError, match=r"used as current .* unit 'mV' is a voltage"):
        load_sweeps(_sweep_set(tmp_path, text))


def test_missing_unit(tmp_path):
    text = GOOD_SWEEP.replace("current (A)", "current")
    with pytest.raises(DataError, match=r"column 'current' \(current\) has no unit"):
        load_sweeps(_sweep_set(tmp_path, text))
    # ... and the recipe can supply it
    (s,) = load_sweeps(_sweep_set(tmp_path, text, 'units = {current = "uA"}\n'))
    assert s.current[-2] == pytest.approx(0.1e-6 * 1e-6)


def test_empty_sweep(tmp_path):
    text = GOOD_SWEEP + "d2,100,0.001,0.00,0\n"
    with pytest.raises(DataError, match=r"device 'd2'.*line 23.*empty sweep \(1 point"):
        load_sweeps(_sweep_set(tmp_path, text))


def test_header_only_file(tmp_path):
    with pytest.raises(DataError, match=r"iv\.csv: header but no data rows"):
        load_sweeps(_sweep_set(tmp_path, GOOD_SWEEP.splitlines()[0] + "\n"))


def test_ragged_row(tmp_path):
    lines = GOOD_SWEEP.splitlines()
    lines[2] += ",7"
    with pytest.raises(DataError, match=r"iv\.csv: line 3: 6 fields, the header has 5"):
        load_sweeps(_sweep_set(tmp_path, "\n".join(lines) + "\n"))


def test_missing_area(tmp_path):
    text = "\n".join(",".join(r.split(",")[:1] + r.split(",")[2:]) for r in GOOD_SWEEP.splitlines())
    with pytest.raises(DataError, match=r"no area or diameter column"):
        load_sweeps(_sweep_set(tmp_path, text + "\n"))


def test_pulse_missing_read_column(tmp_path):
    (tmp_path / "p.csv").write_text("pulse,V_pulse (V),width (s),other (A)\n1,1.8,1e-5,1e-6\n"
                                    "2,1.8,1e-5,2e-6\n")
    (tmp_path / "recipe.toml").write_text('[[pulses]]\nfile = "p.csv"\ndiameter = 1e-6\n'
                                          'read_voltage = 0.2\n')
    with pytest.raises(DataError, match=r"p\.csv: missing column for the read"):
        load_pulse_trains(load_recipe(tmp_path).pulses[0])


def test_pulse_without_protocol(tmp_path):
    (tmp_path / "p.csv").write_text("pulse,G (S)\n1,1e-6\n2,2e-6\n")
    (tmp_path / "recipe.toml").write_text('[[pulses]]\nfile = "p.csv"\ndiameter = 1e-6\n'
                                          'read_voltage = 0.2\n')
    with pytest.raises(DataError, match=r"no pulse amplitude/width columns and no 'protocol'"):
        load_pulse_trains(load_recipe(tmp_path).pulses[0])


def test_recipe_errors(tmp_path):
    (tmp_path / "recipe.toml").write_text('[[sweeps]]\nfile = "x.csv"\nbogus = 1\n')
    with pytest.raises(ValueError, match=r"sweeps\[0\]: unknown keys \['bogus'\]"):
        load_recipe(tmp_path)
    (tmp_path / "recipe.toml").write_text('[[sweeps]]\nfile = "x.csv"\ndiameter = "3 parsecs"\n')
    with pytest.raises(ValueError, match=r"unknown unit 'parsecs'"):
        load_recipe(tmp_path)
    (tmp_path / "recipe.toml").write_text('name = "empty"\n')
    with pytest.raises(ValueError, match="lists no"):
        load_recipe(tmp_path)
    (tmp_path / "recipe.toml").write_text('[[sweeps]]\nfile = "x.csv"\ndwell = 1e-3\n')
    with pytest.raises(DataError, match=r"x\.csv: file not found"):
        load_sweeps(load_recipe(tmp_path).sweeps[0])


# ------------------------------------------------------------------ compliance
def _clipped_sweep(icc=None):
    v = np.r_[np.arange(0, 3.01, 0.1), np.arange(2.9, -0.01, -0.1)]
    i = 1e-4 * np.sinh(v / 0.6)
    top = 1e-4 * np.sinh(2.6 / 0.6)
    i = np.minimum(i, top)
    rows = [f"c,1000,{(k + 1) * 1e-3:g},{vv:.2f},{ii:.6g}" for k, (vv, ii) in enumerate(zip(v, i))]
    return ("device,diameter (nm),time (s),voltage (V),current (A)\n" + "\n".join(rows) + "\n",
            int(np.sum(i >= top * (1 - 1e-9))), top)


@pytest.mark.parametrize("with_value", [True, False])
def test_compliance_clipped_points_excluded_with_warning(tmp_path, with_value):
    text, n_clip, top = _clipped_sweep()
    extra = f"compliance = {float(top)!r}\n" if with_value else ""
    with pytest.warns(ClippedPointsWarning, match=rf"{n_clip} compliance-clipped point\(s\) excluded"):
        (s,) = load_sweeps(_sweep_set(tmp_path, text, extra))
    assert (~s.valid).sum() == n_clip
    assert np.all(np.abs(s.current[~s.valid]) >= top * 0.998)


def test_no_false_compliance_on_clean_sweep(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClippedPointsWarning)
        (s,) = load_sweeps(_sweep_set(tmp_path, GOOD_SWEEP))
    assert s.valid.all()
    assert math.isfinite(s.current.sum())


def test_cli_fit_reports_bad_input(tmp_path, capsys):
    """`pyspice-rram fit` on malformed data exits 1 with the file, column and row."""
    from pyspice_rram.cli import main

    lines = GOOD_SWEEP.splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",abc"
    _sweep_set(tmp_path, "\n".join(lines) + "\n")
    assert main(["fit", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "iv.csv: column 'current (A)', line 6: 'abc' is not a number" in err


def test_json_recipe_and_hdf5_table(tmp_path):
    """A JSON recipe and an HDF5 compound table with units in an attribute."""
    import json

    v = np.r_[np.arange(0, 1.01, 0.1), np.arange(0.9, -0.01, -0.1)]
    rec = np.zeros(v.size, dtype=[("dev", "S4"), ("V", "f8"), ("I", "f8"), ("t", "f8")])
    rec["dev"] = b"x1"
    rec["V"] = v
    rec["I"] = v * 2e-3          # in mA
    rec["t"] = np.arange(1, v.size + 1) * 5.0   # in ms
    with h5py.File(tmp_path / "table.h5", "w") as f:
        d = f.create_dataset("run/iv", data=rec)
        d.attrs["units"] = ",V,mA,ms"
    (tmp_path / "recipe.json").write_text(json.dumps({
        "name": "json-set",
        "sweeps": [{"file": "table.h5", "dataset": "run/iv", "area": "0.01 um^2",
                    "columns": {"device": "dev"}}]}))
    ds = load_dataset(tmp_path)
    (s,) = ds.sweeps
    assert s.device == "x1" and s.area == pytest.approx(1e-14)
    np.testing.assert_allclose(s.current, v * 2e-6)
    np.testing.assert_allclose(s.dwell, 5e-3)
