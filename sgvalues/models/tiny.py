"""Tiny random models of three chat families, built locally (no download), for tests and dry runs.

Each family is a byte-level BPE tokenizer trained with ``tokenizers`` on a small built-in corpus,
a chat template in the family's style, and a transformers config of the family's architecture
with a few hundred thousand random parameters, written with ``save_pretrained`` to a folder that
``model.name`` can point to. What they say is noise; what they exercise is real: tokenisation,
chat templates, the scoring engine, generation, LoRA training and the judge.

:data:`FAMILIES`:

``llama``
    Llama architecture, Llama-3-style header template with a system role; numbers up to 10
    are single tokens (``"10"`` is one token).
``qwen2``
    Qwen2 architecture, ChatML template with a system role; digits are split (``"10"`` is
    ``"1"``, ``"0"``), so the option codes 1-10 form a two-level trie.
``gemma``
    Gemma architecture, Gemma's template, which *rejects* the system role
    (``raise_exception('System role not supported')``, as Gemma's own does).

None of the tokenizers has a pad token (as Llama 3's has none): loading falls back to eos.
The ``dummy`` backend trains its LoRA adapters on the ``llama`` family
(:func:`tiny_model_dir`), so a dry run exercises the training code too.

Example
-------
>>> sorted(FAMILIES)
['gemma', 'llama', 'qwen2']
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock

from sgvalues.atomic import atomic_dir

__all__ = ["FAMILIES", "build_tiny_model", "tiny_model_dir"]

_LLAMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
_CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "<start_of_turn>{{ role }}\n{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

#: family -> (architecture, chat template, special tokens (bos, eos, others), digits split)
FAMILIES: dict[str, dict] = {
    "llama": {"arch": "llama", "template": _LLAMA_TEMPLATE, "bos": "<|begin_of_text|>", "eos": "<|eot_id|>",
              "special": ["<|start_header_id|>", "<|end_header_id|>"], "split_digits": False},
    "qwen2": {"arch": "qwen2", "template": _CHATML_TEMPLATE, "bos": None, "eos": "<|im_end|>",
              "special": ["<|im_start|>", "<|endoftext|>"], "split_digits": True},
    "gemma": {"arch": "gemma", "template": _GEMMA_TEMPLATE, "bos": "<bos>", "eos": "<end_of_turn>",
              "special": ["<start_of_turn>", "<eos>"], "split_digits": False},
}

_WORDS = (
    "you are taking part in the world values survey will be told who and asked one question with numbered "
    "answer options reply number of option that person would choose nothing else how important is family "
    "your life very rather not at all a woman man living singapore malay chinese indian muslim buddhist "
    "christian hindu aged to or older have no religion answer as described below only which better on this "
    "criterion exactly tie interview own words first should be allowed agree disagree strongly neither "
    "government people work religion politics friends leisure time trust most can't careful"
)


def _corpus() -> list[str]:
    numbers = " ".join(str(i) for i in range(0, 11))
    lines = [_WORDS, _WORDS.capitalize() + ".", numbers, "Options:\n1. Yes\n2. No\n10. Maybe"]
    return lines * 20 + [f"{i}. option {i}\n" for i in range(1, 11)] * 20


def _tokenizer(family: dict):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [t for t in (family["bos"], family["eos"]) if t] + list(family["special"])
    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if family["split_digits"]:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer=trainer)
    kwargs = {"eos_token": family["eos"]}
    if family["bos"]:
        kwargs["bos_token"] = family["bos"]
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)
    fast.chat_template = family["template"]
    return fast


def _config(family: dict, vocab_size: int, tokenizer):
    import transformers

    common = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                  eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
                  pad_token_id=None, tie_word_embeddings=True)
    arch = family["arch"]
    if arch == "llama":
        return transformers.LlamaConfig(**common)
    if arch == "qwen2":
        return transformers.Qwen2Config(**common)
    return transformers.GemmaConfig(head_dim=16, **common)


def build_tiny_model(folder: str | Path, family: str = "llama", seed: int = 0) -> Path:
    """Write a tiny random model of ``family`` (:data:`FAMILIES`) into ``folder``; returns it.

    The same family and seed give the same weights and tokenizer. About 0.1 M parameters
    (hidden size 64, 2 layers, vocabulary about 420).
    """
    import torch
    import transformers

    if family not in FAMILIES:
        raise ValueError(f"tiny model family {family!r}: expected one of {', '.join(FAMILIES)}")
    spec = FAMILIES[family]
    tokenizer = _tokenizer(spec)
    config = _config(spec, len(tokenizer), tokenizer)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_model_dir(family: str = "llama", cache_dir: str | Path | None = None) -> Path:
    """A cached tiny model of ``family`` under the sgvalues cache (built once, atomically)."""
    from sgvalues.models.embedded import cache_root

    root = Path(cache_dir) if cache_dir is not None else cache_root() / "models"
    target = root / f"tiny-{family}"
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"tiny-{family}.lock")):
        if not (target / "config.json").is_file():
            with atomic_dir(target) as tmp:
                build_tiny_model(tmp, family)
    return target
