"""Three model families, built locally as tiny random models (``sgvalues.models.tiny``), through
evaluate (logprob, generate, generate_logprob), a few LoRA training steps and the judge.

``llama``: numbers up to 10 are single tokens; ``qwen2``: digits are split ("10" = "1", "0");
``gemma``: the chat template raises on a system message, so prompts are folded. Probabilities
are checked against a plain full-prompt forward with the scoring rule applied by hand, on a
prompt rendered here without the package's rendering code.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from sgvalues.evaluate import evaluate_samples, sample_request
from sgvalues.models import load_model
from sgvalues.models.chat import read_renderings, template_accepts_system
from sgvalues.models.tiny import build_tiny_model
from sgvalues.params import Params
from sgvalues.prompts import SYSTEM_PROMPT, structured_prompt

FAMILIES = ("llama", "qwen2", "gemma")
QUESTIONS = [
    {"question_id": "Q10", "wording": "How much freedom of choice do you feel you have?",
     "options": {str(c): ("No choice at all" if c == 1 else "A great deal" if c == 10 else str(c))
                 for c in range(1, 11)}},
    {"question_id": "Q4", "wording": "How important is family in your life?",
     "options": {"1": "Very important", "2": "Rather important", "3": "Not very important",
                 "4": "Not at all important"}},
]
PERSONAS = [{"sex": "Female"}, {"ethnicity": "Malay", "religion": "Muslim"}, {"age_group": "65+"}]


def _samples(split: str = "ood") -> list[dict]:
    out = []
    for q in QUESTIONS:
        for k, levels in enumerate(PERSONAS):
            p = structured_prompt(q, levels)
            stratum = "_x_".join(levels)
            out.append({"sample_id": f"{q['question_id']}_{k}", "split": split, "question_id": q["question_id"],
                        "theme": "T", "wording": q["wording"], "stratum": stratum,
                        "subgroup": f"{stratum}:{'|'.join(levels.values())}", "levels": levels,
                        "target": 1 + k, "targets": [1 + k], "scale_min": 1, "scale_max": len(q["options"]),
                        "options": q["options"],
                        "distribution": {"1": 0.5, str(2 + k): 0.5}, "n_valid": 40, **p,
                        "open_user": f"You are a person.\n\n{q['wording']}\n\nAnswer in two or three sentences."})
    return out


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory):
    """The three tiny models, built once per session (about 0.1 M parameters each)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("families")
    return {f: build_tiny_model(root / f, f) for f in FAMILIES}


@pytest.fixture(scope="module")
def models(family_dirs):
    return {f: load_model(Params.from_dict({"name": f, "model": {"name": str(d), "cpu_threads": 1}}).model,
                          batch_size=4) for f, d in family_dirs.items()}


