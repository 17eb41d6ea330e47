"""Every published figure in ``published.json`` against the paper's tables, typed here from the
paper summary (../shared/paper/000_0a82c42dbd944cba.txt) and parsed independently."""

import json
import math
from importlib import resources

import pandas as pd
import pytest

from sgvalues.published import PAPER_PARAMS_NAMES, PUBLISHED_LABEL, paper_ablation, paper_results, published

# The paper's main results table, as printed (OOD split).
MAIN = """
Llama-3.1-8B .514 .685 (+.171) .258 .143 (-.115) .294 .320 (+.026)
Llama-3.2-3B .442 .508 (+.066) .308 .238 (-.070) .230 .234 (+.004)
SEA-LION-v3-8B .530 .642 (+.112) .222 .158 (-.064) .428 .430 (+.002)
Qwen2.5-7B .442 .661 (+.219) .243 .157 (-.086) .223 .246 (+.023)
Sailor2-8B .356 .720 (+.364) .332 .125 (-.207) .217 .255 (+.038)
SeaLLMs-v3-7B .440 .696 (+.256) .256 .135 (-.121) .082 .081 (-.001)
Phi-4-mini .427 .456 (+.029) .267 .256 (-.011) .175 .161 (-.014)
Open-source Avg .450 .624 (+.174) .269 .173 (-.096) .236 .247 (+.011)
GPT-4.1 .574 .182 .500
GPT-4o .565 .189 .370
GPT-4o-mini .490 .217 .310
"""

# The paper's ablation table, as printed (OOD split).
ABLATION = """
Llama-3.1-8B .174 → .188 .056 → .054 .250 → .426 .085 → .133
Qwen2.5-7B .256 → .169 .089 → .055 .318 → .352 .108 → .135
Sailor2-8B .305 → .145 .101 → .044 .228 → .343 .068 → .129
SeaLLMs-v3 .276 → .124 .094 → .037 .294 → .318 .108 → .111
Avg .240 → .179 .078 → .054 .280 → .336 .094 → .116
"""

OUR_NAMES = {"Llama-3.1-8B": "llama-3.1-8b", "Llama-3.2-3B": "llama-3.2-3b",
             "SEA-LION-v3-8B": "sea-lion-v3-8b", "Qwen2.5-7B": "qwen2.5-7b", "Sailor2-8B": "sailor2-8b",
             "SeaLLMs-v3-7B": "seallms-v3-7b", "SeaLLMs-v3": "seallms-v3-7b", "Phi-4-mini": "phi-4-mini",
             "GPT-4.1": "gpt-4.1", "GPT-4o": "gpt-4o", "GPT-4o-mini": "gpt-4o-mini"}


def _number(tok):
    return float(tok.strip("()"))


def _split_name(line):
    toks = line.split()
    first = next(i for i, t in enumerate(toks) if t.lstrip("(+-").startswith("."))
    return " ".join(toks[:first]), [t for t in toks[first:] if t != "→"]


def typed_main():
    out = {}
    for line in MAIN.strip().splitlines():
        name, toks = _split_name(line)
        vals = [_number(t) for t in toks]
        if len(vals) == 3:
            out[name] = {(m, "zeroshot"): v for m, v in zip(("accuracy", "nmae", "win_rate"), vals)}
        else:
            d = {}
            for i, m in enumerate(("accuracy", "nmae", "win_rate")):
                d[(m, "base")], d[(m, "sft")], d[(m, "delta")] = vals[3 * i: 3 * i + 3]
            out[name] = d
    return out


def typed_ablation():
    out = {}
    for line in ABLATION.strip().splitlines():
        name, toks = _split_name(line)
        vals = [_number(t) for t in toks]
        keys = [("accuracy", "norm_range"), ("accuracy", "cv"), ("nmae", "norm_range"), ("nmae", "cv")]
        out[name] = {k: (vals[2 * i], vals[2 * i + 1]) for i, k in enumerate(keys)}
    return out


def test_main_table_json_matches_the_paper_figure_for_figure():
    typed = typed_main()
    rows = {r["model"]: r for r in published()["main_table"]["rows"]}
    assert set(rows) == set(typed)
    for name, figs in typed.items():
        stored = {(m, s): v for m in ("accuracy", "nmae", "win_rate") for s, v in rows[name][m].items()}
        assert stored == figs, name
        assert rows[name]["params_name"] == OUR_NAMES.get(name)


