"""The import graph of src/lpbench: no circles, and no import from a higher layer.

The layers are read from CONTRIBUTING.md (lines ``- layer N: `lpbench.a`, `lpbench.b```),
so the document and this test cannot drift apart. Imports inside functions count too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
LAYER_LINE = re.compile(r"^- layer (\d+): (.+)$")


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (packages by their own name)."""
    files = {}
    for path in sorted((SRC / "lpbench").rglob("*.py")):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        files[name.removesuffix(".__init__")] = path
    return files


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The lpbench modules that ``name`` imports anywhere in its body."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("lpbench") and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {name: imported_modules(name, path, known) for name, path in files.items()}


def layers() -> dict[str, int]:
    """Package or module name -> its layer, from CONTRIBUTING.md."""
    result: dict[str, int] = {}
    for line in (ROOT / "CONTRIBUTING.md").read_text().splitlines():
        match = LAYER_LINE.match(line.strip())
        if match:
            for entry in re.findall(r"`([\w.]+)`", match.group(2)):
                result[entry] = int(match.group(1))
    return result


def layer_of(module: str, table: dict[str, int]) -> tuple[str, int]:
    """The longest entry of the layer table that contains ``module`` (the root package's
    entry, ``lpbench``, stands for its ``__init__`` only)."""
    parts = module.split(".")
    for end in range(len(parts), 1 if len(parts) > 1 else 0, -1):
        key = ".".join(parts[:end])
        if key in table:
            return key, table[key]
    raise AssertionError(f"{module} is in no layer of CONTRIBUTING.md: add it there")


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    circles = strongly_connected(import_graph())
    assert not circles, f"import circles: {circles}"


def test_every_module_has_a_layer() -> None:
    table = layers()
    assert table, "CONTRIBUTING.md lists no layers"
    for module in module_files():
        layer_of(module, table)


def test_no_import_from_a_higher_or_sibling_layer() -> None:
    """A module imports its own room (package or module) or rooms of lower layers only."""
    table = layers()
    wrong = []
    for module, targets in import_graph().items():
        room, level = layer_of(module, table)
        for target in targets:
            target_room, target_level = layer_of(target, table)
            if target_room != room and target_level >= level:
                wrong.append(f"{module} (layer {level}) -> {target} (layer {target_level})")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import lpbench.attacks.pgd\n", {"lpbench.attacks.pgd"}),
        ("from lpbench.attacks import PGD\n", {"lpbench.attacks"}),
        ("def f():\n    from lpbench.attacks.pgd import PGD\n", {"lpbench.attacks.pgd"}),
        ("from .pgd import PGD\n", {"lpbench.attacks.pgd"}),
        ("from . import pgd\n", {"lpbench.attacks.pgd"}),
    ],
)
def test_the_graph_sees_every_import_form(tmp_path: Path, source: str, expected: set) -> None:
    """Lazy, relative and submodule imports are all edges (so the test can fail)."""
    path = tmp_path / "apgd.py"
    path.write_text(source)
    known = {"lpbench.attacks", "lpbench.attacks.pgd", "lpbench.attacks.apgd"}
    assert imported_modules("lpbench.attacks.apgd", path, known) == expected


def test_a_circle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
