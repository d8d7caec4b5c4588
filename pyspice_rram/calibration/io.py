"""Loaders for DC I-V sweeps and pulse trains (CSV, TSV, HDF5), with units and checks.

Every file becomes a flat *table* (column header -> values, plus a location for each row),
whose columns are then mapped to *roles* (:data:`ROLES`): by the recipe's ``columns`` table,
or automatically from the header name (``"Voltage (V)"``, ``"I [mA]"``, ``"current_uA"``,
``"G_read (uS)"``, ``"diameter_nm"`` ...). Values are converted to SI with the unit in the
header or in the recipe's ``units`` table; a physical column without a unit is an error.

Layouts understood (none is assumed): long format (one row per point, ``device``/``cycle``/
``sweep`` columns), one file per device (constants in the recipe), instrument exports with a
preamble (``skip_rows``, ``#`` comments), tab/semicolon/comma separated text, HDF5 tables and
HDF5 group trees (one group per sweep or device with 1-D datasets; scalar group attributes
such as ``device``, ``cycle``, ``diameter_nm`` become constant columns).

Errors are :class:`DataError` (a ``ValueError``) naming the file, the column and the row:
missing columns, non-numeric values, NaN/inf, unknown or mismatched units, empty sweeps.
Compliance-clipped points of DC sweeps (recipe ``compliance`` or a flat plateau at the
largest |I| of a sweep) are flagged and excluded with a :class:`ClippedPointsWarning`.
"""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .recipe import Entry, Recipe, load_recipe
from .units import si_factor, split_header


class DataError(ValueError):
    """Malformed measurement data; the message names file, column and row."""


class ClippedPointsWarning(UserWarning):
    """Points of a DC sweep were at the current compliance and are excluded from the fit."""


#: role -> (quantity, header aliases). Quantity None: label or integer columns.
ROLES: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "voltage": ("voltage", ("voltage", "v", "vforce", "v_force", "bias", "v_applied", "vapp",
                            "applied_voltage", "v_top", "vtop", "v_sweep")),
    "current": ("current", ("current", "i", "imeas", "i_meas", "i_top", "itop",
                            "measured_current", "i_sense")),
    "time": ("time", ("time", "t", "timestamp", "elapsed_time", "t_meas")),
    "device": (None, ("device", "dev", "device_id", "cell", "dut", "die")),
    "cycle": (None, ("cycle", "cyc", "cycle_index", "cycle_no", "cycle_number")),
    "sweep": (None, ("sweep", "sweep_id", "sweep_no", "sweep_index", "leg")),
    "area": ("area", ("area", "device_area", "cell_area")),
    "diameter": ("length", ("diameter", "d", "dia", "device_diameter", "cell_diameter", "size")),
    "pulse": (None, ("pulse", "pulse_index", "pulse_no", "pulse_number", "n_pulse", "n",
                     "index", "pulse_count")),
    "conductance": ("conductance", ("g", "conductance", "g_read", "read_conductance")),
    "read_current": ("current", ("i_read", "iread", "read_current", "i", "current")),
    "read_voltage": ("voltage", ("v_read", "vread", "read_voltage")),
    "pulse_voltage": ("voltage", ("v_pulse", "vpulse", "pulse_voltage", "amplitude",
                                  "v_prog", "pulse_amplitude")),
    "pulse_width": ("time", ("t_pulse", "width", "pulse_width", "t_width", "tw", "t_prog")),
}

SWEEP_ROLES = ("voltage", "current", "time", "device", "cycle", "sweep", "area", "diameter")
PULSE_ROLES = ("pulse", "conductance", "read_current", "read_voltage", "pulse_voltage",
               "pulse_width", "device", "cycle", "area", "diameter")

#: Relative tolerance of the compliance test |I| >= (1 - tol) I_cc, and of the plateau test.
COMPLIANCE_RTOL = 2e-3
#: Points within COMPLIANCE_RTOL of a sweep's max |I| that make a plateau (no recipe value).
PLATEAU_MIN_POINTS = 3


