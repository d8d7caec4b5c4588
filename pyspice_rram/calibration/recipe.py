"""Data-set recipes: which files form a data set and how to read them.

A data set is a directory ``calibration/<name>/`` with measurement files and a recipe
``recipe.toml`` (or ``recipe.json``) that lists them. Minimal TOML example::

    name = "my-cells"
    read_voltage = 0.2                 # V, default for every pulse entry

    [[sweeps]]                         # DC I-V sweeps
    file = "iv.csv"                    # headers carry the units: "Voltage (V)", "I [mA]"
    compliance = 1e-3                  # A; clipped points are excluded (with a warning)
    dwell = 1e-3                       # s per voltage step, if the file has no time column

    [[pulses]]                         # pulse trains, read after each pulse
    file = "ramps.tsv"
    columns = {conductance = "G_uS"}   # map a role to a header when it is not auto-detected
    protocol = [{v = 1.8, width = 10e-6, n = 50}, {v = -3.0, width = 10e-6, n = 1}]

Every entry may give ``columns`` (role -> header), ``units`` (role or header -> unit, for
headers without one), constants for absent columns (``device``, ``diameter`` or ``area``,
``read_voltage``, ``dwell``; numbers in SI or strings with a unit such as ``"80 nm"``),
``format`` (``csv``, ``tsv``, ``hdf5``), ``delimiter``, ``skip_rows``, ``comment``, and for
HDF5 ``group`` (a group tree, one record set per group of 1-D datasets) or ``dataset`` (a
table). Column roles are listed in :data:`pyspice_rram.calibration.io.ROLES`.
"""

from __future__ import annotations

import codecs
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .units import si_factor
from ..errors import DataError

RECIPE_NAMES = ("recipe.toml", "recipe.json")

_ENTRY_KEYS = {"file", "name", "format", "delimiter", "skip_rows", "comment", "group",
               "dataset", "columns", "units", "device", "area", "diameter", "cycle",
               "read_voltage", "dwell", "compliance", "initial_state", "protocol", "label",
               "encoding", "sort_by", "conditions", "wide", "normalised",
               "state_from_first_read"}
_PULSE_ONLY = {"conditions", "wide", "normalised", "state_from_first_read"}
#: Plausible range of a pulse width (s): (0, MAX_PULSE_WIDTH].
MAX_PULSE_WIDTH = 10.0
#: Largest plausible cell area (m²): 1 mm².
MAX_AREA = 1e-6
_TOP_KEYS = {"name", "description", "synthetic", "generator", "sweeps", "pulses", "noise",
             "read_voltage", "scheme", "fit"}


