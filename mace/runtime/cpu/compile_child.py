"""The CPU runtime's background compile process (started by `jit.start`): imports the kernels'
modules, compiles (or loads) every kernel into the cache directory its parent uses, and prints one
JSON line of what it did: its stdout is the protocol with the parent. One compile per cache
directory at a time (a lock file): a second one waits, then loads what the first wrote.

    python -m mace.runtime.cpu.compile_child <cache directory> <module>...
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import filelock

from mace.runtime.cpu import jit


def main(directory: str, modules: list[str]) -> int:
    for m in modules:
        importlib.import_module(m)
    if str(jit.cache_dir()) != directory:
        print(json.dumps({"error": f"cache directory {jit.cache_dir()} is not the parent's {directory}"}))
        return 3
    with filelock.FileLock(str(Path(directory) / ".compile.lock")):
        res = jit.compile_all()
    print(json.dumps(res))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
