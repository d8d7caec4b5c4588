"""Load time and peak memory of a big DC-sweep CSV through the calibration loader.

Writes a long-format sweep file (``device, V (V), I (A)``; 30 mV steps, 0 -> +1.5 V -> 0 ->
-1.5 V -> 0 per cycle, a common current compliance so that points are clipped) with
``--rows`` rows, then times :func:`pyspice_rram.calibration.io.load_dataset` on it and
reports the peak resident set size of the process (``resource.getrusage``)::

    python benchmarks/bench_loader.py --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's package


def write_big_sweeps(directory: Path, n_rows: int, n_devices: int = 50, seed: int = 0) -> Path:
    """Write ``sweeps.csv`` (about ``n_rows`` rows) and ``recipe.toml`` into ``directory``;
    returns the CSV path."""
    rng = np.random.default_rng(seed)
    up = np.round(np.arange(0, 1.5 + 1e-9, 0.03), 3)
    cyc = np.r_[up, up[-2::-1], -up[1:], -up[-2:0:-1]]        # one bipolar cycle
    per_dev = max(len(cyc), n_rows // n_devices)
    v = np.resize(cyc, per_dev)
    devs, vs, cur = [], [], []
    for d in range(n_devices):
        i = 3e-5 * np.sinh(2.0 * v) * (1 + 0.02 * rng.standard_normal(v.size))
        i = np.clip(i, -2e-4, 2e-4)                               # compliance 200 uA
        devs.append(np.full(v.size, f"D{d:03d}"))
        vs.append(v)
        cur.append(i)
    dev, vv, ii = np.concatenate(devs), np.concatenate(vs), np.concatenate(cur)
    path = directory / "sweeps.csv"
    with open(path, "w") as f:
        f.write("device,V (V),I (A)\n")
        f.writelines(f"{a},{b:.3f},{c:.6e}\n" for a, b, c in zip(dev.tolist(), vv.tolist(),
                                                                 ii.tolist()))
    (directory / "recipe.toml").write_text(
        'name = "big"\n[[sweeps]]\nfile = "sweeps.csv"\narea = "1 um^2"\ndwell = "1 ms"\n')
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the sweep file")
    ap.add_argument("--dir", help="directory for the file (default: a temporary one)")
    args = ap.parse_args(argv)
    from pyspice_rram.calibration.io import load_dataset

    d = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_loader_"))
    d.mkdir(parents=True, exist_ok=True)
    path = write_big_sweeps(d, args.rows)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(d)
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = sum(s.voltage.size for s in ds.sweeps)
    clipped = [w.message for w in caught if type(w.message).__name__ == "ClippedPointsWarning"]
    print(f"{n} rows ({path.stat().st_size / 1e6:.0f} MB) in {len(ds.sweeps)} sweeps loaded "
          f"in {dt:.1f} s; peak RSS {rss:.0f} MiB (before loading {rss0:.0f} MiB); "
          f"{len(caught)} warnings ({sum(m.n_points for m in clipped)} compliance-clipped "
          f"points in {len(clipped)} sweeps); load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
