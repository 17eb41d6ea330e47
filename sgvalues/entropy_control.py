"""Entropy control: how much of a subgroup's apparent (mis)alignment its answers' spread predicts.

A subgroup whose answers are spread evenly over the options is hard to match with a modal
answer and easy to match with a flat distribution; one that nearly agrees is the opposite. So a
"gap" between subgroups can be partly a gap in how predictable their answers are (SimBench;
Dominguez-Olmedo et al.). This module measures that, for chapter 09:

* :func:`answer_entropy`: the normalised Shannon entropy of an answer distribution, in [0, 1];
* :func:`entropy_terciles`: cells cut into three equal-count groups by entropy, mean error per group;
* :func:`entropy_explained`: per group (subgroup or question) mean error regressed on mean
  entropy (and any other covariate, e.g. the log of the cell size), with the :math:`R^2` (the
  share of the between-group variance in error the covariates explain) and the spread of
  group errors before and after the adjustment.

Example
-------
>>> answer_entropy({1: 0.5, 2: 0.5}), answer_entropy('{"1": 1.0, "2": 0.0, "3": 0.0}')
(1.0, 0.0)
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from sgvalues.modal import parse_distribution

__all__ = ["TERCILES", "CELL_COLUMNS", "answer_entropy", "add_entropy", "entropy_terciles", "entropy_explained",
           "cell_errors"]

#: labels of :func:`entropy_terciles`, lowest entropy first
TERCILES = ("low", "middle", "high")


def answer_entropy(distribution, normalised: bool = True) -> float:
    """Shannon entropy of an answer distribution (base 2), by default divided by its maximum.

    Parameters
    ----------
    distribution : mapping or JSON code -> share
        Every option of the question (zero shares included: they set the maximum).
    normalised : bool
        Divide by :math:`\\log_2 k` for :math:`k` options, so 0 = everyone agrees, 1 = uniform.

    Notes
    -----
    :math:`H(p) = -\\sum_x p(x) \\log_2 p(x)` (``scipy.stats.entropy(p, base=2)``), and
    :math:`H(p) / \\log_2 k` when normalised (:math:`k = 1`: 0).

    Examples
    --------
    >>> round(answer_entropy({1: 0.25, 2: 0.25, 3: 0.25, 4: 0.25}, normalised=False), 6)
    2.0
    """
    from scipy.stats import entropy

    shares = parse_distribution(distribution)
    p = np.array(list(shares.values()), dtype=float)
    if p.size == 0 or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"distribution {distribution!r}: expected non-negative shares with a positive sum")
    h = float(entropy(p, base=2))
    if not normalised:
        return h
    return h / math.log2(p.size) if p.size > 1 else 0.0


def add_entropy(table: pd.DataFrame, column: str = "distribution") -> pd.DataFrame:
    """``table`` with ``entropy`` (normalised, :func:`answer_entropy`) of its ``column``.

    Examples
    --------
    >>> add_entropy(pd.DataFrame({"distribution": ['{"1": 0.5, "2": 0.5}']}))["entropy"].tolist()
    [1.0]
    """
    if column not in table.columns:
        raise ValueError(f"table: missing column {column!r}; expected the observed answer distribution (JSON)")
    return table.assign(entropy=[answer_entropy(d) for d in table[column]])


def entropy_terciles(table: pd.DataFrame, error: str, entropy: str = "entropy") -> pd.DataFrame:
    """Mean error per entropy tercile (three equal-count groups of cells, lowest entropy first).

    Parameters
    ----------
    table : DataFrame
        One row per cell with the ``error`` (e.g. ``nmae`` from ``metrics.score_samples`` or a
        readout's ``jsd``) and ``entropy`` columns.
    error, entropy : str
        Column names.

    Returns
    -------
    DataFrame
        ``tercile`` (:data:`TERCILES`), ``entropy_lo``, ``entropy_hi`` (the range in it),
        ``n``, ``error`` (mean).

    Notes
    -----
    Cells are ranked by entropy (ties in table order) and cut at the 1/3 and 2/3 ranks
    (``pandas.qcut`` on the rank), so tied entropies cannot empty a tercile.

    Examples
    --------
    >>> t = pd.DataFrame({"entropy": [0.1, 0.2, 0.5, 0.6, 0.9, 1.0], "nmae": [0, 0, 0.2, 0.4, 0.5, 0.7]})
    >>> entropy_terciles(t, "nmae")[["tercile", "n", "error"]].round(3).to_dict("list")
    {'tercile': ['low', 'middle', 'high'], 'n': [2, 2, 2], 'error': [0.0, 0.3, 0.6]}
    """
    for col in (error, entropy):
        if col not in table.columns:
            raise ValueError(f"table: missing column {col!r}")
    t = table[[entropy, error]].dropna()
    if len(t) < 3:
        raise ValueError(f"entropy_terciles: {len(t)} cell(s) with both {entropy!r} and {error!r}; expected >= 3")
    groups = pd.qcut(t[entropy].rank(method="first"), 3, labels=list(TERCILES))
    out = (t.groupby(groups, observed=False)
           .agg(entropy_lo=(entropy, "min"), entropy_hi=(entropy, "max"), n=(error, "size"), error=(error, "mean"))
           .reset_index(names="tercile"))
    out["tercile"] = out["tercile"].astype(str)
    return out


def entropy_explained(table: pd.DataFrame, error: str, group: str = "subgroup",
                      covariates: Sequence[str] = ("entropy",)) -> dict:
    """How much of the between-group variation in error the covariates (entropy, size) explain.

    Parameters
    ----------
    table : DataFrame
        One row per cell with ``group``, ``error`` and the ``covariates``.
    error : str
        The per-cell error column.
    group : str
        ``subgroup`` (the between-subgroup gap) or ``question_id``.
    covariates : columns
        Regressors, averaged per group like the error; e.g. ``("entropy",)`` or
        ``("entropy", "log_n")`` with ``log_n = log(n_valid)``.

    Returns
    -------
    dict
        ``n_groups``, ``r2``, ``intercept``, ``coefficients`` (covariate -> slope),
        ``gap_raw`` (max − min of the group mean errors), ``gap_adjusted`` (the same of the
        residuals) and ``gap_explained`` :math:`= 1 - ` gap_adjusted / gap_raw.

    Notes
    -----
    With group means :math:`\\bar e_g` and :math:`\\bar x_g`, ordinary least squares
    :math:`\\bar e_g = \\beta_0 + \\beta^\\top \\bar x_g + r_g` (``numpy.linalg.lstsq``) and

    .. math:: R^2 = 1 - \\frac{\\sum_g r_g^2}{\\sum_g (\\bar e_g - \\bar e)^2}

    the share of the between-group variance in error the covariates explain (with one
    covariate, the squared correlation, as ``scipy.stats.linregress`` gives).

    Examples
    --------
    >>> t = pd.DataFrame({"subgroup": list("abc"), "entropy": [0.2, 0.5, 0.8], "nmae": [0.1, 0.25, 0.4]})
    >>> r = entropy_explained(t, "nmae")
    >>> round(r["r2"], 6), round(r["coefficients"]["entropy"], 6), round(r["gap_explained"], 6)
    (1.0, 0.5, 1.0)
    """
    covariates = list(covariates)
    need = [group, error, *covariates]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"table: missing column(s) {missing}; expected {need}")
    means = table[need].dropna().groupby(group, sort=True).mean()
    k = len(covariates)
    if len(means) < k + 2:
        raise ValueError(f"entropy_explained: {len(means)} group(s) for {k} covariate(s); expected >= {k + 2}")
    flat = [c for c in covariates if np.ptp(means[c].to_numpy(float)) <= 1e-12]
    if flat:  # collinear with the intercept: its slope is not identified
        raise ValueError(f"entropy_explained: covariate(s) {flat} take one value for every {group}; "
                         "expected them to vary between groups")
    y = means[error].to_numpy(float)
    x = np.column_stack([np.ones(len(means))] + [means[c].to_numpy(float) for c in covariates])
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    gap_raw = float(y.max() - y.min())
    gap_adj = float(resid.max() - resid.min())
    return {"group": group, "n_groups": int(len(means)), "r2": r2, "intercept": float(beta[0]),
            "coefficients": dict(zip(covariates, map(float, beta[1:]))),
            "gap_raw": gap_raw, "gap_adjusted": gap_adj,
            "gap_explained": 1.0 - gap_adj / gap_raw if gap_raw > 0 else float("nan")}


#: columns of :func:`cell_errors`
CELL_COLUMNS = ["sample_id", "question_id", "stratum", "subgroup", "entropy", "n_valid", "log_n", "correct", "nmae",
                "jsd"]


def cell_errors(predictions: pd.DataFrame, samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per cell: the observed answers' entropy and size beside the prediction's errors.

    Parameters
    ----------
    predictions : DataFrame
        A predictions table with ``distribution`` (the observed shares).
    samples : DataFrame, optional
        ``sample_id, n_valid`` (the prepared samples); without it ``n_valid`` and ``log_n``
        are NaN unless ``predictions`` has ``n_valid``.

    Returns
    -------
    DataFrame
        :data:`CELL_COLUMNS`: ``entropy`` (:func:`answer_entropy`), ``log_n`` = :math:`\\ln n`,
        ``correct`` and ``nmae`` (:func:`sgvalues.metrics.score_samples`, invalid answers wrong)
        and ``jsd`` (:func:`sgvalues.metrics.distribution_scores`, NaN without ``probs``).
        Rows without an observed distribution are left out.
    """
    from sgvalues.metrics import distribution_scores, score_samples

    if "distribution" not in predictions.columns:
        raise ValueError("predictions: missing column 'distribution'; expected the observed answer shares (JSON)")
    keep = predictions["distribution"].map(lambda d: d is not None and not (isinstance(d, float) and np.isnan(d))
                                           and not (isinstance(d, str) and not d.strip()))
    p = predictions[keep.astype(bool)]
    out = score_samples(p)
    out["jsd"] = distribution_scores(p)["jsd"].to_numpy()
    out = add_entropy(out)
    if samples is not None:
        if not {"sample_id", "n_valid"} <= set(samples.columns):
            raise ValueError("samples: expected columns sample_id and n_valid")
        out = out.drop(columns=[c for c in ("n_valid",) if c in out.columns]).merge(
            samples[["sample_id", "n_valid"]], on="sample_id", how="left")
    n = pd.to_numeric(out["n_valid"], errors="coerce") if "n_valid" in out.columns else pd.Series(np.nan, out.index)
    out["n_valid"] = n
    out["log_n"] = np.log(n.where(n > 0))
    for c in ("stratum", "subgroup", "question_id"):
        if c not in out.columns:
            out[c] = ""
    return out[CELL_COLUMNS].reset_index(drop=True)
