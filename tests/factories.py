"""Sample records for tests, in the contract of ``samples_*.jsonl`` (``sgvalues.split.SAMPLE_KEYS``),
and a seeded predictions table (:func:`make_predictions`).

Importable from any test module (``pythonpath = ["tests"]`` in pyproject) and served as fixtures
by ``conftest.py``. Every field can be given; the defaults make a valid four-option record.
"""

from __future__ import annotations

__all__ = ["make_sample", "make_samples", "make_predictions", "levels_of", "params_error", "predict_baseline",
           "load_judge_tables"]


def levels_of(subgroup: str) -> dict[str, str]:
    """``"sex_x_age_group:Female|25-34"`` -> ``{"sex": "Female", "age_group": "25-34"}``."""
    stratum, _, level = subgroup.partition(":")
    return dict(zip(stratum.split("_x_"), level.split("|")))


def make_sample(question_id: str = "Q1", subgroup: str = "sex:Male", *, levels: dict | None = None,
                target: int = 1, n_options: int = 4, scale_min: int = 1, options: dict | None = None,
                split: str = "ood", theme: str = "T", wording: str | None = None, distribution: dict | None = None, n_valid: int = 40,
                sample_id: str | None = None, system: str = "Answer with the option code only.",
                user_shared: str | None = None, user_persona: str | None = None, open_user: str = "Explain.",
                **extra) -> dict:
    """One sample record.

    Defaults: ``levels`` parsed from ``subgroup``; options ``scale_min`` … ``scale_min +
    n_options - 1`` labelled ``"option <code>"``; ``distribution`` uniform over the options;
    ``sample_id = "<question_id>_<subgroup>"``; ``wording = "<question_id>?"``; ``user_shared`` the
    wording and the options;
    ``user_persona = "You are <subgroup>."``. ``extra`` keys are added as given.
    """
    if options is None:
        options = {str(c): f"option {c}" for c in range(scale_min, scale_min + n_options)}
    codes = sorted(int(c) for c in options)
    if distribution is None:
        distribution = {str(c): 1.0 / len(codes) for c in codes}
    if wording is None:
        wording = f"{question_id}?"
    if user_shared is None:
        user_shared = f"{wording} " + " ".join(f"{c}={v}" for c, v in options.items()) + "\n"
    return {
        "sample_id": sample_id or f"{question_id}_{subgroup}", "split": split, "question_id": question_id,
        "theme": theme, "wording": wording, "stratum": subgroup.partition(":")[0], "subgroup": subgroup,
        "levels": levels_of(subgroup) if levels is None else levels, "target": target,
        "targets": [target], "scale_min": codes[0], "scale_max": codes[-1], "options": options, "distribution": distribution,
        "n_valid": n_valid, "system": system, "user_shared": user_shared,
        "user_persona": f"You are {subgroup}." if user_persona is None else user_persona, "open_user": open_user,
        **extra,
    }


def make_samples(questions=("Q1", "Q2", "Q3"), subgroups=("sex:Male", "sex:Female", "age_group:16-24"),
                 **fields) -> list[dict]:
    """:func:`make_sample` for every (question, subgroup), questions outermost; ``fields`` go to each."""
    return [make_sample(q, g, **fields) for q in questions for g in subgroups]


def params_error(tmp_path, body: str, name: str = "bad.yaml") -> tuple[str, str]:
    """Write ``name: x`` + ``body`` as a params file and load it: (the file's path, the
    :class:`~sgvalues.params.ParamsError` message). Fails the test when loading succeeds."""
    import pytest

    from sgvalues.params import ParamsError, load_params

    path = tmp_path / name
    path.write_text("name: x\n" + body)
    with pytest.raises(ParamsError) as exc:
        load_params(path)
    return str(path), str(exc.value)


def make_predictions(seed: int = 0, n_q: int = 5, subgroups=("s:a", "s:b", "s:c")):
    """A seeded predictions table (``sgvalues.evaluate`` columns that the report reads): questions
    ``Q0`` … with 2 to 5 options each, every subgroup answering each, random targets, predictions
    and ``probs`` (JSON code -> probability), stratum ``s``, status ``ok``."""
    import json

    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_q):
        k = int(rng.integers(2, 6))
        for sg in subgroups:
            target = int(rng.integers(1, k + 1))
            pred = int(rng.integers(1, k + 1))
            probs = rng.dirichlet(np.ones(k))
            rows.append({"sample_id": f"Q{q}_{sg}", "question_id": f"Q{q}", "subgroup": sg, "stratum": "s",
                         "target": target, "prediction": pred, "scale_min": 1, "scale_max": k, "status": "ok",
                         "probs": json.dumps({str(i + 1): float(p) for i, p in enumerate(probs)})})
    return pd.DataFrame(rows)


def predict_baseline(fitted, samples, name: str, seed: int = 0):
    """One baseline's predictions table: ``sgvalues.baselines.predict_baselines`` for ``[name]``."""
    from sgvalues.baselines import predict_baselines

    return predict_baselines(fitted, samples, [name], seed=seed)[name]


def load_judge_tables(run_dir) -> dict:
    """The tables ``sgvalues.judge.judge_run`` wrote under ``<run_dir>/judge/``, read back as written."""
    from pathlib import Path

    import pandas as pd

    out = Path(run_dir) / "judge"
    names = ("pairs", "generations", "verdicts", "win_rates", "refusals")
    missing = [n for n in names if not (out / f"{n}.csv").is_file()]
    if missing:
        raise FileNotFoundError(f"{out}: missing {', '.join(n + '.csv' for n in missing)}; run `sgvalues judge` first")
    return {n: pd.read_csv(out / f"{n}.csv", keep_default_na=False) for n in names}
