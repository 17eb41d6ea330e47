"""LoRA supervised fine-tuning on the structured train samples (``sgvalues train``).

The model learns to answer a persona-prompted survey question with the bare option code, in
exactly the format evaluation reads: the structured chat (``prompts.structured_messages``)
rendered with the chat template and its generation prompt, then the code and the template's
end-of-turn (``"3<|im_end|>"`` for SmolLM2). Only those answer tokens carry loss.

Stages (alignment-handbook style), each a function you can call on its own:

1. **load data** -- :func:`load_train_samples`: ``<run>/data/samples_train.jsonl``, restricted
   to every train subgroup of ``training.questions`` questions by :func:`select_questions`
   (stratified by theme, seeded), then thinned to ``training.max_samples`` by
   :func:`select_samples` (stratified by subgroup and question, seeded);
2. **tokenize** -- :func:`encode_sample`: prompt ids + answer ids, labels ``-100`` on the prompt;
3. **build model** -- :func:`build_model`: base model (bf16 on CUDA, fp32 on CPU) + peft LoRA;
4. **train** -- :func:`train_run`: length-grouped batches, answer-only logits, AdamW with linear
   warm-up/decay, a checkpoint every ``save_every`` optimizer steps; resumes after a crash;
5. **save** -- ``<run>/adapter/`` (peft ``save_pretrained``), written atomically;
6. **log** -- ``<run>/train_log.csv`` (``step, epoch, loss, lr, tokens, elapsed``) and
   ``<run>/train_summary.json``.

Efficiency. Batches are *length grouped* (shuffle, then sort within mega-batches of
``16 x batch_size``), and padded only to their own longest member, so almost no compute goes
to padding. Padding is on the left, with position ids from the attention mask, so every
answer ends at the batch's last position: the model is called with
``logits_to_keep = K + 1`` (``K`` = longest answer in the batch) and the 49k-wide ``lm_head``
and softmax run on a handful of positions instead of the whole sequence.
``benchmarks/bench_train.py`` measures the speed-up against a padded HF ``Trainer``.

Shared prefixes (``training.share_prefix``). All subgroups of a question share the prompt up
to the persona sentence (~85-90% of the tokens). With ``share_prefix`` each micro-batch holds
subgroups of one question (:func:`question_batches`), the common prefix runs once and its
key/value cache is expanded over the batch (:func:`collate_shared`,
:func:`shared_prefix_loss`); gradients flow back through the cache, so loss and gradients equal
the unshared computation (tested), at a fraction of the tokens. With LoRA dropout the prefix
shares one dropout mask across the batch.

Devices. On CUDA the base model is loaded in bf16 and run under bf16 autocast (the LoRA
weights stay fp32, peft's default); on CPU everything is fp32. Device placement and data
parallelism are accelerate's (:class:`accelerate.Accelerator`), so the same code runs on one
CPU, one GPU, or several GPUs:

.. code-block:: bash

   # one process (CPU or one GPU)
   sgvalues train --params params/smollm2-135m.yaml --run-dir runs/default
   # data parallel on every local GPU (one process per GPU, DDP)
   accelerate launch --multi_gpu --num_processes 4 -m sgvalues.train \\
       --params params/llama-3.1-8b.yaml --run-dir runs/llama-3.1-8b

Under ``accelerate launch`` each process takes every ``world``-th micro-batch of the same
seeded order, gradients are averaged by DDP, and only the main process writes checkpoints,
logs and the adapter. ``batch_size`` is per process, so the effective batch is
``batch_size x grad_accum x world``. The number of optimizer steps is the same whatever the
world size when ``max_steps`` is set; with ``epochs`` more processes mean fewer steps.

Checkpoints. Every ``save_every`` optimizer steps ``<run>/checkpoints/step-NNNNNNNN/`` gets the
adapter weights, optimizer and scheduler state, the RNG states (python, numpy, torch, CUDA),
the step and the position in the data order; it is written to a temporary folder and renamed
into place, so a crash never leaves a half-written checkpoint. ``train_run`` on the same
inputs resumes from the newest checkpoint (a Ctrl-C between steps also saves one); a run
whose inputs changed discards old checkpoints. A finished adapter with the same inputs
fingerprint is not retrained.

Notes
-----
With answer tokens :math:`A` of a step's micro-batches (all of them, across gradient
accumulation), the loss is the mean token cross-entropy

.. math:: \\mathcal{L} = -\\frac{1}{|A|} \\sum_{(i,t) \\in A} \\log p_\\theta(x_{i,t} \\mid x_{i,<t}),

(the ``modal`` objective). ``training.objective: distribution`` replaces it by the mean over
samples of the soft cross-entropy :math:`-\\sum_x q(x) \\log p_\\theta(x)` against the subgroup's
answer distribution :math:`q`, with :math:`p_\\theta` the option-code probabilities the evaluation
engine reads (:func:`distribution_loss`); ``training.reweight`` multiplies each sample's term by
a weight of mean 1 (:func:`sample_weights`). The learning rate at optimizer step :math:`s` of
:math:`S`, with :math:`W` warm-up steps,
is :math:`\\eta_s = \\eta \\, s/W` for :math:`s < W`, then
:math:`\\eta \\, (S-s)/(S-W)` (linear decay).

The paper's recipe (lr :math:`10^{-6}`, one epoch over 10,700 samples) is kept in the paper
models' params. It moves an 8B model in thousands of steps; on the embedded 135M model on two
CPU cores it would move nothing measurable in ten minutes, so ``params/smollm2-135m.yaml`` uses
a larger lr on every train subgroup of a few questions (``training.questions``; see the
``training:`` block there and notebook 04).

Example
-------
>>> batches = length_grouped_batches([5, 9, 6, 8], batch_size=2, seed=0)
>>> sorted(sorted(b) for b in batches)
[[0, 2], [1, 3]]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from sgvalues.atomic import atomic_dir, atomic_path

__all__ = [
    "IGNORE_INDEX",
    "LOG_COLUMNS",
    "TrainError",
    "EncodedExample",
    "resolve_model_path",
    "load_train_samples",
    "select_samples",
    "select_questions",
    "training_questions",
    "unseen_questions",
    "evaluate_questions",
    "answer_completion",
    "encode_sample",
    "option_code_tokens",
    "encode_distribution_sample",
    "sample_weights",
    "base_subgroup_nmae",
    "length_grouped_batches",
    "question_batches",
    "collate",
    "answer_loss",
    "collate_shared",
    "shared_prefix_loss",
    "distribution_loss",
    "build_model",
    "inputs_fingerprint",
    "train_run",
    "SEED_COLUMNS",
    "training_seeds",
    "seed_tag",
    "seed_dir",
    "train_over_seeds",
    "read_seeds",
    "seed_spread",
    "read_train_log",
    "recipe_table",
    "plot_training_curve",
    "before_after",
    "gain_table",
    "plot_before_after",
    "plot_gain",
    "configure_parser",
    "main",
]

#: label value that cross-entropy ignores (the prompt and the padding)
IGNORE_INDEX = -100
#: columns of ``train_log.csv``
LOG_COLUMNS = ("step", "epoch", "loss", "lr", "tokens", "elapsed")
#: gradient-norm clip (alignment-handbook default)
MAX_GRAD_NORM = 1.0
#: length grouping sorts within mega-batches of this many batches
MEGA_BATCHES = 16
#: checkpoints kept on disk (the newest ones)
KEEP_CHECKPOINTS = 2


class TrainError(RuntimeError):
    """Training cannot run on these inputs; the message names the file, key or value."""


@dataclass(frozen=True)
class EncodedExample:
    """One tokenized sample: ``labels`` is ``IGNORE_INDEX`` on the prompt, ids on the answer.

    For the ``distribution`` objective (:func:`encode_distribution_sample`) the "answer" is the
    branch of the option-code trie (``"1"`` for codes 1-10 whose ``"10"`` is two tokens, else
    nothing) and ``soft`` holds every option code's token ids with its target share.
    ``weight`` multiplies the sample's loss (``training.reweight``).
    """

    sample_id: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    soft: tuple[tuple[tuple[int, ...], float], ...] = ()
    weight: float = 1.0

    @property
    def n_answer(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)

    def __len__(self) -> int:
        return len(self.input_ids)


# ----------------------------------------------------------------------------- stage 1: data


def resolve_model_path(name: str) -> str:
    """``"smollm2-135m"`` -> the embedded model's cached folder; anything else unchanged."""
    from sgvalues.models.embedded import EMBEDDED_NAME, embedded_model_dir

    return str(embedded_model_dir()) if name == EMBEDDED_NAME else name


