"""The judge stage: generate open-ended answers, judge them in both orders, write ``judge/``.

:func:`judge_run` runs the steps with resumable checkpoints; ``sgvalues judge`` is
:func:`configure_parser` + :func:`main`. The models come from :mod:`sgvalues.models`, imported
lazily so that the rest of the package stays light.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sgvalues.judge.annotation import agreement_table, export_annotation_sheet
from sgvalues.judge.statistics import refusal_table, win_rate_table
from sgvalues.judge.verdicts import (
    JUDGE_SYSTEM,
    DIMENSIONS,
    ROLES,
    judge_messages,
    majority_answer,
    parse_verdict,
    persona_text,
    question_text,
    select_pairs,
    verdict_to_outcome,
)
from sgvalues.models.base import is_refusal
from sgvalues.models.chat import record_rendering

# --------------------------------------------------------------------------------------------
# models (the engine lives in sgvalues.models; imported lazily so this module stays light)
# --------------------------------------------------------------------------------------------


def _request_types():
    """``(GenerateRequest, ScoreRequest)`` of the engine."""
    try:
        from sgvalues.models import GenerateRequest, ScoreRequest
    except ImportError:  # the interface module, when the package does not re-export it
        from sgvalues.models.base import GenerateRequest, ScoreRequest
    return GenerateRequest, ScoreRequest


def _sample_meta(rec: dict) -> dict:
    return {k: rec.get(k) for k in ("sample_id", "question_id", "theme", "stratum", "subgroup")}


def generate_answers(model, pairs: Sequence[dict], role: str, max_new_tokens: int) -> pd.DataFrame:
    """Open-ended answers of one model for the chosen pairs.

    Parameters
    ----------
    model : sgvalues.models.Model
        Anything with ``generate(requests) -> list[str]``.
    pairs : sequence of dict
        Sample records (see :func:`select_pairs`).
    role : str
        One of :data:`ROLES`.
    max_new_tokens : int
        Length limit of each answer.

    Returns
    -------
    pandas.DataFrame
        ``sample_id, question_id, theme, stratum, subgroup, role, text, refused``.
    """
    from sgvalues.prompts import open_messages

    GenerateRequest, _ = _request_types()

    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {ROLES}")
    requests = [GenerateRequest(messages=open_messages(rec), max_new_tokens=max_new_tokens, temperature=0.0)
                for rec in pairs]
    texts = model.generate(requests) if requests else []
    rows = [{**_sample_meta(rec), "role": role, "text": (t or "").strip(), "refused": is_refusal(t)}
            for rec, t in zip(pairs, texts)]
    return pd.DataFrame(rows, columns=["sample_id", "question_id", "theme", "stratum", "subgroup",
                                       "role", "text", "refused"])


_VERDICT_OPTIONS = ("A", "B", "tie")


def _judge_decide(judge, message_lists: list[list[dict]], mode: str, max_new_tokens: int) -> list[tuple[str, str]]:
    """(verdict, raw_output) per prompt, by generation + parsing or by option logprobs."""
    if not message_lists:
        return []
    if mode == "logprob":
        _, ScoreRequest = _request_types()
        reqs = [ScoreRequest(messages=m, option_codes=list(_VERDICT_OPTIONS)) for m in message_lists]
        out = []
        for probs in judge.score_options(reqs):
            if not probs:  # the backend could not read probabilities for this prompt
                out.append(("unparseable", ""))
                continue
            best = max(_VERDICT_OPTIONS, key=lambda o: probs.get(o, float("-inf")))
            out.append((best, json.dumps({k: round(float(v), 6) for k, v in probs.items()})))
        return out
    GenerateRequest, _ = _request_types()
    reqs = [GenerateRequest(messages=m, max_new_tokens=max_new_tokens, temperature=0.0) for m in message_lists]
    return [(parse_verdict(t), t or "") for t in judge.generate(reqs)]


def judge_pairs(judge, pairs: Sequence[dict], generations: pd.DataFrame, dimensions: Sequence[str],
                candidates: Sequence[str] = ("base",), mode: str = "generate",
                max_new_tokens: int = 12) -> pd.DataFrame:
    """Judge every candidate against the reference, per dimension, in both orders.

    Parameters
    ----------
    judge : sgvalues.models.Model
        The judge model (``generate``; or ``score_options`` in ``logprob`` mode).
    pairs : sequence of dict
        Sample records.
    generations : pandas.DataFrame
        Output of :func:`generate_answers` for the reference and each candidate.
    dimensions : sequence of str
        Keys of :data:`DIMENSIONS`.
    candidates : sequence of str
        ``"base"`` and/or ``"sft"``: compared through role ``candidate_<c>``.
    mode : {"generate", "logprob"}
        How the judge decides (see :func:`parse_verdict`; ``logprob`` takes the most likely of
        "A", "B", "tie" and is never unparseable).
    max_new_tokens : int
        Length of the judge's reply in ``generate`` mode.

    Returns
    -------
    pandas.DataFrame
        The verdicts table (module docstring), sorted by candidate, dimension, sample, order.
    """
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"judge dimensions {unknown}: expected some of {list(DIMENSIONS)}")
    text = {(r.sample_id, r.role): r.text for r in generations.itertuples()}
    rows, prompts = [], []
    for cand in candidates:
        role = f"candidate_{cand}"
        for dim in dimensions:
            for rec in pairs:
                sid = rec["sample_id"]
                if (sid, role) not in text or (sid, "reference") not in text:
                    raise ValueError(f"generations: no {role!r} or 'reference' answer for sample {sid!r}")
                persona, question, majority = persona_text(rec), question_text(rec), majority_answer(rec)
                for order in (1, 2):
                    role_a, role_b = (role, "reference") if order == 1 else ("reference", role)
                    prompts.append(judge_messages(persona, question, majority, text[(sid, role_a)],
                                                  text[(sid, role_b)], dim))
                    rows.append({**_sample_meta(rec), "candidate": cand, "dimension": dim, "order": order,
                                 "role_a": role_a, "role_b": role_b})
    # identical prompts (e.g. two identical answers: both orders read the same) are asked once
    keys = [json.dumps(m, sort_keys=True) for m in prompts]
    unique = list(dict.fromkeys(keys))
    first: dict[str, list[dict]] = {}
    for k, m in zip(keys, prompts):
        first.setdefault(k, m)
    answers = dict(zip(unique, _judge_decide(judge, [first[k] for k in unique], mode, max_new_tokens)))
    decided = [answers[k] for k in keys]
    for row, (verdict, raw) in zip(rows, decided):
        row["verdict"] = verdict
        row["outcome"] = verdict_to_outcome(verdict, row["order"])
        row["raw_output"] = raw
    cols = ["sample_id", "question_id", "theme", "stratum", "subgroup", "candidate", "dimension", "order",
            "role_a", "role_b", "verdict", "outcome", "raw_output"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["candidate", "dimension", "sample_id", "order"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------


def _load_model(spec, adapter=None):
    from sgvalues.models import load_model

    return load_model(spec, adapter=adapter) if adapter is not None else load_model(spec)


#: the ModelSpec fields that can change a model's answers (retries, threads, timeouts cannot)
_ANSWER_FIELDS = ("backend", "name", "base_url", "dtype", "adapter", "quantization")


def _spec_dict(spec) -> dict:
    out = {f: getattr(spec, f, None) for f in _ANSWER_FIELDS}
    if getattr(spec, "system_role", "auto") != "auto":  # added later: absent at the default, as before
        out["system_role"] = spec.system_role
    return out


def _same(a, b) -> bool:
    # same answers, whatever the threads/retries/timeouts: one loaded model serves both roles
    return _spec_dict(a) == _spec_dict(b)


class _Parts:
    """Step checkpoints under ``<run_dir>/judge/.parts``: a re-run or a resumed crash skips the
    steps whose inputs (models, adapter hash, prompts, settings) are unchanged, without loading
    any model. Each part is written atomically once its step finishes."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, label: str, key: dict) -> Path:
        from sgvalues.models.cache import cache_key

        return self.folder / f"{label}-{cache_key(**key)[:16]}.jsonl"

    def get(self, label: str, key: dict) -> pd.DataFrame | None:
        f = self.path(label, key)
        if not f.is_file():
            return None
        return pd.DataFrame([json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line])

    def put(self, label: str, key: dict, df: pd.DataFrame) -> None:
        f = self.path(label, key)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp")
        lines = [json.dumps(r, ensure_ascii=False, default=_json_default) for r in df.to_dict("records")]
        tmp.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
        tmp.replace(f)


