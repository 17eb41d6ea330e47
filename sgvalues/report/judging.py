"""What a reader of chapter 6 needs from the judge's tables: findings in words, compact tables.

The judge stage (:mod:`sgvalues.judge`) computes win rates, position consistency and verdict
shares; this module only says what they mean for the run at hand, so the chapter's first
paragraph is computed from its own tables and cannot contradict them. It also holds what
chapter 6 shows beside them: example answers (:func:`examples_markdown`), the paper's judge
figures (:func:`published_judge_table`, :func:`published_kappas`) and the two figures
(:func:`plot_win_rates`, :func:`plot_verdict_shares`).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from sgvalues.judge.statistics import verdict_shares
from sgvalues.judge.verdicts import ROLES, VERDICTS
from sgvalues.report.format import fmt_count, fmt_rate

__all__ = ["debiased_table", "debiased_sentence", "judge_findings", "win_rate_table", "degenerate_answer", "examples_markdown", "published_judge_table",
           "published_kappas", "plot_win_rates", "plot_verdict_shares", "setup_table", "setup_sentence", "refusal_tables",
           "show_annotations"]


def _span(values: pd.Series) -> str:
    lo, hi = float(values.min()), float(values.max())
    return fmt_rate(lo) if fmt_rate(lo) == fmt_rate(hi) else f"{fmt_rate(lo)} to {fmt_rate(hi)}"


def judge_findings(win_rates: pd.DataFrame, shares: pd.DataFrame) -> str:
    """Markdown saying what the judge could and could not tell on this run.

    Parameters
    ----------
    win_rates : DataFrame
        ``judge.win_rate_table`` output: ``candidate, dimension, n_used, win_rate,
        position_consistency`` and, in logprob mode, ``soft_win_rate``.
    shares : DataFrame
        ``judge.verdict_shares`` output: ``candidate, dimension, order, A, B, tie, unparseable``.

    Notes
    -----
    A verdict that follows the slot, not the answer, gives one win and one loss over the two
    orders, so the win rate is exactly :math:`\\tfrac12` whatever the answers; position
    consistency :math:`\\mathrm{PC}` (share of items whose verdict survives the swap) is then 0.
    The text reports, in this order: a judge that said one verdict every time; else the range
    of PC and of the win rates; the range of the soft win rate when present; and how many items
    the figures rest on.

    Examples
    --------
    >>> wr = pd.DataFrame({"candidate": ["sft"], "dimension": ["overall"], "n_used": [2],
    ...                    "win_rate": [0.5], "position_consistency": [0.0], "soft_win_rate": [0.497]})
    >>> sh = pd.DataFrame({"candidate": ["sft"] * 2, "dimension": ["overall"] * 2, "order": [1, 2],
    ...                    "A": [1.0, 1.0], "B": [0.0, 0.0], "tie": [0.0, 0.0], "unparseable": [0.0, 0.0]})
    >>> print(judge_findings(wr, sh))  # doctest: +NORMALIZE_WHITESPACE
    **What the judge could tell on this run.** The judge answered "A" in every verdict, in both
    orders: its verdicts follow the position of the answers, not their content, so every win rate
    is 0.500 by construction and says nothing about the candidates. Its probabilities lean a
    little (soft win rate 0.497), the only trace of a preference it shows. These figures rest on 2
    items per candidate and dimension.
    """
    if win_rates.empty:
        return "**What the judge could tell on this run.** Nothing: no item was judged in both orders."
    parts = ["**What the judge could tell on this run.**"]
    verdict_cols = [c for c in ("A", "B", "tie") if c in shares.columns]
    constant = None
    for v in verdict_cols:
        if len(shares) and (shares[v] >= 1.0 - 1e-9).all():
            constant = v
    pc = win_rates["position_consistency"]
    if constant is not None:
        if constant == "tie":
            parts.append('The judge answered "tie" in every verdict: it never told the answers apart, so '
                         f"every win rate is {fmt_rate(0.5)} by construction.")
        else:
            parts.append(f'The judge answered "{constant}" in every verdict, in both orders: its verdicts follow '
                         "the position of the answers, not their content, so every win rate is "
                         f"{fmt_rate(0.5)} by construction and says nothing about the candidates.")
    else:
        parts.append(f"Position consistency ranges over {_span(pc)} (1 = every verdict survives the swap), "
                     f"and win rates over {_span(win_rates['win_rate'])}.")
        if (pc < 0.5).all():
            parts.append("Fewer than half of the verdicts survive the swap in every row, so position, more "
                         "than content, drives this judge; read the win rates with that in mind.")
    if "soft_win_rate" in win_rates.columns and win_rates["soft_win_rate"].notna().any():
        soft = win_rates["soft_win_rate"].dropna()
        if (soft.round(3) == 0.5).all():
            parts.append(f"Its probabilities do not lean either way (soft win rate {fmt_rate(0.5)} throughout).")
        else:
            parts.append(f"Its probabilities lean a little (soft win rate {_span(soft)}), the only trace of a "
                         "preference it shows." if constant is not None else
                         f"Its probabilities give soft win rates of {_span(soft)}.")
    n = win_rates["n_used"]
    n_text = fmt_count(n.iloc[0]) if n.nunique() == 1 else f"{fmt_count(n.min())} to {fmt_count(n.max())}"
    parts.append(f"These figures rest on {n_text} items per candidate and dimension.")
    return " ".join(parts)


def win_rate_table(win_rates: pd.DataFrame) -> pd.DataFrame:
    """The win-rate table in the columns a reader needs, the interval in one cell.

    Returns ``candidate, dimension, items, left out, win rate, 95% CI, soft win rate, W/T/L``
    (``soft win rate`` only when the judge gave probabilities; ``W/T/L`` counts single-order
    wins, ties and losses).

    Examples
    --------
    >>> wr = pd.DataFrame({"candidate": ["sft"], "dimension": ["overall"], "n_used": [24],
    ...     "n_unparseable_items": [1], "win_rate": [0.6], "ci_low": [0.45], "ci_high": [0.75],
    ...     "wins": [20], "ties": [4], "losses": [24], "soft_win_rate": [float("nan")]})
    >>> win_rate_table(wr).iloc[0].to_dict()
    {'candidate': 'sft', 'dimension': 'overall', 'items': 24, 'left out': 1, 'win rate': 0.6, '95% CI': '[0.450, 0.750]', 'W/T/L': '20/4/24'}
    """
    out = pd.DataFrame({
        "candidate": win_rates["candidate"], "dimension": win_rates["dimension"],
        "items": win_rates["n_used"], "left out": win_rates["n_unparseable_items"],
        "win rate": win_rates["win_rate"],
        "95% CI": [f"[{fmt_rate(a)}, {fmt_rate(b)}]" for a, b in zip(win_rates["ci_low"], win_rates["ci_high"])],
    })
    if "soft_win_rate" in win_rates.columns and win_rates["soft_win_rate"].notna().any():
        out["soft win rate"] = win_rates["soft_win_rate"]
    out["W/T/L"] = [f"{fmt_count(w)}/{fmt_count(t)}/{fmt_count(n_loss)}"
                    for w, t, n_loss in zip(win_rates["wins"], win_rates["ties"], win_rates["losses"])]
    return out.reset_index(drop=True)


_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")


def debiased_table(win_rates: pd.DataFrame) -> pd.DataFrame:
    """Argmax and position-debiased verdicts side by side, per candidate and dimension.

    ``candidate, dimension, win rate, consistency`` (of the argmax verdicts), ``debiased win rate,
    decided`` (share of items the debiased verdict calls a win or a loss) and ``agreement`` (with
    the argmax verdicts on the items whose verdict survived the swap; "–" where none did).
    Empty when the judge gave no probabilities (``generate`` mode).
    """
    if "debiased_win_rate" not in win_rates.columns or win_rates["debiased_win_rate"].isna().all():
        return pd.DataFrame()
    return pd.DataFrame({
        "candidate": win_rates["candidate"], "dimension": win_rates["dimension"],
        "win rate": win_rates["win_rate"], "consistency": win_rates["position_consistency"],
        "debiased win rate": win_rates["debiased_win_rate"], "decided": win_rates["debiased_decided"],
        "agreement": win_rates["debiased_agreement"]}).reset_index(drop=True)


def debiased_sentence(win_rates: pd.DataFrame, tie_band: float | None = None) -> str:
    """Markdown: what the position-debiased verdicts add to the argmax ones on this run.

    Examples
    --------
    >>> wr = pd.DataFrame({"candidate": ["sft", "base"], "dimension": "overall", "win_rate": 0.5,
    ...     "position_consistency": 0.0, "debiased_win_rate": [0.6, 0.5], "debiased_decided": [0.25, 0.0],
    ...     "debiased_agreement": float("nan")})
    >>> print(debiased_sentence(wr, tie_band=0.05))
    Averaged over both orders, the judge's probabilities decide 0.0 % to 25.0 % of the items (a win or a loss outside 0.450 to 0.550), giving debiased win rates of 0.500 to 0.600 where the argmax verdicts give 0.500. No argmax verdict survived the swap, so there is nothing to agree with.
    """
    from sgvalues.judge import TIE_BAND

    band = TIE_BAND if tie_band is None else tie_band
    t = debiased_table(win_rates)
    if t.empty:
        return ("The judge gave no verdict probabilities on this run (`generate` mode), so there is no "
                "position-debiased verdict.")
    dec = t["decided"].dropna()
    lo, hi = f"{100 * dec.min():.1f} %", f"{100 * dec.max():.1f} %"
    text = (f"Averaged over both orders, the judge's probabilities decide {lo if lo == hi else f'{lo} to {hi}'} "
            f"of the items (a win or a loss outside {fmt_rate(0.5 - band)} to "
            f"{fmt_rate(0.5 + band)}), giving debiased win rates of {_span(t['debiased win rate'])} where the "
            f"argmax verdicts give {_span(t['win rate'])}.")
    agree = t["agreement"].dropna()
    if agree.empty:
        return text + " No argmax verdict survived the swap, so there is nothing to agree with."
    return text + (f" On the items whose argmax verdict survived the swap, the debiased verdict agrees with it "
                   f"in {_span(agree)} of them (per row).")


def degenerate_answer(text) -> str | None:
    """``"empty"``, ``"looping"`` (a sentence of 4+ words said twice) or ``None`` for a usable answer.

    Annotators should not be asked to rate an empty or looping output: there is nothing to judge.

    Examples
    --------
    >>> degenerate_answer(""), degenerate_answer(None)
    ('empty', 'empty')
    >>> degenerate_answer("I am a member. I am a member of it. I am a member of it.")
    'looping'
    >>> degenerate_answer("Family matters most to me. Faith comes second.") is None
    True
    """
    if text is None or (isinstance(text, float) and pd.isna(text)) or not str(text).strip():
        return "empty"
    seen = set()
    for s in _SENTENCE.findall(str(text)):
        key = " ".join(s.lower().split()).rstrip(".!?")
        if len(key.split()) >= 4:
            if key in seen:
                return "looping"
            seen.add(key)
    return None


# --------------------------------------------------------------------------------------------
# examples, the paper's figures, figures (moved from sgvalues.judge)
# --------------------------------------------------------------------------------------------


def examples_markdown(pairs: pd.DataFrame, generations: pd.DataFrame, n: int = 3, width: int = 600) -> str:
    """Markdown showing ``n`` items: persona, question, majority answer, then each role's answer.

    ``pairs`` is the ``pairs`` table of :func:`sgvalues.judge.judge_run` (persona, question, majority_answer).
    """
    text = {(r.sample_id, r.role): str(r.text) for r in generations.itertuples()}
    roles = [r for r in ROLES if r in set(generations["role"])]
    blocks = []
    for r in pairs.head(n).itertuples():
        lines = [f"**{r.sample_id}** ({r.theme}; {r.subgroup})", "",
                 f"- *Persona:* {r.persona}", f"- *Question:* {r.question}",
                 f"- *Survey majority answer of this subgroup:* {r.majority_answer}", "",
                 "| " + " | ".join(roles) + " |", "|" + "---|" * len(roles)]
        cells = []
        for role in roles:
            t = text.get((r.sample_id, role), "").replace("|", "\\|").replace("\n", " ").strip() or "*(empty)*"
            cells.append(t if len(t) <= width else t[: width - 1] + "…")
        lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def published_judge_table() -> pd.DataFrame:
    """The paper's judge-related figures, one row per quantity, labelled as published."""
    from sgvalues.published import PUBLISHED_LABEL, published

    pub = published()["judge"]
    rows = [
        {"quantity": "judge model", "value": pub["judge_model"]},
        {"quantity": "reference model", "value": pub["reference_model"]},
    ]
    for key, d in pub["weighted_kappa"].items():
        rows.append({"quantity": f"weighted kappa, {key}, human-AI", "value": d["human_ai"]})
        rows.append({"quantity": f"weighted kappa, {key}, human-human", "value": d["human_human"]})
    for tag, v in pub["refusal_rate_sensitive"].items():
        rows.append({"quantity": f"refusal rate on sensitive topics, {tag}", "value": v})
    table = pd.DataFrame(rows).assign(source=PUBLISHED_LABEL)
    # one text column mixes names and figures: figures as the paper gives them ("0.0666", "0")
    table["value"] = table["value"].map(lambda v: f"{v:.4g}" if isinstance(v, (int, float)) else str(v))
    return table


