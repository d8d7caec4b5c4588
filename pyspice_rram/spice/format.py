"""Netlist text for ngspice: the one number formatter and small line helpers.

Every netlister of the package (the cell library and cross-check circuits in
:mod:`pyspice_rram.device`, crossbar tiles and the update transient in
:mod:`pyspice_rram.circuit`) writes numbers with :func:`fmt` -- ``repr(float)``, the shortest
text that reads back as the same double (17 significant digits at most), so a netlist and the
NumPy form of the model agree to round-off -- and builds ``.options``, ``.save``, ``.control``
and PWL text with the helpers below.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from ..errors import UserInputError


def fmt(value: float) -> str:
    """Text of a real number that reads back as the same double (``repr(float(value))``).

    Raises
    ------
    UserInputError
        ``value`` is NaN or infinite (a simulator would read it as a node name or zero).
    """
    value = float(value)
    if not math.isfinite(value):
        raise UserInputError(f"cannot write the non-finite value {value!r} into a netlist or "
                             "Verilog-A source")
    return repr(value)


def _option_value(value: Any) -> str:
    """An option value: integers as integers, reals through :func:`fmt`, text as given."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return fmt(value)
    return str(value)


def options_line(options: dict[str, Any] | None = None, *, klu: bool = False) -> str:
    """``.options [klu] name=value ...``; a value of None writes the name alone (a flag).

    Parameters
    ----------
    options : dict, optional
        Option names and values, in order (e.g. ``{"reltol": 1e-9, "gminsteps": 100}``).
    klu : bool
        Start with ``klu`` (the KLU sparse solver of ngspice >= 41 built with it).
    """
    words = ["klu"] if klu else []
    for name, value in (options or {}).items():
        words.append(name if value is None else f"{name}={_option_value(value)}")
    return ".options " + " ".join(words)


def element(name: str, *nodes: str, value: float | str | None = None, **params: Any) -> str:
    """One element or instance line: ``name node ... [value] [param=value ...]``.

    ``value`` and ``params`` that are numbers are written with :func:`fmt`; text (an
    expression, a model name) is written as given.
    """
    words = [name, *nodes]
    if value is not None:
        words.append(value if isinstance(value, str) else fmt(value))
    words += [f"{k}={v if isinstance(v, str) else fmt(v)}" for k, v in params.items()]
    return " ".join(words)


def save_lines(vectors: Sequence[str], per_line: int = 16) -> list[str]:
    """``.save`` lines for ``vectors`` (ngspice names such as ``i(vs0)``, ``v(x1.x)``),
    ``per_line`` names per line."""
    return [".save " + " ".join(vectors[i:i + per_line]) for i in range(0, len(vectors), per_line)]


def control_block(commands: Iterable[str]) -> list[str]:
    """Lines of a ``.control`` ... ``.endc`` block (e.g. ``["pre_osdi /path/m.osdi"]``)."""
    return [".control", *commands, ".endc"]


def _chunked(items: Sequence[str], sep: str, per_line: int) -> str:
    chunks = [sep.join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return (sep.strip() + "\n+ ").join(chunks)


def index_pwl(index: str, values: Sequence[float], per_line: int = 6) -> str:
    """``pwl(<index>, 0, v0, 1, v1, ...)``: maps an integer-valued sweep (an index source
    swept over 0, 1, 2, ...) to exact table values. A single value gets two points, so the
    table is valid for ngspice. Long tables continue on ``+`` lines, ``per_line`` points each.
    """
    pts = [f"{n},{fmt(v)}" for n, v in enumerate(values)]
    if len(pts) == 1:
        pts.append(f"1,{fmt(values[0])}")
    return f"pwl({index}," + _chunked(pts, ",", per_line) + ")"


def time_pwl(times: Sequence[float], values: Sequence[float], per_line: int = 6) -> str:
    """``PWL(t0 v0 t1 v1 ...)`` of an independent source (s, V or A), ``per_line`` corners per
    line. The times must increase (ngspice rejects a PWL that goes back in time)."""
    pts = [f"{fmt(t)} {fmt(v)}" for t, v in zip(times, values)]
    return "PWL(" + _chunked(pts, " ", per_line) + ")"


def insert_before(netlist: str, lines: Sequence[str], marker: str) -> str:
    """Insert ``lines`` before the last line of ``netlist`` that starts with ``marker``
    (e.g. ``.dc``); at the ``.end`` line when there is none."""
    text_lines = netlist.splitlines()
    at = None
    for k in range(len(text_lines) - 1, -1, -1):
        if text_lines[k].lstrip().lower().startswith(marker.lower()):
            at = k
            break
    if at is None:
        at = next((k for k in range(len(text_lines) - 1, -1, -1)
                   if text_lines[k].strip().lower() == ".end"), len(text_lines))
    out = text_lines[:at] + list(lines) + text_lines[at:]
    return "\n".join(out) + ("\n" if netlist.endswith("\n") else "")


__all__ = ["fmt", "options_line", "element", "save_lines", "control_block", "index_pwl",
           "time_pwl", "insert_before"]
