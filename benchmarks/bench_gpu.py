"""What the paper's recipe costs at its scale: evaluation and LoRA SFT on models of the paper's shapes.

For each model *shape* (the architecture of Llama-3.1-8B-Instruct, Llama-3.2-3B-Instruct and
Qwen2.5-7B-Instruct from their published configs; random weights, no download) it builds the
model in bf16 on the GPU (fp32 on a CPU), with the embedded model's tokenizer (its tokenizer
files only), and measures on the default run's real prompts (the synthetic sample's samples):

(a) **structured evaluation** through our engine (``sgvalues.models.hf.HFModel.score_answers``:
    a question's shared prompt prefix computed once, its KV cache reused for every persona),
    samples/s over the OOD samples, against batched full-prompt scoring (the same engine with
    ``share_prefix=False``), and how often the two give the same argmax option;
(b) **LoRA SFT** with the paper's settings (``params/<model>.yaml``: lr 1e-6, batch 8, one
    epoch over every train sample, bf16 on CUDA) through ``sgvalues.train.train_run`` for
    ``--train-steps`` optimizer steps: sample tokens/s, peak GPU memory, and the projected wall
    time of the full recipe (one epoch over all train samples) at the measured rate.

Random weights change no cost: the work per token is set by the shape alone. Argmax agreement
on random weights is a numerical check only (near-uniform probabilities make near-ties).

Run on a GPU::

    python benchmarks/bench_gpu.py                           # the three paper shapes
    python benchmarks/bench_gpu.py --shapes llama-3.1-8b --n 2000 --train-steps 20

On a CPU (what the test runs): ``--shapes tiny-llama --n 8 --train-steps 2``. It prints a table
a user can compare with their own GPU; ``--json FILE`` also writes the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]

#: published configs (config.json on the hub) of the paper's models, and tiny ones of the same
#: families for CPU runs. ``params``: the params file whose training recipe is used.
SHAPES: dict[str, dict] = {
    "llama-3.1-8b": {"params": "llama-3.1-8b.yaml", "model_type": "llama", "hidden_size": 4096,
                     "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                     "intermediate_size": 14336, "vocab_size": 128256, "rope_theta": 500000.0,
                     "tie_word_embeddings": False},
    "llama-3.2-3b": {"params": "llama-3.2-3b.yaml", "model_type": "llama", "hidden_size": 3072,
                     "num_hidden_layers": 28, "num_attention_heads": 24, "num_key_value_heads": 8,
                     "intermediate_size": 8192, "vocab_size": 128256, "rope_theta": 500000.0,
                     "tie_word_embeddings": True},
    "qwen2.5-7b": {"params": "qwen2.5-7b.yaml", "model_type": "qwen2", "hidden_size": 3584,
                   "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                   "intermediate_size": 18944, "vocab_size": 152064, "rope_theta": 1000000.0,
                   "tie_word_embeddings": False},
    "tiny-llama": {"params": "llama-3.1-8b.yaml", "model_type": "llama", "hidden_size": 64,
                   "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "intermediate_size": 128, "vocab_size": 49152, "rope_theta": 500000.0,
                   "tie_word_embeddings": False},
    "tiny-qwen2": {"params": "qwen2.5-7b.yaml", "model_type": "qwen2", "hidden_size": 64,
                   "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "intermediate_size": 128, "vocab_size": 49152, "rope_theta": 1000000.0,
                   "tie_word_embeddings": False},
}
PAPER_SHAPES = ("llama-3.1-8b", "llama-3.2-3b", "qwen2.5-7b")


def shape_config(name: str, tokenizer):
    """A transformers config of shape ``name``; the vocabulary at least the tokenizer's."""
    from transformers import AutoConfig

    spec = {k: v for k, v in SHAPES[name].items() if k != "params"}
    model_type = spec.pop("model_type")
    spec["vocab_size"] = max(spec["vocab_size"], len(tokenizer))
    return AutoConfig.for_model(model_type, max_position_embeddings=8192, rms_norm_eps=1e-5,
                                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id, **spec)


