"""Tests for sgvalues.synthetic: the synthetic Singapore-like WVS-7 sample.

Expected values come from the reference figures (census, the real sample's counts and the
nine real items' shares), recomputed here with pandas / numpy / scipy from the written file.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats.contingency import association

from sgvalues import synthetic as S
from sgvalues.catalogue import load_catalogue
from sgvalues.data import load_wvs

AXIS_LEVELS = {
    "sex": ("Male", "Female"),
    "age_group": ("16-24", "25-34", "35-44", "45-54", "55-64", "65+"),
    "ethnicity": ("Chinese", "Malay", "Indian"),
    "religion": ("None", "Roman Catholic", "Protestant", "Muslim", "Hindu", "Buddhist", "Other"),
}
TRAIN_PAIRS = [("sex",), ("age_group",), ("ethnicity",), ("religion",),
               ("sex", "age_group"), ("sex", "religion"), ("sex", "ethnicity")]
OOD_PAIRS = [("age_group", "religion"), ("age_group", "ethnicity"), ("ethnicity", "religion")]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "sg.csv"
    S.write_sample(path, seed=0)
    return path


@pytest.fixture(scope="module")
def raw(written):
    return pd.read_csv(written)


@pytest.fixture(scope="module")
def respondents(written):
    return load_wvs(written)


@pytest.fixture(scope="module")
def ref():
    return S.reference()


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------
# determinism and speed
# ------------------------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_differs(tmp_path, written):
    again = S.write_sample(tmp_path / "again.csv", seed=0)
    other = S.write_sample(tmp_path / "other.csv", seed=1)
    assert _md5(again) == _md5(written)
    assert _md5(other) != _md5(written)
    a, b = pd.read_csv(written), pd.read_csv(other)
    # a different sample of the same population: same columns and composition, other answers
    assert list(a.columns) == list(b.columns)
    assert (a["Q260"] == 2).sum() == (b["Q260"] == 2).sum()
    assert (a["Q164"].to_numpy() != b["Q164"].to_numpy()).mean() > 0.3


# ------------------------------------------------------------------------------------
# layout and valid codes
# ------------------------------------------------------------------------------------
def test_official_columns_and_synthetic_flag(raw):
    cols = raw.columns.tolist()
    for c in ["B_COUNTRY", "B_COUNTRY_ALPHA", "D_INTERVIEW", "W_WEIGHT", "Q260", "Q262",
              "X003R", "X003R2", "Q289", "Q290", S.SYNTHETIC_COLUMN]:
        assert c in cols
    assert [c for c in cols if c.startswith("Q") and c[1:].isdigit() and int(c[1:]) <= 259] == \
        [f"Q{k}" for k in range(1, 260)]
    assert len(raw) == 2012
    assert (raw["B_COUNTRY"] == 702).all() and (raw["B_COUNTRY_ALPHA"] == "SGP").all()
    assert raw["D_INTERVIEW"].is_unique
    assert (raw[S.SYNTHETIC_COLUMN] == 1).all()


def test_every_value_is_a_codebook_or_missing_code(raw):
    cat = load_catalogue()
    for q, row in cat.iterrows():
        allowed = set(row["raw_options"]) | set(row["missing_codes"])
        bad = set(raw[q].unique()) - allowed
        assert not bad, f"{q}: values {sorted(bad)} not in {sorted(allowed)}"
    assert set(raw["Q260"]) <= {1, 2}
    assert set(raw["Q289"]) <= {0, 1, 2, 5, 6, 7, 9, -2}
    assert set(raw["Q290"]) <= {702001, 702003, 702004, 702006, 702008, 702999}
    assert raw["Q262"].min() == 21 and raw["Q262"].max() == 91
    # X003R and X003R2 follow from the age in years
    band = np.searchsorted([25, 35, 45, 55, 65], raw["Q262"], side="right") + 1
    assert (raw["X003R"].to_numpy() == band).all()
    band3 = np.where(raw["Q262"] < 30, 1, np.where(raw["Q262"] < 50, 2, 3))
    assert (raw["X003R2"].to_numpy() == band3).all()


def test_missing_codes_realistic_and_not_asked_items(raw):
    qs = [f"Q{k}" for k in range(1, 260)]
    for q in qs:
        not_asked = (raw[q] == -4).mean()
        assert not_asked == (1.0 if q in S.NOT_ASKED_ITEMS else 0.0), q
    asked = [q for q in qs if q not in S.NOT_ASKED_ITEMS]
    dk = np.array([(raw[q] == -1).mean() for q in asked])
    na = np.array([(raw[q] == -2).mean() for q in asked])
    assert 0.005 < dk.mean() < 0.06 and 0.002 < na.mean() < 0.03
    assert (dk + na).max() < 0.3
    # sensitive items have more missing answers than the rest, on average
    sens = [q in S.SENSITIVE_ITEMS for q in asked]
    rate = dk + na
    assert rate[sens].mean() > 1.5 * rate[~np.array(sens)].mean()


def test_second_choices_differ_from_first(raw):
    for second, first in S.SECOND_CHOICE.items():
        both = (raw[first] > 0) & (raw[second] > 0)
        assert both.mean() > 0.8
        assert (raw.loc[both, first] != raw.loc[both, second]).all()
        assert ((raw[second] == -3) == (raw[first] < 0)).all()


def test_raw_codes_map_to_the_recoded_answers(raw, respondents):
    """The file holds raw codes: load_wvs applies the catalogue adjustment to them."""
    cat = load_catalogue()
    r = respondents.set_index("respondent_id").loc[raw["D_INTERVIEW"]]
    for q in ["Q56", "Q119", "Q241", "Q221"]:
        adj = cat.at[q, "adjustment"]
        expected = raw[q].map(lambda v: np.nan if v < 0 else adj.get(v, v)).astype(float)
        got = r[q].to_numpy()
        assert np.array_equal(np.isnan(got), expected.isna().to_numpy()), q
        assert (got[~np.isnan(got)] == expected.dropna().to_numpy()).all(), q
    # swapped codes are used both ways, merged codes both appear, dropped codes occur
    assert {2, 3} <= set(raw["Q56"])
    assert {0, 1} <= set(np.unique(raw[[f"Q{k}" for k in range(241, 250)]]))
    assert 0 in set(raw["Q119"]) and 4 in set(raw["Q221"])


# ------------------------------------------------------------------------------------
# composition (through the loader)
# ------------------------------------------------------------------------------------
def test_sex_and_age_counts_are_the_real_sample(respondents, ref):
    sample = ref["wvs7_singapore_sample"]
    assert respondents.attrs["synthetic"] is True
    assert respondents["sex"].value_counts().to_dict() == sample["sex_counts"]
    assert respondents["age_group"].value_counts().to_dict() == sample["age_group_counts"]


def test_ethnicity_and_religion_follow_the_census(respondents, ref):
    census = ref["census_2020"]
    eth = respondents["ethnicity"].fillna("Others").value_counts(normalize=True) * 100
    assert abs(eth["Chinese"] - census["ethnicity_percent"]["Chinese"]) < 3.5
    assert abs(eth["Malay"] - census["ethnicity_percent"]["Malay"]) < 2.5
    # Indians are oversampled to S.INDIAN_SAMPLING_SHARE; the weights undo it
    assert abs(eth["Indian"] - 100 * S.INDIAN_SAMPLING_SHARE) < 2.0
    w = respondents["weight"]
    weighted = w.groupby(respondents["ethnicity"].fillna("Others")).sum() / w.sum() * 100
    for group, pct in census["ethnicity_percent"].items():
        assert abs(weighted[group] - pct) < 0.2, group
    assert w.between(0.25, 4).all() and abs(w.mean() - 1) < 1e-6 and w.std() > 0.02

    within = census["religion_within_ethnicity_percent"]
    def share(group, religion):
        sub = respondents[respondents["ethnicity"] == group]["religion"]
        return (sub == religion).mean() * 100
    assert abs(share("Chinese", "Buddhist") - within["Chinese"]["Buddhism"]) < 4
    assert abs(share("Chinese", "None") - within["Chinese"]["No religion"]) < 4
    # Taoists are WVS "Other" (9)
    assert abs(share("Chinese", "Other") - within["Chinese"]["Taoism"]) < 4
    christian = share("Chinese", "Roman Catholic") + share("Chinese", "Protestant")
    assert abs(christian - within["Chinese"]["Christianity"]) < 4
    assert share("Malay", "Muslim") > 95
    assert abs(share("Indian", "Hindu") - within["Indian"]["Hinduism"]) < 8
    assert abs(share("Indian", "Muslim") - within["Indian"]["Islam"]) < 7


def _cell_counts(r: pd.DataFrame, axes: tuple) -> pd.Series:
    known = pd.Series(True, index=r.index)
    for a in axes:
        known &= r[a].isin(AXIS_LEVELS[a])
    return r[known].groupby(list(axes)).size()


def test_subgroup_structure_under_min_n_30(respondents):
    n_train = sum(int((_cell_counts(respondents, ax) >= 30).sum()) for ax in TRAIN_PAIRS)
    n_possible = sum(math.prod(len(AXIS_LEVELS[a]) for a in ax) for ax in TRAIN_PAIRS)
    assert n_train == n_possible == 50  # every train subgroup reaches 30
    n_ood = sum(int((_cell_counts(respondents, ax) >= 30).sum()) for ax in OOD_PAIRS)
    assert 44 <= n_ood <= 54  # Tan et al. (2026): 48
    sex_rel = _cell_counts(respondents, ("sex", "religion"))
    for rel in ("Hindu", "Roman Catholic"):
        for sex in ("Male", "Female"):
            assert sex_rel[(sex, rel)] >= 30


# ------------------------------------------------------------------------------------
# answers
# ------------------------------------------------------------------------------------
@pytest.mark.parametrize("qid", S.CALIBRATED_ITEMS)
def test_calibrated_items_match_real_shares(respondents, ref, qid):
    real = ref["real_aggregates"]["items"][qid]
    got = respondents[qid].dropna().value_counts(normalize=True)
    for code, share in real["all"]["shares"].items():
        assert abs(got.get(float(code), 0.0) - share) < 0.03, (qid, code)
    # missing-answer rate like the real item's
    assert abs(respondents[qid].notna().sum() - real["all"]["n"]) < 0.025 * 2012

    def mean(block):
        return sum(int(k) * v for k, v in block["shares"].items())
    real_age = np.array([mean(real["by_age_group"][b]) for b in AXIS_LEVELS["age_group"]])
    syn_age = respondents.groupby("age_group")[qid].mean().reindex(AXIS_LEVELS["age_group"]).to_numpy()
    if np.ptp(real_age) >= 0.3:  # a real age gradient: the synthetic one follows it
        assert np.corrcoef(real_age, syn_age)[0, 1] > 0.8
    assert np.abs(real_age - syn_age).max() < 0.4
    real_gap = mean(real["by_sex"]["Female"]) - mean(real["by_sex"]["Male"])
    syn_gap = respondents.groupby("sex")[qid].mean().pipe(lambda m: m["Female"] - m["Male"])
    assert abs(real_gap - syn_gap) < 0.25


def _cramers_v(r: pd.DataFrame, qid: str) -> float:
    """Cramér's V of religion (seven levels) x answer, via scipy."""
    rel = r["religion"].map({lv: i for i, lv in enumerate(AXIS_LEVELS["religion"])}).to_numpy()
    x = r[qid].to_numpy()
    ok = ~np.isnan(rel) & ~np.isnan(x)
    codes, answer = np.unique(x[ok], return_inverse=True)
    table = np.zeros((len(AXIS_LEVELS["religion"]), len(codes)), dtype=np.int64)
    np.add.at(table, (rel[ok].astype(int), answer), 1)
    return float(association(table[table.sum(axis=1) > 0], method="cramer"))


