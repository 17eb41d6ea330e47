"""Option-order robustness: reordered prompts, answers mapped back, the order effect by hand."""

import json

import pandas as pd
import pytest

from sgvalues import option_order
from sgvalues.metrics import accuracy, nmae
from sgvalues.models.base import Answer, Model
from sgvalues.prompts import structured_prompt

LABELS = {"1": "Strongly agree", "2": "Agree", "3": "Disagree", "4": "Strongly disagree"}


def make_samples(targets=(1, 2, 4)):
    out = []
    for i, t in enumerate(targets):
        prompt = structured_prompt({"wording": f"Question {i}?", "options": LABELS}, {"sex": "Female"})
        out.append({"sample_id": f"Q{i}|sex:Female", "split": "ood", "question_id": f"Q{i}", "theme": "T",
                    "stratum": "sex", "subgroup": "sex:Female", "levels": {"sex": "Female"}, "target": t,
                    "scale_min": 1, "scale_max": 4, "options": dict(LABELS),
                    "distribution": {"1": 0.1, "2": 0.2, "3": 0.3, "4": 0.4}, **prompt})
    return out


def _listed(request) -> list[tuple[str, str]]:
    """(shown code, label) pairs as the prompt lists them."""
    block = request.messages[-1]["content"].split("Options:\n", 1)[1].split("\n\n", 1)[0]
    return [tuple(line.split(". ", 1)) for line in block.splitlines()]


class FirstListed(Model):
    """Position bias: 0.7 on the first listed option, the rest shared evenly."""

    model_id = "first-listed"

    def score_options(self, requests):
        out = []
        for r in requests:
            first = _listed(r)[0][0]
            rest = 0.3 / (len(r.option_codes) - 1)
            out.append({c: (0.7 if c == first else rest) for c in r.option_codes})
        return out


class ReadsLabels(Model):
    """Reads the options: always the code whose label is 'Agree'."""

    model_id = "reads-labels"

    def score_options(self, requests):
        out = []
        for r in requests:
            agree = next(code for code, label in _listed(r) if label == "Agree")
            out.append({c: (0.9 if c == agree else 0.1 / 3) for c in r.option_codes})
        return out


def test_reversed_prompt_lists_labels_backwards_and_keeps_the_rest():
    s = make_samples()[0]
    r = option_order.reorder_sample(s, "reversed")
    assert [label for _, label in _listed(type("R", (), {"messages": [{"content": r["user_shared"]}]}))] == \
        [LABELS[c] for c in ("4", "3", "2", "1")]
    head, tail = s["user_shared"].split("Options:")[0], s["user_shared"].split("\n\n")[-2]
    assert r["user_shared"].startswith(head) and r["user_shared"].split("\n\n")[-2] == tail
    # target 1 ("Strongly agree") is listed 4th when reversed; the distribution moves with it
    assert r["target"] == 4 and r["distribution"] == {"1": 0.4, "2": 0.3, "3": 0.2, "4": 0.1}
    assert r["user_persona"] == s["user_persona"]
    assert option_order.reorder_sample(s, "as_asked")["user_shared"] == s["user_shared"]


def test_unknown_order_and_unrendered_options_are_clear_errors():
    s = make_samples()[0]
    with pytest.raises(ValueError, match="shuffled.*as_asked, reversed"):
        option_order.reorder_sample(s, "shuffled")
    with pytest.raises(ValueError, match="Q0\\|sex:Female.*format_options"):
        option_order.reorder_sample({**s, "user_shared": "Q?\n1) a\n"}, "reversed")


