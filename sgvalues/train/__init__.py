"""LoRA supervised fine-tuning on the structured train samples (``sgvalues train``).

The model learns to answer a persona-prompted survey question with the bare option code, in
exactly the format evaluation reads: the structured chat (``prompts.structured_messages``)
rendered with the chat template and its generation prompt, then the code and the template's
end-of-turn (``"3<|im_end|>"`` for SmolLM2). Only those answer tokens carry loss.

Stages (alignment-handbook style), each a function you can call on its own:

1. **load data** -- :func:`load_train_samples`: ``<run>/data/samples_train.jsonl``, restricted
   to every train subgroup of ``training.questions`` questions by :func:`select_questions`
   (stratified by theme, seeded), then thinned to ``training.max_samples`` by
   :func:`select_samples` (stratified by subgroup and question, seeded). Training reads what
   the data stages wrote and never prepares it: a run folder without samples is a
   :class:`TrainError` naming the file and the commands that write it (the ``sgvalues train``
   command prepares a fresh run folder from its params before training). Under
   ``split.questions: holdout`` the questions are chosen among those :func:`question_split`
   leaves to training (whole themes held out, near-duplicates of them dropped);
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

Modules
-------
:mod:`~sgvalues.train.data`
    the train samples and questions (stage 1), the question holdout (:func:`question_split`),
    :class:`TrainError`, :func:`evaluate_questions`.
:mod:`~sgvalues.train.encode`
    tokenisation with answer-only labels (stage 2), :class:`EncodedExample`.
:mod:`~sgvalues.train.batches`
    length-grouped and per-question batches; left-padded and shared-prefix collation.
:mod:`~sgvalues.train.losses`
    answer, shared-prefix and distribution losses.
:mod:`~sgvalues.train.weights`
    the loss weights of ``training.reweight``.
:mod:`~sgvalues.train.loop`
    the model (stage 3), :func:`train_run` with checkpoints and resume (stages 4-6), the log.
:mod:`~sgvalues.train.seeds`
    one adapter per training seed and their spread.
:mod:`~sgvalues.train.results`
    the recipe, base vs fine-tuned and the OOD gain as tables (their figures are in
    :mod:`sgvalues.report.figures` and :mod:`sgvalues.report.chapters`).
:mod:`~sgvalues.train.cli`
    ``sgvalues train`` (also ``python -m sgvalues.train``).

Example
-------
>>> batches = length_grouped_batches([5, 9, 6, 8], batch_size=2, seed=0)
>>> sorted(sorted(b) for b in batches)
[[0, 2], [1, 3]]
"""

from sgvalues.train.batches import collate, collate_shared, length_grouped_batches, question_batches
from sgvalues.train.cli import configure_parser, main
from sgvalues.train.data import (QUESTION_SPLIT_FILE, TrainError, evaluate_questions, load_train_samples,
                                 question_split, select_questions, select_samples, training_questions,
                                 unseen_questions)
from sgvalues.train.encode import (IGNORE_INDEX, EncodedExample, answer_completion, encode_distribution_sample,
                                   encode_sample, option_code_tokens)
from sgvalues.train.loop import LOG_COLUMNS, build_model, inputs_fingerprint, read_train_log, resolve_model_path, train_run
from sgvalues.train.losses import answer_loss, distribution_loss, shared_prefix_loss
from sgvalues.train.results import before_after, gain_table, recipe_table
from sgvalues.train.seeds import (SEED_COLUMNS, SEED_METRICS, read_seeds, seed_dir, seed_spread, seed_tag, train_over_seeds,
                                  training_seeds)
from sgvalues.train.weights import base_subgroup_nmae, sample_weights

__all__ = [
    "IGNORE_INDEX",
    "LOG_COLUMNS",
    "TrainError",
    "EncodedExample",
    "resolve_model_path",
    "load_train_samples",
    "select_samples",
    "select_questions",
    "QUESTION_SPLIT_FILE",
    "question_split",
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
    "SEED_METRICS",
    "training_seeds",
    "seed_tag",
    "seed_dir",
    "train_over_seeds",
    "read_seeds",
    "seed_spread",
    "read_train_log",
    "recipe_table",
    "before_after",
    "gain_table",
    "configure_parser",
    "main",
]
