"""The survey-noise reference: how often a fresh sample of each subgroup keeps its modal answer.

A subgroup of 30 respondents can have another mode in a fresh sample. Resampling each
subgroup's ``n_valid`` answers from its observed distribution (a multinomial draw: the bootstrap
of respondents for one question) ``n_boot`` times estimates, per sample, the probability that a
resampled mode equals the observed one, or any of its tied modes (:func:`noise_per_sample`). Its mean
(:func:`noise_reference`) is the plug-in accuracy of a predictor that knew every subgroup's true
answer distribution. It is an estimate, not a hard ceiling: a predictor that pools information
across subgroups (``marginal_product``, :mod:`sgvalues.baselines.predictors`) can exceed it, by
chance or by smoothing.

Weighted data (``prepare --weighted``): ``distribution`` then holds weighted shares while
``n_valid`` counts respondents. The noise reference resamples ``n_valid`` answers from the
weighted shares, which ignores the design effect: Kish's effective size
:math:`n_{eff} = (\\sum w)^2 / \\sum w^2 \\le n` would give a noisier mode, so with weights the
reference is optimistic (too high). A sample that carries an ``n_effective`` field is resampled
with that size instead.
"""

from __future__ import annotations

import json
import zlib
from typing import Sequence

import numpy as np
import pandas as pd

from sgvalues.tables import as_records, code_shares, targets_json

__all__ = ["NOISE_COLUMNS", "noise_per_sample", "noise_reference"]

#: columns of :func:`noise_reference`
NOISE_COLUMNS = ["split", "stratum", "estimate", "lo", "hi", "ci", "n_samples", "n_boot"]


def _resample_hits(sample_id: str, shares: np.ndarray, n: int, target_pos, n_boot: int,
                   seed: int) -> np.ndarray:
    """``n_boot`` booleans: is a resampled mode (ties -> lowest code) one of the observed tied modes
    (positions ``target_pos``, an int or a sequence), i.e. would the scorer count it correct?"""
    rng = np.random.default_rng([seed, zlib.crc32(sample_id.encode())])
    p = np.clip(shares, 0.0, None)
    p = p / p.sum()
    counts = rng.multinomial(n, p, size=n_boot)
    # argmax takes the first maximum: the lowest code
    return np.isin(counts.argmax(axis=1), np.atleast_1d(target_pos))


