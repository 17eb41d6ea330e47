"""The compositional split: (question, subgroup) samples for training and out-of-distribution tests.

Training sees the four single axes and the three pairs that include ``sex``; the OOD set holds
the three pairs without ``sex`` (``age_group_x_religion``, ``age_group_x_ethnicity``,
``ethnicity_x_religion``). So an OOD persona such as "a Malay Muslim" combines levels the model
was trained on one at a time but never together: the split tests composition, not memory.
:func:`assert_no_leakage` proves it on the sample files.

One **sample** is one (question, subgroup) with its modal answer as ``target`` (the lowest tied
code), every tied modal code as ``targets`` (any of them is a correct answer) and its prompt
parts (see :mod:`sgvalues.prompts`). Files are JSON Lines in a fixed order (question number,
stratum order, subgroup order) with a fixed key order, so the same inputs give the same bytes.

Example
-------
>>> train = [{"sample_id": "Q1_sex:Male", "split": "train", "stratum": "sex", "levels": {"sex": "Male"}}]
>>> ood = [{"sample_id": "Q1_ethnicity_x_religion:Malay|Muslim", "split": "ood",
...         "stratum": "ethnicity_x_religion", "levels": {"ethnicity": "Malay", "religion": "Muslim"}}]
>>> assert_no_leakage(train, ood)["ok"]
True
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from sgvalues.atomic import atomic_write_text
from sgvalues.prompts import open_prompt, structured_prompt, user_persona
from sgvalues.countries import profile_for_levels, resolve_profile
from sgvalues.tables import as_records, json_cell
from sgvalues.subgroups import STRATUM_NAMES

__all__ = [
    "SPLITS",
    "SAMPLE_KEYS",
    "LeakageError",
    "build_samples",
    "write_samples",
    "sample_path",
    "load_samples",
    "load_samples_frame",
    "assert_no_leakage",
    "split_counts",
    "example_prompts",
    "strata_table",
]

SPLITS = ("train", "ood")
SAMPLE_KEYS = ("sample_id", "split", "question_id", "theme", "wording", "stratum", "subgroup", "levels", "target",
               "targets", "scale_min", "scale_max", "options", "distribution", "n_valid", "system", "user_shared",
               "user_persona", "open_user")

#: keys added after the first prepared folders; a record without them still loads (readers such as
#: ``judge.question_text`` fall back), and ``sgvalues prepare`` rebuilds such folders (FORMAT_VERSION)
_LATER_KEYS = ("wording", "targets")


class LeakageError(AssertionError):
    """An OOD stratum, level combination or sample also appears in training."""


def build_samples(questions: pd.DataFrame, subgroups: pd.DataFrame, modal: pd.DataFrame,
                  profile=None) -> list[dict]:
    """One sample per (question, subgroup) row of ``modal``, with target and prompt parts.

    Parameters
    ----------
    questions : DataFrame
        Selected catalogue rows (``question_id, number, theme, wording, options, scale_min,
        scale_max``).
    subgroups : DataFrame
        Kept subgroups (``stratum, subgroup, split, levels``).
    modal : DataFrame
        ``modal.modal_answers`` output; pairs without a valid answer have no row, hence no sample.
    profile : CountryProfile, int or str, optional
        Country profile (stratum order, persona wording; :mod:`sgvalues.countries`); default
        Singapore's.

    Returns
    -------
    list of dict
        Records with keys :data:`SAMPLE_KEYS`, ordered by question number, stratum order and
        subgroup order (the row order of ``subgroups`` within a stratum).
    """
    for name, df, cols in (("questions", questions, ["question_id", "number", "theme", "wording", "options",
                                                     "scale_min", "scale_max"]),
                           ("subgroups", subgroups, ["stratum", "subgroup", "split", "levels"]),
                           ("modal_answers", modal, ["question_id", "subgroup", "modal_answer", "distribution",
                                                     "n_valid"])):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"{name}: missing column(s) {missing}")
    q = questions.set_index("question_id")
    unknown_q = sorted(set(modal["question_id"]) - set(q.index))
    unknown_g = sorted(set(modal["subgroup"]) - set(subgroups["subgroup"]))
    if unknown_q or unknown_g:
        raise ValueError(f"modal_answers: question(s) {unknown_q[:5]} / subgroup(s) {unknown_g[:5]} "
                         "are not in questions / subgroups")
    prof = resolve_profile(profile)
    stratum_rank = {s: i for i, s in enumerate(prof.stratum_names)}
    sg = subgroups.reset_index(drop=True)
    sub_rank = {sid: (stratum_rank[s], i) for i, (s, sid) in enumerate(zip(sg["stratum"], sg["subgroup"]))}
    sub_info = {r.subgroup: (r.stratum, r.split, dict(json_cell(r.levels))) for r in sg.itertuples(index=False)}

    qinfo = {qid: {"number": int(r["number"]), "theme": r["theme"], "wording": r["wording"],
                   "options": r["options"], "scale_min": int(r["scale_min"]), "scale_max": int(r["scale_max"])}
             for qid, r in q.iterrows()}
    cols = ["question_id", "subgroup", "modal_answer", "distribution", "n_valid"]
    # every tied modal code (modal.tied_modes); a table written before the column: the target alone
    tied = (modal["tied_modes"].tolist() if "tied_modes" in modal.columns
            else [[int(t)] for t in modal["modal_answer"]])
    records = [{**dict(zip(cols, vals)), "tied_modes": t} for *vals, t in zip(*(modal[c].tolist() for c in cols), tied)]
    records.sort(key=lambda r: (qinfo[r["question_id"]]["number"], sub_rank[r["subgroup"]]))
    shared_cache: dict[str, tuple[dict, dict]] = {}
    persona_cache = {sid: user_persona(info[2], prof) for sid, info in sub_info.items()}
    samples = []
    for row in records:
        qid, sid = row["question_id"], row["subgroup"]
        stratum, split, levels = sub_info[sid]
        qrow = qinfo[qid]
        if qid not in shared_cache:
            shared_cache[qid] = (_options(qrow["options"]), structured_prompt(qrow, {}))
        options, shared = shared_cache[qid]
        samples.append({
            "sample_id": f"{qid}_{sid}",
            "split": split,
            "question_id": qid,
            "theme": qrow["theme"],
            "wording": str(qrow["wording"]).strip(),
            "stratum": stratum,
            "subgroup": sid,
            "levels": levels,
            "target": int(row["modal_answer"]),
            "targets": _targets(row["tied_modes"], row["modal_answer"], qid, sid),
            "scale_min": qrow["scale_min"],
            "scale_max": qrow["scale_max"],
            "options": options,
            "distribution": {str(k): float(v) for k, v in json_cell(row["distribution"]).items()},
            "n_valid": int(row["n_valid"]),
            "system": shared["system"],
            "user_shared": shared["user_shared"],
            "user_persona": persona_cache[sid],
            "open_user": open_prompt(qrow, levels, prof),
        })
    return samples


def _targets(tied, target, qid: str, sid: str) -> list[int]:
    """Every tied modal code as ints, ascending; the target (the lowest) must be among them."""
    codes = sorted(int(c) for c in (json.loads(tied) if isinstance(tied, str) else tied))
    if int(target) not in codes:
        raise ValueError(f"modal_answers: question {qid}, subgroup {sid}: tied_modes {codes} does not hold the "
                         f"modal_answer {int(target)}; expected every tied code, the modal answer among them")
    return codes


def _options(options) -> dict[str, str]:
    d = json_cell(options)
    return {str(k): str(v) for k, v in sorted(d.items(), key=lambda kv: int(kv[0]))}


def sample_path(directory: str | Path, split: str) -> Path:
    """``<directory>/samples_<split>.jsonl``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return Path(directory) / f"samples_{split}.jsonl"


