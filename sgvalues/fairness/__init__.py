"""Is the model equally good for every subgroup? Fairness statistics, per-attribute bias, uncertainty.

Every statistic here starts from the **predictions tables** of the runs present
(``runs/<run>/predictions/<tag>_<split>.csv``, tag ``base`` or ``sft``) gathered by
:func:`sgvalues.evaluate.load_run_predictions`, scored per sample by
:func:`sgvalues.metrics.score_samples` (an invalid or refused answer is wrong and has normalised
error 1), then:

1. per-subgroup accuracy and NMAE (:func:`subgroup_scores`) and their spread across subgroups,
   the **normalised range** and the **coefficient of variation** (:func:`fairness_table`);
2. per-attribute bias: each persona level (e.g. ``Female``, ``65+``) scored over every subgroup
   that contains it, the gap between the best and worst level of each attribute, and which
   levels a model favours (:func:`level_scores`, :func:`attribute_gaps`, :func:`favoured_levels`);
3. base vs SFT: the paper's ablation table and the "fairness paradox" figure
   (:func:`ablation_table`, :func:`plot_fairness_paradox`);
4. uncertainty: cluster bootstrap intervals over each state's own questions
   (:func:`bootstrap_fairness`) and a paired sign-flip permutation test of base vs SFT over the
   per-question sums (:func:`question_permutation_test`, :func:`permutation_tests`), Holm-adjusted
   within a family of tests (:func:`holm`).

Example
-------
The paper's ablation (*published*), the table our base vs SFT runs are set beside:

>>> published_ablation()[["statistic", "base", "sft"]]
          statistic  base    sft
0   Acc Norm. Range  0.24  0.179
1  NMAE Norm. Range  0.28  0.336

Modules
-------
:mod:`~sgvalues.fairness.measures`
    the two spread statistics (normalised range, coefficient of variation), their numerators
    (absolute range, standard deviation) and
    :class:`FairnessWarning`.
:mod:`~sgvalues.fairness.tables`
    predictions gathered and listed, persona levels of each sample, per-subgroup scores and
    :func:`fairness_table`, per-attribute bias, the base vs SFT ablation table.
:mod:`~sgvalues.fairness.uncertainty`
    bootstrap intervals over questions and paired sign-flip permutation tests.

What the book shows of it (chapter 07's tables and figures) lives in
:mod:`sgvalues.report.fairness` and :mod:`sgvalues.report.figures`.
"""

from __future__ import annotations

from sgvalues.fairness.measures import (FairnessWarning, absolute_range, coefficient_of_variation, normalized_range,
                                        standard_deviation)
from sgvalues.fairness.tables import (ATTRIBUTES, ablation_table, attribute_gaps, fairness_table, favoured_levels,
                                      gather_predictions, level_scores, published_ablation,
                                      run_inventory, sample_levels, subgroup_scores)
from sgvalues.fairness.uncertainty import (PERMUTATION_COLUMNS, bootstrap_fairness, holm, paired_permutation_test,
                                           permutation_tests, question_permutation_test)

__all__ = [
    "ATTRIBUTES",
    "FairnessWarning",
    "normalized_range",
    "coefficient_of_variation",
    "absolute_range",
    "standard_deviation",
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
    "bootstrap_fairness",
    "paired_permutation_test",
    "question_permutation_test",
    "holm",
    "permutation_tests",
    "PERMUTATION_COLUMNS",
]
