"""Chapter 09's tables, sentences and figures: what the model knows versus what it simulates.

Computing lives in :mod:`sgvalues.readouts`, :mod:`sgvalues.calibration`,
:mod:`sgvalues.aggregation` and :mod:`sgvalues.entropy_control`; this module turns their tables
into what the page shows. Every sentence is computed from those tables; the peers' figures
(``resources/peers.json``) are shown labelled *published* beside ours, never as ours.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from typing import Mapping

import pandas as pd

from sgvalues.report.format import MISSING, fmt_counted, fmt_delta, fmt_rate

__all__ = ["PEERS_LABEL", "peer_figures", "readout_comparison", "temperature_sentence", "calibration_sentence",
           "aggregation_sentence", "entropy_sentence", "plot_reliability", "group_means", "plot_error_vs_entropy",
           "readout_sentence", "peer_direction_sentence", "format_sentence", "unseen_similarity_sentence",
           "cells_sentence", "readout_examples", "aggregation_states_sentence", "format_comparison",
           "calibration_table"]

#: how a peer's figure is labelled beside ours
PEERS_LABEL = "published"

_OBJECTIVE_WORDS = {"jsd": "mean Jensen-Shannon distance", "nll": "mean cross-entropy"}
_READOUT_WORDS = {"logprob": "option log-probabilities", "logprob_temperature": "log-probabilities, fitted temperature",
                  "sampled": "sampled answers", "verbalised": "verbalised distribution", "uniform": "uniform",
                  "population_mode": "population_mode", "marginal_product": "marginal_product",
                  "survey_noise": "survey noise (sampling floor)"}


@lru_cache(maxsize=1)
def _peers() -> dict:
    return json.loads(resources.files("sgvalues").joinpath("resources/peers.json").read_text(encoding="utf-8"))


def peer_figures(metric: str = "tv") -> pd.DataFrame:
    """The peers' published readout figures for ``metric``: ``study, model, readout, value``.

    Examples
    --------
    >>> float(peer_figures().set_index("readout")["value"]["logprob"])
    0.55
    """
    rows = [r for r in _peers()["readouts"] if r["metric"] == metric]
    return pd.DataFrame(rows, columns=["study", "model", "readout", "metric", "value"]).drop(columns="metric")


def _peers_studies() -> list[str]:
    return sorted({r["study"] for r in _peers()["readouts"]})


def readout_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Our readout table (:func:`sgvalues.readouts.run_readouts`) with the peers' published TV beside it.

    Returns
    -------
    DataFrame
        ``readout`` (short words), ``accuracy, nmae, jsd, tv, representativeness, n``
        (``repr.``; calibration is :func:`calibration_table`'s) and one column ``published TV`` per peer study (``(<first author>)``
        added when there are several; blank where the study has no such readout; the page names
        the study beside the table).
    """
    cols = ["accuracy", "nmae", "jsd", "tv", "representativeness", "n"]
    out = table[["readout"] + [c for c in cols if c in table.columns]].copy()
    for study, g in peer_figures().groupby("study", sort=False):
        name = f"{PEERS_LABEL} TV" + ("" if len(_peers_studies()) == 1 else f" ({study.split()[0]})")
        out[name] = out["readout"].map(dict(zip(g["readout"], g["value"])))
    out["readout"] = out["readout"].map(lambda r: _SHORT_READOUT.get(r, r))
    return out.rename(columns={"representativeness": "repr.", "inside_share": "inside"}).reset_index(drop=True)


#: readout names short enough for a table column
_SHORT_READOUT = {"logprob": "log-probs", "logprob_temperature": "log-probs, T fitted", "survey_noise": "survey noise"}


def format_comparison(formats: pd.DataFrame) -> pd.DataFrame:
    """:func:`sgvalues.knowledge.format_scores` with the columns the page shows, named to fit the text column.

    >>> f = pd.DataFrame({"format": ["qa"], "accuracy": [0.5], "nmae": [0.2], "tv": [0.3], "n_varying_questions": [2],
    ...                   "n_questions": [4], "accuracy_divergent": [0.1], "accuracy_agreeing": [0.6], "n": [12]})
    >>> list(format_comparison(f).columns)
    ['format', 'accuracy', 'nmae', 'tv', 'varying', 'acc. divergent', 'acc. agreeing', 'n']
    """
    cols = {"format": "format", "accuracy": "accuracy", "nmae": "nmae", "tv": "tv", "n_varying_questions": "varying",
            "accuracy_divergent": "acc. divergent", "accuracy_agreeing": "acc. agreeing", "n": "n"}
    out = formats[list(cols)].rename(columns=cols)
    out["varying"] = [f"{int(v)} of {int(q)}" for v, q in zip(formats["n_varying_questions"], formats["n_questions"])]
    return out.reset_index(drop=True)


