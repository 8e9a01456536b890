"""Portability: kernels sized by what the device can do (probed once, kept in the program
cache), and build failures that degrade to another variant or the CPU runtime, never kill the
process. Failures are injected for real (MACE_TEST_BREAK_BUILD: an `#error` line in the source,
a wrong kernel name, a probe process that aborts like PyPI's PoCL on AMD Zen 4)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import mace
from mace.convert import convert
from mace.errors import KernelBuildError, MaceError
from mace.ir import modelfile
from mace.programcache import DeviceFingerprint, ProgramCache
from mace.runtime.opencl import caps as caps_mod
from mace.runtime.opencl.device import select_device

ROOT = Path(__file__).resolve().parents[1]


def small_cnn(rng) -> onnx.ModelProto:
    """Depthwise 3x3 -> Relu -> pointwise conv -> BatchNorm (kept: after Relu) -> global pool."""
    c, m = 8, 16
    init = {"dw": rng.normal(0, 0.5, (c, 1, 3, 3)), "dwb": rng.normal(0, 0.1, c),
            "pw": rng.normal(0, 0.3, (m, c, 1, 1)), "pwb": rng.normal(0, 0.1, m),
            "g": rng.uniform(0.5, 1.5, m), "b": rng.normal(0, 0.1, m), "mu": rng.normal(0, 0.1, m),
            "var": rng.uniform(0.5, 1.5, m)}
    nodes = [helper.make_node("Conv", ["x", "dw", "dwb"], ["a"], group=c, pads=[1, 1, 1, 1], name="dwconv"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "pw", "pwb"], ["p"], name="pwconv"),
             helper.make_node("Relu", ["p"], ["q"], name="relu2"),
             helper.make_node("BatchNormalization", ["q", "g", "b", "mu", "var"], ["n"], name="bn"),
             helper.make_node("GlobalAveragePool", ["n"], ["y"], name="gap")]
    g = helper.make_graph(nodes, "small_cnn", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, c, 37, 37])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(v.astype(np.float32), k) for k, v in init.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def reference(model, x):
    import onnxruntime as ort
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


CHILD = r"""
import json, sys
import numpy as np
import mace
from mace.programcache import DeviceFingerprint
model, program, xfile = sys.argv[1:4]
e = mace.Engine(model, runtime="cpu+gpu", program=program)
y = e.run({"x": np.load(xfile)})["y"]
np.save(xfile + ".out.npy", y)
fp = DeviceFingerprint.from_cl_device(e.device)
print(json.dumps({"fallback": e.executor.fallback_nodes,
                  "variants": {n: op.variant for n, op in e.executor.ops.items() if op is not None},
                  "failures": e.program_cache.build_failures(fp),
                  "caps": e.executor.caps.to_dict()}))
"""


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    d = tmp_path_factory.mktemp("portability")
    model = small_cnn(rng)
    path = d / "small.mace"
    modelfile.save(convert(model), path)
    x = rng.uniform(-1, 1, (1, 8, 37, 37)).astype(np.float32)
    np.save(d / "x.npy", x)
    want = reference(model, x)
    assert np.abs(want).max() > 1e-2
    return {"dir": d, "model": path, "x": d / "x.npy", "want": want}


def run_child(cnn, program: Path, env_extra: dict) -> tuple[dict, str, np.ndarray]:
    env = dict(os.environ, MACE_LOG_LEVEL="INFO", **env_extra)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(cnn["model"]), str(program), str(cnn["x"])],
                          capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    # the exit code is the point: a failed build must not abort the process, even at teardown
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LLVM ERROR" not in proc.stderr and "Traceback" not in proc.stderr
    out = np.load(str(cnn["x"]) + ".out.npy")
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr, out


def assert_close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


#: the program (and its telling option) of each depthwise variant, to break one on purpose
DW_PROGRAMS = {"depthwise": ("depthwise", "^depthwise "), "gpu_depthwise": ("gpu_conv", "^gpu_conv .*-DDEPTHWISE")}


def test_failed_variant_falls_back_is_recorded_and_skipped_next_time(cnn, tmp_path):
    """The depthwise conv's first variant gets a real compiler error: the op runs its next
    variant, the warning names op, variant and the compiler's message, the failure is recorded
    under the device's fingerprint, and the next start skips the variant without a warning."""
    e = mace.Engine(cnn["model"], runtime="gpu", use_program_cache=False)
    first, second = e.executor.ops["dwconv"].variants()[:2]
    program = tmp_path / "p.bin"
    env = {"MACE_TEST_BREAK_BUILD": DW_PROGRAMS[first][1]}
    info, err, out = run_child(cnn, program, env)
    assert_close(out, cnn["want"])
    assert info["variants"]["dwconv"] == second and info["fallback"] == []
    (key, rec), = info["failures"].items()
    assert key.startswith(DW_PROGRAMS[first][0] + "|") and rec["stage"] == "build"
    assert "injected build failure" in rec["log"]
    warning = [ln for ln in err.splitlines() if "dwconv" in ln and f"variant {first}:" in ln]
    assert warning and "injected build failure" in warning[0] and f"trying {second}" in warning[0]
    info2, err2, out2 = run_child(cnn, program, env)
    assert_close(out2, cnn["want"])
    assert info2["variants"]["dwconv"] == second
    assert f"variant {first}:" not in err2  # known: skipped untried, no second warning


