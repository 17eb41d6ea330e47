"""The paper's figures beside ours, in one table (chapters 04, 05, 07 and the comparison page).

The published figures come from :mod:`sgvalues.published` (``paper_results``,
``paper_ablation``), matched to our run by its params name (``params/<name>.yaml``). A model
the paper did not evaluate is shown beside the paper's open-source average, and the sentence
that goes with the table says so. Every published row is labelled
:data:`sgvalues.published.PUBLISHED_LABEL`.

Which of our figures a published one is comparable with: the paper's *base* model was scored
on the whole OOD split, like our ``zeroshot`` tag; our ``base`` tag is the untuned model on
the fine-tuned questions only (``published.OUR_TAG``).

Example
-------
>>> ours = pd.DataFrame({"state": ["zeroshot"], "accuracy": [0.25], "nmae": [0.3], "n": [400]})
>>> t = results_beside_paper(ours, "llama-3.1-8b", "ours")
>>> t[["source", "state", "accuracy"]].to_dict("records")[1]
{'source': 'published (Tan et al. 2026): Llama-3.1-8B', 'state': 'base', 'accuracy': 0.514}
"""

from __future__ import annotations

import pandas as pd

__all__ = ["AVERAGE", "paper_match", "results_beside_paper", "ablation_beside_paper", "spread_beside_paper",
           "paper_sentence"]

#: the paper's row used when it did not evaluate our model
AVERAGE = "Open-source Avg"


def paper_match(params_name: str | None) -> str | None:
    """The paper's name for the model of ``params_name``, or ``None`` when the paper lacks it.

    >>> paper_match("sailor2-8b"), paper_match("smollm2-135m")
    ('Sailor2-8B', None)
    """
    from sgvalues.published import paper_results

    if not params_name:
        return None
    r = paper_results(params_name)
    return str(r["model"].iloc[0]) if len(r) else None


def _published_rows(params_name: str | None, metrics) -> tuple[pd.DataFrame, bool]:
    from sgvalues.published import PUBLISHED_LABEL, paper_results

    r = paper_results(params_name) if params_name else pd.DataFrame()
    matched = len(r) > 0
    if not matched:
        allr = paper_results()
        r = allr[allr["model"] == AVERAGE]
    r = r[r["metric"].isin(list(metrics))]
    wide = r.pivot_table(index=["model", "state"], columns="metric", values="value", aggfunc="first",
                         sort=False).reset_index()
    wide.columns.name = None
    wide.insert(0, "source", [f"{PUBLISHED_LABEL}: {m}" for m in wide["model"]])
    return wide.drop(columns="model"), matched


def results_beside_paper(ours: pd.DataFrame, params_name: str | None, our_label: str,
                         metrics=("accuracy", "nmae")) -> pd.DataFrame:
    """Our model states and the paper's for the same model (or its open-source average), one table.

    Parameters
    ----------
    ours : DataFrame
        One row per model state: ``state`` (``zeroshot``, ``base``, ``sft``), the ``metrics``
        columns and optionally ``n`` (samples) and ``rests_on`` (what the row was scored on).
    params_name : str or None
        The run's params name, matched against the paper's models.
    our_label : str
        How our rows are labelled in ``source`` (e.g. the model's display name).

    Returns
    -------
    DataFrame
        ``source, state, <metrics>, n`` (+ ``rests_on``): ours first, then the published rows
        (``n`` missing: the paper's OOD split has 10,177 samples).
    """
    keep = ["state", *metrics] + [c for c in ("n", "rests_on") if c in ours.columns]
    mine = ours[keep].assign(source=our_label)
    pub, _ = _published_rows(params_name, metrics)
    out = pd.concat([mine, pub], ignore_index=True)
    cols = ["source", "state", *metrics] + [c for c in ("n", "rests_on") if c in out.columns]
    return out[cols]


