"""Stage 2 of training: samples -> token ids, loss only on the answer.

:func:`encode_sample` (the ``modal`` objective): the structured chat rendered with the chat
template and its generation prompt, then the option code and the template's end-of-turn
(``"3<|im_end|>"`` for SmolLM2); labels are :data:`IGNORE_INDEX` on the prompt.
:func:`encode_distribution_sample` (the ``distribution`` objective): the prompt, the option-code
trie's branch, and every option code's tokens with its target share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from sgvalues.train.data import TrainError

__all__ = [
    "IGNORE_INDEX",
    "EncodedExample",
    "answer_completion",
    "encode_sample",
    "option_code_tokens",
    "encode_distribution_sample",
]

#: label value that cross-entropy ignores (the prompt and the padding)
IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedExample:
    """One tokenized sample: ``labels`` is ``IGNORE_INDEX`` on the prompt, ids on the answer.

    For the ``distribution`` objective (:func:`encode_distribution_sample`) the "answer" is the
    branch of the option-code trie (``"1"`` for codes 1-10 whose ``"10"`` is two tokens, else
    nothing) and ``soft`` holds every option code's token ids with its target share.
    ``weight`` multiplies the sample's loss (``training.reweight``).
    """

    sample_id: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    soft: tuple[tuple[tuple[int, ...], float], ...] = ()
    weight: float = 1.0

    @property
    def n_answer(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)

    def __len__(self) -> int:
        return len(self.input_ids)


def _rendering(tokenizer, rendering: str | None) -> str:
    from sgvalues.models.chat import rendering_for

    return rendering if rendering is not None else rendering_for(tokenizer, "auto")


def _prompt(tokenizer, messages: list[dict], rendering: str) -> str:
    from sgvalues.models.chat import render_chat

    if not getattr(tokenizer, "chat_template", None):
        raise TrainError("the model's tokenizer has no chat template; training writes the answer after the "
                         "template's generation prompt (use an instruct model, or add a chat_template)")
    return render_chat(tokenizer, messages, rendering)


def answer_completion(tokenizer, messages: list[dict], code: str, rendering: str | None = None) -> str:
    """The assistant completion as the chat template writes it: ``code`` + end-of-turn.

    It is the template's rendering of the conversation with the answer, minus its rendering
    with the generation prompt, with trailing whitespace dropped (the newline after
    ``<|im_end|>`` is not part of the answer). ``rendering`` (``system`` or ``folded``,
    :mod:`sgvalues.models.chat`; default: probed) decides where the system text goes, as in
    evaluation.
    """
    from sgvalues.models.chat import render_chat

    rendering = _rendering(tokenizer, rendering)
    prompt = _prompt(tokenizer, messages, rendering)
    full = render_chat(tokenizer, messages + [{"role": "assistant", "content": code}], rendering,
                       add_generation_prompt=False)
    if not full.startswith(prompt):
        raise TrainError(
            "the chat template renders the answered conversation with a different prefix than "
            "the generation prompt; cannot place the answer after the prompt"
        )
    completion = full[len(prompt):].rstrip()
    if not completion.startswith(code) or completion == code:
        raise TrainError(f"chat template completion {completion!r} does not start with the code "
                         f"{code!r} followed by an end-of-turn marker")
    return completion


def encode_sample(tokenizer, sample: dict, messages_fn: Callable | None = None,
                  rendering: str | None = None) -> EncodedExample:
    """Tokenize one sample: prompt (chat template + generation prompt) then code + end-of-turn.

    ``rendering``: ``system`` or ``folded`` (:func:`sgvalues.models.chat.rendering_for`; default
    probed from the template), the same rule evaluation renders prompts with.
    """
    if messages_fn is None:
        from sgvalues.prompts import structured_messages as messages_fn
    try:
        target = int(sample["target"])
    except (KeyError, TypeError, ValueError) as exc:
        raise TrainError(
            f"sample {sample.get('sample_id', '?')}: key 'target' = {sample.get('target')!r}: "
            "expected an integer option code"
        ) from exc
    messages = messages_fn(sample)
    code = str(target)
    rendering = _rendering(tokenizer, rendering)
    prompt = _prompt(tokenizer, messages, rendering)
    answer = answer_completion(tokenizer, messages, code, rendering)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return EncodedExample(
        sample_id=str(sample.get("sample_id", "")),
        input_ids=tuple(p_ids) + tuple(a_ids),
        labels=(IGNORE_INDEX,) * len(p_ids) + tuple(a_ids),
    )


def option_code_tokens(tokenizer, prompt_text: str, codes: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Token ids of each option code as it follows ``prompt_text`` (the rendered generation prompt).

    The evaluation engine's rule (``sgvalues.models.hf.HFModel._code_tokens``): tokenise the
    prompt's last 64 characters with and without the code and keep the difference; a code that
    merges with the prompt's last token is tokenised on its own.
    """
    tail = prompt_text[-64:]
    base = tokenizer(tail, add_special_tokens=False)["input_ids"]
    out = {}
    for c in codes:
        ids = tokenizer(tail + c, add_special_tokens=False)["input_ids"]
        if ids[: len(base)] == base and len(ids) > len(base):
            out[c] = tuple(ids[len(base):])
        else:
            out[c] = tuple(tokenizer(c, add_special_tokens=False)["input_ids"])
    return out


