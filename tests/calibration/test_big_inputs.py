"""Big sweep files load through the vectorised reader with the same results and the same
error messages (naming the line) as the row-by-row reader; the CLI prints one warning line per
file for compliance-clipped points."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pyspice_rram.calibration import fitting as fit_mod
from pyspice_rram.calibration import io as io_mod
from pyspice_rram.calibration.io import DataError, LineWhere, load_dataset
from pyspice_rram.cli import main as cli_main

N_ROWS = 200_000
N_DEV = 20
UP = np.round(np.arange(0, 1.5 + 1e-9, 0.03), 3)
CYCLE = np.r_[UP, UP[-2::-1], -UP[1:], -UP[-2:0:-1]]     # 0 -> 1.5 -> 0 -> -1.5 -> 0, 30 mV


def _write(d, n_rows=N_ROWS, n_dev=N_DEV, edit=None, amplitude=3e-5):
    """device, V (V), I (A): ``n_dev`` devices of whole bipolar cycles, compliance 200 uA
    (reached at the top of every sweep with the default ``amplitude``, never with 1e-5);
    ``edit(lines)`` may change the text lines (index 0 is the header)."""
    rng = np.random.default_rng(1)
    per = n_rows // n_dev
    v = np.resize(CYCLE, per)
    devs, vs, cur = [], [], []
    for k in range(n_dev):
        i = np.clip(amplitude * np.sinh(2 * v) * (1 + 0.02 * rng.standard_normal(per)), -2e-4, 2e-4)
        devs += [f"D{k:02d}"] * per
        vs.append(v)
        cur.append(i)
    vs, cur = np.concatenate(vs), np.concatenate(cur)
    lines = ["device,V (V),I (A)"] + [f"{a},{b:.3f},{c:.6e}" for a, b, c in
                                      zip(devs, vs.tolist(), cur.tolist())]
    if edit:
        edit(lines)
    d.mkdir(parents=True, exist_ok=True)
    (d / "sweeps.csv").write_text("\n".join(lines) + "\n")
    (d / "recipe.toml").write_text('name = "big"\n[[sweeps]]\nfile = "sweeps.csv"\n'
                                   'area = "1 um^2"\ndwell = "1 ms"\n')
    return np.array(devs, dtype=object), vs, cur


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    devs, v, i = _write(d)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(d)
    return d, ds, devs, v, i, caught


def test_big_file_loads_every_row_in_order(big):
    d, ds, devs, v, i, _ = big
    assert sum(s.voltage.size for s in ds.sweeps) == N_ROWS
    # every device: 100 bipolar cycles split at the polarity changes -> 2 sweeps per cycle
    per = N_ROWS // N_DEV
    n_cycles = -(-per // CYCLE.size)
    assert {s.device for s in ds.sweeps} == {f"D{k:02d}" for k in range(N_DEV)}
    d0 = [s for s in ds.sweeps if s.device == "D00"]
    assert len(d0) == 2 * n_cycles or len(d0) == 2 * n_cycles - 1
    np.testing.assert_array_equal(np.concatenate([s.voltage for s in d0]), v[:per])
    np.testing.assert_allclose(np.concatenate([s.current for s in d0]), i[:per], rtol=1e-6)
    assert d0[0].where[0] == "line 2" and d0[0].where[-1] == f"line {1 + d0[0].voltage.size}"
    last = [s for s in ds.sweeps if s.device == f"D{N_DEV - 1:02d}"][-1]
    assert last.where[-1] == f"line {N_ROWS + 1}"
    # legs: 0 -> +1.5 V is branch 0, +1.5 -> 0 V branch 1
    s = d0[0]
    k = int(np.argmax(s.voltage))
    assert s.branch[0] == 0 and s.branch[k] == 0 and s.branch[k + 1] == 1 and s.branch[-1] == 1
    assert all(np.all(s.area == 1e-12) for s in d0)


def test_big_file_flags_the_compliance_points(big):
    _, ds, *_, caught = big
    clipped = [w for w in caught if issubclass(w.category, io_mod.ClippedPointsWarning)]
    assert clipped and all(w.message.source.endswith("sweeps.csv") for w in clipped)
    n = sum(int((~s.valid).sum()) for s in ds.sweeps)
    assert n == sum(w.message.n_points for w in clipped) > 0
    # flagged points sit at the top |I| of their sweep (a current limit common to sweeps),
    # and they are the points the writer clipped at 200 µA: nothing below the limit
    assert all(np.all(np.abs(s.current[~s.valid]) >= (1 - 2e-3) * np.abs(s.current).max())
               for s in ds.sweeps)
    assert all(np.all(np.abs(s.current[~s.valid]) >= (1 - 2e-3) * 2e-4) for s in ds.sweeps)


@pytest.mark.parametrize("cell,needle", [
    ("abc", "'abc' is not a number"), ("", "an empty field is not a number"),
    ("nan", "value 'nan' is NaN or infinite"), ("inf", "value 'inf' is NaN or infinite")])
def test_bad_cell_in_a_big_file_names_the_line(tmp_path, cell, needle):
    row = 150_000

    def edit(lines):
        dev, _, cur = lines[row].split(",")
        lines[row] = f"{dev},{cell},{cur}"

    _write(tmp_path, edit=edit)
    with pytest.raises(DataError) as exc:
        load_dataset(tmp_path)
    msg = str(exc.value)
    assert "sweeps.csv" in msg and "column 'V (V)'" in msg and f"line {row + 1}:" in msg, msg
    assert needle in msg, msg


def test_wrong_field_count_in_a_big_file_names_the_line(tmp_path):
    def edit(lines):
        lines[123_456] += ",7"

    _write(tmp_path, edit=edit)
    with pytest.raises(DataError, match=r"sweeps\.csv: line 123457: 4 fields, the header has 3"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("dev", ['"D00"', " D00"])
def test_quoted_and_padded_cells_still_read(tmp_path, dev):
    """Quoted fields (the csv module's path) and cells padded with spaces (fast path)."""
    def edit(lines):
        lines[5] = f"{dev}, 0.120 ," + lines[5].split(",")[2]

    _write(tmp_path, n_rows=2000, n_dev=2, edit=edit)
    ds = load_dataset(tmp_path)
    got = np.concatenate([s.voltage for s in ds.sweeps if s.device == "D00"])
    assert got[4] == pytest.approx(0.12) and got.size == 1000


def _branches_loop(v):
    """The row-by-row definition of voltage_branches (before vectorising)."""
    v = np.asarray(v, float)
    branch = np.zeros(v.size, int)
    if v.size < 2:
        return branch
    dv = np.diff(v)
    a = np.abs(dv)
    if not (a > 0).any():
        return branch
    tiny = 0.1 * np.median(a[a > 0])
    b, prev = 0, 0
    for k in range(1, v.size):
        d = 0 if a[k - 1] <= tiny else int(np.sign(dv[k - 1]))
        if d and prev and d != prev:
            b += 1
        prev = d or prev
        branch[k] = b
    return branch


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_helpers_match_the_loops(seed):
    rng = np.random.default_rng(seed)
    v = np.round(np.cumsum(rng.choice([-0.05, 0, 0.001, 0.05], size=300)), 3)
    v[:5] = 0
    np.testing.assert_array_equal(io_mod.voltage_branches(v), _branches_loop(v))
    a = rng.choice(["x", "y", "z"], size=500).astype(object)
    b = rng.integers(0, 4, size=500)
    ref = io_mod._groups(list(zip(a, b)))
    got = io_mod._group_rows(a, b)
    assert len(ref) == len(got) and all(np.array_equal(r, g) for r, g in zip(ref, got))


def test_line_where_is_a_lazy_list():
    w = LineWhere(np.array([2, 3, 7]))
    assert len(w) == 3 and w[0] == "line 2" and w[-1] == "line 7" and list(w[1:]) == [
        "line 3", "line 7"] and w == ["line 2", "line 3", "line 7"]
    assert io_mod.take_where(w, [2, 0]) == ["line 7", "line 2"]


def test_loader_and_cli_print_one_warning_per_file(tmp_path, monkeypatch, capsys):
    """One compliance warning per file ("N compliance-clipped point(s) excluded from the fit
    in M sweeps (...); first: ..."), not one per sweep, the same from the API
    (``load_dataset``, ``dataset.warnings``) and the CLI; every sweep in ``dataset.issues``.
    The fit itself is replaced by a function that stops the command."""
    _write(tmp_path, n_rows=20_000, n_dev=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(tmp_path)
    assert [str(w.message) for w in caught] == ds.warnings and len(ds.warnings) == 1
    flagged = [s for s in ds.sweeps if (~s.valid).any()]
    n_points = sum(int((~s.valid).sum()) for s in flagged)
    assert len(ds.issues) == len(flagged) > 1
    assert ds.warnings[0].startswith(f"{tmp_path / 'sweeps.csv'}: {n_points} compliance-clipped "
                                     f"point(s) excluded from the fit in {len(flagged)} sweeps")
    s0 = flagged[0]
    assert (f"first: device {s0.device!r}, cycle {s0.cycle}, sweep {s0.sweep!r} "
            f"({s0.where[int(np.argmin(s0.valid))]}") in ds.warnings[0]

    def stop(*a, **k):
        raise ValueError("stopped after loading")

    monkeypatch.setattr(fit_mod, "fit", stop)
    rc = cli_main(["fit", str(tmp_path), "-q", "-o", str(tmp_path / "out" / "card.json")])
    assert rc == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "compliance-clipped" in ln]
    assert lines == [f"warning: {ds.warnings[0]}"], err
    assert "stopped after loading" in err and "Traceback" not in err


def test_no_compliance_found_in_noisy_sweeps_that_never_reach_a_limit(tmp_path):
    """Thousands of noisy sweeps whose tops never reach the 200 µA limit: chance coincidences
    of two tops within 0.2 % once flagged points in ~40 % of the sweeps; at most 2 % now."""
    import warnings

    _write(tmp_path, n_rows=200_000, n_dev=20, amplitude=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset(tmp_path)
    flagged = sum(bool((~s.valid).any()) for s in ds.sweeps)
    assert flagged <= 0.02 * len(ds.sweeps), (flagged, len(ds.sweeps))
