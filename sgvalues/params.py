"""Run parameters: one YAML recipe per model under ``params/``, validated on load.

A params file says which model to run, on which data, and how to evaluate, fine-tune and judge
it. Every section has defaults, so a recipe only states what differs; recipes that share a base
say ``extends: <base file>`` and hold only what differs from it (:func:`read_recipe`). Unknown
keys and bad values are errors that name the file, the key and what was expected.

Example
-------
>>> p = Params.from_dict({"name": "demo", "model": {"backend": "hf", "name": "smollm2-135m"}})
>>> p.model.backend, p.data.min_n, p.seed
('hf', 30, 0)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

__all__ = [
    "ParamsError",
    "ModelSpec",
    "DataParams",
    "EvaluationParams",
    "TrainingParams",
    "JudgeParams",
    "SplitParams",
    "QUESTION_SPLIT_MODES",
    "Params",
    "load_params",
    "read_recipe",
    "recipe_text",
    "merge_recipes",
    "EXTENDS",
]


#: weight quantizations an hf model may be loaded with (bitsandbytes)
QUANTIZATIONS: tuple[str, ...] = ("8bit", "4bit")


class ParamsError(ValueError):
    """A params file is malformed: names the file, the key and what was expected."""


@dataclass(frozen=True)
class ModelSpec:
    """Which model answers, and through which backend.

    ``backend="hf"``: ``name`` is a local folder, a hub name, or ``"smollm2-135m"`` (the
    embedded default). ``backend="openai"``: ``name`` is the served model name and
    ``base_url`` the server (``None`` = the OpenAI API); the key comes from the environment
    variable ``api_key_env`` only, never from a file.

    ``quantization`` (hf only): ``"8bit"`` or ``"4bit"`` loads the weights through bitsandbytes
    (``BitsAndBytesConfig(load_in_8bit=True)`` / ``load_in_4bit``), e.g. the paper's INT8
    Mistral-Small-3.1-24B judge. It needs CUDA and an importable ``bitsandbytes``; where either
    is missing the model loads unquantized with a warning (``sgvalues.models.hf.quantization_config``).
    ``None`` = full weights.

    ``backend`` is a name in the backend registry (``sgvalues.models.registry``): ``hf``,
    ``openai``, ``embedded`` (the hf backend on the embedded model), ``dummy`` (the deterministic
    test model, for dry runs), or one another package registered.

    ``system_role`` (``auto``, ``yes`` or ``fold``): whether the system prompt is sent as a system
    message or folded into the first user turn (``sgvalues.models.chat``). ``auto`` probes the
    chat template once and folds only where it rejects the system role (Gemma, several Mistral
    templates); for an openai server it sends the messages as they are. YAML's bare ``yes``/``no``
    read as ``yes``/``fold``.
    """

    backend: str = "hf"
    name: str = "smollm2-135m"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"
    adapter: str | None = None
    max_concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 5
    #: retry waits: ``min(backoff_max_s, backoff_base_s * 2**attempt)`` scaled by a random
    #: jitter in [0.5, 1] (openai backend)
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    #: alternatives per position requested from an openai-compatible server (0 = none)
    top_logprobs: int = 20
    #: CPU threads for torch (hf backend; 0 = torch's default). 1 is much faster on a busy
    #: machine, where threads of one op wait for each other
    cpu_threads: int = 0
    #: ``None``, ``"8bit"`` or ``"4bit"`` (hf backend; bitsandbytes on CUDA, see above)
    quantization: str | None = None
    #: ``auto``, ``yes`` or ``fold``: the system prompt as a system message or folded (see above)
    system_role: str | bool = "auto"

    def __post_init__(self):
        from sgvalues.models.chat import SYSTEM_ROLES
        from sgvalues.models.registry import backend_names

        if self.backend not in backend_names():
            raise ValueError(f"backend = {self.backend!r}: expected one of {', '.join(backend_names())} "
                             "(another backend must be registered with sgvalues.models.register_backend first)")
        if isinstance(self.system_role, bool):  # YAML 1.1 reads a bare yes/no as a boolean
            object.__setattr__(self, "system_role", "yes" if self.system_role else "fold")
        if self.system_role not in SYSTEM_ROLES:
            raise ValueError(f"system_role = {self.system_role!r}: expected one of {', '.join(SYSTEM_ROLES)}")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff_base_s and backoff_max_s must be >= 0")
        if self.cpu_threads < 0:
            raise ValueError("cpu_threads must be >= 0 (0 = torch's default)")
        if not 0 <= self.top_logprobs <= 20:
            raise ValueError("top_logprobs must be between 0 and 20")
        if self.backend == "openai" and self.adapter is not None:
            raise ValueError("adapter applies to the hf backend only")
        if self.quantization is not None:
            if self.quantization not in QUANTIZATIONS:
                raise ValueError(f"quantization = {self.quantization!r}: expected null or one of "
                                 f"{', '.join(repr(q) for q in QUANTIZATIONS)}")
            if self.backend not in ("hf", "embedded"):
                raise ValueError(f"quantization = {self.quantization!r} applies to the hf backend only "
                                 f"(backend is {self.backend!r}: the server decides its own precision); "
                                 "expected null")


@dataclass(frozen=True)
class DataParams:
    """The survey file (``wvs_file``; ``None`` = the synthetic sample) and subgroup rules."""

    wvs_file: str | None = None
    synthetic_seed: int = 0
    synthetic_n: int = 2012
    country: int = 702
    min_n: int = 30
    weighted: bool = False
    #: which questions: a rule name (``default``: every ordered item; ``paper``: the
    #: reconstruction of the paper's 214, see ``catalogue.question_rule``) or the path of a
    #: file listing question ids, one per line (relative paths from the repository root)
    questions: str = "default"

    def __post_init__(self):
        if self.min_n < 1:
            raise ValueError("min_n must be >= 1")
        from sgvalues.catalogue import QUESTION_RULES

        if self.questions not in QUESTION_RULES and not (Path(self.questions).suffix or "/" in self.questions):
            raise ValueError(f"questions = {self.questions!r}: expected a rule name "
                             f"({', '.join(sorted(QUESTION_RULES))}) or the path of a file listing "
                             f"question ids (e.g. params/questions.txt)")
        if self.synthetic_n < 1:
            raise ValueError("synthetic_n must be >= 1")


@dataclass(frozen=True)
class EvaluationParams:
    """Structured evaluation (``sgvalues.evaluate``): how answers are read.

    ``mode``: ``logprob`` reads option probabilities (no text, so no refusals); ``generate``
    parses a generated answer; ``generate_logprob`` parses a generated answer *and* keeps the
    option probabilities read in the same pass (the paper's protocol with the distributional
    scores kept). See :data:`sgvalues.models.base.ANSWER_MODES`.
    """

    mode: Literal["logprob", "generate", "generate_logprob"] = "logprob"
    splits: tuple[str, ...] = ("ood", "train")
    limit: int | None = None
    batch_size: int = 16
    max_new_tokens: int = 8
    temperature: float = 0.0
    #: option orders to ask each question in (``sgvalues.option_order``): ``[as_asked]`` is the
    #: ordinary evaluation; ``reversed`` / ``permuted`` list the options backwards / in random
    #: orders with the codes following their options (relabelled 1, 2, ... down the list, answers
    #: mapped back); ``reversed_lines`` / ``permuted_lines`` reorder the lines, each keeping its code
    option_orders: tuple[str, ...] = ("as_asked",)
    #: k, the seeded random orders per question of ``permuted`` and ``permuted_lines`` (>= 3)
    option_permutations: int = 3
    #: the orders other than ``as_asked`` and ``reversed`` are asked of this many seeded subgroups
    #: per question (``sgvalues.option_order.order_subset``); null = every subgroup
    option_order_subgroups: int | None = None
    #: chapter 09's readouts (``sgvalues.constants.READOUTS``): ``logprob`` and ``logprob_temperature``
    #: reuse the log-prob predictions; ``sampled`` and ``verbalised`` ask the model again
    readouts: tuple[str, ...] = ("logprob", "logprob_temperature", "sampled", "verbalised")
    #: what the one temperature is fitted to minimise on the train split's cells: ``jsd`` or ``nll``
    temperature_objective: str = "jsd"
    #: answers sampled per cell for the ``sampled`` readout (seeded by ``seed``); 30 or more on a GPU
    sampled_n: int = 30
    #: the temperature those answers are sampled at
    sampled_temperature: float = 1.0
    #: tokens each sampled answer may take (an answer stops as soon as its code is settled)
    sampled_max_new_tokens: int = 8
    #: percentage points a verbalised distribution may miss 100 by and still be parsed
    verbalised_tolerance: float = 2.0
    #: chapter 09's persona formats (``sgvalues.constants.PERSONA_FORMATS``); ``sentence`` is the paper's
    persona_formats: tuple[str, ...] = ("sentence", "qa", "bio", "fewshot")
    #: k, the subgroup's answers to its k most similar other questions shown by the ``fewshot`` format
    fewshot_k: int = 3
    #: chapter 09's new model passes (sampled, verbalised, the formats other than ``sentence``) ask this
    #: many seeded subgroups per question of the zero-shot pass (null = every subgroup)
    knowledge_subgroups: int | None = None
    #: ... of this many questions of the zero-shot pass, stratified by theme and seeded (null = all)
    knowledge_questions: int | None = None

    def __post_init__(self):
        from sgvalues.constants import (ANSWER_MODES, MIN_PERMUTATIONS, ORDERS, PERSONA_FORMATS, READOUTS,
                                        TEMPERATURE_OBJECTIVES)

        for key, chosen, allowed in (("readouts", self.readouts, READOUTS),
                                     ("persona_formats", self.persona_formats, PERSONA_FORMATS)):
            bad = [v for v in chosen if v not in allowed]
            if bad or not chosen or len(set(chosen)) != len(chosen):
                raise ValueError(f"{key} = {list(chosen)}: expected distinct values among {', '.join(allowed)}")
        if self.temperature_objective not in TEMPERATURE_OBJECTIVES:
            raise ValueError(f"temperature_objective = {self.temperature_objective!r}: expected one of "
                             f"{', '.join(TEMPERATURE_OBJECTIVES)}")
        if self.sampled_n < 1:
            raise ValueError(f"sampled_n = {self.sampled_n}: expected an integer >= 1 (answers sampled per cell)")
        if self.sampled_max_new_tokens < 1:
            raise ValueError(f"sampled_max_new_tokens = {self.sampled_max_new_tokens}: expected an integer >= 1")
        if not 0 < self.sampled_temperature < float("inf"):  # NaN fails too
            raise ValueError(f"sampled_temperature = {self.sampled_temperature}: expected a finite number > 0")
        if not 0 <= self.verbalised_tolerance < float("inf"):  # NaN would accept any sum
            raise ValueError(f"verbalised_tolerance = {self.verbalised_tolerance}: expected a finite number >= 0 "
                             "percentage points")
        if self.fewshot_k < 1:
            raise ValueError(f"fewshot_k = {self.fewshot_k}: expected an integer >= 1 (examples per prompt)")
        if self.knowledge_questions is not None and self.knowledge_questions < 1:
            raise ValueError(f"knowledge_questions = {self.knowledge_questions}: expected an integer >= 1 "
                             "(questions of chapter 09's new passes) or null (all)")
        if self.knowledge_subgroups is not None and self.knowledge_subgroups < 1:
            raise ValueError(f"knowledge_subgroups = {self.knowledge_subgroups}: expected an integer >= 1 "
                             "(subgroups per question of chapter 09's new passes) or null (all)")

        bad_orders = [o for o in self.option_orders if o not in ORDERS]
        if bad_orders or not self.option_orders or len(set(self.option_orders)) != len(self.option_orders):
            raise ValueError(f"option_orders = {list(self.option_orders)}: expected distinct values among "
                             f"{', '.join(ORDERS)}")

        if self.option_permutations < MIN_PERMUTATIONS:
            raise ValueError(f"option_permutations = {self.option_permutations}: expected an integer >= "
                             f"{MIN_PERMUTATIONS} (random option orders per question)")
        if self.option_order_subgroups is not None and self.option_order_subgroups < 1:
            raise ValueError(f"option_order_subgroups = {self.option_order_subgroups}: expected an integer >= 1 "
                             "(subgroups per question asked under the extra option orders) or null (all)")

        if self.mode not in ANSWER_MODES:
            raise ValueError(f"mode = {self.mode!r}: expected one of {', '.join(ANSWER_MODES)}")
        bad = [s for s in self.splits if s not in ("train", "ood")]
        if bad:
            raise ValueError(f"splits must be 'train' and/or 'ood', got {bad}")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be >= 1 or null")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be >= 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")


@dataclass(frozen=True)
class TrainingParams:
    """LoRA SFT recipe (see ``sgvalues.train``).

    ``objective``: ``modal`` (the paper's) is the cross-entropy of the modal answer's code and
    end-of-turn tokens; ``distribution`` is the cross-entropy :math:`-\\sum_x q(x) \\log p(x)`
    against the subgroup's whole answer distribution :math:`q` (the sample's ``distribution``),
    with :math:`p` the model's option-code probabilities after the generation prompt,
    renormalised over the options exactly as the evaluation engine reads them (multi-token codes
    such as ``"10"`` by the same greedy-longest-code rule, ``sgvalues.models.scoring``).
    ``reweight`` weights each sample's loss (weights normalised to mean 1 over the training
    samples): ``none``; ``inverse_size``, proportional to N_s / (G_s n_g): 1 / the subgroup's
    share of the question's respondents in its stratum (``n_valid``) divided by the stratum's
    number of subgroups G_s (normalised within stratum); ``error``, proportional to the base
    model's NMAE on the subgroup's train samples (a first evaluation pass).
    """

    enabled: bool = True
    lr: float = 1e-6
    epochs: float = 1.0
    max_steps: int | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    batch_size: int = 8
    grad_accum: int = 1
    max_samples: int | None = None
    #: train on every train subgroup of this many questions (stratified by theme, seeded by
    #: ``seed``); ``None`` = all questions. ``max_samples`` then thins what is left.
    questions: int | None = None
    #: batch one question's subgroups together and run their shared prompt prefix once
    #: (``sgvalues.train.shared_prefix_loss``); same loss and gradients, far fewer tokens
    share_prefix: bool = False
    save_every: int = 50
    warmup_ratio: float = 0.0
    #: training seeds for the run-to-run spread (``sgvalues.train.train_over_seeds``): one
    #: adapter per seed on the same samples and questions (those stay seeded by the top-level
    #: ``seed``); the seed equal to ``seed`` is the run's main adapter. ``None`` = ``[seed]``
    seeds: tuple[int, ...] | None = None
    #: what the loss fits: ``modal`` (the modal answer's code) or ``distribution`` (the answer shares)
    objective: Literal["modal", "distribution"] = "modal"
    #: per-sample loss weights: ``none``, ``inverse_size`` (small subgroups up) or ``error`` (base NMAE)
    reweight: Literal["none", "inverse_size", "error"] = "none"

    def __post_init__(self):
        if self.seeds is not None:
            if not self.seeds:
                raise ValueError("training.seeds = []: expected a non-empty list of distinct integers, "
                                 "or null for the top-level seed only")
            repeated = sorted({s for s in self.seeds if self.seeds.count(s) > 1})
            if repeated:
                raise ValueError(f"training.seeds = {list(self.seeds)}: seed(s) {repeated} repeated; "
                                 "expected distinct integers")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.epochs <= 0:
            raise ValueError("epochs must be > 0")
        if self.lora_r < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("lora_r, batch_size and grad_accum must be >= 1")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError("lora_dropout must be in [0, 1)")
        if self.questions is not None and self.questions < 1:
            raise ValueError(f"training.questions = {self.questions}: expected >= 1 or null")


@dataclass(frozen=True)
class JudgeParams:
    """Open-ended generation and pairwise judging (see ``sgvalues.judge``)."""

    enabled: bool = True
    n_pairs: int = 24
    #: extra OOD pairs drawn from the sensitive questions (``sgvalues.sensitive``), on top of
    #: ``n_pairs``, so that refusal rates on them rest on enough answers (0 = none)
    sensitive_pairs: int = 0
    max_new_tokens: int = 96
    dimensions: tuple[str, ...] = ("overall", "value_alignment", "persona_fidelity")
    reference: ModelSpec = field(default_factory=ModelSpec)
    judge: ModelSpec = field(default_factory=ModelSpec)
    #: ``generate``: the judge writes a short verdict that is parsed; ``logprob``: the judge's
    #: probabilities of "A", "B" and "tie" decide (``score_options``); ``auto``: logprob for
    #: hf judges, generate for openai ones
    judge_mode: Literal["auto", "generate", "logprob"] = "auto"
    judge_max_new_tokens: int = 12
    n_bootstrap: int = 1000

    def __post_init__(self):
        if self.n_pairs < 1 or self.max_new_tokens < 1 or self.judge_max_new_tokens < 1:
            raise ValueError("n_pairs, max_new_tokens and judge_max_new_tokens must be >= 1")
        if self.n_bootstrap < 0:
            raise ValueError("n_bootstrap must be >= 0")
        if self.sensitive_pairs < 0:
            raise ValueError(f"sensitive_pairs = {self.sensitive_pairs}: expected >= 0 (0 = no extra pairs)")
        if not self.dimensions:
            raise ValueError("dimensions must name at least one judging dimension")


#: ``split.questions``: ``all`` (every question may be trained on; unseen questions are the rest)
#: or ``holdout`` (whole themes held out of training, near-duplicates of them dropped)
QUESTION_SPLIT_MODES: tuple[str, ...] = ("all", "holdout")


@dataclass(frozen=True)
class SplitParams:
    """Which questions training may see (``sgvalues.train.question_split``).

    ``questions: all`` (the default) is the compositional split alone: training draws its
    ``training.questions`` from every question and chapter 04's unseen questions are drawn from
    the rest. ``questions: holdout`` also holds out whole themes (``holdout_themes``, names from
    ``sgvalues.catalogue.THEMES``): no question of them is trained on, every training question whose
    wording similarity to a held-out one is at least ``near_duplicate_threshold`` is dropped
    (``sgvalues.question_holdout.question_holdout``), and the unseen questions are drawn from the
    held-out themes (SubPOP; Cao et al., NAACL 2025). Under ``all`` ``holdout_themes`` is ignored
    (its names are still checked, so a typo is caught before the recipe is switched to ``holdout``).
    """

    #: ``all`` or ``holdout`` (see above)
    questions: Literal["all", "holdout"] = "all"
    #: the themes held out whole under ``holdout`` (at least one; each one of ``catalogue.THEMES``)
    holdout_themes: tuple[str, ...] = ()
    #: a training question at least this similar in wording to a held-out one is dropped; in (0, 1]
    near_duplicate_threshold: float = 0.8

    def __post_init__(self):
        from sgvalues.catalogue import THEMES

        if self.questions not in QUESTION_SPLIT_MODES:
            raise ValueError(f"split.questions = {self.questions!r}: expected one of {', '.join(QUESTION_SPLIT_MODES)}")
        unknown = [t for t in self.holdout_themes if t not in THEMES]
        if unknown:
            raise ValueError(f"split.holdout_themes: {unknown} not among the catalogue's themes; expected names "
                             f"from: {'; '.join(THEMES)}")
        repeated = sorted({t for t in self.holdout_themes if self.holdout_themes.count(t) > 1})
        if repeated:
            raise ValueError(f"split.holdout_themes: {repeated} repeated; expected distinct themes")
        if self.questions == "holdout" and not self.holdout_themes:
            raise ValueError("split.holdout_themes = []: split.questions = 'holdout' needs at least one theme to "
                             f"hold out, from: {'; '.join(THEMES)}")
        if not 0 < self.near_duplicate_threshold <= 1:
            raise ValueError(f"split.near_duplicate_threshold = {self.near_duplicate_threshold}: expected a "
                             "wording similarity in (0, 1]")


@dataclass(frozen=True)
class Params:
    """One run's recipe: a model plus data, evaluation, training, judge and split sections."""

    name: str
    model: ModelSpec = field(default_factory=ModelSpec)
    display_name: str | None = None
    seed: int = 0
    data: DataParams = field(default_factory=DataParams)
    evaluation: EvaluationParams = field(default_factory=EvaluationParams)
    training: TrainingParams = field(default_factory=TrainingParams)
    judge: JudgeParams = field(default_factory=JudgeParams)
    split: SplitParams = field(default_factory=SplitParams)
    notes: str = ""

    @classmethod
    def from_dict(cls, raw: dict, source: str = "<params>") -> "Params":
        """Validate a mapping (e.g. parsed YAML) into ``Params``; ``source`` names it in errors."""
        return _build(cls, raw, source, "")

    def to_dict(self) -> dict:
        """Plain dict (tuples as lists), suitable for YAML, JSON and papermill."""
        return _plain(dataclasses.asdict(self))

    @property
    def label(self) -> str:
        return self.display_name or self.name


