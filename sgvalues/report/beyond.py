"""Chapter 08's tables, sentences and figures: training variants and the option-order effect.

Computing lives in :mod:`sgvalues.beyond`, :mod:`sgvalues.fairness` and
:mod:`sgvalues.option_order`; this module turns their tables into what the page shows, and
every sentence it writes is computed from those tables.
"""
from __future__ import annotations

import pandas as pd

from sgvalues.report.format import fmt_delta, fmt_rate

__all__ = ["variant_table", "variant_sentence", "best_variant", "order_table", "order_sentence", "plot_order_effect"]

_FAIR_COLUMNS = {("accuracy", "norm_range"): "acc NR", ("accuracy", "cv"): "acc CV",
                 ("nmae", "norm_range"): "NMAE NR", ("nmae", "cv"): "NMAE CV"}


def variant_table(predictions: pd.DataFrame, split: str = "ood") -> pd.DataFrame:
    """One row for the base model and one per variant on ``split``: scores and subgroup spread.

    Parameters
    ----------
    predictions : :func:`sgvalues.beyond.variant_predictions` output.

    Returns
    -------
    DataFrame
        ``predictor, accuracy, nmae, jsd, acc NR, acc CV, NMAE NR, NMAE CV, n``: the scores of
        :func:`sgvalues.metrics.aggregate` and the Norm. Range and CV of per-subgroup accuracy
        and NMAE over every subgroup of the split (:func:`sgvalues.fairness.fairness_table`,
        ``stratum = all``).
    """
    from sgvalues import fairness, metrics

    p = predictions[predictions["split"] == split]
    if p.empty:
        return pd.DataFrame(columns=["predictor", "accuracy", "nmae", "jsd", *_FAIR_COLUMNS.values(), "n"])
    first = p["run"].iloc[0]
    states = [("base", p[(p["run"] == first) & (p["tag"] == "base")])]
    states += [(name, g[g["tag"] == "sft"]) for name, g in p.groupby("run", sort=False)]
    rows = []
    for name, df in states:
        s = metrics.aggregate(df, None).iloc[0]
        fair = fairness.fairness_table(fairness.subgroup_scores(metrics.score_samples(df.assign(run=name, label=name))),
                                       per_stratum=False).set_index("metric")
        rows.append({"predictor": name, "accuracy": s["accuracy"], "nmae": s["nmae"], "jsd": s["jsd"],
                     **{label: fair.loc[m, k] for (m, k), label in _FAIR_COLUMNS.items()}, "n": int(s["n"])})
    return pd.DataFrame(rows)


def variant_sentence(table: pd.DataFrame, split: str = "ood") -> str:
    """Markdown: which variant is most accurate, closest in distribution, and most even, against base.

    Examples
    --------
    >>> t = pd.DataFrame({"predictor": ["base", "modal", "distribution"], "accuracy": [0.3, 0.8, 0.7],
    ...                   "jsd": [0.5, 0.4, 0.2], "NMAE NR": [0.9, 0.8, 0.95], "n": 40})
    >>> print(variant_sentence(t))
    On the 40 samples of the **ood** split: the most accurate is *modal* (0.800; base 0.300, +0.500); the closest to the subgroups' answer distributions (lowest Jensen–Shannon distance) is *distribution* (0.200; base 0.500, -0.300); the most even NMAE across subgroups (lowest Norm. Range) is *modal* (0.800; base 0.900, -0.100).
    >>> print(variant_sentence(t.assign(**{"NMAE NR": [0.5, 0.8, 0.95]})).split("the most even NMAE")[-1])
     across subgroups (lowest Norm. Range) is *modal* (0.800; base 0.500, +0.300, no better than the untuned model).
    """
    if table.empty or (table["predictor"] == "base").sum() != 1:
        return "No variant was evaluated on this split."
    base = table.set_index("predictor").loc["base"]
    variants = table[table["predictor"] != "base"]
    parts = []
    for column, what, best in (("accuracy", "the most accurate", "max"),
                               ("jsd", "the closest to the subgroups' answer distributions (lowest "
                                       "Jensen–Shannon distance)", "min"),
                               ("NMAE NR", "the most even NMAE across subgroups (lowest Norm. Range)", "min")):
        v = variants.dropna(subset=[column])
        if v.empty or pd.isna(base[column]):
            continue
        top = v[column].max() if best == "max" else v[column].min()
        names = [f"*{n}*" for n in v.loc[v[column].round(9) == round(top, 9), "predictor"]]
        who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]} (tied)"
        better = top > base[column] if best == "max" else top < base[column]
        parts.append(f"{what} is {who} ({fmt_rate(top)}; base {fmt_rate(base[column])}, "
                     f"{fmt_delta(top - base[column])}{'' if better else ', no better than the untuned model'})")
    return f"On the {int(base['n']):,} samples of the **{split}** split: " + "; ".join(parts) + "."


