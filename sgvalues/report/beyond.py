"""Chapter 08's tables, sentences and figures: training variants and the option-order effect.

Computing lives in :mod:`sgvalues.beyond`, :mod:`sgvalues.fairness` and
:mod:`sgvalues.option_order`; this module turns their tables into what the page shows, and
every sentence it writes is computed from those tables.
"""
from __future__ import annotations

import pandas as pd

from sgvalues.report.format import fmt_delta, fmt_rate

__all__ = ["variant_table", "variant_sentence", "best_variant", "order_table", "order_sentence", "plot_order_effect",
           "order_question_table", "order_plan_sentence", "explanation_sentence", "near_tie_sentence",
           "ORDER_SHORT_NAMES", "order_score_table", "order_share_table", "short_order_names"]

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


_ORDER_EXTRA = ["same_content", "same_code", "same_position", "near_ties"]


def _by_state(effects) -> dict[str, pd.DataFrame]:
    if isinstance(effects, pd.DataFrame):
        return {s: g.drop(columns="state") for s, g in effects.groupby("state", sort=False)}
    return dict(effects)


def order_table(effects) -> pd.DataFrame:
    """``state, option_order, accuracy, nmae, jsd, changed, n`` from :func:`sgvalues.option_order.order_effect`
    per model state, then ``same_content, same_code, same_position, near_ties`` where the effects have them.

    ``effects``: state -> ``order_effect`` table, or one ``order_effect(..., by=["state"])`` table."""
    effects = _by_state(effects)
    cols = ["option_order", "accuracy", "nmae", "jsd", "changed", "n"]
    first = next(iter(effects.values()), pd.DataFrame())
    cols = cols[:-1] + [c for c in _ORDER_EXTRA if c in first.columns] + ["n"]
    return pd.concat([e[cols].assign(state=s) for s, e in effects.items()], ignore_index=True)[["state", *cols]]


#: the short column names of chapter 08's option-order tables (eight to ten columns must fit the text column)
ORDER_SHORT_NAMES = {"question_id": "question", "reversed": "rev.", "reversed_lines": "rev. lines",
                     "permuted": "perm.", "permuted_lines": "perm. lines", "order_averaged": "averaged",
                     "same_content": "content", "same_code": "code", "same_position": "position",
                     "near_ties": "near-ties", "runner_up": "next", "n_samples": "n"}


def order_score_table(orders: pd.DataFrame) -> pd.DataFrame:
    """The scores of :func:`order_table`: ``state, option_order, accuracy, nmae, jsd, changed, n``."""
    return orders[[c for c in orders.columns if c not in _ORDER_EXTRA]]


def order_share_table(orders: pd.DataFrame) -> pd.DataFrame:
    """What the reordered answers kept, from :func:`order_table`: ``state, option_order`` and the
    shares of answers keeping their content, code and position, and of near-ties (short names).

    >>> o = pd.DataFrame({"state": ["base"], "option_order": ["reversed"], "accuracy": [0.5], "same_code": [0.2],
    ...                   "near_ties": [0.1], "n": [4]})
    >>> order_share_table(o).columns.tolist()
    ['state', 'option_order', 'code', 'near-ties']
    """
    return orders[["state", "option_order", *[c for c in _ORDER_EXTRA if c in orders.columns]]].rename(
        columns=ORDER_SHORT_NAMES)


def short_order_names(table: pd.DataFrame, drop: tuple[str, ...] = ("n_prompts",)) -> pd.DataFrame:
    """``table`` with :data:`ORDER_SHORT_NAMES` as column names and the ``drop`` columns left out.

    >>> short_order_names(pd.DataFrame(columns=["question_id", "permuted_lines", "runner_up", "n_prompts"])).columns.tolist()
    ['question', 'perm. lines', 'next']
    """
    return table.drop(columns=[c for c in drop if c in table.columns]).rename(columns=ORDER_SHORT_NAMES)


def order_question_table(effects) -> pd.DataFrame:
    """Per state and question, the share of answers each option order changes (one column per order).

    Parameters
    ----------
    effects : state -> :func:`sgvalues.option_order.order_effect` ``by=["question_id"]``, or one
        ``order_effect(..., by=["state", "question_id"])`` table.

    Examples
    --------
    >>> e = pd.DataFrame({"question_id": ["Q1", "Q1", "Q2", "Q2"],
    ...                   "option_order": ["as_asked", "reversed", "as_asked", "reversed"],
    ...                   "changed": [0.0, 0.5, 0.0, 1.0], "n": [4, 4, 2, 2]})
    >>> order_question_table({"base": e}).to_dict("records")
    [{'state': 'base', 'question_id': 'Q1', 'n': 4, 'reversed': 0.5}, {'state': 'base', 'question_id': 'Q2', 'n': 2, 'reversed': 1.0}]
    """
    from sgvalues.option_order import AVERAGED, ORDERS

    parts = []
    for state, e in _by_state(effects).items():
        asked = e[e["option_order"] == "as_asked"].set_index("question_id")["n"]
        e = e[e["option_order"] != "as_asked"]
        wide = e.pivot_table(index="question_id", columns="option_order", values="changed", aggfunc="first")
        present = [o for o in (*ORDERS, AVERAGED) if o in wide.columns]
        # the question's samples as asked (the permuted orders count k rows per sample)
        n = asked.reindex(wide.index).fillna(e[e["option_order"] == "reversed"].set_index("question_id")["n"])
        parts.append(wide[present].assign(state=state, n=n.astype(int)).reset_index())
    if not parts:
        return pd.DataFrame(columns=["state", "question_id", "n"])
    out = pd.concat(parts, ignore_index=True)
    out.columns.name = None
    return out[["state", "question_id", "n", *[c for c in out.columns if c not in ("state", "question_id", "n")]]]


