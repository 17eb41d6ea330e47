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


# --- chapter 09's persona formats and the verbalised prompt ------------------------------------------

from sgvalues.countries import AXIS_NAMES, load_profile  # noqa: E402
from sgvalues.prompts import (QA_QUESTIONS, VERBALISED_INSTRUCTION, VERBALISED_SYSTEM_PROMPT,  # noqa: E402
                              in_persona_format, persona_bio, persona_fewshot, persona_qa, persona_text,
                              verbalised_sample)

QA_HEAD = ["The person answered these questions about themselves:", "Q: In which country do you live?"]


@pytest.mark.parametrize("levels, profile, answers", [
    ({"sex": "Female"}, None, ["Singapore", "Woman"]),
    ({"religion": "None", "sex": "Male", "age_group": "16-24"}, None,
     ["Singapore", "Man", "16 to 24 years old", "I have no religion"]),
    ({"ethnicity": "Indian", "religion": "Other", "age_group": "65+"}, None,
     ["Singapore", "65 years or older", "Indian", "I follow another religion, such as Taoism"]),
    ({"religion": "Roman Catholic", "ethnicity": "Chinese"}, 702, ["Singapore", "Chinese", "Roman Catholic"]),
    ({"ethnicity": "Malay", "religion": "Christian"}, 458, ["Malaysia", "Malay", "Christian"]),
    ({"age_group": "45-54", "religion": "Other"}, "malaysia",
     ["Malaysia", "45 to 54 years old", "I follow another religion, such as Taoism or Chinese folk religion"]),
])
def test_persona_qa_by_hand(levels, profile, answers):
    axes = [a for a in AXIS_NAMES if a in levels]  # the axes' own order, whatever the dict's
    want = QA_HEAD + [f"A: {answers[0]}"]
    for axis, answer in zip(axes, answers[1:]):
        want += [f"Q: {QA_QUESTIONS[axis]}", f"A: {answer}"]
    assert persona_qa(levels, profile).splitlines() == want
    assert persona_text(levels, "qa", profile=profile) == persona_qa(levels, profile)


@pytest.mark.parametrize("levels, profile, sentence", [
    ({"ethnicity": "Malay", "sex": "Female"}, None, "I am a Malay woman living in Singapore."),
    ({"ethnicity": "Chinese", "religion": "None"}, None,
     "I am a Chinese person living in Singapore. I have no religion."),
    ({"religion": "Other"}, None, "I live in Singapore and follow another religion, such as Taoism."),
    ({"age_group": "65+", "sex": "Male"}, None, "I am a man aged 65 or older living in Singapore."),
    ({"ethnicity": "Chinese", "religion": "Christian"}, 458, "I am a Chinese Christian living in Malaysia."),
    ({"religion": "None", "age_group": "25-34"}, 458,
     "I am a person aged 25 to 34 living in Malaysia. I have no religion."),
])
def test_persona_bio_by_hand(levels, profile, sentence):
    assert persona_bio(levels, profile) == f'The person describes themselves: "{sentence}"'
    assert persona_text(levels, "bio", profile=profile) == persona_bio(levels, profile)


@pytest.mark.parametrize("country", [702, 458])
def test_qa_and_bio_say_every_level_of_every_subgroup(country):
    prof = load_profile(country)
    axes = prof.axis_levels
    place = prof.persona.place
    for s in prof.strata:
        import itertools

        for combo in itertools.product(*(axes[a] for a in s.axes)):
            levels = dict(zip(s.axes, combo))
            qa = persona_qa(levels, country).splitlines()
            assert qa[:3] == QA_HEAD + [f"A: {place}"]
            # one Q/A pair per axis given, in AXIS_NAMES order, nothing else
            assert qa[3::2] == [f"Q: {QA_QUESTIONS[a]}" for a in AXIS_NAMES if a in levels]
            assert len(qa) == 3 + 2 * len(levels) and all(line.startswith("A: ") for line in qa[4::2])
            bio = persona_bio(levels, country)
            sentence = persona_sentence(levels, country)
            # the sentence told in the first person: the same words after the pronoun
            assert bio == 'The person describes themselves: "' + \
                sentence.replace("You are", "I am").replace("You ", "I ") + '"'
            assert "You" not in bio and "you" not in bio and bio.count(place) == 1


