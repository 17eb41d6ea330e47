"""The book's persona-sensitivity, mechanics and overlap cells on a hand-made run folder, checked by hand."""

import json
import types

import pandas as pd
import pytest

from sgvalues.evaluate import PREDICTION_COLUMNS
from sgvalues.report import mechanics, overlap, persona

OOD = ["age_group_x_religion:16-24|Muslim", "age_group_x_religion:65+|Hindu"]


def _modal(q, stratum, subgroup, counts):
    n = sum(counts)
    return {"question_id": q, "stratum": stratum, "subgroup": subgroup, "n_valid": n,
            "modal_answer": counts.index(max(counts)) + 1, "n_tied_modes": counts.count(max(counts)),
            "distribution": json.dumps({str(i + 1): c / n for i, c in enumerate(counts)})}


# Q1: Male (0, 30, 10) -> 2, Female (20, 0, 10) -> 1, population (20, 30, 20) -> 2; OOD modes 3 and 2
# Q2: Male (10, 5, 0) -> 1, Female (5, 20, 0) -> 2, population (15, 25, 0) -> 2; OOD modes 1 and 2
MODAL = pd.DataFrame([
    _modal("Q1", "sex", "sex:Male", [0, 30, 10]), _modal("Q1", "sex", "sex:Female", [20, 0, 10]),
    _modal("Q1", "age_group_x_religion", OOD[0], [0, 1, 9]), _modal("Q1", "age_group_x_religion", OOD[1], [1, 8, 1]),
    _modal("Q2", "sex", "sex:Male", [10, 5, 0]), _modal("Q2", "sex", "sex:Female", [5, 20, 0]),
    _modal("Q2", "age_group_x_religion", OOD[0], [8, 2, 0]), _modal("Q2", "age_group_x_religion", OOD[1], [1, 9, 0]),
])
SUBGROUPS = pd.DataFrame({"stratum": ["sex", "sex", "age_group_x_religion", "age_group_x_religion"],
                          "subgroup": ["sex:Male", "sex:Female", *OOD], "n_respondents": 10,
                          "split": ["train", "train", "ood", "ood"]})
CELLS = [("Q1", OOD[0], 3), ("Q1", OOD[1], 2), ("Q2", OOD[0], 1), ("Q2", OOD[1], 2)]   # (question, subgroup, target)


def _predictions(preds):
    rows = [{"sample_id": f"{q}_{g}", "split": "ood", "question_id": q, "theme": "T", "stratum": g.partition(":")[0],
             "subgroup": g, "levels": "", "target": t, "scale_min": 1, "scale_max": 3, "prediction": p,
             "status": "ok", "probs": "", "raw_output": "", "model": "m", "adapter": "", "distribution": ""}
            for (q, g, t), p in zip(CELLS, preds)]
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)


STATES = {"base": [3, 2, 2, 2], "sft": [2, 2, 2, 2]}
BASELINE_PREDS = {"population_mode": [2, 2, 2, 2], "marginal_product": [3, 2, 1, 2]}


@pytest.fixture()
def run(tmp_path):
    run = tmp_path / "runs" / "r"
    (run / "data").mkdir(parents=True)
    (run / "predictions").mkdir()
    MODAL.to_csv(run / "data" / "modal_answers.csv", index=False)
    SUBGROUPS.to_csv(run / "data" / "subgroups.csv", index=False)
    (run / "manifest.json").write_text(json.dumps({"params": {"name": "r", "display_name": "M"},
                                                   "data": {"synthetic": True}}))
    for name, preds in {**STATES, **BASELINE_PREDS}.items():
        _predictions(preds).to_csv(run / "predictions" / f"{name}_ood.csv", index=False)
    return run


