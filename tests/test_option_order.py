"""Option-order robustness: reordered prompts, answers mapped back, the order effect by hand."""

import json

import numpy as np
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


# --- codes versus positions: the two families, permutations, anchors, near-ties ---------------------------------

def _lines(prompt: str) -> list[tuple[str, str]]:
    """(code, label) of each option line as the prompt text lists them; a bare "2." has label ""."""
    block = prompt.split("Options:\n", 1)[1].split("\n\n", 1)[0]
    out = []
    for line in block.splitlines():
        code, _, label = line.partition(".")
        out.append((code.strip(), label.strip()))
    return out


def _claims(prompt: str) -> dict[str, str]:
    """What the wording says each code means: phrase after 'N means' / '"N" is' -> N (the test's own parser)."""
    wording = prompt.split("\n\nOptions:\n", 1)[0]
    words = wording.replace("\u201c", '"').replace("\u201d", '"').split()
    claims = {}
    for i, w in enumerate(words[:-1]):
        bare = w.strip('"')
        if bare.isdigit() and words[i + 1] in ("means", "is") and (i == 0 or not words[i - 1].endswith("-")):
            after = []
            for nxt in words[i + 2:i + 8]:
                if nxt.strip('".,;:').isdigit():       # the next anchor's code ends this phrase
                    break
                after.append(nxt)
            phrase = " ".join(after).lower()
            claims[phrase] = bare
    return claims


def contradictions(asked: str, shown: str) -> list[str]:
    """Anchor phrases whose code shows another option than the as-asked prompt's code for that phrase."""
    asked_lines, shown_lines = dict(_lines(asked)), dict(_lines(shown))
    out = []
    for phrase, code in _claims(asked).items():
        shown_code = _claims(shown).get(phrase)
        if shown_code is None or shown_lines.get(shown_code) != asked_lines[code]:
            out.append(f"{phrase!r}: {code} as asked ({asked_lines[code]!r}) but {shown_code} shows "
                       f"{shown_lines.get(shown_code)!r}")
    return out


def _catalogue_samples():
    from sgvalues.catalogue import load_catalogue

    out = []
    for row in load_catalogue().itertuples():
        options = row.options if isinstance(row.options, dict) else json.loads(row.options)
        options = {str(k): str(v) for k, v in options.items()}
        if len(options) < 2:
            continue
        prompt = structured_prompt({"wording": row.wording, "options": options}, {"sex": "Female"})
        out.append({"sample_id": f"{row.question_id}_sex:Female", "question_id": row.question_id,
                    "subgroup": "sex:Female", "wording": row.wording, "options": options,
                    "target": int(sorted(options, key=int)[0]), **prompt})
    return out


def test_no_reordered_catalogue_prompt_contradicts_itself():
    """Every catalogue question under every order and permutation: the wording's anchors name the codes
    whose lines carry those anchors' options, and no relabelled line shows a bare number under another code."""
    samples = _catalogue_samples()
    rewritten, excluded = set(), set()
    for s in samples:
        for order in option_order.ORDERS:
            for index in (1, 2, 3) if order in option_order.PERMUTED else (0,):
                ok, _ = option_order.order_eligibility(s, order)
                if not ok:
                    excluded.add((s["question_id"], order))
                    continue
                r = option_order.reorder_sample(s, order, index=index)
                shown = r["user_shared"]
                assert not contradictions(s["user_shared"], shown), (s["question_id"], order)
                lines = _lines(shown)
                assert sorted(c for c, _ in lines) == sorted(s["options"])                 # each code once
                assert all(not label.isdigit() or label == code for code, label in lines)  # no "2. 9"
                if r["wording"] != s["wording"]:
                    rewritten.add(s["question_id"])
    # by hand from the catalogue: the 28 scale_1_10 items whose wording says "1 means ... 10 means ..."
    # (Q48, Q49, Q106-Q110, Q112, Q120, Q158-Q164, Q241-Q252) are rewritten; all 51 scale_1_10 items are
    # left out of both random permutations, nothing else is left out
    assert rewritten == {f"Q{n}" for n in [48, 49, *range(106, 111), 112, 120, *range(158, 165), *range(241, 253)]}
    from sgvalues.catalogue import load_catalogue

    ten = set(load_catalogue().query("scale_kind == 'scale_1_10'")["question_id"])
    assert len(ten) == 51
    assert excluded == {(q, o) for q in ten for o in option_order.PERMUTED}


