"""Aggregation consistency: weighted intersectional predictions vs the single-axis prediction, by hand."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from sgvalues.aggregation import GAP_COLUMNS, aggregation_gaps, aggregation_summary, run_aggregation


def _p(*shares):
    return json.dumps({str(i + 1): s for i, s in enumerate(shares)})


SIZES = pd.DataFrame({
    "subgroup": ["religion:Muslim", "religion:None", "ethnicity:Malay",
                 "ethnicity_x_religion:Malay|Muslim", "ethnicity_x_religion:Indian|Muslim",
                 "ethnicity_x_religion:Chinese|None", "age_group_x_religion:16-24|Muslim"],
    "n_respondents": [200, 300, 180, 150, 40, 250, 60],
})


def _preds():
    return pd.DataFrame({
        "tag": "base",
        "question_id": "Q1",
        "subgroup": ["religion:Muslim", "religion:None", "ethnicity:Malay",
                     "ethnicity_x_religion:Malay|Muslim", "ethnicity_x_religion:Indian|Muslim",
                     "ethnicity_x_religion:Chinese|None", "age_group_x_religion:16-24|Muslim"],
        "probs": [_p(0.6, 0.3, 0.1), _p(0.2, 0.2, 0.6), _p(0.5, 0.5, 0.0),
                  _p(0.8, 0.2, 0.0), _p(0.0, 0.5, 0.5), _p(0.2, 0.2, 0.6), _p(0.1, 0.1, 0.8)],
    })


def test_gaps_against_a_hand_computation():
    got = aggregation_gaps(_preds(), SIZES, by=["tag"])
    assert list(got.columns) == ["tag"] + GAP_COLUMNS
    by_key = {(r.stratum, r.axis, r.level): r for r in got.itertuples()}
    # religion=Muslim in ethnicity_x_religion: cells Malay|Muslim (150) and Indian|Muslim (40)
    w = np.array([150, 40]) / 190
    mixed = w[0] * np.array([0.8, 0.2, 0.0]) + w[1] * np.array([0.0, 0.5, 0.5])
    single = np.array([0.6, 0.3, 0.1])
    r = by_key[("ethnicity_x_religion", "religion", "Muslim")]
    assert r.n_cells == 2 and r.single_subgroup == "religion:Muslim"
    assert r.coverage == pytest.approx(190 / 200)
    assert r.tv == pytest.approx(0.5 * np.abs(mixed - single).sum())
    assert r.jsd == pytest.approx(jensenshannon(single, mixed, base=2))
    # religion=None: one cell, identical to the single axis -> gap 0, coverage 250/300
    r = by_key[("ethnicity_x_religion", "religion", "None")]
    assert r.tv == pytest.approx(0.0) and r.jsd == pytest.approx(0.0) and r.coverage == pytest.approx(250 / 300)
    # ethnicity=Malay: one cell (Malay|Muslim) against (.5, .5, 0): TV = .5 * (.3 + .3) = .3
    assert by_key[("ethnicity_x_religion", "ethnicity", "Malay")].tv == pytest.approx(0.3)
    # religion=Muslim in age_group_x_religion: one cell (.1, .1, .8) vs (.6, .3, .1): TV = .7
    assert by_key[("age_group_x_religion", "religion", "Muslim")].tv == pytest.approx(0.7)
    # no single-axis prediction for age_group=16-24 or ethnicity Indian/Chinese -> no row
    assert ("age_group_x_religion", "age_group", "16-24") not in by_key
    assert ("ethnicity_x_religion", "ethnicity", "Indian") not in by_key
    assert len(got) == 4


def test_states_are_kept_apart_and_blank_probs_are_skipped():
    a = _preds()
    b = _preds().assign(tag="sft")
    b.loc[b["subgroup"] == "ethnicity_x_religion:Indian|Muslim", "probs"] = ""
    got = aggregation_gaps(pd.concat([a, b]), SIZES, by=["tag"])
    base = got[(got["tag"] == "base") & (got["level"] == "Muslim") & (got["stratum"] == "ethnicity_x_religion")]
    sft = got[(got["tag"] == "sft") & (got["level"] == "Muslim") & (got["stratum"] == "ethnicity_x_religion")]
    assert base["n_cells"].item() == 2 and sft["n_cells"].item() == 1
    # sft: only Malay|Muslim left: TV((.8, .2, 0), (.6, .3, .1)) = .5 * (.2 + .1 + .1)
    assert sft["tv"].item() == pytest.approx(0.2)


def test_a_coherent_model_has_zero_gap():
    # the single-axis prediction IS the weighted mean of its cells
    preds = _preds()
    w = np.array([150, 40]) / 190
    mixed = w[0] * np.array([0.8, 0.2, 0.0]) + w[1] * np.array([0.0, 0.5, 0.5])
    preds.loc[preds["subgroup"] == "religion:Muslim", "probs"] = _p(*mixed)
    got = aggregation_gaps(preds[~preds["subgroup"].str.startswith("age_group")], SIZES)
    row = got[(got["axis"] == "religion") & (got["level"] == "Muslim")]
    assert row["tv"].item() == pytest.approx(0.0, abs=1e-12)


def test_missing_sizes_and_columns_are_named():
    with pytest.raises(ValueError, match="ethnicity_x_religion:Indian\\|Muslim"):
        aggregation_gaps(_preds(), SIZES[SIZES["subgroup"] != "ethnicity_x_religion:Indian|Muslim"])
    with pytest.raises(ValueError, match="probs"):
        aggregation_gaps(_preds().drop(columns="probs"), SIZES)
    with pytest.raises(ValueError, match="n_respondents"):
        aggregation_gaps(_preds(), SIZES.drop(columns="n_respondents"))


def test_summary_means_per_axis_and_stratum():
    got = aggregation_gaps(_preds(), SIZES, by=["tag"])
    s = aggregation_summary(got, by=["tag"])
    rel_all = s[(s["axis"] == "religion") & (s["stratum"] == "all")]
    rel = got[got["axis"] == "religion"]
    assert rel_all["tv"].item() == pytest.approx(rel["tv"].mean())
    assert rel_all["n"].item() == 3
    eth = s[(s["axis"] == "ethnicity") & (s["stratum"] == "ethnicity_x_religion")]
    assert eth["tv"].item() == pytest.approx(0.3)
    assert aggregation_summary(got.iloc[:0]).empty


def test_run_aggregation_reads_a_run_folder(tmp_path):
    from sgvalues.evaluate import PREDICTION_COLUMNS

    preds = _preds().drop(columns="tag")
    for c in PREDICTION_COLUMNS:
        if c not in preds.columns:
            preds[c] = ""
    preds = preds.assign(target=1, scale_min=1, scale_max=3, prediction=1, status="ok")
    (tmp_path / "predictions").mkdir()
    (tmp_path / "data").mkdir()
    single = preds["subgroup"].str.count("_x_") == 0
    preds[single][PREDICTION_COLUMNS].to_csv(tmp_path / "predictions" / "zeroshot_train.csv", index=False)
    preds[~single][PREDICTION_COLUMNS].to_csv(tmp_path / "predictions" / "zeroshot_ood.csv", index=False)
    with pytest.raises(FileNotFoundError, match="subgroups.csv"):
        run_aggregation(tmp_path)
    SIZES.to_csv(tmp_path / "data" / "subgroups.csv", index=False)
    got = run_aggregation(tmp_path)
    want = aggregation_gaps(_preds(), SIZES, by=["tag"]).assign(tag="zeroshot")
    pd.testing.assert_frame_equal(got[["tag"] + GAP_COLUMNS], want[["tag"] + GAP_COLUMNS])
    assert run_aggregation(tmp_path, tag="sft").empty
