"""What chapters 04, 05 and 07 show: their set-up, compact tables and computed sentences.

Stage modules (``train``, ``evaluate``, ``fairness``) compute; the functions here turn their
tidy tables into what a reader sees, so a notebook cell reads like a sentence:

- :func:`open_chapter` - the set-up cell of a chapter (params, run folder, prepared data, the
  data-source note), one call;
- :func:`relative` - a path as the reader should see it: relative to the run folder, never the
  building machine's absolute path;
- :func:`predictions_preview` - the few columns of a predictions table that mean something;
- :func:`change_sentence` and :func:`trained_vs_unseen` - base -> SFT changes said in words,
  computed from the run's own tables;
- :func:`gap_table` and :func:`interval_sentence` - chapter 07's persona gaps in a table that
  fits the text column, and what the bootstrap intervals say about their estimates.

Every number goes through :mod:`sgvalues.report.format`.

Example
-------
>>> import pandas as pd
>>> t = pd.DataFrame({"split": "ood", "tag": ["base", "sft"], "accuracy": [0.25, 0.5], "n": 40})
>>> change_sentence(t, "accuracy")
'accuracy 0.250 → 0.500 (+0.250)'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sgvalues.report.format import MISSING, fmt_count, fmt_delta, fmt_p, fmt_rate

__all__ = [
    "Chapter",
    "open_chapter",
    "relative",
    "sample_card",
    "predictions_preview",
    "state_row",
    "size_sentence",
    "evaluation_sentence",
    "questions_sentence",
    "training_summary",
    "plot_before_after",
    "seed_table",
    "seed_sentence",
    "change_sentence",
    "trained_vs_unseen",
    "gap_table",
    "interval_sentence",
    "show_yardsticks",
    "baselines_like",
    "spread_sentence",
    "FairnessInputs",
    "fairness_inputs",
    "NO_PREDICTIONS",
    "FairnessTables",
    "fairness_tables",
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
    "model_name",
    "model_names",
    "headline_table",
    "stratum_range_table",
    "bootstrap_table",
    "permutation_sentence",
    "plot_level_bars",
    "plot_intervals",
    "legend_below",
]

def _n(count, word: str) -> str:
    """``"1 question"``, ``"12,300 samples"``: a count and its noun, pluralised by adding *s*."""
    return f"{fmt_count(count)} {word}{'' if count == 1 else 's'}"


#: what an empty-safe helper shows instead of a table or figure when no run has predictions
NO_PREDICTIONS = "**No predictions yet** for this part: run notebooks 04 and 05 first."


def _say(markdown: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(markdown))


def _show(table) -> None:
    from IPython.display import display

    display(table)


#: one colour per model state in every figure of the book's chapters; baselines are grey
STATE_COLOURS = {"zeroshot": "C2", "base": "C1", "sft": "C0"}

#: the columns of a predictions table a reader needs to see what happened to a sample
PREVIEW_COLUMNS = ["subgroup", "question_id", "target", "prediction", "status"]


@dataclass
class Chapter:
    """What a chapter's cells share: the params, the run folder and its prepared data."""

    params: object
    run: Path
    figures: Path
    data: object
    note: str
    #: seconds spent preparing (or checking and reusing) the run's data folder
    prepare_s: float = 0.0

    def rel(self, path: str | Path) -> str:
        """``path`` relative to the run folder (see :func:`relative`)."""
        return relative(path, self.run)

    def save(self, fig, name: str) -> None:
        """Save ``fig`` as ``<run>/figures/<name>`` (the notebook still shows it inline)."""
        from sgvalues import plots

        plots.save_figure(fig, self.figures / name)

    def plot(self, name: str, plot, data: pd.DataFrame, *args, **kwargs):
        """``plot(data, *args, **kwargs)`` saved as ``<run>/figures/<name>``; when ``data`` is empty,
        no figure: the sentence :data:`NO_PREDICTIONS` is shown instead. Returns the figure or ``None``."""
        if data is None or data.empty:
            _say(NO_PREDICTIONS)
            return None
        fig = plot(data, *args, **kwargs)
        self.save(fig, name)
        return fig


