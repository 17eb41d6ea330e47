"""Readouts: ways to read a subgroup's answer distribution out of a model, and how far each lands.

A model "knows" an answer distribution when some readout of it matches the subgroup's; it
"simulates" one when the readout used in practice does. Meister et al. (NAACL 2025) show the
gap is large: raw option log-probabilities are over-confident, one fitted temperature fixes
much of it, and asking the model for percentages ("verbalised") can do better still. This
module holds the pure pieces of that comparison (chapter 09):

* :func:`temperature_scale` and :func:`fit_temperature`: one temperature :math:`T` fitted on
  the train split's cells by minimising their mean Jensen-Shannon distance or cross-entropy
  (``scipy.optimize.minimize_scalar`` on :math:`\\log T`, started from a grid);
* :func:`total_variation` and :func:`representativeness` (:math:`1 - W_1 / W_1^{max}`, OpinionQA's
  score), beside the project's JSD and Wasserstein (:mod:`sgvalues.metrics`, the one scorer);
* :func:`parse_verbalised`: a strict parser of a verbalised distribution. An answer that does
  not give every option exactly once, as a percentage, summing to 100 within a tolerance, is
  ``unparseable`` with a reason; it is counted, never guessed.

Distributions are arrays over a question's option codes in ascending order (or mappings code ->
share, :func:`sgvalues.modal.parse_distribution`).

Example
-------
>>> import numpy as np
>>> p = np.array([0.7, 0.2, 0.1])
>>> temperature_scale(p, 1.0).round(3).tolist()
[0.7, 0.2, 0.1]
>>> float(total_variation(p, [0.5, 0.3, 0.2]))
0.2
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from sgvalues.constants import READOUTS, TEMPERATURE_OBJECTIVES
from sgvalues.metrics import js_distance, total_variation

__all__ = [
    "READOUTS",
    "TEMPERATURE_OBJECTIVES",
    "PROB_FLOOR",
    "temperature_scale",
    "cell_losses",
    "TemperatureFit",
    "fit_temperature",
    "total_variation",
    "representativeness",
    "VerbalisedAnswer",
    "parse_verbalised",
    "verbalised_cannot_parse",
    "READOUT_COLUMNS",
    "fit_temperature_table",
    "with_temperature",
    "readout_scores",
    "sampling_floor",
    "READOUT_BASELINES",
    "READOUT_TABLE_COLUMNS",
    "readout_path",
    "run_readouts",
    "sampled_distribution",
    "readout_predictions",
]


#: probabilities are floored here before taking logs: stored ``probs`` are rounded to 6 decimals,
#: so an option can read exactly 0 though the model gave it a tiny probability
PROB_FLOOR = 1e-9


def _rows(probs) -> np.ndarray:
    arr = np.asarray(probs, dtype=float)
    if arr.ndim not in (1, 2) or arr.shape[-1] < 1:
        raise ValueError(f"probabilities: expected a vector or a (cells, options) matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError("probabilities: expected finite values >= 0")
    if (arr.sum(axis=-1) <= 0).any():
        raise ValueError("probabilities: a row sums to 0; expected some mass on an option")
    return arr


def temperature_scale(probs, temperature: float, floor: float = PROB_FLOOR) -> np.ndarray:
    """Option probabilities re-tempered by one temperature.

    Parameters
    ----------
    probs : array-like, shape (k,) or (n, k)
        Option probabilities (each row is renormalised first).
    temperature : float
        :math:`T > 0`; :math:`T > 1` flattens, :math:`T < 1` sharpens, :math:`T = 1` keeps.
    floor : float
        Probabilities below it are raised to it before the log (see :data:`PROB_FLOOR`).

    Returns
    -------
    ndarray
        The same shape, rows summing to 1.

    Notes
    -----
    .. math:: q_T(x) = \\frac{\\exp(\\log p(x) / T)}{\\sum_y \\exp(\\log p(y) / T)}
              = \\frac{p(x)^{1/T}}{\\sum_y p(y)^{1/T}}

    the softmax of the option log-probabilities divided by :math:`T`.

    Examples
    --------
    >>> temperature_scale([0.8, 0.2], 2.0).round(4).tolist()   # sqrt(.8), sqrt(.2) renormalised
    [0.6667, 0.3333]
    """
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature = {temperature}: expected a finite number > 0")
    p = _rows(probs)
    p = p / p.sum(axis=-1, keepdims=True)
    z = np.log(np.maximum(p, floor)) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def cell_losses(predicted, observed, objective: str = "jsd") -> np.ndarray:
    """Per-cell loss of predicted against observed distributions (rows of two (n, k) matrices).

    Notes
    -----
    ``jsd``: the Jensen-Shannon distance, base 2, as :mod:`sgvalues.metrics` scores it
    (``scipy.spatial.distance.jensenshannon``). ``nll``: the cross-entropy of the observed
    shares under the prediction, :math:`-\\sum_x p(x) \\log \\max(q(x), \\epsilon)` in nats
    (the mean negative log-likelihood of one respondent's answer).

    Examples
    --------
    >>> cell_losses([[0.5, 0.5]], [[1.0, 0.0]], "nll").round(4).tolist()   # -log 0.5
    [0.6931]
    """
    q, p = np.atleast_2d(_rows(predicted)), np.atleast_2d(_rows(observed))
    if q.shape != p.shape:
        raise ValueError(f"predicted {q.shape} and observed {p.shape} distributions differ in shape")
    q = q / q.sum(axis=1, keepdims=True)
    p = p / p.sum(axis=1, keepdims=True)
    if objective == "jsd":
        return js_distance(p, q)
    if objective == "nll":
        return -(p * np.log(np.maximum(q, PROB_FLOOR))).sum(axis=1)
    raise ValueError(f"objective = {objective!r}: expected one of {', '.join(TEMPERATURE_OBJECTIVES)}")


@dataclass(frozen=True)
class TemperatureFit:
    """The fitted temperature and the mean loss at it and at :math:`T = 1` (the raw log-probs)."""

    temperature: float
    objective: str
    loss: float
    loss_at_one: float
    n_cells: int
    #: the temperatures searched; a fit at either end means the loss still falls beyond it
    bounds: tuple = (0.05, 20.0)

    @property
    def at_bound(self) -> bool:
        """Whether the fitted temperature lies at an end of the searched range (within 0.1 %)."""
        lo, hi = self.bounds
        return self.temperature <= lo * 1.001 or self.temperature >= hi / 1.001


def _grouped(probs: Sequence, observed: Sequence) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cells stacked by their number of options (questions differ in scale length)."""
    if len(probs) != len(observed):
        raise ValueError(f"{len(probs)} predicted but {len(observed)} observed distributions; expected one per cell")
    groups: dict[int, tuple[list, list]] = {}
    for i, (q, p) in enumerate(zip(probs, observed)):
        q, p = np.asarray(q, dtype=float), np.asarray(p, dtype=float)
        if q.shape != p.shape or q.ndim != 1:
            raise ValueError(f"cell {i}: predicted shape {q.shape} and observed shape {p.shape}; "
                             "expected two vectors over the same options")
        groups.setdefault(len(q), ([], []))
        groups[len(q)][0].append(q)
        groups[len(q)][1].append(p)
    return [(_rows(np.stack(qs)), _rows(np.stack(ps))) for qs, ps in groups.values()]


def _mean_loss(groups, temperature: float, objective: str) -> float:
    total = sum(cell_losses(temperature_scale(q, temperature), p, objective).sum() for q, p in groups)
    return float(total / sum(len(q) for q, _ in groups))


def fit_temperature(probs: Sequence, observed: Sequence, objective: str = "jsd",
                    bounds: tuple[float, float] = (0.05, 20.0), grid: int = 41) -> TemperatureFit:
    """One temperature for every cell, fitted by minimising the mean loss over (train) cells.

    Parameters
    ----------
    probs : sequence of 1-D arrays
        Each cell's option probabilities (the log-prob readout), codes ascending.
    observed : sequence of 1-D arrays
        Each cell's observed answer shares over the same codes.
    objective : {"jsd", "nll"}
        The loss (:func:`cell_losses`).
    bounds : (float, float)
        The temperatures searched, :math:`0 < T_{lo} < T_{hi}`.
    grid : int
        Points of the log-spaced starting grid; the best grid point's neighbours bracket the
        bounded search, so a loss with more than one dip is not left in the wrong one.

    Returns
    -------
    TemperatureFit

    Notes
    -----
    .. math:: \\hat T = \\arg\\min_{T} \\frac1N \\sum_{i=1}^N L\\big(q_{T,i}, p_i\\big)

    with :math:`q_{T,i}` from :func:`temperature_scale`, searched over :math:`\\log T`
    (``scipy.optimize.minimize_scalar``, method ``bounded``, ``xatol`` 1e-6). Fit it on the
    train split only and apply it to the OOD split.

    Examples
    --------
    >>> p = [np.array([0.5, 0.3, 0.2]), np.array([0.1, 0.6, 0.3])]
    >>> fit = fit_temperature([temperature_scale(x, 0.5) for x in p], p)   # sharpened by T = 0.5
    >>> round(fit.temperature, 3), round(fit.loss, 6)
    (2.0, 0.0)
    """
    from scipy.optimize import minimize_scalar

    if objective not in TEMPERATURE_OBJECTIVES:
        raise ValueError(f"objective = {objective!r}: expected one of {', '.join(TEMPERATURE_OBJECTIVES)}")
    lo, hi = (float(b) for b in bounds)
    if not (0 < lo < hi and np.isfinite(hi)):
        raise ValueError(f"bounds = {bounds}: expected 0 < low < high")
    if len(probs) == 0:
        raise ValueError("fit_temperature: no cells; expected the train split's cells with probs and a distribution")
    groups = _grouped(probs, observed)
    logs = np.linspace(np.log(lo), np.log(hi), max(int(grid), 3))
    losses = np.array([_mean_loss(groups, float(np.exp(t)), objective) for t in logs])
    best = int(np.argmin(losses))
    a, b = logs[max(best - 1, 0)], logs[min(best + 1, len(logs) - 1)]
    res = minimize_scalar(lambda t: _mean_loss(groups, float(np.exp(t)), objective), bounds=(a, b),
                          method="bounded", options={"xatol": 1e-6})
    t_hat, loss = (float(np.exp(res.x)), float(res.fun)) if res.fun <= losses[best] \
        else (float(np.exp(logs[best])), float(losses[best]))
    return TemperatureFit(temperature=t_hat, objective=objective, loss=loss,
                          loss_at_one=_mean_loss(groups, 1.0, objective), n_cells=int(len(probs)), bounds=(lo, hi))


def representativeness(p, q, codes: Sequence[float], scale_min: float | None = None,
                       scale_max: float | None = None) -> float:
    """OpinionQA's representativeness of ``q`` for ``p``: :math:`1 - W_1(p, q) / W_1^{max}`.

    Parameters
    ----------
    p, q : array-like or mapping code -> share
        Two distributions over ``codes`` (a mapping is read at ``codes``, missing codes 0).
    codes : sequence of numbers
        The ordinal option codes, the support of both distributions.
    scale_min, scale_max : float, optional
        The ends of the question's scale; default the smallest and largest of ``codes``.

    Notes
    -----
    :math:`W_1` is the 1-Wasserstein distance on the codes themselves
    (``scipy.stats.wasserstein_distance(codes, codes, p, q)``). The largest it can be on a
    scale is when all mass sits at one end in :math:`p` and at the other in :math:`q`:
    :math:`W_1^{max} = c_{max} - c_{min}`. So the score is 1 for identical distributions and 0
    for opposite extremes; it equals one minus :mod:`sgvalues.metrics`' ``wasserstein`` (codes
    scaled to [0, 1]).

    Examples
    --------
    >>> representativeness([1, 0, 0, 0], [0, 0, 0, 1], [1, 2, 3, 4])
    0.0
    >>> representativeness({1: 0.5, 2: 0.5}, {2: 1.0}, [1, 2, 3])   # W1 = 0.5 of max 2
    0.75
    """
    from scipy.stats import wasserstein_distance

    codes = [float(c) for c in codes]
    if len(codes) < 2 or len(set(codes)) != len(codes):
        raise ValueError(f"codes = {codes}: expected at least two distinct option codes")

    def vec(d, name):
        if isinstance(d, Mapping):
            d = [float(d.get(int(c), d.get(c, 0.0))) for c in codes]
        v = np.asarray(d, dtype=float)
        if v.shape != (len(codes),):
            raise ValueError(f"{name}: {v.shape[0] if v.ndim else 0} shares for {len(codes)} codes")
        return _rows(v)

    lo = min(codes) if scale_min is None else float(scale_min)
    hi = max(codes) if scale_max is None else float(scale_max)
    if not hi > lo:
        raise ValueError(f"scale_min = {lo}, scale_max = {hi}: expected scale_max > scale_min")
    w1 = wasserstein_distance(codes, codes, vec(p, "p"), vec(q, "q"))
    return float(1.0 - w1 / (hi - lo))


@dataclass(frozen=True)
class VerbalisedAnswer:
    """A parsed verbalised distribution: ``status`` ``ok`` with ``distribution`` (code -> share,
    summing to 1), or ``unparseable`` with ``reason`` and an empty distribution."""

    status: str
    distribution: dict
    reason: str = ""

    def probs_json(self) -> str:
        """The distribution as the predictions contract's ``probs`` JSON (``""`` when unparseable)."""
        return json.dumps({str(c): round(v, 6) for c, v in self.distribution.items()}) if self.distribution else ""


_NUMBER = r"(\d+(?:\.\d+)?)"
_LINE = re.compile(r"^\s*(?:option\s+)?(-?\d+)\s*[:=\-\u2013)]\s*" + _NUMBER + r"\s*%?\s*[,;.]?\s*$", re.IGNORECASE)


def _unparseable(reason: str) -> VerbalisedAnswer:
    return VerbalisedAnswer(status="unparseable", distribution={}, reason=reason)


def parse_verbalised(text, option_codes: Sequence, tolerance: float = 2.0) -> VerbalisedAnswer:
    """Strictly parse a verbalised answer distribution: a percentage for every option.

    Parameters
    ----------
    text : str
        The model's answer: either a JSON object ``{"1": 40, "2": 60}`` or one line per option,
        ``<code>: <percent>`` (``=``, ``-``, ``)`` also separate; a trailing ``%`` is allowed).
        A fenced code block around it is ignored.
    option_codes : sequence
        The question's option codes.
    tolerance : float
        How far, in percentage points, the percentages may sum from 100.

    Returns
    -------
    VerbalisedAnswer
        ``ok`` with the percentages divided by their sum, or ``unparseable`` with the first
        reason found: empty answer, a line that is not ``code: percent``, a code that is not an
        option, a code given twice, options missing, a negative or non-numeric value, a sum
        outside :math:`100 \\pm` ``tolerance``. Nothing is guessed: an answer with a missing
        option is not completed with zeros.

    Examples
    --------
    >>> parse_verbalised("1: 30%\\n2: 70%", [1, 2]).distribution
    {1: 0.3, 2: 0.7}
    >>> parse_verbalised("1: 30%", [1, 2]).reason
    'options missing: [2]'
    >>> parse_verbalised('{"1": 50, "2": 40}', [1, 2]).reason
    'percentages sum to 90 (expected 100 +/- 2)'
    """
    codes = [int(c) for c in option_codes]
    if not codes:
        raise ValueError("parse_verbalised: option_codes is empty; expected the question's codes")
    if not tolerance >= 0:  # NaN too: it would let any sum through
        raise ValueError(f"tolerance = {tolerance}: expected >= 0 percentage points")
    if text is None or not str(text).strip():
        return _unparseable("empty answer")
    body = str(text).strip()
    fence = re.fullmatch(r"```[a-zA-Z]*\s*(.*?)\s*```", body, re.DOTALL)
    if fence:
        body = fence.group(1).strip()
    pairs: list[tuple[str, object]] = []
    if body.startswith("{"):
        try:
            obj = json.loads(body)
        except json.JSONDecodeError as exc:
            return _unparseable(f"malformed JSON: {exc.msg}")
        if not isinstance(obj, dict):
            return _unparseable("JSON is not an object of code -> percentage")
        pairs = list(obj.items())
    else:
        for n, line in enumerate(body.splitlines(), 1):
            if not line.strip():
                continue
            m = _LINE.match(line)
            if not m:
                return _unparseable(f"line {n} is not 'code: percent': {line.strip()[:60]!r}")
            pairs.append((m.group(1), m.group(2)))
    shares: dict[int, float] = {}
    for key, value in pairs:
        try:
            code = int(str(key).strip())
        except ValueError:
            return _unparseable(f"key {key!r} is not an option code")
        if code not in codes:
            return _unparseable(f"code {code} is not an option (options {codes})")
        if code in shares:
            return _unparseable(f"code {code} given twice")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return _unparseable(f"code {code}: value {value!r} is not a number")
        try:
            v = float(str(value).strip().rstrip("%"))
        except ValueError:
            return _unparseable(f"code {code}: value {value!r} is not a number")
        if not np.isfinite(v) or v < 0:
            return _unparseable(f"code {code}: percentage {v:g} is negative or not finite")
        shares[code] = v
    missing = [c for c in codes if c not in shares]
    if missing:
        return _unparseable(f"options missing: {missing}")
    total = sum(shares.values())
    if abs(total - 100.0) > tolerance:
        return _unparseable(f"percentages sum to {total:g} (expected 100 +/- {tolerance:g})")
    return VerbalisedAnswer(status="ok", distribution={c: shares[c] / total for c in codes})


def verbalised_cannot_parse(text: str, option_codes=()) -> bool:
    """Whether a partial verbalised answer can no longer parse (so its generation may stop).

    True once a complete line (one ended by a line break, as ``str.splitlines`` splits them) is neither
    blank nor ``code: percent``
    (``option_codes`` is accepted for the sampler's ``stop`` signature and not needed),
    outside the JSON and fenced forms :func:`parse_verbalised` also reads: the strict parser
    rejects such an answer whatever follows.

    Examples
    --------
    >>> verbalised_cannot_parse("1: 40%\\n2"), verbalised_cannot_parse("1. Very important\\n2")
    (False, True)
    >>> verbalised_cannot_parse('{"1": 40,\\n')
    False
    """
    body = str(text).lstrip()
    if not body or body.startswith("{") or body.startswith("```"):
        return False
    # lines as the parser splits them (str.splitlines: \r, \x0c, \u2028... end a line too); a line is
    # complete once its line break is there
    lines = body.splitlines(keepends=True)
    complete = [line for line in lines if len(line.splitlines()[0]) < len(line)]
    return any(line.strip() and not _LINE.match(line.splitlines()[0]) for line in complete)


# --- readouts of a predictions table --------------------------------------------------------------

#: columns of :func:`readout_scores` / :func:`readout_table` (after ``readout`` and ``kind``)
READOUT_COLUMNS = ["n", "n_distribution", "accuracy", "nmae", "jsd", "tv", "representativeness", "ece",
                   "inside_share"]


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str)
                                                                               and not value.strip())


