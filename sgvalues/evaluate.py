"""Structured evaluation: every (question, subgroup) sample -> one row of the predictions table.

Three modes (``params.evaluation.mode``, :data:`sgvalues.models.base.ANSWER_MODES`):

``logprob``
    The model's distribution over the question's option codes, read from the next-token
    distribution after the chat template's generation prompt (``sgvalues.models.scoring``:
    multi-token codes such as ``"10"`` are scored by the greedy-longest-code rule, so ``"1"``
    and ``"10"`` share the probability of the token ``"1"`` consistently). The prediction is
    the most probable code; the status is always ``ok`` for a local model. ``raw_output``
    holds the model's single most likely first token (over the whole vocabulary) -- e.g.
    ``"I"`` when it was about to refuse.
``generate``
    A short greedy answer is decoded and its first integer is read as the code
    (``sgvalues.models.base.parse_option``). Refusals ("I cannot", "As an AI", ...) get status
    ``refused``, other answers without a valid code ``unparseable``; both keep the row with a
    missing prediction, so metrics count them as wrong.
``generate_logprob``
    The paper's protocol with the distribution kept: the answer is generated and parsed
    exactly as in ``generate`` (prediction, status -- refusals and unparseable answers count
    as wrong, as the paper counted them -- and ``raw_output`` all come from the text), and the
    option distribution read in the same pass fills ``probs`` so the distributional scores
    (``metrics.distribution_scores``) stay available. One pass per request: hf reads the
    distribution from the generation's own first-step scores; openai from the ``logprobs``/
    ``top_logprobs`` of the same chat completion (``Model.generate_scored``). ``probs`` is
    ``""`` where the backend returned none (a server without logprobs).

A request that fails for good (API errors after retries) has status ``failed``. Answers go
through the on-disk response cache (``sgvalues.models.cache``) as each batch finishes: a re-run
makes no model calls and an interrupted run resumes where it stopped. Failures are not cached,
so a re-run retries them.

The predictions table (``runs/<run>/predictions/<tag>_<split>.csv``) has the columns
:data:`PREDICTION_COLUMNS`.

Example
-------
>>> rows = prediction_row({"probs": {"1": 0.2, "2": 0.8}, "text": None, "error": None, "info": {}},
...                       ["1", "2"], "logprob")
>>> rows["prediction"], rows["status"]
(2, 'ok')
>>> prediction_row({"probs": None, "text": "As an AI I cannot say", "error": None, "info": {}},
...                ["1", "2"], "generate")["status"]
'refused'
>>> r = prediction_row({"probs": {"1": 0.9, "2": 0.1}, "text": "2", "error": None, "info": {}},
...                    ["1", "2"], "generate_logprob")
>>> r["prediction"], r["status"], r["probs"]
(2, 'ok', '{"1": 0.9, "2": 0.1}')
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from sgvalues.manifest import run_label
from sgvalues.tables import distribution_json, json_cell, targets_json, write_csv

__all__ = [
    "PREDICTION_COLUMNS",
    "STATUSES",
    "sample_request",
    "prediction_row",
    "evaluate_samples",
    "evaluate_run",
    "run_samples",
    "stratified_limit",
    "predictions_path",
    "load_predictions",
    "MODEL_STATES",
    "JSON_COLUMNS",
    "load_run_predictions",
    "summarise",
    "status_table",
]

PREDICTION_COLUMNS = [
    "sample_id", "split", "question_id", "theme", "stratum", "subgroup", "levels", "target",
    "scale_min", "scale_max", "prediction", "status", "probs", "raw_output", "model", "adapter",
    "distribution", "targets",
]
STATUSES = ("ok", "refused", "unparseable", "failed")
_SAMPLE_KEYS = ("sample_id", "question_id", "options", "system", "user_shared", "user_persona", "target",
                "scale_min", "scale_max")


def _messages(sample: dict) -> list[dict]:
    try:
        from sgvalues.prompts import structured_messages
    except ImportError:  # pragma: no cover - prompts ships with the package
        return [{"role": "system", "content": sample["system"]},
                {"role": "user", "content": sample["user_shared"] + sample["user_persona"]}]
    return structured_messages(sample)


def _codes(sample: dict) -> list[str]:
    opts = sample["options"]
    if isinstance(opts, str):
        opts = json.loads(opts)
    return sorted((str(c) for c in opts), key=lambda c: (float(c), c))


def _check_sample(sample: dict, i: int) -> None:
    missing = [k for k in _SAMPLE_KEYS if k not in sample]
    if missing:
        sid = sample.get("sample_id", f"#{i}")
        raise ValueError(f"sample {sid}: missing field(s) {missing}; expected the records of "
                         "sgvalues.split.load_samples")


def sample_request(sample: dict, max_new_tokens: int = 8):
    """The :class:`~sgvalues.models.base.ScoreRequest` of a sample (grouped by question)."""
    from sgvalues.models.base import ScoreRequest

    return ScoreRequest(messages=_messages(sample), option_codes=tuple(_codes(sample)),
                        max_new_tokens=max_new_tokens, group=str(sample["question_id"]))


def _probs_json(probs: dict, option_codes: Sequence[str]) -> str:
    return json.dumps({c: round(float(probs.get(c, 0.0)), 6) for c in option_codes})


def prediction_row(answer: dict, option_codes: Sequence[str], mode: str) -> dict:
    """``prediction``, ``status``, ``probs`` (JSON) and ``raw_output`` from one cached answer.

    ``mode`` (one of :data:`~sgvalues.models.base.ANSWER_MODES`) decides where the prediction
    comes from: ``generate_logprob`` and ``generate`` parse the text (``classify_text``), and
    ``generate_logprob`` also keeps the option probabilities in ``probs``; ``logprob`` takes
    the most probable code.
    """
    from sgvalues.models.base import ANSWER_MODES, classify_text

    if mode not in ANSWER_MODES:
        raise ValueError(f"mode must be one of {', '.join(ANSWER_MODES)}, got {mode!r}")
    if answer.get("error"):
        return {"prediction": None, "status": "failed", "probs": "", "raw_output": str(answer["error"])}
    probs = answer.get("probs")
    text = answer.get("text")
    if mode == "generate_logprob":
        if text is None:  # the backend could not generate: no answer to parse
            return {"prediction": None, "status": "failed", "probs": _probs_json(probs, option_codes) if probs else "",
                    "raw_output": "no generated text"}
        status, code = classify_text(text, option_codes)
        return {"prediction": int(code) if code is not None else None, "status": status,
                "probs": _probs_json(probs, option_codes) if probs else "", "raw_output": text}
    if probs:
        # ties go to the first code in scale order, so the choice is deterministic
        best = max(option_codes, key=lambda c: (probs.get(c, 0.0), -option_codes.index(c)))
        raw = text if text is not None else str(answer.get("info", {}).get("top_token", ""))
        probs_json = _probs_json(probs, option_codes)
        return {"prediction": int(best), "status": "ok", "probs": probs_json, "raw_output": raw}
    status, code = classify_text(text, option_codes)
    return {"prediction": int(code) if code is not None else None, "status": status, "probs": "",
            "raw_output": text or ""}


def _request_key(model, request, mode: str, temperature: float) -> str:
    from sgvalues.models.cache import cache_key

    decoding = dict(model.decoding_key())
    # the mode is part of the key; decoding settings matter wherever text is generated
    if mode != "logprob" or not model.exact_logprobs:
        decoding.update(max_new_tokens=request.max_new_tokens, temperature=temperature)
    return cache_key(model=model.model_id, adapter=model.adapter_id, mode=mode,
                     messages=list(request.messages), options=list(request.option_codes), decoding=decoding)


def evaluate_samples(samples: Sequence[dict], model, mode: str = "logprob", batch_size: int = 16,
                     cache=None, temperature: float = 0.0, max_new_tokens: int = 8,
                     chunk_size: int | None = None, log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Evaluate ``samples`` with ``model``; one row per sample, in the samples' order.

    Parameters
    ----------
    samples : records of ``sgvalues.split.load_samples``.
    model : a :class:`~sgvalues.models.base.Model`.
    mode : one of :data:`~sgvalues.models.base.ANSWER_MODES` (``"logprob"``, ``"generate"``,
        ``"generate_logprob"``; see the module docstring).
    batch_size : rows per forward pass (hf); sets the model's ``batch_size`` when it has one.
    cache : a :class:`~sgvalues.models.cache.ResponseCache`, or ``None`` for no caching.
    chunk_size : samples sent to the model per call, after which answers are cached
        (default ``max(64, 4 * batch_size)``); samples of one question stay together.
    """
    from sgvalues.models.base import ANSWER_MODES

    if mode not in ANSWER_MODES:
        raise ValueError(f"mode must be one of {', '.join(ANSWER_MODES)}, got {mode!r}")
    samples = list(samples)
    for i, s in enumerate(samples):
        _check_sample(s, i)
    if hasattr(model, "batch_size"):
        model.batch_size = int(batch_size)
    chunk_size = chunk_size or max(64, 4 * int(batch_size))
    requests = [sample_request(s, max_new_tokens) for s in samples]
    keys = [_request_key(model, r, mode, temperature) for r in requests]
    answers: dict[str, dict] = cache.get_many(keys) if cache is not None else {}
    todo = [i for i, k in enumerate(keys) if k not in answers]
    # keep a question's subgroups in one call so the engine shares their prefix
    by_question: dict[str, list[int]] = {}
    for i in todo:
        by_question.setdefault(str(samples[i]["question_id"]), []).append(i)
    chunks: list[list[int]] = []
    for idxs in by_question.values():
        if chunks and len(chunks[-1]) + len(idxs) <= chunk_size:
            chunks[-1].extend(idxs)
        else:
            chunks.append(list(idxs))
    started, done = time.time(), 0
    for chunk in chunks:
        got = model.answer([requests[i] for i in chunk], mode=mode, temperature=temperature)
        fresh = {}
        for i, a in zip(chunk, got):
            d = a.to_json()
            answers[keys[i]] = d
            if not d.get("error"):
                fresh[keys[i]] = d
        if cache is not None:
            cache.put_many(fresh)  # written per chunk: a crash loses at most this chunk
        done += len(chunk)
        if log is not None:
            rate = done / max(time.time() - started, 1e-9)
            log(f"evaluated {done}/{len(todo)} new samples ({rate:.1f}/s; {len(samples) - len(todo)} cached)")
    rows = []
    for s, r, k in zip(samples, requests, keys):
        row = {
            "sample_id": s["sample_id"], "split": s.get("split", ""), "question_id": s["question_id"],
            "theme": s.get("theme", ""), "stratum": s.get("stratum", ""), "subgroup": s.get("subgroup", ""),
            "levels": json.dumps(s.get("levels", {}), sort_keys=True) if not isinstance(s.get("levels"), str)
            else s["levels"],
            "target": int(s["target"]), "scale_min": s["scale_min"], "scale_max": s["scale_max"],
            # the subgroup's answer distribution, for the distributional scores (metrics)
            "distribution": distribution_json(s.get("distribution")),
            # every tied modal code: any of them is a correct answer (metrics.score_samples)
            "targets": targets_json(s),
        }
        row.update(prediction_row(answers[k], list(r.option_codes), mode))
        row["model"] = model.model_id
        row["adapter"] = model.adapter_id
        rows.append(row)
    df = pd.DataFrame(rows, columns=PREDICTION_COLUMNS)
    df["prediction"] = df["prediction"].astype("Int64")
    return df


