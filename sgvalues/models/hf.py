"""Local transformers models, with a prefix-sharing engine for option scoring.

``HFModel`` loads a causal LM (local folder, hub name, or ``"smollm2-135m"`` = the embedded
model) with its tokenizer and chat template; bf16 on CUDA, fp32 on CPU unless the spec says
otherwise; an optional peft LoRA adapter is merged into the weights (same outputs, no adapter
overhead at inference).
``spec.quantization`` (``"8bit"``/``"4bit"``) loads the weights through bitsandbytes on CUDA
(:func:`quantization_config`; unquantized with a warning where CUDA or bitsandbytes is missing),
and checkpoints that ship only as image-text-to-text models (the paper's judge,
Mistral-Small-3.1-24B) load through that class and are used text-only (:func:`load_language_model`).

The scoring engine
------------------
Every subgroup of a question sees the same ``[system, user_shared]`` text and differs only in
the persona sentence at the end. ``score_options``:

1. renders each prompt with the chat template and generation prompt and tokenises it;
2. groups prompts (by ``ScoreRequest.group`` when given, otherwise by sorting token sequences
   and cutting where neighbours share little) and takes each group's longest common token
   prefix -- computed on the token ids, so it is exactly the tokens a full-prompt forward
   would see;
3. runs the prefix once, keeps its KV cache, and runs the persona suffixes in batches of
   similar length against a *copy* of that cache expanded across the batch (the shared cache
   is never mutated);
4. appends the option-code branch tokens (``scoring.code_branches``: none when every code is
   one token, ``"1"`` when ``"10"`` is ``"1","0"``) and sends only the positions whose
   next-token distribution the scoring rule reads through ``lm_head``;
5. turns those distributions into option probabilities (``scoring.option_probabilities``).

Prompts that share no prefix with another (singletons) are batched together as full prompts.
Suffixes are right-padded: padding sits after every real token, so under the causal mask it
can never be attended to and the result does not depend on how rows are batched (up to
floating-point summation order).
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Sequence

from sgvalues.models.base import Answer, GenerateRequest, Model, ScoreRequest
from sgvalues.models.cache import adapter_identity
from sgvalues.models.chat import render_chat, rendering_for
from sgvalues.models.embedded import quiet_transformers
from sgvalues.models.loading import check_memory, load_errors, load_tokenizer, model_where, resolve_model_path
from sgvalues.models.scoring import code_branches, needed_tokens, option_probabilities

__all__ = ["HFModel", "resolve_model_path", "quantization_config", "load_language_model", "common_prefix_len",
           "cluster_by_prefix", "padded_batch", "batch_chunks"]


def _bitsandbytes_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("bitsandbytes") is not None


def quantization_config(quantization: str | None, device_type: str, bnb_available: bool | None = None):
    """The ``BitsAndBytesConfig`` for ``ModelSpec.quantization`` on this device, or ``None``.

    Parameters
    ----------
    quantization : ``None``, ``"8bit"`` or ``"4bit"``.
    device_type : the torch device type the model goes to (``"cuda"``, ``"cpu"``, ...).
    bnb_available : whether ``bitsandbytes`` can be imported (default: looked up).

    Returns
    -------
    (config, used) : ``BitsAndBytesConfig(load_in_8bit=True)`` (or ``load_in_4bit=True``) and
        the quantization applied; ``(None, None)`` when none is asked for, or -- with a
        ``UserWarning`` saying why -- when there is no CUDA device or no bitsandbytes: the model
        then loads unquantized (bf16 on CUDA, fp32 on CPU), which changes its answers slightly
        and needs about twice (8bit) or four times (4bit) the memory. Nothing is downloaded or
        installed.

    Examples
    --------
    >>> quantization_config(None, "cuda")
    (None, None)
    >>> cfg, used = quantization_config("8bit", "cuda", bnb_available=True)
    >>> cfg.load_in_8bit, used
    (True, '8bit')
    """
    if quantization is None:
        return None, None
    if quantization not in ("8bit", "4bit"):
        raise ValueError(f"quantization = {quantization!r}: expected null, '8bit' or '4bit'")
    if bnb_available is None:
        bnb_available = _bitsandbytes_importable()
    missing = []
    if device_type != "cuda":
        missing.append(f"a CUDA device (the model goes to {device_type!r})")
    if not bnb_available:
        missing.append("the bitsandbytes package (pip install bitsandbytes)")
    if missing:
        import warnings

        warnings.warn(f"quantization = {quantization!r} needs {' and '.join(missing)}; loading the model "
                      "unquantized instead (more memory, slightly different answers)", UserWarning, stacklevel=2)
        return None, None
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True), "8bit"
    import torch

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16), "4bit"


def load_language_model(path: str, **kwargs):
    """``AutoModelForCausalLM.from_pretrained(path, **kwargs)``, or the image-text-to-text class
    for checkpoints that only ship as one (e.g. Mistral-Small-3.1-24B-Instruct-2503, the paper's
    judge: ``Mistral3ForConditionalGeneration``), used text-only: its decoder, ``lm_head`` and
    ``generate`` take token ids like any causal LM."""
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except ValueError as exc:
        if "Unrecognized configuration class" not in str(exc):
            raise
        from transformers import AutoModelForImageTextToText

        try:
            return AutoModelForImageTextToText.from_pretrained(path, **kwargs)
        except ValueError:
            raise exc from None


def _local_model_id(path: Path) -> str:
    # hashing multi-GB weights on every load is too slow; config + weight file names and sizes
    # change whenever the weights are replaced
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()[:12]


def _stream_seed(seed: int, text: str) -> int:
    """A 63-bit seed of one request's random stream: ``seed`` and the prompt, nothing else."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{int(seed)}\0{text}".encode()).digest()[:8], "big") >> 1


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences.

    >>> common_prefix_len([1, 2, 3], [1, 2, 4, 5])
    2
    """
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def cluster_by_prefix(seqs: Sequence[Sequence[int]], min_share: float = 0.5) -> list[list[int]]:
    """Cluster sequences that share a long prefix: sort, cut where neighbours share < ``min_share``.

    The cut compares the neighbours' common prefix with the shorter of the two lengths. Used
    when requests carry no ``group``.

    >>> cluster_by_prefix([[1, 2, 3, 9], [5, 6], [1, 2, 3, 8], [5, 7], [8]])
    [[0, 2], [1, 3], [4]]
    """
    if not seqs:
        return []
    order = sorted(range(len(seqs)), key=lambda i: list(seqs[i]))
    clusters = [[order[0]]]
    for prev, i in zip(order, order[1:]):
        share = common_prefix_len(seqs[prev], seqs[i])
        if share >= max(1, min_share * min(len(seqs[prev]), len(seqs[i]))):
            clusters[-1].append(i)
        else:
            clusters.append([i])
    return [sorted(c) for c in clusters]


def padded_batch(seqs: Sequence[Sequence[int]], pad: int, side: str = "right"):
    """``(ids, mask)`` long tensors of shape (rows, longest): ``seqs`` padded with ``pad``.

    ``side="right"`` puts the padding after each row's tokens (the scoring engine: under the
    causal mask no real token attends to it); ``"left"`` before them (generation appends at the
    right edge). ``mask`` is 1 on real tokens.

    >>> ids, mask = padded_batch([[5, 6, 7], [8]], pad=0, side="left")
    >>> ids.tolist(), mask.tolist()
    ([[5, 6, 7], [0, 0, 8]], [[1, 1, 1], [0, 0, 1]])
    """
    import torch

    width = max(len(q) for q in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, q in enumerate(seqs):
        span = slice(0, len(q)) if side == "right" else slice(width - len(q), width)
        ids[r, span] = torch.tensor(list(q), dtype=torch.long)
        mask[r, span] = 1
    return ids, mask


def batch_chunks(order: Sequence[int], key, size: int) -> list[list[int]]:
    """Consecutive runs of ``order`` with equal ``key(i)``, at most ``size`` long.

    Generation batches requests that share decoding settings; ``order`` is already sorted so
    that equal keys (and similar lengths) sit together.

    >>> batch_chunks([0, 1, 2, 3, 4], key=lambda i: i < 3, size=2)
    [[0, 1], [2], [3, 4]]
    """
    chunks: list[list[int]] = []
    for i in order:
        if chunks and len(chunks[-1]) < size and key(chunks[-1][0]) == key(i):
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


def _returned_cache(out, sent):
    """The key/value cache a forward pass returns, else the one it was sent.

    transformers 5 names it ``cache``; before, ``past_key_values`` (now a deprecated alias whose
    read warns on stderr), so the new name is read first.
    """
    return getattr(out, "cache", None) or getattr(out, "past_key_values", None) or sent


class HFModel(Model):
    """A transformers causal LM behind the :class:`~sgvalues.models.base.Model` interface.

    Parameters
    ----------
    spec : ``ModelSpec`` with ``backend="hf"``.
    adapter : LoRA adapter folder (overrides ``spec.adapter``); merged into the weights.
    batch_size : rows per forward pass in ``score_options`` and ``generate``.
    """

    backend = "hf"
    exact_logprobs = True

    def __init__(self, spec, adapter: str | Path | None = None, batch_size: int = 16):
        import torch

        self.spec = spec
        self.batch_size = int(batch_size)
        path, local = resolve_model_path(spec)
        self.path = path
        if spec.device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        else:
            device = spec.device
        self.device = torch.device(device)
        if spec.dtype == "auto":
            dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        else:
            dtype = getattr(torch, spec.dtype)
        self.dtype = dtype
        if spec.cpu_threads and self.device.type == "cpu":
            torch.set_num_threads(int(spec.cpu_threads))
        self.tokenizer = load_tokenizer(path, spec)
        self.rendering = rendering_for(self.tokenizer, getattr(spec, "system_role", "auto"),
                                       model_where(spec, "system_role", value=False))
        quiet_transformers()
        quant, self.quantization = quantization_config(getattr(spec, "quantization", None), self.device.type)
        check_memory(path, spec, str(dtype).replace("torch.", ""), str(self.device), self.quantization)
        with load_errors(spec):
            if quant is not None:
                # bitsandbytes places the quantized weights itself; .to() is not allowed afterwards
                model = load_language_model(path, dtype=dtype, quantization_config=quant,
                                            device_map={"": self.device.index or 0})
            else:
                model = load_language_model(path, dtype=dtype)
        adapter = adapter if adapter is not None else spec.adapter
        if adapter and quant is not None:
            raise ValueError(f"adapter {adapter!r} with quantization = {self.quantization!r}: merging a LoRA "
                             "adapter into quantized weights is not supported; set quantization: null")
        self.adapter_path = str(adapter) if adapter else None
        self.adapter_id = adapter_identity(adapter) if adapter else ""
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        self.model = (model if quant is not None else model.to(self.device)).eval()
        self.config = self.model.config
        self.decoder = self.model.get_decoder()
        self.lm_head = self.model.get_output_embeddings()
        self._softcap = getattr(self.config.get_text_config(), "final_logit_softcapping", None)
        # transformers 5.x renamed past_key_values -> cache; accept either
        params = inspect.signature(self.decoder.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        base = spec.name if not local or spec.name == "smollm2-135m" else Path(path).name
        self.model_id = f"hf:{base}" + (f"@{_local_model_id(Path(path))}" if local else "") + \
            (f"+{self.quantization}" if self.quantization else "")
        self._code_cache: dict[tuple, dict[str, tuple[int, ...]]] = {}
        self.calls = 0
        self.tokens_processed = 0  # tokens through the decoder (for FLOP accounting)
        self.head_rows = 0  # rows through lm_head
        self.flops = 0.0  # matmul FLOPs of scoring passes (see forward_flops)
        self._body_params = sum(p.numel() for n, p in self.decoder.named_parameters() if "embed" not in n)

    # ------------------------------------------------------------------ helpers
    def decoding_key(self) -> dict:
        key = {"dtype": str(self.dtype).replace("torch.", "")}
        if self.rendering == "folded":  # the same messages render to other text
            key["rendering"] = "folded"
        return key

    def render(self, messages) -> str:
        """The chat-template text with the generation prompt (what the model continues).

        The system message is folded into the first user turn where this model's rendering is
        ``folded`` (:mod:`sgvalues.models.chat`); without a chat template (a base model) a plain
        transcript ends where the assistant speaks.
        """
        return render_chat(self.tokenizer, messages, self.rendering)

    def prompt_ids(self, messages) -> list[int]:
        # chat templates carry their own BOS; add_special_tokens=False avoids a second one
        return self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"]

    def _code_tokens(self, codes: tuple[str, ...], prompt_text: str) -> dict[str, tuple[int, ...]]:
        """Token ids of each code as it would follow the generation prompt."""
        tail = prompt_text[-64:]  # the generation prompt decides how the answer tokenises
        key = (codes, tail)
        if key in self._code_cache:
            return self._code_cache[key]
        base = self.tokenizer(tail, add_special_tokens=False)["input_ids"]
        out = {}
        for c in codes:
            ids = self.tokenizer(tail + c, add_special_tokens=False)["input_ids"]
            if ids[: len(base)] == base and len(ids) > len(base):
                out[c] = tuple(ids[len(base):])
            else:  # the code merged with the prompt's last token: tokenise it on its own
                out[c] = tuple(self.tokenizer(c, add_special_tokens=False)["input_ids"])
        self._code_cache[key] = out
        return out

    def _forward_hidden(self, input_ids, position_ids, cache, attention_mask=None):
        import torch

        kwargs = {self._cache_kw: cache} if cache is not None else {}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        with torch.inference_mode():
            out = self.decoder(input_ids=input_ids, position_ids=position_ids,
                               use_cache=cache is not None, **kwargs)
        self.calls += 1
        self.tokens_processed += int(input_ids.numel())
        b, t = input_ids.shape
        past = int(position_ids[0, 0]) if position_ids is not None else 0
        self.flops += self.forward_flops(b, t, past)
        return out

    def forward_flops(self, batch: int, new: int, past: int = 0, head_rows: int = 0) -> float:
        """Matmul FLOPs of a decoder pass over ``new`` tokens after ``past`` cached ones.

        ``2·N·B·T`` for the weight matmuls (``N`` = decoder parameters without embeddings) plus
        ``4·L·H·d·B·(T·past + T(T+1)/2)`` for attention scores and values, plus
        ``2·V·D·head_rows`` for ``lm_head``.
        """
        c = self.config.get_text_config()
        n_heads = c.num_attention_heads
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // n_heads
        attn = 4 * c.num_hidden_layers * n_heads * head_dim * batch * (new * past + new * (new + 1) / 2)
        head = 2 * c.vocab_size * c.hidden_size * head_rows
        return 2.0 * self._body_params * batch * new + attn + head

    def _head_logprobs(self, hidden):
        import torch

        with torch.inference_mode():
            logits = self.lm_head(hidden).float()
            if self._softcap:
                logits = torch.tanh(logits / self._softcap) * self._softcap
            self.head_rows += int(hidden.shape[0])
            self.flops += self.forward_flops(0, 0, 0, head_rows=int(hidden.shape[0]))
            return torch.log_softmax(logits, dim=-1)

    #: prompt prefixes whose KV cache is kept between calls (least recently used dropped first)
    PREFIX_CACHE_SIZE = 48

    def _prefix_cache(self, prefix: Sequence[int]):
        """KV cache of ``prefix`` (one row), from the longest prefix of it already computed.

        Kept between calls, so passes that ask the same questions in other persona formats or
        readouts (chapter 09) compute each question's shared text once. The stored tensors are
        never written to (:meth:`_expanded_cache`).
        """
        import torch
        from transformers import DynamicCache

        key = tuple(int(t) for t in prefix)
        store = self.__dict__.setdefault("_prefixes", {})
        if key in store:
            store[key] = store.pop(key)  # most recently used last
            return store[key]
        start, kv = 0, None
        for k in store:
            if start < len(k) < len(key) and key[:len(k)] == k:
                start, kv = len(k), store[k]
        ids = torch.tensor([list(key[start:])], device=self.device)
        pos = torch.arange(start, len(key), device=self.device).unsqueeze(0)
        cache = self._expanded_cache(kv, 1) if kv is not None else DynamicCache(config=self.config)
        out = self._forward_hidden(ids, pos, cache)
        cache = _returned_cache(out, cache)
        store[key] = [(k, v) for k, v, *_ in cache]
        while len(store) > self.PREFIX_CACHE_SIZE:
            store.pop(next(iter(store)))
        return store[key]

    def _expanded_cache(self, kv, batch: int):
        from transformers import DynamicCache

        # expand() is a view; DynamicCache.update concatenates into new tensors, so the
        # shared prefix cache is never written to
        data = [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in kv]
        return DynamicCache(data, config=self.config)

    # ------------------------------------------------------------------ scoring
    def score_options(self, requests: Sequence[ScoreRequest]) -> list[dict[str, float]]:
        return [a.probs for a in self.score_answers(requests)]

    def score_answers(self, requests: Sequence[ScoreRequest], share_prefix: bool = True) -> list[Answer]:
        """Option probabilities per request (engine above); ``share_prefix=False`` = full prompts."""
        requests = list(requests)
        if not requests:
            return []
        texts = [self.render(r.messages) for r in requests]
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        results: list[Answer | None] = [None] * len(requests)
        by_codes: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            by_codes.setdefault(tuple(r.option_codes), []).append(i)
        for codes, idxs in by_codes.items():
            code_toks = self._code_tokens(codes, texts[idxs[0]])
            branches = code_branches(code_toks)
            need = needed_tokens(code_toks)
            # groups of prompts that share a prefix; singletons pooled as full prompts
            if share_prefix:
                groups: dict = {}
                for i in idxs:
                    g = getattr(requests[i], "group", None)
                    groups.setdefault(g, []).append(i)
                clusters = []
                for g, members in groups.items():
                    if g is None:
                        clusters += [[members[j] for j in c] for c in cluster_by_prefix([ids[i] for i in members])]
                    else:
                        clusters.append(members)
            else:
                clusters = [[i] for i in idxs]
            pool = [c[0] for c in clusters if len(c) == 1]
            work = [(c, True) for c in clusters if len(c) > 1] + ([(pool, False)] if pool else [])
            for members, shared in work:
                prefix_len = 0
                if shared:
                    prefix_len = min(len(ids[i]) for i in members) - 1
                    first = ids[members[0]]
                    for i in members[1:]:
                        prefix_len = min(prefix_len, common_prefix_len(first, ids[i]))
                node_lps = self._score_rows(members, ids, prefix_len, branches, need)
                for i in members:
                    sc = option_probabilities(code_toks, node_lps[i])
                    top_id = node_lps[i]["__top__"]
                    results[i] = Answer(probs=sc.probs, info={
                        "option_mass": round(sc.option_mass, 6),
                        "top_token": self.tokenizer.decode([top_id]),
                    })
        return results  # type: ignore[return-value]

    def _score_rows(self, members, ids, prefix_len, branches, need):
        """Next-token log-probs at every internal trie node for each member (engine core)."""
        import torch

        kv = self._prefix_cache(ids[members[0]][:prefix_len]) if prefix_len > 0 else None
        rows = [(i, b) for i in members for b in branches]
        # group by length so padding stays small; stable order keeps runs deterministic
        rows.sort(key=lambda r: (len(ids[r[0]]) + len(r[1])))
        pad = self.tokenizer.pad_token_id
        out: dict[int, dict] = {i: {} for i in members}
        # near-equal batches (51 rows at batch_size 16 -> 13+13+13+12, not 16+16+16+3)
        n_batches = -(-len(rows) // self.batch_size)
        bounds = [round(k * len(rows) / n_batches) for k in range(n_batches + 1)]
        for lo, hi in zip(bounds, bounds[1:]):
            chunk = rows[lo:hi]
            seqs = [list(ids[i][prefix_len:]) + list(b) for i, b in chunk]
            width = max(len(q) for q in seqs)
            batch = padded_batch(seqs, pad, "right")[0].to(self.device)
            pos = (torch.arange(width, device=self.device) + prefix_len).unsqueeze(0).expand(len(chunk), -1)
            cache = self._expanded_cache(kv, len(chunk)) if kv is not None else None
            hidden = self._forward_hidden(batch, pos, cache).last_hidden_state
            # only the positions whose next-token distribution the rule reads go through lm_head
            sel_r, sel_t, owners = [], [], []
            for r, ((i, b), q) in enumerate(zip(chunk, seqs)):
                last = len(q) - len(b) - 1
                for j in range(len(b) + 1):
                    sel_r.append(r)
                    sel_t.append(last + j)
                    owners.append((i, tuple(b[:j])))
            h = hidden[torch.tensor(sel_r, device=self.device), torch.tensor(sel_t, device=self.device)]
            lp = self._head_logprobs(h)
            top = lp.argmax(dim=-1).tolist()
            lp_cpu = lp.cpu()
            for k, (i, node) in enumerate(owners):
                if node in need:
                    toks = need[node]
                    vals = lp_cpu[k, toks].double().numpy()
                    out[i][node] = dict(zip(toks, vals.tolist()))
                if node == ():
                    out[i]["__top__"] = top[k]
        return out

    # ------------------------------------------------------------------ generation
    def generate_answers(self, requests: Sequence[GenerateRequest]) -> list[Answer]:
        import torch

        requests = list(requests)
        if not requests:
            return []
        ids = [self.prompt_ids(r.messages) for r in requests]
        pad = self.tokenizer.pad_token_id
        results: list[Answer | None] = [None] * len(requests)
        # same decoding settings batch together; within them, by length
        def settings(i):
            return requests[i].max_new_tokens, requests[i].temperature, requests[i].seed

        keyed = sorted(range(len(requests)), key=lambda i: (*settings(i), len(ids[i])))
        for chunk in batch_chunks(keyed, settings, self.batch_size):
            r0 = requests[chunk[0]]
            # left padding: generation appends at the right edge of every row
            batch, mask = padded_batch([ids[i] for i in chunk], pad, "left")
            width = batch.shape[1]
            kwargs = dict(max_new_tokens=r0.max_new_tokens, pad_token_id=pad)
            if r0.temperature > 0:
                torch.manual_seed(r0.seed)
                kwargs.update(do_sample=True, temperature=r0.temperature, top_p=1.0, top_k=0)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.inference_mode():
                gen = self.model.generate(input_ids=batch.to(self.device), attention_mask=mask.to(self.device),
                                          **kwargs)
            self.calls += 1
            new = gen[:, width:].cpu()
            for r, i in enumerate(chunk):
                text = self.tokenizer.decode(new[r], skip_special_tokens=True)
                results[i] = Answer(text=text.strip())
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------ generate + probabilities
    def _eos_ids(self) -> set[int]:
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def generate_scored(self, requests: Sequence[ScoreRequest], temperature: float = 0.0) -> list[Answer]:
        """Generated answer and option probabilities from one generation pass (mode ``generate_logprob``).

        The answer is decoded (greedy, or sampled with ``temperature``) with the model's raw
        next-token scores kept at every step (``output_logits``). The step-0 scores are the
        distribution after the generation prompt -- the root of the option-code trie
        (``scoring``) -- so when every code is one token the option probabilities come from
        that one pass, exactly as :meth:`score_answers` would compute them. A code of two
        tokens (``"10"`` = ``"1"``, ``"0"`` in digit-splitting tokenizers) also needs the
        distribution after ``"1"``: the pass has it when the answer itself began with ``"1"``;
        otherwise those few requests are scored by the engine afterwards
        (``info["probs_from"]``: ``"generation"`` or ``"engine"``).
        """
        import torch

        requests = list(requests)
        if not requests:
            return []
        texts = [self.render(r.messages) for r in requests]
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        pad = self.tokenizer.pad_token_id
        eos = self._eos_ids()
        results: list[Answer | None] = [None] * len(requests)
        keyed = sorted(range(len(requests)), key=lambda i: (requests[i].max_new_tokens, len(ids[i])))
        fallback: list[int] = []
        for chunk in batch_chunks(keyed, lambda i: requests[i].max_new_tokens, self.batch_size):
            batch, mask = padded_batch([ids[i] for i in chunk], pad, "left")
            width = batch.shape[1]
            kwargs = dict(max_new_tokens=requests[chunk[0]].max_new_tokens, pad_token_id=pad,
                          output_logits=True, return_dict_in_generate=True)
            if temperature > 0:
                torch.manual_seed(0)
                kwargs.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.inference_mode():
                gen = self.model.generate(input_ids=batch.to(self.device), attention_mask=mask.to(self.device),
                                          **kwargs)
            self.calls += 1
            new = gen.sequences[:, width:].cpu()
            steps = gen.logits  # one (batch, vocab) tensor per decoding step, before any processing
            for r, i in enumerate(chunk):
                toks = new[r].tolist()
                stop = next((j + 1 for j, t in enumerate(toks) if t in eos), len(toks))
                code_toks = self._code_tokens(tuple(requests[i].option_codes), texts[i])
                need = needed_tokens(code_toks)
                node_lps: dict = {}
                top_id = None
                for j in range(min(stop, len(steps))):
                    node = tuple(toks[:j])
                    if j == 0 or node in need:
                        lp = torch.log_softmax(steps[j][r].float(), dim=-1)
                        if j == 0:
                            top_id = int(lp.argmax())
                        if node in need:
                            vals = lp[need[node]].double().cpu().numpy()
                            node_lps[node] = dict(zip(need[node], vals.tolist()))
                text = self.tokenizer.decode(new[r], skip_special_tokens=True).strip()
                info = {"top_token": self.tokenizer.decode([top_id]) if top_id is not None else ""}
                if all(node in node_lps for node in need):
                    sc = option_probabilities(code_toks, node_lps)
                    info.update(option_mass=round(sc.option_mass, 6), probs_from="generation")
                    results[i] = Answer(probs=sc.probs, text=text, info=info)
                else:
                    results[i] = Answer(text=text, info=info)
                    fallback.append(i)
        if fallback:
            for i, a in zip(fallback, self.score_answers([requests[i] for i in fallback])):
                results[i].probs = a.probs  # type: ignore[union-attr]
                results[i].info.update(option_mass=a.info.get("option_mass"), probs_from="engine")  # type: ignore[union-attr]
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------ sampled answers
    def sample_texts(self, requests: Sequence[ScoreRequest], n: int, max_new_tokens: int = 8,
                     temperature: float = 1.0, seed: int = 0, stop=None) -> list[list[str]]:
        """``n`` answers per request sampled at ``temperature`` (one greedy answer when it is 0).

        ``stop(text, option_codes) -> bool``: a row stops decoding once its text so far makes it
        true (an answer whose parse can no longer change), which saves the rest of its tokens.

        The prompt is run once: the prefix shared by a group's requests (the question, as in
        :meth:`score_answers`) from one cache, the request's own suffix once, and only then is
        its cache widened to ``n`` rows that decode side by side. Each request draws from its
        own ``torch.Generator``, seeded by ``seed`` and a hash of its rendered prompt, so its
        answers do not depend on batching, order or the other requests.
        """
        if n < 1:
            raise ValueError(f"n = {n}: expected >= 1 answers per request")
        if temperature < 0:
            raise ValueError(f"temperature = {temperature}: expected >= 0")
        requests = list(requests)
        texts = [self.render(r.messages) for r in requests]
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        rows = 1 if temperature == 0 else int(n)
        groups: dict = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.group if r.group is not None else ("#", i), []).append(i)
        out: list[list[str] | None] = [None] * len(requests)
        eos = self._eos_ids()
        for members in groups.values():
            prefix_len = 0
            if len(members) > 1:
                prefix_len = min(len(ids[i]) for i in members) - 1
                for i in members[1:]:
                    prefix_len = min(prefix_len, common_prefix_len(ids[members[0]], ids[i]))
            kv = self._prefix_cache(ids[members[0]][:prefix_len]) if prefix_len > 0 else None
            # one token per row per step: decoding rows are cheap, so a batch takes 4x batch_size of them
            per_batch = max(1, (4 * self.batch_size) // rows)
            for lo in range(0, len(members), per_batch):
                chunk = members[lo:lo + per_batch]
                texts_out = self._sample_rows([ids[i] for i in chunk], prefix_len, kv, rows, max_new_tokens,
                                              temperature, [_stream_seed(seed, texts[i]) for i in chunk], eos, stop,
                                              [requests[i].option_codes for i in chunk])
                for i, t in zip(chunk, texts_out):
                    out[i] = t
        return out  # type: ignore[return-value]

    def _sample_rows(self, seqs, prefix_len, kv, rows, max_new_tokens, temperature, streams, eos,
                     stop=None, codes=None) -> list[list[str]]:
        """Decode ``rows`` answers for each prompt of ``seqs`` (sharing ``prefix_len`` tokens cached in ``kv``).

        The prompts' suffixes are right-padded into one batch, each repeated ``rows`` times; the
        attention mask hides the padding from every later token and positions count real tokens
        only, so each row decodes as its prompt alone would.
        """
        import torch
        from transformers import DynamicCache

        m = len(seqs)
        lens = [len(q) - prefix_len for q in seqs]
        width = max(lens)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        suffix = torch.tensor([list(q[prefix_len:]) + [pad] * (width - n) for q, n in zip(seqs, lens)
                               for _ in range(rows)], device=self.device)
        b = m * rows
        pos = (torch.arange(width, device=self.device) + prefix_len).unsqueeze(0).expand(b, -1)
        real = torch.tensor([[1] * n + [0] * (width - n) for n in lens for _ in range(rows)], dtype=torch.long)
        mask = torch.cat([torch.ones(b, prefix_len, dtype=torch.long), real], dim=1)
        cache = self._expanded_cache(kv, b) if kv is not None else DynamicCache(config=self.config)
        padded = width != min(lens)
        res = self._forward_hidden(suffix, pos, cache, mask.to(self.device) if padded else None)
        cache = _returned_cache(res, cache)
        last = torch.tensor([n - 1 for n in lens for _ in range(rows)], device=self.device)
        lp = self._head_logprobs(res.last_hidden_state[torch.arange(b, device=self.device), last])
        gens = [torch.Generator(device="cpu").manual_seed(int(st)) for st in streams]
        nxt_pos = torch.tensor([prefix_len + n for n in lens for _ in range(rows)], device=self.device)
        tokens: list[list[int]] = [[] for _ in range(b)]
        done = [False] * b
        for step in range(int(max_new_tokens)):
            if temperature == 0:
                nxt = lp.argmax(dim=-1).cpu()
            else:
                probs = torch.softmax(lp.float().cpu() / temperature, dim=-1)
                nxt = torch.cat([torch.multinomial(probs[k * rows:(k + 1) * rows], 1, generator=g).squeeze(1)
                                 for k, g in enumerate(gens)])
            for r in range(b):
                if not done[r]:
                    t = int(nxt[r])
                    done[r] = t in eos
                    if not done[r]:
                        tokens[r].append(t)
                        if stop is not None and stop(self.tokenizer.decode(tokens[r], skip_special_tokens=True),
                                                     codes[r // rows] if codes else ()):
                            done[r] = True
            if all(done) or step == int(max_new_tokens) - 1:
                break
            mask = torch.cat([mask, torch.ones(b, 1, dtype=torch.long)], dim=1)
            res = self._forward_hidden(nxt.view(b, 1).to(self.device), (nxt_pos + step).view(b, 1), cache,
                                       mask.to(self.device) if padded else None)
            cache = _returned_cache(res, cache)
            lp = self._head_logprobs(res.last_hidden_state[:, -1])
        decoded = [self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens]
        return [decoded[k * rows:(k + 1) * rows] for k in range(m)]

    def answer(self, requests, mode="logprob", temperature=0.0):
        if mode == "logprob":
            return self.score_answers(requests)
        if mode == "generate_logprob":
            return self.generate_scored(requests, temperature)
        return super().answer(requests, mode, temperature)

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]

