"""The backend registry (``sgvalues.models.registry``), ``model.system_role`` and the dummy params."""

from __future__ import annotations

import pytest
from factories import params_error

from sgvalues.models import backend_names, load_model, register_backend, unregister_backend
from sgvalues.models.chat import fit_messages, rendering_for, template_accepts_system
from sgvalues.models.dummy import DummyModel
from sgvalues.params import ModelSpec, Params, load_params


def test_builtin_backends_are_registered_and_load_model_looks_them_up():
    assert set(backend_names()) >= {"hf", "openai", "embedded", "dummy"}
    model = load_model(ModelSpec(backend="dummy", name="x"))
    assert isinstance(model, DummyModel) and model.model_id == "dummy:x:0"


def test_a_third_party_backend_registers_itself_by_decorator_and_by_call():
    made = []

    @register_backend("echo-test")
    def echo(spec, adapter=None, batch_size=16):
        made.append((spec.name, batch_size))
        return DummyModel(f"echo-{spec.name}")

    try:
        # params accept the new name only once it is registered
        p = Params.from_dict({"name": "t", "model": {"backend": "echo-test", "name": "m"}})
        assert load_model(p.model, batch_size=3).model_id == "dummy:echo-m:0" and made == [("m", 3)]
        with pytest.raises(ValueError, match="already registered"):
            register_backend("echo-test", lambda spec, adapter=None, batch_size=16: None)
        register_backend("echo-test", lambda spec, adapter=None, batch_size=16: DummyModel("second"), replace=True)
        assert load_model(p.model).model_id == "dummy:second:0"
    finally:
        unregister_backend("echo-test")
    with pytest.raises(ValueError, match="echo-test"):
        Params.from_dict({"name": "t", "model": {"backend": "echo-test", "name": "m"}})
    with pytest.raises(ValueError, match="built in"):
        unregister_backend("hf")


def test_unknown_backend_and_bad_system_role_name_the_file_and_key(tmp_path):
    path, msg = params_error(tmp_path, "model:\n  backend: vllm\n")
    assert path in msg and "backend = 'vllm'" in msg and "hf, embedded, openai, dummy" in msg
    path, msg = params_error(tmp_path, "model:\n  system_role: never\n")
    assert path in msg and "system_role = 'never'" in msg and "auto, yes, fold" in msg


def test_system_role_values_and_yaml_booleans(tmp_path):
    for text, expected in (("auto", "auto"), ("fold", "fold"), ("yes", "yes"), ("'yes'", "yes"), ("no", "fold")):
        f = tmp_path / "p.yaml"
        f.write_text(f"name: p\nmodel:\n  system_role: {text}\n")
        assert load_params(f).model.system_role == expected
    assert Params.from_dict({"name": "p"}).model.system_role == "auto"


class _Tok:
    """A stand-in tokenizer whose template rejects (or drops) the system role."""

    bos_token = eos_token = ""

    def __init__(self, template):
        self.chat_template = template

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        if self.chat_template == "raise" and messages[0]["role"] == "system":
            raise ValueError("System role not supported")
        keep = [m for m in messages if self.chat_template != "drop" or m["role"] != "system"]
        return "".join(f"<{m['role']}>{m['content']}" for m in keep) + ("<assistant>" if add_generation_prompt else "")


def test_rendering_rule():
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q\n\nP"}]
    accepts, raises, drops = _Tok("ok"), _Tok("raise"), _Tok("drop")
    assert [template_accepts_system(t) for t in (accepts, raises, drops)] == [True, False, False]
    assert [rendering_for(t, "auto") for t in (accepts, raises, drops)] == ["system", "folded", "folded"]
    assert rendering_for(accepts, "fold") == "folded" and rendering_for(accepts, "yes") == "system"
    with pytest.raises(ValueError, match="model.system_role = 'yes': this model's chat template rejects"):
        rendering_for(raises, "yes")
    assert fit_messages(msgs, "folded") == [{"role": "user", "content": "S\n\nQ\n\nP"}]
    assert fit_messages(msgs, "system") == msgs


