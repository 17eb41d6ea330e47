"""The paper's protocol in the paper models' params: structured answers generated and parsed
(generate_logprob), Mistral-Small-3.1-24B (8-bit) judging against GPT-4.1, and the hf loader's
quantization and multimodal-checkpoint handling (no real model is loaded)."""

import warnings
from pathlib import Path

import pytest

from sgvalues.params import ModelSpec, load_params
from factories import params_error

REPO = Path(__file__).parents[1]
PAPER_PARAMS = ["llama-3.1-8b", "llama-3.2-3b", "qwen2.5-7b", "phi-4-mini", "sailor2-8b", "sea-lion-v3-8b",
                "seallms-v3-7b", "gpt-4.1", "gpt-4o", "gpt-4o-mini"]


@pytest.mark.parametrize("name", PAPER_PARAMS)
def test_paper_params_configure_the_paper_protocol(name):
    path = REPO / "params" / f"{name}.yaml"
    p = load_params(path)
    assert p.evaluation.mode == "generate_logprob"
    j, r = p.judge.judge, p.judge.reference
    assert (j.backend, j.name, j.quantization) == ("hf", "mistralai/Mistral-Small-3.1-24B-Instruct-2503", "8bit")
    assert (r.backend, r.name, r.base_url, r.api_key_env) == ("openai", "gpt-4.1", None, "OPENAI_API_KEY")
    assert p.judge.enabled and p.judge.n_pairs >= 100 and p.judge.sensitive_pairs >= 50
    text = path.read_text()
    assert "sk-" not in text and "api_key:" not in text  # the key only ever comes from the environment


@pytest.mark.parametrize("name", ["smollm2-135m", "smoke"])
def test_the_embedded_default_keeps_its_embedded_judge(name):
    p = load_params(REPO / "params" / f"{name}.yaml")
    for spec in (p.judge.judge, p.judge.reference):
        assert (spec.backend, spec.name, spec.quantization) == ("hf", "smollm2-135m", None)
    assert p.evaluation.mode == "logprob"
    # a few sensitive pairs at most: they add to the judged pairs on a laptop CPU
    assert p.judge.sensitive_pairs <= p.judge.n_pairs // 4


@pytest.mark.parametrize("body,expect", [
    ("judge:\n  judge:\n    backend: hf\n    name: m\n    quantization: int8\n", "'int8'"),
    ("judge:\n  judge:\n    backend: hf\n    name: m\n    quantization: 8\n", "judge.judge.quantization"),
    ("model:\n  backend: openai\n  name: gpt-4.1\n  quantization: 8bit\n", "hf backend only"),
])
def test_quantization_is_validated_naming_file_key_and_values(tmp_path, body, expect):
    path, msg = params_error(tmp_path, body)
    assert path in msg and expect in msg
    assert ModelSpec(backend="hf", name="m", quantization="4bit").quantization == "4bit"
    with pytest.raises(ValueError, match="'8bit', '4bit'"):
        ModelSpec(quantization="int4")


def test_quantization_config_on_cuda_with_bitsandbytes():
    from sgvalues.models.hf import quantization_config

    cfg, used = quantization_config("8bit", "cuda", bnb_available=True)
    assert used == "8bit" and cfg.load_in_8bit and not cfg.load_in_4bit
    cfg4, used4 = quantization_config("4bit", "cuda", bnb_available=True)
    assert used4 == "4bit" and cfg4.load_in_4bit and not cfg4.load_in_8bit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert quantization_config(None, "cpu") == (None, None)  # nothing asked: no warning


@pytest.mark.parametrize("device,bnb,missing", [("cpu", True, "CUDA"), ("cuda", False, "bitsandbytes"),
                                                ("cpu", False, "CUDA device")])
def test_quantization_falls_back_unquantized_with_a_warning(device, bnb, missing):
    from sgvalues.models.hf import quantization_config

    with pytest.warns(UserWarning, match=missing) as rec:
        assert quantization_config("8bit", device, bnb_available=bnb) == (None, None)
    assert "unquantized" in str(rec[0].message)


def test_hf_loader_passes_the_8bit_config(monkeypatch):
    """HFModel hands BitsAndBytesConfig(load_in_8bit=True) to from_pretrained (stopped before any
    weights load)."""
    from sgvalues.models import hf

    seen = {}

    class Stop(Exception):
        pass

    def fake_load(path, **kwargs):
        seen.update(kwargs, path=path)
        raise Stop

    monkeypatch.setattr(hf, "load_language_model", fake_load)
    monkeypatch.setattr(hf, "_bitsandbytes_importable", lambda: True)
    with pytest.raises(Stop):
        hf.HFModel(ModelSpec(backend="hf", name="smollm2-135m", device="cuda", quantization="8bit"))
    assert seen["quantization_config"].load_in_8bit and seen["device_map"] == {"": 0}
    seen.clear()
    with pytest.raises(Stop):
        hf.HFModel(ModelSpec(backend="hf", name="smollm2-135m", device="cpu"))
    assert "quantization_config" not in seen and "device_map" not in seen


def test_judge_reuses_a_loaded_model_only_at_the_same_quantization():
    from sgvalues.judge.stage import _same

    a = ModelSpec(backend="hf", name="m")
    assert _same(a, ModelSpec(backend="hf", name="m", cpu_threads=2))
    assert not _same(a, ModelSpec(backend="hf", name="m", quantization="8bit"))


@pytest.mark.slow
def test_a_checkpoint_shipped_as_image_text_to_text_loads_text_only(tmp_path):
    """Mistral-Small-3.1-24B-Instruct-2503 is a Mistral3ForConditionalGeneration, which
    AutoModelForCausalLM rejects: a tiny random one with the same architecture must load and score
    like any causal LM (engine and generation pass agree)."""
    import torch
    from transformers import (AutoTokenizer, Mistral3Config, Mistral3ForConditionalGeneration, MistralConfig,
                              PixtralVisionConfig)

    from sgvalues.evaluate import sample_request
    from sgvalues.models import load_model
    from sgvalues.models.embedded import embedded_model_dir

    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    text = MistralConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512)
    vision = PixtralVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=1,
                                 image_size=32, patch_size=16)
    torch.manual_seed(0)
    Mistral3ForConditionalGeneration(Mistral3Config(text_config=text, vision_config=vision,
                                                    image_token_index=0)).save_pretrained(tmp_path / "m3")
    tok.save_pretrained(tmp_path / "m3")
    m = load_model(ModelSpec(backend="hf", name=str(tmp_path / "m3"), cpu_threads=1), batch_size=2)
    assert type(m.model).__name__ == "Mistral3ForConditionalGeneration"
    sample = {"question_id": "Q1", "options": {"1": "yes", "2": "no"}, "system": "Answer with a number.",
              "user_shared": "Do you agree?\n1. yes\n2. no\n", "user_persona": "You are a woman."}
    req = [sample_request(sample, 4)]
    engine = m.score_answers(req)[0].probs
    both = m.answer(req, mode="generate_logprob")[0]
    assert sum(engine.values()) == pytest.approx(1.0)
    for c in ("1", "2"):
        assert both.probs[c] == pytest.approx(engine[c], abs=1e-5)
    m.close()