def _load_split_samples(params, run_dir: str | Path, split: str) -> list[dict]:
    data_dir = Path(run_dir) / "data"
    if not (data_dir / f"samples_{split}.jsonl").is_file():
        # a fresh run folder: prepare its data from the params (synthetic or data.wvs_file)
        from sgvalues.prepare import ensure_prepared

        ensure_prepared(params, run_dir)
    from sgvalues.split import load_samples

    samples = load_samples(data_dir, split)
    if not samples:
        raise TrainError(f"{data_dir / f'samples_{split}.jsonl'}: no samples in split {split!r}")
    return samples


def training_questions(params, run_dir: str | Path) -> list[str] | None:
    """The question ids training uses (``training.questions`` of them), or ``None`` for all.

    Evaluate base and fine-tuned model on these (:func:`evaluate_questions`) to measure what
    training on a question's subgroups does for its unseen subgroups.
    """
    n = params.training.questions
    if n is None:
        return None
    return select_questions(_load_split_samples(params, run_dir, "train"), n, params.seed)


def unseen_questions(params, run_dir: str | Path, n_questions: int) -> list[str]:
    """``n_questions`` questions training did not use (stratified by theme, seeded by ``seed + 1``).

    Base vs fine-tuned on these shows what does *not* transfer: the adapter has never seen
    any subgroup of them.
    """
    samples = _load_split_samples(params, run_dir, "train")
    trained = set(training_questions(params, run_dir) or [])
    if params.training.questions is None:
        # every question is trained on; nothing is unseen
        return []
    rest = [s for s in samples if str(s["question_id"]) not in trained]
    return select_questions(rest, n_questions, params.seed + 1) if rest else []


def load_train_samples(params, run_dir: str | Path) -> list[dict]:
    """Train samples of ``<run_dir>/data``: every subgroup of ``training.questions`` questions
    (:func:`select_questions`), thinned to ``training.max_samples`` (:func:`select_samples`).

    A run folder without prepared data is prepared first (``prepare.ensure_prepared``).
    """
    samples = _load_split_samples(params, run_dir, "train")
    if params.training.questions is not None:
        keep = set(select_questions(samples, params.training.questions, params.seed))
        samples = [s for s in samples if str(s["question_id"]) in keep]
    return select_samples(samples, params.training.max_samples, params.seed)


def select_questions(samples: Sequence[dict], n_questions: int, seed: int) -> list[str]:
    """``n_questions`` question ids, stratified by theme: round robin over the themes.

    Themes are visited in a seeded random order, round after round; each visit takes the
    theme's next question in a seeded random order, skipping themes that have run out. So
    theme counts differ by at most one until a theme is exhausted, and the same samples and
    seed always give the same questions. Returned sorted. Asking for more questions than
    there are returns them all.

    Examples
    --------
    >>> s = [{"question_id": f"{t}{k}", "theme": t} for t in "ABC" for k in range(4)]
    >>> q = select_questions(s, 5, seed=0)
    >>> len(q), sorted(Counter(x[0] for x in q).values())
    (5, [1, 2, 2])
    >>> q == select_questions(list(reversed(s)), 5, seed=0)
    True
    """
    if n_questions is None or n_questions < 1:
        raise TrainError(f"training.questions = {n_questions}: expected >= 1 or null")
    theme_of: dict[str, str] = {}
    for i, s in enumerate(samples):
        for key in ("question_id", "theme"):
            if key not in s:
                raise TrainError(f"sample {i} ({s.get('sample_id', '?')}): missing key '{key}'")
        q, t = str(s["question_id"]), str(s["theme"])
        if theme_of.setdefault(q, t) != t:
            raise TrainError(f"question {q}: samples disagree on 'theme' ({theme_of[q]!r} vs {t!r})")
    rng = np.random.default_rng(seed)
    by_theme: dict[str, list[str]] = defaultdict(list)
    for q in sorted(theme_of):
        by_theme[theme_of[q]].append(q)
    themes = sorted(by_theme)
    queues = {t: [by_theme[t][k] for k in rng.permutation(len(by_theme[t]))] for t in themes}
    order = [themes[k] for k in rng.permutation(len(themes))]
    chosen: list[str] = []
    while len(chosen) < min(n_questions, len(theme_of)):
        for t in order:
            if queues[t] and len(chosen) < n_questions:
                chosen.append(queues[t].pop(0))
    return sorted(chosen)
def select_samples(samples: Sequence[dict], max_samples: int | None, seed: int) -> list[dict]:
    """At most ``max_samples`` samples, spread evenly over subgroups and questions.

    Rounds over the subgroups (in a seeded order); in each round every subgroup gives the
    sample whose question has been taken least so far (ties by a seeded random rank). So
    subgroup counts differ by at most one, and on a full question x subgroup grid so do
    question counts. The original order is kept; ``None`` (or enough) keeps everything.

    Examples
    --------
    >>> s = [{"sample_id": f"{q}_{g}", "question_id": q, "subgroup": g}
    ...      for q in ("Q1", "Q2", "Q3") for g in ("a", "b")]
    >>> picked = select_samples(s, 4, seed=0)
    >>> sorted(Counter(x["subgroup"] for x in picked).values())
    [2, 2]
    >>> max(Counter(x["question_id"] for x in picked).values())
    2
    """
    if max_samples is None or max_samples >= len(samples):
        return list(samples)
    if max_samples < 1:
        raise TrainError(f"training.max_samples = {max_samples}: expected >= 1 or null")
    for i, s in enumerate(samples):
        for key in ("question_id", "subgroup"):
            if key not in s:
                raise TrainError(f"sample {i} ({s.get('sample_id', '?')}): missing key '{key}'")
    rng = np.random.default_rng(seed)
    rank = rng.permutation(len(samples))
    pools: dict[str, list[int]] = defaultdict(list)
    for i in sorted(range(len(samples)), key=lambda i: rank[i]):
        pools[samples[i]["subgroup"]].append(i)
    order = [sorted(pools)[k] for k in rng.permutation(len(pools))]
    taken: Counter = Counter()
    chosen: list[int] = []
    while len(chosen) < max_samples:
        for g in order:
            pool = pools[g]
            if not pool:
                continue
            j = min(range(len(pool)), key=lambda k: (taken[samples[pool[k]]["question_id"]], k))
            i = pool.pop(j)
            taken[samples[i]["question_id"]] += 1
            chosen.append(i)
            if len(chosen) == max_samples:
                break
    return [samples[i] for i in sorted(chosen)]


# ----------------------------------------------------------------------------- stage 2: tokenize


def answer_completion(tokenizer, messages: list[dict], code: str) -> str:
    """The assistant completion as the chat template writes it: ``code`` + end-of-turn.

    It is the template's rendering of the conversation with the answer, minus its rendering
    with the generation prompt, with trailing whitespace dropped (the newline after
    ``<|im_end|>`` is not part of the answer).
    """
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(
        messages + [{"role": "assistant", "content": code}], tokenize=False
    )
    if not full.startswith(prompt):
        raise TrainError(
            "the chat template renders the answered conversation with a different prefix than "
            "the generation prompt; cannot place the answer after the prompt"
        )
    completion = full[len(prompt):].rstrip()
    if not completion.startswith(code) or completion == code:
        raise TrainError(f"chat template completion {completion!r} does not start with the code "
                         f"{code!r} followed by an end-of-turn marker")
    return completion


def encode_sample(tokenizer, sample: dict, messages_fn: Callable | None = None) -> EncodedExample:
    """Tokenize one sample: prompt (chat template + generation prompt) then code + end-of-turn."""
    if messages_fn is None:
        from sgvalues.prompts import structured_messages as messages_fn
    try:
        target = int(sample["target"])
    except (KeyError, TypeError, ValueError) as exc:
        raise TrainError(
            f"sample {sample.get('sample_id', '?')}: key 'target' = {sample.get('target')!r}: "
            "expected an integer option code"
        ) from exc
    messages = messages_fn(sample)
    code = str(target)
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    answer = answer_completion(tokenizer, messages, code)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return EncodedExample(
        sample_id=str(sample.get("sample_id", "")),
        input_ids=tuple(p_ids) + tuple(a_ids),
        labels=(IGNORE_INDEX,) * len(p_ids) + tuple(a_ids),
    )


