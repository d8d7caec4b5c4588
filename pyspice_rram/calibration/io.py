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

Text files are read as UTF-8 (a byte-order mark, as Excel writes, is dropped); another
encoding is given by the entry's ``encoding`` (``encoding = "latin-1"``). A file that is not
valid in its encoding is an error naming the byte offset and the likely encoding.

Re-arranging rows (recipe keys, see :mod:`.recipe`), applied in this order before anything
else:

* ``wide``: a wide layout (one column per ramp, e.g. ``pulse_index, up_G_1, down_G_1``) is
  melted to the long format: each listed column becomes one ramp, in the listed order, with
  the pulse index from ``wide.index`` (or the row position), a ``ramp`` column (1, 2, ...)
  and, with ``wide.conditions``, a ``condition`` column naming the ramp's pulse condition.
  Trailing empty cells end a shorter ramp; an empty cell inside a ramp is an error. Row
  locations become ``"line 7, column 'up_G_1'"``.
* ``sort_by``: the rows are stably sorted by the listed columns (a column of ``conditions``
  in the order the conditions are listed, numeric columns numerically, others as text);
  row locations still name the original file lines.

Pulse trains: the applied pulses come from per-row ``pulse_voltage``/``pulse_width``
columns, from ``conditions`` (amplitude and width per label of a column, e.g.
``direction = potentiation | depression``; an unlisted label is an error) or from a
``protocol``. A pulse index of 0 is the read before the first pulse of its cycle, and a new
cycle starts where the pulse index decreases (so with ``sort_by = ["ramp", "direction",
"read_index"]`` every ramp is a cycle). The read is a conductance or a read current with a
read voltage (column, per row, or recipe constant). A dimensionless (normalised) read column
(unit ``1``, ``a.u.``, header suffix ``_1``) needs ``normalised = {scale = ..., offset =
...}``: ``G = offset + scale * value``; the scale used is stored in
:attr:`PulseTrain.normalised`. A read conductance <= 0 (or a read current of the wrong sign
for its read voltage) is an error. ``state_from_first_read`` is carried to the fit.

DC sweeps without a sweep column are split at polarity changes of the voltage (a 0 V point
joins the leg it ends, or the one it starts, never forms a sweep of its own; voltages within
a quarter of the median step of 0 count as 0); every sweep gets ``branch`` numbers for its
monotone voltage legs (0 -> +V is branch 0, +V -> 0 branch 1, ...).

Errors are :class:`DataError` (a ``ValueError``) naming the file, the column and the row:
missing columns, non-numeric values, NaN/inf, unknown or mismatched units, empty sweeps, and
these sanity checks:

* implausible magnitudes (:data:`LIMITS`): |V| > 100 V, |I| > 1 A, G > 10 S, G <= 0,
  cell area > 1 mm² or <= 0, diameter <= 0, pulse width <= 0 or > 10 s;
* a time column that goes backwards within a sweep;
* without a time column, voltage steps that jump around (more than 20 % of the steps larger
  than 5x the median step, or more voltage reversals than 20 % of the steps): rows out of
  order;
* a sweep whose current is zero at every point;
* duplicated rows (identical in every column to another row of the same sweep, or of the
  same cycle of a pulse train; in a sweep without a time column only rows of the same
  monotone voltage leg are compared, and 0 V rows do not count): 25 % or more of the rows
  -> error, fewer -> :class:`SuspiciousDataWarning` listing them.

Compliance-clipped points of DC sweeps are flagged and excluded with a
:class:`ClippedPointsWarning`: with the recipe ``compliance``, every point at it; without
it, points at a *common* current limit only: the largest |I| of a sweep (within
:data:`COMPLIANCE_RTOL`) is a limit if the sweep has a flat top there (>= 2 points at >= 2
voltages) and another sweep of the entry has a flat top at the same level, or if one sweep
has >= :data:`PLATEAU_MIN_POINTS` points at >= 2 voltages there and the level is also the
largest |I| of the whole entry. Flat tops at other levels are kept.
"""

from __future__ import annotations

import codecs
import itertools
import csv
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .recipe import MAX_AREA, MAX_PULSE_WIDTH, Entry, Recipe, load_recipe
from .units import si_factor, split_header


class DataWarning(UserWarning):
    """Base of the loader's warnings: one warning per kind and file, aggregated over the
    records (sweeps, cycles) it concerns.

    Attributes: ``source`` (the file), ``n_points`` (flagged rows or points in all records),
    ``n_records`` (sweeps or cycles) and ``issues`` (the :class:`DataIssue` of every record).
    """

    def __init__(self, message: str = "", source: str | None = None, n_points: int = 0,
                 n_records: int = 1, issues: tuple = ()):
        super().__init__(message)
        self.source = source
        self.n_points = n_points
        self.n_records = n_records
        self.issues = tuple(issues)


class ClippedPointsWarning(DataWarning):
    """Points of DC sweeps were at the current compliance and are excluded from the fit
    (one warning per file: ``n_records`` sweeps, ``n_points`` points)."""


class SuspiciousDataWarning(DataWarning):
    """Data that legitimate measurements rarely look like (e.g. a few duplicated rows); the
    data are used, the warning names the rows."""


@dataclass(frozen=True)
class DataIssue:
    """One record (a sweep, or a cycle of a pulse train) the loader flagged.

    Attributes
    ----------
    kind : ``"compliance"`` (clipped points excluded from the fit) or ``"duplicates"``
        (rows identical to another row, used as they are)
    source : the file
    record : the sweep or cycle, e.g. ``"device 'D1', cycle 1, sweep '0pos'"``
    rows : the flagged rows (``"line 404"``; for duplicates ``"line 12 = line 11"``), the
        first :data:`ISSUE_ROWS_SHOWN`
    n_points : number of flagged rows or points
    detail : why (the compliance level) or what was compared
    message : the record's own one-line message
    """

    kind: str
    source: str
    record: str
    rows: tuple
    n_points: int
    detail: str
    message: str


#: kind -> (warning class, what is counted, what the records are)
ISSUE_KINDS = {
    "compliance": (ClippedPointsWarning, "compliance-clipped point(s) excluded from the fit",
                   "sweeps"),
    "duplicates": (SuspiciousDataWarning, "row(s) identical in every column to another row "
                   "of the same record, used as they are", "records"),
}
#: Rows named per record in a message; records named in an aggregated message.
ISSUE_ROWS_SHOWN = 6
ISSUE_RECORDS_SHOWN = 3


def summarise_issues(issues) -> list[DataWarning]:
    """One warning per (kind, file), in order of first appearance: a single record keeps its
    own message; several are counted (``"{file}: 5747 compliance-clipped point(s) excluded
    from the fit in 5639 sweeps (...); first: device 'D000', cycle 1, sweep '0pos' (line 27),
    ..."``). The issues are attached to the warning (``.issues``)."""
    groups: dict[tuple[str, str], list[DataIssue]] = {}
    for i in issues:
        groups.setdefault((i.kind, i.source), []).append(i)
    out = []
    for (kind, source), items in groups.items():
        cls, what, records = ISSUE_KINDS[kind]
        n = sum(i.n_points for i in items)
        if len(items) == 1:
            msg = items[0].message
        else:
            details = list(dict.fromkeys(i.detail for i in items))
            detail = details[0] if len(details) == 1 else f"{details[0]}, ... ({len(details)} kinds)"
            first = ", ".join(f"{i.record} ({', '.join(i.rows[:2])}"
                              f"{', ...' if len(i.rows) > 2 else ''})"
                              for i in items[:ISSUE_RECORDS_SHOWN])
            more = ", ..." if len(items) > ISSUE_RECORDS_SHOWN else ""
            msg = (f"{source}: {n} {what} in {len(items)} {records} ({detail}); "
                   f"first: {first}{more}")
        out.append(cls(msg, source=source, n_points=n, n_records=len(items), issues=items))
    return out


def warn_issues(issues, stacklevel: int = 2) -> None:
    """Warn once per kind and file (:func:`summarise_issues`)."""
    for w in summarise_issues(issues):
        warnings.warn(w, stacklevel=stacklevel + 1)


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
                     "index", "pulse_count", "read_index")),
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
#: Points within COMPLIANCE_RTOL of a sweep's max |I| that make a plateau on their own (no
#: recipe value, the level being the largest |I| of the entry).
PLATEAU_MIN_POINTS = 3

