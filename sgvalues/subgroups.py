"""Demographic axes, strata, subgroup membership and the ``min_n`` rule.

The axes' levels, the strata and their split come from a country profile
(:mod:`sgvalues.countries`); every function takes ``profile=`` (a profile, a ``B_COUNTRY`` code
or a name). Without it, a respondents table uses the profile :func:`sgvalues.data.load_wvs` read
it with (``attrs["profile"]``), anything else Singapore's, whose levels and strata are also the
module constants :data:`AXES` and :data:`STRATA`.

Four **axes** describe a respondent: ``sex``, ``age_group``, ``ethnicity`` and ``religion``.
A **stratum** is one axis or a pair of axes; its **subgroups** are the combinations of levels,
e.g. stratum ``sex_x_age_group`` holds ``sex_x_age_group:Female|25-34``. The compositional
split (after Tan et al. 2026) puts the four single axes and the pairs with ``sex`` in training,
and the three pairs without ``sex`` out of distribution (``ood``), so every OOD subgroup is a
combination of levels the model has only seen one at a time.

A respondent belongs to a subgroup when every axis of its stratum has a known, on-axis value
equal to the subgroup's level; a subgroup is **kept** when at least ``min_n`` respondents
belong to it.

Example
-------
>>> import pandas as pd
>>> r = pd.DataFrame({"sex": ["Male", "Female", "Female", None],
...                   "age_group": ["16-24", "16-24", "65+", "65+"],
...                   "ethnicity": ["Malay", "Malay", "Malay", "Malay"],
...                   "religion": ["Muslim", "Muslim", "Jew", "Muslim"]})
>>> sg = build_subgroups(r, min_n=2)
>>> list(zip(sg["subgroup"], sg["n_respondents"], sg["split"]))[:4]
[('sex:Female', 2, 'train'), ('age_group:16-24', 2, 'train'), ('age_group:65+', 2, 'train'), ('ethnicity:Malay', 4, 'train')]
>>> sg.loc[sg["split"] == "ood", "subgroup"].tolist()
['age_group_x_religion:16-24|Muslim', 'age_group_x_ethnicity:16-24|Malay', 'age_group_x_ethnicity:65+|Malay', 'ethnicity_x_religion:Malay|Muslim']
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from itertools import product

import numpy as np
import pandas as pd

from sgvalues.countries import CountryProfile, Stratum, load_profile, resolve_profile

__all__ = [
    "AXES",
    "Stratum",
    "STRATA",
    "STRATUM_NAMES",
    "TRAIN_STRATA",
    "OOD_STRATA",
    "get_stratum",
    "subgroup_id",
    "parse_subgroup_id",
    "parse_levels",
    "all_subgroups",
    "validate_axes",
    "stratum_codes",
    "build_subgroups",
    "membership_pairs",
    "OFF_AXIS",
    "composition_table",
]

_SINGAPORE = load_profile(702)
#: axis -> its levels, in the order used everywhere (ids, tables, figures): Singapore's profile
AXES: dict[str, tuple[str, ...]] = _SINGAPORE.axis_levels
#: every stratum of Singapore's profile, in table order: single axes, pairs with sex (train),
#: then the ood pairs
STRATA: tuple[Stratum, ...] = _SINGAPORE.strata
STRATUM_NAMES: tuple[str, ...] = _SINGAPORE.stratum_names
TRAIN_STRATA: tuple[str, ...] = _SINGAPORE.train_strata
OOD_STRATA: tuple[str, ...] = _SINGAPORE.ood_strata


def _profile(profile=None, respondents: pd.DataFrame | None = None) -> CountryProfile:
    """The profile asked for, else the one the respondents were loaded with, else Singapore's."""
    if profile is None and respondents is not None and respondents.attrs.get("profile"):
        return load_profile(respondents.attrs["profile"])
    return resolve_profile(profile)


def get_stratum(name: str, profile=None) -> Stratum:
    """The :class:`Stratum` called ``name``; a clear error for unknown names."""
    return _profile(profile).stratum(name)