def test_position_bias_changes_every_answer_and_averaging_removes_it():
    samples = make_samples(targets=(1, 2, 4))
    table = option_order.evaluate_option_orders(samples, FirstListed())
    pred = table.pivot(index="sample_id", columns="option_order", values="prediction")
    assert set(pred["as_asked"]) == {1} and set(pred["reversed"]) == {4}   # first listed, mapped back
    # averaged: codes 1 and 4 both (0.7 + 0.1) / 2 = 0.4, 2 and 3 get 0.1: tie to the lowest code
    avg = table[table.option_order == option_order.AVERAGED]
    assert set(avg["prediction"]) == {1}
    assert json.loads(avg["probs"].iloc[0]) == pytest.approx({"1": 0.4, "2": 0.1, "3": 0.1, "4": 0.4})
    effect = option_order.order_effect(table).set_index("option_order")
    assert effect.loc["as_asked", "changed"] == 0.0 and effect.loc["reversed", "changed"] == 1.0
    targets = [s["target"] for s in samples]
    assert effect.loc["as_asked", "accuracy"] == pytest.approx(accuracy([1, 1, 1], targets))
    assert effect.loc["reversed", "accuracy"] == pytest.approx(accuracy([4, 4, 4], targets))
    assert effect.loc["reversed", "nmae"] == pytest.approx(nmae([4, 4, 4], targets, [1] * 3, [4] * 3))
    # targets and distributions stay on the original scale in every row
    assert (table.groupby("sample_id")["target"].nunique() == 1).all()
    assert set(table["distribution"]) == {json.dumps({"1": 0.1, "2": 0.2, "3": 0.3, "4": 0.4})}


def test_a_model_that_reads_the_labels_is_order_robust():
    samples = make_samples(targets=(2, 2, 3))
    table = option_order.evaluate_option_orders(samples, ReadsLabels())
    effect = option_order.order_effect(table).set_index("option_order")
    assert list(effect.index) == ["as_asked", "order_averaged", "reversed"]
    assert (effect["changed"] == 0).all()
    assert list(effect["accuracy"]) == pytest.approx([2 / 3] * 3)


def test_order_effect_by_state_and_generate_mode_has_no_average():
    samples = make_samples()

    class Says(Model):
        model_id = "says"

        def generate_answers(self, requests):
            return [Answer(text=_listed(r)[1][0]) for r in requests]   # the second listed option

    gen = option_order.evaluate_option_orders(samples, Says(), mode="generate")
    assert set(gen["option_order"]) == {"as_asked", "reversed"}            # no probs: no average
    assert set(gen.loc[gen.option_order == "reversed", "prediction"]) == {3}
    both = pd.concat([gen.assign(tag="a"), gen.assign(tag="b")])
    effect = option_order.order_effect(both, by=["tag"])
    assert len(effect) == 4 and set(effect.loc[effect.option_order == "reversed", "changed"]) == {1.0}


def test_prepared_synthetic_samples_reorder(tmp_path):
    """Every real sample of a prepared folder (synthetic data through the real loader) reorders."""
    from sgvalues.prepare import prepare
    from sgvalues.split import load_samples
    from sgvalues.synthetic import write_sample

    src = write_sample(tmp_path / "wvs.csv", n=600, seed=3)
    prepare(src, tmp_path / "prepared", min_n=30)
    samples = load_samples(tmp_path / "prepared", "ood")[:200]
    assert samples
    for s in samples:
        r = option_order.reorder_sample(s, "reversed")
        codes = sorted(s["options"], key=int)
        assert r["options"][codes[0]] == s["options"][codes[-1]]
        assert r["user_shared"] != s["user_shared"] or len(codes) == 1


def test_option_orders_validated_in_params():
    from sgvalues.params import Params, ParamsError

    p = Params.from_dict({"name": "x", "evaluation": {"option_orders": ["as_asked", "reversed"]}})
    assert p.evaluation.option_orders == ("as_asked", "reversed")
    assert Params.from_dict({"name": "x"}).evaluation.option_orders == ("as_asked",)
    for bad in (["sideways"], [], ["reversed", "reversed"]):
        with pytest.raises(ParamsError, match="option_orders"):
            Params.from_dict({"name": "x", "evaluation": {"option_orders": bad}})


