"""Pairwise judging: verdict parsing, win rate, position consistency, kappa, refusals, sheets."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from factories import load_judge_tables, make_sample
from sklearn.metrics import cohen_kappa_score

from sgvalues import judge
from sgvalues.judge import (
    agreement_table,
    bootstrap_win_rate,
    is_refusal,
    judge_messages,
    parse_verdict,
    position_consistency,
    select_pairs,
    verdict_to_outcome,
    weighted_kappa,
    win_rate,
)
from sgvalues.models.dummy import DummyModel

# ------------------------------------------------------------------------------ verdict parsing

MESSY = [
    ("A", "A"),
    ("B", "B"),
    ("tie", "tie"),
    ("Tie.", "tie"),
    ("TIE", "tie"),
    ("a", "A"),
    ("b.", "B"),
    ("**Answer: A**", "A"),
    ("**B**", "B"),
    ("Answer: b", "B"),
    ("Final verdict: [[B]]", "B"),
    ("[[A]]", "A"),
    ("[[C]]", "tie"),
    ("After comparing both, my verdict is [[A]] because it is in character.", "A"),
    ("Assistant A is better.", "A"),
    ("Answer B is better because it reflects the persona's values.", "B"),
    ("I think Response B is more aligned with the subgroup.", "B"),
    ("A. Because answer A sounds like the person while B talks like an assistant.", "A"),
    ("B\n\nExplanation: Answer A ignores the persona entirely.", "B"),
    ("(A)", "A"),
    ("  \"B\"  ", "B"),
    ("Verdict - tie", "tie"),
    ("Winner: Assistant B", "B"),
    ("I prefer B.", "B"),
    ("Both answers are equally good.", "tie"),
    ("It's a tie: both say the same thing.", "tie"),
    ("Answer A is worse than answer B.", "B"),
    ("Tie - neither answer mentions religion.", "tie"),
    # contradictory, empty or off-topic: never guessed
    ("", "unparseable"),
    ("   ", "unparseable"),
    (None, "unparseable"),
    ("A or B", "unparseable"),
    ("[[A]] ... on reflection [[B]]", "unparseable"),
    ("Assistant A is better. Actually, Assistant B is better.", "unparseable"),
    ("A good answer would mention family values.", "unparseable"),
    ("The question asks about religion in Singapore.", "unparseable"),
    ("Answer: A\nFinal answer: B", "unparseable"),
]


@pytest.mark.parametrize("text,expected", MESSY)
def test_parse_verdict_reads_messy_outputs(text, expected):
    assert parse_verdict(text) == expected


def test_verdict_to_outcome_depends_on_the_order():
    assert [verdict_to_outcome(v, 1) for v in ("A", "B", "tie", "unparseable")] == \
        ["win", "loss", "tie", "unparseable"]
    assert [verdict_to_outcome(v, 2) for v in ("A", "B", "tie", "unparseable")] == \
        ["loss", "win", "tie", "unparseable"]
    with pytest.raises(ValueError, match="order 3"):
        verdict_to_outcome("A", 3)
    with pytest.raises(ValueError, match="verdict 'C'"):
        verdict_to_outcome("C", 1)


# ------------------------------------------------------------------------------ win rate & PC


def test_win_rate_by_hand():
    o1 = ["win", "win", "tie", "loss", "win"]
    o2 = ["win", "loss", "win", "loss", "tie"]
    # per item (s1 + s2) / 2: 1, .5, .75, 0, .75 -> mean 3 / 5
    assert win_rate(o1, o2) == pytest.approx(3.0 / 5)
    # same verdict in both orders: items 1 and 4 only
    assert position_consistency(o1, o2) == pytest.approx(2 / 5)


def test_unparseable_items_are_excluded_from_both_measures():
    o1 = ["win", "unparseable", "loss", "tie"]
    o2 = ["win", "win", "unparseable", "loss"]
    # usable items: 0 (1.0) and 3 (0.25)
    assert win_rate(o1, o2) == pytest.approx((1.0 + 0.25) / 2)
    assert position_consistency(o1, o2) == pytest.approx(1 / 2)
    assert np.isnan(judge.paired_scores(o1, o2)).sum() == 2
    assert np.isnan(win_rate(["unparseable"], ["win"]))
    assert np.isnan(position_consistency(["unparseable"], ["win"]))


def test_a_judge_that_always_says_A_gives_one_half_and_zero_consistency():
    rng = np.random.default_rng(0)
    n = 40
    v1, v2 = ["A"] * n, ["A"] * n  # whatever the answers, it picks the first
    o1 = [verdict_to_outcome(v, 1) for v in v1]
    o2 = [verdict_to_outcome(v, 2) for v in v2]
    assert win_rate(o1, o2) == 0.5
    assert position_consistency(o1, o2) == 0.0
    # a consistent judge that prefers the candidate on a random 70%
    prefer = rng.random(n) < 0.7
    o1 = [verdict_to_outcome("A" if p else "B", 1) for p in prefer]
    o2 = [verdict_to_outcome("B" if p else "A", 2) for p in prefer]
    assert win_rate(o1, o2) == pytest.approx(prefer.mean())
    assert position_consistency(o1, o2) == 1.0


def test_win_rate_rejects_bad_input():
    with pytest.raises(ValueError, match="same items"):
        win_rate(["win"], ["win", "loss"])
    with pytest.raises(ValueError, match=r"order2: outcome\(s\) \['A'\]"):
        win_rate(["win"], ["A"])


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(3)
    o1 = rng.choice(["win", "tie", "loss"], size=30).tolist()
    o2 = rng.choice(["win", "tie", "loss"], size=30).tolist()
    a = bootstrap_win_rate(o1, o2, n_boot=500, seed=7)
    b = bootstrap_win_rate(o1, o2, n_boot=500, seed=7)
    assert a == b
    assert a[0] <= win_rate(o1, o2) <= a[1]
    # the CI of a mean of item scores shrinks like sd / sqrt(n): compare with the normal interval
    s = judge.paired_scores(o1, o2)
    se = s.std(ddof=1) / np.sqrt(len(s))
    assert a[1] - a[0] == pytest.approx(2 * 1.96 * se, rel=0.25)
    assert bootstrap_win_rate(["win"], ["unparseable"]) == (pytest.approx(np.nan, nan_ok=True),) * 2


def test_win_rate_table_matches_functions():
    rng = np.random.default_rng(1)
    rows = []
    truth = {}
    for dim in ("overall", "value_alignment"):
        o1 = rng.choice(["win", "tie", "loss", "unparseable"], p=[.4, .2, .3, .1], size=12).tolist()
        o2 = rng.choice(["win", "tie", "loss"], size=12).tolist()
        truth[dim] = (win_rate(o1, o2), position_consistency(o1, o2))
        for i in range(12):
            for order, o in ((1, o1[i]), (2, o2[i])):
                rows.append({"candidate": "base", "dimension": dim, "sample_id": f"s{i:02d}", "order": order,
                             "outcome": o})
    table = judge.win_rate_table(pd.DataFrame(rows).sample(frac=1, random_state=0), n_boot=200)
    for r in table.itertuples():
        assert r.win_rate == pytest.approx(truth[r.dimension][0])
        assert r.position_consistency == pytest.approx(truth[r.dimension][1])
        assert r.n_items == 12 and r.n_used + r.n_unparseable_items == 12
        assert r.ci_low <= r.win_rate <= r.ci_high


# ------------------------------------------------------------------------------ kappa


@pytest.mark.parametrize("weights", ["quadratic", "linear", None])
@pytest.mark.parametrize("labels", [[0, 1, 2], [1, 2, 3, 4, 5], ["A", "B", "tie"], list(range(10))])
def test_weighted_kappa_equals_sklearn(weights, labels):
    rng = np.random.default_rng(len(labels) + (weights or "none").__len__())
    for trial in range(8):
        n = int(rng.integers(5, 60))
        a = rng.choice(labels, size=n)
        # correlated second rater: copy with probability .6, else random
        b = np.where(rng.random(n) < 0.6, a, rng.choice(labels, size=n))
        ours = weighted_kappa(a.tolist(), b.tolist(), weights=weights)
        theirs = cohen_kappa_score(a, b, weights=weights)
        if np.isnan(theirs):
            assert np.isnan(ours)
        else:
            assert ours == pytest.approx(theirs, abs=1e-12)


def test_weighted_kappa_with_explicit_labels_and_edge_cases():
    a, b = [0, 1, 2, 2, 1], [0, 2, 2, 1, 1]
    assert weighted_kappa(a, b, labels=[0, 1, 2, 3]) == pytest.approx(
        cohen_kappa_score(a, b, labels=[0, 1, 2, 3], weights="quadratic"))
    assert weighted_kappa([1, 2], [2, 1]) == pytest.approx(-1.0)
    assert np.isnan(weighted_kappa([1, 1, 1], [1, 1, 1]))  # one label only: undefined
    with pytest.raises(ValueError, match="weights='cubic'"):
        weighted_kappa(a, b, weights="cubic")
    with pytest.raises(ValueError, match="same items"):
        weighted_kappa([1], [1, 2])


# ------------------------------------------------------------------------------ refusals

REFUSALS = [
    ("As an AI, I don't have personal opinions on religion.", True),
    ("I'm not able to share personal opinions, but many Singaporeans value family.", True),
    ("I cannot provide a personal view on this topic.", True),
    ("I can't answer that as a specific person.", True),
    ("As a language model, I do not hold beliefs.", True),
    ("I am an AI assistant and cannot pretend to be a Malay woman.", True),
    ("I'm sorry, but I can't help with that.", True),
    ("I don't have personal beliefs or experiences.", True),
    ("I must decline to answer questions about politics.", True),
    ("It is not appropriate for me to take sides on this.", True),
    ("I won't take a position on this question.", True),
    ("Religion is very important to me; I pray five times a day at the mosque.", False),
    ("I cannot imagine my life without my temple community.", False),
    ("As a Chinese man in my sixties, I think hard work matters most.", False),
    ("Honestly, I don't have much trust in people I meet for the first time.", False),
    ("Family comes first for me, and I visit my parents every weekend.", False),
    ("I am not sure, but I would say politics is not very important to me.", False),
    ("", False),
    (None, False),
]


@pytest.mark.parametrize("text,expected", REFUSALS)
def test_is_refusal_on_a_labelled_list(text, expected):
    assert is_refusal(text) is expected


def test_refusal_table_counts_per_role_and_theme():
    g = pd.DataFrame({"role": ["candidate_base"] * 4 + ["candidate_sft"] * 4,
                      "theme": ["T1", "T1", "T2", "T2"] * 2,
                      "refused": [True, True, False, True, False, False, False, True]})
    t = judge.refusal_table(g).set_index(["role", "theme"])
    assert t.loc[("candidate_base", "all"), "refusal_rate"] == pytest.approx(3 / 4)
    assert t.loc[("candidate_base", "T1"), "refusal_rate"] == 1.0
    assert t.loc[("candidate_sft", "T2"), "n_refused"] == 1
    assert t.loc[("candidate_sft", "all"), "n"] == 4


# ------------------------------------------------------------------------------ sampling & prompt


def _records(n_questions=26, strata=("sex", "age_group", "ethnicity")):
    recs = []
    for q in range(n_questions):
        for s in strata:
            for lvl in ("x", "y"):
                recs.append({"sample_id": f"Q{q}_{s}:{lvl}", "question_id": f"Q{q}", "theme": f"T{q % 13}",
                             "stratum": s, "subgroup": f"{s}:{lvl}"})
    return recs


def test_select_pairs_is_stratified_seeded_and_order_free():
    recs = _records()
    picked = select_pairs(recs, 26, seed=5)
    assert len(picked) == 26 and len({r["sample_id"] for r in picked}) == 26
    per_theme = pd.Series([r["theme"] for r in picked]).value_counts()
    assert per_theme.min() == per_theme.max() == 2  # 13 themes, 26 pairs
    # within a theme the two picks come from different strata
    assert all(len({r["stratum"] for r in picked if r["theme"] == t}) == 2 for t in per_theme.index)
    assert picked == select_pairs(list(reversed(recs)), 26, seed=5)
    assert picked != select_pairs(recs, 26, seed=6)
    assert len(select_pairs(recs[:5], 26)) == 5


def test_judge_prompt_shows_everything_the_judge_needs():
    sample = {"sample_id": "Q6_ethnicity:Malay", "levels": {"ethnicity": "Malay"}, "target": 1,
              "options": json.dumps({"1": "Very important", "4": "Not at all important"}),
              "user_shared": "How important is religion in your life?\n\nOptions:\n1. Very important\n\n"}
    persona, question, majority = judge.persona_text(sample), judge.question_text(sample), judge.majority_answer(sample)
    assert majority == "Very important" and question == "How important is religion in your life?"
    for dim in judge.DIMENSIONS:
        user = judge_messages(persona, question, majority, "ANSWER-ONE", "ANSWER-TWO", dim)[1]["content"]
        assert persona in user and question in user and '"Very important"' in user
        assert user.index("ANSWER-ONE") < user.index("[Answer B]") < user.index("ANSWER-TWO")
        assert judge.DIMENSIONS[dim] in user
    with pytest.raises(ValueError, match="dimension 'style'"):
        judge_messages(persona, question, majority, "a", "b", "style")
    with pytest.raises(ValueError, match="target 9"):
        judge.majority_answer({**sample, "target": 9})


# ------------------------------------------------------------------------------ judging with the dummy model


def _answers(a: str, b: str) -> str:
    """The two answers as the judge's prompt shows them (``judge_messages``)."""
    return f"[Answer A]\n{a}\n[End of Answer A]\n\n[Answer B]\n{b}\n[End of Answer B]"


