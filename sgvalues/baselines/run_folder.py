"""A run folder's baselines and noise reference, kept up to date, and ``sgvalues baselines``.

:func:`ensure_run_baselines` writes every baseline's predictions (:mod:`sgvalues.baselines.predictors`)
and the survey-noise reference (:mod:`sgvalues.baselines.noise`) into a run folder when they are
missing or their inputs changed; :func:`main` does the same for any prepared folder from the
command line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd

from sgvalues.atomic import atomic_write_text
from sgvalues.baselines.noise import noise_reference
from sgvalues.baselines.predictors import BASELINES, load_baseline_predictions, write_baselines
from sgvalues.tables import write_csv

__all__ = ["BASELINES_VERSION", "ensure_run_baselines", "run_baseline_predictions", "configure_parser", "main"]

#: bump when a baseline's definition changes, so :func:`ensure_run_baselines` recomputes
BASELINES_VERSION = 1


def _fingerprint(prepared: Path, seed: int, n_boot: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"version": BASELINES_VERSION, "seed": seed, "n_boot": n_boot}).encode())
    for name in ("modal_answers.csv", "subgroups.csv", "samples_train.jsonl", "samples_ood.jsonl"):
        p = prepared / name
        h.update(name.encode() + b"\0")
        if p.is_file():
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def ensure_run_baselines(run_dir: str | Path, seed: int = 0, n_boot: int = 200, force: bool = False,
                         log: Callable[[str], None] | None = None) -> dict | None:
    """Baselines and noise reference of a run folder, computed only when missing or out of date.

    Writes ``<run_dir>/predictions/<name>_<split>.csv`` for every baseline and split,
    ``<run_dir>/baselines/noise_reference.csv`` (:func:`noise_reference` per split and stratum)
    and ``<run_dir>/baselines/summary.json`` (inputs fingerprint, seconds). Returns the summary,
    or ``None`` when the run has no prepared data yet (``<run_dir>/data``).
    """
    import time

    from sgvalues.split import load_samples

    run_dir = Path(run_dir)
    prepared = run_dir / "data"
    if not all((prepared / f).is_file() for f in ("modal_answers.csv", "subgroups.csv", "samples_train.jsonl",
                                                    "samples_ood.jsonl")):
        return None
    out = run_dir / "baselines"
    summary_path = out / "summary.json"
    fp = _fingerprint(prepared, seed, n_boot)
    expected = [run_dir / "predictions" / f"{n}_{s}.csv" for n in BASELINES for s in ("train", "ood")]
    if not force and summary_path.is_file() and all(p.is_file() for p in expected) \
            and (out / "noise_reference.csv").is_file():
        try:
            old = json.loads(summary_path.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("inputs_sha256") == fp:
            return old
    t0 = time.perf_counter()
    samples = {s: load_samples(prepared, s) for s in ("train", "ood")}
    write_baselines(prepared, run_dir / "predictions", seed=seed, samples=samples)
    noise = noise_reference(samples["train"] + samples["ood"], n_boot=n_boot, seed=seed)
    write_csv(noise, out / "noise_reference.csv")
    summary = {"inputs_sha256": fp, "baselines": list(BASELINES), "seed": seed, "n_boot": n_boot,
               "seconds": round(time.perf_counter() - t0, 2)}
    atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n")
    if log is not None:
        log(f"baselines and noise reference for {run_dir.name} in {summary['seconds']:.1f} s")
    return summary


def run_baseline_predictions(run_dir: str | Path, split: str, names: Sequence[str] = BASELINES,
                             sample_ids: Iterable | None = None) -> pd.DataFrame:
    """A run's predictions of the baselines ``names`` on ``split`` (a ``baseline`` column), written
    first (:func:`ensure_run_baselines`) when the run has prepared data but no baseline tables;
    only the rows of ``sample_ids`` when given. Empty when the run has neither.

    The one way the report pages read a run's yardsticks on the samples of a model state.
    """
    run_dir = Path(run_dir)
    tables = load_baseline_predictions(run_dir / "predictions", split, names)
    if tables.empty and (run_dir / "data").is_dir():
        ensure_run_baselines(run_dir)
        tables = load_baseline_predictions(run_dir / "predictions", split, names)
    if tables.empty or sample_ids is None:
        return tables
    ids = {str(i) for i in sample_ids}
    return tables[tables["sample_id"].astype(str).isin(ids)].reset_index(drop=True)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prepared", required=True, help="prepared folder (sgvalues prepare --out DIR)")
    parser.add_argument("--out", required=True, help="folder for <name>_<split>.csv (e.g. runs/<run>/predictions)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the uniform draws and the noise bootstrap")
    parser.add_argument("--n-boot", type=int, default=200, help="bootstrap draws of the noise reference (default 200)")
    parser.add_argument("--no-noise", action="store_true", help="skip the noise reference (noise_reference.csv)")


def main(args: argparse.Namespace) -> int:
    from sgvalues import metrics
    from sgvalues.split import load_samples

    prepared, out = Path(args.prepared), Path(args.out)
    try:
        samples = {s: load_samples(prepared, s) for s in ("train", "ood")}
        paths = write_baselines(prepared, out, seed=args.seed, samples=samples)
    except (FileNotFoundError, ValueError) as exc:
        print(f"sgvalues baselines: error: {exc}", file=sys.stderr)
        return 1
    summary = {}
    for p in paths:
        from sgvalues.evaluate import load_predictions

        row = metrics.aggregate(load_predictions(p), None).iloc[0]
        summary[p.stem] = {"accuracy": round(float(row["accuracy"]), 4), "nmae": round(float(row["nmae"]), 4),
                           "jsd": round(float(row["jsd"]), 4), "n": int(row["n"])}
    if not args.no_noise:
        noise = noise_reference(samples["train"] + samples["ood"], n_boot=args.n_boot, seed=args.seed)
        write_csv(noise, out / "noise_reference.csv")
        for r in noise[noise["stratum"] == "all"].itertuples(index=False):
            summary[f"noise_reference_{r.split}"] = {"estimate": round(r.estimate, 4), "lo": round(r.lo, 4),
                                                     "hi": round(r.hi, 4), "n": int(r.n_samples)}
    print(json.dumps(summary, indent=1))
    return 0
