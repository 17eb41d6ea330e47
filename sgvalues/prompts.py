"""Persona sentences, structured (multiple-choice) prompts and open-ended prompts.

A **persona sentence** describes a subgroup in plain English, e.g. "You are a Malay woman living
in Singapore." It is built from the subgroup's levels (any subset of the four axes), so every
single-axis and pair subgroup reads naturally. Its words (the place, the nouns for each sex, the
religion words and clauses) come from the country profile (:mod:`sgvalues.countries`;
``profile=``, default Singapore's).

A **structured prompt** is three chat parts:

- ``system``: the generic survey instruction, identical for every sample;
- ``user_shared``: the question wording, its numbered options and the answer instruction
  ("Answer as the person described below would, ..."), identical for every subgroup of a
  question;
- ``user_persona``: the persona sentence alone.

The chat is ``[system, user = user_shared + user_persona]``. The persona-specific part comes
**last** on purpose: every subgroup of a question shares the token prefix ``system +
user_shared``, so a model engine computes that prefix once and reuses its KV cache for each
persona suffix (about 100 subgroups per question). The answer instruction sits in the shared
part too, so the per-persona suffix is as short as it can be (about 20 tokens): that suffix is
all the engine computes per sample. The assistant's answer is the bare option
code ("3", "10").

**Templates without a system role** (Gemma's, several Mistral ones) get the same text with the
system message folded into the first user turn (:func:`fold_system`: system text, a blank line,
then the user text). The order is unchanged -- system, shared question, persona last -- so the
shared prefix stays shared. Which rendering a model gets is decided once per tokenizer by
``sgvalues.models.chat`` (``model.system_role``).

An **open-ended prompt** (``open_user``) is the persona sentence and the question without
options, asking for two or three sentences (for the judged open-ended evaluation).

Example
-------
>>> persona_sentence({"ethnicity": "Malay", "sex": "Female"})
'You are a Malay woman living in Singapore.'
>>> persona_sentence({"ethnicity": "Chinese", "religion": "Christian"}, profile=458)
'You are a Chinese Christian living in Malaysia.'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache

from sgvalues.countries import CountryProfile, resolve_profile

__all__ = [
    "SYSTEM_PROMPT",
    "OPEN_SYSTEM_PROMPT",
    "ANSWER_INSTRUCTION",
    "OPEN_INSTRUCTION",
    "persona_sentence",
    "format_options",
    "user_persona",
    "structured_prompt",
    "open_prompt",
    "structured_messages",
    "open_messages",
    "fold_system",
    "QA_QUESTIONS",
    "persona_qa",
    "persona_bio",
    "persona_fewshot",
    "persona_text",
    "in_persona_format",
    "VERBALISED_SYSTEM_PROMPT",
    "VERBALISED_INSTRUCTION",
    "verbalised_sample",
]

#: the one system message of every structured prompt
SYSTEM_PROMPT = (
    "You are taking part in the World Values Survey. You will be told who you are and asked one "
    "question with numbered answer options. Reply with the number of the option that person would "
    "choose, and nothing else."
)
#: the system message of every open-ended prompt
OPEN_SYSTEM_PROMPT = (
    "You are taking part in an interview for the World Values Survey. You will be told who you are "
    "and asked one question. Answer in your own words, in the first person, as that person would."
)
ANSWER_INSTRUCTION = "Answer as the person described below would, with the number of one option only."
OPEN_INSTRUCTION = "Answer in two or three sentences."
#: the system message of the verbalised readout: the model states a distribution, not an answer
VERBALISED_SYSTEM_PROMPT = (
    "You are taking part in the World Values Survey. You will be told about a person and asked one "
    "question with numbered answer options. Reply with the percentage of people like that person who "
    "would choose each option, and nothing else."
)
VERBALISED_INSTRUCTION = ("Think of people like the person described below. Give the percentage of them who would "
                          "choose each option, one line per option written as code: percent (for example 1: 40%), "
                          "the percentages summing to 100.")
#: the questions of the QA persona format (OpinionQA's QA steering), one per axis
QA_QUESTIONS = {"sex": "What is your sex?", "age_group": "How old are you?", "ethnicity": "What is your ethnic group?",
                "religion": "What is your religion, if any?"}



def _age_phrase(level: str) -> str:
    if level.endswith("+"):
        return f"aged {level[:-1]} or older"
    lo, hi = level.split("-")
    return f"aged {lo} to {hi}"


def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def _check_levels(levels: Mapping[str, str], profile: CountryProfile) -> None:
    axes = profile.axis_levels
    for axis, level in levels.items():
        if axis not in axes:
            raise ValueError(f"persona: unknown axis {axis!r}; expected one of {list(axes)}")
        if level not in axes[axis]:
            raise ValueError(f"persona: axis {axis!r} has no level {level!r}; expected one of {axes[axis]} "
                             f"({profile.name} profile)")


def persona_sentence(levels: Mapping[str, str], profile: CountryProfile | int | str | None = None) -> str:
    """One or two English sentences describing a person with these axis levels.

    Parameters
    ----------
    levels : mapping
        axis -> level, any subset of ``sex``, ``age_group``, ``ethnicity``, ``religion``
        (e.g. the ``levels`` of a subgroup).
    profile : CountryProfile, int or str, optional
        Country profile whose levels and words to use (default Singapore's).

    Returns
    -------
    str
        "You are <noun phrase> living in <place>." where the noun phrase is
        ``[article] [ethnicity] [religion] (man|woman|<religion>|person) [aged ...]``;
        ``religion`` ``None`` / ``Other`` become a clause ("... and have no religion" /
        "You have no religion.") since they are not denominations.

    Examples
    --------
    >>> persona_sentence({"sex": "Male", "age_group": "25-34"})
    'You are a man aged 25 to 34 living in Singapore.'
    >>> persona_sentence({"ethnicity": "Indian", "religion": "Protestant"})
    'You are an Indian Protestant living in Singapore.'
    >>> persona_sentence({"sex": "Female", "religion": "None"})
    'You are a woman living in Singapore. You have no religion.'
    >>> persona_sentence({"age_group": "65+"})
    'You are a person aged 65 or older living in Singapore.'
    >>> persona_sentence({"religion": "Buddhist", "age_group": "25-34"}), persona_sentence({"religion": "None"})
    ('You are a Buddhist aged 25 to 34 living in Singapore.', 'You live in Singapore and have no religion.')
    """
    return _persona(tuple(sorted(levels.items())), resolve_profile(profile))


@lru_cache(maxsize=4096)
def _persona(items: tuple[tuple[str, str], ...], profile: CountryProfile) -> str:
    # cached: prepare builds ~25,000 prompts from ~100 personas
    levels = dict(items)
    _check_levels(levels, profile)
    words_of = profile.persona
    place = words_of.place
    sex, age = levels.get("sex"), levels.get("age_group")
    eth, rel = levels.get("ethnicity"), levels.get("religion")
    clause = words_of.religion_clause.get(rel) if rel else None
    words = []
    if eth:
        words.append(words_of.ethnicity_word.get(eth, eth))
    rel_word = words_of.religion_word.get(rel) if rel else None
    if sex:
        if rel_word:
            words.append(rel_word)
        words.append(words_of.sex_noun[sex])
    elif rel_word:
        words.append(rel_word)          # "a Chinese Buddhist", "a Buddhist aged 25 to 34"
    elif eth or age or not clause:
        words.append("person")
    if words:
        phrase = f"{_article(words[0])} {' '.join(words)}"
        if age:
            phrase += f" {_age_phrase(age)}"
        text = f"You are {phrase} living in {place}."
        if clause:
            text += f" You {clause}."
        return text
    return f"You live in {place} and {clause}."


def _options_dict(options) -> dict[str, str]:
    if isinstance(options, str):
        options = json.loads(options)
    return {str(k): str(v) for k, v in sorted(options.items(), key=lambda kv: int(kv[0]))}


def format_options(options) -> str:
    """Numbered option lines "1. Very important"; a bare label equal to its code prints once.

    >>> print(format_options({"1": "None at all", "2": "2", "3": "A great deal"}))
    1. None at all
    2.
    3. A great deal
    """
    lines = []
    for code, label in _options_dict(options).items():
        lines.append(f"{code}." if label.strip() in ("", code) else f"{code}. {label}")
    return "\n".join(lines)


def _field(row, name: str):
    try:
        return row[name]
    except (KeyError, IndexError, TypeError):
        return getattr(row, name)


def user_persona(levels: Mapping[str, str], profile: CountryProfile | int | str | None = None) -> str:
    """The persona-specific end of the user turn: the persona sentence (the instruction is shared).

    >>> user_persona({"sex": "Male"})
    'You are a man living in Singapore.'
    """
    return persona_sentence(levels, profile)


def structured_prompt(question_row, levels: Mapping[str, str],
                      profile: CountryProfile | int | str | None = None) -> dict[str, str]:
    """The three chat parts of the structured prompt for one question and one persona.

    Parameters
    ----------
    question_row : mapping or row
        A catalogue row with ``wording`` and ``options`` (JSON or mapping code -> label).
    levels : mapping
        The persona's axis -> level.
    profile : CountryProfile, int or str, optional
        Country profile of the persona's words (default Singapore's).

    Returns
    -------
    dict
        ``system``, ``user_shared`` (wording, a blank line, "Options:", the numbered options, a
        blank line, the answer instruction, a blank line) and ``user_persona`` (the persona
        sentence). The user turn
        is ``user_shared + user_persona``; only ``user_persona`` depends on the persona, and it
        comes last so the shared prefix's KV cache can be reused across personas.

    Examples
    --------
    >>> q = {"wording": "How important is family in your life?",
    ...      "options": '{"1": "Very important", "2": "Not important"}'}
    >>> p = structured_prompt(q, {"sex": "Female"})
    >>> print(p["user_shared"] + p["user_persona"])
    How important is family in your life?
    <BLANKLINE>
    Options:
    1. Very important
    2. Not important
    <BLANKLINE>
    Answer as the person described below would, with the number of one option only.
    <BLANKLINE>
    You are a woman living in Singapore.
    """
    wording = str(_field(question_row, "wording")).strip()
    shared = f"{wording}\n\nOptions:\n{format_options(_field(question_row, 'options'))}\n\n{ANSWER_INSTRUCTION}\n\n"
    return {"system": SYSTEM_PROMPT, "user_shared": shared, "user_persona": user_persona(levels, profile)}


def open_prompt(question_row, levels: Mapping[str, str], profile: CountryProfile | int | str | None = None) -> str:
    """The open-ended user turn: persona sentence, the question (no options), the length ask.

    >>> open_prompt({"wording": "How important is family in your life?"}, {"ethnicity": "Chinese"})
    'You are a Chinese person living in Singapore.\\n\\nHow important is family in your life?\\n\\nAnswer in two or three sentences.'
    """
    wording = str(_field(question_row, "wording")).strip()
    return f"{persona_sentence(levels, profile)}\n\n{wording}\n\n{OPEN_INSTRUCTION}"


def structured_messages(sample: Mapping) -> list[dict[str, str]]:
    """Chat messages of a sample's structured prompt: ``[system, user_shared + user_persona]``.

    >>> structured_messages({"system": "S", "user_shared": "Q\\n\\n", "user_persona": "P"})
    [{'role': 'system', 'content': 'S'}, {'role': 'user', 'content': 'Q\\n\\nP'}]
    """
    return [{"role": "system", "content": sample["system"]},
            {"role": "user", "content": sample["user_shared"] + sample["user_persona"]}]


def open_messages(sample: Mapping) -> list[dict[str, str]]:
    """Chat messages of a sample's open-ended prompt: ``[OPEN_SYSTEM_PROMPT, open_user]``."""
    return [{"role": "system", "content": OPEN_SYSTEM_PROMPT},
            {"role": "user", "content": sample["open_user"]}]


