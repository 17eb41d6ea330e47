"""The book's number format (sgvalues.report.format), checked against Python's own formatting."""

import math

import numpy as np
import pandas as pd
import pytest

from sgvalues.report.format import (MISSING, fmt_count, fmt_delta, fmt_rate, format_frame, format_table,
                                    markdown_table)


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan, pd.NA, "", "nan", "NaN"])
def test_missing_is_an_en_dash_everywhere(missing):
    assert fmt_count(missing) == fmt_rate(missing) == fmt_delta(missing) == MISSING == "\u2013"


def test_counts_match_python_grouping_for_many_values():
    rng = np.random.default_rng(0)
    for n in rng.integers(0, 10**7, 200):
        assert fmt_count(int(n)) == fmt_count(float(n)) == fmt_count(np.int64(n)) == "{:,}".format(int(n))


def test_fractional_or_non_numeric_count_is_refused_with_the_value():
    with pytest.raises(ValueError, match="12.5"):
        fmt_count(12.5)
    with pytest.raises(TypeError, match="True"):
        fmt_count(True)
    with pytest.raises(ValueError, match="finite"):
        fmt_rate(math.inf)


def test_rates_and_deltas_round_like_round_then_print():
    rng = np.random.default_rng(1)
    for x in rng.uniform(-1, 1, 300):
        r = round(float(x), 3)
        assert float(fmt_rate(x)) == pytest.approx(r, abs=1e-12)
        assert len(fmt_rate(abs(x)).split(".")[1]) == 3
        d = fmt_delta(x)
        if r != 0:
            assert d[0] == ("+" if r > 0 else "-") and float(d) == pytest.approx(r, abs=1e-12)


def test_frame_by_dtype_and_by_name():
    df = pd.DataFrame({"label": ["a", None], "n": pd.array([3, None], dtype="Int64"),
                       "n_float": [10177.0, np.nan], "score": [0.7930001, np.nan], "gap": [0.25, -0.1]})
    out = format_frame(df, counts=["n_float"], deltas=["gap"])
    assert out.to_dict("list") == {"label": ["a", MISSING], "n": ["3", MISSING], "n_float": ["10,177", MISSING],
                                   "score": ["0.793", MISSING], "gap": ["+0.250", "-0.100"]}
    with pytest.raises(KeyError, match="'nope'"):
        format_frame(df, counts=["nope"])
    with pytest.raises(ValueError, match="both"):
        format_frame(df, counts=["n"], rates=["n"])


def test_styler_hides_index_and_never_prints_nan():
    df = pd.DataFrame({"model": ["x", "y"], "n": [12300.0, 10177.0], "acc": [np.nan, 0.5]}, index=[7, 8])
    html = format_table(df, counts=["n"], caption="Accuracy").to_html()
    assert "12,300" in html and "10,177" in html and "0.500" in html and MISSING in html
    assert "nan" not in html.lower() and "12300.0" not in html and "sgv-table" in html and "Accuracy" in html
    assert ">7<" not in html  # the index is hidden


def test_markdown_table_is_well_formed():
    df = pd.DataFrame({"run": ["a|b", "c\nd"], "n": [1, 2000], "acc": [0.1234, None]})
    lines = markdown_table(df).splitlines()
    assert len(lines) == 4 and all(line.count(" | ") == 2 for line in lines)
    assert lines[1] == "| --- | ---: | ---: |" and lines[3] == "| c d | 2,000 | \u2013 |"
