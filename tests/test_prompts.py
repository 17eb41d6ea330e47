"""Prompts: a grammatical persona for every subgroup of every stratum; the shared prefix comes first."""

import json
import re

import pytest

from sgvalues.prompts import (ANSWER_INSTRUCTION, OPEN_INSTRUCTION, SYSTEM_PROMPT, open_messages, open_prompt,
                              persona_sentence, structured_messages, structured_prompt)
from sgvalues.subgroups import STRATA, all_subgroups

Q1 = {"question_id": "Q1", "wording": "For each of the following, indicate how important it is in your life: Family.",
      "options": {1: "Very important", 2: "Rather important", 3: "Not very important", 4: "Not at all important"}}

SEX = {"Male": "man", "Female": "woman"}
AGE = {"16-24": "aged 16 to 24", "25-34": "aged 25 to 34", "35-44": "aged 35 to 44", "45-54": "aged 45 to 54",
       "55-64": "aged 55 to 64", "65+": "aged 65 or older"}
REL = {"None": "have no religion", "Roman Catholic": "Roman Catholic", "Protestant": "Protestant",
       "Muslim": "Muslim", "Hindu": "Hindu", "Buddhist": "Buddhist", "Other": "another religion"}


@pytest.mark.parametrize("levels, expected", [
    ({"ethnicity": "Malay", "sex": "Female"}, "You are a Malay woman living in Singapore."),
    ({"sex": "Male", "age_group": "25-34"}, "You are a man aged 25 to 34 living in Singapore."),
    ({"age_group": "25-34", "religion": "Buddhist"}, "You are a Buddhist aged 25 to 34 living in Singapore."),
    ({"ethnicity": "Chinese", "religion": "Protestant"}, "You are a Chinese Protestant living in Singapore."),
    ({"ethnicity": "Indian", "religion": "Hindu"}, "You are an Indian Hindu living in Singapore."),
    ({"sex": "Female", "religion": "Roman Catholic"}, "You are a Roman Catholic woman living in Singapore."),
    ({"religion": "None"}, "You live in Singapore and have no religion."),
    ({"religion": "Other"}, "You live in Singapore and follow another religion, such as Taoism."),
    ({"ethnicity": "Chinese", "religion": "None"}, "You are a Chinese person living in Singapore. You have no religion."),
    ({"age_group": "65+"}, "You are a person aged 65 or older living in Singapore."),
    ({"ethnicity": "Indian"}, "You are an Indian person living in Singapore."),
    ({"religion": "Muslim"}, "You are a Muslim living in Singapore."),
])
def test_examples(levels, expected):
    assert persona_sentence(levels) == expected


def test_every_subgroup_of_every_stratum_reads_well():
    sentences = {}
    for row in all_subgroups().itertuples():
        levels = json.loads(row.levels)
        s = persona_sentence(levels)
        sentences[row.subgroup] = s
        # shape: one or two sentences, each "You ..." and ending with a full stop
        parts = re.split(r"(?<=\.) ", s)
        assert 1 <= len(parts) <= 2 and all(re.fullmatch(r"You [^.]+\.", p) for p in parts), s
        assert "  " not in s and "Singapore" in s and s.count("Singapore") == 1
        # articles agree with the next word; no stray "a person" next to another noun
        for art, word in re.findall(r"\b(a|an) (\w+)", s):
            assert art == ("an" if word[0].lower() in "aeiou" else "a"), s
        assert not re.search(r"\b(man|woman|person) (man|woman|person)\b", s), s
        # every level is said, in words
        if "sex" in levels:
            assert re.search(rf"\b{SEX[levels['sex']]}\b", s), s
        if "age_group" in levels:
            assert AGE[levels["age_group"]] in s, s
        if "ethnicity" in levels:
            assert levels["ethnicity"] in s, s
        if "religion" in levels:
            assert REL[levels["religion"]] in s, s
            if levels["religion"] not in ("None", "Other"):
                # a denomination is an attribute of the person: "a Chinese Buddhist", "a Hindu woman"
                assert re.search(rf"\ban? [\w ]*{REL[levels['religion']]}\b", s), s
    # every subgroup gets its own persona
    assert len(set(sentences.values())) == len(sentences) == sum(s.n_levels for s in STRATA)


def test_unknown_levels_are_refused():
    with pytest.raises(ValueError, match="axis 'religion' has no level 'Taoist'"):
        persona_sentence({"religion": "Taoist"})
    with pytest.raises(ValueError, match="unknown axis 'income'"):
        persona_sentence({"income": "high"})


def test_structured_prompt_shares_the_prefix_and_ends_with_the_persona():
    a = structured_prompt(Q1, {"sex": "Female", "ethnicity": "Malay"})
    b = structured_prompt(Q1, {"age_group": "65+", "religion": "None"})
    assert a["system"] == b["system"] == SYSTEM_PROMPT
    assert a["user_shared"] == b["user_shared"]
    assert a["user_persona"] != b["user_persona"]
    assert a["user_persona"] == "You are a Malay woman living in Singapore."
    # the instruction is shared by every persona, so it sits in the shared prefix
    assert a["user_shared"].endswith(f"{ANSWER_INSTRUCTION}\n\n")
    lines = a["user_shared"].splitlines()
    assert lines[0] == Q1["wording"]
    assert lines[3:7] == ["1. Very important", "2. Rather important", "3. Not very important", "4. Not at all important"]
    msgs = structured_messages(a)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[1]["content"].startswith(a["user_shared"]) and msgs[1]["content"].endswith(a["user_persona"])
    assert "Malay" not in a["user_shared"] and "Malay" not in a["system"]


def test_options_print_in_numeric_order_and_bare_codes_once():
    q = {"wording": "Scale?", "options": json.dumps({"10": "A great deal", "1": "None at all", "2": "2"})}
    lines = structured_prompt(q, {"sex": "Male"})["user_shared"].splitlines()
    # options, a blank line, the shared answer instruction, a blank line before the persona
    assert lines[3:] == ["1. None at all", "2.", "10. A great deal", "", ANSWER_INSTRUCTION, ""]


def test_open_prompt_has_no_options():
    text = open_prompt(Q1, {"sex": "Male"})
    assert text.startswith("You are a man living in Singapore.")
    assert Q1["wording"] in text and text.endswith(OPEN_INSTRUCTION)
    assert "Very important" not in text and "1." not in text
    msgs = open_messages({"open_user": text})
    assert [m["role"] for m in msgs] == ["system", "user"] and msgs[1]["content"] == text
