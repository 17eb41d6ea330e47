"""Baselines and the survey-noise reference: hand-made distributions, scipy, and a real prepared folder."""

import json

import numpy as np
import pandas as pd
import pytest
from factories import make_sample, predict_baseline
from scipy import stats
from scipy.spatial.distance import jensenshannon

from sgvalues import baselines as bl
from sgvalues.evaluate import PREDICTION_COLUMNS, load_predictions


def _row(q, stratum, subgroup, counts, codes=None):
    codes = codes or list(range(1, len(counts) + 1))
    n = sum(counts)
    shares = {str(c): x / n for c, x in zip(codes, counts)}
    top = max(counts)
    return {"question_id": q, "stratum": stratum, "subgroup": subgroup, "n_valid": n,
            "modal_answer": codes[counts.index(top)], "n_tied_modes": counts.count(top),
            "distribution": json.dumps(shares)}


def _sample(q, subgroup, levels, target=1, k=3, dist=None, n_valid=30, sid=None):
    return make_sample(q, subgroup, levels=levels, target=target, options={str(c): f"o{c}" for c in range(1, k + 1)},
                       distribution=dist or None, n_valid=n_valid, sample_id=sid)


# Q1, three options. sex: Male (0, 30, 10), Female (20, 0, 10) -> population (20, 30, 20): mode 2.
# age: 16-24 (12, 0, 0), 65+ (0, 6, 6) [tie 2/3 -> 2]. Pair Male|16-24 (5, 5, 0) [tie -> 1].
MODAL = pd.DataFrame([
    _row("Q1", "sex", "sex:Male", [0, 30, 10]),
    _row("Q1", "sex", "sex:Female", [20, 0, 10]),
    _row("Q1", "age_group", "age_group:16-24", [12, 0, 0]),
    _row("Q1", "age_group", "age_group:65+", [0, 6, 6]),
    _row("Q1", "sex_x_age_group", "sex_x_age_group:Male|16-24", [5, 5, 0]),
    # an OOD row: must not be used for fitting
    _row("Q1", "age_group_x_religion", "age_group_x_religion:16-24|Muslim", [0, 0, 99]),
])
SPLITS = {"age_group_x_religion:16-24|Muslim": "ood"}


def _fit(modal=MODAL):
    return bl.fit_baselines(modal, split_of=lambda s: SPLITS.get(s, "train"))


def _smooth(counts):
    c = np.asarray(counts, float)
    return (c + 0.5) / (c.sum() + 0.5 * len(c))


def test_population_mode_and_train_majority_by_hand():
    f = _fit()
    assert f.population["Q1"].tolist() == [20, 30, 20]          # the OOD row is not in the fit
    s = [_sample("Q1", "age_group_x_religion:16-24|Muslim", {"age_group": "16-24", "religion": "Muslim"})]
    pop = predict_baseline(f, s, "population_mode").iloc[0]
    assert pop["prediction"] == 2
    assert json.loads(pop["probs"]) == pytest.approx({"1": 20 / 70, "2": 30 / 70, "3": 20 / 70}, abs=1e-6)
    # train modes: Male 2, Female 1, 16-24 1, 65+ 2 (tie 2/3 -> 2), Male|16-24 1 (tie) -> votes 1: 3, 2: 2
    tm = predict_baseline(f, s, "train_majority").iloc[0]
    assert tm["prediction"] == 1 and json.loads(tm["probs"]) == pytest.approx({"1": 0.6, "2": 0.4, "3": 0.0})


def test_ties_go_to_the_lowest_code():
    modal = pd.DataFrame([_row("Q1", "sex", "sex:Male", [5, 5, 0]), _row("Q1", "sex", "sex:Female", [5, 5, 0]),
                          _row("Q1", "age_group", "age_group:16-24", [0, 3, 3])])
    f = bl.fit_baselines(modal, split_of=lambda s: "train")
    s = [_sample("Q1", "sex:Male", {"sex": "Male"})]
    assert predict_baseline(f, s, "population_mode").loc[0, "prediction"] == 1      # 10 vs 10
    assert predict_baseline(f, s, "train_majority").loc[0, "prediction"] == 1       # votes: 1 twice, 2 once
    assert predict_baseline(f, s, "marginal_product").loc[0, "prediction"] == 1     # own (5, 5, 0): tie
    s65 = [_sample("Q1", "age_group:16-24", {"age_group": "16-24"})]
    assert predict_baseline(f, s65, "marginal_product").loc[0, "prediction"] == 2   # own (0, 3, 3): tie 2/3


