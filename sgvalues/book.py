"""Assemble and build the Jupyter Book (``sgvalues book``).

The book's prose lives in ``book/`` (committed); the results come from the runs. Assembling:

1. copies the executed notebooks of the *default run* into ``book/chapters/`` (gitignored);
2. gathers the predictions of every run under the runs root into a model-comparison table and
   figure (``book/chapters/model_comparison_table.md``, included by ``model_comparison.md``);
3. writes ``book/chapters/_config.generated.yml``: ``book/_config.yml`` plus a banner on every
   page when the default run's data is synthetic, and MathJax served from the book itself (the
   book needs no network);
4. runs ``jupyter-book build -W`` (every warning fails the build).

Scores come from :func:`sgvalues.metrics.score` (the invalid rule and the formulas are there);
predictions from :func:`sgvalues.evaluate.load_run_predictions` (one loader, one run label).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from sgvalues.runs import RunError, read_manifest, repo_path, run_synthetic

__all__ = [
    "BookError",
    "comparison_table",
    "write_comparison",
    "run_summary",
    "write_run_summary",
    "copy_chapters",
    "toc_files",
    "write_config",
    "assemble",
    "build",
    "configure_parser",
    "main",
]

class BookError(RuntimeError):
    """The book cannot be assembled or built; the message says what is missing."""


# ----------------------------------------------------------------------------- comparison


def comparison_table(runs_root: str | Path) -> pd.DataFrame:
    """Tidy metrics of every run: ``run, model, synthetic, tag, split, metric, value, n, n_questions``.

    ``n`` and ``n_questions`` say what each row was scored on: runs and tags cover different
    samples (``base``/``sft`` the questions fine-tuning used, ``zeroshot`` the whole split).
    """
    from sgvalues.evaluate import load_run_predictions
    from sgvalues.metrics import score

    try:
        preds = load_run_predictions(runs_root)  # the model states; baselines are shown beside
    except ValueError as exc:
        raise BookError(str(exc)) from exc
    rows = []
    for (run, label, tag, split), df in preds.groupby(["run", "label", "tag", "split"], sort=True):
        model = label if label == run else f"{label} ({run})"
        synthetic = run_synthetic(Path(runs_root) / run)
        s = score(df).iloc[0]
        n_questions = int(df["question_id"].nunique())
        for metric in ("accuracy", "nmae", "refusal_rate", "invalid_rate"):
            rows.append({"run": run, "model": model, "synthetic": synthetic, "tag": tag,
                         "split": split, "metric": metric, "value": float(s[metric]), "n": int(s["n"]),
                         "n_questions": n_questions})
    return pd.DataFrame(rows, columns=["run", "model", "synthetic", "tag", "split", "metric", "value", "n",
                                       "n_questions"])


def write_comparison(runs_root: str | Path, out_dir: str | Path, image_prefix: str = "") -> Path:
    """Write ``model_comparison_table.md`` (+ figure) gathering every run; return the page path.

    The page (:func:`sgvalues.report.comparison.write_comparison_page`): every run's model
    states beside the no-model baselines and the survey-noise reference on the same samples,
    every paper model with its published figures and ours where a run exists, and the figure.
    ``image_prefix`` is the folder of ``out_dir`` seen from the page that includes the table
    (``"chapters/"`` for ``book/model_comparison.md``): included text keeps the includer's paths.
    """
    from sgvalues.report.comparison import write_comparison_page

    return write_comparison_page(runs_root, out_dir, image_prefix=image_prefix)


# ----------------------------------------------------------------------------- intro


def run_summary(run_dir: str | Path) -> str:
    """Markdown naming a run's model and data and its headline results, computed from its files.

    Reads ``manifest.json`` (model), ``data/prepare_summary.json`` (data), the structured
    predictions on the OOD split and, when present, ``judge/win_rates.csv``. Every number is
    formatted by :mod:`sgvalues.report.format`; nothing is claimed that the files do not hold.

    Examples
    --------
    >>> import json, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "manifest.json").write_text(json.dumps({"params": {"display_name": "Tiny",
    ...      "model": {"backend": "hf", "name": "tiny"}}}))
    >>> print(run_summary(d).splitlines()[0])
    **Model.** Tiny (`tiny`, hf backend).
    """
    from sgvalues.report.format import fmt_count, fmt_rate

    run_dir = Path(run_dir)
    man = read_manifest(run_dir)
    params = man.get("params") or {}
    model = params.get("model") or {}
    name = params.get("display_name") or params.get("name") or run_dir.name
    lines = [f"**Model.** {name} (`{model.get('name', '?')}`, {model.get('backend', '?')} backend)."]
    summary_path = run_dir / "data" / "prepare_summary.json"
    n_ood = None  # the OOD split's size, to say what each headline figure rests on
    if summary_path.is_file():
        import json

        s = json.loads(summary_path.read_text())
        source = ("A **synthetic** Singapore-like sample in the WVS-7 format (not survey data)"
                  if s.get("synthetic") else f"The WVS-7 file `{Path(str(s.get('source_file', '?'))).name}`")
        sub, smp = s.get("subgroups", {}), s.get("samples", {})
        n_ood = smp.get("ood")
        lines.append(
            f"**Data.** {source}: {fmt_count(s.get('n_respondents'))} respondents, "
            f"{fmt_count(s.get('n_questions'))} questions, {fmt_count(sub.get('train'))} training and "
            f"{fmt_count(sub.get('ood'))} out-of-distribution (OOD) subgroups; {fmt_count(smp.get('train'))} "
            f"training and {fmt_count(smp.get('ood'))} OOD samples.")
    else:
        lines.append("**Data.** This run has no prepared data summary.")
    from sgvalues.evaluate import load_run_predictions
    from sgvalues.metrics import score

    preds = load_run_predictions(run_dir.parent)
    preds = preds[(preds["run"] == run_dir.name) & (preds["split"] == "ood")]
    from sgvalues.report.training import population_mode_accuracy, seed_accuracies

    what = {"zeroshot": "as released", "base": "before fine-tuning", "sft": "after LoRA fine-tuning"}
    rows = []
    for tag in [t for t in ("zeroshot", "base", "sft") if t in set(preds["tag"])]:
        sub_preds = preds[preds["tag"] == tag]
        sc = score(sub_preds).iloc[0]
        # say what the figure rests on: the whole split, or a part of it (evaluation.limit, trained questions)
        of_all = (" (the whole OOD split)" if n_ood and int(sc["n"]) == int(n_ood)
                  else f" of {fmt_count(n_ood)}" if n_ood else "")
        level = fmt_rate(sc["accuracy"])
        seeds = seed_accuracies(run_dir, "ood") if tag == "sft" else None
        if seeds and len(seeds) > 1:  # several training seeds: their mean and range, not one adapter
            level = (f"{fmt_rate(sum(seeds) / len(seeds))} (mean of {len(seeds)} training seeds, "
                     f"{fmt_rate(min(seeds))} to {fmt_rate(max(seeds))})")
        pop = population_mode_accuracy(run_dir, sub_preds, "ood")
        whose = " of the run's own adapter" if seeds and len(seeds) > 1 else ""
        rows.append(f"{level} {what[tag]} (population_mode, no persona: {fmt_rate(pop)}; NMAE "
                    f"{fmt_rate(sc['nmae'])}{whose}; "
                    f"{fmt_count(sc['n'])}{of_all} samples, {fmt_count(sub_preds['question_id'].nunique())} "
                    "questions)")
    if rows:
        lines.append("**Headline, structured answers on unseen subgroups.** Accuracy against the modal "
                     "answer, beside the population's modal answer on the same samples: " + "; ".join(rows) + ".")
    else:
        lines.append("**Headline.** This run has no structured predictions yet.")
    wr_path = run_dir / "judge" / "win_rates.csv"
    if wr_path.is_file():
        wr = pd.read_csv(wr_path)
        wr = wr[wr["dimension"] == "overall"]
        parts = [f"{r.candidate}: {fmt_rate(r.win_rate)} [{fmt_rate(r.ci_low)}, {fmt_rate(r.ci_high)}] over "
                 f"{fmt_count(r.n_used)} items" for r in wr.itertuples()]
        if parts:
            flat = bool(len(wr)) and bool((wr["ci_low"] == wr["ci_high"]).all())
            lines.append("**Open-ended answers.** Overall win rate over the reference (95% bootstrap "
                         "interval): " + "; ".join(parts) + "." + (
                             " Every interval has zero width: every item scored the same, so this judge told "
                             "none of the pairs apart (chapter 6 shows why)." if flat else ""))
    return "\n\n".join(lines) + "\n"


def write_run_summary(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write :func:`run_summary` of the default run to ``out_dir/run_summary.md`` (the intro includes it)."""
    out = Path(out_dir) / "run_summary.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"This build's default run is `{Path(run_dir).name}`.\n\n" + run_summary(run_dir))
    return out


