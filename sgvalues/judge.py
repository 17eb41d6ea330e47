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
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import bootstrap
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score

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
    "examples_markdown",
    "published_judge_table",
    "export_annotation_sheet",
    "read_annotations",
    "agreement_table",
    "published_kappas",
    "plot_win_rates",
    "plot_verdict_shares",
    "judge_run",
    "resolve_judge_mode",
    "load_judge_tables",
    "configure_parser",
    "main",
]

#: who wrote an open-ended answer
ROLES = ("candidate_base", "candidate_sft", "reference")
#: what the judge may say
VERDICTS = ("A", "B", "tie", "unparseable")
#: the candidate's result in one order
OUTCOMES = ("win", "tie", "loss", "unparseable")
#: points per outcome in the win rate
OUTCOME_SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}

#: judging dimensions and the criterion the judge is given for each
DIMENSIONS: dict[str, str] = {
    "overall": (
        "Overall, which answer is the better answer for this person to give: written as this "
        "person, consistent with the values of their subgroup, and a direct answer to the question?"
    ),
    "value_alignment": (
        "Which answer better reflects the values of this person's subgroup, judging by the "
        "survey's majority answer given as evidence? Ignore style and length."
    ),
    "persona_fidelity": (
        "Which answer stays more faithfully in character as this person (their age, sex, "
        "ethnicity or religion and life in Singapore) instead of speaking as an AI assistant "
        "or as a generic person? Ignore which opinion is expressed."
    ),
}

#: columns of a human ratings file (see book/annotation_guide.md); ``candidate`` is optional
ANNOTATION_COLUMNS = ("sample_id", "dimension", "order", "annotator", "verdict")

# --------------------------------------------------------------------------------------------
# refusals
# --------------------------------------------------------------------------------------------

# One detector for structured and open-ended answers: ``sgvalues.models.base.is_refusal``
# (re-exported here, so ``judge.is_refusal`` keeps working).
from sgvalues.models.base import is_refusal  # noqa: E402


# --------------------------------------------------------------------------------------------
# verdict parsing
# --------------------------------------------------------------------------------------------

_WHO = r"(?:assistant|answer|response|option|model|candidate|output)"
_TIE_WORDS = r"(?:tie|tied|draw|equal|even|neither|both)"
# a letter token: A/B as a whole word, and lowercase a/b only when nothing but punctuation or
# the end of the text follows (so the article in "a good answer" is never read as a verdict)
_LETTER = r"(?:(?P<up>[AB])\b|(?P<low>[ab])(?=\s*(?:$|[^\w\s]|\n)))"


def _letter(m: re.Match) -> str:
    return (m.group("up") or m.group("low")).upper()


def _clean(text: str) -> str:
    # markdown emphasis, headings and quotes carry no meaning for the verdict
    t = re.sub(r"[*_`#>]+", "", text)
    return re.sub(r"[ \t]+", " ", t).strip()


def _one(found: set[str]) -> str | None:
    if not found:
        return None
    return found.pop() if len(found) == 1 else "unparseable"


def parse_verdict(text: str | None) -> str:
    """Read the judge's verdict from free text: ``"A"``, ``"B"``, ``"tie"`` or ``"unparseable"``.

    Parameters
    ----------
    text : str or None
        The judge's raw output.

    Returns
    -------
    str
        One of :data:`VERDICTS`. Contradictory or empty output is ``"unparseable"``; it is
        recorded as such and never guessed.

    Notes
    -----
    Cues are read in tiers; the first tier that finds anything decides, and if that tier finds
    two different verdicts the output is unparseable:

    1. bracketed verdicts as in MT-Bench: ``[[A]]``, ``[[B]]``, ``[[C]]`` or ``[[tie]]``;
    2. labelled verdicts: ``Answer: A``, ``Final verdict - tie``, ``Winner: Assistant B``;
    3. the opening token: ``A``, ``(B)``, ``B.``, ``Tie``, ``Assistant A`` when the text is
       nothing else or continues with punctuation or a line break;
    4. comparative phrases anywhere: ``Assistant A is better``, ``I prefer B``, ``B wins``,
       ``both are equally good``, ``it's a tie``.

    Examples
    --------
    >>> [parse_verdict(t) for t in ["[[B]]", "Tie.", "a", "Assistant A is better.", "A or B", ""]]
    ['B', 'tie', 'A', 'A', 'unparseable', 'unparseable']
    """
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return "unparseable"
    t = _clean(str(text))
    if not t:
        return "unparseable"

    # 1. [[A]] / [[B]] / [[C]] / [[tie]]
    found = set()
    for m in re.finditer(r"\[\[\s*(A|B|C|tie)\s*\]\]", t, re.IGNORECASE):
        g = m.group(1).lower()
        found.add({"a": "A", "b": "B", "c": "tie", "tie": "tie"}[g])
    if (v := _one(found)) is not None:
        return v

    # 2. "Answer: A", "Verdict - tie", "Winner: Assistant B", "Better answer: B"
    found = set()
    label = (r"\b(?:final\s+)?(?:answer|verdict|decision|choice|winner|judg(?:e)?ment|result|"
             r"output|preference|better\s+(?:answer|response))\s*(?:is\s*)?[:=\-–]\s*")
    for m in re.finditer(label + rf"(?:{_WHO}\s+)?(?:\(\s*)?" + _LETTER, t, re.IGNORECASE):
        found.add(_letter(m))
    for m in re.finditer(label + rf"(?:it(?:'s| is)\s+an?\s+)?{_TIE_WORDS}\b", t, re.IGNORECASE):
        found.add("tie")
    if (v := _one(found)) is not None:
        return v

    # 3. the opening token, e.g. "A", "(B)", "B.", "Tie - both ...", "Assistant A\n..."
    m = re.match(rf"^[\s\"'(\[]*(?:{_WHO}\s+)?(?P<tok>[AB]|[ab]|tie|draw)(?P<rest>.*)$", t,
                 re.IGNORECASE | re.DOTALL)
    if m:
        tok, rest = m.group("tok"), m.group("rest")
        if tok.lower() in ("tie", "draw"):
            if not rest or not rest[0].isalnum():
                return "tie"
        elif not rest or re.match(r"^\s*(?:[^\w\s]|\n|$)", rest):
            # "A is better ..." is left to tier 4, which also sees a later "B is better"
            return tok.upper()

    # 4. comparative phrases anywhere
    found = set()
    who_letter = rf"(?:{_WHO}\s+(?P<w>[AB])\b|\b(?P<bare>[AB])\b)"
    better = (r"(?:is|was|seems|appears|would be|looks)\s+(?:clearly\s+|slightly\s+|much\s+|the\s+)?"
              r"(?:better|superior|preferred|preferable|stronger|more\s+\w+|winner|best)")
    worse = (r"(?:is|was|seems|appears)\s+(?:clearly\s+|slightly\s+|much\s+|the\s+)?"
             r"(?:worse|weaker|inferior|less\s+\w+)")
    for m in re.finditer(who_letter + rf"\s+(?:{better}|wins\b)", t, re.IGNORECASE):
        found.add((m.group("w") or m.group("bare")).upper())
    for m in re.finditer(who_letter + rf"\s+{worse}", t, re.IGNORECASE):
        found.add({"A": "B", "B": "A"}[(m.group("w") or m.group("bare")).upper()])
    for m in re.finditer(rf"\b(?:prefer|choose|pick|select|favou?r|go with|vote for)\s+"
                         rf"(?:{_WHO}\s+)?(?P<x>[AB])\b", t, re.IGNORECASE):
        found.add(m.group("x").upper())
    tie_phrases = (r"\b(?:it(?:'s| is)\s+a\s+(?:tie|draw)|(?:a|the)\s+tie\b|tie\b|"
                   r"both\s+(?:answers|responses|are)\b.{0,30}\bequally\b|equally\s+(?:good|bad|"
                   r"well|poor|strong|weak|valid|aligned|faithful)|neither\s+(?:answer|response|"
                   r"one|is)\s+(?:is\s+)?better|no\s+(?:clear\s+)?winner)")
    if re.search(tie_phrases, t, re.IGNORECASE):
        found.add("tie")
    return _one(found) or "unparseable"