def _aligned(q_raw, p_raw) -> tuple[list[int], np.ndarray, np.ndarray] | None:
    """Predicted and observed shares over the union of their codes, each renormalised; None if blank."""
    from sgvalues.modal import parse_distribution

    if _blank(q_raw) or _blank(p_raw):
        return None
    q, p = parse_distribution(q_raw), parse_distribution(p_raw)
    codes = sorted(set(q) | set(p))
    qv = np.array([q.get(c, 0.0) for c in codes], dtype=float)
    pv = np.array([p.get(c, 0.0) for c in codes], dtype=float)
    if not (qv.sum() > 0 and pv.sum() > 0):
        return None
    return codes, qv / qv.sum(), pv / pv.sum()


def fit_temperature_table(predictions: pd.DataFrame, objective: str = "jsd", probs: str = "probs",
                          bounds: tuple[float, float] = (0.05, 20.0)) -> TemperatureFit:
    """:func:`fit_temperature` on a predictions table's cells that have ``probs`` and ``distribution``.

    Pass the **train** split's predictions only; the fitted temperature is then applied to the
    OOD split with :func:`with_temperature`.
    """
    for col in (probs, "distribution"):
        if col not in predictions.columns:
            raise ValueError(f"predictions: missing column {col!r}; expected {probs} and distribution (JSON)")
    pairs = [a for a in (_aligned(q, p) for q, p in zip(predictions[probs], predictions["distribution"]))
             if a is not None]
    if not pairs:
        raise ValueError(f"predictions: no row has both {probs!r} and 'distribution'; "
                         "the temperature needs option probabilities (logprob mode)")
    return fit_temperature([a[1] for a in pairs], [a[2] for a in pairs], objective=objective, bounds=bounds)


