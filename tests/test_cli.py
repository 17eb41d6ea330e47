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


def _sgvalues(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "sgvalues", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("subcommand", ["evaluate", "train", pytest.param("judge", marks=pytest.mark.slow)])
def test_params_typo_is_one_clear_line_for_every_subcommand(subcommand, tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("model:\n  nmae: smollm2-135m\n")
    proc = _sgvalues(subcommand, "--params", str(bad), "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"sgvalues {subcommand}: error: {bad}")
    assert "model.nmae" in lines[0]


def test_bad_value_and_missing_file_are_one_line_and_traceback_on_request(tmp_path):
    bad = tmp_path / "value.yaml"
    bad.write_text("training:\n  lr: -1\n")
    proc = _sgvalues("train", "--params", str(bad), "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert str(bad) in proc.stderr and "lr must be > 0" in proc.stderr
    missing = tmp_path / "absent.yaml"
    proc = _sgvalues("evaluate", "--params", str(missing), "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert str(missing) in proc.stderr and "No such file" in proc.stderr
    proc = _sgvalues("train", "--params", str(missing), "--run-dir", str(tmp_path / "run"),
                     env={"SGVALUES_TRACEBACK": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ParamsError" in proc.stderr


def test_only_user_errors_are_shortened(tmp_path, monkeypatch, capsys):
    import types

    from sgvalues.data import WVSFormatError

    def fake_module(exc):
        def main(args):
            raise exc
        return types.SimpleNamespace(configure_parser=lambda parser: None, main=main)

    monkeypatch.setitem(cli.SUBCOMMANDS, "fake", ("fake_module_for_test", "a test subcommand"))
    for exc, shortened in ((WVSFormatError("f.csv: column X001 missing"), True), (FileNotFoundError("gone.csv"), True),
                           (ValueError("bad\nvalue"), True), (KeyError("column"), False), (ZeroDivisionError(), False)):
        monkeypatch.setattr(importlib, "import_module", lambda name, exc=exc: fake_module(exc))
        if shortened:
            assert cli.main(["fake"]) == 1
            assert capsys.readouterr().err == f"sgvalues fake: error: {' '.join(str(exc).split())}\n"
        else:
            with pytest.raises(type(exc)):
                cli.main(["fake"])
