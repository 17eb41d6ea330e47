"""Chapter 09's model passes: the readouts and persona formats that ask the model again.

:mod:`sgvalues.readouts` scores readouts; this module produces the two that need answers of
their own, and the persona formats (``params.evaluation``):

* ``sampled``: ``sampled_n`` answers per cell at ``sampled_temperature``, seeded by ``seed``
  (``Model.sample_texts``), each parsed like a structured answer; an answer stops being
  generated once its code is settled (:func:`sgvalues.models.base.answer_decided`);
* ``verbalised``: one greedy answer to the prompt that asks for a percentage per option
  (:func:`sgvalues.prompts.verbalised_sample`), parsed strictly
  (:func:`sgvalues.readouts.parse_verbalised`); an answer stops being generated at its first
  line that cannot parse (:func:`sgvalues.readouts.verbalised_cannot_parse`);
* the persona formats other than the paper's sentence (``qa``, ``bio``, ``fewshot``:
  :func:`sgvalues.prompts.persona_text`), answered in ``evaluation.mode`` like chapter 05.

They are asked of the same cells: ``knowledge_subgroups`` seeded subgroups per question of
``knowledge_questions`` questions of the zero-shot pass (:func:`knowledge_cells`), so every readout and format is scored on the same
samples as the log-prob readout it is compared with. Answers go through the response cache as
each question finishes, so an interrupted pass resumes. Files:
``predictions/<tag>-<readout or format>_<split>.csv``.

Few-shot examples are the subgroup's modal answers to the ``fewshot_k`` questions whose wording
is most like the one asked (:mod:`sgvalues.steering`), chosen among the questions the model may
learn from: every other question, or under ``split.questions: holdout`` the training side only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from sgvalues.models.base import answer_decided
from sgvalues.evaluate import evaluate_samples, load_predictions, predictions_path, sample_request
from sgvalues.option_order import order_subset
from sgvalues.readouts import readout_path, readout_predictions, verbalised_cannot_parse
from sgvalues.tables import targets_json, write_csv

__all__ = ["KNOWLEDGE_TAG", "NEW_READOUTS", "knowledge_cells", "format_path", "fewshot_examples", "format_samples",
           "sample_outputs", "run_knowledge", "VERBALISED_TOKENS_PER_OPTION", "FORMAT_COLUMNS", "format_scores",
           "UNSEEN_COLUMNS", "unseen_similarity", "format_examples", "readout_frames", "questions_of"]

#: the model state chapter 09 asks again: the untuned model of chapter 05's zero-shot pass
KNOWLEDGE_TAG = "zeroshot"

#: the readouts that need a model pass of their own
NEW_READOUTS = ("sampled", "verbalised")

#: tokens a verbalised answer may take per option ("10: 25%" and a newline), plus a few to close
VERBALISED_TOKENS_PER_OPTION = 7


def knowledge_cells(params, run_dir, tag: str = KNOWLEDGE_TAG, split: str = "ood") -> list[dict]:
    """The samples chapter 09's new passes ask: ``evaluation.knowledge_subgroups`` seeded subgroups
    per question of ``evaluation.knowledge_questions`` questions (stratified by theme, seeded:
    :func:`sgvalues.train.data.select_questions`) of ``<tag>_<split>.csv`` (null: all of them).

    Raises FileNotFoundError naming the predictions file when the state was not evaluated.
    """
    from sgvalues.split import load_samples

    run_dir = Path(run_dir)
    path = predictions_path(run_dir, tag, split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; expected the {tag!r} predictions of split {split!r} "
                                "(chapter 05 writes them)")
    asked = set(load_predictions(path)["sample_id"].astype(str))
    samples = [s for s in load_samples(run_dir / "data", split) if str(s["sample_id"]) in asked]
    n_questions = params.evaluation.knowledge_questions
    if n_questions is not None:
        from sgvalues.train.data import select_questions

        chosen = set(select_questions(samples, n_questions, params.seed)) if samples else set()
        samples = [s for s in samples if str(s["question_id"]) in chosen]
    keep = order_subset(samples, params.evaluation.knowledge_subgroups, seed=params.seed)
    return [s for s in samples if str(s["sample_id"]) in keep]


def format_path(run_dir, tag: str, fmt: str, split: str) -> Path:
    """``predictions/<tag>-<fmt>_<split>.csv``; the paper's ``sentence`` is ``<tag>_<split>.csv`` itself."""
    return predictions_path(run_dir, tag if fmt == "sentence" else f"{tag}-{fmt}", split)


