#!/usr/bin/env python3
"""The size budget of `mace/`: no file over 500 lines, no function over 80 lines.

    python scripts/size_check.py [ROOT]

Exits 1 listing each offender that is not an exception below, and each exception that no longer
offends (so the list shrinks as files are split). Each exception names its reason.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80


#: "path" (a file) or "path::qualified.name" (a function) -> why it may exceed the budget
EXCEPTIONS: dict[str, str] = {
}


def offenders(root: Path) -> dict[str, int]:
    """'path' -> lines of each file over budget, 'path::name' -> lines of each long function."""
    out: dict[str, int] = {}
    for path in sorted((root / "mace").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        text = path.read_text()
        n = len(text.splitlines())
        if n > MAX_FILE_LINES:
            out[rel] = n
        _functions(ast.parse(text, rel), rel, "", out)
    return out


def _functions(node, rel: str, prefix: str, out: dict[str, int]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                n = child.end_lineno - start + 1
                if n > MAX_FUNCTION_LINES:
                    out[f"{rel}::{name}"] = n
            _functions(child, rel, name + ".", out)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1]
    found = offenders(root)
    bad = [f"{k}: {n} lines (budget {MAX_FILE_LINES if '::' not in k else MAX_FUNCTION_LINES})"
           for k, n in found.items() if k not in EXCEPTIONS]
    stale = [f"{k}: no longer over budget: remove it from EXCEPTIONS" for k in EXCEPTIONS if k not in found]
    for k, n in found.items():
        if k in EXCEPTIONS:
            print(f"allowed: {k}: {n} lines ({EXCEPTIONS[k]})")
    for line in bad + stale:
        print(f"size: {line}", file=sys.stderr)
    return 1 if bad or stale else 0


if __name__ == "__main__":
    sys.exit(main())