def test_persona_fewshot_lists_examples_in_order_and_labels_once():
    examples = [("How important is work?", 1, "Very important"), ("Trust people?", 2, "2"),
                ("  Scale?  ", 10, "A great deal"), ("Bare?", 3, "")]
    got = persona_fewshot({"sex": "Female", "ethnicity": "Malay"}, examples, 458).splitlines()
    assert got == ["You are a Malay woman living in Malaysia.",
                   "On similar questions, people like you most often answered:",
                   "- How important is work? 1. Very important", "- Trust people? 2.",
                   "- Scale? 10. A great deal", "- Bare? 3."]
    # no examples (a cell without answered neighbours): the sentence alone
    for none in (None, []):
        assert persona_fewshot({"sex": "Male"}, none) == persona_sentence({"sex": "Male"})
    assert persona_text({"sex": "Male"}, "fewshot", examples[:1]) == persona_fewshot({"sex": "Male"}, examples[:1])
    assert persona_text({"sex": "Male"}) == persona_sentence({"sex": "Male"})


def test_persona_formats_refuse_unknown_levels_and_formats():
    with pytest.raises(ValueError, match="'religion' has no level 'Christian'"):
        persona_qa({"religion": "Christian"})  # a Malaysian level, not a Singaporean one
    with pytest.raises(ValueError, match="'religion' has no level 'Protestant'"):
        persona_bio({"religion": "Protestant"}, 458)
    with pytest.raises(ValueError, match="'haiku'") as exc:
        persona_text({"sex": "Male"}, "haiku")
    assert "sentence, qa, bio, fewshot" in str(exc.value)
    with pytest.raises(ValueError, match="'QA'"):
        in_persona_format({"levels": {"sex": "Male"}, "user_persona": "x"}, "QA")


@pytest.mark.parametrize("fmt", ["sentence", "qa", "bio", "fewshot"])
def test_in_persona_format_changes_the_persona_only(fmt):
    q = {"wording": "How important is family?", "options": {"1": "Very", "2": "Not"}}
    levels = {"ethnicity": "Indian", "religion": "Hindu"}
    sample = {"sample_id": "Q1_x", "question_id": "Q1", "levels": json.dumps(levels), "target": 2,
              "distribution": {"1": 0.3, "2": 0.7}, **q, **structured_prompt(q, levels, 458)}
    examples = [("How important is work?", 2, "Not")]
    got = in_persona_format(sample, fmt, examples, 458)
    assert got is not sample and sample["user_persona"] == "You are an Indian Hindu living in Malaysia."
    assert set(got) == set(sample)
    assert {k: v for k, v in got.items() if k != "user_persona"} == {k: v for k, v in sample.items()
                                                                     if k != "user_persona"}
    assert got["user_persona"] == persona_text(levels, fmt, examples, 458)
    # levels as a mapping read the same as their JSON
    assert in_persona_format({**sample, "levels": levels}, fmt, examples, 458) == {**got, "levels": levels}
    # the shared prefix is untouched: still the question, still before the persona
    msgs = structured_messages(got)
    assert msgs[1]["content"] == sample["user_shared"] + got["user_persona"]


def test_verbalised_sample_keeps_the_question_and_its_instruction_parses():
    from sgvalues.readouts import parse_verbalised

    q = {"wording": "  How much do you trust your neighbours?  ",
         "options": json.dumps({"10": "Completely", "1": "Not at all", "2": "2"})}
    sample = {"sample_id": "Q7_s", "question_id": "Q7", "levels": {"sex": "Male"}, "target": 1,
              **q, **structured_prompt(q, {"sex": "Male"})}
    got = verbalised_sample(sample)
    assert got["system"] == VERBALISED_SYSTEM_PROMPT != sample["system"]
    rest = ("system", "user_shared")
    assert {k: v for k, v in got.items() if k not in rest} == {k: v for k, v in sample.items() if k not in rest}
    # the question and options as the structured prompt asks them; the instruction swapped
    assert got["user_shared"] == sample["user_shared"].replace(ANSWER_INSTRUCTION, VERBALISED_INSTRUCTION)
    assert got["user_shared"].splitlines()[:6] == ["How much do you trust your neighbours?", "", "Options:",
                                                   "1. Not at all", "2.", "10. Completely"]
    msgs = structured_messages(got)
    assert msgs[0]["content"] == VERBALISED_SYSTEM_PROMPT and msgs[1]["content"].endswith(sample["user_persona"])
    # a reply written exactly as the instruction's example ("code: percent") parses
    example = re.search(r"for example ((\d+)\W+(\d+)\W*)\)", VERBALISED_INSTRUCTION)
    assert example, VERBALISED_INSTRUCTION
    form = example.group(1).replace(example.group(2), "{c}", 1).replace(example.group(3), "{p}", 1)
    assert form == "{c}: {p}%"
    reply = "\n".join(form.format(c=c, p=p) for c, p in (("1", 25), ("2", 35), ("10", 40)))
    parsed = parse_verbalised(reply, [1, 2, 10])
    assert parsed.status == "ok" and parsed.distribution == pytest.approx({1: 0.25, 2: 0.35, 10: 0.40})
    assert "summing to 100" in VERBALISED_INSTRUCTION and "one line per option" in VERBALISED_INSTRUCTION
