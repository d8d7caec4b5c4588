"""Inputs and checks shared by the bad-input and interrupt tests: tiny training configs and
studies (a 64-8-10 network on 200 of scikit-learn's 8x8 digits, one epoch: about a
second), and the comparison of two ``xbar solve`` results files."""

import numpy as np

TINY = """name = "tiny"
dataset = "digits"
n_hidden = 8
n_train = 200
n_test = 100
epochs = 1
cell = "{cell}"
lr = {lr}
w_max = [0.5, 1.0]
{top}
[cell_params]
rounding = "stochastic"
{cell_params}
[device]
n_states = 20
c2c = {c2c}
{device}
"""


def tiny(cell="single", lr="0.1", c2c="0.34", top="", cell_params="", device="") -> str:
    """The TOML text of a tiny config; the keyword arguments are inserted as TOML text."""
    return TINY.format(cell=cell, lr=lr, c2c=c2c, top=top, cell_params=cell_params,
                       device=device)


#: A study file (``ablation``) with one tiny run; fields as TOML text.
STUDY = """title = "bad"
[[run]]
label = "{label}"
base = "{base}"
cell = "{cell}"
dataset = "digits"
n_hidden = 8
n_train = 200
n_test = 100
epochs = {epochs}
w_max = [0.5, 1.0]
{extra}
"""


def study(label="x", base="A", cell="single", epochs="1", extra="") -> str:
    """The TOML text of a one-run study."""
    return STUDY.format(label=label, base=base, cell=cell, epochs=epochs, extra=extra)


def tile_outputs(path) -> list[dict]:
    """Every tile's outputs ``{solver: currents (A)}`` of an ``xbar solve`` results file."""
    from pyspice_rram.circuit.store import load_results

    return [{s: r.outputs[s] for s in sorted(r.outputs)} for r in load_results(path)]


def assert_same_outputs(a, b) -> None:
    """Two results files hold the same tiles with bit-identical outputs of every solver."""
    ra, rb = tile_outputs(a), tile_outputs(b)
    assert len(ra) == len(rb)
    for x, y in zip(ra, rb):
        assert x.keys() == y.keys()
        for s in x:
            np.testing.assert_array_equal(x[s], y[s])
