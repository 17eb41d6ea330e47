"""A SYNTHETIC Singapore-like WVS-7 sample, written in the official file's column layout.

WVS respondent rows may not be redistributed, so when no official file is given the project
generates its own sample and reads it through the same loader (:func:`sgvalues.data.load_wvs`)
as the real file. **Every row is invented**: no answer in it was given by a real person. The
column ``SGV_SYNTHETIC`` (1 on every row) marks the file, and the loader labels the respondents
table ``attrs["synthetic"] = True`` so every table and figure derived from it can say so.

What is realistic, and where it comes from (``resources/singapore_reference.json``, cited in
``resources/SYNTHETIC_SOURCES.md``):

* composition: the WVS-7 Singapore sample's sex and age-band counts (1,088 women, 924 men;
  ages 21-91), Census 2020 ethnic shares and religion within ethnic group (Taoists coded
  WVS "Other" 9, Christians split Roman Catholic / Protestant);
* nine items (Q1, Q2, Q3, Q5, Q48, Q49, Q50, Q173, Q240) are calibrated to the real
  Singapore answer shares, overall and (roughly) by sex and age band, and to their real
  missing-answer rates.

Everything else (the other 250 items' distributions, every subgroup effect, the latent
traits, missing-answer rates, which items are "not asked") is a modelling choice of this
module, chosen to give the subgroup structure a study of subgroup values needs; it is not a
claim about the real survey. Those choices are numbers in
``resources/synthetic_population.yaml`` (read once, each commented there); this module is the
generator that turns them into respondents.

Notes
-----
Composition: sex and age-band counts are the real sample's, scaled to ``n`` (largest
remainders); the ethnic group is drawn given the age band (census shares, Indians slightly
oversampled, Malays tilted younger) and religion given ethnic group and age band (census
shares within ethnic group; among Chinese, younger respondents lean to no religion and
Christianity), both by systematic sampling so each cell's counts are within one of their
expectation whatever the seed.

Respondent :math:`i` has sex :math:`s`, age band :math:`a`, ethnic group :math:`e`,
religion :math:`r` and five latent traits :math:`\\theta_i` (religiosity, traditionalism,
social trust, well-being, political engagement), each drawn around a group mean,
:math:`\\theta_{it} = m_t(s, a, e, r) + \\sigma_t z_{it}`. For an ordered question :math:`q`
with :math:`K` answer codes (after the catalogue's ordinal recodings),

.. math::

    \\eta_{iq} = \\beta^{sex}_{q s} + \\beta^{age}_{q a} + \\beta^{eth}_{q e}
                + \\beta^{rel}_{q r} + \\gamma^{age\\times rel}_{q a r}
                + \\gamma^{eth\\times rel}_{q e r} + \\gamma^{sex\\times age}_{q s a}
                + \\gamma^{sex\\times rel}_{q s r} + \\lambda_q^\\top \\theta_i ,

    P(y_{iq} \\le k) = \\operatorname{logistic}(\\tau_{qk} - \\eta_{iq}), \\quad k=1..K-1 .

The main effects are drawn once per question from a fixed population seed with standard
deviations set by the question's theme (religion dominates "Religious Values"; every axis is
weak in "Social Capital, Trust & Organizational Membership"), the interactions with a smaller
scale, and the loadings :math:`\\lambda_q` are partly semantic (e.g. religiosity raises the
importance of God, Q164) and partly random. The thresholds :math:`\\tau_q` are solved so the
expected marginal shares over the generated respondents equal a target distribution
:math:`\\pi_q`: the real shares for the nine calibrated items, otherwise a skewed survey-like
distribution drawn per question. Nominal items use a multinomial logit with Gumbel noise;
second choices (Q153, Q155, Q157) are the runner-up of the same utilities. Missing answers:
:math:`P(\\text{missing}_{iq}) = \\operatorname{logistic}(c_q + b\\,u_i)` with a respondent
propensity :math:`u_i`; -1 "don't know" and -2 "no answer". Items in
:data:`NOT_ASKED_ITEMS` are -4 for everyone. Answers are written as the *raw* codes the
official file would hold (e.g. Q56 recoded 2 is raw 3). ``W_WEIGHT`` rakes sex, age band and
ethnic group to target margins.

The same ``seed`` gives a byte-identical file; question parameters do not depend on the
seed (only the respondents do), so different seeds are different samples of one population.

Example
-------
>>> df = generate_sample(n=200, seed=1)
>>> df.shape[0], int(df["SGV_SYNTHETIC"].min()), sorted(df["B_COUNTRY"].unique().tolist())
(200, 1, [702])
>>> int((df["Q260"] == 2).sum()), int(df["Q262"].min()) >= 21
(108, True)
>>> sorted(set(df["Q91"]))
[-4]
"""

from __future__ import annotations

import argparse
import json
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sgvalues.data import AGE_GROUPS

__all__ = [
    "SYNTHETIC_COLUMN",
    "NOT_ASKED_ITEMS",
    "CALIBRATED_ITEMS",
    "THEME_EFFECTS",
    "ETHNICITY_CODES",
    "RELIGION_CODES",
    "reference",
    "generate_sample",
    "write_sample",
    "configure_parser",
    "main",
]

#: Column set to 1 on every synthetic row (the loader's "synthetic" label).
SYNTHETIC_COLUMN = "SGV_SYNTHETIC"

#: The generator's population parameters (``resources/synthetic_population.yaml``): every
#: modelling choice below, each explained by a comment there.
POPULATION_FILE = "resources/synthetic_population.yaml"