def _json_default(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def resolve_judge_mode(mode: str, spec) -> str:
    """``auto`` -> ``generate`` for openai judges, ``logprob`` for the others (hf, embedded, dummy:
    exact probabilities).

    Examples
    --------
    >>> from sgvalues.params import ModelSpec
    >>> resolve_judge_mode("auto", ModelSpec(backend="openai", name="m")), resolve_judge_mode("generate", ModelSpec())
    ('generate', 'generate')
    """
    if mode == "auto":
        return "generate" if spec.backend == "openai" else "logprob"
    if mode not in ("generate", "logprob"):
        raise ValueError(f"judge mode {mode!r}: expected 'auto', 'generate' or 'logprob'")
    return mode


def _csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(path)


def judge_run(params, run_dir: str | Path, n_pairs: int | None = None, data_dir: str | Path | None = None,
              log=print) -> dict[str, pd.DataFrame]:
    """Generate, judge and summarise for one run; write ``runs/<run>/judge/``.

    Parameters
    ----------
    params : sgvalues.params.Params
        The run's recipe: ``model`` is the candidate; ``judge.reference`` and ``judge.judge``
        the other two models; ``judge.n_pairs`` (plus ``judge.sensitive_pairs`` drawn from the
        sensitive questions of ``sgvalues.sensitive``), ``judge.max_new_tokens``, ``judge.dimensions``,
        ``judge.judge_mode``, ``judge.judge_max_new_tokens``, ``judge.n_bootstrap``; ``seed``
        seeds the sample of pairs and the bootstrap.
    run_dir : path
        The run folder; samples come from ``<run_dir>/data`` (prepared first if needed) or
        ``data_dir``; the SFT candidate is the model with ``<run_dir>/adapter`` when that exists.
    n_pairs : int, optional
        Override ``params.judge.n_pairs``.
    log : callable or None
        Progress messages.

    Returns
    -------
    dict of pandas.DataFrame
        ``pairs``, ``generations``, ``verdicts``, ``win_rates``, ``refusals`` (each also written
        as CSV under ``<run_dir>/judge/``) and ``timing`` (seconds per stage; not written).

    Notes
    -----
    When the reference is the same model as the base candidate (the embedded default), its
    greedy answers would be identical, so they are copied rather than generated again; the
    base-vs-reference comparison is then a self-comparison whose win rate is exactly 0.5 by
    construction of the swap (a check of the machinery, not a finding). Each step is
    checkpointed under ``judge/.parts`` (see :class:`_Parts`), and the engine's response cache
    makes repeated prompts free as well.
    """
    from sgvalues.split import load_samples

    log = log or (lambda *a, **k: None)
    run_dir = Path(run_dir)
    jp = params.judge
    if data_dir is None:
        from sgvalues.prepare import prepare_run_data

        data_dir = prepare_run_data(params, run_dir)
    data_dir = Path(data_dir)
    n = n_pairs or jp.n_pairs
    out = run_dir / "judge"
    out.mkdir(parents=True, exist_ok=True)
    parts = _Parts(out / ".parts")
    timing: dict[str, float] = {}
    t0 = time.perf_counter()

    samples = load_samples(data_dir, "ood")
    if not samples:
        raise ValueError(f"{data_dir}: no OOD samples; run `sgvalues prepare --out {data_dir}` first")
    pairs = select_pairs(samples, n, seed=params.seed)
    n_sensitive = 0
    if jp.sensitive_pairs:
        from sgvalues.sensitive import sensitive_ids

        ids, taken = sensitive_ids(), {r["sample_id"] for r in pairs}
        pool = [r for r in samples if r["question_id"] in ids and r["sample_id"] not in taken]
        extra = select_pairs(pool, min(jp.sensitive_pairs, len(pool)), seed=params.seed) if pool else []
        n_sensitive = len(extra)
        pairs = sorted(pairs + extra, key=lambda r: r["sample_id"])
    pair_df = pd.DataFrame([{**_sample_meta(r), "persona": persona_text(r), "question": question_text(r),
                             "majority_answer": majority_answer(r)} for r in pairs])
    _csv(pair_df, out / "pairs.csv")
    log(f"judge: {len(pairs)} OOD pairs (of {len(samples)} samples), stratified by theme and stratum"
        + (f", {n_sensitive} of them extra pairs on sensitive questions" if jp.sensitive_pairs else ""))

    adapter = run_dir / "adapter"
    has_sft = (adapter / "adapter_config.json").is_file()
    candidates = ["base"] + (["sft"] if has_sft else [])
    adapter_id = ""
    if has_sft:
        from sgvalues.models.cache import adapter_identity

        adapter_id = adapter_identity(adapter)
    prompt_hash = [json.dumps(_open_messages(r), sort_keys=True) for r in pairs]
    loaded: dict[str, object] = {}

    def model_for(key: str, spec, adapter_path=None, section: str = "model"):
        if key not in loaded:
            loaded[key] = _load_model(spec, adapter=adapter_path)
        record_rendering(run_dir, section, getattr(loaded[key], "rendering", "messages"))
        return loaded[key]

    roles = [("candidate_base", params.model, None, "")]
    if has_sft:
        roles.append(("candidate_sft", params.model, adapter, adapter_id))
    roles.append(("reference", jp.reference, None, ""))
    t1 = time.perf_counter()
    gens = {}
    for role, spec, adapter_path, a_id in roles:
        if role == "reference" and _same(jp.reference, params.model):
            gens[role] = gens["candidate_base"].assign(role="reference")
            log("judge: reference = base candidate model; its greedy answers are the base answers")
            continue
        key = {"step": "generate", "spec": _spec_dict(spec), "adapter": a_id,
               "max_new_tokens": jp.max_new_tokens, "prompts": prompt_hash}
        df = parts.get(role, key)
        if df is None:
            model_key = "base" if _same(spec, params.model) and adapter_path is None else role
            section = "judge.reference" if role == "reference" else "model"
            df = generate_answers(model_for(model_key, spec, adapter_path, section), pairs, role, jp.max_new_tokens)
            parts.put(role, key, df)
            log(f"judge: {role} answered {len(df)} questions")
        else:
            log(f"judge: {role} answers reused from {parts.path(role, key).name}")
        gens[role] = df
        if role == "candidate_sft":  # one adapted copy in memory at a time
            loaded.pop("candidate_sft", None)
    generations = pd.concat([gens[r] for r, *_ in roles], ignore_index=True)
    generations["refused"] = generations["refused"].astype(bool)
    _csv(generations, out / "generations.csv")
    timing["generate_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    mode = resolve_judge_mode(jp.judge_mode, jp.judge)
    frames = []
    for cand in candidates:  # one call per candidate: the dimensions share each prompt's prefix
        sub = generations[generations["role"].isin([f"candidate_{cand}", "reference"])]
        key = {"step": "judge", "spec": _spec_dict(jp.judge), "mode": mode,
               "max_new_tokens": jp.judge_max_new_tokens, "dimensions": list(jp.dimensions),
               "prompts": prompt_hash, "answers": sub[["sample_id", "role", "text"]].to_dict("records"),
               "judge_prompt": JUDGE_SYSTEM + json.dumps(DIMENSIONS, sort_keys=True)}
        df = parts.get(f"verdicts_{cand}", key)
        if df is None:
            mkey = ("base" if _same(jp.judge, params.model) else "reference" if _same(jp.judge, jp.reference)
                    else "judge")
            df = judge_pairs(model_for(mkey, jp.judge, section="judge.judge"), pairs, sub, jp.dimensions, candidates=[cand],
                             mode=mode, max_new_tokens=jp.judge_max_new_tokens)
            parts.put(f"verdicts_{cand}", key, df)
            log(f"judge: {len(df)} verdicts for {cand} vs reference ({mode} mode)")
        else:
            log(f"judge: verdicts for {cand} vs reference reused from {parts.path(f'verdicts_{cand}', key).name}")
        frames.append(df)
    verdicts = pd.concat(frames, ignore_index=True)
    verdicts["order"] = verdicts["order"].astype(int)
    verdicts["raw_output"] = verdicts["raw_output"].fillna("").astype(str)
    _csv(verdicts, out / "verdicts.csv")
    timing["judge_s"] = time.perf_counter() - t2
    n_unp = int((verdicts["verdict"] == "unparseable").sum())
    log(f"judge: {len(verdicts)} verdicts, {n_unp} unparseable")
    for m in loaded.values():
        close = getattr(m, "close", None)
        if close:
            close()

    win_rates = win_rate_table(verdicts, n_boot=jp.n_bootstrap, seed=params.seed)
    _csv(win_rates, out / "win_rates.csv")
    refusals = refusal_table(generations)
    _csv(refusals, out / "refusals.csv")
    timing["total_s"] = time.perf_counter() - t0
    return {"pairs": pair_df, "generations": generations, "verdicts": verdicts, "win_rates": win_rates,
            "refusals": refusals, "timing": pd.DataFrame([timing])}


def _open_messages(rec: dict) -> list[dict]:
    from sgvalues.prompts import open_messages

    return open_messages(rec)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``sgvalues judge``."""
    parser.add_argument("--params", required=True, help="params YAML file (params/<model>.yaml)")
    parser.add_argument("--run-dir", required=True, help="run folder (samples in <run-dir>/data)")
    parser.add_argument("--n-pairs", type=int, default=None, help="override judge.n_pairs")
    parser.add_argument("--data-dir", default=None, help="prepared folder (default <run-dir>/data)")
    parser.add_argument("--annotations", default=None,
                        help="folder or CSV of human ratings: also print the agreement table")
    parser.add_argument("--export-sheet", default=None,
                        help="also write an annotation sheet for a seminar to this CSV path")


def main(args: argparse.Namespace) -> int:
    """Run ``sgvalues judge``; prints the win-rate table."""
    from sgvalues.params import load_params

    params = load_params(args.params)
    tables = judge_run(params, args.run_dir, n_pairs=args.n_pairs, data_dir=args.data_dir)
    with pd.option_context("display.width", 140, "display.max_columns", 20):
        print(tables["win_rates"].to_string(index=False))
    if args.export_sheet:
        export_annotation_sheet(args.run_dir, args.export_sheet, seed=params.seed)
        print(f"annotation sheet: {args.export_sheet}")
    if args.annotations:
        print(agreement_table(args.annotations, tables["verdicts"]).to_string(index=False))
    return 0
