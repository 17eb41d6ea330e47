"""Stage 1 of training: the samples it learns from and the questions it is measured on.

Training reads the run's prepared folder (``<run>/data/samples_<split>.jsonl``, written by
``sgvalues prepare`` or notebooks 01-03) and never prepares it: a run folder without it is a
:class:`TrainError` that names the missing file and the command that writes it.
:func:`load_train_samples` keeps every train subgroup of ``training.questions`` questions
(:func:`select_questions`, stratified by theme, seeded), thinned to ``training.max_samples``
(:func:`select_samples`, stratified by subgroup and question, seeded);
:func:`evaluate_questions` evaluates a model on the samples of such questions.

``split.questions: holdout`` (:func:`question_split`) holds whole themes out of training: the
questions are split by :func:`sgvalues.question_holdout.question_holdout` into ``train``,
``holdout`` and ``dropped`` (training near-duplicates of held-out questions), written to
``<run>/data/question_split.csv``; training then chooses among the ``train`` questions only and
:func:`unseen_questions` among the ``holdout`` ones. Under ``split.questions: all`` (the default)
nothing changes.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "TrainError",
    "QUESTION_SPLIT_FILE",
    "question_split",
    "training_questions",
    "unseen_questions",
    "load_train_samples",
    "select_questions",
    "select_samples",
    "evaluate_questions",
]


#: the question split of ``split.questions: holdout``, in ``<run>/data`` (:func:`question_split`)
QUESTION_SPLIT_FILE = "question_split.csv"


class TrainError(RuntimeError):
    """Training cannot run on these inputs; the message names the file, key or value."""


def _prepared_samples(run_dir: str | Path, split: str) -> Path:
    """``<run_dir>/data/samples_<split>.jsonl``; a :class:`TrainError` naming it and how to write it
    when the run has not been prepared."""
    from sgvalues.split import sample_path

    path = sample_path(Path(run_dir) / "data", split)
    if not path.is_file():
        raise TrainError(f"{path}: no prepared samples; prepare the run first: `sgvalues train --params ... "
                         f"--run-dir {run_dir}` (prepares a fresh run folder from its params), "
                         f"`sgvalues prepare --wvs FILE --out {path.parent}`, or notebooks 01-03")
    return path


def _load_split_samples(run_dir: str | Path, split: str) -> list[dict]:
    from sgvalues.split import load_samples

    path = _prepared_samples(run_dir, split)
    samples = load_samples(path.parent, split)
    if not samples:
        raise TrainError(f"{path}: no samples in split {split!r}")
    return samples


def question_split(params, run_dir: str | Path) -> pd.DataFrame | None:
    """The run's question split under ``split.questions: holdout``; ``None`` under ``all``.

    :func:`sgvalues.question_holdout.question_holdout` on the prepared questions
    (``<run_dir>/data/questions.csv``, its ``wording``) that have train samples: the
    ``split.holdout_themes`` are held out whole and every other question whose wording
    similarity to a held-out one is at least ``split.near_duplicate_threshold`` is dropped.
    Written atomically to ``<run_dir>/data/question_split.csv`` (``question_id, theme, split,
    nearest, similarity, reason``, the prepared questions' order; the same inputs give the same
    bytes, and an unchanged file is not rewritten) and returned.

    Raises :class:`TrainError` when the run has no prepared samples or questions, or when a held-out
    theme has no question with samples in this run (or holds them all).
    """
    from sgvalues.question_holdout import question_holdout
    from sgvalues.tables import write_csv

    if params.split.questions != "holdout":
        return None
    samples = _load_split_samples(run_dir, "train")
    data = Path(run_dir) / "data"
    path = data / "questions.csv"
    if not path.is_file():
        raise TrainError(f"{path}: no prepared questions; split.questions = 'holdout' reads their wording. "
                         f"Prepare the run again: `sgvalues prepare --wvs FILE --out {data}` or notebooks 01-03")
    questions = pd.read_csv(path, keep_default_na=False, dtype={"question_id": str})
    with_samples = {str(s["question_id"]) for s in samples}
    questions = questions[questions["question_id"].isin(with_samples)].reset_index(drop=True)
    themes = list(params.split.holdout_themes)
    present = set(questions["theme"].astype(str))
    missing = [t for t in themes if t not in present]
    if missing:
        raise TrainError(f"split.holdout_themes: {missing} have no question with train samples in {path.parent}; "
                         f"expected themes of this run's questions: {'; '.join(sorted(present))}")
    try:
        table = question_holdout(questions, themes, params.split.near_duplicate_threshold, text="wording")
    except ValueError as exc:
        raise TrainError(f"split.holdout_themes = {themes}: {exc}") from exc
    out = data / QUESTION_SPLIT_FILE
    text = table.to_csv(index=False, lineterminator="\n")
    if not (out.is_file() and out.read_text() == text):
        write_csv(table, out)
    return table


def _questions_in(split_table: pd.DataFrame, split: str) -> set[str]:
    return set(split_table.loc[split_table["split"] == split, "question_id"].astype(str))


def _training_questions(params, run_dir: str | Path, samples: Sequence[dict]) -> list[str] | None:
    """:func:`training_questions` on the run's already loaded train ``samples``."""
    n = params.training.questions
    table = question_split(params, run_dir)
    if table is None:
        return None if n is None else select_questions(samples, n, params.seed)
    allowed = _questions_in(table, "train")
    pool = [s for s in samples if str(s["question_id"]) in allowed]
    if not pool:
        raise TrainError(f"split.holdout_themes = {list(params.split.holdout_themes)}: no training question is "
                         f"left ({Path(run_dir) / 'data' / QUESTION_SPLIT_FILE}); hold out fewer themes or "
                         "raise split.near_duplicate_threshold")
    return sorted({str(s["question_id"]) for s in pool}) if n is None else select_questions(pool, n, params.seed)


