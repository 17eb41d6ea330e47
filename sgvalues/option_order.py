"""Option-order robustness: the same question with its options listed in other orders.

Persona answers of language models are known to move with the order and labels of the options
(Dominguez-Olmedo et al., NeurIPS 2024; Tjuatja et al., TACL 2024). This module asks each
question again with its option lines in another order and maps every answer back to the original
codes. Two families of conditions tell three explanations of an answer apart:

- **codes follow their options** (``reversed``, ``permuted``): the lines are reordered and
  relabelled so that the codes still run 1, 2, ... down the list; a shown code therefore means
  another option than as asked. Code and position move together, the option's content does not.
- **same codes, lines reordered** (``reversed_lines``, ``permuted_lines``): every line keeps its
  original code, only the order of the lines changes. Code and content move together, the
  position does not.

A model that reads the options keeps the **content** of its answer in both families; a model
that prefers a code ("always 1") keeps the **code** in both; a model that prefers a line ("the
first option") keeps the **position** in both (:func:`order_explanation`). ``reversed`` lists
the lines backwards; ``permuted`` draws ``k`` seeded random orders per question (the same for
every subgroup of the question, so the shared prompt prefix is still computed once per order).

**No self-contradictory prompts.** Where the wording names codes ("1 means *completely
disagree* and 10 means *completely agree*"), a relabelled order rewrites those codes with the
options (:func:`rewrite_anchors`), so the wording and the lines agree; a bare number in the middle
of a 1–10 scale ("2", "9") is a position, not a word, so it is shown bare under its new code. A
numbered scale whose middle options are bare numbers has only two orders that keep it a scale
(up and down): it is left out of the random permutations (:func:`order_eligibility`).

For a question with codes :math:`c_1 < \\dots < c_k` and the listing :math:`\\pi` (original
option on line :math:`j` is :math:`c_{\\pi(j)}`), the relabelled condition shows line :math:`j`
as code :math:`c_j` and maps a shown answer :math:`c_j` back to :math:`c_{\\pi(j)}`; the
same-codes condition shows line :math:`j` as :math:`c_{\\pi(j)}` and needs no mapping. Reversal
is :math:`\\pi(j) = k + 1 - j`.

Reported per model state (:func:`order_effect`): accuracy and NMAE under each condition, the
share of samples whose mapped-back answer changes, the shares that keep the content, the code and
the position of the as-asked answer, the share of **near-ties** (top-two option probabilities
within :data:`NEAR_TIE_GAP`), and the **order-averaged** prediction: the mean of the mapped-back
option distributions of ``as_asked`` and ``reversed``, its argmax (ties to the lowest code).

Example
-------
>>> code_map({"1": "Agree", "2": "Neither", "3": "Disagree"}, "reversed")
{'1': '3', '2': '2', '3': '1'}
>>> code_map({"1": "Agree", "2": "Neither", "3": "Disagree"}, "reversed_lines")
{'3': '3', '2': '2', '1': '1'}
"""
from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sgvalues.constants import MIN_PERMUTATIONS, ORDERS
from sgvalues.tables import distribution_json, json_cell

__all__ = ["ORDERS", "RELABELLED", "SAME_CODES", "PERMUTED", "EVERY_SAMPLE", "AVERAGED", "NEAR_TIE_GAP",
           "SUPPORT_MARGIN", "MIN_PERMUTATIONS", "permutation", "listing", "code_map", "anchor_codes",
           "rewrite_anchors", "numeric_scale", "order_eligibility", "reorder_sample", "order_subset", "order_plan",
           "evaluate_option_orders", "orders_path", "run_order_plan", "evaluate_run_orders", "evaluate_run_states", "top_two_gap",
           "order_effect", "order_explanation"]

#: "codes follow their options": lines reordered and relabelled so the codes run 1, 2, ... down the list
RELABELLED: tuple[str, ...] = ("reversed", "permuted")
#: "same codes, lines reordered": each line keeps its original code
SAME_CODES: tuple[str, ...] = ("reversed_lines", "permuted_lines")
#: the conditions asked under ``k`` seeded random orders (``evaluation.option_permutations``)
PERMUTED: tuple[str, ...] = ("permuted", "permuted_lines")
#: asked of every sample; the other conditions of the seeded subset (``evaluation.option_order_subgroups``)
EVERY_SAMPLE: tuple[str, ...] = ("as_asked", "reversed")
#: the ``option_order`` label of the order-averaged prediction
AVERAGED = "order_averaged"
#: a prediction is a near-tie when its two most probable options differ by less than this
NEAR_TIE_GAP = 0.05
#: an explanation is supported when its share beats the runner-up's by at least this
SUPPORT_MARGIN = 0.10

