"""Units of measurement columns: parse them from headers, convert to SI.

A column header carries its unit in one of the forms that instrument exports and
spreadsheets use::

    "Voltage (V)"   "I [mA]"   "current_uA"   "G (µS)"   "diameter (nm)"   "area (um^2)"

and a dimensionless (normalised) column as ``"G (1)"``, ``"G (a.u.)"`` or ``"G_norm_1"``.

:func:`split_header` separates the name from the unit, :func:`si_factor` returns the factor
that converts a value in that unit to SI (V, A, S, s, m, m²) together with the physical
quantity, so that a loader can check that a "current" column does not carry volts.
"""

from __future__ import annotations

import re

#: Physical quantity -> SI unit symbol.
QUANTITY_SI = {"voltage": "V", "current": "A", "conductance": "S", "time": "s",
               "length": "m", "area": "m^2", "resistance": "Ohm", "dimensionless": "1"}

_PREFIX = {"": 1.0, "k": 1e3, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "n": 1e-9,
           "p": 1e-12, "f": 1e-15, "M": 1e6, "G": 1e9}
_BASE = {"V": "voltage", "A": "current", "S": "conductance", "s": "time", "m": "length",
         "Ohm": "resistance", "ohm": "resistance", "Ω": "resistance"}


def _normalise(unit: str) -> str:
    u = unit.strip().replace("²", "^2").replace("**", "^").replace(" ", "")
    u = u.replace("Ω", "Ohm").replace("sec", "s")
    return u


def si_factor(unit: str) -> tuple[float, str]:
    """Factor to SI and the quantity of a unit string.

    Parameters
    ----------
    unit : str
        E.g. ``"mA"``, ``"uS"``, ``"µm^2"``, ``"nm2"``, ``"ms"``, ``"1"`` (dimensionless).

    Returns
    -------
    factor, quantity : float, str
        ``value_SI = factor * value``; quantity is a key of :data:`QUANTITY_SI`.

    Raises
    ------
    KeyError
        If the unit is not recognised.
    """
    u = _normalise(unit)
    if u in ("", "1", "-", "#", "a.u.", "au"):
        return 1.0, "dimensionless"
    # areas: <prefix>m^2 or <prefix>m2
    m = re.fullmatch(r"([kmuµμnpf]?)m\^?2", u)
    if m:
        return _PREFIX[m.group(1)] ** 2, "area"
    for base in sorted(_BASE, key=len, reverse=True):
        if u.endswith(base):
            prefix = u[: -len(base)]
            if prefix in _PREFIX and not (base == "m" and prefix == "m" and False):
                return _PREFIX[prefix], _BASE[base]
    raise KeyError(unit)


_UNIT_IN_BRACKETS = re.compile(r"^(.*?)[\s_]*[\(\[]\s*([^\)\]]*)\s*[\)\]]\s*$")


def split_header(header: str) -> tuple[str, str | None]:
    """Split a column header into ``(name, unit)``; unit is ``None`` when none is given.

    ``"Voltage (V)" -> ("voltage", "V")``, ``"I [mA]" -> ("i", "mA")``,
    ``"current_uA" -> ("current", "uA")``, ``"V" -> ("v", None)``. The name is lower-cased
    and stripped; a trailing ``_<unit>`` or `` <unit>`` is a unit only if it parses.
    A trailing ``_1`` marks a dimensionless column (``"up_normalized_conductance_1" ->
    ("up_normalized_conductance", "1")``), except after a one-letter name, where it is a
    channel number (``"V_1" -> ("v_1", None)``).
    """
    h = header.strip().strip('"').strip()
    m = _UNIT_IN_BRACKETS.match(h)
    if m:
        return m.group(1).strip().lower(), m.group(2).strip()
    for sep in ("_", " "):
        if sep in h:
            name, _, tail = h.rpartition(sep)
            if name and len(tail) <= 6:
                try:
                    q = si_factor(tail)[1]
                except KeyError:
                    continue
                if q != "dimensionless":
                    return name.strip().lower(), tail
    name, sep, tail = h.rpartition("_")
    if sep and tail == "1" and len(name.strip()) > 1:
        return name.strip().lower(), "1"
    return h.lower(), None
