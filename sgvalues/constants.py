"""Names a params file may choose from, kept where both ``params`` and the stages that use them
can import them (the base layer: this module imports nothing).

>>> ORDERS, ANSWER_MODES
(('as_asked', 'reversed', 'reversed_lines', 'permuted', 'permuted_lines'), ('logprob', 'generate', 'generate_logprob'))
"""

from __future__ import annotations

__all__ = ["ORDERS", "MIN_PERMUTATIONS", "ANSWER_MODES"]

#: the option orders a params file may ask for (``evaluation.option_orders``; ``sgvalues.option_order``)
ORDERS: tuple[str, ...] = ("as_asked", "reversed", "reversed_lines", "permuted", "permuted_lines")

#: the fewest random option permutations a params file may ask for (``evaluation.option_permutations``)
MIN_PERMUTATIONS = 3

#: the structured answer modes (``evaluation.mode``; ``sgvalues.models.base``)
ANSWER_MODES: tuple[str, ...] = ("logprob", "generate", "generate_logprob")
