"""Figures and agreement numbers of the device-model page (docs/device-model.md).

Run from the repository root::

    .venv/bin/python docs/figures/device/make_figures.py

Writes ``iv_curves.png``, ``pulse_response.png``, ``transient.png`` next to this file and
prints the measured agreement between the three forms of the model (also written to
``agreement.json``). Needs ngspice; the OSDI row needs an OpenVAF compiler (optional).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pyspice_rram.device import crosscheck, veriloga  # noqa: E402
from pyspice_rram.device.card import ModelCard, area_from_diameter  # noqa: E402
from pyspice_rram.device.model import cell_current, state_rate  # noqa: E402
from pyspice_rram.device.pulses import (potentiation_depression_train,  # noqa: E402
                                        simulate_pulse_train)

HERE = Path(__file__).resolve().parent
CARD = ModelCard.reference()
DIAMETERS = (30e-9, 100e-9, 300e-9, 1e-6)
AREAS = [area_from_diameter(d) for d in DIAMETERS]


def rel_err(a, b, floor=0.0):
    a, b = np.asarray(a), np.asarray(b)
    den = np.maximum(np.abs(b), floor)
    err = np.where(a == b, 0.0, np.abs(a - b) / np.where(den > 0, den, 1.0))
    return float(err.max())


def agreement() -> dict:
    out = {}
    v, x = np.meshgrid(np.linspace(-3, 3, 601),
                       np.unique(np.r_[np.linspace(0, 1, 101), 1e-4, 5e-4, 0.9995, 0.9999,
                                       -0.02, 1.02]))
    out["verilogae_current"] = max(rel_err(veriloga.eval_current(CARD, v, x, a),
                                           cell_current(v, x, a, CARD)) for a in AREAS)
    out["verilogae_rate"] = rel_err(veriloga.eval_state_rate(CARD, v, x),
                                    state_rate(v, x, CARD), floor=1e-12)
    out["grid_points"] = int(v.size)
    g = crosscheck.ngspice_dc_grid(CARD, np.linspace(-3, 3, 241),
                                   np.unique(np.r_[np.linspace(0, 1, 51), 1e-4, 0.9999]), AREAS)
    out["ngspice_dc_current"] = max(rel_err(g.current[k], cell_current(g.v, g.x, a, CARD))
                                    for k, a in enumerate(AREAS))
    out["ngspice_dc_rate"] = rel_err(g.rate, state_rate(g.v, g.x, CARD), floor=1e-12)
    out["ngspice_dc_points"] = int(g.v.size)
    s = CARD.scheme
    vp = np.r_[np.full(50, s.v_set), s.v_reset]
    tw = np.r_[np.full(50, s.t_set), s.t_reset]
    tr = crosscheck.ngspice_pulse_train(CARD, vp, tw, t_edge=1e-9)
    rect = simulate_pulse_train(CARD, vp, tw, c2c=False).x[0]
    teff = [crosscheck.equivalent_width(CARD, a, t, 1e-9) for a, t in zip(vp, tw)]
    exact = simulate_pulse_train(CARD, vp, teff, c2c=False).x[0]
    out["tran_vs_rect_max_dx"] = float(np.abs(tr.x_after[:51] - rect[:51]).max())
    out["tran_vs_same_trapezoid_max_dx"] = float(np.abs(tr.x_after - exact).max())
    out["tran_x_after_reset"] = float(tr.x_after[-1])
    if veriloga.find_openvaf() is not None:
        osdi = veriloga.compile_osdi(CARD)
        vo = crosscheck.ngspice_pulse_train(CARD, vp, tw, t_edge=1e-9, osdi=osdi)
        out["osdi_tran_vs_same_trapezoid_max_dx"] = float(np.abs(vo.x_after - exact).max())
        out["osdi_tran_vs_subckt_max_dx"] = float(np.abs(vo.x_after - tr.x_after).max())
        vv, ii = crosscheck.osdi_dc_currents(CARD, osdi, np.linspace(-3, 3, 241),
                                             np.linspace(0, 1, 11), AREAS[2])
        out["osdi_dc_current"] = rel_err(ii, cell_current(vv[None], np.linspace(0, 1, 11)[:, None],
                                                          AREAS[2], CARD))
    return out


def fig_iv() -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    v = np.linspace(-3, 3, 601)
    vs = np.linspace(-3, 3, 25)
    g = crosscheck.ngspice_dc_grid(CARD, vs, [0.0, 0.25, 0.5, 0.75, 1.0], AREAS[3:])
    for k, xs in enumerate([0.0, 0.25, 0.5, 0.75, 1.0]):
        line, = ax1.semilogy(v, np.abs(cell_current(v, xs, AREAS[3], CARD)), label=f"x = {xs}")
        ax1.semilogy(vs, np.abs(veriloga.eval_current(CARD, vs, xs, AREAS[3])), "o", ms=4,
                     mfc="none", color=line.get_color())
        sel = np.isclose(g.x, xs)
        ax1.semilogy(g.v[sel], np.abs(g.current[0][sel]), "x", ms=4, color=line.get_color())
    ax1.plot([], [], "k-", label="NumPy")
    ax1.plot([], [], "ko", mfc="none", label="Verilog-A (verilogae)")
    ax1.plot([], [], "kx", label="ngspice DC")
    ax1.set(xlabel="V (V)", ylabel="|I| (A)", title="1 µm cell: read I-V at several states")
    ax1.legend(fontsize=7)
    styles = ["-", "--", "-.", ":"]
    for d, a, ls in zip(DIAMETERS, AREAS, styles):
        for xs, col in ((0.0, "C0"), (1.0, "C4")):
            ax2.semilogy(v, np.abs(cell_current(v, xs, a, CARD)) / a, ls, color=col, lw=1.2,
                         label=f"d = {d * 1e9:.0f} nm" if xs == 0.0 else None)
    ax2.text(0.5, 0.05, "lower: x = 0, upper: x = 1", transform=ax2.transAxes, ha="center",
             fontsize=8)
    ax2.set(xlabel="V (V)", ylabel="|J| = |I| / A (A/m²)",
            title="uniform current density: 30 nm - 1 µm coincide")
    ax2.legend(fontsize=7, loc="upper center")
    fig.tight_layout()
    fig.savefig(HERE / "iv_curves.png", dpi=110)
    plt.close(fig)


def fig_pulses() -> None:
    s = CARD.scheme
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    for beta in (-1.0, 0.0, 0.5, 2.0, 4.0):
        card = CARD.replace(beta_p=beta)
        n_states = card.n_states()
        m = int(1.1 * n_states)
        res = simulate_pulse_train(card, np.full(m, s.v_set), s.t_set, c2c=False)
        n = np.arange(m + 1)
        line, = ax.plot(n / n_states, res.x[0], ".", ms=3)
        nn = np.linspace(0, 1, 100)
        ana = nn if beta == 0 else -np.expm1(-beta * nn) / -np.expm1(-beta)
        ax.plot(nn, ana, "-", lw=0.8, color=line.get_color(), label=f"β = {beta:g}")
    ax.set(xlabel="n / N", ylabel="x", title="pulse response: dots NumPy, lines formula")
    ax.legend(fontsize=7)
    ax = axes[1]
    v, t = potentiation_depression_train(100, 100, 2, 1.7, s.t_set, -1.9, s.t_set)
    for d, a in zip(DIAMETERS, AREAS):
        res = simulate_pulse_train(CARD, v, t, area=a, c2c=False)
        ax.semilogy(res.g[0] * 1e6, label=f"d = {d * 1e9:.0f} nm")
    ax.set(xlabel="pulse #", ylabel="G at V_read (µS)",
           title="2 x (100 set +1.7 V / 100 reset -1.9 V), 10 µs")
    ax.legend(fontsize=7)
    ax = axes[2]
    v, t = potentiation_depression_train(50, 1, 30, s.v_set, s.t_set, s.v_reset, s.t_reset)
    res = simulate_pulse_train(CARD, v, t, rng=3)
    ax.plot(res.g[0, :256] * 1e6, ".-", lw=0.6, ms=2)
    ax.set(xlabel="pulse #", ylabel="G (µS)",
           title=f"50 set + 1 strong reset (5 of 30 cycles), δ/μ = {CARD.c2c_sigma}")
    fig.tight_layout()
    fig.savefig(HERE / "pulse_response.png", dpi=110)
    plt.close(fig)


def fig_transient() -> None:
    s = CARD.scheme
    vp = np.r_[np.full(50, s.v_set), s.v_reset]
    tw = np.r_[np.full(50, s.t_set), s.t_reset]
    tr = crosscheck.ngspice_pulse_train(CARD, vp, tw, t_edge=1e-9)
    rect = simulate_pulse_train(CARD, vp, tw, c2c=False).x[0]
    teff = [crosscheck.equivalent_width(CARD, a, t, 1e-9) for a, t in zip(vp, tw)]
    exact = simulate_pulse_train(CARD, vp, teff, c2c=False).x[0]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(tr.time * 1e6, tr.x, lw=0.8, label="ngspice transient (motiox subckt)")
    t_after = np.r_[0.0, tr.pulse_start + 2e-9 + tw] * 1e6
    ax1.plot(t_after, rect, "o", ms=3, mfc="none", label="NumPy pulse simulator")
    ax1.set(xlabel="t (µs)", ylabel="x", title="50 pulses +1.8 V / 10 µs, then -3 V reset")
    ax1.legend(fontsize=8)
    n = np.arange(vp.size + 1)
    ax2.semilogy(n, np.abs(tr.x_after - rect) + 1e-16, ".-", label="vs rectangular pulses")
    ax2.semilogy(n, np.abs(tr.x_after - exact) + 1e-16, ".-",
                 label="vs the same trapezoids (1 ns edges)")
    ax2.axhline(1e-3, color="k", ls=":", lw=1, label="acceptance 1e-3")
    ax2.set(xlabel="pulse #", ylabel="|x_ngspice - x_NumPy|", title="transient vs NumPy")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "transient.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    fig_iv()
    fig_pulses()
    fig_transient()
    numbers = agreement()
    (HERE / "agreement.json").write_text(json.dumps(numbers, indent=2) + "\n")
    for k, val in numbers.items():
        print(f"{k:40s} {val:.3g}")
