"""The layering holds: no import cycles, no upward imports, and the libraries have no terminal code."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: library modules allowed to print, with the reason
PRINTS = {"mace/runtime/opencl/probe.py": "a child process: its stdout is the protocol with the parent",
          "mace/runtime/opencl/compile_child.py": "a compile process: its stdout is the protocol with the parent",
          "mace/runtime/cpu/compile_child.py": "the CPU kernels' compile process: its stdout is the protocol with "
                                               "the parent",
          "mace/farm/resources.py": "`python -m mace.farm.resources`: its stdout is `ray start --resources`'s value"}


def _load(script: str):
    spec = importlib.util.spec_from_file_location(script, ROOT / "scripts" / f"{script}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def graph():
    return _load("import_graph").analyse(ROOT)


def test_no_cycles_and_no_upward_imports(graph):
    res = graph
    assert res["package_cycles"] == [] and res["module_cycles"] == []
    assert res["upward"] == []
    assert res["undeclared"] == [], "give every package of mace/ a layer in scripts/import_graph.py"


def test_libraries_import_no_click_or_rich_and_never_print():
    offenders = []
    for path in sorted((ROOT / "mace").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[1] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            if any(n.split(".")[0] in ("click", "rich") for n in names):
                offenders.append(f"{rel}:{node.lineno}: imports {names}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print" \
                    and rel.as_posix() not in PRINTS:
                offenders.append(f"{rel}:{node.lineno}: print()")
    assert offenders == []


def test_cache_package_knows_no_runtime(graph):
    res = graph
    assert not {"mace.runtime", "mace.cli", "mace.tuning"} & set(res["imports"].get("mace.programcache", []))


def test_size_budget_holds():
    """No file over 500 lines, no function over 80 in mace/, but the named exceptions."""
    check = _load("size_check")
    found = check.offenders(ROOT)
    assert {k: n for k, n in found.items() if k not in check.EXCEPTIONS} == {}
    assert [k for k in check.EXCEPTIONS if k not in found] == [], "an exception no longer needed"
    assert all(check.EXCEPTIONS.values())


def test_runtime_choice_is_declared_once():
    """mace.runtime.RUNTIMES is the vocabulary; mace.yml's schema (config, a lower layer) and the
    command line's options agree with it, and the command line no longer passes the model along."""
    from typing import get_args

    from mace import config
    from mace.cli import common
    from mace.runtime import RUNTIMES
    assert get_args(config.Runtime) == RUNTIMES
    assert tuple(common.RUNTIME_OPT(lambda: None).__click_params__[0].type.choices) == RUNTIMES
    spelled = []   # tuples and lists (Literal[...] included) that list the three runtimes
    for path in sorted((ROOT / "mace").rglob("*.py")):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)) if '"cpu+gpu"' in text else ():
            if isinstance(node, (ast.Tuple, ast.List)) and set(RUNTIMES) <= {
                    e.value for e in node.elts if isinstance(e, ast.Constant)}:
                spelled.append(path.relative_to(ROOT).as_posix())
    assert spelled == ["mace/config.py", "mace/runtime/__init__.py"]
