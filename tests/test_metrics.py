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


def _dist_json(v):
    return json.dumps({str(i + 1): float(x) for i, x in enumerate(v)})


def test_distribution_scores_against_scipy_on_random_cases():
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(7)
    rows = []
    for _ in range(60):
        k = int(rng.integers(2, 11))
        q, p = rng.dirichlet(np.ones(k)), rng.dirichlet(np.ones(k) * 0.5)
        p[rng.integers(0, k)] = 0.0  # a share of zero
        p = p / p.sum()
        rows.append({"probs": _dist_json(q), "distribution": _dist_json(p), "target": int(np.argmax(p)) + 1,
                     "scale_min": 1, "scale_max": k, "_q": q, "_p": p})
    df = pd.DataFrame(rows)
    got = metrics.distribution_scores(df)
    for i, r in df.iterrows():
        k = len(r["_q"])
        u = np.arange(k) / (k - 1)
        assert got.at[i, "jsd"] == pytest.approx(jensenshannon(r["_p"], r["_q"], base=2), abs=1e-9)
        assert got.at[i, "wasserstein"] == pytest.approx(wasserstein_distance(u, u, r["_p"], r["_q"]), abs=1e-9)
        # hand formula: |E_q[x] - target| / (k - 1)
        assert got.at[i, "nmae_expected"] == pytest.approx(abs(r["_q"] @ np.arange(1, k + 1) - r["target"]) / (k - 1))


def test_distribution_scores_by_hand_and_missing():
    df = pd.DataFrame({"probs": ['{"1": 1.0, "2": 0.0, "3": 0.0}', '{"1": 0.0, "2": 0.0, "3": 1.0}', "", None],
                       "distribution": ['{"1": 1.0, "2": 0.0, "3": 0.0}', '{"1": 1.0, "2": 0.0, "3": 0.0}',
                                        '{"1": 1.0}', '{"1": 1.0}'],
                       "target": [1, 1, 1, 1], "scale_min": 1, "scale_max": 3})
    got = metrics.distribution_scores(df)
    # identical distributions: 0; disjoint point masses: JSD 1 (base 2), W1 = whole scale, E[x] = 3
    assert got.iloc[0].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    assert got.iloc[1].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert got.iloc[2:].isna().all().all()
    # no probs column at all (generate mode): NaN, and aggregate keeps its other columns
    assert metrics.distribution_scores(df.drop(columns="probs")).isna().all().all()


def test_aggregate_adds_distributional_means_over_rows_that_have_them():
    df = pd.DataFrame({"stratum": ["s", "s", "s"], "prediction": [1, 3, None], "target": [1, 1, 1],
                       "scale_min": 1, "scale_max": 3, "status": ["ok", "ok", "failed"],
                       "probs": ['{"1": 1.0, "2": 0.0, "3": 0.0}', '{"1": 0.0, "2": 0.0, "3": 1.0}', ""],
                       "distribution": ['{"1": 1.0, "2": 0.0, "3": 0.0}'] * 3})
    row = metrics.aggregate(df, "stratum").iloc[0]
    assert row["accuracy"] == pytest.approx(1 / 3) and row["n"] == 3
    assert row["jsd"] == pytest.approx(0.5) and row["wasserstein"] == pytest.approx(0.5)
    assert row["nmae_expected"] == pytest.approx(0.5)
    assert list(metrics.aggregate(df, None).columns) == metrics.METRIC_COLUMNS
    assert np.isnan(metrics.aggregate(df.drop(columns="probs"), None).iloc[0]["jsd"])


def test_score_and_score_samples_share_the_invalid_rule():
    rng = np.random.default_rng(11)
    n = 400
    k = rng.choice([2, 4, 10], size=n)
    df = pd.DataFrame({"stratum": rng.choice(["a", "b", "c"], size=n), "target": rng.integers(1, k + 1),
                       "prediction": rng.integers(1, k + 1).astype(float), "scale_min": 1, "scale_max": k,
                       "status": rng.choice(["ok", "ok", "ok", "refused", "unparseable"], size=n)})
    df.loc[df["status"] == "unparseable", "prediction"] = np.nan  # a refusal keeps its parsed code
    valid = (df["status"] == "ok").to_numpy()
    correct = np.where(valid, df["prediction"] == df["target"], False)
    err = np.where(valid, (df["prediction"] - df["target"]).abs() / (df["scale_max"] - 1), 1.0)
    by_hand = pd.DataFrame({"stratum": df["stratum"], "correct": correct, "err": err, "bad": ~valid}).groupby("stratum")
    got = metrics.score(df, "stratum").set_index("stratum")
    per = metrics.score_samples(df).groupby("stratum")
    for col, want in (("accuracy", by_hand["correct"].mean()), ("nmae", by_hand["err"].mean()),
                      ("invalid_rate", by_hand["bad"].mean())):
        assert got[col].to_numpy() == pytest.approx(want.to_numpy())
    assert got["accuracy"].to_numpy() == pytest.approx(per["correct"].mean().to_numpy())
    assert got["nmae"].to_numpy() == pytest.approx(per["nmae"].mean().to_numpy())
    assert metrics.aggregate(df).equals(got.reset_index())  # aggregate = score by stratum


