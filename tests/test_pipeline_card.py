"""Which card ``pyspice-rram run`` uses when the fit step is not run (issue 10, packaging).

It once looked for ``<dataset>/fitted/card.json``, a path that never exists, and silently
fell back to the reference card; now it takes ``--card``, else the card a previous fit wrote
into the same output directory, else the card beside the data set, and says which.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from pyspice_rram.cli import main
from pyspice_rram.device.card import ModelCard
from pyspice_rram.errors import UserInputError
from pyspice_rram.pipeline import REFERENCE_DATASET, chain_card


def _card(path, g_min_density):
    """A distinguishable card written to ``path``."""
    card = dataclasses.replace(ModelCard.reference(), g_min_density=g_min_density)
    path.parent.mkdir(parents=True, exist_ok=True)
    card.save(path)
    return path


def test_the_embedded_data_set_is_package_data_with_its_fitted_card():
    assert REFERENCE_DATASET.parent.name == "data" and REFERENCE_DATASET.parent.parent.name \
        == "pyspice_rram"
    shipped = json.loads((REFERENCE_DATASET / "card.json").read_text())
    assert (REFERENCE_DATASET / "recipe.toml").is_file()
    # the fitted card, not the generating one (a fit recovers it within its errors)
    assert shipped["g_min_density"] != ModelCard.reference().g_min_density
    card, path = chain_card(REFERENCE_DATASET / "nonexistent-out", REFERENCE_DATASET)
    assert path == REFERENCE_DATASET / "card.json"
    assert card.g_min_density == shipped["g_min_density"]


def test_order_card_option_then_previous_fit_then_data_set(tmp_path):
    data = tmp_path / "data"
    out = tmp_path / "out"
    _card(data / "card.json", 1.0e6)
    assert chain_card(out, data)[0].g_min_density == 1.0e6
    _card(out / "fit" / "card.json", 2.0e6)
    assert chain_card(out, data) == (ModelCard.load(out / "fit" / "card.json"),
                                     out / "fit" / "card.json")
    mine = _card(tmp_path / "mine.json", 3.0e6)
    assert chain_card(out, data, mine)[0].g_min_density == 3.0e6
    with pytest.raises(UserInputError, match="--card .*nope.json: no such file"):
        chain_card(out, data, tmp_path / "nope.json")


def test_no_card_anywhere_is_an_error_naming_both_paths(tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(REFERENCE_DATASET, data, ignore=shutil.ignore_patterns("card.json", "report"))
    rc = main(["run", "--dataset", str(data), "-o", str(tmp_path / "out"), "--steps",
               "crossbar", "-q"])
    err = capsys.readouterr().err
    assert rc == 1
    assert str(tmp_path / "out" / "fit" / "card.json") in err and str(data / "card.json") in err
    assert "hint: add 'fit' to --steps" in err
    assert not (tmp_path / "out" / "crossbar").exists()


def test_card_option_and_fit_step_exclude_each_other(tmp_path, capsys):
    mine = _card(tmp_path / "mine.json", 3.0e6)
    assert main(["run", "--card", str(mine), "--steps", "fit", "-o", str(tmp_path / "o")]) == 1
    assert "exclude each other" in capsys.readouterr().err
