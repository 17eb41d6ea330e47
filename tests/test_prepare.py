"""End to end: a tiny WVS-format file written here -> load_wvs -> prepare -> files, checked by hand."""

import json

import pandas as pd
import pytest

from sgvalues.cli import main as cli_main
from sgvalues.params import Params
from sgvalues.prepare import OUTPUT_FILES, SUMMARY_FILE, SYNTHETIC_FILENAME, load_prepared, prepare, \
    prepare_run_data
from sgvalues.split import assert_no_leakage

CHINESE, MALAY, EURASIAN = 702004, 702006, 702008
# id, sex (1 M, 2 F), X003R band, Q290, Q289 (0 none, 1 RC, 4 Jew, 5 Muslim, 7 Buddhist), weight,
# Q1, Q2, Q3 (never asked), Q4 (mostly don't know), Q42 (nominal)
SG_ROWS = [
    (1, 1, 1, CHINESE, 7, 1.0, 1, 1, -4, 1, 1),
    (2, 1, 1, CHINESE, 7, 1.0, 1, 2, -4, 2, 2),
    (3, 1, 2, CHINESE, 0, 3.0, 2, 2, -4, 1, 3),
    (4, 2, 1, MALAY, 5, 1.0, 2, -1, -4, 2, 1),
    (5, 2, 1, MALAY, 5, 1.0, 2, -1, -4, -1, 1),
    (6, 2, 2, MALAY, 5, 1.0, 1, -1, -4, -1, 2),
    (7, 2, 2, CHINESE, 7, 2.0, 3, 4, -4, -1, 2),
    (8, 2, 2, EURASIAN, 1, 1.0, 3, 4, -4, -1, 3),
    (9, 1, 1, CHINESE, 4, 1.0, 2, 1, -4, -2, 3),
    (10, 2, -2, CHINESE, 7, 1.0, -2, 3, -4, -1, 1),
]
OTHER_COUNTRY = [(11, 1, 1, 0, 7, 1.0, 4, 4, 1, 1, 1), (12, 2, 2, 0, 7, 1.0, 4, 4, 1, 1, 1)]
COLUMNS = ["D_INTERVIEW", "Q260", "X003R", "Q290", "Q289", "W_WEIGHT", "Q1", "Q2", "Q3", "Q4", "Q42"]

TRAIN = ["sex:Male", "sex:Female", "age_group:16-24", "age_group:25-34", "ethnicity:Chinese", "ethnicity:Malay",
         "religion:Muslim", "religion:Buddhist", "sex_x_age_group:Male|16-24", "sex_x_age_group:Female|25-34",
         "sex_x_religion:Female|Muslim", "sex_x_ethnicity:Male|Chinese", "sex_x_ethnicity:Female|Malay"]
OOD = ["age_group_x_ethnicity:16-24|Chinese", "ethnicity_x_religion:Chinese|Buddhist",
       "ethnicity_x_religion:Malay|Muslim"]
# every Malay said "don't know" to Q2: no Q2 sample for these
NO_Q2 = {"ethnicity:Malay", "religion:Muslim", "sex_x_religion:Female|Muslim", "sex_x_ethnicity:Female|Malay",
         "ethnicity_x_religion:Malay|Muslim"}


def _write_wvs(path):
    df = pd.DataFrame(SG_ROWS + OTHER_COUNTRY, columns=COLUMNS)
    df.insert(0, "B_COUNTRY", [702] * len(SG_ROWS) + [158] * len(OTHER_COUNTRY))
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny")
    src = _write_wvs(base / "tiny_wvs.csv")
    return src, prepare(src, base / "out", min_n=3), prepare(src, base / "out_w", min_n=3, weighted=True)


