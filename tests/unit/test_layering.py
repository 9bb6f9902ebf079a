"""Who may import whom, read from the source: the product never imports the tests, the serial
bridge stands alone, and no modules import each other in a circle (deferred imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("edge_os", "firmware_bridge")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions, as absolute names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package of ``path``, up ``level - 1`` packages
                package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return names


def import_graph() -> dict[str, set[str]]:
    """Product modules and the product modules each imports (a submodule's import of its own
    package's ``__init__`` is left out: that is how packages are built, not a circle)."""
    files = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    return {
        name: {m for m in imported_names(path) if m in files and m != name and not name.startswith(m + ".")}
        for name, path in files.items()
    }


def test_the_product_never_imports_the_tests():
    offenders = {
        str(p.relative_to(ROOT))
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
        if any(m == "tests" or m.startswith("tests.") for m in imported_names(p))
    }
    assert not offenders, f"product modules import test code: {sorted(offenders)}"


def test_the_serial_bridge_does_not_import_edge_os():
    offenders = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "firmware_bridge").rglob("*.py")
        if any(m == "edge_os" or m.startswith("edge_os.") for m in imported_names(p))
    }
    assert not offenders, f"firmware_bridge must stand alone, but these import edge_os: {sorted(offenders)}"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports in ``graph``, as the modules along it, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once explored
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = "open"
        path.append(name)
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_find_cycle_finds_a_circle_through_a_deferred_import(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    deferred = tmp_path / "m.py"
    deferred.write_text("def f():\n    from edge_os.convert.gguf import open_gguf\n")
    assert "edge_os.convert.gguf" in imported_names(deferred)


def test_no_modules_import_each_other_in_a_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)
