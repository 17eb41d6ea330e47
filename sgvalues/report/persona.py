"""What the book shows of persona sensitivity: does a predictor use the persona at all?

:mod:`sgvalues.persona` computes; the functions here gather a run's model states with the
no-model yardsticks on the same samples (:func:`state_sensitivity`), say in words which state is
**persona-blind** (one answer per question for every subgroup) and how each scores where a
subgroup's modal answer differs from the population's (:func:`persona_sentence`), show a narrow
table (:func:`sensitivity_table`), and state how persona-dependent the data are
(:func:`data_sentence`, chapter 02). The ``show_*`` helpers are one notebook cell each.

Example
-------
>>> s = pd.DataFrame({"tag": "sft", "split": "ood", "n_questions": 6, "n_varying_questions": 0,
...                   "share_varying": 0.0, "persona_blind": True, "share_departing": 0.1, "n_cells": 300,
...                   "n_divergent_cells": 40, "n_divergent_questions": 5, "accuracy_divergent": 0.0,
...                   "nmae_divergent": 0.3, "n_agreeing_cells": 260, "n_agreeing_questions": 6,
...                   "accuracy_agreeing": 0.9, "nmae_agreeing": 0.05}, index=[0])
>>> print(persona_sentence(s))
- *sft* is **persona-blind**: it gives every subgroup the same answer to each of its 6 questions, so it can at best match the population's modal answer; 10.0 % of its 300 answers differ from that answer. On the 40 divergent cells (5 questions) its accuracy is 0.000 (NMAE 0.300); on the 260 agreeing cells 0.900 (NMAE 0.050).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sgvalues.report.format import MISSING, fmt_count, fmt_rate

__all__ = ["YARDSTICKS", "run_population_modes", "state_sensitivity", "persona_sentence", "sensitivity_table",
           "data_sentence", "run_sensitivity", "show_persona", "show_run_persona", "show_data_sensitivity",
           "comparison_lines", "write_persona_tables"]

#: the baselines shown beside every state: persona-blind by construction, and one that uses the persona
YARDSTICKS = ("population_mode", "marginal_product")

_INTRO = ("A predictor that gives every subgroup the same answer to a question ignores the persona "
          "(*persona-blind*) and can at best match the population's modal answer (`population_mode`). "
          "A cell (question, subgroup) is *divergent* when the subgroup's modal answer differs from the "
          "population's: only there can using the persona pay off.")


def _pct(x) -> str:
    """A share as a percentage to one decimal, as the book's sentences print shares ("12.5 %")."""
    return MISSING if x is None or pd.isna(x) else f"{100 * float(x):.1f} %"


def run_population_modes(run_dir: str | Path) -> pd.Series:
    """The population's modal answer to each question of a run (the ``population_mode`` baseline's,
    :func:`sgvalues.baselines.prepared_population_modes` of ``<run_dir>/data``)."""
    from sgvalues import baselines

    return baselines.prepared_population_modes(Path(run_dir) / "data")


def state_sensitivity(run_dir: str | Path, split: str, states: dict, names=YARDSTICKS,
                      population_mode=None) -> pd.DataFrame:
    """:func:`sgvalues.persona.persona_sensitivity` of each model state and, on the samples every
    state answered, of the baselines ``names``; one row per predictor (column ``predictor``:
    the state, or ``<baseline> (baseline)``), in that order."""
    from sgvalues import baselines
    from sgvalues.persona import persona_sensitivity

    run_dir = Path(run_dir)
    modes = run_population_modes(run_dir) if population_mode is None else population_mode
    frames = [df.assign(predictor=state) for state, df in states.items() if len(df)]
    if not frames:
        return pd.DataFrame()
    ids = set.intersection(*[set(f["sample_id"].astype(str)) for f in frames])
    tables = baselines.run_baseline_predictions(run_dir, split, names, ids)
    for name in names:
        b = tables[tables["baseline"] == name] if len(tables) else []
        if len(b):
            frames.append(b.assign(predictor=f"{name} (baseline)"))
    order = {f["predictor"].iloc[0]: i for i, f in enumerate(frames)}
    cols = ["predictor", "question_id", "subgroup", "target", "prediction", "scale_min", "scale_max", "status"]
    stacked = pd.concat([f[cols] for f in frames], ignore_index=True).assign(split=split)
    out = persona_sensitivity(stacked, modes, by="predictor")
    return out.sort_values("predictor", key=lambda s: s.map(order)).reset_index(drop=True)


