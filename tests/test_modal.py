"""Modal answers: hand-computed modes, ties, weights and distributions; a loop cross-check."""

import json
from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import pytest

from sgvalues.modal import MODAL_COLUMNS, modal_answers, option_codes, parse_distribution
from sgvalues.subgroups import AXES, build_subgroups

NAN = float("nan")
FOUR = '{"1": "Very", "2": "Rather", "3": "Not very", "4": "Not at all"}'


def _resp(sex, q1, weight=None, q2=None, religion=None):
    n = len(sex)
    df = pd.DataFrame({"respondent_id": range(1, n + 1), "weight": weight or [1.0] * n, "sex": sex,
                       "age_group": ["35-44"] * n, "ethnicity": ["Chinese"] * n,
                       "religion": religion or ["Buddhist"] * n, "Q1": q1})
    if q2 is not None:
        df["Q2"] = q2
    return df


def _questions(*qids, options=FOUR):
    return pd.DataFrame({"question_id": list(qids), "options": [options] * len(qids)})


def _row(m, sid, qid="Q1"):
    hit = m[(m.subgroup == sid) & (m.question_id == qid)]
    assert len(hit) <= 1
    return None if hit.empty else hit.iloc[0]


def test_unweighted_and_weighted_modes_by_hand():
    # Men answer 1,1,2 (mode 1); with the third man weighted 3, code 2 outweighs 1 (3 vs 2).
    r = _resp(["Male", "Male", "Male", "Female", "Female"], [1, 1, 2, 4, 4], weight=[1.0, 1.0, 3.0, 1.0, 1.0])
    sg = build_subgroups(r, min_n=2)
    q = _questions("Q1")
    un = _row(modal_answers(r, q, sg), "sex:Male")
    assert (un.modal_answer, un.n_tied_modes, un.n_valid) == (1, 1, 3)
    assert parse_distribution(un.distribution) == pytest.approx({1: 2 / 3, 2: 1 / 3, 3: 0.0, 4: 0.0}, abs=1e-6)
    w = _row(modal_answers(r, q, sg, weighted=True), "sex:Male")
    assert (w.modal_answer, w.n_tied_modes, w.n_valid) == (2, 1, 3)  # n_valid stays a head count
    assert parse_distribution(w.distribution) == pytest.approx({1: 0.4, 2: 0.6, 3: 0.0, 4: 0.0}, abs=1e-6)


def test_ties_take_lowest_code_and_are_counted():
    # three-way tie 2/3/4 among women; two-way tie 1/4 among everyone (1,1 men; 4 ... women)
    r = _resp(["Female"] * 3 + ["Male"] * 3, [4, 3, 2, 1, 1, 4])
    sg = build_subgroups(r, min_n=3)
    m = modal_answers(r, _questions("Q1"), sg)
    fem = _row(m, "sex:Female")
    assert (fem.modal_answer, fem.n_tied_modes) == (2, 3)
    everyone = _row(m, "age_group:35-44")   # counts 1:2, 2:1, 3:1, 4:2
    assert (everyone.modal_answer, everyone.n_tied_modes) == (1, 2)
    men = _row(m, "sex:Male")
    assert (men.modal_answer, men.n_tied_modes) == (1, 1)
    # every tied code is kept, ascending
    assert [json.loads(x.tied_modes) for x in (fem, everyone, men)] == [[2, 3, 4], [1, 4], [1]]


def test_weighted_ties_survive_float_rounding():
    # 0.1 + 0.2 != 0.3 in floats; the tie must still be seen
    r = _resp(["Male"] * 3, [1, 1, 2], weight=[0.1, 0.2, 0.3])
    m = modal_answers(r, _questions("Q1"), build_subgroups(r, min_n=3), weighted=True)
    assert (_row(m, "sex:Male").modal_answer, _row(m, "sex:Male").n_tied_modes) == (1, 2)


def test_distribution_has_every_code_in_numeric_order():
    ten = json.dumps({str(c): str(c) for c in range(1, 11)})
    r = _resp(["Male"] * 4, [10, 10, 2, NAN])
    m = modal_answers(r, _questions("Q1", options=ten), build_subgroups(r, min_n=4))
    row = _row(m, "sex:Male")
    dist = json.loads(row.distribution)
    assert list(dist) == [str(c) for c in range(1, 11)]       # "10" last, not after "1"
    assert dist["10"] == pytest.approx(2 / 3, abs=1e-6) and dist["2"] == pytest.approx(1 / 3, abs=1e-6)
    assert sum(v == 0.0 for v in dist.values()) == 8
    assert (row.modal_answer, row.n_valid) == (10, 3)