def subgroup_id(stratum: str, levels: dict[str, str], profile=None) -> str:
    """Subgroup id ``<stratum>:<level>[|<level>]``, levels in the order of the stratum's axes.

    >>> subgroup_id("sex_x_age_group", {"age_group": "25-34", "sex": "Female"})
    'sex_x_age_group:Female|25-34'
    >>> subgroup_id("religion", {"religion": "Christian"}, profile=458)
    'religion:Christian'
    """
    prof = _profile(profile)
    st = prof.stratum(stratum)
    if set(levels) != set(st.axes):
        raise ValueError(f"stratum {stratum!r} needs levels for axes {st.axes}, got {sorted(levels)}")
    axes = prof.axis_levels
    for axis in st.axes:
        if levels[axis] not in axes[axis]:
            raise ValueError(f"axis {axis!r}: level {levels[axis]!r} is not one of {axes[axis]} "
                             f"({prof.name} profile)")
    return f"{stratum}:" + "|".join(levels[a] for a in st.axes)


def parse_subgroup_id(sid: str, profile=None) -> tuple[str, dict[str, str]]:
    """Inverse of :func:`subgroup_id`: ``(stratum, {axis: level})``.

    >>> parse_subgroup_id("ethnicity_x_religion:Indian|None")
    ('ethnicity_x_religion', {'ethnicity': 'Indian', 'religion': 'None'})
    """
    stratum, sep, rest = sid.partition(":")
    if not sep:
        raise ValueError(f"subgroup id {sid!r}: expected '<stratum>:<level>[|<level>]'")
    st = get_stratum(stratum, profile)
    parts = rest.split("|")
    if len(parts) != len(st.axes):
        raise ValueError(f"subgroup id {sid!r}: stratum {stratum!r} has {len(st.axes)} axes, got {len(parts)} levels")
    levels = dict(zip(st.axes, parts))
    subgroup_id(stratum, levels, profile)  # validates the levels
    return stratum, levels


def parse_levels(subgroup: str, levels=None) -> dict[str, str]:
    """A sample's persona levels ``{axis: level}``: from ``levels`` when it says something, else
    from the subgroup id.

    The one reader of the ``levels`` column (JSON text, a mapping, or blank) and of a subgroup
    id ``<stratum>:<level>[|<level>]`` whose stratum names its axes joined by ``_x_``. Unlike
    :func:`parse_subgroup_id` it needs no country profile, so it reads any predictions table.

    Parameters
    ----------
    subgroup : the subgroup id, e.g. ``"age_group_x_religion:25-34|Muslim"``.
    levels : JSON text or a mapping axis -> level; ``None``, ``""``, ``"{}"`` or an empty mapping
        fall back to the id.

    Raises
    ------
    ValueError
        when ``levels`` is not JSON and the id has no ``:``, or the id's stratum has a different
        number of axes than levels.

    Examples
    --------
    >>> parse_levels("age_group_x_religion:25-34|Muslim")
    {'age_group': '25-34', 'religion': 'Muslim'}
    >>> parse_levels("sex:Male", '{"sex": "Male"}')
    {'sex': 'Male'}
    """
    if isinstance(levels, str) and levels.strip():
        try:
            levels = json.loads(levels)
        except json.JSONDecodeError:
            levels = None
    if isinstance(levels, Mapping) and levels:  # an empty mapping says nothing: use the id
        return {str(k): str(v) for k, v in levels.items()}
    stratum, sep, rest = str(subgroup).partition(":")
    if not sep:
        raise ValueError(f"subgroup {subgroup!r} has no 'levels' and is not an id '<stratum>:<level>[|<level>]'")
    axes, parts = stratum.split("_x_"), rest.split("|")
    if len(axes) != len(parts):
        raise ValueError(f"subgroup {subgroup!r}: stratum has {len(axes)} axes but {len(parts)} levels")
    return dict(zip(axes, parts))


def all_subgroups(profile=None) -> pd.DataFrame:
    """Every possible subgroup (before the ``min_n`` rule): ``stratum, subgroup, split, levels``."""
    prof = _profile(profile)
    axes = prof.axis_levels
    rows = []
    for st in prof.strata:
        for combo in product(*(axes[a] for a in st.axes)):
            levels = dict(zip(st.axes, combo))
            rows.append({"stratum": st.name, "subgroup": subgroup_id(st.name, levels, prof),
                         "split": st.split, "levels": json.dumps(levels, ensure_ascii=False)})
    return pd.DataFrame(rows)