def _name(row) -> str:
    return str(row.get("predictor", row.get("tag", "")))


def persona_sentence(sens: pd.DataFrame) -> str:
    """Markdown bullets, one per row of :func:`sgvalues.persona.persona_sensitivity` (or
    :func:`state_sensitivity`): persona-blind or how often its answer varies, and its accuracy on
    divergent and on agreeing cells with the counts they rest on.

    Examples
    --------
    >>> s = pd.DataFrame({"predictor": ["base"], "n_questions": 6, "n_varying_questions": 3, "share_varying": 0.5,
    ...                   "persona_blind": False, "share_departing": 0.25, "n_cells": 300, "n_divergent_cells": 0,
    ...                   "n_divergent_questions": 0, "accuracy_divergent": float("nan"), "nmae_divergent": float("nan"),
    ...                   "n_agreeing_cells": 300, "n_agreeing_questions": 6, "accuracy_agreeing": 0.5,
    ...                   "nmae_agreeing": 0.2})
    >>> print(persona_sentence(s))
    - *base* varies its answer across subgroups on 3 of its 6 questions (50.0 %); 25.0 % of its 300 answers differ from the population's modal answer. No cell is divergent here, so these samples cannot reward using the persona; on the 300 agreeing cells its accuracy is 0.500 (NMAE 0.200).
    """
    if sens.empty:
        return "No predictions to read persona sensitivity from."
    lines = []
    for _, r in sens.iterrows():
        nq = int(r["n_questions"])
        if r["persona_blind"]:
            head = (f"- *{_name(r)}* is **persona-blind**: it gives every subgroup the same answer to each of its "
                    f"{fmt_count(nq)} question{'s' if nq != 1 else ''}, so it can at best match the population's "
                    "modal answer")
        else:
            head = (f"- *{_name(r)}* varies its answer across subgroups on {fmt_count(r['n_varying_questions'])} of "
                    f"its {fmt_count(nq)} questions ({_pct(r['share_varying'])})")
        answer = "that answer" if r["persona_blind"] else "the population's modal answer"
        head += f"; {_pct(r['share_departing'])} of its {fmt_count(r['n_cells'])} answers differ from {answer}."
        agree = (f"{fmt_rate(r['accuracy_agreeing'])} (NMAE {fmt_rate(r['nmae_agreeing'])})"
                 if r["n_agreeing_cells"] else "–")
        if r["n_divergent_cells"]:
            tail = (f" On the {fmt_count(r['n_divergent_cells'])} divergent cells "
                    f"({fmt_count(r['n_divergent_questions'])} question{'s' if r['n_divergent_questions'] != 1 else ''}) "
                    f"its accuracy is {fmt_rate(r['accuracy_divergent'])} (NMAE {fmt_rate(r['nmae_divergent'])}); "
                    f"on the {fmt_count(r['n_agreeing_cells'])} agreeing cells {agree}.")
        else:
            tail = (" No cell is divergent here, so these samples cannot reward using the persona; on the "
                    f"{fmt_count(r['n_agreeing_cells'])} agreeing cells its accuracy is {agree}.")
        lines.append(head + tail)
    return "\n".join(lines)


