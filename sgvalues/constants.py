"""Names a params file may choose from, kept where both ``params`` and the stages that use them
can import them (the base layer: this module imports nothing).

>>> ORDERS, ANSWER_MODES
(('as_asked', 'reversed'), ('logprob', 'generate', 'generate_logprob'))
"""

from __future__ import annotations

__all__ = ["ORDERS", "ANSWER_MODES"]

#: the option orders a params file may ask for (``evaluation.option_orders``; ``sgvalues.option_order``)
ORDERS: tuple[str, ...] = ("as_asked", "reversed")

#: the structured answer modes (``evaluation.mode``; ``sgvalues.models.base``)
ANSWER_MODES: tuple[str, ...] = ("logprob", "generate", "generate_logprob")