def test_no_variant_builds_runs_the_op_on_the_cpu_runtime(cnn, tmp_path):
    info, err, out = run_child(cnn, tmp_path / "p.bin",
                               {"MACE_TEST_BREAK_BUILD": "|".join(p for _, p in DW_PROGRAMS.values())})
    assert_close(out, cnn["want"])
    assert info["fallback"] == ["dwconv"]
    assert "no variant left" in err and "runs on the CPU runtime" in err


def test_kernel_creation_failure_is_typed_and_recorded(cnn, tmp_path):
    """INVALID_KERNEL_NAME from the driver (how PoCL shows a kernel it miscompiled)."""
    info, err, out = run_child(cnn, tmp_path / "p.bin", {"MACE_TEST_BREAK_BUILD": "kernel:^pool .*GLOBAL_POOL"})
    assert_close(out, cnn["want"])
    assert info["fallback"] == ["gap"]
    (rec,) = [r for k, r in info["failures"].items() if k.startswith("pool|")]
    assert rec["stage"] == "create kernel" and "INVALID_KERNEL_NAME" in rec["log"]


def test_build_error_is_a_mace_error_not_a_pyopencl_one(tmp_path, monkeypatch):
    import pyopencl as cl

    from mace.runtime.opencl.programs import ProgramBuilder
    dev = select_device()
    monkeypatch.setenv("MACE_TEST_BREAK_BUILD", "^softmax ")
    builder = ProgramBuilder(cl.Context([dev]), dev)
    compiled = []
    real = ProgramBuilder._compile
    monkeypatch.setattr(ProgramBuilder, "_compile", lambda self, *a: compiled.append(a) or real(self, *a))
    with pytest.raises(KernelBuildError) as info:
        builder.kernel("softmax", ["-DTEST_ONLY_TYPED"], "softmax")
    assert isinstance(info.value, MaceError) and "injected build failure" in str(info.value)
    with pytest.raises(KernelBuildError) as again:       # remembered: not built twice
        builder.kernel("softmax", ["-DTEST_ONLY_TYPED"], "softmax")
    assert len(compiled) == 1 and str(again.value) == str(info.value)


def test_probe_survives_a_compiler_that_aborts(monkeypatch):
    """PyPI's PoCL on Zen 4 dies in the compiler on 16-wide vectors: the probe's child dies,
    the engine learns width 16 is broken and that 8 and 4 work."""
    monkeypatch.setenv("MACE_TEST_BREAK_BUILD", "abort:PW=16")
    result, _ = caps_mod.run_probe(select_device())
    assert "SIGABRT" in result[16] and result[8] == "ok" and result[4] == "ok"
    monkeypatch.setenv("MACE_TEST_BREAK_BUILD", "PW=(16|8)")
    result, _ = caps_mod.run_probe(select_device())
    assert "injected" in result[16] and "injected" in result[8] and result[4] == "ok"


def test_caps_are_kept_in_the_program_cache_and_not_probed_again(cnn, tmp_path, monkeypatch):
    program = tmp_path / "p.bin"
    dev = select_device()
    fp = DeviceFingerprint.from_cl_device(dev)
    caps_mod.forget()
    e = mace.Engine(cnn["model"], runtime="gpu", program=program)
    e.run({"x": np.load(cnn["x"])})
    assert e.executor.caps.source == "probed"
    stored = ProgramCache.open(program, device_fp=fp).get_caps(fp)
    assert stored["max_vector_width"] == e.executor.caps.max_vector_width and set(stored["probe"]) == {"16", "8", "4"}

    def no_probe(device):
        raise AssertionError("probed again")
    monkeypatch.setattr(caps_mod, "run_probe", no_probe)
    caps_mod.forget()
    again = mace.Engine(cnn["model"], runtime="gpu", program=program)
    assert again.executor.caps.source == "program cache"
    assert again.executor.caps.max_vector_width == e.executor.caps.max_vector_width
    caps_mod.forget()


