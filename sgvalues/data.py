"""Read the WVS Wave 7 country-pooled file (or a synthetic one) into a tidy respondents table.

The official file (``WVS_Cross-National_Wave_7``, from worldvaluessurvey.org; it may not be
redistributed, so users download it themselves) comes as ``.csv``, ``.sav`` (SPSS), ``.dta``
(Stata) and ``.rds`` (R). :func:`load_wvs` reads any of them, keeps one country and returns one
row per respondent with the columns of the respondents contract (``ARCHITECTURE.md``):

``respondent_id``, ``weight``, ``sex``, ``age_group``, ``ethnicity``, ``religion`` and one
float column per catalogue question present in the file (``Q1`` ... ``Q259``), holding answer
codes after the ordinal recodings of the catalogue, with WVS missing codes as NaN.

Example
-------
>>> import tempfile, pathlib
>>> text = "B_COUNTRY,Q260,X003R,Q289,Q290,Q1,Q56\\n702,2,3,7,702004,1,3\\n702,1,1,0,702006,-1,2\\n"
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.csv"
>>> _ = path.write_text(text)
>>> df = load_wvs(path)
>>> df[["sex", "age_group", "ethnicity", "religion", "Q1", "Q56"]].values.tolist()
[['Female', '35-44', 'Chinese', 'Buddhist', 1.0, 2.0], ['Male', '16-24', 'Malay', 'None', nan, 3.0]]
>>> df.attrs["missing_counts"]["Q1"][-1]
1
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .catalogue import WVS_MISSING_CODES, load_catalogue
from .countries import Q289_LABELS, CountryProfile, ProfileError, load_profile, resolve_profile

__all__ = [
    "WVSFormatError",
    "MissingCounts",
    "SUPPORTED_EXTENSIONS",
    "REQUIRED_COLUMNS",
    "AGE_GROUPS",
    "SEX_LABELS",
    "RELIGION_LABELS",
    "SYNTHETIC_FLAG",
    "load_wvs",
]

SUPPORTED_EXTENSIONS = (".csv", ".csv.gz", ".sav", ".zsav", ".dta", ".rds", ".rdata", ".rda")
#: Always needed; in addition the file needs X003R (age bands) or Q262 (age in years).
REQUIRED_COLUMNS = ("B_COUNTRY", "Q260", "Q289", "Q290")
#: Column the synthetic writer (``sgvalues.synthetic``) puts on every row.
SYNTHETIC_FLAG = "SGV_SYNTHETIC"

AGE_GROUPS = ("16-24", "25-34", "35-44", "45-54", "55-64", "65+")
SEX_LABELS = {1: "Male", 2: "Female"}
#: Q289 major religious groups. Singapore's seven-level axis is None ... Other; 3, 4, 8 keep
#: their codebook label and fall off that axis.
RELIGION_LABELS = dict(Q289_LABELS)

# Q223 (party vote) uses country-specific codes (country * 1000 + k, e.g. 702001) on top of
# the generic answers the catalogue lists, so any non-negative integer is a valid code there.
_OPEN_CODE_QUESTIONS = frozenset({"Q223"})
_DEMOGRAPHIC_CODES = {
    "Q260": set(SEX_LABELS),
    "X003R": set(range(1, 7)),
    "Q289": set(RELIGION_LABELS),
}
_MISSING = np.array(WVS_MISSING_CODES, dtype=float)


class WVSFormatError(ValueError):
    """The file is not a readable WVS-7 file of the expected shape; the message says why."""


class MissingCounts(dict):
    """``{question_id: {code: count}}``, shared (not copied) between derived DataFrames.

    pandas deep-copies ``DataFrame.attrs`` on nearly every operation; a plain nested dict of
    259 questions made each filter ~5x slower. This dict hands itself back from
    ``deepcopy``, so treat it as read-only.
    """

    def __deepcopy__(self, memo):
        return self


# --------------------------------------------------------------------------------------
# Reading each format, only the columns we need
# --------------------------------------------------------------------------------------
def _extension(path: Path) -> str:
    name = path.name.lower()
    for ext in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    raise WVSFormatError(
        f"{path}: unknown file type {path.suffix or '(no extension)'!r}; supported: "
        + ", ".join(SUPPORTED_EXTENSIONS)
    )


def _wanted(columns: list[str], question_ids: list[str], extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Map canonical upper-case names to the file's own spelling, for the columns we use."""
    wanted = {*REQUIRED_COLUMNS, "X003R", "Q262", "D_INTERVIEW", "W_WEIGHT", SYNTHETIC_FLAG,
              *question_ids, *extra}
    found: dict[str, str] = {}
    for col in columns:
        key = str(col).strip().upper()
        if key in wanted and key not in found:
            found[key] = col
    return found


