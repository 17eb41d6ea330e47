"""Chapter 09's model passes (``sgvalues.knowledge``) and their readout table (``readouts.run_readouts``)
on a prepared synthetic run answered by a scripted dummy model: the cells against
``select_questions``/``order_subset`` computed here, the sampled and verbalised distributions
against hand counts of the scripted replies, the few-shot examples against sklearn's TF-IDF
directly, the response cache, and the readout table against ``metrics.score`` on the same cells."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from sgvalues import knowledge as K
from sgvalues.evaluate import evaluate_run, load_predictions, predictions_path, sample_request
from sgvalues.metrics import score
from sgvalues.models.base import Answer
from sgvalues.models.cache import ResponseCache
from sgvalues.models.dummy import DummyModel
from sgvalues.option_order import order_subset
from sgvalues.params import Params
from sgvalues.prompts import VERBALISED_INSTRUCTION, persona_fewshot
from sgvalues.readouts import run_readouts
from sgvalues.split import load_samples
from sgvalues.train.data import select_questions

#: the questions of the zero-shot pass: Q7 and Q8 have two options, Q1 and Q2 four
ASKED = ["Q1", "Q2", "Q7", "Q8", "Q46", "Q57", "Q106", "Q112", "Q121", "Q164", "Q199"]
SEED, N = 3, 5
#: sampled replies per question: the j-th of the n answers is SAMPLED[q][(seed + j) % 7]
SAMPLED = {"Q7": ["1", "2", "1", "I'm sorry, but I cannot answer that.", "2", "banana", "1"],
           "Q1": ["4", "Option 3.", "4", "2", "I would say 4", "3", "4"]}
DEFAULT_SAMPLED = ["no idea"]
#: ... so, by hand (indices 3, 4, 5, 6, 0): Q7 -> refused, 2, banana, 1, 1; Q1 -> 2, 4, 3, 4, 4
SAMPLED_BY_HAND = {"Q7": ({"1": 2 / 3, "2": 1 / 3}, "3 of 5 answers gave a code (1 refused, 1 unparseable)"),
                   "Q1": ({"1": 0.0, "2": 0.2, "3": 0.2, "4": 0.6},
                          "5 of 5 answers gave a code (0 refused, 0 unparseable)")}
VERBAL = {"Q7": "1: 40%\n2: 60%", "Q8": "1: 40%", "Q1": "1: 40%\n2: 60%", "Q2": "Sure:\n1: 25%"}
VERBAL_BY_HAND = {"Q7": ("ok", {"1": 0.4, "2": 0.6}, ""), "Q8": ("unparseable", None, "options missing: [2]"),
                  "Q1": ("unparseable", None, "options missing: [3, 4]"),
                  "Q2": ("unparseable", None, "line 1 is not 'code: percent'")}
DEFAULT_VERBAL = "I think 3."


def params(**evaluation) -> Params:
    ev = {"knowledge_subgroups": 3, "sampled_n": N, "fewshot_k": 2, **evaluation}
    return Params.from_dict({"name": "k", "seed": SEED, "model": {"backend": "dummy", "name": "dummy"},
                             "data": {"synthetic_n": 120, "synthetic_seed": 3, "min_n": 10}, "evaluation": ev})


class Scripted(DummyModel):
    """The dummy, with replies scripted per question: verbalised prompts get ``VERBAL``, others the
    question's ``SAMPLED`` list at the request's seed (``Model.sample_texts`` seeds the j-th answer
    ``seed + j``). Option probabilities are the dummy's own."""

    def __init__(self, wordings: dict[str, str]):
        super().__init__("scripted")
        self.wordings = wordings

    def _question(self, text: str) -> str:
        (qid,) = [q for q, w in self.wordings.items() if f"{w}\n\nOptions:" in text]
        return qid

    def generate_answers(self, requests):
        self.calls += 1
        self.seen += len(requests)
        out = []
        for r in requests:
            text = r.messages[-1]["content"]
            qid = self._question(text)
            if VERBALISED_INSTRUCTION in text:
                out.append(Answer(text=VERBAL.get(qid, DEFAULT_VERBAL)))
            else:
                seq = SAMPLED.get(qid, DEFAULT_SAMPLED)
                out.append(Answer(text=seq[r.seed % len(seq)]))
        return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A prepared synthetic run (120 respondents) whose ASKED questions the dummy answered zero-shot."""
    from sgvalues.prepare import prepare_run_data

    root = tmp_path_factory.mktemp("knowledge") / "run"
    prepare_run_data(params(), root)
    model = DummyModel("dummy")
    for split in ("ood", "train"):
        evaluate_run(params(), root, split=split, tag="zeroshot", model=model, cache=False, log=None,
                     questions=ASKED)
    return root


@pytest.fixture
def run(prepared, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(prepared, dest)
    return dest


def _wordings(run: Path) -> dict[str, str]:
    q = pd.read_csv(run / "data" / "questions.csv", dtype={"question_id": str}, keep_default_na=False)
    return {qid: w.strip() for qid, w in zip(q["question_id"], q["wording"]) if qid in ASKED}


def test_knowledge_cells_are_select_questions_then_order_subset(prepared):
    asked = set(load_predictions(predictions_path(prepared, "zeroshot", "ood"))["sample_id"])
    samples = [s for s in load_samples(prepared / "data", "ood") if s["sample_id"] in asked]
    assert {s["question_id"] for s in samples} == set(ASKED)
    for n_questions, n_subgroups in ((4, 3), (None, 2), (4, None), (None, None)):
        p = params(knowledge_questions=n_questions, knowledge_subgroups=n_subgroups)
        got = K.knowledge_cells(p, prepared)
        chosen = set(select_questions(samples, n_questions, SEED)) if n_questions else set(ASKED)
        pool = [s for s in samples if s["question_id"] in chosen]
        keep = order_subset(pool, n_subgroups, seed=SEED)
        assert [s["sample_id"] for s in got] == [s["sample_id"] for s in pool if s["sample_id"] in keep]
        per_q = pd.Series([s["question_id"] for s in got]).value_counts()
        assert len(per_q) == (n_questions or len(ASKED))
        sizes = pd.Series([s["question_id"] for s in pool]).value_counts()
        assert all(per_q[q] == min(n_subgroups or sizes[q], sizes[q]) for q in per_q.index)
        if n_questions:  # stratified by theme: theme counts differ by at most one
            themes = pd.Series([s["theme"] for s in got]).groupby([s["question_id"] for s in got]).first()
            assert themes.value_counts().max() - themes.value_counts().min() <= 1
    with pytest.raises(FileNotFoundError, match="base_ood.csv"):
        K.knowledge_cells(params(), prepared, tag="base")


def test_run_knowledge_writes_every_readout_and_format_on_the_same_cells(run, tmp_path):
    p = params()
    cells = K.knowledge_cells(p, run)
    ids = [c["sample_id"] for c in cells]
    model = Scripted(_wordings(run))
    cache = ResponseCache(tmp_path / "responses.sqlite")
    written = K.run_knowledge(p, run, model=model, cache=cache, log=None)
    assert set(written) == {"sampled", "verbalised", "qa", "bio", "fewshot"}
    for name, path in written.items():
        assert path == run / "predictions" / f"zeroshot-{name}_ood.csv"
        df = load_predictions(path)
        assert df["sample_id"].tolist() == ids, name  # one row per cell, in the cells' order
        assert (df["model"] == model.model_id).all()
    by_q = {c["question_id"]: c for c in cells}
    assert {"Q1", "Q2", "Q7", "Q8"} <= set(by_q)

    sampled = load_predictions(written["sampled"]).set_index("sample_id")
    raw = pd.read_csv(written["sampled"], dtype={"sample_id": str}, keep_default_na=False).set_index("sample_id")
    for c in cells:
        row, q = sampled.loc[c["sample_id"]], c["question_id"]
        texts = json.loads(raw.loc[c["sample_id"], "raw_output"])
        seq = SAMPLED.get(q, DEFAULT_SAMPLED)
        assert texts == [seq[(SEED + j) % len(seq)] for j in range(N)]
        if q in SAMPLED_BY_HAND:
            dist, reason = SAMPLED_BY_HAND[q]
            assert row["status"] == "ok"
            assert json.loads(row["probs"]) == pytest.approx(dist, abs=1e-6)
            assert raw.loc[c["sample_id"], "parse_reason"] == reason
            assert row["prediction"] == int(max(dist, key=dist.get))
        else:  # no answer gave a code: counted, never spread over the options
            assert row["status"] == "unparseable" and raw.loc[c["sample_id"], "probs"] == ""
            assert raw.loc[c["sample_id"], "parse_reason"] == "0 of 5 answers gave a code (0 refused, 5 unparseable)"

    verbal = pd.read_csv(written["verbalised"], dtype={"sample_id": str}, keep_default_na=False).set_index("sample_id")
    for c in cells:
        row, q = verbal.loc[c["sample_id"]], c["question_id"]
        assert row["raw_output"] == VERBAL.get(q, DEFAULT_VERBAL)
        status, dist, reason = VERBAL_BY_HAND.get(q, ("unparseable", None, "line 1 is not 'code: percent'"))
        assert row["status"] == status
        assert row["parse_reason"].startswith(reason) and (status == "ok") == (row["parse_reason"] == "")
        if dist is None:
            assert row["probs"] == ""
        else:
            assert json.loads(row["probs"]) == pytest.approx(dist) and int(row["prediction"]) == 2

    # the formats: the dummy's option probabilities of the re-told prompts, in the zero-shot pass's mode
    for fmt in ("qa", "bio", "fewshot"):
        df = load_predictions(written[fmt])
        asked = K.format_samples(p, run, cells, fmt)
        want = model.score_options([sample_request(s) for s in asked])
        for (_, row), probs in zip(df.iterrows(), want):
            assert json.loads(row["probs"]) == pytest.approx(probs, abs=1e-6)

    # again with the same cache: nothing asked, the same bytes written
    before = {name: path.read_bytes() for name, path in written.items()}
    calls = model.calls
    again = K.run_knowledge(p, run, model=model, cache=cache, log=None)
    assert model.calls == calls
    assert {name: path.read_bytes() for name, path in again.items()} == before
    # a fresh model object with the same script reads the same cache
    other = Scripted(_wordings(run))
    K.run_knowledge(p, run, model=other, cache=cache, log=None)
    assert other.calls == 0


def test_run_knowledge_asks_only_what_params_name(run, tmp_path):
    p = params(readouts=["logprob", "verbalised"], persona_formats=["sentence", "bio"])
    written = K.run_knowledge(p, run, model=Scripted(_wordings(run)), cache=False, log=None)
    assert set(written) == {"verbalised", "bio"}
    assert not (run / "predictions" / "zeroshot-sampled_ood.csv").exists()
    nothing = params(readouts=["logprob"], persona_formats=["sentence"])
    model = Scripted(_wordings(run))
    assert K.run_knowledge(nothing, run, model=model, cache=False, log=None) == {} and model.calls == 0


def _tfidf_examples(run: Path, cells, k: int) -> dict[str, list[tuple[str, int, str]]]:
    """Each cell's k nearest other questions by sklearn's char_wb (3, 5) TF-IDF cosine that its subgroup
    has a modal answer to, most similar first (ties by table order), with that answer and its label."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    q = pd.read_csv(run / "data" / "questions.csv", dtype={"question_id": str}, keep_default_na=False)
    sim = cosine_similarity(TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit_transform(q["wording"]))
    modal = pd.read_csv(run / "data" / "modal_answers.csv", dtype={"question_id": str, "subgroup": str})
    answer = {(a, b): int(m) for a, b, m in zip(modal["question_id"], modal["subgroup"], modal["modal_answer"])
              if not pd.isna(m)}
    ids = q["question_id"].tolist()
    out = {}
    for c in cells:
        i = ids.index(c["question_id"])
        order = sorted((j for j in range(len(ids)) if j != i), key=lambda j: (-round(sim[i, j], 12), j))
        picked = [j for j in order if (ids[j], c["subgroup"]) in answer][:k]
        out[c["sample_id"]] = [(q["wording"][j], answer[(ids[j], c["subgroup"])],
                                json.loads(q["options"][j]).get(str(answer[(ids[j], c["subgroup"])]), ""))
                               for j in picked]
    return out


