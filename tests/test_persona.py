"""Persona sensitivity: per-question variation and divergent/agreeing scores, checked by plain loops."""

import json

import numpy as np
import pandas as pd
import pytest
from factories import make_predictions, make_sample

from sgvalues import baselines as bl
from sgvalues.persona import SENSITIVITY_COLUMNS, data_sensitivity, persona_sensitivity, with_population_mode

SUBGROUPS = ("s:a", "s:b", "s:c", "s:d")


def _by_loops(p: pd.DataFrame, modes: dict) -> dict:
    """The expected figures with plain Python: sets per question, sums over cells."""
    questions = sorted(set(p["question_id"]))
    varying = [q for q in questions
               if len({r.prediction for r in p.itertuples() if r.question_id == q and r.status == "ok"}) > 1]
    out = {"n_questions": len(questions), "n_varying_questions": len(varying), "n_cells": len(p)}
    departs = [r.status != "ok" or r.prediction != modes[r.question_id] for r in p.itertuples()]
    out["share_departing"] = sum(departs) / len(p)
    for part, want in (("divergent", True), ("agreeing", False)):
        cells = [r for r in p.itertuples() if (r.target != modes[r.question_id]) == want]
        out[f"n_{part}_cells"] = len(cells)
        out[f"n_{part}_questions"] = len({r.question_id for r in cells})
        ok = [r.status == "ok" for r in cells]
        out[f"accuracy_{part}"] = (sum(o and r.prediction == r.target for o, r in zip(ok, cells)) / len(cells)
                                   if cells else float("nan"))
        out[f"nmae_{part}"] = (sum(abs(r.prediction - r.target) / (r.scale_max - r.scale_min) if o else 1.0
                                   for o, r in zip(ok, cells)) / len(cells) if cells else float("nan"))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sensitivity_against_loops(seed):
    p = make_predictions(seed=seed, n_q=7, subgroups=SUBGROUPS).assign(tag="zeroshot", split="ood")
    rng = np.random.default_rng(seed)
    p.loc[rng.random(len(p)) < 0.1, "status"] = "refused"        # invalid answers: wrong, NMAE 1, departing
    modes = {q: int(rng.integers(1, int(g["scale_max"].iloc[0]) + 1)) for q, g in p.groupby("question_id")}
    got = persona_sensitivity(p, modes)
    assert list(got.columns) == ["tag", "split"] + SENSITIVITY_COLUMNS and len(got) == 1
    want = _by_loops(p, modes)
    row = got.iloc[0]
    for k, v in want.items():
        assert row[k] == pytest.approx(v, nan_ok=True), k
    assert row["share_varying"] == pytest.approx(want["n_varying_questions"] / want["n_questions"])
    assert row["persona_blind"] == (want["n_varying_questions"] == 0)
    assert row["n_divergent_cells"] + row["n_agreeing_cells"] == len(p)


def test_blind_predictor_and_grouping():
    p = make_predictions(seed=5, n_q=4, subgroups=SUBGROUPS)
    # one answer per question for every subgroup: persona-blind; a second state varies on Q0 only
    blind = p.assign(prediction=p.groupby("question_id")["prediction"].transform("first"), tag="sft")
    varied = blind.assign(tag="base")
    varied.loc[(varied.question_id == "Q0") & (varied.subgroup == "s:d"), "prediction"] = 99
    modes = dict(zip(blind["question_id"], blind["prediction"]))
    got = persona_sensitivity(pd.concat([blind, varied]), modes).set_index("tag")
    assert got.loc["sft", "persona_blind"] and got.loc["sft", "share_departing"] == 0
    assert not got.loc["base", "persona_blind"] and got.loc["base", "n_varying_questions"] == 1
    assert got.loc["base", "share_departing"] == pytest.approx(1 / len(blind))
    # a blind predictor answering the population mode is right exactly on the agreeing cells
    assert got.loc["sft", "n_divergent_cells"] > 0 and got.loc["sft", "accuracy_divergent"] == 0.0
    assert got.loc["sft", "accuracy_agreeing"] == 1.0
    assert persona_sensitivity(p.iloc[:0], modes).empty


def test_errors_name_the_problem():
    p = make_predictions(seed=0, n_q=2)
    with pytest.raises(ValueError, match=r"no population modal answer for question\(s\) \['Q1'\]"):
        persona_sensitivity(p, {"Q0": 1})
    with pytest.raises(ValueError, match="missing column"):
        persona_sensitivity(p.drop(columns="status"), {"Q0": 1, "Q1": 1})
    with pytest.raises(TypeError, match="population_mode"):
        with_population_mode(p, [1, 2])