def test_marginal_product_by_hand_with_zero_shares_and_smoothing():
    f = _fit()
    s = [_sample("Q1", "sex_x_age_group:Male|16-24", {"sex": "Male", "age_group": "16-24"})]
    row = predict_baseline(f, s, "marginal_product").iloc[0]
    # p_Male = (0.5, 30.5, 10.5)/41.5, p_16-24 = (12.5, 0.5, 0.5)/13.5, p = (20.5, 30.5, 20.5)/71.5
    score = _smooth([0, 30, 10]) * _smooth([12, 0, 0]) / _smooth([20, 30, 20])
    want = score / score.sum()
    assert json.loads(row["probs"]) == pytest.approx(dict(zip("123", want)), abs=1e-6)
    assert row["prediction"] == int(np.argmax(want)) + 1 == 2
    # unsmoothed, the zero shares (Male on 1, 16-24 on 2) would leave only option 3 possible
    raw = np.array([0, 30, 10]) / 40 * np.array([12, 0, 0]) / 12
    assert raw.sum() == 0 and min(json.loads(row["probs"]).values()) > 0.2


def test_marginal_product_level_missing_from_train():
    f = _fit()
    # religion:Muslim has no train single-axis subgroup: only the 65+ factor is left -> its own distribution
    s = [_sample("Q1", "age_group_x_religion:65+|Muslim", {"age_group": "65+", "religion": "Muslim"})]
    row = predict_baseline(f, s, "marginal_product").iloc[0]
    assert json.loads(row["probs"]) == pytest.approx(dict(zip("123", _smooth([0, 6, 6]))), abs=1e-6)
    assert row["prediction"] == 2                                # tie 2/3 -> 2
    # no level known at all -> the (smoothed) population distribution
    s = [_sample("Q1", "ethnicity_x_religion:Malay|Muslim", {"ethnicity": "Malay", "religion": "Muslim"})]
    row = predict_baseline(f, s, "marginal_product").iloc[0]
    assert json.loads(row["probs"]) == pytest.approx(dict(zip("123", _smooth([20, 30, 20]))), abs=1e-6)


def test_floors_first_option_and_uniform():
    f = _fit()
    samples = [_sample("Q1", "sex:Male", {"sex": "Male"}, sid=f"s{i}") for i in range(3000)]
    first = predict_baseline(f, samples[:5], "first_option")
    assert (first["prediction"] == 1).all()
    assert json.loads(first.loc[0, "probs"]) == {"1": 1.0, "2": 0.0, "3": 0.0}
    uni = predict_baseline(f, samples, "uniform", seed=3)
    assert json.loads(uni.loc[0, "probs"]) == pytest.approx({"1": 1 / 3, "2": 1 / 3, "3": 1 / 3}, abs=1e-6)
    assert set(uni["prediction"]) == {1, 2, 3}
    # accuracy of the draws ~ 1/k (3000 draws: sd 0.009)
    assert (uni["prediction"] == 1).mean() == pytest.approx(1 / 3, abs=0.04)
    # deterministic, and a sample's draw does not depend on the others
    again = predict_baseline(f, samples[100:200], "uniform", seed=3)
    assert again["prediction"].tolist() == uni["prediction"].iloc[100:200].tolist()
    assert list(uni.columns) == PREDICTION_COLUMNS and (uni["model"] == "baseline:uniform").all()


def test_fit_uses_train_only_and_errors_are_clear():
    with pytest.raises(ValueError, match="no row belongs to a train subgroup"):
        bl.fit_baselines(MODAL, split_of=lambda s: "ood")
    with pytest.raises(ValueError, match="subgroups.csv"):
        bl.fit_baselines(MODAL)
    with pytest.raises(ValueError, match="missing column"):
        bl.fit_baselines(MODAL.drop(columns="distribution"), split_of=lambda s: "train")
    with pytest.raises(ValueError, match="Q9 has no train modal answers"):
        predict_baseline(_fit(), [_sample("Q9", "sex:Male", {"sex": "Male"})], "population_mode")
    with pytest.raises(ValueError, match="baseline 'oracle'"):
        predict_baseline(_fit(), [], "oracle")


def test_baseline_jsd_against_scipy_on_random_cases():
    from sgvalues import metrics

    rng = np.random.default_rng(0)
    rows = []
    for i in range(20):
        rows.append(_row("Q1", "sex", "sex:Male" if i % 2 else "sex:Female", list(rng.integers(0, 20, 4) + 1)))
    f = bl.fit_baselines(pd.DataFrame(rows[:2]), split_of=lambda s: "train")
    samples = [_sample("Q1", "sex:Male", {"sex": "Male"}, k=4, sid=f"s{i}",
                       dist=dict(zip("1234", rng.dirichlet(np.ones(4)).tolist()))) for i in range(30)]
    for name in ("population_mode", "marginal_product", "uniform"):
        df = predict_baseline(f, samples, name)
        got = metrics.distribution_scores(df)["jsd"].to_numpy()
        want = [jensenshannon(list(json.loads(d).values()), list(json.loads(p).values()), base=2)
                for d, p in zip(df["distribution"], df["probs"])]
        assert got == pytest.approx(want, abs=1e-6)


