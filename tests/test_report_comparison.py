"""The model-comparison page's pieces (sgvalues.report.comparison), checked by hand."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from sgvalues.published import PAPER_PARAMS_NAMES, paper_results
from sgvalues.report import comparison as cmp


def _table(ids, targets, preds, name=None):
    df = pd.DataFrame({"sample_id": ids, "split": "ood", "question_id": [i.split("_")[0] for i in ids],
                       "stratum": "sex", "subgroup": [i.split("_", 1)[1] for i in ids], "target": targets,
                       "scale_min": 1, "scale_max": 4, "prediction": preds, "status": "ok"})
    return df.assign(baseline=name) if name else df


def test_yardsticks_are_scored_on_the_model_states_samples_only(tmp_path):
    ids = [f"Q{q}_sex:{s}" for q in range(4) for s in ("Male", "Female")]
    targets = [1, 2, 3, 4, 1, 2, 3, 4]
    pop = _table(ids, targets, [1, 1, 3, 3, 1, 1, 3, 3], "population_mode")
    marg = _table(ids, targets, [1, 2, 3, 4, 4, 4, 4, 4], "marginal_product")
    model = _table(ids[:4], targets[:4], [2, 2, 2, 2])  # a state that answered only Q0 and Q1
    samples = [{"sample_id": i, "target": t, "subgroup": i.split("_", 1)[1], "question_id": i.split("_")[0],
                "n_valid": 40, "distribution": ({str(t): 1.0} if k % 2 == 0 else {str(t): 0.5, str(t % 4 + 1): 0.5})}
               for k, (i, t) in enumerate(zip(ids, targets))]
    ys = cmp.yardstick_scores(tmp_path, "ood", model, tables=pd.concat([pop, marg]), samples=samples)
    ys = ys.set_index("predictor")
    # by hand on the model's four samples (targets 1, 2, 3, 4): population mode predicts 1, 1, 3, 3
    assert ys.loc["population_mode", "accuracy"] == pytest.approx(2 / 4)
    assert ys.loc["marginal_product", "accuracy"] == pytest.approx(4 / 4)
    assert ys.loc["population_mode", "n"] == 4
    # noise over the model's four samples: two unanimous subgroups keep their mode always; two
    # split evenly between the target and the next code keep it when the target wins or ties
    # (ties go to the lower code, the target): 1/2 + P(tie)/2 with 40 answers
    from math import comb

    p_even = 0.5 + 0.5 * comb(40, 20) / 2 ** 40
    noise = ys.loc[cmp.NOISE, "accuracy"]
    assert noise == pytest.approx((2 * 1.0 + 2 * p_even) / 4, abs=0.05)
    assert np.isnan(ys.loc[cmp.NOISE, "nmae"])


def test_beats_sentence_says_plainly_when_population_mode_is_not_beaten():
    c = pd.DataFrame({"state": "zeroshot", "baseline": ["population_mode", "marginal_product"], "metric": "accuracy",
                      "difference": [-0.4, -0.5], "ci_low": [-0.5, -0.6], "ci_high": [-0.3, -0.4],
                      "p_value": [0.001, 0.001]})
    s = cmp.beats_sentence(c, "zeroshot")
    assert s.startswith("*zeroshot* does not beat population_mode: it falls significantly below it (-0.400")
    assert "does not beat marginal_product" in s
    c2 = c.assign(difference=[0.1, 0.02], p_value=[0.01, 0.3], ci_low=[0.05, -0.01], ci_high=[0.15, 0.05])
    s2 = cmp.beats_sentence(c2, "zeroshot")
    assert "beats population_mode by +0.100" in s2 and "significant)" in s2
    assert "beats marginal_product by +0.020" in s2 and "not significant" in s2
    assert cmp.beats_sentence(c, "sft") == "*sft*: no baseline shares its samples."


def test_published_table_lists_every_paper_model_and_ours_where_run():
    ours = pd.DataFrame({"params_name": ["qwen2.5-7b", "qwen2.5-7b", "qwen2.5-7b", "smollm2-135m"],
                         "run": ["q", "q", "q", "default"], "tag": ["zeroshot", "base", "sft", "zeroshot"],
                         "accuracy": [0.41, 0.5, 0.63, 0.2], "nmae": [0.2, 0.19, 0.15, 0.4]})
    t = cmp.published_table(ours)
    pub = paper_results()
    assert set(t["model"]) == set(pub["model"])
    assert len(set(t["model"])) == len(PAPER_PARAMS_NAMES) + 1  # and the open-source average
    q = t[t["model"] == "Qwen2.5-7B"].set_index("state")
    # the paper's base is compared with our zeroshot, its SFT with our sft
    assert q.loc["base", "our accuracy"] == pytest.approx(0.41) and q.loc["base", "our run"] == "q (zeroshot)"
    assert q.loc["sft", "our accuracy"] == pytest.approx(0.63)
    exp = pub[(pub["model"] == "Qwen2.5-7B") & (pub["state"] == "sft") & (pub["metric"] == "accuracy")]["value"]
    assert q.loc["sft", "published accuracy"] == pytest.approx(float(exp.iloc[0]))
    others = t[t["model"] != "Qwen2.5-7B"]
    assert others["our accuracy"].isna().all() and (others["our run"] == "–").all()


def test_seed_spread_mean_and_range_by_hand(tmp_path):
    from sgvalues.train import SEED_COLUMNS

    base, sft = [0.3, 0.3, 0.32], [0.8, 0.7, 0.75]
    rows = [{"seed": k, "split": "ood", "tag": "sft" if k == 0 else f"sft-seed{k}", "n": 40,
             "base_accuracy": b, "sft_accuracy": a, "accuracy_change": a - b,
             "base_nmae": 0.4, "sft_nmae": 0.1 * (k + 1), "nmae_change": 0.1 * (k + 1) - 0.4}
            for k, (b, a) in enumerate(zip(base, sft))]
    train_row = dict(rows[0], split="train", sft_accuracy=0.99, accuracy_change=0.69)
    pd.DataFrame(rows + [train_row], columns=list(SEED_COLUMNS)).to_csv(tmp_path / "seeds.csv", index=False)
    s = cmp._seed_spread(tmp_path)
    gains = [50.0, 40.0, 43.0]
    assert s["n"] == 3  # the OOD rows only
    assert s["mean"] == pytest.approx(np.mean(gains))
    assert (s["min"], s["max"]) == (pytest.approx(40.0), pytest.approx(50.0))
    m = cmp._seed_mean(tmp_path, "ood")
    assert m["accuracy"] == pytest.approx(np.mean(sft)) and m["nmae"] == pytest.approx(0.2)
    assert (m["min"], m["max"]) == (pytest.approx(0.7), pytest.approx(0.8))
    assert cmp._seed_mean(tmp_path, "train") is None  # one seed: no spread to show
    assert cmp._seed_spread(tmp_path / "elsewhere") is None
    lines = cmp._gain_lines([{"params_name": "x", "run": "r", "tag": "base", "accuracy": 0.3, "nmae": 0.3},
                             {"params_name": "x", "run": "r", "tag": "sft", "accuracy": 0.8, "nmae": 0.1}],
                            {"r": ("Model (r)", "x", True, str(tmp_path))})
    text = "\n".join(lines)
    assert "- Model (r): a mean of +44.3 points over 3 training seeds (range +40.0 to +50.0)" in text


def test_plot_comparison_one_panel_per_model_legend_below():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = pd.DataFrame([{"model": m, "state": s, "predictor": p, "accuracy": a}
                         for m in ("A", "B") for s in ("zeroshot", "sft")
                         for p, a in (("model", 0.3), ("population_mode", 0.8), ("marginal_product", 0.85),
                                      (cmp.NOISE, 0.9))])
    fig = cmp.plot_comparison(rows)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["A", "B"]
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    plt.close(fig)


def _full(df: pd.DataFrame) -> pd.DataFrame:
    """A predictions table with every contract column (evaluate.PREDICTION_COLUMNS)."""
    from sgvalues.evaluate import PREDICTION_COLUMNS

    out = df.drop(columns=["baseline"], errors="ignore").copy()
    for col in PREDICTION_COLUMNS:
        if col not in out.columns:
            out[col] = "" if col not in ("levels",) else '{"sex": "Male"}'
    return out[PREDICTION_COLUMNS]


def test_chapter_yardsticks_table_and_prose_by_hand(tmp_path):
    ids = [f"Q{q}_sex:{s}" for q in range(6) for s in ("Male", "Female")]
    targets = [1, 2] * 6
    run = tmp_path / "run"
    (run / "predictions").mkdir(parents=True)
    pop = _table(ids, targets, [1] * 12)                      # right on every Male sample: 0.5
    marg = _table(ids, targets, targets)                       # always right: 1.0
    for name, df in {"population_mode": pop, "marginal_product": marg, "uniform": _table(ids, targets, [3] * 12)}.items():
        _full(df).to_csv(run / "predictions" / f"{name}_ood.csv", index=False)
    sft = _table(ids[:8], targets[:8], [1, 2, 1, 2, 1, 2, 1, 1])  # 7 of 8 right, on the first 8 samples only
    table, text = cmp.chapter_yardsticks(run, "ood", {"sft": sft}, n_boot=200, n_perm=200)
    t = table.set_index("predictor")
    assert t.loc["sft", "accuracy"] == pytest.approx(7 / 8)
    assert t.loc["population_mode", "accuracy"] == pytest.approx(4 / 8) and t.loc["population_mode", "n"] == 8
    assert t.loc["marginal_product", "accuracy"] == pytest.approx(1.0)
    assert t.loc["uniform", "accuracy"] == 0.0
    assert np.isnan(t.loc[cmp.NOISE, "accuracy"])  # no data folder: no noise reference
    assert "On the same 8 samples of the **ood** split" in text
    assert "*sft* beats population_mode by +0.375" in text
    assert "does not beat marginal_product" in text


def test_comparison_page_shows_the_mean_over_training_seeds_and_its_range(tmp_path):
    import json

    from sgvalues.train import SEED_COLUMNS

    rng = np.random.default_rng(4)
    run = tmp_path / "runs" / "r"
    (run / "predictions").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"params": {"name": "r"}, "data": {"synthetic": True}}))
    ids = [f"Q{i}_sex:Male" for i in range(30)]
    target = rng.integers(1, 5, 30)
    for tag, p in (("base", 0.3), ("sft", 0.7)):
        pred = np.where(rng.random(30) < p, target, 1 + (target % 4))
        _table(ids, target, pred).to_csv(run / "predictions" / f"{tag}_ood.csv", index=False)
    sft_acc, sft_nmae = [0.6, 0.9, 0.75], [0.2, 0.05, 0.1]
    pd.DataFrame([{"seed": k, "split": "ood", "tag": "sft", "n": 30, "base_accuracy": 0.3, "sft_accuracy": a,
                   "accuracy_change": a - 0.3, "base_nmae": 0.3, "sft_nmae": e, "nmae_change": e - 0.3}
                  for k, (a, e) in enumerate(zip(sft_acc, sft_nmae))], columns=list(SEED_COLUMNS)).to_csv(
        run / "seeds.csv", index=False)
    text = cmp.write_comparison_page(tmp_path / "runs", tmp_path / "out").read_text()
    row = next(line for line in text.splitlines() if "sft, 3 seeds:" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == f"sft, 3 seeds: {min(sft_acc):.3f} to {max(sft_acc):.3f}"
    assert cells[2:4] == [f"{np.mean(sft_acc):.3f}", f"{np.mean(sft_nmae):.3f}"]
    base_row = next(line for line in text.splitlines() if line.startswith("| r (synthetic) | base |"))
    assert "seeds" not in base_row  # the untuned state has no seeds
    # every answer valid here: the invalid column gives way to a sentence
    assert "invalid |" not in text and "No answer of any row was invalid" in text
    assert "a mean of +45.0 points over 3 training seeds (range +30.0 to +60.0)" in text
    assert "its whisker the lowest to highest" in text
    # without seeds.csv the page keeps its old columns
    (run / "seeds.csv").unlink()
    text = cmp.write_comparison_page(tmp_path / "runs", tmp_path / "out").read_text()
    assert "seeds:" not in text and "| r (synthetic) | sft |" in text
    assert "whisker" not in text
