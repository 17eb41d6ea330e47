"""Tests for sgvalues.data.load_wvs: small WVS-format files written here, in every format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyreadr
import pyreadstat
import pytest

from sgvalues.catalogue import load_catalogue, select_questions
from sgvalues.data import WVSFormatError, load_wvs

NAN = np.nan

# Two Chinese (156) respondents first, so file row numbers of the Singapore rows are 3..7.
RAW = pd.DataFrame({
    "B_COUNTRY":   [156, 156, 702, 702, 702, 702, 702],
    "D_INTERVIEW": [1, 2, 70211, 70212, 70213, 70214, 70215],
    "W_WEIGHT":    [1.0, 1.0, 0.5, 1.5, 2.0, 0.8, 1.2],
    "Q260":        [1, 2, 2, 1, -2, 2, 1],
    "X003R":       [2, 3, 1, 6, -2, 3, -5],
    "Q262":        [30, 40, 23, 70, -2, 40, 55],
    "Q289":        [0, 0, 7, 3, -1, 0, 9],
    "Q290":        [156001, 156001, 702004, 702006, 702003, 702999, 702008],
    "Q1":          [3, 3, 1, -1, 4, 2, 2],
    "Q2":          [1, 1, -4, -4, -4, -4, -4],
    "Q56":         [1, 1, 2, 3, 1, -2, 2],
    "Q119":        [1, 1, 0, 3, 4, 1, -4],
    "Q221":        [1, 1, 4, 1, -4, 2, 3],
    "Q241":        [5, 5, 0, 10, 1, -1, 7],
    "Q7":          [1, 1, 1, 2, 2, -5, 1],
    "Q94":         [0, 0, 2, 0, 1, -1, 0],
    "Q223":        [156001, 1, 702001, 2, -3, 702002, 4],
})

# Expected Singapore rows, worked out by hand from RAW.
EXPECTED = pd.DataFrame({
    "respondent_id": [70211, 70212, 70213, 70214, 70215],
    "weight":        [0.5, 1.5, 2.0, 0.8, 1.2],
    "sex":           ["Female", "Male", NAN, "Female", "Male"],
    # X003R bands; the last row has X003R -5 and takes its band from Q262 = 55.
    "age_group":     ["16-24", "65+", NAN, "35-44", "55-64"],
    "ethnicity":     ["Chinese", "Malay", "Indian", NAN, NAN],
    "religion":      ["Buddhist", "Orthodox", NAN, "None", "Other"],
    "Q1":            [1, NAN, 4, 2, 2],
    "Q2":            [NAN] * 5,
    "Q56":           [3, 2, 1, NAN, 3],          # 2 <-> 3 swapped
    "Q119":          [3, 4, 5, 1, NAN],          # 0 hard to say -> 3, 3 -> 4, 4 -> 5
    "Q221":          [NAN, 1, NAN, 2, 3],        # 4 not allowed to vote -> dropped
    "Q241":          [1, 10, 1, NAN, 7],         # 0 against democracy -> 1
    "Q7":            [1, 2, 2, NAN, 1],
    "Q94":           [2, 0, 1, NAN, 0],
    "Q223":          [702001, 2, NAN, 702002, 4],
})
QUESTIONS = ["Q1", "Q2", "Q7", "Q56", "Q94", "Q119", "Q221", "Q223", "Q241"]  # catalogue order


def write(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` in the format named by the extension, as the official file would be."""
    ext = path.suffix.lower()
    if ext == ".csv":
        df.to_csv(path, index=False)
    elif ext == ".sav":
        pyreadstat.write_sav(df, str(path))
    elif ext == ".dta":
        pyreadstat.write_dta(df, str(path))
    elif ext == ".rds":
        pyreadr.write_rds(str(path), df)
    else:
        raise AssertionError(ext)
    return path


def assert_matches_expected(out: pd.DataFrame, expected: pd.DataFrame = EXPECTED) -> None:
    assert list(out.columns[:6]) == [
        "respondent_id", "weight", "sex", "age_group", "ethnicity", "religion"]
    assert list(out.columns[6:]) == QUESTIONS
    for col in expected.columns:
        got, want = out[col].tolist(), expected[col].tolist()
        assert len(got) == len(want), col
        for g, w in zip(got, want):
            if isinstance(w, float) and np.isnan(w):
                assert pd.isna(g), (col, got, want)
            else:
                assert g == w, (col, got, want)
    for q in QUESTIONS:
        assert out[q].dtype == np.float64, q


@pytest.mark.parametrize("ext", [".csv", ".sav", ".dta", ".rds"])
def test_each_format_gives_the_hand_computed_table(tmp_path, ext):
    path = write(RAW, tmp_path / f"wvs{ext}")
    out = load_wvs(path, country=702)
    assert_matches_expected(out)
    assert out.attrs["source"] == str(path)
    assert out.attrs["synthetic"] is False
    counts = out.attrs["missing_counts"]
    assert counts["Q1"] == {-1: 1, -2: 0, -3: 0, -4: 0, -5: 0}
    assert counts["Q2"][-4] == 5
    assert counts["Q223"][-3] == 1 and counts["Q221"][-4] == 1


