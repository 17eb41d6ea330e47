"""Where the repository is, and the project's one file hash.

The base layer: imported by data, stages, report and orchestration alike; it imports nothing
of ``sgvalues``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["repo_root", "repo_path", "file_sha256"]


def repo_root() -> Path:
    """The repository root: the folder holding ``pyproject.toml`` and ``notebooks/``.

    The current directory or its parent wins when it is a checkout (so a notebook running in
    ``notebooks/`` finds its own repository); otherwise the folder above the installed package.

    Examples
    --------
    >>> (repo_root() / "sgvalues").is_dir()
    True
    """
    cwd = Path.cwd()
    for base in (cwd, cwd.parent):
        if (base / "pyproject.toml").is_file() and (base / "sgvalues").is_dir():
            return base
    return Path(__file__).resolve().parent.parent


def repo_path(p: str | Path) -> Path:
    """Resolve ``p`` (relative to the repo root) whether cwd is the repo root or ``notebooks/``.

    Absolute paths are returned unchanged. A relative path that exists under the current
    directory, or under its parent, is taken from there; any other relative path (an output
    not written yet) is anchored at :func:`repo_root`.

    Examples
    --------
    >>> repo_path("pyproject.toml").name
    'pyproject.toml'
    >>> repo_path("pyproject.toml").parent == repo_root()
    True
    >>> repo_path("/tmp/x").as_posix()
    '/tmp/x'
    """
    p = Path(p)
    if p.is_absolute():
        return p
    for base in (Path.cwd(), Path.cwd().parent):
        if (base / p).exists():
            return base / p
    return repo_root() / p


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (the official WVS file is large).

    The project's one file hash (``prepare``'s fingerprints, run manifests).

    Examples
    --------
    >>> import hashlib, tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.txt"; _ = f.write_bytes(b"abc")
    >>> file_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    True
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