def _json_field(sample: dict, key: str) -> dict:
    from sgvalues.tables import json_cell

    try:
        value = json_cell(sample.get(key))
    except ValueError as exc:
        raise TrainError(f"sample {sample.get('sample_id', '?')}: key '{key}' is not valid JSON") from exc
    if not isinstance(value, dict) or not value:
        raise TrainError(f"sample {sample.get('sample_id', '?')}: key '{key}' = {value!r}: expected a "
                         "non-empty mapping code -> value")
    return value


def encode_distribution_sample(tokenizer, sample: dict, messages_fn: Callable | None = None,
                               rendering: str | None = None) -> EncodedExample:
    """Tokenize one sample for the ``distribution`` objective.

    ``input_ids`` = the prompt (chat template + generation prompt) followed by the option-code
    trie's branch (``sgvalues.models.scoring.code_branches``: empty when every code is one
    token; ``"1"`` when ``"10"`` is ``"1"`` + ``"0"``), so the logits at the last prompt token
    and along the branch give the next-token distribution at every internal node of the trie,
    all the greedy-longest-code rule reads. ``rendering`` as in :func:`encode_sample`. ``soft`` pairs each option code's tokens with its
    share in the sample's ``distribution`` (renormalised over the options; 0 for an option
    nobody chose).

    Raises
    ------
    TrainError
        when the sample's ``options`` or ``distribution`` are missing or malformed, when the
        distribution has no mass on any option, or when the codes' trie has more than one
        branch (codes such as 1-10 have one; the restriction keeps one forward per sample).
    """
    from sgvalues.models.scoring import code_branches

    if messages_fn is None:
        from sgvalues.prompts import structured_messages as messages_fn
    sid = sample.get("sample_id", "?")
    options = _json_field(sample, "options")
    shares = _json_field(sample, "distribution")
    codes = sorted((str(c) for c in options), key=lambda c: (float(c), c))
    try:
        q = {c: float(shares.get(c, 0.0)) for c in codes}
    except (TypeError, ValueError) as exc:
        raise TrainError(f"sample {sid}: key 'distribution' = {shares!r}: expected numeric shares") from exc
    total = sum(q.values())
    if not total > 0 or any(v < 0 for v in q.values()):
        raise TrainError(f"sample {sid}: key 'distribution' = {shares!r}: expected non-negative shares with "
                         f"mass on the options {codes}")
    messages = messages_fn(sample)
    prompt = _prompt(tokenizer, messages, _rendering(tokenizer, rendering))
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    code_toks = option_code_tokens(tokenizer, prompt, codes)
    branches = code_branches(code_toks)
    if len(branches) != 1:
        raise TrainError(f"sample {sid}: the option codes {codes} tokenise into {len(branches)} branches "
                         f"({branches}); the distribution objective reads one branch per sample")
    branch = tuple(branches[0])
    return EncodedExample(
        sample_id=str(sid), input_ids=tuple(p_ids) + branch,
        labels=(IGNORE_INDEX,) * len(p_ids) + branch,
        soft=tuple((code_toks[c], q[c] / total) for c in codes),
    )
