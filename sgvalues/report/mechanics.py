"""Fairness beside its mechanics: Norm. Range and CV beside the spread they divide, and beside
predictors that ignore the persona, with the "fairness paradox" sentence computed.

Norm. Range is :math:`(\\max - \\min)/\\max` and CV is :math:`\\sigma/\\bar s`: either can rise
while subgroups come closer, when the denominator falls faster than the spread (an NMAE Norm.
Range rises when the best subgroup's NMAE approaches 0). So the pages show, per model state, the
absolute range and SD of the per-subgroup scores beside the two ratios
(:func:`sgvalues.fairness.fairness_table`'s ``range`` and ``sd``), the same four statistics for
``population_mode`` (persona-blind: one answer per question for every subgroup) and
``marginal_product`` on the same samples (:func:`mechanics_rows`, :func:`mechanics_table`), and
:func:`paradox_sentence` says, from those numbers, whether the absolute spread grew and whether a
persona-blind predictor shows the same Norm. Range change.

Example
-------
>>> rows = pd.DataFrame({"predictor": ["base", "sft", "population_mode (baseline)"], "metric": "nmae",
...                      "norm_range": [0.600, 0.857, 1.0], "range": [0.389, 0.222, 0.4], "sd": [0.086, 0.053, 0.1],
...                      "min": [0.259, 0.037, 0.0], "max": [0.648, 0.259, 0.4], "n_subgroups": 50})
>>> print(paradox_sentence(rows))  # doctest: +NORMALIZE_WHITESPACE
NMAE over the 50 subgroups, base → sft: Norm. Range 0.600 → 0.857 (rose), absolute range (max − min) 0.389 → 0.222
(shrank), SD 0.086 → 0.053 (shrank). Norm. Range rose while the spread itself shrank: the ratio rose because its
denominator, the largest subgroup NMAE, fell (0.648 → 0.259; the smallest 0.259 → 0.037), not because subgroups grew
further apart. The population's modal answer, which gives every subgroup the same answer (persona-blind), has NMAE
Norm. Range 1.000 on the same samples: replacing base by it would raise Norm. Range by +0.400, the same direction as
sft's change (+0.257), so a rise of this kind needs no use of the persona.
"""

from __future__ import annotations

import pandas as pd

from sgvalues.report.format import fmt_count, fmt_delta, fmt_rate

__all__ = ["BLIND", "mechanics_rows", "mechanics_table", "paradox_sentence", "variant_mechanics_rows", "show_mechanics",
           "show_paradox", "show_variant_paradox"]

#: the persona-blind reference's predictor name (report.fairness.baselines_like labels baselines so)
BLIND = "population_mode (baseline)"

#: the baselines shown beside each state: persona-blind by construction, and one that uses the persona
YARDSTICKS = ("population_mode", "marginal_product")

_STATS = ["mean", "min", "max", "range", "sd", "norm_range", "cv", "n_subgroups"]
_METRIC = {"nmae": "NMAE", "accuracy": "accuracy"}


