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


def _stopped_prefixes(answers, stops) -> list[str]:
    """Every prefix of every answer at which the early stop ``stops`` fires; the properties below
    must hold whatever the model would have written after it."""
    found = [a[:k] for a in answers for k in range(len(a) + 1) if stops(a[:k])]
    assert len(found) >= 10  # the property is not vacuous
    return found


@pytest.mark.parametrize("codes", CODE_SETS, ids=lambda c: f"{len(c)}codes")
def test_a_decided_answer_parses_to_its_code_whatever_follows(codes):
    for prefix in _stopped_prefixes(ANSWERS, lambda text: answer_decided(text, codes)):
        status, code = classify_text(prefix, codes)
        assert status == "ok", (prefix, codes)
        for suffix in SUFFIXES:
            assert classify_text(prefix + suffix, codes) == ("ok", code), (prefix, suffix, codes)


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
    for prefix in _stopped_prefixes(VERBALISED, lambda text: verbalised_cannot_parse(text, codes)):
        for suffix in VERBAL_SUFFIXES:
            got = parse_verbalised(prefix + suffix, codes)
            assert got.status == "unparseable" and got.reason, (prefix, suffix)


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


# --- the hf sampler on tiny local models -----------------------------------------------------------------

import dataclasses  # noqa: E402

import torch  # noqa: E402

from sgvalues.evaluate import sample_request  # noqa: E402
from sgvalues.models.base import GenerateRequest  # noqa: E402
from sgvalues.prompts import structured_prompt  # noqa: E402

QUESTIONS = [
    {"question_id": "QA", "wording": "How important is family in your life?",
     "options": {"1": "Very important", "2": "Rather important", "3": "Not very important", "4": "Not at all"}},
    {"question_id": "QB", "wording": "How much freedom of choice do you feel you have?",
     "options": {str(c): str(c) for c in range(1, 11)}},
    {"question_id": "QC", "wording": "Should people trust their neighbours?", "options": {"1": "Yes", "2": "No"}},
]
PERSONAS = [{"sex": "Female"}, {"ethnicity": "Malay", "religion": "Muslim"}, {"age_group": "65+"},
            {"religion": "None"}]


def _sample(q: dict, levels: dict, persona: str | None = None) -> dict:
    p = structured_prompt(q, levels)
    if persona is not None:
        p["user_persona"] = persona
    return {"sample_id": f"{q['question_id']}_{len(p['user_persona'])}", "question_id": q["question_id"],
            "options": q["options"], **p}


def _requests(q: dict, personas=PERSONAS) -> list:
    return [sample_request(_sample(q, lv)) for lv in personas]


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def tiny(request, tmp_path_factory):
    """A tiny local model (``sgvalues.models.tiny``) whose untied output head is random (seeded).

    The built models' tied head makes greedy decoding repeat the prompt's last token (whitespace,
    stripped to ""); a random head makes greedy answers differ from prompt to prompt.
    """
    from sgvalues.models import load_model
    from sgvalues.models.tiny import build_tiny_model
    from sgvalues.params import Params

    torch.set_num_threads(1)
    folder = build_tiny_model(tmp_path_factory.mktemp("tiny") / request.param, request.param)
    model = load_model(Params.from_dict({"name": "t", "model": {"name": str(folder), "cpu_threads": 1}}).model,
                       batch_size=4)
    weight = model.lm_head.weight
    gen = torch.Generator().manual_seed(11)
    model.lm_head.weight = torch.nn.Parameter(torch.randn(weight.shape, generator=gen))
    assert model.model.get_output_embeddings() is model.lm_head
    return model


def _all_requests():
    return [r for q in QUESTIONS[:2] for r in _requests(q)]