# ----------------------------------------------------------------------------- assembly


def toc_files(book_dir: str | Path) -> list[str]:
    """Every file the book's ``_toc.yml`` names (root, chapters, sections), in order."""
    book_dir = Path(book_dir)
    toc = yaml.safe_load((book_dir / "_toc.yml").read_text())
    out = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                out.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return out


def _resolve_toc_file(book_dir: Path, name: str) -> Path | None:
    for ext in ("", ".md", ".ipynb", ".rst"):
        p = book_dir / (name + ext)
        if p.is_file():
            return p
    return None


#: a progress line of a stage (``evaluated 50/400 new samples``, ``[3/7] step ...``, a tqdm bar):
#: it belongs in the terminal of ``sgvalues run``, not in the report
_PROGRESS = re.compile(
    r"^\s*(?:\[\d+/\d+\]|(?:evaluated|judged|generated|generating|scored|training|trained|step|epoch|"
    r"batch|loading|converting|downloading)\b.*\b\d+\s*/\s*\d+\b|.*\d+%\|.*\||.*\bit/s\]|.*\bs/it\]|"
    # a stage's log line ("judge: 12 verdicts for sft vs reference"): the stage reports, the page shows tables
    r"(?:judge|evaluate|train|prepare|sgvalues(?: \w+)?):\s).*$",
    re.IGNORECASE)