# --------------------------------------------------------------------------- tables
@dataclass
class Table:
    """Raw columns of one file (or HDF5 record set) before role mapping.

    ``columns`` maps the header to an object array of raw values (strings from text files,
    numbers from HDF5); ``where`` gives a location for each row (``"line 17"``,
    ``"/dev1/sweep2[12]"``).
    """

    source: str
    columns: dict[str, np.ndarray]
    where: list[str]

    @property
    def n_rows(self) -> int:
        return len(self.where)


def _sniff_delimiter(path: Path, line: str, entry: Entry) -> str | None:
    if entry.delimiter:
        return {"tab": "\t", "\\t": "\t", "space": None, "whitespace": None}.get(
            entry.delimiter, entry.delimiter)
    if entry.format == "tsv" or path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    for d in ("\t", ";", ","):
        if d in line:
            return d
    return None  # whitespace


def read_text_table(path: Path, entry: Entry) -> Table:
    """Read a delimited text file: comment lines and ``skip_rows`` preamble lines skipped,
    then one header line, then data rows (blank lines ignored)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (listed in the recipe)") from None
    numbered = [(i + 1, ln) for i, ln in enumerate(lines)]
    comment = entry.comment or None
    body = [(i, ln) for i, ln in numbered
            if ln.strip() and not (comment and ln.lstrip().startswith(comment))]
    body = body[entry.skip_rows:]
    if not body:
        raise DataError(f"{path}: no header line (file empty after comments/preamble)")
    delim = _sniff_delimiter(path, body[0][1], entry)

    def split(text: str) -> list[str]:
        if delim is None:
            return text.split()
        return next(csv.reader([text], delimiter=delim))

    header = [h.strip() for h in split(body[0][1])]
    if len(set(header)) != len(header):
        raise DataError(f"{path}: line {body[0][0]}: duplicate column headers {header}")
    rows, where = [], []
    for lineno, text in body[1:]:
        cells = split(text)
        if len(cells) != len(header):
            raise DataError(f"{path}: line {lineno}: {len(cells)} fields, the header has "
                            f"{len(header)} ({header})")
        rows.append([c.strip() for c in cells])
        where.append(f"line {lineno}")
    if not rows:
        raise DataError(f"{path}: header but no data rows")
    cols = {h: np.array([r[j] for r in rows], dtype=object) for j, h in enumerate(header)}
    return Table(str(path), cols, where)


def read_hdf5_tables(path: Path, entry: Entry) -> list[Table]:
    """Read HDF5: a table dataset (``entry.dataset``, compound or 2-D with a ``columns``
    attribute) or a group tree under ``entry.group`` (default ``/``): each group holding
    1-D datasets is one record set; dataset attributes ``units``/``unit`` give units, scalar
    attributes of the group and its ancestors become constant columns, and a record set
    without a ``device`` attribute gets its top-level group name as device label."""
    import h5py

    def _attr(v):
        if isinstance(v, bytes):
            return v.decode()
        if isinstance(v, np.ndarray) and v.shape == ():
            return v.item()
        return v

    def _colname(name: str, dset) -> str:
        unit = _attr(dset.attrs.get("units", dset.attrs.get("unit", "")))
        return f"{name} ({unit})" if unit and split_header(name)[1] is None else name

    if not path.exists():
        raise DataError(f"{path}: file not found (listed in the recipe)")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
    tables: list[Table] = []
    with f:
        if entry.dataset:
            if entry.dataset not in f:
                raise DataError(f"{path}: no dataset {entry.dataset!r}")
            d = f[entry.dataset]
            if d.dtype.names:
                units = _attr(d.attrs.get("units", "")) or ""
                ulist = [u.strip() for u in str(units).split(",")] if units else []
                cols = {}
                for j, nm in enumerate(d.dtype.names):
                    h = f"{nm} ({ulist[j]})" if j < len(ulist) and ulist[j] else nm
                    cols[h] = np.asarray(d[nm]).astype(object)
            else:
                names = [str(_attr(x)) for x in d.attrs.get("columns", [])]
                arr = np.asarray(d)
                if arr.ndim != 2 or len(names) != arr.shape[1]:
                    raise DataError(f"{path}:{entry.dataset}: a 2-D table needs a 'columns' "
                                    f"attribute naming its {arr.shape[-1]} columns")
                cols = {h: arr[:, j].astype(object) for j, h in enumerate(names)}
            n = len(next(iter(cols.values())))
            tables.append(Table(f"{path}:{entry.dataset}", cols,
                                [f"{entry.dataset}[{i}]" for i in range(n)]))
            return tables
        root = entry.group or "/"
        if root not in f:
            raise DataError(f"{path}: no group {root!r}")

        def visit(group, inherited: dict, top: str | None):
            attrs = dict(inherited)
            for k, v in group.attrs.items():
                v = _attr(v)
                if np.isscalar(v) or isinstance(v, str):
                    attrs[k] = v
            dsets = {k: v for k, v in group.items() if isinstance(v, h5py.Dataset)
                     and v.ndim == 1}
            if dsets:
                n = {len(v) for v in dsets.values()}
                if len(n) != 1:
                    raise DataError(f"{path}:{group.name}: 1-D datasets of unequal lengths "
                                    f"{ {k: len(v) for k, v in dsets.items()} }")
                n = n.pop()
                cols = {_colname(k, v): np.asarray(v[()]).astype(object) for k, v in dsets.items()}
                for k, v in attrs.items():
                    cols.setdefault(k, np.full(n, v, dtype=object))
                if not any(split_header(k)[0] in ROLES["device"][1] for k in cols) and top:
                    cols["device"] = np.full(n, top, dtype=object)
                if not any(split_header(k)[0] in ROLES["sweep"][1] for k in cols):
                    cols["sweep"] = np.full(n, group.name.rsplit("/", 1)[-1], dtype=object)
                tables.append(Table(f"{path}:{group.name}", cols,
                                    [f"{group.name}[{i}]" for i in range(n)]))
            for k, v in group.items():
                if isinstance(v, h5py.Group):
                    visit(v, attrs, top or k)

        visit(f[root], {}, None)
    if not tables:
        raise DataError(f"{path}: no group under {entry.group or '/'} holds 1-D datasets")
    return tables


def read_tables(entry: Entry) -> list[Table]:
    """The raw tables of a recipe entry (one for text files, one or more for HDF5)."""
    path = entry.file
    fmt = entry.format or ("hdf5" if path.suffix.lower() in (".h5", ".hdf5", ".hdf") else "text")
    if fmt in ("hdf5", "h5"):
        return read_hdf5_tables(path, entry)
    return [read_text_table(path, entry)]


# ---------------------------------------------------------------------- role mapping
def _norm(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def find_column(table: Table, role: str, entry: Entry, required: bool = True,
                exclude: tuple[str, ...] = ()) -> str | None:
    """Header of the column playing ``role``: from ``entry.columns`` or by alias."""
    if role in entry.columns:
        header = entry.columns[role]
        if header not in table.columns:
            raise DataError(f"{table.source}: column {header!r} (recipe columns.{role}) is "
                            f"missing; columns are {list(table.columns)}")
        return header
    aliases = ROLES[role][1]
    for alias in aliases:
        for header in table.columns:
            if header in exclude or header in entry.columns.values():
                continue
            if _norm(split_header(header)[0]) == alias:
                return header
    if required:
        raise DataError(f"{table.source}: missing column for {role!r} (looked for headers "
                        f"named {list(aliases)}, with a unit such as '{role} (unit)'); columns "
                        f"are {list(table.columns)}; map it with columns.{role} in the recipe")
    return None


def numeric_column(table: Table, header: str, role: str, entry: Entry) -> np.ndarray:
    """Column values in SI as floats; errors name file, column and row."""
    quantity = ROLES[role][0]
    unit = entry.units.get(role, entry.units.get(header, split_header(header)[1]))
    factor = 1.0
    if quantity is not None:
        if unit is None:
            raise DataError(f"{table.source}: column {header!r} ({role}) has no unit; put it in "
                            f"the header, e.g. '{role} ({_si(quantity)})', or in the recipe's "
                            f"units table")
        try:
            factor, q = si_factor(unit)
        except KeyError:
            raise DataError(f"{table.source}: column {header!r}: unknown unit {unit!r}") from None
        if q != quantity:
            raise DataError(f"{table.source}: column {header!r} is used as {role} ({quantity}) "
                            f"but its unit {unit!r} is a {q}")
    raw = table.columns[header]
    out = np.empty(len(raw))
    for i, v in enumerate(raw):
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            shown = "an empty field" if (isinstance(v, str) and not v.strip()) else repr(v)
            raise DataError(f"{table.source}: column {header!r}, {table.where[i]}: "
                            f"{shown} is not a number") from None
        if not math.isfinite(out[i]):
            raise DataError(f"{table.source}: column {header!r}, {table.where[i]}: "
                            f"value {v!r} is NaN or infinite")
    return out * factor


def _si(quantity: str) -> str:
    return {"voltage": "V", "current": "A", "conductance": "S", "time": "s", "length": "m",
            "area": "m^2"}.get(quantity, "")


def label_column(table: Table, header: str | None, const, n: int, default: str) -> np.ndarray:
    if header is not None:
        return np.array([(v.decode() if isinstance(v, bytes) else str(v)).strip()
                         for v in table.columns[header]], dtype=object)
    return np.full(n, default if const is None else str(const), dtype=object)


def int_column(table: Table, header: str, role: str) -> np.ndarray:
    vals = numeric_column(table, header, role, Entry("x", Path(), ""))
    if np.any(vals != np.round(vals)):
        i = int(np.nonzero(vals != np.round(vals))[0][0])
        raise DataError(f"{table.source}: column {header!r}, {table.where[i]}: {role} index "
                        f"{vals[i]} is not an integer")
    return vals.astype(int)


def area_column(table: Table, entry: Entry) -> np.ndarray:
    """Cell area (m²) per row: area column, diameter column, or recipe constant."""
    h = find_column(table, "area", entry, required=False)
    if h is not None:
        a = numeric_column(table, h, "area", entry)
    else:
        h = find_column(table, "diameter", entry, required=False)
        if h is not None:
            a = math.pi * numeric_column(table, h, "diameter", entry) ** 2 / 4.0
        elif entry.area is not None:
            return np.full(table.n_rows, entry.area)
        else:
            raise DataError(f"{table.source}: no area or diameter column and no 'area'/"
                            f"'diameter' in the recipe entry; the fit needs the cell area")
    bad = np.nonzero(~(a > 0))[0]
    if bad.size:
        raise DataError(f"{table.source}: column {h!r}, {table.where[bad[0]]}: area must be "
                        f"positive, got {a[bad[0]]}")
    return a


# ------------------------------------------------------------------------- records
@dataclass
class Sweep:
    """One DC I-V sweep of one device (SI units).

    Attributes
    ----------
    voltage, current : (n,) arrays, V and A (current at the end of each voltage step)
    dwell : (n,) array, s: how long each voltage step was held
    valid : (n,) bool array, False for compliance-clipped points (excluded from the fit)
    where : row locations in the source, for messages
    """

    source: str
    entry: str
    device: str
    area: float
    cycle: int
    sweep: str
    voltage: np.ndarray
    current: np.ndarray
    dwell: np.ndarray
    valid: np.ndarray
    where: list[str]
    compliance: float | None = None
    initial_state: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.entry}/{self.device}/c{self.cycle}/{self.sweep}"


@dataclass
class PulseTrain:
    """All pulses applied to one device in one entry, and the reads between them.

    Attributes
    ----------
    v_pulse, t_pulse : (n_pulses,) arrays, V and s, in the order applied (all cycles)
    read_after : (n_reads,) int array, number of pulses applied before each read
    conductance : (n_reads,) array, S, read conductance ``I_read / V_read``
    v_read : (n_reads,) array, V
    cycle, pulse : (n_reads,) int arrays, cycle number and pulse index within the cycle
    """

    source: str
    entry: str
    device: str
    area: float
    v_pulse: np.ndarray
    t_pulse: np.ndarray
    read_after: np.ndarray
    conductance: np.ndarray
    v_read: np.ndarray
    cycle: np.ndarray
    pulse: np.ndarray
    where: list[str]
    initial_state: float = 0.0
    label_: str | None = None

    @property
    def label(self) -> str:
        return f"{self.entry}/{self.device}"


@dataclass
class Dataset:
    """A loaded data set: recipe, sweeps, pulse trains and the SHA-256 of its files."""

    recipe: Recipe
    sweeps: list[Sweep] = field(default_factory=list)
    trains: list[PulseTrain] = field(default_factory=list)
    sha256: str = ""
    files: dict[str, str] = field(default_factory=dict)

    @property
    def devices(self) -> list[tuple[str, float]]:
        """Distinct (device label, area) in order of appearance."""
        seen: dict[str, float] = {}
        for s in self.sweeps:
            seen.setdefault(s.device, s.area)
        for t in self.trains:
            seen.setdefault(t.device, t.area)
        return list(seen.items())


def _groups(keys: list[tuple]) -> list[np.ndarray]:
    """Row indices per distinct key, in order of first appearance."""
    order: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        order.setdefault(k, []).append(i)
    return [np.array(v) for v in order.values()]


def _flag_compliance(v: np.ndarray, i: np.ndarray, compliance: float | None) -> np.ndarray:
    """Boolean mask of compliance-clipped points of one sweep."""
    a = np.abs(i)
    if compliance is not None:
        return a >= (1.0 - COMPLIANCE_RTOL) * compliance
    top = a.max()
    near = a >= (1.0 - COMPLIANCE_RTOL) * top
    if near.sum() >= PLATEAU_MIN_POINTS and np.unique(np.round(np.abs(v[near]), 9)).size >= 2:
        return near
    return np.zeros_like(near)


def load_sweeps(entry: Entry) -> list[Sweep]:
    """DC sweeps of a recipe entry, one :class:`Sweep` per (device, cycle, sweep)."""
    out: list[Sweep] = []
    for table in read_tables(entry):
        n = table.n_rows
        hv = find_column(table, "voltage", entry)
        hi = find_column(table, "current", entry, exclude=(hv,))
        v = numeric_column(table, hv, "voltage", entry)
        cur = numeric_column(table, hi, "current", entry)
        ht = find_column(table, "time", entry, required=False)
        t = numeric_column(table, ht, "time", entry) if ht else None
        if t is None and entry.dwell is None:
            raise DataError(f"{table.source}: no time column and no 'dwell' (s per voltage "
                            f"step) in the recipe entry; the state evolution needs the dwell")
        dev = label_column(table, find_column(table, "device", entry, required=False),
                           entry.device, n, Path(entry.file).stem)
        hc = find_column(table, "cycle", entry, required=False)
        cyc = int_column(table, hc, "cycle") if hc else np.full(n, entry.cycle or 1)
        hs = find_column(table, "sweep", entry, required=False)
        swp = label_column(table, hs, None, n, "")
        area = area_column(table, entry)
        if hs is None:  # split each device/cycle at polarity changes
            swp = np.empty(n, dtype=object)
            for idx in _groups(list(zip(dev, cyc))):
                sign, k = 0, 0
                for j in idx:
                    s = int(np.sign(v[j]))
                    if s and sign and s != sign:
                        k += 1
                    sign = s or sign
                    swp[j] = "pos" if sign >= 0 else "neg"
                    swp[j] = f"{k}{swp[j]}"
        for idx in _groups(list(zip(dev, cyc, swp))):
            where = [table.where[j] for j in idx]
            label = f"{table.source}: device {dev[idx[0]]!r}, cycle {cyc[idx[0]]}, sweep {swp[idx[0]]!r}"
            if idx.size < 3:
                raise DataError(f"{label} ({where[0]}): empty sweep ({idx.size} point(s))")
            if np.ptp(v[idx]) == 0:
                raise DataError(f"{label} ({where[0]}): empty sweep (voltage never changes)")
            a = area[idx]
            if np.ptp(a) > 1e-9 * a[0]:
                j = idx[np.nonzero(a != a[0])[0][0]]
                raise DataError(f"{table.source}: {table.where[j]}: area changes within a sweep")
            if t is not None:
                tt = t[idx]
                dt = np.diff(tt)
                pos = dt[dt > 0]
                if pos.size == 0:
                    raise DataError(f"{label}: column {ht!r}: time never increases")
                dwell = np.r_[np.median(pos), np.where(dt > 0, dt, np.median(pos))]
            else:
                dwell = np.full(idx.size, entry.dwell)
            clipped = _flag_compliance(v[idx], cur[idx], entry.compliance)
            if clipped.any():
                rows = [where[j] for j in np.nonzero(clipped)[0]]
                how = (f"|I| >= compliance {entry.compliance:g} A" if entry.compliance
                       else "flat plateau at the largest |I|")
                warnings.warn(f"{label}: {int(clipped.sum())} compliance-clipped point(s) "
                              f"excluded from the fit ({how}): {', '.join(rows[:6])}"
                              f"{' ...' if len(rows) > 6 else ''}", ClippedPointsWarning,
                              stacklevel=2)
            if clipped.all():
                raise DataError(f"{label}: every point is compliance-clipped")
            out.append(Sweep(source=table.source, entry=entry.name, device=str(dev[idx[0]]),
                             area=float(a[0]), cycle=int(cyc[idx[0]]), sweep=str(swp[idx[0]]),
                             voltage=v[idx], current=cur[idx], dwell=dwell, valid=~clipped,
                             where=where, compliance=entry.compliance,
                             initial_state=entry.initial_state))
    return out


def load_pulse_trains(entry: Entry) -> list[PulseTrain]:
    """Pulse trains of a recipe entry, one :class:`PulseTrain` per device.

    Rows are reads. The applied pulses come from ``pulse_voltage``/``pulse_width`` columns
    (each row = one pulse, then a read; rows with pulse index 0 are reads before the first
    pulse of a cycle) or from the recipe ``protocol`` (one cycle = the listed segments; the
    pulse index of a row = number of pulses of its cycle applied before the read). Cycles
    come from a cycle column, or start where the pulse index decreases.
    """
    out: list[PulseTrain] = []
    for table in read_tables(entry):
        n = table.n_rows
        hg = find_column(table, "conductance", entry, required=False)
        if hg is not None:
            g = numeric_column(table, hg, "conductance", entry)
            hvr = find_column(table, "read_voltage", entry, required=False)
        else:
            hir = find_column(table, "read_current", entry, required=False)
            if hir is None:
                raise DataError(f"{table.source}: missing column for the read: need a "
                                f"conductance column (e.g. 'G (uS)') or a read current "
                                f"(e.g. 'I_read (A)') with a read voltage; columns are "
                                f"{list(table.columns)}")
            ir = numeric_column(table, hir, "read_current", entry)
            hvr = find_column(table, "read_voltage", entry, required=False)
        if hvr is not None:
            vr = numeric_column(table, hvr, "read_voltage", entry)
        elif entry.read_voltage is not None:
            vr = np.full(n, entry.read_voltage)
        else:
            raise DataError(f"{table.source}: missing column for 'read_voltage' and no "
                            f"read_voltage in the recipe (needed to relate reads to the I-V)")
        zero = np.nonzero(vr == 0)[0]
        if zero.size:
            raise DataError(f"{table.source}: column {hvr!r}, {table.where[zero[0]]}: "
                            f"read voltage is 0")
        if hg is None:
            g = ir / vr
        dev = label_column(table, find_column(table, "device", entry, required=False),
                           entry.device, n, Path(entry.file).stem)
        area = area_column(table, entry)
        hp = find_column(table, "pulse", entry, required=False)
        pidx = int_column(table, hp, "pulse") if hp else None
        hc = find_column(table, "cycle", entry, required=False)
        cyc = int_column(table, hc, "cycle") if hc else None
        hpv = find_column(table, "pulse_voltage", entry, required=False)
        hpw = find_column(table, "pulse_width", entry, required=False)
        pv = numeric_column(table, hpv, "pulse_voltage", entry) if hpv else None
        pw = numeric_column(table, hpw, "pulse_width", entry) if hpw else None
        if (pv is None) != (pw is None):
            raise DataError(f"{table.source}: missing column for "
                            f"{'pulse_width' if pw is None else 'pulse_voltage'} (the pulse "
                            f"amplitude and width columns go together)")
        if pv is None and entry.protocol is None:
            raise DataError(f"{table.source}: no pulse amplitude/width columns and no "
                            f"'protocol' in the recipe entry: the applied pulses are unknown")
        if pv is None and pidx is None:
            raise DataError(f"{table.source}: missing column for 'pulse' (index of the read "
                            f"within its cycle), needed with a recipe protocol")
        for idx in _groups([(d,) for d in dev]):
            where = [table.where[j] for j in idx]
            label = f"{table.source}: device {dev[idx[0]]!r}"
            if idx.size < 2:
                raise DataError(f"{label} ({where[0]}): empty pulse train ({idx.size} read)")
            a = area[idx]
            if np.ptp(a) > 1e-9 * a[0]:
                raise DataError(f"{label}: area changes between rows of one device")
            # cycles
            if cyc is not None:
                c = cyc[idx]
            elif pidx is not None:
                c = np.r_[0, np.cumsum(np.diff(pidx[idx]) < 0)] + 1
            else:
                c = np.ones(idx.size, int)
            if np.any(np.diff(c) < 0):
                j = int(np.nonzero(np.diff(c) < 0)[0][0]) + 1
                raise DataError(f"{table.source}: column {hc!r}, {where[j]}: cycles must be "
                                f"in increasing order within a device")
            if pv is not None:
                p = pidx[idx] if pidx is not None else None
                applied = np.ones(idx.size, bool) if p is None else (p != 0)
                vpulse, tpulse = pv[idx][applied], pw[idx][applied]
                read_after = np.cumsum(applied)
                pin = p if p is not None else (np.r_[0, np.cumsum(c[1:] == c[:-1])] + 1)
            else:
                cyc_v = np.concatenate([np.full(s.n, s.v) for s in entry.protocol])
                cyc_t = np.concatenate([np.full(s.n, s.width) for s in entry.protocol])
                m = cyc_v.size
                p = pidx[idx]
                bad = np.nonzero((p < 0) | (p > m))[0]
                if bad.size:
                    raise DataError(f"{table.source}: column {hp!r}, {where[bad[0]]}: pulse "
                                    f"index {p[bad[0]]} outside the protocol's 0..{m}")
                ncyc = int(c.max() - c.min() + 1)
                vpulse, tpulse = np.tile(cyc_v, ncyc), np.tile(cyc_t, ncyc)
                read_after = (c - c.min()) * m + p
                pin = p
            if np.any(np.diff(read_after) < 0):
                j = int(np.nonzero(np.diff(read_after) < 0)[0][0]) + 1
                raise DataError(f"{table.source}: {where[j]}: reads out of order (pulse index "
                                f"goes back within a cycle)")
            out.append(PulseTrain(source=table.source, entry=entry.name, device=str(dev[idx[0]]),
                                  area=float(a[0]), v_pulse=vpulse, t_pulse=tpulse,
                                  read_after=read_after.astype(int), conductance=g[idx],
                                  v_read=vr[idx], cycle=c.astype(int), pulse=np.asarray(pin, int),
                                  where=where, initial_state=entry.initial_state,
                                  label_=entry.label))
    return out


def file_sha256(paths: list[Path]) -> tuple[str, dict[str, str]]:
    """SHA-256 of each file and of the set (hash of the sorted ``name:hash`` lines)."""
    import hashlib

    per = {}
    for p in sorted(set(paths)):
        per[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    total = hashlib.sha256("\n".join(f"{k}:{v}" for k, v in sorted(per.items())).encode())
    return total.hexdigest(), per


def load_dataset(path: str | Path) -> Dataset:
    """Load every entry of a data set (directory with a recipe, or a recipe file)."""
    recipe = load_recipe(path)
    ds = Dataset(recipe)
    for e in recipe.sweeps:
        ds.sweeps.extend(load_sweeps(e))
    for e in recipe.pulses:
        ds.trains.extend(load_pulse_trains(e))
    files = [e.file for e in recipe.entries] + [recipe.path]
    ds.sha256, ds.files = file_sha256(files)
    return ds