def fold_system(messages) -> list[dict[str, str]]:
    """The chat without a system message: its text folded into the first user turn.

    For chat templates that reject (or silently drop) the system role. Every system message
    is removed; their texts, joined by a blank line, start the first user turn, followed by a
    blank line and that turn's own text. Everything shared across personas stays before the
    persona, so prompts of one question still share their token prefix.

    .. math:: \\text{user}_1' = s \\mathbin{\\Vert} \\texttt{"\\n\\n"} \\mathbin{\\Vert} \\text{user}_1

    Parameters
    ----------
    messages : sequence of dict
        Chat messages with ``role`` and ``content``.

    Returns
    -------
    list of dict
        The same messages without system ones (copies; the input is not changed). A chat with
        no system message comes back unchanged; one with no user turn gets the system text as
        its first user turn.

    Examples
    --------
    >>> fold_system([{"role": "system", "content": "S"}, {"role": "user", "content": "Q\\n\\nP"}])
    [{'role': 'user', 'content': 'S\\n\\nQ\\n\\nP'}]
    >>> fold_system([{"role": "user", "content": "U"}])
    [{'role': 'user', 'content': 'U'}]
    """
    msgs = [dict(m) for m in messages]
    system = [m["content"] for m in msgs if m.get("role") == "system"]
    rest = [m for m in msgs if m.get("role") != "system"]
    if not system:
        return rest
    text = "\n\n".join(system)
    for m in rest:
        if m.get("role") == "user":
            m["content"] = f"{text}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": text}] + rest