def _row(table: pd.DataFrame, readout: str) -> pd.Series | None:
    hit = table[table["readout"] == readout]
    return None if hit.empty else hit.iloc[0]


def temperature_sentence(table: pd.DataFrame, fit, split: str = "ood") -> str:
    """The fitted temperature, which way it moves the option probabilities, and what it does to TV.

    Parameters
    ----------
    table : DataFrame
        :func:`sgvalues.readouts.run_readouts`' table.
    fit : TemperatureFit
        Its temperature fit.

    Examples
    --------
    >>> from sgvalues.readouts import TemperatureFit
    >>> t = pd.DataFrame({"readout": ["logprob", "logprob_temperature", "uniform", "survey_noise"],
    ...                   "tv": [0.4, 0.3, 0.35, 0.1]})
    >>> print(temperature_sentence(t, TemperatureFit(2.0, "jsd", 0.2, 0.3, 100)))  # doctest: +NORMALIZE_WHITESPACE
    One temperature fitted on the 100 train cells by minimising their mean Jensen-Shannon distance is
    T = 2.00: above 1, so the raw option probabilities were over-confident and are flattened. On the ood
    cells it moves the mean total variation from 0.400 to 0.300 (-0.100); uniform gives 0.350, and a
    fresh survey of the same respondents lands 0.100 away on average (the sampling floor).
    """
    t = float(fit.temperature)
    if abs(t - 1.0) < 0.005:
        how = "within 0.005 of 1, so the raw option probabilities were already as spread as the train cells' answers"
    elif getattr(fit, "at_bound", False) and t > 1:
        how = ("the largest temperature searched: the raw option probabilities were so over-confident that the "
               "fit flattens them as far as it may, close to uniform")
    elif getattr(fit, "at_bound", False):
        how = "the smallest temperature searched: the fit sharpens the raw option probabilities as far as it may"
    elif t > 1:
        how = "above 1, so the raw option probabilities were over-confident and are flattened"
    else:
        how = "below 1, so the raw option probabilities were under-confident and are sharpened"
    sep = ", " if getattr(fit, "at_bound", False) and abs(t - 1.0) >= 0.005 else ": "
    text = (f"One temperature fitted on the {fit.n_cells} train cells by minimising their "
            f"{_OBJECTIVE_WORDS.get(fit.objective, fit.objective)} is T = {t:.2f}{sep}{how}.")
    raw, scaled = _row(table, "logprob"), _row(table, "logprob_temperature")
    if raw is not None and scaled is not None:
        text += (f" On the {split} cells it moves the mean total variation from {fmt_rate(raw['tv'])} to "
                 f"{fmt_rate(scaled['tv'])} ({fmt_delta(scaled['tv'] - raw['tv'])})")
        uni, floor = _row(table, "uniform"), _row(table, "survey_noise")
        extra = []
        if uni is not None:
            extra.append(f"uniform gives {fmt_rate(uni['tv'])}")
        if floor is not None:
            extra.append(f"a fresh survey of the same respondents lands {fmt_rate(floor['tv'])} away on average "
                         "(the sampling floor)")
        text += ("; " + ", and ".join(extra) if extra else "") + "."
    return text


def calibration_table(table: pd.DataFrame) -> pd.DataFrame:
    """The model readouts' calibration columns: ``readout``, ``ece``, ``inside`` (share of cells inside
    their sampling-uncertainty region) and ``cells`` with a distribution.

    >>> t = pd.DataFrame({"readout": ["logprob", "uniform"], "kind": ["model", "baseline"], "ece": [0.2, 0.1],
    ...                   "inside_share": [0.25, 0.5], "n_distribution": [8, 8]})
    >>> calibration_table(t).values.tolist()
    [['log-probs', 0.2, 0.25, 8]]
    """
    model = table[table["kind"] == "model"]
    out = model[["readout", "ece", "inside_share", "n_distribution"]].rename(
        columns={"inside_share": "inside", "n_distribution": "cells"})
    out["readout"] = out["readout"].map(lambda r: _SHORT_READOUT.get(r, r))
    return out.reset_index(drop=True)