_POPULATION_KEYS = (
    "population_seed", "not_asked_items", "calibrated_items", "age_limits", "ethnicity_codes", "others_split",
    "religion_codes", "traits", "catholic_share_of_christians", "indian_sampling_share", "ethnic_age_tilt",
    "religion_age_tilt", "pr_share", "theme_effects", "default_theme", "semantic_loadings", "trait_religion_mean",
    "trait_ethnic_mean", "trait_age_slope", "trait_female_shift", "trait_sd", "missing_rate", "sensitive_items",
    "dropped_code_rules", "dropped_code_rate", "secondary_raw_rate", "second_choice",
)


def _frozen(x):
    """YAML lists as tuples, recursively (the parameters are constants)."""
    if isinstance(x, list):
        return tuple(_frozen(v) for v in x)
    if isinstance(x, dict):
        return {k: _frozen(v) for k, v in x.items()}
    return x


def _read_population(text: str) -> dict:
    """Parse the text of :data:`POPULATION_FILE`: exactly its known keys, lists as tuples.

    Raises
    ------
    ValueError
        when the text is not a mapping, lacks a key the generator reads, or holds one it does
        not know.

    Examples
    --------
    >>> _read_population("population_seed: 1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: sgvalues/resources/synthetic_population.yaml: missing key(s) ['not_asked_items', ...
    """
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"sgvalues/{POPULATION_FILE}: expected a mapping of parameters, got {type(data).__name__}")
    missing = [k for k in _POPULATION_KEYS if k not in data]
    unknown = sorted(set(data) - set(_POPULATION_KEYS))
    if missing or unknown:
        raise ValueError(f"sgvalues/{POPULATION_FILE}: missing key(s) {missing}, unknown key(s) {unknown}; "
                         f"expected exactly {list(_POPULATION_KEYS)}")
    return _frozen(data)


@lru_cache(maxsize=1)
def _population_parameters() -> dict:
    """The parameters in :data:`POPULATION_FILE`, read once (see :func:`_read_population`)."""
    return _read_population(resources.files("sgvalues").joinpath(POPULATION_FILE).read_text(encoding="utf-8"))


_P = _population_parameters()
#: Items written as -4 "not asked in this country" for every respondent (a generator choice).
NOT_ASKED_ITEMS: tuple[str, ...] = _P["not_asked_items"]
#: Items calibrated to the real Singapore aggregates in ``resources/singapore_reference.json``.
CALIBRATED_ITEMS: tuple[str, ...] = _P["calibrated_items"]
#: Seed of the question-level parameters: the same population whatever the sample seed.
POPULATION_SEED: int = _P["population_seed"]

# ---------------------------------------------------------------------------------------
# Demographic codes (the official file's) and the generator's internal level order
# ---------------------------------------------------------------------------------------
#: the WVS-7 age bands (X003R codes 1..6), as the respondents table labels them
AGE_BANDS = AGE_GROUPS
AGE_LIMITS = _P["age_limits"]
#: internal ethnic group -> Q290 code(s); "Others" is split over three codebook codes
ETHNICITY_CODES: dict[str, tuple[int, ...]] = _P["ethnicity_codes"]
OTHERS_SPLIT = _P["others_split"]
ETHNICITIES = tuple(ETHNICITY_CODES)
#: internal religion level -> Q289 major-group code
RELIGION_CODES: dict[str, int] = _P["religion_codes"]
RELIGIONS = tuple(RELIGION_CODES)
TRAITS: tuple[str, ...] = _P["traits"]
CATHOLIC_SHARE_OF_CHRISTIANS = (_P["catholic_share_of_christians"]["catholic_percent"]
                                / _P["catholic_share_of_christians"]["christian_percent"])
INDIAN_SAMPLING_SHARE: float = _P["indian_sampling_share"]
ETHNIC_AGE_TILT: dict[str, float] = _P["ethnic_age_tilt"]
RELIGION_AGE_TILT: dict[str, float] = _P["religion_age_tilt"]
PR_SHARE: float = _P["pr_share"]
#: theme -> sds of the main effects and trait loadings, interaction scale, modal lead range
THEME_EFFECTS: dict[str, dict] = _P["theme_effects"]
_DEFAULT_THEME = _P["default_theme"]
#: question -> {trait: loading}, replacing the random loading for that trait
SEMANTIC_LOADINGS: dict[str, dict[str, float]] = _P["semantic_loadings"]
_TRAIT_RELIGION_MEAN = _P["trait_religion_mean"]
_TRAIT_ETHNIC_MEAN = _P["trait_ethnic_mean"]
_TRAIT_AGE_SLOPE = _P["trait_age_slope"]
_TRAIT_FEMALE_SHIFT = _P["trait_female_shift"]
_TRAIT_SD = _P["trait_sd"]
_MISSING_RATE = _P["missing_rate"]
SENSITIVE_ITEMS = frozenset(_P["sensitive_items"])
_DROPPED_CODE_RULES = _P["dropped_code_rules"]
_DROPPED_CODE_RATE: float = _P["dropped_code_rate"]
_SECONDARY_RAW_RATE: float = _P["secondary_raw_rate"]
SECOND_CHOICE: dict[str, str] = _P["second_choice"]


def _expit(x):
    """Logistic function (numpy only: scipy.special costs a second to import)."""
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p):
    """Log-odds, the inverse of :func:`_expit`."""
    p = np.asarray(p, dtype=float)
    return np.log(p) - np.log1p(-p)


# ---------------------------------------------------------------------------------------
# Reference figures
# ---------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _reference_text() -> str:
    return resources.files("sgvalues").joinpath("resources/singapore_reference.json").read_text(encoding="utf-8")