def stratified_limit(samples: Sequence[dict], limit: int | None, seed: int = 0) -> list[dict]:
    """A deterministic subset of at most ``limit`` samples, stratified by question and subgroup.

    Questions are visited in a seeded random order and taken whole (every subgroup of the
    question), so every subgroup is judged on the same questions and the engine can share
    each question's prefix; the last question is cut to a seeded random subset of its
    subgroups. The result keeps the input order.

    >>> s = [{"question_id": q, "subgroup": g} for q in "ABC" for g in "xy"]
    >>> sorted({d["question_id"] for d in stratified_limit(s, 4, seed=0)}).__len__()
    2
    """
    samples = list(samples)
    if limit is None or limit >= len(samples):
        return samples
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    rng = np.random.default_rng(seed)
    by_q: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_q.setdefault(str(s["question_id"]), []).append(i)
    questions = sorted(by_q)
    chosen: list[int] = []
    for qi in rng.permutation(len(questions)):
        idxs = by_q[questions[qi]]
        room = limit - len(chosen)
        if room <= 0:
            break
        if len(idxs) <= room:
            chosen += idxs
        else:
            chosen += [idxs[j] for j in sorted(rng.choice(len(idxs), size=room, replace=False))]
    return [samples[i] for i in sorted(chosen)]


