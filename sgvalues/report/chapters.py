"""What every chapter shares: its set-up, paths as a reader sees them, samples and predictions.

Stage modules (``prepare``, ``evaluate``, ``train`` ...) compute; the functions here are what the
chapters' cells have in common, so a notebook cell reads like a sentence:

- :func:`open_chapter` - the set-up cell of a chapter (params, run folder, prepared data, the
  data-source note), one call, returning a :class:`Chapter`;
- :func:`relative` - a path as the reader should see it: relative to the run folder, never the
  building machine's absolute path;
- :func:`sample_card` and :func:`predictions_preview` - one sample, and the few columns of a
  predictions table that mean something;
- :func:`state_row`, :func:`size_sentence` and :func:`evaluation_sentence` - what an evaluation
  rests on, in a row beside the paper's and in words;
- :func:`show_yardsticks` - model states beside every baseline and the noise reference;

What a single chapter shows lives beside it: :mod:`sgvalues.report.dataset` (chapters 01-03),
:mod:`sgvalues.report.training` (04), :mod:`sgvalues.report.judging` (06),
:mod:`sgvalues.report.fairness` (07), :mod:`sgvalues.report.beyond` (08); the figures are in
:mod:`sgvalues.report.figures`. Every number goes through :mod:`sgvalues.report.format`.

Example
-------
>>> relative("/home/me/runs/default/figures/04_before_after.png", "/home/me/runs/default")
'figures/04_before_after.png'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sgvalues.report.format import fmt_count, fmt_counted, fmt_rate

__all__ = [
    "Chapter",
    "open_chapter",
    "relative",
    "NO_PREDICTIONS",
    "say",
    "show",
    "sample_card",
    "predictions_preview",
    "state_row",
    "size_sentence",
    "evaluation_sentence",
    "tie_sentence",
    "show_yardsticks",
]


#: what an empty-safe helper shows instead of a table or figure when no run has predictions
NO_PREDICTIONS = "**No predictions yet** for this part: run notebooks 04 and 05 first."


def say(markdown: str) -> None:
    """Display ``markdown`` as Markdown in the notebook."""
    from IPython.display import Markdown, display

    display(Markdown(markdown))


def show(table) -> None:
    """Display ``table`` (a DataFrame or a formatted table) in the notebook."""
    from IPython.display import display

    display(table)


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
            say(NO_PREDICTIONS)
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
    from sgvalues.paths import repo_path

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


def sample_card(sample: dict, keys=("sample_id", "split", "stratum", "levels", "target", "targets", "distribution",
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
    from sgvalues.tables import json_cell

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
    return (f"Ours rest on {fmt_counted(len(predictions), 'sample')} ({fmt_counted(predictions['question_id'].nunique(), 'question')}, "
            f"{fmt_counted(n_sub, 'subgroup')}); the paper's OOD split holds "
            f"{fmt_count(c['ood_samples'])} samples ({fmt_count(c['questions'])} questions, "
            f"{fmt_count(c['ood_subgroups'])} subgroups; {PUBLISHED_LABEL}).")


def evaluation_sentence(predictions: pd.DataFrame, split: str, model: str, seconds: float, written: str) -> str:
    """Markdown: what was evaluated, with which model, how long it took and where it was written.

    ``written`` is the path relative to the run folder (:func:`relative`).

    >>> p = pd.DataFrame({"question_id": ["Q1", "Q1"], "subgroup": ["s:a", "s:b"]})
    >>> evaluation_sentence(p, "ood", "m", 3.2, "predictions/zeroshot_ood.csv")
    '2 samples of the **ood** split (1 question, 2 subgroups) evaluated with `m` in 3 s (cached answers included); written to `predictions/zeroshot_ood.csv` in the run folder.'
    """
    return (f"{fmt_counted(len(predictions), 'sample')} of the **{split}** split "
            f"({fmt_counted(predictions['question_id'].nunique(), 'question')}, {fmt_counted(predictions['subgroup'].nunique(), 'subgroup')}) "
            f"evaluated with `{model}` in {seconds:.0f} s (cached answers included); written to `{written}` in the "
            "run folder.")


def tie_sentence(predictions: pd.DataFrame) -> str:
    """Markdown: the share of samples whose subgroup's modal answer is tied, and the tie rule.

    Counted from the ``targets`` column (:func:`sgvalues.metrics.tied_targets`): a sample is
    tied when two or more codes share the top count.

    >>> p = pd.DataFrame({"target": [1, 2, 3, 1], "targets": ["[1, 4]", "[2]", "[3]", "[1]"]})
    >>> print(tie_sentence(p))
    1 of 4 samples (0.250) have a tied modal answer (two or more options equally common in the subgroup): any tied option counts as correct, and NMAE is the distance to the nearest tied option.
    """
    from sgvalues import metrics

    if predictions.empty:
        return "No samples: no tied modal answers to count."
    if "targets" not in predictions.columns or not predictions["targets"].astype(str).str.strip().ne("").any():
        return ("This table does not record tied modal answers (written before the `targets` column): "
                "each sample is scored against its lowest modal code.")
    n_tied = int((pd.notna(metrics.tied_targets(predictions)).sum(axis=1) > 1).sum())
    return (f"{fmt_count(n_tied)} of {fmt_counted(len(predictions), 'sample')} ({fmt_rate(n_tied / len(predictions))}) "
            "have a tied modal answer (two or more options equally common in the subgroup): any tied option counts "
            "as correct, and NMAE is the distance to the nearest tied option.")


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
