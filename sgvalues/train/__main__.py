"""``python -m sgvalues.train`` is ``sgvalues train``; ``accelerate launch -m sgvalues.train ...`` runs it
in every process (see :mod:`sgvalues.train`)."""

import argparse
import sys

import sgvalues.train
from sgvalues.train.cli import configure_parser, main

if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="sgvalues.train", description=sgvalues.train.__doc__.splitlines()[0])
    configure_parser(_parser)
    sys.exit(main(_parser.parse_args()))
