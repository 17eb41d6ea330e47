"""Unseen questions: wording similarity by hand, the near-duplicate filter, the theme holdout."""

import math

import pandas as pd
import pytest

from sgvalues.question_holdout import (HOLDOUT_COLUMNS, near_duplicate_pairs, question_holdout,
                                       wording_similarity)


def test_similarity_by_hand_for_character_trigrams():
    # char_wb pads words with spaces: " abc " -> " ab", "abc", "bc "; " abd " -> " ab", "abd", "bd ".
    # smoothed idf with 2 documents: shared " ab" -> ln(3/3) + 1 = 1, the others ln(3/2) + 1.
    q = pd.DataFrame({"question_id": ["x", "y"], "wording": ["abc", "abd"]})
    w = math.log(3 / 2) + 1
    expected = 1 / (1 + 2 * w ** 2)
    sim = wording_similarity(q, ngram_range=(3, 3))
    assert sim.loc["x", "y"] == pytest.approx(expected)
    assert sim.loc["y", "x"] == pytest.approx(expected)
    assert sim.loc["x", "x"] == 1.0


def test_similarity_extremes():
    q = pd.DataFrame({"question_id": ["a", "b", "c"], "wording": ["Trust in the army", "TRUST IN THE ARMY", "xyz"]})
    sim = wording_similarity(q)
    assert sim.loc["a", "b"] == pytest.approx(1.0)  # case-insensitive
    assert sim.loc["a", "c"] == pytest.approx(0.0)  # no shared n-gram
    with pytest.raises(ValueError, match="repeated"):
        wording_similarity(pd.DataFrame({"question_id": ["a", "a"], "wording": ["x", "y"]}))
    with pytest.raises(ValueError, match="blank"):
        wording_similarity(pd.DataFrame({"question_id": ["a", "b"], "wording": ["x", " "]}))


QUESTIONS = pd.DataFrame({
    "question_id": ["Q1", "Q2", "Q3", "Q4", "Q5", "Q6"],
    "theme": ["Values", "Values", "Trust", "Trust", "Religion", "Religion"],
    "wording": [
        "How important is family in your life?",
        "Would you say that most people can be trusted?",
        "How much do you trust your family?",
        "Would you say that most people can be trusted, or that you need to be careful?",
        "How often do you attend religious services?",
        "How important is God in your life?",
    ],
})


def test_near_duplicate_pairs_threshold_is_a_parameter():
    sim = wording_similarity(QUESTIONS)
    pairs = near_duplicate_pairs(QUESTIONS, threshold=0.6)
    # every pair returned is at or above the threshold, every pair above it is returned
    expected = {(a, b) for i, a in enumerate(sim.index) for b in sim.index[i + 1:] if sim.loc[a, b] >= 0.6}
    assert set(map(tuple, pairs[["question_a", "question_b"]].values)) == expected
    assert ("Q2", "Q4") in expected  # the same question, longer
    assert pairs["similarity"].is_monotonic_decreasing
    assert near_duplicate_pairs(QUESTIONS, threshold=1.0).empty
    with pytest.raises(ValueError, match="threshold"):
        near_duplicate_pairs(QUESTIONS, threshold=0)


def test_holdout_by_theme_drops_training_near_duplicates():
    got = question_holdout(QUESTIONS, ["Trust"], threshold=0.6)
    assert list(got.columns) == HOLDOUT_COLUMNS
    split = dict(zip(got["question_id"], got["split"]))
    # the Trust theme is held out whole; Q2 (Values) is Q4's near-duplicate -> dropped from training
    assert split == {"Q1": "train", "Q2": "dropped", "Q3": "holdout", "Q4": "holdout",
                     "Q5": "train", "Q6": "train"}
    q2 = got.set_index("question_id").loc["Q2"]
    assert q2["nearest"] == "Q4" and "Q4" in q2["reason"]
    assert q2["similarity"] == pytest.approx(wording_similarity(QUESTIONS).loc["Q2", "Q4"])
    # each held-out question's nearest is on the training side
    for _, r in got[got["split"] == "holdout"].iterrows():
        assert r["nearest"] in {"Q1", "Q2", "Q5", "Q6"}
    # a stricter threshold keeps Q2 (its similarity to Q4 is below 1)
    strict = question_holdout(QUESTIONS, ["Trust"], threshold=0.99)
    assert dict(zip(strict["question_id"], strict["split"]))["Q2"] == "train"


def test_holdout_errors_are_named():
    with pytest.raises(ValueError, match="Sport"):
        question_holdout(QUESTIONS, ["Sport"])
    with pytest.raises(ValueError, match="every question"):
        question_holdout(QUESTIONS, ["Trust", "Values", "Religion"])
    with pytest.raises(ValueError, match="no themes"):
        question_holdout(QUESTIONS, [])
    with pytest.raises(ValueError, match="theme"):
        question_holdout(QUESTIONS.drop(columns="theme"), ["Trust"])


def test_threshold_one_drops_identical_wordings():
    """The cosine of two identical wordings comes out of the sparse product a few ulps below 1 for
    many texts; ``threshold = 1`` (allowed, "identical only") must still count them."""
    from sgvalues.catalogue import load_catalogue

    cat = load_catalogue()
    cat = cat.reset_index() if "question_id" not in cat.columns else cat
    base = cat[["question_id", "theme", "wording"]].iloc[:40].reset_index(drop=True)
    copies = base.assign(question_id=base["question_id"] + "_copy", theme="Copies")
    q = pd.concat([base, copies], ignore_index=True)
    sim = wording_similarity(q)
    assert (sim.loc[base["question_id"], copies["question_id"]].to_numpy().diagonal() < 1).any()  # the case bites
    got = question_holdout(q, ["Copies"], threshold=1.0).set_index("question_id")
    assert (got.loc[base["question_id"], "split"] == "dropped").all()
    assert got.loc[base["question_id"], "nearest"].tolist() == copies["question_id"].tolist()
    pairs = set(map(tuple, near_duplicate_pairs(q, threshold=1.0)[["question_a", "question_b"]].values))
    assert set(zip(base["question_id"], copies["question_id"])) <= pairs