def test_noise_reference_unanimous_and_even_split():
    unanimous = [_sample("Q1", "x:a", {"x": "a"}, dist={"1": 0.0, "2": 1.0, "3": 0.0}, target=2, sid="u")]
    r = bl.noise_reference(unanimous, n_boot=200)
    assert r[["estimate", "lo", "hi"]].iloc[0].tolist() == [1.0, 1.0, 1.0]
    # an even two-way split of 30: the resampled mode is 1 when X1 >= X2 (ties -> lowest), X1 ~ Bin(30, 1/2)
    even = [_sample("Q1", "x:b", {"x": "b"}, k=2, dist={"1": 0.5, "2": 0.5}, target=1, n_valid=30, sid="e")]
    p = bl.noise_per_sample(even, n_boot=4000, seed=1)["p_same_mode"].iloc[0]
    exact = stats.binom.sf(14, 30, 0.5)                           # P(X1 >= 15) = 0.572
    assert p == pytest.approx(exact, abs=3 * np.sqrt(exact * (1 - exact) / 4000))
    odd = [_sample("Q1", "x:c", {"x": "c"}, k=2, dist={"1": 0.5, "2": 0.5}, target=1, n_valid=31, sid="o")]
    assert bl.noise_per_sample(odd, n_boot=4000, seed=1)["p_same_mode"].iloc[0] == pytest.approx(0.5, abs=0.025)


def test_noise_reference_groups_interval_and_subsets():
    samples = [_sample("Q1", f"s{i % 2}:a", {"x": "a"}, k=2, dist={"1": 0.6, "2": 0.4}, n_valid=20, sid=f"q{i}")
               for i in range(40)]
    r = bl.noise_reference(samples, n_boot=300, seed=0)
    assert set(r["stratum"]) == {"all", "s0", "s1"} and list(r.columns) == bl.NOISE_COLUMNS
    allrow = r[r["stratum"] == "all"].iloc[0]
    # each sample: P(Bin(20, 0.6) >= 10) (ties -> code 1 = the observed mode)
    assert allrow["estimate"] == pytest.approx(stats.binom.sf(9, 20, 0.6), abs=0.03)
    assert allrow["lo"] <= allrow["estimate"] <= allrow["hi"] and allrow["n_samples"] == 40
    per = bl.noise_per_sample(samples, n_boot=300, seed=0)
    assert allrow["estimate"] == pytest.approx(per["p_same_mode"].mean())
    # a subset's draws are the same draws
    assert bl.noise_per_sample(samples[5:9], n_boot=300, seed=0)["p_same_mode"].tolist() == \
        per["p_same_mode"].iloc[5:9].tolist()
    # grouped by split alone: one row per split, the same figures as the pooled 'all' row
    by_split = bl.noise_reference(samples, n_boot=300, seed=0, by=("split",))
    assert list(by_split.columns) == ["split"] + bl.NOISE_COLUMNS[2:] and len(by_split) == 1
    assert by_split.iloc[0][["estimate", "lo", "hi", "n_samples"]].tolist() == \
        allrow[["estimate", "lo", "hi", "n_samples"]].tolist()


def test_compare_with_baselines_pairs_samples_and_tests():
    ids = [f"Q{q}_x:{g}" for q in range(12) for g in "ab"]
    base = pd.DataFrame({"sample_id": ids, "question_id": [i.split("_")[0] for i in ids], "subgroup": "x:a",
                         "target": 1, "scale_min": 1, "scale_max": 3, "status": "ok", "prediction": 2,
                         "probs": "", "distribution": ""})
    good = base.assign(prediction=1)
    half = base.assign(prediction=[1 if i % 2 == 0 else 2 for i in range(len(ids))])
    cmp = bl.compare_with_baselines({"good": good, "half": half.iloc[:10]}, {"wrong": base}, n_perm=2000)
    g = cmp[(cmp["state"] == "good") & (cmp["metric"] == "accuracy")].iloc[0]
    assert (g["state_value"], g["baseline_value"], g["difference"], g["n"]) == (1.0, 0.0, 1.0, 24)
    # 12 questions all in favour: exact sign-flip p = 2 / 2^12
    assert g["p_value"] == pytest.approx(2 / 2 ** 12) and g["ci_low"] == g["ci_high"] == 1.0
    h = cmp[(cmp["state"] == "half") & (cmp["metric"] == "nmae")].iloc[0]
    assert h["n"] == 10 and h["difference"] == pytest.approx(-0.5 * 5 / 10)   # inner join on sample_id
    assert "jsd" not in set(cmp["metric"])                                     # no distributions: skipped
    # the comparison is one family: its 4 tests Holm-adjusted together; the smallest p (good's two
    # exact 2 / 2^12) is multiplied by 4, both of them (ties keep the running maximum)
    assert len(cmp) == 4 and set(cmp["method"]) == {"exact"}
    good_rows = cmp[cmp["state"] == "good"]
    assert good_rows["p_holm"].tolist() == pytest.approx([4 * 2 / 2 ** 12] * 2)
    assert (cmp["p_holm"] >= cmp["p_value"]).all() and (cmp["p_holm"] <= 1).all()


