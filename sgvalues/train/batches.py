"""Training batches: seeded orders of sample indices, and collation into padded tensors.

Batches are *length grouped* (:func:`length_grouped_batches`: shuffle, then sort within
mega-batches of ``16 x batch_size``) and padded only to their own longest member, on the left
(:func:`collate`), so every answer ends at the batch's last position. With
``training.share_prefix`` each batch holds subgroups of one question
(:func:`question_batches`) and :func:`collate_shared` keeps their common prompt prefix once.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import defaultdict
from typing import Sequence

import numpy as np

from sgvalues.train.data import TrainError
from sgvalues.train.encode import IGNORE_INDEX, EncodedExample

__all__ = [
    "MEGA_BATCHES",
    "length_grouped_batches",
    "question_batches",
    "collate",
    "collate_shared",
]

#: length grouping sorts within mega-batches of this many batches
MEGA_BATCHES = 16


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed,
                           mega_batches: int = MEGA_BATCHES) -> list[list[int]]:
    """Seeded batches of indices whose members have similar lengths.

    Shuffle, cut into mega-batches of ``mega_batches x batch_size``, sort each by length
    (longest first), cut into batches, and shuffle the batch order. Padding to each batch's
    own maximum then wastes little, while the order stays random across mega-batches.
    """
    if batch_size < 1:
        raise TrainError(f"batch_size = {batch_size}: expected >= 1")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)).tolist()
    span = batch_size * max(1, mega_batches)
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda i: (-lengths[i], i))
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches)).tolist()]


def question_batches(questions: Sequence[str], batch_size: int, seed) -> list[list[int]]:
    """Seeded batches of indices that each hold subgroups of one question only.

    Each question's indices (in a seeded random order) are cut into near-equal batches of at
    most ``batch_size``; the batch order is shuffled. With :func:`collate_shared` the
    question's prompt prefix then runs once per batch.

    Examples
    --------
    >>> b = question_batches(["A", "A", "A", "B", "B"], batch_size=2, seed=0)
    >>> sorted(len(x) for x in b), sorted(i for x in b for i in x)
    ([1, 2, 2], [0, 1, 2, 3, 4])
    >>> all(len({"AAABB"[i] for i in x}) == 1 for x in b)
    True
    """
    if batch_size < 1:
        raise TrainError(f"batch_size = {batch_size}: expected >= 1")
    rng = np.random.default_rng(seed)
    by_q: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        by_q[str(q)].append(i)
    batches: list[list[int]] = []
    for q in sorted(by_q):
        idx = [by_q[q][k] for k in rng.permutation(len(by_q[q]))]
        n = math.ceil(len(idx) / batch_size)
        batches += [idx[j::n] for j in range(n)]  # near-equal: 50 at 16 -> 13+13+12+12
    return [batches[k] for k in rng.permutation(len(batches)).tolist()]


def collate(examples: Sequence[EncodedExample], pad_id: int) -> dict:
    """Left-pad a batch to its longest member; position ids count real tokens only.

    Left padding puts every answer at the end, so the loss needs only the last few logits.

    Examples
    --------
    >>> b = collate([EncodedExample("a", (5, 6, 7), (-100, 6, 7)),
    ...              EncodedExample("b", (8, 9), (-100, 9))], pad_id=0)
    >>> b["input_ids"].tolist(), b["position_ids"].tolist()
    ([[5, 6, 7], [0, 8, 9]], [[0, 1, 2], [0, 0, 1]])
    >>> b["labels"].tolist()
    [[-100, 6, 7], [-100, -100, 9]]
    """
    import torch

    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e)
        ids[row, width - n:] = torch.tensor(e.input_ids)
        labels[row, width - n:] = torch.tensor(e.labels)
        mask[row, width - n:] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    batch = {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "labels": labels}
    if any(e.soft for e in examples):
        batch["soft"] = [e.soft for e in examples]
        batch["branch_len"] = [e.n_answer for e in examples]
    if any(e.weight != 1.0 for e in examples):
        batch["weights"] = torch.tensor([float(e.weight) for e in examples], dtype=torch.float32)
    return batch


def collate_shared(examples: Sequence[EncodedExample], pad_id: int) -> dict:
    """A batch whose members share a prompt prefix (one question's subgroups): the prefix
    once, the rest of each member left padded after it.

    The prefix is the longest common prefix of the members' prompts, less one token, so
    every row keeps the prompt token that predicts its first answer token. ``attention_mask``
    covers prefix + suffix columns; ``position_ids`` (of the suffix) continue the prefix's.

    Examples
    --------
    >>> b = collate_shared([EncodedExample("a", (1, 2, 3, 7, 8), (-100, -100, -100, 7, 8)),
    ...                     EncodedExample("b", (1, 2, 5, 9), (-100, -100, -100, 9))], pad_id=0)
    >>> b["prefix_ids"].tolist(), b["input_ids"].tolist()
    ([[1, 2]], [[3, 7, 8], [0, 5, 9]])
    >>> b["attention_mask"].tolist(), b["labels"].tolist()
    ([[1, 1, 1, 1, 1], [1, 1, 0, 1, 1]], [[-100, 7, 8], [-100, -100, 9]])
    >>> b["position_ids"].tolist()
    [[2, 3, 4], [2, 2, 3]]
    """
    import torch

    prompt_lens = [len(e) - e.n_answer for e in examples]
    first = examples[0].input_ids
    n = min(prompt_lens) - 1
    for e in examples[1:]:
        n = min(n, len(os.path.commonprefix([list(first[:n]), list(e.input_ids[:n])])))
    n = max(n, 0)
    rest = [dataclasses.replace(e, input_ids=e.input_ids[n:], labels=e.labels[n:]) for e in examples]
    batch = collate(rest, pad_id)
    batch["position_ids"] = batch["position_ids"] + n
    ones = torch.ones((len(rest), n), dtype=batch["attention_mask"].dtype)
    batch["attention_mask"] = torch.cat([ones, batch["attention_mask"]], dim=1)
    batch["prefix_ids"] = torch.tensor([list(first[:n])], dtype=torch.long)
    return batch