def test_the_checker_catches_the_old_contradictory_reversal():
    """The reversal as it was (lines relabelled, wording untouched) is flagged: the checker can fail."""
    s = next(x for x in _catalogue_samples() if x["question_id"] == "Q158")
    lines = _lines(s["user_shared"])
    labels = [label or code for code, label in lines][::-1]
    old = s["user_shared"].split("Options:\n")[0] + "Options:\n" + "\n".join(
        f"{i + 1}. {lab}" for i, lab in enumerate(labels)) + "\n\n" + s["user_shared"].split("\n\n", 2)[2]
    assert "1. Completely agree\n2. 9\n" in old
    assert len(contradictions(s["user_shared"], old)) == 2


def test_a_reversed_ten_point_scale_reverses_its_anchor_wording_by_hand():
    s = next(x for x in _catalogue_samples() if x["question_id"] == "Q158")
    r = option_order.reorder_sample(s, "reversed")
    assert 'a 10 means that you "completely disagree" and a 1 means that you "completely agree."' in r["user_shared"]
    assert _lines(r["user_shared"]) == [("1", "Completely agree"), *[(str(c), "") for c in range(2, 10)],
                                        ("10", "Completely disagree")]
    assert r["code_map"]["1"] == "10" and r["code_map"]["3"] == "8" and r["target"] == 10   # target 1 -> shown 10
    same = option_order.reorder_sample(s, "reversed_lines")                 # codes keep their options
    assert same["user_shared"].split("\n\nOptions:")[0] == s["user_shared"].split("\n\nOptions:")[0]
    assert _lines(same["user_shared"]) == [("10", "Completely agree"), *[(str(c), "") for c in range(9, 1, -1)],
                                           ("1", "Completely disagree")]
    assert same["target"] == 1 and same["code_map"] == {str(c): str(c) for c in range(10, 0, -1)}


def test_permuted_prompts_and_mapping_back_by_hand():
    s = make_samples(targets=(3,))[0]
    codes = ["1", "2", "3", "4"]
    for index in (1, 2, 3):
        perm = option_order.permutation(4, "Q0", seed=5, index=index)
        assert sorted(perm) == [0, 1, 2, 3] and perm != [0, 1, 2, 3]
        originals = [codes[i] for i in perm]                  # the option on each line, top to bottom
        rel = option_order.reorder_sample(s, "permuted", seed=5, index=index)
        assert _lines(rel["user_shared"]) == [(str(j + 1), LABELS[o]) for j, o in enumerate(originals)]
        assert rel["target"] == originals.index("3") + 1        # "Disagree" moved with its line
        same = option_order.reorder_sample(s, "permuted_lines", seed=5, index=index)
        assert _lines(same["user_shared"]) == [(o, LABELS[o]) for o in originals]
        assert same["target"] == 3 and rel["permutation"] == same["permutation"] == index
    assert option_order.permutation(4, "Q0", 5, 1) == option_order.permutation(4, "Q0", 5, 1)
    assert len({tuple(option_order.permutation(6, "Q0", s_, 1)) for s_ in range(20)}) > 1   # the seed matters

    # a model that answers the first line: its answer mapped back is the option on the first line
    table = option_order.evaluate_option_orders([s], FirstListed(), ["as_asked", "permuted", "permuted_lines"],
                                                seed=5)
    for order in ("permuted", "permuted_lines"):
        rows = table[table.option_order == order].sort_values("permutation")
        firsts = [codes[option_order.permutation(4, "Q0", 5, i)[0]] for i in (1, 2, 3)]
        assert list(rows["prediction"]) == [int(c) for c in firsts]
        assert set(rows["position"]) == {1}
        assert list(rows["shown_prediction"]) == ([1, 1, 1] if order == "permuted" else [int(c) for c in firsts])


