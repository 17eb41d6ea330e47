"""On CUDA: a real LoRA step in bf16, and the engine's probabilities on CUDA equal to the CPU's.

Skipped without a CUDA device (marker ``gpu``); ``pytest -m gpu`` runs them where one is.
A tiny Llama-shaped model with random weights (``benchmarks/bench_gpu.py``'s ``tiny-llama``) is
saved once and loaded through the real code paths (``train.build_model``, ``HFModel``).
"""

import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    from sgvalues.models.embedded import embedded_model_dir

    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "benchmarks" / "bench_gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    folder = bench.model_folder("tiny-llama", embedded_model_dir(), tmp_path_factory.mktemp("tiny"))
    torch.manual_seed(0)
    from transformers import AutoConfig

    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder)).save_pretrained(folder)
    return folder


def _samples():
    opts = {"1": "Very important", "2": "Rather important", "3": "Not very important", "4": "Not at all important"}
    return [{"sample_id": f"Q1_sex:{s}", "question_id": "Q1", "target": t, "options": opts,
             "system": "Reply with the number of one option.",
             "user_shared": "How important is family in your life?\n\nOptions:\n1. Very important\n2. Rather "
                            "important\n3. Not very important\n4. Not at all important\n\n",
             "user_persona": f"You are a {w} living in Singapore."}
            for s, w, t in (("Male", "man", 1), ("Female", "woman", 2))]


def test_lora_step_in_bf16_on_cuda(tiny_model_dir):
    from sgvalues import train as T
    from sgvalues.params import Params

    params = Params.from_dict({"name": "gpu", "model": {"name": str(tiny_model_dir), "dtype": "bfloat16"},
                               "training": {"lr": 1e-2, "lora_dropout": 0.0}})
    model, tok = T.build_model(params, dtype=torch.bfloat16)
    model.to("cuda").train()
    base = [p for n, p in model.named_parameters() if "lora_" not in n]
    lora = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    assert all(p.dtype == torch.bfloat16 for p in base)
    before = {n: p.detach().clone() for n, p in lora.items()}
    batch = T.collate([T.encode_sample(tok, s) for s in _samples()], tok.pad_token_id)
    batch = {k: v.to("cuda") for k, v in batch.items()}
    optimizer = torch.optim.AdamW(list(lora.values()), lr=1e-2)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss_sum, n = T.answer_loss(model, batch)
    loss = loss_sum / n
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None and torch.isfinite(p.grad).all() for p in lora.values())
    optimizer.step()
    changed = [n for n, p in lora.items() if not torch.equal(p.detach(), before[n])]
    assert changed, "no LoRA weight moved after one step"
    # the loss on the same batch falls after the step (lr 1e-2 on two samples)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        after_sum, _ = T.answer_loss(model, batch)
    assert float(after_sum / n) < float(loss)


@pytest.mark.parametrize("dtype,atol", [("float32", 1e-4), ("bfloat16", 3e-2)])
def test_engine_probabilities_cuda_equal_cpu(tiny_model_dir, dtype, atol):
    from sgvalues.evaluate import sample_request
    from sgvalues.models.hf import HFModel
    from sgvalues.params import ModelSpec

    requests = [sample_request(s) for s in _samples()]
    cpu = HFModel(ModelSpec(name=str(tiny_model_dir), device="cpu", dtype="float32")).score_answers(requests)
    gpu = HFModel(ModelSpec(name=str(tiny_model_dir), device="cuda", dtype=dtype)).score_answers(requests)
    for a, b in zip(cpu, gpu):
        assert set(a.probs) == set(b.probs) == {"1", "2", "3", "4"}
        for k in a.probs:
            assert abs(a.probs[k] - b.probs[k]) < atol, (dtype, json.dumps([a.probs, b.probs]))