def order_plan_sentence(plan: pd.DataFrame) -> str:
    """Markdown: how many questions had their anchor wording rewritten, were left out, and on how many prompts.

    Parameters
    ----------
    plan : :func:`sgvalues.option_order.order_plan` (or ``run_order_plan``) output.

    Examples
    --------
    >>> plan = pd.DataFrame({"question_id": ["Q1", "Q2"] * 2, "option_order": ["reversed"] * 2 + ["permuted"] * 2,
    ...                      "asked": [True, True, True, False], "anchors_rewritten": [False, True, False, False],
    ...                      "reason": ["", "anchors rewritten", "", "numbered scale: a shuffled scale is no scale"],
    ...                      "n_prompts": [50, 50, 30, 0]})
    >>> print(order_plan_sentence(plan))
    Of the 2 questions, 1 (Q2) names codes of its scale in the wording ("1 means ..."): where the codes follow their options, the wording's codes are rewritten with them, so no prompt contradicts itself. Left out: *permuted* 1 question (Q2: numbered scale: a shuffled scale is no scale). Prompts asked: *reversed* 100, *permuted* 30.
    """
    if plan.empty:
        return "No question was asked under another option order."
    questions = list(dict.fromkeys(plan["question_id"]))
    rewritten = list(dict.fromkeys(plan.loc[plan["anchors_rewritten"].astype(bool), "question_id"]))
    text = f"Of the {len(questions):,} questions, "
    if rewritten:
        text += (f"{len(rewritten):,} ({', '.join(rewritten)}) name{'s' if len(rewritten) == 1 else ''} codes of "
                 f"{'its' if len(rewritten) == 1 else 'their'} scale in the wording (\"1 means ...\"): where the codes "
                 "follow their options, the wording's codes are rewritten with them, so no prompt contradicts itself.")
    else:
        text += "none names codes of its scale in the wording, so no wording needed rewriting."
    left = []
    for order, g in plan[~plan["asked"].astype(bool)].groupby("option_order", sort=False):
        reasons = "; ".join(f"{q}: {r}" for q, r in zip(g["question_id"], g["reason"]))
        left.append(f"*{order}* {len(g):,} question{'' if len(g) == 1 else 's'} ({reasons})")
    text += " Left out: " + ("; ".join(left) if left else "none") + "."
    counts = plan.groupby("option_order", sort=False)["n_prompts"].sum()
    text += " Prompts asked: " + ", ".join(f"*{o}* {int(n):,}" for o, n in counts.items() if o != "as_asked") + "."
    return text


_EXPLAINS = {"content": "the options' content (the model reads them)", "code": "the codes (it prefers a number)",
             "position": "the positions (it prefers a line)"}


def explanation_sentence(explanation: pd.DataFrame, state_column: str = "state") -> str:
    """Markdown, one line per state: which explanation of the order effect the answers support.

    Parameters
    ----------
    explanation : :func:`sgvalues.option_order.order_explanation` rows, one per state (``state_column``).

    Examples
    --------
    >>> e = pd.DataFrame({"state": ["base", "modal"], "content": [0.2, 0.7], "code": [0.4, 0.65],
    ...                   "position": [0.9, 0.3], "support": ["position", ""], "runner_up": ["code", "code"],
    ...                   "margin": [0.5, 0.05], "n_samples": [60, 60], "n_prompts": [480, 480]})
    >>> print(explanation_sentence(e))
    - *base*: over 480 reordered prompts of 60 samples, the answer kept its option 20.0 % of the time, its code 40.0 % and its line 90.0 %: the data support **the positions (it prefers a line)** (ahead of code by 0.500; the set margin is 0.10).
    - *modal*: over 480 reordered prompts of 60 samples, the answer kept its option 70.0 % of the time, its code 65.0 % and its line 30.0 %: the data do not separate content from code (the two shares are within 0.10).
    """
    from sgvalues.option_order import SUPPORT_MARGIN

    if explanation.empty:
        return ("No sample was asked under both families of option orders (codes following their options, and "
                "the same codes with the lines reordered), so codes and positions cannot be told apart here.")
    lines = []
    for _, r in explanation.iterrows():
        line = (f"- *{r[state_column]}*: over {int(r['n_prompts']):,} reordered prompts of {int(r['n_samples']):,} "
                f"samples, the answer kept its option {100 * float(fmt_rate(r['content'])):.1f} % of the time, its "
                f"code {100 * float(fmt_rate(r['code'])):.1f} % and its line {100 * float(fmt_rate(r['position'])):.1f} %: ")
        if r["support"]:
            line += (f"the data support **{_EXPLAINS[r['support']]}** (ahead of {r['runner_up']} by "
                     f"{fmt_rate(r['margin'])}; the set margin is {SUPPORT_MARGIN:.2f}).")
        else:
            top = max(("content", "code", "position"), key=lambda e: r[e])
            line += (f"the data do not separate {top} from {r['runner_up']} (the two shares are within "
                     f"{SUPPORT_MARGIN:.2f}).")
        lines.append(line)
    return "\n".join(lines)


