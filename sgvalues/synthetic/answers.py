"""Synthetic answers: per-question parameters (fixed population seed) and the sample itself.

:func:`generate_sample` puts respondents (:mod:`sgvalues.synthetic.respondents`) and answers
together into the official file's column layout.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd

from sgvalues.synthetic.parameters import (
    DEFAULT_THEME,
    DROPPED_CODE_RATE,
    DROPPED_CODE_RULES,
    MISSING_RATE,
    SECONDARY_RAW_RATE,
    AGE_BANDS,
    CALIBRATED_ITEMS,
    ETHNICITIES,
    ETHNICITY_CODES,
    NOT_ASKED_ITEMS,
    POPULATION_SEED,
    RELIGION_CODES,
    RELIGIONS,
    SECOND_CHOICE,
    SEMANTIC_LOADINGS,
    SENSITIVE_ITEMS,
    SYNTHETIC_COLUMN,
    THEME_EFFECTS,
    TRAITS,
    expit,
    logit,
    reference,
)
from sgvalues.synthetic.respondents import (
    draw_demographics,
    draw_traits,
    design_weights,
)


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
        return float(np.sum(w * (logit(cum) - logit(c))) / w.sum())

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
    sd = THEME_EFFECTS.get(theme, DEFAULT_THEME)
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

    missing = MISSING_RATE.get(theme, 0.02) * math.exp(rng.normal(0, 0.5) - 0.125)
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
    from sgvalues.catalogue import load_catalogue

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
    tau = eta.mean() + scale * logit(target)
    for _ in range(8):
        f = expit(tau[:, None] - eta[None, :])
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
    latent = eta + logit(rng.uniform(1e-12, 1 - 1e-12, len(eta)))
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
        raw[(rec == rec_code) & (u < SECONDARY_RAW_RATE)] = alt
    if plan["dropped"]:
        who, rate = DROPPED_CODE_RULES.get(qid, ("all", DROPPED_CODE_RATE))
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
    c = logit(rate) * math.sqrt(1 + math.pi * b ** 2 / 8)
    miss = rng.random(len(raw)) < expit(c + b * propensity)
    refuse = rng.random(len(raw)) < p["refusal_share"]
    out = raw.copy()
    out[miss] = np.where(refuse[miss], -2, -1)
    return out


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
    demo = draw_demographics(n, seed, ref)
    traits = draw_traits(demo, seed)
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
        "W_WEIGHT": np.round(design_weights(demo, ref), 6),
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