def _by_hand_prompt(tok, messages, fold: bool) -> str:
    """The chat rendered directly with the tokenizer's template (folding written out here)."""
    if fold:
        system, user = messages[0]["content"], messages[1]["content"]
        messages = [{"role": "user", "content": system + "\n\n" + user}]
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _reference_probs(model, request, fold: bool) -> tuple[dict[str, float], float]:
    """Full-prompt forward of prompt (+ "1" for the second digit); greedy-longest-code by hand."""
    tok = model.tokenizer
    ids = tok(_by_hand_prompt(tok, list(request.messages), fold), add_special_tokens=False)["input_ids"]
    one = tok("1", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model.model(torch.tensor([ids + one])).logits[0].double()
    first, after1 = torch.softmax(logits[-2], -1), torch.softmax(logits[-1], -1)
    raw = {}
    for c in request.option_codes:
        t = tok(c, add_special_tokens=False)["input_ids"]
        if len(t) == 1:
            raw[c] = first[t[0]].item()
    if "10" in request.option_codes and "10" not in raw:  # split digits: "10" = "1", "0"
        zero = tok("0", add_special_tokens=False)["input_ids"][0]
        p_zero = after1[zero].item()
        raw["10"], raw["1"] = raw["1"] * p_zero, raw["1"] * (1 - p_zero)
    total = sum(raw.values())
    return {c: v / total for c, v in raw.items()}, total


def test_the_families_tokenise_numbers_and_treat_the_system_role_as_meant(models):
    ten = {f: models[f].tokenizer("10", add_special_tokens=False)["input_ids"] for f in FAMILIES}
    assert len(ten["llama"]) == 1 and len(ten["gemma"]) == 1 and len(ten["qwen2"]) == 2
    assert [template_accepts_system(models[f].tokenizer) for f in FAMILIES] == [True, True, False]
    assert [models[f].rendering for f in FAMILIES] == ["system", "system", "folded"]
    # no pad token in the llama and gemma tokenizers: loading falls back to eos
    for f in ("llama", "gemma"):
        assert models[f].tokenizer.pad_token_id == models[f].tokenizer.eos_token_id


@pytest.mark.parametrize("family", FAMILIES)
def test_logprob_evaluation_matches_a_full_prompt_forward(models, family):
    model = models[family]
    requests = [sample_request(s) for s in _samples()]
    answers = model.score_answers(requests)
    for req, ans in zip(requests, answers):
        ref, mass = _reference_probs(model, req, fold=family == "gemma")
        assert set(ans.probs) == set(req.option_codes)
        assert sum(ans.probs.values()) == pytest.approx(1.0, abs=1e-9)
        assert ans.info["option_mass"] == pytest.approx(mass, rel=1e-4)
        for c in req.option_codes:
            assert ans.probs[c] == pytest.approx(ref[c], abs=1e-5)
    table = evaluate_samples(_samples(), model, mode="logprob", batch_size=4)
    assert (table["status"] == "ok").all()
    for cell in table["probs"]:
        assert math.isclose(sum(json.loads(cell).values()), 1.0, abs_tol=1e-5)  # six decimals each


def test_folded_prompts_keep_the_persona_last_and_share_the_question_prefix(models):
    model = models["gemma"]
    samples = [s for s in _samples() if s["question_id"] == "Q10"]
    texts = [model.render(sample_request(s).messages) for s in samples]
    assert all("<start_of_turn>system" not in t for t in texts)
    first = texts[0]
    assert first.startswith("<bos><start_of_turn>user\n" + SYSTEM_PROMPT + "\n\n" + samples[0]["user_shared"])
    assert first.endswith(samples[0]["user_persona"] + "<end_of_turn>\n<start_of_turn>model\n")
    shared = "<bos><start_of_turn>user\n" + SYSTEM_PROMPT + "\n\n" + samples[0]["user_shared"]
    assert all(t.startswith(shared) for t in texts)


@pytest.mark.parametrize("family", FAMILIES)
def test_generate_modes_answer_every_sample(models, family):
    model = models[family]
    gen = evaluate_samples(_samples(), model, mode="generate", batch_size=4, max_new_tokens=3)
    assert set(gen["status"]) <= {"ok", "refused", "unparseable"}
    assert gen["raw_output"].map(lambda t: isinstance(t, str)).all()
    both = evaluate_samples(_samples(), model, mode="generate_logprob", batch_size=4, max_new_tokens=3)
    logp = evaluate_samples(_samples(), model, mode="logprob", batch_size=4)
    for a, b in zip(both["probs"], logp["probs"]):
        pa, pb = json.loads(a), json.loads(b)
        assert pa.keys() == pb.keys() and all(pa[c] == pytest.approx(pb[c], abs=1e-5) for c in pa)
    # greedy generation and the scoring pass read the same first-step distribution
    assert list(gen["raw_output"]) == list(both["raw_output"])


def _write_run(tmp_path, split_samples):
    from sgvalues.split import write_samples

    data = tmp_path / "data"
    write_samples(split_samples, data)
    return tmp_path


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_training_steps_then_evaluation_with_the_adapter(family_dirs, family, tmp_path):
    from sgvalues import train as T

    run = _write_run(tmp_path, _samples("train") + _samples("ood"))
    params = Params.from_dict({"name": family, "seed": 1, "model": {"name": str(family_dirs[family]), "cpu_threads": 1},
                               "training": {"max_steps": 2, "batch_size": 2, "lora_r": 2, "lora_alpha": 4,
                                            "lr": 1e-2, "save_every": 0, "share_prefix": family != "llama"}})
    adapter = T.train_run(params, run, verbose=False)
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["n_steps"] == 2 and math.isfinite(summary["final_loss"])
    assert (adapter / "adapter_config.json").is_file()
    assert read_renderings(run) == {"training": "folded" if family == "gemma" else "system"}
    tuned = load_model(params.model, adapter=adapter, batch_size=4)
    probs = [a.probs for a in tuned.score_answers([sample_request(s) for s in _samples()])]
    assert all(sum(p.values()) == pytest.approx(1.0, abs=1e-9) for p in probs)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_judge_runs_on_each_family(family_dirs, family, tmp_path):
    from sgvalues import judge

    run = _write_run(tmp_path / "run", _samples("ood"))
    spec = {"name": str(family_dirs[family]), "cpu_threads": 1}
    params = Params.from_dict({"name": family, "model": spec,
                               "judge": {"n_pairs": 2, "max_new_tokens": 6, "n_bootstrap": 20,
                                         "dimensions": ["overall"], "reference": spec, "judge": spec}})
    tables = judge.judge_run(params, run, data_dir=run / "data", log=None)
    verdicts = tables["verdicts"]
    assert len(verdicts) == 2 * 2  # two pairs, both orders, one dimension
    assert set(verdicts["verdict"]) <= {"A", "B", "tie"}
    # logprob judging: each verdict's probabilities of A, B, tie sum to 1
    for raw in verdicts["raw_output"]:
        assert sum(json.loads(raw).values()) == pytest.approx(1.0, abs=1e-5)
    expected = "folded" if family == "gemma" else "system"
    assert read_renderings(run) == {"model": expected, "judge.judge": expected}