#: Plausible values per role: (lowest, highest, compare |value|); outside -> DataError.
#: ``None`` means no bound; the lower bound of conductance, width, area, diameter is
#: exclusive (they must be positive).
LIMITS: dict[str, tuple[float | None, float | None, bool]] = {
    "voltage": (None, 100.0, True), "read_voltage": (None, 100.0, True),
    "pulse_voltage": (None, 100.0, True), "current": (None, 1.0, True),
    "read_current": (None, 1.0, True), "conductance": (0.0, 10.0, False),
    "pulse_width": (0.0, MAX_PULSE_WIDTH, False), "area": (0.0, MAX_AREA, False),
    "diameter": (0.0, None, False)}
#: Fraction of duplicated rows from which a sweep/train is refused instead of warned about.
DUPLICATE_ERROR_FRACTION = 0.25


# --------------------------------------------------------------------------- tables
class LineWhere(Sequence):
    """Row locations ``"line N"`` of a text file, kept as an integer array and formatted
    only when asked for (a 10^6-row file would otherwise hold 10^6 strings per copy).

    Behaves as a read-only list of strings; indexing with a slice or an index array gives
    another :class:`LineWhere`."""

    __slots__ = ("lines",)

    def __init__(self, lines):
        self.lines = np.asarray(lines, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.lines.size)

    def __getitem__(self, i):
        if isinstance(i, slice) or np.ndim(i) > 0:
            return LineWhere(self.lines[i])
        return f"line {int(self.lines[i])}"

    def __iter__(self):
        return (f"line {n}" for n in self.lines.tolist())

    def __eq__(self, other) -> bool:
        if isinstance(other, LineWhere):
            return bool(np.array_equal(self.lines, other.lines))
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"LineWhere({self.lines!r})"


def take_where(where, idx) -> Sequence:
    """The row locations ``where[j] for j in idx`` (lazily for :class:`LineWhere`)."""
    if isinstance(where, LineWhere):
        return where[np.asarray(idx, dtype=np.int64)]
    return [where[j] for j in idx]


@dataclass
class Table:
    """Raw columns of one file (or HDF5 record set) before role mapping.

    ``columns`` maps the header to an object array of raw values (strings from text files,
    numbers from HDF5); ``where`` gives a location for each row (``"line 17"``,
    ``"/dev1/sweep2[12]"``).
    """

    source: str
    columns: dict[str, np.ndarray]
    where: Sequence[str]
    #: columns made by re-arranging the file (``wide``) -> the file's headers they hold
    origin: dict[str, list[str]] = field(default_factory=dict)
    #: cache: header -> integer code of each row's (stripped) cell text
    _codes: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_rows(self) -> int:
        return len(self.where)

    def cell_codes(self, header: str) -> np.ndarray:
        """Integer code per row, equal for rows whose cell texts (stripped) are equal."""
        codes = self._codes.get(header)
        if codes is None:
            col = self.columns[header]
            try:
                cells = list(map(str.strip, col.tolist()))
            except TypeError:   # numbers or bytes (HDF5)
                cells = [_cell(v) for v in col]
            # a hash per cell: equal texts -> equal codes (unequal texts colliding is
            # possible in principle; check_duplicates compares the texts of its findings)
            codes = np.fromiter(map(hash, cells), dtype=np.int64, count=len(cells))
            self._codes[header] = codes
        return codes


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


def decode_text(path: Path, data: bytes, entry: Entry) -> str:
    """Text of a file in the entry's ``encoding`` (default UTF-8, with or without BOM).

    Raises
    ------
    DataError
        If the bytes are not valid in that encoding: names the byte offset and line, and
        suggests the likely encoding and the recipe key ``encoding``.
    """
    enc = entry.encoding or "utf-8"
    if codecs.lookup(enc).name == "utf-8":
        enc = "utf-8-sig"
    if entry.encoding is None and data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise DataError(f"{path}: the file is UTF-16 (it starts with a UTF-16 byte-order "
                        f"mark, as Excel's 'Unicode text' export writes); add "
                        f"encoding = \"utf-16\" to the recipe entry")
    try:
        return data.decode(enc)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start:exc.start + 4]
        if entry.encoding is None:
            try:
                data.decode("cp1252")
                likely = "cp1252 (Windows) or latin-1"
            except UnicodeDecodeError:
                likely = "latin-1 (ISO-8859-1)"
            hint = (f"the file is probably {likely}, e.g. 'µ' written as the byte 0xB5; add "
                    f"encoding = \"latin-1\" (or \"cp1252\") to the recipe entry")
        else:
            hint = ("give the file's real encoding with the recipe key encoding, e.g. "
                    "encoding = \"latin-1\"")
        raise DataError(f"{path}: not valid {entry.encoding or 'UTF-8'} at byte offset "
                        f"{exc.start} (line {line}, bytes {bad!r}): {hint}") from None


