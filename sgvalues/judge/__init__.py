"""Open-ended answers, a pairwise LLM judge with position swaps, and its calibration.

The structured evaluation asks for an option code; here the model answers the survey question
in its own words, as the persona (``prompts.open_messages``: persona + question, no options).
A *candidate* (the base model, and the SFT model when ``runs/<run>/adapter`` exists) is
compared with a *reference* model (paper: GPT-4.1) by a *judge* model (paper:
Mistral-Small-3.1-24B) on several dimensions. The judge sees the persona, the question, the
survey's majority answer of this subgroup as evidence of its values, and two answers "A" and
"B"; it answers A, B or tie. Every pair is judged in both orders (candidate as A, then as B)
so that a judge that always prefers the first (or second) answer cannot make a model look
better than it is: a position-biased verdict turns into one win and one loss, i.e. 0.5.

Stages and files (``runs/<run>/judge/``):

``generations.csv``
    ``sample_id, question_id, theme, stratum, subgroup, role, text, refused``; ``role`` is
    ``candidate_base``, ``candidate_sft`` or ``reference``.
``verdicts.csv``
    ``sample_id, question_id, theme, stratum, subgroup, candidate, dimension, order,
    role_a, role_b, verdict, outcome, raw_output``: ``candidate`` is ``base``/``sft``,
    ``order`` 1 (candidate is A) or 2 (candidate is B), ``verdict`` ``A``/``B``/``tie``/
    ``unparseable``, ``outcome`` the candidate's ``win``/``tie``/``loss``/``unparseable``.
``win_rates.csv``
    one row per (candidate, dimension): win rate, bootstrap CI, position consistency, counts.
``refusals.csv``
    refusal rate per role and theme (``theme = "all"`` for the total).

Calibration against people: :func:`export_annotation_sheet` writes a sheet for a seminar
(``book/annotation_guide.md`` explains the rubric and the CSV format) and
:func:`agreement_table` compares the judge with the annotators (human-AI) and the
annotators with each other (human-human) by weighted Cohen's kappa.

Example
-------
>>> parse_verdict("**Answer: B** -- it sounds like the persona.")
'B'
>>> o1, o2 = ["win", "win", "tie"], ["loss", "win", "tie"]   # candidate's outcomes per order
>>> win_rate(o1, o2), position_consistency(o1, o2)
(0.6666666666666666, 0.6666666666666666)

Modules
-------
:mod:`~sgvalues.judge.verdicts`
    roles, verdicts, dimensions; choice of pairs; the judge's prompt; verdict parsing.
:mod:`~sgvalues.judge.statistics`
    win rate, soft win rate, position consistency, bootstrap CI, weighted kappa; the
    ``win_rates``, ``refusals`` and verdict-share tables.
:mod:`~sgvalues.judge.annotation`
    annotation sheets, human ratings, human-AI and human-human agreement.
:mod:`~sgvalues.judge.stage`
    generation, judging and :func:`judge_run` (``sgvalues judge``).

What the book shows of it (examples, the paper's figures, the two figures) lives in
:mod:`sgvalues.report.judging`, which imports this package (never the other way round).
"""

from __future__ import annotations

from sgvalues.judge.annotation import ANNOTATION_COLUMNS, agreement_table, export_annotation_sheet, read_annotations
from sgvalues.judge.stage import (configure_parser, generate_answers, judge_pairs, judge_run,
                                  main, resolve_judge_mode)
from sgvalues.judge.statistics import (bootstrap_win_rate, paired_scores, position_consistency, refusal_table,
                                       soft_win_rate, verdict_shares, weighted_kappa, win_rate, win_rate_table,
                                       soft_scores, debiased_verdicts, TIE_BAND)
from sgvalues.judge.verdicts import (DIMENSIONS, OUTCOME_SCORE, OUTCOMES, ROLES, VERDICTS, judge_messages,
                                     majority_answer, parse_verdict, persona_text, question_text, select_pairs,
                                     verdict_to_outcome)
from sgvalues.models.base import is_refusal

__all__ = [
    "ROLES",
    "VERDICTS",
    "OUTCOMES",
    "OUTCOME_SCORE",
    "DIMENSIONS",
    "ANNOTATION_COLUMNS",
    "is_refusal",
    "parse_verdict",
    "verdict_to_outcome",
    "paired_scores",
    "win_rate",
    "soft_win_rate",
    "soft_scores",
    "debiased_verdicts",
    "TIE_BAND",
    "position_consistency",
    "bootstrap_win_rate",
    "weighted_kappa",
    "select_pairs",
    "persona_text",
    "question_text",
    "majority_answer",
    "judge_messages",
    "generate_answers",
    "judge_pairs",
    "win_rate_table",
    "refusal_table",
    "verdict_shares",
    "export_annotation_sheet",
    "read_annotations",
    "agreement_table",
    "judge_run",
    "resolve_judge_mode",
    "configure_parser",
    "main",
]
