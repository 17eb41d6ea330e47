"""Calibration of a readout: is the modal answer's confidence right, and is the distribution inside the noise?

Two questions for chapter 09, both pure functions on tables:

1. **Confidence.** When a readout puts probability :math:`c` on its modal answer, is that answer
   the subgroup's modal answer a share :math:`c` of the time? :func:`reliability_table` bins the
   confidences into equal-width bins and :func:`expected_calibration_error` (ECE) weighs each
   bin's gap between accuracy and mean confidence by its share of cells.
   :func:`modal_confidence` reads confidence and correctness from a predictions table.
2. **Sampling uncertainty.** A subgroup of about 30 respondents has a noisy observed
   distribution, so a prediction a little off may be as close as a fresh sample would be.
   :func:`sampling_region` resamples the cell's respondents (a multinomial draw of ``n_valid``
   answers from the observed shares, seeded by ``(seed, sample_id)`` as in
   :mod:`sgvalues.baselines.noise`) and takes the ``level`` quantile (95th percentile) of the
   resampled distributions' distance to the observed one.

   **The rule:** a predicted distribution lies *inside the sampling-uncertainty region* when
   its distance (total variation or Jensen-Shannon distance) to the observed distribution is
   at most that quantile, i.e. it is no farther from the data than 95% of bootstrap
   re-samples of the same respondents are. :func:`inside_sampling_region` applies it per cell.

Example
-------
>>> expected_calibration_error([0.9, 0.9, 0.3], [1, 0, 0], n_bins=10)   # (2/3)|0.5-0.9| + (1/3)|0-0.3|
0.36666666666666664
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from sgvalues.metrics import js_distance, total_variation
from sgvalues.modal import parse_distribution

__all__ = [
    "RELIABILITY_COLUMNS",
    "REGION_DISTANCES",
    "reliability_table",
    "expected_calibration_error",
    "modal_confidence",
    "bootstrap_distances",
    "sampling_region",
    "inside_sampling_region",
]

#: columns of :func:`reliability_table`
RELIABILITY_COLUMNS = ["bin", "lo", "hi", "n", "share", "confidence", "accuracy", "gap"]

#: distances :func:`sampling_region` can use
REGION_DISTANCES = ("tv", "jsd")


def _confidence_arrays(confidence, correct) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(confidence, dtype=float).ravel()
    y = np.asarray(correct, dtype=float).ravel()
    if c.shape != y.shape:
        raise ValueError(f"confidence ({c.size}) and correct ({y.size}) differ in length")
    if np.isnan(c).any() or (c < 0).any() or (c > 1).any():
        raise ValueError("confidence: expected values in [0, 1] with none missing")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("correct: expected 0/1 (or booleans) with none missing")
    return c, y


def reliability_table(confidence, correct, n_bins: int = 10) -> pd.DataFrame:
    """The reliability diagram's table: per equal-width confidence bin, mean confidence and accuracy.

    Parameters
    ----------
    confidence : array-like of float in [0, 1]
        The probability each cell's readout puts on its modal answer.
    correct : array-like of 0/1
        Whether that modal answer is the subgroup's modal answer.
    n_bins : int
        Bins :math:`B_b = [b/B, (b+1)/B)`, the last one closed at 1.

    Returns
    -------
    DataFrame
        :data:`RELIABILITY_COLUMNS`, one row per bin (empty bins have ``n = 0`` and NaN means):
        ``share`` = :math:`n_b / N`, ``gap`` = accuracy − confidence (negative: over-confident).

    Examples
    --------
    >>> t = reliability_table([0.1, 0.95, 0.85], [0, 1, 0], n_bins=2)
    >>> t[["bin", "n", "confidence", "accuracy"]].round(4).to_dict("list")
    {'bin': [0, 1], 'n': [1, 2], 'confidence': [0.1, 0.9], 'accuracy': [0.0, 0.5]}
    """
    if int(n_bins) < 1:
        raise ValueError(f"n_bins = {n_bins}: expected >= 1")
    c, y = _confidence_arrays(confidence, correct)
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    idx = np.clip(np.floor(c * n_bins).astype(int), 0, n_bins - 1)
    n = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(idx, weights=c, minlength=n_bins) / n
        acc = np.bincount(idx, weights=y, minlength=n_bins) / n
    return pd.DataFrame({"bin": np.arange(n_bins), "lo": edges[:-1], "hi": edges[1:], "n": n.astype(int),
                         "share": n / max(len(c), 1), "confidence": conf, "accuracy": acc,
                         "gap": acc - conf})[RELIABILITY_COLUMNS]


def expected_calibration_error(confidence, correct, n_bins: int = 10) -> float:
    """Expected calibration error with equal-width bins.

    Notes
    -----
    .. math:: \\mathrm{ECE} = \\sum_{b=1}^{B} \\frac{n_b}{N}\\,\\big|\\mathrm{acc}(b) - \\mathrm{conf}(b)\\big|

    over the non-empty bins of :func:`reliability_table`. 0 is perfectly calibrated; NaN for
    no cells.

    Examples
    --------
    >>> expected_calibration_error([0.75, 0.75, 0.75, 0.75], [1, 1, 1, 0])
    0.0
    """
    t = reliability_table(confidence, correct, n_bins)
    if t["n"].sum() == 0:
        return float("nan")
    t = t[t["n"] > 0]
    return float((t["share"] * (t["accuracy"] - t["confidence"]).abs()).sum())


def modal_confidence(predictions: pd.DataFrame, probs: str = "probs") -> pd.DataFrame:
    """Per cell: the readout's modal code, its probability (confidence) and whether it is the target.

    Parameters
    ----------
    predictions : DataFrame
        Needs ``target`` and the ``probs`` column (JSON or mapping code -> probability);
        rows with a blank ``probs`` are left out (generate mode, a failed answer).
    probs : str
        The column to read, e.g. a temperature-scaled readout's.

    Returns
    -------
    DataFrame
        The rows kept, with ``modal`` (ties to the lowest code, as ``evaluate`` picks),
        ``confidence`` (its probability after renormalising) and ``correct`` (0/1).

    Examples
    --------
    >>> df = pd.DataFrame({"target": [1, 2, 1], "probs": ['{"1": 0.7, "2": 0.3}', '{"1": 0.5, "2": 0.5}', ""]})
    >>> modal_confidence(df)[["modal", "confidence", "correct"]].to_dict("list")
    {'modal': [1, 1], 'confidence': [0.7, 0.5], 'correct': [1, 0]}
    """
    for col in ("target", probs):
        if col not in predictions.columns:
            raise ValueError(f"predictions: missing column {col!r}; expected target and {probs}")
    keep, modal, conf = [], [], []
    for i, raw in zip(predictions.index, predictions[probs]):
        if raw is None or (isinstance(raw, float) and np.isnan(raw)) or (isinstance(raw, str) and not raw.strip()):
            continue
        shares = parse_distribution(raw)
        total = sum(shares.values())
        if not shares or total <= 0:
            continue
        codes = sorted(shares)
        best = max(codes, key=lambda c: (shares[c], -c))
        keep.append(i)
        modal.append(best)
        conf.append(shares[best] / total)
    out = predictions.loc[keep].copy()
    out["modal"] = pd.Series(modal, index=out.index, dtype="int64")
    out["confidence"] = pd.Series(conf, index=out.index, dtype=float)
    target = pd.to_numeric(out["target"], errors="coerce")
    out["correct"] = (out["modal"] == target).astype(int)
    return out


def _distance(observed: np.ndarray, others: np.ndarray, distance: str) -> np.ndarray:
    observed = np.broadcast_to(observed, others.shape)
    return total_variation(observed, others) if distance == "tv" else js_distance(observed, others)


def bootstrap_distances(observed, n_valid: int, n_boot: int = 500, distance: str = "tv", seed: int = 0,
                        key: str = "") -> np.ndarray:
    """Distances of ``n_boot`` bootstrap re-samples of a cell's respondents to its observed shares.

    Parameters
    ----------
    observed : array-like
        The cell's observed answer shares over its codes.
    n_valid : int
        Respondents behind them (each draw redraws this many).
    n_boot : int
        Bootstrap draws.
    distance : {"tv", "jsd"}
        Total variation or Jensen-Shannon distance (base 2).
    seed, key : int, str
        The draws are seeded by ``(seed, crc32(key))``, so a cell (key = its ``sample_id``)
        gets the same draws in any subset.

    Notes
    -----
    With observed shares :math:`\\hat p` from :math:`n` respondents, draw
    :math:`C^{(b)} \\sim \\mathrm{Multinomial}(n, \\hat p)` and return
    :math:`d_b = D(C^{(b)}/n, \\hat p)`, :math:`b = 1 \\dots B`. Their mean is the cell's
    *sampling floor*: how far a fresh survey of the same size lands from this one on average.

    Examples
    --------
    >>> bootstrap_distances([1.0, 0.0], 30, n_boot=3).tolist()   # nobody answers 2: no variation
    [0.0, 0.0, 0.0]
    """
    if distance not in REGION_DISTANCES:
        raise ValueError(f"distance = {distance!r}: expected one of {', '.join(REGION_DISTANCES)}")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot = {n_boot}: expected >= 1")
    n = int(n_valid)
    if n < 1:
        raise ValueError(f"n_valid = {n_valid}: expected at least one respondent")
    p = np.asarray(observed, dtype=float)
    if p.ndim != 1 or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"observed = {observed!r}: expected non-negative shares with a positive sum")
    p = p / p.sum()
    rng = np.random.default_rng([int(seed), zlib.crc32(str(key).encode())])
    draws = rng.multinomial(n, p, size=int(n_boot)) / n
    return _distance(p, draws, distance)


def sampling_region(observed, n_valid: int, n_boot: int = 500, level: float = 0.95, distance: str = "tv",
                    seed: int = 0, key: str = "") -> float:
    """The radius of a cell's sampling-uncertainty region: a quantile of bootstrap distances.

    Parameters
    ----------
    observed, n_valid, n_boot, distance, seed, key
        As in :func:`bootstrap_distances`.
    level : float
        The quantile, 0.95 by default.

    Notes
    -----
    The radius is the ``level`` quantile of :math:`d_1 \\dots d_B` (:func:`bootstrap_distances`).
    A prediction :math:`q` is inside the region when :math:`D(q, \\hat p) \\le` radius: it is no
    farther from the data than ``level`` of the re-samples of the same respondents are.

    Examples
    --------
    >>> sampling_region([1.0, 0.0], 30)   # nobody ever answers 2: every re-sample is the same
    0.0
    """
    if not 0 < level < 1:
        raise ValueError(f"level = {level}: expected a number in (0, 1)")
    return float(np.quantile(bootstrap_distances(observed, n_valid, n_boot, distance, seed, key), level))


def inside_sampling_region(predictions: pd.DataFrame, probs: str = "probs", n_boot: int = 500, level: float = 0.95,
                           distance: str = "tv", seed: int = 0, cache: dict | None = None) -> pd.DataFrame:
    """Per cell: the prediction's distance to the observed distribution, the region's radius, inside or not.

    Parameters
    ----------
    predictions : DataFrame
        Needs ``sample_id``, ``distribution`` (observed shares, JSON), ``n_valid`` (merge it
        from the samples, :func:`sgvalues.split.load_samples_frame`; ``n_effective`` is used
        instead where present, as in :mod:`sgvalues.baselines.noise`) and ``probs``. Rows
        without ``probs`` or ``distribution`` are left out.
    probs, n_boot, level, distance, seed
        As in :func:`modal_confidence` and :func:`sampling_region`.
    cache : dict, optional
        Radii already computed, keyed by ``(sample_id, n, n_boot, level, distance, seed)``; pass
        the same dict when scoring several readouts of the same cells so each cell's bootstrap
        runs once (and every readout is judged against the same region).

    Returns
    -------
    DataFrame
        The rows kept with ``distance`` (the prediction's), ``radius`` and ``inside`` (bool);
        ``inside.mean()`` is the share of cells whose prediction lies in the region.
    """
    need = {"sample_id", "distribution", "n_valid", probs}
    missing = sorted(need - set(predictions.columns))
    if missing:
        raise ValueError(f"predictions: missing column(s) {missing}; expected {sorted(need)} "
                         "(n_valid comes from the samples)")
    rows, dist, radius = [], [], []
    for i, row in predictions.iterrows():
        q_raw, p_raw = row[probs], row["distribution"]
        if any(v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip())
               for v in (q_raw, p_raw)):
            continue
        q, p = parse_distribution(q_raw), parse_distribution(p_raw)
        codes = sorted(set(q) | set(p))
        qv = np.array([q.get(c, 0.0) for c in codes])
        pv = np.array([p.get(c, 0.0) for c in codes])
        if qv.sum() <= 0 or pv.sum() <= 0:
            continue
        n = row.get("n_effective")
        n = row["n_valid"] if n is None or pd.isna(n) else n
        n = int(round(float(n)))
        key = (str(row["sample_id"]), n, int(n_boot), float(level), distance, int(seed))
        if cache is None or key not in cache:
            r = sampling_region(pv, n, n_boot=n_boot, level=level, distance=distance, seed=seed, key=key[0])
            if cache is not None:
                cache[key] = r
        r = cache[key] if cache is not None else r
        rows.append(i)
        dist.append(float(_distance(pv / pv.sum(), (qv / qv.sum())[None, :], distance)[0]))
        radius.append(r)
    out = predictions.loc[rows].copy()
    out["distance"] = pd.Series(dist, index=out.index, dtype=float)
    out["radius"] = pd.Series(radius, index=out.index, dtype=float)
    out["inside"] = out["distance"] <= out["radius"] + 1e-12
    return out
