"""docs/architecture.md's rules, checked over the source: what each layer may import, no import
circles, and the lifecycle table the page shows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from expert_jobs.domain.lifecycle import TRANSITIONS

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "expert_jobs"
DOC = ROOT / "docs" / "architecture.md"

ALLOWED_EXCEPTIONS = {
    ("expert_jobs.engine.runtime", "expert_jobs.stores.memory"): (
        "Runtime(store=None) makes a MemoryStore, imported lazily, so a notebook needs no store"
    ),
}
"""Imports across the layer rules that the architecture page names, with their reasons."""


def _table(marker: str) -> list[list[str]]:
    """The rows of the Markdown table that follows ``<!-- marker ... -->`` in the page."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"<!-- {marker}"))
    rows = []
    for line in lines[start + 3 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _layers() -> dict[str, set[str]]:
    layers = {}
    for row in _table("layers"):
        layer = row[0].strip("`")
        allowed = {name.strip().strip("`") for name in row[1].split(",")} - {"—", ""}
        layers[layer] = allowed
    return layers


def _modules() -> dict[str, Path]:
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every expert_jobs module ``path`` imports, at the top, in functions or for type checking."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in modules}


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_package_is_a_layer_of_the_page() -> None:
    packages = {p.name for p in SOURCE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(_layers())


def test_each_module_imports_only_what_its_layer_may() -> None:
    layers = _layers()
    modules = _modules()
    broken = []
    for module, path in modules.items():
        layer = _layer_of(module)
        if layer is None or layer not in layers:
            continue  # the top-level package re-exports every layer
        allowed = layers[layer]
        for imported in _imports(path, modules):
            other = _layer_of(imported)
            if other is None or other == layer or other in allowed or "every layer" in allowed:
                continue
            if (module, imported) not in ALLOWED_EXCEPTIONS:
                broken.append(f"{module} ({layer}) imports {imported} ({other})")
    assert broken == []


def test_no_two_modules_import_each_other_in_a_circle() -> None:
    modules = _modules()
    # A package's __init__ only re-exports; an edge through it is the edge to what it re-exports.
    packages = {m for m, path in modules.items() if path.name == "__init__.py"}
    graph = {m: _imports(p, modules) - packages - {m} for m, p in modules.items() if m not in packages}
    circles = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert circles == []


def test_the_exceptions_are_real_imports() -> None:
    modules = _modules()
    for (module, imported), _reason in ALLOWED_EXCEPTIONS.items():
        assert imported in _imports(modules[module], modules)


def test_the_pages_lifecycle_table_is_the_codes() -> None:
    shown = [(row[0], [s.strip() for s in row[1].split(",")], row[2]) for row in _table("lifecycle")]
    assert shown == [(t, [s.value for s in src], dst.value) for t, src, dst in TRANSITIONS]


def test_the_page_names_only_files_that_exist() -> None:
    text = DOC.read_text(encoding="utf-8")
    for path in set(re.findall(r"`((?:[a-z_]+/)+[a-z_]+\.py)`", text)):
        candidates = [SOURCE / path, ROOT / path]
        assert any(p.exists() for p in candidates), path


def test_the_repository_points_at_no_document_outside_it() -> None:
    # The design and the API contract live in docs/: nothing may send a reader elsewhere.
    outside = re.compile(r"DESIGN\.md|\.\./shared|/work/shared")
    found = []
    for path in [ROOT / "README.md", *ROOT.glob("docs/*.md"), *SOURCE.rglob("*.py")]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if outside.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}")
    assert found == []
