"""What training did, as tables: the recipe, base vs fine-tuned scores, and the OOD gain.

The figures of them are in :mod:`sgvalues.report.figures` (``plot_training_curve``,
``plot_gain``) and :mod:`sgvalues.report.chapters` (``plot_before_after``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from sgvalues.train.data import TrainError
from sgvalues.train.seeds import training_seeds

__all__ = [
    "recipe_table",
    "before_after",
    "gain_table",
]


def _setting_text(v) -> str:
    """A recipe setting as a reader reads it: "-" when unset, whole floats without ".0" (epochs 1)."""
    if v is None:
        return "-"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def recipe_table(params, published_recipe: dict | None = None):
    """The training recipe as a tidy table (``setting, ours``; plus ``published`` if given)."""
    import pandas as pd

    t = params.training
    rows = [("model", params.model.name), ("learning rate", t.lr), ("epochs", t.epochs),
            ("max steps", t.max_steps), ("questions", t.questions), ("max samples", t.max_samples),
            ("LoRA r / alpha / dropout", f"{t.lora_r} / {t.lora_alpha} / {t.lora_dropout}"),
            ("target modules", ", ".join(t.target_modules)),
            ("batch size x grad accum", f"{t.batch_size} x {t.grad_accum}"),
            ("shared-prefix batches", t.share_prefix),
            ("objective", t.objective), ("loss weights (reweight)", t.reweight),
            ("warm-up ratio", t.warmup_ratio), ("checkpoint every (steps)", t.save_every),
            ("seed", params.seed),
            ("training seeds (spread)", ", ".join(str(s) for s in training_seeds(params)))]
    table = pd.DataFrame(rows, columns=["setting", "ours"])
    table["ours"] = table["ours"].map(_setting_text)
    if published_recipe:
        pub = {"learning rate": published_recipe.get("lr"), "epochs": published_recipe.get("epochs")}
        table["published"] = table["setting"].map(lambda s: _setting_text(pub.get(s)))
    return table


def before_after(run_dir: str | Path, splits: Sequence[str] = ("ood", "train"),
                 by: str | None = "stratum", suffix: str = ""):
    """Base vs SFT metrics from ``<run_dir>/predictions/{base,sft}_<split>.csv``, tidy.

    Columns: ``split``, ``by`` (``"all"`` rows included), ``tag`` (``base``/``sft``),
    ``accuracy``, ``nmae``, ``refusal_rate``, ``n``. Only samples evaluated under both tags
    count, so a limited evaluation compares like with like. ``suffix`` reads
    ``base<suffix>_<split>.csv`` and ``sft<suffix>_<split>.csv`` (tags stay ``base``/``sft``).
    """
    import pandas as pd

    from sgvalues import metrics
    from sgvalues.evaluate import load_predictions, predictions_path

    parts = []
    for split in splits:
        frames = {}
        for tag in ("base", "sft"):
            path = predictions_path(run_dir, tag + suffix, split)
            if not path.is_file():
                raise TrainError(f"{path}: no predictions; run evaluate_run(..., split={split!r}, tag={tag!r})")
            frames[tag] = load_predictions(path)
        common = set(frames["base"]["sample_id"]) & set(frames["sft"]["sample_id"])
        for tag, df in frames.items():
            df = df[df["sample_id"].isin(common)]
            overall = metrics.aggregate(df, None)
            if by:
                overall.insert(0, by, "all")
                table = pd.concat([overall, metrics.aggregate(df, by)], ignore_index=True)
            else:
                table = overall
            parts.append(table.assign(split=split, tag=tag))
    out = pd.concat(parts, ignore_index=True)
    lead = ["split"] + ([by] if by else []) + ["tag"]
    return out[lead + [c for c in out.columns if c not in lead]]


def gain_table(table, published_sft: dict | None = None, label: str = "ours",
               what: str = "OOD accuracy gain, base -> SFT"):
    """OOD accuracy gain (points) base -> SFT, ours beside the published figures.

    ``table`` is :func:`before_after`'s output; ``published_sft`` is ``published()["sft"]``.
    """
    import pandas as pd

    rows = table[(table["split"] == "ood")]
    if "stratum" in rows.columns:
        rows = rows[rows["stratum"] == "all"]
    acc = rows.set_index("tag")["accuracy"]
    out = [{"source": label, "what": what,
            "gain_points": round(100 * (acc["sft"] - acc["base"]), 1)}]
    if published_sft:
        out.append({"source": "published", "what": "mean over the paper's fine-tuned models",
                    "gain_points": published_sft["mean_ood_accuracy_gain_points"]})
        out.append({"source": "published", "what": f"largest: {published_sft['largest_gain_model']}",
                    "gain_points": published_sft["largest_gain_points"]})
    return pd.DataFrame(out)
