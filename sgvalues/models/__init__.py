"""Models behind one interface: score option codes, generate text.

``load_model(spec)`` looks ``spec.backend`` up in the backend registry
(:mod:`sgvalues.models.registry`: ``hf``, ``openai``, ``embedded``, ``dummy``, and any backend
another package registers with :func:`register_backend`) and returns a
:class:`~sgvalues.models.base.Model`; the backends are imported only when used, so
``import sgvalues.models`` needs neither torch nor openai.

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
from sgvalues.models.registry import backend_names, get_backend, register_backend, unregister_backend

__all__ = [
    "Answer",
    "GenerateRequest",
    "Model",
    "REFUSAL_PATTERNS",
    "ResponseCache",
    "ScoreRequest",
    "adapter_identity",
    "backend_names",
    "cache_key",
    "get_backend",
    "classify_text",
    "is_refusal",
    "load_model",
    "parse_option",
    "register_backend",
    "unregister_backend",
]


def load_model(spec, adapter: str | Path | None = None, batch_size: int = 16) -> Model:
    """Build the backend registered under ``spec.backend`` (see :mod:`sgvalues.models.registry`).

    ``adapter`` (a LoRA folder; hf, embedded, and dummy as an identity) overrides
    ``spec.adapter``; ``batch_size`` is the number of rows per forward pass (hf).

    Examples
    --------
    >>> from sgvalues.params import ModelSpec
    >>> load_model(ModelSpec(backend="dummy", name="demo")).model_id
    'dummy:demo:0'
    """
    return get_backend(spec.backend)(spec, adapter=adapter, batch_size=batch_size)
