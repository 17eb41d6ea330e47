"""evaluate_samples / evaluate_run with a scripted model (fast) and the stratified limit."""

import json

import pandas as pd
import pytest

from sgvalues import evaluate
from sgvalues.models import ResponseCache
from sgvalues.models.base import Answer, Model
from sgvalues.params import Params


def make_samples(questions=("Q1", "Q2", "Q3"), subgroups=("sex:Male", "sex:Female", "age_group:16-24")):
    out = []
    for q in questions:
        for g in subgroups:
            stratum, level = g.split(":")
            out.append({
                "sample_id": f"{q}_{g}", "split": "ood", "question_id": q, "theme": "Values",
                "stratum": stratum, "subgroup": g, "levels": {stratum: level}, "target": 2,
                "scale_min": 1, "scale_max": 10, "options": {str(i): f"opt {i}" for i in range(1, 11)},
                "distribution": {}, "n_valid": 40, "system": "S", "user_shared": f"{q}?\n",
                "user_persona": f"You are {g}.", "open_user": "",
            })
    return out


class Scripted(Model):
    """Answers by the persona text: 'Male' -> 2 (right), 'Female' -> 10, others refuse/fail."""

    model_id = "scripted"
    exact_logprobs = True

    def __init__(self):
        self.calls = 0
        self.seen = 0

    def answer(self, requests, mode="logprob", temperature=0.0):
        self.calls += 1
        self.seen += len(requests)
        out = []
        for r in requests:
            user = r.messages[-1]["content"]
            if "age_group" in user:
                out.append(Answer(error="HTTP 500") if mode == "logprob" else Answer(text="As an AI, I cannot."))
            elif mode == "logprob":
                best = "2" if "Male" in user and "Female" not in user else "10"
                out.append(Answer(probs={c: (0.91 if c == best else 0.01) for c in r.option_codes}))
            else:
                out.append(Answer(text="2" if "Female" not in user else "ten"))
        return out


def test_rows_statuses_and_columns(tmp_path):
    samples = make_samples()
    df = evaluate.evaluate_samples(samples, Scripted(), mode="logprob")
    assert list(df.columns) == evaluate.PREDICTION_COLUMNS
    assert list(df["sample_id"]) == [s["sample_id"] for s in samples]
    by = df.set_index("subgroup")
    assert set(df.loc[df.subgroup == "sex:Male", "prediction"]) == {2}
    assert set(df.loc[df.subgroup == "sex:Female", "prediction"]) == {10}
    assert set(df.loc[df.subgroup == "age_group:16-24", "status"]) == {"failed"}
    assert df.loc[df.status == "failed", "prediction"].isna().all()
    probs = json.loads(df.loc[0, "probs"])
    assert list(probs) == [str(i) for i in range(1, 11)] and probs["2"] == 0.91
    assert json.loads(by.loc["sex:Male", "levels"].iloc[0]) == {"sex": "Male"}
    gen = evaluate.evaluate_samples(samples, Scripted(), mode="generate")
    assert dict(zip(gen.subgroup, gen.status)) == {"sex:Male": "ok", "sex:Female": "unparseable",
                                                   "age_group:16-24": "refused"}
    s = evaluate.summarise(gen)
    assert s["accuracy"] == pytest.approx(1 / 3) and s["refusal_rate"] == pytest.approx(1 / 3)


def test_cache_makes_the_second_run_free_and_retries_failures(tmp_path):
    samples = make_samples()
    cache = ResponseCache(tmp_path / "r.sqlite")
    m = Scripted()
    first = evaluate.evaluate_samples(samples, m, cache=cache)
    seen = m.seen
    assert seen == len(samples)
    second = evaluate.evaluate_samples(samples, m, cache=cache)
    assert m.seen - seen == 3  # only the three failed samples are asked again
    pd.testing.assert_frame_equal(first, second)
    ok = [s for s in samples if not s["subgroup"].startswith("age")]
    calls = m.calls
    evaluate.evaluate_samples(ok, m, cache=cache)
    assert m.calls == calls  # nothing left to ask: zero model calls