def test_religion_matters_more_for_religious_values_than_social_capital(respondents):
    cat = load_catalogue()
    asked = [q for q in cat.index if q not in S.NOT_ASKED_ITEMS and cat.at[q, "scale_kind"] != "nominal"]
    theme = cat.loc[asked, "theme"].astype(str)
    rv = [_cramers_v(respondents, q) for q in theme[theme == "Religious Values"].index]
    sct = [_cramers_v(respondents, q) for q in
           theme[theme == "Social Capital, Trust & Organizational Membership"].index if q != "Q94"]
    assert np.mean(rv) > 2.5 * np.mean(sct)
    assert _cramers_v(respondents, "Q164") > 3 * _cramers_v(respondents, "Q57")


def _group_index(r: pd.DataFrame, axes: tuple) -> np.ndarray:
    """Subgroup number of each respondent within the stratum ``axes`` (-1 = none)."""
    code = np.zeros(len(r), dtype=np.int64)
    known = np.ones(len(r), dtype=bool)
    for a in axes:
        pos = r[a].map({lv: i for i, lv in enumerate(AXIS_LEVELS[a])}).fillna(-1).to_numpy(np.int64)
        known &= pos >= 0
        code = code * len(AXIS_LEVELS[a]) + np.maximum(pos, 0)
    return np.where(known, code, -1)