def option_code_tokens(tokenizer, prompt_text: str, codes: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Token ids of each option code as it follows ``prompt_text`` (the rendered generation prompt).

    The evaluation engine's rule (``sgvalues.models.hf.HFModel._code_tokens``): tokenise the
    prompt's last 64 characters with and without the code and keep the difference; a code that
    merges with the prompt's last token is tokenised on its own.
    """
    tail = prompt_text[-64:]
    base = tokenizer(tail, add_special_tokens=False)["input_ids"]
    out = {}
    for c in codes:
        ids = tokenizer(tail + c, add_special_tokens=False)["input_ids"]
        if ids[: len(base)] == base and len(ids) > len(base):
            out[c] = tuple(ids[len(base):])
        else:
            out[c] = tuple(tokenizer(c, add_special_tokens=False)["input_ids"])
    return out


def _json_field(sample: dict, key: str) -> dict:
    value = sample.get(key)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise TrainError(f"sample {sample.get('sample_id', '?')}: key '{key}' is not valid JSON") from exc
    if not isinstance(value, dict) or not value:
        raise TrainError(f"sample {sample.get('sample_id', '?')}: key '{key}' = {value!r}: expected a "
                         "non-empty mapping code -> value")
    return value


def encode_distribution_sample(tokenizer, sample: dict, messages_fn: Callable | None = None) -> EncodedExample:
    """Tokenize one sample for the ``distribution`` objective.

    ``input_ids`` = the prompt (chat template + generation prompt) followed by the option-code
    trie's branch (``sgvalues.models.scoring.code_branches``: empty when every code is one
    token; ``"1"`` when ``"10"`` is ``"1"`` + ``"0"``), so the logits at the last prompt token
    and along the branch give the next-token distribution at every internal node of the trie,
    all the greedy-longest-code rule reads. ``soft`` pairs each option code's tokens with its
    share in the sample's ``distribution`` (renormalised over the options; 0 for an option
    nobody chose).

    Raises
    ------
    TrainError
        when the sample's ``options`` or ``distribution`` are missing or malformed, when the
        distribution has no mass on any option, or when the codes' trie has more than one
        branch (codes such as 1-10 have one; the restriction keeps one forward per sample).
    """
    from sgvalues.models.scoring import code_branches

    if messages_fn is None:
        from sgvalues.prompts import structured_messages as messages_fn
    sid = sample.get("sample_id", "?")
    options = _json_field(sample, "options")
    shares = _json_field(sample, "distribution")
    codes = sorted((str(c) for c in options), key=lambda c: (float(c), c))
    try:
        q = {c: float(shares.get(c, 0.0)) for c in codes}
    except (TypeError, ValueError) as exc:
        raise TrainError(f"sample {sid}: key 'distribution' = {shares!r}: expected numeric shares") from exc
    total = sum(q.values())
    if not total > 0 or any(v < 0 for v in q.values()):
        raise TrainError(f"sample {sid}: key 'distribution' = {shares!r}: expected non-negative shares with "
                         f"mass on the options {codes}")
    messages = messages_fn(sample)
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    code_toks = option_code_tokens(tokenizer, prompt, codes)
    branches = code_branches(code_toks)
    if len(branches) != 1:
        raise TrainError(f"sample {sid}: the option codes {codes} tokenise into {len(branches)} branches "
                         f"({branches}); the distribution objective reads one branch per sample")
    branch = tuple(branches[0])
    return EncodedExample(
        sample_id=str(sid), input_ids=tuple(p_ids) + branch,
        labels=(IGNORE_INDEX,) * len(p_ids) + branch,
        soft=tuple((code_toks[c], q[c] / total) for c in codes),
    )


def sample_weights(samples: Sequence[dict], scheme: str,
                   subgroup_nmae: dict[str, float] | None = None) -> np.ndarray:
    """Loss weight of each training sample under ``training.reweight`` ``scheme``, mean 1.

    - ``none``: every weight 1;
    - ``inverse_size``: :math:`w_i \\propto 1 / s_i` with :math:`s_i = n_i / \\sum_{j} n_j` the
      subgroup's share of the respondents who answered the question in its stratum (``n_valid``;
      the sum runs over the samples of the same question and stratum), so a subgroup half the
      size of another counts twice as much;
    - ``error``: :math:`w_i \\propto \\mathrm{NMAE}_{g(i)}`, the base model's NMAE on subgroup
      :math:`g(i)` (``subgroup_nmae``, from :func:`base_subgroup_nmae`).

    Notes
    -----
    Weights are normalised to mean 1, :math:`w_i = u_i / \\bar u`, so the loss keeps its
    scale and ``none`` is today's loss.

    Examples
    --------
    >>> s = [{"question_id": "Q1", "stratum": "sex", "subgroup": g, "n_valid": n}
    ...      for g, n in (("sex:Male", 300), ("sex:Female", 100))]
    >>> sample_weights(s, "inverse_size").round(3).tolist()
    [0.5, 1.5]
    >>> sample_weights(s, "error", {"sex:Male": 0.1, "sex:Female": 0.3}).round(3).tolist()
    [0.5, 1.5]
    """
    if scheme == "none":
        return np.ones(len(samples))
    if scheme == "inverse_size":
        totals: Counter = Counter()
        for i, smp in enumerate(samples):
            n = smp.get("n_valid")
            if isinstance(n, bool) or not isinstance(n, (int, float)) or not n > 0:
                raise TrainError(f"sample {smp.get('sample_id', i)}: key 'n_valid' = {n!r}: expected a "
                                 "positive count of respondents (inverse_size reweighting)")
            totals[(str(smp["question_id"]), str(smp["stratum"]))] += float(n)
        raw = np.array([totals[(str(smp["question_id"]), str(smp["stratum"]))] / float(smp["n_valid"])
                        for smp in samples])
    elif scheme == "error":
        if subgroup_nmae is None:
            raise TrainError("training.reweight = 'error' needs the base model's NMAE per subgroup")
        missing = sorted({str(smp["subgroup"]) for smp in samples} - set(subgroup_nmae))
        if missing:
            raise TrainError(f"training.reweight = 'error': no base-model NMAE for subgroup(s) {missing[:5]}")
        raw = np.array([float(subgroup_nmae[str(smp["subgroup"])]) for smp in samples])
        if not raw.sum() > 0:
            raise TrainError("training.reweight = 'error': the base model's NMAE is 0 on every training "
                             "subgroup; nothing to weight by")
    else:
        raise TrainError(f"training.reweight = {scheme!r}: expected one of 'none', 'inverse_size', 'error'")
    return raw / raw.mean()


def base_subgroup_nmae(params, run_dir: str | Path, cache=True) -> dict[str, float]:
    """The base model's NMAE per train subgroup, on the train samples of :func:`training_questions`.

    One evaluation pass (:func:`evaluate_questions`, tag ``base-weights``, every sample of those
    questions; cached answers make it free when notebook 04 has evaluated them) for
    ``training.reweight: error``.
    """
    from sgvalues import metrics

    df = evaluate_questions(params, run_dir, "train", "base-weights", training_questions(params, run_dir),
                            limit=sys.maxsize, cache=cache, log=None)
    per = metrics.aggregate(df, "subgroup")
    return {str(g): float(v) for g, v in zip(per["subgroup"], per["nmae"])}


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed,
                           mega_batches: int = MEGA_BATCHES) -> list[list[int]]:
    """Seeded batches of indices whose members have similar lengths.

    Shuffle, cut into mega-batches of ``mega_batches x batch_size``, sort each by length
    (longest first), cut into batches, and shuffle the batch order. Padding to each batch's
    own maximum then wastes little, while the order stays random across mega-batches.
    """
    if batch_size < 1:
        raise TrainError(f"batch_size = {batch_size}: expected >= 1")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)).tolist()
    span = batch_size * max(1, mega_batches)
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda i: (-lengths[i], i))
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches)).tolist()]


def question_batches(questions: Sequence[str], batch_size: int, seed) -> list[list[int]]:
    """Seeded batches of indices that each hold subgroups of one question only.

    Each question's indices (in a seeded random order) are cut into near-equal batches of at
    most ``batch_size``; the batch order is shuffled. With :func:`collate_shared` the
    question's prompt prefix then runs once per batch.

    Examples
    --------
    >>> b = question_batches(["A", "A", "A", "B", "B"], batch_size=2, seed=0)
    >>> sorted(len(x) for x in b), sorted(i for x in b for i in x)
    ([1, 2, 2], [0, 1, 2, 3, 4])
    >>> all(len({"AAABB"[i] for i in x}) == 1 for x in b)
    True
    """
    if batch_size < 1:
        raise TrainError(f"batch_size = {batch_size}: expected >= 1")
    rng = np.random.default_rng(seed)
    by_q: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        by_q[str(q)].append(i)
    batches: list[list[int]] = []
    for q in sorted(by_q):
        idx = [by_q[q][k] for k in rng.permutation(len(by_q[q]))]
        n = math.ceil(len(idx) / batch_size)
        batches += [idx[j::n] for j in range(n)]  # near-equal: 50 at 16 -> 13+13+12+12
    return [batches[k] for k in rng.permutation(len(batches)).tolist()]


def collate(examples: Sequence[EncodedExample], pad_id: int) -> dict:
    """Left-pad a batch to its longest member; position ids count real tokens only.

    Left padding puts every answer at the end, so the loss needs only the last few logits.

    Examples
    --------
    >>> b = collate([EncodedExample("a", (5, 6, 7), (-100, 6, 7)),
    ...              EncodedExample("b", (8, 9), (-100, 9))], pad_id=0)
    >>> b["input_ids"].tolist(), b["position_ids"].tolist()
    ([[5, 6, 7], [0, 8, 9]], [[0, 1, 2], [0, 0, 1]])
    >>> b["labels"].tolist()
    [[-100, 6, 7], [-100, -100, 9]]
    """
    import torch

    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e)
        ids[row, width - n:] = torch.tensor(e.input_ids)
        labels[row, width - n:] = torch.tensor(e.labels)
        mask[row, width - n:] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    batch = {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "labels": labels}
    if any(e.soft for e in examples):
        batch["soft"] = [e.soft for e in examples]
        batch["branch_len"] = [e.n_answer for e in examples]
    if any(e.weight != 1.0 for e in examples):
        batch["weights"] = torch.tensor([float(e.weight) for e in examples], dtype=torch.float32)
    return batch


def answer_loss(model, batch: dict):
    """Summed cross-entropy over the answer tokens, and their number.

    Only the last ``K + 1`` positions are sent through ``lm_head`` (``K`` = longest answer;
    the batch is left padded), via the model's ``logits_to_keep``.
    """

    labels = batch["labels"]
    k = int((labels != IGNORE_INDEX).sum(-1).max())
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"], logits_to_keep=k + 1, use_cache=False)
    logits = out.logits[:, :-1, :].float()  # position t predicts token t + 1
    return _token_cross_entropy(logits, labels[:, -k:], batch.get("weights"))


def _token_cross_entropy(logits, targets, weights=None):
    """Summed answer-token cross-entropy (each row's tokens times its weight) and the token count."""
    import torch.nn.functional as F

    if weights is None:
        loss_sum = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                   ignore_index=IGNORE_INDEX, reduction="sum")
    else:
        per_token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                    ignore_index=IGNORE_INDEX, reduction="none").view(targets.shape)
        loss_sum = (per_token.sum(-1) * weights.to(per_token.device)).sum()
    return loss_sum, (targets != IGNORE_INDEX).sum()