def test_interrupted_run_resumes(tmp_path):
    samples = make_samples(questions=[f"Q{i}" for i in range(6)], subgroups=("sex:Male", "sex:Female"))
    cache = ResponseCache(tmp_path / "r.sqlite")

    class Crashing(Scripted):
        def answer(self, requests, mode="logprob", temperature=0.0):
            if self.calls == 2:
                raise KeyboardInterrupt
            return super().answer(requests, mode, temperature)

    with pytest.raises(KeyboardInterrupt):
        evaluate.evaluate_samples(samples, Crashing(), cache=cache, chunk_size=4)
    assert len(cache) == 8  # the two finished chunks were written
    m = Scripted()
    evaluate.evaluate_samples(samples, m, cache=cache, chunk_size=4)
    assert m.seen == 4


def test_stratified_limit_takes_whole_questions_deterministically():
    samples = make_samples(questions=[f"Q{i}" for i in range(10)])
    a = evaluate.stratified_limit(samples, 7, seed=3)
    assert a == evaluate.stratified_limit(samples, 7, seed=3)
    assert len(a) == 7
    per_q = pd.Series([s["question_id"] for s in a]).value_counts()
    assert sorted(per_q.tolist()) == [1, 3, 3]  # two whole questions and part of a third
    assert [s for s in samples if s in a] == a  # input order kept
    assert evaluate.stratified_limit(samples, 7, seed=4) != a
    assert evaluate.stratified_limit(samples, None) == samples


def test_evaluate_run_writes_the_predictions_table(tmp_path, monkeypatch):
    samples = make_samples()
    monkeypatch.setattr(evaluate, "_load_split", lambda d, split: samples)
    params = Params.from_dict({"name": "t", "evaluation": {"limit": 6}})
    df = evaluate.evaluate_run(params, tmp_path, split="ood", tag="base", cache=None, model=Scripted(), log=None)
    path = tmp_path / "predictions" / "base_ood.csv"
    back = evaluate.load_predictions(path)
    assert len(df) == 6 and list(back.columns) == evaluate.PREDICTION_COLUMNS
    assert back["prediction"].isna().sum() == df["prediction"].isna().sum()
    assert (back["prediction"].dropna().astype(int).tolist() == df["prediction"].dropna().astype(int).tolist())
    first = path.read_bytes()
    evaluate.evaluate_run(params, tmp_path, split="ood", tag="base", cache=None, model=Scripted(), log=None)
    assert path.read_bytes() == first  # same inputs, identical file
    with pytest.raises(ValueError, match="missing field"):
        evaluate.evaluate_samples([{"sample_id": "x"}], Scripted())


def test_evaluate_run_on_chosen_questions_takes_them_whole(tmp_path, monkeypatch):
    samples = make_samples(questions=("Q1", "Q2", "Q3", "Q4"))
    monkeypatch.setattr(evaluate, "_load_split", lambda d, split: samples)
    # evaluation.limit (4) applies to whole-split runs only: chosen questions are taken whole
    params = Params.from_dict({"name": "t", "evaluation": {"limit": 4}})
    df = evaluate.evaluate_run(params, tmp_path, split="ood", tag="base", cache=None, model=Scripted(),
                               log=None, questions=["Q3", "Q1"])
    want = [s["sample_id"] for s in samples if s["question_id"] in ("Q1", "Q3")]
    assert df["sample_id"].tolist() == want  # every subgroup of both, in the split's order
    capped = evaluate.evaluate_run(params, tmp_path, split="ood", tag="base", cache=None, model=Scripted(),
                                   log=None, questions=["Q3", "Q1"], limit=4)
    assert len(capped) == 4 and set(capped["question_id"]) <= {"Q1", "Q3"}
    with pytest.raises(ValueError, match=r"samples_ood\.jsonl: no samples for question\(s\) \['Q9'\]"):
        evaluate.evaluate_run(params, tmp_path, split="ood", tag="base", cache=None, model=Scripted(),
                              log=None, questions=["Q1", "Q9"])
