"""Win rates over both presentation orders, their bootstrap CI, position consistency, kappa.

Pure functions of the judge's outcomes (:mod:`sgvalues.judge.verdicts`) and the per-run tables
built from them (``win_rates.csv``, ``refusals.csv``, verdict shares).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import bootstrap
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score

from sgvalues.judge.verdicts import OUTCOME_SCORE, OUTCOMES, VERDICTS

# --------------------------------------------------------------------------------------------
# win rate, position consistency, bootstrap
# --------------------------------------------------------------------------------------------


def _outcomes(values: Iterable, name: str) -> np.ndarray:
    arr = np.asarray([("unparseable" if v is None or (isinstance(v, float) and np.isnan(v)) else v)
                      for v in values], dtype=object)
    bad = sorted({str(v) for v in arr if v not in OUTCOMES})
    if bad:
        raise ValueError(f"{name}: outcome(s) {bad} not understood; expected {OUTCOMES}")
    return arr


def _pair(order1, order2) -> tuple[np.ndarray, np.ndarray]:
    o1, o2 = _outcomes(order1, "order1"), _outcomes(order2, "order2")
    if len(o1) != len(o2):
        raise ValueError(f"order1 has {len(o1)} items, order2 has {len(o2)}: expected the same items")
    return o1, o2


def paired_scores(order1: Sequence[str], order2: Sequence[str]) -> np.ndarray:
    """Per-item score of the candidate, averaged over both orders; NaN where excluded.

    An item is excluded (NaN) when the judge's verdict is unparseable in either order, so that
    every item that counts was seen in both positions and position bias cancels.

    Examples
    --------
    >>> paired_scores(["win", "tie", "unparseable"], ["loss", "win", "win"]).tolist()
    [0.5, 0.75, nan]
    """
    o1, o2 = _pair(order1, order2)
    out = np.full(len(o1), np.nan)
    for i, (a, b) in enumerate(zip(o1, o2)):
        if a != "unparseable" and b != "unparseable":
            out[i] = (OUTCOME_SCORE[a] + OUTCOME_SCORE[b]) / 2
    return out


def win_rate(order1: Sequence[str], order2: Sequence[str]) -> float:
    """Win rate of the candidate over the reference, from both presentation orders.

    Parameters
    ----------
    order1, order2 : sequence of str
        The candidate's outcomes (``"win"``, ``"tie"``, ``"loss"`` or ``"unparseable"``) on the
        same items, with the candidate shown as A (order 1) and as B (order 2).

    Returns
    -------
    float
        In [0, 1]; 0.5 means no difference. NaN when no item is usable.

    Notes
    -----
    With score :math:`s(\\text{win})=1`, :math:`s(\\text{tie})=0.5`, :math:`s(\\text{loss})=0`,

    .. math:: \\mathrm{WR} = \\frac{1}{|I|} \\sum_{i \\in I} \\frac{s(o^{(1)}_i) + s(o^{(2)}_i)}{2}

    where :math:`I` is the set of items whose verdict is parseable in *both* orders; items
    with an unparseable verdict in either order are excluded (count them with
    :func:`paired_scores`). A judge that always picks the first answer gives every item one
    win and one loss, i.e. 0.5.

    Examples
    --------
    >>> win_rate(["win", "win", "tie", "loss"], ["win", "loss", "tie", "loss"])
    0.5
    """
    s = paired_scores(order1, order2)
    return float(np.nanmean(s)) if np.isfinite(s).any() else float("nan")


def position_consistency(order1: Sequence[str], order2: Sequence[str]) -> float:
    """Share of items whose verdict survives swapping the two answers.

    Parameters
    ----------
    order1, order2 : sequence of str
        The candidate's outcomes on the same items in the two orders (see :func:`win_rate`).

    Returns
    -------
    float
        NaN when no item is parseable in both orders.

    Notes
    -----
    .. math:: \\mathrm{PC} = \\frac{1}{|I|} \\sum_{i \\in I} [o^{(1)}_i = o^{(2)}_i]

    over the items :math:`I` parseable in both orders: the candidate wins in both, loses in
    both, or ties in both. A judge that always says "A" has PC = 0 (unless it says tie).

    Examples
    --------
    >>> position_consistency(["win", "win", "tie", "unparseable"], ["win", "loss", "tie", "win"])
    0.6666666666666666
    """
    o1, o2 = _pair(order1, order2)
    ok = (o1 != "unparseable") & (o2 != "unparseable")
    if not ok.any():
        return float("nan")
    return float(np.mean(o1[ok] == o2[ok]))


def bootstrap_win_rate(order1: Sequence[str], order2: Sequence[str], n_boot: int = 1000,
                       ci: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of :func:`win_rate`, resampling items.

    Parameters
    ----------
    order1, order2 : sequence of str
        The candidate's outcomes per order (see :func:`win_rate`).
    n_boot : int
        Number of bootstrap resamples; 0 gives ``(nan, nan)``.
    ci : float
        Coverage, e.g. 0.95.
    seed : int
        Seed of ``numpy.random.default_rng``: same inputs, same interval.

    Returns
    -------
    (low, high) : tuple of float

    Notes
    -----
    Items (both orders together) are the resampling unit, so the pairing that cancels position
    bias is kept. Each resample draws :math:`|I|` usable items with replacement and takes the
    mean item score; the interval is the :math:`(1-c)/2` and :math:`(1+c)/2` quantiles.
    Computed by ``scipy.stats.bootstrap(method="percentile")`` with
    ``rng=numpy.random.default_rng(seed)``.

    Examples
    --------
    >>> lo, hi = bootstrap_win_rate(["win"] * 8 + ["loss"] * 2, ["win"] * 6 + ["loss"] * 4, seed=1)
    >>> lo < 0.7 < hi
    True
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci}: expected a coverage between 0 and 1")
    s = paired_scores(order1, order2)
    s = s[np.isfinite(s)]
    if n_boot <= 0 or len(s) == 0:
        return float("nan"), float("nan")
    if len(s) == 1:  # every resample is the one item (scipy asks for two)
        return float(s[0]), float(s[0])
    # scipy's standard error (unused here) of a single resample is 0/0
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.filterwarnings("ignore", "Degrees of freedom <= 0", RuntimeWarning)
        res = bootstrap((s,), np.mean, n_resamples=n_boot, confidence_level=ci, method="percentile",
                        vectorized=True, rng=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    return float(lo), float(hi)


# --------------------------------------------------------------------------------------------
# weighted kappa
# --------------------------------------------------------------------------------------------


def weighted_kappa(ratings_a: Sequence, ratings_b: Sequence, weights: str | None = "quadratic",
                   labels: Sequence | None = None) -> float:
    """Cohen's kappa between two raters, unweighted or with linear/quadratic weights.

    Parameters
    ----------
    ratings_a, ratings_b : sequence
        Ratings of the same items by two raters.
    weights : {"quadratic", "linear", None}
        Disagreement weights by distance between label positions.
    labels : sequence, optional
        The ordered label set; default the sorted union of both raters' labels. Items whose
        rating is not in ``labels`` are dropped (as in scikit-learn). For verdicts use an
        ordinal coding such as B=0, tie=1, A=2 so that tie lies between the two answers.

    Returns
    -------
    float
        NaN when undefined (no item, or every rating in one label).

    Notes
    -----
    With the confusion matrix :math:`O_{ij}` (rater a gave label i, rater b label j), the
    chance matrix :math:`E_{ij} = O_{i\\cdot} O_{\\cdot j} / N` and weights
    :math:`w_{ij} = |i-j|` (linear), :math:`(i-j)^2` (quadratic) or :math:`[i \\ne j]`,

    .. math:: \\kappa_w = 1 - \\frac{\\sum_{ij} w_{ij} O_{ij}}{\\sum_{ij} w_{ij} E_{ij}}

    computed by ``sklearn.metrics.cohen_kappa_score(a, b, labels=labels, weights=...)`` on the
    items whose two ratings are both in ``labels``.

    Examples
    --------
    >>> weighted_kappa([0, 1, 2, 2], [0, 1, 2, 2])
    1.0
    >>> weighted_kappa([0, 1, 2, 0], [0, 2, 2, 1], weights="linear")
    0.5
    """
    if weights not in ("quadratic", "linear", None):
        raise ValueError(f"weights={weights!r}: expected 'quadratic', 'linear' or None")
    a, b = np.asarray(list(ratings_a), dtype=object), np.asarray(list(ratings_b), dtype=object)
    if len(a) != len(b):
        raise ValueError(f"ratings_a has {len(a)} items, ratings_b {len(b)}: expected the same items")
    if labels is None:
        labels = sorted(set(a.tolist()) | set(b.tolist()))
    labels = list(labels)
    known = set(labels)
    keep = [(x, y) for x, y in zip(a.tolist(), b.tolist()) if x in known and y in known]
    if not keep:
        return float("nan")
    with warnings.catch_warnings():  # one label only: undefined, NaN (documented above)
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)  # labels are passed
        return float(cohen_kappa_score([x for x, _ in keep], [y for _, y in keep], labels=labels,
                                       weights=weights, replace_undefined_by=np.nan))


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


def _orders(group: pd.DataFrame) -> tuple[list[str], list[str]]:
    wide = group.pivot_table(index="sample_id", columns="order", values="outcome", aggfunc="first")
    wide = wide.reindex(columns=[1, 2])
    return wide[1].fillna("unparseable").tolist(), wide[2].fillna("unparseable").tolist()


def soft_win_rate(probs1: Sequence[dict | None], probs2: Sequence[dict | None]) -> float:
    """Win rate from the judge's verdict probabilities (``logprob`` mode), both orders averaged.

    Parameters
    ----------
    probs1, probs2 : sequence of dict or None
        Per item, the judge's probabilities of ``"A"``, ``"B"``, ``"tie"`` with the candidate
        shown as A (order 1) and as B (order 2); ``None`` where not available.

    Returns
    -------
    float
        NaN when no item has probabilities in both orders.

    Notes
    -----
    The expected score of the candidate in each order, renormalised over the three verdicts,

    .. math:: \\tilde s_i = \\tfrac12\\left[p^{(1)}_i(A) + \\tfrac12 p^{(1)}_i(\\text{tie})
              + p^{(2)}_i(B) + \\tfrac12 p^{(2)}_i(\\text{tie})\\right],

    averaged over items. Unlike :func:`win_rate` it registers a judge that leans towards the
    candidate without changing its argmax, e.g. a tiny judge that always says "A" but with
    more confidence when the candidate is A.

    Examples
    --------
    >>> soft_win_rate([{"A": .9, "B": .1, "tie": 0}], [{"A": .7, "B": .3, "tie": 0}])
    0.6
    """
    scores = [s for s in soft_scores(probs1, probs2) if s is not None]
    return float(np.mean(scores)) if scores else float("nan")


def soft_scores(probs1: Sequence[dict | None], probs2: Sequence[dict | None]) -> list[float | None]:
    """Per item, the candidate's expected score averaged over both orders (:func:`soft_win_rate`'s
    :math:`\\tilde s_i`); ``None`` where an order has no probabilities.

    >>> soft_scores([{"A": .9, "B": .1, "tie": 0}, None], [{"A": .7, "B": .3, "tie": 0}, {"A": 1}])
    [0.6, None]
    """
    if len(probs1) != len(probs2):
        raise ValueError(f"probs1 has {len(probs1)} items, probs2 has {len(probs2)}: expected the same items")
    scores: list[float | None] = []
    for p1, p2 in zip(probs1, probs2):
        s: float | None = 0.0
        for p, mine in ((p1, "A"), (p2, "B")):
            total = sum(float(p.get(k, 0.0)) for k in ("A", "B", "tie")) if isinstance(p, dict) else 0.0
            if total <= 0:
                s = None
                break
            s += (float(p.get(mine, 0.0)) + 0.5 * float(p.get("tie", 0.0))) / total / 2
        scores.append(None if s is None else round(s, 12))
    return scores


#: half-width of the band around 0.5 in which a position-debiased verdict is a tie
TIE_BAND = 0.05


def debiased_verdicts(probs1: Sequence[dict | None], probs2: Sequence[dict | None],
                      tie_band: float = TIE_BAND) -> list[str]:
    """Position-debiased verdict per item from the judge's verdict probabilities in both orders.

    Parameters
    ----------
    probs1, probs2 : as for :func:`soft_win_rate`.
    tie_band : float
        Half-width of the tie band around 0.5.

    Returns
    -------
    list of str
        ``"win"`` where :math:`\\tilde s_i > 0.5 + b`, ``"loss"`` where :math:`\\tilde s_i < 0.5 - b`,
        ``"tie"`` in between, ``"unparseable"`` where an order has no probabilities.

    Notes
    -----
    :math:`\\tilde s_i` (:func:`soft_scores`) averages the probability that the candidate wins
    over the two presentation orders, so a judge that prefers the first position by the same
    margin in both orders cancels out, while any lean towards one answer remains. A judge that
    always says "A" has argmax verdicts win/loss on every item (position consistency 0), yet its
    debiased verdicts still rank the pairs on which it was surer when the candidate was first.

    Examples
    --------
    >>> debiased_verdicts([{"A": .9, "B": .1, "tie": 0}, {"A": .6, "B": .4, "tie": 0}],
    ...                   [{"A": .7, "B": .3, "tie": 0}, {"A": .62, "B": .38, "tie": 0}])
    ['win', 'tie']
    """
    if not 0 <= tie_band < 0.5:
        raise ValueError(f"tie_band = {tie_band}: expected a value in [0, 0.5)")
    out = []
    for s in soft_scores(probs1, probs2):
        out.append("unparseable" if s is None else "win" if s > 0.5 + tie_band
                   else "loss" if s < 0.5 - tie_band else "tie")
    return out


def _probs(raw) -> dict | None:
    if not isinstance(raw, str) or not raw.startswith("{"):
        return None
    try:
        d = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return d if isinstance(d, dict) and {"A", "B"} <= set(d) else None


def win_rate_table(verdicts: pd.DataFrame, n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Win rate with bootstrap CI and position consistency per (candidate, dimension).

    Parameters
    ----------
    verdicts : pandas.DataFrame
        The verdicts table (needs ``candidate, dimension, sample_id, order, outcome``).
    n_boot, seed, ci
        Passed to :func:`bootstrap_win_rate`.

    Returns
    -------
    pandas.DataFrame
        ``candidate, dimension, n_items, n_used, n_unparseable_items, win_rate, ci_low,
        ci_high, position_consistency, wins, ties, losses`` (the last three count single-order
        outcomes on used items), and ``soft_win_rate`` (:func:`soft_win_rate`, from the judge's
        probabilities in ``raw_output``; NaN in ``generate`` mode), and from the same
        probabilities the position-debiased verdicts (:func:`debiased_verdicts`, tie band
        :data:`TIE_BAND`): ``debiased_win_rate`` (win 1, tie 0.5), ``debiased_decided`` (share of
        items with a win or loss) and ``debiased_agreement`` (share of the items whose argmax
        verdict survived the swap on which the debiased verdict agrees with it; NaN when none did).

    Examples
    --------
    >>> v = pd.DataFrame({"candidate": "base", "dimension": "overall", "sample_id": ["s1", "s1", "s2", "s2"],
    ...                   "order": [1, 2, 1, 2], "outcome": ["win", "loss", "win", "win"]})
    >>> row = win_rate_table(v, n_boot=0).iloc[0]
    >>> float(row["win_rate"]), float(row["position_consistency"]), int(row["wins"])
    (0.75, 0.5, 3)
    """
    need = {"candidate", "dimension", "sample_id", "order", "outcome"}
    if missing := need - set(verdicts.columns):
        raise ValueError(f"verdicts: missing column(s) {sorted(missing)}")
    rows = []
    for (cand, dim), g in verdicts.groupby(["candidate", "dimension"], sort=True):
        o1, o2 = _orders(g)
        s = paired_scores(o1, o2)
        used = np.isfinite(s)
        lo, hi = bootstrap_win_rate(o1, o2, n_boot=n_boot, ci=ci, seed=seed)
        both = [o for o, u in zip(o1, used) if u] + [o for o, u in zip(o2, used) if u]
        rows.append({"candidate": cand, "dimension": dim, "n_items": len(s), "n_used": int(used.sum()),
                     "n_unparseable_items": int((~used).sum()), "win_rate": win_rate(o1, o2),
                     "ci_low": lo, "ci_high": hi, "position_consistency": position_consistency(o1, o2),
                     "wins": both.count("win"), "ties": both.count("tie"), "losses": both.count("loss"),
                     "soft_win_rate": _soft(g), **_debiased(g, o1, o2)})
    return pd.DataFrame(rows, columns=["candidate", "dimension", "n_items", "n_used", "n_unparseable_items",
                                       "win_rate", "ci_low", "ci_high", "position_consistency",
                                       "wins", "ties", "losses", "soft_win_rate", "debiased_win_rate",
                                       "debiased_decided", "debiased_agreement"])