def mechanics_rows(fair: pd.DataFrame, fair_reference: pd.DataFrame, run: str, split: str = "ood",
                   stratum: str = "all") -> pd.DataFrame:
    """One run's states and the baselines on their samples, with every spread statistic.

    Parameters
    ----------
    fair : DataFrame
        :func:`sgvalues.fairness.fairness_table` of the model states (``run, label, tag``).
    fair_reference : DataFrame
        The same of :func:`sgvalues.report.fairness.baselines_like` (labels ``"<name> (baseline)"``,
        ``tag`` = the state whose samples they answer); may be empty.

    Returns
    -------
    DataFrame
        ``predictor, samples, metric, mean, min, max, range, sd, norm_range, cv, n_subgroups``:
        ``predictor`` = the state (``zeroshot``, ``base``, ``sft``) or the baseline's label,
        ``samples`` = the state whose samples the row is scored on (a baseline's identical rows
        on several states' samples, e.g. ``base`` and ``sft``, are kept once, ``"base, sft"``).
    """
    cols = ["predictor", "samples", "metric", *_STATS]
    parts = []
    for table, is_ref in ((fair, False), (fair_reference, True)):
        if table is None or table.empty:
            continue
        f = table[(table["run"] == run) & (table["split"] == split) & (table["stratum"] == stratum)]
        parts.append(f.assign(predictor=f["label"] if is_ref else f["tag"], samples=f["tag"]))
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)
    missing = sorted(set(_STATS) - set(out.columns))
    if missing:
        raise ValueError(f"fairness table: missing column(s) {missing}; expected sgvalues.fairness.fairness_table "
                         "with the range and sd columns")
    order = {"zeroshot": 0, "base": 1, "sft": 2}
    out = out.assign(_s=out["samples"].map(lambda t: order.get(t, 9)), _r=out["predictor"].str.endswith("(baseline)"))
    out = out.sort_values(["_s", "samples", "_r", "predictor", "metric"], kind="stable").reset_index(drop=True)
    # a baseline on two states' identical samples (base and sft) gives identical rows: keep one, on "base, sft"
    key = pd.Series(["|".join(f"{v:.12g}" if isinstance(v, float) else str(v) for v in row)
                     for row in out[["predictor", "metric", *_STATS]].itertuples(index=False)], index=out.index)
    on = out.groupby(key, sort=False)["samples"].agg(", ".join)
    out = out.assign(samples=[on[k] if r else s for k, r, s in zip(key, out["_r"], out["samples"])])
    out = out[~(out["_r"] & key.duplicated())]
    # states first, then the baselines on their samples (after the last state that shares them)
    last = out["samples"].map(lambda on: max(order.get(t, 9) for t in on.split(", ")))
    out = out.assign(_s=last).sort_values(["_s", "_r"], kind="stable")
    return out[cols].reset_index(drop=True)


def variant_mechanics_rows(scored: pd.DataFrame, reference: pd.DataFrame, split: str = "ood") -> pd.DataFrame:
    """:func:`mechanics_rows` for chapter 08's variants: ``scored`` holds the base state (``tag``
    ``base`` of the first run) and each variant (``run`` = its name, ``tag`` ``sft``); ``reference``
    the baselines' predictions on the base samples (a ``baseline`` column). Predictors are
    ``base``, the variant names and ``"<baseline> (baseline)"``, all on the base samples."""
    from sgvalues import fairness, metrics

    p = scored[scored["split"] == split]
    if p.empty:
        return pd.DataFrame(columns=["predictor", "samples", "metric", *_STATS])
    first = p["run"].iloc[0]
    frames = [p[(p["run"] == first) & (p["tag"] == "base")].assign(label="base")]
    frames += [g[g["tag"] == "sft"].assign(label=name) for name, g in p.groupby("run", sort=False)]
    if reference is not None and len(reference):
        ids = set(frames[0]["sample_id"].astype(str))
        ref = reference[reference["sample_id"].astype(str).isin(ids)]
        frames += [metrics.score_samples(g).assign(label=f"{name} (baseline)")
                   for name, g in ref.groupby("baseline", sort=False) if name in YARDSTICKS]
    stacked = pd.concat([f.assign(run="variants", tag="base", split=split) for f in frames], ignore_index=True)
    fair = fairness.fairness_table(fairness.subgroup_scores(stacked), per_stratum=False)
    fair = fair.assign(tag=fair["label"])
    rows = mechanics_rows(fair, None, "variants", split)
    return rows.assign(samples="base")


def mechanics_table(rows: pd.DataFrame, metric: str = "nmae") -> pd.DataFrame:
    """The narrow display of :func:`mechanics_rows` for one metric: ``predictor, on, mean, best,
    worst, range, SD, NR, CV`` (best = lowest NMAE or highest accuracy).

    >>> r = pd.DataFrame({"predictor": ["sft"], "samples": "sft", "metric": "nmae", "mean": 0.1, "min": 0.0,
    ...                   "max": 0.2, "range": 0.2, "sd": 0.05, "norm_range": 1.0, "cv": 0.5, "n_subgroups": 4})
    >>> mechanics_table(r).to_dict("records")
    [{'predictor': 'sft', 'on': 'sft', 'mean': 0.1, 'best': 0.0, 'worst': 0.2, 'range': 0.2, 'SD': 0.05, 'NR': 1.0, 'CV': 0.5}]
    """
    r = rows[rows["metric"] == metric]
    best, worst = ("min", "max") if metric == "nmae" else ("max", "min")
    return pd.DataFrame({"predictor": r["predictor"].to_numpy(), "on": r["samples"].to_numpy(),
                         "mean": r["mean"].to_numpy(float), "best": r[best].to_numpy(float),
                         "worst": r[worst].to_numpy(float), "range": r["range"].to_numpy(float),
                         "SD": r["sd"].to_numpy(float), "NR": r["norm_range"].to_numpy(float),
                         "CV": r["cv"].to_numpy(float)})