#: names in sgvalues.published for our dimensions
_PUBLISHED_KEY = {"overall": "overall", "persona_fidelity": "persona"}


def published_kappas() -> pd.DataFrame:
    """The paper's kappas in the shape of :func:`sgvalues.judge.agreement_table` (dimension names mapped)."""
    from sgvalues.published import published

    pub = published()["judge"]["weighted_kappa"]
    rows = []
    for dim, key in _PUBLISHED_KEY.items():
        if key in pub:
            rows.append({"dimension": dim, "kappa_human_ai": pub[key]["human_ai"],
                         "kappa_human_human": pub[key]["human_human"]})
    return pd.DataFrame(rows)


def plot_win_rates(win_rates: pd.DataFrame, title: str | None = None):
    """Bar chart of win rates per dimension and candidate, with bootstrap CIs and the 0.5 line."""
    import matplotlib.pyplot as plt

    dims = list(dict.fromkeys(win_rates["dimension"]))
    cands = list(dict.fromkeys(win_rates["candidate"]))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(dims), 3.4))
    width = 0.8 / max(len(cands), 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, cand in enumerate(cands):
        sub = win_rates[win_rates["candidate"] == cand].set_index("dimension").reindex(dims)
        x = np.arange(len(dims)) + (k - (len(cands) - 1) / 2) * width
        y = sub["win_rate"].to_numpy(float)
        err = np.vstack([y - sub["ci_low"].to_numpy(float), sub["ci_high"].to_numpy(float) - y])
        ax.bar(x, y, width=width * 0.92, color=colors[k % len(colors)], label=f"{cand} vs reference")
        ax.errorbar(x, y, yerr=np.where(np.isfinite(err), err, 0), fmt="none", ecolor="black", capsize=3, lw=1)
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set_xticks(np.arange(len(dims)), [d.replace("_", " ") for d in dims])
    ax.set_ylim(0, 1)
    ax.set_ylabel("win rate over reference")
    ax.set_title(title or "Pairwise win rates (both orders, 95% bootstrap CI)")
    ax.legend(loc="upper right", fontsize="small")
    return fig


def plot_verdict_shares(verdicts: pd.DataFrame, candidate: str | None = None):
    """Stacked bars: share of A/B/tie/unparseable per dimension and order (position bias).

    ``candidate`` picks one candidate (default: the last, i.e. ``sft`` when present).
    """
    import matplotlib.pyplot as plt

    cand = candidate or sorted(verdicts["candidate"].unique())[-1]
    shares = verdict_shares(verdicts[verdicts["candidate"] == cand])
    dims = list(dict.fromkeys(shares["dimension"]))
    fig, axes = plt.subplots(1, len(dims), figsize=(1.6 + 2.0 * len(dims), 3.4), sharey=True, squeeze=False)
    colors = dict(zip(VERDICTS, plt.rcParams["axes.prop_cycle"].by_key()["color"][:3] + ["#bbbbbb"]))
    for ax, dim in zip(axes[0], dims):
        for x, order in enumerate((1, 2)):
            row = shares[(shares["dimension"] == dim) & (shares["order"] == order)]
            bottom = 0.0
            for v in VERDICTS:
                h = float(row[v].iloc[0]) if len(row) else 0.0
                ax.bar(x, h, bottom=bottom, width=0.7, color=colors[v], label=v)
                bottom += h
        ax.set_xticks([0, 1], [f"{cand}\nas A", f"{cand}\nas B"], fontsize="small")
        ax.set_title(dim.replace("_", " "), fontsize="medium")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("share of verdicts")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles[: len(VERDICTS)], labels[: len(VERDICTS)], title="verdict", loc="center left",
               bbox_to_anchor=(1.0, 0.5), fontsize="small")
    fig.suptitle(f"Judge verdicts by presentation order ({cand} vs reference)", fontweight="bold")
    fig.tight_layout()
    return fig




