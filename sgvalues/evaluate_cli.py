"""``sgvalues evaluate``: the structured evaluation of one split, and the option-order check when the
params ask for it.

The command sits above both :mod:`sgvalues.evaluate` and :mod:`sgvalues.option_order` (which builds
on ``evaluate``), so neither of them imports the other back.
"""

from __future__ import annotations

import argparse
import json
import sys

from sgvalues.constants import ANSWER_MODES
from sgvalues.evaluate import evaluate_run, summarise

__all__ = ["configure_parser", "main"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", required=True, help="params YAML (e.g. params/smollm2-135m.yaml)")
    parser.add_argument("--run-dir", required=True, help="run folder holding data/ (e.g. runs/default)")
    parser.add_argument("--split", default="ood", choices=["ood", "train"])
    parser.add_argument("--tag", default="base", help="'base' (zero-shot) or 'sft'")
    parser.add_argument("--adapter", default=None, help="LoRA adapter folder (hf backend)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate a stratified subset of N samples")
    parser.add_argument("--mode", default=None, choices=list(ANSWER_MODES),
                        help="structured answer mode (default: the params file's evaluation.mode)")
    parser.add_argument("--no-cache", action="store_true", help="bypass the response cache")


def main(args: argparse.Namespace) -> int:
    from sgvalues.params import load_params

    params = load_params(args.params)
    df = evaluate_run(params, args.run_dir, split=args.split, tag=args.tag, adapter=args.adapter,
                      limit=args.limit, mode=args.mode, cache=not args.no_cache,
                      log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(summarise(df)))
    if len(params.evaluation.option_orders) > 1:  # the params ask for the option-order check too
        from sgvalues.option_order import evaluate_run_orders, order_effect, orders_path

        table = evaluate_run_orders(params, args.run_dir, args.split, args.tag, adapter=args.adapter,
                                    limit=args.limit, cache=not args.no_cache)
        print(f"{orders_path(args.run_dir, args.tag, args.split)}:", file=sys.stderr)
        print(order_effect(table)[["option_order", "accuracy", "nmae", "changed", "n"]].to_string(index=False))
    return 0