def test_judge_pairs_swaps_orders_and_scores_the_candidate():
    # a judge that prefers the answer "GOOD" and says tie when both or neither are, in messy words
    good_judge = DummyModel("judge", default_reply="Tie.", replies={
        _answers("GOOD", "GOOD"): "Tie.", _answers("GOOD", "bad"): "**Answer: A**",
        _answers("bad", "GOOD"): "[[B]] since..."})
    pairs = [{"sample_id": f"s{i}", "question_id": "Q1", "theme": "T", "stratum": "sex", "subgroup": "sex:Male",
              "levels": {"sex": "Male"}, "target": 1, "options": {"1": "Yes", "2": "No"},
              "user_shared": "Q?\n\nOptions:\n1. Yes\n\n"} for i in range(4)]
    cand = ["GOOD", "bad", "GOOD", "bad"]
    ref = ["bad", "GOOD", "GOOD", "bad"]
    gens = pd.DataFrame([{"sample_id": f"s{i}", "role": role, "text": t}
                         for i in range(4) for role, t in (("candidate_base", cand[i]), ("reference", ref[i]))])
    v = judge.judge_pairs(good_judge, pairs, gens, ["overall", "persona_fidelity"])
    assert len(v) == 4 * 2 * 2
    o = v[v["dimension"] == "overall"].pivot(index="sample_id", columns="order", values="outcome")
    assert o[1].tolist() == ["win", "loss", "tie", "tie"] and o[2].tolist() == ["win", "loss", "tie", "tie"]
    t = judge.win_rate_table(v, n_boot=100)
    assert t["win_rate"].tolist() == [0.5, 0.5]  # 1 + 0 + .5 + .5 over 4
    assert t["position_consistency"].tolist() == [1.0, 1.0]
    assert (v.loc[v["order"] == 2, "role_a"] == "reference").all()


