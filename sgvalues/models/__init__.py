"""Models behind one interface: score option codes, generate text (hf and openai backends).

``load_model(spec)`` returns a :class:`~sgvalues.models.base.Model`; the backends are imported
only when used, so ``import sgvalues.models`` needs neither torch nor openai.

Example
-------
>>> from sgvalues.models import ScoreRequest
>>> ScoreRequest([{"role": "user", "content": "1 or 2?"}], ("1", "2")).option_codes
('1', '2')
"""

from __future__ import annotations

from pathlib import Path

from sgvalues.models.base import (
    REFUSAL_PATTERNS,
    Answer,
    GenerateRequest,
    Model,
    ScoreRequest,
    classify_text,
    is_refusal,
    parse_option,
)
from sgvalues.models.cache import ResponseCache, adapter_identity, cache_key

__all__ = [
    "Answer",
    "GenerateRequest",
    "Model",
    "REFUSAL_PATTERNS",
    "ResponseCache",
    "ScoreRequest",
    "adapter_identity",
    "cache_key",
    "classify_text",
    "is_refusal",
    "load_model",
    "parse_option",
]


def load_model(spec, adapter: str | Path | None = None, batch_size: int = 16) -> Model:
    """Build the backend named by ``spec.backend`` (``hf`` or ``openai``).

    ``adapter`` (a LoRA folder, hf only) overrides ``spec.adapter``; ``batch_size`` is the
    number of rows per forward pass (hf).
    """
    if spec.backend == "hf":
        from sgvalues.models.hf import HFModel

        return HFModel(spec, adapter=adapter, batch_size=batch_size)
    if spec.backend == "openai":
        if adapter is not None:
            raise ValueError(f"adapter {adapter!r}: LoRA adapters apply to the hf backend only")
        from sgvalues.models.openai_backend import OpenAIModel

        return OpenAIModel(spec)
    raise ValueError(f"model.backend = {spec.backend!r}: expected 'hf' or 'openai'")