def test_other_country(tmp_path):
    # China has no shipped profile: read its rows with Singapore's axes, asked for explicitly
    out = load_wvs(write(RAW, tmp_path / "wvs.csv"), country=156, profile=702)
    assert out["respondent_id"].tolist() == [1, 2]
    assert out["Q1"].tolist() == [3.0, 3.0]
    assert out["age_group"].tolist() == ["25-34", "35-44"]
    assert out["ethnicity"].isna().all()  # Q290 codes outside Singapore's three groups
    assert out.attrs["profile"] == "singapore"


def test_country_without_profile_names_the_profiles_available(tmp_path):
    from sgvalues.countries import ProfileError

    with pytest.raises(ProfileError, match=r"no country profile for 156; profiles available: 458 \(malaysia\), "
                                           r"702 \(singapore\)"):
        load_wvs(write(RAW, tmp_path / "wvs.csv"), country=156)


def test_column_names_match_ignoring_case(tmp_path):
    lower = RAW.rename(columns=str.lower)
    for ext in (".sav", ".dta", ".csv"):
        assert_matches_expected(load_wvs(write(lower, tmp_path / f"lower{ext}")))


def test_defaults_without_weight_and_interview_id(tmp_path):
    raw = RAW.drop(columns=["W_WEIGHT", "D_INTERVIEW"])
    out = load_wvs(write(raw, tmp_path / "wvs.csv"))
    assert out["weight"].tolist() == [1.0] * 5
    assert out["respondent_id"].tolist() == [3, 4, 5, 6, 7]  # 1-based rows in the file


def test_age_group_from_q262_when_x003r_absent(tmp_path):
    ages = [16, 21, 24, 25, 34, 35, 44, 45, 54, 55, 64, 65, 91, -1, -2]
    bands = ["16-24", "16-24", "16-24", "25-34", "25-34", "35-44", "35-44", "45-54", "45-54",
             "55-64", "55-64", "65+", "65+", NAN, NAN]
    n = len(ages)
    raw = pd.DataFrame({"B_COUNTRY": [702] * n, "Q260": [1] * n, "Q262": ages,
                        "Q289": [0] * n, "Q290": [702004] * n})
    out = load_wvs(write(raw, tmp_path / "ages.csv"))
    got = out["age_group"].tolist()
    assert [g for g in got if isinstance(g, str)] == [b for b in bands if isinstance(b, str)]
    assert [pd.isna(g) for g in got] == [not isinstance(b, str) for b in bands]


def test_synthetic_flag(tmp_path):
    raw = RAW.assign(SGV_SYNTHETIC=1)
    out = load_wvs(write(raw, tmp_path / "synthetic.sav"))
    assert out.attrs["synthetic"] is True
    assert "SGV_SYNTHETIC" not in out.columns
    assert_matches_expected(out)


def test_sav_user_missing_codes_are_kept(tmp_path):
    # Official .sav files declare -5..-1 as user-missing; "not asked" (-4) must survive.
    path = tmp_path / "declared.sav"
    pyreadstat.write_sav(RAW, str(path), missing_ranges={"Q2": [{"lo": -5, "hi": -1}]})
    out = load_wvs(path)
    assert out.attrs["missing_counts"]["Q2"][-4] == 5


def test_selection_reads_not_asked_from_the_file(tmp_path):
    out = load_wvs(write(RAW, tmp_path / "wvs.csv"))
    selected, excluded = select_questions(load_catalogue(), out)
    reasons = excluded["reason"].to_dict()
    assert reasons["Q2"] == "not asked in this country (all -4)"
    assert reasons["Q3"] == "not in the data file"
    assert reasons["Q223"] == "nominal scale"
    assert sorted(selected.index) == sorted(["Q1", "Q7", "Q56", "Q94", "Q119", "Q221", "Q241"])


def test_loads_a_full_size_country_fast(tmp_path):
    rng = np.random.default_rng(7)
    cat = load_catalogue()
    n = 2012
    cols = {"B_COUNTRY": np.full(n, 702), "D_INTERVIEW": np.arange(n), "W_WEIGHT": np.ones(n),
            "Q260": rng.integers(1, 3, n), "X003R": rng.integers(1, 7, n),
            "Q289": rng.integers(0, 10, n), "Q290": np.full(n, 702004)}
    for q, row in cat.iterrows():
        codes = [1, 2] if q == "Q223" else list(row["raw_options"])
        cols[q] = rng.choice(codes + [-1, -2], n)
    cols.update({f"EXTRA{k}": rng.integers(0, 9, n) for k in range(40)})  # ~300 columns
    raw = pd.DataFrame(cols)
    path = write(raw, tmp_path / "big.csv")
    load_wvs(path)  # warm the catalogue cache
    out = load_wvs(path)
    assert out.shape == (n, 6 + 259)
    # Vectorised: the mean of the recoded Q1 equals the mean over its valid raw codes.
    q1 = raw["Q1"][raw["Q1"] > 0]
    assert out["Q1"].mean() == pytest.approx(q1.mean())