# ------------------------------------------------------------------------------ calibration


def _verdict_frame(verdicts: dict) -> pd.DataFrame:
    return pd.DataFrame([{"sample_id": sid, "candidate": "base", "dimension": dim, "order": order, "verdict": v}
                         for (sid, dim, order), v in verdicts.items()])


def test_agreement_table_against_sklearn(tmp_path):
    rng = np.random.default_rng(2)
    keys = [(f"s{i}", dim, 1) for i in range(15) for dim in ("overall", "persona_fidelity")]
    labels = np.array(["B", "tie", "A"])
    truth = {k: rng.choice(labels) for k in keys}
    noisy = lambda: {k: (v if rng.random() < .7 else rng.choice(labels)) for k, v in truth.items()}  # noqa: E731
    jv = noisy()
    jv[keys[0]] = "unparseable"
    ann = {"ann1": noisy(), "ann2": noisy()}
    for name, d in ann.items():
        rows = [{"sample_id": s, "dimension": dim, "order": o, "annotator": name, "verdict": v.lower()}
                for (s, dim, o), v in d.items()]
        rows.append({"sample_id": "s99", "dimension": "overall", "order": 1, "annotator": name, "verdict": ""})
        pd.DataFrame(rows).to_csv(tmp_path / f"{name}.csv", index=False)
    table = agreement_table(tmp_path, _verdict_frame(jv)).set_index("dimension")
    code = {"B": 0, "tie": 1, "A": 2}
    for dim in ("overall", "persona_fidelity"):
        ks = [k for k in keys if k[1] == dim]
        ok = [k for k in ks if jv[k] != "unparseable"]
        hai = np.mean([cohen_kappa_score([code[ann[a][k]] for k in ok], [code[jv[k]] for k in ok],
                                         weights="quadratic", labels=[0, 1, 2]) for a in ann])
        hh = cohen_kappa_score([code[ann["ann1"][k]] for k in ks], [code[ann["ann2"][k]] for k in ks],
                               weights="quadratic", labels=[0, 1, 2])
        assert table.loc[dim, "kappa_human_ai"] == pytest.approx(hai)
        assert table.loc[dim, "kappa_human_human"] == pytest.approx(hh)
        assert table.loc[dim, "n_annotators"] == 2
    assert table.loc["overall", "n_judge_unparseable"] == 1