def with_temperature(predictions: pd.DataFrame, temperature: float, probs: str = "probs",
                     out: str | None = None) -> pd.DataFrame:
    """A copy with ``out`` (default: ``probs`` itself) holding the temperature-scaled probabilities (JSON).

    Blank ``probs`` stay blank; the modal answer, hence ``prediction``, is unchanged by a
    temperature.

    Examples
    --------
    >>> df = pd.DataFrame({"probs": ['{"1": 0.8, "2": 0.2}', ""]})
    >>> with_temperature(df, 2.0)["probs"].tolist()
    ['{"1": 0.666667, "2": 0.333333}', '']
    """
    from sgvalues.modal import parse_distribution

    if probs not in predictions.columns:
        raise ValueError(f"predictions: missing column {probs!r}")
    cells = []
    for raw in predictions[probs]:
        if _blank(raw):
            cells.append("")
            continue
        d = parse_distribution(raw)
        codes = sorted(d)
        scaled = temperature_scale(np.array([d[c] for c in codes]), temperature)
        cells.append(json.dumps({str(c): round(float(v), 6) for c, v in zip(codes, scaled)}))
    return predictions.assign(**{out or probs: cells})


def readout_scores(predictions: pd.DataFrame, probs: str = "probs", n_bins: int = 10, n_boot: int = 200,
                   level: float = 0.95, region_distance: str = "tv", seed: int = 0,
                   region_cache: dict | None = None) -> dict:
    """Every chapter-09 score of one readout on one set of cells.

    Parameters
    ----------
    predictions : DataFrame
        A predictions table (``metrics.score``'s columns, ``distribution``, and the ``probs``
        readout column); ``n_valid`` (from the samples) enables ``inside_share``.
    probs : str
        The readout's column (code -> probability JSON).
    n_bins : int
        Bins of the ECE (:func:`sgvalues.calibration.expected_calibration_error`).
    n_boot, level, region_distance, seed, region_cache
        The sampling-uncertainty region (:func:`sgvalues.calibration.inside_sampling_region`;
        ``region_cache`` its ``cache``).

    Returns
    -------
    dict
        :data:`READOUT_COLUMNS`: ``accuracy`` and ``nmae`` of the modal answer
        (:func:`sgvalues.metrics.score`, invalid answers wrong), and over the ``n_distribution``
        cells with a readout and an observed distribution: mean ``jsd``, mean total variation
        ``tv``, ``representativeness`` :math:`= 1 -` mean :math:`W_1/W_1^{max}` (one minus
        ``metrics``' scaled ``wasserstein``: :func:`representativeness` per cell, averaged),
        ``ece`` of the modal answer's confidence and ``inside_share`` (NaN without
        ``n_valid``).
    """
    from sgvalues.calibration import expected_calibration_error, inside_sampling_region, modal_confidence
    from sgvalues.metrics import score

    if probs not in predictions.columns:
        raise ValueError(f"predictions: missing column {probs!r}")
    df = predictions.assign(probs=predictions[probs])
    overall = score(df).iloc[0]
    tvs = [total_variation(a[1], a[2]) for a in (_aligned(q, p) for q, p in zip(df["probs"], df["distribution"]))
           if a is not None] if "distribution" in df.columns else []
    conf = modal_confidence(df)
    inside = float("nan")
    if "n_valid" in df.columns and "distribution" in df.columns:
        region = inside_sampling_region(df, n_boot=n_boot, level=level, distance=region_distance, seed=seed,
                                        cache=region_cache)
        inside = float(region["inside"].mean()) if len(region) else float("nan")
    return {"n": int(overall["n"]), "n_distribution": len(tvs), "accuracy": float(overall["accuracy"]),
            "nmae": float(overall["nmae"]), "jsd": float(overall["jsd"]),
            "tv": float(np.mean(tvs)) if tvs else float("nan"),
            "representativeness": 1.0 - float(overall["wasserstein"]),
            "ece": expected_calibration_error(conf["confidence"], conf["correct"], n_bins) if len(conf)
            else float("nan"),
            "inside_share": inside}