def open_chapter(params_file: str | Path, run_dir: str | Path, show: bool = True,
                 data_overrides: dict | None = None) -> Chapter:
    """Load the params, prepare (or reuse) the run's data and show where the numbers come from.

    Parameters
    ----------
    params_file, run_dir : str or Path
        As in the notebooks' parameters cell; relative paths are taken from the repository.
    show : bool
        Display the data-source note (synthetic or WVS-7) as Markdown.
    data_overrides : dict, optional
        ``data`` fields to replace (``None`` values keep the params' own,
        :func:`sgvalues.prepare.params_with_data`); with it the folder is (re)built for these
        settings (:func:`sgvalues.prepare.prepare_run_data`, chapter 01), without it a complete
        folder is used as it is (:func:`sgvalues.prepare.ensure_prepared`).

    Returns
    -------
    Chapter
        ``params``, ``run`` (absolute), ``figures`` (``<run>/figures``), ``data``
        (:func:`sgvalues.prepare.load_prepared`), ``note`` (the data-source sentence) and
        ``prepare_s`` (seconds spent on the data folder).
    """
    import time

    from sgvalues import plots
    from sgvalues.params import load_params
    from sgvalues.prepare import ensure_prepared, load_prepared, params_with_data, prepare_run_data, source_note
    from sgvalues.runs import repo_path

    plots.use_book_style()
    params = load_params(repo_path(params_file))
    run = repo_path(run_dir)
    started = time.perf_counter()
    if data_overrides is not None:
        params = params_with_data(params, **data_overrides)
        data = load_prepared(prepare_run_data(params, run))
    else:
        data = load_prepared(ensure_prepared(params, run))
    chapter = Chapter(params=params, run=run, figures=run / "figures", data=data,
                      note=source_note(data.summary), prepare_s=time.perf_counter() - started)
    if show:
        from IPython.display import Markdown, display

        display(Markdown(chapter.note))
    return chapter


def relative(path: str | Path, run_dir: str | Path) -> str:
    """``path`` as the book shows it: relative to the run folder, in POSIX form.

    A path outside the run folder keeps only its file name, so no page prints the building
    machine's folders.

    Examples
    --------
    >>> relative("/home/me/sgvalues/runs/default/predictions/base_ood.csv", "/home/me/sgvalues/runs/default")
    'predictions/base_ood.csv'
    >>> relative("/tmp/elsewhere/x.csv", "/home/me/runs/default")
    'x.csv'
    """
    path, run_dir = Path(path), Path(run_dir)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.relative_to(run_dir).as_posix()
    except ValueError:
        try:
            return path.resolve().relative_to(run_dir.resolve()).as_posix()
        except ValueError:
            return path.name


def sample_card(sample: dict, keys=("sample_id", "split", "stratum", "levels", "target", "distribution",
                                    "n_valid")) -> str:
    """One sample record as the book prints it: a ``key: value`` line per field.

    Shares (the ``distribution``) print as rates, to 3 decimals, and counts as integers, so a
    reader sees ``0.422`` rather than ``0.42222222222222222``.

    Examples
    --------
    >>> print(sample_card({"sample_id": "q1|sex:Male", "distribution": {"1": 0.4222222, "2": 0.5777778},
    ...                    "n_valid": 45.0}, keys=("sample_id", "distribution", "n_valid")))
       sample_id: q1|sex:Male
    distribution: {1: 0.422, 2: 0.578}
         n_valid: 45
    """
    def shown(key, value):
        if key == "distribution" and isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {fmt_rate(v)}" for k, v in value.items()) + "}"
        if key.startswith("n_"):
            return fmt_count(value)
        return value

    width = max(len(k) for k in keys)
    return "\n".join(f"{k:>{width}}: {shown(k, sample[k])}" for k in keys if k in sample)


def predictions_preview(predictions: pd.DataFrame, n: int = 5):
    """The first ``n`` rows of a predictions table, only the columns a reader needs.

    Shows ``subgroup, question_id, target, prediction, status`` and, in logprob mode, ``p(pred)``:
    the probability the model gave its own prediction (from the ``probs`` JSON).

    Examples
    --------
    >>> p = pd.DataFrame({"sample_id": ["Q1_s:a"], "subgroup": ["s:a"], "question_id": ["Q1"],
    ...                   "target": [2], "prediction": [3], "status": ["ok"], "probs": ['{"2": 0.3, "3": 0.7}'],
    ...                   "raw_output": ["3"], "scale_min": [1], "scale_max": [4]})
    >>> predictions_preview(p).data.columns.tolist()
    ['subgroup', 'question_id', 'target', 'prediction', 'status', 'p(pred)']
    """
    import json

    from sgvalues.report.format import format_table
    from sgvalues.evaluate import json_cell

    head = predictions.head(n)
    out = head[[c for c in PREVIEW_COLUMNS if c in head.columns]].copy()
    if "probs" in head.columns:
        def p_of_prediction(row) -> float:
            try:
                probs = json_cell(row["probs"]) or {}
            except json.JSONDecodeError:
                return float("nan")
            if pd.isna(row["prediction"]):
                return float("nan")
            return float(probs.get(str(int(row["prediction"])), float("nan")))

        out["p(pred)"] = [p_of_prediction(r) for _, r in head.iterrows()]
    for col in ("target", "prediction"):
        if col in out.columns:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("Int64")
    return format_table(out, counts=[c for c in ("target", "prediction") if c in out.columns])