def validate_axes(respondents: pd.DataFrame, source: str = "respondents", profile=None) -> None:
    """Check the four axis columns exist and hold only axis levels (or missing).

    ``religion`` may also hold other labels (off the axis). Raises ``ValueError`` naming the
    column, the unexpected values and the levels expected.
    """
    prof = _profile(profile, respondents)
    for axis, ax in prof.axes.items():
        levels = ax.levels
        if axis not in respondents.columns:
            raise ValueError(f"{source}: missing column {axis!r} (expected levels {levels})")
        if ax.open:
            continue
        col = respondents[axis]
        bad = sorted({str(v) for v in col[col.notna()].unique()} - set(levels))
        if bad:
            raise ValueError(f"{source}: column {axis!r} holds {bad}; expected one of {levels} or missing "
                             f"({prof.name} profile)")


def stratum_codes(respondents: pd.DataFrame, stratum: str, profile=None) -> np.ndarray:
    """Index of each respondent's subgroup within ``stratum`` (``-1`` = in none of them).

    The index enumerates :func:`all_subgroups` of the stratum, i.e. the product of the axes'
    levels in the profile's order (last axis fastest).
    """
    prof = _profile(profile, respondents)
    st = prof.stratum(stratum)
    code = np.zeros(len(respondents), dtype=np.int64)
    known = np.ones(len(respondents), dtype=bool)
    for axis in st.axes:
        levels = prof.axis_levels[axis]
        # Off-axis labels and missing values map to -1 in one vectorised pass.
        pos = respondents[axis].map({lv: i for i, lv in enumerate(levels)}).fillna(-1).to_numpy(np.int64)
        known &= pos >= 0
        code = code * len(levels) + np.where(pos >= 0, pos, 0)
    return np.where(known, code, -1)


def build_subgroups(respondents: pd.DataFrame, min_n: int = 30, profile=None) -> pd.DataFrame:
    """The kept subgroups of every stratum, with their sizes.

    Parameters
    ----------
    respondents : DataFrame
        The respondents table (``data.load_wvs``); uses ``sex``, ``age_group``, ``ethnicity``,
        ``religion``.
    min_n : int
        Keep a subgroup when at least this many respondents belong to it.
    profile : CountryProfile, int or str, optional
        Country profile (axes, levels, strata); default: the respondents' own
        (``attrs["profile"]``), else Singapore's.

    Returns
    -------
    DataFrame
        ``stratum, subgroup, n_respondents, split, levels`` (JSON axis -> level), in stratum
        order then level order.

    Notes
    -----
    :math:`n_g = |\\{i : a(i) = \\ell_a \\;\\forall a \\in \\text{axes}(g)\\}|`; a respondent
    with a missing or off-axis value on any axis of the stratum is in none of its subgroups.
    Kept iff :math:`n_g \\ge` ``min_n``.
    """
    if min_n < 1:
        raise ValueError(f"min_n must be >= 1, got {min_n}")
    prof = _profile(profile, respondents)
    validate_axes(respondents, profile=prof)
    frames = []
    candidates = all_subgroups(prof)
    for st in prof.strata:
        codes = stratum_codes(respondents, st.name, prof)
        counts = np.bincount(codes[codes >= 0], minlength=st.n_levels)
        part = candidates[candidates["stratum"] == st.name].copy()
        part["n_respondents"] = counts.astype(np.int64)
        frames.append(part[part["n_respondents"] >= min_n])
    out = pd.concat(frames, ignore_index=True)
    return out[["stratum", "subgroup", "n_respondents", "split", "levels"]].reset_index(drop=True)


def membership_pairs(respondents: pd.DataFrame, subgroups: pd.DataFrame,
                     profile=None) -> tuple[np.ndarray, np.ndarray]:
    """All (respondent row, subgroup row) memberships, as two aligned integer arrays.

    ``subgroups`` is a table from :func:`build_subgroups` (any subset, any order); each respondent
    belongs to at most one subgroup per stratum, so there are at most ``len(respondents) x 10``
    pairs. Used to tally answers for every subgroup at once.
    """
    prof = _profile(profile, respondents)
    validate_axes(respondents, profile=prof)
    rows, groups = [], []
    sub_index = {sid: i for i, sid in enumerate(subgroups["subgroup"])}
    possible_all = all_subgroups(prof)
    for st in prof.strata:
        mine = subgroups[subgroups["stratum"] == st.name]
        if mine.empty:
            continue
        # position of each possible level combination -> row in `subgroups` (or -1 if not kept)
        lookup = np.full(st.n_levels, -1, dtype=np.int64)
        possible = possible_all.loc[possible_all["stratum"] == st.name, "subgroup"].tolist()
        for k, sid in enumerate(possible):
            lookup[k] = sub_index.get(sid, -1)
        codes = stratum_codes(respondents, st.name, prof)
        g = np.where(codes >= 0, lookup[np.maximum(codes, 0)], -1)
        keep = g >= 0
        rows.append(np.flatnonzero(keep))
        groups.append(g[keep])
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows), np.concatenate(groups)


