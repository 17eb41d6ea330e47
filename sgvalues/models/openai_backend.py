"""OpenAI-compatible chat-completions backend (the OpenAI API, ``transformers serve``, vLLM...).

Requests run on a thread pool of ``spec.max_concurrency`` workers through one ``openai``
client. Each request is retried on HTTP 408/409/429, 5xx, timeouts, connection errors and
malformed responses, waiting

.. math:: w_a = \\min(b_{\\max},\\; b_0 2^{a}) \\cdot u, \\qquad u \\sim U[0.5, 1]

before retry ``a = 0, 1, …`` (at least the server's ``Retry-After``, capped at ``b_max``);
after ``spec.max_retries`` retries it is recorded as failed (``Answer.error``) and the run goes
on. Other client errors (400, 401, 404) fail at once.

The API key comes only from ``os.environ[spec.api_key_env]``; a loopback ``base_url`` without
a key gets the placeholder ``"not-needed"``. The key is never logged, cached or written: error
texts are scrubbed of it and cache keys use :attr:`OpenAIModel.model_id` (name + server only).

Option probabilities: with ``top_logprobs > 0`` the first generated token's alternatives are
read; the probability of code ``c`` is the summed probability of alternatives whose text,
stripped, is ``c``, renormalised over the codes. Servers without logprobs (or answers whose
alternatives contain no code) fall back to parsing the text.

Example
-------
>>> probs_from_top_logprobs([("3", -0.1), (" 3", -3.0), ("4", -2.5), ("I", -4.0)], ["3", "4", "5"])["3"] > 0.9
True
>>> backoff_delay(3, base=1.0, cap=5.0, u=1.0)
5.0
"""

from __future__ import annotations

import ipaddress
import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence
from urllib.parse import urlparse

from sgvalues.models.base import Answer, GenerateRequest, Model, ScoreRequest
from sgvalues.models.chat import fit_messages

__all__ = ["OpenAIModel", "backoff_delay", "probs_from_top_logprobs", "resolve_api_key", "MalformedResponse"]

PLACEHOLDER_KEY = "not-needed"


class MalformedResponse(RuntimeError):
    """The server answered 2xx but not with a usable chat completion."""


