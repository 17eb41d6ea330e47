"""The sensitive-question list (ids in the catalogue, codebook labels) and refusal_rates by hand."""

import math

import pandas as pd
import pytest

from sgvalues import sensitive
from sgvalues.report import refusals
from sgvalues.catalogue import load_catalogue, select_questions


@pytest.fixture(scope="module")
def listed():
    return sensitive.load_sensitive_questions()


def test_every_sensitive_id_is_a_catalogue_question_with_its_codebook_label(listed):
    cat = load_catalogue().set_index("question_id")
    assert list(listed.columns) == sensitive.SENSITIVE_COLUMNS and listed["question_id"].is_unique
    missing = sorted(set(listed["question_id"]) - set(cat.index))
    assert not missing, f"not in the catalogue: {missing}"
    for r in listed.itertuples():
        assert cat.loc[r.question_id, "label"] == r.label, r.question_id
    # the topics the paper names or implies, each present
    labels = " ".join(listed["label"]).lower()
    for word in ("homosexuality", "abortion", "divorce", "prostitution", "man to beat his wife",
                 "parents beating children", "euthanasia", "suicide", "sex before marriage", "casual sex",
                 "death penalty"):
        assert word in labels, word


def test_sensitive_questions_are_selected_by_the_question_rules(listed):
    cat = load_catalogue()
    ids = set(listed["question_id"])
    kept = {}
    for rule in ("default", "paper"):  # the rules before any data: scale kinds, items dropped by name
        selected, _ = select_questions(cat, questions=rule)
        kept[rule] = set(selected["question_id"])
    assert ids <= kept["default"]
    assert ids - kept["paper"] == {"Q22"}  # the one multi-select "mentioned" item, as the YAML notes


def _hand_rates(table, ids):
    out = {}
    for part in ("sensitive", "other"):
        n = k = 0
        for q, status in zip(table["question_id"], table["status"]):
            if (q in ids) == (part == "sensitive"):
                n += 1
                k += status == "refused"
        out[part] = (n, k, k / n if n else math.nan)
    return out


def test_refusal_rates_match_a_hand_count_for_predictions():
    ids = {"Q182", "Q189"}
    base = pd.DataFrame({"question_id": ["Q182", "Q182", "Q189", "Q1", "Q1", "Q2", "Q3"],
                         "status": ["refused", "refused", "ok", "refused", "ok", "unparseable", "failed"]})
    sft = pd.DataFrame({"question_id": ["Q182", "Q189", "Q189", "Q1"], "status": ["ok", "ok", "ok", "ok"]})
    got = sensitive.refusal_rates({"base": base, "sft": sft}, sensitive=ids)
    assert got["state"].tolist() == ["base", "sft"] and list(got.columns) == sensitive.RATE_COLUMNS
    for state, table in (("base", base), ("sft", sft)):
        row = got.set_index("state").loc[state]
        hand = _hand_rates(table, ids)
        for part in ("sensitive", "other"):
            n, k, rate = hand[part]
            assert (row[f"n_{part}"], row[f"refused_{part}"]) == (n, k)
            assert row[f"refusal_rate_{part}"] == pytest.approx(rate)
    assert got.loc[0, "refusal_rate_sensitive"] == pytest.approx(2 / 3)  # 2 of the 3 sensitive rows
    assert got.loc[0, "refusal_rate_other"] == pytest.approx(1 / 4)  # failed/unparseable stay in the denominator


def test_refusal_rates_from_generations_split_by_role_and_read_back_from_csv(tmp_path):
    gens = pd.DataFrame({
        "question_id": ["Q184", "Q5", "Q184", "Q5", "Q184", "Q5"],
        "role": ["candidate_base", "candidate_base", "candidate_sft", "candidate_sft", "reference", "reference"],
        "refused": [True, False, False, False, False, True],
    })
    gens.to_csv(tmp_path / "g.csv", index=False)
    back = pd.read_csv(tmp_path / "g.csv", keep_default_na=False, dtype=str)  # "True"/"False" strings
    for table in (gens, back):
        got = sensitive.refusal_rates(table, sensitive=["Q184"]).set_index("state")
        assert list(got.index) == ["base", "sft", "reference"]
        assert got.loc["base", "refusal_rate_sensitive"] == 1.0 and got.loc["base", "refusal_rate_other"] == 0.0
        assert got.loc["sft", "refused_sensitive"] == 0 and got.loc["reference", "refused_other"] == 1
    # the shipped list is the default
    default = sensitive.refusal_rates(gens)
    assert default["n_sensitive"].tolist() == [1, 1, 1]


def test_a_state_without_sensitive_rows_has_no_rate_and_the_sentence_says_so():
    t = pd.DataFrame({"question_id": ["Q1", "Q2"], "status": ["refused", "ok"]})
    got = sensitive.refusal_rates({"base": t}, sensitive=["Q182"])
    assert got.loc[0, "n_sensitive"] == 0 and math.isnan(got.loc[0, "refusal_rate_sensitive"])
    text = refusals.refusal_sentence(got)
    assert "no answers on sensitive questions" in text and "1 of 2 on the other questions (rate 0.500)" in text


@pytest.mark.parametrize("body,expect", [
    ("questions:\n  - {id: Q182, topic: x}\n", "questions[0].label"),
    ("questions:\n  - {id: Q182, topic: x, label: y}\n  - {id: Q182, topic: x, label: y}\n", "listed twice"),
    ("questions:\n  - {id: 182, topic: x, label: y}\n", "questions[0].id = 182"),
    ("questions:\n  - {id: V182, topic: x, label: y}\n", "'V182'"),
    ("questions:\n  - {id: Q1, topic: x, label: y, wording: z}\n", "unknown field"),
    ("topics: []\n", "'questions' list"),
])
def test_bad_sensitive_files_name_file_entry_and_field(tmp_path, body, expect):
    f = tmp_path / "s.yaml"
    f.write_text(body)
    with pytest.raises(ValueError) as exc:
        sensitive.load_sensitive_questions(f)
    assert str(f) in str(exc.value) and expect in str(exc.value)


def test_bad_tables_are_clear_errors():
    with pytest.raises(ValueError, match="no 'status' .* or 'refused'"):
        sensitive.refusal_rates({"base": pd.DataFrame({"question_id": ["Q1"]})}, sensitive=[])
    with pytest.raises(ValueError, match="no 'question_id'"):
        sensitive.refusal_rates({"sft": pd.DataFrame({"status": ["ok"]})}, sensitive=[])
    with pytest.raises(TypeError, match="mapping state"):
        sensitive.refusal_rates([1, 2])


def test_refusals_beside_paper_labels_the_published_figures():
    from sgvalues.published import PUBLISHED_LABEL, published

    rates = sensitive.refusal_rates({"zeroshot": pd.DataFrame({"question_id": ["Q182"], "status": ["refused"]}),
                                     "sft": pd.DataFrame({"question_id": ["Q182"], "status": ["ok"]}),
                                     "reference": pd.DataFrame({"question_id": ["Q1"], "status": ["ok"]})})
    table = refusals.refusals_beside_paper(rates, paper_states={"zeroshot": "base"})
    finding = published()["refusal_finding"]
    assert table[PUBLISHED_LABEL].tolist() == [f"{finding['base_percent'] / 100:.3f}", finding["sft"], "–"]
    assert table["refusal_rate_sensitive"].tolist()[:2] == [1.0, 0.0]