def test_no_row_without_valid_answers_and_stray_codes_ignored():
    r = _resp(["Male", "Male", "Female", "Female"], [1, 2, NAN, NAN], q2=[NAN, NAN, 3, 7])
    sg = build_subgroups(r, min_n=2)
    with pytest.warns(UserWarning, match="outside their question's options"):
        m = modal_answers(r, _questions("Q1", "Q2"), sg)
    assert list(m.columns) == MODAL_COLUMNS
    assert _row(m, "sex:Female", "Q1") is None                # women never answered Q1
    assert _row(m, "sex:Male", "Q2") is None                  # nor men Q2
    women_q2 = _row(m, "sex:Female", "Q2")                    # 7 is not an option of Q2
    assert (women_q2.modal_answer, women_q2.n_valid) == (3, 1)
    # order: question order first, then subgroup order
    assert m["question_id"].tolist() == sorted(m["question_id"].tolist(), key=["Q1", "Q2"].index)


def test_bad_weights_are_named():
    r = _resp(["Male", "Male"], [1, 2], weight=[1.0, 0.0])
    with pytest.raises(ValueError, match="column 'weight'.*not positive"):
        modal_answers(r, _questions("Q1"), build_subgroups(r, min_n=1), weighted=True)
    with pytest.raises(ValueError, match="no column for question"):
        modal_answers(r, _questions("Q9"), build_subgroups(r, min_n=1))


@pytest.mark.parametrize("weighted", [False, True])
def test_matches_a_plain_python_loop(weighted):
    rng = np.random.default_rng(7)
    n = 400
    r = pd.DataFrame({
        "respondent_id": range(n), "weight": rng.choice([0.5, 1.0, 2.0], n),  # few values: weighted ties happen
        "sex": rng.choice(["Male", "Female"], n), "age_group": rng.choice(AXES["age_group"], n),
        "ethnicity": rng.choice(["Chinese", "Malay", "Indian", None], n),
        "religion": rng.choice(list(AXES["religion"]) + ["Jew"], n),
        # few options and few answers so that ties happen
        "Q1": rng.choice([1, 2, 3, NAN], n), "Q5": rng.choice([1, 2, NAN, NAN, NAN], n),
        "Q6": rng.choice(list(range(1, 11)), n).astype(float),
    })
    q = pd.DataFrame({"question_id": ["Q1", "Q5", "Q6"],
                      "options": ['{"1": "a", "2": "b", "3": "c"}', '{"1": "yes", "2": "no"}',
                                  json.dumps({str(c): str(c) for c in range(1, 11)})]})
    sg = build_subgroups(r, min_n=5)
    got = modal_answers(r, q, sg, weighted=weighted).set_index(["question_id", "subgroup"])

    recs = r.to_dict("records")
    n_rows = 0
    for qid, opts in zip(q.question_id, q.options):
        codes = option_codes(opts)
        for s in sg.itertuples():
            levels = json.loads(s.levels)
            tally, n_valid = defaultdict(float), 0
            for rec in recs:
                if all(rec[a] == lv for a, lv in levels.items()) and rec[qid] in codes:
                    tally[int(rec[qid])] += rec["weight"] if weighted else 1
                    n_valid += 1
            if n_valid == 0:
                assert (qid, s.subgroup) not in got.index
                continue
            n_rows += 1
            best = max(tally.values())
            modes = sorted(c for c, v in tally.items() if abs(v - best) <= 1e-9 * best)
            row = got.loc[(qid, s.subgroup)]
            assert (row.modal_answer, row.n_tied_modes, row.n_valid) == (modes[0], len(modes), n_valid)
            assert json.loads(row.tied_modes) == modes
            total = sum(tally.values())
            assert parse_distribution(row.distribution) == pytest.approx(
                {c: tally.get(c, 0.0) / total for c in codes}, abs=1e-6)
    assert n_rows == len(got)
    assert (got["n_tied_modes"] > 1).any()          # the data did exercise ties
    assert Counter(got["n_tied_modes"])[1] > 0
