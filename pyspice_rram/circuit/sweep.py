"""VMM error of a mapped layer against tile size and wire resistance, and the figures.

The error of a read is measured on the combined layer output (all tiles, all arrays):

.. math::  \\epsilon = \\frac{\\max_{n,j} |I_{nj} - I^{ideal}_{nj}|}{\\max_{n,j} |I^{ideal}_{nj}|}

with ``I_ideal`` the same tiles without wire/driver/sense resistance (the cell I-V is kept,
so ``ε`` is the IR-drop error), and the RMS variant normalised the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..device.card import ModelCard
from .mapping import encode_inputs, map_layer
from ..errors import ConfigError


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Lay out ``fig``, write it to ``path`` (parent folders created), close it; return the
    path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def vmm_errors(out: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Max and RMS error of ``out`` against ``ref``, relative to ``max |ref|``."""
    scale = float(np.abs(ref).max()) or 1.0
    d = np.asarray(out) - np.asarray(ref)
    return {"max_rel": float(np.abs(d).max() / scale),
            "rms_rel": float(np.sqrt(np.mean(d ** 2)) / scale)}


def error_sweep(weights: np.ndarray, inputs: np.ndarray, *, card: ModelCard | None = None,
                g_range: tuple[float, float] | None = None,
                tile_sizes: Sequence[int] = (16, 32, 64, 128),
                r_wires: Sequence[float] = (0.5, 1.0, 2.5, 5.0), solver: str = "mna",
                direction: str = "forward", progress: bool = False,
                **map_kwargs: Any) -> dict[str, Any]:
    """VMM error for every (tile size, wire resistance) pair.

    ``inputs`` are activations in [0, 1] (encoded at the card's read voltage). Tile sizes
    larger than the weight matrix are skipped. Returns ``{'tile_sizes', 'r_wires',
    'max_rel' (n_sizes, n_r), 'rms_rel' (n_sizes, n_r)}``.
    """
    from tqdm.auto import tqdm

    sizes = [int(s) for s in tile_sizes if s <= min(weights.shape)]
    if not sizes:
        raise ConfigError(f"no tile size in {list(tile_sizes)} fits the {weights.shape} matrix")
    max_rel = np.full((len(sizes), len(r_wires)), np.nan)
    rms_rel = np.full_like(max_rel, np.nan)
    bar = tqdm(total=len(sizes) * len(r_wires), desc="error sweep", disable=not progress,
               leave=False)
    for a, s in enumerate(sizes):
        for b, r in enumerate(r_wires):
            layer = map_layer(weights, card=card, g_range=g_range, tile_size=s,
                              r_wire_row=r, r_wire_col=r, **map_kwargs)
            v = encode_inputs(inputs, layer.v_read, card)
            out = layer.read(v, direction, solver=solver)
            ideal = layer.read(v, direction, solver="ideal")
            e = vmm_errors(out, ideal)
            max_rel[a, b], rms_rel[a, b] = e["max_rel"], e["rms_rel"]
            bar.update()
    bar.close()
    return {"tile_sizes": sizes, "r_wires": list(map(float, r_wires)), "max_rel": max_rel,
            "rms_rel": rms_rel, "solver": solver, "direction": direction}


