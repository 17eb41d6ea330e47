"""Accuracy, normalised MAE and refusal rate of structured predictions, distributional scores,
and their aggregation.

Pure functions on array-likes; a prediction that is missing (``NaN``/``None``: refused,
unparseable or failed) counts as wrong for accuracy and as the largest error, 1.0, for NMAE,
so a model cannot improve its scores by declining to answer. On a predictions table the rule
is :func:`valid_predictions` (a number and status ``ok``), used by :func:`score` (per group)
and :func:`score_samples` (per sample), the project's only scorers.

**Ties.** Where a subgroup's answers tie for the mode, every tied code is a correct answer: the
``targets`` column (JSON list of the tied modal codes, :func:`sgvalues.modal.modal_answers`)
decides, a prediction is correct when it is any of them and its NMAE is the distance to the
nearest one (:func:`tied_targets`); a table without ``targets`` (or a blank cell) has the single
``target``. ``target`` stays the lowest tied code (what fine-tuning teaches).

The modal answer mutes minority views, so where a predictor gives a distribution over the
options (``probs``: logprob mode, every baseline) it is also scored against the subgroup's
answer distribution (``distribution``): Jensen-Shannon distance, 1-Wasserstein distance on
the codes scaled to [0, 1], and the NMAE of the expected answer (:func:`distribution_scores`).

Example
-------
>>> accuracy([3, 4, None], [3, 5, 2])
0.3333333333333333
>>> nmae([3, 4, None], [3, 5, 2], [1, 1, 1], [5, 5, 5])   # (0 + 1/4 + 1) / 3
0.4166666666666667
"""

from __future__ import annotations

import json
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from sgvalues.tables import code_shares

__all__ = ["accuracy", "nmae", "refusal_rate", "distribution_scores", "valid_predictions", "score_samples", "score",
           "aggregate", "aggregate_by_level", "js_distance", "total_variation", "METRICS", "METRIC_COLUMNS", "tied_targets", "DISTRIBUTION_COLUMNS"]

#: the distributional scores (:func:`distribution_scores`), lower is better
DISTRIBUTION_COLUMNS = ["jsd", "wasserstein", "nmae_expected"]



def _floats(values, name: str) -> np.ndarray:
    arr = pd.to_numeric(pd.Series(list(values) if not isinstance(values, pd.Series) else values,
                                  dtype=object), errors="coerce")
    return arr.to_numpy(dtype=float)


def _check_lengths(**arrays) -> int:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"metric inputs differ in length: {lengths}")
    return next(iter(lengths.values()))


