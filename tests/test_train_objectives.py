"""Training objectives and loss weights (issue 14 items 1-2): the distribution objective's soft
cross-entropy against the evaluation engine's option probabilities, and the reweighting schemes
against their formulas, by hand."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from sgvalues import train as T
from sgvalues.train.loop import _schedule

from test_train import make_sample, tiny_params, write_run
from factories import params_error


def soft_sample(q: int, group: str, n_options: int, shares: dict, n_valid: int = 40) -> dict:
    s = make_sample(q, group, max(shares, key=shares.get), n_options)
    return dict(s, distribution={str(k): v for k, v in shares.items()}, n_valid=n_valid)


#: a binary, a 4-option and a 1-10 question (whose "10" is two tokens for SmolLM2), two subgroups each
SOFT_SAMPLES = [
    soft_sample(1, "sex:Male", 2, {1: 0.7, 2: 0.3}, 300),
    soft_sample(1, "sex:Female", 2, {1: 0.4, 2: 0.6}, 100),
    soft_sample(2, "sex:Male", 4, {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4}, 280),
    soft_sample(2, "sex:Female", 4, {2: 0.5, 4: 0.5}, 120),
    soft_sample(3, "sex:Male", 10, {1: 0.2, 5: 0.3, 10: 0.5}, 250),
    soft_sample(3, "sex:Female", 10, {10: 1.0}, 150),
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- params


@pytest.mark.parametrize("body,key", [
    ("training:\n  objective: soft_labels\n", "training.objective"),
    ("training:\n  reweight: inverse\n", "training.reweight"),
])
def test_unknown_objective_or_reweight_names_file_key_and_choices(tmp_path, body, key):
    path, msg = params_error(tmp_path, body)
    assert path in msg and key in msg and "expected one of" in msg


def test_defaults_keep_todays_recipe_and_fingerprint():
    p = tiny_params()
    assert (p.training.objective, p.training.reweight) == ("modal", "none")
    # the new settings at their defaults leave an existing adapter's fingerprint as it was
    fp = T.inputs_fingerprint(p, SOFT_SAMPLES)
    assert T.inputs_fingerprint(tiny_params(objective="modal", reweight="none"), SOFT_SAMPLES) == fp
    assert T.inputs_fingerprint(tiny_params(objective="distribution"), SOFT_SAMPLES) != fp
    assert T.inputs_fingerprint(tiny_params(reweight="inverse_size"), SOFT_SAMPLES) != fp


# ----------------------------------------------------------------------------- weights


def test_inverse_size_weights_equal_the_formula_by_hand():
    samples = [{"sample_id": f"s{i}", "question_id": q, "stratum": st, "subgroup": g, "n_valid": n}
               for i, (q, st, g, n) in enumerate([
                   ("Q1", "sex", "sex:Male", 300), ("Q1", "sex", "sex:Female", 100),
                   ("Q1", "age", "age:a", 50), ("Q1", "age", "age:b", 50), ("Q1", "age", "age:c", 100),
                   ("Q2", "sex", "sex:Male", 90), ("Q2", "sex", "sex:Female", 10)])]
    # N_s / (G_s n_g) within (question, stratum): 400/(2*300), 400/(2*100); 200/(3*50), 200/(3*50),
    # 200/(3*100); 100/(2*90), 100/(2*10)
    raw = np.array([2 / 3, 2.0, 4 / 3, 4 / 3, 2 / 3, 100 / 180, 5.0])
    np.testing.assert_allclose(T.sample_weights(samples, "inverse_size"), raw / raw.mean())
    assert T.sample_weights(samples, "inverse_size").mean() == pytest.approx(1.0)
    np.testing.assert_array_equal(T.sample_weights(samples, "none"), np.ones(7))
    bad = [dict(samples[0], n_valid=0)] + samples[1:]
    with pytest.raises(T.TrainError, match=r"sample s0: key 'n_valid' = 0"):
        T.sample_weights(bad, "inverse_size")
    # equal subgroups weigh 1 per sample in any stratum: total weight = its number of subgroups, not
    # its square (the old N_s / n_g gave 2 x 2 = 4 to sex and 6 x 6 = 36 to a six-level stratum)
    flat = [{"sample_id": f"e{i}", "question_id": "Q1", "stratum": st, "subgroup": f"{st}:{i}", "n_valid": 30}
            for st, k in (("sex", 2), ("pair", 6)) for i in range(k)]
    w = T.sample_weights(flat, "inverse_size")
    np.testing.assert_allclose(w, np.ones(8))


def test_error_weights_are_the_base_nmae_normalised_to_mean_one():
    samples = [{"sample_id": f"s{i}", "question_id": f"Q{i % 2}", "stratum": "sex", "subgroup": g, "n_valid": 40}
               for i, g in enumerate(["sex:Male", "sex:Female", "sex:Male", "sex:Other"])]
    nmae = {"sex:Male": 0.1, "sex:Female": 0.4, "sex:Other": 0.2}
    raw = np.array([0.1, 0.4, 0.1, 0.2])
    np.testing.assert_allclose(T.sample_weights(samples, "error", nmae), raw / raw.mean())
    with pytest.raises(T.TrainError, match=r"no base-model NMAE for subgroup\(s\) \['sex:Other'\]"):
        T.sample_weights(samples, "error", {"sex:Male": 0.1, "sex:Female": 0.4})
    with pytest.raises(T.TrainError, match="NMAE is 0 on every"):
        T.sample_weights(samples, "error", dict.fromkeys(nmae, 0.0))


# ----------------------------------------------------------------------------- the distribution loss


@pytest.fixture(scope="module")
def model_and_tokenizer():
    model, tok = T.build_model(tiny_params(lora_dropout=0.0))
    return model.eval(), tok  # a fresh adapter (B = 0): the base model's function


@pytest.fixture(scope="module")
def engine_probs():
    """The evaluation engine's option probabilities (base model) for every SOFT_SAMPLES prompt."""
    from sgvalues.evaluate import sample_request
    from sgvalues.models.hf import HFModel

    engine = HFModel(tiny_params().model)
    try:
        answers = engine.score_answers([sample_request(s) for s in SOFT_SAMPLES])
        return [dict(a.probs) for a in answers]
    finally:
        engine.close()


