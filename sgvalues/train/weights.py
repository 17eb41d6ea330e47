"""Loss weights of the training samples (``training.reweight``), normalised to mean 1."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from sgvalues.train.data import TrainError, evaluate_questions, training_questions

__all__ = [
    "sample_weights",
    "base_subgroup_nmae",
]


def sample_weights(samples: Sequence[dict], scheme: str,
                   subgroup_nmae: dict[str, float] | None = None) -> np.ndarray:
    """Loss weight of each training sample under ``training.reweight`` ``scheme``, mean 1.

    - ``none``: every weight 1;
    - ``inverse_size``: :math:`w_i \\propto N_s / (G_s\\, n_i)`, normalised within the stratum:
      :math:`n_i` the subgroup's respondents who answered the question (``n_valid``),
      :math:`N_s = \\sum_j n_j` and :math:`G_s` the number of samples over the same question and
      stratum. A subgroup half the size of another counts twice as much, and a stratum of equal
      subgroups has weight 1 per sample whatever its number of subgroups, so a stratum's total
      weight grows with its number of subgroups (as unweighted) and not with its square;
    - ``error``: :math:`w_i \\propto \\mathrm{NMAE}_{g(i)}`, the base model's NMAE on subgroup
      :math:`g(i)` (``subgroup_nmae``, from :func:`base_subgroup_nmae`).

    Notes
    -----
    Weights are normalised to mean 1, :math:`w_i = u_i / \\bar u`, so the loss keeps its
    scale and ``none`` is today's loss.

    Examples
    --------
    >>> s = [{"question_id": "Q1", "stratum": "sex", "subgroup": g, "n_valid": n}
    ...      for g, n in (("sex:Male", 300), ("sex:Female", 100))]
    >>> sample_weights(s, "inverse_size").round(3).tolist()   # 400 / (2 x 300), 400 / (2 x 100), mean 1
    [0.5, 1.5]
    >>> sample_weights(s, "error", {"sex:Male": 0.1, "sex:Female": 0.3}).round(3).tolist()
    [0.5, 1.5]
    """
    if scheme == "none":
        return np.ones(len(samples))
    if scheme == "inverse_size":
        totals: Counter = Counter()
        counts: Counter = Counter()
        for i, smp in enumerate(samples):
            n = smp.get("n_valid")
            if isinstance(n, bool) or not isinstance(n, (int, float)) or not n > 0:
                raise TrainError(f"sample {smp.get('sample_id', i)}: key 'n_valid' = {n!r}: expected a "
                                 "positive count of respondents (inverse_size reweighting)")
            totals[(str(smp["question_id"]), str(smp["stratum"]))] += float(n)
            counts[(str(smp["question_id"]), str(smp["stratum"]))] += 1
        keys = [(str(smp["question_id"]), str(smp["stratum"])) for smp in samples]
        raw = np.array([totals[k] / (counts[k] * float(smp["n_valid"])) for k, smp in zip(keys, samples)])
    elif scheme == "error":
        if subgroup_nmae is None:
            raise TrainError("training.reweight = 'error' needs the base model's NMAE per subgroup")
        missing = sorted({str(smp["subgroup"]) for smp in samples} - set(subgroup_nmae))
        if missing:
            raise TrainError(f"training.reweight = 'error': no base-model NMAE for subgroup(s) {missing[:5]}")
        raw = np.array([float(subgroup_nmae[str(smp["subgroup"])]) for smp in samples])
        if not raw.sum() > 0:
            raise TrainError("training.reweight = 'error': the base model's NMAE is 0 on every training "
                             "subgroup; nothing to weight by")
    else:
        raise TrainError(f"training.reweight = {scheme!r}: expected one of 'none', 'inverse_size', 'error'")
    return raw / raw.mean()


def base_subgroup_nmae(params, run_dir: str | Path, cache=True) -> dict[str, float]:
    """The base model's NMAE per train subgroup, on the train samples of :func:`training_questions`.

    One evaluation pass (:func:`evaluate_questions`, tag ``base-weights``, every sample of those
    questions; cached answers make it free when notebook 04 has evaluated them) for
    ``training.reweight: error``.
    """
    from sgvalues import metrics

    df = evaluate_questions(params, run_dir, "train", "base-weights", training_questions(params, run_dir),
                            limit=sys.maxsize, cache=cache, log=None)
    per = metrics.aggregate(df, "subgroup")
    return {str(g): float(v) for g, v in zip(per["subgroup"], per["nmae"])}
