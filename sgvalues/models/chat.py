"""How chat messages become the text a model continues: the system-role rule.

Every prompt of the package is a chat ``[system, user, ...]``. Some chat templates reject a
system message (Gemma's raises ``System role not supported``; several Mistral templates demand
strictly alternating user/assistant turns) or silently drop it. For those the system text is
folded into the first user turn (:func:`sgvalues.prompts.fold_system`), which keeps every shared
part of a prompt before the persona.

``model.system_role`` (params) chooses:

``auto`` (default)
    probe the template once per tokenizer (:func:`template_accepts_system`) and fold only
    where it does not accept the system message;
``yes``
    always send the system message (an error at load time where the template rejects it);
``fold``
    always fold.

The outcome, a *rendering*, is one of :data:`RENDERINGS`: ``system`` (the template's own
system turn), ``folded`` (system text at the start of the first user turn), ``transcript`` (no
chat template: a plain ``role: text`` transcript ending in ``assistant:``) or ``server`` (an
OpenAI-compatible server renders the messages itself) or ``messages`` (the dummy model reads
the messages as they are). Runs record it in their manifest.

Example
-------
>>> rendering_for(None, "fold"), rendering_for(None, "auto")
('folded', 'transcript')
>>> fit_messages([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], "folded")
[{'role': 'user', 'content': 'S\\n\\nU'}]
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sgvalues.atomic import atomic_write_text
from sgvalues.prompts import fold_system

__all__ = ["SYSTEM_ROLES", "RENDERINGS", "RENDERING_FILE", "template_accepts_system", "rendering_for",
           "fit_messages", "render_chat", "record_rendering", "read_renderings"]

#: values of ``model.system_role``
SYSTEM_ROLES: tuple[str, ...] = ("auto", "yes", "fold")
#: how a model's prompts were rendered (see the module docstring)
RENDERINGS: tuple[str, ...] = ("system", "folded", "transcript", "server", "messages")
#: the file in a run folder where the stages note each model's rendering
RENDERING_FILE = "rendering.json"

_PROBE_SYSTEM = "sgvalues-probe-system-7f3a"
_PROBE_USER = "sgvalues-probe-user-91c2"
_probe_cache: dict[str, bool] = {}


def _template_key(tokenizer) -> str:
    parts = [str(getattr(tokenizer, "chat_template", "") or ""), str(getattr(tokenizer, "bos_token", "")),
             str(getattr(tokenizer, "eos_token", ""))]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def template_accepts_system(tokenizer) -> bool:
    """Whether the tokenizer's chat template renders a system message (probed once, cached).

    A probe chat ``[system, user]`` is rendered with the generation prompt; the template
    accepts the system role when it renders without raising *and* the system text appears in
    the result (some templates drop it silently). The answer is cached per template text, so
    each tokenizer is probed once per process. A tokenizer without a chat template "accepts"
    it: the plain transcript has a ``system:`` line.

    Examples
    --------
    >>> class Gemmaish:  # a template that raises on a system message, as Gemma's does
    ...     chat_template, bos_token, eos_token = "raises on system", "<bos>", "<eos>"
    ...     def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
    ...         if messages[0]["role"] == "system":
    ...             raise ValueError("System role not supported")
    ...         return "".join(m["content"] for m in messages)
    >>> template_accepts_system(Gemmaish()), rendering_for(Gemmaish(), "auto")
    (False, 'folded')
    """
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return True
    key = _template_key(tokenizer)
    if key not in _probe_cache:
        probe = [{"role": "system", "content": _PROBE_SYSTEM}, {"role": "user", "content": _PROBE_USER}]
        try:
            text = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
            ok = _PROBE_SYSTEM in str(text) and _PROBE_USER in str(text)
        except Exception:  # jinja2 TemplateError from raise_exception, or any template failure
            ok = False
        _probe_cache[key] = ok
    return _probe_cache[key]


def rendering_for(tokenizer, system_role: str = "auto", where: str = "model.system_role") -> str:
    """The rendering a tokenizer gets under ``system_role`` (``auto``, ``yes`` or ``fold``).

    ``tokenizer=None`` or one without a chat template gives ``transcript`` unless the system
    text is to be folded. ``yes`` with a template that rejects the system role raises a
    ``ValueError`` naming ``where`` (the params key) and the fix.
    """
    if system_role not in SYSTEM_ROLES:
        raise ValueError(f"{where} = {system_role!r}: expected one of {', '.join(SYSTEM_ROLES)}")
    if system_role == "fold":
        return "folded"
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return "transcript"
    if template_accepts_system(tokenizer):
        return "system"
    if system_role == "yes":
        raise ValueError(f"{where} = 'yes': this model's chat template rejects (or drops) the system "
                         "message; expected 'auto' or 'fold' (the system text is then folded into the "
                         "first user turn)")
    return "folded"


def fit_messages(messages, rendering: str) -> list[dict]:
    """The messages as the template will see them: folded for rendering ``folded``, else copies."""
    if rendering == "folded":
        return fold_system(messages)
    return [dict(m) for m in messages]


def render_chat(tokenizer, messages, rendering: str, add_generation_prompt: bool = True) -> str:
    """Text of ``messages`` under ``rendering`` (chat template, or the plain transcript).

    The transcript (no chat template, a base model) is ``role: content`` lines ending with
    ``assistant:`` when ``add_generation_prompt``.

    >>> class Base:  # a base model's tokenizer: no chat template
    ...     chat_template = None
    >>> print(render_chat(Base(), [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], "folded"))
    user: S
    <BLANKLINE>
    U
    assistant:
    """
    msgs = fit_messages(messages, rendering)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=add_generation_prompt)
    return "".join(f"{m['role']}: {m['content']}\n" for m in msgs) + ("assistant:" if add_generation_prompt else "")


def record_rendering(run_dir: str | Path, section: str, rendering: str) -> None:
    """Note in ``<run_dir>/rendering.json`` which rendering the model of a params section got.

    ``section`` is ``model``, ``training`` (the model LoRA trains: the same as ``model`` except for
    the dummy backend, which trains a tiny stand-in), ``judge.reference`` or ``judge.judge``;
    ``sgvalues run`` copies the
    file's mapping (section -> rendering) into the manifest as ``rendering``.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> record_rendering(d, "model", "folded"); read_renderings(d)
    {'model': 'folded'}
    """
    path = Path(run_dir) / RENDERING_FILE
    current = read_renderings(run_dir)
    if current.get(section) == rendering:
        return
    current[section] = rendering
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(current, indent=1, sort_keys=True) + "\n")


def read_renderings(run_dir: str | Path) -> dict[str, str]:
    """``<run_dir>/rendering.json`` as a dict (``{}`` when absent or unreadable)."""
    path = Path(run_dir) / RENDERING_FILE
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
