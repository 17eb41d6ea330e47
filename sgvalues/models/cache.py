"""On-disk response cache: a re-run costs no model or API calls, an interrupted run resumes.

One SQLite database (WAL mode, so readers never block) under
``sgvalues.models.embedded.cache_root()/responses.sqlite``. Each entry is a JSON answer
keyed by :func:`cache_key`, a SHA-256 over everything that can change the answer: model id,
adapter identity (a hash of the adapter's weights), the chat messages, the option codes, the
decoding settings and the mode. API keys are never part of a key or a value. Writers take a
file lock (one writer at a time across processes); entries are written as each batch
finishes, so a crash loses at most the batch in flight.

Example
-------
>>> import tempfile, pathlib
>>> c = ResponseCache(pathlib.Path(tempfile.mkdtemp()) / "r.sqlite")
>>> k = cache_key(model_id="m", adapter_id="", mode="logprob",
...               messages=[{"role": "user", "content": "hi"}], option_codes=["1", "2"])
>>> c.get_many([k])
{}
>>> c.put_many({k: {"probs": {"1": 0.25, "2": 0.75}}})
>>> c.get_many([k])[k]["probs"]["2"]
0.75
>>> len(c)
1
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping

from filelock import FileLock

__all__ = ["ResponseCache", "cache_key", "adapter_identity", "default_cache_path"]

_SCHEMA = "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"


def default_cache_path() -> Path:
    """``cache_root()/responses.sqlite`` (``$SGVALUES_CACHE`` or ``~/.cache/sgvalues``)."""
    from sgvalues.models.embedded import cache_root

    return cache_root() / "responses.sqlite"


def cache_key(**parts) -> str:
    """SHA-256 (hex) of the canonical JSON of ``parts`` (sorted keys, no whitespace).

    >>> cache_key(a=1, b=[1, 2]) == cache_key(b=[1, 2], a=1)
    True
    """
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def adapter_identity(adapter: str | Path | None) -> str:
    """Hash of a LoRA adapter folder's weights and config (``""`` for no adapter).

    Two adapters with the same weights share cache entries wherever they are stored; retraining
    changes the hash, so stale answers are never reused.
    """
    if adapter is None or str(adapter) == "":
        return ""
    path = Path(adapter)
    if not path.exists():
        raise FileNotFoundError(f"{path}: adapter folder not found (expected adapter_model.safetensors inside)")
    files = [path] if path.is_file() else sorted(
        p for p in path.iterdir()
        if p.name.startswith("adapter_model") or p.name == "adapter_config.json"
    )
    if not files:
        raise FileNotFoundError(f"{path}: no adapter_model.* or adapter_config.json in the adapter folder")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return "adapter:" + h.hexdigest()[:16]


class ResponseCache:
    """Key -> JSON value store in SQLite (WAL); many readers, one writer at a time.

    Parameters
    ----------
    path : path of the database file (created with its folder); default :func:`default_cache_path`.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path) + ".lock")
        self._local = threading.local()
        with self._lock:
            con = self._con()
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(_SCHEMA)
            con.commit()

    def _con(self) -> sqlite3.Connection:
        # one connection per thread: sqlite3 connections must not cross threads
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(str(self.path), timeout=60.0)
            con.execute("PRAGMA busy_timeout=60000")
            self._local.con = con
        return con

    def get_many(self, keys: Iterable[str]) -> dict[str, dict]:
        """Stored values for the ``keys`` present (missing keys are absent from the result)."""
        keys = list(dict.fromkeys(keys))
        out: dict[str, dict] = {}
        con = self._con()
        for i in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
            chunk = keys[i:i + 500]
            q = f"SELECT key, value FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
            for k, v in con.execute(q, chunk):
                out[k] = json.loads(v)
        return out

    def get(self, key: str) -> dict | None:
        return self.get_many([key]).get(key)

    def put_many(self, items: Mapping[str, dict]) -> None:
        """Store ``items`` in one transaction under the writer lock (replacing old values)."""
        if not items:
            return
        now = time.time()
        rows = [(k, json.dumps(v, sort_keys=True), now) for k, v in items.items()]
        with self._lock:
            con = self._con()
            with con:
                con.executemany("INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        return int(self._con().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