# --- persona formats (chapter 09, ``evaluation.persona_formats``) -------------------------------------
# Every format fills the same slot, the end of the user turn after the shared question, so the
# formats differ only in how the persona is told and every subgroup still shares the prefix.

def _age_answer(level: str) -> str:
    return _age_phrase(level).removeprefix("aged ") + " years old" if not level.endswith("+") \
        else f"{level[:-1]} years or older"


def persona_qa(levels: Mapping[str, str], profile: CountryProfile | int | str | None = None) -> str:
    """The persona as question-answer pairs about oneself (OpinionQA's QA format).

    One pair for the country, then one per axis the subgroup fixes, in the axes' order
    (:data:`sgvalues.countries.AXIS_NAMES`); the answers use the persona sentence's words.

    Examples
    --------
    >>> print(persona_qa({"religion": "None", "sex": "Female", "age_group": "65+"}))
    The person answered these questions about themselves:
    Q: In which country do you live?
    A: Singapore
    Q: What is your sex?
    A: Woman
    Q: How old are you?
    A: 65 years or older
    Q: What is your religion, if any?
    A: I have no religion
    """
    from sgvalues.countries import AXIS_NAMES

    profile = resolve_profile(profile)
    _check_levels(levels, profile)
    words = profile.persona
    lines = ["The person answered these questions about themselves:", "Q: In which country do you live?",
             f"A: {words.place}"]
    for axis in AXIS_NAMES:
        level = levels.get(axis)
        if level is None:
            continue
        if axis == "sex":
            answer = words.sex_noun[level].capitalize()
        elif axis == "age_group":
            answer = _age_answer(level)
        elif axis == "ethnicity":
            answer = words.ethnicity_word.get(level, level)
        else:
            answer = words.religion_word.get(level) or f"I {words.religion_clause.get(level, level)}"
        lines += [f"Q: {QA_QUESTIONS[axis]}", f"A: {answer}"]
    return "\n".join(lines)


