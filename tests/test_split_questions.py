"""``split.questions: holdout``: the params section, and training and chapter 04's unseen questions
on a prepared synthetic run, each checked against the rule computed another way (the themes of
``questions.csv``, sklearn's TF-IDF directly, :func:`sgvalues.train.select_questions` by hand)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import make_sample, params_error

from sgvalues import train as T
from sgvalues.catalogue import THEMES
from sgvalues.params import Params, ParamsError, SplitParams, load_params

REPO = Path(__file__).resolve().parents[1]
HELD = ["Religious Values", "Migration"]
EXAMPLE = REPO / "params" / "examples" / "smollm2-135m-holdout.yaml"


def params(questions=6, split=None, seed=3) -> Params:
    raw = {"name": "t", "seed": seed, "data": {"synthetic_n": 120, "synthetic_seed": 3, "min_n": 10},
           "training": {"questions": questions}}
    if split is not None:
        raw["split"] = split
    return Params.from_dict(raw)


def holdout(threshold=0.8, questions=6, themes=HELD) -> Params:
    return params(questions, {"questions": "holdout", "holdout_themes": list(themes),
                              "near_duplicate_threshold": threshold})


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A prepared synthetic run folder (120 respondents, ~250 questions), as ``sgvalues train`` reads it."""
    from sgvalues.prepare import prepare_run_data

    root = tmp_path_factory.mktemp("holdout") / "run"
    prepare_run_data(params(), root)
    return root


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run / "data", dest / "data")
    (dest / "data" / T.QUESTION_SPLIT_FILE).unlink(missing_ok=True)
    return dest


def _samples(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "data" / "samples_train.jsonl").read_text().splitlines()]


def _questions(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "data" / "questions.csv", keep_default_na=False, dtype={"question_id": str})