def training_questions(params, run_dir: str | Path) -> list[str] | None:
    """The question ids training uses (``training.questions`` of them), or ``None`` for all.

    Evaluate base and fine-tuned model on these (:func:`evaluate_questions`) to measure what
    training on a question's subgroups does for its unseen subgroups. Under
    ``split.questions: holdout`` they are chosen among the ``train`` questions of
    :func:`question_split` only (same rule and seed), and ``training.questions: null`` gives
    every one of those (a list, never ``None``): held-out and dropped questions are never trained on.
    """
    if params.training.questions is None and params.split.questions != "holdout":
        return None
    return _training_questions(params, run_dir, _load_split_samples(run_dir, "train"))


def unseen_questions(params, run_dir: str | Path, n_questions: int) -> list[str]:
    """``n_questions`` questions training did not use (stratified by theme, seeded by ``seed + 1``).

    Base vs fine-tuned on these shows what does *not* transfer: the adapter has never seen
    any subgroup of them. Under ``split.questions: holdout`` they are drawn from the held-out
    themes (the ``holdout`` questions of :func:`question_split`), so they are whole unseen themes
    with no near-duplicate among the trained questions.
    """
    samples = _load_split_samples(run_dir, "train")
    table = question_split(params, run_dir)
    if table is not None:
        held = _questions_in(table, "holdout")
        rest = [s for s in samples if str(s["question_id"]) in held]
        return select_questions(rest, n_questions, params.seed + 1) if rest else []
    trained = set(training_questions(params, run_dir) or [])
    if params.training.questions is None:
        # every question is trained on; nothing is unseen
        return []
    rest = [s for s in samples if str(s["question_id"]) not in trained]
    return select_questions(rest, n_questions, params.seed + 1) if rest else []


def load_train_samples(params, run_dir: str | Path) -> list[dict]:
    """Train samples of ``<run_dir>/data``: every subgroup of :func:`training_questions` (all
    questions when that is ``None``), thinned to ``training.max_samples`` (:func:`select_samples`).

    Raises :class:`TrainError` when the run has no prepared samples (``sgvalues prepare``,
    notebooks 01-03).
    """
    samples = _load_split_samples(run_dir, "train")
    keep = _training_questions(params, run_dir, samples)
    if keep is not None:
        keep = set(keep)
        samples = [s for s in samples if str(s["question_id"]) in keep]
    return select_samples(samples, params.training.max_samples, params.seed)