def test_modal_diversity_ranks_religion_first_and_social_capital_last(respondents):
    """Normalised entropy of subgroup modes (Tan et al.'s MDS), computed here with numpy."""
    cat = load_catalogue()
    asked = [q for q in cat.index if q not in S.NOT_ASKED_ITEMS and cat.at[q, "scale_kind"] != "nominal"]
    strata = []
    for axes in TRAIN_PAIRS + OOD_PAIRS:
        g = _group_index(respondents, axes)
        n_groups = math.prod(len(AXIS_LEVELS[a]) for a in axes)
        kept = np.bincount(g[g >= 0], minlength=n_groups) >= 30
        strata.append((g, n_groups, kept))
    per_question = {}
    for q in asked:
        codes = np.array(sorted(cat.at[q, "options"]), dtype=float)
        x = respondents[q].to_numpy()
        answer = np.searchsorted(codes, x)
        scores = []
        for g, n_groups, kept in strata:
            ok = (g >= 0) & ~np.isnan(x)
            counts = np.bincount(g[ok] * len(codes) + answer[ok], minlength=n_groups * len(codes))
            counts = counts.reshape(n_groups, len(codes))[kept]
            modes = counts.argmax(axis=1)  # first maximum = lowest code on ties
            p = np.bincount(modes) / len(modes)
            p = p[p > 0]
            denom = math.log2(min(len(modes), len(codes)))
            scores.append(float(-(p * np.log2(p)).sum() / denom) if denom > 0 else 0.0)
        per_question[q] = np.mean(scores)
    by_theme = pd.Series(per_question).groupby(cat.loc[asked, "theme"].astype(str)).mean()
    assert by_theme.idxmax() == "Religious Values"
    assert by_theme.idxmin() == "Social Capital, Trust & Organizational Membership"
    assert by_theme["Religious Values"] > 2 * by_theme["Social Capital, Trust & Organizational Membership"]


