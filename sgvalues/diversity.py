"""How much Singapore's subgroups disagree: the Modal Diversity Score and a Wasserstein cross-check.

For one question and one stratum (e.g. ``sex_x_age_group``), each subgroup has a modal answer.
The **Modal Diversity Score** (MDS, Tan et al. 2026) is the normalised entropy of those modal
answers: 0 when every subgroup gives the same most common answer (consensus), 1 when the modes
are as spread out as the number of subgroups and options allows. Because it only sees modes, we
also report the **mean pairwise Wasserstein distance** between the subgroups' full answer
distributions, with codes rescaled to [0, 1], as a cross-check that uses the whole distribution.

:func:`diversity_table` computes both for every (question, stratum) of a prepared folder; the
remaining functions are the summaries and figures of notebook 02.

Example
-------
>>> modal_diversity_score([1, 1, 1, 1], n_options=4)
0.0
>>> modal_diversity_score([1, 2, 3, 4], n_options=4)
1.0
>>> round(mean_pairwise_wasserstein([{1: 1.0}, {4: 1.0}], 1, 4), 3)
1.0
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.stats

__all__ = [
    "modal_diversity_score",
    "mean_pairwise_wasserstein",
    "diversity_table",
    "question_diversity",
    "theme_ranking",
    "extreme_questions",
    "mds_wasserstein_correlation",
]

DIVERSITY_COLUMNS = ["question_id", "theme", "stratum", "mds", "mean_wasserstein", "n_subgroups", "n_options"]
_MODAL_REQUIRED = ["question_id", "stratum", "subgroup", "modal_answer", "distribution"]
_QUESTION_REQUIRED = ["question_id", "theme", "scale_min", "scale_max", "n_options"]


# --------------------------------------------------------------------------------------------
# the two scores for one question and one stratum
# --------------------------------------------------------------------------------------------
def modal_diversity_score(modal_answers: Iterable, n_options: int) -> float:
    """Modal Diversity Score of one question within one stratum.

    Parameters
    ----------
    modal_answers : iterable
        The modal answer of each subgroup of the stratum; missing values (``None``/NaN:
        a subgroup with no valid answer) are dropped.
    n_options : int
        Number of substantive answer options of the question, ``|C|``.

    Returns
    -------
    float
        MDS in [0, 1].

    Notes
    -----
    With :math:`M` the modal answers of the :math:`|S|` subgroups that have one, and
    :math:`p(m)` the share of those subgroups whose mode is :math:`m`,

    .. math:: \\mathrm{MDS} = \\frac{-\\sum_m p(m) \\log_2 p(m)}{\\log_2 \\min(|S|, |C|)}

    and MDS = 0 when :math:`\\min(|S|, |C|) \\le 1` (one subgroup or one option cannot
    disagree). The denominator is the largest entropy that :math:`|S|` modes over :math:`|C|`
    options can reach, so MDS = 1 means "as spread out as possible". The entropy is
    ``scipy.stats.entropy(counts, base=2)`` of the mode counts.

    Examples
    --------
    Six subgroups, four options, modes split 3/3 over two options: 1 bit out of log2(4) = 2.

    >>> modal_diversity_score([1, 1, 1, 2, 2, 2], n_options=4)
    0.5
    >>> modal_diversity_score([3], n_options=4)
    0.0
    """
    modes = [m for m in modal_answers if m is not None and not (isinstance(m, float) and math.isnan(m))]
    if n_options is None or (isinstance(n_options, float) and math.isnan(n_options)) or n_options < 1:
        raise ValueError(f"n_options = {n_options!r}: expected a positive number of substantive options")
    n_s, n_c = len(modes), int(n_options)
    counts = Counter(float(m) for m in modes)
    if len(counts) > n_c:
        raise ValueError(
            f"{len(counts)} distinct modal answers {sorted(counts)} but n_options = {n_c}: "
            "expected the modes to be among the question's substantive options"
        )
    denom_n = min(n_s, n_c)
    if denom_n <= 1:
        return 0.0
    entropy = float(scipy.stats.entropy(np.fromiter(counts.values(), dtype=float), base=2))
    return max(0.0, entropy / math.log2(denom_n))


def _as_dist(d) -> dict[float, float]:
    """A distribution given as dict or JSON string -> {float code: share}."""
    if isinstance(d, str):
        d = json.loads(d)
    if not isinstance(d, Mapping):
        raise ValueError(f"distribution {d!r}: expected a mapping code -> share (or its JSON)")
    return {float(k): float(v) for k, v in d.items()}


def _cdf_matrix(dists: Sequence[Mapping[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """CDFs of several distributions on their common sorted code grid: (codes, F[n, K])."""
    codes = np.array(sorted({c for d in dists for c in d}), dtype=float)
    pos = {c: i for i, c in enumerate(codes)}
    mass = np.zeros((len(dists), len(codes)))
    for r, d in enumerate(dists):
        for c, s in d.items():
            mass[r, pos[c]] += s
    totals = mass.sum(axis=1, keepdims=True)
    if np.any(totals <= 0):
        raise ValueError("a distribution has no mass: expected shares summing to a positive total")
    return codes, np.cumsum(mass / totals, axis=1)


def _mean_pairwise_l1(cdf: np.ndarray, gaps: np.ndarray) -> float:
    """Mean over pairs i<j of sum_k gaps_k |F_ik - F_jk| (the 1-D Wasserstein-1 distance)."""
    n = cdf.shape[0]
    if n < 2:
        return float("nan")
    diff = np.abs(cdf[:, None, :] - cdf[None, :, :]) @ gaps  # n x n
    return float(diff[np.triu_indices(n, 1)].mean())


def mean_pairwise_wasserstein(distributions: Sequence, scale_min: float, scale_max: float) -> float:
    """Mean Wasserstein-1 distance over all pairs of subgroups' answer distributions.

    Parameters
    ----------
    distributions : sequence of mapping or JSON str
        One ``{code: share}`` per subgroup.
    scale_min, scale_max : float
        The question's lowest and highest substantive codes; codes are rescaled to [0, 1].

    Returns
    -------
    float
        In [0, 1]; NaN with fewer than two subgroups.

    Notes
    -----
    Codes are mapped to :math:`x = (c - c_{min}) / (c_{max} - c_{min})`. For two distributions
    on the line, :math:`W_1(P, Q) = \\int |F_P(x) - F_Q(x)|\\,dx`, which on the sorted common
    grid :math:`x_1 < \\dots < x_K` is :math:`\\sum_{k<K} |F_P(x_k) - F_Q(x_k)|(x_{k+1} - x_k)`.
    This equals ``scipy.stats.wasserstein_distance`` (tested) but is computed for all pairs at
    once from one CDF matrix.

    Examples
    --------
    >>> mean_pairwise_wasserstein([{1: 0.5, 3: 0.5}, {1: 1.0}], scale_min=1, scale_max=3)
    0.5
    """
    dists = [_as_dist(d) for d in distributions]
    if len(dists) < 2:
        return float("nan")
    span = float(scale_max) - float(scale_min)
    if not span > 0:
        raise ValueError(f"scale_min = {scale_min!r}, scale_max = {scale_max!r}: expected scale_max > scale_min")
    codes, cdf = _cdf_matrix(dists)
    x = (codes - float(scale_min)) / span
    return _mean_pairwise_l1(cdf[:, :-1], np.diff(x))


# --------------------------------------------------------------------------------------------
# the table for a prepared folder
# --------------------------------------------------------------------------------------------
def _check_columns(df: pd.DataFrame, required: list[str], name: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; expected at least {required}")


def _parse_distributions(values) -> list[dict]:
    """Parse a column of JSON strings (or dicts) in one ``json.loads`` call (fast for 10^4 rows)."""
    vals = list(values)
    if all(isinstance(v, str) for v in vals):
        try:
            return json.loads("[" + ",".join(vals) + "]")
        except json.JSONDecodeError:
            pass  # fall through to per-row parsing, which names the bad value
    out = []
    for v in vals:
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except json.JSONDecodeError as exc:
                raise ValueError(f"modal_answers: column 'distribution' value {v[:80]!r}: "
                                 f"expected JSON code -> share ({exc})") from None
        if not isinstance(v, Mapping):
            raise ValueError(f"modal_answers: column 'distribution' value {v!r}: expected a mapping code -> share")
        out.append(v)
    return out


def diversity_table(modal_answers: pd.DataFrame, questions: pd.DataFrame) -> pd.DataFrame:
    """MDS and mean pairwise Wasserstein distance for every (question, stratum).

    Parameters
    ----------
    modal_answers : DataFrame
        ``modal_answers.csv`` of a prepared folder: ``question_id, stratum, subgroup, n_valid,
        modal_answer, n_tied_modes, distribution`` (JSON code -> share, or a dict).
    questions : DataFrame
        ``questions.csv``: ``question_id, theme, scale_min, scale_max, n_options``.

    Returns
    -------
    DataFrame
        ``question_id, theme, stratum, mds, mean_wasserstein, n_subgroups, n_options``, one row
        per (question, stratum), in order of first appearance in ``modal_answers``.
        ``n_subgroups`` counts the subgroups with a modal answer (``|S|``).

    Notes
    -----
    Same formulas as :func:`modal_diversity_score` and :func:`mean_pairwise_wasserstein`
    (tests check the equality), computed for all cells at once: every distribution becomes a
    CDF on its question's sorted code grid, cells are padded to the largest stratum, and the
    pairwise sum :math:`\\sum_{i<j} |F_i - F_j|` at each grid point comes from the sorted values
    as :math:`\\sum_r (2r - n - 1) F_{(r)}`, weighted by the grid
    gaps :math:`\\Delta x_k`. Subgroups without a modal answer (no valid respondent) count in
    neither score.

    Examples
    --------
    >>> ma = pd.DataFrame({"question_id": ["Q1"] * 3, "stratum": ["sex", "sex", "age_group"],
    ...     "subgroup": ["sex:Male", "sex:Female", "age_group:16-24"], "modal_answer": [1, 2, 1],
    ...     "distribution": ['{"1": 0.6, "2": 0.4}', '{"1": 0.4, "2": 0.6}', '{"1": 1.0}']})
    >>> qs = pd.DataFrame({"question_id": ["Q1"], "theme": ["T"], "scale_min": [1], "scale_max": [2],
    ...     "n_options": [2]})
    >>> diversity_table(ma, qs)[["stratum", "mds", "mean_wasserstein", "n_subgroups"]]
         stratum  mds  mean_wasserstein  n_subgroups
    0        sex  1.0               0.2            2
    1  age_group  0.0               NaN            1
    """
    _check_columns(modal_answers, _MODAL_REQUIRED, "modal_answers")
    _check_columns(questions, _QUESTION_REQUIRED, "questions")
    qinfo = questions.drop_duplicates("question_id").set_index("question_id")
    unknown = sorted(set(modal_answers["question_id"]) - set(qinfo.index))
    if unknown:
        raise ValueError(
            f"modal_answers: question_id {unknown[:5]} not in questions: expected every question "
            "of modal_answers to have a row in questions.csv"
        )
    smin_all = pd.to_numeric(qinfo["scale_min"], errors="coerce")
    span_all = pd.to_numeric(qinfo["scale_max"], errors="coerce") - smin_all
    bad = span_all[~(span_all > 0)].index.intersection(pd.Index(modal_answers["question_id"].unique()))
    if len(bad):
        q = bad[0]
        raise ValueError(f"questions: question {q}: scale_min = {qinfo.loc[q, 'scale_min']!r}, "
                         f"scale_max = {qinfo.loc[q, 'scale_max']!r}: expected scale_max > scale_min")

    # cells in order of first appearance; every (question, stratum) gets a row
    cells = modal_answers[["question_id", "stratum"]].drop_duplicates().reset_index(drop=True)
    cell_key = pd.MultiIndex.from_frame(cells)
    out = cells.copy()
    out["theme"] = qinfo.loc[cells["question_id"], "theme"].to_numpy()
    n_opt = pd.to_numeric(qinfo.loc[cells["question_id"], "n_options"]).to_numpy()
    out["n_options"] = n_opt.astype(int)

    ma = modal_answers.loc[modal_answers["modal_answer"].notna(),
                           ["question_id", "stratum", "modal_answer", "distribution"]]
    ma = ma.reset_index(drop=True)
    cell = cell_key.get_indexer(pd.MultiIndex.from_frame(ma[["question_id", "stratum"]]))
    n_cells = len(cells)
    n_sub = np.bincount(cell, minlength=n_cells)
    out["n_subgroups"] = n_sub

    # --- MDS: entropy of the modes in each cell -----------------------------------------------
    modes = pd.DataFrame({"cell": cell, "mode": pd.to_numeric(ma["modal_answer"]).to_numpy(float)})
    cnt = modes.groupby(["cell", "mode"]).size().rename("k").reset_index()
    n_distinct = np.bincount(cnt["cell"], minlength=n_cells)
    # mode counts as a (cells x distinct modes) matrix, zero-padded (0 log 0 = 0 in scipy)
    counts = np.zeros((n_cells, max(1, int(n_distinct.max(initial=0)))))
    counts[cnt["cell"].to_numpy(), cnt.groupby("cell").cumcount().to_numpy()] = cnt["k"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):  # a cell without modes: 0/0, masked below
        entropy = scipy.stats.entropy(counts, base=2, axis=1)
    over = np.flatnonzero(n_distinct > n_opt)
    if len(over):
        i = over[0]
        raise ValueError(
            f"modal_answers: question {cells.at[i, 'question_id']}, stratum {cells.at[i, 'stratum']}: "
            f"{n_distinct[i]} distinct modal answers but n_options = {int(n_opt[i])}: expected the modes "
            "to be among the question's substantive options"
        )
    denom = np.minimum(n_sub, n_opt)
    with np.errstate(divide="ignore", invalid="ignore"):
        mds = np.where(denom > 1, entropy / np.log2(np.maximum(denom, 2)), 0.0)
    out["mds"] = np.clip(mds, 0.0, None)

    # --- Wasserstein: CDFs on each question's code grid, padded pairwise broadcast ------------
    out["mean_wasserstein"] = np.nan
    if len(ma):
        dists = _parse_distributions(ma["distribution"])
        lens = np.fromiter((len(d) for d in dists), dtype=int, count=len(dists))
        if np.any(lens == 0):
            i = int(np.flatnonzero(lens == 0)[0])
            raise ValueError(f"modal_answers: question {ma.at[i, 'question_id']}, stratum {ma.at[i, 'stratum']}: "
                             "empty 'distribution' for a subgroup with a modal answer: expected shares")
        row = np.repeat(np.arange(len(dists)), lens)
        code = np.fromiter((float(k) for d in dists for k in d), dtype=float, count=lens.sum())
        share = np.fromiter((float(v) for d in dists for v in d.values()), dtype=float, count=lens.sum())
        qcodes, qidx_row = np.unique(ma["question_id"].to_numpy(), return_inverse=True)
        qidx = qidx_row[row]
        smin = smin_all.loc[qcodes].to_numpy(float)[qidx]
        span = span_all.loc[qcodes].to_numpy(float)[qidx]
        x = (code - smin) / span
        # position of each code in its question's sorted grid
        grid = pd.DataFrame({"q": qidx, "x": x}).drop_duplicates().sort_values(["q", "x"])
        grid["k"] = grid.groupby("q").cumcount()
        kmax = int(grid["k"].max()) + 1
        xs = np.full((len(qcodes), kmax), np.nan)
        xs[grid["q"].to_numpy(), grid["k"].to_numpy()] = grid["x"].to_numpy()
        # gaps between consecutive grid points; 0 beyond a question's last code (CDFs are 1 there)
        gaps = np.nan_to_num(np.diff(xs, axis=1), nan=0.0)
        kpos = pd.MultiIndex.from_frame(grid[["q", "x"]]).get_indexer(pd.MultiIndex.from_arrays([qidx, x]))
        mass = np.zeros((len(dists), kmax))
        np.add.at(mass, (row, grid["k"].to_numpy()[kpos]), share)
        tot = mass.sum(axis=1, keepdims=True)
        if np.any(tot <= 0):
            i = int(np.flatnonzero(tot[:, 0] <= 0)[0])
            raise ValueError(f"modal_answers: question {ma.at[i, 'question_id']}, stratum {ma.at[i, 'stratum']}: "
                             "'distribution' shares sum to 0: expected a positive total")
        cdf = np.cumsum(mass / tot, axis=1)[:, :-1]  # n_rows x (kmax-1)
        # pad rows into cells: C[cell, slot, k]
        slot = pd.Series(cell).groupby(cell).cumcount().to_numpy()
        gmax = int(n_sub.max())
        C = np.zeros((n_cells, gmax, kmax - 1))
        valid = np.zeros((n_cells, gmax), dtype=bool)
        C[cell, slot] = cdf
        valid[cell, slot] = True
        cell_q = np.full(n_cells, -1)
        cell_q[cell] = qidx_row
        G = gaps[np.maximum(cell_q, 0)]  # n_cells x (kmax-1)
        # sum_{i<j} |F_i - F_j| at each grid point without forming pairs: with the n values
        # sorted ascending, it is sum_r (2r - n - 1) F_(r) (padding sorts last, weight 0)
        Cs = np.sort(np.where(valid[:, :, None], C, np.inf), axis=1)
        Cs[~np.isfinite(Cs)] = 0.0
        r = np.arange(1, gmax + 1)[None, :]
        coef = np.where(r <= n_sub[:, None], 2 * r - n_sub[:, None] - 1, 0).astype(float)
        tot_d = np.einsum("cr,crk,ck->c", coef, Cs, G)
        n_pairs = n_sub * (n_sub - 1) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            out["mean_wasserstein"] = np.where(n_pairs > 0, tot_d / np.maximum(n_pairs, 1), np.nan)
    return out[DIVERSITY_COLUMNS].astype({"n_subgroups": int, "n_options": int, "mds": float, "mean_wasserstein": float})


# --------------------------------------------------------------------------------------------
# summaries for notebook 02
# --------------------------------------------------------------------------------------------
def question_diversity(diversity: pd.DataFrame) -> pd.DataFrame:
    """Per question: mean MDS and mean Wasserstein over its strata (``question_id, theme, mds,
    mean_wasserstein, n_strata``).

    Examples
    --------
    >>> d = pd.DataFrame({"question_id": ["Q1", "Q1"], "theme": ["T", "T"], "stratum": ["a", "b"],
    ...     "mds": [0.2, 0.4], "mean_wasserstein": [0.1, 0.3]})
    >>> question_diversity(d).round(3).to_dict("records")
    [{'question_id': 'Q1', 'theme': 'T', 'mds': 0.3, 'mean_wasserstein': 0.2, 'n_strata': 2}]
    """
    return (diversity.groupby(["question_id", "theme"], sort=False)
            .agg(mds=("mds", "mean"), mean_wasserstein=("mean_wasserstein", "mean"), n_strata=("stratum", "nunique"))
            .reset_index())


def theme_ranking(diversity: pd.DataFrame) -> pd.DataFrame:
    """Themes from most divisive to most unifying by mean MDS, with published values beside.

    Each question first gets its mean MDS over strata; a theme's score is the mean over its
    questions, so themes with many strata per question do not weigh more.

    Returns
    -------
    DataFrame
        ``rank, theme, mds, mean_wasserstein, n_questions, published_mds`` (published value
        where the paper quotes one, else NaN).

    Examples
    --------
    >>> d = pd.DataFrame({"question_id": ["Q1", "Q2", "Q3"], "theme": ["A", "A", "Religious Values"],
    ...     "stratum": ["s"] * 3, "mds": [0.1, 0.3, 0.5], "mean_wasserstein": [0.1, 0.1, 0.2]})
    >>> theme_ranking(d)[["rank", "theme", "mds", "published_mds"]].round(3).to_dict("records")
    [{'rank': 1, 'theme': 'Religious Values', 'mds': 0.5, 'published_mds': 0.318}, {'rank': 2, 'theme': 'A', 'mds': 0.2, 'published_mds': nan}]
    """
    from sgvalues.published import published

    pub = published().get("mds_by_theme", {})
    q = question_diversity(diversity)
    t = (q.groupby("theme").agg(mds=("mds", "mean"), mean_wasserstein=("mean_wasserstein", "mean"),
                                 n_questions=("question_id", "nunique"))
         .reset_index().sort_values(["mds", "theme"], ascending=[False, True]).reset_index(drop=True))
    t.insert(0, "rank", np.arange(1, len(t) + 1))
    t["published_mds"] = t["theme"].map(pub).astype(float)
    return t


def extreme_questions(diversity: pd.DataFrame, questions: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The ``n`` most divisive and ``n`` most unifying questions (mean MDS over strata).

    Returns ``kind`` (``most divisive``/``most unifying``), ``question_id, theme, mds,
    mean_wasserstein`` and the question's ``label`` and ``wording`` where ``questions`` has them.
    Ties are broken by question id so the list is deterministic.

    Examples
    --------
    >>> d = pd.DataFrame({"question_id": ["Q1", "Q2", "Q3"], "theme": ["A"] * 3, "stratum": ["s"] * 3,
    ...     "mds": [0.1, 0.9, 0.5], "mean_wasserstein": [0.0, 0.2, 0.1]})
    >>> qs = pd.DataFrame({"question_id": ["Q1", "Q2", "Q3"], "label": ["a", "b", "c"]})
    >>> extreme_questions(d, qs, n=1)[["kind", "question_id", "label"]].to_dict("records")
    [{'kind': 'most divisive', 'question_id': 'Q2', 'label': 'b'}, {'kind': 'most unifying', 'question_id': 'Q1', 'label': 'a'}]
    """
    q = question_diversity(diversity)
    top = q.sort_values(["mds", "question_id"], ascending=[False, True]).head(n).assign(kind="most divisive")
    bottom = q.sort_values(["mds", "question_id"], ascending=[True, True]).head(n).assign(kind="most unifying")
    out = pd.concat([top, bottom], ignore_index=True)
    extra = [c for c in ("label", "wording") if c in questions.columns]
    if extra:
        out = out.merge(questions[["question_id", *extra]].drop_duplicates("question_id"), on="question_id", how="left")
    return out[["kind", "question_id", "theme", "mds", "mean_wasserstein", *extra]]


