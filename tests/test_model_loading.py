"""A model that cannot be loaded ends the subcommand with one line naming the params file, the key
and what to do: a missing local folder, a hub id not cached while offline, a gated model without
a token, a tokenizer without pad (falls back to eos) or without any end token, a model too large
for the memory at hand. Conditions are built locally; nothing is downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sgvalues import cli
from sgvalues.models import loading
from sgvalues.models.tiny import build_tiny_model


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", "llama")


@pytest.fixture
def run_dir(tmp_path, make_samples):
    from sgvalues.split import write_samples

    write_samples(make_samples(), tmp_path / "run" / "data")
    return tmp_path / "run"


def _params(tmp_path, name: str, extra: str = "") -> str:
    path = tmp_path / "params" / "newmodel.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"name: newmodel\nmodel:\n  backend: hf\n  name: {json.dumps(name)}\n{extra}")
    return str(path)


def _one_line(capsys, argv) -> str:
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _evaluate(params, run_dir):
    return ["evaluate", "--params", params, "--run-dir", str(run_dir), "--no-cache"]


def test_a_missing_local_folder(tmp_path, run_dir, capsys):
    params = _params(tmp_path, "./models/no-such-model")
    line = _one_line(capsys, _evaluate(params, run_dir))
    assert line.startswith(f"sgvalues evaluate: error: {params}: model.name = './models/no-such-model': no such folder")
    assert "hub id" in line and "smollm2-135m" in line


def test_a_folder_without_config(tmp_path, run_dir, capsys):
    (tmp_path / "empty").mkdir()
    params = _params(tmp_path, str(tmp_path / "empty"))
    line = _one_line(capsys, _evaluate(params, run_dir))
    assert f"{params}: model.name = '{tmp_path / 'empty'}': the folder" in line and "no config.json" in line


@pytest.mark.slow  # a fresh interpreter importing torch and transformers: about 9 s
def test_a_hub_id_not_cached_while_offline(tmp_path, run_dir):
    """In a fresh interpreter: huggingface_hub reads HF_HOME and HF_HUB_OFFLINE when imported."""
    params = _params(tmp_path, "someorg/some-model-7b")
    env = {**os.environ, "HF_HOME": str(tmp_path / "empty-hf-home"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    proc = subprocess.run([sys.executable, "-m", "sgvalues", *_evaluate(params, run_dir)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"sgvalues evaluate: error: {params}: model.name = 'someorg/some-model-7b': "
                               "not in the local Hugging Face cache")
    assert str(tmp_path / "empty-hf-home") in lines[0] and "HF_HUB_OFFLINE=1" in lines[0]
    assert "`hf download someorg/some-model-7b`" in lines[0]


def test_a_gated_model_without_a_token(tmp_path, run_dir, capsys, monkeypatch):
    import httpx2
    import transformers
    from huggingface_hub.errors import GatedRepoError

    url = "https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct/resolve/main/config.json"

    def gated(*args, **kwargs):
        cause = GatedRepoError("Access to model meta-llama/Llama-3.1-8B-Instruct is restricted.",
                               response=httpx2.Response(401, request=httpx2.Request("GET", url)))
        raise OSError("You are trying to access a gated repo.") from cause

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", gated)
    params = _params(tmp_path, "meta-llama/Llama-3.1-8B-Instruct")
    line = _one_line(capsys, _evaluate(params, run_dir))
    assert line.startswith(f"sgvalues evaluate: error: {params}: model.name = 'meta-llama/Llama-3.1-8B-Instruct': "
                           "a gated model on the Hugging Face hub (no HF_TOKEN is set)")
    assert "export HF_TOKEN=" in line and "https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct" in line


def test_a_tokenizer_without_pad_uses_eos_and_without_any_end_token_is_an_error(tiny_llama, tmp_path, run_dir,
                                                                                 capsys):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    assert tok.pad_token is None
    assert loading.ensure_pad_token(tok).pad_token_id == tok.convert_tokens_to_ids("<|eot_id|>")
    broken = tmp_path / "no-eos"
    broken.mkdir()
    for f in tiny_llama.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((broken / "tokenizer_config.json").read_text())
    cfg["eos_token"] = None
    (broken / "tokenizer_config.json").write_text(json.dumps(cfg))
    params = _params(tmp_path, str(broken))
    line = _one_line(capsys, _evaluate(params, run_dir))
    assert line.startswith(f"sgvalues evaluate: error: {params}: model.name = '{broken}': its tokenizer has "
                           "neither a pad token nor an eos token")


def test_a_model_too_large_for_the_memory_at_hand(tiny_llama, tmp_path, run_dir, capsys, monkeypatch):
    """Llama-3.1-8B's published shape (config only, no weights): 8.03 B parameters, 4 bytes each
    in float32 on the CPU = 29.9 GiB, against 4 GiB said to be free."""
    from transformers import LlamaConfig

    big = tmp_path / "llama-8b-shape"
    big.mkdir()
    LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False).save_pretrained(big)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (big / f).write_bytes((tiny_llama / f).read_bytes())
    monkeypatch.setattr(loading, "available_memory", lambda device: 4 * 1024 ** 3)
    params = _params(tmp_path, str(big), "  device: cpu\n")
    line = _one_line(capsys, _evaluate(params, run_dir))
    n = 2 * 128256 * 4096 + 32 * (4096 * 4096 * 2 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096) + 4096
    assert n == 8_030_261_248  # the published parameter count of Llama-3.1-8B
    assert line.startswith(f"sgvalues evaluate: error: {params}: model.name = '{big}': too large for this machine: "
                           f"8.03 B parameters need about {n * 4 / 1024 ** 3:.1f} GiB for the weights in float32, "
                           "and cpu has 4.0 GiB free")
    assert "quantization: 8bit" in line and "backend: openai" in line
    # 4bit would need a quarter: within 8 GiB
    assert loading.weight_bytes(LlamaConfig.from_pretrained(big), "float32", "4bit")[1] == n * 0.5


def test_training_loads_through_the_same_checks(tmp_path):
    from sgvalues import train as T
    from sgvalues.params import load_params

    params = load_params(_params(tmp_path, "./models/absent"))
    with pytest.raises(loading.ModelLoadError, match=r"newmodel.yaml: model.name = './models/absent': no such folder"):
        T.build_model(params)


def test_system_role_yes_with_a_template_that_rejects_it_is_one_line(tmp_path, run_dir, capsys):
    gemma = build_tiny_model(tmp_path / "gemma", "gemma")
    params = _params(tmp_path, str(gemma), "  system_role: 'yes'\n")
    line = _one_line(capsys, _evaluate(params, run_dir))
    assert line == (f"sgvalues evaluate: error: {params}: model.system_role = 'yes': this model's chat template "
                    "rejects (or drops) the system message; expected 'auto' or 'fold' (the system text is then "
                    "folded into the first user turn)")