def test_fewshot_examples_are_the_nearest_questions_with_the_subgroups_modal_answer(run):
    p = params(fewshot_k=3)
    cells = K.knowledge_cells(p, run)
    got = K.fewshot_examples(p, run, cells)
    want = _tfidf_examples(run, cells, 3)
    assert got.keys() == want.keys()
    wording = _wordings(run)
    for sid, examples in got.items():
        assert examples == want[sid], sid
        assert len(examples) == 3
        own = next(c for c in cells if c["sample_id"] == sid)
        assert wording[own["question_id"]] not in [w.strip() for w, _, _ in examples]  # never the question itself
    told = K.format_samples(p, run, cells, "fewshot")
    for c, s in zip(cells, told):
        assert s["user_persona"] == persona_fewshot(c["levels"], want[c["sample_id"]], 702)
        assert s["user_shared"] == c["user_shared"] and s["sample_id"] == c["sample_id"]


def test_fewshot_examples_under_holdout_come_only_from_training_questions(run):
    from sgvalues.train.data import question_split

    raw = params(fewshot_k=3).to_dict()
    raw["split"] = {"questions": "holdout", "holdout_themes": ["Religious Values", "Migration"]}
    p = Params.from_dict(raw)
    table = question_split(p, run)
    train_side = set(table.loc[table["split"] == "train", "question_id"].astype(str))
    held = set(table["question_id"].astype(str)) - train_side
    assert train_side and held
    q = pd.read_csv(run / "data" / "questions.csv", dtype={"question_id": str}, keep_default_na=False)
    by_wording = dict(zip(q["wording"].str.strip(), q["question_id"]))
    cells = K.knowledge_cells(p, run)
    got = K.fewshot_examples(p, run, cells)
    used = {by_wording[w.strip()] for examples in got.values() for w, _, _ in examples}
    assert used and used <= train_side  # never a held-out or dropped near-duplicate question
    # the same cells without the holdout draw on held-out questions too, so the restriction bites
    free = K.fewshot_examples(params(fewshot_k=3), run, cells)
    assert any(by_wording[w.strip()] in held for examples in free.values() for w, _, _ in examples)


