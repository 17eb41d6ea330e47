"""Aggregation consistency: do a model's intersectional predictions add up to its single-axis ones?

The population of a level, say ``religion=Muslim``, is the union of its intersectional cells in
any pair stratum, e.g. ``ethnicity_x_religion:Malay|Muslim``, ``...:Chinese|Muslim``,
``...:Indian|Muslim``. A coherent simulator's answer distribution for "a Muslim" should therefore
equal the population-share-weighted mean of its distributions for those cells. The gap between
the two needs no survey answers at all (only the cell sizes), so it can be reported for every
model state and any country profile.

:func:`aggregation_gaps` computes it per (question, pair stratum, axis, level);
:func:`aggregation_summary` averages it per axis.

Notes
-----
For level :math:`\\ell` of axis :math:`a`, pair stratum :math:`S` (which includes :math:`a`), the
cells :math:`g \\in S` with :math:`a(g) = \\ell` that have a prediction, cell sizes :math:`n_g`
(``n_respondents`` of the subgroups table) and predicted distributions :math:`q_g`:

.. math:: \\bar q_{\\ell,S} = \\sum_g w_g\\, q_g, \\qquad w_g = \\frac{n_g}{\\sum_{g'} n_{g'}}

and the gap is :math:`TV(\\bar q_{\\ell,S}, q_\\ell)` (and the Jensen-Shannon distance) against the
single-axis prediction :math:`q_\\ell`. ``coverage`` :math:`= \\sum_g n_g / n_\\ell` says how much
of the level's respondents the cells hold: cells under ``min_n`` are not in the subgroups table
and respondents off the other axis are in no cell, so coverage below 1 means the identity is
only approximate even for a perfectly coherent model.

Example
-------
>>> preds = pd.DataFrame({"question_id": "Q1",
...     "subgroup": ["sex:Male", "sex_x_age_group:Male|16-24", "sex_x_age_group:Male|65+"],
...     "probs": ['{"1": 0.5, "2": 0.5}', '{"1": 1.0, "2": 0.0}', '{"1": 0.0, "2": 1.0}']})
>>> sizes = pd.DataFrame({"subgroup": ["sex:Male", "sex_x_age_group:Male|16-24", "sex_x_age_group:Male|65+"],
...                       "n_respondents": [100, 75, 25]})
>>> aggregation_gaps(preds, sizes)[["axis", "level", "n_cells", "coverage", "tv"]].to_dict("records")
[{'axis': 'sex', 'level': 'Male', 'n_cells': 2, 'coverage': 1.0, 'tv': 0.25}]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from sgvalues.metrics import js_distance, total_variation
from sgvalues.modal import parse_distribution
from sgvalues.subgroups import parse_levels

__all__ = ["GAP_COLUMNS", "aggregation_gaps", "aggregation_summary", "run_aggregation"]

#: columns of :func:`aggregation_gaps` after the ``by`` columns
GAP_COLUMNS = ["question_id", "stratum", "axis", "level", "single_subgroup", "n_cells", "coverage", "tv", "jsd"]


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str)
                                                                               and not value.strip())


def aggregation_gaps(predictions: pd.DataFrame, subgroups: pd.DataFrame, by: Sequence[str] = (),
                     probs: str = "probs") -> pd.DataFrame:
    """Per (question, pair stratum, axis, level): the gap between weighted pair cells and the single axis.

    Parameters
    ----------
    predictions : DataFrame
        One model state's predictions on single-axis and pair subgroups (stack the train and
        OOD files): ``question_id``, ``subgroup``, ``probs`` (JSON code -> probability) and
        optionally ``levels`` (JSON axis -> level; else read from the id) and ``stratum``.
        Rows without ``probs`` are left out.
    subgroups : DataFrame
        ``subgroup, n_respondents`` (the prepared ``subgroups.csv``): the population sizes.
    by : columns
        Keep states apart (e.g. ``["run", "tag"]``); each must be a column of ``predictions``.
    probs : str
        The readout column.

    Returns
    -------
    DataFrame
        ``by`` + :data:`GAP_COLUMNS`, one row per level that has both a single-axis prediction
        and at least one pair cell with a prediction. ``stratum`` is the pair stratum.
    """
    by = list(by)
    need = {"question_id", "subgroup", probs, *by}
    missing = sorted(need - set(predictions.columns))
    if missing:
        raise ValueError(f"predictions: missing column(s) {missing}; expected {sorted(need)}")
    for col in ("subgroup", "n_respondents"):
        if col not in subgroups.columns:
            raise ValueError(f"subgroups: missing column {col!r}; expected the prepared subgroups.csv")
    sizes = dict(zip(subgroups["subgroup"].astype(str), pd.to_numeric(subgroups["n_respondents"], errors="coerce")))
    singles: dict[tuple, tuple[str, dict]] = {}
    cells: dict[tuple, list[tuple[str, dict]]] = {}
    levels_col = predictions["levels"] if "levels" in predictions.columns else pd.Series(None, index=predictions.index)
    for key_vals, qid, sg, lv, raw in zip(predictions[by].itertuples(index=False, name=None) if by
                                          else [()] * len(predictions),
                                          predictions["question_id"], predictions["subgroup"], levels_col,
                                          predictions[probs]):
        if _blank(raw):
            continue
        sg = str(sg)
        levels = parse_levels(sg, None if _blank(lv) else lv)
        dist = parse_distribution(raw)
        stratum = sg.split(":", 1)[0]
        if len(levels) == 1:
            (axis, level), = levels.items()
            singles[(tuple(key_vals), qid, axis, level)] = (sg, dist)
        else:
            for axis, level in levels.items():
                cells.setdefault((tuple(key_vals), qid, stratum, axis, level), []).append((sg, dist))
    rows = []
    for (key_vals, qid, stratum, axis, level), members in cells.items():
        single = singles.get((key_vals, qid, axis, level))
        if single is None:
            continue
        single_sg, q_single = single
        for sg in [single_sg] + [m[0] for m in members]:
            n = sizes.get(sg)
            if n is None or not np.isfinite(n) or n <= 0:
                raise ValueError(f"subgroups: no positive n_respondents for subgroup {sg!r} "
                                 f"(got {n!r}); expected every predicted subgroup in subgroups.csv")
        n_cells = np.array([sizes[m[0]] for m in members], dtype=float)
        w = n_cells / n_cells.sum()
        codes = sorted(set(q_single).union(*(m[1] for m in members)))

        def vec(d):
            v = np.array([d.get(c, 0.0) for c in codes], dtype=float)
            return v / v.sum()

        mixed = sum(wi * vec(m[1]) for wi, m in zip(w, members))
        qs = vec(q_single)

        rows.append({**dict(zip(by, key_vals)), "question_id": qid, "stratum": stratum, "axis": axis, "level": level,
                     "single_subgroup": single_sg, "n_cells": int(len(members)),
                     "coverage": float(n_cells.sum() / sizes[single_sg]),
                     "tv": total_variation(mixed, qs), "jsd": js_distance(qs, mixed)})
    out = pd.DataFrame(rows, columns=by + GAP_COLUMNS)
    return out.sort_values(by + ["question_id", "stratum", "axis", "level"], kind="stable").reset_index(drop=True)


def aggregation_summary(gaps: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Mean gap per axis (and pair stratum), and over all strata of an axis (``stratum = "all"``).

    Returns
    -------
    DataFrame
        ``by`` + ``axis, stratum, tv, jsd, coverage, n`` (``n`` = rows averaged).

    Examples
    --------
    >>> g = pd.DataFrame({"axis": ["sex", "sex"], "stratum": ["a", "b"], "tv": [0.1, 0.3], "jsd": [0.2, 0.4],
    ...                   "coverage": [1.0, 0.8]})
    >>> aggregation_summary(g).round(3).to_dict("records")[0]
    {'axis': 'sex', 'stratum': 'all', 'tv': 0.2, 'jsd': 0.3, 'coverage': 0.9, 'n': 2}
    """
    by = list(by)
    cols = by + ["axis", "stratum", "tv", "jsd", "coverage", "n"]
    if gaps.empty:
        return pd.DataFrame(columns=cols)
    parts = [gaps.assign(stratum="all"), gaps]
    out = (pd.concat(parts, ignore_index=True)
           .groupby(by + ["axis", "stratum"], sort=False)
           .agg(tv=("tv", "mean"), jsd=("jsd", "mean"), coverage=("coverage", "mean"), n=("tv", "size"))
           .reset_index())
    return out[cols]