class AlwaysOne(Model):
    """Code bias: 0.7 on the code "1" wherever its line stands."""

    model_id = "always-one"

    def score_options(self, requests):
        return [{c: (0.7 if c == "1" else 0.3 / (len(r.option_codes) - 1)) for c in r.option_codes}
                for r in requests]


@pytest.mark.parametrize("model, supported", [(ReadsLabels(), "content"), (AlwaysOne(), "code"),
                                              (FirstListed(), "position")])
def test_the_two_families_separate_content_codes_and_positions(model, supported):
    samples = make_samples(targets=(1, 2, 4))
    table = option_order.evaluate_option_orders(samples, model, option_order.ORDERS, seed=1)
    expl = option_order.order_explanation(table).iloc[0]
    assert expl["support"] == supported and expl[supported] == 1.0
    assert expl["n_samples"] == 3 and expl["n_prompts"] == 3 * (1 + 1 + 3 + 3)
    effect = option_order.order_effect(table).set_index("option_order")
    if supported == "code":          # same codes, lines reordered: the code-1 model does not move at all
        assert effect.loc["reversed_lines", "changed"] == 0 and effect.loc["permuted_lines", "changed"] == 0
        assert effect.loc["reversed", "changed"] == 1 and effect.loc["reversed", "same_position"] == 1
    if supported == "position":      # the first line: reversed puts "Strongly disagree" there in both families
        assert effect.loc["reversed", "same_code"] == 1 and effect.loc["reversed_lines", "same_code"] == 0
        assert set(table.loc[table.option_order.isin(["reversed", "reversed_lines"]), "prediction"]) == {4}


def test_extra_orders_only_on_the_seeded_subset():
    samples = make_samples(targets=(1, 2, 4, 3))
    for i, s in enumerate(samples):                        # two questions, two subgroups each
        s.update(question_id=f"Q{i % 2}", subgroup=f"sex:{'Female' if i < 2 else 'Male'}", sample_id=f"s{i}")
    subset = option_order.order_subset(samples, 1, seed=0)
    assert len(subset) == 2 and {samples[int(i[1])]["question_id"] for i in subset} == {"Q0", "Q1"}
    assert option_order.order_subset(samples, None) == {"s0", "s1", "s2", "s3"}
    table = option_order.evaluate_option_orders(samples, ReadsLabels(), option_order.ORDERS, subset=subset)
    counts = table.groupby("option_order")["sample_id"].agg(lambda x: set(x))
    assert counts["as_asked"] == counts["reversed"] == {"s0", "s1", "s2", "s3"}
    assert counts["reversed_lines"] == counts["permuted"] == counts["permuted_lines"] == subset
    assert (table["option_order"] == "permuted").sum() == 2 * 3
    plan = option_order.order_plan(samples, option_order.ORDERS, subset).set_index(["question_id", "option_order"])
    assert plan.loc[("Q0", "permuted"), "n_prompts"] == 3 and plan.loc[("Q0", "reversed"), "n_prompts"] == 2


def test_near_ties_and_the_averaged_ten_point_scale_by_hand():
    """On a 1-10 item a first-line model puts 0.7 on code 1 as asked and on code 10 reversed: the average is
    a dead heat between the two ends (0.35 + 0.3/18 each), decided by the tie rule."""
    s = next(x for x in _catalogue_samples() if x["question_id"] == "Q49")
    s.update(split="ood", stratum="sex", levels={"sex": "Female"}, scale_min=1, scale_max=10, target=8,
             distribution={str(c): 0.1 for c in range(1, 11)})
    table = option_order.evaluate_option_orders([s], FirstListed())
    avg = table[table.option_order == option_order.AVERAGED].iloc[0]
    probs = json.loads(avg["probs"])
    end = (0.7 + 0.3 / 9) / 2
    assert probs["1"] == pytest.approx(end, abs=1e-6) and probs["10"] == pytest.approx(end, abs=1e-6)
    assert avg["prediction"] == 1
    effect = option_order.order_effect(table).set_index("option_order")
    assert effect.loc[option_order.AVERAGED, "near_ties"] == 1.0 and effect.loc["as_asked", "near_ties"] == 0.0
    # near-tie share by hand: gaps 0.02, 0.10, 0.049, none
    t = pd.DataFrame({"sample_id": list("abcd"), "option_order": "as_asked", "prediction": [1, 1, 2, 1],
                      "target": 1, "scale_min": 1, "scale_max": 3, "status": "ok",
                      "probs": ['{"1": 0.40, "2": 0.38, "3": 0.22}', '{"1": 0.5, "2": 0.4, "3": 0.1}',
                                '{"1": 0.3, "2": 0.349, "3": 0.351}', ""]})
    assert option_order.order_effect(t)["near_ties"].iloc[0] == pytest.approx(2 / 3)
    assert option_order.top_two_gap(t["probs"][2]) == pytest.approx(0.002)


