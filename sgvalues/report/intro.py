"""The intro's run summary: a run's model, data and headline results, in words computed from its files.

``sgvalues book`` writes it to ``chapters/run_summary.md`` (:func:`sgvalues.book.write_run_summary`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sgvalues.evaluate import load_run_predictions
from sgvalues.manifest import read_manifest
from sgvalues.metrics import score
from sgvalues.report.format import fmt_count, fmt_rate

__all__ = ["run_summary"]


def run_summary(run_dir: str | Path) -> str:
    """Markdown naming a run's model and data and its headline results, computed from its files.

    Reads ``manifest.json`` (model), ``data/prepare_summary.json`` (data), the structured
    predictions on the OOD split and, when present, ``judge/win_rates.csv``. Every number is
    formatted by :mod:`sgvalues.report.format`; nothing is claimed that the files do not hold.

    Examples
    --------
    >>> import json, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "manifest.json").write_text(json.dumps({"params": {"display_name": "Tiny",
    ...      "model": {"backend": "hf", "name": "tiny"}}}))
    >>> print(run_summary(d).splitlines()[0])
    **Model.** Tiny (`tiny`, hf backend).
    """
    run_dir = Path(run_dir)
    man = read_manifest(run_dir)
    params = man.get("params") or {}
    model = params.get("model") or {}
    name = params.get("display_name") or params.get("name") or run_dir.name
    lines = [f"**Model.** {name} (`{model.get('name', '?')}`, {model.get('backend', '?')} backend)."]
    summary_path = run_dir / "data" / "prepare_summary.json"
    n_ood = None  # the OOD split's size, to say what each headline figure rests on
    if summary_path.is_file():
        s = json.loads(summary_path.read_text())
        source = ("A **synthetic** Singapore-like sample in the WVS-7 format (not survey data)"
                  if s.get("synthetic") else f"The WVS-7 file `{Path(str(s.get('source_file', '?'))).name}`")
        sub, smp = s.get("subgroups", {}), s.get("samples", {})
        n_ood = smp.get("ood")
        lines.append(
            f"**Data.** {source}: {fmt_count(s.get('n_respondents'))} respondents, "
            f"{fmt_count(s.get('n_questions'))} questions, {fmt_count(sub.get('train'))} training and "
            f"{fmt_count(sub.get('ood'))} out-of-distribution (OOD) subgroups; {fmt_count(smp.get('train'))} "
            f"training and {fmt_count(smp.get('ood'))} OOD samples.")
    else:
        lines.append("**Data.** This run has no prepared data summary.")
    preds = load_run_predictions(run_dir.parent)
    preds = preds[(preds["run"] == run_dir.name) & (preds["split"] == "ood")]
    from sgvalues.report.training import population_mode_accuracy, seed_accuracies

    what = {"zeroshot": "as released", "base": "before fine-tuning", "sft": "after LoRA fine-tuning"}
    rows = []
    for tag in [t for t in ("zeroshot", "base", "sft") if t in set(preds["tag"])]:
        sub_preds = preds[preds["tag"] == tag]
        sc = score(sub_preds).iloc[0]
        # say what the figure rests on: the whole split, or a part of it (evaluation.limit, trained questions)
        of_all = (" (the whole OOD split)" if n_ood and int(sc["n"]) == int(n_ood)
                  else f" of {fmt_count(n_ood)}" if n_ood else "")
        level = fmt_rate(sc["accuracy"])
        seeds = seed_accuracies(run_dir, "ood") if tag == "sft" else None
        if seeds and len(seeds) > 1:  # several training seeds: their mean and range, not one adapter
            level = (f"{fmt_rate(sum(seeds) / len(seeds))} (mean of {len(seeds)} training seeds, "
                     f"{fmt_rate(min(seeds))} to {fmt_rate(max(seeds))})")
        pop = population_mode_accuracy(run_dir, sub_preds, "ood")
        whose = " of the run's own adapter" if seeds and len(seeds) > 1 else ""
        rows.append(f"{level} {what[tag]} (population_mode, no persona: {fmt_rate(pop)}; NMAE "
                    f"{fmt_rate(sc['nmae'])}{whose}; "
                    f"{fmt_count(sc['n'])}{of_all} samples, {fmt_count(sub_preds['question_id'].nunique())} "
                    "questions)")
    if rows:
        lines.append("**Headline, structured answers on unseen subgroups.** Accuracy against the modal "
                     "answer, beside the population's modal answer on the same samples: " + "; ".join(rows) + ".")
    else:
        lines.append("**Headline.** This run has no structured predictions yet.")
    wr_path = run_dir / "judge" / "win_rates.csv"
    if wr_path.is_file():
        wr = pd.read_csv(wr_path)
        wr = wr[wr["dimension"] == "overall"]
        parts = [f"{r.candidate}: {fmt_rate(r.win_rate)} [{fmt_rate(r.ci_low)}, {fmt_rate(r.ci_high)}] over "
                 f"{fmt_count(r.n_used)} items" for r in wr.itertuples()]
        if parts:
            flat = bool(len(wr)) and bool((wr["ci_low"] == wr["ci_high"]).all())
            lines.append("**Open-ended answers.** Overall win rate over the reference (95% bootstrap "
                         "interval): " + "; ".join(parts) + "." + (
                             " Every interval has zero width: every item scored the same, so this judge told "
                             "none of the pairs apart (chapter 6 shows why)." if flat else ""))
    return "\n\n".join(lines) + "\n"