# ----------------------------------------------------------------------------- chapter 6 sections


def _same_reference(params) -> bool:
    return (params.judge.reference.backend, params.judge.reference.name) == (params.model.backend, params.model.name)


def setup_table(params, verdicts: pd.DataFrame) -> pd.DataFrame:
    """Who plays which role on this run: ``role, model, backend, note`` (candidate, reference, judge).

    Examples
    --------
    >>> from sgvalues.params import load_params
    >>> from sgvalues.paths import repo_path
    >>> p = load_params(repo_path("params/smoke.yaml"))
    >>> setup_table(p, pd.DataFrame({"candidate": ["base"]}))["role"].tolist()
    ['candidate', 'reference', 'judge']
    """
    from sgvalues.judge import resolve_judge_mode

    j = params.judge
    mode = resolve_judge_mode(j.judge_mode, j.judge)
    has_sft = "sft" in set(verdicts["candidate"])
    return pd.DataFrame([
        {"role": "candidate", "model": params.model.name, "backend": params.model.backend,
         "note": "base" + (" and SFT (run adapter)" if has_sft else "; no adapter in this run, so no SFT candidate")},
        {"role": "reference", "model": j.reference.name, "backend": j.reference.backend,
         "note": "same model as the base candidate" if _same_reference(params) else ""},
        {"role": "judge", "model": j.judge.name, "backend": j.judge.backend,
         "note": f"{mode} mode" + (" (most likely of 'A', 'B', 'tie')" if mode == "logprob" else
                                   f" (reply of at most {j.judge_max_new_tokens} tokens, parsed)")},
    ])


