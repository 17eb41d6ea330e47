"""What chapter 04 says about fine-tuning: which questions, the training run, base -> SFT changes.

:mod:`sgvalues.train` trains and evaluates; the functions here turn its tables into what a
reader sees, so a notebook cell reads like a sentence:

- :func:`questions_sentence` - which questions fine-tuning uses and which it keeps unseen;
- :func:`training_summary` - ``train_summary.json`` as a two-column table;
- :func:`change_sentence` and :func:`trained_vs_unseen` - base -> SFT changes said in words,
  computed from the run's own tables;
- :func:`headline_sentence` (:func:`run_headline` from a run's files) - accuracy after SFT as the
  mean and range over training seeds beside ``population_mode`` on the same samples: the
  headline of chapter 04 and of the intro.

The figure of the same changes is :func:`sgvalues.report.figures.plot_before_after`. Every
number goes through :mod:`sgvalues.report.format`.

Example
-------
>>> import pandas as pd
>>> t = pd.DataFrame({"split": "ood", "tag": ["base", "sft"], "accuracy": [0.25, 0.5], "n": 40})
>>> change_sentence(t, "accuracy")
'accuracy 0.250 → 0.500 (+0.250)'
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sgvalues.report.format import MISSING, fmt_count, fmt_counted, fmt_delta, fmt_rate

__all__ = ["questions_sentence", "training_summary", "change_sentence", "trained_vs_unseen", "seed_table",
           "seed_sentence", "seed_accuracies", "population_mode_accuracy", "headline_sentence", "run_headline"]


def questions_sentence(trained: list[str] | None, unseen: list[str], limit: int | None) -> str:
    """Markdown: which questions chapter 04 trains on and which it keeps unseen.

    Examples
    --------
    >>> questions_sentence(["Q1", "Q2"], ["Q9"], None)
    'Fine-tuning uses 2 questions (Q1, Q2); 1 question training never sees (Q9) shows the limit of the recipe. Every sample of these questions is evaluated.'
    """
    def n_q(qs) -> str:
        return f"{fmt_count(len(qs))} question{'s' if len(qs) != 1 else ''}"

    used = (f"Fine-tuning uses {n_q(trained)} ({', '.join(trained)})" if trained
            else "Fine-tuning uses every question")
    kept = (f"{n_q(unseen)} training never sees ({', '.join(unseen)}) shows the limit of the recipe"
            if unseen else "no question is kept unseen")
    cap = ("Every sample of these questions is evaluated." if limit is None
           else f"At most {fmt_count(limit)} samples per split are evaluated (stratified by question).")
    return f"{used}; {kept}. {cap}"


#: what the training summary shows, in order, with each value's format
_TRAINING_FIELDS = [("samples trained on", "n_samples", "count"), ("optimizer steps", "n_steps", "count"),
                    ("final loss", "final_loss", "rate"), ("answer tokens", "tokens", "count"),
                    ("training time", "train_seconds", "s"), ("throughput", "tokens_per_s", "tokens/s"),
                    ("device / dtype", ("device", "dtype"), "text"),
                    ("trainable parameters", "trainable_parameters", "count"),
                    ("resumed from checkpoint", "resumed_from", "text")]

#: the formats that are units: a measured quantity, printed with one decimal and its unit
_UNITS = ("s", "tokens/s")


def training_summary(summary: dict) -> pd.DataFrame:
    """``train_summary.json`` as a two-column table a reader can scan (book number format).

    Examples
    --------
    >>> s = {"n_samples": 1200, "n_steps": 16, "final_loss": 0.51234, "tokens": 9000, "train_seconds": 61.27,
    ...      "tokens_per_s": 146.9, "device": "cpu", "dtype": "float32", "trainable_parameters": 230400,
    ...      "resumed_from": None}
    >>> training_summary(s).set_index("setting")["value"].to_dict()["trainable parameters"]
    '230,400'
    >>> training_summary(s).set_index("setting")["value"].to_dict()["resumed from checkpoint"]
    'no'
    >>> training_summary(s).set_index("setting")["value"].to_dict()["training time"]
    '61.3 s'
    """
    rows = []
    for name, key, kind in _TRAINING_FIELDS:
        if isinstance(key, tuple):
            value = " / ".join(str(summary.get(k, MISSING)) for k in key)
        else:
            v = summary.get(key)
            if kind in _UNITS:  # with its unit: a bare "67.0" reads as a count printed as a float
                value = MISSING if v is None else f"{float(v):,.1f} {kind}"
            else:
                value = {"count": fmt_count, "rate": fmt_rate,
                         "text": lambda x: "no" if x is None else str(Path(str(x)).name)}[kind](v)
        rows.append({"setting": name, "value": value})
    return pd.DataFrame(rows)

def _value(table: pd.DataFrame, tag: str, metric: str) -> float:
    rows = table[table["tag"] == tag]
    return float(rows[metric].iloc[0]) if len(rows) else float("nan")


def change_sentence(table: pd.DataFrame, metric: str = "accuracy") -> str:
    """``"<metric> base → sft (change)"`` from a ``tag`` / ``metric`` table of one split.

    ``table`` holds one ``base`` and one ``sft`` row (e.g. :func:`sgvalues.train.before_after`
    filtered to a split and ``stratum == "all"``).

    Examples
    --------
    >>> t = pd.DataFrame({"tag": ["base", "sft"], "nmae": [0.3, 0.2]})
    >>> change_sentence(t, "nmae")
    'NMAE 0.300 → 0.200 (-0.100)'
    """
    base, sft = _value(table, "base", metric), _value(table, "sft", metric)
    name = "NMAE" if metric == "nmae" else metric
    return f"{name} {fmt_rate(base)} → {fmt_rate(sft)} ({fmt_delta(sft - base)})"


def _overall(table: pd.DataFrame, split: str = "ood") -> pd.DataFrame:
    rows = table[table["split"] == split] if "split" in table.columns else table
    if "stratum" in rows.columns:
        rows = rows[rows["stratum"] == "all"]
    return rows


def trained_vs_unseen(trained: pd.DataFrame, unseen: pd.DataFrame, n_trained: int, n_unseen: int) -> str:
    """Markdown: the OOD base -> SFT accuracy change on the trained questions and on unseen ones.

    ``trained`` and ``unseen`` are :func:`sgvalues.train.before_after` tables; the sentence
    says which change is larger, so it stays true whatever the run measured.

    Examples
    --------
    >>> t = pd.DataFrame({"split": "ood", "tag": ["base", "sft"], "accuracy": [0.2, 0.6], "n": 80})
    >>> u = pd.DataFrame({"split": "ood", "tag": ["base", "sft"], "accuracy": [0.1, 0.05], "n": 40})
    >>> print(trained_vs_unseen(t, u, 8, 4))  # doctest: +NORMALIZE_WHITESPACE
    On the OOD subgroups of the 8 trained questions (80 samples): accuracy 0.200 → 0.600 (+0.400).
    On 4 questions training never saw (40 samples): accuracy 0.100 → 0.050 (-0.050).
    Fine-tuning did better on the trained questions than on the unseen ones; on the unseen questions fine-tuning lowered accuracy.
    """
    t, u = _overall(trained), _overall(unseen)
    dt = _value(t, "sft", "accuracy") - _value(t, "base", "accuracy")
    du = _value(u, "sft", "accuracy") - _value(u, "base", "accuracy")
    n_t = fmt_count(t["n"].iloc[0]) if len(t) else MISSING
    n_u = fmt_count(u["n"].iloc[0]) if len(u) else MISSING
    lines = [f"On the OOD subgroups of the {n_trained} trained question{'s' if n_trained != 1 else ''} ({n_t} samples): "
             f"{change_sentence(t)}.",
             f"On {n_unseen} questions training never saw ({n_u} samples): {change_sentence(u)}."]
    if pd.isna(dt) or pd.isna(du):
        return "\n".join(lines)
    which = ("Fine-tuning did better on the trained questions than on the unseen ones" if dt > du else
             "Fine-tuning did as well or better on the unseen questions")
    effect = ("fine-tuning lowered accuracy" if du < 0 else
              "accuracy did not move" if du == 0 else "accuracy rose")
    lines.append(f"{which}; on the unseen questions {effect}.")
    return "\n".join(lines)


#: how :func:`seed_table` names the scores of :func:`sgvalues.train.seed_spread`, in its order
_SEED_SCORES = {"sft_accuracy": "accuracy after SFT", "accuracy_change": "accuracy change",
                "sft_nmae": "NMAE after SFT", "nmae_change": "NMAE change"}


def seed_table(seeds: pd.DataFrame) -> pd.DataFrame:
    """Chapter 04's run-to-run spread: per split and score, the mean and the range over training seeds.

    ``seeds`` is :func:`sgvalues.train.train_over_seeds`' table. Columns ``split, score, seeds,
    mean, lowest–highest``; changes signed (base -> SFT), levels as rates.

    Examples
    --------
    >>> t = pd.DataFrame({"seed": [0, 1], "split": "ood", "sft_accuracy": [0.8, 0.7],
    ...                   "accuracy_change": [0.5, 0.4], "sft_nmae": [0.1, 0.2], "nmae_change": [-0.3, -0.2]})
    >>> seed_table(t).iloc[1].tolist()
    ['ood', 'accuracy change', '2', '+0.450', '+0.400 to +0.500']
    """
    from sgvalues.train import seed_spread

    spread = seed_spread(seeds)
    rows = []
    for split in dict.fromkeys(spread["split"]):
        for metric, name in _SEED_SCORES.items():
            r = spread[(spread["split"] == split) & (spread["metric"] == metric)].iloc[0]
            fmt = fmt_delta if metric.endswith("_change") else fmt_rate
            rows.append({"split": split, "score": name, "seeds": fmt_count(r["n_seeds"]), "mean": fmt(r["mean"]),
                         "lowest–highest": f"{fmt(r['min'])} to {fmt(r['max'])}"})
    return pd.DataFrame(rows, columns=["split", "score", "seeds", "mean", "lowest–highest"])


def seed_sentence(seeds: pd.DataFrame, band: float, split: str = "ood") -> str:
    """Markdown: do the training seeds agree? The range of ``split`` accuracy after SFT against ``band``.

    Examples
    --------
    >>> t = pd.DataFrame({"seed": [0, 1, 2], "split": "ood", "sft_accuracy": [0.73, 0.815, 0.8],
    ...                   "accuracy_change": [0.45, 0.535, 0.52], "sft_nmae": 0.1, "nmae_change": -0.3})
    >>> print(seed_sentence(t, 0.05))  # doctest: +NORMALIZE_WHITESPACE
    Over 3 training seeds (0, 1, 2), OOD accuracy after fine-tuning runs from 0.730 to 0.815: a range of
    0.085, wider than the band of 0.050 we accept, so **the seeds do not agree**: read any single
    adapter's result with that margin. The OOD accuracy change base → SFT averages +0.502 (from +0.450
    to +0.535).
    """
    rows = seeds[seeds["split"] == split]
    name = split.upper() if split == "ood" else split
    if rows.empty:
        return f"No {name} rows in the seed table."
    listed = ", ".join(str(int(s)) for s in rows["seed"])
    if len(rows) == 1:
        return (f"One training seed ({listed}): no run-to-run spread is measured; list several in "
                "`training.seeds` to measure it.")
    acc, change = rows["sft_accuracy"].astype(float), rows["accuracy_change"].astype(float)
    spread = float(acc.max() - acc.min())
    verdict = (f"within the band of {fmt_rate(band)} we accept, so **the seeds agree**" if spread <= band
               else f"wider than the band of {fmt_rate(band)} we accept, so **the seeds do not agree**: read "
                    "any single adapter's result with that margin")
    return (f"Over {fmt_counted(len(rows), 'training seed')} ({listed}), {name} accuracy after fine-tuning runs from "
            f"{fmt_rate(acc.min())} to {fmt_rate(acc.max())}: a range of {fmt_rate(spread)}, {verdict}. "
            f"The {name} accuracy change base → SFT averages {fmt_delta(change.mean())} (from "
            f"{fmt_delta(change.min())} to {fmt_delta(change.max())}).")


def seed_accuracies(run_dir: str | Path, split: str = "ood") -> list[float] | None:
    """``split`` accuracy after SFT of every training seed in the run's ``seeds.csv``; ``None``
    without that file or without rows of ``split``."""
    from sgvalues.train import read_seeds

    if not (Path(run_dir) / "seeds.csv").is_file():
        return None
    seeds = read_seeds(run_dir)
    rows = seeds[seeds["split"] == split]
    return [float(a) for a in rows["sft_accuracy"]] if len(rows) else None


def population_mode_accuracy(run_dir: str | Path, predictions: pd.DataFrame, split: str = "ood") -> float:
    """Accuracy of ``population_mode`` (the population's modal answer, no persona; fitted on the
    train split, :mod:`sgvalues.baselines`) on exactly the samples of ``predictions``; NaN when
    the run has no baseline predictions or they miss some of those samples."""
    from sgvalues import baselines, metrics

    ids = set(predictions["sample_id"].astype(str))
    pop = baselines.run_baseline_predictions(run_dir, split, ["population_mode"], ids)
    if pop.empty or set(pop["sample_id"].astype(str)) != ids:
        return float("nan")
    return float(metrics.score(pop).iloc[0]["accuracy"])


def headline_sentence(sft_accuracy, population_mode: float, split: str = "ood") -> str:
    """Markdown: accuracy after fine-tuning as the mean and range over training seeds, beside the
    population's modal answer on the same samples (a predictor that ignores the persona).

    ``sft_accuracy`` holds one accuracy per training seed (:func:`seed_accuracies`; one value
    when the run trained one adapter). The sentence says where the seed mean and every seed lie
    against ``population_mode``, so it stays true whatever the run measured.

    Examples
    --------
    >>> print(headline_sentence([0.760, 0.683, 0.743], 0.7))  # doctest: +NORMALIZE_WHITESPACE
    After LoRA fine-tuning, OOD accuracy averages 0.729 over 3 training seeds (0.683 to 0.760),
    beside 0.700 for the population's modal answer, which ignores the persona, on the same samples:
    the seed mean is above it, but the seeds fall on both sides of it.
    >>> print(headline_sentence([0.5], 0.6))  # doctest: +NORMALIZE_WHITESPACE
    After LoRA fine-tuning, OOD accuracy is 0.500 (one training seed, no run-to-run spread
    measured), beside 0.600 for the population's modal answer, which ignores the persona, on the
    same samples: the adapter is below it.
    """
    acc = [float(a) for a in sft_accuracy]
    name = split.upper() if split == "ood" else split
    if not acc:
        return f"No {name} accuracy after fine-tuning to report."
    mean, lo, hi = sum(acc) / len(acc), min(acc), max(acc)
    if len(acc) == 1:
        head = (f"After LoRA fine-tuning, {name} accuracy is {fmt_rate(mean)} (one training seed, no run-to-run "
                "spread measured)")
    else:
        head = (f"After LoRA fine-tuning, {name} accuracy averages {fmt_rate(mean)} over "
                f"{fmt_counted(len(acc), 'training seed')} ({fmt_rate(lo)} to {fmt_rate(hi)})")
    if pd.isna(population_mode):
        return head + "; the population's modal answer is not available on these samples to compare with."

    def side(x: float) -> str:
        return "above" if x > population_mode else "below" if x < population_mode else "level with"

    verdict = f"the adapter is {side(mean)} it" if len(acc) == 1 else f"the seed mean is {side(mean)} it"
    if len(acc) > 1:
        sides = {side(a) for a in acc}
        verdict += (f", and every seed is {sides.pop()} it" if len(sides) == 1
                    else ", but the seeds fall on both sides of it")
    return (f"{head}, beside {fmt_rate(population_mode)} for the population's modal answer, which ignores the "
            f"persona, on the same samples: {verdict}.")


def run_headline(run_dir: str | Path, split: str = "ood") -> str:
    """:func:`headline_sentence` of a run, read from its files: the training seeds' accuracies
    (``seeds.csv``, or the ``sft`` predictions alone) and ``population_mode`` on the ``sft``
    samples. The intro (:func:`sgvalues.report.intro.run_summary`) and chapter 04 print it."""
    from sgvalues import metrics
    from sgvalues.evaluate import load_predictions, predictions_path

    path = predictions_path(run_dir, "sft", split)
    if not path.is_file():
        return ""
    sft = load_predictions(path)
    accs = seed_accuracies(run_dir, split) or [float(metrics.score(sft).iloc[0]["accuracy"])]
    return headline_sentence(accs, population_mode_accuracy(run_dir, sft, split), split)
