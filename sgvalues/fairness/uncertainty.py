"""Uncertainty of the fairness statistics: cluster bootstrap intervals over each state's own
questions, paired permutation tests at the question level, and Holm's adjustment of a family of
tests. The one owner of clustered inference: :mod:`sgvalues.baselines.comparison` calls it.

Example
-------
>>> paired_permutation_test([1, 1, 0, 1], [0, 1, 0, 0])["p_value"]
0.5
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.stats import permutation_test

from sgvalues.fairness.measures import cv_rows, nr_rows

__all__ = ["PERMUTATION_COLUMNS", "bootstrap_fairness", "holm", "paired_permutation_test", "permutation_tests",
           "question_permutation_test"]


# --------------------------------------------------------------------------------------------
# 4. uncertainty
# --------------------------------------------------------------------------------------------
def _question_matrices(scored: pd.DataFrame, questions: np.ndarray, subgroups: np.ndarray):
    """Per (question, subgroup) sums of correct, nmae and counts, as Q x G arrays."""
    qi = pd.Index(questions).get_indexer(scored["question_id"])
    gi = pd.Index(subgroups).get_indexer(scored["subgroup"])
    shape = (len(questions), len(subgroups))
    n, c, e = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    np.add.at(n, (qi, gi), 1.0)
    np.add.at(c, (qi, gi), scored["correct"].to_numpy(float))
    np.add.at(e, (qi, gi), scored["nmae"].to_numpy(float))
    return n, c, e


def _stats_from_sums(n: np.ndarray, c: np.ndarray, e: np.ndarray) -> dict[str, np.ndarray]:
    """From (B x Q) @ (Q x G) resampled sums: the six statistics for each of B draws."""
    with np.errstate(invalid="ignore", divide="ignore"):
        acc_g = c / np.where(n > 0, n, np.nan)
        nmae_g = e / np.where(n > 0, n, np.nan)
        tot = n.sum(axis=1)
        return {"accuracy": c.sum(axis=1) / tot, "nmae": e.sum(axis=1) / tot,
                "accuracy_norm_range": nr_rows(acc_g), "accuracy_cv": cv_rows(acc_g),
                "nmae_norm_range": nr_rows(nmae_g), "nmae_cv": cv_rows(nmae_g)}


def bootstrap_fairness(scored: pd.DataFrame, n_boot: int = 1000, seed: int = 0, ci: float = 0.95,
                       stratum: str | None = None, method: str = "percentile") -> pd.DataFrame:
    """Bootstrap confidence intervals over questions for accuracy, NMAE, Norm. Range and CV.

    Parameters
    ----------
    scored : DataFrame
        :func:`sgvalues.metrics.score_samples` output (one or several runs, tags, splits).
    n_boot : int
        Bootstrap draws.
    seed : int
        Seeds ``numpy.random.default_rng``; the same inputs and seed give identical intervals.
    ci : float
        Coverage of the percentile interval.
    stratum : str, optional
        Restrict to one stratum; default pools every subgroup of the split.
    method : {"percentile", "basic"}
        Percentile interval :math:`[q_{\\alpha}, q_{1-\\alpha}]` of the draws, or the basic
        (reverse percentile) interval :math:`[2\\hat\\theta - q_{1-\\alpha}, 2\\hat\\theta - q_{\\alpha}]`.

    Returns
    -------
    DataFrame
        ``run, label, split, tag, statistic, estimate, lo, hi, se, bias, n_questions, n_boot``,
        where ``tag`` is ``base``, ``sft`` or ``sft - base`` (the paired change, when both
        exist) and ``bias`` = mean of the draws - estimate.

    Notes
    -----
    A cluster bootstrap: questions are the resampling unit, because a question's answers for
    all subgroups are correlated. Each model state resamples **its own** :math:`Q` questions
    (``n_questions``: ``base``/``sft`` the few trained questions, ``zeroshot`` the whole
    split): draw :math:`b` takes :math:`Q` of them with replacement (weights :math:`w_{bq}`,
    multinomial counts) and recomputes every subgroup's score as
    :math:`\\sum_q w_{bq} s_{qg} / \\sum_q w_{bq} n_{qg}`, then the statistic. States that
    answered the same questions (base and SFT) use the *same* draws (paired resampling), so the
    change's interval accounts for the questions being shared; ``sft - base`` is only given when
    both answered the same questions. Interval: the :math:`(1 \\pm ci)/2` percentiles of the
    draws. With few questions (fewer than about 10 clusters) the draws take few distinct
    values and the interval is unreliable (:mod:`sgvalues.report.fairness` says so).

    Norm. Range and CV are spreads of noisy per-subgroup scores, so they are biased upward
    (noise alone makes subgroups look unequal) and resampling adds more noise: their percentile
    interval can lie above the estimate. The ``bias`` column shows by how much; the paired
    change ``sft - base`` is much less affected because the bias largely cancels.
    """
    if method not in ("percentile", "basic"):
        raise ValueError(f"method = {method!r}: expected 'percentile' or 'basic'")
    if n_boot < 1:
        raise ValueError(f"n_boot = {n_boot}: expected >= 1")
    if not 0 < ci < 1:
        raise ValueError(f"ci = {ci}: expected a number in (0, 1)")
    df = scored if stratum is None else scored[scored["stratum"] == stratum]
    rng = np.random.default_rng(seed)
    alpha = (1 - ci) / 2
    rows = []
    group_keys = [k for k in ("run", "label", "split") if k in df.columns]
    groups = df.groupby(group_keys, sort=True) if group_keys else [((), df)]
    for k, g in groups:
        k = k if isinstance(k, tuple) else (k,)
        tags = sorted(g["tag"].unique()) if "tag" in g.columns else ["base"]
        by_tag = {tag: (g[g["tag"] == tag] if "tag" in g.columns else g) for tag in tags}
        # each state resamples its OWN questions (the clusters it answered); states that answered
        # the same questions (base and sft) share the draws, so their change is paired
        pools: dict[tuple, np.ndarray] = {}
        draws, points, nqs = {}, {}, {}
        for tag in tags:
            questions = tuple(np.sort(by_tag[tag]["question_id"].unique()))
            if questions not in pools:
                nq = len(questions)
                # B x Q resampling counts (questions drawn with replacement)
                draw = rng.integers(0, nq, size=(n_boot, nq)) + nq * np.arange(n_boot)[:, None]
                pools[questions] = np.bincount(draw.ravel(), minlength=n_boot * nq).reshape(n_boot, nq).astype(float)
            w = pools[questions]
            subgroups = np.sort(by_tag[tag]["subgroup"].unique())
            n, c, e = _question_matrices(by_tag[tag], np.asarray(questions), subgroups)
            whole = _stats_from_sums(n.sum(0, keepdims=True), c.sum(0, keepdims=True), e.sum(0, keepdims=True))
            points[tag] = {s: float(v[0]) for s, v in whole.items()}
            draws[tag] = _stats_from_sums(w @ n, w @ c, w @ e)
            nqs[tag] = len(questions)
        if {"base", "sft"} <= set(tags) and set(by_tag["base"]["question_id"]) == set(by_tag["sft"]["question_id"]):
            points["sft - base"] = {s: points["sft"][s] - points["base"][s] for s in points["sft"]}
            draws["sft - base"] = {s: draws["sft"][s] - draws["base"][s] for s in draws["sft"]}
            nqs["sft - base"] = nqs["sft"]
        for tag in draws:
            for stat, d in draws[tag].items():
                d = d[~np.isnan(d)]
                est = points[tag][stat]
                lo, hi = (np.quantile(d, [alpha, 1 - alpha]) if d.size else (np.nan, np.nan))
                if method == "basic":
                    lo, hi = 2 * est - hi, 2 * est - lo
                rows.append({**dict(zip(group_keys, k)), "tag": tag, "statistic": stat,
                             "estimate": est, "lo": float(lo), "hi": float(hi),
                             "se": float(d.std(ddof=1)) if d.size > 1 else float("nan"),
                             "bias": float(d.mean() - est) if d.size else float("nan"),
                             "n_questions": nqs[tag], "n_boot": n_boot})
    return pd.DataFrame(rows)


def _sum_last_axis(d: np.ndarray, axis: int = -1) -> np.ndarray:
    """Sum of the (sign-flipped) paired differences: the permutation test's statistic."""
    return np.sum(d, axis=axis)