#: Census 2020 religion categories (``singapore_reference.json``) mapped onto the religion axis.
#: WVS splits Christians into Roman Catholic / Protestant / Other Christian; the census reports
#: Catholics (about 7 %) and other Christians (about 12 %), shown beside Protestant.
_CENSUS_RELIGION = {
    "None": ("No religion",),
    "Roman Catholic": ("Christianity: Catholic (about)",),
    "Protestant": ("Christianity: other Christian (about)",),
    "Muslim": ("Islam",),
    "Hindu": ("Hinduism",),
    "Buddhist": ("Buddhism",),
    "Other": ("Taoism", "Other religions"),
}
OFF_AXIS = "(other or missing)"


def composition_table(respondents: pd.DataFrame, reference: dict | None = None) -> pd.DataFrame:
    """The sample's make-up on each axis beside published reference shares.

    Parameters
    ----------
    respondents : DataFrame
        Respondents table.
    reference : dict, optional
        ``resources/singapore_reference.json`` (default: read it, for respondents of
        Singapore's profile). Sex and age bands are compared with the real WVS-7 Singapore
        sample's counts, ethnicity and religion with the 2020 census (residents 15+). For
        another country's respondents no reference is shipped: ``reference_share`` is NaN.

    Returns
    -------
    DataFrame
        ``axis, level, n, share, weighted_share, reference_share, reference`` (shares in %);
        ``level`` :data:`OFF_AXIS` collects missing and off-axis values.

    Notes
    -----
    ``share`` :math:`= 100\\, n_\\ell / N`; ``weighted_share`` :math:`= 100 \\sum_{i \\in \\ell}
    w_i / \\sum_i w_i`.
    """
    prof = _profile(None, respondents)
    if reference is None and prof.name != "singapore":
        return _composition(respondents, prof.axis_levels, {a: {} for a in prof.axes},
                            {a: f"none shipped for {prof.country}" for a in prof.axes})
    if reference is None:
        from importlib import resources

        reference = json.loads(resources.files("sgvalues").joinpath("resources/singapore_reference.json")
                               .read_text(encoding="utf-8"))
    wvs = reference["wvs7_singapore_sample"]
    census = reference["census_2020"]
    ref: dict[str, dict[str, float]] = {}
    for axis in ("sex", "age_group"):
        counts = wvs[f"{axis}_counts"]
        total = sum(counts.values())
        ref[axis] = {lv: 100.0 * counts[lv] / total for lv in AXES[axis]}
    eth = census["ethnicity_percent"]
    ref["ethnicity"] = {lv: eth[lv] for lv in AXES["ethnicity"]} | {OFF_AXIS: eth.get("Others", float("nan"))}
    rel = census["religion_percent"]
    ref["religion"] = {lv: sum(rel[k] for k in keys) for lv, keys in _CENSUS_RELIGION.items()}
    source = {"sex": "WVS-7 Singapore sample (real)", "age_group": "WVS-7 Singapore sample (real)",
              "ethnicity": "Census 2020", "religion": "Census 2020"}
    return _composition(respondents, AXES, ref, source)


def _composition(respondents: pd.DataFrame, axes: dict, ref: dict, source: dict) -> pd.DataFrame:
    w = respondents["weight"].to_numpy(float) if "weight" in respondents.columns else np.ones(len(respondents))
    n_all = len(respondents)
    rows = []
    for axis, levels in axes.items():
        col = respondents[axis].astype("object")
        on = col.isin(levels)
        for lv in list(levels) + [OFF_AXIS]:
            mask = (~on).to_numpy() if lv == OFF_AXIS else (col == lv).to_numpy()
            if lv == OFF_AXIS and not mask.any() and OFF_AXIS not in ref[axis]:
                continue
            rows.append({"axis": axis, "level": lv, "n": int(mask.sum()),
                         "share": 100.0 * mask.sum() / n_all if n_all else float("nan"),
                         "weighted_share": 100.0 * w[mask].sum() / w.sum() if n_all else float("nan"),
                         "reference_share": ref[axis].get(lv, float("nan")), "reference": source[axis]})
    return pd.DataFrame(rows)