def _tfidf_dropped(questions: pd.DataFrame, held: list[str], threshold: float) -> set[str]:
    """Training questions at least ``threshold`` similar to a held-out one, by sklearn directly."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit_transform(questions["wording"])
    sim = cosine_similarity(vec)
    is_held = questions["theme"].isin(held).to_numpy()
    best = sim[:, is_held].max(axis=1)
    return set(questions.loc[~is_held & (best >= threshold - 1e-9), "question_id"])


# ----------------------------------------------------------------------------- params


def test_split_defaults_to_all_and_the_default_recipe_is_unchanged():
    assert Params.from_dict({"name": "x"}).split == SplitParams("all", (), 0.8)
    assert load_params(REPO / "params" / "smollm2-135m.yaml").split.questions == "all"
    # themes may be listed under all (ignored), and are kept as given
    p = params(split={"questions": "all", "holdout_themes": ["Migration"]})
    assert p.split.holdout_themes == ("Migration",) and p.to_dict()["split"]["holdout_themes"] == ["Migration"]


@pytest.mark.parametrize("body,needles", [
    ("split:\n  questions: some\n", ["split.questions", "'some'", "'all'", "'holdout'"]),
    ("split:\n  questions: holdout\n  holdout_themes: [Religion]\n",
     ["split.holdout_themes", "'Religion'", "Religious Values", "Political Culture & Political Regimes"]),
    ("split:\n  questions: holdout\n", ["split.holdout_themes", "at least one theme"]),
    ("split:\n  questions: holdout\n  holdout_themes: []\n", ["split.holdout_themes", "at least one theme"]),
    ("split:\n  questions: holdout\n  holdout_themes: [Migration, Migration]\n", ["split.holdout_themes", "repeated"]),
    ("split:\n  questions: all\n  holdout_themes: [Religion]\n", ["split.holdout_themes", "'Religion'"]),
    ("split:\n  near_duplicate_threshold: 0\n", ["split.near_duplicate_threshold = 0.0", "(0, 1]"]),
    ("split:\n  near_duplicate_threshold: 1.5\n", ["split.near_duplicate_threshold = 1.5", "(0, 1]"]),
    ("split:\n  near_duplicate_threshold: -0.2\n", ["split.near_duplicate_threshold = -0.2", "(0, 1]"]),
    ("split:\n  near_duplicate_threshold: high\n", ["split.near_duplicate_threshold", "'high'"]),
    ("split:\n  holdout: [Migration]\n", ["split.holdout", "holdout_themes"]),
])
def test_bad_split_values_name_the_file_key_and_value(tmp_path, body, needles):
    path, msg = params_error(tmp_path, body)
    assert path in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_threshold_bounds_are_inclusive_of_one():
    assert params(split={"near_duplicate_threshold": 1}).split.near_duplicate_threshold == 1.0
    with pytest.raises(ParamsError):
        params(split={"near_duplicate_threshold": 1.0000001})


def test_example_recipe_extends_the_default_and_holds_out_enough(run):
    ex, default = load_params(EXAMPLE), load_params(REPO / "params" / "smollm2-135m.yaml")
    assert ex.split.questions == "holdout" and ex.name == EXAMPLE.stem
    # only the split (and the names) differ from the default recipe
    a, b = ex.to_dict(), default.to_dict()
    assert {k for k in a if a[k] != b[k]} == {"name", "display_name", "split"}
    questions = _questions(run)
    held = questions[questions["theme"].isin(ex.split.holdout_themes)]
    # chapter 04 draws 4 unseen questions; training draws training.questions from the rest
    assert held["theme"].value_counts().min() >= 4 and len(held) >= 8
    assert len(questions) - len(held) >= 5 * ex.training.questions


# ----------------------------------------------------------------------------- on a prepared run


def test_question_split_holds_out_the_themes_and_drops_what_sklearn_finds_similar(run, tmp_path):
    run = _copy(run, tmp_path)
    questions = _questions(run)
    for threshold in (0.8, 0.5):
        table = T.question_split(holdout(threshold), run)
        split = dict(zip(table["question_id"], table["split"]))
        assert list(table["question_id"]) == list(questions["question_id"])  # every question has samples here
        held = set(questions.loc[questions["theme"].isin(HELD), "question_id"])
        dropped = _tfidf_dropped(questions, HELD, threshold)
        assert {q for q, s in split.items() if s == "holdout"} == held
        assert {q for q, s in split.items() if s == "dropped"} == dropped
        assert {q for q, s in split.items() if s == "train"} == set(questions["question_id"]) - held - dropped
        if threshold == 0.5:
            assert dropped  # the lower threshold does drop questions on the catalogue's wording
        back = pd.read_csv(run / "data" / T.QUESTION_SPLIT_FILE, keep_default_na=False, dtype={"question_id": str})
        pd.testing.assert_frame_equal(back, table, check_dtype=False)


def test_training_and_unseen_questions_under_holdout(run, tmp_path):
    run = _copy(run, tmp_path)
    samples, questions = _samples(run), _questions(run)
    p = holdout(0.5)
    held = set(questions.loc[questions["theme"].isin(HELD), "question_id"])
    dropped = _tfidf_dropped(questions, HELD, 0.5)
    allowed = set(questions["question_id"]) - held - dropped

    trained = T.training_questions(p, run)
    assert len(trained) == 6 and not set(trained) & (held | dropped)
    assert trained == T.select_questions([s for s in samples if s["question_id"] in allowed], 6, p.seed)
    # training.questions: null = every training question (a list, never None)
    assert T.training_questions(holdout(0.5, questions=None), run) == sorted(allowed)

    unseen = T.unseen_questions(p, run, 4)
    assert len(unseen) == 4 and set(unseen) <= held
    assert unseen == T.select_questions([s for s in samples if s["question_id"] in held], 4, p.seed + 1)
    assert {s["theme"] for s in samples if s["question_id"] in unseen} <= set(HELD)
    # with every training question trained on, the held-out themes are still unseen
    assert set(T.unseen_questions(holdout(0.5, questions=None), run, 4)) <= held
    assert sorted(T.unseen_questions(p, run, 999)) == sorted(held)

    # the samples training reads are every subgroup of exactly those questions, in file order
    got = T.load_train_samples(p, run)
    assert got == [s for s in samples if s["question_id"] in set(trained)]
    got_all = T.load_train_samples(holdout(0.5, questions=None), run)
    assert {s["question_id"] for s in got_all} == allowed


def test_question_split_csv_is_deterministic(run, tmp_path):
    one, two = _copy(run, tmp_path / "one"), _copy(run, tmp_path / "two")
    T.question_split(holdout(0.5), one)
    first = (one / "data" / T.QUESTION_SPLIT_FILE).read_bytes()
    stamp = (one / "data" / T.QUESTION_SPLIT_FILE).stat().st_mtime_ns
    T.training_questions(holdout(0.5), one)  # recomputed, same bytes, not rewritten
    assert (one / "data" / T.QUESTION_SPLIT_FILE).read_bytes() == first
    assert (one / "data" / T.QUESTION_SPLIT_FILE).stat().st_mtime_ns == stamp
    T.question_split(holdout(0.5), two)
    assert (two / "data" / T.QUESTION_SPLIT_FILE).read_bytes() == first
    assert first.startswith(b"question_id,theme,split,nearest,similarity,reason\n")
    assert not list((one / "data").glob(".*tmp*"))
    # another threshold is another split, rewritten
    T.question_split(holdout(0.9), one)
    assert (one / "data" / T.QUESTION_SPLIT_FILE).read_bytes() != first


def test_under_all_nothing_changes(run, tmp_path):
    run = _copy(run, tmp_path)
    samples = _samples(run)
    for p in (params(6), params(6, {"questions": "all", "holdout_themes": HELD})):
        assert T.question_split(p, run) is None
        trained = T.training_questions(p, run)
        assert trained == T.select_questions(samples, 6, p.seed)
        rest = [s for s in samples if s["question_id"] not in set(trained)]
        assert T.unseen_questions(p, run, 4) == T.select_questions(rest, 4, p.seed + 1)
        assert T.load_train_samples(p, run) == [s for s in samples if s["question_id"] in set(trained)]
    assert T.training_questions(params(None), run) is None
    assert T.unseen_questions(params(None), run, 4) == []
    assert T.load_train_samples(params(None), run) == samples
    assert not (run / "data" / T.QUESTION_SPLIT_FILE).exists()


def test_holdout_errors_name_the_key_and_the_file(run, tmp_path):
    run = _copy(run, tmp_path)
    present = set(_questions(run)["theme"])
    absent = [t for t in THEMES if t not in present]
    assert absent  # the synthetic run keeps no question of some theme (Postmaterialist Index)
    with pytest.raises(T.TrainError, match=r"split\.holdout_themes: \[.*\] have no question with train samples"):
        T.training_questions(holdout(themes=[absent[0]]), run)
    with pytest.raises(T.TrainError, match=r"split\.holdout_themes = .*hold every question"):
        T.question_split(holdout(themes=sorted(present)), run)
    (run / "data" / "questions.csv").unlink()
    with pytest.raises(T.TrainError, match=r"data/questions\.csv: no prepared questions; split\.questions = 'holdout'"):
        T.unseen_questions(holdout(), run, 4)


# ----------------------------------------------------------------------------- a constructed case


WORDINGS = {
    # held out (Migration)
    "M1": ("Migration", "How would you evaluate the impact of immigrants on the development of your country?"),
    "M2": ("Migration", "Immigrants increase the crime rate."),
    # near-duplicate of M1 in another theme, and two unrelated training questions
    "E1": ("Economic Values", "How would you evaluate the impact of foreign firms on the development of your country?"),
    "E2": ("Economic Values", "Competition is good."),
    "S1": ("Security", "How secure do you feel these days in your neighborhood?"),
}


def _constructed_run(tmp_path) -> Path:
    data = tmp_path / "data"
    data.mkdir(parents=True)
    rows = [{"question_id": q, "theme": t, "wording": w} for q, (t, w) in WORDINGS.items()]
    # a question without samples is left out of the split
    rows.append({"question_id": "X9", "theme": "Economic Values", "wording": WORDINGS["E1"][1]})
    pd.DataFrame(rows).to_csv(data / "questions.csv", index=False)
    with (data / "samples_train.jsonl").open("w") as f:
        for q, (t, w) in WORDINGS.items():
            for g in ("sex:Male", "sex:Female"):
                f.write(json.dumps(make_sample(q, g, split="train", theme=t, wording=w)) + "\n")
    return tmp_path


def test_near_duplicate_dropping_at_the_hand_computed_similarity(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer

    run = _constructed_run(tmp_path)
    ids = list(WORDINGS)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit_transform([w for _, w in WORDINGS.values()])
    dense = vec.toarray()
    unit = dense / np.linalg.norm(dense, axis=1, keepdims=True)
    sim = unit @ unit.T
    e1_m1 = sim[ids.index("E1"), ids.index("M1")]
    others = max(sim[ids.index(a), ids.index(b)] for a in ("E2", "S1") for b in ("M1", "M2"))
    assert others < 0.5 < e1_m1 < 0.95  # the case is what it says: one near-duplicate, the rest far

    def split_at(threshold, n=None):
        p = params(n, {"questions": "holdout", "holdout_themes": ["Migration"], "near_duplicate_threshold": threshold})
        table = T.question_split(p, run).set_index("question_id")
        return p, table

    _, below = split_at(e1_m1 - 1e-6)
    assert below["split"].to_dict() == {"M1": "holdout", "M2": "holdout", "E1": "dropped", "E2": "train", "S1": "train"}
    assert below.loc["E1", "nearest"] == "M1" and below.loc["E1", "similarity"] == pytest.approx(e1_m1, abs=1e-9)
    assert "M1" in below.loc["E1", "reason"]
    _, above = split_at(min(1.0, e1_m1 + 1e-6))
    assert above.loc["E1", "split"] == "train"

    p, _ = split_at(e1_m1 - 1e-6)
    assert T.training_questions(p, run) == ["E2", "S1"]
    assert T.unseen_questions(p, run, 5) == ["M1", "M2"]
    assert {s["question_id"] for s in T.load_train_samples(p, run)} == {"E2", "S1"}
    p_above, _ = split_at(min(1.0, e1_m1 + 1e-6))
    assert T.training_questions(p_above, run) == ["E1", "E2", "S1"]
