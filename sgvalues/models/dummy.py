"""A deterministic tiny model behind the model interface, for tests and dry runs (no weights, no network).

:class:`DummyModel` answers every request of :mod:`sgvalues.models.base` -- ``score_options``,
``generate_answers`` and, through the base class, ``generate``, ``score_answers``,
``generate_scored`` and ``answer`` in each of :data:`~sgvalues.models.base.ANSWER_MODES` --
from the text of the request alone, so the same request always gets the same answer, in any
process. What it says is scripted by substrings of the last message (the user turn, where the
persona and the judge's two answers are):

* ``favour``: substring -> option code the model prefers (first match wins); it gets
  probability ``confidence`` and the other codes share the rest equally. Without a match the
  preferred code is picked by a SHA-256 hash of the request;
* ``replies``: substring -> generated text (first match wins), else ``default_reply``, else the
  hash's choice of ``"1"`` … ``"4"``;
* ``unscorable``: substrings whose requests get no option probabilities (``{}``; in mode
  ``logprob`` the answer is then failed);
* ``failing``: substrings whose generation fails (:class:`~sgvalues.models.base.Answer` with
  ``error`` set).

``calls`` counts backend calls (one per ``score_options`` or ``generate_answers`` batch) and
``seen`` the requests, as the real backends do, so tests can check that a cache saves work.

Examples
--------
>>> from sgvalues.models.base import ScoreRequest
>>> m = DummyModel(favour={"Female": "3"}, replies={"Female": "I would say 3."}, confidence=0.5)
>>> ask = lambda who: ScoreRequest([{"role": "user", "content": f"You are {who}. 1, 2 or 3?"}], ["1", "2", "3"])
>>> m.score_options([ask("Female")])[0]
{'1': 0.25, '2': 0.25, '3': 0.5}
>>> [a.text for a in m.answer([ask("Female")], mode="generate")]
['I would say 3.']
>>> m.score_options([ask("Male")]) == m.score_options([ask("Male")])  # same request, same answer
True
>>> m.calls, m.seen
(4, 4)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from sgvalues.models.base import Answer, GenerateRequest, Model, ScoreRequest

__all__ = ["DummyModel"]


class DummyModel(Model):
    """Deterministic scripted model implementing :class:`~sgvalues.models.base.Model`.

    Parameters
    ----------
    name : str
        Part of ``model_id`` (``"dummy:<name>:<seed>"``), which keys the response cache.
    favour : mapping of str to str, optional
        Substring of the last message -> the option code preferred when it occurs.
    replies : mapping of str to str, optional
        Substring of the last message -> the generated text when it occurs.
    default_reply : str, optional
        Generated text when no ``replies`` substring occurs.
    unscorable, failing : sequence of str
        Substrings whose requests get no option probabilities / whose generation fails.
    confidence : float
        Probability of the preferred code, in (0, 1].
    seed : int
        Changes the hash's choices (and ``model_id``).

    Notes
    -----
    With :math:`K` option codes and preferred code :math:`c^*`,
    :math:`p(c^*) = \\text{confidence}` and :math:`p(c) = (1 - \\text{confidence}) / (K - 1)`
    for :math:`c \\ne c^*` (:math:`p(c^*) = 1` when :math:`K = 1`). The unscripted choice is
    :math:`c^* = c_{h \\bmod K}` with :math:`h` the SHA-256 of ``seed`` and the JSON of the messages.
    """

    backend = "dummy"
    exact_logprobs = True
    #: ``messages`` (read as sent) or ``folded`` (system text folded into the first user turn)
    rendering = "messages"

    def __init__(self, name: str = "dummy", *, favour: Mapping[str, str] | None = None,
                 replies: Mapping[str, str] | None = None, default_reply: str | None = None,
                 unscorable: Sequence[str] = (), failing: Sequence[str] = (), confidence: float = 0.9,
                 seed: int = 0):
        if not 0 < confidence <= 1:
            raise ValueError(f"DummyModel: confidence = {confidence!r}: expected a probability in (0, 1]")
        self.name, self.seed, self.confidence = name, int(seed), float(confidence)
        self.favour, self.replies = dict(favour or {}), dict(replies or {})
        self.default_reply = default_reply
        self.unscorable, self.failing = tuple(unscorable), tuple(failing)
        self.model_id = f"dummy:{name}:{self.seed}"
        self.adapter_id = ""
        self.calls = 0
        self.seen = 0

    def _fit(self, messages) -> list:
        if self.rendering == "folded":
            from sgvalues.prompts import fold_system

            return fold_system(messages)
        return list(messages)

    def _hash(self, messages) -> int:
        text = json.dumps([self.seed, list(messages)], sort_keys=True, ensure_ascii=False)
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")

    @staticmethod
    def _last(messages) -> str:
        return str(messages[-1].get("content", "")) if messages else ""

    @staticmethod
    def _first_match(rules: Mapping[str, str], text: str) -> str | None:
        return next((value for key, value in rules.items() if key in text), None)

    def score_options(self, requests: Sequence[ScoreRequest]) -> list[dict[str, float]]:
        """Option probabilities per request (``{}`` for an ``unscorable`` one)."""
        self.calls += 1
        self.seen += len(requests)
        out = []
        for r in requests:
            messages = self._fit(r.messages)
            text, codes = self._last(messages), [str(c) for c in r.option_codes]
            if any(s in text for s in self.unscorable):
                out.append({})
                continue
            best = self._first_match(self.favour, text)
            if best not in codes:
                best = codes[self._hash(messages) % len(codes)]
            if len(codes) == 1:
                out.append({best: 1.0})
                continue
            rest = (1 - self.confidence) / (len(codes) - 1)
            out.append({c: (self.confidence if c == best else rest) for c in codes})
        return out

    def generate_answers(self, requests: Sequence[GenerateRequest]) -> list[Answer]:
        """Scripted text per request (``error`` set for a ``failing`` one)."""
        self.calls += 1
        self.seen += len(requests)
        out = []
        for r in requests:
            messages = self._fit(r.messages)
            text = self._last(messages)
            if any(s in text for s in self.failing):
                out.append(Answer(error=f"{self.model_id}: scripted failure"))
                continue
            reply = self._first_match(self.replies, text)
            if reply is None:
                reply = self.default_reply if self.default_reply is not None else str(1 + self._hash(messages) % 4)
            out.append(Answer(text=reply))
        return out

    def decoding_key(self) -> dict:
        """The script, so a cache never mixes two differently scripted dummies."""
        return {"favour": self.favour, "replies": self.replies, "default_reply": self.default_reply,
                "unscorable": list(self.unscorable), "failing": list(self.failing), "confidence": self.confidence}


def dummy_from_spec(spec, adapter=None) -> DummyModel:
    """The ``dummy`` backend: a :class:`DummyModel` named ``spec.name``, seeded by the adapter.

    Without an adapter the seed is 0. A LoRA adapter folder (as ``sgvalues train`` writes for a
    ``dummy`` run, on the tiny stand-in model of :mod:`sgvalues.models.tiny`) changes the seed
    to the first 8 hex digits of the SHA-256 of its :func:`~sgvalues.models.cache.adapter_identity`, so the
    "fine-tuned" answers differ from the base ones, deterministically. The messages are
    folded (:func:`sgvalues.prompts.fold_system`) when ``spec.system_role`` is ``fold``.
    """
    from sgvalues.models.cache import adapter_identity

    adapter = adapter if adapter is not None else getattr(spec, "adapter", None)
    ident = adapter_identity(adapter) if adapter else ""
    seed = int(hashlib.sha256(ident.encode()).hexdigest()[:8], 16) if ident else 0
    model = DummyModel(spec.name, seed=seed)
    model.adapter_id = ident
    if getattr(spec, "system_role", "auto") == "fold":
        model.rendering = "folded"
    return model
