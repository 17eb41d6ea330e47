"""Readouts: temperature scaling and its fit, total variation, representativeness, the verbalised parser."""

import math

import numpy as np
import pytest
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
