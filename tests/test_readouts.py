"""Readouts: temperature scaling and its fit, total variation, representativeness, the verbalised parser."""

import math

import numpy as np
import pytest

from sgvalues.tables import targets_json
from scipy.spatial.distance import jensenshannon
from scipy.special import softmax

from sgvalues import readouts as ro


def _cells(n: int, k_values=(3, 4, 5), seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.dirichlet(np.ones(k)) for k in rng.choice(k_values, size=n)]


def test_temperature_scale_matches_softmax_of_logits_over_t():
    p = np.array([0.6, 0.25, 0.1, 0.05])
    for t in (0.3, 1.0, 2.5):
        np.testing.assert_allclose(ro.temperature_scale(p, t), softmax(np.log(p) / t), rtol=1e-12)
    # by hand for T = 2: sqrt of each share, renormalised
    s = np.sqrt(p)
    np.testing.assert_allclose(ro.temperature_scale(p, 2.0), s / s.sum())
    # very high temperature -> uniform; very low -> one-hot on the mode
    np.testing.assert_allclose(ro.temperature_scale(p, 1e6), np.full(4, 0.25), atol=1e-5)
    np.testing.assert_allclose(ro.temperature_scale(p, 1e-3), [1, 0, 0, 0], atol=1e-9)


def test_temperature_scale_rejects_bad_input():
    with pytest.raises(ValueError, match="temperature"):
        ro.temperature_scale([0.5, 0.5], 0.0)
    with pytest.raises(ValueError, match=">= 0"):
        ro.temperature_scale([-0.5, 1.5], 1.0)


@pytest.mark.parametrize("objective", ["jsd", "nll"])
@pytest.mark.parametrize("true_t", [0.4, 1.0, 3.0])
def test_fit_recovers_the_temperature_the_data_was_generated_with(objective, true_t):
    # observed = the model's distribution re-tempered by true_t: the fit must find true_t
    model = _cells(60)
    observed = [ro.temperature_scale(q, true_t) for q in model]
    fit = ro.fit_temperature(model, observed, objective=objective)
    assert fit.temperature == pytest.approx(true_t, rel=1e-3)
    assert fit.n_cells == 60 and fit.objective == objective
    assert fit.loss <= fit.loss_at_one + 1e-12


@pytest.mark.parametrize("objective", ["jsd", "nll"])
def test_fit_agrees_with_a_fine_grid_search_on_noisy_data(objective):
    rng = np.random.default_rng(3)
    model = _cells(80, seed=1)
    # observed: tempered by 1.8 then resampled as 40 respondents: no temperature fits exactly
    observed = [rng.multinomial(40, ro.temperature_scale(q, 1.8)) / 40 for q in model]
    fit = ro.fit_temperature(model, observed, objective=objective)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 4001))

    def loss(t):
        vals = []
        for q, p in zip(model, observed):
            qt = softmax(np.log(np.maximum(q, ro.PROB_FLOOR)) / t)
            vals.append(jensenshannon(p, qt, base=2) if objective == "jsd"
                        else -np.sum(p * np.log(np.maximum(qt, ro.PROB_FLOOR))))
        return float(np.mean(vals))

    losses = np.array([loss(t) for t in grid[::20]])  # every 20th point: 201 evaluations
    t_grid = grid[::20][int(np.argmin(losses))]
    assert fit.temperature == pytest.approx(t_grid, rel=0.03)
    assert fit.loss <= losses.min() + 1e-9
    assert fit.loss == pytest.approx(loss(fit.temperature), rel=1e-9)
    assert fit.loss_at_one == pytest.approx(loss(1.0), rel=1e-9)


def test_fit_rejects_mismatched_or_empty_cells():
    with pytest.raises(ValueError, match="no cells"):
        ro.fit_temperature([], [])
    with pytest.raises(ValueError, match="cell 0"):
        ro.fit_temperature([np.array([0.5, 0.5])], [np.array([0.2, 0.3, 0.5])])
    with pytest.raises(ValueError, match="objective"):
        ro.fit_temperature([np.array([0.5, 0.5])], [np.array([0.5, 0.5])], objective="mse")