def _candidates(params, run_dir: Path) -> list[str] | None:
    """The questions examples may come from: None (all) or, under ``split.questions: holdout``, the train side."""
    split = getattr(params, "split", None)
    if split is None or getattr(split, "questions", "all") != "holdout":
        return None
    from sgvalues.train.data import question_split

    table = question_split(params, run_dir)
    return table.loc[table["split"] == "train", "question_id"].astype(str).tolist()


def fewshot_examples(params, run_dir, cells: Sequence[dict]) -> dict[str, list[tuple[str, int, str]]]:
    """sample_id -> the (wording, code, label) examples of its few-shot persona, most similar first."""
    from sgvalues.steering import few_shot_examples, nearest_questions

    run_dir = Path(run_dir)
    questions = pd.read_csv(run_dir / "data" / "questions.csv", dtype={"question_id": str})
    modal = pd.read_csv(run_dir / "data" / "modal_answers.csv", dtype={"question_id": str, "subgroup": str})
    neighbours = nearest_questions(questions, k=None, candidates=_candidates(params, run_dir))
    wanted = pd.DataFrame({"question_id": [str(s["question_id"]) for s in cells],
                           "subgroup": [str(s["subgroup"]) for s in cells]}).drop_duplicates()
    ex = few_shot_examples(modal, neighbours, k=params.evaluation.fewshot_k, cells=wanted)
    wording = dict(zip(questions["question_id"], questions["wording"]))
    options = {q: json.loads(o) if isinstance(o, str) else o for q, o in zip(questions["question_id"],
                                                                             questions["options"])}
    by_cell: dict[tuple[str, str], list] = {}
    for r in ex.sort_values(["question_id", "subgroup", "rank"]).itertuples():
        label = options.get(r.neighbour, {}).get(str(r.answer), "")
        by_cell.setdefault((r.question_id, r.subgroup), []).append((wording[r.neighbour], int(r.answer), label))
    return {str(s["sample_id"]): by_cell.get((str(s["question_id"]), str(s["subgroup"])), []) for s in cells}


def format_samples(params, run_dir, cells: Sequence[dict], fmt: str) -> list[dict]:
    """The cells with their persona told in format ``fmt`` (:func:`sgvalues.prompts.in_persona_format`)."""
    from sgvalues.prompts import in_persona_format

    examples = fewshot_examples(params, run_dir, cells) if fmt == "fewshot" else {}
    return [in_persona_format(s, fmt, examples.get(str(s["sample_id"])), params.data.country) for s in cells]


def sample_outputs(model, samples: Sequence[dict], n: int, temperature: float, seed: int, max_new_tokens,
                   cache=None, stop=None, kind: str = "sampled",
                   log: Callable[[str], None] | None = None) -> dict[str, list[str]]:
    """sample_id -> the model's ``n`` answers (``Model.sample_texts``), through the response cache.

    ``max_new_tokens``: an int, or a function of the sample giving its budget. Answers are
    cached per question as it finishes (key: model, adapter, ``kind``, messages, options and
    the decoding settings), so a re-run asks nothing and an interrupted one resumes.
    """
    from sgvalues.models.cache import cache_key

    budget = max_new_tokens if callable(max_new_tokens) else (lambda s: int(max_new_tokens))
    requests = [sample_request(s) for s in samples]
    keys = [cache_key(model=model.model_id, adapter=model.adapter_id, mode=kind, messages=list(r.messages),
                      options=list(r.option_codes),
                      decoding={**model.decoding_key(), "n": int(n), "temperature": float(temperature),
                                "seed": int(seed), "max_new_tokens": budget(s)})
            for s, r in zip(samples, requests)]
    got = cache.get_many(keys) if cache is not None else {}
    by_question: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        if k not in got:
            by_question.setdefault((str(samples[i]["question_id"]), budget(samples[i])), []).append(i)
    started, done = time.time(), 0
    for (_, tokens), idxs in by_question.items():
        texts = model.sample_texts([requests[i] for i in idxs], n=n, max_new_tokens=tokens, temperature=temperature,
                                   seed=seed, stop=stop)
        fresh = {keys[i]: {"texts": list(t)} for i, t in zip(idxs, texts)}
        got.update(fresh)
        if cache is not None:
            cache.put_many(fresh)
        done += len(idxs)
        if log is not None:
            log(f"{kind}: {done}/{sum(len(v) for v in by_question.values())} new cells "
                f"({done / max(time.time() - started, 1e-9):.2f}/s)")
    return {str(s["sample_id"]): got[k]["texts"] for s, k in zip(samples, keys)}


def _verbalised_budget(sample: dict) -> int:
    opts = sample["options"]
    n = len(json.loads(opts) if isinstance(opts, str) else opts)
    return VERBALISED_TOKENS_PER_OPTION * n + 4


