"""Modal Diversity Score and the Wasserstein cross-check, against hand values and scipy."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from sgvalues import diversity as dv


# --- MDS by hand ------------------------------------------------------------------------------
def test_mds_consensus_is_zero():
    assert dv.modal_diversity_score([2, 2, 2, 2, 2], n_options=4) == 0.0


def test_mds_all_different_is_one():
    # |S| = |C| = 4, every subgroup a different mode: entropy log2(4) / log2(4)
    assert dv.modal_diversity_score([1, 2, 3, 4], n_options=4) == pytest.approx(1.0)


def test_mds_fewer_subgroups_than_options():
    # |S| = 3 < |C| = 10: modes (1, 1, 5) -> H = -(2/3 log2 2/3 + 1/3 log2 1/3), normalised by log2 3
    h = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert dv.modal_diversity_score([1, 1, 5], n_options=10) == pytest.approx(h / math.log2(3))
    # three different modes with three subgroups reach the maximum even though |C| = 10
    assert dv.modal_diversity_score([1, 4, 9], n_options=10) == pytest.approx(1.0)


def test_mds_more_subgroups_than_options():
    # |S| = 8 > |C| = 2: modes 6 x "1", 2 x "2" -> H(0.75, 0.25) / log2(2)
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert dv.modal_diversity_score([1] * 6 + [2] * 2, n_options=2) == pytest.approx(h)
    # an even split over both options of a binary question is maximal disagreement
    assert dv.modal_diversity_score([1] * 4 + [2] * 4, n_options=2) == pytest.approx(1.0)


def test_mds_single_subgroup_and_missing_modes():
    assert dv.modal_diversity_score([3], n_options=4) == 0.0
    assert dv.modal_diversity_score([], n_options=4) == 0.0
    # NaN modes (no valid answers) are dropped before counting |S|
    assert dv.modal_diversity_score([1, float("nan"), 2, None], n_options=4) == pytest.approx(1.0)


def test_mds_rejects_more_modes_than_options():
    with pytest.raises(ValueError, match="n_options = 2"):
        dv.modal_diversity_score([1, 2, 3], n_options=2)


# --- Wasserstein --------------------------------------------------------------------------------
def test_wasserstein_hand_case():
    # codes 1..5 -> x = 0, .25, .5, .75, 1; all mass at 1 vs all at 3 is a shift of 0.5;
    # {1: .5, 5: .5} vs {3: 1}: half the mass moves .5 each way -> 0.5; {1:1} vs {1:.5,5:.5} -> 0.5
    d = [{1: 1.0}, {3: 1.0}, {1: 0.5, 5: 0.5}]
    assert dv.mean_pairwise_wasserstein(d, 1, 5) == pytest.approx((0.5 + 0.5 + 0.5) / 3)
    # half the mass moves one step of 1/4
    assert dv.mean_pairwise_wasserstein([{"1": 0.5, "2": 0.5}, {"2": 1.0}], 1, 5) == pytest.approx(0.125)
    assert math.isnan(dv.mean_pairwise_wasserstein([{"2": 1.0}], 1, 5))


def test_wasserstein_matches_scipy_on_random_cases():
    rng = np.random.default_rng(1)
    for _ in range(50):
        k = int(rng.integers(2, 11))
        n = int(rng.integers(2, 9))
        dists = []
        for _ in range(n):
            support = rng.choice(np.arange(1, k + 1), size=int(rng.integers(1, k + 1)), replace=False)
            w = rng.dirichlet(np.ones(len(support)))
            dists.append({int(c): float(s) for c, s in zip(support, w)})
        ours = dv.mean_pairwise_wasserstein([json.dumps({str(c): s for c, s in d.items()}) for d in dists], 1, k)
        ref = np.mean([
            wasserstein_distance([(c - 1) / (k - 1) for c in a], [(c - 1) / (k - 1) for c in b],
                                 list(a.values()), list(b.values()))
            for a, b in itertools.combinations(dists, 2)
        ])
        assert ours == pytest.approx(ref, abs=1e-12)


# --- the table ----------------------------------------------------------------------------------
def _random_prepared(rng, n_questions=12, strata=None):
    """Random prepared tables: sparse distributions, ~5 % subgroups without valid answers."""
    strata = strata or {"sex": 2, "religion": 7, "age_group_x_ethnicity": 15}
    sub = [(s, f"{s}:{g}") for s, n in strata.items() for g in range(n)]
    rows, qs = [], []
    for q in range(n_questions):
        k = int(rng.choice([2, 4, 5, 10]))
        qs.append({"question_id": f"Q{q + 1}", "theme": f"T{q % 3}", "scale_min": 1, "scale_max": k, "n_options": k})
        p = rng.dirichlet(np.ones(k) * 0.7, size=len(sub))
        keep = rng.random(p.shape) < 0.8
        keep[np.arange(len(sub)), p.argmax(axis=1)] = True
        p = np.where(keep, p, 0)
        p /= p.sum(axis=1, keepdims=True)
        missing = rng.random(len(sub)) < 0.05
        for (s, sg), pr, miss in zip(sub, p, missing):
            rows.append((f"Q{q + 1}", s, sg, 0 if miss else 40, np.nan if miss else float(pr.argmax() + 1),
                         0 if miss else 1,
                         "{}" if miss else json.dumps({str(c + 1): float(v) for c, v in enumerate(pr) if v > 0})))
    cols = ["question_id", "stratum", "subgroup", "n_valid", "modal_answer", "n_tied_modes", "distribution"]
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(qs)


def test_diversity_table_shape_and_values_match_scalar_functions():
    rng = np.random.default_rng(7)
    ma, qs = _random_prepared(rng)
    out = dv.diversity_table(ma, qs)
    assert list(out.columns) == ["question_id", "theme", "stratum", "mds", "mean_wasserstein", "n_subgroups", "n_options"]
    assert len(out) == 12 * 3
    assert out[["question_id", "stratum"]].duplicated().sum() == 0
    q = qs.set_index("question_id")
    for r in out.itertuples():
        cell = ma[(ma.question_id == r.question_id) & (ma.stratum == r.stratum) & ma.modal_answer.notna()]
        info = q.loc[r.question_id]
        assert r.n_subgroups == len(cell)
        assert r.theme == info.theme and r.n_options == info.n_options
        assert r.mds == pytest.approx(dv.modal_diversity_score(cell.modal_answer, info.n_options), abs=1e-12)
        ref = dv.mean_pairwise_wasserstein(list(cell.distribution), info.scale_min, info.scale_max)
        assert r.mean_wasserstein == pytest.approx(ref, abs=1e-12, nan_ok=True)
    assert out["mds"].between(0, 1).all()


def test_diversity_table_accepts_dicts_and_reports_bad_input():
    ma = pd.DataFrame({"question_id": ["Q1", "Q1"], "stratum": ["sex"] * 2, "subgroup": ["sex:Male", "sex:Female"],
                       "modal_answer": [1.0, 1.0], "distribution": [{1: 0.9, 2: 0.1}, {"1": 0.5, "2": 0.5}]})
    qs = pd.DataFrame({"question_id": ["Q1"], "theme": ["T"], "scale_min": [1], "scale_max": [2], "n_options": [2]})
    out = dv.diversity_table(ma, qs)
    assert out.loc[0, "mds"] == 0.0 and out.loc[0, "mean_wasserstein"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="question_id .*Q9"):
        dv.diversity_table(ma.assign(question_id="Q9"), qs)
    with pytest.raises(ValueError, match="missing column"):
        dv.diversity_table(ma.drop(columns="distribution"), qs)
    with pytest.raises(ValueError, match="scale_max > scale_min"):
        dv.diversity_table(ma, qs.assign(scale_max=1))


def test_diversity_table_full_size():
    rng = np.random.default_rng(3)
    strata = {"sex": 2, "age_group": 6, "ethnicity": 3, "religion": 7, "sex_x_age_group": 12, "sex_x_religion": 14,
              "sex_x_ethnicity": 6, "age_group_x_religion": 20, "age_group_x_ethnicity": 15, "ethnicity_x_religion": 13}
    ma, qs = _random_prepared(rng, n_questions=240, strata=strata)
    # timing lives in benchmarks/bench_data.py; here: every (question, stratum) cell is present
    out = dv.diversity_table(ma, qs)
    assert len(out) == 2400
    assert out.groupby("stratum").size().eq(240).all()


# --- summaries ----------------------------------------------------------------------------------
def test_theme_ranking_and_extremes():
    d = pd.DataFrame({
        "question_id": ["Q1", "Q1", "Q2", "Q2", "Q3", "Q3"],
        "theme": ["Religious Values"] * 2 + ["Social Capital, Trust & Organizational Membership"] * 4,
        "stratum": ["a", "b"] * 3, "mds": [0.6, 0.4, 0.0, 0.2, 0.1, 0.1], "mean_wasserstein": [0.3, 0.1, 0.0, 0.1, 0.05, 0.05],
    })
    rank = dv.theme_ranking(d)
    assert list(rank["theme"]) == ["Religious Values", "Social Capital, Trust & Organizational Membership"]
    assert rank["mds"].tolist() == pytest.approx([0.5, 0.1])  # question means 0.5; (0.1 + 0.1) / 2
    assert rank["published_mds"].tolist() == pytest.approx([0.318, 0.084])
    qs = pd.DataFrame({"question_id": ["Q1", "Q2", "Q3"], "wording": ["w1", "w2", "w3"]})
    ext = dv.extreme_questions(d, qs, n=1)
    assert ext["question_id"].tolist() == ["Q1", "Q2"] and ext["wording"].tolist() == ["w1", "w2"]


def test_spearman_matches_rank_formula():
    rng = np.random.default_rng(0)
    n = 30
    d = pd.DataFrame({"question_id": [f"Q{i}" for i in range(n)], "theme": "T", "stratum": "s",
                      "mds": rng.random(n), "mean_wasserstein": rng.random(n)})
    rx = d["mds"].rank().to_numpy()
    ry = d["mean_wasserstein"].rank().to_numpy()
    rho = 1 - 6 * ((rx - ry) ** 2).sum() / (n * (n * n - 1))  # no ties
    assert dv.mds_wasserstein_correlation(d)["rho"] == pytest.approx(rho)
