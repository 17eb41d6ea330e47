"""The ``sgvalues`` command.

Each subcommand lives in the module that does the work; that module defines
``configure_parser(parser)`` and ``main(args) -> int``. Modules are imported only when their
subcommand runs, so ``sgvalues --help`` is instant and needs no torch.

Bad input (a params typo, a bad value, a missing file) ends every subcommand the same way: one
line ``sgvalues <subcommand>: error: <message>`` on stderr and exit status 1
(:func:`is_user_error` says which exceptions count). ``SGVALUES_TRACEBACK=1`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

__all__ = ["SUBCOMMANDS", "is_user_error", "main"]

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("sgvalues.synthetic", "write a synthetic Singapore-like WVS-7-format sample"),
    "prepare": ("sgvalues.prepare", "WVS file -> questions, subgroups, modal answers, diversity, samples"),
    "evaluate": ("sgvalues.evaluate_cli", "structured evaluation of a model -> predictions table"),
    "train": ("sgvalues.train", "LoRA SFT on the train samples -> adapter"),
    "baselines": ("sgvalues.baselines", "no-model baselines and the survey-noise reference for a prepared folder"),
    "judge": ("sgvalues.judge", "open-ended generation and pairwise LLM judging"),
    "run": ("sgvalues.runs", "execute every notebook with papermill for one params file"),
    "book": ("sgvalues.book", "gather the runs present into the Jupyter Book and build it"),
}


def _top_parser() -> argparse.ArgumentParser:
    lines = [f"  {name:<9} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return argparse.ArgumentParser(
        prog="sgvalues",
        description="Persona-prompted LLMs and the values of Singapore's subgroups (WVS-7).",
        epilog="subcommands:\n" + "\n".join(lines) + "\n\n'sgvalues SUBCOMMAND --help' for its options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="sgvalues [-h] [--version] {" + ",".join(SUBCOMMANDS) + "} ...",
    )


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is bad input the user can fix, reported as one line rather than a traceback.

    That is the project's own error types (``ParamsError``, ``WVSFormatError``, ``ProfileError``,
    ``RunError``, ``TrainError``, ``BookError``, ...: any exception class defined in ``sgvalues``),
    ``ValueError`` (the project's validation raises it with the field, the value and what was
    expected) and ``FileNotFoundError``.

    Examples
    --------
    >>> from sgvalues.params import ParamsError
    >>> is_user_error(ParamsError("p.yaml: unknown key(s) model.nmae")), is_user_error(FileNotFoundError("x"))
    (True, True)
    >>> is_user_error(KeyError("column")), is_user_error(KeyboardInterrupt())
    (False, False)
    """
    if isinstance(exc, (ValueError, FileNotFoundError)):
        return True
    return isinstance(exc, Exception) and any(
        (cls.__module__ or "").split(".")[0] == "sgvalues" for cls in type(exc).__mro__)


def main(argv: list[str] | None = None) -> int:
    """Run the ``sgvalues`` command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    if argv[0] == "--version":
        from sgvalues import __version__

        print(f"sgvalues {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        top.error(f"unknown subcommand {name!r}; expected one of: {', '.join(SUBCOMMANDS)}")
    module_name, help_ = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"sgvalues {name}", description=help_)
    module.configure_parser(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.main(args) or 0)
    except Exception as exc:
        if not is_user_error(exc) or os.environ.get("SGVALUES_TRACEBACK", "") not in ("", "0"):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"sgvalues {name}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