#: the key naming the recipe a params file builds on (a path relative to the file)
EXTENDS = "extends"


def _read_mapping(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read params file ({exc.strerror})") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def merge_recipes(base: dict, override: dict) -> dict:
    """``override`` laid over ``base``: mappings merge key by key, anything else is replaced.

    >>> merge_recipes({"model": {"backend": "hf", "name": "a"}, "seed": 1}, {"model": {"name": "b"}})
    {'model': {'backend': 'hf', 'name': 'b'}, 'seed': 1}
    """
    out = dict(base)
    for key, value in override.items():
        out[key] = (merge_recipes(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict)
                    else value)
    return out


def read_recipe(path: str | Path) -> tuple[dict, list[Path]]:
    """A params file's mapping with its ``extends:`` chain resolved, and the chain's files.

    ``extends: <file>`` (relative to the file that says it) names a base recipe: the base is read
    first (itself possibly extending another) and this file's keys are laid over it
    (:func:`merge_recipes`), so a paper model's file holds only what differs from the shared
    recipe. Returns ``(mapping without extends, [this file, its base, ...])``.

    Raises
    ------
    ParamsError
        naming the file and ``extends`` for a value that is not a file name, a base file that
        does not exist, or a chain that comes back to a file already in it.
    """
    chain: list[Path] = []
    layers: list[dict] = []
    path = Path(path)
    while True:
        resolved = path.resolve()
        if resolved in [c.resolve() for c in chain]:
            raise ParamsError(f"{chain[-1]}: extends: {path.name!r} comes back to a file already in the chain "
                              f"({' -> '.join(str(c) for c in chain)}); expected a chain that ends")
        raw = _read_mapping(path)
        chain.append(path)
        base = raw.pop(EXTENDS, None)
        layers.append(raw)
        if base is None:
            break
        if not isinstance(base, str) or not base.strip():
            raise ParamsError(f"{path}: extends = {base!r}: expected the path of a base params file, relative to "
                              "this file (e.g. base/paper-open.yaml)")
        nxt = path.parent / base
        if not nxt.is_file():
            raise ParamsError(f"{path}: extends = {base!r}: file not found ({nxt}); expected the path of a base "
                              "params file, relative to this file")
        path = nxt
    merged: dict = {}
    for layer in reversed(layers):
        merged = merge_recipes(merged, layer)
    return merged, chain


def recipe_text(path: str | Path) -> str:
    """The recipe as one self-contained YAML text: the file itself when it extends nothing, else
    its resolved mapping (:func:`read_recipe`) under a comment naming the chain. What a run
    folder keeps as ``params.yaml``."""
    raw, chain = read_recipe(path)
    if len(chain) == 1:
        return Path(path).read_text()
    head = "# " + " extends ".join(str(c) for c in chain) + ", resolved (sgvalues.params.recipe_text)\n"
    return head + yaml.safe_dump(raw, sort_keys=False)


def load_params(path: str | Path) -> Params:
    """Read and validate a params YAML file (its ``extends:`` chain resolved, :func:`read_recipe`).

    Raises
    ------
    ParamsError
        naming the file (and the base it extends), the key and what was expected.
    """
    raw, chain = read_recipe(path)
    source = str(chain[0]) + "".join(f" (extends {c})" for c in chain[1:])
    return Params.from_dict(raw, source=source)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp, value, source: str, key: str):
    origin = typing.get_origin(tp)
    err = ParamsError(f"{source}: key '{key}' = {value!r}: expected {_describe(tp)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise err
        return _build(tp, value, source, key + ".")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise err
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise err
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, source, key)
            except ParamsError:
                continue
        raise err
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise err
        inner = typing.get_args(tp)[0]
        return tuple(_coerce(inner, v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise err
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise err
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise err
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise err
        return value
    return value  # pragma: no cover


def _build(cls, raw: dict, source: str, prefix: str):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ParamsError(
            f"{source}: unknown key(s) {', '.join(prefix + k for k in unknown)}; "
            f"expected keys under '{prefix.rstrip('.') or 'top level'}': {', '.join(fields)}"
        )
    kwargs = {k: _coerce(hints[k], v, source, prefix + k) for k, v in raw.items()}
    missing = [
        k for k, f in fields.items()
        if k not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ParamsError(f"{source}: missing required key(s): {', '.join(prefix + k for k in missing)}")
    try:
        built = cls(**kwargs)
    except ValueError as exc:
        raise ParamsError(f"{source}: section '{prefix.rstrip('.') or 'top level'}': {exc}") from exc
    if cls is ModelSpec:
        # where a model section came from, for load errors (sgvalues.models.loading.model_where)
        object.__setattr__(built, "origin", (source, prefix.rstrip(".")))
    return built
