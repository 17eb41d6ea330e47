"""Yardsticks that need no language model: baseline predictors and the survey's own noise.

A persona model is only interesting if it knows something about *subgroups* that the
population's answer does not already tell. This package gives every result its yardsticks
(``from sgvalues import baselines`` re-exports every public name):

- baseline predictors (:data:`BASELINES`: ``population_mode``, ``train_majority``,
  ``marginal_product``, ``first_option``, ``uniform``), fitted on the **train** split's
  modal-answer table only, each predicting every sample of both splits in the same predictions
  contract as a model (``<name>_<split>.csv``, ``model`` = ``baseline:<name>``);
- the **survey-noise reference** (:func:`noise_reference`): how often a fresh sample of each
  subgroup keeps its modal answer, the plug-in accuracy of a predictor that knew every
  subgroup's true answer distribution (an estimate, not a ceiling);
- :func:`compare_with_baselines`: each model state against each baseline on the same samples,
  with bootstrap intervals and permutation tests over questions.

Modules
-------
:mod:`~sgvalues.baselines.predictors`
    the baselines' definitions, fitting, predicting, writing and loading their tables.
:mod:`~sgvalues.baselines.noise`
    the survey-noise reference (multinomial resampling of each subgroup's answers).
:mod:`~sgvalues.baselines.comparison`
    model states against the baselines (paired bootstrap, sign-flip permutation test).
:mod:`~sgvalues.baselines.run_folder`
    a run folder's baselines kept up to date (:func:`ensure_run_baselines`) and the
    ``sgvalues baselines`` command.

What the book shows of them is in :mod:`sgvalues.report.comparison`.
"""

from __future__ import annotations

from sgvalues.baselines.comparison import compare_with_baselines
from sgvalues.baselines.noise import NOISE_COLUMNS, noise_per_sample, noise_reference
from sgvalues.baselines.predictors import (BASELINES, SMOOTHING, FittedBaselines, baseline_predictions, fit_baselines,
                                           load_baseline_predictions, population_modes, predict_baselines,
                                           prepared_population_modes, write_baselines)
from sgvalues.baselines.run_folder import configure_parser, ensure_run_baselines, main, run_baseline_predictions

__all__ = [
    "BASELINES",
    "SMOOTHING",
    "NOISE_COLUMNS",
    "FittedBaselines",
    "fit_baselines",
    "predict_baselines",
    "baseline_predictions",
    "write_baselines",
    "load_baseline_predictions",
    "run_baseline_predictions",
    "population_modes",
    "prepared_population_modes",
    "noise_per_sample",
    "noise_reference",
    "compare_with_baselines",
    "ensure_run_baselines",
    "configure_parser",
    "main",
]