def sampling_floor(samples: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> dict:
    """The survey's own noise as a readout row: how far a fresh survey of each cell lands from this one.

    Parameters
    ----------
    samples : DataFrame
        ``sample_id``, ``distribution``, ``n_valid`` (``n_effective`` where present).

    Returns
    -------
    dict
        ``tv`` and ``jsd``: the mean over cells of the mean distance of a bootstrap re-sample
        of the cell's respondents to its observed distribution
        (:func:`sgvalues.calibration.bootstrap_distances`), Meister et al.'s "sampling floor"
        (published: 0.115 total variation on their data); ``n_distribution`` cells.
    """
    from sgvalues.calibration import bootstrap_distances
    from sgvalues.modal import parse_distribution

    for col in ("sample_id", "distribution", "n_valid"):
        if col not in samples.columns:
            raise ValueError(f"samples: missing column {col!r}; expected sample_id, distribution, n_valid")
    tv, js = [], []
    for _, s in samples.iterrows():
        if _blank(s["distribution"]):
            continue
        d = parse_distribution(s["distribution"])
        p = np.array([d[c] for c in sorted(d)], dtype=float)
        n = s.get("n_effective")
        n = int(round(float(s["n_valid"] if n is None or pd.isna(n) else n)))
        tv.append(bootstrap_distances(p, n, n_boot, "tv", seed, str(s["sample_id"])).mean())
        js.append(bootstrap_distances(p, n, n_boot, "jsd", seed, str(s["sample_id"])).mean())
    return {"n_distribution": len(tv), "tv": float(np.mean(tv)) if tv else float("nan"),
            "jsd": float(np.mean(js)) if js else float("nan")}


#: the no-model yardsticks shown beside the readouts (``sgvalues.baselines``)
READOUT_BASELINES = ("uniform", "population_mode", "marginal_product")

#: columns of :func:`run_readouts`
READOUT_TABLE_COLUMNS = ["readout", "kind", "temperature"] + READOUT_COLUMNS


def readout_path(run_dir, tag: str, readout: str, split: str):
    """Where a readout's own predictions are: ``predictions/<tag>-<readout>_<split>.csv`` (``sampled``,
    ``verbalised``); ``logprob`` and ``logprob_temperature`` read ``<tag>_<split>.csv``."""
    from sgvalues.evaluate import predictions_path

    return predictions_path(run_dir, tag if readout in ("logprob", "logprob_temperature") else f"{tag}-{readout}",
                            split)


def run_readouts(run_dir, tag: str = "zeroshot", split: str = "ood", objective: str = "jsd",
                 baselines: Sequence[str] = READOUT_BASELINES, n_bins: int = 10, n_boot: int = 200,
                 seed: int = 0, readouts: Sequence[str] = ("logprob", "logprob_temperature"),
                 fit_tag: str | None = None, cells=None) -> tuple[pd.DataFrame, TemperatureFit]:
    """The readout table of a run folder's existing predictions: no new model pass.

    Parameters
    ----------
    run_dir : path
        A run folder with ``predictions/<tag>_train.csv`` and ``predictions/<tag>_<split>.csv``
        (logprob mode: ``probs`` filled), the prepared ``data/`` and the baselines'
        ``predictions/<baseline>_<split>.csv``.
    tag : str
        The model state (``zeroshot``, ``base``, ``sft``).
    split : str
        The cells scored; the temperature is always fitted on ``train``.
    objective : {"jsd", "nll"}
        What the temperature minimises.
    baselines : names
        Baselines scored on the same cells (a missing file is an error naming it).
    n_bins, n_boot, seed
        ECE bins; bootstrap draws and seed of the sampling region and floor.
    readouts : names
        Among :data:`READOUTS`; ``sampled`` and ``verbalised`` read their own predictions
        (:func:`readout_path`, written by ``sgvalues.knowledge``).
    fit_tag : str, optional
        Whose train predictions the temperature is fitted on (default ``tag``): e.g. ``base``
        for ``zeroshot``, the same model and adapter asked on the train split. A different
        model or adapter is an error.
    cells : sample ids, optional
        Score only these cells (every row, baselines and survey noise included, on the same
        cells); default every cell of ``<tag>_<split>.csv``. A readout missing some of them
        is an error naming the file.

    Returns
    -------
    (DataFrame, TemperatureFit)
        :data:`READOUT_TABLE_COLUMNS`, one row per readout: ``logprob`` and
        ``logprob_temperature`` (kind ``model``), each baseline (kind ``baseline``) and
        ``survey_noise`` (kind ``reference``: ``accuracy`` the survey-noise reference of
        :func:`sgvalues.baselines.noise_reference`, ``tv``/``jsd`` the sampling floor of
        :func:`sampling_floor`, the rest NaN); and the temperature fit.
    """
    from pathlib import Path

    from sgvalues.baselines import noise_reference
    from sgvalues.evaluate import load_predictions, predictions_path
    from sgvalues.split import load_samples

    run_dir = Path(run_dir)

    def read(name: str, sp: str) -> pd.DataFrame:
        path = predictions_path(run_dir, name, sp)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found; expected the {name!r} predictions of split {sp!r}")
        return load_predictions(path)

    unknown = [r for r in readouts if r not in READOUTS]
    if unknown:
        raise ValueError(f"readouts {unknown}: expected among {', '.join(READOUTS)}")
    fitted = read(fit_tag or tag, "train")
    model = read(tag, split)
    for col in ("model", "adapter"):
        a, b = set(fitted[col].astype(str)), set(model[col].astype(str))
        if col in fitted.columns and col in model.columns and a != b:
            raise ValueError(f"{predictions_path(run_dir, fit_tag or tag, 'train')}: {col} {sorted(a)} differs from "
                             f"{sorted(b)} of {predictions_path(run_dir, tag, split)}; expected the temperature to be "
                             "fitted on the same model state")
    fit = fit_temperature_table(fitted, objective=objective)
    if cells is not None:
        keep = {str(c) for c in cells}
        absent = sorted(keep - set(model["sample_id"]))
        if absent:
            raise ValueError(f"{predictions_path(run_dir, tag, split)}: no prediction for {len(absent)} of the cells "
                             f"asked, e.g. {absent[:3]}")
        model = model[model["sample_id"].isin(keep)]
    samples = pd.DataFrame(load_samples(run_dir / "data", split))
    samples = samples[samples["sample_id"].isin(set(model["sample_id"]))]
    size_cols = ["sample_id", "n_valid"] + (["n_effective"] if "n_effective" in samples.columns else [])
    missing = sorted(set(model["sample_id"]) - set(samples["sample_id"]))
    if missing:
        raise ValueError(f"{run_dir / 'data'}: no sample for {len(missing)} predicted cell(s), e.g. {missing[:3]}; "
                         "expected the run's own prepared samples")

    radii: dict = {}  # each cell's bootstrap runs once for every readout

    def scores(df: pd.DataFrame) -> dict:
        df = df.drop(columns=[c for c in size_cols[1:] if c in df.columns]).merge(samples[size_cols], on="sample_id",
                                                                                   how="left")
        return readout_scores(df, n_bins=n_bins, n_boot=n_boot, seed=seed, region_cache=radii)

    rows = []
    for r in readouts:
        if r == "logprob":
            rows.append({"readout": r, "kind": "model", "temperature": 1.0, **scores(model)})
        elif r == "logprob_temperature":
            rows.append({"readout": r, "kind": "model", "temperature": fit.temperature,
                         **scores(with_temperature(model, fit.temperature))})
        else:
            path = readout_path(run_dir, tag, r, split)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found; expected the {r!r} readout's predictions "
                                        "(sgvalues.knowledge.run_knowledge writes them)")
            own = load_predictions(path)
            absent = sorted(set(model["sample_id"]) - set(own["sample_id"]))
            if absent:
                raise ValueError(f"{path}: no prediction for {len(absent)} of the cells scored, e.g. {absent[:3]}; "
                                 "expected the readout asked on the same cells")
            rows.append({"readout": r, "kind": "model", "temperature": float("nan"),
                         **scores(own[own["sample_id"].isin(set(model["sample_id"]))])})
    for name in baselines:
        b = read(name, split)
        rows.append({"readout": name, "kind": "baseline", "temperature": float("nan"),
                     **scores(b[b["sample_id"].isin(set(model["sample_id"]))])})
    noise = noise_reference(samples, n_boot=n_boot, seed=seed)  # by split and stratum; "all" pools the strata
    noise = noise[noise["stratum"] == "all"] if "stratum" in noise.columns else noise
    floor = sampling_floor(samples, n_boot=n_boot, seed=seed)
    rows.append({"readout": "survey_noise", "kind": "reference", "temperature": float("nan"),
                 "n": int(len(samples)), "accuracy": float(noise["estimate"].iloc[0]) if len(noise) else float("nan"),
                 **floor})
    return pd.DataFrame(rows).reindex(columns=READOUT_TABLE_COLUMNS), fit


