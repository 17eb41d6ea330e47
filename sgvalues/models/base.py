"""The model interface every backend implements, and how a free-text answer is read.

A backend answers two kinds of request:

* :class:`ScoreRequest` -- chat messages plus the question's option codes; ``score_options``
  returns the probability of each code (normalised over the codes);
* :class:`GenerateRequest` -- chat messages plus decoding settings; ``generate`` returns text.

``answer`` is what structured evaluation calls: one :class:`Answer` per request, carrying the
probabilities (when the backend can read them), the raw text (when it generated some) and an
error (when the request failed for good). Nothing is dropped: a failed request is an
``Answer`` with ``error`` set. Its modes (:data:`ANSWER_MODES`):

``logprob``
    option probabilities only (the model is never asked to write);
``generate``
    generated text only, parsed by :func:`classify_text` (refusals and unparseable answers
    counted);
``generate_logprob``
    the paper's protocol with the distribution kept: the answer is *generated* and parsed
    (status and prediction come from the text, so refusals can occur), and the option
    probabilities are read in the same pass -- hf: from the first decoding steps' scores of
    that very generation; openai: ``logprobs``/``top_logprobs`` of the same request. See
    :meth:`Model.generate_scored`.

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

from sgvalues.constants import ANSWER_MODES  # structured answer modes (``params.evaluation.mode``)

__all__ = [
    "ScoreRequest",
    "GenerateRequest",
    "Answer",
    "Model",
    "ANSWER_MODES",
    "REFUSAL_PATTERNS",
    "parse_option",
    "is_refusal",
    "classify_text",
    "answer_decided",
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


# "I cannot" alone would flag in-character answers such as "I cannot imagine life without
# faith", so the inability phrases need a verb of answering/opining after them.
_SPEECH = (
    r"(?:answer|provide|share|express|give|offer|state|say|tell|respond|reply|comment|help|assist|"
    r"comply|fulfil+|engage|speak|pretend|role-?play|adopt|impersonate|take (?:a |any )?(?:side|position|stance)|"
    r"hold|have|form|make (?:a )?(?:judg(?:e)?ments?|choices?)|choose|pick|select|rate|support|endorse|"
    r"generate|write|discuss|represent|predict|speculate|determine|decide|know)"
)

#: The one refusal detector of the package, for structured and open-ended answers alike
#: (``evaluate`` and ``judge`` both call :func:`is_refusal`). Matched case-insensitively
#: anywhere in the answer; see :func:`is_refusal` for what each pattern catches.
REFUSAL_PATTERNS: tuple[str, ...] = (
    rf"\bI\s*(?:cannot|can ?not|can't|can’t|am unable to|'m unable to|’m unable to|am not able to|"
    rf"'m not able to|’m not able to|won't|won’t|will not|must decline to|do not feel comfortable|"
    rf"don't feel comfortable|don’t feel comfortable)\s+(?:\w+\s+){{0,2}}?{_SPEECH}\b",
    r"\bas an? (?:AI|artificial intelligence|language model|large language model|LLM|"
    r"AI language model|AI assistant|assistant|chatbot|machine)\b",
    r"\bI(?:'m| am|’m) (?:just |only )?an? (?:AI|artificial intelligence|language model|"
    r"large language model|chatbot|AI assistant|virtual assistant)\b",
    r"\bI (?:do not|don't|don’t) (?:have|hold|possess) (?:any )?(?:personal |own )?"
    r"(?:opinions?|beliefs?|views?|preferences?|feelings?|values|experiences?|political views)\b",
    r"\bI (?:do not|don't|don’t) have the ability to (?:hold|have|form|express)\b",
    r"\bI(?:'m| am|’m) (?:sorry|afraid),? but\b",
    r"\bI must (?:respectfully )?decline\b",
    r"\b(?:it is|it's|it’s) not (?:appropriate|possible) for me to\b",
    r"\bnot (?:able|allowed|permitted) to (?:share|express|give|provide) (?:my )?(?:own |personal )?"
    r"(?:opinions?|views?|beliefs?)\b",
)
_REFUSAL_RE = re.compile("|".join(f"(?:{p})" for p in REFUSAL_PATTERNS), re.IGNORECASE)
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
    """Whether an answer declines to answer (as the persona, or with a code).

    Parameters
    ----------
    text : str or None
        The model's answer, structured or open-ended. Empty or missing text (``None``, NaN) is
        *not* a refusal: it is a failed generation, counted separately by the caller.

    Returns
    -------
    bool

    Notes
    -----
    A refusal is any of (:data:`REFUSAL_PATTERNS`): an inability phrase followed within two
    words by a verb of answering or opining ("I cannot provide", "I'm not able to share
    personal opinions", "I won't take sides"); the model naming itself an AI ("As an AI",
    "I am a language model"); disclaiming opinions ("I don't have personal beliefs"); or an
    apology-decline ("I'm sorry, but", "I must decline"). Bare "I cannot" is not enough:
    "I cannot imagine life without my faith" is an in-character answer. For structured
    answers :func:`classify_text` checks for a valid code first.

    Examples
    --------
    >>> is_refusal("I'm sorry, but I can't share personal opinions."), is_refusal("4")
    (True, False)
    >>> is_refusal("I cannot imagine my life without my temple community.")
    False
    """
    if text is None or not isinstance(text, str) or not text:
        return False  # None, NaN (a missing cell) or ""
    return _REFUSAL_RE.search(text) is not None


def answer_decided(text: str | None, option_codes: Sequence[str]) -> bool:
    """Whether :func:`classify_text` of ``text`` is ``ok`` whatever text follows: its first number is
    complete (something other than a digit or a decimal part follows it) and is an option code.

    Lets a sampler stop an answer once its parse is settled.

    >>> answer_decided("3", ["3"]), answer_decided("3.", ["3"]), answer_decided("3. Very", ["3"])
    (False, False, True)
    >>> answer_decided("1", ["1", "10"]), answer_decided("11 ", ["1"]), answer_decided("Option 2,", ["1", "2"])
    (False, False, True)
    """
    if not text:
        return False
    m = _NUMBER_RE.search(text)
    if m is None or not re.match(r"[^\d.]|\.[^\d]", text[m.end():m.end() + 2]):
        return False
    return parse_option(text[:m.end()], option_codes) is not None


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
    #: how the backend turns chat messages into text (``sgvalues.models.chat.RENDERINGS``):
    #: ``system``, ``folded``, ``transcript`` (hf), ``server`` (openai), ``messages`` (dummy)
    rendering: str = "messages"
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

    def score_answers(self, requests: Sequence[ScoreRequest]) -> list[Answer]:
        """Option probabilities as :class:`Answer` (``probs=None`` where the backend has none;
        backends may add the text they generated in the same request)."""
        return [Answer(probs=p or None) for p in self.score_options(requests)]

    def generate_scored(self, requests: Sequence[ScoreRequest], temperature: float = 0.0) -> list[Answer]:
        """Generated text *and* option probabilities per request (mode ``generate_logprob``).

        This default asks :meth:`score_answers` first: a backend whose scoring request also
        returns the generated text (openai: one chat completion with ``logprobs`` and
        ``top_logprobs``, greedy) answers in that one request. Requests still without text
        (or any request when ``temperature > 0``, since scoring decodes greedily) are then
        generated. A request that failed for good stays failed (it is not sent twice). The
        hf backend overrides this with a single generation pass.
        """
        requests = list(requests)
        scored = self.score_answers(requests) if requests else []
        out = [Answer(probs=a.probs, text=a.text, error=a.error, info=dict(a.info)) for a in scored]
        todo = [i for i, a in enumerate(scored) if a.error is None and (a.text is None or temperature > 0)]
        if todo:
            gen = self.generate_answers([GenerateRequest(requests[i].messages, requests[i].max_new_tokens,
                                                         temperature) for i in todo])
            for i, g in zip(todo, gen):
                if g.error is not None:
                    out[i] = Answer(error=g.error)
                else:
                    out[i].text = g.text
        return out

    def sample_texts(self, requests: Sequence[ScoreRequest], n: int, max_new_tokens: int = 8,
                     temperature: float = 1.0, seed: int = 0, stop=None) -> list[list[str]]:
        """``n`` answers per request, sampled at ``temperature`` (greedy, once, when it is 0).

        ``stop(text, option_codes) -> bool`` lets a backend end an answer early once its text makes it true
        (hf does; this default generates whole answers and ignores it).

        What the sampled and verbalised readouts (``sgvalues.readouts``) ask. This default sends
        ``n`` generation requests per prompt, the j-th seeded ``seed + j``; a backend that can
        share the prompt's work across the ``n`` answers overrides it (hf). A failed generation
        is ``""`` (it parses as no answer and is counted so).
        """
        if n < 1:
            raise ValueError(f"n = {n}: expected >= 1 answers per request")
        requests = list(requests)
        copies = 1 if temperature == 0 else int(n)
        gen = [GenerateRequest(r.messages, max_new_tokens, temperature, seed + j) for r in requests
               for j in range(copies)]
        texts = [a.text or "" if a.error is None else "" for a in self.generate_answers(gen)]
        return [texts[i * copies:(i + 1) * copies] for i in range(len(requests))]

    def answer(self, requests: Sequence[ScoreRequest], mode: str = "logprob",
               temperature: float = 0.0) -> list[Answer]:
        """Structured answers in one of :data:`ANSWER_MODES` (see the module docstring)."""
        if mode == "logprob":
            return [Answer(probs=p) if p else Answer(error="no option probabilities")
                    for p in self.score_options(requests)]
        if mode == "generate":
            gen = [GenerateRequest(r.messages, r.max_new_tokens, temperature) for r in requests]
            return self.generate_answers(gen)
        if mode == "generate_logprob":
            return self.generate_scored(requests, temperature)
        raise ValueError(f"mode must be one of {', '.join(ANSWER_MODES)}, got {mode!r}")

    def decoding_key(self) -> dict:
        """Settings that change this model's answers beyond its id (dtype, logprob depth...)."""
        return {}

    def close(self) -> None:
        """Release resources (threads, HTTP clients)."""
