"""Benchmark of structured evaluation with the embedded model: naive vs batched vs the engine.

On the same OOD samples of the synthetic default (whole questions, ``evaluate.stratified_limit``
seeded 0), in one process with one loaded model, it times

1. **naive generate**: one prompt at a time, greedy ``generate`` of a short answer, parsed;
2. **batched full-prompt scoring**: batches of full prompts (padded, sample order), a plain
   ``model(...)`` forward with logits at every position, the same option-scoring rule;
3. **the engine** (``HFModel.score_answers``): shared question prefix computed once, its KV
   cache reused for the persona suffixes, length-grouped batches, ``lm_head`` only where read;

and prints prompts/s, the speed ratios, each method's matmul FLOP/s against the machine's
measured fp32 matmul peak (a timed square matmul), and how the engine's probabilities agree
with full-prompt scoring (identical argmax share, max abs probability difference).

Run: ``python benchmarks/bench_eval.py [--n 500] [--data-dir runs/default/data]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def matmul_peak(n: int = 1536, reps: int = 8, trials: int = 3) -> float:
    """Best observed fp32 FLOP/s of an ``n×n @ n×n`` matmul."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = 0.0
    for _ in range(trials):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t))
    return best


def load_bench_samples(n: int, data_dir: str | None):
    from sgvalues.evaluate import stratified_limit
    from sgvalues.params import load_params
    from sgvalues.split import load_samples

    if data_dir is None:
        from sgvalues.prepare import prepare_run_data

        run = Path(tempfile.mkdtemp(prefix="bench_eval_"))
        data_dir = prepare_run_data(load_params(REPO / "params" / "smollm2-135m.yaml"), run)
    return stratified_limit(load_samples(data_dir, "ood"), n, seed=0)


