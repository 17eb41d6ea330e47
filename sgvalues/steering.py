"""Few-shot steering: a subgroup's own answers to the questions most like the one asked.

Besides a persona sentence, a model can be steered by examples (SubPOP; Cao et al., NAACL
2025): before the question, show the subgroup's modal answers to its ``k`` most similar
*training* questions. This module chooses those examples; the prompt text that shows them
belongs with the other prompts (:mod:`sgvalues.prompts`).

Similarity is wording similarity (:func:`sgvalues.question_holdout.wording_similarity`,
character n-gram TF-IDF cosine). Candidates are the training questions only (with
``split.questions: holdout``, the held-out questions never serve as examples), never the
question itself, and a neighbour the subgroup has no modal answer for is skipped in favour of
the next one, so a cell gets ``k`` examples whenever it has that many answered neighbours.

Example
-------
>>> q = pd.DataFrame({"question_id": ["Q1", "Q2", "Q3"],
...                   "wording": ["Trust your family", "Trust your neighbours", "Interest in politics"]})
>>> nearest_questions(q, k=1)[["question_id", "neighbour"]].values.tolist()
[['Q1', 'Q2'], ['Q2', 'Q1'], ['Q3', 'Q1']]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from sgvalues.question_holdout import wording_similarity

__all__ = ["NEIGHBOUR_COLUMNS", "EXAMPLE_COLUMNS", "nearest_questions", "few_shot_examples"]

#: columns of :func:`nearest_questions`
NEIGHBOUR_COLUMNS = ["question_id", "rank", "neighbour", "similarity"]

#: columns of :func:`few_shot_examples`
EXAMPLE_COLUMNS = ["question_id", "subgroup", "rank", "neighbour", "similarity", "answer"]


def nearest_questions(questions: pd.DataFrame, k: int | None = 3, candidates: Sequence[str] | None = None,
                      text: str = "wording") -> pd.DataFrame:
    """Each question's most similar candidate questions by wording, most similar first.

    Parameters
    ----------
    questions : DataFrame
        ``question_id`` and ``text``; every question to steer and every candidate.
    k : int or None
        Neighbours kept per question; ``None`` keeps every candidate (ranked), which
        :func:`few_shot_examples` needs to skip unanswered ones.
    candidates : question ids, optional
        The questions allowed as examples (the training questions); default all.
    text : str
        The wording column.

    Returns
    -------
    DataFrame
        :data:`NEIGHBOUR_COLUMNS`; ``rank`` from 1; ties broken by the questions' table order.
    """
    if k is not None and int(k) < 1:
        raise ValueError(f"k = {k}: expected a positive number of examples, or None for all")
    sim = wording_similarity(questions, text)
    ids = list(sim.index)
    allowed = ids if candidates is None else [str(c) for c in candidates]
    unknown = sorted(set(allowed) - set(ids))
    if unknown:
        raise ValueError(f"candidates {unknown[:5]} are not among the questions' question_id")
    cand_pos = np.array([ids.index(c) for c in allowed], dtype=int)
    rows = []
    m = sim.to_numpy()
    for i, qid in enumerate(ids):
        pos = cand_pos[cand_pos != i]
        order = pos[np.lexsort((pos, -m[i, pos]))]  # similarity descending, then table order
        for rank, j in enumerate(order[: None if k is None else int(k)], 1):
            rows.append({"question_id": qid, "rank": rank, "neighbour": ids[j], "similarity": float(m[i, j])})
    return pd.DataFrame(rows, columns=NEIGHBOUR_COLUMNS)


def few_shot_examples(modal: pd.DataFrame, neighbours: pd.DataFrame, k: int = 3,
                      cells: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``k`` examples of each (question, subgroup): the subgroup's modal answers to the nearest questions.

    Parameters
    ----------
    modal : DataFrame
        ``question_id, subgroup, modal_answer`` (the prepared ``modal_answers.csv``).
    neighbours : DataFrame
        :func:`nearest_questions` with ``k=None`` (every candidate ranked).
    k : int
        Examples per cell.
    cells : DataFrame, optional
        ``question_id, subgroup`` to steer; default every cell of ``modal``.

    Returns
    -------
    DataFrame
        :data:`EXAMPLE_COLUMNS`, ``rank`` 1..k per cell, ``answer`` the subgroup's modal answer
        to ``neighbour``; a cell with fewer answered neighbours gets fewer rows.

    Examples
    --------
    >>> modal = pd.DataFrame({"question_id": ["Q1", "Q2", "Q3"], "subgroup": "sex:Male", "modal_answer": [1, 2, 3]})
    >>> nb = pd.DataFrame({"question_id": ["Q1", "Q1"], "rank": [1, 2], "neighbour": ["Q9", "Q3"],
    ...                    "similarity": [0.9, 0.5]})
    >>> few_shot_examples(modal, nb, k=1, cells=modal.iloc[[0]])[["neighbour", "answer"]].values.tolist()
    [['Q3', 3]]
    """
    if int(k) < 1:
        raise ValueError(f"k = {k}: expected >= 1")
    for col in ("question_id", "subgroup", "modal_answer"):
        if col not in modal.columns:
            raise ValueError(f"modal: missing column {col!r}; expected the prepared modal_answers.csv")
    missing = [c for c in NEIGHBOUR_COLUMNS if c not in neighbours.columns]
    if missing:
        raise ValueError(f"neighbours: missing column(s) {missing}; expected nearest_questions(..., k=None)")
    answers = {(str(q), str(s)): a for q, s, a in zip(modal["question_id"], modal["subgroup"], modal["modal_answer"])
               if not pd.isna(a)}
    ranked = {q: g.sort_values("rank") for q, g in neighbours.groupby("question_id", sort=False)}
    cells = modal if cells is None else cells
    rows = []
    for qid, sg in zip(cells["question_id"].astype(str), cells["subgroup"].astype(str)):
        g = ranked.get(qid)
        if g is None:
            continue
        rank = 0
        for nb, s in zip(g["neighbour"], g["similarity"]):
            a = answers.get((str(nb), sg))
            if a is None:
                continue
            rank += 1
            rows.append({"question_id": qid, "subgroup": sg, "rank": rank, "neighbour": str(nb), "similarity": float(s),
                         "answer": int(a)})
            if rank == int(k):
                break
    return pd.DataFrame(rows, columns=EXAMPLE_COLUMNS)