def predictions_path(run_dir: str | Path, tag: str, split: str) -> Path:
    """``<run_dir>/predictions/<tag>_<split>.csv``."""
    return Path(run_dir) / "predictions" / f"{tag}_{split}.csv"


def load_predictions(path: str | Path) -> pd.DataFrame:
    """Read a predictions table, checking its columns."""
    path = Path(path)
    df = pd.read_csv(path, dtype={"sample_id": str, "raw_output": str, "probs": str, "adapter": str,
                                  "distribution": str, "targets": str},
                     keep_default_na=False, na_values={"prediction": [""]})
    if "distribution" not in df.columns:  # written before the column existed: no distribution
        df["distribution"] = ""
    if "targets" not in df.columns:  # written before the column existed: the target alone (metrics)
        df["targets"] = ""
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {PREDICTION_COLUMNS}")
    df["prediction"] = pd.to_numeric(df["prediction"], errors="coerce").astype("Int64")
    return df


#: the tags of a model's own predictions (not a baseline, a seed, a probe or a variant)
MODEL_STATES = ("zeroshot", "base", "sft")

#: the predictions columns holding JSON, decoded by :func:`load_run_predictions`
JSON_COLUMNS = ("levels", "probs", "distribution")

#: the columns every stacked predictions table needs
_RUN_REQUIRED = ("sample_id", "question_id", "subgroup", "target", "scale_min", "scale_max", "prediction", "status")