# the C-accelerated encoder; identical output to json.dumps(record, ensure_ascii=False)
_encode = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


def write_samples(samples: Iterable[Mapping], directory: str | Path) -> dict[str, Path]:
    """Write ``samples_train.jsonl`` and ``samples_ood.jsonl`` (atomically, UTF-8, one record a line)."""
    by_split = {s: [] for s in SPLITS}
    for rec in samples:
        if rec["split"] not in by_split:
            raise ValueError(f"sample {rec.get('sample_id')!r}: split {rec['split']!r} not in {SPLITS}")
        by_split[rec["split"]].append(_encode(rec if tuple(rec) == SAMPLE_KEYS else {k: rec[k] for k in SAMPLE_KEYS}))
    paths = {}
    for split, lines in by_split.items():
        paths[split] = sample_path(directory, split)
        atomic_write_text(paths[split], "".join(line + "\n" for line in lines))
    return paths


def load_samples(directory: str | Path, split: str) -> list[dict]:
    """Read ``samples_<split>.jsonl`` from a prepared folder as a list of dicts."""
    path = sample_path(directory, split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no samples file; run `sgvalues prepare --out {Path(directory)}` first")
    out = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {n}: not valid JSON ({exc.msg})") from exc
            missing = [k for k in SAMPLE_KEYS if k not in rec and k not in _LATER_KEYS]
            if missing:
                raise ValueError(f"{path}, line {n}: missing key(s) {missing}")
            out.append(rec)
    return out


def load_samples_frame(directory: str | Path, split: str) -> pd.DataFrame:
    """:func:`load_samples` as a DataFrame (``levels``, ``options``, ``distribution`` stay dicts)."""
    return pd.DataFrame(load_samples(directory, split), columns=list(SAMPLE_KEYS))


def _combo(levels) -> frozenset:
    return frozenset(f"{a}={v}" for a, v in json_cell(levels).items())


def assert_no_leakage(train, ood) -> dict:
    """Prove the split is compositional: nothing of the OOD side appears in training.

    Checks that (1) every record sits in its declared split, (2) no OOD stratum appears in
    training, (3) no OOD combination of levels — the set of ``axis=level`` pairs — appears in
    training under any stratum, (4) no sample id is in both.

    Parameters
    ----------
    train, ood : list of dict or DataFrame
        Sample records (need ``sample_id, split, stratum, levels``).

    Returns
    -------
    dict
        ``ok`` (True), counts of strata and combinations on each side, and
        ``ood_combos_with_levels_seen`` = how many OOD combinations have every single level
        present in training (the compositional claim).

    Raises
    ------
    LeakageError
        listing the leaked strata, combinations or sample ids.
    """
    tr, od = as_records(train), as_records(ood)
    problems = []
    for name, recs, want in (("train", tr, "train"), ("ood", od, "ood")):
        wrong = sorted({r["sample_id"] for r in recs if r["split"] != want})
        if wrong:
            problems.append(f"{len(wrong)} {name} record(s) with split != {want!r}, e.g. {wrong[:3]}")
    tr_strata = {r["stratum"] for r in tr}
    od_strata = {r["stratum"] for r in od}
    if tr_strata & od_strata:
        problems.append(f"OOD strata also in training: {sorted(tr_strata & od_strata)}")
    tr_combos = {_combo(r["levels"]) for r in tr}
    od_combos = {_combo(r["levels"]) for r in od}
    leaked = sorted("&".join(sorted(c)) for c in tr_combos & od_combos)
    if leaked:
        problems.append(f"OOD level combinations also in training: {leaked[:5]}" + (" ..." if len(leaked) > 5 else ""))
    ids = {r["sample_id"] for r in tr} & {r["sample_id"] for r in od}
    if ids:
        problems.append(f"sample ids in both splits: {sorted(ids)[:5]}")
    if problems:
        raise LeakageError("split leakage: " + "; ".join(problems))
    seen = {lv for c in tr_combos for lv in c}
    def rank(s):
        return (STRATUM_NAMES.index(s) if s in STRATUM_NAMES else len(STRATUM_NAMES), s)

    return {"ok": True, "train_strata": sorted(tr_strata, key=rank), "ood_strata": sorted(od_strata, key=rank),
            "n_train_combos": len(tr_combos), "n_ood_combos": len(od_combos),
            "ood_combos_with_levels_seen": sum(1 for c in od_combos if c <= seen)}


def split_counts(subgroups: pd.DataFrame, train, ood, n_questions: int) -> pd.DataFrame:
    """Our counts beside the published ones: ``quantity, ours, published``."""
    from sgvalues.published import published

    pub = published()["counts"]
    rows = [("questions", n_questions, pub["questions"]),
            ("train subgroups", int((subgroups["split"] == "train").sum()), pub["train_subgroups"]),
            ("ood subgroups", int((subgroups["split"] == "ood").sum()), pub["ood_subgroups"]),
            ("train samples", len(as_records(train)), pub["train_samples"]),
            ("ood samples", len(as_records(ood)), pub["ood_samples"]),
            ("all samples", len(as_records(train)) + len(as_records(ood)), pub["all_samples"])]
    return pd.DataFrame(rows, columns=["quantity", "ours", "published"])


def example_prompts(samples, question_id: str | None = None) -> pd.DataFrame:
    """The first subgroup of every stratum for one question: ``stratum, subgroup, user_persona``.

    ``question_id`` defaults to the first question in ``samples``.
    """
    recs = as_records(samples)
    if not recs:
        return pd.DataFrame(columns=["stratum", "subgroup", "user_persona"])
    qid = question_id or recs[0]["question_id"]
    seen, rows = set(), []
    for r in recs:
        if r["question_id"] == qid and r["stratum"] not in seen:
            seen.add(r["stratum"])
            rows.append({"stratum": r["stratum"], "subgroup": r["subgroup"], "user_persona": r["user_persona"]})
    return pd.DataFrame(rows)


def table_profile(subgroups: pd.DataFrame | None, profile):
    if profile is None and subgroups is not None and "levels" in subgroups.columns and len(subgroups):
        return profile_for_levels(subgroups["levels"])
    return resolve_profile(profile)


def strata_table(subgroups: pd.DataFrame, profile=None) -> pd.DataFrame:
    """One row per stratum: ``stratum, axes, split, possible, kept`` (subgroups before / after min_n).

    ``profile``: the country profile (default: the one whose levels ``subgroups`` holds).
    """
    prof = table_profile(subgroups, profile)
    kept = subgroups["stratum"].value_counts().to_dict()
    return pd.DataFrame([{"stratum": st.name, "axes": " x ".join(st.axes), "split": st.split,
                          "possible": st.n_levels, "kept": int(kept.get(st.name, 0))} for st in prof.strata])
