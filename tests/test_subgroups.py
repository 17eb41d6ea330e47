"""Subgroups: ids, membership, unknown values and the min_n rule, checked by hand and by a loop."""

import json

import numpy as np
import pandas as pd
import pytest

from sgvalues.subgroups import (AXES, OOD_STRATA, STRATA, TRAIN_STRATA, all_subgroups, build_subgroups,
                                composition_table, membership_pairs, parse_subgroup_id, subgroup_id)


def _resp(rows):
    return pd.DataFrame(rows, columns=["sex", "age_group", "ethnicity", "religion"])


def test_strata_design_matches_paper():
    assert TRAIN_STRATA == ("sex", "age_group", "ethnicity", "religion", "sex_x_age_group", "sex_x_religion",
                            "sex_x_ethnicity")
    assert OOD_STRATA == ("age_group_x_religion", "age_group_x_ethnicity", "ethnicity_x_religion")
    # the paper's 50 train subgroups are every possible train subgroup: 2+6+3+7 + 12+14+6
    possible = all_subgroups()
    assert (possible["split"] == "train").sum() == 50
    assert (possible["split"] == "ood").sum() == 6 * 7 + 6 * 3 + 3 * 7
    # every name is its axes joined by _x_
    assert all(s.name == "_x_".join(s.axes) for s in STRATA)


def test_ids_roundtrip_and_order():
    for row in all_subgroups().itertuples():
        stratum, levels = parse_subgroup_id(row.subgroup)
        assert stratum == row.stratum and levels == json.loads(row.levels)
        assert subgroup_id(stratum, levels) == row.subgroup
    assert subgroup_id("sex_x_age_group", {"sex": "Female", "age_group": "25-34"}) == "sex_x_age_group:Female|25-34"
    with pytest.raises(ValueError, match="level 'Other' is not one of"):
        subgroup_id("ethnicity", {"ethnicity": "Other"})
    with pytest.raises(ValueError, match="unknown stratum"):
        parse_subgroup_id("age:16-24")


def test_membership_min_n_and_unknown_values_by_hand():
    r = _resp([
        ["Male", "16-24", "Chinese", "Buddhist"],
        ["Male", "16-24", "Chinese", "Buddhist"],
        ["Male", "25-34", "Malay", "Muslim"],
        ["Female", "16-24", "Chinese", "Jew"],         # off the religion axis
        ["Female", None, "Chinese", "Buddhist"],       # unknown age
        [None, "16-24", None, "None"],                 # unknown sex and ethnicity; "None" = no religion
    ])
    sg = build_subgroups(r, min_n=2).set_index("subgroup")["n_respondents"].to_dict()
    assert sg == {
        "sex:Male": 3, "sex:Female": 2,
        "age_group:16-24": 4,
        "ethnicity:Chinese": 4,
        "religion:Buddhist": 3,
        "sex_x_age_group:Male|16-24": 2,
        "sex_x_religion:Male|Buddhist": 2,
        "sex_x_ethnicity:Male|Chinese": 2, "sex_x_ethnicity:Female|Chinese": 2,
        "age_group_x_religion:16-24|Buddhist": 2,
        "age_group_x_ethnicity:16-24|Chinese": 3,
        "ethnicity_x_religion:Chinese|Buddhist": 3,
    }
    # min_n is inclusive: 3 keeps the 3s and drops the 2s
    kept3 = set(build_subgroups(r, min_n=3)["subgroup"])
    assert kept3 == {"sex:Male", "age_group:16-24", "ethnicity:Chinese", "religion:Buddhist",
                     "age_group_x_ethnicity:16-24|Chinese", "ethnicity_x_religion:Chinese|Buddhist"}
    # a level literally called "None" is a level, not a missing value
    assert build_subgroups(r, min_n=1).set_index("subgroup").at["religion:None", "n_respondents"] == 1


