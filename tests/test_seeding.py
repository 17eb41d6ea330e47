"""Training's seeding (accelerate's set_seed) gives the generators the states seeding each by hand gives."""

import random

import numpy as np
import torch

from sgvalues.train.loop import _seed_all


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seed_all_equals_seeding_python_numpy_and_torch_by_hand():
    for seed in (0, 123, 2**32 + 5):
        _seed_all(seed)
        got = _draws()
        random.seed(seed % 2**32)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed % 2**32)
        assert got == _draws()
    _seed_all(7)
    first = _draws()
    _seed_all(7)
    assert _draws() == first
    _seed_all(8)
    assert _draws() != first
