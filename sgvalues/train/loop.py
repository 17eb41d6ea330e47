"""Stages 3-6 of training: build the model, train, save the adapter, log.

:func:`build_model` loads the base model (bf16 on CUDA, fp32 on CPU) and adds a fresh peft LoRA
adapter; :func:`train_run` fine-tunes it on the run's train samples (length-grouped batches,
answer-only logits, AdamW with linear warm-up/decay, a checkpoint every ``save_every``
optimizer steps, resumed after a crash) and writes ``adapter/``, ``train_log.csv`` and
``train_summary.json``. The package docstring (:mod:`sgvalues.train`) describes the recipe.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import math
import random
import shutil
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from sgvalues.atomic import atomic_dir, atomic_path
from sgvalues.train.batches import collate, collate_shared, length_grouped_batches, question_batches
from sgvalues.train.data import TrainError, load_train_samples
from sgvalues.models.chat import record_rendering, rendering_for
from sgvalues.models.loading import model_where
from sgvalues.train.encode import IGNORE_INDEX, encode_distribution_sample, encode_sample
from sgvalues.train.losses import answer_loss, distribution_loss, shared_prefix_loss
from sgvalues.train.weights import base_subgroup_nmae, sample_weights

__all__ = [
    "LOG_COLUMNS",
    "resolve_model_path",
    "build_model",
    "inputs_fingerprint",
    "train_run",
    "read_train_log",
    "read_run_table",
]

#: columns of ``train_log.csv``
LOG_COLUMNS = ("step", "epoch", "loss", "lr", "tokens", "elapsed")
#: gradient-norm clip (alignment-handbook default)
MAX_GRAD_NORM = 1.0
#: checkpoints kept on disk (the newest ones)
KEEP_CHECKPOINTS = 2


# ----------------------------------------------------------------------------- stage 3: model


def resolve_model_path(name: str) -> str:
    """``"smollm2-135m"`` -> the embedded model's cached folder; anything else unchanged
    (a missing folder is a :class:`~sgvalues.models.loading.ModelLoadError`)."""
    from sgvalues.models.loading import resolve_model_path as resolve
    from sgvalues.params import ModelSpec

    return resolve(ModelSpec(name=name))[0]


def _weights_spec(spec):
    """The model spec whose weights training loads: the ``embedded`` backend's model, or for the
    ``dummy`` backend (no weights) the tiny random Llama-family model of
    :mod:`sgvalues.models.tiny`, so a dry run trains real LoRA adapters, quickly."""
    import dataclasses

    if spec.backend == "embedded":
        from sgvalues.models.embedded import EMBEDDED_NAME

        name = EMBEDDED_NAME
    elif spec.backend == "dummy":
        from sgvalues.models.tiny import tiny_model_dir

        name = str(tiny_model_dir("llama"))
    elif spec.backend == "hf":
        return spec
    else:
        raise TrainError(f"model.backend = {spec.backend!r}: LoRA training needs local weights (backend hf, "
                         "embedded or dummy); train with the hf backend, then serve the adapter")
    out = dataclasses.replace(spec, name=name)
    object.__setattr__(out, "origin", getattr(spec, "origin", None))
    return out


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
    from transformers import AutoModelForCausalLM

    from sgvalues.models import loading
    from sgvalues.models.embedded import quiet_transformers

    quiet_transformers()
    t = params.training
    spec = _weights_spec(params.model)
    path, _ = loading.resolve_model_path(spec)
    tokenizer = loading.load_tokenizer(path, spec)
    dtype = dtype or torch.float32
    device = "cuda" if torch.cuda.is_available() and spec.device in ("auto", "cuda") else "cpu"
    loading.check_memory(path, spec, str(dtype).replace("torch.", ""), device)
    with loading.load_errors(spec):
        base = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
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
    if training.get("reweight") == "inverse_size":
        # issue 22 changed the rule to N_s / (G_s n_g): adapters trained under the old one are stale
        recipe["inverse_size_rule"] = 2
    if params.model.system_role != "auto" or params.model.backend != "hf":
        # added later: left out at the defaults so earlier adapters stay valid
        recipe.update(system_role=params.model.system_role, backend=params.model.backend)
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


def read_run_table(path: Path, columns, what: str, how: str):
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
    return read_run_table(Path(run_dir) / "train_log.csv", LOG_COLUMNS, "training log", "`sgvalues train`")


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
    ``<run_dir>/data``, which the data stages wrote (``sgvalues prepare``, notebooks 01-03, or
    ``sgvalues train`` for a fresh run folder): training never prepares it, and raises
    :class:`~sgvalues.train.data.TrainError` naming the missing samples file.

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
    rendering = rendering_for(tokenizer, params.model.system_role, model_where(params.model, "system_role", value=False))
    if main_proc:
        record_rendering(run_dir_data, "training", rendering)
    examples = [encode(tokenizer, s, rendering=rendering) for s in samples]
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
