"""Chapter 09's sampler: when an answer may stop early, and the hf ``sample_texts`` on tiny local models.

``answer_decided`` and ``verbalised_cannot_parse`` are checked against the parsers they stand in
for (:func:`~sgvalues.models.base.classify_text`, :func:`~sgvalues.readouts.parse_verbalised`) on
every prefix of many answers followed by many continuations. The hf sampler is checked against
itself alone, in other batches and orders, and against transformers' own greedy ``generate``.
"""

from __future__ import annotations

import pytest

from sgvalues.models.base import answer_decided, classify_text
from sgvalues.readouts import parse_verbalised, verbalised_cannot_parse

CODE_SETS = [["1", "2", "3", "4"], [str(c) for c in range(1, 11)], ["1", "10"], ["2", "5", "7"]]
ANSWERS = ["3", "3. Very important", "10", "1", "10 - a great deal", "I would say 7.", "Option 2, because",
           "2.5, so 3", "-1 or 2", "11 then 1", "07 ", "+3 it is", "3,5", "3.\n4", "Answer: 4/5", "1\n2",
           "I cannot answer that.", "x1y", "１ (fullwidth)", "٣ ", "3.", "1e5", "5%", "(2)", "  4  ", "7..."]
#: continuations: digits, decimals, separators, other line breaks, refusals, non-ASCII digits
SUFFIXES = ["", "0", "5", "1", ".5", "0.5", ".", "..", ". 4", " ", "\n3", "%", "-2", ",5", "/10", "e5", "abc",
            "٣", "１", "\r", "\u2028", " I'm sorry, but I cannot answer.", "\n\n10"]


def _prefixes(text: str):
    return [text[:k] for k in range(len(text) + 1)]


@pytest.mark.parametrize("codes", CODE_SETS, ids=lambda c: f"{len(c)}codes")
def test_a_decided_answer_parses_to_its_code_whatever_follows(codes):
    decided = 0
    for answer in ANSWERS:
        for prefix in _prefixes(answer):
            if not answer_decided(prefix, codes):
                continue
            decided += 1
            status, code = classify_text(prefix, codes)
            assert status == "ok", (prefix, codes)
            for suffix in SUFFIXES:
                assert classify_text(prefix + suffix, codes) == ("ok", code), (prefix, suffix, codes)
    assert decided >= 10  # the property is not vacuous


@pytest.mark.parametrize("text, codes, decided", [
    ("3", ["3"], False),                 # "30", "3.5" may follow
    ("3.", ["3"], False),                # "3.5" may follow
    ("3. ", ["3"], True), ("3\n", ["3"], True), ("3,", ["3"], True), ("3)", ["3"], True),
    ("1", ["1", "10"], False), ("1 ", ["1", "10"], True), ("10", ["1", "10"], False), ("10.", ["1", "10"], False),
    ("11 ", ["1"], False),               # its first number is no code: never ok
    ("I think 4 ", ["4"], True), ("I think 4 ", ["1", "2"], False),
    ("", ["1"], False), (None, ["1"], False), ("no number yet ", ["1"], False),
])
def test_answer_decided_cases(text, codes, decided):
    assert answer_decided(text, codes) is decided


def test_every_complete_answer_is_decided_once_a_space_follows():
    # the sampler gains something: any answer that parses is decided one character after its code
    for codes in CODE_SETS:
        for answer in ANSWERS:
            status, _ = classify_text(answer, codes)
            if status == "ok" and not answer.rstrip().endswith("."):
                assert answer_decided(answer.rstrip() + " ", codes) or answer_decided(answer + " ", codes), answer


VERBALISED = ["1: 40%\n2: 60%", "1: 40%\n2: 60%\n", "1: 40\n2 = 60", "Option 1: 30%\n2) 70%.", "\n\n1: 50%\n2: 50%",
              "1. Very important\n2. Not important", "Sure! Here you go:\n1: 40%\n2: 60%", "1: 40%\nabout half\n",
              '{"1": 40,\n"2": 60}', "```\n1: 40%\n2: 60%\n```", "1: 40%\r2: 60%\n", "1: 40%\x0c2: 60%\n",
              "1: 40%\u20282: 60%\n", "1: 40%\x852: 60%\n", "1: 40%\r\n2: 60%\r\n", "  \n1: 100%\n", "1: 4O%\n",
              "1 - 20%\n2 - 80%\nThat is my guess."]
VERBAL_SUFFIXES = ["", "\n", "2: 60%", "\n2: 60%", "0%", "\r\n2: 60%", "\u20282: 60%", "\n```", "}", " ", "abc\n"]


@pytest.mark.parametrize("codes", [[1, 2], [1, 2, 3]], ids=["2codes", "3codes"])
def test_a_verbalised_answer_that_cannot_parse_never_parses(codes):
    stopped = 0
    for answer in VERBALISED:
        for prefix in _prefixes(answer):
            if not verbalised_cannot_parse(prefix, codes):
                continue
            stopped += 1
            for suffix in VERBAL_SUFFIXES:
                got = parse_verbalised(prefix + suffix, codes)
                assert got.status == "unparseable" and got.reason, (prefix, suffix)
    assert stopped >= 10


@pytest.mark.parametrize("text", ["1: 40%\r2: 60%\n", "1: 40%\x0c2: 60%\n", "1: 40%\u20282: 60%\n",
                                  "1: 40%\r\n2: 60%\r\n"])
def test_line_breaks_other_than_newline_end_a_line_for_both(text):
    # parse_verbalised splits lines with str.splitlines (\r, \x0c, \u2028, ...): so must the stop rule
    assert parse_verbalised(text, [1, 2]).status == "ok"
    assert verbalised_cannot_parse(text) is False
    assert verbalised_cannot_parse(text.replace("2: 60%", "about 60")) is True


def test_verbalised_cannot_parse_cases():
    assert verbalised_cannot_parse("1: 40%\n2") is False            # the open line may still become "2: 60%"
    assert verbalised_cannot_parse("1: 40%\nabout") is False
    assert verbalised_cannot_parse("1: 40%\nabout\n") is True
    assert verbalised_cannot_parse("Sure!\n") is True
    assert verbalised_cannot_parse("\n\n  \n") is False              # blank lines parse (as nothing)
    assert verbalised_cannot_parse('{"1": 40,\nnonsense\n') is False  # JSON: the parser reads it whole
    assert verbalised_cannot_parse("```\nnonsense\n") is False