def state_row(predictions: pd.DataFrame, state: str, rests_on: str) -> pd.DataFrame:
    """One row ``state, accuracy, nmae, n, rests_on`` for :func:`sgvalues.report.paper.results_beside_paper`.

    >>> p = pd.DataFrame({"prediction": [1, 2], "target": [1, 3], "scale_min": 1, "scale_max": 3, "status": "ok"})
    >>> state_row(p, "zeroshot", "OOD split").to_dict("records")
    [{'state': 'zeroshot', 'accuracy': 0.5, 'nmae': 0.25, 'n': 2, 'rests_on': 'OOD split'}]
    """
    from sgvalues import metrics

    r = metrics.aggregate(predictions, None).iloc[0]
    return pd.DataFrame([{"state": state, "accuracy": float(r["accuracy"]), "nmae": float(r["nmae"]),
                          "n": int(r["n"]), "rests_on": rests_on}])


def size_sentence(predictions: pd.DataFrame) -> str:
    """Markdown: the samples, questions and subgroups behind our rows beside the paper's counts.

    >>> p = pd.DataFrame({"question_id": ["Q1", "Q2"], "subgroup": ["s:a", "s:a"]})
    >>> print(size_sentence(p))
    Ours rest on 2 samples (2 questions, 1 subgroup); the paper's OOD split holds 10,177 samples (214 questions, 48 subgroups; published (Tan et al. 2026)).
    """
    from sgvalues.published import PUBLISHED_LABEL, published

    c = published()["counts"]
    n_sub = predictions["subgroup"].nunique()
    return (f"Ours rest on {_n(len(predictions), 'sample')} ({_n(predictions['question_id'].nunique(), 'question')}, "
            f"{_n(n_sub, 'subgroup')}); the paper's OOD split holds "
            f"{fmt_count(c['ood_samples'])} samples ({fmt_count(c['questions'])} questions, "
            f"{fmt_count(c['ood_subgroups'])} subgroups; {PUBLISHED_LABEL}).")


def evaluation_sentence(predictions: pd.DataFrame, split: str, model: str, seconds: float, written: str) -> str:
    """Markdown: what was evaluated, with which model, how long it took and where it was written.

    ``written`` is the path relative to the run folder (:func:`relative`).

    >>> p = pd.DataFrame({"question_id": ["Q1", "Q1"], "subgroup": ["s:a", "s:b"]})
    >>> evaluation_sentence(p, "ood", "m", 3.2, "predictions/zeroshot_ood.csv")
    '2 samples of the **ood** split (1 question, 2 subgroups) evaluated with `m` in 3 s (cached answers included); written to `predictions/zeroshot_ood.csv` in the run folder.'
    """
    return (f"{_n(len(predictions), 'sample')} of the **{split}** split "
            f"({_n(predictions['question_id'].nunique(), 'question')}, {_n(predictions['subgroup'].nunique(), 'subgroup')}) "
            f"evaluated with `{model}` in {seconds:.0f} s (cached answers included); written to `{written}` in the "
            "run folder.")


def questions_sentence(trained: list[str] | None, unseen: list[str], limit: int | None) -> str:
    """Markdown: which questions chapter 04 trains on and which it keeps unseen.

    Examples
    --------
    >>> questions_sentence(["Q1", "Q2"], ["Q9"], None)
    'Fine-tuning uses 2 questions (Q1, Q2); 1 question training never sees (Q9) shows the limit of the recipe. Every sample of these questions is evaluated.'
    """
    def n_q(qs) -> str:
        return f"{fmt_count(len(qs))} question{'s' if len(qs) != 1 else ''}"

    used = (f"Fine-tuning uses {n_q(trained)} ({', '.join(trained)})" if trained
            else "Fine-tuning uses every question")
    kept = (f"{n_q(unseen)} training never sees ({', '.join(unseen)}) shows the limit of the recipe"
            if unseen else "no question is kept unseen")
    cap = ("Every sample of these questions is evaluated." if limit is None
           else f"At most {fmt_count(limit)} samples per split are evaluated (stratified by question).")
    return f"{used}; {kept}. {cap}"


#: what the training summary shows, in order, with each value's format
_TRAINING_FIELDS = [("samples trained on", "n_samples", "count"), ("optimizer steps", "n_steps", "count"),
                    ("final loss", "final_loss", "rate"), ("answer tokens", "tokens", "count"),
                    ("training time (s)", "train_seconds", "seconds"), ("tokens per second", "tokens_per_s", "seconds"),
                    ("device / dtype", ("device", "dtype"), "text"),
                    ("trainable parameters", "trainable_parameters", "count"),
                    ("resumed from checkpoint", "resumed_from", "text")]