def _shown(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    return shown


def _text(shown):
    return "\n".join(o.data for o in shown if isinstance(getattr(o, "data", None), str))


def test_state_sensitivity_by_hand(run):
    assert persona.run_population_modes(run).to_dict() == {"Q1": 2, "Q2": 2}
    sens = persona.state_sensitivity(run, "ood", {t: _predictions(p) for t, p in STATES.items()}).set_index("predictor")
    assert sens.index.tolist() == ["base", "sft", "population_mode (baseline)", "marginal_product (baseline)"]
    # divergent cells: Q1 16-24|Muslim (mode 3) and Q2 16-24|Muslim (mode 1); base gets the first right
    assert sens["n_divergent_cells"].tolist() == [2, 2, 2, 2]
    assert sens.loc["base", ["n_varying_questions", "accuracy_divergent", "accuracy_agreeing"]].tolist() == [1, 0.5, 1.0]
    assert sens.loc["base", "nmae_divergent"] == pytest.approx((0 + 0.5) / 2)
    assert sens.loc["sft", "persona_blind"] and sens.loc["population_mode (baseline)", "persona_blind"]
    assert sens.loc["sft", ["accuracy_divergent", "nmae_divergent"]].tolist() == [0.0, 0.5]
    assert sens.loc["marginal_product (baseline)", "accuracy_divergent"] == 1.0


def test_show_persona_and_comparison_page(run, monkeypatch, tmp_path):
    from sgvalues.report import comparison

    shown = _shown(monkeypatch)
    persona.show_persona(run, "ood", {t: _predictions(p) for t, p in STATES.items()})
    text = _text(shown)
    assert "- *sft* is **persona-blind**" in text and "*population_mode (baseline)* is **persona-blind**" in text
    assert "- *base* varies its answer across subgroups on 1 of its 2 questions (50.0 %)" in text
    assert "On the 2 divergent cells (2 questions) its accuracy is 0.500 (NMAE 0.250)" in text
    page = comparison.write_comparison_page(tmp_path / "runs", tmp_path / "out").read_text()
    assert "Persona sensitivity on the ood split" in page
    assert "- *sft* is **persona-blind**" in page
    assert "*population_mode (baseline) on base and sft's samples* is **persona-blind**" in page


def test_data_sensitivity_cell(monkeypatch):
    shown = _shown(monkeypatch)
    data = types.SimpleNamespace(modal_answers=MODAL, subgroups=SUBGROUPS, summary={}, synthetic=True)
    table = persona.show_data_sensitivity(types.SimpleNamespace(data=data)).set_index("split")
    # train: Q1 Female (1) and Q2 Male (1) differ from 2; OOD: the two 16-24|Muslim cells
    assert table.loc["train", "n_divergent_cells"] == 2 and table.loc["ood", "n_divergent_cells"] == 2
    assert "differs from the population's in 2 of the 4 OOD cells (50.0 %, on 2 of 2 questions)" in _text(shown)
    assert "**synthetic**" in _text(shown)


def test_chapter_07_mechanics_and_persona_cells(run, monkeypatch):
    from sgvalues import fairness, metrics
    from sgvalues.report import fairness as page

    shown = _shown(monkeypatch)
    preds, root = fairness.gather_predictions(run, run.parent)
    inputs = page.FairnessInputs(predictions=preds, scored=metrics.score_samples(preds), root=root, synthetic_note="")
    t = page.fairness_tables(inputs, run, n_boot=20)
    rows = mechanics.show_mechanics(t, "nmae")
    # subgroup NMAE: base 16-24|Muslim (0 + 0.5) / 2 = 0.25, 65+|Hindu 0; sft 0.5 and 0
    nmae = rows[rows.metric == "nmae"].set_index("predictor")
    assert nmae.loc["base", ["range", "norm_range"]].tolist() == [0.25, 1.0]
    assert nmae.loc["sft", ["range", "norm_range"]].tolist() == [0.5, 1.0]
    mechanics.show_paradox(t)
    text = _text(shown)
    assert ("NMAE over the 2 subgroups, base → sft: Norm. Range 1.000 → 1.000 (unchanged), absolute range "
            "(max − min) 0.250 → 0.500 (grew)") in text
    assert "has NMAE Norm. Range 1.000 on the same samples" in text
    persona.show_run_persona(preds, run)
    assert "*sft* is **persona-blind**" in _text(shown)


def test_overlap_cells(run, monkeypatch):
    shown = _shown(monkeypatch)
    table = pd.DataFrame({"stratum": "age_group_x_religion", "subgroup": OOD, "train_subgroup": ["sex:Male"] * 2,
                          "overlap": [0.95, 0.4], "flagged": [True, False]})
    ch = types.SimpleNamespace(run=run, data=types.SimpleNamespace(overlap=table))
    out = overlap.show_overlap(ch, {t: _predictions(p) for t, p in STATES.items()}).set_index("predictor")
    # without 16-24|Muslim only the two 65+|Hindu cells remain, both right for every state
    assert out.loc["base", ["accuracy", "n", "accuracy (unflagged)", "n (unflagged)"]].tolist() == [0.75, 4, 1.0, 2]
    assert out.loc["population_mode (baseline)", "accuracy"] == 0.5
    assert "1 of the 2 OOD subgroups shares more than 90 %" in _text(shown) and "again without it." in _text(shown)
    assert "`age_group_x_religion:16-24|Muslim` (0.950 with `sex:Male`)" in _text(shown)
    shown.clear()
    overlap.show_overlap(types.SimpleNamespace(run=run, data=types.SimpleNamespace(overlap=pd.DataFrame())), {})
    assert "predate the overlap table" in _text(shown)
    assert overlap.overlap_sentence(table.assign(flagged=False)).startswith("None of the 2 OOD subgroups shares more")


def test_chapter_08_variant_paradox(run, monkeypatch):
    from sgvalues import metrics

    shown = _shown(monkeypatch)
    base, sft = _predictions(STATES["base"]), _predictions(STATES["sft"])
    scored = metrics.score_samples(pd.concat([base.assign(run="modal", tag="base"), sft.assign(run="modal", tag="sft"),
                                              base.assign(run="distribution", tag="sft")]))
    rows = mechanics.show_variant_paradox(scored, run, ["modal", "distribution"])
    nmae = rows[rows.metric == "nmae"].set_index("predictor")
    # the two yardsticks only, on the base samples: population_mode = sft's answers, marginal_product errs on none
    assert sorted(nmae.index) == sorted(["base", "modal", "distribution", "population_mode (baseline)",
                                         "marginal_product (baseline)"])
    assert nmae.loc["population_mode (baseline)", "range"] == nmae.loc["modal", "range"] == 0.5
    assert nmae.loc["marginal_product (baseline)", "range"] == 0.0
    text = _text(shown)
    assert "- NMAE over the 2 subgroups, base → modal: Norm. Range 1.000 → 1.000 (unchanged)" in text
    assert "base → distribution" in text


def test_chapter_03_overlap_table(monkeypatch):
    shown = _shown(monkeypatch)
    table = pd.DataFrame({"stratum": "s", "subgroup": ["a", "b", "c"], "n_respondents": [10, 20, 30],
                          "train_subgroup": ["t", "u", "v"], "n_train_respondents": [11, 40, 30], "n_shared": 10,
                          "n_union": [11, 50, 50], "overlap": [10 / 11, 0.2, 0.2], "flagged": [True, False, False]})
    top = overlap.show_split_overlap(types.SimpleNamespace(data=types.SimpleNamespace(overlap=table)), n=2)
    assert top["subgroup"].tolist() == ["a", "b"]
    assert "`a` (0.909 with `t`). Chapters 05 and 07 show the OOD scores with and without it." in _text(shown)


def test_chapter_07_cells_without_predictions(monkeypatch, tmp_path):
    from sgvalues.report import fairness as page

    shown = _shown(monkeypatch)
    empty = page.FairnessInputs(predictions=pd.DataFrame(), scored=pd.DataFrame(), root=tmp_path, synthetic_note="")
    t = page.fairness_tables(empty, tmp_path / "r")
    ch = types.SimpleNamespace(run=tmp_path / "r", data=types.SimpleNamespace(overlap=pd.DataFrame()))
    tables = {"spread_mechanics": mechanics.show_mechanics(t, "nmae"),
              "persona_sensitivity": persona.show_run_persona(empty.predictions, ch.run),
              "overlap_scores": overlap.show_run_overlap(ch, empty.predictions)}
    mechanics.show_paradox(t)
    assert all(x.empty for x in tables.values())
    assert persona.write_persona_tables(tmp_path / "fairness", tables) == [] and not (tmp_path / "fairness").exists()
    text = _text(shown)
    assert "nothing to show" in text and "No predictions of this run" in text and "no base and sft" in text
