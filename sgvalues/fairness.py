"""Is the model equally good for every subgroup? Fairness statistics, per-attribute bias, uncertainty.

Every statistic here starts from the **predictions tables** of the runs present
(``runs/<run>/predictions/<tag>_<split>.csv``, tag ``base`` or ``sft``) gathered by
:func:`sgvalues.evaluate.load_run_predictions`, scored per sample by
:func:`sgvalues.metrics.score_samples` (an invalid or refused answer is wrong and has normalised
error 1), then:

1. per-subgroup accuracy and NMAE (:func:`subgroup_scores`) and their spread across subgroups,
   the **normalised range** and the **coefficient of variation** (:func:`fairness_table`);
2. per-attribute bias: each persona level (e.g. ``Female``, ``65+``) scored over every subgroup
   that contains it, the gap between the best and worst level of each attribute, and which
   levels a model favours (:func:`level_scores`, :func:`attribute_gaps`, :func:`favoured_levels`);
3. base vs SFT: the paper's ablation table and the "fairness paradox" figure
   (:func:`ablation_table`, :func:`plot_fairness_paradox`);
4. uncertainty: bootstrap confidence intervals over questions (:func:`bootstrap_fairness`) and
   a paired sign-flip permutation test of base vs SFT (:func:`paired_permutation_test`).

Example
-------
>>> normalized_range([0.5, 0.4, 0.3])
0.4
>>> round(coefficient_of_variation([0.5, 0.4, 0.3]), 4)
0.2041
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import permutation_test, variation

from sgvalues.evaluate import load_run_predictions
from sgvalues.subgroups import parse_levels

__all__ = [
    "ATTRIBUTES",
    "FairnessWarning",
    "normalized_range",
    "coefficient_of_variation",
    "gather_predictions",
    "run_inventory",
    "sample_levels",
    "subgroup_scores",
    "fairness_table",
    "level_scores",
    "attribute_gaps",
    "favoured_levels",
    "ablation_table",
    "published_ablation",
    "format_ablation",
    "bootstrap_fairness",
    "paired_permutation_test",
    "permutation_tests",
]

#: persona attributes (the survey's axes), in the book's order
ATTRIBUTES: tuple[str, ...] = ("age_group", "sex", "ethnicity", "religion")
_KEYS = ["run", "label", "tag", "split"]
_STAT_NAMES = {
    "accuracy_norm_range": "Acc Norm. Range",
    "accuracy_cv": "Acc CV",
    "nmae_norm_range": "NMAE Norm. Range",
    "nmae_cv": "NMAE CV",
}


class FairnessWarning(RuntimeWarning):
    """A fairness statistic is undefined for these values (zero max or zero mean) and is NaN."""


# --------------------------------------------------------------------------------------------
# 1. the two spread statistics
# --------------------------------------------------------------------------------------------
def _clean(values: Iterable) -> np.ndarray:
    v = np.asarray(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values, dtype=float)
    return v[~np.isnan(v)]


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
    v = _clean(values)
    if v.size == 0:
        return float("nan")
    if v.size == 1:
        return 0.0
    hi = v.max()
    if hi == 0:
        warnings.warn("normalized_range: the maximum score is 0, so the range cannot be normalised; "
                      "returning NaN", FairnessWarning, stacklevel=2)
        return float("nan")
    return float((hi - v.min()) / hi)


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
    v = _clean(values)
    if v.size == 0:
        return float("nan")
    if v.size == 1:
        return 0.0
    mean = v.mean()
    if mean == 0:
        warnings.warn("coefficient_of_variation: the mean score is 0; returning NaN", FairnessWarning, stacklevel=2)
        return float("nan")
    return float(variation(v, ddof=0))


def _nr_rows(m: np.ndarray) -> np.ndarray:
    """Row-wise :func:`normalized_range` of a (rows x subgroups) array with NaN padding."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        hi, lo = np.nanmax(m, axis=1), np.nanmin(m, axis=1)
        n = (~np.isnan(m)).sum(axis=1)
        out = np.where(hi > 0, (hi - lo) / np.where(hi > 0, hi, 1), np.nan)
    return np.where(n == 1, 0.0, np.where(n == 0, np.nan, out))


