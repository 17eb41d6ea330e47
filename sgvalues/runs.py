"""Run folders, manifests and papermill orchestration (``sgvalues run``).

One run = one params file executed through every notebook in ``notebooks/``, in order, into
``runs/<run>/notebooks/``. The run folder also holds ``params.yaml`` (a copy of the recipe) and
``manifest.json``: what was run, on which data, with which versions, and how long each notebook
took, and how each model's prompts were rendered (``rendering``: params section -> ``system``,
``folded``, ``transcript``, ``server`` or ``messages``, from the stages' ``rendering.json``, see
``sgvalues.models.chat``). The manifest never holds secrets, environment variables or the host name.

A notebook that fails stops the run; the partially executed notebook is kept and the message
names the notebook and the cell. Running again re-executes every notebook (the model caches
make that cheap); ``--resume`` skips notebooks that completed with the same inputs.

Notes
-----
A notebook's *inputs fingerprint* is

.. math:: f_k = \\operatorname{sha256}(\\text{notebook}_k \\,\\|\\, \\text{params} \\,\\|\\,
          \\text{data file} \\,\\|\\, f_{k-1})

so a change to the recipe, the data, or any earlier notebook invalidates every later one.

Example
-------
>>> [p.name for p in select_notebooks([Path("01_a.ipynb"), Path("02_b.ipynb")], "2")]
['02_b.ipynb']
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

from sgvalues.atomic import atomic_write_text
from sgvalues.manifest import RunError, read_manifest
from sgvalues.paths import file_sha256, repo_path, repo_root
from sgvalues.models.chat import read_renderings

__all__ = [
    "NOTEBOOK_PATTERN",
    "RunError",
    "list_notebooks",
    "select_notebooks",
    "pick_kernel",
    "package_versions",
    "data_record",
    "run_notebooks",
    "ensure_baselines",
    "configure_parser",
    "main",
]

#: executed in order: ``NN_name.ipynb``
NOTEBOOK_PATTERN = re.compile(r"^(\d{2})_[A-Za-z0-9_\-]+\.ipynb$")

#: packages whose versions the manifest records
_VERSIONED = ("sgvalues", "torch", "transformers", "peft", "papermill", "numpy", "pandas")


# ----------------------------------------------------------------------------- paths


def _display_path(p: Path) -> str:
    """``p`` relative to the repo root when inside it (keeps home folders out of outputs)."""
    try:
        return p.resolve().relative_to(repo_root().resolve()).as_posix()
    except ValueError:
        return p.resolve().as_posix()


# ----------------------------------------------------------------------------- notebooks


def list_notebooks(folder: str | Path) -> list[Path]:
    """The notebooks ``NN_name.ipynb`` in ``folder``, in order of ``NN``.

    Raises
    ------
    RunError
        when the folder is missing, holds no such notebook, or two share a number.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"{folder}: notebooks folder not found")
    found = sorted(p for p in folder.iterdir() if NOTEBOOK_PATTERN.match(p.name))
    if not found:
        raise RunError(f"{folder}: no notebooks named NN_name.ipynb")
    numbers = [p.name[:2] for p in found]
    dupes = sorted({n for n in numbers if numbers.count(n) > 1})
    if dupes:
        raise RunError(f"{folder}: two notebooks share the number(s) {', '.join(dupes)}")
    return found


def select_notebooks(notebooks: list[Path], only: str | None) -> list[Path]:
    """Keep the notebooks whose two-digit number is listed in ``only`` (``"01,03"``).

    Examples
    --------
    >>> nbs = [Path("01_a.ipynb"), Path("02_b.ipynb"), Path("03_c.ipynb")]
    >>> [p.name for p in select_notebooks(nbs, "3, 01")]
    ['01_a.ipynb', '03_c.ipynb']
    >>> select_notebooks(nbs, None) == nbs
    True
    """
    if not only:
        return list(notebooks)
    wanted = []
    for tok in only.split(","):
        tok = tok.strip()
        if not tok:
            continue
        if not tok.isdigit():
            raise RunError(f"--only: {tok!r} is not a notebook number; expected e.g. '01,02'")
        wanted.append(f"{int(tok):02d}")
    have = {p.name[:2]: p for p in notebooks}
    missing = [w for w in wanted if w not in have]
    if missing:
        raise RunError(
            f"--only: no notebook numbered {', '.join(missing)}; have {', '.join(sorted(have))}"
        )
    return [p for p in notebooks if p.name[:2] in set(wanted)]