def model_folder(name: str, tokenizer_dir: str | Path, root: Path) -> Path:
    """A folder with the shape's ``config.json`` and the tokenizer files, no weights."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    shape_config(name, tok).save_pretrained(out)
    return out


@contextlib.contextmanager
def random_weights(folder: Path, device: str, dtype):
    """While active, ``AutoModelForCausalLM.from_pretrained(folder)`` builds random weights of
    the folder's config directly on ``device`` in ``dtype`` (what ``HFModel`` and
    ``train.build_model`` call), so the real code paths run unchanged."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    original = AutoModelForCausalLM.from_pretrained.__func__

    def build(cls, path, *args, **kwargs):
        if Path(str(path)) != folder:
            return original(cls, path, *args, **kwargs)
        config = AutoConfig.from_pretrained(folder)
        torch.manual_seed(0)
        with torch.device(device):
            return AutoModelForCausalLM.from_config(config, dtype=kwargs.get("dtype") or dtype)

    with mock.patch.object(AutoModelForCausalLM, "from_pretrained", classmethod(build)):
        yield


def default_data_dir() -> Path:
    """The default run's prepared folder: the synthetic sample, prepared once in a temp folder."""
    from sgvalues.params import load_params
    from sgvalues.prepare import prepare_run_data

    run = Path(tempfile.mkdtemp(prefix="bench_gpu_data_"))
    return prepare_run_data(load_params(REPO / "params" / "smollm2-135m.yaml"), run)


def _peak_memory_gib(cuda: bool) -> float:
    import torch

    if cuda:
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process peak RSS (KiB -> GiB)


def _reset_peak(cuda: bool) -> None:
    import torch

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def bench_eval(folder: Path, samples: list[dict], device: str, dtype_name: str, batch_size: int) -> dict:
    """Engine (shared prefix) vs batched full-prompt scoring on ``samples``."""
    import numpy as np
    import torch

    from sgvalues.evaluate import sample_request
    from sgvalues.models.hf import HFModel
    from sgvalues.params import ModelSpec

    cuda = device == "cuda"
    _reset_peak(cuda)
    spec = ModelSpec(backend="hf", name=str(folder), dtype=dtype_name, device=device)
    with random_weights(folder, device, getattr(torch, dtype_name)):
        model = HFModel(spec, batch_size=batch_size)
    requests = [sample_request(s, 8) for s in samples]
    out = {"n_eval": len(requests)}
    for name, share in (("engine", True), ("full_prompt", False)):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        answers = model.score_answers(requests, share_prefix=share)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        out[f"{name}_samples_per_s"] = len(requests) / dt
        out[f"{name}_probs"] = [a.probs for a in answers]
    codes = [list(r.option_codes) for r in requests]
    e, f = out.pop("engine_probs"), out.pop("full_prompt_probs")
    out["argmax_agreement"] = float(np.mean([max(c, key=a.get) == max(c, key=b.get) for a, b, c in zip(e, f, codes)]))
    out["max_abs_prob_diff"] = max(abs(a[k] - b[k]) for a, b, c in zip(e, f, codes) for k in c)
    out["engine_speedup"] = out["engine_samples_per_s"] / out["full_prompt_samples_per_s"]
    out["eval_peak_gib"] = _peak_memory_gib(cuda)
    out["n_parameters"] = sum(p.numel() for p in model.model.parameters())
    del model
    return out


def bench_train(name: str, folder: Path, data_dir: Path, device: str, steps: int, n_train: int) -> dict:
    """``train_run`` with the paper's recipe for ``steps`` optimizer steps; projected full epoch."""
    import torch

    from sgvalues import train as T
    from sgvalues.params import load_params

    cuda = device == "cuda"
    _reset_peak(cuda)
    params = load_params(REPO / "params" / SHAPES[name]["params"])
    params = dataclasses.replace(
        params, model=dataclasses.replace(params.model, name=str(folder), device=device),
        training=dataclasses.replace(params.training, max_steps=steps, save_every=0))
    run = Path(tempfile.mkdtemp(prefix=f"bench_gpu_{name}_"))
    (run / "data").symlink_to(Path(data_dir).resolve(), target_is_directory=True)
    dtype = torch.bfloat16 if cuda else torch.float32
    with random_weights(folder, device, dtype):
        T.train_run(params, run, force=True, verbose=False)
    s = json.loads((run / "train_summary.json").read_text())
    per_sample = s["train_seconds"] / max(s["samples_seen"], 1)
    return {"train_steps": s["n_steps"], "batch_size": params.training.batch_size, "lr": params.training.lr,
            "train_dtype": s["dtype"], "train_sample_tokens_per_s": s["sample_tokens"] / max(s["train_seconds"], 1e-9),
            "train_samples_per_s": s["samples_per_s"], "train_peak_gib": _peak_memory_gib(cuda),
            "recipe_samples": n_train, "recipe_epochs": params.training.epochs,
            "projected_recipe_hours": per_sample * n_train * params.training.epochs / 3600,
            "train_seconds": s["train_seconds"], "train_samples_seen": s["samples_seen"],
            "final_loss": s["final_loss"]}


