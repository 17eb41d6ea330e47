"""Refusals on the paper's sensitive questions, in words and beside the paper (chapters 05 and 06).

The rates are computed by :func:`sgvalues.sensitive.refusal_rates`; this module only shows them.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from sgvalues.published import PUBLISHED_LABEL, published
from sgvalues.report.format import fmt_count, fmt_rate

__all__ = ["refusal_sentence", "refusals_beside_paper"]


def refusal_sentence(rates: pd.DataFrame, what: str = "answers") -> str:
    """One computed sentence per state from :func:`sgvalues.sensitive.refusal_rates` (for a notebook's
    prose), in the book's number format (:func:`fmt_count`, :func:`fmt_rate`).

    >>> r = pd.DataFrame([{"state": "base", "n_sensitive": 4, "refused_sensitive": 1, "refusal_rate_sensitive": 0.25,
    ...                    "n_other": 1200, "refused_other": 0, "refusal_rate_other": 0.0}])
    >>> refusal_sentence(r)
    'base: 1 of 4 answers on sensitive questions refused (rate 0.250), 0 of 1,200 on the other questions (rate 0.000).'
    """
    parts = []
    for r in rates.itertuples():
        if r.n_sensitive == 0:
            sens = f"no {what} on sensitive questions"
        else:
            sens = (f"{fmt_count(r.refused_sensitive)} of {fmt_count(r.n_sensitive)} {what} on sensitive "
                    f"questions refused (rate {fmt_rate(r.refusal_rate_sensitive)})")
        other = (f"{fmt_count(r.refused_other)} of {fmt_count(r.n_other)} on the other questions "
                 f"(rate {fmt_rate(r.refusal_rate_other)})" if r.n_other else "none on other questions")
        parts.append(f"{r.state}: {sens}, {other}.")
    return " ".join(parts)


def refusals_beside_paper(rates: pd.DataFrame, paper_states: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Our refusal rates on sensitive questions beside the paper's, per model state.

    ``paper_states`` maps our state names to the paper's (``base``, ``sft``) where they differ,
    e.g. ``{"zeroshot": "base"}`` for notebook 05's untuned model.

    Columns ``state``, ``n_sensitive``, ``refusal_rate_sensitive``, ``refusal_rate_other`` (ours,
    from :func:`sgvalues.sensitive.refusal_rates`) and the published figure labelled
    ``sgvalues.published.PUBLISHED_LABEL``: the paper's base rate as a fraction and its SFT
    wording ("nearly zero") as text; ``–`` for states the paper does not report (the reference).

    >>> r = pd.DataFrame([{"state": "base", "n_sensitive": 4, "refused_sensitive": 1, "refusal_rate_sensitive": 0.25,
    ...                    "n_other": 8, "refused_other": 0, "refusal_rate_other": 0.0}])
    >>> refusals_beside_paper(r).iloc[0, -1]
    '0.067'
    """
    finding = published()["refusal_finding"]
    paper = {"base": fmt_rate(finding["base_percent"] / 100), "sft": str(finding["sft"])}
    out = rates[["state", "n_sensitive", "refusal_rate_sensitive", "refusal_rate_other"]].copy()
    rename = dict(paper_states or {})
    out[PUBLISHED_LABEL] = [paper.get(rename.get(state, state), "–") for state in out["state"]]
    return out.reset_index(drop=True)