def pick_kernel(prefer: tuple[str, ...] = ("sgvalues", "python3")) -> tuple[str, Path | None]:
    """A kernel that runs *this* interpreter (``sys.executable``).

    Returns ``(kernel_name, extra_jupyter_path)``. A registered kernel qualifies when its
    command is ``sys.executable`` itself (not a symlink target: a venv's python only sees the
    venv when started through the venv's path) or the bare word ``python`` (jupyter_client
    swaps that for ``sys.executable``). When none does, a kernelspec for ``sys.executable`` is
    written to a temporary folder, returned as the second element: put it first on
    ``JUPYTER_PATH``.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    bare = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}
    ksm = KernelSpecManager()
    for name in prefer:
        try:
            spec = ksm.get_kernel_spec(name)
        except NoSuchKernel:
            continue
        exe = spec.argv[0] if spec.argv else ""
        if exe in bare or os.path.abspath(exe) == os.path.abspath(sys.executable):
            return name, None
    tmp = Path(tempfile.mkdtemp(prefix="sgvalues-kernel-"))
    kdir = tmp / "kernels" / "sgvalues-current"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (sgvalues, current interpreter)",
        "language": "python",
    }))
    return "sgvalues-current", tmp


# ----------------------------------------------------------------------------- manifest


def package_versions() -> dict[str, str | None]:
    """Versions of python and the key packages (read from metadata; nothing is imported)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def data_record(params, run_dir: Path | None = None) -> dict:
    """Which data a run used: the official file (path + sha256) or the synthetic sample.

    For the synthetic sample the seed and size identify it; when the prepared folder already
    holds ``prepare_summary.json`` its checksum is recorded as well.
    """
    d = params.data
    if d.wvs_file:
        path = repo_path(d.wvs_file)
        if not path.is_file():
            raise RunError(f"data.wvs_file = {d.wvs_file!r}: file not found ({path})")
        return {"synthetic": False, "wvs_file": _display_path(path), "sha256": file_sha256(path),
                "bytes": path.stat().st_size}
    rec = {"synthetic": True, "wvs_file": None, "synthetic_seed": d.synthetic_seed,
           "synthetic_n": d.synthetic_n}
    if run_dir is not None:
        summary = Path(run_dir) / "data" / "prepare_summary.json"
        if summary.is_file():
            rec["prepare_summary_sha256"] = file_sha256(summary)
    return rec


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, obj) -> None:
    # a crash never leaves a half-written manifest
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _fingerprint(nb: Path, params_sha: str, data: dict, previous: str) -> str:
    h = hashlib.sha256()
    for part in (file_sha256(nb), params_sha, json.dumps(data, sort_keys=True), previous):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


# ----------------------------------------------------------------------------- execution


def _cell_of_error(exc) -> str:
    """'cell In [4] (index 4 of the executed notebook): `first line of the cell`'."""
    idx = getattr(exc, "cell_index", None)
    count = getattr(exc, "exec_count", None)
    source = (getattr(exc, "source", "") or "").strip().splitlines()
    where = f"cell In [{count}]" if count is not None else "a cell"
    if idx is not None:
        where += f" (index {idx} of the executed notebook)"
    if source:
        first = source[0] if len(source[0]) <= 80 else source[0][:77] + "..."
        where += f": `{first}`"
    return where


def _has_parameters_cell(nb_path: Path) -> bool:
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    return any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells)


def _ipc_kernel_manager(socket_dir: Path):
    """A kernel manager that talks to kernels over Unix sockets in ``socket_dir``.

    Why: over TCP, ipykernel 7 prints a warning about unencrypted transport for every notebook,
    and TCP needs free ports; a socket in a private temporary folder needs neither.
    """
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = str(socket_dir / "kernel")

    return IPCKernelManager


