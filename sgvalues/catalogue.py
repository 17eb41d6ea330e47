"""The WVS-7 question catalogue (Q1..Q259) and the rule that selects questions for a study.

The catalogue (``resources/catalogue.csv``) is derived from public WVS-7 metadata by
``scripts/derive_catalogue.py``; ``resources/CATALOGUE_SOURCES.md`` cites the sources. One
row per question: ``question_id``, ``number``, ``theme`` (one of the 13 official questionnaire
sections, :data:`THEMES`), ``label`` (codebook label), ``stem`` (questionnaire stem),
``wording`` (stem + item, a question a model can answer), ``options`` (code -> label, codes
after the ordinal recodings), ``raw_options`` (original codes), ``scale_kind`` (``ordinal``,
``scale_1_10``, ``binary``, ``mentioned``, ``nominal``), ``scale_min``/``scale_max``/
``n_options`` (substantive recoded codes), ``missing_codes`` (code -> label) and
``adjustment`` (raw code -> recoded code; ``None`` means dropped as non-substantive).

Example
-------
>>> cat = load_catalogue()
>>> len(cat), cat.loc["Q1", "options"][1]
(259, 'Very important')
>>> cat.loc["Q56", "adjustment"]
{2: 3, 3: 2}
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "THEMES",
    "SCALE_KINDS",
    "WVS_MISSING_CODES",
    "load_catalogue",
    "QUESTION_RULES",
    "PAPER_DROPPED_ITEMS",
    "question_rule",
    "select_questions",
]

#: The 13 official WVS-7 questionnaire sections, in questionnaire order.
THEMES: tuple[str, ...] = (
    "Social Values, Attitudes & Stereotypes",
    "Happiness & Well-being",
    "Social Capital, Trust & Organizational Membership",
    "Economic Values",
    "Corruption",
    "Migration",
    "Security",
    "Postmaterialist Index",
    "Science & Technology",
    "Religious Values",
    "Ethical Values & Norms",
    "Political Interest & Political Participation",
    "Political Culture & Political Regimes",
)

#: Every scale kind in the catalogue; all but ``nominal`` have ordered answer codes.
SCALE_KINDS: tuple[str, ...] = ("ordinal", "scale_1_10", "binary", "mentioned", "nominal")

#: WVS missing codes: -1 don't know, -2 no answer, -3 not applicable, -4 not asked in this
#: country, -5 missing / not available.
WVS_MISSING_CODES: tuple[int, ...] = (-1, -2, -3, -4, -5)

_NOT_ASKED = -4

#: Named question rules for ``data.questions`` (or pass a file listing question ids instead):
#: the scale kinds each keeps and a one-line description.
QUESTION_RULES: dict[str, dict] = {
    "default": {
        "kinds": ("ordinal", "scale_1_10", "binary", "mentioned"),
        "description": "every item with ordered answer codes, multi-select 'mentioned' items included "
                       "(nominal items have no order and are left out)",
    },
    "paper": {
        "kinds": ("ordinal", "scale_1_10", "binary"),
        "description": "a reconstruction of Tan et al.'s 214: ordered single-answer items only (no "
                       "'mentioned' multi-select items, no nominal items), without the country-specific "
                       "items and the electoral block (PAPER_DROPPED_ITEMS)",
    },
}

#: Items the ``paper`` rule drops although their scale is ordered, with the reason.
PAPER_DROPPED_ITEMS: dict[str, str] = {
    "Q82": "country-specific item (regional organisation, combined from country-specific lists)",
    "Q105": "country-specific item ('other organisation', named per country)",
    **{f"Q{n}": "electoral block (turnout)" for n in (221, 222)},
    **{f"Q{n}": "electoral block (how often in this country's elections)" for n in range(224, 234)},
}
_JSON_COLUMNS = ("options", "raw_options", "missing_codes", "adjustment")


def _int_keys(text: str, *, adjustment: bool = False) -> dict:
    mapping = json.loads(text) if isinstance(text, str) and text else {}
    if adjustment:
        return {int(k): (None if v == "" else int(v)) for k, v in mapping.items()}
    return {int(k): v for k, v in mapping.items()}


@lru_cache(maxsize=1)
def _load() -> pd.DataFrame:
    path = resources.files("sgvalues").joinpath("resources/catalogue.csv")
    with path.open("r", encoding="utf-8") as fh:
        cat = pd.read_csv(fh, dtype={"question_id": str}, keep_default_na=False)
    for col in _JSON_COLUMNS:
        cat[col] = [_int_keys(v, adjustment=(col == "adjustment")) for v in cat[col]]
    for col in ("number", "scale_min", "scale_max", "n_options"):
        cat[col] = cat[col].astype(int)
    unknown = set(cat["theme"]) - set(THEMES)
    if unknown:  # guards a hand-edited CSV
        raise ValueError(f"{path}: unknown themes {sorted(unknown)}")
    return cat.set_index("question_id", drop=False).rename_axis(None)


def load_catalogue() -> pd.DataFrame:
    """The question catalogue, one row per WVS-7 question Q1..Q259, indexed by question id.

    Returns
    -------
    pandas.DataFrame
        Columns as in the module docstring; ``options``, ``raw_options`` and
        ``missing_codes`` are dicts with int keys, ``adjustment`` maps int raw codes to int
        recoded codes or ``None`` (dropped). ``theme`` holds names from :data:`THEMES`
        (plain strings; sort with ``THEMES.index``). The file is parsed once and cached;
        each call returns a copy, so callers may add columns freely.

    Examples
    --------
    >>> cat = load_catalogue()
    >>> row = cat.loc["Q241"]
    >>> row["scale_kind"], int(row["scale_min"]), int(row["scale_max"]), row["adjustment"]
    ('scale_1_10', 1, 10, {0: 1})
    """
    cat = _load().copy()
    for col in _JSON_COLUMNS:  # the dicts too, so a caller's edit cannot reach the cache
        cat[col] = [dict(d) for d in cat[col]]
    return cat


def _read_id_file(path: Path, catalogue: pd.DataFrame) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"data.questions = {str(path)!r}: cannot read the question list "
                         f"({exc.strerror})") from exc
    ids, seen = [], set()
    known = set(catalogue["question_id"])
    for i, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip().strip(",")
        if not text or (i == 1 and text == "question_id"):
            continue
        if text not in known:
            raise ValueError(f"{path}, line {i}: {text!r} is not a question id of the catalogue "
                             f"(expected Q1..Q259, one per line)")
        if text in seen:
            raise ValueError(f"{path}, line {i}: question {text} is listed twice")
        seen.add(text)
        ids.append(text)
    if not ids:
        raise ValueError(f"{path}: lists no question ids (expected one id such as Q1 per line)")
    return ids


def question_rule(catalogue: pd.DataFrame, questions: str | Path = "default") -> tuple[tuple[str, ...], pd.Series]:
    """The scale kinds a question rule keeps and the items it drops by name, before any data.

    Parameters
    ----------
    catalogue : DataFrame
        From :func:`load_catalogue`.
    questions : str or path
        A name in :data:`QUESTION_RULES` (``"default"``, ``"paper"``) or a text file listing
        question ids, one per line (``#`` starts a comment; a first line ``question_id`` is a
        header, so a one-column CSV works too).

    Returns
    -------
    kinds, dropped : tuple of str, Series
        The scale kinds to keep and, indexed by question id, the reason each named item is
        dropped. A file keeps exactly its ids (every scale kind; reason ``"not in <file>"``).

    Notes
    -----
    ``paper``: Tan et al. (2026) report 214 "value-based" questions for Singapore without
    listing them. The rule reconstructs them from the catalogue: keep ordered single-answer
    items (``ordinal``, ``scale_1_10``, ``binary``: 161 + 51 + 16 = 228), drop the 20
    multi-select "mentioned" items (child qualities Q7-Q17, neighbours Q18-Q26), whose
    answer is a tick not a position on a scale, and the 11 nominal ones; then drop the two
    country-specific items (Q82, Q105: neither WorldValuesBench nor IndieValue has a
    questionnaire wording for them) and the electoral block (turnout Q221-Q222 and the
    "how often in this country's elections" battery Q224-Q233: reports on one country's
    elections, not values). 228 - 2 - 12 = 214. Q234 (do honest elections matter) is an
    attitude and stays. Other rules tried on the catalogue: ``default`` keeps 248; ordered
    items alone keep 228; also dropping the whole Q221-Q234 range with Q82 only gives 214
    as well, but then the synthetic sample (where Q105 is "not asked") gives 213. On a data
    file the data rules of :func:`select_questions` (not asked, too few valid answers) may
    remove more: the count is then below 214, and ``excluded_questions.csv`` says why.

    Examples
    --------
    >>> cat = load_catalogue()
    >>> kinds, dropped = question_rule(cat, "paper")
    >>> int(cat["scale_kind"].isin(kinds).sum() - cat.index.isin(dropped.index).sum())
    214
    """
    if isinstance(questions, str) and questions in QUESTION_RULES:
        kinds = QUESTION_RULES[questions]["kinds"]
        dropped = PAPER_DROPPED_ITEMS if questions == "paper" else {}
        return tuple(kinds), pd.Series(dropped, dtype="object")
    path = Path(questions)
    if isinstance(questions, str) and not (path.suffix or "/" in questions):
        raise ValueError(f"data.questions = {questions!r}: expected one of {sorted(QUESTION_RULES)} "
                         f"or the path of a file listing question ids")
    keep = set(_read_id_file(path, catalogue))
    rest = [q for q in catalogue["question_id"] if q not in keep]
    return SCALE_KINDS, pd.Series({q: f"not in {path.name}" for q in rest}, dtype="object")


def select_questions(
    catalogue: pd.DataFrame,
    respondents: pd.DataFrame | None = None,
    kinds: tuple[str, ...] | list[str] | None = None,
    min_valid_share: float = 0.5,
    country_asked: bool = True,
    questions: str | Path = "default",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the catalogue into the questions a study uses and those it leaves out.

    Parameters
    ----------
    catalogue : DataFrame
        From :func:`load_catalogue` (or a subset of its rows).
    respondents : DataFrame, optional
        From :func:`sgvalues.data.load_wvs`. Without it only the scale-kind rule applies.
    kinds : sequence of str, optional
        Scale kinds to keep (see :data:`SCALE_KINDS`); ``None`` = the rule's kinds (the
        ``default`` rule: every kind but ``nominal``, whose items have no order).
    min_valid_share : float
        Keep a question only if at least this share of respondents gave a substantive answer
        (a non-missing value after recoding).
    country_asked : bool
        Drop questions not asked in the respondents' country.
    questions : str or path
        The question rule (``params.data.questions``): ``"default"``, ``"paper"`` or a file
        listing question ids; see :func:`question_rule`.

    Returns
    -------
    selected, excluded : DataFrame, DataFrame
        Catalogue rows in catalogue order; ``excluded`` has an extra ``reason`` column with
        the first rule that failed.

    Notes
    -----
    Rules, in the order they are checked (the first that fails is the reason):

    0. Named by the question rule: the ``paper`` rule's :data:`PAPER_DROPPED_ITEMS` (their
       reason), or, for a file, every id it does not list (reason ``"not in <file>"``).
    1. ``scale_kind`` in ``kinds``, else reason ``"<kind> scale"`` (e.g. ``"nominal scale"``).
    2. Asked in the country (when ``country_asked`` and respondents are given): a question is
       *not asked* when its column is absent from ``respondents`` (reason ``"not in the data
       file"``) or when every respondent has code -4 "not asked in this country", read from
       ``respondents.attrs["missing_counts"][question_id][-4] == len(respondents)``
       (reason ``"not asked in this country (all -4)"``).
    3. Valid share :math:`n_\\text{valid} / N \\ge` ``min_valid_share`` where
       :math:`n_\\text{valid}` counts non-NaN answers and :math:`N` all respondents
       (unweighted); else reason ``"fewer than 50% valid answers"`` (with the threshold).

    Tan et al. (2026) kept 214 questions for Singapore; the ``paper`` rule reconstructs them
    (214 on the catalogue); on a data file the count also depends on which items the file
    marks as not asked.

    Examples
    --------
    >>> cat = load_catalogue()
    >>> selected, excluded = select_questions(cat)
    >>> len(selected) + len(excluded) == len(cat), sorted(excluded["reason"].unique())
    (True, ['nominal scale'])
    >>> len(select_questions(cat, questions="paper")[0])
    214
    """
    rule_kinds, dropped = question_rule(catalogue, questions)
    kinds = rule_kinds if kinds is None else kinds
    unknown = set(kinds) - set(SCALE_KINDS)
    if unknown:
        raise ValueError(f"unknown scale kinds {sorted(unknown)}; expected some of {SCALE_KINDS}")
    if not 0.0 <= min_valid_share <= 1.0:
        raise ValueError(f"min_valid_share must lie in [0, 1], got {min_valid_share}")

    reasons = pd.Series(pd.NA, index=catalogue.index, dtype="object")
    named = catalogue["question_id"].map(dropped)
    reasons[named.notna().to_numpy()] = named[named.notna()]
    bad_kind = reasons.isna() & ~catalogue["scale_kind"].isin(list(kinds))
    reasons[bad_kind] = catalogue.loc[bad_kind, "scale_kind"] + " scale"

    if respondents is not None:
        n = len(respondents)
        counts = respondents.attrs.get("missing_counts", {})
        qids = catalogue["question_id"]
        present = qids.isin(respondents.columns)
        if country_asked:
            all_not_asked = np.array(
                [n > 0 and counts.get(q, {}).get(_NOT_ASKED, 0) == n for q in qids]
            )
            todo = reasons.isna()
            reasons[todo & ~present.to_numpy()] = "not in the data file"
            reasons[todo & present.to_numpy() & all_not_asked] = (
                "not asked in this country (all -4)"
            )
        share = pd.Series(0.0, index=catalogue.index)
        cols = qids[present].tolist()
        if n > 0 and cols:
            share[present] = respondents[cols].notna().mean().to_numpy()
        pct = f"{min_valid_share:.0%}"
        low = reasons.isna() & (share < min_valid_share)
        reasons[low] = f"fewer than {pct} valid answers"

    keep = reasons.isna()
    selected = catalogue[keep.to_numpy()].copy()
    excluded = catalogue[~keep.to_numpy()].copy()
    excluded["reason"] = reasons[~keep].astype(str)
    return selected, excluded
