"""Generator of the SYNTHETIC reference data set ``calibration/motiox-reference/``.

No raw measurements of Choi et al. (2021) are public, so the default data set is simulated
from :meth:`ModelCard.reference` with the model's own cycle-to-cycle and device-to-device
randomness plus measurement noise, in the layouts a measurement lab would export. It is
seeded and reproducible: ``pyspice-rram make-reference`` (or :func:`make_reference`)
rewrites the same bytes.

What is simulated (per device, drawn with :meth:`DevicePopulation.sample`: conductance
scale ``s = exp(N(0, d2d_g_sigma))``, ``V_p`` and ``V_d`` shifted by ``N(0, d2d_v_sigma)``):

* ``dc_sweeps.csv``: DC sweeps 0 -> +3 V -> 0 then 0 -> -3 V -> 0 in 30 mV steps (101 + 100
  points per sweep), each step held ``dwell`` = 1 ms; state advanced exactly per step with
  cycle-to-cycle noise on every step; current compliance 2 mA (the largest cells clip a few
  points near 3 V; the cell then sees only the voltage that drives 2 mA).
* ``pulses_cycling.csv``: 5 cycles of 100 potentiation (+1.7 V, 10 µs) + 100 depression
  (-1.9 V, 10 µs) pulses, read at 0.2 V after every pulse (read current and voltage stored).
* ``pulses_optimised.csv``: 30 cycles of 50 potentiation pulses (+1.8 V, 10 µs) + 1 strong
  reset (-3 V, 10 µs), the card's nominal scheme, read after every pulse.
* ``survey.tsv``: a device-to-device survey (many cells per area): reset (-3 V) then 100
  potentiation pulses at the nominal scheme, conductance read after the reset, after 25
  and after 100 pulses (conductance in µS, protocol in the recipe).

Measurement noise: sweep current ``I (1 + e_rel N) + e_abs N``; read current likewise with
its own ``e_rel``, ``e_abs``; clipped points read the compliance value with 1e-4 noise.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..device.card import ModelCard, area_from_diameter
from ..device.model import cell_current
from ..device.pulses import DevicePopulation, potentiation_depression_train, simulate_pulse_train

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "data" / "motiox-reference"   # package data


@dataclass
class ReferenceConfig:
    """Everything that defines the synthetic data set (SI units, diameters in nm)."""

    diameters_nm: tuple[float, ...] = (30.0, 80.0, 200.0, 500.0, 1000.0)
    devices_per_area: int = 4
    sweep_vmax: float = 3.0
    sweep_step: float = 0.03
    dwell: float = 1e-3
    compliance: float = 2e-3
    cycling_cycles: int = 5
    cycling_np: int = 100
    cycling_nd: int = 100
    cycling_v_set: float = 1.7
    cycling_v_reset: float = -1.9
    cycling_width: float = 10e-6
    optimised_cycles: int = 30
    optimised_np: int = 50
    optimised_devices_per_area: int = 2
    survey_devices_per_area: int = 400
    survey_reads: tuple[int, ...] = (1, 26, 101)
    survey_np: int = 100
    read_voltage: float = 0.2
    sweep_noise_rel: float = 0.005
    sweep_noise_abs: float = 1e-12
    read_noise_rel: float = 0.002
    read_noise_abs: float = 2e-12
    seed: int = 20210701
    card: dict = field(default_factory=lambda: ModelCard.reference().to_dict())


def _sweep_voltages(vmax: float, step: float) -> np.ndarray:
    n = int(round(vmax / step))
    up = np.arange(n + 1) * step
    return np.r_[up, up[-2::-1]]


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _devices(diameters_nm, per_area: int, name: str) -> tuple[list[str], list[float], np.ndarray]:
    """Names (``name.format(d=diameter in nm, j=1, 2, ...)``), diameters (nm) and areas (m²)
    of ``per_area`` devices of every diameter."""
    names, diam, areas = [], [], []
    for d in diameters_nm:
        for j in range(per_area):
            names.append(name.format(d=int(d), j=j + 1))
            diam.append(d)
            areas.append(area_from_diameter(d * 1e-9))
    return names, diam, np.array(areas)


def make_reference(outdir: str | Path = DEFAULT_DIR, config: ReferenceConfig | None = None,
                   *, readme: bool = True) -> dict[str, Path]:
    """Write the synthetic data set (data files, ``recipe.toml``, ``README.md``) to ``outdir``.

    Returns the written paths by name. Deterministic for a given config (seeded).
    """
    cfg = config or ReferenceConfig()
    card = ModelCard.from_dict(dict(cfg.card))
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    # ---- device population (shared by the sweep, cycling and optimised files)
    names, diam, areas = _devices(cfg.diameters_nm, cfg.devices_per_area, "D{d}-{j}")
    pop = DevicePopulation.sample(card, areas, areas.size, rng)
    paths: dict[str, Path] = {}

    # ---- DC sweeps
    from .program import Program, simulate_states

    vs = _sweep_voltages(cfg.sweep_vmax, cfg.sweep_step)
    vseq = np.r_[vs, -vs]
    n = areas.size
    K = vseq.size
    prog = Program(v=np.tile(vseq, (n, 1)), dt=np.full((n, K), cfg.dwell), length=np.full(n, K),
                   area=areas, x0=np.zeros(n), compliance=np.full(n, cfg.compliance),
                   seq_device=np.arange(n), obs_seq=np.zeros(0, int), obs_step=np.zeros(0, int),
                   obs_v=np.zeros(0), obs_div=np.zeros(0), y=np.zeros(0), sigma=np.zeros(0),
                   valid=np.zeros(0, bool), kind=np.zeros(0, int), obs_group=np.zeros(0, int),
                   groups=[], group_kind=[], devices=names, device_area=areas)
    ref_card = card  # v_p/v_d per device passed as shifts
    x = simulate_states(prog, ref_card, g_scale=pop.g_scale, dv_p=pop.v_p - card.v_p,
                        dv_d=pop.v_d - card.v_d, c2c=True, rng=rng)[:, 1:]
    # the cell voltage under compliance (what drives the current)
    g_dev = pop.g_scale[:, None] * cell_current(vseq[None, :], x, areas[:, None], card)
    clipped = np.abs(g_dev) >= cfg.compliance
    i_true = np.where(clipped, np.sign(vseq) * cfg.compliance, g_dev)
    i_meas = np.where(
        clipped, i_true * (1 + 1e-4 * rng.standard_normal(i_true.shape)),
        i_true * (1 + cfg.sweep_noise_rel * rng.standard_normal(i_true.shape))
        + cfg.sweep_noise_abs * rng.standard_normal(i_true.shape))
    nsw = vs.size
    lines = ["device,diameter (nm),sweep,time (s),voltage (V),current (A)"]
    for i in range(n):
        for k in range(K):
            sweep = "pos" if k < nsw else "neg"
            t = cfg.dwell * ((k % nsw) + 1)
            lines.append(f"{names[i]},{diam[i]:g},{sweep},{_fmt(t)},{vseq[k]:.2f},{_fmt(i_meas[i, k])}")
    paths["dc_sweeps"] = out / "dc_sweeps.csv"
    paths["dc_sweeps"].write_text("\n".join(lines) + "\n")

    def read_noise(g: np.ndarray) -> np.ndarray:
        i = g * cfg.read_voltage
        i = i * (1 + cfg.read_noise_rel * rng.standard_normal(i.shape)) \
            + cfg.read_noise_abs * rng.standard_normal(i.shape)
        return i

    # ---- cycling: 5 x (100 P + 100 D), milder scheme
    v_c, t_c = potentiation_depression_train(cfg.cycling_np, cfg.cycling_nd, cfg.cycling_cycles,
                                             cfg.cycling_v_set, cfg.cycling_width,
                                             cfg.cycling_v_reset, cfg.cycling_width)
    res = simulate_pulse_train(card, v_c, t_c, devices=pop, c2c=True, rng=rng,
                               v_read=cfg.read_voltage)
    i_read = read_noise(res.g[:, 1:])
    per = cfg.cycling_np + cfg.cycling_nd
    lines = ["device,diameter (nm),cycle,pulse,V_pulse (V),width (s),I_read (A),V_read (V)"]
    for i in range(n):
        for k in range(v_c.size):
            lines.append(f"{names[i]},{diam[i]:g},{k // per + 1},{k % per + 1},{v_c[k]:g},"
                         f"{t_c[k]:g},{_fmt(i_read[i, k])},{cfg.read_voltage:g}")
    paths["pulses_cycling"] = out / "pulses_cycling.csv"
    paths["pulses_cycling"].write_text("\n".join(lines) + "\n")

    # ---- optimised: 30 x (50 P + 1 strong reset), nominal scheme, subset of devices
    sc = card.scheme
    v_o, t_o = potentiation_depression_train(cfg.optimised_np, 1, cfg.optimised_cycles,
                                             sc.v_set, sc.t_set, sc.v_reset, sc.t_reset)
    sel = np.array([i for i in range(n) if int(names[i].rsplit("-", 1)[1])
                    <= cfg.optimised_devices_per_area])
    sub = DevicePopulation(pop.area[sel], pop.g_scale[sel], pop.v_p[sel], pop.v_d[sel])
    res = simulate_pulse_train(card, v_o, t_o, devices=sub, c2c=True, rng=rng,
                               v_read=cfg.read_voltage)
    i_read = read_noise(res.g[:, 1:])
    per = cfg.optimised_np + 1
    lines = ["device,diameter (nm),cycle,pulse,V_pulse (V),width (s),I_read (A),V_read (V)"]
    for r, i in enumerate(sel):
        for k in range(v_o.size):
            lines.append(f"{names[i]},{diam[i]:g},{k // per + 1},{k % per + 1},{v_o[k]:g},"
                         f"{t_o[k]:g},{_fmt(i_read[r, k])},{cfg.read_voltage:g}")
    paths["pulses_optimised"] = out / "pulses_optimised.csv"
    paths["pulses_optimised"].write_text("\n".join(lines) + "\n")

    # ---- survey: many devices, reset + 100 P, three reads each
    s_names, s_diam, s_area = _devices(cfg.diameters_nm, cfg.survey_devices_per_area,
                                       "S{d}-{j:03d}")
    spop = DevicePopulation.sample(card, s_area, len(s_area), rng)
    v_s = np.r_[sc.v_reset, np.full(cfg.survey_np, sc.v_set)]
    t_s = np.r_[sc.t_reset, np.full(cfg.survey_np, sc.t_set)]
    x0 = rng.uniform(0, 1, len(s_area))  # unknown history, erased by the reset
    res = simulate_pulse_train(card, v_s, t_s, devices=spop, x0=x0, c2c=True, rng=rng,
                               v_read=cfg.read_voltage)
    reads = np.array(cfg.survey_reads)
    g_meas = read_noise(res.g[:, reads]) / cfg.read_voltage
    lines = ["device\tdiameter_nm\tpulse\tG (uS)"]
    for i in range(len(s_area)):
        for r, p in enumerate(reads):
            lines.append(f"{s_names[i]}\t{s_diam[i]:g}\t{p}\t{_fmt(g_meas[i, r] * 1e6)}")
    paths["survey"] = out / "survey.tsv"
    paths["survey"].write_text("\n".join(lines) + "\n")

    # ---- per-device truth (for checking a fit; the fitter never reads it)
    lines = ["device,diameter (nm),g_scale,v_p (V),v_d (V)"]
    for nm, dd, p in ((names, diam, pop), (s_names, s_diam, spop)):
        for i in range(len(nm)):
            lines.append(f"{nm[i]},{dd[i]:g},{p.g_scale[i]:.8g},{p.v_p[i]:.8g},{p.v_d[i]:.8g}")
    paths["truth"] = out / "truth_devices.csv"
    paths["truth"].write_text("\n".join(lines) + "\n")

    # ---- recipe
    recipe = f'''# Recipe of the SYNTHETIC reference data set (generated by pyspice_rram.calibration.reference).
name = "motiox-reference"
synthetic = true
description = "SYNTHETIC Mo/TiOx data simulated from ModelCard.reference() with noise (see README.md)"
read_voltage = {cfg.read_voltage}

[noise]            # weighting of the residuals: sigma = rel * |y| + floor
sweep_rel = {cfg.sweep_noise_rel}
sweep_floor = {cfg.sweep_noise_abs}
pulse_rel = {cfg.read_noise_rel}
pulse_floor = {cfg.read_noise_abs / cfg.read_voltage}

[scheme]           # nominal programming scheme of the fitted card
v_set = {sc.v_set}
t_set = {sc.t_set}
v_reset = {sc.v_reset}
t_reset = {sc.t_reset}
v_read = {cfg.read_voltage}

[fit]              # the generating family is known here; real data sets list several to compare
families = ["sinh/threshold/linear"]

[[sweeps]]
file = "dc_sweeps.csv"
compliance = {cfg.compliance}
initial_state = 0.0

[[pulses]]
file = "pulses_cycling.csv"
label = "cycling"
initial_state = 0.0

[[pulses]]
file = "pulses_optimised.csv"
label = "optimised"
initial_state = 0.0

[[pulses]]
file = "survey.tsv"
label = "survey"
protocol = [{{v = {sc.v_reset}, width = {sc.t_reset}, n = 1}}, {{v = {sc.v_set}, width = {sc.t_set}, n = {cfg.survey_np}}}]
'''
    paths["recipe"] = out / "recipe.toml"
    paths["recipe"].write_text(recipe)
    cfg_out = asdict(cfg)
    paths["generator"] = out / "generator.json"
    paths["generator"].write_text(json.dumps(cfg_out, indent=1) + "\n")
    if readme:
        paths["readme"] = out / "README.md"
        paths["readme"].write_text(_readme(cfg, card, n, len(s_area)))
    return paths


def _readme(cfg: ReferenceConfig, card: ModelCard, n_dev: int, n_survey: int) -> str:
    rows = "\n".join(f"| `{k}` | {getattr(card, k):.6g} |" for k in (
        "g_min_density", "g_max_density", "v_nl", "v_p", "v0_p", "beta_p", "v_d", "v0_d",
        "beta_d", "eps_bound", "c2c_sigma", "d2d_g_sigma", "d2d_v_sigma"))
    d = ", ".join(f"{x:g}" for x in cfg.diameters_nm)
    return f"""# motiox-reference — a SYNTHETIC data set