#: a code named by the wording as a scale anchor: ``1 means``, ``"10" means``, ``"1" is``
_ANCHOR = re.compile(r'(?<![\w.\-])(["\u201c]?)(\d+)(["\u201d]?)(?=\s+(?:means|is)\s)')


def _options(options) -> dict[str, str]:
    return {str(k): str(v) for k, v in sorted(dict(json_cell(options)).items(), key=lambda kv: int(kv[0]))}


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"option order {order!r}: expected one of {', '.join(ORDERS)}")


def permutation(k: int, question_id: str = "", seed: int = 0, index: int = 1) -> list[int]:
    """The ``index``-th seeded random order of ``k`` option lines of one question (never the identity).

    Seeded by ``(seed, index, crc32(question_id))``, so every subgroup of a question sees the
    same order (one shared prompt prefix) and the same call gives the same order in any process.
    With two options the only other order is the swap.

    Examples
    --------
    >>> permutation(2, "Q1")
    [1, 0]
    >>> p = permutation(5, "Q7", seed=0, index=2)
    >>> sorted(p) == [0, 1, 2, 3, 4] and p != [0, 1, 2, 3, 4] and p == permutation(5, "Q7", 0, 2)
    True
    """
    rng = np.random.default_rng([int(seed), int(index), zlib.crc32(str(question_id).encode())])
    while True:
        order = [int(i) for i in rng.permutation(k)]
        if k < 2 or order != list(range(k)):
            return order


def listing(options, order: str, *, question_id: str = "", seed: int = 0, index: int = 1) -> list[tuple[str, str]]:
    """(shown code, original code) of each option line, top to bottom, under ``order``.

    Examples
    --------
    >>> opts = {"1": "Yes", "2": "Maybe", "3": "No"}
    >>> listing(opts, "reversed")          # codes follow their options: still 1, 2, 3 down the list
    [('1', '3'), ('2', '2'), ('3', '1')]
    >>> listing(opts, "reversed_lines")    # same codes, lines reordered
    [('3', '3'), ('2', '2'), ('1', '1')]
    """
    _check_order(order)
    codes = list(_options(options))
    if order == "as_asked":
        lines = codes
    elif order in ("reversed", "reversed_lines"):
        lines = codes[::-1]
    else:
        lines = [codes[i] for i in permutation(len(codes), question_id, seed, index)]
    if order in RELABELLED:
        return list(zip(codes, lines))
    return [(c, c) for c in lines]


def code_map(options, order: str, *, question_id: str = "", seed: int = 0, index: int = 1) -> dict[str, str]:
    """Shown code -> original code for one question's options listed in ``order`` (:func:`listing`).

    Parameters
    ----------
    options : mapping or JSON
        The question's code -> label.
    order : one of :data:`ORDERS`.
    question_id, seed, index : the seeded permutation of ``permuted`` / ``permuted_lines``.

    Examples
    --------
    >>> code_map('{"1": "Yes", "2": "No"}', "as_asked")
    {'1': '1', '2': '2'}
    >>> code_map({"1": "Never", "2": "", "10": "Always"}, "reversed")
    {'1': '10', '2': '2', '10': '1'}
    """
    return dict(listing(options, order, question_id=question_id, seed=seed, index=index))


def anchor_codes(wording: str) -> list[str]:
    """The codes the wording names as scale anchors ("1 means ...", '"10" is ...'), in order.

    >>> anchor_codes('Use this scale where 1 means "none" and 10 means "a great deal"')
    ['1', '10']
    >>> anchor_codes("On a 10-point scale, how much?")
    []
    """
    return [m.group(2) for m in _ANCHOR.finditer(str(wording))]


def rewrite_anchors(wording: str, to_shown: Mapping[str, str]) -> str:
    """The wording with each anchor code replaced by the code its option is shown under.

    >>> rewrite_anchors('where "1" means "no risk" and "10" means "high risk"', {"1": "10", "10": "1"})
    'where "10" means "no risk" and "1" means "high risk"'
    """
    return _ANCHOR.sub(lambda m: m.group(1) + str(to_shown[m.group(2)]) + m.group(3), str(wording))


