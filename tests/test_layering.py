"""The package's layers point down: an AST scan of every ``sgvalues`` module.

Every import is read, those inside functions included (a lazy import is still a dependency). The
scan fails on

* an import cycle between modules (``a`` imports ``b`` which, directly or not, imports ``a``);
* a module importing from a higher layer than its own (:data:`LAYERS`, lowest first);
* a ``_private`` name taken from another module (``from m import _x`` or ``m._x``);
* a module below the report layer importing matplotlib or seaborn (figures live in ``report``).

:data:`LAYERS` is the one statement of the layers; ARCHITECTURE.md shows the same picture.
The scan is a function of a source folder (:func:`scan`), so it can be pointed at any checkout,
e.g. the commit before the layers were untangled: ``SGVALUES_LAYERING_ROOT=<checkout>/sgvalues
pytest tests/test_layering.py``.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import NamedTuple

import pytest

# the package scanned: this checkout's, or another's (SGVALUES_LAYERING_ROOT=/path/to/sgvalues)
ROOT = Path(os.environ.get("SGVALUES_LAYERING_ROOT") or Path(__file__).resolve().parents[1] / "sgvalues")

# Lowest first. A module belongs to the first layer one of whose entries is the module or a
# package above it; it may import from its own layer and the layers below, never from above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("sgvalues", "sgvalues.atomic", "sgvalues.paths", "sgvalues.manifest", "sgvalues.tables",
              "sgvalues.constants")),
    ("data", ("sgvalues.catalogue", "sgvalues.countries", "sgvalues.data", "sgvalues.synthetic",
              "sgvalues.subgroups", "sgvalues.modal", "sgvalues.diversity", "sgvalues.prompts",
              "sgvalues.split", "sgvalues.published", "sgvalues.question_holdout", "sgvalues.steering",
              "sgvalues.overlap")),
    ("models", ("sgvalues.models",)),
    ("params", ("sgvalues.params", "sgvalues.prepare")),
    ("stages", ("sgvalues.evaluate", "sgvalues.evaluate_cli", "sgvalues.option_order", "sgvalues.metrics", "sgvalues.baselines",
                "sgvalues.train", "sgvalues.beyond", "sgvalues.judge", "sgvalues.sensitive",
                "sgvalues.fairness", "sgvalues.readouts", "sgvalues.calibration", "sgvalues.aggregation",
                "sgvalues.entropy_control", "sgvalues.persona", "sgvalues.knowledge")),
    ("report", ("sgvalues.plots", "sgvalues.report")),
    ("orchestration", ("sgvalues.runs", "sgvalues.book", "sgvalues.cli", "sgvalues.__main__")),
]
# Modules no stage or data module may import, whatever the layers above say.
FORBIDDEN_BELOW_REPORT = ("sgvalues.report", "sgvalues.runs", "sgvalues.book", "sgvalues.cli")
# Third-party packages only the report layer and above draw with.
DRAWING = ("matplotlib", "seaborn")


def module_name(path: Path, root: Path) -> str:
    """``root/judge/stage.py`` -> ``sgvalues.judge.stage``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["sgvalues", *parts])


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of ``module``'s layer (the longest matching entry wins)."""
    best, best_len = None, -1
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            nested = entry != "sgvalues" and module.startswith(entry + ".")
            if (module == entry or nested) and len(entry) > best_len:
                best, best_len = index, len(entry)
    if best is None:
        raise AssertionError(f"{module} is in no layer of tests/test_layering.py LAYERS; add it")
    return best


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of ``from <dots><target>`` written in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


class Scan(NamedTuple):
    """What :func:`scan` found: ``graph[m]``, the ``sgvalues`` modules ``m`` imports (``from
    sgvalues import evaluate`` counts as ``sgvalues.evaluate``); ``private``,
    ``"<module>: <name> from <other>"`` for each ``_name`` imported or read off another module;
    ``drawing[m]``, the drawing packages (:data:`DRAWING`) ``m`` imports."""

    graph: dict[str, set[str]]
    private: list[str]
    drawing: dict[str, set[str]]


