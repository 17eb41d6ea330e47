"""Synthetic respondents: composition (sex, age, ethnic group, religion), latent traits, weights.

See :mod:`sgvalues.synthetic` for the model; the numbers come from
:mod:`sgvalues.synthetic.parameters`.
"""

from __future__ import annotations

import numpy as np

from sgvalues.synthetic.parameters import (
    TRAIT_AGE_SLOPE,
    TRAIT_ETHNIC_MEAN,
    TRAIT_FEMALE_SHIFT,
    TRAIT_RELIGION_MEAN,
    TRAIT_SD,
    AGE_BANDS,
    AGE_LIMITS,
    CATHOLIC_SHARE_OF_CHRISTIANS,
    ETHNIC_AGE_TILT,
    ETHNICITIES,
    INDIAN_SAMPLING_SHARE,
    OTHERS_SPLIT,
    PR_SHARE,
    RELIGION_AGE_TILT,
    RELIGIONS,
    TRAITS,
)


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


def draw_demographics(n: int, seed: int, ref: dict) -> dict[str, np.ndarray]:
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


def draw_traits(demo: dict, seed: int) -> np.ndarray:
    """Latent traits, (n, 5) in :data:`TRAITS` order: group mean + normal noise."""
    rng = np.random.default_rng([seed, 2])
    n = len(demo["age_band"])
    z_age = demo["age_band"] - 2.5
    out = np.empty((n, len(TRAITS)))
    for t, name in enumerate(TRAITS):
        mean = TRAIT_AGE_SLOPE.get(name, 0.0) * z_age + TRAIT_FEMALE_SHIFT.get(name, 0.0) * demo["female"]
        if name in TRAIT_RELIGION_MEAN:
            mean = mean + np.asarray(TRAIT_RELIGION_MEAN[name])[demo["religion"]]
        if name in TRAIT_ETHNIC_MEAN:
            mean = mean + np.asarray(TRAIT_ETHNIC_MEAN[name])[demo["ethnicity"]]
        out[:, t] = mean + TRAIT_SD[name] * rng.standard_normal(n)
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


def design_weights(demo: dict, ref: dict) -> np.ndarray:
    census = ref["census_2020"]["ethnicity_percent"]
    eth_t = np.array([census[e] for e in ETHNICITIES], dtype=float)
    ages = ref["wvs7_singapore_sample"]["age_group_counts"]
    age_t = np.array([ages[b] for b in AGE_BANDS], dtype=float)
    # Sex target 50/50 is this generator's assumption (the sample over-represents women).
    sex_t = np.array([0.5, 0.5])
    targets = [t / t.sum() for t in (sex_t, age_t, eth_t)]
    groups = [demo["female"].astype(int), demo["age_band"], demo["ethnicity"]]
    return _rake(groups, targets)