class _Body:
    """(line number, text) of the kept lines of a file, without a list of tuples."""

    def __init__(self, lines: list[str], keep):
        self.lines, self.keep = lines, keep

    def __getitem__(self, k: int) -> tuple[int, str]:
        i = self.keep[k]
        return i + 1, self.lines[i]


def read_text_table(path: Path, entry: Entry) -> Table:
    """Read a delimited text file: comment lines and ``skip_rows`` preamble lines skipped,
    then one header line, then data rows (blank lines ignored)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (listed in the recipe)") from None
    text = decode_text(path, data, entry)
    del data
    lines = text.splitlines()
    comment = entry.comment or None
    if (not comment or comment not in text) and all(map(str.strip, lines)):
        keep = range(len(lines))            # no comment or blank line: every line counts
    else:
        keep = [i for i, ln in enumerate(lines)
                if ln.strip() and not (comment and ln.lstrip().startswith(comment))]
    del text
    keep = keep[entry.skip_rows:]
    if not len(keep):
        raise DataError(f"{path}: no header line (file empty after comments/preamble)")
    body = _Body(lines, keep)
    delim = _sniff_delimiter(path, body[0][1], entry)

    def split(text: str) -> list[str]:
        if delim is None:
            return text.split()
        return next(csv.reader([text], delimiter=delim))

    header = [h.strip() for h in split(body[0][1])]
    if len(set(header)) != len(header):
        raise DataError(f"{path}: line {body[0][0]}: duplicate column headers {header}")
    if len(keep) < 2:
        raise DataError(f"{path}: header but no data rows")
    nrow, ncol = len(keep) - 1, len(header)
    linenos = np.asarray(keep[1:], dtype=np.int64) + 1
    texts = lines[keep[1]:keep[-1] + 1] if isinstance(keep, range) else [lines[i] for i in
                                                                          keep[1:]]
    del lines
    cells = None
    if delim is not None and len(delim) == 1:
        joined = delim.join(texts)
        if '"' not in joined:
            # no quoting: split the whole body at once (one list of cells, no per-row lists)
            counts = np.fromiter(map(str.count, texts, itertools.repeat(delim)),
                                 dtype=np.int64, count=nrow)
            if np.all(counts == ncol - 1):
                cells = joined.split(delim)
                if any(c in joined for c in " \t\r\x0b\x0c" if c != delim):
                    cells = list(map(str.strip, cells))
        del joined
    if cells is not None:
        cols = {h: np.array(cells[j::ncol], dtype=object) for j, h in enumerate(header)}
        del cells
    else:
        rows = []
        for lineno, text in zip(linenos.tolist(), texts):
            row = split(text)
            if len(row) != ncol:
                raise DataError(f"{path}: line {lineno}: {len(row)} fields, the header has "
                                f"{ncol} ({header})")
            rows.append([c.strip() for c in row])
        cols = {h: np.array([r[j] for r in rows], dtype=object) for j, h in enumerate(header)}
    return Table(str(path), cols, LineWhere(linenos))


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
        tables = read_hdf5_tables(path, entry)
    else:
        tables = [read_text_table(path, entry)]
    if entry.wide is not None:
        tables = [melt_wide(t, entry) for t in tables]
    if entry.sort_by:
        tables = [sort_table(t, entry) for t in tables]
    return tables


def _cell(v) -> str:
    return (v.decode() if isinstance(v, bytes) else str(v)).strip()


def _is_empty(v) -> bool:
    if v is None:
        return True
    if isinstance(v, (str, bytes)):
        return not _cell(v)
    return isinstance(v, float) and math.isnan(v)


def melt_wide(table: Table, entry: Entry) -> Table:
    """Long-format table of a wide layout (recipe ``wide``): one ramp per listed column.

    The result has the index column (``wide.index``, or ``"pulse"`` = row position), a value
    column ``"<wide.value> (<unit>)"`` with the cells, ``"ramp"`` (1, 2, ... in column
    order), ``"condition"`` (with ``wide.conditions``) and every other column of the file
    repeated. Row locations are ``"line N, column 'header'"``.
    """
    w = entry.wide
    src = table.source
    if w.index is not None and w.index not in table.columns:
        raise DataError(f"{src}: column {w.index!r} (recipe wide.index) is missing; columns "
                        f"are {list(table.columns)}")
    cols = w.columns if w.columns is not None else [h for h in table.columns if h != w.index]
    missing = [h for h in cols if h not in table.columns]
    if missing:
        raise DataError(f"{src}: columns {missing} (recipe wide.columns) are missing; columns "
                        f"are {list(table.columns)}")
    if not cols:
        raise DataError(f"{src}: the wide layout has no value columns")
    conds = w.conditions
    if conds is not None and len(conds) == 1:
        conds = conds * len(cols)
    units = {h: entry.units.get(h, split_header(h)[1]) for h in cols}
    kinds = set()
    for h, u in units.items():
        try:
            kinds.add(None if u is None else si_factor(u))
        except KeyError:
            raise DataError(f"{src}: column {h!r}: unknown unit {u!r}") from None
    if len(kinds) > 1:
        raise DataError(f"{src}: the wide columns have different units {units}; they must "
                        f"hold the same quantity in the same unit")
    unit = units[cols[0]]
    value_h = f"{w.value} ({unit})" if unit else w.value
    index_h = w.index or "pulse"
    other = [h for h in table.columns if h != w.index and h not in cols]
    new_h = [index_h, value_h, "ramp"] + (["condition"] if conds else [])
    clash = [h for h in new_h[1:] + ([index_h] if w.index is None else []) if h in other]
    if clash:
        raise DataError(f"{src}: the wide layout would create columns {clash} that the file "
                        f"already has; list the ramp columns in wide.columns")
    out: dict[str, list] = {h: [] for h in new_h + other}
    where: list[str] = []
    for r, h in enumerate(cols, 1):
        raw = table.columns[h]
        filled = [i for i, v in enumerate(raw) if not _is_empty(v)]
        if not filled:
            raise DataError(f"{src}: column {h!r} (ramp {r} of the wide layout) is empty")
        for i in range(filled[-1] + 1):
            if _is_empty(raw[i]):
                raise DataError(f"{src}: column {h!r}, {table.where[i]}: an empty field inside "
                                f"ramp {r} (only trailing empty fields may end a shorter ramp)")
            out[index_h].append(table.columns[w.index][i] if w.index is not None else i)
            out[value_h].append(raw[i])
            out["ramp"].append(r)
            if conds:
                out["condition"].append(conds[r - 1])
            for o in other:
                out[o].append(table.columns[o][i])
            where.append(f"{table.where[i]}, column {h!r}")
    return Table(src, {h: np.array(v, dtype=object) for h, v in out.items()}, where,
                 origin={value_h: list(cols)})


def _conditions_header(entry: Entry) -> str | None:
    if entry.conditions is None:
        return None
    return entry.conditions_column or ("condition" if entry.wide is not None else None)


def condition_rows(table: Table, entry: Entry) -> tuple[str, list[str]]:
    """Header of the conditions label column and the label of every row (all listed)."""
    h = _conditions_header(entry)
    if h not in table.columns:
        raise DataError(f"{table.source}: column {h!r} (recipe conditions.column) is missing; "
                        f"columns are {list(table.columns)}")
    labels = [_cell(v) for v in table.columns[h]]
    for i, lab in enumerate(labels):
        if lab not in entry.conditions:
            raise DataError(f"{table.source}: column {h!r}, {table.where[i]}: condition "
                            f"{lab!r} is not listed in the recipe's conditions "
                            f"({list(entry.conditions)})")
    return h, labels


def sort_table(table: Table, entry: Entry) -> Table:
    """Rows stably sorted by the recipe's ``sort_by`` columns (locations kept)."""
    keys = []
    cond_h = _conditions_header(entry)
    for h in entry.sort_by:
        if h not in table.columns:
            raise DataError(f"{table.source}: column {h!r} (recipe sort_by) is missing; "
                            f"columns are {list(table.columns)}")
        if h == cond_h:
            order = {lab: k for k, lab in enumerate(entry.conditions)}
            keys.append([order[lab] for lab in condition_rows(table, entry)[1]])
            continue
        cells = [_cell(v) for v in table.columns[h]]
        nums = []
        for c in cells:
            try:
                nums.append(float(c))
            except ValueError:
                nums.append(None)
        bad = [i for i, x in enumerate(nums) if x is None or not math.isfinite(x)]
        if not bad:
            keys.append(nums)
        elif len(bad) == len(cells):
            keys.append(cells)          # a text column (labels): sorted as text
        else:                           # mostly numbers: a gap would sort silently wrong
            i = bad[0]
            shown = "an empty field" if not cells[i] else repr(cells[i])
            raise DataError(f"{table.source}: column {h!r} (recipe sort_by), "
                            f"{table.where[i]}: {shown} in a numeric column; the rows "
                            f"cannot be sorted")
    order = sorted(range(table.n_rows), key=lambda i: tuple(k[i] for k in keys))
    return Table(table.source, {h: v[order] for h, v in table.columns.items()},
                 [table.where[i] for i in order], origin=table.origin)


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
    try:   # one vectorised pass; the loop below only finds the row of an error
        out = np.array(raw, dtype=float)
    except (TypeError, ValueError):
        out = None
    if out is None or not np.all(np.isfinite(out)):
        first = 0 if out is None else int(np.nonzero(~np.isfinite(out))[0][0])
        slow = np.empty(len(raw)) if out is None else out
        for i in range(first, len(raw)):
            v = raw[i]
            try:
                x = slow[i] = float(v)
            except (TypeError, ValueError):
                shown = "an empty field" if (isinstance(v, str) and not v.strip()) else repr(v)
                raise DataError(f"{table.source}: column {header!r}, {table.where[i]}: "
                                f"{shown} is not a number") from None
            if not math.isfinite(x):
                raise DataError(f"{table.source}: column {header!r}, {table.where[i]}: "
                                f"value {v!r} is NaN or infinite")
        out = slow
    out *= factor
    check_range(table, header, role, out)
    return out