def reference() -> dict:
    """The published figures the sample follows (``resources/singapore_reference.json``).

    Returns
    -------
    dict
        ``census_2020`` (ethnic and religious shares), ``wvs7_singapore_sample`` (sex and
        age-band counts), ``paper_subgroups`` and ``real_aggregates`` (nine items' answer
        shares overall, by sex and by age band), with ``sources``.

    Examples
    --------
    >>> reference()["wvs7_singapore_sample"]["sex_counts"]
    {'Female': 1088, 'Male': 924}
    """
    return json.loads(_reference_text())


def _largest_remainder(shares, total: int) -> np.ndarray:
    """Integer counts summing to ``total`` proportional to ``shares`` (Hamilton's method)."""
    shares = np.asarray(shares, dtype=float)
    exact = shares / shares.sum() * total
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def _religion_table(ref: dict) -> np.ndarray:
    """P(religion | ethnic group), rows Chinese, Malay, Indian, Others; columns RELIGIONS.

    Census shares within ethnic group, with the generator's assumptions for what the census
    leaves open: Christians split by the national Catholic share; Taoists and the unlisted
    remainder go to "Other" for Chinese and Indians; the Malay remainder (0.7 %) is
    Christian; the Others group's non-"no religion" 85.4 % is spread 50 % Christian, 20 %
    Muslim, 10 % Buddhist and 5.4 % other religions.
    """
    within = ref["census_2020"]["religion_within_ethnicity_percent"]
    cat = CATHOLIC_SHARE_OF_CHRISTIANS

    def row(none, christian, muslim, hindu, buddhist, other):
        return [none, christian * cat, christian * (1 - cat), muslim, hindu, buddhist, other]

    ch, ma, ind = within["Chinese"], within["Malay"], within["Indian"]
    chinese = row(ch["No religion"], ch["Christianity"], ch["Islam"], 0.0, ch["Buddhism"],
                  ch["Taoism"] + (100 - sum(ch.values())))
    malay = row(ma["No religion"], 100 - sum(ma.values()), ma["Islam"], 0.0, ma["Buddhism"], 0.0)
    indian = row(ind["No religion"], ind["Christianity"], ind["Islam"], ind["Hinduism"],
                 ind["Buddhism"], 100 - sum(ind.values()))
    others_none = within["Others"]["No religion"]
    others = row(others_none, 50.0, 20.0, 0.0, 10.0, 100 - others_none - 80.0)
    table = np.array([chinese, malay, indian, others], dtype=float)
    return table / table.sum(axis=1, keepdims=True)


def _tilted(base: np.ndarray, slopes: np.ndarray, band_weights: np.ndarray) -> np.ndarray:
    """P(category | age band) with log-odds tilts ``slopes * z`` that keep the margin ``base``.

    ``z`` is the centred band index; the per-category constants are fitted by iterative
    proportional fitting so that :math:`\\sum_a w_a P(c|a) = base_c`.
    """
    z = np.arange(len(band_weights)) - (len(band_weights) - 1) / 2
    logc = np.log(np.maximum(base, 1e-12))
    for _ in range(50):
        p = np.exp(logc[None, :] + slopes[None, :] * z[:, None])
        p /= p.sum(axis=1, keepdims=True)
        margin = band_weights @ p
        logc += np.log(np.maximum(base, 1e-12)) - np.log(np.maximum(margin, 1e-12))
    p = np.exp(logc[None, :] + slopes[None, :] * z[:, None])
    p[:, base <= 0] = 0.0
    return p / p.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------