# ----------------------------------------------------------------------------------------
# Bad input: each gives a WVSFormatError that names the file and the problem.
# ----------------------------------------------------------------------------------------
def test_unknown_extension(tmp_path):
    path = tmp_path / "wvs.xlsx"
    path.write_bytes(b"PK\x03\x04")
    pattern = r"wvs\.xlsx.*unknown file type '\.xlsx'.*\.csv.*\.sav.*\.dta.*\.rds"
    with pytest.raises(WVSFormatError, match=pattern):
        load_wvs(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_wvs(tmp_path / "nope.csv")


@pytest.mark.parametrize("ext", [".csv", ".sav", ".dta", ".rds"])
def test_empty_file(tmp_path, ext):
    path = tmp_path / f"empty{ext}"
    path.write_bytes(b"")
    with pytest.raises(WVSFormatError, match=rf"empty{ext}.*empty"):
        load_wvs(path)


@pytest.mark.parametrize("ext", [".sav", ".dta", ".rds"])
def test_unreadable_binary_file(tmp_path, ext):
    path = tmp_path / f"garbage{ext}"
    path.write_bytes(b"this is not a statistics file\n" * 20)
    with pytest.raises(WVSFormatError, match=rf"garbage{ext}: cannot read it as a {ext} file"):
        load_wvs(path)


@pytest.mark.parametrize("ext", [".csv", ".sav", ".dta", ".rds"])
def test_truncated_file(tmp_path, ext):
    path = write(RAW, tmp_path / f"full{ext}")
    data = path.read_bytes()
    cut = tmp_path / f"cut{ext}"
    # Cut inside the last data row (csv) or in the middle of the binary payload.
    cut.write_bytes(data[: len(data) - 5] if ext == ".csv" else data[: len(data) // 2])
    with pytest.raises(WVSFormatError, match=rf"cut{ext}: .*(truncated|cannot read)"):
        load_wvs(cut)


def test_missing_required_columns(tmp_path):
    raw = RAW.drop(columns=["Q289", "X003R", "Q262"])
    with pytest.raises(WVSFormatError,
                       match=r"nocols\.csv: missing required columns: Q289, X003R or Q262"):
        load_wvs(write(raw, tmp_path / "nocols.csv"))


def test_country_absent_lists_countries_present(tmp_path):
    with pytest.raises(WVSFormatError,
                       match=r"wvs\.dta: no respondents with B_COUNTRY == 999; "
                             r"countries present: 156, 702"):
        load_wvs(write(RAW, tmp_path / "wvs.dta"), country=999)


def test_value_outside_the_codebook(tmp_path):
    raw = RAW.copy()
    raw.loc[[2, 3], "Q1"] = 9
    raw.loc[4, "Q241"] = 11
    with pytest.raises(WVSFormatError) as info:
        load_wvs(write(raw, tmp_path / "bad.csv"))
    msg = str(info.value)
    assert "bad.csv" in msg
    assert "Q1 has 2 rows with value 9; expected 1..4 or missing codes -1..-5" in msg
    assert "Q241 has 1 rows with value 11; expected 0..10 or missing codes -1..-5" in msg


def test_bad_demographic_code(tmp_path):
    raw = RAW.copy()
    raw.loc[2, "Q260"] = 3
    with pytest.raises(WVSFormatError, match=r"Q260 has 1 rows with value 3; expected 1, 2"):
        load_wvs(write(raw, tmp_path / "sex.csv"))


def test_bad_values_in_other_countries_are_ignored(tmp_path):
    raw = RAW.copy()
    raw.loc[0, "Q1"] = 9  # a Chinese respondent: not checked when loading Singapore
    assert_matches_expected(load_wvs(write(raw, tmp_path / "wvs.csv")))


def test_non_numeric_codes(tmp_path):
    raw = RAW.astype({"Q56": object})
    raw.loc[2, "Q56"] = "Worse off"
    with pytest.raises(WVSFormatError, match=r"labels\.csv: column Q56 has non-numeric values: "
                                             r"'Worse off' \(1 rows\)"):
        load_wvs(write(raw, tmp_path / "labels.csv"))


def test_csv_dialects_semicolon_bom_and_gzip(tmp_path):
    # Spreadsheet exports: semicolon separators and a UTF-8 byte-order mark.
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + RAW.to_csv(index=False, sep=";").encode())
    assert_matches_expected(load_wvs(path))
    gz = tmp_path / "wvs.csv.gz"
    RAW.to_csv(gz, index=False)
    assert_matches_expected(load_wvs(gz))


def test_attrs_survive_filtering_without_copying(tmp_path):
    out = load_wvs(write(RAW, tmp_path / "wvs.csv"))
    sub = out[out["sex"] == "Female"][["Q1", "Q56"]]
    assert sub.attrs["source"] == out.attrs["source"]
    # Shared, not deep-copied on every pandas operation (that made filters ~5x slower).
    assert sub.attrs["missing_counts"] is out.attrs["missing_counts"]
    assert isinstance(sub.attrs["missing_counts"], dict)
