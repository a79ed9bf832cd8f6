"""The code's layout holds: no package imports a package that imports it back, and the modules
that hold click commands never import one another. Read from the source (imports inside functions
count too), so a cycle shows up here before it shows up as an ImportError at some call site."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("pixelrec_data", "pipelines", "schemas", "crawler")


def _modules():
    """(module name, its package, path) of every product module."""
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                name = ".".join(parts[:-1])
                yield name, name, path
            else:
                name = ".".join(parts)
                yield name, name.rpartition(".")[0], path


def _imports(package: str, path: Path):
    """(imported name, line) for each import of the file, relative ones made absolute."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield module, node.lineno
            yield from ((f"{module}.{alias.name}", node.lineno) for alias in node.names)


def _package_graph():
    modules = list(_modules())
    packages = {package for _, package, _ in modules}

    def package_of(name: str) -> str:
        while name and name not in packages:
            name = name.rpartition(".")[0]
        return name

    edges, where = defaultdict(set), {}
    for _, package, path in modules:
        for name, line in _imports(package, path):
            target = package_of(name)
            related = target == package or target.startswith(package + ".") or package.startswith(target + ".")
            if target and not related:  # a package and its own sub-packages are one room
                edges[package].add(target)
                where.setdefault((package, target), f"{path.relative_to(ROOT)}:{line}")
    return edges, where


def _cycles(edges) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_package_imports_a_package_that_imports_it_back():
    edges, where = _package_graph()
    assert edges, "no imports found: the walk reads nothing"
    lines = [f"{a} -> {b} ({where[a, b]})" for cycle in _cycles(edges)
             for a in cycle for b in sorted(edges[a]) if b in cycle]
    assert not lines, f"{len(lines)} imports close a cycle between packages:\n" + "\n".join(lines)


def test_the_cycle_check_sees_a_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]


def test_commands_never_import_commands():
    folder = ROOT / "pixelrec_data" / "commands"
    texts = {p.stem: p.read_text() for p in folder.glob("*.py")}
    holding = {f"pixelrec_data.commands.{stem}" for stem, text in texts.items()
               if "@click." in text or ".command(" in text}
    assert len(holding) > 5, holding
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for module, package, path in _modules() if module in holding
             for name, line in _imports(package, path)
             if name in holding and name != module]
    assert not wrong, f"{len(wrong)} command modules import another:\n" + "\n".join(wrong)


# (importer prefix, what it must never import, except these importer modules)
FORBIDDEN = [
    ("schemas", ("pixelrec_data", "pipelines", "crawler"), ()),
    ("crawler", ("pipelines", "pixelrec_data.baselines"), ()),
    ("pipelines", ("crawler", "pixelrec_data.baselines"), ()),
    ("pixelrec_data", ("pixelrec_data.commands", "pixelrec_data.cli"),
     ("pixelrec_data.cli", "pixelrec_data.commands")),
]


def test_imports_point_downward():
    wrong = []
    for module, package, path in _modules():
        for importer, banned, allowed in FORBIDDEN:
            if not (module == importer or module.startswith(importer + ".")):
                continue
            if any(module == a or module.startswith(a + ".") for a in allowed):
                continue
            wrong += [f"{path.relative_to(ROOT)}:{line} imports {name}" for name, line in _imports(package, path)
                      if name and any(name == b or name.startswith(b + ".") for b in banned)]
    assert not wrong, f"{len(wrong)} imports point upward:\n" + "\n".join(sorted(set(wrong)))
