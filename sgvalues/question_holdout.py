"""Unseen questions: hold out whole WVS topic blocks and drop near-duplicates of them from training.

The compositional split (:mod:`sgvalues.split`) tests new *combinations of subgroups* on
questions the model trained on. To ask whether fine-tuning generalises to new *questions*
(SubPOP; Cao et al., NAACL 2025), whole themes of the catalogue (its 13 official sections) are
held out, and every training question whose wording is nearly the same as a held-out one is
dropped, so a battery item cannot leak its sibling's answer pattern.

Wording similarity is the cosine of character n-gram TF-IDF vectors
(``sklearn.feature_extraction.text.TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5))``
fitted on the questions given, L2-normalised, so the cosine is a dot product): robust to
word order and inflection, needs no model, and gives 1 for identical texts.

Example
-------
>>> q = pd.DataFrame({"question_id": ["Q1", "Q2", "Q3"], "theme": ["A", "B", "B"],
...                   "wording": ["How important is family in your life?",
...                               "How important is family in your life, would you say?",
...                               "Do you trust your neighbours?"]})
>>> question_holdout(q, ["B"], threshold=0.6)[["question_id", "split", "nearest"]].to_dict("list")
{'question_id': ['Q1', 'Q2', 'Q3'], 'split': ['dropped', 'holdout', 'holdout'], 'nearest': ['Q2', 'Q1', 'Q1']}
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["QUESTION_SPLITS", "HOLDOUT_COLUMNS", "SIMILARITY_TOLERANCE", "wording_similarity", "near_duplicate_pairs", "question_holdout"]

#: what :func:`question_holdout` assigns a question to
QUESTION_SPLITS = ("train", "holdout", "dropped")

#: columns of :func:`question_holdout`
HOLDOUT_COLUMNS = ["question_id", "theme", "split", "nearest", "similarity", "reason"]

#: a similarity within this of the threshold counts as reaching it: the cosine of two identical
#: wordings comes out of the sparse product as 1 - 1e-15 or so, and ``threshold = 1`` must drop them
SIMILARITY_TOLERANCE = 1e-9


def _texts(questions: pd.DataFrame, text: str) -> tuple[list[str], list[str]]:
    for col in ("question_id", text):
        if col not in questions.columns:
            raise ValueError(f"questions: missing column {col!r}; expected question_id and the wording column")
    ids = questions["question_id"].astype(str).tolist()
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"questions: question_id repeated: {dup[:5]}; expected one row per question")
    words = questions[text].fillna("").astype(str).str.strip()
    if (words == "").any():
        bad = [i for i, w in zip(ids, words) if not w][:5]
        raise ValueError(f"questions: blank {text!r} for {bad}; expected the question's wording")
    return ids, words.tolist()


def wording_similarity(questions: pd.DataFrame, text: str = "wording",
                       ngram_range: tuple[int, int] = (3, 5)) -> pd.DataFrame:
    """Pairwise wording similarity of questions: cosine of character n-gram TF-IDF vectors.

    Parameters
    ----------
    questions : DataFrame
        ``question_id`` and the ``text`` column (the catalogue's ``wording``).
    text : str
        The column compared.
    ngram_range : (int, int)
        Character n-gram lengths, within word boundaries (``analyzer="char_wb"``).

    Returns
    -------
    DataFrame
        Square, indexed and labelled by ``question_id``, 1 on the diagonal, in [0, 1].

    Notes
    -----
    :math:`s(a, b) = \\frac{v_a \\cdot v_b}{\\lVert v_a \\rVert \\lVert v_b \\rVert}` with
    :math:`v` the TF-IDF weights (smoothed idf, sublinear tf off) of the lower-cased n-grams.

    Examples
    --------
    >>> q = pd.DataFrame({"question_id": ["a", "b"], "wording": ["Trust people", "trust people"]})
    >>> wording_similarity(q).round(6).values.tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    ids, words = _texts(questions, text)
    lo, hi = (int(n) for n in ngram_range)
    if not 1 <= lo <= hi:
        raise ValueError(f"ngram_range = {ngram_range}: expected 1 <= low <= high")
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(lo, hi), lowercase=True).fit_transform(words)
    sim = np.clip((vec @ vec.T).toarray(), 0.0, 1.0)
    np.fill_diagonal(sim, 1.0)
    return pd.DataFrame(sim, index=ids, columns=ids)


