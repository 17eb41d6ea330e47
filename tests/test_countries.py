"""Country profiles: loading and checking, and a two-country WVS file prepared for Malaysia (458)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from sgvalues.cli import main as cli_main
from sgvalues.countries import ProfileError, available_profiles, load_profile, read_profile
from sgvalues.diversity import modal_diversity_score
from sgvalues.params import Params
from sgvalues.prepare import load_prepared, prepare, prepare_run_data
from sgvalues.prompts import persona_sentence
from sgvalues.split import assert_no_leakage

CODEBOOK = Path("/work/shared/wvs7/codebook.json")  # present on the project's machines, not in a clone

MALAY, CHINESE, INDIAN = 458004, 458012, 458014
SG_CHINESE, SG_MALAY = 702004, 702006
# id, sex (1 M, 2 F), X003R band, Q290, Q289 (0 none, 1 RC, 2 Prot, 4 Jew, 5 Muslim, 6 Hindu, 7 Buddhist,
# 8 other Christian), W_WEIGHT, Q1, Q2
MY_ROWS = [
    (101, 1, 1, MALAY, 5, 1.0, 1, 2),
    (102, 2, 1, MALAY, 5, 1.0, 1, 2),
    (103, 2, 2, MALAY, 5, 3.0, 2, 1),
    (104, 1, 2, CHINESE, 7, 1.0, 2, 3),
    (105, 2, 2, CHINESE, 1, 1.0, 3, 3),
    (106, 1, 1, CHINESE, 8, 1.0, 3, 4),
    (107, 2, 1, INDIAN, 6, 1.0, 1, 1),
    (108, 1, 2, INDIAN, 2, 1.0, 2, 2),
    (109, 1, 1, INDIAN, 4, 1.0, 4, 1),
]
SG_ROWS = [
    (1, 1, 1, SG_CHINESE, 7, 1.0, 1, 1),
    (2, 1, 1, SG_CHINESE, 7, 1.0, 1, 2),
    (3, 2, 2, SG_MALAY, 5, 1.0, 2, 2),
    (4, 2, 2, SG_MALAY, 5, 1.0, 2, 3),
]
COLUMNS = ["D_INTERVIEW", "Q260", "X003R", "Q290", "Q289", "W_WEIGHT", "Q1", "Q2"]

# Malaysia's maps, written out here independently of the YAML
MY_LEVELS = {
    "sex": {1: "Male", 2: "Female"},
    "age_group": {1: "16-24", 2: "25-34"},
    "ethnicity": {MALAY: "Malay", CHINESE: "Chinese", INDIAN: "Indian"},
    "religion": {5: "Muslim", 7: "Buddhist", 6: "Hindu", 1: "Christian", 2: "Christian", 8: "Christian",
                 0: "None", 9: "Other"},
}
COL_OF = {"sex": 1, "age_group": 2, "ethnicity": 3, "religion": 4}
OOD = {"age_group_x_religion", "age_group_x_ethnicity", "ethnicity_x_religion"}
STRATA = [["sex"], ["age_group"], ["ethnicity"], ["religion"], ["sex", "age_group"], ["sex", "religion"],
          ["sex", "ethnicity"], ["age_group", "religion"], ["age_group", "ethnicity"], ["ethnicity", "religion"]]


def _hand_groups(rows, min_n):
    """{subgroup id: [rows]} by plain loops over the rows."""
    out = {}
    for axes in STRATA:
        for r in rows:
            levels = [MY_LEVELS[a].get(r[COL_OF[a]]) for a in axes]
            if None not in levels:
                out.setdefault("_x_".join(axes) + ":" + "|".join(levels), []).append(r)
    return {k: v for k, v in out.items() if len(v) >= min_n}


def _write(path, rows_by_country):
    frames = []
    for country, rows in rows_by_country.items():
        df = pd.DataFrame(rows, columns=COLUMNS)
        df.insert(0, "B_COUNTRY", country)
        frames.append(df)
    pd.concat(frames).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def two_countries(tmp_path_factory):
    base = tmp_path_factory.mktemp("two")
    return _write(base / "wvs_two.csv", {702: SG_ROWS, 458: MY_ROWS})


def test_shipped_profiles():
    assert available_profiles() == {458: "malaysia", 702: "singapore"}
    sg = load_profile(702)
    assert load_profile("singapore") is sg
    # the paper's axes (Tan et al. 2026), written out by hand
    assert sg.axis_levels == {
        "sex": ("Male", "Female"),
        "age_group": ("16-24", "25-34", "35-44", "45-54", "55-64", "65+"),
        "ethnicity": ("Chinese", "Malay", "Indian"),
        "religion": ("None", "Roman Catholic", "Protestant", "Muslim", "Hindu", "Buddhist", "Other"),
    }
    assert sg.axes["ethnicity"].codes == {702004: "Chinese", 702006: "Malay", 702003: "Indian"}
    assert [s.n_levels for s in sg.strata] == [2, 6, 3, 7, 12, 14, 6, 42, 18, 21]
    my = load_profile(458)
    assert my.axes["religion"].codes == MY_LEVELS["religion"]
    assert my.axes["ethnicity"].codes == MY_LEVELS["ethnicity"]
    assert [list(s.axes) for s in my.strata] == STRATA
    assert {s.name for s in my.strata if s.split == "ood"} == OOD


@pytest.mark.skipif(not CODEBOOK.is_file(), reason="WVS-7 codebook not on this machine")
@pytest.mark.parametrize("country,prefix", [(702, "SG:"), (458, "MY:")])
def test_profile_codes_against_the_codebook(country, prefix):
    book = json.loads(CODEBOOK.read_text())
    prof = load_profile(country)
    q290 = {int(k): v for k, v in book["Q290"]["choices"].items()}
    for code, level in prof.axes["ethnicity"].codes.items():
        assert code // 1000 == country and q290[code].startswith(prefix) and level in q290[code], (code, level)
    q289 = {int(k): v for k, v in book["Q289"]["choices"].items()}
    words = {"None": "Do not belong", "Christian": ""}
    for code, level in prof.axes["religion"].codes.items():
        assert code >= 0 and words.get(level, level) in q289[code], (code, level, q289[code])
    for axis, var in (("sex", "Q260"), ("age_group", "X003R")):
        assert prof.axes[axis].source == var
    assert set(prof.axes["sex"].codes) == {1, 2} and set(prof.axes["age_group"].codes) == set(range(1, 7))


def test_absent_profile_names_those_available():
    with pytest.raises(ProfileError, match=r"no country profile for 156; profiles available: "
                                           r"458 \(malaysia\), 702 \(singapore\)"):
        load_profile(156)


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace("code: 458", "code: MY"), r"code: expected the B_COUNTRY number, got 'MY'"),
    (lambda t: t.replace("Hindu: [6]", "Hindu: [5]"), r"axes\.religion\.levels\.Hindu: code 5 is already level 'Muslim'"),
    (lambda t: t.replace("[ethnicity, religion]]", "[ethnicity, caste]]"), r"strata\.ood: \['ethnicity', 'caste'\]"),
    (lambda t: t.replace("    Hindu: Hindu\n", ""), r"religion level\(s\) \['Hindu'\] need a religion_word"),
    (lambda t: t.replace('"65+": [6]', '"65 and over": [6]'), r"age level '65 and over'"),
    (lambda t: t.replace("Christian: [1, 2, 8]", "Christian: [1, 8]").replace(
        "Buddhist: [7]", "Protestant: [7]"), r"level\(s\) \['Protestant'\] are codebook labels of codes left off"),
])
def test_malformed_profile_errors_name_file_and_field(tmp_path, edit, message):
    text = (Path(load_profile(458).path)).read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit(text))
    with pytest.raises(ProfileError, match=message) as info:
        read_profile(bad)
    assert str(bad) in str(info.value)


def test_prepare_malaysia_from_a_two_country_file(two_countries, tmp_path):
    p = prepare(two_countries, tmp_path / "my", country=458, min_n=2)
    want = _hand_groups(MY_ROWS, 2)
    got = dict(zip(p.subgroups["subgroup"], p.subgroups["n_respondents"]))
    assert got == {k: len(v) for k, v in want.items()}
    assert got["religion:Christian"] == 3                      # codes 1, 2 and 8 together
    assert not any("Jew" in s for s in got)                    # 4 stays off the axis
    assert dict(zip(p.subgroups["subgroup"], p.subgroups["split"])) == {
        k: ("ood" if k.split(":")[0] in OOD else "train") for k in want}
    assert p.summary["n_respondents"] == len(MY_ROWS) and p.summary["country"] == 458
    assert assert_no_leakage(p.samples_train, p.samples_ood)["ok"]
    ood = p.samples_ood.set_index("sample_id")
    assert ood.at["Q1_ethnicity_x_religion:Chinese|Christian", "user_persona"] == \
        "You are a Chinese Christian living in Malaysia."
    # modal answer by hand: Malay Muslims answered Q1 with 1, 1, 2
    assert ood.at["Q1_ethnicity_x_religion:Malay|Muslim", "target"] == 1
    assert (tmp_path / "my" / "subgroups.csv").is_file() and load_prepared(tmp_path / "my").summary["country"] == 458
    # the same file, country 702: Singapore's profile and rows only
    sg = prepare(two_countries, tmp_path / "sg", country=702, min_n=2)
    assert set(sg.subgroups["subgroup"]) >= {"ethnicity:Chinese", "ethnicity:Malay", "religion:Buddhist"}
    assert sg.summary["n_respondents"] == len(SG_ROWS)
    assert sg.samples_train["user_persona"].str.contains("Singapore").all()


def test_weighted_modes_distributions_and_mds(two_countries, tmp_path):
    p = prepare(two_countries, tmp_path / "w", country=458, min_n=2, weighted=True)
    groups = _hand_groups(MY_ROWS, 2)
    modal = p.modal_answers[p.modal_answers["question_id"] == "Q1"].set_index("subgroup")
    modes = {}
    for sid, rows in groups.items():
        tally = {c: sum(r[5] for r in rows if r[6] == c) for c in (1, 2, 3, 4)}
        total = sum(tally.values())
        mode = min(c for c in tally if tally[c] == max(tally.values()))
        modes[sid] = mode
        assert modal.at[sid, "modal_answer"] == mode, sid
        assert json.loads(modal.at[sid, "distribution"]) == pytest.approx(
            {str(c): v / total for c, v in tally.items()}, abs=1e-6), sid
    # weight 3 on respondent 103 turns the Malay Muslims' mode from 1 to 2
    assert modes["religion:Muslim"] == 2
    div = p.diversity[p.diversity["question_id"] == "Q1"].set_index("stratum")
    for stratum in ("religion", "ethnicity", "sex_x_ethnicity"):
        want = modal_diversity_score([m for s, m in modes.items() if s.split(":")[0] == stratum], 4)
        assert div.at[stratum, "mds"] == pytest.approx(want)


def test_cli_country_458_and_absent_profile(two_countries, tmp_path, capsys):
    assert cli_main(["prepare", "--wvs", str(two_countries), "--out", str(tmp_path / "cli"), "--country", "458",
                     "--min-n", "2"]) == 0
    assert "country 458" in capsys.readouterr().out
    other = _write(tmp_path / "cn.csv", {156: MY_ROWS})
    assert cli_main(["prepare", "--wvs", str(other), "--out", str(tmp_path / "x"), "--country", "156"]) == 2
    assert "profiles available: 458 (malaysia), 702 (singapore)" in capsys.readouterr().err


def test_params_data_country_selects_the_profile(two_countries, tmp_path):
    params = Params.from_dict({"name": "my", "data": {"wvs_file": str(two_countries), "country": 458, "min_n": 2}})
    data = prepare_run_data(params, tmp_path / "run")
    sub = pd.read_csv(data / "subgroups.csv", keep_default_na=False)
    assert "religion:Christian" in set(sub["subgroup"])


def test_persona_wording_from_the_profile():
    assert persona_sentence({"religion": "Other"}, profile=458) == \
        "You live in Malaysia and follow another religion, such as Taoism or Chinese folk religion."
    assert persona_sentence({"sex": "Female", "religion": "Christian"}, profile="malaysia") == \
        "You are a Christian woman living in Malaysia."
    with pytest.raises(ValueError, match=r"no level 'Christian'.*singapore profile"):
        persona_sentence({"religion": "Christian"})


def test_tables_follow_the_country_of_their_data(two_countries, tmp_path):
    from sgvalues.data import load_wvs
    from sgvalues.split import strata_table
    from sgvalues.subgroups import composition_table

    p = prepare(two_countries, tmp_path / "t", country=458, min_n=2)
    table = strata_table(p.subgroups).set_index("stratum")
    assert table.at["religion", "possible"] == 6 and table.at["ethnicity_x_religion", "possible"] == 18
    assert table["kept"].sum() == len(_hand_groups(MY_ROWS, 2))
    comp = composition_table(load_wvs(two_countries, country=458)).set_index(["axis", "level"])
    # 3 Christians of 9 respondents; weights: 1 + 1 + 1 of a total 11
    assert comp.at[("religion", "Christian"), "share"] == pytest.approx(100 * 3 / 9)
    assert comp.at[("religion", "Christian"), "weighted_share"] == pytest.approx(100 * 3 / 11)
    assert comp.at[("religion", "(other or missing)"), "n"] == 1        # the Jewish respondent
    assert comp["reference_share"].isna().all()
    assert comp["reference"].eq("none shipped for Malaysia").all()
