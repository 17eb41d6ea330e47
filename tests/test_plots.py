"""The book's figure style: a qualitative palette that separates 13+ categories."""

import itertools

import matplotlib.colors as mc
import numpy as np
import pytest
import seaborn as sns

from sgvalues import plots


def _lab(colors):
    """CIELAB of sRGB colours (D65), by the CIE formulas."""
    rgb = np.array([mc.to_rgb(c) for c in colors])
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = lin @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def _min_delta_e(colors) -> float:
    lab = _lab(colors)
    return min(float(np.linalg.norm(lab[i] - lab[j])) for i, j in itertools.combinations(range(len(lab)), 2))


def test_lab_matches_known_values():
    np.testing.assert_allclose(_lab(["#ffffff", "#000000"]), [[100, 0, 0], [0, 0, 0]], atol=0.05)
    np.testing.assert_allclose(_lab(["#ff0000"])[0], [53.24, 80.09, 67.20], atol=0.1)


def test_thirteen_categories_get_distinct_colours_better_spread_than_seaborns_fallback():
    colors = plots.BOOK_COLORS[:13]
    assert len(set(colors)) == 13
    # seaborn falls back to evenly spaced husl hues when a hue has more levels than the cycle
    assert _min_delta_e(colors) > _min_delta_e(sns.husl_palette(13)) + 3


def test_book_style_sets_the_cycle_seaborn_uses_for_hue():
    plots.use_book_style()
    assert [mc.to_hex(c) for c in sns.color_palette(n_colors=13)] == plots.BOOK_COLORS[:13]