def calibration_sentence(table: pd.DataFrame) -> str:
    """ECE of the modal answer's confidence and the share of cells inside the sampling region, per model readout.

    Examples
    --------
    >>> t = pd.DataFrame({"readout": ["logprob", "logprob_temperature"], "kind": "model", "ece": [0.2, 0.1],
    ...                   "inside_share": [0.25, 0.5]})
    >>> print(calibration_sentence(t))  # doctest: +NORMALIZE_WHITESPACE
    Expected calibration error of the modal answer's confidence: 0.200 (option log-probabilities),
    0.100 (log-probabilities, fitted temperature). Share of cells whose predicted distribution lies
    inside their subgroup's sampling-uncertainty region: 0.250, 0.500.
    """
    model = table[table["kind"] == "model"] if "kind" in table.columns else table
    if model.empty:
        return "No model readout to calibrate on this run."
    eces = ", ".join(f"{fmt_rate(r['ece'])} ({_READOUT_WORDS.get(r['readout'], r['readout'])})"
                     for _, r in model.iterrows())
    inside = ", ".join(fmt_rate(v) for v in model["inside_share"])
    return (f"Expected calibration error of the modal answer's confidence: {eces}. Share of cells whose "
            f"predicted distribution lies inside their subgroup's sampling-uncertainty region: {inside}.")


def aggregation_sentence(summary: pd.DataFrame) -> str:
    """Which axis's levels are least and most consistent with their intersectional cells.

    Parameters
    ----------
    summary : DataFrame
        :func:`sgvalues.aggregation.aggregation_summary` for one model state.

    Examples
    --------
    >>> s = pd.DataFrame({"axis": ["sex", "religion"], "stratum": "all", "tv": [0.05, 0.2], "coverage": [1, 0.9]})
    >>> print(aggregation_sentence(s))  # doctest: +NORMALIZE_WHITESPACE
    Weighted by population shares, the model's intersectional predictions for a level differ from its
    single-axis prediction by a mean total variation of 0.200 on religion (the largest) and 0.050 on sex
    (the smallest); the cells cover 0.900 and 1.000 of those levels' respondents.
    """
    s = summary[summary["stratum"] == "all"].dropna(subset=["tv"]) if "stratum" in summary.columns else summary
    if s.empty:
        return "No level has both a single-axis and an intersectional prediction on this run."
    s = s.sort_values("tv", ascending=False, kind="stable")
    hi, lo = s.iloc[0], s.iloc[-1]
    if len(s) == 1:
        return (f"Weighted by population shares, the model's intersectional predictions for a level differ from its "
                f"single-axis prediction by a mean total variation of {fmt_rate(hi['tv'])} on {hi['axis']}, the "
                f"only axis with both.")
    return (f"Weighted by population shares, the model's intersectional predictions for a level differ from its "
            f"single-axis prediction by a mean total variation of {fmt_rate(hi['tv'])} on {hi['axis']} (the largest) "
            f"and {fmt_rate(lo['tv'])} on {lo['axis']} (the smallest); the cells cover "
            f"{fmt_rate(hi.get('coverage'))} and {fmt_rate(lo.get('coverage'))} of those levels' respondents.")


def entropy_sentence(terciles: pd.DataFrame, explained: Mapping, error: str = "error") -> str:
    """How error moves across entropy terciles and how much of the between-group gap entropy explains.

    Parameters
    ----------
    terciles : DataFrame
        :func:`sgvalues.entropy_control.entropy_terciles`.
    explained : dict
        :func:`sgvalues.entropy_control.entropy_explained`.
    error : str
        The error's name in the sentence.

    Examples
    --------
    >>> t = pd.DataFrame({"tercile": ["low", "middle", "high"], "error": [0.1, 0.2, 0.3]})
    >>> e = {"group": "subgroup", "n_groups": 20, "r2": 0.64, "gap_raw": 0.3, "gap_adjusted": 0.15}
    >>> print(entropy_sentence(t, e, "NMAE"))  # doctest: +NORMALIZE_WHITESPACE
    Mean NMAE rises from 0.100 in the lowest-entropy third of cells to 0.300 in the highest. Across the
    20 subgroups, entropy explains R² = 0.640 of the variance in mean NMAE; adjusting for it changes the
    gap between the best and worst subgroup from 0.300 to 0.150.
    """
    lo = terciles.loc[terciles["tercile"] == "low", "error"]
    hi = terciles.loc[terciles["tercile"] == "high", "error"]
    if lo.empty or hi.empty:
        return "Too few cells to compare entropy terciles on this run."
    lo, hi = float(lo.iloc[0]), float(hi.iloc[0])
    verb = "rises" if hi > lo else "falls" if hi < lo else "stays"
    text = (f"Mean {error} {verb} from {fmt_rate(lo)} in the lowest-entropy third of cells to {fmt_rate(hi)} in the "
            f"highest.")
    r2 = explained.get("r2")
    if r2 is None or pd.isna(r2):
        return text + f" The {explained.get('group', 'group')}s' mean errors do not vary, so there is no gap to explain."
    text += (f" Across the {explained['n_groups']} {explained.get('group', 'group')}s, entropy explains "
             f"R² = {fmt_rate(r2)} of the variance in mean {error}; adjusting for it changes the gap between the best "
             f"and worst {explained.get('group', 'group')} from {fmt_rate(explained['gap_raw'])} to "
             f"{fmt_rate(explained['gap_adjusted'])}.")
    return text.replace(" nan", " " + MISSING)