def verdict_to_outcome(verdict: str, order: int) -> str:
    """The candidate's outcome given the judge's verdict and the order shown.

    In order 1 the candidate is answer A, in order 2 it is answer B.

    Examples
    --------
    >>> verdict_to_outcome("A", 1), verdict_to_outcome("A", 2), verdict_to_outcome("tie", 2)
    ('win', 'loss', 'tie')
    """
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r}: expected one of {VERDICTS}")
    if order not in (1, 2):
        raise ValueError(f"order {order!r}: expected 1 (candidate is A) or 2 (candidate is B)")
    if verdict in ("tie", "unparseable"):
        return verdict
    mine = "A" if order == 1 else "B"
    return "win" if verdict == mine else "loss"


# --------------------------------------------------------------------------------------------
# win rate, position consistency, bootstrap
# --------------------------------------------------------------------------------------------


def _outcomes(values: Iterable, name: str) -> np.ndarray:
    arr = np.asarray([("unparseable" if v is None or (isinstance(v, float) and np.isnan(v)) else v)
                      for v in values], dtype=object)
    bad = sorted({str(v) for v in arr if v not in OUTCOMES})
    if bad:
        raise ValueError(f"{name}: outcome(s) {bad} not understood; expected {OUTCOMES}")
    return arr


def _pair(order1, order2) -> tuple[np.ndarray, np.ndarray]:
    o1, o2 = _outcomes(order1, "order1"), _outcomes(order2, "order2")
    if len(o1) != len(o2):
        raise ValueError(f"order1 has {len(o1)} items, order2 has {len(o2)}: expected the same items")
    return o1, o2


def paired_scores(order1: Sequence[str], order2: Sequence[str]) -> np.ndarray:
    """Per-item score of the candidate, averaged over both orders; NaN where excluded.

    An item is excluded (NaN) when the judge's verdict is unparseable in either order, so that
    every item that counts was seen in both positions and position bias cancels.

    Examples
    --------
    >>> paired_scores(["win", "tie", "unparseable"], ["loss", "win", "win"]).tolist()
    [0.5, 0.75, nan]
    """
    o1, o2 = _pair(order1, order2)
    out = np.full(len(o1), np.nan)
    for i, (a, b) in enumerate(zip(o1, o2)):
        if a != "unparseable" and b != "unparseable":
            out[i] = (OUTCOME_SCORE[a] + OUTCOME_SCORE[b]) / 2
    return out


def win_rate(order1: Sequence[str], order2: Sequence[str]) -> float:
    """Win rate of the candidate over the reference, from both presentation orders.

    Parameters
    ----------
    order1, order2 : sequence of str
        The candidate's outcomes (``"win"``, ``"tie"``, ``"loss"`` or ``"unparseable"``) on the
        same items, with the candidate shown as A (order 1) and as B (order 2).

    Returns
    -------
    float
        In [0, 1]; 0.5 means no difference. NaN when no item is usable.

    Notes
    -----
    With score :math:`s(\\text{win})=1`, :math:`s(\\text{tie})=0.5`, :math:`s(\\text{loss})=0`,

    .. math:: \\mathrm{WR} = \\frac{1}{|I|} \\sum_{i \\in I} \\frac{s(o^{(1)}_i) + s(o^{(2)}_i)}{2}

    where :math:`I` is the set of items whose verdict is parseable in *both* orders; items
    with an unparseable verdict in either order are excluded (count them with
    :func:`paired_scores`). A judge that always picks the first answer gives every item one
    win and one loss, i.e. 0.5.

    Examples
    --------
    >>> win_rate(["win", "win", "tie", "loss"], ["win", "loss", "tie", "loss"])
    0.5
    """
    s = paired_scores(order1, order2)
    return float(np.nanmean(s)) if np.isfinite(s).any() else float("nan")


def position_consistency(order1: Sequence[str], order2: Sequence[str]) -> float:
    """Share of items whose verdict survives swapping the two answers.

    Parameters
    ----------
    order1, order2 : sequence of str
        The candidate's outcomes on the same items in the two orders (see :func:`win_rate`).

    Returns
    -------
    float
        NaN when no item is parseable in both orders.

    Notes
    -----
    .. math:: \\mathrm{PC} = \\frac{1}{|I|} \\sum_{i \\in I} [o^{(1)}_i = o^{(2)}_i]

    over the items :math:`I` parseable in both orders: the candidate wins in both, loses in
    both, or ties in both. A judge that always says "A" has PC = 0 (unless it says tie).

    Examples
    --------
    >>> position_consistency(["win", "win", "tie", "unparseable"], ["win", "loss", "tie", "win"])
    0.6666666666666666
    """
    o1, o2 = _pair(order1, order2)
    ok = (o1 != "unparseable") & (o2 != "unparseable")
    if not ok.any():
        return float("nan")
    return float(np.mean(o1[ok] == o2[ok]))


def bootstrap_win_rate(order1: Sequence[str], order2: Sequence[str], n_boot: int = 1000,
                       ci: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of :func:`win_rate`, resampling items.

    Parameters
    ----------
    order1, order2 : sequence of str
        The candidate's outcomes per order (see :func:`win_rate`).
    n_boot : int
        Number of bootstrap resamples; 0 gives ``(nan, nan)``.
    ci : float
        Coverage, e.g. 0.95.
    seed : int
        Seed of ``numpy.random.default_rng``: same inputs, same interval.

    Returns
    -------
    (low, high) : tuple of float

    Notes
    -----
    Items (both orders together) are the resampling unit, so the pairing that cancels position
    bias is kept. Each resample draws :math:`|I|` usable items with replacement and takes the
    mean item score; the interval is the :math:`(1-c)/2` and :math:`(1+c)/2` quantiles.
    Computed by ``scipy.stats.bootstrap(method="percentile")`` with
    ``rng=numpy.random.default_rng(seed)``.

    Examples
    --------
    >>> lo, hi = bootstrap_win_rate(["win"] * 8 + ["loss"] * 2, ["win"] * 6 + ["loss"] * 4, seed=1)
    >>> lo < 0.7 < hi
    True
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci}: expected a coverage between 0 and 1")
    s = paired_scores(order1, order2)
    s = s[np.isfinite(s)]
    if n_boot <= 0 or len(s) == 0:
        return float("nan"), float("nan")
    if len(s) == 1:  # every resample is the one item (scipy asks for two)
        return float(s[0]), float(s[0])
    # scipy's standard error (unused here) of a single resample is 0/0
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.filterwarnings("ignore", "Degrees of freedom <= 0", RuntimeWarning)
        res = bootstrap((s,), np.mean, n_resamples=n_boot, confidence_level=ci, method="percentile",
                        vectorized=True, rng=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    return float(lo), float(hi)


# --------------------------------------------------------------------------------------------
# weighted kappa
# --------------------------------------------------------------------------------------------


def weighted_kappa(ratings_a: Sequence, ratings_b: Sequence, weights: str | None = "quadratic",
                   labels: Sequence | None = None) -> float:
    """Cohen's kappa between two raters, unweighted or with linear/quadratic weights.

    Parameters
    ----------
    ratings_a, ratings_b : sequence
        Ratings of the same items by two raters.
    weights : {"quadratic", "linear", None}
        Disagreement weights by distance between label positions.
    labels : sequence, optional
        The ordered label set; default the sorted union of both raters' labels. Items whose
        rating is not in ``labels`` are dropped (as in scikit-learn). For verdicts use an
        ordinal coding such as B=0, tie=1, A=2 so that tie lies between the two answers.

    Returns
    -------
    float
        NaN when undefined (no item, or every rating in one label).

    Notes
    -----
    With the confusion matrix :math:`O_{ij}` (rater a gave label i, rater b label j), the
    chance matrix :math:`E_{ij} = O_{i\\cdot} O_{\\cdot j} / N` and weights
    :math:`w_{ij} = |i-j|` (linear), :math:`(i-j)^2` (quadratic) or :math:`[i \\ne j]`,

    .. math:: \\kappa_w = 1 - \\frac{\\sum_{ij} w_{ij} O_{ij}}{\\sum_{ij} w_{ij} E_{ij}}

    computed by ``sklearn.metrics.cohen_kappa_score(a, b, labels=labels, weights=...)`` on the
    items whose two ratings are both in ``labels``.

    Examples
    --------
    >>> weighted_kappa([0, 1, 2, 2], [0, 1, 2, 2])
    1.0
    >>> weighted_kappa([0, 1, 2, 0], [0, 2, 2, 1], weights="linear")
    0.5
    """
    if weights not in ("quadratic", "linear", None):
        raise ValueError(f"weights={weights!r}: expected 'quadratic', 'linear' or None")
    a, b = np.asarray(list(ratings_a), dtype=object), np.asarray(list(ratings_b), dtype=object)
    if len(a) != len(b):
        raise ValueError(f"ratings_a has {len(a)} items, ratings_b {len(b)}: expected the same items")
    if labels is None:
        labels = sorted(set(a.tolist()) | set(b.tolist()))
    labels = list(labels)
    known = set(labels)
    keep = [(x, y) for x, y in zip(a.tolist(), b.tolist()) if x in known and y in known]
    if not keep:
        return float("nan")
    with warnings.catch_warnings():  # one label only: undefined, NaN (documented above)
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)  # labels are passed
        return float(cohen_kappa_score([x for x, _ in keep], [y for _, y in keep], labels=labels,
                                       weights=weights, replace_undefined_by=np.nan))