def test_traits_correlate_answers_across_questions(respondents):
    """Respondent-level traits make answers agree within a subgroup (not only across groups)."""
    buddhists = respondents[respondents["religion"] == "Buddhist"]
    chinese = respondents[respondents["ethnicity"] == "Chinese"]

    def rho(df, a, b):
        return df[[a, b]].corr(method="spearman").iloc[0, 1]
    # God important (high code) goes with frequent attendance (low code)
    assert rho(buddhists, "Q164", "Q171") < -0.15
    # most people can be trusted (1) goes with trusting people met for the first time (1)
    assert rho(chinese, "Q57", "Q61") > 0.1
    # life satisfaction (high code) goes with feeling very happy (low code)
    assert rho(chinese, "Q49", "Q46") < -0.15


# ------------------------------------------------------------------------------------
# formats and command line
# ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frame():
    return S.generate_sample(seed=0)


@pytest.mark.parametrize("ext", [".sav", ".dta", ".rds"])
def test_formats_round_trip_through_load_wvs(tmp_path, respondents, frame, ext):
    path = S.write_sample(tmp_path / f"sg{ext}")
    again = tmp_path / f"again{ext}"
    S.files._write_frame(frame, again)  # same sample written again: byte-identical
    assert _md5(path) == _md5(again)
    got = load_wvs(path)
    assert got.attrs["synthetic"] is True
    pd.testing.assert_frame_equal(got.drop(columns="weight"), respondents.drop(columns="weight"))
    np.testing.assert_allclose(got["weight"], respondents["weight"], rtol=0, atol=1e-9)
    if ext in (".sav", ".dta"):
        import pyreadstat

        reader = pyreadstat.read_sav if ext == ".sav" else pyreadstat.read_dta
        _, meta = reader(str(path), metadataonly=True)
        assert meta.creation_time.year == 2020  # header time pinned, not today's
        assert "SYNTHETIC" in meta.file_label