# Respondents: demographics and latent traits
# ---------------------------------------------------------------------------------------
def _systematic_choice(prob: np.ndarray, cell: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one category per row, with counts per ``cell`` within one of their expectation.

    Systematic sampling: the :math:`m` rows of a cell get the points
    :math:`u_j = (\\pi(j) + U)/m` (a random permutation :math:`\\pi` and one uniform
    :math:`U`) and take the category whose cumulative probability interval holds
    :math:`u_j`. Who gets which category is random; how many is (almost) fixed, so the
    sample's composition stays close to the reference figures for every seed. ``prob`` is
    (rows, categories) and must be the same for all rows of a cell.
    """
    u = np.empty(len(cell))
    for c in np.unique(cell):
        idx = np.flatnonzero(cell == c)
        u[idx] = (rng.permutation(len(idx)) + rng.random()) / len(idx)
    cum = np.cumsum(prob, axis=1)
    cum[:, -1] = 1.0
    return (u[:, None] >= cum[:, :-1]).sum(axis=1)


def _demographics(n: int, seed: int, ref: dict) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 1])
    sample = ref["wvs7_singapore_sample"]
    band_counts = _largest_remainder([sample["age_group_counts"][b] for b in AGE_BANDS], n)
    n_female = int(_largest_remainder([sample["sex_counts"]["Male"], sample["sex_counts"]["Female"]], n)[1])
    # Women spread over bands in proportion to band size; the totals stay exact.
    female_by_band = _largest_remainder(band_counts, n_female) if n_female else np.zeros(6, int)
    age_band = np.repeat(np.arange(6), band_counts)
    female = np.zeros(n, dtype=bool)
    start = 0
    for b, size in enumerate(band_counts):
        female[start + rng.permutation(size)[: female_by_band[b]]] = True
        start += size

    # Age in years: uniform within bands, a decaying tail over 65-91.
    age = np.empty(n, dtype=int)
    for b, (lo, hi) in enumerate(AGE_LIMITS):
        idx = np.flatnonzero(age_band == b)
        years = np.arange(lo, hi + 1)
        p = np.exp(-(years - lo) / 9.0) if b == 5 else np.ones(len(years))
        age[idx] = rng.choice(years, size=len(idx), p=p / p.sum())
    if n >= 100:  # the real sample spans 21..91
        age[np.flatnonzero(age_band == 0)[0]] = 21
        age[np.flatnonzero(age_band == 5)[0]] = 91

    census = ref["census_2020"]["ethnicity_percent"]
    eth_share = np.array([census[e] for e in ETHNICITIES], dtype=float)
    eth_share /= eth_share.sum()
    sampling = eth_share.copy()
    sampling[2] = INDIAN_SAMPLING_SHARE
    rest = [0, 1, 3]
    sampling[rest] *= (1 - INDIAN_SAMPLING_SHARE) / sampling[rest].sum()
    band_w = band_counts / max(n, 1)
    p_eth = _tilted(sampling, np.array([ETHNIC_AGE_TILT[e] for e in ETHNICITIES]), band_w)
    ethnicity = _systematic_choice(p_eth[age_band], age_band, rng)

    rel_table = _religion_table(ref)
    slopes = np.array([RELIGION_AGE_TILT[r] for r in RELIGIONS])
    p_rel = np.empty((n, len(RELIGIONS)))
    for e in range(len(ETHNICITIES)):
        idx = ethnicity == e
        # the age tilt applies to the Chinese group only (see RELIGION_AGE_TILT)
        table = (_tilted(rel_table[e], slopes, band_w) if e == 0
                 else np.tile(rel_table[e], (6, 1)))
        p_rel[idx] = table[age_band[idx]]
    religion = _systematic_choice(p_rel, ethnicity * 6 + age_band, rng)
    others_code = rng.choice(len(OTHERS_SPLIT), size=n, p=np.array(OTHERS_SPLIT) / sum(OTHERS_SPLIT))
    permanent_resident = rng.random(n) < PR_SHARE
    return {"female": female, "age_band": age_band, "age": age, "ethnicity": ethnicity,
            "religion": religion, "others_code": others_code, "pr": permanent_resident}


def _traits(demo: dict, seed: int) -> np.ndarray:
    """Latent traits, (n, 5) in :data:`TRAITS` order: group mean + normal noise."""
    rng = np.random.default_rng([seed, 2])
    n = len(demo["age_band"])
    z_age = demo["age_band"] - 2.5
    out = np.empty((n, len(TRAITS)))
    for t, name in enumerate(TRAITS):
        mean = _TRAIT_AGE_SLOPE.get(name, 0.0) * z_age + _TRAIT_FEMALE_SHIFT.get(name, 0.0) * demo["female"]
        if name in _TRAIT_RELIGION_MEAN:
            mean = mean + np.asarray(_TRAIT_RELIGION_MEAN[name])[demo["religion"]]
        if name in _TRAIT_ETHNIC_MEAN:
            mean = mean + np.asarray(_TRAIT_ETHNIC_MEAN[name])[demo["ethnicity"]]
        out[:, t] = mean + _TRAIT_SD[name] * rng.standard_normal(n)
    return out


# ---------------------------------------------------------------------------------------
# Question parameters (fixed population seed)
# ---------------------------------------------------------------------------------------
def _centred(x: np.ndarray, axis=None) -> np.ndarray:
    return x - x.mean(axis=axis, keepdims=True)


def _target_shares(kind: str, k: int, rng: np.random.Generator, gap=(0.08, 0.3)) -> np.ndarray:
    """A skewed, survey-like answer distribution over ``k`` ordered (or nominal) codes.

    The modal code leads the runner-up by at least a gap drawn from ``gap`` (survey items
    usually have a clear most common answer); mass moves to the mode when it does not.
    """
    grid = np.arange(1, k + 1)
    if kind == "nominal":
        p = rng.dirichlet(np.full(k, 2.0))
    elif k == 2:
        p1 = rng.uniform(0.1, 0.9)
        p = np.array([p1, 1 - p1])
    elif kind == "scale_1_10":
        centre, spread = rng.uniform(2.5, 8.5), rng.uniform(1.4, 2.8)
        p = np.exp(-0.5 * ((grid - centre) / spread) ** 2)
        p /= p.sum()
        # heaping on the midpoint and on an end, as 1-10 scales show in practice
        p[4] += rng.uniform(0.02, 0.10)
        p[-1 if centre > 5.5 else 0] += rng.uniform(0.01, 0.08)
        p /= p.sum()
    else:
        # Location anywhere from the first to the last code, leaning to the ends (agree or
        # disagree, important or not), spread about one code.
        centre = 1 + (k - 1) * rng.beta(0.8, 0.8)
        spread = rng.uniform(0.55, 1.25) * math.sqrt(k / 4)
        p = np.exp(-0.5 * ((grid - centre) / spread) ** 2)
        p = 0.88 * p / p.sum() + 0.12 * rng.dirichlet(np.ones(k))
    want = rng.uniform(*gap)
    top, second = np.sort(p)[::-1][:2]
    if top - second < want:
        # (1 - t) p + t e_mode has gap (1 - t)(top - second) + t = want
        t = (want - (top - second)) / (1 - (top - second))
        p = (1 - t) * p
        p[int(np.argmax(p))] += t
    p = np.maximum(p, 0.004)
    return p / p.sum()


def _real_shares(ref: dict, qid: str, codes: list[int]) -> dict:
    """Target shares and the sex / age-band latent shifts from the real aggregates."""
    item = ref["real_aggregates"]["items"][qid]

    def shares(block):
        p = np.array([block["shares"].get(str(c), 0.0) for c in codes], dtype=float)
        p = np.maximum(p, 0.0005)
        return p / p.sum()

    overall = shares(item["all"])
    cum = np.clip(np.cumsum(overall)[:-1], 1e-4, 1 - 1e-4)
    w = cum * (1 - cum)

    def shift(block):
        c = np.clip(np.cumsum(shares(block))[:-1], 1e-4, 1 - 1e-4)
        # P(y <= k) = logistic(tau_k - eta): a group with fewer low codes has a larger eta
        return float(np.sum(w * (_logit(cum) - _logit(c))) / w.sum())

    sex = np.array([shift(item["by_sex"]["Male"]), shift(item["by_sex"]["Female"])])
    age = np.array([shift(item["by_age_group"][b]) for b in AGE_BANDS])
    return {"shares": overall, "sex": sex - sex.mean(), "age": age - age.mean(),
            "valid": item["all"]["n"] / ref["wvs7_singapore_sample"]["n"]}


def _question_params(row, ref: dict) -> dict:
    """Everything about one question that does not depend on the sample seed."""
    qid, number, kind = row["question_id"], int(row["number"]), row["scale_kind"]
    rng = np.random.default_rng([POPULATION_SEED, number])
    codes = sorted(int(c) for c in row["options"])
    k = len(codes)
    theme = str(row["theme"])
    sd = THEME_EFFECTS.get(theme, _DEFAULT_THEME)
    n_out = k if kind == "nominal" else 1  # nominal: one utility per option
    shape = lambda *dims: (*dims, n_out)  # noqa: E731
    z_age = (np.arange(6) - 2.5)[:, None]
    # Age effects are mostly a smooth trend (older vs younger) plus a little band noise.
    age = _centred(rng.normal(0, sd["age"], (1, n_out)) * z_age / 1.7
                   + rng.normal(0, sd["age"] * 0.35, shape(6)), 0)
    eff = {
        "sex": _centred(rng.normal(0, sd["sex"], shape(2)), 0),
        "age": age,
        "eth": _centred(rng.normal(0, sd["eth"], shape(4)), 0),
        "rel": _centred(rng.normal(0, sd["rel"], shape(7)), 0),
    }
    inter = sd["inter"]
    eff["age_rel"] = _centred(_centred(rng.normal(0, inter * max(sd["age"], sd["rel"]), shape(6, 7)), 0), 1)
    eff["eth_rel"] = _centred(_centred(rng.normal(0, inter * max(sd["eth"], sd["rel"]), shape(4, 7)), 0), 1)
    eff["sex_age"] = _centred(_centred(rng.normal(0, inter * 0.6 * max(sd["sex"], sd["age"]), shape(2, 6)), 0), 1)
    eff["sex_rel"] = _centred(_centred(rng.normal(0, inter * 0.6 * max(sd["sex"], sd["rel"]), shape(2, 7)), 0), 1)
    loadings = np.stack([rng.normal(0, sd[t], n_out) for t in TRAITS])  # (5, n_out)
    for t, value in SEMANTIC_LOADINGS.get(qid, {}).items():
        loadings[TRAITS.index(t)] = value
    shares = _target_shares(kind, k, rng, sd["gap"])

    missing = _MISSING_RATE.get(theme, 0.02) * math.exp(rng.normal(0, 0.5) - 0.125)
    if kind == "scale_1_10":
        missing *= 1.3
    if qid in SENSITIVE_ITEMS:
        missing *= 2
    real = None
    if qid in CALIBRATED_ITEMS:
        real = _real_shares(ref, qid, codes)
        shares, missing = real["shares"], 1 - real["valid"]
    return {"qid": qid, "kind": kind, "codes": codes, "eff": eff, "loadings": loadings,
            "shares": shares, "missing": min(missing, 0.25), "real": real,
            "refusal_share": 0.5 if qid in SENSITIVE_ITEMS else 0.25}


def _raw_plan(row) -> dict:
    """How recoded answer codes go back to the raw codes the official file holds."""
    adjustment = row["adjustment"] or {}
    to_raw: dict[int, list[int]] = {}
    dropped = []
    for raw in sorted(int(c) for c in row["raw_options"]):
        rec = adjustment.get(raw, raw)
        if rec is None:
            dropped.append(raw)
        else:
            to_raw.setdefault(int(rec), []).append(raw)
    primary, secondary = {}, {}
    for rec, raws in to_raw.items():
        # prefer the raw code equal to the recoded one ("1" for Q241's 0/1 -> 1)
        main = rec if rec in raws else raws[0]
        primary[rec] = main
        others = [r for r in raws if r != main]
        if others:
            secondary[rec] = others[0]
    offset = min(primary)
    lookup = np.zeros(max(primary) - offset + 1, dtype=np.int64)
    for rec, raw in primary.items():
        lookup[rec - offset] = raw
    return {"primary": primary, "secondary": secondary, "dropped": dropped,
            "lookup": lookup, "offset": offset}


@lru_cache(maxsize=1)
def _population() -> tuple:
    """Question parameters for the whole catalogue (cached; the catalogue is static)."""
    from .catalogue import load_catalogue

    cat = load_catalogue().sort_values("number")
    ref = reference()
    params, plans = [], []
    for row in cat.to_dict("records"):
        params.append(_question_params(row, ref))
        plans.append(_raw_plan(row))
    return tuple(params), tuple(plans), tuple(cat["question_id"])


# ---------------------------------------------------------------------------------------
# Answers
# ---------------------------------------------------------------------------------------
def _linear_predictor(p: dict, demo: dict, traits: np.ndarray, skip: tuple = ()) -> np.ndarray:
    """:math:`\\eta` for every respondent, (n, n_out)."""
    s = demo["female"].astype(int)
    a, e, r = demo["age_band"], demo["ethnicity"], demo["religion"]
    eff = p["eff"]
    terms = {"sex": eff["sex"][s], "age": eff["age"][a], "eth": eff["eth"][e], "rel": eff["rel"][r],
             "age_rel": eff["age_rel"][a, r], "eth_rel": eff["eth_rel"][e, r],
             "sex_age": eff["sex_age"][s, a], "sex_rel": eff["sex_rel"][s, r]}
    eta = traits @ p["loadings"]
    for name, value in terms.items():
        if name not in skip:
            eta = eta + value
    return eta


def _solve_thresholds(eta: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Thresholds :math:`\\tau` with :math:`\\bar F(\\tau_k - \\eta) = \\sum_{j\\le k}\\pi_j` (Newton)."""
    target = np.cumsum(shares)[:-1]
    # logistic-normal approximation as the starting point, then Newton steps
    scale = math.sqrt(1 + 3 * eta.var() / math.pi ** 2)
    tau = eta.mean() + scale * _logit(target)
    for _ in range(8):
        f = _expit(tau[:, None] - eta[None, :])
        g = f.mean(axis=1) - target
        if np.abs(g).max() < 2e-5:  # shares to 0.002 percentage points
            break
        d = (f * (1 - f)).mean(axis=1)
        tau -= np.clip(g / np.maximum(d, 1e-9), -2, 2)
    return np.maximum.accumulate(tau)


def _ordered_answers(p: dict, demo: dict, traits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    real = p["real"]
    if real is None:
        eta = _linear_predictor(p, demo, traits)[:, 0]
    else:
        # Calibrated item: sex and age effects chosen so the *marginal* sex and age-band
        # shifts match the real ones, net of what the other terms already imply.
        other = _linear_predictor(p, demo, traits, skip=("sex", "age", "sex_age"))[:, 0]
        inflate = math.sqrt(1 + 3 * other.var() / math.pi ** 2)  # ordered-logit attenuation
        s = demo["female"].astype(int)
        a = demo["age_band"]
        centred = other - other.mean()
        implied_sex = np.array([centred[s == g].mean() if (s == g).any() else 0.0 for g in (0, 1)])
        implied_age = np.array([centred[a == g].mean() if (a == g).any() else 0.0 for g in range(6)])
        sex_eff = real["sex"] * inflate - implied_sex
        age_eff = real["age"] * inflate - implied_age
        eta = other + sex_eff[s] + age_eff[a]
    tau = _solve_thresholds(eta, p["shares"])
    latent = eta + _logit(rng.uniform(1e-12, 1 - 1e-12, len(eta)))
    index = (latent[:, None] > tau[None, :]).sum(axis=1)
    return np.asarray(p["codes"])[index]


def _nominal_answers(p: dict, demo: dict, traits: np.ndarray, rng: np.random.Generator):
    """First and runner-up choices of a multinomial logit calibrated to ``p['shares']``."""
    util = _linear_predictor(p, demo, traits)
    alpha = np.log(p["shares"])
    for _ in range(60):
        v = util + alpha
        prob = np.exp(v - v.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
        gap = np.log(p["shares"]) - np.log(prob.mean(axis=0))
        alpha += gap
        if np.abs(gap).max() < 1e-4:
            break
    noisy = util + alpha + rng.gumbel(size=util.shape)
    order = np.argsort(-noisy, axis=1, kind="stable")
    codes = np.asarray(p["codes"])
    return codes[order[:, 0]], codes[order[:, 1]]


def _to_raw(rec: np.ndarray, plan: dict, qid: str, demo: dict, rng: np.random.Generator) -> np.ndarray:
    lookup = plan["lookup"]
    raw = lookup[rec - plan["offset"]]
    u = rng.random(len(rec))
    for rec_code, alt in plan["secondary"].items():
        raw[(rec == rec_code) & (u < _SECONDARY_RAW_RATE)] = alt
    if plan["dropped"]:
        who, rate = _DROPPED_CODE_RULES.get(qid, ("all", _DROPPED_CODE_RATE))
        eligible = demo["pr"] if who == "pr" else np.ones(len(rec), dtype=bool)
        hit = eligible & (rng.random(len(rec)) < rate)
        raw[hit] = rng.choice(plan["dropped"], size=int(hit.sum()))
    return raw


def _apply_missing(raw: np.ndarray, p: dict, propensity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rate = p["missing"]
    if rate <= 0:
        return raw
    b = 0.9
    # shift so the mean of logistic(c + b u) is about ``rate`` (logistic-normal approximation)
    c = _logit(rate) * math.sqrt(1 + math.pi * b ** 2 / 8)
    miss = rng.random(len(raw)) < _expit(c + b * propensity)
    refuse = rng.random(len(raw)) < p["refusal_share"]
    out = raw.copy()
    out[miss] = np.where(refuse[miss], -2, -1)
    return out


# ---------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------
def _rake(groups: list[np.ndarray], targets: list[np.ndarray], iters: int = 50) -> np.ndarray:
    """Raking (iterative proportional fitting) weights, trimmed to [0.25, 4], mean 1."""
    n = len(groups[0])
    w = np.ones(n)
    for _ in range(iters):
        for g, t in zip(groups, targets):
            have = np.bincount(g, weights=w, minlength=len(t))
            factor = np.divide(t * w.sum(), have, out=np.ones_like(t), where=have > 0)
            w = w * factor[g]
    w = np.clip(w / w.mean(), 0.25, 4.0)
    return w / w.mean()


def _weights(demo: dict, ref: dict) -> np.ndarray:
    census = ref["census_2020"]["ethnicity_percent"]
    eth_t = np.array([census[e] for e in ETHNICITIES], dtype=float)
    ages = ref["wvs7_singapore_sample"]["age_group_counts"]
    age_t = np.array([ages[b] for b in AGE_BANDS], dtype=float)
    # Sex target 50/50 is this generator's assumption (the sample over-represents women).
    sex_t = np.array([0.5, 0.5])
    targets = [t / t.sum() for t in (sex_t, age_t, eth_t)]
    groups = [demo["female"].astype(int), demo["age_band"], demo["ethnicity"]]
    return _rake(groups, targets)


# ---------------------------------------------------------------------------------------
# The sample
# ---------------------------------------------------------------------------------------
def generate_sample(n: int = 2012, seed: int = 0) -> pd.DataFrame:
    """A synthetic Singapore-like WVS-7 sample as the official file would hold it.

    Parameters
    ----------
    n : int
        Number of respondents (the real Singapore sample has 2,012). Sex and age-band counts
        are the real sample's, scaled to ``n``.
    seed : int
        Seed of the respondents (demographics, traits, answers, missing codes). The question
        parameters are fixed, so different seeds draw different samples of one population.

    Returns
    -------
    pandas.DataFrame
        One row per respondent, columns ``A_WAVE``, ``A_YEAR``, ``B_COUNTRY`` (702),
        ``B_COUNTRY_ALPHA`` ("SGP"), ``D_INTERVIEW`` (unique), ``S025``, ``W_WEIGHT``,
        ``Q1`` ... ``Q259`` (raw codes, WVS missing codes -1, -2, -3, -4), ``Q260`` (sex),
        ``Q262`` (age), ``Q289`` (religion), ``Q290`` (ethnic group), ``X003R``, ``X003R2``
        and ``SGV_SYNTHETIC`` (1). All integer columns except ``W_WEIGHT`` and
        ``B_COUNTRY_ALPHA``.

    Notes
    -----
    The answer model is described in the module docstring: an ordered logit per question,
    :math:`P(y_{iq} \\le k) = \\operatorname{logistic}(\\tau_{qk} - \\eta_{iq})`, with
    :math:`\\eta_{iq}` the sum of theme-scaled subgroup effects, a few interactions and
    latent-trait loadings.

    Examples
    --------
    >>> a = generate_sample(n=50, seed=3)
    >>> b = generate_sample(n=50, seed=3)
    >>> a.equals(b), a["D_INTERVIEW"].is_unique
    (True, True)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    n, seed = int(n), int(seed)
    ref = reference()
    params, plans, qids = _population()
    demo = _demographics(n, seed, ref)
    traits = _traits(demo, seed)
    propensity = np.random.default_rng([seed, 4]).standard_normal(n) + 0.15 * (demo["age_band"] - 2.5)

    columns: dict[str, np.ndarray] = {}
    runner_up: dict[str, np.ndarray] = {}
    for p, plan in zip(params, plans):
        qid = p["qid"]
        number = int(qid[1:])
        if qid in NOT_ASKED_ITEMS:
            columns[qid] = np.full(n, -4, dtype=np.int64)
            continue
        rng = np.random.default_rng([seed, 3, number])
        if qid in SECOND_CHOICE:
            first = columns[SECOND_CHOICE[qid]]
            raw = _to_raw(runner_up[SECOND_CHOICE[qid]], plan, qid, demo, rng)
            raw = _apply_missing(raw, {**p, "missing": p["missing"] / 2, "refusal_share": 0.7},
                                 propensity, rng)
            raw[first < 0] = -3  # no first answer -> second not applicable
            columns[qid] = raw
            continue
        if p["kind"] == "nominal":
            rec, second = _nominal_answers(p, demo, traits, rng)
            runner_up[qid] = second
        else:
            rec = _ordered_answers(p, demo, traits, rng)
        raw = _to_raw(rec, plan, qid, demo, rng)
        columns[qid] = _apply_missing(raw, p, propensity, rng)

    rng = np.random.default_rng([seed, 5])
    religion = np.array([RELIGION_CODES[r] for r in RELIGIONS])[demo["religion"]]
    religion[rng.random(n) < 0.003] = -2  # a few refuse to give their religion
    eth = demo["ethnicity"]
    q290 = np.array([ETHNICITY_CODES[e][0] for e in ETHNICITIES])[eth]
    others = np.array(ETHNICITY_CODES["Others"])[demo["others_code"]]
    q290 = np.where(eth == ETHNICITIES.index("Others"), others, q290)
    age = demo["age"]
    order = rng.permutation(n)  # file order carries no information

    head = {
        "A_WAVE": np.full(n, 7), "A_YEAR": np.full(n, 2020), "B_COUNTRY": np.full(n, 702),
        "B_COUNTRY_ALPHA": np.full(n, "SGP", dtype=object),
        "D_INTERVIEW": np.zeros(n, dtype=np.int64), "S025": np.full(n, 7022020),
        "W_WEIGHT": np.round(_weights(demo, ref), 6),
    }
    tail = {
        "Q260": np.where(demo["female"], 2, 1), "Q262": age, "Q289": religion, "Q290": q290,
        "X003R": demo["age_band"] + 1,
        "X003R2": np.where(age < 30, 1, np.where(age < 50, 2, 3)),
        SYNTHETIC_COLUMN: np.ones(n, dtype=np.int64),
    }
    data = {name: np.asarray(col)[order] for name, col in {**head, **{q: columns[q] for q in qids}, **tail}.items()}
    data["D_INTERVIEW"] = 702_000_001 + np.arange(n, dtype=np.int64)
    for name, col in data.items():
        if name not in ("W_WEIGHT", "B_COUNTRY_ALPHA"):
            data[name] = col.astype(np.int64, copy=False)
    df = pd.DataFrame(data)
    df.attrs["synthetic"] = True
    return df


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------
_FORMATS = {".csv": "csv", ".sav": "sav", ".dta": "dta", ".rds": "rds"}
_FIXED_SAV_DATE, _FIXED_SAV_TIME = b"01 Mar 20", b"00:00:00"
_FIXED_DTA_STAMP = b"01 Mar 2020 00:00"


def _value_labels(df: pd.DataFrame) -> tuple[dict, dict]:
    from .catalogue import load_catalogue

    cat = load_catalogue()
    labels, columns = {}, {}
    for q, row in cat.iterrows():
        if q in df.columns:
            labels[q] = {int(k): str(v) for k, v in {**row["raw_options"], **row["missing_codes"]}.items()}
            columns[q] = str(row["label"])
    labels["Q260"] = {1: "Male", 2: "Female"}
    labels["Q289"] = {0: "Do not belong to a denomination", 1: "Roman Catholic", 2: "Protestant",
                      5: "Muslim", 6: "Hindu", 7: "Buddhist", 9: "Other", -2: "No answer/refused"}
    labels["Q290"] = {702001: "SG: Caucasian white", 702003: "SG: South Asian Indian, Pakistan, etc.",
                      702004: "SG: Chinese", 702006: "SG: Malay", 702008: "SG: Eurasian",
                      702999: "SG: Others"}
    labels["X003R"] = {1: "16-24 years", 2: "25-34 years", 3: "35-44 years", 4: "45-54 years",
                       5: "55-64 years", 6: "65 and over"}
    labels["X003R2"] = {1: "16-29 years", 2: "30-49 years", 3: "50 years and over"}
    columns.update({"Q260": "Sex", "Q262": "Age", "Q289": "Religious denominations - major groups",
                    "Q290": "Ethnic group", "X003R": "Age recoded (6 intervals)",
                    "X003R2": "Age recoded (3 intervals)", "W_WEIGHT": "Weight",
                    SYNTHETIC_COLUMN: "SYNTHETIC sample generated by sgvalues (not WVS data)"})
    return labels, columns


def _pin_timestamp(path: Path, fmt: str) -> None:
    """Replace the creation time readstat writes into .sav/.dta headers by a fixed one."""
    data = bytearray(path.read_bytes())
    if fmt == "sav":
        # SPSS header: creation date at byte 92 ("dd mmm yy"), time at 101 ("hh:mm:ss").
        data[92:101], data[101:109] = _FIXED_SAV_DATE, _FIXED_SAV_TIME
    else:
        # Stata 118+: <timestamp> + one length byte + "dd Mon yyyy hh:mm".
        start = data.find(b"<timestamp>")
        if start >= 0:
            length = data[start + 11]
            if length == len(_FIXED_DTA_STAMP):
                data[start + 12: start + 12 + length] = _FIXED_DTA_STAMP
    path.write_bytes(bytes(data))


def write_sample(path, n: int = 2012, seed: int = 0) -> Path:
    """Generate a synthetic sample and write it; the format follows the extension.

    Parameters
    ----------
    path : path-like
        Output file: ``.csv`` (also when the name has no extension), ``.sav`` (SPSS) and
        ``.dta`` (Stata) via pyreadstat, ``.rds`` (R) via pyreadr; any other extension is an
        error. Missing folders are created.
    n, seed : int
        As in :func:`generate_sample`.

    Returns
    -------
    pathlib.Path
        The written file. The same ``n`` and ``seed`` give byte-identical files (the
        creation time in .sav/.dta headers is pinned).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = write_sample(pathlib.Path(tempfile.mkdtemp()) / "sg.csv", n=20, seed=0)
    >>> out.read_text().splitlines()[0].split(",")[:5]
    ['A_WAVE', 'A_YEAR', 'B_COUNTRY', 'B_COUNTRY_ALPHA', 'D_INTERVIEW']
    """
    path = _output_path(path)
    _write_frame(generate_sample(n=n, seed=seed), path)
    return path


def _output_path(path) -> Path:
    path = Path(path)
    suffix = path.suffix.lower() or ".csv"
    if suffix not in _FORMATS:
        raise ValueError(f"{path}: unsupported extension {path.suffix!r}; expected one of "
                         f"{', '.join(_FORMATS)} (no extension writes .csv)")
    return path if path.suffix else path.with_suffix(".csv")


def _write_frame(df: pd.DataFrame, path: Path) -> None:
    """Write a generated frame in the format of ``path``'s extension (checked already)."""
    fmt = _FORMATS[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        df.to_csv(path, index=False, float_format="%.6f", lineterminator="\n")
    elif fmt in ("sav", "dta"):
        import pyreadstat

        labels, column_labels = _value_labels(df)
        label = "SYNTHETIC Singapore-like WVS-7 sample (sgvalues; not WVS data)"
        if fmt == "sav":
            pyreadstat.write_sav(df, str(path), file_label=label, column_labels=column_labels,
                                 variable_value_labels=labels)
        else:
            # Stata: variable labels up to 80 characters, value labels up to 32,000
            short = {k: v[:80] for k, v in column_labels.items()}
            pyreadstat.write_dta(df, str(path), file_label=label[:80], column_labels=short,
                                 variable_value_labels=labels)
        _pin_timestamp(path, fmt)
    else:
        import pyreadr

        pyreadr.write_rds(str(path), df)


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``sgvalues synth``."""
    parser.add_argument("--out", required=True, help="output file (.csv, .sav, .dta or .rds)")
    parser.add_argument("--seed", type=int, default=0, help="sample seed (default 0)")
    parser.add_argument("--n", type=int, default=2012, help="number of respondents (default 2012)")


def main(args: argparse.Namespace) -> int:
    """Write the synthetic sample; returns the exit status."""
    try:
        path = write_sample(args.out, n=args.n, seed=args.seed)
    except ValueError as exc:
        print(f"sgvalues synth: {exc}")
        return 2
    print(f"wrote {args.n} SYNTHETIC respondents (seed {args.seed}) to {path}")
    return 0
