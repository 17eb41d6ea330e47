"""The model interface every backend implements, and how a free-text answer is read.

A backend answers two kinds of request:

* :class:`ScoreRequest` -- chat messages plus the question's option codes; ``score_options``
  returns the probability of each code (normalised over the codes);
* :class:`GenerateRequest` -- chat messages plus decoding settings; ``generate`` returns text.

``answer`` is what structured evaluation calls: one :class:`Answer` per request, carrying the
probabilities (when the backend can read them), the raw text (when it generated some) and an
error (when the request failed for good). Nothing is dropped: a failed request is an
``Answer`` with ``error`` set.

Example
-------
>>> parse_option("I would say 7.", ["1", "2", "7", "10"])
'7'
>>> classify_text("As an AI, I cannot answer that.", ["1", "2"])
('refused', None)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

__all__ = [
    "ScoreRequest",
    "GenerateRequest",
    "Answer",
    "Model",
    "REFUSAL_PATTERNS",
    "parse_option",
    "is_refusal",
    "classify_text",
]


@dataclass(frozen=True)
class ScoreRequest:
    """Chat ``messages`` and the option codes (strings such as ``"1"``, ``"10"``) to score."""

    messages: tuple[dict, ...] | list[dict]
    option_codes: tuple[str, ...] | list[str]
    #: used by backends that must generate text to answer (openai without logprobs)
    max_new_tokens: int = 8
    #: requests with the same group share a prompt prefix (e.g. the question id); the hf
    #: engine computes that prefix once. ``None``: found by comparing token sequences
    group: str | None = None

    def __post_init__(self):
        if not self.option_codes:
            raise ValueError("ScoreRequest needs at least one option code")
        bad = [c for c in self.option_codes if not isinstance(c, str) or not c]
        if bad:
            raise ValueError(f"option codes must be non-empty strings, got {bad!r}")


@dataclass(frozen=True)
class GenerateRequest:
    """Chat ``messages`` to continue; greedy when ``temperature == 0``."""

    messages: tuple[dict, ...] | list[dict]
    max_new_tokens: int = 64
    temperature: float = 0.0
    seed: int = 0


@dataclass
class Answer:
    """One structured answer: option ``probs`` and/or raw ``text``; ``error`` when it failed."""

    probs: dict[str, float] | None = None
    text: str | None = None
    error: str | None = None
    #: free-form diagnostics (e.g. probability mass the model put on the option codes)
    info: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"probs": self.probs, "text": self.text, "error": self.error, "info": self.info}

    @classmethod
    def from_json(cls, d: dict) -> "Answer":
        return cls(probs=d.get("probs"), text=d.get("text"), error=d.get("error"), info=d.get("info") or {})


#: phrases that open a refusal; matched case-insensitively at the start of the answer or
#: anywhere in it for the longer, unambiguous ones
REFUSAL_PATTERNS: tuple[str, ...] = (
    r"\bI (?:cannot|can't|can not|won't|will not|am unable to|am not able to|'m unable to|'m not able to)\b",
    r"\bI(?:'m| am) (?:sorry|afraid)\b",
    r"\bAs an AI\b",
    r"\bAs a (?:language model|large language model|AI)\b",
    r"\bI do not have (?:personal|opinions|beliefs)\b",
    r"\bI don't have (?:personal|opinions|beliefs)\b",
    r"\bI (?:must|have to) (?:decline|refrain)\b",
    r"\bnot (?:able|appropriate) (?:to|for me to) (?:answer|provide|share)\b",
)
_REFUSAL_RE = re.compile("|".join(REFUSAL_PATTERNS), re.IGNORECASE)
# a whole integer: not part of a longer number or a decimal ("2.5" has no code in it)
_NUMBER_RE = re.compile(r"(?<![\d.])-?\d+(?!\d|\.\d)")


def parse_option(text: str | None, option_codes: Sequence[str]) -> str | None:
    """First integer in ``text`` that is one of ``option_codes``; ``None`` if there is none.

    Only the *first* number counts (``"3, or maybe 4"`` -> ``"3"``), and it must be a whole
    code: ``"11"`` with codes 1-10 is not read as ``"1"``. A leading ``+``/``0`` is tolerated
    (``"07"`` -> ``"7"``) because some models pad.

    Examples
    --------
    >>> parse_option("10", [str(i) for i in range(1, 11)])
    '10'
    >>> parse_option("Answer: 11", [str(i) for i in range(1, 11)]) is None
    True
    >>> parse_option("no number", ["1"]) is None
    True
    """
    if not text:
        return None
    codes = {str(c) for c in option_codes}
    m = _NUMBER_RE.search(text)
    if m is None:
        return None
    token = m.group(0)
    if token in codes:
        return token
    try:
        normal = str(int(token))
    except ValueError:  # pragma: no cover - the regex only matches integers
        return None
    return normal if normal in codes else None


def is_refusal(text: str | None) -> bool:
    """Whether ``text`` reads as a refusal ("I cannot", "As an AI", ...; see ``REFUSAL_PATTERNS``).

    >>> is_refusal("I'm sorry, but I can't share personal opinions."), is_refusal("4")
    (True, False)
    """
    return bool(text) and _REFUSAL_RE.search(text) is not None


def classify_text(text: str | None, option_codes: Sequence[str]) -> tuple[str, str | None]:
    """``(status, code)`` for a generated answer: ``ok`` with the code, else ``refused``/``unparseable``.

    A valid code wins over refusal phrasing ("I can't be sure, but 3" -> ok, 3), because the
    model did answer; text with no valid code is ``refused`` when it reads as a refusal and
    ``unparseable`` otherwise.
    """
    code = parse_option(text, option_codes)
    if code is not None:
        return "ok", code
    return ("refused" if is_refusal(text) else "unparseable"), None


class Model:
    """Base class of the backends (``hf``, ``openai``).

    Subclasses set ``model_id`` (stable across processes: it keys the response cache),
    ``adapter_id`` (``""`` without an adapter) and implement ``score_options`` and
    ``generate_answers``; ``answer`` and ``generate`` are derived from them.
    """

    model_id: str = ""
    adapter_id: str = ""
    backend: str = ""
    #: whether ``score_options`` reads real probabilities (hf) or may come back empty (openai)
    exact_logprobs: bool = True
    #: number of backend calls made (forward batches for hf, HTTP requests for openai);
    #: tests use it to check that the cache saves work
    calls: int = 0

    def score_options(self, requests: Sequence[ScoreRequest]) -> list[dict[str, float]]:
        """Probability of each option code, normalised over the codes; ``{}`` if unavailable."""
        raise NotImplementedError

    def generate_answers(self, requests: Sequence[GenerateRequest]) -> list[Answer]:
        """Generated text per request as :class:`Answer` (``error`` set when a request failed)."""
        raise NotImplementedError

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        """Generated text per request (``""`` for a request that failed; see ``generate_answers``)."""
        return [a.text or "" for a in self.generate_answers(requests)]

    def answer(self, requests: Sequence[ScoreRequest], mode: str = "logprob",
               temperature: float = 0.0) -> list[Answer]:
        """Structured answers: ``logprob`` reads option probabilities, ``generate`` decodes text."""
        if mode == "logprob":
            return [Answer(probs=p) if p else Answer(error="no option probabilities")
                    for p in self.score_options(requests)]
        if mode == "generate":
            gen = [GenerateRequest(r.messages, r.max_new_tokens, temperature) for r in requests]
            return self.generate_answers(gen)
        raise ValueError(f"mode must be 'logprob' or 'generate', got {mode!r}")

    def decoding_key(self) -> dict:
        """Settings that change this model's answers beyond its id (dtype, logprob depth...)."""
        return {}

    def close(self) -> None:
        """Release resources (threads, HTTP clients)."""
