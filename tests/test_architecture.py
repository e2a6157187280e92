"""Design rules: domain code (room parameters, event records, signatures, the fold, the read index)
imports neither aiohttp, aiokafka nor asyncpg, only the I/O shells do; and no import circles in service/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

DOMAIN = [
    "service.rooms.params",
    "service.rooms.errors",
    "service.rooms.resource",
    "service.events.record",
    "service.events.codec",
    "service.events.errors",
    "service.events.cloudevents",
    "service.callbacks.signature",
    "service.callbacks.parse",
    "service.state.fold",
    "service.state.book",
    "service.state.index",
    "service.events.shapes",
    "service.events.schema",
    "service.state.shapes",
    "service.state.views",
    "service.state.render",
    "service.rooms.limits",
    "service.rooms.fields",
    "service.rooms.normalize",
    "service.rooms.merge",
    "service.history.rows",
    "service.providers",
    "service.providers.livekit",
    "service.providers.zoom",
]


def test_domain_modules_import_no_io_libraries():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in DOMAIN)
        + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'aiokafka', 'asyncpg')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


# ---------------------------------------------------------------- no import circles

SERVICE = Path(__file__).resolve().parents[1] / "service"
# The whole package is checked (service/http's keys and responses live in modules of their own).
NOT_YET_CHECKED: tuple[str, ...] = ()


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package tree it imports: every import statement, at the top
    or inside a function (a local import is as much a dependency as any other). `from pkg import x`
    counts as importing the submodule pkg.x when there is one, and pkg otherwise."""
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    packages = {module_name(p, root) for p in root.rglob("__init__.py")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        package = name if name in packages else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base for alias in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in paths and t != name)
    return graph


def import_cycles(graph: dict[str, set[str]], exclude: tuple[str, ...] = ()) -> list[list[str]]:
    """The import circles (strongly connected components of more than one module), leaving out the
    modules under `exclude` and the edges to them."""

    def kept(module: str) -> bool:
        return not any(module == e or module.startswith(e + ".") for e in exclude)

    nodes = {m: {t for t in targets if kept(t)} for m, targets in graph.items() if kept(m)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in nodes[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(nodes):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_circles_in_service():
    graph = import_graph(SERVICE)
    assert "service.materializer" in graph["service.runtime"]  # sanity: it reads the real tree
    assert "service.http.rooms" in graph["service.http.app"]
    assert import_cycles(graph, exclude=NOT_YET_CHECKED) == []


def test_the_circle_check_sees_local_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    (pkg / "d.py").write_text("from pkg import a\n")
    graph = import_graph(pkg)
    assert graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.d"] == {"pkg.a"}
    assert import_cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    assert import_cycles(graph, exclude=("pkg.sub",)) == []
