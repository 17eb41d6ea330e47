r"""How unseen is an OOD subgroup? Its largest respondent overlap with any train subgroup.

An OOD subgroup is a combination of levels training never showed together, but it can still
be, respondent for respondent, nearly a train subgroup: in Singapore nearly every Malay
respondent is Muslim, so ``ethnicity_x_religion:Malay|Muslim`` is nominally unseen while its
respondents are almost exactly those of the train subgroup ``ethnicity:Malay``. For each OOD
subgroup :math:`g` with respondents :math:`R_g` (:func:`sgvalues.subgroups.membership_pairs`,
the one membership rule),

.. math:: \mathrm{overlap}(g) = \max_{h \in \mathrm{train}} \frac{|R_g \cap R_h|}{|R_g \cup R_h|}

the Jaccard share of respondents the two have in common (1 = the same people). The share of
:math:`g`'s own respondents, :math:`|R_g \cap R_h| / |R_g|`, cannot serve: a pair subgroup lies
inside each of its single-axis parents, so it would be 1 for every OOD pair whose parents are
train subgroups. :func:`subgroup_overlap` computes the overlap at prepare time (``overlap.csv``);
a subgroup above :data:`OVERLAP_THRESHOLD` is ``flagged``, and :func:`without_flagged` drops such
cells from a predictions table so OOD scores can also be read on the subgroups that are really
unseen.

Example
-------
>>> r = pd.DataFrame({"respondent_id": range(4), "sex": ["Male", "Male", "Male", "Female"],
...                   "age_group": ["16-24", "16-24", "25-34", "16-24"], "ethnicity": "Chinese",
...                   "religion": "None"})
>>> sub = pd.DataFrame({"stratum": ["sex", "sex_x_age_group"],
...                     "subgroup": ["sex:Male", "sex_x_age_group:Male|16-24"], "split": ["train", "ood"]})
>>> subgroup_overlap(r, sub)[["subgroup", "train_subgroup", "n_shared", "n_union", "overlap"]].round(3).to_dict("records")
[{'subgroup': 'sex_x_age_group:Male|16-24', 'train_subgroup': 'sex:Male', 'n_shared': 2, 'n_union': 3, 'overlap': 0.667}]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["OVERLAP_THRESHOLD", "OVERLAP_FILE", "OVERLAP_COLUMNS", "subgroup_overlap", "load_overlap",
           "flagged_subgroups", "without_flagged"]

#: an OOD subgroup sharing more than this share of its respondents with one train subgroup is flagged
OVERLAP_THRESHOLD = 0.90

#: the table's file name in a prepared folder
OVERLAP_FILE = "overlap.csv"

#: ``overlap.csv``'s columns
OVERLAP_COLUMNS = ["stratum", "subgroup", "n_respondents", "train_subgroup", "n_train_respondents", "n_shared",
                   "n_union", "overlap", "flagged"]


def subgroup_overlap(respondents: pd.DataFrame, subgroups: pd.DataFrame, threshold: float = OVERLAP_THRESHOLD,
                     profile=None) -> pd.DataFrame:
    """Each OOD subgroup's largest overlap with a train subgroup, and whether it is flagged.

    Parameters
    ----------
    respondents : DataFrame
        The respondents table (:func:`sgvalues.data.load_wvs`).
    subgroups : DataFrame
        ``subgroups.csv`` (``stratum``, ``subgroup``, ``split``).
    threshold : float
        ``flagged = overlap > threshold`` (default :data:`OVERLAP_THRESHOLD`).
    profile : optional
        Country profile, as in :func:`sgvalues.subgroups.membership_pairs`.

    Returns
    -------
    DataFrame
        :data:`OVERLAP_COLUMNS`, one row per OOD subgroup in ``subgroups``' order:
        ``n_respondents`` = :math:`|R_g|`, ``train_subgroup`` = the train subgroup :math:`h` of
        the largest overlap (the first in ``subgroups``' order on a tie), ``n_train_respondents``
        = :math:`|R_h|`, ``n_shared`` = :math:`|R_g \\cap R_h|`, ``n_union`` =
        :math:`|R_g \\cup R_h|`, ``overlap`` = ``n_shared / n_union`` (NaN when both are empty).

    Notes
    -----
    With the membership matrix :math:`M` (respondents x subgroups, 0/1), the shared counts are
    :math:`S = M_{ood}^\\top M_{train}` and the unions :math:`|R_g| + |R_h| - S_{gh}`; the
    overlap of :math:`g` is the row maximum of :math:`S_{gh} / (|R_g| + |R_h| - S_{gh})`.
    """
    from sgvalues.subgroups import membership_pairs

    if not 0 <= threshold <= 1:
        raise ValueError(f"overlap threshold {threshold!r}: expected a share in [0, 1]")
    need = {"stratum", "subgroup", "split"}
    missing = sorted(need - set(subgroups.columns))
    if missing:
        raise ValueError(f"subgroups table: missing column(s) {missing}; expected subgroups.csv's "
                         "stratum, subgroup, split")
    subgroups = subgroups.reset_index(drop=True)
    rows, groups = membership_pairs(respondents, subgroups, profile=profile)
    member = np.zeros((len(respondents), len(subgroups)), dtype=np.int64)
    member[rows, groups] = 1
    split = subgroups["split"].astype(str).to_numpy()
    ood, train = np.flatnonzero(split == "ood"), np.flatnonzero(split == "train")
    shared = member[:, ood].T @ member[:, train] if train.size else np.zeros((ood.size, 0), dtype=np.int64)
    size, train_size = member[:, ood].sum(axis=0), member[:, train].sum(axis=0)
    union = size[:, None] + train_size[None, :] - shared
    with np.errstate(invalid="ignore", divide="ignore"):
        jaccard = np.where(union > 0, shared / np.maximum(union, 1), np.nan)
    out = []
    for i, g in enumerate(ood):
        row = np.nan_to_num(jaccard[i], nan=-1.0)
        best = int(np.argmax(row)) if train.size else -1
        share = float(jaccard[i, best]) if best >= 0 else float("nan")
        out.append({"stratum": subgroups.at[g, "stratum"], "subgroup": subgroups.at[g, "subgroup"],
                    "n_respondents": int(size[i]),
                    "train_subgroup": subgroups.at[train[best], "subgroup"] if best >= 0 else "",
                    "n_train_respondents": int(train_size[best]) if best >= 0 else 0,
                    "n_shared": int(shared[i, best]) if best >= 0 else 0,
                    "n_union": int(union[i, best]) if best >= 0 else int(size[i]),
                    "overlap": share, "flagged": bool(share > threshold)})
    return pd.DataFrame(out, columns=OVERLAP_COLUMNS)


def load_overlap(prepared: str | Path) -> pd.DataFrame:
    """``<prepared>/overlap.csv``; an empty table with :data:`OVERLAP_COLUMNS` when the folder
    predates it (prepared before the overlap was computed)."""
    path = Path(prepared) / OVERLAP_FILE
    if not path.is_file():
        return pd.DataFrame(columns=OVERLAP_COLUMNS)
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = sorted(set(OVERLAP_COLUMNS) - set(table.columns))
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {OVERLAP_COLUMNS}")
    table["flagged"] = table["flagged"].astype(str).str.lower().isin(["true", "1"])
    return table


def flagged_subgroups(overlap: pd.DataFrame) -> set[str]:
    """The OOD subgroup ids an overlap table flags.

    >>> flagged_subgroups(pd.DataFrame({"subgroup": ["a", "b"], "flagged": [True, False]}))
    {'a'}
    """
    if overlap.empty:
        return set()
    return set(overlap.loc[overlap["flagged"].astype(bool), "subgroup"].astype(str))


def without_flagged(predictions: pd.DataFrame, overlap: pd.DataFrame) -> pd.DataFrame:
    """``predictions`` without the rows of flagged subgroups (:func:`flagged_subgroups`).

    >>> p = pd.DataFrame({"subgroup": ["a", "b", "a"], "prediction": [1, 2, 3]})
    >>> without_flagged(p, pd.DataFrame({"subgroup": ["a"], "flagged": [True]}))["prediction"].tolist()
    [2]
    """
    flagged = flagged_subgroups(overlap)
    return predictions[~predictions["subgroup"].astype(str).isin(flagged)]
