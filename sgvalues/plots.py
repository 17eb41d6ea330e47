"""One figure style for the whole book (seaborn on matplotlib).

Every notebook calls :func:`use_book_style` once; figure functions live in :mod:`sgvalues.report`
(``report.figures``, ``report.judging``, ...), never in the stage modules that compute what they
draw, and save through :func:`save_figure`.

The style's colour cycle is :data:`BOOK_COLORS`: seaborn's colour-blind palette (ten colours)
extended by four colours of Kelly's maximum-contrast set, so a figure with up to 14 categories
(the 13 WVS-7 themes, say) gets distinct colours from the cycle instead of seaborn's fallback of
evenly spaced hues, whose neighbours are hard to tell apart. Figures sized at
:data:`COLUMN_WIDTH_IN` inches fill the book's text column without being scaled down.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

# Headless Agg for scripts and tests; inside a Jupyter kernel keep the inline backend, or the
# notebooks (and so the book's chapters) would show no figures.
if "ipykernel" not in __import__("sys").modules:
    matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

__all__ = ["BOOK_COLORS", "COLUMN_WIDTH_IN", "use_book_style", "save_figure"]

#: the qualitative palette shared by every figure: seaborn "colorblind" (10) + near-black,
#: reddish brown, violet and yellow-green (Kelly 1965)
BOOK_COLORS = ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494",
               "#ece133", "#56b4e9", "#222222", "#882d17", "#604e97", "#8db600"]

#: width of the book's text column in inches at the book's figure dpi; wider figures shrink
COLUMN_WIDTH_IN = 7.0


def use_book_style() -> None:
    """Apply the book's seaborn theme: white grid, readable fonts, the 14-colour palette."""
    sns.set_theme(context="notebook", style="whitegrid", palette=BOOK_COLORS, font_scale=0.95)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 130, "savefig.bbox": "tight",
                         "axes.titleweight": "bold", "figure.autolayout": False,
                         # legends never cover data by default: matplotlib picks the emptiest spot
                         "legend.loc": "best", "legend.framealpha": 0.9})


def save_figure(fig, path: str | Path) -> Path:
    """Save ``fig`` as PNG (creating folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
