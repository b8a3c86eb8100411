"""The package's structure, read from the source (nothing is imported): no import cycles among phenaki's modules,
function-level imports included, and no private name imported from another module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_names() -> dict[str, Path]:
    """'phenaki.models.cvivit' -> its file, for every module of the package ('phenaki.demo' for its __init__)."""
    names = {}
    for path in (ROOT / "phenaki").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(module imported, name imported or '', line) for every import in the file, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # `from package import module` imports the module
                submodule = f"{target}.{alias.name}"
                found.append(
                    (submodule, "", node.lineno) if submodule in modules else (target, alias.name, node.lineno)
                )
    return found


def test_no_import_cycles():
    modules = module_names()
    graph = {
        name: sorted({target for target, _, _ in imports(name, path, modules) if target in modules} - {name})
        for name, path in modules.items()
    }
    cycles, state = [], {}  # state: 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [node, nxt]) if nxt in path else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert graph["phenaki.shapes.eval"] and not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_private_names_imported_across_modules():
    modules = module_names()
    private = [
        f"{path.relative_to(ROOT)}:{line} imports {imported} from {target}"
        for name, path in modules.items()
        for target, imported, line in imports(name, path, modules)
        if imported.startswith("_") and not imported.startswith("__")
    ]
    assert not private, "\n".join(private)