def sensitivity_table(sens: pd.DataFrame) -> pd.DataFrame:
    """A narrow display of persona sensitivity: ``predictor, varying, blind, divergent, acc div.,
    acc agree, NMAE div., NMAE agree`` (``varying`` = "k of n" questions, ``divergent`` = "cells
    (questions)"); ``share_departing`` stays in the written tables (eight columns fit the text column).

    >>> s = pd.DataFrame({"predictor": ["sft"], "n_questions": 6, "n_varying_questions": 0, "persona_blind": True,
    ...                   "share_departing": 0.1, "n_divergent_cells": 40, "n_divergent_questions": 5,
    ...                   "accuracy_divergent": 0.0, "accuracy_agreeing": 0.9, "nmae_divergent": 0.3,
    ...                   "nmae_agreeing": 0.05})
    >>> sensitivity_table(s)[["varying", "blind", "divergent"]].to_dict("records")
    [{'varying': '0 of 6', 'blind': 'yes', 'divergent': '40 (5 qs)'}]
    """
    if sens.empty:
        return pd.DataFrame()
    keys = [c for c in ("predictor", "label", "tag", "split") if c in sens.columns]
    out = sens[keys].copy()
    out["varying"] = [f"{int(v)} of {int(n)}" for v, n in zip(sens["n_varying_questions"], sens["n_questions"])]
    out["blind"] = ["yes" if b else "no" for b in sens["persona_blind"]]
    out["divergent"] = [f"{int(c):,} ({int(q)} qs)" for c, q in zip(sens["n_divergent_cells"],
                                                                     sens["n_divergent_questions"])]
    for col, head in (("accuracy_divergent", "acc div."), ("accuracy_agreeing", "acc agree"),
                      ("nmae_divergent", "NMAE div."), ("nmae_agreeing", "NMAE agree")):
        out[head] = sens[col].to_numpy(float)
    return out.reset_index(drop=True)


def data_sentence(data: pd.DataFrame, synthetic: bool | None = None) -> str:
    """Markdown: how many (question, subgroup) cells of each split are divergent, from
    :func:`sgvalues.persona.data_sensitivity`.

    Examples
    --------
    >>> d = pd.DataFrame({"split": ["train", "ood", "all"], "n_questions": 10, "n_cells": [200, 100, 300],
    ...                   "n_divergent_cells": [20, 30, 50], "share_divergent": [0.1, 0.3, 50 / 300],
    ...                   "n_divergent_questions": [4, 6, 7]})
    >>> print(data_sentence(d, synthetic=True))
    In this run's data (**synthetic**: a property of the generator, not of Singapore), a subgroup's modal answer differs from the population's in 30 of the 100 OOD cells (30.0 %, on 6 of 10 questions) and in 20 of the 200 train cells (10.0 %, on 4 of 10 questions). Only these divergent cells can reward a predictor for using the persona; on every other cell the population's modal answer, which ignores the persona, is right.
    """
    d = data.set_index("split")
    parts = []
    for split, name in (("ood", "OOD"), ("train", "train")):
        if split not in d.index or not d.loc[split, "n_cells"]:
            continue
        r = d.loc[split]
        parts.append(f"{fmt_count(r['n_divergent_cells'])} of the {fmt_count(r['n_cells'])} {name} cells "
                     f"({_pct(r['share_divergent'])}, on {fmt_count(r['n_divergent_questions'])} of "
                     f"{fmt_count(r['n_questions'])} questions)")
    if not parts:
        return "No (question, subgroup) cell to read."
    source = {True: " (**synthetic**: a property of the generator, not of Singapore)",
              False: " (WVS-7 Singapore)"}.get(synthetic, "")
    return (f"In this run's data{source}, a subgroup's modal answer differs from the population's in "
            + " and in ".join(parts) + ". Only these divergent cells can reward a predictor for using the "
            "persona; on every other cell the population's modal answer, which ignores the persona, is right.")


def show_persona(run_dir: str | Path, split: str, states: dict) -> pd.DataFrame:
    """One cell: the states of ``states`` (state -> predictions, the same samples) beside the
    yardsticks, in words and as a table. Returns the :func:`state_sensitivity` table."""
    from IPython.display import Markdown, display

    from sgvalues.report.format import format_table

    sens = state_sensitivity(run_dir, split, states)
    if sens.empty:
        display(Markdown("No predictions to read persona sensitivity from."))
        return sens
    display(Markdown(f"Persona sensitivity on the **{split}** split. {_INTRO}\n\n" + persona_sentence(sens)))
    display(format_table(sensitivity_table(sens.drop(columns="split"))))
    return sens


