"""``sgvalues train``: prepare the run's data when it has none, then train (one adapter per seed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sgvalues.train.data import TrainError
from sgvalues.train.loop import train_run
from sgvalues.train.seeds import seed_dir, training_seeds

__all__ = [
    "configure_parser",
    "main",
]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", required=True, help="params YAML (params/<model>.yaml)")
    parser.add_argument("--run-dir", required=True,
                        help="run folder: data/ is prepared from the params when it holds no samples; "
                             "adapter/ is written here")
    parser.add_argument("--force", action="store_true", help="retrain even if the adapter exists")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="override training.max_steps (e.g. a quick check)")
    parser.add_argument("--all-seeds", action="store_true",
                        help="train one adapter per training.seeds (the run's seed into adapter/, the "
                             "others into adapters/seed-<s>/); evaluate them with train.train_over_seeds")


def main(args: argparse.Namespace) -> int:
    import dataclasses

    from sgvalues.params import load_params
    from sgvalues.prepare import ensure_prepared
    from sgvalues.split import sample_path

    params = load_params(args.params)
    if not params.training.enabled:
        print(f"{args.params}: training.enabled is false; nothing to do")
        return 0
    if args.max_steps is not None:
        params = dataclasses.replace(
            params, training=dataclasses.replace(params.training, max_steps=args.max_steps))
    try:
        if not sample_path(Path(args.run_dir) / "data", "train").is_file():
            # the stage before training: a fresh run folder gets its data from the params
            ensure_prepared(params, args.run_dir)
        seeds = training_seeds(params) if getattr(args, "all_seeds", False) else [params.seed]
        for seed in seeds:
            train_run(params, args.run_dir, force=args.force, seed=seed,
                      out_dir=seed_dir(params, args.run_dir, seed))
    except (TrainError, FileNotFoundError, ValueError) as exc:
        print(f"sgvalues train: error: {exc}", file=sys.stderr)
        return 2
    return 0
