"""Table helpers every layer shares: JSON cells, answer shares, records, atomic CSV writing.

The base layer (it imports only :mod:`sgvalues.atomic`): the data modules (``split``), the stages
(``evaluate``, ``option_order``, ``baselines``, ``metrics``, ``train``) and the report pages read
and write their tables through these, so none of them imports another stage for a helper.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from sgvalues.atomic import atomic_path

__all__ = ["json_cell", "distribution_json", "targets_json", "code_shares", "as_records", "write_csv", "write_tables"]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def json_cell(value) -> dict | None:
    """One JSON cell of a table as a dict; ``None`` for a blank or missing cell.

    >>> json_cell('{"1": 0.5}'), json_cell(""), json_cell(float("nan")), json_cell({"a": 1})
    ({'1': 0.5}, None, None, {'a': 1})
    """
    if isinstance(value, dict):
        return value
    if _missing(value):
        return None
    text = str(value).strip()
    return json.loads(text) if text else None


def distribution_json(distribution) -> str:
    """A sample's answer distribution as JSON code -> share (``""`` when it has none).

    A string is taken as already written.

    >>> distribution_json({1: 0.25, "2": 0.75}), distribution_json(None), distribution_json({})
    ('{"1": 0.25, "2": 0.75}', '', '')
    """
    if _missing(distribution):
        return ""
    if isinstance(distribution, str):
        return distribution
    return json.dumps({str(k): float(v) for k, v in distribution.items()}) if distribution else ""


def targets_json(sample: dict) -> str:
    """A sample's tied modal codes (``targets``) as a JSON list of ints, ascending; ``[target]``
    for a sample written before ``targets`` existed.

    >>> targets_json({"target": 2, "targets": [4, 2]}), targets_json({"target": 3, "targets": float("nan")})
    ('[2, 4]', '[3]')
    """
    tied = sample.get("targets")
    if isinstance(tied, str):
        tied = json.loads(tied) if tied.strip() else None
    elif not isinstance(tied, (list, tuple, np.ndarray)):
        tied = None  # missing (NaN in a samples frame of an older prepared folder)
    codes = sorted({int(c) for c in tied}) if tied is not None and len(tied) else [int(sample["target"])]
    return json.dumps(codes)


def code_shares(value) -> dict[int, float] | None:
    """A JSON/mapping code -> share as ``{int code: float}``; ``None`` for missing or empty.

    >>> code_shares('{"1": 0.5, "2.0": 0.5}'), code_shares(""), code_shares(float("nan")), code_shares({})
    ({1: 0.5, 2: 0.5}, None, None, None)
    """
    if _missing(value):
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        value = json.loads(value)
    if not value:
        return None
    return {int(float(k)): float(v) for k, v in dict(value).items()}


def as_records(samples) -> list[dict]:
    """Sample records as a list of dicts, from a DataFrame (one dict per row) or any iterable.

    >>> as_records(pd.DataFrame({"a": [1, 2]})), as_records(iter([{"a": 3}]))
    ([{'a': 1}, {'a': 2}], [{'a': 3}])
    """
    if isinstance(samples, pd.DataFrame):
        return samples.to_dict("records")
    return list(samples)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` to ``path`` as CSV (no index, ``\\n`` line ends), atomically (temp file + rename).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.csv"
    >>> write_csv(pd.DataFrame({"a": [1]}), p); p.read_text()
    'a\\n1\\n'
    """
    with atomic_path(Path(path)) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")


def write_tables(tables: dict[str, pd.DataFrame], folder: str | Path) -> list[Path]:
    """Write each table as ``<folder>/<name>.csv`` with :func:`write_csv`; the paths written, in order.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> [p.name for p in write_tables({"a": pd.DataFrame({"x": [1]}), "b": pd.DataFrame()}, d / "out")]
    ['a.csv', 'b.csv']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables.items():
        write_csv(table, folder / f"{name}.csv")
        written.append(folder / f"{name}.csv")
    return written
