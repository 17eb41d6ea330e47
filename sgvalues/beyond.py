"""Beyond the paper: training objectives and fairness-aware sampling, compared on one run.

The paper names three open problems: modal-answer supervision mutes minority views, SFT widens
the NMAE gap between subgroups, and persona answers move with the order of the options. Chapter
08 answers them on the same questions and samples as chapter 04 by training **variants** of the
run's recipe, each a set of ``training`` overrides (see :class:`sgvalues.params.TrainingParams`):

- ``modal``: the paper's objective, chapter 04's adapter itself (no retraining);
- ``distribution``: cross-entropy against each subgroup's whole answer distribution;
- ``modal + error``: the modal objective with samples weighted by the base model's per-subgroup
  NMAE, so the subgroups it serves worst count more.

Every variant answers the same samples as the base model (``predictions/<tag>_<split>.csv``,
tag :func:`variant_tag`), so the fairness statistics of :mod:`sgvalues.fairness` apply to each
variant as a "run" whose ``base`` and ``sft`` states are the untuned model and that variant
(:func:`variant_predictions`). Option-order robustness is :mod:`sgvalues.option_order`.

Example
-------
>>> variant_tag("modal"), variant_tag("modal + error")
('sft', 'variant-modal-error')
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

__all__ = ["VARIANTS", "variant_tag", "variant_params", "variant_dir", "train_variants", "evaluate_variants",
           "variant_predictions"]

#: the variants chapter 08 trains: name -> ``training`` overrides of the run's recipe
VARIANTS: dict[str, dict] = {
    "modal": {},
    "distribution": {"objective": "distribution"},
    "modal + error": {"reweight": "error"},
}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def variant_tag(name: str, overrides: Mapping | None = None) -> str:
    """Predictions tag of a variant: ``sft`` for the unchanged recipe (chapter 04's adapter),
    ``variant-<slug>`` otherwise."""
    overrides = VARIANTS.get(name, {}) if overrides is None else overrides
    return "sft" if not overrides else f"variant-{_slug(name)}"


def variant_params(params, overrides: Mapping):
    """``params`` with ``training`` fields replaced (validated as on load).

    >>> from sgvalues.params import Params
    >>> p = variant_params(Params.from_dict({"name": "x"}), {"objective": "distribution"})
    >>> p.training.objective, p.name
    ('distribution', 'x')
    """
    from sgvalues.params import Params

    return Params.from_dict({**params.to_dict(), "training": {**params.to_dict()["training"], **dict(overrides)}},
                            source=f"variant of {params.name}")


def variant_dir(run_dir: str | Path, name: str, overrides: Mapping | None = None) -> Path:
    """Where a variant's adapter is trained: the run folder for the unchanged recipe, else
    ``<run>/variants/<slug>/``."""
    overrides = VARIANTS.get(name, {}) if overrides is None else overrides
    return Path(run_dir) if not overrides else Path(run_dir) / "variants" / _slug(name)


def train_variants(params, run_dir: str | Path, variants: Mapping[str, Mapping] = VARIANTS,
                   verbose: bool = False) -> dict[str, Path]:
    """Train (or find, when trained before with the same inputs) one adapter per variant.

    Each is :func:`sgvalues.train.train_run` with the overridden recipe into :func:`variant_dir`:
    resumable, cached by its inputs, on the run's own train samples.
    """
    from sgvalues import train

    return {name: train.train_run(variant_params(params, ov), run_dir, out_dir=variant_dir(run_dir, name, ov),
                                  verbose=verbose)
            for name, ov in variants.items()}


def evaluate_variants(params, run_dir: str | Path, adapters: Mapping[str, Path],
                      splits: Sequence[str] = ("ood", "train"), limit: int | None = None, cache=True,
                      variants: Mapping[str, Mapping] = VARIANTS) -> pd.DataFrame:
    """The base model and every variant on the samples of the trained questions, per split.

    Writes ``predictions/<tag>_<split>.csv`` (base: ``base``; variants: :func:`variant_tag`)
    through :func:`sgvalues.train.evaluate_questions`; answers already in the response cache
    (chapter 04's) cost nothing. Returns :func:`variant_predictions`.
    """
    from sgvalues import train

    questions = train.training_questions(params, run_dir)
    for split in splits:
        train.evaluate_questions(params, run_dir, split, "base", questions, limit=limit, cache=cache, log=None)
        for name, adapter in adapters.items():
            train.evaluate_questions(params, run_dir, split, variant_tag(name, variants.get(name)), questions,
                                     adapter=adapter, limit=limit, cache=cache, log=None)
    return variant_predictions(run_dir, list(adapters), splits, variants)


def variant_predictions(run_dir: str | Path, names: Sequence[str], splits: Sequence[str] = ("ood", "train"),
                        variants: Mapping[str, Mapping] = VARIANTS) -> pd.DataFrame:
    """Every variant's predictions beside the base model's, shaped for :mod:`sgvalues.fairness`.

    One block per variant: ``run`` and ``label`` are the variant's name, ``tag`` is ``base``
    (the untuned model, the same rows in every block) or ``sft`` (the variant), restricted to
    the samples both answered.
    """
    from sgvalues.evaluate import load_predictions, predictions_path

    blocks = []
    for split in splits:
        base = load_predictions(predictions_path(run_dir, "base", split))
        for name in names:
            sft = load_predictions(predictions_path(run_dir, variant_tag(name, variants.get(name)), split))
            common = set(base["sample_id"]) & set(sft["sample_id"])
            for tag, df in (("base", base), ("sft", sft)):
                blocks.append(df[df["sample_id"].isin(common)].assign(run=name, label=name, tag=tag, split=split))
    return pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame()