def run_notebooks(
    params_file: str | Path,
    run: str | None = None,
    runs_root: str | Path = "runs",
    only: str | None = None,
    resume: bool = False,
    notebooks_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Execute the notebooks for one params file; return the run folder.

    Parameters
    ----------
    params_file
        YAML recipe (validated with :func:`sgvalues.params.load_params`).
    run
        Run name (folder under ``runs_root``); default the params' ``name``.
    runs_root
        Parent of run folders; relative paths are taken from the repo root.
    only
        Comma-separated notebook numbers to execute (the others are reported as skipped).
    resume
        Skip notebooks that completed before with the same inputs fingerprint.
    notebooks_dir
        Where the notebooks are (default ``notebooks/`` of the repository).
    log
        Progress printer.

    Raises
    ------
    RunError
        naming the notebook and cell that failed; the partially executed notebook is kept.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from sgvalues import __version__
    from sgvalues.params import load_params, recipe_text

    params_path = repo_path(params_file)
    params = load_params(params_path)
    run = run or params.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-]*", run):
        raise RunError(f"run name {run!r}: use letters, digits, '.', '_' and '-' only")
    notebooks = list_notebooks(repo_path(notebooks_dir or "notebooks"))
    chosen = select_notebooks(notebooks, only)

    run_dir = repo_path(runs_root) / run
    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    # the recipe as run, its extends: chain resolved; a file that extends nothing is kept as written
    recipe = recipe_text(params_path)
    params_sha = hashlib.sha256(recipe.encode()).hexdigest()
    data = data_record(params)

    previous = read_manifest(run_dir)
    prev_nb = {e["notebook"]: e for e in previous.get("notebooks", []) if isinstance(e, dict)}
    if previous and previous.get("params_sha256") != params_sha:
        # Another recipe under the same run name: earlier results do not describe this run.
        prev_nb = {}
    atomic_write_text(run_dir / "params.yaml", recipe)

    manifest = {
        "run": run,
        "status": "running",
        "sgvalues_version": __version__,
        "params_file": _display_path(params_path),
        "params_sha256": params_sha,
        "params": params.to_dict(),
        "data": data,
        "seeds": {"seed": params.seed, "synthetic_seed": params.data.synthetic_seed},
        "versions": package_versions(),
        "started": _now(),
        "ended": None,
        "total_seconds": None,
        "notebooks": [],
        "rendering": {},
    }
    entries = {nb.name: dict(prev_nb.get(nb.name, {"notebook": nb.name, "status": "not run"}))
               for nb in notebooks}

    def save():
        manifest["notebooks"] = [entries[nb.name] for nb in notebooks]
        # how each model's prompts were rendered (system message or folded), as the stages noted it
        manifest["rendering"] = read_renderings(run_dir)
        _write_json(run_dir / "manifest.json", manifest)

    kernel, extra_path = pick_kernel()
    engine_kwargs = {}
    socket_dir = None
    if os.name == "posix":
        socket_dir = Path(tempfile.mkdtemp(prefix="sgv-kernel-"))
        engine_kwargs["kernel_manager_class"] = _ipc_kernel_manager(socket_dir)
    old_jp = os.environ.get("JUPYTER_PATH")
    if extra_path is not None:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(extra_path)] + ([old_jp] if old_jp else []))
    # Notebooks find their inputs relative to the repository root; absolute paths outside it
    # (a temporary runs root) are passed as they are.
    inject = {"params_file": _display_path(params_path), "run_dir": _display_path(run_dir)}
    cwd = repo_root()
    n = len(notebooks)
    for nb in chosen:
        if not _has_parameters_cell(nb):
            # papermill would then inject the parameters at the top, before any defaults.
            log(f"warning: {nb.name} has no cell tagged 'parameters'; "
                "params_file and run_dir are injected as its first cell")
    fingerprint = ""
    rerun_chain = False
    t_total = time.perf_counter()
    save()
    log(f"run {run!r}: {n} notebooks -> {_display_path(out_dir)} (kernel {kernel})")
    try:
        for i, nb in enumerate(notebooks, 1):
            tag = f"[{i}/{n}] {nb.name}"
            fingerprint = _fingerprint(nb, params_sha, data, fingerprint)
            entry = entries[nb.name]
            if nb not in chosen:
                log(f"{tag} skipped (not in --only); last status: {entry.get('status', 'not run')}")
                continue
            if (resume and not rerun_chain and entry.get("status") == "completed"
                    and entry.get("inputs_sha256") == fingerprint and (out_dir / nb.name).is_file()):
                log(f"{tag} skipped (--resume: completed with the same inputs)")
                continue
            rerun_chain = True
            entry.clear()
            entry.update({"notebook": nb.name, "status": "running", "started": _now(),
                          "inputs_sha256": fingerprint})
            save()
            t0 = time.perf_counter()
            try:
                pm.execute_notebook(
                    str(nb), str(out_dir / nb.name), parameters=inject, kernel_name=kernel, language="python",
                    cwd=str(cwd), progress_bar=False, log_output=False, report_mode=False,
                    **engine_kwargs,
                )
            except PapermillExecutionError as exc:
                secs = time.perf_counter() - t0
                where = _cell_of_error(exc)
                entry.update({"status": "failed", "ended": _now(), "seconds": round(secs, 2),
                              "error": f"{exc.ename} at cell index {exc.cell_index}"})
                manifest["status"] = "failed"
                log(f"{tag} FAILED after {secs:.1f} s")
                raise RunError(
                    f"notebook {nb.name} failed at {where}: {exc.ename}: {exc.evalue}\n"
                    f"  partial executed notebook kept: {_display_path(out_dir / nb.name)}\n"
                    f"  fix and run again (add --resume to skip the notebooks that completed)"
                ) from None
            except Exception as exc:
                secs = time.perf_counter() - t0
                entry.update({"status": "failed", "ended": _now(), "seconds": round(secs, 2),
                              "error": type(exc).__name__})
                manifest["status"] = "failed"
                raise RunError(f"notebook {nb.name} could not be executed: {type(exc).__name__}: {exc}") from exc
            secs = time.perf_counter() - t0
            entry.update({"status": "completed", "ended": _now(), "seconds": round(secs, 2)})
            log(f"{tag} ... {secs:.1f} s (elapsed {time.perf_counter() - t_total:.1f} s)")
            save()
            # the yardsticks every later notebook shows: cheap, and a no-op once up to date
            ensure_baselines(params, run_dir, log=log)
        done = all(entries[nb.name].get("status") == "completed" for nb in notebooks)
        manifest["status"] = "completed" if done else "partial"
    finally:
        if manifest["status"] == "running":  # interrupted (Ctrl-C, SIGTERM)
            manifest["status"] = "interrupted"
            for e in entries.values():
                if e.get("status") == "running":
                    e["status"] = "interrupted"
        manifest["ended"] = _now()
        manifest["total_seconds"] = round(time.perf_counter() - t_total, 2)
        # The synthetic sample only exists once notebook 01 ran: record its summary now.
        manifest["data"] = data_record(params, run_dir)
        save()
        if socket_dir is not None:
            shutil.rmtree(socket_dir, ignore_errors=True)
        if extra_path is not None:
            if old_jp is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = old_jp
            shutil.rmtree(extra_path, ignore_errors=True)
    log(f"run {run!r} {manifest['status']} in {manifest['total_seconds']:.1f} s; "
        f"manifest: {_display_path(run_dir / 'manifest.json')}")
    return run_dir


