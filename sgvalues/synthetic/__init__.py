"""A SYNTHETIC Singapore-like WVS-7 sample, written in the official file's column layout.

WVS respondent rows may not be redistributed, so when no official file is given the project
generates its own sample and reads it through the same loader (:func:`sgvalues.data.load_wvs`)
as the real file. **Every row is invented**: no answer in it was given by a real person. The
column ``SGV_SYNTHETIC`` (1 on every row) marks the file, and the loader labels the respondents
table ``attrs["synthetic"] = True`` so every table and figure derived from it can say so.

What is realistic, and where it comes from (``resources/singapore_reference.json``, cited in
``resources/SYNTHETIC_SOURCES.md``):

* composition: the WVS-7 Singapore sample's sex and age-band counts (1,088 women, 924 men;
  ages 21-91), Census 2020 ethnic shares and religion within ethnic group (Taoists coded
  WVS "Other" 9, Christians split Roman Catholic / Protestant);
* nine items (Q1, Q2, Q3, Q5, Q48, Q49, Q50, Q173, Q240) are calibrated to the real
  Singapore answer shares, overall and (roughly) by sex and age band, and to their real
  missing-answer rates.

Everything else (the other 250 items' distributions, every subgroup effect, the latent
traits, missing-answer rates, which items are "not asked") is a modelling choice of this
module, chosen to give the subgroup structure a study of subgroup values needs; it is not a
claim about the real survey. Those choices are numbers in
``resources/synthetic_population.yaml`` (read once, each commented there); this module is the
generator that turns them into respondents.

Notes
-----
Composition: sex and age-band counts are the real sample's, scaled to ``n`` (largest
remainders); the ethnic group is drawn given the age band (census shares, Indians slightly
oversampled, Malays tilted younger) and religion given ethnic group and age band (census
shares within ethnic group; among Chinese, younger respondents lean to no religion and
Christianity), both by systematic sampling so each cell's counts are within one of their
expectation whatever the seed.

Respondent :math:`i` has sex :math:`s`, age band :math:`a`, ethnic group :math:`e`,
religion :math:`r` and five latent traits :math:`\\theta_i` (religiosity, traditionalism,
social trust, well-being, political engagement), each drawn around a group mean,
:math:`\\theta_{it} = m_t(s, a, e, r) + \\sigma_t z_{it}`. For an ordered question :math:`q`
with :math:`K` answer codes (after the catalogue's ordinal recodings),

.. math::

    \\eta_{iq} = \\beta^{sex}_{q s} + \\beta^{age}_{q a} + \\beta^{eth}_{q e}
                + \\beta^{rel}_{q r} + \\gamma^{age\\times rel}_{q a r}
                + \\gamma^{eth\\times rel}_{q e r} + \\gamma^{sex\\times age}_{q s a}
                + \\gamma^{sex\\times rel}_{q s r} + \\lambda_q^\\top \\theta_i ,

    P(y_{iq} \\le k) = \\operatorname{logistic}(\\tau_{qk} - \\eta_{iq}), \\quad k=1..K-1 .

The main effects are drawn once per question from a fixed population seed with standard
deviations set by the question's theme (religion dominates "Religious Values"; every axis is
weak in "Social Capital, Trust & Organizational Membership"), the interactions with a smaller
scale, and the loadings :math:`\\lambda_q` are partly semantic (e.g. religiosity raises the
importance of God, Q164) and partly random. The thresholds :math:`\\tau_q` are solved so the
expected marginal shares over the generated respondents equal a target distribution
:math:`\\pi_q`: the real shares for the nine calibrated items, otherwise a skewed survey-like
distribution drawn per question. Nominal items use a multinomial logit with Gumbel noise;
second choices (Q153, Q155, Q157) are the runner-up of the same utilities. Missing answers:
:math:`P(\\text{missing}_{iq}) = \\operatorname{logistic}(c_q + b\\,u_i)` with a respondent
propensity :math:`u_i`; -1 "don't know" and -2 "no answer". Items in
:data:`NOT_ASKED_ITEMS` are -4 for everyone. Answers are written as the *raw* codes the
official file would hold (e.g. Q56 recoded 2 is raw 3). ``W_WEIGHT`` rakes sex, age band and
ethnic group to target margins.

The same ``seed`` gives a byte-identical file; question parameters do not depend on the
seed (only the respondents do), so different seeds are different samples of one population.

Modules: :mod:`~sgvalues.synthetic.parameters` (the parameters of
``resources/synthetic_population.yaml`` and the published figures of
``resources/singapore_reference.json``), :mod:`~sgvalues.synthetic.respondents` (composition,
traits, weights), :mod:`~sgvalues.synthetic.answers` (question parameters, answers,
:func:`generate_sample`), :mod:`~sgvalues.synthetic.files` (:func:`write_sample`, ``sgvalues
synth``). :func:`input_files` lists every file the sample depends on (``sgvalues prepare`` keys
its cache on them).

Example
-------
>>> df = generate_sample(n=200, seed=1)
>>> df.shape[0], int(df["SGV_SYNTHETIC"].min()), sorted(df["B_COUNTRY"].unique().tolist())
(200, 1, [702])
>>> int((df["Q260"] == 2).sum()), int(df["Q262"].min()) >= 21
(108, True)
>>> sorted(set(df["Q91"]))
[-4]
"""

from __future__ import annotations

from pathlib import Path

from sgvalues.synthetic.answers import generate_sample
from sgvalues.synthetic.files import configure_parser, main, write_sample
from sgvalues.synthetic.parameters import (AGE_BANDS, AGE_LIMITS, CALIBRATED_ITEMS, ETHNICITIES, ETHNICITY_CODES,
                                          INDIAN_SAMPLING_SHARE, NOT_ASKED_ITEMS, POPULATION_FILE, POPULATION_SEED,
                                          RELIGION_CODES, RELIGIONS, SECOND_CHOICE, SEMANTIC_LOADINGS,
                                          SENSITIVE_ITEMS, SYNTHETIC_COLUMN, THEME_EFFECTS, TRAITS, reference)

__all__ = [
    "SYNTHETIC_COLUMN",
    "NOT_ASKED_ITEMS",
    "CALIBRATED_ITEMS",
    "THEME_EFFECTS",
    "ETHNICITY_CODES",
    "RELIGION_CODES",
    "AGE_BANDS",
    "AGE_LIMITS",
    "ETHNICITIES",
    "RELIGIONS",
    "TRAITS",
    "INDIAN_SAMPLING_SHARE",
    "POPULATION_FILE",
    "POPULATION_SEED",
    "SECOND_CHOICE",
    "SEMANTIC_LOADINGS",
    "SENSITIVE_ITEMS",
    "reference",
    "generate_sample",
    "write_sample",
    "input_files",
    "configure_parser",
    "main",
]

#: the files besides the code that define the sample, under ``sgvalues/``
_RESOURCE_FILES = ("resources/singapore_reference.json", POPULATION_FILE)


def input_files() -> list[Path]:
    """Every file the synthetic sample depends on: the generator's modules and its resources.

    A change to any of them may change the sample, so a cache of a generated sample is keyed
    on all of them (``sgvalues prepare``).

    Examples
    --------
    >>> sorted(p.name for p in input_files())  # doctest: +NORMALIZE_WHITESPACE
    ['__init__.py', 'answers.py', 'files.py', 'parameters.py', 'respondents.py',
     'singapore_reference.json', 'synthetic_population.yaml']
    """
    here = Path(__file__).resolve().parent
    return sorted(here.glob("*.py")) + [here.parent / name for name in _RESOURCE_FILES]
