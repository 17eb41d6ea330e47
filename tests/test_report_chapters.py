"""Chapters 04, 05 and 07's report helpers (sgvalues.report.chapters, sgvalues.report.paper).

Every expected value is computed here another way (by hand, with numpy or pandas group-bys),
never copied from a run.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sgvalues import fairness, metrics
from sgvalues.published import PUBLISHED_LABEL, paper_ablation, paper_results
from sgvalues.report import chapters, paper


def _predictions(seed: int = 0, n_q: int = 5, subgroups=("s:a", "s:b", "s:c")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_q):
        k = int(rng.integers(2, 6))
        for sg in subgroups:
            target = int(rng.integers(1, k + 1))
            pred = int(rng.integers(1, k + 1))
            probs = rng.dirichlet(np.ones(k))
            rows.append({"sample_id": f"Q{q}_{sg}", "question_id": f"Q{q}", "subgroup": sg, "stratum": "s",
                         "target": target, "prediction": pred, "scale_min": 1, "scale_max": k, "status": "ok",
                         "probs": json.dumps({str(i + 1): float(p) for i, p in enumerate(probs)})})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- paths


def test_relative_keeps_no_machine_path(tmp_path):
    run = tmp_path / "runs" / "default"
    assert chapters.relative(run / "predictions" / "base_ood.csv", run) == "predictions/base_ood.csv"
    assert chapters.relative(tmp_path / "other" / "x.csv", run) == "x.csv"
    assert chapters.relative("predictions/a.csv", run) == "predictions/a.csv"
    assert str(tmp_path) not in chapters.relative(tmp_path / "elsewhere" / "deep" / "y.csv", run)


# ----------------------------------------------------------------------------- chapter 05


def test_predictions_preview_shows_few_columns_and_own_probability():
    p = _predictions(2)
    shown = chapters.predictions_preview(p, n=3).data
    assert list(shown.columns) == ["subgroup", "question_id", "target", "prediction", "status", "p(pred)"]
    assert len(shown) == 3
    for i in range(3):
        probs = json.loads(p["probs"].iloc[i])
        assert shown["p(pred)"].iloc[i] == pytest.approx(probs[str(p["prediction"].iloc[i])])


def test_state_row_and_size_sentence():
    p = _predictions(3)
    row = chapters.state_row(p, "zeroshot", "OOD split").iloc[0]
    assert row["accuracy"] == pytest.approx((p["prediction"] == p["target"]).mean())
    assert row["n"] == len(p)
    s = chapters.size_sentence(p)
    assert f"{len(p)} samples ({p.question_id.nunique()} questions, 3 subgroups)" in s
    assert PUBLISHED_LABEL in s


# ----------------------------------------------------------------------------- chapter 04


def _before_after(base_acc, sft_acc, n):
    return pd.DataFrame({"split": "ood", "stratum": "all", "tag": ["base", "sft"], "accuracy": [base_acc, sft_acc],
                         "nmae": [0.3, 0.2], "n": n})


@pytest.mark.parametrize("trained,unseen,which,effect", [
    ((0.2, 0.7), (0.1, 0.15), "did better on the trained questions", "accuracy rose"),
    ((0.2, 0.2), (0.1, 0.3), "as well or better on the unseen", "accuracy rose"),
    ((0.2, 0.6), (0.3, 0.1), "did better on the trained questions", "lowered accuracy"),
])
def test_trained_vs_unseen_says_what_the_numbers_say(trained, unseen, which, effect):
    text = chapters.trained_vs_unseen(_before_after(*trained, 80), _before_after(*unseen, 40), 8, 4)
    assert which in text and effect in text
    dt = trained[1] - trained[0]
    assert f"({dt:+.3f})" in text or (dt == 0 and "(0.000)" in text)
    assert "8 trained questions (80 samples)" in text and "4 questions" in text


def test_change_sentence_sign_and_format():
    t = pd.DataFrame({"tag": ["base", "sft"], "accuracy": [0.4567, 0.3]})
    assert chapters.change_sentence(t) == "accuracy 0.457 → 0.300 (-0.157)"


def test_training_summary_formats_every_field():
    s = {"n_samples": 12345, "n_steps": 16, "final_loss": 0.98765, "tokens": 1000000, "train_seconds": 3.14159,
         "tokens_per_s": 99.95, "device": "cpu", "dtype": "float32", "trainable_parameters": 230400,
         "resumed_from": "/abs/path/runs/x/checkpoints/step-00000010"}
    t = chapters.training_summary(s).set_index("setting")["value"]
    assert t["samples trained on"] == "12,345"
    assert t["final loss"] == "0.988"
    assert t["answer tokens"] == "1,000,000"
    assert t["resumed from checkpoint"] == "step-00000010"  # no machine path
    assert "nan" not in " ".join(t).lower()


def test_before_after_legend_is_off_the_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = pd.DataFrame({"split": ["ood"] * 4, "stratum": ["a", "a", "b", "b"], "tag": ["base", "sft"] * 2,
                      "accuracy": [0.2, 0.9, 0.3, 0.8], "nmae": [0.4, 0.1, 0.3, 0.2]})
    fig = chapters.plot_before_after(t)
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert len(fig.legends) == 1
    fig.canvas.draw()
    leg = fig.legends[0].get_window_extent()
    for ax in fig.axes:
        assert not leg.overlaps(ax.get_window_extent())
    plt.close(fig)


# ----------------------------------------------------------------------------- chapter 07


def _scored_two_states():
    p = _predictions(4, n_q=6, subgroups=("sex:Male", "sex:Female", "age_group:16-24", "age_group:65+"))
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
    t = chapters.gap_table(gaps, "accuracy").set_index("attribute")
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
    t = chapters.headline_table(fair).set_index("state")
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
    s = chapters.interval_sentence(b)
    assert s.startswith("Of 3 Norm. Range estimates, 1 lie(s) below its bootstrap interval, 1 inside it and 1 above it")
    assert "+0.030" in s  # mean of 0.05, 0.01, 0.03: the change row is left out


def test_permutation_sentence_says_significance():
    t = pd.DataFrame({"label": ["M", "M"], "split": ["ood", "train"], "metric": "accuracy", "base": [0.2, 0.5],
                      "sft": [0.6, 0.5], "change": [0.4, 0.0], "p_value": [0.004, 1.0], "n": [1200, 40]})
    s = chapters.permutation_sentence(t).splitlines()
    assert "1,200 paired samples" in s[0] and "significant at 0.05" in s[0] and "not" not in s[0]
    assert "not significant" in s[1]


def test_bootstrap_table_is_long_and_formatted():
    b = pd.DataFrame({"label": "M", "tag": ["base", "sft"], "statistic": ["accuracy_norm_range"] * 2,
                      "estimate": [0.25, 0.2], "lo": [0.1, 0.05], "hi": [0.5, 0.45], "bias": [0.1, 0.12]})
    t = chapters.bootstrap_table(b)
    assert list(t.columns) == ["model", "statistic", "state", "estimate", "interval", "bias"]
    assert t["interval"].tolist() == ["[0.100, 0.500]", "[0.050, 0.450]"]
    assert set(t["statistic"]) == {"acc NR"}


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
    p = _predictions(5)
    t = paper.spread_beside_paper(p, None, "ours").set_index("source")
    per = p.assign(c=(p["prediction"] == p["target"]).astype(float)).groupby("subgroup")["c"].mean()
    assert t.loc["ours", "Acc Norm. Range"] == pytest.approx((per.max() - per.min()) / per.max())
    assert t.loc["ours", "Acc CV"] == pytest.approx(per.std(ddof=0) / per.mean())
    avg = paper_ablation()
    avg = avg[avg["params_name"].isna()].set_index(["metric", "statistic"])
    assert t.loc[f"{PUBLISHED_LABEL}: Avg", "NMAE CV"] == pytest.approx(avg.loc[("nmae", "cv"), "base"])


def test_legend_below_moves_the_legend_off_the_axes_and_pads_limits():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="a")
    ax.scatter([1], [1], label="b")
    ax.set_xlim(0, 1)
    ax.legend()
    chapters.legend_below(fig, pad=0.2)
    assert ax.get_legend() is None and len(fig.legends) == 1
    assert ax.get_xlim() == pytest.approx((-0.1, 1.1))
    fig.canvas.draw()
    assert not fig.legends[0].get_window_extent().overlaps(ax.get_window_extent())
    plt.close(fig)


def _capture_display(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    return shown


def test_fairness_helpers_without_predictions_say_so_and_draw_nothing(monkeypatch, tmp_path):
    shown = _capture_display(monkeypatch)
    empty = chapters.FairnessInputs(predictions=pd.DataFrame(), scored=pd.DataFrame(), root=tmp_path, synthetic_note="")
    t = chapters.fairness_tables(empty, tmp_path / "r")
    assert all(getattr(t, f).empty for f in ("subgroups", "fair", "levels", "gaps", "ablation", "boot", "tests"))
    for show in (chapters.show_headline, chapters.show_stratum_ranges, chapters.show_gaps, chapters.show_favoured,
                 chapters.show_permutation_tests):
        show(t)
    chapters.show_inventory(empty)
    assert chapters.write_fairness_tables(t, tmp_path / "fairness") == [] and not (tmp_path / "fairness").exists()
    texts = [getattr(o, "data", "") for o in shown]
    assert len(texts) == 7 and all("No predictions yet" in x or "no paired test" in x for x in texts), texts


def test_fairness_tables_match_the_stage_functions(monkeypatch, tmp_path):
    _capture_display(monkeypatch)
    scored = _scored_two_states()
    inputs = chapters.FairnessInputs(predictions=scored.drop(columns=["correct", "nmae"]), scored=scored,
                                     root=tmp_path, synthetic_note="")
    t = chapters.fairness_tables(inputs, tmp_path / "r", n_boot=20, seed=3)
    pd.testing.assert_frame_equal(t.fair, fairness.fairness_table(fairness.subgroup_scores(scored)))
    pd.testing.assert_frame_equal(t.gaps, fairness.attribute_gaps(fairness.level_scores(scored, pool_splits=True)))
    pd.testing.assert_frame_equal(t.boot, fairness.bootstrap_fairness(scored, n_boot=20, seed=3))
    assert t.reference.empty  # no baselines for a run folder without data
    written = chapters.write_fairness_tables(t, tmp_path / "fairness")
    assert sorted(p.name for p in written) == sorted(p.name for p in (tmp_path / "fairness").glob("*.csv"))
    back = pd.read_csv(tmp_path / "fairness" / "fairness_table.csv")
    assert back["mean"].to_numpy() == pytest.approx(t.fair["mean"].to_numpy())