def _noise_hits(samples, n_boot: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    recs = as_records(samples)
    hits = np.zeros((len(recs), n_boot), dtype=bool)
    rows = []
    for i, s in enumerate(recs):
        shares = code_shares(s["distribution"]) or {}
        codes = sorted(shares)
        if int(s["target"]) not in shares:
            raise ValueError(f"sample {s['sample_id']}: target {s['target']} is not among the codes of its "
                             f"distribution {codes}")
        n = s.get("n_effective")
        n = int(round(float(n))) if n is not None and not pd.isna(n) else int(s["n_valid"])
        if n < 1:
            raise ValueError(f"sample {s['sample_id']}: n_valid = {n}; expected at least one answer")
        # every tied modal code counts, as in metrics.score_samples (a sample without `targets`: the target)
        tied = [c for c in json.loads(targets_json(s)) if c in shares]
        hits[i] = _resample_hits(str(s["sample_id"]), np.array([shares[c] for c in codes]), n,
                                 [codes.index(c) for c in tied], n_boot, seed)
        rows.append({"sample_id": s["sample_id"], "split": s.get("split", ""), "question_id": s["question_id"],
                     "stratum": s.get("stratum", ""), "subgroup": s["subgroup"], "n_valid": n})
    return pd.DataFrame(rows), hits


def noise_per_sample(samples, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per sample: the bootstrap probability that a resampled mode equals the observed mode.

    Returns ``sample_id, split, question_id, stratum, subgroup, n_valid, p_same_mode``.
    Each sample's draws are seeded by ``(seed, sample_id)``, so a subset gives the same values.
    """
    table, hits = _noise_hits(samples, n_boot, seed)
    return table.assign(p_same_mode=hits.mean(axis=1) if len(table) else [])


def noise_reference(samples, n_boot: int = 200, seed: int = 0, ci: float = 0.90,
                    by: Sequence[str] = ("split", "stratum")) -> pd.DataFrame:
    """The survey-noise reference: how often a fresh sample of each subgroup keeps its mode.

    Parameters
    ----------
    samples : records or DataFrame
        Samples (``sgvalues.split.load_samples``) with ``sample_id``, ``subgroup``, ``target``
        (the observed mode), ``distribution`` and ``n_valid``; any subset, e.g. the samples a
        model was evaluated on.
    n_boot : int
        Bootstrap draws per sample (at least 200 recommended).
    seed : int
        Seeds each sample's draws together with its id.
    ci : float
        Coverage of the interval.
    by : columns
        Groups; a row with every ``by`` column but the first set to ``"all"`` pools the groups
        of each first-column value (e.g. every stratum of a split).

    Returns
    -------
    DataFrame
        :data:`NOISE_COLUMNS`: ``estimate`` (mean over draws and samples), ``lo``/``hi`` (the
        :math:`(1 \\mp ci)/2` quantiles of the per-draw accuracy), ``n_samples``, ``n_boot``.

    Notes
    -----
    For sample :math:`i` with observed shares :math:`\\hat p_i`, :math:`n_i` valid answers and
    observed mode :math:`m_i`, draw :math:`b` takes counts :math:`C^{(b)}_i \\sim
    \\mathrm{Multinomial}(n_i, \\hat p_i)` (resampling the subgroup's respondents for one
    question) with mode :math:`m^{(b)}_i` (ties to the lowest code, as in
    :mod:`sgvalues.modal`). The accuracy of draw :math:`b` over a group :math:`G` is
    :math:`A_b = |G|^{-1} \\sum_{i \\in G} [m^{(b)}_i = m_i]`; the estimate is
    :math:`\\bar A`, the interval the quantiles of :math:`A_b`. It is the plug-in accuracy of a
    predictor that knows each subgroup's true distribution; an estimate, not a ceiling.
    Weighted data: see the module notes (Kish effective n).

    Examples
    --------
    >>> s = [{"sample_id": "a", "split": "ood", "question_id": "Q1", "stratum": "x", "subgroup": "x:a",
    ...       "target": 1, "distribution": {"1": 1.0, "2": 0.0}, "n_valid": 30}]
    >>> noise_reference(s)[["stratum", "estimate", "lo", "hi"]].to_dict("records")[0]
    {'stratum': 'all', 'estimate': 1.0, 'lo': 1.0, 'hi': 1.0}
    """
    if n_boot < 1:
        raise ValueError(f"n_boot = {n_boot}: expected >= 1")
    if not 0 < ci < 1:
        raise ValueError(f"ci = {ci}: expected a number in (0, 1)")
    table, hits = _noise_hits(samples, n_boot, seed)
    by = list(by)
    if table.empty:
        return pd.DataFrame(columns=NOISE_COLUMNS)
    alpha = (1 - ci) / 2
    views = []
    if len(by) > 1:
        views.append(table.assign(**{c: "all" for c in by[1:]}))
    views.append(table)
    rows = []
    for view in views:
        for key, g in view.groupby(by, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            acc = hits[g.index.to_numpy()].mean(axis=0)
            lo, hi = np.quantile(acc, [alpha, 1 - alpha])
            rows.append({**dict(zip(by, key)), "estimate": float(acc.mean()), "lo": float(lo), "hi": float(hi),
                         "ci": ci, "n_samples": int(len(g)), "n_boot": int(n_boot)})
    # the group columns asked for, then the statistics (NOISE_COLUMNS after its default groups)
    cols = by + [c for c in NOISE_COLUMNS if c not in ("split", "stratum")]
    return pd.DataFrame(rows)[cols]
