"""Figures published by Tan et al. (ACL 2026, arXiv:2604.12851), to show beside ours.

Only numbers quoted in the paper's text are kept (``resources/published.json``); the book
always labels them "published (Tan et al. 2026)" so they are never mistaken for our results.

Example
-------
>>> published()["counts"]["ood_subgroups"]
48
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

__all__ = ["PUBLISHED_LABEL", "published"]

PUBLISHED_LABEL = "published (Tan et al. 2026)"


@lru_cache(maxsize=1)
def published() -> dict:
    """The published figures as a nested dict (see ``resources/published.json``)."""
    return json.loads(resources.files("sgvalues").joinpath("resources/published.json").read_text())