def test_greedy_sampling_is_transformers_greedy_generate_alone_or_batched(tiny):
    reqs = _all_requests()
    batched = tiny.sample_texts(reqs, n=3, max_new_tokens=8, temperature=0)
    assert [len(t) for t in batched] == [1] * len(reqs)  # greedy: one answer, whatever n
    alone = [tiny.sample_texts([r], n=3, max_new_tokens=8, temperature=0)[0] for r in reqs]
    generated = tiny.generate([GenerateRequest(r.messages, 8, 0.0) for r in reqs])
    assert batched == alone == [[g] for g in generated]
    assert len({t[0] for t in batched}) >= 2 and all(t[0] for t in batched)  # not vacuous
    tiny.batch_size = 1  # one prompt per decoding batch
    try:
        assert tiny.sample_texts(reqs[::-1], n=1, max_new_tokens=8, temperature=0) == batched[::-1]
    finally:
        tiny.batch_size = 4


def test_seeded_sampling_does_not_depend_on_batching_order_or_company(tiny):
    reqs = _all_requests()
    first = tiny.sample_texts(reqs, n=4, max_new_tokens=6, temperature=1.0, seed=7)
    assert [len(t) for t in first] == [4] * len(reqs)
    assert tiny.sample_texts(reqs, n=4, max_new_tokens=6, temperature=1.0, seed=7) == first
    assert [tiny.sample_texts([r], n=4, max_new_tokens=6, temperature=1.0, seed=7)[0] for r in reqs] == first
    assert tiny.sample_texts(reqs[::-1], n=4, max_new_tokens=6, temperature=1.0, seed=7) == first[::-1]
    other = _requests(QUESTIONS[2])[:2]
    mixed = tiny.sample_texts([other[0], reqs[5], reqs[1], other[1]], n=4, max_new_tokens=6, temperature=1.0,
                              seed=7)
    assert mixed[1:3] == [first[5], first[1]]
    # without a group no prefix is shared: each prompt runs whole, the same answers come out
    ungrouped = [dataclasses.replace(r, group=None) for r in reqs]
    assert tiny.sample_texts(ungrouped, n=4, max_new_tokens=6, temperature=1.0, seed=7) == first
    tiny.batch_size = 1
    try:
        assert tiny.sample_texts(reqs, n=4, max_new_tokens=6, temperature=1.0, seed=7) == first
    finally:
        tiny.batch_size = 4
    # the n answers of a prompt are n draws; another seed draws others
    assert all(len(set(t)) > 1 for t in first)
    again = tiny.sample_texts(reqs, n=4, max_new_tokens=6, temperature=1.0, seed=8)
    assert sum(a != b for a, b in zip(again, first)) >= len(reqs) - 1
    assert [len(t) for t in tiny.sample_texts(reqs[:2], n=1, max_new_tokens=6, temperature=1.0)] == [1, 1]


def _greedy_tokens(model, request, max_new_tokens: int) -> list[int]:
    """transformers' greedy continuation of one prompt, as token ids, up to (not including) eos."""
    ids = torch.tensor([model.prompt_ids(request.messages)])
    with torch.no_grad():
        out = model.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                   max_new_tokens=max_new_tokens, pad_token_id=model.tokenizer.pad_token_id,
                                   temperature=None, top_p=None, top_k=None)
    toks = out[0, ids.shape[1]:].tolist()
    eos = model._eos_ids()
    return toks[:next((j for j, t in enumerate(toks) if t in eos), len(toks))]


def test_stop_ends_a_row_at_the_first_text_it_accepts(tiny):
    reqs = _all_requests()
    asked: list = []

    def stop(text, codes):
        asked.append(tuple(codes))
        return len(text.strip()) >= 3

    full = tiny.sample_texts(reqs, n=1, max_new_tokens=8, temperature=0)
    short = tiny.sample_texts(reqs, n=1, max_new_tokens=8, temperature=0, stop=stop)
    decode = lambda toks: tiny.tokenizer.decode(toks, skip_special_tokens=True)  # noqa: E731
    for r, f, s in zip(reqs, full, short):
        toks = _greedy_tokens(tiny, r, 8)
        k = next((k for k in range(1, len(toks) + 1) if len(decode(toks[:k]).strip()) >= 3), len(toks))
        assert s == [decode(toks[:k]).strip()]
        assert f[0].startswith(s[0]) or "\ufffd" in s[0]  # a cut inside a multi-byte character reads as U+FFFD
    assert {c for c in asked} == {r.option_codes for r in reqs}
    # sampled: a row stopped after its first token drew that token as a one-token answer does
    one = tiny.sample_texts(reqs, n=3, max_new_tokens=1, temperature=1.0, seed=3)
    cut = tiny.sample_texts(reqs, n=3, max_new_tokens=6, temperature=1.0, seed=3, stop=lambda t, c: True)
    assert cut == one