def numeric_scale(options) -> bool:
    """Whether some option is a bare number (label blank or equal to its code), as on a 1–10 scale.

    >>> numeric_scale({"1": "Never", "2": "2", "3": "Always"}), numeric_scale({"1": "Yes", "2": "No"})
    (True, False)
    """
    return any(label.strip() in ("", code) for code, label in _options(options).items())


def _wording(sample: Mapping) -> str:
    if sample.get("wording"):
        return str(sample["wording"])
    return str(sample.get("user_shared", "")).split("\n\nOptions:\n", 1)[0]


def order_eligibility(sample: Mapping, order: str) -> tuple[bool, str]:
    """Whether ``sample`` can be asked under ``order`` without a contradiction, and why (not).

    Returns
    -------
    (bool, str)
        ``(False, reason)`` for a numbered scale under a random permutation (a scale shuffled is
        no scale) or for wording that names a code no option has; ``(True, "anchors rewritten")``
        where a relabelled order rewrites the wording's anchor codes; ``(True, "")`` otherwise.

    Examples
    --------
    >>> ten = {str(i): {"1": "Never", "10": "Always"}.get(str(i), str(i)) for i in range(1, 11)}
    >>> order_eligibility({"wording": "1 means never and 10 means always", "options": ten}, "reversed")
    (True, 'anchors rewritten')
    >>> order_eligibility({"wording": "How often?", "options": ten}, "permuted")
    (False, 'numbered scale: a shuffled scale is no scale')
    """
    _check_order(order)
    options = _options(sample["options"])
    if order in PERMUTED and numeric_scale(options):
        return False, "numbered scale: a shuffled scale is no scale"
    named = anchor_codes(_wording(sample))
    if order in RELABELLED and named:
        missing = [c for c in named if c not in options]
        if missing:
            return False, f"wording names code(s) {', '.join(missing)}, which no option has"
        return True, "anchors rewritten"
    return True, ""


def _render(lines: Sequence[tuple[str, str]]) -> str:
    from sgvalues.prompts import format_options

    return "\n".join(format_options({code: label}) for code, label in lines)


def reorder_sample(sample: Mapping, order: str, *, seed: int = 0, index: int = 1) -> dict:
    """The sample with its options listed in ``order`` (see :func:`listing`).

    The options block of ``user_shared`` is re-rendered line by line with
    :func:`sgvalues.prompts.format_options`; under a relabelled order the wording's anchor codes
    are rewritten (:func:`rewrite_anchors`) and bare-number labels shown bare under their new
    code. ``target`` and ``distribution`` are expressed in the shown codes, so the reordered
    sample is a valid sample in its own right. ``option_order``, ``permutation`` (the index for
    the permuted orders, else 0), ``code_map`` (shown -> original) and ``listed`` (the shown codes
    top to bottom) record the condition.

    Raises
    ------
    ValueError
        For an order the sample cannot take (:func:`order_eligibility`) or options not rendered
        by :func:`sgvalues.prompts.format_options`.

    Examples
    --------
    >>> s = {"sample_id": "q|s", "options": {"1": "Yes", "2": "No"}, "target": 1,
    ...      "distribution": {"1": 0.7, "2": 0.3}, "user_shared": "Q?\\n\\nOptions:\\n1. Yes\\n2. No\\n\\nA.\\n\\n"}
    >>> r = reorder_sample(s, "reversed")
    >>> r["user_shared"], r["target"], r["distribution"]
    ('Q?\\n\\nOptions:\\n1. No\\n2. Yes\\n\\nA.\\n\\n', 2, {'1': 0.3, '2': 0.7})
    >>> reorder_sample(s, "reversed_lines")["user_shared"]
    'Q?\\n\\nOptions:\\n2. No\\n1. Yes\\n\\nA.\\n\\n'
    """
    from sgvalues.prompts import format_options

    pairs = listing(sample["options"], order, question_id=str(sample.get("question_id", "")), seed=seed, index=index)
    mapping = dict(pairs)                                  # shown -> original
    out = dict(sample)
    out.update(option_order=order, permutation=int(index) if order in PERMUTED else 0, code_map=mapping,
               listed=[shown for shown, _ in pairs])
    if order == "as_asked":
        return out
    ok, reason = order_eligibility(sample, order)
    if not ok:
        raise ValueError(f"sample {sample.get('sample_id')!r}: cannot be asked under option order {order!r} "
                         f"without a contradiction ({reason})")
    original = _options(sample["options"])
    old_block = format_options(original)
    if old_block not in sample["user_shared"]:
        raise ValueError(f"sample {sample.get('sample_id')!r}: its user_shared prompt does not list the options as "
                         f"sgvalues.prompts.format_options renders them; cannot reorder (expected the block "
                         f"{old_block!r})")
    relabel = order in RELABELLED
    to_shown = {orig: shown for shown, orig in pairs}

    def label(shown: str, orig: str) -> str:
        text = original[orig]
        return shown if relabel and text.strip() in ("", orig) else text   # a bare number stays bare

    lines = [(shown, label(shown, orig)) for shown, orig in pairs]
    head, tail = sample["user_shared"].split(old_block, 1)
    if relabel:
        head = rewrite_anchors(head, to_shown)
        if sample.get("wording"):
            out["wording"] = rewrite_anchors(sample["wording"], to_shown)
        out["options"] = dict(sorted(lines, key=lambda kv: int(kv[0])))
    out["user_shared"] = head + _render(lines) + tail
    out["target"] = int(to_shown[str(int(sample["target"]))])
    dist = json_cell(sample.get("distribution"))
    if dist is not None:
        out["distribution"] = {to_shown[str(int(float(k)))]: float(v) for k, v in
                               sorted(dist.items(), key=lambda kv: int(to_shown[str(int(float(kv[0])))]))}
    return out


