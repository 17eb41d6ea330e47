"""benchmarks/bench_gpu.py on a CPU with tiny configs of the paper's model families.

The GPU figures need a GPU; this runs the same code path (model of a given shape with random
weights and the embedded tokenizer, the engine vs full-prompt scoring, ``train_run`` with the
paper's recipe) so that CI covers it, and checks the shapes against the published models.
"""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "benchmarks" / "bench_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tokenizer():
    from transformers import AutoTokenizer

    from sgvalues.models.embedded import embedded_model_dir

    try:
        return AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    except FileNotFoundError as exc:
        pytest.skip(f"embedded tokenizer unavailable: {exc}")


def _llama_params(h, layers, heads, kv, mlp, vocab, tied):
    """Parameter count of a Llama block stack, by hand."""
    head_dim = h // heads
    attn = 2 * h * h + 2 * h * kv * head_dim          # q, o; k, v (grouped-query)
    block = attn + 3 * h * mlp + 2 * h               # gate, up, down; two RMSNorms
    return vocab * h * (1 if tied else 2) + layers * block + h


@pytest.mark.parametrize("shape,published", [
    # parameter counts on the models' hub pages (Meta, Qwen)
    ("llama-3.1-8b", 8_030_261_248), ("llama-3.2-3b", 3_212_749_824), ("qwen2.5-7b", 7_615_616_512)])
def test_paper_shapes_match_the_published_models(shape, published):
    import torch
    from transformers import AutoModelForCausalLM

    bench = _bench()
    config = bench.shape_config(shape, _tokenizer())
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == published
    if shape == "llama-3.1-8b":
        assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads,
                config.intermediate_size, config.vocab_size) == (4096, 32, 32, 8, 14336, 128256)
        assert published == _llama_params(4096, 32, 32, 8, 14336, 128256, tied=False)


@pytest.mark.slow
def test_bench_gpu_runs_on_cpu_with_a_tiny_llama(tmp_path):
    from sgvalues import synthetic
    from sgvalues.prepare import prepare

    bench = _bench()
    src = tmp_path / "synthetic.csv"
    synthetic.write_sample(src, n=300, seed=0)
    data = prepare(src, tmp_path / "data", min_n=20).path
    rows = bench.run(["tiny-llama"], n=12, train_steps=2, batch_size=4, data_dir=data, device="cpu")
    (r,) = rows
    tiny = bench.SHAPES["tiny-llama"]
    assert r["n_parameters"] == _llama_params(tiny["hidden_size"], tiny["num_hidden_layers"],
                                              tiny["num_attention_heads"], tiny["num_key_value_heads"],
                                              tiny["intermediate_size"], 49152, tied=False)
    # fp32 on a CPU: the engine's shared-prefix probabilities equal full-prompt scoring's
    assert r["n_eval"] == 12 and r["argmax_agreement"] == 1.0 and r["max_abs_prob_diff"] < 1e-4
    # the paper's recipe from params/llama-3.1-8b.yaml, two steps measured, projected to one epoch
    n_train = sum(1 for _ in open(data / "samples_train.jsonl"))
    assert (r["train_steps"], r["lr"], r["batch_size"], r["recipe_samples"]) == (2, 1e-6, 8, n_train)
    assert r["train_samples_seen"] == 16
    assert r["projected_recipe_hours"] == pytest.approx(r["train_seconds"] / 16 * n_train / 3600)
    table = bench.format_table(rows)
    assert table.splitlines()[2].startswith("tiny-llama")
