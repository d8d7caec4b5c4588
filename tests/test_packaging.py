"""A non-editable install works: wheel -> fresh venv outside the checkout -> ``run --steps fit``.

The wheel is built from a copy of the package (``pip wheel --no-deps --no-build-isolation``,
offline, with this interpreter's setuptools >= 77, the build requirement that the ``test``
extra installs) and installed with pip into a fresh venv in
``tmp_path`` that has no pip of its own and no system site-packages. Only after the install
does a ``.pth`` file put this interpreter's site-packages (numpy, numba, PySpice, ...) behind
the venv's own on ``sys.path``; a path line in a ``.pth`` does not run that directory's own
``.pth`` files, so the editable install of the checkout (a finder activated by a ``.pth``)
stays invisible. The command runs from a directory outside the checkout with no
``PYTHONPATH``, so it must find the embedded data set inside the installed package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow      # ~1 min: the full fit of the embedded data set


def _env(isolated: bool) -> dict[str, str]:
    """This process's environment; ``isolated``: without anything that could point Python
    at the checkout (``PYTHONPATH`` ...) or the user's site-packages."""
    if not isolated:
        return dict(os.environ)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(cmd: list, cwd: Path, timeout: float, isolated: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(isolated), capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res


def test_wheel_installs_outside_the_checkout_and_fits_the_embedded_data(tmp_path):
    import setuptools

    major = int(setuptools.__version__.split(".")[0])
    assert major >= 77, (f"setuptools {setuptools.__version__} is older than the build "
                         "requirement setuptools>=77 (pyproject.toml); bash .ci/setup installs it")
    # a copy of what the wheel is built from, so that the build leaves nothing in the checkout
    src = tmp_path / "src"
    src.mkdir()
    shutil.copytree(ROOT / "pyspice_rram", src / "pyspice_rram",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-q", "-w", wheels, src], tmp_path, 300, isolated=False)
    (wheel,) = wheels.glob("pyspice_rram-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    py = env_dir / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index",
          "-q", wheel], tmp_path, 300)
    purelib = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                        tmp_path, 60).stdout.strip())
    # dependencies from this interpreter's site-packages, behind the venv's own
    (purelib / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([py, "-c", "import pyspice_rram.pipeline as p; print(p.__file__); "
                  "print(p.REFERENCE_DATASET)"], work, 120).stdout.split()
    assert Path(where[0]).is_relative_to(purelib), where        # the installed copy, not ROOT
    assert Path(where[1]).is_relative_to(purelib) and (Path(where[1]) / "recipe.toml").is_file()

    res = _run([env_dir / "bin" / "pyspice-rram", "run", "--steps", "fit", "-o", "out", "-q"],
               work, 600)
    card = json.loads((work / "out" / "fit" / "card.json").read_text())
    summary = json.loads((work / "out" / "summary.json").read_text())
    # the fitted card of the shipped synthetic set recovers its generating card (50 states,
    # delta/mu 0.34; docs/calibration.md: 50.4 and 0.334) and the verdict is good
    assert summary["fit"]["verdict"] == "good", res.stdout
    assert 45 < summary["fit"]["n_states"] < 56
    shipped = json.loads((ROOT / "pyspice_rram" / "data" / "motiox-reference" / "card.json")
                         .read_text())
    # the same data set (content hash) as the checkout's, fitted to the same card
    assert card["provenance"]["dataset_sha256"] == shipped["provenance"]["dataset_sha256"]
    for name in ("g_min_density", "g_max_density", "v_p", "v_d"):
        assert card[name] == pytest.approx(shipped[name], rel=0.02), name
    assert summary["card"] == str(Path("out") / "fit" / "card.json")