# --- readouts that need a model pass: turning its answers into predictions -----------------------

def sampled_distribution(texts: Sequence, option_codes: Sequence) -> dict:
    """The distribution of ``n`` sampled answers to one cell, each parsed like a structured answer.

    Parameters
    ----------
    texts : sequence of str
        The sampled answers (temperature > 0, seeded by the caller).
    option_codes : sequence
        The question's codes.

    Returns
    -------
    dict
        ``status`` (``ok`` when at least one answer gave a code; else ``refused`` when every
        answer was a refusal, ``unparseable`` otherwise), ``distribution`` (code -> share of the
        answers that gave a code, every option listed), ``n_samples``, ``n_valid``,
        ``n_refused``, ``n_unparseable``. Answers without a code are counted, never spread
        over the options.

    Notes
    -----
    :math:`\\hat q(x) = \\#\\{i : a_i = x\\} / \\#\\{i : a_i \\text{ is a code}\\}`, each answer
    parsed by :func:`sgvalues.models.base.classify_text`.

    Examples
    --------
    >>> d = sampled_distribution(["1", "2", "2", "I cannot answer that.", "banana"], [1, 2, 3])
    >>> d["distribution"], d["n_valid"], d["n_refused"], d["n_unparseable"]
    ({1: 0.3333333333333333, 2: 0.6666666666666666, 3: 0.0}, 3, 1, 1)
    """
    from sgvalues.models.base import classify_text

    codes = [int(c) for c in option_codes]
    if not codes:
        raise ValueError("sampled_distribution: option_codes is empty; expected the question's codes")
    counts = dict.fromkeys(codes, 0)
    refused = unparseable = 0
    for text in texts:
        status, code = classify_text(text, [str(c) for c in codes])
        if status == "ok":
            counts[int(code)] += 1
        elif status == "refused":
            refused += 1
        else:
            unparseable += 1
    n_valid = sum(counts.values())
    if n_valid:
        status, dist = "ok", {c: counts[c] / n_valid for c in codes}
    else:
        status = "refused" if refused and not unparseable else "unparseable"
        dist = {}
    return {"status": status, "distribution": dist, "n_samples": len(texts), "n_valid": n_valid,
            "n_refused": refused, "n_unparseable": unparseable}