def _wide_probs(group: pd.DataFrame):
    """(probs in order 1, probs in order 2), aligned with :func:`_orders`' items; None if absent."""
    if "raw_output" not in group.columns:
        return None
    g = group.assign(_p=group["raw_output"].map(_probs))
    wide = g.pivot_table(index="sample_id", columns="order", values="_p", aggfunc="first")
    if 1 not in wide.columns or 2 not in wide.columns:
        return None
    wide = wide.reindex(sorted(group["sample_id"].unique()))
    return wide[1].tolist(), wide[2].tolist()


def _soft(group: pd.DataFrame) -> float:
    wide = _wide_probs(group)
    return float("nan") if wide is None else soft_win_rate(*wide)


def _debiased(group: pd.DataFrame, o1, o2) -> dict:
    nan = float("nan")
    wide = _wide_probs(group)
    if wide is None:
        return {"debiased_win_rate": nan, "debiased_decided": nan, "debiased_agreement": nan}
    verdicts = np.asarray(debiased_verdicts(*wide), dtype=object)
    ok = verdicts != "unparseable"
    if not ok.any():
        return {"debiased_win_rate": nan, "debiased_decided": nan, "debiased_agreement": nan}
    score = {"win": 1.0, "tie": 0.5, "loss": 0.0}
    a1, a2 = _pair(o1, o2)
    consistent = ok & (a1 == a2) & (a1 != "unparseable")
    return {"debiased_win_rate": float(np.mean([score[v] for v in verdicts[ok]])),
            "debiased_decided": float(np.mean(np.isin(verdicts[ok], ["win", "loss"]))),
            "debiased_agreement": float(np.mean(verdicts[consistent] == a1[consistent])) if consistent.any() else nan}