def run_knowledge(params, run_dir, tag: str = KNOWLEDGE_TAG, split: str = "ood", model=None, cache=True,
                  log: Callable[[str], None] | None = print) -> dict[str, Path]:
    """Ask the model chapter 09's new readouts and persona formats; write one predictions file each.

    Parameters
    ----------
    params : ``sgvalues.params.Params``
        ``evaluation.readouts`` (its ``sampled`` and ``verbalised``), ``persona_formats`` (those
        other than ``sentence``), ``sampled_n``, ``sampled_temperature``, ``sampled_max_new_tokens``, ``verbalised_tolerance``,
        ``fewshot_k``, ``knowledge_subgroups``, ``mode``, ``batch_size``; ``seed``.
    run_dir : path
        A run folder with ``<tag>_<split>.csv`` (chapter 05) and its prepared ``data/``.
    tag : str
        The state asked (default the untuned model's zero-shot pass; no adapter is loaded).
    model : Model, optional
        An already loaded model to reuse.
    cache : True, None/False or a ResponseCache

    Returns
    -------
    dict
        readout or format -> the predictions file written.
    """
    from sgvalues.models import load_model
    from sgvalues.models.cache import ResponseCache
    from sgvalues.prompts import verbalised_sample

    ev = params.evaluation
    run_dir = Path(run_dir)
    cells = knowledge_cells(params, run_dir, tag, split)
    readouts = [r for r in NEW_READOUTS if r in ev.readouts]
    formats = [f for f in ev.persona_formats if f != "sentence"]
    if cache is True:
        cache = ResponseCache()
    elif cache is False:
        cache = None
    written: dict[str, Path] = {}
    if not (readouts or formats):
        return written
    own = model is None
    if own:
        model = load_model(params.model, batch_size=ev.batch_size)
    try:
        for r in readouts:
            if r == "sampled":
                out = sample_outputs(model, cells, ev.sampled_n, ev.sampled_temperature, params.seed,
                                     ev.sampled_max_new_tokens,
                                     cache=cache, stop=answer_decided, kind="sampled", log=log)
                df = readout_predictions(cells, out, "sampled", model=model.model_id)
                asked = cells
            else:
                asked = [verbalised_sample(s) for s in cells]
                out = sample_outputs(model, asked, 1, 0.0, params.seed, _verbalised_budget, cache=cache,
                                     stop=verbalised_cannot_parse, kind="verbalised", log=log)
                df = readout_predictions(asked, {k: v[0] for k, v in out.items()}, "verbalised",
                                         tolerance=ev.verbalised_tolerance, model=model.model_id)
            df["adapter"] = model.adapter_id
            df["targets"] = [targets_json(s) for s in asked]
            path = readout_path(run_dir, tag, r, split)
            write_csv(df, path)
            written[r] = path
            if log is not None:
                log(f"{path}: {len(df)} cells, {int((df['status'] == 'ok').sum())} with a distribution")
        for fmt in formats:
            asked = format_samples(params, run_dir, cells, fmt)
            df = evaluate_samples(asked, model, mode=ev.mode, batch_size=ev.batch_size, cache=cache,
                                  temperature=ev.temperature, max_new_tokens=ev.max_new_tokens, log=log)
            path = format_path(run_dir, tag, fmt, split)
            write_csv(df, path)
            written[fmt] = path
    finally:
        if own:
            model.close()
    return written


#: columns of :func:`format_scores`
FORMAT_COLUMNS = ["format", "n", "n_questions", "accuracy", "nmae", "jsd", "tv", "representativeness",
                  "n_varying_questions", "persona_blind", "share_departing", "n_divergent_cells", "accuracy_divergent",
                  "accuracy_agreeing"]


