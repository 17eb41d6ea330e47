"""Fairness beside its mechanics: absolute range and SD against numpy, and the computed paradox sentence."""

import numpy as np
import pandas as pd
import pytest

from sgvalues import fairness as fx
from sgvalues.report.mechanics import BLIND, mechanics_rows, mechanics_table, paradox_sentence


@pytest.mark.parametrize("seed", range(5))
def test_range_and_sd_against_numpy(seed):
    rng = np.random.default_rng(seed)
    v = rng.random(int(rng.integers(2, 30)))
    with_nan = np.append(v, np.nan)
    assert fx.absolute_range(with_nan) == pytest.approx(np.ptp(v))
    assert fx.standard_deviation(with_nan) == pytest.approx(np.std(v, ddof=0))
    # the ratios are these numerators over max and mean
    assert fx.normalized_range(v) == pytest.approx(np.ptp(v) / v.max())
    assert fx.coefficient_of_variation(v) == pytest.approx(np.std(v) / v.mean())
    assert fx.absolute_range([0.3]) == fx.standard_deviation([0.3]) == 0.0
    assert np.isnan(fx.absolute_range([])) and np.isnan(fx.standard_deviation([np.nan]))


def test_fairness_table_carries_the_mechanics():
    rng = np.random.default_rng(7)
    sub = pd.DataFrame({"run": "r", "label": "M", "tag": "base", "split": "ood", "stratum": ["x"] * 4 + ["y"] * 3,
                        "subgroup": [f"g{i}" for i in range(7)], "accuracy": rng.random(7), "nmae": rng.random(7)})
    fair = fx.fairness_table(sub).set_index(["stratum", "metric"])
    for stratum, mask in (("all", slice(None)), ("x", slice(0, 4)), ("y", slice(4, 7))):
        for metric in ("accuracy", "nmae"):
            v = sub[metric].to_numpy()[mask]
            row = fair.loc[(stratum, metric)]
            assert (row["min"], row["max"]) == (pytest.approx(v.min()), pytest.approx(v.max()))
            assert row["range"] == pytest.approx(v.max() - v.min())
            assert row["sd"] == pytest.approx(np.sqrt(((v - v.mean()) ** 2).mean()))
            assert row["norm_range"] == pytest.approx(row["range"] / row["max"])
            assert row["cv"] == pytest.approx(row["sd"] / row["mean"])


def _rows(base, sft, blind=None, n=8):
    """Rows for the sentence: each predictor as (norm_range, range, sd, min, max)."""
    items = [("base", base), ("sft", sft)] + ([(BLIND, blind)] if blind else [])
    return pd.DataFrame([{"predictor": p, "metric": "nmae", "norm_range": v[0], "range": v[1], "sd": v[2],
                          "min": v[3], "max": v[4], "n_subgroups": n} for p, v in items])


def test_sentence_ratio_up_spread_down_blind_same_direction():
    text = paradox_sentence(_rows((0.6, 0.389, 0.086, 0.259, 0.648), (0.857, 0.222, 0.053, 0.037, 0.259),
                                  (1.0, 0.4, 0.1, 0.0, 0.4)))
    assert "Norm. Range 0.600 → 0.857 (rose)" in text
    assert "absolute range (max − min) 0.389 → 0.222 (shrank)" in text and "SD 0.086 → 0.053 (shrank)" in text
    assert "Norm. Range rose while the spread itself shrank" in text and "fell (0.648 → 0.259" in text
    assert "Norm. Range 1.000 on the same samples" in text and "raise Norm. Range by +0.400" in text
    assert "the same direction as sft's change (+0.257)" in text and "needs no use of the persona" in text


def test_sentence_both_grow_blind_opposite():
    text = paradox_sentence(_rows((0.4, 0.2, 0.05, 0.3, 0.5), (0.6, 0.3, 0.08, 0.2, 0.5), (0.2, 0.1, 0.03, 0.4, 0.5)))
    assert "(rose)" in text and "(grew)" in text
    assert "move the same way" in text and "grew further apart in absolute terms too" in text
    assert "lower Norm. Range by -0.200" in text and "the opposite direction to sft's change" in text
    assert "does not explain it" in text


def test_sentence_ratio_down_spread_up_and_missing_parts():
    text = paradox_sentence(_rows((0.5, 0.2, 0.05, 0.2, 0.4), (0.3, 0.3, 0.06, 0.7, 1.0)))
    assert "Norm. Range fell while the spread itself grew" in text and "rose (0.400 → 1.000" in text
    assert text.endswith("No persona-blind reference on these samples.")
    # unchanged to three decimals reads as unchanged, and no direction is claimed
    flat = paradox_sentence(_rows((0.5, 0.2, 0.05, 0.2, 0.4), (0.5001, 0.2, 0.05, 0.2, 0.4), (0.9, 0.4, 0.1, 0, 0.4)))
    assert "(unchanged)" in flat and "move the same way" not in flat and "while sft leaves it unchanged" in flat
    assert paradox_sentence(_rows((0.5, 0.2, 0.05, 0.2, 0.4), (0.3, 0.3, 0.06, 0.7, 1.0)).iloc[:1]) == ""
    acc = _rows((0.5, 0.2, 0.05, 0.2, 0.4), (0.3, 0.3, 0.06, 0.7, 1.0)).assign(metric="accuracy")
    assert paradox_sentence(acc, metric="accuracy").startswith("accuracy over the 8 subgroups")


def test_mechanics_rows_pair_states_with_baselines_on_their_samples():
    def fair(label, tag, nr):
        return pd.DataFrame({"run": "r", "label": label, "tag": tag, "split": "ood", "stratum": "all",
                             "metric": ["accuracy", "nmae"], "mean": 0.5, "min": 0.1, "max": 0.9, "range": 0.8,
                             "sd": 0.2, "norm_range": nr, "cv": 0.4, "n_subgroups": 5})
    model = pd.concat([fair("M", "sft", 0.3), fair("M", "base", 0.2), fair("N", "base", 0.9).assign(run="other")])
    ref = pd.concat([fair(BLIND, "base", 0.7), fair(BLIND, "sft", 0.7)])
    rows = mechanics_rows(model, ref, "r")
    assert rows[rows.metric == "nmae"][["predictor", "samples"]].values.tolist() == [
        ["base", "base"], ["sft", "sft"], [BLIND, "base, sft"]]   # one baseline row for identical samples
    differ = mechanics_rows(model, pd.concat([fair(BLIND, "base", 0.7), fair(BLIND, "sft", 0.6)]), "r")
    assert differ[differ.metric == "nmae"][["predictor", "samples"]].values.tolist() == [
        ["base", "base"], [BLIND, "base"], ["sft", "sft"], [BLIND, "sft"]]
    table = mechanics_table(rows, "accuracy")
    assert table.columns.tolist() == ["predictor", "on", "mean", "best", "worst", "range", "SD", "NR", "CV"]
    assert (table["best"] == 0.9).all() and (mechanics_table(rows)["best"] == 0.1).all()
    assert "(rose)" in paradox_sentence(rows)
    with pytest.raises(ValueError, match="range and sd"):
        mechanics_rows(model.drop(columns="sd"), None, "r")
