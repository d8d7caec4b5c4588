"""The ngspice rawfile reader: binary and ASCII, real and complex, every plot of a file.

One return type, :class:`RawPlot`, for rawfiles and for the vectors the shared library hands
over in memory (:mod:`pyspice_rram.spice.runner`). A binary rawfile holds the doubles
ngspice computed (little-endian ``float64``, ``complex128`` for complex plots); an ASCII
rawfile (``set filetype=ascii`` or the environment variable ``SPICE_ASCIIRAWFILE``) holds
them with 16 significant digits, so the two agree to about 1e-16 relative.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import RawFileError


def _aliases(name: str) -> list[str]:
    """Lower-case keys under which vector ``name`` is found: ngspice writes branch currents
    as ``i(v1)`` in rawfiles and ``v1#branch`` in memory, node voltages as ``v(a)`` / ``a``."""
    key = name.strip().lower()
    out = [key]
    if key.endswith("#branch"):
        out.append(f"i({key[:-7]})")
    elif key.startswith("i(") and key.endswith(")"):
        out.append(f"{key[2:-1]}#branch")
    elif key.startswith("v(") and key.endswith(")") and "," not in key:
        out.append(key[2:-1])
    elif "(" not in key:
        out.append(f"v({key})")
    return out


@dataclass(frozen=True, eq=False)
class RawPlot:
    """One plot (analysis result) of ngspice.

    Attributes
    ----------
    name : str
        The plot name (``'DC transfer characteristic'``, ``'Transient Analysis'``, ...; the
        shared library's ``dc1``, ``tran1`` ... in memory).
    title : str
        The circuit title (first netlist line).
    flags : str
        ``'real'`` or ``'complex'`` (possibly with ngspice's other flags).
    names : tuple of str
        Vector names in file order; the first is the scale (sweep, time, frequency).
    data : ndarray, shape (n_points, n_vectors)
        The values, ``float64`` (``complex128`` for complex plots), SI units.

    Vectors are looked up by name, case-insensitively, with ngspice's two spellings of a
    branch current (``i(v1)`` / ``v1#branch``) and of a node voltage (``v(a)`` / ``a``):
    ``plot["v(in)"]``, ``plot.columns(["i(vs0)", "i(vs1)"])``.
    """

    name: str
    title: str
    flags: str
    names: tuple[str, ...]
    data: np.ndarray

    def __post_init__(self) -> None:
        index: dict[str, int] = {}
        for k, n in enumerate(self.names):
            for alias in _aliases(n):
                index.setdefault(alias, k)
        object.__setattr__(self, "_index", index)

    @property
    def n_points(self) -> int:
        """Number of points (rows of :attr:`data`)."""
        return int(self.data.shape[0])

    @property
    def is_complex(self) -> bool:
        return np.iscomplexobj(self.data)

    @property
    def scale(self) -> np.ndarray:
        """The first vector (sweep values, time in s, frequency in Hz)."""
        return self.data[:, 0].copy()

    def index(self, name: str) -> int:
        """Column of vector ``name``; ``KeyError`` naming the vectors there are."""
        for alias in _aliases(name):
            k = self._index.get(alias)  # type: ignore[attr-defined]
            if k is not None:
                return k
        raise KeyError(f"no vector {name!r} in plot {self.name!r} (vectors: "
                       f"{', '.join(self.names)})")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(a in self._index for a in _aliases(name))  # type: ignore[attr-defined]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[:, self.index(name)].copy()

    def keys(self) -> list[str]:
        """Lower-case vector names in file order."""
        return [n.lower() for n in self.names]

    def columns(self, names: list[str] | tuple[str, ...]) -> np.ndarray:
        """The vectors ``names`` as the columns of one (n_points, len(names)) array."""
        return self.data[:, [self.index(n) for n in names]].copy()

    def to_dict(self) -> dict[str, np.ndarray]:
        """``{lower-case vector name: array}`` plus ``'plotname'``: the plot name."""
        out: dict = {n: self.data[:, k].copy() for k, n in enumerate(self.keys())}
        out["plotname"] = self.name
        return out


