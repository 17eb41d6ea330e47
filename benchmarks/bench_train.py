"""Training throughput: ``sgvalues.train`` against a naive padded HF ``Trainer``, in one run.

Both variants fine-tune the same model with the same LoRA recipe on the same stratified train
samples (the embedded SmolLM2-135M on the synthetic sample by default), for the same number of
optimizer steps and the same batch size:

* **ours** -- ``sgvalues.train.train_run``: length-grouped batches padded to their own
  maximum, logits only at the answer positions (``logits_to_keep``);
* **baseline** -- ``transformers.Trainer`` with every sequence padded to the longest one in
  the data and the full logits (the model's own loss on the same ``-100`` labels).

Each variant runs in its own subprocess so its peak memory is its own: ``ru_maxrss`` on CPU
(whole process, so the loaded model is in it; we also print the increase over the loaded
model), ``torch.cuda.max_memory_allocated`` on GPU. Both run with the same number of torch CPU
threads (``--threads``; default: the params' ``model.cpu_threads``, else torch's default).

Throughput is **sample tokens per second** of training, model loading excluded: the tokens of
the training samples processed, each sample counted at its own unpadded length, whatever the
batching. That is the same unit for both variants (the baseline's non-padding tokens), so the
ratio is the speed-up on the same work. With ``--share-prefix`` ours runs a question's shared
prompt prefix once per batch, so it also pushes far fewer tokens through the model; those
*computed* tokens are printed beside it. Ratios printed are measured in this run.

Usage::

    python benchmarks/bench_train.py                       # defaults: 8 steps x batch 8
    python benchmarks/bench_train.py --steps 20 --batch-size 16 --params params/smollm2-135m.yaml
    python benchmarks/bench_train.py --questions 8 --share-prefix --batch-size 16 --steps 4  # the embedded recipe
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _bench_params(args):
    from sgvalues.params import load_params

    params = load_params(args.params)
    model = dataclasses.replace(params.model, cpu_threads=args.threads)
    # --questions / --share-prefix: every subgroup of N questions, optionally with the shared
    # prompt prefix run once per batch; by default a stratified slice of all questions
    training = dataclasses.replace(params.training, max_steps=args.steps, batch_size=args.batch_size,
                                   grad_accum=1, max_samples=args.samples, save_every=0,
                                   questions=args.questions, share_prefix=args.share_prefix)
    return dataclasses.replace(params, model=model, training=training)


def _set_threads(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def run_ours(args) -> dict:
    import torch

    from sgvalues import train as T

    _set_threads(args)
    params = _bench_params(args)
    run = Path(args.run_dir)
    T.train_run(params, run, force=True, verbose=False)
    summary = json.loads((run / "train_summary.json").read_text())
    out = {"tokens": summary["sample_tokens"], "computed_tokens": summary["tokens"],
           "seconds": summary["train_seconds"], "samples": summary["samples_seen"],
           "threads": torch.get_num_threads(),
           "peak_rss_mb": _rss_mb(), "final_loss": summary["final_loss"]}
    if torch.cuda.is_available():
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run_baseline(args) -> dict:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from sgvalues import train as T

    _set_threads(args)
    params = _bench_params(args)
    cuda = torch.cuda.is_available()
    samples = T.load_train_samples(params, args.run_dir)
    model, tok = T.build_model(params, dtype=torch.bfloat16 if cuda else torch.float32)
    if cuda:
        model.to("cuda")
    examples = [T.encode_sample(tok, s) for s in samples]
    width = max(len(e) for e in examples)
    counted = {"tokens": 0}

    def pad_to_max(batch):  # the naive recipe: every row padded to the data's longest
        ids = torch.full((len(batch), width), tok.pad_token_id)
        labels = torch.full((len(batch), width), T.IGNORE_INDEX)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, e in enumerate(batch):
            ids[r, :len(e)] = torch.tensor(e.input_ids)
            labels[r, :len(e)] = torch.tensor(e.labels)
            mask[r, :len(e)] = 1
        counted["tokens"] += int(mask.sum())
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    loaded_rss = _rss_mb()
    timing = {}

    class Clock(TrainerCallback):  # time the optimizer steps only, like train_summary does
        def on_train_begin(self, *a, **k):
            timing["t0"] = time.time()

        def on_train_end(self, *a, **k):
            timing["t1"] = time.time()

    targs = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-trainer-"), per_device_train_batch_size=args.batch_size,
        max_steps=args.steps, learning_rate=params.training.lr, warmup_steps=int(round(params.training.warmup_ratio * args.steps)),
        lr_scheduler_type="linear", logging_strategy="no", save_strategy="no", report_to=[],
        bf16=cuda, use_cpu=not cuda, dataloader_num_workers=0, remove_unused_columns=False,
        seed=params.seed, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=examples, data_collator=pad_to_max,
                      callbacks=[Clock()])
    trainer.train()
    out = {"tokens": counted["tokens"], "computed_tokens": args.steps * args.batch_size * width,
           "threads": torch.get_num_threads(), "seconds": timing["t1"] - timing["t0"],
           "samples": args.steps * args.batch_size,
           "peak_rss_mb": _rss_mb(), "loaded_rss_mb": loaded_rss, "padded_width": width}
    if cuda:
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _child(variant: str, args) -> dict:
    cmd = [sys.executable, __file__, "--variant", variant, "--params", args.params, "--steps", str(args.steps),
           "--batch-size", str(args.batch_size), "--samples", str(args.samples), "--run-dir", args.run_dir,
           "--threads", str(args.threads)]
    if args.questions is not None:
        cmd += ["--questions", str(args.questions)]
    if args.share_prefix and variant == "ours":
        cmd += ["--share-prefix"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{variant} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params/smollm2-135m.yaml")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--samples", type=int, default=256, help="stratified train samples to draw from")
    parser.add_argument("--run-dir", default=None, help="scratch run folder (default: a temporary one)")
    parser.add_argument("--questions", type=int, default=None,
                        help="train on every subgroup of N questions (training.questions)")
    parser.add_argument("--share-prefix", action="store_true",
                        help="ours: one question per batch, shared prompt prefix run once")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for both variants (default: the params' model.cpu_threads, "
                             "else torch's default)")
    parser.add_argument("--variant", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.variant:
        result = run_ours(args) if args.variant == "ours" else run_baseline(args)
        print(json.dumps(result))
        return 0

    import torch

    from sgvalues.prepare import ensure_prepared

    if args.threads is None:
        from sgvalues.params import load_params

        args.threads = load_params(args.params).model.cpu_threads or torch.get_num_threads()
    args.run_dir = args.run_dir or tempfile.mkdtemp(prefix="bench-train-")
    ensure_prepared(_bench_params(args), args.run_dir)  # once, shared by both children
    device = "cuda" if torch.cuda.is_available() else f"cpu ({args.threads} threads, both variants)"
    print(f"bench_train: {args.params}, {args.steps} steps x batch {args.batch_size}, "
          f"{args.samples} stratified samples"
          + (f" of {args.questions} questions" if args.questions else " (all questions)")
          + (", ours with shared prefixes" if args.share_prefix else "") + f", {device}")
    results = {}
    for variant in ("baseline", "ours"):
        r = _child(variant, args)
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
        r["samples_per_s"] = r["samples"] / r["seconds"]
        results[variant] = r
        mem = f"peak RSS {r['peak_rss_mb']:.0f} MiB"
        if "cuda_peak_mb" in r:
            mem += f", CUDA peak {r['cuda_peak_mb']:.0f} MiB"
        if "threads" in r and r["threads"] != args.threads and device.startswith("cpu"):
            raise SystemExit(f"{variant} ran with {r['threads']} threads, not {args.threads}")
        print(f"  {variant:<8} {r['tokens']:>7d} sample tokens in {r['seconds']:7.2f} s = "
              f"{r['tokens_per_s']:8.1f} tokens/s, {r['samples_per_s']:6.2f} samples/s "
              f"({r['computed_tokens']:,} tokens through the model); {mem}")
    b, o = results["baseline"], results["ours"]
    print(f"  baseline pads every row to {b['padded_width']} tokens; loaded model alone: "
          f"{b['loaded_rss_mb']:.0f} MiB RSS")
    print(f"speed-up (sample tokens/s, ours / baseline): {o['tokens_per_s'] / b['tokens_per_s']:.2f}x "
          f"(target >= 2x); samples/s: {o['samples_per_s'] / b['samples_per_s']:.2f}x; "
          f"tokens through the model: {o['computed_tokens'] / b['computed_tokens']:.2f} of the baseline's")
    print(f"peak memory ratio (ours / baseline): {o['peak_rss_mb'] / b['peak_rss_mb']:.2f} (RSS); "
          f"over the loaded model: {(o['peak_rss_mb'] - b['loaded_rss_mb']):.0f} vs "
          f"{(b['peak_rss_mb'] - b['loaded_rss_mb']):.0f} MiB")
    if "cuda_peak_mb" in o:
        print(f"CUDA peak memory ratio (ours / baseline): {o['cuda_peak_mb'] / b['cuda_peak_mb']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
