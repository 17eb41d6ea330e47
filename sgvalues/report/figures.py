"""The book's figures of the data, training and evaluation chapters: stage tables in, matplotlib figures out.

Stage modules (``prepare``, ``subgroups``, ``split``, ``diversity``, ``train``, ``evaluate``, ``fairness``)
compute tidy tables and never draw; the functions here draw them, one section per chapter, in
the book's style (:func:`sgvalues.plots.use_book_style` sets the palette they take from the
colour cycle). Every function returns the figure; notebooks save it with
``sgvalues.plots.save_figure`` or ``Chapter.save``. The judge's figures are in
:mod:`sgvalues.report.judging`.

matplotlib is imported inside each function, so importing this module stays cheap. Every figure
that shows model states (zero-shot, base, fine-tuned) colours them by :data:`STATE_COLOURS`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sgvalues.diversity import mds_wasserstein_correlation, question_diversity
from sgvalues.split import SPLITS, table_profile
from sgvalues.subgroups import STRATUM_NAMES

__all__ = [
    "plot_training_curve",
    "plot_gain",
    "plot_catalogue_by_theme",
    "plot_subgroup_sizes",
    "plot_composition",
    "plot_split_design",
    "plot_split_counts",
    "plot_theme_ranking",
    "plot_mds_heatmap",
    "plot_mds_vs_wasserstein",
    "plot_metrics",
    "plot_subgroup_scores",
    "plot_fairness_paradox",
    "STATE_COLOURS",
    "plot_before_after",
    "plot_level_bars",
    "plot_intervals",
    "legend_below",
]


# --------------------------------------------------------------------------------------------
# --- training (chapter 04): the loss curve and the OOD gain (sgvalues.train)
# --------------------------------------------------------------------------------------------


def plot_training_curve(log, ax=None, smooth: int = 10):
    """Training loss per optimizer step (light) and its running mean over ``smooth`` steps."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.plot(log["step"], log["loss"], alpha=0.35, lw=1, label="loss per step")
    if len(log) >= smooth > 1:
        ax.plot(log["step"], log["loss"].rolling(smooth, min_periods=1).mean(), lw=2,
                label=f"running mean ({smooth} steps)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("answer-token cross-entropy")
    ax.set_title("LoRA SFT training curve")
    ax.legend()
    return ax


def plot_gain(gains, label_published: str = "published"):
    """Bars of the OOD accuracy gain: ours and the published mean and largest gain."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.8))
    names = [f"{w}\n{label_published if s == 'published' else s}" for s, w in zip(gains["source"], gains["what"])]
    colors = ["C0" if s != "published" else "0.6" for s in gains["source"]]
    ax.barh(names, gains["gain_points"], color=colors)
    for y, v in enumerate(gains["gain_points"]):
        ax.text(v, y, f" {v:+.1f}", va="center")
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xlabel("OOD accuracy gain (percentage points)")
    ax.invert_yaxis()
    ax.set_title("Base -> SFT on the OOD subgroups")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# chapter 1: the question catalogue (sgvalues.prepare)
# --------------------------------------------------------------------------------------------


def plot_catalogue_by_theme(table: pd.DataFrame, title: str | None = None):
    """Stacked horizontal bars: selected and excluded questions per theme."""
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(table) + 1.2))
    y = np.arange(len(table))
    ax.barh(y, table["selected"], color=colors[0], label="selected")
    ax.barh(y, table["excluded"], left=table["selected"], color=colors[7 % len(colors)], label="excluded")
    for yi, (s, t) in enumerate(zip(table["selected"], table["total"])):
        ax.text(t + 0.5, yi, f"{s} / {t}", va="center", fontsize=7)
    ax.set_yticks(y, table["theme"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("questions")
    ax.margins(x=0.12)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# chapter 1: subgroups and the sample's composition (sgvalues.subgroups)
# --------------------------------------------------------------------------------------------


def _split_colors() -> list:
    """First two colours of the active cycle (the book's palette after ``plots.use_book_style``)."""
    import matplotlib.pyplot as plt

    return plt.rcParams["axes.prop_cycle"].by_key()["color"][:2]


def plot_subgroup_sizes(subgroups: pd.DataFrame, min_n: int | None = None, title: str | None = None):
    """Horizontal bars of ``n_respondents`` per subgroup, grouped by stratum, coloured by split.

    Log-scaled x axis; a dashed line marks ``min_n``. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    df = subgroups.copy()
    df["label"] = df["subgroup"].str.partition(":")[2].str.replace("|", " · ", regex=False)
    strata = ([s for s in STRATUM_NAMES if s in set(df["stratum"])]
              + [s for s in dict.fromkeys(df["stratum"]) if s not in STRATUM_NAMES])
    heights = [max(1, (df["stratum"] == s).sum()) for s in strata]
    fig, axes = plt.subplots(len(strata), 1, figsize=(8, 0.16 * sum(heights) + 0.55 * len(strata) + 0.6),
                             gridspec_kw={"height_ratios": heights}, sharex=True, squeeze=False)
    colors = dict(zip(("train", "ood"), _split_colors()))
    xmax = df["n_respondents"].max() * 1.3 if len(df) else 10
    for ax, s in zip(axes[:, 0], strata):
        part = df[df["stratum"] == s]
        ax.barh(part["label"], part["n_respondents"], color=[colors[x] for x in part["split"]])
        ax.invert_yaxis()
        ax.set_title(f"{s} ({part['split'].iloc[0]})", loc="left", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        if min_n is not None:
            ax.axvline(min_n, color="black", linestyle="--", linewidth=1)
        # log scale: the small pairs near min_n matter more than the size of "Chinese"
        ax.set_xscale("log")
        ax.set_xlim(max(1, (min_n or 10) / 3), xmax)
    axes[-1, 0].set_xlabel("respondents in subgroup, log scale" + (f" (dashed line: min_n = {min_n})" if min_n else ""))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_composition(table: pd.DataFrame, title: str | None = None):
    """Bars per axis: sample share, weighted share and reference share of each level."""
    import matplotlib.pyplot as plt

    axes_ = list(dict.fromkeys(table["axis"]))
    # two panels a row: four in one row would be shrunk below legibility at the book's column width
    ncols = min(2, len(axes_))
    nrows = -(-len(axes_) // ncols)
    fig, axs = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axs.flat[len(axes_):]:
        ax.set_visible(False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    width = 0.27
    for k, (ax, axis) in enumerate(zip(axs.flat, axes_)):
        part = table[table["axis"] == axis].reset_index(drop=True)
        x = np.arange(len(part))
        ax.bar(x - width, part["share"], width, label="sample", color=colors[0])
        ax.bar(x, part["weighted_share"], width, label="sample, weighted", color=colors[1])
        ax.bar(x + width, part["reference_share"], width, label="reference", color=colors[2])
        ax.set_xticks(x, part["level"], rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{axis}\n(reference: {part['reference'].iloc[0]})", fontsize=8)
        ax.set_ylabel("% of respondents" if k % ncols == 0 else "")
    handles, labels = axs[0, 0].get_legend_handles_labels()
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06 / nrows, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
# chapter 3: the compositional split (sgvalues.split)
# --------------------------------------------------------------------------------------------


def plot_split_design(subgroups: pd.DataFrame | None = None, profile=None):
    """The design as an axis x axis grid: diagonal = single axes, upper triangle = pairs.

    Each cell is coloured by its split and says how many subgroups the stratum has (kept /
    possible when ``subgroups`` is given). ``profile``: the country profile (default
    the one whose levels ``subgroups`` holds, else Singapore's). Returns the matplotlib figure.
    """
    prof = table_profile(subgroups, profile)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    axes_ = list(prof.axes)
    colors = dict(zip(SPLITS, _split_colors()))
    kept = subgroups["stratum"].value_counts().to_dict() if subgroups is not None else {}
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    for st in prof.strata:
        i = axes_.index(st.axes[0])
        j = axes_.index(st.axes[-1])
        row, col = min(i, j), max(i, j)
        ax.add_patch(Rectangle((col, row), 0.96, 0.96, color=colors[st.split], alpha=0.85))
        count = f"{kept.get(st.name, 0)} / {st.n_levels}" if subgroups is not None else f"{st.n_levels}"
        ax.text(col + 0.48, row + 0.48, f"{st.split}\n{count}\nsubgroups", ha="center", va="center",
                fontsize=9, color="white", fontweight="bold")
    ax.set_xlim(0, 4)
    ax.set_ylim(4, 0)
    ax.set_xticks([k + 0.48 for k in range(4)], axes_)
    ax.set_yticks([k + 0.48 for k in range(4)], axes_)
    ax.xaxis.tick_top()
    ax.grid(False)
    ax.set_aspect("equal")
    ax.legend(handles=[Patch(color=colors[s], label=s) for s in SPLITS], loc="lower left",
              bbox_to_anchor=(0.0, 0.0), frameon=False)
    what = "kept / possible" if subgroups is not None else "possible"
    ax.set_title(f"Compositional split: strata by axis pair ({what} subgroups)", pad=28, fontsize=10)
    fig.tight_layout()
    return fig


def plot_split_counts(counts: pd.DataFrame, label_published: str = "published"):
    """Paired bars of our counts and the published ones (subgroups and samples per split)."""
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    groups = [["train subgroups", "ood subgroups"], ["questions"], ["train samples", "ood samples"]]
    c = counts.set_index("quantity")
    fig, axs = plt.subplots(1, 3, figsize=(9, 3.2), gridspec_kw={"width_ratios": [2, 1, 2]})
    for ax, names in zip(axs, groups):
        x = np.arange(len(names))
        ours, pub = c.loc[names, "ours"].to_numpy(), c.loc[names, "published"].to_numpy()
        ax.bar(x - 0.2, ours, 0.4, label="ours", color=colors[0])
        ax.bar(x + 0.2, pub, 0.4, label=label_published, color=colors[7 % len(colors)])
        for xi, (o, p) in enumerate(zip(ours, pub)):
            ax.text(xi - 0.2, o, f"{o:,}", ha="center", va="bottom", fontsize=7)
            ax.text(xi + 0.2, p, f"{p:,}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, names, fontsize=8)
        ax.margins(y=0.15)
    handles, labels = axs[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False, fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
# chapter 2: Modal Diversity Score (sgvalues.diversity)
# --------------------------------------------------------------------------------------------


def plot_theme_ranking(ranking: pd.DataFrame, label_published: str | None = None):
    """Horizontal bars of mean MDS per theme (most divisive on top), published values as markers."""
    import matplotlib.pyplot as plt

    from sgvalues.published import PUBLISHED_LABEL

    r = ranking.sort_values("mds", ascending=True)
    fig, ax = plt.subplots(figsize=(9.5, 0.38 * len(r) + 1.2))
    y = np.arange(len(r))
    ax.barh(y, r["mds"], color="C0", label="ours")
    pub = r["published_mds"].to_numpy(dtype=float)
    has = ~np.isnan(pub)
    if has.any():
        ax.scatter(pub[has], y[has], marker="D", color="C3", zorder=3, s=40,
                   label=label_published or PUBLISHED_LABEL)
    ax.set_yticks(y, r["theme"])
    ax.set_xlabel("mean MDS (0 = consensus, 1 = maximal disagreement)")
    ax.set_xlim(0, 1.12 * float(np.nanmax(np.r_[r["mds"].to_numpy(dtype=float), pub, 0.01])))
    ax.set_title("Which themes divide Singapore's subgroups?")
    ax.legend(loc="lower left", bbox_to_anchor=(1.01, 0.0), frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def plot_mds_heatmap(diversity: pd.DataFrame, questions: pd.DataFrame | None = None):
    """Question x stratum heatmap of MDS, questions grouped by theme (theme boundaries drawn)."""
    import matplotlib.pyplot as plt

    piv = diversity.pivot_table(index="question_id", columns="stratum", values="mds", aggfunc="mean", sort=False)
    strata = list(pd.unique(diversity["stratum"]))
    piv = piv[strata]
    theme = diversity.drop_duplicates("question_id").set_index("question_id")["theme"]
    qorder = diversity.drop_duplicates("question_id")[["question_id", "theme"]].copy()
    qorder["_n"] = qorder["question_id"].str.extract(r"(\d+)", expand=False).astype(float)
    qorder = qorder.sort_values(["theme", "_n", "question_id"])
    piv = piv.loc[qorder["question_id"]]
    fig, ax = plt.subplots(figsize=(8, max(4.0, 0.035 * len(piv) + 2)))
    im = ax.imshow(piv.to_numpy(dtype=float), aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(np.arange(len(strata)), [s.replace("_x_", " × ") for s in strata], rotation=40, ha="right")
    themes = theme.loc[piv.index].to_numpy()
    starts = [0] + [i for i in range(1, len(themes)) if themes[i] != themes[i - 1]]
    for s in starts[1:]:
        ax.axhline(s - 0.5, color="white", lw=0.8)
    ends = starts[1:] + [len(themes)]
    ax.set_yticks([(a + b - 1) / 2 for a, b in zip(starts, ends)], [themes[a] for a in starts], fontsize=7)
    ax.set_ylabel("questions, grouped by theme")
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="Modal Diversity Score", shrink=0.6)
    ax.set_title("MDS per question and stratum")
    fig.tight_layout()
    return fig


def plot_mds_vs_wasserstein(diversity: pd.DataFrame, level: str = "question"):
    """Scatter of MDS against mean pairwise Wasserstein distance, Spearman rho in the title."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    d = question_diversity(diversity) if level == "question" else diversity
    corr = mds_wasserstein_correlation(diversity, level=level)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    sns.scatterplot(data=d, x="mean_wasserstein", y="mds", hue="theme", ax=ax, s=22, alpha=0.8)
    ax.set_xlabel("mean pairwise Wasserstein distance (codes rescaled to [0, 1])")
    ax.set_ylabel("Modal Diversity Score")
    ax.set_title(f"MDS vs Wasserstein: Spearman ρ = {corr['rho']:.2f} ({corr['n']} {level}s)")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5), title="theme")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# chapter 5: structured evaluation (sgvalues.evaluate)
# --------------------------------------------------------------------------------------------


def plot_metrics(agg: pd.DataFrame, by: str, title: str = "", overall: dict | None = None):
    """Two panels, accuracy and NMAE per ``by`` group (output of ``metrics.aggregate``).

    ``overall`` (``summarise`` output) draws the whole-split value as a dashed line.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    agg = agg.sort_values("accuracy", ascending=False)
    height = max(2.6, 0.32 * len(agg) + 1.2)
    fig, axes = plt.subplots(1, 2, figsize=(10, height), sharey=True)
    for ax, metric, label in ((axes[0], "accuracy", "accuracy (higher is better)"),
                              (axes[1], "nmae", "NMAE (lower is better)")):
        sns.barplot(data=agg, y=by, x=metric, ax=ax, color=sns.color_palette()[0 if metric == "accuracy" else 1])
        if overall is not None:
            ax.axvline(overall[metric], ls="--", color="0.3", lw=1, label="all samples")
            ax.legend(loc="best", fontsize="small", framealpha=0.9)
        ax.set_xlabel(label)
        ax.set_ylabel(by if ax is axes[0] else "")
        ax.set_xlim(0, 1)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# chapter 7: fairness across subgroups (sgvalues.fairness)
# --------------------------------------------------------------------------------------------


def plot_subgroup_scores(sub_scores: pd.DataFrame, metric: str = "accuracy", split: str | None = None):
    """Per-subgroup scores by stratum, one panel per model, base and SFT side by side.

    Rows of other tags (``zeroshot``) are left out; with no base or SFT rows the figure says so.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    d = sub_scores if split is None else sub_scores[sub_scores["split"] == split]
    d = d[d["tag"].isin(["base", "sft"])]
    if d.empty:
        return _empty_figure("no base or fine-tuned predictions")
    labels = list(dict.fromkeys(d["label"]))
    present = set(d["stratum"])
    order = [s for s in STRATUM_NAMES if s in present] + sorted(present - set(STRATUM_NAMES))
    fig, axes = plt.subplots(1, max(1, len(labels)), figsize=(5.5 * max(1, len(labels)), 4.2), squeeze=False, sharey=True)
    for ax, lab in zip(axes[0], labels):
        g = d[d["label"] == lab]
        sns.stripplot(data=g, x="stratum", y=metric, hue="tag", dodge=True, ax=ax, size=4, alpha=0.8, order=order,
                      hue_order=[t for t in ("base", "sft") if t in set(g["tag"])])
        ax.set_title(lab)
        if ax.get_legend():
            ax.get_legend().remove()
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=35)
        for t in ax.get_xticklabels():
            t.set_ha("right")
    axes[0][0].set_ylabel("accuracy per subgroup" if metric == "accuracy" else "NMAE per subgroup")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.tight_layout()
    if handles:
        fig.legend(handles, names, title="tag", loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    return fig


def _empty_figure(message: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", color="0.4")
    return fig


def plot_fairness_paradox(ablation: pd.DataFrame, published_rows: pd.DataFrame | None = None,
                          intervals: pd.DataFrame | None = None):
    """Change in accuracy Norm. Range (x) against change in NMAE Norm. Range (y), base -> SFT.

    One point per model; the published change as a separate marker. Points left of 0 lowered
    the accuracy Norm. Range; points above 0 raised the NMAE Norm. Range: the top-left quadrant
    is the paper's "fairness paradox", named by the ratios alone (whether the spread itself moved
    is :func:`sgvalues.report.mechanics.paradox_sentence`'s to say). ``intervals`` (from
    :func:`bootstrap_fairness`) adds 95 % bars.
    """
    import matplotlib.pyplot as plt

    from sgvalues.published import PUBLISHED_LABEL

    def xy(df):
        w = df.pivot_table(index=["run", "label"], columns="statistic", values="change", aggfunc="first")
        return w.reset_index()

    fig, ax = plt.subplots(figsize=(6.2, 5))
    ax.axhline(0, color="0.5", lw=0.8)
    ax.axvline(0, color="0.5", lw=0.8)
    markers, seen = "osv^PX", {}
    if len(ablation):
        w = xy(ablation)
        for i, r in w.iterrows():
            # two states with the same changes would hide each other: a different marker, drawn
            # smaller on top, and the legend names the point it shares
            at = (round(float(r["Acc Norm. Range"]), 6), round(float(r["NMAE Norm. Range"]), 6))
            label = r["label"] + (f" (same point as {seen[at]})" if at in seen else "")
            seen.setdefault(at, r["label"])
            xerr = yerr = None
            if intervals is not None and len(intervals):
                iv = intervals[(intervals["run"] == r["run"]) & (intervals["tag"] == "sft - base")].set_index("statistic")
                if "accuracy_norm_range" in iv.index:
                    a = iv.loc["accuracy_norm_range"]
                    xerr = [[max(0, a["estimate"] - a["lo"])], [max(0, a["hi"] - a["estimate"])]]
                if "nmae_norm_range" in iv.index:
                    b = iv.loc["nmae_norm_range"]
                    yerr = [[max(0, b["estimate"] - b["lo"])], [max(0, b["hi"] - b["estimate"])]]
            ax.errorbar(r["Acc Norm. Range"], r["NMAE Norm. Range"], xerr=xerr, yerr=yerr,
                        fmt=markers[i % len(markers)], markersize=5 if label != r["label"] else 8,
                        color=f"C{i % 10}", capsize=3, label=label, zorder=3 + i)
    if published_rows is not None and len(published_rows):
        p = xy(published_rows).iloc[0]
        # the published point in neutral grey, so it is never mistaken for one of our states
        ax.scatter(p["Acc Norm. Range"], p["NMAE Norm. Range"], marker="D", s=60, color="0.35",
                   edgecolor="k", zorder=10, label=PUBLISHED_LABEL)
    lim = max([0.05] + [abs(v) for v in ax.get_xlim() + ax.get_ylim()])
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    # the quadrant is named by its ratios only: whether the spread itself moved is read beside it
    # (sgvalues.report.mechanics.paradox_sentence)
    ax.text(-lim * 0.95, lim * 0.9, "the paper's paradox:\naccuracy NR down, NMAE NR up", fontsize=8, va="top",
            color="0.3")
    ax.set_xlabel("Δ accuracy Norm. Range (SFT − base; < 0 = fairer)")
    ax.set_ylabel("Δ NMAE Norm. Range (SFT − base; < 0 = fairer)")
    ax.set_title("Does SFT make subgroups more equal?")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# chapters 4, 7 and 8: model states side by side (sgvalues.train, sgvalues.fairness)
# --------------------------------------------------------------------------------------------
#: one colour per model state in every figure of the book's chapters; baselines are grey
STATE_COLOURS = {"zeroshot": "C2", "base": "C1", "sft": "C0"}


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
        return _empty_figure("no predictions for this run")
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

    from sgvalues.report.format import STATISTIC_LABELS, model_names

    b = boot[boot["tag"].isin(list(tags)) & boot["statistic"].isin(list(statistics))]
    stats = [s for s in statistics if s in set(b["statistic"])]
    if b.empty or not stats:
        return _empty_figure("no bootstrap results")
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
        ax.set_title(STATISTIC_LABELS.get(stat, stat), fontsize=9)
    for ax in axes.ravel()[len(stats):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def legend_below(fig, pad: float = 0.15):
    """Move every axes legend of ``fig`` below the axes and widen the axes limits by ``pad``.

    For figures drawn elsewhere (e.g. :func:`plot_fairness_paradox`) whose
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
