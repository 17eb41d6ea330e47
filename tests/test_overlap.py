"""Each OOD subgroup's largest respondent overlap with a train subgroup, checked on hand-made respondents."""

import pandas as pd
import pytest

from sgvalues.overlap import OVERLAP_COLUMNS, OVERLAP_THRESHOLD, load_overlap, subgroup_overlap, without_flagged

# 20 respondents: 10 Malay (9 Muslim, 1 None), 6 Indian (2 Muslim, 4 Hindu), 4 Chinese Buddhists;
# sexes alternate Male/Female
ROWS = ([("Malay", "Muslim")] * 9 + [("Malay", "None")] + [("Indian", "Muslim")] * 2 + [("Indian", "Hindu")] * 4
        + [("Chinese", "Buddhist")] * 4)
RESPONDENTS = pd.DataFrame({"respondent_id": range(20), "sex": ["Male", "Female"] * 10, "age_group": "25-34",
                            "ethnicity": [e for e, _ in ROWS], "religion": [r for _, r in ROWS]})
SUBGROUPS = pd.DataFrame({
    "stratum": ["sex", "sex", "ethnicity", "ethnicity", "religion", "religion",
                "ethnicity_x_religion", "ethnicity_x_religion", "ethnicity_x_religion"],
    "subgroup": ["sex:Male", "sex:Female", "ethnicity:Malay", "ethnicity:Indian", "religion:Muslim", "religion:Hindu",
                 "ethnicity_x_religion:Malay|Muslim", "ethnicity_x_religion:Indian|Muslim",
                 "ethnicity_x_religion:Indian|Hindu"],
    "split": ["train"] * 6 + ["ood"] * 3})


def test_overlap_by_hand():
    out = subgroup_overlap(RESPONDENTS, SUBGROUPS).set_index("subgroup")
    assert list(subgroup_overlap(RESPONDENTS, SUBGROUPS).columns) == OVERLAP_COLUMNS
    # Malay|Muslim (9 people): inside Malay (10) -> 9/10; inside Muslim (11) -> 9/11; sexes ~ 5/14 -> Malay
    r = out.loc["ethnicity_x_religion:Malay|Muslim"]
    assert (r.train_subgroup, r.n_respondents, r.n_train_respondents, r.n_shared, r.n_union) == \
        ("ethnicity:Malay", 9, 10, 9, 10)
    assert r.overlap == pytest.approx(9 / 10)
    # Indian|Muslim (2): Indian 2/6, Muslim 2/11, Male 1/11, Female 1/11 -> Indian
    r = out.loc["ethnicity_x_religion:Indian|Muslim"]
    assert (r.train_subgroup, r.n_shared, r.n_union) == ("ethnicity:Indian", 2, 6)
    # Indian|Hindu (4) is every Hindu: religion:Hindu 4/4 = 1
    r = out.loc["ethnicity_x_religion:Indian|Hindu"]
    assert (r.train_subgroup, r.overlap) == ("religion:Hindu", 1.0)
    # flagged iff above 0.90: exactly 0.9 is not, 1.0 is
    assert OVERLAP_THRESHOLD == 0.90
    assert out["flagged"].to_dict() == {"ethnicity_x_religion:Malay|Muslim": False,
                                        "ethnicity_x_religion:Indian|Muslim": False,
                                        "ethnicity_x_religion:Indian|Hindu": True}
    lower = subgroup_overlap(RESPONDENTS, SUBGROUPS, threshold=0.85).set_index("subgroup")["flagged"]
    assert lower["ethnicity_x_religion:Malay|Muslim"]


def test_overlap_against_sets():
    """The matrix computation equals a plain set computation of every pair's Jaccard share."""
    from sgvalues.subgroups import membership_pairs

    rows, groups = membership_pairs(RESPONDENTS, SUBGROUPS)
    members = {sg: set(rows[groups == i]) for i, sg in enumerate(SUBGROUPS["subgroup"])}
    train = SUBGROUPS.loc[SUBGROUPS.split == "train", "subgroup"]
    out = subgroup_overlap(RESPONDENTS, SUBGROUPS).set_index("subgroup")["overlap"]
    for g in SUBGROUPS.loc[SUBGROUPS.split == "ood", "subgroup"]:
        best = max(len(members[g] & members[h]) / len(members[g] | members[h]) for h in train)
        assert out[g] == pytest.approx(best)


def test_without_flagged_and_load(tmp_path):
    table = subgroup_overlap(RESPONDENTS, SUBGROUPS)
    p = pd.DataFrame({"subgroup": ["ethnicity_x_religion:Indian|Hindu", "ethnicity_x_religion:Malay|Muslim"],
                      "prediction": [1, 2]})
    assert without_flagged(p, table)["prediction"].tolist() == [2]
    assert load_overlap(tmp_path).empty  # a folder prepared before the table existed
    table.to_csv(tmp_path / "overlap.csv", index=False)
    back = load_overlap(tmp_path)
    assert back["flagged"].tolist() == table["flagged"].tolist()
    (tmp_path / "overlap.csv").write_text("subgroup\nx\n")
    with pytest.raises(ValueError, match="overlap.csv.*missing column"):
        load_overlap(tmp_path)
    with pytest.raises(ValueError, match="subgroups table: missing column"):
        subgroup_overlap(RESPONDENTS, SUBGROUPS.drop(columns="split"))
