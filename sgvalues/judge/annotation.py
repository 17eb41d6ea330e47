"""Calibration against people: annotation sheets, reading ratings, weighted-kappa agreement.

:func:`export_annotation_sheet` writes a sheet for a seminar (``book/annotation_guide.md``
explains the rubric and the CSV format); :func:`agreement_table` compares the judge with the
annotators (human-AI) and the annotators with each other (human-human) by weighted Cohen's kappa.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from sgvalues.judge.statistics import weighted_kappa
from sgvalues.judge.verdicts import DIMENSIONS

# --------------------------------------------------------------------------------------------
# human calibration
# --------------------------------------------------------------------------------------------

#: columns of a human ratings file (see book/annotation_guide.md); ``candidate`` is optional
ANNOTATION_COLUMNS = ("sample_id", "dimension", "order", "annotator", "verdict")

#: ordinal coding of verdicts for the weighted kappa: tie lies between the two answers
_ORDINAL = {"B": 0, "tie": 1, "A": 2}


def export_annotation_sheet(run_dir: str | Path, path: str | Path, candidate: str = "base",
                            both_orders: bool = False, seed: int = 0) -> pd.DataFrame:
    """Write a sheet for human annotators: each item with both answers and a blank verdict.

    Parameters
    ----------
    run_dir : path
        A run folder whose ``judge/`` holds ``generations.csv`` and ``verdicts.csv``.
    path : path
        Where to write the CSV.
    candidate : {"base", "sft"}
        Which comparison to annotate.
    both_orders : bool
        Annotate each item in both orders (twice the work); by default one order per item,
        chosen at random (seeded) so that annotators see the candidate first half the time.
    seed : int
        Seed of that choice.

    Returns
    -------
    pandas.DataFrame
        The sheet: ``sample_id, candidate, dimension, order, persona, question,
        majority_answer, answer_A, answer_B, criterion, annotator, verdict`` (the last two blank).
        Annotators never see which answer came from which model.
    """
    run_dir = Path(run_dir)
    gen_file, ver_file = run_dir / "judge" / "generations.csv", run_dir / "judge" / "verdicts.csv"
    for f in (gen_file, ver_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: not found; run `sgvalues judge --run-dir {run_dir}` first")
    gens = pd.read_csv(gen_file, keep_default_na=False)
    ver = pd.read_csv(ver_file, keep_default_na=False)
    ver = ver[ver["candidate"] == candidate]
    if ver.empty:
        raise ValueError(f"{ver_file}: no verdicts for candidate {candidate!r} (column 'candidate')")
    text = {(r.sample_id, r.role): r.text for r in gens.itertuples()}
    meta = _pair_records(run_dir)
    rng = np.random.default_rng(seed)
    items = sorted(ver["sample_id"].unique())
    chosen_order = {sid: int(o) for sid, o in zip(items, rng.integers(1, 3, size=len(items)))}
    rows = []
    for r in ver.sort_values(["sample_id", "dimension", "order"]).itertuples():
        if not both_orders and int(r.order) != chosen_order[r.sample_id]:
            continue
        rec = meta.get(r.sample_id, {})
        rows.append({"sample_id": r.sample_id, "candidate": candidate, "dimension": r.dimension,
                     "order": int(r.order), "persona": rec.get("persona", ""), "question": rec.get("question", ""),
                     "majority_answer": rec.get("majority_answer", ""),
                     "answer_A": text.get((r.sample_id, r.role_a), ""), "answer_B": text.get((r.sample_id, r.role_b), ""),
                     "criterion": DIMENSIONS.get(r.dimension, ""), "annotator": "", "verdict": ""})
    sheet = pd.DataFrame(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.to_csv(path, index=False)
    return sheet


def _pair_records(run_dir: Path) -> dict:
    f = run_dir / "judge" / "pairs.csv"
    if not f.is_file():
        return {}
    df = pd.read_csv(f, keep_default_na=False)
    return {r["sample_id"]: r for r in df.to_dict("records")}


def read_annotations(files: Iterable[str | Path] | str | Path) -> pd.DataFrame:
    """Read and validate human ratings files (format in ``book/annotation_guide.md``).

    Rows with an empty verdict are skipped (not yet annotated). A folder reads every ``*.csv``
    in it.

    Returns
    -------
    pandas.DataFrame
        ``sample_id, candidate, dimension, order, annotator, verdict, file``; verdicts
        normalised to ``A``/``B``/``tie``.

    Raises
    ------
    ValueError
        naming the file, row, column and value when something is not as expected.
    """
    if isinstance(files, (str, Path)):
        files = [files]
    paths: list[Path] = []
    for f in files:
        f = Path(f)
        paths.extend(sorted(f.glob("*.csv")) if f.is_dir() else [f])
    frames = []
    for f in paths:
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        if missing := [c for c in ANNOTATION_COLUMNS if c not in df.columns]:
            raise ValueError(f"{f}: missing column(s) {missing}; expected {list(ANNOTATION_COLUMNS)} "
                             "(+ optional 'candidate')")
        if "candidate" not in df.columns:
            df["candidate"] = "base"
        df = df[df["verdict"].str.strip() != ""].copy()
        for i, r in df.iterrows():
            row = i + 2  # header is line 1
            v = r["verdict"].strip().lower()
            if v not in ("a", "b", "tie"):
                raise ValueError(f"{f}: line {row}, column 'verdict' = {r['verdict']!r}: expected A, B or tie")
            if r["order"].strip() not in ("1", "2"):
                raise ValueError(f"{f}: line {row}, column 'order' = {r['order']!r}: expected 1 or 2")
            if r["dimension"].strip() not in DIMENSIONS:
                raise ValueError(f"{f}: line {row}, column 'dimension' = {r['dimension']!r}: "
                                 f"expected one of {list(DIMENSIONS)}")
            if not r["annotator"].strip():
                raise ValueError(f"{f}: line {row}, column 'annotator' is empty: expected a name or code")
            if r["candidate"].strip() not in ("base", "sft"):
                raise ValueError(f"{f}: line {row}, column 'candidate' = {r['candidate']!r}: expected base or sft")
        df["verdict"] = df["verdict"].str.strip().str.lower().map({"a": "A", "b": "B", "tie": "tie"})
        df["order"] = df["order"].str.strip().astype(int)
        for c in ("sample_id", "dimension", "annotator", "candidate"):
            df[c] = df[c].str.strip()
        df["file"] = str(f)
        frames.append(df[["sample_id", "candidate", "dimension", "order", "annotator", "verdict", "file"]])
    cols = ["sample_id", "candidate", "dimension", "order", "annotator", "verdict", "file"]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    dup = out.duplicated(["sample_id", "candidate", "dimension", "order", "annotator"], keep=False)
    if dup.any():
        r = out[dup].iloc[0]
        raise ValueError(f"{r['file']}: annotator {r['annotator']!r} rated sample {r['sample_id']!r} "
                         f"({r['dimension']}, order {r['order']}) more than once")
    return out


def agreement_table(human_files, judge_verdicts: pd.DataFrame, weights: str = "quadratic",
                    min_items: int = 2) -> pd.DataFrame:
    """Human-AI and human-human weighted kappa per dimension.

    Parameters
    ----------
    human_files : path, sequence of paths, or DataFrame
        Human ratings (see :func:`read_annotations`).
    judge_verdicts : pandas.DataFrame
        The judge's verdicts table.
    weights : {"quadratic", "linear", None}
        Kappa weights (:func:`weighted_kappa`).
    min_items : int
        Rater pairs sharing fewer items are skipped.

    Returns
    -------
    pandas.DataFrame
        ``dimension, n_annotators, n_items, kappa_human_ai, n_pairs_human_ai, kappa_human_human,
        n_pairs_human_human, n_judge_unparseable``.

    Notes
    -----
    Verdicts are coded ordinally, B = 0, tie = 1, A = 2, so a tie against a preference is half
    the disagreement of opposite preferences (with quadratic weights, a quarter). Human-AI
    kappa is the mean over annotators of kappa(annotator, judge) on the items both rated;
    human-human kappa is the mean over annotator pairs on their shared items (NaN with fewer
    than two annotators). Items the judge left unparseable are dropped from human-AI.
    """
    human = human_files if isinstance(human_files, pd.DataFrame) else read_annotations(human_files)
    key = ["sample_id", "candidate", "dimension", "order"]
    judge = judge_verdicts.copy()
    judge["order"] = judge["order"].astype(int)
    judge = judge[key + ["verdict"]].rename(columns={"verdict": "judge"})
    rows = []
    for dim in sorted(human["dimension"].unique()):
        h = human[human["dimension"] == dim]
        wide = h.pivot_table(index=key, columns="annotator", values="verdict", aggfunc="first")
        wide = wide.join(judge.set_index(key), how="left")
        annotators = [c for c in wide.columns if c != "judge"]
        n_unp = int((wide["judge"] == "unparseable").sum())
        ha = []
        for a in annotators:
            m = wide[[a, "judge"]].dropna()
            m = m[m["judge"] != "unparseable"]
            if len(m) >= min_items:
                ha.append(weighted_kappa(m[a].map(_ORDINAL), m["judge"].map(_ORDINAL), weights, labels=[0, 1, 2]))
        hh = []
        for a, b in itertools.combinations(annotators, 2):
            m = wide[[a, b]].dropna()
            if len(m) >= min_items:
                hh.append(weighted_kappa(m[a].map(_ORDINAL), m[b].map(_ORDINAL), weights, labels=[0, 1, 2]))
        rows.append({"dimension": dim, "n_annotators": len(annotators), "n_items": len(wide),
                     "kappa_human_ai": float(np.nanmean(ha)) if np.isfinite(ha).any() else np.nan,
                     "n_pairs_human_ai": len(ha),
                     "kappa_human_human": float(np.nanmean(hh)) if np.isfinite(hh).any() else np.nan,
                     "n_pairs_human_human": len(hh), "n_judge_unparseable": n_unp})
    return pd.DataFrame(rows, columns=["dimension", "n_annotators", "n_items", "kappa_human_ai", "n_pairs_human_ai",
                                       "kappa_human_human", "n_pairs_human_human", "n_judge_unparseable"])


