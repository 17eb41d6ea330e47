"""Shared test fixtures: the deterministic dummy model and the sample factories.

Sample builders live in ``tests/factories.py`` (importable: ``from factories import make_sample``)
so that module-level test data can use them too; the fixtures below hand out the same functions.
"""

from __future__ import annotations

import pytest
from factories import make_sample as _make_sample
from factories import make_samples as _make_samples

from sgvalues.models.dummy import DummyModel


@pytest.fixture
def make_sample():
    """Factory of one sample record (``factories.make_sample``)."""
    return _make_sample


@pytest.fixture
def make_samples():
    """Factory of sample records for every (question, subgroup) (``factories.make_samples``)."""
    return _make_samples


@pytest.fixture
def dummy_model():
    """Factory of :class:`sgvalues.models.dummy.DummyModel` (keyword arguments as the class)."""
    return DummyModel
