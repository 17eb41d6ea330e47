"""Reading option-code probabilities off next-token distributions (codes of one or more tokens).

The assistant answers with a bare option code. When every code is one token, the answer's
distribution is the next-token distribution after the generation prompt, restricted to the
codes and renormalised. Codes such as ``"10"`` may be two tokens (``"1"``, ``"0"``) in
tokenizers that split digits (SmolLM2, Qwen); then ``"1"`` is a token-prefix of ``"10"`` and
the two must share the probability of the token ``"1"`` consistently.

Rule (greedy longest code)
--------------------------
Arrange the codes' token sequences in a trie. A code ``c = t_1 … t_k`` is read when the
model emits its tokens and then does **not** continue into a longer valid code:

.. math::

   \\tilde P(c) = \\prod_{i=1}^{k} p(t_i \\mid x, t_{<i}) \\;
   \\Big(1 - \\sum_{t \\in \\mathrm{children}(c)} p(t \\mid x, t_{\\le k})\\Big),
   \\qquad P(c) = \\tilde P(c) / \\sum_{c'} \\tilde P(c'),

where ``children(c)`` are the next tokens of the longer codes that start with ``c`` (the
bracket is 1 when there are none). For codes 1-10 split into digits this gives
``P(1) ∝ p("1")·(1 − p("0"|"1"))`` and ``P(10) ∝ p("1")·p("0"|"1")``, so the two exactly
partition ``p("1")``; ``P(1)+…+P(10)`` before normalisation is the probability that the answer
starts with one of the codes (reported as ``option_mass``). Continuations outside the option
set (``"11"``) count towards the longest valid code they start with, the same reading as
greedy decoding followed by longest-prefix matching. It needs the next-token distribution at
every *internal* node of the trie only: the generation prompt, plus -- for 1-10 -- one extra
position after ``"1"``. :func:`code_branches` lists the token paths to append for that.

Example
-------
>>> import numpy as np
>>> toks = {"1": (1,), "2": (2,), "10": (1, 0)}
>>> code_branches(toks)
[(1,)]
>>> root = np.log(np.array([0.1, 0.6, 0.3]))     # p("0"), p("1"), p("2") after the prompt
>>> after1 = np.log(np.array([0.25, 0.5, 0.25]))  # p(. | "1")
>>> p = option_probabilities(toks, {(): root, (1,): after1})
>>> {c: round(v, 4) for c, v in p.probs.items()}
{'1': 0.5, '2': 0.3333, '10': 0.1667}
>>> round(p.option_mass, 3)
0.9
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = ["code_branches", "needed_tokens", "option_probabilities", "OptionScores"]


def _internal_nodes(code_tokens: Mapping[str, Sequence[int]]) -> set[tuple[int, ...]]:
    nodes: set[tuple[int, ...]] = set()
    seqs = [tuple(s) for s in code_tokens.values()]
    for s in seqs:
        if not s:
            raise ValueError("an option code tokenised to no tokens")
        for i in range(len(s)):
            nodes.add(s[:i])  # proper prefixes, including the root ()
    return nodes


def code_branches(code_tokens: Mapping[str, Sequence[int]]) -> list[tuple[int, ...]]:
    """Token paths whose positions expose the distribution at every internal trie node.

    Appending branch ``b`` after the prompt and reading the logits at the last prompt position
    and at each token of ``b`` gives the distributions at nodes ``b[:0] … b[:len(b)]``. Returns
    the maximal internal paths, sorted; ``[()]`` when every code is a single token.
    """
    nodes = _internal_nodes(code_tokens)
    maximal = [n for n in nodes if not any(len(m) > len(n) and m[: len(n)] == n for m in nodes)]
    return sorted(maximal)


def needed_tokens(code_tokens: Mapping[str, Sequence[int]]) -> dict[tuple[int, ...], list[int]]:
    """For each internal node, the token ids whose probabilities the rule reads there."""
    need: dict[tuple[int, ...], set[int]] = {}
    for s in code_tokens.values():
        s = tuple(s)
        for i in range(len(s)):
            need.setdefault(s[:i], set()).add(s[i])
    return {k: sorted(v) for k, v in need.items()}


@dataclass
class OptionScores:
    """Normalised ``probs`` per code, and ``option_mass``: the unnormalised total (in [0, 1])."""

    probs: dict[str, float]
    option_mass: float


def option_probabilities(code_tokens: Mapping[str, Sequence[int]],
                         node_logprobs: Mapping[tuple[int, ...], "np.ndarray | Mapping[int, float]"]
                         ) -> OptionScores:
    """Apply the greedy-longest-code rule (module docstring) to next-token log-probabilities.

    ``node_logprobs[node][token]`` is ``log p(token | prompt, node)``; a mapping with only the
    tokens of :func:`needed_tokens` is enough. Computed in float64 log space.
    """
    seqs = {c: tuple(s) for c, s in code_tokens.items()}
    logp: dict[str, float] = {}
    for code, s in seqs.items():
        lp = 0.0
        for i, tok in enumerate(s):
            lp += float(node_logprobs[s[:i]][tok])
        children = {t[len(s)] for t in seqs.values() if len(t) > len(s) and t[: len(s)] == s}
        if children:
            cont = sum(math.exp(float(node_logprobs[s][t])) for t in children)
            lp += math.log(max(1.0 - cont, 1e-300))
        logp[code] = lp
    top = max(logp.values())
    if not math.isfinite(top):
        # every code impossible under the model: no information, spread evenly
        n = len(logp)
        return OptionScores({c: 1.0 / n for c in logp}, 0.0)
    weights = {c: math.exp(v - top) for c, v in logp.items()}
    total = sum(weights.values())
    mass = math.exp(top) * total
    return OptionScores({c: w / total for c, w in weights.items()}, min(mass, 1.0))