def format_scores(params, run_dir, tag: str = KNOWLEDGE_TAG, split: str = "ood", cells=None) -> pd.DataFrame:
    """Per persona format, on the same cells: the structured scores and how much the answers follow the persona.

    Parameters
    ----------
    params : Params
        ``evaluation.persona_formats`` (their files must exist: :func:`run_knowledge`).
    cells : sample ids, optional
        Default :func:`knowledge_cells`.

    Returns
    -------
    DataFrame
        :data:`FORMAT_COLUMNS`, one row per format: ``accuracy``, ``nmae``, ``jsd``, ``tv``,
        ``representativeness`` (:func:`sgvalues.readouts.readout_scores` of the log-prob
        readout), and :func:`sgvalues.persona.persona_sensitivity`'s questions whose answer
        varies across the subgroups asked, share of cells departing from the population's
        modal answer, and accuracy on the cells whose subgroup's modal answer differs from the
        population's (``divergent``) and agrees with it.
    """
    from sgvalues.baselines import prepared_population_modes
    from sgvalues.persona import persona_sensitivity
    from sgvalues.readouts import readout_scores

    run_dir = Path(run_dir)
    if cells is None:
        cells = [s["sample_id"] for s in knowledge_cells(params, run_dir, tag, split)]
    keep = {str(c) for c in cells}
    modes = prepared_population_modes(run_dir / "data")
    rows = []
    for fmt in params.evaluation.persona_formats:
        path = format_path(run_dir, tag, fmt, split)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found; expected the {fmt!r} persona format's predictions "
                                    "(sgvalues.knowledge.run_knowledge writes them)")
        df = load_predictions(path)
        df = df[df["sample_id"].astype(str).isin(keep)]
        if set(df["sample_id"].astype(str)) != keep:
            raise ValueError(f"{path}: {len(keep - set(df['sample_id'].astype(str)))} of the {len(keep)} cells have "
                             "no prediction; expected every format asked on the same cells")
        sc = readout_scores(df)
        sens = persona_sensitivity(df, modes).iloc[0]
        rows.append({"format": fmt, "n": sc["n"], "n_questions": int(df["question_id"].nunique()),
                     **{k: sc[k] for k in ("accuracy", "nmae", "jsd", "tv", "representativeness")},
                     **{k: sens[k] for k in ("n_varying_questions", "persona_blind", "share_departing",
                                             "n_divergent_cells", "accuracy_divergent", "accuracy_agreeing")}})
    return pd.DataFrame(rows, columns=FORMAT_COLUMNS)


#: columns of :func:`unseen_similarity`
UNSEEN_COLUMNS = ["question_id", "theme", "nearest_trained", "similarity", "same_theme"]


def unseen_similarity(run_dir, trained: Sequence[str], unseen: Sequence[str]) -> pd.DataFrame:
    """How close each unseen question's wording is to the nearest question training used.

    Returns
    -------
    DataFrame
        :data:`UNSEEN_COLUMNS`: the nearest trained question by wording similarity
        (:func:`sgvalues.question_holdout.wording_similarity`, fitted on the run's questions),
        its ``similarity`` and whether it shares the unseen question's theme.
    """
    from sgvalues.question_holdout import wording_similarity

    questions = pd.read_csv(Path(run_dir) / "data" / "questions.csv", dtype={"question_id": str})
    trained, unseen = [str(q) for q in trained], [str(q) for q in unseen]
    if not trained or not unseen:
        return pd.DataFrame(columns=UNSEEN_COLUMNS)
    sim = wording_similarity(questions)
    theme = dict(zip(questions["question_id"], questions["theme"]))
    rows = []
    for q in unseen:
        s = sim.loc[q, trained]
        near = str(s.idxmax())
        rows.append({"question_id": q, "theme": theme[q], "nearest_trained": near, "similarity": float(s.max()),
                     "same_theme": theme[q] == theme[near]})
    return pd.DataFrame(rows, columns=UNSEEN_COLUMNS)


def format_examples(params, run_dir, cell: dict) -> dict[str, str]:
    """format -> the persona text one cell is told in each of ``evaluation.persona_formats`` (what the page shows)."""
    return {fmt: format_samples(params, run_dir, [cell], fmt)[0]["user_persona"]
            for fmt in params.evaluation.persona_formats}


def readout_frames(run_dir, fit, tag: str = KNOWLEDGE_TAG, split: str = "ood",
                   readouts: Sequence[str] = ("logprob", "logprob_temperature"), cells=None) -> dict[str, pd.DataFrame]:
    """readout -> its predictions on ``cells`` (``probs`` the readout's distribution), e.g. for a reliability diagram.

    ``fit`` is :func:`sgvalues.readouts.run_readouts`' temperature fit (``logprob_temperature``).
    """
    from sgvalues.readouts import with_temperature

    keep = None if cells is None else {str(c) for c in cells}
    out = {}
    for r in readouts:
        df = load_predictions(readout_path(run_dir, tag, r, split))
        if keep is not None:
            df = df[df["sample_id"].astype(str).isin(keep)]
        out[r] = with_temperature(df, fit.temperature) if r == "logprob_temperature" else df
    return out


def questions_of(run_dir, tag: str, split: str = "ood") -> list[str]:
    """The question ids of ``predictions/<tag>_<split>.csv`` (e.g. chapter 04's ``base-unseen``), sorted."""
    path = predictions_path(run_dir, tag, split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; expected the {tag!r} predictions of split {split!r}")
    return sorted(load_predictions(path)["question_id"].astype(str).unique())