def explained_table(cells: pd.DataFrame, error: str) -> pd.DataFrame:
    """How much of the gap between subgroups, and between questions, entropy and cell size explain.

    One row per grouping (``subgroup``, ``question``) and covariate set (``entropy``;
    ``entropy + size``, size being ``log_n`` = ln of the respondents behind a cell), each
    :func:`sgvalues.entropy_control.entropy_explained` of ``cells``. A row that cannot be fitted
    (too few groups for its covariates, no cell sizes, or a covariate that takes one value for
    every group, as cell size does between questions asked of the same subgroups) is left out.

    Returns
    -------
    DataFrame
        ``groups``, ``covariates``, ``n`` (groups), ``R²``, ``gap`` (best to worst group's mean
        error) and ``gap adjusted`` (the same of the regression's residuals).

    Examples
    --------
    >>> c = pd.DataFrame({"subgroup": list("abcd"), "question_id": ["Q1", "Q1", "Q2", "Q2"],
    ...                   "entropy": [0.2, 0.5, 0.8, 0.6], "log_n": [3.5, 3.6, 4.0, 3.4],
    ...                   "jsd": [0.1, 0.25, 0.4, 0.3]})
    >>> explained_table(c, "jsd")[["groups", "covariates", "n"]].to_dict("records")
    [{'groups': 'subgroup', 'covariates': 'entropy', 'n': 4}, \
{'groups': 'subgroup', 'covariates': 'entropy + size', 'n': 4}]
    """
    from sgvalues.entropy_control import entropy_explained

    rows = []
    for group, label in (("subgroup", "subgroup"), ("question_id", "question")):
        for covariates, words in ((("entropy",), "entropy"), (("entropy", "log_n"), "entropy + size")):
            if group not in cells.columns or any(c not in cells.columns for c in covariates):
                continue
            try:
                e = entropy_explained(cells, error, group=group, covariates=covariates)
            except ValueError:  # too few groups, or a covariate that does not vary between them
                continue
            rows.append({"groups": label, "covariates": words, "n": e["n_groups"], "R²": e["r2"],
                         "gap": e["gap_raw"], "gap adjusted": e["gap_adjusted"]})
    return pd.DataFrame(rows, columns=["groups", "covariates", "n", "R²", "gap", "gap adjusted"])


def size_sentence(cells: pd.DataFrame, error: str, label: str = "error") -> str:
    """What adding cell size to entropy changes in the between-subgroup regression, and its direction.

    Parameters
    ----------
    cells : DataFrame
        :func:`sgvalues.entropy_control.cell_errors` (``subgroup``, ``entropy``, ``log_n``, ``error``).
    error : str
        The per-cell error column.
    label : str
        The error's name in the sentence.

    Notes
    -----
    The slope on :math:`\\ln n` is reported per doubling of the respondents behind a cell,
    :math:`\\beta_{\\ln n} \\ln 2`, with the subgroups' mean entropy held fixed.

    Examples
    --------
    >>> c = pd.DataFrame({"subgroup": list("abcde"), "entropy": [0.2, 0.5, 0.8, 0.6, 0.3],
    ...                   "log_n": [3.4, 3.6, 4.0, 4.6, 5.0], "jsd": [0.2, 0.3, 0.45, 0.5, 0.45]})
    >>> print(size_sentence(c, "jsd", "JSD"))  # doctest: +NORMALIZE_WHITESPACE
    Adding cell size to entropy raises the share of the between-subgroup variance in mean JSD explained
    from R² = 0.371 to 0.993: with entropy held fixed, mean JSD is higher by 0.102 for each doubling of
    the respondents behind a cell.
    """
    from sgvalues.entropy_control import entropy_explained

    try:
        one = entropy_explained(cells, error)
        two = entropy_explained(cells, error, covariates=("entropy", "log_n"))
    except ValueError:
        return "Cell size cannot be set beside entropy on this run (too few subgroups, or one size for all)."
    if pd.isna(one["r2"]) or pd.isna(two["r2"]):
        return f"The subgroups' mean {label} does not vary, so there is nothing for cell size to explain."
    per_doubling = two["coefficients"]["log_n"] * math.log(2)
    verb = "raises" if two["r2"] > one["r2"] + 5e-4 else "leaves"
    direction = "higher" if per_doubling > 0 else "lower"
    text = (f"Adding cell size to entropy {verb} the share of the between-subgroup variance in mean {label} explained "
            + (f"from R² = {fmt_rate(one['r2'])} to {fmt_rate(two['r2'])}" if verb == "raises"
               else f"at R² = {fmt_rate(two['r2'])}"))
    if abs(per_doubling) < 5e-4:
        return text + "; cell size has no visible slope."
    return (text + f": with entropy held fixed, mean {label} is {direction} by {fmt_rate(abs(per_doubling))} for each "
            f"doubling of the respondents behind a cell.")