_PREDICTIONS_FILE = re.compile(r"^(?P<tag>[A-Za-z0-9_-]+?)_(?P<split>train|ood)\.csv$")


def load_run_predictions(runs_root: str | Path = "runs", tags: Sequence[str] | None = MODEL_STATES) -> pd.DataFrame:
    """Every run's predictions tables under ``runs_root``, stacked and labelled.

    Reads ``<runs_root>/<run>/predictions/<tag>_<split>.csv`` (split ``ood`` or ``train``; only
    ``tags``, default :data:`MODEL_STATES`; ``None`` = every tag, baselines included) and adds
    ``run`` (the folder name), ``tag`` and ``split`` (from the file name) and ``label``: the
    model's name from the run's manifest (:func:`sgvalues.manifest.run_label`, which falls back to
    ``params.yaml``), else the table's ``model`` column, else the run name. The JSON columns
    (:data:`JSON_COLUMNS`) are decoded once here into dicts (``None`` when blank).

    Raises
    ------
    ValueError
        naming the file and the columns it lacks.

    Returns an empty table with the key columns when no run has predictions.
    """
    root = Path(runs_root)
    frames = []
    for path in sorted(root.glob("*/predictions/*.csv")) if root.is_dir() else []:
        m = _PREDICTIONS_FILE.match(path.name)
        if not m or (tags is not None and m["tag"] not in tags):
            continue
        df = pd.read_csv(path, dtype={c: str for c in ("sample_id", "raw_output", *JSON_COLUMNS)})
        missing = [c for c in _RUN_REQUIRED if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(_RUN_REQUIRED)} "
                             "(a predictions table, ARCHITECTURE.md)")
        run_dir = path.parent.parent
        label = run_label(run_dir)
        if label is None and "model" in df.columns and df["model"].notna().any():
            label = str(df["model"].dropna().iloc[0])
        for c in JSON_COLUMNS:
            if c in df.columns:
                df[c] = df[c].map(json_cell)
        df = df.assign(run=run_dir.name, label=label or run_dir.name, tag=m["tag"], split=m["split"])
        frames.append(df)
    front = ["run", "label", "tag", "split"]
    if not frames:
        return pd.DataFrame(columns=front + [c for c in _RUN_REQUIRED if c != "split"])
    out = pd.concat(frames, ignore_index=True)
    return out[front + [c for c in out.columns if c not in front]]


def _load_split(data_dir: Path, split: str) -> list[dict]:
    from sgvalues.split import load_samples

    return load_samples(data_dir, split)


def _only_questions(samples: list[dict], questions: Sequence[str], path: Path) -> list[dict]:
    """The samples of ``questions``; a clear error naming the file for a question it lacks."""
    keep = {str(q) for q in questions}
    missing = keep - {str(s["question_id"]) for s in samples}
    if missing:
        raise ValueError(f"{path}: no samples for question(s) {sorted(missing)} "
                         f"(expected question ids of this split, e.g. {samples[0]['question_id'] if samples else 'Q1'})")
    return [s for s in samples if str(s["question_id"]) in keep]