def persona_bio(levels: Mapping[str, str], profile: CountryProfile | int | str | None = None) -> str:
    """The persona as a first-person biography (OpinionQA's BIO format): the sentence, told by the person.

    Examples
    --------
    >>> persona_bio({"ethnicity": "Malay", "sex": "Female"})
    'The person describes themselves: "I am a Malay woman living in Singapore."'
    >>> persona_bio({"religion": "None"})
    'The person describes themselves: "I live in Singapore and have no religion."'
    """
    import re

    text = re.sub(r"\bYou\b", "I", re.sub(r"\bYou are\b", "I am", persona_sentence(levels, profile)))
    return f'The person describes themselves: "{text}"'


def persona_fewshot(levels: Mapping[str, str], examples, profile: CountryProfile | int | str | None = None) -> str:
    """The persona sentence, then the subgroup's most common answers to similar questions (few-shot steering).

    Parameters
    ----------
    levels : mapping
        The persona's axis -> level.
    examples : sequence of (wording, code, label)
        The subgroup's modal answers to its nearest questions (:func:`sgvalues.steering.few_shot_examples`),
        most similar first. None: the sentence alone.

    Examples
    --------
    >>> print(persona_fewshot({"sex": "Male"}, [("How important is work?", 1, "Very important")]))
    You are a man living in Singapore.
    On similar questions, people like you most often answered:
    - How important is work? 1. Very important
    """
    lines = [persona_sentence(levels, profile)]
    if examples:
        lines.append("On similar questions, people like you most often answered:")
        for wording, code, label in examples:
            label = str(label).strip()
            lines.append(f"- {str(wording).strip()} {code}." + (f" {label}" if label and label != str(code) else ""))
    return "\n".join(lines)


