"""Cold start: binaries are harvested after the first result, in the background, and saved program
by program (a process SIGKILLed right after its first result leaves a valid program file, with
fewer entries or none yet, and the next start compiles only what is missing); a terminal shows one
progress line while programs compile."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import mace
from mace.cli.progress import BuildLine
from mace.convert import convert
from mace.programcache import DeviceFingerprint, ProgramCache
from mace.runtime.opencl import events, harvest
from mace.runtime.opencl.device import select_device

CHILD = textwrap.dedent("""
    import json, sys, time
    import mace
    model, prog, wait = sys.argv[1:4]
    e = mace.Engine(model, runtime="gpu", program=prog)
    e.run(e.dummy_inputs())
    r = e.program_cache_report
    print(json.dumps({"from_cache": r.from_cache, "compiled": r.compiled}), flush=True)
    if wait == "1":
        time.sleep(600)
""")


def _model(path: Path) -> Path:
    """Five programs: conv 3x3 + Relu, max pool, conv 1x1, global pool, Gemm."""
    rng = np.random.default_rng(3)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = {"w1": rng.uniform(-1, 1, (8, 3, 3, 3)), "w2": rng.uniform(-1, 1, (16, 8, 1, 1)),
             "g": rng.uniform(-1, 1, (16, 10)), "c": rng.uniform(-1, 1, (10,))}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("MaxPool", ["b"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p", "w2"], ["q"]),
             helper.make_node("GlobalAveragePool", ["q"], ["s"]),
             helper.make_node("Flatten", ["s"], ["f"]),
             helper.make_node("Gemm", ["f", "g", "c"], ["y"])]
    g = helper.make_graph(nodes, "m", [x], [y],
                          [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    convert(m, path)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _model(tmp_path_factory.mktemp("harvest") / "m.mace")


def _programs(prog: Path, fp) -> int:
    """Programs a look at the file finds for this device (0 when there is no file yet); the
    file must always be a valid program cache."""
    if not prog.exists():
        return 0
    cache = ProgramCache.open(prog, device_fp=fp, recover=False, log_findings=False)
    assert cache.report.format == "mace", cache.report.to_dict()
    assert not [f for f in cache.report.findings if f.severity == "error"], cache.report.to_dict()
    return len(cache.program_keys(fp))


def _child(model, prog, wait: bool):
    env = {**os.environ, "PYOPENCL_NO_CACHE": "1", "MACE_DEVICE_PROBE": "0"}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(model), str(prog), "1" if wait else "0"],
                            stdout=subprocess.PIPE, text=True, env=env)


def _first_result(proc) -> dict:
    line = proc.stdout.readline()
    assert line, f"child ended before its first result (rc {proc.wait()})"
    return json.loads(line)


def test_sigkill_after_first_result_leaves_a_valid_file_the_next_start_completes(model, tmp_path):
    fp = DeviceFingerprint.from_cl_device(select_device())
    prog = tmp_path / "p.bin"
    # killed the moment its first result is out: no file yet, or a valid one
    proc = _child(model, prog, wait=True)
    first = _first_result(proc)
    n = first["compiled"]
    assert n >= 3 and first["from_cache"] == 0
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    k0 = _programs(prog, fp)
    assert k0 <= n
    # killed once the harvest has saved one more program than the file held
    proc = _child(model, prog, wait=True)
    first = _first_result(proc)
    assert (first["from_cache"], first["compiled"]) == (k0, n - k0)
    deadline = time.monotonic() + 120
    while _programs(prog, fp) <= k0 and k0 < n and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    k1 = _programs(prog, fp)
    assert k0 < k1 <= n or k0 == n
    # the next start loads what was saved, compiles the rest, and leaves the whole file at exit
    proc = _child(model, prog, wait=False)
    first = _first_result(proc)
    assert proc.wait(timeout=120) == 0
    assert (first["from_cache"], first["compiled"]) == (k1, n - k1)
    assert _programs(prog, fp) == n


def test_first_result_does_not_wait_for_the_harvest(model, tmp_path, monkeypatch):
    """The first run returns while the binaries are still being harvested; an engine opening the
    same file waits for them and starts warm; close() waits for its own."""
    from mace.runtime.opencl import programs
    monkeypatch.setenv("MACE_COMPILE_PROCESSES", "1")   # every program compiled here, harvested after
    gate = harvest.threading.Event()
    real = programs.binaries.program_binary

    def held(prog):
        gate.wait(60)
        return real(prog)

    monkeypatch.setattr(programs.binaries, "program_binary", held)
    prog = tmp_path / "p.bin"
    seen = []
    with events.listening(lambda event, info: seen.append((event, info))):
        cold = mace.Engine(model, runtime="gpu", program=prog)
    compiled = cold.program_cache_report.compiled
    assert [i["count"] for e, i in seen if e == "compile"] == list(range(1, compiled + 1))
    assert all(i["file"] == str(prog) and i["first"] for e, i in seen if e == "compile")
    assert seen[-1][0] == "built" and seen[-1][1]["compiled"] == compiled
    x = cold.dummy_inputs()
    want = cold.run(x)["y"]         # returns although no binary can be harvested yet
    assert cold._harvest is not None and not cold._harvest.done.is_set()
    assert cold.executor.builder.pending >= 2    # one taken by the harvest, the rest waiting
    gate.set()
    from mace.runtime.opencl import shared
    shared.forget_programs()
    warm = mace.Engine(model, runtime="gpu", program=prog)      # waits for the harvest of prog
    assert warm.program_cache_report.compiled == 0
    np.testing.assert_allclose(warm.run(x)["y"], want, rtol=1e-5, atol=1e-5)
    cold.close()
    warm.close()
    assert cold._harvest.done.is_set() and not harvest.live()


def test_progress_line_is_one_line_erased_when_done():
    out = io.StringIO()
    line = BuildLine(out, width=200)
    for n, name in enumerate(["conv", "pool"], start=1):
        line("compile", {"device": "dev", "name": name, "count": n, "file": "/p.bin", "first": True})
    assert "compiling OpenCL programs: 2 (pool) for dev (first run; later starts load them from /p.bin)" in out.getvalue()
    assert "\n" not in out.getvalue()
    line("built", {"device": "dev", "compiled": 2, "file": "/p.bin", "seconds": 1.0})
    assert out.getvalue().endswith("\r\x1b[2K") and not line.shown
    line("saving", {"files": ["/p.bin"]})
    assert "saving the compiled programs to /p.bin" in out.getvalue()
    line.filter(None)                     # a log record erases it first
    assert not line.shown


def test_a_forked_child_does_not_wait_for_the_parents_harvest(model, tmp_path, monkeypatch):
    from mace.runtime.opencl import programs
    gate = harvest.threading.Event()
    real = programs.binaries.program_binary
    monkeypatch.setattr(programs.binaries, "program_binary", lambda prog: gate.wait(60) and real(prog))
    prog = tmp_path / "p.bin"
    e = mace.Engine(model, runtime="gpu", program=prog)
    e.run(e.dummy_inputs())
    assert harvest.live()
    pid = os.fork()
    if pid == 0:     # the child: opening the file must not wait for a thread it does not have
        os._exit(0 if harvest.wait(prog, timeout=5) and not harvest.live() else 1)
    _, status = os.waitpid(pid, 0)
    gate.set()
    e.close()
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_kernels_program_holds_that_kernel_alone():
    """Every kernel of every ops/*.cl file gets a source with no other kernel definition, braces
    balanced and line numbers kept; a name the file does not define gets None (the whole file)."""
    from mace.runtime.opencl import kernelsplit
    from mace.runtime.opencl.programs import OPS_DIR, program_source
    files = sorted(OPS_DIR.glob("*.cl"))
    assert files
    multi = 0
    for f in files:
        src = program_source(f.stem)
        names = kernelsplit.kernels(src)
        assert names, f
        multi += len(names) > 1
        for name in names:
            only = program_source(f.stem, name)
            assert kernelsplit.kernels(only) == [name], (f.stem, name)
            assert only.count("{") == only.count("}") and only.count("\n") == src.count("\n")
        assert kernelsplit.only(src, "no_such_kernel") is None
    assert multi >= 3   # files with several kernels exist, so the split removes something


def test_compile_processes_and_this_one_build_together(model, tmp_path, monkeypatch):
    """MACE_COMPILE_PROCESSES=2: a compile process and this one build the model's programs
    together (PoCL; threads elsewhere); the first result is that of programs compiled one at a
    time, the programs the compile process built are in the cache before the first run, and the
    next start compiles nothing."""
    from mace.runtime.opencl import shared
    monkeypatch.setenv("MACE_COMPILE_PROCESSES", "1")
    shared.forget_programs()
    serial = mace.Engine(model, runtime="gpu", use_program_cache=False)
    x = serial.dummy_inputs()
    want = serial.run(x)["y"]
    serial.close()
    monkeypatch.setenv("MACE_COMPILE_PROCESSES", "2")
    shared.forget_programs()
    prog = tmp_path / "p.bin"
    cold = mace.Engine(model, runtime="gpu", program=prog)
    b = cold.executor.builder
    pocl = "Portable Computing Language" in cold.device.platform.name
    assert b.mode == ("processes" if pocl else "threads")
    if pocl:   # the compile process took programs from the back, this process from the front
        assert 1 <= len(b.child_seconds) < cold.program_cache_report.compiled
        assert b.pending == cold.program_cache_report.compiled - len(b.child_seconds)
    np.testing.assert_allclose(cold.run(x)["y"], want, rtol=1e-5, atol=1e-5)
    n = cold.program_cache_report.compiled
    cold.close()
    shared.forget_programs()
    warm = mace.Engine(model, runtime="gpu", program=prog)
    assert (warm.program_cache_report.from_cache, warm.program_cache_report.compiled) == (n, 0)
    np.testing.assert_allclose(warm.run(x)["y"], want, rtol=1e-5, atol=1e-5)
    warm.close()
