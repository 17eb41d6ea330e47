"""Every params file loads; unknown keys and bad values name the file and the key."""

from pathlib import Path

import pytest

from sgvalues.params import ParamsError, load_params
from factories import params_error
from sgvalues.published import published

PARAMS = sorted((Path(__file__).parents[1] / "params").glob("*.yaml"))


def test_the_paper_models_and_the_defaults_are_all_there():
    names = {p.stem for p in PARAMS}
    expected = {"gpt-4.1", "gpt-4o", "gpt-4o-mini", "llama-3.1-8b", "llama-3.2-3b", "sea-lion-v3-8b",
                "qwen2.5-7b", "sailor2-8b", "seallms-v3-7b", "phi-4-mini", "smollm2-135m", "smoke"}
    assert expected <= names


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.stem)
def test_every_params_file_validates(path):
    p = load_params(path)
    assert p.name == path.stem
    if p.model.backend == "openai":
        assert p.model.name in published()["models"]["openai"]
        assert p.model.adapter is None
    elif p.model.backend == "dummy":  # params/dummy.yaml: the pipeline check, not a paper model
        assert p.training.max_steps is not None and p.training.max_steps <= 5
    elif p.model.name != "smollm2-135m":
        assert p.model.name in published()["models"]["hf"]
        # the paper's SFT recipe
        assert p.training.lr == 1e-6 and p.training.epochs == 1.0


def test_smoke_is_small():
    p = load_params(Path(__file__).parents[1] / "params" / "smoke.yaml")
    assert p.evaluation.limit <= 60 and p.training.max_steps <= 5 and p.judge.n_pairs <= 3


def test_unknown_key_names_file_and_key(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\nmodel:\n  backend: hf\n  nmae: smollm2-135m\n")
    with pytest.raises(ParamsError) as exc:
        load_params(f)
    assert str(f) in str(exc.value) and "model.nmae" in str(exc.value)


@pytest.mark.parametrize("body,key", [
    ("evaluation:\n  mode: sample\n", "evaluation.mode"),
    ("evaluation:\n  batch_size: 0\n", "evaluation"),
    ("model:\n  max_concurrency: 0\n", "model"),
    ("model:\n  top_logprobs: 50\n", "model"),
    ("model:\n  timeout_s: fast\n", "model.timeout_s"),
    ("evaluation:\n  limit: -3\n", "evaluation"),
])
def test_bad_values_name_file_and_key(tmp_path, body, key):
    path, msg = params_error(tmp_path, body)
    assert path in msg and key in msg


def test_evaluation_mode_accepts_every_answer_mode_and_names_them_when_wrong(tmp_path):
    from sgvalues.models.base import ANSWER_MODES
    from sgvalues.params import EvaluationParams, Params

    for mode in ANSWER_MODES:
        assert Params.from_dict({"name": "x", "evaluation": {"mode": mode}}).evaluation.mode == mode
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\nevaluation:\n  mode: generate_logprobs\n")
    with pytest.raises(ParamsError) as exc:
        load_params(f)
    assert all(repr(m) in str(exc.value) for m in ANSWER_MODES) and "generate_logprobs" in str(exc.value)
    with pytest.raises(ValueError, match="expected one of logprob, generate, generate_logprob"):
        EvaluationParams(mode="sample")


def test_sensitive_pairs_must_not_be_negative(tmp_path):
    path, msg = params_error(tmp_path, "judge:\n  sensitive_pairs: -1\n")
    assert path in msg and "sensitive_pairs = -1" in msg