def test_new_option_order_params_are_validated():
    from sgvalues.params import Params, ParamsError

    ev = Params.from_dict({"name": "x", "evaluation": {"option_orders": list(option_order.ORDERS),
                                                       "option_permutations": 4, "option_order_subgroups": 10}})
    assert ev.evaluation.option_permutations == 4 and ev.evaluation.option_order_subgroups == 10
    assert Params.from_dict({"name": "x"}).evaluation.option_order_subgroups is None
    for bad, match in (({"option_permutations": 2}, "option_permutations = 2: expected an integer >= 3"),
                       ({"option_permutations": "three"}, "option_permutations.*expected int"),
                       ({"option_order_subgroups": 0}, "option_order_subgroups = 0: expected an integer >= 1"),
                       ({"option_orders": ["as_asked", "shuffled"]}, "option_orders.*permuted_lines")):
        with pytest.raises(ParamsError, match=match):
            Params.from_dict({"name": "x", "evaluation": bad})
    with pytest.raises(ValueError, match="permutations = 2"):
        option_order.evaluate_option_orders(make_samples(), ReadsLabels(), ["permuted"], permutations=2)


def test_chapter_sentences_from_a_first_line_model_by_hand():
    """Two questions (a 4-point item and the 1-10 item Q49), one subgroup: a first-line model's page."""
    from sgvalues.report import beyond as page

    ten = next(x for x in _catalogue_samples() if x["question_id"] == "Q49")
    ten.update(split="ood", stratum="sex", levels={"sex": "Female"}, scale_min=1, scale_max=10, target=8,
               distribution={str(c): 0.1 for c in range(1, 11)})
    four = {**make_samples(targets=(2,))[0], "question_id": "Q7", "sample_id": "Q7_sex:Female"}
    samples = [four, ten]
    table = option_order.evaluate_option_orders(samples, FirstListed(), option_order.ORDERS).assign(state="base")
    plan = option_order.order_plan(samples, option_order.ORDERS)
    text = page.order_plan_sentence(plan)
    assert text.startswith("Of the 2 questions, 1 (Q49) names codes of its scale in the wording")
    assert "*permuted* 1 question (Q49: numbered scale" in text and "*permuted_lines* 1 question (Q49" in text
    # prompts: reversed and reversed_lines 2 each, the permutations 3 each on the 4-point item only
    assert "*reversed* 2, *reversed_lines* 2, *permuted* 3, *permuted_lines* 3." in text

    expl = option_order.order_explanation(table, by=["state"])
    assert "the data support **the positions (it prefers a line)**" in page.explanation_sentence(expl)
    # samples in both families: both (reversal covers Q49); prompts: Q7 1 + 1 + 3 + 3, Q49 1 + 1
    assert "over 10 reordered prompts of 2 samples" in page.explanation_sentence(expl)

    orders = page.order_table(option_order.order_effect(table, by=["state"]))
    # averaged: Q49 is a dead heat between codes 1 and 10; Q7 gives codes 1 and 4 (0.7 + 0.1) / 2 each: both ties
    assert "100.0 % of its 2 order-averaged predictions are near-ties" in page.near_tie_sentence(orders)
    assert "against 0.0 % as asked" in page.near_tie_sentence(orders)

    wide = page.order_question_table(option_order.order_effect(table, by=["state", "question_id"]))
    wide = wide.set_index("question_id")
    # the first line is another option under every reordering, so every answer changes; Q49 has no permutations
    assert wide.loc["Q7", "reversed"] == 1.0 and wide.loc["Q7", "permuted_lines"] == pytest.approx(
        np.mean([option_order.permutation(4, "Q7", 0, i)[0] != 0 for i in (1, 2, 3)]))
    assert wide.loc["Q49", "reversed_lines"] == 1.0 and pd.isna(wide.loc["Q49", "permuted"])
    assert list(wide["n"]) == [1, 1]


