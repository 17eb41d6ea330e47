"""What chapters 01-03 say about the prepared data, computed from its tables.

Each function turns a stage's output (the prepare summary, the diversity table, the leakage
report) into the sentence or table a chapter shows, so a notebook cell stays a few lines and
no sentence can contradict the run. Every number goes through :mod:`sgvalues.report.format`.

Example
-------
>>> print(leakage_sentence({"n_train_combos": 40, "n_ood_combos": 12, "ood_combos_with_levels_seen": 12}))
... # doctest: +ELLIPSIS
Leakage check passed: 40 training and 12 OOD level combinations, ... **12 of 12** have every level seen, ...
"""

from __future__ import annotations

import pandas as pd

from sgvalues.report.format import fmt_count, fmt_rate

__all__ = ["prepared_sentence", "prepared_summary", "mds_correlation", "leakage_sentence"]


def prepared_sentence(chapter) -> str:
    """How long the run's data folder took (a :class:`~sgvalues.report.chapters.Chapter`).

    >>> from types import SimpleNamespace
    >>> from pathlib import Path
    >>> prepared_sentence(SimpleNamespace(run=Path("runs/r"), prepare_s=2.4))
    'Prepared folder `runs/r/data` ready in 2 s (reused as is when its inputs have not changed).'
    """
    return (f"Prepared folder `runs/{chapter.run.name}/data` ready in {chapter.prepare_s:.0f} s "
            "(reused as is when its inputs have not changed).")


def prepared_summary(summary: dict, n_modal: int) -> str:
    """The prepare summary (``prepare_summary.json``) as a Markdown list.

    Parameters
    ----------
    summary : dict
        ``n_questions``, ``n_excluded_questions``, ``subgroups``, ``missing_pairs`` and ``ties``
        (each ``{"train": n, "ood": n}``) and ``source_sha256``.
    n_modal : int
        Rows of ``modal_answers.csv``: the tie share is over these.
    """
    s = summary
    n_ties = s["ties"]["train"] + s["ties"]["ood"]
    return "\n".join([
        f"- questions: {fmt_count(s['n_questions'])} selected, {fmt_count(s['n_excluded_questions'])} excluded",
        f"- subgroups: {fmt_count(s['subgroups']['train'])} train, {fmt_count(s['subgroups']['ood'])} OOD",
        f"- modal answers: {fmt_count(n_modal)} (question, subgroup) pairs; "
        f"{fmt_count(s['missing_pairs']['train'] + s['missing_pairs']['ood'])} pairs without any valid answer",
        f"- ties (`n_tied_modes > 1`): {fmt_count(s['ties']['train'])} train, {fmt_count(s['ties']['ood'])} OOD, "
        f"a share of {fmt_rate(n_ties / n_modal if n_modal else None)} of the modal answers",
        f"- source SHA-256: `{s['source_sha256'][:16]}…`"])


def mds_correlation(table: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """Chapter 02: how well MDS and the mean Wasserstein distance agree, in words and as a table.

    Returns the sentence (question-level Spearman rho, its strength and what it means) and the
    table ``level, spearman_rho, p_value, n`` for ``level`` ``question`` and ``cell``
    (:func:`sgvalues.diversity.mds_wasserstein_correlation`; ``p_value`` formatted ``1.2e-03``).
    Strength: strong for :math:`|\\rho| \\ge 0.7`, moderate for :math:`\\ge 0.4`, else weak.
    """
    from sgvalues.diversity import mds_wasserstein_correlation

    rows = []
    for level in ("question", "cell"):
        r = mds_wasserstein_correlation(table, level=level)
        rows.append({"level": level, "spearman_rho": r["rho"], "p_value": r["p_value"], "n": r["n"]})
    corr = pd.DataFrame(rows)
    rho = corr["spearman_rho"].iloc[0]
    strength = "strong" if abs(rho) >= 0.7 else "moderate" if abs(rho) >= 0.4 else "weak"
    sentence = (f"At the question level the two scores agree with ρ = **{fmt_rate(rho)}**: a {strength}, "
                f"{'positive' if rho > 0 else 'negative'} rank correlation"
                + (", far from 1: the two scores measure related but different things." if abs(rho) < 0.9
                   else ", close to 1: here the mode-only score summarises the distributions well."))
    return sentence, corr.assign(p_value=corr["p_value"].map(lambda p: f"{p:.1e}"))


def leakage_sentence(report: dict) -> str:
    """Chapter 03: what :func:`sgvalues.split.assert_no_leakage` found, in words."""
    seen, n_ood = report["ood_combos_with_levels_seen"], report["n_ood_combos"]
    return (f"Leakage check passed: {fmt_count(report['n_train_combos'])} training and {fmt_count(n_ood)} "
            f"OOD level combinations, no OOD stratum or combination in training. Of the OOD combinations, "
            f"**{fmt_count(seen)} of {fmt_count(n_ood)}** have every level seen, one at a time, in training"
            + (": all of them, which is what makes the test compositional rather than a test on unseen levels."
               if seen == n_ood else
               "; the others contain a level training never showed, so they test unseen levels, not composition."))