def _csv_header(path: Path, compressed: bool) -> tuple[str, list[str]]:
    """Delimiter (``,`` ``;`` or tab, whichever the header line uses most) and column names."""
    if compressed:
        import gzip
        fh = gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="")
    else:
        fh = open(path, encoding="utf-8-sig", errors="replace", newline="")
    with fh:
        first = fh.readline()
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    sep = max(counts, key=counts.get)
    header = next(csv.reader([first.rstrip("\r\n")], delimiter=sep), [])
    return sep, header


def _check_csv_tail(path: Path, sep: str, n_header: int) -> None:
    """A cut-off file ends in a short last line; pandas would silently pad it with NaN."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(0, size - (1 << 16)))
        tail = fh.read()
    lines = tail.rstrip(b"\r\n").split(b"\n")
    if len(lines) < 2 and size > len(tail):
        return  # one very long line in the window: cannot judge, leave it to the parser
    last = lines[-1].decode("utf-8", errors="replace").rstrip("\r")
    fields = next(csv.reader([last], delimiter=sep), [])
    if len(fields) != n_header:
        raise WVSFormatError(
            f"{path}: the last line has {len(fields)} fields but the header has {n_header}; "
            "the file looks truncated (download it again)"
        )


def _read_csv(path: Path, question_ids: list[str], extra=()) -> tuple[pd.DataFrame, dict[str, str]]:
    compressed = path.name.lower().endswith(".gz")
    # The header via the csv module: pandas' nrows=0 read costs ~0.1 s on 600 columns.
    sep, header = _csv_header(path, compressed)
    found = _wanted(header, question_ids, extra)
    if not compressed:
        _check_csv_tail(path, sep, len(header))
    df = pd.read_csv(path, sep=sep, usecols=list(found.values()), low_memory=False)
    return df, found


def _read_readstat(path: Path, ext: str, question_ids: list[str], extra=()):
    import pyreadstat

    reader = pyreadstat.read_dta if ext == ".dta" else pyreadstat.read_sav
    _, meta = reader(str(path), metadataonly=True)
    found = _wanted(meta.column_names, question_ids, extra)
    kwargs = {"usecols": list(found.values()), "apply_value_formats": False}
    if ext != ".dta":
        # SPSS files may declare -1..-5 as user-missing; keep the codes (pyreadstat would
        # turn them into NaN) so "not asked" (-4) stays visible.
        kwargs["user_missing"] = True
    df, _ = reader(str(path), **kwargs)
    return df, found


def _read_r(path: Path, question_ids: list[str], extra=()):
    import pyreadr

    result = pyreadr.read_r(str(path))
    frames = [v for v in result.values() if isinstance(v, pd.DataFrame)]
    if not frames:
        raise WVSFormatError(f"{path}: holds no data frame")
    df = frames[0]
    found = _wanted(df.columns.tolist(), question_ids, extra)
    return df[list(found.values())], found


def _read(path: Path, question_ids: list[str], extra=()) -> tuple[pd.DataFrame, dict[str, str]]:
    ext = _extension(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise WVSFormatError(f"{path}: the file is empty")
    try:
        if ext in (".csv", ".csv.gz"):
            df, found = _read_csv(path, question_ids, extra)
        elif ext in (".sav", ".zsav", ".dta"):
            df, found = _read_readstat(path, ext, question_ids, extra)
        else:
            df, found = _read_r(path, question_ids, extra)
    except WVSFormatError:
        raise
    except Exception as exc:  # each reader has its own error types; all mean "unreadable"
        raise WVSFormatError(
            f"{path}: cannot read it as a {ext} file ({type(exc).__name__}: {exc}); the file "
            "may be truncated or in another format"
        ) from exc
    df = df.rename(columns={v: k for k, v in found.items()})
    return df, found


# --------------------------------------------------------------------------------------
# Checks and recodings
# --------------------------------------------------------------------------------------
def _numeric(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    s = df[col]
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=float, na_value=np.nan)
    num = pd.to_numeric(s, errors="coerce")
    bad = num.isna() & s.notna()
    if bad.any():
        examples = s[bad].astype(str).value_counts().head(3)
        shown = ", ".join(f"{v!r} ({n} rows)" for v, n in examples.items())
        raise WVSFormatError(
            f"{path}: column {col} has non-numeric values: {shown}; expected numeric WVS "
            "codes (export the file with codes, not value labels)"
        )
    return num.to_numpy(dtype=float, na_value=np.nan)


def _numeric_block(df: pd.DataFrame, cols: list[str], path: Path) -> np.ndarray:
    """The columns as one float matrix; only non-numeric columns go through the slow check."""
    if not cols:
        return np.empty((len(df), 0))
    dtypes = df.dtypes[cols]
    slow = [c for c, t in dtypes.items()
            if not pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t)]
    if slow:
        df = df[cols].copy()
        for c in slow:
            df[c] = _numeric(df, c, path)
    return df[cols].to_numpy(dtype=float, na_value=np.nan)


def _describe(codes: set[int]) -> str:
    codes = sorted(codes)
    if codes and codes == list(range(codes[0], codes[-1] + 1)) and len(codes) > 2:
        return f"{codes[0]}..{codes[-1]}"
    return ", ".join(str(c) for c in codes)


def _out_of_range(values: np.ndarray, allowed: set[int] | None) -> dict[float, int]:
    """Values (with counts) that are neither an allowed code nor a WVS missing code."""
    ok = np.isnan(values) | np.isin(values, _MISSING)
    if allowed is None:  # any non-negative integer
        ok |= (values >= 0) & (values == np.floor(values))
    else:
        ok |= np.isin(values, np.fromiter(allowed, dtype=float))
    if ok.all():
        return {}
    bad, counts = np.unique(values[~ok], return_counts=True)
    return dict(zip(bad.tolist(), counts.tolist()))


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _raise_out_of_range(path: Path, problems: list[tuple[str, dict, str]]) -> None:
    lines = []
    for col, bad, expected in problems:
        for value, count in sorted(bad.items()):
            lines.append(
                f"{col} has {count} rows with value {_fmt(value)}; expected {expected} or "
                "missing codes -1..-5"
            )
    more = f" (and {len(lines) - 10} more)" if len(lines) > 10 else ""
    raise WVSFormatError(f"{path}: values outside the codebook: " + "; ".join(lines[:10]) + more)


def _age_band(age: np.ndarray) -> np.ndarray:
    """Age in years -> X003R band code 1..6 (NaN for missing or under 16), the bands of :data:`AGE_GROUPS`."""
    edges = np.array([int(band.split("-")[0].rstrip("+")) for band in AGE_GROUPS])
    band = np.searchsorted(edges, age, side="right").astype(float)
    band[np.isnan(age) | (age < 16)] = np.nan
    return band


def _labels(codes: np.ndarray, mapping: dict) -> np.ndarray:
    out = np.full(codes.shape, np.nan, dtype=object)
    for code, label in mapping.items():
        out[codes == code] = label
    return out


def load_wvs(path: str | os.PathLike, country: int = 702,
             profile: CountryProfile | int | str | None = None) -> pd.DataFrame:
    """Load one country of the WVS-7 file as a tidy respondents table.

    Parameters
    ----------
    path : path-like
        The official WVS Wave 7 country-pooled file (``.csv``, ``.csv.gz``, ``.sav``,
        ``.zsav``, ``.dta``, ``.rds``, ``.rdata``) or a synthetic file in the same format.
        Column names are matched case-insensitively.
    country : int
        ``B_COUNTRY`` code to keep (ISO 3166 numeric; 702 = Singapore, 458 = Malaysia).
    profile : CountryProfile, int or str, optional
        Country profile giving each axis's source variable and code -> level map
        (:mod:`sgvalues.countries`); default: the shipped profile of ``country``.

    Returns
    -------
    pandas.DataFrame
        One row per respondent: ``respondent_id`` (``D_INTERVIEW``, else the 1-based row in
        the file), ``weight`` (``W_WEIGHT``, 1.0 when the column is absent), ``sex``,
        ``age_group``, ``ethnicity``, ``religion`` (strings, NaN when missing or off the
        axis), then a float column per catalogue question in the file. ``attrs``:
        ``source`` (path), ``country``, ``synthetic`` (the file has a ``SGV_SYNTHETIC``
        column), ``n_rows_file`` (rows in the file, all countries) and ``missing_counts``
        ({question_id: {code: count}} for codes -1..-5 before recoding, a read-only
        :class:`MissingCounts`; used by :func:`sgvalues.catalogue.select_questions`) and
        ``profile`` (the profile's name, which :mod:`sgvalues.subgroups` then uses).

    Raises
    ------
    WVSFormatError
        Unknown extension, unreadable or truncated file, missing required columns, country
        absent, non-numeric codes, or codes outside a question's codebook codes.
    ProfileError
        ``country`` has rows but no shipped profile (the message names those available).
    FileNotFoundError
        No file at ``path``.

    Notes
    -----
    Per question :math:`q` with raw value :math:`x`: if :math:`x \\in \\{-1,\\dots,-5\\}` the
    answer is NaN; else it becomes :math:`a_q(x)` where :math:`a_q` is the catalogue's
    ``adjustment`` (identity where not listed; codes mapped to ``None`` become NaN, e.g.
    Q221 4 "not allowed to vote"). ``age_group`` comes from X003R (bands 1..6); where X003R
    is absent or missing it is derived from Q262 (age in years) with the same bands
    (16-24, 25-34, 35-44, 45-54, 55-64, 65+; ages under 16 give NaN). Each axis's levels
    come from the profile's code -> level map (ethnicity from the country's own Q290 codes);
    a Q289 code off the religion axis keeps its codebook label. Codes are checked only on the
    rows of ``country``.
    """
    path = Path(path)
    catalogue = load_catalogue()
    qids = catalogue["question_id"].tolist()
    # Plain dicts: .at lookups on the catalogue cost ~0.2 ms each, x 259 questions.
    raw_codes = dict(zip(qids, catalogue["raw_options"]))
    adjustments = dict(zip(qids, catalogue["adjustment"]))
    # An absent profile is reported after the country check, so a wrong code still lists the
    # countries the file holds.
    try:
        prof, profile_error = (resolve_profile(profile) if profile is not None else load_profile(country)), None
    except ProfileError as exc:
        prof, profile_error = None, exc
    sources = tuple(ax.source for ax in prof.axes.values()) if prof else ()
    df, found = _read(path, qids, sources)

    missing = [c for c in dict.fromkeys((*REQUIRED_COLUMNS, *(s for s in sources if s != "X003R")))
               if c not in df.columns]
    if "X003R" not in df.columns and "Q262" not in df.columns:
        missing.append("X003R or Q262")
    if missing:
        raise WVSFormatError(
            f"{path}: missing required columns: {', '.join(missing)} (matched ignoring case)"
        )

    n_file = len(df)
    countries = _numeric(df, "B_COUNTRY", path)
    keep = countries == country
    if not keep.any():
        present = sorted({int(c) for c in countries[~np.isnan(countries)]})
        raise WVSFormatError(
            f"{path}: no respondents with B_COUNTRY == {country}; countries present: "
            + (", ".join(map(str, present)) if present else "none (the file has no rows)")
        )
    if profile_error is not None:
        raise profile_error
    df = df.loc[keep].reset_index(drop=True)
    n = len(df)

    # Demographic codes, checked like the questions.
    problems = []
    demo = {}
    for col in dict.fromkeys(("Q260", "Q289", "Q290", "X003R", "Q262", "W_WEIGHT", "D_INTERVIEW", *sources)):
        if col in df.columns:
            demo[col] = _numeric(df, col, path)
    for col, allowed in _DEMOGRAPHIC_CODES.items():
        if col in demo:
            bad = _out_of_range(demo[col], allowed)
            if bad:
                problems.append((col, bad, _describe(allowed)))
    if "Q262" in demo:
        bad = _out_of_range(demo["Q262"], None)
        if bad:
            problems.append(("Q262", bad, "an age in whole years"))

    present = [q for q in qids if q in df.columns]
    raw = _numeric_block(df, present, path)
    for j, q in enumerate(present):
        allowed = None if q in _OPEN_CODE_QUESTIONS else set(raw_codes[q])
        bad = _out_of_range(raw[:, j], allowed)
        if bad:
            expected = ("a party code" if allowed is None else _describe(allowed))
            problems.append((q, bad, expected))
    if problems:
        _raise_out_of_range(path, problems)

    # Missing-code counts per question, before any recoding (-4 = not asked in the country).
    counts = np.stack([(raw == code).sum(axis=0) for code in WVS_MISSING_CODES], axis=1)
    missing_counts = MissingCounts({
        q: {code: int(counts[j, i]) for i, code in enumerate(WVS_MISSING_CODES)}
        for j, q in enumerate(present)
    })

    answers = raw.copy()
    answers[answers < 0] = np.nan
    for j, q in enumerate(present):
        adjustment = adjustments[q]
        if not adjustment:
            continue
        col = raw[:, j]  # map from the raw codes, so swaps (Q56 2<->3) do not chain
        out = answers[:, j]
        for src, dst in adjustment.items():
            out[col == src] = np.nan if dst is None else dst

    if "D_INTERVIEW" in demo and not np.isnan(demo["D_INTERVIEW"]).any():
        respondent_id = demo["D_INTERVIEW"].astype(np.int64)
    else:
        respondent_id = (np.flatnonzero(keep) + 1).astype(np.int64)
    weight = demo.get("W_WEIGHT", np.ones(n))

    age_source = prof.axes["age_group"].source
    band = demo[age_source].copy() if age_source in demo else np.full(n, np.nan)
    band[band < 0] = np.nan
    if "Q262" in demo and age_source == "X003R":
        age = demo["Q262"].copy()
        age[age < 0] = np.nan
        fill = np.isnan(band)
        band[fill] = _age_band(age[fill])

    def axis_labels(axis: str, codes: np.ndarray) -> np.ndarray:
        ax = prof.axes[axis]
        # off the religion axis, a Q289 code keeps its codebook label ("Jew")
        off = Q289_LABELS if ax.open and ax.source == "Q289" else {}
        return _labels(codes, {**off, **ax.codes})

    out = pd.DataFrame({
        "respondent_id": respondent_id,
        "weight": weight,
        "sex": axis_labels("sex", demo[prof.axes["sex"].source]),
        "age_group": axis_labels("age_group", band),
        "ethnicity": axis_labels("ethnicity", demo[prof.axes["ethnicity"].source]),
        "religion": axis_labels("religion", demo[prof.axes["religion"].source]),
    })
    answers_df = pd.DataFrame(answers, columns=present)
    out = pd.concat([out, answers_df], axis=1)
    out.attrs = {
        "source": str(path),
        "country": int(country),
        "synthetic": SYNTHETIC_FLAG in df.columns,
        "missing_counts": missing_counts,
        "n_rows_file": int(n_file),
        "profile": prof.name,
    }
    return out