def test_run_readouts_scores_every_readout_on_exactly_the_cells_given(run):
    p = params()
    K.run_knowledge(p, run, model=Scripted(_wordings(run)), cache=False, log=None)
    cells = [c["sample_id"] for c in K.knowledge_cells(p, run)]
    subset = cells[::2]
    shutil.copy(predictions_path(run, "zeroshot", "train"), predictions_path(run, "base", "train"))
    readouts = ["logprob", "logprob_temperature", "sampled", "verbalised"]
    table, fit = run_readouts(run, readouts=readouts, fit_tag="base", cells=subset, baselines=(), n_boot=20)
    assert table["readout"].tolist() == readouts + ["survey_noise"]
    t = table.set_index("readout")
    keep = set(subset)

    def scored(name):
        df = load_predictions(predictions_path(run, name, "ood"))
        return score(df[df["sample_id"].isin(keep)]).iloc[0]

    for r, name in (("logprob", "zeroshot"), ("logprob_temperature", "zeroshot"), ("sampled", "zeroshot-sampled"),
                    ("verbalised", "zeroshot-verbalised")):
        want = scored(name)
        assert t.loc[r, "n"] == len(subset) == want["n"]
        assert t.loc[r, "accuracy"] == pytest.approx(want["accuracy"]), r
        assert t.loc[r, "nmae"] == pytest.approx(want["nmae"]), r
    assert t.loc["survey_noise", "n"] == len(subset)
    # only Q7's verbalised answers parse (VERBAL_BY_HAND)
    assert t.loc["verbalised", "n_distribution"] == sum(1 for c in subset if c.startswith("Q7_")) > 0
    # the temperature is fitted on base's train predictions: the same as zeroshot's own
    _, own_fit = run_readouts(run, readouts=["logprob"], cells=subset, baselines=(), n_boot=5)
    assert fit.temperature == pytest.approx(own_fit.temperature)
    # a cell no readout was asked about
    with pytest.raises(ValueError, match="zeroshot_ood.csv"):
        run_readouts(run, readouts=readouts, cells=subset + ["Q999_nobody"], baselines=(), n_boot=5)