def _move(a: float, b: float, up: str = "rose", down: str = "fell") -> str:
    if round(b, 3) > round(a, 3):
        return up
    if round(b, 3) < round(a, 3):
        return down
    return "unchanged"


def paradox_sentence(rows: pd.DataFrame, before: str = "base", after: str = "sft", blind: str = BLIND,
                     metric: str = "nmae") -> str:
    """Markdown: does the ``metric`` Norm. Range change ``before`` → ``after`` come from a wider
    spread, and does a persona-blind predictor show the same change?

    Parameters
    ----------
    rows : DataFrame
        :func:`mechanics_rows` (or any table with ``predictor, metric, norm_range, range, sd,
        min, max, n_subgroups``), ``before``, ``after`` and ``blind`` on the same samples.
    before, after : str
        The two predictors compared (e.g. ``base`` and ``sft``, or a training variant).
    blind : str
        The persona-blind reference (the population's modal answer); left out when absent.

    Returns
    -------
    str
        Three parts, each computed: the Norm. Range, absolute range and SD before and after with
        their directions (a change below 0.0005 reads as unchanged); whether the ratio and the
        spread move the same way, and if not which denominator moved; the persona-blind
        predictor's Norm. Range and whether replacing ``before`` by it moves Norm. Range in the
        same direction as ``after`` does. Empty when ``before`` or ``after`` is missing.

    Examples
    --------
    >>> rows = pd.DataFrame({"predictor": ["base", "sft"], "metric": "nmae", "norm_range": [0.5, 0.3],
    ...                      "range": [0.2, 0.3], "sd": [0.05, 0.06], "min": [0.2, 0.7], "max": [0.4, 1.0],
    ...                      "n_subgroups": 10})
    >>> print(paradox_sentence(rows))  # doctest: +NORMALIZE_WHITESPACE
    NMAE over the 10 subgroups, base → sft: Norm. Range 0.500 → 0.300 (fell), absolute range (max − min) 0.200 →
    0.300 (grew), SD 0.050 → 0.060 (grew). Norm. Range fell while the spread itself grew: the ratio fell because its
    denominator, the largest subgroup NMAE, rose (0.400 → 1.000; the smallest 0.200 → 0.700), not because subgroups
    came closer. No persona-blind reference on these samples.
    """
    r = rows[rows["metric"] == metric].drop_duplicates("predictor").set_index("predictor")
    if before not in r.index or after not in r.index:
        return ""
    a, b = r.loc[before], r.loc[after]
    name = _METRIC.get(metric, metric)
    nr_move = _move(a["norm_range"], b["norm_range"])
    range_move = _move(a["range"], b["range"], "grew", "shrank")
    sd_move = _move(a["sd"], b["sd"], "grew", "shrank")
    text = (f"{name} over the {fmt_count(a['n_subgroups'])} subgroups, {before} → {after}: Norm. Range "
            f"{fmt_rate(a['norm_range'])} → {fmt_rate(b['norm_range'])} ({nr_move}), absolute range (max − min) "
            f"{fmt_rate(a['range'])} → {fmt_rate(b['range'])} ({range_move}), SD {fmt_rate(a['sd'])} → "
            f"{fmt_rate(b['sd'])} ({sd_move}).")
    # NR = range / max: the ratio and its numerator can part ways only through the denominator
    opposite = {("rose", "shrank"), ("fell", "grew"), ("rose", "unchanged"), ("fell", "unchanged")}
    if (nr_move, range_move) in opposite:
        spread = "shrank" if range_move == "shrank" else "did not change"
        apart = "grew further apart" if nr_move == "rose" else "came closer"
        text += (f" Norm. Range {nr_move} while the spread itself {'grew' if range_move == 'grew' else spread}: the "
                 f"ratio {nr_move} because its denominator, the largest subgroup {name}, "
                 f"{_move(a['max'], b['max'])} ({fmt_rate(a['max'])} → {fmt_rate(b['max'])}; the smallest "
                 f"{fmt_rate(a['min'])} → {fmt_rate(b['min'])}), not because subgroups {apart}.")
    elif nr_move != "unchanged":
        text += (f" Norm. Range and the absolute spread move the same way: the subgroups' {name} "
                 f"{'grew further apart' if range_move == 'grew' else 'came closer'} in absolute terms too.")
    if blind not in r.index:
        return text + " No persona-blind reference on these samples."
    p = r.loc[blind]
    to_blind, by_after = p["norm_range"] - a["norm_range"], b["norm_range"] - a["norm_range"]
    same = (round(to_blind, 3) > 0) == (round(by_after, 3) > 0) and round(to_blind, 3) != 0 and round(by_after, 3) != 0
    verb = "raise" if round(to_blind, 3) > 0 else "lower" if round(to_blind, 3) < 0 else "leave"
    text += (f" The population's modal answer, which gives every subgroup the same answer (persona-blind), has "
             f"{name} Norm. Range {fmt_rate(p['norm_range'])} on the same samples: replacing {before} by it would "
             f"{verb} Norm. Range{' unchanged' if verb == 'leave' else ' by ' + fmt_delta(to_blind)}")
    if round(by_after, 3) == 0:
        text += f", while {after} leaves it unchanged."
    elif same:
        text += (f", the same direction as {after}'s change ({fmt_delta(by_after)}), so a "
                 f"{'rise' if by_after > 0 else 'fall'} of this kind needs no use of the persona.")
    else:
        text += (f", the opposite direction to {after}'s change ({fmt_delta(by_after)}), so a persona-blind "
                 "predictor does not explain it.")
    return text