def collate_shared(examples: Sequence[EncodedExample], pad_id: int) -> dict:
    """A batch whose members share a prompt prefix (one question's subgroups): the prefix
    once, the rest of each member left padded after it.

    The prefix is the longest common prefix of the members' prompts, less one token, so
    every row keeps the prompt token that predicts its first answer token. ``attention_mask``
    covers prefix + suffix columns; ``position_ids`` (of the suffix) continue the prefix's.

    Examples
    --------
    >>> b = collate_shared([EncodedExample("a", (1, 2, 3, 7, 8), (-100, -100, -100, 7, 8)),
    ...                     EncodedExample("b", (1, 2, 5, 9), (-100, -100, -100, 9))], pad_id=0)
    >>> b["prefix_ids"].tolist(), b["input_ids"].tolist()
    ([[1, 2]], [[3, 7, 8], [0, 5, 9]])
    >>> b["attention_mask"].tolist(), b["labels"].tolist()
    ([[1, 1, 1, 1, 1], [1, 1, 0, 1, 1]], [[-100, 7, 8], [-100, -100, 9]])
    >>> b["position_ids"].tolist()
    [[2, 3, 4], [2, 2, 3]]
    """
    import torch

    prompt_lens = [len(e) - e.n_answer for e in examples]
    first = examples[0].input_ids
    n = min(prompt_lens) - 1
    for e in examples[1:]:
        n = min(n, len(os.path.commonprefix([list(first[:n]), list(e.input_ids[:n])])))
    n = max(n, 0)
    rest = [dataclasses.replace(e, input_ids=e.input_ids[n:], labels=e.labels[n:]) for e in examples]
    batch = collate(rest, pad_id)
    batch["position_ids"] = batch["position_ids"] + n
    ones = torch.ones((len(rest), n), dtype=batch["attention_mask"].dtype)
    batch["attention_mask"] = torch.cat([ones, batch["attention_mask"]], dim=1)
    batch["prefix_ids"] = torch.tensor([list(first[:n])], dtype=torch.long)
    return batch


def shared_prefix_loss(model, batch: dict):
    """:func:`answer_loss` for a :func:`collate_shared` batch: the shared prefix runs once.

    The prefix's keys and values are computed for one row, expanded (a view) over the batch,
    and the suffixes attend to them; gradients flow back through the expanded cache into the
    prefix's computation, so loss and gradients equal the unshared ones (without dropout:
    with LoRA dropout the prefix shares one dropout mask across the batch).
    """
    labels = batch["labels"]
    k = int((labels != IGNORE_INDEX).sum(-1).max())
    logits = _shared_prefix_logits(model, batch, k + 1)[:, :-1, :].float()  # t predicts t + 1
    return _token_cross_entropy(logits, labels[:, -k:], batch.get("weights"))


def _shared_prefix_logits(model, batch: dict, keep: int):
    """Logits at the last ``keep`` positions of a :func:`collate_shared` batch (prefix run once)."""
    import torch
    from transformers import DynamicCache

    labels = batch["labels"]
    prefix = batch["prefix_ids"]
    cache = None
    if prefix.shape[1] > 0:
        cfg = getattr(model, "config", None)
        pos = torch.arange(prefix.shape[1], device=prefix.device).unsqueeze(0)
        out = model(input_ids=prefix, position_ids=pos, use_cache=True, logits_to_keep=1)
        kv = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        rows = labels.shape[0]
        cache = DynamicCache([(key.expand(rows, -1, -1, -1), val.expand(rows, -1, -1, -1))
                              for key, val, *_ in kv], config=cfg)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"], logits_to_keep=keep,
                use_cache=cache is not None, cache=cache)
    return out.logits


def distribution_loss(model, batch: dict):
    """Summed soft cross-entropy against each row's answer distribution, and the number of rows.

    Works on :func:`collate` and :func:`collate_shared` batches of
    :func:`encode_distribution_sample` examples. Each row ends with its trie branch (left
    padding), so the last ``B + 1`` logits (``B`` = longest branch) hold every row's
    next-token distributions at the trie's internal nodes.

    Notes
    -----
    With :math:`\\ell_v(t)` the log-probability of token :math:`t` at trie node :math:`v`, a code
    :math:`c = t_1 \\dots t_k` gets, as in the evaluation engine (``sgvalues.models.scoring``),

    .. math:: \\log \\tilde p(c) = \\sum_{i=1}^{k} \\ell_{t_{<i}}(t_i)
              + \\log\\Big(1 - \\sum_{t \\in \\mathrm{children}(c)} e^{\\ell_{c}(t)}\\Big),
       \\qquad \\log p(c) = \\log \\tilde p(c) - \\log \\sum_{c'} \\tilde p(c'),

    and the row's loss is :math:`w \\cdot \\big(-\\sum_c q(c) \\log p(c)\\big)` with its target
    shares :math:`q` and weight :math:`w` (1 without ``weights``). For a one-hot :math:`q` it is
    :math:`-\\log p(\\text{target})`, the modal answer's cross-entropy *over the options*; the
    ``modal`` objective's token cross-entropy is over the whole vocabulary and includes the
    end-of-turn token.
    """
    import torch

    soft, branch_len = batch["soft"], batch["branch_len"]
    keep = max(branch_len) + 1
    if "prefix_ids" in batch:
        logits = _shared_prefix_logits(model, batch, keep)
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"], logits_to_keep=keep, use_cache=False).logits
    logp = logits[:, -keep:, :].float().log_softmax(-1)
    weights = batch.get("weights")
    total = logp.new_zeros(())
    for row, (pairs, b) in enumerate(zip(soft, branch_len)):
        root = keep - 1 - b  # index of the last prompt token in the kept logits
        seqs = [tuple(toks) for toks, _ in pairs]
        scores = []
        for s in seqs:
            lp = logp.new_zeros(())
            for i, tok in enumerate(s):
                lp = lp + logp[row, root + i, tok]
            children = sorted({t[len(s)] for t in seqs if len(t) > len(s) and t[: len(s)] == s})
            if children:
                cont = logp[row, root + len(s), children].exp().sum()
                lp = lp + torch.log1p(-cont.clamp(max=1 - 1e-7))
            scores.append(lp)
        log_p = torch.stack(scores)
        log_p = log_p - torch.logsumexp(log_p, 0)
        q = torch.tensor([share for _, share in pairs], dtype=log_p.dtype, device=log_p.device)
        loss = -(q * log_p).sum()
        total = total + (loss * float(weights[row]) if weights is not None else loss)
    return total, torch.tensor(len(soft))


