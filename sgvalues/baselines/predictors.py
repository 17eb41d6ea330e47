"""Baseline predictors: no language model, fitted on the train split's modal answers only.

Each baseline (:data:`BASELINES`) is fitted on the **train** split's modal-answer table only
(``modal_answers.csv`` rows of train subgroups) and predicts every sample of both splits, giving
a distribution over the options (``probs``), so accuracy, NMAE and the distributional scores of
:mod:`sgvalues.metrics` all apply:

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

Weighted data (``prepare --weighted``): ``distribution`` then holds weighted shares while
``n_valid`` counts respondents. The baselines use counts ``share * n_valid`` (pooled levels are
summed, i.e. each level's weights are taken to average 1, as ``W_WEIGHT`` does by design).

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
>>> tables = predict_baselines(fitted, [sample], BASELINES[:4])
>>> [int(tables[n].loc[0, "prediction"]) for n in BASELINES[:4]]
[2, 1, 1, 1]
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from sgvalues.subgroups import parse_levels
from sgvalues.tables import as_records, code_shares, distribution_json, write_csv

__all__ = [
    "BASELINES",
    "SMOOTHING",
    "FittedBaselines",
    "fit_baselines",
    "predict_baselines",
    "baseline_predictions",
    "write_baselines",
    "load_baseline_predictions",
    "population_modes",
    "prepared_population_modes",
]

#: the baseline predictors, strongest yardstick first
BASELINES: tuple[str, ...] = ("population_mode", "train_majority", "marginal_product", "first_option", "uniform")

#: added to every option's count before a distribution is used by ``marginal_product``
SMOOTHING = 0.5

#: relative tolerance under which two scores count as tied (as :data:`sgvalues.modal.TIE_RTOL`)
TIE_RTOL = 1e-9


# --------------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------------
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
        shares = code_shares(r.distribution) or {}
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


def population_modes(fitted: FittedBaselines) -> pd.Series:
    """The ``population_mode`` baseline's answer to every question: ``question_id -> code``.

    The same code path as the baseline's predictions (the mode of the population's answer
    counts, ties to the lowest code), so "the population's modal answer" means one thing
    everywhere (e.g. :mod:`sgvalues.persona`'s divergent cells).

    Examples
    --------
    >>> modal = pd.DataFrame({"question_id": "Q1", "stratum": "sex", "subgroup": ["sex:Male", "sex:Female"],
    ...     "n_valid": 10, "modal_answer": [1, 2], "distribution": ['{"1": 0.6, "2": 0.4}', '{"1": 0.3, "2": 0.7}']})
    >>> population_modes(fit_baselines(modal, split_of=lambda s: "train")).to_dict()
    {'Q1': 2}
    """
    modes = {q: int(fitted.codes[q][_distribution(fitted, "population_mode", q, {}, "", 0)[1]])
             for q in sorted(fitted.codes)}
    out = pd.Series(modes, name="population_mode", dtype="int64")
    out.index.name = "question_id"
    return out


def prepared_population_modes(prepared: str | Path) -> pd.Series:
    """:func:`population_modes` of a prepared folder (fitted on its train split, as the baselines are)."""
    modal, subgroups, summary = _read_prepared(prepared)
    return population_modes(fit_baselines(modal, subgroups, weighted=bool(summary.get("weighted", False))))


def predict_baselines(fitted: FittedBaselines, samples, names: Sequence[str] = BASELINES,
                      seed: int = 0) -> dict[str, pd.DataFrame]:
    """The predictions tables of the baselines ``names`` for ``samples`` (records of
    ``sgvalues.split.load_samples``), the samples read once; ``{name: table}``.

    Each table has :data:`sgvalues.evaluate.PREDICTION_COLUMNS`, ``probs`` filled (JSON code ->
    probability, 6 decimals), ``status`` ``ok``, ``model`` ``baseline:<name>``. A question the
    train split lacks raises a ``ValueError`` naming it.
    """
    from sgvalues.evaluate import PREDICTION_COLUMNS
    from sgvalues.tables import targets_json

    for name in names:
        if name not in BASELINES:
            raise ValueError(f"baseline {name!r}: expected one of {BASELINES}")
    rows: dict[str, list[dict]] = {n: [] for n in names}
    cache: dict[tuple, tuple[int, str]] = {}
    checked: set[str] = set()
    for s in as_records(samples):
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
            "distribution": distribution_json(s.get("distribution")),
            "targets": targets_json(s),
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


def write_baselines(prepared: str | Path, out: str | Path, splits: Sequence[str] = ("train", "ood"),
                    names: Sequence[str] = BASELINES, seed: int = 0,
                    samples: Mapping[str, Sequence[dict]] | None = None) -> list[Path]:
    """Write ``<out>/<name>_<split>.csv`` for every baseline and split; returns the paths."""
    paths = []
    for (name, split), df in baseline_predictions(prepared, splits, names, seed, samples).items():
        path = Path(out) / f"{name}_{split}.csv"
        write_csv(df, path)
        paths.append(path)
    return paths


def load_baseline_predictions(predictions_dir: str | Path, split: str | None = None,
                              names: Sequence[str] = BASELINES) -> pd.DataFrame:
    """The tables of the baselines ``names`` in a predictions folder, stacked, with a ``baseline`` column."""
    from sgvalues.evaluate import load_predictions

    frames = []
    for name in names:
        for sp in ([split] if split else ["train", "ood"]):
            path = Path(predictions_dir) / f"{name}_{sp}.csv"
            if path.is_file():
                frames.append(load_predictions(path).assign(baseline=name))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)