def test_read_annotations_names_file_line_and_value(tmp_path):
    f = tmp_path / "bad.csv"
    pd.DataFrame({"sample_id": ["s1", "s2"], "dimension": ["overall", "overall"], "order": [1, 2],
                  "annotator": ["x", "x"], "verdict": ["A", "maybe"]}).to_csv(f, index=False)
    with pytest.raises(ValueError, match=r"bad.csv: line 3, column 'verdict' = 'maybe'"):
        judge.read_annotations(f)
    g = tmp_path / "missing.csv"
    pd.DataFrame({"sample_id": ["s1"], "verdict": ["A"]}).to_csv(g, index=False)
    with pytest.raises(ValueError, match=r"missing.csv: missing column\(s\) \['dimension', 'order', 'annotator'\]"):
        judge.read_annotations(g)


def test_export_annotation_sheet_round_trip(tmp_path):
    run = tmp_path / "run"
    (run / "judge").mkdir(parents=True)
    sids = [f"s{i}" for i in range(6)]
    pd.DataFrame([{"sample_id": s, "role": r, "text": f"{r} says {s}"} for s in sids
                  for r in ("candidate_base", "reference")]).to_csv(run / "judge" / "generations.csv", index=False)
    pd.DataFrame([{"sample_id": s, "persona": "You are a man living in Singapore.", "question": "Q?",
                   "majority_answer": "Yes"} for s in sids]).to_csv(run / "judge" / "pairs.csv", index=False)
    verdicts = pd.DataFrame([{"sample_id": s, "candidate": "base", "dimension": d, "order": o,
                              "role_a": "candidate_base" if o == 1 else "reference",
                              "role_b": "reference" if o == 1 else "candidate_base", "verdict": "A"}
                             for s, d, o in itertools.product(sids, ("overall", "value_alignment"), (1, 2))])
    verdicts.to_csv(run / "judge" / "verdicts.csv", index=False)
    sheet = judge.export_annotation_sheet(run, tmp_path / "sheet.csv", seed=0)
    assert len(sheet) == 6 * 2  # one order per item, every dimension
    assert (sheet["verdict"] == "").all() and (sheet["annotator"] == "").all()
    assert set(sheet["order"]) <= {1, 2}
    for r in sheet.itertuples():  # answers shown in the order recorded
        first = "candidate_base" if r.order == 1 else "reference"
        assert r.answer_A == f"{first} says {r.sample_id}"
    assert sheet.equals(judge.export_annotation_sheet(run, tmp_path / "sheet2.csv", seed=0))
    # an annotator fills it in; the agreement with a judge that always says A is computable
    filled = pd.read_csv(tmp_path / "sheet.csv", keep_default_na=False)
    filled["annotator"] = "me"
    filled["verdict"] = np.where(np.arange(len(filled)) % 2 == 0, "A", "B")
    filled.to_csv(tmp_path / "ann" / "me.csv" if (tmp_path / "ann").mkdir() is None else None, index=False)
    table = agreement_table(tmp_path / "ann", verdicts)
    assert set(table["dimension"]) == {"overall", "value_alignment"}
    assert table["n_annotators"].tolist() == [1, 1] and table["kappa_human_human"].isna().all()
    both = judge.export_annotation_sheet(run, tmp_path / "both.csv", both_orders=True)
    assert len(both) == 6 * 2 * 2