# ----------------------------------------------------------------------------- stage 3: model


def _dtype(params, cuda: bool):
    import torch

    name = params.model.dtype
    if name == "auto":
        return torch.bfloat16 if cuda else torch.float32
    return getattr(torch, name)


def build_model(params, dtype=None):
    """Base causal LM + fresh LoRA adapter (peft) from ``params.training``; returns (model, tokenizer)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sgvalues.models.embedded import quiet_transformers

    quiet_transformers()
    t = params.training
    path = resolve_model_path(params.model.name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    base.config.use_cache = False
    config = LoraConfig(r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout,
                        target_modules=list(t.target_modules), task_type="CAUSAL_LM", bias="none")
    try:
        model = get_peft_model(base, config)
    except ValueError as exc:
        raise TrainError(f"training.target_modules = {list(t.target_modules)}: {exc}") from exc
    return model, tokenizer


# ----------------------------------------------------------------------------- stage 4: train


#: training settings that do not decide one adapter (``seeds`` lists the adapters to train)
_NOT_IN_FINGERPRINT = ("seeds",)
#: settings added later, left out of the fingerprint at their defaults so adapters trained
#: before they existed stay valid
_LATER_DEFAULTS = {"objective": "modal", "reweight": "none"}


def inputs_fingerprint(params, samples: Sequence[dict], seed: int | None = None) -> str:
    """sha256 of what decides the adapter: model, training seed, training recipe, and the samples.

    ``seed`` is the training seed (default ``params.seed``). ``training.seeds`` is left out: it
    says which adapters to train, not how one is trained, so listing seeds keeps every
    existing adapter valid.
    """
    h = hashlib.sha256()
    training = {k: v for k, v in params.to_dict()["training"].items()
                if k not in _NOT_IN_FINGERPRINT and not (k in _LATER_DEFAULTS and v == _LATER_DEFAULTS[k])}
    recipe = {"model": params.model.name, "dtype": params.model.dtype,
              "seed": params.seed if seed is None else int(seed), "training": training}
    h.update(json.dumps(recipe, sort_keys=True).encode())
    for s in samples:
        h.update(json.dumps([s.get("sample_id"), s.get("target"), s.get("system"),
                             s.get("user_shared"), s.get("user_persona")]).encode())
    return h.hexdigest()


class _Batches:
    """A fixed list of index batches, as a ``batch_sampler`` accelerate can shard."""

    def __init__(self, batches: list[list[int]], batch_size: int):
        self.batches = batches
        self.batch_size = batch_size

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def _schedule(total_micro: int, n_per_epoch: int, batch_size: int, lengths, seed: int,
              questions: Sequence[str] | None = None):
    """The whole run's micro-batch order: epoch ``e`` is ``length_grouped_batches`` (or, with
    ``questions``, ``question_batches``) seeded (seed, e)."""
    order: list[list[int]] = []
    epoch_of: list[float] = []
    e = 0
    while len(order) < total_micro:
        if questions is not None:
            batches = question_batches(questions, batch_size, seed=[seed, e])
        else:
            batches = length_grouped_batches(lengths, batch_size, seed=[seed, e])
        for j, b in enumerate(batches):
            order.append(b)
            epoch_of.append(e + (j + 1) / n_per_epoch)
        e += 1
    return order[:total_micro], epoch_of[:total_micro]


def _rng_state() -> dict:
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (CPU and any accelerator) with
    ``accelerate.utils.set_seed``; NumPy takes seeds below :math:`2^{32}`, so the seed is taken
    modulo :math:`2^{32}` (a no-op for the seeds in ``params/``)."""
    from accelerate.utils import set_seed

    set_seed(seed % 2**32)


def _checkpoints(ckpt_dir: Path) -> list[Path]:
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.iterdir() if p.is_dir() and p.name.startswith("step-")
                  and (p / "state.pt").is_file() and (p / "meta.json").is_file())