def setup_sentence(params, pairs: pd.DataFrame, verdicts: pd.DataFrame, wall_s: float) -> str:
    """What the stage did on this run (pairs, answer length, verdicts, wall time), in words;
    with a warning when the reference is the base model itself (a self-comparison)."""
    j = params.judge
    text = (f"{fmt_count(len(pairs))} OOD (question, subgroup) pairs, stratified by theme and stratum (seed "
            f"{params.seed}); answers of at most {j.max_new_tokens} new tokens, greedy; {fmt_count(len(verdicts))} "
            f"verdicts ({len(j.dimensions)} dimensions x 2 orders per pair and candidate). Stage wall time "
            f"{wall_s:.0f} s (re-runs reuse `judge/.parts` and the response cache).")
    if _same_reference(params):
        text += (" The reference is the base model itself, so **base vs reference is a self-comparison**: both "
                 "answers are identical and the swap makes the win rate exactly 0.5 whatever the judge says. "
                 "It checks the machinery; the informative comparison is SFT vs reference (the base model), "
                 "present when the run has an adapter.")
    return text


def refusal_tables(refusals: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The judge stage's refusal table split for reading: ``(overall, theme x role refusal rates)``.

    Examples
    --------
    >>> r = pd.DataFrame({"theme": ["all", "all", "T1", "T1"], "role": ["base", "sft"] * 2,
    ...                   "refusal_rate": [0.1, 0.2, 0.0, 0.5]})
    >>> overall, by_theme = refusal_tables(r)
    >>> overall.columns.tolist(), by_theme.to_dict("records")
    (['role', 'refusal_rate'], [{'theme': 'T1', 'base': 0.0, 'sft': 0.5}])
    """
    overall = refusals[refusals["theme"] == "all"].drop(columns="theme")
    by_theme = refusals[refusals["theme"] != "all"].pivot_table(index="theme", columns="role", values="refusal_rate")
    return overall, by_theme.reset_index().rename_axis(columns=None)


def show_annotations(run_dir, verdicts: pd.DataFrame, annotations_dir, params, note: str = "") -> pd.DataFrame | None:
    """Chapter 6's human-agreement section: write the annotation sheet and, when human ratings
    are given, the judge's agreement with them (``judge/agreement.csv``) beside the paper's kappas.

    Displays the section (sheet sentence, tables); returns the agreement table, or ``None``
    when ``annotations_dir`` is ``None`` (no kappa is computed and no label is invented).
    """
    from pathlib import Path

    from IPython.display import Markdown, display

    from sgvalues import judge
    from sgvalues.published import PUBLISHED_LABEL
    from sgvalues.report.format import format_table
    from sgvalues.paths import repo_path

    run_dir = Path(run_dir)
    candidate = sorted(verdicts["candidate"].unique())[-1]
    sheet = judge.export_annotation_sheet(run_dir, run_dir / "judge" / "annotation_sheet.csv", candidate=candidate,
                                          seed=params.seed)
    unusable = sheet[["answer_A", "answer_B"]].apply(lambda col: col.map(degenerate_answer)).notna().any(axis=1)
    display(Markdown(f"Annotation sheet: `runs/{run_dir.name}/judge/annotation_sheet.csv`, {fmt_count(len(sheet))} "
                     f"rows with blank verdicts; {fmt_count(int(unusable.sum()))} of them have an empty or looping "
                     "answer (leave their verdict blank: blank rows are skipped)."))
    published_kappa = published_kappas().assign(source=PUBLISHED_LABEL)
    if annotations_dir is None:
        display(Markdown("**No human annotations given** (`annotations_dir = None`), so no kappa is computed and no "
                         "human labels are invented. The only check on the judge here is its position consistency "
                         "(above). The paper's kappas, for reference:"))
        display(format_table(published_kappa))
        return None
    agreement = judge.agreement_table(repo_path(annotations_dir), verdicts)
    agreement.to_csv(run_dir / "judge" / "agreement.csv", index=False)
    display(format_table(agreement.assign(source=f"this run ({params.label})")))
    display(format_table(published_kappa))
    display(Markdown("Kappas from a dozen items per dimension are noisy (differences of ±0.2 mean little). " + note))
    return agreement
