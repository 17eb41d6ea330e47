"""Chapter 04's sentences and tables (sgvalues.report.training).

Every expected value is computed here another way (by hand), never copied from a run.
"""

from __future__ import annotations

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
    assert "nan" not in " ".join(t).lower()