def ensure_baselines(params, run_dir: str | Path, log: Callable[[str], None] | None = None) -> dict | None:
    """The run's baselines and survey-noise reference, computed when missing or out of date.

    A thin wrapper of :func:`sgvalues.baselines.ensure_run_baselines` with the run's seed:
    writes ``<run_dir>/predictions/<baseline>_<split>.csv`` and
    ``<run_dir>/baselines/noise_reference.csv`` (seconds; a no-op when the prepared data did not
    change). Notebooks call it so that a notebook run alone has them too; ``sgvalues run`` calls
    it after every notebook. Returns ``None`` while the run has no prepared data.
    """
    from sgvalues.baselines import ensure_run_baselines

    return ensure_run_baselines(repo_path(run_dir), seed=params.seed, log=log)


# ----------------------------------------------------------------------------- command line


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``sgvalues run``."""
    parser.add_argument("--params", required=True, help="params YAML, e.g. params/smollm2-135m.yaml")
    parser.add_argument("--run", default=None, help="run name (default: the params' name)")
    parser.add_argument("--only", default=None, help="notebook numbers to execute, e.g. 01,02")
    parser.add_argument("--runs-root", default="runs", help="folder of run folders (default: runs)")
    parser.add_argument("--resume", action="store_true",
                        help="skip notebooks that completed before with unchanged inputs")
    parser.add_argument("--notebooks", default=None, help="notebooks folder (default: notebooks/)")


def main(args: argparse.Namespace) -> int:
    """``sgvalues run``: returns 0 on success, 1 when a notebook fails or the run cannot start."""
    import signal

    from sgvalues.params import ParamsError

    # SIGTERM (a killed job, CI timeout) unwinds like Ctrl-C, so the manifest says where it stopped.
    if _is_main_thread():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run_notebooks(args.params, run=args.run, runs_root=args.runs_root, only=args.only,
                      resume=args.resume, notebooks_dir=args.notebooks)
    except (RunError, ParamsError) as exc:
        print(f"sgvalues run: error: {exc}", file=sys.stderr)
        return 1
    return 0
