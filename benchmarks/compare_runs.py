"""Compare two outputs of the main job (``pyspice-rram run -o DIR``) number by number.

Usage::

    python benchmarks/compare_runs.py OLD_DIR NEW_DIR

Walks ``summary.json`` of both (timings -- keys ``seconds`` and ``*_s`` -- and output paths
skipped) and every numeric data set of every HDF5 file under both directories (``wall_s``
skipped), and prints each difference; exit status 1 when a number differs. Used to show that a
refactoring leaves the main job's results bit-identical for the same seed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import numpy as np


def _walk(a, b, path, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k == "seconds" or k.endswith("_s") or k == "paths":
                continue
            if k not in a or k not in b:
                out.append(f"only in {'old' if k in a else 'new'}: {path}/{k}")
            else:
                _walk(a[k], b[k], f"{path}/{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (u, v) in enumerate(zip(a, b)):
            _walk(u, v, f"{path}[{i}]", out)
    elif a != b and not (isinstance(a, str) and isinstance(b, str) and "/" in a):
        out.append(f"differs: {path}: {str(a)[:60]} | {str(b)[:60]}")


def compare(old: Path, new: Path) -> tuple[list[str], list[str], int]:
    """(number differences, layout notes, data sets compared) between two run directories."""
    diffs: list[str] = []
    notes: list[str] = []
    _walk(json.loads((old / "summary.json").read_text()),
          json.loads((new / "summary.json").read_text()), "summary", notes)
    diffs += [n for n in notes if n.startswith("differs")]
    notes = [n for n in notes if not n.startswith("differs")]
    n = 0
    for f in sorted(old.rglob("*.h5")):
        g = new / f.relative_to(old)
        if not g.exists():
            notes.append(f"missing in new: {g}")
            continue
        with h5py.File(f, "r") as A, h5py.File(g, "r") as B:
            names: list[str] = []
            A.visititems(lambda name, obj: names.append(name)
                         if isinstance(obj, h5py.Dataset) else None)
            for name in names:
                if name.endswith("wall_s"):
                    continue
                if name not in B:
                    notes.append(f"layout: {f.name}:{name} only in old")
                    continue
                a, b = A[name][()], B[name][()]
                if isinstance(a, np.ndarray) and a.dtype.kind in "fiub":
                    n += 1
                    if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
                        diffs.append(f"differs: {f.relative_to(old)}:{name}")
    return diffs, notes, n


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    diffs, notes, n = compare(Path(argv[0]), Path(argv[1]))
    for line in notes + diffs:
        print(line)
    print(f"{n} numeric HDF5 data sets and summary.json compared: {len(diffs)} differ")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
