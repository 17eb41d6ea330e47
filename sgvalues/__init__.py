"""sgvalues: can persona-prompted LLMs emulate the values of Singapore's subgroups?

A reproducible study on the World Values Survey Wave 7 (WVS-7) Singapore sample, after
Tan et al., "Can Persona-Prompted LLMs Emulate Subgroup Values?" (ACL 2026, arXiv 2604.12851).

Data flows one way: file -> respondents -> subgroups -> modal answers -> samples ->
predictions -> metrics -> book. Each stage is one module; see ``ARCHITECTURE.md``.
"""

import warnings

__version__ = "0.1.0"

# Two third-party messages that would otherwise print into every executed notebook and so into
# the book: tqdm's "IProgress not found" (no ipywidgets in a papermill kernel; our progress is
# printed text) and peft's call of a transformers method deprecated for v6. Neither is ours to fix.
warnings.filterwarnings("ignore", message="IProgress not found")
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
