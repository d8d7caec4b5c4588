"""A small SYNTHETIC data set of a rectifying interface cell, for the family tests.

Three areas, DC sweeps 0 -> +2 -> 0 -> -2 -> 0 V under a 300 µA compliance, and pulse trains
whose depression takes the conductance down about three decades: the kind of device the
symmetric sinh read with one linear state cannot describe. Under forward bias most of the
voltage drops on the series resistance once the cell conducts, so potentiation needs long
(1 ms) pulses and limits itself; depression (reverse, little current) is fast. Generated from a
``schottky/soft_bounds/log`` card with series resistance through the calibration program
itself (same loaders, same step semantics), with cycle-to-cycle noise and 2 % read noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyspice_rram.calibration.io import load_dataset
from pyspice_rram.calibration.program import build_program, predict, simulate_states
from pyspice_rram.device.card import ModelCard, PulseScheme

TRUTH = ModelCard(read_model="schottky", dynamics="soft_bounds", g_map="log",
                  g_min_density=2e5, g_max_density=2e8, n_f=3.0, n_r=25.0, r_series=4e3,
                  v_p=0.3, v0_p=0.1, v_d=1.0, v0_d=0.1, gamma_p=1.0, gamma_d=1.0,
                  c2c_sigma=0.1, d2d_g_sigma=0.0, d2d_v_sigma=0.0,
                  scheme=PulseScheme(v_set=2.0, t_set=1e-3, v_reset=-2.0, t_reset=10e-6,
                                     v_read=0.2), name="rectifying-truth")
DIAMETERS_NM = (100.0, 300.0, 1000.0)
COMPLIANCE = 300e-6

RECIPE = """name = "rectifying-synthetic"
synthetic = true
read_voltage = 0.2
[noise]
sweep_rel = 0.02
sweep_floor = 1e-12
pulse_rel = 0.02
pulse_floor = 1e-12
[scheme]
v_set = 2.0
t_set = 1e-03
v_reset = -2.0
t_reset = 1e-05
v_read = 0.2
[[sweeps]]
file = "iv.csv"
compliance = 3e-4
dwell = 1e-3
initial_state = 0.5
[[pulses]]
file = "pulses.csv"
initial_state = 1.0
{fit}
"""


def _sweep_voltages(vmax: float = 2.0, step: float = 0.03) -> np.ndarray:
    up = np.arange(0.0, vmax + 1e-9, step)
    return np.r_[up, up[::-1][1:], -up[1:], -up[::-1][1:]]


def write_rectifying_dataset(directory: Path, fit: str = "", seed: int = 3) -> Path:
    """Write the data set (``recipe.toml``, ``iv.csv``, ``pulses.csv``) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "recipe.toml").write_text(RECIPE.format(fit=fit))
    v = _sweep_voltages()
    rows_iv, rows_p = [], []
    for d in DIAMETERS_NM:
        dev = f"d{int(d)}"
        for c in (1, 2):
            rows_iv += [(dev, d, c, vv) for vv in v]
        for c in (1, 2, 3):  # 40 depression (10 µs) then 40 potentiation (1 ms) pulses
            for k in range(81):
                vp = 0.0 if k == 0 else (-2.0 if k <= 40 else 2.0)
                rows_p.append((dev, d, c, k, vp, 1e-3 if vp > 0 else 1e-5))

    def write(iv_values, g_values):
        with open(directory / "iv.csv", "w") as fh:
            fh.write("device,diameter (nm),cycle,V (V),I (A)\n")
            for (dev, d, c, vv), i in zip(rows_iv, iv_values):
                fh.write(f"{dev},{d:g},{c},{vv:.4f},{i:.6e}\n")
        with open(directory / "pulses.csv", "w") as fh:
            fh.write("device,diameter (nm),cycle,pulse,V_pulse (V),t_pulse (s),G (S)\n")
            for (dev, d, c, k, vp, w), g in zip(rows_p, g_values):
                fh.write(f"{dev},{d:g},{c},{k},{vp:g},{w:g},{g:.6e}\n")

    # placeholders with the right signs, then the model's values through the same program
    write([1e-7 * vv + (1e-9 if vv == 0 else 0.0) for *_, vv in rows_iv],
          [1e-6] * len(rows_p))
    ds = load_dataset(directory)
    prog = build_program(ds)
    rng = np.random.default_rng(seed)
    x = simulate_states(prog, TRUTH, c2c=True, rng=rng)
    y = predict(prog, TRUTH, x)
    y = y * (1.0 + 0.02 * rng.standard_normal(y.size))
    iv = prog.kind == 0
    y[iv] = np.sign(y[iv]) * np.minimum(np.abs(y[iv]), COMPLIANCE)
    y[iv & (np.abs(prog.obs_v) < 1e-9)] = 1e-13  # the SMU reads its offset at 0 V
    # observations come out in data-set order: sweeps (file order) then pulses
    write(y[iv], y[~iv])
    return directory