def test_bad_arguments_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unsupported extension '.xlsx'"):
        S.write_sample(tmp_path / "sg.xlsx")
    with pytest.raises(ValueError, match="n must be a positive integer"):
        S.generate_sample(n=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        S.generate_sample(seed=-1)


def test_small_samples_work():
    for n in (1, 60):
        df = S.generate_sample(n=n, seed=2)
        assert len(df) == n and df["D_INTERVIEW"].is_unique
        assert np.isfinite(df["W_WEIGHT"]).all()


def test_cli_writes_a_file(tmp_path, capsys):
    from sgvalues.cli import main

    out = tmp_path / "cli" / "sample.csv"
    assert main(["synth", "--out", str(out), "--seed", "3", "--n", "120"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    expected = S.write_sample(tmp_path / "direct.csv", n=120, seed=3)
    assert _md5(out) == _md5(expected)
    assert main(["synth", "--out", str(tmp_path / "bad.xlsx")]) == 2


def test_book_page_table_matches_the_generator():
    """book/synthetic_data.md quotes THEME_EFFECTS; keep the two in step."""
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "book" / "synthetic_data.md"
    rows = [line.strip("|").split("|") for line in page.read_text().splitlines()
            if line.startswith("| ") and line.count("|") == 6]
    quoted = {r[0].strip(): [float(x) for x in r[1:]] for r in rows if r[1].strip()[:1].isdigit()}
    assert len(quoted) == 6
    for theme, values in quoted.items():
        sd = S.THEME_EFFECTS[theme]
        assert values == [sd["sex"], sd["age"], sd["eth"], sd["rel"]], theme
    others = [S.THEME_EFFECTS[t][k] for t in S.THEME_EFFECTS if t not in quoted
              for k in ("sex", "age", "eth", "rel")]
    assert min(others) == 0.12 and max(others) == 0.35  # as the page says


def test_population_file_names_only_catalogue_items_themes_and_traits():
    """resources/synthetic_population.yaml: every item, theme and trait it names exists."""
    cat = load_catalogue()
    items, themes = set(cat["question_id"]), set(cat["theme"])
    named = (set(S.NOT_ASKED_ITEMS) | set(S.CALIBRATED_ITEMS) | set(S.SENSITIVE_ITEMS) | set(S.SEMANTIC_LOADINGS)
             | set(S.parameters.DROPPED_CODE_RULES) | set(S.SECOND_CHOICE) | set(S.SECOND_CHOICE.values()))
    assert named <= items, sorted(named - items)
    assert set(S.THEME_EFFECTS) | set(S.parameters.MISSING_RATE) <= themes
    assert {t for d in S.SEMANTIC_LOADINGS.values() for t in d} <= set(S.TRAITS)
    for table in (S.THEME_EFFECTS[t] for t in S.THEME_EFFECTS):
        assert set(S.TRAITS) <= set(table)
    assert len(S.AGE_LIMITS) == len(S.AGE_BANDS)
    assert len(S.parameters.TRAIT_RELIGION_MEAN["religiosity"]) == len(S.RELIGIONS)
    assert len(S.parameters.TRAIT_ETHNIC_MEAN["trust"]) == len(S.ETHNICITIES)


def test_population_file_with_a_missing_or_unknown_key_is_an_error_naming_both():
    text = S.parameters.resources.files("sgvalues").joinpath(S.POPULATION_FILE).read_text(encoding="utf-8")
    with pytest.raises(ValueError, match=r"synthetic_population\.yaml: missing key\(s\) \['pr_share'\]"):
        S.parameters._read_population(text.replace("pr_share:", "pr_share_typo:"))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['pr_share_typo'\]"):
        S.parameters._read_population(text.replace("pr_share:", "pr_share_typo:"))
    assert S.parameters._read_population(text) == S.parameters._population_parameters()