def scan(root: Path = ROOT) -> Scan:
    """Every import of the package under ``root`` (module level and inside functions)."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {m: set() for m in files}
    private: list[str] = []
    drawing: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        aliases: dict[str, str] = {}  # local name -> sgvalues module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                top = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(t.split(".")[0] in DRAWING for t in top) and not getattr(node, "level", 0):
                    drawing.setdefault(module, set()).update(t.split(".")[0] for t in top if t.split(".")[0] in DRAWING)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "sgvalues":
                        graph[module].add(alias.name)
                        if alias.asname:
                            aliases[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, is_package, node.level, node.module)
                if source.split(".")[0] != "sgvalues":
                    continue
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    if sub in files:  # a submodule, not a name
                        graph[module].add(sub)
                        aliases[alias.asname or alias.name] = sub
                        continue
                    graph[module].add(source)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and source != module:
                        private.append(f"{module}: {alias.name} from {source}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__") and aliases[node.value.id] != module):
                private.append(f"{module}: {node.attr} from {aliases[node.value.id]}")
        graph[module] = {m for m in graph[module] if m != module and m in files}
    return Scan(graph, sorted(set(private)), drawing)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``"<module> (<layer>) -> <target> (<layer>)"`` for each import of a higher layer, and each
    import of report, runs, book or cli by a module below the report layer."""
    report_layer = [name for name, _ in LAYERS].index("report")
    bad = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module)
        for target in sorted(targets):
            theirs = layer_of(target)
            forbidden = mine < report_layer and any(
                target == f or target.startswith(f + ".") for f in FORBIDDEN_BELOW_REPORT)
            if theirs > mine or forbidden:
                bad.append(f"{module} ({LAYERS[mine][0]}) -> {target} ({LAYERS[theirs][0]})")
    return bad


@pytest.fixture(scope="module")
def scanned():
    return scan(ROOT)


def test_scan_sees_imports_inside_functions_and_relative_ones(tmp_path):
    """The scanner on a made-up package: a lazy import in a function, a relative import, a private
    attribute read and a drawing import are all found; a cycle through them is reported."""
    pkg = tmp_path / "sgvalues"
    (pkg / "report").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "report" / "__init__.py").write_text("from . import text\n")
    (pkg / "report" / "text.py").write_text("from ..evaluate import score\n")
    (pkg / "evaluate.py").write_text(
        "def score():\n    from sgvalues.report import text\n    import matplotlib.pyplot as plt\n"
        "    return text._hidden, plt\n")
    graph, private, drawing = scan(pkg)
    assert drawing == {"sgvalues.evaluate": {"matplotlib"}}
    assert graph["sgvalues.evaluate"] == {"sgvalues.report.text"}
    assert graph["sgvalues.report.text"] == {"sgvalues.evaluate"}
    assert graph["sgvalues.report"] == {"sgvalues.report.text"}
    assert private == ["sgvalues.evaluate: _hidden from sgvalues.report.text"]
    assert cycles(graph) == [["sgvalues.evaluate", "sgvalues.report.text"]]
    assert upward_imports(graph) == [
        "sgvalues.evaluate (stages) -> sgvalues.report.text (report)"]


def test_every_module_has_a_layer(scanned):
    graph = scanned.graph
    for module in graph:
        layer_of(module)


def test_no_import_cycles(scanned):
    graph = scanned.graph
    assert cycles(graph) == []


def test_imports_point_down(scanned):
    graph = scanned.graph
    assert upward_imports(graph) == []


def test_only_report_and_above_draw(scanned):
    report_layer = [name for name, _ in LAYERS].index("report")
    assert {m: sorted(p) for m, p in scanned.drawing.items() if layer_of(m) < report_layer} == {}


def test_no_private_names_across_modules(scanned):
    assert scanned.private == []


def test_architecture_shows_the_same_layers():
    """ARCHITECTURE.md's layer picture lists the modules of :data:`LAYERS`, layer by layer, top first."""
    import re

    text = (ROOT.parent / "ARCHITECTURE.md").read_text()
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    shown: list[tuple[str, set[str]]] = []
    for line in block.strip("\n").splitlines():
        name, _, rest = line.partition(" ") if not line.startswith(" ") else ("", "", line)
        modules = re.split(r"\s{2,}", rest.strip())[0]  # the description follows two spaces
        if name:
            shown.append((name, set()))
        for m in modules.split(","):
            m = m.strip().replace("/*", "").replace(" (package)", "")
            if m:
                shown[-1][1].add("sgvalues" if m == "sgvalues" else f"sgvalues.{m}")
    assert [(n, sorted(ms)) for n, ms in reversed(shown)] == [(n, sorted(e)) for n, e in LAYERS]