def test_identical_distributions_have_zero_jsd_not_nan():
    p = ro.temperature_scale(_cells(50)[0], 1.0)
    assert ro.cell_losses(np.tile(p, (50, 1)), np.tile(p, (50, 1)), "jsd").tolist() == [0.0] * 50


def test_cell_losses_by_hand():
    # JSD distance base 2 of (1, 0) vs (0.5, 0.5): m = (.75, .25);
    # KL(p||m) = log2(1/.75); KL(q||m) = .5 log2(.5/.75) + .5 log2(.5/.25)
    kl_p = math.log2(1 / 0.75)
    kl_q = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(2)
    expected = math.sqrt(0.5 * kl_p + 0.5 * kl_q)
    assert ro.cell_losses([[0.5, 0.5]], [[1.0, 0.0]], "jsd")[0] == pytest.approx(expected)
    # cross-entropy: -(0.2 log 0.5 + 0.8 log 0.5)
    assert ro.cell_losses([[0.5, 0.5]], [[0.2, 0.8]], "nll")[0] == pytest.approx(math.log(2))


def test_total_variation_by_hand():
    assert ro.total_variation([0.2, 0.3, 0.5], [0.5, 0.3, 0.2]) == pytest.approx(0.3)
    assert ro.total_variation([1, 0, 0], [1, 0, 0]) == 0.0
    # rows of a matrix, each renormalised ([2, 2] -> [.5, .5])
    np.testing.assert_allclose(ro.total_variation([[2, 2], [1, 0]], [[1, 0], [0, 1]]), [0.5, 1.0])
    with pytest.raises(ValueError, match="shape"):
        ro.total_variation([0.5, 0.5], [1.0, 0.0, 0.0])


def test_representativeness_by_hand():
    codes = [1, 2, 3, 4, 5]
    # W1 between a point mass at 1 and one at 5 is 4 = W1max -> 0; identical -> 1
    assert ro.representativeness([1, 0, 0, 0, 0], [0, 0, 0, 0, 1], codes) == pytest.approx(0.0)
    assert ro.representativeness([0.2] * 5, [0.2] * 5, codes) == pytest.approx(1.0)
    # p = point mass at 2, q = half at 2 and half at 4: W1 = 0.5 * 2 = 1 -> 1 - 1/4
    assert ro.representativeness([0, 1, 0, 0, 0], [0, 0.5, 0, 0.5, 0], codes) == pytest.approx(0.75)
    # CDF by hand: p = (.5, .5, 0), q = (0, .5, .5) on 1..3: |F diff| = .5, .5 -> W1 = 1, max 2
    assert ro.representativeness({1: 0.5, 2: 0.5}, {2: 0.5, 3: 0.5}, [1, 2, 3]) == pytest.approx(0.5)
    # the question's scale can be wider than the codes present
    assert ro.representativeness([1, 0], [0, 1], [1, 2], scale_min=1, scale_max=10) == pytest.approx(1 - 1 / 9)
    with pytest.raises(ValueError, match="codes"):
        ro.representativeness([1.0], [1.0], [1])


def test_parse_verbalised_good_answers():
    got = ro.parse_verbalised("1: 20%\n2: 30%\n3: 50%", [1, 2, 3])
    assert got.status == "ok" and got.reason == ""
    assert got.distribution == pytest.approx({1: 0.2, 2: 0.3, 3: 0.5})
    # JSON, inside a code fence, codes as strings, numbers as numbers
    got = ro.parse_verbalised('```json\n{"1": 25, "2": 25, "3": 50}\n```', ["1", "2", "3"])
    assert got.distribution == pytest.approx({1: 0.25, 2: 0.25, 3: 0.5})
    # within the tolerance: 33 + 33 + 33 = 99, renormalised to sum to one
    got = ro.parse_verbalised("1 = 33\n2 = 33\n3 = 33", [1, 2, 3])
    assert got.status == "ok" and sum(got.distribution.values()) == pytest.approx(1.0)
    assert got.distribution[1] == pytest.approx(1 / 3)
    assert got.probs_json() == '{"1": 0.333333, "2": 0.333333, "3": 0.333333}'


