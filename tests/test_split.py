"""Split and samples: counts, order, bytes, round trip, and the leakage check (which must catch leaks)."""

import json

import numpy as np
import pandas as pd
import pytest

from sgvalues.modal import modal_answers
from sgvalues.prompts import structured_messages
from sgvalues.split import (SAMPLE_KEYS, LeakageError, assert_no_leakage, build_samples, example_prompts,
                            load_samples, load_samples_frame, split_counts, write_samples)
from sgvalues.subgroups import AXES, STRATUM_NAMES, build_subgroups


@pytest.fixture(scope="module")
def tables():
    rng = np.random.default_rng(11)
    n = 500
    r = pd.DataFrame({
        "respondent_id": range(n), "weight": 1.0,
        "sex": rng.choice(["Male", "Female"], n), "age_group": rng.choice(AXES["age_group"], n),
        "ethnicity": rng.choice(["Chinese", "Malay", "Indian"], n, p=[0.7, 0.2, 0.1]),
        "religion": rng.choice(["None", "Buddhist", "Muslim", "Protestant"], n),
        "Q2": rng.choice([1.0, 2.0, 3.0, 4.0], n),
        "Q1": rng.choice([1.0, 2.0], n),
        "Q3": np.nan,
    })
    # Nobody aged 65+ answered Q1: those subgroups have no Q1 sample.
    r.loc[r["age_group"] == "65+", "Q1"] = np.nan
    four = json.dumps({"1": "Very important", "2": "Rather important", "3": "Not very important",
                       "4": "Not at all important"})
    # rows deliberately out of question order: samples follow the question number
    q = pd.DataFrame({"question_id": ["Q2", "Q1"], "number": [2, 1], "theme": ["T", "T"],
                      "wording": ["How important are friends?", "How important is family?"],
                      "options": [four, '{"1": "Yes", "2": "No"}'], "scale_min": [1, 1], "scale_max": [4, 2]})
    sg = build_subgroups(r, min_n=10)
    m = modal_answers(r, q, sg)
    return r, q, sg, m


def test_counts_are_subgroups_times_questions_minus_missing(tables):
    r, q, sg, m = tables
    samples = build_samples(q, sg, m)
    no_q1 = sg["subgroup"][sg["levels"].map(lambda s: json.loads(s).get("age_group") == "65+")]
    assert len(no_q1) > 0
    assert len(samples) == len(sg) * len(q) - len(no_q1)
    for split in ("train", "ood"):
        n_sg = int((sg["split"] == split).sum())
        missing = int((sg.set_index("subgroup").loc[no_q1, "split"] == split).sum())
        assert sum(s["split"] == split for s in samples) == n_sg * 2 - missing
    assert not any(s["question_id"] == "Q1" and s["subgroup"] in set(no_q1) for s in samples)


def test_order_keys_and_targets(tables):
    r, q, sg, m = tables
    samples = build_samples(q, sg, m)
    assert all(tuple(s) == SAMPLE_KEYS for s in samples)
    qnum = {"Q1": 1, "Q2": 2}
    sub_pos = {sid: i for i, sid in enumerate(sg["subgroup"])}
    keys = [(qnum[s["question_id"]], STRATUM_NAMES.index(s["stratum"]), sub_pos[s["subgroup"]]) for s in samples]
    assert keys == sorted(keys)
    assert samples[0]["question_id"] == "Q1"
    lookup = m.set_index(["question_id", "subgroup"])
    for s in samples:
        row = lookup.loc[(s["question_id"], s["subgroup"])]
        assert s["target"] == row.modal_answer and isinstance(s["target"], int)
        assert s["sample_id"] == f"{s['question_id']}_{s['subgroup']}"
        assert s["distribution"] == {k: pytest.approx(v) for k, v in json.loads(row.distribution).items()}
        assert list(s["options"]) == [str(c) for c in range(s["scale_min"], s["scale_max"] + 1)]
        assert s["split"] == ("ood" if s["stratum"] in ("age_group_x_religion", "age_group_x_ethnicity",
                                                        "ethnicity_x_religion") else "train")
    # one user_shared per question, one persona per subgroup
    assert len({s["user_shared"] for s in samples}) == 2
    assert len({s["user_persona"] for s in samples}) == len(sg)


def test_files_are_deterministic_and_round_trip(tables, tmp_path):
    r, q, sg, m = tables
    samples = build_samples(q, sg, m)
    write_samples(samples, tmp_path / "a")
    write_samples(build_samples(q, sg, m), tmp_path / "b")
    for split in ("train", "ood"):
        a = (tmp_path / "a" / f"samples_{split}.jsonl").read_bytes()
        assert a == (tmp_path / "b" / f"samples_{split}.jsonl").read_bytes()
        # each line is exactly what json.dumps would write
        lines = a.decode().splitlines()
        expected = [json.dumps(s, ensure_ascii=False) for s in samples if s["split"] == split]
        assert lines == expected
        loaded = load_samples(tmp_path / "a", split)
        assert loaded == [s for s in samples if s["split"] == split]
        frame = load_samples_frame(tmp_path / "a", split)
        assert list(frame.columns) == list(SAMPLE_KEYS) and len(frame) == len(loaded)
    msgs = structured_messages(loaded[0])
    assert msgs[1]["content"].endswith(loaded[0]["user_persona"])
    assert not list(tmp_path.glob("a/.*.tmp"))           # no temporary files left behind


