"""``sgvalues prepare``: one WVS file -> every table the study needs, in one folder.

Stages (each in its own module): :func:`sgvalues.data.load_wvs` (respondents) ->
:func:`sgvalues.catalogue.select_questions` (questions) -> :func:`sgvalues.subgroups.build_subgroups`
-> :func:`sgvalues.modal.modal_answers` -> :func:`sgvalues.diversity.diversity_table` ->
:func:`sgvalues.split.build_samples` (checked by :func:`sgvalues.split.assert_no_leakage`).

The folder holds ``questions.csv``, ``excluded_questions.csv``, ``subgroups.csv``,
``modal_answers.csv``, ``diversity.csv``, ``overlap.csv`` (each OOD subgroup's largest respondent
overlap with a train subgroup, :mod:`sgvalues.overlap`), ``samples_train.jsonl``, ``samples_ood.jsonl`` and
``prepare_summary.json`` (counts, the source file's SHA-256 and a hash of every input). Each file
is written to a temporary name and renamed, and the summary goes last, so a crash never leaves a
half-written table and a folder with a summary is complete. The same inputs give identical bytes.

Example
-------
Command line (``--weighted`` tallies answers with ``W_WEIGHT``)::

    sgvalues prepare --wvs WVS_Cross-National_Wave_7_csv_v6_0.csv --out runs/default/data

>>> sorted(OUTPUT_FILES)[:3]
['diversity.csv', 'excluded_questions.csv', 'modal_answers.csv']
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sgvalues.atomic import atomic_write_text
from sgvalues.paths import file_sha256, repo_path
from sgvalues.overlap import OVERLAP_FILE, OVERLAP_THRESHOLD, load_overlap, subgroup_overlap
from sgvalues.split import (SAMPLE_KEYS, SPLITS, assert_no_leakage, build_samples,
                            load_samples_frame, write_samples)

__all__ = [
    "OUTPUT_FILES",
    "SUMMARY_FILE",
    "SYNTHETIC_FILENAME",
    "Prepared",
    "prepare",
    "load_prepared",
    "prepare_run_data",
    "ensure_prepared",
    "run_source",
    "params_with_data",
    "source_note",
    "catalogue_by_theme",
    "configure_parser",
    "main",
]

SUMMARY_FILE = "prepare_summary.json"
SYNTHETIC_FILENAME = "synthetic_wvs7_singapore.csv"
OUTPUT_FILES = ("questions.csv", "excluded_questions.csv", "subgroups.csv", "modal_answers.csv",
                "diversity.csv", "overlap.csv", "samples_train.jsonl", "samples_ood.jsonl", SUMMARY_FILE)
#: bump when the folder's layout or meaning changes, so old folders are rebuilt
FORMAT_VERSION = 4  # 2: samples carry the question's ``wording``; 3: every tied modal code (``targets``); 4: overlap.csv
# Modules (and the catalogue) whose code decides the tables' contents: their hash is an input.
_CODE_MODULES = ("sgvalues.data", "sgvalues.countries", "sgvalues.catalogue", "sgvalues.subgroups", "sgvalues.modal",
                 "sgvalues.diversity", "sgvalues.prompts", "sgvalues.split", "sgvalues.overlap", "sgvalues.prepare")
_JSON_COLUMNS = ("options", "raw_options", "missing_codes", "adjustment")


@dataclass
class Prepared:
    """The tables of a prepared folder (see ``ARCHITECTURE.md`` for their columns).

    ``samples_train`` / ``samples_ood`` are DataFrames with one row per sample (``levels``,
    ``options`` and ``distribution`` as dicts); ``summary`` is ``prepare_summary.json``.
    """

    path: Path
    questions: pd.DataFrame
    excluded: pd.DataFrame
    subgroups: pd.DataFrame
    modal_answers: pd.DataFrame
    diversity: pd.DataFrame
    samples_train: pd.DataFrame
    samples_ood: pd.DataFrame
    summary: dict = field(default_factory=dict)
    #: ``overlap.csv``: each OOD subgroup's largest respondent overlap with a train subgroup
    overlap: pd.DataFrame = field(default_factory=pd.DataFrame)

    def samples(self, split: str) -> pd.DataFrame:
        """The samples of ``split`` (``"train"`` or ``"ood"``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.samples_train if split == "train" else self.samples_ood

    @property
    def synthetic(self) -> bool:
        """Whether the source was the synthetic sample."""
        return bool(self.summary.get("synthetic"))


def _code_sha256() -> str:
    h = hashlib.sha256()
    for name in _CODE_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            h.update(f"{name}:absent".encode())
            continue
        h.update(name.encode() + Path(mod.__file__).read_bytes())
    cat = Path(importlib.import_module("sgvalues").__file__).parent / "resources" / "catalogue.csv"
    if cat.is_file():
        h.update(cat.read_bytes())
    for profile in sorted((cat.parent / "countries").glob("*.yaml")):  # country profiles are inputs too
        h.update(profile.name.encode() + profile.read_bytes())
    return h.hexdigest()


def _inputs(source_sha256: str, country: int, min_n: int, weighted: bool, extra: dict | None) -> dict:
    return {"format": FORMAT_VERSION, "source_sha256": source_sha256, "country": int(country),
            "min_n": int(min_n), "weighted": bool(weighted), "code_sha256": _code_sha256(), **(extra or {})}


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _json_text(mapping: dict) -> str:
    items = sorted(mapping.items(), key=lambda kv: int(kv[0]))
    return json.dumps({str(k): ("" if v is None else v) for k, v in items}, ensure_ascii=False)


def _questions_for_csv(df: pd.DataFrame) -> pd.DataFrame:
    out = df.reset_index(drop=True).copy()
    for col in _JSON_COLUMNS:
        if col in out.columns:
            out[col] = [v if isinstance(v, str) else _json_text(v) for v in out[col]]
    return out


def _questions_from_csv(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in _JSON_COLUMNS:
        if col in out.columns:
            parsed = []
            for v in out[col]:
                m = json.loads(v) if v else {}
                if col == "adjustment":
                    parsed.append({int(k): (None if x == "" else int(x)) for k, x in m.items()})
                else:
                    parsed.append({int(k): x for k, x in m.items()})
            out[col] = parsed
    return out


def _csv_text(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def _questions_label(questions: str | Path) -> str:
    """A rule's name, or a question-list file's name."""
    from sgvalues.catalogue import QUESTION_RULES

    return questions if isinstance(questions, str) and questions in QUESTION_RULES else Path(questions).name


def _questions_inputs(questions: str | Path) -> dict:
    """Inputs of the question rule for the up-to-date check ({} for ``default``, so folders
    prepared before the rule existed stay valid); a list file counts by its bytes."""
    if questions == "default":
        return {}
    label = _questions_label(questions)
    if label != questions:
        return {"questions": label, "questions_sha256": file_sha256(questions)}
    return {"questions": label}


def prepare(wvs_path: str | Path, out_dir: str | Path, country: int = 702, min_n: int = 30,
            weighted: bool = False, *, questions: str | Path = "default",
            _extra_inputs: dict | None = None) -> Prepared:
    """Build every table of the study from one WVS-7 file and write them into ``out_dir``.

    Parameters
    ----------
    wvs_path : path
        Official WVS-7 file (.csv, .sav, .dta, .rds, ...) or a synthetic one in that format.
    out_dir : path
        Folder to write (created if needed; existing files are replaced atomically).
    country : int
        ``B_COUNTRY`` code (702 = Singapore, 458 = Malaysia); its shipped country profile
        (:mod:`sgvalues.countries`) gives the axes, strata and persona wording.
    min_n : int
        Keep a subgroup with at least this many respondents.
    weighted : bool
        Modal answers and distributions with ``W_WEIGHT``.
    questions : str or path
        Question rule (``"default"``, ``"paper"``) or a file listing question ids
        (:func:`sgvalues.catalogue.question_rule`).

    Returns
    -------
    Prepared
        The tables just written.

    Notes
    -----
    Samples = kept subgroups x selected questions, minus the (question, subgroup) pairs with no
    valid answer; ``prepare_summary.json`` reports both counts per split, the ties
    (``n_tied_modes > 1``), whether the source is synthetic and its SHA-256.
    """
    from sgvalues.catalogue import load_catalogue, select_questions
    from sgvalues.data import load_wvs
    from sgvalues.diversity import diversity_table
    from sgvalues.modal import modal_answers
    from sgvalues.countries import load_profile
    from sgvalues.subgroups import build_subgroups

    t0 = time.perf_counter()
    wvs_path, out_dir = Path(wvs_path), Path(out_dir)
    respondents = load_wvs(wvs_path, country=country)
    profile = load_profile(respondents.attrs["profile"])
    selected, excluded = select_questions(load_catalogue(), respondents, questions=questions)
    selected = selected.sort_values("number", kind="stable").reset_index(drop=True)
    excluded = excluded.sort_values("number", kind="stable").reset_index(drop=True)
    subgroups = build_subgroups(respondents, min_n=min_n, profile=profile)
    modal = modal_answers(respondents, selected, subgroups, weighted=weighted)
    diversity = diversity_table(modal, selected)
    samples = build_samples(selected, subgroups, modal, profile=profile)
    train = [s for s in samples if s["split"] == "train"]
    ood = [s for s in samples if s["split"] == "ood"]
    leakage = assert_no_leakage(train, ood)
    overlap = subgroup_overlap(respondents, subgroups, profile=profile)

    source_sha = file_sha256(wvs_path)
    inputs = _inputs(source_sha, country, min_n, weighted, _extra_inputs)
    n_pairs = {s: int((subgroups["split"] == s).sum()) * len(selected) for s in SPLITS}
    split_of = dict(zip(subgroups["subgroup"], subgroups["split"]))
    modal_split = modal["subgroup"].map(split_of)
    summary = {
        "source_file": wvs_path.name,
        "source_sha256": source_sha,
        "synthetic": bool(respondents.attrs.get("synthetic", False)),
        "country": int(country),
        "min_n": int(min_n),
        "weighted": bool(weighted),
        "questions_rule": _questions_label(questions),
        "n_respondents": int(len(respondents)),
        "n_questions": int(len(selected)),
        "n_excluded_questions": int(len(excluded)),
        "subgroups": {s: int((subgroups["split"] == s).sum()) for s in SPLITS},
        "samples": {"train": len(train), "ood": len(ood)},
        "missing_pairs": {s: n_pairs[s] - int((modal_split == s).sum()) for s in SPLITS},
        "ties": {s: int(((modal["n_tied_modes"] > 1) & (modal_split == s)).sum()) for s in SPLITS},
        "overlap_flagged": {"threshold": OVERLAP_THRESHOLD, "n": int(overlap["flagged"].sum())},
        "leakage_check": {k: leakage[k] for k in ("ok", "n_train_combos", "n_ood_combos",
                                                  "ood_combos_with_levels_seen")},
        "inputs": inputs,
        "inputs_sha256": _hash(inputs),
    }

    out_dir.mkdir(parents=True, exist_ok=True)
    # The summary marks a complete folder: drop it first so a crash mid-way reads as "stale".
    (out_dir / SUMMARY_FILE).unlink(missing_ok=True)
    atomic_write_text(out_dir / "questions.csv", _csv_text(_questions_for_csv(selected)))
    atomic_write_text(out_dir / "excluded_questions.csv", _csv_text(_questions_for_csv(excluded)))
    atomic_write_text(out_dir / "subgroups.csv", _csv_text(subgroups))
    atomic_write_text(out_dir / "modal_answers.csv", _csv_text(modal))
    atomic_write_text(out_dir / "diversity.csv", _csv_text(diversity))
    atomic_write_text(out_dir / OVERLAP_FILE, _csv_text(overlap))
    write_samples(samples, out_dir)
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    # Hand back what was written without reading it again (``load_prepared`` gives equal tables).
    return Prepared(path=out_dir, questions=selected, excluded=excluded, subgroups=subgroups, modal_answers=modal,
                    diversity=diversity, samples_train=pd.DataFrame(train, columns=list(SAMPLE_KEYS)),
                    samples_ood=pd.DataFrame(ood, columns=list(SAMPLE_KEYS)),
                    # wall time in memory only, so that the files stay byte-identical
                    summary={**summary, "wall_s": round(time.perf_counter() - t0, 3)}, overlap=overlap)


def load_prepared(directory: str | Path) -> Prepared:
    """Read a prepared folder back (``questions`` with dict ``options`` like the catalogue)."""
    d = Path(directory)
    missing = [f for f in OUTPUT_FILES if not (d / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{d}: not a complete prepared folder, missing {missing}; "
                                f"run `sgvalues prepare --wvs FILE --out {d}`")
    strings = {"keep_default_na": False, "na_values": [""]}
    # "None" is a religion level: never let pandas read it as missing.
    questions = _questions_from_csv(pd.read_csv(d / "questions.csv", keep_default_na=False,
                                                dtype={"question_id": str}))
    excluded = _questions_from_csv(pd.read_csv(d / "excluded_questions.csv", keep_default_na=False,
                                               dtype={"question_id": str}))
    for df in (questions, excluded):
        for col in ("number", "scale_min", "scale_max", "n_options"):
            if col in df.columns:
                df[col] = df[col].astype(int)
    subgroups = pd.read_csv(d / "subgroups.csv", **strings)
    modal = pd.read_csv(d / "modal_answers.csv", **strings)
    diversity = pd.read_csv(d / "diversity.csv", **strings)
    summary = json.loads((d / SUMMARY_FILE).read_text())
    return Prepared(path=d, questions=questions, excluded=excluded, subgroups=subgroups, modal_answers=modal,
                    diversity=diversity, samples_train=load_samples_frame(d, "train"),
                    samples_ood=load_samples_frame(d, "ood"), summary=summary, overlap=load_overlap(d))


def _up_to_date(out_dir: Path, inputs: dict) -> bool:
    summary_path = out_dir / SUMMARY_FILE
    if not summary_path.is_file() or any(not (out_dir / f).is_file() for f in OUTPUT_FILES):
        return False
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return summary.get("inputs_sha256") == _hash(inputs)


def prepare_run_data(params, run_dir: str | Path) -> Path:
    """Prepare ``<run_dir>/data`` for a run's params, unless it is already up to date.

    With ``params.data.wvs_file`` unset, the synthetic sample (seed ``data.synthetic_seed``,
    ``data.synthetic_n`` respondents) is written to ``<run_dir>/data/synthetic_wvs7_singapore.csv``
    first. The folder is rebuilt only when an input changed: the source file's bytes, ``country``,
    ``min_n``, ``weighted``, the synthetic seed and size, or the code of the preparing modules
    (their hash is stored in ``prepare_summary.json``). Returns the data folder.
    """
    from filelock import FileLock

    from sgvalues.catalogue import QUESTION_RULES
    data = params.data
    out_dir = Path(run_dir) / "data"
    questions = data.questions if data.questions in QUESTION_RULES else repo_path(data.questions)
    if isinstance(questions, Path) and not questions.is_file():
        raise FileNotFoundError(f"data.questions = {data.questions!r}: no such file (looked at {questions})")
    out_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out_dir / ".prepare.lock")):
        if data.wvs_file is None:
            import sgvalues.synthetic as synthetic

            # the generator's code and resources are inputs too: a changed generator means a different sample
            extra = {"synthetic_seed": int(data.synthetic_seed), "synthetic_n": int(data.synthetic_n),
                     "synthetic_inputs_sha256": {p.name: file_sha256(p) for p in synthetic.input_files()},
                     **_questions_inputs(questions)}
            source = out_dir / SYNTHETIC_FILENAME
            if source.is_file():
                inputs = _inputs(file_sha256(source), data.country, data.min_n, data.weighted, extra)
                if _up_to_date(out_dir, inputs):
                    return out_dir
            # Write beside the target and rename, so a crash never leaves half a sample behind.
            tmp = out_dir / f".{SYNTHETIC_FILENAME}.tmp.csv"
            synthetic.write_sample(tmp, n=data.synthetic_n, seed=data.synthetic_seed)
            tmp.replace(source)
        else:
            source = run_source(params, run_dir)
            if not source.is_file():
                raise FileNotFoundError(f"data.wvs_file = {data.wvs_file!r}: no such file (looked at {source})")
            extra = _questions_inputs(questions)
            inputs = _inputs(file_sha256(source), data.country, data.min_n, data.weighted, extra)
            if _up_to_date(out_dir, inputs):
                return out_dir
        prepare(source, out_dir, country=data.country, min_n=data.min_n, weighted=data.weighted,
                questions=questions, _extra_inputs=extra)
    return out_dir


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``sgvalues prepare``."""
    parser.add_argument("--wvs", required=True, metavar="FILE",
                        help="WVS-7 file (.csv .csv.gz .sav .dta .rds), official or synthetic")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the tables into")
    parser.add_argument("--country", type=int, default=702,
                        help="B_COUNTRY code with a country profile (default 702, Singapore; 458 Malaysia)")
    parser.add_argument("--min-n", type=int, default=30, dest="min_n",
                        help="keep subgroups with at least this many respondents (default 30)")
    parser.add_argument("--weighted", action="store_true", help="weight answers by W_WEIGHT")
    parser.add_argument("--questions", default="default", metavar="RULE_OR_FILE",
                        help="question rule: 'default', 'paper' (the paper's 214, reconstructed) or a "
                             "file listing question ids, one per line")


def main(args: argparse.Namespace) -> int:
    """Run ``sgvalues prepare``; prints a one-paragraph summary. Exit 2 on bad input."""
    try:
        p = prepare(args.wvs, args.out, country=args.country, min_n=args.min_n, weighted=args.weighted,
                    questions=args.questions)
    except (FileNotFoundError, ValueError) as exc:
        print(f"sgvalues prepare: error: {exc}", file=sys.stderr)
        return 2
    s = p.summary
    print(f"{s['source_file']} ({'synthetic' if s['synthetic'] else 'survey'}, {s['n_respondents']} respondents, "
          f"country {s['country']}): {s['n_questions']} questions ({s['n_excluded_questions']} excluded); "
          f"subgroups train {s['subgroups']['train']} / ood {s['subgroups']['ood']}; "
          f"samples train {s['samples']['train']} / ood {s['samples']['ood']}; "
          f"ties {s['ties']['train'] + s['ties']['ood']}; written to {p.path} in {s['wall_s']:.2f} s")
    return 0


def params_with_data(params, **overrides):
    """``params`` with some ``data`` fields replaced; ``None`` values mean "keep the params' value".

    Used by notebooks whose papermill parameters (``wvs_file=None`` ...) may override the file.

    >>> from sgvalues.params import Params
    >>> params_with_data(Params(name="x"), min_n=20, weighted=None).data.min_n
    20
    """
    import dataclasses

    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(params.data)})
    if unknown:
        raise ValueError(f"unknown data parameter(s) {unknown}")
    return dataclasses.replace(params, data=dataclasses.replace(params.data, **changes))


def run_source(params, run_dir: str | Path) -> Path:
    """The survey file a run reads: ``data.wvs_file`` or the run's synthetic sample."""

    if params.data.wvs_file is None:
        return Path(run_dir) / "data" / SYNTHETIC_FILENAME
    return repo_path(params.data.wvs_file)


def ensure_prepared(params, run_dir: str | Path) -> Path:
    """The run's prepared folder: used as it is when complete (e.g. written by notebook 01 with
    overrides), otherwise built with :func:`prepare_run_data`."""
    data = Path(run_dir) / "data"
    if all((data / f).is_file() for f in OUTPUT_FILES):
        return data
    return prepare_run_data(params, run_dir)


def source_note(summary: dict) -> str:
    """One markdown sentence saying where the numbers come from (loudly when synthetic)."""
    inputs = summary.get("inputs", {})
    how = "weighted by W_WEIGHT" if summary.get("weighted") else "unweighted"
    if summary.get("synthetic"):
        seed = inputs.get("synthetic_seed")
        return (f"**Synthetic data.** These results come from the synthetic Singapore-like sample "
                f"({summary['n_respondents']:,} invented respondents{'' if seed is None else f', seed {seed}'}), "
                f"not from the World Values Survey; modal answers {how}, min_n = {summary['min_n']}.")
    return (f"**WVS-7 data.** From `{summary['source_file']}` (country {summary['country']}, "
            f"{summary['n_respondents']:,} respondents); modal answers {how}, min_n = {summary['min_n']}.")


def catalogue_by_theme(questions: pd.DataFrame, excluded: pd.DataFrame) -> pd.DataFrame:
    """Questions per theme: ``theme, selected, excluded, total`` in questionnaire order."""
    from sgvalues.catalogue import THEMES

    sel = questions["theme"].value_counts()
    exc = excluded["theme"].value_counts()
    themes = [t for t in THEMES if t in set(sel.index) | set(exc.index)]
    out = pd.DataFrame({"theme": themes, "selected": [int(sel.get(t, 0)) for t in themes],
                        "excluded": [int(exc.get(t, 0)) for t in themes]})
    out["total"] = out["selected"] + out["excluded"]
    return out
