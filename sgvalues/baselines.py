"""Yardsticks that need no language model: baseline predictors and the survey's own noise.

A persona model is only interesting if it knows something about *subgroups* that the
population's answer does not already tell. This module gives every result its yardsticks:

Baseline predictors (:data:`BASELINES`), fitted on the **train** split's modal-answer table only
(``modal_answers.csv`` rows of train subgroups), each predicting every sample of both splits and
giving a distribution over the options (``probs``), so accuracy, NMAE and the distributional
scores of :mod:`sgvalues.metrics` all apply:

``population_mode``
    The question's modal answer over all respondents (the train single-axis stratum with the
    most answers, ``sex``, covers every respondent); ``probs`` = the population's shares.
``train_majority``
    The most common modal answer among the question's train subgroups; ``probs`` = the share
    of train subgroups whose mode each option is.
``marginal_product``
    The no-interaction (log-linear) composition of the single-axis train distributions: for a
    subgroup with levels ``a`` and ``b``, :math:`\\hat y = \\arg\\max_x p_a(x) p_b(x) / p(x)`.
``first_option``
    Always the lowest code (a floor); ``probs`` = all mass on it.
``uniform``
    ``probs`` uniform over the options (expected accuracy :math:`1/k`); the ``prediction`` is a
    seeded random draw from it, so its accuracy and NMAE estimate the expected ones.

Ties go to the lowest code everywhere (as in :mod:`sgvalues.modal`). Each writes a predictions
table in the same contract as a model (``<name>_<split>.csv``, :data:`sgvalues.evaluate.PREDICTION_COLUMNS`;
``model`` = ``baseline:<name>``, ``status`` = ``ok``).

The **survey-noise reference** (:func:`noise_reference`): a subgroup of 30 respondents can have
another mode in a fresh sample. Resampling each subgroup's ``n_valid`` answers from its observed
distribution (a multinomial draw: the bootstrap of respondents for one question) ``n_boot``
times estimates, per sample, the probability that a resampled mode equals the observed one.
Its mean is the plug-in accuracy of a predictor that knew every subgroup's true answer
distribution. It is an estimate, not a hard ceiling: a predictor that pools information across
subgroups (``marginal_product``) can exceed it, by chance or by smoothing.

Weighted data (``prepare --weighted``): ``distribution`` then holds weighted shares while
``n_valid`` counts respondents. The baselines use counts ``share * n_valid`` (pooled levels are
summed, i.e. each level's weights are taken to average 1, as ``W_WEIGHT`` does by design).
The noise reference resamples ``n_valid`` answers from the weighted shares, which ignores the
design effect: Kish's effective size :math:`n_{eff} = (\\sum w)^2 / \\sum w^2 \\le n` would give
a noisier mode, so with weights the reference is optimistic (too high). A sample that carries
an ``n_effective`` field is resampled with that size instead.

Example
-------
>>> modal = pd.DataFrame({"question_id": "Q1", "stratum": ["sex", "sex", "age_group", "age_group"],
...     "subgroup": ["sex:Male", "sex:Female", "age_group:16-24", "age_group:65+"],
...     "n_valid": [10, 10, 10, 10], "modal_answer": [1, 2, 2, 1], "n_tied_modes": 1,
...     "distribution": ['{"1": 0.6, "2": 0.4}', '{"1": 0.3, "2": 0.7}', '{"1": 0.2, "2": 0.8}',
...                      '{"1": 0.7, "2": 0.3}']})
>>> fitted = fit_baselines(modal, split_of=lambda s: "train")
>>> fitted.population["Q1"].tolist()          # pooled sex stratum: 6 + 3 and 4 + 7 answers
[9.0, 11.0]
>>> sample = {"sample_id": "Q1_sex_x_age_group:Male|65+", "split": "ood", "question_id": "Q1",
...           "stratum": "sex_x_age_group", "subgroup": "sex_x_age_group:Male|65+",
...           "levels": {"sex": "Male", "age_group": "65+"}, "target": 1, "scale_min": 1, "scale_max": 2,
...           "options": {"1": "Yes", "2": "No"}, "distribution": {"1": 0.8, "2": 0.2}, "n_valid": 30}
>>> [int(predict_baseline(fitted, [sample], n).loc[0, "prediction"]) for n in BASELINES[:4]]
[2, 1, 1, 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from sgvalues.atomic import atomic_path, atomic_write_text
from sgvalues.subgroups import parse_levels

__all__ = [
    "BASELINES",
    "SMOOTHING",
    "NOISE_COLUMNS",
    "FittedBaselines",
    "fit_baselines",
    "predict_baseline",
    "predict_baselines",
    "baseline_predictions",
    "write_baselines",
    "load_baseline_predictions",
    "noise_per_sample",
    "noise_reference",
    "compare_with_baselines",
    "ensure_run_baselines",
    "configure_parser",
    "main",
]

#: the baseline predictors, strongest yardstick first
BASELINES: tuple[str, ...] = ("population_mode", "train_majority", "marginal_product", "first_option", "uniform")

#: added to every option's count before a distribution is used by ``marginal_product``
SMOOTHING = 0.5

#: columns of :func:`noise_reference`
NOISE_COLUMNS = ["split", "stratum", "estimate", "lo", "hi", "ci", "n_samples", "n_boot"]

#: relative tolerance under which two scores count as tied (as :data:`sgvalues.modal.TIE_RTOL`)
TIE_RTOL = 1e-9

#: bump when a baseline's definition changes, so :func:`ensure_run_baselines` recomputes
BASELINES_VERSION = 1


# --------------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------------
def _shares(value) -> dict[int, float]:
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    return {int(float(k)): float(v) for k, v in dict(value or {}).items()}


def _mode(scores: np.ndarray) -> int:
    """Index of the largest score, ties (within :data:`TIE_RTOL`) to the lowest index."""
    top = scores.max()
    return int(np.flatnonzero(scores >= top - abs(top) * TIE_RTOL)[0])


def _smoothed(counts: np.ndarray) -> np.ndarray:
    """:math:`(c_x + 0.5) / (n + 0.5 k)`."""
    return (counts + SMOOTHING) / (counts.sum() + SMOOTHING * counts.size)


@dataclass
class FittedBaselines:
    """What the baselines learned from the train split, per question.

    ``codes[q]``: the option codes (ascending); ``population[q]``: answer counts over all
    respondents; ``single[(q, axis, level)]``: answer counts of a train single-axis subgroup;
    ``votes[q]``: how many train subgroups have each option as their mode.
    """

    codes: dict[str, np.ndarray] = field(default_factory=dict)
    population: dict[str, np.ndarray] = field(default_factory=dict)
    single: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)
    votes: dict[str, np.ndarray] = field(default_factory=dict)
    population_stratum: dict[str, str] = field(default_factory=dict)


def fit_baselines(modal: pd.DataFrame, subgroups: pd.DataFrame | None = None,
                  split_of: Callable[[str], str] | None = None, weighted: bool = False) -> FittedBaselines:
    """Fit every baseline on the train rows of a modal-answer table.

    Parameters
    ----------
    modal : DataFrame
        ``modal_answers.csv`` (:data:`sgvalues.modal.MODAL_COLUMNS`).
    subgroups : DataFrame, optional
        ``subgroups.csv`` with ``subgroup`` and ``split``: only ``train`` subgroups are used.
    split_of : callable, optional
        Instead of ``subgroups``: subgroup id -> split.
    weighted : bool
        The table was tallied with survey weights: counts ``share * n_valid`` are kept as
        floats instead of rounded to whole answers (module notes).

    Returns
    -------
    FittedBaselines

    Notes
    -----
    Counts are :math:`c_x = p_x n_{valid}` (exact head counts when unweighted: shares are
    rounded to 6 decimals, so they are rounded back). The population of a question is the sum
    over the levels of the train single-axis stratum with the most answers (``sex``: every
    respondent has one).
    """
    need = {"question_id", "stratum", "subgroup", "n_valid", "modal_answer", "distribution"}
    missing = sorted(need - set(modal.columns))
    if missing:
        raise ValueError(f"modal answers: missing column(s) {missing}; expected sgvalues.modal.MODAL_COLUMNS")
    if split_of is None:
        if subgroups is None or not {"subgroup", "split"} <= set(subgroups.columns):
            raise ValueError("fit_baselines needs subgroups.csv (columns 'subgroup', 'split') or split_of, "
                             "to fit on the train subgroups only")
        splits = dict(zip(subgroups["subgroup"].astype(str), subgroups["split"].astype(str)))
        split_of = lambda s: splits.get(s, "")  # noqa: E731
    train = modal[[split_of(str(s)) == "train" for s in modal["subgroup"]]]
    if train.empty:
        raise ValueError("modal answers: no row belongs to a train subgroup; nothing to fit the baselines on")
    fitted = FittedBaselines()
    totals: dict[tuple[str, str], float] = {}
    pooled: dict[tuple[str, str], np.ndarray] = {}
    for r in train.itertuples(index=False):
        q = str(r.question_id)
        shares = _shares(r.distribution)
        codes = np.array(sorted(shares), dtype=np.int64)
        if q not in fitted.codes:
            fitted.codes[q] = codes
            fitted.votes[q] = np.zeros(codes.size)
        elif not np.array_equal(fitted.codes[q], codes):
            raise ValueError(f"modal answers: question {q}, subgroup {r.subgroup}: codes {codes.tolist()} differ "
                             f"from the question's other rows {fitted.codes[q].tolist()}")
        counts = np.array([shares[c] for c in codes]) * float(r.n_valid)
        if not weighted:
            counts = np.rint(counts)
        fitted.votes[q][int(np.searchsorted(codes, int(r.modal_answer)))] += 1
        if "_x_" not in str(r.stratum):
            level = parse_levels(str(r.subgroup))[str(r.stratum)]
            fitted.single[(q, str(r.stratum), level)] = counts
            key = (q, str(r.stratum))
            pooled[key] = pooled.get(key, 0.0) + counts
            totals[key] = totals.get(key, 0.0) + float(r.n_valid)
    for q in fitted.codes:
        cands = [(s, n) for (qq, s), n in totals.items() if qq == q]
        if not cands:
            raise ValueError(f"modal answers: question {q} has no train single-axis subgroup; the population "
                             "distribution needs one stratum covering every respondent (e.g. 'sex')")
        best = max(n for _, n in cands)
        # the stratum covering the most answers; 'sex' (first in the table) on a tie
        stratum = next(s for s, n in cands if n == best)
        fitted.population[q] = pooled[(q, stratum)]
        fitted.population_stratum[q] = stratum
    return fitted


# --------------------------------------------------------------------------------------------
# predicting
# --------------------------------------------------------------------------------------------
def _distribution(fitted: FittedBaselines, name: str, q: str, levels: dict[str, str], sample_id: str,
                  seed: int) -> tuple[np.ndarray, int]:
    """(probabilities over the question's codes, index of the predicted code)."""
    codes = fitted.codes[q]
    k = codes.size
    if name == "population_mode":
        pop = fitted.population[q]
        probs = pop / pop.sum() if pop.sum() > 0 else np.full(k, 1.0 / k)
        return probs, _mode(pop)
    if name == "train_majority":
        votes = fitted.votes[q]
        return votes / votes.sum(), _mode(votes)
    if name == "marginal_product":
        pop = _smoothed(fitted.population[q])
        log_score = np.zeros(k)
        n_factors = 0
        for axis, level in levels.items():
            counts = fitted.single.get((q, axis, level))
            if counts is None:  # level not in train: no information beyond the population
                continue
            log_score += np.log(_smoothed(counts))
            n_factors += 1
        # prod_a p_a / p^(m - 1): one level gives its own distribution; none gives p
        log_score -= (n_factors - 1) * np.log(pop)
        score = np.exp(log_score - log_score.max())
        return score / score.sum(), _mode(score)
    if name == "first_option":
        probs = np.zeros(k)
        probs[0] = 1.0
        return probs, 0
    if name == "uniform":
        # seeded by the sample id, so a sample's draw does not depend on which others are predicted
        rng = np.random.default_rng([seed, zlib.crc32(sample_id.encode())])
        return np.full(k, 1.0 / k), int(rng.integers(k))
    raise ValueError(f"baseline {name!r}: expected one of {BASELINES}")


def _records(samples) -> list[dict]:
    if isinstance(samples, pd.DataFrame):
        return samples.to_dict("records")
    return list(samples)


def predict_baseline(fitted: FittedBaselines, samples, name: str, seed: int = 0) -> pd.DataFrame:
    """One baseline's predictions table for ``samples`` (records of ``sgvalues.split.load_samples``).

    Returns a DataFrame with :data:`sgvalues.evaluate.PREDICTION_COLUMNS`, ``probs`` filled
    (JSON code -> probability, 6 decimals), ``status`` ``ok``, ``model`` ``baseline:<name>``.
    A question the train split lacks raises a ``ValueError`` naming it.
    """
    return predict_baselines(fitted, samples, [name], seed=seed)[name]


def predict_baselines(fitted: FittedBaselines, samples, names: Sequence[str] = BASELINES,
                      seed: int = 0) -> dict[str, pd.DataFrame]:
    """:func:`predict_baseline` for several baselines at once (the samples are read once)."""
    from sgvalues.evaluate import PREDICTION_COLUMNS, _distribution_json

    for name in names:
        if name not in BASELINES:
            raise ValueError(f"baseline {name!r}: expected one of {BASELINES}")
    rows: dict[str, list[dict]] = {n: [] for n in names}
    cache: dict[tuple, tuple[int, str]] = {}
    checked: set[str] = set()
    for s in _records(samples):
        q = str(s["question_id"])
        if q not in fitted.codes:
            raise ValueError(f"sample {s['sample_id']}: question {q} has no train modal answers; "
                             "the baselines are fitted on the train split only")
        codes = fitted.codes[q]
        opts = s.get("options")
        if opts is not None and q not in checked:
            want = sorted(int(c) for c in (json.loads(opts) if isinstance(opts, str) else opts))
            if want != codes.tolist():
                raise ValueError(f"sample {s['sample_id']}: options {want} differ from the train codes "
                                 f"{codes.tolist()} of question {q}")
            checked.add(q)
        levels = parse_levels(s["subgroup"], s.get("levels"))
        lv = s.get("levels", levels)
        common = {
            "sample_id": s["sample_id"], "split": s.get("split", ""), "question_id": q,
            "theme": s.get("theme", ""), "stratum": s.get("stratum", ""), "subgroup": s["subgroup"],
            "levels": lv if isinstance(lv, str) else json.dumps(lv, sort_keys=True),
            "target": int(s["target"]), "scale_min": s["scale_min"], "scale_max": s["scale_max"],
            "status": "ok", "raw_output": "", "adapter": "",
            "distribution": _distribution_json(s.get("distribution")),
        }
        for name in names:
            # every baseline but marginal_product (levels) and uniform (its draw) is one per question
            key = (name, q, tuple(sorted(levels.items())) if name == "marginal_product" else None)
            if name == "uniform" or key not in cache:
                probs, best = _distribution(fitted, name, q, levels, str(s["sample_id"]), seed)
                hit = (int(codes[best]), json.dumps({str(c): round(float(x), 6) for c, x in zip(codes, probs)}))
                if name != "uniform":
                    cache[key] = hit
            else:
                hit = cache[key]
            rows[name].append({**common, "prediction": hit[0], "probs": hit[1], "model": f"baseline:{name}"})
    out = {}
    for name in names:
        df = pd.DataFrame(rows[name], columns=PREDICTION_COLUMNS)
        df["prediction"] = df["prediction"].astype("Int64")
        out[name] = df
    return out


def _read_prepared(prepared: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    prepared = Path(prepared)
    for name in ("modal_answers.csv", "subgroups.csv"):
        if not (prepared / name).is_file():
            raise FileNotFoundError(f"{prepared / name}: not found; expected a folder written by "
                                    f"`sgvalues prepare --out {prepared}`")
    modal = pd.read_csv(prepared / "modal_answers.csv", dtype={"distribution": str})
    subgroups = pd.read_csv(prepared / "subgroups.csv")
    summary_path = prepared / "prepare_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return modal, subgroups, summary


def baseline_predictions(prepared: str | Path, splits: Sequence[str] = ("train", "ood"),
                         names: Sequence[str] = BASELINES, seed: int = 0,
                         samples: Mapping[str, Sequence[dict]] | None = None) -> dict[tuple[str, str], pd.DataFrame]:
    """Fit on ``prepared``'s train split and predict ``splits``: ``{(name, split): predictions}``.

    ``samples`` (split -> records) skips reading ``samples_<split>.jsonl`` again.
    """
    from sgvalues.split import load_samples

    modal, subgroups, summary = _read_prepared(prepared)
    fitted = fit_baselines(modal, subgroups, weighted=bool(summary.get("weighted", False)))
    out = {}
    for split in splits:
        recs = samples[split] if samples is not None and split in samples else load_samples(prepared, split)
        for name, df in predict_baselines(fitted, recs, names, seed=seed).items():
            out[(name, split)] = df
    return out


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")


def write_baselines(prepared: str | Path, out: str | Path, splits: Sequence[str] = ("train", "ood"),
                    names: Sequence[str] = BASELINES, seed: int = 0,
                    samples: Mapping[str, Sequence[dict]] | None = None) -> list[Path]:
    """Write ``<out>/<name>_<split>.csv`` for every baseline and split; returns the paths."""
    paths = []
    for (name, split), df in baseline_predictions(prepared, splits, names, seed, samples).items():
        path = Path(out) / f"{name}_{split}.csv"
        _write_csv(df, path)
        paths.append(path)
    return paths


def load_baseline_predictions(predictions_dir: str | Path, split: str | None = None) -> pd.DataFrame:
    """The baseline tables in a predictions folder, stacked, with a ``baseline`` column."""
    from sgvalues.evaluate import load_predictions

    frames = []
    for name in BASELINES:
        for sp in ([split] if split else ["train", "ood"]):
            path = Path(predictions_dir) / f"{name}_{sp}.csv"
            if path.is_file():
                frames.append(load_predictions(path).assign(baseline=name))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# survey noise
# --------------------------------------------------------------------------------------------
def _resample_hits(sample_id: str, shares: np.ndarray, n: int, target_pos: int, n_boot: int,
                   seed: int) -> np.ndarray:
    """``n_boot`` booleans: does a resampled mode (ties -> lowest code) equal the observed one?"""
    rng = np.random.default_rng([seed, zlib.crc32(sample_id.encode())])
    p = np.clip(shares, 0.0, None)
    p = p / p.sum()
    counts = rng.multinomial(n, p, size=n_boot)
    return counts.argmax(axis=1) == target_pos  # argmax takes the first maximum: the lowest code


def _noise_hits(samples, n_boot: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    recs = _records(samples)
    hits = np.zeros((len(recs), n_boot), dtype=bool)
    rows = []
    for i, s in enumerate(recs):
        shares = _shares(s["distribution"])
        codes = sorted(shares)
        if int(s["target"]) not in shares:
            raise ValueError(f"sample {s['sample_id']}: target {s['target']} is not among the codes of its "
                             f"distribution {codes}")
        n = s.get("n_effective")
        n = int(round(float(n))) if n is not None and not pd.isna(n) else int(s["n_valid"])
        if n < 1:
            raise ValueError(f"sample {s['sample_id']}: n_valid = {n}; expected at least one answer")
        hits[i] = _resample_hits(str(s["sample_id"]), np.array([shares[c] for c in codes]), n,
                                 codes.index(int(s["target"])), n_boot, seed)
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
    cols = by + [c for c in NOISE_COLUMNS if c not in by]
    return pd.DataFrame(rows)[cols]


# --------------------------------------------------------------------------------------------
# model states against the baselines
# --------------------------------------------------------------------------------------------
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
        ``baseline`` column (:func:`load_baseline_predictions`).
    metrics : which of ``accuracy``, ``nmae``, ``jsd`` (NaN-only metrics are skipped).
    n_boot, n_perm, seed, ci : bootstrap draws, permutation draws, their seed, interval coverage.

    Returns
    -------
    DataFrame
        ``state, baseline, metric, state_value, baseline_value, difference, ci_low, ci_high,
        p_value, n, n_questions, higher_is_better``; ``difference = state - baseline``.

    Notes
    -----
    Samples are paired by ``sample_id`` (inner join). A question's subgroups share its wording,
    so questions are the unit of uncertainty: the interval is a percentile bootstrap over
    questions of the mean paired difference, and ``p_value`` a paired sign-flip permutation
    test (:func:`sgvalues.fairness.paired_permutation_test`) on the per-question sums of the
    differences :math:`D_q = \\sum_{i \\in q} (s_i - b_i)`.
    """
    from sgvalues.fairness import paired_permutation_test

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
                present = cnt > 0
                test = paired_permutation_test(sums[present], np.zeros(int(present.sum())), n_perm=n_perm, seed=seed)
                rows.append({"state": state, "baseline": base, "metric": metric,
                             "state_value": float(mm[f"{metric}_s"].mean()),
                             "baseline_value": float(mm[f"{metric}_b"].mean()),
                             "difference": float(d.mean()), "ci_low": float(lo), "ci_high": float(hi),
                             "p_value": float(test["p_value"]), "n": int(len(mm)),
                             "n_questions": int(present.sum()), "higher_is_better": COMPARED_METRICS[metric]})
    cols = ["state", "baseline", "metric", "state_value", "baseline_value", "difference", "ci_low", "ci_high",
            "p_value", "n", "n_questions", "higher_is_better"]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------------------------
# run folders and the command line
# --------------------------------------------------------------------------------------------
def _fingerprint(prepared: Path, seed: int, n_boot: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"version": BASELINES_VERSION, "seed": seed, "n_boot": n_boot}).encode())
    for name in ("modal_answers.csv", "subgroups.csv", "samples_train.jsonl", "samples_ood.jsonl"):
        p = prepared / name
        h.update(name.encode() + b"\0")
        if p.is_file():
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def ensure_run_baselines(run_dir: str | Path, seed: int = 0, n_boot: int = 200, force: bool = False,
                         log: Callable[[str], None] | None = None) -> dict | None:
    """Baselines and noise reference of a run folder, computed only when missing or out of date.

    Writes ``<run_dir>/predictions/<name>_<split>.csv`` for every baseline and split,
    ``<run_dir>/baselines/noise_reference.csv`` (:func:`noise_reference` per split and stratum)
    and ``<run_dir>/baselines/summary.json`` (inputs fingerprint, seconds). Returns the summary,
    or ``None`` when the run has no prepared data yet (``<run_dir>/data``).
    """
    import time

    from sgvalues.split import load_samples

    run_dir = Path(run_dir)
    prepared = run_dir / "data"
    if not all((prepared / f).is_file() for f in ("modal_answers.csv", "subgroups.csv", "samples_train.jsonl",
                                                    "samples_ood.jsonl")):
        return None
    out = run_dir / "baselines"
    summary_path = out / "summary.json"
    fp = _fingerprint(prepared, seed, n_boot)
    expected = [run_dir / "predictions" / f"{n}_{s}.csv" for n in BASELINES for s in ("train", "ood")]
    if not force and summary_path.is_file() and all(p.is_file() for p in expected) \
            and (out / "noise_reference.csv").is_file():
        try:
            old = json.loads(summary_path.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("inputs_sha256") == fp:
            return old
    t0 = time.perf_counter()
    samples = {s: load_samples(prepared, s) for s in ("train", "ood")}
    write_baselines(prepared, run_dir / "predictions", seed=seed, samples=samples)
    noise = noise_reference(samples["train"] + samples["ood"], n_boot=n_boot, seed=seed)
    _write_csv(noise, out / "noise_reference.csv")
    summary = {"inputs_sha256": fp, "baselines": list(BASELINES), "seed": seed, "n_boot": n_boot,
               "seconds": round(time.perf_counter() - t0, 2)}
    atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n")
    if log is not None:
        log(f"baselines and noise reference for {run_dir.name} in {summary['seconds']:.1f} s")
    return summary


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prepared", required=True, help="prepared folder (sgvalues prepare --out DIR)")
    parser.add_argument("--out", required=True, help="folder for <name>_<split>.csv (e.g. runs/<run>/predictions)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the uniform draws and the noise bootstrap")
    parser.add_argument("--n-boot", type=int, default=200, help="bootstrap draws of the noise reference (default 200)")
    parser.add_argument("--no-noise", action="store_true", help="skip the noise reference (noise_reference.csv)")


def main(args: argparse.Namespace) -> int:
    from sgvalues import metrics
    from sgvalues.split import load_samples

    prepared, out = Path(args.prepared), Path(args.out)
    try:
        samples = {s: load_samples(prepared, s) for s in ("train", "ood")}
        paths = write_baselines(prepared, out, seed=args.seed, samples=samples)
    except (FileNotFoundError, ValueError) as exc:
        print(f"sgvalues baselines: error: {exc}", file=sys.stderr)
        return 1
    summary = {}
    for p in paths:
        from sgvalues.evaluate import load_predictions

        row = metrics.aggregate(load_predictions(p), None).iloc[0]
        summary[p.stem] = {"accuracy": round(float(row["accuracy"]), 4), "nmae": round(float(row["nmae"]), 4),
                           "jsd": round(float(row["jsd"]), 4), "n": int(row["n"])}
    if not args.no_noise:
        noise = noise_reference(samples["train"] + samples["ood"], n_boot=args.n_boot, seed=args.seed)
        _write_csv(noise, out / "noise_reference.csv")
        for r in noise[noise["stratum"] == "all"].itertuples(index=False):
            summary[f"noise_reference_{r.split}"] = {"estimate": round(r.estimate, 4), "lo": round(r.lo, 4),
                                                     "hi": round(r.hi, 4), "n": int(r.n_samples)}
    print(json.dumps(summary, indent=1))
    return 0
