"""What chapter 07 shows of fairness: its inputs and tables, computed once, and their display.

:mod:`sgvalues.fairness` computes; the functions here gather every run's predictions, compute
each table the chapter shows once (:func:`fairness_tables`, empty frames when there are no
predictions, so the chapter's cells need no guards) and display them with the sentences that
read them:

- :func:`fairness_inputs` and :func:`fairness_tables` - the chapter's inputs and tables;
- the ``show_*`` helpers - one table (and its sentence) per cell, or a sentence saying why there
  is none; :func:`write_fairness_tables` writes the tables as CSV;
- :func:`headline_table`, :func:`stratum_range_table`, :func:`gap_table` and
  :func:`bootstrap_table` - compact tables that fit the text column;
- :func:`interval_sentence`, :func:`cluster_sentence`, :func:`permutation_sentence` (with
  :func:`paired_test_table`) and :func:`spread_sentence` - what the bootstrap intervals, their number of
  clusters, the question-level paired tests (raw and Holm-adjusted p) and the no-persona reference
  (:func:`baselines_like`) say, computed from the tables.

The chapter's figures (per-level bars, bootstrap intervals) are in :mod:`sgvalues.report.figures`.
Every number goes through :mod:`sgvalues.report.format`.

Example
-------
>>> import pandas as pd
>>> model_names(pd.DataFrame({"run": ["a", "b"], "label": ["M", "N"]})).tolist()
['M', 'N']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sgvalues.report.chapters import NO_PREDICTIONS, Chapter, say, show
from sgvalues.report.format import (STATISTIC_LABELS, fmt_count, fmt_delta, fmt_p, fmt_rate, model_name,
                                    model_names)

__all__ = [
    "FairnessInputs",
    "fairness_inputs",
    "FairnessTables",
    "fairness_tables",
    "baselines_like",
    "show_inventory",
    "show_headline",
    "show_stratum_ranges",
    "show_gaps",
    "show_reference_gaps",
    "show_favoured",
    "show_ablation",
    "show_bootstrap",
    "show_permutation_tests",
    "write_fairness_tables",
    "headline_table",
    "stratum_range_table",
    "gap_table",
    "bootstrap_table",
    "interval_sentence",
    "permutation_sentence",
    "paired_test_table",
    "cluster_sentence",
    "spread_sentence",
]


@dataclass
class FairnessInputs:
    """Chapter 07's inputs: every run's predictions, scored, and where they came from."""

    predictions: pd.DataFrame
    scored: pd.DataFrame
    root: Path
    synthetic_note: str

    @property
    def have(self) -> bool:
        return not self.predictions.empty


def fairness_inputs(ch: Chapter, runs_root: str | Path = "runs", show: bool = True) -> FairnessInputs:
    """Gather every run's predictions beside ``ch.run``, score them and say which data they used.

    The note names the runs computed on the synthetic sample (from each run's manifest) and
    those that do not record their source; with ``show`` it is displayed.
    """
    from sgvalues import fairness, metrics
    from sgvalues.manifest import run_synthetic
    from sgvalues.paths import repo_path

    predictions, root = fairness.gather_predictions(ch.run, repo_path(runs_root))
    scored = metrics.score_samples(predictions) if not predictions.empty else predictions
    runs = sorted(set(predictions.get("run", [])) | {ch.run.name})
    source = {r: run_synthetic(root / r) for r in runs}
    source[ch.run.name] = bool(source[ch.run.name]) or ch.params.data.wvs_file is None
    synthetic = [r for r, syn in source.items() if syn]
    unknown = [r for r, syn in source.items() if syn is None]
    note = ((f"**Synthetic data** (run(s) {', '.join(synthetic)}): the synthetic Singapore-like sample stands in "
             "for the World Values Survey, so these numbers show how the analysis works, not how fair a model "
             "is to real Singaporeans." if synthetic else "Data: the WVS-7 Singapore sample.")
            + (f" Run(s) {', '.join(unknown)} do not record their data source." if unknown else ""))
    if show:
        from IPython.display import Markdown, display

        display(Markdown(f"Runs gathered from `{root.name}/`: {', '.join(f'`{r}`' for r in runs)}. " + note))
    return FairnessInputs(predictions=predictions, scored=scored, root=root, synthetic_note=note)


@dataclass
class FairnessTables:
    """Every table chapter 07 shows, computed once; each is an empty frame when no run has
    predictions, so the chapter's cells need no guards (the ``show_*`` helpers say so)."""

    subgroups: pd.DataFrame
    fair: pd.DataFrame
    reference: pd.DataFrame
    fair_reference: pd.DataFrame
    levels: pd.DataFrame
    gaps: pd.DataFrame
    ablation: pd.DataFrame
    boot: pd.DataFrame
    tests: pd.DataFrame
    run: str

    def mine(self, name: str) -> pd.DataFrame:
        """Table ``name``'s rows of this chapter's run (empty when there are none)."""
        table = getattr(self, name)
        return table[table["run"] == self.run] if "run" in table.columns else table


def fairness_tables(inputs: FairnessInputs, run_dir: str | Path, n_boot: int = 1000, seed: int = 0) -> FairnessTables:
    """Chapter 07's tables from :func:`fairness_inputs`: per-subgroup scores and their spread, the
    no-persona reference (``baselines_like``) on the same samples, persona levels and gaps, the
    base vs SFT ablation, the bootstrap over questions (OOD split, ``n_boot`` draws, ``seed``)
    and the paired permutation tests. Empty frames when there are no predictions."""
    from sgvalues import fairness, metrics

    empty = pd.DataFrame()
    run = Path(run_dir).name
    if not inputs.have:
        return FairnessTables(*(empty,) * 9, run=run)
    scored = inputs.scored
    subgroups = fairness.subgroup_scores(scored)
    fair = fairness.fairness_table(subgroups)
    reference = baselines_like(inputs.predictions, run_dir)
    fair_ref = (fairness.fairness_table(fairness.subgroup_scores(metrics.score_samples(reference)))
                if len(reference) else empty)
    levels = fairness.level_scores(scored, pool_splits=True)
    return FairnessTables(
        subgroups=subgroups, fair=fair, reference=reference, fair_reference=fair_ref, levels=levels,
        gaps=fairness.attribute_gaps(levels), ablation=fairness.ablation_table(fair, split="ood"),
        boot=fairness.bootstrap_fairness(scored[scored["split"] == "ood"], n_boot=n_boot, seed=seed),
        tests=fairness.permutation_tests(scored, seed=seed), run=run)


def show_inventory(inputs: FairnessInputs) -> None:
    """Which runs, states and splits chapter 07 found (or that there are none yet)."""
    from sgvalues import fairness
    from sgvalues.report.format import format_table

    if not inputs.have:
        return say(f"**No predictions yet** under `{inputs.root.name}/`: run notebooks 04 and 05 first.")
    inventory = fairness.run_inventory(inputs.predictions)
    show(format_table(inventory.assign(label=model_names(inventory)).drop(columns="run"),
                       counts=["n_samples", "n_questions", "n_subgroups"]))


def show_headline(t: FairnessTables) -> None:
    """The headline spread table, beside the no-persona reference and its sentence when there is one."""
    from sgvalues.report.format import format_table

    if t.fair.empty:
        return say(NO_PREDICTIONS)
    if t.fair_reference.empty:
        return show(format_table(headline_table(t.fair)))
    headline = headline_table(pd.concat([t.fair, t.fair_reference], ignore_index=True))
    say(spread_sentence(headline, model_name(t.fair, t.run)))
    show(format_table(headline))


def show_stratum_ranges(t: FairnessTables) -> None:
    """Norm. Range of subgroup accuracy within each stratum, this run ("–": a state not evaluated there)."""
    from sgvalues.report.format import format_table

    if t.fair.empty:
        return say(NO_PREDICTIONS)
    say("Norm. Range of subgroup accuracy within each stratum, this run:")
    show(format_table(stratum_range_table(t.fair, t.run)))


def _gap_display(gap: pd.DataFrame):
    from sgvalues.report.format import format_table

    return format_table(gap, deltas=[c for c in ["sft − base"] if c in gap.columns])


def show_gaps(t: FairnessTables, metric: str = "accuracy") -> None:
    """This run's persona gaps (best minus worst level of each attribute)."""
    if t.gaps.empty:
        return say(NO_PREDICTIONS)
    show(_gap_display(gap_table(t.gaps, metric, run=t.run)))


def show_reference_gaps(t: FairnessTables) -> None:
    """The same gaps for the population's modal answer (no persona) on each state's samples."""
    from sgvalues import fairness, metrics

    if t.reference.empty:
        return say("No no-persona reference on these samples (no baselines for this run).")
    pop = t.reference[t.reference["label"].str.startswith("population_mode")]
    levels = fairness.level_scores(metrics.score_samples(pop), pool_splits=True)
    say("The same gaps for the population's modal answer (`population_mode`, no persona) on each state's samples:")
    show(_gap_display(gap_table(fairness.attribute_gaps(levels))))


def show_favoured(t: FairnessTables, note: str = "") -> None:
    """Which level of each attribute each model scores best on, beside the paper's finding."""
    from sgvalues import fairness
    from sgvalues.published import PUBLISHED_LABEL, published
    from sgvalues.report.format import format_table

    if t.levels.empty:
        return say(NO_PREDICTIONS)
    favoured = fairness.favoured_levels(t.levels)
    show(format_table(favoured.assign(label=model_names(favoured)).drop(columns=["run", "split"], errors="ignore")))
    say(f"{PUBLISHED_LABEL}: models favour **{', '.join(published()['fairness']['favoured_personas'])}** "
         "personas (Christian = our `Roman Catholic` and `Protestant` levels). " + note)


def show_ablation(t: FairnessTables, params) -> None:
    """The paper's ablation table (base vs SFT spread) with ours beside it where a run has both."""
    from sgvalues.report import paper
    from sgvalues.report.format import format_table

    if t.ablation.empty:
        say("No run has both base and SFT predictions on the OOD split: only the published values are shown.")
        ours = pd.DataFrame(columns=["statistic", "base", "sft"])
    else:
        ours = t.ablation.rename(columns={"label": "source"})
    say(paper.paper_sentence(params.name, params.label))
    show(format_table(paper.ablation_beside_paper(ours, params.name, params.label), deltas=["sft − base"]))


def show_bootstrap(t: FairnessTables, n_boot: int, seed: int) -> None:
    """The bootstrap intervals over questions, in words and as a table."""
    from sgvalues.report.format import format_table

    if t.boot.empty:
        return say(NO_PREDICTIONS)
    say(f"{n_boot:,} bootstrap draws over questions, seed {seed}, 95 % percentile intervals, OOD split. "
         + interval_sentence(t.boot) + " " + cluster_sentence(t.boot))
    show(format_table(bootstrap_table(t.boot), deltas=["bias"]))


def show_permutation_tests(t: FairnessTables) -> None:
    """The paired base vs SFT permutation tests, in words and as a table."""
    from sgvalues.report.format import format_table

    if t.tests.empty:
        return say("No run has both base and SFT predictions: no paired test.")
    say(permutation_sentence(t.tests))
    show(format_table(paired_test_table(t.tests), counts=["n", "questions"], deltas=["change"]))


def write_fairness_tables(t: FairnessTables, folder: str | Path) -> list[Path]:
    """Write the chapter's tables to ``folder`` (``<run>/fairness``) as CSV and say which; none
    without predictions. Returns the paths written."""
    if t.fair.empty:
        say(NO_PREDICTIONS)
        return []
    from sgvalues.tables import write_tables

    folder = Path(folder)
    tables = {"subgroup_scores": t.subgroups, "fairness_table": t.fair, "level_scores": t.levels,
              "attribute_gaps": t.gaps, "ablation": t.ablation, "bootstrap": t.boot, "permutation_tests": t.tests}
    written = write_tables(tables, folder)
    say("Written to `fairness/`: " + ", ".join(f"`{p.name}`" for p in sorted(folder.glob("*.csv"))))
    return written


_SPREAD = {"mean": "", "norm_range": " NR", "cv": " CV"}


def headline_table(fair: pd.DataFrame, stratum: str = "all") -> pd.DataFrame:
    """Mean, Norm. Range and CV of accuracy and NMAE per model, state and split, one row each.

    Input: :func:`sgvalues.fairness.fairness_table`. Columns ``model, state, split, accuracy,
    acc NR, acc CV, NMAE, NMAE NR, NMAE CV`` (short headers, so the table fits the column).

    Examples
    --------
    >>> f = pd.DataFrame({"label": "M", "tag": "base", "split": "ood", "stratum": "all",
    ...                   "metric": ["accuracy", "nmae"], "mean": [0.5, 0.2], "norm_range": [0.4, 0.3],
    ...                   "cv": [0.1, 0.2]})
    >>> headline_table(f).columns.tolist()
    ['model', 'state', 'split', 'accuracy', 'acc NR', 'acc CV', 'NMAE', 'NMAE NR', 'NMAE CV']
    >>> float(headline_table(f)["NMAE NR"].iloc[0])
    0.3
    """
    f = fair[fair["stratum"] == stratum]
    f = f.assign(label=model_names(f))
    rows = []
    for (label, tag, split), g in f.groupby(["label", "tag", "split"], sort=False):
        row = {"model": label, "state": tag, "split": split}
        for metric, head in (("accuracy", "acc"), ("nmae", "NMAE")):
            m = g[g["metric"] == metric]
            for col, suffix in _SPREAD.items():
                name = (("accuracy" if metric == "accuracy" else "NMAE") if col == "mean" else head + suffix)
                row[name] = float(m[col].iloc[0]) if len(m) else float("nan")
        rows.append(row)
    order = {"zeroshot": 0, "base": 1, "sft": 2}
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["_o"] = out["state"].map(lambda t: order.get(t, 9))
    return out.sort_values(["model", "split", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def stratum_range_table(fair: pd.DataFrame, run: str, metric: str = "accuracy") -> pd.DataFrame:
    """Norm. Range of ``metric`` per stratum (rows) and model state (columns) for one run.

    Missing cells (a state not evaluated on a stratum) stay NaN; the book prints them as "–".

    Examples
    --------
    >>> f = pd.DataFrame({"run": "r", "stratum": ["sex", "sex", "all"], "tag": ["base", "sft", "base"],
    ...                   "metric": "accuracy", "norm_range": [0.2, 0.1, 0.3]})
    >>> stratum_range_table(f, "r").to_dict("records")
    [{'stratum': 'sex', 'base': 0.2, 'sft': 0.1}]
    """
    f = fair[(fair["run"] == run) & (fair["stratum"] != "all") & (fair["metric"] == metric)]
    wide = f.pivot_table(index="stratum", columns="tag", values="norm_range", aggfunc="first", sort=False)
    tags = [t for t in ("zeroshot", "base", "sft") if t in wide.columns]
    wide = wide[tags].reset_index()
    wide.columns.name = None
    return wide


def bootstrap_table(boot: pd.DataFrame, statistics=None) -> pd.DataFrame:
    """Bootstrap results in long form: ``model, statistic, state, estimate, interval, bias``.

    ``interval`` is the text ``[lo, hi]`` in the book's number format; the narrow long form
    fits the text column where a wide pivot would not.

    Examples
    --------
    >>> b = pd.DataFrame({"label": "M", "tag": ["base"], "statistic": ["accuracy"], "estimate": [0.5],
    ...                   "lo": [0.4], "hi": [0.61], "bias": [0.001]})
    >>> bootstrap_table(b).to_dict("records")
    [{'model': 'M', 'statistic': 'accuracy', 'state': 'base', 'estimate': 0.5, 'interval': '[0.400, 0.610]', 'bias': 0.001}]
    """
    b = boot if statistics is None else boot[boot["statistic"].isin(list(statistics))]
    return pd.DataFrame({
        "model": model_names(b).to_numpy(), "statistic": b["statistic"].map(lambda s: STATISTIC_LABELS.get(s, s)).to_numpy(),
        "state": b["tag"].to_numpy(), "estimate": b["estimate"].to_numpy(float),
        "interval": [f"[{fmt_rate(lo)}, {fmt_rate(hi)}]" for lo, hi in zip(b["lo"], b["hi"])],
        "bias": b["bias"].to_numpy(float)})


def permutation_sentence(tests: pd.DataFrame, alpha: float = 0.05) -> str:
    """Markdown: for each run and split, SFT's change in accuracy, its question-level p-value and
    the Holm-adjusted one, and whether the change is significant after adjustment.

    Input: :func:`sgvalues.fairness.permutation_tests` (its rows are the chapter's family of
    tests; ``p_holm`` adjusts over all of them). Significance is read from ``p_holm`` when the
    table has it, from ``p_value`` otherwise.

    Examples
    --------
    >>> t = pd.DataFrame({"label": ["M", "M"], "split": "ood", "metric": ["accuracy", "nmae"], "base": 0.2,
    ...                   "sft": 0.5, "change": 0.3, "p_value": [0.03125, 0.3], "p_holm": [0.0625, 0.3], "n": 40,
    ...                   "n_questions": 6, "method": "exact"})
    >>> print(permutation_sentence(t))
    Paired sign-flip tests over questions (the unit of independence), Holm-adjusted over the 2 tests of this table:
    - M, ood: accuracy 0.200 → 0.500 (+0.300) on 40 paired samples in 6 questions, p = 0.031 (exact; the smallest p 6 questions allow is 0.031), Holm-adjusted p = 0.062: not significant at 0.05.
    """
    rows = tests[tests["metric"] == "accuracy"]
    if rows.empty:
        return "No run has both base and SFT predictions: no paired test."
    rows = rows.assign(label=model_names(rows))
    adjusted = "p_holm" in rows.columns
    head = ("Paired sign-flip tests over questions (the unit of independence)"
            + (f", Holm-adjusted over the {int(tests['p_value'].notna().sum())} tests of this table:" if adjusted
               else ":"))
    lines = [head]
    for r in rows.to_dict("records"):
        p_sig = r["p_holm"] if adjusted else r["p_value"]
        sig = "significant" if p_sig < alpha else "not significant"
        where = (f" in {fmt_count(r['n_questions'])} questions" if "n_questions" in r else "")
        how = f" ({r['method']})" if "method" in r else ""
        if r.get("method") == "exact" and "n_questions" in r and r["n_questions"] > 0:
            # the all-plus and all-minus flips always match the observed sum: p >= 2 / 2^Q
            how = f" (exact; the smallest p {fmt_count(r['n_questions'])} questions allow is {fmt_rate(2.0 ** (1 - r['n_questions']))})"
        holm = f", Holm-adjusted p {fmt_p(r['p_holm'])}" if adjusted else ""
        lines.append(f"- {r['label']}, {r['split']}: accuracy {fmt_rate(r['base'])} → {fmt_rate(r['sft'])} "
                     f"({fmt_delta(r['change'])}) on {fmt_count(r['n'])} paired samples{where}, "
                     f"p {fmt_p(r['p_value'])}{how}{holm}: {sig} at {alpha:g}.")
    return "\n".join(lines)


def paired_test_table(tests: pd.DataFrame) -> pd.DataFrame:
    """The paired tests, narrow enough for the text column: ``model, split, metric, base, sft,
    change, p, p (Holm), n, questions``.

    Examples
    --------
    >>> t = pd.DataFrame({"run": "r", "label": "M", "split": "ood", "metric": ["accuracy"], "base": 0.2,
    ...                   "sft": 0.5, "change": 0.3, "p_value": 0.25, "p_holm": 0.5, "n": 40, "n_questions": 6,
    ...                   "n_nonzero": 3, "method": "exact"})
    >>> paired_test_table(t).columns.tolist()
    ['model', 'split', 'metric', 'base', 'sft', 'change', 'p', 'p (Holm)', 'n', 'questions']
    """
    out = tests.assign(model=model_names(tests)).rename(columns={"p_value": "p", "p_holm": "p (Holm)",
                                                               "n_questions": "questions"})
    cols = [c for c in ("model", "split", "metric", "base", "sft", "change", "p", "p (Holm)", "n", "questions")
            if c in out.columns]
    return out[cols].reset_index(drop=True)


def cluster_sentence(boot: pd.DataFrame, min_clusters: int = 10) -> str:
    """Markdown: how many questions (clusters) each state's bootstrap resamples, and a warning
    where fewer than ``min_clusters`` make its interval unreliable.

    Input: :func:`sgvalues.fairness.bootstrap_fairness` (its ``n_questions`` per state).

    Examples
    --------
    >>> b = pd.DataFrame({"label": "M", "tag": ["zeroshot", "base", "sft", "sft - base"],
    ...                   "n_questions": [42, 6, 6, 6]})
    >>> print(cluster_sentence(b))
    Each state resamples its own questions: M: zeroshot 42, base 6, sft 6. **Few clusters**: with fewer than 10 questions (M: base, sft) the bootstrap draws take few distinct values, so those intervals are unreliable; read them as rough guides, not as 95 % coverage.
    """
    if boot.empty or "n_questions" not in boot.columns:
        return "No bootstrap interval to read."
    b = boot[boot["tag"] != "sft - base"].assign(model=model_names(boot[boot["tag"] != "sft - base"]))
    per = b.groupby(["model", "tag"], sort=False)["n_questions"].first().reset_index()
    counts, few = [], []
    for model, g in per.groupby("model", sort=False):
        counts.append(f"{model}: " + ", ".join(f"{t} {fmt_count(n)}" for t, n in zip(g["tag"], g["n_questions"])))
        small = g[g["n_questions"] < min_clusters]["tag"].tolist()
        if small:
            few.append(f"{model}: {', '.join(small)}")
    out = "Each state resamples its own questions: " + "; ".join(counts) + "."
    if few:
        out += (f" **Few clusters**: with fewer than {min_clusters} questions ({'; '.join(few)}) the bootstrap "
                "draws take few distinct values, so those intervals are unreliable; read them as rough guides, "
                "not as 95 % coverage.")
    return out


def baselines_like(predictions: pd.DataFrame, run_dir: str | Path,
                   names=("population_mode", "marginal_product")) -> pd.DataFrame:
    """The run's baseline predictions on exactly the samples of each of its model states.

    For every ``tag`` and ``split`` of ``run_dir``'s rows in ``predictions`` (chapter 07's
    gathered table), each baseline in ``names`` restricted to those ``sample_id`` values, with
    ``run`` = the run, ``label`` = ``"<name> (baseline)"`` and ``tag`` = the state whose samples
    it answers: its fairness statistics are the reference against which that state's read.
    """
    from sgvalues import baselines

    run_dir = Path(run_dir)
    mine = predictions[predictions["run"] == run_dir.name] if len(predictions) else predictions
    frames = []
    for split, g in mine.groupby("split") if len(mine) else []:
        tables = baselines.run_baseline_predictions(run_dir, split, names)
        if tables.empty:
            continue
        for tag, gt in g.groupby("tag"):
            ids = set(gt["sample_id"].astype(str))
            for name in names:
                b = tables[(tables["baseline"] == name) & tables["sample_id"].astype(str).isin(ids)]
                if len(b):
                    frames.append(b.drop(columns="baseline").assign(run=run_dir.name, label=f"{name} (baseline)",
                                                                    tag=tag, split=split))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def spread_sentence(headline: pd.DataFrame, run_label: str, baseline: str = "population_mode (baseline)",
                    split: str = "ood") -> str:
    """Markdown: each model state's accuracy Norm. Range beside a no-persona baseline's, same samples.

    ``headline`` is :func:`headline_table` over the run's states and :func:`baselines_like`.

    Examples
    --------
    >>> h = pd.DataFrame({"model": ["M", "M", "population_mode (baseline)"], "state": ["base", "sft", "base"],
    ...                   "split": "ood", "acc NR": [0.5, 0.3, 0.4]})
    >>> print(spread_sentence(h, "M"))
    On the ood split, the spread of accuracy over subgroups (Norm. Range) beside that of the population's modal answer on the same samples, a predictor that ignores the persona: *base* 0.500 against 0.400 (wider); *sft* 0.300 against – (no baseline).
    """
    h = headline[headline["split"] == split]
    ours = h[h["model"] == run_label]
    ref = h[h["model"] == baseline].set_index("state")
    if ours.empty:
        return ""
    parts = []
    for _, r in ours.iterrows():
        mine, other = r["acc NR"], ref["acc NR"].get(r["state"], float("nan"))
        how = ("no baseline" if pd.isna(other) or pd.isna(mine) else "wider" if mine > other
               else "narrower" if mine < other else "equal")
        parts.append(f"*{r['state']}* {fmt_rate(mine)} against {fmt_rate(other)} ({how})")
    return (f"On the {split} split, the spread of accuracy over subgroups (Norm. Range) beside that of the "
            "population's modal answer on the same samples, a predictor that ignores the persona: "
            + "; ".join(parts) + ".")


def gap_table(gaps: pd.DataFrame, metric: str = "accuracy", run: str | None = None) -> pd.DataFrame:
    """Chapter 07's persona gaps, narrow enough for the text column.

    One row per attribute: the gap between its best and worst level for each model state
    (``zeroshot``, ``base``, ``sft`` where evaluated), ``sft − base``, and the best and worst
    level of the latest state. Input: :func:`sgvalues.fairness.attribute_gaps` (one run).

    Examples
    --------
    >>> g = pd.DataFrame({"run": "r", "tag": ["base", "sft"], "attribute": "sex", "metric": "accuracy",
    ...                   "best_level": ["Male", "Female"], "worst_level": ["Female", "Male"],
    ...                   "gap": [0.2, 0.05]})
    >>> gap_table(g).to_dict("records")
    [{'attribute': 'sex', 'base': 0.2, 'sft': 0.05, 'sft − base': -0.15000000000000002, 'best (sft)': 'Female', 'worst (sft)': 'Male'}]
    """
    g = gaps[gaps["metric"] == metric]
    if run is not None and "run" in g.columns:
        g = g[g["run"] == run]
    if g.empty:
        return pd.DataFrame(columns=["attribute"])
    tags = [t for t in ("zeroshot", "base", "sft") if t in set(g["tag"])]
    wide = g.pivot_table(index="attribute", columns="tag", values="gap", aggfunc="first", sort=False)
    out = pd.DataFrame({"attribute": wide.index})
    for t in tags:
        out[t] = wide[t].to_numpy()
    if {"base", "sft"} <= set(tags):
        out["sft − base"] = out["sft"] - out["base"]
    last = tags[-1]
    best = g[g["tag"] == last].set_index("attribute")
    out[f"best ({last})"] = out["attribute"].map(best["best_level"])
    out[f"worst ({last})"] = out["attribute"].map(best["worst_level"])
    return out.reset_index(drop=True)


def interval_sentence(boot: pd.DataFrame, statistics=("accuracy_norm_range", "nmae_norm_range")) -> str:
    """Markdown: where each Norm. Range estimate lies relative to its bootstrap interval.

    Counts, over the rows of :func:`sgvalues.fairness.bootstrap_fairness` for ``statistics``
    (tags ``base``/``sft``/``zeroshot``, not the change), the estimates below, inside and above
    their interval, and the mean bootstrap bias, so the text matches the table whatever the run.

    Examples
    --------
    >>> b = pd.DataFrame({"tag": ["base", "sft"], "statistic": "accuracy_norm_range",
    ...                   "estimate": [0.2, 0.3], "lo": [0.25, 0.1], "hi": [0.5, 0.4], "bias": [0.1, 0.02]})
    >>> interval_sentence(b)
    'Of 2 Norm. Range estimates, 1 lie(s) below its bootstrap interval, 1 inside it and 0 above it; the mean bootstrap bias (mean of the draws minus the estimate) is +0.060.'
    """
    rows = boot[boot["statistic"].isin(list(statistics)) & (boot["tag"] != "sft - base")]
    rows = rows.dropna(subset=["estimate", "lo", "hi"])
    if rows.empty:
        return "No bootstrap interval to read."
    below = int((rows["estimate"] < rows["lo"]).sum())
    above = int((rows["estimate"] > rows["hi"]).sum())
    inside = len(rows) - below - above
    return (f"Of {len(rows)} Norm. Range estimates, {below} lie(s) below its bootstrap interval, "
            f"{inside} inside it and {above} above it; the mean bootstrap bias (mean of the draws minus "
            f"the estimate) is {fmt_delta(rows['bias'].mean())}.")
