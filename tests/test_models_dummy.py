"""The dummy model: deterministic, scripted, and a full implementation of the model interface."""

import json
import subprocess
import sys
from collections import Counter

import pytest

from sgvalues import evaluate
from sgvalues.models import ResponseCache
from sgvalues.models.base import GenerateRequest, ScoreRequest, classify_text


def _ask(content: str, codes=("1", "2", "3", "4")) -> ScoreRequest:
    return ScoreRequest([{"role": "system", "content": "S"}, {"role": "user", "content": content}], codes)


def test_probabilities_follow_the_script_and_sum_to_one(dummy_model):
    m = dummy_model(favour={"Female": "3", "Male": "1"}, confidence=0.7)
    female, male, other = m.score_options([_ask("You are Female."), _ask("You are Male."), _ask("You are 65+.")])
    assert female == pytest.approx({"1": 0.1, "2": 0.1, "3": 0.7, "4": 0.1})  # (1 - 0.7) / 3 each
    assert max(male, key=male.get) == "1"
    assert sum(other.values()) == pytest.approx(1.0) and sorted(other.values())[-1] == pytest.approx(0.7)
    # a favoured code the question does not offer falls back to the hash's choice
    assert max(m.score_options([_ask("You are Female.", ("1", "2"))])[0].values()) == pytest.approx(0.7)
    assert m.score_options([_ask("Female", ("5",))]) == [{"5": 1.0}]


def test_unscripted_choice_is_spread_over_the_codes_and_changes_with_the_seed(dummy_model):
    requests = [_ask(f"Question {i}?") for i in range(400)]

    def picks(seed):
        return [max(p, key=p.get) for p in dummy_model(seed=seed).score_options(requests)]

    counts = Counter(picks(0))
    assert set(counts) == {"1", "2", "3", "4"} and min(counts.values()) > 60  # ~100 each
    assert picks(0) == picks(0)
    assert sum(a != b for a, b in zip(picks(0), picks(1))) > 200  # ~3/4 differ


def test_same_answers_in_another_process(dummy_model):
    code = ("from sgvalues.models.dummy import DummyModel; from sgvalues.models.base import ScoreRequest as R; "
            "import json; m = DummyModel(seed=3); "
            "print(json.dumps([m.score_options([R([{'role': 'user', 'content': f'q{i}'}], ['1', '2', '3'])])[0] "
            "for i in range(20)] + [a.text for a in m.answer([R([{'role': 'user', 'content': 'x'}], ['1'])], "
            "mode='generate')]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    m = dummy_model(seed=3)
    here = [m.score_options([ScoreRequest([{"role": "user", "content": f"q{i}"}], ["1", "2", "3"])])[0]
            for i in range(20)]
    here += [a.text for a in m.answer([ScoreRequest([{"role": "user", "content": "x"}], ["1"])], mode="generate")]
    assert json.loads(out) == here


def test_every_answer_mode_and_failure(dummy_model):
    m = dummy_model(favour={"": "2"}, replies={"refuse": "As an AI, I cannot answer that.", "Female": "4"},
                    default_reply="I pick 1", unscorable=("noprobs",), failing=("boom",))
    reqs = [_ask("You are Female."), _ask("please refuse"), _ask("noprobs here"), _ask("boom")]
    logprob = m.answer(reqs, mode="logprob")
    assert [a.error is None for a in logprob] == [True, True, False, True]
    generate = m.answer(reqs, mode="generate")
    assert [a.text for a in generate[:3]] == ["4", "As an AI, I cannot answer that.", "I pick 1"]
    assert generate[3].error and generate[3].text is None
    both = m.answer(reqs, mode="generate_logprob")
    assert [classify_text(a.text, ["1", "2", "3", "4"]) for a in both[:3]] == [
        ("ok", "4"), ("refused", None), ("ok", "1")]
    assert both[0].probs["2"] == pytest.approx(0.9) and both[2].probs is None
    assert both[3].error is not None
    assert m.generate([GenerateRequest(reqs[3].messages)]) == [""]
    with pytest.raises(ValueError, match="confidence"):
        dummy_model(confidence=0)


def test_evaluates_samples_and_the_cache_saves_every_call(dummy_model, make_samples, tmp_path):
    samples = make_samples(subgroups=("sex:Male", "sex:Female"), target=3)
    m = dummy_model(favour={"Female": "3", "Male": "1"})
    cache = ResponseCache(tmp_path / "r.sqlite")
    first = evaluate.evaluate_samples(samples, m, mode="logprob", cache=cache)
    by_hand = [3 if s["subgroup"] == "sex:Female" else 1 for s in samples]
    assert first["prediction"].tolist() == by_hand
    assert evaluate.summarise(first)["accuracy"] == pytest.approx(0.5)
    calls = m.calls
    second = evaluate.evaluate_samples(samples, m, mode="logprob", cache=cache)
    assert m.calls == calls
    assert first.equals(second)
    # another script is another cache entry, never a stale answer
    other = dummy_model(favour={"Female": "1", "Male": "1"})
    assert set(evaluate.evaluate_samples(samples, other, mode="logprob", cache=cache)["prediction"]) == {1}