def _line(blob: bytes, pos: int, path: str) -> tuple[str, int]:
    end = blob.find(b"\n", pos)
    if end < 0:
        end = len(blob)
    if pos >= len(blob):
        raise RawFileError(f"{path}: rawfile ends inside a header")
    return blob[pos:end].decode("latin-1").rstrip("\r"), end + 1


def parse_raw(blob: bytes, path: str = "<rawfile>") -> list[RawPlot]:
    """Plots of an ngspice rawfile given as bytes (see :func:`read_raw`)."""
    plots: list[RawPlot] = []
    pos = 0
    while pos < len(blob):
        if blob[pos:pos + 1] in (b"\n", b"\r", b" ", b"\t"):
            pos += 1
            continue
        header: dict[str, str] = {}
        names: list[str] = []
        kind = None
        while kind is None:
            line, pos = _line(blob, pos, path)
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "variables":
                try:
                    n_vars = int(header["no. variables"])
                except (KeyError, ValueError):
                    raise RawFileError(f"{path}: 'Variables:' before 'No. Variables:'") from None
                for _ in range(n_vars):
                    line, pos = _line(blob, pos, path)
                    parts = line.split()
                    if len(parts) < 2:
                        raise RawFileError(f"{path}: bad variable line {line!r}")
                    names.append(parts[1])
            elif key in ("binary", "values"):
                kind = key
            elif key:
                header[key] = value.strip()
        try:
            n_vars, n_points = int(header["no. variables"]), int(header["no. points"])
        except (KeyError, ValueError):
            raise RawFileError(f"{path}: not an ngspice rawfile (no 'No. Variables' / "
                               "'No. Points' header)") from None
        if len(names) != n_vars:
            raise RawFileError(f"{path}: {len(names)} variable names for {n_vars} variables")
        is_complex = "complex" in header.get("flags", "").lower()
        count = n_vars * n_points
        if kind == "binary":
            dtype = np.dtype("<c16") if is_complex else np.dtype("<f8")
            if len(blob) - pos < count * dtype.itemsize:
                raise RawFileError(f"{path}: binary data cut short ({len(blob) - pos} bytes for "
                                   f"{n_points} points x {n_vars} vectors)")
            arr = np.frombuffer(blob, dtype=dtype, count=count, offset=pos).astype(
                np.complex128 if is_complex else np.float64)
            pos += count * dtype.itemsize
        else:
            # ASCII: "<index>\t<v0>\n\t<v1>\n..." per point; complex values are "re,im"
            vals: list = []
            want = n_points * (n_vars + 1)
            toks: list[str] = []
            while len(toks) < want and pos < len(blob):
                line, pos = _line(blob, pos, path)
                toks.extend(line.split())
            if len(toks) < want:
                raise RawFileError(f"{path}: ASCII data cut short ({len(toks)} of {want} "
                                   "numbers)")
            for p in range(n_points):
                row = toks[p * (n_vars + 1) + 1:(p + 1) * (n_vars + 1)]
                if is_complex:
                    vals.extend(complex(*map(float, t.split(","))) for t in row)
                else:
                    vals.extend(float(t) for t in row)
            arr = np.asarray(vals, dtype=np.complex128 if is_complex else np.float64)
        plots.append(RawPlot(name=header.get("plotname", ""), title=header.get("title", ""),
                             flags=header.get("flags", ""), names=tuple(names),
                             data=arr.reshape(n_points, n_vars)))
    if not plots:
        raise RawFileError(f"{path}: empty rawfile")
    return plots


def read_raw(path: str | Path) -> list[RawPlot]:
    """Read every plot of an ngspice rawfile (binary or ASCII, real or complex).

    Raises
    ------
    RawFileError
        Not an ngspice rawfile, or cut short (the message names the file).
    """
    return parse_raw(Path(path).read_bytes(), str(path))


__all__ = ["RawPlot", "read_raw", "parse_raw"]