#: the sample fields a readout's predictions table copies (the predictions contract)
_COPIED = ("sample_id", "split", "question_id", "theme", "stratum", "subgroup", "target", "scale_min", "scale_max")


def readout_predictions(samples, outputs: Mapping, readout: str, tolerance: float = 2.0,
                        model: str = "") -> pd.DataFrame:
    """A predictions table (ARCHITECTURE.md's contract) from a readout's raw model answers.

    Parameters
    ----------
    samples : records or DataFrame
        The cells (``sgvalues.split.load_samples``): ``sample_id``, ``options``,
        ``distribution`` and the copied fields.
    outputs : mapping sample_id -> answer
        ``verbalised``: one text per cell; ``sampled``: a list of texts per cell. A cell
        without an output is ``failed``.
    readout : {"verbalised", "sampled"}
    tolerance : float
        Percentage points the verbalised percentages may miss 100 by (:func:`parse_verbalised`).
    model : str
        The ``model`` column.

    Returns
    -------
    DataFrame
        The predictions columns, ``probs`` the readout's distribution (blank when unparseable),
        ``prediction`` its modal code (ties to the lowest), ``status`` ``ok``, ``unparseable``,
        ``refused`` or ``failed``, plus ``parse_reason`` (why a verbalised answer was
        unparseable; for sampled answers the counts of answers without a code).
    """
    if readout not in ("verbalised", "sampled"):
        raise ValueError(f"readout = {readout!r}: expected 'verbalised' or 'sampled' (the others need no new answers)")
    records = samples.to_dict("records") if isinstance(samples, pd.DataFrame) else list(samples)
    rows = []
    for s in records:
        options = s["options"]
        if isinstance(options, str):
            options = json.loads(options)
        codes = sorted(int(c) for c in options)
        out = outputs.get(s["sample_id"])
        base = {k: s.get(k, "") for k in _COPIED}
        levels = s.get("levels", "")
        base.update(levels=json.dumps(levels) if isinstance(levels, Mapping) else levels, model=model, adapter="",
                    distribution=json.dumps(s["distribution"]) if isinstance(s["distribution"], Mapping)
                    else s["distribution"])
        if out is None:
            rows.append({**base, "prediction": None, "status": "failed", "probs": "", "raw_output": "no output",
                         "parse_reason": "no output"})
            continue
        if readout == "verbalised":
            parsed = parse_verbalised(out, codes, tolerance)
            status, dist, reason, raw = parsed.status, parsed.distribution, parsed.reason, str(out)
        else:
            texts = [out] if isinstance(out, str) else list(out)
            d = sampled_distribution(texts, codes)
            status, dist, raw = d["status"], d["distribution"], json.dumps(texts)
            reason = f"{d['n_valid']} of {d['n_samples']} answers gave a code ({d['n_refused']} refused, " \
                     f"{d['n_unparseable']} unparseable)"
        pred = max(codes, key=lambda c: (dist[c], -c)) if dist else None
        rows.append({**base, "prediction": pred, "status": status,
                     "probs": json.dumps({str(c): round(v, 6) for c, v in dist.items()}) if dist else "",
                     "raw_output": raw, "parse_reason": reason})
    from sgvalues.evaluate import PREDICTION_COLUMNS

    df = pd.DataFrame(rows, columns=PREDICTION_COLUMNS + ["parse_reason"])
    df["prediction"] = df["prediction"].astype("Int64")
    return df