def _strip_progress(text: str) -> str:
    """``text`` without progress lines (and without carriage-return overwritten bars).

    >>> _strip_progress("evaluated 50/400 new samples\\n3 subgroups dropped\\n 40%|####  | 4/10 [00:01<00:02]\\n"
    ...                 "judge: 24 verdicts, 0 unparseable\\n")
    '3 subgroups dropped\\n'
    """
    lines = [ln.rsplit("\r", 1)[-1] for ln in text.splitlines(keepends=True)]
    return "".join(ln for ln in lines if not _PROGRESS.match(ln.rstrip("\n")))


def _relative_paths(text: str, roots: dict[str, str]) -> str:
    """Replace each absolute folder in ``roots`` (longest first) by its relative name."""
    for absolute in sorted(roots, key=len, reverse=True):
        text = text.replace(absolute, roots[absolute])
    return text


def _tidy_notebook(src: Path, dst: Path, roots: dict[str, str] | None = None) -> None:
    """Copy an executed notebook as a chapter: results only, code folded, no machine paths.

    - code cells get the ``hide-input`` tag (folded, one click away), except the ``parameters``
      cell, which stays open: it says what a reader may change;
    - the ``injected-parameters`` cell of papermill is folded whole (``hide-cell``);
    - stderr streams and progress lines of stdout are dropped (they went to the terminal too);
    - every absolute folder in ``roots`` (the run folder, the repository) is written relative.
    """
    import nbformat

    roots = roots or {}
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.setdefault("metadata", {})
        tags = list(meta.get("tags", []))
        if "injected-parameters" in tags:
            tags.append("hide-cell")
        elif "parameters" not in tags:
            tags.append("hide-input")
        meta["tags"] = list(dict.fromkeys(tags))
        cell.source = _relative_paths(cell.source, roots)
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                if out.get("name") == "stderr":
                    continue
                out["text"] = _relative_paths(_strip_progress(out.get("text", "")), roots)
                if not out["text"].strip():
                    continue
            for mime, value in (out.get("data") or {}).items():
                if mime.startswith("text/") or mime in ("application/json",):
                    if isinstance(value, str):
                        out["data"][mime] = _relative_paths(value, roots)
            outputs.append(out)
        cell["outputs"] = outputs
    nbformat.write(nb, dst)


