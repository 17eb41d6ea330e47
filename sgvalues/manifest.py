"""What a run folder says about itself: its ``manifest.json``, its model's name, its data source.

The base layer: the loaders (``evaluate.load_run_predictions``) and the report pages read a run's
label here without importing the orchestration in ``sgvalues.runs`` (which writes the manifest).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["RunError", "read_manifest", "run_label", "run_synthetic"]


class RunError(RuntimeError):
    """A run could not start or a notebook failed; the message says which and where."""


def read_manifest(run_dir: str | Path) -> dict:
    """The run's ``manifest.json`` as a dict (``{}`` when absent).

    Raises
    ------
    RunError
        naming the file when it is not valid JSON.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> read_manifest(d)
    {}
    >>> _ = (d / "manifest.json").write_text('{"params": {"name": "tiny"}}')
    >>> read_manifest(d)["params"]
    {'name': 'tiny'}
    """
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: not valid JSON ({exc})") from exc


def run_label(run_dir: str | Path) -> str | None:
    """The model's name for a run: ``display_name`` or ``name`` from ``manifest.json``'s params,
    else from ``<run_dir>/params.yaml`` (a run folder without a manifest); ``None`` when neither
    says.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "params.yaml").write_text("name: tiny\\n")
    >>> run_label(d)
    'tiny'
    """
    run_dir = Path(run_dir)
    params = read_manifest(run_dir).get("params") or {}
    if not (params.get("display_name") or params.get("name")) and (run_dir / "params.yaml").is_file():
        import yaml

        try:
            params = yaml.safe_load((run_dir / "params.yaml").read_text()) or {}
        except yaml.YAMLError as exc:
            raise RunError(f"{run_dir / 'params.yaml'}: not valid YAML ({exc})") from exc
        params = params if isinstance(params, dict) else {}
    return params.get("display_name") or params.get("name") or None


def run_synthetic(run_dir: str | Path) -> bool | None:
    """Whether a run's data is synthetic: from ``manifest.json``, else the prepare summary.

    Returns ``None`` when neither file says.
    """
    run_dir = Path(run_dir)
    man = read_manifest(run_dir)
    if isinstance(man.get("data"), dict) and "synthetic" in man["data"]:
        return bool(man["data"]["synthetic"])
    summary = run_dir / "data" / "prepare_summary.json"
    if summary.is_file():
        try:
            val = json.loads(summary.read_text()).get("synthetic")
        except json.JSONDecodeError:
            return None
        return None if val is None else bool(val)
    return None