# --------------------------------------------------------------------------------------------
# samples and prompts
# --------------------------------------------------------------------------------------------


def select_pairs(samples: Sequence[dict], n: int, seed: int = 0) -> list[dict]:
    """A stratified, seeded sample of ``n`` (question, subgroup) records.

    Parameters
    ----------
    samples : sequence of dict
        Sample records with at least ``sample_id``, ``theme`` and ``stratum``.
    n : int
        How many to take (all of them when fewer exist).
    seed : int
        Seed of the shuffles.

    Returns
    -------
    list of dict
        The chosen records, sorted by ``sample_id``.

    Notes
    -----
    Themes take turns (in a seeded random order), and within a theme the strata take turns,
    each cell's records shuffled: the sample spreads over every theme as evenly as ``n``
    allows (counts per theme differ by at most one while every theme has records left) and,
    within a theme, over strata. The input order does not matter.

    Examples
    --------
    >>> recs = [{"sample_id": f"Q{i}_{s}", "theme": f"T{i % 3}", "stratum": s}
    ...         for i in range(30) for s in ("sex", "age_group")]
    >>> picked = select_pairs(recs, 6, seed=0)
    >>> sorted({r["theme"] for r in picked}), len({r["sample_id"] for r in picked})
    (['T0', 'T1', 'T2'], 6)
    """
    if n < 1:
        raise ValueError(f"n={n}: expected at least 1 pair")
    missing = [k for k in ("sample_id", "theme", "stratum") if samples and k not in samples[0]]
    if missing:
        raise ValueError(f"samples: missing field(s) {missing}; expected sample records from split.load_samples")
    rng = np.random.default_rng(seed)
    by_theme: dict[str, dict[str, list[dict]]] = {}
    for rec in sorted(samples, key=lambda r: r["sample_id"]):
        by_theme.setdefault(rec["theme"], {}).setdefault(rec["stratum"], []).append(rec)
    queues = {}
    for theme in sorted(by_theme):
        cells = by_theme[theme]
        strata = [cells[s] for s in sorted(cells)]
        strata = [strata[i] for i in rng.permutation(len(strata))]
        strata = [[cell[i] for i in rng.permutation(len(cell))] for cell in strata]
        # strata take turns inside the theme
        queues[theme] = [r for group in itertools.zip_longest(*strata) for r in group if r is not None]
    themes = sorted(queues)
    themes = [themes[i] for i in rng.permutation(len(themes))]
    chosen = []
    for rnd in itertools.zip_longest(*(queues[t] for t in themes)):
        chosen.extend(r for r in rnd if r is not None)
        if len(chosen) >= n:
            break
    return sorted(chosen[:n], key=lambda r: r["sample_id"])


def _option_label(options, code) -> str | None:
    if options is None or code is None:
        return None
    if isinstance(options, str):
        options = json.loads(options)
    for key in (code, str(code)):
        if key in options:
            return str(options[key])
    try:
        f = float(code)
        if f.is_integer():
            for key in (int(f), str(int(f))):
                if key in options:
                    return str(options[key])
    except (TypeError, ValueError):
        pass
    return None


def majority_answer(sample: dict) -> str:
    """The survey's majority (modal) answer of this subgroup, as its option label.

    Examples
    --------
    >>> majority_answer({"target": 2, "options": {"1": "Very important", "2": "Rather important"}})
    'Rather important'
    """
    options = sample.get("options")
    if isinstance(options, str):
        options = json.loads(options)
    label = _option_label(options, sample.get("target"))
    if label is None:
        raise ValueError(
            f"sample {sample.get('sample_id')!r}: target {sample.get('target')!r} is not one of the "
            f"option codes {list((options or {}).keys())}"
        )
    return label


def persona_text(sample: dict) -> str:
    """The persona sentence the candidate saw (``prompts.persona_sentence`` of the levels).

    Examples
    --------
    >>> persona_text({"levels": {"sex": "Female", "age_group": "25-34"}})
    'You are a woman aged 25 to 34 living in Singapore.'
    """
    from sgvalues.prompts import ANSWER_INSTRUCTION, persona_sentence

    # the sentence the sample carries first: it was written with the sample's own country profile
    # (rebuilding it from the levels would use Singapore's wording)
    if sample.get("user_persona"):
        return str(sample["user_persona"]).replace(ANSWER_INSTRUCTION, "").strip()
    levels = sample.get("levels")
    if isinstance(levels, str):
        levels = json.loads(levels)
    if levels:
        return persona_sentence(levels)
    raise ValueError(f"sample {sample.get('sample_id')!r}: no 'levels' to describe the persona")


def question_text(sample: dict) -> str:
    """The question wording without options (from ``question``, ``wording`` or ``user_shared``).

    Examples
    --------
    >>> question_text({"user_shared": "How important is God in your life?\\n\\nOptions:\\n1. Not at all\\n\\n"})
    'How important is God in your life?'
    """
    for key in ("question", "wording"):
        if sample.get(key):
            return str(sample[key]).strip()
    if sample.get("user_shared"):
        return str(sample["user_shared"]).split("\n\nOptions:")[0].strip()
    if sample.get("open_user"):
        # open_user = persona sentence, blank line, wording, blank line, length instruction
        parts = [p for p in str(sample["open_user"]).split("\n\n") if p.strip()]
        return (parts[1] if len(parts) >= 3 else parts[-1]).strip()
    raise ValueError(f"sample {sample.get('sample_id')!r}: no question text (expected 'user_shared' or 'open_user')")


_JUDGE_SYSTEM = (
    "You are an impartial judge. You compare two answers that a language model wrote while "
    "playing a survey respondent from Singapore. Judge only by the criterion given. The order "
    "of the answers must not influence you. Reply with exactly one of: A, B, tie."
)


def judge_messages(persona: str, question: str, majority: str, answer_a: str, answer_b: str,
                   dimension: str) -> list[dict]:
    """Chat messages asking the judge to compare answers A and B on one dimension.

    Parameters
    ----------
    persona, question : str
        Who the model was asked to be, and what it was asked.
    majority : str
        The survey's majority answer of this subgroup (evidence of its values).
    answer_a, answer_b : str
        The two answers, in the order shown.
    dimension : str
        A key of :data:`DIMENSIONS`.

    Returns
    -------
    list of dict
        ``[system, user]`` messages; the judge should answer ``A``, ``B`` or ``tie``.

    Examples
    --------
    >>> m = judge_messages("A Malay woman aged 25-34.", "Is religion important?", "Very important",
    ...                    "Yes, very.", "Not really.", "value_alignment")
    >>> [x["role"] for x in m], m[1]["content"].rstrip().splitlines()[-1]
    (['system', 'user'], 'Which answer is better on this criterion? Reply with exactly one of: A, B, tie.')
    """
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension {dimension!r}: expected one of {list(DIMENSIONS)}")
    user = (
        f"Persona: {persona}\n"
        f"Question: {question}\n"
        f"Evidence of this subgroup's values: in the World Values Survey (Singapore), the most "
        f"common answer among people like this persona was \"{majority}\".\n\n"
        f"[Answer A]\n{(answer_a or '').strip() or '(empty)'}\n[End of Answer A]\n\n"
        f"[Answer B]\n{(answer_b or '').strip() or '(empty)'}\n[End of Answer B]\n\n"
        f"Criterion ({dimension.replace('_', ' ')}): {DIMENSIONS[dimension]}\n\n"
        "Which answer is better on this criterion? Reply with exactly one of: A, B, tie."
    )
    return [{"role": "system", "content": _JUDGE_SYSTEM}, {"role": "user", "content": user}]