def copy_chapters(run_dir: str | Path, chapters_dir: str | Path) -> list[Path]:
    """Copy the run's executed notebooks into ``chapters_dir`` (replacing older copies).

    Absolute paths of the building machine become relative: the run folder as
    ``runs/<run>``, the repository root as ``.``.
    """
    run_dir, chapters_dir = Path(run_dir), Path(chapters_dir)
    src = sorted((run_dir / "notebooks").glob("*.ipynb"))
    if not src:
        raise BookError(f"{run_dir / 'notebooks'}: no executed notebooks; run `sgvalues run` first")
    chapters_dir.mkdir(parents=True, exist_ok=True)
    for old in chapters_dir.glob("*.ipynb"):
        old.unlink()
    repo = repo_path(".")
    roots = {str(run_dir.resolve()): f"runs/{run_dir.name}", str(repo.resolve()) + "/": "",
             str(repo.resolve()): "."}
    if str(run_dir) != str(run_dir.resolve()):
        roots[str(run_dir)] = f"runs/{run_dir.name}"
    out = []
    for nb in src:
        _tidy_notebook(nb, chapters_dir / nb.name, roots)
        out.append(chapters_dir / nb.name)
    return out


def _mathjax_dir() -> Path | None:
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    p = Path(jupyter_server_mathjax.__file__).parent / "static"
    return p if (p / "MathJax.js").is_file() else None


def write_config(book_dir: str | Path, synthetic: bool | None, run_name: str) -> Path:
    """Write ``chapters/_config.generated.yml``: ``_config.yml`` plus banner and local MathJax."""
    book_dir = Path(book_dir)
    cfg = yaml.safe_load((book_dir / "_config.yml").read_text()) or {}
    sphinx = cfg.setdefault("sphinx", {})
    sphinx["recursive_update"] = True
    conf = sphinx.setdefault("config", {})
    theme = conf.setdefault("html_theme_options", {})
    if synthetic is not False:
        what = ("comes from a synthetic Singapore-like sample, not from WVS-7" if synthetic
                else "has no manifest saying which data it used")
        theme["announcement"] = (
            f"Synthetic data: every result in this build (run <code>{run_name}</code>) {what}. "
            "See the Reproduce page to run on the official WVS-7 file."
        )
    # jupyter-book's default extensions minus thebe (it points at a CDN, and its inline script
    # is emitted twice, a JavaScript error on every page).
    from jupyter_book.config import get_default_sphinx_config

    exts = [e for e in get_default_sphinx_config()["extensions"] if e != "sphinx_thebe"]
    # chapter numbers run on across the numbered parts of the toc (Sphinx restarts them per part)
    exts.append("sphinx_multitoc_numbering")
    if cfg.get("bibtex_bibfiles"):
        exts.append("sphinxcontrib.bibtex")
    conf["extensions"] = exts + [e for e in sphinx.get("extra_extensions", []) or [] if e not in exts]
    mj = _mathjax_dir()
    if mj is not None:
        # MathJax 2 from the book's own _static folder: the built book needs no network.
        static = book_dir / "chapters" / "_mathjax"
        target = static / "mathjax"
        if not (target / "MathJax.js").is_file():
            shutil.rmtree(static, ignore_errors=True)
            shutil.copytree(mj, target)
        conf["html_static_path"] = [*conf.get("html_static_path", []), "chapters/_mathjax"]
        conf["mathjax_path"] = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
        # myst marks sections tex2jax_ignore and the math itself class "math" (MathJax 3
        # style); tell MathJax 2 the same.
        conf.setdefault("mathjax2_config", {"tex2jax": {
            "inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
            "processRefs": False, "processEnvironments": False,
            "processClass": "tex2jax_process|mathjax_process|math|output_area",
            "ignoreClass": "tex2jax_ignore|mathjax_ignore"},
            # the bundled MathJax carries only the STIX-Web fonts
            "HTML-CSS": {"availableFonts": ["STIX-Web"], "preferredFont": "STIX-Web",
                         "webFont": "STIX-Web", "imageFont": None},
            "SVG": {"font": "STIX-Web"}})
    out = book_dir / "chapters" / "_config.generated.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return out


