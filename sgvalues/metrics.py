"""Accuracy, normalised MAE and refusal rate of structured predictions, and their aggregation.

Pure functions on array-likes; a prediction that is missing (``NaN``/``None``: refused,
unparseable or failed) counts as wrong for accuracy and as the largest error, 1.0, for NMAE,
so a model cannot improve its scores by declining to answer.

Example
-------
>>> accuracy([3, 4, None], [3, 5, 2])
0.3333333333333333
>>> nmae([3, 4, None], [3, 5, 2], [1, 1, 1], [5, 5, 5])   # (0 + 1/4 + 1) / 3
0.4166666666666667
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["accuracy", "nmae", "refusal_rate", "aggregate", "aggregate_by_level", "METRIC_COLUMNS"]

#: the columns :func:`aggregate` adds
METRIC_COLUMNS = ["accuracy", "nmae", "refusal_rate", "n"]


def _floats(values, name: str) -> np.ndarray:
    arr = pd.to_numeric(pd.Series(list(values) if not isinstance(values, pd.Series) else values,
                                  dtype=object), errors="coerce")
    return arr.to_numpy(dtype=float)


def _check_lengths(**arrays) -> int:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"metric inputs differ in length: {lengths}")
    return next(iter(lengths.values()))


def accuracy(predictions, targets) -> float:
    """Share of predictions equal to the target (missing prediction = wrong).

    Notes
    -----
    :math:`\\mathrm{acc} = \\frac{1}{n}\\sum_i [\\hat y_i = y_i]`, with :math:`[\\mathrm{NaN} = y] = 0`.
    Empty input gives ``NaN``.
    """
    p, t = _floats(predictions, "predictions"), _floats(targets, "targets")
    n = _check_lengths(predictions=p, targets=t)
    if n == 0:
        return float("nan")
    if np.isnan(t).any():
        raise ValueError(f"targets contain {int(np.isnan(t).sum())} missing value(s); every sample needs a target")
    return float(np.mean(np.where(np.isnan(p), False, p == t)))


def nmae(predictions, targets, scale_min, scale_max) -> float:
    """Mean absolute error divided by each question's scale width (missing prediction = 1.0).

    Notes
    -----
    :math:`\\mathrm{NMAE} = \\frac{1}{n}\\sum_i e_i`, :math:`e_i = |\\hat y_i - y_i| / (\\max_i - \\min_i)`,
    and :math:`e_i = 1` when :math:`\\hat y_i` is missing. Scalars broadcast for ``scale_min`` /
    ``scale_max``.

    Examples
    --------
    >>> nmae([1, 10], [10, 10], 1, 10)
    0.5
    """
    p, t = _floats(predictions, "predictions"), _floats(targets, "targets")
    n = _check_lengths(predictions=p, targets=t)
    lo = np.broadcast_to(_floats(np.atleast_1d(scale_min), "scale_min"), (n,)) if np.ndim(scale_min) == 0 \
        else _floats(scale_min, "scale_min")
    hi = np.broadcast_to(_floats(np.atleast_1d(scale_max), "scale_max"), (n,)) if np.ndim(scale_max) == 0 \
        else _floats(scale_max, "scale_max")
    _check_lengths(predictions=p, scale_min=lo, scale_max=hi)
    if n == 0:
        return float("nan")
    width = hi - lo
    if not (width > 0).all():
        bad = int(np.argmin(width > 0))
        raise ValueError(f"scale_max - scale_min must be > 0; row {bad} has scale_min={lo[bad]}, scale_max={hi[bad]}")
    err = np.abs(p - t) / width
    err = np.where(np.isnan(p), 1.0, err)
    return float(np.mean(err))


def refusal_rate(statuses) -> float:
    """Share of answers with status ``refused``.

    >>> refusal_rate(["ok", "refused", "unparseable", "ok"])
    0.25
    """
    s = pd.Series(list(statuses), dtype=object)
    return float((s == "refused").mean()) if len(s) else float("nan")


def _summary(g: pd.DataFrame) -> pd.Series:
    return pd.Series({
        "accuracy": accuracy(g["prediction"], g["target"]),
        "nmae": nmae(g["prediction"], g["target"], g["scale_min"], g["scale_max"]),
        "refusal_rate": refusal_rate(g["status"]),
        "n": int(len(g)),
    })


def aggregate(predictions: pd.DataFrame, by: Sequence[str] | str | None = ("stratum",)) -> pd.DataFrame:
    """Accuracy, NMAE, refusal rate and ``n`` per group of the predictions table.

    ``by=None`` or ``[]`` gives one overall row. Needs columns ``prediction``, ``target``,
    ``scale_min``, ``scale_max``, ``status`` plus the ``by`` columns.

    Examples
    --------
    >>> df = pd.DataFrame({"stratum": ["sex", "sex", "age"], "prediction": [1, None, 2],
    ...                    "target": [1, 2, 3], "scale_min": 1, "scale_max": 3,
    ...                    "status": ["ok", "refused", "ok"]})
    >>> aggregate(df, "stratum")[["stratum", "accuracy", "nmae", "n"]].to_dict("records")
    [{'stratum': 'age', 'accuracy': 0.0, 'nmae': 0.5, 'n': 1}, {'stratum': 'sex', 'accuracy': 0.5, 'nmae': 0.5, 'n': 2}]
    """
    by = [by] if isinstance(by, str) else list(by or [])
    need = {"prediction", "target", "scale_min", "scale_max", "status", *by}
    missing = sorted(need - set(predictions.columns))
    if missing:
        raise ValueError(f"predictions table lacks column(s) {missing}; expected the evaluate.PREDICTION_COLUMNS")
    if not by:
        out = _summary(predictions).to_frame().T
    else:
        rows = []
        for key, g in predictions.groupby(by, sort=True, dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            rows.append({**dict(zip(by, key)), **_summary(g).to_dict()})
        out = pd.DataFrame(rows, columns=by + METRIC_COLUMNS)
    out["n"] = out["n"].astype(int)
    return out.reset_index(drop=True)


def aggregate_by_level(predictions: pd.DataFrame) -> pd.DataFrame:
    """Metrics per attribute level (``attribute``, ``level``): a pair subgroup counts for both levels.

    Reads the ``levels`` column (JSON ``{axis: level}`` or a dict), e.g. the OOD subgroup
    ``sex_x_age_group:Female|25-34`` counts towards ``sex=Female`` and ``age_group=25-34``.
    """
    if "levels" not in predictions.columns:
        raise ValueError("predictions table lacks column 'levels' (JSON axis -> level)")
    parts = []
    for axis_levels, g in predictions.groupby(predictions["levels"].map(_levels_key), sort=False):
        for axis, level in axis_levels:
            parts.append(g.assign(attribute=axis, level=level))
    if not parts:
        return pd.DataFrame(columns=["attribute", "level"] + METRIC_COLUMNS)
    return aggregate(pd.concat(parts, ignore_index=True), ["attribute", "level"])


def _levels_key(value) -> tuple:
    d = json.loads(value) if isinstance(value, str) else dict(value)
    return tuple(sorted(d.items()))