@pytest.mark.parametrize("text, reason", [
    ("", "empty answer"),
    ("   \n", "empty answer"),
    ("I think most would agree.", "line 1 is not 'code: percent'"),
    ("1: 40%\n2: about half", "line 2 is not 'code: percent'"),
    ('{"1": 40, "2": 60', "malformed JSON"),
    ('[40, 60]', "line 1 is not 'code: percent'"),
    ('{"1": 40, "2": "lots"}', "code 2: value 'lots' is not a number"),
    ('{"a": 40, "2": 60}', "key 'a' is not an option code"),
    ("1: 40%", "options missing: [2]"),                       # partial
    ("1: 40%\n2: 40%\n1: 20%", "code 1 given twice"),
    ("1: 40%\n3: 60%", "code 3 is not an option"),
    ("1: 50%\n2: 40%", "percentages sum to 90"),
    ("1: 70%\n2: 40%", "percentages sum to 110"),
])
def test_parse_verbalised_unparseable_with_a_reason(text, reason):
    got = ro.parse_verbalised(text, [1, 2])
    assert got.status == "unparseable"
    assert got.distribution == {} and got.probs_json() == ""
    assert got.reason.startswith(reason), got.reason


def test_parse_verbalised_tolerance_is_a_parameter():
    assert ro.parse_verbalised("1: 50\n2: 47", [1, 2]).status == "unparseable"
    assert ro.parse_verbalised("1: 50\n2: 47", [1, 2], tolerance=3).status == "ok"
    assert ro.parse_verbalised("1: 50\n2: 49.5", [1, 2], tolerance=0).status == "unparseable"
    for bad in (-1.0, float("nan")):  # a NaN tolerance would let any sum through
        with pytest.raises(ValueError, match="tolerance"):
            ro.parse_verbalised("1: 10\n2: 10", [1, 2], tolerance=bad)


# --- readouts of a predictions table and of a run folder ------------------------------------------

import json  # noqa: E402

import pandas as pd  # noqa: E402

from factories import make_samples  # noqa: E402
from sgvalues.evaluate import PREDICTION_COLUMNS  # noqa: E402
from sgvalues.split import write_samples  # noqa: E402


def _js(codes, shares):
    return json.dumps({str(c): round(float(s), 6) for c, s in zip(codes, shares)})


def _table(observed, predicted, targets=None, split="ood", n_valid=40):
    """A predictions table: one cell per (observed, predicted) pair over codes 1..k."""
    rows = []
    for i, (p, q) in enumerate(zip(observed, predicted)):
        codes = list(range(1, len(p) + 1))
        t = int(np.argmax(p)) + 1 if targets is None else targets[i]
        rows.append({"sample_id": f"Q{i}_s:a", "split": split, "question_id": f"Q{i}", "theme": "T", "stratum": "s",
                     "subgroup": "s:a", "levels": '{"s": "a"}', "target": t, "scale_min": 1, "scale_max": len(p),
                     "prediction": int(np.argmax(q)) + 1, "status": "ok", "probs": _js(codes, q), "raw_output": "",
                     "model": "m", "adapter": "", "distribution": _js(codes, p), "n_valid": n_valid})
    return pd.DataFrame(rows)


def test_fit_temperature_table_and_with_temperature():
    obs = _cells(40, seed=4)
    sharp = [ro.temperature_scale(p, 0.5) for p in obs]  # an over-confident model
    df = _table(obs, sharp)
    fit = ro.fit_temperature_table(df, objective="nll")
    assert fit.temperature == pytest.approx(2.0, rel=1e-3)  # the 6-decimal rounding of probs costs little
    scaled = ro.with_temperature(df, fit.temperature)
    assert scaled["prediction"].tolist() == df["prediction"].tolist()
    for raw, p in zip(scaled["probs"], obs):
        q = np.array(list(json.loads(raw).values()))
        np.testing.assert_allclose(q, p, atol=1e-4)
    blank = df.assign(probs="")
    with pytest.raises(ValueError, match="no row has both"):
        ro.fit_temperature_table(blank)
    assert ro.with_temperature(blank, 2.0)["probs"].tolist() == [""] * len(df)


