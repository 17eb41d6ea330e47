"""evaluate_samples / evaluate_run with a scripted model (fast) and the stratified limit."""

import json

import pandas as pd
import pytest
from factories import make_sample

from sgvalues import evaluate, evaluate_cli
from sgvalues.models import ResponseCache
from sgvalues.models.dummy import DummyModel
from sgvalues.params import Params


def make_samples(questions=("Q1", "Q2", "Q3"), subgroups=("sex:Male", "sex:Female", "age_group:16-24")):
    return [make_sample(q, g, theme="Values", target=2, options={str(i): f"opt {i}" for i in range(1, 11)},
                        distribution={}, system="S", user_shared=f"{q}?\n", open_user="")
            for q in questions for g in subgroups]


class Scripted(DummyModel):
    """Answers by the persona text: 'Male' -> 2 (right), 'Female' -> 10, others refuse/fail."""

    def __init__(self):
        super().__init__("scripted", favour={"Female": "10", "Male": "2", "": "10"}, confidence=0.91,
                         replies={"age_group": "As an AI, I cannot.", "Female": "ten"}, default_reply="2",
                         unscorable=("age_group",))


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


class ScriptedBoth(DummyModel):
    """generate_logprob answers: a text and a distribution that disagree, so the test can tell
    which one the prediction came from."""

    def __init__(self):
        super().__init__("scripted-both", favour={"": "7"}, confidence=0.55, default_reply="2",
                         replies={"Female": "I'm sorry, but I cannot share personal opinions.",
                                  "age_group": "I think about it often"})


def test_generate_logprob_predicts_from_the_text_and_keeps_the_distribution(tmp_path):
    samples = make_samples()
    df = evaluate.evaluate_samples(samples, ScriptedBoth(), mode="generate_logprob")
    status = dict(zip(df.subgroup, df.status))
    assert status == {"sex:Male": "ok", "sex:Female": "refused", "age_group:16-24": "unparseable"}
    # the text says 2 although the distribution's mode is 7: the prediction is the parsed text
    assert set(df.loc[df.status == "ok", "prediction"]) == {2}
    assert df.loc[df.status != "ok", "prediction"].isna().all()
    for p in df["probs"]:  # every row keeps the distribution, refused ones included
        assert json.loads(p)["7"] == 0.55 and len(json.loads(p)) == 10
    assert df.loc[df.subgroup == "sex:Female", "raw_output"].iloc[0].startswith("I'm sorry")
    s = evaluate.summarise(df)
    # by hand: 3 questions x 3 subgroups; only Male rows (target 2, predicted 2) are right
    assert s["accuracy"] == pytest.approx(3 / 9) and s["refusal_rate"] == pytest.approx(3 / 9)
    assert s["nmae"] == pytest.approx((0 * 3 + 1.0 * 6) / 9)  # a missing prediction scores 1
    with pytest.raises(ValueError, match="generate_logprob"):
        evaluate.evaluate_samples(samples, ScriptedBoth(), mode="sample")


def test_cache_key_separates_modes(tmp_path):
    from sgvalues.models.base import ScoreRequest

    m = ScriptedBoth()
    r = ScoreRequest([{"role": "user", "content": "?"}], ("1", "2"))
    keys = {mode: evaluate._request_key(m, r, mode, 0.0) for mode in ("logprob", "generate", "generate_logprob")}
    assert len(set(keys.values())) == 3
    # generation settings are part of the generate_logprob key
    longer = ScoreRequest(r.messages, r.option_codes, max_new_tokens=16)
    assert evaluate._request_key(m, longer, "generate_logprob", 0.0) != keys["generate_logprob"]


def test_cli_evaluate_accepts_every_answer_mode():
    import argparse

    from sgvalues.models.base import ANSWER_MODES

    parser = argparse.ArgumentParser()
    evaluate_cli.configure_parser(parser)
    for mode in ANSWER_MODES:
        args = parser.parse_args(["--params", "p.yaml", "--run-dir", "r", "--mode", mode])
        assert args.mode == mode
    with pytest.raises(SystemExit):
        parser.parse_args(["--params", "p.yaml", "--run-dir", "r", "--mode", "sample"])


@pytest.fixture(scope="module")
def embedded():
    import os

    from sgvalues.models import load_model
    from sgvalues.params import ModelSpec

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    m = load_model(ModelSpec(backend="hf", name="smollm2-135m", cpu_threads=1), batch_size=4)
    yield m
    m.close()