def test_stage_modules_compute_and_never_import_matplotlib():
    """Figures live in sgvalues.report; importing a stage module loads neither matplotlib nor seaborn."""
    import subprocess
    import sys

    stages = ["data", "subgroups", "modal", "diversity", "split", "prepare", "evaluate", "baselines", "metrics", "judge",
              "sensitive", "fairness", "synthetic", "train"]
    code = ("import sys\n" + "".join(f"import sgvalues.{m}\n" for m in stages)
            + "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'seaborn'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_training_figures_draw_the_log_and_the_gain_table_they_are_given():
    """Chapter 04's figures, in report.figures: the loss per step and its running mean; one bar per gain row."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from sgvalues.report.figures import plot_gain, plot_training_curve

    log = pd.DataFrame({"step": [1, 2, 3, 4], "loss": [4.0, 2.0, 3.0, 1.0]})
    ax = plot_training_curve(log, smooth=2)
    raw, mean = ax.get_lines()
    np.testing.assert_allclose(raw.get_ydata(), [4, 2, 3, 1])
    np.testing.assert_allclose(mean.get_ydata(), [4, 3, 2.5, 2])  # rolling mean over 2 steps
    plt.close(ax.figure)
    gains = pd.DataFrame({"source": ["ours", "published"], "what": ["OOD gain", "mean"], "gain_points": [2.5, -1.0]})
    fig = plot_gain(gains, label_published="paper")
    ax = fig.axes[0]
    assert [round(p.get_width(), 9) for p in ax.patches] == [2.5, -1.0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["OOD gain\nours", "mean\npaper"]
    plt.close(fig)


def test_theme_ranking_bars_are_the_mds_sorted_and_markers_the_published_values():
    import matplotlib.pyplot as plt
    import pandas as pd

    from sgvalues.report.figures import plot_theme_ranking

    ranking = pd.DataFrame({"theme": ["a", "b", "c"], "mds": [0.5, 0.2, 0.8], "published_mds": [0.4, np.nan, 0.9]})
    fig = plot_theme_ranking(ranking, label_published="paper")
    ax = fig.axes[0]
    assert [round(p.get_width(), 9) for p in ax.patches] == [0.2, 0.5, 0.8]  # ascending: most divisive on top
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a", "c"]
    offsets = ax.collections[0].get_offsets()
    np.testing.assert_allclose(np.asarray(offsets), [[0.4, 1], [0.9, 2]])  # b has no published value
    plt.close(fig)


def test_metrics_figure_draws_one_bar_per_group_and_the_overall_line():
    import matplotlib.pyplot as plt
    import pandas as pd

    from sgvalues.report.figures import plot_metrics

    agg = pd.DataFrame({"stratum": ["sex", "age_group", "religion"], "accuracy": [0.3, 0.6, 0.45],
                        "nmae": [0.2, 0.1, 0.15]})
    fig = plot_metrics(agg, "stratum", overall={"accuracy": 0.5, "nmae": 0.12})
    acc, nmae = fig.axes[:2]
    assert sorted(round(p.get_width(), 9) for p in acc.patches) == [0.3, 0.45, 0.6]
    assert sorted(round(p.get_width(), 9) for p in nmae.patches) == [0.1, 0.15, 0.2]
    assert [line.get_xdata()[0] for line in acc.lines if line.get_linestyle() == "--"] == [0.5]
    plt.close(fig)


def test_subgroup_scores_figure_shows_base_and_sft_only_and_says_when_there_are_none():
    import matplotlib.pyplot as plt
    import pandas as pd

    from sgvalues.report.figures import plot_subgroup_scores

    rows = [{"run": "r", "label": "m", "split": "ood", "tag": tag, "stratum": "sex", "subgroup": f"sex:{s}",
             "accuracy": acc} for tag, s, acc in [("base", "Male", 0.2), ("base", "Female", 0.4),
                                                  ("sft", "Male", 0.6), ("zeroshot", "Male", 0.9)]]
    fig = plot_subgroup_scores(pd.DataFrame(rows))
    points = np.concatenate([np.asarray(c.get_offsets())[:, 1] for c in fig.axes[0].collections])
    assert sorted(points.round(9)) == [0.2, 0.4, 0.6]  # the zeroshot row is not drawn
    plt.close(fig)
    only_zeroshot = plot_subgroup_scores(pd.DataFrame(rows[3:]))
    assert [t.get_text() for t in only_zeroshot.axes[0].texts] == ["no base or fine-tuned predictions"]
    plt.close(only_zeroshot)


def test_fairness_paradox_keeps_coinciding_states_visible_and_published_apart():
    """Two states with the same change share a point: each keeps its own marker and the legend
    names the point it shares; the published diamond is grey, never one of our states' colours."""
    import matplotlib.colors as mcolors
    import pandas as pd

    from sgvalues.published import PUBLISHED_LABEL
    from sgvalues.report.figures import plot_fairness_paradox

    rows = [{"run": r, "label": r, "statistic": st, "change": v}
            for r, acc in (("modal", -0.04), ("modal + error", -0.04), ("distribution", -0.3))
            for st, v in (("Acc Norm. Range", acc), ("NMAE Norm. Range", 0.42))]
    published = pd.DataFrame([{"run": "p", "label": "p", "statistic": "Acc Norm. Range", "change": -0.06},
                              {"run": "p", "label": "p", "statistic": "NMAE Norm. Range", "change": 0.06}])
    fig = plot_fairness_paradox(pd.DataFrame(rows), published)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    assert "modal + error (same point as modal)" in labels and "distribution" in labels
    ours = [h for h, lab in zip(handles, labels) if lab != PUBLISHED_LABEL]
    markers = {h.lines[0].get_marker() for h in ours}
    assert len(markers) == 3
    diamond = fig.axes[0].collections[-1]
    r, g, b, _ = diamond.get_facecolor()[0]
    assert abs(r - g) < 1e-6 and abs(g - b) < 1e-6  # grey
    assert all(mcolors.to_hex(h.lines[0].get_color()) != mcolors.to_hex((r, g, b)) for h in ours)


def test_before_after_legend_is_off_the_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from sgvalues.report.figures import plot_before_after

    t = pd.DataFrame({"split": ["ood"] * 4, "stratum": ["a", "a", "b", "b"], "tag": ["base", "sft"] * 2,
                      "accuracy": [0.2, 0.9, 0.3, 0.8], "nmae": [0.4, 0.1, 0.3, 0.2]})
    fig = plot_before_after(t)
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert len(fig.legends) == 1
    fig.canvas.draw()
    leg = fig.legends[0].get_window_extent()
    for ax in fig.axes:
        assert not leg.overlaps(ax.get_window_extent())
    plt.close(fig)


def test_legend_below_moves_the_legend_off_the_axes_and_pads_limits():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sgvalues.report.figures import legend_below

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="a")
    ax.scatter([1], [1], label="b")
    ax.set_xlim(0, 1)
    ax.legend()
    legend_below(fig, pad=0.2)
    assert ax.get_legend() is None and len(fig.legends) == 1
    assert ax.get_xlim() == pytest.approx((-0.1, 1.1))
    fig.canvas.draw()
    assert not fig.legends[0].get_window_extent().overlaps(ax.get_window_extent())
    plt.close(fig)
