"""One figure style for the whole book (seaborn on matplotlib).

Every notebook calls :func:`use_book_style` once; figure functions live next to the analysis
they draw (e.g. ``diversity``, ``fairness``) and save through :func:`save_figure`.
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

__all__ = ["PALETTE", "use_book_style", "save_figure"]

#: qualitative palette shared by every figure (colour-blind safe)
PALETTE = "colorblind"


def use_book_style() -> None:
    """Apply the book's seaborn theme: white grid, readable fonts, colour-blind palette."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font_scale=0.95)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 130, "savefig.bbox": "tight",
                         "axes.titleweight": "bold", "figure.autolayout": False})


def save_figure(fig, path: str | Path) -> Path:
    """Save ``fig`` as PNG (creating folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
