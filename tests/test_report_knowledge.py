"""Chapter 09's words and figures follow the tables they are given; peers' figures are labelled published."""

import json
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from sgvalues.readouts import TemperatureFit
from sgvalues.report import knowledge as page


def _table(tv_raw=0.4, tv_t=0.3):
    return pd.DataFrame({"readout": ["logprob", "logprob_temperature", "uniform", "population_mode", "survey_noise"],
                         "kind": ["model", "model", "baseline", "baseline", "reference"],
                         "accuracy": [0.5, 0.5, 0.2, 0.6, 0.8], "tv": [tv_raw, tv_t, 0.35, 0.2, 0.1],
                         "ece": [0.3, 0.1, 0.05, 0.2, float("nan")], "inside_share": [0.1, 0.4, 0.0, 0.3, float("nan")],
                         "n": [10] * 5})


def test_peer_figures_are_the_published_meister_numbers():
    raw = json.loads(resources.files("sgvalues").joinpath("resources/peers.json").read_text())
    assert {r["readout"]: r["value"] for r in raw["readouts"]} == {
        "logprob": 0.550, "logprob_temperature": 0.273, "verbalised": 0.229, "uniform": 0.363, "survey_noise": 0.115}
    got = page.readout_comparison(_table())
    col = [c for c in got.columns if c.startswith("published TV")]
    assert col == ["published TV"]
    by = dict(zip(got["readout"], got[col[0]]))
    assert by["log-probs"] == 0.550 and by["survey noise"] == 0.115
    assert pd.isna(by["population_mode"])  # the study has no such row: blank, not invented
    assert got["tv"].tolist() == _table()["tv"].tolist()  # ours untouched


@pytest.mark.parametrize("t, words", [(2.0, "over-confident and are flattened"),
                                      (0.5, "under-confident and are sharpened"),
                                      (1.002, "already as spread")])
def test_temperature_sentence_direction_follows_the_fit(t, words):
    text = page.temperature_sentence(_table(), TemperatureFit(t, "nll", 0.1, 0.2, 42))
    assert words in text and "42 train cells" in text and "mean cross-entropy" in text
    assert f"T = {t:.2f}" in text


def test_temperature_sentence_numbers_come_from_the_table():
    text = page.temperature_sentence(_table(0.25, 0.31), TemperatureFit(0.8, "jsd", 0.1, 0.2, 5))
    assert "from 0.250 to 0.310 (+0.060)" in text
    assert "uniform gives 0.350" in text and "lands 0.100 away" in text
    no_refs = _table().query("readout in ['logprob', 'logprob_temperature']")
    assert page.temperature_sentence(no_refs, TemperatureFit(0.8, "jsd", 0.1, 0.2, 5)).endswith("(-0.100).")


def test_calibration_sentence_reads_model_rows_only():
    text = page.calibration_sentence(_table())
    assert "0.300 (option log-probabilities), 0.100 (log-probabilities, fitted temperature)" in text
    assert "region: 0.100, 0.400." in text and "0.050" not in text
    assert "No model readout" in page.calibration_sentence(_table().query("kind != 'model'"))


def test_aggregation_sentence_orders_axes_by_gap():
    s = pd.DataFrame({"axis": ["sex", "religion", "age_group", "sex"], "stratum": ["all", "all", "all", "x"],
                      "tv": [0.3, 0.1, 0.2, 0.9], "coverage": [1.0, 0.8, 0.9, 1.0]})
    text = page.aggregation_sentence(s)
    assert "0.300 on sex (the largest) and 0.100 on religion (the smallest)" in text
    assert "cover 1.000 and 0.800" in text
    assert "only axis" in page.aggregation_sentence(s.iloc[[1]])
    assert "No level" in page.aggregation_sentence(s.iloc[:0])


def test_entropy_sentence_verbs_and_numbers():
    e = {"group": "subgroup", "n_groups": 7, "r2": 0.25, "gap_raw": 0.4, "gap_adjusted": 0.3}
    falls = pd.DataFrame({"tercile": ["low", "middle", "high"], "error": [0.5, 0.4, 0.2]})
    text = page.entropy_sentence(falls, e, "JSD")
    assert "Mean JSD falls from 0.500" in text and "to 0.200" in text
    assert "7 subgroups" in text and "R² = 0.250" in text and "from 0.400 to 0.300" in text
    flat = page.entropy_sentence(falls, {**e, "r2": float("nan")}, "JSD")
    assert "no gap to explain" in flat


def test_reliability_figure_draws_each_readout():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sgvalues.calibration import reliability_table

    tables = {"logprob": reliability_table([0.9, 0.8, 0.3], [1, 0, 0], 5),
              "logprob_temperature": reliability_table([0.7, 0.6, 0.4], [1, 0, 0], 5)}
    fig = page.plot_reliability(tables)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3  # the diagonal and one per readout
    x, y = lines[1].get_data()
    t = tables["logprob"][tables["logprob"]["n"] > 0]
    assert list(x) == pytest.approx(t["confidence"].tolist()) and list(y) == pytest.approx(t["accuracy"].tolist())
    plt.close(fig)