def order_subset(samples: Sequence[Mapping], n_subgroups: int | None, seed: int = 0) -> set[str]:
    """Sample ids of ``n_subgroups`` seeded subgroups per question (every sample when ``None``).

    The conditions outside :data:`EVERY_SAMPLE` are asked of this subset only
    (``evaluation.option_order_subgroups``), so that every question keeps results.

    Examples
    --------
    >>> ss = [{"sample_id": f"Q{q}_{g}", "question_id": f"Q{q}", "subgroup": g} for q in (1, 2) for g in "abcd"]
    >>> sub = order_subset(ss, 2, seed=0)
    >>> len(sub), sorted({i[:2] for i in sub}), sub == order_subset(ss, 2, seed=0)
    (4, ['Q1', 'Q2'], True)
    """
    if n_subgroups is None:
        return {str(s["sample_id"]) for s in samples}
    by_question: dict[str, list[Mapping]] = {}
    for s in samples:
        by_question.setdefault(str(s["question_id"]), []).append(s)
    chosen = set()
    for q, group in by_question.items():
        group = sorted(group, key=lambda s: str(s["subgroup"]))
        rng = np.random.default_rng([int(seed), zlib.crc32(q.encode())])
        picks = rng.choice(len(group), size=min(int(n_subgroups), len(group)), replace=False)
        chosen |= {str(group[i]["sample_id"]) for i in picks}
    return chosen


def _indices(order: str, permutations: int) -> list[int]:
    return list(range(1, int(permutations) + 1)) if order in PERMUTED else [0]


def order_plan(samples: Sequence[Mapping], orders: Sequence[str] = ORDERS, subset: Collection[str] | None = None,
               permutations: int = MIN_PERMUTATIONS) -> pd.DataFrame:
    """Which question is asked under which condition, and why not: one row per (question, order).

    Returns
    -------
    DataFrame
        ``question_id, option_order, asked, reason, anchors_rewritten, n_prompts``: ``asked``
        False with the ``reason`` of :func:`order_eligibility`; ``anchors_rewritten`` where the
        wording's codes were rewritten; ``n_prompts`` the prompts asked (samples × permutations).

    Examples
    --------
    >>> ten = {str(i): {"1": "No", "10": "Yes"}.get(str(i), str(i)) for i in range(1, 11)}
    >>> ss = [{"sample_id": "a", "question_id": "Q1", "wording": "1 means no, 10 means yes", "options": ten}]
    >>> order_plan(ss, ["reversed", "permuted"])[["option_order", "asked", "anchors_rewritten", "n_prompts"]]
      option_order  asked  anchors_rewritten  n_prompts
    0     reversed   True               True          1
    1     permuted  False              False          0
    """
    rows = []
    first: dict[str, Mapping] = {}
    for s in samples:
        q = str(s["question_id"])
        first.setdefault(q, s)
    for order in orders:
        for q, s in first.items():
            ok, reason = order_eligibility(s, order)
            chosen = [x for x in samples if str(x["question_id"]) == q
                      and (order in EVERY_SAMPLE or subset is None or str(x["sample_id"]) in subset)]
            rows.append({"question_id": q, "option_order": order, "asked": ok, "reason": reason,
                         "anchors_rewritten": reason == "anchors rewritten",
                         "n_prompts": len(chosen) * len(_indices(order, permutations)) if ok else 0})
    return pd.DataFrame(rows, columns=["question_id", "option_order", "asked", "reason", "anchors_rewritten",
                                       "n_prompts"])