def check_range(table: Table, header: str, role: str, values: np.ndarray,
                rows: np.ndarray | None = None, how: str = "") -> None:
    """DataError for the first value of ``role`` outside :data:`LIMITS` (SI values).

    ``rows`` maps ``values`` to table rows (default: all rows in order); ``how`` is
    appended to the message (e.g. how a normalised value was converted).
    """
    if role not in LIMITS:
        return
    lo, hi, absolute = LIMITS[role]
    x = np.abs(values) if absolute else values
    bad = np.zeros(x.shape, bool)
    if lo is not None:
        bad |= ~(x > lo)
    if hi is not None:
        bad |= ~(x <= hi)
    if not bad.any():
        return
    k = int(np.nonzero(bad)[0][0])
    i = k if rows is None else int(rows[k])
    unit = _si(ROLES[role][0])
    bound = []
    if lo is not None:
        bound.append(f"> {lo:g} {unit}")
    if hi is not None:
        bound.append(f"{'|value| ' if absolute else ''}<= {hi:g} {unit}")
    raw = table.columns[header][i]
    why = {"conductance": " (a conductance cannot be zero or negative)" if values[k] <= 0
           else ""}.get(role, "")
    raise DataError(f"{table.source}: column {header!r}, {table.where[i]}: {role} "
                    f"{_cell(raw)!r} = {values[k]:g} {unit}{how} is implausible: must be "
                    f"{' and '.join(bound)}{why}")


def _si(quantity: str) -> str:
    return {"voltage": "V", "current": "A", "conductance": "S", "time": "s", "length": "m",
            "area": "m^2"}.get(quantity, "")


def label_column(table: Table, header: str | None, const, n: int, default: str) -> np.ndarray:
    if header is not None:
        col = table.columns[header]
        try:
            return np.array(list(map(str.strip, col.tolist())), dtype=object)
        except TypeError:   # numbers or bytes (HDF5)
            pass
        return np.array([(v.decode() if isinstance(v, bytes) else str(v)).strip()
                         for v in col], dtype=object)
    return np.full(n, default if const is None else str(const), dtype=object)


def int_column(table: Table, header: str, role: str) -> np.ndarray:
    vals = numeric_column(table, header, role, Entry("x", Path(), ""))
    if np.any(vals != np.round(vals)):
        i = int(np.nonzero(vals != np.round(vals))[0][0])
        raise DataError(f"{table.source}: column {header!r}, {table.where[i]}: {role} index "
                        f"{vals[i]} is not an integer")
    return vals.astype(int)


