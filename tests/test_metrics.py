"""Metrics against hand-computed values and scikit-learn, including invalid predictions."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error

from sgvalues import metrics


def test_accuracy_and_nmae_by_hand_with_invalid_predictions():
    pred = [1, 4, None, float("nan"), 10]
    tgt = [1, 2, 3, 4, 1]
    lo, hi = [1, 1, 1, 1, 1], [4, 4, 4, 4, 10]
    assert metrics.accuracy(pred, tgt) == pytest.approx(1 / 5)
    # errors: 0, 2/3, 1 (missing), 1 (missing), 9/9
    assert metrics.nmae(pred, tgt, lo, hi) == pytest.approx((0 + 2 / 3 + 1 + 1 + 1) / 5)


def test_against_sklearn_when_all_valid():
    rng = np.random.default_rng(1)
    t = rng.integers(1, 11, 300)
    p = rng.integers(1, 11, 300)
    assert metrics.accuracy(p, t) == pytest.approx(accuracy_score(t, p))
    assert metrics.nmae(p, t, 1, 10) == pytest.approx(mean_absolute_error(t, p) / 9)
    s = pd.Series(p, dtype="Int64")
    assert metrics.accuracy(s, t) == pytest.approx(accuracy_score(t, p))


def test_refusal_rate_and_errors():
    assert metrics.refusal_rate(["ok", "refused", "failed", "refused"]) == 0.5
    with pytest.raises(ValueError, match="differ in length"):
        metrics.accuracy([1, 2], [1])
    with pytest.raises(ValueError, match="scale_min=3.0, scale_max=3.0"):
        metrics.nmae([1], [1], 3, 3)
    assert np.isnan(metrics.accuracy([], []))


def _table():
    return pd.DataFrame({
        "stratum": ["sex", "sex", "sex_x_age_group", "sex_x_age_group"],
        "subgroup": ["sex:Male", "sex:Female", "sex_x_age_group:Male|16-24", "sex_x_age_group:Female|16-24"],
        "levels": [json.dumps({"sex": "Male"}), json.dumps({"sex": "Female"}),
                   json.dumps({"sex": "Male", "age_group": "16-24"}),
                   json.dumps({"sex": "Female", "age_group": "16-24"})],
        "prediction": pd.array([2, 1, None, 3], dtype="Int64"),
        "target": [2, 2, 1, 1], "scale_min": 1, "scale_max": 3,
        "status": ["ok", "ok", "refused", "ok"],
    })


def test_aggregate_matches_manual_groupby():
    df = _table()
    agg = metrics.aggregate(df, ["stratum"]).set_index("stratum")
    assert agg.loc["sex", "accuracy"] == 0.5 and agg.loc["sex", "nmae"] == pytest.approx(0.25)
    assert agg.loc["sex_x_age_group", "accuracy"] == 0.0
    assert agg.loc["sex_x_age_group", "nmae"] == pytest.approx((1 + 1) / 2)
    assert agg.loc["sex_x_age_group", "refusal_rate"] == 0.5
    assert list(agg["n"]) == [2, 2]
    overall = metrics.aggregate(df, None)
    assert overall.loc[0, "accuracy"] == 0.25 and overall.loc[0, "n"] == 4
    with pytest.raises(ValueError, match="lacks column"):
        metrics.aggregate(df.drop(columns="status"), "stratum")


def test_pair_subgroups_count_towards_both_levels():
    lv = metrics.aggregate_by_level(_table()).set_index(["attribute", "level"])
    assert lv.loc[("sex", "Male"), "n"] == 2 and lv.loc[("sex", "Female"), "n"] == 2
    assert lv.loc[("age_group", "16-24"), "n"] == 2
    # Male rows: correct (2==2) and refused -> 0.5; Female: wrong (1 vs 2), wrong (3 vs 1)
    assert lv.loc[("sex", "Male"), "accuracy"] == 0.5 and lv.loc[("sex", "Female"), "accuracy"] == 0.0
    assert lv.loc[("sex", "Female"), "nmae"] == pytest.approx((0.5 + 1.0) / 2)