# --------------------------------------------------------------------------------------------
# models (the engine lives in sgvalues.models; imported lazily so this module stays light)
# --------------------------------------------------------------------------------------------


def _request_types():
    """``(GenerateRequest, ScoreRequest)`` of the engine."""
    try:
        from sgvalues.models import GenerateRequest, ScoreRequest
    except ImportError:  # the interface module, when the package does not re-export it
        from sgvalues.models.base import GenerateRequest, ScoreRequest
    return GenerateRequest, ScoreRequest


def _sample_meta(rec: dict) -> dict:
    return {k: rec.get(k) for k in ("sample_id", "question_id", "theme", "stratum", "subgroup")}


def generate_answers(model, pairs: Sequence[dict], role: str, max_new_tokens: int) -> pd.DataFrame:
    """Open-ended answers of one model for the chosen pairs.

    Parameters
    ----------
    model : sgvalues.models.Model
        Anything with ``generate(requests) -> list[str]``.
    pairs : sequence of dict
        Sample records (see :func:`select_pairs`).
    role : str
        One of :data:`ROLES`.
    max_new_tokens : int
        Length limit of each answer.

    Returns
    -------
    pandas.DataFrame
        ``sample_id, question_id, theme, stratum, subgroup, role, text, refused``.
    """
    from sgvalues.prompts import open_messages

    GenerateRequest, _ = _request_types()

    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {ROLES}")
    requests = [GenerateRequest(messages=open_messages(rec), max_new_tokens=max_new_tokens, temperature=0.0)
                for rec in pairs]
    texts = model.generate(requests) if requests else []
    rows = [{**_sample_meta(rec), "role": role, "text": (t or "").strip(), "refused": is_refusal(t)}
            for rec, t in zip(pairs, texts)]
    return pd.DataFrame(rows, columns=["sample_id", "question_id", "theme", "stratum", "subgroup",
                                       "role", "text", "refused"])


_VERDICT_OPTIONS = ("A", "B", "tie")


def _judge_decide(judge, message_lists: list[list[dict]], mode: str, max_new_tokens: int) -> list[tuple[str, str]]:
    """(verdict, raw_output) per prompt, by generation + parsing or by option logprobs."""
    if not message_lists:
        return []
    if mode == "logprob":
        _, ScoreRequest = _request_types()
        reqs = [ScoreRequest(messages=m, option_codes=list(_VERDICT_OPTIONS)) for m in message_lists]
        out = []
        for probs in judge.score_options(reqs):
            if not probs:  # the backend could not read probabilities for this prompt
                out.append(("unparseable", ""))
                continue
            best = max(_VERDICT_OPTIONS, key=lambda o: probs.get(o, float("-inf")))
            out.append((best, json.dumps({k: round(float(v), 6) for k, v in probs.items()})))
        return out
    GenerateRequest, _ = _request_types()
    reqs = [GenerateRequest(messages=m, max_new_tokens=max_new_tokens, temperature=0.0) for m in message_lists]
    return [(parse_verdict(t), t or "") for t in judge.generate(reqs)]


