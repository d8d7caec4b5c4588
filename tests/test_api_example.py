"""The public API (docs/api.md): its names resolve lazily and its example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import pyspice_rram as pr

ROOT = Path(__file__).resolve().parents[1]
API_PAGE = ROOT / "docs" / "api.md"

#: Names the API page promises (issue 10, point 3).
PROMISED = {"load_dataset", "fit", "FitResult", "ModelCard", "map_layer", "Tile", "solve",
            "TileSurrogate", "fit_surrogate", "TrainConfig", "train", "PyspiceRramError",
            "DataError", "ConfigError", "SimulatorError", "ValidityError"}


def example_code() -> str:
    """The one fenced python block of docs/api.md."""
    blocks = re.findall(r"^```python\n(.*?)^```", API_PAGE.read_text(), flags=re.S | re.M)
    assert len(blocks) == 1, f"{API_PAGE} must hold exactly one python block, has {len(blocks)}"
    return blocks[0]


def test_import_is_lazy_and_every_public_name_resolves():
    # a fresh interpreter: importing the package loads none of the layers (nor numpy)
    code = ("import sys, pyspice_rram; "
            "print(sorted(m for m in sys.modules if m.startswith(('pyspice_rram.', 'numpy'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.strip()
    assert out == "[]", out
    assert PROMISED <= set(pr.__all__)
    for name in pr.__all__:
        obj = getattr(pr, name)
        assert obj is not None and not isinstance(obj, type(sys)), name
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        pr.nonexistent  # noqa: B018
    # the errors: one base, and each also the builtin the CLI and callers catch
    for name, builtin in (("DataError", ValueError), ("ConfigError", ValueError),
                          ("SimulatorError", RuntimeError), ("ValidityError", ValueError)):
        cls = getattr(pr, name)
        assert issubclass(cls, pr.PyspiceRramError) and issubclass(cls, builtin), name
    from pyspice_rram.calibration.io import DataError
    from pyspice_rram.network.cells import ConfigError
    from pyspice_rram.surrogate.model import SurrogateValidityError

    assert DataError is pr.DataError
    assert issubclass(ConfigError, pr.ConfigError)
    assert issubclass(SurrogateValidityError, pr.ValidityError)


def test_solve_dispatches_to_each_solver():
    tile = pr.Tile.random(4, 3, rng=1, r_wire_row=2.0, r_wire_col=2.0)
    v = np.random.default_rng(2).uniform(0, 0.2, (2, 4))
    ideal = pr.solve(tile, v, solver="ideal")
    # without parasitics a linear tile's column current is v @ G (Kirchhoff, by hand)
    assert np.allclose(ideal, v @ tile.g, rtol=1e-12)
    mna = pr.solve(tile, v, solver="mna")
    assert np.all(np.abs(mna) < np.abs(ideal))          # IR drop only lowers the currents
    with pytest.raises(pr.ConfigError, match="solver = 'spice'"):
        pr.solve(tile, v, solver="spice")
    with pytest.raises(pr.ConfigError, match="Tile or a MappedLayer"):
        pr.solve(np.ones((4, 3)), v)


def test_api_page_example_runs(tmp_path, monkeypatch):
    """The example of docs/api.md, as written, in a scratch directory (its own asserts check
    the fit against the generating card, ngspice against MNA, the surrogate against ngspice
    and the accuracy against chance)."""
    code = example_code()
    assert "pr." in code and "from pyspice_rram" not in code      # public names only
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__api_example__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, str(API_PAGE), "exec"), namespace)       # noqa: S102
    assert (tmp_path / "example-data" / "recipe.toml").is_file()
    assert ".end" in namespace["netlist"]
    assert namespace["y"].shape == (3, 8)
    assert namespace["run"].history.completed_epochs == 1