def run_aggregation(run_dir, tag="zeroshot") -> pd.DataFrame:
    """:func:`aggregation_gaps` of one model state in a run folder (train and OOD predictions stacked).

    ``tag`` may also be a sequence of states: their tables are stacked, ``tag`` telling them apart.

    Reads ``<run_dir>/predictions/<tag>_train.csv`` and ``<tag>_ood.csv`` (whichever exist) and
    the sizes in ``<run_dir>/data/subgroups.csv``. Returns :data:`GAP_COLUMNS` with ``tag``
    first; an empty table when the state has no predictions.
    """
    from pathlib import Path

    from sgvalues.evaluate import load_predictions, predictions_path

    if not isinstance(tag, str):
        return pd.concat([run_aggregation(run_dir, t) for t in tag], ignore_index=True)
    run_dir = Path(run_dir)
    sizes_path = run_dir / "data" / "subgroups.csv"
    if not sizes_path.is_file():
        raise FileNotFoundError(f"{sizes_path}: not found; expected the run's prepared data folder")
    frames = [load_predictions(p) for p in (predictions_path(run_dir, tag, s) for s in ("train", "ood"))
              if p.is_file()]
    if not frames:
        return pd.DataFrame(columns=["tag"] + GAP_COLUMNS)
    preds = pd.concat(frames, ignore_index=True).assign(tag=tag)
    return aggregation_gaps(preds, pd.read_csv(sizes_path), by=["tag"])