def near_tie_sentence(table: pd.DataFrame) -> str:
    """Markdown, one line per state: how often the order-averaged prediction is a near-tie, beside as asked.

    Parameters
    ----------
    table : :func:`order_table` output with ``near_ties``.

    Examples
    --------
    >>> t = pd.DataFrame({"state": "base", "option_order": ["as_asked", "reversed", "order_averaged"],
    ...                   "near_ties": [0.1, 0.2, 0.35], "n": 40})
    >>> print(near_tie_sentence(t))
    - *base*: 35.0 % of its 40 order-averaged predictions are near-ties (the two most probable options within 0.05 of each other), against 10.0 % as asked: there the argmax, not the model, picks the answer.
    """
    from sgvalues.option_order import AVERAGED, NEAR_TIE_GAP

    lines = []
    for state, g in table.groupby("state", sort=False):
        g = g.set_index("option_order")
        if "near_ties" not in g.columns or AVERAGED not in g.index or pd.isna(g.loc[AVERAGED, "near_ties"]):
            continue
        avg, n = g.loc[AVERAGED, "near_ties"], int(g.loc[AVERAGED, "n"])
        line = (f"- *{state}*: {100 * float(fmt_rate(avg)):.1f} % of its {n:,} order-averaged predictions are "
                f"near-ties (the two most probable options within {NEAR_TIE_GAP:.2f} of each other)")
        if "as_asked" in g.index and pd.notna(g.loc["as_asked", "near_ties"]):
            line += f", against {100 * float(fmt_rate(g.loc['as_asked', 'near_ties'])):.1f} % as asked"
        line += (": there the argmax, not the model, picks the answer." if avg > 0
                 else ": no averaged answer rests on a near-tie.")
        lines.append(line)
    return "\n".join(lines) if lines else "No state has an order-averaged prediction with option probabilities."


def order_sentence(table: pd.DataFrame) -> str:
    """Markdown: per state, the share of answers the reversed order changes and what averaging does.

    Examples
    --------
    >>> t = pd.DataFrame({"state": "base", "option_order": ["as_asked", "reversed", "order_averaged"],
    ...                   "accuracy": [0.5, 0.3, 0.55], "changed": [0.0, 0.6, 0.2], "n": 40})
    >>> print(order_sentence(t))
    - *base*: listing the options in reverse (codes following their options) changes 60.0 % of its 40 answers; accuracy 0.500 as asked, 0.300 reversed, 0.550 averaged over both orders (+0.050 against as asked).
    """
    lines = []
    for state, g in table.groupby("state", sort=False):
        g = g.set_index("option_order")
        if not {"as_asked", "reversed"} <= set(g.index):
            continue
        # the share as the table prints it (three decimals), so sentence and table agree to the digit
        share = 100 * float(fmt_rate(g.loc["reversed", "changed"]))
        line = (f"- *{state}*: listing the options in reverse (codes following their options) changes {share:.1f} % "
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

    from sgvalues.option_order import AVERAGED, ORDERS

    order = [o for o in (*ORDERS, AVERAGED) if o in set(table["option_order"])]
    fig, ax = plt.subplots(figsize=(6.5, 1.6 + 0.3 * table["state"].nunique() * len(order)))
    sns.barplot(data=table, y="state", x="accuracy", hue="option_order", hue_order=order, orient="h", ax=ax,
                palette=sns.color_palette("colorblind", len(order)))
    for container, o in zip(ax.containers, order):
        if o != "reversed":
            continue
        changed = table[table["option_order"] == "reversed"].set_index("state")["changed"]
        labels = [f"{100 * changed.get(s, float('nan')):.0f} % changed" for s in table["state"].unique()]
        ax.bar_label(container, labels=labels, fontsize=8, padding=3)
    ax.set(xlim=(0, 1.15), xlabel="accuracy (modal answer matched)", ylabel="")
    handles, _ = ax.get_legend_handles_labels()
    ax.get_legend().remove()
    ncol = min(len(order), 3)
    rows = -(-len(order) // ncol)
    fig.tight_layout(rect=(0, (0.1 + 0.25 * rows) / fig.get_figheight(), 1, 1))   # room for the legend rows
    fig.legend(handles, [o.replace("_", " ") for o in order], loc="lower center", ncol=ncol, frameon=False,
               fontsize=9, bbox_to_anchor=(0.5, 0.0))
    return fig