def ablation_beside_paper(ours: pd.DataFrame, params_name: str | None, our_label: str) -> pd.DataFrame:
    """The fairness ablation (Norm. Range and CV, base and SFT) of our run beside the paper's.

    ``ours`` is :func:`sgvalues.fairness.ablation_table` (``statistic`` named
    ``Acc Norm. Range``, ``Acc CV``, ``NMAE Norm. Range``, ``NMAE CV``; ``base``, ``sft``).
    A ``source`` column in ``ours`` (e.g. each run's label) is kept; otherwise ``our_label``.
    The paper's rows: the same model when its ablation table has it, and always its average.
    Returns ``source, statistic, base, sft, sft − base``.

    Examples
    --------
    >>> t = ablation_beside_paper(pd.DataFrame(columns=["statistic", "base", "sft"]), "sailor2-8b", "ours")
    >>> sorted(set(t["source"]))
    ['published (Tan et al. 2026): Avg', 'published (Tan et al. 2026): Sailor2-8B']
    """
    from sgvalues.published import PUBLISHED_LABEL, paper_ablation

    names = {("accuracy", "norm_range"): "Acc Norm. Range", ("accuracy", "cv"): "Acc CV",
             ("nmae", "norm_range"): "NMAE Norm. Range", ("nmae", "cv"): "NMAE CV"}
    pub = paper_ablation(params_name) if params_name else pd.DataFrame()
    avg = paper_ablation()
    avg = avg[avg["params_name"].isna()]
    pub = pd.concat([pub, avg], ignore_index=True) if len(pub) else avg
    pub = pub.assign(source=[f"{PUBLISHED_LABEL}: {m}" for m in pub["model"]],
                     statistic=[names[(m, s)] for m, s in zip(pub["metric"], pub["statistic"])])
    if len(ours):
        mine = ours if "source" in ours.columns else ours.assign(source=our_label)
        mine = mine[["source", "statistic", "base", "sft"]]
    else:
        mine = None
    parts = [p for p in (mine, pub[["source", "statistic", "base", "sft"]]) if p is not None]
    out = pd.concat(parts, ignore_index=True)
    out["sft − base"] = out["sft"].astype(float) - out["base"].astype(float)
    order = {name: i for i, name in enumerate(names.values())}
    out["_o"] = out["statistic"].map(order)
    out["_s"] = out["source"].astype(str).str.startswith(PUBLISHED_LABEL).astype(int)
    return out.sort_values(["_s", "source", "_o"], kind="stable").drop(columns=["_o", "_s"]).reset_index(drop=True)


def spread_beside_paper(predictions: pd.DataFrame, params_name: str | None, our_label: str) -> pd.DataFrame:
    """How unevenly the untuned model treats subgroups, ours beside the paper's *base* column.

    Norm. Range and CV (:func:`sgvalues.fairness.normalized_range`,
    :func:`sgvalues.fairness.coefficient_of_variation`) of the per-subgroup accuracy and NMAE
    of ``predictions`` (one model state), beside the paper's ablation table (base) for the same
    model when it has it, and its average. Returns ``source`` and one column per statistic.

    Examples
    --------
    >>> p = pd.DataFrame({"subgroup": ["a", "a", "b", "b"], "prediction": [1, 1, 1, 2], "target": [1, 1, 2, 2],
    ...                   "scale_min": 1, "scale_max": 2, "status": "ok"})
    >>> spread_beside_paper(p, None, "ours").iloc[0].to_dict()["Acc Norm. Range"]
    0.5
    """
    from sgvalues import fairness, metrics

    per = metrics.aggregate(predictions, "subgroup")
    mine = {"source": our_label,
            "Acc Norm. Range": fairness.normalized_range(per["accuracy"]),
            "Acc CV": fairness.coefficient_of_variation(per["accuracy"]),
            "NMAE Norm. Range": fairness.normalized_range(per["nmae"]),
            "NMAE CV": fairness.coefficient_of_variation(per["nmae"])}
    pub = ablation_beside_paper(pd.DataFrame(columns=["statistic", "base", "sft"]), params_name, our_label)
    wide = pub.pivot_table(index="source", columns="statistic", values="base", aggfunc="first", sort=False)
    wide.columns.name = None
    out = pd.concat([pd.DataFrame([mine]), wide.reset_index()], ignore_index=True)
    return out[["source", "Acc Norm. Range", "Acc CV", "NMAE Norm. Range", "NMAE CV"]]


def paper_sentence(params_name: str | None, label: str) -> str:
    """Markdown: which published rows stand beside ours, and how the states correspond.

    Examples
    --------
    >>> paper_sentence("smollm2-135m", "SmolLM2")[:60]
    'The paper did not evaluate SmolLM2: beside it stand the pape'
    """
    from sgvalues.published import PUBLISHED_LABEL, published
    from sgvalues.report.format import fmt_count

    n_ood = published()["counts"]["ood_samples"]
    name = paper_match(params_name)
    if name is None:
        who = (f"The paper did not evaluate {label}: beside it stand the paper's open-source average "
               f"({PUBLISHED_LABEL}), for scale only.")
    else:
        who = f"The paper evaluated this model as {name}; its figures ({PUBLISHED_LABEL}) stand beside ours."
    return (who + f" The paper's *base* model was scored on its whole OOD split ({fmt_count(n_ood)} samples, "
            "real WVS-7), like our `zeroshot` rows (which may rest on a seeded subset of its questions: see their "
            "`n`); our `base` rows cover only the fine-tuned questions.")