def run_sensitivity(run_dir: str | Path, predictions: pd.DataFrame, split: str, population_mode=None) -> pd.DataFrame:
    """:func:`state_sensitivity` of every state (``tag``) of one run's ``predictions`` on ``split``;
    states that answered the same samples (``base`` and ``sft``) share one set of baseline rows,
    named ``"<baseline> (baseline) on <states>' samples"``."""
    part = predictions[predictions["split"] == split] if len(predictions) else predictions
    if part.empty:
        return pd.DataFrame()
    modes = run_population_modes(run_dir) if population_mode is None else population_mode
    groups: dict[frozenset, dict] = {}
    for tag, g in part.groupby("tag", sort=False):
        groups.setdefault(frozenset(g["sample_id"].astype(str)), {})[tag] = g
    order = {"zeroshot": 0, "base": 1, "sft": 2}
    tables = []
    for states in sorted(groups.values(), key=lambda st: min(order.get(t, 9) for t in st)):
        sens = state_sensitivity(run_dir, split, states, population_mode=modes)
        on = " and ".join(states)
        tables.append(sens.assign(predictor=[p if p in states else f"{p} on {on}'s samples"
                                             for p in sens["predictor"]]))
    return pd.concat(tables, ignore_index=True)


def show_run_persona(predictions: pd.DataFrame, run_dir: str | Path) -> pd.DataFrame:
    """Chapter 07's cell: every state of ``run_dir``'s run in the gathered ``predictions``, per
    split, beside the yardsticks on its samples (:func:`run_sensitivity`). Returns the tables."""
    from IPython.display import Markdown, display

    from sgvalues.report.format import format_table

    run_dir = Path(run_dir)
    mine = predictions[predictions["run"] == run_dir.name] if len(predictions) else predictions
    if mine.empty:
        display(Markdown("No predictions of this run to read persona sensitivity from."))
        return pd.DataFrame()
    modes = run_population_modes(run_dir)
    out = []
    for split in sorted(mine["split"].unique(), key=lambda s: s != "ood"):
        sens = run_sensitivity(run_dir, mine, split, modes)
        display(Markdown(f"Persona sensitivity on the **{split}** split. {_INTRO}\n\n" + persona_sentence(sens)))
        display(format_table(sensitivity_table(sens.drop(columns="split"))))
        out.append(sens)
    return pd.concat(out, ignore_index=True)


def show_data_sensitivity(ch) -> pd.DataFrame:
    """Chapter 02's cell: the divergent cells of the run's prepared data, per split, in words."""
    from IPython.display import Markdown, display

    from sgvalues import baselines
    from sgvalues.persona import data_sensitivity

    data = ch.data
    modes = baselines.population_modes(baselines.fit_baselines(
        data.modal_answers, data.subgroups, weighted=bool(data.summary.get("weighted", False))))
    table = data_sensitivity(data.modal_answers, data.subgroups, modes)
    display(Markdown(data_sentence(table, synthetic=bool(data.synthetic))))
    return table


def comparison_lines(runs_root: str | Path, preds: pd.DataFrame, split: str) -> list[str]:
    """The model-comparison page's persona lines for ``split``: per run, each state and the
    yardsticks on its samples (:func:`run_sensitivity`, :func:`persona_sentence`), as Markdown lines."""
    runs_root = Path(runs_root)
    part = preds[preds["split"] == split] if len(preds) else preds
    lines = []
    for run in sorted(part["run"].unique()) if len(part) else []:
        run_dir = runs_root / run
        if not (run_dir / "data" / "modal_answers.csv").is_file():
            continue
        sens = run_sensitivity(run_dir, part[part["run"] == run], split)
        if len(sens):
            lines += [f"`{run}`:", "", persona_sentence(sens), ""]
    if not lines:
        return []
    return [f"Persona sensitivity on the {split} split. " + _INTRO, ""] + lines


def write_persona_tables(folder: str | Path, tables: dict) -> list[Path]:
    """Write chapter 07's persona, spread and overlap tables (name -> DataFrame; empty ones are
    skipped) as ``<folder>/<name>.csv``, atomically, and say which. Returns the paths written."""
    from IPython.display import Markdown, display

    from sgvalues.tables import write_tables

    present = {name: table for name, table in tables.items() if table is not None and not table.empty}
    written = write_tables(present, folder) if present else []
    display(Markdown("Written to `fairness/`: " + (", ".join(f"`{p.name}`" for p in written) or "nothing")))
    return written