def test_a_metric_added_to_the_table_is_a_column_of_every_score(monkeypatch):
    """METRICS is the one place a metric is named: an entry there is scored per group, after the
    built-in columns, with no edit of score(); here the share of predictions above the target,
    counted by hand."""
    df = pd.DataFrame({"stratum": ["a", "a", "a", "b"], "prediction": [3, 1, None, 2], "target": [2, 1, 1, 1],
                       "scale_min": 1, "scale_max": 3, "status": ["ok", "ok", "refused", "ok"]})
    monkeypatch.setitem(metrics.METRICS, "over", lambda g: float((g["prediction"] > g["target"]).mean()))
    got = metrics.score(df, "stratum")
    assert list(got.columns) == ["stratum", *metrics.METRIC_COLUMNS, "over"]
    assert got["over"].tolist() == [1 / 3, 1.0]  # a: 3 > 2 only (the refusal is blank, not above); b: 2 > 1
    assert metrics.score(df)["over"].iloc[0] == 2 / 4


# --- ties: any tied modal code is correct, NMAE to the nearest one (issue 22) --------------------
def test_tied_targets_score_any_tied_code_by_hand():
    # a 1-10 item whose subgroup ties between codes 3 and 8; target (lowest) = 3
    p = pd.DataFrame({"sample_id": list("abcde"), "target": 3, "targets": "[3, 8]", "scale_min": 1,
                      "scale_max": 10, "prediction": [3, 8, 7, 1, None],
                      "status": ["ok", "ok", "ok", "ok", "unparseable"]})
    s = metrics.score_samples(p)
    assert s["correct"].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    # 7 is 1 from 8 (not 4 from 3), 1 is 2 from 3; invalid = 1
    assert s["nmae"].tolist() == pytest.approx([0.0, 0.0, 1 / 9, 2 / 9, 1.0])
    agg = metrics.score(p).iloc[0]
    assert agg["accuracy"] == pytest.approx(2 / 5) and agg["nmae"] == pytest.approx((1 / 9 + 2 / 9 + 1) / 5)
    # without the column (or a blank cell) the target alone decides, as before
    old = metrics.score_samples(p.drop(columns="targets"))
    assert old["correct"].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert old["nmae"].tolist() == pytest.approx([0, 5 / 9, 4 / 9, 2 / 9, 1.0])
    assert metrics.score_samples(p.assign(targets=""))["nmae"].tolist() == old["nmae"].tolist()


def test_tied_targets_expected_answer_and_contract_errors():
    # expected answer 0.5*1 + 0.5*4 = 2.5 on a 1-4 scale; ties {1, 3}: nearest is 3 -> 0.5 / 3
    p = pd.DataFrame({"target": [1], "targets": ["[1, 3]"], "scale_min": 1, "scale_max": 4,
                      "probs": ['{"1": 0.5, "4": 0.5}'], "distribution": ['{"1": 0.5, "3": 0.5}']})
    assert metrics.distribution_scores(p)["nmae_expected"].iloc[0] == pytest.approx(0.5 / 3)
    with pytest.raises(ValueError, match="does not hold its target 2"):
        metrics.tied_targets(pd.DataFrame({"sample_id": ["s1"], "target": [2], "targets": ["[1, 3]"]}))


def test_jsd_of_nearly_equal_distributions_is_zero_not_missing():
    """scipy's jensenshannon returns NaN (sqrt of a divergence rounded below 0) for shares 28/78,
    14/78, 36/78 against the same shares rounded to 6 decimals; the row must score 0 and count."""
    from scipy.spatial.distance import jensenshannon

    shares = np.array([28, 14, 36]) / 78
    rounded = np.round(shares, 6)
    with np.errstate(invalid="ignore"):
        assert np.isnan(jensenshannon(rounded[None], shares[None], base=2, axis=1)).all()  # the trap
    probs = json.dumps({str(c): float(v) for c, v in zip((1, 2, 3), rounded)})
    dist = json.dumps({str(c): float(v) for c, v in zip((1, 2, 3), shares)})
    df = pd.DataFrame({"prediction": [3], "target": [3], "scale_min": 1, "scale_max": 3, "status": "ok",
                       "probs": [probs], "distribution": [dist]})
    got = metrics.distribution_scores(df)
    assert got["jsd"].iloc[0] == 0.0
    assert metrics.score(df)["jsd"].iloc[0] == 0.0
