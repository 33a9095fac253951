"""The shape of the package: no import loops between its modules, and no module over 500 lines.

The import graph is read from the source with :mod:`ast`, not by importing anything, so every
import counts: at module level, inside functions (a loop that only closes at call time is still a
loop), and relative ones. An edge goes to the module an import names: ``from bench.x import y``
points at ``bench.x.y`` when that is a module, else at ``bench.x``. The parent package that Python
imports first is not an edge of its own: it is one only where the code names it.
"""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bench"
# A module longer than this holds more than one concern; split it by concern.
MAX_MODULE_LINES = 500


def module_name(path: Path, root: Path) -> str:
    """``bench/report/cli.py`` -> ``bench.report.cli``; a package's ``__init__.py`` -> its name."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(root: Path) -> dict[str, Path]:
    """Every module of the package below ``root``, by dotted name."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def import_targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool,
                   modules: dict[str, Path]) -> list[str]:
    """The modules of the package that one import statement names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    if node.level:
        # Relative: level 1 is the importer's own package (itself, for an __init__.py).
        package = importer if is_package else importer.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module
    # `from a import b`: the module a.b when there is one, else a (b is something a defines).
    named = [f"{base}.{alias.name}" for alias in node.names]
    return [target if target in modules else base for target in named
            if target in modules or base in modules]


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """Module -> {module it imports: line of the first such import}, within the package."""
    modules = package_modules(root)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in import_targets(node, name, path.name == "__init__.py", modules):
                    if target != name:
                        edges.setdefault(target, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Every elementary cycle, each once, starting at its alphabetically first module."""
    found = []

    def walk(start: str, path: list[str]) -> None:
        for target in sorted(graph.get(path[-1], {})):
            if target == start:
                found.append([*path, start])
            elif target > start and target not in path:
                walk(start, [*path, target])

    for start in sorted(graph):
        walk(start, [start])
    return found


def describe(cycle: list[str], graph: dict[str, dict[str, int]], root: Path) -> str:
    """``a (a.py:3) -> b (b.py:7) -> a``: each step with the line of its import."""
    modules = package_modules(root)
    steps = [f"{source} ({modules[source].relative_to(root.parent)}:{graph[source][target]})"
             for source, target in pairwise(cycle)]
    return " -> ".join([*steps, cycle[-1]])


def test_no_import_cycles_between_bench_modules():
    graph = import_graph(PACKAGE)
    found = cycles(graph)
    mutual = sorted({(a, b) for a, targets in graph.items() for b in targets if a < b and a in graph[b]})
    lines = [describe(cycle, graph, PACKAGE) for cycle in found]
    lines += [f"{a} <-> {b} (they import each other)" for a, b in mutual]
    assert not found, (f"{len(found)} import cycles between bench modules (break each, e.g. by moving "
                       "what both need into a module of its own):\n" + "\n".join(lines))


def test_no_bench_module_is_over_500_lines():
    lengths = {name: len(path.read_text(encoding="utf-8").splitlines())
               for name, path in package_modules(PACKAGE).items()}
    too_long = {name: lines for name, lines in lengths.items() if lines > MAX_MODULE_LINES}
    assert not too_long, (f"modules over {MAX_MODULE_LINES} lines (split each by concern): "
                          + ", ".join(f"{name} ({lines})" for name, lines in sorted(too_long.items())))


# --------------------------------------------------------------------------------------------
# The checker itself, on a package planted with every kind of import


@pytest.fixture
def planted(tmp_path) -> Path:
    """A package whose modules import each other in every way the graph must see."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    sources = {
        "__init__.py": "VALUE = 1\n",
        "a.py": "from pkg import b\n",                   # `from package import module`
        "b.py": "def later():\n    import pkg.c\n",      # inside a function, `import x.y`
        "c.py": "from .sub.d import thing\n",            # relative, of a name in a module
        "sub/__init__.py": "from . import d\n",          # relative, of a module, from a package
        "sub/d.py": "from pkg import VALUE\nfrom pkg.a import x\nthing = 1\n",
        "e.py": "from pkg.sub import d\nimport os\n",     # leaves the loop alone; os is outside
    }
    for name, source in sources.items():
        (root / name).write_text(source, encoding="utf-8")
    return root


def test_the_graph_sees_every_kind_of_import(planted):
    graph = import_graph(planted)
    assert {name: sorted(targets) for name, targets in graph.items()} == {
        "pkg": [], "pkg.a": ["pkg.b"], "pkg.b": ["pkg.c"], "pkg.c": ["pkg.sub.d"],
        "pkg.sub": ["pkg.sub.d"], "pkg.sub.d": ["pkg", "pkg.a"], "pkg.e": ["pkg.sub.d"]}


def test_the_cycle_finder_lists_each_loop_once_with_its_lines(planted):
    graph = import_graph(planted)
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.sub.d", "pkg.a"]]
    assert describe(cycles(graph)[0], graph, planted) == (
        "pkg.a (pkg/a.py:1) -> pkg.b (pkg/b.py:2) -> pkg.c (pkg/c.py:1) -> pkg.sub.d (pkg/sub/d.py:2)"
        " -> pkg.a")