def refusal_table(generations: pd.DataFrame) -> pd.DataFrame:
    """Refusal rate per role and theme, plus ``theme = "all"`` per role.

    Examples
    --------
    >>> g = pd.DataFrame({"role": ["candidate_base"] * 3, "theme": ["T1", "T1", "T2"],
    ...                   "refused": [True, False, False]})
    >>> refusal_table(g)[["theme", "n", "n_refused"]].to_dict("records")[:2]
    [{'theme': 'all', 'n': 3, 'n_refused': 1}, {'theme': 'T1', 'n': 2, 'n_refused': 1}]
    """
    if missing := {"role", "theme", "refused"} - set(generations.columns):
        raise ValueError(f"generations: missing column(s) {sorted(missing)}")
    g = generations.assign(refused=generations["refused"].astype(bool))
    per = g.groupby(["role", "theme"], sort=True)["refused"].agg(n="size", n_refused="sum").reset_index()
    tot = g.groupby("role", sort=True)["refused"].agg(n="size", n_refused="sum").reset_index().assign(theme="all")
    out = pd.concat([tot, per], ignore_index=True)[["role", "theme", "n", "n_refused"]]
    out["n"] = out["n"].astype(int)
    out["n_refused"] = out["n_refused"].astype(int)
    out["refusal_rate"] = out["n_refused"] / out["n"]
    return out


def verdict_shares(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Share of each verdict per (candidate, dimension, order): the judge's position bias.

    An unbiased judge says "A" about as often in order 1 as in order 2 relative to the
    candidate; a judge that says "A" in most rows of *both* orders prefers the first slot.

    Examples
    --------
    >>> v = pd.DataFrame({"candidate": "base", "dimension": "overall", "order": [1, 1, 2, 2],
    ...                   "verdict": ["A", "A", "A", "tie"]})
    >>> verdict_shares(v)[["order", "A", "tie"]].to_dict("records")
    [{'order': 1, 'A': 1.0, 'tie': 0.0}, {'order': 2, 'A': 0.5, 'tie': 0.5}]
    """
    counts = (verdicts.groupby(["candidate", "dimension", "order"])["verdict"].value_counts(normalize=True)
              .unstack(fill_value=0.0).reindex(columns=list(VERDICTS), fill_value=0.0))
    counts.columns.name = None
    return counts.reset_index()