@pytest.mark.slow
def test_run_orders_with_the_embedded_model_match_the_ordinary_evaluation(tmp_path):
    """The as-asked rows are the ordinary predictions (same samples, same engine); reversed rows
    are valid distributions on the original codes."""
    from sgvalues.evaluate import evaluate_run
    from sgvalues.models.cache import ResponseCache
    from sgvalues.params import load_params
    from sgvalues.prepare import ensure_prepared

    params = load_params("params/smoke.yaml")
    run = tmp_path / "run"
    ensure_prepared(params, run)
    q = [json.loads(line)["question_id"] for line in (run / "data" / "samples_ood.jsonl").open()][0]
    cache = ResponseCache(tmp_path / "cache.sqlite")
    plain = evaluate_run(params, run, "ood", "base", questions=[q], cache=cache, log=None)
    table = option_order.evaluate_run_orders(params, run, "ood", "base", questions=[q], cache=cache)
    assert option_order.orders_path(run, "base", "ood").is_file()
    asked = table[table.option_order == "as_asked"].reset_index(drop=True)
    assert list(asked["sample_id"]) == list(plain["sample_id"])
    assert list(asked["prediction"]) == list(plain["prediction"])
    rev = table[table.option_order == "reversed"]
    for p in rev["probs"]:
        shares = json.loads(p)
        assert sum(shares.values()) == pytest.approx(1.0, abs=1e-4)
        assert list(shares) == sorted(shares, key=int)
    effect = option_order.order_effect(table).set_index("option_order")
    by_hand = float((rev.set_index("sample_id")["prediction"]
                     != asked.set_index("sample_id")["prediction"]).mean())
    assert effect.loc["reversed", "changed"] == pytest.approx(by_hand)


@pytest.mark.parametrize("options", [
    {"1": "Strongly agree", "2": "Agree", "3": "Disagree", "4": "Strongly disagree"},   # 4-option
    {"1": "Yes", "2": "No"},                                                          # binary
    {str(i): ("Never justifiable" if i == 1 else "Always justifiable" if i == 10 else str(i))
     for i in range(1, 11)},                                                          # 1-10 scale
])
def test_reversing_maps_codes_and_twice_is_the_identity(options):
    codes = sorted(options, key=int)
    k = len(codes)
    prompt = structured_prompt({"wording": "Q?", "options": options}, {"sex": "Male"})
    s = {"sample_id": "Q|sex:Male", "options": dict(options), "target": int(codes[0]),
         "distribution": {c: (i + 1) / (k * (k + 1) / 2) for i, c in enumerate(codes)}, **prompt}
    mapping = option_order.code_map(options, "reversed")
    # shown code i means original code k + 1 - i (codes 1..k)
    assert mapping == {c: str(k + 1 - int(c)) for c in codes}
    once = option_order.reorder_sample(s, "reversed")
    assert once["options"]["1"] == options[codes[-1]] and once["target"] == k
    twice = option_order.reorder_sample({**once, "options": once["options"]}, "reversed")
    for key in ("options", "user_shared", "target", "distribution"):
        assert twice[key] == s[key], key


@pytest.mark.slow
def test_sgvalues_evaluate_runs_the_orders_the_params_ask_for(tmp_path, capsys):
    import argparse

    import yaml

    from sgvalues import evaluate, evaluate_cli
    from sgvalues.prepare import ensure_prepared
    from sgvalues.params import load_params

    raw = yaml.safe_load(open("params/smoke.yaml"))
    raw["evaluation"]["option_orders"] = ["as_asked", "reversed"]
    pfile = tmp_path / "orders.yaml"
    pfile.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    ensure_prepared(load_params(pfile), run)
    args = argparse.Namespace(params=str(pfile), run_dir=str(run), split="ood", tag="base", adapter=None, limit=8,
                              mode=None, no_cache=True)
    assert evaluate_cli.main(args) == 0
    plain = evaluate.load_predictions(evaluate.predictions_path(run, "base", "ood"))
    orders = pd.read_csv(option_order.orders_path(run, "base", "ood"))
    asked = orders[orders.option_order == "as_asked"]
    assert list(asked["sample_id"]) == list(plain["sample_id"]) and len(plain) == 8
    assert list(asked["prediction"]) == list(plain["prediction"])
    assert set(orders["option_order"]) == {"as_asked", "reversed", "order_averaged"}
    assert "changed" in capsys.readouterr().out
