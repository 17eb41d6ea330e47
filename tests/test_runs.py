"""Tests of sgvalues.runs: papermill orchestration, manifest, failure, resume, --only, paths.

The notebooks here are tiny ones written into tmp_path, so the tests do not depend on the
project's notebooks (tests/test_book.py runs those). Each executes in a real kernel.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from sgvalues import cli, paths, runs
from sgvalues.params import load_params

# Each notebook appends its name to <run_dir>/executed.txt, so a test can count executions.
_BODY = """
import json, sys
from pathlib import Path
from sgvalues.paths import repo_path
rd = repo_path(run_dir)
rd.mkdir(parents=True, exist_ok=True)
with open(rd / "executed.txt", "a") as fh:
    fh.write("{name}\\n")
(rd / "{name}.json").write_text(json.dumps({{"executable": sys.executable, "prefix": sys.prefix,
                                           "params_file": params_file, "run_dir": run_dir}}))
"""


def _notebook(folder: Path, name: str, extra: str = "") -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('params_file = "params/x.yaml"\nrun_dir = "runs/x"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), params,
                nbformat.v4.new_code_cell(_BODY.format(name=name))]
    if extra:
        nb.cells.append(nbformat.v4.new_code_cell(extra))
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def project(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for name in ("01_first", "02_second", "03_third"):
        _notebook(nbs, name)
    params = tmp_path / "demo.yaml"
    params.write_text(yaml.safe_dump({"name": "demo", "seed": 7, "data": {"synthetic_seed": 3}}))
    return {"nbs": nbs, "params": params, "root": tmp_path / "runs"}


def _run(project, **kw):
    lines = []
    run_dir = runs.run_notebooks(project["params"], runs_root=project["root"],
                                 notebooks_dir=project["nbs"], log=lines.append, **kw)
    return run_dir, lines


def _executed(run_dir):
    return (run_dir / "executed.txt").read_text().split()


@pytest.mark.slow  # starts Jupyter kernels
def test_run_executes_in_order_with_this_interpreter_and_writes_manifest(project):
    run_dir, lines = _run(project)
    assert run_dir == project["root"] / "demo"  # run name defaults to the params' name
    assert _executed(run_dir) == ["01_first", "02_second", "03_third"]
    # The kernel is this interpreter (the venv), not whatever 'python3' is elsewhere.
    info = json.loads((run_dir / "02_second.json").read_text())
    assert info["prefix"] == sys.prefix
    assert os.path.abspath(info["executable"]) == os.path.abspath(sys.executable)
    # papermill injected the two parameters (absolute: the runs root is outside the repo).
    assert Path(info["run_dir"]) == run_dir.resolve()
    assert Path(info["params_file"]) == project["params"].resolve()
    for name in ("01_first", "02_second", "03_third"):
        executed = nbformat.read(run_dir / "notebooks" / f"{name}.ipynb", as_version=4)
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    # progress lines: [i/n] name ... seconds
    progress = [ln for ln in lines if ln.startswith("[")]
    assert [ln.split()[0] for ln in progress] == ["[1/3]", "[2/3]", "[3/3]"]
    assert all(ln.split()[1].endswith(".ipynb") and " s " in ln for ln in progress)

    man = json.loads((run_dir / "manifest.json").read_text())
    raw = project["params"].read_bytes()
    assert man["params_sha256"] == hashlib.sha256(raw).hexdigest()
    assert man["params"] == load_params(project["params"]).to_dict()
    assert (run_dir / "params.yaml").read_bytes() == raw
    assert man["seeds"] == {"seed": 7, "synthetic_seed": 3}
    assert man["data"]["synthetic"] is True and man["data"]["wvs_file"] is None
    assert man["status"] == "completed"
    assert man["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert set(man["versions"]) >= {"torch", "transformers", "sgvalues"}
    nb_entries = man["notebooks"]
    assert [e["notebook"] for e in nb_entries] == ["01_first.ipynb", "02_second.ipynb", "03_third.ipynb"]
    assert all(e["status"] == "completed" and e["seconds"] > 0 and e["started"] <= e["ended"]
               for e in nb_entries)
    assert man["total_seconds"] >= sum(e["seconds"] for e in nb_entries) - 0.5
    # hostname-free, no environment dump
    text = (run_dir / "manifest.json").read_text()
    assert socket.gethostname() not in text
    assert str(Path.home()) not in text
    assert "PATH" not in man and "environ" not in text


def test_manifest_records_official_data_file_checksum(project, tmp_path):
    data = tmp_path / "wvs.csv"
    data.write_bytes(b"B_COUNTRY,Q1\n702,1\n")
    project["params"].write_text(yaml.safe_dump({"name": "demo", "data": {"wvs_file": str(data)}}))
    rec = runs.data_record(load_params(project["params"]))
    assert rec["synthetic"] is False
    assert rec["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert rec["bytes"] == data.stat().st_size
    project["params"].write_text(yaml.safe_dump({"name": "demo", "data": {"wvs_file": str(tmp_path / "nope.csv")}}))
    with pytest.raises(runs.RunError, match="nope.csv"):
        runs.data_record(load_params(project["params"]))


@pytest.mark.slow  # starts Jupyter kernels
def test_failing_notebook_stops_the_run_names_cell_and_keeps_partial_output(project, capsys):
    _notebook(project["nbs"], "02_second", extra="raise ValueError('boom in the second notebook')")
    argv = ["run", "--params", str(project["params"]), "--runs-root", str(project["root"]),
            "--notebooks", str(project["nbs"]), "--run", "broken"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "02_second.ipynb" in err and "ValueError" in err and "boom" in err
    # the failing cell: its execution count, its index and its first line
    assert "cell In [4] (index 4 of the executed notebook): `raise ValueError('boom" in err
    run_dir = project["root"] / "broken"
    assert _executed(run_dir) == ["01_first", "02_second"]  # 03 never started
    partial = nbformat.read(run_dir / "notebooks" / "02_second.ipynb", as_version=4)
    assert any(o.get("ename") == "ValueError" for c in partial.cells if c.cell_type == "code"
               for o in c.get("outputs", []))
    man = json.loads((run_dir / "manifest.json").read_text())
    status = {e["notebook"]: e["status"] for e in man["notebooks"]}
    assert man["status"] == "failed"
    assert status == {"01_first.ipynb": "completed", "02_second.ipynb": "failed", "03_third.ipynb": "not run"}


@pytest.mark.slow  # starts Jupyter kernels
def test_default_reexecutes_and_resume_skips_only_unchanged(project):
    run_dir, _ = _run(project)
    _run(project)  # default: everything again
    assert _executed(run_dir) == ["01_first", "02_second", "03_third"] * 2
    (run_dir / "executed.txt").unlink()
    _, lines = _run(project, resume=True)
    assert not (run_dir / "executed.txt").exists()
    assert sum("skipped (--resume" in ln for ln in lines) == 3
    # Changing notebook 02 invalidates 02 and everything after it, not 01.
    _notebook(project["nbs"], "02_second", extra="x = 1")
    _run(project, resume=True)
    assert _executed(run_dir) == ["02_second", "03_third"]
    # A different recipe under the same run name resumes nothing.
    (run_dir / "executed.txt").unlink()
    project["params"].write_text(yaml.safe_dump({"name": "demo", "seed": 8}))
    _run(project, resume=True)
    assert _executed(run_dir) == ["01_first", "02_second", "03_third"]


@pytest.mark.slow  # starts Jupyter kernels
def test_only_runs_the_listed_notebooks_and_reports_the_rest(project):
    run_dir, lines = _run(project, only="2", run="partial")
    assert _executed(run_dir) == ["02_second"]
    assert sum("skipped (not in --only)" in ln for ln in lines) == 2
    man = json.loads((run_dir / "manifest.json").read_text())
    assert man["status"] == "partial"
    with pytest.raises(runs.RunError, match="no notebook numbered 09"):
        _run(project, only="09")
    with pytest.raises(runs.RunError, match="not a notebook number"):
        _run(project, only="first")


def test_bad_inputs_are_clear_errors(project, tmp_path):
    with pytest.raises(runs.RunError, match="no notebooks"):
        runs.list_notebooks(tmp_path)
    _notebook(project["nbs"], "02_duplicate")
    with pytest.raises(runs.RunError, match="share the number"):
        runs.list_notebooks(project["nbs"])
    with pytest.raises(runs.RunError, match="run name"):
        runs.run_notebooks(project["params"], run="../escape", runs_root=project["root"],
                           notebooks_dir=project["nbs"])


def test_repo_path_from_root_and_from_notebooks(monkeypatch):
    root = paths.repo_root()
    assert (root / "pyproject.toml").is_file()
    monkeypatch.chdir(root)
    a = paths.repo_path("pyproject.toml").resolve()
    monkeypatch.chdir(root / "notebooks") if (root / "notebooks").is_dir() else monkeypatch.chdir(root / "sgvalues")
    b = paths.repo_path("pyproject.toml").resolve()
    assert a == b == (root / "pyproject.toml").resolve()
    # An output path that does not exist yet is anchored at the repo root, not at cwd.
    assert paths.repo_path("runs/not-there-yet") == root / "runs" / "not-there-yet"


def test_pick_kernel_falls_back_to_a_spec_for_this_interpreter(monkeypatch, tmp_path):
    # Registered kernels that run another interpreter come first on the Jupyter path.
    bad = tmp_path / "k" / "kernels"
    for name in ("sgvalues", "python3"):
        (bad / name).mkdir(parents=True)
        (bad / name / "kernel.json").write_text(json.dumps(
            {"argv": ["/usr/bin/some-other-python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
             "display_name": name, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "k"))
    name, extra = runs.pick_kernel()
    assert extra is not None
    spec = json.loads((extra / "kernels" / name / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable


@pytest.mark.slow  # starts a Jupyter kernel
def test_manifest_records_the_prompt_rendering_the_stages_noted(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs, "01_only", extra="from sgvalues.models.chat import record_rendering\n"
                                     "record_rendering(rd, 'model', 'folded')\nrecord_rendering(rd, 'judge.judge', 'system')")
    params = tmp_path / "demo.yaml"
    params.write_text(yaml.safe_dump({"name": "demo"}))
    run_dir = runs.run_notebooks(params, runs_root=tmp_path / "runs", notebooks_dir=nbs, log=lambda m: None)
    man = json.loads((run_dir / "manifest.json").read_text())
    assert man["rendering"] == {"model": "folded", "judge.judge": "system"}