def training_summary(summary: dict) -> pd.DataFrame:
    """``train_summary.json`` as a two-column table a reader can scan (book number format).

    Examples
    --------
    >>> s = {"n_samples": 1200, "n_steps": 16, "final_loss": 0.51234, "tokens": 9000, "train_seconds": 61.27,
    ...      "tokens_per_s": 146.9, "device": "cpu", "dtype": "float32", "trainable_parameters": 230400,
    ...      "resumed_from": None}
    >>> training_summary(s).set_index("setting")["value"].to_dict()["trainable parameters"]
    '230,400'
    >>> training_summary(s).set_index("setting")["value"].to_dict()["resumed from checkpoint"]
    'no'
    """
    rows = []
    for name, key, kind in _TRAINING_FIELDS:
        if isinstance(key, tuple):
            value = " / ".join(str(summary.get(k, MISSING)) for k in key)
        else:
            v = summary.get(key)
            value = {"count": fmt_count, "rate": fmt_rate,
                     "seconds": lambda x: MISSING if x is None else f"{float(x):,.1f}",
                     "text": lambda x: "no" if x is None else str(Path(str(x)).name)}[kind](v)
        rows.append({"setting": name, "value": value})
    return pd.DataFrame(rows)


def plot_before_after(table: pd.DataFrame, by: str = "stratum"):
    """Accuracy and NMAE per ``by`` group, base against fine-tuned, one row of panels per split.

    Horizontal bars, the legend below the panels (never over a bar). ``table`` is
    :func:`sgvalues.train.before_after` without its ``all`` rows.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    splits = list(dict.fromkeys(table["split"]))
    n_groups = max(1, table[by].nunique())
    fig, axes = plt.subplots(len(splits), 2, figsize=(8, 0.9 + len(splits) * (0.8 + 0.28 * n_groups)),
                             squeeze=False, sharex="col")
    for r, split in enumerate(splits):
        sub = table[table["split"] == split]
        for c, metric in enumerate(("accuracy", "nmae")):
            ax = axes[r, c]
            sns.barplot(data=sub, y=by, x=metric, hue="tag", hue_order=["base", "sft"], ax=ax, orient="h",
                        palette=STATE_COLOURS)
            ax.set_title(f"{split}: {'accuracy (higher is better)' if c == 0 else 'NMAE (lower is better)'}",
                         fontsize=9)
            ax.set(xlim=(0, 1), xlabel="", ylabel="" if c else by)
            if c:
                ax.set_yticklabels([])
            if ax.get_legend():
                ax.get_legend().remove()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.legend(handles, ["base (untuned)", "sft (fine-tuned)"][:len(handles)], loc="lower center", ncol=2,
               frameon=False, bbox_to_anchor=(0.5, 0.0))
    return fig


def _value(table: pd.DataFrame, tag: str, metric: str) -> float:
    rows = table[table["tag"] == tag]
    return float(rows[metric].iloc[0]) if len(rows) else float("nan")


def change_sentence(table: pd.DataFrame, metric: str = "accuracy") -> str:
    """``"<metric> base → sft (change)"`` from a ``tag`` / ``metric`` table of one split.

    ``table`` holds one ``base`` and one ``sft`` row (e.g. :func:`sgvalues.train.before_after`
    filtered to a split and ``stratum == "all"``).

    Examples
    --------
    >>> t = pd.DataFrame({"tag": ["base", "sft"], "nmae": [0.3, 0.2]})
    >>> change_sentence(t, "nmae")
    'NMAE 0.300 → 0.200 (-0.100)'
    """
    base, sft = _value(table, "base", metric), _value(table, "sft", metric)
    name = "NMAE" if metric == "nmae" else metric
    return f"{name} {fmt_rate(base)} → {fmt_rate(sft)} ({fmt_delta(sft - base)})"


def _overall(table: pd.DataFrame, split: str = "ood") -> pd.DataFrame:
    rows = table[table["split"] == split] if "split" in table.columns else table
    if "stratum" in rows.columns:
        rows = rows[rows["stratum"] == "all"]
    return rows


def trained_vs_unseen(trained: pd.DataFrame, unseen: pd.DataFrame, n_trained: int, n_unseen: int) -> str:
    """Markdown: the OOD base -> SFT accuracy change on the trained questions and on unseen ones.

    ``trained`` and ``unseen`` are :func:`sgvalues.train.before_after` tables; the sentence
    says which change is larger, so it stays true whatever the run measured.

    Examples
    --------
    >>> t = pd.DataFrame({"split": "ood", "tag": ["base", "sft"], "accuracy": [0.2, 0.6], "n": 80})
    >>> u = pd.DataFrame({"split": "ood", "tag": ["base", "sft"], "accuracy": [0.1, 0.05], "n": 40})
    >>> print(trained_vs_unseen(t, u, 8, 4))  # doctest: +NORMALIZE_WHITESPACE
    On the OOD subgroups of the 8 trained questions (80 samples): accuracy 0.200 → 0.600 (+0.400).
    On 4 questions training never saw (40 samples): accuracy 0.100 → 0.050 (-0.050).
    Fine-tuning did better on the trained questions than on the unseen ones; on the unseen questions fine-tuning lowered accuracy.
    """
    t, u = _overall(trained), _overall(unseen)
    dt = _value(t, "sft", "accuracy") - _value(t, "base", "accuracy")
    du = _value(u, "sft", "accuracy") - _value(u, "base", "accuracy")
    n_t = fmt_count(t["n"].iloc[0]) if len(t) else MISSING
    n_u = fmt_count(u["n"].iloc[0]) if len(u) else MISSING
    lines = [f"On the OOD subgroups of the {n_trained} trained question{'s' if n_trained != 1 else ''} ({n_t} samples): "
             f"{change_sentence(t)}.",
             f"On {n_unseen} questions training never saw ({n_u} samples): {change_sentence(u)}."]
    if pd.isna(dt) or pd.isna(du):
        return "\n".join(lines)
    which = ("Fine-tuning did better on the trained questions than on the unseen ones" if dt > du else
             "Fine-tuning did as well or better on the unseen questions")
    effect = ("fine-tuning lowered accuracy" if du < 0 else
              "accuracy did not move" if du == 0 else "accuracy rose")
    lines.append(f"{which}; on the unseen questions {effect}.")
    return "\n".join(lines)


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


def show_yardsticks(ch: Chapter, split: str, states: dict, figure_name: str, title: str) -> pd.DataFrame:
    """Display the model states beside every baseline and the noise reference: prose, table, figure.

    :func:`sgvalues.report.comparison.chapter_yardsticks` on ``states`` (state -> predictions,
    the same samples); the figure is saved as ``<run>/figures/<figure_name>``. Displayed in
    that order, so a loop over splits keeps each figure under its own table. Returns the table.
    """
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    from sgvalues.report.comparison import chapter_yardsticks, plot_yardsticks
    from sgvalues.report.format import format_table

    table, text = chapter_yardsticks(ch.run, split, states)
    display(Markdown(text))
    display(format_table(table, counts=["n"]))
    fig = plot_yardsticks(table, title)
    ch.save(fig, figure_name)
    display(fig)
    plt.close(fig)
    return table


# ----------------------------------------------------------------------------- chapter 07


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
    from sgvalues.runs import repo_path, run_synthetic

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
        return _say(f"**No predictions yet** under `{inputs.root.name}/`: run notebooks 04 and 05 first.")
    inventory = fairness.run_inventory(inputs.predictions)
    _show(format_table(inventory.assign(label=model_names(inventory)).drop(columns="run"),
                       counts=["n_samples", "n_questions", "n_subgroups"]))


def show_headline(t: FairnessTables) -> None:
    """The headline spread table, beside the no-persona reference and its sentence when there is one."""
    from sgvalues.report.format import format_table

    if t.fair.empty:
        return _say(NO_PREDICTIONS)
    if t.fair_reference.empty:
        return _show(format_table(headline_table(t.fair)))
    headline = headline_table(pd.concat([t.fair, t.fair_reference], ignore_index=True))
    _say(spread_sentence(headline, model_name(t.fair, t.run)))
    _show(format_table(headline))


def show_stratum_ranges(t: FairnessTables) -> None:
    """Norm. Range of subgroup accuracy within each stratum, this run ("–": a state not evaluated there)."""
    from sgvalues.report.format import format_table

    if t.fair.empty:
        return _say(NO_PREDICTIONS)
    _say("Norm. Range of subgroup accuracy within each stratum, this run:")
    _show(format_table(stratum_range_table(t.fair, t.run)))


def _gap_display(gap: pd.DataFrame):
    from sgvalues.report.format import format_table

    return format_table(gap, deltas=[c for c in ["sft − base"] if c in gap.columns])


def show_gaps(t: FairnessTables, metric: str = "accuracy") -> None:
    """This run's persona gaps (best minus worst level of each attribute)."""
    if t.gaps.empty:
        return _say(NO_PREDICTIONS)
    _show(_gap_display(gap_table(t.gaps, metric, run=t.run)))


