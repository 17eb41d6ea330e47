"""Model backends by name: ``model.backend`` in a params file is looked up here.

A backend is a factory ``factory(spec, adapter=None, batch_size=16) -> Model``. The package
registers four: ``hf`` (transformers, :class:`~sgvalues.models.hf.HFModel`), ``openai`` (any
OpenAI-compatible server), ``embedded`` (the hf backend on the embedded SmolLM2-135M, whatever
``model.name`` says) and ``dummy`` (the deterministic :class:`~sgvalues.models.dummy.DummyModel`,
for dry runs of the whole pipeline). Each imports its module only when called, so importing
this one needs neither torch nor openai.

Another package (or a notebook) adds its own backend with :func:`register_backend`, as a
decorator or a call, before the params that name it are loaded::

    from sgvalues.models import register_backend

    @register_backend("my-server")
    def my_server(spec, adapter=None, batch_size=16):
        return MyServerModel(spec)

Example
-------
>>> "hf" in backend_names() and "dummy" in backend_names()
True
>>> @register_backend("echo-doc")
... def _echo(spec, adapter=None, batch_size=16):
...     from sgvalues.models.dummy import DummyModel
...     return DummyModel("echo")
>>> get_backend("echo-doc") is _echo
True
>>> unregister_backend("echo-doc")
"""

from __future__ import annotations

from typing import Callable

__all__ = ["register_backend", "unregister_backend", "get_backend", "backend_names", "BUILTIN_BACKENDS"]

_BACKENDS: dict[str, Callable] = {}


def register_backend(name: str, factory: Callable | None = None, *, replace: bool = False):
    """Register ``factory`` under ``name``; without ``factory``, a decorator that does it.

    Parameters
    ----------
    name : str
        The value of ``model.backend`` that selects it (letters, digits, ``-``, ``_``, ``.``).
    factory : callable, optional
        ``factory(spec, adapter=None, batch_size=16)`` returning a
        :class:`~sgvalues.models.base.Model`.
    replace : bool
        Allow replacing an existing backend of that name (otherwise a ``ValueError``).
    """
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"backend name {name!r}: expected letters, digits, '-', '_' or '.'")

    def add(f: Callable) -> Callable:
        if not callable(f):
            raise ValueError(f"backend {name!r}: the factory must be callable, got {type(f).__name__}")
        if name in _BACKENDS and _BACKENDS[name] is not f and not replace:
            raise ValueError(f"backend {name!r} is already registered; pass replace=True to replace it")
        _BACKENDS[name] = f
        return f

    return add if factory is None else add(factory)


def unregister_backend(name: str) -> None:
    """Remove a backend (the built-in ones cannot be removed)."""
    if name in BUILTIN_BACKENDS:
        raise ValueError(f"backend {name!r} is built in and cannot be removed")
    _BACKENDS.pop(name, None)


def backend_names() -> tuple[str, ...]:
    """Names of the registered backends, built-in first."""
    return tuple(_BACKENDS)


def get_backend(name: str) -> Callable:
    """The factory registered under ``name``; ``ValueError`` listing the names otherwise.

    >>> get_backend("vllm")
    Traceback (most recent call last):
    ...
    ValueError: model.backend = 'vllm': expected one of hf, embedded, openai, dummy (or register another with sgvalues.models.register_backend)
    """
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(f"model.backend = {name!r}: expected one of {', '.join(_BACKENDS)} "
                         "(or register another with sgvalues.models.register_backend)") from None


# ----------------------------------------------------------------------------- built-in backends


@register_backend("hf")
def _hf(spec, adapter=None, batch_size: int = 16):
    from sgvalues.models.hf import HFModel

    return HFModel(spec, adapter=adapter, batch_size=batch_size)


@register_backend("embedded")
def _embedded(spec, adapter=None, batch_size: int = 16):
    import dataclasses

    from sgvalues.models.embedded import EMBEDDED_NAME
    from sgvalues.models.hf import HFModel

    hf_spec = dataclasses.replace(spec, backend="hf", name=EMBEDDED_NAME)
    object.__setattr__(hf_spec, "origin", getattr(spec, "origin", None))
    return HFModel(hf_spec, adapter=adapter, batch_size=batch_size)


@register_backend("openai")
def _openai(spec, adapter=None, batch_size: int = 16):
    if adapter is not None:
        raise ValueError(f"adapter {str(adapter)!r}: LoRA adapters apply to the hf backend only")
    from sgvalues.models.openai_backend import OpenAIModel

    return OpenAIModel(spec)


@register_backend("dummy")
def _dummy(spec, adapter=None, batch_size: int = 16):
    from sgvalues.models.dummy import dummy_from_spec

    return dummy_from_spec(spec, adapter=adapter)


#: the backends the package ships
BUILTIN_BACKENDS: tuple[str, ...] = tuple(_BACKENDS)
