"""sgvalues: can persona-prompted LLMs emulate the values of Singapore's subgroups?

A reproducible study on the World Values Survey Wave 7 (WVS-7) Singapore sample, after
Tan et al., "Can Persona-Prompted LLMs Emulate Subgroup Values?" (ACL 2026, arXiv 2604.12851).

Data flows one way: file -> respondents -> subgroups -> modal answers -> samples ->
predictions -> metrics -> book. Each stage is one module; see ``ARCHITECTURE.md``.
"""

__version__ = "0.1.0"
