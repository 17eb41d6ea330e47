"""Finding, checking and loading a transformers model, with one-line errors a re-runner can act on.

:func:`resolve_model_path` turns ``model.name`` into a local folder or a hub id (the embedded
``smollm2-135m`` into its cached folder); :func:`load_tokenizer` loads the tokenizer and gives
it a pad token (:func:`ensure_pad_token`); :func:`check_memory` estimates the weights' memory
from the config alone (:func:`weight_bytes`) before any weight is read; :func:`load_errors`
turns what transformers and huggingface_hub raise (a missing folder, a hub id not cached while
offline, a gated model without a token, an unknown id) into a :class:`ModelLoadError` that
names the params file and key and says what to do. The CLI prints it as one line.

Example
-------
>>> str(ModelLoadError("params/x.yaml: model.name = 'a/b'", "not found", "check the spelling"))
"params/x.yaml: model.name = 'a/b': not found; check the spelling"
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["ModelLoadError", "model_where", "resolve_model_path", "ensure_pad_token", "load_tokenizer",
           "weight_bytes", "available_memory", "check_memory", "load_errors", "hf_cache_dir"]

#: bytes per weight by dtype / quantization
_BYTES = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "8bit": 1.0, "4bit": 0.5}
_GIB = 1024 ** 3


class ModelLoadError(ValueError):
    """A model cannot be loaded: ``"<file>: <key> = <value>: <what is wrong>; <what to do>"``."""

    def __init__(self, where: str, problem: str, remedy: str = ""):
        self.where, self.problem, self.remedy = where, problem, remedy
        super().__init__(f"{where}: {problem}" + (f"; {remedy}" if remedy else ""))


def model_where(spec, key: str = "name", value: bool = True) -> str:
    """``"params/x.yaml: model.name = 'org/m'"``: the params file and key a spec came from.

    ``sgvalues.params`` notes each model section's file and key (``spec.origin``); a spec
    built in code says ``<params>: model``. ``value=False`` leaves out `` = <value>``.

    >>> from sgvalues.params import ModelSpec
    >>> model_where(ModelSpec(name="org/m")), model_where(ModelSpec(), "system_role", value=False)
    ("<params>: model.name = 'org/m'", '<params>: model.system_role')
    """
    source, section = getattr(spec, "origin", None) or ("<params>", "model")
    where = f"{source}: {section}.{key}"
    return f"{where} = {getattr(spec, key, None)!r}" if value else where


def hf_cache_dir() -> str:
    """The Hugging Face hub cache in use (``HF_HUB_CACHE``, else ``HF_HOME/hub``)."""
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
        return os.environ.get("HF_HUB_CACHE") or str(Path(home) / "hub")


def _looks_like_path(name: str) -> bool:
    if name.startswith(("/", "./", "../", "~", ".\\")) or "\\" in name or name.count("/") > 1:
        return True
    first = name.split("/")[0]
    return "/" in name and Path(first).expanduser().is_dir()


def resolve_model_path(spec) -> tuple[str, bool]:
    """``(path_or_hub_id, is_local)`` for ``spec.name`` (the embedded name -> its cached folder).

    Raises
    ------
    ModelLoadError
        for a name that reads as a local path (absolute, ``./``, ``~``, or under a folder that
        exists here) but is no folder with a ``config.json``.

    Examples
    --------
    >>> from sgvalues.params import ModelSpec
    >>> resolve_model_path(ModelSpec(name="Qwen/Qwen2.5-7B-Instruct"))
    ('Qwen/Qwen2.5-7B-Instruct', False)
    >>> resolve_model_path(ModelSpec(name="/no/such/folder"))
    Traceback (most recent call last):
    ...
    sgvalues.models.loading.ModelLoadError: <params>: model.name = '/no/such/folder': no such folder ...
    """
    from sgvalues.models.embedded import EMBEDDED_NAME, embedded_model_dir

    name = spec.name
    if name == EMBEDDED_NAME:
        return str(embedded_model_dir()), True
    p = Path(name).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ModelLoadError(model_where(spec), f"the folder {p} has no config.json",
                                 "expected a folder written by save_pretrained (config.json, weights, tokenizer)")
        return str(p), True
    if _looks_like_path(name):
        raise ModelLoadError(model_where(spec), f"no such folder ({p.resolve()})",
                             "expected a local model folder (config.json, weights, tokenizer), a Hugging Face hub "
                             "id such as 'Qwen/Qwen2.5-7B-Instruct', or 'smollm2-135m' (the embedded model)")
    return name, False


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def explain(exc: BaseException, spec) -> ModelLoadError | None:
    """The :class:`ModelLoadError` for an exception raised while loading ``spec``, or ``None``.

    Read from the exception and its causes: a ``GatedRepoError`` or "gated repo" (gated model),
    ``LocalEntryNotFoundError``/``OfflineModeIsEnabled`` or "couldn't connect" (not cached while
    offline), ``RepositoryNotFoundError`` or "not a valid model identifier" (unknown id).

    Examples
    --------
    >>> from sgvalues.params import ModelSpec
    >>> err = OSError("We couldn't connect to 'https://huggingface.co' to load the files")
    >>> explain(err, ModelSpec(name="org/m")).problem.startswith("not in the local Hugging Face cache")
    True
    >>> explain(KeyError("x"), ModelSpec(name="org/m")) is None
    True
    """
    chain = _chain(exc)
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain).lower()
    name = spec.name
    where = model_where(spec)
    if "GatedRepoError" in names or "gated repo" in text:
        token = "HF_TOKEN is set but has no access" if os.environ.get("HF_TOKEN") else "no HF_TOKEN is set"
        return ModelLoadError(where, f"a gated model on the Hugging Face hub ({token})",
                              f"accept its licence at https://huggingface.co/{name}, then export HF_TOKEN=hf_... "
                              f"(a read token) and run `hf download {name}` once")
    if names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"} or "couldn't connect" in text \
            or "offline" in text:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        why = "HF_HUB_OFFLINE=1" if offline else "the hub cannot be reached"
        return ModelLoadError(where, f"not in the local Hugging Face cache ({hf_cache_dir()}) and {why}",
                              f"download it once where there is network: `hf download {name}` (gated models need "
                              "HF_TOKEN), then run with HF_HUB_OFFLINE=1; or set model.name to a local folder")
    if "RepositoryNotFoundError" in names or "not a valid model identifier" in text \
            or "is not a local folder" in text:
        return ModelLoadError(where, "no such model on the Hugging Face hub (or a private one)",
                              "check the spelling (org/name), or export HF_TOKEN for a private model")
    return None


@contextlib.contextmanager
def load_errors(spec):
    """Turn what loading raises (``OSError``, hub errors) into :class:`ModelLoadError` where it is known."""
    try:
        yield
    except ModelLoadError:
        raise
    except Exception as exc:
        mapped = explain(exc, spec)
        if mapped is None:
            raise
        raise mapped from exc


def ensure_pad_token(tokenizer, spec=None):
    """Give a tokenizer without a pad token its eos token as pad (returns the tokenizer).

    Padding never reaches a loss or a score here (right padding sits after every real token
    under the causal mask; left padding is masked in generation), so any id would do; eos is
    what transformers itself falls back to. A tokenizer with neither is an error naming the key.

    Examples
    --------
    >>> class Tok:
    ...     pad_token_id, pad_token, eos_token, eos_token_id = None, None, "</s>", 2
    >>> ensure_pad_token(Tok()).pad_token
    '</s>'
    """
    if getattr(tokenizer, "pad_token_id", None) is not None:
        return tokenizer
    if getattr(tokenizer, "eos_token", None) is None:
        where = model_where(spec) if spec is not None else "model.name"
        raise ModelLoadError(where, "its tokenizer has neither a pad token nor an eos token",
                             "set pad_token (or eos_token) in the model folder's tokenizer_config.json")
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_tokenizer(path: str, spec):
    """``AutoTokenizer.from_pretrained(path)`` with loading errors explained and a pad token set."""
    from transformers import AutoTokenizer

    with load_errors(spec):
        tokenizer = AutoTokenizer.from_pretrained(path)
    return ensure_pad_token(tokenizer, spec)


def weight_bytes(config, dtype: str = "float32", quantization: str | None = None) -> tuple[int, float]:
    """``(n_parameters, bytes)`` of a model's weights, counted on the meta device from its config.

    .. math:: \\text{bytes} = N \\cdot b, \\qquad b = 4\\ (\\text{fp32}),\\ 2\\ (\\text{bf16/fp16}),\\
       1\\ (\\text{8bit}),\\ 0.5\\ (\\text{4bit})

    No weight is allocated or read. Activations and the KV cache come on top.

    Examples
    --------
    >>> from transformers import LlamaConfig
    >>> cfg = LlamaConfig(vocab_size=100, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
    ...                   num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False)
    >>> n, b = weight_bytes(cfg, "bfloat16")
    >>> n == 2 * 100 * 8 + 4 * 8 * 8 + 3 * 8 * 16 + 3 * 8, b == 2 * n
    (True, True)
    """
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        try:
            model = AutoModelForCausalLM.from_config(config)
        except ValueError:
            from transformers import AutoModelForImageTextToText

            model = AutoModelForImageTextToText.from_config(config)
    n = sum(p.numel() for p in model.parameters())
    per = _BYTES[quantization] if quantization else _BYTES.get(dtype, 4.0)
    return int(n), n * per


def available_memory(device: str) -> float:
    """Free bytes on ``device``: CUDA's free memory, else the machine's available RAM; infinite for
    a CUDA device this torch cannot see (nothing to measure: the load itself then says why)."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return float("inf")
        index = torch.device(device).index or 0
        return float(torch.cuda.mem_get_info(index)[0])
    try:
        import psutil  # a dependency of accelerate
    except ImportError:  # pragma: no cover
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return float(psutil.virtual_memory().available)


def check_memory(path: str, spec, dtype: str, device: str, quantization: str | None = None,
                 free: float | None = None) -> None:
    """Raise :class:`ModelLoadError` when the weights alone exceed the free memory of ``device``.

    ``free`` defaults to :func:`available_memory`. A config that cannot be instantiated on the
    meta device is not checked (the load itself then decides).
    """
    from transformers import AutoConfig

    with load_errors(spec):
        config = AutoConfig.from_pretrained(path)
    try:
        n, need = weight_bytes(config, dtype, quantization)
    except Exception:  # an architecture this transformers cannot build from its config
        return
    free = available_memory(device) if free is None else free
    if need > free:
        smaller = "4bit" if quantization == "8bit" else "8bit"
        raise ModelLoadError(
            model_where(spec),
            f"too large for this machine: {n / 1e9:.2f} B parameters need about {need / _GIB:.1f} GiB for the "
            f"weights in {quantization or dtype}, and {device} has {free / _GIB:.1f} GiB free",
            f"set model.quantization: {smaller} (CUDA with bitsandbytes), choose a smaller model, or serve it "
            "with vLLM on a larger GPU and use model.backend: openai with model.base_url")