**These are not measurements.** No raw data of Choi et al. (2021) are public; every number
in this directory was simulated by `pyspice_rram.calibration.reference.make_reference()`
from `ModelCard.reference()` (the paper-like card) with the model's own randomness and
measurement noise, seed {cfg.seed}. Regenerate it byte for byte with

```bash
.venv/bin/pyspice-rram make-reference calibration/motiox-reference
```

## Generating card (SI units)

| parameter | value |
|---|---|
{rows}

Nominal scheme: +{card.scheme.v_set} V / {card.scheme.t_set * 1e6:g} µs potentiation,
{card.scheme.v_reset} V / {card.scheme.t_reset * 1e6:g} µs strong reset, read at
{cfg.read_voltage} V ({card.n_states():.1f} states per device). The full generator settings
are in `generator.json`.

## Files

| file | layout | content |
|---|---|---|
| `dc_sweeps.csv` | long CSV: `device, diameter (nm), sweep, time (s), voltage (V), current (A)` | {n_dev} devices ({cfg.devices_per_area} per diameter: {d} nm); per device a sweep 0 → +{cfg.sweep_vmax:g} V → 0 then 0 → −{cfg.sweep_vmax:g} V → 0 in {cfg.sweep_step * 1e3:g} mV steps (101 + 100 points), {cfg.dwell * 1e3:g} ms per step, starting at x = 0; compliance {cfg.compliance * 1e3:g} mA |
| `pulses_cycling.csv` | long CSV: `device, diameter (nm), cycle, pulse, V_pulse (V), width (s), I_read (A), V_read (V)` | the same devices: {cfg.cycling_cycles} cycles of {cfg.cycling_np} × (+{cfg.cycling_v_set} V, {cfg.cycling_width * 1e6:g} µs) + {cfg.cycling_nd} × ({cfg.cycling_v_reset} V, {cfg.cycling_width * 1e6:g} µs), read after every pulse, from x = 0 |
| `pulses_optimised.csv` | as above | the first {cfg.optimised_devices_per_area} devices per diameter: {cfg.optimised_cycles} cycles of {cfg.optimised_np} × (+{card.scheme.v_set} V, {card.scheme.t_set * 1e6:g} µs) + 1 × ({card.scheme.v_reset} V, {card.scheme.t_reset * 1e6:g} µs), from x = 0 |
| `survey.tsv` | TSV: `device, diameter_nm, pulse, G (uS)`; pulses given by the recipe's `protocol` | {n_survey} further devices ({cfg.survey_devices_per_area} per diameter), random initial state; 1 reset then {cfg.survey_np} potentiation pulses; conductance read after pulse {', '.join(str(r) for r in cfg.survey_reads)} (pulse index = pulses applied) |
| `recipe.toml` | recipe | how the loaders read the four files |
| `truth_devices.csv` | CSV | the drawn per-device parameters (conductance scale, `V_p`, `V_d`): the ground truth a fit can be checked against; the fitter never reads it |
| `generator.json` | JSON | every generator setting (`ReferenceConfig`) |
| `card.json`, `motiox_fit.lib`, `motiox_fit.va` | outputs | the model card fitted to these data (`pyspice-rram fit`), its ngspice library and Verilog-A source |
| `report/` | outputs | the fit report (`report.md`, PNG figures) |

