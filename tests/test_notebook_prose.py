"""Prose that stays true (issue 13, item 5): no notebook's markdown states a run's number.

A sentence whose truth depends on the run (a number, a direction, a ranking) must be computed
from the run's tables and displayed by a code cell; a fixed markdown cell may describe the
method, quote a *published* figure (labelled), or ask a question. The check here is the
mechanical part of that rule: a decimal number in a notebook's markdown is allowed only

* in a paragraph that labels it as the paper's (it says "published" or "Tan et al."),
* in the exercises section (from a "## Exercises" heading on, including the answer notes),
* inside inline code or a fenced code block (a setting such as `lr = 1e-3`, not a result).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))

#: a decimal number not glued to a word, a version ("Llama-3.1", "v6.0") or a path ("a/0.5")
_DECIMAL = re.compile(r"(?<![\w.\-/])\d+\.\d+(?!\w|\.\d)")
_PUBLISHED = re.compile(r"published|Tan et al\.", re.IGNORECASE)
_EXERCISES = re.compile(r"^#{1,6}\s+Exercises\b", re.MULTILINE)


def _without_code(text: str) -> str:
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def unlabelled_decimals(markdown: str) -> list[str]:
    """The paragraphs of ``markdown`` (before any Exercises heading) with an unlabelled decimal.

    >>> unlabelled_decimals("Accuracy rises to 0.81.\\n\\nThe paper, published: 0.318.")
    ['Accuracy rises to 0.81.']
    >>> unlabelled_decimals("Set `lr = 0.002`; Llama-3.1-8B, v6.0.\\n\\n## Exercises\\n\\nIs it 0.5?")
    []
    """
    m = _EXERCISES.search(markdown)
    body = markdown[: m.start()] if m else markdown
    bad = []
    for paragraph in re.split(r"\n\s*\n", _without_code(body)):
        if _DECIMAL.search(paragraph) and not _PUBLISHED.search(paragraph):
            bad.append(" ".join(paragraph.split()))
    return bad


def test_checker_flags_what_it_should():
    assert unlabelled_decimals("The correlation is 0.49, positive.") == ["The correlation is 0.49, positive."]
    assert unlabelled_decimals("Tan et al. (2026) report 10,177 samples and 6.66 % refusals.") == []
    assert unlabelled_decimals("```python\nx = 0.5\n```\nNo number here.") == []
    assert unlabelled_decimals("Gain of 45.7 points\n\n## Exercises\n1. Try lr 0.002") == ["Gain of 45.7 points"]


def test_notebooks_are_found():
    assert len(NOTEBOOKS) == 9, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_states_no_result(path):
    nb = nbformat.read(path, as_version=4)
    problems = []
    in_exercises = False
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        if _EXERCISES.search(cell.source):
            in_exercises = True
        if in_exercises:
            continue
        problems += [f"cell {i}: {p[:160]}" for p in unlabelled_decimals(cell.source)]
    assert not problems, (f"{path.name}: decimal numbers in markdown outside published quotes and exercises; "
                          "compute them from the run (display(Markdown(...))) or label them published:\n"
                          + "\n".join(problems))


#: the most lines a notebook code cell may have (issue 15 item 4): logic lives in ``sgvalues``
MAX_CELL_LINES = 10


def long_cells(nb) -> list[tuple[int, int]]:
    """``(cell index, line count)`` of each code cell longer than :data:`MAX_CELL_LINES`.

    >>> long_cells(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1\\n" * 11),
    ...                                             nbformat.v4.new_code_cell("y = 2\\n" * 10)]))
    [(0, 11)]
    """
    return [(i, n) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and (n := len(c.source.splitlines())) > MAX_CELL_LINES]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_are_short(path):
    problems = long_cells(nbformat.read(path, as_version=4))
    assert not problems, (f"{path.name}: code cells over {MAX_CELL_LINES} lines (cell index, lines): {problems}; "
                          "move the logic into an sgvalues.report helper")