def near_duplicate_pairs(questions: pd.DataFrame, threshold: float = 0.8, text: str = "wording") -> pd.DataFrame:
    """Pairs of distinct questions whose wording similarity is at least ``threshold``.

    Returns
    -------
    DataFrame
        ``question_a, question_b, similarity`` (``a`` before ``b`` in table order), most
        similar first.

    Examples
    --------
    >>> q = pd.DataFrame({"question_id": ["a", "b", "c"],
    ...                   "wording": ["Trust your family", "Trust your family?", "Interest in politics"]})
    >>> near_duplicate_pairs(q, 0.8)[["question_a", "question_b"]].values.tolist()
    [['a', 'b']]
    """
    if not 0 < float(threshold) <= 1:
        raise ValueError(f"threshold = {threshold}: expected a similarity in (0, 1]")
    sim = wording_similarity(questions, text)
    ids = list(sim.index)
    a, b = np.triu_indices(len(ids), k=1)
    s = sim.to_numpy()[a, b]
    keep = s >= threshold - SIMILARITY_TOLERANCE
    out = pd.DataFrame({"question_a": [ids[i] for i in a[keep]], "question_b": [ids[j] for j in b[keep]],
                        "similarity": s[keep]})
    return out.sort_values("similarity", ascending=False, kind="stable").reset_index(drop=True)


def question_holdout(questions: pd.DataFrame, themes: Sequence[str], threshold: float = 0.8,
                     text: str = "wording") -> pd.DataFrame:
    """Split questions by theme into ``train`` and ``holdout``, and drop training near-duplicates.

    Parameters
    ----------
    questions : DataFrame
        ``question_id``, ``theme`` and ``text`` (e.g. the prepared ``questions.csv``).
    themes : sequence of str
        The themes held out whole; each must be a theme of ``questions``.
    threshold : float
        A training question with wording similarity at least this to any held-out question is
        ``dropped`` (:func:`wording_similarity`).
    text : str
        The wording column.

    Returns
    -------
    DataFrame
        :data:`HOLDOUT_COLUMNS` in the questions' order: ``split`` (:data:`QUESTION_SPLITS`),
        ``nearest`` (the most similar question on the other side: a held-out one for a
        training question, a training one, dropped included, for a held-out question) with
        its ``similarity``, and ``reason`` (why a question is where it is).

    Notes
    -----
    The held-out side is kept whole (it is the test); only training questions are dropped, so
    the rule cannot make the test easier by removing its hardest items. A question's theme is
    never split across sides.
    """
    if "theme" not in questions.columns:
        raise ValueError("questions: missing column 'theme'; expected the catalogue's themes")
    themes = [str(t) for t in themes]
    if not themes:
        raise ValueError("question_holdout: no themes to hold out; expected at least one of the questions' themes")
    known = sorted(set(questions["theme"].astype(str)))
    unknown = [t for t in themes if t not in known]
    if unknown:
        raise ValueError(f"question_holdout: theme(s) {unknown} are not among the questions' themes {known}")
    if not 0 < float(threshold) <= 1:
        raise ValueError(f"threshold = {threshold}: expected a similarity in (0, 1]")
    sim = wording_similarity(questions, text).to_numpy()
    ids = questions["question_id"].astype(str).to_numpy()
    held = questions["theme"].astype(str).isin(themes).to_numpy()
    if held.all():
        raise ValueError(f"question_holdout: themes {themes} hold every question; expected some left to train on")
    rows = []
    for i, qid in enumerate(ids):
        other = ~held if held[i] else held
        j = int(np.flatnonzero(other)[np.argmax(sim[i, other])])
        s = float(sim[i, j])
        if held[i]:
            split, reason = "holdout", "theme held out"
        elif s >= threshold - SIMILARITY_TOLERANCE:
            split, reason = "dropped", f"wording similarity {s:.3f} >= {threshold:g} to held-out {ids[j]}"
        else:
            split, reason = "train", "theme trained on"
        rows.append({"question_id": qid, "theme": questions["theme"].iloc[i], "split": split, "nearest": ids[j],
                     "similarity": s, "reason": reason})
    return pd.DataFrame(rows, columns=HOLDOUT_COLUMNS)
