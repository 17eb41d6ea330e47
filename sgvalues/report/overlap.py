"""What the book shows of the overlap flag: OOD scores with and without the nominally unseen cells.

:mod:`sgvalues.overlap` computes each OOD subgroup's largest respondent overlap with a train
subgroup at prepare time (``overlap.csv``); here the OOD scores of each state (and of
``population_mode`` on the same samples) are shown on every OOD subgroup and again without the
flagged ones (:func:`overlap_table`), with a sentence naming the flagged subgroups
(:func:`overlap_sentence`). Scores go through :func:`sgvalues.metrics.score`.

Example
-------
>>> o = pd.DataFrame({"subgroup": ["a", "b"], "train_subgroup": ["t", "u"], "overlap": [0.99, 0.5],
...                   "flagged": [True, False]})
>>> print(overlap_sentence(o, threshold=0.9))
1 of the 2 OOD subgroups shares more than 90 % of its respondents (Jaccard share) with one train subgroup, so it is unseen in name only: `a` (0.990 with `t`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sgvalues.report.format import fmt_count, fmt_rate

__all__ = ["overlap_sentence", "overlap_table", "show_overlap", "show_run_overlap", "show_split_overlap"]


def overlap_sentence(overlap: pd.DataFrame, threshold: float | None = None) -> str:
    """Markdown: how many OOD subgroups are flagged, and which (with their overlap and train match)."""
    from sgvalues.overlap import OVERLAP_THRESHOLD

    threshold = OVERLAP_THRESHOLD if threshold is None else threshold
    if overlap.empty:
        return ("This run's prepared data predate the overlap table (`overlap.csv`): prepare the run again "
                "(`sgvalues prepare`) to flag OOD subgroups that are unseen in name only.")
    flagged = overlap[overlap["flagged"].astype(bool)].sort_values("overlap", ascending=False)
    n, k = len(overlap), len(flagged)
    head = (f"{fmt_count(k)} of the {fmt_count(n)} OOD subgroups share{'s' if k == 1 else ''} more than "
            f"{100 * threshold:.0f} % of {'its' if k == 1 else 'their'} respondents (Jaccard share) with one train "
            f"subgroup")
    if not k:
        return (f"None of the {fmt_count(n)} OOD subgroups shares more than {100 * threshold:.0f} % of its "
                "respondents (Jaccard share) with one train subgroup: every OOD subgroup is unseen in fact, not "
                "only in name.")
    names = ", ".join(f"`{r.subgroup}` ({fmt_rate(r.overlap)} with `{r.train_subgroup}`)" for r in flagged.itertuples())
    return head + f", so {'it is' if k == 1 else 'they are'} unseen in name only: {names}."


def _them(overlap: pd.DataFrame) -> str:
    return "it" if int(overlap["flagged"].astype(bool).sum()) == 1 else "them"


def overlap_table(states: dict, overlap: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and NMAE of each state (``states``: name -> OOD predictions) on every OOD subgroup
    and without the flagged ones: ``predictor, accuracy, nmae, n, accuracy (unflagged), nmae
    (unflagged), n (unflagged)``.

    >>> p = pd.DataFrame({"subgroup": ["a", "b"], "target": [1, 2], "prediction": [1, 1], "scale_min": 1,
    ...                   "scale_max": 3, "status": "ok"})
    >>> overlap_table({"sft": p}, pd.DataFrame({"subgroup": ["a"], "flagged": [True]})).to_dict("records")
    [{'predictor': 'sft', 'accuracy': 0.5, 'nmae': 0.25, 'n': 2, 'accuracy (unflagged)': 0.0, 'nmae (unflagged)': 0.5, 'n (unflagged)': 1}]
    """
    from sgvalues.metrics import score
    from sgvalues.overlap import without_flagged

    rows = []
    for name, df in states.items():
        if df is None or df.empty:
            continue
        everything, kept = score(df).iloc[0], without_flagged(df, overlap)
        unflagged = score(kept).iloc[0] if len(kept) else pd.Series({"accuracy": float("nan"), "nmae": float("nan")})
        rows.append({"predictor": name, "accuracy": float(everything["accuracy"]), "nmae": float(everything["nmae"]),
                     "n": int(len(df)), "accuracy (unflagged)": float(unflagged["accuracy"]),
                     "nmae (unflagged)": float(unflagged["nmae"]), "n (unflagged)": int(len(kept))})
    return pd.DataFrame(rows, columns=["predictor", "accuracy", "nmae", "n", "accuracy (unflagged)",
                                       "nmae (unflagged)", "n (unflagged)"])


def _with_population_mode(run_dir: Path, states: dict) -> dict:
    """``states`` plus ``population_mode`` on the samples every state answered (when the run has it)."""
    from sgvalues import baselines

    frames = [df for df in states.values() if df is not None and len(df)]
    if not frames:
        return dict(states)
    ids = set.intersection(*[set(df["sample_id"].astype(str)) for df in frames])
    pop = baselines.run_baseline_predictions(run_dir, "ood", ["population_mode"], ids)
    return {**states, **({"population_mode (baseline)": pop} if len(pop) else {})}


def show_overlap(ch, states: dict) -> pd.DataFrame:
    """One cell: the flagged OOD subgroups in words, then each state's OOD scores (and
    ``population_mode``'s on the same samples) with and without them. Returns the table."""
    from IPython.display import Markdown, display

    from sgvalues.report.format import format_table

    overlap = getattr(ch.data, "overlap", pd.DataFrame())
    overlap = pd.DataFrame() if overlap is None else overlap
    if overlap.empty or not overlap["flagged"].astype(bool).any():
        display(Markdown(overlap_sentence(overlap)))
        return pd.DataFrame()
    display(Markdown(overlap_sentence(overlap) + " The scores below are shown on every OOD subgroup and again "
                     f"without {_them(overlap)}."))
    table = overlap_table(_with_population_mode(ch.run, states), overlap)
    display(format_table(table, counts=["n", "n (unflagged)"]))
    return table


def show_run_overlap(ch, predictions: pd.DataFrame) -> pd.DataFrame:
    """Chapter 07's cell: :func:`show_overlap` for every state of this run on the OOD split."""
    mine = predictions[(predictions["run"] == ch.run.name) & (predictions["split"] == "ood")] \
        if len(predictions) else predictions
    states = {tag: g for tag, g in mine.groupby("tag", sort=False)} if len(mine) else {}
    return show_overlap(ch, states)


def show_split_overlap(ch, n: int = 10) -> pd.DataFrame:
    """Chapter 03's cell: the flagged OOD subgroups in words and the ``n`` largest overlaps
    (``overlap.csv``) as a table. Returns the table shown."""
    from IPython.display import Markdown, display

    from sgvalues.report.format import format_table

    table = getattr(ch.data, "overlap", None)
    table = pd.DataFrame() if table is None else table
    if table.empty or not table["flagged"].astype(bool).any():
        display(Markdown(overlap_sentence(table)))
    else:
        display(Markdown(overlap_sentence(table) + f" Chapters 05 and 07 show the OOD scores with and without "
                         f"{_them(table)}."))
    if table.empty:
        return table
    top = table.sort_values("overlap", ascending=False).head(n)
    # five columns fit the text column: the shared respondents as "shared of either"
    shown = top.assign(shared=[f"{int(s):,} of {int(u):,}" for s, u in zip(top["n_shared"], top["n_union"])])
    display(format_table(shown[["subgroup", "train_subgroup", "shared", "overlap", "flagged"]]))
    return top
