"""The model-comparison page: every run's model states beside the yardsticks and the paper.

``sgvalues book`` calls :func:`write_comparison_page` (through
:func:`sgvalues.book.write_comparison`) to write ``chapters/model_comparison_table.md``:

1. one table per split with every run's model states (``zeroshot``, ``base``, ``sft``) and,
   **on the same samples**, the no-model baselines (``population_mode``,
   ``marginal_product``; :mod:`sgvalues.baselines`) and the survey-noise reference, with a
   computed sentence saying which baselines each state beats, by how much and whether
   significantly (:func:`sgvalues.baselines.compare_with_baselines`);
2. every model of the paper with its *published* figures and ours where a run of the same
   params name exists (:func:`published_table`);
3. the OOD figure: model states in colour, baselines in grey, the noise reference as a mark;
4. under each split's table, every state's persona sensitivity beside the yardsticks on its
   samples: persona-blind or not, and accuracy on divergent and agreeing cells
   (:func:`sgvalues.report.persona.comparison_lines`).

Example
-------
>>> t = published_table(pd.DataFrame(columns=["params_name", "run", "tag", "accuracy", "nmae"]))
>>> t["model"].nunique()   # seven open models, three API models and the open-source average
11
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sgvalues.report.format import MISSING, fmt_delta, fmt_p, fmt_rate, markdown_table

__all__ = ["STATES", "YARDSTICKS", "state_predictions", "comparison_table", "yardstick_scores", "beats_sentence", "published_table",
           "chapter_yardsticks", "plot_yardsticks", "plot_comparison", "write_comparison_page"]

#: the model states, in pipeline order
STATES = ("zeroshot", "base", "sft")

#: the baselines shown beside every model state (strongest no-model yardsticks first)
YARDSTICKS = ("population_mode", "marginal_product")

#: the noise reference's row name
NOISE = "survey noise reference"


def state_predictions(runs_root: str | Path) -> pd.DataFrame:
    """Every run's model-state predictions (``run, tag, split`` + the predictions columns).

    Baseline tables in the same folders (``<baseline>_<split>.csv``) are left out.
    """
    from sgvalues.evaluate import load_run_predictions

    return load_run_predictions(runs_root, tags=STATES)


def comparison_table(runs_root: str | Path) -> pd.DataFrame:
    """Tidy metrics of every run: ``run, model, synthetic, tag, split, metric, value, n, n_questions``.

    ``n`` and ``n_questions`` say what each row was scored on: runs and tags cover different
    samples (``base``/``sft`` the questions fine-tuning used, ``zeroshot`` the whole split).
    A predictions table lacking a column raises the ``ValueError`` of
    :func:`sgvalues.evaluate.load_run_predictions` (naming the file).
    """
    from sgvalues.manifest import run_synthetic
    from sgvalues.metrics import score

    preds = state_predictions(runs_root)  # the model states; baselines are shown beside
    rows = []
    for (run, label, tag, split), df in preds.groupby(["run", "label", "tag", "split"], sort=True):
        model = label if label == run else f"{label} ({run})"
        synthetic = run_synthetic(Path(runs_root) / run)
        s = score(df).iloc[0]
        n_questions = int(df["question_id"].nunique())
        for metric in ("accuracy", "nmae", "refusal_rate", "invalid_rate"):
            rows.append({"run": run, "model": model, "synthetic": synthetic, "tag": tag,
                         "split": split, "metric": metric, "value": float(s[metric]), "n": int(s["n"]),
                         "n_questions": n_questions})
    return pd.DataFrame(rows, columns=["run", "model", "synthetic", "tag", "split", "metric", "value", "n",
                                       "n_questions"])


def _baseline_tables(run_dir: Path, split: str) -> pd.DataFrame:
    from sgvalues import baselines

    return baselines.run_baseline_predictions(run_dir, split)


def _split_samples(run_dir: Path, split: str) -> list[dict]:
    from sgvalues.split import load_samples

    data = run_dir / "data"
    return load_samples(data, split) if (data / f"samples_{split}.jsonl").is_file() else []


def _noise(samples: list[dict], sample_ids) -> float:
    """Mean probability that a resampled subgroup keeps its mode, over ``sample_ids``."""
    from sgvalues import baselines

    keep = set(map(str, sample_ids))
    chosen = [s for s in samples if str(s["sample_id"]) in keep]
    if not chosen:
        return float("nan")
    return float(baselines.noise_per_sample(chosen)["p_same_mode"].mean())


def yardstick_scores(run_dir: str | Path, split: str, predictions: pd.DataFrame, names=YARDSTICKS,
                     tables: pd.DataFrame | None = None, samples: list[dict] | None = None) -> pd.DataFrame:
    """The baselines and the noise reference on exactly the samples of ``predictions``.

    Returns ``predictor, accuracy, nmae, n``: one row per baseline in ``names`` (its
    predictions table restricted to ``predictions``' ``sample_id``), then the survey-noise
    reference (the mean over those samples of the bootstrap probability that a resampled
    subgroup keeps its mode; its ``nmae`` is missing). Baselines are computed for the run first
    when its folder has none. ``tables`` (the run's baseline predictions of ``split``) and
    ``samples`` (its samples) may be passed in to read them once for several states.
    """
    from sgvalues import metrics

    run_dir = Path(run_dir)
    ids = set(predictions["sample_id"].astype(str))
    tables = _baseline_tables(run_dir, split) if tables is None else tables
    samples = _split_samples(run_dir, split) if samples is None else samples
    rows = []
    for name in names:
        b = tables[(tables.get("baseline") == name) & tables["sample_id"].astype(str).isin(ids)] \
            if len(tables) else pd.DataFrame()
        if b.empty:
            rows.append({"predictor": name, "accuracy": float("nan"), "nmae": float("nan"), "n": 0})
            continue
        r = metrics.aggregate(b, None).iloc[0]
        rows.append({"predictor": name, "accuracy": float(r["accuracy"]), "nmae": float(r["nmae"]), "n": int(r["n"])})
    rows.append({"predictor": NOISE, "accuracy": _noise(samples, ids), "nmae": float("nan"), "n": len(ids)})
    return pd.DataFrame(rows)


def beats_sentence(comparison: pd.DataFrame, state: str, alpha: float = 0.05) -> str:
    """One sentence: which baselines a model state beats on accuracy, by how much, how surely.

    ``comparison`` is :func:`sgvalues.baselines.compare_with_baselines` output (one family of
    tests). Each p-value is the question-level one; where the table has ``p_holm`` (Holm-adjusted
    over the family) it is printed beside it and decides "significant". A state that does not
    beat ``population_mode`` is said so plainly.

    Examples
    --------
    >>> c = pd.DataFrame({"state": "sft", "baseline": ["population_mode", "marginal_product"], "metric": "accuracy",
    ...                   "difference": [0.05, -0.1], "ci_low": [0.01, -0.2], "ci_high": [0.09, 0.0],
    ...                   "p_value": [0.01, 0.2], "p_holm": [0.04, 0.4]})
    >>> print(beats_sentence(c, "sft"))
    *sft* beats population_mode by +0.050 (95 % interval [+0.010, +0.090], p = 0.010, Holm p = 0.040, significant); it does not beat marginal_product (-0.100, p = 0.200, Holm p = 0.400).
    """
    c = comparison[(comparison["state"] == state) & (comparison["metric"] == "accuracy")]
    if c.empty:
        return f"*{state}*: no baseline shares its samples."
    adjusted = "p_holm" in c.columns
    parts = []
    for r in c.to_dict("records"):
        p_sig = r["p_holm"] if adjusted else r["p_value"]
        ps = f"p {fmt_p(r['p_value'])}" + (f", Holm p {fmt_p(r['p_holm'])}" if adjusted else "")
        if r["difference"] > 0:
            sig = "significant" if p_sig < alpha else "not significant"
            parts.append(f"beats {r['baseline']} by {fmt_delta(r['difference'])} (95 % interval "
                         f"[{fmt_delta(r['ci_low'])}, {fmt_delta(r['ci_high'])}], {ps}, {sig})")
        elif r["difference"] < 0 and p_sig < alpha:
            parts.append(f"does not beat {r['baseline']}: it falls significantly below it "
                         f"({fmt_delta(r['difference'])}, {ps})")
        else:
            parts.append(f"does not beat {r['baseline']} ({fmt_delta(r['difference'])}, {ps})")
    return f"*{state}* " + "; it ".join(parts) + "."


def chapter_yardsticks(run_dir: str | Path, split: str, states: dict, n_boot: int = 1000,
                       n_perm: int = 2000) -> tuple[pd.DataFrame, str]:
    """A chapter's model states beside every baseline and the noise reference, with the prose.

    Parameters
    ----------
    run_dir : the run folder (its ``predictions/<baseline>_<split>.csv`` and ``data/``).
    split : ``"ood"`` or ``"train"``.
    states : mapping state -> predictions table (e.g. ``{"base": ..., "sft": ...}``), all on
        the same samples; the baselines are scored on the samples every state answered.

    Returns
    -------
    (DataFrame, str)
        ``predictor, accuracy, nmae, jsd, n`` (the states, then every baseline of
        :data:`sgvalues.baselines.BASELINES`, then the noise reference, whose ``nmae`` and
        ``jsd`` are missing), and Markdown: for each state, which of :data:`YARDSTICKS` it
        beats, by how much and how surely, and where it stands against the noise reference.
    """
    from sgvalues import baselines, metrics

    run_dir = Path(run_dir)
    ids = set.intersection(*[set(df["sample_id"].astype(str)) for df in states.values()]) if states else set()
    tables = _baseline_tables(run_dir, split)
    if len(tables):
        tables = tables[tables["sample_id"].astype(str).isin(ids)]
    samples = _split_samples(run_dir, split)
    rows = []
    for state, df in states.items():
        r = metrics.aggregate(df[df["sample_id"].astype(str).isin(ids)], None).iloc[0]
        rows.append({"predictor": state, "accuracy": r["accuracy"], "nmae": r["nmae"], "jsd": r["jsd"], "n": r["n"]})
    for name in baselines.BASELINES:
        b = tables[tables["baseline"] == name] if len(tables) else pd.DataFrame()
        if b.empty:
            continue
        r = metrics.aggregate(b, None).iloc[0]
        rows.append({"predictor": name, "accuracy": r["accuracy"], "nmae": r["nmae"], "jsd": r["jsd"], "n": r["n"]})
    noise = _noise(samples, ids)
    rows.append({"predictor": NOISE, "accuracy": noise, "nmae": float("nan"), "jsd": float("nan"), "n": len(ids)})
    table = pd.DataFrame(rows)
    table["n"] = table["n"].astype(int)
    if tables is None or not len(tables):
        return table, "This run has no baseline predictions to compare with (`sgvalues baselines`)."
    cmp = baselines.compare_with_baselines(
        {k: v[v["sample_id"].astype(str).isin(ids)] for k, v in states.items()},
        {b: tables[tables["baseline"] == b] for b in YARDSTICKS if (tables["baseline"] == b).any()},
        metrics=("accuracy",), n_boot=n_boot, n_perm=n_perm)
    lines = []
    for state in states:
        acc = float(table.loc[table["predictor"] == state, "accuracy"].iloc[0])
        where = ("above" if acc > noise else "below" if acc < noise else "at") if not pd.isna(noise) else None
        tail = (f" Its accuracy ({fmt_rate(acc)}) lies {where} the survey-noise reference on these samples "
                f"({fmt_rate(noise)})." if where else "")
        lines.append("- " + beats_sentence(cmp, state) + tail)
    head = (f"On the same {len(ids):,} samples of the **{split}** split (paired by sample; 95 % bootstrap interval "
            "over questions; sign-flip permutation test over questions; Holm p adjusted over the "
            f"{len(cmp)} tests of this comparison):")
    return table, "\n".join([head, "", *lines])


def plot_yardsticks(table: pd.DataFrame, title: str = ""):
    """Accuracy of the model states (colour) and baselines (grey), the noise reference as a line.

    ``table``: :func:`chapter_yardsticks`' first value. Horizontal bars, best first.
    """
    import matplotlib.pyplot as plt

    bars = table[table["predictor"] != NOISE].reset_index(drop=True)
    noise = table.loc[table["predictor"] == NOISE, "accuracy"]
    from sgvalues.report.figures import STATE_COLOURS

    colours = [STATE_COLOURS.get(p, "C0") if not _is_baseline(p) else "0.75" for p in bars["predictor"]]
    fig, ax = plt.subplots(figsize=(6.5, 1.1 + 0.32 * len(bars)))
    ax.barh(range(len(bars)), bars["accuracy"], color=colours)
    ax.set_yticks(range(len(bars)), [p.replace("_", " ") for p in bars["predictor"]], fontsize=9)
    ax.invert_yaxis()
    if len(noise) and not pd.isna(noise.iloc[0]):
        ax.axvline(float(noise.iloc[0]), color="k", ls="--", lw=1.2, label=NOISE)
    ax.set(xlim=(0, 1), xlabel="accuracy (modal answer matched)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    if len(noise) and not pd.isna(noise.iloc[0]):
        fig.legend(*ax.get_legend_handles_labels(), loc="lower center", frameon=False, fontsize=8,
                   bbox_to_anchor=(0.5, 0.0))
    return fig


def _is_baseline(name: str) -> bool:
    from sgvalues.baselines import BASELINES

    return name in BASELINES


def published_table(ours: pd.DataFrame) -> pd.DataFrame:
    """Every model of the paper with its published figures, and ours where a run exists.

    Parameters
    ----------
    ours : DataFrame
        ``params_name, run, tag, accuracy, nmae`` on the OOD split (one row per run and tag).

    Returns
    -------
    DataFrame
        ``model, state, published accuracy, published NMAE, our accuracy, our NMAE, our run``:
        one row per paper model and state (the paper's *base* is compared with our
        ``zeroshot``, its SFT with our ``sft``: ``sgvalues.published.OUR_TAG``); ours missing
        where no run has that params name.
    """
    from sgvalues.published import paper_results

    pub = paper_results()
    pub = pub[pub["metric"].isin(["accuracy", "nmae"])]
    wide = pub.pivot_table(index=["params_name", "model", "state", "our_tag"], columns="metric", values="value",
                           aggfunc="first", sort=False, dropna=False).reset_index()
    wide = wide.dropna(subset=["accuracy", "nmae"], how="all")
    rows = []
    for r in wide.itertuples():
        mine = ours[(ours["params_name"] == r.params_name) & (ours["tag"] == r.our_tag)] \
            if isinstance(r.params_name, str) else ours.iloc[0:0]
        first = mine.iloc[0] if len(mine) else None
        rows.append({"model": r.model, "state": r.state, "published accuracy": r.accuracy,
                     "published NMAE": r.nmae,
                     "our accuracy": float(first["accuracy"]) if first is not None else float("nan"),
                     "our NMAE": float(first["nmae"]) if first is not None else float("nan"),
                     "our run": f"{first['run']} ({r.our_tag})" if first is not None else MISSING})
    return pd.DataFrame(rows)


def plot_comparison(rows: pd.DataFrame):
    """OOD accuracy per model state (colour) beside the baselines on its samples (grey).

    ``rows``: ``model, state, predictor, accuracy`` where ``predictor`` is ``"model"``, a
    baseline name or :data:`NOISE`; the noise reference is drawn as a black tick on each row.
    Optional ``low`` and ``high`` on a model row (the range over training seeds of a state
    whose ``accuracy`` is their mean) draw as an error bar.
    One panel per model (its name as the title), the states on the y axis, the legend below:
    legible at the text column's width however long the model names.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(dict.fromkeys(rows["model"]))
    sizes = [max(1, rows.loc[rows["model"] == m, "state"].nunique()) for m in models]
    fig, axes = plt.subplots(len(models), 1, figsize=(6.5, 1.0 + 0.75 * sum(sizes) + 0.45 * len(models)),
                             sharex=True, squeeze=False, gridspec_kw={"height_ratios": sizes})
    shades = {"model": "C0", **{b: g for b, g in zip(YARDSTICKS, ("0.45", "0.75"))}}
    height = 0.8 / len(shades)
    for ax, model in zip(axes[:, 0], models):
        sub = rows[rows["model"] == model]
        states = [t for t in STATES if t in set(sub["state"])] + sorted(set(sub["state"]) - set(STATES))
        y = np.arange(len(states))

        def values(pred):
            out = []
            for st in states:
                v = sub[(sub["state"] == st) & (sub["predictor"] == pred)]["accuracy"]
                out.append(float(v.iloc[0]) if len(v) else np.nan)
            return out

        for j, (pred, colour) in enumerate(shades.items()):
            ax.barh(y - 0.4 + height * (j + 0.5), values(pred), height=height, color=colour,
                    label="model state" if pred == "model" else pred.replace("_", " "))
        ax.scatter(values(NOISE), y, marker="|", s=300, color="k", zorder=3, label=NOISE)
        if {"low", "high"} <= set(sub.columns):
            mine = sub[sub["predictor"] == "model"].set_index("state")
            for k, st in enumerate(states):
                if st in mine.index and pd.notna(mine.loc[st, "low"]):
                    mid = float(mine.loc[st, "accuracy"])
                    ax.errorbar(mid, y[k] - 0.4 + height * 0.5, fmt="none", ecolor="k", capsize=3, lw=1,
                                xerr=[[mid - float(mine.loc[st, "low"])], [float(mine.loc[st, "high"]) - mid]],
                                label="range over training seeds")
        ax.set_yticks(y, states, fontsize=9)
        ax.invert_yaxis()
        ax.set_title(model, fontsize=9, loc="left")
        ax.set_xlim(0, 1)
    axes[-1, 0].set_xlabel("OOD accuracy (modal answer matched)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.07 if len(models) < 3 else 0.04, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=3 if len(handles) > 4 else 2, frameon=False, fontsize=8,
               bbox_to_anchor=(0.5, 0.0))
    return fig


def _gain_lines(ours: list[dict], info: dict) -> list[str]:
    """The OOD accuracy gain base -> SFT of every run with both states, beside the published gains.

    A run whose folder holds ``seeds.csv`` (notebook 04's run-to-run spread: columns ``seed``,
    ``base``, ``sft`` OOD accuracy) is reported by its mean gain and range over seeds.
    """
    from sgvalues.published import PUBLISHED_LABEL, published

    df = pd.DataFrame(ours, columns=["params_name", "run", "tag", "accuracy", "nmae"])
    lines = []
    for run, g in df.groupby("run", sort=True):
        acc = g.set_index("tag")["accuracy"]
        if not {"base", "sft"} <= set(acc.index):
            continue
        label = info.get(run, (run,))[0]
        spread = _seed_spread(Path(info.get(run, (None, None, None, None))[3] or run))
        if spread is not None and spread["n"] > 1:
            line = (f"- {label}: a mean of {spread['mean']:+.1f} points over {spread['n']} training seeds "
                    f"(range {spread['min']:+.1f} to {spread['max']:+.1f})")
        else:
            line = f"- {label}: {100 * (acc['sft'] - acc['base']):+.1f} points"
        lines.append(line)
    if not lines:
        return []
    sft = published()["sft"]
    return ["OOD accuracy gain from fine-tuning (SFT − base), ours, on the questions fine-tuning used:", "",
            *lines, "",
            f"For comparison, {PUBLISHED_LABEL}: mean gain {sft['mean_ood_accuracy_gain_points']} points over "
            f"their models, largest {sft['largest_gain_points']} points ({sft['largest_gain_model']}), on all "
            "questions after training on all of them.", ""]


def _seed_table(run_dir: Path, split: str) -> pd.DataFrame | None:
    """The rows of ``split`` in the run's ``seeds.csv`` (:func:`sgvalues.train.train_over_seeds`),
    or ``None`` when the run has none."""
    from sgvalues.train import TrainError, read_seeds

    if not (run_dir / "seeds.csv").is_file():
        return None
    try:
        s = read_seeds(run_dir)
    except TrainError:
        return None
    s = s[s["split"] == split]
    return s if len(s) else None


def _seed_spread(run_dir: Path) -> dict | None:
    """Mean and range (points) of the base -> SFT OOD accuracy gain over the seeds in ``seeds.csv``."""
    s = _seed_table(run_dir, "ood")
    if s is None:
        return None
    gain = 100 * s["accuracy_change"]
    return {"n": int(len(s)), "mean": float(gain.mean()), "min": float(gain.min()), "max": float(gain.max())}


def _seed_mean(run_dir: Path, split: str) -> dict | None:
    """SFT accuracy and NMAE averaged over the training seeds of ``seeds.csv`` (more than one),
    with the accuracy's range: what the comparison shows for a run's fine-tuned state."""
    s = _seed_table(run_dir, split)
    if s is None or len(s) < 2:
        return None
    return {"n": int(len(s)), "accuracy": float(s["sft_accuracy"].mean()), "nmae": float(s["sft_nmae"].mean()),
            "min": float(s["sft_accuracy"].min()), "max": float(s["sft_accuracy"].max())}


def _run_info(run_dir: Path) -> tuple[str, str | None, bool | None, str]:
    from sgvalues.manifest import read_manifest, run_label, run_synthetic

    label = run_label(run_dir) or run_dir.name
    if label != run_dir.name:
        label = f"{label} ({run_dir.name})"
    return label, (read_manifest(run_dir).get("params") or {}).get("name"), run_synthetic(run_dir), str(run_dir)


def write_comparison_page(runs_root: str | Path, out_dir: str | Path, image_prefix: str = "") -> Path:
    """Write ``model_comparison_table.md`` (+ ``model_comparison.csv`` and the figure); return it.

    ``image_prefix`` is the folder of ``out_dir`` seen from the page that includes the table
    (``"chapters/"`` for ``book/model_comparison.md``): included text keeps the includer's paths.
    """
    import matplotlib.pyplot as plt

    from sgvalues import baselines, plots
    from sgvalues.metrics import score
    from sgvalues.published import PUBLISHED_LABEL
    from sgvalues.report.persona import comparison_lines as persona_lines

    runs_root, out_dir = Path(runs_root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tidy = comparison_table(runs_root)
    tidy.to_csv(out_dir / "model_comparison.csv", index=False)
    page = out_dir / "model_comparison_table.md"
    runs = sorted(p.name for p in runs_root.iterdir() if (p / "manifest.json").is_file()) if runs_root.is_dir() else []
    parts = [f"Runs found: {', '.join(f'`{r}`' for r in runs) or 'none'}.", ""]
    preds = state_predictions(runs_root)
    ours_pub, fig_rows = [], []
    if preds.empty:
        parts += ["No run has predictions yet: run `sgvalues run --params params/<model>.yaml`.", ""]
    else:
        info = {run: _run_info(runs_root / run) for run in preds["run"].unique()}
        if any(syn is not False for _, _, syn, _ in info.values()):
            parts += ["```{warning}",
                      "Rows marked *synthetic* were computed on the synthetic sample, not on WVS-7: "
                      "they show that the pipeline works, not how the models behave.", "```", ""]
        what = {"ood": "unseen (OOD) subgroups", "train": "training subgroups"}
        for split in ("ood", "train"):
            part = preds[preds["split"] == split]
            if part.empty:
                continue
            rows, sentences, any_seeds = [], [], False
            for run in sorted(part["run"].unique()):
                label, pname, syn, _ = info[run]
                run_dir = runs_root / run
                by_state = {t: g for t, g in part[part["run"] == run].groupby("tag")}
                states = [t for t in STATES if t in by_state]
                ids = set(part.loc[part["run"] == run, "sample_id"].astype(str))
                base_tables = _baseline_tables(run_dir, split)
                if len(base_tables):  # only the yardsticks, only the samples some state answered
                    base_tables = base_tables[base_tables["baseline"].isin(YARDSTICKS)
                                              & base_tables["sample_id"].astype(str).isin(ids)]
                samples = _split_samples(run_dir, split)
                cmp = (baselines.compare_with_baselines(
                    by_state, {b: base_tables[base_tables["baseline"] == b] for b in YARDSTICKS
                               if (base_tables["baseline"] == b).any()},
                    metrics=("accuracy",), n_boot=1000, n_perm=2000) if len(base_tables) else pd.DataFrame())
                for tag in states:
                    df = by_state[tag]
                    s = score(df).iloc[0].to_dict()
                    seeds = _seed_mean(run_dir, split) if tag == "sft" else None
                    if seeds is not None:  # every seed answered the same samples: their mean
                        s = {**s, "accuracy": seeds["accuracy"], "nmae": seeds["nmae"]}
                        any_seeds = True
                    ys = yardstick_scores(run_dir, split, df, tables=base_tables, samples=samples).set_index("predictor")
                    rows.append({"model": label + {True: " (synthetic)", False: " (WVS-7)"}.get(syn, ""),
                                 # several training seeds: their mean, and the accuracy range in the label
                                 "state": tag if seeds is None else
                                 f"{tag}, {seeds['n']} seeds: {fmt_rate(seeds['min'])} to "
                                 f"{fmt_rate(seeds['max'])}",
                                 "accuracy": s["accuracy"],
                                 "NMAE": s["nmae"],
                                 "pop. mode": ys.loc["population_mode", "accuracy"],
                                 "marg. product": ys.loc["marginal_product", "accuracy"],
                                 "noise ref.": ys.loc[NOISE, "accuracy"], "invalid": s["invalid_rate"],
                                 "n": s["n"], "qs": int(df["question_id"].nunique())})
                    if len(cmp):
                        sentences.append(f"- {label}: " + beats_sentence(cmp, tag))
                    if split == "ood":
                        ours_pub.append({"params_name": pname, "run": run, "tag": tag, "accuracy": s["accuracy"],
                                         "nmae": s["nmae"]})
                        fig_rows += [{"model": label, "state": tag, "predictor": "model", "accuracy": s["accuracy"],
                                      "low": seeds["min"] if seeds else float("nan"),
                                      "high": seeds["max"] if seeds else float("nan")}]
                        fig_rows += [{"model": label, "state": tag, "predictor": p, "accuracy": v}
                                     for p, v in ys["accuracy"].items()]
            table = pd.DataFrame(rows)
            seed_note = (" Where a run trained several adapters (training.seeds), its sft row is their mean; "
                         "the row's state names the number of seeds and the lowest to highest accuracy over them."
                         if any_seeds else "")
            if len(table) and (table["invalid"] == 0).all():
                # a column of zeros only narrows the others: say it instead
                table = table.drop(columns="invalid")
                seed_note += " No answer of any row was invalid (refused or unparseable)."
            parts += ["```{table} Structured evaluation on the " + what[split] + " of every run. Each model state "
                      "(zeroshot = as released, on the samples of the split the run evaluated; base and sft = before and after LoRA "
                      "fine-tuning, on the questions fine-tuning used) beside, on the same samples, the accuracy of "
                      "the population's modal answer (pop. mode), of the no-interaction composition of the "
                      "single-axis answers (marg. product) and the survey-noise reference (accuracy: higher is "
                      "better; NMAE and invalid rate: lower is better). n (samples) and qs (questions) = what each "
                      "row was scored on." + seed_note,
                      f":name: tbl-model-comparison-{split}", "",
                      markdown_table(table, counts=["n", "qs"]), "```", ""]
            if sentences:
                parts += ["Which baselines each model state beats on accuracy, on its own samples (paired by "
                          "sample; 95 % bootstrap interval over questions; sign-flip permutation test over questions, "
                          "Holm-adjusted within each run and split):", "",
                          *sentences, ""]
            parts += persona_lines(runs_root, part, split)
    parts += _gain_lines(ours_pub, info if not preds.empty else {})
    # the paper's models, published and ours
    pub = published_table(pd.DataFrame(ours_pub, columns=["params_name", "run", "tag", "accuracy", "nmae"]))
    parts += ["```{table} Every model of the paper with its figures on the paper's OOD split ("
              + PUBLISHED_LABEL + "), and ours on this run's OOD split where a run of the same params name exists. "
              "The paper's base model is compared with our zeroshot state (both: the untuned model on the whole "
              "split).", ":name: tbl-model-comparison-published", "",
              markdown_table(pub), "```", ""]
    if fig_rows:
        plots.use_book_style()
        fig = plot_comparison(pd.DataFrame(fig_rows))
        fig_path = plots.save_figure(fig, out_dir / "figures" / "model_comparison.png")
        plt.close(fig)
        parts += ["```{figure} " + image_prefix + fig_path.relative_to(out_dir).as_posix(),
                  ":name: fig-model-comparison", ":alt: OOD accuracy per model state beside the baselines", "",
                  "OOD accuracy of every model state (blue) beside the population's modal answer and the "
                  "no-interaction composition on the same samples (grey), and the survey-noise reference "
                  "(black mark)." + (" A fine-tuned state trained with several seeds shows their mean, its "
                                     "whisker the lowest to highest."
                                     if any(pd.notna(r.get("low")) for r in fig_rows) else ""), "```", "",
                  "**Figure.** Does a blue bar reach past both grey bars of its row? Only then has the model "
                  "state learned something about subgroups that the population's answers do not already "
                  "tell. The black mark estimates how often a fresh survey sample would keep each "
                  "subgroup's modal answer: an estimate of attainable accuracy, not a hard ceiling (a "
                  "predictor that pools subgroups can pass it)."]
    page.write_text("\n".join(parts) + "\n")
    return page
