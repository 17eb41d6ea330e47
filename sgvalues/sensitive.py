"""The paper's sensitive questions, and refusal rates on them against all other questions.

Tan et al. (2026) report that questions on homosexuality or domestic violence, refused by the
base models "due to safety alignment", were refused "from 6.66 % to nearly zero" after SFT
(*published*; ``published.json``, ``refusal_finding``). The paper names topics, not questions:
``resources/sensitive_questions.yaml`` lists the WVS-7 items on those topics and on the other
moral-justifiability topics of the same kind, each with its codebook id and label.

:func:`refusal_rates` compares the refusal rate on those questions with the rate on every other
question, per model state, from structured predictions (``status == "refused"``,
``sgvalues.evaluate``) or open-ended generations (``refused``, ``sgvalues.judge``); both come
from the one refusal detector, ``sgvalues.models.base.is_refusal``.

Example
-------
>>> import pandas as pd
>>> base = pd.DataFrame({"question_id": ["Q182", "Q182", "Q1", "Q2"],
...                      "status": ["refused", "ok", "ok", "refused"]})
>>> refusal_rates({"base": base}, sensitive=["Q182"])[["state", "refusal_rate_sensitive", "refusal_rate_other"]]
  state  refusal_rate_sensitive  refusal_rate_other
0  base                     0.5                 0.5
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

__all__ = [
    "SENSITIVE_COLUMNS",
    "RATE_COLUMNS",
    "ROLE_STATES",
    "load_sensitive_questions",
    "sensitive_ids",
    "refusal_rates",
]

#: columns of :func:`load_sensitive_questions`
SENSITIVE_COLUMNS = ["question_id", "topic", "label"]
#: columns of :func:`refusal_rates`
RATE_COLUMNS = ["state", "n_sensitive", "refused_sensitive", "refusal_rate_sensitive", "n_other",
                "refused_other", "refusal_rate_other"]
#: generations' ``role`` -> model state
ROLE_STATES = {"candidate_base": "base", "candidate_sft": "sft", "reference": "reference"}
_ID = re.compile(r"^Q\d+$")


def _default_path():
    return resources.files("sgvalues").joinpath("resources/sensitive_questions.yaml")


def load_sensitive_questions(path: str | Path | None = None) -> pd.DataFrame:
    """The sensitive questions: one row per question, columns :data:`SENSITIVE_COLUMNS`.

    Parameters
    ----------
    path : a YAML file with a ``questions`` list of ``{id, topic, label}`` mappings; ``None`` =
        the shipped ``sgvalues/resources/sensitive_questions.yaml``.

    Raises
    ------
    ValueError
        naming the file, the entry and the field, for a missing or malformed field or a
        repeated id.
    """
    src = Path(path) if path is not None else _default_path()
    name = str(path) if path is not None else "sgvalues/resources/sensitive_questions.yaml"
    try:
        raw = yaml.safe_load(src.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{name}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("questions"), list) or not raw["questions"]:
        raise ValueError(f"{name}: expected a mapping with a non-empty 'questions' list of {{id, topic, label}}")
    rows, seen = [], set()
    for i, entry in enumerate(raw["questions"]):
        where = f"{name}: questions[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} = {entry!r}: expected a mapping with id, topic and label")
        extra = sorted(set(entry) - {"id", "topic", "label"})
        if extra:
            raise ValueError(f"{where}: unknown field(s) {extra}; expected id, topic and label")
        for field in ("id", "topic", "label"):
            value = entry.get(field)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{where}.{field} = {value!r}: expected a non-empty string")
        qid = entry["id"]
        if not _ID.match(qid):
            raise ValueError(f"{where}.id = {qid!r}: expected a WVS-7 question id such as 'Q182'")
        if qid in seen:
            raise ValueError(f"{where}.id = {qid!r}: listed twice; expected each question once")
        seen.add(qid)
        rows.append({"question_id": qid, "topic": entry["topic"], "label": entry["label"]})
    return pd.DataFrame(rows, columns=SENSITIVE_COLUMNS)


def sensitive_ids(path: str | Path | None = None) -> frozenset[str]:
    """The ids of :func:`load_sensitive_questions`."""
    return frozenset(load_sensitive_questions(path)["question_id"])


def _refused(table: pd.DataFrame, name: str) -> pd.Series:
    """Boolean refusal per row: ``status == "refused"`` (predictions) or ``refused`` (generations)."""
    if "status" in table.columns:
        return table["status"].astype(str).eq("refused")
    if "refused" in table.columns:
        # generations read back with keep_default_na=False hold "True"/"False" strings
        return table["refused"].map(lambda v: v is True or str(v).strip().lower() in ("true", "1")).astype(bool)
    raise ValueError(f"{name}: no 'status' (predictions) or 'refused' (generations) column; "
                     f"columns are {list(table.columns)}")


def _states(tables) -> list[tuple[str, pd.DataFrame]]:
    if isinstance(tables, pd.DataFrame):
        if "role" in tables.columns:  # generations: one state per role, in ROLES order
            roles = [r for r in ROLE_STATES if r in set(tables["role"])]
            roles += sorted(set(tables["role"]) - set(roles))
            return [(ROLE_STATES.get(r, r), tables[tables["role"] == r]) for r in roles]
        return [("model", tables)]
    if isinstance(tables, Mapping):
        return [(str(k), v) for k, v in tables.items()]
    raise TypeError(f"tables: expected a DataFrame or a mapping state -> DataFrame, got {type(tables).__name__}")


def refusal_rates(tables, sensitive: Iterable[str] | None = None) -> pd.DataFrame:
    """Refusal rate on the sensitive questions and on all others, per model state.

    Parameters
    ----------
    tables : DataFrame or mapping
        A mapping state -> table (e.g. ``{"base": base_predictions, "sft": sft_predictions}``),
        or one table: a generations table (``judge``, with ``role``) gives one state per role
        (``candidate_base`` -> ``base``, ``candidate_sft`` -> ``sft``, ``reference``), any other
        table the single state ``model``. Each table needs ``question_id`` and either ``status``
        (predictions) or ``refused`` (generations).
    sensitive : iterable of str, optional
        The sensitive question ids; ``None`` = :func:`sensitive_ids` of the shipped list.

    Returns
    -------
    DataFrame
        :data:`RATE_COLUMNS`, one row per state in input order.

    Notes
    -----
    For a state with rows :math:`R`, sensitive rows :math:`S \\subseteq R` and refusals
    :math:`\\rho_r \\in \\{0, 1\\}`:

    .. math:: \\mathrm{rate}_{S} = \\frac{1}{|S|}\\sum_{r \\in S} \\rho_r, \\qquad
              \\mathrm{rate}_{R \\setminus S} = \\frac{1}{|R \\setminus S|}\\sum_{r \\in R \\setminus S} \\rho_r

    Every row counts in the denominator, failed and unparseable answers included, as in
    ``metrics.refusal_rate``; a rate over no rows is NaN.
    """
    ids = frozenset(sensitive_ids() if sensitive is None else (str(q) for q in sensitive))
    rows = []
    for state, table in _states(tables):
        name = f"refusal_rates: table {state!r}"
        if "question_id" not in table.columns:
            raise ValueError(f"{name}: no 'question_id' column; columns are {list(table.columns)}")
        refused = _refused(table, name)
        is_sens = table["question_id"].astype(str).isin(ids)
        row = {"state": state}
        for part, mask in (("sensitive", is_sens), ("other", ~is_sens)):
            n, k = int(mask.sum()), int(refused[mask].sum())
            row.update({f"n_{part}": n, f"refused_{part}": k, f"refusal_rate_{part}": k / n if n else float("nan")})
        rows.append(row)
    return pd.DataFrame(rows, columns=RATE_COLUMNS)
