"""Training losses on collated batches: each returns (summed loss, its denominator).

:func:`answer_loss` (cross-entropy on the answer tokens, ``lm_head`` on the last few positions
only), :func:`shared_prefix_loss` (the same on a :func:`~sgvalues.train.batches.collate_shared`
batch, the shared prefix run once) and :func:`distribution_loss` (soft cross-entropy against a
subgroup's answer distribution over the option codes).
"""

from __future__ import annotations

from sgvalues.train.encode import IGNORE_INDEX

__all__ = [
    "answer_loss",
    "shared_prefix_loss",
    "distribution_loss",
]


def answer_loss(model, batch: dict):
    """Summed cross-entropy over the answer tokens, and their number.

    Only the last ``K + 1`` positions are sent through ``lm_head`` (``K`` = longest answer;
    the batch is left padded), via the model's ``logits_to_keep``.
    """

    labels = batch["labels"]
    k = int((labels != IGNORE_INDEX).sum(-1).max())
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"], logits_to_keep=k + 1, use_cache=False)
    logits = out.logits[:, :-1, :].float()  # position t predicts token t + 1
    return _token_cross_entropy(logits, labels[:, -k:], batch.get("weights"))


def _token_cross_entropy(logits, targets, weights=None):
    """Summed answer-token cross-entropy (each row's tokens times its weight) and the token count."""
    import torch.nn.functional as F

    if weights is None:
        loss_sum = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                   ignore_index=IGNORE_INDEX, reduction="sum")
    else:
        per_token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                    ignore_index=IGNORE_INDEX, reduction="none").view(targets.shape)
        loss_sum = (per_token.sum(-1) * weights.to(per_token.device)).sum()
    return loss_sum, (targets != IGNORE_INDEX).sum()


def shared_prefix_loss(model, batch: dict):
    """:func:`answer_loss` for a :func:`collate_shared` batch: the shared prefix runs once.

    The prefix's keys and values are computed for one row, expanded (a view) over the batch,
    and the suffixes attend to them; gradients flow back through the expanded cache into the
    prefix's computation, so loss and gradients equal the unshared ones (without dropout:
    with LoRA dropout the prefix shares one dropout mask across the batch).
    """
    labels = batch["labels"]
    k = int((labels != IGNORE_INDEX).sum(-1).max())
    logits = _shared_prefix_logits(model, batch, k + 1)[:, :-1, :].float()  # t predicts t + 1
    return _token_cross_entropy(logits, labels[:, -k:], batch.get("weights"))


def _shared_prefix_logits(model, batch: dict, keep: int):
    """Logits at the last ``keep`` positions of a :func:`collate_shared` batch (prefix run once)."""
    import torch
    from transformers import DynamicCache

    labels = batch["labels"]
    prefix = batch["prefix_ids"]
    cache = None
    if prefix.shape[1] > 0:
        cfg = getattr(model, "config", None)
        pos = torch.arange(prefix.shape[1], device=prefix.device).unsqueeze(0)
        out = model(input_ids=prefix, position_ids=pos, use_cache=True, logits_to_keep=1)
        kv = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        rows = labels.shape[0]
        cache = DynamicCache([(key.expand(rows, -1, -1, -1), val.expand(rows, -1, -1, -1))
                              for key, val, *_ in kv], config=cfg)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"], logits_to_keep=keep,
                use_cache=cache is not None, cache=cache)
    return out.logits


def distribution_loss(model, batch: dict):
    """Summed soft cross-entropy against each row's answer distribution, and the number of rows.

    Works on :func:`collate` and :func:`collate_shared` batches of
    :func:`encode_distribution_sample` examples. Each row ends with its trie branch (left
    padding), so the last ``B + 1`` logits (``B`` = longest branch) hold every row's
    next-token distributions at the trie's internal nodes.

    Notes
    -----
    With :math:`\\ell_v(t)` the log-probability of token :math:`t` at trie node :math:`v`, a code
    :math:`c = t_1 \\dots t_k` gets, as in the evaluation engine (``sgvalues.models.scoring``),

    .. math:: \\log \\tilde p(c) = \\sum_{i=1}^{k} \\ell_{t_{<i}}(t_i)
              + \\log\\Big(1 - \\sum_{t \\in \\mathrm{children}(c)} e^{\\ell_{c}(t)}\\Big),
       \\qquad \\log p(c) = \\log \\tilde p(c) - \\log \\sum_{c'} \\tilde p(c'),

    and the row's loss is :math:`w \\cdot \\big(-\\sum_c q(c) \\log p(c)\\big)` with its target
    shares :math:`q` and weight :math:`w` (1 without ``weights``). For a one-hot :math:`q` it is
    :math:`-\\log p(\\text{target})`, the modal answer's cross-entropy *over the options*; the
    ``modal`` objective's token cross-entropy is over the whole vocabulary and includes the
    end-of-turn token.
    """
    import torch

    soft, branch_len = batch["soft"], batch["branch_len"]
    keep = max(branch_len) + 1
    if "prefix_ids" in batch:
        logits = _shared_prefix_logits(model, batch, keep)
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"], logits_to_keep=keep, use_cache=False).logits
    logp = logits[:, -keep:, :].float().log_softmax(-1)
    weights = batch.get("weights")
    total = logp.new_zeros(())
    for row, (pairs, b) in enumerate(zip(soft, branch_len)):
        root = keep - 1 - b  # index of the last prompt token in the kept logits
        seqs = [tuple(toks) for toks, _ in pairs]
        scores = []
        for s in seqs:
            lp = logp.new_zeros(())
            for i, tok in enumerate(s):
                lp = lp + logp[row, root + i, tok]
            children = sorted({t[len(s)] for t in seqs if len(t) > len(s) and t[: len(s)] == s})
            if children:
                cont = logp[row, root + len(s), children].exp().sum()
                lp = lp + torch.log1p(-cont.clamp(max=1 - 1e-7))
            scores.append(lp)
        log_p = torch.stack(scores)
        log_p = log_p - torch.logsumexp(log_p, 0)
        q = torch.tensor([share for _, share in pairs], dtype=log_p.dtype, device=log_p.device)
        loss = -(q * log_p).sum()
        total = total + (loss * float(weights[row]) if weights is not None else loss)
    return total, torch.tensor(len(soft))