def test_readout_scores_by_hand():
    obs = [np.array([0.6, 0.4, 0.0]), np.array([0.1, 0.2, 0.7])]
    pred = [np.array([0.9, 0.1, 0.0]), np.array([0.5, 0.3, 0.2])]
    # cell 0: modal 1 = target 1 (right, conf .9); cell 1: modal 1, target 3 (wrong, NMAE 2/2 = 1, conf .5)
    df = _table(obs, pred, n_valid=10 ** 6)
    got = ro.readout_scores(df, n_bins=10, n_boot=100)
    assert got["n"] == 2 and got["n_distribution"] == 2
    assert got["accuracy"] == pytest.approx(0.5)
    assert got["nmae"] == pytest.approx(0.5)
    assert got["tv"] == pytest.approx((0.3 + 0.5) / 2)  # .5 * (.3 + .3), .5 * (.4 + .1 + .5)
    assert got["jsd"] == pytest.approx(np.mean([jensenshannon(o, p, base=2) for o, p in zip(obs, pred)]))
    rep = np.mean([ro.representativeness(o, p, [1, 2, 3]) for o, p in zip(obs, pred)])
    assert got["representativeness"] == pytest.approx(rep)
    # ECE: bins .9 -> acc 1 (gap .1), .5 -> acc 0 (gap .5), each half the cells
    assert got["ece"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.5)
    # a million respondents: the region shrinks to ~0, neither prediction is inside
    assert got["inside_share"] == 0.0
    exact = ro.readout_scores(_table(obs, obs, n_valid=30), n_boot=100)
    assert exact["inside_share"] == 1.0 and exact["tv"] == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(ro.readout_scores(df.drop(columns="n_valid"), n_boot=10)["inside_share"])


def test_sampling_floor_matches_bootstrap_by_hand():
    from sgvalues.calibration import bootstrap_distances

    s = pd.DataFrame({"sample_id": ["a", "b"], "distribution": ['{"1": 0.5, "2": 0.5}', '{"1": 1.0, "2": 0.0}'],
                      "n_valid": [30, 30]})
    got = ro.sampling_floor(s, n_boot=300, seed=2)
    want = np.mean([bootstrap_distances([0.5, 0.5], 30, 300, "tv", 2, "a").mean(), 0.0])
    assert got["tv"] == pytest.approx(want) and got["n_distribution"] == 2
    # TV of Binomial(30, .5)/30 from .5 is |k/30 - .5|: its mean by exact enumeration
    from scipy.stats import binom
    k = np.arange(31)
    exact = np.sum(binom.pmf(k, 30, 0.5) * np.abs(k / 30 - 0.5)) / 2
    assert got["tv"] == pytest.approx(exact, rel=0.15)


