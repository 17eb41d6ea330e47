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

import numpy as np
import pandas as pd

__all__ = [
    "THEMES",
    "SCALE_KINDS",
    "WVS_MISSING_CODES",
    "load_catalogue",
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


def select_questions(
    catalogue: pd.DataFrame,
    respondents: pd.DataFrame | None = None,
    kinds: tuple[str, ...] | list[str] = ("ordinal", "scale_1_10", "binary", "mentioned"),
    min_valid_share: float = 0.5,
    country_asked: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the catalogue into the questions a study uses and those it leaves out.

    Parameters
    ----------
    catalogue : DataFrame
        From :func:`load_catalogue` (or a subset of its rows).
    respondents : DataFrame, optional
        From :func:`sgvalues.data.load_wvs`. Without it only the scale-kind rule applies.
    kinds : sequence of str
        Scale kinds to keep (see :data:`SCALE_KINDS`); nominal items have no order, so the
        default leaves them out.
    min_valid_share : float
        Keep a question only if at least this share of respondents gave a substantive answer
        (a non-missing value after recoding).
    country_asked : bool
        Drop questions not asked in the respondents' country.

    Returns
    -------
    selected, excluded : DataFrame, DataFrame
        Catalogue rows in catalogue order; ``excluded`` has an extra ``reason`` column with
        the first rule that failed.

    Notes
    -----
    Rules, in the order they are checked (the first that fails is the reason):

    1. ``scale_kind`` in ``kinds``, else reason ``"<kind> scale"`` (e.g. ``"nominal scale"``).
    2. Asked in the country (when ``country_asked`` and respondents are given): a question is
       *not asked* when its column is absent from ``respondents`` (reason ``"not in the data
       file"``) or when every respondent has code -4 "not asked in this country", read from
       ``respondents.attrs["missing_counts"][question_id][-4] == len(respondents)``
       (reason ``"not asked in this country (all -4)"``).
    3. Valid share :math:`n_\\text{valid} / N \\ge` ``min_valid_share`` where
       :math:`n_\\text{valid}` counts non-NaN answers and :math:`N` all respondents
       (unweighted); else reason ``"fewer than 50% valid answers"`` (with the threshold).

    Tan et al. (2026) kept 214 questions for Singapore under this kind of rule; the count
    here depends on which items the data file marks as not asked.

    Examples
    --------
    >>> cat = load_catalogue()
    >>> selected, excluded = select_questions(cat)
    >>> len(selected) + len(excluded) == len(cat), sorted(excluded["reason"].unique())
    (True, ['nominal scale'])
    """
    unknown = set(kinds) - set(SCALE_KINDS)
    if unknown:
        raise ValueError(f"unknown scale kinds {sorted(unknown)}; expected some of {SCALE_KINDS}")
    if not 0.0 <= min_valid_share <= 1.0:
        raise ValueError(f"min_valid_share must lie in [0, 1], got {min_valid_share}")

    reasons = pd.Series(pd.NA, index=catalogue.index, dtype="object")
    bad_kind = ~catalogue["scale_kind"].isin(list(kinds))
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