def _save_checkpoint(ckpt_dir: Path, step: int, model, optimizer, scheduler, meta: dict) -> Path:
    """Write ``step-NNNNNNNN/`` atomically (temporary folder, then rename); keep the newest few."""
    import torch
    from peft import get_peft_model_state_dict

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / f"step-{step:08d}"
    with atomic_dir(final) as tmp:
        state = {"adapter": {k: v.detach().cpu() for k, v in get_peft_model_state_dict(model).items()},
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "rng": _rng_state()}
        torch.save(state, tmp / "state.pt")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    for old in _checkpoints(ckpt_dir)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_weights(path: Path, samples: Sequence[dict], weights) -> None:
    """``train_weights.csv``: each training subgroup's loss weight and its number of samples."""
    per: dict[str, list] = {}
    for smp, w in zip(samples, weights):
        per.setdefault(str(smp["subgroup"]), []).append(float(w))
    with atomic_path(path) as tmp:
        with tmp.open("w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["subgroup", "n_samples", "weight"])
            for g in sorted(per):
                w.writerow([g, len(per[g]), round(float(np.mean(per[g])), 6)])


def _write_log(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
            w.writeheader()
            w.writerows(rows)


def _append_log(path: Path, row: dict) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
        if new:
            w.writeheader()
        w.writerow(row)


def _read_table(path: Path, columns, what: str, how: str):
    """A CSV the trainer wrote, checked for its columns; a clear error naming the file otherwise."""
    import pandas as pd

    if not path.is_file():
        raise TrainError(f"{path}: no {what}; run {how} first")
    table = pd.read_csv(path)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise TrainError(f"{path}: missing column(s) {missing}; expected {list(columns)}")
    return table


def read_train_log(run_dir: str | Path):
    """``<run_dir>/train_log.csv`` as a DataFrame (columns :data:`LOG_COLUMNS`)."""
    return _read_table(Path(run_dir) / "train_log.csv", LOG_COLUMNS, "training log", "`sgvalues train`")


def _summary_matches(run_dir: Path, fingerprint: str) -> bool:
    summary = run_dir / "train_summary.json"
    adapter = run_dir / "adapter"
    if not (summary.is_file() and (adapter / "adapter_config.json").is_file()):
        return False
    try:
        return json.loads(summary.read_text()).get("fingerprint") == fingerprint
    except (OSError, ValueError):
        return False


def train_run(params, run_dir: str | Path, *, on_step: Callable[[dict], None] | None = None,
              force: bool = False, verbose: bool = True, seed: int | None = None,
              out_dir: str | Path | None = None) -> Path:
    """Fine-tune ``params.model`` with LoRA on the run's train samples; return the adapter folder.

    Writes ``<out_dir>/adapter/``, ``train_log.csv`` and ``train_summary.json``; checkpoints in
    ``<out_dir>/checkpoints/`` (removed once the adapter is saved). Skips training when an
    adapter for the same inputs exists (``force=True`` retrains); resumes from the newest
    checkpoint of an interrupted run with the same inputs.

    ``seed`` is the training seed: LoRA initialisation, batch order and dropout (default
    ``params.seed``). The samples and questions always follow ``params.seed``, so adapters of
    different training seeds learn from the same samples (:func:`train_over_seeds`).
    ``out_dir`` (default ``run_dir``) holds what training writes; the data are read from
    ``<run_dir>/data``.

    ``on_step(row)`` is called on the main process after each optimizer step with the log row
    (tests use it to simulate a crash).
    """
    import torch
    from accelerate import Accelerator
    from peft import set_peft_model_state_dict
    from transformers import get_linear_schedule_with_warmup

    run_dir = Path(run_dir)
    t = params.training
    train_seed = params.seed if seed is None else int(seed)
    samples = load_train_samples(params, run_dir)
    fingerprint = inputs_fingerprint(params, samples, train_seed)
    run_dir_data = run_dir
    run_dir = Path(out_dir) if out_dir is not None else run_dir  # where training writes
    run_dir.mkdir(parents=True, exist_ok=True)
    adapter_dir = run_dir / "adapter"
    if not force and _summary_matches(run_dir, fingerprint):
        if verbose:
            print(f"adapter for these inputs exists: {adapter_dir} (skipping training)")
        return adapter_dir

    cuda = torch.cuda.is_available() and params.model.device in ("auto", "cuda")
    if not cuda and params.model.cpu_threads:
        # the same thread count as evaluation (model.cpu_threads): on a shared two-core
        # machine one thread is several times faster than two fighting other processes
        torch.set_num_threads(int(params.model.cpu_threads))
    dtype = _dtype(params, cuda)
    mixed = "bf16" if cuda and dtype == torch.bfloat16 else "fp16" if cuda and dtype == torch.float16 else "no"
    accelerator = Accelerator(cpu=not cuda, mixed_precision=mixed)
    main_proc = accelerator.is_main_process
    world = accelerator.num_processes
    _seed_all(train_seed)

    started = time.time()
    model, tokenizer = build_model(params, dtype=dtype)
    encode = encode_distribution_sample if t.objective == "distribution" else encode_sample
    examples = [encode(tokenizer, s) for s in samples]
    if t.reweight != "none":
        nmae = base_subgroup_nmae(params, run_dir_data) if t.reweight == "error" else None
        weights = sample_weights(samples, t.reweight, nmae)
        examples = [dataclasses.replace(e, weight=float(w)) for e, w in zip(examples, weights)]
        if main_proc:
            _write_weights(run_dir / "train_weights.csv", samples, weights)
    lengths = [len(e) for e in examples]
    questions = [str(s["question_id"]) for s in samples] if t.share_prefix else None
    if questions is not None:
        n_per_epoch = len(question_batches(questions, t.batch_size, seed=[train_seed, 0]))
    else:
        n_per_epoch = math.ceil(len(examples) / t.batch_size)
    if t.max_steps is not None:
        total_steps = t.max_steps
    else:
        total_steps = max(1, math.ceil(math.ceil(n_per_epoch * t.epochs) / (t.grad_accum * world)))
    total_micro = total_steps * t.grad_accum * world
    order, epoch_of = _schedule(total_micro, n_per_epoch, t.batch_size, lengths, train_seed,
                                questions)
    collate_fn = collate_shared if t.share_prefix else collate
    if t.objective == "distribution":
        loss_fn = distribution_loss
    else:
        loss_fn = shared_prefix_loss if t.share_prefix else answer_loss

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=t.lr, weight_decay=0.0)
    warmup = int(round(t.warmup_ratio * total_steps))
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    loader = torch.utils.data.DataLoader(
        examples, batch_sampler=_Batches(order, t.batch_size),
        collate_fn=lambda b: collate_fn(b, tokenizer.pad_token_id),
        generator=torch.Generator().manual_seed(train_seed),  # keeps the global RNG untouched
    )
    # the scheduler is stepped by hand once per optimizer step (accelerate would step it
    # once per process)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    ckpt_dir = run_dir / "checkpoints"
    log_path = run_dir / "train_log.csv"
    start_step, tokens, elapsed_before, resumed_from = 0, 0, 0.0, None
    ckpts = _checkpoints(ckpt_dir)
    if ckpts:
        meta = json.loads((ckpts[-1] / "meta.json").read_text())
        if meta.get("fingerprint") == fingerprint and meta.get("world") == world:
            state = torch.load(ckpts[-1] / "state.pt", map_location="cpu", weights_only=False)
            set_peft_model_state_dict(accelerator.unwrap_model(model), state["adapter"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start_step, tokens = meta["step"], meta["tokens"]
            elapsed_before, resumed_from = meta["elapsed"], str(ckpts[-1].name)
            rng = state["rng"]
        else:
            if main_proc:
                print(f"{ckpt_dir}: checkpoints are for other inputs; starting afresh")
                shutil.rmtree(ckpt_dir, ignore_errors=True)
            ckpts = []
    accelerator.wait_for_everyone()
    if main_proc:
        if start_step:
            rows = read_train_log(run_dir).to_dict("records") if log_path.is_file() else []
            _write_log(log_path, [r for r in rows if r["step"] <= start_step])
        elif log_path.exists():
            log_path.unlink()
        if verbose:
            where = f"resuming from {resumed_from}" if resumed_from else "from scratch"
            print(f"training {params.model.name}: {len(examples)} samples, {total_steps} steps "
                  f"on {accelerator.device} ({dtype}, {world} process(es)), {where}")

    batches = iter(accelerator.skip_first_batches(loader, start_step * t.grad_accum)
                   if start_step else loader)
    if resumed_from:
        _set_rng_state(rng)  # after the loader is set up, so both runs draw the same stream
    model.train()
    t0 = time.time()
    step, in_step = start_step, False
    loss_value = float("nan")
    try:
        while step < total_steps:
            in_step = True
            micro = [next(batches) for _ in range(t.grad_accum)]
            # the loss's denominator: answer tokens (modal) or samples (distribution)
            n_answer = sum(len(b["soft"]) if "soft" in b else int((b["labels"] != IGNORE_INDEX).sum())
                           for b in micro)
            step_loss = torch.zeros((), device=accelerator.device)
            for j, batch in enumerate(micro):
                sync = j == len(micro) - 1
                ctx = accelerator.no_sync(model) if not sync else contextlib.nullcontext()
                with ctx:
                    loss_sum, _ = loss_fn(model, batch)
                    loss = loss_sum / max(n_answer, 1)
                    accelerator.backward(loss)
                step_loss += loss.detach()
                # tokens through the model: a shared prefix counts once
                real = batch["attention_mask"][:, -batch["input_ids"].shape[1]:].sum()
                if "prefix_ids" in batch:
                    real = real + batch["prefix_ids"].shape[1]
                tokens += int(accelerator.gather(real).sum())
            accelerator.clip_grad_norm_(trainable, MAX_GRAD_NORM)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            in_step = False
            loss_value = float(accelerator.reduce(step_loss, reduction="mean"))
            elapsed = elapsed_before + time.time() - t0
            row = {"step": step, "epoch": round(epoch_of[step * t.grad_accum * world - 1], 6),
                   "loss": round(loss_value, 6), "lr": lr, "tokens": tokens,
                   "elapsed": round(elapsed, 3)}
            if main_proc:
                _append_log(log_path, row)
                if t.save_every and step % t.save_every == 0 and step < total_steps:
                    _save_checkpoint(ckpt_dir, step, accelerator.unwrap_model(model), optimizer,
                                     scheduler, _meta(fingerprint, step, t, tokens, elapsed, world))
                if on_step is not None:
                    on_step(row)
            accelerator.wait_for_everyone()
    except KeyboardInterrupt:
        # between steps the state is consistent: keep it, so the next call resumes here
        if main_proc and not in_step and step > start_step:
            elapsed = elapsed_before + time.time() - t0
            path = _save_checkpoint(ckpt_dir, step, accelerator.unwrap_model(model), optimizer,
                                    scheduler, _meta(fingerprint, step, t, tokens, elapsed, world))
            print(f"interrupted: saved {path}; run again to resume")
        raise

    elapsed = elapsed_before + time.time() - t0
    if main_proc:
        _save_adapter(accelerator.unwrap_model(model), adapter_dir)
        summary = {
            "fingerprint": fingerprint, "model": params.model.name, "n_samples": len(examples),
            "samples_seen": int(sum(len(b) for b in order)),
            # the samples' own tokens, as an unshared, unpadded forward would see them: the
            # work done, in the same unit whatever the batching (shared prefixes count per sample)
            "sample_tokens": int(sum(lengths[i] for b in order for i in b)),
            "samples_per_s": round(sum(len(b) for b in order) / max(elapsed, 1e-9), 3),
            "n_steps": total_steps, "final_loss": loss_value, "tokens": tokens,
            "train_seconds": round(elapsed, 3), "tokens_per_s": round(tokens / max(elapsed, 1e-9), 1),
            "wall_seconds_with_load": round(time.time() - started, 3),
            "device": str(accelerator.device), "dtype": str(dtype).replace("torch.", ""),
            "world_size": world, "resumed_from": resumed_from,
            "recipe": params.to_dict()["training"], "seed": train_seed,
            "trainable_parameters": int(sum(p.numel() for p in trainable)),
            "objective": t.objective, "reweight": t.reweight,
            "weight_min": round(min(e.weight for e in examples), 6),
            "weight_max": round(max(e.weight for e in examples), 6),
        }
        (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        if verbose:
            print(f"saved {adapter_dir} after {total_steps} steps, final loss {loss_value:.4f}, "
                  f"{summary['tokens_per_s']:.0f} tokens/s")
    accelerator.wait_for_everyone()
    return adapter_dir


def _meta(fingerprint: str, step: int, t, tokens: int, elapsed: float, world: int) -> dict:
    return {"fingerprint": fingerprint, "step": step, "micro_batches_done": step * t.grad_accum * world,
            "tokens": tokens, "elapsed": round(elapsed, 3), "world": world}


def _save_adapter(model, adapter_dir: Path) -> None:
    """peft ``save_pretrained`` into a temporary folder, then rename into place."""
    with atomic_dir(adapter_dir) as tmp:
        model.save_pretrained(tmp)


# ----------------------------------------------------------------------------- reporting


def _setting_text(v) -> str:
    """A recipe setting as a reader reads it: "-" when unset, whole floats without ".0" (epochs 1)."""
    if v is None:
        return "-"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def recipe_table(params, published_recipe: dict | None = None):
    """The training recipe as a tidy table (``setting, ours``; plus ``published`` if given)."""
    import pandas as pd

    t = params.training
    rows = [("model", params.model.name), ("learning rate", t.lr), ("epochs", t.epochs),
            ("max steps", t.max_steps), ("questions", t.questions), ("max samples", t.max_samples),
            ("LoRA r / alpha / dropout", f"{t.lora_r} / {t.lora_alpha} / {t.lora_dropout}"),
            ("target modules", ", ".join(t.target_modules)),
            ("batch size x grad accum", f"{t.batch_size} x {t.grad_accum}"),
            ("shared-prefix batches", t.share_prefix),
            ("objective", t.objective), ("loss weights (reweight)", t.reweight),
            ("warm-up ratio", t.warmup_ratio), ("checkpoint every (steps)", t.save_every),
            ("seed", params.seed),
            ("training seeds (spread)", ", ".join(str(s) for s in training_seeds(params)))]
    table = pd.DataFrame(rows, columns=["setting", "ours"])
    table["ours"] = table["ours"].map(_setting_text)
    if published_recipe:
        pub = {"learning rate": published_recipe.get("lr"), "epochs": published_recipe.get("epochs")}
        table["published"] = table["setting"].map(lambda s: _setting_text(pub.get(s)))
    return table


def plot_training_curve(log, ax=None, smooth: int = 10):
    """Training loss per optimizer step (light) and its running mean over ``smooth`` steps."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.plot(log["step"], log["loss"], alpha=0.35, lw=1, label="loss per step")
    if len(log) >= smooth > 1:
        ax.plot(log["step"], log["loss"].rolling(smooth, min_periods=1).mean(), lw=2,
                label=f"running mean ({smooth} steps)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("answer-token cross-entropy")
    ax.set_title("LoRA SFT training curve")
    ax.legend()
    return ax


def evaluate_questions(params, run_dir: str | Path, split: str, tag: str,
                       questions: Sequence[str] | None, adapter: str | Path | None = None,
                       limit: int | None = None, model=None, cache=True,
                       log: Callable[[str], None] | None = print):
    """Evaluate every sample of ``questions`` in ``split``; write ``predictions/<tag>_<split>.csv``.

    ``sgvalues.evaluate.evaluate_run`` on an explicit set of whole questions (a fresh run
    folder is prepared first): use :func:`training_questions`, so base and fine-tuned model
    answer exactly the samples of the questions training saw (train split) and their unseen
    subgroups (OOD split). ``questions=None`` = the whole split. ``limit`` caps the samples
    (``sgvalues.evaluate.stratified_limit``, seeded by ``params.seed``; ``None`` = all).
    ``tag`` names the file, e.g. ``"base"``, ``"sft"``, ``"base-unseen"``.
    """
    from sgvalues.evaluate import evaluate_run

    if split not in ("ood", "train"):
        raise TrainError(f"split = {split!r}: expected 'ood' or 'train'")
    if not (Path(run_dir) / "data" / f"samples_{split}.jsonl").is_file():
        from sgvalues.prepare import ensure_prepared

        ensure_prepared(params, run_dir)  # a fresh run folder (evaluate_run reads the samples once)
    if questions is None and limit is None:
        limit = sys.maxsize  # the whole split, not evaluation.limit
    return evaluate_run(params, run_dir, split=split, tag=tag, adapter=adapter, limit=limit,
                        cache=cache, model=model, log=log,
                        questions=None if questions is None else list(questions))


#: columns of ``seeds.csv`` (:func:`train_over_seeds`), one row per (training seed, split)
SEED_COLUMNS = ("seed", "split", "tag", "n", "base_accuracy", "sft_accuracy", "accuracy_change",
                "base_nmae", "sft_nmae", "nmae_change")
#: the scores :func:`seed_spread` summarises over seeds
SEED_METRICS = ("accuracy_change", "nmae_change", "sft_accuracy", "sft_nmae")


def training_seeds(params) -> list[int]:
    """The training seeds of a run: ``training.seeds``, or ``[seed]`` when that is unset."""
    seeds = params.training.seeds
    return [params.seed] if seeds is None else [int(s) for s in seeds]


def seed_tag(params, seed: int) -> str:
    """Predictions tag of the adapter trained with ``seed``: ``sft`` for the run's own seed
    (``params.seed``; what chapters 05-07 read), ``sft-seed<seed>`` for the others."""
    return "sft" if int(seed) == params.seed else f"sft-seed{int(seed)}"


def seed_dir(params, run_dir: str | Path, seed: int) -> Path:
    """Where :func:`train_run` writes the adapter of training seed ``seed``: the run folder itself
    for ``params.seed`` (``<run>/adapter``, as ever), ``<run>/adapters/seed-<seed>/`` otherwise."""
    run_dir = Path(run_dir)
    return run_dir if int(seed) == params.seed else run_dir / "adapters" / f"seed-{int(seed)}"


def train_over_seeds(params, run_dir: str | Path, splits: Sequence[str] = ("ood", "train"),
                     limit: int | None = None, force: bool = False, verbose: bool = False,
                     cache=True, log: Callable[[str], None] | None = None):
    """Train one adapter per training seed, evaluate each beside the base model; write ``seeds.csv``.

    Every seed of :func:`training_seeds` trains with :func:`train_run` into :func:`seed_dir`
    (resumable, and skipped when an adapter for the same inputs exists), on the same samples:
    only the LoRA initialisation, the batch order and dropout change with the seed. Each adapter
    then answers the samples of :func:`training_questions` in every split of ``splits``
    (:func:`evaluate_questions`, tag :func:`seed_tag`), as does the base model (tag ``base``);
    ``limit`` and ``cache`` are passed on to it.

    Returns the table written to ``<run_dir>/seeds.csv``: one row per (seed, split), columns
    :data:`SEED_COLUMNS`: the base and fine-tuned scores on the samples both answered, ``n`` of
    them, and the changes base -> SFT. :func:`seed_spread` summarises it over seeds.

    Notes
    -----
    For seed :math:`s` and split :math:`d`, ``accuracy_change`` is
    :math:`\\mathrm{acc}(\\mathrm{SFT}_s, d) - \\mathrm{acc}(\\mathrm{base}, d)` and ``nmae_change``
    likewise; a recipe is stable when these agree across seeds.
    """
    import pandas as pd

    from sgvalues import metrics
    from sgvalues.evaluate import load_predictions, predictions_path

    run_dir = Path(run_dir)
    questions = training_questions(params, run_dir)
    rows = []
    for split in splits:
        evaluate_questions(params, run_dir, split, "base", questions, limit=limit, cache=cache, log=log)
    for seed in training_seeds(params):
        adapter = train_run(params, run_dir, seed=seed, out_dir=seed_dir(params, run_dir, seed),
                            force=force, verbose=verbose)
        tag = seed_tag(params, seed)
        for split in splits:
            evaluate_questions(params, run_dir, split, tag, questions, adapter=adapter, limit=limit,
                               cache=cache, log=log)
            base = load_predictions(predictions_path(run_dir, "base", split))
            sft = load_predictions(predictions_path(run_dir, tag, split))
            common = set(base["sample_id"]) & set(sft["sample_id"])
            score = {name: metrics.aggregate(df[df["sample_id"].isin(common)], None).iloc[0]
                     for name, df in (("base", base), ("sft", sft))}
            rows.append({"seed": int(seed), "split": split, "tag": tag, "n": len(common),
                         **{f"{state}_{m}": float(score[state][m]) for state in ("base", "sft")
                            for m in ("accuracy", "nmae")}})
    table = pd.DataFrame(rows, columns=[c for c in SEED_COLUMNS if c not in ("accuracy_change", "nmae_change")])
    table["accuracy_change"] = table["sft_accuracy"] - table["base_accuracy"]
    table["nmae_change"] = table["sft_nmae"] - table["base_nmae"]
    table = table[list(SEED_COLUMNS)]
    with atomic_path(run_dir / "seeds.csv") as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    return table


def read_seeds(run_dir: str | Path):
    """``<run_dir>/seeds.csv`` (:func:`train_over_seeds`) as a DataFrame; checks its columns."""
    return _read_table(Path(run_dir) / "seeds.csv", SEED_COLUMNS, "seed table", "train.train_over_seeds")


def seed_spread(seeds):
    """Mean, minimum, maximum and range over training seeds of each split's scores.

    ``seeds`` is :func:`train_over_seeds`' table. One row per (``split``, ``metric``) of
    :data:`SEED_METRICS`, columns ``n_seeds, mean, min, max, range`` (``range`` = max - min).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"seed": [0, 1], "split": "ood", "accuracy_change": [0.5, 0.3],
    ...                   "nmae_change": [-0.3, -0.1], "sft_accuracy": [0.8, 0.6], "sft_nmae": [0.1, 0.3]})
    >>> s = seed_spread(t).set_index("metric")
    >>> int(s.loc["accuracy_change", "n_seeds"]), s.loc["accuracy_change", ["mean", "range"]].round(3).tolist()
    (2, [0.4, 0.2])
    """
    import pandas as pd

    rows = []
    for split, g in seeds.groupby("split", sort=False):
        for m in SEED_METRICS:
            v = g[m].astype(float)
            rows.append({"split": split, "metric": m, "n_seeds": int(g["seed"].nunique()),
                         "mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
                         "range": float(v.max() - v.min())})
    return pd.DataFrame(rows, columns=["split", "metric", "n_seeds", "mean", "min", "max", "range"])


def before_after(run_dir: str | Path, splits: Sequence[str] = ("ood", "train"),
                 by: str | None = "stratum", suffix: str = ""):
    """Base vs SFT metrics from ``<run_dir>/predictions/{base,sft}_<split>.csv``, tidy.

    Columns: ``split``, ``by`` (``"all"`` rows included), ``tag`` (``base``/``sft``),
    ``accuracy``, ``nmae``, ``refusal_rate``, ``n``. Only samples evaluated under both tags
    count, so a limited evaluation compares like with like. ``suffix`` reads
    ``base<suffix>_<split>.csv`` and ``sft<suffix>_<split>.csv`` (tags stay ``base``/``sft``).
    """
    import pandas as pd

    from sgvalues import metrics
    from sgvalues.evaluate import load_predictions, predictions_path

    parts = []
    for split in splits:
        frames = {}
        for tag in ("base", "sft"):
            path = predictions_path(run_dir, tag + suffix, split)
            if not path.is_file():
                raise TrainError(f"{path}: no predictions; run evaluate_run(..., split={split!r}, tag={tag!r})")
            frames[tag] = load_predictions(path)
        common = set(frames["base"]["sample_id"]) & set(frames["sft"]["sample_id"])
        for tag, df in frames.items():
            df = df[df["sample_id"].isin(common)]
            overall = metrics.aggregate(df, None)
            if by:
                overall.insert(0, by, "all")
                table = pd.concat([overall, metrics.aggregate(df, by)], ignore_index=True)
            else:
                table = overall
            parts.append(table.assign(split=split, tag=tag))
    out = pd.concat(parts, ignore_index=True)
    lead = ["split"] + ([by] if by else []) + ["tag"]
    return out[lead + [c for c in out.columns if c not in lead]]


def gain_table(table, published_sft: dict | None = None, label: str = "ours",
               what: str = "OOD accuracy gain, base -> SFT"):
    """OOD accuracy gain (points) base -> SFT, ours beside the published figures.

    ``table`` is :func:`before_after`'s output; ``published_sft`` is ``published()["sft"]``.
    """
    import pandas as pd

    rows = table[(table["split"] == "ood")]
    if "stratum" in rows.columns:
        rows = rows[rows["stratum"] == "all"]
    acc = rows.set_index("tag")["accuracy"]
    out = [{"source": label, "what": what,
            "gain_points": round(100 * (acc["sft"] - acc["base"]), 1)}]
    if published_sft:
        out.append({"source": "published", "what": "mean over the paper's fine-tuned models",
                    "gain_points": published_sft["mean_ood_accuracy_gain_points"]})
        out.append({"source": "published", "what": f"largest: {published_sft['largest_gain_model']}",
                    "gain_points": published_sft["largest_gain_points"]})
    return pd.DataFrame(out)


def plot_before_after(table, by: str = "stratum"):
    """Accuracy and NMAE per ``by`` group, base vs SFT, one row of panels per split."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    splits = list(dict.fromkeys(table["split"]))
    fig, axes = plt.subplots(len(splits), 2, figsize=(11, 3.2 + 2.2 * len(splits)), squeeze=False)
    for r, split in enumerate(splits):
        sub = table[table["split"] == split]
        for c, metric in enumerate(("accuracy", "nmae")):
            ax = axes[r, c]
            sns.barplot(data=sub, y=by, x=metric, hue="tag", ax=ax, orient="h",
                        hue_order=["base", "sft"])
            ax.set_title(f"{split}: {'accuracy (higher is better)' if c == 0 else 'NMAE (lower is better)'}")
            ax.set_ylabel("" if c else by)
            if c:
                ax.set_yticklabels([])
            if r or c:
                ax.get_legend().remove() if ax.get_legend() else None
    fig.tight_layout()
    return fig


def plot_gain(gains, label_published: str = "published"):
    """Bars of the OOD accuracy gain: ours and the published mean and largest gain."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.8))
    names = [f"{w}\n{label_published if s == 'published' else s}" for s, w in zip(gains["source"], gains["what"])]
    colors = ["C0" if s != "published" else "0.6" for s in gains["source"]]
    ax.barh(names, gains["gain_points"], color=colors)
    for y, v in enumerate(gains["gain_points"]):
        ax.text(v, y, f" {v:+.1f}", va="center")
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xlabel("OOD accuracy gain (percentage points)")
    ax.invert_yaxis()
    ax.set_title("Base -> SFT on the OOD subgroups")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", required=True, help="params YAML (params/<model>.yaml)")
    parser.add_argument("--run-dir", required=True,
                        help="run folder holding data/ (prepared); adapter/ is written here")
    parser.add_argument("--force", action="store_true", help="retrain even if the adapter exists")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="override training.max_steps (e.g. a quick check)")
    parser.add_argument("--all-seeds", action="store_true",
                        help="train one adapter per training.seeds (the run's seed into adapter/, the "
                             "others into adapters/seed-<s>/); evaluate them with train.train_over_seeds")


def main(args: argparse.Namespace) -> int:
    import dataclasses

    from sgvalues.params import load_params

    params = load_params(args.params)
    if not params.training.enabled:
        print(f"{args.params}: training.enabled is false; nothing to do")
        return 0
    if args.max_steps is not None:
        params = dataclasses.replace(
            params, training=dataclasses.replace(params.training, max_steps=args.max_steps))
    try:
        seeds = training_seeds(params) if getattr(args, "all_seeds", False) else [params.seed]
        for seed in seeds:
            train_run(params, args.run_dir, force=args.force, seed=seed,
                      out_dir=seed_dir(params, args.run_dir, seed))
    except (TrainError, FileNotFoundError, ValueError) as exc:
        print(f"sgvalues train: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # `accelerate launch -m sgvalues.train ...`
    _parser = argparse.ArgumentParser(prog="sgvalues.train", description=__doc__.splitlines()[0])
    configure_parser(_parser)
    sys.exit(main(_parser.parse_args()))
