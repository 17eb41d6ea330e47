"""Chapter 08's variants: params overrides, the predictions shaped for fairness, tables by hand."""

import numpy as np
import pandas as pd
import pytest

from sgvalues import beyond
from sgvalues.evaluate import PREDICTION_COLUMNS, predictions_path
from sgvalues.params import Params, ParamsError
from sgvalues.report import beyond as page


def test_variant_params_override_training_and_validate():
    p = Params.from_dict({"name": "x", "training": {"lr": 0.01}})
    v = beyond.variant_params(p, {"reweight": "error"})
    assert (v.training.reweight, v.training.lr, v.name) == ("error", 0.01, "x")
    assert p.training.reweight == "none"  # the run's own params are untouched
    with pytest.raises(ParamsError, match="objective"):
        beyond.variant_params(p, {"objective": "mode"})
    assert beyond.variant_dir("r", "modal").as_posix() == "r"
    assert beyond.variant_dir("r", "modal + error").as_posix() == "r/variants/modal-error"
    assert beyond.variant_tag("distribution") == "variant-distribution"


def _predictions(ids, targets, preds, subgroups):
    df = pd.DataFrame({"sample_id": ids, "split": "ood", "question_id": [i.split("|")[0] for i in ids],
                       "theme": "T", "stratum": "sex", "subgroup": subgroups, "levels": "{}", "target": targets,
                       "scale_min": 1, "scale_max": 5, "prediction": preds, "status": "ok", "probs": "",
                       "raw_output": "", "model": "m", "adapter": "", "distribution": "", "targets": ""})
    return df[PREDICTION_COLUMNS]


def test_variant_predictions_and_table_match_a_hand_computation(tmp_path):
    ids = [f"Q{q}|sex:{s}" for q in range(3) for s in ("Male", "Female")]
    subgroups = [i.split("|")[1] for i in ids]
    targets = [1, 2, 3, 4, 5, 1]
    frames = {"base": [1, 1, 1, 1, 1, 1], "sft": [1, 2, 3, 4, 1, 1], "variant-distribution": [1, 2, 5, 4, 5, 2]}
    for tag, preds in frames.items():
        path = predictions_path(tmp_path, tag, "ood")
        path.parent.mkdir(parents=True, exist_ok=True)
        keep = slice(None) if tag != "variant-distribution" else slice(0, 5)  # one sample unanswered
        _predictions(ids[keep], targets[keep], preds[keep], subgroups[keep]).to_csv(path, index=False)
    got = beyond.variant_predictions(tmp_path, ["modal", "distribution"], splits=("ood",))
    assert set(zip(got["run"], got["tag"])) == {("modal", "base"), ("modal", "sft"), ("distribution", "base"),
                                                ("distribution", "sft")}
    # each block rests on the samples both states answered
    assert (got[got["run"] == "distribution"].groupby("tag").size() == 5).all()
    assert (got[got["run"] == "modal"].groupby("tag").size() == 6).all()

    table = page.variant_table(got, "ood").set_index("predictor")
    t, first_base = np.array(targets), np.array(frames["base"])
    assert table.loc["base", "accuracy"] == pytest.approx(np.mean(first_base == t))
    d = np.array(frames["variant-distribution"][:5])
    assert table.loc["distribution", "accuracy"] == pytest.approx(np.mean(d == t[:5]))
    assert table.loc["distribution", "nmae"] == pytest.approx(np.mean(np.abs(d - t[:5]) / 4))
    # Norm. Range of per-subgroup accuracy, (max - min) / max, by hand: modal is right on
    # Male 2 of 3 (Q0, Q1, Q2 targets 1, 3, 5 -> 1, 3, 1) and Female 3 of 3 (2, 4, 1)
    male, female = 2 / 3, 3 / 3
    assert table.loc["modal", "acc NR"] == pytest.approx((female - male) / female)
    assert table.loc["modal", "n"] == 6
    text = page.variant_sentence(table.reset_index(), "ood")
    assert "most accurate is *modal*" in text and f"base {table.loc['base', 'accuracy']:.3f}" in text
    assert page.best_variant(table.reset_index()) == "modal"


def test_order_table_and_figure():
    effect = pd.DataFrame({"option_order": ["as_asked", "order_averaged", "reversed"], "accuracy": [0.5, 0.6, 0.2],
                           "nmae": 0.2, "jsd": 0.1, "changed": [0.0, 0.3, 0.75], "n": 20})
    table = page.order_table({"base": effect, "modal": effect.assign(changed=[0.0, 0.1, 0.25])})
    assert list(table.columns) == ["state", "option_order", "accuracy", "nmae", "jsd", "changed", "n"]
    text = page.order_sentence(table)
    assert "*base*: listing the options in reverse (codes following their options) changes 75.0 %" in text and "25.0 %" in text
    fig = page.plot_order_effect(table)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["75 % changed", "25 % changed"]
