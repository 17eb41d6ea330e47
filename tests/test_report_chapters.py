"""What every chapter shares (sgvalues.report.chapters) and the paper beside ours (sgvalues.report.paper).

Every expected value is computed here another way (by hand, with numpy or pandas group-bys),
never copied from a run. Chapter 04's sentences are tested in test_report_training.py, chapter
07's in test_report_fairness.py, the figures in test_plots.py.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from factories import make_predictions

from sgvalues.published import PUBLISHED_LABEL, paper_ablation, paper_results
from sgvalues.report import chapters, paper


# ----------------------------------------------------------------------------- paths


def test_relative_keeps_no_machine_path(tmp_path):
    run = tmp_path / "runs" / "default"
    assert chapters.relative(run / "predictions" / "base_ood.csv", run) == "predictions/base_ood.csv"
    assert chapters.relative(tmp_path / "other" / "x.csv", run) == "x.csv"
    assert chapters.relative("predictions/a.csv", run) == "predictions/a.csv"
    assert str(tmp_path) not in chapters.relative(tmp_path / "elsewhere" / "deep" / "y.csv", run)


# ----------------------------------------------------------------------------- chapter 05


def test_predictions_preview_shows_few_columns_and_own_probability():
    p = make_predictions(2)
    shown = chapters.predictions_preview(p, n=3).data
    assert list(shown.columns) == ["subgroup", "question_id", "target", "prediction", "status", "p(pred)"]
    assert len(shown) == 3
    for i in range(3):
        probs = json.loads(p["probs"].iloc[i])
        assert shown["p(pred)"].iloc[i] == pytest.approx(probs[str(p["prediction"].iloc[i])])


def test_state_row_and_size_sentence():
    p = make_predictions(3)
    row = chapters.state_row(p, "zeroshot", "OOD split").iloc[0]
    assert row["accuracy"] == pytest.approx((p["prediction"] == p["target"]).mean())
    assert row["n"] == len(p)
    s = chapters.size_sentence(p)
    assert f"{len(p)} samples ({p.question_id.nunique()} questions, 3 subgroups)" in s
    assert PUBLISHED_LABEL in s


# ----------------------------------------------------------------------------- the paper beside ours


def test_results_beside_paper_uses_the_same_model_or_the_average():
    ours = pd.DataFrame({"state": ["base", "sft"], "accuracy": [0.3, 0.6], "nmae": [0.3, 0.2], "n": [100, 100]})
    t = paper.results_beside_paper(ours, "sailor2-8b", "ours")
    pub = paper_results("sailor2-8b")
    got = t[t["source"] == f"{PUBLISHED_LABEL}: Sailor2-8B"].set_index("state")
    for r in pub[pub["metric"].isin(["accuracy", "nmae"])].itertuples():
        assert got.loc[r.state, r.metric] == pytest.approx(r.value)
    assert t["source"].iloc[0] == "ours" and t["n"].iloc[0] == 100
    # a model the paper lacks: its open-source average, and the sentence says so
    t2 = paper.results_beside_paper(ours, "smollm2-135m", "ours")
    assert set(t2["source"]) == {"ours", f"{PUBLISHED_LABEL}: {paper.AVERAGE}"}
    assert "did not evaluate" in paper.paper_sentence("smollm2-135m", "SmolLM2")
    assert "Sailor2-8B" in paper.paper_sentence("sailor2-8b", "Sailor2")


def test_ablation_beside_paper_rows_and_change():
    ours = pd.DataFrame({"source": "run A", "statistic": ["Acc Norm. Range", "NMAE CV"], "base": [0.3, 0.1],
                         "sft": [0.2, 0.15]})
    t = paper.ablation_beside_paper(ours, "qwen2.5-7b", "ignored")
    assert t["source"].iloc[0] == "run A"
    assert np.allclose(t["sft − base"], t["sft"] - t["base"])
    q = paper_ablation("qwen2.5-7b").set_index(["metric", "statistic"])
    row = t[(t["source"] == f"{PUBLISHED_LABEL}: Qwen2.5-7B") & (t["statistic"] == "Acc Norm. Range")].iloc[0]
    assert row["base"] == pytest.approx(q.loc[("accuracy", "norm_range"), "base"])
    assert (t["source"] == f"{PUBLISHED_LABEL}: Avg").sum() == 4


def test_spread_beside_paper_by_hand():
    p = make_predictions(5)
    t = paper.spread_beside_paper(p, None, "ours").set_index("source")
    per = p.assign(c=(p["prediction"] == p["target"]).astype(float)).groupby("subgroup")["c"].mean()
    assert t.loc["ours", "Acc Norm. Range"] == pytest.approx((per.max() - per.min()) / per.max())
    assert t.loc["ours", "Acc CV"] == pytest.approx(per.std(ddof=0) / per.mean())
    avg = paper_ablation()
    avg = avg[avg["params_name"].isna()].set_index(["metric", "statistic"])
    assert t.loc[f"{PUBLISHED_LABEL}: Avg", "NMAE CV"] == pytest.approx(avg.loc[("nmae", "cv"), "base"])
