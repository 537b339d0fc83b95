"""The lab's layout: scoring and reporting never import the runner or torch; no import cycles."""
from __future__ import annotations

import ast
from pathlib import Path

import inertia.lab

LAB = Path(inertia.lab.__file__).parent


def _module(path: Path) -> str:
    rel = path.relative_to(LAB.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return "inertia." + ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every module a file imports, anywhere in it (lazy imports count), as absolute names.

    ``from pkg import name`` depends on ``pkg.name`` when that is a module, else on ``pkg``;
    the parent packages' ``__init__`` that Python runs on the way are not the file's own
    dependencies (``inertia/__init__`` imports torch for everyone).
    """
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = {f"{mod}.{a.name}" for a in node.names} & modules
            out |= subs if subs else {mod}
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in LAB.rglob("*.py")}
    return {m: _imports(p, set(files)) - {m} for m, p in files.items()}


def _closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        for dep in graph.get(m, ()):
            if dep not in seen:
                seen.add(dep)
                if dep in graph:
                    todo.append(dep)
    return seen


def test_scoring_and_reporting_read_records_only():
    graph = _graph()
    for m in graph:
        if m.startswith(("inertia.lab.scoring", "inertia.lab.reporting", "inertia.lab.claims.verdicts",
                         "inertia.lab.claims.table", "inertia.lab.claims.report", "inertia.lab.store",
                         "inertia.lab.records", "inertia.lab.outcomes")):
            deps = {d for d in _closure(graph, m) if d.startswith(("torch", "inertia.lab.running", "inertia.lab.workload",
                                                                   "inertia.lab.api", "inertia.optim"))}
            assert not deps, f"{m} imports {sorted(deps)}"


def test_no_import_cycles_in_the_lab():
    graph = {m: {d for d in deps if d.startswith("inertia.lab.") and d in _graph_keys()} for m, deps in _graph().items()}
    # a package's __init__ re-exports its modules; a cycle through it is still a cycle
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(d):] + [d]) if d in path else d)
            if d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def _graph_keys() -> set[str]:
    return {_module(p) for p in LAB.rglob("*.py")}


def test_modules_stay_small():
    for p in LAB.rglob("*.py"):
        assert len(p.read_text().splitlines()) < 600, f"{p.name} has grown past 600 lines"