def paired_permutation_test(x: Iterable, y: Iterable, n_perm: int = 10000, seed: int = 0,
                            exact_max: int = 16, alternative: str = "two-sided") -> dict:
    """Paired sign-flip permutation test of mean(x - y) = 0 (e.g. SFT vs base correctness).

    Parameters
    ----------
    x, y : iterable of float
        Paired per-sample values (same samples, same order), e.g. ``correct`` after and before SFT.
    n_perm : int
        Monte Carlo sign flips when the exact enumeration is too large.
    seed : int
        Seed of the Monte Carlo flips.
    exact_max : int
        Enumerate all :math:`2^m` sign vectors when the number :math:`m` of non-zero differences
        is at most this.
    alternative : {"two-sided", "greater", "less"}
        ``greater``: x tends to exceed y.

    Returns
    -------
    dict
        ``statistic`` (mean difference), ``p_value``, ``n`` (pairs), ``n_nonzero``, ``method``
        (``exact`` or ``monte carlo``), ``n_perm`` (sign vectors used).

    Notes
    -----
    Under :math:`H_0` each paired difference :math:`d_i = x_i - y_i` is symmetric about 0, so
    its sign can be flipped. With :math:`T = \\bar d`, the exact p-value is the share of the
    :math:`2^m` sign vectors :math:`\\varepsilon` with :math:`|\\sum_i \\varepsilon_i d_i| \\ge
    |\\sum_i d_i|` (zero differences do not change under flips). The Monte Carlo one-sided
    p-values are :math:`(1 + \\#\\{T^* \\ge T\\}) / (1 + n_{perm})` and
    :math:`(1 + \\#\\{T^* \\le T\\}) / (1 + n_{perm})`, never 0; the two-sided one is twice the
    smaller, capped at 1 (for the exact, symmetric null this equals the share above). For 0/1
    correctness this is an exact sign (McNemar-type) test.

    Computed by ``scipy.stats.permutation_test(permutation_type="samples")`` on the non-zero
    differences (one sample: its signs are flipped), exact when :math:`m \\le` ``exact_max`` or
    :math:`2^m \\le` ``n_perm``, seeded by ``numpy.random.default_rng(seed)``.

    Examples
    --------
    >>> r = paired_permutation_test([1, 1, 1, 0], [0, 0, 0, 0])
    >>> r["p_value"], r["method"]
    (0.25, 'exact')
    """
    x, y = np.asarray(list(x), dtype=float), np.asarray(list(y), dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired_permutation_test: x has {x.size} values and y {y.size}: expected pairs")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative = {alternative!r}: expected 'two-sided', 'greater' or 'less'")
    ok = ~(np.isnan(x) | np.isnan(y))
    d = (x - y)[ok]
    n = int(d.size)
    if n == 0:
        return {"statistic": float("nan"), "p_value": float("nan"), "n": 0, "n_nonzero": 0, "method": "none", "n_perm": 0}
    nz = d[d != 0]
    m = int(nz.size)
    t_obs = float(nz.sum())
    if m == 0:
        p, method, used = 1.0, "exact", 1
    else:
        # zero differences do not move under a flip, so only the m non-zero ones are permuted;
        # scipy enumerates all 2^m sign vectors when n_resamples >= 2^m
        exact = m <= exact_max or 2**m <= n_perm
        # scipy needs two observations: a zero difference, which no flip moves, pads m = 1
        flip = nz if m > 1 else np.append(nz, 0.0)
        res = permutation_test((flip,), _sum_last_axis, permutation_type="samples", vectorized=True,
                               n_resamples=np.inf if exact else n_perm, alternative=alternative,
                               batch=max(1, min(n_perm, 4_000_000 // m)), rng=np.random.default_rng(seed))
        p = float(res.pvalue)
        method, used = ("exact", 2**m) if exact else ("monte carlo", n_perm)
    return {"statistic": t_obs / n, "p_value": min(1.0, p), "n": n, "n_nonzero": m, "method": method, "n_perm": used}


def question_permutation_test(x: Iterable, y: Iterable, questions: Iterable, n_perm: int = 10000, seed: int = 0,
                              exact_max: int = 16, alternative: str = "two-sided") -> dict:
    """Paired sign-flip permutation test at the unit of independence, the question.

    Parameters
    ----------
    x, y, n_perm, seed, exact_max, alternative
        As in :func:`paired_permutation_test` (per-sample pairs), the flips applied to the question sums.
    questions : iterable
        Each sample's question (the cluster): the samples of one question share its wording, so
        their differences are not independent.

    Returns
    -------
    dict
        ``statistic`` (mean per-sample difference), ``p_value``, ``n`` (paired samples),
        ``n_questions``, ``n_nonzero`` (questions whose sum is not 0), ``method`` (``exact`` or
        ``monte carlo``), ``n_perm`` (sign vectors used).

    Notes
    -----
    For question :math:`q` the sum of its samples' differences is :math:`D_q = \\sum_{i \\in q}
    (x_i - y_i)`. Under :math:`H_0` ("the two states are exchangeable within each question")
    each :math:`D_q` is symmetric about 0, so the :math:`2^Q` sign vectors
    :math:`\\varepsilon \\in \\{\\pm 1\\}^Q` are equally likely and the two-sided p-value is

    .. math:: p = 2^{-Q}\\, \\#\\{\\varepsilon : |\\textstyle\\sum_q \\varepsilon_q D_q| \\ge
              |\\sum_q D_q|\\}.

    A question with :math:`D_q = 0` is the same after a flip: every sign vector of the others is
    counted :math:`2^{Q-m}` times, once per sign of the :math:`Q - m` zero sums, so :math:`p` is
    also the share over the :math:`2^m` sign vectors of the :math:`m` non-zero sums, which is
    what is enumerated. Exact whenever :math:`m \\le` ``exact_max`` (so always when
    :math:`Q \\le 16`), seeded Monte Carlo above (:func:`paired_permutation_test`).

    Examples
    --------
    Issue 22's base -> SFT accuracy change, per-question sums 0, 33, 0, 49, 50, 0: only the
    all-plus and all-minus signs of the three non-zero sums reach :math:`|132|`, so
    :math:`p = 2 / 2^3 = 16 / 2^6`:

    >>> q = ["Q1"] * 1 + ["Q2"] * 33 + ["Q3"] * 1 + ["Q4"] * 49 + ["Q5"] * 50 + ["Q6"] * 1
    >>> d = [0] + [1] * 33 + [0] + [1] * 49 + [1] * 50 + [0]
    >>> r = question_permutation_test(d, [0] * len(d), q)
    >>> r["p_value"], r["n_questions"], r["n_nonzero"], r["method"]
    (0.25, 6, 3, 'exact')
    """
    x, y = np.asarray(list(x), dtype=float), np.asarray(list(y), dtype=float)
    q = pd.Series(list(questions), dtype=object)
    if not (x.shape == y.shape == (len(q),)):
        raise ValueError(f"question_permutation_test: x has {x.size} values, y {y.size} and questions {len(q)}: "
                         "expected one question per pair")
    ok = ~(np.isnan(x) | np.isnan(y)) & q.notna().to_numpy()
    d = (x - y)[ok]
    if d.size == 0:
        return {"statistic": float("nan"), "p_value": float("nan"), "n": 0, "n_questions": 0, "n_nonzero": 0,
                "method": "none", "n_perm": 0}
    sums = pd.Series(d).groupby(q[ok].to_numpy(), sort=True).sum().to_numpy(float)
    r = paired_permutation_test(sums, np.zeros(sums.size), n_perm=n_perm, seed=seed, exact_max=exact_max,
                                alternative=alternative)
    return {"statistic": float(d.mean()), "p_value": r["p_value"], "n": int(d.size), "n_questions": int(sums.size),
            "n_nonzero": r["n_nonzero"], "method": r["method"], "n_perm": r["n_perm"]}


def holm(p_values: Iterable) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (family-wise error rate).

    Notes
    -----
    With the :math:`m` non-missing p-values sorted, :math:`p_{(1)} \\le \\dots \\le p_{(m)}`,

    .. math:: \\tilde p_{(i)} = \\min\\Bigl(1, \\max_{j \\le i} (m - j + 1)\\, p_{(j)}\\Bigr);

    rejecting where :math:`\\tilde p < \\alpha` keeps the chance of any false rejection in the
    family at most :math:`\\alpha`. Missing p-values stay missing and do not count in :math:`m`.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03, 0.2]).round(3).tolist()   # 4 x 0.01, 3 x 0.03, max(2 x 0.04, .09), 0.2
    [0.04, 0.09, 0.09, 0.2]
    """
    p = np.asarray(list(p_values), dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError(f"holm: p-values must lie in [0, 1]; got {p[ok][(p[ok] < 0) | (p[ok] > 1)][:3].tolist()}")
    order = ok[np.argsort(p[ok], kind="stable")]
    m = ok.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(1.0, stepped)
    return out


#: columns of :func:`permutation_tests`
PERMUTATION_COLUMNS = ["run", "label", "split", "metric", "base", "sft", "change", "p_value", "p_holm", "n",
                       "n_questions", "n_nonzero", "method"]


def permutation_tests(scored: pd.DataFrame, n_perm: int = 10000, seed: int = 0) -> pd.DataFrame:
    """Base vs SFT accuracy and NMAE, paired by ``sample_id`` and tested over questions, for every
    run and split with both tags; the rows are one family, Holm-adjusted together.

    Returns
    -------
    DataFrame
        ``run, label, split, metric, base, sft, change, p_value, p_holm, n, n_questions,
        n_nonzero, method``: ``p_value`` from :func:`question_permutation_test` (sign flips of
        the per-question sums of SFT minus base), ``p_holm`` its :func:`holm` adjustment over
        every row of the table (a chapter's family of tests), ``n`` paired samples,
        ``n_questions`` clusters, ``n_nonzero`` questions whose sum is not 0, ``method``
        ``exact`` or ``monte carlo``.
    """
    rows = []
    for (run, label, split), g in scored.groupby(["run", "label", "split"], sort=True):
        if not {"base", "sft"} <= set(g["tag"]):
            continue
        b = g[g["tag"] == "base"].set_index("sample_id")
        s = g[g["tag"] == "sft"].set_index("sample_id")
        common = b.index.intersection(s.index)
        for metric in ("correct", "nmae"):
            r = question_permutation_test(s.loc[common, metric], b.loc[common, metric], b.loc[common, "question_id"],
                                          n_perm=n_perm, seed=seed)
            rows.append({"run": run, "label": label, "split": split,
                         "metric": "accuracy" if metric == "correct" else "nmae",
                         "base": float(b.loc[common, metric].mean()), "sft": float(s.loc[common, metric].mean()),
                         "change": r["statistic"], "p_value": r["p_value"], "p_holm": np.nan, "n": r["n"],
                         "n_questions": r["n_questions"], "n_nonzero": r["n_nonzero"], "method": r["method"]})
    out = pd.DataFrame(rows, columns=PERMUTATION_COLUMNS)
    out["p_holm"] = holm(out["p_value"]) if len(out) else out["p_holm"]
    return out
