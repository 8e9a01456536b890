"""A first CPU result never waits for numba: with a kernel missing from the cache, the first run
uses the NumPy kernels, the missing kernel compiles in a background
process after it, a process that exits early does not wait for that compile, and a later run
switches to the compiled kernels with the same outputs. The compile is held back by holding its lock file, so "before the compile
finished" is a fact of the test, not a timing."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import filelock
import numpy as np
import onnx

from mace.runtime.cpu import jit, kernels
from tests.ophelpers import reference

DIGITS = Path(__file__).resolve().parents[1] / "mace" / "examples" / "digits"

_SUB = """
import json, sys, numpy as np, mace
from mace.runtime.cpu import jit, kernels
def compiled_steps(e):   # prepared steps that run the compiled epilogue
    return sum(getattr(s, "_plan", None) is not None and s._plan[1] is not None for s in e.executor.prepared.values())
x = np.load(sys.argv[1])
e = mace.Engine(sys.argv[2], runtime="cpu")
y = e.run({"input": x})["output"]
child = jit._state["child"]
print(json.dumps({"y": y.tolist(), "compiled_steps": compiled_steps(e), "child_pid": child and child.pid,
                  "executor_compiled": e.executor.compiled_kernels, "line": jit.report().summary_line(),
                  **e.summary()["cpu_kernels"]}), flush=True)
if sys.stdin.readline().strip() == "wait":
    assert kernels.wait(timeout=240), jit.report().summary_line()
    y = e.run({"input": x})["output"]
    print(json.dumps({"y": y.tolist(), "compiled_steps": compiled_steps(e), "executor_compiled": e.executor.compiled_kernels,
                      "line": jit.report().summary_line(), **e.summary()["cpu_kernels"]}), flush=True)
"""


def _partial_cache(root: Path) -> Path:
    """A copy of this machine's warm kernel cache under `root` without binary_act's files."""
    assert kernels.wait(timeout=600), jit.report().summary_line()
    src = jit.cache_dir()
    dst = root / src.name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.lock", "*.damaged-*", "*.tmp.*"))
    gone = [f for f in dst.rglob("*.binary_act-*.nb[ic]")]
    assert gone, "the warm cache holds no binary_act entry"
    for f in gone:
        f.unlink()
    return dst


def _start(args, env):
    return subprocess.Popen([sys.executable, "-c", _SUB, *args], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _line(proc) -> dict:
    line = proc.stdout.readline()
    assert line, proc.stderr.read()[-3000:]
    return json.loads(line)


def _alive(pid) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def test_first_result_does_not_wait_for_the_compile(tmp_path, rng):
    kdir = _partial_cache(tmp_path / "kernels")
    data = np.load(DIGITS / "digits_test.npz")
    # a real digit plus fresh noise: the logits are never constant
    x = (data["x"][int(rng.integers(len(data["x"])))][None].astype(np.float32)
         + rng.uniform(0, 0.05, (1, 1, 8, 8)).astype(np.float32))
    np.save(tmp_path / "x.npy", x)
    want = reference(onnx.load(DIGITS / "digits_cnn.onnx"), {"input": x})[0]
    model = tmp_path / "digits.mace"
    from mace.convert import convert
    convert(DIGITS / "digits_cnn.onnx", model)
    env = dict(os.environ, MACE_CPU_KERNEL_CACHE=str(tmp_path / "kernels"))
    args = [str(tmp_path / "x.npy"), str(model)]
    lock = filelock.FileLock(str(kdir / ".compile.lock"))
    with lock:   # no background compile can start while the test holds this
        early = _start(args, env)
        first = _line(early)
        early.stdin.write("exit\n")
        early.stdin.flush()
        assert early.wait(timeout=60) == 0, early.stderr.read()[-3000:]   # exited without the compile
        assert first["child_pid"] and _alive(first["child_pid"]), "no compile process outlived the early exit"
        proc = _start(args, env)
        again = _line(proc)
        for r in (first, again):
            assert not r["compiled_kernels"] and not r["executor_compiled"] and r["compiled_steps"] == 0
            assert r["background"] in (None, "starting", "compiling") and r["compiled"] == 0
            assert r["expect"] in ("compile", None) and "compiling CPU kernels in the background" in r["line"]
            np.testing.assert_allclose(np.array(r["y"], np.float32), want, rtol=1e-4, atol=1e-4)
    proc.stdin.write("wait\n")
    proc.stdin.flush()
    second = _line(proc)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()[-3000:]
    assert second["compiled_kernels"] and second["executor_compiled"] and second["compiled_steps"] > 0
    # the early process's compile may have filled the cache first: then this one loaded it all
    # (each kernel is counted once: loaded from the cache, or compiled by this process's compile)
    assert second["background"] in ("done", "loaded") and second["compiled"] <= 1
    assert second["from_cache"] + second["compiled"] == len(jit._SIGS) == sum(sig is not None for *_, sig in jit._DEFS)
    np.testing.assert_allclose(np.array(second["y"], np.float32), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(second["y"], again["y"], rtol=1e-5, atol=1e-5)
    assert list(kdir.rglob("*.binary_act-*.nbi")), "the background compile did not fill the cache"
    assert not list(kdir.rglob("*.tmp.*"))
    end = time.monotonic() + 60
    while _alive(first["child_pid"]) and time.monotonic() < end:   # the early process's compile: done too
        time.sleep(0.1)
    assert not _alive(first["child_pid"])
