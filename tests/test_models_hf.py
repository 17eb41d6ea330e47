"""The hf backend and its prefix-sharing engine on the embedded model (slow: loads it once)."""

import os

import pytest
import torch

from sgvalues.evaluate import evaluate_samples, sample_request
from sgvalues.models import ResponseCache, load_model
from sgvalues.params import ModelSpec

pytestmark = pytest.mark.slow

SYSTEM = "You are taking part in a survey. Reply with the number of one option only."


def _sample(q, scale, persona, i):
    options = {str(c): f"option {c}" for c in range(1, scale + 1)}
    listing = "\n".join(f"{c}. {v}" for c, v in options.items())
    return {"sample_id": f"{q}_{i}", "split": "ood", "question_id": q, "theme": "T", "stratum": "s",
            "subgroup": f"s:{i}", "levels": {"s": str(i)}, "target": 1, "scale_min": 1, "scale_max": scale,
            "options": options, "system": SYSTEM,
            "user_shared": f"How much do you agree with statement {q}?\n\nOptions:\n{listing}\n\n",
            "user_persona": persona}


PERSONAS = ["You are a woman aged 25 to 34 living in Singapore.", "You are a Malay Muslim man.",
            "You are a person aged 65 or over. Answer as this person would."]
SAMPLES = [_sample("Q10", 10, p, i) for i, p in enumerate(PERSONAS)] + \
          [_sample("Q4", 4, p, i) for i, p in enumerate(PERSONAS)]


@pytest.fixture(scope="module")
def model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # one thread: on a busy 2-core machine threads of one op wait for each other
    return load_model(ModelSpec(backend="hf", name="smollm2-135m", cpu_threads=1), batch_size=4)


def _reference(model, request):
    """Plain full-prompt forward of prompt + "1"; the 1-vs-10 rule applied by hand."""
    tok = model.tokenizer
    ids = tok(model.render(request.messages), add_special_tokens=False)["input_ids"]
    digit = {c: tok(c, add_special_tokens=False)["input_ids"] for c in request.option_codes}
    with torch.no_grad():
        logits = model.model(torch.tensor([ids + digit["1"]])).logits[0].double()
    p_first = torch.softmax(logits[-2], -1)
    p_after1 = torch.softmax(logits[-1], -1)
    raw = {c: p_first[t[0]].item() for c, t in digit.items() if len(t) == 1}
    if "10" in digit:
        assert digit["10"] == digit["1"] + tok("0", add_special_tokens=False)["input_ids"]
        zero = digit["10"][1]
        raw["10"] = raw["1"] * p_after1[zero].item()
        raw["1"] = raw["1"] * (1 - p_after1[zero].item())
    s = sum(raw.values())
    return {c: v / s for c, v in raw.items()}


def test_engine_matches_a_plain_full_prompt_forward(model):
    requests = [sample_request(s) for s in SAMPLES]
    calls = model.calls
    answers = model.score_answers(requests)
    assert model.calls - calls == 2 + 2  # one prefix pass + one suffix batch per question
    for req, ans in zip(requests, answers):
        ref = _reference(model, req)
        assert set(ans.probs) == set(req.option_codes)
        assert sum(ans.probs.values()) == pytest.approx(1.0, abs=1e-9)
        for c in req.option_codes:
            assert ans.probs[c] == pytest.approx(ref[c], abs=2e-5)
        assert max(ans.probs, key=ans.probs.get) == max(ref, key=ref.get)
    # "10" takes its share of p("1") only (two-token code), so "1" and "10" differ
    p = answers[0].probs
    assert p["1"] != pytest.approx(p["10"], abs=1e-6)


def test_predictions_do_not_depend_on_batch_size(model):
    requests = [sample_request(s) for s in SAMPLES]
    out = {}
    for bs in (1, 6):
        model.batch_size = bs
        out[bs] = model.score_options(requests)
    model.batch_size = 4
    for bs in (6,):
        for a, b in zip(out[1], out[bs]):
            assert max(abs(a[c] - b[c]) for c in a) < 1e-5
            assert max(a, key=a.get) == max(b, key=b.get)
    # without the prefix sharing (full prompts) the same numbers come out
    full = [a.probs for a in model.score_answers(requests, share_prefix=False)]
    for a, b in zip(out[1], full):
        assert max(abs(a[c] - b[c]) for c in a) < 1e-5


def test_evaluate_with_cache_costs_zero_calls_the_second_time(model, tmp_path):
    cache = ResponseCache(tmp_path / "r.sqlite")
    first = evaluate_samples(SAMPLES, model, mode="logprob", batch_size=4, cache=cache)
    calls = model.calls
    second = evaluate_samples(SAMPLES, model, mode="logprob", batch_size=4, cache=cache)
    assert model.calls == calls
    assert first.equals(second)
    assert (first["status"] == "ok").all() and first["prediction"].notna().all()
    gen = evaluate_samples(SAMPLES[:2], model, mode="generate", batch_size=2, max_new_tokens=4)
    assert set(gen["status"]) <= {"ok", "refused", "unparseable"}
    assert gen["raw_output"].str.len().gt(0).all()


def test_lora_adapter_changes_answers_and_identity(model, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model.path)
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))
    peft.save_pretrained(tmp_path / "adapter")
    tuned = load_model(ModelSpec(backend="hf", name="smollm2-135m", cpu_threads=1), adapter=tmp_path / "adapter", batch_size=4)
    assert tuned.adapter_id.startswith("adapter:") and model.adapter_id == ""
    req = [sample_request(SAMPLES[0])]
    a, b = model.score_options(req)[0], tuned.score_options(req)[0]
    assert max(abs(a[c] - b[c]) for c in a) > 1e-4


def test_generate_logprob_reads_the_distribution_from_its_own_generation(model):
    requests = [sample_request(s, max_new_tokens=6) for s in SAMPLES]
    scored = model.score_answers(requests)
    texts = model.generate([__import__("sgvalues.models", fromlist=["GenerateRequest"]).GenerateRequest(
        r.messages, r.max_new_tokens, 0.0) for r in requests])
    calls = model.calls
    both = model.answer(requests, mode="generate_logprob")
    for r, s, b, t in zip(requests, scored, both, texts):
        assert b.text == t  # the same greedy answer as plain generation
        assert set(b.probs) == set(r.option_codes)
        for c in r.option_codes:  # the same distribution as the scoring engine
            assert b.probs[c] == pytest.approx(s.probs[c], abs=2e-4)
    four = [b for r, b in zip(requests, both) if len(r.option_codes) == 4]
    # single-token codes: the probabilities come from the generation pass itself
    assert all(b.info["probs_from"] == "generation" for b in four)
    n_engine = sum(b.info["probs_from"] == "engine" for b in both)
    if n_engine == 0:
        assert model.calls - calls == -(-len(requests) // model.batch_size)