def backoff_delay(attempt: int, base: float, cap: float, u: float | None = None,
                  retry_after: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): capped exponential with jitter.

    >>> [backoff_delay(a, 0.5, 4.0, u=1.0) for a in range(5)]
    [0.5, 1.0, 2.0, 4.0, 4.0]
    """
    u = random.uniform(0.5, 1.0) if u is None else u
    wait = min(cap, base * (2 ** attempt)) * u
    if retry_after is not None and retry_after > 0:
        wait = max(wait, min(retry_after, cap))
    return wait


def probs_from_top_logprobs(top: Sequence[tuple[str, float]], option_codes: Sequence[str]) -> dict[str, float] | None:
    """Option probabilities from ``(token_text, logprob)`` alternatives; ``None`` if no code is among them."""
    mass = {c: 0.0 for c in option_codes}
    for tok, lp in top:
        t = (tok or "").strip()
        if t in mass and lp is not None and math.isfinite(lp):
            mass[t] += math.exp(lp)
    total = sum(mass.values())
    if total <= 0:
        return None
    return {c: v / total for c, v in mass.items()}


def _is_loopback(base_url: str | None) -> bool:
    if not base_url:
        return False
    host = urlparse(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(spec) -> str:
    """The key from ``os.environ[spec.api_key_env]``; placeholder for a loopback server without one."""
    key = os.environ.get(spec.api_key_env, "")
    if key:
        return key
    if _is_loopback(spec.base_url):
        return PLACEHOLDER_KEY
    raise ValueError(
        f"model '{spec.name}': environment variable {spec.api_key_env} is not set; the openai "
        f"backend reads its API key from the environment only (base_url={spec.base_url or 'OpenAI API'})"
    )


class OpenAIModel(Model):
    """Chat completions over HTTP with retries, bounded concurrency and optional logprobs."""

    backend = "openai"
    exact_logprobs = False

    def __init__(self, spec, sleep=time.sleep):
        import openai

        self.spec = spec
        self._key = resolve_api_key(spec)
        # retries are ours (counted, jittered, bounded), so the client must not retry as well
        self.client = openai.OpenAI(api_key=self._key, base_url=spec.base_url,
                                    timeout=spec.timeout_s, max_retries=0)
        self.model_id = f"openai:{spec.name}@{spec.base_url or 'https://api.openai.com/v1'}"
        self.adapter_id = ""
        self._sleep = sleep
        self._lock = threading.Lock()
        self.calls = 0
        self.retries = 0
        self._logprobs_ok = spec.top_logprobs > 0
        # the server applies its own chat template; ``system_role: fold`` folds the system text
        # into the first user turn before sending (for served models whose template rejects it)
        self.rendering = "folded" if getattr(spec, "system_role", "auto") == "fold" else "server"

    def decoding_key(self) -> dict:
        key = {"top_logprobs": self.spec.top_logprobs}
        if self.rendering == "folded":
            key["rendering"] = "folded"
        return key

    # -------------------------------------------------------------- one request
    def _scrub(self, text: str) -> str:
        if self._key and self._key != PLACEHOLDER_KEY:
            text = text.replace(self._key, "***")
        return text[:300]

    def _create(self, messages, max_tokens: int, temperature: float, logprobs: bool):
        kwargs = dict(model=self.spec.name, messages=fit_messages(messages, self.rendering),
                      max_tokens=max_tokens, temperature=temperature)
        if logprobs:
            kwargs.update(logprobs=True, top_logprobs=self.spec.top_logprobs)
        with self._lock:
            self.calls += 1
        resp = self.client.chat.completions.create(**kwargs)
        choices = getattr(resp, "choices", None)
        if not choices or not hasattr(choices[0], "message") or choices[0].message is None:
            raise MalformedResponse(f"no choices in response ({type(resp).__name__})")
        content = choices[0].message.content
        if content is not None and not isinstance(content, str):
            raise MalformedResponse("message.content is not a string")
        top = None
        lp = getattr(choices[0], "logprobs", None)
        if lp is not None and getattr(lp, "content", None):
            first = lp.content[0]
            top = [(t.token, t.logprob) for t in (first.top_logprobs or [])] or [(first.token, first.logprob)]
        return content or "", top

    def _request(self, messages, max_tokens: int, temperature: float, logprobs: bool):
        """``(text, top_logprobs, error)`` after retries; never raises for server trouble."""
        import openai

        attempt = 0
        while True:
            retry_after = None
            try:
                return (*self._create(messages, max_tokens, temperature, logprobs and self._logprobs_ok), None)
            except openai.APIStatusError as exc:
                code = exc.status_code
                if code == 400 and logprobs and self._logprobs_ok and "logprob" in str(exc).lower():
                    self._logprobs_ok = False  # this server has no logprobs: generate and parse
                    continue
                error = f"HTTP {code}: {self._scrub(str(getattr(exc, 'message', exc)))}"
                if not (code in (408, 409, 429) or code >= 500):
                    return "", None, error
                try:
                    retry_after = float(exc.response.headers.get("retry-after", ""))
                except (TypeError, ValueError, AttributeError):
                    retry_after = None
            except openai.APITimeoutError:
                error = f"timeout after {self.spec.timeout_s}s"
            except openai.APIConnectionError as exc:
                error = f"connection error: {self._scrub(str(exc))}"
            except (MalformedResponse, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
                # a 2xx body that is not a chat completion (garbage, truncated JSON)
                error = f"malformed response: {type(exc).__name__}: {self._scrub(str(exc))}"
            if attempt >= self.spec.max_retries:
                return "", None, f"{error} (gave up after {attempt + 1} attempts)"
            with self._lock:
                self.retries += 1
            self._sleep(backoff_delay(attempt, self.spec.backoff_base_s, self.spec.backoff_max_s,
                                      retry_after=retry_after))
            attempt += 1

    def _map(self, fn, items):
        items = list(items)
        if not items:
            return []
        workers = min(self.spec.max_concurrency, len(items))
        if workers == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sgvalues-openai") as pool:
            return list(pool.map(fn, items))

    # -------------------------------------------------------------- interface
    def _score_one(self, r: ScoreRequest) -> Answer:
        text, top, error = self._request(r.messages, r.max_new_tokens, 0.0, logprobs=True)
        if error is not None:
            return Answer(error=error)
        probs = probs_from_top_logprobs(top, r.option_codes) if top else None
        info = {}
        if probs is not None:
            info["option_mass"] = round(sum(math.exp(lp) for t, lp in top
                                            if (t or "").strip() in r.option_codes), 6)
        return Answer(probs=probs, text=text, info=info)

    def score_answers(self, requests: Sequence[ScoreRequest]) -> list[Answer]:
        return self._map(self._score_one, requests)

    def score_options(self, requests: Sequence[ScoreRequest]) -> list[dict[str, float]]:
        return [a.probs or {} for a in self.score_answers(requests)]

    def _generate_one(self, r: GenerateRequest) -> Answer:
        text, _, error = self._request(r.messages, r.max_new_tokens, r.temperature, logprobs=False)
        return Answer(error=error) if error is not None else Answer(text=text)

    def generate_answers(self, requests: Sequence[GenerateRequest]) -> list[Answer]:
        return self._map(self._generate_one, requests)

    def answer(self, requests, mode="logprob", temperature=0.0):
        if mode == "logprob":
            # one request gives the text and, where offered, the first token's alternatives
            return self.score_answers(requests)
        return super().answer(requests, mode, temperature)

    def close(self) -> None:
        self.client.close()