def best_variant(table: pd.DataFrame) -> str:
    """The variant with the highest accuracy in a :func:`variant_table` (the first listed on a tie).

    >>> best_variant(pd.DataFrame({"predictor": ["base", "modal", "distribution"], "accuracy": [0.9, 0.5, 0.5]}))
    'modal'
    """
    v = table[table["predictor"] != "base"].reset_index(drop=True)
    if v.empty:
        raise ValueError("variant_table has no variant row: train and evaluate a variant first")
    return str(v.loc[v["accuracy"].idxmax(), "predictor"])


def order_table(effects: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``state, option_order, accuracy, nmae, jsd, changed, n`` from :func:`sgvalues.option_order.order_effect`
    per model state."""
    cols = ["option_order", "accuracy", "nmae", "jsd", "changed", "n"]
    return pd.concat([e[cols].assign(state=s) for s, e in effects.items()], ignore_index=True)[["state", *cols]]


def order_sentence(table: pd.DataFrame) -> str:
    """Markdown: per state, the share of answers the reversed order changes and what averaging does.

    Examples
    --------
    >>> t = pd.DataFrame({"state": "base", "option_order": ["as_asked", "reversed", "order_averaged"],
    ...                   "accuracy": [0.5, 0.3, 0.55], "changed": [0.0, 0.6, 0.2], "n": 40})
    >>> print(order_sentence(t))
    - *base*: listing the options in reverse changes 60.0 % of its 40 answers; accuracy 0.500 as asked, 0.300 reversed, 0.550 averaged over both orders (+0.050 against as asked).
    """
    lines = []
    for state, g in table.groupby("state", sort=False):
        g = g.set_index("option_order")
        if not {"as_asked", "reversed"} <= set(g.index):
            continue
        # the share as the table prints it (three decimals), so sentence and table agree to the digit
        share = 100 * float(fmt_rate(g.loc["reversed", "changed"]))
        line = (f"- *{state}*: listing the options in reverse changes {share:.1f} % "
                f"of its {int(g.loc['as_asked', 'n']):,} answers; accuracy {fmt_rate(g.loc['as_asked', 'accuracy'])} "
                f"as asked, {fmt_rate(g.loc['reversed', 'accuracy'])} reversed")
        if "order_averaged" in g.index:
            avg = g.loc["order_averaged", "accuracy"]
            line += (f", {fmt_rate(avg)} averaged over both orders "
                     f"({fmt_delta(avg - g.loc['as_asked', 'accuracy'])} against as asked)")
        lines.append(line + ".")
    return "\n".join(lines) if lines else "No state was evaluated under both option orders."


def plot_order_effect(table: pd.DataFrame):
    """Accuracy per model state under each option order (bars), the changed share written on the
    reversed bars."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    order = [o for o in ("as_asked", "reversed", "order_averaged") if o in set(table["option_order"])]
    fig, ax = plt.subplots(figsize=(6.5, 1.2 + 0.55 * table["state"].nunique() * len(order) / 2))
    sns.barplot(data=table, y="state", x="accuracy", hue="option_order", hue_order=order, orient="h", ax=ax,
                palette=["C0", "C3", "0.6"][:len(order)])
    for container, o in zip(ax.containers, order):
        if o != "reversed":
            continue
        changed = table[table["option_order"] == "reversed"].set_index("state")["changed"]
        labels = [f"{100 * changed.get(s, float('nan')):.0f} % changed" for s in table["state"].unique()]
        ax.bar_label(container, labels=labels, fontsize=8, padding=3)
    ax.set(xlim=(0, 1.15), xlabel="accuracy (modal answer matched)", ylabel="")
    handles, _ = ax.get_legend_handles_labels()
    ax.get_legend().remove()
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.legend(handles, [o.replace("_", " ") for o in order], loc="lower center", ncol=len(order), frameon=False,
               fontsize=9, bbox_to_anchor=(0.5, 0.0))
    return fig
