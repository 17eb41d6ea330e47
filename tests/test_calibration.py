"""Calibration: ECE and the reliability table by hand, modal confidence, the sampling-uncertainty region."""

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from sgvalues import calibration as cal


def test_ece_by_hand_small_example():
    # 5 bins of width 0.2. Cells: conf .1 (wrong), .3 (right), .35 (wrong), .9 (right), .95 (right), .85 (wrong)
    conf = [0.1, 0.3, 0.35, 0.9, 0.95, 0.85]
    corr = [0, 1, 0, 1, 1, 0]
    # bin 0 [0, .2): {.1}: acc 0, conf .1 -> |0 - .1| = .1, weight 1/6
    # bin 1 [.2, .4): {.3, .35}: acc .5, conf .325 -> .175, weight 2/6
    # bin 4 [.8, 1]: {.9, .95, .85}: acc 2/3, conf .9 -> .2333.., weight 3/6
    expected = (1 / 6) * 0.1 + (2 / 6) * 0.175 + (3 / 6) * abs(2 / 3 - 0.9)
    assert cal.expected_calibration_error(conf, corr, n_bins=5) == pytest.approx(expected)
    t = cal.reliability_table(conf, corr, n_bins=5)
    assert t["n"].tolist() == [1, 2, 0, 0, 3]
    assert t.loc[1, "confidence"] == pytest.approx(0.325) and t.loc[1, "accuracy"] == pytest.approx(0.5)
    assert np.isnan(t.loc[2, "accuracy"])
    assert t.loc[4, "gap"] == pytest.approx(2 / 3 - 0.9)
    assert t["share"].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(t["lo"], [0, 0.2, 0.4, 0.6, 0.8])


def test_ece_edges_and_extremes():
    # a confidence of exactly 1 goes to the last bin; perfectly calibrated cells give 0
    t = cal.reliability_table([1.0, 0.0], [1, 0], n_bins=4)
    assert t["n"].tolist() == [1, 0, 0, 1]
    assert cal.expected_calibration_error([1.0, 0.0], [1, 0], n_bins=4) == 0.0
    # always confident, always wrong: ECE = 1
    assert cal.expected_calibration_error([1.0] * 3, [0] * 3) == pytest.approx(1.0)
    assert np.isnan(cal.expected_calibration_error([], []))
    with pytest.raises(ValueError, match="confidence"):
        cal.expected_calibration_error([1.2], [1])
    with pytest.raises(ValueError, match="correct"):
        cal.expected_calibration_error([0.5], [2])


def test_ece_matches_a_loop_over_random_cells():
    rng = np.random.default_rng(0)
    conf = rng.uniform(size=500)
    corr = (rng.uniform(size=500) < conf ** 2).astype(int)
    total = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        m = (conf >= lo) & ((conf < hi) if b < 9 else (conf <= hi))
        if m.any():
            total += m.mean() * abs(corr[m].mean() - conf[m].mean())
    assert cal.expected_calibration_error(conf, corr) == pytest.approx(total)


def test_modal_confidence_reads_probs_and_breaks_ties_low():
    df = pd.DataFrame({"sample_id": list("abcd"), "target": [3, 1, 2, 1],
                       "probs": ['{"1": 0.1, "2": 0.2, "3": 0.7}', '{"1": 0.4, "2": 0.4}', '{"1": 2, "2": 6}', None]})
    got = cal.modal_confidence(df)
    assert got["sample_id"].tolist() == ["a", "b", "c"]
    assert got["modal"].tolist() == [3, 1, 2]
    assert got["confidence"].tolist() == pytest.approx([0.7, 0.5, 0.75])  # renormalised
    assert got["correct"].tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="target"):
        cal.modal_confidence(df.drop(columns="target"))


def test_sampling_region_is_the_quantile_of_bootstrap_distances():
    p = np.array([0.5, 0.3, 0.2])
    n, n_boot = 30, 400
    for distance in ("tv", "jsd"):
        radius = cal.sampling_region(p, n, n_boot=n_boot, distance=distance, seed=7, key="Q1_sex:Male")
        # the same draws by hand
        import zlib
        rng = np.random.default_rng([7, zlib.crc32(b"Q1_sex:Male")])
        draws = rng.multinomial(n, p, size=n_boot) / n
        d = (0.5 * np.abs(draws - p).sum(axis=1) if distance == "tv"
             else np.nan_to_num(np.array([jensenshannon(p, x, base=2) for x in draws])))
        assert radius == pytest.approx(np.quantile(d, 0.95))
    # seeded: the same key gives the same radius; more respondents shrink it
    assert cal.sampling_region(p, 30, key="x") == cal.sampling_region(p, 30, key="x")
    assert cal.sampling_region(p, 3000, key="x") < cal.sampling_region(p, 30, key="x")
    with pytest.raises(ValueError, match="n_valid"):
        cal.sampling_region(p, 0)
    with pytest.raises(ValueError, match="distance"):
        cal.sampling_region(p, 30, distance="kl")


def test_inside_sampling_region_per_cell():
    obs = '{"1": 0.5, "2": 0.3, "3": 0.2}'
    df = pd.DataFrame({
        "sample_id": ["near", "far", "blank"],
        "distribution": [obs, obs, obs],
        "n_valid": [30, 30, 30],
        "probs": ['{"1": 0.52, "2": 0.28, "3": 0.2}', '{"1": 0.0, "2": 0.0, "3": 1.0}', ""],
    })
    got = cal.inside_sampling_region(df, n_boot=300, seed=1)
    assert got["sample_id"].tolist() == ["near", "far"]
    assert got["distance"].tolist() == pytest.approx([0.02, 0.8])
    assert got["inside"].tolist() == [True, False]
    for _, row in got.iterrows():
        assert row["radius"] == pytest.approx(cal.sampling_region([0.5, 0.3, 0.2], 30, n_boot=300, seed=1,
                                                                  key=row["sample_id"]))
    with pytest.raises(ValueError, match="n_valid"):
        cal.inside_sampling_region(df.drop(columns="n_valid"))


def test_region_cache_reuses_radii_and_changes_nothing():
    obs = '{"1": 0.5, "2": 0.3, "3": 0.2}'
    df = pd.DataFrame({"sample_id": ["a", "b"], "distribution": [obs, obs], "n_valid": [30, 60],
                       "probs": ['{"1": 0.4, "2": 0.4, "3": 0.2}', '{"1": 0.6, "2": 0.2, "3": 0.2}']})
    cache: dict = {}
    first = cal.inside_sampling_region(df, n_boot=100, cache=cache)
    assert len(cache) == 2
    cache[next(iter(cache))] = 99.0  # a planted radius is read back, not recomputed
    again = cal.inside_sampling_region(df, n_boot=100, cache=cache)
    assert again["radius"].iloc[0] == 99.0 and again["radius"].iloc[1] == first["radius"].iloc[1]
    plain = cal.inside_sampling_region(df, n_boot=100)
    assert plain["radius"].tolist() == first["radius"].tolist()
