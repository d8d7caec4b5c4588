"""Time and peak memory of a whole fit of a big DC-sweep file: load, fit, save.

Writes the long-format sweep file of ``bench_loader.py`` (``device, V (V), I (A)``, 50
devices, 30 mV steps, a common 200 µA compliance) with ``--rows`` rows, then runs what
``pyspice-rram fit DIR -o OUT/card.json`` runs: :func:`pyspice_rram.calibration.load_dataset`,
:func:`pyspice_rram.calibration.fit` (the default families for sweeps; above
``FIT_MAX_POINTS`` observations on a subset of whole sweeps of every device, the verdict on
all points) and :meth:`FitResult.save` (card, quality.json, .lib, .va, report with figures).
Prints the time of each stage and the peak resident set size (``resource.getrusage``)::

    python benchmarks/bench_fit_big.py --rows 1000000
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's package
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_loader import write_big_sweeps  # noqa: E402


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the sweep file")
    ap.add_argument("--dir", help="directory for the data and outputs (default: temporary)")
    ap.add_argument("--no-report", action="store_true", help="skip the report and figures")
    args = ap.parse_args(argv)
    from pyspice_rram.calibration import fit, load_dataset

    d = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_fit_big_"))
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "sweeps.csv").exists():
        write_big_sweeps(d, args.rows)
    rss0 = _rss_mib()
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(d)
    t1 = time.perf_counter()
    result = fit(ds)
    t2 = time.perf_counter()
    paths = result.save(d / "out", force=True, report=not args.no_report)
    t3 = time.perf_counter()
    sub, q = result.fit_subset, result.quality
    print(f"{ds.n_points} rows ({(d / 'sweeps.csv').stat().st_size / 1e6:.0f} MB), "
          f"{len(ds.sweeps)} sweeps, {len(caught)} warning line(s)")
    print(f"load {t1 - t0:.1f} s, fit {t2 - t1:.1f} s (on {sub['n_fit']} of {sub['n_total']} "
          f"points; family {result.card.family}), save {t3 - t2:.1f} s "
          f"({'report included' if 'report' in paths else 'no report'}); "
          f"total {t3 - t0:.1f} s")
    print(f"verdict {q['verdict']}: iv_r2_log_median {q.get('iv_r2_log_median', float('nan')):.4f}, "
          f"iv_r2_median {q.get('iv_r2_median', float('nan')):.4f} over "
          f"{len(q.get('iv_r2_per_branch', []))} branches")
    print(f"peak RSS {_rss_mib():.0f} MiB (before loading {rss0:.0f} MiB); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