def _modal_row(q, stratum, subgroup, counts):
    n = sum(counts)
    top = max(counts)
    return {"question_id": q, "stratum": stratum, "subgroup": subgroup, "n_valid": n,
            "modal_answer": counts.index(top) + 1, "n_tied_modes": counts.count(top),
            "distribution": json.dumps({str(c + 1): x / n for c, x in enumerate(counts)})}


# Q1: Male (0, 30, 10), Female (20, 0, 10) -> population (20, 30, 20), mode 2; Q2: population (15, 25) -> 2
MODAL = pd.DataFrame([
    _modal_row("Q1", "sex", "sex:Male", [0, 30, 10]), _modal_row("Q1", "sex", "sex:Female", [20, 0, 10]),
    _modal_row("Q1", "age_group", "age_group:16-24", [12, 0, 0]),
    _modal_row("Q1", "age_group_x_religion", "age_group_x_religion:16-24|Muslim", [0, 0, 9]),
    _modal_row("Q2", "sex", "sex:Male", [10, 5]), _modal_row("Q2", "sex", "sex:Female", [5, 20]),
    _modal_row("Q2", "age_group", "age_group:16-24", [3, 8]),
    _modal_row("Q2", "age_group_x_religion", "age_group_x_religion:16-24|Muslim", [2, 7]),
])
SUBGROUP_TABLE = pd.DataFrame({"subgroup": ["sex:Male", "sex:Female", "age_group:16-24",
                                            "age_group_x_religion:16-24|Muslim"],
                               "split": ["train", "train", "train", "ood"]})


def test_population_mode_is_the_baselines_and_data_sensitivity_by_hand():
    fitted = bl.fit_baselines(MODAL, SUBGROUP_TABLE)
    modes = bl.population_modes(fitted)
    assert modes.to_dict() == {"Q1": 2, "Q2": 2}                  # (20, 30, 20) and (15, 25)
    samples = [make_sample(r.question_id, r.subgroup, target=r.modal_answer, split="ood",
                           options={str(c): str(c) for c in range(1, len(json.loads(r.distribution)) + 1)})
               for r in MODAL.itertuples()]
    preds = bl.predict_baselines(fitted, samples, ["population_mode", "marginal_product"])
    pop = preds["population_mode"]
    assert (pop["prediction"].astype(int) == pop["question_id"].map(modes)).all()   # the same answer
    sens = persona_sensitivity(pd.concat([df.assign(tag=n) for n, df in preds.items()]), modes).set_index("tag")
    assert sens.loc["population_mode", "persona_blind"] and sens.loc["population_mode", "share_departing"] == 0
    assert not sens.loc["marginal_product", "persona_blind"]
    # divergent cells by hand: Q1 modes Male 2, Female 1, 16-24 1, 16-24|Muslim 3 -> 3 of 4 differ from 2;
    # Q2 modes 1, 2, 2, 2 -> 1 of 4 (sex:Male)
    data = data_sensitivity(MODAL, SUBGROUP_TABLE, modes).set_index("split")
    assert data.loc["train", ["n_cells", "n_divergent_cells", "n_divergent_questions"]].tolist() == [6, 3, 2]
    assert data.loc["ood", ["n_cells", "n_divergent_cells", "n_subgroups"]].tolist() == [2, 1, 1]
    assert data.loc["all", "share_divergent"] == pytest.approx(4 / 8)
    assert data.loc["ood", "share_divergent_questions"] == pytest.approx(1 / 2)
    assert sens.loc["population_mode", "n_divergent_cells"] == 4
    assert sens.loc["population_mode", "accuracy_divergent"] == 0.0
    assert sens.loc["population_mode", "accuracy_agreeing"] == 1.0


def test_stage_modules_import_no_report_and_no_matplotlib():
    import subprocess
    import sys

    code = ("import sys\nimport sgvalues.persona, sgvalues.overlap\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'matplotlib', 'seaborn'} "
            "or m.startswith('sgvalues.report')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_tied_cell_that_includes_the_population_mode_agrees():
    """Ties: a subgroup tied between 2 and 3 on a question whose population mode is 3 agrees with
    the population (answering 3 is correct for it), by the tie rule of metrics.score_samples; on
    modal answers the tied codes come from ``tied_modes``."""
    from sgvalues.persona import with_population_mode

    preds = pd.DataFrame({"question_id": ["Q1", "Q1", "Q1"], "target": [2, 2, 1],
                          "targets": ["[2, 3]", "[2]", "[1]"]})
    assert with_population_mode(preds, {"Q1": 3})["divergent"].tolist() == [False, True, True]
    modal = pd.DataFrame({"question_id": ["Q1", "Q1"], "modal_answer": [2, 2], "tied_modes": ["[2, 3]", "[2]"]})
    got = with_population_mode(modal, {"Q1": 3}, target="modal_answer")
    assert got["divergent"].tolist() == [False, True]
    assert "targets" not in got.columns and "modal_answer" in got.columns  # the input's columns are kept