def _map_back_probs(probs, mapping: Mapping[str, str]) -> str:
    shown = json_cell(probs) if isinstance(probs, str) else None
    if shown is None:
        return ""
    back = {mapping[str(k)]: float(v) for k, v in shown.items()}
    return json.dumps({c: back[c] for c in sorted(back, key=int)})


def _averaged(rows: pd.DataFrame) -> dict | None:
    """The order-averaged row of one sample's :data:`EVERY_SAMPLE` rows (``None`` unless each has probs)."""
    rows = rows[rows["option_order"].isin(EVERY_SAMPLE)]
    if rows["option_order"].nunique() < 2:
        return None
    dists = [json_cell(p) if isinstance(p, str) and p else None for p in rows["probs"]]
    if any(d is None for d in dists):
        return None
    codes = sorted(dists[0], key=int)
    mean = {c: float(np.mean([d.get(c, 0.0) for d in dists])) for c in codes}
    best = max(codes, key=lambda c: (mean[c], -codes.index(c)))   # ties to the lowest code
    row = rows.iloc[0].to_dict()
    row.update(option_order=AVERAGED, permutation=0, prediction=int(best), status="ok", raw_output="",
               shown_prediction=pd.NA, position=pd.NA, probs=json.dumps({c: round(v, 6) for c, v in mean.items()}))
    return row


def evaluate_option_orders(samples: Sequence[Mapping], model, orders: Sequence[str] = EVERY_SAMPLE,
                           mode: str = "logprob", *, permutations: int = MIN_PERMUTATIONS, seed: int = 0,
                           subset: Collection[str] | None = None, **evaluate_kwargs) -> pd.DataFrame:
    """Evaluate ``samples`` under each option order; answers mapped back to the original codes.

    Parameters
    ----------
    samples : records of :func:`sgvalues.split.load_samples`.
    model : a :class:`~sgvalues.models.base.Model`.
    orders : option orders, a subset of :data:`ORDERS` (``as_asked`` first if present).
    mode : answer mode (see :func:`sgvalues.evaluate.evaluate_samples`).
    permutations : ``k``, the seeded random orders of ``permuted`` and ``permuted_lines`` (the
        same ``k`` orders for both, so the two families are paired), at least :data:`MIN_PERMUTATIONS`.
    seed : seeds the permutations (:func:`permutation`).
    subset : sample ids asked under the orders outside :data:`EVERY_SAMPLE` (:func:`order_subset`);
        ``None`` = every sample.
    **evaluate_kwargs : passed to :func:`sgvalues.evaluate.evaluate_samples` (``batch_size``,
        ``cache``, ``log``...). With a cache, the as-asked answers are those of the ordinary
        evaluation, so only the reordered prompts cost model time.

    Returns
    -------
    DataFrame
        The predictions contract (:data:`sgvalues.evaluate.PREDICTION_COLUMNS`) plus
        ``option_order``, ``permutation`` (1..k for the permuted orders, else 0),
        ``shown_prediction`` (the code the model answered, as shown) and ``position`` (the line it
        stands on, 1 = first); ``prediction``, ``probs``, ``target`` and ``distribution`` are on the
        original codes. A sample an order cannot take (:func:`order_eligibility`) has no row for
        it. Where ``as_asked`` and ``reversed`` both have option probabilities, one more row per
        sample with ``option_order = "order_averaged"`` (:data:`AVERAGED`).
    """
    from sgvalues.evaluate import evaluate_samples
    from sgvalues.tables import targets_json

    orders = list(dict.fromkeys(orders))
    if not orders or any(o not in ORDERS for o in orders):
        raise ValueError(f"option orders {orders!r}: expected a non-empty subset of {', '.join(ORDERS)}")
    if any(o in PERMUTED for o in orders) and int(permutations) < MIN_PERMUTATIONS:
        raise ValueError(f"permutations = {permutations!r}: expected at least {MIN_PERMUTATIONS} random orders")
    samples = [dict(s) for s in samples]
    parts = []
    for order in orders:
        chosen = [s for s in samples if order in EVERY_SAMPLE or subset is None or str(s["sample_id"]) in subset]
        chosen = [s for s in chosen if order_eligibility(s, order)[0]]
        for index in _indices(order, permutations) if chosen else []:
            shown = [reorder_sample(s, order, seed=seed, index=index) for s in chosen]
            df = evaluate_samples(shown, model, mode=mode, **evaluate_kwargs)
            maps = [s["code_map"] for s in shown]
            place = [{code: i + 1 for i, code in enumerate(s["listed"])} for s in shown]
            answered = [str(int(p)) if pd.notna(p) else None for p in df["prediction"]]
            df["shown_prediction"] = pd.array([int(a) if a else None for a in answered], dtype="Int64")
            df["position"] = pd.array([pl[a] if a else None for a, pl in zip(answered, place)], dtype="Int64")
            df["prediction"] = pd.array([int(m[a]) if a else None for a, m in zip(answered, maps)], dtype="Int64")
            df["probs"] = [_map_back_probs(p, m) for p, m in zip(df["probs"], maps)]
            df["target"] = [int(s["target"]) for s in chosen]
            df["targets"] = [targets_json(s) for s in chosen]  # every tied modal code, original codes
            df["distribution"] = [distribution_json(s.get("distribution")) for s in chosen]
            parts.append(df.assign(option_order=order, permutation=index))
    table = pd.concat(parts, ignore_index=True)
    if {"as_asked", "reversed"} <= set(orders):
        averaged = [r for _, g in table.groupby("sample_id", sort=False) if (r := _averaged(g)) is not None]
        if averaged:
            table = pd.concat([table, pd.DataFrame(averaged, columns=table.columns)], ignore_index=True)
    for column in ("prediction", "shown_prediction", "position"):
        table[column] = table[column].astype("Int64")
    return table