def show_reference_gaps(t: FairnessTables) -> None:
    """The same gaps for the population's modal answer (no persona) on each state's samples."""
    from sgvalues import fairness, metrics

    if t.reference.empty:
        return _say("No no-persona reference on these samples (no baselines for this run).")
    pop = t.reference[t.reference["label"].str.startswith("population_mode")]
    levels = fairness.level_scores(metrics.score_samples(pop), pool_splits=True)
    _say("The same gaps for the population's modal answer (`population_mode`, no persona) on each state's samples:")
    _show(_gap_display(gap_table(fairness.attribute_gaps(levels))))


def show_favoured(t: FairnessTables, note: str = "") -> None:
    """Which level of each attribute each model scores best on, beside the paper's finding."""
    from sgvalues import fairness
    from sgvalues.published import PUBLISHED_LABEL, published
    from sgvalues.report.format import format_table

    if t.levels.empty:
        return _say(NO_PREDICTIONS)
    favoured = fairness.favoured_levels(t.levels)
    _show(format_table(favoured.assign(label=model_names(favoured)).drop(columns=["run", "split"], errors="ignore")))
    _say(f"{PUBLISHED_LABEL}: models favour **{', '.join(published()['fairness']['favoured_personas'])}** "
         "personas (Christian = our `Roman Catholic` and `Protestant` levels). " + note)