def _real_samples():
    out = []
    for q, scale in (("Q4", 4), ("Q10", 10)):
        options = {str(c): f"option {c}" for c in range(1, scale + 1)}
        listing = "\n".join(f"{c}. {v}" for c, v in options.items())
        for i, persona in enumerate(["You are a woman aged 25 to 34 living in Singapore.",
                                     "You are a Malay Muslim man aged 65 or over."]):
            out.append({"sample_id": f"{q}_{i}", "split": "ood", "question_id": q, "theme": "T", "stratum": "s",
                        "subgroup": f"s:{i}", "levels": {"s": str(i)}, "target": 1, "scale_min": 1,
                        "scale_max": scale, "options": options,
                        "system": "You are taking part in a survey. Reply with the number of one option only.",
                        "user_shared": f"How much do you agree with statement {q}?\n\nOptions:\n{listing}\n\n",
                        "user_persona": persona})
    return out


@pytest.mark.slow
def test_generate_logprob_on_the_embedded_model_matches_generate_and_answer(embedded):
    from sgvalues.models.base import classify_text

    samples = _real_samples()
    both = evaluate.evaluate_samples(samples, embedded, mode="generate_logprob", batch_size=4)
    gen = evaluate.evaluate_samples(samples, embedded, mode="generate", batch_size=4)
    # the prediction is generate mode's parsed answer, row by row
    assert both["status"].tolist() == gen["status"].tolist()
    assert both["prediction"].astype("Float64").fillna(-1).tolist() == gen["prediction"].astype("Float64").fillna(-1).tolist()
    assert both["raw_output"].tolist() == gen["raw_output"].tolist()
    requests = [evaluate.sample_request(s, 8) for s in samples]
    direct = embedded.answer(requests, mode="generate_logprob")
    for row, a, r in zip(both.itertuples(), direct, requests):
        probs = json.loads(row.probs)
        assert list(probs) == list(r.option_codes)
        for c in r.option_codes:  # the distribution is what answer(..., "generate_logprob") returns
            assert probs[c] == pytest.approx(a.probs[c], abs=1e-6)
        status, code = classify_text(a.text, r.option_codes)  # parsed independently of prediction_row
        assert row.status == status and (row.prediction if code is not None else None) == (
            int(code) if code is not None else None)


def test_load_run_predictions_labels_from_manifest_first_and_decodes_json(tmp_path):
    row = {"sample_id": "Q1_sex:Male", "split": "train", "question_id": "Q1", "stratum": "sex",
           "subgroup": "sex:Male", "levels": json.dumps({"sex": "Male"}), "target": 2, "scale_min": 1,
           "scale_max": 4, "prediction": 2, "status": "ok", "probs": json.dumps({"1": 0.25, "2": 0.75}),
           "distribution": "", "model": "hub/x"}
    for run, manifest, yaml_name in (("a", {"params": {"name": "a", "display_name": "From manifest"}}, "ignored"),
                                     ("b", {}, "from-yaml"), ("c", None, None)):
        (tmp_path / run / "predictions").mkdir(parents=True)
        if manifest is not None:
            (tmp_path / run / "manifest.json").write_text(json.dumps(manifest))
        if yaml_name:
            (tmp_path / run / "params.yaml").write_text(f"name: {yaml_name}\n")
        for tag in ("base", "population_mode"):
            pd.DataFrame([row]).to_csv(tmp_path / run / "predictions" / f"{tag}_ood.csv", index=False)
    df = evaluate.load_run_predictions(tmp_path)
    assert dict(zip(df["run"], df["label"])) == {"a": "From manifest", "b": "from-yaml", "c": "hub/x"}
    assert set(df["tag"]) == {"base"} and set(df["split"]) == {"ood"}  # tag and split from the file name
    assert df["levels"].iloc[0] == {"sex": "Male"} and df["probs"].iloc[0] == {"1": 0.25, "2": 0.75}
    assert df["distribution"].iloc[0] is None
    assert set(evaluate.load_run_predictions(tmp_path, tags=None)["tag"]) == {"base", "population_mode"}
    pd.DataFrame([row]).drop(columns="status").to_csv(tmp_path / "a" / "predictions" / "sft_ood.csv", index=False)
    with pytest.raises(ValueError, match=r"sft_ood.csv: missing column\(s\) status"):
        evaluate.load_run_predictions(tmp_path)