def _write(df: pd.DataFrame, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    df[PREDICTION_COLUMNS].to_csv(path, index=False)


def test_run_readouts_on_a_hand_made_run_folder(tmp_path):
    rng = np.random.default_rng(9)
    qs = [f"Q{i}" for i in range(1, 9)]
    samples = []
    for split, groups in (("train", ("sex:Male", "sex:Female")), ("ood", ("age_group_x_religion:16-24|Muslim",))):
        for q in qs:
            for g in groups:
                p = rng.dirichlet(np.ones(4))
                samples.extend(make_samples([q], [g], split=split, target=int(np.argmax(p)) + 1, n_valid=50,
                                            distribution={str(c): float(v) for c, v in zip(range(1, 5), p)}))
    write_samples(samples, tmp_path / "data")

    def preds(split, fn, tag):
        rows = []
        for s in samples:
            if s["split"] != split:
                continue
            p = np.array([s["distribution"][str(c)] for c in range(1, 5)])
            q = fn(p)
            rows.append({**{k: s[k] for k in ("sample_id", "split", "question_id", "theme", "stratum", "subgroup",
                                               "target", "scale_min", "scale_max")},
                         "levels": json.dumps(s["levels"]), "prediction": int(np.argmax(q)) + 1, "status": "ok",
                         "probs": _js(range(1, 5), q), "raw_output": "", "model": tag, "adapter": "",
                         "distribution": _js(range(1, 5), p), "targets": targets_json(s)})
        _write(pd.DataFrame(rows), tmp_path / "predictions" / f"{tag}_{split}.csv")

    sharpen = lambda p: ro.temperature_scale(p, 0.4)  # noqa: E731
    preds("train", sharpen, "zeroshot")
    preds("ood", sharpen, "zeroshot")
    preds("ood", lambda p: np.full(4, 0.25), "uniform")
    table, fit = ro.run_readouts(tmp_path, baselines=("uniform",), n_boot=50)
    assert list(table.columns) == ro.READOUT_TABLE_COLUMNS
    assert table["readout"].tolist() == ["logprob", "logprob_temperature", "uniform", "survey_noise"]
    assert fit.temperature == pytest.approx(2.5, rel=1e-2) and fit.n_cells == 16
    t = table.set_index("readout")
    assert t.loc["logprob_temperature", "tv"] < 1e-3 < t.loc["logprob", "tv"]
    assert t.loc["logprob", "accuracy"] == t.loc["logprob_temperature", "accuracy"] == 1.0
    ood = [s for s in samples if s["split"] == "ood"]
    uni_tv = np.mean([0.5 * np.abs(np.array(list(s["distribution"].values())) - 0.25).sum() for s in ood])
    assert t.loc["uniform", "tv"] == pytest.approx(uni_tv, abs=1e-5)
    assert t.loc["uniform", "n"] == 8 and t.loc["survey_noise", "n"] == 8
    assert 0 < t.loc["survey_noise", "tv"] < t.loc["uniform", "tv"]
    from sgvalues.baselines import noise_per_sample
    assert t.loc["survey_noise", "accuracy"] == pytest.approx(noise_per_sample(ood, n_boot=50)["p_same_mode"].mean())
    assert np.isnan(t.loc["survey_noise", "ece"])
    with pytest.raises(FileNotFoundError, match="population_mode_ood.csv"):
        ro.run_readouts(tmp_path, baselines=("population_mode",), n_boot=10)


def test_sampled_distribution_counts_codes_and_never_guesses():
    d = ro.sampled_distribution(["3", "3", "1", "The answer is 3", "no idea", "I'm sorry, I can't answer"], [1, 2, 3])
    assert d["n_samples"] == 6 and d["n_valid"] == 4
    assert d["distribution"] == pytest.approx({1: 0.25, 2: 0.0, 3: 0.75})
    assert d["n_refused"] + d["n_unparseable"] == 2 and d["status"] == "ok"
    none = ro.sampled_distribution(["banana", "kiwi"], [1, 2])
    assert none["status"] == "unparseable" and none["distribution"] == {}


def test_readout_predictions_follow_the_contract_and_count_failures():
    from sgvalues.metrics import score

    samples = make_samples(["Q1"], ["sex:Male", "sex:Female", "age_group:16-24"], target=2, n_options=3,
                           distribution={"1": 0.2, "2": 0.5, "3": 0.3})
    verbal = {"Q1_sex:Male": "1: 20%\n2: 50%\n3: 30%", "Q1_sex:Female": "1: 20%\n2: 50%"}
    got = ro.readout_predictions(samples, verbal, "verbalised", model="m")
    assert list(got.columns) == PREDICTION_COLUMNS + ["parse_reason"]
    assert got["status"].tolist() == ["ok", "unparseable", "failed"]
    assert got["parse_reason"].tolist()[1:] == ["options missing: [3]", "no output"]
    assert got["prediction"].tolist()[0] == 2 and pd.isna(got["prediction"].iloc[1])
    assert json.loads(got["probs"].iloc[0]) == {"1": 0.2, "2": 0.5, "3": 0.3} and got["probs"].iloc[1] == ""
    s = score(got).iloc[0]  # invalid answers count as wrong; distributional scores over the parsed cell only
    assert s["accuracy"] == pytest.approx(1 / 3) and s["invalid_rate"] == pytest.approx(2 / 3)
    assert s["jsd"] == pytest.approx(0.0, abs=1e-6)
    sampled = {"Q1_sex:Male": ["2", "2", "1", "3"], "Q1_sex:Female": ["x", "y"], "Q1_age_group:16-24": ["1", "1"]}
    got = ro.readout_predictions(samples, sampled, "sampled")
    assert got["status"].tolist() == ["ok", "unparseable", "ok"]
    assert json.loads(got["probs"].iloc[0]) == {"1": 0.25, "2": 0.5, "3": 0.25}
    assert got["prediction"].tolist()[2] == 1
    assert got["parse_reason"].iloc[1].startswith("0 of 2 answers gave a code")
    with pytest.raises(ValueError, match="readout"):
        ro.readout_predictions(samples, {}, "logprob")
