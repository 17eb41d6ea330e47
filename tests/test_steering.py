"""Few-shot steering: nearest training questions by wording and the subgroup's answers to them."""

import pandas as pd
import pytest

from sgvalues.question_holdout import wording_similarity
from sgvalues.steering import EXAMPLE_COLUMNS, NEIGHBOUR_COLUMNS, few_shot_examples, nearest_questions

Q = pd.DataFrame({
    "question_id": ["Q1", "Q2", "Q3", "Q4", "Q5"],
    "wording": ["How important is family in your life?", "How important is work in your life?",
                "How important is religion in your life?", "Do you trust your neighbours?",
                "Would you say most people can be trusted?"],
})


def test_neighbours_are_the_most_similar_candidates_by_hand():
    sim = wording_similarity(Q)
    got = nearest_questions(Q, k=2)
    assert list(got.columns) == NEIGHBOUR_COLUMNS
    for qid, g in got.groupby("question_id"):
        others = sim.loc[qid].drop(qid).sort_values(ascending=False, kind="stable")
        assert g["neighbour"].tolist() == others.index[:2].tolist()
        assert g["similarity"].tolist() == pytest.approx(others.iloc[:2].tolist())
        assert g["rank"].tolist() == [1, 2]
    # the "importance" battery finds its siblings first
    assert set(got[got["question_id"] == "Q1"]["neighbour"]) == {"Q2", "Q3"}


def test_candidates_restrict_examples_to_training_questions():
    got = nearest_questions(Q, k=None, candidates=["Q4", "Q5"])
    assert set(got["neighbour"]) == {"Q4", "Q5"}
    assert got.groupby("question_id").size().to_dict() == {"Q1": 2, "Q2": 2, "Q3": 2, "Q4": 1, "Q5": 1}
    assert "Q4" not in got.loc[got["question_id"] == "Q4", "neighbour"].tolist()  # never itself
    with pytest.raises(ValueError, match="Q9"):
        nearest_questions(Q, candidates=["Q9"])
    with pytest.raises(ValueError, match="k = 0"):
        nearest_questions(Q, k=0)


def test_few_shot_examples_skip_unanswered_neighbours():
    modal = pd.DataFrame({"question_id": ["Q1", "Q2", "Q3", "Q1", "Q3"],
                          "subgroup": ["sex:Male"] * 3 + ["sex:Female"] * 2,
                          "modal_answer": [1, 2, 3, 4, 1]})
    nb = nearest_questions(Q, k=None)
    got = few_shot_examples(modal, nb, k=2)
    assert list(got.columns) == EXAMPLE_COLUMNS
    male_q1 = got[(got["question_id"] == "Q1") & (got["subgroup"] == "sex:Male")]
    # Q1's ranking starts with Q2/Q3 (the battery): both answered by men
    want = [n for n in nb[nb["question_id"] == "Q1"]["neighbour"] if n in {"Q2", "Q3"}][:2]
    assert male_q1["neighbour"].tolist() == want
    assert male_q1["answer"].tolist() == [{"Q2": 2, "Q3": 3}[n] for n in want]
    # women answered only Q1 and Q3: Q1's examples skip the unanswered Q2 and the rest, leaving one
    fem_q1 = got[(got["question_id"] == "Q1") & (got["subgroup"] == "sex:Female")]
    assert fem_q1["neighbour"].tolist() == ["Q3"] and fem_q1["rank"].tolist() == [1]
    assert fem_q1["answer"].tolist() == [1]
    with pytest.raises(ValueError, match="modal_answer"):
        few_shot_examples(modal.drop(columns="modal_answer"), nb)