def test_dummy_params_load_and_every_section_uses_the_dummy_backend():
    p = load_params("params/dummy.yaml")
    assert {p.model.backend, p.judge.judge.backend, p.judge.reference.backend} == {"dummy"}
    a, b = (load_model(p.model).score_options([__import__("sgvalues.models", fromlist=["ScoreRequest"]).ScoreRequest(
        [{"role": "user", "content": "1 or 2?"}], ("1", "2"))]) for _ in range(2))
    assert a == b and sum(a[0].values()) == pytest.approx(1.0)


def test_the_embedded_backend_is_the_hf_backend_on_the_embedded_model(monkeypatch):
    import sgvalues.models.hf as hf

    seen = []

    class FakeHF:
        def __init__(self, spec, adapter=None, batch_size=16):
            seen.append((spec.backend, spec.name, spec.cpu_threads, adapter, batch_size))

    monkeypatch.setattr(hf, "HFModel", FakeHF)
    p = Params.from_dict({"name": "e", "model": {"backend": "embedded", "name": "ignored", "cpu_threads": 1}})
    load_model(p.model, adapter="a", batch_size=5)
    assert seen == [("hf", "smollm2-135m", 1, "a", 5)]


def test_openai_folds_only_when_asked(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    from sgvalues.models.openai_backend import OpenAIModel

    auto = OpenAIModel(ModelSpec(backend="openai", name="m"))
    fold = OpenAIModel(ModelSpec(backend="openai", name="m", system_role="fold"))
    assert (auto.rendering, fold.rendering) == ("server", "folded")
    assert "rendering" not in auto.decoding_key() and fold.decoding_key()["rendering"] == "folded"
    import types

    sent = []

    def create(**kwargs):
        sent.append(kwargs["messages"])
        msg = types.SimpleNamespace(content="3")
        return types.SimpleNamespace(choices=[types.SimpleNamespace(message=msg, logprobs=None)])

    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    for model in (auto, fold):
        model.client = types.SimpleNamespace(chat=types.SimpleNamespace(completions=types.SimpleNamespace(create=create)))
        assert model._create(msgs, 4, 0.0, logprobs=False) == ("3", None)
    assert sent == [msgs, [{"role": "user", "content": "S\n\nU"}]]


def test_dummy_params_run_evaluate_train_and_judge_quickly(tmp_path, monkeypatch, make_samples):
    """The stages of ``params/dummy.yaml`` on a few samples: evaluation and the judge answer with
    DummyModel; training runs LoRA steps on the tiny Llama-family stand-in, and its adapter
    changes the dummy's answers (another seed)."""
    from sgvalues import judge
    from sgvalues import train as T
    from sgvalues.evaluate import evaluate_run
    from sgvalues.models.chat import read_renderings
    from sgvalues.split import write_samples

    monkeypatch.setenv("SGVALUES_CACHE", str(tmp_path / "cache"))
    samples = make_samples(questions=("Q1", "Q2"), split="train") + make_samples(questions=("Q1", "Q2"))
    for i, s in enumerate(samples):
        s["sample_id"] += f"_{s['split']}"
        s["target"] = 1 + i % 4
        s["targets"] = [s["target"]]
    run = tmp_path / "run"
    write_samples(samples, run / "data")
    p = load_params("params/dummy.yaml")
    base = evaluate_run(p, run, "ood", "base", cache=False)
    assert len(base) == 6 and (base["status"] == "ok").all()
    adapter = T.train_run(p, run, verbose=False)
    assert (adapter / "adapter_config.json").is_file()
    sft = evaluate_run(p, run, "ood", "sft", adapter=adapter, cache=False)
    assert list(sft["probs"]) != list(base["probs"])
    tables = judge.judge_run(p, run, data_dir=run / "data", log=None)
    assert set(tables["verdicts"]["verdict"]) <= {"A", "B", "tie"} and len(tables["verdicts"]) > 0
    assert read_renderings(run) == {"model": "messages", "training": "system", "judge.reference": "messages",
                                    "judge.judge": "messages"}
