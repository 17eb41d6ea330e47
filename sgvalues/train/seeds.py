"""Training seeds: one adapter per seed on the same samples, and their run-to-run spread."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from sgvalues.atomic import atomic_path
from sgvalues.train.data import evaluate_questions, training_questions
from sgvalues.train.loop import read_run_table, train_run

__all__ = [
    "SEED_COLUMNS",
    "SEED_METRICS",
    "training_seeds",
    "seed_tag",
    "seed_dir",
    "train_over_seeds",
    "read_seeds",
    "seed_spread",
]


#: columns of ``seeds.csv`` (:func:`train_over_seeds`), one row per (training seed, split)
SEED_COLUMNS = ("seed", "split", "tag", "n", "base_accuracy", "sft_accuracy", "accuracy_change",
                "base_nmae", "sft_nmae", "nmae_change")
#: the scores :func:`seed_spread` summarises over seeds
SEED_METRICS = ("accuracy_change", "nmae_change", "sft_accuracy", "sft_nmae")


def training_seeds(params) -> list[int]:
    """The training seeds of a run: ``training.seeds``, or ``[seed]`` when that is unset."""
    seeds = params.training.seeds
    return [params.seed] if seeds is None else [int(s) for s in seeds]


def seed_tag(params, seed: int) -> str:
    """Predictions tag of the adapter trained with ``seed``: ``sft`` for the run's own seed
    (``params.seed``; what chapters 05-07 read), ``sft-seed<seed>`` for the others."""
    return "sft" if int(seed) == params.seed else f"sft-seed{int(seed)}"


def seed_dir(params, run_dir: str | Path, seed: int) -> Path:
    """Where :func:`train_run` writes the adapter of training seed ``seed``: the run folder itself
    for ``params.seed`` (``<run>/adapter``, as ever), ``<run>/adapters/seed-<seed>/`` otherwise."""
    run_dir = Path(run_dir)
    return run_dir if int(seed) == params.seed else run_dir / "adapters" / f"seed-{int(seed)}"


def train_over_seeds(params, run_dir: str | Path, splits: Sequence[str] = ("ood", "train"),
                     limit: int | None = None, force: bool = False, verbose: bool = False,
                     cache=True, log: Callable[[str], None] | None = None):
    """Train one adapter per training seed, evaluate each beside the base model; write ``seeds.csv``.

    Every seed of :func:`training_seeds` trains with :func:`train_run` into :func:`seed_dir`
    (resumable, and skipped when an adapter for the same inputs exists), on the same samples:
    only the LoRA initialisation, the batch order and dropout change with the seed. Each adapter
    then answers the samples of :func:`training_questions` in every split of ``splits``
    (:func:`evaluate_questions`, tag :func:`seed_tag`), as does the base model (tag ``base``);
    ``limit`` and ``cache`` are passed on to it.

    Returns the table written to ``<run_dir>/seeds.csv``: one row per (seed, split), columns
    :data:`SEED_COLUMNS`: the base and fine-tuned scores on the samples both answered, ``n`` of
    them, and the changes base -> SFT. :func:`seed_spread` summarises it over seeds.

    Notes
    -----
    For seed :math:`s` and split :math:`d`, ``accuracy_change`` is
    :math:`\\mathrm{acc}(\\mathrm{SFT}_s, d) - \\mathrm{acc}(\\mathrm{base}, d)` and ``nmae_change``
    likewise; a recipe is stable when these agree across seeds.
    """
    import pandas as pd

    from sgvalues import metrics
    from sgvalues.evaluate import load_predictions, predictions_path

    run_dir = Path(run_dir)
    questions = training_questions(params, run_dir)
    rows = []
    for split in splits:
        evaluate_questions(params, run_dir, split, "base", questions, limit=limit, cache=cache, log=log)
    for seed in training_seeds(params):
        adapter = train_run(params, run_dir, seed=seed, out_dir=seed_dir(params, run_dir, seed),
                            force=force, verbose=verbose)
        tag = seed_tag(params, seed)
        for split in splits:
            evaluate_questions(params, run_dir, split, tag, questions, adapter=adapter, limit=limit,
                               cache=cache, log=log)
            base = load_predictions(predictions_path(run_dir, "base", split))
            sft = load_predictions(predictions_path(run_dir, tag, split))
            common = set(base["sample_id"]) & set(sft["sample_id"])
            score = {name: metrics.aggregate(df[df["sample_id"].isin(common)], None).iloc[0]
                     for name, df in (("base", base), ("sft", sft))}
            rows.append({"seed": int(seed), "split": split, "tag": tag, "n": len(common),
                         **{f"{state}_{m}": float(score[state][m]) for state in ("base", "sft")
                            for m in ("accuracy", "nmae")}})
    table = pd.DataFrame(rows, columns=[c for c in SEED_COLUMNS if c not in ("accuracy_change", "nmae_change")])
    table["accuracy_change"] = table["sft_accuracy"] - table["base_accuracy"]
    table["nmae_change"] = table["sft_nmae"] - table["base_nmae"]
    table = table[list(SEED_COLUMNS)]
    with atomic_path(run_dir / "seeds.csv") as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    return table


def read_seeds(run_dir: str | Path):
    """``<run_dir>/seeds.csv`` (:func:`train_over_seeds`) as a DataFrame; checks its columns."""
    return read_run_table(Path(run_dir) / "seeds.csv", SEED_COLUMNS, "seed table", "train.train_over_seeds")


def seed_spread(seeds):
    """Mean, minimum, maximum and range over training seeds of each split's scores.

    ``seeds`` is :func:`train_over_seeds`' table. One row per (``split``, ``metric``) of
    :data:`SEED_METRICS`, columns ``n_seeds, mean, min, max, range`` (``range`` = max - min).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"seed": [0, 1], "split": "ood", "accuracy_change": [0.5, 0.3],
    ...                   "nmae_change": [-0.3, -0.1], "sft_accuracy": [0.8, 0.6], "sft_nmae": [0.1, 0.3]})
    >>> s = seed_spread(t).set_index("metric")
    >>> int(s.loc["accuracy_change", "n_seeds"]), s.loc["accuracy_change", ["mean", "range"]].round(3).tolist()
    (2, [0.4, 0.2])
    """
    import pandas as pd

    rows = []
    for split, g in seeds.groupby("split", sort=False):
        for m in SEED_METRICS:
            v = g[m].astype(float)
            rows.append({"split": split, "metric": m, "n_seeds": int(g["seed"].nunique()),
                         "mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
                         "range": float(v.max() - v.min())})
    return pd.DataFrame(rows, columns=["split", "metric", "n_seeds", "mean", "min", "max", "range"])
