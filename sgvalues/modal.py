"""Modal answers and answer distributions per (question, subgroup).

The **modal answer** of a subgroup to a question is the substantive option most of its members
chose (weighted by the survey weight ``weight`` when ``weighted=True``). It is the target the
model must reproduce. Ties go to the lowest code and are counted (``n_tied_modes``; 1 = no tie);
every tied code is kept (``tied_modes``, JSON list, from the tallies, not the rounded shares), and
the scorer (:mod:`sgvalues.metrics`) counts any of them as correct.
The **distribution** is the share of each substantive option among the valid answers, as JSON
code -> share with every option of the question present, in ascending code order.

Everything is computed for all questions and subgroups at once: one weighted ``bincount`` over
(subgroup, question, option) cells, so ``prepare`` takes well under a second on the survey.

Example
-------
>>> import pandas as pd
>>> from sgvalues.subgroups import build_subgroups
>>> r = pd.DataFrame({"respondent_id": [1, 2, 3, 4], "weight": [1.0, 1.0, 1.0, 3.0],
...                   "sex": ["Male", "Male", "Female", "Female"], "age_group": "65+",
...                   "ethnicity": "Chinese", "religion": "None", "Q1": [1, 2, 2, float("nan")]})
>>> q = pd.DataFrame({"question_id": ["Q1"], "options": ['{"1": "Yes", "2": "No"}']})
>>> sg = build_subgroups(r, min_n=2)
>>> m = modal_answers(r, q, sg)
>>> m.loc[m.subgroup == "sex:Male", ["n_valid", "modal_answer", "n_tied_modes", "distribution"]].values.tolist()
[[2, 1, 2, '{"1": 0.5, "2": 0.5}']]
>>> m.loc[m.subgroup == "sex:Female", ["n_valid", "modal_answer", "distribution"]].values.tolist()
[[1, 2, '{"1": 0.0, "2": 1.0}']]
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from sgvalues.subgroups import membership_pairs

__all__ = [
    "MODAL_COLUMNS",
    "option_codes",
    "modal_answers",
    "parse_distribution",
    "modal_examples",
]

MODAL_COLUMNS = ["question_id", "stratum", "subgroup", "n_valid", "modal_answer", "n_tied_modes", "tied_modes",
                 "distribution"]

#: relative tolerance under which two weighted tallies count as tied (sums of float weights
#: taken in different orders differ in the last bits; unweighted tallies are exact integers)
TIE_RTOL = 1e-9

#: decimals kept in the distribution JSON (shares of at most a few thousand answers)
SHARE_DECIMALS = 6


def option_codes(options) -> list[int]:
    """Substantive codes of a question, ascending, from its ``options`` (JSON string or mapping).

    >>> option_codes('{"10": "A great deal", "1": "None at all"}')
    [1, 10]
    """
    if isinstance(options, str):
        options = json.loads(options)
    return sorted(int(k) for k in options)


def parse_distribution(distribution) -> dict[int, float]:
    """A distribution (JSON string or mapping) as ``{code: share}`` with int codes.

    >>> parse_distribution('{"1": 0.25, "2": 0.75}')
    {1: 0.25, 2: 0.75}
    """
    if isinstance(distribution, str):
        distribution = json.loads(distribution)
    return {int(k): float(v) for k, v in distribution.items()}


def _check(respondents: pd.DataFrame, questions: pd.DataFrame, subgroups: pd.DataFrame, weighted: bool):
    for col in ("question_id", "options"):
        if col not in questions.columns:
            raise ValueError(f"questions: missing column {col!r}")
    for col in ("stratum", "subgroup"):
        if col not in subgroups.columns:
            raise ValueError(f"subgroups: missing column {col!r}")
    missing = [q for q in questions["question_id"] if q not in respondents.columns]
    if missing:
        raise ValueError(f"respondents ({respondents.attrs.get('source', 'table')}): no column for question(s) "
                         f"{missing[:10]}{' ...' if len(missing) > 10 else ''}; expected one column per selected question")
    if weighted:
        if "weight" not in respondents.columns:
            raise ValueError("respondents: weighted=True needs a 'weight' column")
        w = respondents["weight"].to_numpy(float)
        bad = ~np.isfinite(w) | (w <= 0)
        if bad.any():
            raise ValueError(f"respondents: column 'weight' has {int(bad.sum())} value(s) that are not positive "
                             f"finite numbers (e.g. {w[bad][:3].tolist()}); expected W_WEIGHT > 0")


def modal_answers(respondents: pd.DataFrame, questions: pd.DataFrame, subgroups: pd.DataFrame,
                  weighted: bool = False) -> pd.DataFrame:
    """Modal answer, ties and answer distribution of every subgroup for every question.

    Parameters
    ----------
    respondents : DataFrame
        Respondents table (``data.load_wvs``): axis columns, ``weight`` and one float column per
        question (missing codes already NaN).
    questions : DataFrame
        Catalogue rows with ``question_id`` and ``options`` (JSON code -> label).
    subgroups : DataFrame
        Kept subgroups (``subgroups.build_subgroups``).
    weighted : bool
        Tally answers with ``weight`` instead of counting respondents.

    Returns
    -------
    DataFrame
        ``question_id, stratum, subgroup, n_valid, modal_answer, n_tied_modes, tied_modes,
        distribution`` (``tied_modes``: JSON list of every modal code, ascending),
        ordered by the rows of ``questions`` then of ``subgroups``. No row for a pair with no
        valid answer.

    Notes
    -----
    For subgroup :math:`g`, question :math:`q` and option :math:`c`, the tally is
    :math:`T_{gqc} = \\sum_{i \\in g,\\, x_{iq} = c} w_i` (:math:`w_i = 1` unweighted). A valid
    answer is one of the question's substantive codes; ``n_valid`` counts respondents with one
    (unweighted in both modes). The mode is :math:`\\min \\arg\\max_c T_{gqc}` (ties -> lowest
    code), ``tied_modes`` :math:`= \\arg\\max_c T_{gqc}` (every code whose tally is within a relative
    ``TIE_RTOL`` of the top), ``n_tied_modes`` its size and the share
    :math:`p_{gqc} = T_{gqc} / \\sum_{c'} T_{gqc'}`.
    """
    _check(respondents, questions, subgroups, weighted)
    qids = questions["question_id"].tolist()
    per_q = [option_codes(o) for o in questions["options"]]
    codes = np.array(sorted({c for cs in per_q for c in cs}), dtype=float)
    n_q, n_c, n_g = len(qids), len(codes), len(subgroups)
    if n_q == 0 or n_g == 0 or n_c == 0:
        return pd.DataFrame(columns=MODAL_COLUMNS)
    allowed = np.zeros((n_q, n_c), dtype=bool)
    for j, cs in enumerate(per_q):
        allowed[j, np.searchsorted(codes, cs)] = True

    answers = respondents[qids].to_numpy(dtype=float)
    pos = np.clip(np.searchsorted(codes, np.nan_to_num(answers, nan=-np.inf)), 0, n_c - 1)
    valid = ~np.isnan(answers) & (codes[pos] == answers) & allowed[np.arange(n_q)[None, :], pos]
    stray = ~np.isnan(answers) & ~valid
    if stray.any():
        cols = np.flatnonzero(stray.any(axis=0))
        examples = {qids[j]: sorted(set(answers[stray[:, j], j].tolist()))[:5] for j in cols[:5]}
        warnings.warn(f"respondents: {int(stray.sum())} answer(s) outside their question's options were ignored "
                      f"(question: values, first few) {examples}", stacklevel=2)

    # Membership as a dense respondents x subgroups matrix; one tensor product then tallies
    # every (subgroup, question, option) cell at once (BLAS; ~0.1 s for the survey).
    rows, groups = membership_pairs(respondents, subgroups)
    member = np.zeros((len(respondents), n_g))
    member[rows, groups] = 1.0
    mass = member * respondents["weight"].to_numpy(float)[:, None] if weighted else member
    tally = np.empty((n_g, n_q, n_c))
    for k in range(n_c):                                                    # n_g x n_q per option
        tally[:, :, k] = mass.T @ (valid & (pos == k)).astype(float)
    n_valid = np.rint(member.T @ valid.astype(float)).astype(np.int64)      # n_g x n_q, head counts

    masked = np.where(allowed[None, :, :], tally, -np.inf)
    top = masked.max(axis=2)
    mode_pos = masked.argmax(axis=2)                 # first maximum = lowest code
    tied = (masked >= (top * (1 - TIE_RTOL))[:, :, None]) & allowed[None, :, :]
    n_tied = tied.sum(axis=2)
    total = tally.sum(axis=2)

    g_idx, q_idx = np.nonzero(n_valid > 0)           # (subgroup, question) pairs with answers
    order = np.lexsort((g_idx, q_idx))               # question order first, then subgroup order
    g_idx, q_idx = g_idx[order], q_idx[order]
    shares = np.round(tally[g_idx, q_idx, :] / total[g_idx, q_idx, None], SHARE_DECIMALS)
    strata = subgroups["stratum"].to_numpy()
    sids = subgroups["subgroup"].to_numpy()
    dists = [""] * len(g_idx)
    tied_sel = tied[g_idx, q_idx, :]
    tied_json = [json.dumps(codes[row].astype(int).tolist()) for row in tied_sel]
    for q in np.unique(q_idx).tolist():
        # one JSON template per question: its codes in ascending order, shares filled in
        cs = per_q[q]
        keys = [json.dumps(str(c)) + ": " for c in cs]
        sel = np.flatnonzero(q_idx == q)
        for i, vals in zip(sel.tolist(), shares[np.ix_(sel, np.searchsorted(codes, cs))].tolist()):
            dists[i] = "{" + ", ".join(k + repr(v) for k, v in zip(keys, vals)) + "}"
    out = pd.DataFrame({
        "question_id": np.asarray(qids, dtype=object)[q_idx],
        "stratum": strata[g_idx],
        "subgroup": sids[g_idx],
        "n_valid": n_valid[g_idx, q_idx].astype(np.int64),
        "modal_answer": codes[mode_pos[g_idx, q_idx]].astype(np.int64),
        "n_tied_modes": n_tied[g_idx, q_idx].astype(np.int64),
        "tied_modes": tied_json,
        "distribution": dists,
    })
    return out.reset_index(drop=True)


def modal_examples(modal: pd.DataFrame, questions: pd.DataFrame, question_ids, strata=None) -> pd.DataFrame:
    """A readable excerpt: for each question, its wording, and each subgroup's mode as a label.

    Returns ``question_id, wording, subgroup, n_valid, modal_answer, modal_label, share`` (the
    modal option's share), for the given ``question_ids`` and (optionally) ``strata``.
    """
    q = questions.set_index("question_id")
    part = modal[modal["question_id"].isin(list(question_ids))]
    if strata is not None:
        part = part[part["stratum"].isin(list(strata))]
    rows = []
    for r in part.itertuples(index=False):
        raw = q.at[r.question_id, "options"]
        opts = {str(k): v for k, v in (json.loads(raw) if isinstance(raw, str) else raw).items()}
        rows.append({"question_id": r.question_id,
                     "wording": q.at[r.question_id, "wording"] if "wording" in q.columns else "",
                     "subgroup": r.subgroup, "n_valid": r.n_valid, "modal_answer": r.modal_answer,
                     "modal_label": opts.get(str(r.modal_answer), ""),
                     "share": parse_distribution(r.distribution)[r.modal_answer]})
    return pd.DataFrame(rows)