def full_prompt_scores(model, requests, batch_size: int):
    """Baseline: padded full prompts (+ code branch tokens) through the whole model, all logits."""
    from sgvalues.models.scoring import code_branches, option_probabilities

    tok = model.tokenizer
    rows = []  # (request index, branch, token ids)
    meta = {}
    for i, r in enumerate(requests):
        text = model.render(r.messages)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        code_toks = model._code_tokens(tuple(r.option_codes), text)
        meta[i] = code_toks
        for b in code_branches(code_toks):
            rows.append((i, b, ids + list(b)))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    node_lps = {i: {} for i in range(len(requests))}
    flops = 0.0
    for s in range(0, len(rows), batch_size):
        chunk = rows[s:s + batch_size]
        width = max(len(q) for _, _, q in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for k, (_, _, q) in enumerate(chunk):
            ids[k, :len(q)] = torch.tensor(q)
            mask[k, :len(q)] = 1
        with torch.inference_mode():
            logits = model.model(input_ids=ids, attention_mask=mask).logits.float()
        flops += model.forward_flops(len(chunk), width, 0, head_rows=len(chunk) * width)
        lp = torch.log_softmax(logits, dim=-1)
        for k, (i, b, q) in enumerate(chunk):
            last = len(q) - len(b) - 1
            for j in range(len(b) + 1):
                node_lps[i][tuple(b[:j])] = lp[k, last + j].double().numpy()
    probs = [option_probabilities(meta[i], node_lps[i]).probs for i in range(len(requests))]
    return probs, flops


def naive_generate(model, requests, max_new_tokens: int):
    """Baseline: one request at a time through ``model.generate`` (greedy), parsed."""
    from sgvalues.models.base import GenerateRequest, classify_text

    model.batch_size = 1
    flops, preds = 0.0, []
    for r in requests:
        a = model.generate_answers([GenerateRequest(r.messages, max_new_tokens, 0.0)])[0]
        preds.append(classify_text(a.text, r.option_codes))
        n_prompt = len(model.prompt_ids(r.messages))
        n_new = len(model.tokenizer(a.text or "", add_special_tokens=False)["input_ids"]) + 1
        flops += model.forward_flops(1, n_prompt, 0, head_rows=1)
        flops += sum(model.forward_flops(1, 1, n_prompt + k, head_rows=1) for k in range(n_new - 1))
    return preds, flops


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500, help="OOD samples (whole questions)")
    ap.add_argument("--naive-n", type=int, default=None, help="samples for naive generate (default: --n)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--data-dir", default=None, help="prepared folder (default: prepare the synthetic default)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = ap.parse_args(argv)

    from sgvalues.evaluate import sample_request
    from sgvalues.models import load_model
    from sgvalues.params import ModelSpec

    samples = load_bench_samples(args.n, args.data_dir)
    requests = [sample_request(s, args.max_new_tokens) for s in samples]
    n_q = len({s["question_id"] for s in samples})
    model = load_model(ModelSpec(backend="hf", name="smollm2-135m", cpu_threads=args.threads),
                       batch_size=args.batch_size)
    print(f"{len(samples)} OOD samples ({n_q} questions), torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    peak = matmul_peak()
    print(f"measured fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s", flush=True)

    results = {}
    # engine first warms nothing the others reuse: each method tokenises and runs on its own
    model.batch_size = args.batch_size
    model.flops = 0.0
    t = time.perf_counter()
    engine = model.score_answers(requests)
    results["engine"] = {"seconds": time.perf_counter() - t, "n": len(requests), "flops": model.flops}
    print(f"engine done in {results['engine']['seconds']:.1f}s", flush=True)

    t = time.perf_counter()
    full, flops = full_prompt_scores(model, requests, args.batch_size)
    results["batched_full_prompt"] = {"seconds": time.perf_counter() - t, "n": len(requests), "flops": flops}
    print(f"batched full-prompt scoring done in {results['batched_full_prompt']['seconds']:.1f}s", flush=True)

    naive_n = args.naive_n or len(requests)
    t = time.perf_counter()
    naive, flops = naive_generate(model, requests[:naive_n], args.max_new_tokens)
    results["naive_generate"] = {"seconds": time.perf_counter() - t, "n": naive_n, "flops": flops}

    for r in results.values():
        r["prompts_per_s"] = r["n"] / r["seconds"]
        r["flop_per_s"] = r["flops"] / r["seconds"]
        r["share_of_peak"] = r["flop_per_s"] / peak
    codes = [list(r.option_codes) for r in requests]
    arg_e = [max(c, key=lambda k: a.probs[k]) for a, c in zip(engine, codes)]
    arg_f = [max(c, key=lambda k: p[k]) for p, c in zip(full, codes)]
    agree = float(np.mean([a == b for a, b in zip(arg_e, arg_f)]))
    maxdiff = max(abs(a.probs[k] - p[k]) for a, p, c in zip(engine, full, codes) for k in c)
    gen_ok = [st for st, _ in naive]
    gen_agree = float(np.mean([code == e for (st, code), e in zip(naive, arg_e[:naive_n])]))

    print()
    print(f"{'method':<28}{'prompts/s':>10}{'GFLOP/s':>10}{'% peak':>8}{'seconds':>9}{'n':>6}")
    for name, r in results.items():
        print(f"{name:<28}{r['prompts_per_s']:>10.2f}{r['flop_per_s'] / 1e9:>10.1f}"
              f"{100 * r['share_of_peak']:>7.1f}%{r['seconds']:>9.1f}{r['n']:>6}")
    e = results["engine"]["prompts_per_s"]
    ratio_naive = e / results["naive_generate"]["prompts_per_s"]
    ratio_full = e / results["batched_full_prompt"]["prompts_per_s"]
    print()
    print(f"engine vs naive generate:           {ratio_naive:6.1f}x  (target >= 8x)")
    print(f"engine vs batched full-prompt:      {ratio_full:6.1f}x  (target >= 3x)")
    print(f"engine vs full-prompt: identical argmax {100 * agree:.1f}% of {len(requests)}, "
          f"max |prob diff| {maxdiff:.2e}")
    print(f"naive generate: statuses {dict(zip(*np.unique(gen_ok, return_counts=True)))}; "
          f"its parsed code equals the engine's argmax in {100 * gen_agree:.1f}%")
    summary = {"samples": len(requests), "questions": n_q, "peak_flop_per_s": peak, "methods": results,
               "ratio_vs_naive_generate": ratio_naive, "ratio_vs_batched_full_prompt": ratio_full,
               "argmax_agreement": agree, "max_abs_prob_diff": maxdiff,
               "torch_threads": torch.get_num_threads()}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
