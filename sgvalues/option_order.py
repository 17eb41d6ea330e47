"""Option-order robustness: the same question with its options listed in another order.

Persona answers of language models are known to move with the order and labels of the options
(Dominguez-Olmedo et al., NeurIPS 2024; Tjuatja et al., TACL 2024). This module asks each
question again with its options **reversed** and the codes relabelled, so that the option listed
first is always code 1; the answer is then mapped back to the original scale. A model that reads
the options answers the same (mapped-back) code under both orders; a model that prefers a position
("the first option") does not.

For a question with codes :math:`c_1 < \\dots < c_k`, the reversed listing shows code
:math:`c_i` with the label of :math:`c_{k+1-i}`, so a shown answer :math:`c_i` means the original
option :math:`c_{k+1-i}`. The shared prompt prefix (system + question + options + instruction) is
still identical for every subgroup of a question within one order, so the engine's prefix KV
reuse applies to the reversed prompts too.

Reported per model state (:func:`order_effect`): accuracy and NMAE under each order, the share
of samples whose mapped-back answer changes, and the **order-averaged** prediction: the mean of
the mapped-back option distributions, its argmax (ties to the lowest code) as a debiased answer.

Example
-------
>>> code_map({"1": "Agree", "2": "Neither", "3": "Disagree"}, "reversed")
{'1': '3', '2': '2', '3': '1'}
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sgvalues.evaluate import json_cell

__all__ = ["ORDERS", "AVERAGED", "code_map", "reorder_sample", "evaluate_option_orders", "orders_path",
           "evaluate_run_orders", "order_effect"]

#: the option orders a params file may ask for (``evaluation.option_orders``)
ORDERS: tuple[str, ...] = ("as_asked", "reversed")
#: the ``option_order`` label of the order-averaged prediction
AVERAGED = "order_averaged"


def _options(options) -> dict[str, str]:
    return {str(k): str(v) for k, v in sorted(dict(json_cell(options)).items(), key=lambda kv: int(kv[0]))}


def code_map(options, order: str) -> dict[str, str]:
    """Shown code -> original code for one question's options listed in ``order``.

    Parameters
    ----------
    options : mapping or JSON
        The question's code -> label.
    order : {"as_asked", "reversed"}

    Examples
    --------
    >>> code_map('{"1": "Yes", "2": "No"}', "as_asked")
    {'1': '1', '2': '2'}
    >>> code_map({"1": "Never", "2": "", "10": "Always"}, "reversed")
    {'1': '10', '2': '2', '10': '1'}
    """
    if order not in ORDERS:
        raise ValueError(f"option order {order!r}: expected one of {', '.join(ORDERS)}")
    codes = list(_options(options))
    shown = codes if order == "as_asked" else codes[::-1]
    return dict(zip(codes, shown))


def reorder_sample(sample: Mapping, order: str) -> dict:
    """The sample with its options listed in ``order``, codes relabelled (see :func:`code_map`).

    The options block of ``user_shared`` is re-rendered with
    :func:`sgvalues.prompts.format_options`; ``target`` and ``distribution`` are expressed in the
    shown codes, so the reordered sample is a valid sample in its own right. ``option_order``
    records the order and ``code_map`` the shown -> original map.

    Examples
    --------
    >>> from sgvalues.prompts import format_options
    >>> s = {"sample_id": "q|s", "options": {"1": "Yes", "2": "No"}, "target": 1,
    ...      "distribution": {"1": 0.7, "2": 0.3}, "user_shared": "Q?\\n\\nOptions:\\n1. Yes\\n2. No\\n\\nA.\\n\\n"}
    >>> r = reorder_sample(s, "reversed")
    >>> r["user_shared"], r["target"], r["distribution"]
    ('Q?\\n\\nOptions:\\n1. No\\n2. Yes\\n\\nA.\\n\\n', 2, {'1': 0.3, '2': 0.7})
    """
    from sgvalues.prompts import format_options

    mapping = code_map(sample["options"], order)          # shown -> original
    out = dict(sample)
    out["option_order"], out["code_map"] = order, mapping
    if order == "as_asked":
        return out
    original = _options(sample["options"])
    shown_options = {shown: original[orig] for shown, orig in mapping.items()}
    old_block, new_block = format_options(original), format_options(shown_options)
    if old_block not in sample["user_shared"]:
        raise ValueError(f"sample {sample.get('sample_id')!r}: its user_shared prompt does not list the options as "
                         f"sgvalues.prompts.format_options renders them; cannot reorder (expected the block "
                         f"{old_block!r})")
    to_shown = {orig: shown for shown, orig in mapping.items()}
    out["options"] = shown_options
    out["user_shared"] = sample["user_shared"].replace(old_block, new_block, 1)
    out["target"] = int(to_shown[str(int(sample["target"]))])
    dist = json_cell(sample.get("distribution"))
    if dist is not None:
        out["distribution"] = {to_shown[str(int(float(k)))]: float(v) for k, v in
                               sorted(dist.items(), key=lambda kv: int(to_shown[str(int(float(kv[0])))]))}
    return out


def _map_back_probs(probs, mapping: Mapping[str, str]) -> str:
    shown = json_cell(probs) if isinstance(probs, str) else None
    if shown is None:
        return ""
    back = {mapping[str(k)]: float(v) for k, v in shown.items()}
    return json.dumps({c: back[c] for c in sorted(back, key=int)})


def _averaged(rows: pd.DataFrame) -> dict | None:
    """The order-averaged row of one sample's mapped-back rows (``None`` if an order lacks probs)."""
    dists = [json_cell(p) if isinstance(p, str) else None for p in rows["probs"]]
    if any(d is None for d in dists):
        return None
    codes = sorted(dists[0], key=int)
    mean = {c: float(np.mean([d.get(c, 0.0) for d in dists])) for c in codes}
    best = max(codes, key=lambda c: (mean[c], -codes.index(c)))   # ties to the lowest code
    row = rows.iloc[0].to_dict()
    row.update(option_order=AVERAGED, prediction=int(best), status="ok", raw_output="",
               probs=json.dumps({c: round(v, 6) for c, v in mean.items()}))
    return row