## How it was made

1. Each device draws a conductance scale `s = exp(N(0, {card.d2d_g_sigma}))` and shifts of
   `V_p`, `V_d` from `N(0, {card.d2d_v_sigma} V)` (`DevicePopulation.sample`).
2. DC sweeps: every 30 mV step holds its voltage for {cfg.dwell * 1e3:g} ms and the state is
   advanced exactly (`pyspice_rram.device.model.advance`), the rate of every step scaled by
   `kappa ~ N(1, {card.c2c_sigma})` (clipped at 0). The current is `s A g(x) V_nl sinh(V/V_nl)`
   at the end of the step. Above the compliance the cell sees only the voltage that drives
   {cfg.compliance * 1e3:g} mA and the instrument reads the compliance value.
3. Pulse trains: `pyspice_rram.device.pulses.simulate_pulse_train` with cycle-to-cycle noise
   on (δ/μ = {card.c2c_sigma}), read conductance at {cfg.read_voltage} V after every pulse.
4. Measurement noise, Gaussian: sweep current relative {cfg.sweep_noise_rel:g} plus
   {cfg.sweep_noise_abs:g} A; read current relative {cfg.read_noise_rel:g} plus
   {cfg.read_noise_abs:g} A; clipped points read the compliance with 1e-4 relative noise.
5. Numbers are written with 6 significant digits.
"""


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - thin wrapper
    import argparse

    p = argparse.ArgumentParser(description="write the synthetic reference data set")
    p.add_argument("outdir", nargs="?", default=str(DEFAULT_DIR))
    a = p.parse_args(argv)
    for k, v in make_reference(a.outdir).items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