def _cv_rows(m: np.ndarray) -> np.ndarray:
    """Row-wise :func:`coefficient_of_variation` of a (rows x subgroups) array with NaN padding."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, sd = np.nanmean(m, axis=1), np.nanstd(m, axis=1)
        n = (~np.isnan(m)).sum(axis=1)
        out = np.where(mean != 0, sd / np.where(mean != 0, mean, 1), np.nan)
    return np.where(n == 1, 0.0, np.where(n == 0, np.nan, out))


# --------------------------------------------------------------------------------------------
# loading and per-sample scores
# --------------------------------------------------------------------------------------------
def gather_predictions(run_dir: str | Path, runs_root: str | Path = "runs") -> tuple[pd.DataFrame, Path]:
    """Predictions of every run beside this one: :func:`load_run_predictions` of ``runs_root``,
    or of ``run_dir``'s parent when ``run_dir`` lies elsewhere (e.g. a temporary run), so the
    current run is always included. Returns ``(predictions, root used)``."""
    run_dir, root = Path(run_dir).resolve(), Path(runs_root).resolve()
    if run_dir.parent != root:
        root = run_dir.parent
    return load_run_predictions(root), root


def run_inventory(predictions: pd.DataFrame) -> pd.DataFrame:
    """What is there: one row per ``run, label, tag, split`` with ``n_samples, n_questions,
    n_subgroups`` and ``invalid_rate`` (share of answers not ``ok``: refused, unparseable, failed).

    Examples
    --------
    >>> p = pd.DataFrame({"run": "r", "label": "M", "tag": "base", "split": "ood", "question_id": ["Q1", "Q2"],
    ...                   "subgroup": "s:a", "prediction": [1, None], "status": ["ok", "refused"]})
    >>> run_inventory(p)[["n_samples", "n_questions", "invalid_rate"]].to_dict("records")
    [{'n_samples': 2, 'n_questions': 2, 'invalid_rate': 0.5}]
    """
    cols = ["run", "label", "tag", "split", "n_samples", "n_questions", "n_subgroups", "invalid_rate"]
    if predictions.empty:
        return pd.DataFrame(columns=cols)
    from sgvalues.metrics import valid_predictions

    df = predictions.assign(_bad=valid_predictions(predictions).isna().astype(float).to_numpy())
    out = (df.groupby(["run", "label", "tag", "split"], sort=True)
           .agg(n_samples=("question_id", "size"), n_questions=("question_id", "nunique"),
                n_subgroups=("subgroup", "nunique"), invalid_rate=("_bad", "mean"))
           .reset_index())
    return out[cols]


def sample_levels(scored: pd.DataFrame) -> pd.DataFrame:
    """One row per (sample, persona level it carries): the input columns plus ``attribute, level``.

    Levels come from the ``levels`` JSON column (axis -> level) when present, otherwise from the
    subgroup id, so an OOD pair subgroup such as ``age_group_x_religion:25-34|Muslim`` counts
    toward ``age_group = 25-34`` and ``religion = Muslim``.

    Examples
    --------
    >>> s = pd.DataFrame({"subgroup": ["age_group_x_religion:25-34|Muslim"], "correct": [1.0]})
    >>> sample_levels(s)[["attribute", "level"]].to_dict("records")
    [{'attribute': 'age_group', 'level': '25-34'}, {'attribute': 'religion', 'level': 'Muslim'}]
    """
    def as_key(v):
        if isinstance(v, dict):
            return json.dumps(v, sort_keys=True)
        return v if isinstance(v, str) else ""

    lv = scored["levels"].map(as_key) if "levels" in scored.columns else pd.Series("", index=scored.index)
    # parse each distinct (subgroup, levels) once into a small table, then join it back
    codes, uniques = pd.factorize(pd.MultiIndex.from_arrays([scored["subgroup"].astype(str).to_numpy(), lv.to_numpy()]))
    table = pd.DataFrame([(c, a, v) for c, (sg, lvl) in enumerate(uniques) for a, v in parse_levels(sg, lvl).items()],
                         columns=["_code", "attribute", "level"])
    out = scored.reset_index(drop=True).assign(_code=codes, _pos=np.arange(len(scored)))
    out = out.merge(table, on="_code", how="inner").sort_values("_pos", kind="stable")
    return out.drop(columns=["_code", "_pos"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# per-subgroup scores and their spread
# --------------------------------------------------------------------------------------------
def _keys(df: pd.DataFrame) -> list[str]:
    return [k for k in _KEYS if k in df.columns]


def subgroup_scores(scored: pd.DataFrame) -> pd.DataFrame:
    """Per-subgroup accuracy and NMAE: ``run, label, tag, split, stratum, subgroup, n_samples,
    accuracy, nmae`` (means of :func:`sgvalues.metrics.score_samples`' columns over the subgroup's samples).

    Examples
    --------
    >>> s = pd.DataFrame({"tag": ["base"] * 3, "split": ["ood"] * 3, "stratum": ["x"] * 3,
    ...                   "subgroup": ["x:a", "x:a", "x:b"], "correct": [1.0, 0.0, 1.0], "nmae": [0, .5, 0]})
    >>> subgroup_scores(s)[["subgroup", "n_samples", "accuracy", "nmae"]].to_dict("records")
    [{'subgroup': 'x:a', 'n_samples': 2, 'accuracy': 0.5, 'nmae': 0.25}, {'subgroup': 'x:b', 'n_samples': 1, 'accuracy': 1.0, 'nmae': 0.0}]
    """
    df = scored if "stratum" in scored.columns else scored.assign(stratum=scored["subgroup"].str.partition(":")[0])
    keys = _keys(df) + ["stratum", "subgroup"]
    return (df.groupby(keys, sort=True)
            .agg(n_samples=("correct", "size"), accuracy=("correct", "mean"), nmae=("nmae", "mean"))
            .reset_index())


def fairness_table(sub_scores: pd.DataFrame, per_stratum: bool = True) -> pd.DataFrame:
    """Spread of per-subgroup scores: Norm. Range and CV of accuracy and of NMAE.

    One row per ``run, label, tag, split, stratum, metric`` (metric ``accuracy`` or ``nmae``),
    where ``stratum = "all"`` pools every subgroup of the split (the paper's headline numbers)
    and, with ``per_stratum``, each stratum separately. Columns: ``mean`` (unweighted mean over
    subgroups), ``norm_range``, ``cv``, ``n_subgroups``, ``best_subgroup``, ``worst_subgroup``
    (highest accuracy / lowest NMAE is best).

    Examples
    --------
    >>> s = pd.DataFrame({"tag": "base", "split": "ood", "stratum": "x", "subgroup": ["x:a", "x:b"],
    ...                   "accuracy": [1.0, 0.75], "nmae": [0.25, 0.5]})
    >>> fairness_table(s, per_stratum=False)[["metric", "norm_range", "best_subgroup"]].to_dict("records")
    [{'metric': 'accuracy', 'norm_range': 0.25, 'best_subgroup': 'x:a'}, {'metric': 'nmae', 'norm_range': 0.5, 'best_subgroup': 'x:a'}]
    """
    keys = _keys(sub_scores)
    views = [sub_scores.assign(stratum="all")]
    if per_stratum:
        views.append(sub_scores)
    rows = []
    for view in views:
        for k, g in view.groupby(keys + ["stratum"], sort=False):
            for metric, higher_better in (("accuracy", True), ("nmae", False)):
                v = g[metric].to_numpy(float)
                order = g.sort_values([metric, "subgroup"], ascending=[not higher_better, True])["subgroup"]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FairnessWarning)  # NaN is documented in the table
                    nr, cv = normalized_range(v), coefficient_of_variation(v)
                rows.append(dict(zip(keys + ["stratum"], k if isinstance(k, tuple) else (k,)), metric=metric,
                                 mean=float(np.nanmean(v)), norm_range=nr, cv=cv, n_subgroups=int(len(v)),
                                 best_subgroup=order.iloc[0], worst_subgroup=order.iloc[-1]))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# 2. per-attribute bias
# --------------------------------------------------------------------------------------------
def level_scores(scored: pd.DataFrame, pool_splits: bool = False) -> pd.DataFrame:
    """Accuracy and NMAE of every persona level, pooled over the subgroups that contain it.

    Returns ``run, label, tag, split, attribute, level, n_subgroups, n_samples, accuracy, nmae``;
    levels of the four survey axes are ordered as in :data:`sgvalues.subgroups.AXES`. With
    ``pool_splits`` the train and OOD samples are pooled (``split = "all"``): ``sex`` only
    appears in train strata, so a full persona profile needs both.

    Notes
    -----
    For level :math:`\\ell` of attribute :math:`a`, with :math:`S_\\ell` the samples whose subgroup
    has :math:`a = \\ell` (a pair subgroup counts toward both its levels),
    :math:`\\mathrm{acc}_\\ell = |S_\\ell|^{-1} \\sum_{i \\in S_\\ell} \\mathrm{correct}_i`.
    """
    long = sample_levels(scored.assign(split="all") if pool_splits else scored)
    keys = _keys(long) + ["attribute", "level"]
    out = (long.groupby(keys, sort=False)
           .agg(n_subgroups=("subgroup", "nunique"), n_samples=("correct", "size"),
                accuracy=("correct", "mean"), nmae=("nmae", "mean"))
           .reset_index())
    return _order_levels(out)


def _order_levels(df: pd.DataFrame) -> pd.DataFrame:
    try:
        from sgvalues.subgroups import AXES
    except ImportError:  # pragma: no cover - the subgroups module ships with the package
        AXES = {}
    a_rank = {a: i for i, a in enumerate(ATTRIBUTES)}
    l_rank = {(a, lvl): i for a, ls in AXES.items() for i, lvl in enumerate(ls)}
    df = df.assign(_a=df["attribute"].map(lambda a: a_rank.get(a, 99)),
                   _l=[l_rank.get((a, lvl), 99) for a, lvl in zip(df["attribute"], df["level"])])
    keys = _keys(df)
    return df.sort_values(keys + ["_a", "_l", "level"]).drop(columns=["_a", "_l"]).reset_index(drop=True)


def attribute_gaps(levels: pd.DataFrame) -> pd.DataFrame:
    """Best and worst level of each attribute, and the gap between them.

    One row per ``run, label, tag, split, attribute, metric``: ``best_level, best, worst_level,
    worst, gap`` with ``gap = |best - worst|`` (best = highest accuracy or lowest NMAE).

    Examples
    --------
    >>> lv = pd.DataFrame({"tag": "base", "attribute": "sex", "level": ["Male", "Female"],
    ...                    "accuracy": [0.5, 0.4], "nmae": [0.2, 0.25]})
    >>> attribute_gaps(lv)[["metric", "best_level", "gap"]].round(3).to_dict("records")
    [{'metric': 'accuracy', 'best_level': 'Male', 'gap': 0.1}, {'metric': 'nmae', 'best_level': 'Male', 'gap': 0.05}]
    """
    keys = _keys(levels)
    rows = []
    for k, g in levels.groupby(keys + ["attribute"], sort=False):
        for metric, higher_better in (("accuracy", True), ("nmae", False)):
            o = g.sort_values([metric, "level"], ascending=[not higher_better, True])
            best, worst = o.iloc[0], o.iloc[-1]
            rows.append(dict(zip(keys + ["attribute"], k if isinstance(k, tuple) else (k,)), metric=metric,
                             best_level=best["level"], best=float(best[metric]), worst_level=worst["level"],
                             worst=float(worst[metric]), gap=abs(float(best[metric]) - float(worst[metric])),
                             n_levels=int(len(g))))
    return pd.DataFrame(rows)


def favoured_levels(levels: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Which persona each model favours: the best level of every attribute, one row per
    ``run, label, tag, split`` and one column per attribute (published beside in the notebook:
    young, male, Chinese, Christian)."""
    gaps = attribute_gaps(levels)
    gaps = gaps[gaps["metric"] == metric]
    keys = _keys(gaps)
    wide = gaps.pivot_table(index=keys, columns="attribute", values="best_level", aggfunc="first").reset_index()
    wide.columns.name = None
    return wide[keys + [a for a in ATTRIBUTES if a in wide.columns]
                + [c for c in wide.columns if c not in keys and c not in ATTRIBUTES]]


# --------------------------------------------------------------------------------------------
# 3. base vs SFT
# --------------------------------------------------------------------------------------------
def ablation_table(fair: pd.DataFrame, split: str = "ood", stratum: str = "all") -> pd.DataFrame:
    """The paper's ablation table: fairness statistics before and after SFT, per model.

    Parameters
    ----------
    fair : DataFrame
        :func:`fairness_table` output.
    split, stratum : str
        Which subgroups the statistics pool (default: every OOD subgroup).

    Returns
    -------
    DataFrame
        ``run, label, split, statistic, base, sft, change`` (``change = sft - base``; negative
        means SFT made subgroups more equal), statistics ``Acc Norm. Range``, ``Acc CV``,
        ``NMAE Norm. Range``, ``NMAE CV``, only for runs with both tags.
    """
    f = fair[(fair["split"] == split) & (fair["stratum"] == stratum)]
    rows = []
    for (run, label), g in f.groupby(["run", "label"], sort=True):
        if not {"base", "sft"} <= set(g["tag"]):
            continue
        for stat, name in _STAT_NAMES.items():
            metric, _, kind = stat.partition("_")
            v = g[g["metric"] == metric].set_index("tag")[kind]
            rows.append({"run": run, "label": label, "split": split, "statistic": name,
                         "base": float(v["base"]), "sft": float(v["sft"]), "change": float(v["sft"] - v["base"])})
    return pd.DataFrame(rows, columns=["run", "label", "split", "statistic", "base", "sft", "change"])


def published_ablation() -> pd.DataFrame:
    """The published ablation numbers (Tan et al. 2026), in :func:`ablation_table`'s columns.

    >>> published_ablation()[["statistic", "base", "sft"]].to_dict("records")
    [{'statistic': 'Acc Norm. Range', 'base': 0.24, 'sft': 0.179}, {'statistic': 'NMAE Norm. Range', 'base': 0.28, 'sft': 0.336}]
    """
    from sgvalues.published import PUBLISHED_LABEL, published

    fair = published()["fairness"]
    rows = []
    for key, name in (("accuracy_norm_range", "Acc Norm. Range"), ("nmae_norm_range", "NMAE Norm. Range")):
        b, s = fair[key]["base"], fair[key]["sft"]
        rows.append({"run": "published", "label": PUBLISHED_LABEL, "split": "ood", "statistic": name,
                     "base": b, "sft": s, "change": round(s - b, 6)})
    return pd.DataFrame(rows)


def format_ablation(ablation: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The ablation table as the paper prints it: one row per model, one column per statistic,
    cells ``"base → sft"``.

    >>> format_ablation(published_ablation()).iloc[0].tolist()
    ['0.240 → 0.179', '0.280 → 0.336']
    """
    if ablation.empty:
        return pd.DataFrame()
    cell = ablation.assign(cell=[f"{b:.{digits}f} → {s:.{digits}f}" for b, s in zip(ablation["base"], ablation["sft"])])
    wide = cell.pivot_table(index="label", columns="statistic", values="cell", aggfunc="first", sort=False)
    wide.columns.name = None
    wide.index.name = "model"
    return wide[[c for c in _STAT_NAMES.values() if c in wide.columns]].fillna("–")  # not quoted / not run


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
                "accuracy_norm_range": _nr_rows(acc_g), "accuracy_cv": _cv_rows(acc_g),
                "nmae_norm_range": _nr_rows(nmae_g), "nmae_cv": _cv_rows(nmae_g)}


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
    Questions are the resampling unit, because a question's answers for all subgroups are
    correlated: draw :math:`b` takes :math:`Q` questions with replacement (weights
    :math:`w_{bq}`, multinomial counts) and recomputes every subgroup's score as
    :math:`\\sum_q w_{bq} s_{qg} / \\sum_q w_{bq} n_{qg}`, then the statistic. Base and SFT
    use the *same* draws (paired resampling), so the change's interval accounts for the
    questions being shared. Interval: the :math:`(1 \\pm ci)/2` percentiles of the draws.

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
        questions = np.sort(g["question_id"].unique())
        subgroups = np.sort(g["subgroup"].unique())
        nq = len(questions)
        # B x Q resampling counts (questions drawn with replacement), shared by the tags
        draw = rng.integers(0, nq, size=(n_boot, nq)) + nq * np.arange(n_boot)[:, None]
        w = np.bincount(draw.ravel(), minlength=n_boot * nq).reshape(n_boot, nq).astype(float)
        tags = sorted(g["tag"].unique()) if "tag" in g.columns else ["base"]
        draws, points = {}, {}
        for tag in tags:
            gt = g[g["tag"] == tag] if "tag" in g.columns else g
            n, c, e = _question_matrices(gt, questions, subgroups)
            whole = _stats_from_sums(n.sum(0, keepdims=True), c.sum(0, keepdims=True), e.sum(0, keepdims=True))
            points[tag] = {s: float(v[0]) for s, v in whole.items()}
            draws[tag] = _stats_from_sums(w @ n, w @ c, w @ e)
        if {"base", "sft"} <= set(tags):
            points["sft - base"] = {s: points["sft"][s] - points["base"][s] for s in points["sft"]}
            draws["sft - base"] = {s: draws["sft"][s] - draws["base"][s] for s in draws["sft"]}
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
                             "n_questions": nq, "n_boot": n_boot})
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


def permutation_tests(scored: pd.DataFrame, n_perm: int = 10000, seed: int = 0) -> pd.DataFrame:
    """Base vs SFT per-sample correctness and NMAE, paired by ``sample_id``, for every run and
    split with both tags: ``run, label, split, metric, base, sft, change, p_value, n, n_nonzero,
    method``."""
    rows = []
    for (run, label, split), g in scored.groupby(["run", "label", "split"], sort=True):
        if not {"base", "sft"} <= set(g["tag"]):
            continue
        b = g[g["tag"] == "base"].set_index("sample_id")
        s = g[g["tag"] == "sft"].set_index("sample_id")
        common = b.index.intersection(s.index)
        for metric in ("correct", "nmae"):
            r = paired_permutation_test(s.loc[common, metric], b.loc[common, metric], n_perm=n_perm, seed=seed)
            rows.append({"run": run, "label": label, "split": split,
                         "metric": "accuracy" if metric == "correct" else "nmae",
                         "base": float(b.loc[common, metric].mean()), "sft": float(s.loc[common, metric].mean()),
                         "change": r["statistic"], "p_value": r["p_value"], "n": r["n"],
                         "n_nonzero": r["n_nonzero"], "method": r["method"]})
    return pd.DataFrame(rows)