def test_load_samples_names_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="samples_train.jsonl"):
        load_samples(tmp_path, "train")
    (tmp_path / "samples_ood.jsonl").write_text('{"sample_id": "x"}\n')
    with pytest.raises(ValueError, match=r"samples_ood.jsonl, line 1: missing key"):
        load_samples(tmp_path, "ood")


def test_no_leakage_and_the_check_catches_planted_leaks(tables):
    r, q, sg, m = tables
    samples = build_samples(q, sg, m)
    train = [s for s in samples if s["split"] == "train"]
    ood = [s for s in samples if s["split"] == "ood"]
    report = assert_no_leakage(train, ood)
    assert report["ok"] and report["ood_strata"] == ["age_group_x_religion", "age_group_x_ethnicity",
                                                     "ethnicity_x_religion"]
    # every OOD combination is made of levels seen (singly) in training
    assert report["ood_combos_with_levels_seen"] == report["n_ood_combos"] > 0
    assert_no_leakage(pd.DataFrame(train), pd.DataFrame(ood))   # DataFrames too

    # 1. an OOD combination relabelled as a training sample of a training stratum
    planted = dict(ood[0], split="train", stratum="sex_x_age_group", sample_id="planted")
    with pytest.raises(LeakageError, match="level combinations also in training"):
        assert_no_leakage(train + [planted], ood)
    # 2. a whole OOD sample copied into training
    with pytest.raises(LeakageError, match="OOD strata also in training"):
        assert_no_leakage(train + [dict(ood[0], split="train")], ood)
    # 3. a record in the wrong file
    with pytest.raises(LeakageError, match="split != 'ood'"):
        assert_no_leakage(train, ood + [train[0]])


def test_split_counts_and_examples(tables):
    r, q, sg, m = tables
    samples = build_samples(q, sg, m)
    train = [s for s in samples if s["split"] == "train"]
    ood = [s for s in samples if s["split"] == "ood"]
    counts = split_counts(sg, train, ood, n_questions=2).set_index("quantity")
    assert counts.at["train samples", "ours"] == len(train) and counts.at["ood subgroups", "published"] == 48
    assert counts.at["all samples", "published"] == 20877
    ex = example_prompts(samples, "Q1")
    assert ex["stratum"].tolist() == [s for s in STRATUM_NAMES if s in set(sg["stratum"])]


def test_strata_table_counts_kept_subgroups(tables):
    from sgvalues.split import strata_table

    _, _, sg, _ = tables
    t = strata_table(sg).set_index("stratum")
    assert t["kept"].sum() == len(sg) and t.at["religion", "possible"] == 7
    assert t.at["ethnicity_x_religion", "kept"] == int((sg["stratum"] == "ethnicity_x_religion").sum())
    assert (t["kept"] <= t["possible"]).all()


def test_samples_carry_the_question_wording_the_judge_reads(tables, tmp_path):
    from sgvalues.judge import question_text
    from sgvalues.split import load_samples, write_samples

    r, q, sg, m = tables
    samples = build_samples(q, sg, m)
    wording = dict(zip(q["question_id"], q["wording"].str.strip()))
    for s in samples:
        assert s["wording"] == wording[s["question_id"]] and question_text(s) == s["wording"]
        assert s["user_shared"].startswith(s["wording"])  # the prompt shows the same words
    write_samples(samples, tmp_path)
    old = tmp_path / "old"  # a folder of prepare format 1: records without 'wording' still load
    old.mkdir()
    (old / "samples_ood.jsonl").write_text("".join(
        json.dumps({k: v for k, v in s.items() if k != "wording"}) + "\n" for s in samples if s["split"] == "ood"))
    for new, legacy in zip(load_samples(tmp_path, "ood"), load_samples(old, "ood")):
        assert "wording" not in legacy and question_text(legacy) == question_text(new)


def test_samples_carry_every_tied_modal_code(tables):
    r, q, sg, m = tables
    samples = {s["sample_id"]: s for s in build_samples(q, sg, m)}
    for row in m.itertuples():
        s = samples[f"{row.question_id}_{row.subgroup}"]
        # the tied codes counted by hand from the shares (exact here: unweighted counts of one subgroup)
        shares = json.loads(row.distribution)
        top = max(shares.values())
        assert s["targets"] == sorted(int(c) for c, v in shares.items() if abs(v - top) < 1e-9)
        assert s["target"] == s["targets"][0] and len(s["targets"]) == row.n_tied_modes
    with pytest.raises(ValueError, match="does not hold the modal_answer"):
        build_samples(q, sg, m.assign(tied_modes="[9]"))
