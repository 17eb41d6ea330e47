"""Model states against the baselines: paired differences, bootstrap intervals and permutation tests.

A model state (zero-shot, base, fine-tuned) answers the same samples as each baseline
(:mod:`sgvalues.baselines.predictors`); :func:`compare_with_baselines` pairs them by sample and
says, per metric, by how much the state beats the baseline and whether that is more than the
questions' chance variation. What the book shows of it is in :mod:`sgvalues.report.comparison`.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

__all__ = ["COMPARED_METRICS", "compare_with_baselines"]

#: metrics compared by :func:`compare_with_baselines`, and whether higher is better
COMPARED_METRICS: dict[str, bool] = {"accuracy": True, "nmae": False, "jsd": False}


def _per_sample(df: pd.DataFrame) -> pd.DataFrame:
    from sgvalues import metrics

    scored = metrics.score_samples(df)
    dist = metrics.distribution_scores(scored)
    return pd.DataFrame({"sample_id": scored["sample_id"].astype(str).to_numpy(),
                         "question_id": scored["question_id"].astype(str).to_numpy(),
                         "accuracy": scored["correct"].to_numpy(float), "nmae": scored["nmae"].to_numpy(float),
                         "jsd": dist["jsd"].to_numpy(float)})


def _as_frames(tables, column: str) -> dict[str, pd.DataFrame]:
    if isinstance(tables, pd.DataFrame):
        if column not in tables.columns:
            raise ValueError(f"expected a mapping name -> predictions, or one table with a {column!r} column")
        return {str(k): g for k, g in tables.groupby(column, sort=False)}
    return {str(k): v for k, v in dict(tables).items()}


def compare_with_baselines(predictions, baseline_predictions, metrics: Iterable[str] = ("accuracy", "nmae", "jsd"),
                           n_boot: int = 1000, n_perm: int = 10000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Each model state against each baseline, on the same samples.

    Parameters
    ----------
    predictions : mapping state -> predictions table, or one table with a ``state`` column
        (e.g. ``{"zeroshot": ..., "base": ..., "sft": ...}``).
    baseline_predictions : mapping baseline -> predictions table, or one table with a
        ``baseline`` column (:func:`sgvalues.baselines.load_baseline_predictions`).
    metrics : which of ``accuracy``, ``nmae``, ``jsd`` (NaN-only metrics are skipped).
    n_boot, n_perm, seed, ci : bootstrap draws, permutation draws, their seed, interval coverage.

    Returns
    -------
    DataFrame
        ``state, baseline, metric, state_value, baseline_value, difference, ci_low, ci_high,
        p_value, p_holm, method, n, n_questions, higher_is_better``; ``difference = state -
        baseline``; ``p_holm`` is ``p_value`` Holm-adjusted over every row (the comparison is one
        family of tests, :func:`sgvalues.fairness.holm`); ``method`` ``exact`` or ``monte carlo``.

    Notes
    -----
    Samples are paired by ``sample_id`` (inner join). A question's subgroups share its wording,
    so questions are the unit of uncertainty: the interval is a percentile bootstrap over
    questions of the mean paired difference, and ``p_value`` the paired sign-flip permutation
    test on the per-question sums of the differences :math:`D_q = \\sum_{i \\in q} (s_i - b_i)`
    (:func:`sgvalues.fairness.question_permutation_test`, the one owner of clustered tests:
    exact up to 16 questions, seeded Monte Carlo above).
    """
    from sgvalues.fairness import holm, question_permutation_test

    states = {k: _per_sample(v) for k, v in _as_frames(predictions, "state").items()}
    bases = {k: _per_sample(v) for k, v in _as_frames(baseline_predictions, "baseline").items()}
    rows = []
    rng_seed = seed
    for state, s in states.items():
        for base, b in bases.items():
            m = s.merge(b, on="sample_id", suffixes=("_s", "_b"), validate="one_to_one")
            if m.empty:
                continue
            q_codes, q_index = pd.factorize(m["question_id_s"])
            nq = len(q_index)
            rng = np.random.default_rng(rng_seed)
            draw = rng.integers(0, nq, size=(n_boot, nq)) + nq * np.arange(n_boot)[:, None]
            weights = np.bincount(draw.ravel(), minlength=n_boot * nq).reshape(n_boot, nq).astype(float)
            for metric in metrics:
                if metric not in COMPARED_METRICS:
                    raise ValueError(f"metric {metric!r}: expected one of {list(COMPARED_METRICS)}")
                ok = m[f"{metric}_s"].notna() & m[f"{metric}_b"].notna()
                if not ok.any():
                    continue
                mm = m[ok]
                qc = q_codes[ok.to_numpy()]
                d = (mm[f"{metric}_s"] - mm[f"{metric}_b"]).to_numpy(float)
                sums = np.bincount(qc, weights=d, minlength=nq)
                cnt = np.bincount(qc, minlength=nq).astype(float)
                with np.errstate(invalid="ignore", divide="ignore"):
                    boots = (weights @ sums) / (weights @ cnt)
                boots = boots[~np.isnan(boots)]
                lo, hi = (np.quantile(boots, [(1 - ci) / 2, (1 + ci) / 2]) if boots.size else (np.nan, np.nan))
                test = question_permutation_test(mm[f"{metric}_s"], mm[f"{metric}_b"], mm["question_id_s"],
                                                 n_perm=n_perm, seed=seed)
                rows.append({"state": state, "baseline": base, "metric": metric,
                             "state_value": float(mm[f"{metric}_s"].mean()),
                             "baseline_value": float(mm[f"{metric}_b"].mean()),
                             "difference": float(d.mean()), "ci_low": float(lo), "ci_high": float(hi),
                             "p_value": float(test["p_value"]), "p_holm": float("nan"), "method": test["method"],
                             "n": int(len(mm)), "n_questions": int(test["n_questions"]),
                             "higher_is_better": COMPARED_METRICS[metric]})
    cols = ["state", "baseline", "metric", "state_value", "baseline_value", "difference", "ci_low", "ci_high",
            "p_value", "p_holm", "method", "n", "n_questions", "higher_is_better"]
    out = pd.DataFrame(rows, columns=cols)
    if len(out):
        out["p_holm"] = holm(out["p_value"])
    return out