def show_ablation(t: FairnessTables, params) -> None:
    """The paper's ablation table (base vs SFT spread) with ours beside it where a run has both."""
    from sgvalues.report import paper
    from sgvalues.report.format import format_table

    if t.ablation.empty:
        _say("No run has both base and SFT predictions on the OOD split: only the published values are shown.")
        ours = pd.DataFrame(columns=["statistic", "base", "sft"])
    else:
        ours = t.ablation.rename(columns={"label": "source"})
    _say(paper.paper_sentence(params.name, params.label))
    _show(format_table(paper.ablation_beside_paper(ours, params.name, params.label), deltas=["sft − base"]))


def show_bootstrap(t: FairnessTables, n_boot: int, seed: int) -> None:
    """The bootstrap intervals over questions, in words and as a table."""
    from sgvalues.report.format import format_table

    if t.boot.empty:
        return _say(NO_PREDICTIONS)
    _say(f"{n_boot:,} bootstrap draws over questions, seed {seed}, 95 % percentile intervals, OOD split. "
         + interval_sentence(t.boot))
    _show(format_table(bootstrap_table(t.boot), deltas=["bias"]))


def show_permutation_tests(t: FairnessTables) -> None:
    """The paired base vs SFT permutation tests, in words and as a table."""
    from sgvalues.report.format import format_table

    if t.tests.empty:
        return _say("No run has both base and SFT predictions: no paired test.")
    _say(permutation_sentence(t.tests))
    _show(format_table(t.tests.drop(columns=["run", "method", "n_nonzero"]), counts=["n"], deltas=["change"]))


def write_fairness_tables(t: FairnessTables, folder: str | Path) -> list[Path]:
    """Write the chapter's tables to ``folder`` (``<run>/fairness``) as CSV and say which; none
    without predictions. Returns the paths written."""
    if t.fair.empty:
        _say(NO_PREDICTIONS)
        return []
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = {"subgroup_scores": t.subgroups, "fairness_table": t.fair, "level_scores": t.levels,
              "attribute_gaps": t.gaps, "ablation": t.ablation, "bootstrap": t.boot, "permutation_tests": t.tests}
    written = []
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False)
        written.append(folder / f"{name}.csv")
    _say("Written to `fairness/`: " + ", ".join(f"`{p.name}`" for p in sorted(folder.glob("*.csv"))))
    return written


_SPREAD = {"mean": "", "norm_range": " NR", "cv": " CV"}


def model_names(df: pd.DataFrame) -> pd.Series:
    """Each row's model label, with the run name added where several runs share the label.

    >>> model_names(pd.DataFrame({"run": ["a", "b", "c"], "label": ["M", "M", "N"]})).tolist()
    ['M (a)', 'M (b)', 'N']
    """
    if "run" not in df.columns:
        return df["label"].astype(str)
    shared = df.groupby("label")["run"].nunique()
    return pd.Series([f"{lab} ({run})" if shared.get(lab, 1) > 1 else str(lab)
                      for lab, run in zip(df["label"], df["run"])], index=df.index)


def model_name(df: pd.DataFrame, run: str) -> str:
    """How :func:`headline_table` names ``run``'s model (its label, plus the run where shared).

    >>> model_name(pd.DataFrame({"run": ["a", "b"], "label": ["M", "M"]}), "b")
    'M (b)'
    """
    names = model_names(df)
    hit = names[df["run"] == run]
    return str(hit.iloc[0]) if len(hit) else run


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


_STAT_LABELS = {"accuracy": "accuracy", "nmae": "NMAE", "accuracy_norm_range": "acc NR",
                "accuracy_cv": "acc CV", "nmae_norm_range": "NMAE NR", "nmae_cv": "NMAE CV"}


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
        "model": model_names(b).to_numpy(), "statistic": b["statistic"].map(lambda s: _STAT_LABELS.get(s, s)).to_numpy(),
        "state": b["tag"].to_numpy(), "estimate": b["estimate"].to_numpy(float),
        "interval": [f"[{fmt_rate(lo)}, {fmt_rate(hi)}]" for lo, hi in zip(b["lo"], b["hi"])],
        "bias": b["bias"].to_numpy(float)})