def area_column(table: Table, entry: Entry) -> np.ndarray:
    """Cell area (m²) per row: area column, diameter column, or recipe constant; checked
    against :data:`LIMITS` (positive, at most 1 mm²)."""
    h = find_column(table, "area", entry, required=False)
    if h is not None:
        a = numeric_column(table, h, "area", entry)
    else:
        h = find_column(table, "diameter", entry, required=False)
        if h is not None:
            d = numeric_column(table, h, "diameter", entry)
            a = math.pi * d ** 2 / 4.0
            check_range(table, h, "area", a, how=" (from the diameter)")
        elif entry.area is not None:
            return np.full(table.n_rows, entry.area)
        else:
            raise DataError(f"{table.source}: no area or diameter column and no 'area'/"
                            f"'diameter' in the recipe entry; the fit needs the cell area")
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
    branch : (n,) int array, monotone voltage leg of each point within the sweep, split at
        the voltage turning points (0 -> +V is branch 0, +V -> 0 branch 1, ...)
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
    branch: np.ndarray | None = None

    def __post_init__(self):
        if self.branch is None:
            self.branch = voltage_branches(self.voltage)

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
    normalised : dict or None
        ``{"scale", "offset", "quantity", "column"}`` (SI; ``column``: the file's
        header(s)) when the reads were normalised (dimensionless) and converted with the
        recipe's ``normalised``: the absolute scale is then an assumption; None for reads in
        physical units
    state_from_first_read : bool
        The recipe asks the fit to start every cycle from the state of its first read
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
    normalised: dict | None = None
    state_from_first_read: bool = False

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
    issues: list[DataIssue] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """The loader's warnings, one line per kind and file (what :func:`load_dataset`
        warned and the CLI prints); every flagged record is in :attr:`issues`."""
        return [str(w) for w in summarise_issues(self.issues)]

    @property
    def n_points(self) -> int:
        """Observations: sweep points (clipped included) and pulse reads."""
        return (sum(s.voltage.size for s in self.sweeps)
                + sum(t.conductance.size for t in self.trains))

    @property
    def devices(self) -> list[tuple[str, float]]:
        """Distinct (device label, area) in order of appearance."""
        seen: dict[str, float] = {}
        for s in self.sweeps:
            seen.setdefault(s.device, s.area)
        for t in self.trains:
            seen.setdefault(t.device, t.area)
        return list(seen.items())


