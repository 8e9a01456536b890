"""Every benchmark script's imports resolve: a benchmark that stops at an ImportError cannot give
the numbers an issue asks for, and no test runs the benchmarks themselves (they take minutes)."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCH.glob("*.py"))


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_imports_resolve(script):
    local = {p.stem: p for p in SCRIPTS}
    missing = []
    for node in ast.walk(ast.parse(script.read_text())):
        if not isinstance(node, ast.ImportFrom) or not node.module or node.level:
            continue
        wanted = [a.name for a in node.names if a.name != "*"]
        if node.module in local:
            have = _top_level_names(local[node.module])
            missing += [f"{node.module}.{n}" for n in wanted if n not in have]
        elif node.module == "mace" or node.module.startswith("mace."):
            mod = importlib.import_module(node.module)
            missing += [f"{node.module}.{n}" for n in wanted if not hasattr(mod, n)
                        and importlib.util.find_spec(f"{node.module}.{n}") is None]
    assert not missing, f"{script.name} imports names that do not exist: {missing}"
