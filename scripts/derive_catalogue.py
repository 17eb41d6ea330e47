#!/usr/bin/env python3
"""Derive ``sgvalues/resources/catalogue.csv`` from the WVS-7 metadata folder.

Usage::

    python scripts/derive_catalogue.py [SHARED_DIR] [--out PATH]

``SHARED_DIR`` (default ``../shared/wvs7`` relative to the repository root) holds the files
described in its ``PROVENANCE.md``: ``codebook.json`` (WorldValuesBench parse of the official
WVS-7 codebook), ``answer_adjustment.json`` (WorldValuesBench ordinal recodings),
``statements_meta_data.jsonl`` (IndieValue: questionnaire stems and sections) and
``wvs7_question_index.csv`` (one row per variable with a heuristic scale type).

The output has one row per question Q1..Q259 and is deterministic: the same inputs give the
same bytes (rows in question order, JSON with sorted numeric keys, ``\\n`` line ends).
See ``sgvalues/resources/CATALOGUE_SOURCES.md`` for the derivation in words.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared" / "wvs7"
DEFAULT_OUT = REPO / "sgvalues" / "resources" / "catalogue.csv"

COLUMNS = [
    "question_id", "number", "theme", "label", "stem", "wording", "options", "raw_options",
    "scale_kind", "scale_min", "scale_max", "n_options", "missing_codes", "adjustment",
]

# The 13 official WVS-7 questionnaire sections in questionnaire order, with their Q ranges
# (WVS-7 master questionnaire; the index file carries the same ranges).
THEMES = [
    ("Social Values, Attitudes & Stereotypes", 1, 45),
    ("Happiness & Well-being", 46, 56),
    ("Social Capital, Trust & Organizational Membership", 57, 105),
    ("Economic Values", 106, 111),
    ("Corruption", 112, 120),
    ("Migration", 121, 130),
    ("Security", 131, 151),
    ("Postmaterialist Index", 152, 157),
    ("Science & Technology", 158, 163),
    ("Religious Values", 164, 175),
    ("Ethical Values & Norms", 176, 198),
    ("Political Interest & Political Participation", 199, 234),
    ("Political Culture & Political Regimes", 235, 259),
]

# ---------------------------------------------------------------------------------------
# Scale kinds checked against the index's heuristic ``scale_type_guess`` by reading the items.
# Each entry: question numbers, the kind we use, and why. Only Q111 changes the guess; the
# rest confirm it (``binary_mentioned`` is renamed ``mentioned``) and say why. Anything not
# listed keeps the guess.
# ---------------------------------------------------------------------------------------
KIND_CORRECTIONS: list[tuple[range | list[int], str, str]] = [
    (range(7, 18), "mentioned",
     "child qualities: respondent picks up to five from a list; 1 = mentioned, 2 = not"),
    (range(18, 27), "mentioned",
     "unwanted neighbours: groups mentioned from a list, not a yes/no answer per item"),
    ([42], "nominal",
     "three qualitatively different stances (revolution / reform / defence), kept unordered"),
    (range(94, 106), "ordinal",
     "membership 0 don't belong < 1 inactive < 2 active is ordered"),
    ([111], "binary",
     "after dropping 3 'Other answer' only statements A/B remain (guess: ordinal)"),
    (range(122, 130), "ordinal",
     "0 disagree < 1 hard to say < 2 agree is ordered"),
    ([91, 92, 93], "nominal",
     "knowledge items: the answer options are unordered facts"),
    (range(152, 158), "nominal",
     "postmaterialist choices: first/second priority among four unordered goals"),
    ([223], "nominal", "party vote intention: country-specific, unordered party codes"),
    (range(149, 151), "binary", "forced choice between two values (freedom vs equality/security)"),
    ([252], "scale_1_10",
     "IndieValue types it mc_10 but it is the 1-10 satisfaction scale"),
]

# Option label fixes where the parsed codebook label is not a usable answer text.
LABEL_CORRECTIONS: dict[tuple[int, int], tuple[str, str]] = {
    # raw code -> new label, reason
    (56, 3): ("About the same", "drop the connective 'Or' left from the read-out wording"),
    (112, 1): ("There is no corruption in my country",
               "codebook labels the end points only '1'/'10'; the stem names them"),
    (112, 10): ("There is abundant corruption in my country", "as above"),
}

# Stems for the six items IndieValue lacks (Q82, Q91-Q93, Q105, Q223). Battery items take the
# stem of their neighbours; the others are written from the codebook label and noted as such.
STEM_FROM_NEIGHBOUR = {82: 81, 105: 104}
STEM_WRITTEN = {
    91: "Which of the following countries is a permanent member of the UN Security Council?",
    92: "Where are the headquarters of the International Monetary Fund (IMF) located?",
    93: "Which of the following problems does the organization Amnesty International deal with?",
    223: "If there were a national election tomorrow, for which party on this list would you "
         "vote?",
}

# Country placeholders in the generic questionnaire, made into plain English so the wording
# reads as a question any respondent (or model) can answer.
PLACEHOLDERS = [
    (r"\[country's nationality\]", "a citizen of your country"),
    (r"\[your country\]", "your country"),
    (r"\[this country\]", "this country"),
    (r"\(nation\)", "this country's"),
    (r"\bthe your country's\b", "your country's"),  # Q196-198 in the IndieValue stem
]

# Battery items whose derived item text reads as a codebook note rather than an item.
ITEM_OVERRIDES = {
    144: "You yourself",  # label "Respondent was victim of a crime during the past year"
    145: "Your immediate family",  # label "Respondent's family was victim of a crime ..."
}


def _clean(text: str) -> str:
    """Normalise quotes and whitespace in codebook / questionnaire text."""
    text = text.replace("\u00b4", "'").replace("\u2019", "'").replace("\u2018", "'")
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    for pattern, repl in PLACEHOLDERS:
        text = re.sub(pattern, repl, text)
    return re.sub(r"\s+", " ", text).strip()


def _guess_to_kind(guess: str) -> str:
    return {"binary_mentioned": "mentioned"}.get(guess, guess)


def _dumps(mapping: dict) -> str:
    """JSON with numeric keys sorted numerically, for byte-stable output."""
    items = sorted(mapping.items(), key=lambda kv: int(kv[0]))
    return json.dumps({str(k): v for k, v in items}, ensure_ascii=False)


def _theme(number: int) -> str:
    for name, lo, hi in THEMES:
        if lo <= number <= hi:
            return name
    raise ValueError(f"Q{number} falls in no section")


def _item_text(label: str, question_vars: str) -> str:
    """The item of a battery question.

    IndieValue's ``question_vars`` is the questionnaire's own item text when it is a phrase of
    four words or more ("when jobs are scarce, men should have more right to a job than
    women"); shorter ones are grammatical stubs ("family is", "my family"), where the codebook
    label after its colon ("Family", "Your family") reads better.
    """
    qv = question_vars.strip()
    if len(qv.split()) >= 4 and not re.search(r"\b(is|are)$", qv):
        item = qv
    elif ": " in label:
        item = label.split(": ", 1)[1]
    else:
        item = qv or label
    item = _clean(item)
    return item[:1].upper() + item[1:]


def _battery_stem(stem: str) -> str:
    """Drop a trailing read-out lead-in ("Would you say it is") from a battery stem."""
    sentences = re.split(r"(?<=[.?!])\s+", stem)
    # Only a short unfinished fragment is a lead-in; a long one is the question itself
    # (Q209: "... whether you might do it or would never under any circumstances do it").
    last = sentences[-1]
    if len(sentences) > 1 and not re.search(r"[.?!:]$", last) and len(last.split()) <= 6:
        stem = " ".join(sentences[:-1])
    return stem


def _wording(stem: str, item: str | None) -> str:
    if item is None:
        return stem
    stem = _battery_stem(stem)
    if stem.endswith(("?", "!")):
        return f"{stem} {item}."
    if not re.search(r"[.:]$", stem):
        # an unfinished read-out ("... would never under any circumstances do it")
        return f"{stem}: {item}."
    return f"{stem.rstrip('.:')}: {item}."


def derive(shared: Path) -> list[dict]:
    codebook = json.loads((shared / "codebook.json").read_text(encoding="utf-8"))
    adjust = json.loads((shared / "answer_adjustment.json").read_text(encoding="utf-8"))
    meta = {}
    with open(shared / "statements_meta_data.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                meta[rec["question_id"]] = rec
    with open(shared / "wvs7_question_index.csv", encoding="utf-8", newline="") as fh:
        index = {r["qid"]: r for r in csv.DictReader(fh)}

    kind_fix = {}
    for numbers, kind, _reason in KIND_CORRECTIONS:
        for n in numbers:
            kind_fix[n] = kind

    # Battery = several questions sharing one questionnaire stem.
    stem_count: dict[str, int] = {}
    for rec in meta.values():
        stem_count[rec["original_question"]] = stem_count.get(rec["original_question"], 0) + 1

    rows = []
    for number in range(1, 260):
        qid = f"Q{number}"
        entry = codebook[qid]
        label = _clean(entry["question"])
        raw_all = {int(k): _clean(v) for k, v in entry["choices"].items()}
        raw_options = {k: v for k, v in raw_all.items() if k >= 0}
        missing = {k: v for k, v in raw_all.items() if k < 0}
        if number == 223:
            # Party codes are country-specific; keep only the generic answers, the rest is
            # looked up in the codebook when needed (nominal: never asked of a model).
            raw_options = {k: v for k, v in raw_options.items() if k < 100}
        for (n, code), (new, _reason) in LABEL_CORRECTIONS.items():
            if n == number:
                raw_options[code] = new

        adj_raw = adjust.get(qid, {})
        adjustment = {int(k): (int(v) if v != "" else "") for k, v in adj_raw.items()}
        options: dict[int, str] = {}
        for code in sorted(raw_options):
            new = adjustment.get(code, code)
            if new == "":
                continue  # dropped as non-substantive, becomes missing
            # Several raw codes may merge (Q241-249: 0 'against democracy' -> 1): keep the
            # label of the code that already had the target value.
            if new not in options or code == new:
                options[new] = raw_options[code]

        kind = kind_fix.get(number, _guess_to_kind(index[qid]["scale_type_guess"]))

        rec = meta.get(qid)
        if rec is not None:
            stem = _clean(rec["original_question"])
            battery = stem_count[rec["original_question"]] > 1
            qvars = rec.get("question_vars") or ""
        elif number in STEM_FROM_NEIGHBOUR:
            nb = meta[f"Q{STEM_FROM_NEIGHBOUR[number]}"]
            stem, battery, qvars = _clean(nb["original_question"]), True, ""
        else:
            stem, battery, qvars = STEM_WRITTEN[number], False, ""
        item = _item_text(label, qvars) if battery else None
        if number in ITEM_OVERRIDES:
            item = ITEM_OVERRIDES[number]
        wording = _wording(stem, item)

        codes = sorted(options)
        rows.append({
            "question_id": qid,
            "number": number,
            "theme": _theme(number),
            "label": label,
            "stem": stem,
            "wording": wording,
            "options": _dumps(options),
            "raw_options": _dumps(raw_options),
            "scale_kind": kind,
            "scale_min": codes[0],
            "scale_max": codes[-1],
            "n_options": len(codes),
            "missing_codes": _dumps(missing),
            "adjustment": _dumps(adjustment),
        })
    _check(rows)
    return rows


def _check(rows: list[dict]) -> None:
    """Fail loudly if a derived row breaks the catalogue's invariants."""
    for r in rows:
        opts = {int(k) for k in json.loads(r["options"])}
        kind = r["scale_kind"]
        if kind == "scale_1_10" and opts != set(range(1, 11)):
            raise ValueError(f"{r['question_id']}: 1-10 scale with codes {sorted(opts)}")
        if kind in ("binary", "mentioned") and opts != {1, 2}:
            raise ValueError(f"{r['question_id']}: {kind} with codes {sorted(opts)}")
        if kind == "ordinal" and (len(opts) < 3 or opts != set(range(min(opts), max(opts) + 1))):
            raise ValueError(f"{r['question_id']}: ordinal with codes {sorted(opts)}")


def write(rows: list[dict], out: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buf.getvalue().encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shared", nargs="?", type=Path, default=DEFAULT_SHARED,
                        help="folder with the WVS-7 metadata (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="catalogue CSV to write (default: %(default)s)")
    args = parser.parse_args(argv)
    if not (args.shared / "codebook.json").exists():
        parser.error(f"{args.shared}: no codebook.json here; pass the wvs7 metadata folder")
    rows = derive(args.shared)
    write(rows, args.out)
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[r["scale_kind"]] = kinds.get(r["scale_kind"], 0) + 1
    print(f"wrote {len(rows)} questions to {args.out}: {kinds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
