"""environment.yml and pyproject.toml declare the same dependencies."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _normalise(req: str) -> str:
    return req.replace(" ", "").lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(map(_normalise, declared)) == sorted(map(_normalise, pip_section)), (
        "environment.yml's pip section and pyproject.toml (dependencies + [test]) differ: "
        f"only in pyproject: {sorted(set(map(_name, declared)) - set(map(_name, pip_section)))}, "
        f"only in environment.yml: {sorted(set(map(_name, pip_section)) - set(map(_name, declared)))}"
    )


def test_python_versions_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    minimum = project["requires-python"].removeprefix(">=")
    assert conda_python.split("=")[1].startswith(minimum)


def test_torch_is_pinned_to_the_cpu_wheel():
    # a bare torch requirement would pull a multi-GB CUDA build
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch = [d for d in project["dependencies"] if _name(d) == "torch"]
    assert torch == ["torch==2.13.0"]
    assert any(_name(d) == "jupyter-book" and "<2" in d for d in project["dependencies"])
