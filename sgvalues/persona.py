"""Does a predictor use the persona at all? Persona sensitivity of predictions and of the data.

The paper's question is whether persona-prompted models can emulate *subgroup* values. A
predictor that gives every subgroup the same answer to a question ignores the persona: at best
it reaches the population's modal answer (the ``population_mode`` baseline). Two tables answer
how far a predictor, and the data itself, depend on the persona:

- :func:`persona_sensitivity`: per predictor state and split, the share of questions whose
  predicted answer varies across subgroups (none: **persona-blind**), the share of answers that
  depart from the population's modal answer, and accuracy and NMAE on **divergent** cells (the
  subgroup's modal answer differs from the population's) and on **agreeing** cells separately,
  with the number of cells and questions each rests on;
- :func:`data_sensitivity`: per split, how many (question, subgroup) cells of the data are
  divergent: only those can reward using the persona.

"The population's modal answer" is the ``population_mode`` baseline's answer
(:func:`sgvalues.baselines.population_modes`, fitted on the train split); scores go through
:func:`sgvalues.metrics.score`.

Example
-------
>>> p = pd.DataFrame({"tag": "sft", "split": "ood", "question_id": ["Q1", "Q1", "Q2", "Q2"],
...                   "subgroup": ["a", "b", "a", "b"], "target": [1, 2, 3, 3], "prediction": [1, 1, 3, 3],
...                   "scale_min": 1, "scale_max": 4, "status": "ok"})
>>> s = persona_sensitivity(p, {"Q1": 1, "Q2": 3})
>>> s[["n_questions", "n_varying_questions", "persona_blind", "n_divergent_cells", "accuracy_divergent",
...    "accuracy_agreeing"]].to_dict("records")
[{'n_questions': 2, 'n_varying_questions': 0, 'persona_blind': True, 'n_divergent_cells': 1, 'accuracy_divergent': 0.0, 'accuracy_agreeing': 1.0}]
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

__all__ = ["SENSITIVITY_COLUMNS", "DATA_SENSITIVITY_COLUMNS", "with_population_mode", "persona_sensitivity",
           "data_sensitivity"]

_KEYS = ("run", "label", "tag", "split")

#: :func:`persona_sensitivity`'s columns after its group keys
SENSITIVITY_COLUMNS = [
    "n_questions", "n_varying_questions", "share_varying", "persona_blind", "share_departing",
    "n_cells", "n_divergent_cells", "n_divergent_questions", "accuracy_divergent", "nmae_divergent",
    "n_agreeing_cells", "n_agreeing_questions", "accuracy_agreeing", "nmae_agreeing",
]

#: :func:`data_sensitivity`'s columns
DATA_SENSITIVITY_COLUMNS = ["split", "n_questions", "n_subgroups", "n_cells", "n_divergent_cells", "share_divergent",
                            "n_divergent_questions", "share_divergent_questions"]


def _modes(population_mode) -> dict[str, int]:
    if isinstance(population_mode, pd.Series):
        population_mode = population_mode.to_dict()
    if not isinstance(population_mode, Mapping):
        raise TypeError("population_mode: expected question_id -> code (sgvalues.baselines.population_modes), "
                        f"got {type(population_mode).__name__}")
    return {str(q): int(c) for q, c in population_mode.items()}


def with_population_mode(table: pd.DataFrame, population_mode, target: str = "target") -> pd.DataFrame:
    """``table`` with ``population_mode`` (the question's population modal answer) and ``divergent``
    columns: a cell is divergent when the population mode is none of its tied modal codes
    (``targets`` of a predictions table, ``tied_modes`` of modal answers; the target alone without
    them), the tie rule of :func:`sgvalues.metrics.score_samples`.

    Parameters
    ----------
    table : DataFrame
        Rows with ``question_id`` and a ``target`` column (a predictions table, or modal answers
        with ``target="modal_answer"``).
    population_mode : mapping or Series
        ``question_id -> code``, :func:`sgvalues.baselines.population_modes`.

    Examples
    --------
    >>> t = pd.DataFrame({"question_id": ["Q1", "Q1"], "target": [2, 3]})
    >>> with_population_mode(t, {"Q1": 2})["divergent"].tolist()
    [False, True]
    >>> with_population_mode(t.assign(targets=["[2]", "[2, 3]"]), {"Q1": 2})["divergent"].tolist()
    [False, False]
    """
    modes = _modes(population_mode)
    for col in ("question_id", target):
        if col not in table.columns:
            raise ValueError(f"table: missing column {col!r}; expected question_id and {target}")
    q = table["question_id"].astype(str)
    unknown = sorted(set(q) - set(modes))
    if unknown:
        raise ValueError(f"population_mode: no population modal answer for question(s) {unknown[:5]}; "
                         "expected every question of the table (baselines fitted on the same prepared folder)")
    pop = q.map(modes).astype("int64")
    from sgvalues.metrics import tied_targets

    # a cell whose tied modes include the population mode agrees with it (any tied mode is correct)
    tied_col = "targets" if target == "target" else "tied_modes"
    cells = table.rename(columns={target: "target", tied_col: "targets"})[
        ["target"] + (["targets"] if tied_col in table.columns else [])]
    tied = tied_targets(cells)
    agrees = (tied == pop.to_numpy(float)[:, None]).any(axis=1)
    return table.assign(population_mode=pop.to_numpy(), divergent=~agrees)


def persona_sensitivity(predictions: pd.DataFrame, population_mode, by=None) -> pd.DataFrame:
    """How much a predictor's answers depend on the persona, per predictor state and split.

    Parameters
    ----------
    predictions : DataFrame
        A predictions table (``question_id, subgroup, target, prediction, scale_min, scale_max,
        status``), one state or several told apart by the ``run, label, tag, split`` columns
        present (and ``by``).
    population_mode : mapping or Series
        ``question_id -> code``: the population's modal answer
        (:func:`sgvalues.baselines.population_modes`).
    by : str or list of str, optional
        Further grouping columns (e.g. ``baseline``).

    Returns
    -------
    DataFrame
        The group keys, then :data:`SENSITIVITY_COLUMNS`:

        - ``n_questions``, ``n_varying_questions``, ``share_varying``: questions answered, those
          whose valid predictions take more than one value across subgroups, and their share;
          ``persona_blind`` = no question varies;
        - ``share_departing``: share of cells whose prediction is not the population's modal
          answer (an invalid answer departs);
        - ``n_cells``; ``n_divergent_cells`` and ``n_divergent_questions`` (cells whose subgroup's
          modal answer differs from the population's, and the questions holding one);
          ``accuracy_divergent``, ``nmae_divergent`` on them; the same ``_agreeing`` for the
          other cells (NaN where there are none).

    Notes
    -----
    For question :math:`q` with valid predictions :math:`\\hat y_{qg}` over subgroups :math:`g`,
    :math:`q` varies iff :math:`|\\{\\hat y_{qg}\\}_g| > 1`. A cell :math:`(q, g)` is divergent iff
    its target :math:`y_{qg} \\ne m_q`, the population mode. A persona-blind predictor answers
    one :math:`c_q` per question, so on cell :math:`(q, g)` it is right only if
    :math:`c_q = y_{qg}`: it cannot be right on both a divergent and an agreeing cell of one
    question, and its accuracy is at most that of the best constant per question.
    """
    from sgvalues.metrics import score, valid_predictions

    by = [by] if isinstance(by, str) else list(by or [])
    keys = [k for k in _KEYS if k in predictions.columns] + by
    need = {"question_id", "subgroup", "target", "prediction", "scale_min", "scale_max", "status", *by}
    missing = sorted(need - set(predictions.columns))
    if missing:
        raise ValueError(f"predictions: missing column(s) {missing}; expected sgvalues.evaluate.PREDICTION_COLUMNS")
    if predictions.empty:
        return pd.DataFrame(columns=keys + SENSITIVITY_COLUMNS)
    df = with_population_mode(predictions, population_mode)
    pred = valid_predictions(df)
    df = df.assign(_pred=pred.to_numpy(), _departs=(pred != df["population_mode"]).to_numpy() | pred.isna().to_numpy())
    groups = df.groupby(keys, sort=True, dropna=False) if keys else [((), df)]
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        distinct = g.groupby("question_id")["_pred"].nunique(dropna=True)
        n_q, n_var = int(len(distinct)), int((distinct > 1).sum())
        row = {**dict(zip(keys, key)), "n_questions": n_q, "n_varying_questions": n_var,
               "share_varying": n_var / n_q if n_q else float("nan"), "persona_blind": bool(n_q and n_var == 0),
               "share_departing": float(g["_departs"].mean()), "n_cells": int(len(g))}
        for part, mask in (("divergent", g["divergent"]), ("agreeing", ~g["divergent"])):
            cells = g[mask.to_numpy(bool)]
            s = score(cells).iloc[0] if len(cells) else None
            row[f"n_{part}_cells"] = int(len(cells))
            row[f"n_{part}_questions"] = int(cells["question_id"].nunique())
            row[f"accuracy_{part}"] = float(s["accuracy"]) if s is not None else float("nan")
            row[f"nmae_{part}"] = float(s["nmae"]) if s is not None else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=keys + SENSITIVITY_COLUMNS)


def data_sensitivity(modal: pd.DataFrame, subgroups: pd.DataFrame, population_mode) -> pd.DataFrame:
    """How persona-dependent the data are: divergent (question, subgroup) cells per split.

    Parameters
    ----------
    modal : DataFrame
        ``modal_answers.csv`` (``question_id, subgroup, modal_answer``).
    subgroups : DataFrame
        ``subgroups.csv`` (``subgroup, split``).
    population_mode : mapping or Series
        :func:`sgvalues.baselines.population_modes` of the same prepared folder.

    Returns
    -------
    DataFrame
        :data:`DATA_SENSITIVITY_COLUMNS`, one row per split (``train``, ``ood``) and ``all``:
        ``share_divergent`` = divergent cells / cells, ``share_divergent_questions`` = questions
        with at least one divergent cell / questions.

    Notes
    -----
    A cell :math:`(q, g)` is divergent iff the subgroup's modal answer :math:`y_{qg}` differs
    from the population's :math:`m_q`. On agreeing cells a persona-blind predictor that answers
    :math:`m_q` is right; only divergent cells can reward using the persona.

    Examples
    --------
    >>> m = pd.DataFrame({"question_id": ["Q1", "Q1", "Q2", "Q2"], "subgroup": ["a", "b", "a", "b"],
    ...                   "modal_answer": [1, 2, 3, 3]})
    >>> sub = pd.DataFrame({"subgroup": ["a", "b"], "split": ["train", "ood"]})
    >>> data_sensitivity(m, sub, {"Q1": 1, "Q2": 3})[["split", "n_cells", "n_divergent_cells"]].to_dict("records")
    [{'split': 'train', 'n_cells': 2, 'n_divergent_cells': 0}, {'split': 'ood', 'n_cells': 2, 'n_divergent_cells': 1}, {'split': 'all', 'n_cells': 4, 'n_divergent_cells': 1}]
    """
    for name, table, cols in (("modal answers", modal, ("question_id", "subgroup", "modal_answer")),
                              ("subgroups", subgroups, ("subgroup", "split"))):
        missing = sorted(set(cols) - set(table.columns))
        if missing:
            raise ValueError(f"{name}: missing column(s) {missing}; expected {list(cols)}")
    split_of = dict(zip(subgroups["subgroup"].astype(str), subgroups["split"].astype(str)))
    df = with_population_mode(modal, population_mode, target="modal_answer")
    df = df.assign(split=df["subgroup"].astype(str).map(split_of))
    rows = []
    for split in ("train", "ood", "all"):
        g = df if split == "all" else df[df["split"] == split]
        n_q = int(g["question_id"].nunique())
        n_div_q = int(g.loc[g["divergent"], "question_id"].nunique())
        rows.append({"split": split, "n_questions": n_q, "n_subgroups": int(g["subgroup"].nunique()),
                     "n_cells": int(len(g)), "n_divergent_cells": int(g["divergent"].sum()),
                     "share_divergent": float(g["divergent"].mean()) if len(g) else float("nan"),
                     "n_divergent_questions": n_div_q,
                     "share_divergent_questions": n_div_q / n_q if n_q else float("nan")})
    out = pd.DataFrame(rows, columns=DATA_SENSITIVITY_COLUMNS)
    return out.astype({c: "int64" for c in ("n_questions", "n_subgroups", "n_cells", "n_divergent_cells",
                                            "n_divergent_questions")})
