"""Chapter 09's tables, sentences and figures: what the model knows versus what it simulates.

Computing lives in :mod:`sgvalues.readouts`, :mod:`sgvalues.calibration`,
:mod:`sgvalues.aggregation` and :mod:`sgvalues.entropy_control`; this module turns their tables
into what the page shows. Every sentence is computed from those tables; the peers' figures
(``resources/peers.json``) are shown labelled *published* beside ours, never as ours.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Mapping

import pandas as pd

from sgvalues.report.format import MISSING, fmt_delta, fmt_rate

__all__ = ["PEERS_LABEL", "peer_figures", "readout_comparison", "temperature_sentence", "calibration_sentence",
           "aggregation_sentence", "entropy_sentence", "plot_reliability", "group_means", "plot_error_vs_entropy"]

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


def readout_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Our readout table (:func:`sgvalues.readouts.run_readouts`) with the peers' published TV beside it.

    Returns
    -------
    DataFrame
        ``readout`` (in words), ``accuracy, nmae, jsd, tv, representativeness, ece, inside_share, n``
        and one column ``TV, published (<study>, <model>)`` per peer study (blank where the
        study has no such readout).
    """
    cols = ["accuracy", "nmae", "jsd", "tv", "representativeness", "ece", "inside_share", "n"]
    out = table[["readout"] + [c for c in cols if c in table.columns]].copy()
    for study, g in peer_figures().groupby("study", sort=False):
        models = [m for m in g["model"].unique() if m != "-"]
        name = f"TV, {PEERS_LABEL} ({study}{', ' + models[0] if models else ''})"
        out[name] = out["readout"].map(dict(zip(g["readout"], g["value"])))
    out["readout"] = out["readout"].map(lambda r: _READOUT_WORDS.get(r, r))
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
    elif t > 1:
        how = "above 1, so the raw option probabilities were over-confident and are flattened"
    else:
        how = "below 1, so the raw option probabilities were under-confident and are sharpened"
    text = (f"One temperature fitted on the {fit.n_cells} train cells by minimising their "
            f"{_OBJECTIVE_WORDS.get(fit.objective, fit.objective)} is T = {t:.2f}: {how}.")
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