def mds_wasserstein_correlation(diversity: pd.DataFrame, level: str = "question") -> dict:
    """Spearman rank correlation between MDS and mean Wasserstein distance.

    ``level="question"`` correlates per-question means over strata; ``"cell"`` every
    (question, stratum) row. Rows where either score is missing are dropped.

    Returns ``{"rho", "p_value", "n"}`` from ``scipy.stats.spearmanr``.

    Examples
    --------
    >>> d = pd.DataFrame({"question_id": list("abcd"), "theme": ["T"] * 4, "stratum": ["s"] * 4,
    ...     "mds": [0.1, 0.2, 0.3, 0.4], "mean_wasserstein": [0.01, 0.05, 0.02, 0.3]})
    >>> mds_wasserstein_correlation(d)["rho"]
    0.8
    """
    from scipy.stats import spearmanr

    if level not in ("question", "cell"):
        raise ValueError(f"level = {level!r}: expected 'question' or 'cell'")
    d = question_diversity(diversity) if level == "question" else diversity
    d = d[["mds", "mean_wasserstein"]].dropna()
    if len(d) < 3:
        return {"rho": float("nan"), "p_value": float("nan"), "n": int(len(d))}
    res = spearmanr(d["mds"], d["mean_wasserstein"])
    return {"rho": round(float(res.statistic), 12), "p_value": float(res.pvalue), "n": int(len(d))}