def test_chapter_08_order_cells_on_a_prepared_folder_with_the_dummy_model(tmp_path):
    """The notebook's path (evaluate_run_states, run_order_plan, the page's tables) on real prepared samples:
    the extra orders reach the seeded subgroups only, the plan counts the prompts the table holds."""
    from sgvalues.models.dummy import DummyModel
    from sgvalues.params import Params
    from sgvalues.prepare import prepare
    from sgvalues.report import beyond as page
    from sgvalues.report.format import format_table
    from sgvalues.synthetic import write_sample

    src = write_sample(tmp_path / "wvs.csv", n=600, seed=3)
    prepare(src, tmp_path / "run" / "data", min_n=30)
    params = Params.from_dict({"name": "x", "seed": 2, "evaluation": {"option_order_subgroups": 3,
                                                                      "option_permutations": 3}})
    samples = [json.loads(line) for line in (tmp_path / "run" / "data" / "samples_ood.jsonl").open()]
    ten = sorted({s["question_id"] for s in samples if option_order.numeric_scale(s["options"])})[:1]
    other = sorted({s["question_id"] for s in samples if not option_order.numeric_scale(s["options"])})[:2]
    questions = ten + other
    states = {"base": ("base", None), "other": ("other", None)}
    table = option_order.evaluate_run_states(params, tmp_path / "run", "ood", states, questions,
                                             orders=option_order.ORDERS, cache=None, model=DummyModel())
    mine = [s for s in samples if s["question_id"] in questions]
    per_q = pd.Series([s["question_id"] for s in mine]).value_counts()
    base = table[table.state == "base"]
    assert (base.option_order == "as_asked").sum() == len(mine) == (base.option_order == "reversed").sum()
    lines = base[base.option_order == "reversed_lines"]
    assert lines.groupby("question_id").size().to_dict() == {q: min(3, per_q[q]) for q in questions}
    assert set(base.loc[base.option_order == "permuted", "question_id"]) == set(other)   # the 1-10 item left out
    plan = option_order.run_order_plan(params, tmp_path / "run", "ood", questions, option_order.ORDERS)
    counted = base[base.option_order != option_order.AVERAGED].groupby("option_order").size()
    assert plan.groupby("option_order")["n_prompts"].sum().to_dict() == counted.to_dict()
    assert option_order.orders_path(tmp_path / "run", "other", "ood").is_file()
    orders = page.order_table(option_order.order_effect(table, by=["state"]))
    assert list(dict.fromkeys(orders["state"])) == ["base", "other"]
    wide = page.order_question_table(option_order.order_effect(table, by=["state", "question_id"]))
    assert len(wide) == 2 * len(questions) and "nan" not in format_table(wide, counts=["n"]).to_html().lower()
    assert page.explanation_sentence(option_order.order_explanation(table, by=["state"])).count("- *") == 2
    assert page.order_plan_sentence(plan).startswith(f"Of the {len(questions)} questions")


def test_methods_page_states_the_constants_the_code_uses():
    from pathlib import Path

    from sgvalues.catalogue import load_catalogue

    text = Path("book/methods.md").read_text()
    section = text[text.index("## Option order"):text.index("## Fairness across personas")]
    assert f"within {option_order.NEAR_TIE_GAP:.2f} of each other" in section
    assert f"a margin\nof {option_order.SUPPORT_MARGIN:.2f} over the next" in section
    assert f"(at least {option_order.MIN_PERMUTATIONS})" in section
    cat = load_catalogue()
    ten = cat[cat["scale_kind"] == "scale_1_10"]
    named = sum(bool(option_order.anchor_codes(w)) for w in ten["wording"])
    assert f"{named} of the catalogue's {len(ten)} items on a 1–10\nscale" in section
    assert "no preference for a position can tilt" not in text
