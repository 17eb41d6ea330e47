"""data.questions: named question rules and question-list files, from params to the prepared folder.

Counts are recomputed here from the catalogue's columns, not taken from the rule's code."""

import json

import pandas as pd
import pytest

from sgvalues.catalogue import PAPER_DROPPED_ITEMS, QUESTION_RULES, load_catalogue, question_rule, select_questions
from sgvalues.params import Params, ParamsError, load_params
from sgvalues.prepare import prepare, prepare_run_data


@pytest.fixture(scope="module")
def cat():
    return load_catalogue()


def test_default_rule_is_todays_rule(cat):
    sel, exc = select_questions(cat, questions="default")
    sel_old, _ = select_questions(cat, kinds=("ordinal", "scale_1_10", "binary", "mentioned"))
    assert sel["question_id"].tolist() == sel_old["question_id"].tolist()
    assert len(sel) == int((cat["scale_kind"] != "nominal").sum())


def test_paper_rule_reaches_214_on_the_catalogue(cat):
    # independently: ordered single-answer kinds ...
    ordered = cat[cat["scale_kind"].isin(["ordinal", "scale_1_10", "binary"])]
    # ... minus items whose label marks a country-specific list or "other organization" ...
    country = ordered["label"].str.contains("country-specific|other organization", case=False)
    # ... minus voting and "how often in country's elections" items
    electoral = ordered["label"].str.match(r"(Vote in elections|How often in country.s elections)")
    expected = ordered[~country & ~electoral]["question_id"].tolist()
    assert len(expected) == 214
    sel, exc = select_questions(cat, questions="paper")
    assert sel["question_id"].tolist() == expected
    assert len(sel) + len(exc) == len(cat)
    reasons = exc.set_index("question_id")["reason"]
    assert (reasons[cat.index[cat["scale_kind"] == "mentioned"]] == "mentioned scale").all()
    assert reasons["Q224"].startswith("electoral block") and reasons["Q82"].startswith("country-specific")
    assert "Q234" in set(sel["question_id"])  # an attitude about elections, not a report on one
    assert set(PAPER_DROPPED_ITEMS) == set(ordered[country | electoral]["question_id"])


def test_a_question_list_file(cat, tmp_path):
    f = tmp_path / "my_questions.txt"
    f.write_text("# my study\nQ7\nQ1  # family\n\nQ42\n")
    sel, exc = select_questions(cat, questions=f)
    assert sel["question_id"].tolist() == ["Q1", "Q7", "Q42"]  # every kind, in catalogue order
    assert set(exc["reason"]) == {"not in my_questions.txt"}
    csv = tmp_path / "ids.csv"
    csv.write_text("question_id\nQ2\n")
    assert select_questions(cat, questions=csv)[0]["question_id"].tolist() == ["Q2"]


@pytest.mark.parametrize("text, message", [("Q1\nQ999\n", "line 2: 'Q999' is not a question id"),
                                           ("Q1\nQ1\n", "line 2: question Q1 is listed twice"),
                                           ("# nothing\n", "lists no question ids")])
def test_bad_question_files_name_file_line_and_value(cat, tmp_path, text, message):
    f = tmp_path / "q.txt"
    f.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        select_questions(cat, questions=f)
    assert str(f) in str(err.value)


def test_unknown_rule_name_is_an_error(cat):
    with pytest.raises(ValueError, match="expected one of"):
        question_rule(cat, "papr")


def test_params_validate_the_questions_key(tmp_path):
    assert Params(name="x").data.questions == "default"
    assert Params.from_dict({"name": "x", "data": {"questions": "paper"}}).data.questions == "paper"
    assert Params.from_dict({"name": "x", "data": {"questions": "lists/q.txt"}}).data.questions == "lists/q.txt"
    f = tmp_path / "bad.yaml"
    f.write_text("name: bad\ndata:\n  questions: papr\n")
    with pytest.raises(ParamsError, match=r"bad.yaml.*questions = 'papr'.*default, paper"):
        load_params(f)
    assert set(QUESTION_RULES) == {"default", "paper"}


def _tiny_wvs(path):
    # 6 Singapore respondents; Q1 ordinal, Q7 mentioned, Q224 electoral block, Q42 nominal
    rows = [(702, i, 1 + i % 2, 1 + i % 2, 702004, 7, 1.0, 1 + i % 3, 1 + i % 2, 1 + i % 4, 1 + i % 3)
            for i in range(1, 7)]
    cols = ["B_COUNTRY", "D_INTERVIEW", "Q260", "X003R", "Q290", "Q289", "W_WEIGHT", "Q1", "Q7", "Q224", "Q42"]
    pd.DataFrame(rows, columns=cols).to_csv(path, index=False)
    return path


def test_prepare_and_prepare_run_data_apply_the_rule(tmp_path):
    src = _tiny_wvs(tmp_path / "tiny.csv")
    default = prepare(src, tmp_path / "d", min_n=3)
    paper = prepare(src, tmp_path / "p", min_n=3, questions="paper")
    assert default.questions["question_id"].tolist() == ["Q1", "Q7", "Q224"]
    assert paper.questions["question_id"].tolist() == ["Q1"]
    assert paper.summary["questions_rule"] == "paper" and default.summary["questions_rule"] == "default"
    assert set(paper.samples_ood["question_id"]) <= {"Q1"}
    # through params: a file listing ids, relative paths resolved; a changed list re-prepares
    ids = tmp_path / "ids.txt"
    ids.write_text("Q7\n")
    params = Params.from_dict({"name": "t", "data": {"wvs_file": str(src), "min_n": 3, "questions": str(ids)}})
    out = prepare_run_data(params, tmp_path / "run")
    summary = json.loads((out / "prepare_summary.json").read_text())
    assert summary["n_questions"] == 1 and summary["questions_rule"] == "ids.txt"
    ids.write_text("Q1\nQ224\n")
    prepare_run_data(params, tmp_path / "run")
    assert json.loads((out / "prepare_summary.json").read_text())["n_questions"] == 2
    missing = Params.from_dict({"name": "t", "data": {"wvs_file": str(src), "questions": str(tmp_path / "no.txt")}})
    with pytest.raises(FileNotFoundError, match="data.questions"):
        prepare_run_data(missing, tmp_path / "run2")