def _soft_ce(probs: dict, shares: dict) -> float:
    total = sum(shares.values())
    return -sum(v / total * math.log(probs[c]) for c, v in shares.items() if v > 0)


@pytest.mark.slow
def test_distribution_loss_equals_soft_cross_entropy_on_the_engines_probabilities(model_and_tokenizer,
                                                                                  engine_probs):
    import torch

    model, tok = model_and_tokenizer
    examples = [T.encode_distribution_sample(tok, s) for s in SOFT_SAMPLES]
    # the 1-10 question reads one extra position, after "1"; the others none
    assert [e.n_answer for e in examples] == [0, 0, 0, 0, 1, 1]
    assert [len(e.soft) for e in examples] == [2, 2, 4, 4, 10, 10]
    want = [_soft_ce(engine_probs[i], s["distribution"]) for i, s in enumerate(SOFT_SAMPLES)]
    with torch.no_grad():
        loss, n = T.distribution_loss(model, T.collate(examples, tok.pad_token_id))
        assert int(n) == 6
        assert float(loss) == pytest.approx(sum(want), rel=1e-4)
        # one question's subgroups through the shared prefix: the same losses
        for pair in ((0, 1), (2, 3), (4, 5)):
            shared, _ = T.distribution_loss(model, T.collate_shared([examples[i] for i in pair], tok.pad_token_id))
            assert float(shared) == pytest.approx(sum(want[i] for i in pair), rel=1e-4)
        # weights multiply each row's loss
        weighted = [dataclasses.replace(e, weight=w) for e, w in zip(examples, (0.5, 2, 1, 1, 3, 0.25))]
        loss_w, _ = T.distribution_loss(model, T.collate(weighted, tok.pad_token_id))
        assert float(loss_w) == pytest.approx(float(np.dot((0.5, 2, 1, 1, 3, 0.25), want)), rel=1e-4)


@pytest.mark.slow
def test_one_hot_distribution_is_the_modal_answers_cross_entropy_over_the_options(model_and_tokenizer,
                                                                                 engine_probs):
    import torch

    model, tok = model_and_tokenizer
    for i in (0, 2, 5):  # binary, 4 options, and the two-token "10"
        target = str(SOFT_SAMPLES[i]["target"])
        one_hot = dict(SOFT_SAMPLES[i], distribution={target: 1.0})
        ex = T.encode_distribution_sample(tok, one_hot)
        with torch.no_grad():
            loss, _ = T.distribution_loss(model, T.collate([ex], tok.pad_token_id))
            modal, _ = T.answer_loss(model, T.collate([T.encode_sample(tok, one_hot)], tok.pad_token_id))
        assert float(loss) == pytest.approx(-math.log(engine_probs[i][target]), rel=1e-4)
        # renormalised over the options, the target is likelier than over the whole vocabulary
        # (the modal loss also pays for the end-of-turn token)
        assert float(loss) <= float(modal)


@pytest.mark.slow
def test_weighted_modal_loss_is_the_weighted_sum_of_row_losses(model_and_tokenizer):
    import torch

    model, tok = model_and_tokenizer
    examples = [T.encode_sample(tok, s) for s in SOFT_SAMPLES[:4]]
    w = (0.25, 1.5, 2.0, 0.25)
    with torch.no_grad():
        rows = [T.answer_loss(model, T.collate([e], tok.pad_token_id)) for e in examples]
        weighted = [dataclasses.replace(e, weight=x) for e, x in zip(examples, w)]
        loss, n = T.answer_loss(model, T.collate(weighted, tok.pad_token_id))
    assert float(loss) == pytest.approx(sum(x * float(r) for x, (r, _) in zip(w, rows)), rel=1e-4)
    assert int(n) == sum(int(k) for _, k in rows)