def _factorize(col) -> np.ndarray:
    """Integer code per element, equal for equal elements."""
    a = np.asarray(col)
    if a.dtype != object:
        return np.unique(a, return_inverse=True)[1].reshape(-1)
    vals = a.tolist()
    try:
        h = np.fromiter(map(hash, vals), dtype=np.int64, count=a.size)
    except TypeError:
        h = None
    if h is not None:
        _, first, inv = np.unique(h, return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        if np.all(a == a[first][inv]):      # no two different values share a hash
            return inv
    index: dict = {}
    return np.fromiter((index.setdefault(v, len(index)) for v in vals),
                       dtype=np.int64, count=a.size)


def _group_rows(*cols) -> list[np.ndarray]:
    """Row indices per distinct combination of the columns' values, groups in order of
    first appearance, rows in order within a group (vectorised :func:`_groups`)."""
    n = len(cols[0])
    if n == 0:
        return []
    key = np.zeros(n, dtype=np.int64)
    for c in cols:
        codes = _factorize(c)
        key = key * (int(codes.max()) + 1) + codes
        key = np.unique(key, return_inverse=True)[1].reshape(-1)   # keep the codes small
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    g = rank[inv]
    order = np.argsort(g, kind="stable")
    bounds = np.nonzero(np.diff(g[order]))[0] + 1
    return np.split(order, bounds)


def _groups(keys: list[tuple]) -> list[np.ndarray]:
    """Row indices per distinct key, in order of first appearance."""
    order: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        order.setdefault(k, []).append(i)
    return [np.array(v) for v in order.values()]


def voltage_branches(v: np.ndarray) -> np.ndarray:
    """Monotone-leg number of every point of a sweep: a new branch starts after each voltage
    turning point (0 -> +3 V is branch 0, 3 -> 0 V branch 1, ...). Steps smaller than a tenth
    of the median step (read-back noise, repeated set points) do not turn a leg; the turning
    point itself ends the earlier branch."""
    v = np.asarray(v, float)
    branch = np.zeros(v.size, int)
    if v.size < 2:
        return branch
    dv = np.diff(v)
    a = np.abs(dv)
    if not (a > 0).any():
        return branch
    tiny = 0.1 * np.median(a[a > 0])
    d = np.where(a <= tiny, 0, np.sign(dv)).astype(int)      # direction of each step
    last = np.where(d != 0, np.arange(d.size), -1)
    last = np.maximum.accumulate(last)                          # last turning-capable step
    prev = np.zeros(d.size, int)                                # direction before step k
    prev[1:] = np.where(last[:-1] >= 0, d[np.maximum(last[:-1], 0)], 0)
    turn = (d != 0) & (prev != 0) & (d != prev)
    branch[1:] = np.cumsum(turn)
    return branch


def split_polarity(v: np.ndarray) -> np.ndarray:
    """Sweep number (0, 1, ...) of every point of one device's rows, split at polarity
    changes of the voltage.

    Voltages within a quarter of the median step of 0 count as 0 V. A 0 V point never starts
    a sweep of its own: zeros before the first non-zero point join the first sweep, the first
    zero between two legs of opposite polarity ends the earlier sweep and further zeros
    there start the next one, zeros between legs of the same polarity stay in that sweep.
    """
    v = np.asarray(v, float)
    steps = np.abs(np.diff(v))
    tol = 0.25 * np.median(steps[steps > 0]) if (steps > 0).any() else 0.0
    sign = np.where(np.abs(v) <= tol, 0, np.sign(v)).astype(int)
    out = np.zeros(v.size, int)
    k, cur = 0, 0           # sweep number, polarity of the current sweep (0: not yet known)
    zeros: list[int] = []   # pending 0 V points after a non-zero one
    for j, sj in enumerate(sign):
        if sj == 0:
            if cur == 0:
                out[j] = k
            else:
                zeros.append(j)
            continue
        if cur and sj != cur:
            if zeros:
                out[zeros[0]] = k
            k += 1
            for z in zeros[1:]:
                out[z] = k
        else:
            for z in zeros:
                out[z] = k
        zeros = []
        cur = sj
        out[j] = k
    for z in zeros:
        out[z] = k
    return out


def check_row_order(source: str, header: str, v: np.ndarray, where: list[str], raw,
                    label: str) -> None:
    """DataError if a voltage sequence jumps around like shuffled rows: more than 20 % of the
    steps larger than 5x the median |dV|, or more direction reversals than 20 % of the
    steps (a sweep has a few)."""
    dv = np.diff(np.asarray(v, float))
    a = np.abs(dv)
    nz = a > 0
    if nz.sum() < 5:
        return
    med = np.median(a[nz])
    big = a > 5.0 * med
    sig = a > 0.1 * med
    d = np.sign(dv[sig])
    turns = np.nonzero(d[1:] != d[:-1])[0]
    n_turn = turns.size
    if big.sum() > 0.2 * nz.sum():
        j = int(np.nonzero(big)[0][0]) + 1
        what = (f"{int(big.sum())} of {int(nz.sum())} voltage steps are larger than 5x the "
                f"median step {med:g} V")
    elif n_turn > max(4, 0.2 * sig.sum()):
        j = int(np.nonzero(sig)[0][turns[0] + 1]) + 1
        what = (f"the voltage reverses direction {n_turn} times in {int(sig.sum())} steps")
    else:
        return
    raise DataError(f"{source}: {label}: column {header!r}, {where[j]}: {_cell(raw[j])!r}: "
                    f"{what}; the rows look out of order (shuffled?): restore the measurement "
                    f"order, add a time column, or give a sweep column")


def check_time_order(source: str, header: str, t: np.ndarray, where: list[str], raw,
                     label: str) -> None:
    """DataError at the first row whose time is earlier than the row before it."""
    back = np.nonzero(np.diff(t) < 0)[0]
    if back.size:
        j = int(back[0]) + 1
        raise DataError(f"{source}: {label}: column {header!r}, {where[j]}: time "
                        f"{_cell(raw[j])!r} is earlier than the row before it "
                        f"({_cell(raw[j - 1])!r}, {where[j - 1]}): rows out of time order "
                        f"({back.size} step(s) go back in time)")


def check_duplicates(table: Table, rows: np.ndarray, label: str, what: str,
                     key_extra=None, ignore: np.ndarray | None = None,
                     issues: list | None = None) -> None:
    """Rows identical in every column to an earlier row of the same group: DataError when
    they are :data:`DUPLICATE_ERROR_FRACTION` or more of the rows, else a ``"duplicates"``
    :class:`DataIssue` naming them, appended to ``issues`` (without a list: a
    :class:`SuspiciousDataWarning`). ``key_extra`` (per row of ``rows``) is added to the
    comparison; rows where ``ignore`` is True never count."""
    rows = np.asarray(rows, dtype=np.int64)
    keep = np.ones(rows.size, bool) if ignore is None else ~np.asarray(ignore, bool)
    sel = rows[keep]
    if sel.size < 2:
        return
    # one 64-bit key per row mixing the cell hashes (and key_extra); candidates with equal
    # keys are then compared cell by cell, so a hash collision never makes a duplicate
    key = np.zeros(sel.size, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for h in table.columns:
            key = key * np.uint64(1000003) + table.cell_codes(h)[sel].view(np.uint64)
        if key_extra is not None:
            extra = np.asarray(key_extra)
            extra = (extra.astype(np.int64) if extra.dtype.kind in "iub"
                     else _factorize(extra))[keep]
            key = key * np.uint64(1000003) + extra.view(np.uint64)
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    dup_k = np.nonzero(first[inv] != np.arange(sel.size))[0]
    if dup_k.size == 0:
        return
    cols = list(table.columns.values())
    extra_l = None if key_extra is None else np.asarray(key_extra)[keep]

    def same(a: int, b: int) -> bool:
        if extra_l is not None and extra_l[a] != extra_l[b]:
            return False
        return all(_cell(c[sel[a]]) == _cell(c[sel[b]]) for c in cols)

    dups = [(int(sel[k]), int(sel[first[inv[k]]])) for k in dup_k if same(k, first[inv[k]])]
    if not dups:
        return
    shown = ", ".join(f"{table.where[j]} = {table.where[f]}" for j, f in dups[:6])
    shown += " ..." if len(dups) > 6 else ""
    if len(dups) >= DUPLICATE_ERROR_FRACTION * len(rows):
        raise DataError(f"{table.source}: {label}: {len(dups)} of {len(rows)} rows are exact "
                        f"duplicates of another row of the same {what} ({shown}): every row "
                        f"duplicated? (file appended twice, or an export that repeats rows)")
    issue = DataIssue("duplicates", table.source, label,
                      tuple(f"{table.where[j]} = {table.where[f]}"
                            for j, f in dups[:ISSUE_ROWS_SHOWN]), len(dups),
                      f"compared within each {what}",
                      f"{table.source}: {label}: {len(dups)} row(s) identical in every column to "
                      f"another row of the same {what} ({shown}); they are used as they are")
    if issues is None:
        warn_issues([issue], stacklevel=3)
    else:
        issues.append(issue)


def flag_compliance(sweeps: list[Sweep], compliance: float | None) -> list[np.ndarray]:
    """Boolean masks of the compliance-clipped points of the sweeps of one entry.

    With ``compliance``: every point with |I| >= (1 - COMPLIANCE_RTOL) compliance. Without:
    points at a common current limit only (see the module docstring): the top level of a
    sweep counts if it has a flat top (>= 2 points at >= 2 voltages) and another sweep of the
    entry has a flat top at the same level (within COMPLIANCE_RTOL), or if
    it holds >= PLATEAU_MIN_POINTS points at >= 2 voltages and is the largest |I| of the
    entry.
    """
    if compliance is not None:
        return [np.abs(s.current) >= (1.0 - COMPLIANCE_RTOL) * compliance for s in sweeps]
    if not sweeps:
        return []
    tops = np.array([np.abs(s.current).max() for s in sweeps])
    near, flat, strong = [], [], []
    for s, top in zip(sweeps, tops):
        m = np.abs(s.current) >= (1.0 - COMPLIANCE_RTOL) * top
        nv = np.unique(np.round(np.abs(s.voltage[m]), 9)).size
        near.append(m)
        flat.append(m.sum() >= 2 and nv >= 2)
        strong.append(m.sum() >= PLATEAU_MIN_POINTS and nv >= 2)
    out = []
    flat_a = np.array(flat, bool)
    order = np.argsort(tops)
    sorted_tops = tops[order]
    for k, top in enumerate(tops):
        # sweeps whose top is within COMPLIANCE_RTOL of this one (a window of the sorted tops)
        lo = np.searchsorted(sorted_tops, top * (1.0 - COMPLIANCE_RTOL), side="left")
        hi = np.searchsorted(sorted_tops, top / (1.0 - COMPLIANCE_RTOL), side="right")
        cand = order[lo:hi]
        same = np.abs(tops[cand] - top) <= COMPLIANCE_RTOL * np.maximum(tops[cand], top)
        same &= cand != k
        # both this sweep and another one flat at the same level: with thousands of noisy
        # sweeps, one flat top and a coincident maximum elsewhere happen by chance
        common = flat[k] and bool(np.any(same & flat_a[cand]))
        single = strong[k] and top >= (1.0 - COMPLIANCE_RTOL) * tops.max()
        out.append(near[k] if (common or single) else np.zeros_like(near[k]))
    return out


def load_sweeps(entry: Entry, issues: list | None = None) -> list[Sweep]:
    """DC sweeps of a recipe entry, one :class:`Sweep` per (device, cycle, sweep).

    Flagged records (compliance-clipped points, a few duplicated rows) are appended to
    ``issues`` as :class:`DataIssue`; without a list they are warned about here, one warning
    per kind and file (:func:`warn_issues`).

    Without a sweep column each device's rows are split at polarity changes
    (:func:`split_polarity`). Checks (each a :class:`DataError` naming file, column, row and
    value): magnitudes (:data:`LIMITS`), time going backwards within a sweep, rows out of
    order (no time column), a current that is zero everywhere, duplicated rows; compliance
    points are flagged for the whole entry (:func:`flag_compliance`).
    """
    out: list[Sweep] = []
    found: list[DataIssue] = [] if issues is None else issues
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
            for idx in _group_rows(dev, cyc):
                where = take_where(table.where, idx)
                label = f"device {dev[idx[0]]!r}, cycle {cyc[idx[0]]}"
                if t is not None:
                    back = np.diff(t[idx]) < 0
                    if back.sum() > 0.2 * max(1, idx.size - 1):
                        check_time_order(table.source, ht, t[idx], where,
                                         table.columns[ht][idx], label)
                else:
                    check_row_order(table.source, hv, v[idx], where, table.columns[hv][idx],
                                    label)
                k = split_polarity(v[idx])
                sums = np.bincount(k, weights=np.sign(v[idx]))
                names = np.array([f"{kk}{'neg' if sums[kk] < 0 else 'pos'}"
                                  for kk in range(sums.size)], dtype=object)
                swp[idx] = names[k]
        sweeps, wheres = [], []
        for idx in _group_rows(dev, cyc, swp):
            where = take_where(table.where, idx)
            name = f"device {dev[idx[0]]!r}, cycle {cyc[idx[0]]}, sweep {swp[idx[0]]!r}"
            label = f"{table.source}: {name}"
            if t is not None:
                check_time_order(table.source, ht, t[idx], where, table.columns[ht][idx], name)
            else:
                check_row_order(table.source, hv, v[idx], where, table.columns[hv][idx], name)
            if idx.size < 3:
                raise DataError(f"{label} ({where[0]}): empty sweep ({idx.size} point(s))")
            if np.ptp(v[idx]) == 0:
                raise DataError(f"{label} ({where[0]}): empty sweep (voltage never changes)")
            if np.all(cur[idx] == 0):
                raise DataError(f"{label}: column {hi!r}, {where[0]} to {where[-1]}: the "
                                f"current is {_cell(table.columns[hi][idx[0]])!r} = 0 at every "
                                f"point (open circuit, or the wrong column?)")
            a = area[idx]
            if np.ptp(a) > 1e-9 * a[0]:
                j = idx[np.nonzero(a != a[0])[0][0]]
                raise DataError(f"{table.source}: {table.where[j]}: area changes within a sweep")
            branch = voltage_branches(v[idx])
            if t is not None:
                check_duplicates(table, idx, name, "sweep", issues=found)
            else:   # same V, same I on the up and down legs is legitimate without a time
                check_duplicates(table, idx, name, "voltage leg of a sweep",
                                 key_extra=branch, ignore=v[idx] == 0, issues=found)
            if t is not None:
                tt = t[idx]
                dt = np.diff(tt)
                pos = dt[dt > 0]
                if pos.size == 0:
                    raise DataError(f"{label}: column {ht!r}: time never increases")
                dwell = np.r_[np.median(pos), np.where(dt > 0, dt, np.median(pos))]
            else:
                dwell = np.full(idx.size, entry.dwell)
            sweeps.append(Sweep(source=table.source, entry=entry.name, device=str(dev[idx[0]]),
                                area=float(a[0]), cycle=int(cyc[idx[0]]),
                                sweep=str(swp[idx[0]]), voltage=v[idx], current=cur[idx],
                                dwell=dwell, valid=np.ones(idx.size, bool), where=where,
                                compliance=entry.compliance,
                                initial_state=entry.initial_state, branch=branch))
        out.extend(sweeps)
    for s, clipped in zip(out, flag_compliance(out, entry.compliance)):
        record = f"device {s.device!r}, cycle {s.cycle}, sweep {s.sweep!r}"
        if clipped.all():
            raise DataError(f"{s.source}: {record}: every point is compliance-clipped")
        if clipped.any():
            k = np.nonzero(clipped)[0]
            rows = tuple(take_where(s.where, k[:ISSUE_ROWS_SHOWN]))
            top = np.abs(s.current[clipped]).max()
            how = (f"|I| >= compliance {entry.compliance:g} A" if entry.compliance
                   else f"current limit {top:g} A common to the entry")
            found.append(DataIssue(
                "compliance", s.source, record, rows, int(k.size),
                (f"|I| >= compliance {entry.compliance:g} A" if entry.compliance
                 else f"current limit {top:.3g} A common to the entry"),
                f"{s.source}: {record}: {k.size} compliance-clipped point(s) excluded from "
                f"the fit ({how}): {', '.join(rows)}{' ...' if k.size > len(rows) else ''}"))
        s.valid = ~clipped
    if issues is None:
        warn_issues(found)
    return out


def _read_values(table: Table, header: str, role: str, entry: Entry
                 ) -> tuple[np.ndarray, dict | None, str]:
    """SI values of the read column (conductance or read current), converting a
    dimensionless column with the recipe's ``normalised``; returns (values, normalised
    info or None, text for messages)."""
    quantity = ROLES[role][0]
    unit = entry.units.get(role, entry.units.get(header, split_header(header)[1]))
    dimensionless = False
    if unit is not None:
        try:
            dimensionless = si_factor(unit)[1] == "dimensionless"
        except KeyError:
            pass   # numeric_column reports the unknown unit
    nm = entry.normalised
    if nm is None:
        if dimensionless:
            raise DataError(f"{table.source}: column {header!r} ({role}) is dimensionless "
                            f"(normalised, unit {unit!r}); the {quantity} needs an absolute "
                            f"scale: add normalised = {{scale = ..., offset = ...}} to the "
                            f"recipe entry ({role} = offset + scale * value, e.g. scale = "
                            f"\"{'45 uS' if quantity == 'conductance' else '4.5 uA'}\", "
                            f"offset = \"{'55 uS' if quantity == 'conductance' else '5.5 uA'}\")")
        return numeric_column(table, header, role, entry), None, ""
    if unit is not None and not dimensionless:
        raise DataError(f"{table.source}: column {header!r} has the unit {unit!r}, but the "
                        f"recipe entry says it is normalised; drop 'normalised' or the unit")
    if nm["quantity"] not in (None, quantity):
        raise DataError(f"{table.source}: column {header!r} is a {role} ({quantity}) but the "
                        f"recipe's normalised scale/offset are a {nm['quantity']}")
    raw = numeric_column(table, header, "pulse", entry)   # plain numbers, no unit
    vals = nm["offset"] + nm["scale"] * raw
    info = {"scale": nm["scale"], "offset": nm["offset"], "quantity": quantity,
            "column": ", ".join(table.origin.get(header, [header]))}
    how = (f" (= {nm['offset']:g} + {nm['scale']:g} * value, recipe normalised)")
    check_range(table, header, role, vals, how=how)
    return vals, info, how


def load_pulse_trains(entry: Entry, issues: list | None = None) -> list[PulseTrain]:
    """Pulse trains of a recipe entry, one :class:`PulseTrain` per device.

    Rows are reads. The applied pulses come from ``pulse_voltage``/``pulse_width`` columns
    or the recipe ``conditions`` (each row = one pulse, then a read; rows with pulse index 0
    are reads before the first pulse of a cycle) or from the recipe ``protocol`` (one cycle
    = the listed segments; the pulse index of a row = number of pulses of its cycle applied
    before the read). Cycles come from a cycle column, or start where the pulse index
    decreases. Reads must give a positive conductance; duplicated rows within a cycle are
    refused or warned about (:func:`check_duplicates`).
    """
    found: list[DataIssue] = [] if issues is None else issues
    out: list[PulseTrain] = []
    for table in read_tables(entry):
        n = table.n_rows
        hg = find_column(table, "conductance", entry, required=False)
        norm, how = None, ""
        if hg is not None:
            g, norm, how = _read_values(table, hg, "conductance", entry)
            hvr = find_column(table, "read_voltage", entry, required=False)
        else:
            hir = find_column(table, "read_current", entry, required=False)
            if hir is None:
                raise DataError(f"{table.source}: missing column for the read: need a "
                                f"conductance column (e.g. 'G (uS)') or a read current "
                                f"(e.g. 'I_read (A)') with a read voltage; columns are "
                                f"{list(table.columns)}")
            ir, norm, how = _read_values(table, hir, "read_current", entry)
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
            bad = np.nonzero(~(g > 0))[0]
            if bad.size:
                j = int(bad[0])
                raise DataError(f"{table.source}: column {hir!r}, {table.where[j]}: read "
                                f"current {_cell(table.columns[hir][j])!r} = {ir[j]:g} A{how} "
                                f"has the wrong sign for the read voltage {vr[j]:g} V "
                                f"(conductance {g[j]:g} S; a conductance cannot be zero or "
                                f"negative)")
            check_range(table, hir, "conductance", g, how=" (read current / read voltage)")
        dev = label_column(table, find_column(table, "device", entry, required=False),
                           entry.device, n, Path(entry.file).stem)
        area = area_column(table, entry)
        hp = find_column(table, "pulse", entry, required=False)
        pidx = int_column(table, hp, "pulse") if hp else None
        hc = find_column(table, "cycle", entry, required=False)
        cyc = int_column(table, hc, "cycle") if hc else None
        hpv = find_column(table, "pulse_voltage", entry, required=False)
        hpw = find_column(table, "pulse_width", entry, required=False)
        if entry.conditions is not None:
            if hpv or hpw:
                raise DataError(f"{table.source}: the recipe gives pulse 'conditions' and the "
                                f"file has pulse amplitude/width columns "
                                f"({[h for h in (hpv, hpw) if h]}); use one of the two")
            _, labels = condition_rows(table, entry)
            pv = np.array([entry.conditions[lab][0] for lab in labels])
            pw = np.array([entry.conditions[lab][1] for lab in labels])
        else:
            pv = numeric_column(table, hpv, "pulse_voltage", entry) if hpv else None
            pw = numeric_column(table, hpw, "pulse_width", entry) if hpw else None
        if (pv is None) != (pw is None):
            raise DataError(f"{table.source}: missing column for "
                            f"{'pulse_width' if pw is None else 'pulse_voltage'} (the pulse "
                            f"amplitude and width columns go together)")
        if pv is None and entry.protocol is None:
            raise DataError(f"{table.source}: no pulse amplitude/width columns and no "
                            f"'protocol' (or 'conditions') in the recipe entry: the applied "
                            f"pulses are unknown")
        if pv is None and pidx is None:
            raise DataError(f"{table.source}: missing column for 'pulse' (index of the read "
                            f"within its cycle), needed with a recipe protocol")
        for idx in _group_rows(dev):
            where = take_where(table.where, idx)
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
            check_duplicates(table, idx, f"device {dev[idx[0]]!r}", "cycle", key_extra=c,
                             issues=found)
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
                                  label_=entry.label,
                                  normalised=dict(norm) if norm is not None else None,
                                  state_from_first_read=entry.state_from_first_read))
    if issues is None:
        warn_issues(found)
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
    """Load every entry of a data set (directory with a recipe, or a recipe file).

    Flagged records (compliance-clipped sweep points, a few duplicated rows) are warned
    about once per kind and file (:class:`ClippedPointsWarning`,
    :class:`SuspiciousDataWarning`, with the counts and the first records named); the
    lines are ``dataset.warnings`` and every record is in ``dataset.issues``.
    """
    recipe = load_recipe(path)
    ds = Dataset(recipe)
    for e in recipe.sweeps:
        ds.sweeps.extend(load_sweeps(e, ds.issues))
    for e in recipe.pulses:
        ds.trains.extend(load_pulse_trains(e, ds.issues))
    files = [e.file for e in recipe.entries] + [recipe.path]
    ds.sha256, ds.files = file_sha256(files)
    warn_issues(ds.issues)
    return ds