def test_run_readouts_refuses_another_model_state_and_missing_files(run):
    p = params()
    K.run_knowledge(p, run, model=Scripted(_wordings(run)), cache=False, log=None)
    cells = [c["sample_id"] for c in K.knowledge_cells(p, run)]
    base = load_predictions(predictions_path(run, "zeroshot", "train"))
    base.assign(model="dummy:other:0").to_csv(predictions_path(run, "base", "train"), index=False)
    with pytest.raises(ValueError, match=r"base_train\.csv: model") as exc:
        run_readouts(run, readouts=["logprob", "sampled"], fit_tag="base", cells=cells, baselines=(), n_boot=5)
    assert "dummy:other:0" in str(exc.value)
    predictions_path(run, "zeroshot-verbalised", "ood").unlink()
    with pytest.raises(FileNotFoundError, match=r"zeroshot-verbalised_ood\.csv"):
        run_readouts(run, readouts=["logprob", "verbalised"], cells=cells, baselines=(), n_boot=5)
    # the sampled file asked on fewer cells than scored: named too
    sampled = load_predictions(predictions_path(run, "zeroshot-sampled", "ood"))
    sampled.iloc[1:].to_csv(predictions_path(run, "zeroshot-sampled", "ood"), index=False)
    with pytest.raises(ValueError, match=r"zeroshot-sampled_ood\.csv: no prediction for 1"):
        run_readouts(run, readouts=["sampled"], cells=cells, baselines=(), n_boot=5)