def plot_reliability(tables: Mapping[str, pd.DataFrame]):
    """Reliability diagram: accuracy against mean confidence per bin, one line per readout.

    Parameters
    ----------
    tables : mapping readout -> :func:`sgvalues.calibration.reliability_table`

    Returns
    -------
    matplotlib Figure
        The diagonal is perfect calibration; points below it are over-confident. Marker area
        follows the bin's share of cells.
    """
    import matplotlib.pyplot as plt

    from itertools import cycle

    from sgvalues.plots import BOOK_COLORS, COLUMN_WIDTH_IN
    from sgvalues.report.figures import legend_below

    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN * 0.7, COLUMN_WIDTH_IN * 0.6))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    for (name, t), color in zip(tables.items(), cycle(BOOK_COLORS)):
        t = t[t["n"] > 0]
        ax.plot(t["confidence"], t["accuracy"], marker="o", color=color, label=_READOUT_WORDS.get(name, name))
        ax.scatter(t["confidence"], t["accuracy"], s=20 + 400 * t["share"], color=color, alpha=0.35)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean confidence of the modal answer",
           ylabel="share whose modal answer is the subgroup's")
    ax.legend()
    return legend_below(fig, pad=0.04)


def group_means(cells: pd.DataFrame, error: str, group: str = "subgroup") -> pd.DataFrame:
    """Per group: mean ``error``, mean ``entropy`` and the number of respondents behind a cell (mean ``n_valid``).

    Examples
    --------
    >>> c = pd.DataFrame({"subgroup": ["a", "a", "b"], "entropy": [0.2, 0.4, 0.9], "n_valid": [30, 50, 100],
    ...                   "jsd": [0.1, 0.3, 0.5]})
    >>> group_means(c, "jsd").round(3).to_dict("records")
    [{'subgroup': 'a', 'error': 0.2, 'entropy': 0.3, 'n_valid': 40.0, 'n_cells': 2}, \
{'subgroup': 'b', 'error': 0.5, 'entropy': 0.9, 'n_valid': 100.0, 'n_cells': 1}]
    """
    return (cells.dropna(subset=[error, "entropy"]).groupby(group, sort=True)
            .agg(error=(error, "mean"), entropy=("entropy", "mean"), n_valid=("n_valid", "mean"),
                 n_cells=(error, "size"))
            .reset_index())


