"""A first CPU result never waits for numba: with a kernel missing from the cache, the first run
uses the NumPy kernels while the missing one compiles in a background process, a process that
exits early does not wait for that compile, and a later run switches to the compiled kernels with
the same outputs. The compile is held back by holding its lock file, so "before the compile
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
calls = []
real = kernels.epilogue
kernels.epilogue = lambda *a: calls.append(1) or real(*a)   # counts the compiled epilogue's calls
x = np.load(sys.argv[1])
e = mace.Engine(sys.argv[2], runtime="cpu")
y = e.run({"input": x})["output"]
print(json.dumps({"y": y.tolist(), "calls": len(calls), "child_pid": jit._state["child_pid"],
                  "executor_compiled": e.executor.compiled_kernels, **e.summary()["cpu_kernels"]}), flush=True)
if sys.stdin.readline().strip() == "wait":
    assert kernels.wait(timeout=240), jit.report().summary_line()
    y = e.run({"input": x})["output"]
    print(json.dumps({"y": y.tolist(), "calls": len(calls), "executor_compiled": e.executor.compiled_kernels,
                      **e.summary()["cpu_kernels"]}), flush=True)
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


def _gone(pid: int | None, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while pid and time.monotonic() < end:
        if not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower():
            return True
        time.sleep(0.1)
    return not pid or not Path(f"/proc/{pid}").exists()


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
        proc = _start(args, env)
        again = _line(proc)
        for r in (first, again):
            assert r["background"] == "compiling" and not r["compiled_kernels"] and not r["executor_compiled"]
            assert r["calls"] == 0 and r["from_cache"] == len(jit._SIGS) - 1
            np.testing.assert_allclose(np.array(r["y"], np.float32), want, rtol=1e-4, atol=1e-4)
    proc.stdin.write("wait\n")
    proc.stdin.flush()
    second = _line(proc)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()[-3000:]
    assert second["compiled_kernels"] and second["executor_compiled"] and second["calls"] > 0
    assert second["background"] == "done" and second["compiled"] <= 1
    np.testing.assert_allclose(np.array(second["y"], np.float32), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(second["y"], again["y"], rtol=1e-5, atol=1e-5)
    assert _gone(first["child_pid"], 60), "the early process's compile never ended"
    assert list(kdir.rglob("*.binary_act-*.nbi")), "the background compile did not fill the cache"
    assert not list(kdir.rglob("*.tmp.*"))
