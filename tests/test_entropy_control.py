"""Entropy control: normalised entropy, terciles, and the between-group R^2 against scipy/numpy."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sgvalues import entropy_control as ec
from sgvalues.report.knowledge import explained_table


def test_answer_entropy_by_hand():
    # H(.5, .25, .25) = .5*1 + 2*.25*2 = 1.5 bits; max log2(3)
    assert ec.answer_entropy({1: 0.5, 2: 0.25, 3: 0.25}, normalised=False) == pytest.approx(1.5)
    assert ec.answer_entropy({1: 0.5, 2: 0.25, 3: 0.25}) == pytest.approx(1.5 / math.log2(3))
    # zero shares count as options (they set the maximum) but add no entropy
    assert ec.answer_entropy({1: 0.5, 2: 0.5, 3: 0.0, 4: 0.0}) == pytest.approx(0.5)
    assert ec.answer_entropy({1: 1.0}) == 0.0
    with pytest.raises(ValueError, match="distribution"):
        ec.answer_entropy({1: 0.0, 2: 0.0})


def test_terciles_by_hand_and_with_ties():
    t = pd.DataFrame({"entropy": [0.9, 0.1, 0.5, 0.5, 0.5, 0.2, 0.8, 0.3, 0.7],
                      "jsd": [0.9, 0.1, 0.5, 0.4, 0.6, 0.2, 0.8, 0.3, 0.7]})
    got = ec.entropy_terciles(t, "jsd")
    assert got["tercile"].tolist() == ["low", "middle", "high"]
    assert got["n"].tolist() == [3, 3, 3]
    # sorted entropy: .1 .2 .3 | .5 .5 .5 | .7 .8 .9
    assert got["error"].tolist() == pytest.approx([0.2, 0.5, 0.8])
    assert got["entropy_lo"].tolist() == pytest.approx([0.1, 0.5, 0.7])
    # all tied: still three groups of equal size
    same = pd.DataFrame({"entropy": [0.5] * 6, "jsd": range(6)})
    assert ec.entropy_terciles(same, "jsd")["n"].tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match=">= 3"):
        ec.entropy_terciles(t.head(2), "jsd")


def _cells(seed=0, n_groups=12, per=15):
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        base_h = rng.uniform(0.1, 0.9)
        for _ in range(per):
            h = np.clip(base_h + rng.normal(0, 0.05), 0, 1)
            n = rng.integers(30, 400)
            rows.append({"subgroup": f"g{g}", "entropy": h, "log_n": np.log(n),
                         "nmae": 0.05 + 0.4 * h + rng.normal(0, 0.05)})
    return pd.DataFrame(rows)


def test_r2_matches_linregress_on_group_means():
    t = _cells()
    got = ec.entropy_explained(t, "nmae")
    means = t.groupby("subgroup")[["entropy", "nmae"]].mean()
    lr = stats.linregress(means["entropy"], means["nmae"])
    assert got["n_groups"] == 12
    assert got["r2"] == pytest.approx(lr.rvalue ** 2)
    assert got["coefficients"]["entropy"] == pytest.approx(lr.slope)
    assert got["intercept"] == pytest.approx(lr.intercept)
    resid = means["nmae"] - (lr.intercept + lr.slope * means["entropy"])
    assert got["gap_raw"] == pytest.approx(means["nmae"].max() - means["nmae"].min())
    assert got["gap_adjusted"] == pytest.approx(resid.max() - resid.min())
    assert got["gap_explained"] == pytest.approx(1 - got["gap_adjusted"] / got["gap_raw"])
    assert got["r2"] > 0.8  # the error was built from entropy


def test_two_covariates_match_numpy_polyfit_free_ols():
    t = _cells(seed=2)
    got = ec.entropy_explained(t, "nmae", covariates=("entropy", "log_n"))
    m = t.groupby("subgroup")[["entropy", "log_n", "nmae"]].mean()
    x = np.column_stack([np.ones(len(m)), m["entropy"], m["log_n"]])
    beta = np.linalg.solve(x.T @ x, x.T @ m["nmae"].to_numpy())
    fitted = x @ beta
    r2 = 1 - ((m["nmae"] - fitted) ** 2).sum() / ((m["nmae"] - m["nmae"].mean()) ** 2).sum()
    assert got["r2"] == pytest.approx(r2)
    assert got["coefficients"]["log_n"] == pytest.approx(beta[2])
    # adding a covariate cannot lower R^2
    assert got["r2"] >= ec.entropy_explained(t, "nmae")["r2"] - 1e-12


def test_unrelated_error_has_small_r2_and_bad_input_is_named():
    rng = np.random.default_rng(5)
    t = pd.DataFrame({"subgroup": np.repeat([f"g{i}" for i in range(40)], 5), "entropy": rng.uniform(size=200),
                      "nmae": rng.uniform(size=200)})
    assert ec.entropy_explained(t, "nmae")["r2"] < 0.2
    with pytest.raises(ValueError, match="log_n"):
        ec.entropy_explained(t, "nmae", covariates=("entropy", "log_n"))
    with pytest.raises(ValueError, match="group"):
        ec.entropy_explained(t.head(5), "nmae")


def test_covariate_constant_between_groups_is_refused_and_its_row_left_out():
    # every question asked of the same four subgroups: mean ln n is the same for each question
    rng = np.random.default_rng(7)
    sizes = [30.0, 45.0, 90.0, 200.0]
    t = pd.DataFrame({"question_id": np.repeat([f"Q{i}" for i in range(6)], 4), "subgroup": list("abcd") * 6,
                      "entropy": rng.uniform(size=24), "log_n": np.log(sizes * 6), "jsd": rng.uniform(size=24)})
    with pytest.raises(ValueError, match=r"\['log_n'\].*question_id"):
        ec.entropy_explained(t, "jsd", group="question_id", covariates=("entropy", "log_n"))
    rows = explained_table(t, "jsd").set_index(["groups", "covariates"])
    assert ("question", "entropy + size") not in rows.index
    # between subgroups size does vary: that row stays, and matches the direct fit
    direct = ec.entropy_explained(t, "jsd", covariates=("entropy", "log_n"))
    assert rows.loc[("subgroup", "entropy + size"), "R²"] == pytest.approx(direct["r2"])
    assert rows.loc[("question", "entropy"), "n"] == 6


def test_add_entropy_column():
    t = pd.DataFrame({"distribution": ['{"1": 0.25, "2": 0.25, "3": 0.25, "4": 0.25}', '{"1": 1, "2": 0}']})
    assert ec.add_entropy(t)["entropy"].tolist() == pytest.approx([1.0, 0.0])
    with pytest.raises(ValueError, match="distribution"):
        ec.add_entropy(t.rename(columns={"distribution": "d"}))


def test_cell_errors_joins_entropy_size_and_errors():
    from sgvalues.metrics import distribution_scores

    p = pd.DataFrame({"sample_id": ["a", "b", "c"], "question_id": "Q1", "stratum": "s",
                      "subgroup": ["s:a", "s:b", "s:c"], "target": [1, 2, 1], "prediction": [1, 1, 2],
                      "scale_min": 1, "scale_max": 3, "status": "ok",
                      "probs": ['{"1": 0.8, "2": 0.1, "3": 0.1}', '{"1": 0.6, "2": 0.4, "3": 0.0}', ""],
                      "distribution": ['{"1": 1.0, "2": 0.0, "3": 0.0}', '{"1": 0.25, "2": 0.5, "3": 0.25}', ""]})
    samples = pd.DataFrame({"sample_id": ["a", "b", "c"], "n_valid": [30, 100, 50]})
    got = ec.cell_errors(p, samples)
    assert list(got.columns) == ec.CELL_COLUMNS
    assert got["sample_id"].tolist() == ["a", "b"]  # c has no observed distribution
    assert got["entropy"].tolist() == pytest.approx([0.0, 1.5 / math.log2(3)])
    assert got["log_n"].tolist() == pytest.approx([math.log(30), math.log(100)])
    assert got["correct"].tolist() == [1.0, 0.0] and got["nmae"].tolist() == pytest.approx([0.0, 0.5])
    assert got["jsd"].tolist() == pytest.approx(distribution_scores(p.iloc[:2])["jsd"].tolist())
    assert ec.cell_errors(p)["log_n"].isna().all()
