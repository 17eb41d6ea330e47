"""The `sgvalues` command lists its subcommands and dispatches to their modules."""

import importlib
import subprocess
import sys

import pytest

from sgvalues import cli


def test_help_lists_every_subcommand(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("synth", "prepare", "evaluate", "train", "judge", "run", "book"):
        assert name in out


def test_python_dash_m_runs_the_same_command():
    proc = subprocess.run([sys.executable, "-m", "sgvalues", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "prepare" in proc.stdout and "synth" in proc.stdout


def test_unknown_subcommand_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2
    assert "unknown subcommand 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(cli.SUBCOMMANDS))
def test_each_subcommand_module_implements_the_protocol(name):
    module = importlib.import_module(cli.SUBCOMMANDS[name][0])
    assert callable(module.configure_parser) and callable(module.main)