def orders_path(run_dir: str | Path, tag: str, split: str) -> Path:
    """``<run_dir>/predictions/<tag>_<split>_orders.csv``: one model state under every option order."""
    return Path(run_dir) / "predictions" / f"{tag}_{split}_orders.csv"


def _run_orders(params, orders: Sequence[str] | None) -> list[str]:
    orders = list(orders or params.evaluation.option_orders)
    return list(EVERY_SAMPLE) if orders == ["as_asked"] else orders


def run_order_plan(params, run_dir: str | Path, split: str, questions: Sequence[str] | None = None,
                   orders: Sequence[str] | None = None, limit: int | None = None) -> pd.DataFrame:
    """:func:`order_plan` of the samples :func:`evaluate_run_orders` asks (no model call)."""
    from sgvalues.evaluate import run_samples

    ev = params.evaluation
    samples = run_samples(params, run_dir, split, questions, limit)
    return order_plan(samples, _run_orders(params, orders), order_subset(samples, ev.option_order_subgroups,
                                                                         params.seed), ev.option_permutations)


def evaluate_run_orders(params, run_dir: str | Path, split: str, tag: str,
                        questions: Sequence[str] | None = None, adapter: str | Path | None = None,
                        orders: Sequence[str] | None = None, limit: int | None = None, cache=True,
                        model=None, log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """:func:`evaluate_option_orders` on a run's samples; writes :func:`orders_path`.

    The samples are those :func:`sgvalues.evaluate.evaluate_run` would answer for the same
    ``split``, ``questions`` and ``limit`` (same seeded selection), so the ``as_asked`` rows equal
    the ordinary predictions and come from the response cache. ``orders`` default to
    ``params.evaluation.option_orders`` (``reversed`` added when only ``as_asked`` is set, since
    one order has no order effect); ``evaluation.option_permutations`` random orders, and the
    orders outside :data:`EVERY_SAMPLE` on ``evaluation.option_order_subgroups`` seeded subgroups
    per question (seeded by ``params.seed``, as the permutations are).
    """
    from sgvalues.evaluate import run_samples
    from sgvalues.models import load_model
    from sgvalues.models.cache import ResponseCache
    from sgvalues.models.chat import record_rendering

    ev = params.evaluation
    orders = _run_orders(params, orders)
    samples = run_samples(params, run_dir, split, questions, limit)
    subset = order_subset(samples, ev.option_order_subgroups, params.seed)
    cache = ResponseCache() if cache is True else (cache or None)
    own = model is None
    if own:
        model = load_model(params.model, adapter=adapter, batch_size=ev.batch_size)
    record_rendering(run_dir, "model", model.rendering)
    try:
        table = evaluate_option_orders(samples, model, orders, mode=ev.mode, permutations=ev.option_permutations,
                                       seed=params.seed, subset=subset, batch_size=ev.batch_size, cache=cache,
                                       temperature=ev.temperature, max_new_tokens=ev.max_new_tokens, log=log)
    finally:
        if own:
            model.close()
    out = orders_path(run_dir, tag, split)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".csv.tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(out)   # a crash never leaves half a table
    return table


def evaluate_run_states(params, run_dir: str | Path, split: str, states: Mapping[str, tuple],
                        questions: Sequence[str] | None = None, orders: Sequence[str] | None = None,
                        **kwargs) -> pd.DataFrame:
    """:func:`evaluate_run_orders` for several model states, stacked with a ``state`` column.

    Parameters
    ----------
    states : state name -> ``(tag, adapter)`` (``adapter`` ``None`` for the untuned model).
    questions, orders, **kwargs : as :func:`evaluate_run_orders`.
    """
    parts = [evaluate_run_orders(params, run_dir, split, tag, questions, adapter=adapter, orders=orders,
                                 **kwargs).assign(state=name) for name, (tag, adapter) in states.items()]
    return pd.concat(parts, ignore_index=True)


def top_two_gap(probs) -> float:
    """:math:`p_{(1)} - p_{(2)}`, the gap between the two most probable options (NaN without probs).

    >>> top_two_gap('{"1": 0.40, "2": 0.38, "3": 0.22}')
    0.020000000000000018
    >>> top_two_gap(""), top_two_gap({"1": 1.0})
    (nan, 1.0)
    """
    shares = json_cell(probs) if isinstance(probs, str) and probs else (probs if isinstance(probs, Mapping) else None)
    if not shares:
        return float("nan")
    top = sorted((float(v) for v in shares.values()), reverse=True) + [0.0]
    return top[0] - top[1]


def _share(flags: pd.Series) -> float:
    flags = flags.dropna()
    return float(flags.astype(float).mean()) if len(flags) else float("nan")


def _against_asked(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Each row beside its sample's as-asked answer: ``same_content``, ``same_code``, ``same_position``."""
    t = table.copy()
    for column in ("shown_prediction", "position"):
        if column not in t.columns:
            t[column] = pd.NA
    asked = t[t["option_order"] == "as_asked"].drop_duplicates(by + ["sample_id"]).set_index(by + ["sample_id"])
    key = pd.MultiIndex.from_frame(t[by + ["sample_id"]]) if by else pd.Index(t["sample_id"])
    for what, column in (("content", "prediction"), ("code", "shown_prediction"), ("position", "position")):
        base = asked[column].reindex(key).to_numpy(dtype="float", na_value=np.nan)
        mine = t[column].to_numpy(dtype="float", na_value=np.nan)
        same = pd.Series(np.where(np.isnan(base) | np.isnan(mine), np.nan, base == mine), index=t.index)
        t[f"same_{what}"] = same.where(t["option_order"] != AVERAGED)
    return t


def order_effect(table: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Scores under each option order, the share of answers that change with it, and near-ties.

    Parameters
    ----------
    table : output of :func:`evaluate_option_orders` (several model states may be stacked, told
        apart by the ``by`` columns, e.g. ``["tag"]``; ``["question_id"]`` gives results per question).
    by : extra grouping columns.

    Returns
    -------
    DataFrame
        One row per ``by`` group and ``option_order`` (the ``k`` permutations pooled): the
        :func:`sgvalues.metrics.aggregate` scores plus ``changed``, the share of answers whose
        mapped-back prediction differs from the ``as_asked`` one (0 for ``as_asked`` itself; NaN
        where there is no ``as_asked``); ``same_content``, ``same_code``, ``same_position``: the
        shares that keep the as-asked answer's option, shown code and line (NaN for the averaged
        row); ``near_ties``: the share of answers whose two most probable options are within
        :data:`NEAR_TIE_GAP` (:func:`top_two_gap`; NaN without probabilities).

    Notes
    -----
    ``changed`` counts a sample as changed when either order gave no answer and the other did;
    the order-averaged row's ``changed`` compares its argmax with the as-asked answer.
    """
    from sgvalues.metrics import aggregate

    by = list(by)
    scores = aggregate(table, by=by + ["option_order"])
    t = _against_asked(table, by)
    has_asked = (t["option_order"] == "as_asked").any()
    t["gap"] = [top_two_gap(p) for p in t["probs"]] if "probs" in t.columns else np.nan
    rows = []
    for key, g in t.groupby(by + ["option_order"], sort=True):
        key = key if isinstance(key, tuple) else (key,)
        asked_pred = t[t["option_order"] == "as_asked"].drop_duplicates(by + ["sample_id"])
        base = asked_pred.set_index(by + ["sample_id"])["prediction"].reindex(
            pd.MultiIndex.from_frame(g[by + ["sample_id"]]) if by else pd.Index(g["sample_id"]))
        mine, base = g["prediction"].astype("float").to_numpy(), base.astype("float").to_numpy()
        same = (mine == base) | (np.isnan(mine) & np.isnan(base))
        rows.append({**dict(zip(by + ["option_order"], key)),
                     "changed": float(1.0 - same.mean()) if has_asked else float("nan"),
                     "same_content": _share(g["same_content"]), "same_code": _share(g["same_code"]),
                     "same_position": _share(g["same_position"]),
                     "near_ties": _share((g["gap"] < NEAR_TIE_GAP).where(g["gap"].notna()))})
    return scores.merge(pd.DataFrame(rows), on=by + ["option_order"], how="left")


def order_explanation(table: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Which explanation the reordered answers support: the options' content, their codes or positions.

    On the samples asked under both families (:data:`RELABELLED` and :data:`SAME_CODES`), each
    explanation's share is the mean over the two families of the share of reordered answers that
    keep the as-asked answer's content, code or position:

    .. math:: s_e = \\tfrac12\\left[\\overline{\\mathrm{same}_e}^{\\,\\text{relabelled}} +
              \\overline{\\mathrm{same}_e}^{\\,\\text{same codes}}\\right],
              \\quad e \\in \\{\\text{content}, \\text{code}, \\text{position}\\}.

    A model that reads the options has :math:`s_\\text{content} = 1`; one that always answers
    the same code has :math:`s_\\text{code} = 1` (and content and position at most 1/2 beyond
    chance); one that always answers the same line has :math:`s_\\text{position} = 1`. The data
    ``support`` the explanation with the highest share when it beats the runner-up by at least
    :data:`SUPPORT_MARGIN`; otherwise ``support`` is empty.

    Returns
    -------
    DataFrame
        One row per ``by`` group: ``content, code, position, support, runner_up, margin,
        n_samples, n_prompts`` (the samples in both families and their reordered prompts).

    Examples
    --------
    >>> t = pd.DataFrame({"sample_id": ["a"] * 3, "option_order": ["as_asked", "reversed", "reversed_lines"],
    ...                   "prediction": [1, 3, 3], "shown_prediction": [1, 1, 3], "position": [1, 1, 1]})
    >>> order_explanation(t)[["content", "code", "position", "support"]].to_dict("records")
    [{'content': 0.0, 'code': 0.5, 'position': 1.0, 'support': 'position'}]
    """
    by = list(by)
    t = _against_asked(table, by)
    t = t[t["option_order"].isin(RELABELLED + SAME_CODES)].assign(
        family=lambda d: np.where(d["option_order"].isin(RELABELLED), "relabelled", "same_codes"))
    both = t.groupby(by + ["sample_id"])["family"].transform("nunique") == 2
    t = t[both]
    columns = by + ["content", "code", "position", "support", "runner_up", "margin", "n_samples", "n_prompts"]
    rows = []
    for key, g in (t.groupby(by, sort=False) if by else [((), t)]):
        if g.empty:
            continue
        key = key if isinstance(key, tuple) else (key,)
        fam = g.groupby("family")[["same_content", "same_code", "same_position"]].mean()
        shares = {e: float(fam[f"same_{e}"].mean()) for e in ("content", "code", "position")}
        ranked = sorted(shares, key=lambda e: -shares[e])
        margin = shares[ranked[0]] - shares[ranked[1]]
        rows.append({**dict(zip(by, key)), **shares, "support": ranked[0] if margin >= SUPPORT_MARGIN - 1e-12 else "",
                     "runner_up": ranked[1], "margin": margin, "n_samples": int(g["sample_id"].nunique()),
                     "n_prompts": len(g)})
    return pd.DataFrame(rows, columns=columns)