def evaluate_option_orders(samples: Sequence[Mapping], model, orders: Sequence[str] = ORDERS,
                           mode: str = "logprob", **evaluate_kwargs) -> pd.DataFrame:
    """Evaluate ``samples`` under each option order; answers mapped back to the original codes.

    Parameters
    ----------
    samples : records of :func:`sgvalues.split.load_samples`.
    model : a :class:`~sgvalues.models.base.Model`.
    orders : option orders, a subset of :data:`ORDERS` (``as_asked`` first if present).
    mode : answer mode (see :func:`sgvalues.evaluate.evaluate_samples`).
    **evaluate_kwargs : passed to :func:`sgvalues.evaluate.evaluate_samples` (``batch_size``,
        ``cache``, ``log``...). With a cache, the as-asked answers are those of the ordinary
        evaluation, so only the reversed prompts cost model time.

    Returns
    -------
    DataFrame
        The predictions contract (:data:`sgvalues.evaluate.PREDICTION_COLUMNS`) plus
        ``option_order``; ``prediction``, ``probs``, ``target`` and ``distribution`` are on the
        original codes. Where every order has option probabilities, one more row per sample with
        ``option_order = "order_averaged"`` (:data:`AVERAGED`).
    """
    from sgvalues.evaluate import _distribution_json, evaluate_samples

    orders = list(dict.fromkeys(orders))
    if not orders or any(o not in ORDERS for o in orders):
        raise ValueError(f"option orders {orders!r}: expected a non-empty subset of {', '.join(ORDERS)}")
    samples = [dict(s) for s in samples]
    parts = []
    for order in orders:
        shown = [reorder_sample(s, order) for s in samples]
        df = evaluate_samples(shown, model, mode=mode, **evaluate_kwargs)
        maps = [s["code_map"] for s in shown]
        df["prediction"] = pd.array([int(m[str(int(p))]) if pd.notna(p) else None
                                     for p, m in zip(df["prediction"], maps)], dtype="Int64")
        df["probs"] = [_map_back_probs(p, m) for p, m in zip(df["probs"], maps)]
        df["target"] = [int(s["target"]) for s in samples]
        df["distribution"] = [_distribution_json(s.get("distribution")) for s in samples]
        parts.append(df.assign(option_order=order))
    table = pd.concat(parts, ignore_index=True)
    if len(orders) > 1:
        averaged = [r for _, g in table.groupby("sample_id", sort=False) if (r := _averaged(g)) is not None]
        if averaged:
            table = pd.concat([table, pd.DataFrame(averaged, columns=table.columns)], ignore_index=True)
    table["prediction"] = table["prediction"].astype("Int64")
    return table


