"""Tests for sgvalues.catalogue and scripts/derive_catalogue.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sgvalues.catalogue import SCALE_KINDS, THEMES, load_catalogue, select_questions

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "wvs7"
CSV = REPO / "sgvalues" / "resources" / "catalogue.csv"


@pytest.fixture(scope="module")
def cat() -> pd.DataFrame:
    return load_catalogue()


def test_one_row_per_question_in_order(cat):
    assert cat["question_id"].tolist() == [f"Q{i}" for i in range(1, 260)]
    assert cat["number"].tolist() == list(range(1, 260))
    assert cat.index.tolist() == cat["question_id"].tolist()


def test_thirteen_themes_in_questionnaire_order(cat):
    assert len(THEMES) == 13 and set(cat["theme"]) == set(THEMES)
    order = cat["theme"].map(THEMES.index)
    assert order.is_monotonic_increasing  # sections are contiguous question ranges
    assert cat.loc["Q45", "theme"] == THEMES[0] and cat.loc["Q46", "theme"] == THEMES[1]
    assert cat.loc["Q105", "theme"] == "Social Capital, Trust & Organizational Membership"
    assert cat.loc["Q259", "theme"] == THEMES[-1]


def test_options_and_scale_bounds_agree(cat):
    for qid, row in cat.iterrows():
        codes = sorted(row["options"])
        assert all(isinstance(c, int) for c in codes), qid
        assert (row["scale_min"], row["scale_max"], row["n_options"]) == (
            codes[0], codes[-1], len(codes)), qid
        assert row["scale_kind"] in SCALE_KINDS, qid
        assert all(c < 0 for c in row["missing_codes"]), qid
        if row["scale_kind"] == "scale_1_10":
            assert codes == list(range(1, 11)), qid
        elif row["scale_kind"] in ("binary", "mentioned"):
            assert codes == [1, 2], qid
        elif row["scale_kind"] == "ordinal":
            assert len(codes) >= 3 and codes == list(range(codes[0], codes[-1] + 1)), qid


def test_options_are_raw_options_after_adjustment(cat):
    # Recompute the recoded codes from raw_options and adjustment, independently of the script.
    for qid, row in cat.iterrows():
        adj = row["adjustment"]
        expected = {adj.get(c, c) for c in row["raw_options"]} - {None}
        assert set(row["options"]) == expected, qid
        for raw, new in adj.items():
            assert raw in row["raw_options"], qid
            if new is None:
                assert raw not in row["options"] or raw in adj.values(), qid


@pytest.mark.parametrize(
    ("qid", "options"),
    [
        ("Q56", {1: "Better off", 2: "About the same", 3: "Worse off"}),
        ("Q119", {1: "Strongly agree", 2: "Agree", 3: "Hard to say", 4: "Disagree",
                  5: "Strongly disagree"}),
        ("Q221", {1: "Always", 2: "Usually", 3: "Never"}),
        ("Q111", {1: "A: Protect environment", 2: "B: Economic growth"}),
        ("Q254", {1: "Very proud", 2: "Quite proud", 3: "Not very proud", 4: "Not at all proud"}),
    ],
)
def test_recoded_options_by_hand(cat, qid, options):
    assert cat.loc[qid, "options"] == options


def test_adjustment_maps_raw_to_recoded(cat):
    assert cat.loc["Q56", "adjustment"] == {2: 3, 3: 2}
    assert cat.loc["Q119", "adjustment"] == {0: 3, 3: 4, 4: 5}
    assert cat.loc["Q221", "adjustment"] == {4: None}
    assert cat.loc["Q241", "adjustment"] == {0: 1}
    assert 0 in cat.loc["Q241", "raw_options"] and 0 not in cat.loc["Q241", "options"]
    assert cat.loc["Q1", "adjustment"] == {}
    assert (cat["adjustment"].map(len) > 0).sum() == 15  # Q56, Q111, Q119, Q221-222, Q241-249, Q254


def test_scale_kind_decisions(cat):
    kinds = cat["scale_kind"]
    assert set(kinds[[f"Q{i}" for i in range(7, 27)]]) == {"mentioned"}
    assert set(kinds[[f"Q{i}" for i in range(94, 106)]]) == {"ordinal"}
    assert set(kinds[[f"Q{i}" for i in range(152, 158)]]) == {"nominal"}
    assert kinds["Q42"] == "nominal" and kinds["Q223"] == "nominal"
    assert kinds["Q111"] == "binary" and kinds["Q149"] == "binary"
    assert kinds["Q252"] == "scale_1_10" and kinds["Q48"] == "scale_1_10"
    assert kinds.value_counts().to_dict() == {
        "ordinal": 161, "scale_1_10": 51, "mentioned": 20, "binary": 16, "nominal": 11}


def test_wording_is_stem_plus_item(cat):
    assert cat.loc["Q1", "wording"] == (
        "For each of the following, indicate how important it is in your life: Family.")
    assert cat.loc["Q57", "wording"] == cat.loc["Q57", "stem"]  # a single question
    for qid in ("Q7", "Q64", "Q182", "Q241"):
        assert cat.loc[qid, "wording"] != cat.loc[qid, "stem"], qid
    assert not cat["wording"].str.contains(r"\[|\(nation\)").any()  # no placeholders left
    assert (cat["wording"].str.len() > 20).all() and (cat["label"].str.len() > 0).all()


def test_load_catalogue_returns_a_copy():
    first = load_catalogue()
    first["extra"] = 1
    first.loc["Q1", "scale_kind"] = "nominal"
    first.loc["Q1", "options"][9] = "changed"
    again = load_catalogue()
    assert "extra" not in again.columns and again.loc["Q1", "scale_kind"] == "ordinal"
    assert 9 not in again.loc["Q1", "options"]


def _respondents(cat: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """Respondents answering every question validly, with per-question missing counts."""
    data = {q: np.full(n, float(cat.loc[q, "scale_min"])) for q in cat.index}
    df = pd.DataFrame(data)
    df.attrs["missing_counts"] = {q: {c: 0 for c in (-1, -2, -3, -4, -5)} for q in cat.index}
    return df


def test_select_questions_by_kind_only(cat):
    selected, excluded = select_questions(cat)
    assert len(selected) == 248 and len(excluded) == 11
    assert set(excluded["reason"]) == {"nominal scale"}
    assert set(excluded["scale_kind"]) == {"nominal"}
    assert selected.index.tolist() == [q for q in cat.index if q not in excluded.index]
    only_ordinal, _ = select_questions(cat, kinds=("ordinal",))
    assert len(only_ordinal) == 161


def test_select_questions_with_respondents(cat):
    n = 10
    resp = _respondents(cat, n)
    resp["Q2"] = np.nan
    resp.attrs["missing_counts"]["Q2"][-4] = n  # not asked in this country
    resp["Q3"] = np.nan
    resp.attrs["missing_counts"]["Q3"].update({-4: n - 1, -1: 1})  # one "don't know"
    resp.loc[:5, "Q4"] = np.nan  # 6 of 10 missing -> 40% valid
    resp.loc[:4, "Q5"] = np.nan  # 5 of 10 missing -> exactly 50% valid: kept
    resp = resp.drop(columns=["Q6"])
    selected, excluded = select_questions(cat, resp)
    reasons = excluded["reason"].to_dict()
    assert reasons["Q2"] == "not asked in this country (all -4)"
    assert reasons["Q3"] == "fewer than 50% valid answers"
    assert reasons["Q4"] == "fewer than 50% valid answers"
    assert reasons["Q6"] == "not in the data file"
    assert reasons["Q42"] == "nominal scale"  # the kind rule comes first
    assert "Q5" in selected.index and "Q1" in selected.index
    assert len(selected) == 248 - 4

    # Without the country rule, a not-asked item still fails on its valid share.
    _, excluded2 = select_questions(cat, resp, country_asked=False, min_valid_share=0.3)
    reasons2 = excluded2["reason"].to_dict()
    assert reasons2["Q2"] == "fewer than 30% valid answers"
    assert "Q4" not in reasons2 and reasons2["Q6"] == "fewer than 30% valid answers"


def test_select_questions_rejects_bad_arguments(cat):
    with pytest.raises(ValueError, match="unknown scale kinds"):
        select_questions(cat, kinds=("likert",))
    with pytest.raises(ValueError, match="min_valid_share"):
        select_questions(cat, min_valid_share=50)


@pytest.mark.skipif(not (SHARED / "codebook.json").exists(),
                    reason="WVS-7 metadata (../shared/wvs7) not present in this clone")
def test_derive_script_reproduces_committed_csv(tmp_path):
    out = tmp_path / "catalogue.csv"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "derive_catalogue.py"), str(SHARED),
         "--out", str(out)],
        check=True, capture_output=True, text=True,
    )
    assert out.read_bytes() == CSV.read_bytes()