def test_paper_results_is_tidy_and_matches_the_paper():
    typed = typed_main()
    r = paper_results()
    assert list(r.columns) == ["params_name", "model", "state", "metric", "value", "our_tag", "source"]
    assert r["source"].str.startswith(PUBLISHED_LABEL).all()
    # 7 open models + average x 3 metrics x 2 states, 3 API models x 3 metrics
    assert len(r) == 8 * 3 * 2 + 3 * 3
    for row in r.itertuples():
        assert typed[row.model][(row.metric, row.state)] == row.value
    assert set(r["params_name"].dropna()) == set(PAPER_PARAMS_NAMES)
    # the paper's "base" is the untuned model on the whole OOD split: our zeroshot tag
    assert set(r.query("state == 'base'")["our_tag"]) == {"zeroshot"}
    assert set(r.query("state == 'sft'")["our_tag"]) == {"sft"}


def test_paper_results_selects_by_params_or_paper_name():
    a, b = paper_results("sea-lion-v3-8b"), paper_results("SEA-LION-v3-8B")
    assert a.equals(b) and len(a) == 6 and set(a["state"]) == {"base", "sft"}
    assert paper_results("smollm2-135m").empty


def test_printed_changes_and_averages_are_consistent():
    typed = typed_main()
    open_models = [m for m, d in typed.items() if ("accuracy", "base") in d and m != "Open-source Avg"]
    assert len(open_models) == 7
    for m in open_models + ["Open-source Avg"]:
        for metric in ("accuracy", "nmae", "win_rate"):
            d = typed[m]
            assert math.isclose(d[(metric, "sft")] - d[(metric, "base")], d[(metric, "delta")], abs_tol=1e-9)
    for metric in ("accuracy", "nmae", "win_rate"):
        for state in ("base", "sft"):
            mean = sum(typed[m][(metric, state)] for m in open_models) / 7
            assert abs(mean - typed["Open-source Avg"][(metric, state)]) <= 0.0011
    # the text's "+17.4 points on average" and "Sailor2 +36.4"
    sft = published()["sft"]
    assert sft["mean_ood_accuracy_gain_points"] == pytest.approx(100 * typed["Open-source Avg"][("accuracy", "delta")])
    assert sft["largest_gain_points"] == pytest.approx(100 * max(typed[m][("accuracy", "delta")] for m in open_models))


def test_ablation_matches_the_paper_figure_for_figure():
    typed = typed_ablation()
    a = paper_ablation()
    assert list(a.columns) == ["params_name", "model", "metric", "statistic", "base", "sft", "source"]
    assert len(a) == 5 * 4
    for row in a.itertuples():
        assert typed[row.model][(row.metric, row.statistic)] == (row.base, row.sft)
        expected = OUR_NAMES.get(row.model)
        assert pd.isna(row.params_name) if expected is None else row.params_name == expected
    # the text's fairness figures are the Avg row
    fair = published()["fairness"]
    assert (fair["accuracy_norm_range"]["base"], fair["accuracy_norm_range"]["sft"]) == typed["Avg"][("accuracy", "norm_range")]
    assert (fair["nmae_norm_range"]["base"], fair["nmae_norm_range"]["sft"]) == typed["Avg"][("nmae", "norm_range")]


def test_text_figures_gains_refusal_and_model_count():
    pub = published()
    assert pub["win_rate_gains"]["overall_points"] == 1.1
    assert pub["win_rate_gains"]["value_dimension_points"] == 2.2
    assert "from 6.66% to nearly zero" in pub["refusal_finding"]["sentence"]
    assert pub["refusal_finding"]["wording"] == "from 6.66% to nearly zero"
    assert pub["refusal_finding"]["base_percent"] == 6.66
    assert pub["judge"]["refusal_rate_sensitive"]["base"] == pytest.approx(pub["refusal_finding"]["base_percent"] / 100)
    names = pub["model_names"]
    assert (names["open_named"], names["api_named"]) == (7, 3)
    assert "4 closed-source" in names["text_says"]
    assert len(pub["models"]["hf"]) == 7 and len(pub["models"]["openai"]) == 3
    assert set(names["paper_to_params"].values()) == set(PAPER_PARAMS_NAMES)


def test_existing_keys_are_kept():
    raw = json.loads(resources.files("sgvalues").joinpath("resources/published.json").read_text())
    assert raw["counts"] == {"questions": 214, "train_subgroups": 50, "ood_subgroups": 48,
                             "train_samples": 10700, "ood_samples": 10177, "all_samples": 20877}
    assert raw["mds_by_theme"]["Religious Values"] == 0.318
    assert raw["fairness"]["favoured_personas"] == ["young", "male", "Chinese", "Christian"]
    assert raw["judge"]["weighted_kappa"]["overall"] == {"human_ai": 0.568, "human_human": 0.552}