@pytest.mark.parametrize("width", [8, 4, 1])
def test_kernels_respect_a_narrow_device(cnn, width):
    """Where the probe accepts only narrower vectors, no program is built wider, and results
    still match onnxruntime (conv, depthwise, pool and batchnorm kernels)."""
    dev = select_device()
    fp = DeviceFingerprint.from_cl_device(dev)
    real = caps_mod.device_caps(dev)
    caps_mod._MEMO[fp.id] = replace(real, max_vector_width=width)
    try:
        e = mace.Engine(cnn["model"], runtime="gpu", use_program_cache=False)
        out = e.run({"x": np.load(cnn["x"])})["y"]
    finally:
        caps_mod._MEMO[fp.id] = real
    assert_close(out, cnn["want"])
    keys = e.executor.builder.keys
    for wide in (w for w in (16, 8, 4) if w > width):
        assert not any(f"-DVW={wide}" in k or f"-DWV={wide}" in k for k in keys), keys
    assert e.executor.fallback_nodes == []


def test_probe_off_trusts_the_driver(monkeypatch):
    monkeypatch.setenv("MACE_DEVICE_PROBE", "0")
    caps = caps_mod._discover(select_device())
    assert caps.source.startswith("not probed") and caps.probe == {}
    assert caps.max_vector_width <= max(caps.reported_vector_width, 1)


def test_driver_cache_of_a_run_that_died_mid_build_is_cleared(tmp_path):
    """A process killed while PoCL compiled leaves its mark in mace's PoCL cache directory; the
    next start clears that directory before the driver loads, then runs normally."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    env.pop("POCL_CACHE_DIR", None)
    env.pop("POCL_KERNEL_CACHE", None)
    root = tmp_path / "mace" / "pocl-kernel-cache"
    root.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (root / f"mace-building.{dead.stdout.strip()}").touch()
    (root / "poisoned-entry").write_bytes(b"\x7fELF truncated")
    code = ("import os, mace.runtime.opencl.device as d; d.list_devices(); "
            "print(os.environ['POCL_CACHE_DIR'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(root)
    assert root.is_dir() and not (root / "poisoned-entry").exists()
    assert not list(root.glob("mace-building.*"))


def test_user_choice_of_driver_cache_is_left_alone(tmp_path):
    env = dict(os.environ, POCL_CACHE_DIR=str(tmp_path / "mine"))
    code = "import os, mace.runtime.opencl.device as d; d.list_devices(); print(os.environ['POCL_CACHE_DIR'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == str(tmp_path / "mine")


def test_half_storage_falls_back_to_float_where_the_probe_failed(cnn):
    """A device whose half-storage probe failed runs an fp16_fp32 model in float32 storage."""
    dev = select_device()
    fp = DeviceFingerprint.from_cl_device(dev)
    real = caps_mod.device_caps(dev)
    caps_mod._MEMO[fp.id] = replace(real, half_storage=False)
    try:
        graph = modelfile.load(cnn["model"])
        graph.meta["data_type"] = "fp16_fp32"
        e = mace.Engine(graph, runtime="gpu", use_program_cache=False)
        out = e.run({"x": np.load(cnn["x"])})["y"]
    finally:
        caps_mod._MEMO[fp.id] = real
    assert e.executor.data_type == "fp32_fp32" and e.executor.store_dtype == np.float32
    assert_close(out, cnn["want"])


def test_stored_caps_cannot_claim_what_the_device_lacks(tmp_path):
    """A capabilities record from a file of unknown origin: only the probe's findings are read
    from it (and checked); the driver's limits and quirks are asked again."""
    dev = select_device()
    fp = DeviceFingerprint.from_cl_device(dev)
    cache = ProgramCache.open(tmp_path / "p.bin", device_fp=fp)
    real = caps_mod.device_caps(dev)
    cache.put_caps(fp, {**real.to_dict(), "max_vector_width": 8, "max_work_group_size": 1 << 30,
                        "subbuffers_safe": not real.subbuffers_safe, "is_cpu": not real.is_cpu})
    got = caps_mod._stored(dev, cache.section(fp))
    assert got.max_vector_width == 8 and got.source == "program cache"
    assert (got.max_work_group_size, got.subbuffers_safe, got.is_cpu) == \
        (real.max_work_group_size, real.subbuffers_safe, real.is_cpu)
    cache.put_caps(fp, {**real.to_dict(), "max_vector_width": 32})
    assert caps_mod._stored(dev, cache.section(fp)) is None   # not a width we write: probe again