def persona_text(levels: Mapping[str, str], fmt: str = "sentence", examples=None,
                 profile: CountryProfile | int | str | None = None) -> str:
    """The persona in one of :data:`sgvalues.constants.PERSONA_FORMATS`.

    >>> persona_text({"sex": "Male"}, "bio")
    'The person describes themselves: "I am a man living in Singapore."'
    """
    if fmt == "sentence":
        return persona_sentence(levels, profile)
    if fmt == "qa":
        return persona_qa(levels, profile)
    if fmt == "bio":
        return persona_bio(levels, profile)
    if fmt == "fewshot":
        return persona_fewshot(levels, examples, profile)
    from sgvalues.constants import PERSONA_FORMATS

    raise ValueError(f"persona format {fmt!r}: expected one of {', '.join(PERSONA_FORMATS)}")


def _levels_of(sample: Mapping) -> dict:
    levels = sample.get("levels", {})
    return json.loads(levels) if isinstance(levels, str) else dict(levels)


def in_persona_format(sample: Mapping, fmt: str, examples=None,
                      profile: CountryProfile | int | str | None = None) -> dict:
    """A copy of a structured sample whose ``user_persona`` tells the persona in format ``fmt``.

    >>> s = {"levels": {"sex": "Female"}, "user_persona": "You are a woman living in Singapore."}
    >>> in_persona_format(s, "qa")["user_persona"].splitlines()[-1]
    'A: Woman'
    """
    return {**sample, "user_persona": persona_text(_levels_of(sample), fmt, examples, profile)}


def verbalised_sample(sample: Mapping) -> dict:
    """A copy of a structured sample that asks for a percentage per option instead of one option.

    The question and options stay as asked; the system message and the answer instruction
    change (:data:`VERBALISED_SYSTEM_PROMPT`, :data:`VERBALISED_INSTRUCTION`), the persona stays last.

    >>> s = verbalised_sample({"wording": "Q?", "options": {"1": "Yes", "2": "No"}, "user_persona": "P"})
    >>> print(s["user_shared"] + s["user_persona"])
    Q?
    <BLANKLINE>
    Options:
    1. Yes
    2. No
    <BLANKLINE>
    Think of people like the person described below. Give the percentage of them who would choose each option, one line per option written as code: percent (for example 1: 40%), the percentages summing to 100.
    <BLANKLINE>
    P
    """
    shared = (f"{str(sample['wording']).strip()}\n\nOptions:\n{format_options(sample['options'])}\n\n"
              f"{VERBALISED_INSTRUCTION}\n\n")
    return {**sample, "system": VERBALISED_SYSTEM_PROMPT, "user_shared": shared}