def permutation_sentence(tests: pd.DataFrame, alpha: float = 0.05) -> str:
    """Markdown: for each run and split, SFT's change in accuracy and whether it is significant.

    Examples
    --------
    >>> t = pd.DataFrame({"label": ["M"], "split": "ood", "metric": "accuracy", "base": 0.2, "sft": 0.5,
    ...                   "change": 0.3, "p_value": 0.001, "n": 40})
    >>> permutation_sentence(t)
    '- M, ood: accuracy 0.200 → 0.500 (+0.300) on 40 paired samples, p = 0.001: significant at 0.05.'
    """
    rows = tests[tests["metric"] == "accuracy"]
    if rows.empty:
        return "No run has both base and SFT predictions: no paired test."
    rows = rows.assign(label=model_names(rows))
    lines = []
    for r in rows.itertuples():
        sig = "significant" if r.p_value < alpha else "not significant"
        lines.append(f"- {r.label}, {r.split}: accuracy {fmt_rate(r.base)} → {fmt_rate(r.sft)} "
                     f"({fmt_delta(r.change)}) on {fmt_count(r.n)} paired samples, p {fmt_p(r.p_value)}: "
                     f"{sig} at {alpha:g}.")
    return "\n".join(lines)


def plot_level_bars(levels: pd.DataFrame, run: str, metric: str = "accuracy"):
    """Persona levels as horizontal bars, one row of panels per attribute, states side by side.

    Readable at the text column's width whatever the number of levels: labels are on the
    y axis, never rotated. Input: :func:`sgvalues.fairness.level_scores` (``run`` selects one).
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    from sgvalues.fairness import ATTRIBUTES

    d = levels[levels["run"] == run]
    attrs = [a for a in ATTRIBUTES if a in set(d["attribute"])]
    if d.empty or not attrs:
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no predictions for this run", ha="center", va="center", color="0.4")
        return fig
    sizes = [d.loc[d["attribute"] == a, "level"].nunique() for a in attrs]
    tags = [t for t in ("zeroshot", "base", "sft") if t in set(d["tag"])]
    fig, axes = plt.subplots(len(attrs), 1, figsize=(6.5, 0.9 + 0.32 * sum(sizes) * max(1, len(tags)) / 2 + 0.4 * len(attrs)),
                             sharex=True, gridspec_kw={"height_ratios": sizes}, squeeze=False)
    palette = STATE_COLOURS
    for ax, a in zip(axes[:, 0], attrs):
        sns.barplot(data=d[d["attribute"] == a], y="level", x=metric, hue="tag", hue_order=tags, ax=ax,
                    orient="h", errorbar=None, palette=palette)
        ax.set_ylabel(a.replace("_", " "), fontsize=9)
        ax.set_xlabel("")
        ax.tick_params(axis="y", labelsize=8)
        if ax.get_legend():
            ax.get_legend().remove()
    axes[-1, 0].set_xlabel("accuracy (higher is better)" if metric == "accuracy" else "NMAE (lower is better)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=len(tags), frameon=False, bbox_to_anchor=(0.5, 0.0))
    return fig


def plot_intervals(boot: pd.DataFrame, statistics, tags=("base", "sft")):
    """Estimates and bootstrap intervals, a 2-column grid of panels (one per statistic).

    Each panel lists the model states on the y axis with short labels, so it stays legible at
    the text column's width. Input: :func:`sgvalues.fairness.bootstrap_fairness`.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    b = boot[boot["tag"].isin(list(tags)) & boot["statistic"].isin(list(statistics))]
    stats = [s for s in statistics if s in set(b["statistic"])]
    if b.empty or not stats:
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no bootstrap results", ha="center", va="center", color="0.4")
        return fig
    b = b.assign(label=model_names(b))
    n_rows_panel = b[["label", "tag"]].drop_duplicates().shape[0]
    multi = b["label"].nunique() > 1
    ncols = 2 if len(stats) > 1 and not multi else 1  # long row names get the full width
    nrows = -(-len(stats) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7, nrows * (0.9 + 0.3 * n_rows_panel)), squeeze=False)
    order = {t: i for i, t in enumerate(STATE_COLOURS)}
    b = b.assign(_o=b["tag"].map(lambda t: order.get(t, 9))).sort_values(["label", "_o"], kind="stable")
    for ax, stat in zip(axes.ravel(), stats):
        e = b[b["statistic"] == stat].reset_index(drop=True)
        y = np.arange(len(e))
        names = [f"{r.label} · {r.tag}" if multi else r.tag for r in e.itertuples()]
        for i, r in e.iterrows():
            ax.errorbar([r["estimate"]], [y[i]], xerr=[[max(0, r["estimate"] - r["lo"])], [max(0, r["hi"] - r["estimate"])]],
                        fmt="o", color=STATE_COLOURS.get(r["tag"], "0.4"), ms=4, capsize=3)
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(_STAT_LABELS.get(stat, stat), fontsize=9)
    for ax in axes.ravel()[len(stats):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


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
        tables = baselines.load_baseline_predictions(run_dir / "predictions", split)
        if tables.empty and (run_dir / "data").is_dir():
            baselines.ensure_run_baselines(run_dir)
            tables = baselines.load_baseline_predictions(run_dir / "predictions", split)
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


def legend_below(fig, pad: float = 0.15):
    """Move every axes legend of ``fig`` below the axes and widen the axes limits by ``pad``.

    For figures drawn elsewhere (e.g. :func:`sgvalues.fairness.plot_fairness_paradox`) whose
    legend sits inside the axes, where it can cover points, and whose extreme points sit on the
    frame. Returns ``fig``.
    """
    handles, labels = [], []
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is not None:
            ax_handles, ax_labels = ax.get_legend_handles_labels()
            handles += ax_handles
            labels += ax_labels
            leg.remove()
        for get, put in ((ax.get_xlim, ax.set_xlim), (ax.get_ylim, ax.set_ylim)):
            lo, hi = get()
            put(lo - pad * (hi - lo) / 2, hi + pad * (hi - lo) / 2)
    if handles:
        fig.tight_layout(rect=(0, 0.05 + 0.035 * ((len(handles) + 1) // 2), 1, 1))
        fig.legend(handles, labels, loc="lower center", ncol=2 if len(handles) > 1 else 1, frameon=False,
                   fontsize=8, bbox_to_anchor=(0.5, 0.0))
    return fig


#: how :func:`seed_table` names the scores of :func:`sgvalues.train.seed_spread`, in its order
_SEED_SCORES = {"sft_accuracy": "accuracy after SFT", "accuracy_change": "accuracy change",
                "sft_nmae": "NMAE after SFT", "nmae_change": "NMAE change"}


def seed_table(seeds: pd.DataFrame) -> pd.DataFrame:
    """Chapter 04's run-to-run spread: per split and score, the mean and the range over training seeds.

    ``seeds`` is :func:`sgvalues.train.train_over_seeds`' table. Columns ``split, score, seeds,
    mean, lowest–highest``; changes signed (base -> SFT), levels as rates.

    Examples
    --------
    >>> t = pd.DataFrame({"seed": [0, 1], "split": "ood", "sft_accuracy": [0.8, 0.7],
    ...                   "accuracy_change": [0.5, 0.4], "sft_nmae": [0.1, 0.2], "nmae_change": [-0.3, -0.2]})
    >>> seed_table(t).iloc[1].tolist()
    ['ood', 'accuracy change', '2', '+0.450', '+0.400 to +0.500']
    """
    from sgvalues.train import seed_spread

    spread = seed_spread(seeds)
    rows = []
    for split in dict.fromkeys(spread["split"]):
        for metric, name in _SEED_SCORES.items():
            r = spread[(spread["split"] == split) & (spread["metric"] == metric)].iloc[0]
            fmt = fmt_delta if metric.endswith("_change") else fmt_rate
            rows.append({"split": split, "score": name, "seeds": fmt_count(r["n_seeds"]), "mean": fmt(r["mean"]),
                         "lowest–highest": f"{fmt(r['min'])} to {fmt(r['max'])}"})
    return pd.DataFrame(rows, columns=["split", "score", "seeds", "mean", "lowest–highest"])


def seed_sentence(seeds: pd.DataFrame, band: float, split: str = "ood") -> str:
    """Markdown: do the training seeds agree? The range of ``split`` accuracy after SFT against ``band``.

    Examples
    --------
    >>> t = pd.DataFrame({"seed": [0, 1, 2], "split": "ood", "sft_accuracy": [0.73, 0.815, 0.8],
    ...                   "accuracy_change": [0.45, 0.535, 0.52], "sft_nmae": 0.1, "nmae_change": -0.3})
    >>> print(seed_sentence(t, 0.05))  # doctest: +NORMALIZE_WHITESPACE
    Over 3 training seeds (0, 1, 2), OOD accuracy after fine-tuning runs from 0.730 to 0.815: a range of
    0.085, wider than the band of 0.050 we accept, so **the seeds do not agree**: read any single
    adapter's result with that margin. The OOD accuracy change base → SFT averages +0.502 (from +0.450
    to +0.535).
    """
    rows = seeds[seeds["split"] == split]
    name = split.upper() if split == "ood" else split
    if rows.empty:
        return f"No {name} rows in the seed table."
    listed = ", ".join(str(int(s)) for s in rows["seed"])
    if len(rows) == 1:
        return (f"One training seed ({listed}): no run-to-run spread is measured; list several in "
                "`training.seeds` to measure it.")
    acc, change = rows["sft_accuracy"].astype(float), rows["accuracy_change"].astype(float)
    spread = float(acc.max() - acc.min())
    verdict = (f"within the band of {fmt_rate(band)} we accept, so **the seeds agree**" if spread <= band
               else f"wider than the band of {fmt_rate(band)} we accept, so **the seeds do not agree**: read "
                    "any single adapter's result with that margin")
    return (f"Over {_n(len(rows), 'training seed')} ({listed}), {name} accuracy after fine-tuning runs from "
            f"{fmt_rate(acc.min())} to {fmt_rate(acc.max())}: a range of {fmt_rate(spread)}, {verdict}. "
            f"The {name} accuracy change base → SFT averages {fmt_delta(change.mean())} (from "
            f"{fmt_delta(change.min())} to {fmt_delta(change.max())}).")
