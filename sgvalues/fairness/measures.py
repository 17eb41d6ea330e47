"""The spread statistics of per-subgroup scores: normalised range and coefficient of variation
(the paper's), and beside them their mechanics, the absolute range and standard deviation.

:func:`normalized_range` and :func:`coefficient_of_variation` take one score per subgroup;
:func:`absolute_range` and :func:`standard_deviation` are their numerators, the spread itself,
without the division by the largest or the mean score (a ratio can rise while the spread
shrinks, when its denominator shrinks faster);
their row-wise forms ``nr_rows`` and ``cv_rows`` (NaN-padded arrays, one row per bootstrap
draw) serve :mod:`sgvalues.fairness.uncertainty`. An undefined statistic (zero maximum or zero
mean) is NaN with a :class:`FairnessWarning`.

Example
-------
>>> normalized_range([0.5, 0.4, 0.3])
0.4
>>> round(coefficient_of_variation([0.5, 0.4, 0.3]), 4)
0.2041
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.stats import variation

__all__ = ["FairnessWarning", "normalized_range", "coefficient_of_variation", "absolute_range", "standard_deviation"]


class FairnessWarning(RuntimeWarning):
    """A fairness statistic is undefined for these values (zero max or zero mean) and is NaN."""


# --------------------------------------------------------------------------------------------
# 1. the two spread statistics
# --------------------------------------------------------------------------------------------
def _clean(values: Iterable) -> np.ndarray:
    v = np.asarray(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values, dtype=float)
    return v[~np.isnan(v)]


def _spread(values: Iterable, scale, statistic, undefined: str) -> float:
    """The one rule of both spread statistics: ``statistic`` of the scores (NaN ignored); NaN for
    none, 0 for one subgroup; NaN with a :class:`FairnessWarning` (``undefined``) when ``scale``
    of the scores, the statistic's denominator, is 0."""
    v = _clean(values)
    if v.size < 2:
        return float("nan") if v.size == 0 else 0.0
    if scale(v) == 0:
        warnings.warn(f"{undefined}; returning NaN", FairnessWarning, stacklevel=3)
        return float("nan")
    return float(statistic(v))


def normalized_range(values: Iterable) -> float:
    """Normalised range of per-subgroup scores: how far the worst subgroup is below the best.

    Parameters
    ----------
    values : iterable of float
        One score per subgroup (accuracy or NMAE); NaN values are ignored.

    Returns
    -------
    float
        0 for a single subgroup; NaN (with a :class:`FairnessWarning`) when the maximum is 0,
        and NaN for no values.

    Notes
    -----
    .. math:: \\mathrm{NR} = \\frac{\\max_g s_g - \\min_g s_g}{\\max_g s_g}

    Lower is fairer. For NMAE (an error) the same formula is used, as in Tan et al. (2026).

    Examples
    --------
    >>> normalized_range([1.0, 0.75])
    0.25
    >>> normalized_range([0.7])
    0.0
    """
    return _spread(values, np.max, lambda v: (v.max() - v.min()) / v.max(),
                   "normalized_range: the maximum score is 0, so the range cannot be normalised")


def coefficient_of_variation(values: Iterable) -> float:
    """Coefficient of variation of per-subgroup scores (population standard deviation / mean).

    Returns 0 for a single subgroup; NaN (with a :class:`FairnessWarning`) when the mean is 0,
    and NaN for no values. NaN values are ignored.

    Notes
    -----
    .. math:: \\mathrm{CV} = \\frac{\\sqrt{\\tfrac{1}{G}\\sum_g (s_g - \\bar s)^2}}{\\bar s}

    The population standard deviation (divisor :math:`G`, ``ddof=0``), as in Tan et al. (2026);
    computed by ``scipy.stats.variation(values, ddof=0)``.

    Examples
    --------
    >>> coefficient_of_variation([0.25, 0.75])
    0.5
    """
    return _spread(values, np.mean, lambda v: variation(v, ddof=0), "coefficient_of_variation: the mean score is 0")


def absolute_range(values: Iterable) -> float:
    """Absolute range of per-subgroup scores: the best minus the worst, in the score's own units.

    0 for a single subgroup, NaN for none; NaN values are ignored.

    Notes
    -----
    .. math:: R = \\max_g s_g - \\min_g s_g = \\mathrm{NR} \\cdot \\max_g s_g

    Examples
    --------
    >>> round(absolute_range([0.648, 0.259]), 3)
    0.389
    """
    return _spread(values, lambda v: 1.0, np.ptp, "")  # no denominator: never undefined


def standard_deviation(values: Iterable) -> float:
    """Population standard deviation of per-subgroup scores (divisor :math:`G`, as in the CV).

    0 for a single subgroup, NaN for none; NaN values are ignored.

    Notes
    -----
    .. math:: \\sigma = \\sqrt{\\tfrac{1}{G}\\sum_g (s_g - \\bar s)^2} = \\mathrm{CV} \\cdot \\bar s

    Examples
    --------
    >>> standard_deviation([0.25, 0.75])
    0.25
    """
    return _spread(values, lambda v: 1.0, lambda v: v.std(ddof=0), "")  # no denominator: never undefined


def nr_rows(m: np.ndarray) -> np.ndarray:
    """Row-wise :func:`normalized_range` of a (rows x subgroups) array with NaN padding."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        hi, lo = np.nanmax(m, axis=1), np.nanmin(m, axis=1)
        n = (~np.isnan(m)).sum(axis=1)
        out = np.where(hi > 0, (hi - lo) / np.where(hi > 0, hi, 1), np.nan)
    return np.where(n == 1, 0.0, np.where(n == 0, np.nan, out))


def cv_rows(m: np.ndarray) -> np.ndarray:
    """Row-wise :func:`coefficient_of_variation` of a (rows x subgroups) array with NaN padding."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, sd = np.nanmean(m, axis=1), np.nanstd(m, axis=1)
        n = (~np.isnan(m)).sum(axis=1)
        out = np.where(mean != 0, sd / np.where(mean != 0, mean, 1), np.nan)
    return np.where(n == 1, 0.0, np.where(n == 0, np.nan, out))
