"""Chapter 07's tables, sentences and empty-safe display helpers (sgvalues.report.fairness).

Every expected value is computed here another way (by hand, with pandas group-bys or the stage
functions of sgvalues.fairness), never copied from a run.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from factories import make_predictions

from sgvalues import fairness, metrics
from sgvalues.report import fairness as page


def _scored_two_states():
    p = make_predictions(4, n_q=6, subgroups=("sex:Male", "sex:Female", "age_group:16-24", "age_group:65+"))
    p["stratum"] = p["subgroup"].str.split(":").str[0]
    p["levels"] = [json.dumps({s.split(":")[0]: s.split(":")[1]}) for s in p["subgroup"]]
    sft = p.assign(prediction=p["target"].where(np.arange(len(p)) % 2 == 0, p["prediction"]))
    both = pd.concat([p.assign(tag="base"), sft.assign(tag="sft")], ignore_index=True)
    both = both.assign(run="r", label="M", split="ood")
    return metrics.score_samples(both)


def test_gap_table_matches_levels_by_hand():
    scored = _scored_two_states()
    levels = fairness.level_scores(scored)
    gaps = fairness.attribute_gaps(levels)
    t = page.gap_table(gaps, "accuracy").set_index("attribute")
    for tag in ("base", "sft"):
        for attr in ("sex", "age_group"):
            acc = scored[(scored["tag"] == tag) & (scored["stratum"] == attr)].groupby("subgroup")["correct"].mean()
            assert t.loc[attr, tag] == pytest.approx(acc.max() - acc.min())
    assert (t["sft − base"] == t["sft"] - t["base"]).all()
    assert {"best (sft)", "worst (sft)"} <= set(t.columns)
    assert len(t.columns) <= 6  # fits the text column


def test_headline_table_matches_group_by():
    scored = _scored_two_states()
    fair = fairness.fairness_table(fairness.subgroup_scores(scored))
    t = page.headline_table(fair).set_index("state")
    for tag in ("base", "sft"):
        per = scored[scored["tag"] == tag].groupby("subgroup")["correct"].mean()
        assert t.loc[tag, "accuracy"] == pytest.approx(per.mean())
        assert t.loc[tag, "acc NR"] == pytest.approx((per.max() - per.min()) / per.max())
        assert t.loc[tag, "acc CV"] == pytest.approx(per.std(ddof=0) / per.mean())


def test_interval_sentence_counts_by_hand():
    b = pd.DataFrame({"tag": ["base", "sft", "base", "sft - base"],
                      "statistic": ["accuracy_norm_range", "accuracy_norm_range", "nmae_norm_range", "nmae_norm_range"],
                      "estimate": [0.1, 0.3, 0.5, 0.0], "lo": [0.2, 0.2, 0.1, 0.1], "hi": [0.4, 0.4, 0.4, 0.2],
                      "bias": [0.05, 0.01, 0.03, 9.0]})
    s = page.interval_sentence(b)
    assert s.startswith("Of 3 Norm. Range estimates, 1 lie(s) below its bootstrap interval, 1 inside it and 1 above it")
    assert "+0.030" in s  # mean of 0.05, 0.01, 0.03: the change row is left out


def test_permutation_sentence_says_significance():
    t = pd.DataFrame({"label": ["M", "M"], "split": ["ood", "train"], "metric": "accuracy", "base": [0.2, 0.5],
                      "sft": [0.6, 0.5], "change": [0.4, 0.0], "p_value": [0.004, 1.0], "n": [1200, 40]})
    s = page.permutation_sentence(t).splitlines()[1:]
    assert "1,200 paired samples" in s[0] and "significant at 0.05" in s[0] and "not" not in s[0]
    assert "not significant" in s[1]


def test_permutation_sentence_reads_significance_from_the_holm_p():
    # raw p 0.03 and 0.04 in a family of 2: Holm 0.06 and 0.06 -> neither significant after adjustment
    t = pd.DataFrame({"label": "M", "split": ["ood", "train"], "metric": "accuracy", "base": 0.2, "sft": 0.4,
                      "change": 0.2, "p_value": [0.03, 0.04], "n": 60, "n_questions": 9, "method": "exact"})
    t["p_holm"] = fairness.holm(t["p_value"])
    text = page.permutation_sentence(t)
    lines = text.splitlines()
    assert "Holm-adjusted over the 2 tests" in lines[0]
    # with 9 questions the smallest exact p is 2 / 2^9 = 0.0039
    assert "p = 0.030 (exact; the smallest p 9 questions allow is 0.004), Holm-adjusted p = 0.060: not significant" in lines[1]
    assert "in 9 questions" in lines[2] and "Holm-adjusted p = 0.060: not significant" in lines[2]


def test_cluster_sentence_flags_fewer_than_ten_questions():
    b = pd.DataFrame({"label": "M", "tag": ["zeroshot", "base", "sft"], "n_questions": [12, 9, 9]})
    s = page.cluster_sentence(b)
    assert "zeroshot 12, base 9, sft 9" in s and "(M: base, sft)" in s and "unreliable" in s
    assert "unreliable" not in page.cluster_sentence(b.assign(n_questions=10))


def test_bootstrap_table_is_long_and_formatted():
    b = pd.DataFrame({"label": "M", "tag": ["base", "sft"], "statistic": ["accuracy_norm_range"] * 2,
                      "estimate": [0.25, 0.2], "lo": [0.1, 0.05], "hi": [0.5, 0.45], "bias": [0.1, 0.12]})
    t = page.bootstrap_table(b)
    assert list(t.columns) == ["model", "statistic", "state", "estimate", "interval", "bias"]
    assert t["interval"].tolist() == ["[0.100, 0.500]", "[0.050, 0.450]"]
    assert set(t["statistic"]) == {"acc NR"}


def _capture_display(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    return shown


def test_fairness_helpers_without_predictions_say_so_and_draw_nothing(monkeypatch, tmp_path):
    shown = _capture_display(monkeypatch)
    empty = page.FairnessInputs(predictions=pd.DataFrame(), scored=pd.DataFrame(), root=tmp_path, synthetic_note="")
    t = page.fairness_tables(empty, tmp_path / "r")
    assert all(getattr(t, f).empty for f in ("subgroups", "fair", "levels", "gaps", "ablation", "boot", "tests"))
    for show in (page.show_headline, page.show_stratum_ranges, page.show_gaps, page.show_favoured,
                 page.show_permutation_tests):
        show(t)
    page.show_inventory(empty)
    assert page.write_fairness_tables(t, tmp_path / "fairness") == [] and not (tmp_path / "fairness").exists()
    texts = [getattr(o, "data", "") for o in shown]
    assert len(texts) == 7 and all("No predictions yet" in x or "no paired test" in x for x in texts), texts


def test_fairness_tables_match_the_stage_functions(monkeypatch, tmp_path):
    _capture_display(monkeypatch)
    scored = _scored_two_states()
    inputs = page.FairnessInputs(predictions=scored.drop(columns=["correct", "nmae"]), scored=scored,
                                     root=tmp_path, synthetic_note="")
    t = page.fairness_tables(inputs, tmp_path / "r", n_boot=20, seed=3)
    pd.testing.assert_frame_equal(t.fair, fairness.fairness_table(fairness.subgroup_scores(scored)))
    pd.testing.assert_frame_equal(t.gaps, fairness.attribute_gaps(fairness.level_scores(scored, pool_splits=True)))
    pd.testing.assert_frame_equal(t.boot, fairness.bootstrap_fairness(scored, n_boot=20, seed=3))
    assert t.reference.empty  # no baselines for a run folder without data
    written = page.write_fairness_tables(t, tmp_path / "fairness")
    assert sorted(p.name for p in written) == sorted(p.name for p in (tmp_path / "fairness").glob("*.csv"))
    back = pd.read_csv(tmp_path / "fairness" / "fairness_table.csv")
    assert back["mean"].to_numpy() == pytest.approx(t.fair["mean"].to_numpy())