def orders_path(run_dir: str | Path, tag: str, split: str) -> Path:
    """``<run_dir>/predictions/<tag>_<split>_orders.csv``: one model state under every option order."""
    return Path(run_dir) / "predictions" / f"{tag}_{split}_orders.csv"


def evaluate_run_orders(params, run_dir: str | Path, split: str, tag: str,
                        questions: Sequence[str] | None = None, adapter: str | Path | None = None,
                        orders: Sequence[str] | None = None, limit: int | None = None, cache=True,
                        model=None, log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """:func:`evaluate_option_orders` on a run's samples; writes :func:`orders_path`.

    The samples are those :func:`sgvalues.evaluate.evaluate_run` would answer for the same
    ``split``, ``questions`` and ``limit`` (same seeded selection), so the ``as_asked`` rows equal
    the ordinary predictions and come from the response cache. ``orders`` default to
    ``params.evaluation.option_orders`` (``reversed`` added when only ``as_asked`` is set, since
    one order has no order effect).
    """
    from sgvalues.evaluate import run_samples
    from sgvalues.models import load_model
    from sgvalues.models.cache import ResponseCache
    from sgvalues.models.chat import record_rendering

    ev = params.evaluation
    orders = list(orders or ev.option_orders)
    if orders == ["as_asked"]:
        orders = list(ORDERS)
    samples = run_samples(params, run_dir, split, questions, limit)
    cache = ResponseCache() if cache is True else (cache or None)
    own = model is None
    if own:
        model = load_model(params.model, adapter=adapter, batch_size=ev.batch_size)
    record_rendering(run_dir, "model", model.rendering)
    try:
        table = evaluate_option_orders(samples, model, orders, mode=ev.mode, batch_size=ev.batch_size,
                                       cache=cache, temperature=ev.temperature,
                                       max_new_tokens=ev.max_new_tokens, log=log)
    finally:
        if own:
            model.close()
    out = orders_path(run_dir, tag, split)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".csv.tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(out)   # a crash never leaves half a table
    return table




def order_effect(table: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Scores under each option order and the share of answers that change with the order.

    Parameters
    ----------
    table : output of :func:`evaluate_option_orders` (several model states may be stacked, told
        apart by the ``by`` columns, e.g. ``["tag"]``).
    by : extra grouping columns.

    Returns
    -------
    DataFrame
        One row per ``by`` group and ``option_order``: the :func:`sgvalues.metrics.aggregate`
        scores plus ``changed``, the share of samples whose mapped-back prediction differs from the
        ``as_asked`` one (0 for ``as_asked`` itself; NaN where there is no ``as_asked``).

    Notes
    -----
    ``changed`` counts a sample as changed when either order gave no answer and the other did;
    the order-averaged row's ``changed`` compares its argmax with the as-asked answer.
    """
    from sgvalues.metrics import aggregate

    by = list(by)
    scores = aggregate(table, by=by + ["option_order"])
    asked = table[table["option_order"] == "as_asked"].set_index(by + ["sample_id"])["prediction"]
    changed = []
    for key, g in table.groupby(by + ["option_order"], sort=True):
        g = g.set_index(by + ["sample_id"])["prediction"]
        base = asked.reindex(g.index)
        if base.isna().all() and asked.empty:
            share = float("nan")
        else:
            same = (g.astype("float") == base.astype("float")) | (g.isna() & base.isna())
            share = float(1.0 - same.mean())
        key = key if isinstance(key, tuple) else (key,)
        changed.append({**dict(zip(by + ["option_order"], key)), "changed": share})
    return scores.merge(pd.DataFrame(changed), on=by + ["option_order"], how="left")
