"""The book's one number format.

Every number a reader sees goes through one of three formatters:

- **counts** (samples, respondents, questions): integers with thousands separators, ``12,300``;
- **rates and scores** (accuracy, NMAE, win rates, MDS values): three decimals, ``0.793``;
- **deltas** (gains, gaps, differences): three decimals with an explicit sign, ``+0.012``.

Anything missing or not evaluated (``None``, ``NaN``, ``pd.NA``, an empty string) prints as an
en dash ``–`` (:data:`MISSING`), so no page shows ``NaN``, ``nan`` or ``12300.000``.

:func:`format_table` applies the formatters to a DataFrame for display in a notebook (a pandas
``Styler``, index hidden, compact); :func:`markdown_table` writes the same strings as a MyST table
for the book's generated pages; :func:`format_frame` returns them as a DataFrame of strings.

Columns not named in ``counts``, ``rates`` or ``deltas`` are formatted by dtype: integer and
boolean-free integer columns as counts, float columns as rates, anything else as text (missing
text as :data:`MISSING` too). A float column that holds counts (pandas turns an integer column
with a gap into floats) must be named in ``counts``.
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable

import pandas as pd

__all__ = [
    "MISSING",
    "fmt_count",
    "fmt_counted",
    "fmt_rate",
    "fmt_delta",
    "fmt_p",
    "format_frame",
    "format_table",
    "markdown_table",
    "STATISTIC_LABELS",
    "model_names",
    "model_name",
]

#: what the book prints where a value is missing or was not evaluated (an en dash)
MISSING = "\u2013"


def _is_missing(x) -> bool:
    if x is None or x is pd.NA or x is pd.NaT:
        return True
    if isinstance(x, str):
        return x.strip() == "" or x.strip().lower() in {"nan", "none", "<na>"}
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def _number(x, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (numbers.Real, str)):
        raise TypeError(f"{what}: expected a number, got {x!r} ({type(x).__name__})")
    try:
        value = float(x)
    except ValueError:
        raise ValueError(f"{what}: expected a number, got the text {x!r}") from None
    if math.isinf(value):
        raise ValueError(f"{what}: expected a finite number, got {x!r}")
    return value


def fmt_count(x) -> str:
    """A count as an integer with thousands separators; missing as an en dash.

    Parameters
    ----------
    x : int, float, numpy number, str or None
        The count. A float must be whole (``12300.0``): a fractional count is a bug upstream.

    Returns
    -------
    str

    Examples
    --------
    >>> fmt_count(12300), fmt_count(10177.0), fmt_count(7), fmt_count(float("nan"))
    ('12,300', '10,177', '7', '–')
    """
    if _is_missing(x):
        return MISSING
    value = _number(x, "fmt_count")
    if value != round(value):
        raise ValueError(f"fmt_count: a count must be whole, got {x!r}; use fmt_rate for a mean or a share")
    return f"{int(round(value)):,}"


def fmt_counted(count, word: str) -> str:
    """A count and its noun, pluralised by adding *s*: ``"1 question"``, ``"12,300 samples"``.

    >>> fmt_counted(1, "question"), fmt_counted(12300, "sample")
    ('1 question', '12,300 samples')
    """
    return f"{fmt_count(count)} {word}{'' if count == 1 else 's'}"


def fmt_rate(x, digits: int = 3) -> str:
    """A rate or score to ``digits`` decimals (three by default); missing as an en dash.

    Examples
    --------
    >>> fmt_rate(0.793), fmt_rate(0.5), fmt_rate(None), fmt_rate(1 / 3, digits=2)
    ('0.793', '0.500', '–', '0.33')
    >>> fmt_rate(-0.0001)
    '0.000'
    """
    if _is_missing(x):
        return MISSING
    value = round(_number(x, "fmt_rate"), digits)
    return f"{value + 0.0:.{digits}f}"  # + 0.0 turns a rounded -0.0 into 0.0


def fmt_p(p) -> str:
    """A p-value as the book prints it after "p": ``= 0.031``, or ``< 0.001`` below a thousandth
    (a permutation p-value is never exactly 0).

    >>> fmt_p(0.0312), fmt_p(0.0002), fmt_p(float("nan"))
    ('= 0.031', '< 0.001', '= \u2013')
    """
    if not _is_missing(p) and float(p) < 0.001:
        return "< 0.001"
    return f"= {fmt_rate(p)}"


def fmt_delta(x, digits: int = 3) -> str:
    """A difference (gain, gap) to ``digits`` decimals with an explicit sign; missing as an en dash.

    Examples
    --------
    >>> fmt_delta(0.0123), fmt_delta(-0.5), fmt_delta(0), fmt_delta(float("nan"))
    ('+0.012', '-0.500', '0.000', '–')
    """
    if _is_missing(x):
        return MISSING
    value = round(_number(x, "fmt_delta"), digits) + 0.0
    return f"{value:.{digits}f}" if value == 0 else f"{value:+.{digits}f}"


def _fmt_text(x) -> str:
    return MISSING if _is_missing(x) else str(x)


def _formatters(df: pd.DataFrame, counts, rates, deltas, digits: int) -> dict:
    named = {}
    for kind, cols in (("counts", counts), ("rates", rates), ("deltas", deltas)):
        for col in cols or ():
            if col not in df.columns:
                raise KeyError(f"format_table: {kind} names the column {col!r}, which the table lacks "
                               f"(columns: {list(df.columns)})")
            if col in named:
                raise ValueError(f"format_table: column {col!r} is named in both {named[col]} and {kind}")
            named[col] = kind
    out = {}
    for col in df.columns:
        kind = named.get(col)
        if kind is None:
            dtype = df[col].dtype
            if pd.api.types.is_bool_dtype(dtype):
                kind = "text"
            elif pd.api.types.is_integer_dtype(dtype):
                kind = "counts"
            elif pd.api.types.is_float_dtype(dtype):
                kind = "rates"
            else:
                kind = "text"
        out[col] = {"counts": fmt_count,
                    "rates": lambda x, d=digits: fmt_rate(x, d),
                    "deltas": lambda x, d=digits: fmt_delta(x, d),
                    "text": _fmt_text}[kind]
    return out


def format_frame(df: pd.DataFrame, counts: Iterable[str] | None = None, rates: Iterable[str] | None = None,
                 deltas: Iterable[str] | None = None, digits: int = 3) -> pd.DataFrame:
    """The table as strings in the book's number format (same columns and index).

    Parameters
    ----------
    df : pandas.DataFrame
    counts, rates, deltas : iterable of str, optional
        Columns to format as counts, rates/scores or signed differences. Other columns by dtype:
        integers as counts, floats as rates, the rest as text.
    digits : int
        Decimals of rates and deltas.

    Examples
    --------
    >>> df = pd.DataFrame({"model": ["base", "sft"], "n": [12300.0, None],
    ...                    "accuracy": [0.4567, float("nan")], "gain": [None, 0.0457]})
    >>> format_frame(df, counts=["n"], deltas=["gain"]).to_dict("list")
    {'model': ['base', 'sft'], 'n': ['12,300', '–'], 'accuracy': ['0.457', '–'], 'gain': ['–', '+0.046']}
    """
    formatters = _formatters(df, counts, rates, deltas, digits)
    return pd.DataFrame({col: [formatters[col](x) for x in df[col]] for col in df.columns}, index=df.index)


def format_table(df: pd.DataFrame, counts: Iterable[str] | None = None, rates: Iterable[str] | None = None,
                 deltas: Iterable[str] | None = None, digits: int = 3, caption: str | None = None):
    """A compact, index-free ``Styler`` of ``df`` in the book's number format, for notebooks.

    Numbers are right-aligned, text wraps, and the table carries the class ``sgv-table`` (the
    book's stylesheet keeps it within the text column). Parameters as :func:`format_frame`;
    ``caption`` is shown above the table.

    Examples
    --------
    >>> df = pd.DataFrame({"theme": ["Religion"], "n": [1200], "mds": [0.793]})
    >>> html = format_table(df).to_html()
    >>> "1,200" in html and "0.793" in html and "nan" not in html.lower()
    True
    """
    formatters = _formatters(df, counts, rates, deltas, digits)
    numeric = [c for c, f in formatters.items() if f is not _fmt_text]
    styler = df.style.format(formatters).hide(axis="index")
    styler = styler.set_table_attributes('class="sgv-table"')
    styler = styler.set_table_styles([
        {"selector": "th, td", "props": "padding: 0.15em 0.5em; font-size: 0.9em;"},
        {"selector": "th", "props": "text-align: left;"},
    ], overwrite=False)
    if numeric:
        styler = styler.set_properties(subset=numeric, **{"text-align": "right", "white-space": "nowrap"})
    if caption:
        styler = styler.set_caption(caption)
    return styler


def markdown_table(df: pd.DataFrame, counts: Iterable[str] | None = None, rates: Iterable[str] | None = None,
                   deltas: Iterable[str] | None = None, digits: int = 3) -> str:
    """The table as a Markdown (MyST) pipe table in the book's number format, numbers right-aligned.

    Pipes inside cells are escaped and newlines become spaces, so a cell cannot break the table.

    Examples
    --------
    >>> df = pd.DataFrame({"run": ["a|b"], "n": [10700], "acc": [float("nan")]})
    >>> print(markdown_table(df))
    | run | n | acc |
    | --- | ---: | ---: |
    | a\\|b | 10,700 | – |
    """
    formatters = _formatters(df, counts, rates, deltas, digits)
    shown = format_frame(df, counts, rates, deltas, digits)

    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    rule = "| " + " | ".join("---" if formatters[c] is _fmt_text else "---:" for c in df.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


# ----------------------------------------------------------------------------- labels

#: short names of :func:`sgvalues.fairness.bootstrap_fairness`'s statistics, in tables and figures
STATISTIC_LABELS = {"accuracy": "accuracy", "nmae": "NMAE", "accuracy_norm_range": "acc NR",
                    "accuracy_cv": "acc CV", "nmae_norm_range": "NMAE NR", "nmae_cv": "NMAE CV"}


def model_names(df: pd.DataFrame) -> pd.Series:
    """Each row's model label, with the run name added where several runs share the label.

    >>> model_names(pd.DataFrame({"run": ["a", "b", "c"], "label": ["M", "M", "N"]})).tolist()
    ['M (a)', 'M (b)', 'N']
    """
    if "run" not in df.columns:
        return df["label"].astype(str)
    shared = df.groupby("label")["run"].nunique()
    return pd.Series([f"{lab} ({run})" if shared.get(lab, 1) > 1 else str(lab)
                      for lab, run in zip(df["label"], df["run"])], index=df.index)


def model_name(df: pd.DataFrame, run: str) -> str:
    """How :func:`sgvalues.report.fairness.headline_table` names ``run``'s model (its label, plus the run where shared).

    >>> model_name(pd.DataFrame({"run": ["a", "b"], "label": ["M", "M"]}), "b")
    'M (b)'
    """
    names = model_names(df)
    hit = names[df["run"] == run]
    return str(hit.iloc[0]) if len(hit) else run
