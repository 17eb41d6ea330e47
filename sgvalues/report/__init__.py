"""Report helpers for the book: how results are shown, never how they are computed.

Stage modules (``metrics``, ``fairness``, ``judge`` ...) compute tidy DataFrames; the modules here
turn them into what a reader sees. One module per concept:

- :mod:`sgvalues.report.format` - the book's one number format (counts with thousands
  separators, rates and scores to three decimals, an en dash for anything not evaluated) and
  compact tables built with it;
- :mod:`sgvalues.report.judging` - what the judge could tell on a run, in words computed from
  its tables, and chapter 6's compact win-rate table.
"""

from sgvalues.report.format import (
    MISSING,
    fmt_count,
    fmt_delta,
    fmt_rate,
    format_frame,
    format_table,
    markdown_table,
)

__all__ = [
    "MISSING",
    "fmt_count",
    "fmt_delta",
    "fmt_rate",
    "format_frame",
    "format_table",
    "markdown_table",
]