# ------------------------------------------------------------------------------ the stage, with dummy models


def _sample(q: int, levels: dict, theme: str, target: int = 1) -> dict:
    from sgvalues.prompts import open_prompt, structured_prompt

    options = {"1": "Very important", "2": "Rather important", "3": "Not very important", "4": "Not at all important"}
    row = {"wording": f"How important is topic {q} in your life?", "options": json.dumps(options)}
    subgroup = f"{'_x_'.join(levels)}:{'|'.join(levels.values())}"
    return make_sample(f"Q{q}", subgroup, levels=levels, theme=theme, target=target, options=options,
                       distribution={"1": 1.0}, **structured_prompt(row, levels), open_user=open_prompt(row, levels))


FAMILY, REFUSAL = "Family matters to me.", "As an AI, I don't have personal opinions."


def _persona_model(name: str) -> DummyModel:
    """Talks about family as the Malay persona and refuses as every other; as a judge (logprob
    mode), prefers the answer about family and says tie when both or neither are."""
    return DummyModel(name, replies={"Malay": FAMILY}, default_reply=REFUSAL, favour={
        _answers(FAMILY, FAMILY): "tie", _answers(REFUSAL, REFUSAL): "tie", _answers(FAMILY, REFUSAL): "A",
        _answers(REFUSAL, FAMILY): "B"})