def plot_error_sweep(result: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Figure: VMM error vs tile size, one curve per wire resistance (log axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for b, r in enumerate(result["r_wires"]):
        ax[0].loglog(result["tile_sizes"], result["max_rel"][:, b], "o-", label=f"{r:g} Ω")
        ax[1].loglog(result["tile_sizes"], result["rms_rel"][:, b], "o-", label=f"{r:g} Ω")
    for a, name in zip(ax, ("max", "RMS")):
        a.set_xlabel("tile size N (N x N cells)")
        a.set_ylabel(f"{name} VMM error / max |I_ideal|")
        a.set_xticks(result["tile_sizes"], [str(s) for s in result["tile_sizes"]])
        a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        a.grid(True, which="both", alpha=0.3)
        a.legend(title="wire / segment", fontsize=8)
    fig.suptitle(title or f"IR-drop error of the layer output ({result['solver']}, "
                 f"{result['direction']} read)", fontsize=10)
    return save_figure(fig, path, dpi=120)


def plot_tile_topology(path: str | Path, rows: int = 3, cols: int = 4) -> Path:
    """Schematic of the tile netlist (drivers, wire segments, cells, virtual-ground sense)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.9 * cols + 2.5, 1.5 * rows + 2.2))
    dx, dy = 1.6, 1.2
    xr = lambda j: 1.5 + j * dx            # noqa: E731 - cell column position
    yr = lambda i: (rows - 1 - i) * dy + 1.2  # noqa: E731 - row line height

    def resistor(x0, y0, x1, y1, label=None, color="k", at=0.5):
        ax.plot([x0, x1], [y0, y1], color=color, lw=1)
        xm, ym = x0 + at * (x1 - x0), y0 + at * (y1 - y0)
        horiz = abs(y1 - y0) < 1e-9
        w, h = (0.28, 0.1) if horiz else (0.1, 0.28)
        ax.add_patch(plt.Rectangle((xm - w / 2, ym - h / 2), w, h, fc="white", ec=color, lw=1,
                                   zorder=3))
        if label:
            ax.text(xm, ym + (0.12 if horiz else 0), label, fontsize=7, ha="center",
                    va="bottom" if horiz else "center", color=color)

    for i in range(rows):
        y = yr(i)
        # driver and first segment
        ax.add_patch(plt.Circle((-0.9, y), 0.17, fc="white", ec="tab:blue", zorder=3))
        ax.text(-0.9, y, f"v{i}", fontsize=7, ha="center", va="center", color="tab:blue")
        resistor(-0.73, y, 0.1, y, "R_drv", "tab:blue")
        resistor(0.1, y, xr(0) - 0.3, y, "R_row", "tab:red")
        for j in range(cols - 1):
            resistor(xr(j) - 0.3, y, xr(j + 1) - 0.3, y, "R_row", "tab:red")
        ax.plot([xr(cols - 1) - 0.3, xr(cols - 1) + 0.1], [y, y], "k", lw=1)
        ax.text(xr(cols - 1) + 0.15, y, "open", fontsize=6, va="center")
        for j in range(cols):
            # cell: from row node down-right to column line
            xc = xr(j)
            ax.plot([xc - 0.3, xc - 0.3], [y, y - 0.2], "k", lw=1)
            ax.add_patch(plt.Rectangle((xc - 0.42, y - 0.5), 0.24, 0.3, fc="tab:green",
                                       ec="k", alpha=0.6, zorder=3))
            ax.plot([xc - 0.3, xc - 0.3, xc], [y - 0.5, y - 0.6, y - 0.6], "k", lw=1)
            if i == 0 and j == 0:
                ax.text(xc - 0.45, y - 0.35, "cell (t→b)\ng or motiox_read", fontsize=6,
                        ha="right", va="center", color="tab:green")
    for j in range(cols):
        xc = xr(j)
        ax.text(xc, yr(0) + 0.25, "open", fontsize=6, ha="center")
        ax.plot([xc, xc], [yr(0) + 0.2, yr(0) - 0.6], "k", lw=1)
        for i in range(rows - 1):
            resistor(xc, yr(i) - 0.6, xc, yr(i + 1) - 0.6, None, "tab:red", at=0.28)
            if j == 0:
                ax.text(xc + 0.1, yr(i) - 0.94, "R_col", fontsize=7, color="tab:red")
        resistor(xc, yr(rows - 1) - 0.6, xc, 0.0, None, "tab:red", at=0.6)
        resistor(xc, 0.0, xc, -0.8, None, "tab:purple")
        ax.plot([xc - 0.15, xc + 0.15], [-0.8, -0.8], color="tab:purple", lw=2)
        ax.text(xc, -1.0, f"I{j} → VG", fontsize=7, ha="center", va="top", color="tab:purple")
    ax.text(xr(cols - 1) + 0.25, -0.4, "R_sense\n(TIA: R_f/(1+a))", fontsize=7,
            color="tab:purple", va="center")
    ax.set_title("crossbar tile netlist, forward read (rows driven, columns sensed at virtual "
                 "ground);\ntransposed: columns driven at their periphery end, rows sensed",
                 fontsize=9)
    ax.set_xlim(-1.4, xr(cols - 1) + 1.4)
    ax.set_ylim(-1.5, yr(0) + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    return save_figure(fig, path, dpi=130)
