"""Figures published by Tan et al. (ACL 2026, arXiv:2604.12851), to show beside ours.

Only numbers printed in the paper (``resources/published.json``): the counts and themes quoted
in its text, its main results table, its fairness ablation table, the open-ended win-rate gains
and its refusal finding. The book always labels them "published (Tan et al. 2026)" so they are
never mistaken for our results.

Each paper model is matched to our params file by name (``params/<params_name>.yaml``):
``llama-3.1-8b``, ``llama-3.2-3b``, ``sea-lion-v3-8b``, ``qwen2.5-7b``, ``sailor2-8b``,
``seallms-v3-7b``, ``phi-4-mini`` (open, base and SFT) and ``gpt-4.1``, ``gpt-4o``,
``gpt-4o-mini`` (API, zero-shot). The paper's text speaks of "7 open-source and 4
closed-source" models, but its table names three API models; only those are recorded.

Which of our predictions tags a published state corresponds to (column ``our_tag``):

- ``zeroshot`` (API models): the untuned model on the whole OOD split = our tag ``zeroshot``.
- ``base`` (open models): the paper's untuned model, also on the whole OOD split = our tag
  ``zeroshot``. Our tag ``base`` is the untuned model on the fine-tuned questions only
  (notebook 04); it covers the same samples only when the recipe trains on every question.
- ``sft``: the LoRA-tuned model = our tag ``sft``.

Example
-------
>>> published()["counts"]["ood_subgroups"]
48
>>> r = paper_results("sailor2-8b")
>>> float(r.query("metric == 'accuracy' and state == 'sft'")["value"].iloc[0])
0.72
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import pandas as pd

__all__ = ["PUBLISHED_LABEL", "PAPER_PARAMS_NAMES", "OUR_TAG", "published", "paper_results",
           "paper_ablation"]

PUBLISHED_LABEL = "published (Tan et al. 2026)"

#: the paper's ten named models, by our params names (open first, then API)
PAPER_PARAMS_NAMES = ("llama-3.1-8b", "llama-3.2-3b", "sea-lion-v3-8b", "qwen2.5-7b", "sailor2-8b",
                      "seallms-v3-7b", "phi-4-mini", "gpt-4.1", "gpt-4o", "gpt-4o-mini")

#: the paper's model state -> our predictions tag holding the comparable figure
OUR_TAG = {"zeroshot": "zeroshot", "base": "zeroshot", "sft": "sft"}

_METRICS = ("accuracy", "nmae", "win_rate")
_STATES = ("zeroshot", "base", "sft")


@lru_cache(maxsize=1)
def published() -> dict:
    """The published figures as a nested dict (see ``resources/published.json``)."""
    return json.loads(resources.files("sgvalues").joinpath("resources/published.json").read_text())


def _select(df: pd.DataFrame, model: str | None) -> pd.DataFrame:
    if model is None:
        return df.reset_index(drop=True)
    hit = (df["params_name"] == model) | (df["model"].str.lower() == str(model).lower())
    return df[hit].reset_index(drop=True)


def paper_results(model: str | None = None) -> pd.DataFrame:
    """The paper's main results table (OOD split), tidy: one row per model, state and metric.

    Parameters
    ----------
    model : str, optional
        A params name (``"llama-3.1-8b"``) or the paper's model name (``"Llama-3.1-8B"``,
        case-insensitive). ``None`` returns every row, the open-source average included. An
        unknown name gives an empty frame (the model is simply not in the paper).

    Returns
    -------
    pandas.DataFrame
        Columns ``params_name`` (``None`` for the open-source average), ``model`` (the paper's
        name), ``state`` (``zeroshot`` for API models, ``base``/``sft`` for open models),
        ``metric`` (``accuracy``, ``nmae``, ``win_rate``), ``value`` (a fraction),
        ``our_tag`` (the predictions tag of ours to compare with, see the module docstring) and
        ``source`` (:data:`PUBLISHED_LABEL` with the table's name).

    Notes
    -----
    Accuracy is the share of exact modal-answer matches, NMAE the mean absolute error divided
    by the scale's range, :math:`\\lvert \\hat y - y \\rvert / (\\max - \\min)`, and the
    overall win rate :math:`(s_1 + s_2)/2` over the two position swaps against GPT-4.1's
    reference answer (win 1, tie 0.5, loss 0). The paper prints SFT - base changes too; they
    are kept in ``published.json`` (``delta``) and equal the difference of the two values.

    Examples
    --------
    >>> r = paper_results("gpt-4.1")
    >>> sorted(r["metric"]), set(r["state"])
    (['accuracy', 'nmae', 'win_rate'], {'zeroshot'})
    >>> float(r.set_index("metric").loc["accuracy", "value"])
    0.574
    """
    source = f"{PUBLISHED_LABEL}, main results table (OOD split)"
    rows = []
    for row in published()["main_table"]["rows"]:
        for metric in _METRICS:
            for state in _STATES:
                if state in row[metric]:
                    rows.append({"params_name": row["params_name"], "model": row["model"],
                                 "state": state, "metric": metric, "value": row[metric][state],
                                 "our_tag": OUR_TAG[state], "source": source})
    return _select(pd.DataFrame(rows), model)


def paper_ablation(model: str | None = None) -> pd.DataFrame:
    """The paper's fairness ablation table (OOD split), tidy: one row per model, metric, statistic.

    Parameters
    ----------
    model : str, optional
        A params name or the paper's model name; ``None`` returns every row (four models and
        the average, ``params_name`` ``None``).

    Returns
    -------
    pandas.DataFrame
        Columns ``params_name``, ``model``, ``metric`` (``accuracy``, ``nmae``), ``statistic``
        (``norm_range``, ``cv``), ``base``, ``sft`` and ``source``.

    Notes
    -----
    Over the per-subgroup scores :math:`P_g`: Norm. Range
    :math:`= (\\max_g P_g - \\min_g P_g) / \\max_g P_g` and CV :math:`= \\sigma / \\mu`
    (``fairness.normalized_range``, ``fairness.coefficient_of_variation``).

    Examples
    --------
    >>> a = paper_ablation("Avg").set_index(["metric", "statistic"])
    >>> float(a.loc[("nmae", "norm_range"), "sft"])
    0.336
    """
    source = f"{PUBLISHED_LABEL}, fairness ablation table (OOD split)"
    rows = []
    for row in published()["ablation_table"]["rows"]:
        for metric in ("accuracy", "nmae"):
            for statistic in ("norm_range", "cv"):
                v = row[metric][statistic]
                rows.append({"params_name": row["params_name"], "model": row["model"],
                             "metric": metric, "statistic": statistic, "base": v["base"],
                             "sft": v["sft"], "source": source})
    return _select(pd.DataFrame(rows), model)