def test_bad_distribution_is_a_clear_error():
    class Tok:  # never reached: the sample is checked first
        pass

    bad = dict(SOFT_SAMPLES[0], distribution={"7": 1.0})
    with pytest.raises(T.TrainError, match=r"sample Q1_sex:Male: key 'distribution' .* mass on the options"):
        T.encode_distribution_sample(Tok(), bad)
    with pytest.raises(T.TrainError, match=r"key 'distribution' = \{\}"):
        T.encode_distribution_sample(Tok(), dict(SOFT_SAMPLES[0], distribution={}))


@pytest.mark.slow
@pytest.mark.parametrize("share_prefix", [True, False])
def test_train_run_distribution_objective_with_inverse_size_weights(tmp_path, share_prefix, engine_probs):
    params = tiny_params(objective="distribution", reweight="inverse_size", share_prefix=share_prefix,
                         lora_dropout=0.0, max_steps=1, grad_accum=1, batch_size=2, save_every=0)
    run = write_run(tmp_path, SOFT_SAMPLES)
    T.train_run(params, run, verbose=False)
    weights = T.sample_weights(SOFT_SAMPLES, "inverse_size")
    # step 1 (LoRA B = 0): the weighted mean over the first batch of the base model's soft
    # cross-entropies, taken here from the engine's probabilities
    if share_prefix:
        questions = [s["question_id"] for s in SOFT_SAMPLES]
        order, _ = _schedule(1, 3, 2, [0] * 6, params.seed, questions)
    else:
        tok = _tok()
        lengths = [len(T.encode_distribution_sample(tok, s)) for s in SOFT_SAMPLES]
        order, _ = _schedule(1, 3, 2, lengths, params.seed, None)
    batch = order[0]
    want = sum(weights[i] * _soft_ce(engine_probs[i], SOFT_SAMPLES[i]["distribution"]) for i in batch) / len(batch)
    log = T.read_train_log(run)
    assert log["loss"].iloc[0] == pytest.approx(want, rel=1e-4)
    summary = json.loads((run / "train_summary.json").read_text())
    assert (summary["objective"], summary["reweight"]) == ("distribution", "inverse_size")
    assert summary["weight_max"] == pytest.approx(weights.max(), abs=1e-6)
    table = np.genfromtxt(run / "train_weights.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    got = {str(g): float(w) for g, w in zip(table["subgroup"], table["weight"])}
    for g in ("sex:Male", "sex:Female"):
        assert got[g] == pytest.approx(np.mean([w for s, w in zip(SOFT_SAMPLES, weights) if s["subgroup"] == g]),
                                       abs=1e-6)


def _tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(T.resolve_model_path("smollm2-135m"))


@pytest.mark.slow
def test_error_reweighting_weights_by_the_base_models_nmae_per_subgroup(tmp_path):
    import pandas as pd

    from sgvalues.evaluate import load_predictions, predictions_path

    params = tiny_params(reweight="error", max_steps=1, grad_accum=1, batch_size=2, save_every=0)
    params = dataclasses.replace(params, model=dataclasses.replace(params.model, cpu_threads=1))
    run = write_run(tmp_path, SOFT_SAMPLES)
    T.train_run(params, run, verbose=False)
    # the first pass: the base model over the train split, NMAE per subgroup computed here by hand
    df = load_predictions(predictions_path(run, "base-weights", "train"))
    assert sorted(df["sample_id"]) == sorted(s["sample_id"] for s in SOFT_SAMPLES)
    err = (df["prediction"] - df["target"]).abs() / (df["scale_max"] - df["scale_min"])
    nmae = err.groupby(df["subgroup"]).mean()
    want = np.array([nmae[s["subgroup"]] for s in SOFT_SAMPLES])
    want = want / want.mean()
    got = pd.read_csv(run / "train_weights.csv").set_index("subgroup")["weight"]
    for g in ("sex:Male", "sex:Female"):
        assert got[g] == pytest.approx(want[[s["subgroup"] == g for s in SOFT_SAMPLES]].mean(), abs=1e-6)
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["reweight"] == "error" and summary["objective"] == "modal"


@pytest.mark.slow
def test_distribution_training_moves_the_engines_option_distribution_towards_the_shares(tmp_path, engine_probs):
    """A few steps on the distribution objective lower the soft cross-entropy that the evaluation
    engine's probabilities (adapter merged) have against the samples' answer shares."""
    from sgvalues.evaluate import sample_request
    from sgvalues.models.hf import HFModel

    params = tiny_params(objective="distribution", lora_dropout=0.0, max_steps=6, grad_accum=1, batch_size=2,
                         save_every=0, lr=1e-2)
    adapter = T.train_run(params, write_run(tmp_path, SOFT_SAMPLES), verbose=False)
    engine = HFModel(params.model, adapter=adapter)
    try:
        tuned = [dict(a.probs) for a in engine.score_answers([sample_request(s) for s in SOFT_SAMPLES])]
    finally:
        engine.close()
    before = np.mean([_soft_ce(p, s["distribution"]) for p, s in zip(engine_probs, SOFT_SAMPLES)])
    after = np.mean([_soft_ce(p, s["distribution"]) for p, s in zip(tuned, SOFT_SAMPLES)])
    assert after < before - 0.1