def tied_targets(predictions: pd.DataFrame) -> np.ndarray:
    """Each row's correct codes as an :math:`n \\times K` float matrix, padded with NaN.

    Row :math:`i` holds the codes of its ``targets`` cell (a JSON list such as ``"[2, 4]"``, or a
    list), or its ``target`` alone where the table has no ``targets`` column or the cell is
    blank; :math:`K` is the largest number of tied codes. ``target`` must be one of them.

    Examples
    --------
    >>> df = pd.DataFrame({"target": [2, 1, 3], "targets": ["[2, 4]", "", None]})
    >>> tied_targets(df).tolist()
    [[2.0, 4.0], [1.0, nan], [3.0, nan]]
    """
    target = pd.to_numeric(predictions["target"], errors="coerce").to_numpy(float)
    cells = predictions["targets"].tolist() if "targets" in predictions.columns else [None] * len(target)
    rows = []
    for i, (t, cell) in enumerate(zip(target, cells)):
        if isinstance(cell, str):
            cell = json.loads(cell) if cell.strip() else None
        elif cell is not None and not isinstance(cell, (list, tuple, np.ndarray)):
            cell = None if pd.isna(cell) else [cell]
        codes = sorted({float(c) for c in cell}) if cell is not None and len(cell) else [t]
        if not np.isnan(t) and t not in codes:
            sid = predictions["sample_id"].iloc[i] if "sample_id" in predictions.columns else i
            raise ValueError(f"predictions: row {i} (sample {sid}): column 'targets' = {codes} does not hold its "
                             f"target {t:g}; expected every tied modal code, the target among them")
        rows.append(codes)
    k = max((len(r) for r in rows), default=1)
    out = np.full((len(rows), k), np.nan)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _tie_scores(pred: np.ndarray, tied: np.ndarray, span: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample correct (any tied code) and NMAE (nearest tied code, capped at 1; invalid = 0, 1)."""
    valid = ~np.isnan(pred)
    # the padding never wins the minimum; an invalid (NaN) prediction stays NaN
    dist = np.min(np.where(np.isnan(tied), np.inf, np.abs(pred[:, None] - tied)), axis=1)
    correct = np.where(valid, (dist == 0).astype(float), 0.0)
    err = np.where(valid, np.minimum(dist / span, 1.0), 1.0)
    return correct, err


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


def distribution_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per-sample distance between the predicted and the observed answer distribution.

    Parameters
    ----------
    predictions : DataFrame
        A predictions table with ``probs`` (predicted code -> probability, JSON), ``distribution``
        (the subgroup's answer shares, JSON), ``target``, ``scale_min``, ``scale_max``.

    Returns
    -------
    DataFrame
        ``jsd``, ``wasserstein``, ``nmae_expected``, aligned with ``predictions``' index; NaN in
        a row without ``probs`` or ``distribution`` (generate mode, a failed answer, a table
        written before the column existed), and in every row when either column is absent.

    Notes
    -----
    With predicted :math:`q` and observed :math:`p` over the codes :math:`x` of a question on
    the scale :math:`[c_{min}, c_{max}]` (both renormalised to sum to 1),

    * Jensen-Shannon distance, base 2, in [0, 1]: :math:`\\sqrt{\\tfrac12 KL(p, m) + \\tfrac12
      KL(q, m)}`, :math:`m = (p + q)/2` (``scipy.spatial.distance.jensenshannon``);
    * 1-Wasserstein on the scaled codes :math:`u = (x - c_{min}) / (c_{max} - c_{min})`, in [0, 1]:
      :math:`\\int |F_p(u) - F_q(u)|\\,du` (as ``scipy.stats.wasserstein_distance``, vectorised);
    * NMAE of the expected answer: :math:`\\min_{t \\in T} |\\sum_x q(x)\\,x - t| / (c_{max} - c_{min})`
      for the tied modal codes :math:`T` (:func:`tied_targets`; the modal target alone without ties).

    Examples
    --------
    >>> df = pd.DataFrame({"probs": ['{"1": 0.5, "2": 0.5}', ""], "distribution": ['{"1": 1.0, "2": 0.0}'] * 2,
    ...                    "target": [1, 1], "scale_min": 1, "scale_max": 2})
    >>> distribution_scores(df).round(4).to_dict("list")
    {'jsd': [0.5579, nan], 'wasserstein': [0.5, nan], 'nmae_expected': [0.5, nan]}
    """
    out = pd.DataFrame(np.nan, index=predictions.index, columns=DISTRIBUTION_COLUMNS)
    if not {"probs", "distribution"} <= set(predictions.columns) or predictions.empty:
        return out
    tied = tied_targets(predictions)
    lo = _floats(predictions["scale_min"], "scale_min")
    hi = _floats(predictions["scale_max"], "scale_max")
    by_codes: dict[tuple, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for i, (q_raw, p_raw) in enumerate(zip(predictions["probs"], predictions["distribution"])):
        q, p = code_shares(q_raw), code_shares(p_raw)
        if q is None or p is None:
            continue
        codes = tuple(sorted(set(q) | set(p)))
        qv = np.array([q.get(c, 0.0) for c in codes])
        pv = np.array([p.get(c, 0.0) for c in codes])
        if not (qv.sum() > 0 and pv.sum() > 0):
            continue
        by_codes.setdefault(codes, []).append((i, qv / qv.sum(), pv / pv.sum()))
    jsd = np.full(len(predictions), np.nan)
    w1 = np.full(len(predictions), np.nan)
    ex = np.full(len(predictions), np.nan)
    for codes, rows in by_codes.items():
        idx = np.array([r[0] for r in rows])
        qm = np.stack([r[1] for r in rows])
        pm = np.stack([r[2] for r in rows])
        x = np.asarray(codes, dtype=float)
        jsd[idx] = js_distance(pm, qm)
        width = hi[idx] - lo[idx]
        if not (width > 0).all():
            bad = int(idx[np.argmin(width > 0)])
            raise ValueError(f"predictions: row {bad} has scale_min={lo[bad]}, scale_max={hi[bad]}; "
                             "expected scale_max > scale_min")
        # scipy.stats.wasserstein_distance(u, u, p, q) on the shared support u, vectorised:
        # sum_j |F_p(u_j) - F_q(u_j)| (u_{j+1} - u_j) (tests check it against scipy)
        gaps = np.diff(x)[None, :] / width[:, None]
        w1[idx] = (np.abs(np.cumsum(pm - qm, axis=1)[:, :-1]) * gaps).sum(axis=1)
        # the nearest tied modal code (the target alone without ties)
        ex[idx] = np.min(np.where(np.isnan(tied[idx]), np.inf, np.abs((qm @ x)[:, None] - tied[idx])), axis=1) / width
    out["jsd"] = jsd
    out["wasserstein"] = w1
    out["nmae_expected"] = ex
    return out


def js_distance(p, q) -> np.ndarray | float:
    """Jensen-Shannon distance, base 2, between distributions over the same options (rows,
    broadcast): the one JSD of the package (scores, readouts, calibration, aggregation).

    Notes
    -----
    :math:`\\mathrm{JSD}(p, q) = \\sqrt{\\tfrac12 KL(p, m) + \\tfrac12 KL(q, m)}`, :math:`m = (p + q)/2`,
    in :math:`[0, 1]` (``scipy.spatial.distance.jensenshannon``, rows renormalised). scipy takes
    the square root of a divergence that rounds to about :math:`-10^{-17}` for nearly equal rows
    and returns NaN: such a row is 0 here, not a missing value.

    Examples
    --------
    >>> float(js_distance([1.0, 0.0], [0.0, 1.0])), js_distance([[0.5, 0.5]], [0.5, 0.5]).tolist()
    (1.0, [0.0])
    """
    from scipy.spatial.distance import jensenshannon

    a, b = np.broadcast_arrays(np.asarray(p, dtype=float), np.asarray(q, dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.asarray(jensenshannon(a, b, base=2, axis=-1), dtype=float)
        near = np.isclose(a / a.sum(axis=-1, keepdims=True), b / b.sum(axis=-1, keepdims=True),
                          rtol=0, atol=1e-6).all(axis=-1)
    d = np.clip(np.where(np.isnan(d) & near, 0.0, d), 0.0, 1.0)
    return float(d) if d.ndim == 0 else d


def total_variation(p, q) -> np.ndarray | float:
    """Total variation distance between distributions over the same options (rows).

    Notes
    -----
    :math:`TV(p, q) = \\tfrac12 \\sum_x |p(x) - q(x)| \\in [0, 1]`, each row renormalised first.
    It is the score Meister et al. (2025) report (published: GPT-4 0.550 from log-probs).

    Examples
    --------
    >>> total_variation([1.0, 0.0], [0.0, 1.0]), total_variation([[0.5, 0.5]], [[0.25, 0.75]]).tolist()
    (1.0, [0.25])
    """
    a, b = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"distributions differ in shape: {a.shape} vs {b.shape}")
    if (a.sum(axis=-1) <= 0).any() or (b.sum(axis=-1) <= 0).any():
        raise ValueError("probabilities: a row sums to 0; expected some mass on an option")
    tv = 0.5 * np.abs(a / a.sum(axis=-1, keepdims=True) - b / b.sum(axis=-1, keepdims=True)).sum(axis=-1)
    return float(tv) if tv.ndim == 0 else tv


def valid_predictions(predictions: pd.DataFrame) -> pd.Series:
    """The ``prediction`` column with every invalid answer blanked (``NaN``): THE invalid rule.

    An answer is **valid** when its ``prediction`` is a number and its ``status`` (when the
    table has one) is ``ok``. Everything else (refused, unparseable, failed, or a code parsed
    from a refusal) is invalid, and every score here counts an invalid answer as wrong with the
    largest error, NMAE 1, so declining to answer never improves a score.

    Examples
    --------
    >>> df = pd.DataFrame({"prediction": [2, 3, None], "status": ["ok", "refused", "ok"]})
    >>> valid_predictions(df).tolist()
    [2.0, nan, nan]
    """
    pred = pd.to_numeric(pd.Series(predictions["prediction"], dtype=object), errors="coerce").astype(float)
    if "status" in predictions.columns:
        pred = pred.where(predictions["status"].fillna("ok").astype(str).eq("ok").to_numpy())
    return pred


def score_samples(predictions: pd.DataFrame) -> pd.DataFrame:
    """Add per-sample ``correct`` (0/1) and ``nmae`` (normalised absolute error) columns.

    Notes
    -----
    With target :math:`t`, prediction :math:`\\hat y` on a scale :math:`[c_{min}, c_{max}]`:

    .. math:: \\mathrm{correct} = [\\hat y \\in T], \\qquad
              \\mathrm{nmae} = \\min\\left(\\frac{\\min_{t \\in T} |\\hat y - t|}{c_{max} - c_{min}}, 1\\right)

    where :math:`T` is the set of tied modal codes (``targets``; :math:`\\{t\\}` without ties or
    without the column, :func:`tied_targets`). An invalid answer (:func:`valid_predictions`) has
    ``correct = 0`` and ``nmae = 1``.

    Examples
    --------
    >>> p = pd.DataFrame({"target": [2, 2, 3], "prediction": [2, 4, float("nan")], "scale_min": [1] * 3,
    ...                   "scale_max": [5] * 3, "status": ["ok", "ok", "refused"]})
    >>> score_samples(p)[["correct", "nmae"]].to_dict("list")
    {'correct': [1.0, 0.0, 0.0], 'nmae': [0.0, 0.5, 1.0]}
    >>> score_samples(p.assign(targets=["[2, 5]", "[2, 5]", "[3]"]))[["correct", "nmae"]].to_dict("list")
    {'correct': [1.0, 0.0, 0.0], 'nmae': [0.0, 0.25, 1.0]}
    """
    for c in ("target", "prediction", "scale_min", "scale_max"):
        if c not in predictions.columns:
            raise ValueError(f"predictions: missing column {c!r}; expected target, prediction, scale_min, scale_max")
    out = predictions.copy()
    pred = valid_predictions(out).to_numpy(float)
    target = pd.to_numeric(out["target"], errors="coerce").to_numpy(float)
    span = (pd.to_numeric(out["scale_max"], errors="coerce")
            - pd.to_numeric(out["scale_min"], errors="coerce")).to_numpy(float)
    bad = ~(span > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"predictions: row {i} (sample {out['sample_id'].iloc[i] if 'sample_id' in out else i}): "
                         f"scale_max - scale_min = {span[i]}: expected a positive scale width")
    if np.isnan(target).any():
        i = int(np.flatnonzero(np.isnan(target))[0])
        raise ValueError(f"predictions: column 'target' is missing in row {i}: expected a numeric code")
    out["correct"], out["nmae"] = _tie_scores(pred, tied_targets(out), span)
    return out


def _mean_where_present(column: str) -> Callable[[pd.DataFrame], float]:
    """A group's mean of ``column`` over the rows that have it; NaN when none has."""
    def mean(g: pd.DataFrame) -> float:
        return float(g[column].mean()) if g[column].notna().any() else float("nan")
    return mean


#: The metrics :func:`score` reports, in column order: name -> function of one group's rows
#: (``prediction`` already blanked where invalid, :func:`valid_predictions`; the
#: :data:`DISTRIBUTION_COLUMNS` added per sample). A new metric is one entry here; every
#: ``score``/``aggregate`` table then carries it as a column.
METRICS: dict[str, Callable[[pd.DataFrame], float]] = {
    # per-sample scores of score_samples (the tie rule), already in the group as _correct / _nmae
    "accuracy": lambda g: float(g["_correct"].mean()) if len(g) else float("nan"),
    "nmae": lambda g: float(g["_nmae"].mean()) if len(g) else float("nan"),
    "refusal_rate": lambda g: refusal_rate(g["status"]),
    "invalid_rate": lambda g: float(g["prediction"].isna().mean()) if len(g) else float("nan"),
    "n": lambda g: int(len(g)),
    **{c: _mean_where_present(c) for c in DISTRIBUTION_COLUMNS},
}

#: the columns :func:`score` adds (the names of :data:`METRICS`)
METRIC_COLUMNS = list(METRICS)


def _summary(g: pd.DataFrame) -> pd.Series:
    return pd.Series({name: metric(g) for name, metric in METRICS.items()})


def score(predictions: pd.DataFrame, by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """Accuracy, NMAE, refusal rate, invalid rate, ``n`` and the distributional scores per group.

    The one scorer of a predictions table. ``by=None`` or ``[]`` gives one overall row. Needs
    columns ``prediction``, ``target``, ``scale_min``, ``scale_max``, ``status`` plus the ``by``
    columns. Invalid answers (:func:`valid_predictions`) count as wrong with NMAE 1;
    ``invalid_rate`` is their share. The distributional scores ``jsd``, ``wasserstein``,
    ``nmae_expected`` (:func:`distribution_scores`) are the means over the group's rows that
    have ``probs`` and ``distribution``; NaN when none has. An empty table gives one row of NaN
    with ``n = 0`` (``by=None``) or no rows.

    Notes
    -----
    For a group of :math:`N` samples with prediction :math:`\\hat y_i`, target :math:`y_i` on the
    scale :math:`[a_i, b_i]`, and :math:`v_i = 1` when the answer is valid:

    .. math:: \\mathrm{Acc} = \\frac1N \\sum_i v_i\\,[\\hat y_i \\in T_i], \\qquad
              \\mathrm{NMAE} = \\frac1N \\sum_i \\begin{cases}
              \\min(\\min_{t \\in T_i} |\\hat y_i - t| / (b_i - a_i), 1) & v_i = 1\\\\ 1 & v_i = 0 \\end{cases}

    with :math:`T_i` the tied modal codes of sample :math:`i` (:func:`score_samples`).

    Examples
    --------
    >>> df = pd.DataFrame({"stratum": ["sex", "sex", "age"], "prediction": [1, None, 2],
    ...                    "target": [1, 2, 3], "scale_min": 1, "scale_max": 3,
    ...                    "status": ["ok", "refused", "ok"]})
    >>> score(df, "stratum")[["stratum", "accuracy", "nmae", "invalid_rate", "n"]].to_dict("records")
    [{'stratum': 'age', 'accuracy': 0.0, 'nmae': 0.5, 'invalid_rate': 0.0, 'n': 1}, \
{'stratum': 'sex', 'accuracy': 0.5, 'nmae': 0.5, 'invalid_rate': 0.5, 'n': 2}]
    """
    by = [by] if isinstance(by, str) else list(by or [])
    need = {"prediction", "target", "scale_min", "scale_max", "status", *by}
    missing = sorted(need - set(predictions.columns))
    if missing:
        raise ValueError(f"predictions table lacks column(s) {missing}; expected the evaluate.PREDICTION_COLUMNS")
    scores = distribution_scores(predictions)
    per = score_samples(predictions) if len(predictions) else predictions.assign(correct=[], nmae=[])
    predictions = predictions.assign(prediction=valid_predictions(predictions).to_numpy(),
                                     _correct=per["correct"].to_numpy(float), _nmae=per["nmae"].to_numpy(float),
                                     **{c: scores[c].to_numpy() for c in DISTRIBUTION_COLUMNS})
    if not by:
        out = _summary(predictions).to_frame().T
    else:
        rows = []
        for key, g in predictions.groupby(by, sort=True, dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            rows.append({**dict(zip(by, key)), **_summary(g).to_dict()})
        out = pd.DataFrame(rows, columns=by + list(METRICS))
    out["n"] = out["n"].astype(int)
    return out.reset_index(drop=True)


def aggregate(predictions: pd.DataFrame, by: Sequence[str] | str | None = ("stratum",)) -> pd.DataFrame:
    """:func:`score` with ``by`` defaulting to ``"stratum"`` (the name chapter 04 and sgvalues.train use).

    Examples
    --------
    >>> df = pd.DataFrame({"stratum": ["sex", "sex", "age"], "prediction": [1, None, 2],
    ...                    "target": [1, 2, 3], "scale_min": 1, "scale_max": 3,
    ...                    "status": ["ok", "refused", "ok"]})
    >>> aggregate(df)[["stratum", "accuracy", "nmae", "n"]].to_dict("records")
    [{'stratum': 'age', 'accuracy': 0.0, 'nmae': 0.5, 'n': 1}, {'stratum': 'sex', 'accuracy': 0.5, 'nmae': 0.5, 'n': 2}]
    """
    return score(predictions, by)


def aggregate_by_level(predictions: pd.DataFrame) -> pd.DataFrame:
    """Metrics per attribute level (``attribute``, ``level``): a pair subgroup counts for both levels.

    Reads the ``levels`` column (JSON ``{axis: level}`` or a dict; blank falls back to the
    ``subgroup`` id, :func:`sgvalues.subgroups.parse_levels`), e.g. the OOD subgroup
    ``sex_x_age_group:Female|25-34`` counts towards ``sex=Female`` and ``age_group=25-34``.
    """
    from sgvalues.subgroups import parse_levels

    if "levels" not in predictions.columns:
        raise ValueError("predictions table lacks column 'levels' (JSON axis -> level)")
    subgroups = predictions["subgroup"] if "subgroup" in predictions.columns else pd.Series("", index=predictions.index)
    keys = [tuple(sorted(parse_levels(sg, lv).items())) for sg, lv in zip(subgroups, predictions["levels"])]
    parts = []
    for axis_levels, g in predictions.groupby(pd.Series(keys, index=predictions.index), sort=False):
        for axis, level in axis_levels:
            parts.append(g.assign(attribute=axis, level=level))
    if not parts:
        return pd.DataFrame(columns=["attribute", "level"] + METRIC_COLUMNS)
    return score(pd.concat(parts, ignore_index=True), ["attribute", "level"])