def test_prefix_lru_reuses_extends_and_stays_within_its_size(tiny):
    tiny.__dict__.pop("_prefixes", None)
    tiny.PREFIX_CACHE_SIZE = 2  # the instance's own bound
    try:
        groups = {q["question_id"]: _requests(q) for q in QUESTIONS}
        every = [r for g in groups.values() for r in g]
        reference = [a.probs for a in tiny.score_answers(every, share_prefix=False)]  # no prefix at all
        by_req = dict(zip(map(id, every), reference))

        def check(reqs, got):
            for r, p in zip(reqs, got):
                assert p.keys() == by_req[id(r)].keys()
                assert max(abs(p[c] - by_req[id(r)][c]) for c in p) < 1e-5

        calls = tiny.calls
        first = tiny.score_options(groups["QA"])
        cold = tiny.calls - calls
        key_a = next(iter(tiny._prefixes))
        calls = tiny.calls
        second = tiny.score_options(groups["QA"])
        assert tiny.calls - calls == cold - 1  # the prefix pass is skipped: it came from the LRU
        for a, b in zip(first, second):
            assert max(abs(a[c] - b[c]) for c in a) < 1e-6
        check(groups["QA"], first)
        sizes, added = [], {}
        for name in ("QB", "QA", "QC"):  # QA used again after QB: QB is the least recently used
            before = set(tiny._prefixes)
            check(groups[name], tiny.score_options(groups[name]))
            added[name] = set(tiny._prefixes) - before
            sizes.append(len(tiny._prefixes))
        assert max(sizes) <= 2 and len(added["QB"]) == len(added["QC"]) == 1 and not added["QA"]
        assert list(tiny._prefixes) == [key_a, *added["QC"]]  # QB's evicted, QA kept, most recent last
    finally:
        del tiny.PREFIX_CACHE_SIZE
        tiny.__dict__.pop("_prefixes", None)


def test_a_longer_prefix_is_computed_from_the_longest_cached_one(tiny):
    q = QUESTIONS[0]
    short = [sample_request(_sample(q, {"sex": "Male"}, p)) for p in ("Alpha one.", "Beta two.")]
    longer = [sample_request(_sample(q, {"sex": "Male"}, f"Alpha one and then some more words {w}."))
              for w in ("yes", "no", "maybe")]
    reference = [a.probs for a in tiny.score_answers(longer, share_prefix=False)]
    tiny.__dict__.pop("_prefixes", None)
    try:
        tiny.score_options(short)
        (key_short,) = tiny._prefixes
        before = tiny.tokens_processed
        cold = tiny.score_options(longer)  # from scratch would run len(key_long) prefix tokens
        warm_tokens = tiny.tokens_processed - before
        key_long = list(tiny._prefixes)[-1]
        assert len(key_long) > len(key_short) and key_long[:len(key_short)] == key_short
        tiny.__dict__.pop("_prefixes", None)
        before = tiny.tokens_processed
        fresh = tiny.score_options(longer)
        assert (tiny.tokens_processed - before) - warm_tokens == len(key_short)  # the cached part is not rerun
        for a, b, ref in zip(cold, fresh, reference):
            assert max(abs(a[c] - b[c]) for c in a) < 1e-6
            assert max(abs(a[c] - ref[c]) for c in a) < 1e-5
    finally:
        tiny.__dict__.pop("_prefixes", None)