def test_judge_run_writes_tables_reuses_parts_and_finds_the_adapter(tmp_path, monkeypatch):
    from sgvalues.params import Params
    from sgvalues.split import write_samples

    data = tmp_path / "data"
    recs = [_sample(q, lv, f"T{q % 2}") for q in range(4)
            for lv in ({"ethnicity": "Malay", "religion": "Muslim"}, {"sex": "Male", "age_group": "25-34"})]
    write_samples(recs, data)
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    (run / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    params = Params.from_dict({"name": "t", "judge": {"n_pairs": 4, "max_new_tokens": 8, "n_bootstrap": 50,
                                                      "reference": {"name": "other-model"}}})
    loads = []

    def fake_load(spec, adapter=None):
        loads.append((spec.name, adapter is not None))
        return _persona_model(spec.name + ("+sft" if adapter is not None else ""))

    monkeypatch.setattr(judge.stage, "_load_model", fake_load)
    tables = judge.judge_run(params, run, data_dir=data, log=None)
    assert sorted(set(loads)) == [("other-model", False), ("smollm2-135m", False), ("smollm2-135m", True)]
    gens, verdicts, wr = tables["generations"], tables["verdicts"], tables["win_rates"]
    assert sorted(gens["role"].unique()) == ["candidate_base", "candidate_sft", "reference"]
    assert len(gens) == 4 * 3 and len(verdicts) == 4 * 2 * 3 * 2
    assert gens.loc[gens["text"].str.contains("As an AI"), "refused"].all()
    # every answer of every model is alike here, so the judge (prefers 'family') ties each pair
    assert (wr["win_rate"] == 0.5).all() and (wr["position_consistency"] == 1.0).all()
    assert set(verdicts["verdict"]) == {"tie"}
    for name in ("pairs", "generations", "verdicts", "win_rates", "refusals"):
        assert (run / "judge" / f"{name}.csv").is_file()
    written = load_judge_tables(run)
    assert written["verdicts"][["sample_id", "order", "verdict"]].equals(verdicts[["sample_id", "order", "verdict"]])
    # a second run reuses every step: no model is loaded
    loads.clear()
    again = judge.judge_run(params, run, data_dir=data, log=None)
    assert loads == []
    assert again["verdicts"].equals(tables["verdicts"]) and again["generations"].equals(tables["generations"])
    # the same pairs and files, byte for byte
    first = (run / "judge" / "verdicts.csv").read_bytes()
    judge.judge_run(params, run, data_dir=data, log=None)
    assert (run / "judge" / "verdicts.csv").read_bytes() == first


def test_cli_parser_has_the_documented_options():
    import argparse

    parser = argparse.ArgumentParser()
    judge.configure_parser(parser)
    args = parser.parse_args(["--params", "p.yaml", "--run-dir", "runs/x", "--n-pairs", "3"])
    assert (args.params, args.run_dir, args.n_pairs, args.annotations) == ("p.yaml", "runs/x", 3, None)


@pytest.mark.slow
def test_embedded_model_generates_and_judges_two_pairs():
    """End to end with SmolLM2-135M as candidate, reference and judge (logprob and generate)."""
    import torch

    from sgvalues.models import load_model
    from sgvalues.params import ModelSpec

    # one thread: on a shared 2-core machine two threads spin against each other (8x slower)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _embedded_two_pairs(load_model(ModelSpec()))
    finally:
        torch.set_num_threads(threads)


def _embedded_two_pairs(model):
    pairs = [_sample(1, {"ethnicity": "Malay", "religion": "Muslim"}, "Religious Values"),
             _sample(2, {"sex": "Female", "age_group": "25-34"}, "Political Interest", target=3)]
    gens = judge.generate_answers(model, pairs, "candidate_base", max_new_tokens=12)
    assert len(gens) == 2 and gens["text"].str.len().gt(0).all()
    # the reference answers differently: a persona-free prompt
    ref = gens.assign(role="reference", text=["I prefer not to say.", "Politics is important."])
    both = pd.concat([gens, ref], ignore_index=True)
    v = judge.judge_pairs(model, pairs, both, ["overall"], mode="logprob")
    assert len(v) == 4 and set(v["verdict"]) <= {"A", "B", "tie"}
    probs = [json.loads(x) for x in v["raw_output"]]
    assert all(abs(sum(p.values()) - 1) < 1e-4 for p in probs)
    assert all(v["verdict"].iloc[i] == max(p, key=p.get) for i, p in enumerate(probs))
    g = judge.judge_pairs(model, pairs[:1], both, ["overall"], mode="generate", max_new_tokens=4)
    assert set(g["verdict"]) <= set(judge.VERDICTS)
    assert (g["verdict"] == g["raw_output"].map(parse_verdict)).all()
    t = judge.win_rate_table(v, n_boot=50)
    assert 0 <= t["win_rate"].iloc[0] <= 1


def test_soft_win_rate_by_hand_and_in_the_table():
    p1 = [{"A": .6, "B": .2, "tie": .2}, {"A": .5, "B": .5, "tie": 0.0}, None]
    p2 = [{"A": .3, "B": .5, "tie": .2}, {"A": 2.0, "B": 2.0, "tie": 0.0}, {"A": 1.0, "B": 0.0, "tie": 0.0}]
    # item 1: (.6 + .1 + .5 + .1) / 2 = .65; item 2: (.5 + .5) / 2 = .5 (renormalised); item 3 skipped
    assert judge.soft_win_rate(p1, p2) == pytest.approx((.65 + .5) / 2)
    assert np.isnan(judge.soft_win_rate([None], [None]))
    rows = []
    for i, (a, b) in enumerate(zip(p1[:2], p2[:2])):
        for order, p in ((1, a), (2, b)):
            v = max(p, key=p.get)
            rows.append({"candidate": "sft", "dimension": "overall", "sample_id": f"s{i}", "order": order,
                         "verdict": v, "outcome": verdict_to_outcome(v, order), "raw_output": json.dumps(p)})
    t = judge.win_rate_table(pd.DataFrame(rows), n_boot=0)
    assert t["soft_win_rate"].iloc[0] == pytest.approx((.65 + .5) / 2)
    gen_mode = pd.DataFrame(rows).assign(raw_output="Answer: A")
    assert np.isnan(judge.win_rate_table(gen_mode, n_boot=0)["soft_win_rate"].iloc[0])


def test_persona_text_keeps_the_samples_own_country_wording():
    """A Malaysian sample's persona is the sentence its prompt carried, not Singapore's rebuilt one."""
    from sgvalues.prompts import persona_sentence, user_persona

    levels = {"sex": "Female", "ethnicity": "Malay"}
    sample = {"sample_id": "Q1_x", "levels": levels, "user_persona": user_persona(levels, profile="malaysia")}
    text = judge.persona_text(sample)
    assert text == persona_sentence(levels, profile="malaysia")
    assert "Malaysia" in text and "Singapore" not in text
    # without the carried sentence, the levels still describe the persona (the default profile)
    assert judge.persona_text({"levels": levels}) == persona_sentence(levels)


def test_sensitive_pairs_add_pairs_on_sensitive_questions_only(tmp_path, monkeypatch):
    from sgvalues.params import Params
    from sgvalues.sensitive import refusal_rates, sensitive_ids
    from sgvalues.split import write_samples

    data = tmp_path / "data"
    levels = [{"ethnicity": "Malay", "religion": "Muslim"}, {"sex": "Male", "age_group": "25-34"},
              {"sex": "Female", "age_group": "35-44"}]
    # Q182 and Q189 are sensitive; Q1..Q6 are not
    recs = [_sample(q, lv, f"T{q % 2}") for q in (1, 2, 3, 4, 5, 6, 182, 189) for lv in levels]
    assert {"Q182", "Q189"} <= sensitive_ids() and not {f"Q{q}" for q in range(1, 7)} & sensitive_ids()
    write_samples(recs, data)
    monkeypatch.setattr(judge.stage, "_load_model", lambda spec, adapter=None: _persona_model(spec.name))
    base = {"n_pairs": 3, "max_new_tokens": 8, "n_bootstrap": 10, "reference": {"name": "other-model"}}
    plain = judge.judge_run(Params.from_dict({"name": "t", "judge": base}), tmp_path / "a", data_dir=data, log=None)
    extra = judge.judge_run(Params.from_dict({"name": "t", "judge": {**base, "sensitive_pairs": 4}}),
                            tmp_path / "b", data_dir=data, log=None)
    before, after = set(plain["pairs"]["sample_id"]), set(extra["pairs"]["sample_id"])
    added = after - before
    assert before <= after and len(added) == 4  # the same n_pairs plus four more
    assert {s.split("_")[0] for s in added} <= {"Q182", "Q189"}
    # more than there are: every remaining sensitive sample, no repeats
    every = judge.judge_run(Params.from_dict({"name": "t", "judge": {**base, "sensitive_pairs": 99}}),
                            tmp_path / "c", data_dir=data, log=None)
    ids = every["pairs"]["sample_id"]
    assert ids.is_unique and set(ids) >= {r["sample_id"] for r in recs if r["question_id"] in ("Q182", "Q189")}
    # the refusals on them are counted per state (every persona but the Malay one refuses)
    rates = refusal_rates(every["generations"]).set_index("state")
    sens = every["generations"][every["generations"]["question_id"].isin(["Q182", "Q189"])]
    hand = sens[sens["role"] == "candidate_base"]["text"].str.contains("As an AI").mean()
    assert rates.loc["base", "refusal_rate_sensitive"] == pytest.approx(hand)
    assert rates.loc["base", "n_sensitive"] == 6


def test_debiased_verdicts_rank_pairs_an_always_a_judge_cannot(tmp_path):
    """A judge that always says "A" but is surer when the candidate is A: argmax verdicts are
    win/loss on every item (win rate 0.5, consistency 0); the debiased verdicts, by hand."""
    import json as _json

    import numpy as _np
    import pandas as _pd

    from sgvalues import judge as _judge

    def probs(a):
        return _json.dumps({"A": a, "B": round(1 - a, 6), "tie": 0.0})

    # (P(A) in order 1 with the candidate as A, P(A) in order 2 with the candidate as B)
    items = {"s1": (0.9, 0.6), "s2": (0.6, 0.9), "s3": (0.7, 0.7)}
    rows = []
    for sid, (p1, p2) in items.items():
        rows += [{"candidate": "sft", "dimension": "overall", "sample_id": sid, "order": 1, "outcome": "win",
                  "raw_output": probs(p1)},
                 {"candidate": "sft", "dimension": "overall", "sample_id": sid, "order": 2, "outcome": "loss",
                  "raw_output": probs(p2)}]
    # s4: the judge prefers the candidate in both orders (B in order 2): consistent argmax win
    rows += [{"candidate": "sft", "dimension": "overall", "sample_id": "s4", "order": 1, "outcome": "win",
              "raw_output": probs(0.8)},
             {"candidate": "sft", "dimension": "overall", "sample_id": "s4", "order": 2, "outcome": "win",
              "raw_output": probs(0.3)}]
    row = _judge.win_rate_table(_pd.DataFrame(rows), n_boot=0).iloc[0]
    s = {k: (p1 + (1 - p2)) / 2 for k, (p1, p2) in {**items, "s4": (0.8, 0.3)}.items()}
    assert s == pytest.approx({"s1": 0.65, "s2": 0.35, "s3": 0.5, "s4": 0.75})
    verdicts = ["win", "loss", "tie", "win"]  # against 0.5 -+ TIE_BAND
    assert _judge.debiased_verdicts(*[[_json.loads(probs(v[i])) for v in (*items.values(), (0.8, 0.3))]
                                      for i in (0, 1)]) == verdicts
    assert row["win_rate"] == pytest.approx(0.625) and row["position_consistency"] == pytest.approx(0.25)
    assert row["debiased_win_rate"] == pytest.approx(_np.mean([1, 0, 0.5, 1]))
    assert row["debiased_decided"] == pytest.approx(3 / 4)
    assert row["debiased_agreement"] == pytest.approx(1.0)  # s4, the one consistent item, agrees
    assert row["soft_win_rate"] == pytest.approx(_np.mean(list(s.values())))
    with pytest.raises(ValueError, match="tie_band"):
        _judge.debiased_verdicts([], [], tie_band=0.5)