def show_mechanics(t, metric: str = "nmae", split: str = "ood") -> pd.DataFrame:
    """Chapter 07's cell: this run's states beside the baselines on their samples, every spread
    statistic of ``metric`` (:func:`mechanics_table`). ``t`` is :class:`sgvalues.report.fairness.FairnessTables`."""
    from IPython.display import Markdown, display

    from sgvalues.report.format import format_table

    rows = mechanics_rows(t.fair, t.fair_reference, t.run, split) if not t.fair.empty else pd.DataFrame()
    if rows.empty:
        display(Markdown("No predictions of this run on the split: nothing to show."))
        return rows
    display(Markdown(f"The spread of per-subgroup {_METRIC.get(metric, metric)} on the **{split}** split: each state "
                     "beside the baselines on its samples (`on`); best and worst subgroup, absolute range "
                     "(worst − best), SD, and the two ratios NR = range / max and CV = SD / mean."))
    display(format_table(mechanics_table(rows, metric)))
    return rows


def show_paradox(t, split: str = "ood") -> None:
    """Chapter 07's cell: :func:`paradox_sentence` for NMAE and accuracy, base → sft, of this run."""
    from IPython.display import Markdown, display

    rows = mechanics_rows(t.fair, t.fair_reference, t.run, split) if not t.fair.empty else pd.DataFrame()
    # base and sft answer the same samples; the baselines' rows on them read "base, sft"
    base = rows[rows["samples"].str.split(", ").map(lambda on: bool({"base", "sft"} & set(on)))] if len(rows) else rows
    texts = [paradox_sentence(base, metric=m) for m in ("nmae", "accuracy")] if len(base) else []
    texts = [x for x in texts if x]
    display(Markdown("\n\n".join(texts) if texts else "This run has no base and sft states on the same samples."))


def show_variant_paradox(scored: pd.DataFrame, run_dir, variants, split: str = "ood") -> pd.DataFrame:
    """Chapter 08's cell: for each variant, :func:`paradox_sentence` (NMAE) against the untuned
    model, beside ``population_mode`` on the same samples, then the NMAE spread table."""

    from IPython.display import Markdown, display

    from sgvalues import baselines
    from sgvalues.report.format import format_table

    reference = baselines.run_baseline_predictions(run_dir, split)
    rows = variant_mechanics_rows(scored, reference, split)
    texts = [paradox_sentence(rows, "base", v) for v in variants]
    display(Markdown("\n\n".join(f"- {x}" for x in texts if x) or "No variant on this split."))
    display(format_table(mechanics_table(rows, "nmae").drop(columns="on")))
    return rows
