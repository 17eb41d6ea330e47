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


def _write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_extends_lays_the_file_over_its_base_key_by_key(tmp_path):
    """A two-level chain: mappings merge key by key, scalars and lists are replaced, the nearest file wins."""
    from sgvalues.params import Params

    _write(tmp_path, "base/root.yaml", "seed: 3\nevaluation:\n  mode: generate\n  splits: [ood, train]\n"
                                       "  batch_size: 4\n")
    _write(tmp_path, "base/mid.yaml", "extends: root.yaml\nevaluation:\n  batch_size: 8\n  splits: [ood]\n"
                                      "training:\n  lr: 0.5\n")
    child = _write(tmp_path, "m.yaml", "extends: base/mid.yaml\nname: m\nevaluation:\n  max_new_tokens: 5\n")
    p = load_params(child)
    by_hand = Params.from_dict({"name": "m", "seed": 3, "training": {"lr": 0.5}, "evaluation": {
        "mode": "generate", "splits": ["ood"], "batch_size": 8, "max_new_tokens": 5}})
    assert p == by_hand


def test_extends_errors_name_the_file_and_the_key(tmp_path):
    missing = _write(tmp_path, "a.yaml", "extends: nowhere.yaml\nname: a\n")
    with pytest.raises(ParamsError, match=r"a\.yaml: extends = 'nowhere.yaml': file not found"):
        load_params(missing)
    _write(tmp_path, "x.yaml", "extends: y.yaml\nname: x\n")
    loop = _write(tmp_path, "y.yaml", "extends: x.yaml\n")
    with pytest.raises(ParamsError, match="comes back to a file already in the chain"):
        load_params(loop)
    bad = _write(tmp_path, "b.yaml", "extends: [x.yaml]\nname: b\n")
    with pytest.raises(ParamsError, match=r"b\.yaml: extends = \['x.yaml'\]: expected the path"):
        load_params(bad)
    # a bad key in the base is reported with the file that was loaded and the base it extends
    _write(tmp_path, "base.yaml", "evaluation:\n  nmae: 1\n")
    child = _write(tmp_path, "c.yaml", "extends: base.yaml\nname: c\n")
    with pytest.raises(ParamsError, match=r"c\.yaml \(extends .*base\.yaml\): unknown key\(s\) evaluation\.nmae"):
        load_params(child)


def test_paper_model_files_hold_only_what_differs(tmp_path):
    """Each paper model's file says which base it extends, its names and its model's name; nothing else."""
    import yaml

    from sgvalues.params import recipe_text

    paper = [p for p in PARAMS if p.stem not in ("smollm2-135m", "smoke", "dummy")]
    assert len(paper) == 10
    for path in paper:
        raw = yaml.safe_load(path.read_text())
        assert set(raw) == {"extends", "name", "display_name", "model"} and set(raw["model"]) == {"name"}, path
        # the run folder's copy is self-contained and validates to the same recipe
        text = recipe_text(path)
        assert "extends" not in yaml.safe_load(text)
        copy = _write(tmp_path, "params.yaml", text)
        assert load_params(copy) == load_params(path)
    plain = PARAMS[0].parent / "smollm2-135m.yaml"
    assert recipe_text(plain) == plain.read_text()


# --- chapter 09's evaluation keys -----------------------------------------------------------------------

@pytest.mark.parametrize("body, key, value", [
    ("readouts: [logprob, sampling]", "readouts", "sampling"),
    ("readouts: [logprob, logprob]", "readouts", "logprob"),
    ("readouts: []", "readouts", "[]"),
    ("readouts: sampled", "evaluation.readouts", "sampled"),          # a string, not a list
    ("temperature_objective: mse", "temperature_objective", "mse"),
    ("temperature_objective: 3", "evaluation.temperature_objective", "3"),
    ("sampled_n: 0", "sampled_n", "0"),
    ("sampled_n: 2.5", "evaluation.sampled_n", "2.5"),
    ("sampled_temperature: 0", "sampled_temperature", "0"),
    ("sampled_temperature: -1", "sampled_temperature", "-1"),
    ("sampled_temperature: .nan", "sampled_temperature", "nan"),
    ("sampled_temperature: .inf", "sampled_temperature", "inf"),
    ("sampled_max_new_tokens: 0", "sampled_max_new_tokens", "0"),
    ("verbalised_tolerance: -0.5", "verbalised_tolerance", "-0.5"),
    ("verbalised_tolerance: .nan", "verbalised_tolerance", "nan"),   # NaN would let any sum parse
    ("verbalised_tolerance: .inf", "verbalised_tolerance", "inf"),
    ("verbalised_tolerance: lots", "evaluation.verbalised_tolerance", "lots"),
    ("persona_formats: [sentence, haiku]", "persona_formats", "haiku"),
    ("persona_formats: [qa, qa]", "persona_formats", "qa"),
    ("persona_formats: []", "persona_formats", "[]"),
    ("fewshot_k: 0", "fewshot_k", "0"),
    ("fewshot_k: many", "evaluation.fewshot_k", "many"),
    ("knowledge_subgroups: 0", "knowledge_subgroups", "0"),
    ("knowledge_subgroups: -2", "knowledge_subgroups", "-2"),
    ("knowledge_questions: 0", "knowledge_questions", "0"),
    ("knowledge_questions: all", "evaluation.knowledge_questions", "all"),
])
def test_chapter_09_keys_reject_bad_values_naming_the_key(tmp_path, body, key, value):
    path, msg = params_error(tmp_path, f"evaluation:\n  {body}\n")
    assert path in msg and key in msg and value in msg, msg


def test_chapter_09_keys_accept_their_values():
    from sgvalues.constants import PERSONA_FORMATS, READOUTS, TEMPERATURE_OBJECTIVES
    from sgvalues.params import Params

    ev = Params.from_dict({"name": "x"}).evaluation
    assert ev.readouts == READOUTS and ev.persona_formats == PERSONA_FORMATS
    assert (ev.knowledge_subgroups, ev.knowledge_questions, ev.temperature_objective) == (None, None, "jsd")
    for objective in TEMPERATURE_OBJECTIVES:
        got = Params.from_dict({"name": "x", "evaluation": {
            "readouts": ["verbalised"], "temperature_objective": objective, "sampled_n": 1,
            "sampled_temperature": 0.1, "sampled_max_new_tokens": 1, "verbalised_tolerance": 0,
            "persona_formats": ["bio"], "fewshot_k": 1, "knowledge_subgroups": 1, "knowledge_questions": 1}}).evaluation
        assert (got.readouts, got.persona_formats, got.temperature_objective) == (("verbalised",), ("bio",), objective)
        assert (got.sampled_n, got.sampled_temperature, got.verbalised_tolerance, got.fewshot_k) == (1, 0.1, 0.0, 1)
