"""Fairness statistics, per-attribute bias, bootstrap and permutation test, against hand values."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from sgvalues import fairness as fx
from sgvalues import metrics
from sgvalues.evaluate import load_run_predictions
from sgvalues.fairness.measures import cv_rows, nr_rows


# --- the two spread statistics --------------------------------------------------------------------
def test_normalized_range_by_hand():
    assert fx.normalized_range([0.5, 0.25, 0.4]) == pytest.approx((0.5 - 0.25) / 0.5)
    assert fx.normalized_range([0.3, float("nan"), 0.6]) == pytest.approx(0.5)
    assert fx.normalized_range([0.42]) == 0.0  # a single subgroup cannot be unequal
    assert math.isnan(fx.normalized_range([]))


def test_coefficient_of_variation_by_hand():
    v = [0.2, 0.4, 0.9]
    mean = sum(v) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / 3)  # population sd
    assert fx.coefficient_of_variation(v) == pytest.approx(sd / mean)
    assert fx.coefficient_of_variation([0.7]) == 0.0
    assert fx.coefficient_of_variation(np.array([0.5, 0.5])) == 0.0


def test_zero_guards_warn_and_return_nan():
    with pytest.warns(fx.FairnessWarning, match="maximum"):
        assert math.isnan(fx.normalized_range([0.0, 0.0]))
    with pytest.warns(fx.FairnessWarning, match="mean"):
        assert math.isnan(fx.coefficient_of_variation([0.0, 0.0, 0.0]))
    # a single zero subgroup is still "one subgroup" -> 0, no warning needed
    assert fx.normalized_range([0.0]) == 0.0


def test_row_helpers_match_scalar_functions():
    rng = np.random.default_rng(0)
    m = rng.random((20, 7))
    m[rng.random(m.shape) < 0.2] = np.nan
    m[0] = [0.3] + [np.nan] * 6
    m[1] = 0.0
    for row, nr, cv in zip(m, nr_rows(m), cv_rows(m)):
        with pytest.warns(fx.FairnessWarning) if np.nansum(row) == 0 and (~np.isnan(row)).sum() > 1 else _null():
            assert nr == pytest.approx(fx.normalized_range(row), nan_ok=True)
        with pytest.warns(fx.FairnessWarning) if np.nansum(row) == 0 and (~np.isnan(row)).sum() > 1 else _null():
            assert cv == pytest.approx(fx.coefficient_of_variation(row), nan_ok=True)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# --- per-sample scores and tables ----------------------------------------------------------------
def _preds(rows):
    return pd.DataFrame(rows, columns=["run", "label", "tag", "split", "sample_id", "question_id", "stratum",
                                       "subgroup", "target", "scale_min", "scale_max", "prediction", "status"])


def test_score_samples_invalid_is_wrong_with_max_error():
    p = _preds([
        ("r", "M", "base", "ood", "a", "Q1", "s", "s:x", 3, 1, 5, 3, "ok"),
        ("r", "M", "base", "ood", "b", "Q1", "s", "s:y", 3, 1, 5, 5, "ok"),
        ("r", "M", "base", "ood", "c", "Q1", "s", "s:z", 3, 1, 5, np.nan, "unparseable"),
        ("r", "M", "base", "ood", "d", "Q1", "s", "s:w", 3, 1, 5, 3, "refused"),  # status wins
    ])
    s = metrics.score_samples(p)
    assert s["correct"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert s["nmae"].tolist() == pytest.approx([0.0, 2 / 4, 1.0, 1.0])
    with pytest.raises(ValueError, match="scale"):
        metrics.score_samples(p.assign(scale_max=1))


def test_subgroup_scores_and_fairness_table_by_hand():
    rows = []
    # subgroup acc: s:a 2/2, s:b 1/2, t:c 0/2 ; nmae: s:a 0, s:b (0 + .5)/2, t:c (1 + .5)/2
    for sg, preds in {"s:a": [1, 1], "s:b": [1, 3], "t:c": [np.nan, 3]}.items():
        for q, pr in zip(["Q1", "Q2"], preds):
            rows.append(("r", "M", "base", "ood", f"{q}_{sg}", q, sg.split(":")[0], sg, 1, 1, 5, pr,
                         "ok" if pr == pr else "failed"))
    s = metrics.score_samples(_preds(rows))
    sub = fx.subgroup_scores(s)
    assert sub.set_index("subgroup")["accuracy"].to_dict() == pytest.approx({"s:a": 1.0, "s:b": 0.5, "t:c": 0.0})
    assert sub.set_index("subgroup")["nmae"].to_dict() == pytest.approx({"s:a": 0.0, "s:b": 0.25, "t:c": 0.75})
    fair = fx.fairness_table(sub).set_index(["stratum", "metric"])
    acc = np.array([1.0, 0.5, 0.0])
    assert fair.loc[("all", "accuracy"), "norm_range"] == pytest.approx(1.0)
    assert fair.loc[("all", "accuracy"), "cv"] == pytest.approx(acc.std() / acc.mean())
    assert fair.loc[("all", "nmae"), "norm_range"] == pytest.approx((0.75 - 0) / 0.75)
    assert fair.loc[("s", "accuracy"), "norm_range"] == pytest.approx(0.5)
    assert fair.loc[("t", "accuracy"), "norm_range"] == 0.0  # single subgroup
    assert fair.loc[("all", "nmae"), "best_subgroup"] == "s:a"
    assert fair.loc[("all", "accuracy"), "worst_subgroup"] == "t:c"


def test_level_scores_count_pair_subgroups_toward_both_levels():
    rows = [
        ("r", "M", "base", "ood", "1", "Q1", "age_group_x_religion", "age_group_x_religion:25-34|Muslim", 1, 1, 4, 1, "ok"),
        ("r", "M", "base", "ood", "2", "Q1", "age_group_x_religion", "age_group_x_religion:25-34|Hindu", 1, 1, 4, 2, "ok"),
        ("r", "M", "base", "ood", "3", "Q1", "age_group_x_religion", "age_group_x_religion:65+|Muslim", 1, 1, 4, 1, "ok"),
        ("r", "M", "base", "ood", "4", "Q1", "ethnicity_x_religion", "ethnicity_x_religion:Malay|Muslim", 1, 1, 4, 4, "ok"),
    ]
    p = _preds(rows)
    p["levels"] = [json.dumps({"age_group": "25-34", "religion": "Muslim"}), None, "", "{}"]
    lv = fx.level_scores(metrics.score_samples(p)).set_index(["attribute", "level"])
    assert lv.loc[("religion", "Muslim"), "n_samples"] == 3
    assert lv.loc[("religion", "Muslim"), "accuracy"] == pytest.approx(2 / 3)
    assert lv.loc[("age_group", "25-34"), "accuracy"] == pytest.approx(1 / 2)
    assert lv.loc[("ethnicity", "Malay"), "nmae"] == pytest.approx(1.0)
    assert list(lv.loc["age_group"].index) == ["25-34", "65+"]  # AXES order
    gaps = fx.attribute_gaps(lv.reset_index()).set_index(["attribute", "metric"])
    assert gaps.loc[("religion", "accuracy"), "best_level"] == "Muslim"
    assert gaps.loc[("religion", "accuracy"), "gap"] == pytest.approx(2 / 3 - 0.0)
    assert gaps.loc[("age_group", "nmae"), "gap"] == pytest.approx(1 / 6 - 0.0)  # 25-34: (0 + 1/3)/2 vs 65+: 0
    fav = fx.favoured_levels(lv.reset_index())
    assert fav.loc[0, "age_group"] == "65+" and fav.loc[0, "religion"] == "Muslim"


def test_ablation_table_needs_both_tags():
    sub = pd.DataFrame({
        "run": ["a"] * 4 + ["b"] * 2, "label": ["A"] * 4 + ["B"] * 2,
        "tag": ["base", "base", "sft", "sft", "base", "base"], "split": "ood", "stratum": "s",
        "subgroup": ["s:x", "s:y"] * 3, "accuracy": [0.8, 0.4, 0.6, 0.5, 0.5, 0.5], "nmae": [0.2, 0.4, 0.2, 0.5, 0.3, 0.3],
    })
    ab = fx.ablation_table(fx.fairness_table(sub)).set_index("statistic")
    assert set(ab["run"]) == {"a"}
    assert ab.loc["Acc Norm. Range", "base"] == pytest.approx(0.5)
    assert ab.loc["Acc Norm. Range", "sft"] == pytest.approx(1 / 6)
    assert ab.loc["NMAE Norm. Range", "change"] == pytest.approx(0.6 - 0.5)
    assert ab.loc["Acc CV", "base"] == pytest.approx(0.2 / 0.6)
    pub = fx.published_ablation().set_index("statistic")
    assert pub.loc["Acc Norm. Range", "base"] == 0.240 and pub.loc["NMAE Norm. Range", "sft"] == 0.336


# --- uncertainty ---------------------------------------------------------------------------------
def test_bootstrap_point_estimates_and_determinism():
    rng = np.random.default_rng(2)
    answers = {(q, g): 1 if rng.random() < 0.5 + 0.1 * g else 2 for q in range(15) for g in range(4)}
    rows = [("r", "M", tag, "ood", f"Q{q}_s:{g}", f"Q{q}", "s", f"s:{g}", 1, 1, 4, a, "ok")
            for tag in ("base", "sft") for (q, g), a in answers.items()]
    s = metrics.score_samples(_preds(rows))
    b1 = fx.bootstrap_fairness(s, n_boot=200, seed=5)
    b2 = fx.bootstrap_fairness(s, n_boot=200, seed=5)
    pd.testing.assert_frame_equal(b1, b2)
    fair = fx.fairness_table(fx.subgroup_scores(s)).query("stratum == 'all'").set_index(["tag", "metric"])
    est = b1.set_index(["tag", "statistic"])["estimate"]
    assert est[("base", "accuracy_norm_range")] == pytest.approx(fair.loc[("base", "accuracy"), "norm_range"])
    assert est[("sft", "nmae_cv")] == pytest.approx(fair.loc[("sft", "nmae"), "cv"])
    assert est[("base", "accuracy")] == pytest.approx(s[s.tag == "base"]["correct"].mean())
    assert est[("sft - base", "accuracy")] == pytest.approx(0.0)  # same answers in both
    # paired resampling: identical base and sft give a zero-width interval for the change
    ch = b1[b1.tag == "sft - base"]
    assert (ch["lo"].abs() < 1e-12).all() and (ch["hi"].abs() < 1e-12).all()


@pytest.mark.slow  # 200 simulated studies x 200 resamples
def test_bootstrap_ci_covers_known_accuracy_at_stated_rate():
    # 200 simulated studies: 80 questions, one subgroup, P(correct) = 0.6 -> true accuracy 0.6
    rng = np.random.default_rng(11)
    n_rep, n_q, truth = 200, 80, 0.6
    hits = 0
    q = [f"Q{i}" for i in range(n_q)]
    for rep in range(n_rep):
        s = pd.DataFrame({"run": "r", "label": "M", "tag": "base", "split": "ood", "question_id": q,
                          "stratum": "s", "subgroup": "s:a", "correct": (rng.random(n_q) < truth).astype(float)})
        s["nmae"] = 1 - s["correct"]
        b = fx.bootstrap_fairness(s, n_boot=200, seed=rep, ci=0.9).set_index("statistic")
        hits += b.loc["accuracy", "lo"] <= truth <= b.loc["accuracy", "hi"]
    # 90 % nominal: a 3-sigma binomial band around 0.9 (percentile intervals under-cover slightly)
    sd = math.sqrt(0.9 * 0.1 / n_rep)
    assert 0.9 - 3 * sd - 0.02 <= hits / n_rep <= min(1.0, 0.9 + 3 * sd)


def test_bootstrap_basic_method_reflects_percentiles():
    s = pd.DataFrame({"tag": "base", "split": "ood", "question_id": [f"Q{i}" for i in range(30)],
                      "stratum": "s", "subgroup": "s:a", "correct": [1.0, 0.0, 1.0] * 10})
    s["nmae"] = 1 - s["correct"]
    p = fx.bootstrap_fairness(s, n_boot=300, seed=1).set_index("statistic").loc["accuracy"]
    b = fx.bootstrap_fairness(s, n_boot=300, seed=1, method="basic").set_index("statistic").loc["accuracy"]
    assert b["lo"] == pytest.approx(2 * p["estimate"] - p["hi"])
    assert b["hi"] == pytest.approx(2 * p["estimate"] - p["lo"])


def test_permutation_p_value_equals_itertools_enumeration():
    x = np.array([0.9, 0.4, 0.7, 0.2, 0.8, 0.6, 0.5])
    y = np.array([0.5, 0.5, 0.3, 0.4, 0.1, 0.6, 0.2])
    d = x - y
    obs = abs(d.sum())
    flips = [abs(sum(s * v for s, v in zip(signs, d))) for signs in itertools.product([1, -1], repeat=len(d))]
    expected = sum(f >= obs - 1e-12 for f in flips) / len(flips)
    r = fx.paired_permutation_test(x, y)
    assert r["method"] == "exact"
    assert r["p_value"] == pytest.approx(expected)
    assert r["statistic"] == pytest.approx(d.mean())
    # one-sided: share of flips with sum >= observed
    exp_g = sum(sum(s * v for s, v in zip(signs, d)) >= d.sum() - 1e-12
                for signs in itertools.product([1, -1], repeat=len(d))) / 2 ** len(d)
    assert fx.paired_permutation_test(x, y, alternative="greater")["p_value"] == pytest.approx(exp_g)


def test_permutation_monte_carlo_agrees_with_exact_sign_test():
    rng = np.random.default_rng(4)
    base = (rng.random(400) < 0.45).astype(float)
    sft = np.where(rng.random(400) < 0.15, 1.0, base)
    r = fx.paired_permutation_test(sft, base, n_perm=20000, seed=0, exact_max=8)
    assert r["method"] == "monte carlo"
    d = sft - base
    exact = binomtest(int((d > 0).sum()), int((d != 0).sum()), 0.5).pvalue  # sign flips of +-1 = binomial
    assert r["p_value"] == pytest.approx(exact, abs=0.01 + 0.05 * exact)
    assert fx.paired_permutation_test([1, 0], [1, 0])["p_value"] == 1.0


def test_load_run_predictions_labels_and_permutation_tests(tmp_path):
    for run, label, tags in (("m1", "Model One", ("base", "sft", "base-unseen")), ("m2", None, ("base", "zeroshot"))):
        d = tmp_path / run / "predictions"
        d.mkdir(parents=True)
        if label:
            (tmp_path / run / "params.yaml").write_text(f"name: {run}\ndisplay_name: {label}\n")
        for tag in tags:
            p = _preds([(None, None, None, "ood", f"Q{i}_s:a", f"Q{i}", "s", "s:a", 1, 1, 2,
                         1 if (tag == "sft" or i % 2) else 2, "ok") for i in range(10)])
            p.drop(columns=["run", "label", "tag"]).assign(model=f"hub/{run}").to_csv(d / f"{tag}_ood.csv", index=False)
    (tmp_path / "m1" / "predictions" / "notes_x.csv").write_text("ignored\n")
    preds = load_run_predictions(tmp_path)
    # zeroshot (notebook 05) is read; notebook 04's base-unseen probe is not a model state here
    assert sorted(preds.groupby(["run", "label", "tag"]).size().index.tolist()) == [
        ("m1", "Model One", "base"), ("m1", "Model One", "sft"), ("m2", "hub/m2", "base"),
        ("m2", "hub/m2", "zeroshot")]
    pt = fx.permutation_tests(metrics.score_samples(preds)).set_index("metric")
    assert list(pt["run"].unique()) == ["m1"]  # base vs sft only: m2 has no sft
    ablation = fx.ablation_table(fx.fairness_table(fx.subgroup_scores(metrics.score_samples(preds))), split="ood")
    assert set(ablation["run"]) == {"m1"}
    # base right on odd i (5/10), sft always right: 5 positive differences -> exact p = 2 / 2^5
    assert pt.loc["accuracy", "change"] == pytest.approx(0.5)
    assert pt.loc["accuracy", "p_value"] == pytest.approx(2 / 32)
    assert load_run_predictions(tmp_path / "nothing").empty


def test_per_sample_scores_agree_with_metrics_module():

    rng = np.random.default_rng(9)
    n = 300
    k = rng.choice([2, 4, 10], size=n)
    target = rng.integers(1, k + 1)
    pred = np.where(rng.random(n) < 0.1, np.nan, rng.integers(1, k + 1)).astype(float)
    p = pd.DataFrame({"target": target, "prediction": pred, "scale_min": 1, "scale_max": k,
                      "status": np.where(np.isnan(pred), "unparseable", "ok")})
    s = metrics.score_samples(p)
    assert s["correct"].mean() == pytest.approx(metrics.accuracy(pred, target))
    assert s["nmae"].mean() == pytest.approx(metrics.nmae(pred, target, p["scale_min"], p["scale_max"]))


# --- clustered inference (issue 22) -------------------------------------------------------------
def _itertools_question_p(sums):
    """Two-sided sign-flip p over ALL 2^Q sign vectors of the question sums, zeros included."""
    obs = abs(sum(sums))
    flips = [abs(sum(s * v for s, v in zip(signs, sums))) for signs in itertools.product([1, -1], repeat=len(sums))]
    return sum(f >= obs - 1e-9 for f in flips) / len(flips)


def test_question_test_reproduces_issue_22_exact_enumeration():
    # per-question sums of SFT minus base accuracy, 0, 33, 0, 49, 50, 0: 64 sign vectors, of which
    # 16 (all-plus or all-minus on the three non-zero sums, times 2^3 signs of the zeros) reach 132
    sums = [0, 33, 0, 49, 50, 0]
    assert _itertools_question_p(sums) == pytest.approx(16 / 64) == pytest.approx(0.25)
    q, x, y = [], [], []
    for i, s in enumerate(sums):  # 60 samples per question, s of them gained, none lost
        q += [f"Q{i}"] * 60
        x += [1.0] * s + [0.0] * (60 - s)
        y += [0.0] * 60
    r = fx.question_permutation_test(x, y, q)
    assert r["p_value"] == pytest.approx(0.25)
    assert (r["n"], r["n_questions"], r["n_nonzero"], r["method"]) == (360, 6, 3, "exact")
    assert r["statistic"] == pytest.approx(132 / 360)
    # the per-sample test (the old unit) would call the same data overwhelmingly significant
    assert fx.paired_permutation_test(x, y)["p_value"] < 1e-3


def test_question_test_with_mixed_signs_and_uneven_questions():
    rng = np.random.default_rng(8)
    q = rng.choice([f"Q{i}" for i in range(9)], size=120)
    x, y = rng.random(120), rng.random(120) * 0.8
    sums = pd.Series(x - y).groupby(q).sum().tolist()
    r = fx.question_permutation_test(x, y, q)
    assert r["method"] == "exact" and r["n_questions"] == 9
    assert r["p_value"] == pytest.approx(_itertools_question_p(sums))


def test_question_test_monte_carlo_above_the_exact_limit():
    rng = np.random.default_rng(1)
    q = np.repeat([f"Q{i}" for i in range(30)], 4)
    x, y = rng.random(120) + 0.05, rng.random(120)
    r1 = fx.question_permutation_test(x, y, q, n_perm=4000, seed=3)
    r2 = fx.question_permutation_test(x, y, q, n_perm=4000, seed=3)
    assert r1 == r2 and r1["method"] == "monte carlo" and r1["n_questions"] == 30
    # normal approximation of the sign-flip null: Var(sum eps_q D_q) = sum D_q^2
    sums = pd.Series(x - y).groupby(q).sum().to_numpy()
    from scipy.stats import norm
    approx = 2 * norm.sf(abs(sums.sum()) / math.sqrt((sums ** 2).sum()))
    assert r1["p_value"] == pytest.approx(approx, abs=0.03)
    with pytest.raises(ValueError, match="one question per pair"):
        fx.question_permutation_test([1, 0], [0, 0], ["Q1"])


def test_holm_by_hand():
    # m = 5: sorted 0.001, 0.01, 0.02, 0.04, 0.3 -> x5, x4, x3, x2, x1, then running maximum
    p = [0.04, 0.001, 0.3, 0.02, 0.01]
    exp = {0.001: 0.005, 0.01: 0.04, 0.02: 0.06, 0.04: 0.08, 0.3: 0.3}
    assert fx.holm(p).tolist() == pytest.approx([exp[v] for v in p])
    # monotone step: a later small product is raised to the earlier maximum; capped at 1; NaN kept
    got = fx.holm([0.02, 0.021, float("nan"), 0.9])
    assert got[0] == pytest.approx(0.06) and got[1] == pytest.approx(0.06) and math.isnan(got[2]) and got[3] == 0.9
    assert fx.holm([0.5, 0.6]).tolist() == [1.0, 1.0]


def test_permutation_tests_are_question_level_and_holm_adjusted():
    # 4 questions x 10 subgroups: SFT gains every subgroup on Q0..Q2, loses nothing: per-sample
    # test p ~ 2^-29, but question sums 10, 10, 10, 0 -> exact p = 2 / 2^3
    rows = []
    for q in range(4):
        for g in range(10):
            for tag in ("base", "sft"):
                right = tag == "sft" and q < 3
                rows.append(("r", "M", tag, "ood", f"Q{q}_s:{g}", f"Q{q}", "s", f"s:{g}", 1, 1, 2,
                             1 if right else 2, "ok"))
    pt = fx.permutation_tests(metrics.score_samples(_preds(rows))).set_index("metric")
    assert list(pt.columns) == [c for c in fx.PERMUTATION_COLUMNS if c != "metric"]
    assert pt.loc["accuracy", "p_value"] == pytest.approx(0.25)
    assert (pt.loc["accuracy", "n_questions"], pt.loc["accuracy", "n"], pt.loc["accuracy", "method"]) == (4, 40, "exact")
    # the chapter's family: accuracy and NMAE (identical p, 0.25 each) -> Holm 2 x 0.25
    assert pt["p_holm"].tolist() == pytest.approx([0.5, 0.5])


def test_bootstrap_resamples_each_states_own_questions():
    # zeroshot answers 12 questions, base/sft the first 3 (all right for sft, all wrong for base)
    rows = [("r", "M", "zeroshot", "ood", f"Q{q}_s:{g}", f"Q{q}", "s", f"s:{g}", 1, 1, 2, 1 if q % 2 else 2, "ok")
            for q in range(12) for g in range(3)]
    rows += [("r", "M", tag, "ood", f"Q{q}_s:{g}", f"Q{q}", "s", f"s:{g}", 1, 1, 2, 1 if tag == "sft" else 2, "ok")
             for tag in ("base", "sft") for q in range(3) for g in range(3)]
    b = fx.bootstrap_fairness(metrics.score_samples(_preds(rows)), n_boot=200, seed=0)
    nq = b.groupby("tag")["n_questions"].first().to_dict()
    assert nq == {"zeroshot": 12, "base": 3, "sft": 3, "sft - base": 3}
    acc = b[b.statistic == "accuracy"].set_index("tag")
    # base and sft draw only their own questions: every draw is 0 (base) or 1 (sft), never a mix
    assert (acc.loc["base", "lo"], acc.loc["base", "hi"]) == (0.0, 0.0)
    assert (acc.loc["sft", "lo"], acc.loc["sft", "hi"]) == (1.0, 1.0)
    assert acc.loc["zeroshot", "estimate"] == pytest.approx(0.5) and acc.loc["zeroshot", "lo"] < 0.5