def run(shapes, n: int | None, train_steps: int, batch_size: int, data_dir=None, tokenizer_dir=None,
        device: str | None = None) -> list[dict]:
    """Measure every shape; one dict of figures per shape."""
    import torch

    from sgvalues.evaluate import stratified_limit
    from sgvalues.split import load_samples

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name = "bfloat16" if device == "cuda" else "float32"
    if tokenizer_dir is None:
        from sgvalues.models.embedded import embedded_model_dir

        tokenizer_dir = embedded_model_dir()
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    ood = load_samples(data_dir, "ood")
    samples = stratified_limit(ood, n, seed=0) if n else ood
    n_train = sum(1 for _ in open(Path(data_dir) / "samples_train.jsonl", encoding="utf-8"))
    root = Path(tempfile.mkdtemp(prefix="bench_gpu_models_"))
    rows = []
    for name in shapes:
        folder = model_folder(name, tokenizer_dir, root)
        row = {"shape": name, "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
               "dtype": dtype_name}
        row.update(bench_eval(folder, samples, device, dtype_name, batch_size))
        if train_steps:
            row.update(bench_train(name, folder, data_dir, device, train_steps, n_train))
        rows.append(row)
        if device == "cuda":
            torch.cuda.empty_cache()
        print(f"{name}: done", file=sys.stderr, flush=True)
    return rows


def format_table(rows: list[dict]) -> str:
    """The figures a user compares with their own GPU, one line per shape."""
    head = (f"{'shape':<14}{'params':>8}{'eval n':>8}{'engine/s':>10}{'full/s':>9}{'x':>6}{'argmax=':>9}"
            f"{'train tok/s':>12}{'peak GiB':>10}{'epoch h':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        peak = max(r.get("eval_peak_gib", 0.0), r.get("train_peak_gib", 0.0))
        lines.append(
            f"{r['shape']:<14}{r['n_parameters'] / 1e9:>7.2f}B{r['n_eval']:>8}{r['engine_samples_per_s']:>10.1f}"
            f"{r['full_prompt_samples_per_s']:>9.1f}{r['engine_speedup']:>6.1f}{100 * r['argmax_agreement']:>8.1f}%"
            + (f"{r['train_sample_tokens_per_s']:>12.0f}{peak:>10.1f}{r['projected_recipe_hours']:>9.2f}"
               if "train_sample_tokens_per_s" in r else f"{'-':>12}{peak:>10.1f}{'-':>9}"))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=list(PAPER_SHAPES), choices=list(SHAPES))
    ap.add_argument("--n", type=int, default=None, help="OOD samples to evaluate (default: all)")
    ap.add_argument("--train-steps", type=int, default=20, help="optimizer steps measured (0 = skip training)")
    ap.add_argument("--batch-size", type=int, default=32, help="evaluation rows per forward pass")
    ap.add_argument("--data-dir", default=None, help="prepared folder (default: prepare the synthetic default)")
    ap.add_argument("--tokenizer", default=None, help="folder with tokenizer files (default: the embedded model's)")
    ap.add_argument("--device", default=None, choices=("cpu", "cuda"))
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    rows = run(args.shapes, args.n, args.train_steps, args.batch_size, args.data_dir, args.tokenizer, args.device)
    dev = rows[0]["device"] if rows else "?"
    print(f"bench_gpu on {dev} ({rows[0]['dtype'] if rows else '?'}); random weights of each shape; "
          f"training: the paper's recipe (params/*.yaml), {args.train_steps} steps measured, "
          f"'epoch h' = projected hours for one epoch over all train samples")
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