def plot_error_vs_entropy(means: pd.DataFrame, error_label: str = "mean error", group: str = "subgroup"):
    """Each group's mean error against the mean entropy of its answers, marker area by its size.

    Parameters
    ----------
    means : DataFrame
        :func:`group_means`.

    Returns
    -------
    matplotlib Figure
        With the least-squares line of error on entropy (the regression of
        :func:`sgvalues.entropy_control.entropy_explained`).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from sgvalues.plots import BOOK_COLORS, COLUMN_WIDTH_IN
    from sgvalues.report.figures import legend_below

    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN * 0.75, COLUMN_WIDTH_IN * 0.55))
    size = means["n_valid"].fillna(means["n_valid"].median() if means["n_valid"].notna().any() else 30)
    ax.scatter(means["entropy"], means["error"], s=10 + 90 * size / max(float(size.max()), 1.0),
               color=BOOK_COLORS[0], alpha=0.7, label=f"a {group} (area: respondents per cell)")
    if len(means) >= 2 and means["entropy"].nunique() > 1:
        slope, intercept = np.polyfit(means["entropy"], means["error"], 1)
        xs = np.linspace(float(means["entropy"].min()), float(means["entropy"].max()), 20)
        ax.plot(xs, intercept + slope * xs, color=BOOK_COLORS[1], lw=1.5, label="least-squares line")
    ax.set(xlabel="mean normalised entropy of the answers", ylabel=error_label)
    ax.legend()
    return legend_below(fig, pad=0.08)


def _words(readout: str) -> str:
    return _READOUT_WORDS.get(readout, readout)


def readout_sentence(table: pd.DataFrame) -> str:
    """Which readout lands closest, whether any beats the no-model yardsticks, and how many cells each could read.

    Parameters
    ----------
    table : DataFrame
        :func:`sgvalues.readouts.run_readouts`' table (model rows, the baselines, ``survey_noise``).

    Examples
    --------
    >>> t = pd.DataFrame({"readout": ["logprob", "sampled", "uniform", "population_mode", "survey_noise"],
    ...                   "kind": ["model", "model", "baseline", "baseline", "reference"],
    ...                   "n": [10, 10, 10, 10, 10], "n_distribution": [10, 4, 10, 10, 10],
    ...                   "accuracy": [0.3, 0.2, 0.1, 0.8, 0.9], "tv": [0.5, 0.4, 0.45, 0.3, 0.1]})
    >>> print(readout_sentence(t))  # doctest: +NORMALIZE_WHITESPACE
    On these 10 cells the readout closest to the subgroups' answer distributions is sampled answers (mean total
    variation 0.400; option log-probabilities 0.500); uniform lands 0.450 away, so 1 of 2 model readouts beat it.
    The best model accuracy is 0.300 (option log-probabilities) against 0.800 for population_mode: no readout beats
    answering every subgroup with the population's most common answer, so none shows anything learned about these
    subgroups. Sampled answers gave a distribution on 4 of 10 cells; the others count as wrong answers and are left
    out of the distances.
    """
    model = table[table["kind"] == "model"]
    if model.empty:
        return "No model readout on this run."
    n = int(model["n"].max())
    scored = model.dropna(subset=["tv"])
    lines = []
    if not scored.empty:
        best = scored.loc[scored["tv"].idxmin()]
        raw = _row(table, "logprob")
        text = (f"On these {n} cells the readout closest to the subgroups' answer distributions is {_words(best['readout'])} "
                f"(mean total variation {fmt_rate(best['tv'])}")
        if raw is not None and best["readout"] != "logprob":
            text += f"; {_words('logprob')} {fmt_rate(raw['tv'])}"
        text += ")"
        uni = _row(table, "uniform")
        if uni is not None and pd.notna(uni["tv"]):
            beat = int((scored["tv"] < uni["tv"]).sum())
            text += (f"; uniform lands {fmt_rate(uni['tv'])} away, so {beat} of {len(scored)} model readouts "
                     f"beat{'s' if beat == 1 and len(scored) == 1 else ''} it")
        lines.append(text + ".")
    top = model.loc[model["accuracy"].idxmax()]
    pm = _row(table, "population_mode")
    if pm is not None:
        text = (f"The best model accuracy is {fmt_rate(top['accuracy'])} ({_words(top['readout'])}) against "
                f"{fmt_rate(pm['accuracy'])} for population_mode")
        if top["accuracy"] > pm["accuracy"]:
            text += ": that readout beats answering every subgroup with the population's most common answer."
        else:
            text += (": no readout beats answering every subgroup with the population's most common answer, so none "
                     "shows anything learned about these subgroups.")
        lines.append(text)
    for _, r in model.iterrows():
        if r["readout"] in ("sampled", "verbalised") and r["n_distribution"] < r["n"]:
            name, got, n = _words(r["readout"]).capitalize(), int(r["n_distribution"]), int(r["n"])
            lines.append(f"{name} gave no distribution on any of the {n} cells: every one counts as a wrong answer, "
                         "and it has no distances." if got == 0 else
                         f"{name} gave a distribution on {got} of {n} cells; the others count as wrong answers and "
                         "are left out of the distances.")
    return " ".join(lines)


def peer_direction_sentence(table: pd.DataFrame) -> str:
    """Whether our readouts order as Meister et al.'s did (published: raw log-probabilities worst by TV).

    Examples
    --------
    >>> t = pd.DataFrame({"readout": ["logprob", "logprob_temperature", "verbalised"], "kind": "model",
    ...                   "tv": [0.3, 0.2, float("nan")]})
    >>> print(peer_direction_sentence(t))  # doctest: +NORMALIZE_WHITESPACE
    Meister et al. (published, GPT-4) found raw option log-probabilities the farthest of their readouts from the
    human distribution; here too they are the farthest of the 2 readouts with a distribution.
    """
    scored = table[(table["kind"] == "model")].dropna(subset=["tv"])
    raw = _row(scored, "logprob")
    head = ("Meister et al. (published, GPT-4) found raw option log-probabilities the farthest of their readouts from "
            "the human distribution")
    if raw is None or len(scored) < 2:
        return head + "; this run has too few readouts with a distribution to compare."
    worst = scored["tv"].max()
    if raw["tv"] >= worst:
        return head + f"; here too they are the farthest of the {len(scored)} readouts with a distribution."
    rank = int((scored["tv"] > raw["tv"]).sum())
    return head + (f"; here {rank} of the {len(scored)} readouts with a distribution land{'s' if rank == 1 else ''} "
                   "farther than them, so the gap they found does not show in the same way.")


_FORMAT_WORDS = {"sentence": "the paper's persona sentence", "qa": "question-answer pairs",
                 "bio": "a first-person biography", "fewshot": "the sentence with few-shot examples"}


def format_sentence(table: pd.DataFrame) -> str:
    """How the persona formats compare with the paper's sentence, and whether any makes the answers follow the persona.

    Parameters
    ----------
    table : DataFrame
        :func:`sgvalues.knowledge.format_scores`.

    Examples
    --------
    >>> t = pd.DataFrame({"format": ["sentence", "qa", "fewshot"], "n": 30, "n_questions": 10,
    ...                   "accuracy": [0.3, 0.2, 0.5], "tv": [0.4, 0.45, 0.3], "n_varying_questions": [0, 0, 4],
    ...                   "accuracy_divergent": [0.0, 0.0, 0.25], "n_divergent_cells": 4})
    >>> print(format_sentence(t))  # doctest: +NORMALIZE_WHITESPACE
    On the same 30 cells (10 questions), accuracy is 0.300 with the paper's persona sentence; question-answer pairs
    give 0.200 (-0.100) and the sentence with few-shot examples gives 0.500 (+0.200). The answers vary across the subgroups
    asked on 0 of 10 questions with the sentence, 0 with question-answer pairs and 4 with the sentence with few-shot
    examples. On the 4 cells whose subgroup's most common answer is not the population's, accuracy is 0.000 with the
    sentence and at best 0.250 (the sentence with few-shot examples).
    """
    if table.empty:
        return "No persona format was asked on this run."
    base = table[table["format"] == "sentence"]
    ref = base.iloc[0] if len(base) else table.iloc[0]
    others = table[table["format"] != ref["format"]]
    text = (f"On the same {fmt_counted(int(ref['n']), 'cell')} ({fmt_counted(int(ref['n_questions']), 'question')}), "
            "accuracy is "
            f"{fmt_rate(ref['accuracy'])} with {_FORMAT_WORDS.get(ref['format'], ref['format'])}")
    if len(others):
        parts = [f"{_FORMAT_WORDS.get(r['format'], r['format'])} give{'s' if r['format'] != 'qa' else ''} "
                 f"{fmt_rate(r['accuracy'])} ({fmt_delta(r['accuracy'] - ref['accuracy'])})" for _, r in others.iterrows()]
        text += "; " + (" and ".join([", ".join(parts[:-1]), parts[-1]]) if len(parts) > 1 else parts[0])
    text += "."
    vary = [f"{int(r['n_varying_questions'])} with {_FORMAT_WORDS.get(r['format'], r['format'])}"
            for _, r in others.iterrows()]
    text += (f" The answers vary across the subgroups asked on {int(ref['n_varying_questions'])} of "
             f"{fmt_counted(int(ref['n_questions']), 'question')} with the sentence" + (", " + ", ".join(vary[:-1]) + " and " + vary[-1]
                                                                        if len(vary) > 1 else
                                                                        (" and " + vary[0] if vary else "")) + ".")
    if (table["n_varying_questions"] == 0).all():
        text += " In no format do the answers change with the persona."
    n_div = int(ref.get("n_divergent_cells", 0) or 0)
    if n_div and "accuracy_divergent" in table.columns:
        best = table.loc[table["accuracy_divergent"].fillna(-1).idxmax()]
        text += (f" On the {n_div} cells whose subgroup's most common answer is not the population's, accuracy is "
                 f"{fmt_rate(ref['accuracy_divergent'])} with the sentence")
        if best["accuracy_divergent"] > ref["accuracy_divergent"]:
            text += (f" and at best {fmt_rate(best['accuracy_divergent'])} "
                     f"({_FORMAT_WORDS.get(best['format'], best['format'])}).")
        else:
            text += "; no other format does better there."
    return text


def unseen_similarity_sentence(similarity: pd.DataFrame, threshold: float, holdout_themes=()) -> str:
    """How the unseen questions were chosen and how near their wording comes to a trained question.

    Examples
    --------
    >>> s = pd.DataFrame({"question_id": ["Q9", "Q8"], "similarity": [0.42, 0.61], "same_theme": [False, True],
    ...                   "nearest_trained": ["Q1", "Q2"]})
    >>> print(unseen_similarity_sentence(s, 0.8))  # doctest: +NORMALIZE_WHITESPACE
    The unseen questions were drawn from the questions training did not use (split.questions: all), so they may share a
    theme with trained ones: 1 of 2 does. Their wording comes at most 0.610 close to a trained question (Q8 to Q2;
    near-duplicate threshold 0.80).
    """
    if similarity.empty:
        return "No question was left unseen on this run."
    top = similarity.loc[similarity["similarity"].idxmax()]
    if holdout_themes:
        how = (f"The unseen questions come from the held-out themes ({', '.join(holdout_themes)}; split.questions: "
               "holdout), with training questions of near-identical wording dropped.")
    else:
        how = (f"The unseen questions were drawn from the questions training did not use (split.questions: all), so "
               f"they may share a theme with trained ones: {int(similarity['same_theme'].sum())} of "
               f"{len(similarity)} do{'es' if len(similarity) == 1 or int(similarity['same_theme'].sum()) == 1 else ''}.")
    return (how + f" Their wording comes at most {fmt_rate(top['similarity'])} close to a trained question "
            f"({top['question_id']} to {top['nearest_trained']}; near-duplicate threshold {float(threshold):.2f}).")


def cells_sentence(cells) -> str:
    """How many cells chapter 09's new passes asked, of how many questions and subgroups.

    >>> print(cells_sentence([{"question_id": "Q1", "subgroup": "a"}, {"question_id": "Q1", "subgroup": "b"},
    ...                       {"question_id": "Q2", "subgroup": "a"}]))
    The new passes ask 3 cells: 2 questions, 1 to 2 subgroups each, 2 distinct subgroups in all.
    """
    df = pd.DataFrame(list(cells))
    if df.empty:
        return "The new passes ask no cell on this run."
    per = df.groupby("question_id")["subgroup"].nunique()
    spread = f"{per.min()}" if per.min() == per.max() else f"{per.min()} to {per.max()}"
    return (f"The new passes ask {fmt_counted(len(df), 'cell')}: {fmt_counted(df['question_id'].nunique(), 'question')}, "
            f"{spread} subgroup{'' if per.max() == 1 else 's'} each, {df['subgroup'].nunique()} distinct "
            f"subgroup{'' if df['subgroup'].nunique() == 1 else 's'} in all.")


def readout_examples(frames: Mapping[str, pd.DataFrame], readout: str = "verbalised", k: int = 3) -> pd.DataFrame:
    """The first ``k`` raw answers of a readout with what the strict parser made of them.

    >>> f = {"verbalised": pd.DataFrame({"question_id": ["Q1"], "subgroup": ["a"], "raw_output": ["1. Yes"],
    ...                                  "status": ["unparseable"], "parse_reason": ["line 1 is not 'code: percent'"]})}
    >>> readout_examples(f)["answer"].tolist()
    ['1. Yes']
    """
    df = frames.get(readout)
    cols = ["question_id", "subgroup", "answer", "status", "parse_reason"]
    if df is None or df.empty:
        return pd.DataFrame(columns=cols)
    out = df.head(k).rename(columns={"raw_output": "answer"})
    out["answer"] = out["answer"].astype(str).str.replace("\n", " / ", regex=False).str.slice(0, 40)
    out["parse_reason"] = out["parse_reason"].astype(str).str.split(":").str[0].str.slice(0, 40)
    out["subgroup"] = out["subgroup"].astype(str).str.split(":").str[-1]
    return out.reindex(columns=cols).reset_index(drop=True)


def aggregation_states_sentence(summary: pd.DataFrame) -> str:
    """:func:`aggregation_sentence` for each model state (``tag``) of an aggregation summary, one paragraph each.

    >>> s = pd.DataFrame({"tag": ["base", "sft"], "axis": "sex", "stratum": "all", "tv": [0.1, 0.05], "coverage": 1.0})
    >>> print(aggregation_states_sentence(s).splitlines()[0])  # doctest: +NORMALIZE_WHITESPACE
    **base.** Weighted by population shares, the model's intersectional predictions for a level differ from its
    single-axis prediction by a mean total variation of 0.100 on sex, the only axis with both.
    """
    if summary.empty or "tag" not in summary.columns:
        return aggregation_sentence(summary)
    return "\n\n".join(f"**{tag}.** {aggregation_sentence(g)}" for tag, g in summary.groupby("tag", sort=False))
