"""Chapter 04's sentences and tables (sgvalues.report.training).

Every expected value is computed here another way (by hand), never copied from a run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sgvalues.report import training


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
    text = training.trained_vs_unseen(_before_after(*trained, 80), _before_after(*unseen, 40), 8, 4)
    assert which in text and effect in text
    dt = trained[1] - trained[0]
    assert f"({dt:+.3f})" in text or (dt == 0 and "(0.000)" in text)
    assert "8 trained questions (80 samples)" in text and "4 questions" in text


def test_change_sentence_sign_and_format():
    t = pd.DataFrame({"tag": ["base", "sft"], "accuracy": [0.4567, 0.3]})
    assert training.change_sentence(t) == "accuracy 0.457 → 0.300 (-0.157)"


def test_training_summary_formats_every_field():
    s = {"n_samples": 12345, "n_steps": 16, "final_loss": 0.98765, "tokens": 1000000, "train_seconds": 3.14159,
         "tokens_per_s": 99.95, "device": "cpu", "dtype": "float32", "trainable_parameters": 230400,
         "resumed_from": "/abs/path/runs/x/checkpoints/step-00000010"}
    t = training.training_summary(s).set_index("setting")["value"]
    assert t["samples trained on"] == "12,345"
    assert t["final loss"] == "0.988"
    assert t["answer tokens"] == "1,000,000"
    assert t["resumed from checkpoint"] == "step-00000010"  # no machine path
    # a time with its unit, so a whole number of seconds never reads as a count printed as a float
    assert t["training time"] == "3.1 s" and t["throughput"] == "100.0 tokens/s"
    assert "nan" not in " ".join(t).lower()


def test_seed_table_and_sentence_report_the_spread_computed_by_hand():
    t = pd.DataFrame({"seed": [0, 1, 2, 0, 1, 2], "split": ["ood"] * 3 + ["train"] * 3,
                      "sft_accuracy": [0.80, 0.78, 0.81, 0.9, 0.95, 0.92],
                      "accuracy_change": [0.50, 0.48, 0.51, 0.6, 0.65, 0.62],
                      "sft_nmae": [0.1, 0.12, 0.08, 0.05, 0.04, 0.03],
                      "nmae_change": [-0.3, -0.28, -0.32, -0.3, -0.31, -0.32]})
    table = training.seed_table(t).set_index(["split", "score"])
    assert table.loc[("ood", "accuracy change"), "mean"] == f"{np.mean([0.50, 0.48, 0.51]):+.3f}"
    assert table.loc[("ood", "accuracy change"), "lowest–highest"] == "+0.480 to +0.510"
    assert table.loc[("train", "NMAE after SFT"), "mean"] == f"{np.mean([0.05, 0.04, 0.03]):.3f}"
    assert table.loc[("train", "NMAE change"), "lowest–highest"] == "-0.320 to -0.300"
    # OOD accuracy after SFT spans 0.78-0.81: a range of 0.03, within 0.05 but not within 0.02
    assert "a range of 0.030, within the band of 0.050 we accept, so **the seeds agree**" in \
        training.seed_sentence(t, 0.05)
    assert "**the seeds do not agree**" in training.seed_sentence(t, 0.02)
    assert "train accuracy after fine-tuning runs from 0.900 to 0.950" in training.seed_sentence(t, 0.05, "train")
    assert "no run-to-run spread" in training.seed_sentence(t[t["seed"] == 0], 0.05)


# --- the headline: seed mean and range beside population_mode (issue 22) -------------------------
def test_headline_sentence_by_hand():
    s = training.headline_sentence([0.760, 0.683, 0.743], 0.70)
    # mean (0.760 + 0.683 + 0.743) / 3 = 0.7287, range 0.683 to 0.760
    assert "averages 0.729 over 3 training seeds (0.683 to 0.760)" in s and "beside 0.700" in s
    assert "the seed mean is above it, but the seeds fall on both sides of it" in s
    assert "every seed is below it" in training.headline_sentence([0.5, 0.6], 0.7)
    assert "not available" in training.headline_sentence([0.5, 0.6], float("nan"))


def _contract(df):
    from sgvalues.evaluate import PREDICTION_COLUMNS

    for col in PREDICTION_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    return df[PREDICTION_COLUMNS]


def test_run_headline_reads_seeds_and_population_mode(tmp_path):
    from sgvalues.train.seeds import SEED_COLUMNS

    run = tmp_path / "r"
    (run / "predictions").mkdir(parents=True)
    ids = [f"Q{q}_s:{g}" for q in range(4) for g in "ab"]
    base = pd.DataFrame({"sample_id": ids, "split": "ood", "question_id": [i[:2] for i in ids], "subgroup": "s:a",
                         "stratum": "s", "levels": "{}", "target": 1, "scale_min": 1, "scale_max": 4, "status": "ok"})
    _contract(base.assign(prediction=[1, 1, 1, 1, 1, 2, 2, 2])).to_csv(run / "predictions" / "sft_ood.csv", index=False)
    # population_mode right on 3 of the 8 samples, plus a sample of another state it must ignore
    pop = pd.concat([base.assign(prediction=[1, 1, 1, 2, 2, 2, 2, 2]),
                     base.iloc[:1].assign(sample_id="Q9_s:a", prediction=1)])
    _contract(pop).to_csv(run / "predictions" / "population_mode_ood.csv", index=False)
    no_seeds = training.run_headline(run)
    assert "is 0.625 (one training seed" in no_seeds and "beside 0.375" in no_seeds and "the adapter is above it" in no_seeds
    seeds = pd.DataFrame({"seed": [0, 1], "split": "ood", "tag": ["sft", "sft-seed1"], "n": 8, "base_accuracy": 0.1,
                          "sft_accuracy": [0.625, 0.25], "accuracy_change": 0.0, "base_nmae": 0.0, "sft_nmae": 0.0,
                          "nmae_change": 0.0})[list(SEED_COLUMNS)]
    seeds.to_csv(run / "seeds.csv", index=False)
    text = training.run_headline(run)
    assert "averages 0.438 over 2 training seeds (0.250 to 0.625)" in text and "beside 0.375" in text
    assert "seeds fall on both sides" in text