@pytest.fixture(scope="module")
def small_prepared(tmp_path_factory):
    from sgvalues.cli import main as cli_main

    base = tmp_path_factory.mktemp("bl")
    assert cli_main(["synth", "--out", str(base / "wvs.csv"), "--n", "400", "--seed", "3"]) == 0
    assert cli_main(["prepare", "--wvs", str(base / "wvs.csv"), "--out", str(base / "prep"), "--min-n", "20"]) == 0
    return base


@pytest.mark.slow  # ~40 s: prepares a synthetic sample and bootstraps the survey noise
def test_cli_on_a_real_prepared_folder(small_prepared, capsys):
    from sgvalues.cli import main as cli_main
    from sgvalues.data import load_wvs
    from sgvalues.modal import option_codes

    out = small_prepared / "pred"
    capsys.readouterr()
    assert cli_main(["baselines", "--prepared", str(small_prepared / "prep"), "--out", str(out),
                     "--n-boot", "50"]) == 0
    printed = json.loads(capsys.readouterr().out)
    names = sorted(p.name for p in out.glob("*.csv"))
    assert names == sorted([f"{n}_{s}.csv" for n in bl.BASELINES for s in ("train", "ood")] + ["noise_reference.csv"])
    pop = load_predictions(out / "population_mode_ood.csv")
    assert len(pop) == len(load_predictions(out / "uniform_ood.csv")) > 0
    assert pop["probs"].str.len().gt(2).all() and pop["distribution"].str.len().gt(2).all()
    # population_mode = the modal answer over every respondent, computed here from the file itself
    resp = load_wvs(small_prepared / "wvs.csv")
    questions = pd.read_csv(small_prepared / "prep" / "questions.csv")
    want = {}
    for q, opts in zip(questions["question_id"], questions["options"]):
        codes = option_codes(opts)
        counts = resp[q].value_counts().reindex(codes, fill_value=0)
        want[q] = int(counts.index[np.argmax(counts.to_numpy())])   # first maximum = lowest code
    assert (pop["prediction"].astype(int) == pop["question_id"].map(want)).all()
    # any tied modal code counts (the samples' `targets`), here checked code by code
    hit = [int(p) in json.loads(t) for p, t in zip(pop["prediction"], pop["targets"])]
    assert all(json.loads(t)[0] == tg for t, tg in zip(pop["targets"], pop["target"]))
    assert printed["population_mode_ood"]["accuracy"] == pytest.approx(round(float(np.mean(hit)), 4))
    noise = pd.read_csv(out / "noise_reference.csv")
    assert set(noise["split"]) == {"train", "ood"} and noise["estimate"].between(0, 1).all()


@pytest.mark.slow  # ~20 s: every baseline on a real prepared folder, twice
def test_ensure_run_baselines_is_idempotent(small_prepared, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_prepared / "prep", run / "data")
    first = bl.ensure_run_baselines(run, seed=0, n_boot=20)
    stamp = (run / "predictions" / "population_mode_ood.csv").stat().st_mtime_ns
    again = bl.ensure_run_baselines(run, seed=0, n_boot=20)
    assert again == first and (run / "predictions" / "population_mode_ood.csv").stat().st_mtime_ns == stamp
    assert (run / "baselines" / "noise_reference.csv").is_file()
    assert bl.ensure_run_baselines(tmp_path / "empty") is None


def test_noise_reference_counts_any_tied_mode():
    # shares 0.5 / 0.5 on codes 1 and 2 (a tie): any resampled mode is one of the tied codes
    s = [{"sample_id": "Q1_x:a", "split": "ood", "question_id": "Q1", "stratum": "x", "subgroup": "x:a", "target": 1,
          "targets": [1, 2], "distribution": {"1": 0.5, "2": 0.5}, "n_valid": 31}]
    assert bl.noise_per_sample(s, n_boot=200, seed=0)["p_same_mode"].iloc[0] == 1.0
    # without the tie list the lowest code alone counts: about half the resamples (n odd: no resampled tie)
    single = bl.noise_per_sample([{**s[0], "targets": [1]}], n_boot=2000, seed=0)["p_same_mode"].iloc[0]
    assert 0.45 < single < 0.55