def test_files_and_summary_by_hand(prepared):
    src, p, _ = prepared
    assert sorted(f.name for f in p.path.iterdir()) == sorted(OUTPUT_FILES)
    assert p.questions["question_id"].tolist() == ["Q1", "Q2"]
    reasons = p.excluded.set_index("question_id")["reason"]
    assert reasons["Q42"] == "nominal scale"
    assert "not asked" in reasons["Q3"] and "valid" in reasons["Q4"]
    assert len(p.questions) + len(p.excluded) == 259
    assert p.subgroups.loc[p.subgroups.split == "train", "subgroup"].tolist() == TRAIN
    assert p.subgroups.loc[p.subgroups.split == "ood", "subgroup"].tolist() == OOD
    assert p.subgroups.set_index("subgroup").loc[["sex:Male", "sex:Female", "ethnicity:Chinese"],
                                                 "n_respondents"].tolist() == [4, 6, 6]
    s = json.loads((p.path / SUMMARY_FILE).read_text())
    assert (s["n_respondents"], s["n_questions"], s["synthetic"]) == (10, 2, False)
    assert s["subgroups"] == {"train": 13, "ood": 3}
    assert s["samples"] == {"train": 13 * 2 - 4, "ood": 3 * 2 - 1}
    assert s["missing_pairs"] == {"train": 4, "ood": 1}
    modal = p.modal_answers
    assert s["ties"]["train"] + s["ties"]["ood"] == int((modal["n_tied_modes"] > 1).sum()) > 0
    import hashlib
    assert s["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()


def test_samples_on_disk(prepared):
    _, p, _ = prepared
    train = [json.loads(x) for x in (p.path / "samples_train.jsonl").read_text().splitlines()]
    ood = [json.loads(x) for x in (p.path / "samples_ood.jsonl").read_text().splitlines()]
    assert [x["sample_id"] for x in train] == [f"Q1_{g}" for g in TRAIN] + [f"Q2_{g}" for g in TRAIN if g not in NO_Q2]
    assert [x["sample_id"] for x in ood] == [f"Q1_{g}" for g in OOD] + [f"Q2_{g}" for g in OOD if g not in NO_Q2]
    assert assert_no_leakage(train, ood)["ok"]
    back = load_prepared(p.path)
    assert back.samples_train["sample_id"].tolist() == [x["sample_id"] for x in train]
    # "None" survives as text, and questions come back like the catalogue (dict options)
    assert back.questions.loc[0, "options"] == {1: "Very important", 2: "Rather important",
                                                3: "Not very important", 4: "Not at all important"}
    pd.testing.assert_frame_equal(back.modal_answers, p.modal_answers.reset_index(drop=True), check_dtype=False)


def test_modal_answers_by_hand(prepared):
    _, p, pw = prepared
    m = p.modal_answers.set_index(["question_id", "subgroup"])
    w = pw.modal_answers.set_index(["question_id", "subgroup"])
    # men's Q1: 1, 1, 2, 2 -> tie, lowest code; weighted (respondent 3 weighs 3) -> 2
    row = m.loc[("Q1", "sex:Male")]
    assert (row.modal_answer, row.n_tied_modes, row.n_valid) == (1, 2, 4)
    assert json.loads(row.distribution) == {"1": 0.5, "2": 0.5, "3": 0.0, "4": 0.0}
    roww = w.loc[("Q1", "sex:Male")]
    assert (roww.modal_answer, roww.n_tied_modes, roww.n_valid) == (2, 1, 4)
    assert json.loads(roww.distribution) == pytest.approx({"1": 2 / 6, "2": 4 / 6, "3": 0.0, "4": 0.0}, abs=1e-6)
    # women's Q1: 2, 2, 1, 3, 3 (one no answer) -> tie 2/3; weighted 1:1, 2:2, 3:3 -> 3
    row = m.loc[("Q1", "sex:Female")]
    assert (row.modal_answer, row.n_tied_modes, row.n_valid) == (2, 2, 5)
    assert w.loc[("Q1", "sex:Female")].modal_answer == 3
    # Q2 of the Chinese-Buddhists (1, 2, 7, 10): 1, 2, 4, 3 -> four-way tie
    row = m.loc[("Q2", "ethnicity_x_religion:Chinese|Buddhist")]
    assert (row.modal_answer, row.n_tied_modes, row.n_valid) == (1, 4, 4)
    assert ("Q2", "ethnicity:Malay") not in m.index


def test_same_input_same_bytes(prepared, tmp_path):
    src, p, _ = prepared
    again = prepare(src, tmp_path / "again", min_n=3)
    for name in OUTPUT_FILES:
        assert (again.path / name).read_bytes() == (p.path / name).read_bytes(), name


def test_cli(prepared, tmp_path, capsys):
    src, p, _ = prepared
    assert cli_main(["prepare", "--wvs", str(src), "--out", str(tmp_path / "cli"), "--min-n", "3"]) == 0
    assert "subgroups train 13 / ood 3" in capsys.readouterr().out
    assert (tmp_path / "cli" / "samples_ood.jsonl").read_bytes() == (p.path / "samples_ood.jsonl").read_bytes()
    assert cli_main(["prepare", "--wvs", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x")]) == 2
    assert "nope.csv" in capsys.readouterr().err
    assert cli_main(["prepare", "--wvs", str(src), "--out", str(tmp_path / "y"), "--country", "4"]) == 2
    assert "B_COUNTRY == 4" in capsys.readouterr().err


def test_prepare_run_data_skips_when_up_to_date(tmp_path):
    params = Params.from_dict({"name": "t", "data": {"synthetic_n": 120, "synthetic_seed": 3, "min_n": 10}})
    data = prepare_run_data(params, tmp_path / "run")
    assert data == tmp_path / "run" / "data"
    assert (data / SYNTHETIC_FILENAME).is_file()
    summary = json.loads((data / SUMMARY_FILE).read_text())
    assert summary["synthetic"] and summary["n_respondents"] == 120
    assert summary["inputs"]["synthetic_seed"] == 3
    # the generator's every module and both resource files key the cache (hashlib, not file_sha256)
    import hashlib

    from sgvalues import synthetic
    hashes = summary["inputs"]["synthetic_inputs_sha256"]
    assert {"answers.py", "singapore_reference.json", "synthetic_population.yaml"} <= set(hashes)
    assert hashes == {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in synthetic.input_files()}
    stamps = {f: (data / f).stat().st_mtime_ns for f in OUTPUT_FILES}
    prepare_run_data(params, tmp_path / "run")                       # nothing to do
    assert {f: (data / f).stat().st_mtime_ns for f in OUTPUT_FILES} == stamps
    changed = Params.from_dict({"name": "t", "data": {"synthetic_n": 120, "synthetic_seed": 3, "min_n": 40}})
    prepare_run_data(changed, tmp_path / "run")                      # min_n changed: rebuilt
    assert json.loads((data / SUMMARY_FILE).read_text())["min_n"] == 40
    assert not list(data.glob(".*.tmp*"))


def test_notebook_helpers(prepared):
    from sgvalues.prepare import catalogue_by_theme, params_with_data, source_note

    _, p, _ = prepared
    themes = catalogue_by_theme(p.questions, p.excluded)
    assert themes["selected"].sum() == 2 and themes["total"].sum() == 259
    assert themes.set_index("theme").at["Social Values, Attitudes & Stereotypes", "selected"] == 2
    base = Params.from_dict({"name": "x", "data": {"min_n": 25}})
    changed = params_with_data(base, min_n=None, weighted=True, wvs_file="f.csv")
    assert (changed.data.min_n, changed.data.weighted, changed.data.wvs_file) == (25, True, "f.csv")
    with pytest.raises(ValueError, match="unknown data parameter"):
        params_with_data(base, seed=1)
    assert source_note(p.summary).startswith("**WVS-7 data.**")
    assert source_note({**p.summary, "synthetic": True}).startswith("**Synthetic data.**")


def test_overlap_table_by_hand(prepared):
    """overlap.csv of the tiny file: every OOD subgroup's best train match, counted by hand."""
    _, p, _ = prepared
    o = p.overlap.set_index("subgroup")
    # 16-24 Chinese = respondents 1, 2, 9; sex_x_age_group:Male|16-24 is exactly them (3 / 3)
    r = o.loc["age_group_x_ethnicity:16-24|Chinese"]
    assert (r.train_subgroup, r.n_shared, r.n_union, r.overlap, r.flagged) == \
        ("sex_x_age_group:Male|16-24", 3, 3, 1.0, True)
    # Chinese Buddhists = 1, 2, 7, 10 = every Buddhist (religion:Buddhist, 4 / 4)
    assert o.loc["ethnicity_x_religion:Chinese|Buddhist", "train_subgroup"] == "religion:Buddhist"
    # Malay Muslims = 4, 5, 6: ethnicity:Malay is them (3 / 3), listed before religion:Muslim
    assert o.loc["ethnicity_x_religion:Malay|Muslim", ["train_subgroup", "overlap"]].tolist() == ["ethnicity:Malay", 1.0]
    assert load_prepared(p.path).overlap["subgroup"].tolist() == OOD
