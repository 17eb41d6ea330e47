"""Fairness tables from scored predictions: per-subgroup scores and their spread, per-attribute bias,
and the base vs SFT ablation table.

Inputs are the predictions tables of the runs present (:func:`gather_predictions`), scored per
sample by :func:`sgvalues.metrics.score_samples`; every table keeps the ``run, label, tag,
split`` columns it is given.

Example
-------
>>> s = pd.DataFrame({"tag": "base", "split": "ood", "stratum": "x", "subgroup": ["x:a", "x:a", "x:b"],
...                   "correct": [1.0, 0.0, 1.0], "nmae": [0.0, 0.5, 0.0]})
>>> fair = fairness_table(subgroup_scores(s), per_stratum=False)
>>> fair[["metric", "mean", "norm_range"]].to_dict("records")
[{'metric': 'accuracy', 'mean': 0.75, 'norm_range': 0.5}, {'metric': 'nmae', 'mean': 0.125, 'norm_range': 1.0}]
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from sgvalues.evaluate import load_run_predictions
from sgvalues.fairness.measures import (FairnessWarning, absolute_range, coefficient_of_variation, normalized_range,
                                        standard_deviation)
from sgvalues.subgroups import parse_levels

__all__ = [
    "ATTRIBUTES",
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
    (highest accuracy / lowest NMAE is best), and the mechanics of the two ratios: ``min``,
    ``max``, ``range`` (:func:`~sgvalues.fairness.measures.absolute_range`, max - min) and ``sd``
    (:func:`~sgvalues.fairness.measures.standard_deviation`, population SD), so that
    ``norm_range = range / max`` and ``cv = sd / mean``.

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
                                 best_subgroup=order.iloc[0], worst_subgroup=order.iloc[-1],
                                 min=float(np.nanmin(v)), max=float(np.nanmax(v)), range=absolute_range(v),
                                 sd=standard_deviation(v)))
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