def select_questions(samples: Sequence[dict], n_questions: int, seed: int) -> list[str]:
    """``n_questions`` question ids, stratified by theme: round robin over the themes.

    Themes are visited in a seeded random order, round after round; each visit takes the
    theme's next question in a seeded random order, skipping themes that have run out. So
    theme counts differ by at most one until a theme is exhausted, and the same samples and
    seed always give the same questions. Returned sorted. Asking for more questions than
    there are returns them all.

    Examples
    --------
    >>> s = [{"question_id": f"{t}{k}", "theme": t} for t in "ABC" for k in range(4)]
    >>> q = select_questions(s, 5, seed=0)
    >>> len(q), sorted(Counter(x[0] for x in q).values())
    (5, [1, 2, 2])
    >>> q == select_questions(list(reversed(s)), 5, seed=0)
    True
    """
    if n_questions is None or n_questions < 1:
        raise TrainError(f"training.questions = {n_questions}: expected >= 1 or null")
    theme_of: dict[str, str] = {}
    for i, s in enumerate(samples):
        for key in ("question_id", "theme"):
            if key not in s:
                raise TrainError(f"sample {i} ({s.get('sample_id', '?')}): missing key '{key}'")
        q, t = str(s["question_id"]), str(s["theme"])
        if theme_of.setdefault(q, t) != t:
            raise TrainError(f"question {q}: samples disagree on 'theme' ({theme_of[q]!r} vs {t!r})")
    rng = np.random.default_rng(seed)
    by_theme: dict[str, list[str]] = defaultdict(list)
    for q in sorted(theme_of):
        by_theme[theme_of[q]].append(q)
    themes = sorted(by_theme)
    queues = {t: [by_theme[t][k] for k in rng.permutation(len(by_theme[t]))] for t in themes}
    order = [themes[k] for k in rng.permutation(len(themes))]
    chosen: list[str] = []
    while len(chosen) < min(n_questions, len(theme_of)):
        for t in order:
            if queues[t] and len(chosen) < n_questions:
                chosen.append(queues[t].pop(0))
    return sorted(chosen)


def select_samples(samples: Sequence[dict], max_samples: int | None, seed: int) -> list[dict]:
    """At most ``max_samples`` samples, spread evenly over subgroups and questions.

    Rounds over the subgroups (in a seeded order); in each round every subgroup gives the
    sample whose question has been taken least so far (ties by a seeded random rank). So
    subgroup counts differ by at most one, and on a full question x subgroup grid so do
    question counts. The original order is kept; ``None`` (or enough) keeps everything.

    Examples
    --------
    >>> s = [{"sample_id": f"{q}_{g}", "question_id": q, "subgroup": g}
    ...      for q in ("Q1", "Q2", "Q3") for g in ("a", "b")]
    >>> picked = select_samples(s, 4, seed=0)
    >>> sorted(Counter(x["subgroup"] for x in picked).values())
    [2, 2]
    >>> max(Counter(x["question_id"] for x in picked).values())
    2
    """
    if max_samples is None or max_samples >= len(samples):
        return list(samples)
    if max_samples < 1:
        raise TrainError(f"training.max_samples = {max_samples}: expected >= 1 or null")
    for i, s in enumerate(samples):
        for key in ("question_id", "subgroup"):
            if key not in s:
                raise TrainError(f"sample {i} ({s.get('sample_id', '?')}): missing key '{key}'")
    rng = np.random.default_rng(seed)
    rank = rng.permutation(len(samples))
    pools: dict[str, list[int]] = defaultdict(list)
    for i in sorted(range(len(samples)), key=lambda i: rank[i]):
        pools[samples[i]["subgroup"]].append(i)
    order = [sorted(pools)[k] for k in rng.permutation(len(pools))]
    taken: Counter = Counter()
    chosen: list[int] = []
    while len(chosen) < max_samples:
        for g in order:
            pool = pools[g]
            if not pool:
                continue
            j = min(range(len(pool)), key=lambda k: (taken[samples[pool[k]]["question_id"]], k))
            i = pool.pop(j)
            taken[samples[i]["question_id"]] += 1
            chosen.append(i)
            if len(chosen) == max_samples:
                break
    return [samples[i] for i in sorted(chosen)]


def evaluate_questions(params, run_dir: str | Path, split: str, tag: str,
                       questions: Sequence[str] | None, adapter: str | Path | None = None,
                       limit: int | None = None, model=None, cache=True,
                       log: Callable[[str], None] | None = print):
    """Evaluate every sample of ``questions`` in ``split``; write ``predictions/<tag>_<split>.csv``.

    ``sgvalues.evaluate.evaluate_run`` on an explicit set of whole questions of the run's prepared
    samples: use :func:`training_questions`, so base and fine-tuned model answer exactly the
    samples of the questions training saw (train split) and their unseen subgroups (OOD split).
    ``questions=None`` = the whole split. ``limit`` caps the samples
    (``sgvalues.evaluate.stratified_limit``, seeded by ``params.seed``; ``None`` = all).
    ``tag`` names the file, e.g. ``"base"``, ``"sft"``, ``"base-unseen"``.
    """
    from sgvalues.evaluate import evaluate_run

    if split not in ("ood", "train"):
        raise TrainError(f"split = {split!r}: expected 'ood' or 'train'")
    _prepared_samples(run_dir, split)  # the prepared samples, or an error naming how to write them
    if questions is None and limit is None:
        limit = sys.maxsize  # the whole split, not evaluation.limit
    return evaluate_run(params, run_dir, split=split, tag=tag, adapter=adapter, limit=limit,
                        cache=cache, model=model, log=log,
                        questions=None if questions is None else list(questions))