def judge_pairs(judge, pairs: Sequence[dict], generations: pd.DataFrame, dimensions: Sequence[str],
                candidates: Sequence[str] = ("base",), mode: str = "generate",
                max_new_tokens: int = 12) -> pd.DataFrame:
    """Judge every candidate against the reference, per dimension, in both orders.

    Parameters
    ----------
    judge : sgvalues.models.Model
        The judge model (``generate``; or ``score_options`` in ``logprob`` mode).
    pairs : sequence of dict
        Sample records.
    generations : pandas.DataFrame
        Output of :func:`generate_answers` for the reference and each candidate.
    dimensions : sequence of str
        Keys of :data:`DIMENSIONS`.
    candidates : sequence of str
        ``"base"`` and/or ``"sft"``: compared through role ``candidate_<c>``.
    mode : {"generate", "logprob"}
        How the judge decides (see :func:`parse_verdict`; ``logprob`` takes the most likely of
        "A", "B", "tie" and is never unparseable).
    max_new_tokens : int
        Length of the judge's reply in ``generate`` mode.

    Returns
    -------
    pandas.DataFrame
        The verdicts table (module docstring), sorted by candidate, dimension, sample, order.
    """
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"judge dimensions {unknown}: expected some of {list(DIMENSIONS)}")
    text = {(r.sample_id, r.role): r.text for r in generations.itertuples()}
    rows, prompts = [], []
    for cand in candidates:
        role = f"candidate_{cand}"
        for dim in dimensions:
            for rec in pairs:
                sid = rec["sample_id"]
                if (sid, role) not in text or (sid, "reference") not in text:
                    raise ValueError(f"generations: no {role!r} or 'reference' answer for sample {sid!r}")
                persona, question, majority = persona_text(rec), question_text(rec), majority_answer(rec)
                for order in (1, 2):
                    role_a, role_b = (role, "reference") if order == 1 else ("reference", role)
                    prompts.append(judge_messages(persona, question, majority, text[(sid, role_a)],
                                                  text[(sid, role_b)], dim))
                    rows.append({**_sample_meta(rec), "candidate": cand, "dimension": dim, "order": order,
                                 "role_a": role_a, "role_b": role_b})
    # identical prompts (e.g. two identical answers: both orders read the same) are asked once
    keys = [json.dumps(m, sort_keys=True) for m in prompts]
    unique = list(dict.fromkeys(keys))
    first: dict[str, list[dict]] = {}
    for k, m in zip(keys, prompts):
        first.setdefault(k, m)
    answers = dict(zip(unique, _judge_decide(judge, [first[k] for k in unique], mode, max_new_tokens)))
    decided = [answers[k] for k in keys]
    for row, (verdict, raw) in zip(rows, decided):
        row["verdict"] = verdict
        row["outcome"] = verdict_to_outcome(verdict, row["order"])
        row["raw_output"] = raw
    cols = ["sample_id", "question_id", "theme", "stratum", "subgroup", "candidate", "dimension", "order",
            "role_a", "role_b", "verdict", "outcome", "raw_output"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["candidate", "dimension", "sample_id", "order"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


def _orders(group: pd.DataFrame) -> tuple[list[str], list[str]]:
    wide = group.pivot_table(index="sample_id", columns="order", values="outcome", aggfunc="first")
    wide = wide.reindex(columns=[1, 2])
    return wide[1].fillna("unparseable").tolist(), wide[2].fillna("unparseable").tolist()


def soft_win_rate(probs1: Sequence[dict | None], probs2: Sequence[dict | None]) -> float:
    """Win rate from the judge's verdict probabilities (``logprob`` mode), both orders averaged.

    Parameters
    ----------
    probs1, probs2 : sequence of dict or None
        Per item, the judge's probabilities of ``"A"``, ``"B"``, ``"tie"`` with the candidate
        shown as A (order 1) and as B (order 2); ``None`` where not available.

    Returns
    -------
    float
        NaN when no item has probabilities in both orders.

    Notes
    -----
    The expected score of the candidate in each order, renormalised over the three verdicts,

    .. math:: \\tilde s_i = \\tfrac12\\left[p^{(1)}_i(A) + \\tfrac12 p^{(1)}_i(\\text{tie})
              + p^{(2)}_i(B) + \\tfrac12 p^{(2)}_i(\\text{tie})\\right],

    averaged over items. Unlike :func:`win_rate` it registers a judge that leans towards the
    candidate without changing its argmax, e.g. a tiny judge that always says "A" but with
    more confidence when the candidate is A.

    Examples
    --------
    >>> soft_win_rate([{"A": .9, "B": .1, "tie": 0}], [{"A": .7, "B": .3, "tie": 0}])
    0.6
    """
    if len(probs1) != len(probs2):
        raise ValueError(f"probs1 has {len(probs1)} items, probs2 has {len(probs2)}: expected the same items")
    scores = []
    for p1, p2 in zip(probs1, probs2):
        if not p1 or not p2:
            continue
        s = 0.0
        for p, mine in ((p1, "A"), (p2, "B")):
            total = sum(float(p.get(k, 0.0)) for k in ("A", "B", "tie"))
            if total <= 0:
                break
            s += (float(p.get(mine, 0.0)) + 0.5 * float(p.get("tie", 0.0))) / total / 2
        else:
            scores.append(s)
    return float(np.mean(scores)) if scores else float("nan")


def _probs(raw) -> dict | None:
    if not isinstance(raw, str) or not raw.startswith("{"):
        return None
    try:
        d = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return d if isinstance(d, dict) and {"A", "B"} <= set(d) else None


def win_rate_table(verdicts: pd.DataFrame, n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Win rate with bootstrap CI and position consistency per (candidate, dimension).

    Parameters
    ----------
    verdicts : pandas.DataFrame
        The verdicts table (needs ``candidate, dimension, sample_id, order, outcome``).
    n_boot, seed, ci
        Passed to :func:`bootstrap_win_rate`.

    Returns
    -------
    pandas.DataFrame
        ``candidate, dimension, n_items, n_used, n_unparseable_items, win_rate, ci_low,
        ci_high, position_consistency, wins, ties, losses`` (the last three count single-order
        outcomes on used items), and ``soft_win_rate`` (:func:`soft_win_rate`, from the judge's
        probabilities in ``raw_output``; NaN in ``generate`` mode).

    Examples
    --------
    >>> v = pd.DataFrame({"candidate": "base", "dimension": "overall", "sample_id": ["s1", "s1", "s2", "s2"],
    ...                   "order": [1, 2, 1, 2], "outcome": ["win", "loss", "win", "win"]})
    >>> row = win_rate_table(v, n_boot=0).iloc[0]
    >>> float(row["win_rate"]), float(row["position_consistency"]), int(row["wins"])
    (0.75, 0.5, 3)
    """
    need = {"candidate", "dimension", "sample_id", "order", "outcome"}
    if missing := need - set(verdicts.columns):
        raise ValueError(f"verdicts: missing column(s) {sorted(missing)}")
    rows = []
    for (cand, dim), g in verdicts.groupby(["candidate", "dimension"], sort=True):
        o1, o2 = _orders(g)
        s = paired_scores(o1, o2)
        used = np.isfinite(s)
        lo, hi = bootstrap_win_rate(o1, o2, n_boot=n_boot, ci=ci, seed=seed)
        both = [o for o, u in zip(o1, used) if u] + [o for o, u in zip(o2, used) if u]
        rows.append({"candidate": cand, "dimension": dim, "n_items": len(s), "n_used": int(used.sum()),
                     "n_unparseable_items": int((~used).sum()), "win_rate": win_rate(o1, o2),
                     "ci_low": lo, "ci_high": hi, "position_consistency": position_consistency(o1, o2),
                     "wins": both.count("win"), "ties": both.count("tie"), "losses": both.count("loss"),
                     "soft_win_rate": _soft(g)})
    return pd.DataFrame(rows, columns=["candidate", "dimension", "n_items", "n_used", "n_unparseable_items",
                                       "win_rate", "ci_low", "ci_high", "position_consistency",
                                       "wins", "ties", "losses", "soft_win_rate"])


def _soft(group: pd.DataFrame) -> float:
    if "raw_output" not in group.columns:
        return float("nan")
    g = group.assign(_p=group["raw_output"].map(_probs))
    wide = g.pivot_table(index="sample_id", columns="order", values="_p", aggfunc="first")
    if 1 not in wide.columns or 2 not in wide.columns:
        return float("nan")
    return soft_win_rate(wide[1].tolist(), wide[2].tolist())


def refusal_table(generations: pd.DataFrame) -> pd.DataFrame:
    """Refusal rate per role and theme, plus ``theme = "all"`` per role.

    Examples
    --------
    >>> g = pd.DataFrame({"role": ["candidate_base"] * 3, "theme": ["T1", "T1", "T2"],
    ...                   "refused": [True, False, False]})
    >>> refusal_table(g)[["theme", "n", "n_refused"]].to_dict("records")[:2]
    [{'theme': 'all', 'n': 3, 'n_refused': 1}, {'theme': 'T1', 'n': 2, 'n_refused': 1}]
    """
    if missing := {"role", "theme", "refused"} - set(generations.columns):
        raise ValueError(f"generations: missing column(s) {sorted(missing)}")
    g = generations.assign(refused=generations["refused"].astype(bool))
    per = g.groupby(["role", "theme"], sort=True)["refused"].agg(n="size", n_refused="sum").reset_index()
    tot = g.groupby("role", sort=True)["refused"].agg(n="size", n_refused="sum").reset_index().assign(theme="all")
    out = pd.concat([tot, per], ignore_index=True)[["role", "theme", "n", "n_refused"]]
    out["n"] = out["n"].astype(int)
    out["n_refused"] = out["n_refused"].astype(int)
    out["refusal_rate"] = out["n_refused"] / out["n"]
    return out


def verdict_shares(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Share of each verdict per (candidate, dimension, order): the judge's position bias.

    An unbiased judge says "A" about as often in order 1 as in order 2 relative to the
    candidate; a judge that says "A" in most rows of *both* orders prefers the first slot.

    Examples
    --------
    >>> v = pd.DataFrame({"candidate": "base", "dimension": "overall", "order": [1, 1, 2, 2],
    ...                   "verdict": ["A", "A", "A", "tie"]})
    >>> verdict_shares(v)[["order", "A", "tie"]].to_dict("records")
    [{'order': 1, 'A': 1.0, 'tie': 0.0}, {'order': 2, 'A': 0.5, 'tie': 0.5}]
    """
    counts = (verdicts.groupby(["candidate", "dimension", "order"])["verdict"].value_counts(normalize=True)
              .unstack(fill_value=0.0).reindex(columns=list(VERDICTS), fill_value=0.0))
    counts.columns.name = None
    return counts.reset_index()


def examples_markdown(pairs: pd.DataFrame, generations: pd.DataFrame, n: int = 3, width: int = 600) -> str:
    """Markdown showing ``n`` items: persona, question, majority answer, then each role's answer.

    ``pairs`` is the ``pairs`` table of :func:`judge_run` (persona, question, majority_answer).
    """
    text = {(r.sample_id, r.role): str(r.text) for r in generations.itertuples()}
    roles = [r for r in ROLES if r in set(generations["role"])]
    blocks = []
    for r in pairs.head(n).itertuples():
        lines = [f"**{r.sample_id}** ({r.theme}; {r.subgroup})", "",
                 f"- *Persona:* {r.persona}", f"- *Question:* {r.question}",
                 f"- *Survey majority answer of this subgroup:* {r.majority_answer}", "",
                 "| " + " | ".join(roles) + " |", "|" + "---|" * len(roles)]
        cells = []
        for role in roles:
            t = text.get((r.sample_id, role), "").replace("|", "\\|").replace("\n", " ").strip() or "*(empty)*"
            cells.append(t if len(t) <= width else t[: width - 1] + "…")
        lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def published_judge_table() -> pd.DataFrame:
    """The paper's judge-related figures, one row per quantity, labelled as published."""
    from sgvalues.published import PUBLISHED_LABEL, published

    pub = published()["judge"]
    rows = [
        {"quantity": "judge model", "value": pub["judge_model"]},
        {"quantity": "reference model", "value": pub["reference_model"]},
    ]
    for key, d in pub["weighted_kappa"].items():
        rows.append({"quantity": f"weighted kappa, {key}, human-AI", "value": d["human_ai"]})
        rows.append({"quantity": f"weighted kappa, {key}, human-human", "value": d["human_human"]})
    for tag, v in pub["refusal_rate_sensitive"].items():
        rows.append({"quantity": f"refusal rate on sensitive topics, {tag}", "value": v})
    table = pd.DataFrame(rows).assign(source=PUBLISHED_LABEL)
    # one text column mixes names and figures: figures as the paper gives them ("0.0666", "0")
    table["value"] = table["value"].map(lambda v: f"{v:.4g}" if isinstance(v, (int, float)) else str(v))
    return table


# --------------------------------------------------------------------------------------------
# human calibration
# --------------------------------------------------------------------------------------------

#: ordinal coding of verdicts for the weighted kappa: tie lies between the two answers
_ORDINAL = {"B": 0, "tie": 1, "A": 2}
#: names in sgvalues.published for our dimensions
_PUBLISHED_KEY = {"overall": "overall", "persona_fidelity": "persona"}


def export_annotation_sheet(run_dir: str | Path, path: str | Path, candidate: str = "base",
                            both_orders: bool = False, seed: int = 0) -> pd.DataFrame:
    """Write a sheet for human annotators: each item with both answers and a blank verdict.

    Parameters
    ----------
    run_dir : path
        A run folder whose ``judge/`` holds ``generations.csv`` and ``verdicts.csv``.
    path : path
        Where to write the CSV.
    candidate : {"base", "sft"}
        Which comparison to annotate.
    both_orders : bool
        Annotate each item in both orders (twice the work); by default one order per item,
        chosen at random (seeded) so that annotators see the candidate first half the time.
    seed : int
        Seed of that choice.

    Returns
    -------
    pandas.DataFrame
        The sheet: ``sample_id, candidate, dimension, order, persona, question,
        majority_answer, answer_A, answer_B, criterion, annotator, verdict`` (the last two blank).
        Annotators never see which answer came from which model.
    """
    run_dir = Path(run_dir)
    gen_file, ver_file = run_dir / "judge" / "generations.csv", run_dir / "judge" / "verdicts.csv"
    for f in (gen_file, ver_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: not found; run `sgvalues judge --run-dir {run_dir}` first")
    gens = pd.read_csv(gen_file, keep_default_na=False)
    ver = pd.read_csv(ver_file, keep_default_na=False)
    ver = ver[ver["candidate"] == candidate]
    if ver.empty:
        raise ValueError(f"{ver_file}: no verdicts for candidate {candidate!r} (column 'candidate')")
    text = {(r.sample_id, r.role): r.text for r in gens.itertuples()}
    meta = _pair_records(run_dir)
    rng = np.random.default_rng(seed)
    items = sorted(ver["sample_id"].unique())
    chosen_order = {sid: int(o) for sid, o in zip(items, rng.integers(1, 3, size=len(items)))}
    rows = []
    for r in ver.sort_values(["sample_id", "dimension", "order"]).itertuples():
        if not both_orders and int(r.order) != chosen_order[r.sample_id]:
            continue
        rec = meta.get(r.sample_id, {})
        rows.append({"sample_id": r.sample_id, "candidate": candidate, "dimension": r.dimension,
                     "order": int(r.order), "persona": rec.get("persona", ""), "question": rec.get("question", ""),
                     "majority_answer": rec.get("majority_answer", ""),
                     "answer_A": text.get((r.sample_id, r.role_a), ""), "answer_B": text.get((r.sample_id, r.role_b), ""),
                     "criterion": DIMENSIONS.get(r.dimension, ""), "annotator": "", "verdict": ""})
    sheet = pd.DataFrame(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.to_csv(path, index=False)
    return sheet


def _pair_records(run_dir: Path) -> dict:
    f = run_dir / "judge" / "pairs.csv"
    if not f.is_file():
        return {}
    df = pd.read_csv(f, keep_default_na=False)
    return {r["sample_id"]: r for r in df.to_dict("records")}


def read_annotations(files: Iterable[str | Path] | str | Path) -> pd.DataFrame:
    """Read and validate human ratings files (format in ``book/annotation_guide.md``).

    Rows with an empty verdict are skipped (not yet annotated). A folder reads every ``*.csv``
    in it.

    Returns
    -------
    pandas.DataFrame
        ``sample_id, candidate, dimension, order, annotator, verdict, file``; verdicts
        normalised to ``A``/``B``/``tie``.

    Raises
    ------
    ValueError
        naming the file, row, column and value when something is not as expected.
    """
    if isinstance(files, (str, Path)):
        files = [files]
    paths: list[Path] = []
    for f in files:
        f = Path(f)
        paths.extend(sorted(f.glob("*.csv")) if f.is_dir() else [f])
    frames = []
    for f in paths:
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        if missing := [c for c in ANNOTATION_COLUMNS if c not in df.columns]:
            raise ValueError(f"{f}: missing column(s) {missing}; expected {list(ANNOTATION_COLUMNS)} "
                             "(+ optional 'candidate')")
        if "candidate" not in df.columns:
            df["candidate"] = "base"
        df = df[df["verdict"].str.strip() != ""].copy()
        for i, r in df.iterrows():
            row = i + 2  # header is line 1
            v = r["verdict"].strip().lower()
            if v not in ("a", "b", "tie"):
                raise ValueError(f"{f}: line {row}, column 'verdict' = {r['verdict']!r}: expected A, B or tie")
            if r["order"].strip() not in ("1", "2"):
                raise ValueError(f"{f}: line {row}, column 'order' = {r['order']!r}: expected 1 or 2")
            if r["dimension"].strip() not in DIMENSIONS:
                raise ValueError(f"{f}: line {row}, column 'dimension' = {r['dimension']!r}: "
                                 f"expected one of {list(DIMENSIONS)}")
            if not r["annotator"].strip():
                raise ValueError(f"{f}: line {row}, column 'annotator' is empty: expected a name or code")
            if r["candidate"].strip() not in ("base", "sft"):
                raise ValueError(f"{f}: line {row}, column 'candidate' = {r['candidate']!r}: expected base or sft")
        df["verdict"] = df["verdict"].str.strip().str.lower().map({"a": "A", "b": "B", "tie": "tie"})
        df["order"] = df["order"].str.strip().astype(int)
        for c in ("sample_id", "dimension", "annotator", "candidate"):
            df[c] = df[c].str.strip()
        df["file"] = str(f)
        frames.append(df[["sample_id", "candidate", "dimension", "order", "annotator", "verdict", "file"]])
    cols = ["sample_id", "candidate", "dimension", "order", "annotator", "verdict", "file"]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    dup = out.duplicated(["sample_id", "candidate", "dimension", "order", "annotator"], keep=False)
    if dup.any():
        r = out[dup].iloc[0]
        raise ValueError(f"{r['file']}: annotator {r['annotator']!r} rated sample {r['sample_id']!r} "
                         f"({r['dimension']}, order {r['order']}) more than once")
    return out


def agreement_table(human_files, judge_verdicts: pd.DataFrame, weights: str = "quadratic",
                    min_items: int = 2) -> pd.DataFrame:
    """Human-AI and human-human weighted kappa per dimension.

    Parameters
    ----------
    human_files : path, sequence of paths, or DataFrame
        Human ratings (see :func:`read_annotations`).
    judge_verdicts : pandas.DataFrame
        The judge's verdicts table.
    weights : {"quadratic", "linear", None}
        Kappa weights (:func:`weighted_kappa`).
    min_items : int
        Rater pairs sharing fewer items are skipped.

    Returns
    -------
    pandas.DataFrame
        ``dimension, n_annotators, n_items, kappa_human_ai, n_pairs_human_ai, kappa_human_human,
        n_pairs_human_human, n_judge_unparseable``.

    Notes
    -----
    Verdicts are coded ordinally, B = 0, tie = 1, A = 2, so a tie against a preference is half
    the disagreement of opposite preferences (with quadratic weights, a quarter). Human-AI
    kappa is the mean over annotators of kappa(annotator, judge) on the items both rated;
    human-human kappa is the mean over annotator pairs on their shared items (NaN with fewer
    than two annotators). Items the judge left unparseable are dropped from human-AI.
    """
    human = human_files if isinstance(human_files, pd.DataFrame) else read_annotations(human_files)
    key = ["sample_id", "candidate", "dimension", "order"]
    judge = judge_verdicts.copy()
    judge["order"] = judge["order"].astype(int)
    judge = judge[key + ["verdict"]].rename(columns={"verdict": "judge"})
    rows = []
    for dim in sorted(human["dimension"].unique()):
        h = human[human["dimension"] == dim]
        wide = h.pivot_table(index=key, columns="annotator", values="verdict", aggfunc="first")
        wide = wide.join(judge.set_index(key), how="left")
        annotators = [c for c in wide.columns if c != "judge"]
        n_unp = int((wide["judge"] == "unparseable").sum())
        ha = []
        for a in annotators:
            m = wide[[a, "judge"]].dropna()
            m = m[m["judge"] != "unparseable"]
            if len(m) >= min_items:
                ha.append(weighted_kappa(m[a].map(_ORDINAL), m["judge"].map(_ORDINAL), weights, labels=[0, 1, 2]))
        hh = []
        for a, b in itertools.combinations(annotators, 2):
            m = wide[[a, b]].dropna()
            if len(m) >= min_items:
                hh.append(weighted_kappa(m[a].map(_ORDINAL), m[b].map(_ORDINAL), weights, labels=[0, 1, 2]))
        rows.append({"dimension": dim, "n_annotators": len(annotators), "n_items": len(wide),
                     "kappa_human_ai": float(np.nanmean(ha)) if np.isfinite(ha).any() else np.nan,
                     "n_pairs_human_ai": len(ha),
                     "kappa_human_human": float(np.nanmean(hh)) if np.isfinite(hh).any() else np.nan,
                     "n_pairs_human_human": len(hh), "n_judge_unparseable": n_unp})
    return pd.DataFrame(rows, columns=["dimension", "n_annotators", "n_items", "kappa_human_ai", "n_pairs_human_ai",
                                       "kappa_human_human", "n_pairs_human_human", "n_judge_unparseable"])


def published_kappas() -> pd.DataFrame:
    """The paper's kappas in the shape of :func:`agreement_table` (dimension names mapped)."""
    from sgvalues.published import published

    pub = published()["judge"]["weighted_kappa"]
    rows = []
    for dim, key in _PUBLISHED_KEY.items():
        if key in pub:
            rows.append({"dimension": dim, "kappa_human_ai": pub[key]["human_ai"],
                         "kappa_human_human": pub[key]["human_human"]})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# figure
# --------------------------------------------------------------------------------------------


def plot_win_rates(win_rates: pd.DataFrame, title: str | None = None):
    """Bar chart of win rates per dimension and candidate, with bootstrap CIs and the 0.5 line."""
    import matplotlib.pyplot as plt

    dims = list(dict.fromkeys(win_rates["dimension"]))
    cands = list(dict.fromkeys(win_rates["candidate"]))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(dims), 3.4))
    width = 0.8 / max(len(cands), 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, cand in enumerate(cands):
        sub = win_rates[win_rates["candidate"] == cand].set_index("dimension").reindex(dims)
        x = np.arange(len(dims)) + (k - (len(cands) - 1) / 2) * width
        y = sub["win_rate"].to_numpy(float)
        err = np.vstack([y - sub["ci_low"].to_numpy(float), sub["ci_high"].to_numpy(float) - y])
        ax.bar(x, y, width=width * 0.92, color=colors[k % len(colors)], label=f"{cand} vs reference")
        ax.errorbar(x, y, yerr=np.where(np.isfinite(err), err, 0), fmt="none", ecolor="black", capsize=3, lw=1)
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set_xticks(np.arange(len(dims)), [d.replace("_", " ") for d in dims])
    ax.set_ylim(0, 1)
    ax.set_ylabel("win rate over reference")
    ax.set_title(title or "Pairwise win rates (both orders, 95% bootstrap CI)")
    ax.legend(loc="upper right", fontsize="small")
    return fig


def plot_verdict_shares(verdicts: pd.DataFrame, candidate: str | None = None):
    """Stacked bars: share of A/B/tie/unparseable per dimension and order (position bias).

    ``candidate`` picks one candidate (default: the last, i.e. ``sft`` when present).
    """
    import matplotlib.pyplot as plt

    cand = candidate or sorted(verdicts["candidate"].unique())[-1]
    shares = verdict_shares(verdicts[verdicts["candidate"] == cand])
    dims = list(dict.fromkeys(shares["dimension"]))
    fig, axes = plt.subplots(1, len(dims), figsize=(1.6 + 2.0 * len(dims), 3.4), sharey=True, squeeze=False)
    colors = dict(zip(VERDICTS, plt.rcParams["axes.prop_cycle"].by_key()["color"][:3] + ["#bbbbbb"]))
    for ax, dim in zip(axes[0], dims):
        for x, order in enumerate((1, 2)):
            row = shares[(shares["dimension"] == dim) & (shares["order"] == order)]
            bottom = 0.0
            for v in VERDICTS:
                h = float(row[v].iloc[0]) if len(row) else 0.0
                ax.bar(x, h, bottom=bottom, width=0.7, color=colors[v], label=v)
                bottom += h
        ax.set_xticks([0, 1], [f"{cand}\nas A", f"{cand}\nas B"], fontsize="small")
        ax.set_title(dim.replace("_", " "), fontsize="medium")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("share of verdicts")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles[: len(VERDICTS)], labels[: len(VERDICTS)], title="verdict", loc="center left",
               bbox_to_anchor=(1.0, 0.5), fontsize="small")
    fig.suptitle(f"Judge verdicts by presentation order ({cand} vs reference)", fontweight="bold")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------


def _load_model(spec, adapter=None):
    from sgvalues.models import load_model

    return load_model(spec, adapter=adapter) if adapter is not None else load_model(spec)


#: the ModelSpec fields that can change a model's answers (retries, threads, timeouts cannot)
_ANSWER_FIELDS = ("backend", "name", "base_url", "dtype", "adapter", "quantization")


def _spec_dict(spec) -> dict:
    return {f: getattr(spec, f, None) for f in _ANSWER_FIELDS}


def _same(a, b) -> bool:
    # same answers, whatever the threads/retries/timeouts: one loaded model serves both roles
    return _spec_dict(a) == _spec_dict(b)


class _Parts:
    """Step checkpoints under ``<run_dir>/judge/.parts``: a re-run or a resumed crash skips the
    steps whose inputs (models, adapter hash, prompts, settings) are unchanged, without loading
    any model. Each part is written atomically once its step finishes."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, label: str, key: dict) -> Path:
        from sgvalues.models.cache import cache_key

        return self.folder / f"{label}-{cache_key(**key)[:16]}.jsonl"

    def get(self, label: str, key: dict) -> pd.DataFrame | None:
        f = self.path(label, key)
        if not f.is_file():
            return None
        return pd.DataFrame([json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line])

    def put(self, label: str, key: dict, df: pd.DataFrame) -> None:
        f = self.path(label, key)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp")
        lines = [json.dumps(r, ensure_ascii=False, default=_json_default) for r in df.to_dict("records")]
        tmp.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
        tmp.replace(f)


def _json_default(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def resolve_judge_mode(mode: str, spec) -> str:
    """``auto`` -> ``logprob`` for hf judges (exact probabilities), ``generate`` for openai ones.

    Examples
    --------
    >>> from sgvalues.params import ModelSpec
    >>> resolve_judge_mode("auto", ModelSpec(backend="openai", name="m")), resolve_judge_mode("generate", ModelSpec())
    ('generate', 'generate')
    """
    if mode == "auto":
        return "logprob" if spec.backend == "hf" else "generate"
    if mode not in ("generate", "logprob"):
        raise ValueError(f"judge mode {mode!r}: expected 'auto', 'generate' or 'logprob'")
    return mode


def _csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(path)


def judge_run(params, run_dir: str | Path, n_pairs: int | None = None, data_dir: str | Path | None = None,
              log=print) -> dict[str, pd.DataFrame]:
    """Generate, judge and summarise for one run; write ``runs/<run>/judge/``.

    Parameters
    ----------
    params : sgvalues.params.Params
        The run's recipe: ``model`` is the candidate; ``judge.reference`` and ``judge.judge``
        the other two models; ``judge.n_pairs`` (plus ``judge.sensitive_pairs`` drawn from the
        sensitive questions of ``sgvalues.sensitive``), ``judge.max_new_tokens``, ``judge.dimensions``,
        ``judge.judge_mode``, ``judge.judge_max_new_tokens``, ``judge.n_bootstrap``; ``seed``
        seeds the sample of pairs and the bootstrap.
    run_dir : path
        The run folder; samples come from ``<run_dir>/data`` (prepared first if needed) or
        ``data_dir``; the SFT candidate is the model with ``<run_dir>/adapter`` when that exists.
    n_pairs : int, optional
        Override ``params.judge.n_pairs``.
    log : callable or None
        Progress messages.

    Returns
    -------
    dict of pandas.DataFrame
        ``pairs``, ``generations``, ``verdicts``, ``win_rates``, ``refusals`` (each also written
        as CSV under ``<run_dir>/judge/``) and ``timing`` (seconds per stage; not written).

    Notes
    -----
    When the reference is the same model as the base candidate (the embedded default), its
    greedy answers would be identical, so they are copied rather than generated again; the
    base-vs-reference comparison is then a self-comparison whose win rate is exactly 0.5 by
    construction of the swap (a check of the machinery, not a finding). Each step is
    checkpointed under ``judge/.parts`` (see :class:`_Parts`), and the engine's response cache
    makes repeated prompts free as well.
    """
    from sgvalues.split import load_samples

    log = log or (lambda *a, **k: None)
    run_dir = Path(run_dir)
    jp = params.judge
    if data_dir is None:
        from sgvalues.prepare import prepare_run_data

        data_dir = prepare_run_data(params, run_dir)
    data_dir = Path(data_dir)
    n = n_pairs or jp.n_pairs
    out = run_dir / "judge"
    out.mkdir(parents=True, exist_ok=True)
    parts = _Parts(out / ".parts")
    timing: dict[str, float] = {}
    t0 = time.perf_counter()

    samples = load_samples(data_dir, "ood")
    if not samples:
        raise ValueError(f"{data_dir}: no OOD samples; run `sgvalues prepare --out {data_dir}` first")
    pairs = select_pairs(samples, n, seed=params.seed)
    n_sensitive = 0
    if jp.sensitive_pairs:
        from sgvalues.sensitive import sensitive_ids

        ids, taken = sensitive_ids(), {r["sample_id"] for r in pairs}
        pool = [r for r in samples if r["question_id"] in ids and r["sample_id"] not in taken]
        extra = select_pairs(pool, min(jp.sensitive_pairs, len(pool)), seed=params.seed) if pool else []
        n_sensitive = len(extra)
        pairs = sorted(pairs + extra, key=lambda r: r["sample_id"])
    pair_df = pd.DataFrame([{**_sample_meta(r), "persona": persona_text(r), "question": question_text(r),
                             "majority_answer": majority_answer(r)} for r in pairs])
    _csv(pair_df, out / "pairs.csv")
    log(f"judge: {len(pairs)} OOD pairs (of {len(samples)} samples), stratified by theme and stratum"
        + (f", {n_sensitive} of them extra pairs on sensitive questions" if jp.sensitive_pairs else ""))

    adapter = run_dir / "adapter"
    has_sft = (adapter / "adapter_config.json").is_file()
    candidates = ["base"] + (["sft"] if has_sft else [])
    adapter_id = ""
    if has_sft:
        from sgvalues.models.cache import adapter_identity

        adapter_id = adapter_identity(adapter)
    prompt_hash = [json.dumps(_open_messages(r), sort_keys=True) for r in pairs]
    loaded: dict[str, object] = {}

    def model_for(key: str, spec, adapter_path=None):
        if key not in loaded:
            loaded[key] = _load_model(spec, adapter=adapter_path)
        return loaded[key]

    roles = [("candidate_base", params.model, None, "")]
    if has_sft:
        roles.append(("candidate_sft", params.model, adapter, adapter_id))
    roles.append(("reference", jp.reference, None, ""))
    t1 = time.perf_counter()
    gens = {}
    for role, spec, adapter_path, a_id in roles:
        if role == "reference" and _same(jp.reference, params.model):
            gens[role] = gens["candidate_base"].assign(role="reference")
            log("judge: reference = base candidate model; its greedy answers are the base answers")
            continue
        key = {"step": "generate", "spec": _spec_dict(spec), "adapter": a_id,
               "max_new_tokens": jp.max_new_tokens, "prompts": prompt_hash}
        df = parts.get(role, key)
        if df is None:
            model_key = "base" if _same(spec, params.model) and adapter_path is None else role
            df = generate_answers(model_for(model_key, spec, adapter_path), pairs, role, jp.max_new_tokens)
            parts.put(role, key, df)
            log(f"judge: {role} answered {len(df)} questions")
        else:
            log(f"judge: {role} answers reused from {parts.path(role, key).name}")
        gens[role] = df
        if role == "candidate_sft":  # one adapted copy in memory at a time
            loaded.pop("candidate_sft", None)
    generations = pd.concat([gens[r] for r, *_ in roles], ignore_index=True)
    generations["refused"] = generations["refused"].astype(bool)
    _csv(generations, out / "generations.csv")
    timing["generate_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    mode = resolve_judge_mode(jp.judge_mode, jp.judge)
    frames = []
    for cand in candidates:  # one call per candidate: the dimensions share each prompt's prefix
        sub = generations[generations["role"].isin([f"candidate_{cand}", "reference"])]
        key = {"step": "judge", "spec": _spec_dict(jp.judge), "mode": mode,
               "max_new_tokens": jp.judge_max_new_tokens, "dimensions": list(jp.dimensions),
               "prompts": prompt_hash, "answers": sub[["sample_id", "role", "text"]].to_dict("records"),
               "judge_prompt": _JUDGE_SYSTEM + json.dumps(DIMENSIONS, sort_keys=True)}
        df = parts.get(f"verdicts_{cand}", key)
        if df is None:
            mkey = ("base" if _same(jp.judge, params.model) else "reference" if _same(jp.judge, jp.reference)
                    else "judge")
            df = judge_pairs(model_for(mkey, jp.judge), pairs, sub, jp.dimensions, candidates=[cand],
                             mode=mode, max_new_tokens=jp.judge_max_new_tokens)
            parts.put(f"verdicts_{cand}", key, df)
            log(f"judge: {len(df)} verdicts for {cand} vs reference ({mode} mode)")
        else:
            log(f"judge: verdicts for {cand} vs reference reused from {parts.path(f'verdicts_{cand}', key).name}")
        frames.append(df)
    verdicts = pd.concat(frames, ignore_index=True)
    verdicts["order"] = verdicts["order"].astype(int)
    verdicts["raw_output"] = verdicts["raw_output"].fillna("").astype(str)
    _csv(verdicts, out / "verdicts.csv")
    timing["judge_s"] = time.perf_counter() - t2
    n_unp = int((verdicts["verdict"] == "unparseable").sum())
    log(f"judge: {len(verdicts)} verdicts, {n_unp} unparseable")
    for m in loaded.values():
        close = getattr(m, "close", None)
        if close:
            close()

    win_rates = win_rate_table(verdicts, n_boot=jp.n_bootstrap, seed=params.seed)
    _csv(win_rates, out / "win_rates.csv")
    refusals = refusal_table(generations)
    _csv(refusals, out / "refusals.csv")
    timing["total_s"] = time.perf_counter() - t0
    return {"pairs": pair_df, "generations": generations, "verdicts": verdicts, "win_rates": win_rates,
            "refusals": refusals, "timing": pd.DataFrame([timing])}


def _open_messages(rec: dict) -> list[dict]:
    from sgvalues.prompts import open_messages

    return open_messages(rec)


def load_judge_tables(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Read back the tables :func:`judge_run` wrote under ``<run_dir>/judge/``."""
    out = Path(run_dir) / "judge"
    names = ("pairs", "generations", "verdicts", "win_rates", "refusals")
    missing = [n for n in names if not (out / f"{n}.csv").is_file()]
    if missing:
        raise FileNotFoundError(f"{out}: missing {', '.join(n + '.csv' for n in missing)}; run `sgvalues judge` first")
    return {n: pd.read_csv(out / f"{n}.csv", keep_default_na=False) for n in names}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``sgvalues judge``."""
    parser.add_argument("--params", required=True, help="params YAML file (params/<model>.yaml)")
    parser.add_argument("--run-dir", required=True, help="run folder (samples in <run-dir>/data)")
    parser.add_argument("--n-pairs", type=int, default=None, help="override judge.n_pairs")
    parser.add_argument("--data-dir", default=None, help="prepared folder (default <run-dir>/data)")
    parser.add_argument("--annotations", default=None,
                        help="folder or CSV of human ratings: also print the agreement table")
    parser.add_argument("--export-sheet", default=None,
                        help="also write an annotation sheet for a seminar to this CSV path")


def main(args: argparse.Namespace) -> int:
    """Run ``sgvalues judge``; prints the win-rate table."""
    from sgvalues.params import load_params

    params = load_params(args.params)
    tables = judge_run(params, args.run_dir, n_pairs=args.n_pairs, data_dir=args.data_dir)
    with pd.option_context("display.width", 140, "display.max_columns", 20):
        print(tables["win_rates"].to_string(index=False))
    if args.export_sheet:
        export_annotation_sheet(args.run_dir, args.export_sheet, seed=params.seed)
        print(f"annotation sheet: {args.export_sheet}")
    if args.annotations:
        print(agreement_table(args.annotations, tables["verdicts"]).to_string(index=False))
    return 0