def parse_quantity(value: Any, quantity: str, where: str) -> float:
    """A recipe number (SI) or string with unit (``"80 nm"``) as an SI float of ``quantity``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        parts = value.strip().split(None, 1)
        try:
            number = float(parts[0])
        except (ValueError, IndexError):
            raise DataError(f"{where}: {value!r} is not a number with a unit") from None
        if len(parts) == 1:
            return number
        try:
            factor, q = si_factor(parts[1])
        except KeyError:
            raise DataError(f"{where}: unknown unit {parts[1]!r} in {value!r}") from None
        if q != quantity:
            raise DataError(f"{where}: {value!r} is a {q}, expected a {quantity}")
        return number * factor
    raise DataError(f"{where}: expected a number or a string with a unit, got {value!r}")


@dataclass
class PulseSegment:
    """``n`` identical pulses of amplitude ``v`` (V) and width ``width`` (s)."""

    v: float
    width: float
    n: int


@dataclass
class Wide:
    """A wide layout: one column per ramp (see the module docstring, key ``wide``)."""

    index: str | None = None
    columns: list[str] | None = None
    conditions: list[str] | None = None
    value: str = "conductance"


@dataclass
class Entry:
    """One measurement file (or HDF5 group) of a data set; see the module docstring."""

    kind: str                      # "sweep" or "pulse"
    file: Path
    name: str
    format: str | None = None
    delimiter: str | None = None
    skip_rows: int = 0
    comment: str = "#"
    group: str | None = None
    dataset: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    device: str | None = None
    area: float | None = None
    cycle: int | None = None
    read_voltage: float | None = None
    dwell: float | None = None
    compliance: float | None = None
    initial_state: float = 0.0
    protocol: list[PulseSegment] | None = None
    label: str | None = None
    encoding: str | None = None
    sort_by: list[str] = field(default_factory=list)
    #: label -> (V, s), in the order listed; ``conditions_column`` is the label column.
    conditions: dict[str, tuple[float, float]] | None = None
    conditions_column: str | None = None
    wide: Wide | None = None
    #: ``{"scale": ..., "offset": ..., "quantity": "conductance" | "current" | None}`` (SI).
    normalised: dict[str, Any] | None = None
    state_from_first_read: bool = False


@dataclass
class Recipe:
    """A data set: its entries, weighting noise model and nominal scheme."""

    directory: Path
    path: Path
    name: str
    description: str = ""
    synthetic: bool = False
    sweeps: list[Entry] = field(default_factory=list)
    pulses: list[Entry] = field(default_factory=list)
    #: Noise model for weighting residuals: sigma = rel * |y| + floor (A for sweeps, S for
    #: pulse reads).
    noise: dict[str, float] = field(default_factory=lambda: {
        "sweep_rel": 0.01, "sweep_floor": 1e-12, "pulse_rel": 0.005, "pulse_floor": 1e-12})
    scheme: dict[str, float] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def entries(self) -> list[Entry]:
        return self.sweeps + self.pulses


def _entry(kind: str, raw: dict, directory: Path, where: str, defaults: dict) -> Entry:
    if not isinstance(raw, dict):
        raise DataError(f"{where}: each entry must be a table with at least 'file'")
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise DataError(f"{where}: unknown keys {sorted(unknown)}")
    if kind != "pulse" and _PULSE_ONLY & set(raw):
        raise DataError(f"{where}: {sorted(_PULSE_ONLY & set(raw))} only apply to [[pulses]]")
    if "file" not in raw:
        raise DataError(f"{where}: missing 'file'")
    file = (directory / raw["file"]).resolve()
    name = raw.get("name") or Path(raw["file"]).stem + (f":{raw['group']}" if raw.get("group") else "")
    e = Entry(kind=kind, file=file, name=str(name))
    for key in ("format", "delimiter", "group", "dataset", "label", "comment"):
        if key in raw:
            setattr(e, key, raw[key])
    e.skip_rows = int(raw.get("skip_rows", 0))
    e.columns = {str(k): str(v) for k, v in dict(raw.get("columns", {})).items()}
    e.units = {str(k): str(v) for k, v in dict(raw.get("units", {})).items()}
    if "device" in raw:
        e.device = str(raw["device"])
    if "cycle" in raw:
        e.cycle = int(raw["cycle"])
    if "area" in raw:
        e.area = parse_quantity(raw["area"], "area", f"{where}.area")
    if "diameter" in raw:
        if e.area is not None:
            raise DataError(f"{where}: give either 'area' or 'diameter', not both")
        d = parse_quantity(raw["diameter"], "length", f"{where}.diameter")
        if not d > 0:
            raise DataError(f"{where}.diameter must be positive, got {raw['diameter']!r}")
        e.area = 3.141592653589793 * d * d / 4.0
    if e.area is not None and not 0 < e.area <= MAX_AREA:
        raise DataError(f"{where}: cell area {e.area:g} m^2 is implausible (must be in "
                         f"(0, {MAX_AREA:g}] m^2)")
    rv = raw.get("read_voltage", defaults.get("read_voltage"))
    if rv is not None:
        e.read_voltage = parse_quantity(rv, "voltage", f"{where}.read_voltage")
    if "dwell" in raw:
        e.dwell = parse_quantity(raw["dwell"], "time", f"{where}.dwell")
    if "compliance" in raw:
        e.compliance = parse_quantity(raw["compliance"], "current", f"{where}.compliance")
        if not e.compliance > 0:
            raise DataError(f"{where}.compliance must be positive")
    e.initial_state = float(raw.get("initial_state", 0.0))
    if not 0.0 <= e.initial_state <= 1.0:
        raise DataError(f"{where}.initial_state must be in [0, 1]")
    if "protocol" in raw:
        segs = []
        for i, seg in enumerate(raw["protocol"]):
            w = f"{where}.protocol[{i}]"
            if not isinstance(seg, dict) or {"v", "width"} - set(seg):
                raise DataError(f"{w}: needs 'v' (V), 'width' (s) and optionally 'n'")
            segs.append(PulseSegment(*_pulse(seg, w), int(seg.get("n", 1))))
        e.protocol = segs
    _extended(e, raw, where)
    return e


def _pulse(spec: Any, where: str) -> tuple[float, float]:
    """(V, s) of a ``{v = ..., width = ...}`` table, with the width checked."""
    if not isinstance(spec, dict) or {"v", "width"} - set(spec):
        raise DataError(f"{where}: needs 'v' (V) and 'width' (s), got {spec!r}")
    v = parse_quantity(spec["v"], "voltage", where)
    w = parse_quantity(spec["width"], "time", where)
    if not 0 < w <= MAX_PULSE_WIDTH:
        raise DataError(f"{where}: pulse width {w:g} s is implausible (must be in "
                         f"(0, {MAX_PULSE_WIDTH:g}] s)")
    return v, w


def _quantity_of(value: Any) -> str | None:
    """Quantity of the unit in a recipe string such as ``"45 uS"`` (None for a bare number)."""
    if isinstance(value, str):
        parts = value.strip().split(None, 1)
        if len(parts) == 2:
            try:
                return si_factor(parts[1])[1]
            except KeyError:
                return None   # parse_quantity reports the unknown unit
    return None


def _extended(e: Entry, raw: dict, where: str) -> None:
    """Parse the keys ``encoding``, ``sort_by``, ``conditions``, ``wide``, ``normalised`` and
    ``state_from_first_read`` into ``e``."""
    if "encoding" in raw:
        try:
            codecs.lookup(str(raw["encoding"]))
        except LookupError:
            raise DataError(f"{where}.encoding: unknown encoding {raw['encoding']!r}") from None
        e.encoding = str(raw["encoding"])
    if "sort_by" in raw:
        sb = raw["sort_by"]
        sb = [sb] if isinstance(sb, str) else sb
        if not isinstance(sb, list) or not sb or not all(isinstance(c, str) for c in sb):
            raise DataError(f"{where}.sort_by: expected a list of column headers, got "
                             f"{raw['sort_by']!r}")
        e.sort_by = list(sb)
    if "state_from_first_read" in raw:
        if not isinstance(raw["state_from_first_read"], bool):
            raise DataError(f"{where}.state_from_first_read: expected true or false, got "
                             f"{raw['state_from_first_read']!r}")
        e.state_from_first_read = raw["state_from_first_read"]
    if "conditions" in raw:
        cond = raw["conditions"]
        if not isinstance(cond, dict):
            raise DataError(f"{where}.conditions: expected a table {{column = ..., <label> = "
                             f"{{v = ..., width = ...}}}}, got {cond!r}")
        cond = dict(cond)
        col = cond.pop("column", None)
        if col is not None and not isinstance(col, str):
            raise DataError(f"{where}.conditions.column: expected a column header, got {col!r}")
        if not cond:
            raise DataError(f"{where}.conditions: lists no condition")
        e.conditions = {str(k): _pulse(v, f"{where}.conditions.{k}") for k, v in cond.items()}
        e.conditions_column = col
        if e.protocol is not None:
            raise DataError(f"{where}: give either 'protocol' or 'conditions', not both")
    if "wide" in raw:
        w = raw["wide"]
        if not isinstance(w, dict):
            raise DataError(f"{where}.wide: expected a table {{index = ..., columns = [...], "
                             f"conditions = [...]}}, got {w!r}")
        bad = set(w) - {"index", "columns", "conditions", "value"}
        if bad:
            raise DataError(f"{where}.wide: unknown keys {sorted(bad)}")
        wide = Wide(index=w.get("index"), value=str(w.get("value", "conductance")))
        if wide.value not in ("conductance", "read_current"):
            raise DataError(f"{where}.wide.value: 'conductance' or 'read_current', got "
                             f"{wide.value!r}")
        if "columns" in w:
            if not isinstance(w["columns"], list) or not w["columns"]:
                raise DataError(f"{where}.wide.columns: expected a list of headers")
            wide.columns = [str(c) for c in w["columns"]]
        if "conditions" in w:
            wc = w["conditions"]
            wc = [wc] if isinstance(wc, str) else [str(c) for c in wc]
            if wide.columns is not None and len(wc) not in (1, len(wide.columns)):
                raise DataError(f"{where}.wide.conditions: {len(wc)} names for "
                                 f"{len(wide.columns)} columns (give one per column, or one "
                                 f"for all)")
            if wide.columns is None and len(wc) != 1:
                raise DataError(f"{where}.wide.conditions: one name per column needs "
                                 f"wide.columns")
            if e.conditions is None:
                raise DataError(f"{where}.wide.conditions: names {wc} but the entry has no "
                                 f"'conditions' table")
            missing = [c for c in wc if c not in e.conditions]
            if missing:
                raise DataError(f"{where}.wide.conditions: {missing} not in conditions "
                                 f"({list(e.conditions)})")
            wide.conditions = wc
        if e.conditions is not None:
            if e.conditions_column is not None:
                raise DataError(f"{where}.conditions: with a wide layout the conditions are "
                                 f"named by wide.conditions, not by a column "
                                 f"({e.conditions_column!r})")
            if wide.conditions is None:
                raise DataError(f"{where}.wide.conditions: name the condition of each "
                                 f"column (the entry has a conditions table)")
        e.wide = wide
    elif e.conditions is not None and e.conditions_column is None:
        raise DataError(f"{where}.conditions: needs 'column' (the header of the label "
                         f"column), e.g. conditions = {{column = \"direction\", ...}}")
    if "normalised" in raw:
        nm = raw["normalised"]
        if not isinstance(nm, dict) or "scale" not in nm or set(nm) - {"scale", "offset"}:
            raise DataError(f"{where}.normalised: expected {{scale = ..., offset = ...}} "
                             f"(value = offset + scale * normalised), got {nm!r}")
        qs = {q for q in (_quantity_of(nm["scale"]), _quantity_of(nm.get("offset", 0)))
              if q is not None}
        if len(qs) > 1 or (qs and qs.pop() not in ("conductance", "current")):
            raise DataError(f"{where}.normalised: scale and offset must both be a "
                             f"conductance (e.g. '45 uS') or both a current, got {nm!r}")
        q = _quantity_of(nm["scale"]) or _quantity_of(nm.get("offset", 0))
        scale = parse_quantity(nm["scale"], q or "conductance", f"{where}.normalised.scale")
        offset = parse_quantity(nm.get("offset", 0.0), q or "conductance",
                                f"{where}.normalised.offset")
        if not scale > 0:
            raise DataError(f"{where}.normalised.scale must be positive, got {nm['scale']!r}")
        e.normalised = {"scale": scale, "offset": offset, "quantity": q}


def load_recipe(path: str | Path) -> Recipe:
    """Read a recipe file, or the ``recipe.toml``/``recipe.json`` of a data-set directory."""
    path = Path(path)
    if path.is_dir():
        for name in RECIPE_NAMES:
            if (path / name).exists():
                path = path / name
                break
        else:
            raise FileNotFoundError(f"{path}: no {' or '.join(RECIPE_NAMES)} in the data-set directory")
    if not path.exists():
        raise FileNotFoundError(f"{path}: recipe not found")
    text = path.read_text(encoding="utf-8-sig")   # a BOM (Windows editors) is dropped
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"{path}: cannot parse recipe ({exc})") from exc
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise DataError(f"{path}: unknown top-level keys {sorted(unknown)}")
    directory = path.parent
    rec = Recipe(directory=directory, path=path, name=str(raw.get("name", directory.name)),
                 description=str(raw.get("description", "")),
                 synthetic=bool(raw.get("synthetic", False)), raw=raw)
    defaults = {"read_voltage": raw.get("read_voltage")}
    rec.sweeps = [_entry("sweep", r, directory, f"{path.name}: sweeps[{i}]", defaults)
                  for i, r in enumerate(raw.get("sweeps", []))]
    rec.pulses = [_entry("pulse", r, directory, f"{path.name}: pulses[{i}]", defaults)
                  for i, r in enumerate(raw.get("pulses", []))]
    if not rec.entries:
        raise DataError(f"{path}: the recipe lists no [[sweeps]] and no [[pulses]]")
    rec.noise.update({k: float(v) for k, v in dict(raw.get("noise", {})).items()})
    rec.scheme = dict(raw.get("scheme", {}))
    rec.fit = dict(raw.get("fit", {}))
    return rec
