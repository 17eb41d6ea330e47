"""The synthetic population's parameters and the published figures the sample follows.

The generator's modelling choices are read once from ``resources/synthetic_population.yaml``
(:func:`_population_parameters`, which rejects a missing or unknown key) into the module's
constants; :func:`reference` reads the published figures of ``resources/singapore_reference.json``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np
import yaml

from sgvalues.data import AGE_GROUPS

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
DEFAULT_THEME = _P["default_theme"]
#: question -> {trait: loading}, replacing the random loading for that trait
SEMANTIC_LOADINGS: dict[str, dict[str, float]] = _P["semantic_loadings"]
TRAIT_RELIGION_MEAN = _P["trait_religion_mean"]
TRAIT_ETHNIC_MEAN = _P["trait_ethnic_mean"]
TRAIT_AGE_SLOPE = _P["trait_age_slope"]
TRAIT_FEMALE_SHIFT = _P["trait_female_shift"]
TRAIT_SD = _P["trait_sd"]
MISSING_RATE = _P["missing_rate"]
SENSITIVE_ITEMS = frozenset(_P["sensitive_items"])
DROPPED_CODE_RULES = _P["dropped_code_rules"]
DROPPED_CODE_RATE: float = _P["dropped_code_rate"]
SECONDARY_RAW_RATE: float = _P["secondary_raw_rate"]
SECOND_CHOICE: dict[str, str] = _P["second_choice"]


def expit(x):
    """Logistic function (numpy only: scipy.special costs a second to import)."""
    return 1.0 / (1.0 + np.exp(-x))


def logit(p):
    """Log-odds, the inverse of :func:`expit`."""
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