def run_samples(params, run_dir: str | Path, split: str, questions: Sequence[str] | None = None,
                limit: int | None = None) -> list[dict]:
    """The samples :func:`evaluate_run` answers: the split's samples of ``questions`` (all when
    ``None``), then at most ``limit`` of them (:func:`stratified_limit`, seeded by ``params.seed``;
    default ``params.evaluation.limit`` when no questions are named, every sample otherwise)."""
    if limit is None and questions is None:
        limit = params.evaluation.limit
    run_dir = Path(run_dir)
    samples = _load_split(run_dir / "data", split)
    if questions is not None:
        samples = _only_questions(samples, questions, run_dir / "data" / f"samples_{split}.jsonl")
    return stratified_limit(samples, limit, seed=params.seed)


def evaluate_run(params, run_dir: str | Path, split: str = "ood", tag: str = "base",
                 adapter: str | Path | None = None, limit: int | None = None, mode: str | None = None,
                 cache=True, model=None, log: Callable[[str], None] | None = print,
                 questions: Sequence[str] | None = None) -> pd.DataFrame:
    """Evaluate one split of a run and write ``<run_dir>/predictions/<tag>_<split>.csv``.

    Parameters
    ----------
    params : ``sgvalues.params.Params``.
    run_dir : the run folder; samples are read from ``<run_dir>/data``.
    split : ``"ood"`` or ``"train"``.
    tag : ``"base"`` (zero-shot) or ``"sft"``.
    adapter : LoRA adapter folder (hf), e.g. ``<run_dir>/adapter``.
    limit : at most this many samples (:func:`stratified_limit`, seeded by ``params.seed``);
        default ``params.evaluation.limit``, or every sample of ``questions`` when given.
    mode : ``"logprob"``/``"generate"``/``"generate_logprob"``; default ``params.evaluation.mode``.
    cache : ``True`` = the default response cache, ``None``/``False`` = none, or a
        :class:`~sgvalues.models.cache.ResponseCache`.
    model : an already loaded model to reuse (otherwise loaded from ``params.model``).
    questions : evaluate only these questions' samples (e.g. the questions a LoRA run trained
        on, ``sgvalues.train.training_questions``); ``None`` = every question of the split.
    """
    from sgvalues.models import load_model
    from sgvalues.models.cache import ResponseCache
    from sgvalues.models.chat import record_rendering

    if split not in ("ood", "train"):
        raise ValueError(f"split must be 'ood' or 'train', got {split!r}")
    ev = params.evaluation
    mode = mode or ev.mode
    run_dir = Path(run_dir)
    samples = run_samples(params, run_dir, split, questions, limit)
    if cache is True:
        cache = ResponseCache()
    elif cache is False:
        cache = None
    own = model is None
    if own:
        model = load_model(params.model, adapter=adapter, batch_size=ev.batch_size)
    record_rendering(run_dir, "model", model.rendering)
    try:
        started = time.time()
        df = evaluate_samples(samples, model, mode=mode, batch_size=ev.batch_size, cache=cache,
                              temperature=ev.temperature, max_new_tokens=ev.max_new_tokens, log=log)
    finally:
        if own:
            model.close()
    out = predictions_path(run_dir, tag, split)
    write_csv(df, out)
    if log is not None:
        s = summarise(df)
        log(f"{out}: {len(df)} samples of {df['question_id'].nunique()} question(s) in "
            f"{time.time() - started:.1f}s; accuracy {s['accuracy']:.3f}, "
            f"NMAE {s['nmae']:.3f}, refusal rate {s['refusal_rate']:.3f}, failed {s['failed']}")
    return df


def summarise(df: pd.DataFrame) -> dict:
    """Overall :func:`sgvalues.metrics.score` of a predictions table and its status counts."""
    from sgvalues.metrics import score

    row = score(df).iloc[0]
    counts = df["status"].value_counts()
    return {"n": int(row["n"]), **{k: float(row[k]) for k in ("accuracy", "nmae", "refusal_rate", "invalid_rate")},
            **{s: int(counts.get(s, 0)) for s in STATUSES}}


def status_table(df: pd.DataFrame) -> pd.DataFrame:
    """Count and share of each status (``ok``, ``refused``, ``unparseable``, ``failed``)."""
    counts = df["status"].value_counts().reindex(list(STATUSES), fill_value=0)
    return pd.DataFrame({"status": list(STATUSES), "n": counts.to_numpy(),
                         "share": counts.to_numpy() / max(len(df), 1)})
