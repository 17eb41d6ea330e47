"""Names a params file may choose from, kept where both ``params`` and the stages that use them
can import them (the base layer: this module imports nothing).

>>> ORDERS, ANSWER_MODES
(('as_asked', 'reversed', 'reversed_lines', 'permuted', 'permuted_lines'), ('logprob', 'generate', 'generate_logprob'))
"""

from __future__ import annotations

__all__ = ["ORDERS", "MIN_PERMUTATIONS", "ANSWER_MODES", "READOUTS", "TEMPERATURE_OBJECTIVES", "PERSONA_FORMATS"]

#: the option orders a params file may ask for (``evaluation.option_orders``; ``sgvalues.option_order``)
ORDERS: tuple[str, ...] = ("as_asked", "reversed", "reversed_lines", "permuted", "permuted_lines")

#: the fewest random option permutations a params file may ask for (``evaluation.option_permutations``)
MIN_PERMUTATIONS = 3

#: the structured answer modes (``evaluation.mode``; ``sgvalues.models.base``)
ANSWER_MODES: tuple[str, ...] = ("logprob", "generate", "generate_logprob")

#: the ways chapter 09 reads a distribution out of a model (``evaluation.readouts``; ``sgvalues.readouts``):
#: option log-probabilities, the same with one temperature fitted on the train split, sampled answers,
#: and percentages the model states ("verbalised"); the last two need a model pass of their own
READOUTS: tuple[str, ...] = ("logprob", "logprob_temperature", "sampled", "verbalised")

#: what the fitted temperature minimises (``evaluation.temperature_objective``): mean JSD or mean NLL
TEMPERATURE_OBJECTIVES: tuple[str, ...] = ("jsd", "nll")

#: how the persona is told to the model (``evaluation.persona_formats``; ``sgvalues.prompts``): the paper's
#: sentence, question-answer pairs (OpinionQA's QA), a first-person biography (BIO), and the sentence
#: followed by the subgroup's own answers to the k most similar other questions (few-shot steering)
PERSONA_FORMATS: tuple[str, ...] = ("sentence", "qa", "bio", "fewshot")