def assemble(default_run: str, runs_root: str | Path = "runs", book_dir: str | Path = "book") -> Path:
    """Copy chapters, write the comparison page and the generated config; return the config.

    Raises
    ------
    BookError
        when the default run is missing or the toc names a page that does not exist.
    """
    runs_root, book_dir = repo_path(runs_root), repo_path(book_dir)
    run_dir = runs_root / default_run
    if not run_dir.is_dir():
        have = sorted(p.name for p in runs_root.iterdir()) if runs_root.is_dir() else []
        raise BookError(f"{run_dir}: default run not found (runs present: {', '.join(have) or 'none'}); "
                        f"run `sgvalues run --params params/<model>.yaml --run {default_run}` first")
    chapters = book_dir / "chapters"
    copy_chapters(run_dir, chapters)
    write_comparison(runs_root, chapters, image_prefix="chapters/")
    write_run_summary(run_dir, chapters)
    config = write_config(book_dir, run_synthetic(run_dir), default_run)
    missing = [f for f in toc_files(book_dir) if _resolve_toc_file(book_dir, f) is None]
    if missing:
        raise BookError(
            f"{book_dir / '_toc.yml'}: names page(s) that do not exist: {', '.join(missing)} "
            f"(chapters come from {run_dir / 'notebooks'}; did every notebook run?)"
        )
    return config


def build(book_dir: str | Path = "book", out: str | Path | None = None, config: Path | None = None) -> Path:
    """Run ``jupyter-book build -W`` on ``book_dir``; return the HTML folder.

    ``out`` is the build folder (default ``<book_dir>/_build``). When its name is ``_build``
    the HTML lands in ``out/html``, otherwise in ``out/_build/html`` (jupyter-book's layout).
    """
    book_dir = repo_path(book_dir)
    out = repo_path(out) if out is not None else book_dir / "_build"
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.is_file() else "jupyter-book", "build", str(book_dir), "-W", "-n",
           "--path-output", str(out.parent if out.name == "_build" else out)]
    if config is not None:
        cmd += ["--config", str(config)]
    env = dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        # The cause first (sphinx warnings turned errors), then the end of the log.
        cause = [ln for ln in lines if re.search(r"SphinxWarning|WARNING|ERROR|Error:", ln)]
        tail = "\n".join(cause[:10] + ["..."] + lines[-15:])
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    html = (out if out.name == "_build" else out / "_build") / "html"
    if not (html / "index.html").is_file():
        raise BookError(f"{html}: build finished but index.html is missing")
    return html


# ----------------------------------------------------------------------------- command line


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``sgvalues book``."""
    parser.add_argument("--default-run", default="default", help="run whose notebooks become the chapters")
    parser.add_argument("--runs-root", default="runs", help="folder of run folders (default: runs)")
    parser.add_argument("--book-dir", default="book", help="book sources (default: book)")
    parser.add_argument("--out", default=None, help="build folder (default: <book-dir>/_build)")


def main(args: argparse.Namespace) -> int:
    """``sgvalues book``: assemble and build; 0 on success, 1 with a message on failure."""
    import time

    t0 = time.perf_counter()
    try:
        config = assemble(args.default_run, args.runs_root, args.book_dir)
        html = build(args.book_dir, args.out, config)
    except (BookError, RunError) as exc:
        print(f"sgvalues book: error: {exc}", file=sys.stderr)
        return 1
    print(f"book built in {time.perf_counter() - t0:.1f} s: {html / 'index.html'}")
    return 0
