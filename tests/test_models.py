"""Model-independent parts of sgvalues.models: answer parsing, the option-scoring rule,
prefix clustering and the response cache."""

import math
import threading

import numpy as np
import pytest

from sgvalues.models import ResponseCache, adapter_identity, cache_key, classify_text, parse_option
from sgvalues.models.base import Answer, GenerateRequest, Model, ScoreRequest
from sgvalues.models.hf import cluster_by_prefix, common_prefix_len
from sgvalues.models.scoring import code_branches, needed_tokens, option_probabilities

CODES10 = [str(i) for i in range(1, 11)]


@pytest.mark.parametrize("text,expected", [
    ("3", "3"), (" 10", "10"), ("10.", "10"), ("Answer: 7", "7"), ("07", "7"),
    ("11", None), ("0", None), ("3, or maybe 4", "3"), ("", None), (None, None), ("-1", None),
    ("2.5", None),
])
def test_parse_option_reads_the_first_whole_code(text, expected):
    assert parse_option(text, CODES10) == expected


@pytest.mark.parametrize("text,status", [
    ("As an AI, I don't have opinions.", "refused"), ("I cannot answer that", "refused"),
    ("I'm sorry, but that is personal.", "refused"), ("banana", "unparseable"),
    ("I can't be sure, but 3", "ok"), ("4", "ok"),
])
def test_classify_text_flags_refusals_and_unparseable(text, status):
    assert classify_text(text, CODES10)[0] == status


def test_two_token_codes_partition_the_first_token():
    # codes 1..10 where "10" = ("1", "0"): hand-computed with vocab ids = digits
    toks = {c: tuple(int(d) for d in c) for c in CODES10}
    assert code_branches(toks) == [(1,)]
    assert needed_tokens(toks)[(1,)] == [0]
    rng = np.random.default_rng(0)
    root = rng.dirichlet(np.ones(12))  # 10 digits + 2 other tokens
    after1 = rng.dirichlet(np.ones(12))
    sc = option_probabilities(toks, {(): np.log(root), (1,): np.log(after1)})
    raw = {str(d): root[d] for d in range(2, 10)}
    raw["1"] = root[1] * (1 - after1[0])
    raw["10"] = root[1] * after1[0]
    total = sum(raw.values())
    for c in CODES10:
        assert sc.probs[c] == pytest.approx(raw[c] / total, rel=1e-12)
    assert sc.option_mass == pytest.approx(root[1:10].sum(), rel=1e-12)
    assert sc.probs["1"] + sc.probs["10"] == pytest.approx(root[1] / root[1:10].sum(), rel=1e-12)


def test_single_token_codes_need_no_extra_position():
    toks = {"1": (5,), "2": (6,), "10": (7,)}  # e.g. a tokenizer with "10" as one token
    assert code_branches(toks) == [()]
    lp = np.log(np.array([0.1] * 5 + [0.2, 0.3, 0.2]))
    sc = option_probabilities(toks, {(): lp})
    assert sc.probs == pytest.approx({"1": 0.2 / 0.7, "2": 0.3 / 0.7, "10": 0.2 / 0.7})


def test_option_probabilities_survive_underflow():
    toks = {"1": (1,), "2": (2,)}
    sc = option_probabilities(toks, {(): {1: -900.0, 2: -901.0}})
    assert sc.probs["1"] == pytest.approx(1 / (1 + math.exp(-1)))
    assert sc.option_mass == 0.0


def test_prefix_clustering():
    a = [1, 2, 3, 4, 5, 6, 7, 8]
    seqs = [a + [9], [4, 4], a + [10, 11], a[:7] + [0], [4, 4, 5]]
    clusters = cluster_by_prefix(seqs)
    assert sorted(map(sorted, clusters)) == [[0, 1 + 1, 3], [1, 4]]
    assert common_prefix_len(seqs[0], seqs[2]) == 8


def test_requests_validate_codes():
    with pytest.raises(ValueError, match="at least one option"):
        ScoreRequest([{"role": "user", "content": "x"}], [])
    with pytest.raises(ValueError, match="non-empty strings"):
        ScoreRequest([{"role": "user", "content": "x"}], ["1", 2])


def test_base_model_derives_answer_and_generate():
    class Fake(Model):
        def score_options(self, requests):
            return [{c: 1 / len(r.option_codes) for c in r.option_codes} for r in requests]

        def generate_answers(self, requests):
            return [Answer(text="x" * r.max_new_tokens) if r.max_new_tokens else Answer(error="boom")
                    for r in requests]

    m = Fake()
    req = ScoreRequest([{"role": "user", "content": "q"}], ["1", "2"], max_new_tokens=3)
    assert m.answer([req])[0].probs == {"1": 0.5, "2": 0.5}
    assert m.answer([req], mode="generate")[0].text == "xxx"
    assert m.generate([GenerateRequest([], 0)]) == [""]  # a failure reads as empty text
    with pytest.raises(ValueError, match="mode"):
        m.answer([req], mode="sample")


def test_cache_roundtrip_and_concurrent_writers(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    keys = [cache_key(i=i) for i in range(200)]
    assert len(set(keys)) == 200 and cache_key(i=1) == cache_key(i=1)

    def write(lo):
        c = ResponseCache(path)  # another handle, as another process would have
        for k in range(lo, lo + 100, 10):
            c.put_many({keys[j]: {"v": j} for j in range(k, k + 10)})

    threads = [threading.Thread(target=write, args=(lo,)) for lo in (0, 100)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    got = ResponseCache(path).get_many(keys + ["absent"])
    assert len(got) == 200 and all(got[keys[j]] == {"v": j} for j in range(200))
    assert len(cache) == 200


def test_adapter_identity_hashes_the_weights(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d, w in ((a, b"weights-1"), (b, b"weights-1")):
        d.mkdir()
        (d / "adapter_model.safetensors").write_bytes(w)
        (d / "adapter_config.json").write_text("{}")
    assert adapter_identity(a) == adapter_identity(b) != ""
    (b / "adapter_model.safetensors").write_bytes(b"weights-2")
    assert adapter_identity(a) != adapter_identity(b)
    assert adapter_identity(None) == ""
    with pytest.raises(FileNotFoundError, match="adapter"):
        adapter_identity(tmp_path / "missing")


def test_one_refusal_detector_for_structured_and_open_ended_answers():
    from sgvalues import judge
    from sgvalues.models import base

    assert judge.is_refusal is base.is_refusal
    # an open-ended refusal with no code is a structured refusal too; a code wins over phrasing
    assert classify_text("As an AI language model, I cannot share personal opinions.", CODES10) == ("refused", None)
    assert classify_text("I cannot imagine answering anything but 7", CODES10) == ("ok", "7")
    # in-character "I cannot" without a code is unparseable, not a refusal
    assert classify_text("I cannot imagine life without my faith.", CODES10) == ("unparseable", None)
    assert base.is_refusal(float("nan")) is False