def test_counts_match_a_plain_loop():
    rng = np.random.default_rng(3)
    n = 600
    r = _resp({
        "sex": rng.choice(["Male", "Female", None], n, p=[0.45, 0.5, 0.05]),
        "age_group": rng.choice(list(AXES["age_group"]) + [None], n),
        "ethnicity": rng.choice(["Chinese", "Malay", "Indian", None], n, p=[0.6, 0.2, 0.15, 0.05]),
        "religion": rng.choice(list(AXES["religion"]) + ["Jew", None], n),
    })
    got = build_subgroups(r, min_n=12)
    expected = []
    records = r.to_dict("records")
    for row in all_subgroups().itertuples():
        levels = json.loads(row.levels)
        count = sum(all(rec[a] == lv for a, lv in levels.items()) for rec in records)
        if count >= 12:
            expected.append((row.subgroup, count, row.split))
    assert list(zip(got["subgroup"], got["n_respondents"], got["split"])) == expected
    # membership pairs agree with the counts, and each respondent is in <= 1 subgroup per stratum
    rows, groups = membership_pairs(r, got)
    assert np.bincount(groups, minlength=len(got)).tolist() == got["n_respondents"].tolist()
    strata = got["stratum"].to_numpy()[groups]
    assert not pd.DataFrame({"r": rows, "s": strata}).duplicated().any()


def test_bad_labels_are_named():
    r = _resp([["M", "16-24", "Chinese", "Buddhist"]])
    with pytest.raises(ValueError, match=r"column 'sex' holds \['M'\]"):
        build_subgroups(r)
    ok = _resp([["Male", "16-24", "Chinese", "Buddhist"]])
    with pytest.raises(ValueError, match="missing column 'religion'"):
        build_subgroups(ok.drop(columns="religion"))


def test_plot_subgroup_sizes_draws_every_subgroup():
    from sgvalues.report.figures import plot_subgroup_sizes

    r = _resp([["Male", "16-24", "Chinese", "Buddhist"]] * 3 + [["Female", "65+", "Malay", "Muslim"]] * 3)
    sg = build_subgroups(r, min_n=3)
    fig = plot_subgroup_sizes(sg, min_n=3)
    bars = sum(len(ax.patches) for ax in fig.axes)
    assert bars == len(sg)
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_composition_table_by_hand():
    r = _resp([["Male", "16-24", "Chinese", "Buddhist"], ["Female", "16-24", "Malay", "Muslim"],
               ["Female", "65+", None, "Jew"], ["Female", "65+", "Chinese", "Other"]])
    r["weight"] = [1.0, 1.0, 1.0, 5.0]
    ref = {"wvs7_singapore_sample": {"sex_counts": {"Male": 1, "Female": 3},
                                     "age_group_counts": {a: 1 for a in AXES["age_group"]}},
           "census_2020": {"ethnicity_percent": {"Chinese": 70.0, "Malay": 20.0, "Indian": 5.0, "Others": 5.0},
                           "religion_percent": {"No religion": 20.0, "Christianity: Catholic (about)": 7.0,
                                                "Christianity: other Christian (about)": 12.0, "Islam": 15.0,
                                                "Hinduism": 5.0, "Buddhism": 31.0, "Taoism": 9.0,
                                                "Other religions": 1.0}}}
    t = composition_table(r, ref).set_index(["axis", "level"])
    assert t.loc[("sex", "Female"), ["n", "share", "weighted_share", "reference_share"]].tolist() == \
        pytest.approx([3, 75.0, 7 / 8 * 100, 75.0])
    assert t.loc[("age_group", "25-34"), "n"] == 0
    assert t.loc[("age_group", "25-34"), "reference_share"] == pytest.approx(100 / 6)
    assert t.loc[("ethnicity", "(other or missing)"), ["n", "reference_share"]].tolist() == [1, 5.0]
    assert t.loc[("religion", "Other"), "reference_share"] == pytest.approx(10.0)       # Taoism + other
    assert t.loc[("religion", "(other or missing)"), "n"] == 1                          # the "Jew" row
    assert ("age_group", "(other or missing)") not in t.index                          # nobody there


def test_parse_levels_agrees_with_the_profile_parser_and_prefers_levels():
    from sgvalues.subgroups import parse_levels, parse_subgroup_id

    for sid in all_subgroups()["subgroup"]:
        assert parse_levels(sid) == parse_subgroup_id(sid)[1]
        assert parse_levels(sid, "") == parse_levels(sid, "{}") == parse_levels(sid, {}) == parse_subgroup_id(sid)[1]
    # a levels value that says something wins over the id, as JSON text or as a mapping
    assert parse_levels("sex:Male", json.dumps({"sex": "Female"})) == {"sex": "Female"}
    assert parse_levels("sex:Male", {"sex": "Female"}) == {"sex": "Female"}
    with pytest.raises(ValueError, match="'nostratum'"):
        parse_levels("nostratum")
    with pytest.raises(ValueError, match="2 axes but 1 levels"):
        parse_levels("sex_x_age_group:Male")
