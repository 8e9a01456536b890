#!/usr/bin/env python3
"""The import graph of `mace/`, drawn from the code: which package imports which, the cycles,
and the imports that go up against the declared layering below.

    python scripts/import_graph.py [ROOT] [--json] [--check]

ROOT is the repository (default: this script's). Every `import` counts, also those inside
functions (a lazy import is still a dependency), except under `if TYPE_CHECKING:`. A unit is
a top-level package or module of `mace/`; `mace/__init__.py`'s lazy exports (`mace.Engine`...)
count as imports of the module they come from, and `from mace import __version__` as one of
the base layer. `--check` exits 1 when there is a cycle or an upward import.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

#: lowest first; a unit may import its own layer and those below it
LAYERS: list[tuple[str, list[str]]] = [
    ("base", ["mace.errors", "mace.settings", "mace.fileio", "mace.jsondoc", "mace.latency", "mace.feeds",
              "mace.__version__"]),
    ("formats", ["mace.ir", "mace.ops", "mace.programcache", "mace.store", "mace.config", "mace.bundle"]),
    ("compute", ["mace.convert", "mace.quantize", "mace.runtime", "mace.tuning"]),
    ("tools", ["mace.tools", "mace.deploy", "mace.farm", "mace.testing", "mace.examples"]),
    ("cli", ["mace.cli", "mace.__main__"]),
    ("api", ["mace"]),
]
LAYER_OF = {unit: i for i, (_, units) in enumerate(LAYERS) for unit in units}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def lazy_exports(init: Path) -> dict[str, str]:
    """name -> module of `mace/__init__.py`'s `__getattr__` (`if name == "X": from M import X`)."""
    out: dict[str, str] = {}
    for node in ast.walk(ast.parse(init.read_text())):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) \
                and isinstance(node.test.comparators[0], ast.Constant):
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module:
                    out[node.test.comparators[0].value] = stmt.module
    return out


def _resolve_from(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(node) -> bool:
    """`if TYPE_CHECKING:` (annotations only: not an import at run time)."""
    if not isinstance(node, ast.If):
        return False
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports_of(root: Path, path: Path, modules: set[str], lazy: dict[str, str]) -> list[tuple[str, int]]:
    """(imported mace module, line) for every import in `path`."""
    module = module_name(root, path)
    tree = ast.parse(path.read_text(), str(path))
    out: list[tuple[str, int]] = []
    imports_root = False
    typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block)
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "mace":
                    imports_root = True
                elif a.name.startswith("mace."):
                    out.append((a.name, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            target = _resolve_from(module, path.name == "__init__.py", node)
            if target != "mace" and not target.startswith("mace."):
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                if target == "mace":
                    out.append((lazy.get(a.name, "mace.__version__" if a.name == "__version__" else sub)
                                if sub not in modules else sub, node.lineno))
                else:
                    out.append((sub if sub in modules else target, node.lineno))
    if imports_root:
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "mace":
                out.append((lazy.get(node.attr, "mace"), node.lineno))
    return out


def sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return sorted(out)


def analyse(repo: Path) -> dict:
    pkg = repo / "mace"
    files = sorted(p for p in pkg.rglob("*.py") if "__pycache__" not in p.parts)
    modules = {module_name(repo, p) for p in files}
    lazy = lazy_exports(pkg / "__init__.py")
    mod_graph: dict[str, set[str]] = defaultdict(set)
    unit_edges: dict[tuple[str, str], int] = defaultdict(int)
    upward: list[dict] = []
    for path in files:
        src = module_name(repo, path)
        for target, line in imports_of(repo, path, modules, lazy):
            if target not in modules and target != "mace.__version__":
                target = next((m for m in sorted(modules, key=len, reverse=True)
                               if target.startswith(m + ".")), target)
            if target == src:
                continue
            mod_graph[src].add(target)
            su, tu = unit_of(src), unit_of(target)
            if su == tu:
                continue
            unit_edges[(su, tu)] += 1
            ls, lt = LAYER_OF.get(su), LAYER_OF.get(tu)
            if ls is not None and lt is not None and lt > ls and \
                    not any(u["file"] == str(path.relative_to(repo)) and u["line"] == line and
                            u["imports"] == target for u in upward):
                upward.append({"file": str(path.relative_to(repo)), "line": line, "imports": target,
                               "from_layer": LAYERS[ls][0], "to_layer": LAYERS[lt][0]})
    unit_graph: dict[str, set[str]] = defaultdict(set)
    for a, b in unit_edges:
        unit_graph[a].add(b)
    units = sorted({u for e in unit_edges for u in e} | {unit_of(m) for m in modules})
    return {"units": units,
            "undeclared": [u for u in units if u not in LAYER_OF],
            "imports": {a: sorted(unit_graph[a]) for a in sorted(unit_graph)},
            "edge_counts": {f"{a} -> {b}": n for (a, b), n in sorted(unit_edges.items())},
            "package_cycles": sccs(unit_graph),
            "module_cycles": sccs(mod_graph),
            "upward": upward}


def render(res: dict) -> str:
    lines = ["layers (low -> high): " + " < ".join(f"{n} [{', '.join(u)}]" for n, u in LAYERS), "",
             "package -> packages it imports:"]
    for a, targets in res["imports"].items():
        lines.append(f"  {a:<18} -> {', '.join(targets)}")
    lines.append("")
    lines.append(f"package cycles: {len(res['package_cycles'])}")
    lines += [f"  {' <-> '.join(c)}" for c in res["package_cycles"]]
    lines.append(f"module cycles: {len(res['module_cycles'])}")
    lines += [f"  {' <-> '.join(c)}" for c in res["module_cycles"]]
    lines.append(f"upward imports: {len(res['upward'])}")
    lines += [f"  {u['file']}:{u['line']}: {u['imports']} ({u['from_layer']} -> {u['to_layer']})"
              for u in res["upward"]]
    if res["undeclared"]:
        lines.append(f"units in no layer: {', '.join(res['undeclared'])}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    ap.add_argument("--check", action="store_true", help="exit 1 on a cycle or an upward import")
    args = ap.parse_args(argv)
    root = Path(args.root)
    if not (root / "mace" / "__init__.py").is_file():
        print(f"error: {root}: no mace/__init__.py there: give the repository root", file=sys.stderr)
        return 2
    res = analyse(root)
    print(json.dumps(res, indent=2) if args.json else render(res))
    bad = res["package_cycles"] or res["module_cycles"] or res["upward"]
    return 1 if args.check and bad else 0


if __name__ == "__main__":
    sys.exit(main())
