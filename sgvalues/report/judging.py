"""What a reader of chapter 6 needs from the judge's tables: findings in words, compact tables.

The judge stage (:mod:`sgvalues.judge`) computes win rates, position consistency and verdict
shares; this module only says what they mean for the run at hand, so the chapter's first
paragraph is computed from its own tables and cannot contradict them.
"""

from __future__ import annotations

import re

import pandas as pd

from sgvalues.report.format import fmt_count, fmt_rate

__all__ = ["judge_findings", "win_rate_table", "degenerate_answer"]


def _span(values: pd.Series) -> str:
    lo, hi = float(values.min()), float(values.max())
    return fmt_rate(lo) if fmt_rate(lo) == fmt_rate(hi) else f"{fmt_rate(lo)} to {fmt_rate(hi)}"


def judge_findings(win_rates: pd.DataFrame, shares: pd.DataFrame) -> str:
    """Markdown saying what the judge could and could not tell on this run.

    Parameters
    ----------
    win_rates : DataFrame
        ``judge.win_rate_table`` output: ``candidate, dimension, n_used, win_rate,
        position_consistency`` and, in logprob mode, ``soft_win_rate``.
    shares : DataFrame
        ``judge.verdict_shares`` output: ``candidate, dimension, order, A, B, tie, unparseable``.

    Notes
    -----
    A verdict that follows the slot, not the answer, gives one win and one loss over the two
    orders, so the win rate is exactly :math:`\\tfrac12` whatever the answers; position
    consistency :math:`\\mathrm{PC}` (share of items whose verdict survives the swap) is then 0.
    The text reports, in this order: a judge that said one verdict every time; else the range
    of PC and of the win rates; the range of the soft win rate when present; and how many items
    the figures rest on.

    Examples
    --------
    >>> wr = pd.DataFrame({"candidate": ["sft"], "dimension": ["overall"], "n_used": [2],
    ...                    "win_rate": [0.5], "position_consistency": [0.0], "soft_win_rate": [0.497]})
    >>> sh = pd.DataFrame({"candidate": ["sft"] * 2, "dimension": ["overall"] * 2, "order": [1, 2],
    ...                    "A": [1.0, 1.0], "B": [0.0, 0.0], "tie": [0.0, 0.0], "unparseable": [0.0, 0.0]})
    >>> print(judge_findings(wr, sh))  # doctest: +NORMALIZE_WHITESPACE
    **What the judge could tell on this run.** The judge answered "A" in every verdict, in both
    orders: its verdicts follow the position of the answers, not their content, so every win rate
    is 0.500 by construction and says nothing about the candidates. Its probabilities lean a
    little (soft win rate 0.497), the only trace of a preference it shows. These figures rest on 2
    items per candidate and dimension.
    """
    if win_rates.empty:
        return "**What the judge could tell on this run.** Nothing: no item was judged in both orders."
    parts = ["**What the judge could tell on this run.**"]
    verdict_cols = [c for c in ("A", "B", "tie") if c in shares.columns]
    constant = None
    for v in verdict_cols:
        if len(shares) and (shares[v] >= 1.0 - 1e-9).all():
            constant = v
    pc = win_rates["position_consistency"]
    if constant is not None:
        if constant == "tie":
            parts.append('The judge answered "tie" in every verdict: it never told the answers apart, so '
                         f"every win rate is {fmt_rate(0.5)} by construction.")
        else:
            parts.append(f'The judge answered "{constant}" in every verdict, in both orders: its verdicts follow '
                         "the position of the answers, not their content, so every win rate is "
                         f"{fmt_rate(0.5)} by construction and says nothing about the candidates.")
    else:
        parts.append(f"Position consistency ranges over {_span(pc)} (1 = every verdict survives the swap), "
                     f"and win rates over {_span(win_rates['win_rate'])}.")
        if (pc < 0.5).all():
            parts.append("Fewer than half of the verdicts survive the swap in every row, so position, more "
                         "than content, drives this judge; read the win rates with that in mind.")
    if "soft_win_rate" in win_rates.columns and win_rates["soft_win_rate"].notna().any():
        soft = win_rates["soft_win_rate"].dropna()
        if (soft.round(3) == 0.5).all():
            parts.append(f"Its probabilities do not lean either way (soft win rate {fmt_rate(0.5)} throughout).")
        else:
            parts.append(f"Its probabilities lean a little (soft win rate {_span(soft)}), the only trace of a "
                         "preference it shows." if constant is not None else
                         f"Its probabilities give soft win rates of {_span(soft)}.")
    n = win_rates["n_used"]
    n_text = fmt_count(n.iloc[0]) if n.nunique() == 1 else f"{fmt_count(n.min())} to {fmt_count(n.max())}"
    parts.append(f"These figures rest on {n_text} items per candidate and dimension.")
    return " ".join(parts)


def win_rate_table(win_rates: pd.DataFrame) -> pd.DataFrame:
    """The win-rate table in the columns a reader needs, the interval in one cell.

    Returns ``candidate, dimension, items, left out, win rate, 95% CI, soft win rate, W/T/L``
    (``soft win rate`` only when the judge gave probabilities; ``W/T/L`` counts single-order
    wins, ties and losses).

    Examples
    --------
    >>> wr = pd.DataFrame({"candidate": ["sft"], "dimension": ["overall"], "n_used": [24],
    ...     "n_unparseable_items": [1], "win_rate": [0.6], "ci_low": [0.45], "ci_high": [0.75],
    ...     "wins": [20], "ties": [4], "losses": [24], "soft_win_rate": [float("nan")]})
    >>> win_rate_table(wr).iloc[0].to_dict()
    {'candidate': 'sft', 'dimension': 'overall', 'items': 24, 'left out': 1, 'win rate': 0.6, '95% CI': '[0.450, 0.750]', 'W/T/L': '20/4/24'}
    """
    out = pd.DataFrame({
        "candidate": win_rates["candidate"], "dimension": win_rates["dimension"],
        "items": win_rates["n_used"], "left out": win_rates["n_unparseable_items"],
        "win rate": win_rates["win_rate"],
        "95% CI": [f"[{fmt_rate(a)}, {fmt_rate(b)}]" for a, b in zip(win_rates["ci_low"], win_rates["ci_high"])],
    })
    if "soft_win_rate" in win_rates.columns and win_rates["soft_win_rate"].notna().any():
        out["soft win rate"] = win_rates["soft_win_rate"]
    out["W/T/L"] = [f"{fmt_count(w)}/{fmt_count(t)}/{fmt_count(n_loss)}"
                    for w, t, n_loss in zip(win_rates["wins"], win_rates["ties"], win_rates["losses"])]
    return out.reset_index(drop=True)


_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")


def degenerate_answer(text) -> str | None:
    """``"empty"``, ``"looping"`` (a sentence of 4+ words said twice) or ``None`` for a usable answer.

    Annotators should not be asked to rate an empty or looping output: there is nothing to judge.

    Examples
    --------
    >>> degenerate_answer(""), degenerate_answer(None)
    ('empty', 'empty')
    >>> degenerate_answer("I am a member. I am a member of it. I am a member of it.")
    'looping'
    >>> degenerate_answer("Family matters most to me. Faith comes second.") is None
    True
    """
    if text is None or (isinstance(text, float) and pd.isna(text)) or not str(text).strip():
        return "empty"
    seen = set()
    for s in _SENTENCE.findall(str(text)):
        key = " ".join(s.lower().split()).rstrip(".!?")
        if len(key.split()) >= 4:
            if key in seen:
                return "looping"
            seen.add(key)
    return None
