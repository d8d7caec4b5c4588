"""Top-level CLI error handling (one line, hint, exit codes, --debug) and `fit`'s refusal to
overwrite an existing card without --force."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyspice_rram.calibration.io import DataError
from pyspice_rram.cli import _error_text, main
from pyspice_rram.errors import PyspiceRramError, UserInputError

ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pyspice_rram.cli", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def _one_error_line(err: str, command: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(f"pyspice-rram {command}: error: ")]
    assert len(errors) == 1, err
    assert all(ln in errors or ln.startswith(("hint: ", "warning: ")) for ln in lines), err
    return errors[0]


def test_exception_hierarchy():
    assert issubclass(UserInputError, PyspiceRramError) and issubclass(UserInputError, ValueError)
    assert issubclass(DataError, UserInputError) and issubclass(DataError, ValueError)
    assert UserInputError("x", hint="do y").hint == "do y"
    assert PyspiceRramError("x").hint is None


def test_user_error_is_one_line_exit_1_no_traceback(tmp_path):
    missing = tmp_path / "no-such-dataset"
    r = _run("fit", str(missing))
    assert r.returncode == 1
    line = _one_error_line(r.stderr, "fit")
    assert str(missing) in line


def test_debug_shows_the_traceback(tmp_path):
    r = _run("--debug", "fit", str(tmp_path / "no-such-dataset"))
    assert r.returncode == 1
    assert "Traceback (most recent call last)" in r.stderr
    assert "no-such-dataset" in r.stderr


@pytest.mark.parametrize("argv", [["fit", "--no-such-option", "x"], ["fit"],
                                  ["no-such-command"], ["fit", "x", "--starts", "ten"],
                                  # abbreviated long options are refused, not guessed
                                  ["train", "x.toml", "--epoch", "3"],
                                  ["fit", "x", "--start", "3"]])
def test_usage_error_exits_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "Traceback" not in err


def test_usage_error_exit_status_of_the_program():
    assert _run("fit", "--no-such-option").returncode == 2


def test_help_and_version_exit_0(capsys):
    assert main(["--version"]) == 0
    assert main(["fit", "--help"]) == 0
    assert "--force" in capsys.readouterr().out


def test_hint_line_and_oserror_text(tmp_path, capsys, monkeypatch):
    """A PyspiceRramError with a hint: the message line, then 'hint: ...'; an OSError is
    'path: reason' on one line."""
    import pyspice_rram.calibration.cli as ccli

    def boom(args):
        raise UserInputError("bad thing in\nfile.csv", hint="fix it")

    monkeypatch.setattr(ccli, "_make_reference", boom)
    assert main(["make-reference", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["pyspice-rram make-reference: error: bad thing in file.csv",
                                "hint: fix it"]
    exc = FileNotFoundError(2, "No such file or directory", "/x/y.csv")
    assert _error_text(exc) == "/x/y.csv: No such file or directory"


# --------------------------------------------------------------- fit: no overwrite
def _card(path: Path, text: str = '{"shipped": true}\n') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# fit over the card beside the data / over an existing -o card: tests/test_bad_inputs_table.py


def test_fit_force_goes_past_the_check(tmp_path, capsys):
    """With --force the existing card does not stop the command: it goes on to load the data
    (here: no recipe, so the next error is about the data set, not the card)."""
    _card(tmp_path / "card.json")
    assert main(["fit", str(tmp_path), "-q", "--force"]) == 1
    line = _one_error_line(capsys.readouterr().err, "fit")
    assert "not overwritten" not in line and "recipe" in line


def test_fit_default_output_without_a_card_is_allowed_past_the_check(tmp_path, capsys):
    assert main(["fit", str(tmp_path), "-q"]) == 1
    line = _one_error_line(capsys.readouterr().err, "fit")
    assert "not overwritten" not in line and "recipe" in line


def test_warnings_are_one_line_without_source_path(capsys):
    """A warning under the CLI is ``pyspice-rram CMD: warning: text`` (no file path, no code
    line), and main() restores Python's own warning printer afterwards."""
    import warnings

    from pyspice_rram.cli import _one_line_warning

    before = warnings.showwarning
    show = _one_line_warning("fit")
    show(UserWarning("data.csv: 23 points clipped\n  in 3 sweeps"), UserWarning,
         "/somewhere/fitting.py", 1420)
    show(RuntimeWarning("overflow in exp"), RuntimeWarning, "/x.py", 1)
    err = capsys.readouterr().err.splitlines()
    assert err == ["pyspice-rram fit: warning: data.csv: 23 points clipped in 3 sweeps",
                   "pyspice-rram fit: warning (RuntimeWarning): overflow in exp"]
    assert main(["fit", "--no-such-option"]) == 2
    assert main(["make-reference", "/proc/no/such/dir"]) == 1
    assert warnings.showwarning is before
