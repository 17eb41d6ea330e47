"""What the judge is shown and what it says: roles, dimensions, prompts, verdict parsing.

Constants shared by the whole judge stage (:data:`ROLES`, :data:`VERDICTS`, :data:`OUTCOMES`,
:data:`OUTCOME_SCORE`, :data:`DIMENSIONS`), the seeded choice of (question, subgroup) pairs,
the persona / question / majority-answer texts of the judge's prompt, and the parser that turns
a judge's free text into ``A``, ``B``, ``tie`` or ``unparseable``.

Examples
--------
>>> parse_verdict("Verdict: tie"), verdict_to_outcome("A", order=2)
('tie', 'loss')
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence

import numpy as np

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
    from sgvalues.subgroups import parse_levels

    try:
        return persona_sentence(parse_levels(sample.get("subgroup") or "", sample.get("levels")))
    except ValueError as exc:
        raise ValueError(f"sample {sample.get('sample_id')!r}: no 'levels' to describe the persona ({exc})") from exc


def question_text(sample: dict) -> str:
    """The question wording without options: the sample's ``wording`` (``question`` in a pairs table).

    A sample from a prepared folder written before samples carried ``wording`` (prepare format 1)
    falls back to the text before "Options:" in ``user_shared``.

    Examples
    --------
    >>> question_text({"wording": "How important is God in your life?"})
    'How important is God in your life?'
    """
    for key in ("wording", "question"):
        if sample.get(key):
            return str(sample[key]).strip()
    if sample.get("user_shared"):  # prepare format 1 only
        return str(sample["user_shared"]).split("\n\nOptions:")[0].strip()
    raise ValueError(f"sample {sample.get('sample_id')!r}: no question text (expected 'wording')")


JUDGE_SYSTEM = (
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
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