def test_error_vs_entropy_figure_shows_the_group_means():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cells = pd.DataFrame({"subgroup": ["a", "a", "b", "c"], "entropy": [0.2, 0.4, 0.6, 0.9],
                          "n_valid": [30, 50, 80, 100], "jsd": [0.1, 0.3, 0.35, 0.5]})
    means = page.group_means(cells, "jsd")
    assert means["error"].tolist() == pytest.approx([0.2, 0.35, 0.5])
    fig = page.plot_error_vs_entropy(means, "mean JSD")
    ax = fig.axes[0]
    pts = ax.collections[0].get_offsets()
    assert np.allclose(pts, means[["entropy", "error"]].to_numpy())
    line = ax.get_lines()[0].get_data()
    slope = np.polyfit(means["entropy"], means["error"], 1)[0]
    assert (line[1][-1] - line[1][0]) / (line[0][-1] - line[0][0]) == pytest.approx(slope)
    plt.close(fig)


def test_explained_table_matches_scipy_and_sklearn_on_group_means():
    from scipy.stats import linregress
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(3)
    n = 60
    cells = pd.DataFrame({"subgroup": rng.choice(list("abcdefg"), n), "question_id": rng.choice(["Q1", "Q2", "Q3", "Q4",
                                                                                                   "Q5"], n),
                          "entropy": rng.uniform(0, 1, n), "log_n": np.log(rng.integers(30, 200, n)),
                          "jsd": rng.uniform(0, 0.6, n)})
    got = page.explained_table(cells, "jsd").set_index(["groups", "covariates"])
    for group, label in (("subgroup", "subgroup"), ("question_id", "question")):
        m = cells.groupby(group)[["entropy", "log_n", "jsd"]].mean()
        fit = linregress(m["entropy"], m["jsd"])
        assert got.loc[(label, "entropy"), "R²"] == pytest.approx(fit.rvalue ** 2)
        assert got.loc[(label, "entropy"), "n"] == len(m)
        two = LinearRegression().fit(m[["entropy", "log_n"]], m["jsd"])
        assert got.loc[(label, "entropy + size"), "R²"] == pytest.approx(two.score(m[["entropy", "log_n"]], m["jsd"]))
        resid = m["jsd"] - two.predict(m[["entropy", "log_n"]])
        assert got.loc[(label, "entropy + size"), "gap adjusted"] == pytest.approx(resid.max() - resid.min())
        assert got.loc[(label, "entropy"), "gap"] == pytest.approx(m["jsd"].max() - m["jsd"].min())
    # without cell sizes only the entropy rows remain
    assert set(page.explained_table(cells.drop(columns="log_n"), "jsd")["covariates"]) == {"entropy"}


def test_size_sentence_reports_sklearn_r2_and_the_slope_per_doubling():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(11)
    n = 80
    sizes = np.exp(rng.uniform(np.log(30), np.log(400), 10))
    sub = rng.integers(0, 10, n)
    cells = pd.DataFrame({"subgroup": [f"g{i}" for i in sub], "entropy": rng.uniform(0, 1, n),
                          "log_n": np.log(sizes[sub])})
    cells["jsd"] = 0.3 - 0.04 * cells["log_n"] + rng.normal(0, 0.01, n)  # smaller error in larger cells
    m = cells.groupby("subgroup")[["entropy", "log_n", "jsd"]].mean()
    one = LinearRegression().fit(m[["entropy"]], m["jsd"]).score(m[["entropy"]], m["jsd"])
    two = LinearRegression().fit(m[["entropy", "log_n"]], m["jsd"])
    per_doubling = two.coef_[1] * np.log(2)
    text = page.size_sentence(cells, "jsd", "JSD")
    assert f"from R² = {one:.3f} to {two.score(m[['entropy', 'log_n']], m['jsd']):.3f}" in text
    assert f"mean JSD is lower by {abs(per_doubling):.3f} for each doubling" in text
    # the direction follows the data
    cells["jsd"] = 0.1 + 0.04 * cells["log_n"] + rng.normal(0, 0.01, n)
    assert "mean JSD is higher by" in page.size_sentence(cells, "jsd", "JSD")
    # one size for every subgroup: nothing to separate
    same = cells.assign(log_n=np.log(50.0))
    assert page.size_sentence(same, "jsd", "JSD").startswith("Cell size cannot be set beside entropy")


def test_readout_sentence_follows_the_table():
    def table(acc_sampled, n_verbalised):
        return pd.DataFrame({
            "readout": ["logprob", "sampled", "verbalised", "uniform", "population_mode", "survey_noise"],
            "kind": ["model", "model", "model", "baseline", "baseline", "reference"],
            "n": [12] * 6, "n_distribution": [12, 12, n_verbalised, 12, 12, 12],
            "accuracy": [0.25, acc_sampled, 0.0 if n_verbalised == 0 else 0.1, 0.3, 0.6, 0.9],
            "tv": [0.5, 0.3, float("nan") if n_verbalised == 0 else 0.2, 0.4, 0.25, 0.1]})

    text = page.readout_sentence(table(0.4, 0))
    closest = table(0.4, 0).query("kind == 'model'").dropna(subset=["tv"])
    assert "closest to the subgroups' answer distributions is sampled answers (mean total variation 0.300" in text
    beat = int((closest["tv"] < 0.4).sum())
    assert f"so {beat} of {len(closest)} model readouts" in text
    assert "no readout beats answering every subgroup" in text
    assert "Verbalised distribution gave no distribution on any of the 12 cells" in text
    assert "the others" not in text
    text = page.readout_sentence(table(0.7, 5))
    assert "0.700 (sampled answers) against 0.600 for population_mode: that readout beats" in text
    assert "is verbalised distribution (mean total variation 0.200" in text
    assert "Verbalised distribution gave a distribution on 5 of 12 cells; the others count as wrong answers" in text
